#include "tui.h"
#include "clock.h"
#include "error.h"
#include "hist.h"
#include "tui_view.h"

/* cchar_t and the wide-character calls. */
#define NCURSES_WIDECHAR 1
#include <curses.h>
#include <term.h>
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FEED_EVERY_NS   (500 * ST_NS_PER_MS)
#define REDRAW_EVERY_MS 100
#define CMDS_MAX        32
#define REPLAY_MAX      (64 * 1024)

typedef enum cmd_kind { CMD_UP, CMD_DOWN, CMD_SET, CMD_PAUSE, CMD_STOP, CMD_QUIT } cmd_kind;

typedef struct cmd {
    cmd_kind kind;
    double rps;
} cmd;

struct st_tui {
    st_tui_cfg cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Guarded by mu: the model the owner thread writes and the UI thread copies out. */
    st_tui_model shared;
    cmd cmds[CMDS_MAX];
    size_t n_cmds;
    bool ready, init_failed, closing, leaving, quit_asked;
    char init_err[256];
    /* The owner thread's. */
    pthread_t thread;
    bool started, closed;
    uint64_t next_feed_ns;
    st_coord_state last_state;
    bool paused;
    double resume_rps;
    /* Each agent's requests done when the seconds handed out were last counted, and its rate
     * over the seconds handed out since (records come once a second: a rate over wall-clock
     * snapshots would swing between 0 and twice the truth). */
    uint64_t *prev_done;
    double *agent_rps;
    size_t n_prev;
    size_t prev_seconds;
    /* stderr while the UI is up. */
    int pipe_rd, saved_err;
    char *replay; /* warnings and errors, written to the real stderr at close */
    size_t n_replay;
    char line[ST_TUI_EVENT_LEN];
    size_t n_line;
    /* The UI thread's. */
    SCREEN *scr;
    bool color, utf8;
};

/* One of t's flags guarded by mu. */
static bool flag_of(st_tui *t, const bool *flag)
{
    pthread_mutex_lock(&t->mu);
    bool v = *flag;
    pthread_mutex_unlock(&t->mu);
    return v;
}

/* A line of the event log, after the wall-clock time it came at (local, HH:MM:SS). Lock held. */
static void log_event(st_tui *t, const char *text)
{
    char line[ST_TUI_EVENT_LEN];
    time_t now = time(NULL);
    struct tm tm;
    size_t n = localtime_r(&now, &tm) ? strftime(line, sizeof(line), "%H:%M:%S ", &tm) : 0;
    snprintf(line + n, sizeof(line) - n, "%s", text);
    st_tui_model_add_event(&t->shared, line);
}

/* ---- stderr into the event log ---- */

static void replay_add(st_tui *t, const char *s)
{
    size_t n = strlen(s);
    if (t->n_replay + n + 2 > REPLAY_MAX) {
        return;
    }
    char *grown = realloc(t->replay, t->n_replay + n + 2);
    if (!grown) {
        return;
    }
    t->replay = grown;
    memcpy(t->replay + t->n_replay, s, n);
    t->n_replay += n;
    t->replay[t->n_replay++] = '\n';
    t->replay[t->n_replay] = 0;
}

/* A whole line from stderr: "stampede info: " prefixes are dropped; the launcher's progress is
 * kept apart for the launch panel; warnings and errors also go to the replay. Lock held. */
static void stderr_line(st_tui *t, char *s)
{
    if (!s[0]) {
        return;
    }
    if (!strstr(s, " info: ") && !strstr(s, " debug: ")) {
        replay_add(t, s);
    }
    const char *shown = s;
    const char *info = strstr(s, " info: ");
    if (info && strncmp(s, "stampede ", 9) == 0) {
        shown = info + 7;
    }
    if (strncmp(shown, "ecs: ", 5) == 0) {
        snprintf(t->shared.launch, sizeof(t->shared.launch), "%s", shown);
    }
    log_event(t, shown);
}

