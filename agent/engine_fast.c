/*
 * engine_fast.c - the "fast" engine: a plain HTTP/1.1 keep-alive client on libev.
 *
 * https:// goes through conn_io.h's TLS channel: a connection that is open runs its handshake
 * (HANDSHAKE) before the request goes out; the request's timeout runs from the send, across the
 * connect and the handshake, and a handshake still unfinished then is ST_RES_TIMEOUT.
 *
 * Each request of the plan is serialised once at create, so a send is one send(2) on a connection
 * that is already open, and a completion is one recv(2) parsed by http-parser. Connections live in
 * a fixed array; a slot is CLOSED (not opened yet, or closed), CONNECTING, BUSY (one request on
 * it), IDLE (open, nothing in flight) or DEFERRED (its request failed inside send() and the report
 * waits for the loop). Free slots are kept on two stacks, idle first, so a send never searches.
 */
#include "engine.h"

#include "conn_io.h"
#include "origin.h"
#include "tcp_open.h"

#include "clock.h"
#include "error.h"
#include "url.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <http_parser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define FAST_RBUF_SIZE  (64 * 1024)
#define FAST_MAX_READS  4 /* per readiness event */
#define FAST_USER_AGENT "stampede/" ST_VERSION

typedef enum {
    CONN_CLOSED = 0,
    CONN_CONNECTING,
    CONN_HANDSHAKE, /* TLS: connected, handshake under way */
    CONN_BUSY,
    CONN_IDLE,
    CONN_DEFERRED,
} conn_state;

typedef struct fast_req {
    char *bytes; /* the whole request: head and body */
    size_t len;
    bool head; /* HEAD: the response has no body whatever its headers say */
} fast_req;

typedef struct fast_conn fast_conn;

struct fast_conn {
    ev_io rio; /* started whenever fd is open */
    ev_io wio; /* started only while connecting or after EAGAIN */
    st_engine *e;
    http_parser parser;
    st_conn_io io; /* io.fd: -1 when closed */
    conn_state state;
    int pos;            /* index in the idle or closed stack while on one */
    st_tcp_try try_;    /* the current connect's way through e->addrs (tried 0: a new one) */
    unsigned responses; /* complete responses read on this fd: > 0 means it was reused */

    /* The request on this slot (CONNECTING, BUSY, DEFERRED). */
    const fast_req *req;
    uint64_t tag;
    uint64_t epoch; /* e->epoch at send, so cancel_all leaves sends made from its callbacks */
    uint64_t start_ns;
    uint64_t sent_ns;
    uint64_t done_ns; /* DEFERRED only */
    uint64_t bytes_in;
    uint64_t bytes_out;
    size_t written;
    int status;
    st_res_kind kind; /* DEFERRED only */
    bool complete;
    bool keep;
    bool retried;
    fast_conn *defer_next;
};

struct st_engine {
    struct ev_loop *loop;
    st_engine_done_fn done;
    void *worker;

    fast_req *reqs;
    size_t n_reqs;

    st_tcp_addrs addrs; /* the origin's, resolved once; connects start at the last that worked */

    fast_conn *conns;
    int n_conns;
    fast_conn **idle; /* LIFO: the warmest connection is reused first */
    int n_idle;
    fast_conn **closed;
    int n_closed;

    int inflight;
    bool in_send;
    uint64_t epoch;
    uint64_t timeout_ns;

    st_conn_tls *tls; /* https: the TLS context; NULL for http */

    /* cfg->io_loop: the sockets are watched there (else on loop), the kernel stamps what they
     * receive, and responses are timed by those stamps (st_engine_ops.reads_can_wait). */
    struct ev_loop *ioloop;
    bool stamps;     /* every connection opened so far got its stamps */
    int n_wio;       /* connections whose write watcher is on (connecting, or socket full) */
    int n_handshake; /* connections in CONN_HANDSHAKE */

    fast_conn *defer_head;
    fast_conn *defer_tail;
    ev_timer defer_timer; /* zero delay: reports failures found inside send() */
    ev_timer sweep;       /* periodic while requests are in flight: timeouts */

    char rbuf[FAST_RBUF_SIZE];
};

static void conn_open(fast_conn *c);
static void conn_write(fast_conn *c);

static void set_state(fast_conn *c, conn_state state)
{
    c->e->n_handshake += (state == CONN_HANDSHAKE) - (c->state == CONN_HANDSHAKE);
    c->state = state;
}

