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
#include "cli.h"
#include "summary.h"
#include "tui.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

/* The run's results per request name, merged from the stored seconds (version-2 items). */
typedef struct name_totals {
    char **names; /* borrowed from the seconds' messages */
    size_t n;
    st_stats parts; /* parts.names[i] is names[i]'s */
} name_totals;

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
            "[--json] [--report FILE]\n"
            "       [--follow [--headless]]\n\n"
            "Prints the summary and the per-second series of a run that stampede-sink stored,\n"
            "and checks the summary against percentiles recomputed from the stored histograms.\n"
            "--report FILE also writes the run's HTML report (as `stampede run --report`).\n"
            "--follow first watches the run as its seconds arrive, until its summary is stored\n"
            "(or Ctrl-C): in the terminal UI, read-only, when stdout is a terminal (it stays\n"
            "open on the stored run until q), else (or with --headless) as progress lines;\n"
            "then prints the above.\n"
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
    const char *prefix; /* "" or "requests_by_name.NAME." */
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
                 "  %s%s: the summary says %.17g, the stored seconds give %.17g\n",
                 ck->prefix ? ck->prefix : "", what, summary_value->valuedouble, stored);
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
        {1, "tls", c->err_tls},         {1, "cert", c->err_cert},
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

/* Adds the per-name parts of every stored second into t, by name. Returns 0 or ST_ENOMEM. */
static int merge_names(const run_data *r, name_totals *t)
{
    if (st_stats_init(&t->parts)) {
        return ST_ENOMEM;
    }
    for (size_t i = 0; i < r->n_seconds; i++) {
        const st_result_msg *m = &r->seconds[i];
        for (size_t k = 0; k < m->n_names; k++) {
            size_t at = 0;
            while (at < t->n && strcmp(t->names[at], m->names[k]) != 0) {
                at++;
            }
            if (at == t->n) {
                char **nn = realloc(t->names, (t->n + 1) * sizeof(*nn));
                if (!nn) {
                    return ST_ENOMEM;
                }
                t->names = nn;
                t->names[t->n++] = m->names[k];
                if (st_stats_names(&t->parts, t->n)) {
                    return ST_ENOMEM;
                }
            }
            st_name_stats *d = &t->parts.names[at];
            const st_name_stats *s = &m->stats.names[k];
            st_counts_add(&d->c, &s->c);
            st_hist_merge(d->lat, s->lat);
            st_hist_merge(d->lat_raw, s->lat_raw);
        }
    }
    return 0;
}

static void name_totals_fini(name_totals *t)
{
    free(t->names);
    st_stats_fini(&t->parts);
}

static st_stats name_view(const name_totals *t, size_t i)
{
    return (st_stats){.c = t->parts.names[i].c,
                      .lat = t->parts.names[i].lat,
                      .lat_raw = t->parts.names[i].lat_raw};
}

/* The summary's requests_by_name blocks against the merged parts: a name on one side only is a
 * mismatch. */
static void check_names(const cJSON *summary, const name_totals *t, check *ck)
{
    const cJSON *by = cJSON_GetObjectItemCaseSensitive(summary, "requests_by_name");
    if (!cJSON_IsObject(by) && t->n == 0) {
        return;
    }
    char prefix[1100];
    ck->prefix = prefix;
    for (size_t i = 0; i < t->n; i++) {
        snprintf(prefix, sizeof(prefix), "requests_by_name.%s.", t->names[i]);
        const cJSON *block = cJSON_GetObjectItemCaseSensitive(by, t->names[i]);
        st_stats v = name_view(t, i);
        if (!block) {
            ck->mismatched++;
            size_t len = strlen(ck->lines);
            snprintf(ck->lines + len, sizeof(ck->lines) - len,
                     "  %s: stored seconds have it, the summary does not\n", prefix);
            continue;
        }
        check_summary(block, &v, ck);
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, by)
    {
        size_t k = 0;
        while (k < t->n && strcmp(t->names[k], it->string) != 0) {
            k++;
        }
        const cJSON *tot = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(it, "requests"), "total");
        /* A name of the plan that no stored second has: fine when it counted nothing. */
        if (k == t->n && (!cJSON_IsNumber(tot) || tot->valuedouble != 0)) {
            ck->mismatched++;
            size_t len = strlen(ck->lines);
            snprintf(ck->lines + len, sizeof(ck->lines) - len,
                     "  requests_by_name.%s: in the summary, in no stored second\n", it->string);
        }
    }
    ck->prefix = NULL;
}

