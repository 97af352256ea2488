/*
 * cli.h - strict parsing of command-line values, shared by every stampede program.
 *
 * Each parser takes the flag's name (for the message), the text, and the accepted range; on a bad
 * value it returns ST_EINVAL and writes "--flag: "text" is not ..." into err. Nothing is ever
 * silently defaulted or truncated: "10x", "", "nan" and out-of-range values are errors.
 * Thread-safe.
 */
#ifndef ST_CLI_H
#define ST_CLI_H

#include "log.h"

#include <stddef.h>

int st_cli_double(const char *flag, const char *text, double min, double max, double *out,
                  char *err, size_t err_len);
int st_cli_int(const char *flag, const char *text, long min, long max, int *out, char *err,
               size_t err_len);
/* A duration: seconds, or a number with ms/s/m/h (see st_parse_duration). */
int st_cli_duration(const char *flag, const char *text, double *out_s, char *err, size_t err_len);

/* --log-level: "debug", "info", "warn" or "error". */
int st_cli_log_level(const char *flag, const char *text, st_log_level *out, char *err,
                     size_t err_len);

/* The number of CPUs this process may run on (its affinity mask), at least 1. */
int st_cli_cpus(void);

#endif
