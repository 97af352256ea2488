#include "launcher.h"
#include "ecs.h"
#include "error.h"
#include "launch_ecs.h"
#include "log.h"
#include "plan.h"
#include "run_id.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SUBNETS 16
#define MAX_GROUPS  5
#define TAG_KEY     "stampede:run"

struct st_launcher {
    st_launcher_env env;
    st_aws_client *aws;
    char *lists; /* the subnets and the coordinator's groups, cut at the commas */
    const char *subnets[MAX_SUBNETS];
    size_t n_subnets;
    const char *groups[MAX_GROUPS];
    size_t n_groups;
};

/* ---- the settings ---- */

static int need(const char *(*get)(const char *), const char *name, const char **out, char *err,
                size_t err_len, const char *what)
{
    *out = get(name);
    if (!*out || !**out) {
        return st_errf(err, err_len, ST_EINVAL, "%s is not set: it must hold %s", name, what);
    }
    return 0;
}

int st_launcher_env_read(st_launcher_env *e, const char *(*get)(const char *name), char *err,
                         size_t err_len)
{
    memset(e, 0, sizeof(*e));
    const char *public_ip = NULL;
    int rc;
    if ((rc = need(get, "STAMPEDE_CLUSTER", &e->cluster, err, err_len, "the ECS cluster's name")) ||
        (rc = need(get, "STAMPEDE_COORDINATOR_TASK_DEFINITION", &e->coordinator_task_definition,
                   err, err_len, "the coordinator's task definition, FAMILY[:REV]")) ||
        (rc = need(get, "STAMPEDE_AGENT_TASK_DEFINITION", &e->agent_task_definition, err, err_len,
                   "the agents' task definition, FAMILY[:REV]")) ||
        (rc = need(get, "STAMPEDE_SUBNETS", &e->subnets, err, err_len,
                   "the tasks' subnets, subnet-a,subnet-b")) ||
        (rc = need(get, "STAMPEDE_COORDINATOR_SECURITY_GROUPS", &e->coordinator_security_groups,
                   err, err_len, "the coordinator task's security groups, sg-a[,sg-b]")) ||
        (rc = need(get, "STAMPEDE_AGENT_SECURITY_GROUPS", &e->agent_security_groups, err, err_len,
                   "the agent tasks' security groups, sg-a[,sg-b]")) ||
        (rc = need(get, "STAMPEDE_ASSIGN_PUBLIC_IP", &public_ip, err, err_len,
                   "ENABLED or DISABLED")) ||
        (rc = need(get, "STAMPEDE_SQS_QUEUE_URL", &e->sqs_queue_url, err, err_len,
                   "the results queue's URL")) ||
        (rc = need(get, "STAMPEDE_TABLE", &e->table, err, err_len, "the results table's name"))) {
        return rc;
    }
    if (strcmp(public_ip, "ENABLED") != 0 && strcmp(public_ip, "DISABLED") != 0) {
        return st_errf(err, err_len, ST_EINVAL,
                       "STAMPEDE_ASSIGN_PUBLIC_IP is \"%.40s\": it must be ENABLED or DISABLED",
                       public_ip);
    }
    e->assign_public_ip = strcmp(public_ip, "ENABLED") == 0;
    if (strncmp(e->sqs_queue_url, "https://", 8) != 0 &&
        strncmp(e->sqs_queue_url, "http://", 7) != 0) {
        return st_errf(err, err_len, ST_EINVAL,
                       "STAMPEDE_SQS_QUEUE_URL is \"%.80s\": it must be the queue's URL, "
                       "https://sqs.REGION.amazonaws.com/ACCOUNT/NAME",
                       e->sqs_queue_url);
    }
    e->coordinator_container = get("STAMPEDE_COORDINATOR_CONTAINER");
    if (!e->coordinator_container || !*e->coordinator_container) {
        e->coordinator_container = "coordinator";
    }
    e->coordinator_listen = get("STAMPEDE_COORDINATOR_LISTEN");
    if (e->coordinator_listen && !*e->coordinator_listen) {
        e->coordinator_listen = NULL;
    }
    /* The lists are checked as stampede run checks its flags; their messages name the flag,
     * told here as the variable. */
    static const struct {
        const char *name, *prefix;
        size_t max;
        size_t at;
    } lists[] = {
        {"STAMPEDE_SUBNETS", "subnet-", MAX_SUBNETS, offsetof(st_launcher_env, subnets)},
        {"STAMPEDE_COORDINATOR_SECURITY_GROUPS", "sg-", MAX_GROUPS,
         offsetof(st_launcher_env, coordinator_security_groups)},
        {"STAMPEDE_AGENT_SECURITY_GROUPS", "sg-", MAX_GROUPS,
         offsetof(st_launcher_env, agent_security_groups)},
    };
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        char why[512];
        const char *text = *(const char *const *)((const char *)e + lists[i].at);
        if (st_launch_ecs_check_list(lists[i].name, text, lists[i].prefix, lists[i].max, why,
                                     sizeof(why))) {
            /* why starts "--NAME: ": the variable has no dashes. */
            return st_errf(err, err_len, ST_EINVAL, "%s", why + (why[0] == '-' ? 2 : 0));
        }
    }
    return 0;
}

