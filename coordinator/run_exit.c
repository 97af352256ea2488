#include "run_exit.h"
#include "exit_code.h"

int st_run_exit_code(const st_run_outcome *o)
{
    switch (o->failure) {
    case ST_COORD_FAILURE_NONE:
        break;
    case ST_COORD_FAILURE_REGISTRATION:
        return ST_EXIT_AGENTS;
    case ST_COORD_FAILURE_STOPPED:
        return ST_EXIT_INTERRUPTED;
    case ST_COORD_FAILURE_RUNTIME:
    default:
        return ST_EXIT_FAILURE;
    }
    /* Results that exist nowhere outrank a stop: the stop still wrote what it measured, a lost
     * result did not. */
    if (o->outputs_failed || o->unmerged_records) {
        return ST_EXIT_FAILURE;
    }
    if (o->results_lost) {
        return ST_EXIT_RESULTS_LOST;
    }
    if (o->stopped) {
        return ST_EXIT_INTERRUPTED;
    }
    /* Numbers that are short outrank results still on their way. */
    if (o->degraded) {
        return ST_EXIT_DEGRADED;
    }
    if (o->thresholds_failed) {
        return ST_EXIT_THRESHOLDS;
    }
    return o->results_spooled ? ST_EXIT_PENDING : ST_EXIT_OK;
}
