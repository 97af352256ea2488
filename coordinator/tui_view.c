#include "tui_view.h"
#include "error.h"
#include "hist.h"

#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the model ---- */

void st_tui_model_init(st_tui_model *m)
{
    memset(m, 0, sizeof(*m));
}

void st_tui_model_add_point(st_tui_model *m, const st_tui_point *p)
{
    size_t slot;
    if (m->n_points < ST_TUI_HISTORY) {
        slot = (m->first + m->n_points++) % ST_TUI_HISTORY;
    } else {
        slot = m->first;
        m->first = (m->first + 1) % ST_TUI_HISTORY;
    }
    m->points[slot] = *p;
    memset(m->name_points[slot], 0, sizeof(m->name_points[slot]));
}

const st_tui_point *st_tui_model_point(const st_tui_model *m, size_t i)
{
    return &m->points[(m->first + i) % ST_TUI_HISTORY];
}

const st_tui_name_point *st_tui_model_name_points(const st_tui_model *m, size_t i)
{
    return m->name_points[(m->first + i) % ST_TUI_HISTORY];
}

st_tui_name_point *st_tui_model_last_name_points(st_tui_model *m)
{
    size_t i = m->n_points ? m->n_points - 1 : 0;
    return m->name_points[(m->first + i) % ST_TUI_HISTORY];
}

int st_tui_model_name(st_tui_model *m, const char *name)
{
    for (size_t i = 0; i < m->n_names; i++) {
        if (strncmp(m->names[i].name, name, ST_TUI_NAME_LEN - 1) == 0) {
            return (int)i;
        }
    }
    if (m->n_names == ST_TUI_NAMES) {
        return -1;
    }
    st_tui_name_row *r = &m->names[m->n_names];
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", name);
    return (int)m->n_names++;
}

void st_tui_model_add_event(st_tui_model *m, const char *text)
{
    size_t slot;
    if (m->n_events < ST_TUI_EVENTS) {
        slot = (m->first_event + m->n_events++) % ST_TUI_EVENTS;
    } else {
        slot = m->first_event;
        m->first_event = (m->first_event + 1) % ST_TUI_EVENTS;
    }
    char *e = m->events[slot];
    snprintf(e, ST_TUI_EVENT_LEN, "%s", text);
    for (char *c = e; *c; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            *c = ' ';
        }
    }
}

static const char *event_at(const st_tui_model *m, size_t i)
{
    return m->events[(m->first_event + i) % ST_TUI_EVENTS];
}

typedef struct bins_ctx {
    st_tui_bin *out;
    double lo_us, ratio; /* bin i starts at lo_us * ratio^i */
    size_t n;
} bins_ctx;

static int bin_bucket(void *arg, uint32_t index, uint64_t count)
{
    bins_ctx *b = arg;
    double low = (double)st_hist_bucket_low(index);
    size_t i = 0;
    if (b->ratio > 1 && low > b->lo_us) {
        i = (size_t)(log(low / b->lo_us) / log(b->ratio));
    }
    b->out[i < b->n ? i : b->n - 1].count += count;
    return 0;
}

void st_tui_bins(st_tui_bin *out, size_t *n, const struct st_hist *h)
{
    *n = 0;
    if (st_hist_count(h) == 0) {
        return;
    }
    double lo = (double)st_hist_min(h), hi = (double)st_hist_max(h);
    lo = lo < 1 ? 1 : lo;
    hi = hi < lo ? lo : hi;
    size_t nb = hi > lo * 1.0001 ? ST_TUI_BINS : 1;
    bins_ctx b = {out, lo, nb > 1 ? pow(hi / lo, 1.0 / (double)nb) : 1, nb};
    for (size_t i = 0; i < nb; i++) {
        out[i].lo_ms = lo * pow(b.ratio, (double)i) / 1000.0;
        out[i].hi_ms = i + 1 == nb ? hi / 1000.0 : lo * pow(b.ratio, (double)(i + 1)) / 1000.0;
        out[i].count = 0;
    }
    st_hist_foreach(h, bin_bucket, &b);
    *n = nb;
}

/* ---- the screen ---- */

int st_tui_screen_init(st_tui_screen *s, int w, int h)
{
    memset(s, 0, sizeof(*s));
    if (w < 1 || h < 1) {
        return ST_EINVAL;
    }
    if (!(s->cells = calloc((size_t)w * (size_t)h, sizeof(*s->cells)))) {
        return ST_ENOMEM;
    }
    s->w = w;
    s->h = h;
    return 0;
}

void st_tui_screen_fini(st_tui_screen *s)
{
    free(s->cells);
    memset(s, 0, sizeof(*s));
}

