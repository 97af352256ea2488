#include "result_msg.h"
#include "error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Numbers travel as JSON numbers (IEEE doubles): integers are exact up to 2^53. */
#define MAX_EXACT 9007199254740992.0

int st_result_name_valid(const char *text, size_t max_len)
{
    if (!text || !*text || *text == '.' || strlen(text) > max_len) {
        return 0;
    }
    for (const char *p = text; *p; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-')) {
            return 0;
        }
    }
    return 1;
}

int st_result_run_id_valid(const char *run_id)
{
    return st_result_name_valid(run_id, ST_RESULT_RUN_ID_MAX);
}

int st_result_id(st_result_kind kind, const char *run_id, uint32_t second, char *out,
                 size_t out_len)
{
    if (!st_result_run_id_valid(run_id) ||
        (kind != ST_RESULT_SECOND && kind != ST_RESULT_SUMMARY)) {
        return ST_EINVAL;
    }
    int n = kind == ST_RESULT_SECOND ? snprintf(out, out_len, "%s.s%06u", run_id, second)
                                     : snprintf(out, out_len, "%s.summary", run_id);
    return n < 0 || (size_t)n >= out_len ? ST_ERANGE : 0;
}

int st_result_sort_key(st_result_kind kind, uint32_t second, char *out, size_t out_len)
{
    int n;
    if (kind == ST_RESULT_SECOND) {
        n = snprintf(out, out_len, "second#%06u", second);
    } else if (kind == ST_RESULT_SUMMARY) {
        n = snprintf(out, out_len, "summary");
    } else {
        return ST_EINVAL;
    }
    return n < 0 || (size_t)n >= out_len ? ST_ERANGE : 0;
}

/* ---- encoding ---- */

typedef struct bucket_ctx {
    cJSON *arr;
    int oom;
} bucket_ctx;

static int add_bucket(void *ctx, uint32_t index, uint64_t count)
{
    bucket_ctx *b = ctx;
    cJSON *pair = cJSON_CreateArray();
    if (!pair || !cJSON_AddItemToArray(b->arr, pair)) {
        cJSON_Delete(pair);
        b->oom = 1;
        return 1;
    }
    cJSON *i = cJSON_CreateNumber((double)index);
    if (!i || !cJSON_AddItemToArray(pair, i)) {
        cJSON_Delete(i);
        b->oom = 1;
        return 1;
    }
    cJSON *c = cJSON_CreateNumber((double)count);
    if (!c || !cJSON_AddItemToArray(pair, c)) {
        cJSON_Delete(c);
        b->oom = 1;
        return 1;
    }
    return 0;
}

cJSON *st_result_hist_to_json(const st_hist *h)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddNumberToObject(o, "count", (double)st_hist_count(h)) ||
        !cJSON_AddNumberToObject(o, "min", (double)st_hist_min(h)) ||
        !cJSON_AddNumberToObject(o, "max", (double)st_hist_max(h)) ||
        !cJSON_AddNumberToObject(o, "sum", (double)st_hist_sum(h))) {
        cJSON_Delete(o);
        return NULL;
    }
    bucket_ctx b = {.arr = cJSON_AddArrayToObject(o, "buckets")};
    if (!b.arr) {
        cJSON_Delete(o);
        return NULL;
    }
    st_hist_foreach(h, add_bucket, &b);
    if (b.oom) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static int finish(cJSON *root, char **json_out, char *id_out, st_result_kind kind,
                  const char *run_id, uint32_t second)
{
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text) {
        return ST_ENOMEM;
    }
    if (strlen(text) > ST_RESULT_MAX_BYTES) {
        free(text);
        return ST_ERANGE;
    }
    int rc = st_result_id(kind, run_id, second, id_out, ST_RESULT_ID_MAX + 1);
    if (rc) {
        free(text);
        return rc;
    }
    *json_out = text;
    return 0;
}

