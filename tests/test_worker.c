/*
 * Tests for the worker's scheduler (agent/worker.c) on a fake clock.
 *
 * The worker is driven by st_worker_advance; its transport is a test double behind the engine ops
 * table that completes each request a fixed latency after its send (or never), so every instant
 * is exact and each test replays the same nanoseconds. What is under test is the worker: when it
 * sends, what it sends, in which order, and how it counts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"
#include "collect.h"
#include "engine.h"
#include "error.h"
#include "plan.h"
#include "split.h"
#include "stats.h"
#include "worker.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0_NS    (100 * ST_NS_PER_S)
#define NEVER    UINT64_MAX
#define MAX_SENT 4096
#define MAX_FLY  64

/* ---- the engine double ---- */

typedef struct sent_req {
    size_t req;
    uint64_t tag; /* the intended instant (0 in a closed loop) */
    uint64_t at_ns;
} sent_req;

typedef struct flight {
    uint64_t tag;
    uint64_t sent_ns;
    uint64_t done_ns;
} flight;

/* One per worker; the test sets it up before st_worker_new and reads it after the run. */
typedef struct fake {
    const uint64_t *now;
    uint64_t latency_ns; /* NEVER: requests never complete by themselves */
    bool refuse;         /* send() says ST_EAGAIN although a slot is free */
    bool no_fd;          /* requests end as ST_RES_LOCAL (no file descriptor) instead of HTTP */
    /* Filled by create. */
    struct ev_loop *loop;
    st_engine_done_fn done;
    void *worker;
    int connections;
    size_t n_requests;
    bool destroyed;
    /* What happened. */
    sent_req sent[MAX_SENT];
    size_t n_sent;
    flight fly[MAX_FLY]; /* in flight, in send order */
    int n_fly;
    int n_aborted;
} fake;

struct st_engine {
    fake *f;
};

/* create() finds its double here: the worker passes only the loop, the config and itself. */
static fake *next_fake;

static int fake_create(st_engine **out, struct ev_loop *loop, const st_engine_cfg *cfg,
                       st_engine_done_fn done, void *worker, char *err, size_t err_len)
{
    (void)err;
    (void)err_len;
    st_engine *e = calloc(1, sizeof(*e));
    if (!e) {
        return ST_ENOMEM;
    }
    e->f = next_fake;
    e->f->loop = loop;
    e->f->done = done;
    e->f->worker = worker;
    e->f->connections = cfg->connections;
    e->f->n_requests = cfg->n_requests;
    *out = e;
    return 0;
}

static int fake_free_slots(st_engine *e)
{
    return e->f->connections - e->f->n_fly;
}

static int fake_send(st_engine *e, size_t req_index, uint64_t tag)
{
    fake *f = e->f;
    if (req_index >= f->n_requests) {
        return ST_EINVAL;
    }
    if (f->refuse || f->n_fly >= f->connections) {
        return ST_EAGAIN;
    }
    assert_true(f->n_sent < MAX_SENT);
    uint64_t now = *f->now;
    f->sent[f->n_sent++] = (sent_req){req_index, tag, now};
    f->fly[f->n_fly++] = (flight){tag, now, f->latency_ns == NEVER ? NEVER : now + f->latency_ns};
    return 0;
}

static int fake_inflight(st_engine *e)
{
    return e->f->n_fly;
}

static void fake_finish(fake *f, int i, st_res_kind kind, uint64_t done_ns)
{
    flight fl = f->fly[i];
    memmove(&f->fly[i], &f->fly[i + 1], (size_t)(f->n_fly - i - 1) * sizeof(f->fly[0]));
    f->n_fly--;
    st_result r = {.kind = kind,
                   .status = kind == ST_RES_HTTP ? 200 : 0,
                   .sent_ns = fl.sent_ns,
                   .done_ns = done_ns,
                   .bytes_in = kind == ST_RES_HTTP ? 100 : 0,
                   .bytes_out = 10};
    f->done(f->worker, fl.tag, &r);
}

static void fake_cancel_all(st_engine *e)
{
    while (e->f->n_fly > 0) {
        e->f->n_aborted++;
        fake_finish(e->f, 0, ST_RES_ABORTED, *e->f->now);
    }
}

static void fake_destroy(st_engine *e)
{
    if (e) {
        e->f->destroyed = true;
        free(e);
    }
}

static int fake_applies(const st_plan *plan, char *why, size_t why_len)
{
    (void)plan;
    (void)why;
    (void)why_len;
    return 1;
}

static const st_engine_ops fake_ops = {
    .name = "fake",
    .applies = fake_applies,
    .create = fake_create,
    .free_slots = fake_free_slots,
    .send = fake_send,
    .inflight = fake_inflight,
    .cancel_all = fake_cancel_all,
    .destroy = fake_destroy,
};

