#include "threshold.h"
#include "cli.h"
#include "error.h"
#include "hist.h"
#include "names.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* The error classes of the summary's "errors" object, by name. */
static const struct {
    const char *name;
    size_t offset;
} classes[] = {
    {"http_4xx", offsetof(st_counts, http_4xx)},  {"http_5xx", offsetof(st_counts, http_5xx)},
    {"connect", offsetof(st_counts, err_connect)}, {"timeout", offsetof(st_counts, err_timeout)},
    {"other", offsetof(st_counts, err_other)},     {"local", offsetof(st_counts, err_local)},
    {"tls", offsetof(st_counts, err_tls)},         {"cert", offsetof(st_counts, err_cert)},
};
#define N_CLASSES (sizeof(classes) / sizeof(classes[0]))

/* Where the parser stands, for messages. */
typedef struct tparse {
    const char *text, *p;
    const char *where;
    char *err;
    size_t err_len;
} tparse;

static int terr(tparse *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int terr(tparse *c, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    st_verrf(why, sizeof(why), 0, fmt, ap);
    va_end(ap);
    return st_errf(c->err, c->err_len, ST_EINVAL, "%s: \"%s\": at character %d: %s", c->where,
                   c->text, (int)(c->p - c->text) + 1, why);
}

static void skip_ws(tparse *c)
{
    while (*c->p == ' ' || *c->p == '\t') {
        c->p++;
    }
}

/* Takes word if the text continues with it (and not with more of a name). */
static bool take_word(tparse *c, const char *word)
{
    size_t n = strlen(word);
    if (strncmp(c->p, word, n) != 0 || isalnum((unsigned char)c->p[n]) || c->p[n] == '_') {
        return false;
    }
    c->p += n;
    return true;
}

/* digits [ "." digits ]: no sign, no exponent. */
static int take_number(tparse *c, const char *what, double *out)
{
    const char *s = c->p;
    while (isdigit((unsigned char)*c->p)) {
        c->p++;
    }
    if (c->p == s) {
        return terr(c, "%s: a number is missing (digits, e.g. 250 or 99.9)", what);
    }
    if (*c->p == '.') {
        c->p++;
        if (!isdigit((unsigned char)*c->p)) {
            return terr(c, "%s: digits must follow the decimal point", what);
        }
        while (isdigit((unsigned char)*c->p)) {
            c->p++;
        }
    }
    char buf[64];
    if ((size_t)(c->p - s) >= sizeof(buf)) {
        return terr(c, "%s: too many digits", what);
    }
    memcpy(buf, s, (size_t)(c->p - s));
    buf[c->p - s] = 0;
    *out = strtod(buf, NULL);
    return 0;
}

/* The metrics named by one word. */
typedef struct named_metric {
    const char *name;
    st_threshold_metric metric;
} named_metric;

static const named_metric latency_names[] = {
    {"mean", ST_THRESHOLD_MEAN}, {"min", ST_THRESHOLD_MIN}, {"max", ST_THRESHOLD_MAX}};
static const named_metric ratio_names[] = {{"error_rate", ST_THRESHOLD_ERROR_RATE},
                                           {"achieved_ratio", ST_THRESHOLD_ACHIEVED_RATIO},
                                           {"late_ratio", ST_THRESHOLD_LATE_RATIO},
                                           {"dropped_ratio", ST_THRESHOLD_DROPPED_RATIO}};
#define N_LATENCY_NAMES (sizeof(latency_names) / sizeof(latency_names[0]))
#define N_RATIO_NAMES   (sizeof(ratio_names) / sizeof(ratio_names[0]))

/* Takes one of the n names, setting *metric. */
static bool take_named(tparse *c, const named_metric *names, size_t n, st_threshold_metric *metric)
{
    for (size_t i = 0; i < n; i++) {
        if (take_word(c, names[i].name)) {
            *metric = names[i].metric;
            return true;
        }
    }
    return false;
}

/* "{name=NAME}" or "{name:NAME}", NAME bare (up to the "}") or in double quotes. */
static int parse_selector(tparse *c, st_threshold *t)
{
    c->p++;
    skip_ws(c);
    if (!take_word(c, "name")) {
        return terr(c, "a selector names a request: {name=NAME} (the only tag is name)");
    }
    skip_ws(c);
    if (*c->p != '=' && *c->p != ':') {
        return terr(c, "\"=\" (or \":\") must follow \"name\" in the selector, as in {name=login}");
    }
    c->p++;
    skip_ws(c);
    const char *s, *e;
    if (*c->p == '"') {
        s = ++c->p;
        while (*c->p && *c->p != '"') {
            c->p++;
        }
        if (!*c->p) {
            c->p = s - 1;
            return terr(c, "the quoted name is not closed with \"");
        }
        e = c->p++;
        skip_ws(c);
    } else {
        s = c->p;
        while (*c->p && *c->p != '}') {
            c->p++;
        }
        e = c->p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t')) {
            e--;
        }
    }
    if (*c->p != '}') {
        return terr(c, "\"}\" must close the selector, as in {name=login}");
    }
    if (e == s) {
        return terr(c, "the selector names no request: {name=NAME}");
    }
    if ((size_t)(e - s) >= sizeof(t->name)) {
        c->p = s;
        return terr(c, "the request name is longer than %zu characters", sizeof(t->name) - 1);
    }
    memcpy(t->name, s, (size_t)(e - s));
    t->name[e - s] = 0;
    t->by_name = true;
    c->p++;
    skip_ws(c);
    return 0;
}

