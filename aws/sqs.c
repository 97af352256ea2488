#include "sqs.h"
#include "error.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void st_sqs_msgs_free(st_sqs_msg *msgs, size_t n)
{
    for (size_t i = 0; msgs && i < n; i++) {
        free(msgs[i].message_id);
        free(msgs[i].receipt_handle);
        free(msgs[i].body);
    }
    free(msgs);
}

long st_sqs_receive_count(const cJSON *attributes)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(attributes, "ApproximateReceiveCount");
    return cJSON_IsString(n) ? strtol(n->valuestring, NULL, 10) : 0;
}

int st_sqs_receive(st_aws_client *c, const char *queue_url, int max_messages, int wait_s,
                    st_sqs_msg **msgs, size_t *n, st_aws_error *err)
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
    st_sqs_msg *out = count ? calloc(count, sizeof(*out)) : NULL;
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
        if (!cJSON_IsString(id) || !cJSON_IsString(rh)) {
            st_warn("SQS ReceiveMessage: a message without MessageId or ReceiptHandle, ignored");
            continue;
        }
        out[k].message_id = strdup(id->valuestring);
        out[k].receipt_handle = strdup(rh->valuestring);
        out[k].body = strdup(cJSON_IsString(body) ? body->valuestring : "");
        out[k].receive_count =
            st_sqs_receive_count(cJSON_GetObjectItemCaseSensitive(m, "Attributes"));
        k++;
        if (!out[k - 1].message_id || !out[k - 1].receipt_handle || !out[k - 1].body) {
            st_sqs_msgs_free(out, k);
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

int st_sqs_delete(st_aws_client *c, const char *queue_url, const st_sqs_msg *msgs, const int *del,
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

static int add_entry(cJSON *entries, const st_sqs_entry *e)
{
    cJSON *o = cJSON_CreateObject();
    if (!cJSON_AddItemToArray(entries, o)) {
        cJSON_Delete(o);
        return ST_ENOMEM;
    }
    if (!cJSON_AddStringToObject(o, "Id", e->id) ||
        !cJSON_AddStringToObject(o, "MessageBody", e->body) ||
        (e->group_id && !cJSON_AddStringToObject(o, "MessageGroupId", e->group_id)) ||
        (e->dedup_id && !cJSON_AddStringToObject(o, "MessageDeduplicationId", e->dedup_id))) {
        return ST_ENOMEM;
    }
    return 0;
}

static st_sqs_entry *entry_named(st_sqs_entry *e, size_t n, const cJSON *id)
{
    for (size_t i = 0; cJSON_IsString(id) && i < n; i++) {
        if (strcmp(e[i].id, id->valuestring) == 0) {
            return &e[i];
        }
    }
    return NULL;
}

int st_sqs_send_batch(st_aws_client *c, const char *queue_url, st_sqs_entry *e, size_t n,
                      st_aws_error *err)
{
    if (n == 0 || n > 10) {
        return ST_EINVAL;
    }
    int rc = ST_ENOMEM;
    cJSON *reply = NULL;
    cJSON *req = cJSON_CreateObject();
    cJSON *entries = req ? cJSON_AddArrayToObject(req, "Entries") : NULL;
    if (!entries || !cJSON_AddStringToObject(req, "QueueUrl", queue_url)) {
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        e[i].sent = e[i].refused = 0;
        e[i].why[0] = '\0';
        if (add_entry(entries, &e[i]) != 0) {
            goto out;
        }
    }
    rc = st_aws_call(c, ST_AWS_SQS, "SendMessageBatch", req, &reply, err);
    if (rc) {
        goto out;
    }
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(reply, "Successful"))
    {
        st_sqs_entry *x = entry_named(e, n, cJSON_GetObjectItemCaseSensitive(r, "Id"));
        if (x) {
            x->sent = 1;
        }
    }
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(reply, "Failed"))
    {
        st_sqs_entry *x = entry_named(e, n, cJSON_GetObjectItemCaseSensitive(r, "Id"));
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(r, "Code");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(r, "Message");
        if (x) {
            /* A Failed listing wins over a Successful one for the same id. */
            x->sent = 0;
            x->refused = 1;
            snprintf(x->why, sizeof(x->why), "%s: %s",
                     cJSON_IsString(code) ? code->valuestring : "error",
                     cJSON_IsString(msg) ? msg->valuestring : "no message");
        }
    }
out:
    cJSON_Delete(req);
    cJSON_Delete(reply);
    return rc;
}
