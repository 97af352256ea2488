#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "assert_text.h"

#include "baseline.h"
#include "error.h"

#include <unistd.h>

/*
 * --baseline and --max-regression: the expressions' grammar and errors, the baseline file's
 * errors, and the verdicts on constructed summaries.
 */

static const char old_summary[] =
    "{\"requests\": {\"total\": 1000, \"ok\": 990, \"failed\": 10, \"sent\": 1000, \"late\": 0,"
    " \"dropped\": 0}, \"rate\": {\"target_rps\": 100, \"achieved_rps\": 100},"
    " \"errors\": {\"http_4xx\": 0, \"http_5xx\": 10, \"connect\": 0, \"timeout\": 0,"
    " \"other\": 0, \"local\": 0},"
    " \"latency_ms\": {\"min\": 1, \"mean\": 2, \"p50\": 2, \"p90\": 4, \"p99\": 10, \"p999\": 20,"
    " \"max\": 30},"
    " \"latency_uncorrected_ms\": {\"min\": 1, \"mean\": 2, \"p50\": 2, \"p90\": 4, \"p99\": 8,"
    " \"p999\": 20, \"max\": null}, \"run_id\": \"old-1\"}";

static const char new_summary[] =
    "{\"requests\": {\"total\": 1000, \"ok\": 985, \"failed\": 15, \"sent\": 1000, \"late\": 0,"
    " \"dropped\": 0}, \"rate\": {\"target_rps\": 100, \"achieved_rps\": 99.5},"
    " \"errors\": {\"http_4xx\": 0, \"http_5xx\": 15, \"connect\": 0, \"timeout\": 0,"
    " \"other\": 0, \"local\": 0},"
    " \"latency_ms\": {\"min\": 1, \"mean\": 2, \"p50\": 2, \"p90\": 4, \"p99\": 11.5, \"p999\": 20,"
    " \"max\": 30},"
    " \"latency_uncorrected_ms\": {\"min\": 1, \"mean\": 2, \"p50\": 2, \"p90\": 4, \"p99\": 8,"
    " \"p999\": 20, \"max\": 3}}";

static char path[64];

static int write_old(void **state)
{
    (void)state;
    snprintf(path, sizeof(path), "/tmp/st-baseline-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, old_summary, strlen(old_summary)), (ssize_t)strlen(old_summary));
    close(fd);
    return 0;
}

static int remove_old(void **state)
{
    (void)state;
    unlink(path);
    return 0;
}

static void test_baseline_refuses_bad_expressions(void **state)
{
    (void)state;
    static const struct {
        const char *expr, *want;
    } cases[] = {
        {"p(99)+10", "\"p(99)+10\": at character 9: a unit is needed: % (relative), or us, ms, s"},
        {"p(95)+10%", "at character 1: a summary holds p(50), p(90), p(99) and p(99.9) only"},
        {"p(x)+10%", "at character 3: expected p(50), p(90), p(99) or p(99.9)"},
        {"error_rate+1ms", "at character 13: a ratio's unit is % (relative) or pt"},
        {"error_rate+1", "at character 13: a unit is needed: % (relative) or pt"},
        {"max+1pt", "at character 6: a latency's unit is % (relative), or us, ms, s"},
        {"p(99)-10%", "at character 6: expected + and the allowed rise"},
        {"p(99)+-10%", "at character 7: expected a number"},
        {"p(99)+1.%", "at character 7: expected a number"},
        {"p(99)+10% more", "at character 11: unexpected text after the limit"},
        {"errors.teapot+1pt", "at character 1: unknown metric"},
        {"uncorrected error_rate+1pt", "at character 13: uncorrected takes a latency"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        st_baseline *b = NULL;
        char err[512];
        const char *e = cases[i].expr;
        assert_int_equal(st_baseline_new(&b, path, &e, 1, err, sizeof(err)), ST_EINVAL);
        assert_null(b);
        assert_says(err, "--max-regression \"");
        assert_says(err, cases[i].want);
    }
}

static void test_baseline_refuses_bad_files(void **state)
{
    (void)state;
    st_baseline *b = NULL;
    char err[512];
    const char *e = "p(99)+10%";
    assert_int_equal(st_baseline_new(&b, "/nonexistent/old.json", &e, 1, err, sizeof(err)),
                     ST_EINVAL);
    assert_string_equal(err, "--baseline /nonexistent/old.json: cannot open it");
    char dir[] = "/tmp/st-baseline-dir-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char bad[128];
    snprintf(bad, sizeof(bad), "%s/old.json", dir);
    FILE *f = fopen(bad, "w");
    fputs("{\"latency_ms\": {\"p99\": \"slow\"}}", f);
    fclose(f);
    assert_int_equal(st_baseline_new(&b, bad, &e, 1, err, sizeof(err)), ST_EINVAL);
    assert_says(err, "old.json: key \"latency_ms.p99\": expected a number, 0 or more");
    const char *ratio = "late_ratio+1pt";
    assert_int_equal(st_baseline_new(&b, bad, &ratio, 1, err, sizeof(err)), ST_EINVAL);
    assert_says(err, "old.json: key \"requests.late\": missing");
    f = fopen(bad, "w");
    fputs("[1, 2]", f);
    fclose(f);
    assert_int_equal(st_baseline_new(&b, bad, &e, 1, err, sizeof(err)), ST_EINVAL);
    assert_says(err, "not a JSON object (a --summary file)");
    unlink(bad);
    rmdir(dir);
}

static void test_baseline_verdicts(void **state)
{
    (void)state;
    const char *exprs[] = {"p(99)+10%",        "p(99) + 20 %",  "p(99)+1.5ms", "p(99)+1499us",
                           "error_rate+0.5pt", "error_rate+0.4pt", "errors.http_5xx+50%",
                           "uncorrected max+1s"};
    const bool pass[] = {false, true, true, false, true, false, true, false};
    size_t n = sizeof(exprs) / sizeof(exprs[0]);
    st_baseline *b = NULL;
    char err[512];
    assert_int_equal(st_baseline_new(&b, path, exprs, n, err, sizeof(err)), 0);
    assert_false(st_baseline_failed(b));
    assert_null(st_baseline_json(b));
    cJSON *now = cJSON_Parse(new_summary);
    assert_int_equal(st_baseline_evaluate(b, now, err, sizeof(err)), 0);
    assert_true(st_baseline_failed(b));
    cJSON *j = st_baseline_json(b);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "run_id")->valuestring, "old-1");
    cJSON *regs = cJSON_GetObjectItem(j, "regressions");
    assert_int_equal(cJSON_GetArraySize(regs), (int)n);
    for (size_t i = 0; i < n; i++) {
        cJSON *r = cJSON_GetArrayItem(regs, (int)i);
        assert_string_equal(cJSON_GetObjectItem(r, "expression")->valuestring, exprs[i]);
        if (strcmp(cJSON_GetObjectItem(r, "result")->valuestring, pass[i] ? "pass" : "fail")) {
            fail_msg("%s: expected %s", exprs[i], pass[i] ? "pass" : "fail");
        }
    }
    /* 10 ms + 10% is 11 ms; 1% + 0.5 points is 1.5%; the baseline's max has no value. */
    cJSON *r0 = cJSON_GetArrayItem(regs, 0);
    assert_float_equal(cJSON_GetObjectItem(r0, "allowed")->valuedouble, 11.0, 1e-12);
    assert_float_equal(cJSON_GetObjectItem(r0, "observed")->valuedouble, 11.5, 0);
    assert_string_equal(cJSON_GetObjectItem(r0, "unit")->valuestring, "ms");
    cJSON *r4 = cJSON_GetArrayItem(regs, 4);
    assert_float_equal(cJSON_GetObjectItem(r4, "allowed")->valuedouble, 0.015, 1e-15);
    assert_string_equal(cJSON_GetObjectItem(r4, "unit")->valuestring, "ratio");
    cJSON *r7 = cJSON_GetArrayItem(regs, 7);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(r7, "baseline")));
    assert_string_equal(cJSON_GetObjectItem(r7, "metric")->valuestring, "uncorrected max");
    cJSON *d = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "deltas"), "rate.achieved_rps");
    assert_float_equal(cJSON_GetObjectItem(d, "delta")->valuedouble, -0.5, 0);
    assert_float_equal(cJSON_GetObjectItem(d, "change")->valuedouble, -0.005, 1e-15);
    cJSON_Delete(j);
    cJSON_Delete(now);
    /* This run's summary lacking a figure is an error naming it. */
    now = cJSON_Parse("{\"requests\": {}}");
    assert_int_equal(st_baseline_evaluate(b, now, err, sizeof(err)), ST_EINVAL);
    assert_says(err, "this run's summary: key \"latency_ms.p99\": missing");
    cJSON_Delete(now);
    st_baseline_free(b);
}

