/*
 * stampede-agent: the load generator. Standalone, it runs a plan by itself and prints what it
 * measured; under a coordinator it registers and runs its share of a distributed run.
 */
#include "cli.h"
#include "clock.h"
#include "engine.h"
#include "error.h"
#include "exit_code.h"
#include "log.h"
#include "plan.h"
#include "remote.h"
#include "run.h"
#include "settings.h"
#include "summary.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t g_stop_signal = 0;

static void on_signal(int sig)
{
    g_stop_signal = sig;
}

typedef struct opts {
    const char *plan_file;
    const char *engine;
    const char *coordinator;
    const char *token;
    const char *name;
    st_plan_flags f;
    int json;
    int log_level; /* an st_log_level */
    int version, help;
    uint64_t seen; /* bit i: the flag of agent_settings[i] was given */
} opts;

/* The agent's own flags; the plan's come from st_plan_settings(). */
static const st_setting agent_settings[] = {
    {.flag = "plan", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "FILE",
     .help = "JSON plan: weighted requests, stages, settings (see README)",
     ST_SETTING_AT(opts, plan_file)},
    {.flag = "engine", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN | ST_SETTING_REMOTE,
     .arg = "NAME", .help = "auto (the default), curl, or fast (plain http:// to one origin)",
     ST_SETTING_AT(opts, engine)},
    {.flag = "json", .type = ST_SETTING_BOOL, .where = ST_SETTING_OWN,
     .help = "print the summary as JSON on stdout", ST_SETTING_AT(opts, json)},
    {.flag = "coordinator", .type = ST_SETTING_STRING,
     .where = ST_SETTING_OWN | ST_SETTING_REMOTE, .arg = "URL",
     .help = "join a distributed run: the coordinator (tcp://HOST:PORT) sends the plan and this "
             "agent's share",
     ST_SETTING_AT(opts, coordinator)},
    {.flag = "token", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN | ST_SETTING_REMOTE,
     .arg = "TOKEN", .help = "the run's token (or the STAMPEDE_TOKEN environment variable)",
     ST_SETTING_AT(opts, token)},
    {.flag = "name", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN | ST_SETTING_REMOTE,
     .arg = "NAME", .help = "this agent's name in reports (default HOST-PID)",
     ST_SETTING_AT(opts, name)},
    {.flag = "log-level", .type = ST_SETTING_ENUM, .where = ST_SETTING_OWN | ST_SETTING_REMOTE,
     .arg = "LEVEL", .choices = st_log_level_names, .has_def = true, .def = ST_LOG_INFO,
     .help = "debug, info, warn or error", ST_SETTING_AT(opts, log_level)},
    {.flag = "version", .type = ST_SETTING_BOOL, .where = ST_SETTING_OWN | ST_SETTING_STOP,
     .help = "print the version and exit", ST_SETTING_AT(opts, version)},
    {.flag = "help", .type = ST_SETTING_BOOL, .where = ST_SETTING_OWN | ST_SETTING_STOP,
     .help = "print this help and exit", ST_SETTING_AT(opts, help)},
};

#define FLAGS_MASK (ST_SETTING_AGENT | ST_SETTING_OWN)

static void groups_of(opts *o, st_settings_group g[2])
{
    g[0] = st_plan_flags_group(&o->f);
    g[1] = (st_settings_group){agent_settings, sizeof(agent_settings) / sizeof(agent_settings[0]),
                               o, &o->seen};
}

static void usage(FILE *f)
{
    opts o;
    st_settings_group g[2];
    memset(&o, 0, sizeof(o));
    st_plan_flags_init(&o.f);
    groups_of(&o, g);
    fprintf(f,
            "usage: stampede-agent --url URL --rate RPS --duration SECONDS [options]\n"
            "       stampede-agent --plan FILE [options]\n"
            "       stampede-agent --coordinator URL --token TOKEN [--name NAME] [--threads N]\n"
            "\n"
            "Sends HTTP requests open loop: request k leaves at the instant the rate profile's\n"
            "integral reaches k, and latency counts from that instant (coordinated omission\n"
            "corrected); the uncorrected latency is reported beside it.\n"
            "\n");
    st_settings_usage(f, g, 2, FLAGS_MASK, 22, 92);
    fprintf(f,
            "\n"
            "Exit codes: 0 the run completed (whatever the target answered), 1 the run could not\n"
            "be carried out, 2 bad flags or plan, 3 the coordinator refused this agent, 7 the\n"
            "coordinator could not be reached or went silent (the load stops within 3 s).\n");
}

