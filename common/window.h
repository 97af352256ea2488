/*
 * window.h - the open seconds of a measurement: per-second stats filled as measurements arrive
 * in any order, handed out oldest first once final.
 *
 * Two programs gather seconds this way: the agent merges its worker threads' seconds into one
 * record per second (agent/collect.h), and the coordinator merges every agent's records into the
 * run's seconds (coordinator/merge.h). The window holds second next, next + 1, ... (created on
 * first use, so only the seconds that something arrived for cost memory) and knows when the
 * oldest is final; what counts as "reported" (workers, agents) is the caller's, who passes the
 * highest second every source it still waits for has reported ("through").
 *
 * A second is final when:
 *   - untimed (the agent): every source reported it (second <= through);
 *   - timed (the coordinator, after st_window_set_timing): it has ended (t0 + (k + 1) s) and
 *     every source reported it, or grace_ns after its end whatever was reported.
 *
 * With ST_WINDOW_TOTAL the window also keeps the total of the measurement: the seconds handed
 * out, plus late measurements (for a second already handed out: st_window_late) and those whose
 * second could not be stored (out of memory: st_window_unstored), which still count in the total.
 * Without it, a measurement for a second already handed out is refused (ST_EINVAL).
 *
 * Threading: not thread-safe; the caller locks. Ownership: the window owns its seconds and its
 * total; st_window_pop swaps a second's stats into the caller's.
 */
#ifndef ST_WINDOW_H
#define ST_WINDOW_H

#include "stats.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct st_window st_window;

/* Flags of st_window_new. */
#define ST_WINDOW_TOTAL 1u

/* The first second handed out is first_second. Returns 0, ST_EINVAL (unknown flags) or
 * ST_ENOMEM. */
int st_window_new(st_window **out, uint32_t first_second, unsigned flags);
void st_window_free(st_window *w);

/* From now on seconds are timed: second k ends at t0_ns + (k + 1) s and is final at the latest
 * grace_ns after that (instants on the caller's clock). */
void st_window_set_timing(st_window *w, uint64_t t0_ns, uint64_t grace_ns);

/* The stats that take a measurement of `second` (the caller merges into *dst before it calls the
 * window again). Returns 0 with *late false: *dst is that open second (created on first use);
 * 0 with *late true (ST_WINDOW_TOTAL only): *dst is the total, because the second was handed out
 * already (counted in st_window_late) or could not be stored for want of memory (counted in
 * st_window_unstored: second >= st_window_next tells the two apart); ST_EINVAL: the second was
 * handed out and there is no total; ST_ENOMEM: the second could not be stored and there is no
 * total. */
int st_window_at(st_window *w, uint32_t second, st_stats **dst, bool *late);

/* The oldest second still open (the next handed out). */
uint32_t st_window_next(const st_window *w);

/* True when some second not handed out yet holds a measurement. */
bool st_window_pending(const st_window *w);

/* Whether the next second is final (rules above): `through` is the highest second every source
 * the caller waits for has reported (INT64_MAX when it waits for none, -1 when one reported
 * nothing yet); now_ns matters only when timed. */
bool st_window_final(const st_window *w, int64_t through, uint64_t now_ns);

/* Hands out the next second, final or not (the caller decides): out, an initialised st_stats,
 * receives exactly its stats (an empty second: zeroed) and out->second its index; with
 * ST_WINDOW_TOTAL they join the total. */
void st_window_pop(st_window *w, st_stats *out);

/* ST_WINDOW_TOTAL only (else NULL): the seconds handed out plus the late measurements. */
const st_stats *st_window_total(const st_window *w);

/* ST_WINDOW_TOTAL only (else NULL): the total plus the seconds still open, built when called;
 * valid until the next call. */
const st_stats *st_window_sum(st_window *w);

/* Measurements that went to the total after their second (see st_window_at). */
uint64_t st_window_late(const st_window *w);

/* Measurements that went to the total only because their open second could not be stored (out
 * of memory): the total has them, their second does not. */
uint64_t st_window_unstored(const st_window *w);

#endif
