/* The terminal UI's drawing (coordinator/tui_view.h), on plain buffers: no terminal. */
#include "error.h"
#include "hist.h"
#include "tui_view.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Row y of s as UTF-8 (static buffer). */
static const char *row(const st_tui_screen *s, int y)
{
    static char buf[4096];
    st_tui_screen_line(s, y, buf, sizeof(buf));
    return buf;
}

/* The first row (from y0) that contains needle, or -1. */
static int find_row(const st_tui_screen *s, int y0, const char *needle)
{
    for (int y = y0; y < s->h; y++) {
        if (strstr(row(s, y), needle)) {
            return y;
        }
    }
    return -1;
}

static wchar_t at(const st_tui_screen *s, int x, int y)
{
    return s->cells[(size_t)y * (size_t)s->w + (size_t)x].ch;
}

/* A running run of two agents, `seconds` seconds at a constant rps and latency. */
static st_tui_model *running(size_t seconds, double rps)
{
    st_tui_model *m = malloc(sizeof(*m));
    assert_non_null(m);
    st_tui_model_init(m);
    snprintf(m->run_id, sizeof(m->run_id), "20261202T010203Z-0badcafe");
    snprintf(m->state, sizeof(m->state), "running");
    m->planned_s = 30;
    m->elapsed_s = (double)seconds;
    m->target_rps = rps;
    m->achieved_rps = rps;
    m->expected_agents = 2;
    m->agents_alive = 2;
    m->have_skew = true;
    m->start_skew_ms = 0.25;
    for (size_t i = 0; i < seconds; i++) {
        st_tui_point p = {.second = (uint32_t)i,
                          .target_rps = rps,
                          .achieved_rps = rps,
                          .have_latency = true,
                          .p50_ms = 1,
                          .p90_ms = 2,
                          .p99_ms = 4,
                          .up50_ms = 0.5,
                          .up90_ms = 1,
                          .up99_ms = 2,
                          .ok = (uint64_t)rps};
        st_tui_model_add_point(m, &p);
        m->run.ok += (uint64_t)rps;
    }
    m->run.have_latency = true;
    m->run.p50_ms = 1;
    m->run.p90_ms = 2;
    m->run.p99_ms = 4.125;
    m->run.up99_ms = 2.5;
    for (int i = 0; i < 2; i++) {
        st_tui_agent_row *a = &m->agents[m->n_agents++];
        snprintf(a->name, sizeof(a->name), "agent-%d", i + 1);
        snprintf(a->where, sizeof(a->where), "host%d", i + 1);
        snprintf(a->state, sizeof(a->state), "running");
        a->share_rps = rps / 2;
        a->achieved_rps = rps / 2;
        a->heard_ms = 120;
    }
    st_tui_model_add_event(m, "agent 1 \"agent-1\" registered");
    st_tui_model_add_event(m, "agent 2 \"agent-2\" registered");
    return m;
}

static void draw(const st_tui_model *m, st_tui_screen *s, int w, int h)
{
    assert_int_equal(st_tui_screen_init(s, w, h), 0);
    st_tui_render(m, s);
}

static void test_tui_view_header(void **state)
{
    (void)state;
    st_tui_model *m = running(12, 100);
    st_tui_screen s;
    draw(m, &s, 120, 40);
    assert_non_null(strstr(row(&s, 0), "stampede 20261202T010203Z-0badcafe  running"));
    /* The gauge: 12 of 30 s elapsed fills 40% of its cells. */
    int full = 0, empty = 0;
    for (int x = 0; x < s.w; x++) {
        full += at(&s, x, 1) == L'\x2588';
        empty += at(&s, x, 1) == L'\x2591';
    }
    assert_true(full > 0 && empty > 0);
    assert_int_equal(full, (int)(0.4 * (full + empty)));
    assert_non_null(strstr(row(&s, 1), "12.0 / 30.0 s"));
    assert_non_null(strstr(row(&s, 2), "target 100.0 rps"));
    assert_non_null(strstr(row(&s, 2), "achieved 100.0 rps"));
    assert_non_null(strstr(row(&s, 2), "agents 2/2"));
    assert_non_null(strstr(row(&s, 2), "skew 0.250 ms"));
    assert_non_null(strstr(row(&s, 2), "ok 1200"));
    assert_non_null(strstr(row(&s, 2), "failed 0"));
    st_tui_screen_fini(&s);
    free(m);
}

