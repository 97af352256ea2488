#include "plan.h"
#include "error.h"
#include "json_strict.h"
#include "settings.h"
#include "split.h"
#include "url.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_BODY_BYTES (64u << 20)
#define MAX_CACERT_BYTES (1u << 20)
#define MAX_PLAN_BYTES (16u << 20)

/* Parsing context: where we are (for messages) and where messages go. */
typedef struct pctx {
    const char *origin;
    const char *base_dir; /* folder of the plan file, for body_file; NULL for "." */
    char *err;
    size_t err_len;
} pctx;

static int perr(pctx *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int perr(pctx *c, const char *path, const char *fmt, ...)
{
    if (c->err && c->err_len) {
        int n = snprintf(c->err, c->err_len, "%s%s%s: ", c->origin ? c->origin : "",
                         c->origin ? ": " : "", path);
        if (n >= 0 && (size_t)n < c->err_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->err + n, c->err_len - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return ST_EINVAL;
}

/* Every plan setting, once. Rows with a field are read, defaulted and overridden generically;
 * the others (name, url, requests, stages, start_rate) are read here by hand, by key. */
#define AT(field)                                                                                  \
    .offset = offsetof(st_plan, field), .flag_offset = offsetof(st_plan_flags, field)
#define FILE_ONLY(field) .offset = offsetof(st_plan, field), .flag_offset = ST_SETTING_NO_FIELD
#define BY_HAND          .offset = ST_SETTING_NO_FIELD, .flag_offset = ST_SETTING_NO_FIELD
#define FLAGS            (ST_SETTING_FILE | ST_SETTING_AGENT | ST_SETTING_RUN)

static const st_setting plan_settings[] = {
    {.key = "name", .type = ST_SETTING_STRING, .where = ST_SETTING_FILE,
     .help = "the plan's name, shown in reports", BY_HAND},
    {.key = "url", .flag = "url", .type = ST_SETTING_STRING, .where = FLAGS, .arg = "URL",
     .help = "request URL (GET); replaces the plan's requests",
     .offset = ST_SETTING_NO_FIELD, .flag_offset = offsetof(st_plan_flags, url)},
    {.key = "requests", .type = ST_SETTING_CUSTOM, .where = ST_SETTING_FILE,
     .help = "weighted requests: url, method, headers, body, body_file, weight, name", BY_HAND},
    {.key = "rate", .flag = "rate", .type = ST_SETTING_DOUBLE, .where = FLAGS, .arg = "RPS",
     .min = 0, .max = ST_PROFILE_MAX_RPS,
     .help = "requests per second in all (all agents together; 0 = closed loop, as fast as the "
             "connections allow)",
     AT(rate_rps)},
    {.key = "duration", .flag = "duration", .type = ST_SETTING_DURATION, .where = FLAGS,
     .arg = "TIME", .max = ST_PROFILE_MAX_S,
     .help = "how long the load lasts: seconds, or 500ms / 30s / 2m / 1h", AT(duration_s)},
    {.key = "ramp_up", .flag = "ramp-up", .type = ST_SETTING_DURATION, .where = FLAGS,
     .arg = "TIME", .max = ST_PROFILE_MAX_S,
     .help = "ramp from 0 to --rate first (part of --duration)", AT(ramp_up_s)},
    {.key = "ramp_down", .type = ST_SETTING_DURATION, .where = ST_SETTING_FILE,
     .max = ST_PROFILE_MAX_S, .help = "ramp from the rate to 0 last (part of the duration)",
     FILE_ONLY(ramp_down_s)},
    {.key = "stages", .type = ST_SETTING_CUSTOM, .where = ST_SETTING_FILE,
     .help = "instead of rate and duration: [{\"duration\", \"target\" or \"rate\"}]", BY_HAND},
    {.key = "start_rate", .type = ST_SETTING_DOUBLE, .where = ST_SETTING_FILE, .min = 0,
     .max = ST_PROFILE_MAX_RPS, .has_def = true, .def = 0,
     .help = "the rate the first stage ramps from", BY_HAND},
    {.key = "connections", .flag = "connections", .type = ST_SETTING_INT, .where = FLAGS,
     .arg = "N", .min = 1, .max = 1000000, .has_def = true, .def = 64,
     .help = "connection cap per agent, over all its threads", AT(connections)},
    {.key = "threads", .flag = "threads", .type = ST_SETTING_INT,
     .where = FLAGS | ST_SETTING_REMOTE, .arg = "N", .min = 1, .max = 1024,
     .help = "worker threads per agent (default: the CPUs it may use; the local agents of "
             "stampede run share this machine's)",
     AT(threads)},
    {.key = "timeout_ms", .flag = "timeout", .type = ST_SETTING_INT, .where = FLAGS, .arg = "MS",
     .min = 1, .max = 3600000, .has_def = true, .def = 10000,
     .help = "per-request timeout in milliseconds, from the send", AT(timeout_ms)},
    {.key = "late_ms", .flag = "late-ms", .type = ST_SETTING_INT, .where = FLAGS, .arg = "MS",
     .min = 1, .max = 3600000, .has_def = true, .def = 10,
     .help = "a send this late after its instant counts as late", AT(late_ms)},
    {.key = "send_window", .flag = "send-window", .type = ST_SETTING_DURATION, .where = FLAGS,
     .arg = "TIME", .max = 1, .zero_ok = true, .has_def = true, .def = 1e-3,
     .help = "open loop: a thread wakes at most once per window and sends every request due by "
             "then, each timed from its own instant (e.g. 250us; 0 = a wake-up per request); "
             "at most late_ms",
     AT(send_window_s)},
    {.key = "http2", .flag = "http2", .type = ST_SETTING_BOOL, .where = FLAGS, .has_def = true,
     .def = 0,
     .help = "HTTP/2: h2c with prior knowledge for http://, ALPN h2 for https:// (the h2 "
             "engine for one origin, else curl)",
     AT(http2)},
    {.key = "streams", .flag = "streams", .type = ST_SETTING_INT, .where = FLAGS, .arg = "M",
     .min = 1, .max = 1000, .has_def = true, .def = 1,
     .help = "HTTP/2 (h2 engine): concurrent streams per connection, as h2load -m; up to "
             "connections x M requests in flight",
     AT(streams)},
    {.key = "insecure", .flag = "insecure", .type = ST_SETTING_BOOL, .where = FLAGS,
     .has_def = true, .def = 0, .help = "do not verify TLS certificates", AT(insecure)},
    {.key = "cacert", .flag = "cacert", .type = ST_SETTING_STRING, .where = FLAGS, .arg = "FILE",
     .help = "TLS: trust the CAs of this PEM file instead of the system's (read where the plan is "
             "made: remote agents get its contents)",
     .offset = ST_SETTING_NO_FIELD, .flag_offset = offsetof(st_plan_flags, cacert)},
    {.key = "agents", .flag = "agents", .type = ST_SETTING_INT,
     .where = ST_SETTING_FILE | ST_SETTING_RUN, .arg = "N", .min = 1, .max = 10000,
     .has_def = true, .def = 1, .help = "how many agents; overrides the plan's", AT(agents)},
    {.key = "thresholds", .flag = "threshold", .type = ST_SETTING_LIST,
     .where = ST_SETTING_FILE | ST_SETTING_RUN, .arg = "EXPR",
     .help = "a pass/fail condition on the merged results, e.g. 'p(99)<250ms' or "
             "'error_rate<1%, abort after 10s' (README \"Thresholds\"); the one flag that may be "
             "repeated, each adds to the plan's",
     .offset = ST_SETTING_NO_FIELD, .flag_offset = offsetof(st_plan_flags, thresholds)},
    {.key = "ecs", .type = ST_SETTING_CUSTOM, .where = ST_SETTING_FILE,
     .help = "the ecs launcher's settings (cluster, task_definition, ...: stampede run --help)",
     BY_HAND},
};

#undef AT
#undef FILE_ONLY
#undef BY_HAND
#undef FLAGS

#define N_SETTINGS (sizeof(plan_settings) / sizeof(plan_settings[0]))
_Static_assert(N_SETTINGS <= ST_SETTINGS_MAX_ROWS, "st_plan_flags.given holds one bit per row");

const st_setting *st_plan_settings(size_t *n)
{
    *n = N_SETTINGS;
    return plan_settings;
}

static const st_setting *setting(const char *key)
{
    return st_settings_find_key(plan_settings, N_SETTINGS, key);
}

/* Request-level and launcher-payload values, checked like settings. */
static const st_setting weight_row = {.type = ST_SETTING_INT, .min = 1, .max = ST_PLAN_MAX_WEIGHT};
static const st_setting vus_row = {.type = ST_SETTING_INT, .min = 1, .max = 100000};
static const st_setting text_row = {.type = ST_SETTING_STRING};

/* Reads v into dst as row s says, or refuses it naming path. */
static int get_value(pctx *c, const st_setting *s, const cJSON *v, const char *path, void *dst)
{
    char why[200];
    if (st_setting_from_json(s, v, dst, why, sizeof(why))) {
        return perr(c, path, "%s", why);
    }
    return 0;
}

static int get_string(pctx *c, const cJSON *v, const char *path, const char **out)
{
    return get_value(c, &text_row, v, path, out);
}

/* Marks every field of the table unset in a plan (flags == false) or in st_plan_flags: a negative
 * number; a switch in st_plan_flags is 0 instead (it can only turn a setting on). */
static void unset_all(void *base, bool flags)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const st_setting *s = &plan_settings[i];
        size_t off = flags ? s->flag_offset : s->offset;
        if (off == ST_SETTING_NO_FIELD) {
            continue;
        }
        char *at = (char *)base + off;
        switch (s->type) {
        case ST_SETTING_INT:
        case ST_SETTING_ENUM:
            *(int *)at = -1;
            break;
        case ST_SETTING_BOOL:
            *(int *)at = flags ? 0 : -1;
            break;
        case ST_SETTING_DOUBLE:
        case ST_SETTING_DURATION:
            *(double *)at = -1;
            break;
        default:
            break;
        }
    }
}

void st_plan_init(st_plan *p)
{
    memset(p, 0, sizeof(*p));
    unset_all(p, false);
}

static void request_fini(st_request *r)
{
    free(r->name);
    free(r->method);
    free(r->url);
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->headers[i]);
    }
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static void free_requests(st_plan *p)
{
    for (size_t i = 0; i < p->n_requests; i++) {
        request_fini(&p->requests[i]);
    }
    free(p->requests);
    p->requests = NULL;
    p->n_requests = 0;
}

