#include "session.h"
#include "error.h"
#include "protocol.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct clock_sample {
    int64_t offset_ns; /* agent clock minus coordinator clock */
    uint64_t rtt_ns;
} clock_sample;

typedef struct record {
    uint64_t seq;
    uint32_t second;
    uint8_t *body;
    size_t len;
} record;

struct st_session {
    const st_clock *clock;
    char *token, *name, *host, *version, *task_arn, *availability_zone, *cluster, *task_definition;
    double cpu_vcpus, clock_error_bound_ms;
    bool has_clock_error_bound;
    uint64_t instance_id;
    uint32_t pid, cores, threads;
    int clock_pings;
    uint64_t deadline_ns; /* to be registered by; 0: none */

    st_session_phase phase;
    char run_id[128];
    uint32_t agent_id;
    char refusal[256];

    /* The exchange in flight. */
    bool outstanding;
    st_session_kind kind;
    uint64_t sent_ns; /* its stamp: agent_ns of a ping, sent_agent_ns of an update */

    clock_sample samples[ST_PROTO_CLOCK_WINDOW];
    int n_samples, next_sample, pings;
    int64_t offset_ns;
    uint64_t rtt_ns;

    Stampede__AgentState state;
    uint32_t epoch;
    bool prepared, started, stopped, done;
    uint64_t first_send_coord_ns;
    char error[256];

    record *recs; /* unacknowledged, oldest first */
    size_t n_recs, cap_recs;
    uint64_t next_seq, acked_seq, last_seq;
    bool urgent; /* a record or the end to report: the next update is due now */
    uint64_t next_update_ns, last_reply_ns;
    /* The send instant of the last exchange the coordinator answered: the load may send until
     * ST_PROTO_AGENT_SILENCE_MS after it. */
    uint64_t acked_sent_ns;
    /* The load stopped on silence (st_session_silenced): why, when (local), and the records go on
     * until delivery_ns. */
    char stop_reason[256];
    uint64_t stopped_ns, delivery_ns;
    bool silenced;
    int reregisters; /* registrations again after "register again" */
    uint32_t heartbeat_ms;

    Stampede__Envelope *kept; /* the last reply, which st_session_cmds points into */
};

static uint64_t now_ns(const st_session *s)
{
    return st_clock_now(s->clock);
}

void st_session_cfg_defaults(st_session_cfg *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->clock = &st_clock_real;
    cfg->clock_pings = ST_PROTO_CLOCK_PINGS;
    cfg->connect_deadline_ms = ST_PROTO_CONNECT_DEADLINE_MS;
}

static char *dup_or_empty(const char *v)
{
    return strdup(v ? v : "");
}

int st_session_new(st_session **out, const st_session_cfg *cfg)
{
    if (!cfg->clock || cfg->clock_pings < 0 || cfg->clock_pings > ST_PROTO_CLOCK_WINDOW) {
        return ST_EINVAL;
    }
    st_session *s = calloc(1, sizeof(*s));
    if (!s) {
        return ST_ENOMEM;
    }
    s->token = dup_or_empty(cfg->token);
    s->name = dup_or_empty(cfg->name);
    s->host = dup_or_empty(cfg->host);
    s->version = dup_or_empty(cfg->version);
    s->task_arn = dup_or_empty(cfg->task_arn);
    s->availability_zone = dup_or_empty(cfg->availability_zone);
    s->cluster = dup_or_empty(cfg->cluster);
    s->task_definition = dup_or_empty(cfg->task_definition);
    if (!s->token || !s->name || !s->host || !s->version || !s->task_arn || !s->availability_zone ||
        !s->cluster || !s->task_definition) {
        st_session_free(s);
        return ST_ENOMEM;
    }
    s->clock = cfg->clock;
    s->instance_id = cfg->instance_id;
    s->pid = cfg->pid;
    s->cores = cfg->cores;
    s->threads = cfg->threads;
    s->cpu_vcpus = cfg->cpu_vcpus;
    s->has_clock_error_bound = cfg->has_clock_error_bound;
    s->clock_error_bound_ms = cfg->clock_error_bound_ms;
    s->clock_pings = cfg->clock_pings;
    if (cfg->connect_deadline_ms) {
        s->deadline_ns = now_ns(s) + cfg->connect_deadline_ms * ST_NS_PER_MS;
    }
    s->phase = s->clock_pings > 0 ? ST_SESSION_PINGING : ST_SESSION_REGISTERING;
    s->state = STAMPEDE__AGENT_STATE__AGENT_IDLE;
    s->next_seq = 1;
    s->heartbeat_ms = ST_PROTO_HEARTBEAT_MS;
    *out = s;
    return 0;
}

