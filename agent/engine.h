/*
 * engine.h - the transport behind the agent: how one worker thread sends HTTP requests.
 *
 * A worker (agent/worker.c) decides *when* each request is due and *which* request of the plan it
 * is; an engine only sends it and reports how it ended. Three engines implement these ops:
 *   - "curl" (engine_curl.c): libcurl multi on the worker's libev loop; every case (TLS, HTTP/2,
 *     redirects off, proxies from the environment, any origin mix).
 *   - "fast" (engine_fast.c): our own HTTP/1.1 keep-alive client for http:// and https:// plans
 *     whose requests all go to one origin, with http-parser reading the responses and conn_io.h
 *     carrying the bytes (TLS through OpenSSL: SNI, ALPN http/1.1, verification, resumption).
 *   - "h2" (engine_h2.c): HTTP/2 on libnghttp2 for --http2 plans of one origin (h2c with prior
 *     knowledge for http://, TLS with ALPN h2 through conn_io.h for https://, verified unless
 *     cfg->insecure; a server that does not choose h2 is ST_RES_TLS): cfg->connections
 *     connections, each with up to cfg->streams streams.
 * st_engine_choose() asks each engine's applies op and picks fast, then h2, wherever one applies.
 *
 * Threading: an engine instance belongs to one worker thread and its libev loop; every op and every
 * callback runs on that thread. Nothing is shared between instances except the read-only config.
 *
 * Connections: an instance opens at most cfg->connections connections and has at most that many
 * requests in flight (one request per connection at a time, no pipelining; with HTTP/2 the curl
 * engine may multiplex them over fewer connections). The h2 engine opens up to
 * cfg->connections connections and has at most connections x streams requests in flight, each
 * connection carrying up to cfg->streams of them at once (fewer when the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS is lower: the rest wait in the engine for a stream); its request carries the same
 * headers as below (names lower-cased, Host as :authority, values without surrounding blanks,
 * content-length for a body), and a plan header HTTP/2 forbids (Connection, Keep-Alive,
 * Proxy-Connection, Upgrade, TE) is ST_EINVAL at create. Streams the server did not process
 * (above a GOAWAY's last stream id, or reset with REFUSED_STREAM before any answer) are sent again
 * on another connection, at most 3 times; a connection lost mid-stream ends its streams as
 * ST_RES_OTHER, except, as with HTTP/1.1 above, streams that got no byte back on a connection
 * that had answered before, which are sent once more. Connections are opened lazily on first use and
 * kept alive; a connection the server closed is reopened on the next send.
 *
 * The request on the wire: for one plan both engines send the same bytes over HTTP/1.1 (only how
 * connections are opened, reused and closed differs; HTTP/2 frames them its own way):
 *     METHOD SP target SP "HTTP/1.1" CRLF
 *     "Host: " host[":" port]           (port only when it is not the scheme's default), or the
 *                                       plan's first Host header, here, as "Host:" + its value
 *     "User-Agent: stampede/" ST_VERSION (unless the plan sets one)
 *     the plan's other headers, in the plan's order, each line as written; one with an empty or
 *                                       blank value is sent as "Name:"
 *     "Content-Length: " body length    (when there is a body)
 *     CRLF body
 *   - target is the URL's path and query as st_url_parse gives them (url.h): bytes that cannot
 *     appear in a URI (non-ASCII, " < > \ ^ ` { | }) percent-encoded with upper-case hex, the rest
 *     as written: '%' escapes, reserved characters and dot segments ("/a/../b") are not touched.
 *   - The body frames the request. A Content-Length or Transfer-Encoding header in the plan is
 *     never sent: the engine writes the length of the plan's body instead (none without a body),
 *     since a wrong framing header would desynchronise the connection.
 *   - A request with a body (even an empty one) carries it whatever the method, except HEAD, which
 *     is sent without one (its response has no body either).
 *   - Nothing the plan did not ask for: no Accept, no Content-Type, no "Expect: 100-continue"
 *     (libcurl's defaults are stopped), no Connection header.
 *
 * A request written on a reused connection that breaks before any byte of the answer came back
 * (the server closed the idle connection as the request went out: it never saw it) is sent once
 * more on a new connection, within the same timeout, and reported once. A response whose length
 * is ambiguous (more than one Content-Length, even equal ones; one that is not a number; one
 * beside Transfer-Encoding) is malformed: ST_RES_OTHER as soon as its headers arrive.
 */
#ifndef ST_ENGINE_H
#define ST_ENGINE_H

#include "plan.h"

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How a request ended. */
typedef enum {
    ST_RES_HTTP = 0,    /* a complete HTTP response arrived: see status */
    ST_RES_CONNECT = 1, /* the connection could not be made (refused, unreachable, DNS) */
    ST_RES_TIMEOUT = 2, /* no complete response within cfg->timeout_ms of the send */
    ST_RES_OTHER = 3,   /* reset, malformed response, or any other failure */
    ST_RES_ABORTED = 4, /* cancelled by st_engine_ops.cancel_all (the run stopped) */
    ST_RES_LOCAL = 5,   /* never left this machine: no file descriptor for a socket (EMFILE,
                           ENFILE); the worker counts it as err_local, not as sent */
    ST_RES_TLS = 6,     /* the TLS handshake failed: protocol error, alert, no common version,
                           cipher or ALPN protocol, a peer that is not TLS (conn_io.h) */
    ST_RES_CERT = 7,    /* the server's certificate did not verify (untrusted, expired, wrong
                           name) */
} st_res_kind;

