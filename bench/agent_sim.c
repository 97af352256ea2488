/*
 * stampede-agent-sim - many simulated agents in one process, against a real coordinator.
 *
 * It measures what the coordinator costs to run, not what agents cost: each simulated agent
 * drives the same session as agent/remote.c (common/session.h: clock pings, Register, an
 * AgentUpdate every heartbeat and whenever a second of stats is ready, READY at the prepared
 * epoch, records re-sent until acknowledged, DONE with last_seq, exit on `done`), but sends no
 * HTTP. Its per-second records look like a real agent's at --agent-rps requests per second:
 * counts with a few errors, and two latency histograms (common/hist.h) drawn from a log-normal
 * around 2 ms with a tail, a few hundred non-zero buckets each, encoded with st_wire_record_build.
 * Drawing hundreds of samples per agent-second would cost the simulator more CPU than the
 * coordinator it measures (both share this machine), so a pool of such records is drawn and
 * packed at start-up, and each agent-second pushes one of those bodies into its session
 * (st_session_push_body); the session sends records packed once, as the real agent does
 * (st_wire_update_pack).
 *
 * Agents are spread over a few REQ sockets (--sockets), many nng contexts each, one aio per
 * agent. One scheduler thread keeps a heap of due instants (wake-ups and exchange deadlines); nng
 * callback threads handle the replies. nng's own timers are left unused (no aio timeouts, no REQ
 * resend): nng keeps timed aios and pending resends in lists it walks linearly, which with 10,000
 * contexts would make the simulator the bottleneck; exchanges time out through the heap instead,
 * like the real agent's 1 s receive timeout, and are then sent again as a new update.
 *
 * Time: agents convert the start instant with the clock offset they measure (minimum-RTT sample),
 * as the real agent does; on loopback it is about 0. The realised start each agent reports is t0
 * itself (nothing is sent), so the summary's start_skew_ms means nothing in this benchmark.
 *
 * At the end it prints what it sent and what was acknowledged, and with --expect writes the
 * totals of every record it created in the summary's JSON shape, for an exact-merge check against
 * the coordinator's --summary.
 */
#include "cli.h"
#include "clock.h"
#include "error.h"
#include "hist.h"
#include "log.h"
#include "profile.h"
#include "protocol.h"
#include "session.h"
#include "settings.h"
#include "stats.h"
#include "summary.h"
#include "wire.h"

#include <errno.h>
#include <math.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define WAKE_BATCH 256

/* ---- options ------------------------------------------------------------------------------ */

typedef struct sim_opts {
    const char *url;
    const char *token;
    int agents;
    int sockets;
    int agent_rps;
    int threads;
    int variants;
    int names; /* request names: > 1 gives each record a per-name part for each */
    int clock_pings;
    double spread_s;
    const char *expect;
    unsigned long long seed;
    int help;
} sim_opts;

/* ---- the record pool ---------------------------------------------------------------------- */

typedef struct variant {
    st_stats s;
    st_arena arena;
    Stampede__SecondRecord *pb;
    size_t packed;   /* encoded size, for the report */
    uint8_t *body;   /* pb encoded without seq and second (st_wire_record_body_pack) */
    size_t body_len;
} variant;

/* ---- agents ------------------------------------------------------------------------------- */

typedef struct sim sim;

/* One simulated agent: its session (the protocol) and the seconds its load would produce. */
typedef struct agent {
    pthread_mutex_t mu;
    sim *s;
    uint32_t idx;
    nng_ctx ctx;
    nng_aio *aio;
    bool ctx_open;
    st_session *ss;

    /* The exchange in flight. */
    st_session_kind x;
    bool in_flight, sending;
    uint32_t xgen, wake_gen;

    bool finished;
    uint32_t seconds; /* the run's length in whole seconds */
    uint64_t t0_local;
    bool first_sent, ended;
    uint32_t next_second;
} agent;

/* ---- the scheduler ------------------------------------------------------------------------ */

typedef enum { EV_WAKE, EV_TIMEOUT } ev_kind;

typedef struct sched_ev {
    uint64_t due_ns;
    uint32_t idx;
    uint32_t gen;
    ev_kind kind;
} sched_ev;

struct sim {
    sim_opts o;
    nng_socket *socks;
    int n_socks;
    agent *agents;
    variant *pool;
    _Atomic uint64_t *uses; /* records created from each variant */
    char host[256];
    pid_t pid;

    /* The run id, set once under run_mu by the first registration; agents read it only after
     * their own registration, which happens after that (under run_mu too). */
    pthread_mutex_t run_mu;
    char run_id[128];
    bool run_id_set;

    pthread_mutex_t hmu;
    pthread_cond_t hcv;
    sched_ev *heap;
    size_t n_heap, cap_heap;
    bool heap_oom;
    atomic_bool closing;
    pthread_t sched_thr;
    bool sched_started;

    /* Counters. */
    atomic_int registered, refused, done, gave_up, finished;
    _Atomic uint64_t t0_local; /* first start heard, agent clock; 0 until then */
    _Atomic uint64_t records_created, records_acked, exchanges, updates, failures, malformed;
    _Atomic uint64_t clock_pings;
    pthread_mutex_t msg_mu;
    char refusal[256];
};

static volatile sig_atomic_t g_signal = 0;

static void on_signal(int sig)
{
    g_signal = sig;
}