static void free_thresholds(st_plan *p)
{
    for (size_t i = 0; i < p->n_thresholds; i++) {
        free(p->thresholds[i]);
    }
    free(p->thresholds);
    p->thresholds = NULL;
    p->n_thresholds = p->n_file_thresholds = 0;
}

/* Appends a copy of text to the plan's thresholds. */
static int add_threshold(st_plan *p, const char *text)
{
    char **t = realloc(p->thresholds, (p->n_thresholds + 1) * sizeof(*t));
    if (!t) {
        return ST_ENOMEM;
    }
    p->thresholds = t;
    if (!(t[p->n_thresholds] = strdup(text))) {
        return ST_ENOMEM;
    }
    p->n_thresholds++;
    return 0;
}

/* "thresholds": an array of expression strings (checked by their reader, the coordinator). */
static int parse_thresholds(pctx *c, st_plan *p, const cJSON *arr)
{
    if (!cJSON_IsArray(arr)) {
        return perr(c, "$.thresholds", "must be an array of expressions such as \"p(99)<250ms\"");
    }
    free_thresholds(p);
    int i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        char path[64];
        snprintf(path, sizeof(path), "$.thresholds[%d]", i);
        const char *s = NULL;
        int rc = get_string(c, it, path, &s);
        if (rc || (rc = add_threshold(p, s))) {
            return rc;
        }
    }
    p->n_file_thresholds = p->n_thresholds;
    return 0;
}

