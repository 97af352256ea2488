#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "assert_stats.h"
#include "json_get.h"

#include "clock.h"
#include "coord.h"
#include "error.h"
#include "hist.h"
#include "log.h"
#include "plan.h"
#include "report.h"
#include "session.h"
#include "stats.h"
#include "summary.h"
#include "wire.h"

/*
 * The coordinator's core driven in-process: simulated agents run the agent's session (the one
 * agent/remote.c runs), the bytes go through st_coord_handle, and a fake clock moves time.
 */

#define RUN_ID     "run-test"
#define TOKEN      "secret-token"
#define START_NS   (1000 * ST_NS_PER_S)
#define MAX_RES    64
#define MAX_SECS   64
#define MAX_PEND   64
#define MAX_AGENTS 8
#define MAX_HELD   64

/* The plan every test uses unless it says otherwise: 10 rps for 20 s. */
#define PLAN_10RPS "{\"url\": \"http://127.0.0.1:9/\", \"rate\": 10, \"duration\": 20}"

typedef struct sim sim;

typedef struct fx {
    uint64_t now;
    st_clock clock;
    st_plan plan;
    st_coord_cfg cfg;
    st_coord *c;
    /* Seconds handed to on_second, by second. */
    st_stats secs[MAX_SECS];
    bool got[MAX_SECS];
    int sec_agents[MAX_SECS];
    double sec_target[MAX_SECS];
    int n_handed;
    uint32_t order[256];
    /* The agents a fixture in a test's state holds (fx_sim), MAX_AGENTS at most, ended with
     * it. */
    sim *ag;
    size_t n_ag;
    /* The stats a test made through fx_stats, fx_second and the like, ended with the fixture
     * too. */
    st_stats *held[MAX_HELD];
    size_t n_held;
} fx;

static void on_second(void *ctx, const st_coord_second *sec)
{
    fx *f = ctx;
    assert_true(sec->second < MAX_SECS);
    assert_false(f->got[sec->second]); /* each second is handed out once */
    assert_int_equal(sec->stats->second, sec->second);
    assert_int_equal(st_stats_init(&f->secs[sec->second]), 0);
    st_stats_merge(&f->secs[sec->second], sec->stats);
    f->got[sec->second] = true;
    f->sec_agents[sec->second] = sec->agents;
    f->sec_target[sec->second] = sec->target_rps;
    if (f->n_handed < 256) {
        f->order[f->n_handed] = sec->second;
    }
    f->n_handed++;
}

/* A fixture with a finished plan and the configuration filled; fx_open creates the core. */
/* While set, realloc fails (the test is linked with --wrap=realloc): the merge out of memory. */
static bool g_fail_realloc;
void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n)
{
    return g_fail_realloc ? NULL : __real_realloc(p, n);
}

static fx *fx_new(const char *plan_json, int expected_agents)
{
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->now = START_NS;
    f->clock = (st_clock){st_clock_fake_now, &f->now};
    char err[256] = "";
    st_plan_init(&f->plan);
    assert_int_equal(
        st_plan_parse(&f->plan, plan_json, strlen(plan_json), "plan", err, sizeof(err)), 0);
    assert_int_equal(st_plan_finish(&f->plan, 1, err, sizeof(err)), 0);
    st_coord_cfg_defaults(&f->cfg);
    f->cfg.plan = &f->plan;
    f->cfg.run_id = RUN_ID;
    f->cfg.token = TOKEN;
    f->cfg.expected_agents = expected_agents;
    f->cfg.clock = &f->clock;
    f->cfg.on_second = on_second;
    f->cfg.ctx = f;
    return f;
}

static void fx_open(fx *f)
{
    assert_int_equal(st_coord_new(&f->c, &f->cfg), 0);
}

static fx *fx_opened(const char *plan_json, int expected_agents)
{
    fx *f = fx_new(plan_json, expected_agents);
    fx_open(f);
    return f;
}

static void sims_fini(sim *ag, size_t n);

static void fx_free(fx *f)
{
    sims_fini(f->ag, f->n_ag);
    free(f->ag);
    st_coord_free(f->c);
    for (int i = 0; i < MAX_SECS; i++) {
        if (f->got[i]) {
            st_stats_fini(&f->secs[i]);
        }
    }
    for (size_t i = 0; i < f->n_held; i++) {
        st_stats_fini(f->held[i]);
        free(f->held[i]);
    }
    st_plan_fini(&f->plan);
    free(f);
}

/* Hands request bytes to the core; returns its reply's bytes (the caller frees them). */
static uint8_t *coord_handle(fx *f, const uint8_t *req, size_t len, size_t *rep_len)
{
    uint8_t *rep = NULL;
    *rep_len = 0;
    assert_int_equal(st_coord_handle(f->c, req, len, &rep, rep_len), 0);
    assert_non_null(rep);
    return rep;
}

static Stampede__Envelope *decode(const uint8_t *rep, size_t len)
{
    int err = 1;
    Stampede__Envelope *e = st_wire_unpack(rep, len, NULL, &err);
    assert_non_null(e);
    assert_int_equal(err, 0);
    return e;
}

/* Sends an envelope (version and, unless set, run id filled in) and returns the decoded reply. */
static Stampede__Envelope *send_env(fx *f, Stampede__Envelope *env)
{
    env->version = ST_PROTOCOL_VERSION;
    if (!env->run_id) {
        env->run_id = RUN_ID;
    }
    uint8_t *req, *rep;
    size_t len, rep_len;
    assert_int_equal(st_wire_pack(env, &req, &len), 0);
    rep = coord_handle(f, req, len, &rep_len);
    free(req);
    Stampede__Envelope *e = decode(rep, rep_len);
    free(rep);
    return e;
}

/* ---- simulated agents ---------------------------------------------------------------------- */

/* A simulated agent is the agent's session (common/session.h) on the fixture's clock, and what
 * the coordinator told it. Tests that need traffic no correct agent sends (another run, a wrong
 * epoch, duplicates, gaps) craft it with sim_exchange from the fields below, which otherwise
 * follow the session. */
struct sim {
    uint32_t id;
    uint64_t instance;
    uint32_t threads;
    uint32_t pid;
    const char *host;
    /* The protocol: its session, on a clock AGENT_AHEAD_NS ahead of the coordinator's, and its
     * Register as sent (re-sent as is, as a REQ socket resends a request whose reply is lost). */
    st_session *s;
    st_clock clock;
    const uint64_t *coord_now;
    const char *token;
    uint8_t *reg;
    size_t reg_len;
    /* What it reports: the session's, or what a test sets for a crafted update. */
    uint32_t epoch;
    Stampede__AgentState state;
    uint64_t first_send;
    uint64_t last_seq;
    const char *error;
    bool silent;         /* sends nothing when the fixture steps */
    bool ignore_prepare; /* cannot load the plan: stays IDLE */
    /* What the coordinator told it. */
    bool prepared, started, stopped, done, refused, reregister;
    int n_prepares, n_starts, n_assignments;
    uint64_t t0;
    uint32_t plan_threads;
    uint32_t asg_epoch;
    uint64_t period, from_q;
    uint64_t residues[MAX_RES];
    size_t n_residues;
    size_t n_stages;
    st_stage stages[8];
    uint64_t acked;
    /* Records not acknowledged yet, oldest first, as the session holds them (for crafted
     * updates that re-send or leave out some). */
    st_arena arena;
    Stampede__SecondRecord *pending[MAX_PEND];
    size_t n_pending;
    uint64_t next_seq;
};

/* The agents' clocks run this far ahead of the coordinator's: offsets are measured, not assumed. */
#define AGENT_AHEAD_NS 1234

static uint64_t sim_clock_now(void *ctx)
{
    const sim *a = ctx;
    return *a->coord_now + AGENT_AHEAD_NS;
}

static void sim_init(sim *a, uint64_t instance, uint32_t threads)
{
    memset(a, 0, sizeof(*a));
    a->instance = instance;
    a->threads = threads;
    a->pid = 100000 + (uint32_t)instance;
    a->host = "sim-host";
    a->next_seq = 1;
}

static void sim_fini(sim *a)
{
    st_session_free(a->s);
    free(a->reg);
    st_arena_fini(&a->arena);
}

/* n agents, instances 1 .. n, one thread each. */
static void sims_init(sim *ag, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sim_init(&ag[i], (uint64_t)i + 1, 1);
    }
}

/* The fixture's next agent, f->ag[f->n_ag] (ended with the fixture): this instance, with this
 * many threads. */
static sim *fx_sim(fx *f, uint64_t instance, uint32_t threads)
{
    assert_true(f->n_ag < MAX_AGENTS);
    sim *a = &f->ag[f->n_ag++];
    sim_init(a, instance, threads);
    return a;
}

/* n agents held by the fixture, as sims_init makes them; f->ag. */
static sim *fx_sims(fx *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        fx_sim(f, (uint64_t)i + 1, 1);
    }
    return f->ag;
}

/* A fixture held in the test's cmocka state: fx_teardown, the test's teardown, ends it and its
 * agents however the test ends. */
static fx *fx_in(void **state, const char *plan_json, int expected_agents)
{
    fx *f = fx_new(plan_json, expected_agents);
    *state = f;
    f->ag = calloc(MAX_AGENTS, sizeof(*f->ag));
    assert_non_null(f->ag);
    return f;
}

static int fx_teardown(void **state)
{
    if (*state) {
        fx_free(*state);
    }
    return 0;
}

static fx *fx_open_in(void **state, const char *plan_json, int expected_agents)
{
    fx *f = fx_in(state, plan_json, expected_agents);
    fx_open(f);
    return f;
}

/* An open fixture in the test's state expecting n agents, and the n agents (f->ag). */
static fx *fx_with_agents(void **state, const char *plan_json, size_t n)
{
    fx *f = fx_open_in(state, plan_json, (int)n);
    fx_sims(f, n);
    return f;
}

static void sims_fini(sim *ag, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sim_fini(&ag[i]);
    }
}

/* Ends a test: its n agents, then the fixture. */
static void fx_end(fx *f, sim *ag, size_t n)
{
    sims_fini(ag, n);
    fx_free(f);
}

/* The crafted fields follow the session after each exchange through it. */
static void sim_sync(sim *a)
{
    a->epoch = st_session_epoch(a->s);
    a->state = st_session_state(a->s);
    a->last_seq = st_session_last_seq(a->s);
}

static bool same_token(const char *x, const char *y)
{
    return strcmp(x ? x : "", y ? y : "") == 0;
}

/* A new session for this agent: its identity, and the fixture's clock. */
static void sim_session(fx *f, sim *a, const char *token)
{
    st_session_free(a->s);
    free(a->reg);
    a->reg = NULL;
    a->coord_now = &f->now;
    a->clock = (st_clock){sim_clock_now, a};
    a->token = token;
    char name[32];
    snprintf(name, sizeof(name), "sim-%llu", (unsigned long long)a->instance);
    st_session_cfg cfg;
    st_session_cfg_defaults(&cfg);
    cfg.clock = &a->clock;
    cfg.token = token;
    cfg.instance_id = a->instance;
    cfg.name = name;
    cfg.host = a->host;
    cfg.pid = a->pid;
    cfg.cores = 4;
    cfg.threads = a->threads;
    cfg.version = "test";
    cfg.clock_pings = 0;
    assert_int_equal(st_session_new(&a->s, &cfg), 0);
}

/* The session's next message, which must be of this kind; the caller frees *req. */
static void sim_request(sim *a, uint8_t **req, size_t *len, st_session_kind want)
{
    int timeout_ms;
    st_session_kind kind;
    assert_int_equal(st_session_request(a->s, req, len, &timeout_ms, &kind), 0);
    assert_int_equal(kind, want);
}

/* Hands req to the coordinator and its reply to the session: the decoded reply, which the
 * session took (its commands in *cmds) unless it is a refusal, met with the refusal's code.
 * req stays the caller's. */
static Stampede__Envelope *sim_handle_reply(fx *f, sim *a, const uint8_t *req, size_t len,
                                            st_session_cmds *cmds)
{
    size_t rep_len;
    uint8_t *rep = coord_handle(f, req, len, &rep_len);
    Stampede__Envelope *e = decode(rep, rep_len);
    int rc = st_session_reply(a->s, rep, rep_len, cmds);
    free(rep);
    if (e->body_case == STAMPEDE__ENVELOPE__BODY_REFUSED) {
        assert_int_equal(rc, e->refused->reregister ? ST_ENOTFOUND : ST_EAUTH);
    } else {
        assert_int_equal(rc, 0);
    }
    return e;
}

/* Registers with this token and returns the decoded reply. An agent already registered re-sends
 * its Register as it was (its reply lost); otherwise a new session registers. */
