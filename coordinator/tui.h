/*
 * tui.h - the coordinator's terminal UI (ncursesw): watch a run live and steer its rate.
 *
 * `stampede run` starts it when stdout is a terminal (or with --tui; --headless never does): the
 * UI runs on a thread of its own that owns the terminal (every curses call is made there). The
 * coordinator's owner thread feeds it: the output of st_tui_output receives every finished second
 * (its per-name parts too, looked up by name: sec->names names sec->stats->names), st_tui_feed
 * copies the run's state (header, agents, the merged histogram, the names' totals) at most twice
 * a second;
 * both only copy into a mutex-guarded model that the UI thread copies out of before it draws, so
 * neither side ever waits for the other's work (the UI never touches the core). Keys turn into
 * commands that the owner thread applies with st_tui_steer through st_coord_change_rate_by (which
 * re-splits the load exactly); the UI thread never steers the core itself.
 *
 * While the UI is up, the process's stderr (log lines, the local agents' messages) goes into a
 * pipe that the UI thread reads into the event log, so no line garbles the screen; those lines
 * but the info and debug ones are written to the real stderr again when the UI closes. The
 * terminal is restored by st_tui_close on every way out: the end of the run, `q`, a signal (the
 * program's handler asks the owner thread, which closes the UI), a failed run or an error path
 * (st_tui_free closes it too). At most about 10 redraws a second; window resizes are followed.
 *
 * Drawing is tui_view.h's (tested without a terminal).
 *
 * Threading: every function here from one thread (the owner thread), except that the UI runs on
 * its own; st_tui_free joins it.
 */
#ifndef ST_TUI_H
#define ST_TUI_H

#include "coord.h"
#include "output.h"
#include "report.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct st_tui st_tui;

typedef struct st_tui_cfg {
    const char *run_id;
    int expected_agents;
    bool read_only; /* following a run: no steering keys */
} st_tui_cfg;

/* Opens the UI on the terminal of stdout (keys from stdin) and starts its thread; returns once
 * the terminal is set up. NO_COLOR (set and not empty) draws without colours. Returns 0,
 * ST_EINVAL (stdout is not a terminal, or TERM names no terminal the curses library knows:
 * message in err, which names no flag: the caller says which asked for the UI), ST_EIO (the stderr pipe or the thread could not be made) or ST_ENOMEM. */
int st_tui_start(st_tui **out, const st_tui_cfg *cfg, char *err, size_t err_len);

/* The output that hands every finished second to the UI (its close() does not close the UI). */
int st_tui_output(st_output *out, st_tui *t);

/* Copies the run's state from the core: at most twice a second (other calls return at once),
 * and whenever the state changes. */
void st_tui_feed(st_tui *t, st_coord *core);

/* Copies the state of a report (a run followed from elsewhere): header, agents, histogram, and
 * the requests by name when r has names (r->total.names parts); without agents' rows, the header
 * counts r->plan.expected_agents alive. Once r->status is not ST_REPORT_RUNNING an agent's rate
 * is its average over r->duration_s (st_tui_feed does the same at the run's end). The target
 * rate is the last second's handed to the output. */
void st_tui_feed_report(st_tui *t, const st_report *r, const char *state);

/* Adds a line to the event log. */
void st_tui_event(st_tui *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* What st_tui_steer asks the program to do. */
#define ST_TUI_STOP 1 /* stop the run gracefully (s, q, ^C) */
#define ST_TUI_QUIT 2 /* and close the UI now (q) */

/* Applies the keys typed since the last call: rate changes through st_coord_change_rate_by (by
 * "key"; refusals are said in the UI), pause and resume. Returns ST_TUI_STOP and ST_TUI_QUIT
 * bits. */
int st_tui_steer(st_tui *t, st_coord *core);

/* Whether the user asked to quit (q) since the UI started; for a read-only UI, the only key
 * that asks anything. */
bool st_tui_quit_asked(st_tui *t);

/* Closes the UI: the terminal is restored, stderr is the real one again (its warnings and errors
 * written there). Idempotent; the run may go on without the UI. */
void st_tui_close(st_tui *t);

/* Closes the UI and frees it. NULL is a no-op. */
void st_tui_free(st_tui *t);

#endif
