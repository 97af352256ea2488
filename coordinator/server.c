#include "server.h"
#include "error.h"
#include "log.h"

#include <arpa/inet.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/tls/tls.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_CONTEXTS 8

typedef struct ctx_worker {
    st_server *srv;
    nng_aio *aio;
    nng_ctx ctx;
    bool sending;
} ctx_worker;

struct st_server {
    nng_socket sock;
    bool sock_open;
    st_coord *core;
    int port;
    atomic_bool closing;
    ctx_worker w[N_CONTEXTS];
    int n;

    /* TLS: the watcher of the listener's refusals. */
    nng_listener listener;
    pthread_t watcher;
    bool watching;
    pthread_mutex_t mu;
    pthread_cond_t wake;
};

/* Listener statistics (nng's listener.c) that count connections nng gave up on by itself. */
typedef struct refusal_stat {
    const char *name;
    bool warn; /* false: every TLS agent causes one (its certificate check) */
    const char *what;
} refusal_stat;

static const refusal_stat refusal_stats[] = {
    {"auth", true, "failed the TLS handshake (not TLS, or a client that refused the certificate)"},
    {"proto", true, "broke the SP protocol after the TLS handshake"},
    {"timeout", true, "timed out in the handshake"},
    {"other", false, "ended during the handshake (an agent checking the certificate does this "
                     "once)"},
    {"disconnect", false, "were closed by the peer during the handshake"},
};

#define N_REFUSAL_STATS (sizeof(refusal_stats) / sizeof(refusal_stats[0]))

/* Logs how much each refusal count grew since last[]. */
static void log_refusals(st_server *s, uint64_t last[N_REFUSAL_STATS])
{
    nng_stat *all = NULL;
    if (nng_stats_get(&all) != 0) {
        return;
    }
    nng_stat *ls = nng_stat_find_listener(all, s->listener);
    for (size_t i = 0; ls && i < N_REFUSAL_STATS; i++) {
        nng_stat *st = nng_stat_find(ls, refusal_stats[i].name);
        uint64_t v = st ? nng_stat_value(st) : last[i];
        if (v > last[i]) {
            if (refusal_stats[i].warn) {
                st_warn("refused %llu connection%s to the TLS port that %s; the run goes on",
                        (unsigned long long)(v - last[i]), v - last[i] == 1 ? "" : "s",
                        refusal_stats[i].what);
            } else {
                st_debug("%llu connection%s to the TLS port %s", (unsigned long long)(v - last[i]),
                         v - last[i] == 1 ? "" : "s", refusal_stats[i].what);
            }
            last[i] = v;
        }
    }
    nng_stats_free(all);
}

static void *watch_refusals(void *arg)
{
    st_server *s = arg;
    uint64_t last[N_REFUSAL_STATS] = {0};
    pthread_mutex_lock(&s->mu);
    while (!atomic_load(&s->closing)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 500 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->wake, &s->mu, &until);
        pthread_mutex_unlock(&s->mu);
        log_refusals(s, last);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* The listener's TLS configuration: this certificate and key, clients not asked for one. */
static int listener_tls(nng_listener l, const char *cert_pem, const char *key_pem, char *err,
                        size_t err_len)
{
    nng_tls_config *cfg = NULL;
    int rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_SERVER);
    if (rv == 0 && (rv = nng_tls_config_own_cert(cfg, cert_pem, key_pem, NULL)) != 0) {
        nng_tls_config_free(cfg);
        return st_errf(err, err_len, ST_EINVAL,
                       "--tls-cert / --tls-key: the TLS library refused the certificate or "
                       "its key (%s)",
                       nng_strerror(rv));
    }
    if (rv == 0 && (rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_NONE)) == 0) {
        rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg);
    }
    if (cfg) {
        nng_tls_config_free(cfg); /* the listener holds its own reference */
    }
    if (rv != 0) {
        return st_errf(err, err_len, ST_ESYSTEM, "cannot set up TLS: %s", nng_strerror(rv));
    }
    return 0;
}

static void on_aio(void *arg)
{
    ctx_worker *w = arg;
    st_server *s = w->srv;
    int rv = nng_aio_result(w->aio);
    if (w->sending) {
        w->sending = false;
        if (rv != 0) {
            nng_msg_free(nng_aio_get_msg(w->aio));
        }
    } else if (rv == 0) {
        nng_msg *msg = nng_aio_get_msg(w->aio);
        uint8_t *reply = NULL;
        size_t len = 0;
        int rc = st_coord_handle(s->core, nng_msg_body(msg), nng_msg_len(msg), &reply, &len);
        if (rc == 0 && reply) {
            nng_msg_clear(msg);
            if (nng_msg_append(msg, reply, len) == 0 && !atomic_load(&s->closing)) {
                free(reply);
                nng_aio_set_msg(w->aio, msg);
                w->sending = true;
                nng_ctx_send(w->ctx, w->aio);
                return;
            }
        }
        free(reply);
        nng_msg_free(msg);
    } else if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
        return;
    }
    if (!atomic_load(&s->closing)) {
        nng_ctx_recv(w->ctx, w->aio);
    }
}

