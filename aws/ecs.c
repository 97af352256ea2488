#include "ecs.h"
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- error kinds ---- */

const char *st_ecs_kind_name(st_ecs_kind kind)
{
    static const char *const names[] = {
        [ST_ECS_OK] = "ok",
        [ST_ECS_ACCESS_DENIED] = "access denied",
        [ST_ECS_INVALID] = "invalid parameter",
        [ST_ECS_NOT_FOUND] = "not found",
        [ST_ECS_THROTTLED] = "throttled",
        [ST_ECS_CAPACITY] = "no capacity",
        [ST_ECS_QUOTA] = "quota reached",
        [ST_ECS_AUTH] = "credentials refused",
        [ST_ECS_UNAVAILABLE] = "ECS unavailable",
        [ST_ECS_OTHER] = "error",
    };
    return (unsigned)kind <= ST_ECS_OTHER ? names[kind] : "error";
}

st_ecs_kind st_ecs_error_kind(int rc, const st_aws_error *err)
{
    const char *code = err ? err->aws_code : "";
    if (rc == 0) {
        return ST_ECS_OK;
    }
    if (strcmp(code, "AccessDeniedException") == 0 || strcmp(code, "AccessDenied") == 0) {
        return ST_ECS_ACCESS_DENIED;
    }
    if (strcmp(code, "ClientException") == 0 || strcmp(code, "InvalidParameterException") == 0 ||
        strcmp(code, "UnsupportedFeatureException") == 0 ||
        strcmp(code, "PlatformUnknownException") == 0 ||
        strcmp(code, "PlatformTaskDefinitionIncompatibilityException") == 0 || rc == ST_EINVAL) {
        return ST_ECS_INVALID;
    }
    if (strcmp(code, "ClusterNotFoundException") == 0 || rc == ST_ENOTFOUND) {
        return ST_ECS_NOT_FOUND;
    }
    if (rc == ST_EAGAIN) {
        return ST_ECS_THROTTLED;
    }
    if (rc == ST_EAUTH) {
        return ST_ECS_AUTH;
    }
    if (strcmp(code, "ServerException") == 0 || rc == ST_ECONNECT || rc == ST_ETIMEDOUT ||
        rc == ST_EIO || (err && err->http_status >= 500)) {
        return ST_ECS_UNAVAILABLE;
    }
    return ST_ECS_OTHER;
}

static int has(const char *s, const char *part)
{
    return s && strstr(s, part) != NULL;
}

st_ecs_kind st_ecs_failure_kind(const char *reason, const char *detail)
{
    if (!reason) {
        return ST_ECS_OTHER;
    }
    if (strcmp(reason, "MISSING") == 0) {
        return ST_ECS_NOT_FOUND;
    }
    /* "You've reached the limit on the number of tasks you can run concurrently", "vCPU limit",
     * "quota" in the reason or its detail. */
    if (has(reason, "limit") || has(reason, "quota") || has(detail, "limit") ||
        has(detail, "quota")) {
        return ST_ECS_QUOTA;
    }
    /* RESOURCE:MEMORY, RESOURCE:CPU, RESOURCE:ENI, "Capacity is unavailable at this time". */
    if (strncmp(reason, "RESOURCE:", 9) == 0 || has(reason, "apacity")) {
        return ST_ECS_CAPACITY;
    }
    if (has(reason, "AccessDenied")) {
        return ST_ECS_ACCESS_DENIED;
    }
    return ST_ECS_OTHER;
}

int st_ecs_denied_action(const char *message, char *out, size_t out_len)
{
    if (out_len) {
        out[0] = '\0';
    }
    const char *p = message ? strstr(message, "perform: ") : NULL;
    if (p) {
        p += 9;
    } else {
        /* "... because no identity-based policy allows the ecs:RunTask action" */
        p = message ? strstr(message, "allows the ") : NULL;
        p = p ? p + 11 : NULL;
    }
    if (!p) {
        return 0;
    }
    size_t n = strcspn(p, " \t,;");
    if (n == 0 || !memchr(p, ':', n) || n + 1 > out_len) {
        return 0;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return 1;
}

/* ---- RunTask ---- */

static int is_ascii_token(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > ST_ECS_TOKEN_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) {
            return 0;
        }
    }
    return 1;
}

