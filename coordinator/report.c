#include "report.h"
#include "coord.h"
#include "core.h"
#include "error.h"
#include "merge.h"
#include "share.h"
#include "summary.h"
#include "wire.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

const char *st_report_status_name(st_report_status s)
{
    switch (s) {
    case ST_REPORT_COMPLETED: return "completed";
    case ST_REPORT_STOPPED: return "stopped";
    case ST_REPORT_FAILED: return "failed";
    case ST_REPORT_DEGRADED: return "degraded";
    default: return "running";
    }
}

const char *st_report_agent_state_name(st_report_agent_state s)
{
    switch (s) {
    case ST_REPORT_AGENT_IDLE: return "idle";
    case ST_REPORT_AGENT_READY: return "ready";
    case ST_REPORT_AGENT_RUNNING: return "running";
    case ST_REPORT_AGENT_DRAINING: return "draining";
    case ST_REPORT_AGENT_DONE: return "done";
    case ST_REPORT_AGENT_FAILED: return "failed";
    case ST_REPORT_AGENT_LOST: return "lost";
    default: return "unknown";
    }
}

void st_report_latency_of(st_report_latency *out, const st_hist *h)
{
    out->count = st_hist_count(h);
    out->min_us = st_hist_min(h);
    out->p50_us = st_hist_percentile(h, 50);
    out->p90_us = st_hist_percentile(h, 90);
    out->p99_us = st_hist_percentile(h, 99);
    out->p999_us = st_hist_percentile(h, 99.9);
    out->max_us = st_hist_max(h);
    out->mean_us = st_hist_mean(h);
}

int st_report_latency_with_timeouts(st_report_latency *out, const st_hist *h, uint64_t timeouts,
                                    uint32_t timeout_ms)
{
    st_hist *all;
    if (st_hist_with_values(&all, h, (uint64_t)timeout_ms * 1000, timeouts)) {
        memset(out, 0, sizeof(*out));
        return ST_ENOMEM;
    }
    st_report_latency_of(out, all);
    st_hist_free(all);
    return 0;
}

void st_report_second_of(st_report_second *row, uint32_t second, double target_rps,
                         const st_stats *s, int agents)
{
    row->second = second;
    row->target_rps = target_rps;
    row->agents = agents;
    row->counts = s->c;
    st_report_latency_of(&row->latency, s->lat);
    st_report_latency_of(&row->latency_uncorrected, s->lat_raw);
    row->latency_with_timeouts = row->latency; /* what it is without a timeout to count */
}

/* ---- the series ---------------------------------------------------------------------------- */

/* Most of a row's integers are small (per-second counts, latencies in microseconds, zeros for
 * the failure classes that did not happen): a varint takes one to three bytes for them where
 * the struct takes eight. */
static unsigned char *put_varint(unsigned char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (unsigned char)v;
    return p;
}

static const unsigned char *get_varint(const unsigned char *p, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0;; shift += 7) {
        x |= (uint64_t)(*p & 0x7f) << shift;
        if (!(*p++ & 0x80)) {
            break;
        }
    }
    *v = x;
    return p;
}

/* Doubles keep their bits: the row comes back exactly, NaN and -0 included. */
static unsigned char *put_double(unsigned char *p, double d)
{
    memcpy(p, &d, sizeof(d));
    return p + sizeof(d);
}

static const unsigned char *get_double(const unsigned char *p, double *d)
{
    memcpy(d, p, sizeof(*d));
    return p + sizeof(*d);
}

/* The latency figures in declaration order, for the packer and the unpacker. */
#define LATENCY_FIGURES(X) X(count) X(min_us) X(p50_us) X(p90_us) X(p99_us) X(p999_us) X(max_us)

static unsigned char *put_latency(unsigned char *p, const st_report_latency *l)
{
#define PUT(f) p = put_varint(p, l->f);
    LATENCY_FIGURES(PUT)
#undef PUT
    return put_double(p, l->mean_us);
}

