#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "error.h"
#include "plan.h"

/* Parses the len bytes of json (which may hold NUL) as plan.json and finishes it for 2 threads. */
static int parse_n(st_plan *p, const char *json, size_t len, char *err, size_t err_len)
{
    st_plan_init(p);
    int rc = st_plan_parse(p, json, len, "plan.json", err, err_len);
    if (rc == 0) {
        rc = st_plan_finish(p, 2, err, err_len);
    }
    return rc;
}

static int parse(st_plan *p, const char *json, char *err, size_t err_len)
{
    return parse_n(p, json, strlen(json), err, err_len);
}

/* Parses json, which must be accepted (a failure shows why it was not). */
static void parse_ok(st_plan *p, const char *json)
{
    char err[512] = "";
    if (parse(p, json, err, sizeof(err)) != 0) {
        fail_msg("plan refused: %s", err);
    }
}

/* Parses len bytes (which may hold NUL) and expects a refusal naming frag1 and frag2. */
static void expect_error_n(const char *json, size_t len, const char *frag1, const char *frag2)
{
    st_plan p;
    char err[512] = "";
    assert_int_equal(parse_n(&p, json, len, err, sizeof(err)), ST_EINVAL);
    if (!strstr(err, frag1) || (frag2 && !strstr(err, frag2))) {
        fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", err, frag1, frag2 ? frag2 : "");
    }
    st_plan_fini(&p);
}

/* The plan must be refused with a message that contains every fragment. */
static void expect_error(const char *json, const char *frag1, const char *frag2)
{
    expect_error_n(json, strlen(json), frag1, frag2);
}

/* HTTP/2 forbids connection headers: a plan asking for both is refused where it is read, naming
 * the header; without http2 they are sent as written. */
static void test_plan_http2_refuses_connection_headers(void **state)
{
    (void)state;
    static const char *const names[] = {"Connection", "keep-alive", "Proxy-Connection", "Upgrade",
                                        "TE"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char json[256];
        snprintf(json, sizeof(json),
                 "{\"requests\": [{\"url\": \"http://h/a\"}, {\"url\": \"http://h/b\", "
                 "\"headers\": {\"X-A\": \"1\", \"%s\": \"x\"}}], \"rate\": 1, "
                 "\"duration\": 1, \"http2\": true}",
                 names[i]);
        expect_error(json, "$.requests[1].headers[1]", "connection header, which HTTP/2 forbids");
        st_plan p;
        snprintf(json, sizeof(json),
                 "{\"requests\": [{\"url\": \"http://h/\", \"headers\": {\"%s\": \"x\"}}], "
                 "\"rate\": 1, \"duration\": 1}",
                 names[i]);
        parse_ok(&p, json);
        st_plan_fini(&p);
    }
    assert_string_equal(st_plan_h2_connection_header("connection: close"), "Connection");
    assert_null(st_plan_h2_connection_header("Connectionx: close"));
    assert_null(st_plan_h2_connection_header("X-Connection: close"));
    assert_null(st_plan_h2_connection_header(": close"));
}