/* The write watcher: on while a connect is pending or the socket has no room. */
static void wio_on(fast_conn *c)
{
    if (!ev_is_active(&c->wio)) {
        ev_io_start(c->e->ioloop, &c->wio);
        c->e->n_wio++;
    }
}

static void wio_off(fast_conn *c)
{
    if (ev_is_active(&c->wio)) {
        ev_io_stop(c->e->ioloop, &c->wio);
        c->e->n_wio--;
    }
}

/* ---- parser ---- */

static int on_headers_complete(http_parser *p)
{
    const fast_conn *c = p->data;
    /* Returning 1 tells http-parser that this response has no body, whatever its Content-Length
     * or Transfer-Encoding say: answers to HEAD, and 1xx, 204 and 304 answers (RFC 9110 6.4.1),
     * whose Content-Length describes the representation they did not send. 101 switches
     * protocols and is handled where the message completes. */
    unsigned s = p->status_code;
    return c->req->head || (s >= 100 && s < 200 && s != 101) || s == 204 || s == 304 ? 1 : 0;
}

static int on_message_complete(http_parser *p)
{
    fast_conn *c = p->data;
    /* Interim 1xx responses precede the real one on the same request; 101 ends HTTP instead. */
    if (p->status_code >= 100 && p->status_code < 200 && p->status_code != 101) {
        return 0;
    }
    c->status = p->status_code;
    c->keep = http_should_keep_alive(p) && !p->upgrade;
    c->complete = true;
    /* Pausing makes http_parser_execute return exactly the bytes of this response. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

/* ---- free-slot stacks ---- */

static void idle_push(st_engine *e, fast_conn *c)
{
    set_state(c, CONN_IDLE);
    c->pos = e->n_idle;
    e->idle[e->n_idle++] = c;
}

static void idle_remove(st_engine *e, fast_conn *c)
{
    fast_conn *last = e->idle[--e->n_idle];
    e->idle[c->pos] = last;
    last->pos = c->pos;
}

static void closed_push(st_engine *e, fast_conn *c)
{
    set_state(c, CONN_CLOSED);
    c->pos = e->n_closed;
    e->closed[e->n_closed++] = c;
}

/* ---- connection plumbing ---- */

/* clean: the connection ended in order, so its TLS session stays resumable. */
static void conn_close_fd(fast_conn *c, bool clean)
{
    if (c->io.fd < 0) {
        return;
    }
    ev_io_stop(c->e->ioloop, &c->rio);
    wio_off(c);
    st_conn_io_close(&c->io, clean);
}

/* Ends the request on c: frees the slot first (so done() may send on it), then reports. Nothing
 * may touch c after this returns. */
static void conn_finish(fast_conn *c, st_res_kind kind, uint64_t done_ns, bool reuse)
{
    st_engine *e = c->e;
    st_result res = {
        .kind = kind,
        .status = kind == ST_RES_HTTP ? c->status : 0,
        .sent_ns = c->sent_ns,
        .done_ns = done_ns,
        .bytes_in = c->bytes_in,
        .bytes_out = c->bytes_out,
        .req = c->req ? (uint32_t)(c->req - e->reqs) : 0,
    };
    uint64_t tag = c->tag;
    c->req = NULL;
    if (reuse) {
        wio_off(c);
        c->responses++;
        idle_push(e, c);
    } else {
        conn_close_fd(c, kind == ST_RES_HTTP);
        closed_push(e, c);
    }
    e->inflight--;
    e->done(e->worker, tag, &res);
}

static void defer_start(st_engine *e)
{
    if (!ev_is_active(&e->defer_timer)) {
        ev_timer_set(&e->defer_timer, 0., 0.);
        ev_timer_start(e->loop, &e->defer_timer);
    }
}

/* A failure: reported now from the loop, or queued when found inside send(). */
static void conn_fail(fast_conn *c, st_res_kind kind)
{
    st_engine *e = c->e;
    uint64_t now = st_clock_mono_ns();
    if (!e->in_send) {
        conn_finish(c, kind, now, false);
        return;
    }
    conn_close_fd(c, false);
    set_state(c, CONN_DEFERRED);
    c->kind = kind;
    c->done_ns = now;
    c->defer_next = NULL;
    if (e->defer_tail) {
        e->defer_tail->defer_next = c;
    } else {
        e->defer_head = c;
    }
    e->defer_tail = c;
    defer_start(e);
}

static void on_defer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    st_engine *e = w->data;
    /* Count first: failures queued by sends from these callbacks wait for the next turn. */
    int n = 0;
    for (fast_conn *c = e->defer_head; c; c = c->defer_next) {
        n++;
    }
    while (n-- > 0 && e->defer_head) {
        fast_conn *c = e->defer_head;
        e->defer_head = c->defer_next;
        if (!e->defer_head) {
            e->defer_tail = NULL;
        }
        st_result res = {
            .kind = c->kind,
            .sent_ns = c->sent_ns,
            .done_ns = c->done_ns,
            .bytes_in = c->bytes_in,
            .bytes_out = c->bytes_out,
            .req = c->req ? (uint32_t)(c->req - e->reqs) : 0,
        };
        uint64_t tag = c->tag;
        c->req = NULL;
        closed_push(e, c);
        e->inflight--;
        e->done(e->worker, tag, &res);
    }
    if (e->defer_head) {
        defer_start(e);
    }
}

