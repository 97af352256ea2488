/*
 * ecs.h - Amazon ECS over the AWS JSON 1.1 protocol: what the ECS launcher needs to start agents as
 * Fargate tasks, watch them start, and stop them on every exit path. RunTask (one batch of at most
 * 10 tasks, idempotent through its clientToken), DescribeTasks (any number of ARNs, in calls of
 * 100), StopTask, ListTasks by startedBy (every page) and DescribeTaskDefinition.
 *
 * Calls go through aws/aws.h's st_aws_call: SigV4, the credential chain, and retries with backoff
 * and jitter on throttling (ThrottlingException), 5xx and network failures live there. A RunTask
 * retried by the client after a lost answer carries the same clientToken, so ECS starts its
 * tasks once.
 *
 * Errors: every call returns 0 or an ST_E* code and fills an st_aws_error whose message names
 * "ECS", the operation, AWS's error code and message. st_ecs_error_kind sorts a call's error
 * into what a launcher shows (access denied, invalid parameters, throttled, not found, ...), and
 * st_ecs_denied_action finds the IAM action ("ecs:RunTask") an AccessDeniedException names.
 * Partial success is not an error: RunTask and DescribeTasks return ECS's failures[] beside the
 * tasks, each sorted by st_ecs_failure_kind (capacity, quota, missing, ...).
 *
 * Ownership: requests stay the caller's. Results (st_ecs_tasks, st_ecs_taskdef, the ARN list of
 * st_ecs_list_tasks) are the caller's to release with their _fini / st_ecs_strv_free, on error
 * too (they are left empty then). Threading: the client's (one thread).
 */
#ifndef ST_AWS_ECS_H
#define ST_AWS_ECS_H

#include "aws.h"

#include <stddef.h>

/* ECS's own limits, checked before anything is sent. */
#define ST_ECS_RUN_MAX         10   /* tasks per RunTask */
#define ST_ECS_DESCRIBE_MAX    100  /* ARNs per DescribeTasks */
#define ST_ECS_OVERRIDES_MAX   8192 /* characters of RunTask's overrides, as JSON */
#define ST_ECS_TOKEN_MAX       64   /* clientToken: 1..64 ASCII characters */
#define ST_ECS_STOP_REASON_MAX 255  /* StopTask's reason */

/* What went wrong, for the launcher's messages. */
typedef enum st_ecs_kind {
    ST_ECS_OK = 0,
    ST_ECS_ACCESS_DENIED, /* AccessDeniedException: an IAM policy lacks an action */
    ST_ECS_INVALID,       /* ClientException, InvalidParameterException, ...: a subnet, a
                           * security group, a task definition or a value ECS refused */
    ST_ECS_NOT_FOUND,     /* ClusterNotFoundException, a failures[] MISSING */
    ST_ECS_THROTTLED,     /* still throttled after the client's retries */
    ST_ECS_CAPACITY,      /* failures[]: RESOURCE:*, no Fargate (Spot) capacity now */
    ST_ECS_QUOTA,         /* failures[]: a limit on tasks or vCPUs of the account is reached */
    ST_ECS_AUTH,          /* credentials missing, expired or refused (not a policy) */
    ST_ECS_UNAVAILABLE,   /* ServerException, 5xx, the network after every retry */
    ST_ECS_OTHER,
} st_ecs_kind;

/* A short name of kind ("access denied", "invalid parameter", ...). */
const char *st_ecs_kind_name(st_ecs_kind kind);

/* The kind of a call's error (err as the call filled it; rc its return). */
st_ecs_kind st_ecs_error_kind(int rc, const st_aws_error *err);

/* The kind of a failures[] entry from its reason (and detail, which may be NULL). */
st_ecs_kind st_ecs_failure_kind(const char *reason, const char *detail);

/* Copies into out (out_len bytes) the IAM action an AccessDeniedException message names
 * ("... is not authorized to perform: ecs:RunTask on resource: ..." -> "ecs:RunTask"). Returns 1
 * when it found one, else 0 with out "". */
