/*
 * The libcurl engine: one CURLM per worker on the worker's libev loop, in the shape of curl's
 * hiperfifo example: curl tells us which sockets to watch (socket callback -> ev_io) and when to
 * call it back (timer callback -> ev_timer); after every curl_multi_socket_action we drain
 * curl_multi_info_read for finished transfers.
 */
#include "clock.h"
#include "engine.h"
#include "error.h"
#include "log.h"
#include "url.h"

#include <ctype.h>
#include <errno.h>
#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct slot {
    CURL *easy;
    st_engine *eng;
    bool busy;
    bool failed_early; /* curl_multi_add_handle refused it: report from the loop */
    size_t req;        /* request configured on the handle, SIZE_MAX for none */
    uint64_t tag;
    uint64_t sent_ns;
    uint64_t body_bytes;
    uint64_t retry_out; /* bytes sent by an attempt that was retried */
    bool retried;       /* resent after a silent close: FRESH_CONNECT and TIMEOUT_MS are changed */
    bool malformed;     /* on_header refused the response's framing */
    bool te_seen;       /* the response being read has Transfer-Encoding */
    int cl_seen;        /* and this many Content-Length lines */
    bool no_fd;         /* on_open_socket found no file descriptor (EMFILE, ENFILE) */
} slot;

typedef struct sock {
    ev_io io;
    st_engine *eng;
    curl_socket_t fd;
    struct sock *prev, *next;
} sock;

struct st_engine {
    struct ev_loop *loop;
    CURLM *multi;
    ev_timer timer; /* curl's own timeouts */
    ev_timer defer; /* reports sends that failed before reaching curl */
    st_engine_cfg cfg;
    st_engine_done_fn done;
    void *worker;
    slot *slots;
    int n_slots;
    int *free_stack;
    int n_free;
    int inflight;
    struct curl_slist **headers; /* per request */
    char **urls;                 /* per request: the URL with its request target encoded */
    sock *socks;                 /* every watched socket, to leave nothing on the loop */
    unsigned char seen[CURL_LAST]; /* failure codes already explained in the log */
    bool seen_malformed;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    slot *s = userdata;
    s->body_bytes += size * nmemb;
    return size * nmemb;
}

/* True when the header line in ptr[0..n) is named name. */
static bool header_named(const char *ptr, size_t n, const char *name)
{
    size_t nl = strlen(name);
    return n > nl && ptr[nl] == ':' && strncasecmp(ptr, name, nl) == 0;
}

/* True when the value of a Content-Length line is one decimal number (whitespace around it). */
static bool length_value_ok(const char *v, const char *end)
{
    while (v < end && isspace((unsigned char)*v)) {
        v++;
    }
    while (end > v && isspace((unsigned char)end[-1])) {
        end--;
    }
    if (v == end) {
        return false;
    }
    for (; v < end; v++) {
        if (!isdigit((unsigned char)*v)) {
            return false;
        }
    }
    return true;
}

/* The framing the fast engine's parser refuses is refused here too, so that both engines report a
 * malformed response as ST_RES_OTHER at once: more than one Content-Length (libcurl would take one
 * and wait for a body that is not coming), a Content-Length that is not one number, or one beside
 * Transfer-Encoding (RFC 9112 section 6.3: a sign of response splitting). Returning a short count
 * makes libcurl end the transfer with CURLE_WRITE_ERROR. */
static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    slot *s = userdata;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        /* A status line: a new response begins (after a 1xx, the real one). */
        s->cl_seen = 0;
        s->te_seen = false;
    } else if (header_named(ptr, n, "Content-Length")) {
        if (++s->cl_seen > 1 || s->te_seen || !length_value_ok(ptr + 15, ptr + n)) {
            s->malformed = true;
            return 0;
        }
    } else if (header_named(ptr, n, "Transfer-Encoding")) {
        s->te_seen = true;
        if (s->cl_seen > 0) {
            s->malformed = true;
            return 0;
        }
    }
    return n;
}