/* ---- random draws ------------------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545F4914F6CDD1DULL;
}

static double rng_unit(uint64_t *x)
{
    return ((double)(rng_next(x) >> 11) + 0.5) / 9007199254740992.0;
}

static double rng_normal(uint64_t *x)
{
    double u1 = rng_unit(x), u2 = rng_unit(x);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* One response's latency from its actual send: log-normal around 2 ms, and a tail of 1% between
 * 10 and 250 ms (Pareto-like). */
static uint64_t draw_latency_us(uint64_t *x)
{
    if (rng_unit(x) < 0.01) {
        double v = 10000.0 / pow(rng_unit(x), 1.0 / 1.5);
        return (uint64_t)(v > 250000.0 ? 250000.0 : v);
    }
    double v = exp(log(2000.0) + 0.35 * rng_normal(x));
    return v < 80.0 ? 80 : (uint64_t)v;
}

/* A realistic part of an agent-second at about rps requests into c, lat and lat_raw: a few
 * 4xx/5xx, a few timeouts (no latency sample), some late sends, and the corrected latency = the
 * actual one plus the send delay (no inflight gauge). */
static void part_fill(st_counts *c, st_hist *lat, st_hist *lat_raw, double rps, uint64_t *xp)
{
    uint64_t x = *xp;
    uint64_t n = (uint64_t)(rps * (0.9 + 0.2 * rng_unit(&x)));
    if (n < 1) {
        n = 1;
    }
    c->http_4xx = n / 200 + (rng_unit(&x) < 0.5);
    c->http_5xx = n / 500 + (rng_unit(&x) < 0.5);
    if (c->http_4xx + c->http_5xx > n) {
        c->http_4xx = c->http_5xx = 0;
    }
    c->ok = n - c->http_4xx - c->http_5xx;
    c->err_timeout = n / 1000;
    c->sent = n + c->err_timeout;
    c->late = n / 400;
    c->bytes_out = c->sent * 96;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t raw = draw_latency_us(&x);
        uint64_t delay = rng_unit(&x) < 0.03 ? (uint64_t)(-1000.0 * log(rng_unit(&x))) : 0;
        st_hist_record(lat_raw, raw);
        st_hist_record(lat, raw + delay);
        c->bytes_in += 600 + rng_next(&x) % 300;
    }
    *xp = x;
}

/* A realistic agent-second at about rps requests, over `names` request names (> 1: a per-name
 * part each, rps / names apiece, adding up to the whole). */
static int variant_build(variant *v, int rps, int names, uint64_t seed, uint32_t second)
{
    if (st_stats_init(&v->s) || (names > 1 && st_stats_names(&v->s, (size_t)names))) {
        return ST_ENOMEM;
    }
    uint64_t x = seed ? seed : 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < 8; i++) {
        rng_next(&x);
    }
    if (names > 1) {
        for (int j = 0; j < names; j++) {
            st_name_stats *p = &v->s.names[j];
            part_fill(&p->c, p->lat, p->lat_raw, (double)rps / names, &x);
            st_counts_add(&v->s.c, &p->c);
            st_hist_merge(v->s.lat, p->lat);
            st_hist_merge(v->s.lat_raw, p->lat_raw);
        }
    } else {
        part_fill(&v->s.c, v->s.lat, v->s.lat_raw, rps, &x);
    }
    v->s.c.inflight = 2 + rng_next(&x) % 4;
    v->s.second = second;
    if (st_wire_record_build(&v->arena, &v->s, 1, &v->pb)) {
        return ST_ENOMEM;
    }
    v->packed = stampede__second_record__get_packed_size(v->pb);
    return st_wire_record_body_pack(v->pb, &v->body, &v->body_len);
}

/* ---- the scheduler's heap ----------------------------------------------------------------- */

static bool ev_before(const sched_ev *a, const sched_ev *b)
{
    return a->due_ns < b->due_ns;
}

/* Adds an event; the caller may hold an agent's lock (the heap lock is always taken last). */
static void sched_push(sim *s, uint64_t due_ns, uint32_t idx, uint32_t gen, ev_kind kind)
{
    pthread_mutex_lock(&s->hmu);
    if (s->n_heap == s->cap_heap) {
        size_t cap = s->cap_heap ? s->cap_heap * 2 : 1024;
        sched_ev *nh = realloc(s->heap, cap * sizeof(*nh));
        if (!nh) {
            s->heap_oom = true;
            pthread_mutex_unlock(&s->hmu);
            return;
        }
        s->heap = nh;
        s->cap_heap = cap;
    }
    size_t i = s->n_heap++;
    sched_ev ev = {due_ns, idx, gen, kind};
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!ev_before(&ev, &s->heap[parent])) {
            break;
        }
        s->heap[i] = s->heap[parent];
        i = parent;
    }
    s->heap[i] = ev;
    if (i == 0) {
        pthread_cond_signal(&s->hcv);
    }
    pthread_mutex_unlock(&s->hmu);
}

static sched_ev sched_pop_locked(sim *s)
{
    sched_ev top = s->heap[0];
    sched_ev last = s->heap[--s->n_heap];
    size_t i = 0, n = s->n_heap;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const sched_ev *best = &last;
        if (l < n && ev_before(&s->heap[l], best)) {
            m = l;
            best = &s->heap[l];
        }
        if (r < n && ev_before(&s->heap[r], best)) {
            m = r;
        }
        if (m == i) {
            break;
        }
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (n > 0) {
        s->heap[i] = last;
    }
    return top;
}

/* ---- the agent ---------------------------------------------------------------------------- */

static void agent_finish(agent *a, atomic_int *why)
{
    if (a->finished) {
        return;
    }
    a->finished = true;
    atomic_fetch_add(why, 1);
    atomic_fetch_add(&a->s->finished, 1);
}

