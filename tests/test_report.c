#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "json_get.h"

#include "clock.h"
#include "coord.h"
#include "error.h"
#include "hist.h"
#include "log.h"
#include "plan.h"
#include "report.h"
#include "stats.h"
#include "summary.h"

/*
 * The typed report and its summary JSON: the object --summary writes and SQS carries must keep
 * its keys, their order and their number format (docs/results-schema.md, README "Outputs").
 */

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    assert_non_null(d);
    return d;
}

static void agent_row(st_report_agent *a, uint32_t id, const char *name, const char *task,
                      const char *az, bool lost)
{
    memset(a, 0, sizeof(*a));
    a->id = id;
    a->name = xstrdup(name);
    a->host = xstrdup("host-a");
    a->version = xstrdup("0.1.0");
    a->task = xstrdup(task);
    a->availability_zone = xstrdup(az);
    a->error = xstrdup("");
    a->threads = 2;
    a->weight = 2;
    a->share_rps = lost ? 0 : 333.3333333333333;
    a->counts.sent = 1000 + id;
    a->counts.ok = 990;
    a->counts.http_5xx = 3;
    a->counts.err_timeout = 1;
    a->lost = lost;
    a->state = lost ? ST_REPORT_AGENT_RUNNING : ST_REPORT_AGENT_DONE;
    a->clock_offset_ms = -0.123456;
    a->clock_rtt_ms = 0.0421;
}

/* A report as the end of a 10 s, 1000 rps run over two agents (one lost) would give. */
static void sample(st_report *r, st_report_status status)
{
    memset(r, 0, sizeof(*r));
    r->run_id = xstrdup("r-20240101-abc");
    r->status = status;
    r->error = xstrdup(status == ST_REPORT_FAILED ? "agent 2 \"b\" cannot run the plan: x" : "");
    r->plan.engine = xstrdup("fast");
    r->plan.duration_s = 10;
    r->plan.requests = 10000;
    r->plan.average_rps = 1000;
    r->plan.expected_agents = 2;
    r->plan.connections = 64;
    r->plan.late_ms = 10;
    r->plan.send_window_s = 0.001;
    r->plan.streams = 1;
    r->duration_s = 9.75;
    r->target_requests = 9750;
    assert_int_equal(st_stats_init(&r->total), 0);
    r->total.c.sent = 9800;
    r->total.c.ok = 9700;
    r->total.c.http_4xx = 7;
    r->total.c.http_5xx = 5;
    r->total.c.err_connect = 2;
    r->total.c.err_timeout = 1;
    r->total.c.err_other = 4;
    r->total.c.late = 12;
    r->total.c.dropped = 3;
    r->total.c.bytes_in = 123456789;
    r->total.c.bytes_out = 9876543;
    for (uint64_t v = 100; v < 9800; v += 7) {
        st_hist_record(r->total.lat, v + v / 3);
        st_hist_record(r->total.lat_raw, v);
    }
    st_report_latency_of(&r->latency, r->total.lat);
    st_report_latency_of(&r->latency_uncorrected, r->total.lat_raw);
    r->have_start_skew = true;
    r->start_skew_ms = 0.078125;
    r->agents = calloc(2, sizeof(*r->agents));
    assert_non_null(r->agents);
    agent_row(&r->agents[0], 1, "a", "arn:aws:ecs:eu-west-1:1:task/c/1", "eu-west-1a", false);
    agent_row(&r->agents[1], 2, "b", "", "", true);
    r->n_agents = 2;
    r->agents_lost = 1;
    r->late_records = 2;
    r->duplicate_records = 5;
    r->malformed_messages = 1;
}

/* The summary of sample() as the coordinator wrote it before the report existed (its
 * st_summary_json, then the core's keys, then the status cmd_run added), unformatted, with the
 * plan block that came later after run_id. */