/* ---- the event ---- */

void st_launcher_event_fini(st_launcher_event *ev)
{
    free(ev->plan_json);
    memset(ev, 0, sizeof(*ev));
}

/* A body_file would be read here, from the function's own files, and the coordinator's task has
 * none of the caller's: an event carries its bodies inline. */
static int check_no_body_file(const cJSON *j, char *err, size_t err_len)
{
    const cJSON *reqs = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "requests") : NULL;
    int i = 0;
    for (const cJSON *r = cJSON_IsArray(reqs) ? reqs->child : NULL; r; r = r->next, i++) {
        if (cJSON_IsObject(r) && cJSON_GetObjectItemCaseSensitive(r, "body_file")) {
            return st_errf(err, err_len, ST_EINVAL,
                           "$.requests[%d].body_file: a plan sent to the launcher carries its "
                           "bodies inline (\"body\"): no file of yours reaches the coordinator's "
                           "task",
                           i);
        }
    }
    return 0;
}

int st_launcher_event_read(const char *text, size_t len, st_launcher_event *ev, char *err,
                           size_t err_len)
{
    memset(ev, 0, sizeof(*ev));
    cJSON *j = cJSON_ParseWithLength(text, len);
    int rc = check_no_body_file(j, err, err_len);
    if (rc) {
        cJSON_Delete(j);
        return rc;
    }
    st_plan plan;
    st_plan_init(&plan);
    /* No origin: the messages start with the JSON path, "$.rate: ...". */
    rc = st_plan_parse(&plan, text, len, NULL, err, err_len);
    if (!rc) {
        rc = st_plan_finish(&plan, 1, err, err_len);
    }
    if (rc) {
        st_plan_fini(&plan);
        cJSON_Delete(j);
        return rc;
    }
    ev->agents = plan.agents > 0 ? plan.agents : 1;
    if (plan.closed_loop) {
        ev->duration_s = plan.duration_s;
    } else {
        ev->duration_s = plan.profile.total_s;
        ev->target_rps = plan.profile.total_s > 0 ? plan.profile.total_n / plan.profile.total_s : 0;
    }
    st_plan_fini(&plan);
    /* The plan parser read it, so it is one JSON object: hand it on compact, as it was. */
    if (!j) {
        /* What the plan parser takes and cJSON does not (a NUL inside, say) is not handed on. */
        return st_errf(err, err_len, ST_EINVAL, "$: the event is not one JSON document");
    }
    ev->plan_json = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!ev->plan_json) {
        return st_errf(err, err_len, ST_ENOMEM, "out of memory");
    }
    return 0;
}

/* ---- the launch ---- */

int st_launcher_new(st_launcher **out, const st_launcher_env *env, const st_aws_config *cfg,
                    char *err, size_t err_len)
{
    st_launcher *l = calloc(1, sizeof(*l));
    if (!l) {
        return st_errf(err, err_len, ST_ENOMEM, "out of memory");
    }
    l->env = *env;
    size_t a = strlen(env->subnets) + 1, b = strlen(env->coordinator_security_groups) + 1;
    if (!(l->lists = malloc(a + b))) {
        free(l);
        return st_errf(err, err_len, ST_ENOMEM, "out of memory");
    }
    memcpy(l->lists, env->subnets, a);
    memcpy(l->lists + a, env->coordinator_security_groups, b);
    l->n_subnets = st_launch_ecs_cut_list(l->lists, l->subnets, MAX_SUBNETS);
    l->n_groups = st_launch_ecs_cut_list(l->lists + a, l->groups, MAX_GROUPS);
    st_aws_error aerr;
    int rc = st_aws_client_new(&l->aws, cfg, &aerr);
    if (rc) {
        st_launcher_free(l);
        return st_errf(err, err_len, rc, "%s", aerr.message);
    }
    *out = l;
    return 0;
}

