#include "baseline.h"
#include "error.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* What a metric is read from in a summary object. */
typedef struct metric {
    char name[48];    /* as the summary's "metric" says it: "p(99)", "uncorrected max", ... */
    bool ratio;       /* a ratio of two counts; else a latency in ms */
    char group[32];   /* latency: "latency_ms" or "latency_uncorrected_ms" */
    char key[16];     /* latency: "p99"; ratio: the numerator's "requests.failed" style key */
    char num[32];     /* ratio: numerator "group.key" */
    char den[2][32];  /* ratio: denominator, the sum of one or two "group.key" */
} metric;

typedef struct limit {
    char *expression;
    metric m;
    bool relative; /* allowance in % of the baseline's value */
    double allowance; /* relative: percent; else in the metric's unit (ms, or a ratio) */
    /* after evaluation */
    double baseline, observed, allowed; /* NAN: no value */
    bool pass;
} limit;

struct st_baseline {
    char *path;  /* the file, or the stored run's id */
    char *table; /* NULL for a file; the DynamoDB table the baseline was read from */
    cJSON *old;
    limit *limits;
    size_t n;
    bool evaluated;
    double delta_base[7], delta_obs[7];
};

static const char *const err_classes[] = {"http_4xx", "http_5xx", "connect", "timeout",
                                          "other",    "local",    "tls",     "cert"};

/* The deltas the summary always gets. */
static const char *const delta_exprs[7] = {"p(50)+0%", "p(90)+0%",     "p(99)+0%",  "p(99.9)+0%",
                                           "max+0%",   "error_rate+0pt", NULL};
static const char *const delta_names[7] = {"latency_ms.p50", "latency_ms.p90",  "latency_ms.p99",
                                           "latency_ms.p999", "latency_ms.max", "error_rate",
                                           "rate.achieved_rps"};

static int expr_err(char *err, size_t err_len, const char *expr, const char *at, const char *what)
{
    return st_errf(err, err_len, ST_EINVAL, "--max-regression \"%s\": at character %d: %s", expr,
                   (int)(at - expr) + 1, what);
}

static const char *skip(const char *p)
{
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    return p;
}

/* The word at p made of letters, digits, '_' and '.'; its length. */
static size_t word(const char *p)
{
    size_t n = 0;
    while (isalnum((unsigned char)p[n]) || p[n] == '_' || p[n] == '.') {
        n++;
    }
    return n;
}

static bool word_is(const char *p, size_t n, const char *w)
{
    return strlen(w) == n && strncmp(p, w, n) == 0;
}

/* A plain decimal at *p (digits, optionally a point and digits); advances *p. */
static bool decimal(const char **p, double *out)
{
    const char *s = *p;
    size_t n = strspn(s, "0123456789");
    if (n == 0) {
        return false;
    }
    if (s[n] == '.') {
        size_t frac = strspn(s + n + 1, "0123456789");
        if (frac == 0) {
            return false;
        }
        n += 1 + frac;
    }
    char buf[64];
    if (n >= sizeof(buf)) {
        return false;
    }
    memcpy(buf, s, n);
    buf[n] = 0;
    *out = strtod(buf, NULL);
    *p = s + n;
    return true;
}

