/*
 * commands.h - the subcommands of the `stampede` program, one file each (cmd_<name>.c).
 *
 * main.c dispatches `stampede NAME ARGS...` through a table of these; each run function gets the
 * arguments after the program name (argv[0] is NAME), parses its own flags, prints its own usage
 * and errors, and returns the process exit code (common/exit_code.h). Called from the main thread
 * only, after curl_global_init.
 */
#ifndef ST_COMMANDS_H
#define ST_COMMANDS_H

typedef struct st_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} st_command;

/* stampede run [PLAN.json] [flags]: the distributed run */
int st_cmd_run(int argc, char **argv);
/* stampede forward --spool DIR --sqs-queue-url URL [--endpoint-url URL] [--region R] */
int st_cmd_forward(int argc, char **argv);
/* stampede results RUN_ID --table NAME [--endpoint-url URL] [--region R] [--json] */
int st_cmd_results(int argc, char **argv);
/* stampede report SUMMARY.json [TIMESERIES.jsonl] -o FILE: the HTML report from the files */
int st_cmd_report(int argc, char **argv);
/* stampede ecs list|stop --cluster NAME [--run RUN_ID] [--endpoint-url URL] [--region R] */
int st_cmd_ecs(int argc, char **argv);

#endif
