#include "sqs.h"
#include "error.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void st_sink_msgs_free(st_sink_msg *msgs, size_t n)
{
    for (size_t i = 0; msgs && i < n; i++) {
        free(msgs[i].message_id);
        free(msgs[i].receipt_handle);
        free(msgs[i].body);
    }
    free(msgs);
}

int st_sink_receive(st_aws_client *c, const char *queue_url, int max_messages, int wait_s,
                    st_sink_msg **msgs, size_t *n, st_aws_error *err)
{
    cJSON *req = cJSON_CreateObject();
    cJSON *names = req ? cJSON_AddArrayToObject(req, "AttributeNames") : NULL;
    if (!names || !cJSON_AddItemToArray(names, cJSON_CreateString("All")) ||
        !cJSON_AddStringToObject(req, "QueueUrl", queue_url) ||
        !cJSON_AddNumberToObject(req, "MaxNumberOfMessages", max_messages) ||
        !cJSON_AddNumberToObject(req, "WaitTimeSeconds", wait_s)) {
        cJSON_Delete(req);
        return ST_ENOMEM;
    }
    cJSON *reply = NULL;
    int rc = st_aws_call(c, ST_AWS_SQS, "ReceiveMessage", req, &reply, err);
    cJSON_Delete(req);
    if (rc) {
        return rc;
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(reply, "Messages");
    size_t count = (size_t)cJSON_GetArraySize(list);
    st_sink_msg *out = count ? calloc(count, sizeof(*out)) : NULL;
    size_t k = 0;
    if (count && !out) {
        cJSON_Delete(reply);
        return ST_ENOMEM;
    }
    const cJSON *m;
    cJSON_ArrayForEach(m, list)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "MessageId");
        const cJSON *rh = cJSON_GetObjectItemCaseSensitive(m, "ReceiptHandle");
        const cJSON *body = cJSON_GetObjectItemCaseSensitive(m, "Body");
        const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(m, "Attributes");
        const cJSON *rc_attr = cJSON_GetObjectItemCaseSensitive(attrs, "ApproximateReceiveCount");
        if (!cJSON_IsString(id) || !cJSON_IsString(rh)) {
            st_warn("SQS ReceiveMessage: a message without MessageId or ReceiptHandle, ignored");
            continue;
        }
        out[k].message_id = strdup(id->valuestring);
        out[k].receipt_handle = strdup(rh->valuestring);
        out[k].body = strdup(cJSON_IsString(body) ? body->valuestring : "");
        out[k].receive_count = cJSON_IsString(rc_attr) ? strtol(rc_attr->valuestring, NULL, 10) : 0;
        k++;
        if (!out[k - 1].message_id || !out[k - 1].receipt_handle || !out[k - 1].body) {
            st_sink_msgs_free(out, k);
            cJSON_Delete(reply);
            return ST_ENOMEM;
        }
    }
    cJSON_Delete(reply);
    if (k == 0) {
        free(out);
        out = NULL;
    }
    *msgs = out;
    *n = k;
    return 0;
}

int st_sink_delete(st_aws_client *c, const char *queue_url, const st_sink_msg *msgs, const int *del,
                   size_t n, st_aws_error *err)
{
    size_t i = 0;
    while (i < n) {
        cJSON *req = cJSON_CreateObject();
        cJSON *entries = req ? cJSON_AddArrayToObject(req, "Entries") : NULL;
        if (!entries || !cJSON_AddStringToObject(req, "QueueUrl", queue_url)) {
            cJSON_Delete(req);
            return ST_ENOMEM;
        }
        int k = 0;
        for (; i < n && k < 10; i++) {
            if (!del[i]) {
                continue;
            }
            char eid[32];
            snprintf(eid, sizeof(eid), "m%zu", i);
            cJSON *e = cJSON_CreateObject();
            if (!cJSON_AddItemToArray(entries, e)) {
                cJSON_Delete(e);
                cJSON_Delete(req);
                return ST_ENOMEM;
            }
            if (!cJSON_AddStringToObject(e, "Id", eid) ||
                !cJSON_AddStringToObject(e, "ReceiptHandle", msgs[i].receipt_handle)) {
                cJSON_Delete(req);
                return ST_ENOMEM;
            }
            k++;
        }
        if (k == 0) {
            cJSON_Delete(req);
            break;
        }
        cJSON *reply = NULL;
        int rc = st_aws_call(c, ST_AWS_SQS, "DeleteMessageBatch", req, &reply, err);
        cJSON_Delete(req);
        if (rc) {
            return rc;
        }
        const cJSON *f;
        cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(reply, "Failed"))
        {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(f, "Id");
            const cJSON *code = cJSON_GetObjectItemCaseSensitive(f, "Code");
            size_t idx = cJSON_IsString(id) ? strtoul(id->valuestring + 1, NULL, 10) : n;
            st_warn("SQS DeleteMessageBatch refused message %s: %s; it will be written again "
                    "when it comes back",
                    idx < n ? msgs[idx].message_id : "?",
                    cJSON_IsString(code) ? code->valuestring : "error");
        }
        cJSON_Delete(reply);
    }
    return 0;
}