/* Completes, in time order, every request of f due by now. */
static void fake_complete_due(fake *f)
{
    for (;;) {
        int best = -1;
        for (int i = 0; i < f->n_fly; i++) {
            if (f->fly[i].done_ns <= *f->now &&
                (best < 0 || f->fly[i].done_ns < f->fly[best].done_ns)) {
                best = i;
            }
        }
        if (best < 0) {
            return;
        }
        fake_finish(f, best, f->no_fd ? ST_RES_LOCAL : ST_RES_HTTP, f->fly[best].done_ns);
    }
}

static uint64_t fake_next(const fake *f)
{
    uint64_t next = NEVER;
    for (int i = 0; i < f->n_fly; i++) {
        if (f->fly[i].done_ns < next) {
            next = f->fly[i].done_ns;
        }
    }
    return next;
}

/* ---- the fixture: a plan, a collector, and n workers on one fake clock ---- */

#define MAX_WORKERS 4

typedef struct fx {
    uint64_t now;
    st_clock clock;
    st_plan plan;
    st_collector *col;
    int n;
    st_worker *w[MAX_WORKERS];
    fake fk[MAX_WORKERS];
    bool finished[MAX_WORKERS];
    /* The collected seconds, by index. */
    st_counts sec[64];
    uint32_t n_secs;
    st_counts total;
} fx;

static fx *fx_new(const char *plan_json)
{
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->now = T0_NS - ST_NS_PER_S / 2;
    f->clock = (st_clock){st_clock_fake_now, &f->now};
    st_plan_init(&f->plan);
    char err[256] = "";
    assert_int_equal(
        st_plan_parse(&f->plan, plan_json, strlen(plan_json), "plan", err, sizeof(err)), 0);
    assert_int_equal(st_plan_finish(&f->plan, 1, err, sizeof(err)), 0);
    for (int i = 0; i < MAX_WORKERS; i++) {
        f->fk[i].now = &f->now;
        f->fk[i].latency_ns = ST_NS_PER_MS;
    }
    return f;
}

/* Creates n workers sharing the whole schedule (as agent/run.c splits it), each with connections
 * of its own. Set the doubles' latency before. */
static void fx_open(fx *f, int n, int connections, uint64_t drain_ns)
{
    f->n = n;
    assert_int_equal(st_collector_new(&f->col, n, 0), 0);
    st_slice whole;
    assert_int_equal(st_slice_init_all(&whole), 0);
    for (int i = 0; i < n; i++) {
        st_slice mine;
        assert_int_equal(st_slice_subdivide(&whole, (uint64_t)n, (uint64_t)i, &mine), 0);
        st_worker_cfg wc = {
            .index = i,
            .plan = &f->plan,
            .engine = &fake_ops,
            .connections = connections,
            .slice = &mine,
            .t0_ns = T0_NS,
            .drain_ns = drain_ns,
            .clock = &f->clock,
        };
        char err[256] = "";
        next_fake = &f->fk[i];
        assert_int_equal(st_worker_new(&f->w[i], &wc, f->col, err, sizeof(err)), 0);
        st_slice_fini(&mine);
    }
    st_slice_fini(&whole);
}

/* One round at the current instant: the engines deliver what is due, then every worker runs what
 * is due. Returns the next instant anything happens (NEVER: nothing will). */
static uint64_t fx_round(fx *f)
{
    uint64_t next = NEVER;
    for (int i = 0; i < f->n; i++) {
        if (f->finished[i]) {
            continue;
        }
        fake_complete_due(&f->fk[i]);
        uint64_t at = NEVER;
        int rc = st_worker_advance(f->w[i], &at);
        if (rc == ST_ECLOSED) {
            f->finished[i] = true;
            assert_true(f->fk[i].destroyed);
            /* Nothing is left registered on the worker's loop. */
            assert_int_equal(ev_run(f->fk[i].loop, EVRUN_NOWAIT), 0);
            continue;
        }
        assert_int_equal(rc, 0);
        /* The worker never asks to be woken in the past. */
        assert_true(at > f->now);
        uint64_t e = fake_next(&f->fk[i]);
        next = at < next ? at : next;
        next = e < next ? e : next;
    }
    return next;
}

static bool fx_all_finished(const fx *f)
{
    for (int i = 0; i < f->n; i++) {
        if (!f->finished[i]) {
            return false;
        }
    }
    return true;
}

/* Runs from instant to instant until `until` (or until every worker finished). */
static void fx_run_until(fx *f, uint64_t until)
{
    for (;;) {
        uint64_t next = fx_round(f);
        if (fx_all_finished(f) || next > until) {
            if (!fx_all_finished(f) && until != NEVER) {
                f->now = until;
                fx_round(f);
            }
            return;
        }
        f->now = next;
    }
}

