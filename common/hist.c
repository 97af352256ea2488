#include "hist.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

/* Layout: bucket 0 holds the values 0..2047 one per slot; every further power of two, [2^(10+b),
 * 2^(11+b)), is cut into 1024 slots of width 2^b. With b = max(0, msb(v) - 10) the slot of v is
 * b * 1024 + (v >> b), which makes the index space contiguous. */
#define SUB_BITS   10
#define SUB_HALF   (1u << SUB_BITS)
#define MSB_OF_MAX 31
#define N_BUCKETS  ((MSB_OF_MAX - SUB_BITS) * SUB_HALF + 2 * SUB_HALF)

struct st_hist {
    uint64_t total;
    uint64_t min;
    uint64_t max;
    uint64_t sum;
    uint32_t lo_idx; /* lowest and highest non-zero slot, valid when total > 0 */
    uint32_t hi_idx;
    uint64_t counts[N_BUCKETS];
};

static inline uint32_t index_of(uint64_t v)
{
    if (v < 2 * SUB_HALF) {
        return (uint32_t)v;
    }
    unsigned b = (unsigned)(63 - __builtin_clzll(v)) - SUB_BITS;
    return (uint32_t)(b * SUB_HALF + (v >> b));
}

uint32_t st_hist_bucket_count(void)
{
    return N_BUCKETS;
}

uint32_t st_hist_bucket_of(uint64_t value_us)
{
    return index_of(value_us > ST_HIST_MAX_US ? ST_HIST_MAX_US : value_us);
}

uint64_t st_hist_bucket_low(uint32_t index)
{
    if (index < 2 * SUB_HALF) {
        return index;
    }
    unsigned b = index / SUB_HALF - 1;
    uint64_t m = index - b * SUB_HALF;
    return m << b;
}

uint64_t st_hist_bucket_high(uint32_t index)
{
    if (index < 2 * SUB_HALF) {
        return index;
    }
    unsigned b = index / SUB_HALF - 1;
    uint64_t m = index - b * SUB_HALF;
    return ((m + 1) << b) - 1;
}

int st_hist_new(st_hist **out)
{
    st_hist *h = malloc(sizeof(*h));
    if (!h) {
        return ST_ENOMEM;
    }
    memset(h, 0, sizeof(*h));
    *out = h;
    return 0;
}

void st_hist_free(st_hist *h)
{
    free(h);
}

void st_hist_reset(st_hist *h)
{
    if (h->total > 0) {
        memset(&h->counts[h->lo_idx], 0, (h->hi_idx - h->lo_idx + 1) * sizeof(h->counts[0]));
    }
    h->total = h->min = h->max = h->sum = 0;
    h->lo_idx = h->hi_idx = 0;
}

static inline void add_at(st_hist *h, uint32_t idx, uint64_t n)
{
    if (h->total == 0) {
        h->lo_idx = h->hi_idx = idx;
    } else if (idx < h->lo_idx) {
        h->lo_idx = idx;
    } else if (idx > h->hi_idx) {
        h->hi_idx = idx;
    }
    h->counts[idx] += n;
    h->total += n;
}

void st_hist_record_n(st_hist *h, uint64_t value_us, uint64_t n)
{
    if (n == 0) {
        return;
    }
    if (value_us > ST_HIST_MAX_US) {
        value_us = ST_HIST_MAX_US;
    }
    if (h->total == 0 || value_us < h->min) {
        h->min = value_us;
    }
    if (h->total == 0 || value_us > h->max) {
        h->max = value_us;
    }
    h->sum += value_us * n;
    add_at(h, index_of(value_us), n);
}

void st_hist_record(st_hist *h, uint64_t value_us)
{
    st_hist_record_n(h, value_us, 1);
}

void st_hist_merge(st_hist *dst, const st_hist *src)
{
    if (src->total == 0) {
        return;
    }
    if (dst->total == 0) {
        dst->min = src->min;
        dst->max = src->max;
        dst->lo_idx = src->lo_idx;
        dst->hi_idx = src->hi_idx;
    } else {
        if (src->min < dst->min) {
            dst->min = src->min;
        }
        if (src->max > dst->max) {
            dst->max = src->max;
        }
        if (src->lo_idx < dst->lo_idx) {
            dst->lo_idx = src->lo_idx;
        }
        if (src->hi_idx > dst->hi_idx) {
            dst->hi_idx = src->hi_idx;
        }
    }
    for (uint32_t i = src->lo_idx; i <= src->hi_idx; i++) {
        dst->counts[i] += src->counts[i];
    }
    dst->total += src->total;
    dst->sum += src->sum;
}

uint64_t st_hist_count(const st_hist *h)
{
    return h->total;
}

uint64_t st_hist_min(const st_hist *h)
{
    return h->min;
}

uint64_t st_hist_max(const st_hist *h)
{
    return h->max;
}

uint64_t st_hist_sum(const st_hist *h)
{
    return h->sum;
}

double st_hist_mean(const st_hist *h)
{
    return h->total ? (double)h->sum / (double)h->total : 0.0;
}

/* The rank of percentile p (0 < p < 100) among total values. The rank is computed in integers
 * where possible so that p50 of two values is the lower one, as HdrHistogram does; the small
 * epsilon keeps 99.9% of 1000 at rank 999, not 1000. */
