#include "run_flags.h"
#include "cli.h"
#include "engine.h"
#include "error.h"
#include "launch.h"
#include "launch_ecs.h"
#include "log.h"
#include "plan_cli.h"
#include "result_msg.h"
#include "run_id.h"
#include "server.h"
#include "taskmeta.h"
#include "tls.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* stampede run's own flags; the plan's come from st_plan_settings(). The ecs launcher's rows
 * also have a key: the plan's "ecs" object may set them, and their flags override it. */
#define ECS_ROW (ST_SETTING_OWN | ST_SETTING_FILE)
/* A price of the ecs cost estimate, in USD (fargate_prices.h). */
#define PRICE_ROW(name, member, text)                                                              \
    {.flag = name, .type = ST_SETTING_DOUBLE, .where = ST_SETTING_OWN, .arg = "USD", .min = 1e-9,  \
     .max = 1000, .help = text, ST_SETTING_AT(st_run_opts, member)}
static const st_setting run_settings[] = {
    {.flag = "launcher",
     .type = ST_SETTING_STRING,
     .where = ST_SETTING_OWN,
     .arg = "NAME",
     .has_def = true,
     .def_text = "local",
     .help = "where the agents run: local, on this machine; external: the run waits for "
             "agents started elsewhere with stampede-agent --coordinator; ecs: ECS Fargate tasks "
             "(see docs/ecs.md)",
     ST_SETTING_AT(st_run_opts, launcher)},
    {.flag = "listen",
     .type = ST_SETTING_STRING,
     .where = ST_SETTING_OWN,
     .arg = "URL",
     .help = "where agents reach the coordinator (default tcp://127.0.0.1:0 for local agents, "
             "tcp://0.0.0.0:7400 for external ones, tls+tcp://0.0.0.0:7400 for ecs)",
     ST_SETTING_AT(st_run_opts, listen)},
    {.flag = "run-id",
     .type = ST_SETTING_STRING,
     .where = ST_SETTING_OWN,
     .arg = "ID",
     .help = "the run's id, like 20261121T213500Z-3f9a1c2e (default: a new one); the launcher "
             "Lambda gives the id it answered with",
     ST_SETTING_AT(st_run_opts, run_id)},
    {.flag = "plan-env",
     .type = ST_SETTING_STRING,
     .where = ST_SETTING_OWN,
     .arg = "NAME",
     .help = "read the plan's JSON from the environment variable NAME instead of a PLAN file "
             "(how the launcher Lambda hands its plan to a coordinator task)",
     ST_SETTING_AT(st_run_opts, plan_env)},
    {.flag = "token",
     .type = ST_SETTING_STRING,
     .where = ST_SETTING_OWN,
     .arg = "TOKEN",
     .help = "the run token agents must present (default: a random one)",
     ST_SETTING_AT(st_run_opts, token)},
    {.flag = "tls-cert", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "FILE",
     .help = "with --listen tls+tcp://...: the self-signed PEM certificate agents pin (default: "
             "one made for the run)",
     ST_SETTING_AT(st_run_opts, tls_cert)},
    {.flag = "tls-key", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "FILE",
     .help = "the PEM private key of --tls-cert (never logged)",
     ST_SETTING_AT(st_run_opts, tls_key)},
    {.flag = "register-timeout",
     .type = ST_SETTING_DURATION,
     .where = ST_SETTING_OWN,
     .arg = "T",
     .max = ST_PROFILE_MAX_S,
     .help = "how long to wait for the agents to register (default 30 s, 180 s for ecs: Fargate "
             "tasks take tens of seconds to start)",
     ST_SETTING_AT(st_run_opts, register_timeout_s)},
    {.flag = "engine",
     .type = ST_SETTING_STRING,
     .where = ST_SETTING_OWN,
     .arg = "NAME",
     .help = "the agents' engine: auto, curl, fast, h2",
     ST_SETTING_AT(st_run_opts, engine)},
    {.flag = "summary",
     .type = ST_SETTING_STRING,
     .where = ST_SETTING_OWN,
     .arg = "FILE",
     .help = "write the summary as JSON",
     ST_SETTING_AT(st_run_opts, summary)},
    {.flag = "sqs-queue-url",
     .type = ST_SETTING_STRING,
     .where = ST_SETTING_OWN,
     .arg = "URL",
     .help = "send every second and the summary to this SQS queue (see docs/aws.md); messages "
             "SQS cannot take wait in the spool",
     ST_SETTING_AT(st_run_opts, sqs_queue_url)},
    {.flag = "spool",
     .type = ST_SETTING_STRING,
     .where = ST_SETTING_OWN,
     .arg = "DIR",
     .help = "the spool (default $XDG_STATE_HOME/stampede/spool, else "
             "~/.local/state/stampede/spool)",
     ST_SETTING_AT(st_run_opts, spool)},
    {.flag = "region",
     .type = ST_SETTING_STRING,
     .where = ST_SETTING_OWN,
     .arg = "R",
     .help = "AWS region (default AWS_REGION / AWS_DEFAULT_REGION, or the queue URL's)",
     ST_SETTING_AT(st_run_opts, region)},
    {.flag = "endpoint-url",
     .type = ST_SETTING_STRING,
     .where = ST_SETTING_OWN,
     .arg = "URL",
     .help = "SQS endpoint (default AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL), and ECS's with "
             "--launcher ecs (default AWS_ENDPOINT_URL_ECS)",
     ST_SETTING_AT(st_run_opts, endpoint_url)},
    {.flag = "timeseries",
     .type = ST_SETTING_STRING,
     .where = ST_SETTING_OWN,
     .arg = "FILE",
     .help = "write one JSON line per second",
     ST_SETTING_AT(st_run_opts, timeseries)},
    {.flag = "junit",
     .type = ST_SETTING_STRING,
     .where = ST_SETTING_OWN,
     .arg = "FILE",
     .help = "write the thresholds' verdicts as JUnit XML, for CI",
     ST_SETTING_AT(st_run_opts, junit)},
    {.flag = "report",
     .type = ST_SETTING_STRING,
     .where = ST_SETTING_OWN,
     .arg = "FILE",
     .help = "write a self-contained HTML report (charts, tables, thresholds; opens offline)",
     ST_SETTING_AT(st_run_opts, report)},
    {.flag = "baseline",
     .type = ST_SETTING_STRING,
     .where = ST_SETTING_OWN,
     .arg = "FILE|RUN_ID",
     .help = "compare with an earlier run: its --summary file, or with --baseline-table the run "
             "id whose summary stampede-sink stored; deltas in the summary and the report",
     ST_SETTING_AT(st_run_opts, baseline)},
    {.flag = "baseline-table",
     .type = ST_SETTING_STRING,
     .where = ST_SETTING_OWN,
     .arg = "TABLE",
     .help = "with --baseline RUN_ID: the DynamoDB table stampede-sink writes (its endpoint: "
             "AWS_ENDPOINT_URL_DYNAMODB, else AWS_ENDPOINT_URL; region as --region)",
     ST_SETTING_AT(st_run_opts, baseline_table)},
    {.flag = "max-regression",
     .type = ST_SETTING_LIST,
     .where = ST_SETTING_OWN,
     .arg = "EXPR",
     .help = "with --baseline: fail the run (exit 11) past this rise, e.g. 'p(99)+10%' or "
             "'error_rate+0.5pt' (README \"Baselines\"); repeatable",
     ST_SETTING_AT(st_run_opts, max_regression)},
    {.flag = "headless",
     .type = ST_SETTING_BOOL,
     .where = ST_SETTING_OWN,
     .help = "progress lines instead of the terminal UI (the default when stdout is not a "
             "terminal)",
     ST_SETTING_AT(st_run_opts, headless)},
    {.flag = "tui",
     .type = ST_SETTING_BOOL,
     .where = ST_SETTING_OWN,
     .help = "the terminal UI: watch the run and steer its rate (the default when stdout is a "
             "terminal)",
     ST_SETTING_AT(st_run_opts, tui)},
    {.flag = "dry-run",
     .type = ST_SETTING_BOOL,
     .where = ST_SETTING_OWN,
     .help = "check the plan, print what it would do, and exit",
     ST_SETTING_AT(st_run_opts, dry_run)},
    {.flag = "log-level",
     .type = ST_SETTING_ENUM,
     .where = ST_SETTING_OWN,
     .arg = "LEVEL",
     .choices = st_log_level_names,
     .has_def = true,
     .def = ST_LOG_INFO,
     .help = "debug, info, warn, error",
     ST_SETTING_AT(st_run_opts, log_level)},
    {.key = "cluster",
     .flag = "cluster",
     .type = ST_SETTING_STRING,
     .where = ECS_ROW,
     .arg = "NAME",
     .help = "ecs: the ECS cluster the agents' Fargate tasks run in",
     ST_SETTING_AT(st_run_opts, cluster)},
    {.key = "task_definition",
     .flag = "task-definition",
     .type = ST_SETTING_STRING,
     .where = ECS_ROW,
     .arg = "FAMILY[:REV]",
     .help = "ecs: the agents' task definition (its image runs "
             "stampede-agent with no arguments)",
     ST_SETTING_AT(st_run_opts, task_definition)},
    {.key = "subnets",
     .flag = "subnets",
     .type = ST_SETTING_STRING,
     .where = ECS_ROW,
     .arg = "ID,ID",
     .help = "ecs: the subnets of the tasks (awsvpc)",
     ST_SETTING_AT(st_run_opts, subnets)},
    {.key = "security_groups",
     .flag = "security-groups",
     .type = ST_SETTING_STRING,
     .where = ECS_ROW,
     .arg = "ID[,ID]",
     .help = "ecs: the tasks' security groups (up to 5)",
     ST_SETTING_AT(st_run_opts, security_groups)},
    {.key = "assign_public_ip",
     .flag = "assign-public-ip",
     .type = ST_SETTING_BOOL,
     .where = ECS_ROW,
     .help = "ecs: give each task a public IP (public subnets without a NAT, to pull the image)",
     ST_SETTING_AT(st_run_opts, assign_public_ip)},
    {.flag = "no-assign-public-ip",
     .type = ST_SETTING_BOOL,
     .where = ST_SETTING_OWN,
     .help = "ecs: no public IP (the default; the subnets need a NAT or VPC endpoints)",
     ST_SETTING_AT(st_run_opts, no_assign_public_ip)},
    {.key = "spot",
     .flag = "spot",
     .type = ST_SETTING_BOOL,
     .where = ECS_ROW,
     .help = "ecs: FARGATE_SPOT, falling back to FARGATE for the tasks Spot has no capacity for",
     ST_SETTING_AT(st_run_opts, spot)},
    {.key = "container",
     .flag = "container",
     .type = ST_SETTING_STRING,
     .where = ECS_ROW,
     .arg = "NAME",
     .help = "ecs: the container that runs stampede-agent (default: the task definition's only "
             "one)",
     ST_SETTING_AT(st_run_opts, container)},
    {.key = "cpu",
     .flag = "cpu",
     .type = ST_SETTING_INT,
     .where = ECS_ROW,
     .arg = "UNITS",
     .min = 256,
     .max = 16384,
     .help = "ecs: CPU units per task (1024 = 1 vCPU), with --memory; default: the "
             "task definition's",
     ST_SETTING_AT(st_run_opts, cpu_units)},
    {.key = "memory",
     .flag = "memory",
     .type = ST_SETTING_INT,
     .where = ECS_ROW,
     .arg = "MIB",
     .min = 512,
     .max = 122880,
     .help = "ecs: memory per task in MiB, with --cpu",
     ST_SETTING_AT(st_run_opts, memory_mib)},
    {.key = "advertise",
     .flag = "advertise",
     .type = ST_SETTING_STRING,
     .where = ECS_ROW,
     .arg = "tls+tcp://HOST:PORT",
     .help = "ecs: the address the agents dial, with --listen's scheme (default: on ECS, this "
             "task's private IPv4 and --listen's port; elsewhere required)",
     ST_SETTING_AT(st_run_opts, advertise)},
    PRICE_ROW("price-vcpu-hour", price_vcpu_hour,
              "ecs: the Fargate price per vCPU-hour for the cost estimate, with --price-gb-hour "
              "(default: a dated table, see docs/ecs.md)"),
    PRICE_ROW("price-gb-hour", price_gb_hour,
              "ecs: the Fargate price per GB-hour of memory, with --price-vcpu-hour"),
    {.flag = "help",
     .type = ST_SETTING_BOOL,
     .where = ST_SETTING_OWN | ST_SETTING_STOP,
     .help = "print this help and exit",
     ST_SETTING_AT(st_run_opts, help)},
};

