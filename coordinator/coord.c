#include "coord.h"
#include "error.h"
#include "log.h"
#include "protocol.h"
#include "split.h"
#include "summary.h"
#include "wire.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct agent {
    uint32_t id; /* 1-based, the index + 1 */
    uint64_t instance_id;
    char *name, *host, *task_arn, *az, *version;
    uint32_t pid, cores, threads, weight;
    int64_t offset_ns;
    uint64_t rtt_ns;
    uint64_t last_seen_ns;
    Stampede__AgentState state;
    uint32_t epoch; /* the assignment the agent reports it applied */
    char *error;
    bool lost;
    bool counted; /* has a share in the run */
    bool started; /* was told the start instant */
    uint64_t acked_seq;
    uint64_t last_seq;
    int64_t max_second;
    uint64_t first_send_coord_ns;
    /* Its current share. */
    uint32_t share_epoch;
    uint64_t *residues;
    uint32_t n_residues;
    uint64_t from_q;
    st_counts totals;
} agent;

typedef struct slot {
    bool used;
    st_stats s;
} slot;

struct st_coord {
    pthread_mutex_t mu;
    st_coord_cfg cfg;
    const st_plan *plan;
    st_profile profile; /* the plan's, changed by live rate changes */
    st_coord_state state;
    char failure[512];
    int failure_code;
    agent **agents;
    size_t n_agents, cap_agents;
    uint32_t epoch;
    uint64_t period;
    uint64_t created_ns;
    uint64_t deadline_ns;
    uint64_t t0;
    uint64_t end_ns;
    bool stopping;
    uint64_t stopped_at_ns;
    uint32_t next_final;
    slot *slots; /* slots[i] is second next_final + i */
    size_t n_slots;
    st_stats total; /* the seconds handed out, and the late records */
    st_stats view;  /* total plus the seconds still open, built when asked for */
    uint64_t late_records, malformed, duplicates;
};

/* Agents registered and not lost. Lock held. */
static int count_alive(const st_coord *c)
{
    int n = 0;
    for (size_t i = 0; i < c->n_agents; i++) {
        n += !c->agents[i]->lost;
    }
    return n;
}

static uint64_t now_ns(const st_coord *c)
{
    return st_clock_now(c->cfg.clock);
}

void st_coord_cfg_defaults(st_coord_cfg *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->engine = "auto";
    cfg->register_timeout_ns = 30 * ST_NS_PER_S;
    cfg->prepare_timeout_ns = 10 * ST_NS_PER_S;
    cfg->start_lead_ns = ST_PROTO_START_LEAD_MS * ST_NS_PER_MS;
    cfg->silence_ns = ST_PROTO_COORD_SILENCE_MS * ST_NS_PER_MS;
    cfg->grace_ns = ST_PROTO_GRACE_MS * ST_NS_PER_MS;
    cfg->end_timeout_ns = 10 * ST_NS_PER_S;
    cfg->heartbeat_ms = ST_PROTO_HEARTBEAT_MS;
    /* While running, each agent's update carries its new second once a second: a heartbeat as
     * slow as that halves the coordinator's work, and the silence limit still notices a lost
     * agent within 3 s. */
    cfg->run_heartbeat_ms = ST_PROTO_RUN_HEARTBEAT_MS;
}

int st_coord_new(st_coord **out, const st_coord_cfg *cfg)
{
    if (!cfg->plan || !cfg->plan->finished || !cfg->run_id || !cfg->token ||
        cfg->expected_agents < 1 || cfg->heartbeat_ms < ST_PROTO_HEARTBEAT_MIN_MS ||
        cfg->run_heartbeat_ms < ST_PROTO_HEARTBEAT_MIN_MS ||
        cfg->heartbeat_ms > ST_PROTO_HEARTBEAT_MAX_MS ||
        cfg->run_heartbeat_ms > ST_PROTO_HEARTBEAT_MAX_MS) {
        return ST_EINVAL;
    }
    st_coord *c = calloc(1, sizeof(*c));
    if (!c) {
        return ST_ENOMEM;
    }
    c->cfg = *cfg;
    if (!c->cfg.clock) {
        c->cfg.clock = &st_clock_real;
    }
    c->plan = cfg->plan;
    if ((!c->plan->closed_loop && st_profile_copy(&c->profile, &c->plan->profile)) ||
        st_stats_init(&c->total) || st_stats_init(&c->view)) {
        st_profile_fini(&c->profile);
        st_stats_fini(&c->total);
        st_stats_fini(&c->view);
        free(c);
        return ST_ENOMEM;
    }
    pthread_mutex_init(&c->mu, NULL);
    c->state = ST_COORD_WAITING;
    c->created_ns = now_ns(c);
    c->deadline_ns = c->created_ns + cfg->register_timeout_ns;
    *out = c;
    return 0;
}