/* A constant rate at the top of its axis draws one row of dots, one dot column per second. */
static void test_tui_view_chart_braille(void **state)
{
    (void)state;
    st_tui_model *m = running(6, 100);
    st_tui_screen s;
    draw(m, &s, 120, 40);
    int y = find_row(&s, 3, "requests/s");
    assert_true(y > 0);
    /* The axis: the top label is the rate rounded up (100), the bottom 0. */
    assert_non_null(strstr(row(&s, y + 2), "   100\xe2\x94\x82"));
    int plot_x = 7;
    /* 6 seconds are 3 cells of 2 dot columns, both series on the top dot row: braille 0x01|0x08. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(at(&s, plot_x + i, y + 2), 0x2800 + 0x09);
    }
    assert_int_equal(at(&s, plot_x + 3, y + 2), L' ');
    /* Nothing below the line. */
    assert_int_equal(at(&s, plot_x, y + 3), L' ');
    st_tui_screen_fini(&s);
    free(m);
}

/* A step up joins the two levels with a vertical run of dots. */
static void test_tui_view_chart_step(void **state)
{
    (void)state;
    st_tui_model *m = running(0, 0);
    st_tui_point lo = {.target_rps = 0, .achieved_rps = 0};
    st_tui_point hi = {.target_rps = 100, .achieved_rps = 100};
    st_tui_model_add_point(m, &lo);
    st_tui_model_add_point(m, &hi);
    st_tui_screen s;
    draw(m, &s, 120, 40);
    int y = find_row(&s, 3, "requests/s");
    int h = 0;
    while (at(&s, 6, y + 2 + h) == L'\x2502') {
        h++;
    }
    assert_true(h >= 2);
    /* The second column (dot x 1) is set on every row of the chart: the step is joined. */
    for (int r = 0; r < h; r++) {
        wchar_t c = at(&s, 7, y + 2 + r);
        assert_true(c >= 0x2800 && c <= 0x28ff);
        assert_true((c - 0x2800) & (0x08 | 0x10 | 0x20 | 0x80));
    }
    /* The first column only at the bottom. */
    assert_true((at(&s, 7, y + 2 + h - 1) - 0x2800) & 0x40);
    assert_false((at(&s, 7, y + 2) - 0x2800) & 0x01);
    st_tui_screen_fini(&s);
    free(m);
}

static void test_tui_view_latency_toggle(void **state)
{
    (void)state;
    st_tui_model *m = running(5, 50);
    st_tui_screen s;
    draw(m, &s, 120, 40);
    assert_true(find_row(&s, 3, "latency ms, corrected") > 0);
    assert_true(find_row(&s, 3, "p99 4.125") > 0);
    st_tui_screen_fini(&s);
    m->uncorrected = true;
    draw(m, &s, 120, 40);
    assert_true(find_row(&s, 3, "latency ms, uncorrected") > 0);
    assert_true(find_row(&s, 3, "p99 2.500") > 0);
    st_tui_screen_fini(&s);
    free(m);
}

static void test_tui_view_errors(void **state)
{
    (void)state;
    st_tui_model *m = running(0, 0);
    for (int i = 0; i < 4; i++) {
        st_tui_point p = {.second = (uint32_t)i, .failed = (uint64_t)(i == 3 ? 8 : i)};
        st_tui_model_add_point(m, &p);
    }
    m->run.http_5xx = 14;
    m->run.failed = 14;
    m->run.late = 3;
    st_tui_screen s;
    draw(m, &s, 120, 40);
    int y = find_row(&s, 3, "errors/s");
    assert_true(y > 0);
    assert_non_null(strstr(row(&s, y + 1), "5xx 14"));
    assert_null(strstr(row(&s, y + 1), "tls"));
    assert_non_null(strstr(row(&s, y + 2), "late 3 dropped 0"));
    assert_non_null(strstr(row(&s, y + 3), "     8\xe2\x94\x82"));
    /* The tallest column is full on every row; the one of 0 is empty. */
    int bottom = y + 3;
    while (at(&s, 6, bottom + 1) == L'\x2502') {
        bottom++;
    }
    for (int r = y + 3; r <= bottom; r++) {
        assert_int_equal(at(&s, 10, r), L'\x2588');
    }
    assert_int_equal(at(&s, 7, bottom), L' ');
    assert_true(at(&s, 8, bottom) >= 0x2581 && at(&s, 8, bottom) <= 0x2588);
    st_tui_screen_fini(&s);
    /* Failed handshakes and certificates have their own counts once some came. */
    m->run.tls = 5;
    m->run.cert = 2;
    m->run.failed = 21;
    draw(m, &s, 120, 40);
    assert_non_null(strstr(row(&s, y + 1), "conn 0 tls 5 cert 2 tmo 0 other 0"));
    st_tui_screen_fini(&s);
    free(m);
}

