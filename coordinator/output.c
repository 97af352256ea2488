#include "output.h"
#include "error.h"
#include "html_report.h"
#include "junit.h"
#include "log.h"
#include "md_summary.h"
#include "outfile.h"
#include "summary.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- progress ---- */

static int progress_second(void *state, const st_coord_second *sec)
{
    FILE *f = state;
    char line[320];
    st_progress_format(line, sizeof(line), sec->second, sec->target_rps, sec->stats, sec->agents);
    const st_report_second *row = sec->row;
    if (row->counts.err_timeout > 0) {
        /* Timed-out requests have no latency of their own: counted at the timeout, they keep a
         * stalled second from reading as a fast one. */
        fprintf(f, "%s  timeouts %llu: p99 >= %.3f ms\n", line,
                (unsigned long long)row->counts.err_timeout,
                st_us_to_ms(row->latency_with_timeouts.p99_us));
    } else {
        fprintf(f, "%s\n", line);
    }
    fflush(f);
    return 0;
}

/* The thresholds' verdicts under the summary table. */
static void progress_thresholds(FILE *f, const st_report *r)
{
    size_t passed = 0;
    for (size_t i = 0; i < r->n_thresholds; i++) {
        passed += r->thresholds[i].pass;
    }
    if (r->n_thresholds) {
        fprintf(f, "  %-22s %zu of %zu passed\n", "thresholds", passed, r->n_thresholds);
    }
    for (size_t i = 0; i < r->n_thresholds; i++) {
        const st_report_threshold *t = &r->thresholds[i];
        bool ms = strcmp(t->unit, "ms") == 0;
        fprintf(f, "    %s  %-30s ", t->pass ? "pass" : "FAIL", t->expression);
        if (!t->have_value) {
            fprintf(f, "no value");
        } else if (ms) {
            fprintf(f, "%.3f ms", t->observed);
        } else {
            fprintf(f, "%.4f%%", t->observed * 100);
        }
        if (t->aborted) {
            fprintf(f, "  (it stopped the run at %us)", t->aborted_at);
        }
        fputc('\n', f);
    }
}

/* The per-name block under the summary table (plans with more than one request name). */
static void progress_by_name(FILE *f, const st_report *r)
{
    if (r->n_names == 0) {
        return;
    }
    fprintf(f, "  %-22s %10s %10s %10s %10s %10s\n", "by request name", "requests", "ok", "failed",
            "p50 ms", "p99 ms");
    for (size_t i = 0; i < r->n_names; i++) {
        st_stats v = st_report_name_view(r, i);
        fprintf(f, "    %-20s %10llu %10llu %10llu", r->names[i],
                (unsigned long long)st_counts_done(&v.c), (unsigned long long)v.c.ok,
                (unsigned long long)st_counts_failed(&v.c));
        if (st_hist_count(v.lat) == 0) {
            fprintf(f, " %21s\n", "no responses");
        } else {
            fprintf(f, " %10.3f %10.3f\n", st_us_to_ms(st_hist_percentile(v.lat, 50)),
                    st_us_to_ms(st_hist_percentile(v.lat, 99)));
        }
    }
}

static int progress_summary(void *state, const st_report *r)
{
    FILE *f = state;
    if (r->status == ST_REPORT_FAILED && !r->have_start_skew) {
        /* Nothing was sent: a table of zeros would only hide the reason. */
        fprintf(f, "\nrun %s failed: %s\n", r->run_id, r->error);
        fflush(f);
        return 0;
    }
    st_summary s = st_report_summary(r);
    st_summary_print(f, &s);
    fprintf(f, "  %-22s %zu", "agents", r->n_agents);
    if (r->agents_lost) {
        fprintf(f, " (%d lost)", r->agents_lost);
    }
    if (r->have_start_skew) {
        fprintf(f, ", start skew %.3f ms", r->start_skew_ms);
    }
    fprintf(f, "\n  %-22s %s\n", "run", r->run_id);
    progress_by_name(f, r);
    progress_thresholds(f, r);
    fflush(f);
    return 0;
}

static int progress_close(void *state)
{
    (void)state;
    return 0;
}

static const st_output_ops progress_ops = {"progress", progress_second, progress_summary,
                                           progress_close};

int st_output_progress(st_output *out, FILE *f)
{
    out->ops = &progress_ops;
    out->state = f;
    return 0;
}

/* ---- outputs to a file: the timeseries and the summary ---- */