void st_session_free(st_session *s)
{
    if (!s) {
        return;
    }
    for (size_t i = 0; i < s->n_recs; i++) {
        free(s->recs[i].body);
    }
    free(s->recs);
    if (s->kept) {
        stampede__envelope__free_unpacked(s->kept, NULL);
    }
    free(s->token);
    free(s->name);
    free(s->host);
    free(s->version);
    free(s->task_arn);
    free(s->availability_zone);
    free(s->cluster);
    free(s->task_definition);
    free(s);
}

/* ---- the clock ---------------------------------------------------------------------------- */

static void clock_add(st_session *s, uint64_t t1, uint64_t t2, uint64_t t3, uint64_t t4)
{
    if (t4 < t1 || t3 < t2) {
        return;
    }
    uint64_t rtt = (t4 - t1) > (t3 - t2) ? (t4 - t1) - (t3 - t2) : 0;
    int64_t offset = ((int64_t)(t1 - t2) + (int64_t)(t4 - t3)) / 2;
    s->samples[s->next_sample] = (clock_sample){offset, rtt};
    s->next_sample = (s->next_sample + 1) % ST_PROTO_CLOCK_WINDOW;
    if (s->n_samples < ST_PROTO_CLOCK_WINDOW) {
        s->n_samples++;
    }
    /* The sample that spent least time in flight has the least asymmetry in it. */
    int best = 0;
    for (int i = 1; i < s->n_samples; i++) {
        if (s->samples[i].rtt_ns < s->samples[best].rtt_ns) {
            best = i;
        }
    }
    s->offset_ns = s->samples[best].offset_ns;
    s->rtt_ns = s->samples[best].rtt_ns;
}

uint64_t st_session_to_local(const st_session *s, uint64_t coord_ns)
{
    return (uint64_t)((int64_t)coord_ns + s->offset_ns);
}

uint64_t st_session_to_coord(const st_session *s, uint64_t local_ns)
{
    return (uint64_t)((int64_t)local_ns - s->offset_ns);
}

/* ---- requests ----------------------------------------------------------------------------- */

static const char *run_id_of(const st_session *s)
{
    return s->run_id; /* "" until registered: the agent does not know its run before */
}

/* Packs env, its body set by the caller, as this session's message of that body. */
static int pack_envelope(st_session *s, Stampede__Envelope *env, Stampede__Envelope__BodyCase body,
                         uint8_t **buf, size_t *len)
{
    env->version = ST_PROTOCOL_VERSION;
    env->run_id = (char *)run_id_of(s);
    env->body_case = body;
    return st_wire_pack(env, buf, len);
}

static int build_ping(st_session *s, uint64_t now, uint8_t **buf, size_t *len)
{
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    Stampede__ClockPing ping = STAMPEDE__CLOCK_PING__INIT;
    env.clock_ping = &ping;
    ping.agent_ns = now;
    return pack_envelope(s, &env, STAMPEDE__ENVELOPE__BODY_CLOCK_PING, buf, len);
}

static int build_register(st_session *s, uint8_t **buf, size_t *len)
{
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    Stampede__Register reg = STAMPEDE__REGISTER__INIT;
    env.register_ = &reg;
    reg.token = s->token;
    reg.instance_id = s->instance_id;
    reg.name = s->name;
    reg.host = s->host;
    reg.pid = s->pid;
    reg.cores = s->cores;
    reg.threads = s->threads;
    reg.version = s->version;
    reg.task_arn = s->task_arn;
    reg.availability_zone = s->availability_zone;
    reg.cluster = s->cluster;
    reg.task_definition = s->task_definition;
    reg.cpu_vcpus = s->cpu_vcpus;
    reg.has_clock_error_bound = s->has_clock_error_bound;
    reg.clock_error_bound_ms = s->clock_error_bound_ms;
    reg.clock_offset_ns = s->offset_ns;
    reg.clock_rtt_ns = s->rtt_ns;
    return pack_envelope(s, &env, STAMPEDE__ENVELOPE__BODY_REGISTER, buf, len);
}