/* The style of the first cell of text on row y (cells compared one by one), or -1. */
static int style_of_text(const st_tui_screen *s, int y, const char *text)
{
    size_t n = strlen(text);
    for (int x = 0; x + (int)n <= s->w; x++) {
        size_t i = 0;
        while (i < n && at(s, x + (int)i, y) == (wchar_t)text[i]) {
            i++;
        }
        if (i == n) {
            return s->cells[(size_t)y * (size_t)s->w + (size_t)x].style;
        }
    }
    return -1;
}

/* Each column stacks its classes: http at the bottom, then connect, timeout, other, each cell in
 * the style of the class at its middle; the legend wears the same styles. */
static void test_tui_view_errors_by_class(void **state)
{
    (void)state;
    st_tui_model *m = running(0, 0);
    st_tui_point p = {.second = 0, .http_5xx = 8, .timeout = 8, .failed = 16};
    st_tui_model_add_point(m, &p);
    st_tui_point q = {.second = 1, .connect = 4, .other = 4, .failed = 8};
    st_tui_model_add_point(m, &q);
    m->run.http_5xx = 8;
    m->run.timeout = 8;
    m->run.connect = 4;
    m->run.other = 4;
    m->run.failed = 24;
    st_tui_screen s;
    draw(m, &s, 120, 40);
    int y = find_row(&s, 3, "errors/s by class");
    assert_true(y > 0);
    int top = y + 3, bottom = top;
    while (at(&s, 6, bottom + 1) == L'\x2502') {
        bottom++;
    }
    int rows = bottom - top + 1;
    assert_true(rows >= 4);
    /* The 16 of second 0 fill its column: the lower half http, the upper half timeout. */
    for (int r = 0; r < rows; r++) {
        int want = r < rows / 2 ? ST_TUI_ERR_HTTP : ST_TUI_ERR_TIMEOUT;
        if (rows % 2 && r == rows / 2) {
            continue; /* the middle cell of an odd column is either */
        }
        assert_int_equal(at(&s, 7, bottom - r), L'\x2588');
        assert_int_equal(s.cells[(size_t)(bottom - r) * (size_t)s.w + 7].style, want);
    }
    /* The 8 of second 1 reach half way: connect below, other above, nothing higher. */
    assert_int_equal(s.cells[(size_t)bottom * (size_t)s.w + 8].style, ST_TUI_ERR_CONNECT);
    assert_int_equal(at(&s, 8, top), L' ');
    int highest = bottom;
    while (highest > top && at(&s, 8, highest - 1) != L' ') {
        highest--;
    }
    assert_int_equal(s.cells[(size_t)highest * (size_t)s.w + 8].style, ST_TUI_ERR_OTHER);
    /* The legend: "5xx 8" in http's style, "tmo 8" in timeout's. */
    assert_int_equal(style_of_text(&s, y + 1, "5xx 8"), ST_TUI_ERR_HTTP);
    assert_int_equal(style_of_text(&s, y + 1, "tmo 8"), ST_TUI_ERR_TIMEOUT);
    st_tui_screen_fini(&s);
    free(m);
}

