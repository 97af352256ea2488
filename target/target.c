/*
 * stampede-target: the project's own controllable HTTP/1.1 server, the fixture the load generator's
 * tests aim at. See opts.c for the command line and the control endpoints.
 *
 * Shape: one libev loop, one listening socket, one struct conn per accepted connection. Bytes read
 * are parsed at once by http-parser (paused after every message so that each request is dispatched
 * with exact byte counts); each complete request becomes a struct req queued on its connection in
 * arrival order. A req is ready at once, or after its latency timer, or when a stall ends; the head
 * of the queue is written as soon as it is ready, so pipelined answers keep their order. reqs come
 * from a free list and response headers are pre-built per status, so a keep-alive request costs no
 * allocation and one recv() and one send() at most.
 */
#include "clock.h"
#include "error.h"
#include "log.h"
#include "opts.h"
#include "pick.h"

#include <ev.h>
#include <http_parser.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF_BYTES    (64 * 1024)
#define MAX_HEADER_BYTES  (64 * 1024)  /* request line + headers; more gets 431 */
#define URL_MAX           2048         /* longer URLs are kept truncated (414 on control paths) */
#define MAX_PENDING       1024         /* queued answers per connection before reading pauses */
#define OUT_HIGH_BYTES    (256 * 1024) /* unsent bytes per connection before reading pauses */
#define OUT_INITIAL_BYTES (16 * 1024)
#define LINGER_S          2.0
#define HDR_MAX           320
#define CTL_PREFIX        "/__target/"
#define CTL_PREFIX_LEN    (sizeof(CTL_PREFIX) - 1)

/* How the Connection header of an answer reads. */
enum { CONN_HDR_NONE = 0, CONN_HDR_KEEP_ALIVE = 1, CONN_HDR_CLOSE = 2, CONN_HDR_N = 3 };

enum req_state {
    REQ_READY,      /* can be written as soon as it reaches the head of the queue */
    REQ_TIMER,      /* its latency timer runs */
    REQ_HELD,       /* its latency is over, but a stall is on */
    REQ_WAIT_STALL, /* arrived during a stall: its latency starts when the stall ends */
};

enum req_kind {
    KIND_NORMAL,    /* counted: a status from the mix and the configured body */
    KIND_STATS,     /* GET /__target/stats: the counters when the answer is written */
    KIND_RESET,     /* POST /__target/reset */
    KIND_STALL,     /* POST /__target/stall?ms=MS; arg is MS */
    KIND_CTL_ERROR, /* a control request that failed: its status says why */
    KIND_REJECT,    /* a malformed or oversized request: status, then close */
};

typedef struct req {
    ev_timer timer;
    struct conn *conn;
    struct req *next;
    double delay_s;
    uint64_t arg;
    const char *allow; /* the Allow header value of a 405 */
    uint16_t status;
    uint8_t state;
    uint8_t kind;
    uint8_t mix_index;
    uint8_t conn_hdr;
    bool head;
    bool close;
} req;

typedef struct conn {
    ev_io rio;
    ev_io wio;
    ev_timer linger;
    struct target *t;
    struct conn *prev, *next;
    http_parser parser;
    int fd;
    req *qhead, *qtail;
    unsigned pending;
    char *out;
    size_t out_len, out_off, out_cap;
    uint64_t served;     /* counted requests received on this connection */
    uint64_t msg_bytes;  /* bytes of the message being parsed so far */
    uint64_t body_bytes; /* body bytes of the message being parsed */
    uint64_t epoch;      /* the stats epoch this connection was counted in */
    int reject;          /* set by a parser callback: answer this status and close */
    bool msg_done;       /* set by on_message_complete */
    bool counted;        /* included in connections_accepted / connections_open */
    bool seen_request;
    bool closing; /* nothing more is parsed; close once the queue is written */
    bool peer_eof;
    bool lingering; /* answers are written and our side is shut; draining the peer */
    bool in_value;
    bool hdr_is_expect;
    bool expect_continue;
    size_t url_len;
    bool url_truncated;
    size_t hname_len;
    size_t hval_len;
    char hname[8];
    char hval[16];
    char url[URL_MAX];
} conn;

/* Requests are counted per path (the request target without its query) for the first
 * TARGET_PATHS distinct paths, each kept to PATH_KEY_MAX - 1 bytes; later paths count in
 * other_paths. */
#define TARGET_PATHS 32
#define PATH_KEY_MAX 96
#define STATS_JSON_MAX 32768

typedef struct path_count {
    char path[PATH_KEY_MAX];
    uint64_t n;
} path_count;

typedef struct target_stats {
    path_count by_path[TARGET_PATHS];
    size_t n_paths;
    uint64_t other_paths;
    uint64_t requests;
    uint64_t responses;
    uint64_t by_status[600];
    uint64_t connections_accepted;
    uint64_t connections_open;
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t rejected;
} target_stats;

