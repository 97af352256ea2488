#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "curl_group.h"

#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "aws.h"
#include "aws_creds.h"
#include "error.h"

/* ---- a fake outside world: environment table, scripted HTTP answers, fixed clock ---- */

typedef struct fake {
    const char *env[32];  /* name, value pairs */
    const char *urls[16]; /* requests seen, in order */
    int n_urls;
    char auth_seen[64];
    int64_t now;
    const char *container_body;
    long container_status;
    int imds_up;
} fake;

static const char *fake_getenv(void *ctx, const char *name)
{
    fake *f = ctx;
    for (int i = 0; f->env[i]; i += 2) {
        if (strcmp(f->env[i], name) == 0) {
            return f->env[i + 1];
        }
    }
    return NULL;
}

static char *dup_body(const char *s, size_t *len)
{
    *len = strlen(s);
    char *b = malloc(*len + 1);
    memcpy(b, s, *len + 1);
    return b;
}

static int fake_fetch(void *ctx, const st_fetch_req *req, st_fetch_resp *resp)
{
    fake *f = ctx;
    memset(resp, 0, sizeof(*resp));
    if (f->n_urls < 16) {
        f->urls[f->n_urls++] = strstr(req->url, "169.254.169.254") ? "imds" : req->url;
    }
    for (const char *const *h = req->headers; h && *h; h++) {
        if (strncmp(*h, "Authorization: ", 15) == 0) {
            snprintf(f->auth_seen, sizeof(f->auth_seen), "%s", *h + 15);
        }
    }
    if (strstr(req->url, "169.254.169.254")) {
        if (!f->imds_up) {
            return ST_ECONNECT;
        }
        resp->status = 200;
        if (strcmp(req->method, "PUT") == 0) {
            resp->body = dup_body("imds-token", &resp->body_len);
        } else if (strstr(req->url, "security-credentials/role-a")) {
            resp->body = dup_body("{\"Code\":\"Success\",\"AccessKeyId\":\"ASIAIMDS\","
                                  "\"SecretAccessKey\":\"s\",\"Token\":\"t\","
                                  "\"Expiration\":\"2030-01-01T00:00:00Z\"}",
                                  &resp->body_len);
        } else {
            resp->body = dup_body("role-a\n", &resp->body_len);
        }
        return 0;
    }
    resp->status = f->container_status ? f->container_status : 200;
    resp->body = dup_body(f->container_body ? f->container_body : "{}", &resp->body_len);
    return 0;
}

static int64_t fake_now(void *ctx)
{
    return ((fake *)ctx)->now;
}

static void fake_sleep(void *ctx, uint32_t ms)
{
    (void)ctx;
    (void)ms;
}

static uint64_t fake_random(void *ctx)
{
    (void)ctx;
    return 0;
}

static st_aws_sys sys_of(fake *f)
{
    st_aws_sys s = {fake_getenv, fake_fetch, fake_now, fake_sleep, fake_random, f};
    return s;
}

#define CONTAINER_OK                                                                               \
    "{\"AccessKeyId\":\"ASIACONT\",\"SecretAccessKey\":\"sec\",\"Token\":\"tok\","                 \
    "\"Expiration\":\"2030-01-01T00:00:00Z\"}"

static int get(fake *f, const st_aws_creds **c, char *err, size_t len)
{
    st_aws_sys sys = sys_of(f);
    static st_aws_creds_provider *p;
    st_aws_creds_provider_free(p);
    p = NULL;
    if (!f) {
        return 0;
    }
    assert_int_equal(st_aws_creds_provider_new(&p, &sys), 0);
    return st_aws_creds_get(p, c, err, len);
}

/* The credentials of f's world, which must be found (a failure shows why they were not). */
static const st_aws_creds *got(fake *f)
{
    const st_aws_creds *c = NULL;
    char err[512] = "";
    if (get(f, &c, err, sizeof(err)) != 0) {
        fail_msg("no credentials: %s", err);
    }
    return c;
}

