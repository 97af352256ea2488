#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "error.h"
#include "hist.h"
#include "junit.h"
#include "names.h"
#include "plan.h"
#include "report.h"
#include "run_flags.h"
#include "stats.h"
#include "threshold.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Thresholds: the parser's every form and refusal, and exact evaluation on constructed results. */

static st_threshold parsed(const char *text)
{
    st_threshold t;
    char err[512] = "";
    int rc = st_threshold_parse(&t, text, "--threshold", false, err, sizeof(err));
    if (rc) {
        fail_msg("\"%s\" refused: %s", text, err);
    }
    return t;
}

static void test_threshold_latency_forms(void **state)
{
    (void)state;
    st_threshold t = parsed("p(99)<250");
    assert_int_equal(t.metric, ST_THRESHOLD_PERCENTILE);
    assert_true(t.percentile == 99);
    assert_int_equal(t.op, ST_THRESHOLD_LT);
    assert_true(t.limit == 250);
    assert_false(t.uncorrected);
    assert_false(t.abort);
    assert_true(st_threshold_is_latency(&t));

    t = parsed("p(95)<=200ms");
    assert_true(t.percentile == 95 && t.limit == 200 && t.op == ST_THRESHOLD_LE);
    t = parsed("p(99.9)<1s");
    assert_true(t.percentile == 99.9 && t.limit == 1000);
    t = parsed("p(100) < 1.5s");
    assert_true(t.percentile == 100 && t.limit == 1500);
    t = parsed("  max <  500us ");
    assert_true(t.metric == ST_THRESHOLD_MAX && t.limit == 0.5);
    t = parsed("uncorrected p(99)<100");
    assert_true(t.uncorrected && t.metric == ST_THRESHOLD_PERCENTILE && t.limit == 100);
    t = parsed("mean<50");
    assert_true(t.metric == ST_THRESHOLD_MEAN && t.limit == 50);
    t = parsed("uncorrected mean>=0.5");
    assert_true(t.uncorrected && t.metric == ST_THRESHOLD_MEAN && t.op == ST_THRESHOLD_GE);
    t = parsed("min>1");
    assert_true(t.metric == ST_THRESHOLD_MIN && t.op == ST_THRESHOLD_GT);
    t = parsed("max<2000");
    assert_true(t.metric == ST_THRESHOLD_MAX && t.limit == 2000);
}

static void test_threshold_ratio_forms(void **state)
{
    (void)state;
    st_threshold t = parsed("error_rate<1%");
    assert_true(t.metric == ST_THRESHOLD_ERROR_RATE && fabs(t.limit - 0.01) < 1e-15);
    assert_false(st_threshold_is_latency(&t));
    t = parsed("error_rate<0.05");
    assert_true(t.limit == 0.05);
    t = parsed("errors.timeout<0.1%");
    assert_true(t.metric == ST_THRESHOLD_ERROR_CLASS &&
                t.class_offset == offsetof(st_counts, err_timeout) && fabs(t.limit - 0.001) < 1e-15);
    const char *names[] = {"http_4xx", "http_5xx", "connect", "timeout",
                           "other",    "local",    "tls",     "cert"};
    size_t offs[] = {offsetof(st_counts, http_4xx),    offsetof(st_counts, http_5xx),
                     offsetof(st_counts, err_connect), offsetof(st_counts, err_timeout),
                     offsetof(st_counts, err_other),   offsetof(st_counts, err_local),
                     offsetof(st_counts, err_tls),     offsetof(st_counts, err_cert)};
    for (size_t i = 0; i < 8; i++) {
        char text[64];
        snprintf(text, sizeof(text), "errors.%s<=1", names[i]);
        t = parsed(text);
        assert_int_equal(t.class_offset, offs[i]);
    }
    t = parsed("achieved_ratio>=0.99");
    assert_true(t.metric == ST_THRESHOLD_ACHIEVED_RATIO && t.op == ST_THRESHOLD_GE &&
                t.limit == 0.99);
    t = parsed("achieved_ratio<1.05");
    assert_true(t.limit == 1.05);
    t = parsed("late_ratio<1%");
    assert_true(t.metric == ST_THRESHOLD_LATE_RATIO);
    t = parsed("dropped_ratio<0.1%");
    assert_true(t.metric == ST_THRESHOLD_DROPPED_RATIO && fabs(t.limit - 0.001) < 1e-15);
}