static const unsigned char *get_latency(const unsigned char *p, st_report_latency *l)
{
#define GET(f) p = get_varint(p, &l->f);
    LATENCY_FIGURES(GET)
#undef GET
    return get_double(p, &l->mean_us);
}

/* Flags of a packed row. */
#define ROW_TIMEOUTS_SAME 1u /* latency_with_timeouts equals latency: not packed */

/* Returns the end of the packed row: at most ST_REPORT_SERIES_ROW_MAX bytes after p. */
static unsigned char *put_row(unsigned char *p, const st_report_second *row)
{
    bool same = memcmp(&row->latency_with_timeouts, &row->latency, sizeof(row->latency)) == 0;
    p = put_varint(p, row->second);
    p = put_double(p, row->target_rps);
    /* Zigzag: a negative count of agents would never be one, but it still comes back. */
    int64_t agents = row->agents;
    p = put_varint(p, agents < 0 ? ~((uint64_t)agents << 1) : (uint64_t)agents << 1);
    *p++ = same ? ROW_TIMEOUTS_SAME : 0;
    for (size_t i = 0; i < ST_COUNTS_N_FIELDS; i++) {
        uint64_t v;
        memcpy(&v, (const char *)&row->counts + st_counts_fields[i].offset, sizeof(v));
        p = put_varint(p, v);
    }
    p = put_latency(p, &row->latency);
    p = put_latency(p, &row->latency_uncorrected);
    if (!same) {
        p = put_latency(p, &row->latency_with_timeouts);
    }
    return p;
}

static const unsigned char *get_row(const unsigned char *p, st_report_second *row)
{
    uint64_t v;
    p = get_varint(p, &v);
    row->second = (uint32_t)v;
    p = get_double(p, &row->target_rps);
    p = get_varint(p, &v);
    row->agents = (int)(int64_t)(v & 1 ? ~(v >> 1) : v >> 1);
    unsigned flags = *p++;
    for (size_t i = 0; i < ST_COUNTS_N_FIELDS; i++) {
        p = get_varint(p, &v);
        memcpy((char *)&row->counts + st_counts_fields[i].offset, &v, sizeof(v));
    }
    p = get_latency(p, &row->latency);
    p = get_latency(p, &row->latency_uncorrected);
    if (flags & ROW_TIMEOUTS_SAME) {
        row->latency_with_timeouts = row->latency;
    } else {
        p = get_latency(p, &row->latency_with_timeouts);
    }
    return p;
}

/* Filled in place to its end, never moved, so no copy of the series is left behind as it grows.
 * The newest is first: rows are unpacked from the end of the array back. */
typedef struct chunk {
    struct chunk *older;
    size_t used; /* bytes of packed rows, from the start of bytes */
    size_t rows;
    unsigned char bytes[];
} chunk;

#define CHUNK_ROOM (ST_REPORT_SERIES_CHUNK - offsetof(chunk, bytes))

struct st_report_series {
    st_arena arena; /* the chunks' memory */
    chunk *newest;
    size_t n_chunks, n_rows, packed;
};

int st_report_series_new(st_report_series **out)
{
    st_report_series *s = calloc(1, sizeof(*s));
    if (!s) {
        return ST_ENOMEM;
    }
    *out = s;
    return 0;
}

void st_report_series_free(st_report_series *s)
{
    if (s) {
        st_arena_fini(&s->arena);
        free(s);
    }
}

int st_report_series_append(st_report_series *s, const st_report_second *row)
{
    chunk *k = s->newest;
    if (!k || k->used > CHUNK_ROOM - ST_REPORT_SERIES_ROW_MAX) {
        if (!(k = st_arena_alloc(&s->arena, ST_REPORT_SERIES_CHUNK))) {
            return ST_ENOMEM;
        }
        k->older = s->newest;
        s->newest = k;
        s->n_chunks++;
    }
    unsigned char *at = k->bytes + k->used;
    size_t n = (size_t)(put_row(at, row) - at);
    k->used += n;
    k->rows++;
    s->packed += n;
    s->n_rows++;
    return 0;
}