#define N_RUN_SETTINGS (sizeof(run_settings) / sizeof(run_settings[0]))
#define FLAGS_MASK     (ST_SETTING_RUN | ST_SETTING_OWN)

const st_setting *st_run_settings(size_t *n)
{
    *n = N_RUN_SETTINGS;
    return run_settings;
}

bool st_run_flags_given(const st_run_opts *o, const char *flag)
{
    const st_setting *s = st_settings_find_flag(run_settings, N_RUN_SETTINGS, flag, ST_SETTING_OWN);
    return s && (o->seen & ((uint64_t)1 << (s - run_settings)));
}

static const char run_usage[] =
    "usage: stampede run [PLAN.json] [--url URL --rate RPS --duration TIME] [options]\n"
    "\n"
    "Splits the load across agents, starts them at one instant, merges what they measure\n"
    "every second, and writes the results. Flags override the plan.\n"
    "\n";

static const char run_exit_codes[] =
    "Exit codes: 0 completed, 1 runtime failure (a --summary or --timeseries file that\n"
    "could not be written included), 2 bad flags or plan, 3 AWS credentials missing or\n"
    "expired (nothing was started), 4 completed but results wait in the spool, 6 the\n"
    "agents did not all register in time, 8 stopped early by a signal (the summary is\n"
    "still written), 9 degraded (agents lost or seconds incomplete), 10 result messages\n"
    "lost (neither sent to SQS nor spooled), 11 thresholds or regression limits failed.\n"
    "With --launcher ecs also: 2 parameters ECS refused, 3 access denied (the message\n"
    "names the IAM action), 5 no such cluster or task definition, 6 no capacity, a\n"
    "quota reached, or a task that stopped before its agent registered.\n";

