/*
 * Tests for the fast engine (agent/engine_fast.c) against a scripted HTTP server that runs inside
 * the test: one accepting thread and one thread per connection, blocking sockets on loopback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"
#include "engine.h"
#include "error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- the scripted server ---- */

typedef enum {
    SRV_OK,               /* keep-alive; "/status/N" answers N; HEAD gets headers only */
    SRV_CLOSE,            /* Connection: close after every response */
    SRV_IDLE_CLOSE,       /* answers, then closes the connection at once */
    SRV_DROP_SECOND,      /* answers a connection's first request; closes on its second (FIN) */
    SRV_DROP_AFTER_FIRST, /* answers the server's first request only; resets on every later one */
    SRV_SILENT,           /* reads requests and never answers */
    SRV_CHUNKED,          /* chunked body written in pieces */
    SRV_EOF_BODY,         /* no length: the body ends when the connection closes */
    SRV_MALFORMED,        /* not HTTP */
    SRV_HUGE_HEADER,      /* a 256 KB header */
    SRV_TRUNCATED,        /* Content-Length: 100, ten bytes, close */
    SRV_ENDLESS,          /* a chunked body that never ends */
    SRV_SLAM,             /* closes every connection on accept */
    SRV_SLOW_READER,      /* like SRV_OK, with a tiny receive buffer and a pause */
    SRV_TRAILING_JUNK,    /* a complete response followed by bytes nobody asked for */
    SRV_CONTINUE,         /* 100 Continue, then the response */
} srv_mode;

#define SRV_MAX_CONNS 128
#define SRV_BUF       (8 * 1024 * 1024 + 65536) /* malloc'd per connection, touched as used */

typedef struct srv srv;

typedef struct srv_conn {
    srv *s;
    int fd; /* -1 once the connection thread closed it; guarded by s->mu */
    pthread_t thread;
} srv_conn;

struct srv {
    srv_mode mode;
    int lfd;
    int port;
    pthread_t accept_thread;
    pthread_mutex_t mu;
    bool stopping;
    srv_conn conns[SRV_MAX_CONNS];
    int n_conns;     /* accepted */
    int n_reqs;      /* complete requests read */
    int peer_closed; /* connections the client closed */
    int after_close; /* requests sent on a connection after a Connection: close response */
    char *last_req;  /* the last request read, headers and body */
    size_t last_req_len;
};

