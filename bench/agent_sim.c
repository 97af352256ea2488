/*
 * stampede-agent-sim - many simulated agents in one process, against a real coordinator.
 *
 * It measures what the coordinator costs to run, not what agents cost: each simulated agent
 * speaks the control protocol exactly as agent/remote.c does (clock pings, Register, an
 * AgentUpdate every heartbeat and whenever a second of stats is ready, READY at the prepared
 * epoch, records re-sent until acknowledged, DONE with last_seq, exit on `done`), but sends no
 * HTTP. Its per-second records look like a real agent's at --agent-rps requests per second:
 * counts with a few errors, and two latency histograms (common/hist.h) drawn from a log-normal
 * around 2 ms with a tail, a few hundred non-zero buckets each, encoded with st_wire_record_build.
 * Drawing hundreds of samples and packing hundreds of varints per agent-second would cost the
 * simulator more CPU than the coordinator it measures (both share this machine), so a pool of such
 * records is drawn and encoded at start-up, and each agent-second picks one of them; updates are
 * assembled from those bytes, and a start-up check proves them equal to protobuf-c's packing.
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

#define CLOCK_WINDOW           16
#define MAX_RECORDS_PER_UPDATE 30
#define EXCHANGE_TIMEOUT_MS    1000
#define PING_TIMEOUT_MS        500
#define CONNECT_DEADLINE_MS    15000
#define SILENCE_MS             3000
#define WAKE_BATCH            256

/* ---- options ------------------------------------------------------------------------------ */

typedef struct sim_opts {
    const char *url;
    const char *token;
    int agents;
    int sockets;
    int agent_rps;
    int threads;
    int variants;
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
    uint8_t *body;   /* pb encoded without seq and second (both 0), see build_update */
    size_t body_len;
} variant;

/* ---- agents ------------------------------------------------------------------------------- */

typedef enum { X_NONE, X_PING, X_REGISTER, X_UPDATE } xkind;

typedef struct pending {
    uint64_t seq;
    uint32_t second;
    uint32_t variant;
} pending;

typedef struct clock_sample {
    int64_t offset_ns;
    uint64_t rtt_ns;
} clock_sample;

typedef struct sim sim;

typedef struct agent {
    pthread_mutex_t mu;
    sim *s;
    uint32_t idx;
    nng_ctx ctx;
    nng_aio *aio;
    bool ctx_open;

    /* The exchange in flight. */
    xkind x;
    bool in_flight, sending;
    uint32_t xgen, wake_gen;
    uint64_t x_sent_ns; /* agent clock when the request left (clock sample) */

    uint64_t instance_id;
    uint32_t agent_id;
    int pings;
    bool registered, finished;
    uint64_t deadline_ns; /* to be registered by */

    clock_sample samples[CLOCK_WINDOW];
    int n_samples, next_sample;
    int64_t offset_ns;
    uint64_t rtt_ns;

    Stampede__AgentState state;
    uint32_t epoch;
    bool prepared, started, stop_applied;
    uint32_t seconds; /* the run's length in whole seconds */
    uint64_t t0_coord, t0_local;
    uint64_t first_send_coord;
    uint32_t next_second;
    uint64_t next_seq, last_seq, acked_seq;
    pending *pend;
    size_t n_pend, cap_pend;
    uint64_t next_update_ns;
    uint64_t last_reply_ns;
    uint32_t heartbeat_ms;
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

/* A realistic agent-second at about rps requests: a few 4xx/5xx, a few timeouts (no latency
 * sample), some late sends, and the corrected latency = the actual one plus the send delay. */
static int variant_build(variant *v, int rps, uint64_t seed, uint32_t second)
{
    if (st_stats_init(&v->s)) {
        return ST_ENOMEM;
    }
    uint64_t x = seed ? seed : 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < 8; i++) {
        rng_next(&x);
    }
    uint64_t n = (uint64_t)(rps * (0.9 + 0.2 * rng_unit(&x)));
    if (n < 1) {
        n = 1;
    }
    st_counts *c = &v->s.c;
    c->http_4xx = n / 200 + (rng_unit(&x) < 0.5);
    c->http_5xx = n / 500 + (rng_unit(&x) < 0.5);
    if (c->http_4xx + c->http_5xx > n) {
        c->http_4xx = c->http_5xx = 0;
    }
    c->ok = n - c->http_4xx - c->http_5xx;
    c->err_timeout = n / 1000;
    c->sent = n + c->err_timeout;
    c->late = n / 400;
    c->inflight = 2 + rng_next(&x) % 4;
    c->bytes_out = c->sent * 96;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t raw = draw_latency_us(&x);
        uint64_t delay = rng_unit(&x) < 0.03 ? (uint64_t)(-1000.0 * log(rng_unit(&x))) : 0;
        st_hist_record(v->s.lat_raw, raw);
        st_hist_record(v->s.lat, raw + delay);
        c->bytes_in += 600 + rng_next(&x) % 300;
    }
    v->s.second = second;
    if (st_wire_record_build(&v->arena, &v->s, 1, &v->pb)) {
        return ST_ENOMEM;
    }
    v->packed = stampede__second_record__get_packed_size(v->pb);
    v->pb->seq = 0;
    v->pb->second = 0;
    v->body_len = stampede__second_record__get_packed_size(v->pb);
    if (!(v->body = malloc(v->body_len ? v->body_len : 1))) {
        return ST_ENOMEM;
    }
    stampede__second_record__pack(v->pb, v->body);
    return 0;
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

