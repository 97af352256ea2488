#include "html_report.h"
#include "error.h"
#include "hist.h"
#include "outfile.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- strict reading ---- */

typedef struct rd {
    const char *file;
    size_t line; /* 0: not known */
    char *err;
    size_t err_len;
    bool failed;
} rd;

/* The first failure is kept: it is the one that explains the others. */
static void rd_fail(rd *r, const char *path, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void rd_fail(rd *r, const char *path, const char *key, const char *fmt, ...)
{
    if (r->failed) {
        return;
    }
    r->failed = true;
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    char line[32] = "";
    if (r->line) {
        snprintf(line, sizeof(line), ":%zu", r->line);
    }
    snprintf(r->err, r->err_len, "%s%s: key \"%s%s%s\": %s", r->file, line, path, path[0] ? "." : "",
             key, what);
}

static const char *type_name(const cJSON *j)
{
    return cJSON_IsNull(j)     ? "null"
           : cJSON_IsBool(j)   ? "a boolean"
           : cJSON_IsNumber(j) ? "a number"
           : cJSON_IsString(j) ? "a string"
           : cJSON_IsArray(j)  ? "an array"
                               : "an object";
}

enum {
    REQ = 1,      /* the key must be there */
    NULLABLE = 2, /* null stands for "no value" */
    COUNT = 4,    /* a whole number, 0 or more */
    NONNEG = 8,   /* 0 or more */
};

/* The member key of obj (NULL when obj is NULL or it is absent; absent and REQ is a failure). */
static const cJSON *member(rd *r, const cJSON *obj, const char *path, const char *key, int flags)
{
    const cJSON *j = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (!j && obj && (flags & REQ)) {
        rd_fail(r, path, key, "missing");
    }
    return j;
}

/* A number: NAN when absent, or null where NULLABLE allows it. */
static double num(rd *r, const cJSON *obj, const char *path, const char *key, int flags)
{
    const cJSON *j = member(r, obj, path, key, flags);
    if (!j || ((flags & NULLABLE) && cJSON_IsNull(j))) {
        return NAN;
    }
    if (!cJSON_IsNumber(j)) {
        rd_fail(r, path, key, "expected a number%s, not %s", flags & NULLABLE ? " or null" : "",
                type_name(j));
        return NAN;
    }
    double v = j->valuedouble;
    if ((flags & (COUNT | NONNEG)) && !(v >= 0)) {
        rd_fail(r, path, key, "expected 0 or more, not %.17g", v);
        return NAN;
    }
    if ((flags & COUNT) && v != floor(v)) {
        rd_fail(r, path, key, "expected a whole number, not %.17g", v);
        return NAN;
    }
    return v;
}

/* The member key of obj when it has the type is() checks (what: its name), NULL otherwise. */
static const cJSON *typed(rd *r, const cJSON *obj, const char *path, const char *key, int flags,
                          cJSON_bool (*is)(const cJSON *), const char *what)
{
    const cJSON *j = member(r, obj, path, key, flags);
    if (j && !is(j)) {
        rd_fail(r, path, key, "expected %s, not %s", what, type_name(j));
        return NULL;
    }
    return j;
}

static const cJSON *object(rd *r, const cJSON *obj, const char *path, const char *key, int flags)
{
    return typed(r, obj, path, key, flags, cJSON_IsObject, "an object");
}

static const cJSON *array(rd *r, const cJSON *obj, const char *path, const char *key, int flags)
{
    return typed(r, obj, path, key, flags, cJSON_IsArray, "an array");
}

/* A string, or NULL when absent. */
static const char *text(rd *r, const cJSON *obj, const char *path, const char *key, int flags)
{
    const cJSON *j = typed(r, obj, path, key, flags, cJSON_IsString, "a string");
    return j ? j->valuestring : NULL;
}

/* 1 true, 0 false, -1 absent. */
static int boolean(rd *r, const cJSON *obj, const char *path, const char *key, int flags)
{
    const cJSON *j = member(r, obj, path, key, flags);
    if (!j) {
        return -1;
    }
    if (!cJSON_IsBool(j)) {
        rd_fail(r, path, key, "expected true or false, not %s", type_name(j));
        return -1;
    }
    return cJSON_IsTrue(j);
}

/* ---- writing ---- */

/* text escaped for HTML content and attribute values alike. */
static void esc(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*p < 0x20 && *p != '\t' && *p != '\n' ? ' ' : *p, f);
        }
    }
}

/* v in the fewest digits that read back as the same double. */
static void put_num(FILE *f, double v)
{
    char buf[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, sizeof(buf), "%.*g", digits, v);
        if (strtod(buf, NULL) == v) {
            break;
        }
    }
    fputs(buf, f);
}

typedef enum disp {
    D_INT,   /* 1200 */
    D_MS,    /* 3.313 (ms) */
    D_RATE,  /* 300.0 */
    D_PCT,   /* a ratio as 5.0000% */
    D_PLAIN, /* as the number reads */
} disp;

static void put_disp(FILE *f, double v, disp d)
{
    if (isnan(v)) {
        fputs("&#8211;", f);
        return;
    }
    switch (d) {
    case D_INT: fprintf(f, "%.0f", v); break;
    case D_MS: fprintf(f, "%.3f", v); break;
    case D_RATE: fprintf(f, "%.1f", v); break;
    case D_PCT: fprintf(f, "%.4f%%", v * 100); break;
    case D_PLAIN: put_num(f, v); break;
    }
}

/* <tag data-fig="key" data-value="v">v as d</tag>; NAN is null. */
static void fig(FILE *f, const char *tag, const char *key, double v, disp d)
{
    fprintf(f, "<%s data-fig=\"", tag);
    esc(f, key);
    fputs("\" data-value=\"", f);
    if (isnan(v)) {
        fputs("null", f);
    } else {
        put_num(f, v);
    }
    fputs("\">", f);
    put_disp(f, v, d);
    fprintf(f, "</%s>", tag);
}

static void fig_text(FILE *f, const char *tag, const char *key, const char *value)
{
    fprintf(f, "<%s data-fig=\"", tag);
    esc(f, key);
    fputs("\" data-value=\"", f);
    esc(f, value);
    fputs("\">", f);
    esc(f, value);
    fprintf(f, "</%s>", tag);
}

/* Reads obj[key] (path.key) and writes it as a figure of that name in a cell. */
static double cell(FILE *f, rd *r, const cJSON *obj, const char *path, const char *key, int flags,
                   disp d)
{
    double v = num(r, obj, path, key, flags);
    char name[160];
    snprintf(name, sizeof(name), "%s%s%s", path, path[0] ? "." : "", key);
    fig(f, "td", name, v, d);
    return v;
}

static const char *const lat_keys[] = {"min", "mean", "p50", "p90", "p99", "p999", "max"};
#define N_LAT 7
static const char *const req_keys[] = {"total", "ok", "failed", "sent", "late", "dropped"};
#define N_REQ 6
static const char *const err_keys[] = {"http_4xx", "http_5xx", "connect", "timeout",
                                       "other",    "local",    "tls",     "cert"};
