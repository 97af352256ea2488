#include "aws_creds.h"
#include "error.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

/* Refreshing this long before Expiration leaves room for a whole retried call to complete. */
#define REFRESH_BEFORE_S 300
/* When credentials are already inside the refresh window, ask again at most this often. */
#define REFETCH_EVERY_S 10
#define ECS_HOST        "http://169.254.170.2"
#define IMDS_DEFAULT    "http://169.254.169.254"

struct st_aws_creds_provider {
    st_aws_sys sys;
    st_aws_creds creds;
    int have;
    int64_t fetched_at_s;
};

/* ---- the real world ---- */

static const char *real_getenv(void *ctx, const char *name)
{
    (void)ctx;
    return getenv(name);
}

static int real_fetch(void *ctx, const st_fetch_req *req, st_fetch_resp *resp)
{
    (void)ctx;
    return st_fetch(req, resp);
}

static int64_t real_now_s(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

static void real_sleep_ms(void *ctx, uint32_t ms)
{
    (void)ctx;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static uint64_t real_random(void *ctx)
{
    (void)ctx;
    static _Thread_local uint64_t state;
    if (state == 0) {
        if (getrandom(&state, sizeof(state), 0) != (ssize_t)sizeof(state) || state == 0) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            state =
                ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&state;
            state |= 1;
        }
    }
    /* xorshift64* is plenty for spreading retries apart. */
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1DULL;
}

const st_aws_sys st_aws_sys_real = {
    .getenv = real_getenv,
    .fetch = real_fetch,
    .now_s = real_now_s,
    .sleep_ms = real_sleep_ms,
    .random = real_random,
    .ctx = NULL,
};

/* ---- helpers ---- */

static const char *env(st_aws_creds_provider *p, const char *name)
{
    const char *v = p->sys.getenv(p->sys.ctx, name);
    return (v && *v) ? v : NULL;
}

static void creds_clear(st_aws_creds *c)
{
    /* Scrub secrets before giving the memory back. */
    if (c->secret_access_key) {
        memset(c->secret_access_key, 0, strlen(c->secret_access_key));
    }
    if (c->session_token) {
        memset(c->session_token, 0, strlen(c->session_token));
    }
    free(c->access_key_id);
    free(c->secret_access_key);
    free(c->session_token);
    memset(c, 0, sizeof(*c));
}

int st_aws_parse_iso8601(const char *text, int64_t *out_s)
{
    if (!text) {
        return ST_EINVAL;
    }
    int y, mo, d, h, mi, s, n = 0;
    if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &n) != 6 || n != 19) {
        return ST_EINVAL;
    }
    const char *rest = text + n;
    if (*rest == '.') {
        rest++;
        while (*rest >= '0' && *rest <= '9') {
            rest++;
        }
    }
    int offset_s = 0;
    if (*rest == 'Z' && rest[1] == '\0') {
        offset_s = 0;
    } else if ((*rest == '+' || *rest == '-') && strlen(rest) == 6 && rest[3] == ':') {
        int oh, om;
        if (sscanf(rest + 1, "%2d:%2d", &oh, &om) != 2) {
            return ST_EINVAL;
        }
        offset_s = (oh * 3600 + om * 60) * (*rest == '+' ? 1 : -1);
    } else {
        return ST_EINVAL;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) {
        return ST_EINVAL;
    }
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    time_t t = timegm(&tm);
    if (t == (time_t)-1) {
        return ST_EINVAL;
    }
    *out_s = (int64_t)t - offset_s;
    return 0;
}

/* Reads {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"} (the container and IMDS shape).
 */
