/*
 * Tests for the h2 engine (agent/engine_h2.c) against a small HTTP/2 server written here on
 * libnghttp2 (one accepting thread, one thread per connection, loopback only), with the engine on
 * its own loop (srv.h's run helpers).
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
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the HTTP/2 server ---- */

typedef enum {
    H_OK,     /* 200 "hello" to every request */
    H_HOLD,   /* answers only when `hold` requests are open on the connection (or after 200 ms) */
    H_GOAWAY, /* answers `limit` requests per connection, then GOAWAY with the last one's id */
    H_REFUSE, /* resets the first stream of each connection with REFUSED_STREAM */
    H_SILENT, /* never answers */
    H_DROP,   /* closes the connection when the first request arrives */
    H_BIG,    /* answers with big_len bytes */
} h_mode;

#define H_MAX_CONNS 64
#define H_MAX_OPEN  256

typedef struct hsrv {
    h_mode mode;
    int hold, limit;
    size_t big_len;
    int lfd, port;
    pthread_t accept_thread;
    pthread_t threads[H_MAX_CONNS];
    int fds[H_MAX_CONNS];
    pthread_mutex_t mu;
    bool stopping;
    int n_conns, n_reqs, max_open;
    size_t body_bytes;  /* request body bytes received */
    char headers[1024]; /* the last request's header list, "name: value\n" each */
} hsrv;

typedef struct hconn {
    hsrv *s;
    int fd;
    nghttp2_session *ss;
    int32_t open[H_MAX_OPEN]; /* requests complete and not answered */
    int n_open;
    int answered;
    bool first_seen;
    bool goaway;
    char hdr[1024];
    size_t hdr_len;
} hconn;

static ssize_t big_read(nghttp2_session *ss, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                        nghttp2_data_source *src, void *user)
{
    (void)ss;
    (void)id;
    (void)user;
    size_t *left = src->ptr;
    size_t n = *left < len ? *left : len;
    memset(buf, 'x', n);
    *left -= n;
    if (*left == 0) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        free(left);
    }
    return (ssize_t)n;
}

static void answer(hconn *h, int32_t id)
{
    size_t *left = malloc(sizeof(*left));
    assert_non_null(left);
    *left = h->s->big_len;
    nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0}};
    nghttp2_data_provider dp = {.source.ptr = left, .read_callback = big_read};
    nghttp2_submit_response(h->ss, id, nv, 1, &dp);
    h->answered++;
}

static int s_on_header(nghttp2_session *ss, const nghttp2_frame *f, const uint8_t *name,
                       size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                       void *user)
{
    (void)ss;
    (void)f;
    (void)flags;
    hconn *h = user;
    int n = snprintf(h->hdr + h->hdr_len, sizeof(h->hdr) - h->hdr_len, "%.*s: %.*s\n", (int)namelen,
                     name, (int)valuelen, value);
    if (n > 0 && h->hdr_len + (size_t)n < sizeof(h->hdr)) {
        h->hdr_len += (size_t)n;
    }
    return 0;
}

static int s_on_begin_headers(nghttp2_session *ss, const nghttp2_frame *f, void *user)
{
    (void)ss;
    (void)f;
    hconn *h = user;
    h->hdr_len = 0;
    h->hdr[0] = 0;
    return 0;
}

static int s_on_data(nghttp2_session *ss, uint8_t flags, int32_t id, const uint8_t *data,
                     size_t len, void *user)
{
    (void)ss;
    (void)flags;
    (void)id;
    (void)data;
    hconn *h = user;
    pthread_mutex_lock(&h->s->mu);
    h->s->body_bytes += len;
    pthread_mutex_unlock(&h->s->mu);
    return 0;
}