static void test_tui_view_bins(void **state)
{
    (void)state;
    st_hist *h;
    assert_int_equal(st_hist_new(&h), 0);
    st_tui_bin bins[ST_TUI_BINS];
    size_t n = 99;
    st_tui_bins(bins, &n, h);
    assert_int_equal(n, 0);
    st_hist_record_n(h, 1000, 90);
    st_hist_record_n(h, 100000, 10);
    st_tui_bins(bins, &n, h);
    assert_int_equal(n, ST_TUI_BINS);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += bins[i].count;
        if (i) {
            assert_true(bins[i].lo_ms >= bins[i - 1].lo_ms);
        }
    }
    assert_int_equal(total, 100);
    assert_int_equal(bins[0].count, 90);
    assert_int_equal(bins[n - 1].count, 10);
    /* One value only: one bin. */
    st_hist_reset(h);
    st_hist_record_n(h, 2000, 5);
    st_tui_bins(bins, &n, h);
    assert_int_equal(n, 1);
    assert_int_equal(bins[0].count, 5);
    st_hist_free(h);
}

static void test_tui_view_distribution(void **state)
{
    (void)state;
    st_tui_model *m = running(3, 10);
    m->n_bins = 2;
    m->bins[0] = (st_tui_bin){1, 2, 100};
    m->bins[1] = (st_tui_bin){2, 4, 50};
    st_tui_screen s;
    draw(m, &s, 120, 40);
    int y = find_row(&s, 3, "latency distribution");
    assert_true(y > 0);
    const char *r0 = row(&s, y + 1);
    assert_non_null(strstr(r0, "1.000-2.000"));
    assert_non_null(strstr(r0, " 100"));
    int bar0 = 0, bar1 = 0;
    for (int x = 60; x < 120; x++) {
        bar0 += at(&s, x, y + 1) == L'\x2588';
        bar1 += at(&s, x, y + 2) == L'\x2588';
    }
    assert_true(bar0 > 10);
    assert_int_equal(bar1, (bar0 + 1) / 2);
    st_tui_screen_fini(&s);
    free(m);
}

static void test_tui_view_agents_lost(void **state)
{
    (void)state;
    st_tui_model *m = running(3, 10);
    m->agents[1].lost = true;
    m->agents[1].heard_ms = UINT32_MAX;
    m->agents_alive = 1;
    m->agents_lost = 1;
    st_tui_screen s;
    draw(m, &s, 120, 40);
    assert_non_null(strstr(row(&s, 2), "(1 lost)"));
    int y = find_row(&s, 3, "agent-2");
    assert_true(y > 0);
    assert_non_null(strstr(row(&s, y), "LOST"));
    assert_int_equal(s.cells[(size_t)y * 120].style, ST_TUI_WARN);
    st_tui_screen_fini(&s);
    /* The agents view shows the host column on a wide screen. */
    m->view = ST_TUI_VIEW_AGENTS;
    draw(m, &s, 120, 40);
    y = find_row(&s, 3, "agent-1");
    assert_non_null(strstr(row(&s, y), "host1"));
    st_tui_screen_fini(&s);
    free(m);
}

static void test_tui_view_many_agents(void **state)
{
    (void)state;
    st_tui_model *m = running(3, 10);
    m->more_agents = 998;
    st_tui_screen s;
    draw(m, &s, 80, 24);
    /* The overview at 80x24 has room for one agent's row and the line counting the others. */
    assert_true(find_row(&s, 3, "agent-1") > 0);
    assert_true(find_row(&s, 3, "... and 999 more") > 0);
    st_tui_screen_fini(&s);
    free(m);
}

/* Each agent's p99 (of its latest second) in its own column at 80x24, under its title; `l`
 * shows the uncorrected one; an agent without responses yet shows "-". */
