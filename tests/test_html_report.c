#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "assert_text.h"

#include "error.h"
#include "html_report.h"
#include "md_summary.h"
#include "output.h"
#include "report.h"
#include "stats.h"

/*
 * The HTML report's and the step summary's writers on constructed inputs: the exact figures,
 * escaping, the strict reading of the summary and the time series, the summary's histogram bins,
 * and the time series line they are drawn from.
 */

static const char summary_text[] =
    "{\"requests\": {\"total\": 1200, \"ok\": 1140, \"failed\": 60, \"sent\": 1201, \"late\": 4,"
    "  \"dropped\": 1},"
    " \"rate\": {\"target_rps\": 300, \"achieved_rps\": 299.75},"
    " \"errors\": {\"http_4xx\": 12, \"http_5xx\": 48, \"connect\": 0, \"timeout\": 0,"
    "  \"other\": 0, \"local\": 0},"
    " \"bytes\": {\"in\": 154596, \"out\": 82800}, \"duration_s\": 4, \"closed_loop\": false,"
    " \"latency_ms\": {\"min\": 1.158, \"mean\": 3.624, \"p50\": 3.313, \"p90\": 5.515,"
    "  \"p99\": 12.5, \"p999\": 15.743, \"max\": 20.788},"
    " \"latency_uncorrected_ms\": {\"min\": 1.12, \"mean\": 3.568, \"p50\": 3.247, \"p90\": 5.463,"
    "  \"p99\": 5.571, \"p999\": 5.695, \"max\": 5.744},"
    " \"latency_histogram\": {\"unit\": \"us\", \"corrected\": [[1152, 1279, 2], [2048, 2303, 5]],"
    "  \"uncorrected\": [[1152, 1279, 3], [2048, 2303, 4]]},"
    " \"run_id\": \"r<1>&\", \"start_skew_ms\": 0.087196,"
    " \"agents\": [{\"id\": 1, \"name\": \"a\\\"b'c&d\", \"host\": \"vm\", \"share_rps\": 150,"
    "  \"requests\": 600, \"ok\": 564, \"failed\": 36, \"lost\": false, \"state\": \"done\","
    "  \"clock_offset_ms\": -0.001931, \"clock_rtt_ms\": 0.063574}],"
    " \"requests_by_name\": {\"<script>alert(1)</script>\": {"
    "  \"requests\": {\"total\": 2, \"ok\": 1, \"failed\": 1, \"sent\": 2, \"late\": 0,"
    "   \"dropped\": 0},"
    "  \"errors\": {\"http_4xx\": 0, \"http_5xx\": 1, \"connect\": 0, \"timeout\": 0,"
    "   \"other\": 0, \"local\": 0},"
    "  \"latency_ms\": {\"min\": 1, \"mean\": 1, \"p50\": 1, \"p90\": 1, \"p99\": 1, \"p999\": 1,"
    "   \"max\": 1},"
    "  \"latency_uncorrected_ms\": {\"min\": 1, \"mean\": 1, \"p50\": 1, \"p90\": 1, \"p99\": 1,"
    "   \"p999\": 1, \"max\": 1}}},"
    " \"status\": \"completed\","
    " \"thresholds\": [{\"expression\": \"p(99)<50\", \"observed\": 12.5, \"unit\": \"ms\","
    "  \"op\": \"<\", \"limit\": 50, \"result\": \"pass\", \"aborted\": false},"
    "  {\"expression\": \"error_rate<1%\", \"observed\": 0.05, \"unit\": \"ratio\", \"op\": \"<\","
    "  \"limit\": 0.01, \"result\": \"fail\", \"aborted\": true, \"aborted_at_s\": 3}]}";

static cJSON *series_of(size_t n, const char *extra)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        char line[1024];
        snprintf(line, sizeof(line),
                 "{\"t\": %zu, \"target_rps\": 300, \"achieved_rps\": 300, \"sent\": 300,"
                 " \"ok\": 285, \"failed\": 15, \"p50_ms\": 3.2, \"p90_ms\": 5.5, \"p99_ms\": %s,"
                 " \"max_ms\": 9, \"agents\": 2, \"p50_uncorrected_ms\": 3, \"p90_uncorrected_ms\": 5,"
                 " \"p99_uncorrected_ms\": 5.5, \"errors\": {\"http_4xx\": 3, \"http_5xx\": 12,"
                 " \"connect\": 0, \"timeout\": 0, \"other\": 0, \"local\": 0}%s}",
                 i, i == 1 ? "null" : "5.6", extra);
        cJSON_AddItemToArray(arr, cJSON_Parse(line));
    }
    return arr;
}

