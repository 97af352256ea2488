/*
 * Tests that hold for both engines (agent/engine_fast.c and agent/engine_curl.c), run against each
 * in turn: for one plan they put the same bytes on the wire (the canonical request form of
 * engine.h), they resend a request that a server's silent keep-alive close cut off, and they read a
 * malformed response the same way, against the scripted server of srv.h on 127.0.0.1.
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
#include <sys/socket.h>
#include <unistd.h>

static const st_engine_ops *const ENGINES[] = {&st_engine_fast, &st_engine_curl};
#define N_ENGINES (sizeof(ENGINES) / sizeof(ENGINES[0]))

/* ---- the bytes on the wire ---- */

typedef struct plan_case {
    const char *method;
    const char *target; /* path and query as written in the plan's URL */
    const char *headers[8];
    const char *body; /* NULL: none */
    const char *want; /* the bytes both must send; %s is the Host value, %s the User-Agent */
} plan_case;

#define UA "stampede/" ST_VERSION

static const plan_case CASES[] = {
    {"GET", "/", {0}, NULL, "GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n\r\n"},
    {"HEAD", "/h", {0}, NULL, "HEAD /h HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n\r\n"},
    {"POST",
     "/form",
     {0},
     "a=1&b=2",
     "POST /form HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nContent-Length: 7\r\n\r\na=1&b=2"},
    {"POST",
     "/empty",
     {0},
     "",
     "POST /empty HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nContent-Length: 0\r\n\r\n"},
    /* The body frames the request: a user's Content-Length or Transfer-Encoding never goes out. */
    {"POST",
     "/len",
     {"Content-Length: 3", "X-A: 1", "Transfer-Encoding: chunked"},
     "12345",
     "POST /len HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nX-A: 1\r\nContent-Length: 5\r\n\r\n"
     "12345"},
    {"GET",
     "/nobody",
     {"Content-Length: 10"},
     NULL,
     "GET /nobody HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n\r\n"},
    /* The plan's own Host goes first, the plan's User-Agent replaces ours in its place, and the
     * rest keep their order. */
    {"PUT",
     "/u",
     {"Accept: text/plain", "Content-Type: text/plain", "host: example.test", "User-Agent: mine/2",
      "X-Trace:abc"},
     "{}",
     "PUT /u HTTP/1.1\r\nHost: example.test\r\nAccept: text/plain\r\nContent-Type: text/plain\r\n"
     "User-Agent: mine/2\r\nX-Trace:abc\r\nContent-Length: 2\r\n\r\n{}"},
    /* A header with an empty value is sent, as "Name:". */
    {"GET",
     "/e",
     {"X-Empty:", "Accept:  "},
     NULL,
     "GET /e HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nX-Empty:\r\nAccept:\r\n\r\n"},
    {"GET",
     "/caf\xc3\xa9/\xe2\x82\xac?q=\xc3\xa9&w={1}|^`\"<>\\",
     {0},
     NULL,
     "GET /caf%%C3%%A9/%%E2%%82%%AC?q=%%C3%%A9&w=%%7B1%%7D%%7C%%5E%%60%%22%%3C%%3E%%5C HTTP/1.1\r\n"
     "Host: %s\r\nUser-Agent: %s\r\n\r\n"},
    {"GET",
     "/search?q=a+b&lang=en&pct=%20&list[]=1&k=v;w",
     {0},
     NULL,
     "GET /search?q=a+b&lang=en&pct=%%20&list[]=1&k=v;w HTTP/1.1\r\nHost: %s\r\nUser-Agent: "
     "%s\r\n\r\n"},
    {"GET",
     "?only=query",
     {0},
     NULL,
     "GET /?only=query HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n\r\n"},
    {"GET",
     "/a/../b/./c",
     {0},
     NULL,
     "GET /a/../b/./c HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n\r\n"},
    {"GET", "/bh", {"Host:"}, NULL, "GET /bh HTTP/1.1\r\nHost:\r\nUser-Agent: " UA "\r\n\r\n"},
    {"DELETE",
     "/d",
     {"Authorization: Bearer x"},
     NULL,
     "DELETE /d HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nAuthorization: Bearer x\r\n\r\n"},
    {"PATCH",
     "/p",
     {0},
     "x",
     "PATCH /p HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nContent-Length: 1\r\n\r\nx"},
    /* A response to HEAD has no body, so neither has the request. */
    {"HEAD", "/hb", {0}, "ignored", "HEAD /hb HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n\r\n"},
};
#define N_CASES (sizeof(CASES) / sizeof(CASES[0]))

