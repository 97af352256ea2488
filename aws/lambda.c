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

void st_lambda_init_error(const char *api, const char *type, const char *message)
{
    char url[1024];
    snprintf(url, sizeof(url), "http://%s/2018-06-01/runtime/init/error", api);
    if (post_error(url, type, message) != 0) {
        st_warn("could not report the initialisation error to the Lambda runtime API");
    }
}

/* Runs the handler on one event and answers the runtime API. */
static int invoke(const char *base, const char *request_id, const char *event,
                  st_lambda_handler fn, void *ctx)
{
    char url[1200];
    st_lambda_reply reply = {0};
    int rc = fn(ctx, request_id, event ? event : "", &reply);
    if (rc == ST_EINVAL) {
        snprintf(url, sizeof(url), "%s/invocation/%s/error", base, request_id);
        return post_error(url, reply.error_type[0] ? reply.error_type : "Runtime.InvalidEvent",
                          reply.error_message);
    }
    if (rc) {
        cJSON_Delete(reply.response);
        return rc;
    }
    if (!reply.response) {
        return ST_ENOMEM;
    }
    snprintf(url, sizeof(url), "%s/invocation/%s/response", base, request_id);
    rc = post_json(url, reply.response, NULL);
    cJSON_Delete(reply.response);
    return rc;
}

int st_lambda_run(const char *api, st_lambda_handler fn, void *ctx, const atomic_int *stop)
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
        rc = invoke(base, resp.header_value, resp.body, fn, ctx);
        st_fetch_resp_fini(&resp);
        if (rc) {
            st_error("answering the Lambda runtime API failed: %s", st_strerror(rc));
            return rc;
        }
    }
    return 0;
}