static void note_refusal(sim *s, const char *what, const char *reason)
{
    pthread_mutex_lock(&s->msg_mu);
    if (!s->refusal[0]) {
        snprintf(s->refusal, sizeof(s->refusal), "%s: %s", what,
                 reason && reason[0] ? reason : "no reason given");
    }
    pthread_mutex_unlock(&s->msg_mu);
}

static uint64_t second_due(const agent *a, uint32_t k)
{
    return a->t0_local + (uint64_t)(k + 1) * ST_NS_PER_S;
}

static int push_record(agent *a)
{
    sim *s = a->s;
    uint32_t v = (uint32_t)(((uint64_t)a->idx * 7919u + a->next_second) % (uint64_t)s->o.variants);
    int rc = st_session_push_body(a->ss, a->next_second, s->pool[v].body, s->pool[v].body_len,
                                  NULL);
    if (rc) {
        return rc;
    }
    a->next_second++;
    atomic_fetch_add(&s->uses[v], 1);
    atomic_fetch_add(&s->records_created, 1);
    return 0;
}

/* Closes the seconds that ended by now; after the last one the load has ended. */
static void close_seconds(agent *a, uint64_t now)
{
    if (!st_session_is_started(a->ss)) {
        return;
    }
    if (!a->first_sent && now >= a->t0_local) {
        st_session_first_send(a->ss, a->t0_local); /* nothing is sent: t0 itself */
        a->first_sent = true;
    }
    while (a->next_second < a->seconds && now >= second_due(a, a->next_second)) {
        if (push_record(a)) {
            break;
        }
    }
    if (a->next_second >= a->seconds && !a->ended) {
        st_session_end(a->ss);
        a->ended = true;
    }
}

/* When the agent acts next: its next update, or the end of its next second. */
static uint64_t next_wake(const agent *a)
{
    uint64_t at = st_session_next_due(a->ss);
    if (st_session_is_started(a->ss) && a->next_second < a->seconds) {
        uint64_t due = second_due(a, a->next_second);
        if (due < at) {
            at = due;
        }
    }
    return at;
}

static void schedule(agent *a, uint64_t at_ns)
{
    a->wake_gen++;
    sched_push(a->s, at_ns, a->idx, a->wake_gen, EV_WAKE);
}

static void after_exchange(agent *a, uint64_t now)
{
    if (a->finished) {
        return;
    }
    if (st_session_expired(a->ss)) {
        agent_finish(a, &a->s->gave_up);
        return;
    }
    if (st_session_get_phase(a->ss) != ST_SESSION_REGISTERED) {
        schedule(a, now); /* pings and the registration go back to back */
    } else {
        schedule(a, next_wake(a));
    }
}

static void fail_exchange(agent *a, uint64_t now)
{
    atomic_fetch_add(&a->s->failures, 1);
    a->in_flight = false;
    st_session_lost(a->ss);
    after_exchange(a, now);
}

/* What a prepared agent needs of the plan: how many seconds it runs. */
static void apply_prepare(agent *a, const Stampede__Prepare *p)
{
    st_profile prof;
    if (p->plan->closed_loop) {
        a->seconds = (uint32_t)ceil(p->plan->duration_s - 1e-9);
    } else if (st_wire_profile_load(p->assignment->stages, p->assignment->n_stages, &prof) == 0) {
        a->seconds = (uint32_t)ceil(prof.total_s - 1e-9);
        st_profile_fini(&prof);
    } else {
        st_session_fail(a->ss, "the coordinator's profile cannot be loaded");
        return;
    }
    st_session_prepared(a->ss, p->assignment->epoch);
}

static void apply_start(agent *a, uint64_t t0_local, uint64_t now)
{
    a->t0_local = t0_local;
    a->next_second = 0;
    st_session_started(a->ss);
    uint64_t none = 0;
    if (atomic_compare_exchange_strong(&a->s->t0_local, &none, a->t0_local)) {
        printf("sim: start: t0 in %.1f ms\n", ((double)a->t0_local - (double)now) / 1e6);
        fflush(stdout);
    }
}

/* The load stops now: the second under way is the last one. */
static void apply_stop(agent *a, uint64_t now)
{
    if (!st_session_is_started(a->ss)) {
        return;
    }
    uint32_t k = now > a->t0_local ? (uint32_t)((now - a->t0_local) / ST_NS_PER_S) + 1 : 0;
    if (k < a->seconds) {
        a->seconds = k;
    }
}

static void on_registered(agent *a)
{
    sim *s = a->s;
    const char *run_id = st_session_run_id(a->ss);
    pthread_mutex_lock(&s->run_mu);
    if (!s->run_id_set) {
        snprintf(s->run_id, sizeof(s->run_id), "%s", run_id);
        s->run_id_set = true;
    }
    bool same = strcmp(s->run_id, run_id) == 0;
    pthread_mutex_unlock(&s->run_mu);
    if (!same) {
        note_refusal(s, "registration", "answered with another run id");
        agent_finish(a, &s->refused);
        return;
    }
    if (atomic_fetch_add(&s->registered, 1) + 1 == s->o.agents) {
        printf("sim: all %d agents registered\n", s->o.agents);
        fflush(stdout);
    }
}