int st_ecs_denied_action(const char *message, char *out, size_t out_len);

typedef struct st_ecs_kv {
    const char *name;
    const char *value;
} st_ecs_kv;

typedef enum st_ecs_capacity {
    ST_ECS_FARGATE = 0,       /* launchType FARGATE */
    ST_ECS_FARGATE_SPOT,      /* capacityProviderStrategy FARGATE_SPOT */
    ST_ECS_SPOT_THEN_FARGATE, /* FARGATE_SPOT; what failed for capacity is asked again of
                               * FARGATE in a second call (fallback_client_token) */
} st_ecs_capacity;

typedef struct st_ecs_run_req {
    const char *cluster;         /* name or ARN; required */
    const char *task_definition; /* FAMILY, FAMILY:REV or ARN; required */
    int count;                   /* 1..ST_ECS_RUN_MAX */
    st_ecs_capacity capacity;
    const char *const *subnets; /* 1..16 subnet ids */
    size_t n_subnets;
    const char *const *security_groups; /* 0..5 ids (0: the VPC's default group) */
    size_t n_security_groups;
    int assign_public_ip;   /* 1: ENABLED, 0: DISABLED */
    const char *started_by; /* NULL or 1..36 characters (ListTasks filters on it) */
    const st_ecs_kv *tags;  /* key, value (the run id) */
    size_t n_tags;
    const char *container; /* the container the environment goes to; NULL: no
                            * container override */
    const st_ecs_kv *env;
    size_t n_env;
    const char *const *command; /* the container's command override (argv after the image's
                                 * entryPoint), or NULL: the image's own; needs container */
    size_t n_command;
    const char *cpu;                   /* task-level override in CPU units ("1024"), or NULL */
    const char *memory;                /* task-level override in MiB ("2048"), or NULL */
    const char *client_token;          /* 1..64 ASCII characters, from the run id and the batch */
    const char *fallback_client_token; /* ST_ECS_SPOT_THEN_FARGATE only: the FARGATE call's */
} st_ecs_run_req;

typedef struct st_ecs_tag {
    char *key;
    char *value;
} st_ecs_tag;

typedef struct st_ecs_container {
    char *name;
    char *last_status;
    char *reason; /* e.g. "CannotPullContainerError: ..."; NULL when ECS gave none */
    int has_exit_code;
    int exit_code;
} st_ecs_container;

/* A task as RunTask or DescribeTasks gave it. A string ECS did not give is NULL. */
typedef struct st_ecs_task {
    char *arn;
    char *last_status; /* PROVISIONING, PENDING, ACTIVATING, RUNNING, DEACTIVATING, STOPPING,
                        * DEPROVISIONING, STOPPED */
    char *desired_status;
    char *stop_code; /* TaskFailedToStart, EssentialContainerExited, UserInitiated, ... */
    char *stopped_reason;
    char *availability_zone;
    char *private_ipv4; /* from the awsvpc attachment's privateIPv4Address */
    char *started_by;
    char *capacity_provider;
    st_ecs_container *containers;
    size_t n_containers;
    st_ecs_tag *tags;
    size_t n_tags;
} st_ecs_task;

typedef struct st_ecs_failure {
    char *arn;
    char *reason;
    char *detail;
    st_ecs_kind kind; /* st_ecs_failure_kind(reason, detail) */
} st_ecs_failure;

/* The answer of RunTask or DescribeTasks. Zero-initialise; st_ecs_tasks_fini releases it. */
typedef struct st_ecs_tasks {
    st_ecs_task *tasks;
    size_t n_tasks;
    st_ecs_failure *failures;
    size_t n_failures;
} st_ecs_tasks;

void st_ecs_tasks_fini(st_ecs_tasks *t);