static int check_started_by(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 36) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_')) {
            return 0;
        }
    }
    return 1;
}

static int check_strings(const char *const *v, size_t n, size_t min, size_t max, const char *what,
                         char *why, size_t why_len)
{
    if (n < min || n > max) {
        return st_errf(why, why_len, ST_EINVAL, "ECS RunTask: %s: %zu given, %zu to %zu allowed",
                       what, n, min, max);
    }
    for (size_t i = 0; i < n; i++) {
        if (!v[i] || !*v[i]) {
            return st_errf(why, why_len, ST_EINVAL, "ECS RunTask: %s[%zu] is empty", what, i);
        }
    }
    return 0;
}

static int check_fields(const st_ecs_run_req *r, char *why, size_t why_len)
{
    int rc;
    if (!r->cluster || !*r->cluster) {
        return st_errf(why, why_len, ST_EINVAL, "ECS RunTask: no cluster");
    }
    if (!r->task_definition || !*r->task_definition) {
        return st_errf(why, why_len, ST_EINVAL, "ECS RunTask: no task definition");
    }
    if (r->count < 1 || r->count > ST_ECS_RUN_MAX) {
        return st_errf(why, why_len, ST_EINVAL,
                       "ECS RunTask: count %d: must be 1 to %d per call (send batches)", r->count,
                       ST_ECS_RUN_MAX);
    }
    if ((unsigned)r->capacity > ST_ECS_SPOT_THEN_FARGATE) {
        return st_errf(why, why_len, ST_EINVAL, "ECS RunTask: unknown capacity choice %d",
                       (int)r->capacity);
    }
    if ((rc = check_strings(r->subnets, r->n_subnets, 1, 16, "subnets", why, why_len)) ||
        (rc = check_strings(r->security_groups, r->n_security_groups, 0, 5, "securityGroups", why,
                            why_len))) {
        return rc;
    }
    if (r->started_by && !check_started_by(r->started_by)) {
        return st_errf(why, why_len, ST_EINVAL,
                       "ECS RunTask: startedBy \"%.40s\": must be 1 to 36 letters, digits, - or _",
                       r->started_by);
    }
    if (r->n_tags > 50) {
        return st_errf(why, why_len, ST_EINVAL, "ECS RunTask: %zu tags, 50 allowed", r->n_tags);
    }
    for (size_t i = 0; i < r->n_tags; i++) {
        size_t kl = r->tags[i].name ? strlen(r->tags[i].name) : 0;
        size_t vl = r->tags[i].value ? strlen(r->tags[i].value) : 0;
        if (kl < 1 || kl > 128 || vl > 256) {
            return st_errf(why, why_len, ST_EINVAL,
                           "ECS RunTask: tags[%zu]: a key of 1 to 128 and a value of at most 256 "
                           "characters",
                           i);
        }
    }
    if (r->n_env && (!r->container || !*r->container)) {
        return st_errf(why, why_len, ST_EINVAL,
                       "ECS RunTask: environment overrides need the container's name");
    }
    if (r->n_command && (!r->container || !*r->container)) {
        return st_errf(why, why_len, ST_EINVAL,
                       "ECS RunTask: a command override needs the container's name");
    }
    for (size_t i = 0; i < r->n_command; i++) {
        if (!r->command[i]) {
            return st_errf(why, why_len, ST_EINVAL, "ECS RunTask: command[%zu] is missing", i);
        }
    }
    for (size_t i = 0; i < r->n_env; i++) {
        if (!r->env[i].name || !*r->env[i].name || !r->env[i].value) {
            return st_errf(why, why_len, ST_EINVAL,
                           "ECS RunTask: environment[%zu]: needs a name and a value", i);
        }
    }
    if (!is_ascii_token(r->client_token)) {
        return st_errf(why, why_len, ST_EINVAL,
                       "ECS RunTask: clientToken: must be 1 to %d printable ASCII characters",
                       ST_ECS_TOKEN_MAX);
    }
    if (r->capacity == ST_ECS_SPOT_THEN_FARGATE &&
        (!is_ascii_token(r->fallback_client_token) ||
         strcmp(r->fallback_client_token, r->client_token) == 0)) {
        return st_errf(why, why_len, ST_EINVAL,
                       "ECS RunTask: the FARGATE fallback needs a clientToken of its own, 1 to %d "
                       "printable ASCII characters",
                       ST_ECS_TOKEN_MAX);
    }
    return 0;
}

