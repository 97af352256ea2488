/*
 * hist.h - a mergeable log-linear latency histogram (HdrHistogram's layout, 3 significant digits).
 *
 * Values are unsigned integers in microseconds from 0 to ST_HIST_MAX_US (about 71 minutes); larger
 * values are clamped to ST_HIST_MAX_US. Values below 2048 are kept exactly; above, each power of two
 * is cut into 1024 equal buckets, so every bucket is narrower than 1/1024 of its lowest value and
 * every reported percentile is within 0.1% of the true one.
 *
 * Merging adds counts bucket by bucket: merging A into B gives exactly the histogram that recording
 * both streams into one would give (counts, min, max and sum included). Percentiles are never
 * averaged anywhere in stampede: histograms are merged and percentiles read from the result.
 *
 * Buckets have stable indexes (0 .. st_hist_bucket_count()-1) that travel on the wire and into
 * storage as sparse (index, count) pairs; st_hist_bucket_low/high give a bucket's value range.
 *
 * Threading: an st_hist is not thread-safe; each thread records into its own and hands it over
 * whole. Ownership: st_hist_new allocates, st_hist_free releases (NULL is a no-op).
 */
#ifndef ST_HIST_H
#define ST_HIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ST_HIST_MAX_US ((1ULL << 32) - 1)

typedef struct st_hist st_hist;

/* Returns 0 and writes *out, or ST_ENOMEM. */
int st_hist_new(st_hist **out);
void st_hist_free(st_hist *h);
void st_hist_reset(st_hist *h);

/* Records one value (n values). Values above ST_HIST_MAX_US count as ST_HIST_MAX_US. */
void st_hist_record(st_hist *h, uint64_t value_us);
void st_hist_record_n(st_hist *h, uint64_t value_us, uint64_t n);

/* Adds every count of src into dst. */
void st_hist_merge(st_hist *dst, const st_hist *src);

uint64_t st_hist_count(const st_hist *h);
/* Exact smallest / largest recorded value; 0 when empty. */
uint64_t st_hist_min(const st_hist *h);
uint64_t st_hist_max(const st_hist *h);
/* Exact sum of recorded values (clamped values count as clamped). */
uint64_t st_hist_sum(const st_hist *h);
/* Mean of recorded values; 0 when empty. */
double st_hist_mean(const st_hist *h);

/* The value at percentile p (0 < p <= 100): the highest value equivalent to the recorded value of
 * rank ceil(p/100 * count), never above the exact max. 0 when empty; p <= 0 gives the min, p >= 100
 * the max. */
uint64_t st_hist_percentile(const st_hist *h, double p);

/* Sparse access. */
uint32_t st_hist_bucket_count(void);
/* Bucket holding value_us. */
uint32_t st_hist_bucket_of(uint64_t value_us);
/* Lowest and highest value of bucket index (index must be < st_hist_bucket_count()). */
uint64_t st_hist_bucket_low(uint32_t index);
uint64_t st_hist_bucket_high(uint32_t index);

/* Calls fn for every non-zero bucket in increasing index order; stops early and returns fn's value
 * when fn returns non-zero; returns 0 otherwise. */
typedef int (*st_hist_visit_fn)(void *ctx, uint32_t index, uint64_t count);
int st_hist_foreach(const st_hist *h, st_hist_visit_fn fn, void *ctx);

/* Number of non-zero buckets. */
size_t st_hist_nonzero(const st_hist *h);

/* Adds count to bucket index, as a decoder of a sparse histogram does. min, max and sum are then
 * estimated from the bucket bounds until st_hist_set_stats() gives the exact ones.
 * Returns 0, or ST_ERANGE when index is out of range (nothing is changed). */
int st_hist_add_bucket(st_hist *h, uint32_t index, uint64_t count);

/* After loading buckets with st_hist_add_bucket into an empty histogram: sets the exact min, max
 * and sum that travelled beside them. Returns ST_EINVAL (nothing changed) when they contradict
 * the buckets (min or max outside the occupied buckets), 0 otherwise. */
int st_hist_set_stats(st_hist *h, uint64_t min_us, uint64_t max_us, uint64_t sum_us);

/* Checks a sparse histogram that travelled as n (index, count) pairs in increasing index order
 * with its exact min, max and sum. With gaps, index[i] holds the distance from the previous index
 * (the first from 0) instead of the index itself. Returns 0, or ST_EINVAL when an index is out of
 * range or not increasing, a count is 0, or min/max contradict the occupied buckets (n == 0
 * requires min == max == sum == 0). Allocates nothing. */
int st_hist_check_sparse(const uint32_t *index, const uint64_t *count, size_t n, bool gaps,
                         uint64_t min_us, uint64_t max_us, uint64_t sum_us);

/* Merges such a sparse histogram into h: the same result as st_hist_merge of the original.
 * It is checked first (st_hist_check_sparse); on ST_EINVAL h is unchanged. */
int st_hist_merge_sparse(st_hist *h, const uint32_t *index, const uint64_t *count, size_t n,
                         bool gaps, uint64_t min_us, uint64_t max_us, uint64_t sum_us);

/* st_hist_percentile of such a sparse histogram (one st_hist_check_sparse accepted), read in
 * place: the same value as loading it into an empty histogram and asking that, without the
 * histogram (one pass over the n pairs, nothing allocated). 0 when it holds nothing. */
uint64_t st_hist_sparse_percentile(const uint32_t *index, const uint64_t *count, size_t n,
                                   bool gaps, uint64_t min_us, uint64_t max_us, double p);

/* st_hist_merge_sparse without the check, for a sparse histogram st_hist_check_sparse already
 * accepted (a hot path that checks once and merges several times). Anything else is undefined. */
void st_hist_add_sparse(st_hist *h, const uint32_t *index, const uint64_t *count, size_t n,
                        bool gaps, uint64_t min_us, uint64_t max_us, uint64_t sum_us);

#endif