static void test_aws_creds_environment_first(void **state)
{
    (void)state;
    fake f = {.env = {"AWS_ACCESS_KEY_ID", "AKIAENV", "AWS_SECRET_ACCESS_KEY", "x",
                      "AWS_SESSION_TOKEN", "tok", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                      "http://127.0.0.1:1/creds", NULL},
              .now = 1800000000,
              .imds_up = 1};
    const st_aws_creds *c = got(&f);
    assert_string_equal(c->source, "environment");
    assert_string_equal(c->access_key_id, "AKIAENV");
    assert_string_equal(c->session_token, "tok");
    assert_int_equal(f.n_urls, 0);
    get(NULL, NULL, NULL, 0);
}

static void test_aws_creds_container_relative_before_full(void **state)
{
    (void)state;
    fake f = {.env = {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc",
                      "AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/creds", NULL},
              .now = 1800000000,
              .container_body = CONTAINER_OK,
              .imds_up = 1};
    const st_aws_creds *c = got(&f);
    assert_string_equal(c->source, "container");
    assert_string_equal(c->access_key_id, "ASIACONT");
    assert_int_equal(f.n_urls, 1);
    assert_string_equal(f.urls[0], "http://169.254.170.2/v2/credentials/abc");
    get(NULL, NULL, NULL, 0);
}

static void test_aws_creds_container_full_uri_with_token(void **state)
{
    (void)state;
    fake f = {.env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://localhost:8080/creds",
                      "AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer abc", NULL},
              .now = 1800000000,
              .container_body = CONTAINER_OK};
    const st_aws_creds *c = got(&f);
    assert_string_equal(f.urls[0], "http://localhost:8080/creds");
    assert_string_equal(f.auth_seen, "Bearer abc");
    assert_int_equal(c->expires_at_s, 1893456000);
    get(NULL, NULL, NULL, 0);

    /* Plain http to a host on the network is refused. */
    fake g = {.env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.0.0.1/creds", NULL},
              .now = 1800000000};
    char err[512];
    assert_int_equal(get(&g, &c, err, sizeof(err)), ST_EAUTH);
    assert_non_null(strstr(err, "must be https"));
    assert_int_equal(g.n_urls, 0);
    get(NULL, NULL, NULL, 0);
}

static void test_aws_creds_imds_last(void **state)
{
    (void)state;
    fake f = {.env = {NULL}, .now = 1800000000, .imds_up = 1};
    const st_aws_creds *c = got(&f);
    assert_string_equal(c->source, "instance metadata");
    assert_string_equal(c->access_key_id, "ASIAIMDS");
    assert_int_equal(f.n_urls, 3); /* token, role name, role credentials */
    get(NULL, NULL, NULL, 0);

    fake off = {
        .env = {"AWS_EC2_METADATA_DISABLED", "true", NULL}, .now = 1800000000, .imds_up = 1};
    char err[512];
    assert_int_equal(get(&off, &c, err, sizeof(err)), ST_EAUTH);
    assert_int_equal(off.n_urls, 0);
    get(NULL, NULL, NULL, 0);
}

/* ---- a real HTTP server on 127.0.0.1 for the credential endpoints, one thread, scripted ---- */

typedef struct http_route {
    const char *method;
    const char *path;
    int status;
    const char *body;
} http_route;

typedef struct http_server {
    int fd;
    int port;
    atomic_int stop;
    pthread_t thread;
    const http_route *routes; /* ends with a NULL method; unmatched requests get 404 */
    atomic_int n_requests;
} http_server;

static void http_answer(http_server *s, int c)
{
    char req[8192];
    size_t len = 0;
    struct timeval tv = {.tv_sec = 2};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (len < sizeof(req) - 1) {
        ssize_t n = recv(c, req + len, sizeof(req) - 1 - len, 0);
        if (n <= 0) {
            return;
        }
        len += (size_t)n;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n")) {
            break;
        }
    }
    char method[16] = "", path[1024] = "";
    if (sscanf(req, "%15s %1023s", method, path) != 2) {
        return;
    }
    atomic_fetch_add(&s->n_requests, 1);
    int status = 404;
    const char *body = "";
    for (const http_route *r = s->routes; r->method; r++) {
        if (strcmp(r->method, method) == 0 && strcmp(r->path, path) == 0) {
            status = r->status;
            body = r->body;
            break;
        }
    }
    char head[256];
    int hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d Scripted\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      status, strlen(body));
    if (send(c, head, (size_t)hn, MSG_NOSIGNAL) == hn) {
        (void)send(c, body, strlen(body), MSG_NOSIGNAL);
    }
}

