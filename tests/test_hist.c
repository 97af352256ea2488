#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "assert_stats.h"

#include "error.h"
#include "hist.h"

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A log-uniform value from 1 us to ~1 hour, the spread latencies really have. */
static uint64_t random_latency(uint64_t *s)
{
    unsigned bits = (unsigned)(xorshift(s) % 32);
    uint64_t v = (xorshift(s) & ((1ULL << bits) - 1)) | (1ULL << bits);
    return v;
}

static void test_hist_precision_bound(void **state)
{
    (void)state;
    /* Every value's bucket is narrower than 1/1024 of its low end: 3 significant digits. */
    for (uint32_t i = 0; i < st_hist_bucket_count(); i++) {
        uint64_t lo = st_hist_bucket_low(i), hi = st_hist_bucket_high(i);
        assert_true(lo <= hi);
        if (i > 0) {
            assert_int_equal(st_hist_bucket_low(i), st_hist_bucket_high(i - 1) + 1);
        }
        assert_true((double)(hi - lo) <= (double)lo / 1024.0 + 1e-9);
    }
    assert_int_equal(st_hist_bucket_high(st_hist_bucket_count() - 1), ST_HIST_MAX_US);

    /* A single value reads back within 0.1% and never below itself. */
    st_hist *h;
    assert_int_equal(st_hist_new(&h), 0);
    uint64_t seed = 42;
    for (int i = 0; i < 100000; i++) {
        uint64_t v = random_latency(&seed);
        st_hist_reset(h);
        st_hist_record(h, v);
        st_hist_record(h, v + v / 2 + 1); /* so that p50 is not the exact max */
        uint64_t got = st_hist_percentile(h, 50);
        assert_true(got >= v);
        assert_true((double)(got - v) <= (double)v / 1000.0);
        assert_int_equal(st_hist_bucket_of(v), st_hist_bucket_of(got));
    }
    st_hist_free(h);
}

static void test_hist_sixty_seconds_in_range(void **state)
{
    (void)state;
    st_hist *h;
    assert_int_equal(st_hist_new(&h), 0);
    st_hist_record(h, 60ULL * 1000 * 1000);
    st_hist_record(h, 1);
    assert_int_equal(st_hist_max(h), 60ULL * 1000 * 1000);
    assert_int_equal(st_hist_min(h), 1);
    /* Beyond the range: clamped, counted. */
    st_hist_record(h, ST_HIST_MAX_US + 12345);
    assert_int_equal(st_hist_count(h), 3);
    assert_int_equal(st_hist_max(h), ST_HIST_MAX_US);
    st_hist_free(h);
}

static void test_hist_merge_equals_single_stream(void **state)
{
    (void)state;
    st_hist *a, *b, *both;
    assert_int_equal(st_hist_new(&a), 0);
    assert_int_equal(st_hist_new(&b), 0);
    assert_int_equal(st_hist_new(&both), 0);
    uint64_t seed = 7;
    for (int i = 0; i < 50000; i++) {
        uint64_t v = random_latency(&seed);
        st_hist_record(i % 3 ? a : b, v);
        st_hist_record(both, v);
    }
    st_hist_merge(a, b);
    assert_int_equal(st_hist_count(a), st_hist_count(both));
    assert_int_equal(st_hist_min(a), st_hist_min(both));
    assert_int_equal(st_hist_max(a), st_hist_max(both));
    assert_int_equal(st_hist_sum(a), st_hist_sum(both));
    const double ps[] = {0, 1, 10, 50, 75, 90, 99, 99.9, 99.99, 100};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        assert_int_equal(st_hist_percentile(a, ps[i]), st_hist_percentile(both, ps[i]));
    }
    assert_int_equal(st_hist_nonzero(a), st_hist_nonzero(both));
    assert_same_buckets(a, both);
    st_hist_free(a);
    st_hist_free(b);
    st_hist_free(both);
}

struct copy_ctx {
    st_hist *dst;
};

static int copy_bucket(void *ctx, uint32_t index, uint64_t count)
{
    struct copy_ctx *c = ctx;
    return st_hist_add_bucket(c->dst, index, count);
}