/* The metric at *p; advances *p. */
static int parse_metric(const char *expr, const char **p, metric *m, char *err, size_t err_len)
{
    memset(m, 0, sizeof(*m));
    const char *s = *p;
    bool uncorrected = false;
    size_t n = word(s);
    if (word_is(s, n, "uncorrected")) {
        uncorrected = true;
        s = skip(s + n);
        n = word(s);
    }
    snprintf(m->group, sizeof(m->group), "%s",
             uncorrected ? "latency_uncorrected_ms" : "latency_ms");
    if (word_is(s, n, "p") && s[1] == '(') {
        const char *q = s + 2;
        double pct;
        if (!decimal(&q, &pct) || *q != ')') {
            return expr_err(err, err_len, expr, q, "expected p(50), p(90), p(99) or p(99.9)");
        }
        static const struct {
            double p;
            const char *key;
        } pcts[] = {{50, "p50"}, {90, "p90"}, {99, "p99"}, {99.9, "p999"}};
        for (size_t i = 0; i < 4; i++) {
            if (pct == pcts[i].p) {
                snprintf(m->key, sizeof(m->key), "%s", pcts[i].key);
            }
        }
        if (!m->key[0]) {
            return expr_err(err, err_len, expr, s,
                            "a summary holds p(50), p(90), p(99) and p(99.9) only");
        }
        n = (size_t)(q + 1 - s);
    } else if (word_is(s, n, "mean") || word_is(s, n, "min") || word_is(s, n, "max")) {
        snprintf(m->key, sizeof(m->key), "%.*s", (int)n, s);
    } else if (uncorrected) {
        return expr_err(err, err_len, expr, s, "uncorrected takes a latency: p(N), mean, min, max");
    } else {
        m->ratio = true;
        m->group[0] = 0;
        snprintf(m->den[0], sizeof(m->den[0]), "requests.total");
        if (word_is(s, n, "error_rate")) {
            snprintf(m->num, sizeof(m->num), "requests.failed");
        } else if (word_is(s, n, "late_ratio")) {
            snprintf(m->num, sizeof(m->num), "requests.late");
            snprintf(m->den[0], sizeof(m->den[0]), "requests.sent");
        } else if (word_is(s, n, "dropped_ratio")) {
            snprintf(m->num, sizeof(m->num), "requests.dropped");
            snprintf(m->den[0], sizeof(m->den[0]), "requests.sent");
            snprintf(m->den[1], sizeof(m->den[1]), "requests.dropped");
        } else {
            for (size_t i = 0; n > 7 && strncmp(s, "errors.", 7) == 0 && i < 8; i++) {
                if (word_is(s + 7, n - 7, err_classes[i])) {
                    snprintf(m->num, sizeof(m->num), "errors.%s", err_classes[i]);
                }
            }
            if (!m->num[0]) {
                return expr_err(err, err_len, expr, s,
                                "unknown metric: expected p(N), mean, min, max, error_rate, "
                                "errors.CLASS, late_ratio or dropped_ratio");
            }
        }
    }
    snprintf(m->name, sizeof(m->name), "%s%.*s", uncorrected ? "uncorrected " : "", (int)n, s);
    *p = s + n;
    return 0;
}

static int parse_limit(const char *expr, limit *l, char *err, size_t err_len)
{
    const char *p = skip(expr);
    int rc = parse_metric(expr, &p, &l->m, err, err_len);
    if (rc) {
        return rc;
    }
    p = skip(p);
    if (*p != '+') {
        return expr_err(err, err_len, expr, p, "expected + and the allowed rise, e.g. +10%");
    }
    p = skip(p + 1);
    if (!decimal(&p, &l->allowance)) {
        return expr_err(err, err_len, expr, p, "expected a number (digits, optionally a point)");
    }
    p = skip(p);
    size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz%");
    const char *unit = p;
    if (word_is(p, n, "%")) {
        l->relative = true;
    } else if (!l->m.ratio && (word_is(p, n, "ms") || word_is(p, n, "us") || word_is(p, n, "s"))) {
        l->allowance *= p[0] == 'u' ? 0.001 : p[1] == 's' ? 1 : 1000;
    } else if (l->m.ratio && word_is(p, n, "pt")) {
        l->allowance /= 100;
    } else {
        return expr_err(err, err_len, expr, unit,
                        n == 0 ? (l->m.ratio ? "a unit is needed: % (relative) or pt (percentage "
                                               "points)"
                                             : "a unit is needed: % (relative), or us, ms, s")
                               : (l->m.ratio ? "a ratio's unit is % (relative) or pt (percentage "
                                               "points)"
                                             : "a latency's unit is % (relative), or us, ms, s"));
    }
    p = skip(p + n);
    if (*p) {
        return expr_err(err, err_len, expr, p, "unexpected text after the limit");
    }
    return 0;
}

/* summary's number at "group.key": 0 with *v; 1 null; ST_EINVAL (err names path). */
static int number_at(const cJSON *summary, const char *path, const char *dotted, double *v,
                     char *err, size_t err_len)
{
    char group[32];
    const char *dot = strchr(dotted, '.');
    snprintf(group, sizeof(group), "%.*s", (int)(dot - dotted), dotted);
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(summary, group);
    const cJSON *x = cJSON_IsObject(g) ? cJSON_GetObjectItemCaseSensitive(g, dot + 1) : NULL;
    if (cJSON_IsNull(x)) {
        return 1;
    }
    if (!cJSON_IsNumber(x) || !(x->valuedouble >= 0)) {
        return st_errf(err, err_len, ST_EINVAL, "%s: key \"%s\": %s", path, dotted,
                       !x ? "missing" : "expected a number, 0 or more");
    }
    *v = x->valuedouble;
    return 0;
}

