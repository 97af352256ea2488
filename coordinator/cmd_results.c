/* stampede results: reads a run back from the DynamoDB table that stampede-sink writes. */
#include "aws.h"
#include "cmd_flags.h"
#include "ddb.h"
#include "commands.h"
#include "exit_code.h"
#include "html_report.h"
#include "log.h"
#include "output.h"
#include "result_item.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct run_data {
    st_result_msg *seconds;
    size_t n_seconds;
    size_t cap;
    st_result_msg summary;
    int have_summary;
    int64_t ttl;
} run_data;

static void usage(FILE *to)
{
    fprintf(to,
            "usage: stampede results RUN_ID --table NAME [--endpoint-url URL] [--region R] "
            "[--json] [--report FILE]\n\n"
            "Prints the summary and the per-second series of a run that stampede-sink stored,\n"
            "and checks the summary against percentiles recomputed from the stored histograms.\n"
            "--report FILE also writes the run's HTML report (as `stampede run --report`).\n"
            "Exit codes: 0 ok, 1 failure or a check that does not hold, 2 bad flags,\n"
            "3 credentials, 5 nothing stored for RUN_ID (or no such table).\n");
}

static void run_data_fini(run_data *r)
{
    for (size_t i = 0; i < r->n_seconds; i++) {
        st_result_msg_fini(&r->seconds[i]);
    }
    free(r->seconds);
    if (r->have_summary) {
        st_result_msg_fini(&r->summary);
    }
}

static int add_item(run_data *r, const cJSON *item)
{
    st_result_msg m;
    int64_t ttl = 0;
    char err[512];
    int rc = st_result_item_parse(item, &m, &ttl, err, sizeof(err));
    if (rc) {
        st_warn("results: skipping an item that does not follow the schema: %s", err);
        return rc == ST_ENOMEM ? rc : 0;
    }
    if (ttl > r->ttl) {
        r->ttl = ttl;
    }
    if (m.kind == ST_RESULT_SUMMARY) {
        if (r->have_summary) {
            st_result_msg_fini(&r->summary);
        }
        r->summary = m;
        r->have_summary = 1;
        return 0;
    }
    if (r->n_seconds == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        st_result_msg *s = realloc(r->seconds, cap * sizeof(*s));
        if (!s) {
            st_result_msg_fini(&m);
            return ST_ENOMEM;
        }
        r->seconds = s;
        r->cap = cap;
    }
    r->seconds[r->n_seconds++] = m;
    return 0;
}

static int add_item_cb(void *ctx, const cJSON *item)
{
    return add_item(ctx, item);
}

static int query_run(st_aws_client *c, const char *table, const char *run_id, run_data *r)
{
    st_aws_error err = {0};
    int rc = st_ddb_query(c, table, "testId", run_id, add_item_cb, r, &err);
    if (rc && rc != ST_ENOMEM && err.message[0]) {
        st_error("results: %s", err.message);
    }
    return rc;
}

typedef struct check {
    int compared;
    int mismatched;
    char lines[2048];
} check;

/* Compares one figure of the summary with what the stored seconds give; a figure the summary
 * does not have (an older or partial summary, null latencies) is not compared. */
static void check_value(check *ck, const char *what, const cJSON *summary_value, double stored,
                        double tolerance)
{
    if (!cJSON_IsNumber(summary_value)) {
        return;
    }
    ck->compared++;
    if (fabs(summary_value->valuedouble - stored) > tolerance) {
        ck->mismatched++;
        size_t len = strlen(ck->lines);
        snprintf(ck->lines + len, sizeof(ck->lines) - len,
                 "  %s: the summary says %.17g, the stored seconds give %.17g\n", what,
                 summary_value->valuedouble, stored);
    }
}

/* A latency object of the summary (milliseconds, README "Outputs") against a merged histogram. */
static void check_latency(check *ck, const cJSON *summary, const char *key, const st_hist *h)
{
    static const struct {
        const char *name;
        double p; /* < 0: min (-1), max (-2), mean (-3) */
    } figs[] = {{"min", -1}, {"mean", -3}, {"p50", 50}, {"p90", 90},
                {"p99", 99}, {"p999", 99.9}, {"max", -2}};
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(summary, key);
    for (size_t i = 0; i < sizeof(figs) / sizeof(figs[0]); i++) {
        double us = figs[i].p == -1   ? (double)st_hist_min(h)
                    : figs[i].p == -2 ? (double)st_hist_max(h)
                    : figs[i].p == -3 ? round(st_hist_mean(h))
                                      : (double)st_hist_percentile(h, figs[i].p);
        char what[64];
        snprintf(what, sizeof(what), "%s.%s", key, figs[i].name);
        /* The summary writes whole microseconds as milliseconds. */
        check_value(ck, what, cJSON_GetObjectItemCaseSensitive(lat, figs[i].name), us / 1000.0,
                    0.0005);
    }
}

