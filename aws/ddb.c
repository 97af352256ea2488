#include "ddb.h"
#include "error.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_ITEMS 25

/* "testId\nsk" of an item, to match UnprocessedItems back to the items sent. */
static int item_key(const cJSON *item, char *out, size_t len)
{
    const cJSON *t =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(item, "testId"), "S");
    const cJSON *s =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(item, "sk"), "S");
    if (!cJSON_IsString(t) || !cJSON_IsString(s)) {
        return ST_EINVAL;
    }
    int n = snprintf(out, len, "%s\n%s", t->valuestring, s->valuestring);
    return n < 0 || (size_t)n >= len ? ST_ERANGE : 0;
}

static void sleep_ms(st_ddb_writer *w, uint32_t ms)
{
    const st_aws_sys *sys = w->sys ? w->sys : &st_aws_sys_real;
    while (ms > 0 && !(w->cancel && atomic_load(w->cancel))) {
        uint32_t step = ms > 50 ? 50 : ms;
        sys->sleep_ms(sys->ctx, step);
        ms -= step;
    }
}

/* One chunk of at most 25 items: idx[] are indexes into items. */
static int write_chunk(st_ddb_writer *w, cJSON *const *items, const size_t *idx, size_t k,
                       int *written, st_aws_error *err)
{
    int pending[BATCH_ITEMS];
    char keys[BATCH_ITEMS][256];
    for (size_t j = 0; j < k; j++) {
        pending[j] = 1;
        if (item_key(items[idx[j]], keys[j], sizeof(keys[j])) != 0) {
            snprintf(err->message, sizeof(err->message), "an item has no string testId and sk");
            return err->code = ST_EINVAL;
        }
    }
    const st_aws_sys *sys = w->sys ? w->sys : &st_aws_sys_real;
    int rc = 0;
    for (int round = 0; round < w->rounds; round++) {
        if (round > 0) {
            uint32_t delay = st_aws_backoff_ms(&w->backoff, round - 1, sys->random(sys->ctx));
            sleep_ms(w, delay);
            if (w->cancel && atomic_load(w->cancel)) {
                break;
            }
        }
        cJSON *req = cJSON_CreateObject();
        cJSON *ri = req ? cJSON_AddObjectToObject(req, "RequestItems") : NULL;
        cJSON *list = ri ? cJSON_AddArrayToObject(ri, w->table) : NULL;
        if (!list) {
            cJSON_Delete(req);
            return ST_ENOMEM;
        }
        size_t sent = 0;
        for (size_t j = 0; j < k; j++) {
            if (!pending[j]) {
                continue;
            }
            cJSON *wr = cJSON_CreateObject();
            cJSON *put = wr ? cJSON_AddObjectToObject(wr, "PutRequest") : NULL;
            cJSON *copy = put ? cJSON_Duplicate(items[idx[j]], 1) : NULL;
            if (!copy || !cJSON_AddItemToArray(list, wr)) {
                cJSON_Delete(copy);
                cJSON_Delete(wr);
                cJSON_Delete(req);
                return ST_ENOMEM;
            }
            cJSON_AddItemToObject(put, "Item", copy);
            sent++;
        }
        if (sent == 0) {
            break;
        }
        cJSON *reply = NULL;
        rc = st_aws_call(w->client, ST_AWS_DYNAMODB, "BatchWriteItem", req, &reply, err);
        cJSON_Delete(req);
        if (rc) {
            return rc;
        }
        /* Everything sent is written unless DynamoDB hands it back. */
        int back[BATCH_ITEMS] = {0};
        size_t n_back = 0;
        const cJSON *un = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(reply, "UnprocessedItems"), w->table);
        const cJSON *e;
        cJSON_ArrayForEach(e, un)
        {
            char key[256];
            const cJSON *it = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(e, "PutRequest"), "Item");
            if (item_key(it, key, sizeof(key)) != 0) {
                continue;
            }
            for (size_t j = 0; j < k; j++) {
                if (pending[j] && !back[j] && strcmp(keys[j], key) == 0) {
                    back[j] = 1;
                    n_back++;
                }
            }
        }
        cJSON_Delete(reply);
        for (size_t j = 0; j < k; j++) {
            if (pending[j] && !back[j]) {
                pending[j] = 0;
                written[idx[j]] = 1;
            }
        }
        if (n_back == 0) {
            return 0;
        }
        st_debug("DynamoDB BatchWriteItem left %zu item(s) unprocessed; retrying", n_back);
    }
    size_t left = 0;
    for (size_t j = 0; j < k; j++) {
        left += (size_t)pending[j];
    }
    snprintf(err->message, sizeof(err->message),
             "DynamoDB BatchWriteItem: %zu item(s) still unprocessed after %d attempts", left,
             w->rounds);
    err->code = ST_EAGAIN;
    return ST_EAGAIN;
}

int st_ddb_write(st_ddb_writer *w, cJSON *const *items, size_t n, int *written,
                      st_aws_error *err)
{
    st_aws_error local;
    if (!err) {
        err = &local;
    }
    memset(err, 0, sizeof(*err));
    for (size_t i = 0; i < n; i++) {
        written[i] = 0;
    }
    int first_rc = 0;
    size_t idx[BATCH_ITEMS];
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        for (; i < n && k < BATCH_ITEMS; i++) {
            idx[k++] = i;
        }
        st_aws_error e;
        memset(&e, 0, sizeof(e));
        int rc = write_chunk(w, items, idx, k, written, &e);
        if (rc && !first_rc) {
            first_rc = rc;
            *err = e;
        }
        if (rc == ST_EAUTH || rc == ST_ENOTFOUND || rc == ST_ENOMEM) {
            break;
        }
    }
    return first_rc;
}

int st_ddb_query(st_aws_client *c, const char *table, const char *key, const char *value,
                 st_ddb_item_fn fn, void *ctx, st_aws_error *err)
{
    char cond[160];
    int n = snprintf(cond, sizeof(cond), "%s = :v", key);
    if (n < 0 || (size_t)n >= sizeof(cond)) {
        return ST_EINVAL;
    }
    cJSON *start = NULL;
    int rc = 0;
    do {
        cJSON *req = cJSON_CreateObject();
        cJSON *vals = req ? cJSON_AddObjectToObject(req, "ExpressionAttributeValues") : NULL;
        cJSON *v = vals ? cJSON_AddObjectToObject(vals, ":v") : NULL;
        if (!v || !cJSON_AddStringToObject(v, "S", value) ||
            !cJSON_AddStringToObject(req, "TableName", table) ||
            !cJSON_AddStringToObject(req, "KeyConditionExpression", cond) ||
            !cJSON_AddTrueToObject(req, "ConsistentRead")) {
            cJSON_Delete(req);
            cJSON_Delete(start);
            return ST_ENOMEM;
        }
        if (start) {
            cJSON_AddItemToObject(req, "ExclusiveStartKey", start);
            start = NULL;
        }
        cJSON *reply = NULL;
        rc = st_aws_call(c, ST_AWS_DYNAMODB, "Query", req, &reply, err);
        cJSON_Delete(req);
        if (rc) {
            return rc;
        }
        const cJSON *item;
        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(reply, "Items"))
        {
            if ((rc = fn(ctx, item)) != 0) {
                break;
            }
        }
        cJSON *last = cJSON_DetachItemFromObjectCaseSensitive(reply, "LastEvaluatedKey");
        if (cJSON_IsObject(last) && last->child) {
            start = last;
        } else {
            cJSON_Delete(last);
        }
        cJSON_Delete(reply);
    } while (start && rc == 0);
    cJSON_Delete(start);
    return rc;
}
