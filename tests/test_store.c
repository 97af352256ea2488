/*
 * The sink's store against a real DynamoDB emulator: dynalite (from the npm cache that
 * scripts/deps.sh's st_need_npm fills) is started on a free loopback port for the whole group and
 * stopped at the end, failed tests included. Items are read back with st_ddb_query and compared
 * with the messages that were sent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "curl_group.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "assert_stats.h"
#include "ddb.h"
#include "error.h"
#include "result_item.h"
#include "result_msg.h"
#include "store.h"

#define TABLE        "stampede-results"
#define NOW_S        1700000000
#define START_WAIT_S 20

typedef struct emulator {
    pid_t pid; /* 0 once stopped */
    int port;
    char endpoint[64];
    st_aws_client *client;
} emulator;

static emulator emu;

/* ---- the emulator process ---- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    close(fd);
    return port;
}

static int port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return 0;
    }
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* SIGTERM, then SIGKILL if it lingers; always reaped. */
static void stop_emulator(void)
{
    if (emu.pid <= 0) {
        return;
    }
    kill(emu.pid, SIGTERM);
    double deadline = mono_s() + 3;
    while (waitpid(emu.pid, NULL, WNOHANG) == 0) {
        if (mono_s() > deadline) {
            kill(emu.pid, SIGKILL);
            waitpid(emu.pid, NULL, 0);
            break;
        }
        sleep_ms(20);
    }
    emu.pid = 0;
}

#define INSTALL_HINT                                                                               \
    "run scripts/deps.sh's st_need_npm (scripts/test.sh does) to install Node.js and "             \
    "dynalite@4.0.0 into $STAMPEDE_NPM_DIR or ~/.cache/stampede/npm"

static int start_emulator(void)
{
    char cli[1024];
    const char *dir = getenv("STAMPEDE_NPM_DIR");
    const char *home = getenv("HOME");
    if (dir && *dir) {
        snprintf(cli, sizeof(cli), "%s/node_modules/dynalite/cli.js", dir);
    } else {
        snprintf(cli, sizeof(cli), "%s/.cache/stampede/npm/node_modules/dynalite/cli.js",
                 home ? home : "");
    }
    if (access(cli, R_OK) != 0) {
        fprintf(stderr, "test_store: the DynamoDB emulator is missing (%s): " INSTALL_HINT "\n",
                cli);
        return -1;
    }
    emu.port = free_port();
    if (emu.port <= 0) {
        fprintf(stderr, "test_store: no free loopback port: %s\n", strerror(errno));
        return -1;
    }
    char port[16];
    snprintf(port, sizeof(port), "%d", emu.port);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "test_store: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* Dies with the test even when the test itself is killed (a ctest timeout). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(1);
        }
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
            dup2(devnull, STDOUT_FILENO);
            close(devnull);
        }
        execlp("node", "node", cli, "--host", "127.0.0.1", "--port", port, "--createTableMs", "0",
               "--deleteTableMs", "0", (char *)NULL);
        _exit(127);
    }
    emu.pid = pid;
    snprintf(emu.endpoint, sizeof(emu.endpoint), "http://127.0.0.1:%d", emu.port);
    double deadline = mono_s() + START_WAIT_S;
    while (!port_open(emu.port)) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            emu.pid = 0;
            if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
                fprintf(stderr, "test_store: cannot run node: " INSTALL_HINT "\n");
            } else {
                fprintf(stderr, "test_store: dynalite (%s) exited before listening on port %d\n",
                        cli, emu.port);
            }
            return -1;
        }
        if (mono_s() > deadline) {
            fprintf(stderr, "test_store: dynalite did not listen on port %d within %d s\n",
                    emu.port, START_WAIT_S);
            stop_emulator();
            return -1;
        }
        sleep_ms(50);
    }
    return 0;
}

/* ---- AWS calls ---- */