/* The connection broke before the response was complete (write error, EOF or reset). A request
 * written on a reused connection that got no byte back is resent once on a new connection: the
 * server most likely closed the idle connection while the request was on its way. */
static void conn_broken(fast_conn *c)
{
    if (c->bytes_in == 0 && c->responses > 0 && !c->retried) {
        c->retried = true;
        conn_close_fd(c, false);
        c->try_.tried = 0;
        conn_open(c);
        return;
    }
    conn_fail(c, ST_RES_OTHER);
}

static void conn_ready(fast_conn *c)
{
    set_state(c, CONN_BUSY);
    c->written = 0;
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    c->sent_ns = st_clock_mono_ns();
    conn_write(c);
}

/* Advances the TLS handshake; the request goes out once it is done. */
static void conn_handshake(fast_conn *c)
{
    int rc = st_conn_io_handshake(&c->io);
    if (rc == 0) {
        wio_off(c);
        conn_ready(c);
    } else if (rc == ST_CONN_IO_WANT_WRITE) {
        wio_on(c);
    } else if (rc == ST_CONN_IO_WANT_READ) {
        wio_off(c);
    } else {
        conn_fail(c, st_conn_io_fail_kind(&c->io));
    }
}

static void conn_connected(fast_conn *c)
{
    st_engine *e = c->e;
    e->addrs.cur = c->try_.addr;
    c->try_.tried = 0;
    c->responses = 0;
    if (e->tls) {
        set_state(c, CONN_HANDSHAKE);
        conn_handshake(c);
        return;
    }
    conn_ready(c);
}

/* Opens a connection for the request on c, trying the resolved addresses in turn. */
static void conn_open(fast_conn *c)
{
    st_engine *e = c->e;
    if (c->try_.tried == 0) {
        st_tcp_begin(&e->addrs, &c->try_);
    }
    bool connected = false;
    st_res_kind kind = ST_RES_CONNECT;
    int fd = st_tcp_open(&e->addrs, &c->try_, &connected, &kind);
    if (fd < 0) {
        conn_fail(c, kind);
        return;
    }
    if (st_conn_io_start(&c->io, e->tls, fd) != 0) {
        close(fd);
        conn_fail(c, ST_RES_LOCAL);
        return;
    }
    if (e->ioloop != e->loop && st_conn_io_stamp_rx(&c->io) != 0) {
        e->stamps = false;
    }
    ev_io_set(&c->rio, fd, EV_READ);
    ev_io_start(e->ioloop, &c->rio);
    ev_io_set(&c->wio, fd, EV_WRITE);
    if (connected) {
        conn_connected(c);
    } else {
        set_state(c, CONN_CONNECTING);
        wio_on(c);
    }
}

static void conn_connect_done(fast_conn *c)
{
    int rc = st_tcp_check(&c->e->addrs, &c->try_, c->io.fd);
    if (rc == 1) {
        return;
    }
    if (rc < 0) {
        conn_close_fd(c, false);
        c->try_.tried++;
        conn_open(c);
        return;
    }
    conn_connected(c);
}