static void put(st_tui_screen *s, int x, int y, wchar_t ch, int style)
{
    if (x >= 0 && y >= 0 && x < s->w && y < s->h) {
        st_tui_cell *c = &s->cells[(size_t)y * (size_t)s->w + (size_t)x];
        c->ch = ch;
        c->style = (uint8_t)style;
    }
}

static st_tui_cell *cell_at(st_tui_screen *s, int x, int y)
{
    return &s->cells[(size_t)y * (size_t)s->w + (size_t)x];
}

/* Text at (x, y), at most maxw columns; bytes outside printable ASCII show as '?' (names come
 * from the network). Returns the columns written. */
static int text(st_tui_screen *s, int x, int y, int maxw, int style, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static int text(st_tui_screen *s, int x, int y, int maxw, int style, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    int n = 0;
    for (const char *c = buf; *c && n < maxw; c++, n++) {
        unsigned char b = (unsigned char)*c;
        put(s, x + n, y, b >= 0x20 && b < 0x7f ? (wchar_t)b : L'?', style);
    }
    return n;
}

/* A panel's title: " title " on a rule as wide as w. */
static void title(st_tui_screen *s, int x, int y, int w, const char *t)
{
    for (int i = 0; i < w; i++) {
        put(s, x + i, y, L'\x2500', ST_TUI_DIM);
    }
    text(s, x + 1, y, w - 2, ST_TUI_TITLE, " %s ", t);
}

/* A round number at least v: 1, 2 or 5 times a power of ten. */
static double nice_ceil(double v)
{
    if (!(v > 0)) {
        return 1;
    }
    double p = pow(10, floor(log10(v)));
    for (int i = 0; i < 3; i++) {
        double f = (double[]){1, 2, 5}[i] * p;
        if (f >= v * (1 - 1e-12)) {
            return f;
        }
    }
    return 10 * p;
}

static void fmt_axis(char *out, size_t len, double v)
{
    if (v >= 1e6) {
        snprintf(out, len, "%.0fM", v / 1e6);
    } else if (v >= 1e4) {
        snprintf(out, len, "%.0fk", v / 1e3);
    } else if (v >= 10 || v == 0) {
        snprintf(out, len, "%.0f", v);
    } else {
        snprintf(out, len, "%.2g", v);
    }
}

/* ---- braille charts ---- */

/* A series of a chart: the point's double at offset (name < 0), or the float at offset of the
 * point's part for name slot `name`; latency series exist only in seconds with responses. */
typedef struct series {
    size_t offset;
    bool latency;
    int style;
} series;

static double value_of(const series *sv, const st_tui_model *m, int name, size_t i, bool *have)
{
    if (name >= 0) {
        const st_tui_name_point *np = &st_tui_model_name_points(m, i)[name];
        *have = !sv->latency || np->have_latency;
        return *(const float *)((const char *)np + sv->offset);
    }
    const st_tui_point *p = st_tui_model_point(m, i);
    *have = !sv->latency || p->have_latency;
    return *(const double *)((const char *)p + sv->offset);
}

/* The dot (dx, dy) of a cell (dy from the top), as braille's bit for it. */
static uint8_t braille_bit(int dx, int dy)
{
    static const uint8_t bits[2][4] = {{0x01, 0x02, 0x04, 0x40}, {0x08, 0x10, 0x20, 0x80}};
    return bits[dx][dy];
}

/* Sets the dot at (px, py) of the plot at (x, y) of ch rows; py counts from the bottom. */
static void dot(st_tui_screen *s, int x, int y, int ch, int px, int py, int style)
{
    int cx = x + px / 2, cy = y + ch - 1 - py / 4;
    if (cx < 0 || cy < 0 || cx >= s->w || cy >= s->h) {
        return;
    }
    st_tui_cell *c = cell_at(s, cx, cy);
    uint8_t mask = c->ch >= 0x2800 && c->ch <= 0x28ff ? (uint8_t)(c->ch - 0x2800) : 0;
    mask |= braille_bit(px % 2, 3 - py % 4);
    c->ch = (wchar_t)(0x2800 + mask);
    c->style = (uint8_t)style;
}

/* A chart of the last points of m (of name slot `name`'s parts when >= 0) over the area (x, y,
 * w, h): the axis labels on the left, one dot column per second, the newest on the right, each
 * series joined up dot to dot. */
static void chart(st_tui_screen *s, const st_tui_model *m, int name, int x, int y, int w, int h,
                  const series *sv, int n_series)
{
    const int label_w = 6;
    int pw = w - label_w - 1;
    if (pw < 2 || h < 2) {
        return;
    }
    size_t cols = (size_t)pw * 2;
    size_t n = m->n_points < cols ? m->n_points : cols;
    size_t from = m->n_points - n;
    double top = 0;
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < n_series; k++) {
            bool have = true;
            double v = value_of(&sv[k], m, name, from + i, &have);
            if (have && v > top) {
                top = v;
            }
        }
    }
    top = nice_ceil(top);
    char lab[16];
    fmt_axis(lab, sizeof(lab), top);
    text(s, x, y, label_w, ST_TUI_DIM, "%*s", label_w, lab);
    text(s, x, y + h - 1, label_w, ST_TUI_DIM, "%*s", label_w, "0");
    for (int r = 0; r < h; r++) {
        put(s, x + label_w, y + r, L'\x2502', ST_TUI_DIM);
    }
    int px0 = (label_w + 1) * 2;
    int rows = h * 4;
    for (int k = 0; k < n_series; k++) {
        int prev = -1;
        for (size_t i = 0; i < n; i++) {
            bool have = true;
            double v = value_of(&sv[k], m, name, from + i, &have);
            if (!have) {
                prev = -1;
                continue;
            }
            int py = (int)lround(v / top * (rows - 1));
            py = py < 0 ? 0 : py >= rows ? rows - 1 : py;
            int lo = prev < 0 ? py : prev < py ? prev + 1 : py;
            int hi = prev < 0 ? py : prev > py ? prev - 1 : py;
            for (int d = lo; d <= hi; d++) {
                dot(s, x, y, h, px0 + (int)i, d, sv[k].style);
            }
            dot(s, x, y, h, px0 + (int)i, py, sv[k].style);
            prev = py;
        }
    }
}

