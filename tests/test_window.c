#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "assert_stats.h"

#include "clock.h"
#include "error.h"
#include "stats.h"
#include "window.h"

/*
 * The per-second window in both of its uses: the agent's (untimed, no total: a second is final
 * when every worker reported it) and the coordinator's (timed with a grace, a total that late
 * measurements still join).
 */

#define T0    (50 * ST_NS_PER_S)
#define GRACE (1500 * ST_NS_PER_MS)

/* n ok requests of latency_us in `second`. */
static void fill(st_stats *s, uint32_t second, uint64_t n, uint64_t latency_us)
{
    assert_int_equal(st_stats_init(s), 0);
    s->second = second;
    s->c.sent = n;
    s->c.ok = n;
    s->c.bytes_in = 100 * n;
    st_hist_record_n(s->lat, latency_us, n);
    st_hist_record_n(s->lat_raw, latency_us / 2, n);
}

/* A window from second first with these flags, which must be made. */
static st_window *window_new(uint32_t first, unsigned flags)
{
    st_window *w = NULL;
    assert_int_equal(st_window_new(&w, first, flags), 0);
    return w;
}

static void add(st_window *w, uint32_t second, const st_stats *s, bool want_late)
{
    st_stats *dst = NULL;
    bool late = !want_late;
    assert_int_equal(st_window_at(w, second, &dst, &late), 0);
    assert_non_null(dst);
    assert_true(late == want_late);
    st_stats_merge(dst, s);
}

static void test_window_new_refuses_unknown_flags(void **state)
{
    (void)state;
    st_window *w = (st_window *)&w;
    assert_int_equal(st_window_new(&w, 0, 2), ST_EINVAL);
    assert_ptr_equal(w, (st_window *)&w); /* untouched on error */
    st_window_free(NULL);
}

/* The agent's use: second k waits until every worker reported it, however late in time. */
static void test_window_untimed_waits_for_sources(void **state)
{
    (void)state;
    st_window *w = window_new(0, 0);
    assert_null(st_window_total(w));
    assert_null(st_window_sum(w));
    st_stats a, b, want, out;
    fill(&a, 0, 3, 1000);
    fill(&b, 0, 5, 2000);
    fill(&want, 0, 0, 0);
    st_stats_merge(&want, &a);
    st_stats_merge(&want, &b);
    add(w, 0, &a, false);
    add(w, 0, &b, false);
    assert_true(st_window_pending(w));
    /* One worker has reported nothing yet: not final, even "hours" later. */
    assert_false(st_window_final(w, -1, UINT64_MAX));
    assert_true(st_window_final(w, 0, 0));
    assert_int_equal(st_stats_init(&out), 0);
    st_window_pop(w, &out);
    assert_int_equal(out.second, 0);
    assert_stats_equal(&out, &want);
    assert_int_equal(st_window_next(w), 1);
    assert_false(st_window_pending(w));
    assert_false(st_window_final(w, 0, UINT64_MAX));
    assert_true(st_window_final(w, INT64_MAX, 0)); /* every worker finished */
    st_stats_fini(&a);
    st_stats_fini(&b);
    st_stats_fini(&want);
    st_stats_fini(&out);
    st_window_free(w);
}

/* The agent's use: a second already handed out is refused, and the window has no total. */
static void test_window_untimed_refuses_seconds_handed_out(void **state)
{
    (void)state;
    st_window *w = window_new(4, 0);
    st_stats *dst = NULL;
    bool late = true;
    /* Before the first second: handed out as far as the window knows. */
    assert_int_equal(st_window_at(w, 3, &dst, &late), ST_EINVAL);
    assert_int_equal(st_window_at(w, 4, &dst, &late), 0);
    assert_false(late);
    assert_int_equal(dst->second, 4);
    st_stats out;
    assert_int_equal(st_stats_init(&out), 0);
    st_window_pop(w, &out);
    assert_int_equal(st_window_at(w, 4, &dst, &late), ST_EINVAL);
    assert_int_equal(st_window_late(w), 0);
    st_stats_fini(&out);
    st_window_free(w);
}

/* Seconds nothing arrived for are handed out empty, in order, between the ones that have data. */
static void test_window_pops_gaps_empty_in_order(void **state)
{
    (void)state;
    st_window *w = window_new(0, 0);
    st_stats s3, out;
    fill(&s3, 3, 7, 500);
    add(w, 3, &s3, false);
    assert_int_equal(st_stats_init(&out), 0);
    /* out holds something from before: the empty seconds must not keep it. */
    st_stats_merge(&out, &s3);
    for (uint32_t k = 0; k < 3; k++) {
        assert_true(st_window_pending(w));
        st_window_pop(w, &out);
        assert_int_equal(out.second, k);
        assert_int_equal(out.c.sent, 0);
        assert_int_equal(st_hist_count(out.lat), 0);
        assert_int_equal(st_hist_count(out.lat_raw), 0);
    }
    st_window_pop(w, &out);
    assert_int_equal(out.second, 3);
    assert_stats_equal(&out, &s3);
    assert_false(st_window_pending(w));
    /* A second far ahead of the others is kept as well. */
    add(w, 1003, &s3, false);
    for (uint32_t k = 4; k < 1003; k++) {
        st_window_pop(w, &out);
        assert_int_equal(out.c.sent, 0);
    }
    st_window_pop(w, &out);
    assert_int_equal(out.second, 1003);
    assert_int_equal(out.c.sent, 7);
    st_stats_fini(&s3);
    st_stats_fini(&out);
    st_window_free(w);
}