static void test_threshold_abort_forms(void **state)
{
    (void)state;
    st_threshold t = parsed("p(99)<250, abort after 10s");
    assert_true(t.abort && t.abort_after_s == 10);
    t = parsed("p(99)<250,abort after 500ms");
    assert_true(t.abort && t.abort_after_s == 0.5);
    t = parsed("error_rate<1% , abort");
    assert_true(t.abort && t.abort_after_s == 0);
    t = parsed("error_rate<1%, abort after 2m");
    assert_true(t.abort_after_s == 120);
}

/* Each refusal says where, which expression, at which character, and what is wrong. */
static void refused(const char *text, bool closed_loop, const char *message)
{
    st_threshold t;
    char err[512] = "";
    assert_int_equal(st_threshold_parse(&t, text, "plan.json: $.thresholds[2]", closed_loop, err,
                                        sizeof(err)),
                     ST_EINVAL);
    char want[1024];
    snprintf(want, sizeof(want), "plan.json: $.thresholds[2]: \"%s\": %s", text, message);
    assert_string_equal(err, want);
}

static void test_threshold_refusals(void **state)
{
    (void)state;
    refused("", false, "at character 1: empty: give a condition such as p(99)<250ms or "
                       "error_rate<1%");
    refused("p99<250", false, "at character 1: not a metric (p(N), mean, min, max, "
                              "uncorrected ..., error_rate, errors.CLASS, achieved_ratio, "
                              "late_ratio or dropped_ratio)");
    refused("p(99<250", false, "at character 5: \")\" must close the percentile, as in p(99)");
    refused("p()<250", false, "at character 3: the percentile: a number is missing (digits, e.g. "
                              "250 or 99.9)");
    refused("p(0)<250", false, "at character 4: the percentile must be above 0 and at most 100 "
                               "(got 0)");
    refused("p(100.5)<250", false, "at character 8: the percentile must be above 0 and at most "
                                   "100 (got 100.5)");
    refused("p(99)<-5", false, "at character 7: the limit: a number is missing (digits, e.g. 250 "
                               "or 99.9)");
    refused("p(99)<1e3", false, "at character 8: not a unit of latency (us, ms or s; a bare "
                                "number is ms)");
    refused("p(99)<2.", false, "at character 9: the limit: digits must follow the decimal point");
    refused("p(99)<5%", false, "at character 8: a latency is not a ratio: give it in ms, s or us");
    refused("p(99)<5m", false, "at character 8: not a unit of latency (us, ms or s; a bare number "
                               "is ms)");
    refused("p(99)=250", false, "at character 6: the comparison must be <, <=, > or >=");
    refused("p(99)==250", false, "at character 6: the comparison must be <, <=, > or >=");
    refused("p(99)<250 ms", false, "at character 11: unexpected \"ms\" after the threshold");
    refused("p(99){tag=login}<250", false,
            "at character 7: a selector names a request: {name=NAME} (the only tag is name)");
    refused("p(99){name login}<250", false,
            "at character 12: \"=\" (or \":\") must follow \"name\" in the selector, as in "
            "{name=login}");
    refused("p(99){name=}<250", false, "at character 12: the selector names no request: {name=NAME}");
    refused("p(99){name=login<250", false,
            "at character 21: \"}\" must close the selector, as in {name=login}");
    refused("p(99){name=\"login}<250", false,
            "at character 12: the quoted name is not closed with \"");
    refused("achieved_ratio{name=login}>0.9", false,
            "at character 1: achieved_ratio is for the whole run: the target is not split by name");
    refused("uncorrected error_rate<1%", false,
            "at character 13: \"uncorrected\" goes with a latency: p(N), mean, min or max");
    refused("error_rate<5", false, "at character 13: 5 is ambiguous for a ratio: write a fraction "
                                   "from 0 to 1 (0.05) or a percentage (5%)");
    refused("error_rate<150%", false, "at character 16: a share of requests is at most 100%");
    refused("error_rate<1ms", false, "at character 13: a ratio takes no unit but % (a bare number "
                                     "is a fraction: 0.01 or 1%)");
    refused("errors.teapot<1%", false, "at character 8: not an error class (http_4xx, http_5xx, "
                                       "connect, timeout, other, local, tls or cert)");
    refused("p(99)<250, stop", false, "at character 12: after the \",\" only \"abort\" or \"abort "
                                      "after DURATION\" may follow");
    refused("p(99)<250, abort in 2s", false, "at character 18: \"abort\" is followed by nothing or "
                                             "by \"after DURATION\"");
    refused("p(99)<250, abort after", false, "at character 23: \"abort after\" needs a duration "
                                             "such as 10s or 500ms");
    refused("p(99)<250, abort after 2x", false, "at character 24: abort after: \"2x\" is not a "
                                                "duration of at most 30 days (seconds, or e.g. "
                                                "500ms, 30s, 2m, 1h)");
    refused("p(99)<250, abort after 2s now", false,
            "at character 27: unexpected \"now\" after the threshold");
    refused("achieved_ratio>=0.99", true, "at character 1: achieved_ratio needs a target rate, "
                                          "and the plan is closed loop");
}

