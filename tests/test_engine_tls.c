/*
 * HTTPS through the fast engine, against tests/tls_srv.c's TLS server on loopback with
 * certificates made here: keep-alive over one handshake, resumption on reconnect (the server
 * counts resumed handshakes), --cacert, --insecure, a TLS 1.2-only server, and the failure classes
 * (an expired or untrusted certificate or another name -> ST_RES_CERT, a server that is not TLS or
 * refuses ALPN http/1.1 -> ST_RES_TLS, a handshake that never ends -> ST_RES_TIMEOUT), each with
 * nothing left on the loop; and the curl engine classing the same failures alike.
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
#include "tls_srv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static struct {
    char dir[128];
    tls_id ca, good, expired, self, other;
} P;

static int setup(void **state)
{
    (void)state;
    tls_dir_make(P.dir, sizeof(P.dir));
    tls_id_make(&P.ca, P.dir, "ca", "stampede test CA", NULL, -3600, 86400, NULL, true);
    tls_id_make(&P.good, P.dir, "good", "localhost", "DNS:localhost,IP:127.0.0.1", -3600, 86400,
                &P.ca, false);
    tls_id_make(&P.expired, P.dir, "expired", "localhost", "DNS:localhost", -2 * 86400, -86400,
                &P.ca, false);
    tls_id_make(&P.self, P.dir, "self", "localhost", "DNS:localhost", -3600, 86400, NULL, false);
    tls_id_make(&P.other, P.dir, "other", "other.example", "DNS:other.example", -3600, 86400,
                &P.ca, false);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tls_id_fini(&P.ca);
    tls_id_fini(&P.good);
    tls_id_fini(&P.expired);
    tls_id_fini(&P.self);
    tls_id_fini(&P.other);
    tls_dir_remove(P.dir);
    return 0;
}

typedef struct https {
    tsrv *s;
    run *r;
    char url[128];
    st_request req;
} https;

/* Starts a server with cfg and a fast engine aimed at it as host (localhost or 127.0.0.1). */
static const st_engine_ops *ops = &st_engine_fast; /* the engine under test */

static void https_start(https *h, const tsrv_cfg *cfg, const char *host, int conns,
                        int timeout_ms, bool insecure, const char *cacert)
{
    memset(h, 0, sizeof(*h));
    h->s = tsrv_start(cfg);
    snprintf(h->url, sizeof(h->url), "https://%s:%d/", host, h->s->port);
    h->req.method = "GET";
    h->req.url = h->url;
    h->req.weight = 1;
    h->r = run_new(ops);
    st_engine_cfg ec = {.requests = &h->req,
                        .n_requests = 1,
                        .connections = conns,
                        .timeout_ms = timeout_ms,
                        .insecure = insecure,
                        .cacert = cacert};
    char err[256] = "";
    int rc = ops->create(&h->r->e, h->r->loop, &ec, run_on_done, h->r, err, sizeof(err));
    if (rc != 0) {
        fail_msg("create: %s (%s)", st_strerror(rc), err);
    }
}

static void https_stop(https *h)
{
    run_free(h->r);
    tsrv_stop(h->s);
}

/* Sends n requests, at most the engine's free slots at a time, and waits for them all. */
static void send_n(https *h, int n)
{
    int sent = 0;
    while (sent < n) {
        int free_now = ops->free_slots(h->r->e);
        for (int i = 0; i < free_now && sent < n; i++) {
            assert_int_equal(run_send(h->r, 0, (uint64_t)sent + 1), 0);
            sent++;
        }
        run_until(h->r, sent, 10.0);
    }
}

static int count_kind(const run *r, st_res_kind kind, int status)
{
    int n = 0;
    for (int i = 0; i < r->n_done; i++) {
        n += r->res[i].kind == kind && (kind != ST_RES_HTTP || r->res[i].status == status);
    }
    return n;
}

static void test_engine_tls_keepalive_one_handshake(void **state)
{
    (void)state;
    tsrv_cfg cfg = {.mode = TSRV_HTTP, .id = &P.good, .alpn = "h2,http/1.1"};
    https h;
    https_start(&h, &cfg, "localhost", 1, 5000, false, P.ca.cert_file);
    send_n(&h, 50);
    assert_int_equal(count_kind(h.r, ST_RES_HTTP, 200), 50);
    assert_int_equal(tsrv_wait(h.s, &h.s->requests, 50), 50);
    assert_int_equal(tsrv_get(h.s, &h.s->handshakes), 1);
    assert_int_equal(tsrv_get(h.s, &h.s->alpn_chosen), 1);
    assert_int_equal(h.r->res[0].bytes_in, strlen("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"));
    pthread_mutex_lock(&h.s->mu);
    assert_string_equal(h.s->sni, "localhost");
    pthread_mutex_unlock(&h.s->mu);
    https_stop(&h);
}

