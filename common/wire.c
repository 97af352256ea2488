#include "wire.h"
#include "error.h"
#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct st_arena_block {
    struct st_arena_block *next;
    size_t used, cap;
    max_align_t data[];
} st_arena_block;

void *st_arena_alloc(st_arena *a, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    st_arena_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 16384 ? n : 16384;
        b = malloc(sizeof(*b) + cap);
        if (!b) {
            return NULL;
        }
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *st_arena_strdup(st_arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = st_arena_alloc(a, n);
    if (d) {
        memcpy(d, s, n);
    }
    return d;
}

void st_arena_fini(st_arena *a)
{
    st_arena_block *b = a->head;
    while (b) {
        st_arena_block *n = b->next;
        free(b);
        b = n;
    }
    a->head = NULL;
}

typedef struct hist_fill {
    Stampede__Histogram *pb;
    uint32_t last;
} hist_fill;

static int fill_bucket(void *ctx, uint32_t index, uint64_t count)
{
    hist_fill *f = ctx;
    f->pb->index_gap[f->pb->n_index_gap++] = index - f->last;
    f->pb->count[f->pb->n_count++] = count;
    f->last = index;
    return 0;
}

static Stampede__Histogram *hist_build(st_arena *a, const st_hist *h)
{
    Stampede__Histogram *pb = st_arena_alloc(a, sizeof(*pb));
    if (!pb) {
        return NULL;
    }
    stampede__histogram__init(pb);
    size_t n = st_hist_nonzero(h);
    if (n > 0) {
        pb->index_gap = st_arena_alloc(a, n * sizeof(uint32_t));
        pb->count = st_arena_alloc(a, n * sizeof(uint64_t));
        if (!pb->index_gap || !pb->count) {
            return NULL;
        }
        hist_fill f = {pb, 0};
        st_hist_foreach(h, fill_bucket, &f);
    }
    pb->min_us = st_hist_min(h);
    pb->max_us = st_hist_max(h);
    pb->sum_us = st_hist_sum(h);
    return pb;
}

static Stampede__Counts *counts_build(st_arena *a, const st_counts *k)
{
    Stampede__Counts *c = st_arena_alloc(a, sizeof(*c));
    if (!c) {
        return NULL;
    }
    stampede__counts__init(c);
    c->sent = k->sent;
    c->ok = k->ok;
    c->http_4xx = k->http_4xx;
    c->http_5xx = k->http_5xx;
    c->err_connect = k->err_connect;
    c->err_timeout = k->err_timeout;
    c->err_other = k->err_other;
    c->bytes_in = k->bytes_in;
    c->bytes_out = k->bytes_out;
    c->late = k->late;
    c->dropped = k->dropped;
    c->inflight = k->inflight;
    c->err_local = k->err_local;
    c->err_tls = k->err_tls;
    c->err_cert = k->err_cert;
    return c;
}

static st_counts counts_load(const Stampede__Counts *c)
{
    return (st_counts){
        .sent = c->sent,
        .ok = c->ok,
        .http_4xx = c->http_4xx,
        .http_5xx = c->http_5xx,
        .err_connect = c->err_connect,
        .err_timeout = c->err_timeout,
        .err_other = c->err_other,
        .bytes_in = c->bytes_in,
        .bytes_out = c->bytes_out,
        .late = c->late,
        .dropped = c->dropped,
        .inflight = c->inflight,
        .err_local = c->err_local,
        .err_tls = c->err_tls,
        .err_cert = c->err_cert,
    };
}

static bool counts_zero(const st_counts *k)
{
    static const st_counts zero;
    return memcmp(k, &zero, sizeof(zero)) == 0;
}

/* The per-name parts of s that hold anything, as r->by_name. */
static int by_name_build(st_arena *a, const st_stats *s, Stampede__SecondRecord *r)
{
    size_t used = 0;
    for (size_t i = 0; i < s->n_names; i++) {
        used += !counts_zero(&s->names[i].c) || st_hist_count(s->names[i].lat) > 0;
    }
    if (used == 0) {
        return 0;
    }
    r->by_name = st_arena_alloc(a, used * sizeof(*r->by_name));
    if (!r->by_name) {
        return ST_ENOMEM;
    }
    for (size_t i = 0; i < s->n_names; i++) {
        const st_name_stats *p = &s->names[i];
        if (counts_zero(&p->c) && st_hist_count(p->lat) == 0) {
            continue;
        }
        Stampede__NameRecord *nr = st_arena_alloc(a, sizeof(*nr));
        if (!nr) {
            return ST_ENOMEM;
        }
        stampede__name_record__init(nr);
        nr->name = (uint32_t)i;
        nr->counts = counts_build(a, &p->c);
        nr->latency = hist_build(a, p->lat);
        nr->latency_uncorrected = hist_build(a, p->lat_raw);
        if (!nr->counts || !nr->latency || !nr->latency_uncorrected) {
            return ST_ENOMEM;
        }
        nr->counts->inflight = 0;
        r->by_name[r->n_by_name++] = nr;
    }
    return 0;
}

int st_wire_record_build(st_arena *a, const st_stats *s, uint64_t seq,
                         Stampede__SecondRecord **out)
{
    Stampede__SecondRecord *r = st_arena_alloc(a, sizeof(*r));
    if (!r) {
        return ST_ENOMEM;
    }
    stampede__second_record__init(r);
    r->seq = seq;
    r->second = s->second;
    r->counts = counts_build(a, &s->c);
    r->latency = hist_build(a, s->lat);
    r->latency_uncorrected = hist_build(a, s->lat_raw);
    if (!r->counts || !r->latency || !r->latency_uncorrected || by_name_build(a, s, r)) {
        return ST_ENOMEM;
    }
    *out = r;
    return 0;
}

/* The number of samples in a histogram; false when it does not fit in 64 bits. */
static bool hist_total(const Stampede__Histogram *h, uint64_t *out)
{
    uint64_t t = 0;
    for (size_t i = 0; i < h->n_count; i++) {
        if (__builtin_add_overflow(t, h->count[i], &t)) {
            return false;
        }
    }
    *out = t;
    return true;
}

static int hist_check(const Stampede__Histogram *h)
{
    if (!h || h->n_index_gap != h->n_count) {
        return ST_EINVAL;
    }
    return st_hist_check_sparse(h->index_gap, h->count, h->n_count, true, h->min_us, h->max_us,
                                h->sum_us);
}

/* Counts and histograms of one record or one per-name part agree. */
static int part_check(const Stampede__Counts *c, const Stampede__Histogram *lat,
                      const Stampede__Histogram *lat_raw)
{
    if (!c || hist_check(lat) || hist_check(lat_raw)) {
        return ST_EINVAL;
    }
    /* Sums that wrap around 2^64 could make absurd counts look consistent: refuse them. */
    uint64_t http, samples, samples_raw;
    if (__builtin_add_overflow(c->ok, c->http_4xx, &http) ||
        __builtin_add_overflow(http, c->http_5xx, &http) || !hist_total(lat, &samples) ||
        !hist_total(lat_raw, &samples_raw)) {
        return ST_EINVAL;
    }
    /* Every HTTP response has one latency sample of each kind (a 1xx/6xx one counts as other). */
    if (samples != samples_raw || samples < http || samples - http > c->err_other) {
        return ST_EINVAL;
    }
    return 0;
}

/* What the per-name parts must add up to: counts, and per histogram its samples, sum and
 * extremes. Sums that wrap are refused. */
typedef struct part_sum {
    st_counts c;
    uint64_t n[2], sum[2], min[2], max[2];
} part_sum;

static bool sum_add(uint64_t *acc, uint64_t v)
{
    return !__builtin_add_overflow(*acc, v, acc);
}

static bool part_sum_add(part_sum *s, const Stampede__NameRecord *nr)
{
    st_counts k = counts_load(nr->counts);
    for (size_t i = 0; i < ST_COUNTS_N_FIELDS; i++) {
        size_t at = st_counts_fields[i].offset;
        if (!sum_add((uint64_t *)((char *)&s->c + at), *(const uint64_t *)((const char *)&k + at))) {
            return false;
        }
    }
    const Stampede__Histogram *h[2] = {nr->latency, nr->latency_uncorrected};
    for (int j = 0; j < 2; j++) {
        uint64_t n;
        if (!hist_total(h[j], &n) || !sum_add(&s->n[j], n) || !sum_add(&s->sum[j], h[j]->sum_us)) {
            return false;
        }
        if (n > 0) {
            s->min[j] = s->n[j] == n || h[j]->min_us < s->min[j] ? h[j]->min_us : s->min[j];
            s->max[j] = h[j]->max_us > s->max[j] ? h[j]->max_us : s->max[j];
        }
    }
    return true;
}

static bool part_sum_matches(const part_sum *s, const Stampede__SecondRecord *r)
{
    st_counts whole = counts_load(r->counts);
    whole.inflight = 0;
    if (memcmp(&whole, &s->c, sizeof(whole)) != 0) {
        return false;
    }
    const Stampede__Histogram *h[2] = {r->latency, r->latency_uncorrected};
    for (int j = 0; j < 2; j++) {
        uint64_t n = 0;
        hist_total(h[j], &n);
        if (n != s->n[j] || h[j]->sum_us != s->sum[j] ||
            (n > 0 && (h[j]->min_us != s->min[j] || h[j]->max_us != s->max[j]))) {
            return false;
        }
    }
    return true;
}

int st_wire_record_check(const Stampede__SecondRecord *r)
{
    if (!r || part_check(r->counts, r->latency, r->latency_uncorrected)) {
        return ST_EINVAL;
    }
    if (r->n_by_name == 0) {
        return 0;
    }
    part_sum sum = {0};
    for (size_t i = 0; i < r->n_by_name; i++) {
        const Stampede__NameRecord *nr = r->by_name[i];
        if (!nr || nr->name >= ST_STATS_MAX_NAMES || (i > 0 && nr->name <= r->by_name[i - 1]->name) ||
            part_check(nr->counts, nr->latency, nr->latency_uncorrected) ||
            nr->counts->inflight != 0 || !part_sum_add(&sum, nr)) {
            return ST_EINVAL;
        }
    }
    return part_sum_matches(&sum, r) ? 0 : ST_EINVAL;
}

int st_wire_record_check_names(const Stampede__SecondRecord *r, size_t n_names)
{
    if (r->n_by_name > 0) {
        /* Ascending (checked): the last index is the highest. */
        return r->by_name[r->n_by_name - 1]->name < n_names ? 0 : ST_EINVAL;
    }
    if (n_names == 0) {
        return 0;
    }
    st_counts whole = counts_load(r->counts);
    whole.inflight = 0;
    return counts_zero(&whole) && r->latency->n_count == 0 ? 0 : ST_EINVAL;
}

static void hist_apply(const Stampede__Histogram *h, st_hist *dst)
{
    st_hist_add_sparse(dst, h->index_gap, h->count, h->n_count, true, h->min_us, h->max_us,
                       h->sum_us);
}

int st_wire_record_merge(const Stampede__SecondRecord *r, st_stats *dst)
{
    int rc = st_wire_record_check(r);
    if (rc == 0) {
        rc = st_wire_record_apply(r, dst);
    }
    return rc;
}

int st_wire_record_apply(const Stampede__SecondRecord *r, st_stats *dst)
{
    st_counts add = counts_load(r->counts);
    st_counts_add(&dst->c, &add);
    hist_apply(r->latency, dst->lat);
    hist_apply(r->latency_uncorrected, dst->lat_raw);
    if (r->n_by_name == 0) {
        return 0;
    }
    if (st_stats_names(dst, (size_t)r->by_name[r->n_by_name - 1]->name + 1)) {
        return ST_ENOMEM;
    }
    for (size_t i = 0; i < r->n_by_name; i++) {
        const Stampede__NameRecord *nr = r->by_name[i];
        st_name_stats *p = &dst->names[nr->name];
        st_counts k = counts_load(nr->counts);
        st_counts_add(&p->c, &k);
        hist_apply(nr->latency, p->lat);
        hist_apply(nr->latency_uncorrected, p->lat_raw);
    }
    return 0;
}

int st_wire_plan_build(st_arena *a, const st_plan *p, const char *engine, Stampede__PlanSpec **out)
{
    Stampede__PlanSpec *spec = st_arena_alloc(a, sizeof(*spec));
    if (!spec) {
        return ST_ENOMEM;
    }
    stampede__plan_spec__init(spec);
    spec->requests = st_arena_alloc(a, p->n_requests * sizeof(*spec->requests));
    if (!spec->requests) {
        return ST_ENOMEM;
    }
    for (size_t i = 0; i < p->n_requests; i++) {
        const st_request *r = &p->requests[i];
        Stampede__Request *q = st_arena_alloc(a, sizeof(*q));
        if (!q) {
            return ST_ENOMEM;
        }
        stampede__request__init(q);
        q->name = st_arena_strdup(a, r->name);
        q->method = st_arena_strdup(a, r->method);
        q->url = st_arena_strdup(a, r->url);
        q->headers = st_arena_alloc(a, (r->n_headers + 1) * sizeof(char *));
        if (!q->name || !q->method || !q->url || !q->headers) {
            return ST_ENOMEM;
        }
        for (size_t h = 0; h < r->n_headers; h++) {
            if (!(q->headers[h] = st_arena_strdup(a, r->headers[h]))) {
                return ST_ENOMEM;
            }
        }
        q->n_headers = r->n_headers;
        if (r->body) {
            q->has_body = true;
            q->body.data = (uint8_t *)r->body;
            q->body.len = r->body_len;
        }
        q->weight = r->weight;
        spec->requests[i] = q;
    }
    spec->n_requests = p->n_requests;
    spec->closed_loop = p->closed_loop;
    spec->duration_s = p->duration_s;
    spec->connections = (uint32_t)p->connections;
    spec->threads = (uint32_t)(p->threads > 0 ? p->threads : 0);
    spec->timeout_ms = (uint32_t)p->timeout_ms;
    spec->late_ms = (uint32_t)p->late_ms;
    spec->send_window_us = (uint32_t)(p->send_window_s > 0 ? p->send_window_s * 1e6 + 0.5 : 0);
    spec->http2 = p->http2 == 1;
    spec->streams = (uint32_t)(p->streams > 0 ? p->streams : 1);
    spec->insecure = p->insecure == 1;
    if (p->cacert_pem) {
        spec->cacert.data = (uint8_t *)p->cacert_pem;
        spec->cacert.len = p->cacert_pem_len;
        spec->cacert_name = p->cacert; /* the plan outlives the message, as the bodies do */
    }
    spec->engine = st_arena_strdup(a, engine ? engine : "auto");
    if (!spec->engine) {
        return ST_ENOMEM;
    }
    *out = spec;
    return 0;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        if (n > 0) { /* an empty body may come with no data at all */
            memcpy(d, s, n);
        }
        d[n] = 0;
    }
    return d;
}

