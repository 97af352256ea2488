/* The ecs launcher (launch_ecs.h). */
#include "launch_ecs.h"
#include "clock.h"
#include "ecs.h"
#include "error.h"
#include "fargate_prices.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define MAX_SUBNETS         16
#define MAX_SECURITY_GROUPS 5
#define MAX_ENV             8
#define RUN_ATTEMPTS        6 /* rounds of RunTask for what failed, the first included */
#define DESCRIBE_BASE_NS    (1 * ST_NS_PER_S)
#define DESCRIBE_MAX_NS     (10 * ST_NS_PER_S)
#define PROGRESS_EVERY_NS   (10 * ST_NS_PER_S)
#define TAG_KEY             "stampede:run"

typedef struct ecs_task {
    char *arn;
    char *last_status;
    char *az, *ip;
    bool stop_sent;
} ecs_task;

typedef struct ecs_launcher {
    st_launch_cfg cfg;
    st_ecs_launch_cfg ecs;
    st_aws_client *aws;
    char *lists; /* the subnets' and security groups' text, cut at the commas */
    const char *subnets[MAX_SUBNETS], *security_groups[MAX_SECURITY_GROUPS];
    size_t n_subnets, n_security_groups;
    char container[256];
    char cpu[16], memory[16];   /* the overrides, "" for none */
    long cpu_units, memory_mib; /* what each task gets */
    char started_by[40];
    ecs_task *tasks;
    int n_tasks;
    int missing; /* tasks still to ask for */
    int batch;   /* the batch number of the next RunTask (its clientToken) */
    int resend;  /* > 0: batch `batch` of this many went unanswered: same token again */
    int round;   /* rounds of RunTask that came back short, or unanswered */
    uint64_t next_run_ns, next_describe_ns, describe_delay_ns, progress_ns;
    char progress[200];
    int registered;
    bool finished;
    bool failed;
    bool announced; /* the line of the last registration is out */
} ecs_launcher;

static uint64_t jitter(void)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
        r = st_clock_mono_ns() * 6364136223846793005ULL;
    }
    return r;
}

/* Backoff before round `round` of RunTask: 1 s doubling, capped at 16 s, jittered over its upper
 * half (aws.h's st_aws_backoff_ms). */
static uint64_t run_backoff_ns(int round)
{
    st_aws_retry r = {.max_attempts = RUN_ATTEMPTS, .base_delay_ms = 1000, .max_delay_ms = 16000};
    return (uint64_t)st_aws_backoff_ms(&r, round, jitter()) * 1000000ull;
}

static const char *task_id(const char *arn)
{
    const char *slash = arn ? strrchr(arn, '/') : NULL;
    return slash ? slash + 1 : arn ? arn : "?";
}

int st_launch_ecs_check_list(const char *flag, const char *text, const char *prefix, size_t max,
                             char *err, size_t err_len)
{
    size_t n = 0;
    const char *p = text;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len <= strlen(prefix) || strncmp(p, prefix, strlen(prefix)) != 0) {
            snprintf(err, err_len,
                     "--%s: \"%.*s\" is not an id like %sabc123 (a list is "
                     "comma-separated: %s1,%s2)",
                     flag, (int)len, p, prefix, prefix, prefix);
            return ST_EINVAL;
        }
        if (++n > max) {
            snprintf(err, err_len, "--%s: at most %zu ids (ECS's limit)", flag, max);
            return ST_EINVAL;
        }
        if (!comma) {
            return 0;
        }
        p = comma + 1;
    }
}

size_t st_launch_ecs_cut_list(char *text, const char **v, size_t max)
{
    size_t n = 0;
    for (char *save = NULL, *tok = strtok_r(text, ",", &save); tok && n < max;
         tok = strtok_r(NULL, ",", &save)) {
        v[n++] = tok;
    }
    return n;
}

