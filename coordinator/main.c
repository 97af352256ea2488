/* stampede: the coordinator's command-line entry point, a table of subcommands. */
#include "commands.h"
#include "exit_code.h"
#include "log.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const st_command commands[] = {
    {"run", "run a distributed load test", st_cmd_run},
    {"forward", "send results spooled while SQS was unreachable", st_cmd_forward},
    {"results", "print a run stored in DynamoDB by stampede-sink", st_cmd_results},
    {"report", "write the HTML report of a run from its summary and time series", st_cmd_report},
    {"ecs", "list or stop the ECS tasks of runs (leftovers)", st_cmd_ecs},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *to)
{
    fprintf(to, "usage: stampede COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++) {
        fprintf(to, "  %-10s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(to, "\n`stampede COMMAND --help` describes a command's flags.\n");
}

int main(int argc, char **argv)
{
    const char *level_name = getenv("STAMPEDE_LOG_LEVEL");
    st_log_level level = ST_LOG_INFO;
    if (level_name && st_log_level_parse(level_name, &level) != 0) {
        fprintf(stderr, "stampede: STAMPEDE_LOG_LEVEL must be debug, info, warn or error\n");
        return ST_EXIT_USAGE;
    }
    st_log_init("stampede", level);
    if (argc < 2) {
        usage(stderr);
        return ST_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return ST_EXIT_OK;
    }
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                st_error("cannot initialise libcurl");
                return ST_EXIT_FAILURE;
            }
            int code = commands[i].run(argc - 1, argv + 1);
            curl_global_cleanup();
            return code;
        }
    }
    fprintf(stderr, "stampede: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return ST_EXIT_USAGE;
}