static int new_client(const char *endpoint, st_aws_client **out)
{
    st_aws_config cfg;
    st_aws_config_init(&cfg);
    cfg.region = "us-east-1";
    cfg.service_endpoint_url[ST_AWS_DYNAMODB] = endpoint;
    cfg.retry.max_attempts = 2;
    cfg.retry.base_delay_ms = 1;
    cfg.retry.max_delay_ms = 5;
    cfg.connect_timeout_ms = 2000;
    cfg.timeout_ms = 10000;
    st_aws_error err;
    int rc = st_aws_client_new(out, &cfg, &err);
    if (rc) {
        fprintf(stderr, "test_store: AWS client: %s\n", err.message);
    }
    return rc;
}

static int call(const char *op, const char *request_json, cJSON **reply)
{
    cJSON *req = cJSON_Parse(request_json);
    st_aws_error err;
    cJSON *out = NULL;
    int rc = req ? st_aws_call(emu.client, ST_AWS_DYNAMODB, op, req, &out, &err) : ST_EINVAL;
    if (rc) {
        fprintf(stderr, "test_store: DynamoDB %s: %s\n", op, req ? err.message : "bad request");
    }
    cJSON_Delete(req);
    if (reply) {
        *reply = out;
    } else {
        cJSON_Delete(out);
    }
    return rc;
}

/* The sink's table, as docs/aws.md and the integration tests create it. */
static int create_table(void)
{
    if (call("CreateTable",
             "{\"TableName\":\"" TABLE "\",\"BillingMode\":\"PAY_PER_REQUEST\","
             "\"AttributeDefinitions\":[{\"AttributeName\":\"testId\",\"AttributeType\":\"S\"},"
             "{\"AttributeName\":\"sk\",\"AttributeType\":\"S\"}],"
             "\"KeySchema\":[{\"AttributeName\":\"testId\",\"KeyType\":\"HASH\"},"
             "{\"AttributeName\":\"sk\",\"KeyType\":\"RANGE\"}]}",
             NULL)) {
        return -1;
    }
    double deadline = mono_s() + 10;
    while (mono_s() < deadline) {
        cJSON *r = NULL;
        if (call("DescribeTable", "{\"TableName\":\"" TABLE "\"}", &r)) {
            return -1;
        }
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(r, "Table"), "TableStatus");
        int active = cJSON_IsString(st) && strcmp(st->valuestring, "ACTIVE") == 0;
        cJSON_Delete(r);
        if (active) {
            return 0;
        }
        sleep_ms(50);
    }
    fprintf(stderr, "test_store: table " TABLE " never became ACTIVE\n");
    return -1;
}

static int group_teardown(void **state)
{
    st_aws_client_free(emu.client);
    emu.client = NULL;
    stop_emulator();
    return curl_group_teardown(state);
}

static int group_setup(void **state)
{
    if (curl_group_setup(state) != 0) {
        return -1;
    }
    /* Static credentials through the variables the chain reads first; dynalite checks the
     * Authorization header's form, not the signature. */
    setenv("AWS_ACCESS_KEY_ID", "AKIDSTAMPEDETEST", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "stampede-test-secret", 1);
    unsetenv("AWS_SESSION_TOKEN");
    if (start_emulator() != 0) {
        curl_group_teardown(state);
        return -1;
    }
    if (new_client(emu.endpoint, &emu.client) != 0 || create_table() != 0) {
        group_teardown(state);
        return -1;
    }
    return 0;
}

/* ---- messages and what the table holds ---- */

static int64_t fixed_now(void *ctx)
{
    return *(const int64_t *)ctx;
}

/* The real world except for the wall clock, which reads *now. */
static st_aws_sys clock_at(int64_t *now)
{
    st_aws_sys s = st_aws_sys_real;
    s.now_s = fixed_now;
    s.ctx = now;
    return s;
}

static void store_init(st_sink_store *s, const char *table, int ttl_days, const st_aws_sys *sys)
{
    memset(s, 0, sizeof(*s));
    s->ddb.client = emu.client;
    s->ddb.table = table;
    s->ddb.rounds = 3;
    s->ddb.backoff.max_attempts = 3;
    s->ddb.backoff.base_delay_ms = 1;
    s->ddb.backoff.max_delay_ms = 5;
    s->ttl_days = ttl_days;
    s->sys = sys;
}