/* ---- panels ---- */

static const st_tui_point *last_point(const st_tui_model *m)
{
    return m->n_points ? st_tui_model_point(m, m->n_points - 1) : NULL;
}

static void header(const st_tui_model *m, st_tui_screen *s)
{
    int w = s->w;
    int x = text(s, 0, 0, w, ST_TUI_TITLE, "stampede %s", m->run_id);
    x += text(s, x, 0, w - x, m->failed ? ST_TUI_ERROR : ST_TUI_TITLE, "  %s", m->state);
    if (m->paused) {
        x += text(s, x, 0, w - x, ST_TUI_WARN, "  PAUSED");
    }
    if (m->read_only) {
        text(s, x, 0, w - x, ST_TUI_DIM, "  (following, read-only)");
    }
    /* The gauge: elapsed against the planned duration. */
    char right[48];
    int rn = m->planned_s > 0
                 ? snprintf(right, sizeof(right), " %.1f / %.1f s", m->elapsed_s, m->planned_s)
                 : snprintf(right, sizeof(right), " %.1f s", m->elapsed_s);
    int gw = w - rn - 2;
    if (gw >= 4) {
        double f = m->planned_s > 0 ? m->elapsed_s / m->planned_s : 0;
        f = f < 0 ? 0 : f > 1 ? 1 : f;
        int full = (int)(f * gw);
        put(s, 0, 1, L'[', ST_TUI_DIM);
        for (int i = 0; i < gw; i++) {
            put(s, 1 + i, 1, i < full ? L'\x2588' : L'\x2591',
                i < full ? ST_TUI_GAUGE : ST_TUI_DIM);
        }
        put(s, 1 + gw, 1, L']', ST_TUI_DIM);
        text(s, gw + 2, 1, w - gw - 2, ST_TUI_PLAIN, "%s", right);
    } else {
        text(s, 0, 1, w, ST_TUI_PLAIN, "%s", right);
    }
    /* The figures' line: its parts two spaces apart, one when that does not fit the width. */
    char part[7][64];
    int style[7], n = 0;
    if (m->closed_loop) {
        snprintf(part[n], sizeof(part[n]), "closed loop");
    } else {
        snprintf(part[n], sizeof(part[n]), "target %.1f rps", m->target_rps);
    }
    style[n++] = ST_TUI_TARGET;
    snprintf(part[n], sizeof(part[n]), "achieved %.1f rps", m->achieved_rps);
    style[n++] = ST_TUI_ACHIEVED;
    snprintf(part[n], sizeof(part[n]), "agents %d/%d", m->agents_alive, m->expected_agents);
    style[n++] = ST_TUI_PLAIN;
    if (m->agents_lost) {
        snprintf(part[n], sizeof(part[n]), "(%d lost)", m->agents_lost);
        style[n++] = ST_TUI_WARN;
    }
    if (m->have_skew) {
        snprintf(part[n], sizeof(part[n]), "skew %.3f ms", m->start_skew_ms);
        style[n++] = ST_TUI_PLAIN;
    }
    snprintf(part[n], sizeof(part[n]), "ok %llu", (unsigned long long)m->run.ok);
    style[n++] = ST_TUI_PLAIN;
    snprintf(part[n], sizeof(part[n]), "failed %llu", (unsigned long long)m->run.failed);
    style[n++] = m->run.failed ? ST_TUI_ERROR : ST_TUI_PLAIN;
    int len = 0;
    for (int i = 0; i < n; i++) {
        len += (int)strlen(part[i]) + (i ? 2 : 0);
    }
    int sep = len <= w ? 2 : 1;
    x = 0;
    for (int i = 0; i < n; i++) {
        /* "(1 lost)" belongs to the agents before it. */
        int gap = i == 0 ? 0 : style[i] == ST_TUI_WARN ? 1 : sep;
        x += text(s, x, 2, w - x, style[i], "%*s%s", gap, "", part[i]);
    }
}

