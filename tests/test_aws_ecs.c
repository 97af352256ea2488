/*
 * aws/ecs.h and aws/taskmeta.h against tests/integration/fake_ecs.py, a fake ECS endpoint that
 * checks every request's SigV4 signature with botocore and its body against botocore's ECS model,
 * and starts one real process per task: st-ecs-probe (tests/ecs_probe.c), which reads its task
 * metadata with aws/taskmeta.h from the fake's per-task endpoint and writes what it read into a
 * folder of this test. The fake runs on a loopback port for the whole group, is reset before each
 * test, and is stopped at the end (it kills the processes it started; they die with it too).
 * Faults are scripted through the fake's control paths and counted in what it recorded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ecs.h"
#include "error.h"
#include "fetch.h"
#include "taskmeta.h"

#define KEY_ID      "AKIDSTAMPEDETEST"
#define SECRET      "stampede-test-secret-never-printed"
#define CLUSTER     "stampede"
#define STOP_REASON "stampede run 20261202T000000Z-test ended"

static struct {
    pid_t pid;
    char endpoint[64];
    char probe_dir[256];
    st_aws_client *client;
} fx;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the fake ---- */

static void stop_fake(void)
{
    if (fx.pid <= 0) {
        return;
    }
    kill(fx.pid, SIGTERM);
    for (int i = 0; i < 250 && waitpid(fx.pid, NULL, WNOHANG) == 0; i++) {
        nap_ms(20);
    }
    if (kill(fx.pid, 0) == 0) {
        kill(fx.pid, SIGKILL);
        waitpid(fx.pid, NULL, 0);
    }
    fx.pid = 0;
}

/* Starts fake_ecs.py and reads "fake-ecs ready PORT" from its stdout. */
static int start_fake(void)
{
    int fds[2];
    if (pipe(fds) != 0) {
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(1);
        }
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execl("/usr/bin/python3", "python3", ST_FAKE_ECS, "--agent-cmd", ST_ECS_PROBE,
              "--provision-ms", "100", "--pending-ms", "100", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    fx.pid = pid;
    FILE *in = fdopen(fds[0], "r");
    char line[128] = "";
    int port = 0;
    if (!in || !fgets(line, sizeof(line), in) || sscanf(line, "fake-ecs ready %d", &port) != 1) {
        fprintf(stderr,
                "test_aws_ecs: %s did not start (needs Debian's python3-botocore: "
                "scripts/deps.sh's test packages)\n",
                ST_FAKE_ECS);
        if (in) {
            fclose(in);
        }
        stop_fake();
        return -1;
    }
    fclose(in);
    snprintf(fx.endpoint, sizeof(fx.endpoint), "http://127.0.0.1:%d", port);
    return 0;
}

/* POSTs body to the fake's control path; returns the HTTP status. */
static long control(const char *path, const char *body)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", fx.endpoint, path);
    st_fetch_req req = {.method = "POST",
                        .url = url,
                        .body = body,
                        .body_len = body ? strlen(body) : 0,
                        .timeout_ms = 10000};
    st_fetch_resp resp = {0};
    long status = st_fetch(&req, &resp) == 0 ? resp.status : 0;
    st_fetch_resp_fini(&resp);
    return status;
}

static void faults(const char *json)
{
    assert_int_equal(control("/__fake/faults", json), 200);
}

/* What the fake recorded: {"requests": [...], "launched": N, "tasks": [...]}. */
static cJSON *fake_state(void)
{
    char url[256];
    snprintf(url, sizeof(url), "%s/__fake/state", fx.endpoint);
    st_fetch_req req = {.method = "GET", .url = url, .timeout_ms = 10000};
    st_fetch_resp resp = {0};
    assert_int_equal(st_fetch(&req, &resp), 0);
    assert_int_equal(resp.status, 200);
    cJSON *j = cJSON_Parse(resp.body);
    st_fetch_resp_fini(&resp);
    assert_non_null(j);
    return j;
}

/* Requests of operation op the fake recorded; accepted_only counts those it answered 200. */
static int requests(const char *op, int accepted_only)
{
    cJSON *s = fake_state();
    int n = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(s, "requests"))
    {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(r, "op");
        if (cJSON_IsString(o) && strcmp(o->valuestring, op) == 0 &&
            (!accepted_only || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "accepted")))) {
            n++;
        }
    }
    cJSON_Delete(s);
    return n;
}

static int state_int(const char *name)
{
    cJSON *s = fake_state();
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, name);
    int n = cJSON_IsNumber(v) ? v->valueint : -1;
    cJSON_Delete(s);
    return n;
}

static int fake_tasks(void)
{
    cJSON *s = fake_state();
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(s, "tasks"));
    cJSON_Delete(s);
    return n;
}

static int new_client(const char *secret, st_aws_client **out)
{
    setenv("AWS_SECRET_ACCESS_KEY", secret, 1);
    st_aws_config cfg;
    st_aws_config_init(&cfg);
    cfg.region = "us-east-1";
    cfg.service_endpoint_url[ST_AWS_ECS] = fx.endpoint;
    cfg.retry.max_attempts = 4;
    cfg.retry.base_delay_ms = 2;
    cfg.retry.max_delay_ms = 10;
    cfg.timeout_ms = 10000;
    st_aws_error err;
    int rc = st_aws_client_new(out, &cfg, &err);
    if (rc) {
        fprintf(stderr, "test_aws_ecs: client: %s\n", err.message);
    }
    return rc;
}

static int group_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    setenv("AWS_ACCESS_KEY_ID", KEY_ID, 1);
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_ECS");
    snprintf(fx.probe_dir, sizeof(fx.probe_dir), "/tmp/st-ecs-probe-XXXXXX");
    if (!mkdtemp(fx.probe_dir) || start_fake() != 0) {
        return -1;
    }
    if (new_client(SECRET, &fx.client) != 0) {
        stop_fake();
        return -1;
    }
    return 0;
}