void st_plan_fini(st_plan *p)
{
    if (!p) {
        return;
    }
    free(p->name);
    free(p->cacert);
    free(p->cacert_pem);
    free_requests(p);
    free_thresholds(p);
    free(p->stages);
    st_profile_fini(&p->profile);
    free(p->mix);
    cJSON_Delete(p->ecs);
    st_plan_init(p);
}

static int check_url(pctx *c, const char *url, const char *path)
{
    st_url u;
    const char *why = NULL;
    int rc = st_url_parse(url, &u, &why);
    if (rc == ST_EINVAL) {
        return perr(c, path, "\"%s\" is not a usable URL: %s", url, why);
    }
    st_url_fini(&u);
    return rc;
}

static int is_token_char(int ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int valid_header_line(const char *line)
{
    const char *colon = strchr(line, ':');
    if (!colon || colon == line) {
        return 0;
    }
    for (const char *p = line; p < colon; p++) {
        if (!is_token_char((unsigned char)*p)) {
            return 0;
        }
    }
    for (const char *p = colon + 1; *p; p++) {
        if (*p == '\r' || *p == '\n' || *p == 0x7f) {
            return 0;
        }
    }
    return 1;
}

static int add_header(pctx *c, st_request *r, const char *line, const char *path)
{
    if (!valid_header_line(line)) {
        return perr(c, path, "\"%s\" is not a valid header (\"Name: value\", a token name, no line "
                             "breaks)", line);
    }
    if (r->n_headers >= ST_PLAN_MAX_HEADERS) {
        return perr(c, path, "at most %d headers per request", ST_PLAN_MAX_HEADERS);
    }
    char **h = realloc(r->headers, (r->n_headers + 1) * sizeof(*h));
    if (!h) {
        return ST_ENOMEM;
    }
    r->headers = h;
    if (!(h[r->n_headers] = strdup(line))) {
        return ST_ENOMEM;
    }
    r->n_headers++;
    return 0;
}

static int has_header(const st_request *r, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < r->n_headers; i++) {
        if (strncasecmp(r->headers[i], name, n) == 0 && r->headers[i][n] == ':') {
            return 1;
        }
    }
    return 0;
}

/* Reads a whole regular file, at most max bytes, into *out (NUL-terminated; *len bytes). Only a
 * regular file is a file's contents: a FIFO would block until a writer comes (opened with
 * O_NONBLOCK, it never does), a device such as /dev/zero never ends, and a directory has no
 * bytes. Files that report size 0 (/proc, /sys) are read to their end all the same. Returns 0,
 * or an error with what is wrong, for "<path> <why>", in why: ST_ENOTFOUND, ST_EINVAL (not a
 * regular file, or larger than max), ST_EIO (cannot be read), ST_ENOMEM. */
