/*
 * Tests for the fast engine (agent/engine_fast.c) against the scripted HTTP server of srv.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"
#include "engine.h"
#include "error.h"
#include "srv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static st_request request(const char *method, const char *url)
{
    st_request q = {0};
    q.method = (char *)method;
    q.url = (char *)url;
    q.weight = 1;
    return q;
}

static void expect_ok(const st_result *res, int status, uint64_t bytes_in)
{
    assert_int_equal(res->kind, ST_RES_HTTP);
    assert_int_equal(res->status, status);
    assert_int_equal(res->bytes_in, bytes_in);
    assert_true(res->sent_ns > 0);
    assert_true(res->done_ns >= res->sent_ns);
}

/* Sends request req with tag and runs the loop until n_done reaches target (at most 5 s). */
static void send_until(run *r, size_t req, uint64_t tag, int target)
{
    assert_int_equal(run_send(r, req, tag), 0);
    run_until(r, target, 5);
}

/* The fast engine on its own loop, created for these n requests. */
static run *fast_run(const st_request *q, size_t n, int conns, int timeout_ms)
{
    run *r = run_new(&st_engine_fast);
    run_create(r, q, n, conns, timeout_ms);
    return r;
}

/* Nothing in flight, and this many connection slots free. */
static void expect_idle(run *r, int free_slots)
{
    assert_int_equal(st_engine_fast.inflight(r->e), 0);
    assert_int_equal(st_engine_fast.free_slots(r->e), free_slots);
}

/* cancel_all with one request in flight: it is reported at once, aborted with its tag, and never
 * again; then nothing is in flight and free_slots slots are free. */
static void cancel_the_one_in_flight(run *r, uint64_t tag, int free_slots)
{
    st_engine_fast.cancel_all(r->e);
    assert_int_equal(r->n_done, 1);
    assert_int_equal(r->res[0].kind, ST_RES_ABORTED);
    assert_int_equal(r->tags[0], tag);
    run_for(r, 0.05);
    assert_int_equal(r->n_done, 1);
    expect_idle(r, free_slots);
}

/* send_until, and the result it waited for is a 200 with the server's usual body. */
static void send_ok(run *r, size_t req, uint64_t tag, int target)
{
    send_until(r, req, tag, target);
    expect_ok(&r->res[target - 1], 200, OK_RESPONSE_LEN);
}

/* The server took this many requests on this many connections. */
static void expect_served(srv *s, int reqs, int conns)
{
    assert_int_equal(srv_get(s, &s->n_reqs), reqs);
    assert_int_equal(srv_get(s, &s->n_conns), conns);
}

/* url = http://<host>:<the server's port><path>. */
static void srv_url(char *url, size_t len, const char *host, const srv *s, const char *path)
{
    snprintf(url, len, "http://%s:%d%s", host, s->port, path);
}

/* A server and the fast engine for up to RIG_REQS requests to it, held in a test's state: the
 * test's teardown (rig_teardown) stops them whether or not the test got to its end. The rig holds
 * the requests, so they outlive the engine as its contract asks. */
#define RIG_REQS 3

typedef struct rig {
    srv *s;
    char url[RIG_REQS][64];
    st_request q[RIG_REQS];
    run *r;
} rig;

/* The rig's server alone, in mode on 127.0.0.1, for a test that then sets its requests. */
static srv *rig_serve(void **state, srv_mode mode)
{
    rig *g = calloc(1, sizeof(*g));
    assert_non_null(g);
    *state = g;
    g->s = srv_start(mode, AF_INET);
    return g->s;
}

/* Request i of the rig: method on path at its server by the name host (the caller may add
 * headers and a body). */
static st_request *rig_request_at(void **state, size_t i, const char *method, const char *host,
                                  const char *path)
{
    rig *g = *state;
    assert_true(i < RIG_REQS);
    srv_url(g->url[i], sizeof(g->url[i]), host, g->s, path);
    g->q[i] = request(method, g->url[i]);
    return &g->q[i];
}

static st_request *rig_request(void **state, size_t i, const char *method, const char *path)
{
    return rig_request_at(state, i, method, "127.0.0.1", path);
}

/* The rig's engine for its first n requests. */
static run *rig_run(void **state, size_t n, int conns, int timeout_ms)
{
    rig *g = *state;
    g->r = fast_run(g->q, n, conns, timeout_ms);
    return g->r;
}

/* A server in mode, and the engine with conns connections for a GET of path there. */
static run *rig_on(void **state, srv_mode mode, const char *path, int conns, int timeout_ms)
{
    rig_serve(state, mode);
    rig_request(state, 0, "GET", path);
    return rig_run(state, 1, conns, timeout_ms);
}