/* Reads what stderr's pipe holds. fwd: the UI is closed, write it to the real stderr. */
static void drain_stderr(st_tui *t, bool fwd)
{
    char buf[4096];
    for (;;) {
        ssize_t n = read(t->pipe_rd, buf, sizeof(buf));
        if (n <= 0) {
            return;
        }
        if (fwd) {
            ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
            (void)w;
            continue;
        }
        pthread_mutex_lock(&t->mu);
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n' || t->n_line + 1 >= sizeof(t->line)) {
                t->line[t->n_line] = 0;
                stderr_line(t, t->line);
                t->n_line = 0;
                if (buf[i] == '\n') {
                    continue;
                }
            }
            t->line[t->n_line++] = buf[i];
        }
        pthread_mutex_unlock(&t->mu);
    }
}

/* ---- the UI thread ---- */

static short color_of(int style)
{
    switch (style) {
    case ST_TUI_TITLE:
        return COLOR_CYAN;
    case ST_TUI_TARGET:
        return COLOR_BLUE;
    case ST_TUI_ACHIEVED:
        return COLOR_GREEN;
    case ST_TUI_P50:
        return COLOR_GREEN;
    case ST_TUI_P90:
        return COLOR_YELLOW;
    case ST_TUI_P99:
        return COLOR_MAGENTA;
    case ST_TUI_ERROR:
        return COLOR_RED;
    case ST_TUI_WARN:
        return COLOR_YELLOW;
    case ST_TUI_GAUGE:
        return COLOR_CYAN;
    case ST_TUI_ERR_HTTP:
        return COLOR_RED;
    case ST_TUI_ERR_CONNECT:
        return COLOR_MAGENTA;
    case ST_TUI_ERR_TIMEOUT:
        return COLOR_YELLOW;
    case ST_TUI_ERR_OTHER:
        return COLOR_BLUE;
    default:
        return -1;
    }
}

static attr_t attr_of(const st_tui *t, int style)
{
    if (t->color) {
        attr_t a = style == ST_TUI_TITLE || style == ST_TUI_ERROR ? A_BOLD : 0;
        return a | (style == ST_TUI_DIM ? A_DIM : 0);
    }
    /* NO_COLOR: emphasis only. */
    switch (style) {
    case ST_TUI_TITLE:
    case ST_TUI_ERROR:
    case ST_TUI_WARN:
        return A_BOLD;
    case ST_TUI_DIM:
        return A_DIM;
    /* The errors chart's classes told apart without colour. */
    case ST_TUI_ERR_HTTP:
        return A_BOLD;
    case ST_TUI_ERR_CONNECT:
        return A_REVERSE;
    case ST_TUI_ERR_TIMEOUT:
        return A_UNDERLINE;
    default:
        return 0;
    }
}

/* Outside UTF-8 the cells fall back to ASCII. */
static wchar_t ascii_of(wchar_t c)
{
    if (c < 0x80) {
        return c;
    }
    if (c >= 0x2800 && c <= 0x28ff) {
        return c == 0x2800 ? L' ' : L'*';
    }
    switch (c) {
    case 0x2500:
        return L'-';
    case 0x2502:
        return L'|';
    case 0x2591:
        return L'.';
    default:
        return L'#';
    }
}

static void paint(st_tui *t, const st_tui_screen *s)
{
    for (int y = 0; y < s->h; y++) {
        for (int x = 0; x < s->w; x++) {
            const st_tui_cell *c = &s->cells[(size_t)y * (size_t)s->w + (size_t)x];
            wchar_t w[2] = {t->utf8 ? c->ch : ascii_of(c->ch), 0};
            cchar_t cc;
            short pair = t->color && color_of(c->style) >= 0 ? (short)c->style : 0;
            setcchar(&cc, w, attr_of(t, c->style), pair, NULL);
            mvadd_wch(y, x, &cc);
        }
    }
    refresh();
}

static void push_cmd(st_tui *t, cmd_kind k, double rps)
{
    pthread_mutex_lock(&t->mu);
    if (t->n_cmds < CMDS_MAX) {
        t->cmds[t->n_cmds++] = (cmd){k, rps};
    }
    if (k == CMD_QUIT) {
        t->quit_asked = true;
    }
    pthread_mutex_unlock(&t->mu);
}

/* The UI's own part of the model: what the user looks at and types. */
typedef struct ui_state {
    int view;
    int name_sel;
    bool uncorrected, help, prompting;
    char prompt[ST_TUI_PROMPT];
} ui_state;

