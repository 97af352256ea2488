#include "aws.h"
#include "fetch.h"
#include "error.h"
#include "log.h"

#include <curl/curl.h>
#include <ctype.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct service_info {
    const char *name;         /* for messages */
    const char *signing_name; /* SigV4 service */
    const char *endpoint_var; /* the AWS CLI's service-specific endpoint variable */
    const char *host_prefix;  /* https://<prefix>.<region>.amazonaws.com */
    const char *target_prefix;
    const char *content_type;
} service_info;

static const service_info services[ST_AWS_N_SERVICES] = {
    [ST_AWS_SQS] = {"SQS", "sqs", "AWS_ENDPOINT_URL_SQS", "sqs", "AmazonSQS",
                    "application/x-amz-json-1.0"},
    [ST_AWS_DYNAMODB] = {"DynamoDB", "dynamodb", "AWS_ENDPOINT_URL_DYNAMODB", "dynamodb",
                         "DynamoDB_20120810", "application/x-amz-json-1.0"},
    [ST_AWS_ECS] = {"ECS", "ecs", "AWS_ENDPOINT_URL_ECS", "ecs",
                    "AmazonEC2ContainerServiceV20141113", "application/x-amz-json-1.1"},
};

struct st_aws_client {
    st_aws_sys sys;
    st_aws_retry retry;
    char *region;
    char *endpoint[ST_AWS_N_SERVICES];
    uint32_t connect_timeout_ms;
    uint32_t timeout_ms;
    st_aws_creds_provider *creds;
    CURL *curl;
    const atomic_int *cancel;
    st_fetch_buf body;
    char err_type[128];  /* x-amzn-ErrorType */
    char query_err[128]; /* x-amzn-query-error (SQS) */
    char curl_err[CURL_ERROR_SIZE];
};

const char *st_aws_service_name(st_aws_service svc)
{
    return (unsigned)svc < ST_AWS_N_SERVICES ? services[svc].name : "AWS";
}

void st_aws_config_init(st_aws_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->retry.max_attempts = 5;
    cfg->retry.base_delay_ms = 50;
    cfg->retry.max_delay_ms = 5000;
    cfg->connect_timeout_ms = 3000;
    cfg->timeout_ms = 30000;
}

int st_aws_config_flag(st_aws_config *cfg, int opt, const char *arg, st_aws_service svc)
{
    switch (opt) {
    case ST_AWS_FLAG_ENDPOINT_URL:
        if ((unsigned)svc < ST_AWS_N_SERVICES) {
            cfg->service_endpoint_url[svc] = arg;
        } else {
            cfg->endpoint_url = arg;
        }
        return 1;
    case ST_AWS_FLAG_REGION:
        cfg->region = arg;
        return 1;
    default:
        return 0;
    }
}

int st_aws_getopt(int argc, char **argv, const struct option *opts, st_aws_config *cfg,
                  st_aws_service svc)
{
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1 &&
           st_aws_config_flag(cfg, c, optarg, svc)) {
    }
    return c;
}

