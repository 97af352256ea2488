#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "error.h"
#include "profile.h"
#include "split.h"

/* Marks every global index below limit that the slice covers; fails on a double cover. */
static void cover(const st_slice *s, uint64_t limit, unsigned char *seen)
{
    for (uint64_t k = 0;; k++) {
        uint64_t q = st_slice_global(s, k);
        if (q >= limit) {
            break;
        }
        assert_int_equal(seen[q], 0);
        seen[q] = 1;
        if (k > 0) {
            assert_true(q > st_slice_global(s, k - 1));
        }
    }
}

static void test_split_threads_cover_exactly(void **state)
{
    (void)state;
    st_slice all;
    assert_int_equal(st_slice_init_all(&all), 0);
    for (uint64_t parts = 1; parts <= 7; parts++) {
        unsigned char seen[1000] = {0};
        for (uint64_t j = 0; j < parts; j++) {
            st_slice c;
            assert_int_equal(st_slice_subdivide(&all, parts, j, &c), 0);
            cover(&c, 1000, seen);
            st_slice_fini(&c);
        }
        for (int q = 0; q < 1000; q++) {
            assert_int_equal(seen[q], 1);
        }
    }
    st_slice_fini(&all);
}

static void test_split_weighted_agents_then_threads(void **state)
{
    (void)state;
    const uint32_t w[] = {2, 1, 4, 1, 3};
    uint64_t *res[5];
    uint64_t period;
    assert_int_equal(st_split_weights(w, 5, &period, res), 0);
    assert_int_equal(period, 11);
    unsigned char seen[5000] = {0};
    double fraction = 0;
    for (int i = 0; i < 5; i++) {
        st_slice agent;
        assert_int_equal(st_slice_init(&agent, period, res[i], w[i], 1, 0), 0);
        fraction += st_slice_fraction(&agent);
        /* Each agent splits among 3 threads, whatever its weight. */
        for (uint64_t t = 0; t < 3; t++) {
            st_slice th;
            assert_int_equal(st_slice_subdivide(&agent, 3, t, &th), 0);
            cover(&th, 5000, seen);
            st_slice_fini(&th);
        }
        st_slice_fini(&agent);
        free(res[i]);
    }
    for (int q = 0; q < 5000; q++) {
        assert_int_equal(seen[q], 1);
    }
    assert_true(fraction > 1 - 1e-12 && fraction < 1 + 1e-12);
}

static void test_split_fractional_rate_exact(void **state)
{
    (void)state;
    /* 5 rps over 8 agents for 10 s: 50 requests in all, never 0 or 40. */
    st_profile p;
    st_stage s = {10, 5, 5};
    assert_int_equal(st_profile_init(&p, &s, 1, NULL), 0);
    uint32_t w[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    uint64_t *res[8], period;
    assert_int_equal(st_split_weights(w, 8, &period, res), 0);
    uint64_t total = 0;
    for (int i = 0; i < 8; i++) {
        st_slice a;
        assert_int_equal(st_slice_init(&a, period, res[i], 1, 1, 0), 0);
        for (uint64_t k = 0;; k++) {
            double t = st_profile_time_of(&p, (double)st_slice_global(&a, k));
            if (t < 0) {
                break;
            }
            total++;
        }
        st_slice_fini(&a);
        free(res[i]);
    }
    assert_int_equal(total, 50);
    st_profile_fini(&p);
}

static void test_split_first_at_or_after(void **state)
{
    (void)state;
    const uint64_t r[] = {1, 4, 6};
    st_slice base, s;
    assert_int_equal(st_slice_init(&base, 7, r, 3, 1, 0), 0);
    assert_int_equal(st_slice_subdivide(&base, 2, 1, &s), 0);
    for (uint64_t q = 0; q < 200; q++) {
        uint64_t k = st_slice_first_at_or_after(&s, q);
        assert_true(st_slice_global(&s, k) >= q);
        if (k > 0) {
            assert_true(st_slice_global(&s, k - 1) < q);
        }
    }
    st_slice_fini(&s);
    st_slice_fini(&base);
}

static void test_split_interleave_spreads(void **state)
{
    (void)state;
    const uint32_t w[] = {5, 1, 1};
    uint32_t seq[7];
    assert_int_equal(st_interleave_fill(w, 3, seq, 7), 0);
    int count[3] = {0};
    for (int i = 0; i < 7; i++) {
        count[seq[i]]++;
    }
    assert_int_equal(count[0], 5);
    assert_int_equal(count[1], 1);
    assert_int_equal(count[2], 1);
    /* Spread: the heavy part never runs more than 3 in a row with weights 5:1:1. */
    int run = 0, max_run = 0;
    for (int i = 0; i < 7; i++) {
        run = seq[i] == 0 ? run + 1 : 0;
        max_run = run > max_run ? run : max_run;
    }
    assert_true(max_run <= 3);
}

static void test_split_invalid(void **state)
{
    (void)state;
    st_slice s;
    const uint64_t dup[] = {1, 1};
    const uint64_t big[] = {9};
    const uint64_t ok[] = {0};
    assert_int_equal(st_slice_init(&s, 4, dup, 2, 1, 0), ST_EINVAL);
    assert_int_equal(st_slice_init(&s, 4, big, 1, 1, 0), ST_EINVAL);
    assert_int_equal(st_slice_init(&s, 0, ok, 1, 1, 0), ST_EINVAL);
    assert_int_equal(st_slice_init(&s, 4, ok, 1, 0, 0), ST_EINVAL);
    assert_int_equal(st_slice_init(&s, 4, ok, 1, 2, 2), ST_EINVAL);
    assert_int_equal(st_slice_init(&s, ST_SPLIT_MAX_PERIOD + 1, ok, 1, 1, 0), ST_EINVAL);
    st_slice all, c;
    assert_int_equal(st_slice_init_all(&all), 0);
    assert_int_equal(st_slice_subdivide(&all, 0, 0, &c), ST_EINVAL);
    assert_int_equal(st_slice_subdivide(&all, 2, 2, &c), ST_EINVAL);
    st_slice_fini(&all);
    const uint32_t zero_w[] = {1, 0};
    uint64_t *res[2], period;
    assert_int_equal(st_split_weights(zero_w, 2, &period, res), ST_EINVAL);
    uint32_t seq[3];
    const uint32_t w[] = {1, 1};
    assert_int_equal(st_interleave_fill(w, 2, seq, 3), ST_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_threads_cover_exactly),
        cmocka_unit_test(test_split_weighted_agents_then_threads),
        cmocka_unit_test(test_split_fractional_rate_exact),
        cmocka_unit_test(test_split_first_at_or_after),
        cmocka_unit_test(test_split_interleave_spreads),
        cmocka_unit_test(test_split_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