static int read_regular_file(const char *path, size_t max, char **out, size_t *len, char *why,
                             size_t why_len)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT) {
            snprintf(why, why_len, "does not exist");
            return ST_ENOTFOUND;
        }
        snprintf(why, why_len, "cannot be read: %s", strerror(e));
        return ST_EIO;
    }
    int rc = 0;
    char *buf = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(why, why_len, "cannot be read: %s", strerror(errno));
        rc = ST_EIO;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, why_len, "is %s, not a regular file",
                 S_ISDIR(st.st_mode)                          ? "a directory"
                 : S_ISFIFO(st.st_mode)                       ? "a FIFO (named pipe)"
                 : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                 : S_ISSOCK(st.st_mode)                       ? "a socket"
                                                              : "not a file");
        rc = ST_EINVAL;
        goto out;
    }
    if ((unsigned long long)st.st_size > max) {
        snprintf(why, why_len, "is larger than %zu MiB", max >> 20);
        rc = ST_EINVAL;
        goto out;
    }
    /* One byte more than the size, so that a file that grew, or says 0 and is not, is seen. */
    size_t cap = (size_t)st.st_size + 1, n = 0;
    if (!(buf = malloc(cap + 1))) {
        rc = ST_ENOMEM;
        goto out;
    }
    for (;;) {
        if (n == cap) {
            if (cap > max) {
                snprintf(why, why_len, "is larger than %zu MiB", max >> 20);
                rc = ST_EINVAL;
                goto out;
            }
            size_t ncap = cap < 4096 ? 4096 : cap * 2;
            ncap = ncap > max + 1 ? max + 1 : ncap;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                rc = ST_ENOMEM;
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            snprintf(why, why_len, "cannot be read: %s", strerror(errno));
            rc = ST_EIO;
            goto out;
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

/* The CAs of a PEM file, the "cacert" setting: read now, where the plan is made, so that a file
 * that cannot be read is refused before anything starts and remote agents get its contents.
 * On ST_EINVAL msg says what is wrong ("file F does not exist"), for the caller to prefix with
 * the setting's name. */
static int read_cacert(st_plan *p, const char *file, char *msg, size_t msg_len)
{
    char why[200], *pem = NULL, *name = NULL;
    size_t len = 0;
    int rc = read_regular_file(file, MAX_CACERT_BYTES, &pem, &len, why, sizeof(why));
    if (rc == ST_ENOMEM) {
        return rc;
    } else if (rc) {
        return st_errf(msg, msg_len, ST_EINVAL, "file %s %s", file, why);
    }
    if (!memmem(pem, len, "-----BEGIN CERTIFICATE-----", 27)) {
        free(pem);
        return st_errf(msg, msg_len, ST_EINVAL, "file %s holds no PEM certificate", file);
    }
    if (!(name = strdup(file))) {
        free(pem);
        return ST_ENOMEM;
    }
    free(p->cacert);
    free(p->cacert_pem);
    p->cacert = name;
    p->cacert_pem = pem;
    p->cacert_pem_len = len;
    return 0;
}

static int parse_request(pctx *c, const cJSON *obj, const char *path, st_request *r)
{
    char sub[160];
    if (!cJSON_IsObject(obj)) {
        return perr(c, path, "must be an object with at least \"url\"");
    }
    r->weight = 1;
    const cJSON *body = NULL, *body_file = NULL;
    int rc;
    for (const cJSON *it = obj->child; it; it = it->next) {
        snprintf(sub, sizeof(sub), "%s.%s", path, it->string);
        const char *s = NULL;
        if (strcmp(it->string, "url") == 0) {
            if ((rc = get_string(c, it, sub, &s)) || (rc = check_url(c, s, sub))) {
                return rc;
            }
            free(r->url);
            if (!(r->url = strdup(s))) {
                return ST_ENOMEM;
            }
        } else if (strcmp(it->string, "method") == 0) {
            if ((rc = get_string(c, it, sub, &s))) {
                return rc;
            }
            size_t n = strlen(s);
            if (n == 0 || n > 32) {
                return perr(c, sub, "must be an HTTP method such as \"GET\" or \"POST\"");
            }
            for (size_t i = 0; i < n; i++) {
                if (!is_token_char((unsigned char)s[i])) {
                    return perr(c, sub, "must be an HTTP method such as \"GET\" or \"POST\"");
                }
            }
            free(r->method);
            if (!(r->method = strdup(s))) {
                return ST_ENOMEM;
            }
            for (char *p = r->method; *p; p++) {
                *p = (char)toupper((unsigned char)*p);
            }
        } else if (strcmp(it->string, "name") == 0) {
            if ((rc = get_string(c, it, sub, &s))) {
                return rc;
            }
            free(r->name);
            if (!(r->name = strdup(s))) {
                return ST_ENOMEM;
            }
        } else if (strcmp(it->string, "weight") == 0) {
            int w = 0;
            if ((rc = get_value(c, &weight_row, it, sub, &w))) {
                return rc;
            }
            r->weight = (uint32_t)w;
        } else if (strcmp(it->string, "headers") == 0) {
            if (cJSON_IsObject(it)) {
                for (const cJSON *h = it->child; h; h = h->next) {
                    char hp[200], line[8192];
                    snprintf(hp, sizeof(hp), "%s.%s", sub, h->string);
                    if (!cJSON_IsString(h)) {
                        return perr(c, hp, "must be a string");
                    }
                    snprintf(line, sizeof(line), "%s: %s", h->string, h->valuestring);
                    if ((rc = add_header(c, r, line, hp))) {
                        return rc;
                    }
                }
            } else if (cJSON_IsArray(it)) {
                int i = 0;
                for (const cJSON *h = it->child; h; h = h->next, i++) {
                    char hp[200];
                    snprintf(hp, sizeof(hp), "%s[%d]", sub, i);
                    if ((rc = get_string(c, h, hp, &s)) || (rc = add_header(c, r, s, hp))) {
                        return rc;
                    }
                }
            } else {
                return perr(c, sub, "must be an object {\"Name\": \"value\"} or an array of "
                                    "\"Name: value\" strings");
            }
        } else if (strcmp(it->string, "body") == 0) {
            body = it;
        } else if (strcmp(it->string, "body_file") == 0) {
            body_file = it;
        } else {
            return perr(c, sub, "unknown key (a request takes url, method, headers, body, "
                                "body_file, weight, name)");
        }
    }
    if (!r->url) {
        return perr(c, path, "has no \"url\"");
    }
    if (body && body_file) {
        return perr(c, path, "has both \"body\" and \"body_file\": keep one");
    }
    if (body) {
        snprintf(sub, sizeof(sub), "%s.body", path);
        if (cJSON_IsString(body)) {
            r->body_len = strlen(body->valuestring);
            r->body = strdup(body->valuestring);
        } else if (cJSON_IsObject(body) || cJSON_IsArray(body)) {
            r->body = cJSON_PrintUnformatted(body);
            r->body_len = r->body ? strlen(r->body) : 0;
            if (r->body && !has_header(r, "Content-Type") &&
                (rc = add_header(c, r, "Content-Type: application/json", sub))) {
                return rc;
            }
        } else {
            return perr(c, sub, "must be a string, or a JSON object or array sent as JSON");
        }
        if (!r->body) {
            return ST_ENOMEM;
        }
    }
    if (body_file) {
        snprintf(sub, sizeof(sub), "%s.body_file", path);
        const char *s = NULL;
        if ((rc = get_string(c, body_file, sub, &s))) {
            return rc;
        }
        char full[4096];
        if (s[0] == '/' || !c->base_dir) {
            snprintf(full, sizeof(full), "%s", s);
        } else {
            snprintf(full, sizeof(full), "%s/%s", c->base_dir, s);
        }
        char why[200];
        free(r->body);
        r->body = NULL;
        rc = read_regular_file(full, MAX_BODY_BYTES, &r->body, &r->body_len, why, sizeof(why));
        if (rc == ST_ENOMEM) {
            return rc;
        } else if (rc) {
            return perr(c, sub, "file %s %s", full, why);
        }
    }
    if (!r->method && !(r->method = strdup(r->body ? "POST" : "GET"))) {
        return ST_ENOMEM;
    }
    if (!r->name) {
        size_t n = strlen(r->method) + strlen(r->url) + 2;
        if (!(r->name = malloc(n))) {
            return ST_ENOMEM;
        }
        snprintf(r->name, n, "%s %s", r->method, r->url);
    }
    return 0;
}

static int parse_requests(pctx *c, st_plan *p, const cJSON *arr)
{
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0) {
        return perr(c, "$.requests", "must be a non-empty array of requests");
    }
    int n = cJSON_GetArraySize(arr);
    if (n > ST_PLAN_MAX_REQUESTS) {
        return perr(c, "$.requests", "at most %d requests", ST_PLAN_MAX_REQUESTS);
    }
    free_requests(p);
    p->requests = calloc((size_t)n, sizeof(*p->requests));
    if (!p->requests) {
        return ST_ENOMEM;
    }
    int i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        char path[64];
        snprintf(path, sizeof(path), "$.requests[%d]", i);
        p->n_requests = (size_t)i + 1;
        int rc = parse_request(c, it, path, &p->requests[i]);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

static int parse_stages(pctx *c, st_plan *p, const cJSON *arr, double start_rps)
{
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0) {
        return perr(c, "$.stages", "must be a non-empty array of {\"duration\", \"target\" or "
                                   "\"rate\"}");
    }
    int n = cJSON_GetArraySize(arr);
    if (n > ST_PROFILE_MAX_STAGES) {
        return perr(c, "$.stages", "at most %d stages", ST_PROFILE_MAX_STAGES);
    }
    st_stage *st = calloc((size_t)n, sizeof(*st));
    if (!st) {
        return ST_ENOMEM;
    }
    int rc = 0, i = 0;
    double prev = start_rps;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        char path[64], sub[96];
        snprintf(path, sizeof(path), "$.stages[%d]", i);
        if (!cJSON_IsObject(it)) {
            rc = perr(c, path, "must be an object {\"duration\", \"target\" or \"rate\"}");
            goto out;
        }
        const cJSON *dur = NULL, *target = NULL, *rate = NULL;
        for (const cJSON *k = it->child; k; k = k->next) {
            if (strcmp(k->string, "duration") == 0) {
                dur = k;
            } else if (strcmp(k->string, "target") == 0) {
                target = k;
            } else if (strcmp(k->string, "rate") == 0) {
                rate = k;
            } else {
                snprintf(sub, sizeof(sub), "%s.%s", path, k->string);
                rc = perr(c, sub, "unknown key (a stage takes duration, and target to ramp or "
                                  "rate to hold)");
                goto out;
            }
        }
        if (!dur) {
            rc = perr(c, path, "has no \"duration\"");
            goto out;
        }
        if (!target == !rate) {
            rc = perr(c, path, "needs exactly one of \"target\" (ramp to it) or \"rate\" (hold "
                               "it)");
            goto out;
        }
        snprintf(sub, sizeof(sub), "%s.duration", path);
        if ((rc = get_value(c, setting("duration"), dur, sub, &st[i].duration_s))) {
            goto out;
        }
        double to = 0;
        snprintf(sub, sizeof(sub), "%s.%s", path, target ? "target" : "rate");
        if ((rc = get_value(c, setting("rate"), target ? target : rate, sub, &to))) {
            goto out;
        }
        st[i].from_rps = target ? prev : to;
        st[i].to_rps = to;
        prev = to;
    }
    free(p->stages);
    p->stages = st;
    p->n_stages = (size_t)n;
    st = NULL;
out:
    free(st);
    return rc;
}