/* A file written in the temporary place and committed at the end (st_outfile). */
typedef struct filed {
    st_outfile *f; /* NULL once committed or given up */
    bool failed;
    const st_baseline *baseline; /* the summary's and the report's "baseline"; may be NULL */
    const st_forward_report *delivery; /* the summary's "results_delivery", known at close() */
    const char *spool_dir;
    cJSON *held; /* the summary, waiting in summary() for the delivery's outcome */
} filed;

/* Creates the file for flag now (a folder that cannot be written is found out before the run,
 * and nothing appears at path until the file is complete) as the state of out, with ops. */
static int filed_open(st_output *out, const st_output_ops *ops, const char *flag, const char *path,
                      char *err, size_t err_len)
{
    filed *o = calloc(1, sizeof(*o));
    if (!o) {
        return ST_ENOMEM;
    }
    int rc = st_outfile_open(&o->f, flag, path, err, err_len);
    if (rc) {
        free(o);
        return rc;
    }
    out->ops = ops;
    out->state = o;
    return 0;
}

/* The file is done with: rc is how its commit went (err says why it failed). */
static int filed_done(filed *o, int rc, const char *err)
{
    o->f = NULL;
    if (rc) {
        st_error("%s", err);
        o->failed = true;
    }
    return rc;
}

static int filed_close(void *state)
{
    filed *o = state;
    /* Still open: the run ended before its end was reported; nothing is left behind. */
    st_outfile_abort(o->f);
    int rc = o->failed ? ST_EIO : 0;
    free(o);
    return rc;
}

/* ---- timeseries ---- */

static void jsonl_fail(filed *j, int errnum)
{
    if (!j->failed) {
        st_error("--timeseries %s: cannot write it: %s (the run goes on; the file will not be "
                 "written)",
                 st_outfile_path(j->f), strerror(errnum));
    }
    j->failed = true;
}

/* A latency figure in ms, or null when the distribution is empty (no responses). */
static void ms_or_null(char *out, size_t len, const st_report_latency *l, uint64_t us)
{
    if (l->count == 0) {
        snprintf(out, len, "null");
    } else {
        snprintf(out, len, "%.3f", st_us_to_ms(us));
    }
}

/* ,"by_name":{NAME:{"ok","failed","p50_ms","p99_ms"},...} for plans with several names, else
 * nothing. Returns 0 or an errno. */
static int jsonl_by_name(st_outfile *f, const st_coord_second *sec)
{
    const st_stats *s = sec->stats;
    if (!sec->names || !st_names_kept(sec->names)) {
        return 0;
    }
    int e = st_outfile_printf(f, ",\"by_name\":{");
    for (size_t i = 0; !e && i < sec->names->n; i++) {
        static const st_counts none;
        const st_counts *c = i < s->n_names ? &s->names[i].c : &none;
        const st_hist *h = i < s->n_names ? s->names[i].lat : NULL;
        st_report_latency l = {0};
        if (h) {
            st_report_latency_of(&l, h);
        }
        char p50[32], p99[32];
        ms_or_null(p50, sizeof(p50), &l, l.p50_us);
        ms_or_null(p99, sizeof(p99), &l, l.p99_us);
        cJSON *js = cJSON_CreateStringReference(sec->names->name[i]);
        char *name = js ? cJSON_PrintUnformatted(js) : NULL;
        cJSON_Delete(js);
        e = name ? st_outfile_printf(f, "%s%s:{\"ok\":%llu,\"failed\":%llu,\"p50_ms\":%s,\"p99_ms\":%s}",
                                     i ? "," : "", name, (unsigned long long)c->ok,
                                     (unsigned long long)st_counts_failed(c), p50, p99)
                 : ENOMEM;
        free(name);
    }
    return e ? e : st_outfile_printf(f, "}");
}