static const st_plan_cli run_cli = {run_settings, N_RUN_SETTINGS, FLAGS_MASK, "stampede run --help",
                                    run_usage, 25, run_exit_codes};

void st_run_flags_usage(FILE *f)
{
    st_plan_cli_usage(&run_cli, f);
}

/* The ecs flags: only with --launcher ecs, and then the ones it needs. */
static int check_ecs_flags(const st_run_opts *o, bool ecs, char *err, size_t err_len)
{
    static const char *const only_ecs[] = {"cluster", "task-definition", "subnets",
                                           "security-groups", "assign-public-ip",
                                           "no-assign-public-ip", "spot", "container", "cpu",
                                           "memory", "advertise", "price-vcpu-hour",
                                           "price-gb-hour"};
    for (size_t i = 0; !ecs && i < sizeof(only_ecs) / sizeof(only_ecs[0]); i++) {
        if (st_run_flags_given(o, only_ecs[i])) {
            snprintf(err, err_len, "--%s goes with --launcher ecs", only_ecs[i]);
            return ST_EINVAL;
        }
    }
    return 0;
}

/* The default --advertise of a coordinator that runs as an ECS task itself: --listen's scheme and
 * port at its task's private IPv4 (aws/taskmeta.h). ST_ENOTFOUND when not on ECS. */
