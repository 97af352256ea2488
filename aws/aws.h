/*
 * aws.h - a small client for the AWS JSON APIs stampede uses: SQS, DynamoDB and ECS.
 *
 * Requests are cJSON objects POSTed to the service endpoint's "/" with the service's X-Amz-Target,
 * signed with Signature Version 4 by libcurl (CURLOPT_AWS_SIGV4). Replies come back as cJSON.
 * Used by the coordinator's SQS forwarder, the ECS launcher, `stampede results` and the sink.
 *
 * Configuration, resolved once in st_aws_client_new:
 *   - region: cfg->region, else AWS_REGION, else AWS_DEFAULT_REGION, else the region inside an SQS
 *     queue URL (sqs.<region>.amazonaws.com); none of them is an error.
 *   - endpoint per service: cfg->service_endpoint_url[svc], else cfg->endpoint_url, else
 *     AWS_ENDPOINT_URL_<SERVICE> (AWS_ENDPOINT_URL_SQS, _DYNAMODB, _ECS), else AWS_ENDPOINT_URL,
 *     else (SQS only) the scheme and host of cfg->sqs_queue_url, else
 * https://<svc>.<region>.amazonaws.com.
 *   - credentials: aws/aws_creds.h's chain, refreshed before they expire; once more after AWS
 *     answers that they expired.
 *
 * Retries: throttling (HTTP 429 and the throttling error codes), HTTP 5xx and network failures are
 * retried up to retry.max_attempts in all, sleeping st_aws_backoff_ms() between tries: exponential
 * backoff from base_delay_ms, capped at max_delay_ms, with jitter over the upper half of the delay.
 * Anything else fails at once.
 *
 * Errors: every call returns an ST_E* code and fills an st_aws_error whose message names the
 * service, the operation, the AWS error code and AWS's own message, e.g.
 * "SQS SendMessageBatch: QueueDoesNotExist: The specified queue does not exist (HTTP 400)".
 * Secrets (keys, session tokens) never appear in messages or logs.
 *
 * Threading: a client is not thread-safe; give each thread its own. The program must call
 * curl_global_init from main before creating clients. st_aws_client_set_cancel's flag may be raised
 * from any thread or a signal handler.
 */
#ifndef ST_AWS_H
#define ST_AWS_H

#include "aws_creds.h"

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdint.h>

typedef enum st_aws_service {
    ST_AWS_SQS = 0,
    ST_AWS_DYNAMODB = 1,
    ST_AWS_ECS = 2,
    ST_AWS_N_SERVICES = 3,
} st_aws_service;

typedef struct st_aws_retry {
    int max_attempts;       /* tries in all, first included; >= 1 */
    uint32_t base_delay_ms; /* delay cap before the first retry */
    uint32_t max_delay_ms;  /* no delay is longer */
} st_aws_retry;

typedef struct st_aws_config {
    const char *region;       /* NULL: from the environment */
    const char *endpoint_url; /* every service; NULL: from the environment or the default */
    /* One service only (a program's --endpoint-url when it talks to several services, like the
     * sink: its flag names DynamoDB's endpoint while SQS's follows the queue URL). Wins over
     * endpoint_url. */
    const char *service_endpoint_url[ST_AWS_N_SERVICES];
    const char *sqs_queue_url; /* optional hint for SQS's endpoint and region */
    st_aws_retry retry;
    uint32_t connect_timeout_ms;
    uint32_t timeout_ms;   /* whole request; above 20 s so that SQS long polls fit */
    const st_aws_sys *sys; /* NULL: the real world */
} st_aws_config;

#define ST_AWS_MSG_LEN 1024

typedef struct st_aws_error {
    int code;           /* the ST_E* code returned */
    long http_status;   /* 0 when no response arrived */
    char aws_code[128]; /* AWS's error code without its namespace, "" when none */
    char message[ST_AWS_MSG_LEN];
    int attempts; /* tries made */
} st_aws_error;

/* Fills cfg with defaults: 5 attempts, 50 ms base, 5 s cap, 3 s connect timeout, 30 s timeout. */
void st_aws_config_init(st_aws_config *cfg);

/* The flags every program that talks to AWS takes, --endpoint-url URL and --region R, as
 * getopt_long entries (<getopt.h>): put ST_AWS_FLAGS in the option table and hand each option
 * getopt_long returns to st_aws_config_flag. */