static int build_update(st_session *s, uint64_t now, uint8_t **buf, size_t *len)
{
    Stampede__AgentUpdate up = STAMPEDE__AGENT_UPDATE__INIT;
    up.agent_id = s->agent_id;
    up.instance_id = s->instance_id;
    up.epoch = s->epoch;
    up.state = s->state;
    up.clock_offset_ns = s->offset_ns;
    up.clock_rtt_ns = s->rtt_ns;
    up.first_send_coord_ns = s->first_send_coord_ns;
    up.error = s->error;
    up.last_seq = s->state == STAMPEDE__AGENT_STATE__AGENT_DONE ? s->last_seq : 0;
    up.sent_agent_ns = now;
    if (s->silenced) {
        up.stop_reason = s->stop_reason;
        up.stopped_coord_ns = st_session_to_coord(s, s->stopped_ns);
    }
    st_wire_packed_record recs[ST_PROTO_RECORDS_PER_UPDATE];
    size_t n = s->n_recs < ST_PROTO_RECORDS_PER_UPDATE ? s->n_recs : ST_PROTO_RECORDS_PER_UPDATE;
    for (size_t i = 0; i < n; i++) {
        const record *r = &s->recs[i];
        recs[i] = (st_wire_packed_record){r->seq, r->second, r->body, r->len};
    }
    return st_wire_update_pack(run_id_of(s), &up, recs, n, buf, len);
}

int st_session_request(st_session *s, uint8_t **buf, size_t *len, int *timeout_ms,
                       st_session_kind *kind)
{
    if (s->outstanding || s->phase == ST_SESSION_ENDED) {
        return ST_ESTATE;
    }
    uint64_t now = now_ns(s);
    st_session_kind k;
    int rc, t;
    if (s->phase == ST_SESSION_PINGING) {
        k = ST_SESSION_PING;
        t = ST_PROTO_PING_TIMEOUT_MS;
        rc = build_ping(s, now, buf, len);
    } else if (s->phase == ST_SESSION_REGISTERING) {
        k = ST_SESSION_REGISTER;
        t = ST_PROTO_EXCHANGE_TIMEOUT_MS;
        rc = build_register(s, buf, len);
    } else {
        k = ST_SESSION_UPDATE;
        t = ST_PROTO_UPDATE_TIMEOUT_MS;
        rc = build_update(s, now, buf, len);
    }
    if (rc) {
        return rc;
    }
    s->outstanding = true;
    s->kind = k;
    s->sent_ns = now;
    if (k == ST_SESSION_UPDATE) {
        s->urgent = false; /* what was new goes with this one */
    }
    *timeout_ms = t;
    if (kind) {
        *kind = k;
    }
    return 0;
}

/* ---- replies ------------------------------------------------------------------------------ */

/* After an update, answered or not: the next one a heartbeat from now. */
static void update_over(st_session *s, uint64_t now)
{
    s->next_update_ns = now + s->heartbeat_ms * ST_NS_PER_MS;
}

void st_session_lost(st_session *s)
{
    if (!s->outstanding) {
        return;
    }
    s->outstanding = false;
    if (s->kind == ST_SESSION_UPDATE) {
        /* Again at once: one lost reply must cost less than the margin between the update
         * pace and the silence bound (protocol.h). */
        s->next_update_ns = now_ns(s);
    }
}

static void drop_acked(st_session *s, uint64_t acked)
{
    if (acked <= s->acked_seq) {
        return;
    }
    s->acked_seq = acked;
    size_t k = 0;
    while (k < s->n_recs && s->recs[k].seq <= acked) {
        free(s->recs[k].body);
        k++;
    }
    if (k > 0) { /* an ack with nothing held (recs may be NULL) moves nothing */
        memmove(s->recs, s->recs + k, (s->n_recs - k) * sizeof(*s->recs));
        s->n_recs -= k;
    }
}

