#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cli.h"
#include "error.h"

/* Moved from test_plan.c with the duration parser, assertions unchanged. */
static void test_cli_parse_duration(void **state)
{
    (void)state;
    double s;
    assert_int_equal(st_cli_parse_duration("30", &s), 0);
    assert_true(s == 30);
    assert_int_equal(st_cli_parse_duration("500ms", &s), 0);
    assert_true(s == 0.5);
    assert_int_equal(st_cli_parse_duration("2m", &s), 0);
    assert_true(s == 120);
    assert_int_equal(st_cli_parse_duration("1.5h", &s), 0);
    assert_true(s == 5400);
    assert_int_equal(st_cli_parse_duration("0", &s), ST_EINVAL);
    assert_int_equal(st_cli_parse_duration("-3s", &s), ST_EINVAL);
    assert_int_equal(st_cli_parse_duration("3 s", &s), ST_EINVAL);
    assert_int_equal(st_cli_parse_duration("nan", &s), ST_EINVAL);
    assert_int_equal(st_cli_parse_duration("", &s), ST_EINVAL);
}

static void test_cli_duration_bounds(void **state)
{
    (void)state;
    char err[256] = "";
    double s = -1;
    assert_int_equal(st_cli_duration("--spread", "1h", 0, 3600, &s, err, sizeof(err)), 0);
    assert_true(s == 3600);
    s = -1;
    assert_int_equal(st_cli_duration("--spread", "61m", 0, 3600, &s, err, sizeof(err)), ST_EINVAL);
    assert_true(s == -1);
    assert_non_null(strstr(err, "--spread: \"61m\""));
    assert_non_null(strstr(err, "at most 1 hour"));
}

static void test_cli_uint(void **state)
{
    (void)state;
    char err[256] = "";
    unsigned long long v = 7;
    assert_int_equal(st_cli_uint("--seed", "0", 0, 10, &v, err, sizeof(err)), 0);
    assert_true(v == 0);
    assert_int_equal(st_cli_uint("--seed", "10", 0, 10, &v, err, sizeof(err)), 0);
    assert_true(v == 10);
    assert_int_equal(st_cli_uint("--seed", "11", 0, 10, &v, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "--seed: \"11\" is not a whole number from 0 to 10"));
    /* strtoull would take "-1" as the largest number. */
    assert_int_equal(st_cli_uint("--seed", "-1", 0, ~0ULL, &v, err, sizeof(err)), ST_EINVAL);
    assert_int_equal(st_cli_uint("--seed", " 1", 0, 10, &v, err, sizeof(err)), ST_EINVAL);
    assert_int_equal(st_cli_uint("--seed", "", 0, 10, &v, err, sizeof(err)), ST_EINVAL);
    assert_int_equal(st_cli_uint("--seed", "99999999999999999999999", 0, ~0ULL, &v, err,
                                 sizeof(err)),
                     ST_EINVAL);
    assert_true(v == 10);
}

