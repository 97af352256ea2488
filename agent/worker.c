#include "worker.h"
#include "clock.h"
#include "error.h"
#include "log.h"
#include "names.h"
#include "profile.h"

#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { PHASE_WAIT, PHASE_RUN, PHASE_DRAIN, PHASE_DONE } phase_t;

/* The worker's timers. On the real clock the pacing timer is a timerfd and the others are libev
 * timers; on any other clock each is a deadline that st_worker_advance fires, in this order when
 * several fall on the same instant (a second closes before the sends due at its end). */
enum { T_TICK, T_PACE, T_DRAIN, N_TIMERS };
#define DISARMED UINT64_MAX

typedef struct pending {
    uint64_t due_ns;
    uint32_t req;
} pending;

struct st_worker {
    st_worker_cfg cfg;
    st_slice slice;
    bool has_slice;
    const st_profile *profile;
    const st_plan *plan;
    st_collector *col;
    struct ev_loop *loop;
    st_engine *eng;
    const st_engine_ops *ops;
    pthread_t thread;
    bool started;
    const st_clock *clock;
    bool manual;               /* not the real clock: driven by st_worker_advance */
    bool begun;                /* manual: the start has been set up */
    uint64_t due_at[N_TIMERS]; /* manual: each timer's deadline, or DISARMED */

    /* The pacing timer: a timerfd, because libev's epoll timeouts are whole milliseconds and a
     * request sent up to 1 ms after its instant would add that to every corrected latency. */
    int pace_fd;
    ev_io pace; /* next due request (open loop), the start, and the end of the profile */
    uint64_t pace_armed_ns; /* the instant the pacing timer is set for, or DISARMED */
    uint64_t pace_plan_ns;  /* the instant it was last asked to wake at (both clocks) */
    bool pace_set;          /* the timerfd was set (which clears its readiness) in this wake-up */
    ev_timer tick;  /* second boundaries */
    ev_timer drain; /* the drain bound, or an immediate finish */
    ev_async wake;  /* st_worker_stop */
    /* Open loop with a send window, on an engine that can time responses by the kernel's
     * arrival stamps: the engine's sockets are watched by io_loop, embedded in loop. Before
     * the loop sleeps, when the pacing timer wakes it within one window anyway and the engine
     * allows it, the embedding stops: responses that arrive meanwhile wake nobody and are read
     * at that wake-up, each timed by its arrival (engine.h, reads_can_wait). One wake-up per
     * window instead of one per response is most of the cost per request. */
    struct ev_loop *io_loop;
    ev_embed embed;
    ev_prepare before_sleep;
    ev_idle one_more_turn;
    atomic_bool stop_requested;
    /* Sends are allowed before this instant only (st_worker_licence; UINT64_MAX: always). */
    _Atomic uint64_t licence_ns;
    /* How late the first open-loop send left after its instant, + 1 (0: nothing sent yet). */
    _Atomic uint64_t first_late_ns_plus1;

    /* A re-plan handed over by another thread (under mu), then applied on the loop. */
    pthread_mutex_t mu;
    bool replan_pending;
    const st_profile *replan_profile;
    st_slice replan_slice;
    bool replan_has_slice;
    uint64_t replan_from_q;
    /* The re-plan waiting for the schedule to reach switch_q (loop thread only). */
    bool switch_pending;
    const st_profile *switch_profile;
    st_slice switch_slice;
    bool switch_has_slice;
    uint64_t switch_q;

    phase_t phase;
    uint64_t end_ns;
    uint64_t late_ns;
    uint64_t window_ns; /* the plan's send_window: at most one pacing wake-up per window */

    /* Open-loop schedule: element k of the slice is global request q, due at next_due_ns. */
    uint64_t k;
    uint64_t next_q;
    uint64_t next_due_ns;
    bool sched_done;
    /* Closed loop: requests started, to walk the mix. */
    uint64_t cl_sent;
    uint64_t unsent; /* local failures of sends counted in a second already closed */

    pending *backlog; /* ring */
    size_t bl_head, bl_len, bl_cap;

    st_stats cur; /* the open second */
    uint64_t second_end_ns;

    /* Plans with several request names: cur keeps a part per name (cur.n_names > 0), and
     * name_unsent is `unsent` by name. */
    st_names names;
    uint64_t *name_unsent;
};

static void finish(st_worker *w);

static inline uint64_t now_ns(const st_worker *w)
{
    return st_clock_now(w->clock);
}

