#include "result_item.h"
#include "ddb_json.h"
#include "error.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static int add_num(cJSON *o, const char *name, double v)
{
    return cJSON_AddNumberToObject(o, name, v) ? 0 : ST_ENOMEM;
}

/* A version-2 second's by_name: a list of maps in the message's form. */
static int add_by_name(cJSON *plain, const st_result_msg *m)
{
    if (m->n_names == 0) {
        return cJSON_AddArrayToObject(plain, "by_name") ? 0 : ST_ENOMEM;
    }
    char *text = NULL;
    char id[ST_RESULT_ID_MAX + 1];
    int rc = st_result_encode_second_by_name(m->run_id, &m->stats, (const char *const *)m->names,
                                             m->n_names, m->target_rps,
                                             m->achieved_rps, m->agents, &text, id);
    if (rc) {
        return rc;
    }
    cJSON *msg = cJSON_Parse(text);
    free(text);
    cJSON *by = msg ? cJSON_DetachItemFromObjectCaseSensitive(msg, "by_name") : NULL;
    cJSON_Delete(msg);
    if (!by) {
        return ST_ENOMEM;
    }
    cJSON_AddItemToObject(plain, "by_name", by);
    return 0;
}

int st_result_item_build(const st_result_msg *m, int64_t ttl_epoch_s, cJSON **item)
{
    char sk[32];
    if (!m || st_result_sort_key(m->kind, m->second, sk, sizeof(sk)) != 0 ||
        !st_result_run_id_valid(m->run_id)) {
        return ST_EINVAL;
    }
    int rc = ST_ENOMEM;
    cJSON *plain = cJSON_CreateObject();
    cJSON *msg = NULL;
    if (!plain || !cJSON_AddStringToObject(plain, "testId", m->run_id) ||
        !cJSON_AddStringToObject(plain, "sk", sk) ||
        !cJSON_AddStringToObject(plain, "schema",
                                 m->schema == 2 ? ST_RESULT_SCHEMA_V2 : ST_RESULT_SCHEMA) ||
        !cJSON_AddStringToObject(plain, "kind",
                                 m->kind == ST_RESULT_SECOND ? "second" : "summary") ||
        add_num(plain, "ttl", (double)ttl_epoch_s)) {
        goto out;
    }
    if (m->kind == ST_RESULT_SUMMARY) {
        if (!m->summary) {
            rc = ST_EINVAL;
            goto out;
        }
        cJSON *copy = cJSON_Duplicate(m->summary, 1);
        if (!copy) {
            goto out;
        }
        cJSON_AddItemToObject(plain, "summary", copy);
    } else {
        const st_stats *s = &m->stats;
        if (!s->lat || !s->lat_raw) {
            rc = ST_EINVAL;
            goto out;
        }
        uint64_t done = st_counts_done(&s->c);
        uint64_t failed = st_counts_failed(&s->c);
        if (add_num(plain, "second", m->second) || add_num(plain, "agents", m->agents) ||
            add_num(plain, "target_rps", m->target_rps) ||
            add_num(plain, "achieved_rps", m->achieved_rps)) {
            goto out;
        }
        for (size_t i = 0; i < ST_COUNTS_N_FIELDS; i++) {
            uint64_t v = *(const uint64_t *)((const char *)&s->c + st_counts_fields[i].offset);
            if (add_num(plain, st_counts_fields[i].name, (double)v)) {
                goto out;
            }
        }
        if (add_num(plain, "failed", (double)failed) ||
            add_num(plain, "error_rate", done ? (double)failed / (double)done : 0.0) ||
            add_num(plain, "min_us", (double)st_hist_min(s->lat)) ||
            add_num(plain, "mean_us", round(st_hist_mean(s->lat) * 10.0) / 10.0) ||
            add_num(plain, "p50_us", (double)st_hist_percentile(s->lat, 50)) ||
            add_num(plain, "p90_us", (double)st_hist_percentile(s->lat, 90)) ||
            add_num(plain, "p95_us", (double)st_hist_percentile(s->lat, 95)) ||
            add_num(plain, "p99_us", (double)st_hist_percentile(s->lat, 99)) ||
            add_num(plain, "p999_us", (double)st_hist_percentile(s->lat, 99.9)) ||
            add_num(plain, "max_us", (double)st_hist_max(s->lat))) {
            goto out;
        }
        cJSON *h = st_result_hist_to_json(s->lat);
        if (!h) {
            goto out;
        }
        cJSON_AddItemToObject(plain, "latency_us", h);
        if (!(h = st_result_hist_to_json(s->lat_raw))) {
            goto out;
        }
        cJSON_AddItemToObject(plain, "latency_uncorrected_us", h);
        if (m->schema == 2 && (rc = add_by_name(plain, m))) {
            goto out;
        }
        rc = ST_ENOMEM;
    }
    rc = st_ddb_item_from_json(plain, item);
out:
    cJSON_Delete(msg);
    cJSON_Delete(plain);
    return rc;
}