/* Opens libcurl's sockets, to tell a machine out of file descriptors from a target that refuses:
 * libcurl reports both as CURLE_COULDNT_CONNECT. */
static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    slot *s = clientp;
    (void)purpose;
    curl_socket_t fd = socket(a->family, a->socktype, a->protocol);
    if (fd == CURL_SOCKET_BAD && (errno == EMFILE || errno == ENFILE)) {
        s->no_fd = true;
    }
    return fd;
}

static st_res_kind classify(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK: return ST_RES_HTTP;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return ST_RES_CONNECT;
    /* The same classes as conn_io.h gives the fast engine. */
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CERTPROBLEM: return ST_RES_TLS;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH: return ST_RES_CERT;
    case CURLE_OPERATION_TIMEDOUT: return ST_RES_TIMEOUT;
    default: return ST_RES_OTHER;
    }
}

static void release(st_engine *e, slot *s)
{
    s->busy = false;
    s->failed_early = false;
    e->inflight--;
    e->free_stack[e->n_free++] = (int)(s - e->slots);
}

/* A request written on a reused connection that died before any byte of the answer came back is
 * sent once more, on a new connection: the server most likely closed the idle connection while
 * the request was on its way, and has not seen it. libcurl retries such requests itself, but
 * counts its retries on the handle over the handle's whole life and gives up after five
 * (CURLE_SEND_ERROR), so on a long run every sixth silent close would fail. Returns true when the
 * request is on its way again. */
static bool retry_silent_close(st_engine *e, slot *s, CURL *easy, CURLcode code)
{
    if ((code != CURLE_SEND_ERROR && code != CURLE_RECV_ERROR && code != CURLE_GOT_NOTHING) ||
        s->retried || s->malformed) {
        return false;
    }
    long header_size = 0, new_conns = 0, request_size = 0;
    curl_easy_getinfo(easy, CURLINFO_HEADER_SIZE, &header_size);
    curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &new_conns);
    curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &request_size);
    uint64_t spent_ms = (st_clock_mono_ns() - s->sent_ns) / ST_NS_PER_MS;
    if (header_size != 0 || s->body_bytes != 0 || new_conns != 0 ||
        spent_ms + 1 >= (uint64_t)e->cfg.timeout_ms) {
        return false;
    }
    curl_off_t up = 0;
    curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &up);
    curl_multi_remove_handle(e->multi, easy);
    s->retried = true;
    s->retry_out = (uint64_t)request_size + (uint64_t)up;
    /* The timeout still counts from the first send. */
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)((uint64_t)e->cfg.timeout_ms - spent_ms));
    curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, 1L);
    if (curl_multi_add_handle(e->multi, easy) != CURLM_OK) {
        s->failed_early = true; /* reported as other from the loop */
        if (!ev_is_active(&e->defer)) {
            ev_timer_set(&e->defer, 0, 0);
            ev_timer_start(e->loop, &e->defer);
        }
    }
    return true;
}

