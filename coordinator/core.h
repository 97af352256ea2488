/*
 * core.h - the state of the coordinator's core, shared by the core's own modules and nobody else:
 * coord.c (the run's state machine and the public API, coord.h), admit.c (requests and replies),
 * share.c (the shares and re-sharing), merge.c (records into seconds) and report.c (the typed
 * report). Servers, commands, outputs and tests go through coord.h.
 *
 * Threading: every field is guarded by mu, except cfg and plan (fixed by st_coord_new). The
 * functions of those modules that take an st_coord expect mu held unless their contract says
 * they take it.
 */
#ifndef ST_COORD_CORE_H
#define ST_COORD_CORE_H

#include "clock.h"
#include "coord.h"
#include "merge.h"
#include "profile.h"
#include "report.h"
#include "stampede.pb-c.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* An agent of the run, from its registration on (admit.c creates it, st_coord_free frees it). */
struct st_coord_agent {
    uint32_t id; /* 1-based, the index + 1 */
    uint64_t instance_id;
    char *name, *host, *task_arn, *az, *version; /* never NULL ("" when not given) */
    char *cluster, *task_definition;             /* ECS; never NULL ("" elsewhere) */
    double cpu_vcpus;                            /* ECS: the task's CPU limit; 0 elsewhere */
    bool has_clock_error_bound;
    double clock_error_bound_ms; /* ECS: the task's ClockErrorBound when it gave one */
    uint32_t pid, cores, threads, weight;
    int64_t offset_ns;
    uint64_t rtt_ns;
    uint64_t last_seen_ns;
    Stampede__AgentState state;
    uint32_t epoch; /* the assignment the agent reports it applied */
    char *error;
    bool lost;
    char *lost_reason;  /* why it was lost (NULL while it is not) */
    uint64_t lost_at_ns;
    /* Its share was its own until this instant (the re-plan that moved it); UINT64_MAX while it
     * carries one. Records of later seconds that carry sends are not taken. */
    uint64_t assigned_until_ns;
    /* It stopped its load on its own (its dead-man, AgentUpdate.stop_reason), from this instant
     * (coordinator time). */
    bool self_stopped;
    uint64_t stopped_coord_ns;
    /* The first second handed out without its record while it owed one (-1: none). */
    int64_t first_owed_second;
    bool counted; /* has a share in the run */
    bool started; /* was told the start instant */
    uint64_t acked_seq;
    uint64_t last_seq;
    int64_t max_second;
    uint64_t first_send_coord_ns;
    /* Its current share (share.c). */
    uint32_t share_epoch;
    uint64_t *residues;
    uint32_t n_residues;
    uint64_t from_q;
    st_counts totals; /* what its records added up to (merge.c) */
    /* Its latest record with responses (merge.c): its second and the p99 of its two latency
     * histograms, read from the record as it is taken (has_p99 false until one came). */
    bool has_p99;
    uint32_t p99_second;
    uint64_t p99_us, p99_raw_us;
};

/* Frees an agent and everything it holds (NULL is fine). */
void st_coord_agent_free(st_coord_agent *a);

struct st_coord {
    pthread_mutex_t mu;
    st_coord_cfg cfg;
    const st_plan *plan;
    st_profile profile; /* the plan's, changed by live rate changes */
    st_coord_state state;
    char failure[512];
    st_coord_failure_reason failure_reason;
    st_coord_agent **agents;
    size_t n_agents, cap_agents;
    uint32_t epoch;  /* the current split (share.c) */
    uint64_t period; /* its residues are modulo period */
    uint64_t created_ns;
    uint64_t deadline_ns;
    uint64_t t0;
    uint64_t end_ns;
    bool stopping;
    uint64_t stopped_at_ns; /* the load's end when stopped: a graceful stop's instant, else
                               when st_coord_stop was called */
    uint64_t stop_at_ns;    /* a graceful stop waiting for its instant (share.c); 0: none */
    /* The coordinator's own stalls (ST_PROTO_COORD_STALL_MS): the previous tick, and until when
     * seconds wait for their records rather than for the grace timer. */
    uint64_t last_tick_ns;
    uint64_t hold_until_ns;
    st_merge merge;
    uint64_t malformed, duplicates;
    /* The seconds handed out, for the report, packed (st_report_series). The owner thread's
     * alone (st_coord_tick appends, st_coord_report reads): not guarded by mu. */
    st_report_series *series;
    /* The live rate changes made so far (st_coord_change_rate_by), for the report. */
    st_report_rate_change *rate_changes;
    size_t n_rate_changes, cap_rate_changes;
};

static inline uint64_t st_core_now(const st_coord *c)
{
    return st_clock_now(c->cfg.clock);
}

/* Agents registered and not lost. */
static inline int st_core_alive(const st_coord *c)
{
    int n = 0;
    for (size_t i = 0; i < c->n_agents; i++) {
        n += !c->agents[i]->lost;
    }
    return n;
}

/* Agents that carry a share: counted and not lost. */
static inline bool st_core_active(const st_coord_agent *a)
{
    return a->counted && !a->lost;
}

/* The agent said it is done and every record it announced was taken. */
static inline bool st_core_complete(const st_coord_agent *a)
{
    return a->state == STAMPEDE__AGENT_STATE__AGENT_DONE && a->acked_seq >= a->last_seq;
}

/* Marks an agent lost (why is copied) from now: its share stays its own until a re-plan lead
 * ahead (the caller re-plans). coord.c. */
void st_core_lose(st_coord *c, st_coord_agent *a, const char *why);

/* The planned length of the run. */
static inline double st_core_total_s(const st_coord *c)
{
    return c->plan->closed_loop ? c->plan->duration_s : c->profile.total_s;
}

#endif