#define N_ERR 8
/* tls and cert came later: a file without them reads as none. */
#define ERR_FLAGS(e) ((e) < 6 ? REQ | COUNT : COUNT)
static const char *const err_colors[] = {"#e6a700", "#d62728", "#8c564b", "#9467bd",
                                         "#7f7f7f", "#17becf", "#bcbd22", "#e377c2"};

/* ---- the time series ---- */

enum {
    S_T,
    S_TARGET,
    S_ACHIEVED,
    S_SENT,
    S_OK,
    S_FAILED,
    S_P50,
    S_P90,
    S_P99,
    S_MAX,
    S_U50,
    S_U90,
    S_U99,
    S_ERR, /* N_ERR columns from here */
    S_N = S_ERR + N_ERR,
};

#define MAX_NAMES 8 /* request names drawn over time */

typedef struct series {
    size_t n;
    double *col[S_N];
    bool have_uncorrected, have_errors;
    size_t n_names;
    const char *names[MAX_NAMES];
    double *name_p99[MAX_NAMES];
    double *block;
} series;

static void series_fini(series *s)
{
    free(s->block);
}

static int series_read(series *s, rd *r, const cJSON *lines, const size_t *line_no,
                       const cJSON *by_name)
{
    memset(s, 0, sizeof(*s));
    s->n = lines ? (size_t)cJSON_GetArraySize(lines) : 0;
    if (by_name) {
        for (const cJSON *n = by_name->child; n && s->n_names < MAX_NAMES; n = n->next) {
            s->names[s->n_names++] = n->string;
        }
    }
    s->block = calloc((s->n ? s->n : 1) * (S_N + s->n_names), sizeof(double));
    if (!s->block) {
        return ST_ENOMEM;
    }
    for (size_t c = 0; c < S_N; c++) {
        s->col[c] = s->block + c * s->n;
    }
    for (size_t k = 0; k < s->n_names; k++) {
        s->name_p99[k] = s->block + (S_N + k) * s->n;
    }
    static const char *const keys[S_ERR] = {
        "t",      "target_rps", "achieved_rps", "sent",   "ok",
        "failed", "p50_ms",     "p90_ms",       "p99_ms", "max_ms",
        "p50_uncorrected_ms", "p90_uncorrected_ms", "p99_uncorrected_ms"};
    static const int flags[S_ERR] = {
        REQ | COUNT,     REQ | NONNEG,    REQ | NONNEG,    REQ | COUNT,   REQ | COUNT,
        REQ | COUNT,     REQ | NULLABLE,  REQ | NULLABLE,  REQ | NULLABLE, REQ | NULLABLE,
        NULLABLE,        NULLABLE,        NULLABLE};
    s->have_uncorrected = s->have_errors = s->n > 0;
    size_t i = 0;
    for (const cJSON *l = lines ? lines->child : NULL; l && !r->failed; l = l->next, i++) {
        r->line = line_no ? line_no[i] : 0;
        if (!cJSON_IsObject(l)) {
            rd_fail(r, "", "t", "the line is %s, not an object", type_name(l));
            break;
        }
        for (size_t c = 0; c < S_ERR; c++) {
            s->col[c][i] = num(r, l, "", keys[c], flags[c]);
        }
        if (i > 0 && s->col[S_T][i] <= s->col[S_T][i - 1]) {
            rd_fail(r, "", "t", "second %.0f does not come after second %.0f", s->col[S_T][i],
                    s->col[S_T][i - 1]);
        }
        s->have_uncorrected &= cJSON_GetObjectItemCaseSensitive(l, "p99_uncorrected_ms") != NULL;
        const cJSON *errors = object(r, l, "", "errors", 0);
        s->have_errors &= errors != NULL;
        for (size_t e = 0; e < N_ERR; e++) {
            s->col[S_ERR + e][i] = num(r, errors, "errors", err_keys[e], ERR_FLAGS(e));
        }
        const cJSON *names = object(r, l, "", "by_name", 0);
        for (size_t k = 0; k < s->n_names; k++) {
            char path[160];
            snprintf(path, sizeof(path), "by_name.%s", s->names[k]);
            s->name_p99[k][i] = num(r, object(r, names, "by_name", s->names[k], 0), path,
                                    "p99_ms", REQ | NULLABLE);
        }
    }
    r->line = 0;
    return 0;
}

/* ---- charts ---- */

#define CW 1100.0 /* the charts' drawing size (viewBox) */
#define CH 300.0
#define CL 72.0 /* margins: left, right, top, bottom */
#define CR 16.0
#define CT 34.0
#define CB 40.0

/* A step of 1, 2 or 5 times a power of ten near v. */
static double nice_step(double v)
{
    if (!(v > 0)) {
        return 1;
    }
    double p = pow(10, floor(log10(v)));
    double m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

typedef struct axes {
    double x0, x1, y1; /* data ranges: x from x0 to x1, y from 0 to y1 */
    bool log_x;        /* x is log10 of the value */
} axes;

static double px(const axes *a, double x)
{
    return CL + (x - a->x0) / (a->x1 - a->x0) * (CW - CL - CR);
}

static double py(const axes *a, double y)
{
    return CH - CB - y / a->y1 * (CH - CT - CB);
}

static void chart_open(FILE *f, const char *id, const char *title)
{
    fprintf(f, "<figure class=\"chart-box\"><figcaption>%s</figcaption>\n", title);
    fprintf(f, "<svg class=\"chart\" id=\"%s\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
               "aria-label=\"%s\"",
            id, CW, CH, title);
}

/* The frame, the grid and the labels of a; y_unit names the y axis; x_unit "s" for seconds, or
 * "us" on a log axis of microseconds. */
static void chart_axes(FILE *f, const axes *a, const char *y_unit, const char *x_unit)
{
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"plot\"/>\n",
            CL, CT, CW - CL - CR, CH - CT - CB);
    double step = nice_step(a->y1 / 5);
    for (double y = 0; y <= a->y1 * (1 + 1e-9); y += step) {
        fprintf(f, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                   "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                CL, CW - CR, py(a, y), py(a, y), CL - 6, py(a, y) + 4, y);
    }
    fprintf(f, "<text class=\"unit\" x=\"12\" y=\"%.1f\" transform=\"rotate(-90 12 %.1f)\" "
               "text-anchor=\"middle\">%s</text>\n",
            (CH - CB + CT) / 2, (CH - CB + CT) / 2, y_unit);
    if (a->log_x) {
        for (double d = floor(a->x0); d <= a->x1; d++) {
            for (int m = 1; m <= 5; m += m == 1 ? 1 : 3) {
                double x = d + log10(m);
                if (x < a->x0 || x > a->x1) {
                    continue;
                }
                double us = pow(10, x);
                fprintf(f, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                           "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
                        px(a, x), px(a, x), CT, CH - CB, px(a, x), CH - CB + 16);
                if (us < 1000) {
                    fprintf(f, "%g us</text>\n", us);
                } else {
                    fprintf(f, "%g ms</text>\n", us / 1000);
                }
            }
        }
        return;
    }
    double xs = nice_step((a->x1 - a->x0) / 10);
    if (xs < 1) {
        xs = 1;
    }
    for (double x = ceil(a->x0 / xs) * xs; x <= a->x1; x += xs) {
        fprintf(f, "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g%s</text>\n",
                px(a, x), CH - CB + 16, x + 0.0, x_unit);
    }
}

typedef struct plot {
    const char *key, *label, *color;
    const double *y;
    bool dashed;
} plot;

static void legend(FILE *f, const char *const *labels, const char *const *colors, const bool *dashed,
                   size_t n)
{
    double x = CL;
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"16\" y2=\"16\" stroke=\"%s\" "
                   "stroke-width=\"3\"%s/><text class=\"legend\" x=\"%.1f\" y=\"20\">",
                x, x + 22, colors[i], dashed && dashed[i] ? " stroke-dasharray=\"6 4\"" : "",
                x + 28);
        esc(f, labels[i]);
        fputs("</text>\n", f);
        x += 40 + 7.5 * (double)strlen(labels[i]);
    }
}

