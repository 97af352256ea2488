/*
 * fuzz_http_response: the fast engine (agent/engine_fast.c) reading whatever bytes a server
 * sends back, over a real loopback connection.
 *
 * The first input byte picks the request (bit 0: HEAD instead of GET); the rest is written as the
 * server's answer, then the server closes its side. Oracle besides the sanitizers: the engine
 * reports the request exactly once, within its timeout, and frees its slot.
 */
#include "engine.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct ev_loop *g_loop;
static st_engine *g_engine;
static int g_listen = -1;
static st_request g_reqs[2];
static char g_url[64];
static int g_done;
static st_result g_res;

static void on_done(void *worker, uint64_t tag, const st_result *res)
{
    (void)worker;
    (void)tag;
    g_done++;
    g_res = *res;
}

static void setup(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    g_listen = socket(AF_INET, SOCK_STREAM, 0);
    if (g_listen < 0 || bind(g_listen, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(g_listen, 16) != 0 || getsockname(g_listen, (struct sockaddr *)&a, &alen) != 0) {
        abort();
    }
    snprintf(g_url, sizeof(g_url), "http://127.0.0.1:%d/", ntohs(a.sin_port));
    g_reqs[0] = (st_request){.method = "GET", .url = g_url, .weight = 1};
    g_reqs[1] = (st_request){.method = "HEAD", .url = g_url, .weight = 1};
    g_loop = ev_loop_new(EVFLAG_AUTO);
    st_engine_cfg cfg = {.requests = g_reqs, .n_requests = 2, .connections = 1, .timeout_ms = 1000};
    char err[256];
    if (!g_loop ||
        st_engine_fast.create(&g_engine, g_loop, &cfg, on_done, NULL, err, sizeof(err)) != 0) {
        abort();
    }
}

/* Runs the engine's loop for about ms milliseconds, or until the request is reported. */
static void spin(int ms)
{
    for (int i = 0; i < ms && !g_done; i++) {
        ev_run(g_loop, EVRUN_NOWAIT);
        if (!g_done) {
            poll(NULL, 0, 1);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_loop) {
        setup();
    }
    if (size < 1) {
        return 0;
    }
    g_done = 0;
    if (st_engine_fast.send(g_engine, data[0] & 1, 1) != 0) {
        abort(); /* the previous request freed its slot */
    }
    /* The connection is made (or reused) from the loop; the server takes it and reads the
     * request head. A reused connection was closed by our last answer, so a new one comes. */
    struct pollfd lp = {.fd = g_listen, .events = POLLIN};
    int fd = -1;
    for (int i = 0; i < 2000 && fd < 0; i++) {
        ev_run(g_loop, EVRUN_NOWAIT);
        if (poll(&lp, 1, 1) == 1) {
            fd = accept(g_listen, NULL, NULL);
        }
    }
    if (fd < 0) {
        abort();
    }
    char req[4096];
    size_t have = 0;
    for (int i = 0; i < 2000 && !memmem(req, have, "\r\n\r\n", 4); i++) {
        ev_run(g_loop, EVRUN_NOWAIT);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 1) == 1) {
            ssize_t n = read(fd, req + have, sizeof(req) - have);
            if (n <= 0) {
                break;
            }
            have += (size_t)n;
        }
    }
    size_t off = 1;
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        if (n <= 0) {
            break; /* the engine may close early on a malformed answer */
        }
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    spin(3000);
    close(fd);
    if (g_done != 1 || g_res.kind == ST_RES_ABORTED) {
        abort(); /* every request ends once, by itself, well within its timeout */
    }
    if (st_engine_fast.inflight(g_engine) != 0 || st_engine_fast.free_slots(g_engine) != 1) {
        abort();
    }
    return 0;
}