static int add_str_array(cJSON *obj, const char *name, const char *const *v, size_t n)
{
    cJSON *a = cJSON_AddArrayToObject(obj, name);
    if (!a) {
        return ST_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        cJSON *s = cJSON_CreateString(v[i]);
        if (!cJSON_AddItemToArray(a, s)) {
            cJSON_Delete(s);
            return ST_ENOMEM;
        }
    }
    return 0;
}

static int add_pairs(cJSON *obj, const char *name, const char *kname, const char *vname,
                     const st_ecs_kv *kv, size_t n)
{
    cJSON *a = cJSON_AddArrayToObject(obj, name);
    if (!a) {
        return ST_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        if (!cJSON_AddItemToArray(a, o)) {
            cJSON_Delete(o);
            return ST_ENOMEM;
        }
        if (!cJSON_AddStringToObject(o, kname, kv[i].name) ||
            !cJSON_AddStringToObject(o, vname, kv[i].value ? kv[i].value : "")) {
            return ST_ENOMEM;
        }
    }
    return 0;
}

/* The overrides object, or NULL in *out when there is nothing to override. */
static int build_overrides(const st_ecs_run_req *r, cJSON **out)
{
    *out = NULL;
    if (!r->container && !r->cpu && !r->memory) {
        return 0;
    }
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        return ST_ENOMEM;
    }
    if (r->container) {
        cJSON *list = cJSON_AddArrayToObject(o, "containerOverrides");
        cJSON *c = cJSON_CreateObject();
        if (!list || !cJSON_AddItemToArray(list, c)) {
            cJSON_Delete(c);
            goto oom;
        }
        if (!cJSON_AddStringToObject(c, "name", r->container) ||
            (r->n_command && add_str_array(c, "command", r->command, r->n_command) != 0) ||
            add_pairs(c, "environment", "name", "value", r->env, r->n_env) != 0) {
            goto oom;
        }
    }
    if ((r->cpu && !cJSON_AddStringToObject(o, "cpu", r->cpu)) ||
        (r->memory && !cJSON_AddStringToObject(o, "memory", r->memory))) {
        goto oom;
    }
    *out = o;
    return 0;
oom:
    cJSON_Delete(o);
    return ST_ENOMEM;
}

/* ECS counts the overrides' characters as JSON: measure them as they will be sent. */
static int check_overrides_size(const cJSON *o, char *why, size_t why_len)
{
    if (!o) {
        return 0;
    }
    char *text = cJSON_PrintUnformatted(o);
    if (!text) {
        return ST_ENOMEM;
    }
    size_t n = strlen(text);
    free(text);
    if (n > ST_ECS_OVERRIDES_MAX) {
        return st_errf(why, why_len, ST_EINVAL,
                       "ECS RunTask: the overrides are %zu characters as JSON, above ECS's limit "
                       "of %d: shorten the environment or the command handed to the tasks",
                       n, ST_ECS_OVERRIDES_MAX);
    }
    return 0;
}

int st_ecs_run_check(const st_ecs_run_req *req, char *why, size_t why_len)
{
    cJSON *body = NULL;
    int rc = st_ecs_run_request(req, 0, &body, why, why_len);
    cJSON_Delete(body);
    return rc;
}