/* A y range's top for values up to top: the next grid line above it (1 when nothing is above 0). */
static double round_top(double top)
{
    if (!(top > 0)) {
        return 1;
    }
    double step = nice_step(top / 5);
    return ceil(top * (1 + 1e-9) / step) * step;
}

/* The y range's top: above every finite value of the plots. */
static double y_top(const plot *p, size_t np, size_t n)
{
    double top = 0;
    for (size_t k = 0; k < np; k++) {
        for (size_t i = 0; i < n; i++) {
            if (p[k].y[i] > top) {
                top = p[k].y[i];
            }
        }
    }
    return round_top(top);
}

static size_t finite_points(const plot *p, size_t np, size_t n)
{
    size_t points = 0;
    for (size_t k = 0; k < np; k++) {
        for (size_t i = 0; i < n; i++) {
            points += isfinite(p[k].y[i]) != 0;
        }
    }
    return points;
}

/* Lines over the seconds t; a null value breaks its line. */
static void line_chart(FILE *f, const char *id, const char *title, const char *y_unit,
                       const double *t, size_t n, const plot *p, size_t np)
{
    size_t points = finite_points(p, np, n);
    chart_open(f, id, title);
    fprintf(f, " data-points=\"%zu\">\n", points);
    axes a = {.x0 = n ? t[0] - 0.5 : 0, .x1 = n ? t[n - 1] + 0.5 : 1, .y1 = y_top(p, np, n)};
    chart_axes(f, &a, y_unit, "s");
    const char *labels[16] = {0}, *colors[16] = {0};
    bool dashed[16] = {0};
    for (size_t k = 0; k < np && k < 16; k++) {
        labels[k] = p[k].label;
        colors[k] = p[k].color;
        dashed[k] = p[k].dashed;
    }
    legend(f, labels, colors, dashed, np < 16 ? np : 16);
    for (size_t k = 0; k < np; k++) {
        fputs("<path class=\"series\" data-series=\"", f);
        esc(f, p[k].key);
        fprintf(f, "\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s d=\"", p[k].color,
                p[k].dashed ? " stroke-dasharray=\"6 4\"" : "");
        bool pen = false;
        for (size_t i = 0; i < n; i++) {
            if (!isfinite(p[k].y[i])) {
                pen = false;
                continue;
            }
            fprintf(f, "%c%.1f %.1f ", pen ? 'L' : 'M', px(&a, t[i]), py(&a, p[k].y[i]));
            pen = true;
        }
        fputs("\"/>\n", f);
        /* Markers: a second between two nulls is a point, not a line. */
        for (size_t i = 0; n <= 120 && i < n; i++) {
            if (isfinite(p[k].y[i])) {
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"><title>%gs: ",
                        px(&a, t[i]), py(&a, p[k].y[i]), p[k].color, t[i]);
                esc(f, p[k].label);
                fprintf(f, " %g</title></circle>\n", p[k].y[i]);
            }
        }
    }
    if (points == 0) {
        fprintf(f, "<text class=\"empty\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">no values "
                   "in this run</text>\n",
                CW / 2, CH / 2);
    }
    fputs("</svg></figure>\n", f);
}

/* The failures of each second by class, stacked. */
static void errors_chart(FILE *f, const series *s)
{
    plot p[N_ERR];
    double *sum = calloc(s->n ? s->n : 1, sizeof(double));
    size_t np = s->have_errors ? N_ERR : 1;
    for (size_t e = 0; e < np; e++) {
        p[e] = (plot){.key = s->have_errors ? err_keys[e] : "failed",
                      .label = s->have_errors ? err_keys[e] : "failed",
                      .color = err_colors[s->have_errors ? e : 1],
                      .y = s->have_errors ? s->col[S_ERR + e] : s->col[S_FAILED]};
    }
    for (size_t i = 0; sum && i < s->n; i++) {
        for (size_t e = 0; e < np; e++) {
            sum[i] += p[e].y[i];
        }
    }
    plot total = {.y = sum ? sum : s->col[S_FAILED]};
    size_t points = finite_points(p, np, s->n);
    chart_open(f, "chart-errors", "Errors by class per second");
    fprintf(f, " data-points=\"%zu\">\n", points);
    axes a = {.x0 = s->n ? s->col[S_T][0] - 0.5 : 0,
              .x1 = s->n ? s->col[S_T][s->n - 1] + 0.5 : 1,
              .y1 = y_top(&total, 1, s->n)};
    chart_axes(f, &a, "failed requests", "s");
    const char *labels[N_ERR], *colors[N_ERR];
    for (size_t e = 0; e < np; e++) {
        labels[e] = p[e].label;
        colors[e] = p[e].color;
    }
    legend(f, labels, colors, NULL, np);
    double w = (px(&a, 1) - px(&a, 0)) * 0.8;
    size_t bars = 0;
    for (size_t i = 0; i < s->n; i++) {
        double base = 0;
        for (size_t e = 0; e < np; e++) {
            double v = p[e].y[i];
            if (!(v > 0)) {
                continue;
            }
            fprintf(f, "<rect class=\"bar\" data-series=\"%s\" x=\"%.2f\" y=\"%.2f\" "
                       "width=\"%.2f\" height=\"%.2f\" fill=\"%s\"><title>%gs: %s %g</title>"
                       "</rect>\n",
                    p[e].key, px(&a, s->col[S_T][i]) - w / 2, py(&a, base + v), w,
                    py(&a, base) - py(&a, base + v), p[e].color, s->col[S_T][i], p[e].label, v);
            base += v;
            bars++;
        }
    }
    if (bars == 0) {
        fprintf(f, "<text class=\"empty\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">no "
                   "failed request in this run</text>\n",
                CW / 2, CH / 2);
    }
    fputs("</svg></figure>\n", f);
    free(sum);
}

/* A histogram's bins [[low, high, count], ...] read strictly; n bins into low/high/count (NULL:
 * none or a failure). */
typedef struct bins {
    size_t n;
    double *low, *high, *count;
} bins;

