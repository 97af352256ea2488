/*
 * engine_h2.c - the "h2" engine: HTTP/2 over cleartext TCP with prior knowledge (h2c), or over
 * TLS with ALPN h2 (conn_io.h), on libnghttp2 and the worker's libev loop.
 *
 * cfg->connections TCP connections, each carrying up to cfg->streams concurrent streams (fewer
 * when the server's SETTINGS_MAX_CONCURRENT_STREAMS is lower). The connections that can take a
 * stream are kept on a ring: a send takes the head and puts it back at the tail, so streams spread
 * over every connection (h2load's -c and -m). Each request's header list is built once at create.
 * Output is coalesced: sends and reads mark a connection dirty, and one ev_prepare watcher writes
 * every dirty connection's frames before the loop waits again.
 *
 * A connection that receives GOAWAY takes no new stream; the streams the server did not process
 * (above its last stream id, closed by nghttp2 with REFUSED_STREAM) and streams reset with
 * REFUSED_STREAM before any byte came back are sent again, at most H2_MAX_RESENDS times, on
 * another connection; the drained connection closes and is reopened on a later send.
 */
#include "engine.h"

#include "clock.h"
#include "conn_io.h"
#include "origin.h"
#include "error.h"
#include "tcp_open.h"
#include "url.h"

#include <ctype.h>
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define H2_RBUF_SIZE   (64 * 1024)
#define H2_WBUF_SIZE   (64 * 1024)
#define H2_MAX_READS   4
#define H2_MAX_RESENDS 3
#define H2_WINDOW      ((1 << 30) - 1) /* h2load's default: flow control never slows reads */
#define H2_USER_AGENT  "stampede/" ST_VERSION
#define H2_FRAME_HDLEN 9

typedef enum { C_CLOSED = 0, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_DRAINING } conn_state;

typedef struct h2_req {
    nghttp2_nv *nv;
    size_t n_nv;
    char *strings; /* what nv points into */
    const char *body;
    size_t body_len;
    bool has_body;
} h2_req;

typedef struct h2_conn h2_conn;

typedef enum { S_FREE = 0, S_ACTIVE, S_PENDING, S_DEFERRED } stream_state;

typedef struct h2_stream {
    h2_conn *c;
    int32_t id;
    stream_state state;
    uint32_t req;
    uint64_t tag;
    uint64_t epoch;
    uint64_t start_ns;
    uint64_t sent_ns;
    uint64_t done_ns;
    uint64_t bytes_in;
    uint64_t bytes_out;
    size_t body_off;
    int status;
    int resends;
    bool lost_resend; /* sent again once after its connection broke */
    st_res_kind kind;
    struct h2_stream *next; /* free list, pending or deferred queue */
} h2_stream;

struct h2_conn {
    ev_io rio;
    ev_io wio;
    st_engine *e;
    nghttp2_session *s;
    int fd;
    st_conn_io io; /* owns fd from the handshake on */
    conn_state state;
    st_tcp_try try_;
    int active;         /* streams of ours attached */
    unsigned responses; /* complete responses on this connection since it opened */
    int avail;          /* what this connection adds to e->avail */
    bool on_ring;
    bool dirty;
    h2_conn *prev, *next; /* ring */
    h2_conn *dirty_next;
    char wbuf[H2_WBUF_SIZE];
    size_t wlen, woff;
};

struct st_engine {
    struct ev_loop *loop;
    st_engine_done_fn done;
    void *worker;
    h2_req *reqs;
    size_t n_reqs;
    st_tcp_addrs addrs;
    st_conn_tls *tls; /* https://: ALPN h2; NULL for h2c */
    h2_conn *conns;
    int n_conns;
    int streams; /* per connection, as asked */
    h2_stream *pool;
    int n_pool;
    h2_stream *free_list;
    h2_stream *pending_head, *pending_tail; /* resends waiting for a connection */
    int n_pending;
    h2_stream *defer_head, *defer_tail;
    h2_conn *ring; /* head */
    h2_conn *dirty_head;
    int avail;
    int inflight;
    bool in_send;
    uint64_t epoch;
    uint64_t timeout_ns;
    nghttp2_session_callbacks *cbs;
    ev_timer defer_timer;
    ev_timer sweep;
    ev_prepare flush;
    uint8_t rbuf[H2_RBUF_SIZE];
};

static void conn_flush(h2_conn *c);
static void conn_close(h2_conn *c, st_res_kind kind);
static void stream_place(st_engine *e, h2_stream *st);

/* ---- capacity and the ring ---- */

static void ring_remove(st_engine *e, h2_conn *c)
{
    if (!c->on_ring) {
        return;
    }
    if (c->next == c) {
        e->ring = NULL;
    } else {
        c->prev->next = c->next;
        c->next->prev = c->prev;
        if (e->ring == c) {
            e->ring = c->next;
        }
    }
    c->on_ring = false;
}