static void test_tui_view_agents_p99(void **state)
{
    (void)state;
    st_tui_model *m = running(3, 10);
    m->agents[0].have_p99 = true;
    m->agents[0].p99_ms = 12.345;
    m->agents[0].up99_ms = 3.25;
    m->agents[0].offset_ms = -0.125;
    m->agents[0].rtt_ms = 0.5;
    st_tui_screen s;
    for (int view = 0; view < 2; view++) {
        m->view = view == 0 ? ST_TUI_VIEW_OVERVIEW : ST_TUI_VIEW_AGENTS;
        m->uncorrected = false;
        draw(m, &s, 80, 24);
        int hy = find_row(&s, 3, "p99 ms");
        assert_true(hy > 0);
        char head[4096];
        snprintf(head, sizeof(head), "%s", row(&s, hy));
        /* Every column title fits in 80 columns, the last one included. */
        assert_non_null(strstr(head, "heard"));
        int col = (int)(strstr(head, "p99 ms") - head) + 6; /* the column's right edge */
        int y1 = find_row(&s, hy, "agent-1"), y2 = find_row(&s, hy, "agent-2");
        assert_true(y1 > hy && y2 > y1);
        const char *r1 = row(&s, y1);
        const char *v = strstr(r1, "12.345");
        assert_non_null(v);
        assert_int_equal((int)(v - r1) + 6, col);
        assert_non_null(strstr(r1, "-0.125"));
        assert_non_null(strstr(r1, "0.1s")); /* heard, the last column, is on screen */
        /* agent-2 has no p99: a dash at the column's right edge. */
        const char *r2 = row(&s, y2);
        assert_int_equal(r2[col - 1], '-');
        assert_int_equal(r2[col - 2], ' ');
        st_tui_screen_fini(&s);
        m->uncorrected = true;
        draw(m, &s, 80, 24);
        y1 = find_row(&s, hy, "agent-1");
        assert_non_null(strstr(row(&s, y1), " 3.250 "));
        assert_null(strstr(row(&s, y1), "12.345"));
        assert_true(find_row(&s, 3, "last second, uncorrected") > 0);
        st_tui_screen_fini(&s);
    }
    free(m);
}

/* Request names get slots in the order first seen, 32 at most; each point's parts go with it
 * through the ring and start empty. */
static void test_tui_view_name_slots(void **state)
{
    (void)state;
    st_tui_model *m = running(0, 0);
    assert_int_equal(st_tui_model_name(m, "home"), 0);
    assert_int_equal(st_tui_model_name(m, "item"), 1);
    assert_int_equal(st_tui_model_name(m, "home"), 0);
    for (int i = 2; i < ST_TUI_NAMES; i++) {
        char n[16];
        snprintf(n, sizeof(n), "n%d", i);
        assert_int_equal(st_tui_model_name(m, n), i);
    }
    assert_int_equal(st_tui_model_name(m, "one too many"), -1);
    assert_int_equal(st_tui_model_name(m, "item"), 1);
    assert_int_equal(m->n_names, ST_TUI_NAMES);
    for (uint32_t k = 0; k < ST_TUI_HISTORY + 3; k++) {
        st_tui_point p = {.second = k};
        st_tui_model_add_point(m, &p);
        st_tui_name_point *np = st_tui_model_last_name_points(m);
        assert_false(np[1].have_latency); /* the slot reused from the ring's start is empty */
        assert_int_equal(np[1].done, 0);
        np[1].have_latency = true;
        np[1].done = k;
    }
    for (size_t i = 0; i < m->n_points; i++) {
        assert_int_equal(st_tui_model_name_points(m, i)[1].done,
                         st_tui_model_point(m, i)->second);
    }
    free(m);
}

/* A model with three names over `seconds` seconds: name k has (k + 1) * 10 responses a second
 * and a p99 of (k + 1) ms (uncorrected: half); name 2 had nothing in the last second. */
static st_tui_model *with_names(size_t seconds)
{
    st_tui_model *m = running(0, 0);
    static const char *const names[] = {"home", "item", "order"};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(st_tui_model_name(m, names[k]), k);
    }
    for (size_t i = 0; i < seconds; i++) {
        st_tui_point p = {.second = (uint32_t)i, .target_rps = 60, .achieved_rps = 60};
        st_tui_model_add_point(m, &p);
        st_tui_name_point *np = st_tui_model_last_name_points(m);
        for (int k = 0; k < 3; k++) {
            if (k == 2 && i + 1 == seconds) {
                continue;
            }
            np[k] = (st_tui_name_point){.have_latency = true,
                                        .p50_ms = (float)(k + 1) / 2,
                                        .p99_ms = (float)(k + 1),
                                        .up50_ms = (float)(k + 1) / 4,
                                        .up99_ms = (float)(k + 1) / 2,
                                        .done = (uint32_t)(k + 1) * 10};
        }
    }
    for (int k = 0; k < 3; k++) {
        st_tui_name_row *r = &m->names[k];
        r->run = (st_tui_point){.have_latency = true,
                                .ok = (uint64_t)(k + 1) * 10 * seconds - (uint64_t)k,
                                .failed = (uint64_t)k,
                                .p50_ms = (k + 1) / 2.0,
                                .p90_ms = (k + 1) * 0.75,
                                .p99_ms = k + 1.0,
                                .up50_ms = (k + 1) / 4.0,
                                .up90_ms = (k + 1) * 0.375,
                                .up99_ms = (k + 1) / 2.0};
        r->last_rps = k == 2 ? 0 : (k + 1) * 10.0;
    }
    m->elapsed_s = (double)seconds;
    return m;
}