static const char OK_RESPONSE[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

static void srv_write(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n <= 0) {
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

static void srv_conn_close(srv_conn *sc, bool reset)
{
    pthread_mutex_lock(&sc->s->mu);
    if (sc->fd >= 0) {
        if (reset) {
            struct linger lg = {1, 0};
            setsockopt(sc->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        close(sc->fd);
        sc->fd = -1;
    }
    pthread_mutex_unlock(&sc->s->mu);
}

/* Reads one request into buf; returns its length (headers and body) or -1 at EOF or error. */
static ssize_t srv_read_request(int fd, char *buf, size_t *have, bool slow)
{
    for (;;) {
        char *end = memmem(buf, *have, "\r\n\r\n", 4);
        if (end) {
            size_t head = (size_t)(end - buf) + 4;
            size_t body = 0;
            buf[*have < SRV_BUF ? *have : SRV_BUF - 1] = 0;
            char saved = buf[head];
            buf[head] = 0;
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            if (cl) {
                body = (size_t)strtoul(cl + 17, NULL, 10);
            }
            buf[head] = saved;
            if (head + body > SRV_BUF - 1) {
                return -1;
            }
            if (*have >= head + body) {
                return (ssize_t)(head + body);
            }
        }
        if (*have >= SRV_BUF - 1) {
            return -1;
        }
        if (slow && *have == 0) {
            usleep(50000);
        }
        ssize_t n = recv(fd, buf + *have, SRV_BUF - 1 - *have, 0);
        if (n <= 0) {
            return -1;
        }
        *have += (size_t)n;
    }
}

static void srv_respond_ok(int fd, const char *req)
{
    char out[256];
    int status = 200;
    const char *st = strstr(req, " /status/");
    if (st && st < strstr(req, "\r\n")) {
        status = atoi(st + 9);
    }
    if (strncmp(req, "HEAD ", 5) == 0 || status == 204 || status == 304) {
        /* No body, and a Content-Length that describes the one a GET would have had. */
        snprintf(out, sizeof(out), "HTTP/1.1 %d OK\r\nContent-Length: 1000\r\n\r\n", status);
    } else {
        snprintf(out, sizeof(out), "HTTP/1.1 %d OK\r\nContent-Length: 5\r\n\r\nhello", status);
    }
    srv_write(fd, out, strlen(out));
}

static void *srv_conn_main(void *arg)
{
    srv_conn *sc = arg;
    srv *s = sc->s;
    int fd = sc->fd;
    char *buf = malloc(SRV_BUF);
    size_t have = 0;
    int nth = 0;
    if (!buf || s->mode == SRV_SLAM) {
        srv_conn_close(sc, false);
        free(buf);
        return NULL;
    }
    for (;;) {
        ssize_t len = srv_read_request(fd, buf, &have, s->mode == SRV_SLOW_READER);
        if (len < 0) {
            pthread_mutex_lock(&s->mu);
            s->peer_closed++;
            pthread_mutex_unlock(&s->mu);
            break;
        }
        nth++;
        pthread_mutex_lock(&s->mu);
        int global = ++s->n_reqs;
        free(s->last_req);
        s->last_req = malloc((size_t)len + 1);
        if (s->last_req) {
            memcpy(s->last_req, buf, (size_t)len);
            s->last_req[len] = 0;
            s->last_req_len = (size_t)len;
        }
        pthread_mutex_unlock(&s->mu);
        buf[have] = 0;

        bool close_after = false, reset = false;
        switch (s->mode) {
        case SRV_OK:
        case SRV_SLOW_READER:
            srv_respond_ok(fd, buf);
            break;
        case SRV_CLOSE: {
            static const char r[] =
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello";
            srv_write(fd, r, sizeof(r) - 1);
            /* The client must close now; one that sends again ignored the header. */
            char c;
            ssize_t n = recv(fd, &c, 1, 0);
            pthread_mutex_lock(&s->mu);
            if (n > 0) {
                s->after_close++;
            } else if (n == 0) {
                s->peer_closed++;
            }
            pthread_mutex_unlock(&s->mu);
            close_after = true;
            break;
        }
        case SRV_IDLE_CLOSE:
            srv_write(fd, OK_RESPONSE, sizeof(OK_RESPONSE) - 1);
            close_after = true;
            break;
        case SRV_DROP_SECOND:
            if (nth == 1) {
                srv_write(fd, OK_RESPONSE, sizeof(OK_RESPONSE) - 1);
            } else {
                close_after = true;
            }
            break;
        case SRV_DROP_AFTER_FIRST:
            if (global == 1) {
                srv_write(fd, OK_RESPONSE, sizeof(OK_RESPONSE) - 1);
            } else {
                close_after = reset = true;
            }
            break;
        case SRV_SILENT:
            break;
        case SRV_CHUNKED: {
            static const char *const parts[] = {
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                "5\r\nhel",
                "lo\r\n6\r\n world\r\n",
                "0\r\n\r\n",
            };
            for (size_t i = 0; i < 4; i++) {
                srv_write(fd, parts[i], strlen(parts[i]));
                usleep(10000);
            }
            break;
        }
        case SRV_EOF_BODY: {
            static const char r[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end";
            srv_write(fd, r, sizeof(r) - 1);
            close_after = true;
            break;
        }
        case SRV_MALFORMED: {
            static const char r[] = "SMTP ready\r\n\r\n";
            srv_write(fd, r, sizeof(r) - 1);
            break;
        }
        case SRV_HUGE_HEADER: {
            static const char head[] = "HTTP/1.1 200 OK\r\nX-Big: ";
            static const char tail[] = "\r\nContent-Length: 0\r\n\r\n";
            char *big = malloc(256 * 1024);
            if (big) {
                memset(big, 'a', 256 * 1024);
                srv_write(fd, head, sizeof(head) - 1);
                srv_write(fd, big, 256 * 1024);
                srv_write(fd, tail, sizeof(tail) - 1);
                free(big);
            }
            break;
        }
        case SRV_TRUNCATED: {
            static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b";
            srv_write(fd, r, sizeof(r) - 1);
            close_after = true;
            break;
        }
        case SRV_ENDLESS: {
            static const char head[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
            char chunk[1024 + 16];
            int n = snprintf(chunk, sizeof(chunk), "400\r\n");
            memset(chunk + n, 'x', 1024);
            memcpy(chunk + n + 1024, "\r\n", 2);
            srv_write(fd, head, sizeof(head) - 1);
            for (;;) {
                if (send(fd, chunk, (size_t)n + 1026, MSG_NOSIGNAL) <= 0) {
                    break;
                }
                pthread_mutex_lock(&s->mu);
                bool stop = s->stopping;
                pthread_mutex_unlock(&s->mu);
                if (stop) {
                    break;
                }
            }
            close_after = true;
            break;
        }
        case SRV_TRAILING_JUNK: {
            static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloJUNK";
            srv_write(fd, r, sizeof(r) - 1);
            break;
        }
        case SRV_CONTINUE: {
            static const char r[] = "HTTP/1.1 100 Continue\r\n\r\n"
                                    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
            srv_write(fd, r, sizeof(r) - 1);
            break;
        }
        case SRV_SLAM:
            break;
        }
        if (close_after) {
            srv_conn_close(sc, reset);
            break;
        }
        memmove(buf, buf + len, have - (size_t)len);
        have -= (size_t)len;
    }
    free(buf);
    return NULL;
}

static void *srv_accept_main(void *arg)
{
    srv *s = arg;
    for (;;) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR) {
                continue;
            }
            return NULL;
        }
        pthread_mutex_lock(&s->mu);
        if (s->stopping || s->n_conns == SRV_MAX_CONNS) {
            pthread_mutex_unlock(&s->mu);
            close(fd);
            continue;
        }
        srv_conn *sc = &s->conns[s->n_conns];
        sc->s = s;
        sc->fd = fd;
        if (pthread_create(&sc->thread, NULL, srv_conn_main, sc) != 0) {
            close(fd);
        } else {
            s->n_conns++;
        }
        pthread_mutex_unlock(&s->mu);
    }
}

static srv *srv_start(srv_mode mode, int family)
{
    srv *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->mode = mode;
    pthread_mutex_init(&s->mu, NULL);
    s->lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->lfd >= 0);
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (mode == SRV_SLOW_READER) {
        int small = 4096; /* accepted sockets inherit it */
        setsockopt(s->lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    }
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(*a);
    }
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&ss, len), 0);
    assert_int_equal(listen(s->lfd, 128), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&ss, &len), 0);
    s->port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                       : ((struct sockaddr_in *)&ss)->sin_port);
    assert_int_equal(pthread_create(&s->accept_thread, NULL, srv_accept_main, s), 0);
    return s;
}

static void srv_stop(srv *s)
{
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    shutdown(s->lfd, SHUT_RDWR);
    for (int i = 0; i < s->n_conns; i++) {
        if (s->conns[i].fd >= 0) {
            shutdown(s->conns[i].fd, SHUT_RDWR);
        }
    }
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->accept_thread, NULL);
    for (int i = 0; i < s->n_conns; i++) {
        pthread_join(s->conns[i].thread, NULL);
        if (s->conns[i].fd >= 0) {
            close(s->conns[i].fd);
        }
    }
    close(s->lfd);
    pthread_mutex_destroy(&s->mu);
    free(s->last_req);
    free(s);
}