static void finish_transfer(st_engine *e, CURL *easy, CURLcode code)
{
    slot *s = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&s);
    if (retry_silent_close(e, s, easy, code)) {
        return;
    }
    st_result r = {0};
    r.kind = classify(code);
    r.sent_ns = s->sent_ns;
    r.req = (uint32_t)s->req;
    r.done_ns = st_clock_mono_ns();
    long status = 0, header_size = 0, request_size = 0;
    curl_off_t up = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(easy, CURLINFO_HEADER_SIZE, &header_size);
    curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &request_size);
    curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &up);
    if (r.kind == ST_RES_HTTP) {
        r.status = (int)status;
    } else {
        /* A transfer that failed before it got as far as sending (TCP connect, TLS handshake and
         * certificate checks, whatever the error code says) could not connect. */
        curl_off_t pretransfer_us = 0;
        curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer_us);
        /* TLS failures keep their class. A TLS handshake that did not finish in time stays a
         * connect failure here: libcurl 7.88 reports no connect time for it to tell it apart. */
        if (pretransfer_us == 0 && r.kind != ST_RES_TLS && r.kind != ST_RES_CERT) {
            r.kind = s->no_fd ? ST_RES_LOCAL : ST_RES_CONNECT;
        }
    }
    r.bytes_in = (uint64_t)header_size + s->body_bytes;
    r.bytes_out = s->retry_out + (uint64_t)request_size + (uint64_t)up;
    if (s->malformed) {
        if (!e->seen_malformed) {
            e->seen_malformed = true;
            st_info("curl: a response with more than one Content-Length, an invalid one, or one "
                    "beside Transfer-Encoding (first seen; counted as other)");
        }
    } else if (code != CURLE_OK && code < CURL_LAST && !e->seen[code]) {
        /* Say once what a failure class means: the counts alone do not tell why. */
        e->seen[code] = 1;
        st_info("curl: %s (error %d, first seen; counted as %s)", curl_easy_strerror(code),
                (int)code,
                r.kind == ST_RES_LOCAL     ? "local (no file descriptor)"
                : r.kind == ST_RES_CONNECT ? "connect"
                : r.kind == ST_RES_TIMEOUT ? "timeout"
                : r.kind == ST_RES_TLS     ? "tls"
                : r.kind == ST_RES_CERT    ? "cert"
                                           : "other");
    }
    uint64_t tag = s->tag;
    curl_multi_remove_handle(e->multi, easy);
    release(e, s);
    e->done(e->worker, tag, &r);
}

static void drain_info(st_engine *e)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(e->multi, &left))) {
        if (msg->msg == CURLMSG_DONE) {
            finish_transfer(e, msg->easy_handle, msg->data.result);
        }
    }
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    sock *k = w->data;
    st_engine *e = k->eng;
    int action = (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(e->multi, k->fd, action, &running);
    drain_info(e);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    st_engine *e = w->data;
    int running;
    curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    drain_info(e);
}

static void sock_unlink(st_engine *e, sock *k)
{
    ev_io_stop(e->loop, &k->io);
    if (k->prev) {
        k->prev->next = k->next;
    } else {
        e->socks = k->next;
    }
    if (k->next) {
        k->next->prev = k->prev;
    }
    free(k);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    st_engine *e = userp;
    sock *k = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (k) {
            sock_unlink(e, k);
            curl_multi_assign(e->multi, fd, NULL);
        }
        return 0;
    }
    int events = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    if (!k) {
        k = calloc(1, sizeof(*k));
        if (!k) {
            return -1;
        }
        k->eng = e;
        k->fd = fd;
        k->next = e->socks;
        if (e->socks) {
            e->socks->prev = k;
        }
        e->socks = k;
        curl_multi_assign(e->multi, fd, k);
        ev_io_init(&k->io, on_io, fd, events);
        k->io.data = k;
        ev_io_start(e->loop, &k->io);
        return 0;
    }
    if (k->io.events != events) {
        ev_io_stop(e->loop, &k->io);
        ev_io_set(&k->io, fd, events);
        ev_io_start(e->loop, &k->io);
    }
    return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    st_engine *e = userp;
    ev_timer_stop(e->loop, &e->timer);
    if (timeout_ms >= 0) {
        ev_timer_set(&e->timer, (double)timeout_ms / 1000.0, 0.0);
        ev_timer_start(e->loop, &e->timer);
    }
    return 0;
}

static void on_defer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    st_engine *e = w->data;
    for (int i = 0; i < e->n_slots; i++) {
        slot *s = &e->slots[i];
        if (s->busy && s->failed_early) {
            st_result r = {.kind = ST_RES_OTHER, .sent_ns = s->sent_ns, .req = (uint32_t)s->req};
            r.done_ns = st_clock_mono_ns();
            uint64_t tag = s->tag;
            release(e, s);
            e->done(e->worker, tag, &r);
        }
    }
}

