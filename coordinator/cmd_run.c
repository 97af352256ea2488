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
#include "launch_ecs.h"
#include "log.h"
#include "output.h"
#include "plan.h"
#include "run_exit.h"
#include "run_id.h"
#include "server.h"
#include "run_flags.h"
#include "settings.h"
#include "threshold.h"
#include "baseline.h"
#include "stored_run.h"
#include "tls.h"
#include "tui.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    int sqs; /* the index of the sqs output, -1 without one */
    st_thresholds *thresholds;
    bool threshold_stop; /* a threshold asked to stop the run */
    FILE *progress;      /* the thresholds' progress lines: stdout, or stderr under the UI (its
                          * event log) */
} run_ctx;

/* The exit code of a launch that failed with rc (launch_ecs.h's codes). */
static int launch_exit(int rc)
{
    switch (rc) {
    case ST_EAGAIN:
        return ST_EXIT_AGENTS;
    case ST_EAUTH:
        return ST_EXIT_AUTH;
    case ST_ENOTFOUND:
        return ST_EXIT_NOTFOUND;
    case ST_EINVAL:
        return ST_EXIT_USAGE;
    default:
        return ST_EXIT_FAILURE;
    }
}

static void on_second(void *arg, const st_coord_second *sec)
{
    run_ctx *r = arg;
    for (int i = 0; i < r->n_outs; i++) {
        r->outs[i].ops->second(r->outs[i].state, sec);
    }
    if (st_thresholds_second(r->thresholds, sec, r->progress)) {
        r->threshold_stop = true;
    }
}

/* --baseline: the summary file, or with --baseline-table the summary stored for that run id.
 * Returns ST_EXIT_OK, or the exit code after saying why: 2 for a bad file, stored summary or
 * expression, 3 for credentials, 5 for no such table or no summary stored, 1 for other AWS
 * failures. */
static int load_baseline(const st_run_opts *o, st_baseline **baseline)
{
    char err[1024];
    int rc;
    if (!o->baseline_table) {
        rc = st_baseline_new(baseline, o->baseline, o->max_regression.v, o->max_regression.n, err,
                             sizeof(err));
    } else {
        st_aws_config aws;
        st_aws_config_init(&aws);
        aws.region = o->region;
        cJSON *old = NULL;
        rc = st_stored_summary(&aws, o->baseline_table, o->baseline, &old, err, sizeof(err));
        if (rc) {
            fprintf(stderr, "stampede run: --baseline %s: %s\n", o->baseline,
                    rc == ST_ENOMEM ? "out of memory" : err);
            return rc == ST_EAGAIN ? ST_EXIT_FAILURE : st_exit_code(rc);
        }
        rc = st_baseline_new_stored(baseline, o->baseline, o->baseline_table, old,
                                    o->max_regression.v, o->max_regression.n, err, sizeof(err));
    }
    if (rc) {
        fprintf(stderr, "stampede run: %s\n", rc == ST_ENOMEM ? "out of memory" : err);
        return rc == ST_ENOMEM ? ST_EXIT_FAILURE : ST_EXIT_USAGE;
    }
    return ST_EXIT_OK;
}

/* The run's summary against the baseline (baseline.h). Returns 0, or -1 when it could not be
 * compared (logged). */
static int compare_baseline(st_baseline *baseline, const st_report *report)
{
    char err[512];
    cJSON *summary = st_report_json(report);
    int rc = summary ? st_baseline_evaluate(baseline, summary, err, sizeof(err)) : ST_ENOMEM;
    cJSON_Delete(summary);
    if (rc) {
        st_error("--baseline: not compared: %s", rc == ST_ENOMEM ? "out of memory" : err);
        return -1;
    }
    return 0;
}

static int add_file_output(run_ctx *ctx,
                           int (*make)(st_output *, const char *, char *, size_t),
                           const char *path)
{
    char err[1024];
    if (!path) {
        return 0;
    }
    if (make(&ctx->outs[ctx->n_outs], path, err, sizeof(err))) {
        fprintf(stderr, "stampede run: %s\n", err);
        return -1;
    }
    ctx->n_outs++;
    return 0;
}