static int srv_get(srv *s, const int *field)
{
    pthread_mutex_lock(&s->mu);
    int v = *field;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* Waits up to a second for the server thread to count what the client did. */
static int srv_wait(srv *s, const int *field, int want)
{
    int v = srv_get(s, field);
    for (int i = 0; i < 100 && v < want; i++) {
        usleep(10000);
        v = srv_get(s, field);
    }
    return v;
}

/* ---- the engine under test, on its own loop ---- */

#define MAX_RESULTS 4096

typedef struct run {
    struct ev_loop *loop;
    st_engine *e;
    ev_timer guard;
    bool guard_fired;
    bool in_send;
    bool done_inside_send;
    int target; /* ev_break when n_done reaches it */
    int resend; /* sends still to make from done() */
    size_t resend_req;
    int n_done;
    int free_slots_in_done; /* free_slots seen by the last done() */
    st_result res[MAX_RESULTS];
    uint64_t tags[MAX_RESULTS];
} run;

static int run_send(run *r, size_t req, uint64_t tag)
{
    r->in_send = true;
    int rc = st_engine_fast.send(r->e, req, tag);
    r->in_send = false;
    return rc;
}

static void on_done(void *worker, uint64_t tag, const st_result *res)
{
    run *r = worker;
    if (r->in_send) {
        r->done_inside_send = true;
    }
    if (r->n_done < MAX_RESULTS) {
        r->res[r->n_done] = *res;
        r->tags[r->n_done] = tag;
    }
    r->n_done++;
    r->free_slots_in_done = st_engine_fast.free_slots(r->e);
    if (r->resend > 0) {
        r->resend--;
        assert_int_equal(run_send(r, r->resend_req, 1000 + (uint64_t)r->n_done), 0);
    }
    if (r->target > 0 && r->n_done >= r->target) {
        ev_break(r->loop, EVBREAK_ALL);
    }
}

static void on_guard(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    run *r = w->data;
    r->guard_fired = true;
    ev_break(loop, EVBREAK_ALL);
}

static run *run_new(void)
{
    run *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(r->loop);
    ev_timer_init(&r->guard, on_guard, 0., 0.);
    r->guard.data = r;
    return r;
}

static void run_create(run *r, const st_request *reqs, size_t n, int conns, int timeout_ms)
{
    st_engine_cfg cfg = {
        .requests = reqs, .n_requests = n, .connections = conns, .timeout_ms = timeout_ms};
    char err[256] = "";
    int rc = st_engine_fast.create(&r->e, r->loop, &cfg, on_done, r, err, sizeof(err));
    if (rc != 0) {
        fail_msg("create: %s (%s)", st_strerror(rc), err);
    }
}

/* Runs the loop until n_done reaches target; fails the test after max_s seconds. */
static void run_until(run *r, int target, double max_s)
{
    r->target = target;
    if (r->n_done < target) {
        ev_timer_set(&r->guard, max_s, 0.);
        ev_timer_start(r->loop, &r->guard);
        ev_run(r->loop, 0);
        ev_timer_stop(r->loop, &r->guard);
    }
    assert_false(r->guard_fired);
    assert_true(r->n_done >= target);
    assert_false(r->done_inside_send);
}

/* Runs the loop for a while, whatever happens. */
static void run_for(run *r, double s)
{
    r->target = 0;
    ev_timer_set(&r->guard, s, 0.);
    ev_timer_start(r->loop, &r->guard);
    ev_run(r->loop, 0);
    ev_timer_stop(r->loop, &r->guard);
    r->guard_fired = false;
}

static void on_leak_guard(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    *(bool *)w->data = true;
    ev_break(loop, EVBREAK_ALL);
}

/* Checks that no watcher is active or pending on loop. ev_run returns at once when no watcher
 * holds a reference; the guard, which holds none, ends it if something is left behind. */
static void assert_loop_empty(struct ev_loop *loop)
{
    assert_int_equal(ev_pending_count(loop), 0);
    bool fired = false;
    ev_timer guard;
    ev_timer_init(&guard, on_leak_guard, 0.5, 0.);
    guard.data = &fired;
    ev_timer_start(loop, &guard);
    ev_unref(loop);
    ev_run(loop, 0);
    ev_ref(loop);
    ev_timer_stop(loop, &guard);
    assert_false(fired);
}

/* Destroys the engine and checks that it left nothing on the loop. */
static void run_free(run *r)
{
    st_engine_fast.destroy(r->e);
    assert_loop_empty(r->loop);
    ev_loop_destroy(r->loop);
    free(r);
}

static st_request request(const char *method, const char *url)
{
    st_request q = {0};
    q.method = (char *)method;
    q.url = (char *)url;
    q.weight = 1;
    return q;
}

static void expect_ok(const st_result *res, int status, uint64_t bytes_in)
{
    assert_int_equal(res->kind, ST_RES_HTTP);
    assert_int_equal(res->status, status);
    assert_int_equal(res->bytes_in, bytes_in);
    assert_true(res->sent_ns > 0);
    assert_true(res->done_ns >= res->sent_ns);
}

/* ---- tests ---- */

static void test_engine_fast_keepalive_many(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_OK, AF_INET);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", s->port);
    st_request q = request("GET", url);
    run *r = run_new();
    run_create(r, &q, 1, 4, 5000);
    const int total = 2000;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(run_send(r, 0, (uint64_t)i), 0);
    }
    r->resend = total - 4;
    run_until(r, total, 20);
    char expect_req[256];
    snprintf(expect_req, sizeof(expect_req),
             "GET /x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: stampede/" ST_VERSION "\r\n\r\n",
             s->port);
    for (int i = 0; i < total; i++) {
        expect_ok(&r->res[i], 200, sizeof(OK_RESPONSE) - 1);
        assert_int_equal(r->res[i].bytes_out, strlen(expect_req));
    }
    assert_int_equal(st_engine_fast.inflight(r->e), 0);
    assert_int_equal(st_engine_fast.free_slots(r->e), 4);
    assert_int_equal(srv_get(s, &s->n_reqs), total);
    assert_true(srv_get(s, &s->n_conns) <= 4);
    assert_true(srv_get(s, &s->n_conns) >= 1);
    assert_string_equal(s->last_req, expect_req);
    run_free(r);
    srv_stop(s);
}