/* Writes what is left of the request. The write watcher is armed only when the socket is full. */
static void conn_write(fast_conn *c)
{
    const fast_req *r = c->req;
    while (c->written < r->len) {
        ssize_t n = st_conn_io_write(&c->io, r->bytes + c->written, r->len - c->written);
        if (n > 0) {
            c->written += (size_t)n;
            c->bytes_out += (uint64_t)n;
            continue;
        }
        if (n == ST_CONN_IO_WANT_WRITE) {
            wio_on(c);
            return;
        }
        if (n == ST_CONN_IO_WANT_READ) {
            return; /* TLS wants the peer's bytes first: on_readable writes again */
        }
        conn_broken(c);
        return;
    }
    wio_off(c);
}

/* ---- reading ---- */

/* The request on c is complete; leftover bytes after the response mean the server is out of step,
 * so the connection is not reused. */
static void conn_complete(fast_conn *c, bool leftover)
{
    bool reuse = c->keep && !leftover && c->written == c->req->len;
    /* When the kernel stamps arrivals, the response is complete when its last bytes arrived, not
     * when the loop got round to reading them. */
    uint64_t done = st_conn_io_rx_ns(&c->io, st_clock_mono_ns());
    conn_finish(c, ST_RES_HTTP, done > c->sent_ns ? done : c->sent_ns, reuse);
}

/* Returns true when the request is still waiting for more bytes. */
static bool conn_data(fast_conn *c, const char *buf, size_t n)
{
    size_t used = http_parser_execute(&c->parser, &parser_settings, buf, n);
    c->bytes_in += used;
    if (c->complete) {
        conn_complete(c, used < n);
        return false;
    }
    if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK || used != n) {
        conn_fail(c, ST_RES_OTHER);
        return false;
    }
    return true;
}

static void conn_eof(fast_conn *c, int err)
{
    if (c->bytes_in == 0) {
        conn_broken(c);
        return;
    }
    if (err == 0) {
        /* A response without a length ends here. */
        (void)http_parser_execute(&c->parser, &parser_settings, NULL, 0);
        if (c->complete) {
            c->keep = false;
            conn_complete(c, false);
            return;
        }
    }
    conn_fail(c, ST_RES_OTHER);
}

/* Data or EOF on a connection with nothing in flight: the server closed it (or misbehaves). */
static void conn_idle_readable(fast_conn *c)
{
    st_engine *e = c->e;
    /* With TLS this also takes session tickets and other records that carry no data. */
    ssize_t n = st_conn_io_read(&c->io, e->rbuf, sizeof(e->rbuf));
    if (n == ST_CONN_IO_WANT_READ || n == ST_CONN_IO_WANT_WRITE) {
        return;
    }
    idle_remove(e, c);
    conn_close_fd(c, n == 0);
    closed_push(e, c);
}

/* Reads the response on c. A short read of a plain socket means it is drained; TLS may hold
 * bytes already read from the socket, which the fd will not announce again. The bound keeps a
 * server that streams without end from holding the loop (and the timeout sweep) hostage: the
 * level-triggered watcher fires again. */
static void conn_read(fast_conn *c)
{
    st_engine *e = c->e;
    for (int reads = 0; reads < FAST_MAX_READS; reads++) {
        ssize_t n = st_conn_io_read(&c->io, e->rbuf, sizeof(e->rbuf));
        if (n > 0) {
            if (!conn_data(c, e->rbuf, (size_t)n)) {
                return;
            }
            if ((size_t)n < sizeof(e->rbuf) && !st_conn_io_pending(&c->io)) {
                return;
            }
            continue;
        }
        if (n == 0) {
            conn_eof(c, 0);
        } else if (n == ST_CONN_IO_WANT_WRITE) {
            wio_on(c);
        } else if (n == ST_CONN_IO_ERROR) {
            conn_eof(c, ECONNRESET);
        }
        return;
    }
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    fast_conn *c = w->data;
    switch (c->state) {
    case CONN_BUSY:
        if (c->written < c->req->len) {
            conn_write(c); /* a TLS write that waited for the peer */
            if (c->state != CONN_BUSY || c->written < c->req->len) {
                return;
            }
        }
        conn_read(c);
        return;
    case CONN_CONNECTING:
        conn_connect_done(c);
        return;
    case CONN_HANDSHAKE:
        conn_handshake(c);
        return;
    case CONN_IDLE:
        conn_idle_readable(c);
        return;
    default:
        return;
    }
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    fast_conn *c = w->data;
    if (c->state == CONN_CONNECTING) {
        conn_connect_done(c);
    } else if (c->state == CONN_HANDSHAKE) {
        conn_handshake(c);
    } else if (c->state == CONN_BUSY && c->written < c->req->len) {
        conn_write(c);
    } else if (c->state == CONN_BUSY) {
        wio_off(c); /* a TLS read that wanted to write */
        conn_read(c);
    } else {
        wio_off(c);
    }
}