static srv *rig_srv(void **state)
{
    return ((rig *)*state)->s;
}

static int rig_teardown(void **state)
{
    rig *g = *state;
    if (g && g->r) {
        run_free(g->r);
    }
    if (g && g->s) {
        srv_stop(g->s);
    }
    free(g);
    return 0;
}

/* ---- tests ---- */

static void test_engine_fast_keepalive_many(void **state)
{
    run *r = rig_on(state, SRV_OK, "/x", 4, 5000);
    srv *s = rig_srv(state);
    const int total = 2000;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(run_send(r, 0, (uint64_t)i), 0);
    }
    r->resend = total - 4;
    run_until(r, total, 20);
    char expect_req[256];
    snprintf(expect_req, sizeof(expect_req),
             "GET /x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: stampede/" ST_VERSION "\r\n\r\n",
             s->port);
    for (int i = 0; i < total; i++) {
        expect_ok(&r->res[i], 200, OK_RESPONSE_LEN);
        assert_int_equal(r->res[i].bytes_out, strlen(expect_req));
    }
    expect_idle(r, 4);
    assert_int_equal(srv_get(s, &s->n_reqs), total);
    assert_true(srv_get(s, &s->n_conns) <= 4);
    assert_true(srv_get(s, &s->n_conns) >= 1);
    assert_string_equal(s->last_req, expect_req);
}

static void test_engine_fast_slots_and_inflight(void **state)
{
    run *r = rig_on(state, SRV_OK, "/", 3, 5000);
    srv *s = rig_srv(state);
    expect_idle(r, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(run_send(r, 0, (uint64_t)i), 0);
        assert_int_equal(st_engine_fast.free_slots(r->e), 2 - i);
        assert_int_equal(st_engine_fast.inflight(r->e), i + 1);
    }
    assert_int_equal(run_send(r, 0, 99), ST_EAGAIN);
    assert_int_equal(st_engine_fast.inflight(r->e), 3);
    assert_int_equal(run_send(r, 1, 99), ST_EINVAL); /* no such request */
    run_until(r, 3, 5);
    assert_int_equal(r->n_done, 3);
    /* The slot of a finished request is free inside its callback. */
    assert_int_equal(r->free_slots_in_done, 3);
    bool seen[3] = {false, false, false};
    for (int i = 0; i < 3; i++) {
        assert_true(r->tags[i] < 3);
        seen[r->tags[i]] = true;
    }
    assert_true(seen[0] && seen[1] && seen[2]);
    expect_idle(r, 3);
    /* Idle connections are reused: no new connection for the next round. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(run_send(r, 0, (uint64_t)i), 0);
    }
    run_until(r, 6, 5);
    assert_int_equal(srv_get(s, &s->n_conns), 3);
}

static void test_engine_fast_connection_close(void **state)
{
    run *r = rig_on(state, SRV_CLOSE, "/", 2, 5000);
    srv *s = rig_srv(state);
    assert_int_equal(run_send(r, 0, 0), 0);
    assert_int_equal(run_send(r, 0, 1), 0);
    r->resend = 48;
    run_until(r, 50, 10);
    for (int i = 0; i < 50; i++) {
        expect_ok(&r->res[i], 200,
                  strlen("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello"));
    }
    expect_served(s, 50, 50);
    /* Every connection was closed by the client after its response, never reused. */
    assert_int_equal(srv_wait(s, &s->peer_closed, 50), 50);
    assert_int_equal(srv_get(s, &s->after_close), 0);
    assert_int_equal(st_engine_fast.free_slots(r->e), 2);
}

static void test_engine_fast_idle_close_is_quiet(void **state)
{
    run *r = rig_on(state, SRV_IDLE_CLOSE, "/", 1, 5000);
    srv *s = rig_srv(state);
    send_ok(r, 0, 1, 1);
    /* The server closes the idle connection: nothing is reported, the slot stays free. */
    run_for(r, 0.1);
    assert_int_equal(r->n_done, 1);
    expect_idle(r, 1);
    send_ok(r, 0, 2, 2);
    expect_served(s, 2, 2);
}

static void test_engine_fast_retry_after_reused_close(void **state)
{
    run *r = rig_on(state, SRV_DROP_SECOND, "/", 1, 5000);
    srv *s = rig_srv(state);
    send_ok(r, 0, 1, 1);
    /* The second request goes out on the kept connection, the server closes it unanswered, and
     * the engine resends it on a new connection where it is answered. */
    send_ok(r, 0, 2, 2);
    assert_int_equal(r->tags[1], 2);
    expect_served(s, 3, 2);
}

