/*
 * The engine tests' rig: a scripted HTTP server that runs inside the test (one accepting thread and
 * one thread per connection, blocking sockets on loopback), and one engine on its own event loop.
 */
#ifndef ST_TESTS_SRV_H
#define ST_TESTS_SRV_H

#include "engine.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the scripted server ---- */

typedef enum {
    SRV_OK,               /* keep-alive; "/status/N" answers N; HEAD gets headers only */
    SRV_CLOSE,            /* Connection: close after every response */
    SRV_IDLE_CLOSE,       /* answers, waits pause_ms, closes without reading more */
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
    SRV_CAPTURE,          /* answers each request and keeps every byte the connection carried */
    SRV_FIXED,            /* answers every request with s->response, keeps the connection open */
} srv_mode;

#define SRV_MAX_CONNS 128

/* What SRV_OK answers a plain GET with. */
#define OK_RESPONSE     "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
#define OK_RESPONSE_LEN (sizeof(OK_RESPONSE) - 1)

typedef struct srv srv;

typedef struct srv_conn {
    srv *s;
    int fd; /* -1 once the connection thread closed it; guarded by s->mu */
    pthread_t thread;
} srv_conn;

typedef struct capture {
    char *bytes;
    size_t len;
} capture;

struct srv {
    srv_mode mode;
    int pause_ms;         /* SRV_IDLE_CLOSE: between the answer and the close */
    const char *response; /* SRV_FIXED */
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
    capture caps[SRV_MAX_CONNS]; /* SRV_CAPTURE: what each finished connection carried */
    int n_caps;
};

/* Listens on the loopback address of family (AF_INET or AF_INET6). */
srv *srv_start(srv_mode mode, int family);
void srv_stop(srv *s);
/* Reads a counter of s under its lock. */
int srv_get(srv *s, const int *field);
/* Waits up to two seconds for the server threads to count what the client did. */
int srv_wait(srv *s, const int *field, int want);

/* ---- one engine on its own loop ---- */

#define MAX_RESULTS 4096

typedef struct run {
    const st_engine_ops *ops;
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

run *run_new(const st_engine_ops *ops);
/* Creates the engine; fails the test if it cannot. */
void run_create(run *r, const st_request *reqs, size_t n, int conns, int timeout_ms);
int run_send(run *r, size_t req, uint64_t tag);
/* Runs the loop until n_done reaches target; fails the test after max_s seconds, or if a result
 * was reported from inside send(). */
void run_until(run *r, int target, double max_s);
/* Runs the loop for a while, whatever happens. */
void run_for(run *r, double s);
/* Checks that no watcher is active or pending on loop. */
void assert_loop_empty(struct ev_loop *loop);
/* Destroys the engine and checks that it left nothing on the loop. */
void run_free(run *r);
/* The engine's done callback, for engines a test creates itself. */
void run_on_done(void *worker, uint64_t tag, const st_result *res);

#endif