static void test_plan_errors_name_the_path(void **state)
{
    (void)state;
    expect_error("{\"url\": \"http://h/\", \"rate\": 10, \"duration\": 5,\n \"conections\": 3}",
                 "plan.json: $.conections", "unknown key");
    expect_error("{\"requests\": [{\"url\": \"http://h/\"}, {\"url\": \"http://h/\", \"weight\": "
                 "0}], \"rate\": 1, \"duration\": 1}",
                 "$.requests[1].weight", "integer from 1");
    expect_error("{\"requests\": [{\"url\": \"ftp://h/\"}], \"rate\": 1, \"duration\": 1}",
                 "$.requests[0].url", "http://");
    expect_error("{\"requests\": [{\"method\": \"GET\"}], \"rate\": 1, \"duration\": 1}",
                 "$.requests[0]", "no \"url\"");
    expect_error("{\"url\": \"http://h/\", \"rate\": -5, \"duration\": 1}", "$.rate", NULL);
    expect_error("{\"url\": \"http://h/\", \"rate\": \"fast\", \"duration\": 1}", "$.rate", NULL);
    expect_error("{\"url\": \"http://h/\", \"rate\": 5, \"duration\": \"10 years\"}",
                 "$.duration", "duration");
    expect_error("{\"url\": \"http://h/\", \"stages\": [{\"duration\": 5, \"target\": 10}, "
                 "{\"duration\": 5}]}",
                 "$.stages[1]", "exactly one of");
    expect_error("{\"url\": \"http://h/\", \"stages\": [{\"duration\": 0, \"rate\": 10}]}",
                 "$.stages[0].duration", NULL);
    expect_error("{\"url\": \"http://h/\", \"stages\": [], \"rate\": 3}", "$.stages", NULL);
    expect_error("{\"url\": \"http://h/\", \"rate\": 5, \"duration\": 5, \"stages\": "
                 "[{\"duration\": 5, \"rate\": 1}]}",
                 "$.stages", "not both");
    expect_error("{\"requests\": [{\"url\": \"http://h/\", \"headers\": {\"X-A\": 5}}], "
                 "\"rate\": 1, \"duration\": 1}",
                 "$.requests[0].headers.X-A", "string");
    expect_error("{\"requests\": [{\"url\": \"http://h/\", \"headers\": [\"Bad Header\"]}], "
                 "\"rate\": 1, \"duration\": 1}",
                 "$.requests[0].headers[0]", "not a valid header");
    expect_error("{\"requests\": [{\"url\": \"http://h/\", \"body_file\": "
                 "\"/nonexistent/x.json\"}], \"rate\": 1, \"duration\": 1}",
                 "$.requests[0].body_file", "does not exist");
    expect_error("{\"url\": \"http://h/\",\n  \"rate\": 5,,\n}", "line 2", "not valid JSON");
    expect_error("[1, 2]", "$", "JSON object");
    expect_error("{\"url\": \"http://h/\", \"duration\": 5}", "rate", "missing");
    expect_error("{\"url\": \"http://h/\", \"rate\": 5}", "duration", "missing");
    expect_error("{\"url\": \"http://h/\", \"rate\": 5, \"duration\": 10, \"ramp_up\": 6, "
                 "\"ramp_down\": 6}",
                 "duration", "ramp_up");
    expect_error("{\"url\": \"http://h/\", \"rate\": 0.01, \"duration\": 10}", "rate",
                 "no request");
    expect_error("{\"taskCount\": 5, \"targetUrl\": \"http://h/\", \"vus\": 0, \"rate\": 1, "
                 "\"duration\": 3}",
                 "$.vus", NULL);
    expect_error("{\"taskCount\": 5, \"vus\": 1, \"rate\": 1, \"duration\": 3}", "targetUrl",
                 NULL);
    expect_error("{\"url\": \"http://user:pw@h/\", \"rate\": 1, \"duration\": 1}", "$.url",
                 "user");
    expect_error("{\"url\": \"http://h:99999/\", \"rate\": 1, \"duration\": 1}", "$.url", "port");
}

static void test_plan_seed_payload(void **state)
{
    (void)state;
    st_plan p;
    parse_ok(&p, "{\"taskCount\": 5, \"targetUrl\": \"https://api.example.com\", "
                 "\"vus\": 100, \"rate\": 10, \"duration\": 300}");
    assert_int_equal(p.agents, 5);
    assert_int_equal(p.connections, 100);
    assert_true(p.rate_rps == 5000);
    assert_true(p.duration_s == 300);
    assert_int_equal(p.n_requests, 1);
    assert_string_equal(p.requests[0].url, "https://api.example.com");
    assert_string_equal(p.requests[0].method, "GET");
    assert_true(p.profile.total_n == 5000.0 * 300);
    st_plan_fini(&p);
}

static void test_plan_ramp_and_stages(void **state)
{
    (void)state;
    st_plan p;
    parse_ok(&p, "{\"url\": \"http://h/\", \"rate\": 100, \"duration\": \"1m\", "
                 "\"ramp_up\": \"10s\"}");
    assert_int_equal(p.profile.n_stages, 2);
    assert_true(p.profile.total_s == 60);
    assert_true(p.profile.total_n == 500 + 5000);
    st_plan_fini(&p);

    parse_ok(&p, "{\"url\": \"http://h/\", \"start_rate\": 10, \"stages\": ["
                 "{\"duration\": 10, \"target\": 50},"
                 "{\"duration\": \"5s\", \"rate\": 80},"
                 "{\"duration\": 5, \"target\": 0}]}");
    assert_int_equal(p.profile.n_stages, 3);
    assert_true(p.profile.stages[0].from_rps == 10 && p.profile.stages[0].to_rps == 50);
    assert_true(p.profile.stages[1].from_rps == 80 && p.profile.stages[1].to_rps == 80);
    assert_true(p.profile.stages[2].from_rps == 80 && p.profile.stages[2].to_rps == 0);
    assert_true(p.duration_s == 20);
    assert_false(p.closed_loop);
    st_plan_fini(&p);

    /* rate 0: closed loop. */
    parse_ok(&p, "{\"url\": \"http://h/\", \"rate\": 0, \"duration\": 3}");
    assert_true(p.closed_loop);
    st_plan_fini(&p);
}