#define SAMPLE_HEAD                                                                                \
    "{\"requests\":{\"total\":9719,\"ok\":9700,\"failed\":19,\"sent\":9800,\"late\":12,"           \
    "\"dropped\":3},\"rate\":{\"target_rps\":1000,\"achieved_rps\":996.82051282051282},"           \
    "\"errors\":{\"http_4xx\":7,\"http_5xx\":5,\"connect\":2,\"timeout\":1,\"other\":4,"          \
    "\"local\":0,\"tls\":0,\"cert\":0},"                                                                            \
    "\"bytes\":{\"in\":123456789,\"out\":9876543},\"duration_s\":9.75,\"closed_loop\":false,"      \
    "\"latency_ms\":{\"min\":0.133,\"mean\":6.596,\"p50\":6.595,\"p90\":11.775,\"p99\":12.943,"    \
    "\"p999\":13.055,\"max\":13.06},\"latency_uncorrected_ms\":{\"min\":0.1,\"mean\":4.948,"       \
    "\"p50\":4.947,\"p90\":8.831,\"p99\":9.711,\"p999\":9.791,\"max\":9.795},"                     \
    "\"run_id\":\"r-20240101-abc\","                                                              \
    "\"plan\":{\"engine\":\"fast\",\"duration_s\":10,\"requests\":10000,\"average_rps\":1000,"    \
    "\"send_window_ms\":1,\"agents\":2,\"threads_per_agent\":null,\"connections_per_agent\":64,"   \
    "\"timeout_ms\":0,\"late_ms\":10,\"http2\":false,\"streams\":1,\"insecure\":false},"
#define SAMPLE_AGENTS                                                                              \
    "\"agents\":[{\"id\":1,\"name\":\"a\",\"host\":\"host-a\","                                    \
    "\"task\":\"arn:aws:ecs:eu-west-1:1:task/c/1\",\"availability_zone\":\"eu-west-1a\","          \
    "\"share_rps\":333.33333333333331,\"requests\":994,\"ok\":990,\"failed\":4,\"lost\":false,"    \
    "\"state\":\"done\",\"clock_offset_ms\":-0.123456,\"clock_rtt_ms\":0.0421},"                   \
    "{\"id\":2,\"name\":\"b\",\"host\":\"host-a\",\"share_rps\":0,\"requests\":994,\"ok\":990,"    \
    "\"failed\":4,\"lost\":true,\"state\":\"running\",\"clock_offset_ms\":-0.123456,"              \
    "\"clock_rtt_ms\":0.0421}],\"late_records\":2,\"duplicate_records\":5,\"malformed_messages\":" \
    "1"

static void assert_json_text(const cJSON *j, const char *want)
{
    char *got = cJSON_PrintUnformatted(j);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void assert_prints_same(const cJSON *got, const cJSON *want)
{
    char *g = cJSON_Print(got), *w = cJSON_Print(want);
    assert_non_null(g);
    assert_non_null(w);
    assert_string_equal(g, w);
    free(g);
    free(w);
}

/* The report's JSON, which must be made (the caller deletes it). */
static cJSON *report_json(const st_report *r)
{
    cJSON *j = st_report_json(r);
    assert_non_null(j);
    return j;
}

static void test_report_json_keeps_the_summary_layout(void **state)
{
    (void)state;
    static const st_report_status statuses[] = {ST_REPORT_COMPLETED, ST_REPORT_STOPPED,
                                                ST_REPORT_FAILED};
    static const char *tails[] = {
        ",\"status\":\"completed\"}",
        ",\"status\":\"stopped\"}",
        ",\"status\":\"failed\",\"error\":\"agent 2 \\\"b\\\" cannot run the plan: x\"}",
    };
    for (size_t k = 0; k < 3; k++) {
        st_report r;
        sample(&r, statuses[k]);
        cJSON *got = report_json(&r);
        char want[4096];
        snprintf(want, sizeof(want), "%s%s%s%s", SAMPLE_HEAD, "\"start_skew_ms\":0.078125,",
                 SAMPLE_AGENTS, tails[k]);
        assert_json_text(got, want);
        cJSON_Delete(got);
        st_report_fini(&r);
    }
}

/* The top-level keys in the order the file has always had them. */
static void test_report_json_key_order(void **state)
{
    (void)state;
    static const char *keys[] = {
        "requests",
        "rate",
        "errors",
        "bytes",
        "duration_s",
        "closed_loop",
        "latency_ms",
        "latency_uncorrected_ms",
        "run_id",
        "plan",
        "start_skew_ms",
        "agents",
        "late_records",
        "duplicate_records",
        "malformed_messages",
        "status",
        "error",
    };
    st_report r;
    sample(&r, ST_REPORT_FAILED);
    cJSON *j = report_json(&r);
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        assert_true(n < sizeof(keys) / sizeof(keys[0]));
        assert_string_equal(it->string, keys[n]);
        n++;
    }
    assert_int_equal(n, sizeof(keys) / sizeof(keys[0]));
    cJSON_Delete(j);
    st_report_fini(&r);
}

