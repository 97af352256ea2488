/*
 * cli.h - strict parsing of command-line values, shared by every stampede program.
 *
 * Each parser takes the flag's name (for the message), the text, and the accepted range; on a bad
 * value it returns ST_EINVAL and writes "--flag: "text" is not ..." into err. Nothing is ever
 * silently defaulted or truncated: "10x", "", "nan" and out-of-range values are errors. Numbers
 * are plain decimal only: digits, a fraction where the value may have one ("1.5"), and a '-' only
 * where negative values are in range; "0x10", "1e3", "inf", "+5", " 5" and "-0" are refused.
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
/* A whole number without a sign, from min to max. */
int st_cli_uint(const char *flag, const char *text, unsigned long long min, unsigned long long max,
                unsigned long long *out, char *err, size_t err_len);
/* A duration (see st_cli_parse_duration) from min_s to max_s. */
int st_cli_duration(const char *flag, const char *text, double min_s, double max_s, double *out_s,
                    char *err, size_t err_len);

/* The same, or 0 ("0", "0ms"), from 0 to max_s. */
int st_cli_duration_or_zero(const char *flag, const char *text, double max_s, double *out_s,
                            char *err, size_t err_len);

/* Parses a duration: a number of seconds ("30", "1.5") or a number with a unit ("250us",
 * "500ms", "30s", "2m", "1h"). Returns 0 and writes *out_s (finite, > 0), or ST_EINVAL (nothing
 * written). The _or_zero form also takes 0 (*out_s = 0). */
int st_cli_parse_duration(const char *text, double *out_s);
int st_cli_parse_duration_or_zero(const char *text, double *out_s);

/* Writes a duration for people: "30 days", "2 hours", "1 minute", else seconds ("1.5s"). */
void st_cli_format_duration(double s, char *out, size_t len);

/* --log-level: "debug", "info", "warn" or "error". */
int st_cli_log_level(const char *flag, const char *text, st_log_level *out, char *err,
                     size_t err_len);

/* The number of CPUs this process may use, at least 1: its affinity mask, lowered by a CPU quota
 * of its cgroup (a container's `--cpus`: cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us` over
 * `cpu.cfs_period_us`, as the container sees them at /sys/fs/cgroup), rounded up. */
int st_cli_cpus(void);

/* A cgroup CPU quota as CPUs, rounded up: quota and period in microseconds, quota < 0 for none
 * (v1's -1). Returns 0 when there is no quota or it is not a usable number. */
int st_cli_quota_cpus(long long quota_us, long long period_us);

/* The quota of a cgroup v2 `cpu.max` text ("max 100000", "150000 100000\n") as
 * st_cli_quota_cpus counts it; 0 for none or text that is not of that form. */
int st_cli_cpu_max_cpus(const char *text);

/* Calls on_stop on SIGINT and SIGTERM (no SA_RESTART: a blocked call returns EINTR), and ignores
 * SIGPIPE so that a peer's close shows as EPIPE. */
void st_cli_stop_signals(void (*on_stop)(int sig));

#endif