int st_ecs_run_request(const st_ecs_run_req *r, int fallback, cJSON **out, char *why,
                       size_t why_len)
{
    int rc = check_fields(r, why, why_len);
    if (rc) {
        return rc;
    }
    cJSON *overrides = NULL;
    if ((rc = build_overrides(r, &overrides)) != 0 ||
        (rc = check_overrides_size(overrides, why, why_len)) != 0) {
        cJSON_Delete(overrides);
        return rc;
    }
    rc = ST_ENOMEM;
    cJSON *b = cJSON_CreateObject();
    cJSON *net = b ? cJSON_AddObjectToObject(b, "networkConfiguration") : NULL;
    cJSON *vpc = net ? cJSON_AddObjectToObject(net, "awsvpcConfiguration") : NULL;
    if (!vpc || !cJSON_AddStringToObject(b, "cluster", r->cluster) ||
        !cJSON_AddStringToObject(b, "taskDefinition", r->task_definition) ||
        !cJSON_AddNumberToObject(b, "count", r->count) ||
        add_str_array(vpc, "subnets", r->subnets, r->n_subnets) != 0 ||
        (r->n_security_groups &&
         add_str_array(vpc, "securityGroups", r->security_groups, r->n_security_groups) != 0) ||
        !cJSON_AddStringToObject(vpc, "assignPublicIp",
                                 r->assign_public_ip ? "ENABLED" : "DISABLED") ||
        !cJSON_AddStringToObject(b, "clientToken",
                                 fallback ? r->fallback_client_token : r->client_token)) {
        goto out;
    }
    if (r->capacity == ST_ECS_FARGATE || fallback) {
        if (!cJSON_AddStringToObject(b, "launchType", "FARGATE")) {
            goto out;
        }
    } else {
        cJSON *strategy = cJSON_AddArrayToObject(b, "capacityProviderStrategy");
        cJSON *item = cJSON_CreateObject();
        if (!strategy || !cJSON_AddItemToArray(strategy, item)) {
            cJSON_Delete(item);
            goto out;
        }
        if (!cJSON_AddStringToObject(item, "capacityProvider", "FARGATE_SPOT") ||
            !cJSON_AddNumberToObject(item, "weight", 1)) {
            goto out;
        }
    }
    if ((r->started_by && !cJSON_AddStringToObject(b, "startedBy", r->started_by)) ||
        (r->n_tags && add_pairs(b, "tags", "key", "value", r->tags, r->n_tags) != 0)) {
        goto out;
    }
    if (overrides) {
        cJSON_AddItemToObject(b, "overrides", overrides);
        overrides = NULL;
    }
    rc = 0;
out:
    cJSON_Delete(overrides);
    if (rc) {
        cJSON_Delete(b);
        return rc;
    }
    *out = b;
    return 0;
}

/* ---- answers ---- */

static char *dup_str(const cJSON *o, const char *name, int *oom)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsString(v)) {
        return NULL;
    }
    char *s = strdup(v->valuestring);
    if (!s) {
        *oom = 1;
    }
    return s;
}

void st_ecs_task_fini(st_ecs_task *t)
{
    if (!t) {
        return;
    }
    free(t->arn);
    free(t->last_status);
    free(t->desired_status);
    free(t->stop_code);
    free(t->stopped_reason);
    free(t->availability_zone);
    free(t->private_ipv4);
    free(t->started_by);
    free(t->capacity_provider);
    for (size_t i = 0; i < t->n_containers; i++) {
        free(t->containers[i].name);
        free(t->containers[i].last_status);
        free(t->containers[i].reason);
    }
    free(t->containers);
    for (size_t i = 0; i < t->n_tags; i++) {
        free(t->tags[i].key);
        free(t->tags[i].value);
    }
    free(t->tags);
    memset(t, 0, sizeof(*t));
}

void st_ecs_tasks_fini(st_ecs_tasks *t)
{
    if (!t) {
        return;
    }
    for (size_t i = 0; i < t->n_tasks; i++) {
        st_ecs_task_fini(&t->tasks[i]);
    }
    free(t->tasks);
    for (size_t i = 0; i < t->n_failures; i++) {
        free(t->failures[i].arn);
        free(t->failures[i].reason);
        free(t->failures[i].detail);
    }
    free(t->failures);
    memset(t, 0, sizeof(*t));
}