static void empty_probe_dir(void)
{
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -f '%s'/* '%s'/.tmp-*", fx.probe_dir, fx.probe_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_aws_ecs: could not empty %s\n", fx.probe_dir);
    }
}

static int group_teardown(void **state)
{
    (void)state;
    st_aws_client_free(fx.client);
    stop_fake();
    empty_probe_dir();
    rmdir(fx.probe_dir);
    curl_global_cleanup();
    return 0;
}

static int reset(void **state)
{
    (void)state;
    empty_probe_dir();
    return control("/__fake/reset", NULL) == 200 ? 0 : -1;
}

/* ---- requests ---- */

static const char *const subnets[] = {"subnet-0a1", "subnet-0b2"};
static const char *const groups[] = {"sg-0c3"};

typedef struct run_setup {
    st_ecs_kv env[4];
    st_ecs_kv tags[1];
    st_ecs_run_req req;
} run_setup;

static void run_init(run_setup *s, int count, const char *token)
{
    memset(s, 0, sizeof(*s));
    s->env[0] = (st_ecs_kv){"STAMPEDE_COORDINATOR", "tcp://10.0.9.9:7400"};
    s->env[1] = (st_ecs_kv){"STAMPEDE_TOKEN", "tok-123"};
    s->env[2] = (st_ecs_kv){"PROBE_DIR", fx.probe_dir};
    s->tags[0] = (st_ecs_kv){"stampede-run", "20261202T000000Z-test"};
    s->req = (st_ecs_run_req){
        .cluster = CLUSTER,
        .task_definition = "stampede-agent:3",
        .count = count,
        .subnets = subnets,
        .n_subnets = 2,
        .security_groups = groups,
        .n_security_groups = 1,
        .started_by = "stampede-test",
        .tags = s->tags,
        .n_tags = 1,
        .container = "agent",
        .env = s->env,
        .n_env = 3,
        .client_token = token,
    };
}

/* Scripts fault (a JSON list of the fake's rules; NULL for none), then runs count tasks with
 * token through s; returns st_ecs_run_task's result. */
static int run_scripted(const char *fault, run_setup *s, int count, const char *token,
                        st_ecs_tasks *t, st_aws_error *err)
{
    if (fault) {
        faults(fault);
    }
    run_init(s, count, token);
    return st_ecs_run_task(fx.client, &s->req, t, err);
}

static int all_in(const st_ecs_tasks *t, const char *status)
{
    for (size_t i = 0; i < t->n_tasks; i++) {
        if (!t->tasks[i].last_status || strcmp(t->tasks[i].last_status, status) != 0) {
            return 0;
        }
    }
    return 1;
}

/* Describes arns until every task is in status (or 15 s pass); the last answer in out. */
static void wait_status(char **arns, size_t n, const char *status, st_ecs_tasks *out)
{
    double deadline = now_s() + 15;
    st_aws_error err;
    for (;;) {
        int rc = st_ecs_describe_tasks(fx.client, CLUSTER, (const char *const *)arns, n, out, &err);
        assert_int_equal(rc, 0);
        assert_int_equal(out->n_tasks, n);
        if (all_in(out, status) || now_s() > deadline) {
            break;
        }
        st_ecs_tasks_fini(out);
        nap_ms(50);
    }
    assert_true(all_in(out, status));
}

static char **arns_of(const st_ecs_tasks *t)
{
    char **v = calloc(t->n_tasks + 1, sizeof(*v));
    assert_non_null(v);
    for (size_t i = 0; i < t->n_tasks; i++) {
        v[i] = strdup(t->tasks[i].arn);
    }
    return v;
}

/* The probe's file for a task ARN, read whole into buf; 0 when it is there. */
static int probe_output(const char *arn, char *buf, size_t len)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", fx.probe_dir, strrchr(arn, '/') + 1);
    double deadline = now_s() + 10;
    FILE *f;
    while (!(f = fopen(path, "r"))) {
        if (now_s() > deadline) {
            return -1;
        }
        nap_ms(20);
    }
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
    return 0;
}

/* ---- RunTask ---- */

/* 12 tasks in batches of 10 and 2: every one starts a process that read its own task metadata
 * (ARN, cluster, AZ, limits, address, clock bound) and got the environment overrides. */
static void test_aws_ecs_run_batches_start_real_processes(void **state)
{
    (void)state;
    static const int batch[] = {10, 2};
    st_ecs_tasks all = {0};
    char **arns = calloc(13, sizeof(*arns));
    size_t n = 0;
    for (int b = 0; b < 2; b++) {
        char token[64];
        snprintf(token, sizeof(token), "20261202T000000Z-test-b%d", b);
        run_setup s;
        run_init(&s, batch[b], token);
        st_aws_error err;
        assert_int_equal(st_ecs_run_task(fx.client, &s.req, &all, &err), 0);
        assert_int_equal(all.n_tasks, (size_t)batch[b]);
        assert_int_equal(all.n_failures, 0);
        for (size_t i = 0; i < all.n_tasks; i++) {
            assert_string_equal(all.tasks[i].last_status, "PROVISIONING");
            assert_non_null(all.tasks[i].availability_zone);
            arns[n++] = strdup(all.tasks[i].arn);
        }
        st_ecs_tasks_fini(&all);
    }
    assert_int_equal(requests("RunTask", 1), 2);
    st_ecs_tasks d;
    wait_status(arns, n, "RUNNING", &d);
    for (size_t i = 0; i < d.n_tasks; i++) {
        const st_ecs_task *t = &d.tasks[i];
        assert_string_equal(t->arn, arns[i]);
        assert_string_equal(t->desired_status, "RUNNING");
        assert_string_equal(t->started_by, "stampede-test");
        assert_int_equal(t->n_tags, 1);
        assert_string_equal(t->tags[0].value, "20261202T000000Z-test");
        assert_non_null(t->private_ipv4);
        char out[2048], want[600];
        assert_int_equal(probe_output(t->arn, out, sizeof(out)), 0);
        snprintf(want, sizeof(want), "arn=%s\n", t->arn);
        assert_non_null(strstr(out, want));
        snprintf(want, sizeof(want), "az=%s\n", t->availability_zone);
        assert_non_null(strstr(out, want));
        snprintf(want, sizeof(want), "ip=%s\n", t->private_ipv4);
        assert_non_null(strstr(out, want));
        assert_non_null(strstr(out, "cluster=arn:aws:ecs:us-east-1:123456789012:cluster/" CLUSTER));
        assert_non_null(strstr(out, "family=stampede-agent\nrevision=3\n"));
        assert_non_null(strstr(out, "cpu=1\nmemory=2048\n"));
        assert_non_null(strstr(out, "clock_error_bound=0.35\n"));
        assert_non_null(strstr(out, "token=tok-123\ncoordinator=tcp://10.0.9.9:7400\n"));
    }
    st_ecs_tasks_fini(&d);
    assert_int_equal(state_int("launched"), 12);
    st_ecs_strv_free(arns);
}