/* m's value in summary (NAN: it does not exist there). */
static int metric_value(const metric *m, const cJSON *summary, const char *path, double *v,
                        char *err, size_t err_len)
{
    *v = NAN;
    char dotted[64];
    double num, den = 0;
    int rc;
    if (!m->ratio) {
        snprintf(dotted, sizeof(dotted), "%s.%s", m->group, m->key);
        rc = number_at(summary, path, dotted, &num, err, err_len);
        if (rc == 0) {
            *v = num;
        }
        return rc < 0 ? rc : 0;
    }
    if ((rc = number_at(summary, path, m->num, &num, err, err_len)) < 0) {
        return rc;
    }
    for (size_t i = 0; i < 2 && m->den[i][0]; i++) {
        double d;
        int r = number_at(summary, path, m->den[i], &d, err, err_len);
        if (r < 0) {
            return r;
        }
        den += r == 0 ? d : 0;
    }
    if (rc == 0 && den > 0) {
        *v = num / den;
    }
    return 0;
}

void st_baseline_free(st_baseline *b)
{
    if (!b) {
        return;
    }
    for (size_t i = 0; i < b->n; i++) {
        free(b->limits[i].expression);
    }
    free(b->limits);
    cJSON_Delete(b->old);
    free(b->path);
    free(b->table);
    free(b);
}

static int read_file(const char *path, cJSON **out, char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return st_errf(err, err_len, ST_EINVAL, "--baseline %s: cannot open it", path);
    }
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    char buf[65536];
    size_t got;
    while (m && (got = fread(buf, 1, sizeof(buf), f)) > 0) {
        fwrite(buf, 1, got, m);
    }
    bool bad = ferror(f);
    fclose(f);
    if (!m || fclose(m) != 0) {
        free(text);
        return ST_ENOMEM;
    }
    cJSON *j = bad ? NULL : cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return st_errf(err, err_len, ST_EINVAL, "--baseline %s: %s", path,
                       bad ? "cannot read it" : "not a JSON object (a --summary file)");
    }
    *out = j;
    return 0;
}

static int baseline_make(st_baseline **out, const char *path, const char *table, cJSON *old,
                         const char *const *exprs, size_t n, char *err, size_t err_len)
{
    st_baseline *b = calloc(1, sizeof(*b));
    if (!b || !(b->path = strdup(path)) || (table && !(b->table = strdup(table))) ||
        !(b->limits = calloc(n ? n : 1, sizeof(limit)))) {
        st_baseline_free(b);
        cJSON_Delete(old);
        return ST_ENOMEM;
    }
    b->old = old;
    char what[192];
    if (table) {
        snprintf(what, sizeof(what), "--baseline %s (stored in %s)", path, table);
    } else {
        snprintf(what, sizeof(what), "--baseline %s", path);
    }
    int rc = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        limit *l = &b->limits[i];
        if (!(l->expression = strdup(exprs[i]))) {
            rc = ST_ENOMEM;
            break;
        }
        b->n++;
        if (!(rc = parse_limit(exprs[i], l, err, err_len))) {
            rc = metric_value(&l->m, b->old, what, &l->baseline, err, err_len);
        }
    }
    if (rc) {
        st_baseline_free(b);
        return rc;
    }
    *out = b;
    return 0;
}

int st_baseline_new(st_baseline **out, const char *path, const char *const *exprs, size_t n,
                    char *err, size_t err_len)
{
    cJSON *old = NULL;
    int rc = read_file(path, &old, err, err_len);
    return rc ? rc : baseline_make(out, path, NULL, old, exprs, n, err, err_len);
}

int st_baseline_new_stored(st_baseline **out, const char *run_id, const char *table,
                           cJSON *summary, const char *const *exprs, size_t n, char *err,
                           size_t err_len)
{
    if (!cJSON_IsObject(summary)) {
        cJSON_Delete(summary);
        return st_errf(err, err_len, ST_EINVAL,
                       "--baseline %s: the summary stored in %s is not a JSON object", run_id,
                       table);
    }
    return baseline_make(out, run_id, table, summary, exprs, n, err, err_len);
}

int st_baseline_evaluate(st_baseline *b, const cJSON *summary, char *err, size_t err_len)
{
    for (size_t i = 0; i < b->n; i++) {
        limit *l = &b->limits[i];
        int rc = metric_value(&l->m, summary, "this run's summary", &l->observed, err, err_len);
        if (rc) {
            return rc;
        }
        l->allowed = l->relative ? l->baseline * (1 + l->allowance / 100) : l->baseline + l->allowance;
        l->pass = l->observed <= l->allowed; /* false when either is NAN */
    }
    for (size_t k = 0; k < 7; k++) {
        limit d = {0};
        if (k < 6) {
            parse_limit(delta_exprs[k], &d, err, err_len);
        } else {
            d.m.ratio = false;
            snprintf(d.m.group, sizeof(d.m.group), "rate");
            snprintf(d.m.key, sizeof(d.m.key), "achieved_rps");
        }
        int rc = metric_value(&d.m, b->old, b->path, &b->delta_base[k], err, err_len);
        if (!rc) {
            rc = metric_value(&d.m, summary, "this run's summary", &b->delta_obs[k], err, err_len);
        }
        if (rc) {
            /* A delta the baseline cannot give is left out (null), not an error. */
            b->delta_base[k] = b->delta_obs[k] = NAN;
        }
    }
    b->evaluated = true;
    return 0;
}