static void ring_append(st_engine *e, h2_conn *c)
{
    if (!e->ring) {
        c->prev = c->next = c;
        e->ring = c;
    } else {
        h2_conn *tail = e->ring->prev;
        c->prev = tail;
        c->next = e->ring;
        tail->next = c;
        e->ring->prev = c;
    }
    c->on_ring = true;
}

static int conn_cap(const h2_conn *c)
{
    if (c->state == C_DRAINING) {
        return 0;
    }
    int cap = c->e->streams;
    if (c->s && c->state == C_OPEN) {
        uint32_t srv =
            nghttp2_session_get_remote_settings(c->s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        if (srv < (uint32_t)cap) {
            cap = (int)srv;
        }
    }
    return cap;
}

/* Recomputes what c can take; on the ring iff it can take a stream, at the tail when it joins. */
static void conn_update(h2_conn *c)
{
    st_engine *e = c->e;
    int a = conn_cap(c) - c->active;
    if (a < 0) {
        a = 0;
    }
    e->avail += a - c->avail;
    c->avail = a;
    if (a > 0 && !c->on_ring) {
        ring_append(e, c);
    } else if (a == 0) {
        ring_remove(e, c);
    }
    if (a > 0 && e->pending_head && !ev_is_active(&e->flush)) {
        /* Waiting streams are placed before the loop waits (never from inside this call). */
        ev_prepare_start(e->loop, &e->flush);
    }
}

static void mark_dirty(h2_conn *c)
{
    st_engine *e = c->e;
    if (c->dirty) {
        return;
    }
    c->dirty = true;
    c->dirty_next = e->dirty_head;
    e->dirty_head = c;
    if (!ev_is_active(&e->flush)) {
        ev_prepare_start(e->loop, &e->flush);
    }
}

/* ---- reporting ---- */

static void defer_start(st_engine *e)
{
    if (!ev_is_active(&e->defer_timer)) {
        ev_timer_set(&e->defer_timer, 0., 0.);
        ev_timer_start(e->loop, &e->defer_timer);
    }
}

/* Detaches st from its connection (its slot there is free again). */
static void stream_detach(h2_stream *st)
{
    h2_conn *c = st->c;
    if (!c) {
        return;
    }
    if (c->s && st->id > 0) {
        nghttp2_session_set_stream_user_data(c->s, st->id, NULL);
    }
    st->c = NULL;
    st->id = 0;
    c->active--;
    conn_update(c);
}

/* Reports st as it ended (kind, done_ns) after freeing its slot. */
static void report_free(st_engine *e, h2_stream *st)
{
    st_result res = {
        .kind = st->kind,
        .status = st->kind == ST_RES_HTTP ? st->status : 0,
        .sent_ns = st->sent_ns,
        .done_ns = st->done_ns,
        .bytes_in = st->bytes_in,
        .bytes_out = st->bytes_out,
        .req = st->req,
    };
    uint64_t tag = st->tag;
    st->state = S_FREE;
    st->next = e->free_list;
    e->free_list = st;
    e->inflight--;
    e->done(e->worker, tag, &res);
}

/* Ends st: frees its slot first (so done() may send), then reports; inside send() the report
 * waits for the loop. */
static void stream_finish(h2_stream *st, st_res_kind kind)
{
    st_engine *e = st->c ? st->c->e : NULL;
    if (!e) {
        return;
    }
    stream_detach(st);
    st->kind = kind;
    st->done_ns = st_clock_mono_ns();
    if (e->in_send) {
        st->state = S_DEFERRED;
        st->next = NULL;
        if (e->defer_tail) {
            e->defer_tail->next = st;
        } else {
            e->defer_head = st;
        }
        e->defer_tail = st;
        defer_start(e);
        return;
    }
    report_free(e, st);
}

static void on_defer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    st_engine *e = w->data;
    h2_stream *list = e->defer_head;
    e->defer_head = e->defer_tail = NULL;
    while (list) {
        h2_stream *st = list;
        list = st->next;
        report_free(e, st);
    }
}

/* Queues st until a connection has room for it. */
static void pending_push(st_engine *e, h2_stream *st)
{
    st->state = S_PENDING;
    st->next = NULL;
    if (e->pending_tail) {
        e->pending_tail->next = st;
    } else {
        e->pending_head = st;
    }
    e->pending_tail = st;
    e->n_pending++;
    if (e->ring && !ev_is_active(&e->flush)) {
        ev_prepare_start(e->loop, &e->flush);
    }
}

