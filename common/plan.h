/*
 * plan.h - a load test plan: what to request, how fast, for how long, and with what.
 *
 * A plan comes from a JSON file (st_plan_load_file / st_plan_parse), from command-line flags, or
 * both: programs parse the file first, then apply their flags with the st_plan_set_* calls, then call
 * st_plan_finish, which fills defaults, checks the whole, and builds the rate profile. The format is
 * documented in README.md ("Plan format"); the AWS seed launcher payload ({"taskCount", "targetUrl",
 * "vus", "rate", "duration"}) is accepted as a plan too.
 *
 * Errors: every parse or check failure returns ST_EINVAL and writes a message that names the JSON
 * path (or the flag) and what is wrong into the caller's buffer, e.g.
 * "$.requests[2].weight: must be an integer from 1 to 1000000".
 *
 * Ownership: an st_plan owns every string and array inside it; st_plan_fini releases them. After
 * st_plan_finish a plan is read-only and may be read from several threads at once.
 */
#ifndef ST_PLAN_H
#define ST_PLAN_H

#include "profile.h"
#include "settings.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ST_PLAN_MAX_REQUESTS   4096
#define ST_PLAN_MAX_WEIGHT     1000000
#define ST_PLAN_MAX_WEIGHT_SUM 1000000
#define ST_PLAN_MAX_HEADERS    64

typedef struct st_request {
    char *name;     /* for reports; defaults to "METHOD URL" */
    char *method;   /* upper case, e.g. "GET" */
    char *url;      /* absolute http:// or https:// URL */
    char **headers; /* n_headers lines "Name: value" */
    size_t n_headers;
    char *body; /* may be NULL; body_len bytes, not NUL-terminated in meaning */
    size_t body_len;
    uint32_t weight; /* >= 1 */
} st_request;

typedef struct st_plan {
    char *name;
    st_request *requests;
    size_t n_requests;

    /* Load shape. Set by the file or flags; st_plan_finish turns them into `profile`. */
    double rate_rps;      /* < 0: unset. 0 with no stages: closed loop (as fast as possible) */
    double duration_s;    /* < 0: unset */
    double ramp_up_s;     /* < 0: unset */
    double ramp_down_s;   /* < 0: unset */
    st_stage *stages;     /* explicit stages, or NULL */
    size_t n_stages;

    /* Engine settings; < 0 means unset. */
    int connections;
    int threads;
    int timeout_ms;
    int late_ms;
    double send_window_s; /* < 0: unset; 0: every open-loop send on its own wake-up */
    int http2;    /* -1 unset, 0/1 */
    int streams;  /* HTTP/2 streams per connection (h2 engine) */
    int insecure; /* -1 unset, 0/1 */
    char *cacert;          /* TLS: the CA file as given (the plan's folder prepended to a relative
                              path), or NULL for the system's CAs */
    char *cacert_pem;      /* its contents, read when the plan or --cacert named it (remote
                              agents get these, not the path) */
    size_t cacert_pem_len;

    /* Distributed-run settings; < 0 / NULL means unset. */
    int agents;
    struct cJSON *ecs; /* the "ecs" object: the ecs launcher's settings, which stampede run
                        * reads (coordinator/run_flags.h); the plan's own copy, or NULL */

    /* The coordinator's pass/fail expressions (coordinator/threshold.h parses them; agents never
     * get them): the plan's "thresholds" first (n_file_thresholds of them, $.thresholds[i]), then
     * each --threshold in command-line order. */
    char **thresholds;
    size_t n_thresholds;
    size_t n_file_thresholds;

    /* Filled by st_plan_finish. */
    bool finished;
    bool closed_loop;
    st_profile profile; /* valid unless closed_loop */
    uint32_t *mix;      /* mix_len entries: the request index for global request q is mix[q % mix_len] */
    uint32_t mix_len;
} st_plan;

