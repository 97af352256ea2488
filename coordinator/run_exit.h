/*
 * run_exit.h - the exit code of `stampede run`, from everything that decides it, in one place.
 *
 * cmd_run.c fills an st_run_outcome at the end of the run (the core's failure reason, whether a
 * signal stopped it, what became of the outputs) and exits with st_run_exit_code. The codes are
 * common/exit_code.h's; README "Exit codes" documents them for users.
 *
 * Threading: a pure function.
 */
#ifndef ST_RUN_EXIT_H
#define ST_RUN_EXIT_H

#include "coord.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct st_run_outcome {
    st_coord_failure_reason failure; /* ST_COORD_FAILURE_NONE unless the run failed */
    bool stopped;                    /* a signal stopped the run after its start */
    bool degraded;                   /* agents were lost or seconds are incomplete (the report's
                                      * status is degraded) */
    bool outputs_failed;             /* a result file (--summary, --timeseries) was not written */
    uint64_t unmerged_records;       /* records the merge could not put in their second (out of
                                      * memory): the series is wrong */
    uint64_t results_lost;           /* result messages neither delivered to SQS nor spooled */
    uint64_t results_spooled;        /* result messages waiting in the spool (stampede forward) */
    bool thresholds_failed;          /* a threshold failed, or one stopped the run */
} st_run_outcome;

/* The first that applies:
 *   the run failed: ST_EXIT_AGENTS (registration), ST_EXIT_INTERRUPTED (stopped before the
 *     start), ST_EXIT_FAILURE (any other reason);
 *   a result file was not written, or records are missing from their seconds: ST_EXIT_FAILURE;
 *   result messages were lost: ST_EXIT_RESULTS_LOST;
 *   a signal stopped the run: ST_EXIT_INTERRUPTED;
 *   agents were lost or seconds are incomplete: ST_EXIT_DEGRADED;
 *   a threshold failed: ST_EXIT_THRESHOLDS;
 *   result messages wait in the spool: ST_EXIT_PENDING;
 *   else ST_EXIT_OK.
 * Thresholds come after a signal (8) and a degraded run (9) because a verdict is only as good as
 * the numbers it is drawn from: a run cut short by hand, or short of agents or seconds, did not
 * measure what was asked, and that is what must be fixed first (both are non-zero, so CI fails
 * either way). A threshold's own abort is not a signal: such a run exits ST_EXIT_THRESHOLDS.
 * Thresholds outrank results waiting in the spool: those will still arrive, a failed threshold
 * is the run's verdict. */
int st_run_exit_code(const st_run_outcome *o);

#endif