/* ---- clock -------------------------------------------------------------------------------- */

static void clock_add(agent *a, uint64_t t1, uint64_t t2, uint64_t t3, uint64_t t4)
{
    if (t4 < t1 || t3 < t2) {
        return;
    }
    uint64_t rtt = (t4 - t1) > (t3 - t2) ? (t4 - t1) - (t3 - t2) : 0;
    int64_t offset = ((int64_t)(t1 - t2) + (int64_t)(t4 - t3)) / 2;
    a->samples[a->next_sample] = (clock_sample){offset, rtt};
    a->next_sample = (a->next_sample + 1) % CLOCK_WINDOW;
    if (a->n_samples < CLOCK_WINDOW) {
        a->n_samples++;
    }
    int best = 0;
    for (int i = 1; i < a->n_samples; i++) {
        if (a->samples[i].rtt_ns < a->samples[best].rtt_ns) {
            best = i;
        }
    }
    a->offset_ns = a->samples[best].offset_ns;
    a->rtt_ns = a->samples[best].rtt_ns;
}

/* ---- building requests -------------------------------------------------------------------- */

/* Before its registration an agent knows no run id, as the real agent. */
static const char *run_id_of(const agent *a)
{
    return a->registered ? a->s->run_id : "";
}

static int pack_msg(agent *a, Stampede__Envelope *env, nng_msg **out)
{
    env->version = ST_PROTOCOL_VERSION;
    env->run_id = (char *)run_id_of(a);
    size_t len = stampede__envelope__get_packed_size(env);
    nng_msg *m;
    if (nng_msg_alloc(&m, len) != 0) {
        return ST_ENOMEM;
    }
    stampede__envelope__pack(env, nng_msg_body(m));
    *out = m;
    return 0;
}

static int build_ping(agent *a, uint64_t now, nng_msg **out)
{
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    Stampede__ClockPing ping = STAMPEDE__CLOCK_PING__INIT;
    env.body_case = STAMPEDE__ENVELOPE__BODY_CLOCK_PING;
    env.clock_ping = &ping;
    ping.agent_ns = now;
    return pack_msg(a, &env, out);
}

static int build_register(agent *a, nng_msg **out)
{
    sim *s = a->s;
    char name[64];
    snprintf(name, sizeof(name), "sim-%05u", a->idx + 1);
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    Stampede__Register reg = STAMPEDE__REGISTER__INIT;
    env.body_case = STAMPEDE__ENVELOPE__BODY_REGISTER;
    env.register_ = &reg;
    reg.token = (char *)s->o.token;
    reg.instance_id = a->instance_id;
    reg.name = name;
    reg.host = s->host;
    reg.pid = (uint32_t)s->pid;
    reg.cores = (uint32_t)st_cli_cpus();
    reg.threads = (uint32_t)s->o.threads;
    reg.version = ST_VERSION;
    reg.task_arn = "";
    reg.availability_zone = "";
    reg.clock_offset_ns = a->offset_ns;
    reg.clock_rtt_ns = a->rtt_ns;
    return pack_msg(a, &env, out);
}