static void test_engine_fast_retry_only_once(void **state)
{
    run *r = rig_on(state, SRV_DROP_AFTER_FIRST, "/", 1, 5000);
    srv *s = rig_srv(state);
    send_ok(r, 0, 1, 1);
    send_until(r, 0, 2, 2);
    assert_int_equal(r->res[1].kind, ST_RES_OTHER);
    assert_int_equal(r->res[1].status, 0);
    assert_int_equal(r->res[1].bytes_in, 0);
    /* First answer, the request on the reused connection, and one resend: no more. */
    assert_int_equal(srv_wait(s, &s->n_reqs, 3), 3);
    run_for(r, 0.05);
    assert_int_equal(srv_get(s, &s->n_reqs), 3);
    assert_int_equal(r->n_done, 2);
    assert_int_equal(st_engine_fast.free_slots(r->e), 1);
}

static void test_engine_fast_fresh_close_is_other(void **state)
{
    run *r = rig_on(state, SRV_SLAM, "/", 1, 5000);
    srv *s = rig_srv(state);
    send_until(r, 0, 1, 1);
    assert_int_equal(r->res[0].kind, ST_RES_OTHER);
    /* A new connection that dies is not retried. */
    assert_int_equal(srv_get(s, &s->n_conns), 1);
    assert_int_equal(st_engine_fast.free_slots(r->e), 1);
}

/* A port with a bound socket that does not listen: connects to it are refused. */
static int refused_port(int *hold)
{
    *hold = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(*hold >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(*hold, (struct sockaddr *)&a, len), 0);
    assert_int_equal(getsockname(*hold, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

/* A fast-engine run of one GET to such a port, with conns connection slots; *hold is the socket
 * that holds the port, which the caller closes. */
static run *refused_run(int conns, int *hold)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", refused_port(hold));
    st_request q = request("GET", url);
    return fast_run(&q, 1, conns, 5000);
}

static void test_engine_fast_connect_refused(void **state)
{
    (void)state;
    int hold;
    run *r = refused_run(2, &hold);
    assert_int_equal(run_send(r, 0, 7), 0);
    assert_int_equal(r->n_done, 0);
    /* Each failure's callback sends again: every one is reported later, from the loop. */
    r->resend = 19;
    run_until(r, 20, 5);
    assert_false(r->done_inside_send);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(r->res[i].kind, ST_RES_CONNECT);
        assert_int_equal(r->res[i].status, 0);
        assert_int_equal(r->res[i].bytes_out, 0);
        assert_true(r->res[i].done_ns >= r->res[i].sent_ns);
    }
    assert_int_equal(r->tags[0], 7);
    expect_idle(r, 2);
    run_free(r);
    close(hold);
}

static void test_engine_fast_connect_timeout(void **state)
{
    (void)state;
    /* A listener whose accept queue is full drops new SYNs, so a connect to it hangs. */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, len), 0);
    assert_int_equal(listen(lfd, 0), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    int fill[3];
    for (int i = 0; i < 3; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_true(fill[i] >= 0);
        (void)connect(fill[i], (struct sockaddr *)&a, len);
    }
    usleep(50000);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", ntohs(a.sin_port));
    st_request q = request("GET", url);
    run *r = fast_run(&q, 1, 1, 300);
    uint64_t t0 = st_clock_mono_ns();
    send_until(r, 0, 1, 1);
    assert_int_equal(r->res[0].kind, ST_RES_CONNECT);
    assert_int_equal(r->res[0].bytes_out, 0);
    uint64_t took_ms = (r->res[0].done_ns - t0) / ST_NS_PER_MS;
    assert_true(took_ms >= 300 && took_ms < 600);
    assert_int_equal(st_engine_fast.free_slots(r->e), 1);
    run_free(r);
    for (int i = 0; i < 3; i++) {
        close(fill[i]);
    }
    close(lfd);
}

static void test_engine_fast_timeout(void **state)
{
    run *r = rig_on(state, SRV_SILENT, "/", 2, 200);
    srv *s = rig_srv(state);
    /* The timeout runs from send(); sent_ns is later, once the new connection is up. */
    uint64_t t0 = st_clock_mono_ns();
    send_until(r, 0, 1, 1);
    assert_int_equal(r->res[0].kind, ST_RES_TIMEOUT);
    assert_true(r->res[0].sent_ns >= t0);
    uint64_t took_ms = (r->res[0].done_ns - t0) / ST_NS_PER_MS;
    assert_true(took_ms >= 200);
    assert_true(took_ms < 500);
    expect_idle(r, 2);
    /* The timed-out request's connection is closed. */
    assert_int_equal(srv_wait(s, &s->peer_closed, 1), 1);
}