/* A histogram with the given values (us). */
static st_hist *hist_of(const uint64_t *us, size_t n)
{
    st_hist *h = NULL;
    assert_int_equal(st_hist_new(&h), 0);
    for (size_t i = 0; i < n; i++) {
        st_hist_record(h, us[i]);
    }
    return h;
}

static double observe(const char *text, const st_threshold_input *in, bool *have)
{
    st_threshold t = parsed(text);
    double v = -1;
    *have = st_threshold_observe(&t, in, &v);
    return v;
}

static void test_threshold_observe_exact(void **state)
{
    (void)state;
    /* 100 latencies 1..100 ms corrected, half of that uncorrected (values below 2048 us are exact,
     * above within 0.1%: take exact ones at the percentiles read). */
    uint64_t lat[100], raw[100];
    for (int i = 0; i < 100; i++) {
        lat[i] = (uint64_t)(i + 1) * 1000;
        raw[i] = (uint64_t)(i + 1) * 10;
    }
    st_hist *h = hist_of(lat, 100), *hr = hist_of(raw, 100);
    st_counts c = {.sent = 1000, .ok = 900, .http_4xx = 10, .http_5xx = 40, .err_timeout = 30,
                   .err_connect = 20, .late = 50, .dropped = 250, .err_local = 5};
    st_threshold_input in = {&c, h, hr, 1250};
    bool have;
    assert_true(observe("max<1", &in, &have) == 100.0 && have);
    assert_true(observe("min<1", &in, &have) == 1.0);
    assert_true(observe("uncorrected max<1", &in, &have) == 1.0);
    assert_true(observe("uncorrected p(50)<1", &in, &have) == 0.5);
    assert_true(observe("uncorrected mean<1", &in, &have) == 0.505);
    assert_true(observe("p(100)<1", &in, &have) == 100.0);
    /* 1000 requests completed: 900 ok, 100 failed. */
    assert_true(observe("error_rate<1%", &in, &have) == 0.1 && have);
    assert_true(observe("errors.http_5xx<1%", &in, &have) == 0.04);
    assert_true(observe("errors.timeout<1%", &in, &have) == 0.03);
    assert_true(observe("errors.local<1%", &in, &have) == 0.005);
    assert_true(observe("achieved_ratio>0.5", &in, &have) == 0.8);
    assert_true(observe("late_ratio<1%", &in, &have) == 0.05);
    assert_true(observe("dropped_ratio<1%", &in, &have) == 0.2);

    st_threshold t = parsed("error_rate<10%");
    assert_false(st_threshold_holds(&t, 0.1));
    t = parsed("error_rate<=10%");
    assert_true(st_threshold_holds(&t, 0.1));
    t = parsed("achieved_ratio>0.8");
    assert_false(st_threshold_holds(&t, 0.8));
    t = parsed("achieved_ratio>=0.8");
    assert_true(st_threshold_holds(&t, 0.8));

    /* Nothing to measure: no value. */
    st_hist *empty = hist_of(NULL, 0);
    st_counts none = {0};
    st_threshold_input nothing = {&none, empty, empty, 0};
    observe("p(99)<250", &nothing, &have);
    assert_false(have);
    observe("error_rate<1%", &nothing, &have);
    assert_false(have);
    observe("achieved_ratio>0.9", &nothing, &have);
    assert_false(have);
    observe("dropped_ratio<1%", &nothing, &have);
    assert_false(have);
    st_hist_free(h);
    st_hist_free(hr);
    st_hist_free(empty);
}