/* Checks req as st_ecs_run_task would, sending nothing: 0, or ST_EINVAL with why (why_len
 * bytes) naming the field (count above 10, a clientToken not of 1..64 ASCII characters, no
 * subnets, overrides above 8,192 characters, ...). */
int st_ecs_run_check(const st_ecs_run_req *req, char *why, size_t why_len);

/* The RunTask request body for req (for --dry-run and the test of the limit), a new JSON object
 * the caller owns, in *out; fallback 1 builds the FARGATE fallback call. Returns 0, ST_EINVAL as
 * st_ecs_run_check (why says what), ST_ENOMEM. */
int st_ecs_run_request(const st_ecs_run_req *req, int fallback, cJSON **out, char *why,
                       size_t why_len);

/* Starts req->count tasks in one call (two with ST_ECS_SPOT_THEN_FARGATE when some failed for
 * capacity). On 0, out holds the tasks ECS started and the failures it reported (their numbers
 * add up to count when ECS answers as documented; partial success is 0). Errors: st_ecs_run_check's
 * ST_EINVAL before anything is sent, then st_aws_call's (err says what); out is empty then, except
 * when the fallback call fails: the first call's tasks and failures stay in out, and the error
 * is returned (those tasks run: stop them). */
int st_ecs_run_task(st_aws_client *c, const st_ecs_run_req *req, st_ecs_tasks *out,
                    st_aws_error *err);

/* Describes arns[0..n) of cluster (with their tags), in calls of at most 100. On 0, out holds a
 * task per ARN ECS knows and a failure (usually MISSING) per ARN it does not. Errors: the first
 * failed call's (out is emptied), ST_EINVAL for n == 0, ST_ENOMEM. */
int st_ecs_describe_tasks(st_aws_client *c, const char *cluster, const char *const *arns, size_t n,
                          st_ecs_tasks *out, st_aws_error *err);

/* Stops task arn of cluster with reason (1..255 characters, shown by DescribeTasks as its
 * stoppedReason). On 0 and when out is not NULL, *out is the task as ECS answered (release it
 * with st_ecs_task_fini). Errors: ST_EINVAL for a reason too long or empty, st_aws_call's. */
int st_ecs_stop_task(st_aws_client *c, const char *cluster, const char *arn, const char *reason,
                     st_ecs_task *out, st_aws_error *err);

void st_ecs_task_fini(st_ecs_task *t);

/* The ARNs of cluster's tasks started with started_by (NULL: every task) whose desired status is
 * desired_status ("RUNNING", "STOPPED"; NULL: ECS's default, RUNNING), following nextToken to the
 * last page. On 0, *arns (NULL-terminated, NULL when none) and *n are set; free with
 * st_ecs_strv_free. Errors: st_aws_call's, ST_EPROTO for a page that is not a list of strings. */
int st_ecs_list_tasks(st_aws_client *c, const char *cluster, const char *started_by,
                      const char *desired_status, char ***arns, size_t *n, st_aws_error *err);

void st_ecs_strv_free(char **v);

typedef struct st_ecs_taskdef {
    char *arn;
    char *family;
    long revision;
    long cpu_units;  /* task-level cpu ("1024" -> 1024); 0 when the definition has none */
    long memory_mib; /* task-level memory; 0 when none */
    char *network_mode;
    char **containers; /* names, NULL-terminated */
    size_t n_containers;
    int fargate; /* 1 when requiresCompatibilities holds FARGATE */
} st_ecs_taskdef;

/* Describes task_definition (FAMILY, FAMILY:REV or ARN). On 0, *out is filled (release with
 * st_ecs_taskdef_fini). Errors: st_aws_call's; ST_EPROTO when the answer lacks taskDefinition or
 * holds a cpu or memory that is not a number (err says which). */
int st_ecs_describe_taskdef(st_aws_client *c, const char *task_definition, st_ecs_taskdef *out,
                            st_aws_error *err);

void st_ecs_taskdef_fini(st_ecs_taskdef *d);

#endif