/* Plain decimal only: what strtod and strtol would also take is refused. */
static void test_cli_plain_decimal(void **state)
{
    (void)state;
    char err[256] = "";
    double d = 7;
    int i = 7;
    unsigned long long u = 7;
    static const char *const refused[] = {"0x10", "-0", "-0.0", "+5", " 5", "5 ", "1e3", "inf",
                                          "infinity", "nan", ".5", "5.", "0x1p4", "1,5", "--5"};
    for (size_t k = 0; k < sizeof(refused) / sizeof(refused[0]); k++) {
        const char *t = refused[k];
        if (st_cli_double("--rate", t, 0, 1e6, &d, err, sizeof(err)) != ST_EINVAL ||
            st_cli_double("--ratio", t, -10, 1e6, &d, err, sizeof(err)) != ST_EINVAL ||
            st_cli_int("--n", t, 0, 100, &i, err, sizeof(err)) != ST_EINVAL ||
            st_cli_uint("--n", t, 0, 100, &u, err, sizeof(err)) != ST_EINVAL ||
            st_cli_duration("--t", t, 0, 1e6, &d, err, sizeof(err)) != ST_EINVAL) {
            fail_msg("\"%s\" was taken as a number", t);
        }
    }
    assert_true(d == 7 && i == 7 && u == 7);
    assert_int_equal(st_cli_double("--rate", "0x10", 0, 1e6, &d, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "--rate: \"0x10\" is not a number"));
    assert_int_equal(st_cli_duration("--t", "0x10s", 0, 1e6, &d, err, sizeof(err)), ST_EINVAL);
    assert_int_equal(st_cli_duration("--t", "1e1s", 0, 1e6, &d, err, sizeof(err)), ST_EINVAL);
    /* A sign where negative values are in range, and plain decimals everywhere. */
    assert_int_equal(st_cli_double("--ratio", "-0.5", -1, 1, &d, err, sizeof(err)), 0);
    assert_true(d == -0.5);
    assert_int_equal(st_cli_int("--n", "-3", -5, 5, &i, err, sizeof(err)), 0);
    assert_int_equal(i, -3);
    assert_int_equal(st_cli_int("--n", "-3", 0, 5, &i, err, sizeof(err)), ST_EINVAL);
    assert_int_equal(st_cli_double("--rate", "0", 0, 1e6, &d, err, sizeof(err)), 0);
    assert_true(d == 0);
    assert_int_equal(st_cli_double("--rate", "007.250", 0, 1e6, &d, err, sizeof(err)), 0);
    assert_true(d == 7.25);
    assert_int_equal(st_cli_duration("--t", "1.5m", 0, 1e6, &d, err, sizeof(err)), 0);
    assert_true(d == 90);
}

static void test_cli_format_duration(void **state)
{
    (void)state;
    char out[32];
    st_cli_format_duration(30.0 * 24 * 3600, out, sizeof(out));
    assert_string_equal(out, "30 days");
    st_cli_format_duration(3600, out, sizeof(out));
    assert_string_equal(out, "1 hour");
    st_cli_format_duration(120, out, sizeof(out));
    assert_string_equal(out, "2 minutes");
    st_cli_format_duration(30, out, sizeof(out));
    assert_string_equal(out, "30s");
    st_cli_format_duration(0.5, out, sizeof(out));
    assert_string_equal(out, "0.5s");
}

static void test_cli_cpu_quota(void **state)
{
    (void)state;
    /* cgroup v2 cpu.max: "max PERIOD" is no quota; a quota rounds up to whole CPUs. */
    assert_int_equal(st_cli_cpu_max_cpus("max 100000\n"), 0);
    assert_int_equal(st_cli_cpu_max_cpus("100000 100000\n"), 1);
    assert_int_equal(st_cli_cpu_max_cpus("150000 100000\n"), 2);
    assert_int_equal(st_cli_cpu_max_cpus("25000 100000"), 1);
    assert_int_equal(st_cli_cpu_max_cpus("400000 100000"), 4);
    assert_int_equal(st_cli_cpu_max_cpus(""), 0);
    assert_int_equal(st_cli_cpu_max_cpus("100000"), 0);
    assert_int_equal(st_cli_cpu_max_cpus("abc 100000"), 0);
    assert_int_equal(st_cli_cpu_max_cpus("100000 0"), 0);
    assert_int_equal(st_cli_cpu_max_cpus(NULL), 0);
    /* cgroup v1: a quota of -1 is none. */
    assert_int_equal(st_cli_quota_cpus(-1, 100000), 0);
    assert_int_equal(st_cli_quota_cpus(50000, 100000), 1);
    assert_int_equal(st_cli_quota_cpus(200001, 100000), 3);
    /* Whatever the cgroup says, at least one CPU and no more than the affinity mask. */
    int n = st_cli_cpus();
    assert_true(n >= 1);
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
    assert_true(n <= CPU_COUNT(&set));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_parse_duration),
        cmocka_unit_test(test_cli_duration_bounds),
        cmocka_unit_test(test_cli_uint),
        cmocka_unit_test(test_cli_plain_decimal),
        cmocka_unit_test(test_cli_format_duration),
        cmocka_unit_test(test_cli_cpu_quota),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