static void test_hist_sparse_roundtrip(void **state)
{
    (void)state;
    st_hist *src, *dst;
    assert_int_equal(st_hist_new(&src), 0);
    assert_int_equal(st_hist_new(&dst), 0);
    uint64_t seed = 99;
    for (int i = 0; i < 20000; i++) {
        st_hist_record(src, random_latency(&seed));
    }
    struct copy_ctx c = {dst};
    assert_int_equal(st_hist_foreach(src, copy_bucket, &c), 0);
    assert_int_equal(st_hist_set_stats(dst, st_hist_min(src), st_hist_max(src), st_hist_sum(src)),
                     0);
    assert_int_equal(st_hist_count(dst), st_hist_count(src));
    assert_int_equal(st_hist_sum(dst), st_hist_sum(src));
    assert_int_equal(st_hist_percentile(dst, 99.9), st_hist_percentile(src, 99.9));
    assert_int_equal(st_hist_percentile(dst, 100), st_hist_percentile(src, 100));

    /* Contradicting extremes are refused and change nothing. */
    assert_int_equal(st_hist_set_stats(dst, 0, st_hist_max(src) * 2 + 5000, 1), ST_EINVAL);
    assert_int_equal(st_hist_max(dst), st_hist_max(src));
    /* An index out of range is refused. */
    assert_int_equal(st_hist_add_bucket(dst, st_hist_bucket_count(), 1), ST_ERANGE);
    assert_int_equal(st_hist_count(dst), st_hist_count(src));
    st_hist_free(src);
    st_hist_free(dst);
}

static void test_hist_percentile_edges(void **state)
{
    (void)state;
    st_hist *h;
    assert_int_equal(st_hist_new(&h), 0);
    /* Empty. */
    assert_int_equal(st_hist_percentile(h, 50), 0);
    assert_int_equal(st_hist_percentile(h, 100), 0);
    assert_int_equal(st_hist_count(h), 0);
    assert_true(st_hist_mean(h) == 0.0);
    /* One value: every percentile is that value. */
    st_hist_record(h, 123456);
    assert_int_equal(st_hist_percentile(h, 0), 123456);
    assert_int_equal(st_hist_percentile(h, 50), 123456);
    assert_int_equal(st_hist_percentile(h, 99.9), 123456);
    assert_int_equal(st_hist_percentile(h, 100), 123456);
    /* 1000 values 1..1000: exact below 2048. */
    st_hist_reset(h);
    for (uint64_t v = 1; v <= 1000; v++) {
        st_hist_record(h, v);
    }
    assert_int_equal(st_hist_percentile(h, 50), 500);
    assert_int_equal(st_hist_percentile(h, 90), 900);
    assert_int_equal(st_hist_percentile(h, 99), 990);
    assert_int_equal(st_hist_percentile(h, 99.9), 999);
    assert_int_equal(st_hist_percentile(h, 100), 1000);
    assert_int_equal(st_hist_max(h), 1000);
    assert_int_equal(st_hist_min(h), 1);
    assert_true(st_hist_mean(h) == 500.5);
    /* The max percentile is the exact max even inside a wide bucket. */
    st_hist_reset(h);
    st_hist_record(h, 1000001);
    st_hist_record(h, 1000000);
    assert_int_equal(st_hist_percentile(h, 100), 1000001);
    assert_true(st_hist_percentile(h, 50) <= 1000001);
    /* Reset empties it completely. */
    st_hist_reset(h);
    assert_int_equal(st_hist_count(h), 0);
    assert_int_equal(st_hist_nonzero(h), 0);
    assert_int_equal(st_hist_max(h), 0);
    st_hist_free(h);
    st_hist_free(NULL);
}

/* The (index, count) pairs of h, plain and as gaps. */
static st_test_buckets *sparse_of(const st_hist *h, uint32_t *gaps)
{
    st_test_buckets *b = calloc(1, sizeof(*b));
    assert_non_null(b);
    assert_int_equal(st_hist_foreach(h, st_test_collect, b), 0);
    for (size_t i = 0; i < b->n; i++) {
        gaps[i] = b->idx[i] - (i ? b->idx[i - 1] : 0);
    }
    return b;
}

static void test_hist_sparse_percentile_equals_percentile(void **state)
{
    (void)state;
    uint32_t *gaps = calloc(30000, sizeof(*gaps));
    assert_non_null(gaps);
    uint64_t seed = 77;
    const double ps[] = {-1, 0, 1, 50, 90, 99, 99.9, 99.99, 100, 120};
    for (int round = 0; round < 3; round++) {
        st_hist *src;
        assert_int_equal(st_hist_new(&src), 0);
        int n = round == 0 ? 1 : round == 1 ? 7 : 20000;
        for (int i = 0; i < n; i++) {
            st_hist_record(src, random_latency(&seed));
        }
        st_test_buckets *b = sparse_of(src, gaps);
        for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
            uint64_t want = st_hist_percentile(src, ps[i]);
            assert_int_equal(st_hist_sparse_percentile(b->idx, b->cnt, b->n, false,
                                                       st_hist_min(src), st_hist_max(src), ps[i]),
                             want);
            assert_int_equal(st_hist_sparse_percentile(gaps, b->cnt, b->n, true, st_hist_min(src),
                                                       st_hist_max(src), ps[i]),
                             want);
        }
        free(b);
        st_hist_free(src);
    }
    /* Nothing in it: 0, as an empty histogram says. */
    assert_int_equal(st_hist_sparse_percentile(NULL, NULL, 0, true, 0, 0, 99), 0);
    free(gaps);
}