static cJSON *header(st_result_kind kind, const char *run_id)
{
    cJSON *root = cJSON_CreateObject();
    if (!root || !cJSON_AddStringToObject(root, "schema", ST_RESULT_SCHEMA) ||
        !cJSON_AddStringToObject(root, "kind", kind == ST_RESULT_SECOND ? "second" : "summary") ||
        !cJSON_AddStringToObject(root, "run_id", run_id)) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

int st_result_encode_second(const char *run_id, const st_stats *stats, double target_rps,
                            double achieved_rps, uint32_t agents, char **json_out, char *id_out)
{
    if (!st_result_run_id_valid(run_id) || !stats || !stats->lat || !stats->lat_raw ||
        !isfinite(target_rps) || !isfinite(achieved_rps) || target_rps < 0 || achieved_rps < 0) {
        return ST_EINVAL;
    }
    cJSON *root = header(ST_RESULT_SECOND, run_id);
    if (!root) {
        return ST_ENOMEM;
    }
    cJSON *counts, *lat, *raw;
    if (!cJSON_AddNumberToObject(root, "second", (double)stats->second) ||
        !cJSON_AddNumberToObject(root, "agents", (double)agents) ||
        !cJSON_AddNumberToObject(root, "target_rps", target_rps) ||
        !cJSON_AddNumberToObject(root, "achieved_rps", achieved_rps) ||
        !(counts = cJSON_AddObjectToObject(root, "counts"))) {
        goto oom;
    }
    for (size_t i = 0; i < ST_COUNTS_N_FIELDS; i++) {
        uint64_t v = *(const uint64_t *)((const char *)&stats->c + st_counts_fields[i].offset);
        if (!cJSON_AddNumberToObject(counts, st_counts_fields[i].name, (double)v)) {
            goto oom;
        }
    }
    if (!(lat = st_result_hist_to_json(stats->lat))) {
        goto oom;
    }
    cJSON_AddItemToObject(root, "latency_us", lat);
    if (!(raw = st_result_hist_to_json(stats->lat_raw))) {
        goto oom;
    }
    cJSON_AddItemToObject(root, "latency_uncorrected_us", raw);
    return finish(root, json_out, id_out, ST_RESULT_SECOND, run_id, stats->second);
oom:
    cJSON_Delete(root);
    return ST_ENOMEM;
}

int st_result_encode_summary(const char *run_id, const cJSON *summary, char **json_out,
                             char *id_out)
{
    if (!st_result_run_id_valid(run_id) || !cJSON_IsObject(summary)) {
        return ST_EINVAL;
    }
    cJSON *root = header(ST_RESULT_SUMMARY, run_id);
    cJSON *copy = root ? cJSON_Duplicate(summary, 1) : NULL;
    if (!copy) {
        cJSON_Delete(root);
        return ST_ENOMEM;
    }
    cJSON_AddItemToObject(root, "summary", copy);
    return finish(root, json_out, id_out, ST_RESULT_SUMMARY, run_id, 0);
}

/* ---- decoding ---- */

static int get_uint(const cJSON *obj, const char *name, const char *path, uint64_t max,
                    uint64_t *out, char *err, size_t err_len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v) {
        return st_errf(err, err_len, ST_EINVAL, "%s.%s: missing", path, name);
    }
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d < 0 || d != floor(d) || d > MAX_EXACT || d > (double)max) {
        return st_errf(err, err_len, ST_EINVAL, "%s.%s: must be an integer from 0 to %llu", path,
                       name,
                       (unsigned long long)(max < (uint64_t)MAX_EXACT ? max : (uint64_t)MAX_EXACT));
    }
    *out = (uint64_t)d;
    return 0;
}

static int get_rate(const cJSON *obj, const char *name, double *out, char *err, size_t err_len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v) {
        return st_errf(err, err_len, ST_EINVAL, "$.%s: missing", name);
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0) {
        return st_errf(err, err_len, ST_EINVAL, "$.%s: must be a non-negative number", name);
    }
    *out = v->valuedouble;
    return 0;
}