static void fill(st_stats *s, uint32_t second, uint64_t sent)
{
    st_stats_reset(s);
    s->second = second;
    s->c.sent = sent;
    s->c.ok = sent - 3;
    s->c.http_5xx = 2;
    s->c.err_timeout = 1;
    s->c.bytes_in = 123456789012ULL;
    s->c.bytes_out = sent * 200;
    s->c.inflight = 4;
    for (uint64_t v = 1; v <= sent; v++) {
        st_hist_record(s->lat, v * 997 + second);
        st_hist_record(s->lat_raw, v * 13);
    }
}

/* A second's message; the caller frees it. stats (may be NULL) receives what was encoded. */
static char *second_body(const char *run, uint32_t second, uint64_t sent, st_stats *keep)
{
    st_stats s;
    assert_int_equal(st_stats_init(&s), 0);
    fill(&s, second, sent);
    char *json = NULL;
    char id[ST_RESULT_ID_MAX + 1];
    assert_int_equal(st_result_encode_second(run, &s, 250.0, 248.5, 3, &json, id), 0);
    if (keep) {
        *keep = s;
    } else {
        st_stats_fini(&s);
    }
    return json;
}

static int collect(void *ctx, const cJSON *item)
{
    cJSON *copy = cJSON_Duplicate(item, 1);
    if (!copy) {
        return ST_ENOMEM;
    }
    cJSON_AddItemToArray(ctx, copy);
    return 0;
}

/* Every item of run, in sort-key order, as a new array. */
static cJSON *items_of(const char *run)
{
    cJSON *arr = cJSON_CreateArray();
    st_aws_error err;
    int rc = st_ddb_query(emu.client, TABLE, "testId", run, collect, arr, &err);
    if (rc) {
        print_message("query %s: %s\n", run, err.message);
    }
    assert_int_equal(rc, 0);
    return arr;
}

/* items_of(run), which must hold n items. */
static cJSON *items_of_n(const char *run, int n)
{
    cJSON *items = items_of(run);
    assert_int_equal(cJSON_GetArraySize(items), n);
    return items;
}

static const char *sk_of(const cJSON *item)
{
    const cJSON *s =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(item, "sk"), "S");
    return cJSON_IsString(s) ? s->valuestring : "";
}