/* Compares the summary's figures (the object `stampede run --summary` writes) with the merged
 * stored seconds: latency_ms and latency_uncorrected_ms, requests, errors and bytes. */
static void check_summary(const cJSON *summary, const st_stats *total, check *ck)
{
    check_latency(ck, summary, "latency_ms", total->lat);
    check_latency(ck, summary, "latency_uncorrected_ms", total->lat_raw);
    const st_counts *c = &total->c;
    static const char *const groups[] = {"requests", "errors", "bytes"};
    const struct {
        int group;
        const char *name;
        uint64_t value;
    } figs[] = {
        {0, "total", st_counts_done(c)}, {0, "ok", c->ok},
        {0, "failed", st_counts_failed(c)}, {0, "sent", c->sent},
        {0, "late", c->late},           {0, "dropped", c->dropped},
        {1, "http_4xx", c->http_4xx},   {1, "http_5xx", c->http_5xx},
        {1, "connect", c->err_connect}, {1, "timeout", c->err_timeout},
        {1, "other", c->err_other},     {1, "local", c->err_local},
        {2, "in", c->bytes_in},         {2, "out", c->bytes_out},
    };
    for (size_t i = 0; i < sizeof(figs) / sizeof(figs[0]); i++) {
        char what[64];
        snprintf(what, sizeof(what), "%s.%s", groups[figs[i].group], figs[i].name);
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(summary, groups[figs[i].group]);
        check_value(ck, what, cJSON_GetObjectItemCaseSensitive(g, figs[i].name),
                    (double)figs[i].value, 0.5);
    }
}

static double ms(uint64_t us)
{
    return (double)us / 1000.0;
}