/* The numbers come from the typed fields: totals, rates, latency in ms, agents' rows. */
static void test_report_json_values(void **state)
{
    (void)state;
    st_report r;
    sample(&r, ST_REPORT_COMPLETED);
    cJSON *j = report_json(&r);
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(j, "requests");
    assert_true(num(req, "total") == 9700 + 7 + 5 + 2 + 1 + 4);
    assert_true(num(req, "failed") == 19);
    assert_true(num(req, "late") == 12);
    const cJSON *rate = cJSON_GetObjectItemCaseSensitive(j, "rate");
    assert_true(fabs(num(rate, "target_rps") - 1000) < 1e-9);
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(j, "latency_ms");
    assert_true(num(lat, "p99") == (double)r.latency.p99_us / 1000.0);
    assert_true(num(lat, "max") == (double)r.latency.max_us / 1000.0);
    const cJSON *raw = cJSON_GetObjectItemCaseSensitive(j, "latency_uncorrected_ms");
    assert_true(num(raw, "p50") == (double)r.latency_uncorrected.p50_us / 1000.0);
    assert_true(num(j, "start_skew_ms") == 0.078125);
    const cJSON *agents = cJSON_GetObjectItemCaseSensitive(j, "agents");
    assert_int_equal(cJSON_GetArraySize(agents), 2);
    const cJSON *a0 = cJSON_GetArrayItem(agents, 0), *a1 = cJSON_GetArrayItem(agents, 1);
    assert_string_equal(str(a0, "task"), "arn:aws:ecs:eu-west-1:1:task/c/1");
    assert_string_equal(str(a0, "availability_zone"), "eu-west-1a");
    assert_null(cJSON_GetObjectItemCaseSensitive(a1, "task"));
    assert_null(cJSON_GetObjectItemCaseSensitive(a1, "availability_zone"));
    assert_true(num(a0, "requests") == 994);
    assert_true(num(a0, "failed") == 4);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a1, "lost")));
    assert_string_equal(str(a1, "state"), "running");
    assert_string_equal(str(a0, "state"), "done");
    assert_true(num(a1, "share_rps") == 0);
    assert_true(num(j, "duplicate_records") == 5);
    assert_string_equal(str(j, "status"), "completed");
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "error"));
    cJSON_Delete(j);
    st_report_fini(&r);
}

/* A report taken while running has no status; one of a run that never started has a null skew
 * and the reason. */
static void test_report_json_running_and_failed_before_start(void **state)
{
    static const char tails_failed[] =
        ",\"status\":\"failed\",\"error\":\"agent 2 \\\"b\\\" cannot run the plan: x\"}";
    (void)state;
    st_report r;
    sample(&r, ST_REPORT_RUNNING);
    cJSON *j = report_json(&r);
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "status"));
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "error"));
    cJSON_Delete(j);
    st_report_fini(&r);

    sample(&r, ST_REPORT_FAILED);
    r.have_start_skew = false;
    j = report_json(&r);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "start_skew_ms")));
    assert_string_equal(str(j, "status"), "failed");
    assert_string_equal(str(j, "error"), "agent 2 \"b\" cannot run the plan: x");
    char want[4096];
    snprintf(want, sizeof(want), "%s%s%s%s", SAMPLE_HEAD, "\"start_skew_ms\":null,", SAMPLE_AGENTS,
             tails_failed);
    assert_json_text(j, want);
    cJSON_Delete(j);
    st_report_fini(&r);
    st_report_fini(&r); /* zeroed: a no-op */
    st_report_fini(NULL);
}