typedef struct target {
    struct ev_loop *loop;
    const st_target_opts *opts;
    st_mix mix;
    st_delay delay;
    int lfd;
    ev_io lio;
    ev_timer accept_retry;
    ev_signal sigint_w, sigterm_w;
    ev_timer stall_timer;     /* active while a stall is on */
    ev_timer stall_scheduled; /* --stall-at */
    ev_tstamp stall_end;
    conn *conns;
    req *free_reqs;
    http_parser_settings settings;
    char *body;
    time_t hdr_sec;
    char date_line[64];
    size_t date_line_len;
    uint16_t hdr_len[ST_MIX_MAX][CONN_HDR_N];
    char hdr[ST_MIX_MAX][CONN_HDR_N][HDR_MAX];
    target_stats st;
    uint64_t epoch;
    uint64_t start_ns;
    uint64_t reset_ns;
    char bound[INET6_ADDRSTRLEN + 8];
    char rbuf[READ_BUF_BYTES];
} target;

static int conn_flush(conn *c);
static void conn_close(conn *c);

/* ---- pre-built headers ---- */

static bool status_has_body(int status)
{
    return status != 204 && status != 304;
}

static const char *const conn_hdr_text[CONN_HDR_N] = {
    "",
    "Connection: keep-alive\r\n",
    "Connection: close\r\n",
};

/* Rebuilds the Date line and every pre-built header when the wall-clock second changes. */
static void headers_refresh(target *t)
{
    time_t now = (time_t)ev_now(t->loop);
    if (now == t->hdr_sec) {
        return;
    }
    t->hdr_sec = now;
    struct tm tm;
    gmtime_r(&now, &tm);
    t->date_line_len =
        strftime(t->date_line, sizeof(t->date_line), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    for (int i = 0; i < t->mix.n; i++) {
        int status = t->mix.e[i].status;
        char clen[48] = "";
        if (status_has_body(status)) {
            snprintf(clen, sizeof(clen), "Content-Length: %zu\r\n", t->opts->body_bytes);
        }
        for (int v = 0; v < CONN_HDR_N; v++) {
            int n = snprintf(t->hdr[i][v], HDR_MAX,
                             "HTTP/1.1 %d %s\r\nServer: stampede-target\r\n%s"
                             "Content-Type: text/plain\r\n%s%s\r\n",
                             status, st_http_reason(status), t->date_line, clen, conn_hdr_text[v]);
            t->hdr_len[i][v] = (uint16_t)(n > 0 && n < HDR_MAX ? n : 0);
        }
    }
}

/* ---- request pool ---- */

static void req_timer_cb(EV_P_ ev_timer *w, int revents);

static req *req_get(conn *c)
{
    target *t = c->t;
    req *r = t->free_reqs;
    if (r) {
        t->free_reqs = r->next;
    } else {
        r = malloc(sizeof(*r));
        if (!r) {
            return NULL;
        }
    }
    memset(r, 0, sizeof(*r));
    r->conn = c;
    ev_init(&r->timer, req_timer_cb);
    r->timer.data = r;
    return r;
}

static void req_put(target *t, req *r)
{
    r->next = t->free_reqs;
    t->free_reqs = r;
}

/* ---- stats ---- */

static void stats_reset(target *t)
{
    uint64_t open = t->st.connections_open;
    memset(&t->st, 0, sizeof(t->st));
    t->st.connections_open = open;
    t->epoch++;
    st_mix_rewind(&t->mix);
    t->reset_ns = st_clock_mono_ns();
}

/* Counts one request for the path of url (len bytes; the query left out). */
static void path_count_add(target_stats *s, const char *url, size_t len)
{
    const char *q = memchr(url, '?', len);
    size_t n = q ? (size_t)(q - url) : len;
    if (n >= PATH_KEY_MAX) {
        n = PATH_KEY_MAX - 1;
    }
    for (size_t i = 0; i < s->n_paths; i++) {
        if (strlen(s->by_path[i].path) == n && memcmp(s->by_path[i].path, url, n) == 0) {
            s->by_path[i].n++;
            return;
        }
    }
    if (s->n_paths == TARGET_PATHS) {
        s->other_paths++;
        return;
    }
    path_count *p = &s->by_path[s->n_paths++];
    memcpy(p->path, url, n);
    p->path[n] = 0;
    p->n = 1;
}

/* Appends printf output at buf + *n. Returns false when it does not fit. */
static bool put(char *buf, size_t len, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static bool put(char *buf, size_t len, size_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *n, len - *n, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= len - *n) {
        return false;
    }
    *n += (size_t)w;
    return true;
}

/* Appends s as a JSON string at buf + *n. Returns false when it does not fit. */
static bool json_string(char *buf, size_t len, size_t *n, const char *s)
{
    bool ok = put(buf, len, n, "\"");
    for (; ok && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        ok = ch == '"' || ch == '\\' ? put(buf, len, n, "\\%c", ch)
             : ch < 0x20 || ch >= 0x7f ? put(buf, len, n, "\\u%04x", ch)
                                       : put(buf, len, n, "%c", ch);
    }
    return ok && put(buf, len, n, "\"");
}

/* ", "by_path": {PATH: N, ...}, "other_paths": N" at buf + *n. */
static bool paths_json(const target_stats *s, char *buf, size_t len, size_t *n)
{
    bool ok = put(buf, len, n, ", \"by_path\": {");
    for (size_t i = 0; ok && i < s->n_paths; i++) {
        ok = (i == 0 || put(buf, len, n, ", ")) && json_string(buf, len, n, s->by_path[i].path) &&
             put(buf, len, n, ": %llu", (unsigned long long)s->by_path[i].n);
    }
    return ok && put(buf, len, n, "}, \"other_paths\": %llu", (unsigned long long)s->other_paths);
}

/* Renders the counters as one line of JSON (no newline). Returns the length, or -1 if buf is too
 * small. */
static int stats_json(const target *t, char *buf, size_t len)
{
    const target_stats *s = &t->st;
    size_t n = 0;
    int w = snprintf(buf, len, "{\"requests\": %llu, \"responses\": %llu, \"by_status\": {",
                     (unsigned long long)s->requests, (unsigned long long)s->responses);
    if (w < 0 || (size_t)w >= len) {
        return -1;
    }
    n = (size_t)w;
    bool first = true;
    for (int code = 100; code < 600; code++) {
        if (s->by_status[code] == 0) {
            continue;
        }
        w = snprintf(buf + n, len - n, "%s\"%d\": %llu", first ? "" : ", ", code,
                     (unsigned long long)s->by_status[code]);
        if (w < 0 || (size_t)w >= len - n) {
            return -1;
        }
        n += (size_t)w;
        first = false;
    }
    if (!put(buf, len, &n, "}") || !paths_json(s, buf, len, &n)) {
        return -1;
    }
    uint64_t now = st_clock_mono_ns();
    w = snprintf(buf + n, len - n,
                 ", \"connections_accepted\": %llu, \"connections_open\": %llu, "
                 "\"bytes_in\": %llu, \"bytes_out\": %llu, \"rejected\": %llu, "
                 "\"uptime_s\": %.3f, \"since_reset_s\": %.3f}",
                 (unsigned long long)s->connections_accepted,
                 (unsigned long long)s->connections_open, (unsigned long long)s->bytes_in,
                 (unsigned long long)s->bytes_out, (unsigned long long)s->rejected,
                 (double)(now - t->start_ns) / 1e9, (double)(now - t->reset_ns) / 1e9);
    if (w < 0 || (size_t)w >= len - n) {
        return -1;
    }
    return (int)(n + (size_t)w);
}

/* ---- output buffer ---- */

/* Makes room for need more bytes at out + out_len. */
static int out_reserve(conn *c, size_t need)
{
    if (c->out_cap - c->out_len >= need) {
        return 0;
    }
    if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_cap - c->out_len >= need) {
            return 0;
        }
    }
    size_t cap = c->out_cap ? c->out_cap : OUT_INITIAL_BYTES;
    while (cap - c->out_len < need) {
        cap *= 2;
    }
    char *p = realloc(c->out, cap);
    if (!p) {
        return ST_ENOMEM;
    }
    c->out = p;
    c->out_cap = cap;
    return 0;
}

