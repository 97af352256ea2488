#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "assert_text.h"

#include "error.h"
#include "plan.h"
#include "run_flags.h"
#include "server.h"
#include "settings.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Parses argv (NULL-terminated), then makes the plan; returns the first failure. */
static int run_flags(char **argv, st_run_opts *o, st_plan *p, char *err, size_t err_len)
{
    int argc = 0;
    while (argv[argc]) {
        argc++;
    }
    st_plan_init(p);
    int rc = st_run_flags_parse(argc, argv, o, err, err_len);
    int agents = 0, threads = 0;
    if (rc == 0) {
        rc = st_run_flags_plan(o, p, &agents, &threads, err, err_len);
    }
    return rc;
}

static void expect_refused(char **argv, const char *frag)
{
    st_run_opts o;
    st_plan p;
    char err[512] = "";
    assert_int_equal(run_flags(argv, &o, &p, err, sizeof(err)), ST_EINVAL);
    assert_says(err, frag);
    st_plan_fini(&p);
}

/* A command line (NULL-ended) to be refused with a message that says frag. Not const: the parser
 * may reorder argv. */
typedef struct refusal {
    const char *frag;
    char *argv[16];
} refusal;

static void expect_all_refused(refusal *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        expect_refused(cases[i].argv, cases[i].frag);
    }
}

/* The words of a valid `stampede run` that a case adds its flags to. */
#define RUN_10RPS "run", "--url", "http://127.0.0.1/", "--rate", "10", "--duration", "1"

static void test_run_flags_tables_check(void **state)
{
    (void)state;
    char err[256] = "";
    size_t n;
    const st_setting *rows = st_run_settings(&n);
    assert_true(n > 0);
    if (st_settings_check(rows, n, err, sizeof(err))) {
        fail_msg("stampede run's table: %s", err);
    }
    rows = st_plan_settings(&n);
    assert_int_equal(st_settings_check(rows, n, err, sizeof(err)), 0);
    /* With the plan's flags beside it no flag is declared twice (the parser would say so). */
    st_run_opts o;
    char *help[] = {"stampede run", "--help", NULL};
    assert_int_equal(st_run_flags_parse(2, help, &o, err, sizeof(err)), 1);
    assert_int_equal(o.help, 1);
}

static void test_run_flags_refuses_bent_values(void **state)
{
    (void)state;
    refusal cases[] = {
        {"--rate: \"-0\"",
         {"run", "--url", "http://127.0.0.1/", "--rate", "-0", "--duration", "1"}},
        {"--rate: \"0x10\"",
         {"run", "--url", "http://127.0.0.1/", "--rate", "0x10", "--duration", "1"}},
        {"--rate: \"inf\"",
         {"run", "--url", "http://127.0.0.1/", "--rate", "inf", "--duration", "1"}},
        {"--rate: given twice",
         {"run", "--url", "http://127.0.0.1/", "--rate", "10", "--rate", "20", "--duration", "1"}},
        {"--summary: given twice", {RUN_10RPS, "--summary", "a.json", "--summary", "b.json"}},
    };
    expect_all_refused(cases, N(cases));
}

static void test_run_flags_listen_url(void **state)
{
    (void)state;
    char err[256] = "";
    static const char *const good[] = {"tcp://127.0.0.1:0", "tcp://0.0.0.0:7400",
                                       "tcp://host.example:65535", "tcp://[::1]:7400",
                                       "tcp4://127.0.0.1:1", "tcp://:7400"};
    for (size_t i = 0; i < N(good); i++) {
        if (st_server_check_url(good[i], err, sizeof(err))) {
            fail_msg("%s refused: %s", good[i], err);
        }
    }
    static const char *const bad[] = {"foo", "tcp://127.0.0.1", "tcp://127.0.0.1:", "http://h:1",
                                      "tcp://h:65536", "tcp://h:0x10", "tcp://h:-1",
                                      "tcp://::1:7400", "tcp://h/x:1", "tcp://h:1 ", ""};
    for (size_t i = 0; i < N(bad); i++) {
        if (st_server_check_url(bad[i], err, sizeof(err)) != ST_EINVAL) {
            fail_msg("\"%s\" taken as a listen URL", bad[i]);
        }
        assert_non_null(strstr(err, "--listen: \""));
    }
    char *foo[] = {RUN_10RPS, "--listen", "foo", "--dry-run", NULL};
    expect_refused(foo, "--listen: \"foo\" is not tcp://HOST:PORT");
}

/* A stored baseline is named by a run id and its table; each half alone is refused. */
static void test_run_flags_baseline_table(void **state)
{
    (void)state;
    refusal cases[] = {
        {"--baseline-table goes with --baseline RUN_ID",
         {RUN_10RPS, "--baseline-table", "results"}},
        {"--baseline \"old/summary.json\": with --baseline-table it is a run id",
         {RUN_10RPS, "--baseline", "old/summary.json", "--baseline-table", "results"}},
        {"--endpoint-url goes with --sqs-queue-url or --launcher ecs",
         {RUN_10RPS, "--endpoint-url", "http://127.0.0.1:1"}},
    };
    expect_all_refused(cases, N(cases));
    st_run_opts o;
    st_plan p;
    char err[512] = "";
    char *region[] = {RUN_10RPS, "--baseline", "20261202T171531Z-735085d0", "--baseline-table",
                      "results", "--region", "eu-west-1", NULL};
    assert_int_equal(run_flags(region, &o, &p, err, sizeof(err)), 0);
    assert_string_equal(o.baseline_table, "results");
    st_plan_fini(&p);
}

/* What the agents' engine cannot send is refused with the plan, not by each agent later. */
static void test_run_flags_engine_must_fit_the_plan(void **state)
{
    (void)state;
    char *https_fast[] = {"run", "--url", "https://127.0.0.1/", "--rate", "10", "--duration", "1",
                          "--http2", "--engine", "fast", "--dry-run", NULL};
    expect_refused(https_fast, "--engine fast: cannot send this plan");
    st_run_opts o;
    st_plan p;
    char err[512] = "";
    char *https_curl[] = {"run", "--url", "https://127.0.0.1/", "--rate", "10", "--duration", "1",
                          "--engine", "curl", NULL};
    assert_int_equal(run_flags(https_curl, &o, &p, err, sizeof(err)), 0);
    st_plan_fini(&p);
    char *https_auto[] = {"run", "--url", "https://127.0.0.1/", "--rate", "10", "--duration", "1",
                          NULL};
    assert_int_equal(run_flags(https_auto, &o, &p, err, sizeof(err)), 0);
    st_plan_fini(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_flags_tables_check),
        cmocka_unit_test(test_run_flags_refuses_bent_values),
        cmocka_unit_test(test_run_flags_listen_url),
        cmocka_unit_test(test_run_flags_engine_must_fit_the_plan),
        cmocka_unit_test(test_run_flags_baseline_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