static int parse_metric(tparse *c, st_threshold *t)
{
    t->uncorrected = take_word(c, "uncorrected");
    if (t->uncorrected) {
        skip_ws(c);
    }
    int rc;
    if (strncmp(c->p, "p(", 2) == 0) {
        c->p += 2;
        t->metric = ST_THRESHOLD_PERCENTILE;
        if ((rc = take_number(c, "the percentile", &t->percentile))) {
            return rc;
        }
        if (!(t->percentile > 0 && t->percentile <= 100)) {
            return terr(c, "the percentile must be above 0 and at most 100 (got %g)",
                        t->percentile);
        }
        if (*c->p != ')') {
            return terr(c, "\")\" must close the percentile, as in p(99)");
        }
        c->p++;
    } else if (take_named(c, latency_names, N_LATENCY_NAMES, &t->metric)) {
    } else if (t->uncorrected) {
        return terr(c, "\"uncorrected\" goes with a latency: p(N), mean, min or max");
    } else if (take_named(c, ratio_names, N_RATIO_NAMES, &t->metric)) {
    } else if (strncmp(c->p, "errors.", 7) == 0) {
        c->p += 7;
        size_t i = 0;
        while (i < N_CLASSES && !take_word(c, classes[i].name)) {
            i++;
        }
        if (i == N_CLASSES) {
            return terr(c, "not an error class (http_4xx, http_5xx, connect, timeout, other, "
                           "local, tls or cert)");
        }
        t->metric = ST_THRESHOLD_ERROR_CLASS;
        t->class_offset = classes[i].offset;
    } else {
        return terr(c, "not a metric (p(N), mean, min, max, uncorrected ..., error_rate, "
                       "errors.CLASS, achieved_ratio, late_ratio or dropped_ratio)");
    }
    skip_ws(c);
    if (*c->p == '{') {
        return parse_selector(c, t);
    }
    return 0;
}

static int parse_op(tparse *c, st_threshold *t)
{
    if (c->p[0] == '<' || c->p[0] == '>') {
        bool eq = c->p[1] == '=';
        t->op = c->p[0] == '<' ? (eq ? ST_THRESHOLD_LE : ST_THRESHOLD_LT)
                               : (eq ? ST_THRESHOLD_GE : ST_THRESHOLD_GT);
        c->p += eq ? 2 : 1;
        return 0;
    }
    return terr(c, "the comparison must be <, <=, > or >=");
}

static int parse_limit(tparse *c, st_threshold *t)
{
    int rc = take_number(c, "the limit", &t->limit);
    if (rc) {
        return rc;
    }
    if (st_threshold_is_latency(t)) {
        if (take_word(c, "ms")) {
        } else if (take_word(c, "us")) {
            t->limit /= 1000;
        } else if (take_word(c, "s")) {
            t->limit *= 1000;
        } else if (*c->p == '%') {
            return terr(c, "a latency is not a ratio: give it in ms, s or us");
        } else if (isalpha((unsigned char)*c->p)) {
            return terr(c, "not a unit of latency (us, ms or s; a bare number is ms)");
        }
        return 0;
    }
    if (*c->p == '%') {
        c->p++;
        if (t->limit > 100 && t->metric != ST_THRESHOLD_ACHIEVED_RATIO) {
            return terr(c, "a share of requests is at most 100%%");
        }
        t->limit /= 100;
    } else if (isalpha((unsigned char)*c->p)) {
        return terr(c, "a ratio takes no unit but %% (a bare number is a fraction: 0.01 or 1%%)");
    } else if (t->limit > 1 && t->metric != ST_THRESHOLD_ACHIEVED_RATIO) {
        return terr(c, "%g is ambiguous for a ratio: write a fraction from 0 to 1 (0.05) or a "
                       "percentage (5%%)",
                    t->limit);
    }
    return 0;
}