static int out_append(conn *c, const void *data, size_t len)
{
    if (out_reserve(c, len) != 0) {
        return ST_ENOMEM;
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return 0;
}

/* ---- answers ---- */

static int append_normal(conn *c, const req *r)
{
    target *t = c->t;
    headers_refresh(t);
    size_t hlen = t->hdr_len[r->mix_index][r->conn_hdr];
    bool body = !r->head && status_has_body(r->status);
    size_t blen = body ? t->opts->body_bytes : 0;
    if (hlen == 0 || out_reserve(c, hlen + blen) != 0) {
        return ST_ENOMEM;
    }
    memcpy(c->out + c->out_len, t->hdr[r->mix_index][r->conn_hdr], hlen);
    if (blen) {
        memcpy(c->out + c->out_len + hlen, t->body, blen);
    }
    c->out_len += hlen + blen;
    t->st.responses++;
    t->st.by_status[r->status]++;
    t->st.bytes_out += hlen + blen;
    return 0;
}

/* An answer with a small generated body: control endpoints and rejections. */
static int append_small(conn *c, const req *r, const char *type, const char *extra,
                        const char *body, size_t blen)
{
    target *t = c->t;
    headers_refresh(t);
    char hdr[512];
    int n =
        snprintf(hdr, sizeof(hdr),
                 "HTTP/1.1 %d %s\r\nServer: stampede-target\r\n%.*s"
                 "Content-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n%s%s\r\n",
                 r->status, st_http_reason(r->status), (int)t->date_line_len, t->date_line, type,
                 blen, extra, conn_hdr_text[r->conn_hdr]);
    if (n < 0 || (size_t)n >= sizeof(hdr)) {
        return ST_ERANGE;
    }
    if (out_reserve(c, (size_t)n + blen) != 0) {
        return ST_ENOMEM;
    }
    out_append(c, hdr, (size_t)n);
    if (!r->head) {
        out_append(c, body, blen);
    }
    return 0;
}

static int append_answer(conn *c, const req *r)
{
    char body[STATS_JSON_MAX];
    int n;
    switch (r->kind) {
    case KIND_NORMAL:
        return append_normal(c, r);
    case KIND_STATS:
        n = stats_json(c->t, body, sizeof(body) - 1);
        if (n < 0) {
            return ST_ERANGE;
        }
        body[n++] = '\n';
        return append_small(c, r, "application/json", "", body, (size_t)n);
    case KIND_RESET:
        n = snprintf(body, sizeof(body), "{\"reset\": true}\n");
        return append_small(c, r, "application/json", "", body, (size_t)n);
    case KIND_STALL:
        n = snprintf(body, sizeof(body), "{\"stall_ms\": %llu}\n", (unsigned long long)r->arg);
        return append_small(c, r, "application/json", "", body, (size_t)n);
    case KIND_CTL_ERROR: {
        char extra[64] = "";
        const char *msg;
        switch (r->status) {
        case 400:
            msg = "ms must be an integer 0..3600000, as in /__target/stall?ms=500";
            break;
        case 405:
            snprintf(extra, sizeof(extra), "Allow: %s\r\n", r->allow);
            msg = "method not allowed";
            break;
        case 414:
            msg = "control URL too long";
            break;
        default:
            msg = "no such control endpoint; there are GET /__target/stats, POST /__target/reset "
                  "and POST /__target/stall?ms=MS";
            break;
        }
        n = snprintf(body, sizeof(body), "{\"error\": \"%s\"}\n", msg);
        return append_small(c, r, "application/json", extra, body, (size_t)n);
    }
    case KIND_REJECT:
    default: {
        const char *text = r->status == 431   ? "request header fields too large\n"
                           : r->status == 413 ? "request body too large\n"
                                              : "bad request\n";
        return append_small(c, r, "text/plain", "", text, strlen(text));
    }
    }
}

/* ---- connection lifetime ---- */

static void conn_uncount(conn *c)
{
    target *t = c->t;
    if (!c->counted) {
        return;
    }
    c->counted = false;
    t->st.connections_open--;
    if (c->epoch == t->epoch && t->st.connections_accepted > 0) {
        t->st.connections_accepted--;
    }
}

static void conn_count(conn *c)
{
    target *t = c->t;
    if (c->counted) {
        return;
    }
    c->counted = true;
    c->epoch = t->epoch;
    t->st.connections_accepted++;
    t->st.connections_open++;
}

static void conn_close(conn *c)
{
    target *t = c->t;
    ev_io_stop(t->loop, &c->rio);
    ev_io_stop(t->loop, &c->wio);
    ev_timer_stop(t->loop, &c->linger);
    while (c->qhead) {
        req *r = c->qhead;
        c->qhead = r->next;
        ev_timer_stop(t->loop, &r->timer);
        req_put(t, r);
    }
    if (c->counted) {
        t->st.connections_open--;
    }
    /* Bytes of a request that never completed still arrived. */
    t->st.bytes_in += c->msg_bytes;
    close(c->fd);
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        t->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    free(c->out);
    free(c);
}

static void conn_linger_cb(EV_P_ ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    conn_close(w->data);
}

/* Everything is written and no more requests will be read: close, after draining what the peer
 * still sends so that our last answer is not destroyed by a reset. Returns -1 when c was closed
 * (and freed) at once, 0 when it lingers. */
static int conn_finish(conn *c)
{
    target *t = c->t;
    if (c->peer_eof) {
        conn_close(c);
        return -1;
    }
    c->lingering = true;
    shutdown(c->fd, SHUT_WR);
    ev_io_stop(t->loop, &c->wio);
    ev_io_start(t->loop, &c->rio);
    ev_timer_set(&c->linger, LINGER_S, 0);
    ev_timer_start(t->loop, &c->linger);
    return 0;
}

static void conn_update_read(conn *c)
{
    target *t = c->t;
    bool want = c->lingering || (!c->closing && c->pending < MAX_PENDING &&
                                 c->out_len - c->out_off < OUT_HIGH_BYTES);
    if (want && !ev_is_active(&c->rio)) {
        ev_io_start(t->loop, &c->rio);
    } else if (!want && ev_is_active(&c->rio)) {
        ev_io_stop(t->loop, &c->rio);
    }
}

/* Writes every ready answer at the head of the queue. Returns -1 if the connection was closed (c is
 * freed then), 0 otherwise. */
static int conn_flush(conn *c)
{
    target *t = c->t;
    for (;;) {
        bool appended = false;
        while (c->qhead && c->qhead->state == REQ_READY &&
               c->out_len - c->out_off < OUT_HIGH_BYTES) {
            req *r = c->qhead;
            if (append_answer(c, r) != 0) {
                st_warn("out of memory for an answer; closing the connection");
                conn_close(c);
                return -1;
            }
            c->qhead = r->next;
            if (!c->qhead) {
                c->qtail = NULL;
            }
            c->pending--;
            req_put(t, r);
            appended = true;
        }
        bool blocked = false;
        while (c->out_off < c->out_len) {
            ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    blocked = true;
                    break;
                }
                conn_close(c);
                return -1;
            }
            c->out_off += (size_t)n;
        }
        if (c->out_off == c->out_len) {
            c->out_off = c->out_len = 0;
        }
        if (blocked || !appended || !c->qhead || c->qhead->state != REQ_READY) {
            break;
        }
    }
    if (c->out_len > 0) {
        ev_io_start(t->loop, &c->wio);
    } else {
        ev_io_stop(t->loop, &c->wio);
        if (c->closing && !c->qhead && !c->lingering) {
            return conn_finish(c);
        }
    }
    conn_update_read(c);
    return 0;
}