/* Sends st again elsewhere (GOAWAY or REFUSED_STREAM: the server did not process it). */
static void stream_resend(h2_stream *st)
{
    st_engine *e = st->c->e;
    stream_detach(st);
    st->resends++;
    st->bytes_in = 0;
    st->bytes_out = 0;
    st->body_off = 0;
    st->status = 0;
    pending_push(e, st);
}

/* Places waiting resends on connections with room, oldest first. */
static void pending_drain(st_engine *e)
{
    while (e->pending_head && e->ring) {
        h2_stream *st = e->pending_head;
        e->pending_head = st->next;
        if (!e->pending_head) {
            e->pending_tail = NULL;
        }
        e->n_pending--;
        stream_place(e, st);
    }
}

/* ---- nghttp2 callbacks ---- */

static h2_stream *stream_of(nghttp2_session *s, int32_t id)
{
    return id > 0 ? nghttp2_session_get_stream_user_data(s, id) : NULL;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    (void)flags;
    (void)user;
    h2_stream *st = stream_of(s, frame->hd.stream_id);
    if (st && namelen == 7 && memcmp(name, ":status", 7) == 0 && valuelen == 3) {
        st->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
    h2_conn *c = user;
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        if (c->state != C_DRAINING) {
            c->state = C_DRAINING;
            conn_update(c);
        }
        return 0;
    }
    if (frame->hd.type == NGHTTP2_SETTINGS) {
        conn_update(c);
        return 0;
    }
    h2_stream *st = stream_of(s, frame->hd.stream_id);
    if (!st) {
        return 0;
    }
    if (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) {
        st->bytes_in += H2_FRAME_HDLEN + frame->hd.length;
        /* A final response (not a 1xx) that ends the stream is complete. */
        if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && st->status >= 200) {
            c->responses++;
            stream_finish(st, ST_RES_HTTP);
        }
    }
    return 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
    (void)user;
    h2_stream *st = stream_of(s, frame->hd.stream_id);
    if (st && (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA)) {
        st->bytes_out += H2_FRAME_HDLEN + frame->hd.length;
    }
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t error_code, void *user)
{
    (void)user;
    h2_stream *st = stream_of(s, id);
    if (!st) {
        return 0;
    }
    if (error_code == NGHTTP2_REFUSED_STREAM && st->bytes_in == 0 && st->resends < H2_MAX_RESENDS) {
        stream_resend(st);
        return 0;
    }
    /* Closed before a complete response: a reset, or a malformed response nghttp2 refused. */
    stream_finish(st, ST_RES_OTHER);
    return 0;
}

/* A request queued behind the concurrency limit when GOAWAY came was never sent. */
static int on_frame_not_send(nghttp2_session *s, const nghttp2_frame *frame, int lib_error,
                             void *user)
{
    (void)lib_error;
    (void)user;
    h2_stream *st = stream_of(s, frame->hd.stream_id);
    if (!st || frame->hd.type != NGHTTP2_HEADERS) {
        return 0;
    }
    if (st->resends < H2_MAX_RESENDS) {
        stream_resend(st);
    } else {
        stream_finish(st, ST_RES_OTHER);
    }
    return 0;
}

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *user)
{
    (void)s;
    (void)id;
    (void)user;
    h2_stream *st = src->ptr;
    const h2_req *r = &st->c->e->reqs[st->req];
    size_t left = r->body_len - st->body_off;
    size_t n = left < length ? left : length;
    if (n > 0) {
        memcpy(buf, r->body + st->body_off, n);
        st->body_off += n;
    }
    if (st->body_off == r->body_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return (ssize_t)n;
}

/* ---- connections ---- */

static void conn_close_fd(h2_conn *c)
{
    st_engine *e = c->e;
    if (c->fd >= 0) {
        ev_io_stop(e->loop, &c->rio);
        ev_io_stop(e->loop, &c->wio);
        if (c->io.fd >= 0) {
            st_conn_io_close(&c->io, false);
        } else {
            close(c->fd);
        }
        c->fd = -1;
    }
    if (c->s) {
        nghttp2_session_del(c->s);
        c->s = NULL;
    }
    c->wlen = c->woff = 0;
}

/* Ends the connection; every stream still on it ends as kind, except those that GOAWAY or a
 * refusal left unprocessed, which were moved off it already. */
static void conn_close(h2_conn *c, st_res_kind kind)
{
    st_engine *e = c->e;
    conn_state was = c->state;
    /* Detach every stream first (nghttp2 calls nothing after the session is gone). */
    h2_stream *victims = NULL;
    for (int i = 0; i < e->n_pool; i++) {
        h2_stream *st = &e->pool[i];
        if (st->state == S_ACTIVE && st->c == c) {
            st->state = S_DEFERRED; /* marker while listed */
            st->next = victims;
            victims = st;
        }
    }
    if (c->s) {
        for (h2_stream *st = victims; st; st = st->next) {
            if (st->id > 0) {
                nghttp2_session_set_stream_user_data(c->s, st->id, NULL);
            }
        }
    }
    conn_close_fd(c);
    c->state = C_CLOSED;
    (void)was;
    while (victims) {
        h2_stream *st = victims;
        victims = st->next;
        st->state = S_ACTIVE;
        st->id = 0;
        stream_finish(st, kind);
    }
    conn_update(c);
}

/* The connection broke (EOF, reset, a failed write). As with HTTP/1.1 (engine.h), a stream on a
 * connection that had answered before and that got no byte back was most likely never seen (the
 * server closed the connection, often after a GOAWAY that this end had not read yet, as the
 * request went out): it is sent once more on another connection. The others end as other. */
static void conn_lost(h2_conn *c)
{
    st_engine *e = c->e;
    if (c->responses > 0) {
        for (int i = 0; i < e->n_pool; i++) {
            h2_stream *st = &e->pool[i];
            if (st->state == S_ACTIVE && st->c == c && st->bytes_in == 0 && !st->lost_resend) {
                st->lost_resend = true;
                stream_resend(st);
            }
        }
    }
    conn_close(c, ST_RES_OTHER);
}

/* Closes c once nghttp2 has nothing left to do on it (after GOAWAY, every stream done). */
static void conn_maybe_done(h2_conn *c)
{
    if (c->s && c->wlen == c->woff && !nghttp2_session_want_read(c->s) &&
        !nghttp2_session_want_write(c->s)) {
        conn_close(c, ST_RES_OTHER);
    } else if (c->state == C_DRAINING && c->active == 0 && c->wlen == c->woff) {
        conn_close(c, ST_RES_OTHER);
    }
}

static void conn_write_out(h2_conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t n = st_conn_io_write(&c->io, c->wbuf + c->woff, c->wlen - c->woff);
        if (n > 0) {
            c->woff += (size_t)n;
            continue;
        }
        if (n == ST_CONN_IO_WANT_WRITE) {
            if (!ev_is_active(&c->wio)) {
                ev_io_start(c->e->loop, &c->wio);
            }
            return;
        }
        if (n == ST_CONN_IO_WANT_READ) {
            return; /* the read watcher is always on: the next read flushes again */
        }
        conn_lost(c);
        return;
    }
    c->woff = c->wlen = 0;
}

