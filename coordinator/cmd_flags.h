/*
 * cmd_flags.h - the flag loop of the `stampede` subcommands that talk to AWS and take only
 * string and on/off flags (forward, results).
 *
 * Each such command lists its flags (with ST_AWS_FLAGS and {"help", ..., 'h'}) and where their
 * values go; st_cmd_flags runs getopt over them, stores the AWS flags in the command's config and
 * answers --help and bad flags the way every subcommand does.
 *
 * Threading: uses getopt's globals (main thread only, like the commands). Values are borrowed
 * from argv.
 */
#ifndef ST_CMD_FLAGS_H
#define ST_CMD_FLAGS_H

#include "aws.h"

#include <stddef.h>
#include <stdio.h>

struct option;

/* One flag: its getopt code and where it goes: the value into *str (a flag with an argument), or
 * 1 into *on (a flag without one). Exactly one of str and on is set. */
typedef struct st_cmd_flag {
    int code;
    const char **str;
    int *on;
} st_cmd_flag;

/* Parses argv from its first argument with opts: a flag of flags[0 .. n-1] is stored where its
 * row says, ST_AWS_FLAGS go to aws (for svc). Returns -1 when every flag was taken (optind is then
 * at the first operand); ST_EXIT_OK after printing usage to stdout for --help (nothing after it
 * is read); ST_EXIT_USAGE after getopt's message and usage on stderr for an unknown flag or a
 * missing value. */
int st_cmd_flags(int argc, char **argv, const struct option *opts, const st_cmd_flag *flags,
                 size_t n, st_aws_config *aws, st_aws_service svc, void (*usage)(FILE *to));

#endif