static void test_engine_fast_slots_and_inflight(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_OK, AF_INET);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
    st_request q = request("GET", url);
    run *r = run_new();
    run_create(r, &q, 1, 3, 5000);
    assert_int_equal(st_engine_fast.free_slots(r->e), 3);
    assert_int_equal(st_engine_fast.inflight(r->e), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(run_send(r, 0, (uint64_t)i), 0);
        assert_int_equal(st_engine_fast.free_slots(r->e), 2 - i);
        assert_int_equal(st_engine_fast.inflight(r->e), i + 1);
    }
    assert_int_equal(run_send(r, 0, 99), ST_EAGAIN);
    assert_int_equal(st_engine_fast.inflight(r->e), 3);
    assert_int_equal(run_send(r, 1, 99), ST_EINVAL); /* no such request */
    run_until(r, 3, 5);
    assert_int_equal(r->n_done, 3);
    /* The slot of a finished request is free inside its callback. */
    assert_int_equal(r->free_slots_in_done, 3);
    bool seen[3] = {false, false, false};
    for (int i = 0; i < 3; i++) {
        assert_true(r->tags[i] < 3);
        seen[r->tags[i]] = true;
    }
    assert_true(seen[0] && seen[1] && seen[2]);
    assert_int_equal(st_engine_fast.free_slots(r->e), 3);
    assert_int_equal(st_engine_fast.inflight(r->e), 0);
    /* Idle connections are reused: no new connection for the next round. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(run_send(r, 0, (uint64_t)i), 0);
    }
    run_until(r, 6, 5);
    assert_int_equal(srv_get(s, &s->n_conns), 3);
    run_free(r);
    srv_stop(s);
}

static void test_engine_fast_connection_close(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_CLOSE, AF_INET);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
    st_request q = request("GET", url);
    run *r = run_new();
    run_create(r, &q, 1, 2, 5000);
    assert_int_equal(run_send(r, 0, 0), 0);
    assert_int_equal(run_send(r, 0, 1), 0);
    r->resend = 48;
    run_until(r, 50, 10);
    for (int i = 0; i < 50; i++) {
        expect_ok(&r->res[i], 200,
                  strlen("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello"));
    }
    assert_int_equal(srv_get(s, &s->n_conns), 50);
    assert_int_equal(srv_get(s, &s->n_reqs), 50);
    /* Every connection was closed by the client after its response, never reused. */
    assert_int_equal(srv_wait(s, &s->peer_closed, 50), 50);
    assert_int_equal(srv_get(s, &s->after_close), 0);
    assert_int_equal(st_engine_fast.free_slots(r->e), 2);
    run_free(r);
    srv_stop(s);
}

static void test_engine_fast_idle_close_is_quiet(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_IDLE_CLOSE, AF_INET);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
    st_request q = request("GET", url);
    run *r = run_new();
    run_create(r, &q, 1, 1, 5000);
    assert_int_equal(run_send(r, 0, 1), 0);
    run_until(r, 1, 5);
    expect_ok(&r->res[0], 200, sizeof(OK_RESPONSE) - 1);
    /* The server closes the idle connection: nothing is reported, the slot stays free. */
    run_for(r, 0.1);
    assert_int_equal(r->n_done, 1);
    assert_int_equal(st_engine_fast.free_slots(r->e), 1);
    assert_int_equal(st_engine_fast.inflight(r->e), 0);
    assert_int_equal(run_send(r, 0, 2), 0);
    run_until(r, 2, 5);
    expect_ok(&r->res[1], 200, sizeof(OK_RESPONSE) - 1);
    assert_int_equal(srv_get(s, &s->n_conns), 2);
    assert_int_equal(srv_get(s, &s->n_reqs), 2);
    run_free(r);
    srv_stop(s);
}

static void test_engine_fast_retry_after_reused_close(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_DROP_SECOND, AF_INET);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
    st_request q = request("GET", url);
    run *r = run_new();
    run_create(r, &q, 1, 1, 5000);
    assert_int_equal(run_send(r, 0, 1), 0);
    run_until(r, 1, 5);
    expect_ok(&r->res[0], 200, sizeof(OK_RESPONSE) - 1);
    /* The second request goes out on the kept connection, the server closes it unanswered, and
     * the engine resends it on a new connection where it is answered. */
    assert_int_equal(run_send(r, 0, 2), 0);
    run_until(r, 2, 5);
    expect_ok(&r->res[1], 200, sizeof(OK_RESPONSE) - 1);
    assert_int_equal(r->tags[1], 2);
    assert_int_equal(srv_get(s, &s->n_reqs), 3);
    assert_int_equal(srv_get(s, &s->n_conns), 2);
    run_free(r);
    srv_stop(s);
}

static void test_engine_fast_retry_only_once(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_DROP_AFTER_FIRST, AF_INET);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
    st_request q = request("GET", url);
    run *r = run_new();
    run_create(r, &q, 1, 1, 5000);
    assert_int_equal(run_send(r, 0, 1), 0);
    run_until(r, 1, 5);
    expect_ok(&r->res[0], 200, sizeof(OK_RESPONSE) - 1);
    assert_int_equal(run_send(r, 0, 2), 0);
    run_until(r, 2, 5);
    assert_int_equal(r->res[1].kind, ST_RES_OTHER);
    assert_int_equal(r->res[1].status, 0);
    assert_int_equal(r->res[1].bytes_in, 0);
    /* First answer, the request on the reused connection, and one resend: no more. */
    assert_int_equal(srv_wait(s, &s->n_reqs, 3), 3);
    run_for(r, 0.05);
    assert_int_equal(srv_get(s, &s->n_reqs), 3);
    assert_int_equal(r->n_done, 2);
    assert_int_equal(st_engine_fast.free_slots(r->e), 1);
    run_free(r);
    srv_stop(s);
}

static void test_engine_fast_fresh_close_is_other(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_SLAM, AF_INET);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
    st_request q = request("GET", url);
    run *r = run_new();
    run_create(r, &q, 1, 1, 5000);
    assert_int_equal(run_send(r, 0, 1), 0);
    run_until(r, 1, 5);
    assert_int_equal(r->res[0].kind, ST_RES_OTHER);
    /* A new connection that dies is not retried. */
    assert_int_equal(srv_get(s, &s->n_conns), 1);
    assert_int_equal(st_engine_fast.free_slots(r->e), 1);
    run_free(r);
    srv_stop(s);
}