/* The report of summary text s and n seconds; asserts the return code rc, and gives err. */
static char *report_of(const char *s, cJSON *series, int rc, char *err, size_t err_len)
{
    cJSON *summary = cJSON_Parse(s);
    assert_non_null(summary);
    static const size_t lines[] = {5, 6, 7, 8};
    st_html_source src = {"s.json", "ts.jsonl", lines};
    char *out = NULL;
    err[0] = 0;
    int got = st_html_report_text(summary, series, &src, &out, err, err_len);
    if (got != rc) {
        fail_msg("st_html_report_text: %d (%s)", got, err);
    }
    cJSON_Delete(summary);
    cJSON_Delete(series);
    return out;
}

static void test_html_report_figures_are_in_the_dom(void **state)
{
    (void)state;
    char err[512];
    char *html = report_of(summary_text, series_of(3, ""), 0, err, sizeof(err));
    assert_non_null(html);
    assert_says(html, "<td data-fig=\"requests.total\" data-value=\"1200\">1200</td>");
    assert_says(html, "<td data-fig=\"requests.dropped\" data-value=\"1\">1</td>");
    assert_says(html, "<td data-fig=\"rate.achieved_rps\" data-value=\"299.75\">299.8</td>");
    assert_says(html, "<td data-fig=\"latency_ms.p99\" data-value=\"12.5\">12.500</td>");
    assert_says(html, "<td data-fig=\"latency_uncorrected_ms.min\" data-value=\"1.12\">1.120</td>");
    assert_says(html, "<td data-fig=\"errors.http_5xx\" data-value=\"48\">48</td>");
    assert_says(html, "<span data-fig=\"start_skew_ms\" data-value=\"0.087196\">0.087</span>");
    assert_says(html, "<tr data-scope=\"threshold:1\"><td data-fig=\"expression\">error_rate&lt;1%"
                      "</td><td data-fig=\"observed\" data-value=\"0.05\">5.0000%</td>");
    assert_says(html, "data-fig=\"result\" data-value=\"fail\">FAIL</td>");
    assert_says(html, "it stopped the run at 3s");
    assert_says(html, "id=\"verdict\" data-value=\"fail\">LIMITS FAILED");
    assert_says(html, "<tr data-scope=\"agent:1\"><td data-fig=\"name\">a&quot;b&#39;c&amp;d</td>");
    /* 3 seconds: 2 rate lines of 3 points, 6 latency lines of 3 less the null p99. */
    assert_says(html, "id=\"chart-rps\" viewBox=\"0 0 1100 300\" role=\"img\" aria-label=\"Target "
                      "and achieved requests per second\" data-points=\"6\"");
    assert_says(html, "id=\"chart-latency\"");
    assert_says(html, "data-points=\"17\"");
    assert_says(html, "id=\"chart-distribution\"");
    assert_says(html, "<title>1152-1279 us: 2</title>");
    free(html);
}

static void test_html_report_escapes_names(void **state)
{
    (void)state;
    char err[512];
    char *html = report_of(summary_text, series_of(2, ""), 0, err, sizeof(err));
    assert_non_null(html);
    /* The only markup is the report's own: no script, no injected element. */
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "<1>"));
    assert_says(html, "<tr data-scope=\"name:&lt;script&gt;alert(1)&lt;/script&gt;\"><td "
                      "data-fig=\"name\">&lt;script&gt;alert(1)&lt;/script&gt;</td>");
    assert_says(html, "<title>stampede run r&lt;1&gt;&amp;</title>");
    assert_says(html, "content=\"default-src 'none'; style-src 'unsafe-inline'\"");
    assert_null(strstr(html, "http://"));
    assert_null(strstr(html, "https://"));
    free(html);
}