static void test_plan_mix_follows_weights(void **state)
{
    (void)state;
    st_plan p;
    parse_ok(&p, "{\"requests\": ["
                 "{\"url\": \"http://h/a\", \"weight\": 3},"
                 "{\"url\": \"http://h/b\", \"method\": \"post\", \"body\": {\"k\": 1}},"
                 "{\"url\": \"http://h/c\", \"weight\": 6, \"headers\": {\"X-T\": \"1\"}}],"
                 "\"rate\": 10, \"duration\": 1}");
    assert_int_equal(p.mix_len, 10);
    int count[3] = {0};
    for (uint32_t i = 0; i < p.mix_len; i++) {
        count[p.mix[i]]++;
    }
    assert_int_equal(count[0], 3);
    assert_int_equal(count[1], 1);
    assert_int_equal(count[2], 6);
    assert_string_equal(p.requests[1].method, "POST");
    assert_string_equal(p.requests[1].body, "{\"k\":1}");
    assert_int_equal(p.requests[1].n_headers, 1);
    assert_string_equal(p.requests[1].headers[0], "Content-Type: application/json");
    assert_string_equal(p.requests[2].headers[0], "X-T: 1");
    /* Defaults. */
    assert_int_equal(p.threads, 2);
    assert_int_equal(p.connections, 64);
    assert_int_equal(p.timeout_ms, 10000);
    st_plan_fini(&p);
}

static void test_plan_body_file_relative_to_plan(void **state)
{
    (void)state;
    char dir[] = "/tmp/st-plan-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char body_path[256], plan_path[256];
    snprintf(body_path, sizeof(body_path), "%s/body.bin", dir);
    snprintf(plan_path, sizeof(plan_path), "%s/plan.json", dir);
    FILE *f = fopen(body_path, "wb");
    fwrite("a\0b", 1, 3, f);
    fclose(f);
    f = fopen(plan_path, "w");
    fputs("{\"requests\": [{\"url\": \"http://h/\", \"method\": \"PUT\", \"body_file\": "
          "\"body.bin\"}], \"rate\": 1, \"duration\": 1}",
          f);
    fclose(f);
    st_plan p;
    char err[256] = "";
    st_plan_init(&p);
    assert_int_equal(st_plan_load_file(&p, plan_path, err, sizeof(err)), 0);
    assert_int_equal(p.requests[0].body_len, 3);
    assert_memory_equal(p.requests[0].body, "a\0b", 3);
    st_plan_fini(&p);
    /* A missing plan file is ST_ENOTFOUND with the path named. */
    st_plan_init(&p);
    assert_int_equal(st_plan_load_file(&p, "/nonexistent/plan.json", err, sizeof(err)),
                     ST_ENOTFOUND);
    assert_non_null(strstr(err, "/nonexistent/plan.json"));
    st_plan_fini(&p);
    unlink(body_path);
    unlink(plan_path);
    rmdir(dir);
}