int st_report_series_rows(const st_report_series *s, st_report_second **out)
{
    *out = NULL;
    if (s->n_rows == 0) {
        return 0;
    }
    st_report_second *rows = calloc(s->n_rows, sizeof(*rows));
    if (!rows) {
        return ST_ENOMEM;
    }
    size_t end = s->n_rows;
    for (const chunk *k = s->newest; k; k = k->older) {
        end -= k->rows;
        const unsigned char *p = k->bytes;
        for (size_t i = 0; i < k->rows; i++) {
            p = get_row(p, &rows[end + i]);
        }
    }
    *out = rows;
    return 0;
}

size_t st_report_series_count(const st_report_series *s)
{
    return s->n_rows;
}

size_t st_report_series_packed(const st_report_series *s)
{
    return s->packed;
}

size_t st_report_series_bytes(const st_report_series *s)
{
    return s->n_chunks * (size_t)ST_REPORT_SERIES_CHUNK;
}

void st_report_fini(st_report *r)
{
    if (!r) {
        return;
    }
    for (size_t i = 0; i < r->n_agents; i++) {
        st_report_agent *a = &r->agents[i];
        free(a->name);
        free(a->host);
        free(a->version);
        free(a->task);
        free(a->availability_zone);
        free(a->task_definition);
        free(a->error);
        free(a->lost_reason);
    }
    free(r->agents);
    for (size_t i = 0; i < r->n_thresholds; i++) {
        free(r->thresholds[i].expression);
    }
    free(r->thresholds);
    free(r->rate_changes);
    for (size_t i = 0; i < r->n_names; i++) {
        free(r->names[i]);
    }
    free(r->names);
    free(r->seconds);
    free(r->incomplete_seconds);
    st_stats_fini(&r->total);
    free(r->plan.engine);
    free(r->error);
    free(r->run_id);
    memset(r, 0, sizeof(*r));
}

static cJSON *agent_json(const st_report_agent *a)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        return NULL;
    }
    cJSON_AddNumberToObject(o, "id", a->id);
    cJSON_AddStringToObject(o, "name", a->name);
    cJSON_AddStringToObject(o, "host", a->host);
    if (a->task[0]) {
        cJSON_AddStringToObject(o, "task", a->task);
    }
    if (a->availability_zone[0]) {
        cJSON_AddStringToObject(o, "availability_zone", a->availability_zone);
    }
    if (a->task_definition && a->task_definition[0]) {
        cJSON_AddStringToObject(o, "task_definition", a->task_definition);
    }
    if (a->cpu_vcpus > 0) {
        cJSON_AddNumberToObject(o, "cpu_vcpus", a->cpu_vcpus);
    }
    cJSON_AddNumberToObject(o, "share_rps", a->share_rps);
    cJSON_AddNumberToObject(o, "requests", (double)st_counts_done(&a->counts));
    cJSON_AddNumberToObject(o, "ok", (double)a->counts.ok);
    cJSON_AddNumberToObject(o, "failed", (double)st_counts_failed(&a->counts));
    cJSON_AddBoolToObject(o, "lost", a->lost);
    cJSON_AddStringToObject(o, "state", st_report_agent_state_name(a->state));
    if (a->lost && a->lost_reason && a->lost_reason[0]) {
        cJSON_AddStringToObject(o, "reason", a->lost_reason);
    }
    cJSON_AddNumberToObject(o, "clock_offset_ms", a->clock_offset_ms);
    cJSON_AddNumberToObject(o, "clock_rtt_ms", a->clock_rtt_ms);
    return o;
}