static void handle_reply(agent *a, const uint8_t *buf, size_t len, uint64_t now)
{
    sim *s = a->s;
    uint64_t acked = st_session_acked(a->ss);
    int pings = st_session_pings(a->ss);
    st_session_cmds cmds;
    int rc = st_session_reply(a->ss, buf, len, &cmds);
    if (rc == ST_EPROTO || rc == ST_EINVAL) {
        atomic_fetch_add(&s->malformed, 1);
        fail_exchange(a, now);
        return;
    }
    a->in_flight = false;
    atomic_fetch_add(&s->exchanges, 1);
    bool refused = rc == ST_EAUTH || rc == ST_ENOTFOUND;
    switch (a->x) {
    case ST_SESSION_PING:
        if (st_session_pings(a->ss) > pings) {
            atomic_fetch_add(&s->clock_pings, 1);
        }
        break;
    case ST_SESSION_REGISTER:
        if (refused) {
            note_refusal(s, "registration refused", st_session_refusal(a->ss));
            agent_finish(a, &s->refused);
        } else if (st_session_get_phase(a->ss) == ST_SESSION_REGISTERED) {
            on_registered(a);
        }
        break;
    case ST_SESSION_UPDATE:
        atomic_fetch_add(&s->updates, 1);
        if (refused) {
            note_refusal(s, "update refused", st_session_refusal(a->ss));
            agent_finish(a, &s->refused);
            break;
        }
        if (cmds.prepare) {
            apply_prepare(a, cmds.prepare);
        }
        if (cmds.start) {
            apply_start(a, cmds.t0_local_ns, now);
        }
        if (cmds.assignment) {
            st_session_assigned(a->ss, cmds.assignment->epoch); /* no load to re-plan */
        }
        if (cmds.stop) {
            apply_stop(a, now);
        }
        if (cmds.done) {
            agent_finish(a, &s->done);
        }
        atomic_fetch_add(&s->records_acked, st_session_acked(a->ss) - acked);
        break;
    }
    after_exchange(a, now);
}

/* Starts the next exchange. Called with a->mu held; the nng calls happen after it is released. */
static nng_msg *begin_exchange(agent *a, uint64_t now, int *timeout_ms)
{
    close_seconds(a, now);
    uint8_t *buf;
    size_t len;
    if (st_session_request(a->ss, &buf, &len, timeout_ms, &a->x)) {
        return NULL;
    }
    nng_msg *m;
    int rv = nng_msg_alloc(&m, len);
    if (rv == 0) {
        memcpy(nng_msg_body(m), buf, len);
    }
    free(buf);
    if (rv != 0) {
        st_session_lost(a->ss);
        return NULL;
    }
    a->in_flight = true;
    a->sending = true;
    a->xgen++;
    return m;
}

static void agent_wake(agent *a, uint32_t gen)
{
    sim *s = a->s;
    pthread_mutex_lock(&a->mu);
    if (gen != a->wake_gen || a->in_flight || a->finished || atomic_load(&s->closing)) {
        pthread_mutex_unlock(&a->mu);
        return;
    }
    uint64_t now = st_clock_mono_ns();
    if (st_session_expired(a->ss)) {
        agent_finish(a, &s->gave_up);
        pthread_mutex_unlock(&a->mu);
        return;
    }
    int timeout_ms = ST_PROTO_EXCHANGE_TIMEOUT_MS;
    nng_msg *m = begin_exchange(a, now, &timeout_ms);
    if (!m) {
        /* Out of memory: try again a little later. */
        schedule(a, now + 10 * ST_NS_PER_MS);
        pthread_mutex_unlock(&a->mu);
        return;
    }
    sched_push(s, now + (uint64_t)timeout_ms * ST_NS_PER_MS, a->idx, a->xgen, EV_TIMEOUT);
    pthread_mutex_unlock(&a->mu);
    nng_aio_set_msg(a->aio, m);
    nng_ctx_send(a->ctx, a->aio);
}

static void agent_timeout(agent *a, uint32_t gen)
{
    pthread_mutex_lock(&a->mu);
    bool stuck = a->in_flight && a->xgen == gen && !a->finished;
    if (stuck) {
        /* Checked again later in case the cancel found nothing to cancel yet. */
        sched_push(a->s, st_clock_mono_ns() + ST_PROTO_EXCHANGE_TIMEOUT_MS * ST_NS_PER_MS, a->idx, gen,
                   EV_TIMEOUT);
    }
    pthread_mutex_unlock(&a->mu);
    if (stuck) {
        nng_aio_cancel(a->aio);
    }
}

static void on_aio(void *arg)
{
    agent *a = arg;
    sim *s = a->s;
    int rv = nng_aio_result(a->aio);
    pthread_mutex_lock(&a->mu);
    uint64_t now = st_clock_mono_ns();
    if (a->sending) {
        a->sending = false;
        if (rv != 0) {
            if (nng_aio_get_msg(a->aio)) {
                nng_msg_free(nng_aio_get_msg(a->aio));
                nng_aio_set_msg(a->aio, NULL);
            }
            if (!atomic_load(&s->closing)) {
                fail_exchange(a, now);
            }
            pthread_mutex_unlock(&a->mu);
            return;
        }
        nng_aio_set_msg(a->aio, NULL); /* nng owns the request now */
        pthread_mutex_unlock(&a->mu);
        if (!atomic_load(&s->closing)) {
            nng_ctx_recv(a->ctx, a->aio);
        }
        return;
    }
    if (rv != 0) {
        if (!atomic_load(&s->closing)) {
            fail_exchange(a, now);
        }
        pthread_mutex_unlock(&a->mu);
        return;
    }
    nng_msg *m = nng_aio_get_msg(a->aio);
    nng_aio_set_msg(a->aio, NULL);
    if (!atomic_load(&s->closing)) {
        handle_reply(a, nng_msg_body(m), nng_msg_len(m), now);
    }
    pthread_mutex_unlock(&a->mu);
    nng_msg_free(m);
}