static int s_on_frame_recv(nghttp2_session *ss, const nghttp2_frame *f, void *user)
{
    hconn *h = user;
    hsrv *s = h->s;
    if (!(f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) ||
        !(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        return 0;
    }
    int32_t id = f->hd.stream_id;
    pthread_mutex_lock(&s->mu);
    s->n_reqs++;
    memcpy(s->headers, h->hdr, sizeof(s->headers));
    pthread_mutex_unlock(&s->mu);
    bool first = !h->first_seen;
    h->first_seen = true;
    switch (s->mode) {
    case H_REFUSE:
        if (first) {
            pthread_mutex_lock(&s->mu);
            s->n_reqs--; /* refused: not processed */
            pthread_mutex_unlock(&s->mu);
            nghttp2_submit_rst_stream(ss, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
            return 0;
        }
        answer(h, id);
        return 0;
    case H_GOAWAY:
        if (h->goaway) {
            pthread_mutex_lock(&s->mu);
            s->n_reqs--;
            pthread_mutex_unlock(&s->mu);
            return 0;
        }
        answer(h, id);
        if (h->answered == s->limit) {
            h->goaway = true;
            nghttp2_submit_goaway(ss, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR, NULL, 0);
        }
        return 0;
    case H_SILENT:
        return 0;
    case H_DROP:
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    case H_HOLD:
        if (h->n_open < H_MAX_OPEN) {
            h->open[h->n_open++] = id;
        }
        pthread_mutex_lock(&s->mu);
        if (h->n_open > s->max_open) {
            s->max_open = h->n_open;
        }
        pthread_mutex_unlock(&s->mu);
        if (h->n_open >= s->hold) {
            for (int i = 0; i < h->n_open; i++) {
                answer(h, h->open[i]);
            }
            h->n_open = 0;
        }
        return 0;
    default:
        answer(h, id);
        return 0;
    }
}

static bool s_flush(hconn *h)
{
    const uint8_t *data;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(h->ss, &data)) > 0) {
        size_t off = 0;
        while (off < (size_t)n) {
            ssize_t w = send(h->fd, data + off, (size_t)n - off, MSG_NOSIGNAL);
            if (w <= 0) {
                return false;
            }
            off += (size_t)w;
        }
    }
    return n == 0;
}

static void *conn_main(void *arg)
{
    hconn *h = arg;
    hsrv *s = h->s;
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, s_on_header);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, s_on_begin_headers);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, s_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, s_on_data);
    nghttp2_session_server_new(&h->ss, cb, h);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
    nghttp2_submit_settings(h->ss, NGHTTP2_FLAG_NONE, iv, 1);
    uint8_t buf[16384];
    bool ok = s_flush(h);
    while (ok) {
        struct pollfd pfd = {.fd = h->fd, .events = POLLIN};
        int pr = poll(&pfd, 1, 200);
        pthread_mutex_lock(&s->mu);
        bool stop = s->stopping;
        pthread_mutex_unlock(&s->mu);
        if (stop) {
            break;
        }
        if (pr == 0) {
            if (s->mode == H_HOLD && h->n_open > 0) {
                for (int i = 0; i < h->n_open; i++) {
                    answer(h, h->open[i]);
                }
                h->n_open = 0;
                ok = s_flush(h);
            }
            continue;
        }
        ssize_t n = recv(h->fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            break;
        }
        if (nghttp2_session_mem_recv(h->ss, buf, (size_t)n) < 0) {
            break;
        }
        ok = s_flush(h);
        if (!nghttp2_session_want_read(h->ss) && !nghttp2_session_want_write(h->ss)) {
            break;
        }
    }
    nghttp2_session_del(h->ss);
    shutdown(h->fd, SHUT_RDWR);
    free(h);
    return NULL;
}

static void *accept_main(void *arg)
{
    hsrv *s = arg;
    for (;;) {
        int fd = accept(s->lfd, NULL, NULL);
        pthread_mutex_lock(&s->mu);
        if (fd < 0 || s->stopping || s->n_conns >= H_MAX_CONNS) {
            pthread_mutex_unlock(&s->mu);
            if (fd >= 0) {
                close(fd);
            }
            if (fd < 0 && !s->stopping) {
                continue;
            }
            return NULL;
        }
        hconn *h = calloc(1, sizeof(*h));
        h->s = s;
        h->fd = fd;
        s->fds[s->n_conns] = fd;
        pthread_create(&s->threads[s->n_conns], NULL, conn_main, h);
        s->n_conns++;
        pthread_mutex_unlock(&s->mu);
    }
}

