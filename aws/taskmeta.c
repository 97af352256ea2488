#include "taskmeta.h"
#include "error.h"
#include "fetch.h"
#include "json_strict.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BODY_MAX (1 << 20)

void st_taskmeta_fini(st_taskmeta *m)
{
    if (!m) {
        return;
    }
    free(m->task_arn);
    free(m->cluster);
    free(m->family);
    free(m->revision);
    free(m->availability_zone);
    memset(m, 0, sizeof(*m));
}

static int need_string(const cJSON *root, const char *name, char **out, char *why, size_t why_len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v) {
        return st_errf(why, why_len, ST_EINVAL, "task metadata: $.%s: is missing", name);
    }
    if (!cJSON_IsString(v) || !*v->valuestring) {
        return st_errf(why, why_len, ST_EINVAL, "task metadata: $.%s: must be a non-empty string",
                       name);
    }
    if (!(*out = strdup(v->valuestring))) {
        return ST_ENOMEM;
    }
    return 0;
}

static int need_number(const cJSON *obj, const char *path, const char *name, double min_excl,
                       double *out, char *why, size_t why_len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v) {
        return st_errf(why, why_len, ST_EINVAL, "task metadata: %s.%s: is missing", path, name);
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble <= min_excl) {
        return st_errf(why, why_len, ST_EINVAL, "task metadata: %s.%s: must be a %s number", path,
                       name, min_excl < 0 ? "non-negative" : "positive");
    }
    *out = v->valuedouble;
    return 0;
}

/* The first IPv4 address of any container's networks. */
static int find_ipv4(const cJSON *root, char *out, size_t out_len, char *why, size_t why_len)
{
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(root, "Containers");
    if (!cJSON_IsArray(cs)) {
        return st_errf(why, why_len, ST_EINVAL, "task metadata: $.Containers: %s",
                       cs ? "must be an array" : "is missing");
    }
    int ci = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cs)
    {
        const cJSON *nets = cJSON_GetObjectItemCaseSensitive(c, "Networks");
        int ni = 0;
        const cJSON *n;
        if (nets && !cJSON_IsArray(nets)) {
            return st_errf(why, why_len, ST_EINVAL,
                           "task metadata: $.Containers[%d].Networks: must be an array", ci);
        }
        cJSON_ArrayForEach(n, nets)
        {
            const cJSON *addrs = cJSON_GetObjectItemCaseSensitive(n, "IPv4Addresses");
            const cJSON *a = cJSON_IsArray(addrs) ? cJSON_GetArrayItem(addrs, 0) : NULL;
            struct in_addr ia;
            if (addrs && (!cJSON_IsArray(addrs) || (a && !cJSON_IsString(a)) ||
                          (a && inet_pton(AF_INET, a->valuestring, &ia) != 1))) {
                return st_errf(why, why_len, ST_EINVAL,
                               "task metadata: $.Containers[%d].Networks[%d].IPv4Addresses: must "
                               "be a list of IPv4 addresses",
                               ci, ni);
            }
            if (a) {
                snprintf(out, out_len, "%s", a->valuestring);
                return 0;
            }
            ni++;
        }
        ci++;
    }
    return st_errf(why, why_len, ST_EINVAL,
                   "task metadata: $.Containers[].Networks[].IPv4Addresses: no container has an "
                   "IPv4 address");
}