static void test_report_second_of(void **state)
{
    (void)state;
    st_stats s;
    assert_int_equal(st_stats_init(&s), 0);
    s.c.sent = 10;
    s.c.ok = 8;
    s.c.http_4xx = 2;
    s.c.inflight = 3;
    for (uint64_t v = 1; v <= 100; v++) {
        st_hist_record(s.lat, 1000 * v);
        st_hist_record(s.lat_raw, 10 * v);
    }
    st_report_second row;
    st_report_second_of(&row, 7, 99.5, &s, 3);
    assert_int_equal(row.second, 7);
    assert_true(row.target_rps == 99.5);
    assert_int_equal(row.agents, 3);
    assert_memory_equal(&row.counts, &s.c, sizeof(s.c));
    assert_int_equal(row.latency.count, 100);
    assert_int_equal(row.latency.p50_us, st_hist_percentile(s.lat, 50));
    assert_int_equal(row.latency.p90_us, st_hist_percentile(s.lat, 90));
    assert_int_equal(row.latency.p99_us, st_hist_percentile(s.lat, 99));
    assert_int_equal(row.latency.p999_us, st_hist_percentile(s.lat, 99.9));
    assert_int_equal(row.latency.min_us, 1000);
    assert_int_equal(row.latency.max_us, 100000);
    assert_true(row.latency.mean_us == st_hist_mean(s.lat));
    assert_int_equal(row.latency_uncorrected.max_us, 1000);
    assert_int_equal(row.latency_uncorrected.min_us, 10);
    st_stats_fini(&s);

    st_report_latency empty;
    st_hist *h;
    assert_int_equal(st_hist_new(&h), 0);
    st_report_latency_of(&empty, h);
    assert_int_equal(empty.count, 0);
    assert_int_equal(empty.p99_us, 0);
    assert_int_equal(empty.max_us, 0);
    st_hist_free(h);
}

/* A row as a steady second of a run at rate_rps gives it: the merged stats of that many
 * responses of 1 to 5 ms (one in fifty a 5xx), then the row of them. */
static void steady_row(st_report_second *row, uint32_t second, uint64_t rate_rps, uint64_t seed)
{
    st_stats s;
    assert_int_equal(st_stats_init(&s), 0);
    for (uint64_t i = 0; i < rate_rps; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t v = 1000 + (seed >> 33) % 4000;
        st_hist_record(s.lat, v + 40);
        st_hist_record(s.lat_raw, v);
        if (i % 50 == 49) {
            s.c.http_5xx++;
        } else {
            s.c.ok++;
        }
    }
    s.c.sent = rate_rps;
    s.c.bytes_in = 180 * rate_rps;
    s.c.bytes_out = 95 * rate_rps;
    s.c.inflight = 4;
    memset(row, 0, sizeof(*row)); /* padding too: rows are compared byte for byte */
    st_report_second_of(row, second, (double)rate_rps, &s, 10);
    st_stats_fini(&s);
}

/* The series tests' fixture: an empty series in *state. */
static int series_new(void **state)
{
    st_report_series *ser;
    if (st_report_series_new(&ser)) {
        return -1;
    }
    *state = ser;
    return 0;
}

static int series_free(void **state)
{
    st_report_series_free(*state);
    return 0;
}

/* Appends rows[0..n) and checks that the series gives them back exactly. */
static void assert_series_keeps(st_report_series *ser, const st_report_second *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(st_report_series_append(ser, &rows[i]), 0);
    }
    assert_int_equal(st_report_series_count(ser), n);
    st_report_second *back = NULL;
    assert_int_equal(st_report_series_rows(ser, &back), 0);
    assert_non_null(back);
    for (size_t i = 0; i < n; i++) {
        assert_memory_equal(&back[i], &rows[i], sizeof(rows[i]));
    }
    free(back);
}

/* Every field comes back as it was: the largest and smallest values, doubles bit for bit, and
 * the view with timeouts whether or not it equals the plain one. */