/* A plan with thresholds from the file and from --threshold. */
static void plan_with(st_plan *p, const char *json, const char **flags, size_t n_flags)
{
    char err[512] = "";
    st_plan_init(p);
    assert_int_equal(st_plan_parse(p, json, strlen(json), "plan.json", err, sizeof(err)), 0);
    st_plan_flags f;
    st_plan_flags_init(&f);
    for (size_t i = 0; i < n_flags; i++) {
        assert_int_equal(st_plan_flags_option(&f, "threshold", flags[i], err, sizeof(err)), 0);
    }
    assert_int_equal(st_plan_apply_flags(p, &f, err, sizeof(err)), 0);
    if (st_plan_finish(p, 1, err, sizeof(err))) {
        fail_msg("%s", err);
    }
}

static void test_thresholds_from_plan_and_flags(void **state)
{
    (void)state;
    st_plan p;
    const char *flags[] = {"max<2s"};
    plan_with(&p, "{\"url\": \"http://127.0.0.1:1/\", \"rate\": 10, \"duration\": 2, "
                  "\"thresholds\": [\"p(99)<250\", \"error_rate<1%\"]}",
              flags, 1);
    assert_int_equal(p.n_thresholds, 3);
    assert_int_equal(p.n_file_thresholds, 2);
    assert_string_equal(p.thresholds[2], "max<2s");
    st_thresholds *ts = NULL;
    char err[512];
    assert_int_equal(st_thresholds_new(&ts, &p, "plan.json", err, sizeof(err)), 0);
    assert_int_equal(st_thresholds_count(ts), 3);
    st_thresholds_free(ts);
    st_plan_fini(&p);

    /* A bad one is named by its JSON path, or by the flag. */
    plan_with(&p, "{\"url\": \"http://127.0.0.1:1/\", \"rate\": 10, \"duration\": 2, "
                  "\"thresholds\": [\"p(99)<250\", \"max<1\", \"p(99)<\"]}",
              NULL, 0);
    assert_int_equal(st_thresholds_new(&ts, &p, "plan.json", err, sizeof(err)), ST_EINVAL);
    assert_null(ts);
    assert_string_equal(err, "plan.json: $.thresholds[2]: \"p(99)<\": at character 7: the limit: "
                             "a number is missing (digits, e.g. 250 or 99.9)");
    st_plan_fini(&p);
    const char *bad[] = {"mean<1", "median<3"};
    plan_with(&p, "{\"url\": \"http://127.0.0.1:1/\", \"rate\": 10, \"duration\": 2}", bad, 2);
    assert_int_equal(st_thresholds_new(&ts, &p, NULL, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "--threshold: \"median<3\": at character 1: not a metric"));
    st_plan_fini(&p);

    /* The plan's value must be an array of strings. */
    const char *texts[] = {"{\"url\": \"http://x/\", \"thresholds\": \"p(99)<1\"}",
                           "{\"url\": \"http://x/\", \"thresholds\": [\"p(99)<1\", 5]}"};
    const char *msgs[] = {"$.thresholds: must be an array", "$.thresholds[1]: must be a string"};
    for (int i = 0; i < 2; i++) {
        st_plan_init(&p);
        assert_int_equal(st_plan_parse(&p, texts[i], strlen(texts[i]), "plan.json", err,
                                       sizeof(err)),
                         ST_EINVAL);
        if (!strstr(err, msgs[i])) {
            fail_msg("got \"%s\", wanted \"%s\"", err, msgs[i]);
        }
        st_plan_fini(&p);
    }
}

/* A second of n responses at latency_us, errors of them failed with 5xx. */
static void second_of(st_stats *s, uint32_t second, uint64_t n, uint64_t latency_us,
                      uint64_t errors)
{
    st_stats_reset(s);
    s->second = second;
    s->c.sent = n;
    s->c.ok = n - errors;
    s->c.http_5xx = errors;
    st_hist_record_n(s->lat, latency_us, n);
    st_hist_record_n(s->lat_raw, latency_us, n);
}

static bool feed(st_thresholds *ts, st_stats *s, uint32_t second, uint64_t latency_us,
                 uint64_t errors, FILE *progress)
{
    second_of(s, second, 100, latency_us, errors);
    st_coord_second sec = {.second = second, .target_rps = 100, .stats = s, .agents = 1};
    return st_thresholds_second(ts, &sec, progress);
}