static void test_engine_fast_endless_body_times_out(void **state)
{
    run *r = rig_on(state, SRV_ENDLESS, "/", 1, 300);
    uint64_t t0 = st_clock_mono_ns();
    send_until(r, 0, 1, 1);
    assert_int_equal(r->res[0].kind, ST_RES_TIMEOUT);
    assert_true(r->res[0].bytes_in > 1024);
    uint64_t took_ms = (r->res[0].done_ns - t0) / ST_NS_PER_MS;
    assert_true(took_ms >= 300 && took_ms < 600);
}

static void test_engine_fast_chunked(void **state)
{
    run *r = rig_on(state, SRV_CHUNKED, "/", 1, 5000);
    srv *s = rig_srv(state);
    send_until(r, 0, 1, 1);
    size_t len = strlen("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    expect_ok(&r->res[0], 200, len);
    send_until(r, 0, 2, 2);
    expect_ok(&r->res[1], 200, len);
    assert_int_equal(srv_get(s, &s->n_conns), 1);
}

static void test_engine_fast_head(void **state)
{
    srv *s = rig_serve(state, SRV_OK);
    rig_request(state, 0, "HEAD", "/");
    rig_request(state, 1, "GET", "/");
    run *r = rig_run(state, 2, 1, 1000);
    /* Content-Length: 1000 and no body: the engine must not wait for one. */
    send_until(r, 0, 1, 1);
    expect_ok(&r->res[0], 200, strlen("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"));
    send_ok(r, 1, 2, 2);
    assert_int_equal(srv_get(s, &s->n_conns), 1);
}

static void test_engine_fast_post_body(void **state)
{
    srv *s = rig_serve(state, SRV_OK);
    static char *headers[] = {"Host: example.test", "X-Test: yes", "content-length: 999",
                              "Transfer-Encoding: chunked"};
    static const char body[] = "name=stampede&x=1";
    st_request *q = rig_request(state, 0, "POST", "/submit?a=1");
    q->headers = headers;
    q->n_headers = 4;
    q->body = (char *)body;
    q->body_len = sizeof(body) - 1;
    run *r = rig_run(state, 1, 1, 5000);
    send_ok(r, 0, 1, 1);
    static const char want[] = "POST /submit?a=1 HTTP/1.1\r\nHost: example.test\r\n"
                               "User-Agent: stampede/" ST_VERSION "\r\nX-Test: yes\r\n"
                               "Content-Length: 17\r\n\r\nname=stampede&x=1";
    assert_string_equal(s->last_req, want);
    assert_int_equal(r->res[0].bytes_out, sizeof(want) - 1);
}

static void test_engine_fast_large_body(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_SLOW_READER, AF_INET);
    char url[64];
    srv_url(url, sizeof(url), "127.0.0.1", s, "/up");
    char *headers[] = {"User-Agent: mine/1"};
    const size_t n = 6 * 1024 * 1024;
    char *body = malloc(n);
    assert_non_null(body);
    for (size_t i = 0; i < n; i++) {
        body[i] = (char)('a' + i % 26);
    }
    st_request q[2] = {request("GET", url), request("PUT", url)};
    q[1].headers = headers;
    q[1].n_headers = 1;
    q[1].body = body;
    q[1].body_len = n;
    run *r = fast_run(q, 2, 1, 20000);
    /* Twice: on a new connection, then on the kept one (where no write watcher is armed yet).
     * Either way the body is more than the socket buffers hold against a slow reader, so the
     * engine must wait for the socket to become writable again. */
    char head[128];
    int hl = snprintf(head, sizeof(head),
                      "PUT /up HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: mine/1\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      s->port, n);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(run_send(r, 1, 1), 0);
        run_until(r, i + 1, 20);
        expect_ok(&r->res[i], 200, OK_RESPONSE_LEN);
        assert_int_equal(r->res[i].bytes_out, (size_t)hl + n);
        pthread_mutex_lock(&s->mu);
        assert_int_equal(s->last_req_len, (size_t)hl + n);
        assert_memory_equal(s->last_req, head, (size_t)hl);
        assert_memory_equal(s->last_req + hl, body, n);
        pthread_mutex_unlock(&s->mu);
    }
    assert_int_equal(srv_get(s, &s->n_conns), 1);
    run_free(r);
    free(body);
    srv_stop(s);
}