bool st_baseline_failed(const st_baseline *b)
{
    for (size_t i = 0; b && b->evaluated && i < b->n; i++) {
        if (!b->limits[i].pass) {
            return true;
        }
    }
    return false;
}

static cJSON *num_or_null(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

cJSON *st_baseline_json(const st_baseline *b)
{
    if (!b || !b->evaluated) {
        return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    const cJSON *old_id = cJSON_GetObjectItemCaseSensitive(b->old, "run_id");
    cJSON_AddItemToObject(o, "file", b->table ? cJSON_CreateNull() : cJSON_CreateString(b->path));
    if (b->table) {
        cJSON_AddStringToObject(o, "table", b->table);
    }
    cJSON_AddItemToObject(o, "run_id", cJSON_IsString(old_id) ? cJSON_CreateString(old_id->valuestring)
                                                              : cJSON_CreateNull());
    cJSON *deltas = cJSON_AddObjectToObject(o, "deltas");
    for (size_t k = 0; k < 7; k++) {
        cJSON *d = cJSON_AddObjectToObject(deltas, delta_names[k]);
        double base = b->delta_base[k], obs = b->delta_obs[k];
        cJSON_AddItemToObject(d, "baseline", num_or_null(base));
        cJSON_AddItemToObject(d, "observed", num_or_null(obs));
        cJSON_AddItemToObject(d, "delta", num_or_null(obs - base));
        cJSON_AddItemToObject(d, "change", num_or_null(base > 0 ? (obs - base) / base : NAN));
    }
    cJSON *regs = cJSON_AddArrayToObject(o, "regressions");
    for (size_t i = 0; i < b->n; i++) {
        const limit *l = &b->limits[i];
        cJSON *r = cJSON_CreateObject();
        cJSON_AddItemToArray(regs, r);
        cJSON_AddStringToObject(r, "expression", l->expression);
        cJSON_AddStringToObject(r, "metric", l->m.name);
        cJSON_AddStringToObject(r, "unit", l->m.ratio ? "ratio" : "ms");
        cJSON_AddItemToObject(r, "baseline", num_or_null(l->baseline));
        cJSON_AddItemToObject(r, "observed", num_or_null(l->observed));
        cJSON_AddItemToObject(r, "allowed", num_or_null(l->allowed));
        cJSON_AddStringToObject(r, "result", l->pass ? "pass" : "fail");
    }
    /* Any member that could not be made leaves a hole: out of memory is all or nothing. */
    char *probe = cJSON_PrintUnformatted(o);
    bool whole = probe && cJSON_GetArraySize(regs) == (int)b->n &&
                 cJSON_GetArraySize(deltas) == 7 && cJSON_GetArraySize(o) == (b->table ? 5 : 4);
    free(probe);
    if (!whole) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static void value(FILE *f, const limit *l, double v)
{
    if (!isfinite(v)) {
        fputs("no value", f);
    } else if (l->m.ratio) {
        fprintf(f, "%.4f%%", v * 100);
    } else {
        fprintf(f, "%.3f ms", v);
    }
}

void st_baseline_print(const st_baseline *b, FILE *f)
{
    if (!b || !b->evaluated) {
        return;
    }
    size_t passed = 0;
    for (size_t i = 0; i < b->n; i++) {
        passed += b->limits[i].pass;
    }
    if (b->table) {
        fprintf(f, "  %-22s run %s (stored in %s)", "baseline", b->path, b->table);
    } else {
        fprintf(f, "  %-22s %s", "baseline", b->path);
    }
    if (b->n) {
        fprintf(f, ": %zu of %zu regression limits held", passed, b->n);
    }
    fputc('\n', f);
    for (size_t i = 0; i < b->n; i++) {
        const limit *l = &b->limits[i];
        fprintf(f, "    %s  %-30s ", l->pass ? "pass" : "FAIL", l->expression);
        value(f, l, l->observed);
        fputs(" against ", f);
        value(f, l, l->baseline);
        fputs(", at most ", f);
        value(f, l, l->allowed);
        fputc('\n', f);
    }
    fflush(f);
}
