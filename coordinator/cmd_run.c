/*
 * stampede run: the distributed run. Parses the plan and flags, listens for agents, launches them,
 * drives the coordinator core, and feeds the outputs.
 */
#include "cli.h"
#include "clock.h"
#include "commands.h"
#include "coord.h"
#include "error.h"
#include "exit_code.h"
#include "launch.h"
#include "log.h"
#include "output.h"
#include "plan.h"
#include "server.h"
#include "settings.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define MAX_OUTPUTS 8

static volatile sig_atomic_t g_signals = 0;
static int g_exit_code;

static void *close_watchdog(void *arg)
{
    (void)arg;
    sleep(10);
    st_error("closing the agents' socket has taken 10 s: leaving without waiting for it");
    _exit(g_exit_code);
}

static void on_signal(int sig)
{
    (void)sig;
    g_signals++;
}

typedef struct run_opts {
    const char *plan_file;
    st_plan_flags f;
    const char *launcher;
    const char *listen;
    const char *token;
    const char *summary;
    const char *timeseries;
    const char *engine;
    const char *sqs_queue_url;
    const char *spool;
    const char *region;
    const char *endpoint_url;
    double register_timeout_s;
    int headless;
    int dry_run;
    int log_level; /* an st_log_level */
    int help;
} run_opts;

/* stampede run's own flags; the plan's come from st_plan_settings(). */
static const st_setting run_settings[] = {
    {.flag = "launcher", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "NAME",
     .has_def = true, .def_text = "local",
     .help = "where the agents run: local, on this machine, or external: the run waits for "
             "agents started elsewhere with stampede-agent --coordinator",
     ST_SETTING_AT(run_opts, launcher)},
    {.flag = "listen", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "URL",
     .help = "where agents reach the coordinator (default tcp://127.0.0.1:0 for local agents, "
             "tcp://0.0.0.0:7400 for external ones)",
     ST_SETTING_AT(run_opts, listen)},
    {.flag = "token", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "TOKEN",
     .help = "the run token agents must present (default: a random one)",
     ST_SETTING_AT(run_opts, token)},
    {.flag = "register-timeout", .type = ST_SETTING_DURATION, .where = ST_SETTING_OWN,
     .arg = "T", .max = ST_PROFILE_MAX_S, .has_def = true, .def = 30,
     .help = "how long to wait for the agents to register",
     ST_SETTING_AT(run_opts, register_timeout_s)},
    {.flag = "engine", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "NAME",
     .help = "the agents' engine: auto, curl, fast", ST_SETTING_AT(run_opts, engine)},
    {.flag = "summary", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "FILE",
     .help = "write the summary as JSON", ST_SETTING_AT(run_opts, summary)},
    {.flag = "sqs-queue-url", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "URL",
     .help = "send every second and the summary to this SQS queue (see docs/aws.md); messages "
             "SQS cannot take wait in the spool",
     ST_SETTING_AT(run_opts, sqs_queue_url)},
    {.flag = "spool", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "DIR",
     .help = "the spool (default $XDG_STATE_HOME/stampede/spool, else "
             "~/.local/state/stampede/spool)",
     ST_SETTING_AT(run_opts, spool)},
    {.flag = "region", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "R",
     .help = "AWS region (default AWS_REGION / AWS_DEFAULT_REGION, or the queue URL's)",
     ST_SETTING_AT(run_opts, region)},
    {.flag = "endpoint-url", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "URL",
     .help = "SQS endpoint (default AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL)",
     ST_SETTING_AT(run_opts, endpoint_url)},
    {.flag = "timeseries", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "FILE",
     .help = "write one JSON line per second", ST_SETTING_AT(run_opts, timeseries)},
    /* Progress lines are the only terminal view so far: --headless is accepted and changes
     * nothing yet. */
    {.flag = "headless", .type = ST_SETTING_BOOL, .where = ST_SETTING_OWN,
     .help = "progress lines instead of the terminal UI (the default when stdout is not a "
             "terminal)",
     ST_SETTING_AT(run_opts, headless)},
    {.flag = "dry-run", .type = ST_SETTING_BOOL, .where = ST_SETTING_OWN,
     .help = "check the plan, print what it would do, and exit", ST_SETTING_AT(run_opts, dry_run)},
    {.flag = "log-level", .type = ST_SETTING_ENUM, .where = ST_SETTING_OWN, .arg = "LEVEL",
     .choices = st_log_level_names, .has_def = true, .def = ST_LOG_INFO,
     .help = "debug, info, warn, error", ST_SETTING_AT(run_opts, log_level)},
    {.flag = "help", .type = ST_SETTING_BOOL, .where = ST_SETTING_OWN | ST_SETTING_STOP,
     .help = "print this help and exit", ST_SETTING_AT(run_opts, help)},
};