static void test_engine_fast_statuses(void **state)
{
    rig_serve(state, SRV_OK);
    rig_request(state, 0, "GET", "/status/404");
    rig_request(state, 1, "GET", "/status/503");
    run *r = rig_run(state, 2, 1, 5000);
    send_until(r, 0, 1, 1);
    send_until(r, 1, 2, 2);
    expect_ok(&r->res[0], 404, strlen("HTTP/1.1 404 OK\r\nContent-Length: 5\r\n\r\nhello"));
    expect_ok(&r->res[1], 503, strlen("HTTP/1.1 503 OK\r\nContent-Length: 5\r\n\r\nhello"));
}

/* 204 and 304 answers carry no body whatever their Content-Length says (RFC 9110): each is
 * complete at its headers, and the connection goes on to the next request. */
static void test_engine_fast_no_body_statuses(void **state)
{
    srv *s = rig_serve(state, SRV_OK);
    rig_request(state, 0, "GET", "/status/304");
    rig_request(state, 1, "GET", "/status/204");
    rig_request(state, 2, "GET", "/");
    run *r = rig_run(state, 3, 1, 1000);
    for (int i = 0; i < 3; i++) {
        send_until(r, (size_t)i, (uint64_t)i + 1, i + 1);
    }
    expect_ok(&r->res[0], 304, strlen("HTTP/1.1 304 OK\r\nContent-Length: 1000\r\n\r\n"));
    expect_ok(&r->res[1], 204, strlen("HTTP/1.1 204 OK\r\nContent-Length: 1000\r\n\r\n"));
    expect_ok(&r->res[2], 200, OK_RESPONSE_LEN);
    assert_int_equal(srv_get(s, &s->n_conns), 1);
}

/* One request against a server mode that must end in kind; returns the result. */
static st_result one_request(void **state, srv_mode mode, int timeout_ms)
{
    run *r = rig_on(state, mode, "/", 1, timeout_ms);
    send_until(r, 0, 1, 1);
    expect_idle(r, 1);
    return r->res[0];
}

static void test_engine_fast_malformed(void **state)
{
    st_result res = one_request(state, SRV_MALFORMED, 2000);
    assert_int_equal(res.kind, ST_RES_OTHER);
    assert_int_equal(res.status, 0);
    /* Reported when the bytes arrive, not at the timeout. */
    assert_true(res.done_ns - res.sent_ns < 1000 * ST_NS_PER_MS);
}

static void test_engine_fast_huge_header(void **state)
{
    st_result res = one_request(state, SRV_HUGE_HEADER, 2000);
    assert_int_equal(res.kind, ST_RES_OTHER);
    assert_true(res.done_ns - res.sent_ns < 1000 * ST_NS_PER_MS);
}

static void test_engine_fast_truncated_body(void **state)
{
    st_result res = one_request(state, SRV_TRUNCATED, 2000);
    assert_int_equal(res.kind, ST_RES_OTHER);
    assert_true(res.bytes_in > 0);
    assert_true(res.done_ns - res.sent_ns < 1000 * ST_NS_PER_MS);
}

static void test_engine_fast_body_until_close(void **state)
{
    st_result res = one_request(state, SRV_EOF_BODY, 2000);
    expect_ok(&res, 200, strlen("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"));
}

static void test_engine_fast_trailing_junk_closes(void **state)
{
    run *r = rig_on(state, SRV_TRAILING_JUNK, "/", 1, 5000);
    srv *s = rig_srv(state);
    /* The response counts; the junk after it is not read as the next response: the connection
     * is dropped and the next request gets a new one. */
    for (int i = 0; i < 2; i++) {
        send_until(r, 0, 1, i + 1);
        expect_ok(&r->res[i], 200, OK_RESPONSE_LEN);
    }
    assert_int_equal(srv_get(s, &s->n_conns), 2);
}

static void test_engine_fast_interim_response(void **state)
{
    st_result res = one_request(state, SRV_CONTINUE, 2000);
    expect_ok(&res, 200, strlen("HTTP/1.1 100 Continue\r\n\r\n") + OK_RESPONSE_LEN);
}

