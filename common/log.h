/*
 * log.h - leveled logging to stderr for every stampede program.
 *
 * One line per call: "<program> <level>: <message>". Lines are written with a single fwrite so that
 * lines from different threads never interleave. Any thread may call st_log at any time; call
 * st_log_init once from main before starting threads (it is not required: the defaults are program
 * "stampede" and level ST_LOG_INFO).
 *
 * Never log secrets: AWS keys, session tokens and run tokens must not be passed to st_log.
 */
#ifndef ST_LOG_H
#define ST_LOG_H

#include <stdarg.h>

typedef enum { ST_LOG_DEBUG = 0, ST_LOG_INFO = 1, ST_LOG_WARN = 2, ST_LOG_ERROR = 3 } st_log_level;

/* Sets the program name printed at the start of each line (the string is copied, truncated to 31
 * bytes) and the lowest level that is printed. Call before starting threads. */
void st_log_init(const char *program, st_log_level min_level);

/* The levels' names, indexed by st_log_level, NULL-terminated (a settings row's choices). */
extern const char *const st_log_level_names[];

/* Parses "debug", "info", "warn" or "error". Returns 0 and writes *out, or ST_EINVAL. */
int st_log_level_parse(const char *name, st_log_level *out);

void st_log(st_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void st_logv(st_log_level level, const char *fmt, va_list ap);

#define st_debug(...) st_log(ST_LOG_DEBUG, __VA_ARGS__)
#define st_info(...)  st_log(ST_LOG_INFO, __VA_ARGS__)
#define st_warn(...)  st_log(ST_LOG_WARN, __VA_ARGS__)
#define st_error(...) st_log(ST_LOG_ERROR, __VA_ARGS__)

#endif