static void conn_write_cb(EV_P_ ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    conn_flush(w->data);
}

/* ---- stalls and latency ---- */

static bool stalled(const target *t)
{
    return ev_is_active(&t->stall_timer);
}

static void req_timer_cb(EV_P_ ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    req *r = w->data;
    conn *c = r->conn;
    if (stalled(c->t)) {
        r->state = REQ_HELD;
        return;
    }
    r->state = REQ_READY;
    if (c->qhead == r) {
        conn_flush(c);
    }
}

/* Puts a counted request on its way: latency, unless a stall holds it first. */
static void req_schedule(target *t, req *r)
{
    if (stalled(t)) {
        r->state = REQ_WAIT_STALL;
    } else if (r->delay_s > 0) {
        r->state = REQ_TIMER;
        ev_timer_set(&r->timer, r->delay_s, 0);
        ev_timer_start(t->loop, &r->timer);
    } else {
        r->state = REQ_READY;
    }
}

static void stall_end_cb(EV_P_ ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    target *t = w->data;
    conn *next;
    for (conn *c = t->conns; c; c = next) {
        next = c->next;
        for (req *r = c->qhead; r; r = r->next) {
            if (r->state == REQ_HELD) {
                r->state = REQ_READY;
            } else if (r->state == REQ_WAIT_STALL) {
                req_schedule(t, r);
            }
        }
        if (c->qhead && c->qhead->state == REQ_READY) {
            conn_flush(c);
        }
    }
}