static void test_thresholds_abort_after_delay(void **state)
{
    (void)state;
    st_plan p;
    plan_with(&p, "{\"url\": \"http://127.0.0.1:1/\", \"rate\": 100, \"duration\": 10, "
                  "\"thresholds\": [\"p(99)<10ms, abort after 2s\", \"error_rate<=50%\"]}",
              NULL, 0);
    st_thresholds *ts = NULL;
    char err[512];
    assert_int_equal(st_thresholds_new(&ts, &p, "plan.json", err, sizeof(err)), 0);
    st_stats s;
    assert_int_equal(st_stats_init(&s), 0);
    char *out = NULL;
    size_t len = 0;
    FILE *progress = open_memstream(&out, &len);
    /* Second 0 fast; 1, 2 slow: the run-so-far p99 breaks at 1 (200 of 200 below, 100 above). */
    assert_false(feed(ts, &s, 0, 1000, 0, progress));
    assert_false(feed(ts, &s, 1, 50000, 0, progress));
    assert_false(feed(ts, &s, 2, 50000, 0, progress));
    assert_null(st_thresholds_aborted_by(ts));
    /* Failing since the evaluation of second 1: at second 3 it has failed for 2 s. */
    assert_true(feed(ts, &s, 3, 50000, 0, progress));
    assert_string_equal(st_thresholds_aborted_by(ts), "p(99)<10ms, abort after 2s");
    /* Asked once only. */
    assert_false(feed(ts, &s, 4, 50000, 0, progress));
    fclose(progress);
    assert_string_equal(out, "[    2s] threshold p(99)<10ms, abort after 2s is failing: 50.000 ms "
                             "over the run so far (it aborts the run)\n"
                             "[    4s] threshold p(99)<10ms, abort after 2s has failed since 2s: "
                             "stopping the run\n");
    free(out);

    /* The final verdict on the report: exact values; the aborting threshold fails. */
    st_report r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(st_stats_init(&r.total), 0);
    r.total.c.sent = 400;
    r.total.c.ok = 200;
    r.total.c.http_5xx = 200;
    st_hist_record_n(r.total.lat, 1000, 400);
    r.target_requests = 400;
    r.duration_s = 4;
    r.run_id = strdup("run-1");
    assert_int_equal(st_thresholds_final(ts, &r), 0);
    assert_int_equal(r.n_thresholds, 2);
    assert_string_equal(r.thresholds[0].expression, "p(99)<10ms, abort after 2s");
    assert_true(r.thresholds[0].have_value && r.thresholds[0].observed == 1.0);
    assert_false(r.thresholds[0].pass);
    assert_true(r.thresholds[0].aborted);
    assert_int_equal(r.thresholds[0].aborted_at, 4);
    assert_string_equal(r.thresholds[0].unit, "ms");
    assert_true(r.thresholds[1].observed == 0.5 && r.thresholds[1].pass);
    assert_string_equal(r.thresholds[1].op, "<=");
    assert_true(st_thresholds_failed(&r));

    /* The summary's last key, and the JUnit document. */
    cJSON *j = st_report_json(&r);
    char *text = cJSON_PrintUnformatted(j);
    const char *want = "\"thresholds\":[{\"expression\":\"p(99)<10ms, abort after 2s\","
                       "\"observed\":1,\"unit\":\"ms\",\"op\":\"<\",\"limit\":10,"
                       "\"result\":\"fail\",\"aborted\":true,\"aborted_at_s\":4},"
                       "{\"expression\":\"error_rate<=50%\",\"observed\":0.5,\"unit\":\"ratio\","
                       "\"op\":\"<=\",\"limit\":0.5,\"result\":\"pass\",\"aborted\":false}]}";
    assert_non_null(strstr(text, want));
    assert_string_equal(strstr(text, want), want);
    free(text);
    cJSON_Delete(j);
    char *xml = st_junit_text(&r, NULL);
    assert_non_null(xml);
    assert_non_null(strstr(xml, "<testsuites name=\"stampede\" tests=\"4\" failures=\"1\""));
    assert_non_null(strstr(xml, "<testcase classname=\"stampede.thresholds\" name=\"p(99)&lt;10ms, "
                                "abort after 2s\" time=\"0\">\n      <failure type=\"threshold\" "
                                "message=\"observed 1.000 ms, wanted &lt; 10.000 ms; it stopped "
                                "the run at 4s\">"));
    assert_non_null(strstr(xml, "<testcase classname=\"stampede.thresholds\" "
                                "name=\"error_rate&lt;=50%\" time=\"0\"/>"));
    assert_non_null(strstr(xml, "name=\"every agent completed\" time=\"0\"/>"));
    assert_non_null(strstr(xml, "name=\"no second missing\" time=\"0\"/>"));
    free(xml);

    /* A lost agent and incomplete seconds fail the run's cases. */
    st_report_agent agent = {.name = "local-2", .lost = true, .lost_reason = "its process exited",
                             .error = ""};
    uint32_t inc[] = {3, 4};
    r.agents = &agent;
    r.n_agents = 1;
    r.incomplete_seconds = inc;
    r.n_incomplete = 2;
    xml = st_junit_text(&r, NULL);
    assert_non_null(strstr(xml, "failures=\"3\""));
    assert_non_null(strstr(xml, "message=\"agent local-2 was lost: its process exited\""));
    assert_non_null(strstr(xml, "message=\"2 incomplete second(s): 3 4\""));
    free(xml);
    r.agents = NULL;
    r.n_agents = 0;
    r.incomplete_seconds = NULL;
    r.n_incomplete = 0;

    /* --max-regression limits are cases of their own. */
    cJSON *regs = cJSON_Parse(
        "[{\"expression\": \"p(99)+10%\", \"metric\": \"p(99)\", \"unit\": \"ms\", "
        "\"baseline\": 10, \"observed\": 12.5, \"allowed\": 11, \"result\": \"fail\"},"
        "{\"expression\": \"error_rate+0.5pt\", \"metric\": \"error_rate\", "
        "\"unit\": \"ratio\", \"baseline\": 0.01, \"observed\": 0.012, \"allowed\": 0.015, "
        "\"result\": \"pass\"},"
        "{\"expression\": \"max+1s\", \"metric\": \"max\", \"unit\": \"ms\", "
        "\"baseline\": null, \"observed\": 3, \"allowed\": null, \"result\": \"fail\"}]");
    assert_non_null(regs);
    xml = st_junit_text(&r, regs);
    assert_non_null(strstr(xml, "<testsuites name=\"stampede\" tests=\"7\" failures=\"3\""));
    assert_non_null(strstr(xml, "<testcase classname=\"stampede.baseline\" name=\"p(99)+10%\" "
                                "time=\"0\">\n      <failure type=\"regression\" "
                                "message=\"observed 12.500 ms, allowed at most 11.000 ms "
                                "(baseline 10.000 ms)\">"));
    assert_non_null(strstr(xml, "<testcase classname=\"stampede.baseline\" "
                                "name=\"error_rate+0.5pt\" time=\"0\"/>"));
    assert_non_null(strstr(xml, "message=\"observed 3.000 ms, allowed at most no value "
                                "(baseline no value)\""));
    free(xml);
    cJSON_Delete(regs);

    st_report_fini(&r);
    st_stats_fini(&s);
    st_thresholds_free(ts);
    st_plan_fini(&p);
}

