#include "junit.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* text with XML's five special characters escaped, for attributes and content alike. */
static void put_escaped(FILE *f, const char *text)
{
    for (const char *p = text ? text : ""; *p; p++) {
        switch (*p) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default:
            /* Control characters other than tab and newline are not XML: written as spaces. */
            fputc((unsigned char)*p < 0x20 && *p != '\t' && *p != '\n' ? ' ' : *p, f);
        }
    }
}

/* "312.000 ms", "1.2500% (0.0125)", or "no value". */
static void value_text(const st_report_threshold *t, double v, bool have, char *out, size_t len)
{
    if (!have) {
        snprintf(out, len, "no value");
    } else if (strcmp(t->unit, "ms") == 0) {
        snprintf(out, len, "%.3f ms", v);
    } else {
        snprintf(out, len, "%.4f%% (%.6g)", v * 100, v);
    }
}

/* A regression verdict's figure: "12.500 ms", "1.2500% (0.0125)", or "no value". */
static void regression_value(const cJSON *v, bool ms, char *out, size_t len)
{
    if (!cJSON_IsNumber(v)) {
        snprintf(out, len, "no value");
    } else if (ms) {
        snprintf(out, len, "%.3f ms", v->valuedouble);
    } else {
        snprintf(out, len, "%.4f%% (%.6g)", v->valuedouble * 100, v->valuedouble);
    }
}

/* Why a --max-regression limit failed, or "" when it held. */
static void regression_failure(const cJSON *g, char *out, size_t len)
{
    out[0] = 0;
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(g, "result");
    if (cJSON_IsString(res) && strcmp(res->valuestring, "pass") == 0) {
        return;
    }
    const cJSON *unit = cJSON_GetObjectItemCaseSensitive(g, "unit");
    bool ms = cJSON_IsString(unit) && strcmp(unit->valuestring, "ms") == 0;
    char got[64], allowed[64], base[64];
    regression_value(cJSON_GetObjectItemCaseSensitive(g, "observed"), ms, got, sizeof(got));
    regression_value(cJSON_GetObjectItemCaseSensitive(g, "allowed"), ms, allowed, sizeof(allowed));
    regression_value(cJSON_GetObjectItemCaseSensitive(g, "baseline"), ms, base, sizeof(base));
    snprintf(out, len, "observed %s, allowed at most %s (baseline %s)", got, allowed, base);
}

/* One <testcase>; failure NULL when it passed. */
static void testcase(FILE *f, const char *classname, const char *name, const char *failure,
                     const char *type)
{
    fputs("    <testcase classname=\"", f);
    put_escaped(f, classname);
    fputs("\" name=\"", f);
    put_escaped(f, name);
    if (!failure) {
        fputs("\" time=\"0\"/>\n", f);
        return;
    }
    fputs("\" time=\"0\">\n      <failure type=\"", f);
    put_escaped(f, type);
    fputs("\" message=\"", f);
    put_escaped(f, failure);
    fputs("\">", f);
    put_escaped(f, failure);
    fputs("</failure>\n    </testcase>\n", f);
}

/* Why not every agent completed, or "" when they all did. */
static void agents_failure(const st_report *r, char *out, size_t len)
{
    size_t at = 0;
    out[0] = 0;
    if (r->status == ST_REPORT_FAILED) {
        at += (size_t)snprintf(out, len, "the run failed: %s; ", r->error ? r->error : "");
    }
    for (size_t i = 0; i < r->n_agents && at < len; i++) {
        const st_report_agent *a = &r->agents[i];
        if (a->lost || a->state == ST_REPORT_AGENT_FAILED) {
            at += (size_t)snprintf(out + at, len - at, "agent %s %s%s%s; ", a->name,
                                   a->lost ? "was lost" : "failed",
                                   (a->lost ? a->lost_reason : a->error)[0] ? ": " : "",
                                   a->lost ? a->lost_reason : a->error);
        }
    }
    if (at >= 2 && at < len) {
        out[at - 2] = 0; /* the last "; " */
    }
}

/* Which seconds are incomplete, or "" when none is. */
static void seconds_failure(const st_report *r, char *out, size_t len)
{
    size_t at = 0;
    out[0] = 0;
    if (r->n_incomplete > 0) {
        at += (size_t)snprintf(out, len, "%zu incomplete second(s):", r->n_incomplete);
        for (size_t i = 0; i < r->n_incomplete && at < len; i++) {
            at += (size_t)snprintf(out + at, len - at, " %u", r->incomplete_seconds[i]);
        }
    }
    if (r->unmerged_records > 0 && at < len) {
        snprintf(out + at, len - at, "%s%llu record(s) missing from their seconds (out of memory)",
                 at ? "; " : "", (unsigned long long)r->unmerged_records);
    }
}

char *st_junit_text(const st_report *r, const cJSON *regressions)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        return NULL;
    }
    char agents[2048], seconds[2048];
    agents_failure(r, agents, sizeof(agents));
    seconds_failure(r, seconds, sizeof(seconds));
    size_t failures = (agents[0] != 0) + (seconds[0] != 0);
    for (size_t i = 0; i < r->n_thresholds; i++) {
        failures += !r->thresholds[i].pass;
    }
    size_t n_regressions = (size_t)cJSON_GetArraySize(regressions); /* 0 for NULL */
    const cJSON *g;
    cJSON_ArrayForEach(g, regressions)
    {
        char why[512];
        regression_failure(g, why, sizeof(why));
        failures += why[0] != 0;
    }
    size_t tests = r->n_thresholds + n_regressions + 2;
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
    fprintf(f, "<testsuites name=\"stampede\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" "
               "time=\"%.3f\">\n",
            tests, failures, r->duration_s);
    fputs("  <testsuite name=\"stampede run ", f);
    put_escaped(f, r->run_id);
    fprintf(f, "\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"0\" time=\"%.3f\">\n",
            tests, failures, r->duration_s);
    for (size_t i = 0; i < r->n_thresholds; i++) {
        const st_report_threshold *t = &r->thresholds[i];
        char msg[512] = "", got[64], want[64];
        if (!t->pass) {
            value_text(t, t->observed, t->have_value, got, sizeof(got));
            value_text(t, t->limit, true, want, sizeof(want));
            int n = snprintf(msg, sizeof(msg), "observed %s, wanted %s %s", got, t->op, want);
            if (t->aborted && n > 0 && (size_t)n < sizeof(msg)) {
                snprintf(msg + n, sizeof(msg) - (size_t)n, "; it stopped the run at %us",
                         t->aborted_at);
            }
        }
        testcase(f, "stampede.thresholds", t->expression, t->pass ? NULL : msg, "threshold");
    }
    cJSON_ArrayForEach(g, regressions)
    {
        char why[512];
        regression_failure(g, why, sizeof(why));
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(g, "expression");
        testcase(f, "stampede.baseline", cJSON_IsString(e) ? e->valuestring : "?",
                 why[0] ? why : NULL, "regression");
    }
    testcase(f, "stampede.run", "every agent completed", agents[0] ? agents : NULL, "agents");
    testcase(f, "stampede.run", "no second missing", seconds[0] ? seconds : NULL, "seconds");
    fputs("  </testsuite>\n</testsuites>\n", f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