/* Runs to the end and takes every second from the collector. */
static void fx_finish(fx *f, uint64_t limit_ns)
{
    fx_run_until(f, limit_ns);
    assert_true(fx_all_finished(f));
    st_stats s;
    assert_int_equal(st_stats_init(&s), 0);
    int rc;
    while ((rc = st_collector_next(f->col, &s, 0)) == 0) {
        assert_true(s.second < 64);
        assert_int_equal(s.second, f->n_secs);
        f->sec[s.second] = s.c;
        f->n_secs = s.second + 1;
        st_counts_add(&f->total, &s.c);
    }
    assert_int_equal(rc, ST_ECLOSED);
    st_stats_fini(&s);
}

static void fx_free(fx *f)
{
    for (int i = 0; i < f->n; i++) {
        st_worker_free(f->w[i]);
    }
    st_collector_free(f->col);
    st_plan_fini(&f->plan);
    free(f);
}

/* Sends of all workers merged, by intended instant. */
static int by_tag(const void *a, const void *b)
{
    uint64_t x = ((const sent_req *)a)->tag, y = ((const sent_req *)b)->tag;
    return x < y ? -1 : x > y;
}

static size_t merged(fx *f, sent_req *out)
{
    size_t n = 0;
    for (int i = 0; i < f->n; i++) {
        memcpy(out + n, f->fk[i].sent, f->fk[i].n_sent * sizeof(*out));
        n += f->fk[i].n_sent;
    }
    qsort(out, n, sizeof(*out), by_tag);
    return n;
}

static void assert_near_ns(uint64_t got, double want_ns, double tol_ns)
{
    if (fabs((double)got - want_ns) > tol_ns) {
        fail_msg("instant %llu ns, expected %.0f ns (+- %.0f)", (unsigned long long)got, want_ns,
                 tol_ns);
    }
}

/* Runs plan_json on n workers of the given connections each to its end (the doubles answer in
 * 1 ms, the drain is 1 s). */
static fx *fx_run(const char *plan_json, int n, int connections)
{
    fx *f = fx_new(plan_json);
    fx_open(f, n, connections, ST_NS_PER_S);
    fx_finish(f, T0_NS + 10 * ST_NS_PER_S);
    return f;
}

/* The n sends s were due evenly: send k at from_ns + k * step_ns (+- tol_ns). */
static void assert_evenly_due(const sent_req *s, size_t n, double from_ns, double step_ns,
                              double tol_ns)
{
    for (size_t k = 0; k < n; k++) {
        assert_near_ns(s[k].tag, from_ns + (double)k * step_ns, tol_ns);
    }
}

/* Seconds 0 .. n - 1 sent want[0] .. want[n - 1] requests. */
static void assert_sent_per_second(const fx *f, const uint64_t *want, uint32_t n)
{
    assert_true(f->n_secs >= n);
    for (uint32_t s = 0; s < n; s++) {
        assert_int_equal(f->sec[s].sent, want[s]);
    }
}

/* ---- open loop ---- */

static void test_worker_constant_rate_due_times(void **state)
{
    (void)state;
    fx *f = fx_new("{\"url\": \"http://127.0.0.1:9/\", \"rate\": 10, \"duration\": 3}");
    fx_open(f, 1, 4, ST_NS_PER_S);
    /* Nothing goes before the start. */
    fx_run_until(f, T0_NS - 1);
    assert_int_equal(f->fk[0].n_sent, 0);
    fx_finish(f, T0_NS + 10 * ST_NS_PER_S);

    assert_int_equal(f->fk[0].n_sent, 30);
    for (size_t k = 0; k < 30; k++) {
        /* Request k is due at t0 + k / 10 s and leaves then. */
        assert_near_ns(f->fk[0].sent[k].tag, (double)T0_NS + (double)k * 1e8, 1);
        assert_int_equal(f->fk[0].sent[k].at_ns, f->fk[0].sent[k].tag);
        assert_int_equal(f->fk[0].sent[k].req, 0);
    }
    assert_int_equal(f->n_secs, 4); /* three full seconds and the last, partial one */
    for (int s = 0; s < 3; s++) {
        assert_int_equal(f->sec[s].sent, 10);
        assert_int_equal(f->sec[s].ok, 10);
        assert_int_equal(f->sec[s].late, 0);
        assert_int_equal(f->sec[s].dropped, 0);
    }
    assert_int_equal(f->total.sent, 30);
    assert_int_equal(f->total.ok, 30);
    assert_int_equal(f->total.bytes_in, 3000);
    fx_free(f);
}