static void print_bytes(const char *label, const char *b, size_t n)
{
    fprintf(stderr, "  %s (%zu bytes): \"", label, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)b[i];
        if (ch == '\r') {
            fputs("\\r", stderr);
        } else if (ch == '\n') {
            fputs("\\n", stderr);
        } else if (ch < ' ' || ch >= 0x7f || ch == '"' || ch == '\\') {
            fprintf(stderr, "\\x%02x", ch);
        } else {
            fputc(ch, stderr);
        }
    }
    fputs("\"\n", stderr);
}

/* Sends one request of the plan on a fresh engine and returns every byte its connection carried
 * (the engine is destroyed before the capture is taken, so nothing can follow). */
static capture capture_one(const st_engine_ops *ops, srv *s, const st_request *q)
{
    int before = srv_get(s, &s->n_caps);
    run *r = run_new(ops);
    run_create(r, q, 1, 1, 3000);
    assert_int_equal(run_send(r, 0, (uint64_t)r->n_done), 0);
    run_until(r, 1, 5);
    if (r->res[0].kind != ST_RES_HTTP || r->res[0].status != 200) {
        fail_msg("%s %s on the %s engine: kind %d status %d", q->method, q->url, ops->name,
                 (int)r->res[0].kind, r->res[0].status);
    }
    run_free(r);
    assert_int_equal(srv_wait(s, &s->n_caps, before + 1), before + 1);
    pthread_mutex_lock(&s->mu);
    capture c = s->caps[before];
    s->caps[before].bytes = NULL;
    pthread_mutex_unlock(&s->mu);
    return c;
}

static void test_engines_same_bytes(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_CAPTURE, AF_INET);
    char host[32], url[512], want[1024];
    snprintf(host, sizeof(host), "127.0.0.1:%d", s->port);
    int bad = 0;
    for (size_t i = 0; i < N_CASES; i++) {
        const plan_case *pc = &CASES[i];
        st_request q = {.method = (char *)pc->method, .url = url, .weight = 1};
        snprintf(url, sizeof(url), "http://%s%s", host, pc->target);
        size_t nh = 0;
        while (nh < 8 && pc->headers[nh]) {
            nh++;
        }
        q.headers = (char **)pc->headers;
        q.n_headers = nh;
        if (pc->body) {
            q.body = (char *)pc->body;
            q.body_len = strlen(pc->body);
        }
        int wn = snprintf(want, sizeof(want), pc->want, host, UA);
        assert_true(wn > 0 && (size_t)wn < sizeof(want));
        capture got[N_ENGINES];
        for (size_t k = 0; k < N_ENGINES; k++) {
            got[k] = capture_one(ENGINES[k], s, &q);
        }
        for (size_t k = 0; k < N_ENGINES; k++) {
            if (got[k].len != (size_t)wn || memcmp(got[k].bytes, want, (size_t)wn) != 0) {
                fprintf(stderr, "case %zu (%s %s): the %s engine sent other bytes\n", i, pc->method,
                        pc->target, ENGINES[k]->name);
                print_bytes("want", want, (size_t)wn);
                print_bytes("sent", got[k].bytes, got[k].len);
                bad++;
            }
        }
        for (size_t k = 0; k < N_ENGINES; k++) {
            free(got[k].bytes);
        }
    }
    assert_int_equal(bad, 0);
    srv_stop(s);
}

/* A GET of / at s on one connection, with engine ops on its own loop; *g holds the request
 * (it must outlive the run). */
typedef struct get {
    char url[64];
    st_request q;
} get;