#define N_RUN_SETTINGS (sizeof(run_settings) / sizeof(run_settings[0]))
#define FLAGS_MASK     (ST_SETTING_RUN | ST_SETTING_OWN)

/* The groups of o's flags; seen[1] records which of run_settings were given. */
static void groups_of(run_opts *o, uint64_t *seen, st_settings_group g[2])
{
    g[0] = st_plan_flags_group(&o->f);
    g[1] = (st_settings_group){run_settings, N_RUN_SETTINGS, o, seen};
}

/* Whether the flag of run_settings was on the command line. */
static bool given(uint64_t seen, const char *flag)
{
    const st_setting *s = st_settings_find_flag(run_settings, N_RUN_SETTINGS, flag, ST_SETTING_OWN);
    return s && (seen & ((uint64_t)1 << (s - run_settings)));
}

static void usage(FILE *f)
{
    run_opts o;
    uint64_t seen = 0;
    st_settings_group g[2];
    memset(&o, 0, sizeof(o));
    st_plan_flags_init(&o.f);
    groups_of(&o, &seen, g);
    fprintf(f,
            "usage: stampede run [PLAN.json] [--url URL --rate RPS --duration TIME] [options]\n"
            "\n"
            "Splits the load across agents, starts them at one instant, merges what they measure\n"
            "every second, and writes the results. Flags override the plan.\n"
            "\n");
    st_settings_usage(f, g, 2, FLAGS_MASK, 25, 92);
    fprintf(f,
            "\n"
            "Exit codes: 0 completed, 1 runtime failure, 2 bad flags or plan, 3 AWS credentials\n"
            "missing or expired (nothing was started), 4 completed but results wait in the spool,\n"
            "6 the agents did not all register in time, 8 stopped early by a signal (the summary\n"
            "is still written).\n");
}

/* Returns 0, 1 after printing the help, or ST_EINVAL / ST_ENOMEM (message in err). */
static int parse(int argc, char **argv, run_opts *o, uint64_t *seen, char *err, size_t err_len)
{
    st_settings_group g[2];
    memset(o, 0, sizeof(*o));
    st_plan_flags_init(&o->f);
    *seen = 0;
    groups_of(o, seen, g);
    st_settings_defaults(g[1].rows, g[1].n, o, false);
    int optind_first = argc;
    int rc = st_settings_parse_args(argc, argv, g, 2, FLAGS_MASK, "stampede run --help",
                                    &optind_first, err, err_len);
    if (rc == 1) {
        usage(stdout);
        return 1;
    }
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
    return 0;
}

static void random_hex(char *out, size_t bytes)
{
    unsigned char buf[32];
    if (bytes > sizeof(buf)) {
        bytes = sizeof(buf);
    }
    if (getrandom(buf, bytes, 0) != (ssize_t)bytes) {
        uint64_t x = st_clock_wall_ns() ^ ((uint64_t)getpid() << 32);
        for (size_t i = 0; i < bytes; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            buf[i] = (unsigned char)(x >> 56);
        }
    }
    for (size_t i = 0; i < bytes; i++) {
        sprintf(out + 2 * i, "%02x", buf[i]);
    }
}

/* run ids sort by time and stay unique: 20261121T213500Z-3f9a1c2e */
static void make_run_id(char *out, size_t len)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char rnd[9];
    random_hex(rnd, 4);
    char stamp[32];
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(out, len, "%s-%s", stamp, rnd);
}