int st_output_second_line(char *buf, size_t len, const st_report_second *row)
{
    const st_counts *c = &row->counts;
    const st_report_latency *l = &row->latency, *t = &row->latency_with_timeouts,
                            *u = &row->latency_uncorrected;
    char p50[32], p90[32], p99[32], max[32], p50t[32], p99t[32], p50u[32], p90u[32], p99u[32];
    ms_or_null(p50, sizeof(p50), l, l->p50_us);
    ms_or_null(p90, sizeof(p90), l, l->p90_us);
    ms_or_null(p99, sizeof(p99), l, l->p99_us);
    ms_or_null(max, sizeof(max), l, l->max_us);
    ms_or_null(p50t, sizeof(p50t), t, t->p50_us);
    ms_or_null(p99t, sizeof(p99t), t, t->p99_us);
    ms_or_null(p50u, sizeof(p50u), u, u->p50_us);
    ms_or_null(p90u, sizeof(p90u), u, u->p90_us);
    ms_or_null(p99u, sizeof(p99u), u, u->p99_us);
    int n = snprintf(
        buf, len,
        "{\"t\":%u,\"target_rps\":%.3f,\"achieved_rps\":%llu,\"sent\":%llu,\"ok\":%llu,"
        "\"failed\":%llu,\"p50_ms\":%s,\"p90_ms\":%s,\"p99_ms\":%s,\"max_ms\":%s,\"agents\":%d,"
        "\"timeouts\":%llu,\"p50_with_timeouts_ms\":%s,\"p99_with_timeouts_ms\":%s,"
        "\"p50_uncorrected_ms\":%s,\"p90_uncorrected_ms\":%s,\"p99_uncorrected_ms\":%s,"
        "\"errors\":{\"http_4xx\":%llu,\"http_5xx\":%llu,\"connect\":%llu,\"timeout\":%llu,"
        "\"other\":%llu,\"local\":%llu,\"tls\":%llu,\"cert\":%llu}}",
        row->second, row->target_rps, (unsigned long long)st_counts_done(c),
        (unsigned long long)c->sent, (unsigned long long)c->ok,
        (unsigned long long)st_counts_failed(c), p50, p90, p99, max, row->agents,
        (unsigned long long)c->err_timeout, p50t, p99t, p50u, p90u, p99u,
        (unsigned long long)c->http_4xx, (unsigned long long)c->http_5xx,
        (unsigned long long)c->err_connect, (unsigned long long)c->err_timeout,
        (unsigned long long)c->err_other, (unsigned long long)c->err_local,
        (unsigned long long)c->err_tls, (unsigned long long)c->err_cert);
    return n < 0 || (size_t)n >= len ? ST_ERANGE : 0;
}

static int jsonl_second(void *state, const st_coord_second *sec)
{
    filed *j = state;
    if (j->failed || !j->f) {
        return ST_EIO;
    }
    char line[ST_OUTPUT_SECOND_LINE_MAX];
    st_output_second_line(line, sizeof(line), sec->row);
    /* The line's object is closed after the per-name figures (plans with several names). */
    size_t n = strlen(line);
    if (n > 0 && line[n - 1] == '}') {
        line[n - 1] = 0;
    }
    int e = st_outfile_printf(j->f, "%s", line);
    if (!e) {
        e = jsonl_by_name(j->f, sec);
    }
    if (!e) {
        e = st_outfile_printf(j->f, "}\n");
    }
    /* Flushed every second: a full disk is found out now, not at the end. */
    if (!e) {
        e = st_outfile_flush(j->f);
    }
    if (e) {
        jsonl_fail(j, e);
        return ST_EIO;
    }
    return 0;
}

static int jsonl_summary(void *state, const st_report *report)
{
    (void)report;
    filed *j = state;
    if (!j->f) {
        return j->failed ? ST_EIO : 0;
    }
    if (j->failed) {
        /* A file with seconds missing is not written at all. */
        st_outfile_abort(j->f);
        j->f = NULL;
        return ST_EIO;
    }
    char err[1024];
    int rc = st_outfile_commit(j->f, err, sizeof(err));
    return filed_done(j, rc, err);
}

static const st_output_ops jsonl_ops = {"timeseries", jsonl_second, jsonl_summary, filed_close};

int st_output_timeseries(st_output *out, const char *path, char *err, size_t err_len)
{
    return filed_open(out, &jsonl_ops, "--timeseries", path, err, err_len);
}

/* ---- summary file ---- */

static int sum_second(void *state, const st_coord_second *sec)
{
    (void)state;
    (void)sec;
    return 0;
}

/* Writes text (NULL: it could not be made, out of memory) as the whole file, and commits it;
 * text is freed. */
static int filed_write_whole(filed *s, const char *flag, char *text)
{
    if (!s->f) {
        free(text);
        return s->failed ? ST_EIO : 0;
    }
    char err[1024];
    int rc;
    if (!text) {
        snprintf(err, sizeof(err), "%s %s: out of memory: not written", flag,
                 st_outfile_path(s->f));
        st_outfile_abort(s->f);
        rc = ST_ENOMEM;
    } else {
        st_outfile_printf(s->f, "%s%s", text, text[0] && text[strlen(text) - 1] == '\n' ? "" : "\n");
        rc = st_outfile_commit(s->f, err, sizeof(err));
    }
    free(text);
    return filed_done(s, rc, err);
}