static void rps_panel(const st_tui_model *m, st_tui_screen *s, int x, int y, int w, int h)
{
    title(s, x, y, w, "requests/s: target vs achieved");
    const st_tui_point *p = last_point(m);
    int lx = x + 1;
    lx += text(s, lx, y + 1, w - 1, ST_TUI_TARGET, "target %.1f", p ? p->target_rps : 0.0);
    text(s, lx, y + 1, x + w - lx, ST_TUI_ACHIEVED, "  achieved %.1f", p ? p->achieved_rps : 0.0);
    series sv[] = {{offsetof(st_tui_point, target_rps), false, ST_TUI_TARGET},
                   {offsetof(st_tui_point, achieved_rps), false, ST_TUI_ACHIEVED}};
    chart(s, m, -1, x, y + 2, w, h - 2, sv, 2);
}

static void latency_panel(const st_tui_model *m, st_tui_screen *s, int x, int y, int w, int h)
{
    title(s, x, y, w, m->uncorrected ? "latency ms, uncorrected" : "latency ms, corrected");
    bool u = m->uncorrected;
    int lx = x + 1;
    if (m->run.have_latency) {
        lx += text(s, lx, y + 1, x + w - lx, ST_TUI_P50, "p50 %.3f",
                   u ? m->run.up50_ms : m->run.p50_ms);
        lx += text(s, lx, y + 1, x + w - lx, ST_TUI_P90, "  p90 %.3f",
                   u ? m->run.up90_ms : m->run.p90_ms);
        text(s, lx, y + 1, x + w - lx, ST_TUI_P99, "  p99 %.3f",
             u ? m->run.up99_ms : m->run.p99_ms);
    } else {
        text(s, lx, y + 1, w - 1, ST_TUI_DIM, "no responses yet");
    }
    series cor[] = {{offsetof(st_tui_point, p50_ms), true, ST_TUI_P50},
                    {offsetof(st_tui_point, p90_ms), true, ST_TUI_P90},
                    {offsetof(st_tui_point, p99_ms), true, ST_TUI_P99}};
    series unc[] = {{offsetof(st_tui_point, up50_ms), true, ST_TUI_P50},
                    {offsetof(st_tui_point, up90_ms), true, ST_TUI_P90},
                    {offsetof(st_tui_point, up99_ms), true, ST_TUI_P99}};
    chart(s, m, -1, x, y + 2, w, h - 2, u ? unc : cor, 3);
}

/* A point's failures in the chart's four classes (ST_TUI_ERR_HTTP ...), summing to p->failed. */
static void error_classes(const st_tui_point *p, uint64_t k[4])
{
    k[0] = p->http_4xx + p->http_5xx;
    k[1] = p->connect + p->tls + p->cert;
    k[2] = p->timeout;
    uint64_t named = k[0] + k[1] + k[2];
    k[3] = p->failed > named ? p->failed - named : 0;
}

/* Errors per second as stacked block columns, the newest on the right: each cell takes the style
 * of the class that fills the middle of it (http at the bottom, then connect, timeout, other),
 * under the run's totals by class, each in its class's style. */