static void test_worker_ramp_due_times(void **state)
{
    (void)state;
    /* 0 -> 10 rps over 2 s: N(t) = 10 t^2 / (2 * 2), so request q is due at sqrt(0.4 q) s; then
     * a hold at 10 rps for 1 s: request 10 + j at 2 + j / 10 s. */
    fx *f = fx_run("{\"url\": \"http://127.0.0.1:9/\", \"stages\": [{\"duration\": 2, "
                   "\"target\": 10}, {\"duration\": 1, \"rate\": 10}]}",
                   1, 4);
    assert_int_equal(f->fk[0].n_sent, 20);
    for (size_t q = 0; q < 10; q++) {
        assert_near_ns(f->fk[0].sent[q].tag, (double)T0_NS + sqrt(0.4 * (double)q) * 1e9, 1000);
    }
    assert_evenly_due(f->fk[0].sent + 10, 10, (double)T0_NS + 2e9, 1e8, 1000);
    /* Second 0 holds N(1) = 2.5: requests 0, 1 and 2. */
    assert_sent_per_second(f, (const uint64_t[]){3, 7, 10}, 3);
    fx_free(f);
}

static void test_worker_stages_due_times(void **state)
{
    (void)state;
    /* A hold at 5 rps for 2 s, a step to 20 rps for 1 s. */
    fx *f = fx_run("{\"url\": \"http://127.0.0.1:9/\", \"stages\": [{\"duration\": 2, \"rate\": "
                   "5}, {\"duration\": 1, \"rate\": 20}]}",
                   1, 4);
    assert_int_equal(f->fk[0].n_sent, 30);
    assert_evenly_due(f->fk[0].sent, 10, (double)T0_NS, 0.2e9, 1);
    assert_evenly_due(f->fk[0].sent + 10, 20, (double)T0_NS + 2e9, 0.05e9, 1);
    assert_sent_per_second(f, (const uint64_t[]){5, 5, 20}, 3);
    fx_free(f);
}

static void test_worker_threads_interleave(void **state)
{
    (void)state;
    /* 7 rps over 2 threads for 3 s: exactly 21 requests, each once, at q / 7 s. */
    fx *f = fx_run("{\"url\": \"http://127.0.0.1:9/\", \"rate\": 7, \"duration\": 3}", 2, 2);
    assert_int_equal(f->fk[0].n_sent + f->fk[1].n_sent, 21);
    assert_int_equal(f->fk[0].n_sent, 11);
    assert_int_equal(f->fk[1].n_sent, 10);
    sent_req all[64];
    size_t n = merged(f, all);
    assert_int_equal(n, 21);
    for (size_t q = 0; q < n; q++) {
        assert_near_ns(all[q].tag, (double)T0_NS + (double)q * 1e9 / 7, 1);
        assert_int_equal(all[q].at_ns, all[q].tag);
    }
    /* They take turns: thread 0 sends the even ones. */
    for (size_t k = 0; k < f->fk[0].n_sent; k++) {
        assert_int_equal(f->fk[0].sent[k].tag, all[2 * k].tag);
    }
    assert_int_equal(f->total.sent, 21);
    assert_int_equal(f->total.ok, 21);
    assert_sent_per_second(f, (const uint64_t[]){7, 7, 7}, 3);
    fx_free(f);
}

static void test_worker_backlog_oldest_first_late_and_dropped(void **state)
{
    (void)state;
    /* 10 rps for 2 s over one connection whose requests take 260 ms: request k waits and leaves
     * at 260 k ms (when the previous one is done), 160 k ms after its instant. */
    fx *f = fx_new("{\"url\": \"http://127.0.0.1:9/\", \"rate\": 10, \"duration\": 2, "
                   "\"late_ms\": 200}");
    f->fk[0].latency_ns = 260 * ST_NS_PER_MS;
    fx_open(f, 1, 1, ST_NS_PER_S);
    fx_finish(f, T0_NS + 10 * ST_NS_PER_S);

    assert_int_equal(f->fk[0].n_sent, 8);
    for (size_t k = 0; k < 8; k++) {
        /* Oldest first: the k-th send is request k. */
        assert_int_equal(f->fk[0].sent[k].tag, T0_NS + k * 100 * ST_NS_PER_MS);
        assert_int_equal(f->fk[0].sent[k].at_ns, T0_NS + k * 260 * ST_NS_PER_MS);
    }
    /* Late: more than 200 ms after the instant, so requests 2 .. 7. */
    assert_int_equal(f->sec[0].sent, 4);
    assert_int_equal(f->sec[0].late, 2);
    assert_int_equal(f->sec[1].sent, 4);
    assert_int_equal(f->sec[1].late, 4);
    assert_int_equal(f->total.late, 6);
    /* Requests 8 .. 19 were still waiting at the end: never sent. */
    assert_int_equal(f->total.dropped, 12);
    assert_int_equal(f->total.sent, 8);
    /* The last one, sent at 1.82 s, completed in the drain (at 2.08 s). */
    assert_int_equal(f->total.ok, 8);
    assert_int_equal(f->total.err_other, 0);
    fx_free(f);
}

/* A request the engine could not send for lack of a file descriptor is err_local: never a
 * send, never a target error, and no latency sample. */
