/*
 * plan_cli.h - the command line of a program that takes the plan's flags beside flags of its own
 * (stampede-agent, stampede run): parsing both tables, their usage text, and the plan a plan file
 * and the flags make together.
 *
 * agent/agent_flags.c and coordinator/run_flags.c call these with their own table (see
 * settings.h); each keeps its own checks of what was given and its own finishing of the plan.
 *
 * Errors: as st_settings_parse_args and the plan functions give them, with the message naming the
 * flag, file or JSON path. Ownership: nothing is allocated that outlives a call; strings stored in
 * the options are borrowed from argv. Threading: st_plan_cli_parse uses getopt's globals (one
 * thread at a time); the rest is thread-safe.
 */
#ifndef ST_PLAN_CLI_H
#define ST_PLAN_CLI_H

#include "plan.h"
#include "settings.h"

#include <stdint.h>
#include <stdio.h>

/* A program's flags: the plan's and its own table. */
typedef struct st_plan_cli {
    const st_setting *rows; /* the program's own flags (ST_SETTING_AT offsets in its options) */
    size_t n;
    unsigned mask;          /* the `where` bits of its flags: ST_SETTING_AGENT or _RUN, | _OWN */
    const char *help_hint;  /* an unknown flag's message ends "(see <help_hint>)" */
    const char *usage;      /* the usage text's lines before the flags */
    int usage_column;       /* the column the flags' help starts at */
    const char *exit_codes; /* the usage text's last paragraph */
} st_plan_cli;

/* Parses argv[1..argc-1]: initialises *f (st_plan_flags_init), writes the defaults of cli's own
 * rows into opts (which must be zeroed) and then reads both tables' flags, the plan's into *f and
 * the program's into opts, recording in *seen which of cli->rows were given. g gets the two
 * groups (g[0] the plan's, g[1] the program's), for st_settings_check_only; they point into *f
 * and opts. Returns what st_settings_parse_args returns: 0 (*first_operand is the index of the
 * first operand), 1 for a STOP switch, ST_EINVAL with the flag named in err, or ST_ENOMEM. */
int st_plan_cli_parse(const st_plan_cli *cli, int argc, char **argv, st_plan_flags *f, void *opts,
                      uint64_t *seen, st_settings_group g[2], int *first_operand, char *err,
                      size_t err_len);

/* Writes the usage text: cli->usage, the flags of both tables (their help from cli->usage_column,
 * wrapped at 92 characters), a blank line and cli->exit_codes. */
void st_plan_cli_usage(const st_plan_cli *cli, FILE *out);

/* Initialises *plan, loads plan_file into it when not NULL, and applies the flags over it (not
 * finished yet). The caller finis *plan, also on error. Returns 0, ST_EINVAL (message names the
 * flag, file or JSON path), ST_ENOTFOUND / ST_EIO (the file cannot be read) or ST_ENOMEM. */
int st_plan_cli_plan(st_plan *plan, const char *plan_file, const st_plan_flags *f, char *err,
                     size_t err_len);

#endif