static void agent_free(agent *a)
{
    if (!a) {
        return;
    }
    free(a->name);
    free(a->host);
    free(a->task_arn);
    free(a->az);
    free(a->version);
    free(a->error);
    free(a->residues);
    free(a);
}

void st_coord_free(st_coord *c)
{
    if (!c) {
        return;
    }
    for (size_t i = 0; i < c->n_agents; i++) {
        agent_free(c->agents[i]);
    }
    free(c->agents);
    for (size_t i = 0; i < c->n_slots; i++) {
        if (c->slots[i].used) {
            st_stats_fini(&c->slots[i].s);
        }
    }
    free(c->slots);
    st_stats_fini(&c->total);
    st_stats_fini(&c->view);
    st_profile_fini(&c->profile);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void fail(st_coord *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fail(st_coord *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->failure, sizeof(c->failure), fmt, ap);
    va_end(ap);
    c->failure_code = code;
    c->state = ST_COORD_FAILED;
    st_error("%s", c->failure);
}

static double total_s(const st_coord *c)
{
    return c->plan->closed_loop ? c->plan->duration_s : c->profile.total_s;
}

/* Agents that carry a share: counted and not lost. */
static bool active(const agent *a)
{
    return a->counted && !a->lost;
}

/* Splits the schedule among the active agents by weight from global request from_q on, as a
 * new epoch. Returns 0 or ST_ENOMEM / ST_EINVAL. */
static int reshare(st_coord *c, uint64_t from_q)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_agents; i++) {
        n += active(c->agents[i]);
    }
    c->epoch++;
    if (n == 0) {
        return 0;
    }
    uint32_t *w = malloc(n * sizeof(*w));
    uint64_t **res = calloc(n, sizeof(*res));
    int rc = ST_ENOMEM;
    if (!w || !res) {
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < c->n_agents; i++) {
        if (active(c->agents[i])) {
            w[k++] = c->agents[i]->weight;
        }
    }
    uint64_t period;
    if ((rc = st_split_weights(w, n, &period, res))) {
        goto out;
    }
    c->period = period;
    k = 0;
    for (size_t i = 0; i < c->n_agents; i++) {
        agent *a = c->agents[i];
        if (!active(a)) {
            continue;
        }
        free(a->residues);
        a->residues = res[k];
        a->n_residues = w[k];
        res[k] = NULL;
        a->from_q = from_q;
        a->share_epoch = c->epoch;
        k++;
    }
out:
    if (res) {
        for (size_t i = 0; i < n; i++) {
            free(res[i]);
        }
    }
    free(res);
    free(w);
    return rc;
}

/* The first global request due at or after coordinator instant at_ns. */
static uint64_t first_q_at(const st_coord *c, uint64_t at_ns)
{
    if (c->plan->closed_loop || at_ns <= c->t0) {
        return 0;
    }
    double n = st_profile_integral(&c->profile, (double)(at_ns - c->t0) / 1e9);
    return (uint64_t)ceil(n - 1e-9);
}

/* How far ahead a new split applies: every agent hears of it with its next update. */
static uint64_t replan_lead_ns(const st_coord *c)
{
    return ((uint64_t)c->cfg.run_heartbeat_ms + ST_PROTO_REPLAN_MARGIN_MS) * ST_NS_PER_MS;
}

/* A new split a little ahead, while running (an agent lost or joined, or a rate change). */
static void replan_ahead(st_coord *c, const char *why)
{
    uint64_t at = now_ns(c) + replan_lead_ns(c);
    if (c->plan->closed_loop) {
        c->epoch++;
        return;
    }
    uint64_t q = first_q_at(c, at);
    if (reshare(c, q) == 0) {
        st_info("re-planned (%s): epoch %u, %zu agents share the load from request %llu", why,
                c->epoch, (size_t)count_alive(c), (unsigned long long)q);
    }
}

/* ---- building replies ---------------------------------------------------------------------- */

static Stampede__Assignment *build_assignment(st_coord *c, st_arena *ar, const agent *a)
{
    Stampede__Assignment *asg = st_arena_alloc(ar, sizeof(*asg));
    if (!asg) {
        return NULL;
    }
    stampede__assignment__init(asg);
    asg->epoch = a->share_epoch;
    if (!c->plan->closed_loop) {
        if (st_wire_stages_build(ar, &c->profile, &asg->stages, &asg->n_stages)) {
            return NULL;
        }
        asg->period = c->period;
        asg->residues = a->residues;
        asg->n_residues = a->n_residues;
        asg->from_q = a->from_q;
    }
    return asg;
}

static int pack_reply(Stampede__Envelope *env, const char *run_id, uint8_t **out, size_t *len)
{
    env->version = ST_PROTOCOL_VERSION;
    env->run_id = (char *)run_id;
    return st_wire_pack(env, out, len);
}

