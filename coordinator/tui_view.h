/*
 * tui_view.h - what the coordinator's terminal UI shows, drawn into a grid of cells.
 *
 * The model (st_tui_model) is plain data: the run's header figures, the last seconds for the
 * charts, the run's latency distribution, the agents' rows, the event log and the launch progress.
 * tui.c fills it from the coordinator's outputs and hands copies to its UI thread; st_tui_render
 * draws one into an st_tui_screen (characters and a style per cell), which tui.c then puts on the
 * terminal with ncursesw. Nothing here touches a terminal, so the layout and the charts are tested
 * on plain buffers (tests/test_tui_view.c).
 *
 * Layout: a header (run id, state, a gauge of the elapsed time against the planned duration,
 * target and achieved rps, agents alive and lost, start skew), then one of four views (Tab):
 * the overview (charts of target against achieved rps and of p50/p90/p99, errors per second with
 * the totals by class, the latency distribution, the first agents and the last events), the
 * agents table (each agent's p99 is that of its latest second with responses), the requests by
 * name (a table of each name's counts and latency over the run so far, one name selected with
 * the arrows, and the selected name's p99 and p50 per second as a chart), the event log; a
 * footer with the keys. `l` switches every latency figure, chart and column to uncorrected. While no second has been handed out yet
 * the charts give way to the launch progress. Any size works; below 40x10 the screen says it is
 * too small. Charts are braille cells (2x4 dots each); the error chart is block cells.
 *
 * Threading: plain data and pure functions; one owner per model and per screen.
 */
#ifndef ST_TUI_VIEW_H
#define ST_TUI_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <wchar.h>

#define ST_TUI_HISTORY   512 /* seconds the charts keep */
#define ST_TUI_EVENTS    128 /* events kept */
#define ST_TUI_EVENT_LEN 256
#define ST_TUI_AGENTS    256 /* agents' rows kept (the rest are counted) */
#define ST_TUI_BINS      16  /* rows of the latency distribution */
#define ST_TUI_PROMPT    24
#define ST_TUI_NAMES     32 /* request names kept (common/names.h keeps at most as many) */
#define ST_TUI_NAME_LEN  48

/* The style of a cell: what it shows, mapped to colours (or to bold / reverse under NO_COLOR). */
typedef enum st_tui_style {
    ST_TUI_PLAIN = 0,
    ST_TUI_TITLE,    /* panel titles, the header */
    ST_TUI_TARGET,   /* the target rate */
    ST_TUI_ACHIEVED, /* the achieved rate */
    ST_TUI_P50,
    ST_TUI_P90,
    ST_TUI_P99,
    ST_TUI_ERROR, /* errors, failed runs */
    ST_TUI_WARN,  /* lost agents, late and dropped requests */
    ST_TUI_DIM,   /* axes, help text */
    ST_TUI_GAUGE, /* the elapsed part of the gauge */
    /* The errors chart's classes, stacked in this order from the bottom of each column. */
    ST_TUI_ERR_HTTP,    /* 4xx and 5xx answers */
    ST_TUI_ERR_CONNECT, /* connections, TLS handshakes and certificates that failed */
    ST_TUI_ERR_TIMEOUT, /* no answer in time */
    ST_TUI_ERR_OTHER,   /* resets, malformed answers, the rest */
    ST_TUI_N_STYLES
} st_tui_style;

typedef struct st_tui_cell {
    wchar_t ch;
    uint8_t style; /* an st_tui_style */
} st_tui_cell;

typedef struct st_tui_screen {
    int w, h;
    st_tui_cell *cells; /* w * h, row by row */
} st_tui_screen;

/* One second of the run, as the charts need it. */
typedef struct st_tui_point {
    uint32_t second;
    double target_rps, achieved_rps;
    bool have_latency;                /* some response in it */
    double p50_ms, p90_ms, p99_ms;    /* corrected: from the intended send */
    double up50_ms, up90_ms, up99_ms; /* uncorrected: from the actual send */
    uint64_t ok, failed;
    uint64_t http_4xx, http_5xx, connect, timeout, other;
    uint64_t tls, cert; /* TLS handshakes failed, certificates that did not verify */
    uint64_t late, dropped;
    int agents;
} st_tui_point;

typedef struct st_tui_agent_row {
    char name[40];
    char where[72]; /* host, or ECS task id and AZ */
    char state[12];
    bool lost;
    double share_rps;
    double achieved_rps; /* over the last snapshot interval */
    uint64_t failed;
    double offset_ms, rtt_ms;
    uint32_t heard_ms; /* UINT32_MAX: not since it was lost */
    bool have_p99;          /* it reported a second with responses */
    double p99_ms, up99_ms; /* of its latest such second: corrected, uncorrected */
} st_tui_agent_row;

/* One request name's part of one second, for its chart. */
typedef struct st_tui_name_point {
    bool have_latency; /* some response of that name in it */
    float p50_ms, p99_ms, up50_ms, up99_ms;
    uint32_t done;
} st_tui_name_point;