/* What an ECS call's error means for the launch: a code and a message that says what to do. */
static int call_failed(const char *action, int rc, const st_aws_error *aerr, char *err,
                       size_t err_len)
{
    char denied[128];
    switch (st_ecs_error_kind(rc, aerr)) {
    case ST_ECS_ACCESS_DENIED:
        if (!st_ecs_denied_action(aerr->message, denied, sizeof(denied))) {
            snprintf(denied, sizeof(denied), "%s", action);
        }
        snprintf(err, err_len,
                 "access denied: the coordinator may not call %s (add it to its IAM "
                 "policy: see docs/ecs.md): %s",
                 denied, aerr->message);
        return ST_EAUTH;
    case ST_ECS_AUTH:
        snprintf(err, err_len, "AWS credentials: %s", aerr->message);
        return ST_EAUTH;
    case ST_ECS_INVALID:
        snprintf(err, err_len,
                 "ECS refused %s: %s (check --subnets, --security-groups, "
                 "--task-definition and --container)",
                 action, aerr->message);
        return ST_EINVAL;
    case ST_ECS_NOT_FOUND:
        snprintf(err, err_len, "%s (check --cluster and --region)", aerr->message);
        return ST_ENOTFOUND;
    default:
        snprintf(err, err_len, "%s failed after %d tries: %s", action, aerr->attempts,
                 aerr->message);
        return rc == ST_ENOMEM ? ST_ENOMEM : ST_EREMOTE;
    }
}

/* The lists, the client, and the task definition's container, vCPU and memory. Without
 * need_aws (a dry run given --cpu, --memory and --container) no call is made. */
static int setup(ecs_launcher *e, const st_launch_cfg *cfg, bool need_aws, char *err,
                 size_t err_len)
{
    e->cfg = *cfg;
    e->ecs = *cfg->ecs;
    const st_ecs_launch_cfg *c = cfg->ecs;
    size_t a = strlen(c->subnets) + 1, b = strlen(c->security_groups) + 1;
    if (!(e->lists = malloc(a + b))) {
        return ST_ENOMEM;
    }
    memcpy(e->lists, c->subnets, a);
    memcpy(e->lists + a, c->security_groups, b);
    e->n_subnets = st_launch_ecs_cut_list(e->lists, e->subnets, MAX_SUBNETS);
    e->n_security_groups =
        st_launch_ecs_cut_list(e->lists + a, e->security_groups, MAX_SECURITY_GROUPS);
    snprintf(e->started_by, sizeof(e->started_by), "stampede-%s", cfg->run_id);
    if (c->cpu_units > 0) {
        snprintf(e->cpu, sizeof(e->cpu), "%d", c->cpu_units);
        snprintf(e->memory, sizeof(e->memory), "%d", c->memory_mib);
    }
    e->cpu_units = c->cpu_units;
    e->memory_mib = c->memory_mib;
    snprintf(e->container, sizeof(e->container), "%s", c->container ? c->container : "");
    if (!need_aws) {
        return 0;
    }
    st_aws_config acfg;
    st_aws_config_init(&acfg);
    acfg.region = c->region;
    acfg.service_endpoint_url[ST_AWS_ECS] = c->endpoint_url;
    st_aws_error aerr;
    int rc = st_aws_client_new(&e->aws, &acfg, &aerr);
    if (rc) {
        snprintf(err, err_len, "%s", aerr.message);
        return rc;
    }
    st_ecs_taskdef td = {0};
    if ((rc = st_ecs_describe_taskdef(e->aws, c->task_definition, &td, &aerr))) {
        rc = call_failed("ecs:DescribeTaskDefinition", rc, &aerr, err, err_len);
        st_ecs_taskdef_fini(&td);
        return rc;
    }
    if (!c->container) {
        if (td.n_containers != 1) {
            char names[512] = "";
            for (size_t i = 0; i < td.n_containers; i++) {
                size_t at = strlen(names);
                snprintf(names + at, sizeof(names) - at, "%s%s", i ? ", " : "", td.containers[i]);
            }
            snprintf(err, err_len,
                     "task definition %s has %zu containers (%s): say which runs "
                     "stampede-agent with --container NAME",
                     td.arn ? td.arn : c->task_definition, td.n_containers, names);
            st_ecs_taskdef_fini(&td);
            return ST_EINVAL;
        }
        snprintf(e->container, sizeof(e->container), "%s", td.containers[0]);
    }
    if (c->cpu_units <= 0) {
        e->cpu_units = td.cpu_units;
        e->memory_mib = td.memory_mib;
    }
    if (!td.fargate) {
        st_warn("task definition %s does not list FARGATE in requiresCompatibilities: RunTask "
                "will refuse it",
                td.arn ? td.arn : c->task_definition);
    }
    st_ecs_taskdef_fini(&td);
    return 0;
}