static cJSON *threshold_json(const st_report_threshold *t)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        return NULL;
    }
    cJSON_AddStringToObject(o, "expression", t->expression);
    if (t->have_value) {
        cJSON_AddNumberToObject(o, "observed", t->observed);
    } else {
        cJSON_AddNullToObject(o, "observed");
    }
    cJSON_AddStringToObject(o, "unit", t->unit);
    cJSON_AddStringToObject(o, "op", t->op);
    cJSON_AddNumberToObject(o, "limit", t->limit);
    cJSON_AddStringToObject(o, "result", t->pass ? "pass" : "fail");
    cJSON_AddBoolToObject(o, "aborted", t->aborted);
    if (t->aborted) {
        cJSON_AddNumberToObject(o, "aborted_at_s", t->aborted_at);
    }
    return o;
}

st_summary st_report_summary(const st_report *r)
{
    return (st_summary){
        .total = &r->total,
        .duration_s = r->duration_s,
        .target_requests = r->target_requests,
        .closed_loop = r->plan.closed_loop,
        .timeout_ms = r->plan.timeout_ms,
    };
}

/* What the run was asked to do, as the summary's "plan". */
static cJSON *plan_json(const st_report_plan *p)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        return NULL;
    }
    cJSON_AddStringToObject(o, "engine", p->engine ? p->engine : "auto");
    cJSON_AddNumberToObject(o, "duration_s", p->duration_s);
    if (p->closed_loop) {
        cJSON_AddNullToObject(o, "requests");
        cJSON_AddNullToObject(o, "average_rps");
        cJSON_AddNullToObject(o, "send_window_ms");
    } else {
        cJSON_AddNumberToObject(o, "requests", p->requests);
        cJSON_AddNumberToObject(o, "average_rps", p->average_rps);
        cJSON_AddNumberToObject(o, "send_window_ms", p->send_window_s * 1e3);
    }
    cJSON_AddNumberToObject(o, "agents", p->expected_agents);
    if (p->threads_per_agent > 0) {
        cJSON_AddNumberToObject(o, "threads_per_agent", p->threads_per_agent);
    } else {
        cJSON_AddNullToObject(o, "threads_per_agent");
    }
    cJSON_AddNumberToObject(o, "connections_per_agent", p->connections);
    cJSON_AddNumberToObject(o, "timeout_ms", p->timeout_ms);
    cJSON_AddNumberToObject(o, "late_ms", p->late_ms);
    cJSON_AddBoolToObject(o, "http2", p->http2);
    cJSON_AddNumberToObject(o, "streams", p->streams);
    cJSON_AddBoolToObject(o, "insecure", p->insecure);
    return o;
}