/* One request name: the run so far (counts and latency in run; second, target and agents
 * unused), and its responses in the last second handed out. */
typedef struct st_tui_name_row {
    char name[ST_TUI_NAME_LEN];
    st_tui_point run;
    double last_rps;
} st_tui_name_row;

typedef struct st_tui_bin {
    double lo_ms, hi_ms;
    uint64_t count;
} st_tui_bin;

typedef struct st_tui_model {
    char run_id[64];
    char state[40]; /* "waiting for agents", "preparing", "running", "draining", ... */
    bool failed;
    bool read_only; /* following a run: no steering keys */
    bool closed_loop;
    double elapsed_s, planned_s;
    double target_rps;   /* the planned rate now (a pending change included) */
    double achieved_rps; /* of the last second handed out */
    bool paused;
    int expected_agents, agents_alive, agents_lost;
    bool have_skew;
    double start_skew_ms;
    st_tui_point run; /* the run so far: its counts and latency (second and agents unused) */
    /* The last seconds, oldest first (a ring: points[(first + i) % ST_TUI_HISTORY]). */
    st_tui_point points[ST_TUI_HISTORY];
    size_t first, n_points;
    st_tui_bin bins[ST_TUI_BINS], ubins[ST_TUI_BINS]; /* corrected, uncorrected */
    size_t n_bins, n_ubins;
    st_tui_agent_row agents[ST_TUI_AGENTS];
    size_t n_agents, more_agents; /* rows kept, and agents beyond them */
    /* Events, oldest first (a ring like points). */
    char events[ST_TUI_EVENTS][ST_TUI_EVENT_LEN];
    size_t first_event, n_events;
    char launch[ST_TUI_EVENT_LEN]; /* the launcher's last progress line, "" without */
    /* Request names (plans with more than one), in the order first seen, and each name's part
     * of the seconds kept: name_points[slot][k] goes with points[slot] (the same ring). */
    st_tui_name_row names[ST_TUI_NAMES];
    size_t n_names;
    st_tui_name_point name_points[ST_TUI_HISTORY][ST_TUI_NAMES];
    /* What the user sees and types. */
    int view;         /* an ST_TUI_VIEW_* */
    int name_sel;     /* the name selected in the names view (clamped to the names there are) */
    bool uncorrected; /* latency from the actual send (`l`) */
    bool help;        /* the keys (`?`) */
    bool prompting;   /* typing an exact rate (`r`) */
    char prompt[ST_TUI_PROMPT];
    char status[ST_TUI_EVENT_LEN]; /* the answer to the last key, "" without */
} st_tui_model;

#define ST_TUI_VIEW_OVERVIEW 0
#define ST_TUI_VIEW_AGENTS   1
#define ST_TUI_VIEW_NAMES    2
#define ST_TUI_VIEW_EVENTS   3
#define ST_TUI_VIEWS         4

/* Clears m to an empty model. */
void st_tui_model_init(st_tui_model *m);

/* Appends a second (the oldest is dropped when the ring is full). */
void st_tui_model_add_point(st_tui_model *m, const st_tui_point *p);

/* Appends an event line (copied, truncated to ST_TUI_EVENT_LEN - 1 bytes, control characters
 * replaced by spaces). */
void st_tui_model_add_event(st_tui_model *m, const char *text);

/* The i-th point, oldest first (i < n_points). */
const st_tui_point *st_tui_model_point(const st_tui_model *m, size_t i);

/* The names' parts of the i-th point (ST_TUI_NAMES of them, by slot), oldest first; the newest
 * point's are written after st_tui_model_add_point (which zeroes them). i < n_points. */
const st_tui_name_point *st_tui_model_name_points(const st_tui_model *m, size_t i);
st_tui_name_point *st_tui_model_last_name_points(st_tui_model *m);

/* The slot of request name `name` (copied, truncated to ST_TUI_NAME_LEN - 1 bytes), added
 * when new. Returns it, or -1 when ST_TUI_NAMES names are kept already. */
int st_tui_model_name(st_tui_model *m, const char *name);

/* The distribution of h in at most ST_TUI_BINS bins into out (*n of them): log-spaced from its
 * minimum to its maximum, each of the histogram's buckets counted in the bin of its low end.
 * None for an empty histogram. */
struct st_hist;
void st_tui_bins(st_tui_bin *out, size_t *n, const struct st_hist *h);

/* An empty screen of w x h cells (w, h >= 1). Returns 0 or ST_ENOMEM (ST_EINVAL for sizes below
 * one cell). */
int st_tui_screen_init(st_tui_screen *s, int w, int h);
void st_tui_screen_fini(st_tui_screen *s);

/* Draws m on s (every cell is written). */
void st_tui_render(const st_tui_model *m, st_tui_screen *s);

/* Row y of s as UTF-8 into out (trailing spaces dropped). Returns the bytes written (always
 * terminated; truncated to len - 1). */
size_t st_tui_screen_line(const st_tui_screen *s, int y, char *out, size_t len);

#endif
