/*
 * agent_flags.h - stampede-agent's command line: its own flags (one table, see settings.h), the
 * plan's flags, and the plan they make with an engine that can send it.
 *
 * agent/main.c calls these; so do the fuzzer of the flag parsers (fuzz/fuzz_plan_flags.c) and the
 * tests, which is why the table is not static to the program.
 *
 * Threading: st_agent_flags_parse uses getopt's globals (one thread at a time); the rest is
 * thread-safe. Strings in st_agent_opts are borrowed from argv (or the environment).
 */
#ifndef ST_AGENT_FLAGS_H
#define ST_AGENT_FLAGS_H

#include "engine.h"
#include "plan.h"
#include "settings.h"

#include <stdint.h>
#include <stdio.h>

typedef struct st_agent_opts {
    const char *plan_file;
    const char *engine;
    const char *coordinator;
    const char *token;
    const char *tls_fingerprint;
    const char *name;
    st_plan_flags f;
    int json;
    int log_level; /* an st_log_level */
    int version, help;
    uint64_t seen; /* bit i: the flag of st_agent_settings()[i] was given */
} st_agent_opts;

/* The agent's own flags (the plan's are st_plan_settings()); *n gets the number of rows. */
const st_setting *st_agent_settings(size_t *n);

/* Parses argv into *o (zeroed first, defaults filled). With --coordinator only the flags that go
 * with it are taken, and a token is needed (--token or STAMPEDE_TOKEN); a tls+tcp:// coordinator
 * needs the fingerprint of its certificate (--tls-fingerprint or STAMPEDE_TLS_FINGERPRINT), which
 * no other coordinator URL takes. Each flag that goes with
 * --coordinator may also come from STAMPEDE_<FLAG> (STAMPEDE_COORDINATOR, STAMPEDE_NAME,
 * STAMPEDE_THREADS, STAMPEDE_LOG_LEVEL, ...), read when --coordinator is given or when
 * STAMPEDE_COORDINATOR is set and no flag outside that set is; a flag wins over its variable, and
 * a bad value is ST_EINVAL naming the variable. Returns 0; 1 when --help
 * or --version was given (o->help / o->version say which); ST_EINVAL (message naming the flag in
 * err) or ST_ENOMEM. */
int st_agent_flags_parse(int argc, char **argv, st_agent_opts *o, char *err, size_t err_len);

/* The usage text, flags from the tables. */
void st_agent_flags_usage(FILE *f);

/* The standalone plan: o->plan_file first (if any), the flags over it, finished and checked, and
 * the engine that sends it (--engine, or auto's choice). Initialises *plan; the caller finis it,
 * also on error. Returns 0, ST_EINVAL (message names the flag, file or JSON path), ST_ENOTFOUND
 * / ST_EIO (the plan file cannot be read) or ST_ENOMEM. */
int st_agent_flags_plan(const st_agent_opts *o, st_plan *plan, const st_engine_ops **engine,
                        char *err, size_t err_len);

#endif
