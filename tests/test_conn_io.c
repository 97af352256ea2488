/*
 * Tests for agent/conn_io.c: plain sockets through the same calls (a socketpair), and TLS against
 * tests/tls_srv.c's server on loopback with certificates made here: a CA given as the cacert file,
 * leaves it signed (good, expired, for another name, for an IP address), a self-signed one, a
 * server that is not TLS, a TLS 1.2-only server, ALPN chosen and refused, sessions resumed on the
 * next connection (TLS 1.3 and 1.2), and the creation errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "conn_io.h"
#include "error.h"
#include "loopback.h"
#include "tls_srv.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct pki {
    char dir[128];
    tls_id ca, good, expired, other, self, ip;
} pki;

static pki P;

static int setup_pki(void **state)
{
    (void)state;
    tls_dir_make(P.dir, sizeof(P.dir));
    tls_id_make(&P.ca, P.dir, "ca", "stampede test CA", NULL, -3600, 86400, NULL, true);
    tls_id_make(&P.good, P.dir, "good", "localhost", "DNS:localhost,IP:127.0.0.1,IP:::1", -3600,
                86400, &P.ca, false);
    tls_id_make(&P.expired, P.dir, "expired", "localhost", "DNS:localhost", -2 * 86400, -86400,
                &P.ca, false);
    tls_id_make(&P.other, P.dir, "other", "other.example", "DNS:other.example", -3600, 86400,
                &P.ca, false);
    tls_id_make(&P.self, P.dir, "self", "localhost", "DNS:localhost", -3600, 86400, NULL, false);
    tls_id_make(&P.ip, P.dir, "ip", "127.0.0.1", "IP:127.0.0.1", -3600, 86400, &P.ca, false);
    return 0;
}

static int teardown_pki(void **state)
{
    (void)state;
    tls_id_fini(&P.ca);
    tls_id_fini(&P.good);
    tls_id_fini(&P.expired);
    tls_id_fini(&P.other);
    tls_id_fini(&P.self);
    tls_id_fini(&P.ip);
    tls_dir_remove(P.dir);
    return 0;
}

/* ---- helpers ---- */

static int connect_to(int port, int family)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_storage ss;
    socklen_t len = loopback_addr(&ss, family, port);
    assert_int_equal(connect(fd, (struct sockaddr *)&ss, len), 0);
    assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
    return fd;
}

/* Waits for what a WANT_* asks; fails the test after five seconds. */
static void wait_for(const st_conn_io *c, long rc)
{
    struct pollfd p = {.fd = c->fd, .events = rc == ST_CONN_IO_WANT_READ ? POLLIN : POLLOUT};
    assert_int_equal(poll(&p, 1, 5000), 1);
}

static int handshake(st_conn_io *c)
{
    for (int i = 0; i < 1000; i++) {
        int rc = st_conn_io_handshake(c);
        if (rc != ST_CONN_IO_WANT_READ && rc != ST_CONN_IO_WANT_WRITE) {
            return rc;
        }
        wait_for(c, rc);
    }
    fail_msg("handshake does not end");
    return ST_CONN_IO_ERROR;
}

static void write_all(st_conn_io *c, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = st_conn_io_write(c, buf, len);
        if (n == ST_CONN_IO_WANT_READ || n == ST_CONN_IO_WANT_WRITE) {
            wait_for(c, n);
            continue;
        }
        assert_true(n > 0);
        buf += n;
        len -= (size_t)n;
    }
}

/* Reads exactly len bytes (small reads, so that TLS leaves bytes pending between them). */
static void read_exact(st_conn_io *c, char *buf, size_t len, size_t chunk, bool *saw_pending)
{
    size_t have = 0;
    while (have < len) {
        size_t want = len - have < chunk ? len - have : chunk;
        ssize_t n = st_conn_io_read(c, buf + have, want);
        if (n == ST_CONN_IO_WANT_READ || n == ST_CONN_IO_WANT_WRITE) {
            assert_false(st_conn_io_pending(c));
            wait_for(c, n);
            continue;
        }
        assert_true(n > 0);
        have += (size_t)n;
        if (saw_pending && st_conn_io_pending(c)) {
            *saw_pending = true;
        }
    }
}

static st_conn_tls *tls_new(const char *host, bool insecure, const char *cacert, const char *alpn)
{
    st_conn_tls_cfg cfg = {.host = host, .insecure = insecure, .cacert = cacert, .alpn = alpn};
    st_conn_tls *t = NULL;
    char err[256] = "";
    int rc = st_conn_tls_new(&t, &cfg, err, sizeof(err));
    if (rc != 0) {
        fail_msg("st_conn_tls_new: %s (%s)", st_strerror(rc), err);
    }
    return t;
}