static inline uint64_t to_us_rounded(uint64_t ns)
{
    return (ns + 500) / 1000;
}

static void submit_second(st_worker *w)
{
    w->cur.c.inflight = (uint64_t)w->ops->inflight(w->eng);
    int rc = st_collector_submit(w->col, w->cfg.index, w->cur.second, &w->cur);
    if (rc) {
        st_error("worker %d: second %u could not be stored in full (%s): up to %llu requests are "
                 "missing from the results (or from its per-name results)",
                 w->cfg.index, w->cur.second, st_strerror(rc),
                 (unsigned long long)st_counts_done(&w->cur.c));
    }
    st_stats_reset(&w->cur);
    w->cur.second++;
    w->second_end_ns += ST_NS_PER_S;
}

static void send_due_until(st_worker *w, uint64_t until, uint64_t now);

/* Closes every second that ended at or before upto. In an open-loop run, requests due in a
 * closing second that a late wake-up has not sent yet go out first, so that each is counted in
 * the second it is due in (late, when it is later than late_ms). */
static void close_through(st_worker *w, uint64_t upto)
{
    while (upto >= w->second_end_ns) {
        if (w->phase == PHASE_RUN && !w->plan->closed_loop && !w->sched_done &&
            w->next_due_ns < w->second_end_ns) {
            uint64_t now = now_ns(w);
            if (now < atomic_load_explicit(&w->licence_ns, memory_order_relaxed)) {
                send_due_until(w, w->second_end_ns - 1, now);
            }
        }
        submit_second(w);
    }
}

static void arm(st_worker *w, ev_timer *t, uint64_t at_ns, uint64_t now)
{
    if (w->manual) {
        w->due_at[t == &w->tick ? T_TICK : T_DRAIN] = at_ns;
        return;
    }
    ev_timer_stop(w->loop, t);
    double after = at_ns > now ? (double)(at_ns - now) / 1e9 : 0.0;
    ev_timer_set(t, after, 0.0);
    ev_timer_start(w->loop, t);
}

/* Arms the pacing timer for the monotonic instant at_ns (absolute, nanosecond precision). A timer
 * already set for that instant is left alone: each setting is a system call. */
