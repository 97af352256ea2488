#include "server.h"
#include "error.h"
#include "log.h"

#include <arpa/inet.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
};

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
    static const char *const schemes[] = {"tcp://", "tcp4://", "tcp6://"};
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
        snprintf(err, err_len, "--listen: \"%s\" is not tcp://HOST:PORT (e.g. tcp://0.0.0.0:7400; "
                 "port 0 picks a free one)", url);
        return ST_EINVAL;
    }
    return 0;
}

int st_server_start(st_server **out, const char *url, st_coord *core, char *err, size_t err_len)
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
    if ((rv = nng_listen(s->sock, url, &l, 0)) != 0) {
        snprintf(err, err_len, "--listen %s: %s", url, nng_strerror(rv));
        st_server_stop(s);
        return rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP ? ST_EINVAL : ST_EIO;
    }
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