/* Connects through t to s and runs the handshake; returns its result with c started. */
static int tls_connect(st_conn_io *c, st_conn_tls *t, tsrv *s, int family)
{
    st_conn_io_init(c);
    int fd = connect_to(s->port, family);
    assert_int_equal(st_conn_io_start(c, t, fd), 0);
    return handshake(c);
}

/* One echo round trip of n bytes. */
static void echo(st_conn_io *c, size_t n)
{
    char *out = malloc(n), *in = malloc(n);
    assert_non_null(out);
    assert_non_null(in);
    for (size_t i = 0; i < n; i++) {
        out[i] = (char)('a' + i % 26);
    }
    write_all(c, out, n);
    read_exact(c, in, n, 1000, NULL);
    assert_memory_equal(in, out, n);
    free(out);
    free(in);
}

/* A connection through t to s whose session is resumed or not, as said, and that carries an
 * echo of 10 bytes before it closes cleanly. */
static void echo_connection(tsrv *s, st_conn_tls *t, int family, bool resumed)
{
    st_conn_io c;
    assert_int_equal(tls_connect(&c, t, s, family), 0);
    assert_int_equal(st_conn_io_resumed(&c), resumed);
    echo(&c, 10);
    st_conn_io_close(&c, true);
}

/* Waits for the server to count `handshakes` finished handshakes; `resumed` of them resumed. */
static void assert_handshakes(tsrv *s, int handshakes, int resumed)
{
    assert_int_equal(tsrv_wait(s, &s->handshakes, handshakes), handshakes);
    assert_int_equal(tsrv_get(s, &s->resumed), resumed);
}

/* A client for host (verifying against cacert, offering alpn) meets a server of cfg: the handshake
 * fails with kind, its reason saying why_part (NULL: any reason), and leaves no session to resume;
 * the server counts it as failed unless it does not speak TLS. */
static void expect_failure(const tsrv_cfg *cfg, const char *host, const char *cacert,
                           const char *alpn, st_res_kind kind, const char *why_part)
{
    tsrv *s = tsrv_start(cfg);
    st_conn_tls *t = tls_new(host, false, cacert, alpn);
    st_conn_io c;
    int family = cfg->family ? cfg->family : AF_INET;
    assert_int_equal(tls_connect(&c, t, s, family), ST_CONN_IO_ERROR);
    assert_int_equal(st_conn_io_fail_kind(&c), kind);
    if (why_part && !strstr(st_conn_io_fail_why(&c), why_part)) {
        fail_msg("reason \"%s\" does not say \"%s\"", st_conn_io_fail_why(&c), why_part);
    }
    assert_false(st_conn_tls_has_session(t));
    st_conn_io_close(&c, false);
    int failed = cfg->mode == TSRV_GARBAGE ? 0 : 1;
    assert_int_equal(tsrv_wait(s, &s->failed, failed), failed);
    tsrv_stop(s);
    st_conn_tls_free(t);
}

/* ---- plain ---- */

