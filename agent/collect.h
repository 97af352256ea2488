/*
 * collect.h - gathers the worker threads' per-second stats into one record per second.
 *
 * Each worker thread closes second s of its own measurement (in order 0, 1, 2, ...) and submits
 * it; the collector merges it into second s of its window (common/window.h) under a lock (a merge
 * touches only the occupied histogram range, microseconds), so workers never share counters while
 * measuring. Second s is
 * complete once every worker has submitted it or finished; the consumer (the agent's main thread)
 * takes complete seconds in order with st_collector_next.
 *
 * Threading: st_collector_submit and st_collector_finish may be called from any thread;
 * st_collector_next from one consumer thread. Ownership: the collector owns its slots; submit
 * copies (merges) from the caller's stats, which the caller keeps.
 */
#ifndef ST_COLLECT_H
#define ST_COLLECT_H

#include "stats.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct st_collector st_collector;

/* n_workers >= 1; the first second taken is first_second. Returns 0, ST_EINVAL or ST_ENOMEM. */
int st_collector_new(st_collector **out, int n_workers, uint32_t first_second);
void st_collector_free(st_collector *c);

/* Worker `worker` closes `second`: merges s into it, its per-name parts (common/stats.h) name by
 * name. Seconds must be submitted in increasing order per worker (a skipped second counts as
 * empty). Returns 0, ST_ENOMEM (that second's stats, or its per-name parts, could not be stored:
 * the caller reports it) or ST_EINVAL (a second already handed out). */
int st_collector_submit(st_collector *c, int worker, uint32_t second, const st_stats *s);

/* Worker `worker` will submit nothing more. */
void st_collector_finish(st_collector *c, int worker);

/* Waits until the next second is complete or until the monotonic deadline. On 0, out (an
 * initialised st_stats) holds exactly that second's merged stats and out->second its index.
 * Returns 0, ST_ETIMEDOUT, or ST_ECLOSED when every worker finished and every second was taken. */
int st_collector_next(st_collector *c, st_stats *out, uint64_t deadline_ns);

#endif