/* ---- timeouts ---- */

static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    st_engine *e = w->data;
    if (e->inflight == 0) {
        ev_timer_stop(loop, w);
        return;
    }
    if (e->ioloop != e->loop) {
        /* Answers the worker let wait are read first: one that came in time is no timeout. */
        ev_run(e->ioloop, EVRUN_NOWAIT);
    }
    uint64_t now = st_clock_mono_ns();
    for (int i = 0; i < e->n_conns; i++) {
        fast_conn *c = &e->conns[i];
        /* start_ns may be later than now for a send made from a callback of this sweep. */
        if ((c->state == CONN_BUSY || c->state == CONN_CONNECTING ||
             c->state == CONN_HANDSHAKE) &&
            now >= c->start_ns + e->timeout_ns) {
            conn_finish(c, c->state == CONN_CONNECTING ? ST_RES_CONNECT : ST_RES_TIMEOUT, now,
                        false);
        }
    }
}

/* ---- request serialisation ---- */

static bool header_is(const char *line, size_t name_len, const char *name)
{
    return strlen(name) == name_len && strncasecmp(line, name, name_len) == 0;
}

/* True when the value of the header line (after the colon at line[name_len]) is empty or blank. */
static bool header_blank(const char *line, size_t name_len)
{
    for (const char *p = line + name_len + 1; *p; p++) {
        if (!isspace((unsigned char)*p)) {
            return false;
        }
    }
    return true;
}

/* Builds the bytes of one request in the canonical form of engine.h: the plan's first Host goes
 * first in place of ours, its User-Agent replaces ours, its Content-Length and Transfer-Encoding
 * are dropped (the body alone frames the request, and a wrong framing header would desynchronise
 * the connection), and a header with a blank value is written "Name:". */
static int build_request(void *engine, size_t index, const st_request *r, const st_url *u,
                         char *err, size_t err_len)
{
    fast_req *out = &((st_engine *)engine)->reqs[index];
    if (!st_origin_method_ok(r->method)) {
        return st_errf(err, err_len, ST_EINVAL, "requests[%zu]: method is not a valid HTTP token",
                       index);
    }
    bool head = strcmp(r->method, "HEAD") == 0;
    const char *own_host = NULL; /* the plan's first Host line */
    bool own_ua = false;
    size_t len = strlen(r->method) + 1 + strlen(u->path) + sizeof(" HTTP/1.1\r\n");
    for (size_t h = 0; h < r->n_headers; h++) {
        const char *line = r->headers[h];
        size_t nl = line ? st_origin_header_name_len(line) : 0;
        if (nl == 0) {
            return st_errf(err, err_len, ST_EINVAL,
                           "requests[%zu].headers[%zu]: not a \"Name: value\" line", index, h);
        }
        if (header_is(line, nl, "Host") && !own_host) {
            own_host = line;
        }
        own_ua |= header_is(line, nl, "User-Agent");
        len += strlen(line) + 2;
    }
    len += sizeof("Host: \r\n") + strlen(u->host_header);
    if (!own_ua) {
        len += sizeof("User-Agent: " FAST_USER_AGENT "\r\n");
    }
    /* A response to HEAD has no body, and libcurl sends none with HEAD either. */
    bool has_body = r->body != NULL && !head;
    if (has_body) {
        len += sizeof("Content-Length: 18446744073709551615\r\n");
    }
    len += 2 + (has_body ? r->body_len : 0) + 1;

    char *buf = malloc(len);
    if (!buf) {
        return ST_ENOMEM;
    }
    size_t at = 0;
#define PUT(...) (at += (size_t)snprintf(buf + at, len - at, __VA_ARGS__))
    PUT("%s %s HTTP/1.1\r\n", r->method, u->path);
    if (own_host) {
        /* The name as libcurl spells it, the value as the plan wrote it. */
        PUT("Host:%s\r\n", header_blank(own_host, 4) ? "" : own_host + 5);
    } else {
        PUT("Host: %s\r\n", u->host_header);
    }
    if (!own_ua) {
        PUT("User-Agent: " FAST_USER_AGENT "\r\n");
    }
    for (size_t h = 0; h < r->n_headers; h++) {
        const char *line = r->headers[h];
        size_t nl = st_origin_header_name_len(line);
        if (header_is(line, nl, "Host") || header_is(line, nl, "Content-Length") ||
            header_is(line, nl, "Transfer-Encoding")) {
            continue;
        }
        if (header_blank(line, nl)) {
            PUT("%.*s:\r\n", (int)nl, line);
        } else {
            PUT("%s\r\n", line);
        }
    }
    if (has_body) {
        PUT("Content-Length: %zu\r\n", r->body_len);
    }
    PUT("\r\n");
#undef PUT
    if (has_body && r->body_len > 0) {
        memcpy(buf + at, r->body, r->body_len);
        at += r->body_len;
    }
    out->bytes = buf;
    out->len = at;
    out->head = head;
    return 0;
}