/* A threshold that heals by the end passes; one without a value fails. */
static void test_thresholds_final_verdicts(void **state)
{
    (void)state;
    st_plan p;
    const char *flags[] = {"p(50)<10", "mean<5", "errors.timeout<1%"};
    plan_with(&p, "{\"url\": \"http://127.0.0.1:1/\", \"rate\": 100, \"duration\": 10}", flags,
              3);
    st_thresholds *ts = NULL;
    char err[512];
    assert_int_equal(st_thresholds_new(&ts, &p, NULL, err, sizeof(err)), 0);
    st_stats s;
    assert_int_equal(st_stats_init(&s), 0);
    assert_false(feed(ts, &s, 0, 50000, 0, NULL));
    st_report r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(st_stats_init(&r.total), 0);
    st_hist_record_n(r.total.lat, 2000, 300);
    st_hist_record_n(r.total.lat, 4000, 100);
    r.total.c.ok = 400;
    assert_int_equal(st_thresholds_final(ts, &r), 0);
    assert_true(r.thresholds[0].pass && r.thresholds[0].observed == 2.0);
    assert_true(r.thresholds[1].pass && r.thresholds[1].observed == 2.5);
    assert_true(r.thresholds[2].pass && r.thresholds[2].observed == 0);
    assert_false(st_thresholds_failed(&r));
    st_report_fini(&r);
    /* No responses at all: the latency threshold has no value and fails. */
    memset(&r, 0, sizeof(r));
    assert_int_equal(st_stats_init(&r.total), 0);
    assert_int_equal(st_thresholds_final(ts, &r), 0);
    assert_false(r.thresholds[0].have_value);
    assert_false(r.thresholds[0].pass);
    assert_true(st_thresholds_failed(&r));
    cJSON *j = st_report_json(&r);
    char *text = cJSON_PrintUnformatted(j);
    assert_non_null(strstr(text, "{\"expression\":\"p(50)<10\",\"observed\":null,\"unit\":\"ms\""));
    free(text);
    cJSON_Delete(j);
    st_report_fini(&r);
    st_stats_fini(&s);
    st_thresholds_free(ts);
    st_plan_fini(&p);
}