/* Writes what nghttp2 has to send, in buffers of H2_WBUF_SIZE. */
static void conn_flush(h2_conn *c)
{
    if (c->state == C_CONNECTING || c->state == C_HANDSHAKE || c->fd < 0) {
        return;
    }
    for (;;) {
        if (c->wlen > c->woff) {
            conn_write_out(c);
            if (c->fd < 0 || c->wlen > c->woff) {
                return;
            }
        }
        const uint8_t *data;
        while (c->wlen < sizeof(c->wbuf)) {
            ssize_t n = nghttp2_session_mem_send(c->s, &data);
            if (n < 0) {
                conn_close(c, ST_RES_OTHER);
                return;
            }
            if (n == 0) {
                break;
            }
            if ((size_t)n > sizeof(c->wbuf) - c->wlen) {
                /* Does not fit: write what we have, then this piece directly. */
                conn_write_out(c);
                if (c->fd < 0) {
                    return;
                }
                if (c->wlen > c->woff) {
                    /* Socket full: keep the piece (the buffer holds at most one frame more than
                     * it had room for, since frames are at most 16 KB + 9 bytes). */
                    memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
                    c->wlen -= c->woff;
                    c->woff = 0;
                    if ((size_t)n > sizeof(c->wbuf) - c->wlen) {
                        conn_close(c, ST_RES_OTHER);
                        return;
                    }
                }
            }
            memcpy(c->wbuf + c->wlen, data, (size_t)n);
            c->wlen += (size_t)n;
        }
        if (c->wlen == 0) {
            break;
        }
        conn_write_out(c);
        if (c->fd < 0 || c->wlen > c->woff) {
            return;
        }
    }
    if (ev_is_active(&c->wio)) {
        ev_io_stop(c->e->loop, &c->wio);
    }
    conn_maybe_done(c);
}

static void on_flush(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)revents;
    st_engine *e = w->data;
    ev_prepare_stop(loop, w);
    for (;;) {
        pending_drain(e);
        if (!e->dirty_head) {
            break;
        }
        while (e->dirty_head) {
            h2_conn *c = e->dirty_head;
            e->dirty_head = c->dirty_next;
            c->dirty = false;
            conn_flush(c);
        }
    }
    if (ev_is_active(w) && !(e->pending_head && e->ring) && !e->dirty_head) {
        ev_prepare_stop(loop, w);
    }
}