static void test_report_series_keeps_every_row_exactly(void **state)
{
    st_report_series *ser = *state;
    st_report_second *none = (st_report_second *)1;
    assert_int_equal(st_report_series_rows(ser, &none), 0);
    assert_null(none);
    assert_int_equal(st_report_series_count(ser), 0);
    assert_int_equal(st_report_series_bytes(ser), 0);

    st_report_second rows[5];
    memset(rows, 0, sizeof(rows));
    steady_row(&rows[0], 0, 1000, 1);
    /* Everything at its largest. */
    rows[1].second = UINT32_MAX;
    rows[1].target_rps = -0.0;
    rows[1].agents = INT32_MIN;
    memset(&rows[1].counts, 0xff, sizeof(rows[1].counts));
    memset(&rows[1].latency, 0xff, sizeof(rows[1].latency)); /* mean: a NaN */
    memset(&rows[1].latency_uncorrected, 0xff, sizeof(rows[1].latency_uncorrected));
    rows[1].latency_with_timeouts = rows[1].latency;
    rows[1].latency_with_timeouts.p99_us = 0;
    /* All zero: an empty second after the end. */
    rows[2].second = 3;
    /* Timeouts: the view with them differs from the plain one. */
    steady_row(&rows[3], 4, 200, 2);
    rows[3].counts.err_timeout = 7;
    rows[3].latency_with_timeouts.count = rows[3].latency.count + 7;
    rows[3].latency_with_timeouts.max_us = 500000;
    rows[3].latency_with_timeouts.mean_us = 1e300;
    rows[4].second = 5;
    rows[4].agents = INT32_MAX;
    rows[4].target_rps = 1.0 / 3.0;
    rows[4].counts.bytes_in = (1ULL << 63) + 1;
    assert_series_keeps(ser, rows, 5);
    assert_int_equal(st_report_series_bytes(ser), ST_REPORT_SERIES_CHUNK);
    st_report_series_free(NULL); /* a no-op */
}

/* A long run's rows span chunks: every one comes back, in order, and the largest rows pack to
 * the documented bound exactly. */
static void test_report_series_spans_chunks(void **state)
{
    st_report_series *ser = *state;
    size_t n = 3 * ST_REPORT_SERIES_CHUNK / ST_REPORT_SERIES_ROW_MAX + 5;
    st_report_second *rows = calloc(n, sizeof(*rows));
    assert_non_null(rows);
    for (size_t i = 0; i < n; i++) {
        rows[i].second = UINT32_MAX - (uint32_t)i;
        rows[i].target_rps = (double)i / 7;
        rows[i].agents = INT32_MIN + (int)i;
        memset(&rows[i].counts, 0xff, sizeof(rows[i].counts));
        memset(&rows[i].latency, 0xff, sizeof(rows[i].latency));
        memset(&rows[i].latency_uncorrected, 0xfe, sizeof(rows[i].latency_uncorrected));
        memset(&rows[i].latency_with_timeouts, 0xfd, sizeof(rows[i].latency_with_timeouts));
    }
    assert_series_keeps(ser, rows, n);
    assert_int_equal(st_report_series_packed(ser), n * ST_REPORT_SERIES_ROW_MAX);
    assert_true(st_report_series_bytes(ser) >= 4 * (size_t)ST_REPORT_SERIES_CHUNK);
    assert_true(st_report_series_bytes(ser) <= 5 * (size_t)ST_REPORT_SERIES_CHUNK);
    free(rows);
}

/* What a second of a steady run costs the report: about 75 bytes, not the 320 of its struct,
 * and no copies as the series grows (an hour at 1000 rps). */
