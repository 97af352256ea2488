#include "tls.h"
#include "error.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A PEM file larger than this is not a certificate or a key. */
#define PEM_MAX_BYTES (1u << 20)

struct st_tls_cert {
    char *cert_pem;
    char *key_pem; /* NULL for a fetched certificate */
    size_t key_len;
    char fingerprint[ST_TLS_FINGERPRINT_LEN];
    char name[256];
};

void st_tls_cert_free(st_tls_cert *c)
{
    if (!c) {
        return;
    }
    if (c->key_pem) {
        OPENSSL_cleanse(c->key_pem, c->key_len);
        free(c->key_pem);
    }
    free(c->cert_pem);
    free(c);
}

const char *st_tls_cert_pem(const st_tls_cert *c)
{
    return c->cert_pem;
}

const char *st_tls_cert_key_pem(const st_tls_cert *c)
{
    return c->key_pem;
}

const char *st_tls_cert_fingerprint(const st_tls_cert *c)
{
    return c->fingerprint;
}

const char *st_tls_cert_name(const st_tls_cert *c)
{
    return c->name;
}

/* The bytes a memory BIO holds, as a NUL-terminated heap string (*len without the NUL). */
static char *bio_string(BIO *b, size_t *len)
{
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s) {
        memcpy(s, data, (size_t)n);
        s[n] = 0;
        *len = (size_t)n;
    }
    return s;
}

/* The name agents verify: the first DNS subjectAltName, else the subject's CN. */
static void cert_name(X509 *x, char *out, size_t len)
{
    out[0] = 0;
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type == GEN_DNS) {
            const unsigned char *s = ASN1_STRING_get0_data(g->d.dNSName);
            int n = ASN1_STRING_length(g->d.dNSName);
            if (n > 0 && (size_t)n < len && !memchr(s, 0, (size_t)n)) {
                memcpy(out, s, (size_t)n);
                out[n] = 0;
                break;
            }
        }
    }
    GENERAL_NAMES_free(names);
    if (!out[0] &&
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, (int)len) < 0) {
        out[0] = 0;
    }
}

/* A certificate record for x: its PEM, fingerprint and name; the key is the caller's to add. */
static int cert_of_x509(X509 *x, st_tls_cert **out)
{
    st_tls_cert *c = calloc(1, sizeof(*c));
    BIO *b = BIO_new(BIO_s_mem());
    unsigned char *der = NULL;
    int der_len = i2d_X509(x, &der);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    int rc = ST_ENOMEM;
    if (!c || !b || der_len <= 0 || !PEM_write_bio_X509(b, x)) {
        goto out;
    }
    size_t n;
    if (!(c->cert_pem = bio_string(b, &n))) {
        goto out;
    }
    if (!EVP_Digest(der, (size_t)der_len, md, &md_len, EVP_sha256(), NULL) || md_len != 32) {
        rc = ST_ESYSTEM;
        goto out;
    }
    for (unsigned int i = 0; i < md_len; i++) {
        snprintf(c->fingerprint + 2 * i, 3, "%02x", md[i]);
    }
    cert_name(x, c->name, sizeof(c->name));
    *out = c;
    c = NULL;
    rc = 0;
out:
    OPENSSL_free(der);
    BIO_free(b);
    st_tls_cert_free(c);
    ERR_clear_error();
    return rc;
}

/* Adds k's private key to c as PEM (PKCS#8, which mbedTLS reads). */
static int cert_set_key(st_tls_cert *c, EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    int rc = ST_ENOMEM;
    if (b && PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL)) {
        c->key_pem = bio_string(b, &c->key_len);
        rc = c->key_pem ? 0 : ST_ENOMEM;
    }
    if (b) {
        /* The BIO's buffer held the key too. */
        char *data;
        long n = BIO_get_mem_data(b, &data);
        if (n > 0) {
            OPENSSL_cleanse(data, (size_t)n);
        }
        BIO_free(b);
    }
    return rc;
}

static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    int ok = e && X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok;
}