/* --threshold is the one flag that may be repeated; every value is kept, in order. */
static void test_threshold_flag_repeats(void **state)
{
    (void)state;
    st_run_opts o;
    char err[512] = "";
    char *argv[] = {"stampede", "--threshold", "p(99)<250", "--rate", "5", "--threshold=max<1s",
                    "--thresh", "error_rate<1%", NULL};
    assert_int_equal(st_run_flags_parse(8, argv, &o, err, sizeof(err)), 0);
    assert_int_equal(o.f.thresholds.n, 3);
    assert_string_equal(o.f.thresholds.v[0], "p(99)<250");
    assert_string_equal(o.f.thresholds.v[1], "max<1s");
    assert_string_equal(o.f.thresholds.v[2], "error_rate<1%");
    /* Other flags still refuse a repeat. */
    char *twice[] = {"stampede", "--threshold", "max<1", "--rate", "5", "--rate", "6", NULL};
    assert_int_equal(st_run_flags_parse(7, twice, &o, err, sizeof(err)), ST_EINVAL);
    assert_string_equal(err, "--rate: given twice; give it once");
    /* At most ST_SETTING_LIST_MAX of them. */
    char *many[2 * ST_SETTING_LIST_MAX + 4];
    int n = 0;
    many[n++] = "stampede";
    for (int i = 0; i <= ST_SETTING_LIST_MAX; i++) {
        many[n++] = "--threshold";
        many[n++] = "max<1";
    }
    many[n] = NULL;
    assert_int_equal(st_run_flags_parse(n, many, &o, err, sizeof(err)), ST_EINVAL);
    assert_string_equal(err, "--threshold: given more than 64 times");
}


static void test_threshold_selector_forms(void **state)
{
    (void)state;
    st_threshold t = parsed("p(99){name=login}<250");
    assert_true(t.by_name && strcmp(t.name, "login") == 0 && t.limit == 250);
    t = parsed("uncorrected max { name : POST /api/x } <= 1s");
    assert_true(t.by_name && t.uncorrected && strcmp(t.name, "POST /api/x") == 0 &&
                t.limit == 1000);
    t = parsed("error_rate{name=\"a}b\"}<1%, abort after 2s");
    assert_true(t.by_name && strcmp(t.name, "a}b") == 0 && t.abort && t.abort_after_s == 2);
    t = parsed("p(99)<250");
    assert_false(t.by_name);
}

/* A threshold by name reads that name's part only; a name with nothing yet has no value. */
static void test_threshold_input_by_name(void **state)
{
    (void)state;
    st_stats s;
    assert_int_equal(st_stats_init(&s), 0);
    assert_int_equal(st_stats_names(&s, 2), 0);
    st_hist_record(s.names[0].lat, 1000);
    st_hist_record(s.names[1].lat, 9000);
    st_hist_merge(s.lat, s.names[0].lat);
    st_hist_merge(s.lat, s.names[1].lat);
    s.names[0].c.ok = 1;
    s.names[1].c.http_5xx = 1;
    s.c.ok = 1;
    s.c.http_5xx = 1;
    st_threshold t = parsed("max{name=b}<5ms");
    double v;
    st_threshold_input in = st_threshold_input_of(&s, 1, 10);
    assert_true(st_threshold_observe(&t, &in, &v) && v == 9 && !st_threshold_holds(&t, v));
    in = st_threshold_input_of(&s, 0, 10);
    assert_true(st_threshold_observe(&t, &in, &v) && v == 1 && st_threshold_holds(&t, v));
    t = parsed("error_rate{name=b}<1%");
    in = st_threshold_input_of(&s, 1, 10);
    assert_true(st_threshold_observe(&t, &in, &v) && v == 1);
    in = st_threshold_input_of(&s, -1, 10);
    assert_true(st_threshold_observe(&t, &in, &v) && v == 0.5);
    in = st_threshold_input_of(&s, 5, 10);
    assert_false(st_threshold_observe(&t, &in, &v));
    st_stats_fini(&s);
}

