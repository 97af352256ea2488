/*
 * conn_io.c - plain and TLS byte channels for the engines (conn_io.h).
 *
 * OpenSSL's error queue is per thread and SSL_get_error reads it: whatever a failure left there is
 * cleared before returning, so that the next connection's WANT_READ is not mistaken for an error.
 */
#include "conn_io.h"

#include "error.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdint.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct st_conn_tls {
    SSL_CTX *ctx;
    BIO_METHOD *bio_meth; /* sockets through send(MSG_NOSIGNAL): see sock_write */
    char *host;
    bool ip; /* host is an IP literal: no SNI */
    bool insecure;
    SSL_SESSION *session; /* the newest the origin gave; ours (one reference) */
};

/* ---- the socket BIO ---- */

/* OpenSSL's own socket BIO writes with write(2): a peer that reset the connection would raise
 * SIGPIPE and end a process that does not ignore it. This one sends with MSG_NOSIGNAL. */
static int sock_write(BIO *b, const char *buf, int len)
{
    const st_conn_io *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n = send(c->fd, buf, (size_t)len, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        BIO_set_retry_write(b);
    }
    return (int)n;
}

static int sock_read(BIO *b, char *buf, int len)
{
    st_conn_io *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n = c->rx_stamps ? st_conn_io_recv_stamped(c, buf, (size_t)len)
                             : recv(c->fd, buf, (size_t)len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        BIO_set_retry_read(b);
    }
    if (n == 0) {
        errno = 0; /* an orderly EOF, which SSL_ERROR_SYSCALL reports with errno 0 */
    }
    return (int)n;
}

static long sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int sock_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

/* ---- context ---- */

/* Keeps the newest session: TLS 1.3 sends tickets after the handshake (read with the first
 * response), TLS 1.2 gives one at the handshake's end. Returning 1 keeps the reference. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    st_conn_tls *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    if (t->session) {
        SSL_SESSION_free(t->session);
    }
    t->session = sess;
    return 1;
}

/* "h2,http/1.1" -> ALPN wire format (length-prefixed). */
static int alpn_wire(const char *list, unsigned char **out, size_t *out_len, char *err,
                     size_t err_len)
{
    size_t n = strlen(list);
    unsigned char *w = malloc(n + 1);
    if (!w) {
        return ST_ENOMEM;
    }
    size_t at = 0;
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0 || len > 255) {
            free(w);
            return st_errf(err, err_len, ST_EINVAL,
                           "TLS: ALPN list \"%s\" has an empty or over-long protocol name", list);
        }
        w[at++] = (unsigned char)len;
        memcpy(w + at, p, len);
        at += len;
        if (!end) {
            break;
        }
        p = end + 1;
    }
    *out = w;
    *out_len = at;
    return 0;
}

/* The CAs of a PEM text in memory, in place of the system's. */
static int load_cacert_pem(SSL_CTX *ctx, const char *name, const char *pem, size_t len, char *err,
                           size_t err_len)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    STACK_OF(X509_INFO) *infos = bio ? PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int added = 0;
    for (int i = 0; infos && i < sk_X509_INFO_num(infos); i++) {
        X509_INFO *info = sk_X509_INFO_value(infos, i);
        if (info->x509 && X509_STORE_add_cert(store, info->x509) == 1) {
            added++;
        }
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    ERR_clear_error();
    if (added == 0) {
        return st_errf(err, err_len, ST_EIO, "--cacert %s: holds no PEM certificate OpenSSL can read",
                       name ? name : "(given in memory)");
    }
    return 0;
}

static int load_cacert(SSL_CTX *ctx, const char *file, char *err, size_t err_len)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        int e = errno;
        return st_errf(err, err_len, e == ENOENT ? ST_ENOTFOUND : ST_EIO,
                       "--cacert %s: cannot open it: %s", file, strerror(e));
    }
    fclose(f);
    if (SSL_CTX_load_verify_locations(ctx, file, NULL) != 1) {
        ERR_clear_error();
        return st_errf(err, err_len, ST_EIO,
                       "--cacert %s: holds no PEM certificate OpenSSL can read", file);
    }
    return 0;
}