/* ---- ops ---- */

static void fast_destroy(st_engine *e)
{
    if (!e) {
        return;
    }
    ev_timer_stop(e->loop, &e->sweep);
    ev_timer_stop(e->loop, &e->defer_timer);
    if (e->conns) {
        for (int i = 0; i < e->n_conns; i++) {
            if (e->conns[i].e) { /* set up: create may fail before it is */
                conn_close_fd(&e->conns[i], true);
            }
        }
    }
    if (e->reqs) {
        for (size_t i = 0; i < e->n_reqs; i++) {
            free(e->reqs[i].bytes);
        }
    }
    free(e->reqs);
    st_conn_tls_free(e->tls);
    free(e->conns);
    free(e->idle);
    free(e->closed);
    free(e);
}

static int fast_create(st_engine **out, struct ev_loop *loop, const st_engine_cfg *cfg,
                       st_engine_done_fn done, void *worker, char *err, size_t err_len)
{
    char dummy[1];
    if (!err || err_len == 0) {
        err = dummy;
        err_len = sizeof(dummy);
    }
    err[0] = 0;
    int rc = st_origin_check_cfg("fast", out, loop, cfg, done, err, err_len);
    if (rc != 0) {
        return rc;
    }
    if (cfg->http2 == 1) {
        return st_errf(err, err_len, ST_EINVAL, "fast engine: HTTP/2 needs the curl engine");
    }
    st_engine *e = calloc(1, sizeof(*e));
    if (!e) {
        return ST_ENOMEM;
    }
    e->loop = loop;
    e->ioloop = cfg->io_loop ? cfg->io_loop : loop;
    e->stamps = cfg->io_loop != NULL;
    e->done = done;
    e->worker = worker;
    e->timeout_ns = (uint64_t)cfg->timeout_ms * ST_NS_PER_MS;
    ev_timer_init(&e->defer_timer, on_defer, 0., 0.);
    e->defer_timer.data = e;
    /* Timeouts are found to within a twentieth of the timeout, and at least every 100 ms. */
    double iv = st_origin_sweep_interval(cfg->timeout_ms);
    ev_timer_init(&e->sweep, on_sweep, iv, iv);
    e->sweep.data = e;

    e->reqs = calloc(cfg->n_requests, sizeof(*e->reqs));
    e->n_reqs = cfg->n_requests;
    e->n_conns = cfg->connections;
    e->conns = calloc((size_t)e->n_conns, sizeof(*e->conns));
    e->idle = calloc((size_t)e->n_conns, sizeof(*e->idle));
    e->closed = calloc((size_t)e->n_conns, sizeof(*e->closed));
    if (!e->reqs || !e->conns || !e->idle || !e->closed) {
        rc = ST_ENOMEM;
        goto out;
    }
    for (int i = e->n_conns - 1; i >= 0; i--) {
        fast_conn *c = &e->conns[i];
        c->e = e;
        st_conn_io_init(&c->io);
        ev_io_init(&c->rio, on_readable, -1, EV_READ);
        c->rio.data = c;
        ev_io_init(&c->wio, on_writable, -1, EV_WRITE);
        c->wio.data = c;
        closed_push(e, c);
    }
    rc = st_origin_setup("fast", cfg, "http/1.1", build_request, e, &e->addrs, &e->tls, err,
                         err_len);
out:
    if (rc != 0) {
        fast_destroy(e);
        return rc;
    }
    *out = e;
    return 0;
}

static int fast_free_slots(st_engine *e)
{
    return e->n_idle + e->n_closed;
}