/* A port with a bound socket that does not listen: connects to it are refused. */
static int refused_port(int *hold)
{
    *hold = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(*hold >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(*hold, (struct sockaddr *)&a, len), 0);
    assert_int_equal(getsockname(*hold, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

static void test_engine_fast_connect_refused(void **state)
{
    (void)state;
    int hold;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", refused_port(&hold));
    st_request q = request("GET", url);
    run *r = run_new();
    run_create(r, &q, 1, 2, 5000);
    assert_int_equal(run_send(r, 0, 7), 0);
    assert_int_equal(r->n_done, 0);
    /* Each failure's callback sends again: every one is reported later, from the loop. */
    r->resend = 19;
    run_until(r, 20, 5);
    assert_false(r->done_inside_send);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(r->res[i].kind, ST_RES_CONNECT);
        assert_int_equal(r->res[i].status, 0);
        assert_int_equal(r->res[i].bytes_out, 0);
        assert_true(r->res[i].done_ns >= r->res[i].sent_ns);
    }
    assert_int_equal(r->tags[0], 7);
    assert_int_equal(st_engine_fast.inflight(r->e), 0);
    assert_int_equal(st_engine_fast.free_slots(r->e), 2);
    run_free(r);
    close(hold);
}

static void test_engine_fast_connect_timeout(void **state)
{
    (void)state;
    /* A listener whose accept queue is full drops new SYNs, so a connect to it hangs. */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, len), 0);
    assert_int_equal(listen(lfd, 0), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    int fill[3];
    for (int i = 0; i < 3; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_true(fill[i] >= 0);
        (void)connect(fill[i], (struct sockaddr *)&a, len);
    }
    usleep(50000);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", ntohs(a.sin_port));
    st_request q = request("GET", url);
    run *r = run_new();
    run_create(r, &q, 1, 1, 300);
    uint64_t t0 = st_clock_mono_ns();
    assert_int_equal(run_send(r, 0, 1), 0);
    run_until(r, 1, 5);
    assert_int_equal(r->res[0].kind, ST_RES_CONNECT);
    assert_int_equal(r->res[0].bytes_out, 0);
    uint64_t took_ms = (r->res[0].done_ns - t0) / ST_NS_PER_MS;
    assert_true(took_ms >= 300 && took_ms < 600);
    assert_int_equal(st_engine_fast.free_slots(r->e), 1);
    run_free(r);
    for (int i = 0; i < 3; i++) {
        close(fill[i]);
    }
    close(lfd);
}

static void test_engine_fast_timeout(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_SILENT, AF_INET);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
    st_request q = request("GET", url);
    run *r = run_new();
    run_create(r, &q, 1, 2, 200);
    /* The timeout runs from send(); sent_ns is later, once the new connection is up. */
    uint64_t t0 = st_clock_mono_ns();
    assert_int_equal(run_send(r, 0, 1), 0);
    run_until(r, 1, 5);
    assert_int_equal(r->res[0].kind, ST_RES_TIMEOUT);
    assert_true(r->res[0].sent_ns >= t0);
    uint64_t took_ms = (r->res[0].done_ns - t0) / ST_NS_PER_MS;
    assert_true(took_ms >= 200);
    assert_true(took_ms < 500);
    assert_int_equal(st_engine_fast.free_slots(r->e), 2);
    assert_int_equal(st_engine_fast.inflight(r->e), 0);
    /* The timed-out request's connection is closed. */
    assert_int_equal(srv_wait(s, &s->peer_closed, 1), 1);
    run_free(r);
    srv_stop(s);
}

static void test_engine_fast_endless_body_times_out(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_ENDLESS, AF_INET);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
    st_request q = request("GET", url);
    run *r = run_new();
    run_create(r, &q, 1, 1, 300);
    uint64_t t0 = st_clock_mono_ns();
    assert_int_equal(run_send(r, 0, 1), 0);
    run_until(r, 1, 5);
    assert_int_equal(r->res[0].kind, ST_RES_TIMEOUT);
    assert_true(r->res[0].bytes_in > 1024);
    uint64_t took_ms = (r->res[0].done_ns - t0) / ST_NS_PER_MS;
    assert_true(took_ms >= 300 && took_ms < 600);
    run_free(r);
    srv_stop(s);
}

static void test_engine_fast_chunked(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_CHUNKED, AF_INET);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
    st_request q = request("GET", url);
    run *r = run_new();
    run_create(r, &q, 1, 1, 5000);
    assert_int_equal(run_send(r, 0, 1), 0);
    run_until(r, 1, 5);
    size_t len = strlen("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    expect_ok(&r->res[0], 200, len);
    assert_int_equal(run_send(r, 0, 2), 0);
    run_until(r, 2, 5);
    expect_ok(&r->res[1], 200, len);
    assert_int_equal(srv_get(s, &s->n_conns), 1);
    run_free(r);
    srv_stop(s);
}

static void test_engine_fast_head(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_OK, AF_INET);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
    st_request q[2] = {request("HEAD", url), request("GET", url)};
    run *r = run_new();
    run_create(r, q, 2, 1, 1000);
    /* Content-Length: 1000 and no body: the engine must not wait for one. */
    assert_int_equal(run_send(r, 0, 1), 0);
    run_until(r, 1, 5);
    expect_ok(&r->res[0], 200, strlen("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"));
    assert_int_equal(run_send(r, 1, 2), 0);
    run_until(r, 2, 5);
    expect_ok(&r->res[1], 200, sizeof(OK_RESPONSE) - 1);
    assert_int_equal(srv_get(s, &s->n_conns), 1);
    run_free(r);
    srv_stop(s);
}

static void test_engine_fast_post_body(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_OK, AF_INET);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/submit?a=1", s->port);
    char *headers[] = {"Host: example.test", "X-Test: yes", "content-length: 999",
                       "Transfer-Encoding: chunked"};
    static const char body[] = "name=stampede&x=1";
    st_request q = request("POST", url);
    q.headers = headers;
    q.n_headers = 4;
    q.body = (char *)body;
    q.body_len = sizeof(body) - 1;
    run *r = run_new();
    run_create(r, &q, 1, 1, 5000);
    assert_int_equal(run_send(r, 0, 1), 0);
    run_until(r, 1, 5);
    expect_ok(&r->res[0], 200, sizeof(OK_RESPONSE) - 1);
    static const char want[] = "POST /submit?a=1 HTTP/1.1\r\nHost: example.test\r\n"
                               "User-Agent: stampede/" ST_VERSION "\r\nX-Test: yes\r\n"
                               "Content-Length: 17\r\n\r\nname=stampede&x=1";
    assert_string_equal(s->last_req, want);
    assert_int_equal(r->res[0].bytes_out, sizeof(want) - 1);
    run_free(r);
    srv_stop(s);
}

static void test_engine_fast_large_body(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_SLOW_READER, AF_INET);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/up", s->port);
    char *headers[] = {"User-Agent: mine/1"};
    const size_t n = 6 * 1024 * 1024;
    char *body = malloc(n);
    assert_non_null(body);
    for (size_t i = 0; i < n; i++) {
        body[i] = (char)('a' + i % 26);
    }
    st_request q[2] = {request("GET", url), request("PUT", url)};
    q[1].headers = headers;
    q[1].n_headers = 1;
    q[1].body = body;
    q[1].body_len = n;
    run *r = run_new();
    run_create(r, q, 2, 1, 20000);
    /* Twice: on a new connection, then on the kept one (where no write watcher is armed yet).
     * Either way the body is more than the socket buffers hold against a slow reader, so the
     * engine must wait for the socket to become writable again. */
    char head[128];
    int hl = snprintf(head, sizeof(head),
                      "PUT /up HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: mine/1\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      s->port, n);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(run_send(r, 1, 1), 0);
        run_until(r, i + 1, 20);
        expect_ok(&r->res[i], 200, sizeof(OK_RESPONSE) - 1);
        assert_int_equal(r->res[i].bytes_out, (size_t)hl + n);
        pthread_mutex_lock(&s->mu);
        assert_int_equal(s->last_req_len, (size_t)hl + n);
        assert_memory_equal(s->last_req, head, (size_t)hl);
        assert_memory_equal(s->last_req + hl, body, n);
        pthread_mutex_unlock(&s->mu);
    }
    assert_int_equal(srv_get(s, &s->n_conns), 1);
    run_free(r);
    free(body);
    srv_stop(s);
}