int st_conn_tls_new(st_conn_tls **out, const st_conn_tls_cfg *cfg, char *err, size_t err_len)
{
    char dummy[1];
    if (!err || err_len == 0) {
        err = dummy;
        err_len = sizeof(dummy);
    }
    if (!out || !cfg || !cfg->host || !*cfg->host) {
        return st_errf(err, err_len, ST_EINVAL, "TLS: no host to connect to");
    }
    int rc = 0;
    unsigned char *alpn = NULL;
    size_t alpn_len = 0;
    st_conn_tls *t = calloc(1, sizeof(*t));
    if (!t || !(t->host = strdup(cfg->host))) {
        rc = ST_ENOMEM;
        goto out;
    }
    unsigned char addr[sizeof(struct in6_addr)];
    t->ip = inet_pton(AF_INET, cfg->host, addr) == 1 || inet_pton(AF_INET6, cfg->host, addr) == 1;
    t->insecure = cfg->insecure;
    if (cfg->alpn && *cfg->alpn) {
        rc = alpn_wire(cfg->alpn, &alpn, &alpn_len, err, err_len);
        if (rc != 0) {
            goto out;
        }
    }
    t->bio_meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "stampede socket");
    if (!t->bio_meth || BIO_meth_set_write(t->bio_meth, sock_write) != 1 ||
        BIO_meth_set_read(t->bio_meth, sock_read) != 1 ||
        BIO_meth_set_ctrl(t->bio_meth, sock_ctrl) != 1 ||
        BIO_meth_set_create(t->bio_meth, sock_create) != 1) {
        rc = ST_ENOMEM;
        goto out;
    }
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (!t->ctx) {
        rc = st_errf(err, err_len, ST_ESYSTEM, "TLS: OpenSSL cannot make a client context");
        goto out;
    }
    SSL_CTX_set_app_data(t->ctx, t);
    if (SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION) != 1) {
        rc = st_errf(err, err_len, ST_ESYSTEM, "TLS: OpenSSL refuses TLS 1.2 as the minimum");
        goto out;
    }
    /* Partial writes and a moving buffer match how the engines write; unexpected EOF reads as a
     * close, since an HTTP server may end a response by closing without close_notify. */
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION |
                                    SSL_OP_NO_COMPRESSION);
    /* One recv(2) takes whatever records are there instead of a header and a body each. */
    SSL_CTX_set_read_ahead(t->ctx, 1);
    SSL_CTX_set_session_cache_mode(t->ctx,
                                   SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(t->ctx, on_new_session);
    if (alpn && SSL_CTX_set_alpn_protos(t->ctx, alpn, (unsigned)alpn_len) != 0) {
        rc = st_errf(err, err_len, ST_ENOMEM, "TLS: cannot set the ALPN list");
        goto out;
    }
    if (cfg->cacert_pem || cfg->cacert) {
        rc = cfg->cacert_pem ? load_cacert_pem(t->ctx, cfg->cacert, cfg->cacert_pem,
                                               cfg->cacert_pem_len, err, err_len)
                             : load_cacert(t->ctx, cfg->cacert, err, err_len);
        if (rc != 0) {
            goto out;
        }
    } else if (!cfg->insecure && SSL_CTX_set_default_verify_paths(t->ctx) != 1) {
        rc = st_errf(err, err_len, ST_ESYSTEM, "TLS: cannot load the system's CA certificates");
        goto out;
    }
    if (cfg->insecure) {
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
        X509_VERIFY_PARAM *param = SSL_CTX_get0_param(t->ctx);
        int ok = t->ip ? X509_VERIFY_PARAM_set1_ip_asc(param, t->host)
                       : X509_VERIFY_PARAM_set1_host(param, t->host, 0);
        if (ok != 1) {
            rc = st_errf(err, err_len, ST_EINVAL, "TLS: cannot verify certificates for \"%s\"",
                         t->host);
            goto out;
        }
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    }
out:
    ERR_clear_error();
    free(alpn);
    if (rc != 0) {
        st_conn_tls_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void st_conn_tls_free(st_conn_tls *t)
{
    if (!t) {
        return;
    }
    if (t->session) {
        SSL_SESSION_free(t->session);
    }
    SSL_CTX_free(t->ctx);
    BIO_meth_free(t->bio_meth);
    free(t->host);
    free(t);
}

bool st_conn_tls_has_session(const st_conn_tls *t)
{
    return t && t->session && SSL_SESSION_is_resumable(t->session);
}

/* ---- connections ---- */

void st_conn_io_init(st_conn_io *c)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

int st_conn_io_start(st_conn_io *c, st_conn_tls *tls, int fd)
{
    c->ssl = NULL;
    c->tls = tls;
    c->fail_kind = ST_RES_OTHER;
    c->fail_why = NULL;
    c->rx_stamps = false;
    c->rx_real_ns = 0;
    if (tls) {
        SSL *ssl = SSL_new(tls->ctx);
        if (!ssl) {
            ERR_clear_error();
            return ST_ENOMEM;
        }
        BIO *bio = BIO_new(tls->bio_meth);
        if (!bio) {
            SSL_free(ssl);
            ERR_clear_error();
            return ST_ENOMEM;
        }
        BIO_set_data(bio, c); /* c->fd is set below, before any read or write */
        SSL_set_bio(ssl, bio, bio); /* ssl owns bio from here */
        if (!tls->ip && SSL_set_tlsext_host_name(ssl, tls->host) != 1) {
            SSL_free(ssl);
            ERR_clear_error();
            return ST_ESYSTEM;
        }
        SSL_set_connect_state(ssl);
        /* A session spoilt by a connection that broke is not offered again. */
        if (tls->session && SSL_SESSION_is_resumable(tls->session)) {
            (void)SSL_set_session(ssl, tls->session);
        }
        c->ssl = ssl;
    }
    c->fd = fd;
    return 0;
}

int st_conn_io_stamp_rx(st_conn_io *c)
{
    int on = 1;
    if (setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on)) != 0) {
        return ST_ESYSTEM;
    }
    c->rx_stamps = true;
    return 0;
}