static void test_engine_fast_cancel_all(void **state)
{
    run *r = rig_on(state, SRV_SILENT, "/", 3, 5000);
    srv *s = rig_srv(state);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(run_send(r, 0, 10 + (uint64_t)i), 0);
    }
    assert_int_equal(run_send(r, 0, 99), ST_EAGAIN);
    for (int i = 0; i < 200 && srv_get(s, &s->n_reqs) < 3; i++) {
        run_for(r, 0.01);
    }
    assert_int_equal(srv_get(s, &s->n_reqs), 3);
    assert_int_equal(r->n_done, 0);
    st_engine_fast.cancel_all(r->e);
    assert_int_equal(r->n_done, 3);
    bool seen[3] = {false, false, false};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r->res[i].kind, ST_RES_ABORTED);
        assert_true(r->tags[i] >= 10 && r->tags[i] < 13);
        seen[r->tags[i] - 10] = true;
    }
    assert_true(seen[0] && seen[1] && seen[2]);
    expect_idle(r, 3);
    /* Nothing more is reported, and the server sees its connections closed. */
    run_for(r, 0.05);
    assert_int_equal(r->n_done, 3);
    assert_int_equal(srv_wait(s, &s->peer_closed, 3), 3);
}

static void test_engine_fast_cancel_while_connecting(void **state)
{
    (void)state;
    int hold;
    run *r = refused_run(1, &hold);
    assert_int_equal(run_send(r, 0, 5), 0);
    cancel_the_one_in_flight(r, 5, 1);
    run_free(r);
    close(hold);
}

/* Makes socket() fail with EMFILE until fd_limit_restore: a failure found inside send(). */
static struct rlimit fd_limit_saved;
static bool fd_limit_saved_ok;

static void fd_limit_squeeze(void)
{
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &fd_limit_saved), 0);
    fd_limit_saved_ok = true;
    int lowest = dup(0);
    assert_true(lowest >= 0);
    close(lowest);
    struct rlimit lim = {(rlim_t)lowest, fd_limit_saved.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
}

static void fd_limit_restore(void)
{
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &fd_limit_saved), 0);
}

/* Restores the limit even when the test failed while it was squeezed. */
static int fd_limit_teardown(void **state)
{
    (void)state;
    return !fd_limit_saved_ok || setrlimit(RLIMIT_NOFILE, &fd_limit_saved) == 0 ? 0 : -1;
}

static void test_engine_fast_failure_in_send_is_deferred(void **state)
{
    (void)state;
    st_request q = request("GET", "http://127.0.0.1:9/");
    run *r = fast_run(&q, 1, 2, 5000);
    fd_limit_squeeze();
    int rc = run_send(r, 0, 3);
    int done_now = r->n_done, inflight = st_engine_fast.inflight(r->e);
    int free_now = st_engine_fast.free_slots(r->e);
    /* The failures of the sends made from the callbacks are deferred the same way. */
    r->resend = 9;
    run_until(r, 10, 5);
    fd_limit_restore();
    assert_int_equal(rc, 0);
    assert_int_equal(done_now, 0);
    assert_int_equal(inflight, 1);
    assert_int_equal(free_now, 1);
    assert_false(r->done_inside_send);
    /* Out of descriptors is this machine's shortage, never the target refusing. */
    for (int i = 0; i < 10; i++) {
        assert_int_equal(r->res[i].kind, ST_RES_LOCAL);
    }
    assert_int_equal(r->tags[0], 3);
    expect_idle(r, 2);
    run_free(r);
}

static void test_engine_fast_cancel_deferred_failure(void **state)
{
    (void)state;
    st_request q = request("GET", "http://127.0.0.1:9/");
    run *r = fast_run(&q, 1, 2, 5000);
    fd_limit_squeeze();
    int rc = run_send(r, 0, 4);
    fd_limit_restore();
    assert_int_equal(rc, 0);
    assert_int_equal(r->n_done, 0);
    /* Not reported yet, so still in flight: cancel_all aborts it, and it is not reported again. */
    cancel_the_one_in_flight(r, 4, 2);
    run_free(r);
}

static void test_engine_fast_destroy_in_flight(void **state)
{
    run *r = rig_on(state, SRV_SILENT, "/", 2, 5000);
    assert_int_equal(run_send(r, 0, 1), 0);
    assert_int_equal(run_send(r, 0, 2), 0);
    run_for(r, 0.02);
    /* Dropped without a callback; run_free checks the loop is empty. */
}

static void test_engine_fast_ipv6(void **state)
{
    (void)state;
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = in6addr_loopback};
    if (probe < 0 || bind(probe, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (probe >= 0) {
            close(probe);
        }
        skip();
    }
    close(probe);
    srv *s = srv_start(SRV_OK, AF_INET6);
    char url[64];
    snprintf(url, sizeof(url), "http://[::1]:%d/six", s->port);
    st_request q = request("GET", url);
    run *r = fast_run(&q, 1, 1, 5000);
    send_ok(r, 0, 1, 1);
    char want[128];
    snprintf(want, sizeof(want),
             "GET /six HTTP/1.1\r\nHost: [::1]:%d\r\nUser-Agent: stampede/" ST_VERSION "\r\n\r\n",
             s->port);
    assert_string_equal(s->last_req, want);
    run_free(r);
    srv_stop(s);
}