/* The coordinator's use: second k is final once every agent reported it and it has ended, or
 * grace after its end whatever was reported. */
static void test_window_timed_final_after_grace(void **state)
{
    (void)state;
    st_window *w = window_new(0, ST_WINDOW_TOTAL);
    st_window_set_timing(w, T0, GRACE);
    uint64_t end0 = T0 + ST_NS_PER_S;
    /* Every agent reported it, but it has not ended. */
    assert_false(st_window_final(w, 0, end0 - 1));
    assert_true(st_window_final(w, 0, end0));
    /* An agent has not reported it: it waits for the grace. */
    assert_false(st_window_final(w, -1, end0));
    assert_false(st_window_final(w, -1, end0 + GRACE - 1));
    assert_true(st_window_final(w, -1, end0 + GRACE));
    st_stats out;
    assert_int_equal(st_stats_init(&out), 0);
    st_window_pop(w, &out);
    /* Second 1 ends a second later. */
    assert_false(st_window_final(w, -1, end0 + GRACE));
    assert_true(st_window_final(w, -1, end0 + ST_NS_PER_S + GRACE));
    assert_true(st_window_final(w, 1, end0 + ST_NS_PER_S));
    assert_false(st_window_final(w, 0, end0 + ST_NS_PER_S));
    st_stats_fini(&out);
    st_window_free(w);
}

/* The coordinator's use: a record for a second handed out still counts in the total. */
static void test_window_late_counts_in_total(void **state)
{
    (void)state;
    st_window *w = window_new(0, ST_WINDOW_TOTAL);
    st_window_set_timing(w, T0, GRACE);
    st_stats a, b, c, want, out;
    fill(&a, 0, 10, 1000);
    fill(&b, 0, 2, 9000); /* arrives after second 0 was handed out */
    fill(&c, 1, 4, 3000); /* second 1, still open */
    fill(&want, 0, 0, 0);
    add(w, 0, &a, false);
    add(w, 1, &c, false);
    assert_int_equal(st_stats_init(&out), 0);
    assert_true(st_window_final(w, -1, T0 + ST_NS_PER_S + GRACE));
    st_window_pop(w, &out);
    assert_stats_equal(&out, &a);
    assert_stats_equal(st_window_total(w), &a);

    add(w, 0, &b, true);
    assert_int_equal(st_window_late(w), 1);
    /* The second handed out does not change; the total has both. */
    assert_stats_equal(&out, &a);
    st_stats_merge(&want, &a);
    st_stats_merge(&want, &b);
    assert_stats_equal(st_window_total(w), &want);
    /* The sum also has the open second 1. */
    st_stats_merge(&want, &c);
    assert_stats_equal(st_window_sum(w), &want);
    /* Handing out second 1 moves it into the total: same sum. */
    st_window_pop(w, &out);
    assert_stats_equal(&out, &c);
    assert_stats_equal(st_window_total(w), &want);
    assert_stats_equal(st_window_sum(w), &want);
    assert_int_equal(st_window_late(w), 1);

    st_stats_fini(&a);
    st_stats_fini(&b);
    st_stats_fini(&c);
    st_stats_fini(&want);
    st_stats_fini(&out);
    st_window_free(w);
}

/* Seconds before the window's first are late as well in the coordinator's use. */
static void test_window_total_takes_seconds_before_the_first(void **state)
{
    (void)state;
    st_window *w = window_new(10, ST_WINDOW_TOTAL);
    st_stats a;
    fill(&a, 2, 3, 700);
    add(w, 2, &a, true);
    assert_false(st_window_pending(w));
    assert_int_equal(st_window_next(w), 10);
    assert_stats_equal(st_window_total(w), &a);
    assert_int_equal(st_window_late(w), 1);
    st_stats_fini(&a);
    st_window_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_new_refuses_unknown_flags),
        cmocka_unit_test(test_window_untimed_waits_for_sources),
        cmocka_unit_test(test_window_untimed_refuses_seconds_handed_out),
        cmocka_unit_test(test_window_pops_gaps_empty_in_order),
        cmocka_unit_test(test_window_timed_final_after_grace),
        cmocka_unit_test(test_window_late_counts_in_total),
        cmocka_unit_test(test_window_total_takes_seconds_before_the_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
