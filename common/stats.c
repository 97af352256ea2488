#include "stats.h"
#include "error.h"

#include <string.h>

#define FIELD(n) {#n, offsetof(st_counts, n), 0}
const st_counts_field st_counts_fields[ST_COUNTS_N_FIELDS] = {
    FIELD(sent),      FIELD(ok),       FIELD(http_4xx),  FIELD(http_5xx),
    FIELD(err_connect), FIELD(err_timeout), FIELD(err_other), FIELD(bytes_in),
    FIELD(bytes_out), FIELD(late),     FIELD(dropped),   FIELD(inflight),
    {"err_local", offsetof(st_counts, err_local), 1},
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
    return c->http_4xx + c->http_5xx + c->err_connect + c->err_timeout + c->err_other;
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

void st_stats_fini(st_stats *s)
{
    if (!s) {
        return;
    }
    st_hist_free(s->lat);
    st_hist_free(s->lat_raw);
    memset(s, 0, sizeof(*s));
}

void st_stats_reset(st_stats *s)
{
    memset(&s->c, 0, sizeof(s->c));
    st_hist_reset(s->lat);
    st_hist_reset(s->lat_raw);
}

void st_stats_merge(st_stats *dst, const st_stats *src)
{
    st_counts_add(&dst->c, &src->c);
    st_hist_merge(dst->lat, src->lat);
    st_hist_merge(dst->lat_raw, src->lat_raw);
}