static int advertise_from_task(st_run_opts *o, char *err, size_t err_len)
{
    const char *meta = getenv(ST_TASKMETA_ENV);
    if (!meta || !meta[0]) {
        return ST_ENOTFOUND;
    }
    const char *sep = strstr(o->listen, "://"), *colon = strrchr(o->listen, ':');
    if (!sep || !colon || colon < sep + 3 || strcmp(colon + 1, "0") == 0) {
        snprintf(err, err_len,
                 "--listen %s: its port is chosen when listening, so it cannot be advertised from "
                 "the task metadata: give a port, or --advertise",
                 o->listen);
        return ST_EINVAL;
    }
    st_taskmeta m = {0};
    char why[512];
    int rc = st_taskmeta_get(NULL, 0, &m, why, sizeof(why));
    if (rc) {
        snprintf(err, err_len,
                 "--launcher ecs without --advertise: %s is set, but this task's address cannot "
                 "be read (%s): give --advertise",
                 ST_TASKMETA_ENV, why);
        return rc == ST_ENOMEM ? rc : ST_EINVAL;
    }
    snprintf(o->advertise_buf, sizeof(o->advertise_buf), "%.*s%s%s", (int)(sep + 3 - o->listen),
             o->listen, m.ipv4, colon);
    st_taskmeta_fini(&m);
    o->advertise = o->advertise_buf;
    st_info("agents dial %s: this task's private address (its task metadata) and --listen's port",
            o->advertise);
    return 0;
}