/* A baseline read back from DynamoDB: named by its run and table in the JSON and the messages. */
static void test_baseline_stored(void **state)
{
    (void)state;
    const char *exprs[] = {"p(99)+10%", "mean+1ms"};
    st_baseline *b = NULL;
    char err[512];
    assert_int_equal(st_baseline_new_stored(&b, "old-1", "results", cJSON_CreateArray(), exprs, 1,
                                            err, sizeof(err)),
                     ST_EINVAL);
    assert_says(err, "--baseline old-1: the summary stored in results is not a JSON object");
    assert_int_equal(st_baseline_new_stored(&b, "old-1", "results", cJSON_Parse("{}"), exprs, 1,
                                            err, sizeof(err)),
                     ST_EINVAL);
    assert_says(err, "--baseline old-1 (stored in results): key \"latency_ms.p99\": missing");
    assert_int_equal(st_baseline_new_stored(&b, "old-1", "results", cJSON_Parse(old_summary),
                                            exprs, 2, err, sizeof(err)),
                     0);
    cJSON *now = cJSON_Parse(new_summary);
    assert_int_equal(st_baseline_evaluate(b, now, err, sizeof(err)), 0);
    cJSON *j = st_baseline_json(b);
    assert_non_null(j);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "file")));
    assert_string_equal(cJSON_GetObjectItem(j, "table")->valuestring, "results");
    assert_string_equal(cJSON_GetObjectItem(j, "run_id")->valuestring, "old-1");
    cJSON *regs = cJSON_GetObjectItem(j, "regressions");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(regs, 0), "result")->valuestring,
                        "fail");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(regs, 1), "result")->valuestring,
                        "pass");
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    st_baseline_print(b, f);
    fclose(f);
    assert_says(text, "run old-1 (stored in results): 1 of 2 regression limits held");
    free(text);
    cJSON_Delete(j);
    cJSON_Delete(now);
    st_baseline_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_baseline_refuses_bad_expressions),
        cmocka_unit_test(test_baseline_refuses_bad_files),
        cmocka_unit_test(test_baseline_verdicts),
        cmocka_unit_test(test_baseline_stored),
    };
    return cmocka_run_group_tests(tests, write_old, remove_old);
}