/* The scalar fields of an update; the records are added by the callers. */
static void update_fields(const agent *a, uint64_t now, Stampede__AgentUpdate *up)
{
    up->agent_id = a->agent_id;
    up->instance_id = a->instance_id;
    up->epoch = a->epoch;
    up->state = a->state;
    up->clock_offset_ns = a->offset_ns;
    up->clock_rtt_ns = a->rtt_ns;
    up->first_send_coord_ns = a->first_send_coord;
    up->error = "";
    up->last_seq = a->state == STAMPEDE__AGENT_STATE__AGENT_DONE ? a->last_seq : 0;
    up->sent_agent_ns = now;
}

static size_t update_n_records(const agent *a)
{
    return a->n_pend < MAX_RECORDS_PER_UPDATE ? a->n_pend : MAX_RECORDS_PER_UPDATE;
}

/* The update as protobuf-c packs it from structs (what remote.c sends). Used to check
 * build_update's bytes. On 0 the caller frees *buf. */
static int pack_update_reference(const agent *a, uint64_t now, uint8_t **buf, size_t *len)
{
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    Stampede__AgentUpdate up = STAMPEDE__AGENT_UPDATE__INIT;
    Stampede__SecondRecord recs[MAX_RECORDS_PER_UPDATE];
    Stampede__SecondRecord *ptrs[MAX_RECORDS_PER_UPDATE];
    env.version = ST_PROTOCOL_VERSION;
    env.run_id = (char *)run_id_of(a);
    env.body_case = STAMPEDE__ENVELOPE__BODY_UPDATE;
    env.update = &up;
    update_fields(a, now, &up);
    size_t n = update_n_records(a);
    for (size_t i = 0; i < n; i++) {
        recs[i] = *a->s->pool[a->pend[i].variant].pb;
        recs[i].seq = a->pend[i].seq;
        recs[i].second = a->pend[i].second;
        ptrs[i] = &recs[i];
    }
    up.records = n ? ptrs : NULL;
    up.n_records = n;
    return st_wire_pack(&env, buf, len);
}

/* Protobuf wire format, for the records encoded once at start-up. */
#define TAG_RECORD_SEQ      0x08 /* SecondRecord.seq: field 1, varint */
#define TAG_RECORD_SECOND   0x10 /* SecondRecord.second: field 2, varint */
#define TAG_UPDATE_RECORD   0x2a /* AgentUpdate.records: field 5, length-delimited */
#define TAG_ENVELOPE_UPDATE 0x72 /* Envelope.update: field 14, length-delimited */

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static size_t record_len(const pending *p, const variant *v)
{
    size_t n = 1 + varint_len(p->seq) + v->body_len;
    if (p->second) {
        n += 1 + varint_len(p->second); /* proto3 leaves a zero out */
    }
    return n;
}

/* Builds the update with the same bytes protobuf-c would give (pack_update_reference), but from
 * records encoded once: packing 30,000 varints per agent-second would cost the simulator more
 * CPU than the coordinator it measures. protobuf-c writes fields in number order, so the update
 * is its fields 1-4, the records (5), then fields 6-11; a zero field is left out either way. */