static hsrv *hsrv_start(h_mode mode)
{
    hsrv *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->mode = mode;
    s->big_len = 5;
    s->hold = 1;
    pthread_mutex_init(&s->mu, NULL);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(s->lfd, 128), 0);
    socklen_t len = sizeof(sa);
    getsockname(s->lfd, (struct sockaddr *)&sa, &len);
    s->port = ntohs(sa.sin_port);
    pthread_create(&s->accept_thread, NULL, accept_main, s);
    return s;
}

static void hsrv_stop(hsrv *s)
{
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_mutex_unlock(&s->mu);
    shutdown(s->lfd, SHUT_RDWR);
    pthread_join(s->accept_thread, NULL);
    for (int i = 0; i < s->n_conns; i++) {
        pthread_join(s->threads[i], NULL);
        close(s->fds[i]);
    }
    close(s->lfd);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static int hget(hsrv *s, const int *field)
{
    pthread_mutex_lock(&s->mu);
    int v = *field;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* ---- helpers ---- */

typedef struct plan1 {
    char url[96];
    st_request q;
} plan1;

static run *h2_run(plan1 *p, hsrv *s, const char *path, int conns, int streams, int timeout_ms)
{
    snprintf(p->url, sizeof(p->url), "http://127.0.0.1:%d%s", s->port, path);
    if (!p->q.method) {
        p->q.method = "GET";
    }
    p->q.url = p->url;
    p->q.weight = 1;
    run *r = run_new(&st_engine_h2);
    r->loop = r->loop ? r->loop : ev_loop_new(EVFLAG_AUTO);
    st_engine_cfg cfg = {.requests = &p->q,
                         .n_requests = 1,
                         .connections = conns,
                         .streams = streams,
                         .timeout_ms = timeout_ms,
                         .http2 = 1};
    char err[256] = "";
    int rc = st_engine_h2.create(&r->e, r->loop, &cfg, run_on_done, r, err, sizeof(err));
    if (rc) {
        fail_msg("create: %d %s", rc, err);
    }
    return r;
}

/* Sends n requests (as many as there are slots), then one more each time one ends, until total
 * have ended. */
static void closed_loop(run *r, int total, double max_s)
{
    int sent = 0;
    while (sent < total && st_engine_h2.free_slots(r->e) > 0) {
        assert_int_equal(run_send(r, 0, (uint64_t)sent), 0);
        sent++;
    }
    r->resend = total - sent;
    r->resend_req = 0;
    run_until(r, total, max_s);
}

static int count_kind(const run *r, st_res_kind k)
{
    int n = 0;
    for (int i = 0; i < r->n_done; i++) {
        n += r->res[i].kind == k;
    }
    return n;
}

/* ---- tests ---- */

static void test_engine_h2_connections_and_streams(void **state)
{
    (void)state;
    hsrv *s = hsrv_start(H_HOLD);
    s->hold = 4;
    plan1 p = {0};
    run *r = h2_run(&p, s, "/", 3, 4, 5000);
    assert_int_equal(st_engine_h2.free_slots(r->e), 12);
    closed_loop(r, 240, 10);
    assert_int_equal(count_kind(r, ST_RES_HTTP), 240);
    for (int i = 0; i < r->n_done; i++) {
        assert_int_equal(r->res[i].status, 200);
        assert_true(r->res[i].bytes_in > 5);
        assert_true(r->res[i].bytes_out > 0);
    }
    /* Exactly the connections asked for, each carrying four streams at once. */
    assert_int_equal(hget(s, &s->n_conns), 3);
    assert_int_equal(hget(s, &s->n_reqs), 240);
    assert_int_equal(hget(s, &s->max_open), 4);
    assert_int_equal(st_engine_h2.inflight(r->e), 0);
    assert_int_equal(st_engine_h2.free_slots(r->e), 12);
    run_free(r);
    hsrv_stop(s);
}

static void test_engine_h2_request_headers(void **state)
{
    (void)state;
    hsrv *s = hsrv_start(H_OK);
    plan1 p = {0};
    char *hdrs[] = {"X-Trace:  abc ", "host: example.test", "Content-Length: 9", "Accept:"};
    p.q.method = "POST";
    p.q.headers = hdrs;
    p.q.n_headers = 4;
    p.q.body = "a=1";
    p.q.body_len = 3;
    run *r = h2_run(&p, s, "/f?q=1", 1, 1, 5000);
    closed_loop(r, 1, 5);
    assert_int_equal(r->res[0].kind, ST_RES_HTTP);
    pthread_mutex_lock(&s->mu);
    assert_string_equal(s->headers, ":method: POST\n:scheme: http\n:authority: example.test\n"
                                    ":path: /f?q=1\nuser-agent: stampede/" ST_VERSION "\n"
                                    "x-trace: abc\naccept: \ncontent-length: 3\n");
    assert_int_equal(s->body_bytes, 3);
    pthread_mutex_unlock(&s->mu);
    run_free(r);
    hsrv_stop(s);
}

static void test_engine_h2_connection_header_refused(void **state)
{
    (void)state;
    char *hdrs[] = {"Connection: close"};
    st_request q = {.method = "GET",
                    .url = "http://127.0.0.1:9/",
                    .headers = hdrs,
                    .n_headers = 1,
                    .weight = 1};
    st_engine_cfg cfg = {.requests = &q, .n_requests = 1, .connections = 1, .timeout_ms = 100};
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    st_engine *e = NULL;
    char err[256] = "";
    assert_int_equal(st_engine_h2.create(&e, loop, &cfg, run_on_done, NULL, err, sizeof(err)),
                     ST_EINVAL);
    assert_null(e);
    assert_non_null(strstr(err, "requests[0].headers[0]: Connection"));
    /* https:// is h2 over TLS: the context is built at create. */
    q.url = "https://127.0.0.1:9/";
    q.n_headers = 0;
    assert_int_equal(st_engine_h2.create(&e, loop, &cfg, run_on_done, NULL, err, sizeof(err)), 0);
    st_engine_h2.destroy(e);
    assert_loop_empty(loop);
    ev_loop_destroy(loop);
}

static void test_engine_h2_goaway_resends(void **state)
{
    (void)state;
    hsrv *s = hsrv_start(H_GOAWAY);
    s->limit = 5;
    plan1 p = {0};
    run *r = h2_run(&p, s, "/", 2, 4, 5000);
    closed_loop(r, 60, 10);
    /* Every request succeeded once: what a GOAWAY cut off went again on a new connection. */
    assert_int_equal(count_kind(r, ST_RES_HTTP), 60);
    assert_int_equal(hget(s, &s->n_reqs), 60);
    /* Five per connection: twelve of them, and one more when the last requests were split
     * between the two connections open at the end. */
    int conns = hget(s, &s->n_conns);
    assert_true(conns >= 12 && conns <= 13);
    run_free(r);
    hsrv_stop(s);
}

static void test_engine_h2_refused_stream_resends(void **state)
{
    (void)state;
    hsrv *s = hsrv_start(H_REFUSE);
    plan1 p = {0};
    run *r = h2_run(&p, s, "/", 1, 1, 5000);
    closed_loop(r, 3, 5);
    assert_int_equal(count_kind(r, ST_RES_HTTP), 3);
    assert_int_equal(hget(s, &s->n_reqs), 3);
    assert_int_equal(hget(s, &s->n_conns), 1);
    run_free(r);
    hsrv_stop(s);
}

static void test_engine_h2_timeout(void **state)
{
    (void)state;
    hsrv *s = hsrv_start(H_SILENT);
    plan1 p = {0};
    run *r = h2_run(&p, s, "/", 1, 2, 150);
    assert_int_equal(run_send(r, 0, 1), 0);
    assert_int_equal(run_send(r, 0, 2), 0);
    run_until(r, 2, 3);
    assert_int_equal(count_kind(r, ST_RES_TIMEOUT), 2);
    for (int i = 0; i < 2; i++) {
        uint64_t took = r->res[i].done_ns - r->res[i].sent_ns;
        assert_true(took >= 150 * ST_NS_PER_MS && took < 600 * ST_NS_PER_MS);
    }
    assert_int_equal(st_engine_h2.free_slots(r->e), 2);
    run_free(r);
    hsrv_stop(s);
}

static void test_engine_h2_connection_lost(void **state)
{
    (void)state;
    hsrv *s = hsrv_start(H_DROP);
    plan1 p = {0};
    run *r = h2_run(&p, s, "/", 1, 3, 5000);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(run_send(r, 0, (uint64_t)i), 0);
    }
    run_until(r, 3, 3);
    assert_int_equal(count_kind(r, ST_RES_OTHER), 3);
    assert_int_equal(st_engine_h2.inflight(r->e), 0);
    run_free(r);
    hsrv_stop(s);
}

static void test_engine_h2_connect_refused(void **state)
{
    (void)state;
    hsrv *s = hsrv_start(H_OK);
    plan1 p = {0};
    run *r = h2_run(&p, s, "/", 1, 2, 5000);
    hsrv_stop(s); /* the port is closed now */
    assert_int_equal(run_send(r, 0, 1), 0);
    assert_int_equal(run_send(r, 0, 2), 0);
    assert_int_equal(r->n_done, 0);
    run_until(r, 2, 3);
    assert_int_equal(count_kind(r, ST_RES_CONNECT), 2);
    run_free(r);
}

static void test_engine_h2_large_bodies(void **state)
{
    (void)state;
    hsrv *s = hsrv_start(H_BIG);
    s->big_len = 3 * 1024 * 1024;
    plan1 p = {0};
    size_t body_len = 2 * 1024 * 1024;
    char *body = malloc(body_len);
    memset(body, 'b', body_len);
    p.q.method = "PUT";
    p.q.body = body;
    p.q.body_len = body_len;
    run *r = h2_run(&p, s, "/big", 1, 2, 10000);
    closed_loop(r, 4, 20);
    assert_int_equal(count_kind(r, ST_RES_HTTP), 4);
    for (int i = 0; i < 4; i++) {
        assert_true(r->res[i].bytes_in > 3 * 1024 * 1024);
        assert_true(r->res[i].bytes_out > body_len);
    }
    pthread_mutex_lock(&s->mu);
    assert_int_equal(s->body_bytes, 4 * body_len);
    pthread_mutex_unlock(&s->mu);
    run_free(r);
    hsrv_stop(s);
    free(body);
}

static void test_engine_h2_cancel_all(void **state)
{
    (void)state;
    hsrv *s = hsrv_start(H_SILENT);
    plan1 p = {0};
    run *r = h2_run(&p, s, "/", 2, 2, 5000);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(run_send(r, 0, (uint64_t)i), 0);
    }
    assert_int_equal(st_engine_h2.free_slots(r->e), 0);
    assert_int_equal(run_send(r, 0, 9), ST_EAGAIN);
    assert_int_equal(run_send(r, 7, 9), ST_EINVAL);
    run_for(r, 0.1);
    st_engine_h2.cancel_all(r->e);
    assert_int_equal(count_kind(r, ST_RES_ABORTED), 4);
    assert_int_equal(st_engine_h2.inflight(r->e), 0);
    run_free(r);
    hsrv_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_h2_connections_and_streams),
        cmocka_unit_test(test_engine_h2_request_headers),
        cmocka_unit_test(test_engine_h2_connection_header_refused),
        cmocka_unit_test(test_engine_h2_goaway_resends),
        cmocka_unit_test(test_engine_h2_refused_stream_resends),
        cmocka_unit_test(test_engine_h2_timeout),
        cmocka_unit_test(test_engine_h2_connection_lost),
        cmocka_unit_test(test_engine_h2_connect_refused),
        cmocka_unit_test(test_engine_h2_large_bodies),
        cmocka_unit_test(test_engine_h2_cancel_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