int st_wire_plan_load(const Stampede__PlanSpec *spec, const Stampede__Assignment *asg,
                      int default_threads, st_plan *out, char *err, size_t err_len)
{
    if (!spec || spec->n_requests == 0 || spec->n_requests > ST_PLAN_MAX_REQUESTS) {
        return st_errf(err, err_len, ST_EINVAL, "plan: from 1 to %d requests expected",
                       ST_PLAN_MAX_REQUESTS);
    }
    if (spec->connections < 1 || spec->connections > 1000000 || spec->threads > 1024 ||
        spec->timeout_ms < 1 || spec->late_ms < 1 || spec->send_window_us > 1000000 ||
        spec->send_window_us > spec->late_ms * 1000ull) {
        return st_errf(err, err_len, ST_EINVAL,
                       "plan: connections, threads, timeout_ms, late_ms or send_window_us out of "
                       "range");
    }
    /* The plan goes through the same checks as a file: requests first, as JSON would give them. */
    out->requests = calloc(spec->n_requests, sizeof(*out->requests));
    if (!out->requests) {
        return ST_ENOMEM;
    }
    for (size_t i = 0; i < spec->n_requests; i++) {
        const Stampede__Request *q = spec->requests[i];
        st_request *r = &out->requests[i];
        out->n_requests = i + 1;
        if (!q || !q->url || !q->method || q->weight < 1 || q->weight > ST_PLAN_MAX_WEIGHT ||
            q->n_headers > ST_PLAN_MAX_HEADERS) {
            return st_errf(err, err_len, ST_EINVAL,
                           "plan: request %zu is incomplete or out of range", i);
        }
        const char *why = NULL;
        st_url u;
        if (st_url_parse(q->url, &u, &why)) {
            return st_errf(err, err_len, ST_EINVAL, "plan: request %zu: URL %s", i,
                           why ? why : "invalid");
        }
        st_url_fini(&u);
        r->name = strdup(q->name && q->name[0] ? q->name : q->url);
        r->method = strdup(q->method);
        r->url = strdup(q->url);
        r->headers = calloc(q->n_headers + 1, sizeof(char *));
        if (!r->name || !r->method || !r->url || !r->headers) {
            return ST_ENOMEM;
        }
        for (size_t h = 0; h < q->n_headers; h++) {
            if (!q->headers[h] || strpbrk(q->headers[h], "\r\n") || !strchr(q->headers[h], ':')) {
                return st_errf(err, err_len, ST_EINVAL,
                               "plan: request %zu: header %zu is not \"Name: value\"", i, h);
            }
            if (!(r->headers[h] = strdup(q->headers[h]))) {
                return ST_ENOMEM;
            }
            r->n_headers = h + 1;
        }
        if (q->has_body) {
            if (!(r->body = dup_n((const char *)q->body.data, q->body.len))) {
                return ST_ENOMEM;
            }
            r->body_len = q->body.len;
        }
        r->weight = q->weight;
    }
    out->connections = (int)spec->connections;
    out->threads = spec->threads > 0 ? (int)spec->threads : -1;
    out->timeout_ms = (int)spec->timeout_ms;
    out->late_ms = (int)spec->late_ms;
    out->send_window_s = spec->send_window_us / 1e6;
    out->http2 = spec->http2;
    out->streams = spec->streams > 0 ? (int)spec->streams : 1;
    out->insecure = spec->insecure;
    if (spec->cacert.len > 0) {
        const char *name = spec->cacert_name && spec->cacert_name[0] ? spec->cacert_name
                                                                      : "(the coordinator's)";
        if (!(out->cacert_pem = dup_n((const char *)spec->cacert.data, spec->cacert.len)) ||
            !(out->cacert = strdup(name))) {
            return ST_ENOMEM;
        }
        out->cacert_pem_len = spec->cacert.len;
    }
    if (spec->closed_loop) {
        out->rate_rps = 0;
        out->duration_s = spec->duration_s;
    } else {
        if (!asg || asg->n_stages == 0 || asg->n_stages > ST_PROFILE_MAX_STAGES) {
            return st_errf(err, err_len, ST_EINVAL, "plan: the assignment carries no rate profile");
        }
        out->stages = calloc(asg->n_stages, sizeof(*out->stages));
        if (!out->stages) {
            return ST_ENOMEM;
        }
        for (size_t i = 0; i < asg->n_stages; i++) {
            if (!asg->stages[i]) {
                return st_errf(err, err_len, ST_EINVAL, "plan: stage %zu is empty", i);
            }
            out->stages[i].duration_s = asg->stages[i]->duration_s;
            out->stages[i].from_rps = asg->stages[i]->from_rps;
            out->stages[i].to_rps = asg->stages[i]->to_rps;
        }
        out->n_stages = asg->n_stages;
    }
    return st_plan_finish(out, default_threads, err, err_len);
}