static int parse_fields(const cJSON *root, st_taskmeta *m, char *why, size_t why_len)
{
    int rc;
    if ((rc = need_string(root, "TaskARN", &m->task_arn, why, why_len)) ||
        (rc = need_string(root, "Cluster", &m->cluster, why, why_len)) ||
        (rc = need_string(root, "Family", &m->family, why, why_len)) ||
        (rc = need_string(root, "Revision", &m->revision, why, why_len)) ||
        (rc = need_string(root, "AvailabilityZone", &m->availability_zone, why, why_len))) {
        return rc;
    }
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive(root, "Limits");
    if (!cJSON_IsObject(lim)) {
        return st_errf(why, why_len, ST_EINVAL, "task metadata: $.Limits: %s",
                       lim ? "must be an object" : "is missing");
    }
    double mem = 0;
    if ((rc = need_number(lim, "$.Limits", "CPU", 0, &m->cpu_vcpus, why, why_len)) ||
        (rc = need_number(lim, "$.Limits", "Memory", 0, &mem, why, why_len))) {
        return rc;
    }
    if (mem != floor(mem) || mem > 1e9) {
        return st_errf(why, why_len, ST_EINVAL,
                       "task metadata: $.Limits.Memory: must be a whole number of MiB");
    }
    m->memory_mib = (long)mem;
    if ((rc = find_ipv4(root, m->ipv4, sizeof(m->ipv4), why, why_len))) {
        return rc;
    }
    const cJSON *drift = cJSON_GetObjectItemCaseSensitive(root, "ClockDrift");
    if (drift) {
        if (!cJSON_IsObject(drift)) {
            return st_errf(why, why_len, ST_EINVAL,
                           "task metadata: $.ClockDrift: must be an "
                           "object");
        }
        if (cJSON_GetObjectItemCaseSensitive(drift, "ClockErrorBound")) {
            if ((rc = need_number(drift, "$.ClockDrift", "ClockErrorBound", -1e-300,
                                  &m->clock_error_bound_ms, why, why_len))) {
                return rc;
            }
            m->has_clock_error_bound = 1;
        }
    }
    return 0;
}

int st_taskmeta_parse(const char *text, size_t len, st_taskmeta *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof(*out));
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return st_errf(why, why_len, ST_EINVAL, "task metadata: the answer is not a JSON object");
    }
    char where[128], what[128];
    int rc = st_json_strict_check(text, len, end, root, where, sizeof(where), what, sizeof(what));
    if (rc == ST_EINVAL) {
        st_errf(why, why_len, rc, "task metadata: %s: %s", where, what);
    } else if (rc == 0) {
        rc = parse_fields(root, out, why, why_len);
    }
    cJSON_Delete(root);
    if (rc) {
        st_taskmeta_fini(out);
    }
    return rc;
}

int st_taskmeta_get(const char *base_url, long timeout_ms, st_taskmeta *out, char *why,
                    size_t why_len)
{
    memset(out, 0, sizeof(*out));
    const char *base = base_url ? base_url : getenv(ST_TASKMETA_ENV);
    if (!base || !*base) {
        return st_errf(why, why_len, ST_ENOTFOUND, "%s is not set: not running as an ECS task",
                       ST_TASKMETA_ENV);
    }
    if (strncasecmp(base, "http://", 7) != 0 || !base[7]) {
        return st_errf(why, why_len, ST_EINVAL, "%s \"%.200s\": must be an http:// URL",
                       base_url ? "the task metadata URL" : ST_TASKMETA_ENV, base);
    }
    size_t n = strlen(base);
    while (n > 7 && base[n - 1] == '/') {
        n--;
    }
    char *url = malloc(n + 8);
    if (!url) {
        return ST_ENOMEM;
    }
    snprintf(url, n + 8, "%.*s/task", (int)n, base);
    long t = timeout_ms > 0 ? timeout_ms : ST_TASKMETA_TIMEOUT_MS;
    st_fetch_req req = {.method = "GET", .url = url, .timeout_ms = t, .connect_timeout_ms = t};
    st_fetch_resp resp = {0};
    int rc = st_fetch(&req, &resp);
    if (rc) {
        st_errf(why, why_len, rc, "task metadata: GET %.300s: %s", url, st_strerror(rc));
    } else if (resp.status != 200) {
        rc = st_errf(why, why_len, ST_EREMOTE, "task metadata: GET %.300s: HTTP %ld", url,
                     resp.status);
    } else if (resp.body_len > BODY_MAX) {
        rc = st_errf(why, why_len, ST_EINVAL, "task metadata: GET %.300s: %zu bytes, above %d", url,
                     resp.body_len, BODY_MAX);
    } else {
        rc = st_taskmeta_parse(resp.body, resp.body_len, out, why, why_len);
    }
    st_fetch_resp_fini(&resp);
    free(url);
    return rc;
}