/* What --launcher ecs needs, from the flags and the plan's "ecs" object. */
static int check_ecs(st_run_opts *o, char *err, size_t err_len)
{
    const char *missing = !o->cluster           ? "--cluster NAME"
                          : !o->task_definition ? "--task-definition FAMILY[:REV]"
                          : !o->subnets         ? "--subnets ID,ID"
                          : !o->security_groups ? "--security-groups ID[,ID]"
                                                : NULL;
    if (missing) {
        snprintf(err, err_len, "--launcher ecs needs %s (or its key in the plan's \"ecs\")",
                 missing);
        return ST_EINVAL;
    }
    bool tls = st_tls_url_is_tls(o->listen);
    int rc;
    if (!o->advertise && (rc = advertise_from_task(o, err, err_len)) != ST_ENOTFOUND) {
        if (rc) {
            return rc;
        }
    }
    if (!o->advertise) {
        snprintf(err, err_len,
                 "--launcher ecs needs --advertise %s://HOST:PORT: the agents run as tasks in the "
                 "VPC and dial the coordinator there, and which address of this machine they can "
                 "reach (a private IP, a load balancer, a NAT'd port) is not known here (a "
                 "coordinator running on ECS itself uses its own task's address)",
                 tls ? "tls+tcp" : "tcp");
        return ST_EINVAL;
    }
    if (st_tls_url_is_tls(o->advertise) != tls) {
        snprintf(err, err_len,
                 "--advertise %s: the coordinator listens on %s, so the agents must dial %s too",
                 o->advertise, o->listen, tls ? "tls+tcp://" : "plain tcp:// (no tls+)");
        return ST_EINVAL;
    }
    if (!tls) {
        st_warn("--listen %s: the control channel of the ecs tasks is plaintext, so the run token "
                "travels in clear across the network (tls+tcp:// is the default for ecs)",
                o->listen);
    }
    if ((rc = st_server_check_url(o->advertise, err, err_len)) ||
        (rc = st_launch_ecs_check_list("subnets", o->subnets, "subnet-", 16, err, err_len)) ||
        (rc = st_launch_ecs_check_list("security-groups", o->security_groups, "sg-", 5, err,
                                       err_len))) {
        return rc;
    }
    if (o->assign_public_ip && o->no_assign_public_ip) {
        snprintf(err, err_len, "--assign-public-ip and --no-assign-public-ip: one or the other");
        return ST_EINVAL;
    }
    if ((o->price_vcpu_hour > 0) != (o->price_gb_hour > 0)) {
        snprintf(err, err_len, "--price-vcpu-hour and --price-gb-hour go together (USD, e.g. "
                               "--price-vcpu-hour 0.04048 --price-gb-hour 0.004445)");
        return ST_EINVAL;
    }
    if ((o->cpu_units > 0) != (o->memory_mib > 0)) {
        snprintf(err, err_len, "--cpu and --memory go together (a Fargate task size, e.g. --cpu "
                               "1024 --memory 2048)");
        return ST_EINVAL;
    }
    return 0;
}