static void test_engine_fast_localhost_name(void **state)
{
    rig_serve(state, SRV_OK);
    rig_request_at(state, 0, "GET", "localhost", "/");
    run *r = rig_run(state, 1, 1, 5000);
    /* If localhost also names ::1 (where nothing listens), the next address is tried. */
    send_ok(r, 0, 1, 1);
}

static int create_error(const st_request *q, size_t n, char *err, size_t err_len)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(loop);
    st_engine_cfg cfg = {.requests = q, .n_requests = n, .connections = 1, .timeout_ms = 1000};
    static char mark;
    st_engine *e = (st_engine *)&mark; /* must stay untouched on error */
    int rc = st_engine_fast.create(&e, loop, &cfg, run_on_done, NULL, err, err_len);
    assert_true(e == (st_engine *)&mark);
    assert_loop_empty(loop);
    ev_loop_destroy(loop);
    return rc;
}

static void test_engine_fast_create_errors(void **state)
{
    (void)state;
    char err[256];
    st_request q[2] = {request("GET", "ftp://127.0.0.1/"), request("GET", "http://a.test/")};
    assert_int_equal(create_error(q, 1, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "requests[0].url"));

    q[0] = request("GET", "http://127.0.0.1:1/");
    assert_int_equal(create_error(q, 2, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "requests[1].url"));

    char *bad[] = {"X-Bad\r\nInjected: 1"};
    q[0].headers = bad;
    q[0].n_headers = 1;
    assert_int_equal(create_error(q, 1, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "headers[0]"));

    q[0] = request("GE T", "http://127.0.0.1:1/");
    assert_int_equal(create_error(q, 1, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "method"));

    q[0] = request("GET", "http://no-such-host.invalid/");
    assert_int_equal(create_error(q, 1, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "no-such-host.invalid"));

    q[0] = request("GET", "http://127.0.0.1:1/");
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    st_engine_cfg cfg = {.requests = q, .n_requests = 1, .connections = 0, .timeout_ms = 1000};
    st_engine *e = NULL;
    assert_int_equal(st_engine_fast.create(&e, loop, &cfg, run_on_done, NULL, err, sizeof(err)),
                     ST_EINVAL);
    assert_null(e);
    ev_loop_destroy(loop);
    st_engine_fast.destroy(NULL);
}

/* With an io_loop the kernel stamps what the sockets receive: a response read long after it
 * arrived is timed by its arrival, and the engine says that reads may wait once a request is
 * written on a connected socket. The engine's timers go to a loop of their own here. */
static void test_engine_fast_late_read_keeps_the_arrival_time(void **state)
{
    rig_serve(state, SRV_OK);
    rig *g = *state;
    rig_request(state, 0, "GET", "/x");
    run *plain = fast_run(g->q, 1, 1, 5000);
    assert_false(st_engine_fast.reads_can_wait(plain->e));
    run_free(plain);

    struct ev_loop *timers = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(timers);
    run *r = g->r = run_new(&st_engine_fast);
    st_engine_cfg cfg = {
        .requests = g->q, .n_requests = 1, .connections = 1, .timeout_ms = 5000, .io_loop = r->loop};
    char err[256] = "";
    assert_int_equal(st_engine_fast.create(&r->e, timers, &cfg, run_on_done, r, err, sizeof(err)),
                     0);
    send_ok(r, 0, 1, 1); /* opens the connection */
    assert_true(st_engine_fast.reads_can_wait(r->e));

    assert_int_equal(run_send(r, 0, 2), 0); /* written at once on the kept connection */
    assert_true(st_engine_fast.reads_can_wait(r->e));
    const uint64_t pause_ns = 150 * ST_NS_PER_MS;
    struct timespec pause = {0, (long)pause_ns};
    nanosleep(&pause, NULL); /* the answer arrives meanwhile, and nobody reads it */
    uint64_t read_at = st_clock_mono_ns();
    run_until(r, 2, 5);
    const st_result *res = &r->res[1];
    expect_ok(res, 200, OK_RESPONSE_LEN);
    assert_true(read_at - res->sent_ns >= pause_ns);
    assert_true(res->done_ns < read_at);
    assert_true(res->done_ns - res->sent_ns < 100 * ST_NS_PER_MS);

    run_free(r);
    g->r = NULL;
    ev_loop_destroy(timers);
}

