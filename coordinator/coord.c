#include "admit.h"
#include "coord.h"
#include "core.h"
#include "error.h"
#include "log.h"
#include "merge.h"
#include "share.h"
#include "protocol.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
        st_merge_init(&c->merge) || st_report_series_new(&c->series)) {
        st_merge_fini(&c->merge);
        st_profile_fini(&c->profile);
        free(c);
        return ST_ENOMEM;
    }
    pthread_mutex_init(&c->mu, NULL);
    c->state = ST_COORD_WAITING;
    c->created_ns = st_core_now(c);
    c->deadline_ns = c->created_ns + cfg->register_timeout_ns;
    *out = c;
    return 0;
}

void st_coord_agent_free(st_coord_agent *a)
{
    if (!a) {
        return;
    }
    free(a->name);
    free(a->host);
    free(a->task_arn);
    free(a->az);
    free(a->cluster);
    free(a->task_definition);
    free(a->version);
    free(a->error);
    free(a->lost_reason);
    free(a->residues);
    free(a);
}

void st_coord_free(st_coord *c)
{
    if (!c) {
        return;
    }
    for (size_t i = 0; i < c->n_agents; i++) {
        st_coord_agent_free(c->agents[i]);
    }
    free(c->agents);
    st_report_series_free(c->series);
    st_merge_fini(&c->merge);
    st_profile_fini(&c->profile);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void fail(st_coord *c, st_coord_failure_reason why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(st_coord *c, st_coord_failure_reason why, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->failure, sizeof(c->failure), fmt, ap);
    va_end(ap);
    c->failure_reason = why;
    c->state = ST_COORD_FAILED;
    st_error("%s", c->failure);
}

int st_coord_handle(st_coord *c, const uint8_t *req, size_t len, uint8_t **reply,
                    size_t *reply_len)
{
    return st_admit_handle(c, req, len, reply, reply_len);
}

/* ---- the owner's side ---------------------------------------------------------------------- */

void st_core_lose(st_coord *c, st_coord_agent *a, const char *why)
{
    if (a->lost) {
        return;
    }
    uint64_t now = st_core_now(c);
    a->lost = true;
    a->lost_at_ns = now;
    /* Its share moves to the survivors a re-plan lead ahead; with none left, or no re-plan
     * before the end, nobody carries it: it stays its own to the end. */
    bool survivors = false;
    for (size_t i = 0; i < c->n_agents; i++) {
        survivors |= st_core_active(c->agents[i]);
    }
    uint64_t at = now + st_share_lead_ns(c);
    a->assigned_until_ns = survivors && !c->stopping && !c->stop_at_ns &&
                                   c->state == ST_COORD_RUNNING && at < c->end_ns
                               ? at
                               : UINT64_MAX;
    free(a->lost_reason);
    a->lost_reason = strdup(why); /* NULL when out of memory: the report says "lost" only */
    st_warn("agent %u \"%s\" lost: %s", a->id, a->name, why);
}

/* Lost agents that are still delivering what they measured while their share was theirs. */
static bool lost_delivering(const st_coord *c, uint64_t now)
{
    for (size_t i = 0; i < c->n_agents; i++) {
        const st_coord_agent *a = c->agents[i];
        if (a->lost && a->started && !st_core_complete(a) &&
            a->state != STAMPEDE__AGENT_STATE__AGENT_FAILED &&
            now - a->last_seen_ns <= c->cfg.silence_ns) {
            return true;
        }
    }
    return false;
}

/* Second k is final when every agent still counted has reported it, or grace after its end. */
static void tick_locked(st_coord *c, uint64_t now)
{
    size_t counted = 0;
    switch (c->state) {
    case ST_COORD_WAITING:
        if (c->n_agents >= (size_t)c->cfg.expected_agents) {
            for (size_t i = 0; i < c->n_agents; i++) {
                c->agents[i]->counted = true;
            }
            if (st_share_split(c, 0)) {
                fail(c, ST_COORD_FAILURE_RUNTIME, "out of memory while splitting the load");
                return;
            }
            c->state = ST_COORD_PREPARING;
            c->deadline_ns = now + c->cfg.prepare_timeout_ns;
            st_info("%zu agents registered: preparing (epoch %u)", c->n_agents, c->epoch);
        } else if (now >= c->deadline_ns) {
            fail(c, ST_COORD_FAILURE_REGISTRATION, "only %zu of %d agents registered within %.0f s",
                 c->n_agents, c->cfg.expected_agents, (double)c->cfg.register_timeout_ns / 1e9);
        }
        break;
    case ST_COORD_PREPARING: {
        size_t ready = 0;
        for (size_t i = 0; i < c->n_agents; i++) {
            st_coord_agent *a = c->agents[i];
            if (a->state == STAMPEDE__AGENT_STATE__AGENT_FAILED) {
                fail(c, ST_COORD_FAILURE_RUNTIME, "agent %u \"%s\" cannot run the plan: %s", a->id,
                     a->name, a->error ? a->error : "no reason given");
                return;
            }
            if (now - a->last_seen_ns > c->cfg.silence_ns) {
                fail(c, ST_COORD_FAILURE_RUNTIME,
                     "agent %u \"%s\" went silent before the start: nothing was started", a->id,
                     a->name);
                return;
            }
            ready += a->state == STAMPEDE__AGENT_STATE__AGENT_READY && a->epoch == c->epoch;
        }
        if (ready == c->n_agents) {
            c->t0 = now + c->cfg.start_lead_ns;
            c->end_ns = c->t0 + (uint64_t)(st_core_total_s(c) * 1e9 + 0.5);
            st_merge_start(c);
            c->state = ST_COORD_RUNNING;
            st_info("every agent is ready: the run starts in %.0f ms",
                    (double)c->cfg.start_lead_ns / 1e6);
        } else if (now >= c->deadline_ns) {
            fail(c, ST_COORD_FAILURE_RUNTIME,
                 "%zu of %zu agents acknowledged the plan within %.0f s: nothing was started",
                 ready, c->n_agents, (double)c->cfg.prepare_timeout_ns / 1e9);
        }
        break;
    }
    case ST_COORD_RUNNING:
    case ST_COORD_DRAINING: {
        bool replan = false;
        for (size_t i = 0; i < c->n_agents; i++) {
            st_coord_agent *a = c->agents[i];
            if (!st_core_active(a) || st_core_complete(a)) {
                continue;
            }
            if (a->state == STAMPEDE__AGENT_STATE__AGENT_FAILED) {
                st_core_lose(c, a, a->error && a->error[0] ? a->error : "failed");
                replan = true;
            } else if (now - a->last_seen_ns > c->cfg.silence_ns) {
                st_core_lose(c, a, a->last_seen_ns == 0 ? "its process exited" : "silent");
                replan = true;
            }
        }
        for (size_t i = 0; i < c->n_agents; i++) {
            counted += st_core_active(c->agents[i]);
        }
        /* A lost agent still talking delivers what it measured while its share was its own:
         * the run waits for it as for the others. */
        bool delivering = lost_delivering(c, now);
        if (counted == 0 && !delivering) {
            c->state = ST_COORD_DONE;
            st_error("every agent was lost: the run ends here");
            break;
        }
        if (c->state == ST_COORD_RUNNING && c->stop_at_ns && now >= c->stop_at_ns) {
            c->stopping = true;
            c->stopped_at_ns = c->stop_at_ns;
        }
        if (c->state == ST_COORD_RUNNING) {
            if (replan && now + st_share_lead_ns(c) < c->end_ns && !c->stopping && !c->stop_at_ns) {
                st_share_replan_ahead(c, "an agent was lost");
            }
            if (now >= c->end_ns || c->stopping || counted == 0) {
                c->state = ST_COORD_DRAINING;
                c->deadline_ns = (c->stopping || counted == 0 ? now : c->end_ns) +
                                 ST_PROTO_DRAIN_MAX_MS * ST_NS_PER_MS +
                                 c->cfg.end_timeout_ns;
            }
            break;
        }
        size_t complete = 0;
        for (size_t i = 0; i < c->n_agents; i++) {
            complete += st_core_active(c->agents[i]) && st_core_complete(c->agents[i]);
        }
        if (complete == counted && !delivering) {
            c->state = ST_COORD_DONE;
        } else if (now >= c->deadline_ns) {
            for (size_t i = 0; i < c->n_agents; i++) {
                st_coord_agent *a = c->agents[i];
                if (st_core_active(a) && !st_core_complete(a)) {
                    st_core_lose(c, a, "its last records did not arrive in time");
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

/* Ticks come every 50 ms: a longer gap means this process was paused or starved, and the agents
 * were not heard because nobody listened. That time is not their silence, and the seconds that
 * ended meanwhile wait for the records the agents kept (for a grace) rather than close empty. */
static void stall_check(st_coord *c, uint64_t now)
{
    uint64_t last = c->last_tick_ns;
    c->last_tick_ns = now;
    if (!last || now - last <= ST_PROTO_COORD_STALL_MS * ST_NS_PER_MS ||
        (c->state != ST_COORD_PREPARING && c->state != ST_COORD_RUNNING &&
         c->state != ST_COORD_DRAINING)) {
        return;
    }
    uint64_t gap = now - last;
    for (size_t i = 0; i < c->n_agents; i++) {
        st_coord_agent *a = c->agents[i];
        if (!a->lost && a->last_seen_ns) {
            a->last_seen_ns = a->last_seen_ns + gap < now ? a->last_seen_ns + gap : now;
        }
    }
    c->hold_until_ns = now + c->cfg.grace_ns;
    st_warn("the coordinator itself did not run for %.1f s: its agents are not blamed for that "
            "time, and the seconds it missed wait for their records",
            (double)gap / 1e9);
}

void st_coord_tick(st_coord *c)
{
    st_merge_second out[16];
    bool first = true;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        uint64_t now = st_core_now(c);
        if (first) {
            first = false;
            stall_check(c, now);
        }
        tick_locked(c, now);
        size_t n = st_merge_take_final(c, now, out, 16);
        pthread_mutex_unlock(&c->mu);
        for (size_t i = 0; i < n; i++) {
            /* Percentiles are read here, off the lock that the agents' requests wait for. */
            st_report_second row;
            st_report_second_of(&row, out[i].s.second, out[i].target_rps, &out[i].s,
                                out[i].agents);
            if (st_report_latency_with_timeouts(&row.latency_with_timeouts, out[i].s.lat,
                                                out[i].s.c.err_timeout,
                                                (uint32_t)c->plan->timeout_ms)) {
                st_error("out of memory: second %u has no latency with timeouts", row.second);
            }
            /* Its histograms go with out[i] below: the report keeps the row alone. */
            if (st_report_series_append(c->series, &row)) {
                st_error("out of memory: second %u is missing from the report's series",
                         row.second);
            }
            if (c->cfg.on_second) {
                st_coord_second sec = {out[i].s.second, out[i].target_rps, &out[i].s,
                                       out[i].agents, &row};
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
        st_coord_agent *a = c->agents[i];
        if ((int)a->pid == pid && strcmp(a->host, host) == 0 && !a->lost && !st_core_complete(a)) {
            /* Its silence would tell the same a couple of seconds later. */
            a->last_seen_ns = 0;
        }
    }
    pthread_mutex_unlock(&c->mu);
}

void st_coord_stop(st_coord *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t at = 0;
    if (!c->stopping && !c->stop_at_ns && st_share_stop_ahead(c, &at) == 0) {
        /* Open loop and running: every agent stops at the same instant, a re-plan lead ahead, so
         * the load ends where the duration does and target and achieved agree. */
        c->stop_at_ns = at;
        st_info("stopping: the load ends %.3f s from now, at %.3f s of the run",
                (double)(at - st_core_now(c)) / 1e9, (double)(at - c->t0) / 1e9);
    } else if (!c->stopping && !c->stop_at_ns) {
        c->stopping = true;
        c->stopped_at_ns = st_core_now(c);
        if (c->state == ST_COORD_WAITING || c->state == ST_COORD_PREPARING) {
            fail(c, ST_COORD_FAILURE_STOPPED, "stopped before the start: nothing was sent");
        }
    }
    pthread_mutex_unlock(&c->mu);
}

int st_coord_change_rate(st_coord *c, double rate_rps)
{
    pthread_mutex_lock(&c->mu);
    int rc = st_share_change_rate(c, rate_rps);
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

const char *st_coord_failure_reason_name(st_coord_failure_reason r)
{
    switch (r) {
    case ST_COORD_FAILURE_NONE:
        return "none";
    case ST_COORD_FAILURE_REGISTRATION:
        return "registration";
    case ST_COORD_FAILURE_STOPPED:
        return "stopped";
    default:
        return "runtime";
    }
}

st_coord_failure_reason st_coord_failure_reason_of(st_coord *c)
{
    pthread_mutex_lock(&c->mu);
    st_coord_failure_reason r = c->state != ST_COORD_FAILED ? ST_COORD_FAILURE_NONE
                                : c->failure_reason         ? c->failure_reason
                                                            : ST_COORD_FAILURE_RUNTIME;
    pthread_mutex_unlock(&c->mu);
    return r;
}

int st_coord_agents_alive(st_coord *c)
{
    pthread_mutex_lock(&c->mu);
    int n = st_core_alive(c);
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

const st_stats *st_coord_total(st_coord *c)
{
    pthread_mutex_lock(&c->mu);
    const st_stats *v = st_merge_sum(c);
    pthread_mutex_unlock(&c->mu);
    return v;
}

double st_coord_duration_s(st_coord *c)
{
    double d = st_core_total_s(c);
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