static void test_engine_tls_resumes_on_reconnect(void **state)
{
    (void)state;
    const int versions[] = {0, TLS1_2_VERSION};
    for (size_t v = 0; v < 2; v++) {
        tsrv_cfg cfg = {.mode = TSRV_HTTP, .id = &P.good, .close_each = true,
                        .max_version = versions[v]};
        https h;
        https_start(&h, &cfg, "localhost", 2, 5000, false, P.ca.cert_file);
        send_n(&h, 20);
        assert_int_equal(count_kind(h.r, ST_RES_HTTP, 200), 20);
        assert_int_equal(tsrv_wait(h.s, &h.s->requests, 20), 20);
        int hs = tsrv_wait(h.s, &h.s->handshakes, 20);
        int resumed = tsrv_get(h.s, &h.s->resumed);
        assert_int_equal(hs, 20);
        /* The two connections that start before any session came back make full handshakes; of
         * the rest, which offer one ticket two at a time, OpenSSL's server now and then turns one
         * down, more often on a busy machine (seen: 13 to 18 of 20 resumed). */
        if (resumed < 10) {
            fail_msg("TLS max %#x: %d of %d handshakes resumed", versions[v], resumed, hs);
        }
        assert_int_equal(tsrv_get(h.s, &h.s->tls13), versions[v] ? 0 : 20);
        https_stop(&h);
    }
}

static void test_engine_tls_insecure(void **state)
{
    (void)state;
    tsrv_cfg cfg = {.mode = TSRV_HTTP, .id = &P.self};
    https h;
    https_start(&h, &cfg, "127.0.0.1", 2, 5000, true, NULL);
    send_n(&h, 10);
    assert_int_equal(count_kind(h.r, ST_RES_HTTP, 200), 10);
    /* An IP literal: no SNI. */
    pthread_mutex_lock(&h.s->mu);
    assert_string_equal(h.s->sni, "");
    pthread_mutex_unlock(&h.s->mu);
    https_stop(&h);
}

/* Every one of n requests ends as kind, and the server answered none. */
static void expect_all(const tsrv_cfg *cfg, const char *cacert, int timeout_ms, st_res_kind kind)
{
    https h;
    https_start(&h, cfg, "localhost", 2, timeout_ms, false, cacert);
    send_n(&h, 4);
    assert_int_equal(count_kind(h.r, kind, 0), 4);
    assert_int_equal(tsrv_get(h.s, &h.s->requests), 0);
    for (int i = 0; i < h.r->n_done; i++) {
        assert_int_equal(h.r->res[i].status, 0);
    }
    https_stop(&h);
}

static void test_engine_tls_certificate_failures(void **state)
{
    (void)state;
    tsrv_cfg cfg = {.mode = TSRV_HTTP, .id = &P.expired};
    expect_all(&cfg, P.ca.cert_file, 5000, ST_RES_CERT);
    cfg.id = &P.self;
    expect_all(&cfg, P.ca.cert_file, 5000, ST_RES_CERT);
    cfg.id = &P.other; /* signed by the CA, for another name */
    expect_all(&cfg, P.ca.cert_file, 5000, ST_RES_CERT);
    cfg.id = &P.good; /* the system's CAs do not know the test CA */
    expect_all(&cfg, NULL, 5000, ST_RES_CERT);
}

static void test_engine_tls_protocol_failures(void **state)
{
    (void)state;
    tsrv_cfg cfg = {.mode = TSRV_GARBAGE};
    expect_all(&cfg, P.ca.cert_file, 5000, ST_RES_TLS);
    tsrv_cfg h2only = {.mode = TSRV_HTTP, .id = &P.good, .alpn = "h2"};
    expect_all(&h2only, P.ca.cert_file, 5000, ST_RES_TLS);
}

static void test_engine_tls_handshake_timeout(void **state)
{
    (void)state;
    tsrv_cfg cfg = {.mode = TSRV_SILENT};
    expect_all(&cfg, P.ca.cert_file, 200, ST_RES_TIMEOUT);
}