static void test_engine_fast_applies(void **state)
{
    (void)state;
    char why[256];
    st_request q[2] = {request("GET", "http://127.0.0.1:8080/a"),
                       request("POST", "http://127.0.0.1:8080/b")};
    st_plan p = {0};
    p.requests = q;
    p.n_requests = 2;
    p.http2 = -1;
    const char *proxies[] = {"http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i < 4; i++) {
        unsetenv(proxies[i]);
    }
    assert_int_equal(st_engine_fast.applies(&p, why, sizeof(why)), 1);

    p.http2 = 1;
    assert_int_equal(st_engine_fast.applies(&p, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "HTTP/2"));
    p.http2 = 0;
    assert_int_equal(st_engine_fast.applies(&p, why, sizeof(why)), 1);

    q[1] = request("GET", "https://127.0.0.1:8080/b");
    assert_int_equal(st_engine_fast.applies(&p, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "requests[1]"));

    q[1] = request("GET", "http://127.0.0.1:8081/b");
    assert_int_equal(st_engine_fast.applies(&p, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "origin"));

    q[1] = request("GET", "http://LOCALHOST:8080/b");
    q[0] = request("GET", "http://localhost:8080/a");
    assert_int_equal(st_engine_fast.applies(&p, why, sizeof(why)), 1);

    for (size_t i = 0; i < 4; i++) {
        setenv(proxies[i], "http://proxy.test:3128", 1);
        assert_int_equal(st_engine_fast.applies(&p, why, sizeof(why)), 0);
        assert_non_null(strstr(why, proxies[i]));
        unsetenv(proxies[i]);
    }
    assert_int_equal(st_engine_fast.applies(&p, NULL, 0), 1);
    p.n_requests = 0;
    assert_int_equal(st_engine_fast.applies(&p, NULL, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_engine_fast_keepalive_many, rig_teardown),
        cmocka_unit_test_teardown(test_engine_fast_slots_and_inflight, rig_teardown),
        cmocka_unit_test_teardown(test_engine_fast_connection_close, rig_teardown),
        cmocka_unit_test_teardown(test_engine_fast_idle_close_is_quiet, rig_teardown),
        cmocka_unit_test_teardown(test_engine_fast_retry_after_reused_close, rig_teardown),
        cmocka_unit_test_teardown(test_engine_fast_retry_only_once, rig_teardown),
        cmocka_unit_test_teardown(test_engine_fast_fresh_close_is_other, rig_teardown),
        cmocka_unit_test(test_engine_fast_connect_refused),
        cmocka_unit_test(test_engine_fast_connect_timeout),
        cmocka_unit_test_teardown(test_engine_fast_timeout, rig_teardown),
        cmocka_unit_test_teardown(test_engine_fast_endless_body_times_out, rig_teardown),
        cmocka_unit_test_teardown(test_engine_fast_chunked, rig_teardown),
        cmocka_unit_test_teardown(test_engine_fast_head, rig_teardown),
        cmocka_unit_test_teardown(test_engine_fast_post_body, rig_teardown),
        cmocka_unit_test(test_engine_fast_large_body),
        cmocka_unit_test_teardown(test_engine_fast_statuses, rig_teardown),
        cmocka_unit_test_teardown(test_engine_fast_no_body_statuses, rig_teardown),
        cmocka_unit_test_teardown(test_engine_fast_malformed, rig_teardown),
        cmocka_unit_test_teardown(test_engine_fast_huge_header, rig_teardown),
        cmocka_unit_test_teardown(test_engine_fast_truncated_body, rig_teardown),
        cmocka_unit_test_teardown(test_engine_fast_body_until_close, rig_teardown),
        cmocka_unit_test_teardown(test_engine_fast_trailing_junk_closes, rig_teardown),
        cmocka_unit_test_teardown(test_engine_fast_interim_response, rig_teardown),
        cmocka_unit_test_teardown(test_engine_fast_cancel_all, rig_teardown),
        cmocka_unit_test(test_engine_fast_cancel_while_connecting),
        cmocka_unit_test_teardown(test_engine_fast_failure_in_send_is_deferred, fd_limit_teardown),
        cmocka_unit_test_teardown(test_engine_fast_cancel_deferred_failure, fd_limit_teardown),
        cmocka_unit_test_teardown(test_engine_fast_destroy_in_flight, rig_teardown),
        cmocka_unit_test_teardown(test_engine_fast_late_read_keeps_the_arrival_time, rig_teardown),
        cmocka_unit_test(test_engine_fast_ipv6),
        cmocka_unit_test_teardown(test_engine_fast_localhost_name, rig_teardown),
        cmocka_unit_test(test_engine_fast_create_errors),
        cmocka_unit_test(test_engine_fast_applies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