int st_tls_cert_make(st_tls_cert **out, double valid_s, char *err, size_t err_len)
{
    if (!(valid_s > 0) || valid_s > 400.0 * 86400) {
        return st_errf(err, err_len, ST_EINVAL,
                       "a certificate's validity must be above 0 and at most 400 days");
    }
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    BIGNUM *serial = BN_new();
    st_tls_cert *c = NULL;
    int rc = ST_ESYSTEM;
    unsigned char rnd[16];
    if (!k || !x || !serial) {
        goto out;
    }
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        goto out;
    }
    rnd[0] &= 0x7f; /* a positive serial number */
    X509_NAME *subject = X509_get_subject_name(x);
    if (!X509_set_version(x, 2) || !BN_bin2bn(rnd, sizeof(rnd), serial) ||
        !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), (long)valid_s) ||
        !X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                                    (const unsigned char *)ST_TLS_CERT_NAME, -1, -1, 0) ||
        !X509_set_issuer_name(x, subject) || !X509_set_pubkey(x, k) ||
        !add_ext(x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
        !add_ext(x, NID_key_usage, "critical,digitalSignature,keyCertSign") ||
        !add_ext(x, NID_ext_key_usage, "serverAuth") ||
        !add_ext(x, NID_subject_alt_name, "DNS:" ST_TLS_CERT_NAME) ||
        !add_ext(x, NID_subject_key_identifier, "hash") || !X509_sign(x, k, EVP_sha256())) {
        goto out;
    }
    if ((rc = cert_of_x509(x, &c)) || (rc = cert_set_key(c, k))) {
        goto out;
    }
    *out = c;
    c = NULL;
out:
    if (rc == ST_ESYSTEM) {
        st_errf(err, err_len, rc, "cannot make the run's TLS certificate: %s",
                ERR_reason_error_string(ERR_peek_last_error())
                    ? ERR_reason_error_string(ERR_peek_last_error())
                    : "OpenSSL failed");
    }
    st_tls_cert_free(c);
    BN_free(serial);
    X509_free(x);
    EVP_PKEY_free(k);
    ERR_clear_error();
    return rc;
}

/* A BIO reading a regular file of at most PEM_MAX_BYTES. A FIFO or a device is refused rather
 * than waited on (the file is opened without blocking, then checked). */
static int open_pem_file(const char *flag, const char *path, BIO **out, char *err, size_t err_len)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        return st_errf(err, err_len, e == ENOENT ? ST_ENOTFOUND : ST_EIO, "%s %s: %s", flag, path,
                       strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)PEM_MAX_BYTES) {
        close(fd);
        return st_errf(err, err_len, ST_EINVAL, "%s %s: not a regular file of at most 1 MiB", flag,
                       path);
    }
    if (!(*out = BIO_new_fd(fd, BIO_CLOSE))) {
        close(fd);
        return ST_ENOMEM;
    }
    return 0;
}

/* Never asks for a passphrase on the terminal: an encrypted key is refused. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static X509 *x509_of_pem(const char *pem, size_t len)
{
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, no_passphrase, NULL) : NULL;
    BIO_free(b);
    return x;
}

int st_tls_cert_from_pem(st_tls_cert **out, const char *pem, const char *what, char *err,
                         size_t err_len)
{
    X509 *x = x509_of_pem(pem, strlen(pem));
    ERR_clear_error();
    if (!x) {
        return st_errf(err, err_len, ST_EINVAL, "%s: no PEM certificate in it", what);
    }
    int rc = cert_of_x509(x, out);
    X509_free(x);
    return rc;
}

int st_tls_cert_load(st_tls_cert **out, const char *cert_file, const char *key_file, char *err,
                     size_t err_len)
{
    BIO *cert_bio = NULL, *key_bio = NULL;
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    st_tls_cert *c = NULL;
    int rc;
    if ((rc = open_pem_file("--tls-cert", cert_file, &cert_bio, err, err_len)) ||
        (rc = open_pem_file("--tls-key", key_file, &key_bio, err, err_len))) {
        goto out;
    }
    if (!(x = PEM_read_bio_X509(cert_bio, NULL, no_passphrase, NULL))) {
        rc = st_errf(err, err_len, ST_EINVAL, "--tls-cert %s: no PEM certificate in it", cert_file);
        goto out;
    }
    if (!(k = PEM_read_bio_PrivateKey(key_bio, NULL, no_passphrase, NULL))) {
        rc = st_errf(err, err_len, ST_EINVAL, "--tls-key %s: no unencrypted PEM private key in it",
                     key_file);
        goto out;
    }
    if (X509_check_private_key(x, k) != 1) {
        rc = st_errf(err, err_len, ST_EINVAL,
                     "--tls-key %s: this key is not the one of the certificate in --tls-cert %s",
                     key_file, cert_file);
        goto out;
    }
    if (X509_check_issued(x, x) != X509_V_OK) {
        rc = st_errf(err, err_len, ST_EINVAL,
                     "--tls-cert %s: the certificate must be self-signed (agents pin it as their "
                     "only trusted certificate)",
                     cert_file);
        goto out;
    }
    char name[256];
    cert_name(x, name, sizeof(name));
    if (!name[0]) {
        rc = st_errf(err, err_len, ST_EINVAL,
                     "--tls-cert %s: the certificate names nothing (no DNS subjectAltName, no "
                     "CN): agents verify its name",
                     cert_file);
        goto out;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
        rc = st_errf(err, err_len, ST_EINVAL, "--tls-cert %s: the certificate has expired",
                     cert_file);
        goto out;
    }
    if ((rc = cert_of_x509(x, &c)) || (rc = cert_set_key(c, k))) {
        goto out;
    }
    *out = c;
    c = NULL;
out:
    st_tls_cert_free(c);
    EVP_PKEY_free(k);
    X509_free(x);
    BIO_free(key_bio);
    BIO_free(cert_bio);
    ERR_clear_error();
    return rc;
}

int st_tls_fingerprint_parse(const char *text, const char *what, char out[ST_TLS_FINGERPRINT_LEN],
                             char *err, size_t err_len)
{
    const char *p = text ? text : "";
    if (strncasecmp(p, "sha256:", 7) == 0) {
        p += 7;
    }
    size_t n = 0;
    bool colons = strchr(p, ':') != NULL;
    for (size_t i = 0; p[i]; i++) {
        bool at_colon = colons && i % 3 == 2;
        if (at_colon ? p[i] != ':' : !isxdigit((unsigned char)p[i]) || n == 64) {
            n = 0;
            break;
        }
        if (!at_colon) {
            out[n++] = (char)tolower((unsigned char)p[i]);
        }
    }
    if (n != 64 || (colons && strlen(p) != 95)) {
        return st_errf(err, err_len, ST_EINVAL,
                       "%s: not a SHA-256 fingerprint (64 hex digits, colons between bytes "
                       "allowed, as stampede run prints it)",
                       what);
    }
    out[64] = 0;
    return 0;
}

/* The scheme's length and address family of a tls+tcp URL, or 0. */
static size_t tls_scheme(const char *url, int *family)
{
    static const struct {
        const char *s;
        int family;
    } schemes[] = {{"tls+tcp://", AF_UNSPEC}, {"tls+tcp4://", AF_INET}, {"tls+tcp6://", AF_INET6}};
    for (size_t i = 0; url && i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        if (strncmp(url, schemes[i].s, strlen(schemes[i].s)) == 0) {
            *family = schemes[i].family;
            return strlen(schemes[i].s);
        }
    }
    return 0;
}