static void errors_panel(const st_tui_model *m, st_tui_screen *s, int x, int y, int w, int h)
{
    title(s, x, y, w, "errors/s by class");
    const st_tui_point *run = &m->run;
    int at = x + 1, end = x + w;
    struct {
        int style;
        const char *fmt;
        unsigned long long a, b, c;
    } legend[] = {
        {ST_TUI_ERR_HTTP, "4xx %llu 5xx %llu ", run->http_4xx, run->http_5xx, 0},
        {ST_TUI_ERR_CONNECT, "conn %llu ", run->connect, 0, 0},
        {ST_TUI_ERR_CONNECT, "tls %llu cert %llu ", run->tls, run->cert, 0},
        {ST_TUI_ERR_TIMEOUT, "tmo %llu ", run->timeout, 0, 0},
        {ST_TUI_ERR_OTHER, "other %llu", run->other, 0, 0},
    };
    for (size_t i = 0; i < sizeof(legend) / sizeof(legend[0]) && at < end; i++) {
        /* The TLS classes only when some came: plain-HTTP runs keep the line short. */
        if (i == 2 && !run->tls && !run->cert) {
            continue;
        }
        at += text(s, at, y + 1, end - at, run->failed ? legend[i].style : ST_TUI_PLAIN,
                   legend[i].fmt, legend[i].a, legend[i].b, legend[i].c);
    }
    text(s, x + 1, y + 2, w - 1, run->late || run->dropped ? ST_TUI_WARN : ST_TUI_DIM,
         "late %llu dropped %llu", (unsigned long long)run->late,
         (unsigned long long)run->dropped);
    int ch = h - 3, cw = w - 7;
    if (ch < 1 || cw < 2) {
        return;
    }
    size_t n = m->n_points < (size_t)cw ? m->n_points : (size_t)cw;
    size_t from = m->n_points - n;
    uint64_t top = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t f = st_tui_model_point(m, from + i)->failed;
        top = f > top ? f : top;
    }
    char lab[16];
    fmt_axis(lab, sizeof(lab), (double)top);
    text(s, x, y + 3, 6, ST_TUI_DIM, "%6s", lab);
    for (int r = 0; r < ch; r++) {
        put(s, x + 6, y + 3 + r, L'\x2502', ST_TUI_DIM);
    }
    if (top == 0) {
        text(s, x + 8, y + 3 + ch - 1, cw - 1, ST_TUI_DIM, "none");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const st_tui_point *p = st_tui_model_point(m, from + i);
        uint64_t f = p->failed, k[4];
        error_classes(p, k);
        int eighths = (int)((double)f / (double)top * ch * 8 + 0.5);
        if (f > 0 && eighths == 0) {
            eighths = 1;
        }
        int total = eighths;
        for (int r = 0; r < ch && eighths > 0; r++, eighths -= 8) {
            int fill = eighths >= 8 ? 8 : eighths;
            wchar_t c = fill == 8 ? L'\x2588' : (wchar_t)(0x2580 + fill);
            /* The failure at the cell's middle, counted from the bottom of the column. */
            double mid = ((double)r * 8 + fill / 2.0) / total * (double)f;
            int cls = 0;
            for (double below = 0; cls < 3 && mid >= below + (double)k[cls]; cls++) {
                below += (double)k[cls];
            }
            put(s, x + 7 + (int)i, y + 3 + ch - 1 - r, c, ST_TUI_ERR_HTTP + cls);
        }
    }
}

/* The run's latency distribution: one row per bin (adjacent bins joined to fit), bars scaled to
 * the largest. */
static void dist_panel(const st_tui_model *m, st_tui_screen *s, int x, int y, int w, int h)
{
    title(s, x, y, w, "latency distribution (run so far)");
    int rows = h - 1;
    const st_tui_bin *bins = m->uncorrected ? m->ubins : m->bins;
    size_t n_bins = m->uncorrected ? m->n_ubins : m->n_bins;
    if (n_bins == 0) {
        text(s, x + 1, y + 1, w - 1, ST_TUI_DIM, "no responses yet");
        return;
    }
    if (rows < 1) {
        return;
    }
    size_t per = (n_bins + (size_t)rows - 1) / (size_t)rows;
    st_tui_bin joined[ST_TUI_BINS];
    size_t nj = 0;
    uint64_t top = 0;
    for (size_t i = 0; i < n_bins; i += per) {
        st_tui_bin b = bins[i];
        for (size_t k = i + 1; k < i + per && k < n_bins; k++) {
            b.hi_ms = bins[k].hi_ms;
            b.count += bins[k].count;
        }
        joined[nj++] = b;
        top = b.count > top ? b.count : top;
    }
    const int lw = 20;
    int bw = w - lw - 1;
    for (size_t i = 0; i < nj; i++) {
        int ry = y + 1 + (int)i;
        text(s, x, ry, lw, ST_TUI_DIM, "%8.3f-%-8.3f", joined[i].lo_ms, joined[i].hi_ms);
        int len = top ? (int)((double)joined[i].count / (double)top * (bw - 10) + 0.5) : 0;
        if (joined[i].count > 0 && len == 0) {
            len = 1;
        }
        int bx = x + lw - 2;
        for (int k = 0; k < len; k++) {
            put(s, bx + k, ry, L'\x2588', ST_TUI_ACHIEVED);
        }
        text(s, bx + len + 1, ry, x + w - bx - len - 1, ST_TUI_PLAIN, "%llu",
             (unsigned long long)joined[i].count);
    }
}

static void fmt_heard(char *out, size_t len, uint32_t ms)
{
    if (ms == UINT32_MAX) {
        snprintf(out, len, "-");
    } else if (ms < 10000) {
        snprintf(out, len, "%.1fs", ms / 1000.0);
    } else {
        snprintf(out, len, "%us", ms / 1000);
    }
}

/* A latency in ms in at most 7 columns; "-" without one. */
static void fmt_ms(char *out, size_t len, bool have, double v)
{
    if (!have) {
        snprintf(out, len, "-");
    } else if (v < 100) {
        snprintf(out, len, "%.3f", v);
    } else if (v < 10000) {
        snprintf(out, len, "%.1f", v);
    } else {
        snprintf(out, len, "%.0f", v);
    }
}