static Stampede__Envelope *sim_register_token(fx *f, sim *a, const char *token)
{
    size_t rep_len;
    uint8_t *rep;
    if (a->s && a->reg && same_token(a->token, token) &&
        st_session_get_phase(a->s) == ST_SESSION_REGISTERED) {
        rep = coord_handle(f, a->reg, a->reg_len, &rep_len);
        Stampede__Envelope *e = decode(rep, rep_len);
        free(rep);
        return e;
    }
    sim_session(f, a, token);
    sim_request(a, &a->reg, &a->reg_len, ST_SESSION_REGISTER);
    st_session_cmds cmds;
    Stampede__Envelope *e = sim_handle_reply(f, a, a->reg, a->reg_len, &cmds);
    if (st_session_get_phase(a->s) == ST_SESSION_REGISTERED) {
        a->id = st_session_agent_id(a->s);
        sim_sync(a);
    }
    return e;
}

/* Registers with the right token; the agent id, which must be given. */
static uint32_t sim_register(fx *f, sim *a)
{
    Stampede__Envelope *e = sim_register_token(f, a, TOKEN);
    assert_int_equal(e->body_case, STAMPEDE__ENVELOPE__BODY_REGISTER_REPLY);
    assert_string_equal(e->run_id, RUN_ID);
    a->id = e->register_reply->agent_id;
    stampede__envelope__free_unpacked(e, NULL);
    assert_true(a->id >= 1);
    assert_int_equal(st_session_agent_id(a->s), a->id);
    return a->id;
}

/* Asserts that a reply is a refusal, and frees it; whether it tells the agent to register again. */
static bool take_refusal(Stampede__Envelope *e)
{
    assert_int_equal(e->body_case, STAMPEDE__ENVELOPE__BODY_REFUSED);
    bool reregister = e->refused->reregister;
    stampede__envelope__free_unpacked(e, NULL);
    return reregister;
}

/* Registers with the right token and must be refused; whether it is told to register again. */
static bool refused_register(fx *f, sim *a)
{
    return take_refusal(sim_register_token(f, a, TOKEN));
}

/* A new agent (this instance) registering now is refused. */
static void assert_newcomer_refused(fx *f, uint64_t instance)
{
    sim late;
    sim_init(&late, instance, 1);
    refused_register(f, &late);
    sim_fini(&late);
}

static void copy_assignment(sim *a, const Stampede__Assignment *asg)
{
    a->asg_epoch = asg->epoch;
    a->period = asg->period;
    a->from_q = asg->from_q;
    assert_true(asg->n_residues <= MAX_RES);
    a->n_residues = asg->n_residues;
    if (asg->n_residues) {
        memcpy(a->residues, asg->residues, asg->n_residues * sizeof(uint64_t));
    }
    assert_true(asg->n_stages <= 8);
    a->n_stages = asg->n_stages;
    for (size_t i = 0; i < asg->n_stages; i++) {
        a->stages[i] = (st_stage){asg->stages[i]->duration_s, asg->stages[i]->from_rps,
                                  asg->stages[i]->to_rps};
    }
}

/* Notes what a reply told the agent (the session, when it made the exchange, acts on it). */
static void sim_observe(sim *a, const Stampede__Envelope *e)
{
    if (e->body_case == STAMPEDE__ENVELOPE__BODY_REFUSED) {
        a->refused = true;
        a->reregister = e->refused->reregister;
        return;
    }
    assert_int_equal(e->body_case, STAMPEDE__ENVELOPE__BODY_REPLY);
    assert_string_equal(e->run_id, RUN_ID);
    const Stampede__CoordReply *r = e->reply;
    a->acked = r->acked_seq;
    size_t keep = 0;
    for (size_t i = 0; i < a->n_pending; i++) {
        if (a->pending[i]->seq > r->acked_seq) {
            a->pending[keep++] = a->pending[i];
        }
    }
    a->n_pending = keep;
    if (r->prepare) {
        a->n_prepares++;
        assert_non_null(r->prepare->plan);
        assert_non_null(r->prepare->assignment);
        a->plan_threads = r->prepare->plan->threads;
        copy_assignment(a, r->prepare->assignment);
    }
    if (r->start) {
        a->n_starts++;
        a->t0 = r->start->t0_coord_ns;
    }
    if (r->assignment) {
        a->n_assignments++;
        copy_assignment(a, r->assignment);
    }
    if (r->stop) {
        a->stopped = true;
    }
    a->done = r->done;
}

/* Does what the session's commands ask, as agent/remote.c does with a load that always works. */
static void sim_act(sim *a, const st_session_cmds *c)
{
    if (c->prepare && !a->ignore_prepare) {
        st_session_prepared(a->s, c->prepare->assignment->epoch);
        a->prepared = true;
    }
    if (c->start) {
        st_session_started(a->s);
        a->started = true;
    }
    if (c->assignment) {
        st_session_assigned(a->s, c->assignment->epoch);
    }
    sim_sync(a);
}

/* One update carrying exactly these records, crafted from the fields; the reply is returned, not
 * applied. */
static Stampede__Envelope *sim_exchange(fx *f, sim *a, Stampede__SecondRecord **recs, size_t n,
                                        const char *run_id)
{
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    Stampede__AgentUpdate up = STAMPEDE__AGENT_UPDATE__INIT;
    env.body_case = STAMPEDE__ENVELOPE__BODY_UPDATE;
    env.update = &up;
    env.run_id = (char *)run_id;
    up.agent_id = a->id;
    up.instance_id = a->instance;
    up.epoch = a->epoch;
    up.state = a->state;
    up.records = recs;
    up.n_records = n;
    up.clock_offset_ns = 1234;
    up.clock_rtt_ns = 5678;
    up.first_send_coord_ns = a->first_send;
    up.error = (char *)(a->error ? a->error : "");
    up.sent_agent_ns = f->now + 1234;
    up.last_seq = a->state == STAMPEDE__AGENT_STATE__AGENT_DONE ? a->last_seq : 0;
    return send_env(f, &env);
}

/* sim_exchange in this run; the sequence number its reply acknowledges. */
static uint64_t exchange_acked(fx *f, sim *a, Stampede__SecondRecord **recs, size_t n)
{
    Stampede__Envelope *e = sim_exchange(f, a, recs, n, NULL);
    assert_int_equal(e->body_case, STAMPEDE__ENVELOPE__BODY_REPLY);
    uint64_t acked = e->reply->acked_seq;
    stampede__envelope__free_unpacked(e, NULL);
    return acked;
}

/* An ordinary update: the session's (every pending record), the reply applied. An agent whose
 * session has ended (told it is done) still reports what it last did, crafted. */
static void sim_update(fx *f, sim *a)
{
    Stampede__Envelope *e;
    if (st_session_get_phase(a->s) == ST_SESSION_ENDED) {
        e = sim_exchange(f, a, a->pending, a->n_pending, NULL);
    } else {
        uint8_t *req;
        size_t len;
        sim_request(a, &req, &len, ST_SESSION_UPDATE);
        st_session_cmds cmds;
        e = sim_handle_reply(f, a, req, len, &cmds);
        free(req);
        if (e->body_case != STAMPEDE__ENVELOPE__BODY_REFUSED) {
            sim_act(a, &cmds);
        }
    }
    if (e->body_case == STAMPEDE__ENVELOPE__BODY_REPLY) {
        assert_int_equal(e->reply->echo_agent_ns, f->now + 1234);
        assert_int_equal(e->reply->recv_coord_ns, f->now);
        /* Slower updates while running: each carries a second anyway. */
        bool running = st_coord_get_state(f->c) == ST_COORD_RUNNING && !e->reply->stop;
        assert_int_equal(e->reply->heartbeat_ms,
                         running ? f->cfg.run_heartbeat_ms : f->cfg.heartbeat_ms);
    }
    sim_observe(a, e);
    stampede__envelope__free_unpacked(e, NULL);
}

/* A record of s (its second) with the next sequence number, not queued yet. */
static Stampede__SecondRecord *sim_build(sim *a, const st_stats *s)
{
    Stampede__SecondRecord *r = NULL;
    assert_int_equal(st_wire_record_build(&a->arena, s, a->next_seq++, &r), 0);
    return r;
}

/* Queues a record in the session (as packed now) and in the mirror of its pending records. */
static void sim_queue(sim *a, Stampede__SecondRecord *r)
{
    assert_true(a->n_pending < MAX_PEND);
    uint8_t *body;
    size_t len;
    uint64_t seq = 0;
    assert_int_equal(st_wire_record_body_pack(r, &body, &len), 0);
    assert_int_equal(st_session_push_body(a->s, r->second, body, len, &seq), 0);
    free(body);
    assert_int_equal(seq, r->seq);
    a->pending[a->n_pending++] = r;
}

/* Queues a record of s (its second) with the next sequence number. */
static void sim_push(sim *a, const st_stats *s)
{
    sim_queue(a, sim_build(a, s));
}

/* Reports DONE with every record pushed so far as the last. */
static void sim_finish(sim *a)
{
    st_session_end(a->s);
    sim_sync(a);
}

/* Cannot run the plan (or no longer): reports FAILED with the reason. */
static void sim_fail(sim *a, const char *reason)
{
    st_session_fail(a->s, reason);
    a->error = reason;
    sim_sync(a);
}

/* The realised start, in coordinator time. */
static void sim_first_send(sim *a, uint64_t coord_ns)
{
    st_session_first_send(a->s, st_session_to_local(a->s, coord_ns));
    a->first_send = coord_ns;
}

/* Registers agents[0] .. agents[n-1], in that order. */
static void sim_register_all(fx *f, sim *agents, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sim_register(f, &agents[i]);
    }
}

/* Every agent that is not silent sends an update. */
static void fx_round(fx *f, sim *agents, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!agents[i].silent && !agents[i].refused) {
            sim_update(f, &agents[i]);
        }
    }
}

/* Moves the clock to `to` in steps of step_ns; at each step the agents talk, then the core ticks.
 */
static void fx_advance(fx *f, sim *agents, size_t n, uint64_t to, uint64_t step_ns)
{
    while (f->now < to) {
        f->now = f->now + step_ns < to ? f->now + step_ns : to;
        fx_round(f, agents, n);
        st_coord_tick(f->c);
    }
}

/* Registers the agents, lets the core take them in, and has each that talks ask for its Prepare. */
static void fx_prepare(fx *f, sim *agents, size_t n)
{
    sim_register_all(f, agents, n);
    st_coord_tick(f->c);
    fx_round(f, agents, n);
}

/* Registers the agents, prepares them and starts the run; returns t0. */
static uint64_t fx_start_run(fx *f, sim *agents, size_t n)
{
    sim_register_all(f, agents, n);
    st_coord_tick(f->c);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_PREPARING);
    fx_round(f, agents, n); /* IDLE: each gets its Prepare */
    for (size_t i = 0; i < n; i++) {
        assert_true(agents[i].prepared);
    }
    f->now += 10 * ST_NS_PER_MS;
    fx_round(f, agents, n); /* READY */
    st_coord_tick(f->c);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_RUNNING);
    uint64_t t0 = f->now + f->cfg.start_lead_ns;
    f->now += 10 * ST_NS_PER_MS;
    fx_round(f, agents, n); /* Start */
    for (size_t i = 0; i < n; i++) {
        assert_true(agents[i].started);
        assert_int_equal(agents[i].t0, t0);
    }
    return t0;
}

/* A run of PLAN_10RPS with n agents, registered, prepared and started at *t0. */
static fx *fx_running(void **state, size_t n, uint64_t *t0)
{
    fx *f = fx_with_agents(state, PLAN_10RPS, n);
    *t0 = fx_start_run(f, f->ag, n);
    return f;
}

/* How many agents the coordinator's summary lists. */
static int summary_agents(fx *f)
{
    cJSON *s = st_coord_summary(f->c);
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(s, "agents"));
    cJSON_Delete(s);
    return n;
}

/* A second of measurements: n responses (3 in 4 ok, the rest 5xx), a timeout and bytes. */
static void make_second(st_stats *s, uint32_t second, uint64_t seed, int n)
{
    assert_int_equal(st_stats_init(s), 0);
    s->second = second;
    for (int i = 0; i < n; i++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        uint64_t v = 100 + seed % 200000;
        st_hist_record(s->lat, v + 30);
        st_hist_record(s->lat_raw, v);
        if (i % 4 == 3) {
            s->c.http_5xx++;
        } else {
            s->c.ok++;
        }
    }
    s->c.err_timeout = 1;
    s->c.sent = (uint64_t)n + 1;
    s->c.bytes_in = 512 * (uint64_t)n;
    s->c.bytes_out = 64 * (uint64_t)n;
    s->c.late = 2;
    s->c.inflight = 3;
}

/* Room for a stats object that the fixture holds and ends with it (fx_free), so that a test
 * failing midway leaks none of the seconds it made; zeroed, which fini takes before init. */
static st_stats *fx_slot(fx *f)
{
    assert_true(f->n_held < MAX_HELD);
    st_stats *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    f->held[f->n_held++] = s;
    return s;
}

/* An empty stats object (second 0) that the fixture holds. */
static st_stats *fx_stats(fx *f)
{
    st_stats *s = fx_slot(f);
    assert_int_equal(st_stats_init(s), 0);
    return s;
}

