#include "collect.h"
#include "clock.h"
#include "error.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct slot {
    bool used; /* s is initialised */
    st_stats s;
} slot;

struct st_collector {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n_workers;
    int64_t *closed; /* per worker: highest second submitted (-1 before any), INT64_MAX finished */
    uint32_t next;   /* the next second the consumer takes */
    slot *slots;     /* slots[i] holds second next + i; only a few seconds are ever open */
    size_t n_slots;
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
    if (!c->closed) {
        free(c);
        return ST_ENOMEM;
    }
    for (int i = 0; i < n_workers; i++) {
        c->closed[i] = -1;
    }
    c->n_workers = n_workers;
    c->next = first_second;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    *out = c;
    return 0;
}

void st_collector_free(st_collector *c)
{
    if (!c) {
        return;
    }
    for (size_t i = 0; i < c->n_slots; i++) {
        st_stats_fini(&c->slots[i].s);
    }
    free(c->slots);
    free(c->closed);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

/* The slot of `second` (>= next), created on first use. Lock held. */
static slot *slot_for(st_collector *c, uint32_t second)
{
    size_t off = second - c->next;
    if (off >= c->n_slots) {
        size_t n = off + 1;
        slot *ns = realloc(c->slots, n * sizeof(*ns));
        if (!ns) {
            return NULL;
        }
        memset(ns + c->n_slots, 0, (n - c->n_slots) * sizeof(*ns));
        c->slots = ns;
        c->n_slots = n;
    }
    slot *sl = &c->slots[off];
    if (!sl->used) {
        if (st_stats_init(&sl->s) != 0) {
            return NULL;
        }
        sl->s.second = second;
        sl->used = true;
    }
    return sl;
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
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    if (second >= c->next) {
        slot *sl = slot_for(c, second);
        if (sl) {
            st_stats_merge(&sl->s, s);
        } else {
            rc = ST_ENOMEM;
        }
    } else {
        /* Only a worker that breaks the submission order gets here. */
        rc = ST_EINVAL;
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
    struct timespec ts = {(time_t)(deadline_ns / ST_NS_PER_S), (long)(deadline_ns % ST_NS_PER_S)};
    int rc;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        int64_t through = complete_through(c);
        if (through == INT64_MAX && c->n_slots == 0) {
            rc = ST_ECLOSED;
            break;
        }
        if ((int64_t)c->next <= through) {
            st_stats_reset(out);
            out->second = c->next;
            if (c->n_slots > 0) {
                if (c->slots[0].used) {
                    st_stats_merge(out, &c->slots[0].s);
                    st_stats_fini(&c->slots[0].s);
                }
                memmove(c->slots, c->slots + 1, (c->n_slots - 1) * sizeof(*c->slots));
                c->n_slots--;
            }
            c->next++;
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
