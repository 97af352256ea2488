/*
 * assert_stats.h - cmocka assertions that two histograms or two st_stats are the same, bucket by
 * bucket or by their percentiles. Shared by the unit tests; include after <cmocka.h>.
 */
#ifndef ST_ASSERT_STATS_H
#define ST_ASSERT_STATS_H

#include "hist.h"
#include "stats.h"

#include <stdlib.h>

#define ST_TEST_MAX_BUCKETS 30000

typedef struct st_test_buckets {
    uint32_t idx[ST_TEST_MAX_BUCKETS];
    uint64_t cnt[ST_TEST_MAX_BUCKETS];
    size_t n;
} st_test_buckets;

static inline int st_test_collect(void *ctx, uint32_t index, uint64_t count)
{
    st_test_buckets *b = ctx;
    if (b->n == ST_TEST_MAX_BUCKETS) {
        return 1;
    }
    b->idx[b->n] = index;
    b->cnt[b->n] = count;
    b->n++;
    return 0;
}

/* Same non-zero buckets with the same counts. */
static inline void assert_same_buckets(const st_hist *x, const st_hist *y)
{
    st_test_buckets *bx = calloc(1, sizeof(*bx)), *by = calloc(1, sizeof(*by));
    assert_non_null(bx);
    assert_non_null(by);
    assert_int_equal(st_hist_foreach(x, st_test_collect, bx), 0);
    assert_int_equal(st_hist_foreach(y, st_test_collect, by), 0);
    assert_int_equal(bx->n, by->n);
    for (size_t i = 0; i < bx->n; i++) {
        assert_int_equal(bx->idx[i], by->idx[i]);
        assert_int_equal(bx->cnt[i], by->cnt[i]);
    }
    free(bx);
    free(by);
}

/* Same count, extremes, sum and number of non-zero buckets. */
static inline void assert_hist_totals_equal(const st_hist *x, const st_hist *y)
{
    assert_int_equal(st_hist_count(x), st_hist_count(y));
    assert_int_equal(st_hist_min(x), st_hist_min(y));
    assert_int_equal(st_hist_max(x), st_hist_max(y));
    assert_int_equal(st_hist_sum(x), st_hist_sum(y));
    assert_int_equal(st_hist_nonzero(x), st_hist_nonzero(y));
}

/* Same totals, and the same percentiles at 1, 1 + step, 1 + 2 step ... up to 100. */
static inline void assert_hist_percentiles_equal(const st_hist *x, const st_hist *y, double step)
{
    assert_hist_totals_equal(x, y);
    for (double p = 1; p <= 100; p += step) {
        assert_int_equal(st_hist_percentile(x, p), st_hist_percentile(y, p));
    }
}

/* Same buckets and totals. */
static inline void assert_hist_equal(const st_hist *x, const st_hist *y)
{
    assert_hist_totals_equal(x, y);
    assert_same_buckets(x, y);
}

/* Same counters and both histograms. */
static inline void assert_stats_equal(const st_stats *x, const st_stats *y)
{
    assert_memory_equal(&x->c, &y->c, sizeof(x->c));
    assert_hist_equal(x->lat, y->lat);
    assert_hist_equal(x->lat_raw, y->lat_raw);
}

/* Name i's part of s, as stats to read (borrowed). */
static inline st_stats st_test_part(const st_stats *s, size_t i)
{
    return (st_stats){.c = s->names[i].c, .lat = s->names[i].lat, .lat_raw = s->names[i].lat_raw};
}

/* x and y equal, and so are their per-name parts, name by name. */
static inline void assert_stats_parts_equal(const st_stats *x, const st_stats *y)
{
    assert_stats_equal(x, y);
    assert_int_equal(x->n_names, y->n_names);
    for (size_t i = 0; i < x->n_names; i++) {
        st_stats a = st_test_part(x, i), b = st_test_part(y, i);
        assert_stats_equal(&a, &b);
    }
}

/* part becomes name i's part of s (which has the parts; its inflight left out) and joins s's
 * whole. */
static inline void st_test_add_part(st_stats *s, size_t i, st_stats *part)
{
    part->c.inflight = 0;
    s->names[i].c = part->c;
    st_hist_merge(s->names[i].lat, part->lat);
    st_hist_merge(s->names[i].lat_raw, part->lat_raw);
    st_counts_add(&s->c, &part->c);
    st_hist_merge(s->lat, part->lat);
    st_hist_merge(s->lat_raw, part->lat_raw);
}

#endif