static int parse_abort(tparse *c, st_threshold *t)
{
    if (!take_word(c, "abort")) {
        return terr(c, "after the \",\" only \"abort\" or \"abort after DURATION\" may follow");
    }
    t->abort = true;
    skip_ws(c);
    if (!*c->p) {
        return 0;
    }
    if (!take_word(c, "after")) {
        return terr(c, "\"abort\" is followed by nothing or by \"after DURATION\"");
    }
    skip_ws(c);
    const char *s = c->p;
    while (*c->p && *c->p != ' ' && *c->p != '\t') {
        c->p++;
    }
    char buf[64], why[256];
    if (c->p == s || (size_t)(c->p - s) >= sizeof(buf)) {
        c->p = s;
        return terr(c, "\"abort after\" needs a duration such as 10s or 500ms");
    }
    memcpy(buf, s, (size_t)(c->p - s));
    buf[c->p - s] = 0;
    if (st_cli_duration("abort after", buf, 0, ST_PROFILE_MAX_S, &t->abort_after_s, why,
                        sizeof(why))) {
        c->p = s;
        return terr(c, "%s", why);
    }
    return 0;
}

int st_threshold_parse(st_threshold *t, const char *text, const char *where, bool closed_loop,
                       char *err, size_t err_len)
{
    memset(t, 0, sizeof(*t));
    tparse c = {text, text, where, err, err_len};
    int rc;
    skip_ws(&c);
    if (!*c.p) {
        return terr(&c, "empty: give a condition such as p(99)<250ms or error_rate<1%%");
    }
    if ((rc = parse_metric(&c, t))) {
        return rc;
    }
    skip_ws(&c);
    if ((rc = parse_op(&c, t))) {
        return rc;
    }
    skip_ws(&c);
    if ((rc = parse_limit(&c, t))) {
        return rc;
    }
    skip_ws(&c);
    if (*c.p == ',') {
        c.p++;
        skip_ws(&c);
        if ((rc = parse_abort(&c, t))) {
            return rc;
        }
        skip_ws(&c);
    }
    if (*c.p) {
        return terr(&c, "unexpected \"%s\" after the threshold", c.p);
    }
    if (t->by_name && t->metric == ST_THRESHOLD_ACHIEVED_RATIO) {
        c.p = text;
        return terr(&c, "achieved_ratio is for the whole run: the target is not split by name");
    }
    if (closed_loop && t->metric == ST_THRESHOLD_ACHIEVED_RATIO) {
        c.p = text;
        return terr(&c, "achieved_ratio needs a target rate, and the plan is closed loop");
    }
    return 0;
}

bool st_threshold_is_latency(const st_threshold *t)
{
    return t->metric <= ST_THRESHOLD_MAX;
}

const char *st_threshold_op_name(st_threshold_op op)
{
    switch (op) {
    case ST_THRESHOLD_LT: return "<";
    case ST_THRESHOLD_LE: return "<=";
    case ST_THRESHOLD_GT: return ">";
    case ST_THRESHOLD_GE: return ">=";
    }
    return "?";
}

/* num / den, or no value when den is 0. */
static bool ratio(uint64_t num, double den, double *value)
{
    if (!(den > 0)) {
        return false;
    }
    *value = (double)num / den;
    return true;
}

bool st_threshold_observe(const st_threshold *t, const st_threshold_input *in, double *value)
{
    const st_counts *c = in->c;
    uint64_t done = st_counts_done(c);
    if (st_threshold_is_latency(t)) {
        const st_hist *h = t->uncorrected ? in->lat_raw : in->lat;
        if (!h || st_hist_count(h) == 0) {
            return false;
        }
        uint64_t us = t->metric == ST_THRESHOLD_PERCENTILE ? st_hist_percentile(h, t->percentile)
                      : t->metric == ST_THRESHOLD_MIN      ? st_hist_min(h)
                      : t->metric == ST_THRESHOLD_MAX      ? st_hist_max(h)
                                                           : 0;
        *value = t->metric == ST_THRESHOLD_MEAN ? st_hist_mean(h) / 1000.0 : (double)us / 1000.0;
        return true;
    }
    switch (t->metric) {
    case ST_THRESHOLD_ERROR_RATE:
        return ratio(st_counts_failed(c), (double)done, value);
    case ST_THRESHOLD_ERROR_CLASS:
        return ratio(*(const uint64_t *)((const char *)c + t->class_offset), (double)done, value);
    case ST_THRESHOLD_ACHIEVED_RATIO:
        return ratio(done, in->target_requests, value);
    case ST_THRESHOLD_LATE_RATIO:
        return ratio(c->late, (double)c->sent, value);
    case ST_THRESHOLD_DROPPED_RATIO:
        return ratio(c->dropped, (double)c->sent + (double)c->dropped, value);
    default:
        return false;
    }
}