/* Replaces the requests by one GET of url. */
static int set_single_get(st_plan *p, const char *url)
{
    free_requests(p);
    p->requests = calloc(1, sizeof(*p->requests));
    if (!p->requests) {
        return ST_ENOMEM;
    }
    p->n_requests = 1;
    st_request *r = &p->requests[0];
    r->weight = 1;
    r->url = strdup(url);
    r->method = strdup("GET");
    size_t n = strlen(url) + 8;
    r->name = malloc(n);
    if (!r->url || !r->method || !r->name) {
        return ST_ENOMEM;
    }
    snprintf(r->name, n, "GET %s", url);
    return 0;
}

/* The AWS seed launcher payload: {"taskCount", "targetUrl", "vus", "rate", "duration"}. Its rate
 * is per virtual user, so the total is taskCount * vus * rate. */
static int parse_seed(pctx *c, st_plan *p, const cJSON *root)
{
    int rc, tasks = 1, vus = 1;
    double per_vu = -1, duration = -1;
    const char *url = NULL;
    for (const cJSON *it = root->child; it; it = it->next) {
        char path[96];
        snprintf(path, sizeof(path), "$.%s", it->string);
        if (strcmp(it->string, "taskCount") == 0) {
            rc = get_value(c, setting("agents"), it, path, &tasks);
        } else if (strcmp(it->string, "targetUrl") == 0) {
            rc = get_string(c, it, path, &url);
            if (!rc) {
                rc = check_url(c, url, path);
            }
        } else if (strcmp(it->string, "vus") == 0) {
            rc = get_value(c, &vus_row, it, path, &vus);
        } else if (strcmp(it->string, "rate") == 0) {
            rc = get_value(c, setting("rate"), it, path, &per_vu);
        } else if (strcmp(it->string, "duration") == 0) {
            rc = get_value(c, setting("duration"), it, path, &duration);
        } else {
            rc = perr(c, path, "unknown key in a launcher payload (it takes taskCount, targetUrl, "
                               "vus, rate, duration)");
        }
        if (rc) {
            return rc;
        }
    }
    if (!url) {
        return perr(c, "$", "a launcher payload needs \"targetUrl\"");
    }
    if (per_vu < 0 || duration < 0) {
        return perr(c, "$", "a launcher payload needs \"rate\" (per virtual user) and "
                            "\"duration\" (seconds)");
    }
    if ((rc = set_single_get(p, url))) {
        return rc;
    }
    p->agents = tasks;
    p->connections = vus;
    p->rate_rps = (double)tasks * vus * per_vu;
    p->duration_s = duration;
    return 0;
}