/* The names view: every name's counts and latency, the selected one marked, and its p99 over
 * time as a chart; at 80x24 and larger; l switches them all to uncorrected. */
static void test_tui_view_names(void **state)
{
    (void)state;
    st_tui_model *m = with_names(20);
    m->view = ST_TUI_VIEW_NAMES;
    st_tui_screen s;
    int sizes[][2] = {{80, 24}, {120, 40}};
    for (int z = 0; z < 2; z++) {
        int w = sizes[z][0], h = sizes[z][1];
        m->name_sel = 1;
        m->uncorrected = false;
        draw(m, &s, w, h);
        assert_true(find_row(&s, 3, "requests by name: 3 names") == 3);
        int hy = find_row(&s, 4, "requests");
        assert_int_equal(hy, 4);
        assert_non_null(strstr(row(&s, hy), "p99 ms"));
        int yh = find_row(&s, hy, "home"), yi = find_row(&s, hy, "item"),
            yo = find_row(&s, hy, "order");
        assert_true(yh == hy + 1 && yi == hy + 2 && yo == hy + 3);
        /* item: 400 requests, 399 ok, 1 failed, 20 in the last second, p50 1, p90 1.5, p99 2. */
        char want[128];
        assert_non_null(strstr(row(&s, yi), "> item"));
        assert_int_equal(s.cells[(size_t)yi * (size_t)w].style, ST_TUI_TITLE);
        snprintf(want, sizeof(want), "%8d %8d %7d %7s %8s %8s %8s", 400, 399, 1, "20.0", "1.000",
                 "1.500", "2.000");
        assert_non_null(strstr(row(&s, yi), want));
        assert_int_equal(row(&s, yh)[0], ' ');
        snprintf(want, sizeof(want), "%7s %8s %8s %8s", "0.0", "1.500", "2.250", "3.000");
        assert_non_null(strstr(row(&s, yo), want));
        /* The chart of the selected name: its title, the last second's figures, and dots. */
        int cy = find_row(&s, yo, "item: p99 and p50 ms per second, corrected");
        assert_true(cy > yo);
        assert_non_null(strstr(row(&s, cy + 1), "p99 2.000  p50 1.000"));
        assert_non_null(strstr(row(&s, cy + 1), "(the second 19-20 s: 20 responses)"));
        int dots = 0;
        for (int y = cy + 2; y < h - 1; y++) {
            for (int x = 0; x < w; x++) {
                dots += at(&s, x, y) > 0x2800 && at(&s, x, y) <= 0x28ff;
            }
        }
        assert_true(dots >= 10);
        assert_true(find_row(&s, 0, "Tab view") == h - 1);
        st_tui_screen_fini(&s);
        /* Uncorrected: the table and the chart. */
        m->uncorrected = true;
        draw(m, &s, w, h);
        snprintf(want, sizeof(want), "%8s %8s %8s", "0.500", "0.750", "1.000");
        assert_non_null(strstr(row(&s, yi), want));
        cy = find_row(&s, yo, "item: p99 and p50 ms per second, uncorrected");
        assert_true(cy > yo);
        assert_non_null(strstr(row(&s, cy + 1), "p99 1.000  p50 0.500"));
        st_tui_screen_fini(&s);
        /* A selection past the last name shows the last; that name had nothing just now. */
        m->name_sel = 7;
        m->uncorrected = false;
        draw(m, &s, w, h);
        assert_non_null(strstr(row(&s, yo), "> order"));
        cy = find_row(&s, yo, "order: p99 and p50 ms per second");
        assert_true(cy > yo);
        assert_non_null(strstr(row(&s, cy + 1), "no responses of it in the last second"));
        st_tui_screen_fini(&s);
    }
    free(m);
}