static void bins_read(bins *b, rd *r, const cJSON *hist, const char *key)
{
    memset(b, 0, sizeof(*b));
    const cJSON *a = array(r, hist, "latency_histogram", key, REQ);
    if (!a) {
        return;
    }
    size_t n = (size_t)cJSON_GetArraySize(a);
    b->low = calloc(3 * (n ? n : 1), sizeof(double));
    if (!b->low) {
        rd_fail(r, "latency_histogram", key, "out of memory");
        return;
    }
    b->high = b->low + n;
    b->count = b->high + n;
    size_t i = 0;
    for (const cJSON *bin = a->child; bin; bin = bin->next, i++) {
        double v[3] = {-1, -1, -1};
        int k = 0;
        for (const cJSON *x = cJSON_IsArray(bin) ? bin->child : NULL; x && k < 3; x = x->next) {
            v[k++] = cJSON_IsNumber(x) && x->valuedouble >= 0 &&
                             x->valuedouble == floor(x->valuedouble)
                         ? x->valuedouble
                         : -1;
        }
        if (cJSON_GetArraySize(bin) != 3 || v[0] < 0 || v[1] < v[0] || v[2] < 0 ||
            (i > 0 && v[0] <= b->high[i - 1])) {
            rd_fail(r, "latency_histogram", key,
                    "bin %zu is not [low, high, count] in whole microseconds, low <= high, "
                    "after the previous bin",
                    i);
            return;
        }
        b->low[i] = v[0];
        b->high[i] = v[1];
        b->count[i] = v[2];
    }
    b->n = n;
}

/* Percentile markers (from the summary's latency_ms) over a log axis of microseconds. */
static void distribution_marks(FILE *f, const axes *a, const double *lat_ms)
{
    static const size_t marks[] = {2, 3, 4}; /* p50, p90, p99 */
    for (size_t m = 0; m < 3; m++) {
        double ms = lat_ms[marks[m]];
        if (!(ms > 0)) {
            continue;
        }
        double x = log10(ms * 1000);
        if (x < a->x0 || x > a->x1) {
            continue;
        }
        fprintf(f, "<line class=\"mark\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                   "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\">%s %.3f ms</text>\n",
                px(a, x), px(a, x), CT, CH - CB, px(a, x) + 4, CT + 14 + 14 * (double)m,
                lat_keys[marks[m]], ms);
    }
}

static void distribution_chart(FILE *f, rd *r, const cJSON *summary, const double *lat_ms,
                               const double *lat_unc_ms)
{
    const cJSON *hist = object(r, summary, "", "latency_histogram", 0);
    if (!hist) {
        /* No histogram: the percentiles, each a point of the distribution. */
        static const double at[N_LAT] = {0, NAN, 50, 90, 99, 99.9, 100};
        double x[N_LAT - 1], yc[N_LAT - 1], yu[N_LAT - 1];
        size_t n = 0;
        for (size_t k = 0; k < N_LAT; k++) {
            if (!isnan(at[k])) {
                x[n] = (double)n;
                yc[n] = lat_ms[k];
                yu[n] = lat_unc_ms[k];
                n++;
            }
        }
        plot p[2] = {{"corrected", "corrected (min, p50, p90, p99, p99.9, max)", "#1f77b4", yc,
                      false},
                     {"uncorrected", "uncorrected", "#ff7f0e", yu, true}};
        line_chart(f, "chart-distribution", "Latency distribution: the percentiles", "ms", x, n, p,
                   2);
        return;
    }
    const char *unit = text(r, hist, "latency_histogram", "unit", REQ);
    if (unit && strcmp(unit, "us") != 0) {
        rd_fail(r, "latency_histogram", "unit", "expected \"us\", not \"%s\"", unit);
    }
    bins c, u;
    bins_read(&c, r, hist, "corrected");
    bins_read(&u, r, hist, "uncorrected");
    double lo = INFINITY, hi = 0, top = 0;
    size_t points = 0;
    const bins *both[2] = {&c, &u};
    for (size_t k = 0; k < 2; k++) {
        for (size_t i = 0; i < both[k]->n; i++) {
            double l = both[k]->low[i] < 1 ? 1 : both[k]->low[i];
            lo = l < lo ? l : lo;
            hi = both[k]->high[i] + 1 > hi ? both[k]->high[i] + 1 : hi;
            /* Per unit of log width, so that wide bins do not look heavier than they are. */
            double w = log10(both[k]->high[i] + 1) - log10(l);
            double d = w > 0 ? both[k]->count[i] / w : both[k]->count[i];
            top = d > top ? d : top;
            points += both[k]->count[i] > 0;
        }
    }
    chart_open(f, "chart-distribution", "Latency distribution (merged histogram, log scale)");
    fprintf(f, " data-points=\"%zu\">\n", points);
    /* The occupied range with a little room: a decade more would squeeze the bars. */
    axes a = {.x0 = points ? log10(lo) - 0.05 : 0, .x1 = points ? log10(hi) + 0.05 : 1,
              .y1 = round_top(top), .log_x = true};
    chart_axes(f, &a, "requests per decade", "");
    const char *labels[2] = {"corrected", "uncorrected"};
    const char *colors[2] = {"#1f77b4", "#ff7f0e"};
    bool dashed[2] = {false, true};
    legend(f, labels, colors, dashed, 2);
    for (size_t k = 0; k < 2; k++) {
        if (k == 1) {
            fprintf(f, "<path class=\"series\" data-series=\"uncorrected\" fill=\"none\" "
                       "stroke=\"%s\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\" d=\"",
                    colors[1]);
        }
        for (size_t i = 0; i < both[k]->n; i++) {
            double l = log10(both[k]->low[i] < 1 ? 1 : both[k]->low[i]);
            double h = log10(both[k]->high[i] + 1);
            double d = h > l ? both[k]->count[i] / (h - l) : both[k]->count[i];
            if (k == 0) {
                fprintf(f, "<rect class=\"bar\" data-series=\"corrected\" x=\"%.2f\" y=\"%.2f\" "
                           "width=\"%.2f\" height=\"%.2f\" fill=\"%s\"><title>%.0f-%.0f us: "
                           "%.0f</title></rect>\n",
                        px(&a, l), py(&a, d), px(&a, h) - px(&a, l) > 0.5 ? px(&a, h) - px(&a, l) : 0.5,
                        py(&a, 0) - py(&a, d), colors[0], both[k]->low[i], both[k]->high[i],
                        both[k]->count[i]);
            } else {
                fprintf(f, "M%.2f %.2f H%.2f ", px(&a, l), py(&a, d), px(&a, h));
            }
        }
        if (k == 1) {
            fputs("\"/>\n", f);
        }
    }
    distribution_marks(f, &a, lat_ms);
    if (points == 0) {
        fprintf(f, "<text class=\"empty\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">no "
                   "responses in this run</text>\n",
                CW / 2, CH / 2);
    }
    fputs("</svg></figure>\n", f);
    free(c.low);
    free(u.low);
}

/* ---- the sections ---- */