static void test_worker_no_fd_is_local_not_sent(void **state)
{
    (void)state;
    fx *f = fx_new("{\"url\": \"http://127.0.0.1:9/\", \"rate\": 10, \"duration\": 2}");
    f->fk[0].latency_ns = ST_NS_PER_MS;
    f->fk[0].no_fd = true;
    fx_open(f, 1, 4, ST_NS_PER_S);
    fx_finish(f, T0_NS + 10 * ST_NS_PER_S);
    assert_int_equal(f->fk[0].n_sent, 20);
    assert_int_equal(f->sec[0].err_local, 10);
    assert_int_equal(f->sec[0].sent, 0);
    assert_int_equal(f->sec[1].err_local, 10);
    assert_int_equal(f->sec[1].sent, 0);
    assert_int_equal(f->total.err_local, 20);
    assert_int_equal(f->total.sent, 0);
    assert_int_equal(f->total.dropped, 0);
    assert_int_equal(f->total.err_connect + f->total.err_other + f->total.ok, 0);
    fx_free(f);
}

static void test_worker_latency_from_intended_instant(void **state)
{
    (void)state;
    /* As above: the corrected latency of request k is 160 k + 260 ms, the uncorrected one 260 ms.
     */
    fx *f = fx_new("{\"url\": \"http://127.0.0.1:9/\", \"rate\": 10, \"duration\": 1}");
    f->fk[0].latency_ns = 260 * ST_NS_PER_MS;
    fx_open(f, 1, 1, ST_NS_PER_S);
    fx_run_until(f, T0_NS + 10 * ST_NS_PER_S);
    assert_true(fx_all_finished(f));
    st_stats s;
    assert_int_equal(st_stats_init(&s), 0);
    st_hist *lat, *raw;
    assert_int_equal(st_hist_new(&lat), 0);
    assert_int_equal(st_hist_new(&raw), 0);
    while (st_collector_next(f->col, &s, 0) == 0) {
        st_hist_merge(lat, s.lat);
        st_hist_merge(raw, s.lat_raw);
    }
    /* Sent at 0, 260, 520, 780 ms (requests 0 .. 3), done 260 ms later each. */
    assert_int_equal(st_hist_count(lat), 4);
    assert_int_equal(st_hist_count(raw), 4);
    assert_true(st_hist_max(raw) >= 259000 && st_hist_max(raw) <= 261000);
    assert_true(st_hist_min(raw) >= 259000);
    assert_true(st_hist_max(lat) >= 739000 && st_hist_max(lat) <= 741000);
    st_hist_free(lat);
    st_hist_free(raw);
    st_stats_fini(&s);
    fx_free(f);
}

static void test_worker_engine_refusing_counts_dropped(void **state)
{
    (void)state;
    fx *f = fx_new("{\"url\": \"http://127.0.0.1:9/\", \"rate\": 5, \"duration\": 1}");
    f->fk[0].refuse = true;
    fx_open(f, 1, 2, ST_NS_PER_S);
    fx_finish(f, T0_NS + 10 * ST_NS_PER_S);
    assert_int_equal(f->fk[0].n_sent, 0);
    assert_int_equal(f->total.sent, 0);
    assert_int_equal(f->total.dropped, 5);
    fx_free(f);
}

static void test_worker_stop_drops_backlog_and_aborts_after_drain(void **state)
{
    (void)state;
    /* One connection whose request never completes: everything after request 0 waits. */
    fx *f = fx_new("{\"url\": \"http://127.0.0.1:9/\", \"rate\": 10, \"duration\": 10}");
    f->fk[0].latency_ns = NEVER;
    fx_open(f, 1, 1, 500 * ST_NS_PER_MS);
    fx_run_until(f, T0_NS + 1050 * ST_NS_PER_MS);
    assert_int_equal(f->fk[0].n_sent, 1);
    st_worker_stop(f->w[0]);
    uint64_t stop_at = f->now;
    fx_round(f);
    /* The drain bound is the only thing left to wait for. */
    uint64_t next = NEVER;
    assert_int_equal(st_worker_advance(f->w[0], &next), 0);
    assert_int_equal(next, stop_at + 500 * ST_NS_PER_MS);
    fx_finish(f, T0_NS + 20 * ST_NS_PER_S);
    assert_int_equal(f->fk[0].n_aborted, 1);
    assert_int_equal(f->total.sent, 1);
    assert_int_equal(f->total.dropped, 10); /* requests 1 .. 10 were due by 1.05 s */
    assert_int_equal(f->total.err_other, 1);
    assert_int_equal(f->total.ok, 0);
    /* Seconds 0 and 1: the run ended in its second second. */
    assert_int_equal(f->n_secs, 2);
    fx_free(f);
}