static void test_conn_io_plain_roundtrip_and_eof(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    st_conn_io c;
    st_conn_io_init(&c);
    assert_int_equal(c.fd, -1);
    assert_int_equal(st_conn_io_start(&c, NULL, sv[0]), 0);
    assert_int_equal(st_conn_io_handshake(&c), 0);
    assert_false(st_conn_io_resumed(&c));
    assert_int_equal(st_conn_io_alpn(&c, NULL), 0);

    char buf[16];
    assert_int_equal(st_conn_io_read(&c, buf, sizeof(buf)), ST_CONN_IO_WANT_READ);
    assert_int_equal(st_conn_io_write(&c, "ping", 4), 4);
    assert_int_equal(recv(sv[1], buf, sizeof(buf), 0), 4);
    assert_memory_equal(buf, "ping", 4);
    assert_int_equal(send(sv[1], "pong!", 5, 0), 5);
    assert_int_equal(st_conn_io_read(&c, buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "pong!", 5);
    assert_false(st_conn_io_pending(&c));

    /* The peer closes: 0, and a write then fails as an error of class OTHER. */
    close(sv[1]);
    assert_int_equal(st_conn_io_read(&c, buf, sizeof(buf)), 0);
    assert_int_equal(st_conn_io_write(&c, "x", 1), ST_CONN_IO_ERROR);
    assert_int_equal(st_conn_io_fail_kind(&c), ST_RES_OTHER);
    assert_string_equal(st_conn_io_fail_why(&c), "broken pipe");
    st_conn_io_close(&c, false);
    assert_int_equal(c.fd, -1);
    st_conn_io_close(&c, false); /* twice is fine */

    /* A full socket wants writing. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    assert_int_equal(st_conn_io_start(&c, NULL, sv[0]), 0);
    static char big[65536];
    ssize_t n;
    while ((n = st_conn_io_write(&c, big, sizeof(big))) > 0) {
    }
    assert_int_equal(n, ST_CONN_IO_WANT_WRITE);
    st_conn_io_close(&c, true);
    close(sv[1]);
}

static void test_conn_io_plain_reset_is_an_error(void **state)
{
    (void)state;
    int port;
    int lfd = loopback_listen(AF_INET, 1, 0, &port);
    st_conn_io c;
    st_conn_io_init(&c);
    assert_int_equal(st_conn_io_start(&c, NULL, connect_to(port, AF_INET)), 0);
    int sfd = accept(lfd, NULL, NULL);
    struct linger lg = {1, 0};
    setsockopt(sfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(sfd);
    char buf[8];
    struct pollfd p = {.fd = c.fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 5000), 1);
    assert_int_equal(st_conn_io_read(&c, buf, sizeof(buf)), ST_CONN_IO_ERROR);
    assert_int_equal(st_conn_io_fail_kind(&c), ST_RES_OTHER);
    assert_string_equal(st_conn_io_fail_why(&c), "connection reset by peer");
    st_conn_io_close(&c, false);
    close(lfd);
}

/* ---- TLS: what works ---- */

static void test_conn_io_tls_cacert_sni_alpn_and_resumption(void **state)
{
    (void)state;
    tsrv_cfg cfg = {.mode = TSRV_ECHO, .id = &P.good, .alpn = "h2,http/1.1"};
    tsrv *s = tsrv_start(&cfg);
    st_conn_tls *t = tls_new("localhost", false, P.ca.cert_file, "http/1.1");
    assert_false(st_conn_tls_has_session(t));

    st_conn_io c;
    assert_int_equal(tls_connect(&c, t, s, AF_INET), 0);
    assert_false(st_conn_io_resumed(&c));
    const unsigned char *proto = NULL;
    assert_int_equal(st_conn_io_alpn(&c, &proto), 8);
    assert_memory_equal(proto, "http/1.1", 8);
    /* 40 KB in 1000-byte reads: records are 16 KB, so bytes wait in the TLS layer between reads,
     * and st_conn_io_pending says so. */
    char *out = malloc(40000), *in = malloc(40000);
    for (int i = 0; i < 40000; i++) {
        out[i] = (char)i;
    }
    write_all(&c, out, 40000);
    bool saw_pending = false;
    read_exact(&c, in, 40000, 1000, &saw_pending);
    assert_memory_equal(in, out, 40000);
    assert_true(saw_pending);
    free(out);
    free(in);
    /* The TLS 1.3 tickets came with the echo. */
    assert_true(st_conn_tls_has_session(t));
    st_conn_io_close(&c, true);

    echo_connection(s, t, AF_INET, true);

    assert_handshakes(s, 2, 1);
    assert_int_equal(tsrv_get(s, &s->tls13), 2);
    assert_int_equal(tsrv_get(s, &s->alpn_chosen), 2);
    pthread_mutex_lock(&s->mu);
    assert_string_equal(s->sni, "localhost");
    pthread_mutex_unlock(&s->mu);
    tsrv_stop(s);
    st_conn_tls_free(t);
}

static void test_conn_io_tls12_only_server_resumes(void **state)
{
    (void)state;
    tsrv_cfg cfg = {.mode = TSRV_ECHO, .id = &P.good, .max_version = TLS1_2_VERSION};
    tsrv *s = tsrv_start(&cfg);
    st_conn_tls *t = tls_new("localhost", false, P.ca.cert_file, "http/1.1");
    st_conn_io c;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tls_connect(&c, t, s, AF_INET), 0);
        assert_int_equal(st_conn_io_resumed(&c), i > 0);
        /* The server has no ALPN: none is chosen, and that is not a failure. */
        assert_int_equal(st_conn_io_alpn(&c, NULL), 0);
        echo(&c, 100);
        st_conn_io_close(&c, true);
    }
    assert_handshakes(s, 3, 2);
    assert_int_equal(tsrv_get(s, &s->tls13), 0);
    tsrv_stop(s);
    st_conn_tls_free(t);
}