static void test_engine_fast_statuses(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_OK, AF_INET);
    char u404[64], u503[64];
    snprintf(u404, sizeof(u404), "http://127.0.0.1:%d/status/404", s->port);
    snprintf(u503, sizeof(u503), "http://127.0.0.1:%d/status/503", s->port);
    st_request q[2] = {request("GET", u404), request("GET", u503)};
    run *r = run_new();
    run_create(r, q, 2, 1, 5000);
    assert_int_equal(run_send(r, 0, 1), 0);
    run_until(r, 1, 5);
    assert_int_equal(run_send(r, 1, 2), 0);
    run_until(r, 2, 5);
    expect_ok(&r->res[0], 404, strlen("HTTP/1.1 404 OK\r\nContent-Length: 5\r\n\r\nhello"));
    expect_ok(&r->res[1], 503, strlen("HTTP/1.1 503 OK\r\nContent-Length: 5\r\n\r\nhello"));
    run_free(r);
    srv_stop(s);
}

/* 204 and 304 answers carry no body whatever their Content-Length says (RFC 9110): each is
 * complete at its headers, and the connection goes on to the next request. */
static void test_engine_fast_no_body_statuses(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_OK, AF_INET);
    char u204[64], u304[64], uok[64];
    snprintf(u204, sizeof(u204), "http://127.0.0.1:%d/status/204", s->port);
    snprintf(u304, sizeof(u304), "http://127.0.0.1:%d/status/304", s->port);
    snprintf(uok, sizeof(uok), "http://127.0.0.1:%d/", s->port);
    st_request q[3] = {request("GET", u304), request("GET", u204), request("GET", uok)};
    run *r = run_new();
    run_create(r, q, 3, 1, 1000);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(run_send(r, (size_t)i, (uint64_t)i + 1), 0);
        run_until(r, i + 1, 5);
    }
    expect_ok(&r->res[0], 304, strlen("HTTP/1.1 304 OK\r\nContent-Length: 1000\r\n\r\n"));
    expect_ok(&r->res[1], 204, strlen("HTTP/1.1 204 OK\r\nContent-Length: 1000\r\n\r\n"));
    expect_ok(&r->res[2], 200, sizeof(OK_RESPONSE) - 1);
    assert_int_equal(srv_get(s, &s->n_conns), 1);
    run_free(r);
    srv_stop(s);
}

/* One request against a server mode that must end in kind; returns the result. */
static st_result one_request(srv_mode mode, int timeout_ms)
{
    srv *s = srv_start(mode, AF_INET);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
    st_request q = request("GET", url);
    run *r = run_new();
    run_create(r, &q, 1, 1, timeout_ms);
    assert_int_equal(run_send(r, 0, 1), 0);
    run_until(r, 1, 5);
    st_result res = r->res[0];
    assert_int_equal(st_engine_fast.free_slots(r->e), 1);
    assert_int_equal(st_engine_fast.inflight(r->e), 0);
    run_free(r);
    srv_stop(s);
    return res;
}

static void test_engine_fast_malformed(void **state)
{
    (void)state;
    st_result res = one_request(SRV_MALFORMED, 2000);
    assert_int_equal(res.kind, ST_RES_OTHER);
    assert_int_equal(res.status, 0);
    /* Reported when the bytes arrive, not at the timeout. */
    assert_true(res.done_ns - res.sent_ns < 1000 * ST_NS_PER_MS);
}

static void test_engine_fast_huge_header(void **state)
{
    (void)state;
    st_result res = one_request(SRV_HUGE_HEADER, 2000);
    assert_int_equal(res.kind, ST_RES_OTHER);
    assert_true(res.done_ns - res.sent_ns < 1000 * ST_NS_PER_MS);
}

static void test_engine_fast_truncated_body(void **state)
{
    (void)state;
    st_result res = one_request(SRV_TRUNCATED, 2000);
    assert_int_equal(res.kind, ST_RES_OTHER);
    assert_true(res.bytes_in > 0);
    assert_true(res.done_ns - res.sent_ns < 1000 * ST_NS_PER_MS);
}

static void test_engine_fast_body_until_close(void **state)
{
    (void)state;
    st_result res = one_request(SRV_EOF_BODY, 2000);
    expect_ok(&res, 200, strlen("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"));
}

static void test_engine_fast_trailing_junk_closes(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_TRAILING_JUNK, AF_INET);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
    st_request q = request("GET", url);
    run *r = run_new();
    run_create(r, &q, 1, 1, 5000);
    /* The response counts; the junk after it is not read as the next response: the connection
     * is dropped and the next request gets a new one. */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(run_send(r, 0, 1), 0);
        run_until(r, i + 1, 5);
        expect_ok(&r->res[i], 200, sizeof(OK_RESPONSE) - 1);
    }
    assert_int_equal(srv_get(s, &s->n_conns), 2);
    run_free(r);
    srv_stop(s);
}

static void test_engine_fast_interim_response(void **state)
{
    (void)state;
    st_result res = one_request(SRV_CONTINUE, 2000);
    expect_ok(&res, 200, strlen("HTTP/1.1 100 Continue\r\n\r\n") + sizeof(OK_RESPONSE) - 1);
}