static int parse_root(pctx *c, st_plan *p, const cJSON *root)
{
    if (!cJSON_IsObject(root)) {
        return perr(c, "$", "a plan must be a JSON object");
    }
    if (cJSON_GetObjectItemCaseSensitive(root, "targetUrl") ||
        cJSON_GetObjectItemCaseSensitive(root, "taskCount")) {
        return parse_seed(c, p, root);
    }
    const cJSON *url = NULL, *requests = NULL, *stages = NULL, *start_rate = NULL;
    double start_rps = setting("start_rate")->def;
    int rc = 0;
    for (const cJSON *it = root->child; it; it = it->next) {
        char path[96];
        snprintf(path, sizeof(path), "$.%s", it->string);
        const char *k = it->string;
        const st_setting *s = setting(k);
        if (!s || !(s->where & ST_SETTING_FILE)) {
            char keys[512];
            st_settings_list_keys(plan_settings, N_SETTINGS, ST_SETTING_FILE, false, keys,
                                  sizeof(keys));
            return perr(c, path, "unknown key (a plan takes %s; or a launcher payload with "
                                 "targetUrl)", keys);
        }
        if (s->offset != ST_SETTING_NO_FIELD) {
            rc = get_value(c, s, it, path, (char *)p + s->offset);
        } else if (strcmp(k, "name") == 0) {
            const char *name = NULL;
            if (!(rc = get_string(c, it, path, &name))) {
                free(p->name);
                rc = (p->name = strdup(name)) ? 0 : ST_ENOMEM;
            }
        } else if (strcmp(k, "start_rate") == 0) {
            rc = get_value(c, s, it, path, &start_rps);
            start_rate = it;
        } else if (strcmp(k, "url") == 0) {
            url = it;
        } else if (strcmp(k, "cacert") == 0) {
            const char *file = NULL;
            char full[4096];
            if (!(rc = get_string(c, it, path, &file))) {
                snprintf(full, sizeof(full), "%s%s%s", file[0] == '/' || !c->base_dir ? "" :
                         c->base_dir, file[0] == '/' || !c->base_dir ? "" : "/", file);
                char msg[4400];
                if ((rc = read_cacert(p, full, msg, sizeof(msg))) == ST_EINVAL) {
                    rc = perr(c, path, "%s", msg);
                }
            }
        } else if (strcmp(k, "requests") == 0) {
            requests = it;
        } else if (strcmp(k, "stages") == 0) {
            stages = it;
        } else if (strcmp(k, "thresholds") == 0) {
            rc = parse_thresholds(c, p, it);
        } else if (strcmp(k, "ecs") == 0) {
            /* Its keys are stampede run's to check (they are its flags' rows). */
            const cJSON *bad = NULL;
            for (const cJSON *v = cJSON_IsObject(it) ? it->child : NULL; v && !bad; v = v->next) {
                bad = cJSON_IsString(v) || cJSON_IsNumber(v) || cJSON_IsBool(v) ? NULL : v;
            }
            if (!cJSON_IsObject(it)) {
                rc = perr(c, path, "must be an object of the ecs launcher's settings");
            } else if (bad) {
                rc = perr(c, path, "%s: must be a string, a number, true or false", bad->string);
            } else {
                cJSON_Delete(p->ecs);
                rc = (p->ecs = cJSON_Duplicate(it, 1)) ? 0 : ST_ENOMEM;
            }
        }
        if (rc) {
            return rc;
        }
    }
    if (url && requests) {
        return perr(c, "$.url", "give either \"url\" or \"requests\", not both");
    }
    if (url) {
        const char *s = NULL;
        if ((rc = get_string(c, url, "$.url", &s)) || (rc = check_url(c, s, "$.url"))) {
            return rc;
        }
        if ((rc = set_single_get(p, s))) {
            return rc;
        }
    }
    if (requests && (rc = parse_requests(c, p, requests))) {
        return rc;
    }
    if (start_rate && !stages) {
        /* Only a first stage that ramps starts from somewhere; ramp_up always starts from 0. */
        return perr(c, "$.start_rate", "goes with \"stages\" (where the first ramp starts); "
                                       "without stages, ramp_up starts from 0: remove it or "
                                       "give stages");
    }
    if (stages) {
        if (p->rate_rps >= 0 || p->duration_s >= 0 || p->ramp_up_s >= 0 || p->ramp_down_s >= 0) {
            return perr(c, "$.stages", "give either \"stages\" or rate/duration/ramp_up/ramp_down, "
                                       "not both");
        }
        if ((rc = parse_stages(c, p, stages, start_rps))) {
            return rc;
        }
    }
    return 0;
}