/* Appends item to obj as key, before obj's "thresholds" (which stays last). */
static bool add_before_thresholds(cJSON *obj, const char *key, cJSON *item)
{
    if (!cJSON_AddItemToObject(obj, key, item)) {
        return false;
    }
    cJSON *th = cJSON_DetachItemFromObjectCaseSensitive(obj, "thresholds");
    if (th) {
        cJSON_AddItemToArray(obj, th);
    }
    return true;
}

cJSON *st_output_summary_json(const st_report *report, const st_baseline *baseline)
{
    cJSON *summary = st_report_json(report);
    cJSON *hist = summary ? st_html_histogram_json(&report->total) : NULL;
    if (!hist || !cJSON_AddItemToObject(summary, "latency_histogram", hist)) {
        cJSON_Delete(hist);
        cJSON_Delete(summary);
        return NULL;
    }
    /* Beside the latency blocks: the keys after them move behind it, in their order
     * (thresholds stay last). */
    cJSON *first_after = summary->child;
    for (cJSON *k = summary->child; k != hist; k = k->next) {
        if (strncmp(k->string, "latency_", 8) == 0) {
            first_after = k->next;
        }
    }
    while (first_after != hist) {
        cJSON *k = first_after;
        first_after = k->next;
        cJSON_AddItemToArray(summary, cJSON_DetachItemViaPointer(summary, k));
    }
    if (baseline) {
        cJSON *b = st_baseline_json(baseline);
        if (!b || !add_before_thresholds(summary, "baseline", b)) {
            cJSON_Delete(b);
            cJSON_Delete(summary);
            return NULL;
        }
    }
    return summary;
}

/* The summary's "results_delivery" (before the thresholds); false when out of memory. */
static bool add_delivery(cJSON *summary, const st_forward_report *d, const char *spool_dir)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddNumberToObject(o, "sent", (double)d->sent) ||
        !cJSON_AddNumberToObject(o, "spooled", (double)d->spooled) ||
        !cJSON_AddNumberToObject(o, "lost", (double)d->lost) ||
        !cJSON_AddStringToObject(o, "spool", spool_dir ? spool_dir : "") ||
        !add_before_thresholds(summary, "results_delivery", o)) {
        cJSON_Delete(o);
        return false;
    }
    return true;
}

static int sum_write(filed *s, cJSON *summary)
{
    char *text = summary ? cJSON_Print(summary) : NULL;
    cJSON_Delete(summary);
    return filed_write_whole(s, "--summary", text);
}

static int sum_summary(void *state, const st_report *report)
{
    filed *s = state;
    cJSON *summary = s->f ? st_output_summary_json(report, s->baseline) : NULL;
    if (s->delivery && summary) {
        cJSON_Delete(s->held);
        s->held = summary;
        return 0;
    }
    return sum_write(s, summary);
}

static int sum_close(void *state)
{
    filed *s = state;
    if (s->held) {
        cJSON *summary = s->held;
        s->held = NULL;
        if (!add_delivery(summary, s->delivery, s->spool_dir)) {
            cJSON_Delete(summary);
            summary = NULL;
        }
        sum_write(s, summary);
    }
    return filed_close(s);
}

static const st_output_ops sum_ops = {"summary", sum_second, sum_summary, sum_close};

void st_output_set_delivery(st_output *out, const st_forward_report *delivery,
                            const char *spool_dir)
{
    if (out->ops == &sum_ops) {
        ((filed *)out->state)->delivery = delivery;
        ((filed *)out->state)->spool_dir = spool_dir;
    }
}

int st_output_summary_file(st_output *out, const char *path, char *err, size_t err_len)
{
    return filed_open(out, &sum_ops, "--summary", path, err, err_len);
}

/* ---- JUnit (junit.h) ---- */

static int junit_summary(void *state, const st_report *report)
{
    filed *s = state;
    if (!s->f) {
        return filed_write_whole(s, "--junit", NULL);
    }
    /* NULL without a baseline, or when it could not be evaluated (the run fails for that). */
    cJSON *b = s->baseline ? st_baseline_json(s->baseline) : NULL;
    char *text = st_junit_text(report, cJSON_GetObjectItemCaseSensitive(b, "regressions"));
    cJSON_Delete(b);
    return filed_write_whole(s, "--junit", text);
}