static void test_engine_fast_cancel_all(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_SILENT, AF_INET);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
    st_request q = request("GET", url);
    run *r = run_new();
    run_create(r, &q, 1, 3, 5000);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(run_send(r, 0, 10 + (uint64_t)i), 0);
    }
    assert_int_equal(run_send(r, 0, 99), ST_EAGAIN);
    for (int i = 0; i < 200 && srv_get(s, &s->n_reqs) < 3; i++) {
        run_for(r, 0.01);
    }
    assert_int_equal(srv_get(s, &s->n_reqs), 3);
    assert_int_equal(r->n_done, 0);
    st_engine_fast.cancel_all(r->e);
    assert_int_equal(r->n_done, 3);
    bool seen[3] = {false, false, false};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r->res[i].kind, ST_RES_ABORTED);
        assert_true(r->tags[i] >= 10 && r->tags[i] < 13);
        seen[r->tags[i] - 10] = true;
    }
    assert_true(seen[0] && seen[1] && seen[2]);
    assert_int_equal(st_engine_fast.inflight(r->e), 0);
    assert_int_equal(st_engine_fast.free_slots(r->e), 3);
    /* Nothing more is reported, and the server sees its connections closed. */
    run_for(r, 0.05);
    assert_int_equal(r->n_done, 3);
    assert_int_equal(srv_wait(s, &s->peer_closed, 3), 3);
    run_free(r);
    srv_stop(s);
}

static void test_engine_fast_cancel_while_connecting(void **state)
{
    (void)state;
    int hold;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", refused_port(&hold));
    st_request q = request("GET", url);
    run *r = run_new();
    run_create(r, &q, 1, 1, 5000);
    assert_int_equal(run_send(r, 0, 5), 0);
    st_engine_fast.cancel_all(r->e);
    assert_int_equal(r->n_done, 1);
    assert_int_equal(r->res[0].kind, ST_RES_ABORTED);
    assert_int_equal(r->tags[0], 5);
    run_for(r, 0.05);
    assert_int_equal(r->n_done, 1);
    assert_int_equal(st_engine_fast.inflight(r->e), 0);
    assert_int_equal(st_engine_fast.free_slots(r->e), 1);
    run_free(r);
    close(hold);
}

/* Makes socket() fail with EMFILE until fd_limit_restore: a failure found inside send(). */
static struct rlimit fd_limit_saved;
static bool fd_limit_saved_ok;

static void fd_limit_squeeze(void)
{
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &fd_limit_saved), 0);
    fd_limit_saved_ok = true;
    int lowest = dup(0);
    assert_true(lowest >= 0);
    close(lowest);
    struct rlimit lim = {(rlim_t)lowest, fd_limit_saved.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
}

static void fd_limit_restore(void)
{
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &fd_limit_saved), 0);
}

/* Restores the limit even when the test failed while it was squeezed. */
static int fd_limit_teardown(void **state)
{
    (void)state;
    return !fd_limit_saved_ok || setrlimit(RLIMIT_NOFILE, &fd_limit_saved) == 0 ? 0 : -1;
}

static void test_engine_fast_failure_in_send_is_deferred(void **state)
{
    (void)state;
    st_request q = request("GET", "http://127.0.0.1:9/");
    run *r = run_new();
    run_create(r, &q, 1, 2, 5000);
    fd_limit_squeeze();
    int rc = run_send(r, 0, 3);
    int done_now = r->n_done, inflight = st_engine_fast.inflight(r->e);
    int free_now = st_engine_fast.free_slots(r->e);
    /* The failures of the sends made from the callbacks are deferred the same way. */
    r->resend = 9;
    run_until(r, 10, 5);
    fd_limit_restore();
    assert_int_equal(rc, 0);
    assert_int_equal(done_now, 0);
    assert_int_equal(inflight, 1);
    assert_int_equal(free_now, 1);
    assert_false(r->done_inside_send);
    /* Out of descriptors is this machine's shortage, never the target refusing. */
    for (int i = 0; i < 10; i++) {
        assert_int_equal(r->res[i].kind, ST_RES_LOCAL);
    }
    assert_int_equal(r->tags[0], 3);
    assert_int_equal(st_engine_fast.inflight(r->e), 0);
    assert_int_equal(st_engine_fast.free_slots(r->e), 2);
    run_free(r);
}

static void test_engine_fast_cancel_deferred_failure(void **state)
{
    (void)state;
    st_request q = request("GET", "http://127.0.0.1:9/");
    run *r = run_new();
    run_create(r, &q, 1, 2, 5000);
    fd_limit_squeeze();
    int rc = run_send(r, 0, 4);
    fd_limit_restore();
    assert_int_equal(rc, 0);
    assert_int_equal(r->n_done, 0);
    /* Not reported yet, so still in flight: cancel_all aborts it, and it is not reported again. */
    st_engine_fast.cancel_all(r->e);
    assert_int_equal(r->n_done, 1);
    assert_int_equal(r->res[0].kind, ST_RES_ABORTED);
    assert_int_equal(r->tags[0], 4);
    run_for(r, 0.05);
    assert_int_equal(r->n_done, 1);
    assert_int_equal(st_engine_fast.inflight(r->e), 0);
    assert_int_equal(st_engine_fast.free_slots(r->e), 2);
    run_free(r);
}

static void test_engine_fast_destroy_in_flight(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_SILENT, AF_INET);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s->port);
    st_request q = request("GET", url);
    run *r = run_new();
    run_create(r, &q, 1, 2, 5000);
    assert_int_equal(run_send(r, 0, 1), 0);
    assert_int_equal(run_send(r, 0, 2), 0);
    run_for(r, 0.02);
    /* Dropped without a callback; run_free checks the loop is empty. */
    run_free(r);
    srv_stop(s);
}

static void test_engine_fast_ipv6(void **state)
{
    (void)state;
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = in6addr_loopback};
    if (probe < 0 || bind(probe, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (probe >= 0) {
            close(probe);
        }
        skip();
    }
    close(probe);
    srv *s = srv_start(SRV_OK, AF_INET6);
    char url[64];
    snprintf(url, sizeof(url), "http://[::1]:%d/six", s->port);
    st_request q = request("GET", url);
    run *r = run_new();
    run_create(r, &q, 1, 1, 5000);
    assert_int_equal(run_send(r, 0, 1), 0);
    run_until(r, 1, 5);
    expect_ok(&r->res[0], 200, sizeof(OK_RESPONSE) - 1);
    char want[128];
    snprintf(want, sizeof(want),
             "GET /six HTTP/1.1\r\nHost: [::1]:%d\r\nUser-Agent: stampede/" ST_VERSION "\r\n\r\n",
             s->port);
    assert_string_equal(s->last_req, want);
    run_free(r);
    srv_stop(s);
}