/* The answer to a RunTask is lost (HTTP 500 after the tasks started): the client's retry carries
 * the same clientToken and gets the same tasks; nothing is launched twice. */
static void test_aws_ecs_run_retry_is_idempotent(void **state)
{
    (void)state;
    run_setup s;
    st_ecs_tasks t = {0}, again = {0};
    st_aws_error err;
    assert_int_equal(run_scripted("[{\"kind\": \"lose_answer\", \"op\": \"RunTask\"}]", &s, 3,
                                  "run-1-batch-0", &t, &err),
                     0);
    assert_int_equal(err.attempts, 2);
    assert_int_equal(t.n_tasks, 3);
    assert_int_equal(requests("RunTask", 1), 2);
    assert_int_equal(fake_tasks(), 3);
    /* The caller retrying the batch itself: still the same three. */
    assert_int_equal(st_ecs_run_task(fx.client, &s.req, &again, &err), 0);
    assert_int_equal(again.n_tasks, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(again.tasks[i].arn, t.tasks[i].arn);
    }
    assert_int_equal(fake_tasks(), 3);
    st_ecs_tasks_fini(&again);
    /* The same token with other parameters is refused, and launches nothing. */
    s.req.count = 4;
    assert_int_equal(st_ecs_run_task(fx.client, &s.req, &again, &err), ST_EINVAL);
    assert_int_equal(st_ecs_error_kind(ST_EINVAL, &err), ST_ECS_INVALID);
    assert_int_equal(again.n_tasks, 0);
    assert_int_equal(fake_tasks(), 3);
    st_ecs_tasks_fini(&t);
}

static void test_aws_ecs_run_partial_failures(void **state)
{
    (void)state;
    run_setup s;
    st_ecs_tasks t = {0};
    st_aws_error err;
    assert_int_equal(run_scripted("[{\"kind\": \"fail\", \"count\": 2, \"reason\": "
                                  "\"RESOURCE:MEMORY\"}]",
                                  &s, 5, "run-2-batch-0", &t, &err),
                     0);
    assert_int_equal(t.n_tasks, 3);
    assert_int_equal(t.n_failures, 2);
    for (size_t i = 0; i < t.n_failures; i++) {
        assert_string_equal(t.failures[i].reason, "RESOURCE:MEMORY");
        assert_int_equal(t.failures[i].kind, ST_ECS_CAPACITY);
        assert_non_null(t.failures[i].arn);
    }
    assert_int_equal(fake_tasks(), 3);
    st_ecs_tasks_fini(&t);
}

static void test_aws_ecs_run_throttled_then_succeeds(void **state)
{
    (void)state;
    run_setup s;
    st_ecs_tasks t = {0};
    st_aws_error err;
    assert_int_equal(run_scripted("[{\"kind\": \"throttle\", \"op\": \"RunTask\", \"times\": 2}]",
                                  &s, 2, "run-3-batch-0", &t, &err),
                     0);
    assert_int_equal(err.attempts, 3);
    assert_int_equal(t.n_tasks, 2);
    assert_int_equal(requests("RunTask", 0), 3);
    assert_int_equal(requests("RunTask", 1), 1);
    st_ecs_tasks_fini(&t);

    /* Throttled on every try: ST_EAGAIN, shown as throttled, nothing started. */
    reset(NULL);
    faults("[{\"kind\": \"throttle\", \"op\": \"RunTask\", \"times\": 10}]");
    assert_int_equal(st_ecs_run_task(fx.client, &s.req, &t, &err), ST_EAGAIN);
    assert_int_equal(st_ecs_error_kind(ST_EAGAIN, &err), ST_ECS_THROTTLED);
    assert_string_equal(err.aws_code, "ThrottlingException");
    assert_int_equal(err.attempts, 4);
    assert_int_equal(fake_tasks(), 0);
}

static void test_aws_ecs_run_access_denied_names_action(void **state)
{
    (void)state;
    run_setup s;
    st_ecs_tasks t = {0};
    st_aws_error err;
    int rc = run_scripted("[{\"kind\": \"deny\", \"op\": \"RunTask\"}]", &s, 2, "run-4-batch-0", &t,
                          &err);
    assert_int_equal(rc, ST_EAUTH);
    assert_int_equal(st_ecs_error_kind(rc, &err), ST_ECS_ACCESS_DENIED);
    assert_int_equal(err.attempts, 1);
    char action[64];
    assert_int_equal(st_ecs_denied_action(err.message, action, sizeof(action)), 1);
    assert_string_equal(action, "ecs:RunTask");
    assert_non_null(strstr(err.message, "ECS RunTask: AccessDeniedException: "));
    assert_int_equal(t.n_tasks, 0);
    assert_int_equal(fake_tasks(), 0);
    assert_int_equal(st_ecs_denied_action("no action here", action, sizeof(action)), 0);
    assert_string_equal(action, "");
}

static void test_aws_ecs_run_invalid_network_and_cluster(void **state)
{
    (void)state;
    static const char *const bad_subnet[] = {"subnet-0a1", "subnet0b2"};
    run_setup s;
    run_init(&s, 1, "run-5-batch-0");
    s.req.subnets = bad_subnet;
    st_ecs_tasks t = {0};
    st_aws_error err;
    int rc = st_ecs_run_task(fx.client, &s.req, &t, &err);
    assert_int_equal(rc, ST_EINVAL);
    assert_int_equal(st_ecs_error_kind(rc, &err), ST_ECS_INVALID);
    assert_string_equal(err.aws_code, "InvalidParameterException");
    assert_non_null(strstr(err.message, "subnet0b2"));

    static const char *const bad_group[] = {"default"};
    run_init(&s, 1, "run-5-batch-1");
    s.req.security_groups = bad_group;
    rc = st_ecs_run_task(fx.client, &s.req, &t, &err);
    assert_int_equal(st_ecs_error_kind(rc, &err), ST_ECS_INVALID);
    assert_non_null(strstr(err.message, "security group"));

    run_init(&s, 1, "run-5-batch-2");
    s.req.cluster = "nope";
    rc = st_ecs_run_task(fx.client, &s.req, &t, &err);
    assert_int_equal(rc, ST_ENOTFOUND);
    assert_int_equal(st_ecs_error_kind(rc, &err), ST_ECS_NOT_FOUND);

    run_init(&s, 1, "run-5-batch-3");
    s.req.task_definition = "other-family";
    rc = st_ecs_run_task(fx.client, &s.req, &t, &err);
    assert_int_equal(rc, ST_EINVAL);
    assert_string_equal(err.aws_code, "ClientException");
    assert_int_equal(st_ecs_error_kind(rc, &err), ST_ECS_INVALID);
    assert_int_equal(fake_tasks(), 0);
}