/* Returns 0, 1 when --help or --version was given (o->help / o->version say which), or
 * ST_EINVAL / ST_ENOMEM (message in err). */
static int parse_args(int argc, char **argv, opts *o, char *err, size_t err_len)
{
    st_settings_group g[2];
    memset(o, 0, sizeof(*o));
    st_plan_flags_init(&o->f);
    groups_of(o, g);
    st_settings_defaults(g[1].rows, g[1].n, o, false);
    int first = argc;
    int rc = st_settings_parse_args(argc, argv, g, 2, FLAGS_MASK, "--help", &first, err, err_len);
    if (rc) {
        return rc;
    }
    if (first < argc) {
        snprintf(err, err_len, "unexpected argument \"%s\" (see --help)", argv[first]);
        return ST_EINVAL;
    }
    if (o->coordinator) {
        if ((rc = st_settings_check_only(g, 2, FLAGS_MASK, ST_SETTING_REMOTE, "--coordinator",
                                         "the plan comes from the coordinator", err, err_len))) {
            return rc;
        }
        if (!o->token) {
            o->token = getenv("STAMPEDE_TOKEN");
        }
        if (!o->token || !o->token[0]) {
            snprintf(err, err_len, "--token: a distributed run needs the run's token (--token or "
                                   "STAMPEDE_TOKEN)");
            return ST_EINVAL;
        }
    }
    return 0;
}

/* Plan file first, then flags over it. */
static int build_plan(const opts *o, st_plan *plan, char *err, size_t err_len)
{
    int rc;
    st_plan_init(plan);
    if (o->plan_file && (rc = st_plan_load_file(plan, o->plan_file, err, err_len))) {
        return rc;
    }
    if ((rc = st_plan_apply_flags(plan, &o->f, err, err_len))) {
        return rc;
    }
    return st_plan_finish(plan, st_cli_cpus(), err, err_len);
}