static int parse_text(pctx *c, st_plan *p, const char *text, size_t len)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        /* Point at the line and column where the JSON stopped making sense. */
        size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        int line = 1, col = 1;
        for (size_t i = 0; i < at; i++) {
            if (text[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        char where[64];
        snprintf(where, sizeof(where), "line %d, column %d", line, col);
        return perr(c, where, "not valid JSON");
    }
    /* What cJSON lets through would change the plan's meaning unseen: refuse it first. */
    char where[300], why[300];
    int rc = st_json_strict_check(text, len, end, root, where, sizeof(where), why, sizeof(why));
    if (rc == ST_EINVAL) {
        rc = perr(c, where, "%s", why);
    } else if (rc == 0) {
        rc = parse_root(c, p, root);
    }
    cJSON_Delete(root);
    return rc;
}

int st_plan_parse(st_plan *p, const char *text, size_t len, const char *origin, char *err,
                  size_t err_len)
{
    pctx c = {origin, NULL, err, err_len};
    return parse_text(&c, p, text, len);
}

int st_plan_load_file(st_plan *p, const char *path, char *err, size_t err_len)
{
    char *text = NULL, why[200];
    size_t len = 0;
    int rc = read_regular_file(path, MAX_PLAN_BYTES, &text, &len, why, sizeof(why));
    if (rc) {
        if (err && err_len) {
            snprintf(err, err_len, "%s: %s%s", path,
                     rc == ST_ENOTFOUND ? "no such plan file" : "the plan file ",
                     rc == ST_ENOTFOUND ? "" : why);
        }
        return rc;
    }
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    const char *base = NULL;
    if (slash) {
        *slash = 0;
        base = slash == dir ? "/" : dir;
    }
    pctx c = {path, base, err, err_len};
    rc = parse_text(&c, p, text, len);
    free(text);
    return rc;
}

int st_plan_set_url(st_plan *p, const char *url, char *err, size_t err_len)
{
    pctx c = {NULL, NULL, err, err_len};
    int rc = check_url(&c, url, "--url");
    if (rc) {
        return rc;
    }
    return set_single_get(p, url);
}

void st_plan_flags_init(st_plan_flags *f)
{
    memset(f, 0, sizeof(*f));
    unset_all(f, true);
}

st_settings_group st_plan_flags_group(st_plan_flags *f)
{
    return (st_settings_group){plan_settings, N_SETTINGS, f, &f->given};
}

int st_plan_flags_option(st_plan_flags *f, const char *name, const char *value, char *err,
                         size_t err_len)
{
    const st_setting *s = st_settings_find_flag(plan_settings, N_SETTINGS, name,
                                                ST_SETTING_AGENT | ST_SETTING_RUN);
    if (!s) {
        return ST_ENOTFOUND;
    }
    int rc = st_setting_from_text(s, value, (char *)f + s->flag_offset, err, err_len);
    if (rc == 0) {
        f->given |= (uint64_t)1 << (s - plan_settings);
    }
    return rc;
}

static bool given(const st_plan_flags *f, const char *key)
{
    return f->given & ((uint64_t)1 << (setting(key) - plan_settings));
}

int st_plan_apply_flags(st_plan *p, const st_plan_flags *f, char *err, size_t err_len)
{
    int rc;
    if (given(f, "url") && (rc = st_plan_set_url(p, f->url, err, err_len))) {
        return rc;
    }
    if (given(f, "cacert")) {
        char msg[4400];
        if ((rc = read_cacert(p, f->cacert, msg, sizeof(msg))) != 0) {
            return rc == ST_EINVAL ? st_errf(err, err_len, rc, "--cacert: %s", msg) : rc;
        }
    }
    /* The rate/duration shape given on the command line replaces the plan's stages. */
    if (given(f, "rate") || given(f, "duration") || given(f, "ramp_up")) {
        free(p->stages);
        p->stages = NULL;
        p->n_stages = 0;
    }
    for (size_t i = 0; i < N_SETTINGS; i++) {
        if (f->given & ((uint64_t)1 << i)) {
            st_setting_copy(&plan_settings[i], p, f);
        }
    }
    for (size_t i = 0; i < f->thresholds.n; i++) {
        if ((rc = add_threshold(p, f->thresholds.v[i]))) {
            return rc;
        }
    }
    return 0;
}

/* Turns rate/duration/ramps into stages. */
static int build_stages(pctx *c, st_plan *p)
{
    double up = p->ramp_up_s > 0 ? p->ramp_up_s : 0;
    double down = p->ramp_down_s > 0 ? p->ramp_down_s : 0;
    double hold = p->duration_s - up - down;
    if (hold < 0 || (hold == 0 && up == 0 && down == 0)) {
        return perr(c, "duration", "%gs is shorter than ramp_up + ramp_down (%gs)", p->duration_s,
                    up + down);
    }
    st_stage st[3];
    size_t n = 0;
    if (up > 0) {
        st[n++] = (st_stage){up, 0, p->rate_rps};
    }
    if (hold > 0) {
        st[n++] = (st_stage){hold, p->rate_rps, p->rate_rps};
    }
    if (down > 0) {
        st[n++] = (st_stage){down, p->rate_rps, 0};
    }
    p->stages = malloc(n * sizeof(*st));
    if (!p->stages) {
        return ST_ENOMEM;
    }
    memcpy(p->stages, st, n * sizeof(*st));
    p->n_stages = n;
    return 0;
}

const char *st_plan_h2_connection_header(const char *line)
{
    static const char *const names[] = {"Connection", "Keep-Alive", "Proxy-Connection", "Upgrade",
                                        "TE"};
    const char *colon = strchr(line, ':');
    size_t nl = colon ? (size_t)(colon - line) : 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (nl > 0 && strlen(names[i]) == nl && strncasecmp(line, names[i], nl) == 0) {
            return names[i];
        }
    }
    return NULL;
}