static void print_text(const char *run_id, const char *table, const run_data *r,
                       const st_stats *total, const check *ck)
{
    printf("run %s in table %s: %zu second(s) stored", run_id, table, r->n_seconds);
    if (r->n_seconds) {
        printf(" (second %u to %u)", r->seconds[0].second, r->seconds[r->n_seconds - 1].second);
    }
    printf(", summary %s\n", r->have_summary ? "stored" : "missing");
    if (r->ttl > 0) {
        time_t t = (time_t)r->ttl;
        struct tm tm;
        char when[40];
        gmtime_r(&t, &tm);
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
        printf("kept until %s (ttl)\n", when);
    }
    if (r->have_summary) {
        char *text = cJSON_Print(r->summary.summary);
        printf("\nsummary:\n%s\n", text ? text : "(out of memory)");
        free(text);
    }
    printf("\n%6s %9s %9s %7s %9s %9s %9s %9s %9s %9s %6s\n", "second", "sent", "ok", "failed",
           "target/s", "done/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "agents");
    for (size_t i = 0; i < r->n_seconds; i++) {
        const st_result_msg *m = &r->seconds[i];
        const st_stats *s = &m->stats;
        printf("%6u %9llu %9llu %7llu %9.1f %9.1f %9.3f %9.3f %9.3f %9.3f %6u\n", m->second,
               (unsigned long long)s->c.sent, (unsigned long long)s->c.ok,
               (unsigned long long)st_counts_failed(&s->c), m->target_rps, m->achieved_rps,
               ms(st_hist_percentile(s->lat, 50)), ms(st_hist_percentile(s->lat, 90)),
               ms(st_hist_percentile(s->lat, 99)), ms(st_hist_max(s->lat)), m->agents);
    }
    printf("\nwhole run, merged from %zu histogram(s): sent %llu, ok %llu, failed %llu; latency "
           "p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms\n",
           r->n_seconds, (unsigned long long)total->c.sent, (unsigned long long)total->c.ok,
           (unsigned long long)st_counts_failed(&total->c), ms(st_hist_percentile(total->lat, 50)),
           ms(st_hist_percentile(total->lat, 90)), ms(st_hist_percentile(total->lat, 99)),
           ms(st_hist_percentile(total->lat, 99.9)), ms(st_hist_max(total->lat)));
    if (ck->mismatched) {
        printf("check: the summary does NOT match the stored seconds:\n%s", ck->lines);
    } else if (ck->compared) {
        printf("check: the summary's %d latency and count figure(s) match the stored histograms\n",
               ck->compared);
    } else if (r->have_summary) {
        printf("check: the summary has no latency, request, error or byte figures to compare\n");
    }
}

static cJSON *second_json(const st_result_msg *m)
{
    char *text = NULL;
    char id[ST_RESULT_ID_MAX + 1];
    if (st_result_encode_second(m->run_id, &m->stats, m->target_rps, m->achieved_rps, m->agents,
                                &text, id) != 0) {
        return NULL;
    }
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (j) {
        cJSON_DeleteItemFromObjectCaseSensitive(j, "schema");
        cJSON_DeleteItemFromObjectCaseSensitive(j, "kind");
        cJSON_DeleteItemFromObjectCaseSensitive(j, "run_id");
        cJSON_AddNumberToObject(j, "p50_us", (double)st_hist_percentile(m->stats.lat, 50));
        cJSON_AddNumberToObject(j, "p90_us", (double)st_hist_percentile(m->stats.lat, 90));
        cJSON_AddNumberToObject(j, "p99_us", (double)st_hist_percentile(m->stats.lat, 99));
    }
    return j;
}

static int print_json(const char *run_id, const run_data *r, const st_stats *total, const check *ck)
{
    cJSON *root = cJSON_CreateObject();
    if (!root) {
        return ST_ENOMEM;
    }
    cJSON_AddStringToObject(root, "run_id", run_id);
    cJSON_AddNumberToObject(root, "ttl", (double)r->ttl);
    cJSON_AddItemToObject(root, "summary",
                          r->have_summary ? cJSON_Duplicate(r->summary.summary, 1)
                                          : cJSON_CreateNull());
    cJSON *secs = cJSON_AddArrayToObject(root, "seconds");
    for (size_t i = 0; i < r->n_seconds; i++) {
        cJSON_AddItemToArray(secs, second_json(&r->seconds[i]));
    }
    cJSON *whole = cJSON_AddObjectToObject(root, "whole_run");
    cJSON_AddNumberToObject(whole, "seconds", (double)r->n_seconds);
    cJSON *counts = cJSON_AddObjectToObject(whole, "counts");
    cJSON_AddNumberToObject(counts, "sent", (double)total->c.sent);
    cJSON_AddNumberToObject(counts, "ok", (double)total->c.ok);
    cJSON_AddNumberToObject(counts, "failed", (double)st_counts_failed(&total->c));
    cJSON *lat = cJSON_AddObjectToObject(whole, "latency_us");
    cJSON_AddNumberToObject(lat, "count", (double)st_hist_count(total->lat));
    cJSON_AddNumberToObject(lat, "min", (double)st_hist_min(total->lat));
    cJSON_AddNumberToObject(lat, "p50", (double)st_hist_percentile(total->lat, 50));
    cJSON_AddNumberToObject(lat, "p90", (double)st_hist_percentile(total->lat, 90));
    cJSON_AddNumberToObject(lat, "p95", (double)st_hist_percentile(total->lat, 95));
    cJSON_AddNumberToObject(lat, "p99", (double)st_hist_percentile(total->lat, 99));
    cJSON_AddNumberToObject(lat, "p999", (double)st_hist_percentile(total->lat, 99.9));
    cJSON_AddNumberToObject(lat, "max", (double)st_hist_max(total->lat));
    cJSON *chk = cJSON_AddObjectToObject(root, "check");
    cJSON_AddNumberToObject(chk, "compared", ck->compared);
    cJSON_AddNumberToObject(chk, "mismatched", ck->mismatched);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) {
        return ST_ENOMEM;
    }
    printf("%s\n", text);
    free(text);
    return 0;
}

/* The HTML report of the stored run: its summary, with the distribution of the merged stored
 * histograms when the summary has none, and its seconds as time series lines. */