static int conn_session(h2_conn *c)
{
    st_engine *e = c->e;
    if (nghttp2_session_client_new(&c->s, e->cbs, c) != 0) {
        return ST_ENOMEM;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_WINDOW},
    };
    if (nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) != 0 ||
        nghttp2_session_set_local_window_size(c->s, NGHTTP2_FLAG_NONE, 0, H2_WINDOW) != 0) {
        nghttp2_session_del(c->s);
        c->s = NULL;
        return ST_ENOMEM;
    }
    return 0;
}

static void conn_ready(h2_conn *c)
{
    c->state = C_OPEN;
    conn_update(c);
    mark_dirty(c);
}

/* One step of the TLS handshake (at once done for h2c); the server must choose h2 by ALPN. */
static void conn_handshake(h2_conn *c)
{
    int rc = st_conn_io_handshake(&c->io);
    if (rc == ST_CONN_IO_WANT_WRITE) {
        if (!ev_is_active(&c->wio)) {
            ev_io_start(c->e->loop, &c->wio);
        }
        return;
    }
    if (ev_is_active(&c->wio)) {
        ev_io_stop(c->e->loop, &c->wio);
    }
    if (rc == ST_CONN_IO_WANT_READ) {
        return;
    }
    if (rc != 0) {
        conn_close(c, st_conn_io_fail_kind(&c->io));
        return;
    }
    if (c->e->tls) {
        const unsigned char *p = NULL;
        size_t n = st_conn_io_alpn(&c->io, &p);
        if (n != 2 || memcmp(p, "h2", 2) != 0) {
            conn_close(c, ST_RES_TLS);
            return;
        }
    }
    conn_ready(c);
}

static void conn_connected(h2_conn *c)
{
    if (st_conn_io_start(&c->io, c->e->tls, c->fd) != 0) {
        conn_close(c, ST_RES_LOCAL);
        return;
    }
    c->state = C_HANDSHAKE;
    conn_handshake(c);
}

/* Opens c (its session takes streams at once; they go out when the socket connects). */
static void conn_connect(h2_conn *c)
{
    st_engine *e = c->e;
    for (;;) {
        bool connected = false;
        st_res_kind kind = ST_RES_CONNECT;
        int fd = st_tcp_open(&e->addrs, &c->try_, &connected, &kind);
        if (fd < 0) {
            conn_close(c, kind);
            return;
        }
        c->fd = fd;
        ev_io_set(&c->rio, fd, EV_READ);
        ev_io_set(&c->wio, fd, EV_WRITE);
        ev_io_start(e->loop, &c->rio);
        if (connected) {
            e->addrs.cur = c->try_.addr;
            conn_connected(c);
        } else {
            ev_io_start(e->loop, &c->wio);
        }
        return;
    }
}

static int conn_open(h2_conn *c)
{
    int rc = conn_session(c);
    if (rc) {
        return rc;
    }
    c->state = C_CONNECTING;
    c->responses = 0;
    st_tcp_begin(&c->e->addrs, &c->try_);
    conn_connect(c);
    return 0;
}

static void conn_connect_done(h2_conn *c)
{
    int rc = st_tcp_check(&c->e->addrs, &c->try_, c->fd);
    if (rc > 0) {
        return;
    }
    if (rc < 0) {
        ev_io_stop(c->e->loop, &c->rio);
        ev_io_stop(c->e->loop, &c->wio);
        close(c->fd);
        c->fd = -1;
        c->try_.tried++;
        conn_connect(c);
        return;
    }
    ev_io_stop(c->e->loop, &c->wio);
    conn_connected(c);
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    h2_conn *c = w->data;
    st_engine *e = c->e;
    if (c->state == C_CONNECTING) {
        conn_connect_done(c);
        return;
    }
    if (c->state == C_HANDSHAKE) {
        conn_handshake(c);
        return;
    }
    for (int reads = 0; reads < H2_MAX_READS && c->fd >= 0; reads++) {
        ssize_t n = st_conn_io_read(&c->io, e->rbuf, sizeof(e->rbuf));
        if (n > 0) {
            ssize_t used = nghttp2_session_mem_recv(c->s, e->rbuf, (size_t)n);
            if (c->fd < 0) {
                return;
            }
            if (used < 0) {
                conn_close(c, ST_RES_OTHER);
                return;
            }
            mark_dirty(c);
            if ((size_t)n < sizeof(e->rbuf) && !st_conn_io_pending(&c->io)) {
                break;
            }
            continue;
        }
        if (n == ST_CONN_IO_WANT_READ || n == ST_CONN_IO_WANT_WRITE) {
            /* A TLS read that wants the socket writable is retried on the next event. */
            break;
        }
        /* EOF or an error: whatever is still on the connection was lost mid-stream. */
        conn_lost(c);
        return;
    }
    if (c->fd >= 0 && st_conn_io_pending(&c->io)) {
        /* Bytes wait in the TLS layer, where the socket's readiness does not show them. */
        ev_feed_event(e->loop, &c->rio, EV_READ);
        return;
    }
    if (c->fd >= 0 && c->s) {
        conn_maybe_done(c);
    }
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    h2_conn *c = w->data;
    if (c->state == C_CONNECTING) {
        conn_connect_done(c);
    } else if (c->state == C_HANDSHAKE) {
        conn_handshake(c);
    } else {
        conn_flush(c);
    }
}