static void test_html_report_reads_strictly(void **state)
{
    (void)state;
    char err[512];
    /* A second without p99_ms, on the file's line 6. */
    cJSON *series = series_of(3, "");
    cJSON_DeleteItemFromObject(cJSON_GetArrayItem(series, 1), "p99_ms");
    assert_null(report_of(summary_text, series, ST_EINVAL, err, sizeof(err)));
    assert_string_equal(err, "ts.jsonl:6: key \"p99_ms\": missing");

    series = series_of(2, ",\"by_name\": 3");
    assert_null(report_of(summary_text, series, ST_EINVAL, err, sizeof(err)));
    assert_string_equal(err, "ts.jsonl:5: key \"by_name\": expected an object, not a number");

    series = series_of(2, "");
    cJSON_ReplaceItemInObject(cJSON_GetArrayItem(series, 1), "t", cJSON_CreateNumber(0));
    assert_null(report_of(summary_text, series, ST_EINVAL, err, sizeof(err)));
    assert_string_equal(err, "ts.jsonl:6: key \"t\": second 0 does not come after second 0");

    series = series_of(1, "");
    cJSON_ReplaceItemInObject(cJSON_GetArrayItem(series, 0), "ok", cJSON_CreateNumber(2.5));
    assert_null(report_of(summary_text, series, ST_EINVAL, err, sizeof(err)));
    assert_string_equal(err, "ts.jsonl:5: key \"ok\": expected a whole number, not 2.5");

    struct {
        const char *from, *to, *want;
    } cases[] = {
        {"\"total\": 1200", "\"total\": \"1200\"",
         "s.json: key \"requests.total\": expected a number, not a string"},
        {"\"requests\": {\"total\": 1200,", "\"requests\": {",
         "s.json: key \"requests.total\": missing"},
        {"\"bytes\": {\"in\": 154596", "\"bytes\": {\"in\": -1",
         "s.json: key \"bytes.in\": expected 0 or more, not -1"},
        {"\"result\": \"pass\"", "\"result\": \"ok\"",
         "s.json: key \"thresholds[0].result\": expected \"pass\" or \"fail\", not \"ok\""},
        {"\"closed_loop\": false", "\"closed_loop\": 0",
         "s.json: key \"closed_loop\": expected true or false, not a number"},
        {"[2048, 2303, 5]", "[2048, 2000, 5]",
         "s.json: key \"latency_histogram.corrected\": bin 1 is not [low, high, count]"},
        {"\"p99\": 12.5", "\"p99\": null", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[sizeof(summary_text) + 64];
        const char *at = strstr(summary_text, cases[i].from);
        assert_non_null(at);
        snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - summary_text), summary_text,
                 cases[i].to, at + strlen(cases[i].from));
        char *html = report_of(text, series_of(1, ""), cases[i].want ? ST_EINVAL : 0, err,
                               sizeof(err));
        if (cases[i].want) {
            assert_null(html);
            assert_says(err, cases[i].want);
        } else {
            /* A null figure is "no value", written as such. */
            assert_says(html, "<td data-fig=\"latency_ms.p99\" data-value=\"null\">&#8211;</td>");
            free(html);
        }
    }
}

static void test_html_report_histogram_bins_are_exact(void **state)
{
    (void)state;
    st_stats s;
    assert_int_equal(st_stats_init(&s), 0);
    st_hist_record(s.lat, 3);
    st_hist_record_n(s.lat, 100, 2);
    st_hist_record(s.lat, 103);
    st_hist_record(s.lat, 104);
    st_hist_record_n(s.lat, 5000, 2);
    st_hist_record(s.lat, 5100);
    st_hist_record(s.lat_raw, 7);
    cJSON *h = st_html_histogram_json(&s);
    assert_non_null(h);
    char *text = cJSON_PrintUnformatted(h);
    /* An eighth of each power of two: 96-103, 104-111 (64..127 in steps of 8), 4608-5119. */
    assert_string_equal(text, "{\"unit\":\"us\",\"corrected\":[[3,3,1],[96,103,3],[104,111,1],"
                              "[4608,5119,3]],\"uncorrected\":[[7,7,1]]}");
    free(text);
    cJSON_Delete(h);
    st_stats_fini(&s);
}