static void arm_pace(st_worker *w, uint64_t at_ns)
{
    w->pace_plan_ns = at_ns;
    if (w->manual) {
        w->due_at[T_PACE] = at_ns;
        return;
    }
    if (at_ns == w->pace_armed_ns) {
        return;
    }
    w->pace_armed_ns = at_ns;
    w->pace_set = true;
    struct itimerspec its = {0};
    if (at_ns == 0) {
        at_ns = 1; /* zero would disarm: any past instant fires at once */
    }
    its.it_value.tv_sec = (time_t)(at_ns / ST_NS_PER_S);
    its.it_value.tv_nsec = (long)(at_ns % ST_NS_PER_S);
    timerfd_settime(w->pace_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void disarm_pace(st_worker *w)
{
    if (w->manual) {
        w->due_at[T_PACE] = DISARMED;
        return;
    }
    w->pace_armed_ns = DISARMED;
    w->pace_set = true;
    struct itimerspec its = {0};
    timerfd_settime(w->pace_fd, 0, &its, NULL);
}

static void set_end(st_worker *w)
{
    double total_s = w->plan->closed_loop ? w->plan->duration_s : w->profile->total_s;
    w->end_ns = w->cfg.t0_ns + (uint64_t)(total_s * 1e9 + 0.5);
}

/* Takes the new share: the slice's first element at or after from_q is next. */
static void switch_to(st_worker *w, const st_profile *profile, st_slice *slice, bool has_slice,
                      uint64_t from_q)
{
    st_slice_fini(&w->slice);
    w->slice = *slice;
    memset(slice, 0, sizeof(*slice));
    w->has_slice = has_slice;
    if (profile) {
        w->profile = profile;
    }
    set_end(w);
    w->sched_done = !has_slice;
    if (has_slice) {
        w->k = st_slice_first_at_or_after(&w->slice, from_q);
    }
}

/* Computes the due instant of slice element w->k, or marks the schedule done. A pending re-plan
 * takes over once the schedule reaches its first request. */
static void schedule_next(st_worker *w)
{
    for (;;) {
        if (!w->sched_done) {
            w->next_q = st_slice_global(&w->slice, w->k);
        }
        if (w->switch_pending && (w->sched_done || w->next_q >= w->switch_q)) {
            w->switch_pending = false;
            switch_to(w, w->switch_profile, &w->switch_slice, w->switch_has_slice, w->switch_q);
            continue;
        }
        break;
    }
    if (w->sched_done) {
        return;
    }
    double t = st_profile_time_of(w->profile, (double)w->next_q);
    if (t < 0) {
        w->sched_done = true;
        return;
    }
    w->next_due_ns = w->cfg.t0_ns + (uint64_t)(t * 1e9 + 0.5);
}

static uint32_t mix_pick(const st_plan *p, uint64_t n)
{
    return p->mix[n % p->mix_len];
}

/* The name index of request req when the plan keeps results by name, else -1. */
static long name_of(const st_worker *w, uint32_t req)
{
    return w->cur.n_names && req < w->names.n_requests ? (long)w->names.of_request[req] : -1;
}

/* Request req was due and will never be sent. */
static void drop(st_worker *w, uint32_t req)
{
    w->cur.c.dropped++;
    long n = name_of(w, req);
    if (n >= 0) {
        w->cur.names[n].c.dropped++;
    }
}

static void do_send(st_worker *w, uint32_t req, uint64_t due_ns, uint64_t now)
{
    if (w->ops->send(w->eng, req, due_ns) != 0) {
        /* Only when the engine has no slot, which callers checked; count it rather than lose it. */
        drop(w, req);
        return;
    }
    long n = name_of(w, req);
    /* By name, a local failure counted in a closed second comes off its own name's next send. */
    uint64_t *unsent = n >= 0 ? &w->name_unsent[n] : &w->unsent;
    if (*unsent > 0) {
        (*unsent)--;
        if (n >= 0) {
            w->unsent--;
        }
    } else {
        w->cur.c.sent++;
        if (n >= 0) {
            w->cur.names[n].c.sent++;
        }
    }
    if (due_ns && atomic_load_explicit(&w->first_late_ns_plus1, memory_order_relaxed) == 0) {
        atomic_store(&w->first_late_ns_plus1, (now > due_ns ? now - due_ns : 0) + 1);
    }
    if (due_ns && now > due_ns + w->late_ns) {
        w->cur.c.late++;
        if (n >= 0) {
            w->cur.names[n].c.late++;
        }
    }
}

static void backlog_push(st_worker *w, uint64_t due_ns, uint32_t req)
{
    if (w->bl_len == w->bl_cap) {
        if (w->bl_cap >= ST_WORKER_MAX_BACKLOG) {
            drop(w, req);
            return;
        }
        size_t ncap = w->bl_cap ? w->bl_cap * 2 : 1024;
        pending *nb = malloc(ncap * sizeof(*nb));
        if (!nb) {
            drop(w, req);
            return;
        }
        for (size_t i = 0; i < w->bl_len; i++) {
            nb[i] = w->backlog[(w->bl_head + i) % w->bl_cap];
        }
        free(w->backlog);
        w->backlog = nb;
        w->bl_cap = ncap;
        w->bl_head = 0;
    }
    w->backlog[(w->bl_head + w->bl_len) % w->bl_cap] = (pending){due_ns, req};
    w->bl_len++;
}

/* Sends waiting requests, oldest first, while connections are free. */
static void backlog_drain(st_worker *w, uint64_t now)
{
    while (w->bl_len > 0 && w->ops->free_slots(w->eng) > 0) {
        pending p = w->backlog[w->bl_head];
        w->bl_head = (w->bl_head + 1) % w->bl_cap;
        w->bl_len--;
        do_send(w, p.req, p.due_ns, now);
    }
}

static void closed_loop_fill(st_worker *w, uint64_t now)
{
    while (w->ops->free_slots(w->eng) > 0) {
        do_send(w, mix_pick(w->plan, w->cl_sent++), 0, now);
    }
}

static void begin_drain(st_worker *w)
{
    if (w->phase == PHASE_DRAIN || w->phase == PHASE_DONE) {
        return;
    }
    w->phase = PHASE_DRAIN;
    disarm_pace(w);
    /* Requests still waiting for a connection at the end were never sent. */
    for (size_t i = 0; i < w->bl_len; i++) {
        drop(w, w->backlog[(w->bl_head + i) % w->bl_cap].req);
    }
    w->bl_len = 0;
    uint64_t now = now_ns(w);
    close_through(w, now);
    arm(w, &w->drain, w->ops->inflight(w->eng) > 0 ? now + w->cfg.drain_ns : now, now);
}

/* Whether the worker may send at now. Past its licence it sends nothing more: the requests due
 * before the licence ended and not sent (the backlog, and the schedule it had no chance to run,
 * e.g. after the process was paused) count as dropped, the rest of the schedule is no longer its
 * own, and the worker winds down as at the end. */
static bool licensed(st_worker *w, uint64_t now)
{
    uint64_t until = atomic_load_explicit(&w->licence_ns, memory_order_relaxed);
    if (now < until) {
        return true;
    }
    if (w->phase != PHASE_RUN) {
        return false;
    }
    uint64_t missed = w->bl_len;
    if (!w->plan->closed_loop) {
        while (!w->sched_done && w->next_due_ns < until) {
            missed++;
            drop(w, mix_pick(w->plan, w->next_q)); /* begin_drain counts the backlog */
            w->k++;
            schedule_next(w);
        }
    }
    st_warn("worker %d: no acknowledged exchange with the coordinator in time: stopped sending "
            "(%llu requests due before then dropped)",
            w->cfg.index, (unsigned long long)missed);
    begin_drain(w);
    return false;
}

/* Counts result r (other than a local failure) into c, lat and lat_raw. */
static void count_result(st_counts *c, st_hist *lat, st_hist *lat_raw, uint64_t intended,
                         const st_result *r)
{
    switch (r->kind) {
    case ST_RES_HTTP:
        if (r->status >= 200 && r->status < 400) {
            c->ok++;
        } else if (r->status >= 400 && r->status < 500) {
            c->http_4xx++;
        } else if (r->status >= 500 && r->status < 600) {
            c->http_5xx++;
        } else {
            c->err_other++;
        }
        st_hist_record(lat, to_us_rounded(r->done_ns > intended ? r->done_ns - intended : 0));
        st_hist_record(lat_raw, to_us_rounded(r->done_ns > r->sent_ns ? r->done_ns - r->sent_ns : 0));
        break;
    case ST_RES_CONNECT:
        c->err_connect++;
        break;
    case ST_RES_TLS:
        c->err_tls++;
        break;
    case ST_RES_CERT:
        c->err_cert++;
        break;
    case ST_RES_TIMEOUT:
        c->err_timeout++;
        break;
    case ST_RES_OTHER:
    case ST_RES_ABORTED:
        c->err_other++;
        break;
    case ST_RES_LOCAL:
        c->err_local++;
        break;
    }
    c->bytes_in += r->bytes_in;
    c->bytes_out += r->bytes_out;
}

/* Sends (or queues for a connection) every request of the schedule due by until (<= now). */
static void send_due_until(st_worker *w, uint64_t until, uint64_t now)
{
    while (!w->sched_done && w->next_due_ns <= until) {
        uint32_t req = mix_pick(w->plan, w->next_q);
        if (w->bl_len == 0 && w->ops->free_slots(w->eng) > 0) {
            do_send(w, req, w->next_due_ns, now);
        } else {
            backlog_push(w, w->next_due_ns, req);
        }
        w->k++;
        schedule_next(w);
    }
}

/* Sends (or queues for a connection) every request of the schedule due by now, each counted in
 * the second it is due in: a second that ended meanwhile is closed first (close_through sends
 * what was due in it). */
static void send_due(st_worker *w, uint64_t now)
{
    close_through(w, now);
    send_due_until(w, now, now);
}

/* When the pacing timer should wake next after a wake-up at now that sent everything due by now:
 * at the next request's instant, but no sooner than one send window after this wake-up, so that
 * every request due within the window goes out together (each still timed from its own instant,
 * never before it). A batch never crosses the end of a second, so that each request is sent in
 * the second it is due (the per-second records stay exact), nor the end of the profile. */
static uint64_t next_wake(const st_worker *w, uint64_t now)
{
    if (w->sched_done) {
        return w->end_ns;
    }
    uint64_t due = w->next_due_ns;
    /* The window counts from the instant this wake-up was planned for, not from when the kernel
     * delivered it, so that wake-up delays do not add up from window to window. */
    uint64_t from = w->pace_plan_ns <= now ? w->pace_plan_ns : now;
    if (w->window_ns == 0 || from + w->window_ns <= due) {
        return due;
    }
    uint64_t at = from + w->window_ns;
    uint64_t second_end =
        w->cfg.t0_ns + ((due - w->cfg.t0_ns) / ST_NS_PER_S + 1) * ST_NS_PER_S;
    if (at >= second_end) {
        at = second_end - 1 > due ? second_end - 1 : due;
    }
    if (at > w->end_ns) {
        at = w->end_ns > due ? w->end_ns : due;
    }
    return at;
}

static void on_done(void *arg, uint64_t tag, const st_result *r)
{
    st_worker *w = arg;
    if (r->done_ns >= w->second_end_ns) {
        close_through(w, r->done_ns);
    }
    uint64_t intended = tag ? tag : r->sent_ns;
    st_counts *c = &w->cur.c;
    count_result(c, w->cur.lat, w->cur.lat_raw, intended, r);
    long n = name_of(w, r->req);
    st_name_stats *part = n >= 0 ? &w->cur.names[n] : NULL;
    if (part) {
        count_result(&part->c, part->lat, part->lat_raw, intended, r);
    }
    if (r->kind == ST_RES_LOCAL) {
        /* It never left this machine: not a send, and not the target's doing. The send was
         * counted when the engine took it, almost always in this same second; else it is taken
         * off the next send's count (of the same name, by name). */
        if (part ? part->c.sent > 0 : c->sent > 0) {
            c->sent--;
            if (part) {
                part->c.sent--;
            }
        } else {
            w->unsent++;
            if (part) {
                w->name_unsent[n]++;
            }
        }
    }

    /* done_ns may be the response's arrival, read later (io_loop): what is sent now is sent now. */
    uint64_t now = w->io_loop ? now_ns(w) : r->done_ns;
    if (w->phase == PHASE_RUN && licensed(w, now)) {
        if (w->plan->closed_loop) {
            if (now < w->end_ns) {
                closed_loop_fill(w, now);
            }
        } else {
            if (w->bl_len > 0) {
                backlog_drain(w, now);
            }
            /* The loop is awake anyway: what is due already goes now, not at the next timer
             * wake-up (which then finds less or nothing to do). */
            if (!w->sched_done && w->next_due_ns <= now && w->window_ns > 0) {
                send_due(w, now);
            }
        }
    } else if (w->phase == PHASE_DRAIN && w->ops->inflight(w->eng) == 0) {
        /* Finish from the loop, not from inside the engine's callback. */
        arm(w, &w->drain, r->done_ns, r->done_ns);
    }
}

/* The pacing timer fired: the start, due sends, or the end of the profile. */
static void pace_due(st_worker *w)
{
    uint64_t now = now_ns(w);
    if (w->phase == PHASE_WAIT) {
        if (now < w->cfg.t0_ns) {
            arm_pace(w, w->cfg.t0_ns);
            return;
        }
        w->phase = PHASE_RUN;
    }
    if (w->phase != PHASE_RUN || !licensed(w, now)) {
        return;
    }
    if (w->plan->closed_loop) {
        if (now >= w->end_ns) {
            begin_drain(w);
            return;
        }
        closed_loop_fill(w, now);
        arm_pace(w, w->end_ns);
        return;
    }
    /* Everything due by now goes out (or waits for a connection), even when the wake-up came
     * after the end: a late send is counted late, never silently skipped. */
    send_due(w, now);
    if (now >= w->end_ns) {
        begin_drain(w);
        return;
    }
    arm_pace(w, next_wake(w, now));
}

/* Reads what arrived on the engine's sockets while the loop did not watch them. */
static void read_arrived(st_worker *w)
{
    if (w->io_loop) {
        ev_run(w->io_loop, EVRUN_NOWAIT);
    }
}

static void on_before_sleep(struct ev_loop *loop, ev_prepare *p, int revents)
{
    (void)revents;
    st_worker *w = p->data;
    bool unwatched = false;
    if (w->phase == PHASE_RUN && w->bl_len == 0 && w->pace_armed_ns != DISARMED &&
        w->ops->reads_can_wait(w->eng)) {
        unwatched = w->pace_armed_ns <= now_ns(w) + w->window_ns;
    }
    if (unwatched && ev_is_active(&w->embed)) {
        ev_embed_stop(loop, &w->embed);
    } else if (!unwatched && !ev_is_active(&w->embed)) {
        /* The embedded loop's watchers started since it last ran reach its epoll set in the
         * embedding's own prepare step, which this turn has passed: one more turn without
         * sleeping takes it. */
        ev_embed_start(loop, &w->embed);
        ev_idle_start(loop, &w->one_more_turn);
    }
}

static void on_one_more_turn(struct ev_loop *loop, ev_idle *i, int revents)
{
    (void)revents;
    ev_idle_stop(loop, i);
}

static void on_pace(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    st_worker *w = io->data;
    /* The one-shot timer expired (or was disarmed or re-armed since it became readable: then
     * pace_due finds nothing due). Setting it again clears its readiness, so the expiration count
     * is read only when this wake-up does not set it: one system call fewer per wake-up. */
    w->pace_armed_ns = DISARMED;
    w->pace_set = false;
    read_arrived(w); /* first: the answers that waited free connections for the sends */
    pace_due(w);
    if (!w->pace_set && w->pace_fd >= 0) {
        uint64_t expirations;
        if (read(w->pace_fd, &expirations, sizeof(expirations)) < 0) {
            /* EAGAIN: nothing had expired */
        }
    }
}

static void tick_due(st_worker *w)
{
    read_arrived(w);
    uint64_t now = now_ns(w);
    close_through(w, now);
    arm(w, &w->tick, w->second_end_ns, now);
}

static void on_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    tick_due(t->data);
}

static void drain_due(st_worker *w)
{
    if (w->ops->inflight(w->eng) > 0) {
        w->ops->cancel_all(w->eng);
    }
    finish(w);
}

static void on_drain(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    drain_due(t->data);
}

static void on_wake(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)revents;
    st_worker *w = a->data;
    pthread_mutex_lock(&w->mu);
    if (w->replan_pending) {
        w->replan_pending = false;
        st_slice_fini(&w->switch_slice);
        w->switch_pending = true;
        w->switch_profile = w->replan_profile;
        w->switch_slice = w->replan_slice;
        w->switch_has_slice = w->replan_has_slice;
        w->switch_q = w->replan_from_q;
        memset(&w->replan_slice, 0, sizeof(w->replan_slice));
    }
    pthread_mutex_unlock(&w->mu);
    if (w->switch_pending && !w->plan->closed_loop && w->phase != PHASE_DONE &&
        w->phase != PHASE_DRAIN) {
        /* Recompute what is next: the switch may apply at once. */
        schedule_next(w);
        if (w->phase == PHASE_RUN) {
            arm_pace(w, w->sched_done ? w->end_ns : w->next_due_ns);
        }
    }
    if (!atomic_load(&w->stop_requested)) {
        return;
    }
    if (w->phase == PHASE_WAIT) {
        w->phase = PHASE_RUN;
    }
    begin_drain(w);
}