/* Zeroes a plan with every field unset. */
void st_plan_init(st_plan *p);
void st_plan_fini(st_plan *p);

/* Parses a JSON plan from text (len bytes) into an initialised plan; `origin` names the source in
 * messages (a file name). Returns 0, ST_EINVAL (message in err) or ST_ENOMEM. On error the plan may
 * hold part of the input; st_plan_fini still releases it. */
int st_plan_parse(st_plan *p, const char *text, size_t len, const char *origin, char *err,
                  size_t err_len);

/* Reads and parses a file. Returns as st_plan_parse, or ST_EIO / ST_ENOTFOUND when the file cannot
 * be read (message in err). Only regular files are read, the plan and its body_file alike: a
 * directory, a FIFO (never waited on), a device or a socket is ST_EINVAL, with a message that
 * says which. Relative body_file paths are resolved against the plan's folder. */
int st_plan_load_file(st_plan *p, const char *path, char *err, size_t err_len);

/* Replaces the requests by a single GET of url (a --url flag). Returns 0, ST_EINVAL (message names
 * the flag) or ST_ENOMEM. */
int st_plan_set_url(st_plan *p, const char *url, char *err, size_t err_len);

/* The plan's settings, one row each (see settings.h): every key of a plan file and every flag
 * that shapes a plan, with its bounds, default, help line and where it applies. Rows with a flag
 * store it in st_plan_flags at flag_offset; *n gets the number of rows. */
const st_setting *st_plan_settings(size_t *n);

/* Command-line values that override a plan file; negative / NULL / 0 means not given. */
typedef struct st_plan_flags {
    const char *url;
    const char *cacert;
    double rate_rps, duration_s, ramp_up_s, send_window_s;
    int connections, threads, timeout_ms, late_ms, agents, streams;
    int http2, insecure; /* 1: given */
    st_setting_list thresholds; /* --threshold, the one repeatable flag: added to the plan's */
    uint64_t given;      /* bit i: the flag of st_plan_settings()[i] was given */
} st_plan_flags;

/* Sets every field of f to "not given". */
void st_plan_flags_init(st_plan_flags *f);

/* The plan's flags with the bit mask (ST_SETTING_AGENT or ST_SETTING_RUN), parsed into f, as a
 * group for st_settings_parse_args and st_settings_usage. f must stay alive while it is used. */
st_settings_group st_plan_flags_group(st_plan_flags *f);

/* Takes one command-line flag by its long name without the dashes ("rate", "ramp-up", ...) and
 * its value (NULL for the switches http2 and insecure): any flag of st_plan_settings(). Returns
 * 0, ST_EINVAL for a bad value (the message names the flag), or ST_ENOTFOUND when name is not
 * one of them (nothing written). */
int st_plan_flags_option(st_plan_flags *f, const char *name, const char *value, char *err,
                         size_t err_len);

/* Applies flags over a parsed (not finished) plan: --url replaces the requests, and any of
 * --rate, --duration, --ramp-up replaces the plan's stages by the rate/duration shape; each
 * --threshold is added after the plan's thresholds. Returns 0,
 * ST_EINVAL (message names the flag) or ST_ENOMEM. */
int st_plan_apply_flags(st_plan *p, const st_plan_flags *f, char *err, size_t err_len);

/* Fills defaults (the table's; threads from default_threads), checks the plan as a whole, and builds the profile
 * and the request mix. Returns 0, ST_EINVAL (message in err) or ST_ENOMEM. A plan with http2 and
 * a connection header (st_plan_h2_connection_header) is ST_EINVAL, naming the header. */
int st_plan_finish(st_plan *p, int default_threads, char *err, size_t err_len);

/* When the header line "Name: value" is one of the connection headers HTTP/2 forbids (RFC 9113
 * 8.2.2: Connection, Keep-Alive, Proxy-Connection, Upgrade, TE), that name as spelt here; else
 * NULL. */
const char *st_plan_h2_connection_header(const char *line);

#endif