static void test_hist_merge_sparse_equals_merge(void **state)
{
    (void)state;
    uint32_t *gaps = calloc(30000, sizeof(*gaps));
    assert_non_null(gaps);
    uint64_t seed = 2024;
    for (int round = 0; round < 4; round++) {
        st_hist *src, *want, *plain, *gapped;
        assert_int_equal(st_hist_new(&src), 0);
        assert_int_equal(st_hist_new(&want), 0);
        assert_int_equal(st_hist_new(&plain), 0);
        assert_int_equal(st_hist_new(&gapped), 0);
        for (int i = 0; i < 5000; i++) {
            st_hist_record(src, random_latency(&seed));
        }
        /* Rounds 1 and 3 merge into histograms that hold values already, some outside the
         * source's range, so that min and max must be kept or replaced as st_hist_merge does. */
        if (round % 2) {
            const uint64_t pre[] = {0, 3, 1ULL << 31, ST_HIST_MAX_US, 777};
            for (size_t i = 0; i < sizeof(pre) / sizeof(pre[0]); i++) {
                st_hist_record(want, pre[i] + (uint64_t)round);
                st_hist_record(plain, pre[i] + (uint64_t)round);
                st_hist_record(gapped, pre[i] + (uint64_t)round);
            }
        }
        if (round == 2) {
            st_hist_reset(src);
            st_hist_record_n(src, 1500, 3);
        }
        st_test_buckets *b = sparse_of(src, gaps);
        st_hist_merge(want, src);
        assert_int_equal(st_hist_check_sparse(b->idx, b->cnt, b->n, false, st_hist_min(src),
                                              st_hist_max(src), st_hist_sum(src)),
                         0);
        assert_int_equal(st_hist_check_sparse(gaps, b->cnt, b->n, true, st_hist_min(src),
                                              st_hist_max(src), st_hist_sum(src)),
                         0);
        assert_int_equal(st_hist_merge_sparse(plain, b->idx, b->cnt, b->n, false, st_hist_min(src),
                                              st_hist_max(src), st_hist_sum(src)),
                         0);
        assert_int_equal(st_hist_merge_sparse(gapped, gaps, b->cnt, b->n, true, st_hist_min(src),
                                              st_hist_max(src), st_hist_sum(src)),
                         0);
        assert_hist_equal(plain, want);
        assert_hist_equal(gapped, want);
        const double ps[] = {0, 50, 99, 99.9, 100};
        for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
            assert_int_equal(st_hist_percentile(plain, ps[i]), st_hist_percentile(want, ps[i]));
        }
        /* Reset clears exactly what the sparse merge put in. */
        st_hist_reset(gapped);
        assert_int_equal(st_hist_count(gapped), 0);
        assert_int_equal(st_hist_nonzero(gapped), 0);
        free(b);
        st_hist_free(src);
        st_hist_free(want);
        st_hist_free(plain);
        st_hist_free(gapped);
    }
    free(gaps);
}

static void test_hist_merge_sparse_empty(void **state)
{
    (void)state;
    st_hist *h;
    assert_int_equal(st_hist_new(&h), 0);
    st_hist_record(h, 42);
    assert_int_equal(st_hist_check_sparse(NULL, NULL, 0, true, 0, 0, 0), 0);
    assert_int_equal(st_hist_merge_sparse(h, NULL, NULL, 0, false, 0, 0, 0), 0);
    assert_int_equal(st_hist_count(h), 1);
    assert_int_equal(st_hist_min(h), 42);
    assert_int_equal(st_hist_max(h), 42);
    assert_int_equal(st_hist_sum(h), 42);
    /* No buckets but extremes or a sum: a contradiction. */
    assert_int_equal(st_hist_check_sparse(NULL, NULL, 0, true, 0, 0, 5), ST_EINVAL);
    assert_int_equal(st_hist_merge_sparse(h, NULL, NULL, 0, true, 1, 1, 0), ST_EINVAL);
    assert_int_equal(st_hist_merge_sparse(h, NULL, NULL, 0, false, 0, 3, 0), ST_EINVAL);
    assert_int_equal(st_hist_count(h), 1);
    assert_int_equal(st_hist_max(h), 42);
    assert_int_equal(st_hist_sum(h), 42);
    st_hist_free(h);
}

/* A sparse histogram that must be refused, in both encodings, by the check and the merge, with
 * the target left exactly as it was. */