static void configure(st_engine *e, slot *s, size_t req_index)
{
    const st_request *rq = &e->cfg.requests[req_index];
    CURL *c = s->easy;
    curl_easy_setopt(c, CURLOPT_URL, e->urls[req_index]);
    bool standard = false;
    if (strcmp(rq->method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        standard = true;
    } else if (rq->body) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 0L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body);
        standard = strcmp(rq->method, "POST") == 0;
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        standard = strcmp(rq->method, "GET") == 0;
    }
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, standard ? NULL : rq->method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, e->headers[req_index]);
    s->req = req_index;
}

static int setup_easy(st_engine *e, slot *s)
{
    CURL *c = curl_easy_init();
    if (!c) {
        return ST_ENOMEM;
    }
    s->easy = c;
    s->eng = e;
    s->req = SIZE_MAX;
    curl_easy_setopt(c, CURLOPT_PRIVATE, s);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, s);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, s);
    /* The request target as the plan wrote it (encoded by st_url_parse): "/a/../b" is not
     * resolved, as the fast engine does not resolve it. */
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)e->cfg.timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)e->cfg.timeout_ms);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "stampede/" ST_VERSION);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    if (e->cfg.http2) {
        /* Prior knowledge for cleartext, ALPN negotiation over TLS. */
        bool tls = strncmp(e->cfg.requests[0].url, "https", 5) == 0;
        curl_easy_setopt(c, CURLOPT_HTTP_VERSION,
                         tls ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
        curl_easy_setopt(c, CURLOPT_PIPEWAIT, 1L);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    }
    if (e->cfg.insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (e->cfg.cacert_pem) {
        struct curl_blob blob = {.data = (void *)e->cfg.cacert_pem,
                                 .len = e->cfg.cacert_pem_len,
                                 .flags = CURL_BLOB_NOCOPY};
        curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
        curl_easy_setopt(c, CURLOPT_CAINFO, NULL);
        curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
    } else if (e->cfg.cacert) {
        curl_easy_setopt(c, CURLOPT_CAINFO, e->cfg.cacert);
        curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
    }
    return 0;
}

static void curl_destroy(st_engine *e);

static bool has_header(const st_request *rq, const char *name)
{
    for (size_t h = 0; h < rq->n_headers; h++) {
        if (header_named(rq->headers[h], strlen(rq->headers[h]), name)) {
            return true;
        }
    }
    return false;
}

static bool list_add(struct curl_slist **l, const char *line)
{
    struct curl_slist *n = curl_slist_append(*l, line);
    if (!n) {
        return false;
    }
    *l = n;
    return true;
}

/* The plan's headers as libcurl must be given them for the canonical request of engine.h. libcurl
 * itself writes Host (the plan's own in its place, first), User-Agent (unless the plan has one)
 * and, for a body, Content-Length; a line "Name:" with no value stops one of its own headers, so
 * Accept, the form Content-Type and "Expect: 100-continue" (a round trip before every body) are
 * stopped unless the plan asks for them. The plan's Content-Length and Transfer-Encoding are
 * dropped; a plan header with a blank value is passed as "Name;", which libcurl sends as "Name:".
 * Returns NULL when out of memory. */
static struct curl_slist *header_list(const st_request *rq)
{
    struct curl_slist *l = NULL;
    char *blank = NULL;
    bool ok = true;
    for (size_t h = 0; h < rq->n_headers && ok; h++) {
        const char *line = rq->headers[h];
        const char *colon = strchr(line, ':');
        size_t n = strlen(line);
        if (!colon || header_named(line, n, "Content-Length") ||
            header_named(line, n, "Transfer-Encoding")) {
            continue;
        }
        const char *v = colon + 1;
        while (*v && isspace((unsigned char)*v)) {
            v++;
        }
        if (*v) {
            ok = list_add(&l, line);
            continue;
        }
        size_t nl = (size_t)(colon - line);
        free(blank);
        ok = (blank = malloc(nl + 2)) != NULL;
        if (ok) {
            memcpy(blank, line, nl);
            memcpy(blank + nl, ";", 2);
            ok = list_add(&l, blank);
        }
    }
    free(blank);
    static const char *const stopped[] = {"Accept", "Content-Type", "Expect"};
    for (size_t i = 0; i < sizeof(stopped) / sizeof(stopped[0]) && ok; i++) {
        if (!has_header(rq, stopped[i])) {
            char line[32];
            snprintf(line, sizeof(line), "%s:", stopped[i]);
            ok = list_add(&l, line);
        }
    }
    if (!ok || !l) {
        /* An empty list is never the answer: Accept is always either the plan's or stopped. */
        curl_slist_free_all(l);
        return NULL;
    }
    return l;
}

static int curl_create(st_engine **out, struct ev_loop *loop, const st_engine_cfg *cfg,
                       st_engine_done_fn done, void *worker, char *err, size_t err_len)
{
    static bool global_done = false;
    if (!global_done) {
        /* Workers are created from one thread before any starts, so this is not racy. */
        curl_global_init(CURL_GLOBAL_DEFAULT);
        global_done = true;
    }
    if (cfg->connections < 1 || cfg->n_requests == 0) {
        return st_errf(err, err_len, ST_EINVAL,
                       "curl engine: needs at least one connection and one request");
    }
    if (cfg->http2 && curl_version_info(CURLVERSION_NOW)->version_num < 0x080000) {
        for (size_t i = 0; i < cfg->n_requests; i++) {
            if (strncmp(cfg->requests[i].url, "http://", 7) == 0) {
                /* curl issue 10634, fixed in 8.0: the second request on a reused prior-knowledge
                 * connection fails with a framing error, so results would be mostly errors. */
                snprintf(err, err_len,
                         "--http2 with http:// needs libcurl 8.0 or newer (this one is %s: it fails "
                         "every request after the first on a cleartext HTTP/2 connection); use "
                         "https:// for HTTP/2",
                         curl_version_info(CURLVERSION_NOW)->version);
                return ST_EINVAL;
            }
        }
    }
    st_engine *e = calloc(1, sizeof(*e));
    if (!e) {
        return ST_ENOMEM;
    }
    int rc = ST_ENOMEM;
    e->loop = loop;
    e->cfg = *cfg;
    e->done = done;
    e->worker = worker;
    e->n_slots = cfg->connections;
    e->slots = calloc((size_t)e->n_slots, sizeof(*e->slots));
    e->free_stack = malloc((size_t)e->n_slots * sizeof(int));
    e->headers = calloc(cfg->n_requests, sizeof(*e->headers));
    e->urls = calloc(cfg->n_requests, sizeof(*e->urls));
    e->multi = curl_multi_init();
    if (!e->slots || !e->free_stack || !e->headers || !e->urls || !e->multi) {
        goto fail;
    }
    ev_timer_init(&e->timer, on_timer, 0, 0);
    e->timer.data = e;
    ev_timer_init(&e->defer, on_defer, 0, 0);
    e->defer.data = e;
    curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
    curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);
    curl_multi_setopt(e->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)cfg->connections);
    curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long)cfg->connections);
    for (size_t i = 0; i < cfg->n_requests; i++) {
        st_url u;
        const char *why = NULL;
        int urc = st_url_parse(cfg->requests[i].url, &u, &why);
        if (urc != 0) {
            if (urc == ST_EINVAL) {
                snprintf(err, err_len, "requests[%zu].url: %s", i, why ? why : "invalid");
                rc = ST_EINVAL;
            }
            goto fail;
        }
        e->urls[i] = u.request_url;
        u.request_url = NULL;
        st_url_fini(&u);
        if (!(e->headers[i] = header_list(&cfg->requests[i]))) {
            goto fail;
        }
    }
    for (int i = 0; i < e->n_slots; i++) {
        if ((rc = setup_easy(e, &e->slots[i]))) {
            goto fail;
        }
        e->free_stack[e->n_free++] = e->n_slots - 1 - i;
    }
    *out = e;
    return 0;
