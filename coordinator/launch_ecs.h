/*
 * launch_ecs.h - the ecs launcher: agents as ECS Fargate tasks (aws/ecs.h), for stampede run.
 *
 * start reads the task definition (vCPU, memory, the agent's container), then asks RunTask for
 * the agents in batches of at most 10. Each batch has a clientToken made of the run id and the
 * batch number, so that a call retried after a lost answer starts nothing twice; tasks ECS
 * reports in failures[] are asked for again (the missing count only, in a new batch with a new
 * token) after a backoff with jitter, and --spot asks FARGATE for what FARGATE_SPOT has no
 * capacity for. Never are more tasks started than agents asked for. Every task gets the agent's
 * configuration in its container's environment only (STAMPEDE_COORDINATOR = --advertise,
 * STAMPEDE_TOKEN, STAMPEDE_NAME, ...), a startedBy of "stampede-RUN_ID" and a tag
 * stampede:run = RUN_ID, by which `stampede ecs list|stop` finds leftovers.
 *
 * watch (a few times a second while the run waits for its agents) describes the tasks with
 * backoff, logs a progress line (provisioning / pending / running / registered), retries what
 * failed, and fails the launch with a message for: AccessDenied (naming the action), parameters
 * ECS refused (subnets, security groups, the task definition), capacity or quota, a cluster that
 * does not exist, a task that stopped before its agent registered (its stoppedReason and its
 * container's reason, e.g. CannotPullContainerError). start first logs the tasks' size, their
 * task-hours and their cost (fargate_prices.h: the region's prices, or the run's). finish stops every task it started
 * (StopTask, with a reason naming the run) on every path; free does so too when finish was not
 * called.
 *
 * Errors of start and watch: ST_EAUTH (access denied, credentials), ST_EINVAL (refused
 * parameters, a container that cannot be chosen), ST_ENOTFOUND (the cluster, the task
 * definition), ST_EAGAIN (no capacity, a quota reached, tasks that stopped before registering),
 * ST_EREMOTE (ECS failing after every retry), ST_ENOMEM; err says what and what to do.
 *
 * Threading: the coordinator's owner thread, as every launcher op.
 */
#ifndef ST_LAUNCH_ECS_H
#define ST_LAUNCH_ECS_H

#include "launch.h"

#include <stdio.h>

/* The ecs settings of a run (stampede run's flags; strings are borrowed). */
typedef struct st_ecs_launch_cfg {
    const char *cluster;
    const char *task_definition; /* FAMILY, FAMILY:REV or ARN */
    const char *subnets;         /* "subnet-a,subnet-b" */
    const char *security_groups; /* "sg-1,sg-2" */
    const char *container;       /* NULL: the task definition's only container */
    int assign_public_ip;        /* 1: ENABLED */
    int spot;                    /* 1: FARGATE_SPOT, falling back to FARGATE for capacity */
    int cpu_units, memory_mib;   /* 0: the task definition's */
    const char *region;          /* NULL: the environment's */
    const char *endpoint_url;    /* NULL: AWS_ENDPOINT_URL_ECS, AWS_ENDPOINT_URL or AWS's */
    double duration_s;           /* the load's planned length, for the cost start prints */
    double price_vcpu_hour, price_gb_hour; /* > 0 both: instead of the Fargate price table */
} st_ecs_launch_cfg;

extern const st_launcher_ops st_launcher_ecs;

/* Checks a comma-separated list of flag (e.g. "subnets") of 1..max ids, each starting with
 * prefix ("subnet-"). Returns 0, or ST_EINVAL with a message naming the flag in err. */
int st_launch_ecs_check_list(const char *flag, const char *text, const char *prefix, size_t max,
                             char *err, size_t err_len);

/* Cuts a list st_launch_ecs_check_list accepted (text, the caller's copy, is written) into v at
 * the commas: at most max ids, pointing into text. Returns how many. */
size_t st_launch_ecs_cut_list(char *text, const char **v, size_t max);

/* For --dry-run: prints to out the tasks, vCPU and memory per task (DescribeTaskDefinition,
 * unless --cpu, --memory and --container are all given), the task-hours for duration_s of load,
 * their cost on-demand and on Spot (fargate_prices.h) and the exact RunTask requests start would send, the token redacted. cfg as for start (its
 * token is never printed). Returns 0, or start's errors with err saying what. */
int st_launch_ecs_dry_run(const st_launch_cfg *cfg, double duration_s, FILE *out, char *err,
                          size_t err_len);

#endif