static void test_worker_past_its_licence_sends_no_backlog(void **state)
{
    (void)state;
    /* 10 rps; sends allowed until 1.25 s. The process is paused from 0.95 s to 4 s: on waking
     * it finds requests 10 .. 39 due, sends none of them, counts 10 .. 12 (due before the
     * licence ended) as dropped, and the rest are not its own any more. */
    fx *f = fx_new("{\"url\": \"http://127.0.0.1:9/\", \"rate\": 10, \"duration\": 10}");
    fx_open(f, 1, 4, 500 * ST_NS_PER_MS);
    st_worker_licence(f->w[0], T0_NS + 1250 * ST_NS_PER_MS);
    fx_run_until(f, T0_NS + 950 * ST_NS_PER_MS);
    assert_int_equal(f->fk[0].n_sent, 10);
    f->now = T0_NS + 4 * ST_NS_PER_S;
    fx_finish(f, T0_NS + 20 * ST_NS_PER_S);
    assert_int_equal(f->fk[0].n_sent, 10);
    assert_int_equal(f->total.sent, 10);
    assert_int_equal(f->total.dropped, 3);
    assert_int_equal(f->total.ok, 10);
    fx_free(f);

    /* A licence extended in time keeps it sending; one that passes while requests wait for a
     * connection drops that backlog too, and nothing after. */
    f = fx_new("{\"url\": \"http://127.0.0.1:9/\", \"rate\": 10, \"duration\": 3}");
    f->fk[0].latency_ns = 250 * ST_NS_PER_MS;
    fx_open(f, 1, 1, ST_NS_PER_S);
    st_worker_licence(f->w[0], T0_NS + 500 * ST_NS_PER_MS);
    fx_run_until(f, T0_NS + 400 * ST_NS_PER_MS);
    st_worker_licence(f->w[0], T0_NS + 1020 * ST_NS_PER_MS);
    fx_finish(f, T0_NS + 20 * ST_NS_PER_S);
    /* One connection, 250 ms each: sends at 0, 250, 500, 750, 1000 ms (requests 0 .. 4); the
     * completion at 1250 ms is past the licence: requests 5 .. 10 (due by 1.02 s) waited and
     * are dropped, 11 .. 29 are not its own. */
    assert_int_equal(f->total.sent, 5);
    assert_int_equal(f->total.dropped, 6);
    for (size_t k = 0; k < f->fk[0].n_sent; k++) {
        assert_true(f->fk[0].sent[k].at_ns < T0_NS + 1020 * ST_NS_PER_MS);
    }
    fx_free(f);
}

/* Without a licence (a standalone agent) nothing changes: the whole profile goes. */
static void test_worker_without_licence_sends_everything(void **state)
{
    (void)state;
    fx *f = fx_new("{\"url\": \"http://127.0.0.1:9/\", \"rate\": 10, \"duration\": 2}");
    fx_open(f, 1, 4, ST_NS_PER_S);
    fx_run_until(f, T0_NS + 500 * ST_NS_PER_MS);
    f->now = T0_NS + 1500 * ST_NS_PER_MS; /* a pause: the backlog goes, late */
    fx_finish(f, T0_NS + 20 * ST_NS_PER_S);
    assert_int_equal(f->total.sent + f->total.dropped, 20);
    assert_int_equal(f->total.dropped, 0);
    fx_free(f);
}

static void test_worker_first_late(void **state)
{
    (void)state;
    fx *f = fx_new("{\"url\": \"http://127.0.0.1:9/\", \"rate\": 10, \"duration\": 1}");
    fx_open(f, 1, 1, ST_NS_PER_S);
    uint64_t late = 0;
    assert_int_equal(st_worker_first_late(f->w[0], &late), ST_EAGAIN);
    /* The owner comes back 3 ms after the start instant. */
    fx_run_until(f, T0_NS - 1);
    f->now = T0_NS + 3 * ST_NS_PER_MS;
    fx_round(f);
    assert_int_equal(st_worker_first_late(f->w[0], &late), 0);
    assert_int_equal(late, 3 * ST_NS_PER_MS);
    fx_finish(f, T0_NS + 10 * ST_NS_PER_S);
    fx_free(f);
}

/* ---- closed loop ---- */

static void test_worker_closed_loop(void **state)
{
    (void)state;
    /* --rate 0: three connections, each sending its next request when the last one is done
     * (10 ms), for 1 s; the mix (weights 1 and 2) is walked in turn. */
    fx *f = fx_new("{\"requests\": [{\"url\": \"http://127.0.0.1:9/a\", \"weight\": 1}, "
                   "{\"url\": \"http://127.0.0.1:9/b\", \"weight\": 2}], \"rate\": 0, "
                   "\"duration\": 1}");
    assert_true(f->plan.closed_loop);
    f->fk[0].latency_ns = 10 * ST_NS_PER_MS;
    fx_open(f, 1, 3, ST_NS_PER_S);
    fx_finish(f, T0_NS + 10 * ST_NS_PER_S);
    assert_int_equal(f->fk[0].n_sent, 300);
    size_t per_req[2] = {0, 0};
    for (size_t k = 0; k < f->fk[0].n_sent; k++) {
        assert_int_equal(f->fk[0].sent[k].tag, 0); /* nothing is intended in a closed loop */
        assert_int_equal(f->fk[0].sent[k].at_ns, T0_NS + (k / 3) * 10 * ST_NS_PER_MS);
        assert_true(f->fk[0].sent[k].req < 2);
        per_req[f->fk[0].sent[k].req]++;
    }
    assert_int_equal(per_req[0], 100);
    assert_int_equal(per_req[1], 200);
    assert_int_equal(f->total.sent, 300);
    assert_int_equal(f->total.ok, 300);
    assert_int_equal(f->total.late, 0);
    assert_int_equal(f->total.dropped, 0);
    fx_free(f);
}