static int copy_member(const cJSON *from, cJSON *to, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(from, name);
    if (!v) {
        return 0;
    }
    cJSON *d = cJSON_Duplicate(v, 1);
    if (!d) {
        return ST_ENOMEM;
    }
    cJSON_AddItemToObject(to, name, d);
    return 0;
}

int st_result_item_parse(const cJSON *item, st_result_msg *out, int64_t *ttl, char *err,
                         size_t err_len)
{
    cJSON *plain = NULL;
    int rc = st_ddb_item_to_json(item, &plain, err, err_len);
    if (rc) {
        return rc;
    }
    cJSON *msg = cJSON_CreateObject();
    cJSON *counts = NULL;
    const cJSON *test_id = cJSON_GetObjectItemCaseSensitive(plain, "testId");
    const cJSON *sk = cJSON_GetObjectItemCaseSensitive(plain, "sk");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(plain, "ttl");
    if (!msg) {
        rc = ST_ENOMEM;
        goto out;
    }
    if (!cJSON_IsString(test_id) || !cJSON_IsString(sk)) {
        snprintf(err, err_len, "item: testId and sk must be strings");
        rc = ST_EINVAL;
        goto out;
    }
    if (!cJSON_AddStringToObject(msg, "run_id", test_id->valuestring) ||
        (rc = copy_member(plain, msg, "schema")) || (rc = copy_member(plain, msg, "kind")) ||
        (rc = copy_member(plain, msg, "second")) || (rc = copy_member(plain, msg, "agents")) ||
        (rc = copy_member(plain, msg, "target_rps")) ||
        (rc = copy_member(plain, msg, "achieved_rps")) ||
        (rc = copy_member(plain, msg, "latency_us")) ||
        (rc = copy_member(plain, msg, "latency_uncorrected_us")) ||
        (rc = copy_member(plain, msg, "by_name")) ||
        (rc = copy_member(plain, msg, "summary")) ||
        !(counts = cJSON_AddObjectToObject(msg, "counts"))) {
        rc = rc ? rc : ST_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < ST_COUNTS_N_FIELDS; i++) {
        if ((rc = copy_member(plain, counts, st_counts_fields[i].name))) {
            goto out;
        }
    }
    st_result_msg m;
    char why[512];
    rc = st_result_decode_json(msg, &m, why, sizeof(why));
    if (rc) {
        /* The message's paths map onto the item's attributes: "$.counts.sent" is "sent". */
        const char *p = why;
        if (strncmp(p, "$.counts.", 9) == 0) {
            p += 9;
        } else if (strncmp(p, "$.", 2) == 0) {
            p += 2;
        }
        snprintf(err, err_len, "item %s/%s: %s", test_id->valuestring, sk->valuestring, p);
        goto out;
    }
    char want[32];
    st_result_sort_key(m.kind, m.second, want, sizeof(want));
    if (strcmp(want, sk->valuestring) != 0) {
        snprintf(err, err_len, "item %s/%s: sk does not match its kind and second (%s)",
                 test_id->valuestring, sk->valuestring, want);
        st_result_msg_fini(&m);
        rc = ST_EINVAL;
        goto out;
    }
    if (ttl) {
        *ttl = cJSON_IsNumber(t) ? (int64_t)t->valuedouble : 0;
    }
    *out = m;
out:
    cJSON_Delete(msg);
    cJSON_Delete(plain);
    return rc;
}
