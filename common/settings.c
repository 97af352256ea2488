#include "settings.h"
#include "cli.h"
#include "error.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool is_numeric(st_setting_type t)
{
    return t == ST_SETTING_INT || t == ST_SETTING_UINT || t == ST_SETTING_DOUBLE ||
           t == ST_SETTING_DURATION;
}

static size_t n_choices(const st_setting *s)
{
    size_t n = 0;
    while (s->choices && s->choices[n]) {
        n++;
    }
    return n;
}

/* "a, b<last>c" ("a, b or c"), each name between prefix and suffix. */
static void join_names(const char *const *names, size_t n, const char *prefix, const char *suffix,
                       const char *last, char *out, size_t len)
{
    size_t at = 0;
    out[0] = 0;
    for (size_t i = 0; i < n && at < len; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n ? last : ", ";
        int w = snprintf(out + at, len - at, "%s%s%s%s", sep, prefix, names[i], suffix);
        if (w < 0) {
            return;
        }
        at += (size_t)w;
    }
}

static const char *row_name(const st_setting *s, char *buf, size_t len)
{
    if (s->flag) {
        snprintf(buf, len, "--%s", s->flag);
    } else {
        snprintf(buf, len, "\"%s\"", s->key ? s->key : "(unnamed)");
    }
    return buf;
}

int st_settings_check(const st_setting *rows, size_t n, char *err, size_t err_len)
{
    if (n > ST_SETTINGS_MAX_ROWS) {
        snprintf(err, err_len, "%zu rows: at most %d per table", n, ST_SETTINGS_MAX_ROWS);
        return ST_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const st_setting *s = &rows[i];
        char name[64];
        row_name(s, name, sizeof(name));
        if (!s->key && !s->flag) {
            snprintf(err, err_len, "row %zu has neither a key nor a flag", i);
            return ST_EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (s->key && rows[j].key && strcmp(s->key, rows[j].key) == 0) {
                snprintf(err, err_len, "key \"%s\" is declared twice (rows %zu and %zu)", s->key,
                         j, i);
                return ST_EINVAL;
            }
            if (s->flag && rows[j].flag && strcmp(s->flag, rows[j].flag) == 0) {
                snprintf(err, err_len, "flag --%s is declared twice (rows %zu and %zu)", s->flag,
                         j, i);
                return ST_EINVAL;
            }
        }
        if (is_numeric(s->type) &&
            (!(s->min <= s->max) || (s->type == ST_SETTING_UINT && s->min < 0) ||
             (s->type == ST_SETTING_DURATION && s->min < 0))) {
            snprintf(err, err_len, "%s: bounds %g to %g do not make a range", name, s->min,
                     s->max);
            return ST_EINVAL;
        }
        if (s->has_def && is_numeric(s->type) &&
            (s->def < s->min || s->def > s->max ||
             (s->type == ST_SETTING_DURATION && !(s->def > 0 || (s->zero_ok && s->def == 0))) ||
             (s->type != ST_SETTING_DOUBLE && s->type != ST_SETTING_DURATION &&
              s->def != floor(s->def)))) {
            snprintf(err, err_len, "%s: default %g is outside %g to %g", name, s->def, s->min,
                     s->max);
            return ST_EINVAL;
        }
        if (s->type == ST_SETTING_ENUM &&
            (n_choices(s) == 0 ||
             (s->has_def && (s->def < 0 || s->def >= (double)n_choices(s))))) {
            snprintf(err, err_len, "%s: an enum needs choices, and its default must be one", name);
            return ST_EINVAL;
        }
        if (s->type == ST_SETTING_BOOL && s->has_def && s->def != 0 && s->def != 1) {
            snprintf(err, err_len, "%s: a switch defaults to 0 or 1", name);
            return ST_EINVAL;
        }
        if (s->flag && (s->type == ST_SETTING_BOOL) != !s->arg) {
            snprintf(err, err_len, "%s: %s", name,
                     s->arg ? "a switch takes no value name"
                            : "a flag with a value needs its name");
            return ST_EINVAL;
        }
        if (s->flag && (!s->help || !s->help[0])) {
            snprintf(err, err_len, "%s: a flag needs a help line", name);
            return ST_EINVAL;
        }
    }
    return 0;
}