bool st_threshold_holds(const st_threshold *t, double value)
{
    switch (t->op) {
    case ST_THRESHOLD_LT: return value < t->limit;
    case ST_THRESHOLD_LE: return value <= t->limit;
    case ST_THRESHOLD_GT: return value > t->limit;
    case ST_THRESHOLD_GE: return value >= t->limit;
    }
    return false;
}

/* ---- the set, evaluated along the run ---- */

typedef struct tstate {
    st_threshold t;
    long name;           /* the name index it measures, -1: the whole run */
    const char *expr; /* the plan's string (the plan outlives the set) */
    bool failing;
    uint32_t failing_since; /* the second whose evaluation began the breach */
    bool aborted;
    uint32_t aborted_at;
} tstate;

struct st_thresholds {
    tstate *v;
    size_t n;
    st_stats acc;          /* the run so far */
    double target_so_far;  /* requests the profile asked for in the seconds so far */
    const tstate *abort_by;
};

/* The name index of a threshold's selector in the plan, and its share of the plan's weight. */
static int resolve_name(tstate *s, const st_plan *plan, const char *where, char *err,
                        size_t err_len)
{
    s->name = -1;
    if (!s->t.by_name) {
        return 0;
    }
    st_names names;
    if (st_names_init(&names, plan)) {
        return ST_ENOMEM;
    }
    long at = st_names_find(&names, s->t.name);
    int rc = 0;
    if (at < 0) {
        char list[512] = "";
        size_t used = 0;
        for (size_t i = 0; i < names.n && used + 1 < sizeof(list); i++) {
            int w = snprintf(list + used, sizeof(list) - used, "%s\"%s\"", i ? ", " : "",
                             names.name[i]);
            used += w > 0 ? (size_t)w : 0;
        }
        rc = st_errf(err, err_len, ST_EINVAL,
                     "%s: \"%s\": the plan has no request named \"%s\" (its names: %s)", where,
                     s->expr, s->t.name, list);
    } else if (st_names_kept(&names)) {
        s->name = at;
    } else if (names.n > 1) {
        rc = st_errf(err, err_len, ST_EINVAL,
                     "%s: \"%s\": the plan has %zu request names, and results per name are kept "
                     "for plans of at most %d",
                     where, s->expr, names.n, ST_NAMES_KEPT_MAX);
    }
    st_names_fini(&names);
    return rc;
}

st_threshold_input st_threshold_input_of(const st_stats *s, long name, double target_requests)
{
    static const st_counts none;
    if (name < 0) {
        return (st_threshold_input){&s->c, s->lat, s->lat_raw, target_requests};
    }
    if ((size_t)name >= s->n_names) {
        return (st_threshold_input){&none, NULL, NULL, 0};
    }
    const st_name_stats *p = &s->names[name];
    return (st_threshold_input){&p->c, p->lat, p->lat_raw, 0};
}

int st_thresholds_new(st_thresholds **out, const st_plan *plan, const char *plan_file, char *err,
                      size_t err_len)
{
    *out = NULL;
    st_thresholds *ts = calloc(1, sizeof(*ts));
    if (!ts || (plan->n_thresholds && !(ts->v = calloc(plan->n_thresholds, sizeof(*ts->v)))) ||
        st_stats_init(&ts->acc)) {
        st_thresholds_free(ts);
        return ST_ENOMEM;
    }
    for (size_t i = 0; i < plan->n_thresholds; i++) {
        char where[512];
        if (i < plan->n_file_thresholds) {
            snprintf(where, sizeof(where), "%s: $.thresholds[%zu]", plan_file ? plan_file : "plan",
                     i);
        } else {
            snprintf(where, sizeof(where), "--threshold");
        }
        int rc = st_threshold_parse(&ts->v[i].t, plan->thresholds[i], where, plan->closed_loop,
                                    err, err_len);
        if (rc) {
            st_thresholds_free(ts);
            return rc;
        }
        ts->v[i].expr = plan->thresholds[i];
        ts->n++;
        if ((rc = resolve_name(&ts->v[i], plan, where, err, err_len))) {
            st_thresholds_free(ts);
            return rc;
        }
    }
    *out = ts;
    return 0;
}

