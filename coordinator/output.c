#include "output.h"
#include "error.h"
#include "log.h"
#include "summary.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- progress ---- */

static int progress_second(void *state, const st_coord_second *sec)
{
    FILE *f = state;
    char line[320];
    st_progress_format(line, sizeof(line), sec->second, sec->target_rps, sec->stats, sec->agents);
    fprintf(f, "%s\n", line);
    fflush(f);
    return 0;
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
    st_summary s = {
        .total = &r->total,
        .duration_s = r->duration_s,
        .target_requests = r->target_requests,
        .closed_loop = r->plan.closed_loop,
    };
    st_summary_print(f, &s);
    fprintf(f, "  %-22s %zu", "agents", r->n_agents);
    if (r->agents_lost) {
        fprintf(f, " (%d lost)", r->agents_lost);
    }
    if (r->have_start_skew) {
        fprintf(f, ", start skew %.3f ms", r->start_skew_ms);
    }
    fprintf(f, "\n  %-22s %s\n", "run", r->run_id);
    fflush(f);
    return 0;
}

static void progress_close(void *state)
{
    (void)state;
}

static const st_output_ops progress_ops = {"progress", progress_second, progress_summary,
                                           progress_close};

int st_output_progress(st_output *out, FILE *f)
{
    out->ops = &progress_ops;
    out->state = f;
    return 0;
}

/* ---- timeseries ---- */

typedef struct jsonl {
    FILE *f;
    char *path;
    bool failed;
} jsonl;

static int jsonl_second(void *state, const st_coord_second *sec)
{
    jsonl *j = state;
    if (j->failed) {
        return ST_EIO;
    }
    const st_report_second *row = sec->row;
    const st_counts *c = &row->counts;
    const st_report_latency *l = &row->latency;
    int n = fprintf(j->f,
                    "{\"t\":%u,\"target_rps\":%.3f,\"achieved_rps\":%llu,\"sent\":%llu,\"ok\":%llu,"
                    "\"failed\":%llu,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
                    "\"max_ms\":%.3f,\"agents\":%d}\n",
                    row->second, row->target_rps, (unsigned long long)st_counts_done(c),
                    (unsigned long long)c->sent, (unsigned long long)c->ok,
                    (unsigned long long)st_counts_failed(c), st_us_to_ms(l->p50_us),
                    st_us_to_ms(l->p90_us), st_us_to_ms(l->p99_us), st_us_to_ms(l->max_us),
                    row->agents);
    if (n < 0 || fflush(j->f) != 0) {
        st_error("--timeseries %s: %s (the run goes on without it)", j->path, strerror(errno));
        j->failed = true;
        return ST_EIO;
    }
    return 0;
}

static int jsonl_summary(void *state, const st_report *report)
{
    (void)state;
    (void)report;
    return 0;
}

static void jsonl_close(void *state)
{
    jsonl *j = state;
    if (j->f && fclose(j->f) != 0 && !j->failed) {
        st_error("--timeseries %s: %s", j->path, strerror(errno));
    }
    free(j->path);
    free(j);
}

static const st_output_ops jsonl_ops = {"timeseries", jsonl_second, jsonl_summary, jsonl_close};

int st_output_timeseries(st_output *out, const char *path, char *err, size_t err_len)
{
    jsonl *j = calloc(1, sizeof(*j));
    if (!j || !(j->path = strdup(path))) {
        free(j);
        return ST_ENOMEM;
    }
    j->f = fopen(path, "w");
    if (!j->f) {
        snprintf(err, err_len, "--timeseries %s: %s", path, strerror(errno));
        free(j->path);
        free(j);
        return ST_EIO;
    }
    out->ops = &jsonl_ops;
    out->state = j;
    return 0;
}

/* ---- summary file ---- */

typedef struct sumfile {
    char *path;
} sumfile;

static int sum_second(void *state, const st_coord_second *sec)
{
    (void)state;
    (void)sec;
    return 0;
}

static int sum_summary(void *state, const st_report *report)
{
    sumfile *s = state;
    cJSON *summary = st_report_json(report);
    char *text = summary ? cJSON_Print(summary) : NULL;
    cJSON_Delete(summary);
    if (!text) {
        return ST_ENOMEM;
    }
    size_t n = strlen(s->path) + 16;
    char *tmp = malloc(n);
    int rc = ST_ENOMEM;
    if (tmp) {
        snprintf(tmp, n, "%s.tmp", s->path);
        FILE *f = fopen(tmp, "w");
        rc = ST_EIO;
        if (f) {
            bool ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
            ok = fclose(f) == 0 && ok;
            if (ok && rename(tmp, s->path) == 0) {
                rc = 0;
            } else {
                unlink(tmp);
            }
        }
        if (rc) {
            st_error("--summary %s: %s", s->path, strerror(errno));
        }
    }
    free(tmp);
    free(text);
    return rc;
}

static void sum_close(void *state)
{
    sumfile *s = state;
    free(s->path);
    free(s);
}

static const st_output_ops sum_ops = {"summary", sum_second, sum_summary, sum_close};

int st_output_summary_file(st_output *out, const char *path, char *err, size_t err_len)
{
    /* Find out now, not after the run, whether the file can be written. */
    FILE *probe = fopen(path, "a");
    if (!probe) {
        snprintf(err, err_len, "--summary %s: %s", path, strerror(errno));
        return ST_EIO;
    }
    fclose(probe);
    sumfile *s = calloc(1, sizeof(*s));
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return ST_ENOMEM;
    }
    out->ops = &sum_ops;
    out->state = s;
    return 0;
}