static void expect_sparse_refused(const uint32_t *idx, const uint64_t *cnt, size_t n,
                                  uint64_t min_us, uint64_t max_us, uint64_t sum_us)
{
    uint32_t gaps[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        gaps[i] = idx[i] - (i ? idx[i - 1] : 0);
    }
    st_hist *h, *copy;
    assert_int_equal(st_hist_new(&h), 0);
    assert_int_equal(st_hist_new(&copy), 0);
    uint64_t seed = 3;
    for (int i = 0; i < 300; i++) {
        st_hist_record(h, random_latency(&seed));
    }
    st_hist_merge(copy, h);
    for (int g = 0; g < 2; g++) {
        const uint32_t *x = g ? gaps : idx;
        assert_int_equal(st_hist_check_sparse(x, cnt, n, g, min_us, max_us, sum_us), ST_EINVAL);
        assert_int_equal(st_hist_merge_sparse(h, x, cnt, n, g, min_us, max_us, sum_us), ST_EINVAL);
        assert_hist_equal(h, copy);
    }
    st_hist_free(h);
    st_hist_free(copy);
}

static void test_hist_check_sparse_refusals(void **state)
{
    (void)state;
    const uint32_t n_buckets = st_hist_bucket_count();
    const uint32_t b5000 = st_hist_bucket_of(5000);
    /* The valid base: 100 us twice, 300 us once, 5000 us once. */
    const uint32_t ok_idx[] = {100, 300, b5000};
    const uint64_t ok_cnt[] = {2, 1, 1};
    const uint64_t sum = 200 + 300 + 5000;
    assert_int_equal(st_hist_check_sparse(ok_idx, ok_cnt, 3, false, 100, 5000, sum), 0);

    /* An index said twice (a zero gap after the first), the extremes inside the buckets. */
    const uint32_t twice[] = {100, 300, 300};
    expect_sparse_refused(twice, ok_cnt, 3, 100, 300, sum);
    /* Indexes going down. */
    const uint32_t down[] = {300, 100, b5000};
    expect_sparse_refused(down, ok_cnt, 3, 300, 5000, sum);
    /* An index past the last bucket. */
    const uint32_t past[] = {100, 300, n_buckets};
    expect_sparse_refused(past, ok_cnt, 3, 100, ST_HIST_MAX_US, sum);
    /* A zero count. */
    const uint64_t zero[] = {2, 0, 1};
    expect_sparse_refused(ok_idx, zero, 3, 100, 5000, sum);
    /* min below / above the first bucket, max below / above the last, min above max, max past
     * the range. */
    expect_sparse_refused(ok_idx, ok_cnt, 3, 99, 5000, sum);
    expect_sparse_refused(ok_idx, ok_cnt, 3, 101, 5000, sum);
    expect_sparse_refused(ok_idx, ok_cnt, 3, 100, 4000, sum);
    expect_sparse_refused(ok_idx, ok_cnt, 3, 100, 6000, sum);
    const uint32_t one[] = {100};
    expect_sparse_refused(one, ok_cnt, 1, 100, 99, 200);
    /* min above max inside one wide bucket. */
    const uint32_t wide[] = {st_hist_bucket_of(1000000)};
    assert_int_equal(st_hist_bucket_of(1000001), wide[0]);
    expect_sparse_refused(wide, ok_cnt, 1, 1000001, 1000000, 4000000);
    const uint32_t last[] = {n_buckets - 1};
    expect_sparse_refused(last, ok_cnt, 1, ST_HIST_MAX_US, ST_HIST_MAX_US + 1, 0);
    /* ... which, at the range's end, is fine. */
    assert_int_equal(
        st_hist_check_sparse(last, ok_cnt, 1, false, ST_HIST_MAX_US, ST_HIST_MAX_US, 0), 0);

    /* With gaps, a gap past the last bucket is refused however large it is. */
    st_hist *h;
    assert_int_equal(st_hist_new(&h), 0);
    const uint32_t wrap[] = {100, UINT32_MAX};
    const uint64_t two[] = {1, 1};
    assert_int_equal(st_hist_check_sparse(wrap, two, 2, true, 100, 100, 200), ST_EINVAL);
    assert_int_equal(st_hist_merge_sparse(h, wrap, two, 2, true, 99, 100, 199), ST_EINVAL);
    assert_int_equal(st_hist_count(h), 0);
    st_hist_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_precision_bound),
        cmocka_unit_test(test_hist_sixty_seconds_in_range),
        cmocka_unit_test(test_hist_merge_equals_single_stream),
        cmocka_unit_test(test_hist_sparse_roundtrip),
        cmocka_unit_test(test_hist_percentile_edges),
        cmocka_unit_test(test_hist_merge_sparse_equals_merge),
        cmocka_unit_test(test_hist_sparse_percentile_equals_percentile),
        cmocka_unit_test(test_hist_merge_sparse_empty),
        cmocka_unit_test(test_hist_check_sparse_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