static void finish(st_worker *w)
{
    if (w->phase == PHASE_DONE) {
        return;
    }
    w->phase = PHASE_DONE;
    uint64_t now = now_ns(w);
    if (now >= w->cfg.t0_ns) {
        close_through(w, now);
        /* The last, partial second. */
        submit_second(w);
    }
    st_collector_finish(w->col, w->cfg.index);
    ev_io_stop(w->loop, &w->pace);
    disarm_pace(w);
    ev_timer_stop(w->loop, &w->tick);
    ev_timer_stop(w->loop, &w->drain);
    for (int i = 0; i < N_TIMERS; i++) {
        w->due_at[i] = DISARMED;
    }
    ev_async_stop(w->loop, &w->wake);
    if (w->io_loop) {
        ev_embed_stop(w->loop, &w->embed);
        ev_prepare_stop(w->loop, &w->before_sleep);
        ev_idle_stop(w->loop, &w->one_more_turn);
    }
    w->ops->destroy(w->eng);
    w->eng = NULL;
    ev_break(w->loop, EVBREAK_ALL);
}

int st_worker_new(st_worker **out, const st_worker_cfg *cfg, st_collector *col, char *err,
                  size_t err_len)
{
    st_worker *w = calloc(1, sizeof(*w));
    if (!w) {
        return ST_ENOMEM;
    }
    w->pace_fd = -1;
    int rc;
    w->cfg = *cfg;
    w->plan = cfg->plan;
    w->ops = cfg->engine;
    w->col = col;
    w->clock = cfg->clock ? cfg->clock : &st_clock_real;
    w->manual = w->clock != &st_clock_real;
    for (int i = 0; i < N_TIMERS; i++) {
        w->due_at[i] = DISARMED;
    }
    pthread_mutex_init(&w->mu, NULL);
    atomic_init(&w->licence_ns, UINT64_MAX);
    w->late_ns = (uint64_t)cfg->plan->late_ms * ST_NS_PER_MS;
    w->window_ns = cfg->plan->send_window_s > 0 ? (uint64_t)(cfg->plan->send_window_s * 1e9 + 0.5)
                                                : 0;
    w->pace_armed_ns = DISARMED;
    w->profile = cfg->profile ? cfg->profile : &cfg->plan->profile;
    set_end(w);
    if (!cfg->plan->closed_loop && cfg->slice) {
        rc = st_slice_init(&w->slice, cfg->slice->period, cfg->slice->residues,
                           cfg->slice->n_residues, cfg->slice->stride, cfg->slice->offset);
        if (rc) {
            goto fail;
        }
        w->has_slice = true;
    }
    if ((rc = st_stats_init(&w->cur)) || (rc = st_names_init(&w->names, cfg->plan))) {
        goto fail;
    }
    if (st_names_kept(&w->names) &&
        ((rc = st_stats_names(&w->cur, w->names.n)) ||
         !(w->name_unsent = calloc(w->names.n, sizeof(*w->name_unsent))))) {
        rc = rc ? rc : ST_ENOMEM;
        goto fail;
    }
    w->cur.second = cfg->first_second;
    w->second_end_ns = cfg->t0_ns + (cfg->first_second + 1ULL) * ST_NS_PER_S;
    if (!w->manual) {
        w->pace_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (w->pace_fd < 0) {
            rc = ST_ESYSTEM;
            goto fail;
        }
    }
    w->loop = ev_loop_new(EVFLAG_AUTO);
    if (!w->loop) {
        rc = ST_ESYSTEM;
        goto fail;
    }
    if (cfg->plan->closed_loop) {
        /* Nothing is paced in a closed loop: waiting a few microseconds before each poll lets
         * one wake-up collect many responses instead of sleeping and waking once per response,
         * which is most of the cost per request on a virtual machine. Open-loop runs keep exact
         * wake-ups. */
        ev_set_io_collect_interval(w->loop, 20e-6);
    }
    if (!w->manual && !cfg->plan->closed_loop && w->window_ns > 0 && w->ops->reads_can_wait &&
        (ev_embeddable_backends() & EVBACKEND_EPOLL)) {
        w->io_loop = ev_loop_new(EVBACKEND_EPOLL);
        if (!w->io_loop) {
            rc = ST_ESYSTEM;
            goto fail;
        }
        ev_embed_init(&w->embed, NULL, w->io_loop);
        ev_prepare_init(&w->before_sleep, on_before_sleep);
        ev_idle_init(&w->one_more_turn, on_one_more_turn);
        w->before_sleep.data = w;
    }
    st_engine_cfg ecfg = {
        .requests = cfg->plan->requests,
        .n_requests = cfg->plan->n_requests,
        .connections = cfg->connections,
        .timeout_ms = cfg->plan->timeout_ms,
        .streams = cfg->plan->streams,
        .http2 = cfg->plan->http2 == 1,
        .insecure = cfg->plan->insecure == 1,
        .cacert = cfg->plan->cacert,
        .cacert_pem = cfg->plan->cacert_pem,
        .cacert_pem_len = cfg->plan->cacert_pem_len,
        .io_loop = w->io_loop,
    };
    if ((rc = w->ops->create(&w->eng, w->loop, &ecfg, on_done, w, err, err_len))) {
        goto fail;
    }
    ev_io_init(&w->pace, on_pace, w->pace_fd, EV_READ);
    ev_timer_init(&w->tick, on_tick, 0, 0);
    ev_timer_init(&w->drain, on_drain, 0, 0);
    ev_async_init(&w->wake, on_wake);
    w->pace.data = w->tick.data = w->drain.data = w->wake.data = w;
    if (!cfg->plan->closed_loop) {
        w->sched_done = !w->has_slice;
        w->k = w->has_slice ? st_slice_first_at_or_after(&w->slice, cfg->from_q) : 0;
        schedule_next(w);
    }
    *out = w;
    return 0;
fail:
    st_worker_free(w);
    return rc;
}