static void test_engine_fast_localhost_name(void **state)
{
    (void)state;
    srv *s = srv_start(SRV_OK, AF_INET);
    char url[64];
    snprintf(url, sizeof(url), "http://localhost:%d/", s->port);
    st_request q = request("GET", url);
    run *r = run_new();
    run_create(r, &q, 1, 1, 5000);
    /* If localhost also names ::1 (where nothing listens), the next address is tried. */
    assert_int_equal(run_send(r, 0, 1), 0);
    run_until(r, 1, 5);
    expect_ok(&r->res[0], 200, sizeof(OK_RESPONSE) - 1);
    run_free(r);
    srv_stop(s);
}

static int create_error(const st_request *q, size_t n, char *err, size_t err_len)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(loop);
    st_engine_cfg cfg = {.requests = q, .n_requests = n, .connections = 1, .timeout_ms = 1000};
    static char mark;
    st_engine *e = (st_engine *)&mark; /* must stay untouched on error */
    int rc = st_engine_fast.create(&e, loop, &cfg, on_done, NULL, err, err_len);
    assert_true(e == (st_engine *)&mark);
    assert_loop_empty(loop);
    ev_loop_destroy(loop);
    return rc;
}

static void test_engine_fast_create_errors(void **state)
{
    (void)state;
    char err[256];
    st_request q[2] = {request("GET", "https://127.0.0.1/"), request("GET", "http://a.test/")};
    assert_int_equal(create_error(q, 1, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "requests[0].url"));

    q[0] = request("GET", "http://127.0.0.1:1/");
    assert_int_equal(create_error(q, 2, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "requests[1].url"));

    char *bad[] = {"X-Bad\r\nInjected: 1"};
    q[0].headers = bad;
    q[0].n_headers = 1;
    assert_int_equal(create_error(q, 1, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "headers[0]"));

    q[0] = request("GE T", "http://127.0.0.1:1/");
    assert_int_equal(create_error(q, 1, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "method"));

    q[0] = request("GET", "http://no-such-host.invalid/");
    assert_int_equal(create_error(q, 1, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "no-such-host.invalid"));

    q[0] = request("GET", "http://127.0.0.1:1/");
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    st_engine_cfg cfg = {.requests = q, .n_requests = 1, .connections = 0, .timeout_ms = 1000};
    st_engine *e = NULL;
    assert_int_equal(st_engine_fast.create(&e, loop, &cfg, on_done, NULL, err, sizeof(err)),
                     ST_EINVAL);
    assert_null(e);
    ev_loop_destroy(loop);
    st_engine_fast.destroy(NULL);
}

static void test_engine_fast_applies(void **state)
{
    (void)state;
    char why[256];
    st_request q[2] = {request("GET", "http://127.0.0.1:8080/a"),
                       request("POST", "http://127.0.0.1:8080/b")};
    st_plan p = {0};
    p.requests = q;
    p.n_requests = 2;
    p.http2 = -1;
    const char *proxies[] = {"http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i < 4; i++) {
        unsetenv(proxies[i]);
    }
    assert_int_equal(st_engine_fast.applies(&p, why, sizeof(why)), 1);

    p.http2 = 1;
    assert_int_equal(st_engine_fast.applies(&p, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "HTTP/2"));
    p.http2 = 0;
    assert_int_equal(st_engine_fast.applies(&p, why, sizeof(why)), 1);

    q[1] = request("GET", "https://127.0.0.1:8080/b");
    assert_int_equal(st_engine_fast.applies(&p, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "requests[1]"));

    q[1] = request("GET", "http://127.0.0.1:8081/b");
    assert_int_equal(st_engine_fast.applies(&p, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "origin"));

    q[1] = request("GET", "http://LOCALHOST:8080/b");
    q[0] = request("GET", "http://localhost:8080/a");
    assert_int_equal(st_engine_fast.applies(&p, why, sizeof(why)), 1);

    for (size_t i = 0; i < 4; i++) {
        setenv(proxies[i], "http://proxy.test:3128", 1);
        assert_int_equal(st_engine_fast.applies(&p, why, sizeof(why)), 0);
        assert_non_null(strstr(why, proxies[i]));
        unsetenv(proxies[i]);
    }
    assert_int_equal(st_engine_fast.applies(&p, NULL, 0), 1);
    p.n_requests = 0;
    assert_int_equal(st_engine_fast.applies(&p, NULL, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_fast_keepalive_many),
        cmocka_unit_test(test_engine_fast_slots_and_inflight),
        cmocka_unit_test(test_engine_fast_connection_close),
        cmocka_unit_test(test_engine_fast_idle_close_is_quiet),
        cmocka_unit_test(test_engine_fast_retry_after_reused_close),
        cmocka_unit_test(test_engine_fast_retry_only_once),
        cmocka_unit_test(test_engine_fast_fresh_close_is_other),
        cmocka_unit_test(test_engine_fast_connect_refused),
        cmocka_unit_test(test_engine_fast_connect_timeout),
        cmocka_unit_test(test_engine_fast_timeout),
        cmocka_unit_test(test_engine_fast_endless_body_times_out),
        cmocka_unit_test(test_engine_fast_chunked),
        cmocka_unit_test(test_engine_fast_head),
        cmocka_unit_test(test_engine_fast_post_body),
        cmocka_unit_test(test_engine_fast_large_body),
        cmocka_unit_test(test_engine_fast_statuses),
        cmocka_unit_test(test_engine_fast_no_body_statuses),
        cmocka_unit_test(test_engine_fast_malformed),
        cmocka_unit_test(test_engine_fast_huge_header),
        cmocka_unit_test(test_engine_fast_truncated_body),
        cmocka_unit_test(test_engine_fast_body_until_close),
        cmocka_unit_test(test_engine_fast_trailing_junk_closes),
        cmocka_unit_test(test_engine_fast_interim_response),
        cmocka_unit_test(test_engine_fast_cancel_all),
        cmocka_unit_test(test_engine_fast_cancel_while_connecting),
        cmocka_unit_test_teardown(test_engine_fast_failure_in_send_is_deferred, fd_limit_teardown),
        cmocka_unit_test_teardown(test_engine_fast_cancel_deferred_failure, fd_limit_teardown),
        cmocka_unit_test(test_engine_fast_destroy_in_flight),
        cmocka_unit_test(test_engine_fast_ipv6),
        cmocka_unit_test(test_engine_fast_localhost_name),
        cmocka_unit_test(test_engine_fast_create_errors),
        cmocka_unit_test(test_engine_fast_applies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