/* ---- streams ---- */

/* Puts st on the ring's head connection (which the caller knows exists). */
static void stream_place(st_engine *e, h2_stream *st)
{
    h2_conn *c = e->ring;
    ring_remove(e, c);
    st->c = c;
    st->state = S_ACTIVE;
    c->active++;
    conn_update(c);
    if (c->state == C_CLOSED) {
        int rc = conn_open(c);
        if (rc || st->c == NULL) {
            if (rc && st->c) {
                stream_finish(st, ST_RES_OTHER);
            }
            return;
        }
    }
    const h2_req *r = &e->reqs[st->req];
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = read_body};
    int32_t id = nghttp2_submit_request(c->s, NULL, r->nv, r->n_nv, r->has_body ? &dp : NULL, st);
    if (id < 0) {
        stream_finish(st, ST_RES_OTHER);
        return;
    }
    st->id = id;
    mark_dirty(c);
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
    uint64_t now = st_clock_mono_ns();
    for (int i = 0; i < e->n_pool; i++) {
        h2_stream *st = &e->pool[i];
        if ((st->state != S_ACTIVE && st->state != S_PENDING) ||
            now < st->start_ns + e->timeout_ns) {
            continue;
        }
        if (st->state == S_PENDING) {
            /* Unlink from the pending queue. */
            h2_stream **pp = &e->pending_head;
            h2_stream *prev = NULL;
            while (*pp && *pp != st) {
                prev = *pp;
                pp = &(*pp)->next;
            }
            if (*pp) {
                *pp = st->next;
                if (e->pending_tail == st) {
                    e->pending_tail = prev;
                }
                e->n_pending--;
            }
            st->kind = ST_RES_TIMEOUT;
            st->done_ns = now;
            report_free(e, st);
            continue;
        }
        h2_conn *c = st->c;
        if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) {
            /* A handshake that does not finish in time is a timeout (engine.h). */
            conn_state was = c->state;
            stream_finish(st, was == C_CONNECTING ? ST_RES_CONNECT : ST_RES_TIMEOUT);
            if (c->active == 0 && c->state == was) {
                conn_close(c, ST_RES_OTHER);
            }
            continue;
        }
        if (c->s && st->id > 0) {
            (void)nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
            mark_dirty(c);
        }
        stream_finish(st, ST_RES_TIMEOUT);
    }
}

/* ---- the request's header list ---- */

static bool name_is(const char *line, size_t nl, const char *name)
{
    return strlen(name) == nl && strncasecmp(line, name, nl) == 0;
}

/* The value after the colon, without the optional whitespace around it. */
static void header_value(const char *line, size_t nl, const char **v, size_t *vl)
{
    const char *p = line + nl + 1;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    size_t n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) {
        n--;
    }
    *v = p;
    *vl = n;
}

/* :method, :scheme, :authority (the plan's first Host, else the URL's), :path, user-agent (ours
 * unless the plan sets one), the plan's headers in order with lower-cased names, content-length
 * (with a body). The plan's Content-Length and Transfer-Encoding are dropped as in HTTP/1.1. */