int st_wire_stages_build(st_arena *a, const st_profile *p, Stampede__Stage ***out, size_t *n)
{
    Stampede__Stage **arr = st_arena_alloc(a, p->n_stages * sizeof(*arr));
    if (!arr) {
        return ST_ENOMEM;
    }
    for (size_t i = 0; i < p->n_stages; i++) {
        Stampede__Stage *s = st_arena_alloc(a, sizeof(*s));
        if (!s) {
            return ST_ENOMEM;
        }
        stampede__stage__init(s);
        s->duration_s = p->stages[i].duration_s;
        s->from_rps = p->stages[i].from_rps;
        s->to_rps = p->stages[i].to_rps;
        arr[i] = s;
    }
    *out = arr;
    *n = p->n_stages;
    return 0;
}

int st_wire_profile_load(Stampede__Stage *const *stages, size_t n, st_profile *out)
{
    if (n == 0 || n > ST_PROFILE_MAX_STAGES) {
        return ST_EINVAL;
    }
    st_stage *st = malloc(n * sizeof(*st));
    if (!st) {
        return ST_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (!stages[i]) {
            free(st);
            return ST_EINVAL;
        }
        st[i] = (st_stage){stages[i]->duration_s, stages[i]->from_rps, stages[i]->to_rps};
    }
    int rc = st_profile_init(out, st, n, NULL);
    free(st);
    return rc;
}