typedef struct st_result {
    st_res_kind kind;
    int status;        /* HTTP status when kind == ST_RES_HTTP, else 0 */
    uint64_t sent_ns;  /* monotonic instant the request was handed to the connection */
    uint64_t done_ns;  /* monotonic instant the response (or the failure) was complete */
    uint64_t bytes_in; /* response bytes read, headers included */
    uint64_t bytes_out;
    uint32_t req;      /* the request's index in st_engine_cfg.requests (the one sent) */
} st_result;

/* Called on the worker's thread exactly once per accepted send, with the tag given to send.
 * The callback may call send() again (the finished request's slot is already free). */
typedef void (*st_engine_done_fn)(void *worker, uint64_t tag, const st_result *res);

typedef struct st_engine_cfg {
    const st_request *requests; /* the plan's requests, read-only, outlive the engine */
    size_t n_requests;
    int connections; /* >= 1: the cap for this instance */
    int timeout_ms;  /* >= 1: per request, from its send */
    int streams;     /* h2 only: concurrent streams per connection (>= 1; 0 counts as 1) */
    int http2;       /* curl: HTTP/2 (prior knowledge for http://, ALPN for https://) */
    int insecure;    /* do not verify TLS certificates */
    const char *cacert; /* PEM file of the CAs to trust instead of the system's, or NULL; outlives
                           the engine */
    const char *cacert_pem; /* or that file's contents, read by the plan (cacert then names it in
                               messages); outlives the engine */
    size_t cacert_pem_len;
    /* fast only (NULL: loop): a second loop, on the same thread, that watches the connections'
     * sockets while the engine's timers stay on loop. The engine then asks the kernel to stamp
     * what each socket receives and times every response by the arrival of its last bytes, so
     * that the worker may run io_loop late without changing a figure (reads_can_wait). Other
     * engines ignore it. */
    struct ev_loop *io_loop;
} st_engine_cfg;

typedef struct st_engine st_engine;

typedef struct st_engine_ops {
    const char *name;

    /* Whether this engine can send every request of the plan (finished or not). Returns 1 when it
     * can and 0 when it cannot (a yes/no answer, not an error code); when it cannot and
     * why_len > 0, the reason goes to why. Any thread. The curl engine always can. The fast one
     * can when every request is http:// or https:// (HTTP/1.1 over TLS, ALPN http/1.1), on one
     * origin (scheme, host, port), without
     * HTTP/2, and no proxy is configured in the environment (http_proxy, HTTP_PROXY, all_proxy,
     * ALL_PROXY), since only libcurl honours proxies. The h2 one can when the plan asks for
     * HTTP/2 and every request is on one origin, http:// or https://, with no proxy configured. */
    int (*applies)(const st_plan *plan, char *why, size_t why_len);

    /* Creates an instance on loop (which must outlive it). Nothing is connected yet.
     * Returns 0 and writes *out, ST_EINVAL (a request this engine cannot send, or, for the fast
     * engine, an origin that does not resolve: it resolves once here; the message goes to err),
     * ST_ENOTFOUND / ST_EIO (fast, https: the cacert file does not exist / cannot be read, named
     * in err), ST_ENOMEM, or ST_ESYSTEM. */
    int (*create)(st_engine **out, struct ev_loop *loop, const st_engine_cfg *cfg,
                  st_engine_done_fn done, void *worker, char *err, size_t err_len);

    /* Number of sends that can start now without waiting (free connection slots). */
    int (*free_slots)(st_engine *e);

    /* Starts request cfg->requests[req_index]. Returns 0: done() will be called exactly once for
     * it, and never from inside send() (an immediate failure is reported from the loop later);
     * ST_EAGAIN when no slot is free, or ST_EINVAL when req_index is out of range (nothing
     * happened in either case). */
    int (*send)(st_engine *e, size_t req_index, uint64_t tag);

    /* Number of requests in flight. */
    int (*inflight)(st_engine *e);

    /* Ends every request in flight now; each gets done() with ST_RES_ABORTED. */
    void (*cancel_all)(st_engine *e);

    /* NULL for engines that cannot: whether cfg->io_loop may now go unwatched for a while (run
     * later with ev_run(io_loop, EVRUN_NOWAIT)) without changing any figure: every connection
     * has the kernel's arrival stamps and none waits to connect, to finish a handshake or for
     * room to write, so what is late is only the reading of responses whose times are known. */
    bool (*reads_can_wait)(st_engine *e);

    /* Closes every connection and frees the instance; no watcher is left on the loop and done()
     * is never called again. Requests still in flight are dropped without a callback: call
     * cancel_all first to account for them. Never call it from inside done() (the engine is
     * still running that callback); cancel_all is fine there. NULL is a no-op. */
    void (*destroy)(st_engine *e);
} st_engine_ops;

extern const st_engine_ops st_engine_curl;
extern const st_engine_ops st_engine_fast;
extern const st_engine_ops st_engine_h2;

/* "auto" (or NULL) picks the first engine whose applies op accepts the plan: fast, h2, curl; a
 * plan with streams > 1 must end with h2 (ST_EINVAL otherwise, with the reason in err);
 * "curl", "fast" and "h2" force one (forcing an engine that does not apply is ST_EINVAL with the reason
 * in err). Returns 0 and writes *out, or ST_EINVAL. */
int st_engine_choose(const char *name, const st_plan *plan, const st_engine_ops **out, char *err,
                     size_t err_len);

#endif