static int build_request(void *engine, size_t index, const st_request *r, const st_url *u,
                         char *err, size_t err_len)
{
    h2_req *out = &((st_engine *)engine)->reqs[index];
    if (!st_origin_method_ok(r->method)) {
        return st_errf(err, err_len, ST_EINVAL, "requests[%zu]: method is not a valid HTTP token",
                       index);
    }
    bool head = strcmp(r->method, "HEAD") == 0;
    bool has_body = r->body != NULL && !head;
    size_t bytes = strlen(r->method) + strlen(u->scheme) + strlen(u->host_header) +
                   strlen(u->path) + sizeof(H2_USER_AGENT) + 32 + 8;
    const char *host = NULL;
    bool own_ua = false;
    for (size_t h = 0; h < r->n_headers; h++) {
        const char *line = r->headers[h];
        size_t nl = line ? st_origin_header_name_len(line) : 0;
        if (nl == 0) {
            return st_errf(err, err_len, ST_EINVAL,
                           "requests[%zu].headers[%zu]: not a \"Name: value\" line", index, h);
        }
        const char *bad = st_plan_h2_connection_header(line);
        if (bad) {
            return st_errf(err, err_len, ST_EINVAL,
                           "requests[%zu].headers[%zu]: %s is a connection header, which HTTP/2 "
                           "forbids; remove it or drop --http2",
                           index, h, bad);
        }
        if (name_is(line, nl, "Host") && !host) {
            host = line;
        }
        own_ua |= name_is(line, nl, "User-Agent");
        bytes += strlen(line) + 1;
    }
    out->nv = calloc(r->n_headers + 6, sizeof(*out->nv));
    out->strings = malloc(bytes);
    if (!out->nv || !out->strings) {
        return ST_ENOMEM;
    }
    char *s = out->strings;
    size_t n = 0;
#define NV(nm, nml, val, vall)                                                                     \
    do {                                                                                           \
        out->nv[n].name = (uint8_t *)(nm);                                                         \
        out->nv[n].namelen = (nml);                                                                \
        out->nv[n].value = (uint8_t *)(val);                                                       \
        out->nv[n].valuelen = (vall);                                                              \
        out->nv[n].flags = NGHTTP2_NV_FLAG_NONE;                                                   \
        n++;                                                                                       \
    } while (0)
    /* The URL's strings are copied: the URL is freed after create. */
    NV(":method", 7, r->method, strlen(r->method));
    bool tls = strcmp(u->scheme, "https") == 0;
    NV(":scheme", 7, tls ? "https" : "http", tls ? 5 : 4);
    if (host) {
        const char *v;
        size_t vl;
        header_value(host, 4, &v, &vl);
        NV(":authority", 10, v, vl);
    } else {
        size_t l = strlen(u->host_header);
        memcpy(s, u->host_header, l + 1);
        NV(":authority", 10, s, l);
        s += l + 1;
    }
    size_t pl = strlen(u->path);
    memcpy(s, u->path, pl + 1);
    NV(":path", 5, s, pl);
    s += pl + 1;
    if (!own_ua) {
        NV("user-agent", 10, H2_USER_AGENT, sizeof(H2_USER_AGENT) - 1);
    }
    for (size_t h = 0; h < r->n_headers; h++) {
        const char *line = r->headers[h];
        size_t nl = st_origin_header_name_len(line);
        if (name_is(line, nl, "Host") || name_is(line, nl, "Content-Length") ||
            name_is(line, nl, "Transfer-Encoding")) {
            continue;
        }
        char *name = s;
        for (size_t i = 0; i < nl; i++) {
            *s++ = (char)tolower((unsigned char)line[i]);
        }
        *s++ = 0;
        const char *v;
        size_t vl;
        header_value(line, nl, &v, &vl);
        NV(name, nl, v, vl);
    }
    if (has_body) {
        char *len = s;
        int w = snprintf(s, 24, "%zu", r->body_len);
        s += w + 1;
        NV("content-length", 14, len, (size_t)w);
    }
#undef NV
    out->n_nv = n;
    out->body = r->body;
    out->body_len = r->body_len;
    out->has_body = has_body;
    return 0;
}

/* ---- ops ---- */

static void h2_destroy(st_engine *e)
{
    if (!e) {
        return;
    }
    ev_timer_stop(e->loop, &e->sweep);
    ev_timer_stop(e->loop, &e->defer_timer);
    ev_prepare_stop(e->loop, &e->flush);
    if (e->conns) {
        for (int i = 0; i < e->n_conns; i++) {
            if (e->conns[i].e) {
                conn_close_fd(&e->conns[i]);
            }
        }
    }
    if (e->reqs) {
        for (size_t i = 0; i < e->n_reqs; i++) {
            free(e->reqs[i].nv);
            free(e->reqs[i].strings);
        }
    }
    if (e->cbs) {
        nghttp2_session_callbacks_del(e->cbs);
    }
    st_conn_tls_free(e->tls);
    free(e->reqs);
    free(e->conns);
    free(e->pool);
    free(e);
}

