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

static cJSON *header(st_result_kind kind, const char *run_id, int schema)
{
    cJSON *root = cJSON_CreateObject();
    if (!root ||
        !cJSON_AddStringToObject(root, "schema", schema == 2 ? ST_RESULT_SCHEMA_V2 : ST_RESULT_SCHEMA) ||
        !cJSON_AddStringToObject(root, "kind", kind == ST_RESULT_SECOND ? "second" : "summary") ||
        !cJSON_AddStringToObject(root, "run_id", run_id)) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* "counts", "latency_us" and "latency_uncorrected_us" of c, lat and lat_raw into o. */
static int add_measure(cJSON *o, const st_counts *c, const st_hist *lat, const st_hist *lat_raw)
{
    cJSON *counts = cJSON_AddObjectToObject(o, "counts");
    if (!counts) {
        return ST_ENOMEM;
    }
    for (size_t i = 0; i < ST_COUNTS_N_FIELDS; i++) {
        uint64_t v = *(const uint64_t *)((const char *)c + st_counts_fields[i].offset);
        if (!cJSON_AddNumberToObject(counts, st_counts_fields[i].name, (double)v)) {
            return ST_ENOMEM;
        }
    }
    cJSON *h = st_result_hist_to_json(lat);
    if (!h) {
        return ST_ENOMEM;
    }
    cJSON_AddItemToObject(o, "latency_us", h);
    if (!(h = st_result_hist_to_json(lat_raw))) {
        return ST_ENOMEM;
    }
    cJSON_AddItemToObject(o, "latency_uncorrected_us", h);
    return 0;
}

static bool part_empty(const st_name_stats *p)
{
    static const st_counts zero;
    return memcmp(&p->c, &zero, sizeof(zero)) == 0 && st_hist_count(p->lat) == 0;
}

/* The by_name array of a version-2 second. */
static int add_by_name(cJSON *root, const st_stats *s, const char *const *names)
{
    cJSON *arr = cJSON_AddArrayToObject(root, "by_name");
    if (!arr) {
        return ST_ENOMEM;
    }
    for (size_t i = 0; i < s->n_names; i++) {
        if (part_empty(&s->names[i])) {
            continue;
        }
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            return ST_ENOMEM;
        }
        if (!cJSON_AddStringToObject(o, "name", names[i])) {
            return ST_ENOMEM;
        }
        int rc = add_measure(o, &s->names[i].c, s->names[i].lat, s->names[i].lat_raw);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

int st_result_encode_second_by_name(const char *run_id, const st_stats *stats,
                                    const char *const *names, size_t n_names, double target_rps,
                                    double achieved_rps, uint32_t agents, char **json_out,
                                    char *id_out)
{
    if (!st_result_run_id_valid(run_id) || !stats || !stats->lat || !stats->lat_raw ||
        !isfinite(target_rps) || !isfinite(achieved_rps) || target_rps < 0 || achieved_rps < 0 ||
        stats->n_names > n_names || (n_names > 0 && !names)) {
        return ST_EINVAL;
    }
    for (size_t i = 0; i < n_names; i++) {
        if (!names[i] || !names[i][0] || strlen(names[i]) > ST_RESULT_NAME_MAX) {
            return ST_EINVAL;
        }
    }
    cJSON *root = header(ST_RESULT_SECOND, run_id, n_names > 0 ? 2 : 1);
    if (!root) {
        return ST_ENOMEM;
    }
    if (!cJSON_AddNumberToObject(root, "second", (double)stats->second) ||
        !cJSON_AddNumberToObject(root, "agents", (double)agents) ||
        !cJSON_AddNumberToObject(root, "target_rps", target_rps) ||
        !cJSON_AddNumberToObject(root, "achieved_rps", achieved_rps) ||
        add_measure(root, &stats->c, stats->lat, stats->lat_raw) ||
        (n_names > 0 && add_by_name(root, stats, names))) {
        cJSON_Delete(root);
        return ST_ENOMEM;
    }
    return finish(root, json_out, id_out, ST_RESULT_SECOND, run_id, stats->second);
}

int st_result_encode_second(const char *run_id, const st_stats *stats, double target_rps,
                            double achieved_rps, uint32_t agents, char **json_out, char *id_out)
{
    return st_result_encode_second_by_name(run_id, stats, NULL, 0, target_rps, achieved_rps,
                                           agents, json_out, id_out);
}

int st_result_encode_summary(const char *run_id, const cJSON *summary, char **json_out,
                             char *id_out)
{
    if (!st_result_run_id_valid(run_id) || !cJSON_IsObject(summary)) {
        return ST_EINVAL;
    }
    bool v2 = cJSON_GetObjectItemCaseSensitive(summary, "requests_by_name") != NULL;
    cJSON *root = header(ST_RESULT_SUMMARY, run_id, v2 ? 2 : 1);
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
    for (size_t i = 0; i < m->n_names; i++) {
        free(m->names[i]);
    }
    free(m->names);
    st_stats_fini(&m->stats);
    cJSON_Delete(m->summary);
    memset(m, 0, sizeof(*m));
}

/* The counts object at path into c (err_local and the other optional members read as 0 when
 * absent). */
static int get_counts(const cJSON *counts, const char *path, st_counts *c, char *err,
                      size_t err_len)
{
    if (!cJSON_IsObject(counts)) {
        return st_errf(err, err_len, ST_EINVAL, "%s: %s", path,
                       counts ? "must be an object" : "missing");
    }
    for (size_t i = 0; i < ST_COUNTS_N_FIELDS; i++) {
        uint64_t *dst = (uint64_t *)((char *)c + st_counts_fields[i].offset);
        if (st_counts_fields[i].optional &&
            !cJSON_GetObjectItemCaseSensitive(counts, st_counts_fields[i].name)) {
            *dst = 0;
            continue;
        }
        int rc = get_uint(counts, st_counts_fields[i].name, path, UINT64_MAX, dst, err, err_len);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

/* A histogram member `name` of obj (at path) into h. */
static int get_hist(const cJSON *obj, const char *path, const char *name, st_hist *h, char *err,
                    size_t err_len)
{
    char at[160];
    snprintf(at, sizeof(at), "%s.%s", path, name);
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!j) {
        return st_errf(err, err_len, ST_EINVAL, "%s: missing", at);
    }
    return st_result_hist_from_json(j, at, h, err, err_len);
}

/* The by_name array of a version-2 second: names unique, parts adding up to the whole (every
 * count but inflight, which is 0 in a part, and the histograms' sample counts and sums). */
static int decode_by_name(const cJSON *root, st_result_msg *m, char *err, size_t err_len)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "by_name");
    if (!cJSON_IsArray(arr)) {
        return st_errf(err, err_len, ST_EINVAL, "$.by_name: %s",
                       arr ? "must be an array" : "missing (schema " ST_RESULT_SCHEMA_V2 ")");
    }
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (n > ST_STATS_MAX_NAMES) {
        return st_errf(err, err_len, ST_EINVAL, "$.by_name: more than %d names",
                       ST_STATS_MAX_NAMES);
    }
    if (n == 0) {
        return 0;
    }
    if (st_stats_names(&m->stats, n) || !(m->names = calloc(n, sizeof(*m->names)))) {
        return ST_ENOMEM;
    }
    st_counts sum = {0}, whole = m->stats.c;
    whole.inflight = 0;
    /* The running sums never pass the whole's (each at most 2^53): they cannot wrap. */
    uint64_t samples[2] = {0, 0}, sums[2] = {0, 0};
    const uint64_t limit[4] = {st_hist_count(m->stats.lat), st_hist_count(m->stats.lat_raw),
                               st_hist_sum(m->stats.lat), st_hist_sum(m->stats.lat_raw)};
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        char path[64];
        snprintf(path, sizeof(path), "$.by_name[%zu]", i);
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
        if (!cJSON_IsString(name) || !name->valuestring[0] ||
            strlen(name->valuestring) > ST_RESULT_NAME_MAX) {
            return st_errf(err, err_len, ST_EINVAL, "%s.name: %s", path,
                           !name ? "missing" : "must be a string of 1 to 1024 bytes");
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(m->names[j], name->valuestring) == 0) {
                return st_errf(err, err_len, ST_EINVAL, "%s.name: \"%.64s\" is listed twice", path,
                               name->valuestring);
            }
        }
        if (!(m->names[i] = strdup(name->valuestring))) {
            return ST_ENOMEM;
        }
        m->n_names = i + 1;
        st_name_stats *p = &m->stats.names[i];
        char cpath[80];
        snprintf(cpath, sizeof(cpath), "%s.counts", path);
        int rc;
        if ((rc = get_counts(cJSON_GetObjectItemCaseSensitive(it, "counts"), cpath, &p->c, err,
                             err_len)) ||
            (rc = get_hist(it, path, "latency_us", p->lat, err, err_len)) ||
            (rc = get_hist(it, path, "latency_uncorrected_us", p->lat_raw, err, err_len))) {
            return rc;
        }
        if (p->c.inflight != 0) {
            return st_errf(err, err_len, ST_EINVAL, "%s.inflight: must be 0 in a part", cpath);
        }
        st_counts_add(&sum, &p->c);
        samples[0] += st_hist_count(p->lat);
        samples[1] += st_hist_count(p->lat_raw);
        sums[0] += st_hist_sum(p->lat);
        sums[1] += st_hist_sum(p->lat_raw);
        bool last = ++i == n;
        for (size_t f = 0; f < ST_COUNTS_N_FIELDS; f++) {
            size_t at = st_counts_fields[f].offset;
            uint64_t w = *(const uint64_t *)((const char *)&whole + at);
            uint64_t s = *(const uint64_t *)((const char *)&sum + at);
            if (s > w || (last && s != w)) {
                return st_errf(err, err_len, ST_EINVAL,
                               "$.by_name: the parts' %s add up to %s%llu, the second's is %llu",
                               st_counts_fields[f].name, last ? "" : "at least ",
                               (unsigned long long)s, (unsigned long long)w);
            }
        }
        const uint64_t got[4] = {samples[0], samples[1], sums[0], sums[1]};
        for (int k = 0; k < 4; k++) {
            if (got[k] > limit[k] || (last && got[k] != limit[k])) {
                return st_errf(err, err_len, ST_EINVAL,
                               "$.by_name: the parts' latency samples do not add up to the "
                               "second's");
            }
        }
    }
    return 0;
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
    if ((rc = get_counts(counts, "$.counts", &m->stats.c, err, err_len)) ||
        (rc = get_hist(root, "$", "latency_us", m->stats.lat, err, err_len)) ||
        (rc = get_hist(root, "$", "latency_uncorrected_us", m->stats.lat_raw, err, err_len))) {
        return rc;
    }
    if (m->schema == 2) {
        return decode_by_name(root, m, err, err_len);
    }
    if (cJSON_GetObjectItemCaseSensitive(root, "by_name")) {
        return st_errf(err, err_len, ST_EINVAL, "$.by_name: needs schema %s", ST_RESULT_SCHEMA_V2);
    }
    return 0;
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
    if (strcmp(schema->valuestring, ST_RESULT_SCHEMA) == 0) {
        m.schema = 1;
    } else if (strcmp(schema->valuestring, ST_RESULT_SCHEMA_V2) == 0) {
        m.schema = 2;
    } else {
        return st_errf(err, err_len, ST_EINVAL,
                       "$.schema: \"%.64s\" is not supported (this program reads %s and %s)",
                       schema->valuestring, ST_RESULT_SCHEMA, ST_RESULT_SCHEMA_V2);
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