static void stall_start(target *t, uint64_t ms)
{
    if (ms == 0) {
        return;
    }
    ev_tstamp now = ev_now(t->loop);
    ev_tstamp end = now + (double)ms / 1000.0;
    if (stalled(t) && t->stall_end >= end) {
        return;
    }
    t->stall_end = end;
    ev_timer_stop(t->loop, &t->stall_timer);
    ev_timer_set(&t->stall_timer, end - now, 0);
    ev_timer_start(t->loop, &t->stall_timer);
    st_info("stall for %llu ms", (unsigned long long)ms);
}

static void stall_scheduled_cb(EV_P_ ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    target *t = w->data;
    stall_start(t, t->opts->stall_ms);
}

/* ---- requests ---- */

static void conn_enqueue(conn *c, req *r)
{
    if (c->qtail) {
        c->qtail->next = r;
    } else {
        c->qhead = r;
    }
    c->qtail = r;
    c->pending++;
}

static bool query_ms(const char *q, size_t len, uint64_t *out)
{
    /* q is the query string without '?': "a=b&ms=500". */
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && q[end] != '&') {
            end++;
        }
        if (end - i > 3 && memcmp(q + i, "ms=", 3) == 0) {
            uint64_t v = 0;
            size_t j = i + 3;
            for (; j < end; j++) {
                if (q[j] < '0' || q[j] > '9') {
                    return false;
                }
                v = v * 10 + (uint64_t)(q[j] - '0');
                if (v > (uint64_t)ST_DELAY_MAX_MS) {
                    return false;
                }
            }
            *out = v;
            return true;
        }
        i = end + 1;
    }
    return false;
}

/* Fills a control answer: acts on reset and stall at once (on receipt). */
static void control_route(conn *c, req *r)
{
    target *t = c->t;
    const char *path = c->url + CTL_PREFIX_LEN;
    size_t len = c->url_len - CTL_PREFIX_LEN;
    const char *qmark = memchr(path, '?', len);
    size_t plen = qmark ? (size_t)(qmark - path) : len;
    int method = c->parser.method;
    r->kind = KIND_CTL_ERROR;
    if (c->url_truncated) {
        r->status = 414;
    } else if (plen == 5 && memcmp(path, "stats", 5) == 0) {
        if (method == HTTP_GET || method == HTTP_HEAD) {
            r->kind = KIND_STATS;
            r->status = 200;
        } else {
            r->status = 405;
            r->allow = "GET, HEAD";
        }
    } else if (plen == 5 && memcmp(path, "reset", 5) == 0) {
        if (method == HTTP_POST) {
            stats_reset(t);
            r->kind = KIND_RESET;
            r->status = 200;
        } else {
            r->status = 405;
            r->allow = "POST";
        }
    } else if (plen == 5 && memcmp(path, "stall", 5) == 0) {
        uint64_t ms;
        if (method != HTTP_POST) {
            r->status = 405;
            r->allow = "POST";
        } else if (!qmark || !query_ms(qmark + 1, len - plen - 1, &ms)) {
            r->status = 400;
        } else {
            stall_start(t, ms);
            r->kind = KIND_STALL;
            r->status = 200;
            r->arg = ms;
        }
    } else {
        r->status = 404;
    }
}