/* Everything ECS would refuse that can be seen before sending is refused here, and nothing goes
 * out: overrides above 8,192 characters, a count above 10, bad client tokens. */
static void test_aws_ecs_run_refused_before_sending(void **state)
{
    (void)state;
    char big[8200];
    run_setup s;
    run_init(&s, 1, "run-6-batch-0");
    st_ecs_tasks t = {0};
    st_aws_error err;
    char why[256];

    /* Find the largest value that fits: the limit counts the overrides' JSON exactly. */
    size_t fits = 0;
    for (size_t len = 7800; len < sizeof(big); len++) {
        memset(big, 'x', len);
        big[len] = '\0';
        s.env[3] = (st_ecs_kv){"STAMPEDE_PLAN", big};
        s.req.n_env = 4;
        if (st_ecs_run_check(&s.req, why, sizeof(why)) != 0) {
            break;
        }
        fits = len;
    }
    assert_true(fits > 7800 && fits < 8192);
    cJSON *body = NULL;
    memset(big, 'x', fits);
    big[fits] = '\0';
    assert_int_equal(st_ecs_run_request(&s.req, 0, &body, why, sizeof(why)), 0);
    char *ov = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(body, "overrides"));
    assert_int_equal(strlen(ov), 8192);
    free(ov);
    cJSON_Delete(body);
    /* That one is accepted by the fake (which measures the same way) ... */
    assert_int_equal(st_ecs_run_task(fx.client, &s.req, &t, &err), 0);
    assert_int_equal(t.n_tasks, 1);
    st_ecs_tasks_fini(&t);
    /* ... one more character is refused before sending. */
    big[fits] = 'x';
    big[fits + 1] = '\0';
    s.req.client_token = "run-6-batch-1";
    assert_int_equal(st_ecs_run_task(fx.client, &s.req, &t, &err), ST_EINVAL);
    assert_non_null(strstr(err.message, "8193 characters"));
    assert_non_null(strstr(err.message, "8192"));
    assert_int_equal(st_ecs_error_kind(ST_EINVAL, &err), ST_ECS_INVALID);
    s.req.n_env = 3;

    s.req.count = 11;
    assert_int_equal(st_ecs_run_task(fx.client, &s.req, &t, &err), ST_EINVAL);
    assert_non_null(strstr(err.message, "count 11"));
    s.req.count = 0;
    assert_int_equal(st_ecs_run_check(&s.req, why, sizeof(why)), ST_EINVAL);
    s.req.count = 1;
    char token[80];
    memset(token, 'a', 65);
    token[65] = '\0';
    s.req.client_token = token;
    assert_int_equal(st_ecs_run_check(&s.req, why, sizeof(why)), ST_EINVAL);
    assert_non_null(strstr(why, "clientToken"));
    token[64] = '\0';
    assert_int_equal(st_ecs_run_check(&s.req, why, sizeof(why)), 0);
    s.req.client_token = "r\xc3\xa9sum\xc3\xa9";
    assert_int_equal(st_ecs_run_check(&s.req, why, sizeof(why)), ST_EINVAL);
    s.req.client_token = "";
    assert_int_equal(st_ecs_run_check(&s.req, why, sizeof(why)), ST_EINVAL);
    s.req.client_token = "ok";
    s.req.started_by = "has space";
    assert_int_equal(st_ecs_run_check(&s.req, why, sizeof(why)), ST_EINVAL);
    assert_non_null(strstr(why, "startedBy"));
    s.req.started_by = NULL;
    s.req.n_subnets = 0;
    assert_int_equal(st_ecs_run_check(&s.req, why, sizeof(why)), ST_EINVAL);
    assert_non_null(strstr(why, "subnets"));

    /* Only the one call that fitted reached the fake. */
    assert_int_equal(requests("RunTask", 0), 1);
}

/* FARGATE_SPOT without capacity: what failed for capacity is asked of FARGATE, with its own
 * token, and exactly the missing count. */
static void test_aws_ecs_run_spot_falls_back(void **state)
{
    (void)state;
    faults("[{\"kind\": \"spot_capacity\"}]");
    run_setup s;
    run_init(&s, 4, "run-7-batch-0");
    s.req.capacity = ST_ECS_SPOT_THEN_FARGATE;
    char why[256];
    assert_int_equal(st_ecs_run_check(&s.req, why, sizeof(why)), ST_EINVAL);
    s.req.fallback_client_token = "run-7-batch-0-fargate";
    st_ecs_tasks t = {0};
    st_aws_error err;
    assert_int_equal(st_ecs_run_task(fx.client, &s.req, &t, &err), 0);
    assert_int_equal(t.n_tasks, 4);
    assert_int_equal(t.n_failures, 0);
    assert_int_equal(requests("RunTask", 1), 2);
    cJSON *st = fake_state();
    const cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(st, "requests"), 0);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(r, "body");
    assert_null(cJSON_GetObjectItemCaseSensitive(b, "launchType"));
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(b, "capacityProviderStrategy"), 0),
            "capacityProvider")
            ->valuestring,
        "FARGATE_SPOT");
    r = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(st, "requests"), 1);
    b = cJSON_GetObjectItemCaseSensitive(r, "body");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(b, "launchType")->valuestring, "FARGATE");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(b, "clientToken")->valuestring,
                        "run-7-batch-0-fargate");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(b, "count")->valueint, 4);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(st, "tasks")), 4);
    cJSON_Delete(st);
    st_ecs_tasks_fini(&t);

    /* Plain FARGATE_SPOT keeps the failures for the caller. */
    reset(NULL);
    faults("[{\"kind\": \"spot_capacity\"}]");
    s.req.capacity = ST_ECS_FARGATE_SPOT;
    assert_int_equal(st_ecs_run_task(fx.client, &s.req, &t, &err), 0);
    assert_int_equal(t.n_tasks, 0);
    assert_int_equal(t.n_failures, 4);
    assert_int_equal(t.failures[0].kind, ST_ECS_CAPACITY);
    st_ecs_tasks_fini(&t);
}