/* The stored item is the second that was sent, with that ttl. */
static void assert_second_item(const cJSON *item, const char *run, const st_stats *sent,
                               int64_t ttl_want)
{
    st_result_msg m;
    int64_t ttl = 0;
    char why[256] = "";
    int rc = st_result_item_parse(item, &m, &ttl, why, sizeof(why));
    if (rc) {
        print_message("item does not parse: %s\n", why);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(m.kind, ST_RESULT_SECOND);
    assert_string_equal(m.run_id, run);
    assert_int_equal(m.second, sent->second);
    assert_int_equal(m.agents, 3);
    assert_true(m.target_rps == 250.0 && m.achieved_rps == 248.5);
    assert_memory_equal(&m.stats.c, &sent->c, sizeof(sent->c));
    assert_hist_percentiles_equal(m.stats.lat, sent->lat, 3);
    assert_hist_percentiles_equal(m.stats.lat_raw, sent->lat_raw, 3);
    assert_int_equal(ttl, ttl_want);
    st_result_msg_fini(&m);
}

/* run has one item: the second that was sent, with that ttl. */
static void assert_only_second(const char *run, const st_stats *sent, int64_t ttl)
{
    cJSON *items = items_of_n(run, 1);
    assert_second_item(cJSON_GetArrayItem(items, 0), run, sent, ttl);
    cJSON_Delete(items);
}

/* A store whose wall clock reads x->now (a test may move it), starting at now. */
typedef struct store_fx {
    int64_t now;
    st_aws_sys sys;
    st_sink_store s;
} store_fx;

static st_sink_store *store_open(store_fx *x, const char *table, int ttl_days, int64_t now)
{
    x->now = now;
    x->sys = clock_at(&x->now);
    store_init(&x->s, table, ttl_days, &x->sys);
    return &x->s;
}

/* What the store counted: messages written, invalid, and failed. */
static void expect_counts(const st_sink_store *s, uint64_t written, uint64_t invalid,
                          uint64_t failed)
{
    assert_int_equal(s->written, written);
    assert_int_equal(s->invalid, invalid);
    assert_int_equal(s->failed, failed);
}

/* ---- tests ---- */

static void test_store_second_and_summary_written(void **state)
{
    (void)state;
    store_fx x;
    st_sink_store *s = store_open(&x, TABLE, 30, NOW_S);

    st_stats sent;
    char *second = second_body("store-ok", 7, 120, &sent);
    cJSON *summary =
        cJSON_Parse("{\"run_id\":\"store-ok\",\"counts\":{\"sent\":120,\"ok\":117},"
                    "\"latency_us\":{\"p50\":5000.5,\"p99\":90000},\"name\":\"caf\\u00e9\","
                    "\"targets\":[\"http://127.0.0.1:1/\",null,true,false,[],{}]}");
    assert_non_null(summary);
    char *summary_json = NULL;
    char id[ST_RESULT_ID_MAX + 1];
    assert_int_equal(st_result_encode_summary("store-ok", summary, &summary_json, id), 0);

    st_sink_record recs[] = {
        {.message_id = "m-second", .body = second},
        {.message_id = "m-summary", .body = summary_json, .receive_count = 1},
    };
    st_aws_error err;
    assert_int_equal(st_sink_store_records(s, recs, 2, &err), 0);
    assert_int_equal(recs[0].outcome, ST_SINK_WRITTEN);
    assert_int_equal(recs[1].outcome, ST_SINK_WRITTEN);
    expect_counts(s, 2, 0, 0);

    /* Nothing to do is not an error and changes nothing. */
    assert_int_equal(st_sink_store_records(s, recs, 0, &err), 0);
    assert_int_equal(s->written, 2);

    cJSON *items = items_of_n("store-ok", 2);
    const cJSON *it_second = cJSON_GetArrayItem(items, 0);
    const cJSON *it_summary = cJSON_GetArrayItem(items, 1);
    assert_string_equal(sk_of(it_second), "second#000007");
    assert_string_equal(sk_of(it_summary), "summary");
    int64_t ttl_want = NOW_S + 30 * 86400;
    assert_second_item(it_second, "store-ok", &sent, ttl_want);

    st_result_msg m;
    int64_t ttl = 0;
    assert_int_equal(st_result_item_parse(it_summary, &m, &ttl, NULL, 0), 0);
    assert_int_equal(m.kind, ST_RESULT_SUMMARY);
    assert_string_equal(m.run_id, "store-ok");
    assert_true(cJSON_Compare(m.summary, summary, 1));
    assert_int_equal(ttl, ttl_want);
    st_result_msg_fini(&m);

    cJSON_Delete(items);
    cJSON_Delete(summary);
    free(summary_json);
    free(second);
    st_stats_fini(&sent);
}

static void test_store_invalid_not_written(void **state)
{
    (void)state;
    store_fx x;
    st_sink_store *s = store_open(&x, TABLE, 30, NOW_S);

    /* Well-formed messages of run store-bad, each broken in one place. */
    char *good = second_body("store-bad", 1, 10, NULL);
    cJSON *doc = cJSON_Parse(good);
    assert_non_null(doc);
    cJSON_ReplaceItemInObject(doc, "schema", cJSON_CreateString("stampede.result/2"));
    char *wrong_schema = cJSON_PrintUnformatted(doc);
    cJSON_ReplaceItemInObject(doc, "schema", cJSON_CreateString(ST_RESULT_SCHEMA));
    cJSON_ReplaceItemInObject(doc, "kind", cJSON_CreateString("minute"));
    char *wrong_kind = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    char *valid = second_body("store-mixed", 2, 10, NULL);

    st_sink_record recs[] = {
        {.message_id = "m-wrong-schema", .body = wrong_schema, .receive_count = 2},
        {.message_id = "m-valid", .body = valid},
        {.message_id = "m-not-json", .body = "{\"schema\":"},
        {.message_id = "m-null", .body = NULL},
        {.message_id = "m-wrong-kind", .body = wrong_kind},
        {.message_id = NULL, .body = "[]"},
    };
    size_t n = sizeof(recs) / sizeof(recs[0]);
    st_aws_error err;
    assert_int_equal(st_sink_store_records(s, recs, n, &err), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(recs[i].outcome, i == 1 ? ST_SINK_WRITTEN : ST_SINK_INVALID);
    }
    expect_counts(s, 1, 5, 0);

    cJSON *bad = items_of("store-bad");
    assert_int_equal(cJSON_GetArraySize(bad), 0);
    cJSON *mixed = items_of("store-mixed");
    assert_int_equal(cJSON_GetArraySize(mixed), 1);
    assert_string_equal(sk_of(cJSON_GetArrayItem(mixed, 0)), "second#000002");

    /* Only invalid bodies: no call at all, and still no error. */
    assert_int_equal(st_sink_store_records(s, recs + 2, 2, &err), 0);
    assert_int_equal(s->invalid, 7);
    assert_int_equal(s->written, 1);

    cJSON_Delete(bad);
    cJSON_Delete(mixed);
    free(valid);
    free(wrong_kind);
    free(wrong_schema);
    free(good);
}

static void test_store_same_identity_one_item(void **state)
{
    (void)state;
    store_fx x;
    st_sink_store *s = store_open(&x, TABLE, 30, NOW_S);

    st_stats later;
    char *first = second_body("store-dup", 5, 40, NULL);
    char *other = second_body("store-dup", 6, 50, NULL);
    char *again = second_body("store-dup", 5, 60, &later);
    /* DynamoDB refuses a batch that names one key twice: the store must merge them. */
    st_sink_record recs[] = {
        {.message_id = "m-5a", .body = first},
        {.message_id = "m-6", .body = other},
        {.message_id = "m-5b", .body = again},
    };
    st_aws_error err;
    int rc = st_sink_store_records(s, recs, 3, &err);
    if (rc) {
        print_message("%s\n", err.message);
    }
    assert_int_equal(rc, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(recs[i].outcome, ST_SINK_WRITTEN);
    }
    assert_int_equal(s->written, 3);

    cJSON *items = items_of_n("store-dup", 2);
    assert_string_equal(sk_of(cJSON_GetArrayItem(items, 0)), "second#000005");
    assert_string_equal(sk_of(cJSON_GetArrayItem(items, 1)), "second#000006");
    /* The later copy is the one kept. */
    assert_second_item(cJSON_GetArrayItem(items, 0), "store-dup", &later, NOW_S + 30 * 86400);

    cJSON_Delete(items);
    free(again);
    free(other);
    free(first);
    st_stats_fini(&later);
}

static void test_store_ttl_from_clock(void **state)
{
    (void)state;
    store_fx x;
    st_sink_store *s = store_open(&x, TABLE, 7, NOW_S + 12345);
    st_stats sent;
    char *body = second_body("store-ttl", 0, 5, &sent);
    st_sink_record rec = {.message_id = "m-ttl", .body = body};
    st_aws_error err;
    assert_int_equal(st_sink_store_records(s, &rec, 1, &err), 0);
    assert_only_second("store-ttl", &sent, x.now + 7 * 86400);

    /* Delivered again a day later: the same item, rewritten with a later ttl. */
    x.now += 86400;
    s->ttl_days = 90;
    assert_int_equal(st_sink_store_records(s, &rec, 1, &err), 0);
    assert_int_equal(rec.outcome, ST_SINK_WRITTEN);
    assert_int_equal(s->written, 2);
    assert_only_second("store-ttl", &sent, x.now + 90 * 86400);
    free(body);
    st_stats_fini(&sent);
}

static void test_store_more_than_one_batch(void **state)
{
    (void)state;
    store_fx x;
    st_sink_store *s = store_open(&x, TABLE, 30, NOW_S);
    enum { N = 31 }; /* BatchWriteItem takes 25 at most */
    char *bodies[N];
    st_sink_record recs[N];
    for (uint32_t i = 0; i < N; i++) {
        bodies[i] = second_body("store-many", N - 1 - i, 3 + i, NULL);
        recs[i] = (st_sink_record){.message_id = "m", .body = bodies[i]};
    }
    st_aws_error err;
    assert_int_equal(st_sink_store_records(s, recs, N, &err), 0);
    assert_int_equal(s->written, N);
    cJSON *items = items_of_n("store-many", N);
    for (int i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof(want), "second#%06d", i);
        assert_string_equal(sk_of(cJSON_GetArrayItem(items, i)), want);
        assert_int_equal(recs[i].outcome, ST_SINK_WRITTEN);
    }
    cJSON_Delete(items);
    for (int i = 0; i < N; i++) {
        free(bodies[i]);
    }
}

