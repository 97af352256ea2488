/*
 * fuzz_plan_flags: the command lines of stampede run and stampede-agent on any bytes. The input
 * is split at NUL bytes into an argv; each program's flag parser runs over it and, when it takes
 * the flags, the plan they make is built and checked (as --dry-run and the standalone agent do).
 *
 * A plan file named by the flags is not opened (the fuzzer would read whatever path it made up;
 * fuzz_plan covers plan texts): the operand and --plan are dropped before the plan is built.
 */
#include "agent_flags.h"
#include "plan.h"
#include "run_flags.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 64

/* argv[0] is the program; the rest are the input's NUL-separated pieces. Returns argc. */
static int split(const uint8_t *data, size_t size, char *buf, char **argv, const char *prog)
{
    memcpy(buf, data, size);
    buf[size] = 0;
    int argc = 0;
    argv[argc++] = (char *)prog;
    for (size_t at = 0; at <= size && argc < MAX_ARGS; at += strlen(buf + at) + 1) {
        argv[argc++] = buf + at;
    }
    argv[argc] = NULL;
    return argc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) {
        return 0;
    }
    char *buf = malloc(size + 1);
    char *argv[MAX_ARGS + 1];
    char err[1024];
    if (!buf) {
        return 0;
    }

    int argc = split(data, size, buf, argv, "stampede run");
    st_run_opts ro;
    if (st_run_flags_parse(argc, argv, &ro, err, sizeof(err)) == 0) {
        ro.plan_file = NULL;
        st_plan plan;
        int agents = 0, threads = 0;
        (void)st_run_flags_plan(&ro, &plan, &agents, &threads, err, sizeof(err));
        st_plan_fini(&plan);
    }

    argc = split(data, size, buf, argv, "stampede-agent");
    st_agent_opts ao;
    if (st_agent_flags_parse(argc, argv, &ao, err, sizeof(err)) == 0 && !ao.coordinator) {
        ao.plan_file = NULL;
        st_plan plan;
        const st_engine_ops *engine = NULL;
        (void)st_agent_flags_plan(&ao, &plan, &engine, err, sizeof(err));
        st_plan_fini(&plan);
    }
    free(buf);
    return 0;
}