/* ---- the send window ---- */

/* The distinct instants at which f's first worker sent: its wake-ups that sent something. */
static size_t send_instants(const fx *f)
{
    size_t n = 0;
    for (size_t k = 0; k < f->fk[0].n_sent; k++) {
        if (k == 0 || f->fk[0].sent[k].at_ns != f->fk[0].sent[k - 1].at_ns) {
            n++;
        }
    }
    return n;
}

static void test_worker_window_exact_per_second_never_early(void **state)
{
    (void)state;
    /* 1000 rps for 3 s in 7 ms windows (which do not divide a second), answers in 0.5 ms (so
     * that no completion falls on a later request's instant and sends it). */
    fx *f = fx_new("{\"url\": \"http://127.0.0.1:9/\", \"rate\": 1000, \"duration\": 3, "
                   "\"send_window\": \"7ms\", \"late_ms\": 20}");
    f->fk[0].latency_ns = ST_NS_PER_MS / 2;
    fx_open(f, 1, 64, ST_NS_PER_S);
    fx_finish(f, T0_NS + 10 * ST_NS_PER_S);
    assert_int_equal(f->fk[0].n_sent, 3000);
    assert_evenly_due(f->fk[0].sent, 3000, (double)T0_NS, 1e6, 1);
    size_t batched = 0;
    for (size_t k = 0; k < 3000; k++) {
        const sent_req *r = &f->fk[0].sent[k];
        /* Never before its instant, never more than a window after it. */
        assert_true(r->at_ns >= r->tag);
        assert_true(r->at_ns - r->tag < 7 * ST_NS_PER_MS);
        batched += r->at_ns > r->tag;
        /* A batch never crosses the end of a second: each request leaves in its own second. */
        assert_int_equal((r->at_ns - T0_NS) / ST_NS_PER_S, (r->tag - T0_NS) / ST_NS_PER_S);
    }
    /* The window is in use: many requests waited for their batch (the others left on time, on a
     * completion's wake-up or as the first of a window). */
    if (batched < 2000) {
        fail_msg("only %zu of 3000 requests were batched", batched);
    }
    assert_sent_per_second(f, (const uint64_t[]){1000, 1000, 1000}, 3);
    assert_int_equal(f->total.ok, 3000);
    assert_int_equal(f->total.late, 0);
    assert_int_equal(f->total.dropped, 0);
    fx_free(f);
}

static void test_worker_window_one_wake_up_per_window(void **state)
{
    (void)state;
    /* 2000 rps for 1 s; answers at once, so that only the pacing timer sends. */
    static const char *plans[] = {
        "{\"url\": \"http://127.0.0.1:9/\", \"rate\": 2000, \"duration\": 1, \"send_window\": "
        "\"1ms\"}",
        "{\"url\": \"http://127.0.0.1:9/\", \"rate\": 2000, \"duration\": 1, \"send_window\": 0}",
    };
    size_t instants[2];
    for (int i = 0; i < 2; i++) {
        fx *f = fx_new(plans[i]);
        f->fk[0].latency_ns = 0;
        fx_open(f, 1, 64, ST_NS_PER_S);
        fx_finish(f, T0_NS + 10 * ST_NS_PER_S);
        assert_int_equal(f->fk[0].n_sent, 2000);
        assert_int_equal(f->sec[0].sent, 2000);
        instants[i] = send_instants(f);
        fx_free(f);
    }
    /* 1 ms windows: a wake-up every 1 ms (two requests each), one more where a second ends. */
    if (instants[0] < 999 || instants[0] > 1001) {
        fail_msg("%zu wake-ups sent with a 1 ms window", instants[0]);
    }
    /* Window 0: every request on a wake-up of its own. */
    assert_int_equal(instants[1], 2000);
}