static void key_prompt(st_tui *t, ui_state *u, wint_t k)
{
    size_t n = strlen(u->prompt);
    if (k == 27) {
        u->prompting = false;
    } else if (k == '\n' || k == '\r' || k == KEY_ENTER) {
        u->prompting = false;
        char *end;
        double v = strtod(u->prompt, &end);
        if (u->prompt[0] && *end == 0) {
            push_cmd(t, CMD_SET, v);
        } else {
            pthread_mutex_lock(&t->mu);
            snprintf(t->shared.status, sizeof(t->shared.status),
                     "rate \"%s\": not a number of requests per second", u->prompt);
            pthread_mutex_unlock(&t->mu);
        }
    } else if (k == KEY_BACKSPACE || k == 127 || k == 8) {
        if (n) {
            u->prompt[n - 1] = 0;
        }
    } else if (((k >= '0' && k <= '9') || k == '.') && n + 1 < sizeof(u->prompt)) {
        u->prompt[n] = (char)k;
        u->prompt[n + 1] = 0;
    }
}

static void key(st_tui *t, ui_state *u, wint_t k, bool fn)
{
    if (u->prompting && !(fn && k == KEY_RESIZE)) {
        key_prompt(t, u, k);
        return;
    }
    if (fn) {
        if (u->view == ST_TUI_VIEW_NAMES && (k == KEY_UP || k == KEY_DOWN)) {
            u->name_sel += k == KEY_UP ? -1 : 1;
            u->name_sel = u->name_sel < 0 ? 0 : u->name_sel;
        }
        return;
    }
    /* The steering keys (none in a read-only UI). */
    static const struct {
        wint_t key;
        cmd_kind kind;
    } steer[] = {{'+', CMD_UP}, {'=', CMD_UP}, {'-', CMD_DOWN}, {'p', CMD_PAUSE}, {'s', CMD_STOP}};
    for (size_t i = 0; i < sizeof(steer) / sizeof(steer[0]); i++) {
        if (k == steer[i].key && !t->cfg.read_only) {
            push_cmd(t, steer[i].kind, 0);
        }
    }
    switch (k) {
    case '\t':
        u->view = (u->view + 1) % ST_TUI_VIEWS;
        break;
    case 'l':
        u->uncorrected = !u->uncorrected;
        break;
    case '?':
        u->help = !u->help;
        break;
    case 'q':
        push_cmd(t, CMD_QUIT, 0);
        break;
    case 'r':
        if (!t->cfg.read_only) {
            u->prompting = true;
            u->prompt[0] = 0;
        }
        break;
    default:
        break;
    }
}

static void *ui_main(void *arg)
{
    st_tui *t = arg;
    st_tui_model *m = malloc(sizeof(*m));
    st_tui_screen s = {0};
    ui_state u = {0};
    uint64_t last_draw = 0;
    bool dirty = true;
    for (;;) {
        if (flag_of(t, &t->closing)) {
            break;
        }
        drain_stderr(t, false);
        uint64_t now = st_clock_mono_ns();
        if (m && (dirty || now >= last_draw + REDRAW_EVERY_MS * ST_NS_PER_MS)) {
            if (s.w != COLS || s.h != LINES) {
                st_tui_screen_fini(&s);
                st_tui_screen_init(&s, COLS > 0 ? COLS : 1, LINES > 0 ? LINES : 1);
            }
            pthread_mutex_lock(&t->mu);
            memcpy(m, &t->shared, sizeof(*m));
            pthread_mutex_unlock(&t->mu);
            m->view = u.view;
            /* The selection stays on the names there are (Down past the last stays there). */
            if (u.name_sel >= (int)m->n_names) {
                u.name_sel = m->n_names ? (int)m->n_names - 1 : 0;
            }
            m->name_sel = u.name_sel;
            m->uncorrected = u.uncorrected;
            m->help = u.help;
            m->prompting = u.prompting;
            memcpy(m->prompt, u.prompt, sizeof(m->prompt));
            if (s.cells) {
                st_tui_render(m, &s);
                paint(t, &s);
            }
            last_draw = now;
            dirty = false;
        }
        /* Keys wait until the next redraw is due: at most about 10 redraws a second. */
        uint64_t due = last_draw + REDRAW_EVERY_MS * ST_NS_PER_MS;
        int wait_ms = due > now ? (int)((due - now) / ST_NS_PER_MS) : 0;
        timeout(wait_ms > 0 ? wait_ms : 1);
        wint_t k;
        int r = get_wch(&k);
        if (r != ERR) {
            key(t, &u, k, r == KEY_CODE_YES);
            dirty = true;
        }
    }
    endwin();
    delscreen(t->scr);
    t->scr = NULL;
    st_tui_screen_fini(&s);
    free(m);
    /* The terminal is the program's again: stderr too. What the local agents still write to the
     * pipe is passed on until the UI is freed. */
    pthread_mutex_lock(&t->mu);
    if (t->saved_err >= 0) {
        dup2(t->saved_err, STDERR_FILENO);
        close(t->saved_err);
        t->saved_err = -1;
    }
    if (t->n_line) {
        t->line[t->n_line] = 0;
        stderr_line(t, t->line);
        t->n_line = 0;
    }
    t->ready = false;
    pthread_cond_broadcast(&t->cv);
    if (t->replay) {
        ssize_t w = write(STDERR_FILENO, t->replay, t->n_replay);
        (void)w;
    }
    pthread_mutex_unlock(&t->mu);
    for (;;) {
        if (flag_of(t, &t->leaving)) {
            break;
        }
        struct pollfd p = {t->pipe_rd, POLLIN, 0};
        if (poll(&p, 1, 100) > 0) {
            drain_stderr(t, true);
        }
    }
    drain_stderr(t, true);
    return NULL;
}