static void *sched_main(void *arg)
{
    sim *s = arg;
    sched_ev batch[WAKE_BATCH];
    pthread_mutex_lock(&s->hmu);
    while (!atomic_load(&s->closing)) {
        if (s->n_heap == 0) {
            pthread_cond_wait(&s->hcv, &s->hmu);
            continue;
        }
        uint64_t now = st_clock_mono_ns();
        if (s->heap[0].due_ns > now) {
            struct timespec ts = st_clock_timespec(s->heap[0].due_ns);
            pthread_cond_timedwait(&s->hcv, &s->hmu, &ts);
            continue;
        }
        size_t n = 0;
        while (n < WAKE_BATCH && s->n_heap > 0 && s->heap[0].due_ns <= now) {
            batch[n++] = sched_pop_locked(s);
        }
        pthread_mutex_unlock(&s->hmu);
        for (size_t i = 0; i < n; i++) {
            agent *a = &s->agents[batch[i].idx];
            if (batch[i].kind == EV_WAKE) {
                agent_wake(a, batch[i].gen);
            } else {
                agent_timeout(a, batch[i].gen);
            }
        }
        pthread_mutex_lock(&s->hmu);
    }
    pthread_mutex_unlock(&s->hmu);
    return NULL;
}

/* ---- set-up and tear-down ----------------------------------------------------------------- */

static int pool_build(sim *s)
{
    s->pool = calloc((size_t)s->o.variants, sizeof(*s->pool));
    s->uses = calloc((size_t)s->o.variants, sizeof(*s->uses));
    if (!s->pool || !s->uses) {
        return ST_ENOMEM;
    }
    uint64_t seed = s->o.seed;
    size_t nonzero = 0, bytes = 0;
    for (int i = 0; i < s->o.variants; i++) {
        uint64_t vs = seed + 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1);
        if (variant_build(&s->pool[i], s->o.agent_rps, s->o.names, vs, 0)) {
            return ST_ENOMEM;
        }
        nonzero += st_hist_nonzero(s->pool[i].s.lat) + st_hist_nonzero(s->pool[i].s.lat_raw);
        bytes += s->pool[i].packed;
    }
    printf("sim: %d record variants at about %d rps: %.0f non-zero buckets per histogram, %.0f "
           "bytes per encoded record on average\n",
           s->o.variants, s->o.agent_rps, (double)nonzero / (2.0 * s->o.variants),
           (double)bytes / s->o.variants);
    return 0;
}

static void pool_free(sim *s)
{
    for (int i = 0; s->pool && i < s->o.variants; i++) {
        st_arena_fini(&s->pool[i].arena);
        st_stats_fini(&s->pool[i].s);
        free(s->pool[i].body);
    }
    free(s->pool);
    free(s->uses);
}

typedef struct sum_ctx {
    st_hist *dst;
    uint64_t times;
    int rc;
} sum_ctx;

static int add_scaled(void *arg, uint32_t index, uint64_t count)
{
    sum_ctx *c = arg;
    c->rc = st_hist_add_bucket(c->dst, index, count * c->times);
    return c->rc;
}

