/*
 * The engine tests' rig (see srv.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "srv.h"

#include "error.h"
#include "loopback.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the scripted server ---- */

#define SRV_BUF (8 * 1024 * 1024 + 65536) /* malloc'd per connection, touched as used */

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

/* Appends len bytes of buf to c; false when out of memory. */
static bool capture_add(capture *c, const char *buf, size_t len)
{
    char *grown = realloc(c->bytes, c->len + len + 1);
    if (!grown) {
        return false;
    }
    memcpy(grown + c->len, buf, len);
    c->bytes = grown;
    c->len += len;
    return true;
}

/* The modes whose every answer is the same bytes, and whether the server closes after them. */
static const struct {
    srv_mode mode;
    const char *bytes;
    bool close_after;
} srv_canned[] = {
    {SRV_EOF_BODY, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", true},
    {SRV_MALFORMED, "SMTP ready\r\n\r\n", false},
    {SRV_TRUNCATED, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b", true},
    {SRV_TRAILING_JUNK, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloJUNK", false},
    {SRV_CONTINUE, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
     false},
    {SRV_CAPTURE, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false},
};

/* Writes mode's canned answer; whether the connection is to close after it. */
static bool srv_write_canned(int fd, srv_mode mode)
{
    for (size_t i = 0; i < sizeof(srv_canned) / sizeof(srv_canned[0]); i++) {
        if (srv_canned[i].mode == mode) {
            srv_write(fd, srv_canned[i].bytes, strlen(srv_canned[i].bytes));
            return srv_canned[i].close_after;
        }
    }
    return true; /* not a canned mode: nothing written, and the connection closes */
}

static void *srv_conn_main(void *arg)
{
    srv_conn *sc = arg;
    srv *s = sc->s;
    int fd = sc->fd;
    char *buf = malloc(SRV_BUF);
    size_t have = 0;
    int nth = 0;
    capture cap = {NULL, 0};
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
            if (s->mode == SRV_CAPTURE) {
                capture_add(&cap, buf, have); /* what never made a whole request */
            }
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
            srv_write(fd, OK_RESPONSE, OK_RESPONSE_LEN);
            /* Keep-alive by every header, then gone without a word: a request that arrived
             * meanwhile is never read (the kernel answers it with a reset). */
            usleep((useconds_t)s->pause_ms * 1000);
            close_after = true;
            break;
        case SRV_DROP_SECOND:
        case SRV_DROP_AFTER_FIRST: {
            /* The first request of each connection is answered, or only the server's first;
             * later ones lose their connection, closed or reset. */
            bool after_first = s->mode == SRV_DROP_AFTER_FIRST;
            if ((after_first ? global : nth) == 1) {
                srv_write(fd, OK_RESPONSE, OK_RESPONSE_LEN);
            } else {
                close_after = true;
                reset = after_first;
            }
            break;
        }
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
        case SRV_EOF_BODY:
        case SRV_MALFORMED:
        case SRV_TRUNCATED:
        case SRV_TRAILING_JUNK:
        case SRV_CONTINUE:
        case SRV_CAPTURE:
            close_after = srv_write_canned(fd, s->mode);
            break;
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
        case SRV_FIXED:
            srv_write(fd, s->response, strlen(s->response));
            break;
        case SRV_SLAM:
            break;
        }
        if (s->mode == SRV_CAPTURE && !capture_add(&cap, buf, (size_t)len)) {
            break;
        }
        if (close_after) {
            srv_conn_close(sc, reset);
            break;
        }
        memmove(buf, buf + len, have - (size_t)len);
        have -= (size_t)len;
    }
    pthread_mutex_lock(&s->mu);
    if (s->mode == SRV_CAPTURE && s->n_caps < SRV_MAX_CONNS) {
        s->caps[s->n_caps++] = cap;
        cap.bytes = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    free(cap.bytes);
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

srv *srv_start(srv_mode mode, int family)
{
    srv *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->mode = mode;
    pthread_mutex_init(&s->mu, NULL);
    /* SRV_SLOW_READER: a tiny receive buffer, which accepted sockets inherit. */
    s->lfd = loopback_listen(family, 128, mode == SRV_SLOW_READER ? 4096 : 0, &s->port);
    assert_int_equal(pthread_create(&s->accept_thread, NULL, srv_accept_main, s), 0);
    return s;
}

void srv_stop(srv *s)
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
    for (int i = 0; i < s->n_caps; i++) {
        free(s->caps[i].bytes);
    }
    free(s->last_req);
    free(s);
}

int srv_get(srv *s, const int *field)
{
    return locked_get(&s->mu, field);
}

int srv_wait(srv *s, const int *field, int want)
{
    return locked_wait(&s->mu, field, want);
}

/* ---- one engine on its own loop ---- */

int run_send(run *r, size_t req, uint64_t tag)
{
    r->in_send = true;
    int rc = r->ops->send(r->e, req, tag);
    r->in_send = false;
    return rc;
}

void run_on_done(void *worker, uint64_t tag, const st_result *res)
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
    r->free_slots_in_done = r->ops->free_slots(r->e);
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

run *run_new(const st_engine_ops *ops)
{
    run *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->ops = ops;
    r->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(r->loop);
    ev_timer_init(&r->guard, on_guard, 0., 0.);
    r->guard.data = r;
    return r;
}

void run_create(run *r, const st_request *reqs, size_t n, int conns, int timeout_ms)
{
    st_engine_cfg cfg = {
        .requests = reqs, .n_requests = n, .connections = conns, .timeout_ms = timeout_ms};
    char err[256] = "";
    int rc = r->ops->create(&r->e, r->loop, &cfg, run_on_done, r, err, sizeof(err));
    if (rc != 0) {
        fail_msg("%s create: %s (%s)", r->ops->name, st_strerror(rc), err);
    }
}

void run_until(run *r, int target, double max_s)
{
    r->target = target;
    if (r->n_done < target) {
        ev_timer_set(&r->guard, max_s, 0.);
        ev_timer_start(r->loop, &r->guard);
        ev_run(r->loop, 0);
        ev_timer_stop(r->loop, &r->guard);
    }
    if (r->guard_fired) {
        fail_msg("%s: %d of %d results after %.1f s", r->ops->name, r->n_done, target, max_s);
    }
    assert_true(r->n_done >= target);
    assert_false(r->done_inside_send);
}

void run_for(run *r, double s)
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
void assert_loop_empty(struct ev_loop *loop)
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

void run_free(run *r)
{
    r->ops->destroy(r->e);
    assert_loop_empty(r->loop);
    ev_loop_destroy(r->loop);
    free(r);
}