static void test_conn_io_tls_broken_connection_spoils_session(void **state)
{
    (void)state;
    tsrv_cfg cfg = {.mode = TSRV_ECHO, .id = &P.good};
    tsrv *s = tsrv_start(&cfg);
    st_conn_tls *t = tls_new("localhost", false, P.ca.cert_file, NULL);
    st_conn_io c;
    assert_int_equal(tls_connect(&c, t, s, AF_INET), 0);
    echo(&c, 10);
    assert_true(st_conn_tls_has_session(t));
    st_conn_io_close(&c, false); /* as after an error: the session is not offered again */
    assert_false(st_conn_tls_has_session(t));
    echo_connection(s, t, AF_INET, false);
    assert_handshakes(s, 2, 0);
    tsrv_stop(s);
    st_conn_tls_free(t);
}

static void test_conn_io_tls_no_tickets_no_resumption(void **state)
{
    (void)state;
    tsrv_cfg cfg = {.mode = TSRV_ECHO, .id = &P.good, .no_tickets = true};
    tsrv *s = tsrv_start(&cfg);
    st_conn_tls *t = tls_new("localhost", false, P.ca.cert_file, NULL);
    for (int i = 0; i < 2; i++) {
        echo_connection(s, t, AF_INET, false);
    }
    assert_handshakes(s, 2, 0);
    tsrv_stop(s);
    st_conn_tls_free(t);
}

static void test_conn_io_tls_ip_literal_no_sni(void **state)
{
    (void)state;
    tsrv_cfg cfg = {.mode = TSRV_ECHO, .id = &P.good, .family = AF_INET6};
    tsrv *s = tsrv_start(&cfg);
    st_conn_tls *t = tls_new("::1", false, P.ca.cert_file, NULL);
    echo_connection(s, t, AF_INET6, false);
    assert_handshakes(s, 1, 0);
    pthread_mutex_lock(&s->mu);
    assert_string_equal(s->sni, "");
    pthread_mutex_unlock(&s->mu);
    tsrv_stop(s);
    st_conn_tls_free(t);

    /* A certificate for 127.0.0.1 only does not pass for ::1. */
    cfg.id = &P.ip;
    expect_failure(&cfg, "::1", P.ca.cert_file, NULL, ST_RES_CERT, NULL);
}

static void test_conn_io_tls_insecure_takes_any_certificate(void **state)
{
    (void)state;
    const tls_id *ids[] = {&P.self, &P.expired, &P.other};
    for (size_t i = 0; i < 3; i++) {
        tsrv_cfg cfg = {.mode = TSRV_ECHO, .id = ids[i]};
        tsrv *s = tsrv_start(&cfg);
        st_conn_tls *t = tls_new("localhost", true, NULL, "http/1.1");
        echo_connection(s, t, AF_INET, false);
        tsrv_stop(s);
        st_conn_tls_free(t);
    }
}

/* ---- TLS: failures and their classes ---- */

/* A server of id that the client must refuse as a certificate problem. */
static void expect_cert_failure(const tls_id *id, const char *host, const char *cacert,
                                const char *why_part)
{
    tsrv_cfg cfg = {.mode = TSRV_ECHO, .id = id};
    expect_failure(&cfg, host, cacert, "http/1.1", ST_RES_CERT, why_part);
}

static void test_conn_io_tls_expired_is_cert(void **state)
{
    (void)state;
    expect_cert_failure(&P.expired, "localhost", P.ca.cert_file, "expired");
}

static void test_conn_io_tls_wrong_host_is_cert(void **state)
{
    (void)state;
    expect_cert_failure(&P.other, "localhost", P.ca.cert_file, "mismatch");
}

static void test_conn_io_tls_self_signed_is_cert(void **state)
{
    (void)state;
    expect_cert_failure(&P.self, "localhost", P.ca.cert_file, "self-signed");
}

/* Verification is on by default: the test CA is not among the system's. */
static void test_conn_io_tls_system_cas_by_default(void **state)
{
    (void)state;
    expect_cert_failure(&P.good, "localhost", NULL, "issuer");
}

static void test_conn_io_tls_not_tls_is_tls_class(void **state)
{
    (void)state;
    tsrv_cfg cfg = {.mode = TSRV_GARBAGE};
    expect_failure(&cfg, "localhost", P.ca.cert_file, NULL, ST_RES_TLS, "wrong version number");
}

static void test_conn_io_tls_alpn_refused_is_tls_class(void **state)
{
    (void)state;
    tsrv_cfg cfg = {.mode = TSRV_ECHO, .id = &P.good, .alpn = "h2"};
    expect_failure(&cfg, "localhost", P.ca.cert_file, "http/1.1", ST_RES_TLS,
                   "no application protocol");
}