static int build_update(agent *a, uint64_t now, nng_msg **out)
{
    sim *s = a->s;
    Stampede__AgentUpdate all = STAMPEDE__AGENT_UPDATE__INIT;
    Stampede__AgentUpdate head = STAMPEDE__AGENT_UPDATE__INIT;
    Stampede__AgentUpdate tail = STAMPEDE__AGENT_UPDATE__INIT;
    update_fields(a, now, &all);
    head.agent_id = all.agent_id;
    head.instance_id = all.instance_id;
    head.epoch = all.epoch;
    head.state = all.state;
    tail.clock_offset_ns = all.clock_offset_ns;
    tail.clock_rtt_ns = all.clock_rtt_ns;
    tail.first_send_coord_ns = all.first_send_coord_ns;
    tail.error = all.error;
    tail.sent_agent_ns = all.sent_agent_ns;
    tail.last_seq = all.last_seq;
    size_t n = update_n_records(a);
    size_t rl[MAX_RECORDS_PER_UPDATE];
    size_t body = stampede__agent_update__get_packed_size(&head) +
                  stampede__agent_update__get_packed_size(&tail);
    for (size_t i = 0; i < n; i++) {
        rl[i] = record_len(&a->pend[i], &s->pool[a->pend[i].variant]);
        body += 1 + varint_len(rl[i]) + rl[i];
    }
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    env.version = ST_PROTOCOL_VERSION;
    env.run_id = (char *)run_id_of(a);
    size_t total = stampede__envelope__get_packed_size(&env) + 1 + varint_len(body) + body;
    nng_msg *m;
    if (nng_msg_alloc(&m, total) != 0) {
        return ST_ENOMEM;
    }
    uint8_t *start = nng_msg_body(m), *p = start;
    p += stampede__envelope__pack(&env, p);
    *p++ = TAG_ENVELOPE_UPDATE;
    p = varint_put(p, body);
    p += stampede__agent_update__pack(&head, p);
    for (size_t i = 0; i < n; i++) {
        const pending *pd = &a->pend[i];
        const variant *v = &s->pool[pd->variant];
        *p++ = TAG_UPDATE_RECORD;
        p = varint_put(p, rl[i]);
        *p++ = TAG_RECORD_SEQ;
        p = varint_put(p, pd->seq);
        if (pd->second) {
            *p++ = TAG_RECORD_SECOND;
            p = varint_put(p, pd->second);
        }
        memcpy(p, v->body, v->body_len);
        p += v->body_len;
    }
    p += stampede__agent_update__pack(&tail, p);
    if ((size_t)(p - start) != total) {
        nng_msg_free(m);
        return ST_EPROTO;
    }
    a->x_sent_ns = now;
    *out = m;
    return 0;
}

/* ---- the agent's state machine ------------------------------------------------------------ */

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
    if (a->n_pend == a->cap_pend) {
        size_t cap = a->cap_pend ? a->cap_pend * 2 : 4;
        pending *np = realloc(a->pend, cap * sizeof(*np));
        if (!np) {
            return ST_ENOMEM;
        }
        a->pend = np;
        a->cap_pend = cap;
    }
    uint32_t v = (uint32_t)(((uint64_t)a->idx * 7919u + a->next_second) % (uint64_t)s->o.variants);
    a->pend[a->n_pend++] = (pending){a->next_seq++, a->next_second, v};
    a->next_second++;
    atomic_fetch_add(&s->uses[v], 1);
    atomic_fetch_add(&s->records_created, 1);
    return 0;
}

/* Closes the seconds that ended by now; after the last one the agent is DONE. */
static void close_seconds(agent *a, uint64_t now)
{
    if (!a->started) {
        return;
    }
    if (!a->first_send_coord && now >= a->t0_local) {
        a->first_send_coord = a->t0_coord;
    }
    while (a->next_second < a->seconds && now >= second_due(a, a->next_second)) {
        if (push_record(a)) {
            break;
        }
    }
    if (a->next_second >= a->seconds && a->state != STAMPEDE__AGENT_STATE__AGENT_DONE) {
        a->state = STAMPEDE__AGENT_STATE__AGENT_DONE;
        a->last_seq = a->next_seq - 1;
    }
}