/* Arms the start and the first second boundary. */
static void begin(st_worker *w)
{
    uint64_t now = now_ns(w);
    w->phase = PHASE_WAIT;
    ev_async_start(w->loop, &w->wake);
    if (!w->manual) {
        ev_io_start(w->loop, &w->pace);
    }
    if (w->io_loop) {
        ev_embed_start(w->loop, &w->embed);
        ev_prepare_start(w->loop, &w->before_sleep);
    }
    arm_pace(w, w->cfg.t0_ns);
    arm(w, &w->tick, w->second_end_ns, now);
    if (atomic_load(&w->stop_requested)) {
        ev_async_send(w->loop, &w->wake);
    }
}

static void *worker_main(void *arg)
{
    st_worker *w = arg;
    /* Wake-ups as close to the due instant as the kernel can: no 50 us default slack. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    begin(w);
    ev_run(w->loop, 0);
    return NULL;
}

int st_worker_advance(st_worker *w, uint64_t *next_ns)
{
    if (!w->manual || w->started) {
        return ST_ESTATE;
    }
    if (!w->begun) {
        w->begun = true;
        begin(w);
    }
    /* What the loop holds first: a stop, a re-plan, and whatever the engine watches. */
    ev_run(w->loop, EVRUN_NOWAIT);
    while (w->phase != PHASE_DONE) {
        uint64_t now = now_ns(w);
        int first = -1;
        for (int i = 0; i < N_TIMERS; i++) {
            if (w->due_at[i] <= now && (first < 0 || w->due_at[i] < w->due_at[first])) {
                first = i;
            }
        }
        if (first < 0) {
            break;
        }
        w->due_at[first] = DISARMED;
        if (first == T_TICK) {
            tick_due(w);
        } else if (first == T_PACE) {
            pace_due(w);
        } else {
            drain_due(w);
        }
    }
    if (w->phase == PHASE_DONE) {
        return ST_ECLOSED;
    }
    uint64_t next = DISARMED;
    for (int i = 0; i < N_TIMERS; i++) {
        if (w->due_at[i] < next) {
            next = w->due_at[i];
        }
    }
    *next_ns = next;
    return 0;
}