/* make_second's second, held by the fixture. */
static st_stats *fx_second(fx *f, uint32_t second, uint64_t seed, int n)
{
    st_stats *s = fx_slot(f);
    make_second(s, second, seed, n);
    return s;
}

/* a + b, held by the fixture. */
static st_stats *fx_sum(fx *f, const st_stats *a, const st_stats *b)
{
    st_stats *s = fx_stats(f);
    st_stats_merge(s, a);
    st_stats_merge(s, b);
    return s;
}

/* The agents' residues cover 0 .. period-1 exactly once, each agent holding weight[i] of them. */
static void assert_residues_cover(sim *const *agents, size_t n, const uint32_t *weight)
{
    uint64_t period = agents[0]->period;
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(agents[i]->period, period);
        assert_int_equal(agents[i]->n_residues, weight[i]);
        sum += weight[i];
    }
    assert_int_equal(period, sum);
    unsigned char *seen = calloc(period, 1);
    assert_non_null(seen);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < agents[i]->n_residues; k++) {
            uint64_t r = agents[i]->residues[k];
            assert_true(r < period);
            assert_int_equal(seen[r], 0);
            seen[r] = 1;
        }
    }
    for (uint64_t r = 0; r < period; r++) {
        assert_int_equal(seen[r], 1);
    }
    free(seen);
}

/* The first global request due at or after d_ns into a run at a constant rate_rps. */
static uint64_t first_due(uint64_t rate_rps, uint64_t d_ns)
{
    return (rate_rps * d_ns + ST_NS_PER_S - 1) / ST_NS_PER_S;
}

static const cJSON *agent_json(const cJSON *summary, uint32_t id)
{
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(summary, "agents"))
    {
        if (cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(a, "id")) == id) {
            return a;
        }
    }
    fail_msg("agent %u is not in the summary", id);
    return NULL;
}

/* ---- configuration ------------------------------------------------------------------------- */

static void test_coord_new_refuses_bad_config(void **state)
{
    (void)state;
    fx *f = fx_new(PLAN_10RPS, 1);
    st_coord *c = (st_coord *)f; /* a sentinel: must not be overwritten on error */
    st_coord_cfg cfg = f->cfg;
    cfg.plan = NULL;
    assert_int_equal(st_coord_new(&c, &cfg), ST_EINVAL);
    cfg = f->cfg;
    cfg.run_id = NULL;
    assert_int_equal(st_coord_new(&c, &cfg), ST_EINVAL);
    cfg = f->cfg;
    cfg.token = NULL;
    assert_int_equal(st_coord_new(&c, &cfg), ST_EINVAL);
    cfg = f->cfg;
    cfg.expected_agents = 0;
    assert_int_equal(st_coord_new(&c, &cfg), ST_EINVAL);
    st_plan unfinished;
    st_plan_init(&unfinished);
    cfg = f->cfg;
    cfg.plan = &unfinished;
    assert_int_equal(st_coord_new(&c, &cfg), ST_EINVAL);
    assert_ptr_equal(c, (st_coord *)f);
    st_coord_free(NULL);

    fx_open(f);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_WAITING);
    assert_string_equal(st_coord_failure(f->c), "");
    assert_int_equal(st_coord_agents_alive(f->c), 0);
    assert_int_equal(st_coord_malformed(f->c), 0);
    fx_free(f);
}

/* ---- registration -------------------------------------------------------------------------- */

static void test_coord_register_wrong_token_refused(void **state)
{
    fx *f = fx_with_agents(state, PLAN_10RPS, 1);
    sim *a = f->ag;
    const char *bad[] = {"secret-tokeN", "secret-toke", "secret-token!", "", NULL};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        Stampede__Envelope *e = sim_register_token(f, a, bad[i]);
        assert_int_equal(e->body_case, STAMPEDE__ENVELOPE__BODY_REFUSED);
        assert_non_null(strstr(e->refused->reason, "token"));
        assert_false(e->refused->reregister);
        stampede__envelope__free_unpacked(e, NULL);
    }
    /* Nothing was registered: the run still waits for its one agent. */
    assert_int_equal(st_coord_agents_alive(f->c), 0);
    st_coord_tick(f->c);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_WAITING);
    assert_int_equal(summary_agents(f), 0);
    /* The right token then gets agent 1. */
    assert_int_equal(sim_register(f, a), 1);
    assert_int_equal(st_coord_agents_alive(f->c), 1);
}

static void test_coord_register_idempotent(void **state)
{
    fx *f = fx_open_in(state, PLAN_10RPS, 3);
    sim *a = fx_sim(f, 0xabcdef, 2), *b = fx_sim(f, 0x123456, 2);
    assert_int_equal(sim_register(f, a), 1);
    assert_int_equal(sim_register(f, a), 1);
    assert_int_equal(sim_register(f, b), 2);
    assert_int_equal(sim_register(f, a), 1);
    assert_int_equal(st_coord_agents_alive(f->c), 2);
    /* Re-sent registrations do not count toward the expected agents. */
    st_coord_tick(f->c);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_WAITING);
    assert_int_equal(summary_agents(f), 2);
}

static void test_coord_register_after_start_refused(void **state)
{
    fx *f = fx_open_in(state, PLAN_10RPS, 1);
    sim *a = fx_sim(f, 1, 1), *late = fx_sim(f, 2, 1);
    sim_register(f, a);
    st_coord_tick(f->c);
    /* Preparing: too late already. */
    assert_false(refused_register(f, late));
    /* The registered agent re-sending its registration keeps its id. */
    assert_int_equal(sim_register(f, a), 1);
    fx_round(f, a, 1);
    fx_round(f, a, 1);
    st_coord_tick(f->c);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_RUNNING);
    /* Running, late joiners not accepted. */
    refused_register(f, late);
    assert_int_equal(st_coord_agents_alive(f->c), 1);
    assert_int_equal(sim_register(f, a), 1);
}

static void test_coord_clock_ping_answered(void **state)
{
    fx *f = fx_open_in(state, PLAN_10RPS, 1);
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    Stampede__ClockPing ping = STAMPEDE__CLOCK_PING__INIT;
    env.body_case = STAMPEDE__ENVELOPE__BODY_CLOCK_PING;
    env.clock_ping = &ping;
    env.run_id = "";
    ping.agent_ns = 987654321;
    f->now += 42;
    Stampede__Envelope *e = send_env(f, &env);
    assert_int_equal(e->body_case, STAMPEDE__ENVELOPE__BODY_CLOCK_PONG);
    assert_int_equal(e->clock_pong->agent_ns, 987654321);
    assert_int_equal(e->clock_pong->recv_coord_ns, START_NS + 42);
    assert_int_equal(e->clock_pong->send_coord_ns, START_NS + 42);
    stampede__envelope__free_unpacked(e, NULL);
}

/* ---- the start ----------------------------------------------------------------------------- */

static void test_coord_no_start_before_all_ready(void **state)
{
    fx *f = fx_open_in(state, PLAN_10RPS, 2);
    sim *a = fx_sim(f, 1, 1), *b = fx_sim(f, 2, 1);
    sim_register(f, a);
    /* One of two: nobody is prepared yet. */
    st_coord_tick(f->c);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_WAITING);
    sim_update(f, a);
    assert_int_equal(a->n_prepares, 0);
    sim_register(f, b);
    st_coord_tick(f->c);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_PREPARING);

    sim_update(f, a); /* IDLE: a Prepare */
    assert_int_equal(a->n_prepares, 1);
    assert_int_equal(a->state, STAMPEDE__AGENT_STATE__AGENT_READY);
    uint32_t epoch = a->epoch;
    assert_true(epoch >= 1);
    f->now += 100 * ST_NS_PER_MS;
    sim_update(f, a); /* READY at the epoch: no Prepare again, and no Start */
    assert_int_equal(a->n_prepares, 1);
    assert_int_equal(a->n_starts, 0);
    st_coord_tick(f->c);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_PREPARING);

    /* b says READY, but at another epoch: it is prepared again, and nothing starts. */
    b->state = STAMPEDE__AGENT_STATE__AGENT_READY;
    b->epoch = epoch + 7;
    Stampede__Envelope *e = sim_exchange(f, b, NULL, 0, NULL);
    assert_non_null(e->reply->prepare);
    assert_int_equal(e->reply->prepare->assignment->epoch, epoch);
    assert_null(e->reply->start);
    sim_observe(b, e);
    stampede__envelope__free_unpacked(e, NULL);
    sim_update(f, b); /* its session takes the Prepare: now prepared at the epoch, and READY */
    assert_int_equal(b->epoch, epoch);
    st_coord_tick(f->c);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_PREPARING);
    f->now += 100 * ST_NS_PER_MS;
    sim_update(f, a);
    assert_int_equal(a->n_starts, 0);

    /* b ready at the epoch: the start instant is set by the next tick, a lead ahead. */
    sim_update(f, b);
    assert_int_equal(b->n_starts, 0);
    f->now += 100 * ST_NS_PER_MS;
    st_coord_tick(f->c);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_RUNNING);
    uint64_t t0 = f->now + f->cfg.start_lead_ns;
    f->now += 50 * ST_NS_PER_MS;
    sim_update(f, a);
    sim_update(f, b);
    assert_int_equal(a->n_starts, 1);
    assert_int_equal(b->n_starts, 1);
    assert_int_equal(a->t0, t0);
    assert_int_equal(b->t0, t0);
    assert_true(a->started && b->started);
}

static void test_coord_prepare_deadline_fails(void **state)
{
    fx *f = fx_in(state, PLAN_10RPS, 2);
    f->cfg.prepare_timeout_ns = 4 * ST_NS_PER_S;
    fx_open(f);
    sim *ag = fx_sims(f, 2);
    sim_register_all(f, ag, 2);
    st_coord_tick(f->c);
    uint64_t deadline = f->now + f->cfg.prepare_timeout_ns;
    /* b never gets ready: it keeps talking, but cannot load the plan. */
    ag[1].ignore_prepare = true;
    fx_advance(f, ag, 2, deadline - 1, 500 * ST_NS_PER_MS);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_PREPARING);
    assert_true(ag[1].n_prepares >= 2); /* asked again at every update */
    fx_advance(f, ag, 2, deadline, 1);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_FAILED);
    assert_non_null(strstr(st_coord_failure(f->c), "1 of 2 agents acknowledged"));
    assert_non_null(strstr(st_coord_failure(f->c), "nothing was started"));
    assert_int_equal(st_coord_failure_reason_of(f->c), ST_COORD_FAILURE_RUNTIME);
    /* Nothing started, and the agents are told they are done. */
    f->now += ST_NS_PER_MS;
    fx_round(f, ag, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ag[i].n_starts, 0);
        assert_true(ag[i].done);
    }
}

static void test_coord_register_deadline_fails_as_registration(void **state)
{
    fx *f = fx_in(state, PLAN_10RPS, 3);
    f->cfg.register_timeout_ns = 5 * ST_NS_PER_S;
    fx_open(f);
    sim *ag = fx_sims(f, 2);
    sim_register_all(f, ag, 2);
    fx_advance(f, ag, 2, START_NS + 5 * ST_NS_PER_S - 1, 400 * ST_NS_PER_MS);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_WAITING);
    assert_int_equal(st_coord_failure_reason_of(f->c), ST_COORD_FAILURE_NONE);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ag[i].n_prepares, 0);
    }
    f->now = START_NS + 5 * ST_NS_PER_S;
    st_coord_tick(f->c);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_FAILED);
    assert_int_equal(st_coord_failure_reason_of(f->c), ST_COORD_FAILURE_REGISTRATION);
    assert_non_null(strstr(st_coord_failure(f->c), "2 of 3 agents"));
    /* Nobody may join a failed run. */
    assert_newcomer_refused(f, 3);
}

static void test_coord_agent_failing_to_prepare_fails_run(void **state)
{
    fx *f = fx_with_agents(state, PLAN_10RPS, 2);
    sim *ag = f->ag;
    fx_prepare(f, ag, 2);
    sim_fail(&ag[1], "the engine cannot do HTTP/2");
    sim_update(f, &ag[1]);
    assert_true(ag[1].done); /* a failed agent may leave */
    st_coord_tick(f->c);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_FAILED);
    assert_non_null(strstr(st_coord_failure(f->c), "the engine cannot do HTTP/2"));
    assert_int_equal(st_coord_failure_reason_of(f->c), ST_COORD_FAILURE_RUNTIME);
    sim_update(f, &ag[0]);
    assert_int_equal(ag[0].n_starts, 0);
}

static void test_coord_silent_before_start_fails_run(void **state)
{
    fx *f = fx_with_agents(state, PLAN_10RPS, 2);
    sim *ag = f->ag;
    fx_prepare(f, ag, 2);
    ag[1].silent = true;
    fx_advance(f, ag, 2, f->now + f->cfg.silence_ns, 250 * ST_NS_PER_MS);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_PREPARING);
    fx_advance(f, ag, 2, f->now + 250 * ST_NS_PER_MS, 250 * ST_NS_PER_MS);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_FAILED);
    assert_non_null(strstr(st_coord_failure(f->c), "silent"));
}

