#include "cli.h"
#include "error.h"
#include "plan.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

int st_cli_double(const char *flag, const char *text, double min, double max, double *out,
                  char *err, size_t err_len)
{
    char *end;
    errno = 0;
    double v = text && *text ? strtod(text, &end) : NAN;
    if (!text || !*text || *end || errno || !isfinite(v) || v < min || v > max) {
        snprintf(err, err_len, "%s: \"%s\" is not a number from %g to %g", flag,
                 text ? text : "", min, max);
        return ST_EINVAL;
    }
    *out = v;
    return 0;
}

int st_cli_int(const char *flag, const char *text, long min, long max, int *out, char *err,
               size_t err_len)
{
    char *end;
    errno = 0;
    long v = text && *text ? strtol(text, &end, 10) : 0;
    if (!text || !*text || *end || errno || v < min || v > max || v > INT_MAX || v < INT_MIN) {
        snprintf(err, err_len, "%s: \"%s\" is not a whole number from %ld to %ld", flag,
                 text ? text : "", min, max);
        return ST_EINVAL;
    }
    *out = (int)v;
    return 0;
}

int st_cli_duration(const char *flag, const char *text, double *out_s, char *err, size_t err_len)
{
    if (st_parse_duration(text, out_s) != 0) {
        snprintf(err, err_len, "%s: \"%s\" is not a duration (seconds, or e.g. 500ms, 30s, 2m, 1h)",
                 flag, text ? text : "");
        return ST_EINVAL;
    }
    return 0;
}

int st_cli_log_level(const char *flag, const char *text, st_log_level *out, char *err,
                     size_t err_len)
{
    if (st_log_level_parse(text, out)) {
        snprintf(err, err_len, "%s: \"%s\" is not debug, info, warn or error", flag,
                 text ? text : "");
        return ST_EINVAL;
    }
    return 0;
}

int st_cli_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) {
            return n;
        }
    }
    return 1;
}
