/*
 * Tests for the control channel's certificates and pinning (common/tls.c): the fingerprint of a
 * known certificate (computed independently by `openssl x509 -fingerprint -sha256`), fingerprints
 * as people write them, certificates made and loaded, and the pinned fetch against real nng TLS
 * listeners on 127.0.0.1, including nng's own handshake trusting only the fetched certificate.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "error.h"
#include "tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A self-signed certificate with CN known.example and subjectAltName DNS:known-san.example. */
#define KNOWN_FINGERPRINT                                                                          \
    "39:75:8B:21:BD:71:E0:7C:59:26:33:E3:16:28:8B:D7:C4:1B:00:A1:2D:25:46:5A:CC:3C:7A:96:E5:11:"   \
    "1E:82"
#define KNOWN_HEX "39758b21bd71e07c592633e316288bd7c41b00a12d25465acc3c7a96e5111e82"

static const char KNOWN_CERT[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBozCCAUmgAwIBAgIUVZpDrZ385oKDwTRFWGADZSs5pUAwCgYIKoZIzj0EAwIw\n"
    "GDEWMBQGA1UEAwwNa25vd24uZXhhbXBsZTAeFw0yNjEyMDIwMDMzNTFaFw0zNjEx\n"
    "MjkwMDMzNTFaMBgxFjAUBgNVBAMMDWtub3duLmV4YW1wbGUwWTATBgcqhkjOPQIB\n"
    "BggqhkjOPQMBBwNCAAQbjH3R6EsxALhMvDG69riqvDat9Rq/rulJOWIWp+7dYJkR\n"
    "eFjh39r19GZ8M95DQcUgt3McM3Q+IIzPLzV1F9Lxo3EwbzAdBgNVHQ4EFgQUlMDq\n"
    "LbgcQSIPYDCB/7tu8yqB7jowHwYDVR0jBBgwFoAUlMDqLbgcQSIPYDCB/7tu8yqB\n"
    "7jowDwYDVR0TAQH/BAUwAwEB/zAcBgNVHREEFTATghFrbm93bi1zYW4uZXhhbXBs\n"
    "ZTAKBggqhkjOPQQDAgNIADBFAiB9IIKmRhJ+ZCG7ZDVL3xMDdisGC5iJi/xwVD3B\n"
    "r4yKiQIhAMzCo4ykiAT4TpFJ4Z38i4o9hixCIDosNP4cMZnxxxR/\n"
    "-----END CERTIFICATE-----\n";

static const char LEAF_CERT[] = "-----BEGIN CERTIFICATE-----\n"
                                "MIIBIzCBygIUTy63xy+EPekVu5OAdNosJ70gKXMwCgYIKoZIzj0EAwIwEjEQMA4G\n"
                                "A1UEAwwHdGVzdC1jYTAeFw0yNjEyMDIwMDMzNTFaFw0zNjExMjkwMDMzNTFaMBcx\n"
                                "FTATBgNVBAMMDGxlYWYuZXhhbXBsZTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IA\n"
                                "BDUSpZL2gIbJW7WG2K9wsWNTsWXkPVHplZ1cvqCfQ9TjKWyjen8z87O+WLgLYKEY\n"
                                "DiyNnDazK9JPVHPVFo1t1G0wCgYIKoZIzj0EAwIDSAAwRQIhAMl+Xq+1SKCIxD3c\n"
                                "JZzMOwBjY3w+r9yaVR7DBiYZTGrYAiAkfwst8xwBrVX/sRgdEmOrq2liSl3wJFdw\n"
                                "4Yoz9+uwSg==\n"
                                "-----END CERTIFICATE-----\n";

static const char LEAF_KEY[] = "-----BEGIN PRIVATE KEY-----\n"
                               "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg+CB2scWDogGbfIro\n"
                               "0CDhOwgiGj1O0tknXtko6UiM2uehRANCAAQ1EqWS9oCGyVu1htivcLFjU7Fl5D1R\n"
                               "6ZWdXL6gn0PU4ylso3p/M/Ozvli4C2ChGA4sjZw2syvST1Rz1RaNbdRt\n"
                               "-----END PRIVATE KEY-----\n";

static char tmpdir[64];

static int setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/st-test-tls-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int teardown_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static const char *write_file(const char *name, const char *text)
{
    static char paths[8][128];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, 128, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_tls_fingerprint_of_a_known_cert(void **state)
{
    (void)state;
    st_tls_cert *c = NULL;
    char err[256] = "";
    assert_int_equal(st_tls_cert_from_pem(&c, KNOWN_CERT, "known", err, sizeof(err)), 0);
    assert_string_equal(st_tls_cert_fingerprint(c), KNOWN_HEX);
    assert_string_equal(st_tls_cert_name(c), "known-san.example"); /* the SAN before the CN */
    assert_null(st_tls_cert_key_pem(c));
    st_tls_cert_free(c);
    st_tls_cert_free(NULL);

    assert_int_equal(st_tls_cert_from_pem(&c, "not a certificate", "the text", err, sizeof(err)),
                     ST_EINVAL);
    assert_non_null(strstr(err, "the text"));
    /* Without a SAN the CN is the name. */
    assert_int_equal(st_tls_cert_from_pem(&c, LEAF_CERT, "leaf", err, sizeof(err)), 0);
    assert_string_equal(st_tls_cert_name(c), "leaf.example");
    st_tls_cert_free(c);
}

static void test_tls_fingerprint_parse_forms(void **state)
{
    (void)state;
    char out[ST_TLS_FINGERPRINT_LEN], err[256];
    assert_int_equal(st_tls_fingerprint_parse(KNOWN_FINGERPRINT, "--x", out, err, sizeof(err)), 0);
    assert_string_equal(out, KNOWN_HEX);
    assert_int_equal(st_tls_fingerprint_parse(KNOWN_HEX, "--x", out, err, sizeof(err)), 0);
    assert_string_equal(out, KNOWN_HEX);
    assert_int_equal(
        st_tls_fingerprint_parse("SHA256:" KNOWN_FINGERPRINT, "--x", out, err, sizeof(err)), 0);
    assert_string_equal(out, KNOWN_HEX);
    assert_int_equal(st_tls_fingerprint_parse("sha256:" KNOWN_HEX, "--x", out, err, sizeof(err)),
                     0);
    assert_string_equal(out, KNOWN_HEX);

    static const char *const bad[] = {
        "",
        KNOWN_HEX "0",                                                      /* 65 digits */
        "39758b21bd71e07c592633e316288bd7c41b00a12d25465acc3c7a96e5111e8",  /* 63 */
        "g9758b21bd71e07c592633e316288bd7c41b00a12d25465acc3c7a96e5111e82", /* not hex */
        "3975:8B:21:BD:71:E0:7C:59:26:33:E3:16:28:8B:D7:C4:1B:00:A1:2D:25:46:5A:CC:3C:7A:96:E5:11"
        ":1E:82",              /* a colon out of place */
        KNOWN_FINGERPRINT ":", /* a trailing colon */
        " " KNOWN_HEX,
        "md5:" KNOWN_HEX,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        assert_int_equal(
            st_tls_fingerprint_parse(bad[i], "--tls-fingerprint", out, err, sizeof(err)),
            ST_EINVAL);
        assert_non_null(strstr(err, "--tls-fingerprint: not a SHA-256 fingerprint"));
    }
    assert_int_equal(st_tls_fingerprint_parse(NULL, "--x", out, err, sizeof(err)), ST_EINVAL);
}

static void test_tls_check_pin_goes_with_tls_only(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(st_tls_check_pin("tls+tcp://h:1", KNOWN_HEX, "--p", err, sizeof(err)), 0);
    assert_int_equal(st_tls_check_pin("tcp://h:1", NULL, "--p", err, sizeof(err)), 0);
    assert_int_equal(st_tls_check_pin("tls+tcp6://[::1]:1", NULL, "--p", err, sizeof(err)),
                     ST_EINVAL);
    assert_non_null(strstr(err, "needs the fingerprint"));
    assert_int_equal(
        st_tls_check_pin("tcp://h:1", KNOWN_HEX, "STAMPEDE_TLS_FINGERPRINT", err, sizeof(err)),
        ST_EINVAL);
    assert_non_null(strstr(err, "STAMPEDE_TLS_FINGERPRINT: goes with a tls+tcp://"));
    assert_int_equal(st_tls_check_pin("tls+tcp4://h:1", "abc", "--p", err, sizeof(err)), ST_EINVAL);
    assert_true(st_tls_url_is_tls("tls+tcp://h:1"));
    assert_true(st_tls_url_is_tls("tls+tcp4://h:1"));
    assert_false(st_tls_url_is_tls("tcp://h:1"));
    assert_false(st_tls_url_is_tls("tls+ws://h:1"));
    assert_false(st_tls_url_is_tls(NULL));
}

static void test_tls_make_and_load(void **state)
{
    (void)state;
    st_tls_cert *a = NULL, *b = NULL, *l = NULL;
    char err[512] = "";
    assert_int_equal(st_tls_cert_make(&a, 3600, err, sizeof(err)), 0);
    assert_int_equal(st_tls_cert_make(&b, 3600, err, sizeof(err)), 0);
    assert_string_equal(st_tls_cert_name(a), ST_TLS_CERT_NAME);
    assert_int_equal(strlen(st_tls_cert_fingerprint(a)), 64);
    assert_string_not_equal(st_tls_cert_fingerprint(a), st_tls_cert_fingerprint(b));
    assert_non_null(strstr(st_tls_cert_key_pem(a), "PRIVATE KEY"));
    assert_null(strstr(st_tls_cert_pem(a), "PRIVATE KEY"));

    /* What stampede run writes is what it loads, with the same fingerprint. */
    const char *cert = write_file("a.pem", st_tls_cert_pem(a));
    const char *key = write_file("a.key", st_tls_cert_key_pem(a));
    assert_int_equal(st_tls_cert_load(&l, cert, key, err, sizeof(err)), 0);
    assert_string_equal(st_tls_cert_fingerprint(l), st_tls_cert_fingerprint(a));
    st_tls_cert_free(l);

    /* Another certificate's key: refused, the message naming the files and nothing of the key. */
    const char *other_key = write_file("b.key", st_tls_cert_key_pem(b));
    assert_int_equal(st_tls_cert_load(&l, cert, other_key, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "--tls-key"));
    assert_non_null(strstr(err, "b.key"));
    assert_null(strstr(err, "PRIVATE"));
    assert_int_equal(st_tls_cert_load(&l, key, key, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "--tls-cert"));
    assert_int_equal(st_tls_cert_load(&l, cert, cert, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "no unencrypted PEM private key"));
    char missing[128];
    snprintf(missing, sizeof(missing), "%s/missing.pem", tmpdir);
    assert_int_equal(st_tls_cert_load(&l, missing, key, err, sizeof(err)), ST_ENOTFOUND);
    assert_int_equal(st_tls_cert_load(&l, tmpdir, key, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "not a regular file"));

    /* A certificate signed by another: agents could not pin it as their only trust. */
    const char *leaf = write_file("leaf.pem", LEAF_CERT);
    const char *leaf_key = write_file("leaf.key", LEAF_KEY);
    assert_int_equal(st_tls_cert_load(&l, leaf, leaf_key, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "self-signed"));

    assert_int_equal(st_tls_cert_make(&l, 0, err, sizeof(err)), ST_EINVAL);
    assert_int_equal(st_tls_cert_make(&l, 401.0 * 86400, err, sizeof(err)), ST_EINVAL);
    st_tls_cert_free(a);
    st_tls_cert_free(b);
}

/* A REP socket listening on 127.0.0.1 (TLS with c when c is not NULL); *port gets its port. */
static nng_socket listen_on(const st_tls_cert *c, int *port)
{
    nng_socket s;
    nng_listener l;
    assert_int_equal(nng_rep0_open(&s), 0);
    assert_int_equal(nng_listener_create(&l, s, c ? "tls+tcp://127.0.0.1:0" : "tcp://127.0.0.1:0"),
                     0);
    if (c) {
        nng_tls_config *cfg;
        assert_int_equal(nng_tls_config_alloc(&cfg, NNG_TLS_MODE_SERVER), 0);
        assert_int_equal(
            nng_tls_config_own_cert(cfg, st_tls_cert_pem(c), st_tls_cert_key_pem(c), NULL), 0);
        assert_int_equal(nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg), 0);
        nng_tls_config_free(cfg);
    }
    assert_int_equal(nng_listener_start(l, 0), 0);
    nng_sockaddr sa;
    assert_int_equal(nng_listener_get_addr(l, NNG_OPT_LOCADDR, &sa), 0);
    *port = ntohs(sa.s_in.sa_port);
    return s;
}

/* Whether a REQ socket trusting only `trusted` (as agent/remote.c dials) connects to port: 0, or
 * nng's error (-1 when the set-up failed). */
static int dial_trusting(const st_tls_cert *trusted, int port)
{
    char url[64];
    snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d", port);
    nng_socket s;
    nng_dialer d;
    nng_tls_config *cfg = NULL;
    if (nng_req0_open(&s) != 0) {
        return -1;
    }
    int rv = -1;
    if (nng_dialer_create(&d, s, url) == 0 &&
        nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT) == 0 &&
        nng_tls_config_ca_chain(cfg, st_tls_cert_pem(trusted), NULL) == 0 &&
        nng_tls_config_server_name(cfg, st_tls_cert_name(trusted)) == 0 &&
        nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED) == 0 &&
        nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg) == 0) {
        rv = nng_dialer_start(d, 0);
    }
    if (cfg) {
        nng_tls_config_free(cfg);
    }
    nng_close(s);
    return rv;
}

