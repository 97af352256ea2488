#include "pick.h"
#include "error.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void st_mix_single(st_mix *m, int status)
{
    memset(m, 0, sizeof(*m));
    m->n = 1;
    m->total = 1;
    m->e[0].status = status;
    m->e[0].weight = 1;
}

static const char *skip_space(const char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    return s;
}

/* Reads a decimal integer 0..max at *s, advancing *s past it. */
static int read_int(const char **s, long max, long *out)
{
    const char *p = *s;
    if (!isdigit((unsigned char)*p)) {
        return ST_EINVAL;
    }
    long v = 0;
    while (isdigit((unsigned char)*p)) {
        v = v * 10 + (*p - '0');
        if (v > max) {
            return ST_ERANGE;
        }
        p++;
    }
    *s = p;
    *out = v;
    return 0;
}

int st_mix_parse(st_mix *m, const char *spec, const char **why)
{
    const char *dummy;
    if (!why) {
        why = &dummy;
    }
    st_mix tmp;
    memset(&tmp, 0, sizeof(tmp));
    const char *p = spec ? spec : "";
    for (;;) {
        p = skip_space(p);
        long status, weight = 1;
        int rc = read_int(&p, 999, &status);
        if (rc != 0 || status < 200 || status > 599) {
            *why = "each item must be a status 200..599, optionally followed by :WEIGHT";
            return ST_EINVAL;
        }
        p = skip_space(p);
        if (*p == ':') {
            p = skip_space(p + 1);
            rc = read_int(&p, ST_MIX_MAX_WEIGHT, &weight);
            if (rc != 0) {
                *why = "a weight must be an integer 0..1000000";
                return ST_EINVAL;
            }
            p = skip_space(p);
        }
        for (int i = 0; i < tmp.n; i++) {
            if (tmp.e[i].status == status) {
                *why = "a status appears twice";
                return ST_EINVAL;
            }
        }
        if (tmp.n == ST_MIX_MAX) {
            *why = "at most 32 statuses";
            return ST_EINVAL;
        }
        if (tmp.total + weight > ST_MIX_MAX_WEIGHT) {
            *why = "the weights add up to more than 1000000";
            return ST_EINVAL;
        }
        tmp.e[tmp.n].status = (int)status;
        tmp.e[tmp.n].weight = (int)weight;
        tmp.n++;
        tmp.total += (int)weight;
        if (*p == '\0') {
            break;
        }
        if (*p != ',') {
            *why = "items are separated by commas, as in 200:95,500:5";
            return ST_EINVAL;
        }
        p++;
    }
    if (tmp.total == 0) {
        *why = "the weights add up to 0";
        return ST_EINVAL;
    }
    *m = tmp;
    return 0;
}

int st_mix_next(st_mix *m)
{
    /* Smooth weighted round robin: every entry earns its weight, the richest is picked and pays the
     * total. Ties go to the earlier entry, which keeps the sequence a pure function of the spec. */
    int best = 0;
    for (int i = 0; i < m->n; i++) {
        m->e[i].current += m->e[i].weight;
        if (m->e[i].current > m->e[best].current) {
            best = i;
        }
    }
    m->e[best].current -= m->total;
    return best;
}

void st_mix_rewind(st_mix *m)
{
    for (int i = 0; i < m->n; i++) {
        m->e[i].current = 0;
    }
}

int st_delay_number(const char *s, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < 0 || v > max) {
        return ST_EINVAL;
    }
    *out = v;
    return 0;
}

static int read_ms(const char *s, const char *end, double *out)
{
    /* Plain decimals only: strtod would also take hex, exponents and "inf". */
    if (s == end) {
        return ST_EINVAL;
    }
    for (const char *p = s; p < end; p++) {
        if (!isdigit((unsigned char)*p) && *p != '.') {
            return ST_EINVAL;
        }
    }
    char buf[64];
    size_t len = (size_t)(end - s);
    if (len >= sizeof(buf)) {
        return ST_EINVAL;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    return st_delay_number(buf, ST_DELAY_MAX_MS, out);
}

int st_delay_parse(st_delay *d, const char *spec, const char **why)
{
    const char *dummy;
    if (!why) {
        why = &dummy;
    }
    if (!spec) {
        spec = "";
    }
    const char *end = spec + strlen(spec);
    const char *dash = strchr(spec, '-');
    double lo, hi;
    if (!dash) {
        if (read_ms(spec, end, &lo) != 0) {
            *why =
                "expected milliseconds 0..3600000 (e.g. 5 or 0.5) or a range MIN-MAX (e.g. 2-10)";
            return ST_EINVAL;
        }
        hi = lo;
    } else {
        if (read_ms(spec, dash, &lo) != 0 || read_ms(dash + 1, end, &hi) != 0) {
            *why = "expected a range MIN-MAX in milliseconds 0..3600000 (e.g. 2-10)";
            return ST_EINVAL;
        }
        if (lo > hi) {
            *why = "the range's MIN is larger than its MAX";
            return ST_EINVAL;
        }
    }
    d->min_ms = lo;
    d->max_ms = hi;
    d->state = 0;
    return 0;
}

void st_delay_seed(st_delay *d, uint64_t seed)
{
    d->state = seed;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

double st_delay_next_ms(st_delay *d)
{
    if (d->max_ms <= d->min_ms) {
        return d->min_ms;
    }
    double u = (double)(splitmix64(&d->state) >> 11) * 0x1.0p-53; /* [0, 1) */
    return d->min_ms + u * (d->max_ms - d->min_ms);
}

static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {100, "Continue"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {203, "Non-Authoritative Information"},
    {204, "No Content"},
    {205, "Reset Content"},
    {206, "Partial Content"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Content"},
    {425, "Too Early"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {451, "Unavailable For Legal Reasons"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
    {507, "Insufficient Storage"},
    {508, "Loop Detected"},
    {511, "Network Authentication Required"},
};

const char *st_http_reason(int status)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        if (reasons[i].status == status) {
            return reasons[i].reason;
        }
    }
    if (status >= 200 && status < 300) {
        return "Success";
    }
    if (status >= 300 && status < 400) {
        return "Redirection";
    }
    if (status >= 400 && status < 500) {
        return "Client Error";
    }
    return "Server Error";
}