static void set_msg(st_aws_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_msg(st_aws_error *err, const char *fmt, ...)
{
    if (!err) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    st_verrf(err->message, sizeof(err->message), 0, fmt, ap);
    va_end(ap);
}

uint32_t st_aws_backoff_ms(const st_aws_retry *r, int retry, uint64_t random)
{
    uint64_t cap = r->base_delay_ms;
    for (int i = 0; i < retry && cap < r->max_delay_ms; i++) {
        cap *= 2;
    }
    if (cap > r->max_delay_ms) {
        cap = r->max_delay_ms;
    }
    uint64_t half = cap / 2;
    return (uint32_t)(half + random % (cap - half + 1));
}

static int code_in(const char *code, const char *const *list)
{
    for (; *list; list++) {
        if (strcmp(code, *list) == 0) {
            return 1;
        }
    }
    return 0;
}

int st_aws_classify(long http_status, const char *aws_code, int *retryable)
{
    static const char *const throttling[] = {"Throttling",
                                             "ThrottlingException",
                                             "ThrottledException",
                                             "RequestThrottledException",
                                             "TooManyRequestsException",
                                             "ProvisionedThroughputExceededException",
                                             "TransactionInProgressException",
                                             "RequestLimitExceeded",
                                             "BandwidthLimitExceeded",
                                             "LimitExceededException",
                                             "RequestThrottled",
                                             "SlowDown",
                                             "PriorRequestNotComplete",
                                             "EC2ThrottledException",
                                             "ThrottlingError",
                                             NULL};
    static const char *const transient[] = {"RequestTimeout",
                                            "RequestTimeoutException",
                                            "InternalError",
                                            "InternalFailure",
                                            "InternalServerError",
                                            "ServiceUnavailable",
                                            "ServiceUnavailableException",
                                            "ServerException",
                                            NULL};
    static const char *const auth[] = {"UnrecognizedClientException",
                                       "InvalidClientTokenId",
                                       "InvalidSignatureException",
                                       "SignatureDoesNotMatch",
                                       "ExpiredToken",
                                       "ExpiredTokenException",
                                       "AccessDenied",
                                       "AccessDeniedException",
                                       "MissingAuthenticationToken",
                                       "MissingAuthenticationTokenException",
                                       "IncompleteSignature",
                                       "IncompleteSignatureException",
                                       "InvalidAccessKeyId",
                                       "AuthFailure",
                                       "RequestExpired",
                                       "InvalidSecurity",
                                       "InvalidToken",
                                       NULL};
    static const char *const notfound[] = {"ResourceNotFoundException",
                                           "QueueDoesNotExist",
                                           "AWS.SimpleQueueService.NonExistentQueue",
                                           "NonExistentQueue",
                                           "ClusterNotFoundException",
                                           "TableNotFoundException",
                                           NULL};
    static const char *const invalid[] = {"ValidationException",
                                          "InvalidParameterValue",
                                          "InvalidParameterException",
                                          "ClientException",
                                          "InvalidParameterCombination",
                                          "MissingParameter",
                                          "SerializationException",
                                          "InvalidAttributeValue",
                                          "InvalidAttributeName",
                                          "InvalidMessageContents",
                                          "BatchEntryIdsNotDistinct",
                                          "TooManyEntriesInBatchRequest",
                                          "BatchRequestTooLong",
                                          "EmptyBatchRequest",
                                          "InvalidBatchEntryId",
                                          "InvalidAddress",
                                          "UnsupportedOperation",
                                          "UnknownOperationException",
                                          "InvalidAction",
                                          "MalformedQueryString",
                                          NULL};
    const char *code = aws_code ? aws_code : "";
    *retryable = 0;
    if (*code && code_in(code, throttling)) {
        *retryable = 1;
        return ST_EAGAIN;
    }
    if (*code && code_in(code, transient)) {
        *retryable = 1;
        return ST_EREMOTE;
    }
    if (*code && code_in(code, auth)) {
        return ST_EAUTH;
    }
    if (*code && code_in(code, notfound)) {
        return ST_ENOTFOUND;
    }
    if (*code && code_in(code, invalid)) {
        return ST_EINVAL;
    }
    if (http_status == 429) {
        *retryable = 1;
        return ST_EAGAIN;
    }
    if (http_status >= 500) {
        *retryable = 1;
        return ST_EREMOTE;
    }
    if (http_status == 401 || http_status == 403) {
        return ST_EAUTH;
    }
    if (http_status == 404) {
        return ST_ENOTFOUND;
    }
    return ST_EREMOTE;
}

static int is_http_url(const char *u)
{
    return u && (strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0) &&
           u[strcspn(u, "/") + 2] != '\0';
}

/* scheme://authority of url, without path. */
static int url_origin(const char *url, char *out, size_t out_len)
{
    const char *host = strstr(url, "://");
    if (!host) {
        return ST_EINVAL;
    }
    host += 3;
    size_t n = (size_t)(host - url) + strcspn(host, "/?#");
    if (n + 1 > out_len) {
        return ST_ERANGE;
    }
    memcpy(out, url, n);
    out[n] = '\0';
    return 0;
}

int st_aws_resolve_endpoint(const st_aws_config *cfg, st_aws_service svc, const char *region,
                            char *out, size_t out_len, const char **why)
{
    const st_aws_sys *s = cfg->sys ? cfg->sys : &st_aws_sys_real;
    const char *endpoint_url = cfg->endpoint_url;
    const char *sqs_queue_url = cfg->sqs_queue_url;
    const char *chosen = NULL;
    const char *from = NULL;
    const char *v;
    if (cfg->service_endpoint_url[svc] && *cfg->service_endpoint_url[svc]) {
        chosen = cfg->service_endpoint_url[svc];
        from = "--endpoint-url";
    } else if (endpoint_url && *endpoint_url) {
        chosen = endpoint_url;
        from = "--endpoint-url";
    } else if ((v = s->getenv(s->ctx, services[svc].endpoint_var)) && *v) {
        chosen = v;
        from = services[svc].endpoint_var;
    } else if ((v = s->getenv(s->ctx, "AWS_ENDPOINT_URL")) && *v) {
        chosen = v;
        from = "AWS_ENDPOINT_URL";
    }
    if (chosen) {
        if (!is_http_url(chosen)) {
            if (why) {
                *why = from;
            }
            return ST_EINVAL;
        }
        size_t n = strlen(chosen);
        while (n > 0 && chosen[n - 1] == '/') {
            n--;
        }
        if (n + 1 > out_len) {
            return ST_ERANGE;
        }
        memcpy(out, chosen, n);
        out[n] = '\0';
        return 0;
    }
    if (svc == ST_AWS_SQS && sqs_queue_url && *sqs_queue_url) {
        if (!is_http_url(sqs_queue_url)) {
            if (why) {
                *why = "the SQS queue URL";
            }
            return ST_EINVAL;
        }
        return url_origin(sqs_queue_url, out, out_len);
    }
    int n = snprintf(out, out_len, "https://%s.%s.amazonaws.com%s", services[svc].host_prefix,
                     region, strncmp(region, "cn-", 3) == 0 ? ".cn" : "");
    return n < 0 || (size_t)n >= out_len ? ST_ERANGE : 0;
}

/* "https://sqs.eu-west-1.amazonaws.com/123/q" -> "eu-west-1". */
static int region_from_queue_url(const char *url, char *out, size_t out_len)
{
    const char *h = url ? strstr(url, "://sqs.") : NULL;
    if (!h) {
        return ST_ENOTFOUND;
    }
    h += 7;
    size_t n = strcspn(h, ".");
    if (n == 0 || n >= out_len || strncmp(h + n, ".amazonaws.com", 14) != 0) {
        return ST_ENOTFOUND;
    }
    memcpy(out, h, n);
    out[n] = '\0';
    return 0;
}

static int valid_region(const char *r)
{
    if (!*r || strlen(r) > 64) {
        return 0;
    }
    for (const char *p = r; *p; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-') {
            return 0;
        }
    }
    return 1;
}