static int fast_inflight(st_engine *e)
{
    return e->inflight;
}

static int fast_send(st_engine *e, size_t req_index, uint64_t tag)
{
    if (req_index >= e->n_reqs) {
        return ST_EINVAL;
    }
    fast_conn *c;
    if (e->n_idle > 0) {
        c = e->idle[--e->n_idle];
    } else if (e->n_closed > 0) {
        c = e->closed[--e->n_closed];
    } else {
        return ST_EAGAIN;
    }
    uint64_t now = st_clock_mono_ns();
    c->req = &e->reqs[req_index];
    c->tag = tag;
    c->epoch = e->epoch;
    c->start_ns = now;
    c->sent_ns = now;
    c->bytes_in = 0;
    c->bytes_out = 0;
    c->written = 0;
    c->status = 0;
    c->complete = false;
    c->keep = false;
    c->retried = false;
    e->inflight++;
    if (!ev_is_active(&e->sweep)) {
        ev_timer_start(e->loop, &e->sweep);
    }
    e->in_send = true;
    if (c->state == CONN_IDLE) {
        set_state(c, CONN_BUSY);
        http_parser_init(&c->parser, HTTP_RESPONSE);
        c->parser.data = c;
        conn_write(c);
    } else {
        c->try_.tried = 0;
        conn_open(c);
    }
    e->in_send = false;
    return 0;
}

static void fast_cancel_all(st_engine *e)
{
    /* Requests sent from the callbacks below carry the new epoch and are left running. Failures
     * still queued for a report are aborted like the rest. */
    uint64_t epoch = ++e->epoch;
    e->defer_head = e->defer_tail = NULL;
    uint64_t now = st_clock_mono_ns();
    for (int i = 0; i < e->n_conns; i++) {
        fast_conn *c = &e->conns[i];
        if ((c->state == CONN_BUSY || c->state == CONN_CONNECTING || c->state == CONN_DEFERRED) &&
            c->epoch < epoch) {
            conn_finish(c, ST_RES_ABORTED, now, false);
        }
    }
}

/* ---- applicability ---- */

static int fast_applies(const st_plan *plan, char *why, size_t why_len)
{
    static const char *const proxy_vars[] = {"http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"};
    if (!plan || plan->n_requests == 0) {
        return st_errf(why, why_len, 0, "the plan has no requests");
    }
    if (plan->http2 == 1) {
        return st_errf(why, why_len, 0, "HTTP/2 is requested and only the curl engine speaks it");
    }
    for (size_t i = 0; i < sizeof(proxy_vars) / sizeof(proxy_vars[0]); i++) {
        const char *v = getenv(proxy_vars[i]);
        if (v && *v) {
            return st_errf(why, why_len, 0,
                           "a proxy is set in %s and only the curl engine uses proxies",
                           proxy_vars[i]);
        }
    }
    st_url first = {0}, u = {0};
    int ok = 1;
    for (size_t i = 0; i < plan->n_requests && ok; i++) {
        st_url *cur = i == 0 ? &first : &u;
        int rc = st_url_parse(plan->requests[i].url, cur, NULL);
        if (rc != 0) {
            ok = rc == ST_ENOMEM
                     ? st_errf(why, why_len, 0, "out of memory checking requests[%zu].url", i)
                     : st_errf(why, why_len, 0, "requests[%zu].url is not a valid URL", i);
        } else if (strcmp(cur->scheme, "http") != 0 && strcmp(cur->scheme, "https") != 0) {
            ok = st_errf(why, why_len, 0, "requests[%zu].url is not http:// or https://", i);
        } else if (i > 0 && !st_url_same_origin(&first, cur)) {
            ok = st_errf(why, why_len, 0, "requests[%zu].url is on another origin than requests[0]",
                         i);
        }
        if (i > 0) {
            st_url_fini(&u);
        }
    }
    st_url_fini(&first);
    return ok;
}

static bool fast_reads_can_wait(st_engine *e)
{
    return e->stamps && e->ioloop != e->loop && e->n_wio == 0 && e->n_handshake == 0;
}

const st_engine_ops st_engine_fast = {
    .name = "fast",
    .applies = fast_applies,
    .create = fast_create,
    .free_slots = fast_free_slots,
    .send = fast_send,
    .inflight = fast_inflight,
    .cancel_all = fast_cancel_all,
    .reads_can_wait = fast_reads_can_wait,
    .destroy = fast_destroy,
};