static void *http_serve(void *arg)
{
    http_server *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0) {
            continue;
        }
        int c = accept(s->fd, NULL, NULL);
        if (c < 0) {
            continue;
        }
        http_answer(s, c);
        close(c);
    }
    return NULL;
}

static void http_start(http_server *s, const http_route *routes)
{
    memset(s, 0, sizeof(*s));
    s->routes = routes;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->fd, 16), 0);
    socklen_t alen = sizeof(a);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &alen), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, http_serve, s), 0);
}

static void http_stop(http_server *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    close(s->fd);
}

/* Clears every AWS_ variable the chain reads, so that only what a test sets is seen. */
static void clear_aws_env(void)
{
    static const char *const names[] = {"AWS_ACCESS_KEY_ID",
                                        "AWS_SECRET_ACCESS_KEY",
                                        "AWS_SESSION_TOKEN",
                                        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                                        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                                        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                                        "AWS_EC2_METADATA_DISABLED",
                                        "AWS_EC2_METADATA_SERVICE_ENDPOINT"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        unsetenv(names[i]);
    }
}

/* The real chain (real environment, libcurl, clock) against the loopback server. */
static int get_real(const st_aws_creds **c, char *err, size_t len)
{
    static st_aws_creds_provider *p;
    st_aws_creds_provider_free(p);
    p = NULL;
    if (!c) {
        return 0;
    }
    assert_int_equal(st_aws_creds_provider_new(&p, NULL), 0);
    return st_aws_creds_get(p, c, err, len);
}

/* Both credential endpoints on one server: the container paths and the IMDSv2 ones. */
static const http_route cred_routes[] = {
    {"GET", "/creds/401", 401, "{\"message\":\"no\"}"},
    {"GET", "/creds/403", 403, "{\"message\":\"no\"}"},
    {"GET", "/creds/500", 500, "{\"message\":\"down\"}"},
    {"GET", "/creds/ok", 200, CONTAINER_OK},
    {"PUT", "/latest/api/token", 200, "imds-token"},
    {"GET", "/latest/meta-data/iam/security-credentials/", 200, "role-a\n"},
    {"GET", "/latest/meta-data/iam/security-credentials/role-a", 403, "Forbidden"},
    {NULL, NULL, 0, NULL},
};

static int cred_server_setup(void **state)
{
    static http_server srv;
    http_start(&srv, cred_routes);
    clear_aws_env();
    *state = &srv;
    return 0;
}

/* Runs after a failed assertion too: nothing outlives the test. */
static int cred_server_teardown(void **state)
{
    get_real(NULL, NULL, 0);
    clear_aws_env();
    http_stop(*state);
    return 0;
}