void st_aws_client_free(st_aws_client *c)
{
    if (!c) {
        return;
    }
    st_aws_creds_provider_free(c->creds);
    if (c->curl) {
        curl_easy_cleanup(c->curl);
    }
    for (int i = 0; i < ST_AWS_N_SERVICES; i++) {
        free(c->endpoint[i]);
    }
    free(c->region);
    free(c->body.data);
    free(c);
}

int st_aws_client_new(st_aws_client **out, const st_aws_config *cfg, st_aws_error *err)
{
    if (err) {
        memset(err, 0, sizeof(*err));
    }
    int rc = 0;
    st_aws_client *c = calloc(1, sizeof(*c));
    if (!c) {
        return ST_ENOMEM;
    }
    c->sys = cfg->sys ? *cfg->sys : st_aws_sys_real;
    c->retry = cfg->retry;
    if (c->retry.max_attempts < 1) {
        c->retry.max_attempts = 1;
    }
    c->connect_timeout_ms = cfg->connect_timeout_ms;
    c->timeout_ms = cfg->timeout_ms;

    char region[80] = "";
    const char *r = cfg->region;
    if (!r || !*r) {
        r = c->sys.getenv(c->sys.ctx, "AWS_REGION");
    }
    if (!r || !*r) {
        r = c->sys.getenv(c->sys.ctx, "AWS_DEFAULT_REGION");
    }
    if (r && *r) {
        snprintf(region, sizeof(region), "%s", r);
    } else if (region_from_queue_url(cfg->sqs_queue_url, region, sizeof(region)) != 0) {
        set_msg(err, "no AWS region: pass --region or set AWS_REGION");
        rc = ST_EINVAL;
        goto out;
    }
    if (!valid_region(region)) {
        set_msg(err, "the AWS region \"%.64s\" is not a region name such as eu-west-1", region);
        rc = ST_EINVAL;
        goto out;
    }
    if (!(c->region = strdup(region))) {
        rc = ST_ENOMEM;
        goto out;
    }
    for (int i = 0; i < ST_AWS_N_SERVICES; i++) {
        char ep[1024];
        const char *why = NULL;
        rc = st_aws_resolve_endpoint(cfg, (st_aws_service)i, c->region, ep, sizeof(ep), &why);
        if (rc) {
            set_msg(err, "%s is not an http:// or https:// URL", why ? why : "an endpoint");
            rc = ST_EINVAL;
            goto out;
        }
        if (!(c->endpoint[i] = strdup(ep))) {
            rc = ST_ENOMEM;
            goto out;
        }
    }
    if ((rc = st_aws_creds_provider_new(&c->creds, &c->sys)) != 0) {
        goto out;
    }
    if (!(c->curl = curl_easy_init())) {
        rc = ST_ENOMEM;
        goto out;
    }
out:
    if (rc) {
        if (err) {
            err->code = rc;
        }
        st_aws_client_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

const char *st_aws_client_region(const st_aws_client *c)
{
    return c->region;
}

const char *st_aws_client_endpoint(const st_aws_client *c, st_aws_service svc)
{
    return (unsigned)svc < ST_AWS_N_SERVICES ? c->endpoint[svc] : NULL;
}

void st_aws_client_set_cancel(st_aws_client *c, const atomic_int *cancel)
{
    c->cancel = cancel;
}

static int cancelled(const st_aws_client *c)
{
    return c->cancel && atomic_load(c->cancel) != 0;
}

static void keep_header(const char *line, size_t n, const char *name, char *dst, size_t dst_len)
{
    const char *v;
    size_t len;
    if (st_fetch_header_value(line, n, name, &v, &len)) {
        snprintf(dst, dst_len, "%.*s", (int)len, v);
    }
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *userdata)
{
    st_aws_client *c = userdata;
    size_t n = size * nmemb;
    keep_header(line, n, "x-amzn-ErrorType", c->err_type, sizeof(c->err_type));
    keep_header(line, n, "x-amzn-query-error", c->query_err, sizeof(c->query_err));
    return n;
}

/* "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException" -> "ResourceNotFoundException";
 * "ValidationException:http://internal.amazon.com/..." -> "ValidationException". */
static void clean_code(const char *raw, char *out, size_t out_len)
{
    const char *hash = strrchr(raw, '#');
    const char *s = hash ? hash + 1 : raw;
    size_t n = strcspn(s, ":;");
    snprintf(out, out_len, "%.*s", (int)n, s);
}

static int transport_code(CURLcode cc, int *retryable)
{
    *retryable = 1;
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return ST_ECONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return ST_ETIMEDOUT;
    case CURLE_ABORTED_BY_CALLBACK:
        *retryable = 0;
        return ST_ECLOSED;
    case CURLE_OUT_OF_MEMORY:
        *retryable = 0;
        return ST_ENOMEM;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        *retryable = 0;
        return ST_EINVAL;
    default:
        return ST_EIO;
    }
}

/* One HTTP exchange. Returns 0 with the HTTP status in *status, or a transport error code. */
static int perform(st_aws_client *c, st_aws_service svc, const char *operation, const char *body,
                   size_t body_len, const st_aws_creds *cr, long *status, int *retryable)
{
    const service_info *si = &services[svc];
    char target[160], ctype[80], sigv4[160], url[1100];
    char *token_hdr = NULL;
    struct curl_slist *hdrs = NULL, *n;
    int rc = 0;

    snprintf(target, sizeof(target), "X-Amz-Target: %s.%s", si->target_prefix, operation);
    snprintf(ctype, sizeof(ctype), "Content-Type: %s", si->content_type);
    snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:%s", c->region, si->signing_name);
    snprintf(url, sizeof(url), "%s/", c->endpoint[svc]);
    if (!(n = curl_slist_append(hdrs, ctype)) || !(hdrs = n, n = curl_slist_append(hdrs, target))) {
        rc = ST_ENOMEM;
        goto out;
    }
    hdrs = n;
    /* libcurl 7.88 signs an empty header line but does not send it: add the token only when
     * there is one. */
    if (cr->session_token && *cr->session_token) {
        size_t len = strlen(cr->session_token) + 32;
        if (!(token_hdr = malloc(len))) {
            rc = ST_ENOMEM;
            goto out;
        }
        snprintf(token_hdr, len, "X-Amz-Security-Token: %s", cr->session_token);
        if (!(n = curl_slist_append(hdrs, token_hdr))) {
            rc = ST_ENOMEM;
            goto out;
        }
        hdrs = n;
    }

    CURL *h = c->curl;
    curl_easy_reset(h);
    c->body.len = 0;
    c->body.oom = 0;
    if (c->body.data) {
        c->body.data[0] = '\0';
    }
    c->err_type[0] = '\0';
    c->query_err[0] = '\0';
    c->curl_err[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->curl_err);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4);
    curl_easy_setopt(h, CURLOPT_USERNAME, cr->access_key_id);
    curl_easy_setopt(h, CURLOPT_PASSWORD, cr->secret_access_key);
    /* 7.88 hashes a body given through a read callback as empty: hand it over whole. */
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)body_len);
    curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, st_fetch_buf_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &c->body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
    st_fetch_watch_cancel(h, c->cancel);
    CURLcode cc = curl_easy_perform(h);
    /* The handle keeps copies of the secrets: replace them now that the request has left. */
    curl_easy_setopt(h, CURLOPT_PASSWORD, "");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    if (c->body.oom) {
        rc = ST_ENOMEM;
        *retryable = 0;
        goto out;
    }
    if (cc != CURLE_OK) {
        rc = transport_code(cc, retryable);
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
out:
    curl_slist_free_all(hdrs);
    if (token_hdr) {
        memset(token_hdr, 0, strlen(token_hdr));
        free(token_hdr);
    }
    return rc;
}