/* ---- the split ----------------------------------------------------------------------------- */

static void test_coord_split_residues_follow_weights(void **state)
{
    (void)state;
    fx *f = fx_opened(PLAN_10RPS, 5);
    /* Capacities 2, 1, 3, 1 threads; a capacity out of range (0, 5000) counts as 1. */
    const uint32_t threads[] = {2, 1, 3, 0, 5000};
    const uint32_t weight[] = {2, 1, 3, 1, 1};
    sim ag[5];
    sim *p[5];
    for (int i = 0; i < 5; i++) {
        sim_init(&ag[i], (uint64_t)i + 1, threads[i]);
        p[i] = &ag[i];
    }
    fx_start_run(f, ag, 5);
    assert_residues_cover(p, 5, weight);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ag[i].from_q, 0);
        assert_int_equal(ag[i].plan_threads, 0); /* each runs its own capacity */
        assert_int_equal(ag[i].n_stages, 1);
        assert_true(ag[i].stages[0].duration_s == 20 && ag[i].stages[0].to_rps == 10);
    }
    fx_end(f, ag, 5);

    /* With plan_threads, every agent runs (and weighs) that many threads. */
    f = fx_new(PLAN_10RPS, 3);
    f->cfg.plan_threads = 4;
    fx_open(f);
    const uint32_t four[] = {4, 4, 4};
    for (int i = 0; i < 3; i++) {
        sim_init(&ag[i], (uint64_t)i + 1, threads[i]);
    }
    fx_start_run(f, ag, 3);
    assert_residues_cover(p, 3, four);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ag[i].plan_threads, 4);
        sim_fini(&ag[i]);
    }
    fx_free(f);
}

static void test_coord_split_five_rps_over_eight_agents(void **state)
{
    fx *f = fx_with_agents(state,
                           "{\"url\": \"http://127.0.0.1:9/\", \"rate\": 5, \"duration\": 10}", 8);
    sim *ag = f->ag;
    sim *p[8];
    const uint32_t one[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    for (int i = 0; i < 8; i++) {
        p[i] = &ag[i];
    }
    fx_start_run(f, ag, 8);
    assert_residues_cover(p, 8, one);
    /* Over the run, the 50 requests go to the agents by residue: each gets 6 or 7, and in every
     * second the agents together send exactly 5. */
    int per_agent[8] = {0};
    for (uint64_t q = 0; q < 50; q++) {
        for (int i = 0; i < 8; i++) {
            if (ag[i].residues[0] == q % 8) {
                per_agent[i]++;
            }
        }
    }
    int total = 0;
    for (int i = 0; i < 8; i++) {
        assert_true(per_agent[i] == 6 || per_agent[i] == 7);
        total += per_agent[i];
    }
    assert_int_equal(total, 50);
    /* The summary's shares: every agent has one, and they add up to 5 rps. */
    cJSON *s = st_coord_summary(f->c);
    double sum = 0;
    for (int i = 0; i < 8; i++) {
        double share = num(agent_json(s, ag[i].id), "share_rps");
        assert_true(share > 0);
        assert_true(share > 0.625 - 1e-9 && share < 0.625 + 1e-9);
        sum += share;
    }
    assert_true(sum > 5 - 1e-9 && sum < 5 + 1e-9);
    cJSON_Delete(s);
}

/* ---- losses and joiners -------------------------------------------------------------------- */

static void test_coord_replan_after_loss(void **state)
{
    fx *f = fx_open_in(state, PLAN_10RPS, 3);
    sim *ag = f->ag;
    fx_sim(f, 1, 1);
    fx_sim(f, 2, 2);
    fx_sim(f, 3, 1);
    uint64_t t0 = fx_start_run(f, ag, 3);
    uint32_t epoch0 = ag[0].epoch;
    fx_advance(f, ag, 3, t0 + 3 * ST_NS_PER_S, 250 * ST_NS_PER_MS);
    ag[2].silent = true;
    uint64_t last_heard = f->now;
    /* Silent for less than silence_ns: still counted. */
    fx_advance(f, ag, 3, last_heard + f->cfg.silence_ns - 130 * ST_NS_PER_MS, 100 * ST_NS_PER_MS);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_RUNNING);
    assert_int_equal(st_coord_agents_alive(f->c), 3);
    assert_int_equal(ag[0].epoch, epoch0);
    /* Past it: lost at this tick, and the survivors share the load from a lead ahead. */
    f->now = last_heard + f->cfg.silence_ns + 130 * ST_NS_PER_MS;
    st_coord_tick(f->c);
    uint64_t lost_at = f->now;
    assert_int_equal(st_coord_agents_alive(f->c), 2);
    uint64_t lead = (uint64_t)f->cfg.run_heartbeat_ms * ST_NS_PER_MS + 250 * ST_NS_PER_MS;
    uint64_t want_q = first_due(10, lost_at + lead - t0);
    assert_true(want_q > 0);

    f->now += 10 * ST_NS_PER_MS;
    sim_update(f, &ag[0]);
    sim_update(f, &ag[1]);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ag[i].n_assignments, 1);
        assert_true(ag[i].asg_epoch > epoch0);
        assert_int_equal(ag[i].epoch, ag[i].asg_epoch);
        assert_int_equal(ag[i].from_q, want_q);
        assert_int_equal(ag[i].n_stages, 1);
    }
    sim *p[2] = {&ag[0], &ag[1]};
    const uint32_t w[2] = {1, 2};
    assert_residues_cover(p, 2, w);
    /* Applied: no further assignment. */
    f->now += 10 * ST_NS_PER_MS;
    sim_update(f, &ag[0]);
    assert_int_equal(ag[0].n_assignments, 1);

    /* The lost agent comes back: answered (it may deliver its records), told to stop, given no
     * share, and still lost. */
    ag[2].silent = false;
    int asg_before = ag[2].n_assignments;
    sim_update(f, &ag[2]);
    assert_false(ag[2].refused);
    assert_true(ag[2].stopped);
    assert_int_equal(ag[2].n_assignments, asg_before);
    assert_int_equal(st_coord_agents_alive(f->c), 2);

    cJSON *s = st_coord_summary(f->c);
    const cJSON *lost = agent_json(s, ag[2].id);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(lost, "lost")));
    assert_true(num(lost, "share_rps") == 0);
    double share =
        num(agent_json(s, ag[0].id), "share_rps") + num(agent_json(s, ag[1].id), "share_rps");
    assert_true(share > 10 - 1e-9 && share < 10 + 1e-9);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(agent_json(s, ag[0].id), "lost")));
    cJSON_Delete(s);
}

static void test_coord_replan_lead_follows_heartbeat(void **state)
{
    fx *f = fx_in(state, PLAN_10RPS, 2);
    f->cfg.run_heartbeat_ms = 200;
    fx_open(f);
    sim *ag = fx_sims(f, 2);
    uint64_t t0 = fx_start_run(f, ag, 2);
    fx_advance(f, ag, 2, t0 + 2 * ST_NS_PER_S, 200 * ST_NS_PER_MS);
    ag[1].silent = true;
    uint64_t heard = f->now;
    fx_advance(f, ag, 2, heard + f->cfg.silence_ns, 200 * ST_NS_PER_MS);
    assert_int_equal(st_coord_agents_alive(f->c), 2);
    fx_advance(f, ag, 2, heard + f->cfg.silence_ns + 1, 1);
    assert_int_equal(st_coord_agents_alive(f->c), 1);
    uint64_t want = first_due(10, f->now + 450 * ST_NS_PER_MS - t0);
    sim_update(f, &ag[0]);
    assert_int_equal(ag[0].from_q, want);
    assert_int_equal(ag[0].n_residues, 1);
    assert_int_equal(ag[0].period, 1);
}

static void test_coord_exited_agent_lost_at_once(void **state)
{
    char host[256] = "";
    assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
    fx *f = fx_with_agents(state, PLAN_10RPS, 2);
    sim *ag = f->ag;
    ag[0].host = "elsewhere";
    ag[0].pid = 4242;
    ag[1].host = host;
    ag[1].pid = 4242;
    uint64_t t0 = fx_start_run(f, ag, 2);
    fx_advance(f, ag, 2, t0 + ST_NS_PER_S, 250 * ST_NS_PER_MS);
    /* Another pid on this host, then the same pid: only this host's agent is lost, and at the
     * next tick, not after its silence. */
    st_coord_agent_exited(f->c, 4243);
    f->now += ST_NS_PER_MS;
    st_coord_tick(f->c);
    assert_int_equal(st_coord_agents_alive(f->c), 2);
    st_coord_agent_exited(f->c, 4242);
    f->now += ST_NS_PER_MS;
    st_coord_tick(f->c);
    assert_int_equal(st_coord_agents_alive(f->c), 1);
    sim_update(f, &ag[1]);
    assert_false(ag[1].refused);
    assert_true(ag[1].stopped); /* lost: whatever it still runs is in no plan */
    sim_update(f, &ag[0]);
    assert_false(ag[0].refused);
    assert_int_equal(ag[0].n_assignments, 1);
    assert_int_equal(ag[0].n_residues, 1);
    assert_int_equal(ag[0].period, 1);
}

static void test_coord_failed_agent_while_running_is_lost(void **state)
{
    uint64_t t0;
    fx *f = fx_running(state, 2, &t0);
    sim *ag = f->ag;
    fx_advance(f, ag, 2, t0 + 2 * ST_NS_PER_S, 250 * ST_NS_PER_MS);
    sim_fail(&ag[1], "out of file descriptors");
    sim_update(f, &ag[1]);
    assert_true(ag[1].done);
    st_coord_tick(f->c);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_RUNNING);
    assert_int_equal(st_coord_agents_alive(f->c), 1);
    sim_update(f, &ag[0]);
    assert_int_equal(ag[0].n_assignments, 1);
    assert_int_equal(ag[0].period, 1);
    cJSON *s = st_coord_summary(f->c);
    const cJSON *failed = agent_json(s, ag[1].id);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(failed, "lost")));
    assert_string_equal(str(failed, "state"), "failed");
    cJSON_Delete(s);
}

static void test_coord_every_agent_lost_ends_run(void **state)
{
    uint64_t t0;
    fx *f = fx_running(state, 1, &t0);
    sim *a = f->ag;
    fx_advance(f, a, 1, t0 + ST_NS_PER_S, 250 * ST_NS_PER_MS);
    a->silent = true;
    fx_advance(f, a, 1, f->now + f->cfg.silence_ns + ST_NS_PER_MS, 250 * ST_NS_PER_MS);
    assert_int_equal(st_coord_agents_alive(f->c), 0);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_DONE);
}

/* The numbers of the summary's incomplete_seconds, into out; returns how many. */
static int incomplete_of(const cJSON *j, uint32_t *out, int max)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "incomplete_seconds");
    assert_true(cJSON_IsArray(arr));
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        assert_true(n < max);
        out[n++] = (uint32_t)it->valuedouble;
    }
    return n;
}

/* With cfg.agent_p99, each agent's p99 is that of its latest record with responses (a record
 * without any leaves it), corrected and uncorrected; without it none is read. */
static void test_coord_agent_p99_of_its_latest_second(void **state)
{
    for (int on = 0; on < 2; on++) {
        fx *f = fx_in(state, PLAN_10RPS, 2);
        f->cfg.agent_p99 = on;
        fx_open(f);
        fx_sims(f, 2);
        sim *ag = f->ag;
        uint64_t t0 = fx_start_run(f, ag, 2);
        fx_advance(f, ag, 2, t0 + 3 * ST_NS_PER_S + 50 * ST_NS_PER_MS, 250 * ST_NS_PER_MS);
        st_stats *s[4];
        s[0] = fx_second(f, 0, 7, 50);
        s[1] = fx_second(f, 1, 8, 30);
        s[2] = fx_stats(f); /* nothing came back in second 2 */
        s[2]->second = 2;
        s[3] = fx_second(f, 0, 9, 20);
        for (int i = 0; i < 3; i++) {
            sim_push(&ag[0], s[i]);
        }
        sim_push(&ag[1], s[3]);
        fx_round(f, ag, 2);
        st_report r;
        assert_int_equal(st_coord_report(f->c, &r), 0);
        assert_int_equal(r.n_agents, 2);
        assert_int_equal(r.agents[0].have_p99, on);
        assert_int_equal(r.agents[1].have_p99, on);
        if (on) {
            assert_int_equal(r.agents[0].p99_second, 1);
            assert_true(r.agents[0].p99_ms == (double)st_hist_percentile(s[1]->lat, 99) / 1000.0);
            assert_true(r.agents[0].p99_uncorrected_ms ==
                        (double)st_hist_percentile(s[1]->lat_raw, 99) / 1000.0);
            assert_int_equal(r.agents[1].p99_second, 0);
            assert_true(r.agents[1].p99_ms == (double)st_hist_percentile(s[3]->lat, 99) / 1000.0);
            assert_true(r.agents[0].p99_ms != r.agents[1].p99_ms);
        }
        st_report_fini(&r);
        fx_free(f);
        *state = NULL;
    }
}