/* More names than rows at 80x24: the table scrolls to keep the selected name on screen. */
static void test_tui_view_names_scroll(void **state)
{
    (void)state;
    st_tui_model *m = with_names(5);
    for (int k = 3; k < ST_TUI_NAMES; k++) {
        char n[16];
        snprintf(n, sizeof(n), "name-%02d", k);
        assert_int_equal(st_tui_model_name(m, n), k);
    }
    m->view = ST_TUI_VIEW_NAMES;
    m->name_sel = ST_TUI_NAMES - 1;
    st_tui_screen s;
    draw(m, &s, 80, 24);
    assert_true(find_row(&s, 3, "> name-31") > 0);
    assert_int_equal(find_row(&s, 3, "home"), -1);
    assert_true(find_row(&s, 3, "name-31: p99 and p50") > 0);
    st_tui_screen_fini(&s);
    m->name_sel = 0;
    draw(m, &s, 80, 24);
    assert_true(find_row(&s, 3, "> home") > 0);
    assert_int_equal(find_row(&s, 3, "name-31 "), -1);
    st_tui_screen_fini(&s);
    free(m);
}

/* A plan of one name: the view says where its figures are. */
static void test_tui_view_names_none(void **state)
{
    (void)state;
    st_tui_model *m = running(3, 10);
    m->view = ST_TUI_VIEW_NAMES;
    st_tui_screen s;
    draw(m, &s, 80, 24);
    assert_true(find_row(&s, 3, "the plan has one request name") > 0);
    st_tui_screen_fini(&s);
    free(m);
}

/* The newest events are shown; the ring drops the oldest. */
static void test_tui_view_events(void **state)
{
    (void)state;
    st_tui_model *m = running(1, 1);
    for (int i = 0; i < ST_TUI_EVENTS + 5; i++) {
        char e[32];
        snprintf(e, sizeof(e), "event %d\tend", i);
        st_tui_model_add_event(m, e);
    }
    assert_int_equal(m->n_events, ST_TUI_EVENTS);
    st_tui_screen s;
    m->view = ST_TUI_VIEW_EVENTS;
    draw(m, &s, 80, 24);
    char last[32];
    snprintf(last, sizeof(last), "event %d end", ST_TUI_EVENTS + 4);
    int y = find_row(&s, 3, last);
    assert_true(y > 0);
    assert_int_equal(find_row(&s, 3, "event 0 "), -1);
    assert_true(find_row(&s, 3, "event 5 ") < 0 || find_row(&s, 3, "event 5 ") < y);
    st_tui_screen_fini(&s);
    free(m);
}

/* An event wider than the screen goes on over the next rows, indented: its end is on screen. */
static void test_tui_view_events_wrap(void **state)
{
    (void)state;
    st_tui_model *m = running(1, 1);
    char e[200];
    memset(e, 'a', 70);
    snprintf(e + 70, sizeof(e) - 70, " --token 0123456789abcdef0123456789abcdef TAIL");
    st_tui_model_add_event(m, e);
    m->view = ST_TUI_VIEW_EVENTS;
    st_tui_screen s;
    draw(m, &s, 80, 24);
    int y = find_row(&s, 3, "aaaaaaaaaa");
    assert_true(y > 0);
    assert_int_equal((int)strlen(row(&s, y)), 80);
    const char *next = row(&s, y + 1);
    assert_true(next[0] == ' ' && next[1] == ' ');
    assert_non_null(strstr(next, "0123456789abcdef TAIL"));
    /* The earlier events are above it. */
    assert_true(find_row(&s, 3, "registered") < y);
    st_tui_screen_fini(&s);
    free(m);
}