#define ST_AWS_FLAG_ENDPOINT_URL 0x1001
#define ST_AWS_FLAG_REGION       0x1002
#define ST_AWS_FLAGS                                                                               \
    {"endpoint-url", required_argument, NULL, ST_AWS_FLAG_ENDPOINT_URL},                           \
    {                                                                                              \
        "region", required_argument, NULL, ST_AWS_FLAG_REGION                                      \
    }

/* Stores one of ST_AWS_FLAGS in cfg: the region, or the endpoint URL of svc (ST_AWS_N_SERVICES:
 * of every service). Returns 1 when opt is one of them, else 0 with cfg untouched. arg is not
 * copied. */
int st_aws_config_flag(st_aws_config *cfg, int opt, const char *arg, st_aws_service svc);

/* getopt_long(argc, argv, "h", opts, NULL) that stores each of ST_AWS_FLAGS it meets in cfg (as
 * st_aws_config_flag does, for svc) and returns the next other option, or -1 at the end. Not
 * thread-safe: uses getopt's globals (the caller sets optind first). */
struct option;
int st_aws_getopt(int argc, char **argv, const struct option *opts, st_aws_config *cfg,
                  st_aws_service svc);

typedef struct st_aws_client st_aws_client;

/* Resolves the region and the endpoints (strings are copied). Returns 0, ST_EINVAL (no region, an
 * endpoint that is not an http(s) URL; err says which flag or variable to set) or ST_ENOMEM.
 * Credentials are looked up at the first call, not here. err may be NULL. */
int st_aws_client_new(st_aws_client **out, const st_aws_config *cfg, st_aws_error *err);
void st_aws_client_free(st_aws_client *c);

const char *st_aws_client_region(const st_aws_client *c);
const char *st_aws_client_endpoint(const st_aws_client *c, st_aws_service svc);

/* While *cancel is non-zero, calls in progress abort and new ones fail with ST_ECLOSED. NULL turns
 * cancelling off. The flag must outlive its use by the client. */
void st_aws_client_set_cancel(st_aws_client *c, const atomic_int *cancel);

/* Calls operation (e.g. "SendMessageBatch") of svc with the JSON object request (not modified).
 * On 0, *reply is a new JSON object the caller owns ({} when AWS answered an empty body).
 * On error *reply is untouched and err (may be NULL) says what happened. Codes:
 *   ST_EAUTH     credentials missing, expired or refused;
 *   ST_ENOTFOUND the queue, table or cluster does not exist;
 *   ST_EINVAL    AWS refused the request as invalid (ValidationException and the like);
 *   ST_EAGAIN    still throttled after every retry;
 *   ST_EREMOTE   another AWS error, or 5xx after every retry;
 *   ST_ECONNECT, ST_ETIMEDOUT, ST_EIO  network failures after every retry;
 *   ST_EPROTO    a reply that is not JSON;
 *   ST_ECLOSED   cancelled through st_aws_client_set_cancel;
 *   ST_ENOMEM. */
int st_aws_call(st_aws_client *c, st_aws_service svc, const char *operation, const cJSON *request,
                cJSON **reply, st_aws_error *err);

/* Short service name for messages ("SQS", "DynamoDB", "ECS"). */
const char *st_aws_service_name(st_aws_service svc);

/* The delay before retry number retry (0 for the first retry): with cap = min(max_delay_ms,
 * base_delay_ms * 2^retry), a value in [cap/2, cap] picked by random. */
uint32_t st_aws_backoff_ms(const st_aws_retry *r, int retry, uint64_t random);

/* Classifies an AWS error: returns the ST_E* code for (HTTP status, AWS error code) and sets
 * *retryable. aws_code may be "" or NULL. */
int st_aws_classify(long http_status, const char *aws_code, int *retryable);

/* Resolves the endpoint of svc as st_aws_client_new does (cfg->sys for the environment), into out
 * (out_len bytes, no trailing slash). Returns 0, ST_EINVAL (a configured value is not an http(s)
 * URL; why names it) or ST_ERANGE (out too small). */
int st_aws_resolve_endpoint(const st_aws_config *cfg, st_aws_service svc, const char *region,
                            char *out, size_t out_len, const char **why);

#endif