static const st_output_ops junit_ops = {"junit", sum_second, junit_summary, filed_close};

int st_output_junit(st_output *out, const char *path, char *err, size_t err_len)
{
    return filed_open(out, &junit_ops, "--junit", path, err, err_len);
}

/* ---- the HTML report (html_report.h) ---- */

cJSON *st_output_series_json(const st_report_second *rows, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < n; i++) {
        char line[ST_OUTPUT_SECOND_LINE_MAX];
        cJSON *o = st_output_second_line(line, sizeof(line), &rows[i]) == 0 ? cJSON_Parse(line)
                                                                             : NULL;
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            cJSON_Delete(arr);
            arr = NULL;
        }
    }
    return arr;
}

static char *report_html(const st_report *report, const char *path, const st_baseline *baseline)
{
    /* Read back from its text, as `stampede report` reads the --summary file: cJSON prints a
     * double in 15 digits when that reads back close enough, and the report must show what the
     * file says. */
    cJSON *built = st_output_summary_json(report, baseline);
    char *text = built ? cJSON_PrintUnformatted(built) : NULL;
    cJSON *summary = text ? cJSON_Parse(text) : NULL;
    cJSON_Delete(built);
    free(text);
    cJSON *series = summary ? st_output_series_json(report->seconds, report->n_seconds) : NULL;
    char *html = NULL, err[1024];
    const st_html_source src = {"the run's summary", "the run's seconds", NULL};
    if (series && st_html_report_text(summary, series, &src, &html, err, sizeof(err)) != 0) {
        st_error("--report %s: %s", path, err);
        html = NULL;
    }
    cJSON_Delete(series);
    cJSON_Delete(summary);
    return html;
}

static int report_summary(void *state, const st_report *report)
{
    filed *s = state;
    return filed_write_whole(s, "--report",
                             s->f ? report_html(report, st_outfile_path(s->f), s->baseline) : NULL);
}

static const st_output_ops report_ops = {"report", sum_second, report_summary, filed_close};

int st_output_report(st_output *out, const char *path, char *err, size_t err_len)
{
    return filed_open(out, &report_ops, "--report", path, err, err_len);
}

void st_output_set_baseline(st_output *out, const st_baseline *baseline)
{
    if (out->ops == &sum_ops || out->ops == &report_ops || out->ops == &junit_ops) {
        ((filed *)out->state)->baseline = baseline;
    }
}

/* ---- the step summary (md_summary.h) ---- */

typedef struct appended {
    char *path;
    bool failed;
} appended;

static int step_summary(void *state, const st_report *report)
{
    appended *a = state;
    char *text = st_md_summary_text(report);
    if (!text) {
        st_error("GITHUB_STEP_SUMMARY %s: out of memory: the summary was not appended", a->path);
        a->failed = true;
        return ST_ENOMEM;
    }
    FILE *f = fopen(a->path, "a");
    int e = f ? 0 : errno;
    if (f && fputs(text, f) == EOF) {
        e = errno;
    }
    if (f && fclose(f) != 0 && !e) {
        e = errno;
    }
    free(text);
    if (e) {
        st_error("GITHUB_STEP_SUMMARY %s: cannot append the summary: %s", a->path, strerror(e));
        a->failed = true;
        return ST_EIO;
    }
    return 0;
}

static int step_close(void *state)
{
    appended *a = state;
    int rc = a->failed ? ST_EIO : 0;
    free(a->path);
    free(a);
    return rc;
}

static const st_output_ops step_ops = {"step summary", sum_second, step_summary, step_close};

int st_output_step_summary(st_output *out, const char *path, char *err, size_t err_len)
{
    /* Opened now, so that a path that cannot be written is found out before the run. */
    FILE *f = fopen(path, "a");
    if (!f || fclose(f) != 0) {
        return st_errf(err, err_len, ST_EIO, "GITHUB_STEP_SUMMARY %s: cannot append to it: %s",
                       path, strerror(errno));
    }
    appended *a = calloc(1, sizeof(*a));
    char *copy = strdup(path);
    if (!a || !copy) {
        free(a);
        free(copy);
        return ST_ENOMEM;
    }
    a->path = copy;
    out->ops = &step_ops;
    out->state = a;
    return 0;
}