/* "Register again": the coordinator does not know this agent. What the session held belongs to
 * an agent the coordinator never heard of: it starts over as a new registration. */
static void start_over(st_session *s)
{
    for (size_t i = 0; i < s->n_recs; i++) {
        free(s->recs[i].body);
    }
    s->n_recs = 0;
    s->run_id[0] = '\0';
    s->agent_id = 0;
    s->phase = ST_SESSION_REGISTERING;
    s->state = STAMPEDE__AGENT_STATE__AGENT_IDLE;
    s->epoch = 0;
    s->prepared = s->started = s->stopped = s->done = s->silenced = false;
    s->first_send_coord_ns = 0;
    s->error[0] = s->stop_reason[0] = '\0';
    s->next_seq = 1;
    s->acked_seq = s->last_seq = 0;
    s->urgent = false;
    s->heartbeat_ms = ST_PROTO_HEARTBEAT_MS;
    s->reregisters++;
    /* A new connect deadline: the registration starts now. */
    if (s->deadline_ns) {
        s->deadline_ns = now_ns(s) + ST_PROTO_CONNECT_DEADLINE_MS * ST_NS_PER_MS;
    }
}

static int refused(st_session *s, const Stampede__Refused *r)
{
    snprintf(s->refusal, sizeof(s->refusal), "%s",
             r->reason && r->reason[0] ? r->reason : "no reason given");
    if (r->reregister && s->reregisters < ST_PROTO_REREGISTER_MAX) {
        start_over(s);
        return ST_ENOTFOUND;
    }
    s->phase = ST_SESSION_ENDED;
    return r->reregister ? ST_ENOTFOUND : ST_EAUTH;
}

static void on_pong(st_session *s, const Stampede__ClockPong *p, uint64_t now)
{
    if (p->agent_ns != s->sent_ns) {
        return; /* a pong to another ping */
    }
    clock_add(s, s->sent_ns, p->recv_coord_ns, p->send_coord_ns, now);
    if (++s->pings >= s->clock_pings) {
        s->phase = ST_SESSION_REGISTERING;
    }
}

static void on_registered(st_session *s, const Stampede__Envelope *e, uint64_t now)
{
    if (!e->run_id || !e->run_id[0]) {
        return;
    }
    snprintf(s->run_id, sizeof(s->run_id), "%s", e->run_id);
    s->agent_id = e->register_reply->agent_id;
    s->phase = ST_SESSION_REGISTERED;
    s->acked_sent_ns = s->sent_ns;
    s->next_update_ns = now;
    s->urgent = true; /* the first update goes at once */
}

static void on_coord_reply(st_session *s, const Stampede__CoordReply *cr, uint64_t now,
                           st_session_cmds *cmds)
{
    cmds->reply = cr;
    if (s->sent_ns > s->acked_sent_ns) {
        s->acked_sent_ns = s->sent_ns;
    }
    if (cr->echo_agent_ns == s->sent_ns) {
        clock_add(s, s->sent_ns, cr->recv_coord_ns, cr->send_coord_ns, now);
    }
    drop_acked(s, cr->acked_seq);
    if (cr->heartbeat_ms >= ST_PROTO_HEARTBEAT_MIN_MS &&
        cr->heartbeat_ms <= ST_PROTO_HEARTBEAT_MAX_MS) {
        s->heartbeat_ms = cr->heartbeat_ms;
    }
    update_over(s, now);
    const Stampede__Prepare *p = cr->prepare;
    if (p && p->plan && p->assignment && !s->started &&
        !(s->prepared && p->assignment->epoch == s->epoch)) {
        /* Whatever was prepared before is replaced, or gone if this one cannot be run. */
        s->prepared = false;
        cmds->prepare = p;
    }
    if (cr->start && s->prepared && !s->started && !s->stopped &&
        s->state != STAMPEDE__AGENT_STATE__AGENT_FAILED) {
        cmds->start = true;
        cmds->t0_local_ns = st_session_to_local(s, cr->start->t0_coord_ns);
    }
    if (cr->assignment && s->started && cr->assignment->epoch > s->epoch) {
        cmds->assignment = cr->assignment;
    }
    if (cr->stop) {
        cmds->stop = st_session_stop(s);
    }
    if (cr->done) {
        cmds->done = true;
        s->done = true;
        s->phase = ST_SESSION_ENDED;
    }
}

