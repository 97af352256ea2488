#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <cmocka.h>

#include "error.h"
#include "profile.h"

static void test_profile_hold_fractional(void **state)
{
    (void)state;
    st_profile p;
    st_stage s = {10, 7, 7};
    assert_int_equal(st_profile_init(&p, &s, 1, NULL), 0);
    assert_true(fabs(p.total_n - 70) < 1e-9);
    assert_true(fabs(st_profile_integral(&p, 1.0) - 7) < 1e-9);
    /* Request q at q/7 s: 7 requests start within each second. */
    assert_true(st_profile_time_of(&p, 0) == 0.0);
    assert_true(fabs(st_profile_time_of(&p, 6) - 6.0 / 7) < 1e-12);
    assert_true(fabs(st_profile_time_of(&p, 7) - 1.0) < 1e-12);
    assert_true(fabs(st_profile_time_of(&p, 69) - 69.0 / 7) < 1e-9);
    /* Request 70 would fall due at the end: never. */
    assert_true(st_profile_time_of(&p, 70) < 0);
    assert_true(st_profile_rate_at(&p, 3.3) == 7.0);
    assert_true(st_profile_rate_at(&p, 10.0) == 0.0);
    assert_true(st_profile_rate_at(&p, -1) == 0.0);
    st_profile_fini(&p);
}

static void test_profile_ramp_integral(void **state)
{
    (void)state;
    st_profile p;
    st_stage st[] = {{10, 0, 100}, {20, 100, 100}, {5, 100, 0}};
    assert_int_equal(st_profile_init(&p, st, 3, NULL), 0);
    assert_true(fabs(p.total_s - 35) < 1e-12);
    assert_true(fabs(p.total_n - (500 + 2000 + 250)) < 1e-9);
    assert_true(fabs(st_profile_integral(&p, 5) - 125) < 1e-9);  /* 100/10/2 * 25 */
    assert_true(fabs(st_profile_integral(&p, 10) - 500) < 1e-9);
    assert_true(fabs(st_profile_integral(&p, 15) - 1000) < 1e-9);
    assert_true(fabs(st_profile_rate_at(&p, 5) - 50) < 1e-9);
    assert_true(fabs(st_profile_rate_at(&p, 32.5) - 50) < 1e-9);
    /* time_of inverts integral everywhere, across stage boundaries too. */
    for (double n = 0; n < p.total_n; n += 0.73) {
        double t = st_profile_time_of(&p, n);
        assert_true(t >= 0 && t <= p.total_s);
        assert_true(fabs(st_profile_integral(&p, t) - n) < 1e-6);
    }
    /* Boundaries: request 500 is due exactly when the hold starts. */
    assert_true(fabs(st_profile_time_of(&p, 500) - 10) < 1e-9);
    assert_true(fabs(st_profile_time_of(&p, 2500) - 30) < 1e-9);
    st_profile_fini(&p);
}

static void test_profile_zero_rate_stages_skipped(void **state)
{
    (void)state;
    st_profile p;
    st_stage st[] = {{3, 0, 0}, {2, 10, 10}, {4, 0, 0}, {1, 5, 5}};
    assert_int_equal(st_profile_init(&p, st, 4, NULL), 0);
    assert_true(fabs(st_profile_time_of(&p, 0) - 3) < 1e-12);
    assert_true(fabs(st_profile_time_of(&p, 19) - 4.9) < 1e-12);
    /* The 21st request waits out the pause. */
    assert_true(fabs(st_profile_time_of(&p, 20) - 9) < 1e-12);
    assert_true(fabs(st_profile_time_of(&p, 24) - 9.8) < 1e-12);
    assert_true(st_profile_time_of(&p, 25) < 0);
    st_profile_fini(&p);
}

static void test_profile_count_per_second_exact(void **state)
{
    (void)state;
    /* Counting due instants per second reproduces the integral's whole steps at any rate. */
    const double rates[] = {0.5, 1, 3.3, 7, 999.9, 5000};
    for (size_t r = 0; r < sizeof(rates) / sizeof(rates[0]); r++) {
        st_profile p;
        st_stage s = {4, rates[r], rates[r]};
        assert_int_equal(st_profile_init(&p, &s, 1, NULL), 0);
        uint64_t count = 0;
        for (uint64_t q = 0;; q++) {
            double t = st_profile_time_of(&p, (double)q);
            if (t < 0) {
                break;
            }
            count++;
        }
        assert_int_equal(count, (uint64_t)ceil(4 * rates[r] - 1e-9));
        st_profile_fini(&p);
    }
}

static void test_profile_invalid(void **state)
{
    (void)state;
    st_profile p;
    size_t bad = 99;
    st_stage st[] = {{10, 5, 5}, {0, 1, 1}};
    assert_int_equal(st_profile_init(&p, st, 2, &bad), ST_EINVAL);
    assert_int_equal(bad, 1);
    st_stage neg[] = {{10, -1, 5}};
    assert_int_equal(st_profile_init(&p, neg, 1, &bad), ST_EINVAL);
    assert_int_equal(bad, 0);
    st_stage nan_rate[] = {{10, NAN, 5}};
    assert_int_equal(st_profile_init(&p, nan_rate, 1, &bad), ST_EINVAL);
    st_stage inf_dur[] = {{INFINITY, 1, 5}};
    assert_int_equal(st_profile_init(&p, inf_dur, 1, &bad), ST_EINVAL);
    assert_int_equal(st_profile_init(&p, st, 0, &bad), ST_EINVAL);
    st_profile_fini(&p);
}

static void test_profile_change_rate(void **state)
{
    (void)state;
    st_profile p;
    st_stage st[] = {{10, 0, 100}, {10, 100, 100}};
    assert_int_equal(st_profile_init(&p, st, 2, NULL), 0);
    double before = st_profile_integral(&p, 5);
    assert_int_equal(st_profile_change_rate(&p, 5, 10), 0);
    assert_true(fabs(st_profile_integral(&p, 5) - before) < 1e-9);
    assert_true(fabs(p.total_s - 20) < 1e-12);
    assert_true(fabs(st_profile_rate_at(&p, 4) - 40) < 1e-9);
    assert_true(fabs(st_profile_rate_at(&p, 12) - 10) < 1e-9);
    assert_true(fabs(p.total_n - (before + 150)) < 1e-9);
    assert_int_equal(st_profile_change_rate(&p, 20, 10), ST_EINVAL);
    assert_int_equal(st_profile_change_rate(&p, 1, -3), ST_EINVAL);
    st_profile_fini(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_profile_hold_fractional),
        cmocka_unit_test(test_profile_ramp_integral),
        cmocka_unit_test(test_profile_zero_rate_stages_skipped),
        cmocka_unit_test(test_profile_count_per_second_exact),
        cmocka_unit_test(test_profile_invalid),
        cmocka_unit_test(test_profile_change_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