cJSON *st_report_json(const st_report *r)
{
    st_summary s = st_report_summary(r);
    cJSON *j = st_summary_json(&s);
    if (!j) {
        return NULL;
    }
    cJSON_AddStringToObject(j, "run_id", r->run_id);
    cJSON *plan = plan_json(&r->plan);
    if (!plan || !cJSON_AddItemToObject(j, "plan", plan)) {
        cJSON_Delete(plan);
        cJSON_Delete(j);
        return NULL;
    }
    if (r->have_start_skew) {
        cJSON_AddNumberToObject(j, "start_skew_ms", r->start_skew_ms);
    } else {
        cJSON_AddNullToObject(j, "start_skew_ms");
    }
    if (r->have_clock_error_bound) {
        cJSON_AddNumberToObject(j, "clock_error_bound_ms", r->clock_error_bound_ms);
    }
    cJSON *arr = cJSON_AddArrayToObject(j, "agents");
    for (size_t i = 0; arr && i < r->n_agents; i++) {
        cJSON *o = agent_json(&r->agents[i]);
        if (!o) {
            break;
        }
        cJSON_AddItemToArray(arr, o);
    }
    cJSON_AddNumberToObject(j, "late_records", (double)r->late_records);
    cJSON_AddNumberToObject(j, "duplicate_records", (double)r->duplicate_records);
    cJSON_AddNumberToObject(j, "malformed_messages", (double)r->malformed_messages);
    if (r->unmerged_records) {
        cJSON_AddNumberToObject(j, "out_of_memory_records", (double)r->unmerged_records);
    }
    if (r->status == ST_REPORT_DEGRADED || r->n_incomplete > 0) {
        cJSON *inc = cJSON_AddArrayToObject(j, "incomplete_seconds");
        for (size_t i = 0; inc && i < r->n_incomplete; i++) {
            cJSON_AddItemToArray(inc, cJSON_CreateNumber(r->incomplete_seconds[i]));
        }
    }
    if (r->status != ST_REPORT_RUNNING) {
        cJSON_AddStringToObject(j, "status", st_report_status_name(r->status));
        if (r->status == ST_REPORT_FAILED) {
            cJSON_AddStringToObject(j, "error", r->error);
        }
    }
    if (r->n_rate_changes > 0) {
        cJSON *rc = cJSON_AddArrayToObject(j, "rate_changes");
        for (size_t i = 0; rc && i < r->n_rate_changes; i++) {
            const st_report_rate_change *x = &r->rate_changes[i];
            cJSON *o = cJSON_CreateObject();
            if (!o) {
                break;
            }
            cJSON_AddNumberToObject(o, "at_s", x->at_s);
            cJSON_AddNumberToObject(o, "from_rps", x->from_rps);
            cJSON_AddNumberToObject(o, "to_rps", x->to_rps);
            cJSON_AddStringToObject(o, "by", x->by);
            cJSON_AddItemToArray(rc, o);
        }
    }
    if (r->n_thresholds > 0) {
        cJSON *th = cJSON_AddArrayToObject(j, "thresholds");
        for (size_t i = 0; th && i < r->n_thresholds; i++) {
            cJSON *o = threshold_json(&r->thresholds[i]);
            if (!o) {
                break;
            }
            cJSON_AddItemToArray(th, o);
        }
    }
    if (r->n_names > 0) {
        cJSON *by = st_report_by_name_json(r);
        if (!by) {
            cJSON_Delete(j);
            return NULL;
        }
        cJSON_AddItemToObject(j, "requests_by_name", by);
    }
    return j;
}

/* ---- results per request name ---- */

st_stats st_report_name_view(const st_report *r, size_t i)
{
    const st_name_stats *p = &r->total.names[i];
    return (st_stats){.c = p->c, .lat = p->lat, .lat_raw = p->lat_raw};
}

/* The parts of a summary object that a name's block takes (the rest is the run's). */
static const char *const by_name_keys[] = {"requests", "errors", "latency_ms",
                                           "latency_uncorrected_ms"};

cJSON *st_report_by_name_json(const st_report *r)
{
    if (r->n_names == 0 || r->total.n_names < r->n_names) {
        return NULL;
    }
    cJSON *by = cJSON_CreateObject();
    for (size_t i = 0; by && i < r->n_names; i++) {
        st_stats v = st_report_name_view(r, i);
        st_summary s = {.total = &v, .duration_s = r->duration_s};
        cJSON *whole = st_summary_json(&s);
        cJSON *o = cJSON_CreateObject();
        bool ok = whole && o;
        for (size_t k = 0; ok && k < sizeof(by_name_keys) / sizeof(by_name_keys[0]); k++) {
            cJSON *part = cJSON_DetachItemFromObjectCaseSensitive(whole, by_name_keys[k]);
            ok = part != NULL;
            if (ok) {
                cJSON_AddItemToObject(o, by_name_keys[k], part);
            }
        }
        cJSON_Delete(whole);
        if (!ok) {
            cJSON_Delete(o);
            cJSON_Delete(by);
            return NULL;
        }
        cJSON_AddItemToObject(by, r->names[i], o);
    }
    return by;
}