/* Starts the terminal UI and its output. With lcfg (external agents and a generated token), the
 * command that starts an agent goes to its event log. A terminal the UI cannot use is an error
 * with --tui (forced); by default the progress lines (fallback) take its place, with a warning.
 * Returns 0 or the exit code of a failure (said on stderr). */
static int start_tui(st_tui **tui, run_ctx *ctx, const char *run_id, int agents,
                     const st_launch_cfg *lcfg, bool forced, const st_output *fallback)
{
    char err[512];
    st_tui_cfg tcfg = {.run_id = run_id, .expected_agents = agents};
    int rc = st_tui_start(tui, &tcfg, err, sizeof(err));
    if (rc == ST_EINVAL && !forced) {
        st_warn("the terminal UI cannot run: %s; progress lines instead", err);
        ctx->outs[ctx->n_outs++] = *fallback;
        return 0;
    }
    if (rc) {
        fprintf(stderr, "stampede run: --tui: %s\n", rc == ST_ENOMEM ? st_strerror(rc) : err);
        return rc == ST_EINVAL ? ST_EXIT_USAGE : ST_EXIT_FAILURE;
    }
    st_tui_output(&ctx->outs[ctx->n_outs++], *tui);
    ctx->progress = stderr;
    if (lcfg) {
        const char *pin = lcfg->tls_fingerprint;
        st_tui_event(*tui, "start each agent with: stampede-agent --coordinator %s --token %s%s%s",
                     lcfg->coordinator_url, lcfg->token, pin ? " --tls-fingerprint " : "",
                     pin ? pin : "");
    }
    return 0;
}