const st_setting *st_settings_find_key(const st_setting *rows, size_t n, const char *key)
{
    for (size_t i = 0; key && i < n; i++) {
        if (rows[i].key && strcmp(rows[i].key, key) == 0) {
            return &rows[i];
        }
    }
    return NULL;
}

const st_setting *st_settings_find_flag(const st_setting *rows, size_t n, const char *flag,
                                        unsigned mask)
{
    for (size_t i = 0; flag && i < n; i++) {
        if (rows[i].flag && (rows[i].where & mask) && strcmp(rows[i].flag, flag) == 0) {
            return &rows[i];
        }
    }
    return NULL;
}

void st_settings_list_keys(const st_setting *rows, size_t n, unsigned mask, bool last_or,
                           char *out, size_t len)
{
    const char *names[ST_SETTINGS_MAX_ROWS];
    size_t k = 0;
    for (size_t i = 0; i < n && k < ST_SETTINGS_MAX_ROWS; i++) {
        if (rows[i].key && (rows[i].where & mask)) {
            names[k++] = rows[i].key;
        }
    }
    join_names(names, k, "", "", last_or ? " or " : ", ", out, len);
}

static int duration_why(const st_setting *s, double got, bool have_got, char *why, size_t len)
{
    char most[32];
    st_cli_format_duration(s->max, most, sizeof(most));
    if (have_got) {
        if (s->zero_ok) {
            snprintf(why, len, "must be 0 or a duration of at most %s (got %g)", most, got);
        } else {
            snprintf(why, len, "must be a duration above %g and at most %s (got %g)", s->min,
                     most, got);
        }
    } else {
        snprintf(why, len, "must be a duration: seconds as a number, or a string like \"500ms\", "
                           "\"30s\", \"2m\", \"1h\"");
    }
    return ST_EINVAL;
}

int st_setting_from_json(const st_setting *s, const cJSON *v, void *dst, char *why,
                         size_t why_len)
{
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    /* -0 is a sign on a value that cannot be negative: refused as "-0" is on the command line. */
    if (d == 0 && signbit(d) && s->min >= 0) {
        d = NAN;
    }
    switch (s->type) {
    case ST_SETTING_INT:
    case ST_SETTING_UINT:
        if (!isfinite(d) || d != floor(d) || d < s->min || d > s->max) {
            snprintf(why, why_len, "must be an integer from %.0f to %.0f", s->min, s->max);
            return ST_EINVAL;
        }
        if (s->type == ST_SETTING_INT) {
            *(int *)dst = (int)d;
        } else {
            *(unsigned long long *)dst = (unsigned long long)d;
        }
        return 0;
    case ST_SETTING_DOUBLE:
        if (!isfinite(d) || d < s->min || d > s->max) {
            snprintf(why, why_len, "must be a number from %g to %g", s->min, s->max);
            return ST_EINVAL;
        }
        *(double *)dst = d;
        return 0;
    case ST_SETTING_DURATION:
        if (cJSON_IsNumber(v)) {
            if (s->zero_ok && d == 0) {
                /* 0 is a value of its own here */
            } else if (!(d > 0) || d < s->min || d > s->max) {
                return duration_why(s, d, true, why, why_len);
            }
        } else if (!cJSON_IsString(v) ||
                   (s->zero_ok ? st_cli_parse_duration_or_zero(v->valuestring, &d)
                               : st_cli_parse_duration(v->valuestring, &d)) != 0) {
            return duration_why(s, 0, false, why, why_len);
        } else if ((d < s->min && !(s->zero_ok && d == 0)) || d > s->max) {
            return duration_why(s, d, true, why, why_len);
        }
        *(double *)dst = d;
        return 0;
    case ST_SETTING_BOOL:
        if (!cJSON_IsBool(v)) {
            snprintf(why, why_len, "must be true or false");
            return ST_EINVAL;
        }
        *(int *)dst = cJSON_IsTrue(v) ? 1 : 0;
        return 0;
    case ST_SETTING_STRING:
        if (!cJSON_IsString(v)) {
            snprintf(why, why_len, "must be a string");
            return ST_EINVAL;
        }
        *(const char **)dst = v->valuestring;
        return 0;
    case ST_SETTING_ENUM:
        for (size_t i = 0; cJSON_IsString(v) && s->choices[i]; i++) {
            if (strcmp(v->valuestring, s->choices[i]) == 0) {
                *(int *)dst = (int)i;
                return 0;
            }
        }
        {
            char list[256];
            join_names(s->choices, n_choices(s), "\"", "\"", " or ", list, sizeof(list));
            snprintf(why, why_len, "must be %s", list);
        }
        return ST_EINVAL;
    case ST_SETTING_CUSTOM:
    case ST_SETTING_LIST:
        break;
    }
    snprintf(why, why_len, "is not a plain value (its owner reads it)");
    return ST_EINVAL;
}