/* A rate in at most 7 columns. */
static void fmt_rate(char *out, size_t len, double v)
{
    snprintf(out, len, v < 10000 ? "%.1f" : "%.0f", v);
}

/* The agents' table from row y, h rows (its title included). wide: with the host/task column. */
static void agents_panel(const st_tui_model *m, st_tui_screen *s, int y, int h, bool wide)
{
    int w = s->w;
    char t[128];
    snprintf(t, sizeof(t), "agents: %d alive, %d lost; p99 of each one's last second, %s",
             m->agents_alive, m->agents_lost, m->uncorrected ? "uncorrected" : "corrected");
    title(s, 0, y, w, t);
    if (h < 2) {
        return;
    }
    bool big = w >= 100, where = wide && big;
    int nw = big ? 20 : 14, ow = big ? 9 : 7;
    text(s, 0, y + 1, w, ST_TUI_DIM, "%-*s %-8s %7s %7s %7s %6s %*s %6s %5s%s", nw, "name",
         "state", "share/s", "rps", "p99 ms", "failed", ow, big ? "offset ms" : "off ms",
         "rtt ms", "heard", where ? "  host / task, AZ" : "");
    int rows = h - 2;
    size_t shown = 0;
    for (size_t i = 0; i < m->n_agents && (int)i < rows; i++, shown++) {
        const st_tui_agent_row *a = &m->agents[i];
        char heard[16], p99[16], share[16], rps[16];
        fmt_heard(heard, sizeof(heard), a->heard_ms);
        fmt_ms(p99, sizeof(p99), a->have_p99, m->uncorrected ? a->up99_ms : a->p99_ms);
        fmt_rate(share, sizeof(share), a->share_rps);
        fmt_rate(rps, sizeof(rps), a->achieved_rps);
        bool last_row = (int)i == rows - 1 && (m->n_agents > (size_t)rows || m->more_agents);
        if (last_row) {
            break;
        }
        text(s, 0, y + 2 + (int)i, w, a->lost ? ST_TUI_WARN : ST_TUI_PLAIN,
             "%-*.*s %-8s %7s %7s %7s %6llu %*.3f %6.3f %5s%s%s", nw, nw, a->name,
             a->lost ? "LOST" : a->state, share, rps, p99, (unsigned long long)a->failed, ow,
             a->offset_ms, a->rtt_ms, heard, where ? "  " : "", where ? a->where : "");
    }
    size_t rest = m->n_agents - shown + m->more_agents;
    if (rest) {
        text(s, 0, y + 2 + (int)shown, w, ST_TUI_DIM, "... and %zu more (Tab: the agents view)",
             rest);
    }
}

/* The requests by name: a table of the names (the selected one marked), then the selected
 * name's p99 and p50 per second. */