/* Sets up the terminal on the UI thread (curses is not thread-safe: its every call is made
 * there), then runs the UI. */
static void *ui_thread(void *arg)
{
    st_tui *t = arg;
    const char *term = getenv("TERM");
    FILE *out = fdopen(dup(STDOUT_FILENO), "w");
    /* The terminal's description is looked up first: newterm on an unknown one says so on
     * stderr itself and leaves memory behind. */
    int known = 0;
    if (out && setupterm(term && term[0] ? term : NULL, fileno(out), &known) == OK) {
        del_curterm(cur_term);
        known = 1;
    } else {
        known = 0;
    }
    t->scr = out && known ? newterm(term && term[0] ? term : NULL, out, stdin) : NULL;
    pthread_mutex_lock(&t->mu);
    if (!t->scr) {
        snprintf(t->init_err, sizeof(t->init_err),
                 "the terminal \"%s\" is unknown to curses (TERM unset or unknown)",
                 term ? term : "");
        t->init_failed = true;
        pthread_cond_broadcast(&t->cv);
        pthread_mutex_unlock(&t->mu);
        if (out) {
            fclose(out);
        }
        return NULL;
    }
    pthread_mutex_unlock(&t->mu);
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    curs_set(0);
    const char *nc = getenv("NO_COLOR");
    t->color = !(nc && nc[0]) && has_colors();
    if (t->color) {
        start_color();
        use_default_colors();
        for (int st = 1; st < ST_TUI_N_STYLES; st++) {
            if (color_of(st) >= 0) {
                init_pair((short)st, color_of(st), -1);
            }
        }
    }
    pthread_mutex_lock(&t->mu);
    t->ready = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    ui_main(t);
    fclose(out);
    return NULL;
}

/* ---- the owner thread's side ---- */

