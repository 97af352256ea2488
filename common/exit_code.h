/*
 * exit_code.h - the exit codes of every stampede program, and how error codes map onto them.
 *
 * Documented for users in the README and docs/aws.md. main() functions are the only callers of
 * st_exit_code(); nothing below main exits.
 */
#ifndef ST_EXIT_CODE_H
#define ST_EXIT_CODE_H

#include "error.h"

enum {
    ST_EXIT_OK = 0,       /* done */
    ST_EXIT_FAILURE = 1,  /* a runtime failure: AWS errors after retries, I/O, a failed check */
    ST_EXIT_USAGE = 2,    /* bad flags or input */
    ST_EXIT_AUTH = 3,     /* AWS credentials missing, expired or refused */
    ST_EXIT_PENDING = 4,  /* results could not all be delivered: some remain in the spool */
    ST_EXIT_NOTFOUND = 5, /* the run, queue, table or spool directory does not exist */
    ST_EXIT_AGENTS = 6,   /* the agents did not all register in time: nothing was started */
    ST_EXIT_UNREACHABLE = 7, /* an agent's coordinator could not be reached or went silent */
    ST_EXIT_INTERRUPTED = 8, /* stopped early by a signal (the summary is still written) */
    ST_EXIT_DEGRADED = 9,    /* the run ended, but agents were lost or seconds are incomplete */
    ST_EXIT_RESULTS_LOST = 10, /* result messages were lost: neither delivered nor in the spool */
    ST_EXIT_THRESHOLDS = 11,   /* the run's thresholds failed (or one of them stopped it) */
};

/* The exit code for a failure with error code err (0 gives ST_EXIT_OK). */
static inline int st_exit_code(int err)
{
    switch (err) {
    case 0:
        return ST_EXIT_OK;
    case ST_EINVAL:
        return ST_EXIT_USAGE;
    case ST_EAUTH:
        return ST_EXIT_AUTH;
    case ST_EAGAIN:
        return ST_EXIT_PENDING;
    case ST_ENOTFOUND:
        return ST_EXIT_NOTFOUND;
    default:
        return ST_EXIT_FAILURE;
    }
}

#endif
