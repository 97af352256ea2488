/*
 * stampede-agent: the load generator. Standalone, it runs a plan by itself and prints what it
 * measured; under a coordinator it registers and runs its share of a distributed run.
 */
#include "agent_flags.h"
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
#include "taskmeta.h"

#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t g_stop_signal = 0;

static void on_signal(int sig)
{
    g_stop_signal = sig;
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
            if (engine == &st_engine_h2) {
                cJSON_AddNumberToObject(j, "streams", plan->streams);
            }
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

/* On ECS (ECS_CONTAINER_METADATA_URI_V4 set) the agent's own task, which it registers with; a
 * task metadata endpoint that fails only costs the run that information. */
static bool read_task(st_taskmeta *m)
{
    char why[512];
    int rc = st_taskmeta_get(NULL, 0, m, why, sizeof(why));
    if (rc == ST_ENOTFOUND) {
        return false;
    }
    if (rc) {
        st_warn("%s: registering without the task's ARN and zone", why);
        return false;
    }
    st_info("on ECS: task %s in %s, %.2f vCPU", m->task_arn, m->availability_zone, m->cpu_vcpus);
    return true;
}

/* The CPUs an agent may use: its own (affinity, cgroup quota), and on ECS no more than the task's
 * vCPU limit rounded up (a 0.25-vCPU task runs 1 thread, not one per CPU the VM shows). */
static int agent_cpus(const st_taskmeta *task)
{
    int n = st_cli_cpus();
    if (task && task->cpu_vcpus > 0) {
        double v = ceil(task->cpu_vcpus);
        if (v < n) {
            n = (int)v;
        }
    }
    return n;
}

int main(int argc, char **argv)
{
    st_agent_opts o;
    char err[512] = "";
    st_log_init("stampede-agent", ST_LOG_INFO);
    int rc = st_agent_flags_parse(argc, argv, &o, err, sizeof(err));
    if (rc == 1 && o.version) {
        printf("stampede-agent %s\n", ST_VERSION);
        return ST_EXIT_OK;
    }
    if (rc == 1) {
        st_agent_flags_usage(stdout);
        return ST_EXIT_OK;
    }
    if (rc) {
        fprintf(stderr, "stampede-agent: %s\n", err);
        return rc == ST_EINVAL ? ST_EXIT_USAGE : ST_EXIT_FAILURE;
    }
    st_log_init("stampede-agent", (st_log_level)o.log_level);
    st_cli_stop_signals(on_signal);
    if (o.coordinator) {
        st_taskmeta task = {0};
        bool on_ecs = read_task(&task);
        const char *id = on_ecs ? strrchr(task.task_arn, '/') : NULL;
        char taskdef[256] = "";
        if (on_ecs) {
            snprintf(taskdef, sizeof(taskdef), "%s:%s", task.family, task.revision);
        }
        st_remote_opts ro = {
            .url = o.coordinator,
            .token = o.token,
            .tls_fingerprint = o.tls_fingerprint,
            .name = o.name ? o.name : id ? id + 1 : NULL, /* a task is named by its id */
            .engine = o.engine,
            .threads = o.f.threads,
            .cpus = agent_cpus(on_ecs ? &task : NULL),
            .task_arn = on_ecs ? task.task_arn : NULL,
            .availability_zone = on_ecs ? task.availability_zone : NULL,
            .cluster = on_ecs ? task.cluster : NULL,
            .task_definition = taskdef,
            .cpu_vcpus = on_ecs ? task.cpu_vcpus : 0,
            .has_clock_error_bound = on_ecs && task.has_clock_error_bound,
            .clock_error_bound_ms = on_ecs ? task.clock_error_bound_ms : 0,
        };
        int code = st_remote_run(&ro, &g_stop_signal);
        st_taskmeta_fini(&task);
        return code;
    }
    st_plan plan;
    const st_engine_ops *engine = NULL;
    if ((rc = st_agent_flags_plan(&o, &plan, &engine, err, sizeof(err)))) {
        fprintf(stderr, "stampede-agent: %s\n", err[0] ? err : "invalid plan");
        st_plan_fini(&plan);
        return rc == ST_ENOMEM ? ST_EXIT_FAILURE : ST_EXIT_USAGE;
    }
    int code = run_standalone(&plan, engine, o.json);
    st_plan_fini(&plan);
    return code;
}
