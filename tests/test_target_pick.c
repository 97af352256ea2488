#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "error.h"
#include "pick.h"

/* Counts of each entry over n picks starting at pick `from` of a fresh copy of m. */
static void window_counts(const st_mix *m, int from, int n, int *counts)
{
    st_mix w = *m;
    st_mix_rewind(&w);
    memset(counts, 0, sizeof(int) * (size_t)w.n);
    for (int i = 0; i < from + n; i++) {
        int k = st_mix_next(&w);
        if (i >= from) {
            counts[k]++;
        }
    }
}

static void test_target_pick_mix_exact_in_every_window(void **state)
{
    (void)state;
    const char *specs[] = {"200:95,500:5", "200:3,404:2,503:1", "200:1,201:1,202:1", "204:7"};
    for (size_t s = 0; s < sizeof(specs) / sizeof(specs[0]); s++) {
        st_mix m;
        assert_int_equal(st_mix_parse(&m, specs[s], NULL), 0);
        /* Every run of `total` consecutive picks, wherever it starts, has the exact weights. */
        for (int from = 0; from < 2 * m.total + 3; from++) {
            int counts[ST_MIX_MAX];
            window_counts(&m, from, m.total, counts);
            for (int i = 0; i < m.n; i++) {
                assert_int_equal(counts[i], m.e[i].weight);
            }
        }
    }
}

static void test_target_pick_mix_interleaves(void **state)
{
    (void)state;
    st_mix m;
    assert_int_equal(st_mix_parse(&m, "200:95,500:5", NULL), 0);
    int last = -1000, min_gap = 1000, fives = 0;
    for (int i = 0; i < 1000; i++) {
        if (m.e[st_mix_next(&m)].status == 500) {
            if (i - last < min_gap) {
                min_gap = i - last;
            }
            last = i;
            fives++;
        }
    }
    assert_int_equal(fives, 50);
    assert_int_equal(min_gap, 20);
}

static void test_target_pick_mix_rewind_restarts(void **state)
{
    (void)state;
    st_mix m;
    assert_int_equal(st_mix_parse(&m, " 200 : 3 , 500 : 2 ", NULL), 0);
    assert_int_equal(m.n, 2);
    assert_int_equal(m.total, 5);
    int first[7];
    for (int i = 0; i < 7; i++) {
        first[i] = st_mix_next(&m);
    }
    st_mix_rewind(&m);
    for (int i = 0; i < 7; i++) {
        assert_int_equal(st_mix_next(&m), first[i]);
    }
}

static void test_target_pick_mix_defaults_and_single(void **state)
{
    (void)state;
    st_mix m;
    assert_int_equal(st_mix_parse(&m, "503", NULL), 0);
    assert_int_equal(m.n, 1);
    assert_int_equal(m.e[0].weight, 1);
    assert_int_equal(m.e[st_mix_next(&m)].status, 503);
    st_mix_single(&m, 200);
    assert_int_equal(m.e[st_mix_next(&m)].status, 200);
    /* A zero weight is allowed when the sum is positive: never picked. */
    assert_int_equal(st_mix_parse(&m, "200:1,500:0", NULL), 0);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(st_mix_next(&m), 0);
    }
}

static void test_target_pick_mix_parse_errors(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "x",
        "199",
        "600",
        "200:",
        "200:x",
        "200:-1",
        "200,200",
        "200:0",
        "200;500",
        "200:5,",
        ",200",
        "200:1000001",
        "200 300",
        "2000",
        "200:600000,500:400001",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        st_mix m;
        st_mix_single(&m, 418);
        const char *why = NULL;
        assert_int_equal(st_mix_parse(&m, bad[i], &why), ST_EINVAL);
        assert_non_null(why);
        assert_int_equal(m.e[0].status, 418); /* unchanged */
    }
    /* 33 distinct statuses is one too many. */
    char spec[512] = "";
    for (int s = 200; s < 233; s++) {
        char item[8];
        snprintf(item, sizeof(item), "%s%d", s == 200 ? "" : ",", s);
        strcat(spec, item);
    }
    st_mix m;
    assert_int_equal(st_mix_parse(&m, spec, NULL), ST_EINVAL);
    spec[strlen(spec) - 4] = '\0'; /* drop ",232": 32 statuses */
    assert_int_equal(st_mix_parse(&m, spec, NULL), 0);
    assert_int_equal(m.n, 32);
}