int st_wire_record_body_pack(const Stampede__SecondRecord *r, uint8_t **body, size_t *len)
{
    Stampede__SecondRecord bare = *r;
    bare.seq = 0;
    bare.second = 0;
    size_t n = stampede__second_record__get_packed_size(&bare);
    uint8_t *b = malloc(n ? n : 1);
    if (!b) {
        return ST_ENOMEM;
    }
    *len = stampede__second_record__pack(&bare, b);
    *body = b;
    return 0;
}

int st_wire_record_body_build(const st_stats *s, uint8_t **body, size_t *len)
{
    st_arena a = {0};
    Stampede__SecondRecord *r;
    int rc = st_wire_record_build(&a, s, 0, &r);
    if (rc == 0) {
        rc = st_wire_record_body_pack(r, body, len);
    }
    st_arena_fini(&a);
    return rc;
}

/* The tags of the fields st_wire_update_pack writes itself (field number << 3 | wire type). */
#define TAG_RECORD_SEQ      0x08 /* SecondRecord.seq = 1, varint */
#define TAG_RECORD_SECOND   0x10 /* SecondRecord.second = 2, varint */
#define TAG_UPDATE_RECORD   0x2a /* AgentUpdate.records = 5, length-delimited */
#define TAG_ENVELOPE_UPDATE 0x72 /* Envelope.update = 14, length-delimited */

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static size_t packed_record_len(const st_wire_packed_record *r)
{
    size_t n = 1 + varint_len(r->seq) + r->len;
    if (r->second) {
        n += 1 + varint_len(r->second); /* proto3 leaves a zero out */
    }
    return n;
}

