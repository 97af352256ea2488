#include "log.h"
#include "error.h"

#include <stdio.h>
#include <string.h>

static char g_program[32] = "stampede";
static st_log_level g_min_level = ST_LOG_INFO;

void st_log_init(const char *program, st_log_level min_level)
{
    if (program) {
        snprintf(g_program, sizeof(g_program), "%s", program);
    }
    g_min_level = min_level;
}

const char *const st_log_level_names[] = {"debug", "info", "warn", "error", NULL};

int st_log_level_parse(const char *name, st_log_level *out)
{
    for (int i = 0; st_log_level_names[i]; i++) {
        if (name && strcmp(name, st_log_level_names[i]) == 0) {
            *out = (st_log_level)i;
            return 0;
        }
    }
    return ST_EINVAL;
}

void st_logv(st_log_level level, const char *fmt, va_list ap)
{
    static const char *labels[] = {"debug", "info", "warning", "error"};
    if (level < g_min_level) {
        return;
    }
    char line[2048];
    int n = snprintf(line, sizeof(line), "%s %s: ", g_program, labels[level]);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2) {
        len = sizeof(line) - 2;
    }
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}

void st_log(st_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    st_logv(level, fmt, ap);
    va_end(ap);
}