int st_setting_from_text(const st_setting *s, const char *text, void *dst, char *err,
                         size_t err_len)
{
    char flag[64];
    snprintf(flag, sizeof(flag), "--%s", s->flag ? s->flag : s->key);
    switch (s->type) {
    case ST_SETTING_INT:
        return st_cli_int(flag, text, (long)s->min, (long)s->max, dst, err, err_len);
    case ST_SETTING_UINT:
        return st_cli_uint(flag, text, (unsigned long long)s->min, (unsigned long long)s->max,
                           dst, err, err_len);
    case ST_SETTING_DOUBLE:
        return st_cli_double(flag, text, s->min, s->max, dst, err, err_len);
    case ST_SETTING_DURATION:
        if (s->zero_ok) {
            return st_cli_duration_or_zero(flag, text, s->max, dst, err, err_len);
        }
        return st_cli_duration(flag, text, s->min, s->max, dst, err, err_len);
    case ST_SETTING_BOOL:
        *(int *)dst = 1;
        return 0;
    case ST_SETTING_STRING:
    case ST_SETTING_CUSTOM:
        *(const char **)dst = text;
        return 0;
    case ST_SETTING_LIST: {
        st_setting_list *l = dst;
        if (l->n >= ST_SETTING_LIST_MAX) {
            snprintf(err, err_len, "%s: given more than %d times", flag, ST_SETTING_LIST_MAX);
            return ST_EINVAL;
        }
        l->v[l->n++] = text;
        return 0;
    }
    case ST_SETTING_ENUM:
        for (size_t i = 0; text && s->choices[i]; i++) {
            if (strcmp(text, s->choices[i]) == 0) {
                *(int *)dst = (int)i;
                return 0;
            }
        }
        {
            char list[256];
            join_names(s->choices, n_choices(s), "", "", " or ", list, sizeof(list));
            snprintf(err, err_len, "%s: \"%s\" is not %s", flag, text ? text : "", list);
        }
        return ST_EINVAL;
    }
    return ST_EINVAL;
}

void st_settings_defaults(const st_setting *rows, size_t n, void *base, bool only_unset)
{
    for (size_t i = 0; i < n; i++) {
        const st_setting *s = &rows[i];
        if (!s->has_def || s->offset == ST_SETTING_NO_FIELD) {
            continue;
        }
        char *at = (char *)base + s->offset;
        switch (s->type) {
        case ST_SETTING_INT:
        case ST_SETTING_BOOL:
        case ST_SETTING_ENUM:
            if (!only_unset || *(int *)at < 0) {
                *(int *)at = (int)s->def;
            }
            break;
        case ST_SETTING_UINT:
            if (!only_unset) {
                *(unsigned long long *)at = (unsigned long long)s->def;
            }
            break;
        case ST_SETTING_DOUBLE:
        case ST_SETTING_DURATION:
            if (!only_unset || *(double *)at < 0) {
                *(double *)at = s->def;
            }
            break;
        case ST_SETTING_STRING:
            if (!only_unset || !*(const char **)at) {
                *(const char **)at = s->def_text;
            }
            break;
        case ST_SETTING_CUSTOM:
        case ST_SETTING_LIST:
            break;
        }
    }
}