static const char css[] =
    "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1180px;color:#222;"
    "padding:0 16px}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid "
    "#ddd;padding-bottom:4px}"
    "table{border-collapse:collapse;margin:4px 0 12px}th,td{padding:3px 10px;border-bottom:1px "
    "solid #eee;text-align:right;font-variant-numeric:tabular-nums}th:first-child,td:first-child{"
    "text-align:left}th{background:#f6f6f6;font-weight:600}"
    ".verdict{display:inline-block;padding:2px 10px;border-radius:4px;font-weight:700;color:#fff}"
    ".pass{background:#2ca02c}.fail{background:#d62728}.warn{background:#e6a700}"
    "td.pass,td.fail{color:#fff;text-align:center}"
    ".chart-box{margin:8px 0 18px}.chart-box figcaption{font-weight:600;margin-bottom:2px}"
    "svg.chart{width:100%;height:auto;background:#fff}"
    ".plot{fill:#fcfcfc;stroke:#bbb}.grid{stroke:#e4e4e4}.mark{stroke:#444;stroke-dasharray:3 3}"
    ".tick,.legend,.unit,.empty{font:12px system-ui,sans-serif;fill:#444}.empty{font-size:16px}"
    "dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:8px 0}"
    "dl.meta dt{color:#666}dl.meta dd{margin:0}.muted{color:#777}";

static void meta_row(FILE *f, const char *label)
{
    fprintf(f, "<dt>%s</dt>", label);
}

static void section_meta(FILE *f, rd *r, const cJSON *s, const char *run_id, const char *status,
                         size_t n_agents, size_t n_lost)
{
    fputs("<h2>Run</h2><dl class=\"meta\" data-scope=\"run\">", f);
    meta_row(f, "run id");
    fig_text(f, "dd", "run_id", run_id);
    meta_row(f, "status");
    fig_text(f, "dd", "status", status);
    const char *error = text(r, s, "", "error", 0);
    if (error && error[0]) {
        meta_row(f, "error");
        fig_text(f, "dd", "error", error);
    }
    int closed = boolean(r, s, "", "closed_loop", REQ);
    meta_row(f, "plan");
    fputs("<dd>", f);
    fig(f, "span", "duration_s", num(r, s, "", "duration_s", REQ | NONNEG), D_PLAIN);
    fputs(" s, ", f);
    if (closed == 1) {
        fputs("closed loop (as fast as the connections allow)", f);
    } else {
        fig(f, "span", "rate.target_rps",
            num(r, object(r, s, "", "rate", REQ), "rate", "target_rps", REQ | NULLABLE), D_RATE);
        fputs(" requests/s in all", f);
    }
    fputs("</dd>", f);
    meta_row(f, "agents");
    fputs("<dd>", f);
    fig(f, "span", "agents.count", (double)n_agents, D_INT);
    if (n_lost) {
        fprintf(f, " (%zu lost)", n_lost);
    }
    fputs("</dd>", f);
    meta_row(f, "start skew");
    fputs("<dd>", f);
    fig(f, "span", "start_skew_ms", num(r, s, "", "start_skew_ms", NONNEG), D_MS);
    fputs(" ms <span class=\"muted\">(the spread of the agents' realised starts)</span></dd>", f);
    static const char *const counters[] = {"late_records", "duplicate_records",
                                           "malformed_messages", "out_of_memory_records"};
    for (size_t i = 0; i < 4; i++) {
        double v = num(r, s, "", counters[i], COUNT);
        if (!isnan(v)) {
            meta_row(f, counters[i]);
            fig(f, "dd", counters[i], v, D_INT);
        }
    }
    const cJSON *inc = array(r, s, "", "incomplete_seconds", 0);
    if (inc) {
        meta_row(f, "incomplete seconds");
        fputs("<dd data-fig=\"incomplete_seconds\">", f);
        for (const cJSON *x = inc->child; x; x = x->next) {
            if (!cJSON_IsNumber(x)) {
                rd_fail(r, "", "incomplete_seconds", "expected numbers, found %s", type_name(x));
                break;
            }
            fprintf(f, "%s%g", x == inc->child ? "" : " ", x->valuedouble);
        }
        fputs(inc->child ? "</dd>" : "none</dd>", f);
    }
    fputs("</dl>\n", f);
}

/* A verdict's row (a threshold's, a regression limit's) up to its expression: reads v's
 * "expression", "unit" and "result" (pass or fail) into *pass and *how (the figures' display).
 * false when v does not have them (r says why). */
static bool verdict_open(FILE *f, rd *r, const cJSON *v, const char *path, const char *scope,
                         size_t i, bool *pass, disp *how)
{
    const char *expr = text(r, v, path, "expression", REQ);
    const char *unit = text(r, v, path, "unit", REQ);
    const char *result = text(r, v, path, "result", REQ);
    if (r->failed) {
        return false;
    }
    if (strcmp(result, "pass") != 0 && strcmp(result, "fail") != 0) {
        rd_fail(r, path, "result", "expected \"pass\" or \"fail\", not \"%s\"", result);
        return false;
    }
    *pass = strcmp(result, "pass") == 0;
    *how = strcmp(unit, "ms") == 0 ? D_MS : D_PCT;
    fprintf(f, "<tr data-scope=\"%s:%zu\"><td data-fig=\"expression\">", scope, i);
    esc(f, expr);
    fputs("</td>", f);
    return true;
}

static void verdict_close(FILE *f, bool pass)
{
    fprintf(f, "<td class=\"%s\" data-fig=\"result\" data-value=\"%s\">%s</td></tr>\n",
            pass ? "pass" : "fail", pass ? "pass" : "fail", pass ? "pass" : "FAIL");
}

/* The thresholds' table; returns how many failed. */
static size_t section_thresholds(FILE *f, rd *r, const cJSON *s)
{
    const cJSON *th = array(r, s, "", "thresholds", 0);
    if (!th) {
        return 0;
    }
    size_t failed = 0, i = 0;
    fputs("<h2>Thresholds</h2><table id=\"thresholds\"><tr><th>expression</th><th>observed</th>"
          "<th>wanted</th><th>result</th></tr>\n",
          f);
    for (const cJSON *t = th->child; t; t = t->next, i++) {
        char path[40];
        snprintf(path, sizeof(path), "thresholds[%zu]", i);
        const char *op = text(r, t, path, "op", REQ);
        double limit = num(r, t, path, "limit", REQ);
        double observed = num(r, t, path, "observed", REQ | NULLABLE);
        int aborted = boolean(r, t, path, "aborted", 0);
        double at = num(r, t, path, "aborted_at_s", NONNEG);
        bool pass;
        disp d;
        if (!verdict_open(f, r, t, path, "threshold", i, &pass, &d)) {
            break;
        }
        failed += !pass;
        fig(f, "td", "observed", observed, d);
        fputs("<td>", f);
        esc(f, op);
        fputc(' ', f);
        fig(f, "span", "limit", limit, d);
        fputs("</td>", f);
        verdict_close(f, pass);
        if (aborted == 1) {
            fprintf(f, "<tr><td colspan=\"4\" class=\"muted\">it stopped the run at %gs</td></tr>\n",
                    isnan(at) ? 0 : at);
        }
    }
    fputs("</table>\n", f);
    return failed;
}