/* A lost agent that speaks again is answered: the records of seconds its share was still its own
 * count (and what became of requests it sent then), sends after its share moved do not. */
static void test_coord_lost_agent_delivers_what_it_sent_while_assigned(void **state)
{
    uint64_t t0;
    fx *f = fx_running(state, 2, &t0);
    sim *ag = f->ag;
    for (uint32_t k = 0; k < 3; k++) {
        fx_advance(f, ag, 2, t0 + (k + 1) * ST_NS_PER_S + 50 * ST_NS_PER_MS, 250 * ST_NS_PER_MS);
        for (int i = 0; i < 2; i++) {
            sim_push(&ag[i], fx_second(f, k, 5 + k + (uint64_t)i, 4));
        }
    }
    fx_round(f, ag, 2);
    ag[1].silent = true;
    uint64_t heard = f->now;
    fx_advance(f, ag, 2, heard + f->cfg.silence_ns + 100 * ST_NS_PER_MS, 100 * ST_NS_PER_MS);
    assert_int_equal(st_coord_agents_alive(f->c), 1);
    /* What it measured while paused: second 3 (its share), a second wholly after its share
     * moved with sends in it, and one with completions only. */
    uint32_t after = (uint32_t)((f->now + 2 * ST_NS_PER_S - t0) / ST_NS_PER_S);
    st_stats *s[3] = {fx_second(f, 3, 41, 3), fx_second(f, after, 42, 2),
                      fx_second(f, after + 1, 43, 2)};
    s[2]->c.sent = 0;
    for (int i = 0; i < 3; i++) {
        sim_push(&ag[1], s[i]);
    }
    sim_finish(&ag[1]);
    f->now += 3 * ST_NS_PER_S;
    ag[1].silent = false;
    sim_update(f, &ag[1]);
    assert_false(ag[1].refused);
    assert_true(ag[1].stopped);
    assert_true(ag[1].done); /* every record it announced is in */
    assert_int_equal(ag[1].acked, 6);
    assert_int_equal(st_coord_malformed(f->c), 1);
    cJSON *j = st_coord_summary(f->c);
    const cJSON *o = agent_json(j, ag[1].id);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "lost")));
    assert_string_equal(str(o, "state"), "lost");
    assert_string_equal(str(o, "reason"), "silent");
    /* Seconds 0 .. 2 (4 + 1 each), second 3, and the completions of the last one. */
    double want = 3 * 5 + (double)st_counts_done(&s[0]->c) + (double)st_counts_done(&s[2]->c);
    assert_true(num(o, "requests") == want);
    cJSON_Delete(j);

    /* The run ends degraded: the second it went silent in onwards lack it. */
    fx_advance(f, ag, 2, t0 + 20 * ST_NS_PER_S, 250 * ST_NS_PER_MS);
    sim_finish(&ag[0]);
    fx_advance(f, ag, 2, f->now + ST_NS_PER_S, 250 * ST_NS_PER_MS);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_DONE);
    j = st_coord_summary(f->c);
    assert_string_equal(str(j, "status"), "degraded");
    uint32_t inc[32] = {0};
    int n = incomplete_of(j, inc, 32);
    assert_true(n >= 1);
    assert_int_equal(inc[0], 3);
    for (int i = 1; i < n; i++) {
        assert_int_equal(inc[i], inc[i - 1] + 1);
    }
    assert_true(inc[n - 1] < after);
    cJSON_Delete(j);
}

/* The coordinator's own pause (no tick for 4 s) is not its agents' silence: none is lost, the
 * seconds it missed wait for their records, and an agent whose dead-man stopped its load
 * meanwhile is lost with its reason, the seconds from its stop on incomplete. */
static void test_coord_own_stall_blames_no_agent(void **state)
{
    uint64_t t0;
    fx *f = fx_running(state, 2, &t0);
    sim *ag = f->ag;
    fx_advance(f, ag, 2, t0 + 2 * ST_NS_PER_S + 50 * ST_NS_PER_MS, 250 * ST_NS_PER_MS);
    /* Paused: 4 s with no tick and no request taken; the agents measured seconds 2 .. 5. */
    f->now += 4 * ST_NS_PER_S;
    st_stats *s[2][4];
    for (int i = 0; i < 2; i++) {
        for (uint32_t k = 0; k < 4; k++) {
            s[i][k] = fx_second(f, 2 + k, 60 + 4 * (uint64_t)i + k, 5);
            sim_push(&ag[i], s[i][k]);
        }
    }
    /* Agent 2's dead-man stopped its load during the pause (4.2 s into the run). */
    assert_true(st_session_silenced(ag[1].s, "no acknowledged exchange for 2000 ms"));
    st_coord_tick(f->c);
    assert_int_equal(st_coord_agents_alive(f->c), 2);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_RUNNING);
    /* Held: the seconds it missed are not handed out empty. */
    assert_false(f->got[2]);
    fx_round(f, ag, 2);
    st_coord_tick(f->c);
    assert_int_equal(st_coord_agents_alive(f->c), 1);
    for (uint32_t k = 2; k < 6; k++) {
        assert_true(f->got[k]);
        const st_stats *want = fx_sum(f, s[0][k - 2], s[1][k - 2]);
        assert_int_equal(f->secs[k].c.sent, want->c.sent);
        assert_int_equal(f->secs[k].c.ok, want->c.ok);
    }
    cJSON *j = st_coord_summary(f->c);
    const cJSON *o = agent_json(j, ag[1].id);
    assert_string_equal(str(o, "state"), "lost");
    assert_non_null(strstr(str(o, "reason"), "it stopped its load: no acknowledged exchange"));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(agent_json(j, ag[0].id), "lost")));
    cJSON_Delete(j);
}

static void test_coord_late_joiner_gets_share(void **state)
{
    fx *f = fx_in(state, PLAN_10RPS, 1);
    f->cfg.accept_late_joiners = true;
    fx_open(f);
    sim *ag = f->ag;
    fx_sim(f, 1, 1);
    fx_sim(f, 2, 3);
    uint64_t t0 = fx_start_run(f, ag, 1);
    uint32_t epoch0 = ag[0].epoch;
    fx_advance(f, ag, 1, t0 + 3 * ST_NS_PER_S + 420 * ST_NS_PER_MS, 250 * ST_NS_PER_MS);

    uint64_t joined_at = f->now;
    assert_int_equal(sim_register(f, &ag[1]), 2);
    assert_int_equal(st_coord_agents_alive(f->c), 2);
    uint64_t lead = (uint64_t)f->cfg.run_heartbeat_ms * ST_NS_PER_MS + 250 * ST_NS_PER_MS;
    uint64_t want_q = first_due(10, joined_at + lead - t0);
    /* The joiner is prepared with its share from a request after the start. */
    f->now += 5 * ST_NS_PER_MS;
    sim_update(f, &ag[1]);
    assert_int_equal(ag[1].n_prepares, 1);
    assert_true(ag[1].from_q > 0);
    assert_int_equal(ag[1].from_q, want_q);
    assert_true(ag[1].asg_epoch > epoch0);
    assert_int_equal(ag[1].n_starts, 0);
    /* Ready at that epoch: the start instant is the run's t0. */
    f->now += 5 * ST_NS_PER_MS;
    sim_update(f, &ag[1]);
    assert_int_equal(ag[1].n_starts, 1);
    assert_int_equal(ag[1].t0, t0);
    assert_true(ag[1].started);
    /* The first agent gets the new split from the same request. */
    sim_update(f, &ag[0]);
    assert_int_equal(ag[0].n_assignments, 1);
    assert_int_equal(ag[0].asg_epoch, ag[1].asg_epoch);
    assert_int_equal(ag[0].from_q, want_q);
    sim *p[2] = {&ag[0], &ag[1]};
    const uint32_t w[2] = {1, 3};
    assert_residues_cover(p, 2, w);
    /* A re-sent registration does not add it twice. */
    assert_int_equal(sim_register(f, &ag[1]), 2);
    assert_int_equal(st_coord_agents_alive(f->c), 2);
}

/* ---- merging ------------------------------------------------------------------------------- */

static void test_coord_records_merged_exactly(void **state)
{
    uint64_t t0;
    fx *f = fx_running(state, 2, &t0);
    sim *ag = f->ag;
    st_stats *total = fx_stats(f);
    for (uint32_t k = 0; k < 3; k++) {
        st_stats *want = fx_stats(f);
        fx_advance(f, ag, 2, t0 + (k + 1) * ST_NS_PER_S + 100 * ST_NS_PER_MS, 250 * ST_NS_PER_MS);
        for (int i = 0; i < 2; i++) {
            st_stats *in = fx_second(f, k, 1000 * (uint64_t)k + (uint64_t)i + 1, 200 + 37 * i);
            sim_push(&ag[i], in);
            st_stats_merge(want, in);
            st_stats_merge(total, in);
        }
        fx_round(f, ag, 2);
        for (int i = 0; i < 2; i++) {
            assert_int_equal(ag[i].acked, k + 1);
            assert_int_equal(ag[i].n_pending, 0);
        }
        st_coord_tick(f->c);
        assert_true(f->got[k]);
        assert_stats_equal(&f->secs[k], want);
        assert_int_equal(f->sec_agents[k], 2);
        assert_true(f->sec_target[k] > 10 - 1e-9 && f->sec_target[k] < 10 + 1e-9);
    }
    assert_stats_equal(st_coord_total(f->c), total);
}

/* ---- results per request name ---- */

#define PLAN_NAMED                                                                                 \
    "{\"requests\": [{\"name\": \"home\", \"url\": \"http://127.0.0.1:9/h\", \"weight\": 3},"       \
    " {\"name\": \"login\", \"url\": \"http://127.0.0.1:9/l\"},"                                   \
    " {\"name\": \"home\", \"url\": \"http://127.0.0.1:9/h2\"},"                                   \
    " {\"name\": \"search\", \"url\": \"http://127.0.0.1:9/s\"}], \"rate\": 10, \"duration\": 20}"

/* A second of 3 names (home, login, search) whose whole is the sum of its parts; name `skip`
 * holds nothing. Held by the fixture. */
static st_stats *fx_named(fx *f, uint32_t second, uint64_t seed, int skip)
{
    st_stats *s = fx_stats(f);
    assert_int_equal(st_stats_names(s, 3), 0);
    s->second = second;
    for (int i = 0; i < 3; i++) {
        if (i == skip) {
            continue;
        }
        st_test_add_part(s, (size_t)i, fx_second(f, second, seed * 7 + (uint64_t)i, 30 + 11 * i));
    }
    s->c.inflight = 3;
    return s;
}

/* Three agents' per-name parts are merged exactly into each second and the total, name by name;
 * the summary has requests_by_name in the plan's name order with the contract's layout. Records
 * whose parts do not fit the plan are dropped as malformed. */
static void test_coord_records_by_name_merged_exactly(void **state)
{
    fx *f = fx_with_agents(state, PLAN_NAMED, 3);
    uint64_t t0 = fx_start_run(f, f->ag, 3);
    sim *ag = f->ag;
    st_stats *total = fx_stats(f);
    for (uint32_t k = 0; k < 2; k++) {
        st_stats *want = fx_stats(f);
        fx_advance(f, ag, 3, t0 + (k + 1) * ST_NS_PER_S + 100 * ST_NS_PER_MS, 250 * ST_NS_PER_MS);
        for (int i = 0; i < 3; i++) {
            st_stats *in = fx_named(f, k, 100 * (uint64_t)k + (uint64_t)i + 1, (i + (int)k) % 4);
            sim_push(&ag[i], in);
            st_stats_merge(want, in);
            st_stats_merge(total, in);
        }
        fx_round(f, ag, 3);
        st_coord_tick(f->c);
        assert_true(f->got[k]);
        assert_stats_parts_equal(&f->secs[k], want);
    }
    assert_stats_parts_equal(st_coord_total(f->c), total);
    assert_int_equal(st_coord_malformed(f->c), 0);

    /* A part for a fourth name, and a record without its parts: both dropped. */
    Stampede__SecondRecord *r0 = sim_build(&ag[0], fx_named(f, 2, 9, -1));
    r0->by_name[2]->name = 3;
    Stampede__SecondRecord *r1 = sim_build(&ag[0], fx_named(f, 2, 10, -1));
    r1->n_by_name = 0;
    sim_queue(&ag[0], r0);
    sim_queue(&ag[0], r1);
    sim_update(f, &ag[0]);
    assert_int_equal(st_coord_malformed(f->c), 2);
    assert_stats_parts_equal(st_coord_total(f->c), total);

    cJSON *j = st_coord_summary(f->c);
    const cJSON *by = cJSON_GetObjectItemCaseSensitive(j, "requests_by_name");
    assert_non_null(by);
    const char *names[] = {"home", "login", "search"};
    const char *keys[] = {"requests", "errors", "latency_ms", "latency_uncorrected_ms"};
    const cJSON *it = by->child;
    for (int i = 0; i < 3; i++, it = it->next) {
        assert_non_null(it);
        assert_string_equal(it->string, names[i]);
        const cJSON *k = it->child;
        for (int n = 0; n < 4; n++, k = k->next) {
            assert_non_null(k);
            assert_string_equal(k->string, keys[n]);
        }
        assert_null(k);
        const cJSON *req = cJSON_GetObjectItemCaseSensitive(it, "requests");
        assert_true(num(req, "total") == (double)st_counts_done(&total->names[i].c));
        assert_true(num(req, "sent") == (double)total->names[i].c.sent);
        assert_true(num(cJSON_GetObjectItemCaseSensitive(it, "errors"), "http_5xx") ==
                    (double)total->names[i].c.http_5xx);
        assert_true(num(cJSON_GetObjectItemCaseSensitive(it, "latency_ms"), "p99") ==
                    st_us_to_ms(st_hist_percentile(total->names[i].lat, 99)));
    }
    assert_null(it);
    /* requests_by_name is the last member. */
    assert_string_equal(cJSON_GetArrayItem(j, cJSON_GetArraySize(j) - 1)->string,
                        "requests_by_name");
    cJSON_Delete(j);
}

