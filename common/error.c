#include "error.h"

#include <stdio.h>

const char *st_strerror(int err)
{
    switch (err) {
    case ST_OK: return "success";
    case ST_ENOMEM: return "out of memory";
    case ST_EINVAL: return "invalid input";
    case ST_ERANGE: return "value out of range";
    case ST_EIO: return "input/output error";
    case ST_ETIMEDOUT: return "timed out";
    case ST_ECONNECT: return "connection failed";
    case ST_EPROTO: return "protocol error";
    case ST_ECLOSED: return "closed";
    case ST_ENOTFOUND: return "not found";
    case ST_EAUTH: return "authentication failed";
    case ST_ESTATE: return "invalid state";
    case ST_EAGAIN: return "temporarily unavailable";
    case ST_EREMOTE: return "remote error";
    case ST_ESYSTEM: return "system error";
    default: return "unknown error";
    }
}

int st_verrf(char *err, size_t err_len, int code, const char *fmt, va_list ap)
{
    if (err && err_len > 0) {
        vsnprintf(err, err_len, fmt, ap);
    }
    return code;
}

int st_errf(char *err, size_t err_len, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    st_verrf(err, err_len, code, fmt, ap);
    va_end(ap);
    return code;
}