int st_report_names_of(st_report *r, const st_names *names)
{
    size_t n = st_names_kept(names);
    if (n == 0) {
        return 0;
    }
    if (st_stats_names(&r->total, n) || !(r->names = calloc(n, sizeof(*r->names)))) {
        return ST_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(r->names[i] = strdup(names->name[i]))) {
            return ST_ENOMEM;
        }
        r->n_names = i + 1;
    }
    return 0;
}

/* ---- the core's report (coord.h) ---------------------------------------------------------- */

static st_report_agent_state agent_state(Stampede__AgentState s)
{
    switch (s) {
    case STAMPEDE__AGENT_STATE__AGENT_IDLE: return ST_REPORT_AGENT_IDLE;
    case STAMPEDE__AGENT_STATE__AGENT_READY: return ST_REPORT_AGENT_READY;
    case STAMPEDE__AGENT_STATE__AGENT_RUNNING: return ST_REPORT_AGENT_RUNNING;
    case STAMPEDE__AGENT_STATE__AGENT_DRAINING: return ST_REPORT_AGENT_DRAINING;
    case STAMPEDE__AGENT_STATE__AGENT_DONE: return ST_REPORT_AGENT_DONE;
    case STAMPEDE__AGENT_STATE__AGENT_FAILED: return ST_REPORT_AGENT_FAILED;
    default: return ST_REPORT_AGENT_UNKNOWN;
    }
}

static st_report_status run_status(const st_coord *c, bool degraded)
{
    switch (c->state) {
    case ST_COORD_FAILED: return ST_REPORT_FAILED;
    case ST_COORD_DONE:
        return c->stopping ? ST_REPORT_STOPPED : degraded ? ST_REPORT_DEGRADED : ST_REPORT_COMPLETED;
    default: return ST_REPORT_RUNNING;
    }
}

/* The seconds agent a's share lacks: from the first it owed and did not report, or stopped its
 * load in, or was lost in, to the last its share was its own (within the run). False when
 * none. */
static bool short_seconds(st_coord *c, const st_coord_agent *a, uint32_t *from,
                          uint32_t *until)
{
    if (!c->t0 || !a->started || !(a->lost || a->self_stopped)) {
        return false;
    }
    uint32_t end_k = (uint32_t)(st_coord_duration_s(c) + 1.0 - 1e-9); /* seconds of the run */
    if (end_k == 0) {
        return false;
    }
    int64_t lo = INT64_MAX;
    if (a->first_owed_second >= 0) {
        lo = a->first_owed_second;
    }
    if (a->self_stopped) {
        int64_t s = a->stopped_coord_ns > c->t0
                        ? (int64_t)((a->stopped_coord_ns - c->t0) / ST_NS_PER_S)
                        : 0;
        lo = s < lo ? s : lo;
    }
    if (a->lost && a->lost_at_ns) {
        int64_t s = a->lost_at_ns > c->t0 ? (int64_t)((a->lost_at_ns - c->t0) / ST_NS_PER_S) : 0;
        lo = s < lo ? s : lo;
    }
    int64_t hi = (int64_t)end_k - 1;
    if (a->assigned_until_ns != UINT64_MAX && a->assigned_until_ns > c->t0) {
        int64_t s = (int64_t)((a->assigned_until_ns - 1 - c->t0) / ST_NS_PER_S);
        hi = s < hi ? s : hi;
    } else if (a->assigned_until_ns != UINT64_MAX) {
        return false;
    }
    if (lo > hi) {
        return false;
    }
    *from = (uint32_t)lo;
    *until = (uint32_t)hi;
    return true;
}

