#include "agent_flags.h"
#include "cli.h"
#include "error.h"
#include "log.h"
#include "plan_cli.h"
#include "tls.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The agent's own flags; the plan's come from st_plan_settings(). */
static const st_setting agent_settings[] = {
    {.flag = "plan", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN, .arg = "FILE",
     .help = "JSON plan: weighted requests, stages, settings (see README)",
     ST_SETTING_AT(st_agent_opts, plan_file)},
    {.flag = "engine", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN | ST_SETTING_REMOTE,
     .arg = "NAME", .help = "auto (the default), curl, fast (HTTP/1.1, http:// or https://, to one origin) or h2 (--http2, one origin)",
     ST_SETTING_AT(st_agent_opts, engine)},
    {.flag = "json", .type = ST_SETTING_BOOL, .where = ST_SETTING_OWN,
     .help = "print the summary as JSON on stdout", ST_SETTING_AT(st_agent_opts, json)},
    {.flag = "coordinator", .type = ST_SETTING_STRING,
     .where = ST_SETTING_OWN | ST_SETTING_REMOTE, .arg = "URL",
     .help = "join a distributed run: the coordinator (tcp://HOST:PORT) sends the plan and this "
             "agent's share",
     ST_SETTING_AT(st_agent_opts, coordinator)},
    {.flag = "token", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN | ST_SETTING_REMOTE,
     .arg = "TOKEN", .help = "the run's token (or the STAMPEDE_TOKEN environment variable)",
     ST_SETTING_AT(st_agent_opts, token)},
    {.flag = "tls-fingerprint", .type = ST_SETTING_STRING,
     .where = ST_SETTING_OWN | ST_SETTING_REMOTE, .arg = "SHA256",
     .help = "with a tls+tcp:// coordinator: the SHA-256 fingerprint of its certificate, which "
             "stampede run prints (or the STAMPEDE_TLS_FINGERPRINT environment variable)",
     ST_SETTING_AT(st_agent_opts, tls_fingerprint)},
    {.flag = "name", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN | ST_SETTING_REMOTE,
     .arg = "NAME", .help = "this agent's name in reports (default HOST-PID)",
     ST_SETTING_AT(st_agent_opts, name)},
    {.flag = "log-level", .type = ST_SETTING_ENUM, .where = ST_SETTING_OWN | ST_SETTING_REMOTE,
     .arg = "LEVEL", .choices = st_log_level_names, .has_def = true, .def = ST_LOG_INFO,
     .help = "debug, info, warn or error", ST_SETTING_AT(st_agent_opts, log_level)},
    {.flag = "version", .type = ST_SETTING_BOOL, .where = ST_SETTING_OWN | ST_SETTING_STOP,
     .help = "print the version and exit", ST_SETTING_AT(st_agent_opts, version)},
    {.flag = "help", .type = ST_SETTING_BOOL, .where = ST_SETTING_OWN | ST_SETTING_STOP,
     .help = "print this help and exit", ST_SETTING_AT(st_agent_opts, help)},
};

#define N_AGENT_SETTINGS (sizeof(agent_settings) / sizeof(agent_settings[0]))
#define FLAGS_MASK       (ST_SETTING_AGENT | ST_SETTING_OWN)

const st_setting *st_agent_settings(size_t *n)
{
    *n = N_AGENT_SETTINGS;
    return agent_settings;
}

static const char agent_usage[] =
    "usage: stampede-agent --url URL --rate RPS --duration SECONDS [options]\n"
    "       stampede-agent --plan FILE [options]\n"
    "       stampede-agent --coordinator URL --token TOKEN [--name NAME] [--threads N]\n"
    "       stampede-agent    (with STAMPEDE_COORDINATOR, STAMPEDE_TOKEN and optionally\n"
    "                         STAMPEDE_NAME, _THREADS, _ENGINE, _LOG_LEVEL set)\n"
    "\n"
    "Sends HTTP requests open loop: request k leaves at the instant the rate profile's\n"
    "integral reaches k, and latency counts from that instant (coordinated omission\n"
    "corrected); the uncorrected latency is reported beside it.\n"
    "\n";

static const char agent_exit_codes[] =
    "Exit codes: 0 the run completed (whatever the target answered), 1 the run could not\n"
    "be carried out, 2 bad flags or plan, 3 the coordinator refused this agent (or its\n"
    "TLS certificate does not match --tls-fingerprint), 7 the coordinator could not be\n"
    "reached or went silent (the load stops within 3 s).\n";