/* The sum of every record created, exactly: each variant times its uses, bucket by bucket. */
static int totals_build(sim *s, st_stats *t)
{
    st_hist *hs[2] = {t->lat, t->lat_raw};
    uint64_t mn[2] = {0, 0}, mx[2] = {0, 0}, sum[2] = {0, 0};
    bool any = false;
    for (int i = 0; i < s->o.variants; i++) {
        uint64_t u = atomic_load(&s->uses[i]);
        if (!u) {
            continue;
        }
        const variant *v = &s->pool[i];
        st_counts_add_times(&t->c, &v->s.c, u);
        const st_hist *src[2] = {v->s.lat, v->s.lat_raw};
        for (int k = 0; k < 2; k++) {
            sum_ctx sc = {hs[k], u, 0};
            st_hist_foreach(src[k], add_scaled, &sc);
            if (sc.rc) {
                return sc.rc;
            }
            uint64_t lo = st_hist_min(src[k]), hi = st_hist_max(src[k]);
            mn[k] = !any || lo < mn[k] ? lo : mn[k];
            mx[k] = !any || hi > mx[k] ? hi : mx[k];
            sum[k] += st_hist_sum(src[k]) * u;
        }
        any = true;
    }
    for (int k = 0; any && k < 2; k++) {
        int rc = st_hist_set_stats(hs[k], mn[k], mx[k], sum[k]);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

static int write_expect(sim *s, double duration_s)
{
    st_stats t;
    if (st_stats_init(&t)) {
        return ST_ENOMEM;
    }
    int rc = totals_build(s, &t);
    cJSON *j = NULL;
    char *text = NULL;
    FILE *f = NULL;
    if (rc) {
        goto out;
    }
    st_summary sum = {.total = &t, .duration_s = duration_s, .target_requests = 0};
    rc = ST_ENOMEM;
    if (!(j = st_summary_json(&sum))) {
        goto out;
    }
    cJSON_AddNumberToObject(j, "records", (double)atomic_load(&s->records_created));
    cJSON_AddNumberToObject(j, "records_acked", (double)atomic_load(&s->records_acked));
    cJSON_AddNumberToObject(j, "agents", s->o.agents);
    if (!(text = cJSON_Print(j))) {
        goto out;
    }
    rc = ST_EIO;
    if (!(f = fopen(s->o.expect, "w"))) {
        fprintf(stderr, "stampede-agent-sim: --expect %s: %s\n", s->o.expect, strerror(errno));
        goto out;
    }
    if (fprintf(f, "%s\n", text) < 0 || fclose(f) != 0) {
        f = NULL;
        fprintf(stderr, "stampede-agent-sim: --expect %s: %s\n", s->o.expect, strerror(errno));
        goto out;
    }
    f = NULL;
    rc = 0;
out:
    if (f) {
        fclose(f);
    }
    free(text);
    cJSON_Delete(j);
    st_stats_fini(&t);
    return rc;
}

/* The agent's session: who it is, as a real agent would register, and the sim's clock pings. */
static int agent_session(sim *s, agent *a)
{
    char name[64];
    snprintf(name, sizeof(name), "sim-%05u", a->idx + 1);
    st_session_cfg cfg;
    st_session_cfg_defaults(&cfg);
    if (getrandom(&cfg.instance_id, sizeof(cfg.instance_id), 0) != sizeof(cfg.instance_id)) {
        cfg.instance_id = st_clock_wall_ns() ^ ((uint64_t)a->idx << 32) ^ (uint64_t)s->pid;
    }
    cfg.token = s->o.token;
    cfg.name = name;
    cfg.host = s->host;
    cfg.pid = (uint32_t)s->pid;
    cfg.cores = (uint32_t)st_cli_cpus();
    cfg.threads = (uint32_t)s->o.threads;
    cfg.version = ST_VERSION;
    cfg.clock_pings = s->o.clock_pings;
    return st_session_new(&a->ss, &cfg);
}

static int sim_open(sim *s, char *err, size_t err_len)
{
    s->n_socks = s->o.sockets;
    s->socks = calloc((size_t)s->n_socks, sizeof(*s->socks));
    s->agents = calloc((size_t)s->o.agents, sizeof(*s->agents));
    if (!s->socks || !s->agents) {
        snprintf(err, err_len, "out of memory");
        return ST_ENOMEM;
    }
    for (int i = 0; i < s->n_socks; i++) {
        int rv = nng_req0_open(&s->socks[i]);
        if (rv != 0) {
            snprintf(err, err_len, "cannot open socket %d: %s", i, nng_strerror(rv));
            s->n_socks = i;
            return ST_ESYSTEM;
        }
        nng_socket_set_ms(s->socks[i], NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
        nng_socket_set_ms(s->socks[i], NNG_OPT_RECONNMINT, 50);
        nng_socket_set_ms(s->socks[i], NNG_OPT_RECONNMAXT, 500);
        nng_socket_set_size(s->socks[i], NNG_OPT_RECVMAXSZ, 256u << 20);
    }
    for (int i = 0; i < s->o.agents; i++) {
        agent *a = &s->agents[i];
        int rv;
        a->s = s;
        a->idx = (uint32_t)i;
        pthread_mutex_init(&a->mu, NULL);
        if ((rv = agent_session(s, a))) {
            snprintf(err, err_len, "out of memory");
            return rv;
        }
        rv = nng_aio_alloc(&a->aio, on_aio, a);
        if (rv == 0) {
            rv = nng_ctx_open(&a->ctx, s->socks[i % s->n_socks]);
        }
        if (rv != 0) {
            snprintf(err, err_len, "cannot set up agent %d: %s", i + 1, nng_strerror(rv));
            return ST_ESYSTEM;
        }
        a->ctx_open = true;
        nng_ctx_set_ms(a->ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
        nng_aio_set_timeout(a->aio, NNG_DURATION_INFINITE);
    }
    for (int i = 0; i < s->n_socks; i++) {
        int rv = nng_dial(s->socks[i], s->o.url, NULL, NNG_FLAG_NONBLOCK);
        if (rv != 0) {
            snprintf(err, err_len, "--coordinator %s: %s", s->o.url, nng_strerror(rv));
            return ST_EINVAL;
        }
    }
    return 0;
}

/* No exchange starts after this, and replies that still arrive are dropped: the counters and
 * the record uses are final. */
static void sim_quiesce(sim *s)
{
    atomic_store(&s->closing, true);
    if (s->sched_started) {
        pthread_mutex_lock(&s->hmu);
        pthread_cond_signal(&s->hcv);
        pthread_mutex_unlock(&s->hmu);
        pthread_join(s->sched_thr, NULL);
        s->sched_started = false;
    }
}

typedef struct watchdog {
    atomic_bool done;
    int code;
} watchdog;

/* nng 1.5.2's nng_close was seen to hang here for good once the coordinator had gone (nng fixed
 * close-time deadlocks in later releases): the results are out by then, so the process leaves
 * after a while rather than hang the script that waits for it. */
static void *watchdog_main(void *arg)
{
    watchdog *w = arg;
    for (int i = 0; i < 100 && !atomic_load(&w->done); i++) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (!atomic_load(&w->done)) {
        fprintf(stderr, "stampede-agent-sim: closing the nng sockets did not finish in 10 s; "
                        "leaving without it\n");
        fflush(stdout);
        _exit(w->code);
    }
    return NULL;
}

static void sim_close(sim *s)
{
    sim_quiesce(s);
    for (int i = 0; s->agents && i < s->o.agents; i++) {
        if (s->agents[i].aio) {
            nng_aio_stop(s->agents[i].aio);
        }
    }
    for (int i = 0; s->agents && i < s->o.agents; i++) {
        if (s->agents[i].ctx_open) {
            nng_ctx_close(s->agents[i].ctx);
        }
    }
    for (int i = 0; i < s->n_socks; i++) {
        nng_close(s->socks[i]);
    }
    for (int i = 0; s->agents && i < s->o.agents; i++) {
        agent *a = &s->agents[i];
        if (a->aio) {
            if (nng_aio_get_msg(a->aio)) {
                nng_msg_free(nng_aio_get_msg(a->aio));
            }
            nng_aio_free(a->aio);
        }
        st_session_free(a->ss);
        pthread_mutex_destroy(&a->mu);
    }
    free(s->agents);
    free(s->socks);
    free(s->heap);
}

/* ---- main --------------------------------------------------------------------------------- */

static const st_setting sim_settings[] = {
    {.flag = "coordinator", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "URL",
     .help = "the coordinator (tcp://HOST:PORT)", ST_SETTING_AT(sim_opts, url)},
    {.flag = "token", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "TOKEN",
     .help = "the run's token", ST_SETTING_AT(sim_opts, token)},
    {.flag = "agents", .type = ST_SETTING_INT, .where = ST_SETTING_OWN, .arg = "N", .min = 1,
     .max = 100000, .help = "agents to simulate (1 to 100000)", ST_SETTING_AT(sim_opts, agents)},
    {.flag = "sockets", .type = ST_SETTING_INT, .where = ST_SETTING_OWN, .arg = "K", .min = 1,
     .max = 100000,
     .help = "REQ sockets (TCP connections) the agents share (default: one per 500 agents; K = N "
             "gives every agent its own connection)",
     ST_SETTING_AT(sim_opts, sockets)},
    {.flag = "agent-rps", .type = ST_SETTING_INT, .where = ST_SETTING_OWN, .arg = "R", .min = 1,
     .max = 1000000, .has_def = true, .def = 400,
     .help = "requests per second each record stands for; 400 gives about 350 non-zero buckets "
             "per histogram",
     ST_SETTING_AT(sim_opts, agent_rps)},
    {.flag = "threads", .type = ST_SETTING_INT, .where = ST_SETTING_OWN, .arg = "N", .min = 1,
     .max = 1024, .has_def = true, .def = 1,
     .help = "threads each agent registers with: its weight", ST_SETTING_AT(sim_opts, threads)},
    {.flag = "variants", .type = ST_SETTING_INT, .where = ST_SETTING_OWN, .arg = "V", .min = 1,
     .max = 4096, .has_def = true, .def = 64, .help = "distinct records drawn at start-up",
     ST_SETTING_AT(sim_opts, variants)},
    {.flag = "names", .type = ST_SETTING_INT, .where = ST_SETTING_OWN, .arg = "N", .min = 1,
     .max = 4096, .has_def = true, .def = 1, .help = "request names of the plan (the coordinator's must have as many): "
     "each record carries a per-name part for each when N > 1 (default 1)",
     ST_SETTING_AT(sim_opts, names)},
    {.flag = "clock-pings", .type = ST_SETTING_INT, .where = ST_SETTING_OWN, .arg = "N", .min = 0,
     .max = ST_PROTO_CLOCK_WINDOW, .has_def = true, .def = 8,
     .help = "clock pings before registering, as the agent sends",
     ST_SETTING_AT(sim_opts, clock_pings)},
    {.flag = "spread", .type = ST_SETTING_DURATION, .where = ST_SETTING_OWN, .arg = "TIME",
     .max = ST_PROFILE_MAX_S, .has_def = true, .def = 1,
     .help = "start the agents over this long", ST_SETTING_AT(sim_opts, spread_s)},
    {.flag = "expect", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "FILE",
     .help = "write the totals of every record sent, as summary JSON",
     ST_SETTING_AT(sim_opts, expect)},
    {.flag = "seed", .type = ST_SETTING_UINT, .where = ST_SETTING_OWN, .arg = "N", .min = 0,
     .max = 2147483647, .has_def = true, .def = 1, .help = "seed of the draws",
     ST_SETTING_AT(sim_opts, seed)},
    {.flag = "help", .type = ST_SETTING_BOOL, .where = ST_SETTING_OWN | ST_SETTING_STOP,
     .help = "print this help and exit", ST_SETTING_AT(sim_opts, help)},
};

static const st_settings_group sim_group = {sim_settings,
                                            sizeof(sim_settings) / sizeof(sim_settings[0]), NULL,
                                            NULL};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: stampede-agent-sim --coordinator URL --token TOKEN --agents N [options]\n"
            "\n"
            "Simulates N agents against a coordinator (stampede run --launcher external): they\n"
            "register, heartbeat, report READY, and send one realistic record per second of the\n"
            "run, as real agents would, without sending any HTTP. Exits when every agent is done.\n"
            "\n");
    st_settings_usage(f, &sim_group, 1, ST_SETTING_OWN, 22, 92);
    fprintf(f,
            "\n"
            "Exit codes: 0 every agent was told it is done, 1 some were refused or gave up,\n"
            "2 bad flags.\n");
}

static int parse(int argc, char **argv, sim_opts *o, char *err, size_t err_len)
{
    st_settings_group g = sim_group;
    g.flags = o;
    memset(o, 0, sizeof(*o));
    st_settings_defaults(g.rows, g.n, o, false);
    int first = argc;
    int rc = st_settings_parse_args(argc, argv, &g, 1, ST_SETTING_OWN, "--help", &first, err,
                                    err_len);
    if (rc == 1) {
        usage(stdout);
        return 1;
    }
    if (rc) {
        return rc;
    }
    if (first < argc) {
        snprintf(err, err_len, "unexpected argument \"%s\"", argv[first]);
        return ST_EINVAL;
    }
    if (!o->url || !o->token || !o->agents) {
        snprintf(err, err_len, "--coordinator, --token and --agents are required (see --help)");
        return ST_EINVAL;
    }
    if (!o->sockets) {
        o->sockets = (o->agents + 499) / 500;
    }
    if (o->sockets > o->agents) {
        o->sockets = o->agents;
    }
    return 0;
}

int main(int argc, char **argv)
{
    sim_opts o;
    char err[512] = "";
    int rc = parse(argc, argv, &o, err, sizeof(err));
    if (rc == 1) {
        return 0;
    }
    if (rc) {
        fprintf(stderr, "stampede-agent-sim: %s\n", err);
        return 2;
    }
    st_log_init("stampede-agent-sim", ST_LOG_WARN);
    sim *s = calloc(1, sizeof(*s));
    if (!s) {
        fprintf(stderr, "stampede-agent-sim: out of memory\n");
        return 1;
    }
    s->o = o;
    s->pid = getpid();
    gethostname(s->host, sizeof(s->host) - 1);
    pthread_mutex_init(&s->run_mu, NULL);
    pthread_mutex_init(&s->msg_mu, NULL);
    pthread_mutex_init(&s->hmu, NULL);
    st_clock_cond_init(&s->hcv);

    st_cli_stop_signals(on_signal);

    int code = 1;
    if (pool_build(s)) {
        fprintf(stderr, "stampede-agent-sim: out of memory building the records\n");
        goto out;
    }
    if ((rc = sim_open(s, err, sizeof(err)))) {
        fprintf(stderr, "stampede-agent-sim: %s\n", err);
        code = rc == ST_EINVAL ? 2 : 1;
        goto out;
    }
    printf("sim: %d agents over %d sockets to %s\n", o.agents, s->n_socks, o.url);
    fflush(stdout);
    uint64_t start = st_clock_mono_ns();
    uint64_t spread_ns = (uint64_t)(o.spread_s * 1e9);
    for (int i = 0; i < o.agents; i++) {
        agent *a = &s->agents[i];
        pthread_mutex_lock(&a->mu);
        schedule(a, start + spread_ns * (uint64_t)i / (uint64_t)o.agents);
        pthread_mutex_unlock(&a->mu);
    }
    if (pthread_create(&s->sched_thr, NULL, sched_main, s) != 0) {
        fprintf(stderr, "stampede-agent-sim: cannot start the scheduler thread\n");
        goto out;
    }
    s->sched_started = true;

    /* One progress line per second of the run, in the middle of the second. */
    uint32_t next_line = 0;
    uint64_t last_records = 0;
    while (atomic_load(&s->finished) < o.agents && !g_signal) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        uint64_t t0 = atomic_load(&s->t0_local);
        uint64_t now = st_clock_mono_ns();
        if (t0 && now >= t0 + next_line * ST_NS_PER_S + ST_NS_PER_S / 2) {
            uint64_t acked = atomic_load(&s->records_acked);
            printf("sim: t+%us acked %llu (+%llu) updates %llu failures %llu done %d\n",
                   next_line, (unsigned long long)acked,
                   (unsigned long long)(acked - last_records),
                   (unsigned long long)atomic_load(&s->updates),
                   (unsigned long long)atomic_load(&s->failures), atomic_load(&s->done));
            fflush(stdout);
            last_records = acked;
            next_line = (uint32_t)((now - t0) / ST_NS_PER_S) + 1;
        }
        if (s->heap_oom) {
            fprintf(stderr, "stampede-agent-sim: out of memory in the scheduler\n");
            break;
        }
    }
    double took_s = (double)(st_clock_mono_ns() - start) / 1e9;
    uint64_t created = atomic_load(&s->records_created);
    uint64_t acked = atomic_load(&s->records_acked);
    printf("sim: %d agents: %d registered, %d done, %d refused, %d gave up%s (%.1f s)\n",
           o.agents, atomic_load(&s->registered), atomic_load(&s->done),
           atomic_load(&s->refused), atomic_load(&s->gave_up), g_signal ? ", interrupted" : "",
           took_s);
    printf("sim: records created %llu, acknowledged %llu; exchanges %llu (updates %llu, clock "
           "pings %llu), failed or timed out %llu, malformed replies %llu\n",
           (unsigned long long)created, (unsigned long long)acked,
           (unsigned long long)atomic_load(&s->exchanges),
           (unsigned long long)atomic_load(&s->updates),
           (unsigned long long)atomic_load(&s->clock_pings),
           (unsigned long long)atomic_load(&s->failures),
           (unsigned long long)atomic_load(&s->malformed));
    if (s->refusal[0]) {
        printf("sim: first refusal: %s\n", s->refusal);
    }
    fflush(stdout);
    code = atomic_load(&s->done) == o.agents && acked == created ? 0 : 1;
out:
    sim_quiesce(s);
    if (o.expect && s->pool && code != 2) {
        if (write_expect(s, 0) && code == 0) {
            code = 1;
        }
    }
    static watchdog wd;
    wd.code = code;
    pthread_t wd_thr;
    if (pthread_create(&wd_thr, NULL, watchdog_main, &wd) == 0) {
        pthread_detach(wd_thr);
    }
    sim_close(s);
    atomic_store(&wd.done, true);
    pool_free(s);
    pthread_cond_destroy(&s->hcv);
    pthread_mutex_destroy(&s->hmu);
    pthread_mutex_destroy(&s->msg_mu);
    pthread_mutex_destroy(&s->run_mu);
    free(s);
    return code;
}