bool st_tls_url_is_tls(const char *url)
{
    int family;
    return tls_scheme(url, &family) > 0;
}

int st_tls_check_pin(const char *url, const char *pin, const char *pin_src, char *err,
                     size_t err_len)
{
    char normal[ST_TLS_FINGERPRINT_LEN];
    if (st_tls_url_is_tls(url) && !pin) {
        return st_errf(err, err_len, ST_EINVAL,
                       "--tls-fingerprint: a tls+tcp:// coordinator needs the fingerprint of its "
                       "certificate (--tls-fingerprint or STAMPEDE_TLS_FINGERPRINT)");
    }
    if (pin && !st_tls_url_is_tls(url)) {
        return st_errf(err, err_len, ST_EINVAL,
                       "%s: goes with a tls+tcp:// coordinator, not \"%s\"", pin_src, url);
    }
    return pin ? st_tls_fingerprint_parse(pin, pin_src, normal, err, err_len) : 0;
}

/* Host and port of a tls+tcp://HOST:PORT or tls+tcp://[V6]:PORT URL. */
static int split_url(const char *url, int *family, char *host, size_t host_len, char *port,
                     size_t port_len, char *err, size_t err_len)
{
    size_t skip = tls_scheme(url, family);
    const char *rest = url + skip, *colon = NULL;
    const char *h = rest;
    size_t hl = 0;
    if (skip && rest[0] == '[') {
        const char *close = strchr(rest, ']');
        if (close && close[1] == ':') {
            h = rest + 1;
            hl = (size_t)(close - h);
            colon = close + 1;
        }
    } else if (skip) {
        colon = strrchr(rest, ':');
        hl = colon ? (size_t)(colon - rest) : 0;
    }
    if (!colon || hl == 0 || hl >= host_len || strlen(colon + 1) == 0 ||
        strlen(colon + 1) >= port_len || strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
        return st_errf(err, err_len, ST_EINVAL, "\"%s\" is not tls+tcp://HOST:PORT", url);
    }
    memcpy(host, h, hl);
    host[hl] = 0;
    snprintf(port, port_len, "%s", colon + 1);
    return 0;
}

static int ms_left(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long ms =
        (deadline->tv_sec - now.tv_sec) * 1000LL + (deadline->tv_nsec - now.tv_nsec) / 1000000LL;
    return ms < 0 ? 0 : ms > 60000 ? 60000 : (int)ms;
}