fail:
    curl_destroy(e);
    return rc;
}

static int curl_free_slots(st_engine *e)
{
    return e->n_free;
}

static int curl_inflight(st_engine *e)
{
    return e->inflight;
}

static int curl_send(st_engine *e, size_t req_index, uint64_t tag)
{
    if (req_index >= e->cfg.n_requests) {
        return ST_EINVAL;
    }
    if (e->n_free == 0) {
        return ST_EAGAIN;
    }
    slot *s = &e->slots[e->free_stack[--e->n_free]];
    if (s->req != req_index) {
        configure(e, s, req_index);
    }
    if (s->retried) {
        curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, (long)e->cfg.timeout_ms);
        curl_easy_setopt(s->easy, CURLOPT_FRESH_CONNECT, 0L);
        s->retried = false;
    }
    s->busy = true;
    s->tag = tag;
    s->body_bytes = 0;
    s->retry_out = 0;
    s->malformed = false;
    s->te_seen = false;
    s->cl_seen = 0;
    s->no_fd = false;
    s->sent_ns = st_clock_mono_ns();
    e->inflight++;
    if (curl_multi_add_handle(e->multi, s->easy) != CURLM_OK) {
        s->failed_early = true;
        if (!ev_is_active(&e->defer)) {
            ev_timer_set(&e->defer, 0, 0);
            ev_timer_start(e->loop, &e->defer);
        }
    }
    return 0;
}