static void names_panel(const st_tui_model *m, st_tui_screen *s, int y, int h)
{
    int w = s->w;
    bool u = m->uncorrected;
    char t[128];
    snprintf(t, sizeof(t), "requests by name: %zu names, latency %s (Up/Down selects)",
             m->n_names, u ? "uncorrected" : "corrected");
    title(s, 0, y, w, t);
    if (m->n_names == 0) {
        text(s, 1, y + 1, w - 1, ST_TUI_DIM,
             "the plan has one request name: its figures are the run's (the overview)");
        return;
    }
    int sel = m->name_sel < 0 ? 0 : m->name_sel >= (int)m->n_names ? (int)m->n_names - 1
                                                                   : m->name_sel;
    /* The table takes what the chart leaves it (the chart at least 6 rows, with its title). */
    int rows = h - 2 - 6;
    rows = rows > (int)m->n_names ? (int)m->n_names : rows;
    int chart_h = h - 2 - rows;
    if (rows < 1) {
        return;
    }
    int nw = w >= 100 ? 30 : 14;
    text(s, 0, y + 1, w, ST_TUI_DIM, "  %-*s %8s %8s %7s %7s %8s %8s %8s", nw, "name",
         "requests", "ok", "failed", "rps", "p50 ms", "p90 ms", "p99 ms");
    int first = sel >= rows ? sel - rows + 1 : 0;
    for (int r = 0; r < rows && first + r < (int)m->n_names; r++) {
        const st_tui_name_row *n = &m->names[first + r];
        const st_tui_point *p = &n->run;
        char p50[16], p90[16], p99[16], rps[16];
        fmt_ms(p50, sizeof(p50), p->have_latency, u ? p->up50_ms : p->p50_ms);
        fmt_ms(p90, sizeof(p90), p->have_latency, u ? p->up90_ms : p->p90_ms);
        fmt_ms(p99, sizeof(p99), p->have_latency, u ? p->up99_ms : p->p99_ms);
        fmt_rate(rps, sizeof(rps), n->last_rps);
        bool is_sel = first + r == sel;
        text(s, 0, y + 2 + r, w, is_sel ? ST_TUI_TITLE : p->failed ? ST_TUI_ERROR : ST_TUI_PLAIN,
             "%s %-*.*s %8llu %8llu %7llu %7s %8s %8s %8s", is_sel ? ">" : " ", nw, nw, n->name,
             (unsigned long long)(p->ok + p->failed), (unsigned long long)p->ok,
             (unsigned long long)p->failed, rps, p50, p90, p99);
    }
    int cy = y + 2 + rows;
    snprintf(t, sizeof(t), "%.*s: p99 and p50 ms per second, %s", ST_TUI_NAME_LEN,
             m->names[sel].name, u ? "uncorrected" : "corrected");
    title(s, 0, cy, w, t);
    const st_tui_name_point *last =
        m->n_points ? &st_tui_model_name_points(m, m->n_points - 1)[sel] : NULL;
    if (last && last->have_latency) {
        int lx = 1 + text(s, 1, cy + 1, w - 1, ST_TUI_P99, "p99 %.3f",
                          (double)(u ? last->up99_ms : last->p99_ms));
        lx += text(s, lx, cy + 1, w - lx, ST_TUI_P50, "  p50 %.3f",
                   (double)(u ? last->up50_ms : last->p50_ms));
        uint32_t k = st_tui_model_point(m, m->n_points - 1)->second;
        text(s, lx, cy + 1, w - lx, ST_TUI_DIM, "  (the second %u-%u s: %u responses)", k, k + 1,
             last->done);
    } else {
        text(s, 1, cy + 1, w - 1, ST_TUI_DIM, "no responses of it in the last second");
    }
    series cor[] = {{offsetof(st_tui_name_point, p50_ms), true, ST_TUI_P50},
                    {offsetof(st_tui_name_point, p99_ms), true, ST_TUI_P99}};
    series unc[] = {{offsetof(st_tui_name_point, up50_ms), true, ST_TUI_P50},
                    {offsetof(st_tui_name_point, up99_ms), true, ST_TUI_P99}};
    chart(s, m, sel, 0, cy + 2, w, chart_h - 2, u ? unc : cor, 2);
}

/* The rows event e takes at width w: the first, then continuations indented by 2. */
static int event_rows(const char *e, int w)
{
    int len = (int)strlen(e);
    return len <= w || w <= 2 ? 1 : 1 + (len - w + (w - 2) - 1) / (w - 2);
}

/* The last events that fit, oldest first; a line wider than the screen goes on over the next
 * rows (a command line with its token must be read whole). */
static void events_panel(const st_tui_model *m, st_tui_screen *s, int y, int h)
{
    title(s, 0, y, s->w, "events");
    int rows = h - 1, w = s->w;
    if (rows <= 0 || m->n_events == 0) {
        return;
    }
    size_t from = m->n_events;
    int used = 0;
    while (from > 0 && used + event_rows(event_at(m, from - 1), w) <= rows) {
        used += event_rows(event_at(m, --from), w);
    }
    if (from == m->n_events) {
        from--; /* the newest alone is taller than the panel: its start, cut */
    }
    int yy = y + 1;
    for (size_t i = from; i < m->n_events && yy < y + 1 + rows; i++) {
        const char *e = event_at(m, i);
        bool warn = strstr(e, "warn") || strstr(e, "lost") || strstr(e, "late") ||
                    strstr(e, "dropped") || strstr(e, "error");
        int style = warn ? ST_TUI_WARN : ST_TUI_PLAIN;
        int len = (int)strlen(e);
        text(s, 0, yy++, w, style, "%.*s", w, e);
        for (int off = w; off < len && w > 2 && yy < y + 1 + rows; off += w - 2) {
            text(s, 2, yy++, w - 2, style, "%.*s", w - 2, e + off);
        }
    }
}

static void launch_panel(const st_tui_model *m, st_tui_screen *s, int y, int h)
{
    title(s, 0, y, s->w, "launch");
    if (h < 2) {
        return;
    }
    text(s, 1, y + 1, s->w - 1, ST_TUI_TITLE, "%s: %d of %d agents registered", m->state,
         m->agents_alive, m->expected_agents);
    if (m->launch[0] && h > 2) {
        text(s, 1, y + 2, s->w - 1, ST_TUI_PLAIN, "%s", m->launch);
    }
}

static const char *const help_lines[] = {
    "+ / -   target rate +10% / -10%",
    "r       type an exact rate (Enter applies, Esc cancels)",
    "p       pause (rate 0) / resume",
    "s       stop gracefully: drain, then the summary",
    "q, ^C   stop and quit the UI (the summary follows)",
    "l       latency corrected / uncorrected",
    "Tab     views: overview, agents, requests by name, events",
    "Up/Down the request name shown (requests by name)",
    "?       this help",
};