int st_session_reply(st_session *s, const uint8_t *buf, size_t len, st_session_cmds *cmds)
{
    memset(cmds, 0, sizeof(*cmds));
    if (!s->outstanding) {
        return ST_ESTATE;
    }
    uint64_t now = now_ns(s);
    st_session_kind kind = s->kind;
    s->outstanding = false;
    int err;
    Stampede__Envelope *e =
        st_wire_unpack(buf, len, s->phase == ST_SESSION_REGISTERED ? s->run_id : NULL, &err);
    if (!e) {
        if (kind == ST_SESSION_UPDATE) {
            update_over(s, now);
        }
        return err;
    }
    if (s->kept) {
        stampede__envelope__free_unpacked(s->kept, NULL);
    }
    s->kept = e;
    s->last_reply_ns = now;
    if (e->body_case == STAMPEDE__ENVELOPE__BODY_REFUSED) {
        if (kind == ST_SESSION_PING) {
            return 0; /* pings are answered before any check of the agent */
        }
        return refused(s, e->refused);
    }
    switch (kind) {
    case ST_SESSION_PING:
        if (e->body_case == STAMPEDE__ENVELOPE__BODY_CLOCK_PONG) {
            on_pong(s, e->clock_pong, now);
        }
        break;
    case ST_SESSION_REGISTER:
        if (e->body_case == STAMPEDE__ENVELOPE__BODY_REGISTER_REPLY) {
            on_registered(s, e, now);
        }
        break;
    case ST_SESSION_UPDATE:
        if (e->body_case == STAMPEDE__ENVELOPE__BODY_REPLY) {
            on_coord_reply(s, e->reply, now, cmds);
        } else {
            update_over(s, now);
        }
        break;
    }
    return 0;
}

uint64_t st_session_next_due(const st_session *s)
{
    if (s->phase != ST_SESSION_REGISTERED || s->urgent) {
        return 0; /* not "now": a caller comparing it with its own now must find it due */
    }
    return s->next_update_ns;
}

int st_session_expired(const st_session *s)
{
    uint64_t now = now_ns(s);
    if (s->phase == ST_SESSION_PINGING || s->phase == ST_SESSION_REGISTERING) {
        return s->deadline_ns && now >= s->deadline_ns ? ST_ETIMEDOUT : 0;
    }
    if (s->phase == ST_SESSION_REGISTERED &&
        now - s->last_reply_ns > ST_PROTO_AGENT_SILENCE_MS * ST_NS_PER_MS) {
        return ST_ETIMEDOUT;
    }
    return 0;
}

uint64_t st_session_licence_ns(const st_session *s)
{
    if (s->phase != ST_SESSION_REGISTERED || s->silenced) {
        return 0;
    }
    return s->acked_sent_ns + ST_PROTO_AGENT_SILENCE_MS * ST_NS_PER_MS;
}

bool st_session_silenced(st_session *s, const char *reason)
{
    if (s->silenced || s->phase != ST_SESSION_REGISTERED) {
        return false;
    }
    uint64_t now = now_ns(s);
    uint64_t licence = s->acked_sent_ns + ST_PROTO_AGENT_SILENCE_MS * ST_NS_PER_MS;
    s->silenced = true;
    /* Nothing left after the licence ended, whenever the caller noticed. */
    s->stopped_ns = licence < now ? licence : now;
    s->delivery_ns = now + ST_PROTO_DELIVERY_MS * ST_NS_PER_MS;
    snprintf(s->stop_reason, sizeof(s->stop_reason), "%s", reason ? reason : "");
    st_session_stop(s);
    s->urgent = true;
    return true;
}

int st_session_undelivered(const st_session *s)
{
    if (!s->silenced || s->phase != ST_SESSION_REGISTERED) {
        return 0;
    }
    return now_ns(s) >= s->delivery_ns ? ST_ETIMEDOUT : 0;
}

bool st_session_is_silenced(const st_session *s)
{
    return s->silenced;
}

int st_session_reregisters(const st_session *s)
{
    return s->reregisters;
}

