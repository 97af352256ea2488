#include "stats.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

#define FIELD(n) {#n, offsetof(st_counts, n), 0}
const st_counts_field st_counts_fields[ST_COUNTS_N_FIELDS] = {
    FIELD(sent),      FIELD(ok),       FIELD(http_4xx),  FIELD(http_5xx),
    FIELD(err_connect), FIELD(err_timeout), FIELD(err_other), FIELD(bytes_in),
    FIELD(bytes_out), FIELD(late),     FIELD(dropped),   FIELD(inflight),
    {"err_local", offsetof(st_counts, err_local), 1},
    {"err_tls", offsetof(st_counts, err_tls), 1},
    {"err_cert", offsetof(st_counts, err_cert), 1},
};
#undef FIELD

/* Every field is a uint64_t, so the table above covers them all. */
_Static_assert(sizeof(st_counts) == ST_COUNTS_N_FIELDS * sizeof(uint64_t),
               "st_counts_fields must list every counter");

void st_counts_add_times(st_counts *dst, const st_counts *src, uint64_t times)
{
    for (size_t i = 0; i < ST_COUNTS_N_FIELDS; i++) {
        size_t at = st_counts_fields[i].offset;
        *(uint64_t *)((char *)dst + at) += *(const uint64_t *)((const char *)src + at) * times;
    }
}

void st_counts_add(st_counts *dst, const st_counts *src)
{
    st_counts_add_times(dst, src, 1);
}

uint64_t st_counts_failed(const st_counts *c)
{
    return c->http_4xx + c->http_5xx + c->err_connect + c->err_timeout + c->err_other +
           c->err_tls + c->err_cert;
}

uint64_t st_counts_done(const st_counts *c)
{
    return c->ok + st_counts_failed(c);
}

int st_stats_init(st_stats *s)
{
    memset(s, 0, sizeof(*s));
    if (st_hist_new(&s->lat) || st_hist_new(&s->lat_raw)) {
        st_stats_fini(s);
        return ST_ENOMEM;
    }
    return 0;
}

int st_stats_names(st_stats *s, size_t n)
{
    if (n > ST_STATS_MAX_NAMES) {
        return ST_EINVAL;
    }
    if (n <= s->n_names) {
        return 0;
    }
    st_name_stats *p = realloc(s->names, n * sizeof(*p));
    if (!p) {
        return ST_ENOMEM;
    }
    s->names = p;
    for (size_t i = s->n_names; i < n; i++) {
        memset(&p[i], 0, sizeof(p[i]));
        if (st_hist_new(&p[i].lat) || st_hist_new(&p[i].lat_raw)) {
            st_hist_free(p[i].lat);
            p[i].lat = NULL;
            s->n_names = i;
            return ST_ENOMEM;
        }
    }
    s->n_names = n;
    return 0;
}

void st_stats_fini(st_stats *s)
{
    if (!s) {
        return;
    }
    for (size_t i = 0; i < s->n_names; i++) {
        st_hist_free(s->names[i].lat);
        st_hist_free(s->names[i].lat_raw);
    }
    free(s->names);
    st_hist_free(s->lat);
    st_hist_free(s->lat_raw);
    memset(s, 0, sizeof(*s));
}

void st_stats_reset(st_stats *s)
{
    memset(&s->c, 0, sizeof(s->c));
    st_hist_reset(s->lat);
    st_hist_reset(s->lat_raw);
    for (size_t i = 0; i < s->n_names; i++) {
        memset(&s->names[i].c, 0, sizeof(s->names[i].c));
        st_hist_reset(s->names[i].lat);
        st_hist_reset(s->names[i].lat_raw);
    }
}

int st_stats_merge(st_stats *dst, const st_stats *src)
{
    st_counts_add(&dst->c, &src->c);
    st_hist_merge(dst->lat, src->lat);
    st_hist_merge(dst->lat_raw, src->lat_raw);
    int rc = st_stats_names(dst, src->n_names);
    size_t n = dst->n_names < src->n_names ? dst->n_names : src->n_names;
    for (size_t i = 0; i < n; i++) {
        st_counts_add(&dst->names[i].c, &src->names[i].c);
        st_hist_merge(dst->names[i].lat, src->names[i].lat);
        st_hist_merge(dst->names[i].lat_raw, src->names[i].lat_raw);
    }
    return rc;
}
