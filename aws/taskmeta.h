/*
 * taskmeta.h - the ECS task metadata endpoint, version 4: who and where an agent running as an
 * ECS (Fargate) task is. The agent reads it at start to register with its task ARN, cluster,
 * family and revision, availability zone, CPU limit (its capacity) and the clock's error bound;
 * a coordinator running on ECS reads its own private address from it.
 *
 * st_taskmeta_get sends `GET $ECS_CONTAINER_METADATA_URI_V4/task`: plain HTTP to a link-local
 * address the ECS agent serves, no signing, no proxy, a short timeout. The answer is parsed
 * strictly: every field below except the clock's must be present with its type, or the call fails
 * naming the field ("task metadata: $.Limits.CPU: must be a positive number").
 *
 * Ownership: st_taskmeta's strings are its own, released by st_taskmeta_fini (a zeroed struct is
 * fine to fini). Threading: any thread (each call uses its own curl handle); the program must
 * have called curl_global_init.
 */
#ifndef ST_AWS_TASKMETA_H
#define ST_AWS_TASKMETA_H

#include <stddef.h>

#define ST_TASKMETA_ENV        "ECS_CONTAINER_METADATA_URI_V4"
#define ST_TASKMETA_TIMEOUT_MS 2000

typedef struct st_taskmeta {
    char *task_arn;          /* $.TaskARN */
    char *cluster;           /* $.Cluster (name or ARN, as ECS gives it) */
    char *family;            /* $.Family */
    char *revision;          /* $.Revision (a string in v4, e.g. "7") */
    char *availability_zone; /* $.AvailabilityZone */
    double cpu_vcpus;        /* $.Limits.CPU, in vCPUs (0.25, 1, 4, ...) */
    long memory_mib;         /* $.Limits.Memory */
    char ipv4[16];           /* the first $.Containers[].Networks[].IPv4Addresses[0]: in awsvpc
                              * every container of the task shares the ENI's address */
    int has_clock_error_bound;
    double clock_error_bound_ms; /* $.ClockDrift.ClockErrorBound, when given */
} st_taskmeta;

/* Parses an answer of /task (text[0..len)). Returns 0 with *out filled, ST_EINVAL with why
 * (why_len bytes) naming the field when the answer is not a JSON object, a required field is
 * missing or of the wrong type, or a value is out of range (no IPv4 address in any container's
 * networks, a negative ClockErrorBound), ST_ENOMEM. *out is zeroed on error. */
int st_taskmeta_parse(const char *text, size_t len, st_taskmeta *out, char *why, size_t why_len);

/* Fetches and parses base_url + "/task"; base_url NULL reads ST_TASKMETA_ENV. timeout_ms 0 means
 * ST_TASKMETA_TIMEOUT_MS. Returns 0; ST_ENOTFOUND when base_url is NULL and the variable is unset
 * or empty (not on ECS); ST_EINVAL for a base URL that is not http:// and st_taskmeta_parse's
 * errors; ST_EREMOTE for an HTTP status other than 200; ST_ECONNECT, ST_ETIMEDOUT, ST_EIO for
 * the transfer; ST_ENOMEM. why always says what and where. */
int st_taskmeta_get(const char *base_url, long timeout_ms, st_taskmeta *out, char *why,
                    size_t why_len);

void st_taskmeta_fini(st_taskmeta *m);

#endif
