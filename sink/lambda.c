#include "lambda.h"
#include "error.h"
#include "fetch.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int post_json(const char *url, cJSON *body, const char *error_type)
{
    char *text = cJSON_PrintUnformatted(body);
    if (!text) {
        return ST_ENOMEM;
    }
    char type_hdr[128];
    snprintf(type_hdr, sizeof(type_hdr), "Lambda-Runtime-Function-Error-Type: %s",
             error_type ? error_type : "");
    const char *headers[] = {"Content-Type: application/json", error_type ? type_hdr : NULL, NULL};
    st_fetch_req req = {.method = "POST",
                        .url = url,
                        .headers = headers,
                        .body = text,
                        .body_len = strlen(text),
                        .timeout_ms = 10000,
                        .connect_timeout_ms = 2000};
    st_fetch_resp resp;
    int rc = st_fetch(&req, &resp);
    free(text);
    if (rc) {
        return rc;
    }
    if (resp.status != 202 && resp.status != 200) {
        st_error("the Lambda runtime API answered HTTP %ld to %s", resp.status, url);
        rc = ST_EPROTO;
    }
    st_fetch_resp_fini(&resp);
    return rc;
}

static int post_error(const char *url, const char *type, const char *message)
{
    cJSON *e = cJSON_CreateObject();
    if (!e || !cJSON_AddStringToObject(e, "errorMessage", message) ||
        !cJSON_AddStringToObject(e, "errorType", type)) {
        cJSON_Delete(e);
        return ST_ENOMEM;
    }
    int rc = post_json(url, e, type);
    cJSON_Delete(e);
    return rc;
}

void st_sink_lambda_init_error(const char *api, const char *message)
{
    char url[1024];
    snprintf(url, sizeof(url), "http://%s/2018-06-01/runtime/init/error", api);
    if (post_error(url, "Sink.ConfigurationError", message) != 0) {
        st_warn("could not report the initialisation error to the Lambda runtime API");
    }
}

/* Handles one event; answers the runtime API. */
static int handle(const char *base, const char *request_id, const char *event, st_sink_store *store)
{
    char url[1200];
    cJSON *ev = cJSON_Parse(event);
    const cJSON *records = cJSON_GetObjectItemCaseSensitive(ev, "Records");
    if (!cJSON_IsArray(records)) {
        cJSON_Delete(ev);
        snprintf(url, sizeof(url), "%s/invocation/%s/error", base, request_id);
        st_error("invocation %s: the event is not an SQS event (no Records array)", request_id);
        return post_error(url, "Sink.InvalidEvent", "the event is not an SQS event");
    }
    size_t n = (size_t)cJSON_GetArraySize(records);
    st_sink_record *recs = calloc(n ? n : 1, sizeof(*recs));
    cJSON *answer = cJSON_CreateObject();
    cJSON *failures = answer ? cJSON_AddArrayToObject(answer, "batchItemFailures") : NULL;
    int rc = 0;
    if (!recs || !failures) {
        rc = ST_ENOMEM;
        goto out;
    }
    size_t i = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, records)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(r, "messageId");
        const cJSON *body = cJSON_GetObjectItemCaseSensitive(r, "body");
        const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(r, "attributes");
        const cJSON *count = cJSON_GetObjectItemCaseSensitive(attrs, "ApproximateReceiveCount");
        recs[i].message_id = cJSON_IsString(id) ? id->valuestring : NULL;
        recs[i].body = cJSON_IsString(body) ? body->valuestring : "";
        recs[i].receive_count = cJSON_IsString(count) ? strtol(count->valuestring, NULL, 10) : 0;
        i++;
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
            snprintf(url, sizeof(url), "%s/invocation/%s/error", base, request_id);
            rc = post_error(url, "Sink.InvalidEvent", "a record has no messageId");
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
    snprintf(url, sizeof(url), "%s/invocation/%s/response", base, request_id);
    rc = post_json(url, answer, NULL);
out:
    free(recs);
    cJSON_Delete(answer);
    cJSON_Delete(ev);
    return rc;
}

int st_sink_lambda_run(const char *api, st_sink_store *store, const atomic_int *stop)
{
    char base[1024];
    char next[1100];
    snprintf(base, sizeof(base), "http://%s/2018-06-01/runtime", api);
    snprintf(next, sizeof(next), "%s/invocation/next", base);
    while (!atomic_load(stop)) {
        st_fetch_req req = {.method = "GET",
                            .url = next,
                            .timeout_ms = 0,
                            .connect_timeout_ms = 2000,
                            .capture_header = "Lambda-Runtime-Aws-Request-Id",
                            .cancel = stop};
        st_fetch_resp resp;
        int rc = st_fetch(&req, &resp);
        if (rc == ST_ECLOSED) {
            return 0;
        }
        if (rc) {
            st_error("the Lambda runtime API at %s: %s", api, st_strerror(rc));
            return rc;
        }
        if (resp.status != 200 || !resp.header_value || !*resp.header_value ||
            strpbrk(resp.header_value, "/?#% ")) {
            st_error("the Lambda runtime API answered HTTP %ld without a usable request id",
                     resp.status);
            st_fetch_resp_fini(&resp);
            return ST_EPROTO;
        }
        rc = handle(base, resp.header_value, resp.body, store);
        st_fetch_resp_fini(&resp);
        if (rc) {
            st_error("answering the Lambda runtime API failed: %s", st_strerror(rc));
            return rc;
        }
    }
    return 0;
}