/* The union of every agent's short seconds, ascending. */
static int incomplete_locked(st_coord *c, st_report *r)
{
    uint32_t n_max = 0;
    for (size_t i = 0; i < c->n_agents; i++) {
        uint32_t lo, hi;
        if (short_seconds(c, c->agents[i], &lo, &hi) && hi + 1 > n_max) {
            n_max = hi + 1;
        }
    }
    if (n_max == 0) {
        return 0;
    }
    unsigned char *mark = calloc(n_max, 1);
    if (!mark || !(r->incomplete_seconds = malloc(n_max * sizeof(uint32_t)))) {
        free(mark);
        return ST_ENOMEM;
    }
    for (size_t i = 0; i < c->n_agents; i++) {
        uint32_t lo, hi;
        if (short_seconds(c, c->agents[i], &lo, &hi)) {
            memset(mark + lo, 1, hi - lo + 1);
        }
    }
    for (uint32_t k = 0; k < n_max; k++) {
        if (mark[k]) {
            r->incomplete_seconds[r->n_incomplete++] = k;
        }
    }
    free(mark);
    return 0;
}

/* Copies one agent's row; false when out of memory (the strings copied so far are r's). */
static bool copy_agent(const st_coord *c, const st_coord_agent *a, st_report_agent *o)
{
    o->id = a->id;
    o->pid = a->pid;
    o->cores = a->cores;
    o->threads = a->threads;
    o->weight = a->weight;
    o->share_rps = st_share_rps(c, a);
    o->counts = a->totals;
    o->lost = a->lost;
    o->state = agent_state(a->state);
    if (a->lost && o->state != ST_REPORT_AGENT_FAILED) {
        o->state = ST_REPORT_AGENT_LOST;
    }
    o->cpu_vcpus = a->cpu_vcpus;
    o->clock_offset_ms = (double)a->offset_ns / 1e6;
    o->clock_rtt_ms = (double)a->rtt_ns / 1e6;
    o->first_send_coord_ns = a->first_send_coord_ns;
    o->have_p99 = a->has_p99;
    o->p99_second = a->p99_second;
    o->p99_ms = (double)a->p99_us / 1000.0;
    o->p99_uncorrected_ms = (double)a->p99_raw_us / 1000.0;
    return (o->name = strdup(a->name)) && (o->host = strdup(a->host)) &&
           (o->version = strdup(a->version)) && (o->task = strdup(a->task_arn)) &&
           (o->availability_zone = strdup(a->az)) &&
           (o->task_definition = strdup(a->task_definition)) &&
           (o->error = strdup(a->error ? a->error : "")) &&
           (o->lost_reason = strdup(a->lost ? (a->lost_reason ? a->lost_reason : "lost") : ""));
}

