#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

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

struct buckets {
    uint32_t idx[30000];
    uint64_t cnt[30000];
    size_t n;
};

static int collect(void *ctx, uint32_t index, uint64_t count)
{
    struct buckets *b = ctx;
    b->idx[b->n] = index;
    b->cnt[b->n] = count;
    b->n++;
    return 0;
}

static void assert_same_buckets(const st_hist *x, const st_hist *y)
{
    struct buckets *bx = calloc(1, sizeof(*bx)), *by = calloc(1, sizeof(*by));
    st_hist_foreach(x, collect, bx);
    st_hist_foreach(y, collect, by);
    assert_int_equal(bx->n, by->n);
    for (size_t i = 0; i < bx->n; i++) {
        assert_int_equal(bx->idx[i], by->idx[i]);
        assert_int_equal(bx->cnt[i], by->cnt[i]);
    }
    free(bx);
    free(by);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_precision_bound),
        cmocka_unit_test(test_hist_sixty_seconds_in_range),
        cmocka_unit_test(test_hist_merge_equals_single_stream),
        cmocka_unit_test(test_hist_sparse_roundtrip),
        cmocka_unit_test(test_hist_percentile_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