static int run_standalone(const st_plan *plan, const st_engine_ops *engine, int json)
{
    char err[512] = "";
    int rc, exit_code = 0;
    st_run *run = NULL;
    st_stats sec = {0}, total = {0};
    if (st_stats_init(&sec) || st_stats_init(&total)) {
        st_error("out of memory");
        exit_code = ST_EXIT_FAILURE;
        goto out;
    }
    if (plan->closed_loop) {
        st_info("closed loop for %.1f s against %s: engine %s, %d threads, %d connections",
                plan->duration_s, plan->requests[0].url, engine->name, plan->threads,
                plan->connections);
    } else {
        st_info("%.1f requests over %.1f s against %s%s: engine %s, %d threads, %d connections",
                plan->profile.total_n, plan->profile.total_s, plan->requests[0].url,
                plan->n_requests > 1 ? " and more" : "", engine->name, plan->threads,
                plan->connections);
    }
    /* A short lead lets every thread be waiting when the first request falls due. */
    uint64_t t0 = st_clock_mono_ns() + 50 * ST_NS_PER_MS;
    st_run_cfg cfg = {.plan = plan, .engine = engine, .slice = NULL, .t0_ns = t0};
    if ((rc = st_run_start(&run, &cfg, err, sizeof(err)))) {
        st_error("%s", err[0] ? err : st_strerror(rc));
        exit_code = rc == ST_EINVAL ? ST_EXIT_USAGE : ST_EXIT_FAILURE;
        goto out;
    }
    uint64_t stopped_at = 0;
    double duration_s = plan->closed_loop ? plan->duration_s : plan->profile.total_s;
    for (;;) {
        rc = st_run_next(run, &sec, st_clock_mono_ns() + 100 * ST_NS_PER_MS);
        if (rc == ST_ECLOSED) {
            break;
        }
        if (rc == ST_ETIMEDOUT) {
            if (g_stop_signal && !stopped_at) {
                st_info("signal %d: stopping, draining in-flight requests", (int)g_stop_signal);
                stopped_at = st_clock_mono_ns();
                st_run_stop(run);
            }
            continue;
        }
        double target = plan->closed_loop
                            ? 0
                            : st_profile_integral(&plan->profile, sec.second + 1.0) -
                                  st_profile_integral(&plan->profile, sec.second);
        /* The seconds after the end only hold the drain: shown when something finished in them. */
        if (sec.second < duration_s || st_counts_done(&sec.c) > 0) {
            char line[256];
            st_progress_format(line, sizeof(line), sec.second, target, &sec, -1);
            fprintf(stderr, "%s\n", line);
        }
        st_stats_merge(&total, &sec);
    }
    total.c.inflight = 0;
    double duration = duration_s;
    if (stopped_at) {
        double elapsed = (double)(stopped_at - t0) / 1e9;
        duration = elapsed < duration ? (elapsed > 0 ? elapsed : 0) : duration;
    }
    st_summary s = {
        .total = &total,
        .duration_s = duration,
        .target_requests = plan->closed_loop ? 0 : st_profile_integral(&plan->profile, duration),
        .closed_loop = plan->closed_loop,
    };
    st_summary_print(json ? stderr : stdout, &s);
    if (json) {
        cJSON *j = st_summary_json(&s);
        if (j) {
            cJSON_AddStringToObject(j, "engine", engine->name);
            cJSON_AddNumberToObject(j, "threads", plan->threads);
            cJSON_AddNumberToObject(j, "connections", plan->connections);
        }
        char *text = j ? cJSON_Print(j) : NULL;
        if (!text) {
            st_error("out of memory");
            exit_code = ST_EXIT_FAILURE;
        } else {
            printf("%s\n", text);
        }
        free(text);
        cJSON_Delete(j);
    }
out:
    st_run_free(run);
    st_stats_fini(&sec);
    st_stats_fini(&total);
    return exit_code;
}

int main(int argc, char **argv)
{
    opts o;
    char err[512] = "";
    st_log_init("stampede-agent", ST_LOG_INFO);
    int rc = parse_args(argc, argv, &o, err, sizeof(err));
    if (rc == 1 && o.version) {
        printf("stampede-agent %s\n", ST_VERSION);
        return ST_EXIT_OK;
    }
    if (rc == 1) {
        usage(stdout);
        return ST_EXIT_OK;
    }
    if (rc) {
        fprintf(stderr, "stampede-agent: %s\n", err);
        return rc == ST_EINVAL ? ST_EXIT_USAGE : ST_EXIT_FAILURE;
    }
    st_log_init("stampede-agent", (st_log_level)o.log_level);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (o.coordinator) {
        st_remote_opts ro = {
            .url = o.coordinator,
            .token = o.token,
            .name = o.name,
            .engine = o.engine,
            .threads = o.f.threads,
        };
        return st_remote_run(&ro, &g_stop_signal);
    }
    st_plan plan;
    if (build_plan(&o, &plan, err, sizeof(err))) {
        fprintf(stderr, "stampede-agent: %s\n", err[0] ? err : "invalid plan");
        st_plan_fini(&plan);
        return ST_EXIT_USAGE;
    }
    const st_engine_ops *engine;
    if (st_engine_choose(o.engine, &plan, &engine, err, sizeof(err))) {
        fprintf(stderr, "stampede-agent: %s\n", err);
        st_plan_fini(&plan);
        return ST_EXIT_USAGE;
    }
    int code = run_standalone(&plan, engine, o.json);
    st_plan_fini(&plan);
    return code;
}
