/*
 * engine_bench - drives one engine closed-loop against a URL and prints its throughput.
 *
 * Every connection is kept busy: each completion sends the next request at once, for a fixed time,
 * on one thread. It measures the engine alone (no scheduling, no stats pipeline), to compare with
 * `wrk -t1 -cN` on the same core. Usage is printed by -h.
 */
#include "clock.h"
#include "engine.h"
#include "error.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct bench {
    struct ev_loop *loop;
    st_engine *e;
    uint64_t end_ns;
    uint64_t counts[5]; /* by st_res_kind */
    uint64_t ok_2xx;
    uint64_t bytes_in;
    uint64_t latency_ns_sum;
    bool stopping;
} bench;

static void on_done(void *worker, uint64_t tag, const st_result *res)
{
    bench *b = worker;
    (void)tag;
    b->counts[res->kind]++;
    if (res->kind == ST_RES_HTTP && res->status / 100 == 2) {
        b->ok_2xx++;
    }
    b->bytes_in += res->bytes_in;
    b->latency_ns_sum += res->done_ns - res->sent_ns;
    if (!b->stopping && res->done_ns < b->end_ns) {
        (void)st_engine_fast.send(b->e, 0, 0);
    }
}

static void on_end(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    bench *b = w->data;
    b->stopping = true;
    st_engine_fast.cancel_all(b->e);
    ev_break(loop, EVBREAK_ALL);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: engine_bench [-c connections] [-d seconds] [-t timeout_ms] URL\n"
               "  Sends GET URL closed-loop with the fast engine on one thread and prints req/s.\n"
               "  -c connections  kept busy at once (default 50)\n"
               "  -d seconds      how long to run (default 5)\n"
               "  -t timeout_ms   per-request timeout (default 5000)\n");
}

int main(int argc, char **argv)
{
    int conns = 50, timeout_ms = 5000;
    double secs = 5;
    int opt;
    while ((opt = getopt(argc, argv, "c:d:t:h")) != -1) {
        switch (opt) {
        case 'c':
            conns = atoi(optarg);
            break;
        case 'd':
            secs = atof(optarg);
            break;
        case 't':
            timeout_ms = atoi(optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1 || conns < 1 || secs <= 0 || timeout_ms < 1) {
        usage(stderr);
        return 2;
    }
    st_request req = {.method = "GET", .url = argv[optind], .weight = 1};
    st_engine_cfg cfg = {
        .requests = &req, .n_requests = 1, .connections = conns, .timeout_ms = timeout_ms};
    bench b = {.loop = ev_loop_new(EVFLAG_AUTO)};
    if (!b.loop) {
        fprintf(stderr, "engine_bench: cannot create an event loop\n");
        return 1;
    }
    char err[256] = "";
    int rc = st_engine_fast.create(&b.e, b.loop, &cfg, on_done, &b, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "engine_bench: %s: %s\n", st_strerror(rc), err);
        ev_loop_destroy(b.loop);
        return 1;
    }
    ev_timer end;
    ev_timer_init(&end, on_end, secs, 0.);
    end.data = &b;
    ev_timer_start(b.loop, &end);
    uint64_t t0 = st_clock_mono_ns();
    b.end_ns = t0 + (uint64_t)(secs * 1e9);
    while (st_engine_fast.free_slots(b.e) > 0) {
        st_engine_fast.send(b.e, 0, 0);
    }
    ev_run(b.loop, 0);
    double took = (double)(st_clock_mono_ns() - t0) / 1e9;
    st_engine_fast.destroy(b.e);
    ev_loop_destroy(b.loop);

    uint64_t done = b.counts[ST_RES_HTTP], all = 0;
    for (int k = 0; k < 5; k++) {
        all += b.counts[k];
    }
    printf("%llu responses in %.2fs: %.0f req/s, %.1f MB/s in, mean latency %.1f us\n",
           (unsigned long long)done, took, (double)done / took, (double)b.bytes_in / took / 1e6,
           all ? (double)b.latency_ns_sum / 1e3 / (double)all : 0.0);
    printf("2xx %llu, connect %llu, timeout %llu, other %llu, aborted %llu\n",
           (unsigned long long)b.ok_2xx, (unsigned long long)b.counts[ST_RES_CONNECT],
           (unsigned long long)b.counts[ST_RES_TIMEOUT], (unsigned long long)b.counts[ST_RES_OTHER],
           (unsigned long long)b.counts[ST_RES_ABORTED]);
    return 0;
}