/* ---- task lives ---- */

static void run_one(const char *token, st_ecs_tasks *t)
{
    run_setup s;
    st_aws_error err;
    assert_int_equal(run_scripted(NULL, &s, 1, token, t, &err), 0);
    assert_int_equal(t->n_tasks, 1);
}

static void test_aws_ecs_stop_task_kills_the_process(void **state)
{
    (void)state;
    st_ecs_tasks t = {0}, d;
    run_one("run-8-batch-0", &t);
    char **arns = arns_of(&t);
    wait_status(arns, 1, "RUNNING", &d);
    st_ecs_tasks_fini(&d);
    char out[2048];
    assert_int_equal(probe_output(arns[0], out, sizeof(out)), 0);
    st_ecs_task stopped;
    st_aws_error err;
    assert_int_equal(st_ecs_stop_task(fx.client, CLUSTER, arns[0], STOP_REASON, &stopped, &err), 0);
    assert_string_equal(stopped.desired_status, "STOPPED");
    assert_string_equal(stopped.stopped_reason, STOP_REASON);
    st_ecs_task_fini(&stopped);
    wait_status(arns, 1, "STOPPED", &d);
    assert_string_equal(d.tasks[0].stop_code, "UserInitiated");
    assert_string_equal(d.tasks[0].stopped_reason, STOP_REASON);
    assert_int_equal(d.tasks[0].n_containers, 1);
    assert_true(d.tasks[0].containers[0].has_exit_code);
    assert_int_equal(d.tasks[0].containers[0].exit_code, 128 + SIGTERM);
    st_ecs_tasks_fini(&d);

    /* A reason too long is refused before sending; an unknown task by ECS. */
    char longer[300];
    memset(longer, 'r', 256);
    longer[256] = '\0';
    assert_int_equal(st_ecs_stop_task(fx.client, CLUSTER, arns[0], longer, NULL, &err), ST_EINVAL);
    assert_int_equal(requests("StopTask", 0), 1);
    assert_int_equal(st_ecs_stop_task(fx.client, CLUSTER, "arn:aws:ecs:us-east-1:1:task/x/y",
                                      STOP_REASON, NULL, &err),
                     ST_EINVAL);
    assert_string_equal(err.aws_code, "InvalidParameterException");
    st_ecs_tasks_fini(&t);
    st_ecs_strv_free(arns);
}

/* A process that exits makes its task STOPPED with its exit code. */
static void test_aws_ecs_exited_process_stops_task(void **state)
{
    (void)state;
    run_setup s;
    run_init(&s, 1, "run-9-batch-0");
    s.env[3] = (st_ecs_kv){"PROBE_EXIT", "7"};
    s.req.n_env = 4;
    st_ecs_tasks t = {0}, d;
    st_aws_error err;
    assert_int_equal(st_ecs_run_task(fx.client, &s.req, &t, &err), 0);
    char **arns = arns_of(&t);
    wait_status(arns, 1, "STOPPED", &d);
    assert_string_equal(d.tasks[0].stop_code, "EssentialContainerExited");
    assert_int_equal(d.tasks[0].containers[0].exit_code, 7);
    assert_string_equal(d.tasks[0].containers[0].name, "agent");
    st_ecs_tasks_fini(&d);
    st_ecs_tasks_fini(&t);
    st_ecs_strv_free(arns);
}

static void test_aws_ecs_task_cannot_pull_image(void **state)
{
    (void)state;
    faults("[{\"kind\": \"pull_error\"}]");
    st_ecs_tasks t = {0}, d;
    run_one("run-10-batch-0", &t);
    char **arns = arns_of(&t);
    wait_status(arns, 1, "STOPPED", &d);
    assert_string_equal(d.tasks[0].stop_code, "TaskFailedToStart");
    assert_non_null(d.tasks[0].containers[0].reason);
    assert_memory_equal(d.tasks[0].containers[0].reason, "CannotPullContainerError", 24);
    assert_false(d.tasks[0].containers[0].has_exit_code);
    assert_int_equal(state_int("launched"), 0);
    st_ecs_tasks_fini(&d);
    st_ecs_tasks_fini(&t);
    st_ecs_strv_free(arns);
}

/* A task that runs but whose process never starts: RUNNING, and no probe output ever. */
static void test_aws_ecs_task_without_process(void **state)
{
    (void)state;
    faults("[{\"kind\": \"no_process\"}]");
    st_ecs_tasks t = {0}, d;
    run_one("run-11-batch-0", &t);
    char **arns = arns_of(&t);
    wait_status(arns, 1, "RUNNING", &d);
    nap_ms(300);
    assert_int_equal(state_int("launched"), 0);
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", fx.probe_dir, strrchr(arns[0], '/') + 1);
    assert_int_equal(access(path, F_OK), -1);
    st_ecs_tasks_fini(&d);
    st_ecs_tasks_fini(&t);
    st_ecs_strv_free(arns);
}

/* ---- DescribeTasks, ListTasks, DescribeTaskDefinition ---- */