/* A complete request was parsed: queue its answer. Returns ST_ENOMEM when no req is available. */
static int conn_dispatch(conn *c)
{
    target *t = c->t;
    http_parser *p = &c->parser;
    req *r = req_get(c);
    if (!r) {
        return ST_ENOMEM;
    }
    bool keep = http_should_keep_alive(p) && !p->upgrade;
    bool control = c->url_len >= CTL_PREFIX_LEN && memcmp(c->url, CTL_PREFIX, CTL_PREFIX_LEN) == 0;
    r->head = p->method == HTTP_HEAD;
    if (control) {
        /* A connection that opens with a control request is the tester's, not the load's. */
        if (!c->seen_request) {
            conn_uncount(c);
        }
        control_route(c, r);
        r->state = REQ_READY;
    } else {
        conn_count(c);
        t->st.requests++;
        path_count_add(&t->st, c->url, c->url_len);
        t->st.bytes_in += c->msg_bytes;
        int idx = st_mix_next(&t->mix);
        r->kind = KIND_NORMAL;
        r->mix_index = (uint8_t)idx;
        r->status = (uint16_t)t->mix.e[idx].status;
        c->served++;
        if (t->opts->close_every && c->served % t->opts->close_every == 0) {
            keep = false;
        }
        r->delay_s = t->opts->has_latency ? st_delay_next_ms(&t->delay) / 1000.0 : 0;
        req_schedule(t, r);
    }
    c->seen_request = true;
    c->msg_bytes = 0;
    r->close = !keep;
    if (!keep) {
        r->conn_hdr = CONN_HDR_CLOSE;
        c->closing = true;
    } else if (p->http_major == 1 && p->http_minor == 0) {
        r->conn_hdr = CONN_HDR_KEEP_ALIVE;
    } else {
        r->conn_hdr = CONN_HDR_NONE;
    }
    conn_enqueue(c, r);
    return 0;
}

/* Answers a request that cannot be served with status, then closes. */
static int conn_reject(conn *c, int status)
{
    target *t = c->t;
    req *r = req_get(c);
    if (!r) {
        return ST_ENOMEM;
    }
    t->st.rejected++;
    t->st.bytes_in += c->msg_bytes;
    c->msg_bytes = 0;
    r->kind = KIND_REJECT;
    r->status = (uint16_t)status;
    r->state = REQ_READY;
    r->close = true;
    r->conn_hdr = CONN_HDR_CLOSE;
    c->closing = true;
    conn_enqueue(c, r);
    return 0;
}

/* ---- http-parser callbacks ---- */

