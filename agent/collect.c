#include "collect.h"
#include "clock.h"
#include "error.h"
#include "window.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct st_collector {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n_workers;
    int64_t *closed; /* per worker: highest second submitted (-1 before any), INT64_MAX finished */
    st_window *win;  /* the seconds not taken yet; only a few are ever open */
};

int st_collector_new(st_collector **out, int n_workers, uint32_t first_second)
{
    if (n_workers < 1) {
        return ST_EINVAL;
    }
    st_collector *c = calloc(1, sizeof(*c));
    if (!c) {
        return ST_ENOMEM;
    }
    c->closed = malloc((size_t)n_workers * sizeof(*c->closed));
    if (!c->closed || st_window_new(&c->win, first_second, 0)) {
        free(c->closed);
        free(c);
        return ST_ENOMEM;
    }
    for (int i = 0; i < n_workers; i++) {
        c->closed[i] = -1;
    }
    c->n_workers = n_workers;
    pthread_mutex_init(&c->mu, NULL);
    st_clock_cond_init(&c->cv);
    *out = c;
    return 0;
}

void st_collector_free(st_collector *c)
{
    if (!c) {
        return;
    }
    st_window_free(c->win);
    free(c->closed);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

/* Lowest second some unfinished worker may still submit into, minus one. Lock held. */
static int64_t complete_through(const st_collector *c)
{
    int64_t m = INT64_MAX;
    for (int i = 0; i < c->n_workers; i++) {
        if (c->closed[i] < m) {
            m = c->closed[i];
        }
    }
    return m;
}

int st_collector_submit(st_collector *c, int worker, uint32_t second, const st_stats *s)
{
    st_stats *dst;
    bool late;
    pthread_mutex_lock(&c->mu);
    /* ST_EINVAL (a second already taken) only for a worker that breaks the submission order. */
    int rc = st_window_at(c->win, second, &dst, &late);
    if (rc == 0) {
        rc = st_stats_merge(dst, s);
    }
    if ((int64_t)second > c->closed[worker]) {
        c->closed[worker] = second;
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void st_collector_finish(st_collector *c, int worker)
{
    pthread_mutex_lock(&c->mu);
    c->closed[worker] = INT64_MAX;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

int st_collector_next(st_collector *c, st_stats *out, uint64_t deadline_ns)
{
    struct timespec ts = st_clock_timespec(deadline_ns);
    int rc;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        int64_t through = complete_through(c);
        if (through == INT64_MAX && !st_window_pending(c->win)) {
            rc = ST_ECLOSED;
            break;
        }
        if (st_window_final(c->win, through, 0)) {
            st_window_pop(c->win, out);
            rc = 0;
            break;
        }
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) != 0 && st_clock_mono_ns() >= deadline_ns) {
            rc = ST_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}