static void latency_row(FILE *f, rd *r, const cJSON *s, const char *key, const char *label,
                        int flags, double *ms)
{
    const cJSON *l = object(r, s, "", key, flags);
    if (!l) {
        return;
    }
    fprintf(f, "<tr><td>%s</td>", label);
    for (size_t k = 0; k < N_LAT; k++) {
        double v = cell(f, r, l, key, lat_keys[k], REQ | NULLABLE | NONNEG, D_MS);
        if (ms) {
            ms[k] = v;
        }
    }
    fputs("</tr>\n", f);
}

static void latency_head(FILE *f, const char *first)
{
    fprintf(f, "<tr><th>%s</th>", first);
    for (size_t k = 0; k < N_LAT; k++) {
        fprintf(f, "<th>%s ms</th>", lat_keys[k]);
    }
    fputs("</tr>\n", f);
}

static void section_totals(FILE *f, rd *r, const cJSON *s, double *lat_ms, double *lat_unc_ms)
{
    fputs("<h2>Latency</h2><table id=\"latency\" data-scope=\"run\">", f);
    latency_head(f, "");
    latency_row(f, r, s, "latency_ms", "corrected (from the intended send)", REQ, lat_ms);
    latency_row(f, r, s, "latency_uncorrected_ms", "uncorrected (from the actual send)", REQ,
                lat_unc_ms);
    latency_row(f, r, s, "latency_with_timeouts_ms", "corrected, timeouts at the timeout", 0,
                NULL);
    fputs("</table>\n<h2>Requests</h2><table id=\"requests\" data-scope=\"run\"><tr>", f);
    for (size_t k = 0; k < N_REQ; k++) {
        fprintf(f, "<th>%s</th>", req_keys[k]);
    }
    fputs("<th>target rps</th><th>achieved rps</th><th>bytes in</th><th>bytes out</th></tr><tr>",
          f);
    const cJSON *req = object(r, s, "", "requests", REQ);
    for (size_t k = 0; k < N_REQ; k++) {
        cell(f, r, req, "requests", req_keys[k], REQ | COUNT, D_INT);
    }
    const cJSON *rate = object(r, s, "", "rate", REQ);
    cell(f, r, rate, "rate", "target_rps", REQ | NULLABLE | NONNEG, D_RATE);
    cell(f, r, rate, "rate", "achieved_rps", REQ | NONNEG, D_RATE);
    const cJSON *bytes = object(r, s, "", "bytes", REQ);
    cell(f, r, bytes, "bytes", "in", REQ | COUNT, D_INT);
    cell(f, r, bytes, "bytes", "out", REQ | COUNT, D_INT);
    fputs("</tr></table>\n<table id=\"errors\" data-scope=\"run\"><tr><th>errors</th>", f);
    for (size_t k = 0; k < N_ERR; k++) {
        fprintf(f, "<th>%s</th>", err_keys[k]);
    }
    fputs("</tr><tr><td>count</td>", f);
    const cJSON *err = object(r, s, "", "errors", REQ);
    for (size_t k = 0; k < N_ERR; k++) {
        cell(f, r, err, "errors", err_keys[k], ERR_FLAGS(k), D_INT);
    }
    fputs("</tr></table>\n", f);
}