static void test_coord_duplicate_record_counted_once(void **state)
{
    uint64_t t0;
    fx *f = fx_running(state, 1, &t0);
    sim *a = f->ag;
    f->now = t0 + 1100 * ST_NS_PER_MS;
    const st_stats *s0 = fx_second(f, 0, 11, 100), *s1 = fx_second(f, 1, 12, 60);
    sim_push(a, s0);
    Stampede__SecondRecord *first = a->pending[0];
    sim_update(f, a);
    assert_int_equal(a->acked, 1);
    /* The reply was lost: the agent sends record 1 again, then 1 and 2 together. */
    assert_int_equal(exchange_acked(f, a, &first, 1), 1);
    f->now = t0 + 2100 * ST_NS_PER_MS;
    sim_push(a, s1);
    Stampede__SecondRecord *both[2] = {first, a->pending[0]};
    assert_int_equal(exchange_acked(f, a, both, 2), 2);

    const st_stats *want = fx_sum(f, s0, s1);
    assert_stats_equal(st_coord_total(f->c), want);
    cJSON *s = st_coord_summary(f->c);
    assert_true(num(s, "duplicate_records") == 2);
    assert_true(num(s, "malformed_messages") == 0);
    assert_int_equal(st_coord_malformed(f->c), 0);
    assert_true(num(cJSON_GetObjectItemCaseSensitive(s, "requests"), "total") ==
                (double)st_counts_done(&want->c));
    cJSON_Delete(s);
    st_coord_tick(f->c);
    assert_true(f->got[0] && f->got[1]);
    assert_stats_equal(&f->secs[0], s0);
    assert_stats_equal(&f->secs[1], s1);
}

static void test_coord_record_gap_not_acknowledged(void **state)
{
    uint64_t t0;
    fx *f = fx_running(state, 1, &t0);
    sim *a = f->ag;
    f->now = t0 + 3100 * ST_NS_PER_MS;
    st_stats *s[3];
    for (uint32_t k = 0; k < 3; k++) {
        s[k] = fx_second(f, k, 20 + k, 50);
        sim_push(a, s[k]);
    }
    Stampede__SecondRecord *r1 = a->pending[0], *r2 = a->pending[1], *r3 = a->pending[2];
    /* 2 before 1: nothing taken. */
    assert_int_equal(exchange_acked(f, a, &r2, 1), 0);
    assert_int_equal(st_counts_done(&st_coord_total(f->c)->c), 0);
    /* 1 then 3: 1 taken, 3 waits for 2. */
    Stampede__SecondRecord *gap[2] = {r1, r3};
    assert_int_equal(exchange_acked(f, a, gap, 2), 1);
    assert_stats_equal(st_coord_total(f->c), s[0]);
    /* 2 and 3: all taken, acked follows. */
    Stampede__SecondRecord *rest[2] = {r2, r3};
    assert_int_equal(exchange_acked(f, a, rest, 2), 3);
    st_stats *want = fx_sum(f, s[0], s[1]);
    st_stats_merge(want, s[2]);
    assert_stats_equal(st_coord_total(f->c), want);
    cJSON *j = st_coord_summary(f->c);
    assert_true(num(j, "duplicate_records") == 0);
    cJSON_Delete(j);
}

static void test_coord_malformed_record_dropped(void **state)
{
    uint64_t t0;
    fx *f = fx_running(state, 1, &t0);
    sim *a = f->ag;
    f->now = t0 + 3100 * ST_NS_PER_MS;
    st_stats *s[3];
    Stampede__SecondRecord *r[3];
    for (uint32_t k = 0; k < 3; k++) {
        s[k] = fx_second(f, k, 40 + k, 80);
        r[k] = sim_build(a, s[k]);
    }
    /* Record 1: histogram indexes not increasing; record 2: more HTTP responses than samples
     * (spoilt before the agent queues them). */
    Stampede__Histogram *h = r[0]->latency;
    assert_true(h->n_index_gap >= 2);
    h->index_gap[1] = 0;
    r[1]->counts->ok += 5;
    for (int k = 0; k < 3; k++) {
        sim_queue(a, r[k]);
    }
    sim_update(f, a);
    /* Dropped, yet acknowledged: the agent must not send them forever. */
    assert_int_equal(a->acked, 3);
    assert_int_equal(st_coord_malformed(f->c), 2);
    assert_stats_equal(st_coord_total(f->c), s[2]);
    cJSON *j = st_coord_summary(f->c);
    assert_true(num(j, "malformed_messages") == 2);
    assert_true(num(agent_json(j, a->id), "requests") == (double)st_counts_done(&s[2]->c));
    cJSON_Delete(j);
}

static void test_coord_record_far_beyond_the_run_dropped(void **state)
{
    uint64_t t0;
    fx *f = fx_running(state, 1, &t0);
    sim *a = f->ag;
    f->now = t0 + 1100 * ST_NS_PER_MS;
    const st_stats *s0 = fx_second(f, 0, 1, 30);
    sim_push(a, s0);
    sim_push(a, fx_second(f, 4000000000u, 2, 30));
    sim_update(f, a);
    assert_int_equal(a->acked, 2);
    /* Counted as malformed, and therefore nowhere else. */
    assert_int_equal(st_coord_malformed(f->c), 1);
    assert_stats_equal(st_coord_total(f->c), s0);
    cJSON *j = st_coord_summary(f->c);
    assert_true(num(agent_json(j, a->id), "requests") == (double)st_counts_done(&s0->c));
    cJSON_Delete(j);
}

/* ---- finishing seconds --------------------------------------------------------------------- */

static void test_coord_second_final_when_all_reported(void **state)
{
    uint64_t t0;
    fx *f = fx_running(state, 2, &t0);
    sim *ag = f->ag;
    const st_stats *s[2] = {fx_second(f, 0, 5, 10), fx_second(f, 0, 6, 12)};
    fx_advance(f, ag, 2, t0 + 1100 * ST_NS_PER_MS, 250 * ST_NS_PER_MS);
    assert_int_equal(f->n_handed, 0);
    sim_push(&ag[0], s[0]);
    sim_update(f, &ag[0]);
    st_coord_tick(f->c);
    assert_int_equal(f->n_handed, 0); /* agent 2 has not reported second 0 */
    sim_push(&ag[1], s[1]);
    sim_update(f, &ag[1]);
    st_coord_tick(f->c);
    assert_int_equal(f->n_handed, 1);
    assert_true(f->got[0]);
    assert_stats_equal(&f->secs[0], fx_sum(f, s[0], s[1]));
    /* Nothing else is final before its end. */
    st_coord_tick(f->c);
    assert_int_equal(f->n_handed, 1);
}

static void test_coord_second_final_after_grace(void **state)
{
    uint64_t t0;
    fx *f = fx_running(state, 2, &t0);
    sim *ag = f->ag;
    const st_stats *a0 = fx_second(f, 0, 7, 25), *b0 = fx_second(f, 0, 8, 15);
    /* Only agent 1 reports second 0; agent 2 keeps talking without it. */
    fx_advance(f, ag, 2, t0 + 1050 * ST_NS_PER_MS, 50 * ST_NS_PER_MS);
    sim_push(&ag[0], a0);
    uint64_t end0 = t0 + ST_NS_PER_S;
    fx_advance(f, ag, 2, end0 + f->cfg.grace_ns - 1, 100 * ST_NS_PER_MS);
    assert_false(f->got[0]);
    fx_advance(f, ag, 2, end0 + f->cfg.grace_ns, 1);
    assert_true(f->got[0]);
    assert_stats_equal(&f->secs[0], a0);
    assert_int_equal(f->sec_agents[0], 2);

    /* Agent 2's second 0 arrives after it was handed out: in the total, and late. */
    f->now += ST_NS_PER_MS;
    sim_push(&ag[1], b0);
    sim_update(f, &ag[1]);
    assert_int_equal(ag[1].acked, 1);
    st_coord_tick(f->c);
    assert_stats_equal(&f->secs[0], a0);
    const st_stats *want = fx_sum(f, a0, b0);
    assert_stats_equal(st_coord_total(f->c), want);
    cJSON *j = st_coord_summary(f->c);
    assert_true(num(j, "late_records") == 1);
    assert_true(num(cJSON_GetObjectItemCaseSensitive(j, "requests"), "total") ==
                (double)st_counts_done(&want->c));
    assert_true(num(agent_json(j, ag[1].id), "requests") == (double)st_counts_done(&b0->c));
    cJSON_Delete(j);
}

/* A record whose second cannot be stored for want of memory still counts in the total, and is
 * counted as what it is: not a late record. */
static void test_coord_out_of_memory_in_the_merge_is_not_late(void **state)
{
    uint64_t t0;
    fx *f = fx_running(state, 1, &t0);
    sim *ag = f->ag;
    const st_stats *a0 = fx_second(f, 0, 7, 25);
    fx_advance(f, ag, 1, t0 + 1050 * ST_NS_PER_MS, 50 * ST_NS_PER_MS);
    sim_push(&ag[0], a0);
    g_fail_realloc = true; /* the window cannot grow to hold second 0 */
    sim_update(f, &ag[0]);
    g_fail_realloc = false;
    assert_int_equal(ag[0].acked, 1);
    assert_stats_equal(st_coord_total(f->c), a0);
    st_report r;
    assert_int_equal(st_coord_report(f->c, &r), 0);
    assert_int_equal(r.late_records, 0);
    assert_int_equal(r.unmerged_records, 1);
    cJSON *j = st_report_json(&r);
    assert_non_null(j);
    assert_true(num(j, "late_records") == 0);
    assert_true(num(j, "out_of_memory_records") == 1);
    cJSON_Delete(j);
    st_report_fini(&r);
    /* A run without the failure has no such key. */
    j = st_coord_summary(f->c);
    assert_non_null(j);
    cJSON_Delete(j);
}

/* ---- memory over a long run ---------------------------------------------------------------- */

#if defined(__SANITIZE_ADDRESS__)
#define HEAP_COUNTED 0 /* ASan's allocator is not the one mallinfo2 reads */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HEAP_COUNTED 0
#else
#define HEAP_COUNTED 1
#endif
#else
#define HEAP_COUNTED 1
#endif

#define LONG_SECONDS 2200

/* What on_second saw of each second of a long run: a digest of its row, field by field. */
typedef struct long_run {
    uint64_t digest[LONG_SECONDS];
    uint32_t n;
} long_run;

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * 1099511628211ULL;
    }
    return h;
}

static uint64_t row_digest(const st_report_second *r)
{
    uint64_t h = 14695981039346656037ULL;
    h = fnv(h, &r->second, sizeof(r->second));
    h = fnv(h, &r->target_rps, sizeof(r->target_rps));
    h = fnv(h, &r->agents, sizeof(r->agents));
    h = fnv(h, &r->counts, sizeof(r->counts));
    h = fnv(h, &r->latency, sizeof(r->latency));
    h = fnv(h, &r->latency_uncorrected, sizeof(r->latency_uncorrected));
    return fnv(h, &r->latency_with_timeouts, sizeof(r->latency_with_timeouts));
}

static void on_long_second(void *ctx, const st_coord_second *sec)
{
    long_run *lr = ctx;
    assert_int_equal(sec->second, lr->n);
    assert_true(lr->n < LONG_SECONDS);
    lr->digest[lr->n++] = row_digest(sec->row);
}

#if HEAP_COUNTED
#include <malloc.h>
#endif

/* The bytes malloc has handed out and not taken back; 0 when that cannot be read (ASan). */
static size_t heap_in_use(void)
{
#if HEAP_COUNTED
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#else
    return 0;
#endif
}

/* A finished second leaves only its row behind: over half an hour of seconds, each with its
 * record and histograms, the core's heap grows by less than 160 bytes per second handed out
 * (not measured under ASan), and the report still has every row as on_second saw it. */
