/*
 * run.h - one agent's load: its worker threads, their share of the schedule, and their stats.
 *
 * st_run_start splits the agent's slice of the global schedule among plan->threads workers
 * (st_slice_subdivide, so the threads' sends interleave evenly), splits plan->connections among
 * them, and starts them at the monotonic instant t0. The caller then takes one merged st_stats
 * per second with st_run_next, in order, until ST_ECLOSED. The standalone agent prints them; an
 * agent under a coordinator sends them.
 *
 * Threading: all calls from one owner thread, except st_run_stop, which any thread may call
 * (not a signal handler). Ownership: the plan and engine ops must outlive the run.
 */
#ifndef ST_RUN_H
#define ST_RUN_H

#include "engine.h"
#include "plan.h"
#include "split.h"
#include "stats.h"

#include <stdint.h>

typedef struct st_run st_run;

typedef struct st_run_cfg {
    const st_plan *plan;         /* finished */
    const st_engine_ops *engine; /* st_engine_curl or st_engine_fast */
    const st_slice *slice;       /* this agent's share; NULL for the whole schedule */
    const st_profile *profile;   /* NULL: the plan's; else must outlive the run */
    uint64_t from_q;             /* first global request to send (an agent joining late) */
    uint64_t t0_ns;              /* monotonic start instant (may be past for a late joiner) */
} st_run_cfg;

/* Makes sure this process may open the file descriptors the plan's connections need: each
 * connection one, plus ST_RUN_FDS_PER_THREAD per worker thread and ST_RUN_FDS_BASE for the
 * process (stdio, logs, the coordinator's socket, libcurl's resolver). Raises the soft
 * RLIMIT_NOFILE up to the hard limit when it is lower. Returns 0, or ST_EINVAL when even the
 * hard limit is too low (err names --connections, the need and the limit: lower the connections
 * or raise `ulimit -Hn`). Call from the owner thread before the workers start. */
#define ST_RUN_FDS_PER_THREAD 8
#define ST_RUN_FDS_BASE       64
int st_run_reserve_fds(const st_plan *plan, char *err, size_t err_len);

/* Creates and starts the workers (after st_run_reserve_fds, which it calls). Returns 0,
 * ST_EINVAL (message in err), ST_ENOMEM or ST_ESYSTEM; on error nothing is left running. */
int st_run_start(st_run **out, const st_run_cfg *cfg, char *err, size_t err_len);

/* The next second's stats, merged over the threads (see st_collector_next). Returns 0,
 * ST_ETIMEDOUT at the monotonic deadline, or ST_ECLOSED after the last second. */
int st_run_next(st_run *r, st_stats *out, uint64_t deadline_ns);

/* Hands every thread its part of a new share from global request from_q on (st_worker_replan):
 * slice NULL means this agent sends nothing from from_q on; profile NULL keeps the current one,
 * else it must outlive the run. Returns 0 or ST_ENOMEM. */
int st_run_replan(st_run *r, const st_profile *profile, const st_slice *slice, uint64_t from_q);

/* The realised start: t0 plus the smallest lateness of any thread's first send. Returns 0
 * and writes *start_ns (monotonic), or ST_EAGAIN before any thread sent. */
int st_run_realised_start(st_run *r, uint64_t t0_ns, uint64_t *start_ns);

/* Every thread may send only before the monotonic instant until_ns (st_worker_licence). Any
 * thread. */
void st_run_licence(st_run *r, uint64_t until_ns);

/* Stops sending now; in-flight requests drain as at the end. Idempotent. */
void st_run_stop(st_run *r);

/* Stops (if still running), joins and frees. NULL is a no-op. */
void st_run_free(st_run *r);

#endif