static void test_aws_creds_container_refused_is_auth(void **state)
{
    http_server *srv = *state;
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Bearer wrong", 1);
    const st_aws_creds *c;
    char url[128], err[512], want[32];
    static const struct {
        const char *path;
        int status;
        int code;
    } cases[] = {
        {"/creds/401", 401, ST_EAUTH},
        {"/creds/403", 403, ST_EAUTH},
        /* Refused for another reason: not the credentials' fault. */
        {"/creds/500", 500, ST_EREMOTE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", srv->port, cases[i].path);
        setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
        err[0] = '\0';
        int rc = get_real(&c, err, sizeof(err));
        print_message("%s -> %s: %s\n", cases[i].path, st_strerror(rc), err);
        assert_int_equal(rc, cases[i].code);
        snprintf(want, sizeof(want), "answered HTTP %d", cases[i].status);
        assert_non_null(strstr(err, want));
        assert_non_null(strstr(err, "container credentials endpoint"));
        assert_null(strstr(err, "Bearer wrong"));
    }
    /* The same server and chain hand out credentials when the endpoint agrees. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/creds/ok", srv->port);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
    assert_int_equal(get_real(&c, err, sizeof(err)), 0);
    assert_string_equal(c->access_key_id, "ASIACONT");
    assert_int_equal(atomic_load(&srv->n_requests), 4);
}

static void test_aws_creds_imds_refused_is_auth(void **state)
{
    http_server *srv = *state;
    char base[64], err[512];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", srv->port);
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", base, 1);
    const st_aws_creds *c;
    int rc = get_real(&c, err, sizeof(err));
    print_message("IMDS role credentials 403 -> %s: %s\n", st_strerror(rc), err);
    assert_int_equal(rc, ST_EAUTH);
    assert_non_null(strstr(err, "instance metadata service"));
    assert_non_null(strstr(err, "answered HTTP 403"));
    assert_int_equal(atomic_load(&srv->n_requests), 3); /* token, role name, role credentials */
}

static void test_aws_creds_missing_and_half_set(void **state)
{
    (void)state;
    fake none = {.env = {NULL}, .now = 1800000000, .imds_up = 0};
    const st_aws_creds *c;
    char err[512];
    assert_int_equal(get(&none, &c, err, sizeof(err)), ST_EAUTH);
    assert_non_null(strstr(err, "no AWS credentials found"));
    assert_null(strstr(err, "AKIA"));
    get(NULL, NULL, NULL, 0);

    fake half = {.env = {"AWS_ACCESS_KEY_ID", "AKIAHALF", NULL}, .now = 1800000000};
    assert_int_equal(get(&half, &c, err, sizeof(err)), ST_EAUTH);
    assert_string_equal(err, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set "
                             "both, or neither to use a role");
    get(NULL, NULL, NULL, 0);
}

static void test_aws_creds_expired_and_refresh(void **state)
{
    (void)state;
    fake f = {.env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/creds", NULL},
              .now = 1900000000,
              .container_body = CONTAINER_OK};
    const st_aws_creds *c;
    char err[512];
    /* 2030-01-01 is before now: expired credentials are an error, and no secret is shown. */
    assert_int_equal(get(&f, &c, err, sizeof(err)), ST_EAUTH);
    assert_non_null(strstr(err, "expired at 2030-01-01T00:00:00Z"));
    assert_null(strstr(err, "sec"));
    get(NULL, NULL, NULL, 0);

    /* Valid for 10 more minutes: used now, fetched again once inside the 5-minute window. */
    st_aws_sys sys = sys_of(&f);
    st_aws_creds_provider *p;
    f.now = 1893456000 - 600;
    f.n_urls = 0;
    assert_int_equal(st_aws_creds_provider_new(&p, &sys), 0);
    assert_int_equal(st_aws_creds_get(p, &c, err, sizeof(err)), 0);
    assert_int_equal(st_aws_creds_get(p, &c, err, sizeof(err)), 0);
    assert_int_equal(f.n_urls, 1);
    f.now += 400;
    assert_int_equal(st_aws_creds_get(p, &c, err, sizeof(err)), 0);
    assert_int_equal(f.n_urls, 2);
    /* A failing refresh keeps the still-valid credentials. */
    f.container_status = 500;
    f.now += 20;
    assert_int_equal(st_aws_creds_get(p, &c, err, sizeof(err)), 0);
    assert_string_equal(c->access_key_id, "ASIACONT");
    st_aws_creds_provider_free(p);
}

static void test_aws_iso8601(void **state)
{
    (void)state;
    int64_t t;
    assert_int_equal(st_aws_parse_iso8601("1970-01-01T00:00:00Z", &t), 0);
    assert_int_equal(t, 0);
    assert_int_equal(st_aws_parse_iso8601("2024-02-29T12:34:56.789Z", &t), 0);
    assert_int_equal(t, 1709210096);
    assert_int_equal(st_aws_parse_iso8601("2024-02-29T14:34:56+02:00", &t), 0);
    assert_int_equal(t, 1709210096);
    assert_int_equal(st_aws_parse_iso8601("2024-02-29 12:34:56", &t), ST_EINVAL);
    assert_int_equal(st_aws_parse_iso8601("tomorrow", &t), ST_EINVAL);
}

static void test_aws_backoff_schedule(void **state)
{
    (void)state;
    st_aws_retry r = {.max_attempts = 8, .base_delay_ms = 100, .max_delay_ms = 1000};
    /* With the smallest random draw: half of the cap; with the largest: the cap itself. */
    const uint32_t low[] = {50, 100, 200, 400, 500, 500, 500};
    const uint32_t high[] = {100, 200, 400, 800, 1000, 1000, 1000};
    for (int i = 0; i < 7; i++) {
        assert_int_equal(st_aws_backoff_ms(&r, i, 0), low[i]);
        uint64_t span = high[i] - low[i] + 1;
        assert_int_equal(st_aws_backoff_ms(&r, i, span - 1), high[i]);
        assert_int_equal(st_aws_backoff_ms(&r, i, span), low[i]);
    }
    for (uint64_t x = 0; x < 5000; x += 7) {
        uint32_t d = st_aws_backoff_ms(&r, 3, x * 2654435761u);
        assert_true(d >= 400 && d <= 800);
    }
    assert_int_equal(st_aws_backoff_ms(&r, 60, 0), 500);
}

static void test_aws_classify(void **state)
{
    (void)state;
    int retry;
    assert_int_equal(st_aws_classify(400, "ProvisionedThroughputExceededException", &retry),
                     ST_EAGAIN);
    assert_true(retry);
    assert_int_equal(st_aws_classify(400, "ThrottlingException", &retry), ST_EAGAIN);
    assert_true(retry);
    assert_int_equal(st_aws_classify(503, "", &retry), ST_EREMOTE);
    assert_true(retry);
    assert_int_equal(st_aws_classify(429, NULL, &retry), ST_EAGAIN);
    assert_true(retry);
    assert_int_equal(st_aws_classify(400, "ExpiredTokenException", &retry), ST_EAUTH);
    assert_false(retry);
    assert_int_equal(st_aws_classify(403, "", &retry), ST_EAUTH);
    assert_int_equal(st_aws_classify(400, "QueueDoesNotExist", &retry), ST_ENOTFOUND);
    assert_int_equal(st_aws_classify(400, "ResourceNotFoundException", &retry), ST_ENOTFOUND);
    assert_int_equal(st_aws_classify(400, "ValidationException", &retry), ST_EINVAL);
    assert_false(retry);
    assert_int_equal(st_aws_classify(400, "SomethingNew", &retry), ST_EREMOTE);
    assert_false(retry);
}

static void test_aws_endpoint_resolution(void **state)
{
    (void)state;
    fake f = {.env = {"AWS_ENDPOINT_URL", "http://all:1", "AWS_ENDPOINT_URL_DYNAMODB",
                      "http://ddb:2/", NULL}};
    st_aws_sys sys = sys_of(&f);
    st_aws_config cfg;
    st_aws_config_init(&cfg);
    cfg.sys = &sys;
    char out[256];
    const char *why = NULL;
    assert_int_equal(
        st_aws_resolve_endpoint(&cfg, ST_AWS_DYNAMODB, "eu-west-1", out, sizeof(out), &why), 0);
    assert_string_equal(out, "http://ddb:2");
    assert_int_equal(st_aws_resolve_endpoint(&cfg, ST_AWS_SQS, "eu-west-1", out, sizeof(out), &why),
                     0);
    assert_string_equal(out, "http://all:1");
    cfg.endpoint_url = "http://flag:3";
    assert_int_equal(
        st_aws_resolve_endpoint(&cfg, ST_AWS_DYNAMODB, "eu-west-1", out, sizeof(out), &why), 0);
    assert_string_equal(out, "http://flag:3");
    cfg.service_endpoint_url[ST_AWS_DYNAMODB] = "http://only-ddb:4";
    assert_int_equal(
        st_aws_resolve_endpoint(&cfg, ST_AWS_DYNAMODB, "eu-west-1", out, sizeof(out), &why), 0);
    assert_string_equal(out, "http://only-ddb:4");
    assert_int_equal(st_aws_resolve_endpoint(&cfg, ST_AWS_SQS, "eu-west-1", out, sizeof(out), &why),
                     0);
    assert_string_equal(out, "http://flag:3");

    /* Nothing configured: SQS follows the queue URL, others the regional default. */
    fake empty = {.env = {NULL}};
    st_aws_sys esys = sys_of(&empty);
    st_aws_config_init(&cfg);
    cfg.sys = &esys;
    cfg.sqs_queue_url = "http://127.0.0.1:4566/000000000000/q";
    assert_int_equal(st_aws_resolve_endpoint(&cfg, ST_AWS_SQS, "eu-west-1", out, sizeof(out), &why),
                     0);
    assert_string_equal(out, "http://127.0.0.1:4566");
    assert_int_equal(
        st_aws_resolve_endpoint(&cfg, ST_AWS_DYNAMODB, "eu-west-1", out, sizeof(out), &why), 0);
    assert_string_equal(out, "https://dynamodb.eu-west-1.amazonaws.com");
    assert_int_equal(
        st_aws_resolve_endpoint(&cfg, ST_AWS_ECS, "cn-north-1", out, sizeof(out), &why), 0);
    assert_string_equal(out, "https://ecs.cn-north-1.amazonaws.com.cn");
    cfg.endpoint_url = "ftp://nope";
    assert_int_equal(st_aws_resolve_endpoint(&cfg, ST_AWS_SQS, "eu-west-1", out, sizeof(out), &why),
                     ST_EINVAL);
    assert_string_equal(why, "--endpoint-url");
}

static void test_aws_client_region(void **state)
{
    (void)state;
    fake f = {.env = {"AWS_DEFAULT_REGION", "eu-central-1", NULL}};
    st_aws_sys sys = sys_of(&f);
    st_aws_config cfg;
    st_aws_config_init(&cfg);
    cfg.sys = &sys;
    st_aws_client *c = NULL;
    st_aws_error err;
    assert_int_equal(st_aws_client_new(&c, &cfg, &err), 0);
    assert_string_equal(st_aws_client_region(c), "eu-central-1");
    assert_string_equal(st_aws_client_endpoint(c, ST_AWS_SQS),
                        "https://sqs.eu-central-1.amazonaws.com");
    st_aws_client_free(c);

    fake g = {.env = {NULL}};
    st_aws_sys gsys = sys_of(&g);
    cfg.sys = &gsys;
    assert_int_equal(st_aws_client_new(&c, &cfg, &err), ST_EINVAL);
    assert_string_equal(err.message, "no AWS region: pass --region or set AWS_REGION");
    cfg.sqs_queue_url = "https://sqs.ap-south-1.amazonaws.com/123456789012/q";
    assert_int_equal(st_aws_client_new(&c, &cfg, &err), 0);
    assert_string_equal(st_aws_client_region(c), "ap-south-1");
    st_aws_client_free(c);
    cfg.region = "eu west";
    assert_int_equal(st_aws_client_new(&c, &cfg, &err), ST_EINVAL);
}

static void test_aws_call_missing_credentials(void **state)
{
    (void)state;
    fake f = {.env = {"AWS_REGION", "eu-west-1", NULL}, .imds_up = 0};
    st_aws_sys sys = sys_of(&f);
    st_aws_config cfg;
    st_aws_config_init(&cfg);
    cfg.sys = &sys;
    st_aws_client *c = NULL;
    assert_int_equal(st_aws_client_new(&c, &cfg, NULL), 0);
    cJSON *req = cJSON_CreateObject();
    cJSON *reply = NULL;
    st_aws_error err;
    assert_int_equal(st_aws_call(c, ST_AWS_SQS, "SendMessageBatch", req, &reply, &err), ST_EAUTH);
    assert_null(reply);
    assert_non_null(strstr(err.message, "SQS SendMessageBatch: no AWS credentials found"));
    /* Cancelled before it starts. */
    atomic_int stop = 1;
    st_aws_client_set_cancel(c, &stop);
    assert_int_equal(st_aws_call(c, ST_AWS_SQS, "SendMessageBatch", req, &reply, &err), ST_ECLOSED);
    cJSON_Delete(req);
    st_aws_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aws_creds_environment_first),
        cmocka_unit_test(test_aws_creds_container_relative_before_full),
        cmocka_unit_test(test_aws_creds_container_full_uri_with_token),
        cmocka_unit_test(test_aws_creds_imds_last),
        cmocka_unit_test_setup_teardown(test_aws_creds_container_refused_is_auth, cred_server_setup,
                                        cred_server_teardown),
        cmocka_unit_test_setup_teardown(test_aws_creds_imds_refused_is_auth, cred_server_setup,
                                        cred_server_teardown),
        cmocka_unit_test(test_aws_creds_missing_and_half_set),
        cmocka_unit_test(test_aws_creds_expired_and_refresh),
        cmocka_unit_test(test_aws_iso8601),
        cmocka_unit_test(test_aws_backoff_schedule),
        cmocka_unit_test(test_aws_classify),
        cmocka_unit_test(test_aws_endpoint_resolution),
        cmocka_unit_test(test_aws_client_region),
        cmocka_unit_test(test_aws_call_missing_credentials),
    };
    return cmocka_run_group_tests(tests, curl_group_setup, curl_group_teardown);
}