ssize_t st_conn_io_recv_stamped(st_conn_io *c, void *buf, size_t len)
{
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    union {
        char buf[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.buf,
        .msg_controllen = sizeof(control.buf),
    };
    ssize_t n = recvmsg(c->fd, &msg, 0);
    if (n <= 0) {
        return n;
    }
    /* Bytes that came without a stamp leave none: an earlier read's would be taken for theirs. */
    c->rx_real_ns = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS &&
            cm->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
            c->rx_real_ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
        }
    }
    return n;
}

uint64_t st_conn_io_rx_ns(const st_conn_io *c, uint64_t now_ns)
{
    if (!c->rx_stamps || c->rx_real_ns == 0) {
        return now_ns;
    }
    /* The stamp is on the real-time clock: its age there is its age on the monotonic one (both
     * run at the same rate over so short a time). */
    struct timespec r;
    clock_gettime(CLOCK_REALTIME, &r);
    uint64_t real_now = (uint64_t)r.tv_sec * 1000000000ULL + (uint64_t)r.tv_nsec;
    if (c->rx_real_ns >= real_now) {
        return now_ns;
    }
    uint64_t age = real_now - c->rx_real_ns;
    return age < now_ns ? now_ns - age : now_ns;
}

int st_conn_io_sys_error(st_conn_io *c, int err)
{
    c->fail_kind = ST_RES_OTHER;
    switch (err) {
    case ECONNRESET:
        c->fail_why = "connection reset by peer";
        break;
    case EPIPE:
        c->fail_why = "broken pipe";
        break;
    case ETIMEDOUT:
        c->fail_why = "connection timed out";
        break;
    default:
        c->fail_why = "socket error";
        break;
    }
    return ST_CONN_IO_ERROR;
}