void st_thresholds_free(st_thresholds *ts)
{
    if (!ts) {
        return;
    }
    st_stats_fini(&ts->acc);
    free(ts->v);
    free(ts);
}

size_t st_thresholds_count(const st_thresholds *ts)
{
    return ts ? ts->n : 0;
}

/* "312.000 ms", "1.25%", or "no value". */
static void format_value(const st_threshold *t, bool have, double v, char *out, size_t len)
{
    if (!have) {
        snprintf(out, len, "no value (%s)",
                 st_threshold_is_latency(t) ? "no responses" : "nothing to count");
    } else if (st_threshold_is_latency(t)) {
        snprintf(out, len, "%.3f ms", v);
    } else {
        snprintf(out, len, "%.4f%%", v * 100);
    }
}

bool st_thresholds_second(st_thresholds *ts, const st_coord_second *sec, FILE *progress)
{
    if (!ts || ts->n == 0) {
        return false;
    }
    /* Out of memory for the per-name parts: thresholds by name then read what the parts hold. */
    (void)st_stats_merge(&ts->acc, sec->stats);
    ts->target_so_far += sec->target_rps;
    bool stop = false;
    for (size_t i = 0; i < ts->n; i++) {
        tstate *s = &ts->v[i];
        st_threshold_input in =
            st_threshold_input_of(&ts->acc, s->name, ts->target_so_far);
        double v = 0;
        bool have = st_threshold_observe(&s->t, &in, &v);
        bool ok = have && st_threshold_holds(&s->t, v);
        char val[64];
        format_value(&s->t, have, v, val, sizeof(val));
        if (!ok && !s->failing) {
            s->failing = true;
            s->failing_since = sec->second;
            if (progress) {
                fprintf(progress, "[%5us] threshold %s is failing: %s over the run so far%s\n",
                        sec->second + 1, s->expr, val, s->t.abort ? " (it aborts the run)" : "");
            }
        } else if (ok && s->failing) {
            s->failing = false;
            if (progress) {
                fprintf(progress, "[%5us] threshold %s holds again: %s\n", sec->second + 1,
                        s->expr, val);
            }
        }
        if (s->failing && s->t.abort && !ts->abort_by &&
            (double)(sec->second - s->failing_since) >= s->t.abort_after_s) {
            s->aborted = true;
            s->aborted_at = sec->second + 1;
            ts->abort_by = s;
            stop = true;
            if (progress) {
                fprintf(progress, "[%5us] threshold %s has failed since %us: stopping the run\n",
                        sec->second + 1, s->expr, s->failing_since + 1);
            }
        }
    }
    if (progress) {
        fflush(progress);
    }
    return stop;
}

const char *st_thresholds_aborted_by(const st_thresholds *ts)
{
    return ts && ts->abort_by ? ts->abort_by->expr : NULL;
}

int st_thresholds_final(const st_thresholds *ts, st_report *r)
{
    if (!ts || ts->n == 0) {
        return 0;
    }
    st_report_threshold *rows = calloc(ts->n, sizeof(*rows));
    if (!rows) {
        return ST_ENOMEM;
    }
    for (size_t i = 0; i < ts->n; i++) {
        const tstate *s = &ts->v[i];
        st_threshold_input in = st_threshold_input_of(
            &r->total, s->name, r->plan.closed_loop ? 0 : r->target_requests);
        st_report_threshold *row = &rows[i];
        if (!(row->expression = strdup(s->expr))) {
            for (size_t j = 0; j < i; j++) {
                free(rows[j].expression);
            }
            free(rows);
            return ST_ENOMEM;
        }
        row->unit = st_threshold_is_latency(&s->t) ? "ms" : "ratio";
        row->op = st_threshold_op_name(s->t.op);
        row->limit = s->t.limit;
        row->have_value = st_threshold_observe(&s->t, &in, &row->observed);
        row->aborted = s->aborted;
        row->aborted_at = s->aborted_at;
        row->pass = row->have_value && st_threshold_holds(&s->t, row->observed) && !s->aborted;
    }
    r->thresholds = rows;
    r->n_thresholds = ts->n;
    return 0;
}

bool st_thresholds_failed(const st_report *r)
{
    for (size_t i = 0; i < r->n_thresholds; i++) {
        if (!r->thresholds[i].pass) {
            return true;
        }
    }
    return false;
}