/* When the agent acts next: its heartbeat, or the end of its next second. */
static uint64_t next_wake(const agent *a)
{
    uint64_t at = a->next_update_ns;
    if (a->started && a->next_second < a->seconds) {
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

/* Whether the agent gives up: nothing heard for too long, as the real agent does. */
static bool too_quiet(agent *a, uint64_t now)
{
    if (!a->registered) {
        return now >= a->deadline_ns;
    }
    return now - a->last_reply_ns > (uint64_t)SILENCE_MS * ST_NS_PER_MS;
}

static void after_exchange(agent *a, uint64_t now)
{
    if (a->finished) {
        return;
    }
    if (too_quiet(a, now)) {
        agent_finish(a, &a->s->gave_up);
        return;
    }
    if (!a->registered) {
        schedule(a, now); /* pings and the registration go back to back */
    } else {
        schedule(a, next_wake(a));
    }
}

static void fail_exchange(agent *a, uint64_t now)
{
    atomic_fetch_add(&a->s->failures, 1);
    a->in_flight = false;
    if (a->x == X_UPDATE) {
        a->next_update_ns = now + a->heartbeat_ms * ST_NS_PER_MS;
    }
    after_exchange(a, now);
}

static void apply_prepare(agent *a, const Stampede__Prepare *p)
{
    if (a->started || !p->plan || !p->assignment) {
        return;
    }
    if (a->prepared && p->assignment->epoch == a->epoch) {
        return;
    }
    st_profile prof;
    if (p->plan->closed_loop) {
        a->seconds = (uint32_t)ceil(p->plan->duration_s - 1e-9);
    } else if (st_wire_profile_load(p->assignment->stages, p->assignment->n_stages, &prof) == 0) {
        a->seconds = (uint32_t)ceil(prof.total_s - 1e-9);
        st_profile_fini(&prof);
    } else {
        a->state = STAMPEDE__AGENT_STATE__AGENT_FAILED;
        return;
    }
    a->epoch = p->assignment->epoch;
    a->prepared = true;
    a->state = STAMPEDE__AGENT_STATE__AGENT_READY;
}

static void apply_start(agent *a, const Stampede__Start *st, uint64_t now)
{
    if (!a->prepared || a->started || a->stop_applied ||
        a->state == STAMPEDE__AGENT_STATE__AGENT_FAILED) {
        return;
    }
    a->t0_coord = st->t0_coord_ns;
    a->t0_local = (uint64_t)((int64_t)st->t0_coord_ns + a->offset_ns);
    a->started = true;
    a->state = STAMPEDE__AGENT_STATE__AGENT_RUNNING;
    a->next_second = 0;
    uint64_t none = 0;
    if (atomic_compare_exchange_strong(&a->s->t0_local, &none, a->t0_local)) {
        printf("sim: start: t0 in %.1f ms\n", ((double)a->t0_local - (double)now) / 1e6);
        fflush(stdout);
    }
}

static void apply_stop(agent *a, uint64_t now)
{
    if (a->stop_applied) {
        return;
    }
    a->stop_applied = true;
    if (a->started) {
        /* The load stops now: the second under way is the last one. */
        uint32_t k = now > a->t0_local ? (uint32_t)((now - a->t0_local) / ST_NS_PER_S) + 1 : 0;
        if (k < a->seconds) {
            a->seconds = k;
        }
        a->state = STAMPEDE__AGENT_STATE__AGENT_DRAINING;
    } else if (a->state != STAMPEDE__AGENT_STATE__AGENT_FAILED) {
        a->state = STAMPEDE__AGENT_STATE__AGENT_DONE;
        a->last_seq = a->next_seq - 1;
    }
}

static void drop_acked(agent *a, uint64_t acked)
{
    if (acked <= a->acked_seq) {
        return;
    }
    atomic_fetch_add(&a->s->records_acked, acked - a->acked_seq);
    a->acked_seq = acked;
    size_t k = 0;
    while (k < a->n_pend && a->pend[k].seq <= acked) {
        k++;
    }
    memmove(a->pend, a->pend + k, (a->n_pend - k) * sizeof(*a->pend));
    a->n_pend -= k;
}

static void handle_reply(agent *a, const uint8_t *buf, size_t len, uint64_t now)
{
    sim *s = a->s;
    int err;
    Stampede__Envelope *e =
        st_wire_unpack(buf, len, a->registered ? s->run_id : NULL, &err);
    if (!e) {
        atomic_fetch_add(&s->malformed, 1);
        fail_exchange(a, now);
        return;
    }
    a->in_flight = false;
    a->last_reply_ns = now;
    atomic_fetch_add(&s->exchanges, 1);
    switch (a->x) {
    case X_PING:
        if (e->body_case == STAMPEDE__ENVELOPE__BODY_CLOCK_PONG &&
            e->clock_pong->agent_ns == a->x_sent_ns) {
            clock_add(a, a->x_sent_ns, e->clock_pong->recv_coord_ns, e->clock_pong->send_coord_ns,
                      now);
            a->pings++;
            atomic_fetch_add(&s->clock_pings, 1);
        }
        break;
    case X_REGISTER:
        if (e->body_case == STAMPEDE__ENVELOPE__BODY_REGISTER_REPLY && e->run_id && e->run_id[0]) {
            pthread_mutex_lock(&s->run_mu);
            if (!s->run_id_set) {
                snprintf(s->run_id, sizeof(s->run_id), "%s", e->run_id);
                s->run_id_set = true;
            }
            bool same = strcmp(s->run_id, e->run_id) == 0;
            pthread_mutex_unlock(&s->run_mu);
            if (!same) {
                note_refusal(s, "registration", "answered with another run id");
                agent_finish(a, &s->refused);
                break;
            }
            a->agent_id = e->register_reply->agent_id;
            a->registered = true;
            a->next_update_ns = now; /* the first update goes at once */
            if (atomic_fetch_add(&s->registered, 1) + 1 == s->o.agents) {
                printf("sim: all %d agents registered\n", s->o.agents);
                fflush(stdout);
            }
        } else if (e->body_case == STAMPEDE__ENVELOPE__BODY_REFUSED) {
            note_refusal(s, "registration refused", e->refused->reason);
            agent_finish(a, &s->refused);
        }
        break;
    case X_UPDATE:
        atomic_fetch_add(&s->updates, 1);
        a->next_update_ns = now + a->heartbeat_ms * ST_NS_PER_MS;
        if (e->body_case == STAMPEDE__ENVELOPE__BODY_REPLY) {
            const Stampede__CoordReply *cr = e->reply;
            if (cr->echo_agent_ns == a->x_sent_ns) {
                clock_add(a, a->x_sent_ns, cr->recv_coord_ns, cr->send_coord_ns, now);
            }
            drop_acked(a, cr->acked_seq);
            if (cr->heartbeat_ms >= 50 && cr->heartbeat_ms <= 2000) {
                a->heartbeat_ms = cr->heartbeat_ms;
                a->next_update_ns = now + a->heartbeat_ms * ST_NS_PER_MS;
            }
            if (cr->prepare) {
                apply_prepare(a, cr->prepare);
            }
            if (cr->start) {
                apply_start(a, cr->start, now);
            }
            if (cr->assignment && a->started && cr->assignment->epoch > a->epoch) {
                a->epoch = cr->assignment->epoch;
            }
            if (cr->stop) {
                apply_stop(a, now);
            }
            if (cr->done) {
                agent_finish(a, &s->done);
            }
        } else if (e->body_case == STAMPEDE__ENVELOPE__BODY_REFUSED) {
            note_refusal(s, "update refused", e->refused->reason);
            agent_finish(a, &s->refused);
        }
        break;
    case X_NONE:
        break;
    }
    stampede__envelope__free_unpacked(e, NULL);
    after_exchange(a, now);
}

/* Starts the next exchange. Called with a->mu held; the nng calls happen after it is released. */
static nng_msg *begin_exchange(agent *a, uint64_t now, int *timeout_ms)
{
    nng_msg *m = NULL;
    int rc;
    close_seconds(a, now);
    if (a->pings < a->s->o.clock_pings) {
        a->x = X_PING;
        a->x_sent_ns = now;
        rc = build_ping(a, now, &m);
        *timeout_ms = PING_TIMEOUT_MS;
    } else if (!a->registered) {
        a->x = X_REGISTER;
        a->x_sent_ns = now;
        rc = build_register(a, &m);
        *timeout_ms = EXCHANGE_TIMEOUT_MS;
    } else {
        a->x = X_UPDATE;
        rc = build_update(a, now, &m);
        *timeout_ms = EXCHANGE_TIMEOUT_MS;
    }
    if (rc) {
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
    if (too_quiet(a, now)) {
        agent_finish(a, &s->gave_up);
        pthread_mutex_unlock(&a->mu);
        return;
    }
    int timeout_ms = EXCHANGE_TIMEOUT_MS;
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
        sched_push(a->s, st_clock_mono_ns() + EXCHANGE_TIMEOUT_MS * ST_NS_PER_MS, a->idx, gen,
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
            uint64_t due = s->heap[0].due_ns;
            struct timespec ts = {(time_t)(due / ST_NS_PER_S), (long)(due % ST_NS_PER_S)};
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
        if (variant_build(&s->pool[i], s->o.agent_rps, vs, 0)) {
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
        st_counts c = v->s.c;
        st_counts add = {0};
        add.sent = c.sent * u;
        add.ok = c.ok * u;
        add.http_4xx = c.http_4xx * u;
        add.http_5xx = c.http_5xx * u;
        add.err_connect = c.err_connect * u;
        add.err_timeout = c.err_timeout * u;
        add.err_other = c.err_other * u;
        add.bytes_in = c.bytes_in * u;
        add.bytes_out = c.bytes_out * u;
        add.late = c.late * u;
        add.dropped = c.dropped * u;
        add.inflight = c.inflight * u;
        st_counts_add(&t->c, &add);
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

/* build_update must give the bytes protobuf-c gives; checked on a few updates at start-up. */
static int self_check(sim *s)
{
    pending pend[3] = {{1, 0, 0}, {2, 1, 1 % (uint32_t)s->o.variants}, {300, 299, 0}};
    agent a;
    memset(&a, 0, sizeof(a));
    a.s = s;
    a.pend = pend;
    a.agent_id = 7;
    a.instance_id = 0xfedcba9876543210ULL;
    a.offset_ns = -12345;
    a.rtt_ns = 67890;
    int rc = 0;
    for (int round = 0; round < 3 && rc == 0; round++) {
        a.n_pend = round == 0 ? 0 : round == 1 ? 1 : 3;
        a.registered = round > 0;
        a.state = round == 2 ? STAMPEDE__AGENT_STATE__AGENT_DONE : STAMPEDE__AGENT_STATE__AGENT_IDLE;
        a.last_seq = 300;
        a.epoch = (uint32_t)round;
        a.first_send_coord = round == 2 ? 123456789 : 0;
        uint8_t *ref = NULL;
        size_t ref_len = 0;
        nng_msg *m = NULL;
        if (pack_update_reference(&a, 1000 + (uint64_t)round, &ref, &ref_len) ||
            build_update(&a, 1000 + (uint64_t)round, &m)) {
            rc = ST_ENOMEM;
        } else if (nng_msg_len(m) != ref_len || memcmp(nng_msg_body(m), ref, ref_len) != 0) {
            rc = ST_EPROTO;
        }
        free(ref);
        if (m) {
            nng_msg_free(m);
        }
    }
    return rc;
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
    uint64_t now = st_clock_mono_ns();
    for (int i = 0; i < s->o.agents; i++) {
        agent *a = &s->agents[i];
        a->s = s;
        a->idx = (uint32_t)i;
        pthread_mutex_init(&a->mu, NULL);
        a->next_seq = 1;
        a->heartbeat_ms = 500;
        a->state = STAMPEDE__AGENT_STATE__AGENT_IDLE;
        a->deadline_ns = now + CONNECT_DEADLINE_MS * ST_NS_PER_MS;
        if (getrandom(&a->instance_id, sizeof(a->instance_id), 0) != sizeof(a->instance_id)) {
            a->instance_id = st_clock_wall_ns() ^ ((uint64_t)i << 32) ^ (uint64_t)s->pid;
        }
        int rv = nng_aio_alloc(&a->aio, on_aio, a);
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
        free(a->pend);
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
    {.flag = "clock-pings", .type = ST_SETTING_INT, .where = ST_SETTING_OWN, .arg = "N", .min = 0,
     .max = CLOCK_WINDOW, .has_def = true, .def = 8,
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
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->hcv, &ca);
    pthread_condattr_destroy(&ca);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int code = 1;
    if (pool_build(s)) {
        fprintf(stderr, "stampede-agent-sim: out of memory building the records\n");
        goto out;
    }
    snprintf(s->run_id, sizeof(s->run_id), "20261121T000000Z-5e1fc4ec");
    rc = self_check(s);
    s->run_id[0] = 0;
    if (rc) {
        fprintf(stderr, "stampede-agent-sim: the pre-encoded updates differ from protobuf-c's "
                        "(%s): fix build_update\n", st_strerror(rc));
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
