/*
 * clock.h - the clocks stampede measures with.
 *
 * st_clock_mono_ns() is CLOCK_MONOTONIC in nanoseconds: every interval, deadline and latency uses it.
 * Agents and the coordinator agree on "when" by measuring the offset between their monotonic clocks
 * (see the coordinator's clock sync), never by trusting wall clocks. st_clock_wall_ns() is
 * CLOCK_REALTIME, used only for timestamps that leave the process (records, TTLs, file names).
 *
 * st_clock is a small ops table so that code which schedules by time can run on a fake clock in
 * tests. st_clock_cond_init and st_clock_timespec let a thread wait on a condition until a
 * monotonic deadline. All functions are thread-safe.
 */
#ifndef ST_CLOCK_H
#define ST_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#define ST_NS_PER_US 1000ULL
#define ST_NS_PER_MS 1000000ULL
#define ST_NS_PER_S  1000000000ULL

uint64_t st_clock_mono_ns(void);
uint64_t st_clock_wall_ns(void);

typedef struct st_clock {
    uint64_t (*now_ns)(void *ctx); /* monotonic nanoseconds */
    void *ctx;
} st_clock;

/* Initialises *cv (pthread_cond_init) to time its waits on CLOCK_MONOTONIC, so that a deadline
 * from st_clock_mono_ns (st_clock_timespec) is neither shortened nor stretched by a step of the
 * wall clock. Returns pthread_cond_init's result; the caller destroys cv. */
int st_clock_cond_init(pthread_cond_t *cv);

/* The monotonic instant mono_ns as pthread_cond_timedwait takes it on such a cv. */
struct timespec st_clock_timespec(uint64_t mono_ns);

/* The real monotonic clock as an st_clock. */
extern const st_clock st_clock_real;

static inline uint64_t st_clock_now(const st_clock *c)
{
    return c->now_ns(c->ctx);
}

/* A fake clock for tests: now_ns returns *(uint64_t *)ctx. */
uint64_t st_clock_fake_now(void *ctx);

#endif
