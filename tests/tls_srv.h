/*
 * The TLS tests' rig: certificates made at test time (a CA, and leaves it signs or that sign
 * themselves) and a TLS server that runs inside the test on loopback (one accepting thread, one
 * blocking thread per connection, OpenSSL on the server side) and counts what its clients did.
 */
#ifndef ST_TESTS_TLS_SRV_H
#define ST_TESTS_TLS_SRV_H

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdbool.h>

/* ---- certificates ---- */

typedef struct tls_id {
    EVP_PKEY *key;
    X509 *cert;
    char cert_file[256]; /* PEM */
    char key_file[256];  /* PEM */
} tls_id;

/* Makes an EC P-256 key and a certificate for cn with subjectAltName san ("DNS:localhost,
 * IP:127.0.0.1", or NULL), valid from from_s to to_s seconds from now, signed by issuer (NULL:
 * by itself), a CA when ca. Writes both as PEM in dir as NAME.crt and NAME.key. Fails the test
 * when OpenSSL or the files fail. */
void tls_id_make(tls_id *id, const char *dir, const char *name, const char *cn, const char *san,
                 long from_s, long to_s, const tls_id *issuer, bool ca);
void tls_id_fini(tls_id *id);

/* A temporary directory of the test's own (mkdtemp); tls_dir_remove deletes it and its files. */
void tls_dir_make(char *dir, size_t len);
void tls_dir_remove(const char *dir);

/* ---- the server ---- */

typedef enum {
    TSRV_ECHO,    /* after the handshake, writes back whatever it reads */
    TSRV_HTTP,    /* reads requests (heads ending in an empty line, no body) and answers each with
                     cfg.response (default a 200 with "hello"), keep-alive */
    TSRV_GARBAGE, /* not TLS: answers the ClientHello with an HTTP/1.1 400 in clear text */
    TSRV_SILENT,  /* accepts and never answers: a handshake that does not finish */
} tsrv_mode;

#define TSRV_MAX_CONNS 512

typedef struct tsrv_cfg {
    tsrv_mode mode;
    const tls_id *id;      /* the server's certificate and key */
    int max_version;       /* e.g. TLS1_2_VERSION; 0: OpenSSL's highest */
    const char *alpn;      /* protocols the server accepts, comma-separated; a client offering
                              none of them gets a no_application_protocol alert; NULL: no ALPN */
    bool no_tickets;       /* no session tickets: every handshake is a full one */
    bool close_each;       /* TSRV_HTTP: "Connection: close" and a close after each response */
    const char *response;  /* TSRV_HTTP: the whole response, or NULL */
    int family;            /* AF_INET (default when 0) or AF_INET6 */
} tsrv_cfg;

typedef struct tsrv tsrv;

struct tsrv {
    tsrv_cfg cfg;
    SSL_CTX *ctx;
    int lfd;
    int port;
    pthread_t accept_thread;
    pthread_mutex_t mu;
    bool stopping;
    int fds[TSRV_MAX_CONNS];
    pthread_t threads[TSRV_MAX_CONNS];
    int n_conns;       /* accepted */
    int handshakes;    /* handshakes that finished */
    int resumed;       /* of which resumed a session */
    int failed;        /* handshakes that failed */
    int requests;      /* TSRV_HTTP: requests answered */
    int tls13;         /* handshakes that negotiated TLS 1.3 */
    int alpn_chosen;   /* handshakes where the server chose an ALPN protocol */
    char sni[256];     /* the server name the last client sent ("" for none) */
};

tsrv *tsrv_start(const tsrv_cfg *cfg);
void tsrv_stop(tsrv *s);
/* Reads a counter under the lock. */
int tsrv_get(tsrv *s, const int *field);
/* Waits up to two seconds for a counter to reach want; returns its value. */
int tsrv_wait(tsrv *s, const int *field, int want);

#endif