static void curl_cancel_all(st_engine *e)
{
    for (int i = 0; i < e->n_slots; i++) {
        slot *s = &e->slots[i];
        if (!s->busy) {
            continue;
        }
        if (!s->failed_early) {
            curl_multi_remove_handle(e->multi, s->easy);
        }
        st_result r = {.kind = ST_RES_ABORTED, .sent_ns = s->sent_ns, .req = (uint32_t)s->req};
        r.done_ns = st_clock_mono_ns();
        uint64_t tag = s->tag;
        release(e, s);
        e->done(e->worker, tag, &r);
    }
}

static void curl_destroy(st_engine *e)
{
    if (!e) {
        return;
    }
    /* Handles leave the multi first, then the multi closes its connections, then handles go. */
    for (int i = 0; e->slots && i < e->n_slots; i++) {
        slot *s = &e->slots[i];
        if (s->easy && s->busy && !s->failed_early) {
            curl_multi_remove_handle(e->multi, s->easy);
        }
    }
    if (e->multi) {
        curl_multi_cleanup(e->multi);
    }
    for (int i = 0; e->slots && i < e->n_slots; i++) {
        if (e->slots[i].easy) {
            curl_easy_cleanup(e->slots[i].easy);
        }
    }
    while (e->socks) {
        sock_unlink(e, e->socks);
    }
    if (e->loop) {
        ev_timer_stop(e->loop, &e->timer);
        ev_timer_stop(e->loop, &e->defer);
    }
    if (e->headers) {
        for (size_t i = 0; i < e->cfg.n_requests; i++) {
            curl_slist_free_all(e->headers[i]);
        }
    }
    if (e->urls) {
        for (size_t i = 0; i < e->cfg.n_requests; i++) {
            free(e->urls[i]);
        }
    }
    free(e->urls);
    free(e->headers);
    free(e->slots);
    free(e->free_stack);
    free(e);
}

/* libcurl sends every plan stampede accepts. */
static int curl_applies(const st_plan *plan, char *why, size_t why_len)
{
    (void)plan;
    (void)why;
    (void)why_len;
    return 1;
}

const st_engine_ops st_engine_curl = {
    .name = "curl",
    .applies = curl_applies,
    .create = curl_create,
    .free_slots = curl_free_slots,
    .send = curl_send,
    .inflight = curl_inflight,
    .cancel_all = curl_cancel_all,
    .destroy = curl_destroy,
};