static int refuse(st_coord *c, const char *reason, bool reregister, uint8_t **out, size_t *len)
{
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    Stampede__Refused r = STAMPEDE__REFUSED__INIT;
    env.body_case = STAMPEDE__ENVELOPE__BODY_REFUSED;
    env.refused = &r;
    r.reason = (char *)reason;
    r.reregister = reregister;
    return pack_reply(&env, c->cfg.run_id, out, len);
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

/* Compares without an early exit, so the time taken says nothing about the token. */
static bool token_ok(const char *want, const char *got)
{
    if (!got) {
        return false;
    }
    size_t n = strlen(want), m = strlen(got);
    unsigned char diff = n != m;
    for (size_t i = 0; i < n; i++) {
        diff |= (unsigned char)(want[i] ^ (i < m ? got[i] : 0));
    }
    return diff == 0;
}

static int handle_register(st_coord *c, const Stampede__Register *r, uint8_t **out, size_t *len)
{
    if (!token_ok(c->cfg.token, r->token)) {
        st_warn("refused agent \"%s\" on %s: wrong token", r->name ? r->name : "?",
                r->host ? r->host : "?");
        return refuse(c, "wrong token", false, out, len);
    }
    agent *a = NULL;
    for (size_t i = 0; i < c->n_agents; i++) {
        if (c->agents[i]->instance_id == r->instance_id) {
            a = c->agents[i]; /* a re-sent registration */
            break;
        }
    }
    if (!a) {
        bool running = c->state == ST_COORD_RUNNING && !c->stopping;
        if (c->state != ST_COORD_WAITING && !(running && c->cfg.accept_late_joiners)) {
            st_warn("refused agent \"%s\": the run no longer takes agents", r->name ? r->name : "?");
            return refuse(c, "the run no longer takes agents", false, out, len);
        }
        if (c->n_agents == c->cap_agents) {
            size_t cap = c->cap_agents ? c->cap_agents * 2 : 16;
            agent **na = realloc(c->agents, cap * sizeof(*na));
            if (!na) {
                return ST_ENOMEM;
            }
            c->agents = na;
            c->cap_agents = cap;
        }
        a = calloc(1, sizeof(*a));
        if (!a) {
            return ST_ENOMEM;
        }
        a->id = (uint32_t)c->n_agents + 1;
        a->instance_id = r->instance_id;
        a->name = dup_or_empty(r->name);
        a->host = dup_or_empty(r->host);
        a->task_arn = dup_or_empty(r->task_arn);
        a->az = dup_or_empty(r->availability_zone);
        a->version = dup_or_empty(r->version);
        a->pid = r->pid;
        a->cores = r->cores;
        a->threads = r->threads;
        a->weight = c->cfg.plan_threads > 0 ? (uint32_t)c->cfg.plan_threads
                                            : (r->threads >= 1 && r->threads <= 1024 ? r->threads : 1);
        a->offset_ns = r->clock_offset_ns;
        a->rtt_ns = r->clock_rtt_ns;
        a->max_second = -1;
        a->last_seen_ns = now_ns(c);
        c->agents[c->n_agents++] = a;
        st_info("agent %u \"%s\" registered from %s (%u threads, clock offset %.3f ms, rtt %.3f ms)",
                a->id, a->name, a->host, a->weight, (double)a->offset_ns / 1e6,
                (double)a->rtt_ns / 1e6);
        if (running) {
            a->counted = true;
            replan_ahead(c, "an agent joined");
        }
    }
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    Stampede__RegisterReply rr = STAMPEDE__REGISTER_REPLY__INIT;
    env.body_case = STAMPEDE__ENVELOPE__BODY_REGISTER_REPLY;
    env.register_reply = &rr;
    rr.agent_id = a->id;
    return pack_reply(&env, c->cfg.run_id, out, len);
}

/* The slot of second (>= next_final), created on first use; NULL when out of memory. */
static slot *slot_for(st_coord *c, uint32_t second)
{
    size_t off = second - c->next_final;
    if (off >= c->n_slots) {
        slot *ns = realloc(c->slots, (off + 1) * sizeof(*ns));
        if (!ns) {
            return NULL;
        }
        memset(ns + c->n_slots, 0, (off + 1 - c->n_slots) * sizeof(*ns));
        c->slots = ns;
        c->n_slots = off + 1;
    }
    slot *sl = &c->slots[off];
    if (!sl->used) {
        if (st_stats_init(&sl->s)) {
            return NULL;
        }
        sl->used = true;
        sl->s.second = second;
    }
    return sl;
}

/* Takes the records of an update in sequence order, each exactly once. */
static void take_records(st_coord *c, agent *a, const Stampede__AgentUpdate *u,
                         const unsigned char *valid)
{
    for (size_t i = 0; i < u->n_records; i++) {
        const Stampede__SecondRecord *r = u->records[i];
        if (!r || r->seq <= a->acked_seq) {
            c->duplicates++;
            continue;
        }
        if (r->seq != a->acked_seq + 1) {
            /* A gap: wait for the agent to send the missing one first (it sends oldest first). */
            break;
        }
        a->acked_seq = r->seq;
        if (!valid[i]) {
            c->malformed++;
            st_warn("agent %u sent a malformed record (seq %llu): dropped", a->id,
                    (unsigned long long)r->seq);
            continue;
        }
        if (r->second >= c->next_final && r->second - c->next_final > ST_PROTO_SECOND_HORIZON) {
            /* No second of this run: dropped before it reaches the total or the agent's counts,
             * as the malformed count says. */
            c->malformed++;
            st_warn("agent %u sent a record for second %u, far beyond the run: dropped", a->id,
                    r->second);
            continue;
        }
        const Stampede__Counts *k = r->counts;
        a->totals.sent += k->sent;
        a->totals.ok += k->ok;
        a->totals.http_4xx += k->http_4xx;
        a->totals.http_5xx += k->http_5xx;
        a->totals.err_connect += k->err_connect;
        a->totals.err_timeout += k->err_timeout;
        a->totals.err_other += k->err_other;
        if ((int64_t)r->second > a->max_second) {
            a->max_second = r->second;
        }
        /* Checked once above, merged once: into its second, which joins the total when it is
         * handed out, or straight into the total when its second is gone already. */
        slot *sl = r->second >= c->next_final ? slot_for(c, r->second) : NULL;
        if (sl) {
            st_wire_record_apply(r, &sl->s);
        } else {
            c->late_records++;
            st_wire_record_apply(r, &c->total);
        }
    }
}

static bool agent_complete(const agent *a)
{
    return a->state == STAMPEDE__AGENT_STATE__AGENT_DONE && a->acked_seq >= a->last_seq;
}

static int handle_update(st_coord *c, const Stampede__AgentUpdate *u,
                         const unsigned char *valid, uint64_t recv_ns, uint8_t **out, size_t *len)
{
    agent *a = u->agent_id >= 1 && u->agent_id <= c->n_agents ? c->agents[u->agent_id - 1] : NULL;
    if (!a || a->instance_id != u->instance_id) {
        return refuse(c, "unknown agent", true, out, len);
    }
    if (a->lost) {
        return refuse(c, "this agent was declared lost and its share moved to others", false, out,
                      len);
    }
    a->last_seen_ns = recv_ns;
    a->offset_ns = u->clock_offset_ns;
    a->rtt_ns = u->clock_rtt_ns;
    if (u->first_send_coord_ns && !a->first_send_coord_ns) {
        a->first_send_coord_ns = u->first_send_coord_ns;
    }
    if (u->state != a->state && u->state == STAMPEDE__AGENT_STATE__AGENT_FAILED) {
        st_error("agent %u \"%s\" failed: %s", a->id, a->name, u->error ? u->error : "");
        free(a->error);
        a->error = dup_or_empty(u->error);
    }
    a->state = u->state;
    a->epoch = u->epoch;
    if (u->state == STAMPEDE__AGENT_STATE__AGENT_DONE) {
        a->last_seq = u->last_seq;
    }
    if (c->state != ST_COORD_DONE && c->state != ST_COORD_FAILED) {
        /* After the end the totals are being reported: nothing changes them any more. */
        take_records(c, a, u, valid);
    }

    st_arena ar = {0};
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    Stampede__CoordReply rep = STAMPEDE__COORD_REPLY__INIT;
    Stampede__Prepare prep = STAMPEDE__PREPARE__INIT;
    Stampede__Start start = STAMPEDE__START__INIT;
    Stampede__Stop stop = STAMPEDE__STOP__INIT;
    env.body_case = STAMPEDE__ENVELOPE__BODY_REPLY;
    env.reply = &rep;
    rep.acked_seq = a->acked_seq;
    rep.heartbeat_ms = c->state == ST_COORD_RUNNING && !c->stopping ? c->cfg.run_heartbeat_ms
                                                                    : c->cfg.heartbeat_ms;
    rep.echo_agent_ns = u->sent_agent_ns;
    rep.recv_coord_ns = recv_ns;
    int rc = 0;
    bool ending = c->state == ST_COORD_DONE || c->state == ST_COORD_FAILED;
    if (a->counted && !ending && u->state != STAMPEDE__AGENT_STATE__AGENT_FAILED) {
        bool agent_running = u->state == STAMPEDE__AGENT_STATE__AGENT_RUNNING ||
                             u->state == STAMPEDE__AGENT_STATE__AGENT_DRAINING;
        if (!a->started && !agent_running && (u->state == STAMPEDE__AGENT_STATE__AGENT_IDLE ||
                                              u->epoch != a->share_epoch)) {
            prep.assignment = build_assignment(c, &ar, a);
            if (!prep.assignment || st_wire_plan_build(&ar, c->plan, c->cfg.engine, &prep.plan)) {
                rc = ST_ENOMEM;
                goto out;
            }
            if (c->cfg.plan_threads > 0) {
                prep.plan->threads = (uint32_t)c->cfg.plan_threads;
            } else {
                prep.plan->threads = 0;
            }
            rep.prepare = &prep;
        } else if (agent_running && u->epoch < a->share_epoch) {
            if (!(rep.assignment = build_assignment(c, &ar, a))) {
                rc = ST_ENOMEM;
                goto out;
            }
        }
        if (c->t0 && u->state == STAMPEDE__AGENT_STATE__AGENT_READY &&
            u->epoch == a->share_epoch && !c->stopping) {
            start.t0_coord_ns = c->t0;
            rep.start = &start;
            a->started = true;
        }
        if (c->stopping) {
            rep.stop = &stop;
        }
    }
    /* The agent may exit once the coordinator holds all it will get from it. */
    rep.done = ending || agent_complete(a) || u->state == STAMPEDE__AGENT_STATE__AGENT_FAILED;
    rep.send_coord_ns = now_ns(c);
    rc = pack_reply(&env, c->cfg.run_id, out, len);
out:
    st_arena_fini(&ar);
    return rc;
}

int st_coord_handle(st_coord *c, const uint8_t *req, size_t len, uint8_t **reply,
                    size_t *reply_len)
{
    uint64_t recv_ns = now_ns(c);
    *reply = NULL;
    int err;
    Stampede__Envelope *e = st_wire_unpack(req, len, NULL, &err);
    /* Records are checked before the lock: that is most of the work of taking them, and it needs
     * nothing shared. */
    unsigned char *valid = NULL;
    if (e && e->body_case == STAMPEDE__ENVELOPE__BODY_UPDATE && e->update->n_records > 0) {
        valid = malloc(e->update->n_records);
        if (!valid) {
            stampede__envelope__free_unpacked(e, NULL);
            return ST_ENOMEM;
        }
        for (size_t i = 0; i < e->update->n_records; i++) {
            valid[i] = st_wire_record_check(e->update->records[i]) == 0;
        }
    }
    pthread_mutex_lock(&c->mu);
    int rc;
    if (!e) {
        c->malformed++;
        rc = ST_EPROTO;
        goto out;
    }
    bool pre_run = e->body_case == STAMPEDE__ENVELOPE__BODY_CLOCK_PING ||
                   e->body_case == STAMPEDE__ENVELOPE__BODY_REGISTER;
    if (!pre_run && (!e->run_id || strcmp(e->run_id, c->cfg.run_id) != 0)) {
        c->malformed++;
        rc = refuse(c, "another run", false, reply, reply_len);
        goto out;
    }
    switch (e->body_case) {
    case STAMPEDE__ENVELOPE__BODY_CLOCK_PING: {
        Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
        Stampede__ClockPong pong = STAMPEDE__CLOCK_PONG__INIT;
        env.body_case = STAMPEDE__ENVELOPE__BODY_CLOCK_PONG;
        env.clock_pong = &pong;
        pong.agent_ns = e->clock_ping->agent_ns;
        pong.recv_coord_ns = recv_ns;
        pong.send_coord_ns = now_ns(c);
        rc = pack_reply(&env, "", reply, reply_len);
        break;
    }
    case STAMPEDE__ENVELOPE__BODY_REGISTER:
        rc = handle_register(c, e->register_, reply, reply_len);
        break;
    case STAMPEDE__ENVELOPE__BODY_UPDATE:
        rc = handle_update(c, e->update, valid, recv_ns, reply, reply_len);
        break;
    default:
        c->malformed++;
        rc = ST_EPROTO;
    }
out:
    pthread_mutex_unlock(&c->mu);
    free(valid);
    if (e) {
        stampede__envelope__free_unpacked(e, NULL);
    }
    return rc;
}

/* ---- the owner's side ---------------------------------------------------------------------- */

static void mark_lost(agent *a, const char *why)
{
    a->lost = true;
    st_warn("agent %u \"%s\" lost: %s", a->id, a->name, why);
}

/* Second k is final when every agent still counted has reported it, or grace after its end. */
static bool second_final(const st_coord *c, uint32_t k, uint64_t now)
{
    if (c->state == ST_COORD_DONE || c->state == ST_COORD_FAILED) {
        return true;
    }
    uint64_t end_k = c->t0 + (uint64_t)(k + 1) * ST_NS_PER_S;
    if (now >= end_k + c->cfg.grace_ns) {
        return true;
    }
    for (size_t i = 0; i < c->n_agents; i++) {
        const agent *a = c->agents[i];
        if (active(a) && a->started && !agent_complete(a) && a->max_second < (int64_t)k) {
            return false;
        }
    }
    return now >= end_k;
}

typedef struct finished {
    st_stats s;
    double target_rps;
    int agents;
} finished;

/* Moves final seconds out of the window (under the lock); they are handed out afterwards.
 * Seconds after the end only carry the drain: they are handed out when something happened in
 * them. */
static size_t take_final(st_coord *c, uint64_t now, finished *out, size_t max)
{
    size_t n = 0;
    if (!c->t0) {
        return 0;
    }
    uint32_t end_k = (uint32_t)ceil(st_coord_duration_s(c) - 1e-9);
    while (n < max) {
        uint32_t k = c->next_final;
        bool have = c->n_slots > 0 && c->slots[0].used;
        if (k >= end_k && c->n_slots == 0) {
            break;
        }
        if (!second_final(c, k, now)) {
            break;
        }
        if (have) {
            out[n].s = c->slots[0].s;
            st_stats_merge(&c->total, &out[n].s);
        } else if (st_stats_init(&out[n].s)) {
            break;
        }
        if (c->n_slots > 0) {
            memmove(c->slots, c->slots + 1, (c->n_slots - 1) * sizeof(*c->slots));
            c->n_slots--;
        }
        c->next_final++;
        if (k >= end_k && st_counts_done(&out[n].s.c) == 0 && out[n].s.c.sent == 0) {
            st_stats_fini(&out[n].s);
            continue;
        }
        out[n].s.second = k;
        out[n].target_rps = c->plan->closed_loop
                                ? 0
                                : st_profile_integral(&c->profile, k + 1.0) -
                                      st_profile_integral(&c->profile, (double)k);
        out[n].agents = count_alive(c);
        n++;
    }
    return n;
}

static void tick_locked(st_coord *c, uint64_t now)
{
    size_t counted = 0;
    switch (c->state) {
    case ST_COORD_WAITING:
        if (c->n_agents >= (size_t)c->cfg.expected_agents) {
            for (size_t i = 0; i < c->n_agents; i++) {
                c->agents[i]->counted = true;
            }
            if (reshare(c, 0)) {
                fail(c, 1, "out of memory while splitting the load");
                return;
            }
            c->state = ST_COORD_PREPARING;
            c->deadline_ns = now + c->cfg.prepare_timeout_ns;
            st_info("%zu agents registered: preparing (epoch %u)", c->n_agents, c->epoch);
        } else if (now >= c->deadline_ns) {
            fail(c, 3, "only %zu of %d agents registered within %.0f s", c->n_agents,
                 c->cfg.expected_agents, (double)c->cfg.register_timeout_ns / 1e9);
        }
        break;
    case ST_COORD_PREPARING: {
        size_t ready = 0;
        for (size_t i = 0; i < c->n_agents; i++) {
            agent *a = c->agents[i];
            if (a->state == STAMPEDE__AGENT_STATE__AGENT_FAILED) {
                fail(c, 1, "agent %u \"%s\" cannot run the plan: %s", a->id, a->name,
                     a->error ? a->error : "no reason given");
                return;
            }
            if (now - a->last_seen_ns > c->cfg.silence_ns) {
                fail(c, 1, "agent %u \"%s\" went silent before the start: nothing was started",
                     a->id, a->name);
                return;
            }
            ready += a->state == STAMPEDE__AGENT_STATE__AGENT_READY && a->epoch == c->epoch;
        }
        if (ready == c->n_agents) {
            c->t0 = now + c->cfg.start_lead_ns;
            c->end_ns = c->t0 + (uint64_t)(total_s(c) * 1e9 + 0.5);
            c->state = ST_COORD_RUNNING;
            st_info("every agent is ready: the run starts in %.0f ms",
                    (double)c->cfg.start_lead_ns / 1e6);
        } else if (now >= c->deadline_ns) {
            fail(c, 1, "%zu of %zu agents acknowledged the plan within %.0f s: nothing was started",
                 ready, c->n_agents, (double)c->cfg.prepare_timeout_ns / 1e9);
        }
        break;
    }
    case ST_COORD_RUNNING:
    case ST_COORD_DRAINING: {
        bool replan = false;
        for (size_t i = 0; i < c->n_agents; i++) {
            agent *a = c->agents[i];
            if (!active(a) || agent_complete(a)) {
                continue;
            }
            if (a->state == STAMPEDE__AGENT_STATE__AGENT_FAILED) {
                mark_lost(a, a->error ? a->error : "failed");
                replan = true;
            } else if (now - a->last_seen_ns > c->cfg.silence_ns) {
                mark_lost(a, "silent");
                replan = true;
            }
        }
        for (size_t i = 0; i < c->n_agents; i++) {
            counted += active(c->agents[i]);
        }
        if (counted == 0) {
            c->state = ST_COORD_DONE;
            st_error("every agent was lost: the run ends here");
            break;
        }
        if (c->state == ST_COORD_RUNNING) {
            if (replan && now + replan_lead_ns(c) < c->end_ns && !c->stopping) {
                replan_ahead(c, "an agent was lost");
            }
            if (now >= c->end_ns || c->stopping) {
                c->state = ST_COORD_DRAINING;
                c->deadline_ns = (c->stopping ? now : c->end_ns) +
                                 ST_PROTO_DRAIN_MAX_MS * ST_NS_PER_MS +
                                 c->cfg.end_timeout_ns;
            }
            break;
        }
        size_t complete = 0;
        for (size_t i = 0; i < c->n_agents; i++) {
            complete += active(c->agents[i]) && agent_complete(c->agents[i]);
        }
        if (complete == counted) {
            c->state = ST_COORD_DONE;
        } else if (now >= c->deadline_ns) {
            for (size_t i = 0; i < c->n_agents; i++) {
                agent *a = c->agents[i];
                if (active(a) && !agent_complete(a)) {
                    mark_lost(a, "its last records did not arrive in time");
                }
            }
            c->state = ST_COORD_DONE;
        }
        break;
    }
    case ST_COORD_DONE:
    case ST_COORD_FAILED:
        break;
    }
}

void st_coord_tick(st_coord *c)
{
    finished out[16];
    for (;;) {
        pthread_mutex_lock(&c->mu);
        uint64_t now = now_ns(c);
        tick_locked(c, now);
        size_t n = take_final(c, now, out, 16);
        pthread_mutex_unlock(&c->mu);
        for (size_t i = 0; i < n; i++) {
            if (c->cfg.on_second) {
                st_coord_second sec = {out[i].s.second, out[i].target_rps, &out[i].s,
                                       out[i].agents};
                c->cfg.on_second(c->cfg.ctx, &sec);
            }
            st_stats_fini(&out[i].s);
        }
        if (n < 16) {
            break;
        }
    }
}

void st_coord_agent_exited(st_coord *c, int pid)
{
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->n_agents; i++) {
        agent *a = c->agents[i];
        if ((int)a->pid == pid && strcmp(a->host, host) == 0 && !a->lost && !agent_complete(a)) {
            /* Its silence would tell the same a couple of seconds later. */
            a->last_seen_ns = 0;
        }
    }
    pthread_mutex_unlock(&c->mu);
}

