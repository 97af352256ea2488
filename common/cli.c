#include "cli.h"
#include "error.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The length of the plain decimal number text starts with, or 0 if it does not start with one:
 * digits, then ".digits" when fraction, and one '-' in front only when minus_ok. strtod and
 * strtol take much more ("0x10", "inf", "+5", " 5", "1e3"), which a flag must not mean; "-0" is
 * refused, since it would read as a negative number and be none. */
static size_t decimal_len(const char *t, bool minus_ok, bool fraction)
{
    size_t i = 0;
    if (minus_ok && t[0] == '-') {
        i = 1;
    }
    size_t digits = i;
    while (isdigit((unsigned char)t[i])) {
        i++;
    }
    if (i == digits) {
        return 0;
    }
    if (fraction && t[i] == '.') {
        size_t f = ++i;
        while (isdigit((unsigned char)t[i])) {
            i++;
        }
        if (i == f) {
            return 0;
        }
    }
    if (t[0] == '-' && strspn(t + 1, "0.") >= i - 1) {
        return 0;
    }
    return i;
}

/* Whether all of text is one plain decimal number (see decimal_len). */
static bool is_plain(const char *text, bool minus_ok, bool fraction)
{
    size_t n = text ? decimal_len(text, minus_ok, fraction) : 0;
    return n > 0 && text[n] == 0;
}

int st_cli_double(const char *flag, const char *text, double min, double max, double *out,
                  char *err, size_t err_len)
{
    char *end;
    errno = 0;
    bool plain = is_plain(text, min < 0, true);
    double v = plain ? strtod(text, &end) : NAN;
    if (!plain || *end || errno || !isfinite(v) || v < min || v > max) {
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
    bool plain = is_plain(text, min < 0, false);
    long v = plain ? strtol(text, &end, 10) : 0;
    if (!plain || *end || errno || v < min || v > max || v > INT_MAX || v < INT_MIN) {
        snprintf(err, err_len, "%s: \"%s\" is not a whole number from %ld to %ld", flag,
                 text ? text : "", min, max);
        return ST_EINVAL;
    }
    *out = (int)v;
    return 0;
}

int st_cli_uint(const char *flag, const char *text, unsigned long long min, unsigned long long max,
                unsigned long long *out, char *err, size_t err_len)
{
    char *end;
    errno = 0;
    /* strtoull accepts "-1" as a huge number: only digits are a whole number without a sign. */
    bool digits = is_plain(text, false, false);
    unsigned long long v = digits ? strtoull(text, &end, 10) : 0;
    if (!digits || *end || errno || v < min || v > max) {
        snprintf(err, err_len, "%s: \"%s\" is not a whole number from %llu to %llu", flag,
                 text ? text : "", min, max);
        return ST_EINVAL;
    }
    *out = v;
    return 0;
}

/* A duration as st_cli_parse_duration reads it; zero_ok also takes 0 ("0", "0ms"). */
static int parse_duration(const char *text, bool zero_ok, double *out_s)
{
    size_t n = text ? decimal_len(text, false, true) : 0;
    if (n == 0) {
        return ST_EINVAL;
    }
    errno = 0;
    char *end;
    double v = strtod(text, &end);
    if (end != text + n || errno || !isfinite(v)) {
        return ST_EINVAL;
    }
    double scale;
    if (*end == 0 || strcmp(end, "s") == 0) {
        scale = 1;
    } else if (strcmp(end, "ms") == 0) {
        scale = 1e-3;
    } else if (strcmp(end, "us") == 0) {
        scale = 1e-6;
    } else if (strcmp(end, "m") == 0) {
        scale = 60;
    } else if (strcmp(end, "h") == 0) {
        scale = 3600;
    } else {
        return ST_EINVAL;
    }
    v *= scale;
    if (!(v > 0 || (zero_ok && v == 0 && !signbit(v))) || !isfinite(v)) {
        return ST_EINVAL;
    }
    *out_s = v;
    return 0;
}

int st_cli_parse_duration(const char *text, double *out_s)
{
    return parse_duration(text, false, out_s);
}

int st_cli_parse_duration_or_zero(const char *text, double *out_s)
{
    return parse_duration(text, true, out_s);
}

void st_cli_format_duration(double s, char *out, size_t len)
{
    static const struct {
        double unit;
        const char *one, *many;
    } units[] = {{86400, " day", " days"}, {3600, " hour", " hours"}, {60, " minute", " minutes"}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        double n = s / units[i].unit;
        if (n >= 1 && n == floor(n)) {
            snprintf(out, len, "%g%s", n, n == 1 ? units[i].one : units[i].many);
            return;
        }
    }
    snprintf(out, len, "%gs", s);
}

static int cli_duration(const char *flag, const char *text, bool zero_ok, double min_s,
                        double max_s, double *out_s, char *err, size_t err_len)
{
    double v;
    if (parse_duration(text, zero_ok, &v) != 0 || (v < min_s && !(zero_ok && v == 0)) ||
        v > max_s) {
        char most[32];
        st_cli_format_duration(max_s, most, sizeof(most));
        snprintf(err, err_len,
                 "%s: \"%s\" is not a duration of %s%s (seconds, or e.g. 500ms, 30s, 2m, "
                 "1h)",
                 flag, text ? text : "", zero_ok ? "0 up to " : "at most ", most);
        return ST_EINVAL;
    }
    *out_s = v;
    return 0;
}

int st_cli_duration(const char *flag, const char *text, double min_s, double max_s, double *out_s,
                    char *err, size_t err_len)
{
    return cli_duration(flag, text, false, min_s, max_s, out_s, err, err_len);
}

int st_cli_duration_or_zero(const char *flag, const char *text, double max_s, double *out_s,
                            char *err, size_t err_len)
{
    return cli_duration(flag, text, true, 0, max_s, out_s, err, err_len);
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

int st_cli_quota_cpus(long long quota_us, long long period_us)
{
    if (quota_us <= 0 || period_us <= 0) {
        return 0;
    }
    long long n = (quota_us + period_us - 1) / period_us;
    return n > 4096 ? 4096 : (int)n;
}

int st_cli_cpu_max_cpus(const char *text)
{
    long long quota, period;
    char end;
    if (!text || strncmp(text, "max", 3) == 0) {
        return 0;
    }
    if (sscanf(text, "%lld %lld%c", &quota, &period, &end) < 2) {
        return 0;
    }
    return st_cli_quota_cpus(quota, period);
}

/* The first line of a small file, "" when it cannot be read. */
static void read_line(const char *path, char *out, size_t len)
{
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(out, (int)len, f)) {
            out[0] = 0;
        }
        fclose(f);
    }
}

static int cgroup_cpus(void)
{
    char a[64], b[64];
    read_line("/sys/fs/cgroup/cpu.max", a, sizeof(a));
    if (a[0]) {
        return st_cli_cpu_max_cpus(a);
    }
    read_line("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", a, sizeof(a));
    read_line("/sys/fs/cgroup/cpu/cpu.cfs_period_us", b, sizeof(b));
    if (a[0] && b[0]) {
        return st_cli_quota_cpus(strtoll(a, NULL, 10), strtoll(b, NULL, 10));
    }
    return 0;
}

int st_cli_cpus(void)
{
    int n = 1;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) {
        n = CPU_COUNT(&set);
    }
    int quota = cgroup_cpus();
    return quota > 0 && quota < n ? quota : n;
}

void st_cli_stop_signals(void (*on_stop)(int sig))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}