int st_tui_start(st_tui **out, const st_tui_cfg *cfg, char *err, size_t err_len)
{
    if (!isatty(STDOUT_FILENO)) {
        snprintf(err, err_len, "stdout is not a terminal");
        return ST_EINVAL;
    }
    st_tui *t = calloc(1, sizeof(*t));
    if (!t) {
        return ST_ENOMEM;
    }
    t->cfg = *cfg;
    t->pipe_rd = t->saved_err = -1;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    st_tui_model_init(&t->shared);
    snprintf(t->shared.run_id, sizeof(t->shared.run_id), "%s", cfg->run_id ? cfg->run_id : "");
    snprintf(t->shared.state, sizeof(t->shared.state), "waiting for agents");
    t->shared.expected_agents = cfg->expected_agents;
    t->shared.read_only = cfg->read_only;
    t->last_state = ST_COORD_WAITING;
    setlocale(LC_ALL, "");
    t->utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;

    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        snprintf(err, err_len, "cannot make a pipe for stderr: %s", strerror(errno));
        st_tui_free(t);
        return ST_EIO;
    }
    t->pipe_rd = p[0];
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    t->saved_err = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    fflush(stderr);
    /* fd 2 is the pipe (inherited by the local agents); a full pipe drops lines rather than stop
     * the coordinator. */
    dup2(p[1], STDERR_FILENO);
    close(p[1]);
    fcntl(STDERR_FILENO, F_SETFL, O_NONBLOCK);

    if (pthread_create(&t->thread, NULL, ui_thread, t) != 0) {
        snprintf(err, err_len, "cannot start the UI's thread");
        st_tui_free(t);
        return ST_EIO;
    }
    t->started = true;
    pthread_mutex_lock(&t->mu);
    while (!t->ready && !t->init_failed) {
        pthread_cond_wait(&t->cv, &t->mu);
    }
    bool failed = t->init_failed;
    pthread_mutex_unlock(&t->mu);
    if (failed) {
        snprintf(err, err_len, "%s", t->init_err);
        st_tui_free(t);
        return ST_EINVAL;
    }
    *out = t;
    return 0;
}

/* The figures of counts c and latencies lat (corrected) and raw (uncorrected) into p. */
static void figures_of(st_tui_point *p, const st_counts *c, const st_report_latency *lat,
                       const st_report_latency *raw)
{
    p->achieved_rps = (double)st_counts_done(c);
    p->have_latency = lat->count > 0;
    p->p50_ms = lat->p50_us / 1000.0;
    p->p90_ms = lat->p90_us / 1000.0;
    p->p99_ms = lat->p99_us / 1000.0;
    p->up50_ms = raw->p50_us / 1000.0;
    p->up90_ms = raw->p90_us / 1000.0;
    p->up99_ms = raw->p99_us / 1000.0;
    p->ok = c->ok;
    p->failed = st_counts_failed(c);
    p->http_4xx = c->http_4xx;
    p->http_5xx = c->http_5xx;
    p->connect = c->err_connect;
    p->timeout = c->err_timeout;
    p->other = c->err_other;
    p->tls = c->err_tls;
    p->cert = c->err_cert;
    p->late = c->late;
    p->dropped = c->dropped;
}

static void point_of(st_tui_point *p, const st_report_second *row)
{
    memset(p, 0, sizeof(*p));
    p->second = row->second;
    p->target_rps = row->target_rps;
    figures_of(p, &row->counts, &row->latency, &row->latency_uncorrected);
    p->agents = row->agents;
}

/* A name's part of a second as its chart needs it. */
static void name_point_of(st_tui_name_point *o, const st_name_stats *n)
{
    uint64_t done = st_counts_done(&n->c);
    o->have_latency = st_hist_count(n->lat) > 0;
    o->done = done > UINT32_MAX ? UINT32_MAX : (uint32_t)done;
    o->p50_ms = (float)(st_hist_percentile(n->lat, 50) / 1000.0);
    o->p99_ms = (float)(st_hist_percentile(n->lat, 99) / 1000.0);
    o->up50_ms = (float)(st_hist_percentile(n->lat_raw, 50) / 1000.0);
    o->up99_ms = (float)(st_hist_percentile(n->lat_raw, 99) / 1000.0);
}

static int tui_second(void *state, const st_coord_second *sec)
{
    st_tui *t = state;
    st_tui_point p;
    point_of(&p, sec->row);
    /* The names' parts are read before the lock is taken: the UI thread waits for none of it. */
    size_t n_names = sec->names && sec->stats ? sec->stats->n_names : 0;
    n_names = sec->names && n_names > sec->names->n ? sec->names->n : n_names;
    n_names = n_names > ST_TUI_NAMES ? ST_TUI_NAMES : n_names;
    st_tui_name_point np[ST_TUI_NAMES];
    for (size_t i = 0; i < n_names; i++) {
        name_point_of(&np[i], &sec->stats->names[i]);
    }
    pthread_mutex_lock(&t->mu);
    st_tui_model_add_point(&t->shared, &p);
    st_tui_name_point *slots = st_tui_model_last_name_points(&t->shared);
    for (size_t i = 0; i < t->shared.n_names; i++) {
        t->shared.names[i].last_rps = 0;
    }
    for (size_t i = 0; i < n_names; i++) {
        int slot = st_tui_model_name(&t->shared, sec->names->name[i]);
        if (slot >= 0) {
            slots[slot] = np[i];
            t->shared.names[slot].last_rps = np[i].done;
        }
    }
    t->shared.achieved_rps = p.achieved_rps;
    t->shared.elapsed_s = p.second + 1;
    if (p.late || p.dropped) {
        char e[128];
        snprintf(e, sizeof(e), "second %u: %llu late sends, %llu dropped requests", p.second + 1,
                 (unsigned long long)p.late, (unsigned long long)p.dropped);
        log_event(t, e);
    }
    pthread_mutex_unlock(&t->mu);
    return 0;
}

