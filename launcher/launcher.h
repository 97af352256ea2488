/*
 * launcher.h - the launcher Lambda (stampede-launcher): one invocation starts one stampede run on
 * ECS. The event is the seed's payload ({"taskCount", "targetUrl", "vus", "rate", "duration"})
 * or a stampede plan (its "agents" is the number of agent tasks); it is checked as stampede run
 * would check it, then one coordinator task is started (RunTask of the coordinator's task
 * definition) whose container runs `stampede run --plan-env STAMPEDE_PLAN --launcher ecs
 * --headless --agents N ... --run-id RUN_ID` with the event's JSON in STAMPEDE_PLAN. The
 * coordinator then starts the agents' tasks itself and sends the results to the queue.
 * launcher/main.c runs st_launcher_handle under aws/lambda.h's runtime loop; docs/ecs.md
 * documents the event, the answer and the settings.
 *
 * Errors: st_launcher_env_read names the missing or malformed setting (an initialisation
 * error). st_launcher_event_read names the event's JSON path ("$.rate: ..."). The handler refuses
 * an invocation with ST_EINVAL and an errorType / errorMessage (Launcher.InvalidEvent,
 * Launcher.PlanTooLarge, Launcher.AccessDenied naming the IAM action, Launcher.EcsRefused,
 * Launcher.NotFound, Launcher.TaskFailed naming ECS's failure reason, Launcher.EcsFailed), and
 * nothing runs then; it returns ST_ENOMEM only for memory, which ends the runtime loop.
 *
 * Ownership: st_launcher_env's strings are borrowed from the environment (they live as long as
 * the process). An st_launcher_event owns its JSON (st_launcher_event_fini). st_launcher owns its
 * AWS client (st_launcher_free). Threading: one thread; st_launcher_event_read is thread-safe.
 */
#ifndef ST_LAUNCHER_H
#define ST_LAUNCHER_H

#include "aws.h"
#include "lambda.h"

#include <stdbool.h>
#include <stddef.h>

/* The variable of the coordinator task's environment override that holds the plan. */
#define ST_LAUNCHER_PLAN_ENV "STAMPEDE_PLAN"

/* The function's settings, from its environment (docs/ecs.md, "The launcher Lambda"). */
typedef struct st_launcher_env {
    const char *cluster;                     /* STAMPEDE_CLUSTER */
    const char *coordinator_task_definition; /* STAMPEDE_COORDINATOR_TASK_DEFINITION */
    const char *agent_task_definition;       /* STAMPEDE_AGENT_TASK_DEFINITION */
    const char *subnets;                     /* STAMPEDE_SUBNETS, "subnet-a,subnet-b" */
    const char *coordinator_security_groups; /* STAMPEDE_COORDINATOR_SECURITY_GROUPS */
    const char *agent_security_groups;       /* STAMPEDE_AGENT_SECURITY_GROUPS */
    bool assign_public_ip;                   /* STAMPEDE_ASSIGN_PUBLIC_IP: ENABLED / DISABLED */
    const char *sqs_queue_url;               /* STAMPEDE_SQS_QUEUE_URL */
    const char *table;                       /* STAMPEDE_TABLE (answered, for stampede results) */
    const char *coordinator_container; /* STAMPEDE_COORDINATOR_CONTAINER, default "coordinator" */
    const char *coordinator_listen;    /* STAMPEDE_COORDINATOR_LISTEN, optional: the
                                        * coordinator's --listen (default the ecs one,
                                        * tls+tcp://0.0.0.0:7400) */
} st_launcher_env;

/* Reads the settings through get (getenv, or a test's). Returns 0, or ST_EINVAL with err naming
 * the variable that is missing or malformed (and what it should hold). */
int st_launcher_env_read(st_launcher_env *e, const char *(*get)(const char *name), char *err,
                         size_t err_len);

/* One invocation's event, checked. */
typedef struct st_launcher_event {
    char *plan_json;   /* the event as compact JSON: the coordinator's STAMPEDE_PLAN */
    int agents;        /* the seed's taskCount, the plan's agents (default 1) */
    double target_rps; /* the planned requests over the duration; 0 for a closed loop */
    double duration_s;
} st_launcher_event;

/* Checks an event (len bytes, not necessarily NUL-terminated) as a plan: parsed and finished
 * as stampede run would. Returns 0 with *ev filled (release with st_launcher_event_fini),
 * ST_EINVAL with err naming the JSON path, or ST_ENOMEM; *ev is empty on error. */
int st_launcher_event_read(const char *text, size_t len, st_launcher_event *ev, char *err,
                           size_t err_len);

void st_launcher_event_fini(st_launcher_event *ev);

typedef struct st_launcher st_launcher;

/* A launcher with env (copied by pointer: its strings must outlive it) and an ECS client made
 * with cfg (the region, the endpoint: AWS_ENDPOINT_URL_ECS, credentials from the chain). Returns
 * 0, ST_ENOMEM, or the client's error with err filled. */
int st_launcher_new(st_launcher **out, const st_launcher_env *env, const st_aws_config *cfg,
                    char *err, size_t err_len);

void st_launcher_free(st_launcher *l);

/* The st_lambda_handler (ctx is an st_launcher): checks the event, starts the coordinator's task
 * and answers {"run_id", "coordinator_task_arn", "queue_url", "table", "agents", "target_rps",
 * "duration_s"}. */
int st_launcher_handle(void *ctx, const char *request_id, const char *event,
                       st_lambda_reply *reply);

#endif