static double ms(uint64_t us)
{
    return (double)us / 1000.0;
}

/* The per-name table of `stampede results`. */
static void print_names(const name_totals *t)
{
    if (t->n == 0) {
        return;
    }
    printf("\nby request name, merged from the stored seconds:\n%-24s %9s %9s %7s %9s %9s %9s "
           "%9s\n",
           "name", "requests", "ok", "failed", "p50 ms", "p90 ms", "p99 ms", "max ms");
    for (size_t i = 0; i < t->n; i++) {
        st_stats v = name_view(t, i);
        printf("%-24s %9llu %9llu %7llu %9.3f %9.3f %9.3f %9.3f\n", t->names[i],
               (unsigned long long)st_counts_done(&v.c), (unsigned long long)v.c.ok,
               (unsigned long long)st_counts_failed(&v.c), ms(st_hist_percentile(v.lat, 50)),
               ms(st_hist_percentile(v.lat, 90)), ms(st_hist_percentile(v.lat, 99)),
               ms(st_hist_max(v.lat)));
    }
}

static void print_text(const char *run_id, const char *table, const run_data *r,
                       const st_stats *total, const name_totals *names, const check *ck)
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
    print_names(names);
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
    if (st_result_encode_second_by_name(m->run_id, &m->stats, (const char *const *)m->names,
                                        m->n_names, m->target_rps, m->achieved_rps, m->agents,
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

/* {"sent", "ok", "failed"} and a latency_us block of s, into o. */
static void whole_json(cJSON *o, const st_stats *s)
{
    cJSON *counts = cJSON_AddObjectToObject(o, "counts");
    cJSON_AddNumberToObject(counts, "sent", (double)s->c.sent);
    cJSON_AddNumberToObject(counts, "ok", (double)s->c.ok);
    cJSON_AddNumberToObject(counts, "failed", (double)st_counts_failed(&s->c));
    cJSON *lat = cJSON_AddObjectToObject(o, "latency_us");
    cJSON_AddNumberToObject(lat, "count", (double)st_hist_count(s->lat));
    cJSON_AddNumberToObject(lat, "min", (double)st_hist_min(s->lat));
    cJSON_AddNumberToObject(lat, "p50", (double)st_hist_percentile(s->lat, 50));
    cJSON_AddNumberToObject(lat, "p90", (double)st_hist_percentile(s->lat, 90));
    cJSON_AddNumberToObject(lat, "p95", (double)st_hist_percentile(s->lat, 95));
    cJSON_AddNumberToObject(lat, "p99", (double)st_hist_percentile(s->lat, 99));
    cJSON_AddNumberToObject(lat, "p999", (double)st_hist_percentile(s->lat, 99.9));
    cJSON_AddNumberToObject(lat, "max", (double)st_hist_max(s->lat));
}

static int print_json(const char *run_id, const run_data *r, const st_stats *total,
                      const name_totals *names, const check *ck)
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
    whole_json(whole, total);
    if (names->n > 0) {
        cJSON *by = cJSON_AddObjectToObject(whole, "by_name");
        for (size_t i = 0; by && i < names->n; i++) {
            st_stats v = name_view(names, i);
            whole_json(cJSON_AddObjectToObject(by, names->names[i]), &v);
        }
    }
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

/* ---- --follow ---- */

static volatile sig_atomic_t g_follow_stop;

static void on_follow_stop(int sig)
{
    (void)sig;
    g_follow_stop = 1;
}

/* A second not shown yet: a progress line, or a point of the UI. */
static void follow_second(st_tui *tui, st_output *out, const st_result_msg *m)
{
    if (!tui) {
        char line[320];
        st_progress_format(line, sizeof(line), m->second, m->target_rps, &m->stats,
                           (int)m->agents);
        printf("%s\n", line);
        fflush(stdout);
        return;
    }
    st_report_second row;
    st_report_second_of(&row, m->second, m->target_rps, &m->stats, (int)m->agents);
    /* The message's names, in its own order, as the UI looks its parts up. */
    st_names names = {.n = m->n_names, .name = (const char **)m->names};
    st_coord_second sec = {.second = m->second, .target_rps = m->target_rps, .stats = &m->stats,
                           .agents = (int)m->agents, .row = &row, .names = &names};
    out->ops->second(out->state, &sec);
}

static double json_number(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static char *json_string(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && v->valuestring ? v->valuestring : "";
}

/* The agents of a stored summary (its agents[]) as report rows whose strings are borrowed from
 * it; *n of them (none when it has no agents[]). NULL with *n 0 when there are none or out of
 * memory (the UI then shows no rows). */
static st_report_agent *summary_agents(const cJSON *summary, size_t *n, int *lost)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(summary, "agents");
    size_t count = cJSON_IsArray(arr) ? (size_t)cJSON_GetArraySize(arr) : 0;
    *n = 0;
    *lost = 0;
    st_report_agent *out = count ? calloc(count, sizeof(*out)) : NULL;
    if (!out) {
        return NULL;
    }
    static const char *const states[] = {"unknown", "idle", "ready",  "running",
                                         "draining", "done", "failed", "lost"};
    const cJSON *a;
    cJSON_ArrayForEach(a, arr)
    {
        st_report_agent *o = &out[(*n)++];
        o->id = (uint32_t)json_number(a, "id");
        o->name = json_string(a, "name");
        o->host = json_string(a, "host");
        o->task = json_string(a, "task");
        o->availability_zone = json_string(a, "availability_zone");
        const char *st = json_string(a, "state");
        for (size_t k = 0; k < sizeof(states) / sizeof(states[0]); k++) {
            if (strcmp(st, states[k]) == 0) {
                o->state = (st_report_agent_state)k;
            }
        }
        o->share_rps = json_number(a, "share_rps");
        /* The summary gives an agent's failures as one figure: counted as one class here, for
         * the table's "failed" column only. */
        o->counts.ok = (uint64_t)json_number(a, "ok");
        o->counts.err_other = (uint64_t)json_number(a, "failed");
        o->lost = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "lost"));
        *lost += o->lost;
        o->clock_offset_ms = json_number(a, "clock_offset_ms");
        o->clock_rtt_ms = json_number(a, "clock_rtt_ms");
    }
    return out;
}

