#include "md_summary.h"
#include "summary.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* text as literal Markdown: ASCII punctuation escaped, line breaks as spaces (a table row is
 * one line). */
static void md_esc(FILE *f, const char *text)
{
    for (const unsigned char *p = (const unsigned char *)(text ? text : ""); *p; p++) {
        if (*p < 0x20) {
            fputc(' ', f);
        } else if (strchr("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", *p)) {
            fputc('\\', f);
            fputc(*p, f);
        } else {
            fputc(*p, f);
        }
    }
}

static void threshold_value(FILE *f, const st_report_threshold *t, double v, bool have)
{
    if (!have) {
        fputs("no value", f);
    } else if (strcmp(t->unit, "ms") == 0) {
        fprintf(f, "%.3f ms", v);
    } else {
        fprintf(f, "%.4f%%", v * 100);
    }
}

/* "p50 / p90 / p99 / p99.9 / max" of l in ms, or "no responses". */
static void latency_line(FILE *f, const char *label, const st_report_latency *l)
{
    fprintf(f, "| %s | ", label);
    if (l->count == 0) {
        fputs("no responses |\n", f);
        return;
    }
    fprintf(f, "%.3f / %.3f / %.3f / %.3f / %.3f ms (mean %.3f) |\n", st_us_to_ms(l->p50_us),
            st_us_to_ms(l->p90_us), st_us_to_ms(l->p99_us), st_us_to_ms(l->p999_us),
            st_us_to_ms(l->max_us), l->mean_us / 1000.0);
}

static void thresholds(FILE *f, const st_report *r)
{
    if (!r->n_thresholds) {
        return;
    }
    fputs("### Thresholds\n\n| result | threshold | observed | wanted |\n| --- | --- | ---: | ---: "
          "|\n",
          f);
    for (size_t i = 0; i < r->n_thresholds; i++) {
        const st_report_threshold *t = &r->thresholds[i];
        fprintf(f, "| %s | ", t->pass ? "\u2705 pass" : "\u274c **fail**");
        md_esc(f, t->expression);
        fputs(" | ", f);
        threshold_value(f, t, t->observed, t->have_value);
        if (t->aborted) {
            fprintf(f, " (stopped the run at %us)", t->aborted_at);
        }
        fputs(" | ", f);
        md_esc(f, t->op);
        fputc(' ', f);
        threshold_value(f, t, t->limit, true);
        fputs(" |\n", f);
    }
    fputc('\n', f);
}

static void agents(FILE *f, const st_report *r)
{
    if (!r->n_agents) {
        return;
    }
    fputs("### Agents\n\n| agent | host | state | requests | ok | failed | note |\n| --- | --- | "
          "--- | ---: | ---: | ---: | --- |\n",
          f);
    for (size_t i = 0; i < r->n_agents; i++) {
        const st_report_agent *a = &r->agents[i];
        fputs("| ", f);
        md_esc(f, a->name);
        fputs(" | ", f);
        md_esc(f, a->host);
        fprintf(f, " | %s | %llu | %llu | %llu | ", st_report_agent_state_name(a->state),
                (unsigned long long)st_counts_done(&a->counts), (unsigned long long)a->counts.ok,
                (unsigned long long)st_counts_failed(&a->counts));
        md_esc(f, a->lost ? a->lost_reason : a->error);
        fputs(" |\n", f);
    }
    fputc('\n', f);
}

char *st_md_summary_text(const st_report *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        return NULL;
    }
    size_t failed = 0;
    for (size_t i = 0; i < r->n_thresholds; i++) {
        failed += !r->thresholds[i].pass;
    }
    bool completed = r->status == ST_REPORT_COMPLETED;
    fputs("## stampede run ", f);
    md_esc(f, r->run_id);
    fprintf(f, ": %s\n\n",
            failed      ? "\u274c thresholds failed"
            : completed ? "\u2705 passed"
                        : "\u26a0\ufe0f not completed");
    const st_counts *c = &r->total.c;
    uint64_t done = st_counts_done(c);
    fprintf(f, "| | |\n| --- | --- |\n| status | %s", st_report_status_name(r->status));
    if (r->error && r->error[0]) {
        fputs(": ", f);
        md_esc(f, r->error);
    }
    fprintf(f, " |\n| plan | %.3f s, ", r->plan.duration_s);
    if (r->plan.closed_loop) {
        fputs("closed loop |\n", f);
    } else {
        fprintf(f, "%.1f rps target |\n", r->plan.average_rps);
    }
    fprintf(f, "| requests | %llu completed, %llu ok, %llu failed (%.4f%%); %llu sent, %llu late, "
               "%llu dropped |\n",
            (unsigned long long)done, (unsigned long long)c->ok,
            (unsigned long long)st_counts_failed(c),
            done ? 100.0 * (double)st_counts_failed(c) / (double)done : 0.0,
            (unsigned long long)c->sent, (unsigned long long)c->late,
            (unsigned long long)c->dropped);
    fprintf(f, "| errors | 4xx %llu, 5xx %llu, connect %llu, timeout %llu, other %llu, local %llu, "
               "tls %llu, cert %llu |\n",
            (unsigned long long)c->http_4xx, (unsigned long long)c->http_5xx,
            (unsigned long long)c->err_connect, (unsigned long long)c->err_timeout,
            (unsigned long long)c->err_other, (unsigned long long)c->err_local,
            (unsigned long long)c->err_tls, (unsigned long long)c->err_cert);
    fprintf(f, "| achieved | %.1f rps over %.3f s |\n",
            r->duration_s > 0 ? (double)done / r->duration_s : 0.0, r->duration_s);
    latency_line(f, "latency p50 / p90 / p99 / p99.9 / max", &r->latency);
    latency_line(f, "uncorrected", &r->latency_uncorrected);
    fprintf(f, "| agents | %zu", r->n_agents);
    if (r->agents_lost) {
        fprintf(f, " (%d lost)", r->agents_lost);
    }
    if (r->have_start_skew) {
        fprintf(f, ", start skew %.3f ms", r->start_skew_ms);
    }
    fputs(" |\n\n", f);
    thresholds(f, r);
    agents(f, r);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