/* The private IPv4 address of the task's ENI: attachments[].details[] privateIPv4Address. */
static char *private_ipv4(const cJSON *task, int *oom)
{
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(task, "attachments"))
    {
        const cJSON *d;
        cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(a, "details"))
        {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(d, "name");
            if (cJSON_IsString(name) && strcmp(name->valuestring, "privateIPv4Address") == 0) {
                return dup_str(d, "value", oom);
            }
        }
    }
    return NULL;
}

static int parse_task(const cJSON *j, st_ecs_task *t)
{
    int oom = 0;
    memset(t, 0, sizeof(*t));
    t->arn = dup_str(j, "taskArn", &oom);
    t->last_status = dup_str(j, "lastStatus", &oom);
    t->desired_status = dup_str(j, "desiredStatus", &oom);
    t->stop_code = dup_str(j, "stopCode", &oom);
    t->stopped_reason = dup_str(j, "stoppedReason", &oom);
    t->availability_zone = dup_str(j, "availabilityZone", &oom);
    t->started_by = dup_str(j, "startedBy", &oom);
    t->capacity_provider = dup_str(j, "capacityProviderName", &oom);
    t->private_ipv4 = private_ipv4(j, &oom);
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(j, "containers");
    size_t nc = cJSON_IsArray(cs) ? (size_t)cJSON_GetArraySize(cs) : 0;
    if (nc && !(t->containers = calloc(nc, sizeof(*t->containers)))) {
        oom = 1;
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, (t->containers ? cs : NULL))
    {
        st_ecs_container *x = &t->containers[t->n_containers++];
        x->name = dup_str(c, "name", &oom);
        x->last_status = dup_str(c, "lastStatus", &oom);
        x->reason = dup_str(c, "reason", &oom);
        const cJSON *ec = cJSON_GetObjectItemCaseSensitive(c, "exitCode");
        if (cJSON_IsNumber(ec)) {
            x->has_exit_code = 1;
            x->exit_code = ec->valueint;
        }
    }
    const cJSON *tags = cJSON_GetObjectItemCaseSensitive(j, "tags");
    size_t nt = cJSON_IsArray(tags) ? (size_t)cJSON_GetArraySize(tags) : 0;
    if (nt && !(t->tags = calloc(nt, sizeof(*t->tags)))) {
        oom = 1;
    }
    cJSON_ArrayForEach(c, (t->tags ? tags : NULL))
    {
        st_ecs_tag *x = &t->tags[t->n_tags++];
        x->key = dup_str(c, "key", &oom);
        x->value = dup_str(c, "value", &oom);
    }
    if (oom) {
        st_ecs_task_fini(t);
        return ST_ENOMEM;
    }
    return 0;
}

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) {
        return 0;
    }
    size_t n = *cap ? *cap * 2 : 16;
    while (n < need) {
        n *= 2;
    }
    void *q = realloc(*p, n * size);
    if (!q) {
        return ST_ENOMEM;
    }
    *p = q;
    *cap = n;
    return 0;
}

typedef struct tasks_acc {
    st_ecs_tasks *t;
    size_t cap_tasks;
    size_t cap_failures;
} tasks_acc;

/* Appends a reply's tasks[] and failures[] to acc. */
static int take_tasks(tasks_acc *acc, const cJSON *reply)
{
    st_ecs_tasks *t = acc->t;
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(reply, "tasks");
    const cJSON *fails = cJSON_GetObjectItemCaseSensitive(reply, "failures");
    size_t nt = cJSON_IsArray(tasks) ? (size_t)cJSON_GetArraySize(tasks) : 0;
    size_t nf = cJSON_IsArray(fails) ? (size_t)cJSON_GetArraySize(fails) : 0;
    if (grow((void **)&t->tasks, &acc->cap_tasks, t->n_tasks + nt, sizeof(*t->tasks)) ||
        grow((void **)&t->failures, &acc->cap_failures, t->n_failures + nf, sizeof(*t->failures))) {
        return ST_ENOMEM;
    }
    const cJSON *x;
    cJSON_ArrayForEach(x, (nt ? tasks : NULL))
    {
        if (parse_task(x, &t->tasks[t->n_tasks]) != 0) {
            return ST_ENOMEM;
        }
        t->n_tasks++;
    }
    cJSON_ArrayForEach(x, (nf ? fails : NULL))
    {
        int oom = 0;
        st_ecs_failure *f = &t->failures[t->n_failures++];
        f->arn = dup_str(x, "arn", &oom);
        f->reason = dup_str(x, "reason", &oom);
        f->detail = dup_str(x, "detail", &oom);
        f->kind = st_ecs_failure_kind(f->reason, f->detail);
        if (oom) {
            return ST_ENOMEM;
        }
    }
    return 0;
}