static size_t value_size(st_setting_type t)
{
    switch (t) {
    case ST_SETTING_UINT:
        return sizeof(unsigned long long);
    case ST_SETTING_DOUBLE:
    case ST_SETTING_DURATION:
        return sizeof(double);
    case ST_SETTING_STRING:
    case ST_SETTING_CUSTOM:
        return sizeof(const char *);
    case ST_SETTING_LIST:
        return sizeof(st_setting_list);
    default:
        return sizeof(int);
    }
}

void st_setting_copy(const st_setting *s, void *base, const void *flags)
{
    if (s->offset != ST_SETTING_NO_FIELD && s->flag_offset != ST_SETTING_NO_FIELD) {
        memcpy((char *)base + s->offset, (const char *)flags + s->flag_offset,
               value_size(s->type));
    }
}

/* A walk over the rows with a flag and a bit of mask, group by group in table order; start it
 * as {groups, n_groups, mask, 0, 0, 0}. */
typedef struct flag_walk {
    const st_settings_group *groups;
    size_t n_groups;
    unsigned mask;
    size_t g, row; /* where the row next_flag returned last stands */
    size_t next;   /* the row of group g to look at next */
} flag_walk;

/* The next row of the walk, or NULL after the last. */
static const st_setting *next_flag(flag_walk *w)
{
    for (; w->g < w->n_groups; w->g++, w->next = 0) {
        while (w->next < w->groups[w->g].n) {
            const st_setting *s = &w->groups[w->g].rows[w->next++];
            if (s->flag && (s->where & w->mask)) {
                w->row = w->next - 1;
                return s;
            }
        }
    }
    return NULL;
}

/* Which row a getopt value stands for. */
typedef struct opt_ref {
    size_t group, row;
} opt_ref;

int st_settings_parse_args(int argc, char **argv, const st_settings_group *groups,
                           size_t n_groups, unsigned mask, const char *help_hint,
                           int *first_operand, char *err, size_t err_len)
{
    size_t n = 0;
    for (flag_walk w = {groups, n_groups, mask, 0, 0, 0}; next_flag(&w);) {
        n++;
    }
    struct option *longopts = calloc(n + 1, sizeof(*longopts));
    opt_ref *refs = calloc(n + 1, sizeof(*refs));
    bool *had = calloc(n + 1, sizeof(*had));
    int rc = 0;
    if (!longopts || !refs || !had) {
        rc = ST_ENOMEM;
        goto out;
    }
    size_t k = 0;
    flag_walk w = {groups, n_groups, mask, 0, 0, 0};
    for (const st_setting *s; (s = next_flag(&w)) != NULL;) {
        for (size_t j = 0; j < k; j++) {
            if (strcmp(longopts[j].name, s->flag) == 0) {
                snprintf(err, err_len, "--%s: declared twice", s->flag);
                rc = ST_EINVAL;
                goto out;
            }
        }
        longopts[k] = (struct option){s->flag,
                                      s->type == ST_SETTING_BOOL ? no_argument
                                                                 : required_argument,
                                      NULL, 256 + (int)k};
        refs[k] = (opt_ref){w.g, w.row};
        k++;
    }
    optind = 0; /* glibc: start over, also after an earlier parse */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c < 256 || (size_t)(c - 256) >= n) {
            snprintf(err, err_len, "%s: unknown flag or missing value (see %s)",
                     argv[optind - 1], help_hint);
            rc = ST_EINVAL;
            goto out;
        }
        const opt_ref *r = &refs[c - 256];
        const st_settings_group *grp = &groups[r->group];
        const st_setting *s = &grp->rows[r->row];
        /* A flag given twice is a mistake in one of them, and "the last one wins" would hide it;
         * only a LIST is meant to be repeated. */
        if (had[c - 256] && s->type != ST_SETTING_LIST) {
            snprintf(err, err_len, "--%s: given twice; give it once", longopts[c - 256].name);
            rc = ST_EINVAL;
            goto out;
        }
        had[c - 256] = true;
        if (s->flag_offset != ST_SETTING_NO_FIELD &&
            (rc = st_setting_from_text(s, optarg, (char *)grp->flags + s->flag_offset, err,
                                       err_len))) {
            goto out;
        }
        if (grp->seen) {
            *grp->seen |= (uint64_t)1 << r->row;
        }
        if (s->where & ST_SETTING_STOP) {
            rc = 1;
            goto out;
        }
    }
    *first_operand = optind;