/* Turns a non-2xx answer into err; returns the ST code. */
static int answer_error(st_aws_client *c, st_aws_service svc, const char *operation, long status,
                        int *retryable, st_aws_error *err)
{
    char code[128] = "";
    char text[512] = "";
    cJSON *j = c->body.len ? cJSON_ParseWithLength(c->body.data, c->body.len) : NULL;
    if (cJSON_IsObject(j)) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "__type");
        if (!cJSON_IsString(t)) {
            t = cJSON_GetObjectItemCaseSensitive(j, "code");
        }
        if (cJSON_IsString(t)) {
            clean_code(t->valuestring, code, sizeof(code));
        }
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
        if (!cJSON_IsString(m)) {
            m = cJSON_GetObjectItemCaseSensitive(j, "Message");
        }
        if (cJSON_IsString(m)) {
            snprintf(text, sizeof(text), "%s", m->valuestring);
        }
    }
    cJSON_Delete(j);
    if (!code[0] && c->query_err[0]) {
        clean_code(c->query_err, code, sizeof(code));
    }
    if (!code[0] && c->err_type[0]) {
        clean_code(c->err_type, code, sizeof(code));
    }
    /* Messages must stay printable on one line. */
    for (char *p = text; *p; p++) {
        if ((unsigned char)*p < 0x20) {
            *p = ' ';
        }
    }
    int rc = st_aws_classify(status, code, retryable);
    if (err) {
        snprintf(err->aws_code, sizeof(err->aws_code), "%s", code);
        err->http_status = status;
        set_msg(err, "%s %s: %s%s%s (HTTP %ld)", st_aws_service_name(svc), operation,
                code[0] ? code : "error", text[0] ? ": " : "", text, status);
    }
    return rc;
}