static void invalid_request(st_aws_error *err, int rc, const char *why)
{
    if (err) {
        memset(err, 0, sizeof(*err));
        err->code = rc;
        snprintf(err->message, sizeof(err->message), "%s", why[0] ? why : st_strerror(rc));
    }
}

static int run_once(st_aws_client *c, const st_ecs_run_req *req, int fallback, tasks_acc *acc,
                    st_aws_error *err)
{
    char why[256] = "";
    cJSON *body = NULL, *reply = NULL;
    int rc = st_ecs_run_request(req, fallback, &body, why, sizeof(why));
    if (rc) {
        invalid_request(err, rc, why);
        return rc;
    }
    rc = st_aws_call(c, ST_AWS_ECS, "RunTask", body, &reply, err);
    cJSON_Delete(body);
    if (rc == 0) {
        rc = take_tasks(acc, reply);
        cJSON_Delete(reply);
    }
    return rc;
}

int st_ecs_run_task(st_aws_client *c, const st_ecs_run_req *req, st_ecs_tasks *out,
                    st_aws_error *err)
{
    memset(out, 0, sizeof(*out));
    tasks_acc acc = {.t = out};
    int rc = run_once(c, req, 0, &acc, err);
    if (rc) {
        st_ecs_tasks_fini(out);
        return rc;
    }
    if (req->capacity != ST_ECS_SPOT_THEN_FARGATE) {
        return 0;
    }
    /* Spot capacity missing: ask FARGATE for exactly what failed for capacity, and keep the
     * other failures. */
    size_t again = 0, keep = 0;
    for (size_t i = 0; i < out->n_failures; i++) {
        st_ecs_failure *f = &out->failures[i];
        if (f->kind == ST_ECS_CAPACITY && again < (size_t)req->count) {
            again++;
            free(f->arn);
            free(f->reason);
            free(f->detail);
        } else {
            out->failures[keep++] = *f;
        }
    }
    out->n_failures = keep;
    if (again == 0) {
        return 0;
    }
    st_ecs_run_req fb = *req;
    fb.count = (int)again;
    return run_once(c, &fb, 1, &acc, err);
}

/* ---- DescribeTasks, StopTask ---- */

int st_ecs_describe_tasks(st_aws_client *c, const char *cluster, const char *const *arns, size_t n,
                          st_ecs_tasks *out, st_aws_error *err)
{
    memset(out, 0, sizeof(*out));
    if (n == 0 || !cluster) {
        invalid_request(err, ST_EINVAL, "ECS DescribeTasks: no task ARN to describe");
        return ST_EINVAL;
    }
    tasks_acc acc = {.t = out};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i += ST_ECS_DESCRIBE_MAX) {
        size_t k = n - i < ST_ECS_DESCRIBE_MAX ? n - i : ST_ECS_DESCRIBE_MAX;
        cJSON *reply = NULL;
        cJSON *req = cJSON_CreateObject();
        cJSON *inc = req ? cJSON_AddArrayToObject(req, "include") : NULL;
        cJSON *tag = cJSON_CreateString("TAGS");
        if (!inc || !cJSON_AddItemToArray(inc, tag)) {
            cJSON_Delete(tag);
            rc = ST_ENOMEM;
        } else if (!cJSON_AddStringToObject(req, "cluster", cluster) ||
                   add_str_array(req, "tasks", arns + i, k) != 0) {
            rc = ST_ENOMEM;
        } else if ((rc = st_aws_call(c, ST_AWS_ECS, "DescribeTasks", req, &reply, err)) == 0) {
            rc = take_tasks(&acc, reply);
        }
        cJSON_Delete(req);
        cJSON_Delete(reply);
    }
    if (rc) {
        st_ecs_tasks_fini(out);
    }
    return rc;
}