/* 3 real tasks among 205 ARNs: calls of 100, 100 and 5; the unknown ones come back MISSING. */
static void test_aws_ecs_describe_chunks_by_100(void **state)
{
    (void)state;
    run_setup s;
    st_ecs_tasks t = {0}, d = {0};
    st_aws_error err;
    assert_int_equal(run_scripted("[{\"kind\": \"no_process\", \"times\": 3}]", &s, 3,
                                  "run-12-batch-0", &t, &err),
                     0);
    enum { N = 205 };
    char *arns[N];
    for (size_t i = 0; i < N; i++) {
        char buf[128];
        snprintf(buf, sizeof(buf), "arn:aws:ecs:us-east-1:123456789012:task/%s/missing%zu", CLUSTER,
                 i);
        arns[i] = strdup(i == 0     ? t.tasks[0].arn
                         : i == 150 ? t.tasks[1].arn
                         : i == 204 ? t.tasks[2].arn
                                    : buf);
    }
    assert_int_equal(
        st_ecs_describe_tasks(fx.client, CLUSTER, (const char *const *)arns, N, &d, &err), 0);
    assert_int_equal(d.n_tasks, 3);
    assert_int_equal(d.n_failures, N - 3);
    assert_string_equal(d.failures[0].reason, "MISSING");
    assert_int_equal(d.failures[0].kind, ST_ECS_NOT_FOUND);
    assert_int_equal(requests("DescribeTasks", 1), 3);
    assert_int_equal(requests("DescribeTasks", 0), 3);
    st_ecs_tasks_fini(&d);
    assert_int_equal(st_ecs_describe_tasks(fx.client, CLUSTER, NULL, 0, &d, &err), ST_EINVAL);
    /* Access denied on DescribeTasks names its action. */
    faults("[{\"kind\": \"deny\", \"op\": \"DescribeTasks\"}]");
    int rc = st_ecs_describe_tasks(fx.client, CLUSTER, (const char *const *)arns, N, &d, &err);
    assert_int_equal(st_ecs_error_kind(rc, &err), ST_ECS_ACCESS_DENIED);
    char action[64];
    assert_int_equal(st_ecs_denied_action(err.message, action, sizeof(action)), 1);
    assert_string_equal(action, "ecs:DescribeTasks");
    assert_int_equal(d.n_tasks, 0);
    for (size_t i = 0; i < N; i++) {
        free(arns[i]);
    }
    st_ecs_tasks_fini(&t);
}