static int is_expired_token(const char *code)
{
    return strcmp(code, "ExpiredToken") == 0 || strcmp(code, "ExpiredTokenException") == 0 ||
           strcmp(code, "RequestExpired") == 0 || strcmp(code, "InvalidToken") == 0;
}

static void sleep_cancellable(st_aws_client *c, uint32_t ms)
{
    while (ms > 0 && !cancelled(c)) {
        uint32_t step = ms > 50 ? 50 : ms;
        c->sys.sleep_ms(c->sys.ctx, step);
        ms -= step;
    }
}

int st_aws_call(st_aws_client *c, st_aws_service svc, const char *operation, const cJSON *request,
                cJSON **reply, st_aws_error *err)
{
    st_aws_error local;
    if (!err) {
        err = &local;
    }
    memset(err, 0, sizeof(*err));
    if ((unsigned)svc >= ST_AWS_N_SERVICES || !operation || !cJSON_IsObject(request)) {
        set_msg(err, "invalid AWS call");
        return err->code = ST_EINVAL;
    }
    char *body = cJSON_PrintUnformatted(request);
    if (!body) {
        return err->code = ST_ENOMEM;
    }
    size_t body_len = strlen(body);
    int rc = 0;
    int refreshed = 0;
    for (int attempt = 1;; attempt++) {
        err->attempts = attempt;
        if (cancelled(c)) {
            set_msg(err, "%s %s: cancelled", st_aws_service_name(svc), operation);
            rc = ST_ECLOSED;
            break;
        }
        const st_aws_creds *cr;
        char why[ST_AWS_MSG_LEN - 64];
        why[0] = '\0';
        rc = st_aws_creds_get(c->creds, &cr, why, sizeof(why));
        if (rc) {
            set_msg(err, "%s %s: %s", st_aws_service_name(svc), operation,
                    why[0] ? why : st_strerror(rc));
            break;
        }
        long status = 0;
        int retryable = 0;
        rc = perform(c, svc, operation, body, body_len, cr, &status, &retryable);
        if (rc) {
            err->http_status = 0;
            err->aws_code[0] = '\0';
            set_msg(err, "%s %s: %s at %s: %s", st_aws_service_name(svc), operation,
                    st_strerror(rc), c->endpoint[svc], c->curl_err[0] ? c->curl_err : "no detail");
        } else if (status >= 200 && status < 300) {
            cJSON *j = c->body.len ? cJSON_ParseWithLength(c->body.data, c->body.len)
                                   : cJSON_CreateObject();
            if (!cJSON_IsObject(j)) {
                cJSON_Delete(j);
                set_msg(err, "%s %s: the reply (HTTP %ld) is not a JSON object",
                        st_aws_service_name(svc), operation, status);
                err->http_status = status;
                rc = ST_EPROTO;
                break;
            }
            *reply = j;
            rc = 0;
            break;
        } else {
            rc = answer_error(c, svc, operation, status, &retryable, err);
            if (rc == ST_EAUTH && is_expired_token(err->aws_code) && !refreshed &&
                strcmp(cr->source, "environment") != 0) {
                /* The role's session ended early: fetch new credentials once and try again. */
                st_aws_creds_invalidate(c->creds);
                refreshed = 1;
                continue;
            }
        }
        if (!retryable || attempt >= c->retry.max_attempts) {
            if (attempt > 1) {
                size_t len = strlen(err->message);
                snprintf(err->message + len, sizeof(err->message) - len, " after %d attempts",
                         attempt);
            }
            break;
        }
        uint32_t delay = st_aws_backoff_ms(&c->retry, attempt - 1, c->sys.random(c->sys.ctx));
        st_debug("%s; retrying in %u ms", err->message, delay);
        sleep_cancellable(c, delay);
    }
    free(body);
    err->code = rc;
    return rc;
}