int st_ecs_stop_task(st_aws_client *c, const char *cluster, const char *arn, const char *reason,
                     st_ecs_task *out, st_aws_error *err)
{
    size_t rl = reason ? strlen(reason) : 0;
    if (!cluster || !arn || !*arn || rl < 1 || rl > ST_ECS_STOP_REASON_MAX) {
        invalid_request(err, ST_EINVAL,
                        "ECS StopTask: needs a cluster, a task and a reason of 1 to 255 "
                        "characters");
        return ST_EINVAL;
    }
    cJSON *reply = NULL;
    cJSON *req = cJSON_CreateObject();
    int rc = ST_ENOMEM;
    if (req && cJSON_AddStringToObject(req, "cluster", cluster) &&
        cJSON_AddStringToObject(req, "task", arn) &&
        cJSON_AddStringToObject(req, "reason", reason)) {
        rc = st_aws_call(c, ST_AWS_ECS, "StopTask", req, &reply, err);
    }
    if (rc == 0 && out) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(reply, "task");
        if (cJSON_IsObject(t)) {
            rc = parse_task(t, out);
        } else {
            memset(out, 0, sizeof(*out));
        }
    }
    cJSON_Delete(req);
    cJSON_Delete(reply);
    return rc;
}

/* ---- ListTasks ---- */

void st_ecs_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++) {
        free(v[i]);
    }
    free(v);
}

