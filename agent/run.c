#include "run.h"
#include "collect.h"
#include "error.h"
#include "clock.h"
#include "protocol.h"
#include "worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

struct st_run {
    st_collector *col;
    st_worker **workers;
    int n_workers;
};

/* How long in-flight requests may still complete after the end of the profile: the plan's
 * request timeout, within the protocol's drain bound (the coordinator waits that long). */
static uint64_t drain_ns(const st_plan *plan)
{
    uint64_t ms = plan->timeout_ms < ST_PROTO_DRAIN_MAX_MS ? (uint64_t)plan->timeout_ms
                                                           : ST_PROTO_DRAIN_MAX_MS;
    return ms * ST_NS_PER_MS;
}

int st_run_reserve_fds(const st_plan *plan, char *err, size_t err_len)
{
    uint64_t need = (uint64_t)(plan->connections > 0 ? plan->connections : 0) +
                    (uint64_t)(plan->threads > 0 ? plan->threads : 1) * ST_RUN_FDS_PER_THREAD +
                    ST_RUN_FDS_BASE;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return st_errf(err, err_len, ST_ESYSTEM, "cannot read the open-files limit: %s",
                       strerror(errno));
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need) {
        return 0;
    }
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
        return st_errf(err, err_len, ST_EINVAL,
                       "--connections %d needs about %llu open files, and this process may open "
                       "at most %llu (ulimit -Hn): lower --connections or raise the hard limit",
                       plan->connections, (unsigned long long)need,
                       (unsigned long long)rl.rlim_max);
    }
    rl.rlim_cur = need;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return st_errf(err, err_len, ST_ESYSTEM, "cannot raise the open-files limit to %llu: %s",
                       (unsigned long long)need, strerror(errno));
    }
    return 0;
}

int st_run_start(st_run **out, const st_run_cfg *cfg, char *err, size_t err_len)
{
    const st_plan *plan = cfg->plan;
    int n = plan->threads;
    if (n < 1 || plan->connections < n) {
        snprintf(err, err_len, "threads (%d) must be from 1 to the number of connections (%d)", n,
                 plan->connections);
        return ST_EINVAL;
    }
    int frc = st_run_reserve_fds(plan, err, err_len);
    if (frc) {
        return frc;
    }
    st_run *r = calloc(1, sizeof(*r));
    if (!r) {
        return ST_ENOMEM;
    }
    int rc;
    st_slice whole = {0};
    r->workers = calloc((size_t)n, sizeof(*r->workers));
    if (!r->workers) {
        rc = ST_ENOMEM;
        goto fail;
    }
    /* A run joined after its start reports from the current second on. */
    uint64_t now = st_clock_mono_ns();
    uint32_t first_second = now > cfg->t0_ns ? (uint32_t)((now - cfg->t0_ns) / ST_NS_PER_S) : 0;
    if ((rc = st_collector_new(&r->col, n, first_second))) {
        goto fail;
    }
    const st_slice *agent = cfg->slice;
    if (!agent) {
        if ((rc = st_slice_init_all(&whole))) {
            goto fail;
        }
        agent = &whole;
    }
    for (int i = 0; i < n; i++) {
        st_slice mine;
        if ((rc = st_slice_subdivide(agent, (uint64_t)n, (uint64_t)i, &mine))) {
            goto fail;
        }
        st_worker_cfg wc = {
            .index = i,
            .plan = plan,
            .engine = cfg->engine,
            .connections = plan->connections / n + (i < plan->connections % n ? 1 : 0),
            .slice = &mine,
            .profile = cfg->profile,
            .from_q = cfg->from_q,
            .t0_ns = cfg->t0_ns,
            .first_second = first_second,
            .drain_ns = drain_ns(plan),
        };
        rc = st_worker_new(&r->workers[i], &wc, r->col, err, err_len);
        st_slice_fini(&mine);
        if (rc) {
            goto fail;
        }
        r->n_workers = i + 1;
    }
    for (int i = 0; i < n; i++) {
        if ((rc = st_worker_start(r->workers[i]))) {
            snprintf(err, err_len, "cannot start worker thread %d", i);
            goto fail;
        }
    }
    st_slice_fini(&whole);
    *out = r;
    return 0;
fail:
    st_slice_fini(&whole);
    st_run_free(r);
    return rc;
}

int st_run_replan(st_run *r, const st_profile *profile, const st_slice *slice, uint64_t from_q)
{
    int n = r->n_workers;
    for (int i = 0; i < n; i++) {
        st_slice mine;
        int rc = 0;
        if (slice && (rc = st_slice_subdivide(slice, (uint64_t)n, (uint64_t)i, &mine))) {
            return rc;
        }
        rc = st_worker_replan(r->workers[i], profile, slice ? &mine : NULL, from_q);
        if (slice) {
            st_slice_fini(&mine);
        }
        if (rc) {
            return rc;
        }
    }
    return 0;
}

int st_run_realised_start(st_run *r, uint64_t t0_ns, uint64_t *start_ns)
{
    int found = 0;
    uint64_t best = 0;
    for (int i = 0; i < r->n_workers; i++) {
        uint64_t late;
        if (st_worker_first_late(r->workers[i], &late) == 0 && (!found || late < best)) {
            best = late;
            found = 1;
        }
    }
    if (!found) {
        return ST_EAGAIN;
    }
    *start_ns = t0_ns + best;
    return 0;
}

int st_run_next(st_run *r, st_stats *out, uint64_t deadline_ns)
{
    return st_collector_next(r->col, out, deadline_ns);
}

void st_run_licence(st_run *r, uint64_t until_ns)
{
    for (int i = 0; i < r->n_workers; i++) {
        st_worker_licence(r->workers[i], until_ns);
    }
}

void st_run_stop(st_run *r)
{
    for (int i = 0; i < r->n_workers; i++) {
        st_worker_stop(r->workers[i]);
    }
}

void st_run_free(st_run *r)
{
    if (!r) {
        return;
    }
    st_run_stop(r);
    for (int i = 0; i < r->n_workers; i++) {
        st_worker_join(r->workers[i]);
        st_worker_free(r->workers[i]);
    }
    free(r->workers);
    st_collector_free(r->col);
    free(r);
}