static run *get_run(get *g, const st_engine_ops *ops, const srv *s, int timeout_ms)
{
    snprintf(g->url, sizeof(g->url), "http://127.0.0.1:%d/", s->port);
    g->q = (st_request){.method = "GET", .url = g->url, .weight = 1};
    run *r = run_new(ops);
    run_create(r, &g->q, 1, 1, timeout_ms);
    return r;
}

/* ---- silent keep-alive close ---- */

static void test_engines_silent_keepalive_close(void **state)
{
    (void)state;
    const int rounds = 8;
    for (size_t k = 0; k < N_ENGINES; k++) {
        srv *s = srv_start(SRV_IDLE_CLOSE, AF_INET);
        s->pause_ms = 150;
        get g;
        run *r = get_run(&g, ENGINES[k], s, 3000);
        assert_int_equal(run_send(r, 0, (uint64_t)r->n_done), 0);
        run_until(r, 1, 5);
        /* Each round's request goes out on the kept connection while the server waits to close
         * it, unread, and the last one after the close. Each must reach the server once and
         * succeed, however many times it happens over the engine's life. */
        for (int i = 1; i <= rounds; i++) {
            run_for(r, i < rounds ? 0.05 : 0.3);
            assert_int_equal(run_send(r, 0, (uint64_t)r->n_done), 0);
            run_until(r, 1 + i, 5);
        }
        run_for(r, 0.05);
        for (int i = 0; i <= rounds; i++) {
            if (r->res[i].kind != ST_RES_HTTP || r->res[i].status != 200) {
                fail_msg("%s: request %d ended as kind %d status %d", ENGINES[k]->name, i + 1,
                         (int)r->res[i].kind, r->res[i].status);
            }
        }
        assert_int_equal(r->n_done, 1 + rounds);
        assert_int_equal(srv_get(s, &s->n_reqs), 1 + rounds);
        assert_int_equal(r->ops->inflight(r->e), 0);
        assert_int_equal(r->ops->free_slots(r->e), 1);
        run_free(r);
        srv_stop(s);
    }
}

/* ---- malformed framing in a response ---- */

/* A response whose length is ambiguous is malformed: both engines report it as other at once,
 * rather than pick one length and wait for a body that is not coming. */
static void expect_other_promptly(const char *response)
{
    for (size_t k = 0; k < N_ENGINES; k++) {
        srv *s = srv_start(SRV_FIXED, AF_INET);
        s->response = response;
        get g;
        run *r = get_run(&g, ENGINES[k], s, 4000);
        assert_int_equal(run_send(r, 0, (uint64_t)r->n_done), 0);
        /* Well before the 4 s timeout. */
        run_until(r, 1, 1.5);
        if (r->res[0].kind != ST_RES_OTHER) {
            fail_msg("%s: kind %d status %d, want other", ENGINES[k]->name, (int)r->res[0].kind,
                     r->res[0].status);
        }
        assert_int_equal(r->res[0].status, 0);
        assert_true(r->res[0].done_ns - r->res[0].sent_ns < 1000 * ST_NS_PER_MS);
        assert_int_equal(r->ops->inflight(r->e), 0);
        assert_int_equal(r->ops->free_slots(r->e), 1);
        run_free(r);
        srv_stop(s);
    }
}

static void test_engines_conflicting_content_length(void **state)
{
    (void)state;
    expect_other_promptly("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello");
}

static void test_engines_repeated_content_length(void **state)
{
    (void)state;
    /* RFC 9110 lets a client take equal values as one; http-parser does not, so neither engine
     * does. */
    expect_other_promptly("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello");
    expect_other_promptly("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello");
}

static void test_engines_content_length_with_chunked(void **state)
{
    (void)state;
    expect_other_promptly("HTTP/1.1 200 OK\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n"
                          "\r\n5\r\nhello\r\n0\r\n\r\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engines_same_bytes),
        cmocka_unit_test(test_engines_silent_keepalive_close),
        cmocka_unit_test(test_engines_conflicting_content_length),
        cmocka_unit_test(test_engines_repeated_content_length),
        cmocka_unit_test(test_engines_content_length_with_chunked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