static void help_box(st_tui_screen *s, bool read_only)
{
    int n = (int)(sizeof(help_lines) / sizeof(help_lines[0]));
    int bw = 60 < s->w - 2 ? 60 : s->w - 2, bh = n + 2;
    int x = (s->w - bw) / 2, y = (s->h - bh) / 2;
    for (int r = 0; r < bh; r++) {
        for (int c = 0; c < bw; c++) {
            put(s, x + c, y + r, L' ', ST_TUI_PLAIN);
        }
    }
    title(s, x, y, bw, read_only ? "keys (read-only: no steering)" : "keys");
    for (int i = 0; i < n; i++) {
        text(s, x + 1, y + 1 + i, bw - 2, ST_TUI_PLAIN, "%s", help_lines[i]);
    }
    title(s, x, y + bh - 1, bw, "? closes");
}

static void footer(const st_tui_model *m, st_tui_screen *s)
{
    int y = s->h - 1;
    if (m->prompting) {
        text(s, 0, y, s->w, ST_TUI_TITLE, "rate (rps): %s_   Enter applies, Esc cancels",
             m->prompt);
        return;
    }
    int x;
    if (m->read_only) {
        x = text(s, 0, y, s->w, ST_TUI_DIM, "q quit  l latency  Tab view  ? keys");
    } else {
        x = text(s, 0, y, s->w, ST_TUI_DIM,
                 "+/- rate  r set  p pause  s stop  q quit  l latency  Tab view  ? keys");
    }
    if (m->status[0]) {
        text(s, x + 2, y, s->w - x - 2, ST_TUI_WARN, "%s", m->status);
    }
}

void st_tui_render(const st_tui_model *m, st_tui_screen *s)
{
    for (int i = 0; i < s->w * s->h; i++) {
        s->cells[i].ch = L' ';
        s->cells[i].style = ST_TUI_PLAIN;
    }
    if (s->w < 40 || s->h < 10) {
        text(s, 0, 0, s->w, ST_TUI_WARN, "terminal too small");
        text(s, 0, 1, s->w, ST_TUI_PLAIN, "%dx%d; 40x10 at least", s->w, s->h);
        return;
    }
    header(m, s);
    int top = 3, bh = s->h - 4;
    if (m->view == ST_TUI_VIEW_AGENTS) {
        agents_panel(m, s, top, bh, true);
    } else if (m->view == ST_TUI_VIEW_NAMES) {
        names_panel(m, s, top, bh);
    } else if (m->view == ST_TUI_VIEW_EVENTS) {
        events_panel(m, s, top, bh);
    } else {
        /* The overview: charts, errors and distribution, agents and events. */
        int ch = bh * 2 / 5, mh = bh / 4, rest = bh - ch - mh;
        int half = s->w / 2;
        if (m->n_points == 0) {
            launch_panel(m, s, top, ch + mh);
        } else {
            rps_panel(m, s, 0, top, half, ch);
            latency_panel(m, s, half, top, s->w - half, ch);
            errors_panel(m, s, 0, top + ch, half, mh);
            dist_panel(m, s, half, top + ch, s->w - half, mh);
        }
        int ah = (rest + 1) / 2;
        agents_panel(m, s, top + ch + mh, ah, false);
        events_panel(m, s, top + ch + mh + ah, rest - ah);
    }
    footer(m, s);
    if (m->help) {
        help_box(s, m->read_only);
    }
}

size_t st_tui_screen_line(const st_tui_screen *s, int y, char *out, size_t len)
{
    size_t n = 0;
    if (len == 0) {
        return 0;
    }
    int last = s->w - 1;
    while (last >= 0 && (s->cells[(size_t)y * (size_t)s->w + (size_t)last].ch == L' ')) {
        last--;
    }
    for (int x = 0; x <= last; x++) {
        uint32_t c = (uint32_t)s->cells[(size_t)y * (size_t)s->w + (size_t)x].ch;
        char b[4];
        size_t k;
        if (c < 0x80) {
            b[0] = (char)c;
            k = 1;
        } else if (c < 0x800) {
            b[0] = (char)(0xc0 | (c >> 6));
            b[1] = (char)(0x80 | (c & 0x3f));
            k = 2;
        } else {
            b[0] = (char)(0xe0 | (c >> 12));
            b[1] = (char)(0x80 | ((c >> 6) & 0x3f));
            b[2] = (char)(0x80 | (c & 0x3f));
            k = 3;
        }
        if (n + k >= len) {
            break;
        }
        memcpy(out + n, b, k);
        n += k;
    }
    out[n] = 0;
    return n;
}
