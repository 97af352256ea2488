/*
 * stampede-agent: the load generator. Standalone, it runs a plan by itself and prints what it
 * measured; under a coordinator it registers and runs its share of a distributed run.
 */
#include "cli.h"
#include "clock.h"
#include "engine.h"
#include "error.h"
#include "log.h"
#include "plan.h"
#include "remote.h"
#include "run.h"
#include "summary.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_RUNTIME 1
#define EXIT_USAGE   2

static volatile sig_atomic_t g_stop_signal = 0;

static void on_signal(int sig)
{
    g_stop_signal = sig;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: stampede-agent --url URL --rate RPS --duration SECONDS [options]\n"
            "       stampede-agent --plan FILE [options]\n"
            "       stampede-agent --coordinator URL --token TOKEN [--name NAME] [--threads N]\n"
            "\n"
            "Sends HTTP requests open loop: request k leaves at the instant the rate profile's\n"
            "integral reaches k, and latency counts from that instant (coordinated omission\n"
            "corrected); the uncorrected latency is reported beside it.\n"
            "\n"
            "  --url URL           request URL (GET); replaces the plan's requests\n"
            "  --rate RPS          requests per second in all (0 = closed loop, as fast as the\n"
            "                      connections allow)\n"
            "  --duration TIME     seconds, or 500ms / 30s / 2m / 1h\n"
            "  --ramp-up TIME      ramp from 0 to --rate first (part of --duration)\n"
            "  --plan FILE         JSON plan: weighted requests, stages, settings (see README)\n"
            "  --connections N     connection cap over all threads (default 64)\n"
            "  --threads N         worker threads (default: the CPUs this process may use)\n"
            "  --timeout MS        per-request timeout in milliseconds (default 10000)\n"
            "  --late-ms MS        a send this late after its instant counts as late (default 10)\n"
            "  --engine NAME       auto (default), curl, or fast (plain http:// to one origin)\n"
            "  --http2             HTTP/2 over TLS (curl engine)\n"
            "  --insecure          do not verify TLS certificates\n"
            "  --json              print the summary as JSON on stdout\n"
            "  --coordinator URL   join a distributed run: the coordinator (tcp://HOST:PORT) sends\n"
            "                      the plan and this agent's share\n"
            "  --token TOKEN       the run's token (or the STAMPEDE_TOKEN environment variable)\n"
            "  --name NAME         this agent's name in reports (default HOST-PID)\n"
            "  --log-level LEVEL   debug, info, warn or error (default info)\n"
            "  --version, --help\n"
            "\n"
            "Exit codes: 0 the run completed (whatever the target answered), 1 the run could not\n"
            "be carried out, 2 bad flags or plan, 3 the coordinator refused this agent, 7 the\n"
            "coordinator could not be reached or went silent (the load stops within 3 s).\n");
}

typedef struct opts {
    const char *plan_file;
    const char *engine;
    const char *coordinator;
    const char *token;
    const char *name;
    st_plan_flags f;
    int json;
    st_log_level log_level;
} opts;

static int parse_args(int argc, char **argv, opts *o, char *err, size_t err_len)
{
    /* O_PLAN_FLAG: the flags that shape the plan, handled by st_plan_flags_option. */
    enum { O_PLAN_FLAG = 256, O_PLAN, O_ENGINE, O_JSON, O_LOG, O_VERSION, O_HELP, O_COORD, O_TOKEN,
           O_NAME };
    static const struct option longopts[] = {
        {"url", required_argument, 0, O_PLAN_FLAG},
        {"rate", required_argument, 0, O_PLAN_FLAG},
        {"duration", required_argument, 0, O_PLAN_FLAG},
        {"ramp-up", required_argument, 0, O_PLAN_FLAG},
        {"connections", required_argument, 0, O_PLAN_FLAG},
        {"threads", required_argument, 0, O_PLAN_FLAG},
        {"timeout", required_argument, 0, O_PLAN_FLAG},
        {"late-ms", required_argument, 0, O_PLAN_FLAG},
        {"http2", no_argument, 0, O_PLAN_FLAG},
        {"insecure", no_argument, 0, O_PLAN_FLAG},
        {"plan", required_argument, 0, O_PLAN},
        {"engine", required_argument, 0, O_ENGINE},
        {"json", no_argument, 0, O_JSON},
        {"log-level", required_argument, 0, O_LOG},
        {"coordinator", required_argument, 0, O_COORD},
        {"token", required_argument, 0, O_TOKEN},
        {"name", required_argument, 0, O_NAME},
        {"version", no_argument, 0, O_VERSION},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    memset(o, 0, sizeof(*o));
    st_plan_flags_init(&o->f);
    o->log_level = ST_LOG_INFO;
    opterr = 0;
    int c, idx = 0, rc = 0;
    while ((c = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
        switch (c) {
        case O_PLAN_FLAG: rc = st_plan_flags_option(&o->f, longopts[idx].name, optarg, err, err_len); break;
        case O_PLAN: o->plan_file = optarg; break;
        case O_ENGINE: o->engine = optarg; break;
        case O_COORD: o->coordinator = optarg; break;
        case O_TOKEN: o->token = optarg; break;
        case O_NAME: o->name = optarg; break;
        case O_JSON: o->json = 1; break;
        case O_LOG: rc = st_cli_log_level("--log-level", optarg, &o->log_level, err, err_len); break;
        case O_VERSION: printf("stampede-agent %s\n", ST_VERSION); exit(0);
        case O_HELP: usage(stdout); exit(0);
        default:
            snprintf(err, err_len, "%s: unknown flag or missing value (see --help)",
                     argv[optind - 1]);
            rc = ST_EINVAL;
        }
        if (rc) {
            return rc;
        }
    }
    if (optind < argc) {
        snprintf(err, err_len, "unexpected argument \"%s\" (see --help)", argv[optind]);
        return ST_EINVAL;
    }
    if (o->coordinator) {
        if (o->f.url || o->plan_file || o->f.rate_rps >= 0 || o->f.duration_s >= 0 ||
            o->f.ramp_up_s >= 0 || o->f.connections > 0 || o->f.timeout_ms > 0 || o->json) {
            snprintf(err, err_len, "--coordinator: the plan comes from the coordinator; only "
                                   "--token, --name, --threads, --engine and --log-level go with it");
            return ST_EINVAL;
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
        exit_code = EXIT_RUNTIME;
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
        exit_code = rc == ST_EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
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
            exit_code = EXIT_RUNTIME;
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
    if (parse_args(argc, argv, &o, err, sizeof(err))) {
        fprintf(stderr, "stampede-agent: %s\n", err);
        return EXIT_USAGE;
    }
    st_log_init("stampede-agent", o.log_level);
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
        return EXIT_USAGE;
    }
    const st_engine_ops *engine;
    if (st_engine_choose(o.engine, &plan, &engine, err, sizeof(err))) {
        fprintf(stderr, "stampede-agent: %s\n", err);
        st_plan_fini(&plan);
        return EXIT_USAGE;
    }
    int code = run_standalone(&plan, engine, o.json);
    st_plan_fini(&plan);
    return code;
}