/* The run so far (the stored seconds merged, by name too) into the UI's header, distribution
 * and names table; once the summary is stored, its agents, status and planned length. */
static void follow_feed(st_tui *tui, const char *run_id, const run_data *r, st_stats *total)
{
    st_report rep;
    memset(&rep, 0, sizeof(rep));
    rep.run_id = (char *)run_id;
    rep.status = ST_REPORT_RUNNING;
    rep.total = *total; /* borrowed: not released through rep */
    rep.plan.expected_agents = r->n_seconds ? (int)r->seconds[r->n_seconds - 1].agents : 0;
    st_report_latency_of(&rep.latency, total->lat);
    st_report_latency_of(&rep.latency_uncorrected, total->lat_raw);
    name_totals names;
    memset(&names, 0, sizeof(names));
    if (merge_names(r, &names) == 0 && names.n) {
        rep.names = names.names;
        rep.n_names = names.n;
        rep.total.names = names.parts.names;
        rep.total.n_names = names.parts.n_names;
    }
    char state[40] = "following";
    if (r->have_summary) {
        const cJSON *sum = r->summary.summary;
        rep.agents = summary_agents(sum, &rep.n_agents, &rep.agents_lost);
        rep.plan.expected_agents = (int)rep.n_agents;
        rep.duration_s = json_number(sum, "duration_s");
        rep.plan.duration_s = rep.duration_s;
        const char *status = json_string(sum, "status");
        rep.status = strcmp(status, "failed") == 0 ? ST_REPORT_FAILED : ST_REPORT_COMPLETED;
        snprintf(state, sizeof(state), "summary stored: %s", status[0] ? status : "?");
    }
    st_tui_feed_report(tui, &rep, state);
    free(rep.agents);
    name_totals_fini(&names);
}

/* Watches run_id until its summary is stored (0), the user quits or a signal comes (0 too: the
 * stored part is printed next), or DynamoDB fails (its code). */
