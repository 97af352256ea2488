/*
 * merge.h - the coordinator's merge window: agents' records into the run's seconds, exactly once.
 *
 * Records carry per-agent sequence numbers; a record is taken exactly once, in sequence order
 * (duplicates from re-sends are counted and ignored, a gap waits for the missing record) and is
 * added bucket by bucket to its second and to its agent's totals; with cfg.agent_p99, the p99 of
 * an agent's latest record with responses is read from it on the way (the terminal UI's agents'
 * table: one pass over the record's buckets, some 0.7 us a histogram of 370 buckets). The seconds are a timed window
 * (common/window.h) that keeps the run's total: second k is final when every agent still counted
 * has reported it, or grace_ns after it ended, and a record arriving later still counts in the
 * total (and in late_records).
 *
 * Called by the core's modules only (admit.c takes records, coord.c hands out final seconds),
 * with the core's lock held. Ownership: st_merge owns its window; seconds handed out by
 * st_merge_take_final belong to the caller.
 */
#ifndef ST_COORD_MERGE_H
#define ST_COORD_MERGE_H

#include "coord.h"
#include "names.h"
#include "stampede.pb-c.h"
#include "stats.h"
#include "window.h"

#include <stddef.h>
#include <stdint.h>

typedef struct st_coord_agent st_coord_agent;

typedef struct st_merge {
    st_window *win;
    st_names names; /* the plan's request names; per-name parts for st_names_kept of them */
} st_merge;

/* For the (finished) plan p, which outlives m. Returns 0 or ST_ENOMEM (m is then empty: fini is
 * still safe). */
int st_merge_init(st_merge *m, const st_plan *p);
void st_merge_fini(st_merge *m);

/* The run started at t0_ns: seconds become timed, with the configured grace. */
void st_merge_start(st_coord *c);

/* Takes the records of update u from agent a; valid[i] says whether record i passed
 * st_wire_record_check. Malformed records (those too whose per-name parts do not fit the plan:
 * st_wire_record_check_names) and records for no second of the run are counted in c->malformed,
 * re-sent ones in c->duplicates. */
void st_merge_records(st_coord *c, st_coord_agent *a, const Stampede__AgentUpdate *u,
                      const unsigned char *valid);

/* A second handed out: its stats (initialised, the caller's to fini), what the profile asked for
 * in it, and the agents alive when it was handed out. */
typedef struct st_merge_second {
    st_stats s;
    double target_rps;
    int agents;
} st_merge_second;

/* Moves up to max final seconds out of the window, in order, into out (the run ended: every
 * second is final). Seconds after the end only carry the drain: they are handed out when
 * something happened in them. Returns how many. */
size_t st_merge_take_final(st_coord *c, uint64_t now, st_merge_second *out, size_t max);

/* Everything taken so far: the seconds handed out, the late records and the open seconds. Valid
 * until the next call. */
const st_stats *st_merge_sum(st_coord *c);

/* Records that arrived after their second was handed out. */
uint64_t st_merge_late(const st_coord *c);

/* Records whose second could not be stored for want of memory: in the total, missing from their
 * second (never counted as late). */
uint64_t st_merge_unstored(const st_coord *c);

#endif