static int h2_create(st_engine **out, struct ev_loop *loop, const st_engine_cfg *cfg,
                     st_engine_done_fn done, void *worker, char *err, size_t err_len)
{
    char dummy[1];
    if (!err || err_len == 0) {
        err = dummy;
        err_len = sizeof(dummy);
    }
    err[0] = 0;
    int rc = st_origin_check_cfg("h2", out, loop, cfg, done, err, err_len);
    if (rc != 0) {
        return rc;
    }
    st_engine *e = calloc(1, sizeof(*e));
    if (!e) {
        return ST_ENOMEM;
    }
    e->loop = loop;
    e->done = done;
    e->worker = worker;
    e->streams = cfg->streams > 0 ? cfg->streams : 1;
    e->timeout_ns = (uint64_t)cfg->timeout_ms * ST_NS_PER_MS;
    ev_timer_init(&e->defer_timer, on_defer, 0., 0.);
    e->defer_timer.data = e;
    double iv = st_origin_sweep_interval(cfg->timeout_ms);
    ev_timer_init(&e->sweep, on_sweep, iv, iv);
    e->sweep.data = e;
    ev_prepare_init(&e->flush, on_flush);
    e->flush.data = e;

    e->n_reqs = cfg->n_requests;
    e->n_conns = cfg->connections;
    e->n_pool = e->n_conns * e->streams;
    e->reqs = calloc(cfg->n_requests, sizeof(*e->reqs));
    e->conns = calloc((size_t)e->n_conns, sizeof(*e->conns));
    e->pool = calloc((size_t)e->n_pool, sizeof(*e->pool));
    if (!e->reqs || !e->conns || !e->pool || nghttp2_session_callbacks_new(&e->cbs) != 0) {
        rc = ST_ENOMEM;
        goto out;
    }
    nghttp2_session_callbacks_set_on_header_callback(e->cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(e->cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(e->cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(e->cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(e->cbs, on_frame_not_send);
    for (int i = e->n_pool - 1; i >= 0; i--) {
        e->pool[i].next = e->free_list;
        e->free_list = &e->pool[i];
    }
    for (int i = 0; i < e->n_conns; i++) {
        h2_conn *c = &e->conns[i];
        c->e = e;
        c->fd = -1;
        st_conn_io_init(&c->io);
        ev_io_init(&c->rio, on_readable, -1, EV_READ);
        c->rio.data = c;
        ev_io_init(&c->wio, on_writable, -1, EV_WRITE);
        c->wio.data = c;
        conn_update(c);
    }
    rc = st_origin_setup("h2", cfg, "h2", build_request, e, &e->addrs, &e->tls, err, err_len);
out:
    if (rc != 0) {
        h2_destroy(e);
        return rc;
    }
    *out = e;
    return 0;
}

static int h2_free_slots(st_engine *e)
{
    return e->n_pool - e->inflight;
}

static int h2_inflight(st_engine *e)
{
    return e->inflight;
}

static int h2_send(st_engine *e, size_t req_index, uint64_t tag)
{
    if (req_index >= e->n_reqs) {
        return ST_EINVAL;
    }
    if (!e->free_list) {
        return ST_EAGAIN;
    }
    h2_stream *st = e->free_list;
    e->free_list = st->next;
    uint64_t now = st_clock_mono_ns();
    memset(st, 0, sizeof(*st));
    st->req = (uint32_t)req_index;
    st->tag = tag;
    st->epoch = e->epoch;
    st->start_ns = now;
    st->sent_ns = now;
    e->inflight++;
    if (!ev_is_active(&e->sweep)) {
        ev_timer_start(e->loop, &e->sweep);
    }
    e->in_send = true;
    if (e->ring && !e->pending_head) {
        stream_place(e, st);
    } else {
        pending_push(e, st);
    }
    e->in_send = false;
    return 0;
}

static void h2_cancel_all(st_engine *e)
{
    uint64_t epoch = ++e->epoch;
    uint64_t now = st_clock_mono_ns();
    h2_stream *d = e->defer_head;
    e->defer_head = e->defer_tail = NULL;
    h2_stream *p = e->pending_head;
    e->pending_head = e->pending_tail = NULL;
    e->n_pending = 0;
    for (h2_stream *lists[2] = {d, p}, **l = lists; l < lists + 2; l++) {
        while (*l) {
            h2_stream *st = *l;
            *l = st->next;
            st->kind = ST_RES_ABORTED;
            st->done_ns = now;
            report_free(e, st);
        }
    }
    for (int i = 0; i < e->n_pool; i++) {
        h2_stream *st = &e->pool[i];
        if (st->state == S_ACTIVE && st->epoch < epoch) {
            h2_conn *c = st->c;
            if (c->s && st->id > 0) {
                (void)nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
                mark_dirty(c);
            }
            stream_finish(st, ST_RES_ABORTED);
        }
    }
}

static int h2_applies(const st_plan *plan, char *why, size_t why_len)
{
    static const char *const proxy_vars[] = {"http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"};
    if (!plan || plan->n_requests == 0) {
        return st_errf(why, why_len, 0, "the plan has no requests");
    }
    if (plan->http2 != 1) {
        return st_errf(why, why_len, 0, "the plan does not ask for HTTP/2 (--http2)");
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
            ok = st_errf(why, why_len, 0, "requests[%zu].url is not a valid URL", i);
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

const st_engine_ops st_engine_h2 = {
    .name = "h2",
    .applies = h2_applies,
    .create = h2_create,
    .free_slots = h2_free_slots,
    .send = h2_send,
    .inflight = h2_inflight,
    .cancel_all = h2_cancel_all,
    .destroy = h2_destroy,
};