static int tui_summary(void *state, const st_report *report)
{
    (void)state;
    (void)report;
    return 0;
}

static int tui_out_close(void *state)
{
    (void)state;
    return 0;
}

static const st_output_ops tui_ops = {"tui", tui_second, tui_summary, tui_out_close};

int st_tui_output(st_output *out, st_tui *t)
{
    out->ops = &tui_ops;
    out->state = t;
    return 0;
}

static const char *state_name(st_coord_state s)
{
    switch (s) {
    case ST_COORD_WAITING:
        return "waiting for agents";
    case ST_COORD_PREPARING:
        return "preparing";
    case ST_COORD_RUNNING:
        return "running";
    case ST_COORD_DRAINING:
        return "draining";
    case ST_COORD_DONE:
        return "done";
    default:
        return "failed";
    }
}

/* The agents' rows of r into the model, with their rate since the last feed. Lock held. */
static void agents_of(st_tui *t, const st_report *r, const uint32_t *heard, size_t n_heard)
{
    st_tui_model *m = &t->shared;
    if (r->n_agents > t->n_prev) {
        uint64_t *grown = realloc(t->prev_done, r->n_agents * sizeof(*grown));
        if (grown) {
            t->prev_done = grown;
        }
        double *grown_rps = grown ? realloc(t->agent_rps, r->n_agents * sizeof(*grown_rps)) : NULL;
        if (grown_rps) {
            t->agent_rps = grown_rps;
            for (size_t i = t->n_prev; i < r->n_agents; i++) {
                t->prev_done[i] = 0;
                t->agent_rps[i] = 0;
            }
            t->n_prev = r->n_agents;
        }
    }
    size_t ds = r->n_seconds > t->prev_seconds ? r->n_seconds - t->prev_seconds : 0;
    m->n_agents = 0;
    for (size_t i = 0; i < r->n_agents; i++) {
        const st_report_agent *a = &r->agents[i];
        uint64_t done = st_counts_done(&a->counts);
        double rps = 0;
        if (r->status != ST_REPORT_RUNNING && r->duration_s > 0) {
            /* The run is over: its average. */
            rps = (double)done / r->duration_s;
        } else if (i < t->n_prev) {
            if (ds) {
                t->agent_rps[i] =
                    done >= t->prev_done[i] ? (double)(done - t->prev_done[i]) / (double)ds : 0;
                t->prev_done[i] = done;
            }
            rps = t->agent_rps[i];
        }
        if (m->n_agents >= ST_TUI_AGENTS) {
            continue;
        }
        st_tui_agent_row *o = &m->agents[m->n_agents++];
        snprintf(o->name, sizeof(o->name), "%s", a->name);
        if (a->task[0]) {
            const char *id = strrchr(a->task, '/');
            snprintf(o->where, sizeof(o->where), "task %s%s%s", id ? id + 1 : a->task,
                     a->availability_zone[0] ? " " : "", a->availability_zone);
        } else {
            snprintf(o->where, sizeof(o->where), "%s%s%s", a->host,
                     a->availability_zone[0] ? " " : "", a->availability_zone);
        }
        snprintf(o->state, sizeof(o->state), "%s", st_report_agent_state_name(a->state));
        o->lost = a->lost;
        o->share_rps = a->share_rps;
        o->achieved_rps = rps;
        o->failed = st_counts_failed(&a->counts);
        o->offset_ms = a->clock_offset_ms;
        o->rtt_ms = a->clock_rtt_ms;
        o->heard_ms = heard && i < n_heard ? heard[i] : UINT32_MAX;
        o->have_p99 = a->have_p99;
        o->p99_ms = a->p99_ms;
        o->up99_ms = a->p99_uncorrected_ms;
    }
    m->more_agents = r->n_agents - m->n_agents;
    if (ds) {
        t->prev_seconds = r->n_seconds;
    }
}

