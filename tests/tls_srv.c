/*
 * The TLS tests' rig (see tls_srv.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tls_srv.h"

#include "loopback.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- certificates ---- */

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(cert, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

static void write_pem(const char *path, const tls_id *id, bool key)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    int ok = key ? PEM_write_PrivateKey(f, id->key, NULL, NULL, 0, NULL, NULL)
                 : PEM_write_X509(f, id->cert);
    assert_int_equal(ok, 1);
    assert_int_equal(fclose(f), 0);
}

void tls_id_make(tls_id *id, const char *dir, const char *name, const char *cn, const char *san,
                 long from_s, long to_s, const tls_id *issuer, bool ca)
{
    static long serial = 1;
    memset(id, 0, sizeof(*id));
    id->key = EVP_EC_gen("P-256");
    assert_non_null(id->key);
    X509 *c = X509_new();
    assert_non_null(c);
    assert_int_equal(X509_set_version(c, 2), 1);
    ASN1_INTEGER_set(X509_get_serialNumber(c), serial++ + (long)getpid() * 1000);
    X509_gmtime_adj(X509_getm_notBefore(c), from_s);
    X509_gmtime_adj(X509_getm_notAfter(c), to_s);
    X509_NAME *n = X509_get_subject_name(c);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer->cert) : n);
    assert_int_equal(X509_set_pubkey(c, id->key), 1);
    X509 *icert = issuer ? issuer->cert : c;
    add_ext(c, icert, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    add_ext(c, icert, NID_key_usage,
            ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    add_ext(c, icert, NID_subject_key_identifier, "hash");
    if (issuer) {
        add_ext(c, icert, NID_authority_key_identifier, "keyid:always");
    }
    if (!ca) {
        add_ext(c, icert, NID_ext_key_usage, "serverAuth");
    }
    if (san) {
        add_ext(c, icert, NID_subject_alt_name, san);
    }
    assert_true(X509_sign(c, issuer ? issuer->key : id->key, EVP_sha256()) > 0);
    id->cert = c;
    snprintf(id->cert_file, sizeof(id->cert_file), "%s/%s.crt", dir, name);
    snprintf(id->key_file, sizeof(id->key_file), "%s/%s.key", dir, name);
    write_pem(id->cert_file, id, false);
    write_pem(id->key_file, id, true);
}

void tls_id_fini(tls_id *id)
{
    X509_free(id->cert);
    EVP_PKEY_free(id->key);
    memset(id, 0, sizeof(*id));
}

void tls_dir_make(char *dir, size_t len)
{
    snprintf(dir, len, "%s/st-tls-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(dir));
}

void tls_dir_remove(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        return;
    }
    struct dirent *de;
    char path[512];
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            unlink(path);
        }
    }
    closedir(d);
    rmdir(dir);
}

/* ---- the server ---- */

#define OK_BODY_RESPONSE "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
#define CLOSE_RESPONSE   "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"

/* Chooses the first of the server's protocols (its cfg.alpn, comma-separated) that the client
 * offers (in: a length byte before each name); none: the handshake fails with an alert. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg)
{
    (void)ssl;
    const tsrv *s = arg;
    for (const char *ours = s->cfg.alpn; *ours;) {
        size_t len = strcspn(ours, ",");
        for (unsigned at = 0; at < inlen; at += 1u + in[at]) {
            if (in[at] == len && at + 1 + len <= inlen && memcmp(in + at + 1, ours, len) == 0) {
                *out = in + at + 1;
                *outlen = in[at];
                return SSL_TLSEXT_ERR_OK;
            }
        }
        ours += len + (ours[len] == ',');
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static int on_servername(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    tsrv *s = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    pthread_mutex_lock(&s->mu);
    snprintf(s->sni, sizeof(s->sni), "%s", name ? name : "");
    pthread_mutex_unlock(&s->mu);
    return SSL_TLSEXT_ERR_OK;
}

static void count(tsrv *s, int *field)
{
    pthread_mutex_lock(&s->mu);
    (*field)++;
    pthread_mutex_unlock(&s->mu);
}

static bool ssl_write_all(SSL *ssl, const char *buf, size_t len)
{
    while (len > 0) {
        int n = SSL_write(ssl, buf, (int)len);
        if (n <= 0) {
            return false;
        }
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

static void serve_http(tsrv *s, SSL *ssl)
{
    char buf[16384];
    size_t have = 0;
    const char *resp = s->cfg.response ? s->cfg.response
                       : s->cfg.close_each ? CLOSE_RESPONSE
                                           : OK_BODY_RESPONSE;
    for (;;) {
        char *end = memmem(buf, have, "\r\n\r\n", 4);
        if (end) {
            size_t used = (size_t)(end - buf) + 4;
            memmove(buf, buf + used, have - used);
            have -= used;
            if (!ssl_write_all(ssl, resp, strlen(resp))) {
                return;
            }
            count(s, &s->requests);
            if (s->cfg.close_each) {
                (void)SSL_shutdown(ssl);
                return;
            }
            continue;
        }
        if (have == sizeof(buf)) {
            return;
        }
        int n = SSL_read(ssl, buf + have, (int)(sizeof(buf) - have));
        if (n <= 0) {
            return;
        }
        have += (size_t)n;
    }
}

typedef struct conn_arg {
    tsrv *s;
    int i;
} conn_arg;

static void conn_main(void *arg)
{
    conn_arg *ca = arg;
    tsrv *s = ca->s;
    pthread_mutex_lock(&s->mu);
    int fd = s->fds[ca->i];
    pthread_mutex_unlock(&s->mu);
    free(ca);
    if (s->cfg.mode == TSRV_SILENT) {
        char b[4096];
        while (recv(fd, b, sizeof(b), 0) > 0) {
        }
        return;
    }
    if (s->cfg.mode == TSRV_GARBAGE) {
        char b[4096];
        (void)recv(fd, b, sizeof(b), 0);
        static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        (void)send(fd, bad, sizeof(bad) - 1, MSG_NOSIGNAL);
        while (recv(fd, b, sizeof(b), 0) > 0) {
        }
        return;
    }
    SSL *ssl = SSL_new(s->ctx);
    assert_non_null(ssl);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) != 1) {
        count(s, &s->failed);
        ERR_clear_error();
        SSL_free(ssl);
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->handshakes++;
    s->resumed += SSL_session_reused(ssl) ? 1 : 0;
    s->tls13 += SSL_version(ssl) == TLS1_3_VERSION ? 1 : 0;
    const unsigned char *p = NULL;
    unsigned plen = 0;
    SSL_get0_alpn_selected(ssl, &p, &plen);
    s->alpn_chosen += plen > 0 ? 1 : 0;
    pthread_mutex_unlock(&s->mu);
    if (s->cfg.mode == TSRV_ECHO) {
        char b[16384];
        for (;;) {
            int n = SSL_read(ssl, b, sizeof(b));
            if (n <= 0 || !ssl_write_all(ssl, b, (size_t)n)) {
                break;
            }
        }
    } else {
        serve_http(s, ssl);
    }
    ERR_clear_error();
    SSL_free(ssl);
    return;
}

/* Closes the connection's fd once its thread is done, so that a client waiting for the close
 * sees it; the slot's -1 tells tsrv_stop. */