static void test_html_report_second_line(void **state)
{
    (void)state;
    st_stats s;
    assert_int_equal(st_stats_init(&s), 0);
    s.c.sent = 5;
    s.c.ok = 3;
    s.c.http_5xx = 1;
    s.c.err_timeout = 1;
    st_hist_record_n(s.lat, 2000, 3);
    st_hist_record_n(s.lat_raw, 1500, 3);
    st_report_second row;
    st_report_second_of(&row, 7, 5, &s, 2);
    row.latency_with_timeouts = row.latency;
    char line[ST_OUTPUT_SECOND_LINE_MAX];
    assert_int_equal(st_output_second_line(line, sizeof(line), &row), 0);
    assert_string_equal(line,
                        "{\"t\":7,\"target_rps\":5.000,\"achieved_rps\":5,\"sent\":5,\"ok\":3,"
                        "\"failed\":2,\"p50_ms\":2.000,\"p90_ms\":2.000,\"p99_ms\":2.000,"
                        "\"max_ms\":2.000,\"agents\":2,\"timeouts\":1,"
                        "\"p50_with_timeouts_ms\":2.000,\"p99_with_timeouts_ms\":2.000,"
                        "\"p50_uncorrected_ms\":1.500,\"p90_uncorrected_ms\":1.500,"
                        "\"p99_uncorrected_ms\":1.500,\"errors\":{\"http_4xx\":0,\"http_5xx\":1,"
                        "\"connect\":0,\"timeout\":1,\"other\":0,\"local\":0,\"tls\":0,\"cert\":0}}");
    assert_int_equal(st_output_second_line(line, 40, &row), ST_ERANGE);
    st_stats_fini(&s);
}

static void test_md_summary_escapes_and_tabulates(void **state)
{
    (void)state;
    st_report_agent agent = {.id = 1, .name = "a|b<i>", .host = "h_1", .error = "",
                             .lost_reason = "", .state = ST_REPORT_AGENT_DONE};
    agent.counts.ok = 9;
    agent.counts.http_5xx = 1;
    st_report_threshold th[2] = {
        {.expression = "p(99)<250ms", .unit = "ms", .op = "<", .limit = 250, .have_value = true,
         .observed = 12.345, .pass = true},
        {.expression = "error_rate<1%", .unit = "ratio", .op = "<", .limit = 0.01,
         .have_value = true, .observed = 0.1, .pass = false, .aborted = true, .aborted_at = 2},
    };
    st_report r = {.run_id = "r-1", .status = ST_REPORT_COMPLETED, .error = "",
                   .duration_s = 2, .agents = &agent, .n_agents = 1, .thresholds = th,
                   .n_thresholds = 2, .have_start_skew = true, .start_skew_ms = 0.25};
    r.plan.duration_s = 2;
    r.plan.average_rps = 5;
    r.total.c = agent.counts;
    r.total.c.sent = 10;
    r.latency = (st_report_latency){.count = 9, .p50_us = 1000, .p90_us = 2000, .p99_us = 3000,
                                    .p999_us = 4000, .max_us = 5000, .mean_us = 1500};
    char *md = st_md_summary_text(&r);
    assert_non_null(md);
    assert_says(md, "## stampede run r\\-1: \u274c thresholds failed\n");
    assert_says(md, "| requests | 10 completed, 9 ok, 1 failed (10.0000%); 10 sent, 0 late, 0 "
                    "dropped |\n");
    assert_says(md, "| latency p50 / p90 / p99 / p99.9 / max | 1.000 / 2.000 / 3.000 / 4.000 / "
                    "5.000 ms (mean 1.500) |\n");
    assert_says(md, "| uncorrected | no responses |\n");
    assert_says(md, "| agents | 1, start skew 0.250 ms |\n");
    assert_says(md, "| \u2705 pass | p\\(99\\)\\<250ms | 12.345 ms | \\< 250.000 ms |\n");
    assert_says(md, "| \u274c **fail** | error\\_rate\\<1\\% | 10.0000% (stopped the run at 2s) | "
                    "\\< 1.0000% |\n");
    assert_says(md, "| a\\|b\\<i\\> | h\\_1 | done | 10 | 9 | 1 |  |\n");
    assert_null(strstr(md, "<i>"));
    free(md);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_html_report_figures_are_in_the_dom),
        cmocka_unit_test(test_html_report_escapes_names),
        cmocka_unit_test(test_html_report_reads_strictly),
        cmocka_unit_test(test_html_report_histogram_bins_are_exact),
        cmocka_unit_test(test_html_report_second_line),
        cmocka_unit_test(test_md_summary_escapes_and_tabulates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
