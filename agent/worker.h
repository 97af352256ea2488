/*
 * worker.h - one load-generating thread: a libev loop, an engine, and an open-loop schedule.
 *
 * A worker sends the requests of its slice of the global schedule (split.h) at the instants the
 * rate profile gives (profile.h), measured from the common start instant t0. Request q is sent at
 * t0 + time_of(q); its latency is measured from that intended instant (coordinated omission
 * corrected) and from the actual send (uncorrected). When no connection is free the request waits
 * in a backlog, oldest first; a send later than late_ns after its intended instant counts as
 * late; a backlog beyond ST_WORKER_MAX_BACKLOG counts further requests as dropped. In closed-loop
 * mode (the plan's closed_loop) every connection sends its next request as soon as the previous
 * one completes.
 *
 * Send window (the plan's send_window, > 0): the pacing timer wakes at most once per window
 * (counted from the instant the last wake-up was planned for) and sends every request due by
 * then, each timed from its own instant; a request is never sent before its instant, at most a
 * window after it, and always within the second (aligned to t0) it is due in, so the per-second
 * counts stay exact. A completion also sends the requests already due. Window 0: a wake-up at
 * each request's instant.
 *
 * Reading answers late (real clock, send window > 0, an engine with reads_can_wait: the fast
 * one): the engine's sockets are watched by a second loop embedded in the worker's. When the
 * loop is about to sleep in the run, with no backlog, the pacing timer due within one window and
 * the engine agreeing, it sleeps on its own timers only: answers that arrive meanwhile wake
 * nothing and are read first thing at that wake-up (and before each second closes), each timed by
 * the kernel's stamp of its arrival, so their latencies are what they would have been had each
 * woken the loop. Otherwise (a backlog, connects, handshakes, full sockets, the drain) every
 * arrival wakes the loop as before. An answer is counted in the second that is open when it is
 * read, and an answer that arrived after a second's end closes that second first, after the
 * requests due in it have gone out (so each send is still counted in the second it is due in).
 *
 * Every second (aligned to t0) the worker submits its stats of that second to the collector and
 * starts afresh. At the end of the profile (or on st_worker_stop) it stops sending, counts the
 * backlog as dropped, waits for in-flight requests up to drain_ns, aborts the rest, submits its
 * last second and finishes.
 *
 * Time: every instant is on cfg->clock (common/clock.h). On the real monotonic clock the worker
 * runs on a thread of its own (st_worker_start) and wakes itself. On any other clock (a fake one
 * in tests) it has no thread: its owner moves the clock and calls st_worker_advance, which runs
 * what is due on the caller's thread; the schedule, the accounting and the engine calls are the
 * same.
 *
 * Threading: st_worker_new/start/join/free are called by the owner thread; st_worker_stop may be
 * called from any thread. Everything else runs on the worker's thread (for a worker driven by
 * st_worker_advance, the thread that calls it).
 */
#ifndef ST_WORKER_H
#define ST_WORKER_H

#include "collect.h"
#include "engine.h"
#include "plan.h"
#include "split.h"

#include "clock.h"

#include <stdint.h>

#define ST_WORKER_MAX_BACKLOG (1u << 20)

typedef struct st_worker st_worker;

typedef struct st_worker_cfg {
    int index;                   /* the worker's number in the collector */
    const st_plan *plan;         /* finished; outlives the worker */
    const st_engine_ops *engine; /* the transport */
    int connections;             /* this worker's connection cap */
    const st_slice *slice;       /* this worker's part of the schedule (copied); ignored in closed
                                    loop; NULL: nothing to send */
    const st_profile *profile;   /* the rate profile; NULL: the plan's. Must outlive the worker */
    uint64_t from_q;             /* the first global request this worker may send (a late joiner) */
    uint64_t t0_ns;              /* monotonic start instant */
    uint32_t first_second;       /* the first second it reports (seconds before are not its) */
    uint64_t drain_ns;           /* how long in-flight requests may finish after the end */
    const st_clock *clock;       /* NULL or &st_clock_real: the real monotonic clock, and a thread;
                                    any other: driven by st_worker_advance. Outlives the worker */
} st_worker_cfg;

/* Creates the worker (its loop and engine; no thread yet). Returns 0, ST_EINVAL (message in err),
 * ST_ENOMEM or ST_ESYSTEM. The collector must outlive the worker. */
int st_worker_new(st_worker **out, const st_worker_cfg *cfg, st_collector *col, char *err,
                  size_t err_len);

/* Starts the thread. Returns 0, ST_ESYSTEM, or ST_ESTATE for a worker on another clock than the
 * real one (drive it with st_worker_advance). */
int st_worker_start(st_worker *w);

/* Asks the worker to stop sending now and wind down as at the end of the profile. Any thread;
 * idempotent. */
void st_worker_stop(st_worker *w);

/* Switches to a new share of the schedule from global request from_q on: the old slice's requests
 * below from_q are still sent at their instants, then the new slice's from its first element at
 * or after from_q, under the new profile (which must outlive the worker; NULL keeps the current one).
 * slice NULL: the worker sends nothing from from_q on. Any thread; the last call wins if
 * several arrive before the worker applies them. Returns 0 or ST_ENOMEM. */
int st_worker_replan(st_worker *w, const st_profile *profile, const st_slice *slice,
                     uint64_t from_q);

/* Allows sends before the monotonic instant until_ns only (the agent's dead-man: its session's
 * licence, common/session.h). A worker that finds itself past it before a send sends nothing
 * more: the requests due before until_ns and not sent count as dropped, those due after are no
 * longer its own, and it winds down as after st_worker_stop. Until called, sends are always
 * allowed. Any thread; the last call wins; a licence that has passed stays passed for the
 * worker, whatever comes after. */
void st_worker_licence(st_worker *w, uint64_t until_ns);

/* How late the worker's first open-loop send left after its intended instant: 0 and *late_ns,
 * or ST_EAGAIN before it sent anything. Any thread. */
int st_worker_first_late(st_worker *w, uint64_t *late_ns);

/* For a worker on another clock than the real one, in place of a thread: handles what is pending
 * on its loop without waiting (st_worker_stop, re-plans, whatever the engine watches), then, in
 * time order, everything due at or before the clock's now (the start, sends, second boundaries,
 * the end of the profile, the drain bound). The engine's done() callbacks are whatever the engine
 * delivers on this thread in between. Returns 0 and writes *next_ns, the earliest instant at
 * which something falls due (UINT64_MAX: nothing until the engine completes a request or a stop);
 * ST_ECLOSED once the worker finished (its last second submitted, the collector told, the engine
 * destroyed, nothing left on its loop); ST_ESTATE on a worker on the real clock. */
int st_worker_advance(st_worker *w, uint64_t *next_ns);

/* Waits for the thread to end (it ends by itself after the profile, or after st_worker_stop). */
void st_worker_join(st_worker *w);

/* Frees a worker that was never started or has been joined. NULL is a no-op. */
void st_worker_free(st_worker *w);

#endif
