/*
 * aws_creds.h - AWS credentials, found where the AWS SDKs look for them, refreshed before they
 * expire.
 *
 * The chain, in the SDKs' order:
 *   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional AWS_SESSION_TOKEN;
 *   2. ECS container role: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (fetched from 169.254.170.2),
 * else AWS_CONTAINER_CREDENTIALS_FULL_URI (https, or http to a loopback or ECS/EKS link-local host)
 *      with AWS_CONTAINER_AUTHORIZATION_TOKEN (or _TOKEN_FILE) as its Authorization header;
 *   3. EC2 instance metadata, IMDSv2 (PUT a session token, then GET the role's credentials), unless
 *      AWS_EC2_METADATA_DISABLED=true; AWS_EC2_METADATA_SERVICE_ENDPOINT overrides its address.
 * A source that is configured but fails (a container endpoint that does not answer, credentials
 * that have already expired) is an error: the chain never falls through to a less specific source.
 * Temporary credentials are fetched again five minutes before their Expiration.
 *
 * st_aws_sys is the outside world the AWS modules touch (environment, HTTP, wall clock, sleeping,
 * randomness); tests replace it, programs pass NULL for the real one.
 *
 * Used by aws/aws.c; one provider per st_aws_client. Threading: a provider is not thread-safe.
 * Ownership: the provider owns the credentials it returns. Secrets are never logged or put into
 * error messages.
 */
#ifndef ST_AWS_CREDS_H
#define ST_AWS_CREDS_H

#include "fetch.h"

#include <stddef.h>
#include <stdint.h>

typedef struct st_aws_sys {
    /* Like getenv(3); NULL when unset. */
    const char *(*getenv)(void *ctx, const char *name);
    /* Like st_fetch(). */
    int (*fetch)(void *ctx, const st_fetch_req *req, st_fetch_resp *resp);
    /* Wall clock, seconds since the epoch. */
    int64_t (*now_s)(void *ctx);
    /* Sleeps ms milliseconds. */
    void (*sleep_ms)(void *ctx, uint32_t ms);
    /* Uniform random 64-bit value (for jitter). */
    uint64_t (*random)(void *ctx);
    void *ctx;
} st_aws_sys;

/* The real environment, libcurl, CLOCK_REALTIME, nanosleep and a per-thread random generator. */
extern const st_aws_sys st_aws_sys_real;

typedef struct st_aws_creds {
    char *access_key_id;
    char *secret_access_key;
    char *session_token;  /* NULL when the credentials are not temporary */
    int64_t expires_at_s; /* epoch seconds; 0 when they do not expire */
    const char *source;   /* static: "environment", "container", "instance metadata" */
} st_aws_creds;

typedef struct st_aws_creds_provider st_aws_creds_provider;

/* sys may be NULL (the real world); it is copied. Returns 0 or ST_ENOMEM. Nothing is fetched yet.
 */
int st_aws_creds_provider_new(st_aws_creds_provider **out, const st_aws_sys *sys);
void st_aws_creds_provider_free(st_aws_creds_provider *p);

/* Returns usable credentials in *creds (owned by p, valid until the next call on p), fetching or
 * refreshing them as needed. Errors, each with a message for the user in err (may be NULL):
 *   ST_EAUTH  no source has credentials, a source is half configured, or they have expired;
 *   ST_ECONNECT / ST_ETIMEDOUT / ST_EREMOTE  a configured endpoint did not answer or refused;
 *   ST_EPROTO an endpoint answered something that is not credentials;
 *   ST_ENOMEM. */
int st_aws_creds_get(st_aws_creds_provider *p, const st_aws_creds **creds, char *err,
                     size_t err_len);

/* Forgets cached credentials so that the next st_aws_creds_get fetches them again (after AWS said
 * ExpiredToken, for instance). */
void st_aws_creds_invalidate(st_aws_creds_provider *p);

/* Parses an ISO 8601 UTC instant such as "2024-05-01T12:00:00Z" (fractional seconds allowed).
 * Returns 0 and writes *out_s, or ST_EINVAL. */
int st_aws_parse_iso8601(const char *text, int64_t *out_s);

#endif