/* ---- the caller's side -------------------------------------------------------------------- */

void st_session_prepared(st_session *s, uint32_t epoch)
{
    s->prepared = true;
    s->epoch = epoch;
    s->state = STAMPEDE__AGENT_STATE__AGENT_READY;
}

void st_session_started(st_session *s)
{
    s->started = true;
    s->state = STAMPEDE__AGENT_STATE__AGENT_RUNNING;
}

void st_session_assigned(st_session *s, uint32_t epoch)
{
    s->epoch = epoch;
}

void st_session_fail(st_session *s, const char *reason)
{
    snprintf(s->error, sizeof(s->error), "%s", reason ? reason : "");
    s->state = STAMPEDE__AGENT_STATE__AGENT_FAILED;
}

bool st_session_stop(st_session *s)
{
    if (s->stopped) {
        return false;
    }
    s->stopped = true;
    if (s->started) {
        if (s->state == STAMPEDE__AGENT_STATE__AGENT_RUNNING) {
            s->state = STAMPEDE__AGENT_STATE__AGENT_DRAINING;
        }
    } else if (s->state != STAMPEDE__AGENT_STATE__AGENT_FAILED) {
        s->state = STAMPEDE__AGENT_STATE__AGENT_DONE;
        s->last_seq = s->next_seq - 1;
    }
    return true;
}

int st_session_push_body(st_session *s, uint32_t second, const uint8_t *body, size_t len,
                         uint64_t *seq)
{
    if (s->n_recs == s->cap_recs) {
        size_t cap = s->cap_recs ? s->cap_recs * 2 : 4;
        record *nr = realloc(s->recs, cap * sizeof(*nr));
        if (!nr) {
            return ST_ENOMEM;
        }
        s->recs = nr;
        s->cap_recs = cap;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) {
        return ST_ENOMEM;
    }
    memcpy(copy, body, len);
    s->recs[s->n_recs++] = (record){s->next_seq, second, copy, len};
    if (seq) {
        *seq = s->next_seq;
    }
    s->next_seq++;
    s->urgent = true;
    return 0;
}

int st_session_push(st_session *s, const st_stats *sec, uint64_t *seq)
{
    uint8_t *body;
    size_t len;
    int rc = st_wire_record_body_build(sec, &body, &len);
    if (rc) {
        return rc;
    }
    rc = st_session_push_body(s, sec->second, body, len, seq);
    free(body);
    return rc;
}

void st_session_end(st_session *s)
{
    s->last_seq = s->next_seq - 1;
    if (s->state != STAMPEDE__AGENT_STATE__AGENT_FAILED) {
        s->state = STAMPEDE__AGENT_STATE__AGENT_DONE;
    }
    s->urgent = true;
}

void st_session_first_send(st_session *s, uint64_t local_ns)
{
    s->first_send_coord_ns = st_session_to_coord(s, local_ns);
}

/* ---- getters ------------------------------------------------------------------------------ */

st_session_phase st_session_get_phase(const st_session *s)
{
    return s->phase;
}

Stampede__AgentState st_session_state(const st_session *s)
{
    return s->state;
}

uint32_t st_session_epoch(const st_session *s)
{
    return s->epoch;
}

bool st_session_is_started(const st_session *s)
{
    return s->started;
}

uint32_t st_session_agent_id(const st_session *s)
{
    return s->agent_id;
}

const char *st_session_run_id(const st_session *s)
{
    return s->run_id;
}

const char *st_session_refusal(const st_session *s)
{
    return s->refusal;
}

int64_t st_session_offset_ns(const st_session *s)
{
    return s->offset_ns;
}

uint64_t st_session_rtt_ns(const st_session *s)
{
    return s->rtt_ns;
}

int st_session_pings(const st_session *s)
{
    return s->pings;
}

uint32_t st_session_heartbeat_ms(const st_session *s)
{
    return s->heartbeat_ms;
}

size_t st_session_unacked(const st_session *s)
{
    return s->n_recs;
}

uint64_t st_session_acked(const st_session *s)
{
    return s->acked_seq;
}

uint64_t st_session_last_seq(const st_session *s)
{
    return s->last_seq;
}