/* The report's run-so-far figures into the model. Lock held. */
static void report_into(st_tui *t, const st_report *r, const uint32_t *heard, size_t n_heard)
{
    st_tui_model *m = &t->shared;
    const st_counts *c = &r->total.c;
    m->closed_loop = r->plan.closed_loop;
    m->planned_s = r->plan.duration_s;
    m->expected_agents = r->plan.expected_agents;
    m->agents_lost = r->agents_lost;
    m->agents_alive = (int)r->n_agents - r->agents_lost;
    m->have_skew = r->have_start_skew;
    m->start_skew_ms = r->start_skew_ms;
    memset(&m->run, 0, sizeof(m->run));
    figures_of(&m->run, c, &r->latency, &r->latency_uncorrected);
    st_tui_bins(m->bins, &m->n_bins, r->total.lat);
    st_tui_bins(m->ubins, &m->n_ubins, r->total.lat_raw);
    agents_of(t, r, heard, n_heard);
    for (size_t i = 0; i < r->n_names && i < r->total.n_names; i++) {
        int slot = st_tui_model_name(m, r->names[i]);
        if (slot < 0) {
            continue;
        }
        st_stats v = st_report_name_view(r, i);
        st_report_latency lat, raw;
        st_report_latency_of(&lat, v.lat);
        st_report_latency_of(&raw, v.lat_raw);
        st_tui_point *p = &m->names[slot].run;
        memset(p, 0, sizeof(*p));
        figures_of(p, &v.c, &lat, &raw);
    }
}

void st_tui_feed(st_tui *t, st_coord *core)
{
    if (!t) {
        return;
    }
    st_coord_state s = st_coord_get_state(core);
    uint64_t now = st_clock_mono_ns();
    if (s == t->last_state && now < t->next_feed_ns) {
        return;
    }
    t->next_feed_ns = now + FEED_EVERY_NS;
    t->last_state = s;
    st_report r;
    if (st_coord_report(core, &r) != 0) {
        return;
    }
    uint32_t heard[ST_TUI_AGENTS];
    size_t n_heard = st_coord_heard_ago_ms(core, heard, ST_TUI_AGENTS);
    double planned = st_coord_planned_rps(core);
    pthread_mutex_lock(&t->mu);
    report_into(t, &r, heard, n_heard < ST_TUI_AGENTS ? n_heard : ST_TUI_AGENTS);
    snprintf(t->shared.state, sizeof(t->shared.state), "%s", state_name(s));
    t->shared.failed = s == ST_COORD_FAILED;
    t->shared.paused = t->paused;
    if (planned > 0 || s == ST_COORD_RUNNING) {
        t->shared.target_rps = planned;
    } else if (!t->shared.n_points) {
        t->shared.target_rps = r.plan.average_rps;
    }
    if (s == ST_COORD_FAILED) {
        log_event(t, st_coord_failure(core));
    }
    pthread_mutex_unlock(&t->mu);
    st_report_fini(&r);
}

void st_tui_feed_report(st_tui *t, const st_report *r, const char *state)
{
    pthread_mutex_lock(&t->mu);
    report_into(t, r, NULL, 0);
    snprintf(t->shared.state, sizeof(t->shared.state), "%s", state);
    t->shared.failed = r->status == ST_REPORT_FAILED;
    if (!r->n_agents) {
        /* A followed run's seconds say how many agents counted, not who they were. */
        t->shared.agents_alive = r->plan.expected_agents;
    }
    if (t->shared.n_points) {
        t->shared.target_rps = st_tui_model_point(&t->shared, t->shared.n_points - 1)->target_rps;
    }
    pthread_mutex_unlock(&t->mu);
}

/* A line for the event log; status: also the footer's answer to a key. */
static void event_v(st_tui *t, bool status, const char *fmt, va_list ap)
{
    char buf[ST_TUI_EVENT_LEN];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    pthread_mutex_lock(&t->mu);
    if (status) {
        snprintf(t->shared.status, sizeof(t->shared.status), "%s", buf);
    }
    log_event(t, buf);
    pthread_mutex_unlock(&t->mu);
}