static int parse_creds_json(const char *body, const char *source, st_aws_creds *out, char *err,
                            size_t err_len)
{
    int rc = 0;
    cJSON *j = cJSON_Parse(body);
    if (!cJSON_IsObject(j)) {
        rc = st_errf(err, err_len, ST_EPROTO,
                     "the %s credentials endpoint answered something that is not JSON", source);
        goto out;
    }
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "Code");
    if (cJSON_IsString(code) && strcmp(code->valuestring, "Success") != 0) {
        rc = st_errf(err, err_len, ST_EAUTH, "the %s credentials endpoint answered Code \"%.64s\"",
                     source, code->valuestring);
        goto out;
    }
    const cJSON *kid = cJSON_GetObjectItemCaseSensitive(j, "AccessKeyId");
    const cJSON *sec = cJSON_GetObjectItemCaseSensitive(j, "SecretAccessKey");
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(j, "Token");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(j, "Expiration");
    if (!cJSON_IsString(kid) || !*kid->valuestring || !cJSON_IsString(sec) || !*sec->valuestring) {
        rc = st_errf(err, err_len, ST_EPROTO,
                     "the %s credentials endpoint answered without AccessKeyId and SecretAccessKey",
                     source);
        goto out;
    }
    int64_t expires = 0;
    if (exp && (!cJSON_IsString(exp) || st_aws_parse_iso8601(exp->valuestring, &expires) != 0)) {
        rc = st_errf(err, err_len, ST_EPROTO,
                     "the %s credentials endpoint answered an Expiration that is not an "
                     "ISO 8601 instant",
                     source);
        goto out;
    }
    out->access_key_id = strdup(kid->valuestring);
    out->secret_access_key = strdup(sec->valuestring);
    if (cJSON_IsString(tok) && *tok->valuestring) {
        out->session_token = strdup(tok->valuestring);
        if (!out->session_token) {
            rc = ST_ENOMEM;
        }
    }
    if (!out->access_key_id || !out->secret_access_key) {
        rc = ST_ENOMEM;
    }
    out->expires_at_s = expires;
    out->source = source;
    if (rc) {
        creds_clear(out);
    }
out:
    cJSON_Delete(j);
    return rc;
}

static int fetch_text(st_aws_creds_provider *p, const char *method, const char *url,
                      const char *const *headers, long timeout_ms, const char *what,
                      st_fetch_resp *resp, char *err, size_t err_len)
{
    st_fetch_req req = {.method = method,
                        .url = url,
                        .headers = headers,
                        .timeout_ms = timeout_ms,
                        .connect_timeout_ms = timeout_ms};
    int rc = p->sys.fetch(p->sys.ctx, &req, resp);
    if (rc) {
        return st_errf(err, err_len, rc, "%s at %s: %s", what, url, st_strerror(rc));
    }
    if (resp->status != 200) {
        /* Read the status before fini: it zeroes the response. */
        long status = resp->status;
        int code = status == 401 || status == 403 ? ST_EAUTH : ST_EREMOTE;
        st_fetch_resp_fini(resp);
        return st_errf(err, err_len, code, "%s at %s answered HTTP %ld", what, url, status);
    }
    return 0;
}

/* FULL_URI over plain http is only allowed to hosts that cannot be on the network path. */
static int full_uri_allowed(const char *uri)
{
    if (strncasecmp(uri, "https://", 8) == 0) {
        return 1;
    }
    if (strncasecmp(uri, "http://", 7) != 0) {
        return 0;
    }
    static const char *hosts[] = {"127.0.0.1",     "localhost",      "[::1]",
                                  "169.254.170.2", "169.254.170.23", "[fd00:ec2::23]"};
    const char *h = uri + 7;
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        size_t n = strlen(hosts[i]);
        if (strncasecmp(h, hosts[i], n) == 0 && (h[n] == ':' || h[n] == '/' || h[n] == '\0')) {
            return 1;
        }
    }
    return 0;
}