static int write_report(const char *path, const char *run_id, const run_data *r,
                        const st_stats *total)
{
    if (!r->have_summary) {
        st_error("results: run %s has no stored summary: no --report", run_id);
        return ST_ENOTFOUND;
    }
    st_report_second *rows = calloc(r->n_seconds ? r->n_seconds : 1, sizeof(*rows));
    cJSON *summary = cJSON_Duplicate(r->summary.summary, 1);
    cJSON *series = NULL;
    int rc = ST_ENOMEM;
    if (!rows || !summary) {
        goto out;
    }
    if (!cJSON_HasObjectItem(summary, "latency_histogram")) {
        cJSON *hist = st_html_histogram_json(total);
        if (!hist || !cJSON_AddItemToObject(summary, "latency_histogram", hist)) {
            cJSON_Delete(hist);
            goto out;
        }
    }
    for (size_t i = 0; i < r->n_seconds; i++) {
        const st_result_msg *m = &r->seconds[i];
        st_report_second_of(&rows[i], m->second, m->target_rps, &m->stats, (int)m->agents);
        /* The run's timeout is not stored: the view with timeouts is left as the plain one (the
         * report does not draw it). */
        rows[i].latency_with_timeouts = rows[i].latency;
    }
    if (!(series = st_output_series_json(rows, r->n_seconds))) {
        goto out;
    }
    char err[1024], summary_name[128], series_name[128];
    snprintf(summary_name, sizeof(summary_name), "the stored summary of run %s", run_id);
    snprintf(series_name, sizeof(series_name), "the stored seconds of run %s", run_id);
    st_html_source src = {summary_name, series_name, NULL};
    rc = st_html_report_file("--report", path, summary, series, &src, err, sizeof(err));
    if (rc && rc != ST_ENOMEM) {
        st_error("results: %s", err);
    }
out:
    if (rc == ST_ENOMEM) {
        st_error("results: out of memory: --report %s not written", path);
    }
    cJSON_Delete(series);
    cJSON_Delete(summary);
    free(rows);
    return rc;
}

int st_cmd_results(int argc, char **argv)
{
    static const struct option opts[] = {
        {"table", required_argument, NULL, 't'},
        ST_AWS_FLAGS,
        {"json", no_argument, NULL, 'j'},
        {"report", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *table = NULL, *report = NULL;
    int json = 0;
    st_aws_config aws;
    st_aws_config_init(&aws);
    const st_cmd_flag flags[] = {{'t', &table, NULL}, {'j', NULL, &json}, {'r', &report, NULL}};
    int done = st_cmd_flags(argc, argv, opts, flags, 3, &aws, ST_AWS_DYNAMODB, usage);
    if (done >= 0) {
        return done;
    }
    if (optind + 1 != argc || !table) {
        st_error("results: %s", !table ? "--table is required" : "give exactly one RUN_ID");
        usage(stderr);
        return ST_EXIT_USAGE;
    }
    const char *run_id = argv[optind];
    if (!st_result_run_id_valid(run_id)) {
        st_error("results: \"%s\" is not a run id (1 to 64 characters of A-Z a-z 0-9 . _ -)",
                 run_id);
        return ST_EXIT_USAGE;
    }
    st_aws_client *client = NULL;
    st_aws_error aerr;
    run_data r;
    memset(&r, 0, sizeof(r));
    st_stats total;
    memset(&total, 0, sizeof(total));
    int rc = st_aws_client_new(&client, &aws, &aerr);
    if (rc) {
        st_error("results: %s", aerr.message);
        goto out;
    }
    if ((rc = query_run(client, table, run_id, &r)) != 0) {
        goto out;
    }
    if (r.n_seconds == 0 && !r.have_summary) {
        st_error("results: nothing is stored for run %s in table %s", run_id, table);
        rc = ST_ENOTFOUND;
        goto out;
    }
    if ((rc = st_stats_init(&total)) != 0) {
        goto out;
    }
    for (size_t i = 0; i < r.n_seconds; i++) {
        st_stats_merge(&total, &r.seconds[i].stats);
    }
    check ck;
    memset(&ck, 0, sizeof(ck));
    if (r.have_summary) {
        check_summary(r.summary.summary, &total, &ck);
    }
    if (json) {
        rc = print_json(run_id, &r, &total, &ck);
    } else {
        print_text(run_id, table, &r, &total, &ck);
    }
    if (rc == 0 && report) {
        rc = write_report(report, run_id, &r, &total);
    }
    if (rc == 0 && ck.mismatched) {
        st_error("results: the summary of run %s does not match its stored seconds", run_id);
        rc = ST_EREMOTE;
    }
out:
    st_stats_fini(&total);
    run_data_fini(&r);
    st_aws_client_free(client);
    return st_exit_code(rc);
}