static void *conn_thread(void *arg)
{
    conn_arg *ca = arg;
    tsrv *s = ca->s;
    int i = ca->i;
    conn_main(arg);
    pthread_mutex_lock(&s->mu);
    close(s->fds[i]);
    s->fds[i] = -1;
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void *accept_main(void *arg)
{
    tsrv *s = arg;
    for (;;) {
        int fd = accept(s->lfd, NULL, NULL);
        pthread_mutex_lock(&s->mu);
        if (fd < 0 || s->stopping || s->n_conns == TSRV_MAX_CONNS) {
            pthread_mutex_unlock(&s->mu);
            if (fd >= 0) {
                close(fd);
            }
            if (fd < 0 && errno == EINTR) {
                continue;
            }
            return NULL;
        }
        int i = s->n_conns++;
        s->fds[i] = fd;
        conn_arg *ca = malloc(sizeof(*ca));
        assert_non_null(ca);
        ca->s = s;
        ca->i = i;
        assert_int_equal(pthread_create(&s->threads[i], NULL, conn_thread, ca), 0);
        pthread_mutex_unlock(&s->mu);
    }
}

tsrv *tsrv_start(const tsrv_cfg *cfg)
{
    tsrv *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->cfg = *cfg;
    pthread_mutex_init(&s->mu, NULL);
    if (cfg->mode != TSRV_GARBAGE && cfg->mode != TSRV_SILENT) {
        s->ctx = SSL_CTX_new(TLS_server_method());
        assert_non_null(s->ctx);
        assert_int_equal(SSL_CTX_use_certificate_file(s->ctx, cfg->id->cert_file, SSL_FILETYPE_PEM),
                         1);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(s->ctx, cfg->id->key_file, SSL_FILETYPE_PEM),
                         1);
        if (cfg->max_version) {
            SSL_CTX_set_max_proto_version(s->ctx, cfg->max_version);
        }
        if (cfg->no_tickets) {
            SSL_CTX_set_options(s->ctx, SSL_OP_NO_TICKET);
            SSL_CTX_set_num_tickets(s->ctx, 0);
            SSL_CTX_set_session_cache_mode(s->ctx, SSL_SESS_CACHE_OFF);
        }
        SSL_CTX_set_tlsext_servername_callback(s->ctx, on_servername);
        SSL_CTX_set_tlsext_servername_arg(s->ctx, s);
        if (cfg->alpn) {
            SSL_CTX_set_alpn_select_cb(s->ctx, on_alpn, s);
        }
    }
    int family = cfg->family ? cfg->family : AF_INET;
    s->lfd = loopback_listen(family, 256, 0, &s->port);
    /* The server's threads (and those they start) write with OpenSSL's socket BIO, which raises
     * SIGPIPE when a client went away: blocked there, so that only the client's code under test
     * could end the process with it. */
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    assert_int_equal(pthread_create(&s->accept_thread, NULL, accept_main, s), 0);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return s;
}

void tsrv_stop(tsrv *s)
{
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    shutdown(s->lfd, SHUT_RDWR);
    for (int i = 0; i < s->n_conns; i++) {
        if (s->fds[i] >= 0) {
            shutdown(s->fds[i], SHUT_RDWR);
        }
    }
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->accept_thread, NULL);
    for (int i = 0; i < s->n_conns; i++) {
        pthread_join(s->threads[i], NULL);
    }
    close(s->lfd);
    SSL_CTX_free(s->ctx);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int tsrv_get(tsrv *s, const int *field)
{
    return locked_get(&s->mu, field);
}

int tsrv_wait(tsrv *s, const int *field, int want)
{
    return locked_wait(&s->mu, field, want);
}
