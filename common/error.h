/*
 * error.h - stampede's error codes.
 *
 * Every fallible function in stampede returns an int: 0 on success, one of the negative ST_E* codes
 * below on failure. Library codes (CURLcode, nng errors, errno, AWS error bodies) are translated into
 * these inside the module that calls the library; callers only ever see ST_E* values.
 * st_strerror() is safe to call from any thread and never returns NULL.
 *
 * Messages for people go into the caller's buffer (char *err, size_t err_len) through st_errf, the
 * one formatter every module uses for them, so that an error path reads
 *     return st_errf(err, err_len, ST_EINVAL, "$.rate: must be a number, not %s", type);
 */
#ifndef ST_ERROR_H
#define ST_ERROR_H

#include <stdarg.h>
#include <stddef.h>

enum {
    ST_OK = 0,
    ST_ENOMEM = -1,     /* an allocation failed */
    ST_EINVAL = -2,     /* an argument or an input (flag, plan, message) is invalid */
    ST_ERANGE = -3,     /* a value is outside what the module supports */
    ST_EIO = -4,        /* reading or writing a file or socket failed */
    ST_ETIMEDOUT = -5,  /* a deadline passed */
    ST_ECONNECT = -6,   /* a connection could not be made */
    ST_EPROTO = -7,     /* a peer sent something that does not follow the protocol */
    ST_ECLOSED = -8,    /* the object or the peer is closed */
    ST_ENOTFOUND = -9,  /* a named thing (file, queue, table, agent) does not exist */
    ST_EAUTH = -10,     /* credentials or a token are missing, wrong or expired */
    ST_ESTATE = -11,    /* the call is not valid in the object's current state */
    ST_EAGAIN = -12,    /* try again later (throttled, queue full, nothing yet) */
    ST_EREMOTE = -13,   /* a remote service answered with an error */
    ST_ESYSTEM = -14,   /* an operating-system call failed for another reason */
};

/* A short, static English description of err (an ST_E* code). Unknown codes give "unknown error". */
const char *st_strerror(int err);

/* Formats a printf-style message into err and returns code (any int: an ST_E* code, or 0/1 for a
 * yes/no answer that carries a reason). The message is always NUL-terminated and cut short when it
 * does not fit in err_len bytes. err NULL or err_len 0: nothing is written (callers that do not
 * want the message pass NULL, 0). Any thread; it allocates nothing. */
int st_errf(char *err, size_t err_len, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* st_errf with a va_list, for modules that wrap it (ap is consumed as by vsnprintf). */
int st_verrf(char *err, size_t err_len, int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

#endif