int st_worker_start(st_worker *w)
{
    if (w->manual) {
        return ST_ESTATE;
    }
    /* Signals belong to the main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        return ST_ESYSTEM;
    }
    w->started = true;
    return 0;
}

void st_worker_stop(st_worker *w)
{
    atomic_store(&w->stop_requested, true);
    if (w->loop) {
        ev_async_send(w->loop, &w->wake);
    }
}

int st_worker_replan(st_worker *w, const st_profile *profile, const st_slice *slice,
                     uint64_t from_q)
{
    st_slice copy = {0};
    if (slice) {
        int rc = st_slice_init(&copy, slice->period, slice->residues, slice->n_residues,
                               slice->stride, slice->offset);
        if (rc) {
            return rc;
        }
    }
    pthread_mutex_lock(&w->mu);
    st_slice_fini(&w->replan_slice);
    w->replan_pending = true;
    w->replan_profile = profile;
    w->replan_slice = copy;
    w->replan_has_slice = slice != NULL;
    w->replan_from_q = from_q;
    pthread_mutex_unlock(&w->mu);
    if (w->loop) {
        ev_async_send(w->loop, &w->wake);
    }
    return 0;
}

void st_worker_licence(st_worker *w, uint64_t until_ns)
{
    atomic_store_explicit(&w->licence_ns, until_ns, memory_order_relaxed);
}

int st_worker_first_late(st_worker *w, uint64_t *late_ns)
{
    uint64_t v = atomic_load(&w->first_late_ns_plus1);
    if (v == 0) {
        return ST_EAGAIN;
    }
    *late_ns = v - 1;
    return 0;
}

void st_worker_join(st_worker *w)
{
    if (w->started) {
        pthread_join(w->thread, NULL);
        w->started = false;
    }
}

void st_worker_free(st_worker *w)
{
    if (!w) {
        return;
    }
    if (w->eng) {
        w->ops->destroy(w->eng);
    }
    if (w->loop) {
        ev_loop_destroy(w->loop);
    }
    if (w->io_loop) {
        ev_loop_destroy(w->io_loop);
    }
    if (w->pace_fd >= 0) {
        close(w->pace_fd);
    }
    st_stats_fini(&w->cur);
    st_names_fini(&w->names);
    free(w->name_unsent);
    st_slice_fini(&w->slice);
    st_slice_fini(&w->replan_slice);
    st_slice_fini(&w->switch_slice);
    pthread_mutex_destroy(&w->mu);
    free(w->backlog);
    free(w);
}