/* "cacert" names a PEM file, relative to the plan's folder; the plan keeps its contents. */
static void test_plan_cacert_read_with_the_plan(void **state)
{
    (void)state;
    char dir[] = "/tmp/st-plan-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char ca[256], junk[256], plan_path[256], err[512] = "";
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(junk, sizeof(junk), "%s/junk.pem", dir);
    snprintf(plan_path, sizeof(plan_path), "%s/plan.json", dir);
    static const char pem[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    FILE *f = fopen(ca, "w");
    fputs(pem, f);
    fclose(f);
    f = fopen(junk, "w");
    fputs("not a certificate\n", f);
    fclose(f);
    f = fopen(plan_path, "w");
    fputs("{\"url\": \"https://h/\", \"rate\": 1, \"duration\": 1, \"cacert\": \"ca.pem\"}", f);
    fclose(f);
    st_plan p;
    st_plan_init(&p);
    assert_int_equal(st_plan_load_file(&p, plan_path, err, sizeof(err)), 0);
    assert_string_equal(p.cacert, ca);
    assert_int_equal(p.cacert_pem_len, strlen(pem));
    assert_memory_equal(p.cacert_pem, pem, strlen(pem));
    /* --cacert replaces it; a file without a certificate, or none at all, is refused. */
    st_plan_flags fl;
    st_plan_flags_init(&fl);
    assert_int_equal(st_plan_flags_option(&fl, "cacert", junk, err, sizeof(err)), 0);
    assert_int_equal(st_plan_apply_flags(&p, &fl, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "--cacert: file"));
    assert_non_null(strstr(err, "junk.pem holds no PEM certificate"));
    assert_string_equal(p.cacert, ca);
    st_plan_fini(&p);
    expect_error("{\"url\": \"https://h/\", \"rate\": 1, \"duration\": 1, \"cacert\": "
                 "\"/nonexistent/ca.pem\"}",
                 "$.cacert", "file /nonexistent/ca.pem does not exist");
    expect_error("{\"url\": \"https://h/\", \"rate\": 1, \"duration\": 1, \"cacert\": 7}",
                 "$.cacert", "string");
    unlink(ca);
    unlink(junk);
    unlink(plan_path);
    rmdir(dir);
}

/* A NUL in any string would cut it short in C: refused with its JSON path, escaped or raw. */
static void test_plan_refuses_nul_in_strings(void **state)
{
    (void)state;
    expect_error("{\"url\": \"http://h/a\\u0000b\", \"rate\": 1, \"duration\": 1}",
                 "plan.json: $.url:", "NUL");
    expect_error("{\"requests\": [{\"url\": \"http://h/\"}, {\"url\": \"http://h/\", \"headers\": "
                 "{\"X-A\": \"v\\u0000w\"}}], \"rate\": 1, \"duration\": 1}",
                 "$.requests[1].headers.X-A:", "NUL");
    expect_error("{\"requests\": [{\"url\": \"http://h/\", \"headers\": [\"X-A: 1\", "
                 "\"X-B: \\u0000\"]}], \"rate\": 1, \"duration\": 1}",
                 "$.requests[0].headers[1]:", "NUL");
    expect_error("{\"requests\": [{\"url\": \"http://h/\", \"headers\": "
                 "{\"X\\u0000Y\": \"v\"}}], \"rate\": 1, \"duration\": 1}",
                 "$.requests[0].headers: key \"X\\u0000Y\"", "NUL");
    expect_error("{\"requests\": [{\"url\": \"http://h/\", \"body\": \"a\\u0000\"}], "
                 "\"rate\": 1, \"duration\": 1}",
                 "$.requests[0].body:", "NUL");
    expect_error("{\"name\": \"\\u0000\", \"url\": \"http://h/\", \"rate\": 1, \"duration\": 1}",
                 "$.name:", "NUL");
    /* A raw 0 byte inside a string, and an escaped backslash that only looks like \u0000. */
    static const char raw[] = "{\"url\": \"http://h/a\0b\", \"rate\": 1, \"duration\": 1}";
    expect_error_n(raw, sizeof(raw) - 1, "$.url:", "NUL");
    st_plan p;
    parse_ok(&p, "{\"url\": \"http://h/\", \"name\": \"a\\\\u0000\", \"rate\": 1, "
                 "\"duration\": 1}");
    assert_string_equal(p.name, "a\\u0000");
    st_plan_fini(&p);
}

/* A key twice in any object is refused with the path of the second; the last "rate" never wins. */
static void test_plan_refuses_duplicate_keys(void **state)
{
    (void)state;
    expect_error("{\"url\": \"http://h/\", \"rate\": 1, \"rate\": 5, \"duration\": 1}",
                 "plan.json: $.rate:", "twice");
    /* The input fuzz_plan found leaking the first URL. */
    expect_error("{\"requests\": [{\"url\": \"http://127.0.0.1/a\", \"url\": "
                 "\"http://127.0.0.1/b\"}], \"rate\": 1, \"duration\": 1}",
                 "$.requests[0].url:", "twice");
    expect_error("{\"url\": \"http://h/\", \"stages\": [{\"duration\": 1, \"rate\": 1}, "
                 "{\"duration\": 1, \"rate\": 2, \"duration\": 3}]}",
                 "$.stages[1].duration:", "twice");
    expect_error("{\"requests\": [{\"url\": \"http://h/\", \"headers\": {\"X-A\": \"1\", "
                 "\"X-A\": \"2\"}}], \"rate\": 1, \"duration\": 1}",
                 "$.requests[0].headers.X-A:", "twice");
    expect_error("{\"requests\": [{\"url\": \"http://h/\", \"body\": {\"a\": {\"b\": 1, \"b\": "
                 "2}}}], \"rate\": 1, \"duration\": 1}",
                 "$.requests[0].body.a.b:", "twice");
    /* The same key once escaped is the same key; the first repeated key in the text is named. */
    expect_error("{\"url\": \"http://h/\", \"duration\": 1, \"rate\": 1, \"r\\u0061te\": 2, "
                 "\"duration\": 2}",
                 "$.rate:", "twice");
    expect_error("{\"taskCount\": 1, \"targetUrl\": \"http://h/\", \"vus\": 1, \"vus\": 2, "
                 "\"rate\": 1, \"duration\": 1}",
                 "$.vus:", "twice");
    /* The same key in different objects is fine, and headers repeat in the array form. */
    st_plan p;
    parse_ok(&p, "{\"requests\": [{\"url\": \"http://h/a\"}, {\"url\": "
                 "\"http://h/b\", \"headers\": [\"X-A: 1\", \"X-A: 2\"]}], "
                 "\"rate\": 1, \"duration\": 1}");
    assert_int_equal(p.requests[1].n_headers, 2);
    st_plan_fini(&p);
}

static void test_plan_refuses_trailing_bytes(void **state)
{
    (void)state;
    expect_error("{\"url\": \"http://h/\", \"rate\": 1, \"duration\": 1}\n  x",
                 "plan.json: line 2, column 3:", "after the end");
    expect_error("{\"url\": \"http://h/\", \"rate\": 1, \"duration\": 1}{\"rate\": 5}",
                 "line 1, column 47:", "after the end");
    static const char nul_after[] = "{\"url\": \"http://h/\", \"rate\": 1, \"duration\": 1}\0";
    expect_error_n(nul_after, sizeof(nul_after) - 1, "line 1, column 47", "after the end");
    st_plan p;
    parse_ok(&p, "\n {\"url\": \"http://h/\", \"rate\": 1, \"duration\": 1} \r\n\t");
    st_plan_fini(&p);
}

/* start_rate is where the first ramp of "stages" starts: without stages it would do nothing. */
static void test_plan_start_rate_needs_stages(void **state)
{
    (void)state;
    expect_error("{\"url\": \"http://h/\", \"start_rate\": 5, \"rate\": 10, \"duration\": 2}",
                 "plan.json: $.start_rate:", "goes with \"stages\"");
    st_plan p;
    parse_ok(&p, "{\"url\": \"http://h/\", \"start_rate\": 5, \"stages\": "
                 "[{\"duration\": 2, \"target\": 10}]}");
    assert_true(p.profile.stages[0].from_rps == 5);
    st_plan_fini(&p);
}

/* Loads a plan whose body_file is body; expects a refusal that names the path and says why. */
static void expect_body_file_error(const char *body, const char *frag)
{
    char plan[512];
    snprintf(plan, sizeof(plan),
             "{\"requests\": [{\"url\": \"http://h/\", \"body_file\": \"%s\"}], \"rate\": 1, "
             "\"duration\": 1}",
             body);
    st_plan p;
    char err[512] = "";
    st_plan_init(&p);
    assert_int_equal(st_plan_parse(&p, plan, strlen(plan), "plan.json", err, sizeof(err)),
                     ST_EINVAL);
    if (!strstr(err, "$.requests[0].body_file: file ") || !strstr(err, body) ||
        !strstr(err, frag)) {
        fail_msg("message \"%s\" lacks the path %s or \"%s\"", err, body, frag);
    }
    st_plan_fini(&p);
}

/* Only a regular file is a body or a plan: each other kind is named, and a FIFO never blocks. */
static void test_plan_files_must_be_regular(void **state)
{
    (void)state;
    alarm(20); /* a FIFO that blocks the read fails the test instead of hanging it */
    char dir[] = "/tmp/st-plan-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char fifo[256], big[256], plan_path[256];
    snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
    snprintf(big, sizeof(big), "%s/big", dir);
    snprintf(plan_path, sizeof(plan_path), "%s/plan.json", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    FILE *f = fopen(big, "wb");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), (64 << 20) + 1), 0); /* sparse: costs no disk */
    fclose(f);

    expect_body_file_error(dir, "is a directory, not a regular file");
    expect_body_file_error(fifo, "is a FIFO (named pipe), not a regular file");
    expect_body_file_error("/dev/zero", "is a device, not a regular file");
    expect_body_file_error("/dev/null", "is a device");
    expect_body_file_error(big, "is larger than 64 MiB");
    expect_body_file_error("/nonexistent/body", "does not exist");
    expect_body_file_error("/etc/hostname/x", "cannot be read: Not a directory");

    /* A /proc file says its size is 0 and is not empty: its bytes are the body. */
    st_plan p;
    char err[512] = "";
    const char *proc = "{\"requests\": [{\"url\": \"http://h/\", \"body_file\": "
                       "\"/proc/self/status\"}], \"rate\": 1, \"duration\": 1}";
    st_plan_init(&p);
    assert_int_equal(st_plan_parse(&p, proc, strlen(proc), "plan.json", err, sizeof(err)), 0);
    assert_true(p.requests[0].body_len > 0);
    assert_non_null(strstr(p.requests[0].body, "Pid:"));
    st_plan_fini(&p);

    /* The plan file itself. */
    struct {
        const char *path, *frag;
        int rc;
    } plans[] = {
        {dir, "the plan file is a directory, not a regular file", ST_EINVAL},
        {fifo, "the plan file is a FIFO (named pipe)", ST_EINVAL},
        {"/dev/zero", "the plan file is a device", ST_EINVAL},
        {big, "the plan file is larger than 16 MiB", ST_EINVAL},
        {"/etc/hostname/x", "cannot be read", ST_EIO},
    };
    for (size_t i = 0; i < sizeof(plans) / sizeof(plans[0]); i++) {
        st_plan_init(&p);
        assert_int_equal(st_plan_load_file(&p, plans[i].path, err, sizeof(err)), plans[i].rc);
        if (strncmp(err, plans[i].path, strlen(plans[i].path)) != 0 ||
            !strstr(err, plans[i].frag)) {
            fail_msg("message \"%s\" lacks the path %s or \"%s\"", err, plans[i].path,
                     plans[i].frag);
        }
        st_plan_fini(&p);
    }
    /* Unreadable: only without root, which reads whatever the mode says. */
    f = fopen(plan_path, "w");
    assert_non_null(f);
    fputs("{}", f);
    fclose(f);
    if (geteuid() != 0) {
        assert_int_equal(chmod(plan_path, 0), 0);
        st_plan_init(&p);
        assert_int_equal(st_plan_load_file(&p, plan_path, err, sizeof(err)), ST_EIO);
        assert_non_null(strstr(err, "cannot be read: Permission denied"));
        st_plan_fini(&p);
    }
    unlink(plan_path);
    unlink(fifo);
    unlink(big);
    rmdir(dir);
    alarm(0);
}

