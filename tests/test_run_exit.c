#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "exit_code.h"
#include "run_exit.h"

/* The exit code of `stampede run`, decided in one place from everything that matters. */

static void test_run_exit_failure_reasons_have_their_own_codes(void **state)
{
    (void)state;
    st_run_outcome o = {.failure = ST_COORD_FAILURE_REGISTRATION};
    assert_int_equal(st_run_exit_code(&o), ST_EXIT_AGENTS);
    o.failure = ST_COORD_FAILURE_STOPPED;
    assert_int_equal(st_run_exit_code(&o), ST_EXIT_INTERRUPTED);
    o.failure = ST_COORD_FAILURE_RUNTIME;
    assert_int_equal(st_run_exit_code(&o), ST_EXIT_FAILURE);
    /* The core's reasons are not exit codes: none of them reads as AWS auth or not found. */
    for (int r = ST_COORD_FAILURE_RUNTIME; r <= ST_COORD_FAILURE_STOPPED; r++) {
        o.failure = (st_coord_failure_reason)r;
        assert_int_not_equal(st_run_exit_code(&o), ST_EXIT_AUTH);
        assert_int_not_equal(st_run_exit_code(&o), ST_EXIT_NOTFOUND);
    }
    assert_string_equal(st_coord_failure_reason_name(ST_COORD_FAILURE_REGISTRATION),
                        "registration");
    assert_string_equal(st_coord_failure_reason_name(ST_COORD_FAILURE_NONE), "none");
}

static void test_run_exit_results_lost_are_not_pending(void **state)
{
    (void)state;
    st_run_outcome o = {0};
    assert_int_equal(st_run_exit_code(&o), ST_EXIT_OK);
    o.results_spooled = 1;
    assert_int_equal(st_run_exit_code(&o), ST_EXIT_PENDING);
    /* Five lost and one spooled is not "results wait in the spool". */
    o.results_lost = 5;
    assert_int_equal(st_run_exit_code(&o), ST_EXIT_RESULTS_LOST);
    assert_int_equal(ST_EXIT_RESULTS_LOST, 10);
    o.stopped = true;
    assert_int_equal(st_run_exit_code(&o), ST_EXIT_RESULTS_LOST);
    o.results_lost = 0;
    assert_int_equal(st_run_exit_code(&o), ST_EXIT_INTERRUPTED);
}

static void test_run_exit_unwritten_files_fail(void **state)
{
    (void)state;
    st_run_outcome o = {.outputs_failed = true};
    assert_int_equal(st_run_exit_code(&o), ST_EXIT_FAILURE);
    o.stopped = true;
    o.results_lost = 3;
    o.results_spooled = 2;
    assert_int_equal(st_run_exit_code(&o), ST_EXIT_FAILURE);
    /* Records the merge had no memory for: the series is wrong, the run is a failure. */
    st_run_outcome oom = {.unmerged_records = 1, .results_spooled = 1};
    assert_int_equal(st_run_exit_code(&oom), ST_EXIT_FAILURE);
    /* A run that failed keeps its own reason. */
    o.failure = ST_COORD_FAILURE_REGISTRATION;
    assert_int_equal(st_run_exit_code(&o), ST_EXIT_AGENTS);
}

/* Failed thresholds have their own code, after a signal and a degraded run, before the spool. */
static void test_run_exit_thresholds(void **state)
{
    (void)state;
    st_run_outcome o = {.thresholds_failed = true};
    assert_int_equal(ST_EXIT_THRESHOLDS, 11);
    assert_int_equal(st_run_exit_code(&o), ST_EXIT_THRESHOLDS);
    o.results_spooled = 4;
    assert_int_equal(st_run_exit_code(&o), ST_EXIT_THRESHOLDS);
    o.degraded = true;
    assert_int_equal(st_run_exit_code(&o), ST_EXIT_DEGRADED);
    o.stopped = true;
    assert_int_equal(st_run_exit_code(&o), ST_EXIT_INTERRUPTED);
    o.results_lost = 1;
    assert_int_equal(st_run_exit_code(&o), ST_EXIT_RESULTS_LOST);
    o.outputs_failed = true;
    assert_int_equal(st_run_exit_code(&o), ST_EXIT_FAILURE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_exit_failure_reasons_have_their_own_codes),
        cmocka_unit_test(test_run_exit_results_lost_are_not_pending),
        cmocka_unit_test(test_run_exit_unwritten_files_fail),
        cmocka_unit_test(test_run_exit_thresholds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