static int from_container(st_aws_creds_provider *p, st_aws_creds *out, char *err, size_t err_len)
{
    const char *rel = env(p, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = env(p, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
    char url[2048];
    char auth[4096 + 32];
    const char *headers[2] = {NULL, NULL};
    int rc = 0;
    if (rel) {
        snprintf(url, sizeof(url), "%s%s%s", ECS_HOST, rel[0] == '/' ? "" : "/", rel);
    } else {
        if (!full_uri_allowed(full)) {
            return st_errf(err, err_len, ST_EAUTH,
                           "AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, or http to a "
                           "loopback or ECS link-local host");
        }
        snprintf(url, sizeof(url), "%s", full);
        const char *token = env(p, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
        char file_token[4096];
        const char *token_file = env(p, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
        if (!token && token_file) {
            FILE *f = fopen(token_file, "r");
            size_t n = f ? fread(file_token, 1, sizeof(file_token) - 1, f) : 0;
            if (f) {
                fclose(f);
            }
            if (!f || n == 0) {
                return st_errf(err, err_len, ST_EAUTH,
                               "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s", token_file);
            }
            file_token[n] = '\0';
            file_token[strcspn(file_token, "\r\n")] = '\0';
            token = file_token;
        }
        if (token) {
            if (strpbrk(token, "\r\n")) {
                return st_errf(err, err_len, ST_EAUTH,
                               "AWS_CONTAINER_AUTHORIZATION_TOKEN holds a line break");
            }
            snprintf(auth, sizeof(auth), "Authorization: %s", token);
            headers[0] = auth;
        }
    }
    st_fetch_resp resp;
    rc = fetch_text(p, "GET", url, headers, 2000, "the container credentials endpoint", &resp, err,
                    err_len);
    memset(auth, 0, sizeof(auth));
    if (rc) {
        return rc;
    }
    rc = parse_creds_json(resp.body, "container", out, err, err_len);
    st_fetch_resp_fini(&resp);
    return rc;
}

/* Returns ST_ENOTFOUND when there is no instance metadata service to ask (not on EC2). */
static int from_imds(st_aws_creds_provider *p, st_aws_creds *out, char *err, size_t err_len)
{
    const char *base = env(p, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (!base) {
        base = IMDS_DEFAULT;
    }
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/') {
        blen--;
    }
    char url[1024];
    char token_hdr[1024];
    const char *ttl_hdr[] = {"X-aws-ec2-metadata-token-ttl-seconds: 21600", NULL};
    const char *tok_hdrs[] = {token_hdr, NULL};
    st_fetch_resp resp;
    int rc;

    snprintf(url, sizeof(url), "%.*s/latest/api/token", (int)blen, base);
    st_fetch_req req = {.method = "PUT",
                        .url = url,
                        .headers = ttl_hdr,
                        .timeout_ms = 1000,
                        .connect_timeout_ms = 1000};
    rc = p->sys.fetch(p->sys.ctx, &req, &resp);
    if (rc == ST_ECONNECT || rc == ST_ETIMEDOUT) {
        return ST_ENOTFOUND;
    }
    if (rc || resp.status != 200 || resp.body_len == 0 || resp.body_len > 900 ||
        strpbrk(resp.body, "\r\n")) {
        st_errf(err, err_len, rc ? rc : ST_EREMOTE,
                "the instance metadata service at %.*s refused an IMDSv2 token%s", (int)blen, base,
                rc ? "" : " (HTTP error)");
        st_fetch_resp_fini(&resp);
        return rc ? rc : ST_EREMOTE;
    }
    snprintf(token_hdr, sizeof(token_hdr), "X-aws-ec2-metadata-token: %s", resp.body);
    st_fetch_resp_fini(&resp);

    snprintf(url, sizeof(url), "%.*s/latest/meta-data/iam/security-credentials/", (int)blen, base);
    rc = fetch_text(p, "GET", url, tok_hdrs, 1000, "the instance metadata service", &resp, err,
                    err_len);
    if (rc == ST_EREMOTE) {
        rc =
            st_errf(err, err_len, ST_EAUTH, "this EC2 instance has no IAM role (instance profile)");
    }
    if (rc) {
        goto out;
    }
    char role[256];
    snprintf(role, sizeof(role), "%.*s", (int)strcspn(resp.body, "\r\n"), resp.body);
    st_fetch_resp_fini(&resp);
    if (!role[0] || strchr(role, '/')) {
        rc = st_errf(err, err_len, ST_EPROTO,
                     "the instance metadata service named no usable IAM role");
        goto out;
    }
    snprintf(url, sizeof(url), "%.*s/latest/meta-data/iam/security-credentials/%s", (int)blen, base,
             role);
    rc = fetch_text(p, "GET", url, tok_hdrs, 1000, "the instance metadata service", &resp, err,
                    err_len);
    if (rc) {
        goto out;
    }
    rc = parse_creds_json(resp.body, "instance metadata", out, err, err_len);
    st_fetch_resp_fini(&resp);
out:
    memset(token_hdr, 0, sizeof(token_hdr));
    return rc;
}

static int from_environment(st_aws_creds_provider *p, st_aws_creds *out, char *err, size_t err_len)
{
    const char *kid = env(p, "AWS_ACCESS_KEY_ID");
    const char *sec = env(p, "AWS_SECRET_ACCESS_KEY");
    const char *tok = env(p, "AWS_SESSION_TOKEN");
    if (!kid && !sec) {
        return ST_ENOTFOUND;
    }
    if (!kid || !sec) {
        return st_errf(err, err_len, ST_EAUTH,
                       "%s is set but %s is not: set both, or neither to use a role",
                       kid ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                       kid ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
    }
    out->access_key_id = strdup(kid);
    out->secret_access_key = strdup(sec);
    out->session_token = tok ? strdup(tok) : NULL;
    out->expires_at_s = 0;
    out->source = "environment";
    if (!out->access_key_id || !out->secret_access_key || (tok && !out->session_token)) {
        creds_clear(out);
        return ST_ENOMEM;
    }
    return 0;
}

int st_aws_creds_provider_new(st_aws_creds_provider **out, const st_aws_sys *sys)
{
    st_aws_creds_provider *p = calloc(1, sizeof(*p));
    if (!p) {
        return ST_ENOMEM;
    }
    p->sys = sys ? *sys : st_aws_sys_real;
    *out = p;
    return 0;
}

void st_aws_creds_provider_free(st_aws_creds_provider *p)
{
    if (!p) {
        return;
    }
    creds_clear(&p->creds);
    free(p);
}

void st_aws_creds_invalidate(st_aws_creds_provider *p)
{
    creds_clear(&p->creds);
    p->have = 0;
}

static int fetch_chain(st_aws_creds_provider *p, st_aws_creds *out, char *err, size_t err_len)
{
    int rc = from_environment(p, out, err, err_len);
    if (rc != ST_ENOTFOUND) {
        return rc;
    }
    if (env(p, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") ||
        env(p, "AWS_CONTAINER_CREDENTIALS_FULL_URI")) {
        return from_container(p, out, err, err_len);
    }
    const char *off = env(p, "AWS_EC2_METADATA_DISABLED");
    if (!off || strcasecmp(off, "true") != 0) {
        rc = from_imds(p, out, err, err_len);
        if (rc != ST_ENOTFOUND) {
            return rc;
        }
    }
    return st_errf(
        err, err_len, ST_EAUTH,
        "no AWS credentials found: set AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), or run with an "
        "ECS task role or an EC2 instance profile");
}

static void format_instant(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int st_aws_creds_get(st_aws_creds_provider *p, const st_aws_creds **creds, char *err,
                     size_t err_len)
{
    int64_t now = p->sys.now_s(p->sys.ctx);
    if (p->have && (p->creds.expires_at_s == 0 || now < p->creds.expires_at_s - REFRESH_BEFORE_S ||
                    (now < p->creds.expires_at_s && now - p->fetched_at_s < REFETCH_EVERY_S))) {
        *creds = &p->creds;
        return 0;
    }
    st_aws_creds fresh = {0};
    int rc = fetch_chain(p, &fresh, err, err_len);
    if (rc) {
        /* Credentials still valid beat none: keep using them until they really expire. */
        if (p->have && now < p->creds.expires_at_s) {
            st_warn("refreshing AWS credentials failed, using the current ones until they "
                    "expire: %s",
                    err ? err : st_strerror(rc));
            *creds = &p->creds;
            return 0;
        }
        return rc;
    }
    if (fresh.expires_at_s != 0 && fresh.expires_at_s <= now) {
        char when[32];
        format_instant(fresh.expires_at_s, when, sizeof(when));
        st_errf(err, err_len, ST_EAUTH,
                "the AWS credentials from the %s endpoint expired at %s: renew the "
                "role's session or check the machine's clock",
                fresh.source, when);
        creds_clear(&fresh);
        return ST_EAUTH;
    }
    creds_clear(&p->creds);
    p->creds = fresh;
    p->have = 1;
    p->fetched_at_s = now;
    st_debug("AWS credentials from %s", p->creds.source);
    *creds = &p->creds;
    return 0;
}