static void test_report_series_an_hour_is_small(void **state)
{
    st_report_series *ser = *state;
    st_report_second row;
    steady_row(&row, 0, 1000, 3);
    for (uint32_t k = 0; k < 3600; k++) {
        row.second = k;
        assert_int_equal(st_report_series_append(ser, &row), 0);
    }
    size_t packed = st_report_series_packed(ser);
    double per_row = (double)packed / 3600;
    print_message("a steady second at 1000 rps packs to %.1f bytes\n", per_row);
    assert_true(per_row <= 96);
    assert_true(sizeof(st_report_second) >= 3 * per_row);
    /* Held: the packed rows, rounded up to a chunk (and up to a row's room at each one's end). */
    assert_true(st_report_series_bytes(ser) <= packed + 2 * ST_REPORT_SERIES_CHUNK);
    st_report_second *back;
    assert_int_equal(st_report_series_rows(ser, &back), 0);
    for (uint32_t k = 0; k < 3600; k++) {
        row.second = k;
        assert_memory_equal(&back[k], &row, sizeof(row));
    }
    free(back);
}

/* A timed-out request counts at its timeout in the with-timeouts view, exactly: the merged
 * histogram plus the timeout count. */
static void test_report_latency_with_timeouts_counts_each_at_its_timeout(void **state)
{
    (void)state;
    st_hist *h;
    assert_int_equal(st_hist_new(&h), 0);
    st_hist_record_n(h, 1000, 90);
    st_report_latency plain, t;
    st_report_latency_of(&plain, h);
    assert_int_equal(plain.p99_us, 1000);
    assert_int_equal(st_report_latency_with_timeouts(&t, h, 10, 500), 0);
    assert_int_equal(t.count, 100);
    assert_int_equal(t.min_us, 1000);
    assert_int_equal(t.p50_us, 1000);
    assert_int_equal(t.p90_us, 1000);
    assert_int_equal(t.p99_us, 500000);
    assert_int_equal(t.max_us, 500000);
    assert_true(t.mean_us == (90.0 * 1000 + 10.0 * 500000) / 100);
    /* h itself is unchanged. */
    assert_int_equal(st_hist_count(h), 90);
    /* Every request timed out: no response, and a second that was anything but fast. */
    st_hist_reset(h);
    st_report_latency_of(&plain, h);
    assert_int_equal(plain.count, 0);
    assert_int_equal(st_report_latency_with_timeouts(&t, h, 20, 500), 0);
    assert_int_equal(t.count, 20);
    assert_int_equal(t.min_us, 500000);
    assert_int_equal(t.p50_us, 500000);
    assert_int_equal(t.p99_us, 500000);
    /* Nothing at all. */
    assert_int_equal(st_report_latency_with_timeouts(&t, h, 0, 500), 0);
    assert_int_equal(t.count, 0);
    st_hist_free(h);
}

/* A report whose every request timed out: null latency figures, never zeros, and the view with
 * the timeouts right after the uncorrected one. */
static void test_report_json_no_responses_are_null(void **state)
{
    (void)state;
    st_report r;
    sample(&r, ST_REPORT_COMPLETED);
    st_hist_reset(r.total.lat);
    st_hist_reset(r.total.lat_raw);
    memset(&r.total.c, 0, sizeof(r.total.c));
    r.total.c.sent = 50;
    r.total.c.err_timeout = 50;
    r.plan.timeout_ms = 500;
    cJSON *j = report_json(&r);
    static const char *const keys[] = {"min", "mean", "p50", "p90", "p99", "p999", "max"};
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(j, "latency_ms");
    const cJSON *raw = cJSON_GetObjectItemCaseSensitive(j, "latency_uncorrected_ms");
    const cJSON *tmo = cJSON_GetObjectItemCaseSensitive(j, "latency_with_timeouts_ms");
    assert_non_null(tmo);
    assert_ptr_equal(raw->next, tmo);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(lat, keys[i])));
        assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(raw, keys[i])));
        assert_true(num(tmo, keys[i]) == 500);
    }
    cJSON_Delete(j);
    /* Some answers, some timeouts. */
    st_hist_record_n(r.total.lat, 2000, 950);
    st_hist_record_n(r.total.lat_raw, 1900, 950);
    r.total.c.sent = 1000;
    r.total.c.ok = 950;
    j = report_json(&r);
    lat = cJSON_GetObjectItemCaseSensitive(j, "latency_ms");
    tmo = cJSON_GetObjectItemCaseSensitive(j, "latency_with_timeouts_ms");
    assert_true(num(lat, "p99") == 2);
    assert_true(num(tmo, "p90") == 2);
    assert_true(num(tmo, "p99") == 500);
    assert_true(num(tmo, "min") == 2);
    cJSON_Delete(j);
    st_report_fini(&r);
}

