#include "admit.h"
#include "core.h"
#include "error.h"
#include "log.h"
#include "merge.h"
#include "share.h"
#include "wire.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- building replies ---------------------------------------------------------------------- */

static Stampede__Assignment *build_assignment(st_coord *c, st_arena *ar, const st_coord_agent *a)
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

static bool name_taken(const st_coord *c, const char *name)
{
    for (size_t i = 0; i < c->n_agents; i++) {
        if (c->agents[i]->name && strcmp(c->agents[i]->name, name) == 0) {
            return true;
        }
    }
    return false;
}

/* The agent's name, or, when another agent has it already, "name#2" (#3, ...: the first free
 * one), so that every agent of a report can be told apart. NULL when out of memory. */
static char *unique_name(const st_coord *c, const char *want)
{
    want = want ? want : "";
    if (!name_taken(c, want)) {
        return strdup(want);
    }
    size_t len = strlen(want) + 24;
    char *name = malloc(len);
    for (unsigned k = 2; name; k++) {
        snprintf(name, len, "%s#%u", want, k);
        if (!name_taken(c, name)) {
            break;
        }
    }
    return name;
}

static int handle_register(st_coord *c, const Stampede__Register *r, uint8_t **out, size_t *len)
{
    if (!token_ok(c->cfg.token, r->token)) {
        st_warn("refused agent \"%s\" on %s: wrong token", r->name ? r->name : "?",
                r->host ? r->host : "?");
        return refuse(c, "wrong token", false, out, len);
    }
    st_coord_agent *a = NULL;
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
            st_coord_agent **na = realloc(c->agents, cap * sizeof(*na));
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
        a->name = unique_name(c, r->name);
        if (!a->name) {
            free(a);
            return ST_ENOMEM;
        }
        if (strcmp(a->name, r->name ? r->name : "") != 0) {
            st_warn("agent \"%s\" from %s: another agent has that name; this one is \"%s\" "
                    "in reports (give each agent its own --name)",
                    r->name ? r->name : "", r->host ? r->host : "?", a->name);
        }
        a->host = dup_or_empty(r->host);
        a->task_arn = dup_or_empty(r->task_arn);
        a->az = dup_or_empty(r->availability_zone);
        a->cluster = dup_or_empty(r->cluster);
        a->task_definition = dup_or_empty(r->task_definition);
        a->cpu_vcpus = isfinite(r->cpu_vcpus) && r->cpu_vcpus > 0 ? r->cpu_vcpus : 0;
        a->has_clock_error_bound = r->has_clock_error_bound && isfinite(r->clock_error_bound_ms) &&
                                   r->clock_error_bound_ms >= 0;
        a->clock_error_bound_ms = a->has_clock_error_bound ? r->clock_error_bound_ms : 0;
        a->version = dup_or_empty(r->version);
        if (!a->host || !a->task_arn || !a->az || !a->cluster || !a->task_definition || !a->version) {
            st_coord_agent_free(a);
            return ST_ENOMEM;
        }
        a->pid = r->pid;
        a->cores = r->cores;
        a->threads = r->threads;
        a->weight = c->cfg.plan_threads > 0 ? (uint32_t)c->cfg.plan_threads
                                            : (r->threads >= 1 && r->threads <= 1024 ? r->threads : 1);
        a->offset_ns = r->clock_offset_ns;
        a->rtt_ns = r->clock_rtt_ns;
        a->max_second = -1;
        a->first_owed_second = -1;
        a->assigned_until_ns = UINT64_MAX;
        a->last_seen_ns = st_core_now(c);
        c->agents[c->n_agents++] = a;
        char vcpus[32] = "";
        if (a->cpu_vcpus > 0) {
            snprintf(vcpus, sizeof(vcpus), ", %g vCPU", a->cpu_vcpus);
        }
        st_info("agent %u \"%s\" registered from %s (%u threads, clock offset %.3f ms, rtt %.3f ms"
                "%s%s%s%s%s)",
                a->id, a->name, a->host, a->weight, (double)a->offset_ns / 1e6,
                (double)a->rtt_ns / 1e6, a->task_arn[0] ? ", task " : "", a->task_arn,
                a->az[0] ? " in " : "", a->az, vcpus);
        if (running) {
            a->counted = true;
            st_share_replan_ahead(c, "an agent joined");
        }
    }
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    Stampede__RegisterReply rr = STAMPEDE__REGISTER_REPLY__INIT;
    env.body_case = STAMPEDE__ENVELOPE__BODY_REGISTER_REPLY;
    env.register_reply = &rr;
    rr.agent_id = a->id;
    return pack_reply(&env, c->cfg.run_id, out, len);
}

static int handle_update(st_coord *c, const Stampede__AgentUpdate *u,
                         const unsigned char *valid, uint64_t recv_ns, uint8_t **out, size_t *len)
{
    st_coord_agent *a = u->agent_id >= 1 && u->agent_id <= c->n_agents ? c->agents[u->agent_id - 1] : NULL;
    if (!a || a->instance_id != u->instance_id) {
        return refuse(c, "unknown agent", true, out, len);
    }
    /* A lost agent is still answered: it delivers what it measured while its share was its own
     * (merge.c takes those records only), and its reply tells it to stop. */
    if (a->last_seen_ns || !a->lost) {
        a->last_seen_ns = recv_ns;
    }
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
        st_merge_records(c, a, u, valid);
    }
    if (u->stop_reason && u->stop_reason[0] && !a->self_stopped) {
        /* Its dead-man stopped its load: whatever it had left to send is nobody's until its share
         * moves to the others. */
        a->self_stopped = true;
        a->stopped_coord_ns = u->stopped_coord_ns;
        if (a->counted && !a->lost && a->started &&
            (c->state == ST_COORD_RUNNING || c->state == ST_COORD_DRAINING)) {
            char why[320];
            snprintf(why, sizeof(why), "it stopped its load: %s", u->stop_reason);
            st_core_lose(c, a, why);
            if (c->state == ST_COORD_RUNNING && !c->stopping &&
                recv_ns + st_share_lead_ns(c) < c->end_ns) {
                st_share_replan_ahead(c, "an agent stopped its load");
            }
        }
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
    rep.heartbeat_ms = c->state == ST_COORD_RUNNING && !c->stopping && !a->lost
                           ? c->cfg.run_heartbeat_ms
                           : c->cfg.heartbeat_ms;
    rep.echo_agent_ns = u->sent_agent_ns;
    rep.recv_coord_ns = recv_ns;
    int rc = 0;
    bool ending = c->state == ST_COORD_DONE || c->state == ST_COORD_FAILED;
    if (a->lost && !ending) {
        rep.stop = &stop; /* whatever it still runs is in no plan */
    } else if (a->counted && !ending && u->state != STAMPEDE__AGENT_STATE__AGENT_FAILED) {
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
    rep.done = ending || st_core_complete(a) || u->state == STAMPEDE__AGENT_STATE__AGENT_FAILED;
    rep.send_coord_ns = st_core_now(c);
    rc = pack_reply(&env, c->cfg.run_id, out, len);
out:
    st_arena_fini(&ar);
    return rc;
}

int st_admit_handle(st_coord *c, const uint8_t *req, size_t len, uint8_t **reply,
                    size_t *reply_len)
{
    uint64_t recv_ns = st_core_now(c);
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
        pong.send_coord_ns = st_core_now(c);
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