int st_cmd_run(int argc, char **argv)
{
    st_run_opts o;
    char err[1024] = "";
    int rc = st_run_flags_parse(argc, argv, &o, err, sizeof(err));
    if (rc == 1) {
        st_run_flags_usage(stdout);
        return ST_EXIT_OK;
    }
    if (rc) {
        fprintf(stderr, "stampede run: %s\n", err);
        return ST_EXIT_USAGE;
    }
    if (st_run_flags_given(&o, "log-level")) {
        st_log_init("stampede", (st_log_level)o.log_level);
    }
    bool local = strcmp(o.launcher, "local") == 0;
    st_plan plan;
    st_plan_init(&plan);
    st_coord *core = NULL;
    st_server *server = NULL;
    st_tls_cert *tls = NULL;
    st_baseline *baseline = NULL;
    st_launcher *launcher = NULL;
    const st_launcher_ops *lops = st_launcher_find(o.launcher);
    run_ctx ctx = {.sqs = -1, .progress = stdout};
    st_tui *tui = NULL;
    int code = ST_EXIT_FAILURE;
    st_run_outcome outcome = {0};

    int agents = 1, plan_threads = 0;
    if ((rc = st_run_flags_plan(&o, &plan, &agents, &plan_threads, err, sizeof(err))) ||
        (rc = st_run_flags_ecs(&o, &plan, err, sizeof(err)))) {
        fprintf(stderr, "stampede run: %s\n", err);
        code = rc == ST_ENOMEM ? ST_EXIT_FAILURE : ST_EXIT_USAGE;
        goto out;
    }
    if ((rc = st_thresholds_new(&ctx.thresholds, &plan, o.plan_file, err, sizeof(err)))) {
        fprintf(stderr, "stampede run: %s\n", err);
        code = rc == ST_ENOMEM ? ST_EXIT_FAILURE : ST_EXIT_USAGE;
        goto out;
    }
    if (o.max_regression.n && !o.baseline) {
        fprintf(stderr,
                "stampede run: --max-regression needs --baseline (a summary file or a stored run)\n");
        code = ST_EXIT_USAGE;
        goto out;
    }
    if (o.baseline && (code = load_baseline(&o, &baseline)) != ST_EXIT_OK) {
        goto out;
    }
    /* Made or loaded before --dry-run returns, so that a dry run refuses what a run would. */
    if (st_tls_url_is_tls(o.listen)) {
        double valid_s = o.register_timeout_s + 86400 +
                         (plan.closed_loop ? plan.duration_s : plan.profile.total_s);
        rc = o.tls_cert ? st_tls_cert_load(&tls, o.tls_cert, o.tls_key, err, sizeof(err))
                        : st_tls_cert_make(&tls, valid_s, err, sizeof(err));
        if (rc) {
            fprintf(stderr, "stampede run: %s\n", err[0] ? err : st_strerror(rc));
            code = rc == ST_EINVAL || rc == ST_ENOTFOUND || rc == ST_EIO ? ST_EXIT_USAGE
                                                                         : ST_EXIT_FAILURE;
            goto out;
        }
    }
    char run_id[64], token[80];
    if (o.run_id) {
        snprintf(run_id, sizeof(run_id), "%s", o.run_id); /* checked by st_run_flags_parse */
    } else {
        st_run_id_make(run_id, sizeof(run_id));
    }
    st_ecs_launch_cfg ecs = {
        .cluster = o.cluster,
        .task_definition = o.task_definition,
        .subnets = o.subnets,
        .security_groups = o.security_groups,
        .container = o.container,
        .assign_public_ip = o.assign_public_ip,
        .spot = o.spot,
        .cpu_units = o.cpu_units,
        .memory_mib = o.memory_mib,
        .region = o.region,
        .endpoint_url = o.endpoint_url,
        .duration_s = plan.closed_loop ? plan.duration_s : plan.profile.total_s,
        .price_vcpu_hour = o.price_vcpu_hour,
        .price_gb_hour = o.price_gb_hour,
    };
    st_launch_cfg lcfg = {
        .agents = agents,
        .run_id = run_id,
        .threads = plan_threads,
        .engine = o.engine,
        .log_level = o.log_level == ST_LOG_DEBUG ? "debug" : "warn",
        .ecs = lops == &st_launcher_ecs ? &ecs : NULL,
    };
    if (o.dry_run) {
        print_plan(&plan, o.plan_file, agents, o.launcher, plan_threads, o.engine);
        code = ST_EXIT_OK;
        if (lcfg.ecs) {
            lcfg.coordinator_url = o.advertise;
            /* A certificate made for this dry run is not the real run's. */
            lcfg.tls_fingerprint = !tls ? NULL
                                   : o.tls_cert ? st_tls_cert_fingerprint(tls)
                                                : "<the run's certificate's SHA-256>";
            printf("  listen      %s (agents dial %s)\n", o.listen, o.advertise);
            fflush(stdout);
            if ((rc = st_launch_ecs_dry_run(&lcfg, ecs.duration_s, stdout, err, sizeof(err)))) {
                fprintf(stderr, "stampede run: %s\n", err);
                code = launch_exit(rc);
            }
        }
        goto out;
    }
    bool token_generated = !o.token;
    if (o.token) {
        snprintf(token, sizeof(token), "%s", o.token);
    } else {
        st_random_hex(token, 16);
    }

    /* A CI job's step summary (GitHub Actions sets the variable for each step). */
    const char *step_summary = getenv("GITHUB_STEP_SUMMARY");
    if (step_summary && !step_summary[0]) {
        step_summary = NULL;
    }
    /* The terminal UI by default on a terminal; under it the summary table still follows. */
    bool want_tui = o.tui || (!o.headless && isatty(STDOUT_FILENO));
    st_output progress_out;
    st_output_progress(&progress_out, stdout); /* cannot fail: it keeps the stream */
    if (!want_tui) {
        ctx.outs[ctx.n_outs++] = progress_out;
    }
    if (add_file_output(&ctx, st_output_timeseries, o.timeseries) ||
        add_file_output(&ctx, st_output_summary_file, o.summary) ||
        add_file_output(&ctx, st_output_junit, o.junit) ||
        add_file_output(&ctx, st_output_report, o.report) ||
        add_file_output(&ctx, st_output_step_summary, step_summary)) {
        code = ST_EXIT_USAGE;
        goto out;
    }
    st_forward_report delivery = {0};
    char spool[1024] = "";
    if (o.sqs_queue_url) {
        if (o.spool) {
            snprintf(spool, sizeof(spool), "%s", o.spool);
        } else {
            default_spool(spool, sizeof(spool));
        }
        st_aws_config aws;
        st_aws_config_init(&aws);
        aws.region = o.region;
        aws.service_endpoint_url[ST_AWS_SQS] = o.endpoint_url;
        if ((rc = st_output_sqs(&ctx.outs[ctx.n_outs], run_id, o.sqs_queue_url, spool, &aws, 10000,
                                &delivery, err, sizeof(err)))) {
            fprintf(stderr, "stampede run: %s\n", err);
            code = rc == ST_EAUTH ? ST_EXIT_AUTH : rc == ST_EINVAL ? ST_EXIT_USAGE : ST_EXIT_FAILURE;
            goto out;
        }
        ctx.sqs = ctx.n_outs++;
        for (int i = 0; i < ctx.sqs; i++) {
            st_output_set_delivery(&ctx.outs[i], &delivery, spool);
        }
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
    cfg.agent_p99 = want_tui; /* the UI's agents' table; headless ingest does without */
    if ((rc = st_coord_new(&core, &cfg))) {
        st_error("cannot set up the run: %s", st_strerror(rc));
        goto out;
    }
    const char *listen = o.listen ? o.listen : local ? "tcp://127.0.0.1:0" : "tcp://0.0.0.0:7400";
    if ((rc = st_server_start_tls(&server, listen, tls ? st_tls_cert_pem(tls) : NULL,
                                  tls ? st_tls_cert_key_pem(tls) : NULL, core, err,
                                  sizeof(err)))) {
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
    lcfg.coordinator_url = lcfg.ecs ? o.advertise : url;
    lcfg.token = token;
    lcfg.token_generated = token_generated;
    lcfg.tls_fingerprint = tls ? st_tls_cert_fingerprint(tls) : NULL;
    if (tls) {
        st_info("TLS: agents pin the certificate \"%s\" by its SHA-256 fingerprint %s",
                st_tls_cert_name(tls), st_tls_cert_fingerprint(tls));
    }
    /* Signals are caught from before the launch, so that what it starts is always stopped. */
    st_cli_stop_signals(on_signal);
    /* A generated token for external agents is shown on the terminal only: the launcher prints
     * it there before the UI takes the screen, and the UI repeats the command in its events. */
    bool tui_after_launch = lops == &st_launcher_external && token_generated;
    if (want_tui && !tui_after_launch && (code = start_tui(&tui, &ctx, run_id, agents, NULL, o.tui, &progress_out))) {
        goto out;
    }
    if ((rc = lops->start(&launcher, &lcfg, err, sizeof(err)))) {
        fprintf(stderr, "stampede run: %s\n", err);
        code = lcfg.ecs ? launch_exit(rc) : rc == ST_EINVAL ? ST_EXIT_USAGE : ST_EXIT_FAILURE;
        goto out;
    }
    if (want_tui && tui_after_launch && (code = start_tui(&tui, &ctx, run_id, agents, &lcfg, o.tui, &progress_out))) {
        lops->finish(launcher, 0);
        goto out;
    }

    bool stopped = false, threshold_stopped = false;
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
        if (lops->watch && !stopped &&
            (rc = lops->watch(launcher, st_coord_agents_alive(core), s == ST_COORD_WAITING, err,
                              sizeof(err)))) {
            fprintf(stderr, "stampede run: %s\n", err);
            code = launch_exit(rc);
            lops->finish(launcher, 0);
            goto out;
        }
        st_tui_feed(tui, core);
        int steer = st_tui_steer(tui, core);
        if (steer & ST_TUI_QUIT) {
            st_tui_close(tui);
        }
        if (((steer & ST_TUI_STOP) || g_signals) && !stopped) {
            /* A signal closes the UI at once too: ^C and SIGTERM mean quit. */
            if (g_signals) {
                st_tui_close(tui);
            }
            stopped = true;
            st_info("stopping: agents stop sending and report their last seconds");
            if (!threshold_stopped) {
                st_coord_stop(core);
            }
        }
        if (ctx.threshold_stop && !threshold_stopped && !stopped) {
            threshold_stopped = true;
            st_info("stopping: threshold %s failed for its abort delay; agents stop sending and "
                    "report their last seconds",
                    st_thresholds_aborted_by(ctx.thresholds));
            st_coord_stop(core);
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    st_coord_tick(core); /* hands out the last seconds */
    st_tui_close(tui);

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
        if (st_thresholds_final(ctx.thresholds, &report)) {
            st_error("out of memory: the thresholds were not evaluated");
            outcome.outputs_failed = true;
        }
        outcome.thresholds_failed = st_thresholds_failed(&report);
        if (baseline && compare_baseline(baseline, &report)) {
            outcome.outputs_failed = true;
        }
        outcome.thresholds_failed |= st_baseline_failed(baseline);
        for (int i = 0; i < ctx.n_outs; i++) {
            st_output_set_baseline(&ctx.outs[i], baseline);
            ctx.outs[i].ops->summary(ctx.outs[i].state, &report);
        }
        if (tui) {
            /* The UI is closed: the summary table as without it. */
            progress_out.ops->summary(progress_out.state, &report);
        }
        st_baseline_print(baseline, stdout);
        outcome.unmerged_records = report.unmerged_records;
        st_report_fini(&report);
    } else {
        st_error("out of memory: the run's summary was not written");
        outcome.outputs_failed = o.summary || o.timeseries || o.junit || o.report || step_summary;
    }
    outcome.failure = failed ? st_coord_failure_reason_of(core) : ST_COORD_FAILURE_NONE;
    outcome.stopped = stopped;
    outcome.degraded = degraded;
    /* Agents learn they are done from their next update: keep answering while they leave. */
    uint64_t until = st_clock_mono_ns() + (local ? 10 : 2) * ST_NS_PER_S;
    lops->finish(launcher, (local ? 10 : 2) * ST_NS_PER_S);
    while (!local && st_clock_mono_ns() < until) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    /* Outputs close now, the SQS forwarder first (it flushes, and the summary file says what
     * became of the messages), so the exit code can tell about the files and the spool. */
    if (ctx.sqs >= 0) {
        ctx.outs[ctx.sqs].ops->close(ctx.outs[ctx.sqs].state);
    }
    for (int i = 0; i < ctx.n_outs; i++) {
        if (i != ctx.sqs && ctx.outs[i].ops->close(ctx.outs[i].state) != 0) {
            outcome.outputs_failed = true;
        }
    }
    ctx.n_outs = 0;
    outcome.results_lost = delivery.lost;
    outcome.results_spooled = delivery.spooled;
    code = st_run_exit_code(&outcome);
    if (outcome.unmerged_records && !outcome.failure) {
        st_error("out of memory: %llu record(s) count in the total but are missing from their "
                 "seconds: exit %d",
                 (unsigned long long)outcome.unmerged_records, code);
    } else if (outcome.outputs_failed && !outcome.failure) {
        st_error("the run's results were not all written (see above): exit %d", code);
    } else if (outcome.results_lost && !outcome.failure) {
        st_error("%llu result message(s) lost: they are neither in SQS nor in the spool: exit %d",
                 (unsigned long long)outcome.results_lost, code);
    }
out:
    /* Every way out restores the terminal first (the launcher's messages come after). */
    st_tui_close(tui);
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
    st_tls_cert_free(tls);
    st_coord_free(core);
    for (int i = 0; i < ctx.n_outs; i++) {
        ctx.outs[i].ops->close(ctx.outs[i].state);
    }
    st_thresholds_free(ctx.thresholds);
    st_baseline_free(baseline);
    st_tui_free(tui);
    st_plan_fini(&plan);
    return code;
}