static void test_plan_flags_override(void **state)
{
    (void)state;
    st_plan p;
    char err[256] = "";
    st_plan_init(&p);
    const char *json = "{\"url\": \"http://a/\", \"rate\": 5, \"duration\": 9, \"threads\": 8, "
                       "\"connections\": 4}";
    assert_int_equal(st_plan_parse(&p, json, strlen(json), "plan.json", err, sizeof(err)), 0);
    assert_int_equal(st_plan_set_url(&p, "http://b:8080/x?y=1", err, sizeof(err)), 0);
    p.rate_rps = 7;
    assert_int_equal(st_plan_finish(&p, 2, err, sizeof(err)), 0);
    assert_string_equal(p.requests[0].url, "http://b:8080/x?y=1");
    assert_true(p.profile.total_n == 63);
    /* threads never exceed connections. */
    assert_int_equal(p.threads, 4);
    st_plan_fini(&p);
    st_plan_init(&p);
    assert_int_equal(st_plan_set_url(&p, "localhost:80", err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "--url"));
    st_plan_fini(&p);
}

static void test_plan_send_window(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        int rc;
        double want_s;
    } cases[] = {
        {"{\"url\": \"http://h/\", \"rate\": 1, \"duration\": 1}", 0, 1e-3},
        {"{\"url\": \"http://h/\", \"rate\": 1, \"duration\": 1, \"send_window\": 0}", 0, 0},
        {"{\"url\": \"http://h/\", \"rate\": 1, \"duration\": 1, \"send_window\": \"0ms\"}", 0,
         0},
        {"{\"url\": \"http://h/\", \"rate\": 1, \"duration\": 1, \"send_window\": \"2ms\"}", 0,
         2e-3},
        {"{\"url\": \"http://h/\", \"rate\": 1, \"duration\": 1, \"send_window\": -0.001}",
         ST_EINVAL, 0},
        {"{\"url\": \"http://h/\", \"rate\": 1, \"duration\": 1, \"send_window\": \"soon\"}",
         ST_EINVAL, 0},
        /* A window longer than late_ms would make batched sends late. */
        {"{\"url\": \"http://h/\", \"rate\": 1, \"duration\": 1, \"send_window\": \"6ms\", "
         "\"late_ms\": 5}",
         ST_EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        st_plan p;
        st_plan_init(&p);
        char err[256] = "";
        int rc = st_plan_parse(&p, cases[i].json, strlen(cases[i].json), "plan.json", err,
                               sizeof(err));
        if (rc == 0) {
            rc = st_plan_finish(&p, 1, err, sizeof(err));
        }
        assert_int_equal(rc, cases[i].rc);
        if (rc == 0) {
            assert_true(fabs(p.send_window_s - cases[i].want_s) < 1e-12);
        } else {
            assert_non_null(strstr(err, "send_window"));
        }
        st_plan_fini(&p);
    }
}