/* A degraded run: its status, the seconds that lack some agent, and each lost agent's state and
 * reason. */
static void test_report_json_degraded(void **state)
{
    (void)state;
    st_report r;
    sample(&r, ST_REPORT_DEGRADED);
    r.agents[1].state = ST_REPORT_AGENT_LOST;
    r.agents[1].lost_reason = xstrdup("silent");
    r.incomplete_seconds = calloc(3, sizeof(uint32_t));
    assert_non_null(r.incomplete_seconds);
    for (uint32_t k = 0; k < 3; k++) {
        r.incomplete_seconds[k] = 3 + k;
    }
    r.n_incomplete = 3;
    cJSON *j = report_json(&r);
    char *text = cJSON_PrintUnformatted(j);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"lost\":true,\"state\":\"lost\",\"reason\":\"silent\","));
    assert_non_null(strstr(text, "\"malformed_messages\":1,\"incomplete_seconds\":[3,4,5],"
                                 "\"status\":\"degraded\"}"));
    free(text);
    cJSON_Delete(j);
    st_report_fini(&r);
    /* Degraded with no incomplete second (an agent lost after its share ended): an empty list. */
    sample(&r, ST_REPORT_DEGRADED);
    j = st_report_json(&r);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "incomplete_seconds")),
                     0);
    cJSON_Delete(j);
    st_report_fini(&r);
}

/* The terminal says "no responses" where it printed p50 0.000 ms p99 0.000 ms. */
static void test_report_no_responses_on_the_terminal(void **state)
{
    (void)state;
    st_stats s;
    assert_int_equal(st_stats_init(&s), 0);
    char with[320], without[320];
    st_hist_record_n(s.lat, 2500, 10);
    s.c.sent = s.c.ok = 10;
    st_progress_format(with, sizeof(with), 3, 10, &s, 2);
    assert_non_null(strstr(with, "p50    2.500 ms  p99    2.500 ms"));
    st_stats_reset(&s);
    s.c.sent = s.c.err_timeout = 10;
    st_progress_format(without, sizeof(without), 3, 10, &s, 2);
    assert_non_null(strstr(without, "no responses"));
    assert_null(strstr(without, "0.000"));
    /* The columns after it stay where they were. */
    assert_int_equal(strstr(without, "inflight") - without, strstr(with, "inflight") - with);

    /* The final table: no responses, and the view with the timeouts. */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    st_summary sum = {.total = &s, .duration_s = 1, .target_requests = 10, .timeout_ms = 500};
    st_summary_print(f, &sum);
    fclose(f);
    assert_non_null(strstr(buf, "latency (corrected)    no responses\n"));
    assert_non_null(strstr(buf, "latency (uncorrected)  no responses\n"));
    assert_non_null(strstr(buf, "latency (w/ timeouts)  p50   500.000  p90   500.000  p99   "
                                "500.000"));
    assert_non_null(strstr(buf, "(10 timeouts, each counted at its timeout of 500 ms: a lower "
                                "bound)"));
    free(buf);
    st_stats_fini(&s);
}

static void test_report_names(void **state)
{
    (void)state;
    assert_string_equal(st_report_status_name(ST_REPORT_RUNNING), "running");
    assert_string_equal(st_report_status_name(ST_REPORT_COMPLETED), "completed");
    assert_string_equal(st_report_status_name(ST_REPORT_STOPPED), "stopped");
    assert_string_equal(st_report_status_name(ST_REPORT_FAILED), "failed");
    assert_string_equal(st_report_status_name(ST_REPORT_DEGRADED), "degraded");
    assert_string_equal(st_report_agent_state_name(ST_REPORT_AGENT_LOST), "lost");
    assert_string_equal(st_report_agent_state_name(ST_REPORT_AGENT_IDLE), "idle");
    assert_string_equal(st_report_agent_state_name(ST_REPORT_AGENT_READY), "ready");
    assert_string_equal(st_report_agent_state_name(ST_REPORT_AGENT_DRAINING), "draining");
    assert_string_equal(st_report_agent_state_name(ST_REPORT_AGENT_FAILED), "failed");
    assert_string_equal(st_report_agent_state_name(ST_REPORT_AGENT_UNKNOWN), "unknown");
}