static int follow_run(st_aws_client *client, const char *table, const char *run_id, int headless)
{
    st_tui *tui = NULL;
    st_output out;
    char err[512];
    int rc;
    if (!headless && isatty(STDOUT_FILENO)) {
        st_tui_cfg cfg = {.run_id = run_id, .read_only = true};
        if ((rc = st_tui_start(&tui, &cfg, err, sizeof(err)))) {
            st_error("results: --follow: %s (--headless prints progress lines)", err);
            return rc;
        }
        st_tui_output(&out, tui);
    } else {
        printf("following run %s in table %s until its summary is stored (Ctrl-C stops)\n",
               run_id, table);
    }
    st_cli_stop_signals(on_follow_stop);
    uint32_t next = 0;
    for (;;) {
        run_data r;
        memset(&r, 0, sizeof(r));
        st_stats total;
        if ((rc = query_run(client, table, run_id, &r)) || (rc = st_stats_init(&total))) {
            run_data_fini(&r);
            break;
        }
        /* Seconds are shown in order: one stored before an earlier one waits for it, unless
         * the summary is there (nothing more will come). */
        for (size_t i = 0; i < r.n_seconds; i++) {
            st_stats_merge(&total, &r.seconds[i].stats);
            uint32_t k = r.seconds[i].second;
            if (k == next || (k > next && r.have_summary)) {
                follow_second(tui, &out, &r.seconds[i]);
                next = k + 1;
            }
        }
        if (tui) {
            follow_feed(tui, run_id, &r, &total);
        }
        if (r.have_summary && tui && !g_follow_stop && !st_tui_quit_asked(tui)) {
            st_tui_event(tui, "the summary of run %s is stored: q closes the UI and prints it",
                         run_id);
        }
        bool done = r.have_summary;
        st_stats_fini(&total);
        run_data_fini(&r);
        for (int i = 0; i < 10 && !done && !g_follow_stop && !(tui && st_tui_quit_asked(tui));
             i++) {
            usleep(100 * 1000);
        }
        if (done || g_follow_stop || (tui && st_tui_quit_asked(tui))) {
            break;
        }
    }
    /* The UI stays open on the whole run until q (or a signal): nothing more will come. */
    while (rc == 0 && tui && !g_follow_stop && !st_tui_quit_asked(tui)) {
        usleep(100 * 1000);
    }
    st_tui_free(tui);
    return rc;
}

int st_cmd_results(int argc, char **argv)
{
    static const struct option opts[] = {
        {"table", required_argument, NULL, 't'},
        ST_AWS_FLAGS,
        {"json", no_argument, NULL, 'j'},
        {"report", required_argument, NULL, 'r'},
        {"follow", no_argument, NULL, 'f'},
        {"headless", no_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *table = NULL, *report = NULL;
    int json = 0, follow = 0, headless = 0;
    st_aws_config aws;
    st_aws_config_init(&aws);
    const st_cmd_flag flags[] = {{'t', &table, NULL},   {'j', NULL, &json},
                                 {'r', &report, NULL},  {'f', NULL, &follow},
                                 {'H', NULL, &headless}};
    int done = st_cmd_flags(argc, argv, opts, flags, 5, &aws, ST_AWS_DYNAMODB, usage);
    if (done >= 0) {
        return done;
    }
    if (headless && !follow) {
        st_error("results: --headless goes with --follow");
        usage(stderr);
        return ST_EXIT_USAGE;
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
    name_totals names;
    memset(&names, 0, sizeof(names));
    int rc = st_aws_client_new(&client, &aws, &aerr);
    if (rc) {
        st_error("results: %s", aerr.message);
        goto out;
    }
    if (follow && (rc = follow_run(client, table, run_id, headless)) != 0) {
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
    if ((rc = merge_names(&r, &names)) != 0) {
        goto out;
    }
    check ck;
    memset(&ck, 0, sizeof(ck));
    if (r.have_summary) {
        check_summary(r.summary.summary, &total, &ck);
        check_names(r.summary.summary, &names, &ck);
    }
    if (json) {
        rc = print_json(run_id, &r, &total, &names, &ck);
    } else {
        print_text(run_id, table, &r, &total, &names, &ck);
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
    name_totals_fini(&names);
    run_data_fini(&r);
    st_aws_client_free(client);
    return st_exit_code(rc);
}