int st_result_hist_from_json(const cJSON *j, const char *path, st_hist *h, char *err,
                             size_t err_len)
{
    if (!cJSON_IsObject(j)) {
        return st_errf(err, err_len, ST_EINVAL, "%s: must be an object", path);
    }
    uint64_t count, min, max, sum;
    int rc;
    if ((rc = get_uint(j, "count", path, UINT64_MAX, &count, err, err_len)) ||
        (rc = get_uint(j, "min", path, ST_HIST_MAX_US, &min, err, err_len)) ||
        (rc = get_uint(j, "max", path, ST_HIST_MAX_US, &max, err, err_len)) ||
        (rc = get_uint(j, "sum", path, UINT64_MAX, &sum, err, err_len))) {
        return rc;
    }
    const cJSON *buckets = cJSON_GetObjectItemCaseSensitive(j, "buckets");
    if (!cJSON_IsArray(buckets)) {
        return st_errf(err, err_len, ST_EINVAL,
                       "%s.buckets: must be an array of [index, count] pairs", path);
    }
    uint64_t total = 0;
    long long prev = -1;
    int i = 0;
    const cJSON *pair;
    cJSON_ArrayForEach(pair, buckets)
    {
        const cJSON *ix = cJSON_GetArrayItem(pair, 0);
        const cJSON *cn = cJSON_GetArrayItem(pair, 1);
        if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2 || !cJSON_IsNumber(ix) ||
            !cJSON_IsNumber(cn)) {
            return st_errf(err, err_len, ST_EINVAL, "%s.buckets[%d]: must be a pair [index, count]",
                           path, i);
        }
        double di = ix->valuedouble, dc = cn->valuedouble;
        if (di < 0 || di != floor(di) || di >= (double)st_hist_bucket_count()) {
            return st_errf(err, err_len, ST_EINVAL,
                           "%s.buckets[%d][0]: bucket index must be an integer from 0 "
                           "to %u",
                           path, i, st_hist_bucket_count() - 1);
        }
        if (dc < 1 || dc != floor(dc) || dc > MAX_EXACT) {
            return st_errf(err, err_len, ST_EINVAL,
                           "%s.buckets[%d][1]: count must be a positive integer", path, i);
        }
        if ((long long)di <= prev) {
            return st_errf(err, err_len, ST_EINVAL, "%s.buckets[%d]: bucket indexes must increase",
                           path, i);
        }
        prev = (long long)di;
        total += (uint64_t)dc;
        st_hist_add_bucket(h, (uint32_t)di, (uint64_t)dc);
        i++;
    }
    if (total != count) {
        return st_errf(err, err_len, ST_EINVAL, "%s.count: %llu, but the buckets hold %llu", path,
                       (unsigned long long)count, (unsigned long long)total);
    }
    if (count > 0 && (min > max || st_hist_set_stats(h, min, max, sum) != 0)) {
        return st_errf(err, err_len, ST_EINVAL,
                       "%s: min and max do not fall in the first and last buckets", path);
    }
    return 0;
}

void st_result_msg_fini(st_result_msg *m)
{
    if (!m) {
        return;
    }
    st_stats_fini(&m->stats);
    cJSON_Delete(m->summary);
    memset(m, 0, sizeof(*m));
}

