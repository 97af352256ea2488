#include "window.h"
#include "clock.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

typedef struct slot {
    bool used; /* s is initialised */
    st_stats s;
} slot;

struct st_window {
    uint32_t next;
    slot *slots; /* slots[i] is second next + i; the last one is always used */
    size_t n_slots;
    bool timed;
    uint64_t t0_ns, grace_ns;
    bool keep_total;
    st_stats total; /* the seconds handed out, and the late measurements */
    st_stats sum;   /* total plus the open seconds, built when asked for */
    uint64_t late;
    uint64_t unstored; /* measurements whose open second could not be stored (out of memory) */
};

int st_window_new(st_window **out, uint32_t first_second, unsigned flags)
{
    if (flags & ~ST_WINDOW_TOTAL) {
        return ST_EINVAL;
    }
    st_window *w = calloc(1, sizeof(*w));
    if (!w) {
        return ST_ENOMEM;
    }
    w->next = first_second;
    w->keep_total = flags & ST_WINDOW_TOTAL;
    if (w->keep_total && (st_stats_init(&w->total) || st_stats_init(&w->sum))) {
        st_window_free(w);
        return ST_ENOMEM;
    }
    *out = w;
    return 0;
}

void st_window_free(st_window *w)
{
    if (!w) {
        return;
    }
    for (size_t i = 0; i < w->n_slots; i++) {
        if (w->slots[i].used) {
            st_stats_fini(&w->slots[i].s);
        }
    }
    free(w->slots);
    st_stats_fini(&w->total);
    st_stats_fini(&w->sum);
    free(w);
}

void st_window_set_timing(st_window *w, uint64_t t0_ns, uint64_t grace_ns)
{
    w->timed = true;
    w->t0_ns = t0_ns;
    w->grace_ns = grace_ns;
}

/* The slot of second (>= next), created on first use; NULL when out of memory. */
static slot *slot_for(st_window *w, uint32_t second)
{
    size_t off = second - w->next;
    if (off >= w->n_slots) {
        slot *ns = realloc(w->slots, (off + 1) * sizeof(*ns));
        if (!ns) {
            return NULL;
        }
        memset(ns + w->n_slots, 0, (off + 1 - w->n_slots) * sizeof(*ns));
        w->slots = ns;
        w->n_slots = off + 1;
    }
    slot *sl = &w->slots[off];
    if (!sl->used) {
        if (st_stats_init(&sl->s)) {
            return NULL;
        }
        sl->used = true;
        sl->s.second = second;
    }
    return sl;
}

int st_window_at(st_window *w, uint32_t second, st_stats **dst, bool *late)
{
    slot *sl = second >= w->next ? slot_for(w, second) : NULL;
    if (sl) {
        *dst = &sl->s;
        *late = false;
        return 0;
    }
    if (!w->keep_total) {
        return second < w->next ? ST_EINVAL : ST_ENOMEM;
    }
    /* Both go to the total; only one of them is late. */
    if (second < w->next) {
        w->late++;
    } else {
        w->unstored++;
    }
    *dst = &w->total;
    *late = true;
    return 0;
}

uint32_t st_window_next(const st_window *w)
{
    return w->next;
}

bool st_window_pending(const st_window *w)
{
    return w->n_slots > 0;
}

bool st_window_final(const st_window *w, int64_t through, uint64_t now_ns)
{
    bool reported = (int64_t)w->next <= through;
    if (!w->timed) {
        return reported;
    }
    uint64_t end = w->t0_ns + (uint64_t)(w->next + 1ULL) * ST_NS_PER_S;
    if (now_ns >= end + w->grace_ns) {
        return true;
    }
    return reported && now_ns >= end;
}

void st_window_pop(st_window *w, st_stats *out)
{
    bool have = w->n_slots > 0 && w->slots[0].used;
    if (have) {
        /* A swap, not a copy: the second's histograms become the caller's, and the caller's old
         * ones are released with the slot. */
        st_stats mine = w->slots[0].s;
        w->slots[0].s = *out;
        *out = mine;
        st_stats_fini(&w->slots[0].s);
        if (w->keep_total) {
            st_stats_merge(&w->total, out);
        }
    } else {
        st_stats_reset(out);
    }
    out->second = w->next;
    if (w->n_slots > 0) {
        memmove(w->slots, w->slots + 1, (w->n_slots - 1) * sizeof(*w->slots));
        w->n_slots--;
    }
    w->next++;
}

const st_stats *st_window_total(const st_window *w)
{
    return w->keep_total ? &w->total : NULL;
}

const st_stats *st_window_sum(st_window *w)
{
    if (!w->keep_total) {
        return NULL;
    }
    st_stats_reset(&w->sum);
    st_stats_merge(&w->sum, &w->total);
    for (size_t i = 0; i < w->n_slots; i++) {
        if (w->slots[i].used) {
            st_stats_merge(&w->sum, &w->slots[i].s);
        }
    }
    return &w->sum;
}

uint64_t st_window_late(const st_window *w)
{
    return w->late;
}

uint64_t st_window_unstored(const st_window *w)
{
    return w->unstored;
}