/* The URL agents dial: the listen URL with the real port, and a reachable host for wildcards. */
static void agent_url(const char *listen, int port, char *out, size_t len)
{
    const char *host_start = strstr(listen, "://");
    host_start = host_start ? host_start + 3 : listen;
    char scheme[32];
    snprintf(scheme, sizeof(scheme), "%.*s", (int)(host_start - listen), listen);
    char host[256];
    const char *colon = strrchr(host_start, ':');
    snprintf(host, sizeof(host), "%.*s", colon ? (int)(colon - host_start) : (int)strlen(host_start),
             host_start);
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0 || host[0] == 0) {
        if (gethostname(host, sizeof(host) - 1) != 0) {
            snprintf(host, sizeof(host), "127.0.0.1");
        }
    }
    snprintf(out, len, "%s%s:%d", scheme, host, port);
}

static void print_plan(const st_plan *p, const char *file, int agents, const char *launcher,
                       int plan_threads, const char *engine)
{
    printf("plan %s%s%s%s\n", file ? file : "(flags)", p->name ? " \"" : "", p->name ? p->name : "",
           p->name ? "\"" : "");
    printf("  agents      %d (%s launcher), %d connections each, ", agents, launcher,
           p->connections);
    if (plan_threads > 0) {
        printf("%d threads each", plan_threads);
    } else {
        printf("threads: each agent's CPUs");
    }
    printf(", timeout %d ms, engine %s\n", p->timeout_ms, engine ? engine : "auto");
    uint64_t wsum = 0;
    for (size_t i = 0; i < p->n_requests; i++) {
        wsum += p->requests[i].weight;
    }
    printf("  requests    weight  share  name\n");
    for (size_t i = 0; i < p->n_requests; i++) {
        const st_request *r = &p->requests[i];
        printf("              %6u %5.1f%%  %s (%s %s%s)\n", r->weight,
               100.0 * r->weight / (double)wsum, r->name, r->method, r->url,
               r->body ? ", with a body" : "");
    }
    if (p->closed_loop) {
        printf("  load        closed loop for %.1f s: as fast as the connections allow\n",
               p->duration_s);
        return;
    }
    for (size_t i = 0; i < p->profile.n_stages; i++) {
        const st_stage *st = &p->profile.stages[i];
        if (st->from_rps == st->to_rps) {
            printf("  %-11s %.1f s at %.1f rps\n", i == 0 ? "stages" : "", st->duration_s,
                   st->from_rps);
        } else {
            printf("  %-11s %.1f s from %.1f to %.1f rps\n", i == 0 ? "stages" : "",
                   st->duration_s, st->from_rps, st->to_rps);
        }
    }
    printf("  load        %.0f requests over %.1f s (%.1f rps on average, %.1f per agent)\n",
           p->profile.total_n, p->profile.total_s, p->profile.total_n / p->profile.total_s,
           p->profile.total_n / p->profile.total_s / agents);
}

/* $XDG_STATE_HOME/stampede/spool, else ~/.local/state/stampede/spool, else /var/tmp's. */
static void default_spool(char *out, size_t len)
{
    const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    if (state && state[0] == '/') {
        snprintf(out, len, "%s/stampede/spool", state);
    } else if (home && home[0] == '/') {
        snprintf(out, len, "%s/.local/state/stampede/spool", home);
    } else {
        snprintf(out, len, "/var/tmp/stampede-spool");
    }
}

typedef struct run_ctx {
    st_output outs[MAX_OUTPUTS];
    int n_outs;
} run_ctx;

static void on_second(void *arg, const st_coord_second *sec)
{
    run_ctx *r = arg;
    for (int i = 0; i < r->n_outs; i++) {
        r->outs[i].ops->second(r->outs[i].state, sec);
    }
}

