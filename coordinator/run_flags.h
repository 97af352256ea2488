/*
 * run_flags.h - stampede run's command line: its own flags (one table, see settings.h), the
 * plan's flags, and the checked plan they make.
 *
 * coordinator/cmd_run.c calls these; so do the fuzzer of the flag parsers
 * (fuzz/fuzz_plan_flags.c) and the tests. Everything a --dry-run can know is checked here, so
 * that a run which passes --dry-run does not then fail for its flags or plan: the flags' values,
 * the --listen URL's form, the plan, and whether the agents' --engine can send it.
 *
 * Threading: st_run_flags_parse uses getopt's globals (one thread at a time); the rest is
 * thread-safe. Strings in st_run_opts are borrowed from argv.
 */
#ifndef ST_RUN_FLAGS_H
#define ST_RUN_FLAGS_H

#include "plan.h"
#include "settings.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct st_run_opts {
    const char *plan_file;
    const char *plan_env; /* --plan-env NAME: the plan's JSON is NAME's value */
    const char *run_id;   /* --run-id: checked to have st_run_id_check's form */
    st_plan_flags f;
    const char *launcher;
    const char *listen;
    const char *token;
    const char *tls_cert;
    const char *tls_key;
    const char *summary;
    const char *timeseries;
    const char *junit;
    const char *report;
    const char *baseline;           /* --baseline OLD_SUMMARY.json, or a run id with: */
    const char *baseline_table;     /* --baseline-table TABLE */
    st_setting_list max_regression; /* --max-regression EXPR, repeatable */
    const char *engine;
    const char *sqs_queue_url;
    const char *spool;
    const char *region;
    const char *endpoint_url;
    double register_timeout_s;
    /* --launcher ecs (launch_ecs.h) */
    const char *cluster, *task_definition, *subnets, *security_groups, *container, *advertise;
    int assign_public_ip, no_assign_public_ip, spot;
    int cpu_units, memory_mib; /* 0: not given */
    double price_vcpu_hour, price_gb_hour; /* 0: the Fargate price table's */
    char advertise_buf[96];    /* --advertise read from the task metadata */
    int headless;
    int tui; /* --tui (with --headless: refused) */
    int dry_run;
    int log_level; /* an st_log_level */
    int help;
    uint64_t seen; /* bit i: the flag of st_run_settings()[i] was given */
} st_run_opts;


/* stampede run's own flags (the plan's are st_plan_settings()); *n gets the number of rows. */
const st_setting *st_run_settings(size_t *n);

/* Parses argv into *o (zeroed first, defaults filled); the one operand is the plan file. Returns
 * 0; 1 when --help was given (nothing after it is read; the caller prints the usage); ST_EINVAL
 * (message naming the flag in err) or ST_ENOMEM. */
int st_run_flags_parse(int argc, char **argv, st_run_opts *o, char *err, size_t err_len);

/* Whether the flag (no dashes) of st_run_settings() was on the command line. */
bool st_run_flags_given(const st_run_opts *o, const char *flag);

/* The usage text, flags from the tables. */
void st_run_flags_usage(FILE *f);

/* The run's plan: o->plan_file or the plan in the environment variable o->plan_env first (if any), the flags over it, finished with the threads the
 * launcher implies, and checked against the agents' --engine. Initialises *plan; the caller finis
 * it, also on error. On 0 *agents gets the number of agents and *plan_threads the threads each
 * agent is told to use (0: each its own CPUs). Returns 0, ST_EINVAL (message names the flag, file
 * or JSON path), ST_ENOTFOUND / ST_EIO (the plan file cannot be read) or ST_ENOMEM. */
int st_run_flags_plan(const st_run_opts *o, st_plan *plan, int *agents, int *plan_threads,
                      char *err, size_t err_len);

/* With --launcher ecs: the plan's "ecs" settings (plan->ecs, from st_run_flags_plan) where no
 * flag gave them, then what the launcher needs (--cluster, --task-definition, --subnets,
 * --security-groups, --advertise; lists of ids; --cpu with --memory). Without --advertise, a
 * coordinator on ECS (ECS_CONTAINER_METADATA_URI_V4 set) advertises its own task's private IPv4
 * with --listen's scheme and port (one GET of the task metadata); --advertise's scheme must be
 * --listen's (tls+ or not), and a plaintext --listen is warned about. Strings taken from the plan
 * are borrowed from it. Returns 0 (at once for the other launchers), or ST_EINVAL with a
 * message naming the flag, or the plan file and its JSON path. */
int st_run_flags_ecs(st_run_opts *o, const st_plan *plan, char *err, size_t err_len);

#endif
