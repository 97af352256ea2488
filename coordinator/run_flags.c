#include "run_flags.h"
#include "cli.h"
#include "engine.h"
#include "error.h"
#include "launch.h"
#include "log.h"
#include "plan_cli.h"
#include "server.h"

#include <stdlib.h>
#include <string.h>

/* stampede run's own flags; the plan's come from st_plan_settings(). */
static const st_setting run_settings[] = {
    {.flag = "launcher", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "NAME",
     .has_def = true, .def_text = "local",
     .help = "where the agents run: local, on this machine, or external: the run waits for "
             "agents started elsewhere with stampede-agent --coordinator",
     ST_SETTING_AT(st_run_opts, launcher)},
    {.flag = "listen", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "URL",
     .help = "where agents reach the coordinator (default tcp://127.0.0.1:0 for local agents, "
             "tcp://0.0.0.0:7400 for external ones)",
     ST_SETTING_AT(st_run_opts, listen)},
    {.flag = "token", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "TOKEN",
     .help = "the run token agents must present (default: a random one)",
     ST_SETTING_AT(st_run_opts, token)},
    {.flag = "register-timeout", .type = ST_SETTING_DURATION, .where = ST_SETTING_OWN,
     .arg = "T", .max = ST_PROFILE_MAX_S, .has_def = true, .def = 30,
     .help = "how long to wait for the agents to register",
     ST_SETTING_AT(st_run_opts, register_timeout_s)},
    {.flag = "engine", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "NAME",
     .help = "the agents' engine: auto, curl, fast", ST_SETTING_AT(st_run_opts, engine)},
    {.flag = "summary", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "FILE",
     .help = "write the summary as JSON", ST_SETTING_AT(st_run_opts, summary)},
    {.flag = "sqs-queue-url", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "URL",
     .help = "send every second and the summary to this SQS queue (see docs/aws.md); messages "
             "SQS cannot take wait in the spool",
     ST_SETTING_AT(st_run_opts, sqs_queue_url)},
    {.flag = "spool", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "DIR",
     .help = "the spool (default $XDG_STATE_HOME/stampede/spool, else "
             "~/.local/state/stampede/spool)",
     ST_SETTING_AT(st_run_opts, spool)},
    {.flag = "region", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "R",
     .help = "AWS region (default AWS_REGION / AWS_DEFAULT_REGION, or the queue URL's)",
     ST_SETTING_AT(st_run_opts, region)},
    {.flag = "endpoint-url", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "URL",
     .help = "SQS endpoint (default AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL)",
     ST_SETTING_AT(st_run_opts, endpoint_url)},
    {.flag = "timeseries", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "FILE",
     .help = "write one JSON line per second", ST_SETTING_AT(st_run_opts, timeseries)},
    {.flag = "junit", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "FILE",
     .help = "write the thresholds' verdicts as JUnit XML, for CI",
     ST_SETTING_AT(st_run_opts, junit)},
    /* Progress lines are the only terminal view so far: --headless is accepted and changes
     * nothing yet. */
    {.flag = "headless", .type = ST_SETTING_BOOL, .where = ST_SETTING_OWN,
     .help = "progress lines instead of the terminal UI (the default when stdout is not a "
             "terminal)",
     ST_SETTING_AT(st_run_opts, headless)},
    {.flag = "dry-run", .type = ST_SETTING_BOOL, .where = ST_SETTING_OWN,
     .help = "check the plan, print what it would do, and exit", ST_SETTING_AT(st_run_opts, dry_run)},
    {.flag = "log-level", .type = ST_SETTING_ENUM, .where = ST_SETTING_OWN, .arg = "LEVEL",
     .choices = st_log_level_names, .has_def = true, .def = ST_LOG_INFO,
     .help = "debug, info, warn, error", ST_SETTING_AT(st_run_opts, log_level)},
    {.flag = "help", .type = ST_SETTING_BOOL, .where = ST_SETTING_OWN | ST_SETTING_STOP,
     .help = "print this help and exit", ST_SETTING_AT(st_run_opts, help)},
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
    "lost (neither sent to SQS nor spooled), 11 thresholds failed.\n";

static const st_plan_cli run_cli = {run_settings, N_RUN_SETTINGS, FLAGS_MASK, "stampede run --help",
                                    run_usage, 25, run_exit_codes};

void st_run_flags_usage(FILE *f)
{
    st_plan_cli_usage(&run_cli, f);
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
    if (!st_launcher_find(o->launcher)) {
        snprintf(err, err_len, "--launcher: \"%s\" is not a launcher (local or external)", o->launcher);
        return ST_EINVAL;
    }
    if (o->engine && strcmp(o->engine, "auto") && strcmp(o->engine, "curl") && strcmp(o->engine, "fast")) {
        snprintf(err, err_len, "--engine: \"%s\" is not an engine (auto, curl or fast)", o->engine);
        return ST_EINVAL;
    }
    if ((o->spool || o->region || o->endpoint_url) && !o->sqs_queue_url) {
        snprintf(err, err_len, "%s goes with --sqs-queue-url",
                 o->spool ? "--spool" : o->region ? "--region" : "--endpoint-url");
        return ST_EINVAL;
    }
    if (o->token && (strlen(o->token) < 8 || strlen(o->token) > 256)) {
        snprintf(err, err_len, "--token: from 8 to 256 characters");
        return ST_EINVAL;
    }
    if (o->listen && (rc = st_server_check_url(o->listen, err, err_len))) {
        return rc;
    }
    return 0;
}

int st_run_flags_plan(const st_run_opts *o, st_plan *plan, int *agents, int *plan_threads,
                      char *err, size_t err_len)
{
    int rc;
    if ((rc = st_plan_cli_plan(plan, o->plan_file, &o->f, err, err_len))) {
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