static uint64_t rank_of(double p, uint64_t total)
{
    double want = p / 100.0 * (double)total;
    uint64_t rank = (uint64_t)(want - 1e-9);
    if ((double)rank < want - 1e-9) {
        rank++;
    }
    return rank == 0 ? 1 : rank;
}

/* Bucket i's highest value within the exact min and max. */
static uint64_t clamp_high(uint32_t i, uint64_t min, uint64_t max)
{
    uint64_t v = st_hist_bucket_high(i);
    return v > max ? max : v < min ? min : v;
}

uint64_t st_hist_percentile(const st_hist *h, double p)
{
    if (h->total == 0) {
        return 0;
    }
    if (p <= 0.0) {
        return h->min;
    }
    if (p >= 100.0) {
        return h->max;
    }
    uint64_t rank = rank_of(p, h->total);
    uint64_t seen = 0;
    for (uint32_t i = h->lo_idx; i <= h->hi_idx; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            return clamp_high(i, h->min, h->max);
        }
    }
    return h->max;
}

uint64_t st_hist_sparse_percentile(const uint32_t *index, const uint64_t *count, size_t n,
                                   bool gaps, uint64_t min_us, uint64_t max_us, double p)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += count[i];
    }
    if (total == 0) {
        return 0;
    }
    if (p <= 0.0) {
        return min_us;
    }
    if (p >= 100.0) {
        return max_us;
    }
    uint64_t rank = rank_of(p, total), seen = 0;
    uint32_t at = 0;
    for (size_t i = 0; i < n; i++) {
        at = gaps ? at + index[i] : index[i];
        seen += count[i];
        if (seen >= rank) {
            return clamp_high(at, min_us, max_us);
        }
    }
    return max_us;
}

int st_hist_foreach(const st_hist *h, st_hist_visit_fn fn, void *ctx)
{
    if (h->total == 0) {
        return 0;
    }
    for (uint32_t i = h->lo_idx; i <= h->hi_idx; i++) {
        if (h->counts[i]) {
            int rc = fn(ctx, i, h->counts[i]);
            if (rc) {
                return rc;
            }
        }
    }
    return 0;
}

size_t st_hist_nonzero(const st_hist *h)
{
    size_t n = 0;
    if (h->total == 0) {
        return 0;
    }
    for (uint32_t i = h->lo_idx; i <= h->hi_idx; i++) {
        n += h->counts[i] != 0;
    }
    return n;
}

int st_hist_add_bucket(st_hist *h, uint32_t index, uint64_t count)
{
    if (index >= N_BUCKETS) {
        return ST_ERANGE;
    }
    if (count == 0) {
        return 0;
    }
    uint64_t lo = st_hist_bucket_low(index);
    uint64_t hi = st_hist_bucket_high(index);
    if (h->total == 0 || lo < h->min) {
        h->min = lo;
    }
    if (h->total == 0 || hi > h->max) {
        h->max = hi;
    }
    h->sum += lo * count;
    add_at(h, index, count);
    return 0;
}

int st_hist_set_stats(st_hist *h, uint64_t min_us, uint64_t max_us, uint64_t sum_us)
{
    if (h->total == 0) {
        return (min_us || max_us || sum_us) ? ST_EINVAL : 0;
    }
    if (min_us > ST_HIST_MAX_US || max_us > ST_HIST_MAX_US || min_us > max_us ||
        index_of(min_us) != h->lo_idx || index_of(max_us) != h->hi_idx) {
        return ST_EINVAL;
    }
    h->min = min_us;
    h->max = max_us;
    h->sum = sum_us;
    return 0;
}

int st_hist_check_sparse(const uint32_t *index, const uint64_t *count, size_t n, bool gaps,
                         uint64_t min_us, uint64_t max_us, uint64_t sum_us)
{
    if (n == 0) {
        return (min_us || max_us || sum_us) ? ST_EINVAL : 0;
    }
    uint64_t at = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t idx = gaps ? at + index[i] : index[i];
        if (idx >= N_BUCKETS || count[i] == 0 || (i > 0 && idx <= at)) {
            return ST_EINVAL;
        }
        if (i == 0) {
            first = idx;
        }
        at = idx;
    }
    if (min_us > max_us || max_us > ST_HIST_MAX_US || index_of(min_us) != first ||
        index_of(max_us) != at) {
        return ST_EINVAL;
    }
    return 0;
}

void st_hist_add_sparse(st_hist *h, const uint32_t *index, const uint64_t *count, size_t n,
                        bool gaps, uint64_t min_us, uint64_t max_us, uint64_t sum_us)
{
    if (n == 0) {
        return;
    }
    bool was_empty = h->total == 0;
    uint32_t at = 0;
    for (size_t i = 0; i < n; i++) {
        at = gaps ? at + index[i] : index[i];
        add_at(h, at, count[i]);
    }
    if (was_empty || min_us < h->min) {
        h->min = min_us;
    }
    if (was_empty || max_us > h->max) {
        h->max = max_us;
    }
    h->sum += sum_us;
}

int st_hist_merge_sparse(st_hist *h, const uint32_t *index, const uint64_t *count, size_t n,
                         bool gaps, uint64_t min_us, uint64_t max_us, uint64_t sum_us)
{
    int rc = st_hist_check_sparse(index, count, n, gaps, min_us, max_us, sum_us);
    if (rc == 0) {
        st_hist_add_sparse(h, index, count, n, gaps, min_us, max_us, sum_us);
    }
    return rc;
}