void st_tui_event(st_tui *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    event_v(t, false, fmt, ap);
    va_end(ap);
}

static void say(st_tui *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The answer to a key, in the footer and the event log. */
static void say(st_tui *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    event_v(t, true, fmt, ap);
    va_end(ap);
}

/* Changes the rate from `from` to `to` for key `what`; true when it was made. */
static bool change(st_tui *t, st_coord *core, const char *what, double from, double to)
{
    int rc = st_coord_change_rate_by(core, to, "key");
    if (rc == 0) {
        say(t, "%s: rate %.1f -> %.1f rps", what, from, to);
        t->next_feed_ns = 0;
        return true;
    }
    say(t, "%s: rate %.1f rps refused: %s", what, to,
        rc == ST_ESTATE   ? "the run is not running, is stopping, or ends within the re-plan lead"
        : rc == ST_EINVAL ? "outside 0 .. the largest rate a profile takes"
                          : st_strerror(rc));
    return false;
}

int st_tui_steer(st_tui *t, st_coord *core)
{
    if (!t) {
        return 0;
    }
    cmd cmds[CMDS_MAX];
    pthread_mutex_lock(&t->mu);
    size_t n = t->n_cmds;
    memcpy(cmds, t->cmds, n * sizeof(*cmds));
    t->n_cmds = 0;
    pthread_mutex_unlock(&t->mu);
    int act = 0;
    for (size_t i = 0; i < n; i++) {
        double now_rps = st_coord_planned_rps(core);
        switch (cmds[i].kind) {
        case CMD_UP:
        case CMD_DOWN:
            if (t->paused || now_rps <= 0) {
                say(t, "%s: the rate is 0 (p resumes, r sets a rate)",
                    cmds[i].kind == CMD_UP ? "+" : "-");
                break;
            }
            change(t, core, cmds[i].kind == CMD_UP ? "+" : "-", now_rps,
                   now_rps * (cmds[i].kind == CMD_UP ? 1.1 : 0.9));
            break;
        case CMD_SET:
            if (change(t, core, "r", now_rps, cmds[i].rps)) {
                t->paused = false;
            }
            break;
        case CMD_PAUSE:
            if (!t->paused) {
                double before = now_rps;
                if (change(t, core, "p (pause)", now_rps, 0)) {
                    t->paused = true;
                    t->resume_rps = before;
                }
            } else if (change(t, core, "p (resume)", 0, t->resume_rps)) {
                t->paused = false;
            }
            break;
        case CMD_STOP:
            say(t, "s: stopping: agents stop sending and report their last seconds");
            act |= ST_TUI_STOP;
            break;
        case CMD_QUIT:
            act |= ST_TUI_STOP | ST_TUI_QUIT;
            break;
        }
    }
    pthread_mutex_lock(&t->mu);
    t->shared.paused = t->paused;
    pthread_mutex_unlock(&t->mu);
    return act;
}

bool st_tui_quit_asked(st_tui *t)
{
    return flag_of(t, &t->quit_asked);
}

void st_tui_close(st_tui *t)
{
    if (!t || t->closed) {
        return;
    }
    t->closed = true;
    if (!t->started) {
        return;
    }
    pthread_mutex_lock(&t->mu);
    t->closing = true;
    /* Returns once the terminal is restored and stderr is the real one again. */
    while (t->ready) {
        pthread_cond_wait(&t->cv, &t->mu);
    }
    pthread_mutex_unlock(&t->mu);
}

void st_tui_free(st_tui *t)
{
    if (!t) {
        return;
    }
    st_tui_close(t);
    if (t->started) {
        pthread_mutex_lock(&t->mu);
        t->leaving = true;
        pthread_mutex_unlock(&t->mu);
        pthread_join(t->thread, NULL);
    }
    if (t->saved_err >= 0) {
        /* The thread never ran: stderr is put back here. */
        dup2(t->saved_err, STDERR_FILENO);
        close(t->saved_err);
    }
    if (t->pipe_rd >= 0) {
        close(t->pipe_rd);
    }
    free(t->replay);
    free(t->prev_done);
    free(t->agent_rps);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
