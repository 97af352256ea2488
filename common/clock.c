#include "clock.h"

#include <time.h>

static uint64_t read_clock(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * ST_NS_PER_S + (uint64_t)ts.tv_nsec;
}

uint64_t st_clock_mono_ns(void)
{
    return read_clock(CLOCK_MONOTONIC);
}

uint64_t st_clock_wall_ns(void)
{
    return read_clock(CLOCK_REALTIME);
}

int st_clock_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
    return rc;
}

struct timespec st_clock_timespec(uint64_t mono_ns)
{
    return (struct timespec){(time_t)(mono_ns / ST_NS_PER_S), (long)(mono_ns % ST_NS_PER_S)};
}

static uint64_t real_now(void *ctx)
{
    (void)ctx;
    return st_clock_mono_ns();
}

const st_clock st_clock_real = {real_now, 0};

uint64_t st_clock_fake_now(void *ctx)
{
    return *(const uint64_t *)ctx;
}