static int decode_second(const cJSON *root, st_result_msg *m, char *err, size_t err_len)
{
    uint64_t v;
    int rc;
    if ((rc = get_uint(root, "second", "$", UINT32_MAX, &v, err, err_len))) {
        return rc;
    }
    m->second = (uint32_t)v;
    if ((rc = get_uint(root, "agents", "$", UINT32_MAX, &v, err, err_len))) {
        return rc;
    }
    m->agents = (uint32_t)v;
    if ((rc = get_rate(root, "target_rps", &m->target_rps, err, err_len)) ||
        (rc = get_rate(root, "achieved_rps", &m->achieved_rps, err, err_len))) {
        return rc;
    }
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(root, "counts");
    if (!cJSON_IsObject(counts)) {
        return st_errf(err, err_len, ST_EINVAL, "$.counts: %s",
                       counts ? "must be an object" : "missing");
    }
    if (st_stats_init(&m->stats) != 0) {
        return ST_ENOMEM;
    }
    m->stats.second = m->second;
    for (size_t i = 0; i < ST_COUNTS_N_FIELDS; i++) {
        uint64_t *dst = (uint64_t *)((char *)&m->stats.c + st_counts_fields[i].offset);
        if (st_counts_fields[i].optional &&
            !cJSON_GetObjectItemCaseSensitive(counts, st_counts_fields[i].name)) {
            *dst = 0;
            continue;
        }
        if ((rc = get_uint(counts, st_counts_fields[i].name, "$.counts", UINT64_MAX, dst, err,
                           err_len))) {
            return rc;
        }
    }
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(root, "latency_us");
    if (!lat) {
        return st_errf(err, err_len, ST_EINVAL, "$.latency_us: missing");
    }
    if ((rc = st_result_hist_from_json(lat, "$.latency_us", m->stats.lat, err, err_len))) {
        return rc;
    }
    const cJSON *raw = cJSON_GetObjectItemCaseSensitive(root, "latency_uncorrected_us");
    if (!raw) {
        return st_errf(err, err_len, ST_EINVAL, "$.latency_uncorrected_us: missing");
    }
    return st_result_hist_from_json(raw, "$.latency_uncorrected_us", m->stats.lat_raw, err,
                                    err_len);
}

int st_result_decode_json(const cJSON *root, st_result_msg *out, char *err, size_t err_len)
{
    st_result_msg m;
    memset(&m, 0, sizeof(m));
    int rc;
    if (!cJSON_IsObject(root)) {
        return st_errf(err, err_len, ST_EINVAL, "$: must be a JSON object");
    }
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(root, "schema");
    if (!cJSON_IsString(schema)) {
        return st_errf(err, err_len, ST_EINVAL, "$.schema: %s",
                       schema ? "must be a string" : "missing");
    }
    if (strcmp(schema->valuestring, ST_RESULT_SCHEMA) != 0) {
        return st_errf(err, err_len, ST_EINVAL,
                       "$.schema: \"%.64s\" is not supported (this program reads %s)",
                       schema->valuestring, ST_RESULT_SCHEMA);
    }
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(root, "kind");
    if (!cJSON_IsString(kind)) {
        return st_errf(err, err_len, ST_EINVAL, "$.kind: %s",
                       kind ? "must be a string" : "missing");
    }
    if (strcmp(kind->valuestring, "second") == 0) {
        m.kind = ST_RESULT_SECOND;
    } else if (strcmp(kind->valuestring, "summary") == 0) {
        m.kind = ST_RESULT_SUMMARY;
    } else {
        return st_errf(err, err_len, ST_EINVAL, "$.kind: must be \"second\" or \"summary\"");
    }
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(root, "run_id");
    if (!cJSON_IsString(run) || !st_result_run_id_valid(run->valuestring)) {
        return st_errf(
            err, err_len, ST_EINVAL, "$.run_id: %s",
            !run ? "missing"
                 : "must be 1 to 64 characters of A-Z a-z 0-9 . _ - not starting with '.'");
    }
    snprintf(m.run_id, sizeof(m.run_id), "%s", run->valuestring);
    if (m.kind == ST_RESULT_SECOND) {
        rc = decode_second(root, &m, err, err_len);
    } else {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "summary");
        if (!cJSON_IsObject(s)) {
            rc = st_errf(err, err_len, ST_EINVAL, "$.summary: %s",
                         s ? "must be an object" : "missing");
        } else {
            m.summary = cJSON_Duplicate(s, 1);
            rc = m.summary ? 0 : ST_ENOMEM;
        }
    }
    if (rc) {
        st_result_msg_fini(&m);
        return rc;
    }
    *out = m;
    return 0;
}

int st_result_decode(const char *text, size_t len, st_result_msg *out, char *err, size_t err_len)
{
    if (!text) {
        return st_errf(err, err_len, ST_EINVAL, "$: empty message");
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        return st_errf(err, err_len, ST_EINVAL, "$: not valid JSON (near byte %zu)", at);
    }
    int rc = st_result_decode_json(root, out, err, err_len);
    cJSON_Delete(root);
    return rc;
}