out:
    free(longopts);
    free(refs);
    free(had);
    return rc;
}

int st_settings_check_only(const st_settings_group *groups, size_t n_groups, unsigned mask,
                           unsigned allowed, const char *because, const char *reason, char *err,
                           size_t err_len)
{
    const char *bad = NULL;
    const char *names[ST_SETTINGS_MAX_ROWS];
    size_t k = 0;
    flag_walk w = {groups, n_groups, mask, 0, 0, 0};
    for (const st_setting *s; (s = next_flag(&w)) != NULL;) {
        bool self = because && strncmp(because, "--", 2) == 0 &&
                    strcmp(because + 2, s->flag) == 0;
        if ((s->where & allowed) && !(s->where & ST_SETTING_STOP) && !self &&
            k < ST_SETTINGS_MAX_ROWS) {
            names[k++] = s->flag;
        }
        if (!bad && !(s->where & allowed) && !self && groups[w.g].seen &&
            (*groups[w.g].seen & ((uint64_t)1 << w.row))) {
            bad = s->flag;
        }
    }
    if (!bad) {
        return 0;
    }
    char list[512];
    join_names(names, k, "--", "", " and ", list, sizeof(list));
    snprintf(err, err_len, "%s: %s; only %s go with it (not --%s)", because, reason, list, bad);
    return ST_EINVAL;
}

/* Writes text from column col on, words wrapped at width, continuation lines indented to indent. */
static void wrap(FILE *f, const char *text, int col, int indent, int width)
{
    const char *p = text;
    while (*p) {
        while (*p == ' ') {
            p++;
        }
        size_t w = strcspn(p, " ");
        if (w == 0) {
            break;
        }
        if (col > indent && col + 1 + (int)w > width) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', f);
            col++;
        }
        fwrite(p, 1, w, f);
        col += (int)w;
        p += w;
    }
}

void st_settings_usage(FILE *f, const st_settings_group *groups, size_t n_groups, unsigned mask,
                       int column, int width)
{
    flag_walk w = {groups, n_groups, mask, 0, 0, 0};
    for (const st_setting *s; (s = next_flag(&w)) != NULL;) {
        char left[96], def[64] = "", help[1024];
        int col = snprintf(left, sizeof(left), "  --%s%s%s", s->flag, s->arg ? " " : "",
                           s->arg ? s->arg : "");
        if (s->has_def && is_numeric(s->type) && s->type != ST_SETTING_DURATION) {
            snprintf(def, sizeof(def), " (default %g)", s->def);
        } else if (s->has_def && s->type == ST_SETTING_DURATION) {
            char d[32];
            st_cli_format_duration(s->def, d, sizeof(d));
            snprintf(def, sizeof(def), " (default %s)", d);
        } else if (s->has_def && s->type == ST_SETTING_ENUM) {
            snprintf(def, sizeof(def), " (default %s)", s->choices[(size_t)s->def]);
        } else if (s->has_def && s->type == ST_SETTING_STRING && s->def_text) {
            snprintf(def, sizeof(def), " (default %s)", s->def_text);
        }
        snprintf(help, sizeof(help), "%s%s", s->help ? s->help : "", def);
        fputs(left, f);
        if (col + 2 > column) {
            fprintf(f, "\n%*s", column, "");
        } else {
            fprintf(f, "%*s", column - col, "");
        }
        wrap(f, help, column, column, width);
        fputc('\n', f);
    }
}