/* The second step of pinning: nng trusting only the pinned certificate talks to its holder and
 * refuses another certificate of the same name. It runs in a child process, before this process
 * uses nng: nng 1.5.2 may keep a closed TLS connection's memory to the end, which the leak check
 * of sanitizer builds would blame on the test. The child exits without that check. */
static void test_tls_nng_trusts_only_the_pinned_cert(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        st_tls_cert *good = NULL, *impostor = NULL;
        char err[256];
        int port, port_impostor, code = 0;
        if (st_tls_cert_make(&good, 3600, err, sizeof(err)) ||
            st_tls_cert_make(&impostor, 3600, err, sizeof(err))) {
            _exit(10);
        }
        nng_socket s = listen_on(good, &port);
        nng_socket si = listen_on(impostor, &port_impostor);
        if (dial_trusting(good, port) != 0) {
            code = 11; /* the holder of the pinned certificate refused */
        } else if (dial_trusting(good, port_impostor) == 0) {
            code = 12; /* an impostor accepted */
        }
        nng_close(s);
        nng_close(si);
        _exit(code);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_tls_fetch_pinned(void **state)
{
    (void)state;
    st_tls_cert *good = NULL, *impostor = NULL, *got = NULL;
    char err[512] = "", url[64];
    assert_int_equal(st_tls_cert_make(&good, 3600, err, sizeof(err)), 0);
    assert_int_equal(st_tls_cert_make(&impostor, 3600, err, sizeof(err)), 0);
    int port, port_impostor, port_plain;
    nng_socket s = listen_on(good, &port);
    nng_socket si = listen_on(impostor, &port_impostor);
    nng_socket sp = listen_on(NULL, &port_plain);

    snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d", port);
    assert_int_equal(
        st_tls_fetch_pinned(url, st_tls_cert_fingerprint(good), 2000, &got, err, sizeof(err)), 0);
    assert_string_equal(st_tls_cert_fingerprint(got), st_tls_cert_fingerprint(good));
    assert_string_equal(st_tls_cert_pem(got), st_tls_cert_pem(good));
    assert_null(st_tls_cert_key_pem(got));
    st_tls_cert_free(got);

    /* A mismatched pin is refused, naming both fingerprints. */
    got = NULL;
    snprintf(url, sizeof(url), "tls+tcp4://127.0.0.1:%d", port_impostor);
    assert_int_equal(
        st_tls_fetch_pinned(url, st_tls_cert_fingerprint(good), 2000, &got, err, sizeof(err)),
        ST_EAUTH);
    assert_null(got);
    assert_non_null(strstr(err, st_tls_cert_fingerprint(good)));
    assert_non_null(strstr(err, st_tls_cert_fingerprint(impostor)));

    /* Not TLS at the port; nothing at the port; not a TLS URL. */
    snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d", port_plain);
    assert_int_equal(st_tls_fetch_pinned(url, KNOWN_HEX, 2000, &got, err, sizeof(err)), ST_EPROTO);
    assert_non_null(strstr(err, "handshake"));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d", ntohs(sa.sin_port));
    assert_int_equal(st_tls_fetch_pinned(url, KNOWN_HEX, 2000, &got, err, sizeof(err)),
                     ST_ECONNECT);
    close(fd);
    assert_int_equal(
        st_tls_fetch_pinned("tcp://127.0.0.1:1", KNOWN_HEX, 100, &got, err, sizeof(err)),
        ST_EINVAL);
    assert_int_equal(
        st_tls_fetch_pinned("tls+tcp://127.0.0.1", KNOWN_HEX, 100, &got, err, sizeof(err)),
        ST_EINVAL);
    assert_int_equal(st_tls_fetch_pinned("tls+tcp://:7400", KNOWN_HEX, 100, &got, err, sizeof(err)),
                     ST_EINVAL);

    nng_close(s);
    nng_close(si);
    nng_close(sp);
    st_tls_cert_free(good);
    st_tls_cert_free(impostor);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* First: it forks before this process starts nng's threads. */
        cmocka_unit_test(test_tls_nng_trusts_only_the_pinned_cert),
        cmocka_unit_test(test_tls_fingerprint_of_a_known_cert),
        cmocka_unit_test(test_tls_fingerprint_parse_forms),
        cmocka_unit_test(test_tls_check_pin_goes_with_tls_only),
        cmocka_unit_test(test_tls_make_and_load),
        cmocka_unit_test(test_tls_fetch_pinned),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