static int on_message_begin(http_parser *p)
{
    conn *c = p->data;
    c->url_len = 0;
    c->url_truncated = false;
    c->body_bytes = 0;
    c->in_value = false;
    c->hname_len = 0;
    c->hdr_is_expect = false;
    c->expect_continue = false;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    size_t room = URL_MAX - c->url_len;
    if (len > room) {
        len = room;
        c->url_truncated = true;
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    return 0;
}

/* Only Expect matters to us; its value is checked when the header ends. */
static void header_end(conn *c)
{
    if (c->hdr_is_expect && c->hval_len == 12 && strncasecmp(c->hval, "100-continue", 12) == 0) {
        c->expect_continue = true;
    }
    c->hdr_is_expect = false;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    if (c->in_value) {
        header_end(c);
        c->in_value = false;
        c->hname_len = 0;
    }
    size_t room = sizeof(c->hname) - c->hname_len;
    memcpy(c->hname + c->hname_len, at, len < room ? len : room);
    c->hname_len += len < room ? len : room;
    if (len > room) {
        c->hname_len = sizeof(c->hname); /* too long to be "expect" */
    }
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    conn *c = p->data;
    if (!c->in_value) {
        c->in_value = true;
        c->hval_len = 0;
        c->hdr_is_expect = c->hname_len == 6 && strncasecmp(c->hname, "expect", 6) == 0;
    }
    if (c->hdr_is_expect) {
        if (c->hval_len + len > sizeof(c->hval)) {
            c->hdr_is_expect = false;
        } else {
            memcpy(c->hval + c->hval_len, at, len);
            c->hval_len += len;
        }
    }
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    conn *c = p->data;
    target *t = c->t;
    if (c->in_value) {
        header_end(c);
        c->in_value = false;
    }
    bool has_body =
        (p->flags & F_CHUNKED) || (p->content_length > 0 && p->content_length != ULLONG_MAX);
    if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX &&
        p->content_length > t->opts->max_body_bytes) {
        c->reject = 413;
        http_parser_pause(p, 1);
        return 0;
    }
    /* Only when nothing is queued: a 100 Continue must not slip in ahead of earlier answers. */
    if (c->expect_continue && has_body && !c->qhead && p->http_major == 1 && p->http_minor >= 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (out_append(c, cont, sizeof(cont) - 1) != 0) {
            return -1;
        }
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    (void)at;
    conn *c = p->data;
    c->body_bytes += len;
    if (c->body_bytes > c->t->opts->max_body_bytes) {
        c->reject = 413;
        http_parser_pause(p, 1);
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    conn *c = p->data;
    c->msg_done = true;
    http_parser_pause(p, 1);
    return 0;
}

/* Parses what was read, dispatching each complete request. Returns ST_ENOMEM if it could not queue
 * an answer (the caller closes the connection). */
static int conn_parse(conn *c, const char *data, size_t len)
{
    target *t = c->t;
    size_t off = 0;
    while (off < len && !c->closing) {
        size_t used = http_parser_execute(&c->parser, &t->settings, data + off, len - off);
        off += used;
        c->msg_bytes += used;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            if (c->reject) {
                return conn_reject(c, c->reject);
            }
            if (c->msg_done) {
                c->msg_done = false;
                int rc = conn_dispatch(c);
                if (rc != 0) {
                    return rc;
                }
            }
            continue;
        }
        if (e != HPE_OK) {
            st_debug("malformed request: %s", http_errno_description(e));
            return conn_reject(c, e == HPE_HEADER_OVERFLOW ? 431 : 400);
        }
        if (used == 0) {
            return conn_reject(c, 400);
        }
    }
    return 0;
}

static void conn_read_cb(EV_P_ ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    conn *c = w->data;
    target *t = c->t;
    ssize_t n = recv(c->fd, t->rbuf, sizeof(t->rbuf), 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            return;
        }
        conn_close(c);
        return;
    }
    if (c->lingering) {
        if (n == 0) {
            conn_close(c);
        }
        return;
    }
    if (n == 0) {
        /* The peer will send no more; answer what it asked already, then close. */
        c->peer_eof = true;
        c->closing = true;
        if (!c->qhead && c->out_len == 0) {
            conn_close(c);
            return;
        }
        conn_update_read(c);
        return;
    }
    if (conn_parse(c, t->rbuf, (size_t)n) != 0) {
        st_warn("out of memory for a request; closing the connection");
        conn_close(c);
        return;
    }
    conn_flush(c);
}

/* ---- listening ---- */

static void accept_cb(EV_P_ ev_io *w, int revents)
{
    (void)revents;
    target *t = w->data;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(t->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Back off rather than spin on a listener that stays readable. */
                st_warn("accept: %s; pausing accepts for 100 ms", strerror(errno));
                ev_io_stop(loop, &t->lio);
                ev_timer_set(&t->accept_retry, 0.1, 0);
                ev_timer_start(loop, &t->accept_retry);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                st_warn("accept: %s", strerror(errno));
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        conn *c = calloc(1, sizeof(*c));
        if (!c) {
            st_warn("out of memory for a connection; refusing it");
            close(fd);
            continue;
        }
        c->t = t;
        c->fd = fd;
        http_parser_init(&c->parser, HTTP_REQUEST);
        c->parser.data = c;
        ev_io_init(&c->rio, conn_read_cb, fd, EV_READ);
        c->rio.data = c;
        ev_io_init(&c->wio, conn_write_cb, fd, EV_WRITE);
        c->wio.data = c;
        ev_init(&c->linger, conn_linger_cb);
        c->linger.data = c;
        c->next = t->conns;
        if (t->conns) {
            t->conns->prev = c;
        }
        t->conns = c;
        conn_count(c);
        ev_io_start(loop, &c->rio);
    }
}

static void accept_retry_cb(EV_P_ ev_timer *w, int revents)
{
    (void)revents;
    target *t = w->data;
    ev_io_start(loop, &t->lio);
}

static void signal_cb(EV_P_ ev_signal *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* Binds and listens on the configured address; fills t->bound with "HOST:PORT" as bound. */
static int target_listen(target *t)
{
    const st_target_opts *o = t->opts;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof(port), "%d", o->listen_port);
    int gai = getaddrinfo(o->listen_host, port, &hints, &res);
    if (gai != 0) {
        st_error("--listen %s: cannot resolve the host: %s", o->listen_host, gai_strerror(gai));
        return ST_EINVAL;
    }
    int rc = ST_ESYSTEM;
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        st_error("socket: %s", strerror(errno));
        goto out;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (res->ai_family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        st_error("cannot listen on %s:%d: %s", o->listen_host, o->listen_port, strerror(errno));
        goto out;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN], serv[8];
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 ||
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        st_error("getsockname: %s", strerror(errno));
        goto out;
    }
    snprintf(t->bound, sizeof(t->bound), ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host,
             serv);
    t->lfd = fd;
    fd = -1;
    rc = 0;
out:
    if (fd >= 0) {
        close(fd);
    }
    freeaddrinfo(res);
    return rc;
}