/* A selector must name one of the plan's names, kept apart (a plan of 2 to ST_NAMES_KEPT_MAX). */
static void test_thresholds_selector_against_the_plan(void **state)
{
    (void)state;
    st_plan p;
    char err[512];
    st_thresholds *ts = NULL;
    const char *ok[] = {"p(99){name=b}<250", "error_rate{name:a}<1%"};
    plan_with(&p, "{\"requests\": [{\"name\": \"a\", \"url\": \"http://127.0.0.1:1/a\"}, "
                  "{\"name\": \"b\", \"url\": \"http://127.0.0.1:1/b\"}], \"rate\": 10, "
                  "\"duration\": 2}",
              ok, 2);
    assert_int_equal(st_thresholds_new(&ts, &p, NULL, err, sizeof(err)), 0);
    st_thresholds_free(ts);
    const char *bad[] = {"p(99){name=c}<250"};
    st_plan_fini(&p);
    plan_with(&p, "{\"requests\": [{\"name\": \"a\", \"url\": \"http://127.0.0.1:1/a\"}, "
                  "{\"name\": \"b\", \"url\": \"http://127.0.0.1:1/b\"}], \"rate\": 10, "
                  "\"duration\": 2}",
              bad, 1);
    assert_int_equal(st_thresholds_new(&ts, &p, NULL, err, sizeof(err)), ST_EINVAL);
    assert_string_equal(err, "--threshold: \"p(99){name=c}<250\": the plan has no request named "
                             "\"c\" (its names: \"a\", \"b\")");
    st_plan_fini(&p);
    /* One name: the selector is the whole run. */
    const char *one[] = {"p(99){name=GET http://127.0.0.1:1/}<250"};
    plan_with(&p, "{\"url\": \"http://127.0.0.1:1/\", \"rate\": 10, \"duration\": 2}", one, 1);
    assert_int_equal(st_thresholds_new(&ts, &p, NULL, err, sizeof(err)), 0);
    st_thresholds_free(ts);
    st_plan_fini(&p);
    /* More names than are kept apart: refused, saying why. */
    char json[8192];
    size_t n = (size_t)snprintf(json, sizeof(json), "{\"requests\": [");
    for (int i = 0; i <= ST_NAMES_KEPT_MAX; i++) {
        n += (size_t)snprintf(json + n, sizeof(json) - n,
                              "%s{\"name\": \"r%d\", \"url\": \"http://127.0.0.1:1/%d\"}",
                              i ? ", " : "", i, i);
    }
    snprintf(json + n, sizeof(json) - n, "], \"rate\": 10, \"duration\": 2}");
    const char *many[] = {"p(99){name=r1}<250"};
    plan_with(&p, json, many, 1);
    assert_int_equal(st_thresholds_new(&ts, &p, NULL, err, sizeof(err)), ST_EINVAL);
    assert_string_equal(err, "--threshold: \"p(99){name=r1}<250\": the plan has 33 request names, "
                             "and results per name are kept for plans of at most 32");
    st_plan_fini(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold_latency_forms),
        cmocka_unit_test(test_threshold_ratio_forms),
        cmocka_unit_test(test_threshold_abort_forms),
        cmocka_unit_test(test_threshold_selector_forms),
        cmocka_unit_test(test_threshold_input_by_name),
        cmocka_unit_test(test_thresholds_selector_against_the_plan),
        cmocka_unit_test(test_threshold_refusals),
        cmocka_unit_test(test_threshold_observe_exact),
        cmocka_unit_test(test_thresholds_from_plan_and_flags),
        cmocka_unit_test(test_thresholds_abort_after_delay),
        cmocka_unit_test(test_thresholds_final_verdicts),
        cmocka_unit_test(test_threshold_flag_repeats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