/* Everything but the series. Lock held. */
static int copy_locked(st_coord *c, st_report *r)
{
    if (incomplete_locked(c, r)) {
        return ST_ENOMEM;
    }
    int lost = 0;
    for (size_t i = 0; i < c->n_agents; i++) {
        lost += c->agents[i]->lost;
    }
    r->status = run_status(c, lost > 0 || r->n_incomplete > 0);
    if (!(r->run_id = strdup(c->cfg.run_id)) ||
        !(r->error = strdup(r->status == ST_REPORT_FAILED ? c->failure : "")) ||
        !(r->plan.engine = strdup(c->cfg.engine ? c->cfg.engine : "auto"))) {
        return ST_ENOMEM;
    }
    r->plan.closed_loop = c->plan->closed_loop;
    r->plan.duration_s = st_core_total_s(c);
    r->plan.requests = c->plan->closed_loop ? 0 : c->profile.total_n;
    r->plan.average_rps = r->plan.duration_s > 0 ? r->plan.requests / r->plan.duration_s : 0;
    r->plan.expected_agents = c->cfg.expected_agents;
    r->plan.threads_per_agent = c->cfg.plan_threads > 0 ? c->cfg.plan_threads : 0;
    r->plan.timeout_ms = c->plan->timeout_ms > 0 ? (uint32_t)c->plan->timeout_ms : 0;
    r->plan.connections = c->plan->connections;
    r->plan.late_ms = c->plan->late_ms;
    r->plan.send_window_s = c->plan->send_window_s > 0 ? c->plan->send_window_s : 0;
    r->plan.http2 = c->plan->http2 == 1;
    r->plan.streams = c->plan->streams > 0 ? c->plan->streams : 1;
    r->plan.insecure = c->plan->insecure == 1;

    r->duration_s = st_coord_duration_s(c);
    r->target_requests = st_coord_target_requests(c);
    if (st_stats_init(&r->total)) {
        return ST_ENOMEM;
    }
    if (st_stats_merge(&r->total, st_merge_sum(c)) ||
        st_report_names_of(r, &c->merge.names)) {
        return ST_ENOMEM;
    }
    st_report_latency_of(&r->latency, r->total.lat);
    st_report_latency_of(&r->latency_uncorrected, r->total.lat_raw);
    if (st_report_latency_with_timeouts(&r->latency_with_timeouts, r->total.lat,
                                        r->total.c.err_timeout, r->plan.timeout_ms)) {
        return ST_ENOMEM;
    }

    /* The spread of the agents' realised starts, in coordinator time. */
    uint64_t lo = 0, hi = 0;
    int n = 0;
    for (size_t i = 0; i < c->n_agents; i++) {
        uint64_t v = c->agents[i]->first_send_coord_ns;
        if (!v) {
            continue;
        }
        lo = n == 0 || v < lo ? v : lo;
        hi = n == 0 || v > hi ? v : hi;
        n++;
    }
    r->have_start_skew = n > 0;
    r->start_skew_ms = n > 0 ? (double)(hi - lo) / 1e6 : 0;
    for (size_t i = 0; i < c->n_agents; i++) {
        const st_coord_agent *a = c->agents[i];
        if (a->has_clock_error_bound &&
            (!r->have_clock_error_bound || a->clock_error_bound_ms > r->clock_error_bound_ms)) {
            r->have_clock_error_bound = true;
            r->clock_error_bound_ms = a->clock_error_bound_ms;
        }
    }

    if (c->n_agents && !(r->agents = calloc(c->n_agents, sizeof(*r->agents)))) {
        return ST_ENOMEM;
    }
    for (size_t i = 0; i < c->n_agents; i++) {
        /* Counted before the copy, so that st_report_fini frees a half-copied row too. */
        r->n_agents++;
        if (!copy_agent(c, c->agents[i], &r->agents[i])) {
            return ST_ENOMEM;
        }
        r->agents_lost += c->agents[i]->lost;
    }
    if (c->n_rate_changes) {
        if (!(r->rate_changes = malloc(c->n_rate_changes * sizeof(*r->rate_changes)))) {
            return ST_ENOMEM;
        }
        memcpy(r->rate_changes, c->rate_changes, c->n_rate_changes * sizeof(*r->rate_changes));
        r->n_rate_changes = c->n_rate_changes;
    }
    r->late_records = st_merge_late(c);
    r->unmerged_records = st_merge_unstored(c);
    r->duplicate_records = c->duplicates;
    r->malformed_messages = c->malformed;
    return 0;
}

int st_coord_report(st_coord *c, st_report *out)
{
    st_report r;
    memset(&r, 0, sizeof(r));
    pthread_mutex_lock(&c->mu);
    int rc = copy_locked(c, &r);
    pthread_mutex_unlock(&c->mu);
    /* The series is the owner thread's (st_coord_tick appends to it): no lock needed. */
    if (rc == 0 && (rc = st_report_series_rows(c->series, &r.seconds)) == 0) {
        r.n_seconds = st_report_series_count(c->series);
    }
    if (rc) {
        st_report_fini(&r);
        return rc;
    }
    *out = r;
    return 0;
}

cJSON *st_coord_summary(st_coord *c)
{
    st_report r;
    if (st_coord_report(c, &r)) {
        return NULL;
    }
    cJSON *j = st_report_json(&r);
    st_report_fini(&r);
    return j;
}