int st_run_flags_parse(int argc, char **argv, st_run_opts *o, char *err, size_t err_len)
{
    st_settings_group g[2];
    memset(o, 0, sizeof(*o));
    int optind_first = argc;
    int rc =
        st_plan_cli_parse(&run_cli, argc, argv, &o->f, o, &o->seen, g, &optind_first, err, err_len);
    if (rc) {
        return rc;
    }
    if (optind_first < argc) {
        o->plan_file = argv[optind_first++];
    }
    if (optind_first < argc) {
        snprintf(err, err_len, "unexpected argument \"%s\" (one plan file at most)",
                 argv[optind_first]);
        return ST_EINVAL;
    }
    if (o->plan_file && o->plan_env) {
        snprintf(err, err_len, "--plan-env %s and the plan file %s: one plan or the other",
                 o->plan_env, o->plan_file);
        return ST_EINVAL;
    }
    char why[256];
    if (o->run_id && !st_run_id_check(o->run_id, why, sizeof(why))) {
        snprintf(err, err_len, "--run-id \"%.40s\": %s", o->run_id, why);
        return ST_EINVAL;
    }
    if (!st_launcher_find(o->launcher)) {
        snprintf(err, err_len, "--launcher: \"%s\" is not a launcher (local, external or ecs)", o->launcher);
        return ST_EINVAL;
    }
    if (o->engine && strcmp(o->engine, "auto") && strcmp(o->engine, "curl") && strcmp(o->engine, "fast") &&
        strcmp(o->engine, "h2")) {
        snprintf(err, err_len, "--engine: \"%s\" is not an engine (auto, curl, fast or h2)", o->engine);
        return ST_EINVAL;
    }
    if (o->tui && o->headless) {
        snprintf(err, err_len, "--tui and --headless: one terminal view at most");
        return ST_EINVAL;
    }
    bool ecs = strcmp(o->launcher, "ecs") == 0;
    if ((rc = check_ecs_flags(o, ecs, err, err_len))) {
        return rc;
    }
    if (o->register_timeout_s <= 0) {
        o->register_timeout_s = ecs ? 180 : 30;
    }
    if (ecs && !o->listen) {
        o->listen = "tls+tcp://0.0.0.0:7400"; /* the tasks dial across the VPC */
    }
    if (o->spool && !o->sqs_queue_url) {
        snprintf(err, err_len, "--spool goes with --sqs-queue-url");
        return ST_EINVAL;
    }
    if (o->baseline_table && !o->baseline) {
        snprintf(err, err_len, "--baseline-table goes with --baseline RUN_ID");
        return ST_EINVAL;
    }
    if (o->baseline_table && !st_result_run_id_valid(o->baseline)) {
        snprintf(err, err_len,
                 "--baseline \"%s\": with --baseline-table it is a run id (1 to 64 characters "
                 "of A-Z a-z 0-9 . _ -)",
                 o->baseline);
        return ST_EINVAL;
    }
    if (o->endpoint_url && !o->sqs_queue_url && !ecs) {
        snprintf(err, err_len, "--endpoint-url goes with --sqs-queue-url or --launcher ecs");
        return ST_EINVAL;
    }
    if (o->region && !o->sqs_queue_url && !ecs && !o->baseline_table) {
        snprintf(err, err_len, "%s goes with --sqs-queue-url",
                 o->region ? "--region" : "--endpoint-url");
        return ST_EINVAL;
    }
    if (o->token && (strlen(o->token) < 8 || strlen(o->token) > 256)) {
        snprintf(err, err_len, "--token: from 8 to 256 characters");
        return ST_EINVAL;
    }
    if (o->listen && (rc = st_server_check_url(o->listen, err, err_len))) {
        return rc;
    }
    if ((o->tls_cert || o->tls_key) &&
        (!o->tls_cert || !o->tls_key || !st_tls_url_is_tls(o->listen))) {
        snprintf(err, err_len,
                 "--tls-cert and --tls-key go together, with --listen tls+tcp://HOST:PORT");
        return ST_EINVAL;
    }
    return 0;
}