/* The server reads the ClientHello and closes (FIN), or resets the connection. */
static void closed_in_handshake(bool reset, const char *why)
{
    int port;
    int lfd = loopback_listen(AF_INET, 1, 0, &port);
    st_conn_tls *t = tls_new("localhost", false, P.ca.cert_file, NULL);
    st_conn_io c;
    st_conn_io_init(&c);
    assert_int_equal(st_conn_io_start(&c, t, connect_to(port, AF_INET)), 0);
    int sfd = accept(lfd, NULL, NULL);
    assert_int_equal(st_conn_io_handshake(&c), ST_CONN_IO_WANT_READ); /* ClientHello sent */
    char hello[4096];
    assert_true(recv(sfd, hello, sizeof(hello), 0) > 0);
    if (reset) {
        struct linger lg = {1, 0};
        setsockopt(sfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(sfd);
    assert_int_equal(handshake(&c), ST_CONN_IO_ERROR);
    assert_int_equal(st_conn_io_fail_kind(&c), ST_RES_TLS);
    assert_string_equal(st_conn_io_fail_why(&c), why);
    st_conn_io_close(&c, false);
    close(lfd);
    st_conn_tls_free(t);
}

static void test_conn_io_tls_closed_in_handshake_is_tls_class(void **state)
{
    (void)state;
    closed_in_handshake(false, "connection closed during the TLS handshake");
    closed_in_handshake(true, "connection reset during the TLS handshake");
}

/* ---- creation errors ---- */

static void test_conn_io_tls_new_errors(void **state)
{
    (void)state;
    char err[256];
    st_conn_tls *t = (st_conn_tls *)&t; /* must stay untouched on error */
    st_conn_tls *keep = t;
    char missing[300];
    snprintf(missing, sizeof(missing), "%s/missing.pem", P.dir);
    st_conn_tls_cfg cfg = {.host = "localhost", .cacert = missing};
    assert_int_equal(st_conn_tls_new(&t, &cfg, err, sizeof(err)), ST_ENOTFOUND);
    assert_non_null(strstr(err, missing));
    assert_non_null(strstr(err, "--cacert"));
    assert_ptr_equal(t, keep);

    /* A key file holds no certificate. */
    cfg.cacert = P.good.key_file;
    assert_int_equal(st_conn_tls_new(&t, &cfg, err, sizeof(err)), ST_EIO);
    assert_non_null(strstr(err, P.good.key_file));

    /* A directory cannot be read as a file. */
    cfg.cacert = P.dir;
    assert_int_equal(st_conn_tls_new(&t, &cfg, err, sizeof(err)), ST_EIO);
    assert_non_null(strstr(err, P.dir));

    cfg.cacert = NULL;
    cfg.alpn = "h2,,http/1.1";
    assert_int_equal(st_conn_tls_new(&t, &cfg, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "ALPN"));
    cfg.alpn = NULL;
    cfg.host = "";
    assert_int_equal(st_conn_tls_new(&t, &cfg, err, sizeof(err)), ST_EINVAL);
    assert_int_equal(st_conn_tls_new(&t, NULL, NULL, 0), ST_EINVAL);
    assert_ptr_equal(t, keep);
    st_conn_tls_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conn_io_plain_roundtrip_and_eof),
        cmocka_unit_test(test_conn_io_plain_reset_is_an_error),
        cmocka_unit_test(test_conn_io_tls_cacert_sni_alpn_and_resumption),
        cmocka_unit_test(test_conn_io_tls12_only_server_resumes),
        cmocka_unit_test(test_conn_io_tls_broken_connection_spoils_session),
        cmocka_unit_test(test_conn_io_tls_no_tickets_no_resumption),
        cmocka_unit_test(test_conn_io_tls_ip_literal_no_sni),
        cmocka_unit_test(test_conn_io_tls_insecure_takes_any_certificate),
        cmocka_unit_test(test_conn_io_tls_expired_is_cert),
        cmocka_unit_test(test_conn_io_tls_wrong_host_is_cert),
        cmocka_unit_test(test_conn_io_tls_self_signed_is_cert),
        cmocka_unit_test(test_conn_io_tls_system_cas_by_default),
        cmocka_unit_test(test_conn_io_tls_not_tls_is_tls_class),
        cmocka_unit_test(test_conn_io_tls_alpn_refused_is_tls_class),
        cmocka_unit_test(test_conn_io_tls_closed_in_handshake_is_tls_class),
        cmocka_unit_test(test_conn_io_tls_new_errors),
    };
    return cmocka_run_group_tests(tests, setup_pki, teardown_pki);
}
