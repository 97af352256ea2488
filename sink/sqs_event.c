#include "sqs_event.h"
#include "error.h"
#include "log.h"
#include "sqs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int refuse(st_lambda_reply *reply, const char *why)
{
    snprintf(reply->error_type, sizeof(reply->error_type), "Sink.InvalidEvent");
    snprintf(reply->error_message, sizeof(reply->error_message), "%s", why);
    return ST_EINVAL;
}

int st_sink_event_parse(const char *event, cJSON **doc, st_sink_record **recs, size_t *n)
{
    cJSON *ev = cJSON_Parse(event);
    const cJSON *records = cJSON_GetObjectItemCaseSensitive(ev, "Records");
    if (!cJSON_IsArray(records)) {
        cJSON_Delete(ev);
        return ST_EINVAL;
    }
    size_t count = (size_t)cJSON_GetArraySize(records);
    st_sink_record *out = calloc(count ? count : 1, sizeof(*out));
    if (!out) {
        cJSON_Delete(ev);
        return ST_ENOMEM;
    }
    size_t i = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, records)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(r, "messageId");
        const cJSON *body = cJSON_GetObjectItemCaseSensitive(r, "body");
        out[i].message_id = cJSON_IsString(id) ? id->valuestring : NULL;
        out[i].body = cJSON_IsString(body) ? body->valuestring : "";
        out[i].receive_count =
            st_sqs_receive_count(cJSON_GetObjectItemCaseSensitive(r, "attributes"));
        i++;
    }
    *doc = ev;
    *recs = out;
    *n = count;
    return 0;
}

int st_sink_lambda_handle(void *ctx, const char *request_id, const char *event,
                          st_lambda_reply *reply)
{
    st_sink_store *store = ctx;
    cJSON *ev = NULL;
    st_sink_record *recs = NULL;
    size_t n = 0, i;
    int rc = st_sink_event_parse(event, &ev, &recs, &n);
    if (rc == ST_EINVAL) {
        st_error("invocation %s: the event is not an SQS event (no Records array)", request_id);
        return refuse(reply, "the event is not an SQS event");
    }
    if (rc) {
        return rc;
    }
    cJSON *answer = cJSON_CreateObject();
    cJSON *failures = answer ? cJSON_AddArrayToObject(answer, "batchItemFailures") : NULL;
    if (!failures) {
        rc = ST_ENOMEM;
        goto out;
    }
    st_aws_error err;
    int src = st_sink_store_records(store, recs, n, &err);
    if (src) {
        st_error("invocation %s: %s", request_id, err.message[0] ? err.message : st_strerror(src));
    }
    size_t n_failed = 0;
    for (i = 0; i < n; i++) {
        if (recs[i].outcome == ST_SINK_WRITTEN) {
            continue;
        }
        if (!recs[i].message_id) {
            /* Without a messageId a record cannot be reported: fail the whole batch instead. */
            rc = refuse(reply, "a record has no messageId");
            goto out;
        }
        cJSON *f = cJSON_CreateObject();
        if (!cJSON_AddItemToArray(failures, f)) {
            cJSON_Delete(f);
            rc = ST_ENOMEM;
            goto out;
        }
        if (!cJSON_AddStringToObject(f, "itemIdentifier", recs[i].message_id)) {
            rc = ST_ENOMEM;
            goto out;
        }
        n_failed++;
    }
    st_info("invocation %s: %zu record(s), %zu written, %zu reported as failures", request_id, n,
            n - n_failed, n_failed);
    reply->response = answer;
    answer = NULL;
out:
    free(recs);
    cJSON_Delete(answer);
    cJSON_Delete(ev);
    return rc;
}