/* A connected non-blocking TCP socket to host:port, or -1 (ST_ECONNECT / ST_ETIMEDOUT in *rc). */
static int tcp_connect(int family, const char *host, const char *port,
                       const struct timespec *deadline, int *rc, char *why, size_t why_len)
{
    struct addrinfo hints = {.ai_family = family, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(host, port, &hints, &res);
    *rc = ST_ECONNECT;
    if (g != 0) {
        snprintf(why, why_len, "%s", gai_strerror(g));
        return -1;
    }
    int fd = -1;
    snprintf(why, why_len, "no address");
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            continue;
        }
        int e = connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
        if (e == EINPROGRESS) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int n = poll(&pfd, 1, ms_left(deadline));
            socklen_t el = sizeof(e);
            if (n == 0) {
                e = ETIMEDOUT;
            } else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0) {
                e = errno;
            }
        }
        if (e != 0) {
            snprintf(why, why_len, "%s", strerror(e));
            *rc = e == ETIMEDOUT ? ST_ETIMEDOUT : ST_ECONNECT;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* The TLS handshake on the non-blocking fd, waited for until the deadline. Returns 0, or an
 * error code with why set. */
static int ssl_connect(SSL *ssl, int fd, const struct timespec *deadline, char *why, size_t why_len)
{
    for (;;) {
        int r = SSL_connect(ssl);
        if (r == 1) {
            return 0;
        }
        int e = SSL_get_error(ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            unsigned long oe = ERR_peek_last_error();
            return st_errf(why, why_len, ST_EPROTO, "the TLS handshake failed (%s)",
                           oe && ERR_reason_error_string(oe) ? ERR_reason_error_string(oe)
                                                             : "the peer closed the connection");
        }
        struct pollfd pfd = {.fd = fd, .events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT};
        int left = ms_left(deadline);
        if (left == 0 || poll(&pfd, 1, left) == 0) {
            return st_errf(why, why_len, ST_ETIMEDOUT, "no TLS handshake in time");
        }
    }
}

/* The handshake on fd, without verification, and the peer's certificate; NULL with *rc and why
 * set on failure. The connection ends right after it, before nng's SP handshake: nng 1.5.2 counts
 * it as a connection that ended during negotiation and goes on accepting (measured). Completing
 * the SP handshake instead would leave a pipe on the coordinator that its TLS layer may never see
 * closed. */
static X509 *handshake(int fd, const struct timespec *deadline, int *rc, char *why, size_t why_len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = ctx ? SSL_new(ctx) : NULL;
    X509 *peer = NULL;
    *rc = ST_ENOMEM;
    if (!ssl) {
        goto out;
    }
    /* Nothing is trusted here: the pin is the check, and nng's handshake the proof. */
    SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
    SSL_set_fd(ssl, fd);
    if ((*rc = ssl_connect(ssl, fd, deadline, why, why_len))) {
        goto out;
    }
    if (!(peer = SSL_get1_peer_certificate(ssl))) {
        snprintf(why, why_len, "the peer presented no certificate");
        *rc = ST_EPROTO;
        goto out;
    }
    *rc = 0;
out:
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return peer;
}

int st_tls_fetch_pinned(const char *url, const char *pin, int timeout_ms, st_tls_cert **out,
                        char *err, size_t err_len)
{
    char host[256], port[16], why[256] = "";
    int family = AF_UNSPEC, rc;
    if ((rc = split_url(url, &family, host, sizeof(host), port, sizeof(port), err, err_len))) {
        return rc;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    /* A peer that closes mid-handshake must not end this process with SIGPIPE: it is blocked
     * on this thread while the handshake writes, and one it raised is taken before unblocking. */
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    X509 *peer = NULL;
    int fd = tcp_connect(family, host, port, &deadline, &rc, why, sizeof(why));
    if (fd >= 0) {
        peer = handshake(fd, &deadline, &rc, why, sizeof(why));
        close(fd);
    }
    struct timespec zero = {0, 0};
    sigset_t pending;
    sigpending(&pending);
    if (sigismember(&pending, SIGPIPE) && !sigismember(&old, SIGPIPE)) {
        sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!peer) {
        return st_errf(err, err_len, rc, "%s: %s", url, why);
    }
    st_tls_cert *c = NULL;
    rc = cert_of_x509(peer, &c);
    X509_free(peer);
    if (rc) {
        return rc;
    }
    if (strcmp(c->fingerprint, pin) != 0) {
        rc = st_errf(err, err_len, ST_EAUTH,
                     "%s presents a certificate with SHA-256 fingerprint %s, not the pinned %s: "
                     "not the coordinator of this run",
                     url, c->fingerprint, pin);
        st_tls_cert_free(c);
        return rc;
    }
    *out = c;
    return 0;
}