static void proto_error(st_aws_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void proto_error(st_aws_error *err, const char *fmt, ...)
{
    if (err) {
        memset(err, 0, sizeof(*err));
        err->code = ST_EPROTO;
        va_list ap;
        va_start(ap, fmt);
        st_verrf(err->message, sizeof(err->message), ST_EPROTO, fmt, ap);
        va_end(ap);
    }
}

int st_ecs_list_tasks(st_aws_client *c, const char *cluster, const char *started_by,
                      const char *desired_status, char ***arns, size_t *n, st_aws_error *err)
{
    char **v = NULL;
    size_t len = 0, cap = 0;
    char *next = NULL;
    int rc = 0;
    do {
        cJSON *reply = NULL;
        cJSON *req = cJSON_CreateObject();
        if (!req || !cJSON_AddStringToObject(req, "cluster", cluster) ||
            (started_by && !cJSON_AddStringToObject(req, "startedBy", started_by)) ||
            (desired_status && !cJSON_AddStringToObject(req, "desiredStatus", desired_status)) ||
            !cJSON_AddNumberToObject(req, "maxResults", 100) ||
            (next && !cJSON_AddStringToObject(req, "nextToken", next))) {
            cJSON_Delete(req);
            rc = ST_ENOMEM;
            break;
        }
        free(next);
        next = NULL;
        rc = st_aws_call(c, ST_AWS_ECS, "ListTasks", req, &reply, err);
        cJSON_Delete(req);
        if (rc) {
            break;
        }
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(reply, "taskArns");
        const cJSON *x;
        if (list && !cJSON_IsArray(list)) {
            rc = ST_EPROTO;
        }
        cJSON_ArrayForEach(x, (rc ? NULL : list))
        {
            if (!cJSON_IsString(x)) {
                rc = ST_EPROTO;
                break;
            }
            if (grow((void **)&v, &cap, len + 2, sizeof(*v)) ||
                !(v[len] = strdup(x->valuestring))) {
                rc = ST_ENOMEM;
                break;
            }
            v[++len] = NULL;
        }
        if (rc == ST_EPROTO) {
            proto_error(err, "ECS ListTasks: %s in the answer is not a list of strings",
                        "taskArns");
        }
        const cJSON *nt = cJSON_GetObjectItemCaseSensitive(reply, "nextToken");
        if (rc == 0 && cJSON_IsString(nt) && *nt->valuestring &&
            !(next = strdup(nt->valuestring))) {
            rc = ST_ENOMEM;
        }
        cJSON_Delete(reply);
    } while (rc == 0 && next);
    free(next);
    if (rc) {
        st_ecs_strv_free(v);
        return rc;
    }
    *arns = v;
    *n = len;
    return 0;
}

/* ---- DescribeTaskDefinition ---- */

void st_ecs_taskdef_fini(st_ecs_taskdef *d)
{
    if (!d) {
        return;
    }
    free(d->arn);
    free(d->family);
    free(d->network_mode);
    st_ecs_strv_free(d->containers);
    memset(d, 0, sizeof(*d));
}

/* "1024" -> 1024; absent -> 0; anything else is an error. */
static int units(const cJSON *td, const char *name, long *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(td, name);
    *out = 0;
    if (!v) {
        return 0;
    }
    if (!cJSON_IsString(v) || !*v->valuestring) {
        return ST_EPROTO;
    }
    char *end;
    long x = strtol(v->valuestring, &end, 10);
    if (*end || x <= 0) {
        return ST_EPROTO;
    }
    *out = x;
    return 0;
}

int st_ecs_describe_taskdef(st_aws_client *c, const char *task_definition, st_ecs_taskdef *out,
                            st_aws_error *err)
{
    memset(out, 0, sizeof(*out));
    cJSON *reply = NULL;
    cJSON *req = cJSON_CreateObject();
    int rc = ST_ENOMEM;
    if (req && cJSON_AddStringToObject(req, "taskDefinition", task_definition)) {
        rc = st_aws_call(c, ST_AWS_ECS, "DescribeTaskDefinition", req, &reply, err);
    }
    cJSON_Delete(req);
    if (rc) {
        return rc;
    }
    const cJSON *td = cJSON_GetObjectItemCaseSensitive(reply, "taskDefinition");
    const char *bad = NULL;
    int oom = 0;
    if (!cJSON_IsObject(td)) {
        bad = "taskDefinition";
    } else if (units(td, "cpu", &out->cpu_units) != 0) {
        bad = "taskDefinition.cpu";
    } else if (units(td, "memory", &out->memory_mib) != 0) {
        bad = "taskDefinition.memory";
    }
    if (!bad) {
        const cJSON *rev = cJSON_GetObjectItemCaseSensitive(td, "revision");
        out->revision = cJSON_IsNumber(rev) ? (long)rev->valuedouble : 0;
        out->arn = dup_str(td, "taskDefinitionArn", &oom);
        out->family = dup_str(td, "family", &oom);
        out->network_mode = dup_str(td, "networkMode", &oom);
        const cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(td, "requiresCompatibilities"))
        {
            if (cJSON_IsString(x) && strcmp(x->valuestring, "FARGATE") == 0) {
                out->fargate = 1;
            }
        }
        const cJSON *defs = cJSON_GetObjectItemCaseSensitive(td, "containerDefinitions");
        size_t nd = cJSON_IsArray(defs) ? (size_t)cJSON_GetArraySize(defs) : 0;
        if (!(out->containers = calloc(nd + 1, sizeof(*out->containers)))) {
            oom = 1;
        }
        cJSON_ArrayForEach(x, (out->containers ? defs : NULL))
        {
            char *name = dup_str(x, "name", &oom);
            if (name) {
                out->containers[out->n_containers++] = name;
            }
        }
    }
    cJSON_Delete(reply);
    if (bad || oom) {
        st_ecs_taskdef_fini(out);
        if (oom) {
            return ST_ENOMEM;
        }
        proto_error(err, "ECS DescribeTaskDefinition: %s in the answer %s", bad,
                    strcmp(bad, "taskDefinition") == 0 ? "is missing or not an object"
                                                       : "is not a positive number in a string");
        return ST_EPROTO;
    }
    return 0;
}