/* protobuf-c writes the fields in number order and leaves zero scalars out: the update is its
 * fields 1-4, then the records (5), then fields 6-11, and the envelope is its version and run id,
 * then the update (14), its only body. Each part that has no records is packed by protobuf-c. */
int st_wire_update_pack(const char *run_id, const Stampede__AgentUpdate *up,
                        const st_wire_packed_record *recs, size_t n, uint8_t **buf, size_t *len)
{
    if (up->n_records) {
        return ST_EINVAL;
    }
    Stampede__AgentUpdate head = STAMPEDE__AGENT_UPDATE__INIT;
    Stampede__AgentUpdate tail = *up;
    head.agent_id = up->agent_id;
    head.instance_id = up->instance_id;
    head.epoch = up->epoch;
    head.state = up->state;
    tail.agent_id = 0;
    tail.instance_id = 0;
    tail.epoch = 0;
    tail.state = 0;
    size_t body = stampede__agent_update__get_packed_size(&head) +
                  stampede__agent_update__get_packed_size(&tail);
    for (size_t i = 0; i < n; i++) {
        size_t rl = packed_record_len(&recs[i]);
        body += 1 + varint_len(rl) + rl;
    }
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    env.version = ST_PROTOCOL_VERSION;
    env.run_id = (char *)(run_id ? run_id : "");
    size_t total = stampede__envelope__get_packed_size(&env) + 1 + varint_len(body) + body;
    uint8_t *start = malloc(total);
    if (!start) {
        return ST_ENOMEM;
    }
    uint8_t *p = start;
    p += stampede__envelope__pack(&env, p);
    *p++ = TAG_ENVELOPE_UPDATE;
    p = varint_put(p, body);
    p += stampede__agent_update__pack(&head, p);
    for (size_t i = 0; i < n; i++) {
        const st_wire_packed_record *r = &recs[i];
        *p++ = TAG_UPDATE_RECORD;
        p = varint_put(p, packed_record_len(r));
        *p++ = TAG_RECORD_SEQ;
        p = varint_put(p, r->seq);
        if (r->second) {
            *p++ = TAG_RECORD_SECOND;
            p = varint_put(p, r->second);
        }
        memcpy(p, r->body, r->len);
        p += r->len;
    }
    p += stampede__agent_update__pack(&tail, p);
    *buf = start;
    *len = (size_t)(p - start);
    return 0;
}

int st_wire_pack(const Stampede__Envelope *env, uint8_t **buf, size_t *len)
{
    size_t n = stampede__envelope__get_packed_size(env);
    uint8_t *b = malloc(n ? n : 1);
    if (!b) {
        return ST_ENOMEM;
    }
    *len = stampede__envelope__pack(env, b);
    *buf = b;
    return 0;
}

Stampede__Envelope *st_wire_unpack(const uint8_t *buf, size_t len, const char *run_id, int *err)
{
    Stampede__Envelope *e = stampede__envelope__unpack(NULL, len, buf);
    if (!e) {
        *err = ST_EPROTO;
        return NULL;
    }
    if (e->version != ST_PROTOCOL_VERSION || e->body_case == STAMPEDE__ENVELOPE__BODY__NOT_SET) {
        stampede__envelope__free_unpacked(e, NULL);
        *err = ST_EPROTO;
        return NULL;
    }
    if (run_id && run_id[0] && e->run_id && e->run_id[0] && strcmp(e->run_id, run_id) != 0) {
        stampede__envelope__free_unpacked(e, NULL);
        *err = ST_EINVAL;
        return NULL;
    }
    *err = 0;
    return e;
}