static void test_aws_ecs_list_tasks_follows_pages(void **state)
{
    (void)state;
    faults("[{\"kind\": \"no_process\", \"times\": 9}, {\"kind\": \"list_page\", \"size\": 3}]");
    run_setup s;
    run_init(&s, 7, "run-13-batch-0");
    s.req.started_by = "runA";
    st_ecs_tasks a = {0}, b = {0};
    st_aws_error err;
    assert_int_equal(st_ecs_run_task(fx.client, &s.req, &a, &err), 0);
    run_init(&s, 2, "run-13-batch-1");
    s.req.started_by = "runB";
    assert_int_equal(st_ecs_run_task(fx.client, &s.req, &b, &err), 0);
    char **arns = NULL;
    size_t n = 0;
    assert_int_equal(st_ecs_list_tasks(fx.client, CLUSTER, "runA", NULL, &arns, &n, &err), 0);
    assert_int_equal(n, 7);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(arns[i], a.tasks[i].arn);
    }
    assert_null(arns[7]);
    assert_int_equal(requests("ListTasks", 1), 3);
    st_ecs_strv_free(arns);
    /* Stopped tasks leave the RUNNING list and join the STOPPED one. */
    assert_int_equal(st_ecs_stop_task(fx.client, CLUSTER, b.tasks[0].arn, STOP_REASON, NULL, &err),
                     0);
    assert_int_equal(st_ecs_list_tasks(fx.client, CLUSTER, "runB", "RUNNING", &arns, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(arns[0], b.tasks[1].arn);
    st_ecs_strv_free(arns);
    assert_int_equal(st_ecs_list_tasks(fx.client, CLUSTER, "runB", "STOPPED", &arns, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(arns[0], b.tasks[0].arn);
    st_ecs_strv_free(arns);
    assert_int_equal(st_ecs_list_tasks(fx.client, CLUSTER, "nobody", NULL, &arns, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(arns);
    assert_int_equal(st_ecs_list_tasks(fx.client, "nope", "runA", NULL, &arns, &n, &err),
                     ST_ENOTFOUND);
    faults("[{\"kind\": \"answer\", \"op\": \"ListTasks\", \"body\": "
           "{\"taskArns\": [\"a\", 7]}}]");
    arns = NULL;
    assert_int_equal(st_ecs_list_tasks(fx.client, CLUSTER, "runA", NULL, &arns, &n, &err),
                     ST_EPROTO);
    assert_non_null(strstr(err.message, "taskArns"));
    assert_null(arns);
    st_ecs_tasks_fini(&a);
    st_ecs_tasks_fini(&b);
}

static void test_aws_ecs_describe_task_definition(void **state)
{
    (void)state;
    st_ecs_taskdef d;
    st_aws_error err;
    assert_int_equal(st_ecs_describe_taskdef(fx.client, "stampede-agent", &d, &err), 0);
    assert_string_equal(d.family, "stampede-agent");
    assert_int_equal(d.revision, 3);
    assert_int_equal(d.cpu_units, 1024);
    assert_int_equal(d.memory_mib, 2048);
    assert_string_equal(d.network_mode, "awsvpc");
    assert_true(d.fargate);
    assert_int_equal(d.n_containers, 2);
    assert_string_equal(d.containers[0], "agent");
    assert_string_equal(d.containers[1], "log-router");
    assert_null(d.containers[2]);
    assert_string_equal(d.arn,
                        "arn:aws:ecs:us-east-1:123456789012:task-definition/stampede-agent:3");
    st_ecs_taskdef_fini(&d);
    int rc = st_ecs_describe_taskdef(fx.client, "stampede-agent:9", &d, &err);
    assert_int_equal(rc, ST_EINVAL);
    assert_int_equal(st_ecs_error_kind(rc, &err), ST_ECS_INVALID);
    assert_non_null(strstr(err.message, "ECS DescribeTaskDefinition: ClientException"));
    assert_null(d.family);
    st_ecs_taskdef_fini(&d);

    /* Answers that do not hold what ECS documents are refused, naming the field. */
    faults("[{\"kind\": \"answer\", \"op\": \"DescribeTaskDefinition\", \"body\": "
           "{\"taskDefinition\": {\"family\": \"f\", \"cpu\": \"lots\"}}}, "
           "{\"kind\": \"answer\", \"op\": \"DescribeTaskDefinition\", \"body\": {}}]");
    assert_int_equal(st_ecs_describe_taskdef(fx.client, "stampede-agent", &d, &err), ST_EPROTO);
    assert_non_null(strstr(err.message, "taskDefinition.cpu in the answer is not a positive"));
    assert_null(d.family);
    assert_int_equal(st_ecs_describe_taskdef(fx.client, "stampede-agent", &d, &err), ST_EPROTO);
    assert_non_null(strstr(err.message, "taskDefinition in the answer is missing"));
}

/* The fake checks signatures for real: another secret is refused, and the client says so. */
static void test_aws_ecs_bad_signature_refused(void **state)
{
    (void)state;
    st_aws_client *c = NULL;
    assert_int_equal(new_client("another-secret", &c), 0);
    st_ecs_taskdef d;
    st_aws_error err;
    int rc = st_ecs_describe_taskdef(c, "stampede-agent", &d, &err);
    assert_int_equal(rc, ST_EAUTH);
    assert_string_equal(err.aws_code, "InvalidSignatureException");
    assert_int_equal(st_ecs_error_kind(rc, &err), ST_ECS_AUTH);
    st_aws_client_free(c);
    setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
}

static void test_aws_ecs_kinds(void **state)
{
    (void)state;
    assert_int_equal(st_ecs_failure_kind("RESOURCE:CPU", NULL), ST_ECS_CAPACITY);
    assert_int_equal(st_ecs_failure_kind("MISSING", NULL), ST_ECS_NOT_FOUND);
    assert_int_equal(
        st_ecs_failure_kind("You've reached the limit on the number of tasks you can run "
                            "concurrently",
                            NULL),
        ST_ECS_QUOTA);
    assert_int_equal(st_ecs_failure_kind("AGENT", NULL), ST_ECS_OTHER);
    assert_int_equal(st_ecs_failure_kind(NULL, NULL), ST_ECS_OTHER);
    st_aws_error e = {0};
    snprintf(e.aws_code, sizeof(e.aws_code), "ServerException");
    e.http_status = 500;
    assert_int_equal(st_ecs_error_kind(ST_EREMOTE, &e), ST_ECS_UNAVAILABLE);
    assert_int_equal(st_ecs_error_kind(0, &e), ST_ECS_OK);
    assert_string_equal(st_ecs_kind_name(ST_ECS_ACCESS_DENIED), "access denied");
    /* The AWS client classifies ECS's own codes. */
    int retry;
    assert_int_equal(st_aws_classify(400, "ThrottlingException", &retry), ST_EAGAIN);
    assert_true(retry);
    assert_int_equal(st_aws_classify(400, "ClientException", &retry), ST_EINVAL);
    assert_false(retry);
    assert_int_equal(st_aws_classify(500, "ServerException", &retry), ST_EREMOTE);
    assert_true(retry);
}

/* ---- the task metadata client ---- */

#define META_OK                                                                                    \
    "{\"Cluster\":\"c\",\"TaskARN\":\"arn:aws:ecs:r:1:task/c/abc\",\"Family\":\"f\","              \
    "\"Revision\":\"2\",\"AvailabilityZone\":\"eu-west-1b\",\"Limits\":{\"CPU\":0.25,"             \
    "\"Memory\":512},\"Containers\":[{\"Name\":\"x\"},{\"Name\":\"agent\",\"Networks\":"           \
    "[{\"NetworkMode\":\"awsvpc\",\"IPv4Addresses\":[\"10.1.2.3\"]}]}]%s}"

static int parse_meta(const char *extra, st_taskmeta *m, char *why, size_t why_len)
{
    char text[2048];
    snprintf(text, sizeof(text), META_OK, extra);
    return st_taskmeta_parse(text, strlen(text), m, why, why_len);
}

static void test_taskmeta_parse(void **state)
{
    (void)state;
    st_taskmeta m;
    char why[256];
    assert_int_equal(parse_meta("", &m, why, sizeof(why)), 0);
    assert_string_equal(m.task_arn, "arn:aws:ecs:r:1:task/c/abc");
    assert_string_equal(m.revision, "2");
    assert_true(m.cpu_vcpus == 0.25);
    assert_int_equal(m.memory_mib, 512);
    assert_string_equal(m.ipv4, "10.1.2.3");
    assert_false(m.has_clock_error_bound);
    st_taskmeta_fini(&m);
    assert_int_equal(parse_meta(",\"ClockDrift\":{\"ClockErrorBound\":0}", &m, why, sizeof(why)),
                     0);
    assert_true(m.has_clock_error_bound);
    st_taskmeta_fini(&m);

    static const struct {
        const char *text;
        const char *why;
    } bad[] = {
        {"[]", "not a JSON object"},
        {"{\"TaskARN\":\"a\"", "not a JSON object"},
        {"{\"Cluster\":\"c\"}", "$.TaskARN: is missing"},
        {"{\"TaskARN\":7}", "$.TaskARN: must be a non-empty string"},
        {"{\"TaskARN\":\"a\",\"TaskARN\":\"b\"}", "TaskARN"},
        {"{\"TaskARN\":\"a\",\"Cluster\":\"c\",\"Family\":\"f\",\"Revision\":2}",
         "$.Revision: must be a non-empty string"},
        {"{\"TaskARN\":\"a\",\"Cluster\":\"c\",\"Family\":\"f\",\"Revision\":\"2\","
         "\"AvailabilityZone\":\"z\"}",
         "$.Limits: is missing"},
        {"{\"TaskARN\":\"a\",\"Cluster\":\"c\",\"Family\":\"f\",\"Revision\":\"2\","
         "\"AvailabilityZone\":\"z\",\"Limits\":{\"CPU\":\"1\",\"Memory\":5}}",
         "$.Limits.CPU: must be a positive number"},
        {"{\"TaskARN\":\"a\",\"Cluster\":\"c\",\"Family\":\"f\",\"Revision\":\"2\","
         "\"AvailabilityZone\":\"z\",\"Limits\":{\"CPU\":1,\"Memory\":5.5}}",
         "$.Limits.Memory: must be a whole number"},
        {"{\"TaskARN\":\"a\",\"Cluster\":\"c\",\"Family\":\"f\",\"Revision\":\"2\","
         "\"AvailabilityZone\":\"z\",\"Limits\":{\"CPU\":1,\"Memory\":5},\"Containers\":[]}",
         "no container has an IPv4 address"},
        {"{\"TaskARN\":\"a\",\"Cluster\":\"c\",\"Family\":\"f\",\"Revision\":\"2\","
         "\"AvailabilityZone\":\"z\",\"Limits\":{\"CPU\":1,\"Memory\":5},\"Containers\":[{"
         "\"Networks\":[{\"IPv4Addresses\":[\"10.0.0.256\"]}]}]}",
         "$.Containers[0].Networks[0].IPv4Addresses: must be a list of IPv4 addresses"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        assert_int_equal(st_taskmeta_parse(bad[i].text, strlen(bad[i].text), &m, why, sizeof(why)),
                         ST_EINVAL);
        if (!strstr(why, bad[i].why)) {
            fail_msg("case %zu: \"%s\" does not say \"%s\"", i, why, bad[i].why);
        }
        assert_null(m.task_arn);
    }
    assert_int_equal(parse_meta(",\"ClockDrift\":{\"ClockErrorBound\":-1}", &m, why, sizeof(why)),
                     ST_EINVAL);
    assert_non_null(strstr(why, "$.ClockDrift.ClockErrorBound: must be a non-negative number"));
    assert_int_equal(parse_meta(",\"ClockDrift\":5", &m, why, sizeof(why)), ST_EINVAL);
    assert_non_null(strstr(why, "$.ClockDrift: must be an object"));
    assert_int_equal(parse_meta("} x", &m, why, sizeof(why)), ST_EINVAL);
}

/* Against the fake's endpoint of a running task: its answer, then malformed ones it is told to
 * serve, then a path that does not exist, then no endpoint at all. */
static void test_taskmeta_get_from_fake(void **state)
{
    (void)state;
    st_ecs_tasks t = {0}, d;
    run_one("run-14-batch-0", &t);
    char **arns = arns_of(&t);
    wait_status(arns, 1, "RUNNING", &d);
    st_ecs_tasks_fini(&d);
    char out[2048];
    assert_int_equal(probe_output(arns[0], out, sizeof(out)), 0);
    cJSON *st = fake_state();
    const cJSON *task = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(st, "tasks"), 0);
    char base[256], path[128];
    snprintf(base, sizeof(base), "%s",
             cJSON_GetObjectItemCaseSensitive(task, "meta_url")->valuestring);
    snprintf(path, sizeof(path), "/__fake/metadata?task=%s",
             cJSON_GetObjectItemCaseSensitive(task, "id")->valuestring);
    cJSON_Delete(st);

    st_taskmeta m;
    char why[512];
    assert_int_equal(st_taskmeta_get(base, 0, &m, why, sizeof(why)), 0);
    assert_string_equal(m.task_arn, arns[0]);
    assert_int_equal(m.memory_mib, 2048);
    st_taskmeta_fini(&m);

    assert_int_equal(control(path, "{\"TaskARN\": \"x\"}"), 200);
    assert_int_equal(st_taskmeta_get(base, 0, &m, why, sizeof(why)), ST_EINVAL);
    assert_non_null(strstr(why, "$.Cluster: is missing"));
    assert_int_equal(control(path, "<html>oops</html>"), 200);
    assert_int_equal(st_taskmeta_get(base, 0, &m, why, sizeof(why)), ST_EINVAL);
    assert_non_null(strstr(why, "not a JSON object"));

    char other[300];
    snprintf(other, sizeof(other), "%s/nothing", base);
    assert_int_equal(st_taskmeta_get(other, 0, &m, why, sizeof(why)), ST_EREMOTE);
    assert_non_null(strstr(why, "HTTP 404"));

    /* After StopTask the endpoint is gone. */
    st_aws_error err;
    assert_int_equal(st_ecs_stop_task(fx.client, CLUSTER, arns[0], STOP_REASON, NULL, &err), 0);
    double deadline = now_s() + 5;
    int rc;
    while ((rc = st_taskmeta_get(base, 200, &m, why, sizeof(why))) != ST_ECONNECT &&
           now_s() < deadline) {
        st_taskmeta_fini(&m);
        nap_ms(20);
    }
    assert_int_equal(rc, ST_ECONNECT);

    unsetenv(ST_TASKMETA_ENV);
    assert_int_equal(st_taskmeta_get(NULL, 0, &m, why, sizeof(why)), ST_ENOTFOUND);
    assert_non_null(strstr(why, ST_TASKMETA_ENV));
    setenv(ST_TASKMETA_ENV, "ftp://x", 1);
    assert_int_equal(st_taskmeta_get(NULL, 0, &m, why, sizeof(why)), ST_EINVAL);
    unsetenv(ST_TASKMETA_ENV);
    st_ecs_tasks_fini(&t);
    st_ecs_strv_free(arns);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_aws_ecs_run_batches_start_real_processes, reset),
        cmocka_unit_test_setup(test_aws_ecs_run_retry_is_idempotent, reset),
        cmocka_unit_test_setup(test_aws_ecs_run_partial_failures, reset),
        cmocka_unit_test_setup(test_aws_ecs_run_throttled_then_succeeds, reset),
        cmocka_unit_test_setup(test_aws_ecs_run_access_denied_names_action, reset),
        cmocka_unit_test_setup(test_aws_ecs_run_invalid_network_and_cluster, reset),
        cmocka_unit_test_setup(test_aws_ecs_run_refused_before_sending, reset),
        cmocka_unit_test_setup(test_aws_ecs_run_spot_falls_back, reset),
        cmocka_unit_test_setup(test_aws_ecs_stop_task_kills_the_process, reset),
        cmocka_unit_test_setup(test_aws_ecs_exited_process_stops_task, reset),
        cmocka_unit_test_setup(test_aws_ecs_task_cannot_pull_image, reset),
        cmocka_unit_test_setup(test_aws_ecs_task_without_process, reset),
        cmocka_unit_test_setup(test_aws_ecs_describe_chunks_by_100, reset),
        cmocka_unit_test_setup(test_aws_ecs_list_tasks_follows_pages, reset),
        cmocka_unit_test_setup(test_aws_ecs_describe_task_definition, reset),
        cmocka_unit_test_setup(test_aws_ecs_bad_signature_refused, reset),
        cmocka_unit_test(test_aws_ecs_kinds),
        cmocka_unit_test(test_taskmeta_parse),
        cmocka_unit_test_setup(test_taskmeta_get_from_fake, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