void st_coord_stop(st_coord *c)
{
    pthread_mutex_lock(&c->mu);
    if (!c->stopping) {
        c->stopping = true;
        c->stopped_at_ns = now_ns(c);
        if (c->state == ST_COORD_WAITING || c->state == ST_COORD_PREPARING) {
            fail(c, 5, "stopped before the start: nothing was sent");
        }
    }
    pthread_mutex_unlock(&c->mu);
}

int st_coord_change_rate(st_coord *c, double rate_rps)
{
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    uint64_t at = now_ns(c) + replan_lead_ns(c);
    if (c->state == ST_COORD_RUNNING && at < c->t0) {
        /* A start lead longer than the re-plan lead: nothing was sent yet, so the new rate holds
         * from the start (at - t0 would wrap around and be refused). */
        at = c->t0;
    }
    if (c->state != ST_COORD_RUNNING || c->plan->closed_loop || c->stopping || at >= c->end_ns) {
        rc = ST_ESTATE;
    } else if ((rc = st_profile_change_rate(&c->profile, (double)(at - c->t0) / 1e9, rate_rps)) ==
               0) {
        uint64_t q = first_q_at(c, at);
        if ((rc = reshare(c, q)) == 0) {
            st_info("rate changed to %.1f rps from request %llu (epoch %u)", rate_rps,
                    (unsigned long long)q, c->epoch);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

st_coord_state st_coord_get_state(st_coord *c)
{
    pthread_mutex_lock(&c->mu);
    st_coord_state s = c->state;
    pthread_mutex_unlock(&c->mu);
    return s;
}

const char *st_coord_failure(st_coord *c)
{
    return c->failure;
}

int st_coord_failure_code(st_coord *c)
{
    return c->failure_code ? c->failure_code : 1;
}

int st_coord_agents_alive(st_coord *c)
{
    pthread_mutex_lock(&c->mu);
    int n = count_alive(c);
    pthread_mutex_unlock(&c->mu);
    return n;
}

uint64_t st_coord_malformed(st_coord *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t n = c->malformed;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* Everything taken so far: the seconds handed out, the late records and the open seconds.
 * Lock held. */
static const st_stats *build_view(st_coord *c)
{
    st_stats_reset(&c->view);
    st_stats_merge(&c->view, &c->total);
    for (size_t i = 0; i < c->n_slots; i++) {
        if (c->slots[i].used) {
            st_stats_merge(&c->view, &c->slots[i].s);
        }
    }
    return &c->view;
}

const st_stats *st_coord_total(st_coord *c)
{
    pthread_mutex_lock(&c->mu);
    const st_stats *v = build_view(c);
    pthread_mutex_unlock(&c->mu);
    return v;
}

double st_coord_duration_s(st_coord *c)
{
    double d = total_s(c);
    if (c->stopping && c->t0) {
        double ran = c->stopped_at_ns > c->t0 ? (double)(c->stopped_at_ns - c->t0) / 1e9 : 0;
        if (ran < d) {
            d = ran;
        }
    }
    return d;
}

double st_coord_target_requests(st_coord *c)
{
    if (c->plan->closed_loop) {
        return 0;
    }
    return st_profile_integral(&c->profile, st_coord_duration_s(c));
}

static const char *state_name(Stampede__AgentState s)
{
    switch (s) {
    case STAMPEDE__AGENT_STATE__AGENT_IDLE: return "idle";
    case STAMPEDE__AGENT_STATE__AGENT_READY: return "ready";
    case STAMPEDE__AGENT_STATE__AGENT_RUNNING: return "running";
    case STAMPEDE__AGENT_STATE__AGENT_DRAINING: return "draining";
    case STAMPEDE__AGENT_STATE__AGENT_DONE: return "done";
    case STAMPEDE__AGENT_STATE__AGENT_FAILED: return "failed";
    default: return "unknown";
    }
}

cJSON *st_coord_summary(st_coord *c)
{
    pthread_mutex_lock(&c->mu);
    st_summary s = {
        .total = build_view(c),
        .duration_s = st_coord_duration_s(c),
        .target_requests = st_coord_target_requests(c),
        .closed_loop = c->plan->closed_loop,
    };
    cJSON *j = st_summary_json(&s);
    if (!j) {
        pthread_mutex_unlock(&c->mu);
        return NULL;
    }
    cJSON_AddStringToObject(j, "run_id", c->cfg.run_id);
    /* The spread of the agents' realised starts, in coordinator time. */
    uint64_t lo = 0, hi = 0;
    int n = 0;
    for (size_t i = 0; i < c->n_agents; i++) {
        uint64_t v = c->agents[i]->first_send_coord_ns;
        if (!v) {
            continue;
        }
        lo = n == 0 || v < lo ? v : lo;
        hi = n == 0 || v > hi ? v : hi;
        n++;
    }
    if (n > 0) {
        cJSON_AddNumberToObject(j, "start_skew_ms", (double)(hi - lo) / 1e6);
    } else {
        cJSON_AddNullToObject(j, "start_skew_ms");
    }
    double avg_rps = c->plan->closed_loop || total_s(c) <= 0 ? 0 : c->profile.total_n / total_s(c);
    cJSON *arr = cJSON_AddArrayToObject(j, "agents");
    for (size_t i = 0; arr && i < c->n_agents; i++) {
        const agent *a = c->agents[i];
        cJSON *o = cJSON_CreateObject();
        if (!o) {
            break;
        }
        cJSON_AddNumberToObject(o, "id", a->id);
        cJSON_AddStringToObject(o, "name", a->name);
        cJSON_AddStringToObject(o, "host", a->host);
        if (a->task_arn[0]) {
            cJSON_AddStringToObject(o, "task", a->task_arn);
        }
        if (a->az[0]) {
            cJSON_AddStringToObject(o, "availability_zone", a->az);
        }
        double share = c->period && a->counted && !a->lost && a->n_residues
                           ? avg_rps * (double)a->n_residues / (double)c->period
                           : 0;
        cJSON_AddNumberToObject(o, "share_rps", share);
        cJSON_AddNumberToObject(o, "requests", (double)st_counts_done(&a->totals));
        cJSON_AddNumberToObject(o, "ok", (double)a->totals.ok);
        cJSON_AddNumberToObject(o, "failed", (double)st_counts_failed(&a->totals));
        cJSON_AddBoolToObject(o, "lost", a->lost);
        cJSON_AddStringToObject(o, "state", state_name(a->state));
        cJSON_AddNumberToObject(o, "clock_offset_ms", (double)a->offset_ns / 1e6);
        cJSON_AddNumberToObject(o, "clock_rtt_ms", (double)a->rtt_ns / 1e6);
        cJSON_AddItemToArray(arr, o);
    }
    cJSON_AddNumberToObject(j, "late_records", (double)c->late_records);
    cJSON_AddNumberToObject(j, "duplicate_records", (double)c->duplicates);
    cJSON_AddNumberToObject(j, "malformed_messages", (double)c->malformed);
    pthread_mutex_unlock(&c->mu);
    return j;
}