static void test_store_missing_table_fails(void **state)
{
    (void)state;
    store_fx x;
    st_sink_store *s = store_open(&x, "no-such-table", 30, NOW_S);
    char *a = second_body("store-lost", 1, 10, NULL);
    char *b = second_body("store-lost", 2, 10, NULL);
    st_sink_record recs[] = {
        {.message_id = "m-1", .body = a},
        {.message_id = "m-bad", .body = "not json"},
        {.message_id = "m-2", .body = b},
    };
    st_aws_error err;
    int rc = st_sink_store_records(s, recs, 3, &err);
    print_message("%s\n", err.message);
    assert_int_equal(rc, ST_ENOTFOUND);
    assert_int_equal(err.code, ST_ENOTFOUND);
    assert_int_equal(err.http_status, 400);
    assert_string_equal(err.aws_code, "ResourceNotFoundException");
    assert_non_null(strstr(err.message, "DynamoDB BatchWriteItem"));
    assert_int_equal(recs[0].outcome, ST_SINK_FAILED);
    assert_int_equal(recs[1].outcome, ST_SINK_INVALID);
    assert_int_equal(recs[2].outcome, ST_SINK_FAILED);
    expect_counts(s, 0, 1, 2);

    /* The same records into the real table go through: the table was the only fault. */
    s->ddb.table = TABLE;
    assert_int_equal(st_sink_store_records(s, recs, 3, &err), 0);
    assert_int_equal(recs[0].outcome, ST_SINK_WRITTEN);
    assert_int_equal(recs[2].outcome, ST_SINK_WRITTEN);
    expect_counts(s, 2, 2, 2);
    cJSON *items = items_of_n("store-lost", 2);
    cJSON_Delete(items);
    free(b);
    free(a);
}