static void test_worker_window_zero_sends_at_each_instant(void **state)
{
    (void)state;
    fx *f = fx_run("{\"url\": \"http://127.0.0.1:9/\", \"rate\": 1000, \"duration\": 2, "
                   "\"send_window\": 0}",
                   1, 64);
    assert_int_equal(f->fk[0].n_sent, 2000);
    for (size_t k = 0; k < 2000; k++) {
        assert_int_equal(f->fk[0].sent[k].at_ns, f->fk[0].sent[k].tag);
    }
    assert_sent_per_second(f, (const uint64_t[]){1000, 1000}, 2);
    fx_free(f);
}

static void test_worker_window_batch_stops_at_second_end(void **state)
{
    (void)state;
    /* 5 rps in 350 ms windows: requests at 0, 200, 400, 600 and 800 ms of each second. Wake-ups
     * at 0, 350 (the 200 ms request) and 700 ms (400 and 600); the next would be at 1050 ms, but
     * the 800 ms request's second ends at 1000 ms: it goes just before, and the batch after it
     * starts in the next second (1000 and 1200 a window later, at 1350 ms less 1 ns). */
    fx *f = fx_new("{\"url\": \"http://127.0.0.1:9/\", \"rate\": 5, \"duration\": 3, "
                   "\"send_window\": \"350ms\", \"late_ms\": 1000}");
    f->fk[0].latency_ns = 0; /* only the pacing timer sends */
    fx_open(f, 1, 4, ST_NS_PER_S);
    fx_finish(f, T0_NS + 10 * ST_NS_PER_S);
    assert_int_equal(f->fk[0].n_sent, 15);
    for (size_t k = 0; k < 15; k++) {
        const sent_req *r = &f->fk[0].sent[k];
        assert_true(r->at_ns >= r->tag);
        assert_true(r->at_ns - r->tag < 350 * ST_NS_PER_MS);
        assert_int_equal((r->at_ns - T0_NS) / ST_NS_PER_S, (r->tag - T0_NS) / ST_NS_PER_S);
    }
    assert_int_equal(f->fk[0].sent[1].at_ns, T0_NS + 350 * ST_NS_PER_MS);
    assert_int_equal(f->fk[0].sent[4].at_ns, T0_NS + ST_NS_PER_S - 1);
    assert_int_equal(f->fk[0].sent[5].at_ns, T0_NS + 1350 * ST_NS_PER_MS - 1);
    assert_int_equal(f->fk[0].sent[6].at_ns, T0_NS + 1350 * ST_NS_PER_MS - 1);
    assert_sent_per_second(f, (const uint64_t[]){5, 5, 5}, 3);
    fx_free(f);
}

/* ---- the seam itself ---- */

static void test_worker_real_clock_is_not_driven(void **state)
{
    (void)state;
    fx *f = fx_new("{\"url\": \"http://127.0.0.1:9/\", \"rate\": 10, \"duration\": 1}");
    assert_int_equal(st_collector_new(&f->col, 1, 0), 0);
    st_worker_cfg wc = {
        .plan = &f->plan,
        .engine = &fake_ops,
        .connections = 1,
        .t0_ns = st_clock_mono_ns(),
        .drain_ns = ST_NS_PER_S,
    };
    char err[64];
    st_worker *w = NULL;
    next_fake = &f->fk[0];
    assert_int_equal(st_worker_new(&w, &wc, f->col, err, sizeof(err)), 0);
    uint64_t next;
    assert_int_equal(st_worker_advance(w, &next), ST_ESTATE);
    st_worker_free(w);

    /* And a driven worker has no thread to start. */
    wc.clock = &f->clock;
    assert_int_equal(st_worker_new(&w, &wc, f->col, err, sizeof(err)), 0);
    assert_int_equal(st_worker_start(w), ST_ESTATE);
    st_worker_free(w);
    st_collector_free(f->col);
    f->col = NULL;
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worker_constant_rate_due_times),
        cmocka_unit_test(test_worker_ramp_due_times),
        cmocka_unit_test(test_worker_stages_due_times),
        cmocka_unit_test(test_worker_threads_interleave),
        cmocka_unit_test(test_worker_backlog_oldest_first_late_and_dropped),
        cmocka_unit_test(test_worker_no_fd_is_local_not_sent),
        cmocka_unit_test(test_worker_latency_from_intended_instant),
        cmocka_unit_test(test_worker_engine_refusing_counts_dropped),
        cmocka_unit_test(test_worker_stop_drops_backlog_and_aborts_after_drain),
        cmocka_unit_test(test_worker_past_its_licence_sends_no_backlog),
        cmocka_unit_test(test_worker_without_licence_sends_everything),
        cmocka_unit_test(test_worker_first_late),
        cmocka_unit_test(test_worker_closed_loop),
        cmocka_unit_test(test_worker_window_exact_per_second_never_early),
        cmocka_unit_test(test_worker_window_one_wake_up_per_window),
        cmocka_unit_test(test_worker_window_zero_sends_at_each_instant),
        cmocka_unit_test(test_worker_window_batch_stops_at_second_end),
        cmocka_unit_test(test_worker_real_clock_is_not_driven),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