static void test_plan_flags_option(void **state)
{
    (void)state;
    st_plan_flags f;
    st_plan_flags_init(&f);
    char err[256] = "";
    assert_int_equal(st_plan_flags_option(&f, "rate", "7.5", err, sizeof(err)), 0);
    assert_true(f.rate_rps == 7.5);
    assert_int_equal(st_plan_flags_option(&f, "ramp-up", "2m", err, sizeof(err)), 0);
    assert_true(f.ramp_up_s == 120);
    assert_int_equal(st_plan_flags_option(&f, "late-ms", "25", err, sizeof(err)), 0);
    assert_int_equal(f.late_ms, 25);
    assert_int_equal(st_plan_flags_option(&f, "send-window", "250us", err, sizeof(err)), 0);
    assert_true(fabs(f.send_window_s - 250e-6) < 1e-12);
    assert_int_equal(st_plan_flags_option(&f, "send-window", "0", err, sizeof(err)), 0);
    assert_true(f.send_window_s == 0);
    assert_int_equal(st_plan_flags_option(&f, "send-window", "-1ms", err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "--send-window"));
    assert_int_equal(st_plan_flags_option(&f, "send-window", "2s", err, sizeof(err)), ST_EINVAL);
    assert_int_equal(st_plan_flags_option(&f, "insecure", NULL, err, sizeof(err)), 0);
    assert_int_equal(f.insecure, 1);
    assert_int_equal(f.http2, 0);
    assert_int_equal(st_plan_flags_option(&f, "connections", "0", err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "--connections"));
    assert_int_equal(f.connections, -1);
    assert_int_equal(st_plan_flags_option(&f, "duration", "soon", err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "--duration"));
    assert_int_equal(st_plan_flags_option(&f, "summary", "x.json", err, sizeof(err)), ST_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_errors_name_the_path),
        cmocka_unit_test(test_plan_http2_refuses_connection_headers),
        cmocka_unit_test(test_plan_send_window),
        cmocka_unit_test(test_plan_seed_payload),
        cmocka_unit_test(test_plan_ramp_and_stages),
        cmocka_unit_test(test_plan_mix_follows_weights),
        cmocka_unit_test(test_plan_body_file_relative_to_plan),
        cmocka_unit_test(test_plan_cacert_read_with_the_plan),
        cmocka_unit_test(test_plan_refuses_nul_in_strings),
        cmocka_unit_test(test_plan_refuses_duplicate_keys),
        cmocka_unit_test(test_plan_refuses_trailing_bytes),
        cmocka_unit_test(test_plan_start_rate_needs_stages),
        cmocka_unit_test(test_plan_files_must_be_regular),
        cmocka_unit_test(test_plan_flags_override),
        cmocka_unit_test(test_plan_flags_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