/* Runs last: it stops the emulator. */
static void test_store_emulator_stopped_fails(void **state)
{
    (void)state;
    store_fx x;
    st_sink_store *s = store_open(&x, TABLE, 30, NOW_S);
    char *a = second_body("store-down", 1, 10, NULL);
    st_sink_record recs[] = {
        {.message_id = "m-1", .body = a},
        {.message_id = "m-bad", .body = "{}"},
    };
    stop_emulator();
    assert_false(port_open(emu.port));
    st_aws_error err;
    double t0 = mono_s();
    int rc = st_sink_store_records(s, recs, 2, &err);
    print_message("%s (%d attempts)\n", err.message, err.attempts);
    assert_int_equal(rc, ST_ECONNECT);
    assert_int_equal(err.code, ST_ECONNECT);
    assert_int_equal(err.attempts, 2); /* the client's max_attempts */
    assert_true(mono_s() - t0 < 10);
    assert_int_equal(recs[0].outcome, ST_SINK_FAILED);
    assert_int_equal(recs[1].outcome, ST_SINK_INVALID);
    expect_counts(s, 0, 1, 1);
    free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_second_and_summary_written),
        cmocka_unit_test(test_store_invalid_not_written),
        cmocka_unit_test(test_store_same_identity_one_item),
        cmocka_unit_test(test_store_ttl_from_clock),
        cmocka_unit_test(test_store_more_than_one_batch),
        cmocka_unit_test(test_store_missing_table_fails),
        cmocka_unit_test(test_store_emulator_stopped_fails),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