static void section_by_name(FILE *f, rd *r, const cJSON *by_name)
{
    if (!by_name) {
        return;
    }
    fputs("<h2>Per request name</h2><table id=\"by-name\"><tr><th>name</th>", f);
    for (size_t k = 0; k < N_REQ; k++) {
        fprintf(f, "<th>%s</th>", req_keys[k]);
    }
    for (size_t k = 0; k < N_ERR; k++) {
        fprintf(f, "<th>%s</th>", err_keys[k]);
    }
    fputs("</tr>\n", f);
    for (const cJSON *n = by_name->child; n && !r->failed; n = n->next) {
        char path[300];
        snprintf(path, sizeof(path), "requests_by_name.%s", n->string);
        if (!cJSON_IsObject(n)) {
            rd_fail(r, "requests_by_name", n->string, "expected an object, not %s", type_name(n));
            break;
        }
        fputs("<tr data-scope=\"name:", f);
        esc(f, n->string);
        fputs("\"><td data-fig=\"name\">", f);
        esc(f, n->string);
        fputs("</td>", f);
        char sub[320];
        snprintf(sub, sizeof(sub), "%s.requests", path);
        const cJSON *req = object(r, n, path, "requests", REQ);
        for (size_t k = 0; k < N_REQ; k++) {
            fig(f, "td", (snprintf(sub, sizeof(sub), "requests.%s", req_keys[k]), sub),
                num(r, req, path, req_keys[k], REQ | COUNT), D_INT);
        }
        const cJSON *err = object(r, n, path, "errors", REQ);
        for (size_t k = 0; k < N_ERR; k++) {
            fig(f, "td", (snprintf(sub, sizeof(sub), "errors.%s", err_keys[k]), sub),
                num(r, err, path, err_keys[k], ERR_FLAGS(k)), D_INT);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table>\n<table id=\"by-name-latency\">", f);
    latency_head(f, "name");
    for (const cJSON *n = by_name->child; n && !r->failed; n = n->next) {
        for (int u = 0; u < 2; u++) {
            const char *key = u ? "latency_uncorrected_ms" : "latency_ms";
            char path[300];
            snprintf(path, sizeof(path), "requests_by_name.%s", n->string);
            const cJSON *l = object(r, n, path, key, REQ);
            fputs("<tr data-scope=\"name:", f);
            esc(f, n->string);
            fputs("\"><td>", f);
            esc(f, n->string);
            fprintf(f, "%s</td>", u ? " <span class=\"muted\">(uncorrected)</span>" : "");
            for (size_t k = 0; k < N_LAT; k++) {
                char fig_key[64];
                snprintf(fig_key, sizeof(fig_key), "%s.%s", key, lat_keys[k]);
                fig(f, "td", fig_key, num(r, l, path, lat_keys[k], REQ | NULLABLE | NONNEG),
                    D_MS);
            }
            fputs("</tr>\n", f);
        }
    }
    fputs("</table>\n", f);
}

/* The agents' table; counts the agents and the lost ones. */
static void section_agents(FILE *f, rd *r, const cJSON *agents)
{
    if (!agents) {
        return;
    }
    fputs("<h2>Agents</h2><table id=\"agents\"><tr><th>name</th><th>host</th><th>state</th>"
          "<th>share rps</th><th>requests</th><th>ok</th><th>failed</th><th>clock offset ms</th>"
          "<th>clock rtt ms</th><th>where / why</th></tr>\n",
          f);
    size_t i = 0;
    for (const cJSON *a = agents->child; a && !r->failed; a = a->next, i++) {
        char path[40];
        snprintf(path, sizeof(path), "agents[%zu]", i);
        double id = num(r, a, path, "id", REQ | COUNT);
        const char *name = text(r, a, path, "name", REQ);
        const char *host = text(r, a, path, "host", 0);
        const char *state = text(r, a, path, "state", REQ);
        if (r->failed) {
            break;
        }
        fprintf(f, "<tr data-scope=\"agent:%.0f\"><td data-fig=\"name\">", id);
        esc(f, name);
        fputs("</td><td>", f);
        esc(f, host);
        fputs("</td>", f);
        fig_text(f, "td", "state", state);
        cell(f, r, a, "", "share_rps", NONNEG, D_RATE);
        cell(f, r, a, "", "requests", REQ | COUNT, D_INT);
        cell(f, r, a, "", "ok", REQ | COUNT, D_INT);
        cell(f, r, a, "", "failed", REQ | COUNT, D_INT);
        cell(f, r, a, "", "clock_offset_ms", 0, D_MS);
        cell(f, r, a, "", "clock_rtt_ms", NONNEG, D_MS);
        fputs("<td>", f);
        static const char *const extra[] = {"availability_zone", "task", "reason"};
        for (size_t k = 0; k < 3; k++) {
            const char *v = text(r, a, path, extra[k], 0);
            if (v && v[0]) {
                fprintf(f, "<div>%s: ", extra[k]);
                esc(f, v);
                fputs("</div>", f);
            }
        }
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
}

static void section_rate_changes(FILE *f, rd *r, const cJSON *s)
{
    const cJSON *rc = array(r, s, "", "rate_changes", 0);
    if (!rc) {
        return;
    }
    fputs("<h2>Rate changes</h2><table id=\"rate-changes\"><tr><th>at s</th><th>from rps</th>"
          "<th>to rps</th><th>by</th></tr>\n",
          f);
    size_t i = 0;
    for (const cJSON *c = rc->child; c && !r->failed; c = c->next, i++) {
        char path[40];
        snprintf(path, sizeof(path), "rate_changes[%zu]", i);
        fprintf(f, "<tr data-scope=\"rate_change:%zu\">", i);
        cell(f, r, c, "", "at_s", REQ | NONNEG, D_PLAIN);
        cell(f, r, c, "", "from_rps", REQ | NONNEG, D_RATE);
        cell(f, r, c, "", "to_rps", REQ | NONNEG, D_RATE);
        fputs("<td>", f);
        esc(f, text(r, c, path, "by", REQ));
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
}

/* The comparison with an earlier run (baseline.h): its deltas and regression limits. Returns how
 * many limits failed. */
static size_t section_baseline(FILE *f, rd *r, const cJSON *s)
{
    const cJSON *b = object(r, s, "", "baseline", 0);
    if (!b) {
        return 0;
    }
    /* A file's path, or null for a run read back from the table named beside it. */
    const cJSON *file = member(r, b, "baseline", "file", REQ);
    const char *table = NULL;
    if (file && !cJSON_IsString(file) && !cJSON_IsNull(file)) {
        rd_fail(r, "baseline", "file", "expected a string or null, not %s", type_name(file));
    } else if (cJSON_IsNull(file)) {
        table = text(r, b, "baseline", "table", REQ);
    }
    const cJSON *old_id = member(r, b, "baseline", "run_id", 0);
    fputs("<h2>Against the baseline</h2><p data-scope=\"baseline\">", f);
    if (cJSON_IsString(file)) {
        fig_text(f, "span", "file", file->valuestring);
    } else {
        fputs("stored in table ", f);
        fig_text(f, "span", "table", table);
    }
    if (cJSON_IsString(old_id)) {
        fputs(", run ", f);
        fig_text(f, "span", "run_id", old_id->valuestring);
    }
    fputs("</p><table id=\"baseline-deltas\"><tr><th>figure</th><th>baseline</th><th>this run"
          "</th><th>delta</th><th>change</th></tr>\n",
          f);
    const cJSON *deltas = object(r, b, "baseline", "deltas", REQ);
    for (const cJSON *d = deltas ? deltas->child : NULL; d && !r->failed; d = d->next) {
        disp how = strncmp(d->string, "latency", 7) == 0 ? D_MS
                   : strcmp(d->string, "error_rate") == 0 ? D_PCT
                                                           : D_RATE;
        fputs("<tr data-scope=\"delta:", f);
        esc(f, d->string);
        fputs("\"><td>", f);
        esc(f, d->string);
        fputs("</td>", f);
        cell(f, r, d, "", "baseline", REQ | NULLABLE, how);
        cell(f, r, d, "", "observed", REQ | NULLABLE, how);
        cell(f, r, d, "", "delta", REQ | NULLABLE, how);
        cell(f, r, d, "", "change", REQ | NULLABLE, D_PCT);
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
    const cJSON *regs = array(r, b, "baseline", "regressions", REQ);
    size_t failed = 0, i = 0;
    if (regs && regs->child) {
        fputs("<table id=\"regressions\"><tr><th>limit</th><th>baseline</th><th>this run</th>"
              "<th>allowed</th><th>result</th></tr>\n",
              f);
    }
    for (const cJSON *g = regs ? regs->child : NULL; g && !r->failed; g = g->next, i++) {
        char path[48];
        snprintf(path, sizeof(path), "baseline.regressions[%zu]", i);
        bool pass;
        disp how;
        if (!verdict_open(f, r, g, path, "regression", i, &pass, &how)) {
            break;
        }
        failed += !pass;
        cell(f, r, g, "", "baseline", REQ | NULLABLE, how);
        cell(f, r, g, "", "observed", REQ | NULLABLE, how);
        cell(f, r, g, "", "allowed", REQ | NULLABLE, how);
        verdict_close(f, pass);
    }
    if (regs && regs->child) {
        fputs("</table>\n", f);
    }
    return failed;
}

static void section_charts(FILE *f, const series *s)
{
    fputs("<h2>Over time</h2>\n", f);
    const double *t = s->col[S_T];
    plot rate[2] = {{"target_rps", "target rps", "#7f7f7f", s->col[S_TARGET], true},
                    {"achieved_rps", "achieved rps", "#1f77b4", s->col[S_ACHIEVED], false}};
    line_chart(f, "chart-rps", "Target and achieved requests per second", "requests/s", t, s->n,
               rate, 2);
    plot lat[6] = {{"p50_ms", "p50", "#2ca02c", s->col[S_P50], false},
                   {"p90_ms", "p90", "#1f77b4", s->col[S_P90], false},
                   {"p99_ms", "p99", "#d62728", s->col[S_P99], false},
                   {"p50_uncorrected_ms", "p50 uncorrected", "#2ca02c", s->col[S_U50], true},
                   {"p90_uncorrected_ms", "p90 uncorrected", "#1f77b4", s->col[S_U90], true},
                   {"p99_uncorrected_ms", "p99 uncorrected", "#d62728", s->col[S_U99], true}};
    line_chart(f, "chart-latency",
               s->have_uncorrected ? "Latency percentiles per second, corrected (solid) and "
                                     "uncorrected (dashed)"
                                   : "Latency percentiles per second (corrected; this time "
                                     "series has no uncorrected figures)",
               "ms", t, s->n, lat, s->have_uncorrected ? 6 : 3);
    errors_chart(f, s);
    if (s->n_names) {
        static const char *const colors[MAX_NAMES] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                                      "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
        plot p[MAX_NAMES];
        for (size_t k = 0; k < s->n_names; k++) {
            p[k] = (plot){s->names[k], s->names[k], colors[k], s->name_p99[k], false};
        }
        line_chart(f, "chart-by-name", "p99 latency per request name, per second", "ms", t, s->n,
                   p, s->n_names);
    }
}

int st_html_report_text(const cJSON *summary, const cJSON *lines, const st_html_source *src,
                        char **out, char *err, size_t err_len)
{
    *out = NULL;
    rd r = {.file = src && src->summary_name ? src->summary_name : "the summary",
            .err = err,
            .err_len = err_len};
    if (!cJSON_IsObject(summary)) {
        return st_errf(err, err_len, ST_EINVAL, "%s: the summary is not a JSON object", r.file);
    }
    if (lines && !cJSON_IsArray(lines)) {
        return st_errf(err, err_len, ST_EINVAL, "the time series is not an array");
    }
    const cJSON *by_name = object(&r, summary, "", "requests_by_name", 0);
    const cJSON *agents = array(&r, summary, "", "agents", 0);
    size_t n_agents = agents ? (size_t)cJSON_GetArraySize(agents) : 0, n_lost = 0;
    for (const cJSON *a = agents ? agents->child : NULL; a; a = a->next) {
        n_lost += cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "lost"));
    }
    const char *run_id = text(&r, summary, "", "run_id", 0);
    const char *status = text(&r, summary, "", "status", 0);
    run_id = run_id ? run_id : "(no run id)";
    status = status ? status : "unknown";
    if (r.failed) {
        return ST_EINVAL;
    }
    series s;
    rd rs = {.file = src && src->series_name ? src->series_name : "the time series",
             .err = err,
             .err_len = err_len};
    if (series_read(&s, &rs, lines, src ? src->series_lines : NULL, by_name) != 0) {
        return ST_ENOMEM;
    }
    if (rs.failed) {
        series_fini(&s);
        return ST_EINVAL;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        series_fini(&s);
        return ST_ENOMEM;
    }
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
          "style-src 'unsafe-inline'\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<title>stampede run ",
          f);
    esc(f, run_id);
    fprintf(f, "</title>\n<style>%s</style></head>\n<body>\n", css);
    /* The body is written to its own stream: the verdict at the top needs the thresholds. */
    char *body = NULL;
    size_t body_len = 0;
    FILE *b = open_memstream(&body, &body_len);
    double lat_ms[N_LAT], lat_unc_ms[N_LAT];
    size_t failed = 0;
    if (b) {
        section_meta(b, &r, summary, run_id, status, n_agents, n_lost);
        failed = section_thresholds(b, &r, summary);
        failed += section_baseline(b, &r, summary);
        section_totals(b, &r, summary, lat_ms, lat_unc_ms);
        section_charts(b, &s);
        fputs("<h2>Latency distribution</h2>\n", b);
        if (!r.failed) {
            distribution_chart(b, &r, summary, lat_ms, lat_unc_ms);
        }
        section_by_name(b, &r, by_name);
        section_agents(b, &r, agents);
        section_rate_changes(b, &r, summary);
        fputs("<p class=\"muted\">Written by stampede. Latencies are merged exactly over every "
              "agent (histograms added bucket by bucket, never averaged). This file makes no "
              "network request.</p>\n",
              b);
    }
    series_fini(&s);
    if (!b || fclose(b) != 0) {
        fclose(f);
        free(buf);
        free(body);
        return ST_ENOMEM;
    }
    bool ok = strcmp(status, "completed") == 0 && failed == 0;
    fprintf(f, "<h1>stampede run <span>");
    esc(f, run_id);
    fprintf(f, "</span></h1>\n<p><span class=\"verdict %s\" id=\"verdict\" data-value=\"%s\">%s"
               "</span> ",
            ok ? "pass" : failed ? "fail" : "warn", ok ? "pass" : "fail",
            ok ? "PASSED" : failed ? "LIMITS FAILED" : "NOT COMPLETED");
    esc(f, status);
    fputs("</p>\n", f);
    fputs(body, f);
    free(body);
    fputs("</body></html>\n", f);
    if (fclose(f) != 0) {
        free(buf);
        return ST_ENOMEM;
    }
    if (r.failed) {
        free(buf);
        return ST_EINVAL;
    }
    *out = buf;
    return 0;
}

int st_html_report_file(const char *label, const char *path, const cJSON *summary,
                        const cJSON *lines, const st_html_source *src, char *err, size_t err_len)
{
    char *text = NULL;
    int rc = st_html_report_text(summary, lines, src, &text, err, err_len);
    if (rc) {
        return rc;
    }
    st_outfile *f = NULL;
    if ((rc = st_outfile_open(&f, label, path, err, err_len)) == 0) {
        st_outfile_printf(f, "%s", text);
        rc = st_outfile_commit(f, err, err_len);
    }
    free(text);
    return rc;
}

/* ---- the summary's histogram ---- */

typedef struct binner {
    cJSON *arr;
    uint64_t low, high, count; /* the bin being filled; count 0: none */
    bool failed;
} binner;

/* The bin of value v: an eighth of its power of two (values below 8 alone). */
static void bin_of(uint64_t v, uint64_t *low, uint64_t *high)
{
    if (v < 8) {
        *low = *high = v;
        return;
    }
    int e = 63 - __builtin_clzll(v);
    uint64_t step = 1ULL << (e - 3);
    *low = v - v % step;
    *high = *low + step - 1;
}

static void binner_flush(binner *b)
{
    if (b->count == 0) {
        return;
    }
    cJSON *bin = cJSON_CreateArray();
    if (!bin || !cJSON_AddItemToArray(b->arr, bin) ||
        !cJSON_AddItemToArray(bin, cJSON_CreateNumber((double)b->low)) ||
        !cJSON_AddItemToArray(bin, cJSON_CreateNumber((double)b->high)) ||
        !cJSON_AddItemToArray(bin, cJSON_CreateNumber((double)b->count))) {
        b->failed = true;
    }
    b->count = 0;
}

static int bin_visit(void *ctx, uint32_t index, uint64_t count)
{
    binner *b = ctx;
    uint64_t low, high;
    bin_of(st_hist_bucket_low(index), &low, &high);
    if (b->count && low != b->low) {
        binner_flush(b);
    }
    b->low = low;
    b->high = high;
    b->count += count;
    return 0;
}

static cJSON *bins_json(const st_hist *h)
{
    binner b = {.arr = cJSON_CreateArray()};
    if (!b.arr) {
        return NULL;
    }
    if (h) {
        st_hist_foreach(h, bin_visit, &b);
    }
    binner_flush(&b);
    if (b.failed) {
        cJSON_Delete(b.arr);
        return NULL;
    }
    return b.arr;
}

cJSON *st_html_histogram_json(const st_stats *total)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *c = bins_json(total->lat), *u = bins_json(total->lat_raw);
    if (!o || !c || !u || !cJSON_AddStringToObject(o, "unit", "us") ||
        !cJSON_AddItemToObject(o, "corrected", c)) {
        cJSON_Delete(o);
        cJSON_Delete(c);
        cJSON_Delete(u);
        return NULL;
    }
    if (!cJSON_AddItemToObject(o, "uncorrected", u)) {
        cJSON_Delete(o);
        cJSON_Delete(u);
        return NULL;
    }
    return o;
}