static void test_coord_long_run_keeps_rows_only(void **state)
{
    (void)state;
    st_stats in; /* every second's record: 10 responses, no timeout */
    make_second(&in, 0, 42, 10);
    in.c.err_timeout = 0;
    long_run *lr = calloc(1, sizeof(*lr));
    assert_non_null(lr);
    fx *f = fx_new("{\"url\": \"http://127.0.0.1:9/\", \"rate\": 10, \"duration\": 2300}", 1);
    f->cfg.on_second = on_long_second;
    f->cfg.ctx = lr;
    fx_open(f);
    sim ag[1];
    sim_init(&ag[0], 1, 1);
    uint64_t t0 = fx_start_run(f, ag, 1);
    size_t at_300 = 0, at_end = 0;
    for (uint32_t k = 0; k < LONG_SECONDS; k++) {
        f->now = t0 + (k + 1ULL) * ST_NS_PER_S + 100 * ST_NS_PER_MS;
        in.second = k;
        sim_push(&ag[0], &in);
        sim_update(f, &ag[0]);
        assert_int_equal(ag[0].n_pending, 0);
        st_arena_fini(&ag[0].arena); /* the records it sent are acknowledged */
        st_coord_tick(f->c);
        assert_int_equal(lr->n, k + 1);
        if (k == 299) {
            at_300 = heap_in_use();
        }
    }
    at_end = heap_in_use();
    double per_second = ((double)at_end - (double)at_300) / (LONG_SECONDS - 300);
    if (HEAP_COUNTED) {
        print_message("heap: %zu bytes after 300 s, %zu after %d s: %.1f bytes per second\n",
                      at_300, at_end, LONG_SECONDS, per_second);
        assert_true(per_second < 160);
    }

    st_report r;
    assert_int_equal(st_coord_report(f->c, &r), 0);
    assert_int_equal(r.n_seconds, LONG_SECONDS);
    for (uint32_t k = 0; k < LONG_SECONDS; k++) {
        assert_int_equal(row_digest(&r.seconds[k]), lr->digest[k]);
    }
    st_report_fini(&r);
    st_stats_fini(&in);
    sim_fini(&ag[0]);
    fx_free(f);
    free(lr);
}

/* ---- the end ------------------------------------------------------------------------------- */

static void test_coord_done_after_every_last_record(void **state)
{
    fx *f =
        fx_open_in(state, "{\"url\": \"http://127.0.0.1:9/\", \"rate\": 10, \"duration\": 2}", 2);
    sim *ag = f->ag;
    fx_sim(f, 1, 2);
    fx_sim(f, 2, 1);
    uint64_t t0 = fx_start_run(f, ag, 2);
    /* Realised starts 1.5 ms apart. */
    sim_first_send(&ag[0], t0 + 250000);
    sim_first_send(&ag[1], t0 + 1750000);
    st_stats *s[2][2];
    for (uint32_t k = 0; k < 2; k++) {
        fx_advance(f, ag, 2, t0 + (k + 1) * ST_NS_PER_S + 100 * ST_NS_PER_MS, 250 * ST_NS_PER_MS);
        for (int i = 0; i < 2; i++) {
            s[i][k] = fx_second(f, k, 77 + 10 * k + (uint64_t)i, 40 + 10 * i);
            s[i][k]->c.err_connect = (uint64_t)i;
            sim_push(&ag[i], s[i][k]);
        }
    }
    fx_round(f, ag, 2);
    st_coord_tick(f->c);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_DRAINING);

    /* Agent 1 is done with 3 records, the third not delivered yet. */
    const st_stats *tail = fx_second(f, 2, 99, 3);
    sim_push(&ag[0], tail);
    sim_finish(&ag[0]);
    assert_int_equal(ag[0].last_seq, 3);
    f->now += 100 * ST_NS_PER_MS;
    /* An update saying so without the third record (crafted: the session would carry it). */
    Stampede__Envelope *e = sim_exchange(f, &ag[0], NULL, 0, NULL);
    sim_observe(&ag[0], e);
    stampede__envelope__free_unpacked(e, NULL);
    assert_int_equal(ag[0].acked, 2);
    assert_false(ag[0].done);
    sim_finish(&ag[1]);
    sim_update(f, &ag[1]);
    assert_true(ag[1].done);
    st_coord_tick(f->c);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_DRAINING);
    assert_int_equal(ag[0].n_pending, 1);
    f->now += 100 * ST_NS_PER_MS;
    sim_update(f, &ag[0]); /* the session's update carries it */
    assert_int_equal(ag[0].acked, 3);
    assert_true(ag[0].done);
    st_coord_tick(f->c);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_DONE);
    /* Every reply now says done. */
    ag[1].state = STAMPEDE__AGENT_STATE__AGENT_DRAINING;
    sim_update(f, &ag[1]);
    assert_true(ag[1].done);
    /* Every second was handed out, the drain's second 2 too. */
    assert_true(f->got[0] && f->got[1] && f->got[2]);
    assert_stats_equal(&f->secs[2], tail);

    cJSON *j = st_coord_summary(f->c);
    assert_string_equal(str(j, "run_id"), RUN_ID);
    assert_true(num(j, "start_skew_ms") == 1.5);
    assert_true(num(j, "duration_s") == 2);
    const cJSON *agents = cJSON_GetObjectItemCaseSensitive(j, "agents");
    assert_int_equal(cJSON_GetArraySize(agents), 2);
    double sum_requests = 0, sum_share = 0;
    for (int i = 0; i < 2; i++) {
        const cJSON *o = agent_json(j, ag[i].id);
        st_counts c = {0};
        st_counts_add(&c, &s[i][0]->c);
        st_counts_add(&c, &s[i][1]->c);
        if (i == 0) {
            st_counts_add(&c, &tail->c);
        }
        assert_true(num(o, "requests") == (double)st_counts_done(&c));
        assert_true(num(o, "ok") == (double)c.ok);
        assert_true(num(o, "failed") == (double)st_counts_failed(&c));
        assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "lost")));
        sum_requests += num(o, "requests");
        sum_share += num(o, "share_rps");
    }
    assert_true(num(agent_json(j, ag[0].id), "share_rps") >
                num(agent_json(j, ag[1].id), "share_rps"));
    assert_true(sum_share > 10 - 1e-9 && sum_share < 10 + 1e-9);
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(j, "requests");
    assert_true(num(req, "total") == sum_requests);
    assert_true(num(req, "total") == (double)st_counts_done(&st_coord_total(f->c)->c));
    assert_true(num(j, "late_records") == 0);
    assert_true(num(j, "duplicate_records") == 0);
    assert_true(num(j, "malformed_messages") == 0);
    /* A clean run: completed, and no second is incomplete. */
    assert_string_equal(str(j, "status"), "completed");
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "incomplete_seconds"));
    cJSON_Delete(j);
}

static void test_coord_missing_last_records_end_by_deadline(void **state)
{
    fx *f = fx_in(state, "{\"url\": \"http://127.0.0.1:9/\", \"rate\": 10, \"duration\": 2}", 2);
    f->cfg.end_timeout_ns = 3 * ST_NS_PER_S;
    fx_open(f);
    sim *ag = fx_sims(f, 2);
    uint64_t t0 = fx_start_run(f, ag, 2);
    fx_advance(f, ag, 2, t0 + 2 * ST_NS_PER_S, 250 * ST_NS_PER_MS);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_DRAINING);
    sim_finish(&ag[0]);
    /* Agent 2 keeps saying it is draining, never done. */
    assert_true(st_session_stop(ag[1].s));
    sim_sync(&ag[1]);
    assert_int_equal(ag[1].state, STAMPEDE__AGENT_STATE__AGENT_DRAINING);
    uint64_t deadline = t0 + 2 * ST_NS_PER_S + 5 * ST_NS_PER_S + f->cfg.end_timeout_ns;
    fx_advance(f, ag, 2, deadline - 1, 500 * ST_NS_PER_MS);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_DRAINING);
    fx_advance(f, ag, 2, deadline, 1);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_DONE);
    assert_int_equal(st_coord_agents_alive(f->c), 1);
}

/* ---- stop and rate changes ----------------------------------------------------------------- */

static void test_coord_stop_before_start_fails_with_code_5(void **state)
{
    (void)state;
    for (int preparing = 0; preparing < 2; preparing++) {
        fx *f = fx_opened(PLAN_10RPS, 2);
        sim ag[2];
        sims_init(ag, 2);
        sim_register(f, &ag[0]);
        if (preparing) {
            sim_register(f, &ag[1]);
            st_coord_tick(f->c);
            fx_round(f, ag, 2);
            assert_int_equal(st_coord_get_state(f->c), ST_COORD_PREPARING);
        }
        st_coord_stop(f->c);
        assert_int_equal(st_coord_get_state(f->c), ST_COORD_FAILED);
        assert_int_equal(st_coord_failure_reason_of(f->c), ST_COORD_FAILURE_STOPPED);
        assert_non_null(strstr(st_coord_failure(f->c), "stopped before the start"));
        f->now += ST_NS_PER_MS;
        st_coord_tick(f->c);
        sim_update(f, &ag[0]);
        assert_true(ag[0].done);
        assert_int_equal(ag[0].n_starts, 0);
        /* A second stop changes nothing. */
        st_coord_stop(f->c);
        assert_int_equal(st_coord_failure_reason_of(f->c), ST_COORD_FAILURE_STOPPED);
        assert_int_equal(f->n_handed, 0);
        fx_end(f, ag, 2);
    }
}

static void test_coord_stop_during_run(void **state)
{
    fx *f = fx_in(state, PLAN_10RPS, 2);
    f->cfg.accept_late_joiners = true;
    fx_open(f);
    sim *ag = fx_sims(f, 2);
    uint64_t t0 = fx_start_run(f, ag, 2);
    fx_advance(f, ag, 2, t0 + 3 * ST_NS_PER_S + 500 * ST_NS_PER_MS, 250 * ST_NS_PER_MS);
    assert_false(ag[0].stopped);
    uint32_t epoch0 = ag[0].epoch;
    /* A graceful stop: the rate becomes 0 a re-plan lead ahead, for every agent at once, and the
     * agents are told to stop once that instant has passed. */
    uint64_t lead = (uint64_t)f->cfg.run_heartbeat_ms * ST_NS_PER_MS + 250 * ST_NS_PER_MS;
    uint64_t at = f->now + lead;
    double at_s = (double)(at - t0) / 1e9;
    st_coord_stop(f->c);
    assert_int_equal(st_coord_change_rate(f->c, 20), ST_ESTATE);
    f->now += 10 * ST_NS_PER_MS;
    fx_round(f, ag, 2);
    for (int i = 0; i < 2; i++) {
        assert_false(ag[i].stopped);
        assert_int_equal(ag[i].n_assignments, 1);
        assert_true(ag[i].asg_epoch > epoch0);
        assert_int_equal(ag[i].from_q, (uint64_t)ceil(10 * at_s - 1e-9));
        assert_int_equal(ag[i].n_stages, 2);
        assert_true(ag[i].stages[1].from_rps == 0 && ag[i].stages[1].to_rps == 0);
    }
    st_coord_tick(f->c);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_RUNNING);
    /* A second stop changes nothing. */
    st_coord_stop(f->c);
    fx_advance(f, ag, 2, at - ST_NS_PER_MS, 100 * ST_NS_PER_MS);
    assert_false(ag[0].stopped || ag[1].stopped);
    assert_int_equal(ag[0].n_assignments, 1);
    f->now = at;
    st_coord_tick(f->c);
    f->now += 10 * ST_NS_PER_MS;
    fx_round(f, ag, 2);
    assert_true(ag[0].stopped && ag[1].stopped);
    assert_int_equal(ag[0].state, STAMPEDE__AGENT_STATE__AGENT_DRAINING);
    st_coord_tick(f->c);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_DRAINING);
    /* The run lasted until the stop's instant, and asked for exactly what was due before it. */
    assert_true(st_coord_duration_s(f->c) > at_s - 1e-9 && st_coord_duration_s(f->c) < at_s + 1e-9);
    assert_true(st_coord_target_requests(f->c) > 10 * at_s - 1e-6 &&
                st_coord_target_requests(f->c) < 10 * at_s + 1e-6);
    /* A stopped run takes no late joiner either. */
    assert_newcomer_refused(f, 9);
    sim_finish(&ag[0]);
    sim_finish(&ag[1]);
    f->now += 10 * ST_NS_PER_MS;
    fx_round(f, ag, 2);
    st_coord_tick(f->c);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_DONE);
}