static int write_port_file(const char *path, const char *bound)
{
    const char *colon = strrchr(bound, ':');
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        st_error("--port-file %s: the path is too long", path);
        return ST_EINVAL;
    }
    FILE *f = fopen(tmp, "w");
    if (!f) {
        st_error("--port-file %s: %s", path, strerror(errno));
        return ST_EIO;
    }
    int bad = fprintf(f, "%s\n", colon + 1) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        st_error("--port-file %s: %s", path, strerror(errno));
        unlink(tmp);
        return ST_EIO;
    }
    return 0;
}

/* ---- the target object ---- */

static void target_free(target *t)
{
    if (!t) {
        return;
    }
    while (t->conns) {
        conn_close(t->conns);
    }
    if (t->loop) {
        ev_io_stop(t->loop, &t->lio);
        ev_timer_stop(t->loop, &t->accept_retry);
        ev_timer_stop(t->loop, &t->stall_timer);
        ev_timer_stop(t->loop, &t->stall_scheduled);
        ev_signal_stop(t->loop, &t->sigint_w);
        ev_signal_stop(t->loop, &t->sigterm_w);
    }
    if (t->lfd >= 0) {
        close(t->lfd);
    }
    while (t->free_reqs) {
        req *r = t->free_reqs;
        t->free_reqs = r->next;
        free(r);
    }
    free(t->body);
    free(t);
}

static int target_new(target **out, const st_target_opts *o, struct ev_loop *loop)
{
    target *t = calloc(1, sizeof(*t));
    if (!t) {
        return ST_ENOMEM;
    }
    t->loop = loop;
    t->opts = o;
    t->lfd = -1;
    t->mix = o->mix;
    t->delay = o->latency;
    t->hdr_sec = -1;
    t->start_ns = t->reset_ns = st_clock_mono_ns();
    t->body = malloc(o->body_bytes ? o->body_bytes : 1);
    if (!t->body) {
        target_free(t);
        return ST_ENOMEM;
    }
    for (size_t i = 0; i < o->body_bytes; i++) {
        t->body[i] = "ok"[i % 2];
    }
    t->settings.on_message_begin = on_message_begin;
    t->settings.on_url = on_url;
    t->settings.on_header_field = on_header_field;
    t->settings.on_header_value = on_header_value;
    t->settings.on_headers_complete = on_headers_complete;
    t->settings.on_body = on_body;
    t->settings.on_message_complete = on_message_complete;
    ev_init(&t->accept_retry, accept_retry_cb);
    t->accept_retry.data = t;
    ev_init(&t->stall_timer, stall_end_cb);
    t->stall_timer.data = t;
    ev_init(&t->stall_scheduled, stall_scheduled_cb);
    t->stall_scheduled.data = t;
    ev_signal_init(&t->sigint_w, signal_cb, SIGINT);
    ev_signal_init(&t->sigterm_w, signal_cb, SIGTERM);
    ev_io_init(&t->lio, accept_cb, -1, EV_READ);
    t->lio.data = t;
    *out = t;
    return 0;
}

/* Listens, announces the address, and runs until SIGINT or SIGTERM. */
static int target_run(target *t)
{
    int rc = target_listen(t);
    if (rc != 0) {
        return rc;
    }
    if (t->opts->port_file) {
        rc = write_port_file(t->opts->port_file, t->bound);
        if (rc != 0) {
            return rc;
        }
    }
    ev_io_set(&t->lio, t->lfd, EV_READ);
    ev_io_start(t->loop, &t->lio);
    ev_signal_start(t->loop, &t->sigint_w);
    ev_signal_start(t->loop, &t->sigterm_w);
    if (t->opts->has_stall) {
        ev_timer_set(&t->stall_scheduled, t->opts->stall_at_s, 0);
        ev_timer_start(t->loop, &t->stall_scheduled);
    }
    printf("listening on %s\n", t->bound);
    fflush(stdout);
    ev_run(t->loop, 0);
    return 0;
}

int main(int argc, char **argv)
{
    st_target_opts opts;
    char err[512];
    if (st_target_opts_parse(&opts, argc, argv, err, sizeof(err)) != 0) {
        fprintf(stderr, "stampede-target: %s\n", err);
        return 2;
    }
    if (opts.help) {
        fputs(st_target_usage(), stdout);
        return 0;
    }
    st_log_init("stampede-target", opts.log_level);
    signal(SIGPIPE, SIG_IGN);
    http_parser_set_max_header_size(MAX_HEADER_BYTES);

    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    if (!loop) {
        fprintf(stderr, "stampede-target: cannot start the event loop\n");
        return 1;
    }
    target *t = NULL;
    int rc = target_new(&t, &opts, loop);
    if (rc != 0) {
        fprintf(stderr, "stampede-target: %s\n", st_strerror(rc));
        ev_loop_destroy(loop);
        return 1;
    }
    rc = target_run(t);
    if (rc == 0) {
        char line[STATS_JSON_MAX];
        int n = stats_json(t, line, sizeof(line));
        if (n > 0) {
            printf("%s\n", line);
            fflush(stdout);
        }
    }
    target_free(t);
    ev_loop_destroy(loop);
    return rc == 0 ? 0 : 1;
}