static const st_plan_cli agent_cli = {agent_settings, N_AGENT_SETTINGS, FLAGS_MASK, "--help",
                                      agent_usage, 22, agent_exit_codes};

void st_agent_flags_usage(FILE *f)
{
    st_plan_cli_usage(&agent_cli, f);
}

/* STAMPEDE_<FLAG> ("--log-level" -> STAMPEDE_LOG_LEVEL): how an agent under a coordinator is
 * configured where it has no command line (the ECS image's entrypoint is stampede-agent alone).
 * Each flag that goes with --coordinator has its variable; a flag given wins over it. */
static void env_name(const char *flag, char *out, size_t len)
{
    size_t k = (size_t)snprintf(out, len, "STAMPEDE_");
    for (; *flag && k + 1 < len; flag++) {
        out[k++] = *flag == '-' ? '_' : (char)(*flag >= 'a' && *flag <= 'z' ? *flag - 32 : *flag);
    }
    out[k] = 0;
}

static int from_env(st_settings_group *g, size_t n_groups, char *err, size_t err_len)
{
    for (size_t i = 0; i < n_groups; i++) {
        for (size_t r = 0; r < g[i].n; r++) {
            const st_setting *s = &g[i].rows[r];
            if (!s->flag || !(s->where & ST_SETTING_REMOTE) || (*g[i].seen & ((uint64_t)1 << r))) {
                continue;
            }
            char name[64], why[512];
            env_name(s->flag, name, sizeof(name));
            const char *v = getenv(name);
            if (!v || !v[0]) {
                continue;
            }
            if (st_setting_from_text(s, v, (char *)g[i].flags + s->flag_offset, why,
                                     sizeof(why))) {
                snprintf(err, err_len, "environment variable %s: %s", name, why);
                return ST_EINVAL;
            }
        }
    }
    return 0;
}

int st_agent_flags_parse(int argc, char **argv, st_agent_opts *o, char *err, size_t err_len)
{
    st_settings_group g[2];
    memset(o, 0, sizeof(*o));
    int first = argc;
    int rc = st_plan_cli_parse(&agent_cli, argc, argv, &o->f, o, &o->seen, g, &first, err, err_len);
    if (rc) {
        return rc;
    }
    if (first < argc) {
        snprintf(err, err_len, "unexpected argument \"%s\" (see --help)", argv[first]);
        return ST_EINVAL;
    }
    /* Without a command line of its own (no plan or load flags) an agent takes its coordinator
     * and the rest from the environment; with --coordinator, what the flags leave out. */
    bool env_only = !o->coordinator && getenv("STAMPEDE_COORDINATOR") &&
                    st_settings_check_only(g, 2, FLAGS_MASK, ST_SETTING_REMOTE, "", "", err,
                                           err_len) == 0;
    if ((o->coordinator || env_only) && (rc = from_env(g, 2, err, err_len))) {
        return rc;
    }
    if (o->coordinator) {
        if ((rc = st_settings_check_only(g, 2, FLAGS_MASK, ST_SETTING_REMOTE, "--coordinator",
                                         "the plan comes from the coordinator", err, err_len))) {
            return rc;
        }
        if (!o->token) {
            o->token = getenv("STAMPEDE_TOKEN");
        }
        if (!o->token || !o->token[0]) {
            snprintf(err, err_len, "--token: a distributed run needs the run's token (--token or "
                                   "STAMPEDE_TOKEN)");
            return ST_EINVAL;
        }
        const char *pin_src = "--tls-fingerprint";
        if (!o->tls_fingerprint && (o->tls_fingerprint = getenv("STAMPEDE_TLS_FINGERPRINT"))) {
            pin_src = "STAMPEDE_TLS_FINGERPRINT";
        }
        if ((rc = st_tls_check_pin(o->coordinator, o->tls_fingerprint, pin_src, err,
                                   err_len))) {
            return rc;
        }
    }
    return 0;
}

int st_agent_flags_plan(const st_agent_opts *o, st_plan *plan, const st_engine_ops **engine,
                        char *err, size_t err_len)
{
    int rc;
    if ((rc = st_plan_cli_plan(plan, o->plan_file, &o->f, err, err_len))) {
        return rc;
    }
    if ((rc = st_plan_finish(plan, st_cli_cpus(), err, err_len))) {
        return rc;
    }
    return st_engine_choose(o->engine, plan, engine, err, err_len);
}
