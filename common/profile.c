#include "profile.h"
#include "error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int valid_rate(double r)
{
    return isfinite(r) && r >= 0.0 && r <= ST_PROFILE_MAX_RPS;
}

/* N over the first x seconds of stage s. */
static double stage_integral(const st_stage *s, double x)
{
    return s->from_rps * x + (s->to_rps - s->from_rps) * x * x / (2.0 * s->duration_s);
}

int st_profile_init(st_profile *p, const st_stage *stages, size_t n, size_t *bad_stage)
{
    memset(p, 0, sizeof(*p));
    if (n == 0 || n > ST_PROFILE_MAX_STAGES || !stages) {
        if (bad_stage) {
            *bad_stage = 0;
        }
        return ST_EINVAL;
    }
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        const st_stage *s = &stages[i];
        if (!isfinite(s->duration_s) || s->duration_s <= 0 || !valid_rate(s->from_rps) ||
            !valid_rate(s->to_rps) || total + s->duration_s > ST_PROFILE_MAX_S) {
            if (bad_stage) {
                *bad_stage = i;
            }
            return ST_EINVAL;
        }
        total += s->duration_s;
    }
    st_stage *copy = malloc(n * sizeof(*copy));
    double *ts = malloc(n * sizeof(*ts));
    double *ns = malloc(n * sizeof(*ns));
    if (!copy || !ts || !ns) {
        free(copy);
        free(ts);
        free(ns);
        return ST_ENOMEM;
    }
    memcpy(copy, stages, n * sizeof(*copy));
    double t = 0, cum = 0;
    for (size_t i = 0; i < n; i++) {
        ts[i] = t;
        ns[i] = cum;
        t += copy[i].duration_s;
        cum += stage_integral(&copy[i], copy[i].duration_s);
    }
    p->stages = copy;
    p->t_start = ts;
    p->n_start = ns;
    p->n_stages = n;
    p->total_s = t;
    p->total_n = cum;
    return 0;
}

void st_profile_fini(st_profile *p)
{
    if (!p) {
        return;
    }
    free(p->stages);
    free(p->t_start);
    free(p->n_start);
    memset(p, 0, sizeof(*p));
}

int st_profile_copy(st_profile *dst, const st_profile *src)
{
    return st_profile_init(dst, src->stages, src->n_stages, NULL);
}

/* Index of the stage containing t (t in [0, total_s)). */
static size_t stage_at(const st_profile *p, double t)
{
    size_t lo = 0, hi = p->n_stages - 1;
    while (lo < hi) {
        size_t mid = (lo + hi + 1) / 2;
        if (p->t_start[mid] <= t) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    return lo;
}

double st_profile_rate_at(const st_profile *p, double t_s)
{
    if (!(t_s >= 0) || t_s >= p->total_s) {
        return 0.0;
    }
    size_t i = stage_at(p, t_s);
    const st_stage *s = &p->stages[i];
    double x = t_s - p->t_start[i];
    return s->from_rps + (s->to_rps - s->from_rps) * x / s->duration_s;
}

double st_profile_integral(const st_profile *p, double t_s)
{
    if (!(t_s > 0)) {
        return 0.0;
    }
    if (t_s >= p->total_s) {
        return p->total_n;
    }
    size_t i = stage_at(p, t_s);
    return p->n_start[i] + stage_integral(&p->stages[i], t_s - p->t_start[i]);
}

static double stage_end_n(const st_profile *p, size_t i)
{
    return i + 1 < p->n_stages ? p->n_start[i + 1] : p->total_n;
}

double st_profile_time_of(const st_profile *p, double n)
{
    if (!(n >= 0) || n >= p->total_n) {
        return -1.0;
    }
    /* The first stage that ends above n holds the instant N reaches n; zero-rate stages before it
     * end exactly at n and are skipped. */
    size_t lo = 0, hi = p->n_stages - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (stage_end_n(p, mid) > n) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    const st_stage *s = &p->stages[lo];
    double need = n - p->n_start[lo];
    if (need <= 0) {
        return p->t_start[lo];
    }
    double a = s->from_rps;
    double slope = (s->to_rps - s->from_rps) / s->duration_s;
    double x;
    if (slope == 0.0) {
        x = need / a;
    } else {
        /* Root of slope/2 x^2 + a x - need = 0 in the form that stays accurate when a ~ 0 or the
         * slope is tiny: x = 2 need / (a + sqrt(a^2 + 2 slope need)). */
        double disc = a * a + 2.0 * slope * need;
        x = 2.0 * need / (a + sqrt(disc > 0 ? disc : 0));
    }
    if (x > s->duration_s) {
        x = s->duration_s;
    }
    return p->t_start[lo] + x;
}

int st_profile_change_rate(st_profile *p, double at_s, double rate_rps)
{
    if (!(at_s >= 0) || at_s >= p->total_s || !valid_rate(rate_rps)) {
        return ST_EINVAL;
    }
    size_t i = stage_at(p, at_s);
    size_t n = i + 2;
    st_stage *st = malloc(n * sizeof(*st));
    if (!st) {
        return ST_ENOMEM;
    }
    memcpy(st, p->stages, (i + 1) * sizeof(*st));
    size_t k = i;
    double x = at_s - p->t_start[i];
    if (x > 0) {
        /* Cut stage i at at_s, keeping its slope. */
        st[k].to_rps = st[k].from_rps + (st[k].to_rps - st[k].from_rps) * x / st[k].duration_s;
        st[k].duration_s = x;
        k++;
    }
    st[k].duration_s = p->total_s - at_s;
    st[k].from_rps = rate_rps;
    st[k].to_rps = rate_rps;
    k++;
    st_profile np;
    int rc = st_profile_init(&np, st, k, NULL);
    free(st);
    if (rc) {
        return rc;
    }
    st_profile_fini(p);
    *p = np;
    return 0;
}