static void test_target_pick_delay_fixed(void **state)
{
    (void)state;
    st_delay d;
    assert_int_equal(st_delay_parse(&d, "12.5", NULL), 0);
    st_delay_seed(&d, 99);
    for (int i = 0; i < 5; i++) {
        assert_true(st_delay_next_ms(&d) == 12.5);
    }
    assert_int_equal(st_delay_parse(&d, "7-7", NULL), 0);
    assert_true(st_delay_next_ms(&d) == 7.0);
}

static void test_target_pick_delay_range_seeded(void **state)
{
    (void)state;
    st_delay a, b, c;
    assert_int_equal(st_delay_parse(&a, "2-10", NULL), 0);
    b = a;
    c = a;
    st_delay_seed(&a, 42);
    st_delay_seed(&b, 42);
    st_delay_seed(&c, 43);
    double lo = 1e9, hi = -1, sum = 0;
    int differ = 0;
    for (int i = 0; i < 10000; i++) {
        double x = st_delay_next_ms(&a);
        assert_true(x >= 2.0 && x <= 10.0);
        assert_true(x == st_delay_next_ms(&b)); /* same seed, same sequence */
        differ += x != st_delay_next_ms(&c);
        lo = x < lo ? x : lo;
        hi = x > hi ? x : hi;
        sum += x;
    }
    assert_true(differ > 9900);
    assert_true(lo < 2.01 && hi > 9.99); /* covers the range */
    assert_true(sum / 10000 > 5.9 && sum / 10000 < 6.1);
}

static void test_target_pick_delay_parse_errors(void **state)
{
    (void)state;
    const char *bad[] = {"",    "abc",  "-5",  "5-",  "-",     "10-5", "3600001",
                         "1e3", "0x10", "inf", "nan", "1-2-3", "5 ",   "1..2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        st_delay d = {1, 2, 3};
        const char *why = NULL;
        assert_int_equal(st_delay_parse(&d, bad[i], &why), ST_EINVAL);
        assert_non_null(why);
        assert_true(d.min_ms == 1 && d.max_ms == 2 && d.state == 3);
    }
    st_delay d;
    assert_int_equal(st_delay_parse(&d, "3600000", NULL), 0);
    assert_int_equal(st_delay_parse(&d, "0", NULL), 0);
}

static void test_target_pick_reason_phrases(void **state)
{
    (void)state;
    assert_string_equal(st_http_reason(200), "OK");
    assert_string_equal(st_http_reason(404), "Not Found");
    assert_string_equal(st_http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(st_http_reason(503), "Service Unavailable");
    assert_string_equal(st_http_reason(299), "Success");
    assert_string_equal(st_http_reason(399), "Redirection");
    assert_string_equal(st_http_reason(499), "Client Error");
    assert_string_equal(st_http_reason(599), "Server Error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_target_pick_mix_exact_in_every_window),
        cmocka_unit_test(test_target_pick_mix_interleaves),
        cmocka_unit_test(test_target_pick_mix_rewind_restarts),
        cmocka_unit_test(test_target_pick_mix_defaults_and_single),
        cmocka_unit_test(test_target_pick_mix_parse_errors),
        cmocka_unit_test(test_target_pick_delay_fixed),
        cmocka_unit_test(test_target_pick_delay_range_seeded),
        cmocka_unit_test(test_target_pick_delay_parse_errors),
        cmocka_unit_test(test_target_pick_reason_phrases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