int st_server_check_url(const char *url, char *err, size_t err_len)
{
    static const char *const schemes[] = {"tcp://", "tcp4://", "tcp6://",
                                          "tls+tcp://", "tls+tcp4://", "tls+tcp6://"};
    const char *rest = NULL;
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]) && !rest; i++) {
        if (strncmp(url, schemes[i], strlen(schemes[i])) == 0) {
            rest = url + strlen(schemes[i]);
        }
    }
    const char *port = NULL;
    if (rest && rest[0] == '[') {
        const char *close = strchr(rest, ']');
        port = close && close > rest + 1 && close[1] == ':' ? close + 2 : NULL;
    } else if (rest) {
        const char *colon = strrchr(rest, ':');
        port = colon && !memchr(rest, ':', (size_t)(colon - rest)) &&
                       !memchr(rest, '/', (size_t)(colon - rest))
                   ? colon + 1
                   : NULL;
    }
    size_t digits = port ? strspn(port, "0123456789") : 0;
    if (!port || digits == 0 || digits > 5 || port[digits] != 0 || atoi(port) > 65535) {
        snprintf(err, err_len,
                 "--listen: \"%s\" is not tcp://HOST:PORT or tls+tcp://HOST:PORT (e.g. "
                 "tcp://0.0.0.0:7400; port 0 picks a free one)",
                 url);
        return ST_EINVAL;
    }
    return 0;
}

int st_server_start(st_server **out, const char *url, st_coord *core, char *err, size_t err_len)
{
    return st_server_start_tls(out, url, NULL, NULL, core, err, err_len);
}

int st_server_start_tls(st_server **out, const char *url, const char *cert_pem,
                        const char *key_pem, st_coord *core, char *err, size_t err_len)
{
    st_server *s = calloc(1, sizeof(*s));
    if (!s) {
        return ST_ENOMEM;
    }
    s->core = core;
    int rv = nng_rep0_open(&s->sock);
    if (rv != 0) {
        snprintf(err, err_len, "cannot open an nng socket: %s", nng_strerror(rv));
        free(s);
        return ST_ESYSTEM;
    }
    s->sock_open = true;
    nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, 64u << 20);
    nng_listener l;
    if ((rv = nng_listener_create(&l, s->sock, url)) != 0) {
        snprintf(err, err_len, "--listen %s: %s", url, nng_strerror(rv));
        st_server_stop(s);
        return rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP ? ST_EINVAL : ST_EIO;
    }
    if (cert_pem && (rv = listener_tls(l, cert_pem, key_pem, err, err_len)) != 0) {
        st_server_stop(s);
        return rv;
    }
    if ((rv = nng_listener_start(l, 0)) != 0) {
        snprintf(err, err_len, "--listen %s: %s", url, nng_strerror(rv));
        st_server_stop(s);
        return rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP ? ST_EINVAL : ST_EIO;
    }
    s->listener = l;
    nng_sockaddr sa;
    if (nng_listener_get_addr(l, NNG_OPT_LOCADDR, &sa) == 0) {
        if (sa.s_family == NNG_AF_INET) {
            s->port = ntohs(sa.s_in.sa_port);
        } else if (sa.s_family == NNG_AF_INET6) {
            s->port = ntohs(sa.s_in6.sa_port);
        }
    }
    for (int i = 0; i < N_CONTEXTS; i++) {
        ctx_worker *w = &s->w[i];
        w->srv = s;
        if ((rv = nng_aio_alloc(&w->aio, on_aio, w)) != 0 || (rv = nng_ctx_open(&w->ctx, s->sock))) {
            snprintf(err, err_len, "cannot set up nng contexts: %s", nng_strerror(rv));
            if (w->aio) {
                nng_aio_free(w->aio);
                w->aio = NULL;
            }
            st_server_stop(s);
            return ST_ESYSTEM;
        }
        s->n = i + 1;
    }
    if (cert_pem) {
        pthread_mutex_init(&s->mu, NULL);
        pthread_cond_init(&s->wake, NULL);
        if (pthread_create(&s->watcher, NULL, watch_refusals, s) != 0) {
            pthread_cond_destroy(&s->wake);
            pthread_mutex_destroy(&s->mu);
            snprintf(err, err_len, "cannot start a thread");
            st_server_stop(s);
            return ST_ESYSTEM;
        }
        s->watching = true;
    }
    for (int i = 0; i < s->n; i++) {
        nng_ctx_recv(s->w[i].ctx, s->w[i].aio);
    }
    *out = s;
    return 0;
}

int st_server_port(const st_server *s)
{
    return s->port;
}

void st_server_stop(st_server *s)
{
    if (!s) {
        return;
    }
    atomic_store(&s->closing, true);
    if (s->watching) {
        pthread_mutex_lock(&s->mu);
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->watcher, NULL);
        pthread_cond_destroy(&s->wake);
        pthread_mutex_destroy(&s->mu);
    }
    /* Stop the contexts' operations first (waiting for callbacks), then close the socket. */
    for (int i = 0; i < s->n; i++) {
        nng_aio_stop(s->w[i].aio);
    }
    for (int i = 0; i < s->n; i++) {
        nng_ctx_close(s->w[i].ctx);
    }
    if (s->sock_open) {
        nng_close(s->sock);
    }
    for (int i = 0; i < s->n; i++) {
        nng_aio_free(s->w[i].aio);
    }
    free(s);
}