void st_launcher_free(st_launcher *l)
{
    if (!l) {
        return;
    }
    st_aws_client_free(l->aws);
    free(l->lists);
    free(l);
}

/* The coordinator's command line: stampede run's arguments after the image's entryPoint. */
typedef struct coord_cmd {
    const char *argv[40];
    size_t n;
    char agents[16];
} coord_cmd;

static void add(coord_cmd *c, const char *a, const char *b)
{
    c->argv[c->n++] = a;
    if (b) {
        c->argv[c->n++] = b;
    }
}

static void coord_command(const st_launcher_env *e, int agents, const char *run_id, coord_cmd *c)
{
    c->n = 0;
    snprintf(c->agents, sizeof(c->agents), "%d", agents);
    add(c, "run", NULL);
    add(c, "--plan-env", ST_LAUNCHER_PLAN_ENV);
    add(c, "--launcher", "ecs");
    add(c, "--headless", NULL);
    add(c, "--agents", c->agents);
    add(c, "--cluster", e->cluster);
    add(c, "--task-definition", e->agent_task_definition);
    add(c, "--subnets", e->subnets);
    add(c, "--security-groups", e->agent_security_groups);
    add(c, e->assign_public_ip ? "--assign-public-ip" : "--no-assign-public-ip", NULL);
    add(c, "--sqs-queue-url", e->sqs_queue_url);
    add(c, "--run-id", run_id);
    if (e->coordinator_listen) {
        add(c, "--listen", e->coordinator_listen);
    }
}

static int refuse(st_lambda_reply *reply, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(st_lambda_reply *reply, const char *type, const char *fmt, ...)
{
    snprintf(reply->error_type, sizeof(reply->error_type), "%s", type);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reply->error_message, sizeof(reply->error_message), fmt, ap);
    va_end(ap);
    st_error("%s: %s", type, reply->error_message);
    return ST_EINVAL;
}

/* An ECS call's error as the invocation's error. */
static int ecs_refused(st_lambda_reply *reply, int rc, const st_aws_error *aerr)
{
    char action[128];
    switch (st_ecs_error_kind(rc, aerr)) {
    case ST_ECS_ACCESS_DENIED:
        if (!st_ecs_denied_action(aerr->message, action, sizeof(action))) {
            snprintf(action, sizeof(action), "ecs:RunTask");
        }
        return refuse(reply, "Launcher.AccessDenied",
                      "access denied: the launcher's role may not call %s (see docs/ecs.md): %s",
                      action, aerr->message);
    case ST_ECS_AUTH:
        return refuse(reply, "Launcher.AccessDenied", "AWS credentials: %s", aerr->message);
    case ST_ECS_INVALID:
        return refuse(reply, "Launcher.EcsRefused",
                      "ECS refused ecs:RunTask of the coordinator: %s (check "
                      "STAMPEDE_COORDINATOR_TASK_DEFINITION, STAMPEDE_SUBNETS and the security "
                      "groups)",
                      aerr->message);
    case ST_ECS_NOT_FOUND:
        return refuse(reply, "Launcher.NotFound", "%s (check STAMPEDE_CLUSTER and the region)",
                      aerr->message);
    default:
        return refuse(reply, "Launcher.EcsFailed", "ecs:RunTask failed after %d tries: %s",
                      aerr->attempts, aerr->message);
    }
}

static int answer(st_lambda_reply *reply, const st_launcher_env *e, const char *run_id,
                  const char *arn, const st_launcher_event *ev)
{
    cJSON *a = cJSON_CreateObject();
    if (!a || !cJSON_AddStringToObject(a, "run_id", run_id) ||
        !cJSON_AddStringToObject(a, "coordinator_task_arn", arn) ||
        !cJSON_AddStringToObject(a, "queue_url", e->sqs_queue_url) ||
        !cJSON_AddStringToObject(a, "table", e->table) ||
        !cJSON_AddNumberToObject(a, "agents", ev->agents) ||
        !cJSON_AddNumberToObject(a, "target_rps", ev->target_rps) ||
        !cJSON_AddNumberToObject(a, "duration_s", ev->duration_s)) {
        cJSON_Delete(a);
        return ST_ENOMEM;
    }
    reply->response = a;
    return 0;
}