/* The core's report of a run that never got its agents: the plan, no agents, then the stop. */
static void test_report_from_core_before_start(void **state)
{
    (void)state;
    uint64_t now = 1000 * ST_NS_PER_S;
    st_clock clock = {st_clock_fake_now, &now};
    st_plan plan;
    st_plan_init(&plan);
    const char *json = "{\"url\": \"http://127.0.0.1:9/\", \"rate\": 40, \"duration\": 5}";
    char err[256] = "";
    assert_int_equal(st_plan_parse(&plan, json, strlen(json), "plan", err, sizeof(err)), 0);
    assert_int_equal(st_plan_finish(&plan, 1, err, sizeof(err)), 0);
    st_coord_cfg cfg;
    st_coord_cfg_defaults(&cfg);
    cfg.plan = &plan;
    cfg.run_id = "run-r";
    cfg.token = "t";
    cfg.expected_agents = 3;
    cfg.plan_threads = 2;
    cfg.clock = &clock;
    st_coord *c;
    assert_int_equal(st_coord_new(&c, &cfg), 0);

    st_report r;
    assert_int_equal(st_coord_report(c, &r), 0);
    assert_string_equal(r.run_id, "run-r");
    assert_int_equal(r.status, ST_REPORT_RUNNING);
    assert_string_equal(r.error, "");
    assert_string_equal(r.plan.engine, "auto");
    assert_false(r.plan.closed_loop);
    assert_true(fabs(r.plan.duration_s - 5) < 1e-9);
    assert_true(fabs(r.plan.requests - 200) < 1e-6);
    assert_true(fabs(r.plan.average_rps - 40) < 1e-6);
    assert_int_equal(r.plan.expected_agents, 3);
    assert_int_equal(r.plan.threads_per_agent, 2);
    assert_int_equal(r.n_agents, 0);
    assert_int_equal(r.n_seconds, 0);
    assert_false(r.have_start_skew);
    assert_int_equal(st_counts_done(&r.total.c), 0);
    st_report_fini(&r);

    st_coord_stop(c);
    assert_int_equal(st_coord_report(c, &r), 0);
    assert_int_equal(r.status, ST_REPORT_FAILED);
    assert_string_equal(r.error, st_coord_failure(c));
    assert_true(strlen(r.error) > 0);
    cJSON *j = st_report_json(&r);
    cJSON *s = st_coord_summary(c);
    assert_non_null(j);
    assert_non_null(s);
    assert_prints_same(s, j);
    assert_string_equal(str(j, "status"), "failed");
    cJSON_Delete(j);
    cJSON_Delete(s);
    st_report_fini(&r);
    st_coord_free(c);
    st_plan_fini(&plan);
}

int main(void)
{
    st_log_init("test_report", ST_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_json_keeps_the_summary_layout),
        cmocka_unit_test(test_report_json_key_order),
        cmocka_unit_test(test_report_json_values),
        cmocka_unit_test(test_report_json_running_and_failed_before_start),
        cmocka_unit_test(test_report_second_of),
        cmocka_unit_test_setup_teardown(test_report_series_keeps_every_row_exactly, series_new, series_free),
        cmocka_unit_test_setup_teardown(test_report_series_spans_chunks, series_new, series_free),
        cmocka_unit_test_setup_teardown(test_report_series_an_hour_is_small, series_new, series_free),
        cmocka_unit_test(test_report_latency_with_timeouts_counts_each_at_its_timeout),
        cmocka_unit_test(test_report_json_no_responses_are_null),
        cmocka_unit_test(test_report_no_responses_on_the_terminal),
        cmocka_unit_test(test_report_json_degraded),
        cmocka_unit_test(test_report_names),
        cmocka_unit_test(test_report_from_core_before_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