static void test_coord_change_rate_replans(void **state)
{
    (void)state;
    fx *f = fx_opened(PLAN_10RPS, 2);
    /* Not running yet. */
    assert_int_equal(st_coord_change_rate(f->c, 20), ST_ESTATE);
    sim ag[2];
    sims_init(ag, 2);
    uint64_t t0 = fx_start_run(f, ag, 2);
    uint32_t epoch0 = ag[0].epoch;
    fx_advance(f, ag, 2, t0 + 4 * ST_NS_PER_S + 100 * ST_NS_PER_MS, 250 * ST_NS_PER_MS);
    assert_int_equal(st_coord_change_rate(f->c, -1), ST_EINVAL);
    assert_int_equal(st_coord_change_rate(f->c, 2e9), ST_EINVAL);
    assert_int_equal(st_coord_change_rate(f->c, NAN), ST_EINVAL);
    assert_int_equal(ag[0].n_assignments, 0);

    uint64_t lead = (uint64_t)f->cfg.run_heartbeat_ms * ST_NS_PER_MS + 250 * ST_NS_PER_MS;
    double at_s = (double)(f->now + lead - t0) / 1e9; /* 4.1 s + the lead */
    assert_int_equal(st_coord_change_rate(f->c, 30), 0);
    f->now += 10 * ST_NS_PER_MS;
    fx_round(f, ag, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ag[i].n_assignments, 1);
        assert_true(ag[i].asg_epoch > epoch0);
        /* N(t) is unchanged before the change: 10 rps up to at_s, then 30 rps to the end. */
        assert_int_equal(ag[i].from_q, (uint64_t)ceil(10 * at_s - 1e-9));
        assert_int_equal(ag[i].n_stages, 2);
        assert_true(ag[i].stages[0].from_rps == 10 && ag[i].stages[0].to_rps == 10);
        assert_true(ag[i].stages[0].duration_s > at_s - 1e-9 &&
                    ag[i].stages[0].duration_s < at_s + 1e-9);
        assert_true(ag[i].stages[1].from_rps == 30 && ag[i].stages[1].to_rps == 30);
        assert_true(ag[i].stages[1].duration_s > 20 - at_s - 1e-9 &&
                    ag[i].stages[1].duration_s < 20 - at_s + 1e-9);
    }
    sim *p[2] = {&ag[0], &ag[1]};
    const uint32_t w[2] = {1, 1};
    assert_residues_cover(p, 2, w);
    /* The change is in the report (and the summary's rate_changes), said to be the API's. */
    st_report rep;
    assert_int_equal(st_coord_report(f->c, &rep), 0);
    assert_int_equal(rep.n_rate_changes, 1);
    assert_true(fabs(rep.rate_changes[0].at_s - at_s) < 1e-9);
    assert_true(rep.rate_changes[0].from_rps == 10 && rep.rate_changes[0].to_rps == 30);
    assert_string_equal(rep.rate_changes[0].by, "api");
    cJSON *sum = st_report_json(&rep);
    cJSON *rc0 = cJSON_GetArrayItem(cJSON_GetObjectItem(sum, "rate_changes"), 0);
    assert_non_null(rc0);
    assert_true(cJSON_GetObjectItem(rc0, "to_rps")->valuedouble == 30);
    assert_string_equal(cJSON_GetObjectItem(rc0, "by")->valuestring, "api");
    cJSON_Delete(sum);
    st_report_fini(&rep);
    /* The target follows: 10 rps up to at_s, then 30 rps. */
    double want = 10 * at_s + 30 * (20 - at_s);
    assert_true(st_coord_target_requests(f->c) > want - 1e-6 &&
                st_coord_target_requests(f->c) < want + 1e-6);
    /* Seconds after the change ask for the new rate. */
    fx_advance(f, ag, 2, t0 + 10 * ST_NS_PER_S, 250 * ST_NS_PER_MS);
    assert_true(f->got[7]);
    assert_true(f->sec_target[2] > 10 - 1e-9 && f->sec_target[2] < 10 + 1e-9);
    /* The second holding the change asks for a blend of both rates. */
    int k = (int)floor(at_s);
    double blend = 10 * (at_s - k) + 30 * (k + 1 - at_s);
    assert_true(f->sec_target[k] > blend - 1e-9 && f->sec_target[k] < blend + 1e-9);
    assert_true(f->sec_target[k + 1] > 30 - 1e-9 && f->sec_target[k + 1] < 30 + 1e-9);
    /* Too close to the end. */
    fx_advance(f, ag, 2, t0 + 19 * ST_NS_PER_S + 300 * ST_NS_PER_MS, 250 * ST_NS_PER_MS);
    assert_int_equal(st_coord_change_rate(f->c, 20), ST_ESTATE);
    fx_end(f, ag, 2);

    /* A closed-loop run has no rate to change. */
    f = fx_opened("{\"url\": \"http://127.0.0.1:9/\", \"rate\": 0, \"duration\": 20}", 1);
    sims_init(ag, 1);
    t0 = fx_start_run(f, ag, 1);
    f->now = t0 + ST_NS_PER_S;
    assert_int_equal(st_coord_change_rate(f->c, 20), ST_ESTATE);
    fx_end(f, ag, 1);
}

static void test_coord_change_rate_during_start_lead(void **state)
{
    fx *f = fx_in(state, PLAN_10RPS, 1);
    f->cfg.start_lead_ns = 3 * ST_NS_PER_S; /* longer than the re-plan lead */
    fx_open(f);
    sim *a = fx_sims(f, 1);
    uint64_t t0 = fx_start_run(f, a, 1);
    assert_true(f->now < t0);
    uint32_t epoch0 = a->epoch;
    /* Running, the start still ahead: the new rate applies from the start. */
    assert_int_equal(st_coord_change_rate(f->c, 40), 0);
    f->now += 10 * ST_NS_PER_MS;
    sim_update(f, a);
    assert_int_equal(a->n_assignments, 1);
    assert_true(a->epoch > epoch0);
    assert_int_equal(a->from_q, 0);
    assert_int_equal(a->n_stages, 1);
    assert_true(a->stages[0].from_rps == 40 && a->stages[0].duration_s == 20);
    assert_true(st_coord_target_requests(f->c) > 800 - 1e-6 &&
                st_coord_target_requests(f->c) < 800 + 1e-6);
}

/* ---- bad input ----------------------------------------------------------------------------- */

static void expect_eproto(fx *f, const uint8_t *bytes, size_t len, uint64_t malformed)
{
    uint8_t *rep = (uint8_t *)f;
    size_t rep_len = 0;
    assert_int_equal(st_coord_handle(f->c, bytes, len, &rep, &rep_len), ST_EPROTO);
    assert_null(rep);
    assert_int_equal(st_coord_malformed(f->c), malformed);
}

static void test_coord_malformed_bytes_counted(void **state)
{
    fx *f = fx_open_in(state, PLAN_10RPS, 1);
    const uint8_t garbage[] = {0x0f, 0xff, 0x12, 0x40};
    expect_eproto(f, garbage, sizeof(garbage), 1);
    expect_eproto(f, (const uint8_t *)"", 0, 2);

    uint8_t *buf;
    size_t len;
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    env.version = ST_PROTOCOL_VERSION;
    env.run_id = RUN_ID;
    assert_int_equal(st_wire_pack(&env, &buf, &len), 0); /* no body */
    expect_eproto(f, buf, len, 3);
    free(buf);

    Stampede__ClockPing ping = STAMPEDE__CLOCK_PING__INIT;
    env.body_case = STAMPEDE__ENVELOPE__BODY_CLOCK_PING;
    env.clock_ping = &ping;
    env.version = ST_PROTOCOL_VERSION + 1;
    assert_int_equal(st_wire_pack(&env, &buf, &len), 0);
    expect_eproto(f, buf, len, 4);
    free(buf);

    /* A message only the coordinator sends. */
    Stampede__ClockPong pong = STAMPEDE__CLOCK_PONG__INIT;
    env.version = ST_PROTOCOL_VERSION;
    env.body_case = STAMPEDE__ENVELOPE__BODY_CLOCK_PONG;
    env.clock_pong = &pong;
    assert_int_equal(st_wire_pack(&env, &buf, &len), 0);
    expect_eproto(f, buf, len, 5);
    free(buf);

    cJSON *j = st_coord_summary(f->c);
    assert_true(num(j, "malformed_messages") == 5);
    cJSON_Delete(j);
}

static void test_coord_update_refusals(void **state)
{
    fx *f = fx_with_agents(state, PLAN_10RPS, 1);
    sim *a = f->ag;
    sim_register(f, a);
    st_coord_tick(f->c);
    /* Another run: refused, counted, and not acted on (no Prepare, state unchanged). */
    a->state = STAMPEDE__AGENT_STATE__AGENT_READY;
    a->epoch = 1;
    Stampede__Envelope *e = sim_exchange(f, a, NULL, 0, "run-other");
    assert_int_equal(e->body_case, STAMPEDE__ENVELOPE__BODY_REFUSED);
    assert_non_null(strstr(e->refused->reason, "run"));
    stampede__envelope__free_unpacked(e, NULL);
    take_refusal(sim_exchange(f, a, NULL, 0, ""));
    assert_int_equal(st_coord_malformed(f->c), 2);
    st_coord_tick(f->c);
    assert_int_equal(st_coord_get_state(f->c), ST_COORD_PREPARING);

    /* An unknown agent id, or a known id with another instance: register again. */
    sim ghost = *a;
    ghost.id = 7;
    assert_true(take_refusal(sim_exchange(f, &ghost, NULL, 0, NULL)));
    ghost.id = 0;
    e = sim_exchange(f, &ghost, NULL, 0, NULL);
    assert_true(e->refused->reregister);
    stampede__envelope__free_unpacked(e, NULL);
    ghost = *a;
    ghost.instance = 999;
    assert_true(take_refusal(sim_exchange(f, &ghost, NULL, 0, NULL)));
}

int main(void)
{
    st_log_init("test_coord", ST_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coord_new_refuses_bad_config),
        cmocka_unit_test_teardown(test_coord_register_wrong_token_refused, fx_teardown),
        cmocka_unit_test_teardown(test_coord_register_idempotent, fx_teardown),
        cmocka_unit_test_teardown(test_coord_register_after_start_refused, fx_teardown),
        cmocka_unit_test_teardown(test_coord_clock_ping_answered, fx_teardown),
        cmocka_unit_test_teardown(test_coord_no_start_before_all_ready, fx_teardown),
        cmocka_unit_test_teardown(test_coord_prepare_deadline_fails, fx_teardown),
        cmocka_unit_test_teardown(test_coord_register_deadline_fails_as_registration, fx_teardown),
        cmocka_unit_test_teardown(test_coord_agent_failing_to_prepare_fails_run, fx_teardown),
        cmocka_unit_test_teardown(test_coord_silent_before_start_fails_run, fx_teardown),
        cmocka_unit_test(test_coord_split_residues_follow_weights),
        cmocka_unit_test_teardown(test_coord_split_five_rps_over_eight_agents, fx_teardown),
        cmocka_unit_test_teardown(test_coord_replan_after_loss, fx_teardown),
        cmocka_unit_test_teardown(test_coord_replan_lead_follows_heartbeat, fx_teardown),
        cmocka_unit_test_teardown(test_coord_exited_agent_lost_at_once, fx_teardown),
        cmocka_unit_test_teardown(test_coord_failed_agent_while_running_is_lost, fx_teardown),
        cmocka_unit_test_teardown(test_coord_every_agent_lost_ends_run, fx_teardown),
        cmocka_unit_test_teardown(test_coord_agent_p99_of_its_latest_second, fx_teardown),
        cmocka_unit_test_teardown(test_coord_lost_agent_delivers_what_it_sent_while_assigned,
                                  fx_teardown),
        cmocka_unit_test_teardown(test_coord_own_stall_blames_no_agent, fx_teardown),
        cmocka_unit_test_teardown(test_coord_late_joiner_gets_share, fx_teardown),
        cmocka_unit_test_teardown(test_coord_records_merged_exactly, fx_teardown),
        cmocka_unit_test_teardown(test_coord_records_by_name_merged_exactly, fx_teardown),
        cmocka_unit_test_teardown(test_coord_duplicate_record_counted_once, fx_teardown),
        cmocka_unit_test_teardown(test_coord_record_gap_not_acknowledged, fx_teardown),
        cmocka_unit_test_teardown(test_coord_malformed_record_dropped, fx_teardown),
        cmocka_unit_test_teardown(test_coord_record_far_beyond_the_run_dropped, fx_teardown),
        cmocka_unit_test_teardown(test_coord_second_final_when_all_reported, fx_teardown),
        cmocka_unit_test_teardown(test_coord_second_final_after_grace, fx_teardown),
        cmocka_unit_test_teardown(test_coord_out_of_memory_in_the_merge_is_not_late, fx_teardown),
        cmocka_unit_test(test_coord_long_run_keeps_rows_only),
        cmocka_unit_test_teardown(test_coord_done_after_every_last_record, fx_teardown),
        cmocka_unit_test_teardown(test_coord_missing_last_records_end_by_deadline, fx_teardown),
        cmocka_unit_test(test_coord_stop_before_start_fails_with_code_5),
        cmocka_unit_test_teardown(test_coord_stop_during_run, fx_teardown),
        cmocka_unit_test(test_coord_change_rate_replans),
        cmocka_unit_test_teardown(test_coord_change_rate_during_start_lead, fx_teardown),
        cmocka_unit_test_teardown(test_coord_malformed_bytes_counted, fx_teardown),
        cmocka_unit_test_teardown(test_coord_update_refusals, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