int st_launcher_handle(void *ctx, const char *request_id, const char *event, st_lambda_reply *reply)
{
    st_launcher *l = ctx;
    const st_launcher_env *e = &l->env;
    char err[sizeof(reply->error_message)];
    st_launcher_event ev;
    int rc = st_launcher_event_read(event, strlen(event), &ev, err, sizeof(err));
    if (rc == ST_ENOMEM) {
        return rc;
    }
    if (rc) {
        return refuse(reply, "Launcher.InvalidEvent", "%s", err);
    }
    char run_id[ST_RUN_ID_LEN + 1], token[ST_ECS_TOKEN_MAX + 1];
    st_run_id_make(run_id, sizeof(run_id));
    snprintf(token, sizeof(token), "%s-coordinator", run_id);
    coord_cmd cmd;
    coord_command(e, ev.agents, run_id, &cmd);
    st_ecs_kv tag = {TAG_KEY, run_id};
    st_ecs_kv env = {ST_LAUNCHER_PLAN_ENV, ev.plan_json};
    st_ecs_run_req req = {
        .cluster = e->cluster,
        .task_definition = e->coordinator_task_definition,
        .count = 1,
        .capacity = ST_ECS_FARGATE,
        .subnets = l->subnets,
        .n_subnets = l->n_subnets,
        .security_groups = l->groups,
        .n_security_groups = l->n_groups,
        .assign_public_ip = e->assign_public_ip,
        /* The run id itself, not the agents' "stampede-RUN_ID" (the coordinator stops those
         * tasks when its run ends, and must not stop its own). */
        .started_by = run_id,
        .tags = &tag,
        .n_tags = 1,
        .container = e->coordinator_container,
        .env = &env,
        .n_env = 1,
        .command = cmd.argv,
        .n_command = cmd.n,
        .client_token = token,
    };
    st_ecs_tasks got = {0};
    st_aws_error aerr;
    char why[512];
    if ((rc = st_ecs_run_check(&req, why, sizeof(why)))) {
        /* The settings were checked at start: what ECS's limits refuse now is the plan's size. */
        if (rc == ST_EINVAL && strstr(why, "above ECS's limit")) {
            rc = refuse(reply, "Launcher.PlanTooLarge",
                        "$: the plan is %zu characters as compact JSON, passed to the coordinator "
                        "in %s: %s (make the plan smaller: fewer or shorter requests, headers "
                        "and bodies)",
                        strlen(ev.plan_json), ST_LAUNCHER_PLAN_ENV, why);
        } else if (rc == ST_EINVAL) {
            rc = refuse(reply, "Launcher.ConfigurationError", "%s", why);
        }
        goto out;
    }
    rc = st_ecs_run_task(l->aws, &req, &got, &aerr);
    if (rc) {
        rc = rc == ST_ENOMEM ? rc : ecs_refused(reply, rc, &aerr);
        goto out;
    }
    if (got.n_tasks == 0 || !got.tasks[0].arn) {
        const st_ecs_failure *f = got.n_failures ? &got.failures[0] : NULL;
        rc = refuse(reply, "Launcher.TaskFailed",
                    "ECS did not start the coordinator's task (ecs:RunTask of %s): %s%s%s%s",
                    e->coordinator_task_definition,
                    f && f->reason ? f->reason
                                   : "no task and no "
                                     "failure given",
                    f && f->detail ? " (" : "", f && f->detail ? f->detail : "",
                    f && f->detail ? ")" : "");
        goto out;
    }
    st_info("invocation %s: run %s, coordinator task %s, %d agent(s), %.1f rps for %.1f s",
            request_id, run_id, got.tasks[0].arn, ev.agents, ev.target_rps, ev.duration_s);
    rc = answer(reply, e, run_id, got.tasks[0].arn, &ev);
out:
    st_ecs_tasks_fini(&got);
    st_launcher_event_fini(&ev);
    return rc;
}