int st_cmd_run(int argc, char **argv)
{
    run_opts o;
    uint64_t seen;
    char err[1024] = "";
    int rc = parse(argc, argv, &o, &seen, err, sizeof(err));
    if (rc == 1) {
        return ST_EXIT_OK;
    }
    if (rc) {
        fprintf(stderr, "stampede run: %s\n", err);
        return ST_EXIT_USAGE;
    }
    if (given(seen, "log-level")) {
        st_log_init("stampede", (st_log_level)o.log_level);
    }
    bool local = strcmp(o.launcher, "local") == 0;
    st_plan plan;
    st_plan_init(&plan);
    st_coord *core = NULL;
    st_server *server = NULL;
    st_launcher *launcher = NULL;
    const st_launcher_ops *lops = st_launcher_find(o.launcher);
    run_ctx ctx = {0};
    int code = ST_EXIT_FAILURE;

    if ((o.plan_file && (rc = st_plan_load_file(&plan, o.plan_file, err, sizeof(err)))) ||
        (rc = st_plan_apply_flags(&plan, &o.f, err, sizeof(err)))) {
        fprintf(stderr, "stampede run: %s\n", err);
        code = rc == ST_ENOMEM ? ST_EXIT_FAILURE : ST_EXIT_USAGE;
        goto out;
    }
    int agents = plan.agents > 0 ? plan.agents : 1;
    bool threads_given = plan.threads > 0;
    int local_threads = st_cli_cpus() / agents > 0 ? st_cli_cpus() / agents : 1;
    if ((rc = st_plan_finish(&plan, local ? local_threads : st_cli_cpus(), err, sizeof(err)))) {
        fprintf(stderr, "stampede run: %s\n", err);
        code = rc == ST_ENOMEM ? ST_EXIT_FAILURE : ST_EXIT_USAGE;
        goto out;
    }
    int plan_threads = threads_given || local ? plan.threads : 0;
    if (o.dry_run) {
        print_plan(&plan, o.plan_file, agents, o.launcher, plan_threads, o.engine);
        code = ST_EXIT_OK;
        goto out;
    }

    char run_id[64], token[80];
    make_run_id(run_id, sizeof(run_id));
    bool token_generated = !o.token;
    if (o.token) {
        snprintf(token, sizeof(token), "%s", o.token);
    } else {
        random_hex(token, 16);
    }

    if (st_output_progress(&ctx.outs[ctx.n_outs], stdout) == 0) {
        ctx.n_outs++;
    }
    if (o.timeseries) {
        if ((rc = st_output_timeseries(&ctx.outs[ctx.n_outs], o.timeseries, err, sizeof(err)))) {
            fprintf(stderr, "stampede run: %s\n", err);
            code = ST_EXIT_USAGE;
            goto out;
        }
        ctx.n_outs++;
    }
    if (o.summary) {
        if ((rc = st_output_summary_file(&ctx.outs[ctx.n_outs], o.summary, err, sizeof(err)))) {
            fprintf(stderr, "stampede run: %s\n", err);
            code = ST_EXIT_USAGE;
            goto out;
        }
        ctx.n_outs++;
    }
    uint64_t spooled = 0;
    if (o.sqs_queue_url) {
        char spool[1024];
        if (o.spool) {
            snprintf(spool, sizeof(spool), "%s", o.spool);
        } else {
            default_spool(spool, sizeof(spool));
        }
        st_aws_config aws;
        st_aws_config_init(&aws);
        aws.region = o.region;
        aws.service_endpoint_url[ST_AWS_SQS] = o.endpoint_url;
        if ((rc = st_output_sqs(&ctx.outs[ctx.n_outs], run_id, o.sqs_queue_url, spool, &aws,
                                10000, &spooled, err, sizeof(err)))) {
            fprintf(stderr, "stampede run: %s\n", err);
            code = rc == ST_EAUTH ? ST_EXIT_AUTH : rc == ST_EINVAL ? ST_EXIT_USAGE : ST_EXIT_FAILURE;
            goto out;
        }
        ctx.n_outs++;
    }

    st_coord_cfg cfg;
    st_coord_cfg_defaults(&cfg);
    cfg.plan = &plan;
    cfg.engine = o.engine ? o.engine : "auto";
    cfg.plan_threads = plan_threads;
    cfg.run_id = run_id;
    cfg.token = token;
    cfg.expected_agents = agents;
    cfg.accept_late_joiners = !local;
    cfg.register_timeout_ns = (uint64_t)(o.register_timeout_s * 1e9);
    cfg.on_second = on_second;
    cfg.ctx = &ctx;
    if ((rc = st_coord_new(&core, &cfg))) {
        st_error("cannot set up the run: %s", st_strerror(rc));
        goto out;
    }
    const char *listen = o.listen ? o.listen : local ? "tcp://127.0.0.1:0" : "tcp://0.0.0.0:7400";
    if ((rc = st_server_start(&server, listen, core, err, sizeof(err)))) {
        fprintf(stderr, "stampede run: %s\n", err);
        code = rc == ST_EINVAL ? ST_EXIT_USAGE : ST_EXIT_FAILURE;
        goto out;
    }
    char url[512];
    agent_url(local && !o.listen ? "tcp://127.0.0.1" : listen, st_server_port(server), url,
              sizeof(url));
    if (plan.closed_loop) {
        st_info("run %s: %d agents, closed loop for %.1f s", run_id, agents, plan.duration_s);
    } else {
        st_info("run %s: %d agents, %.0f requests over %.1f s (%.1f rps on average)", run_id,
                agents, plan.profile.total_n, plan.profile.total_s,
                plan.profile.total_n / plan.profile.total_s);
    }
    st_launch_cfg lcfg = {
        .agents = agents,
        .coordinator_url = url,
        .token = token,
        .threads = plan_threads,
        .engine = o.engine,
        .log_level = o.log_level == ST_LOG_DEBUG ? "debug" : "warn",
        .token_generated = token_generated,
    };
    if ((rc = lops->start(&launcher, &lcfg, err, sizeof(err)))) {
        fprintf(stderr, "stampede run: %s\n", err);
        code = rc == ST_EINVAL ? ST_EXIT_USAGE : ST_EXIT_FAILURE;
        goto out;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    bool stopped = false;
    for (;;) {
        int exited[16];
        int n_exited = lops->poll(launcher, exited, 16);
        for (int i = 0; i < n_exited; i++) {
            st_coord_agent_exited(core, exited[i]);
        }
        st_coord_tick(core);
        st_coord_state s = st_coord_get_state(core);
        if (s == ST_COORD_DONE || s == ST_COORD_FAILED) {
            break;
        }
        if (g_signals && !stopped) {
            stopped = true;
            st_info("stopping: agents stop sending and report their last seconds");
            st_coord_stop(core);
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    st_coord_tick(core); /* hands out the last seconds */

    /* The report's status says failed, stopped (st_coord_stop above) or completed. */
    st_report report;
    bool failed = st_coord_get_state(core) == ST_COORD_FAILED;
    bool degraded = false;
    if (st_coord_report(core, &report) == 0) {
        degraded = report.status == ST_REPORT_DEGRADED;
        if (degraded) {
            st_warn("the run is degraded: %d agents lost, %zu seconds incomplete (the summary "
                    "lists them)",
                    report.agents_lost, report.n_incomplete);
        }
        for (int i = 0; i < ctx.n_outs; i++) {
            ctx.outs[i].ops->summary(ctx.outs[i].state, &report);
        }
        st_report_fini(&report);
    } else {
        st_error("out of memory: the run's summary was not written");
    }
    if (failed) {
        int fc = st_coord_failure_code(core);
        code = fc == 3 ? ST_EXIT_AGENTS : fc == 5 ? ST_EXIT_INTERRUPTED : ST_EXIT_FAILURE;
    } else {
        code = stopped ? ST_EXIT_INTERRUPTED : degraded ? ST_EXIT_DEGRADED : ST_EXIT_OK;
    }
    /* Agents learn they are done from their next update: keep answering while they leave. */
    uint64_t until = st_clock_mono_ns() + (local ? 10 : 2) * ST_NS_PER_S;
    lops->finish(launcher, local ? 10 * ST_NS_PER_S : 0);
    while (!local && st_clock_mono_ns() < until) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    /* Outputs close now (the SQS forwarder flushes), so the exit code can tell about the spool. */
    for (int i = 0; i < ctx.n_outs; i++) {
        ctx.outs[i].ops->close(ctx.outs[i].state);
    }
    ctx.n_outs = 0;
    if (code == ST_EXIT_OK && spooled > 0) {
        code = ST_EXIT_PENDING;
    }
out:
    if (launcher) {
        lops->free(launcher);
    }
    if (server) {
        /* nng 1.5.2 can hang in nng_close after a storm of abandoned requests (fixed upstream in
         * 1.9.0); by now every output is written, so a hang must not keep the run alive. */
        g_exit_code = code;
        pthread_t dog;
        if (pthread_create(&dog, NULL, close_watchdog, NULL) == 0) {
            pthread_detach(dog);
        }
    }
    st_server_stop(server);
    st_coord_free(core);
    for (int i = 0; i < ctx.n_outs; i++) {
        ctx.outs[i].ops->close(ctx.outs[i].state);
    }
    st_plan_fini(&plan);
    return code;
}