/* The reason of the error OpenSSL queued last, then an empty queue. */
static const char *ssl_reason(const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return why ? why : fallback;
}

int st_conn_io_tls_handshake(st_conn_io *c)
{
    int rc = SSL_do_handshake(c->ssl);
    if (rc == 1) {
        return 0;
    }
    int saved_errno = errno;
    int e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_WANT_READ) {
        return ST_CONN_IO_WANT_READ;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        return ST_CONN_IO_WANT_WRITE;
    }
    c->fail_kind = ST_RES_TLS;
    long v = SSL_get_verify_result(c->ssl);
    unsigned long last = ERR_peek_last_error();
    if (!c->tls->insecure && v != X509_V_OK &&
        (ERR_GET_REASON(last) == SSL_R_CERTIFICATE_VERIFY_FAILED || last == 0)) {
        c->fail_kind = ST_RES_CERT;
        c->fail_why = X509_verify_cert_error_string(v);
        ERR_clear_error();
    } else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) {
        ERR_clear_error();
        c->fail_why = saved_errno == ECONNRESET ? "connection reset during the TLS handshake"
                                                : "connection closed during the TLS handshake";
    } else {
        c->fail_why = ssl_reason("TLS handshake failed");
    }
    return ST_CONN_IO_ERROR;
}

/* A failed SSL_read or SSL_write whose return was r. */
static ssize_t tls_io_error(st_conn_io *c, int r, bool reading)
{
    int saved_errno = errno;
    int e = SSL_get_error(c->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        return ST_CONN_IO_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return ST_CONN_IO_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        if (reading) {
            return 0;
        }
        c->fail_kind = ST_RES_OTHER;
        c->fail_why = "the server closed the TLS connection";
        return ST_CONN_IO_ERROR;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        if (saved_errno == 0 && reading) {
            return 0; /* EOF without close_notify */
        }
        return st_conn_io_sys_error(c, saved_errno);
    default:
        c->fail_kind = ST_RES_OTHER;
        c->fail_why = ssl_reason("TLS record error");
        return ST_CONN_IO_ERROR;
    }
}

ssize_t st_conn_io_tls_read(st_conn_io *c, void *buf, size_t len)
{
    int n = SSL_read(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (n > 0) {
        return n;
    }
    return tls_io_error(c, n, true);
}

ssize_t st_conn_io_tls_write(st_conn_io *c, const void *buf, size_t len)
{
    int n = SSL_write(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (n > 0) {
        return n;
    }
    return tls_io_error(c, n, false);
}

bool st_conn_io_tls_pending(const st_conn_io *c)
{
    return SSL_has_pending(c->ssl) == 1;
}

size_t st_conn_io_alpn(const st_conn_io *c, const unsigned char **proto)
{
    const unsigned char *p = NULL;
    unsigned len = 0;
    if (c->ssl) {
        SSL_get0_alpn_selected(c->ssl, &p, &len);
    }
    if (proto) {
        *proto = len ? p : NULL;
    }
    return len;
}

bool st_conn_io_resumed(const st_conn_io *c)
{
    return c->ssl && SSL_is_init_finished(c->ssl) && SSL_session_reused(c->ssl) == 1;
}

void st_conn_io_close(st_conn_io *c, bool clean)
{
    if (c->ssl) {
        /* SSL_free of a connection that did not shut down marks its session unresumable (it
         * could have been cut by an attacker); one that ended in order keeps it. */
        if (clean && SSL_is_init_finished(c->ssl)) {
            SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        }
        SSL_free(c->ssl);
        c->ssl = NULL;
        ERR_clear_error();
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->tls = NULL;
}