int st_plan_finish(st_plan *p, int default_threads, char *err, size_t err_len)
{
    pctx c = {NULL, NULL, err, err_len};
    int rc;
    if (p->finished) {
        return 0;
    }
    if (p->n_requests == 0) {
        return perr(&c, "plan", "nothing to request: give --url, or a plan with \"url\" or "
                                "\"requests\"");
    }
    if (!p->stages) {
        if (p->rate_rps < 0) {
            return perr(&c, "rate", "missing: give --rate RPS (0 = as fast as possible), or "
                                    "\"rate\" or \"stages\" in the plan");
        }
        if (p->duration_s < 0) {
            return perr(&c, "duration", "missing: give --duration SECONDS, or \"duration\" or "
                                        "\"stages\" in the plan");
        }
        if (p->rate_rps == 0) {
            if (p->ramp_up_s > 0 || p->ramp_down_s > 0) {
                return perr(&c, "ramp_up", "ramps need a rate above 0 (rate 0 means as fast as "
                                           "possible)");
            }
            p->closed_loop = true;
        } else if ((rc = build_stages(&c, p))) {
            return rc;
        }
    }
    if (!p->closed_loop) {
        size_t bad = 0;
        rc = st_profile_init(&p->profile, p->stages, p->n_stages, &bad);
        if (rc == ST_EINVAL) {
            return perr(&c, "stages", "stage %zu is invalid (durations above 0, rates from 0 to "
                                      "%g, 30 days at most in all)", bad, ST_PROFILE_MAX_RPS);
        }
        if (rc) {
            return rc;
        }
        if (p->profile.total_n < 1) {
            return perr(&c, "rate", "the profile sends no request at all (%g requests in %gs)",
                        p->profile.total_n, p->profile.total_s);
        }
        p->duration_s = p->profile.total_s;
    }
    st_settings_defaults(plan_settings, N_SETTINGS, p, true);
    if (p->send_window_s * 1e3 > p->late_ms) {
        return perr(&c, "send_window", "%gms is longer than late_ms (%dms): batched sends "
                    "would count as late; shorten the window or raise late_ms",
                    p->send_window_s * 1e3, p->late_ms);
    }
    for (size_t i = 0; p->http2 == 1 && i < p->n_requests; i++) {
        for (size_t h = 0; h < p->requests[i].n_headers; h++) {
            const char *bad = st_plan_h2_connection_header(p->requests[i].headers[h]);
            if (bad) {
                char path[64];
                snprintf(path, sizeof(path), "$.requests[%zu].headers[%zu]", i, h);
                return perr(&c, path, "%s is a connection header, which HTTP/2 forbids; remove it "
                            "or drop --http2", bad);
            }
        }
    }
    if (p->threads < 0) {
        p->threads = default_threads > 0 ? default_threads : 1;
    }
    if (p->threads > p->connections) {
        p->threads = p->connections;
    }
    uint64_t wsum = 0;
    uint32_t *weights = malloc(p->n_requests * sizeof(*weights));
    if (!weights) {
        return ST_ENOMEM;
    }
    for (size_t i = 0; i < p->n_requests; i++) {
        weights[i] = p->requests[i].weight;
        wsum += weights[i];
    }
    if (wsum > ST_PLAN_MAX_WEIGHT_SUM) {
        free(weights);
        return perr(&c, "$.requests", "the weights add up to %llu; at most %d in all",
                    (unsigned long long)wsum, ST_PLAN_MAX_WEIGHT_SUM);
    }
    p->mix = malloc(wsum * sizeof(*p->mix));
    if (!p->mix) {
        free(weights);
        return ST_ENOMEM;
    }
    rc = st_interleave_fill(weights, p->n_requests, p->mix, wsum);
    free(weights);
    if (rc) {
        return rc;
    }
    p->mix_len = (uint32_t)wsum;
    p->finished = true;
    return 0;
}