/* Every panel keeps its title at 80x24, and no text runs past the edge (the renderer clips). */
static void test_tui_view_small(void **state)
{
    (void)state;
    st_tui_model *m = running(100, 1000);
    m->n_bins = 1;
    m->bins[0] = (st_tui_bin){1, 2, 5};
    st_tui_screen s;
    draw(m, &s, 80, 24);
    const char *titles[] = {"requests/s", "latency ms", "errors/s", "latency distribution",
                            "agents:",    "events",     "q quit"};
    for (size_t i = 0; i < sizeof(titles) / sizeof(titles[0]); i++) {
        assert_true(find_row(&s, 0, titles[i]) >= 0);
    }
    assert_true(find_row(&s, 0, "agent-1") > 0);
    assert_int_equal(find_row(&s, 0, "q quit"), 23);
    st_tui_screen_fini(&s);
    draw(m, &s, 30, 8);
    assert_non_null(strstr(row(&s, 0), "terminal too small"));
    st_tui_screen_fini(&s);
    draw(m, &s, 1, 1);
    st_tui_screen_fini(&s);
    assert_int_equal(st_tui_screen_init(&s, 0, 5), ST_EINVAL);
    free(m);
}

static void test_tui_view_waiting(void **state)
{
    (void)state;
    st_tui_model *m = running(0, 0);
    snprintf(m->state, sizeof(m->state), "waiting for agents");
    m->agents_alive = 1;
    snprintf(m->launch, sizeof(m->launch), "ecs: 2 of 2 tasks started: 1 provisioning");
    st_tui_screen s;
    draw(m, &s, 80, 24);
    assert_true(find_row(&s, 3, "launch") > 0);
    assert_true(find_row(&s, 3, "waiting for agents: 1 of 2 agents registered") > 0);
    assert_true(find_row(&s, 3, "ecs: 2 of 2 tasks started") > 0);
    assert_int_equal(find_row(&s, 3, "requests/s"), -1);
    st_tui_screen_fini(&s);
    free(m);
}

static void test_tui_view_prompt_help(void **state)
{
    (void)state;
    st_tui_model *m = running(2, 10);
    m->prompting = true;
    snprintf(m->prompt, sizeof(m->prompt), "250");
    st_tui_screen s;
    draw(m, &s, 80, 24);
    assert_non_null(strstr(row(&s, 23), "rate (rps): 250_"));
    st_tui_screen_fini(&s);
    m->prompting = false;
    m->help = true;
    draw(m, &s, 80, 24);
    assert_true(find_row(&s, 0, "type an exact rate") > 0);
    assert_true(find_row(&s, 0, "pause (rate 0) / resume") > 0);
    st_tui_screen_fini(&s);
    m->help = false;
    m->read_only = true;
    draw(m, &s, 80, 24);
    assert_null(strstr(row(&s, 23), "+/- rate"));
    assert_non_null(strstr(row(&s, 0), "read-only"));
    st_tui_screen_fini(&s);
    free(m);
}

/* Names from the network cannot put control bytes on the terminal. */
static void test_tui_view_hostile_names(void **state)
{
    (void)state;
    st_tui_model *m = running(2, 10);
    snprintf(m->agents[0].name, sizeof(m->agents[0].name), "x\x1b[2Jy\xc3\xa9");
    st_tui_screen s;
    draw(m, &s, 120, 40);
    int y = find_row(&s, 3, "x?[2Jy??");
    assert_true(y > 0);
    for (int x = 0; x < s.w; x++) {
        assert_true(at(&s, x, y) >= 0x20);
    }
    st_tui_screen_fini(&s);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tui_view_header),
        cmocka_unit_test(test_tui_view_chart_braille),
        cmocka_unit_test(test_tui_view_chart_step),
        cmocka_unit_test(test_tui_view_latency_toggle),
        cmocka_unit_test(test_tui_view_errors),
        cmocka_unit_test(test_tui_view_errors_by_class),
        cmocka_unit_test(test_tui_view_bins),
        cmocka_unit_test(test_tui_view_distribution),
        cmocka_unit_test(test_tui_view_agents_lost),
        cmocka_unit_test(test_tui_view_many_agents),
        cmocka_unit_test(test_tui_view_agents_p99),
        cmocka_unit_test(test_tui_view_name_slots),
        cmocka_unit_test(test_tui_view_names),
        cmocka_unit_test(test_tui_view_names_scroll),
        cmocka_unit_test(test_tui_view_names_none),
        cmocka_unit_test(test_tui_view_events),
        cmocka_unit_test(test_tui_view_events_wrap),
        cmocka_unit_test(test_tui_view_small),
        cmocka_unit_test(test_tui_view_waiting),
        cmocka_unit_test(test_tui_view_prompt_help),
        cmocka_unit_test(test_tui_view_hostile_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