/* The RunTask request of `count` tasks as batch number `batch` (token written into token). */
static void fill_req(const ecs_launcher *e, int count, int batch, st_ecs_run_req *req,
                     st_ecs_kv *env, st_ecs_kv *tag, char name[32], char threads[16],
                     char token[2][72])
{
    size_t n = 0;
    env[n++] = (st_ecs_kv){"STAMPEDE_COORDINATOR", e->cfg.coordinator_url};
    env[n++] = (st_ecs_kv){"STAMPEDE_TOKEN", e->cfg.token};
    if (e->cfg.tls_fingerprint) {
        env[n++] = (st_ecs_kv){"STAMPEDE_TLS_FINGERPRINT", e->cfg.tls_fingerprint};
    }
    /* No STAMPEDE_NAME: one RunTask gives each of its tasks the same overrides, so a name would
     * be shared; each agent names itself after its task's id (from the task metadata). */
    (void)name;
    env[n++] = (st_ecs_kv){"STAMPEDE_LOG_LEVEL", e->cfg.log_level ? e->cfg.log_level : "info"};
    if (e->cfg.threads > 0) {
        snprintf(threads, 16, "%d", e->cfg.threads);
        env[n++] = (st_ecs_kv){"STAMPEDE_THREADS", threads};
    }
    if (e->cfg.engine) {
        env[n++] = (st_ecs_kv){"STAMPEDE_ENGINE", e->cfg.engine};
    }
    *tag = (st_ecs_kv){TAG_KEY, e->cfg.run_id};
    snprintf(token[0], 72, "%s-%d", e->cfg.run_id, batch + 1);
    snprintf(token[1], 72, "%s-%df", e->cfg.run_id, batch + 1);
    *req = (st_ecs_run_req){
        .cluster = e->ecs.cluster,
        .task_definition = e->ecs.task_definition,
        .count = count,
        .capacity = e->ecs.spot ? ST_ECS_SPOT_THEN_FARGATE : ST_ECS_FARGATE,
        .subnets = e->subnets,
        .n_subnets = e->n_subnets,
        .security_groups = e->security_groups,
        .n_security_groups = e->n_security_groups,
        .assign_public_ip = e->ecs.assign_public_ip,
        .started_by = e->started_by,
        .tags = tag,
        .n_tags = 1,
        .container = e->container,
        .env = env,
        .n_env = n,
        .cpu = e->cpu[0] ? e->cpu : NULL,
        .memory = e->memory[0] ? e->memory : NULL,
        .client_token = token[0],
        .fallback_client_token = token[1],
    };
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void set_str(char **dst, const char *src)
{
    if (src && (!*dst || strcmp(*dst, src) != 0)) {
        free(*dst);
        *dst = strdup(src);
    }
}

/* Keeps the tasks ECS started, never more than the agents asked for: an extra one (ECS
 * answering beyond its count) is stopped at once. */
static void take_started(ecs_launcher *e, const st_ecs_tasks *got)
{
    for (size_t i = 0; i < got->n_tasks; i++) {
        const st_ecs_task *t = &got->tasks[i];
        bool known = false;
        for (int k = 0; k < e->n_tasks && !known; k++) {
            known = strcmp(e->tasks[k].arn, t->arn) == 0;
        }
        if (known) {
            continue;
        }
        if (e->n_tasks == e->cfg.agents) {
            st_aws_error aerr;
            st_warn("ECS started task %s beyond the %d asked for: stopping it", task_id(t->arn),
                    e->cfg.agents);
            st_ecs_stop_task(e->aws, e->ecs.cluster, t->arn, "stampede: more tasks than asked",
                             NULL, &aerr);
            continue;
        }
        ecs_task *k = &e->tasks[e->n_tasks++];
        k->arn = strdup(t->arn);
        k->last_status = dup_or_null(t->last_status);
    }
}

/* Sends the RunTask batches due now. Returns 0 (failures[] and transient errors are retried
 * later), or an error that ends the launch. */
static int pump(ecs_launcher *e, char *err, size_t err_len)
{
    while (e->missing > 0 && st_clock_mono_ns() >= e->next_run_ns) {
        int count = e->resend                     ? e->resend
                    : e->missing < ST_ECS_RUN_MAX ? e->missing
                                                  : ST_ECS_RUN_MAX;
        st_ecs_run_req req;
        st_ecs_kv env[MAX_ENV], tag;
        char name[32], threads[16], token[2][72];
        fill_req(e, count, e->batch, &req, env, &tag, name, threads, token);
        st_ecs_tasks got = {0};
        st_aws_error aerr;
        int rc = st_ecs_run_task(e->aws, &req, &got, &aerr);
        int before = e->n_tasks;
        take_started(e, &got);
        int started = e->n_tasks - before;
        if (rc) {
            st_ecs_kind kind = st_ecs_error_kind(rc, &aerr);
            bool transient =
                kind == ST_ECS_THROTTLED || kind == ST_ECS_UNAVAILABLE || kind == ST_ECS_OTHER;
            if (!transient || e->round + 1 >= RUN_ATTEMPTS || started > 0) {
                st_ecs_tasks_fini(&got);
                if (transient && started == 0) {
                    snprintf(err, err_len, "RunTask failed %d times: %s", RUN_ATTEMPTS,
                             aerr.message);
                    return ST_EREMOTE;
                }
                if (!transient) {
                    return call_failed("ecs:RunTask", rc, &aerr, err, err_len);
                }
                /* The Spot fallback failed after Spot started some: ask for the rest anew. */
                e->missing -= started;
                e->batch++;
                e->resend = 0;
            } else {
                /* The answer never came: the same batch again with the same token, which
                 * starts nothing twice. */
                e->resend = count;
            }
            st_warn("RunTask (batch %d): %s: again in a while", e->batch + 1, aerr.message);
            e->next_run_ns = st_clock_mono_ns() + run_backoff_ns(e->round++);
            st_ecs_tasks_fini(&got);
            return 0;
        }
        e->resend = 0;
        e->batch++;
        e->missing -= started;
        if (got.n_failures > 0 || started < count) {
            const st_ecs_failure *f = got.n_failures ? &got.failures[0] : NULL;
            const char *reason = f && f->reason ? f->reason : "no reason given";
            const char *detail = f && f->detail ? f->detail : "";
            st_ecs_kind kind = f ? f->kind : ST_ECS_OTHER;
            if (kind == ST_ECS_QUOTA || e->round + 1 >= RUN_ATTEMPTS) {
                snprintf(err, err_len, "ECS started %d of the %d tasks asked for: %s%s%s%s%s",
                         e->n_tasks, e->cfg.agents, st_ecs_kind_name(kind),
                         kind == ST_ECS_QUOTA ? " (ask for a higher Fargate quota in Service "
                                                "Quotas, or use fewer --agents): "
                                              : " after every retry: ",
                         reason, detail[0] ? ": " : "", detail);
                st_ecs_tasks_fini(&got);
                return ST_EAGAIN;
            }
            st_warn("ECS started %d of %d tasks (%s: %s%s%s): asking for the %d missing again",
                    started, count, st_ecs_kind_name(kind), reason, detail[0] ? ": " : "", detail,
                    e->missing);
            e->next_run_ns = st_clock_mono_ns() + run_backoff_ns(e->round++);
        }
        st_ecs_tasks_fini(&got);
    }
    return 0;
}

/* The tasks' size, their task-hours for duration_s of load and what that costs (fargate_prices.h),
 * each line after indent. */
static void print_size(const ecs_launcher *e, double duration_s, FILE *out, const char *indent)
{
    const st_ecs_launch_cfg *c = &e->ecs;
    int n = e->cfg.agents;
    double vcpu = (double)e->cpu_units / 1024.0, gb = (double)e->memory_mib / 1024.0;
    /* A Fargate task is billed from its image pull to its end: a minute to start is typical. */
    double hours = n * (duration_s + 60.0) / 3600.0;
    fprintf(out, "%s%.2f vCPU and %ld MiB per task (%s): %.2f vCPU, %ld MiB in all\n", indent,
            vcpu, e->memory_mib, c->cpu_units > 0 ? "the run's cpu and memory" : "its task definition",
            vcpu * n, e->memory_mib * n);
    fprintf(out,
            "%sabout %.3f task-hours (%.3f vCPU-hours, %.3f GB-hours): the load and about a "
            "minute of start-up per task\n",
            indent, hours, hours * vcpu, hours * gb);
    const char *region = c->region                 ? c->region
                         : e->aws                  ? st_aws_client_region(e->aws)
                         : getenv("AWS_REGION")    ? getenv("AWS_REGION")
                                                   : getenv("AWS_DEFAULT_REGION");
    st_fargate_print_estimate(out, indent, region && region[0] ? region : NULL, hours, vcpu, gb,
                              c->price_vcpu_hour, c->price_gb_hour);
}

static void ecs_finish(st_launcher *l, uint64_t grace_ns);
static void ecs_free(st_launcher *l);

static int ecs_start(st_launcher **out, const st_launch_cfg *cfg, char *err, size_t err_len)
{
    ecs_launcher *e = calloc(1, sizeof(*e));
    if (!e || !(e->tasks = calloc((size_t)cfg->agents, sizeof(ecs_task)))) {
        free(e);
        return ST_ENOMEM;
    }
    int rc = setup(e, cfg, true, err, err_len);
    if (rc) {
        ecs_free((st_launcher *)e);
        return rc;
    }
    st_info("ecs: %d tasks of %.2f vCPU and %ld MiB on cluster %s (%s, %s), agents dialing %s",
            cfg->agents, (double)e->cpu_units / 1024.0, e->memory_mib, e->ecs.cluster,
            e->ecs.task_definition, e->ecs.spot ? "FARGATE_SPOT, else FARGATE" : "FARGATE",
            cfg->coordinator_url);
    print_size(e, e->ecs.duration_s, stderr, "ecs: ");
    e->missing = cfg->agents;
    e->describe_delay_ns = DESCRIBE_BASE_NS;
    if ((rc = pump(e, err, err_len))) {
        e->failed = true;
        ecs_free((st_launcher *)e);
        return rc;
    }
    *out = (st_launcher *)e;
    return 0;
}

/* The tasks not known to be stopped, or stopping, as a list of ARNs (NULL when none). */
static const char **live_arns(const ecs_launcher *e, size_t *n)
{
    const char **arns = calloc((size_t)e->n_tasks + 1, sizeof(*arns));
    *n = 0;
    for (int i = 0; arns && i < e->n_tasks; i++) {
        if (!e->tasks[i].last_status || strcmp(e->tasks[i].last_status, "STOPPED") != 0) {
            arns[(*n)++] = e->tasks[i].arn;
        }
    }
    return arns;
}

static ecs_task *find(ecs_launcher *e, const char *arn)
{
    for (int i = 0; arn && i < e->n_tasks; i++) {
        if (strcmp(e->tasks[i].arn, arn) == 0) {
            return &e->tasks[i];
        }
    }
    return NULL;
}

/* DescribeTasks over the live tasks; got is filled on 0. */
static int describe(ecs_launcher *e, st_ecs_tasks *got, st_aws_error *aerr)
{
    size_t n;
    const char **arns = live_arns(e, &n);
    int rc = !arns    ? ST_ENOMEM
             : n == 0 ? ST_ENOTFOUND
                      : st_ecs_describe_tasks(e->aws, e->ecs.cluster, arns, n, got, aerr);
    free(arns);
    if (rc) {
        return rc;
    }
    for (size_t i = 0; i < got->n_tasks; i++) {
        ecs_task *k = find(e, got->tasks[i].arn);
        if (k) {
            set_str(&k->last_status, got->tasks[i].last_status);
            set_str(&k->az, got->tasks[i].availability_zone);
            set_str(&k->ip, got->tasks[i].private_ipv4);
        }
    }
    return 0;
}

static int stopped_early(const st_ecs_task *t, char *err, size_t err_len)
{
    const st_ecs_container *c = t->n_containers ? &t->containers[0] : NULL;
    for (size_t i = 0; i < t->n_containers; i++) {
        if (t->containers[i].reason) {
            c = &t->containers[i];
        }
    }
    char code[32] = "";
    if (c && c->has_exit_code) {
        snprintf(code, sizeof(code), ", exit code %d", c->exit_code);
    }
    snprintf(err, err_len,
             "ECS task %s stopped before its agent registered: %s: %s; container "
             "%s: %s%s",
             task_id(t->arn), t->stop_code ? t->stop_code : "stopped",
             t->stopped_reason ? t->stopped_reason : "no reason given",
             c && c->name ? c->name : "?", c && c->reason ? c->reason : "no reason given", code);
    return ST_EAGAIN;
}

static void progress(ecs_launcher *e)
{
    int prov = 0, pend = 0, run = 0, other = 0;
    for (int i = 0; i < e->n_tasks; i++) {
        const char *s = e->tasks[i].last_status ? e->tasks[i].last_status : "PROVISIONING";
        if (strcmp(s, "PROVISIONING") == 0) {
            prov++;
        } else if (strcmp(s, "PENDING") == 0 || strcmp(s, "ACTIVATING") == 0) {
            pend++;
        } else if (strcmp(s, "RUNNING") == 0) {
            run++;
        } else {
            other++;
        }
    }
    char line[sizeof(e->progress)];
    snprintf(line, sizeof(line),
             "%d of %d tasks started: %d provisioning, %d pending, %d running"
             "%s; %d of %d agents registered",
             e->n_tasks, e->cfg.agents, prov, pend, run, other ? ", others stopping" : "",
             e->registered, e->cfg.agents);
    uint64_t now = st_clock_mono_ns();
    if (strcmp(line, e->progress) != 0 || now >= e->progress_ns + PROGRESS_EVERY_NS) {
        st_info("ecs: %s", line);
        memcpy(e->progress, line, sizeof(line));
        e->progress_ns = now;
    }
}

static int ecs_watch(st_launcher *l, int registered, bool waiting, char *err, size_t err_len)
{
    ecs_launcher *e = (ecs_launcher *)l;
    e->registered = registered;
    if (!waiting) {
        if (!e->announced) {
            e->announced = true;
            st_ecs_tasks got = {0};
            st_aws_error aerr;
            if (describe(e, &got, &aerr) == 0) {
                progress(e);
            }
            st_ecs_tasks_fini(&got);
        }
        return 0;
    }
    int rc = pump(e, err, err_len);
    if (rc || st_clock_mono_ns() < e->next_describe_ns) {
        e->failed = rc != 0;
        return rc;
    }
    st_ecs_tasks got = {0};
    st_aws_error aerr;
    rc = describe(e, &got, &aerr);
    if (rc == ST_ENOTFOUND && e->n_tasks == 0) {
        rc = 0; /* nothing to describe yet */
    } else if (rc) {
        st_ecs_kind kind = st_ecs_error_kind(rc, &aerr);
        if (kind == ST_ECS_ACCESS_DENIED || kind == ST_ECS_AUTH || kind == ST_ECS_NOT_FOUND) {
            e->failed = true;
            return call_failed("ecs:DescribeTasks", rc, &aerr, err, err_len);
        }
        st_warn("DescribeTasks: %s: again in a while", aerr.message);
        e->describe_delay_ns =
            e->describe_delay_ns * 2 > DESCRIBE_MAX_NS ? DESCRIBE_MAX_NS : e->describe_delay_ns * 2;
        rc = 0;
    } else {
        e->describe_delay_ns = DESCRIBE_BASE_NS;
        for (size_t i = 0; i < got.n_tasks && !rc; i++) {
            if (got.tasks[i].last_status && strcmp(got.tasks[i].last_status, "STOPPED") == 0) {
                rc = stopped_early(&got.tasks[i], err, err_len);
                e->failed = true;
            }
        }
        progress(e);
    }
    st_ecs_tasks_fini(&got);
    e->next_describe_ns = st_clock_mono_ns() + e->describe_delay_ns;
    return rc;
}

static void stop_all(ecs_launcher *e)
{
    char reason[ST_ECS_STOP_REASON_MAX + 1];
    snprintf(reason, sizeof(reason), "stampede run %s %s", e->cfg.run_id,
             e->failed ? "could not launch its agents" : "ended");
    int failed = 0, sent = 0;
    for (int i = 0; i < e->n_tasks; i++) {
        ecs_task *k = &e->tasks[i];
        if (k->stop_sent) {
            continue;
        }
        st_aws_error aerr;
        int rc = st_ecs_stop_task(e->aws, e->ecs.cluster, k->arn, reason, NULL, &aerr);
        if (rc) {
            st_error("StopTask %s: %s", task_id(k->arn), aerr.message);
            failed++;
        } else {
            k->stop_sent = true;
            sent++;
        }
    }
    if (sent) {
        st_info("ecs: stopped %d tasks (%s)", sent, reason);
    }
    if (failed) {
        st_error("%d ECS tasks may still run: stop them with `stampede ecs stop --cluster %s --run "
                 "%s`",
                 failed, e->ecs.cluster, e->cfg.run_id);
    }
}

static void ecs_finish(st_launcher *l, uint64_t grace_ns)
{
    ecs_launcher *e = (ecs_launcher *)l;
    if (e->finished) {
        return;
    }
    e->finished = true;
    if (!e->aws || e->n_tasks == 0) {
        return;
    }
    /* Agents leave by themselves once told the run is over; give them grace_ns to do so, so
     * that their containers end cleanly, then stop every task, stopped or not. */
    uint64_t deadline = st_clock_mono_ns() + grace_ns;
    for (;;) {
        st_ecs_tasks got = {0};
        st_aws_error aerr;
        int rc = describe(e, &got, &aerr);
        st_ecs_tasks_fini(&got);
        if (rc || st_clock_mono_ns() >= deadline) {
            break;
        }
        struct timespec ts = {0, 250 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (e->registered < e->n_tasks) {
        for (int i = 0; i < e->n_tasks; i++) {
            const ecs_task *k = &e->tasks[i];
            if (k->last_status && strcmp(k->last_status, "RUNNING") == 0) {
                st_warn("ecs: task %s (%s, %s) is RUNNING; %d of %d agents registered: check that "
                        "the tasks reach %s (security groups, routes, --advertise)",
                        task_id(k->arn), k->az ? k->az : "?", k->ip ? k->ip : "?", e->registered,
                        e->n_tasks, e->cfg.coordinator_url);
            }
        }
    }
    stop_all(e);
}

static void ecs_free(st_launcher *l)
{
    ecs_launcher *e = (ecs_launcher *)l;
    if (!e) {
        return;
    }
    ecs_finish(l, 0);
    for (int i = 0; i < e->n_tasks; i++) {
        free(e->tasks[i].arn);
        free(e->tasks[i].last_status);
        free(e->tasks[i].az);
        free(e->tasks[i].ip);
    }
    free(e->tasks);
    free(e->lists);
    st_aws_client_free(e->aws);
    free(e);
}

const st_launcher_ops st_launcher_ecs = {
    .name = "ecs",
    .start = ecs_start,
    .poll = st_launch_poll_none,
    .watch = ecs_watch,
    .finish = ecs_finish,
    .free = ecs_free,
};

int st_launch_ecs_dry_run(const st_launch_cfg *cfg, double duration_s, FILE *out, char *err,
                          size_t err_len)
{
    ecs_launcher e = {0};
    const st_ecs_launch_cfg *c = cfg->ecs;
    st_launch_cfg shown = *cfg;
    shown.token = "<redacted>";
    int rc = setup(&e, &shown, !(c->cpu_units > 0 && c->container), err, err_len);
    if (rc) {
        goto out;
    }
    int calls = (cfg->agents + ST_ECS_RUN_MAX - 1) / ST_ECS_RUN_MAX;
    fprintf(out, "  ecs         %d tasks in %d RunTask calls on cluster %s (%s), %s\n", cfg->agents,
            calls, c->cluster, c->spot ? "FARGATE_SPOT, else FARGATE" : "FARGATE",
            c->task_definition);
    print_size(&e, duration_s, out, "              ");
    for (int b = 0, left = cfg->agents; left > 0; b++) {
        int count = left < ST_ECS_RUN_MAX ? left : ST_ECS_RUN_MAX;
        left -= count;
        st_ecs_run_req req;
        st_ecs_kv env[MAX_ENV], tag;
        char name[32], threads[16], token[2][72];
        fill_req(&e, count, b, &req, env, &tag, name, threads, token);
        cJSON *body = NULL;
        char why[512];
        if ((rc = st_ecs_run_request(&req, 0, &body, why, sizeof(why)))) {
            snprintf(err, err_len, "RunTask request %d: %s", b + 1, why);
            goto out;
        }
        char *text = cJSON_Print(body);
        cJSON_Delete(body);
        if (!text) {
            rc = ST_ENOMEM;
            goto out;
        }
        fprintf(out, "RunTask %d of %d:\n%s\n", b + 1, calls, text);
        free(text);
    }
out:
    free(e.lists);
    st_aws_client_free(e.aws);
    return rc;
}