/* --plan-env NAME: the plan is the variable's JSON, the flags over it. */
static int plan_from_env(st_plan *plan, const char *name, const st_plan_flags *f, char *err,
                         size_t err_len)
{
    st_plan_init(plan);
    const char *text = getenv(name);
    if (!text || !*text) {
        snprintf(err, err_len, "--plan-env %s: the environment has no %s (or it is empty)", name,
                 name);
        return ST_EINVAL;
    }
    char origin[160];
    snprintf(origin, sizeof(origin), "the plan in %s", name);
    int rc = st_plan_parse(plan, text, strlen(text), origin, err, err_len);
    return rc ? rc : st_plan_apply_flags(plan, f, err, err_len);
}

int st_run_flags_plan(const st_run_opts *o, st_plan *plan, int *agents, int *plan_threads,
                      char *err, size_t err_len)
{
    int rc;
    if (o->plan_env) {
        rc = plan_from_env(plan, o->plan_env, &o->f, err, err_len);
    } else {
        rc = st_plan_cli_plan(plan, o->plan_file, &o->f, err, err_len);
    }
    if (rc) {
        return rc;
    }
    bool local = strcmp(o->launcher, "local") == 0;
    int n = plan->agents > 0 ? plan->agents : 1;
    bool threads_given = plan->threads > 0;
    int local_threads = st_cli_cpus() / n > 0 ? st_cli_cpus() / n : 1;
    if ((rc = st_plan_finish(plan, local ? local_threads : st_cli_cpus(), err, err_len))) {
        return rc;
    }
    /* The agents choose their engine as stampede-agent does: one they cannot use is refused
     * here, before anything starts (and in --dry-run), not by every agent at the start. */
    const st_engine_ops *engine;
    if ((rc = st_engine_choose(o->engine, plan, &engine, err, err_len))) {
        return rc;
    }
    *agents = n;
    *plan_threads = threads_given || local ? plan->threads : 0;
    return 0;
}

int st_run_flags_ecs(st_run_opts *o, const st_plan *plan, char *err, size_t err_len)
{
    if (strcmp(o->launcher, "ecs") != 0) {
        return 0;
    }
    const char *origin = o->plan_file ? o->plan_file : "the plan";
    for (const cJSON *it = plan->ecs ? plan->ecs->child : NULL; it; it = it->next) {
        const st_setting *s = st_settings_find_key(run_settings, N_RUN_SETTINGS, it->string);
        if (!s || !(s->where & ST_SETTING_FILE)) {
            char keys[512];
            st_settings_list_keys(run_settings, N_RUN_SETTINGS, ST_SETTING_FILE, false, keys,
                                  sizeof(keys));
            snprintf(err, err_len, "%s: $.ecs.%s: unknown key (the ecs settings are %s)", origin,
                     it->string, keys);
            return ST_EINVAL;
        }
        if ((o->seen & ((uint64_t)1 << (s - run_settings))) ||
            (strcmp(s->key, "assign_public_ip") == 0 && o->no_assign_public_ip)) {
            continue; /* the flag overrides the plan */
        }
        char why[256];
        if (st_setting_from_json(s, it, (char *)o + s->offset, why, sizeof(why))) {
            snprintf(err, err_len, "%s: $.ecs.%s: %s", origin, it->string, why);
            return ST_EINVAL;
        }
    }
    return check_ecs(o, err, err_len);
}