/* The curl engine classes the same failures the same way, and takes the same cacert. */
static void test_engine_tls_curl_same_classes(void **state)
{
    (void)state;
    ops = &st_engine_curl;
    tsrv_cfg cfg = {.mode = TSRV_HTTP, .id = &P.good};
    https h;
    https_start(&h, &cfg, "localhost", 2, 5000, false, P.ca.cert_file);
    send_n(&h, 10);
    assert_int_equal(count_kind(h.r, ST_RES_HTTP, 200), 10);
    https_stop(&h);
    tsrv_cfg bad = {.mode = TSRV_HTTP, .id = &P.expired};
    expect_all(&bad, P.ca.cert_file, 5000, ST_RES_CERT);
    bad.id = &P.other;
    expect_all(&bad, P.ca.cert_file, 5000, ST_RES_CERT);
    tsrv_cfg garbage = {.mode = TSRV_GARBAGE};
    expect_all(&garbage, P.ca.cert_file, 5000, ST_RES_TLS);
    /* libcurl's handshake timeout is a connect failure (engine_curl.c says why). */
    tsrv_cfg silent = {.mode = TSRV_SILENT};
    expect_all(&silent, P.ca.cert_file, 300, ST_RES_CONNECT);
    ops = &st_engine_fast;
}

static void test_engine_tls_cacert_unreadable(void **state)
{
    (void)state;
    char missing[256];
    snprintf(missing, sizeof(missing), "%s/nope.pem", P.dir);
    st_request req = {.method = "GET", .url = "https://localhost:9/", .weight = 1};
    st_engine_cfg ec = {
        .requests = &req, .n_requests = 1, .connections = 1, .timeout_ms = 100, .cacert = missing};
    run *r = run_new(&st_engine_fast);
    char err[256] = "";
    st_engine *e = NULL;
    assert_int_equal(st_engine_fast.create(&e, r->loop, &ec, run_on_done, r, err, sizeof(err)),
                     ST_ENOTFOUND);
    assert_null(e);
    assert_non_null(strstr(err, missing));
    run_free(r);
}

/* Over TLS too, with an io_loop, a response read long after it arrived is timed by the arrival
 * of its last bytes (the kernel's stamp, taken through the engine's socket BIO). */
static void test_engine_tls_late_read_keeps_the_arrival_time(void **state)
{
    (void)state;
    tsrv_cfg cfg = {.mode = TSRV_HTTP, .id = &P.good};
    tsrv *s = tsrv_start(&cfg);
    char url[128];
    snprintf(url, sizeof(url), "https://localhost:%d/", s->port);
    st_request req = {.method = "GET", .url = url, .weight = 1};
    struct ev_loop *timers = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(timers);
    run *r = run_new(&st_engine_fast);
    st_engine_cfg ec = {.requests = &req, .n_requests = 1, .connections = 1, .timeout_ms = 5000,
                        .cacert = P.ca.cert_file, .io_loop = r->loop};
    char err[256] = "";
    assert_int_equal(st_engine_fast.create(&r->e, timers, &ec, run_on_done, r, err, sizeof(err)),
                     0);
    assert_int_equal(run_send(r, 0, 1), 0);
    run_until(r, 1, 10.0); /* connects and shakes hands */
    assert_int_equal(count_kind(r, ST_RES_HTTP, 200), 1);
    assert_true(st_engine_fast.reads_can_wait(r->e));

    assert_int_equal(run_send(r, 0, 2), 0);
    assert_true(st_engine_fast.reads_can_wait(r->e));
    const uint64_t pause_ns = 150 * ST_NS_PER_MS;
    struct timespec pause = {0, (long)pause_ns};
    nanosleep(&pause, NULL);
    uint64_t read_at = st_clock_mono_ns();
    run_until(r, 2, 10.0);
    const st_result *res = &r->res[1];
    assert_int_equal(res->kind, ST_RES_HTTP);
    assert_int_equal(res->status, 200);
    assert_true(read_at - res->sent_ns >= pause_ns);
    assert_true(res->done_ns < read_at);
    assert_true(res->done_ns - res->sent_ns < 100 * ST_NS_PER_MS);
    run_free(r);
    ev_loop_destroy(timers);
    tsrv_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_tls_keepalive_one_handshake),
        cmocka_unit_test(test_engine_tls_resumes_on_reconnect),
        cmocka_unit_test(test_engine_tls_insecure),
        cmocka_unit_test(test_engine_tls_certificate_failures),
        cmocka_unit_test(test_engine_tls_protocol_failures),
        cmocka_unit_test(test_engine_tls_handshake_timeout),
        cmocka_unit_test(test_engine_tls_curl_same_classes),
        cmocka_unit_test(test_engine_tls_cacert_unreadable),
        cmocka_unit_test(test_engine_tls_late_read_keeps_the_arrival_time),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
