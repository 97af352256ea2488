#include "merge.h"
#include "core.h"
#include "error.h"
#include "log.h"
#include "names.h"
#include "protocol.h"
#include "wire.h"

#include <math.h>
#include <string.h>

int st_merge_init(st_merge *m, const st_plan *p)
{
    memset(m, 0, sizeof(*m));
    if (st_names_init(&m->names, p) || st_window_new(&m->win, 0, ST_WINDOW_TOTAL)) {
        st_merge_fini(m);
        return ST_ENOMEM;
    }
    if (m->names.n > ST_NAMES_KEPT_MAX) {
        st_warn("the plan has %zu request names: results per name are kept for plans of at most "
                "%d, this run's are for the whole only",
                m->names.n, ST_NAMES_KEPT_MAX);
    }
    return 0;
}

void st_merge_fini(st_merge *m)
{
    st_window_free(m->win);
    m->win = NULL;
    st_names_fini(&m->names);
}

void st_merge_start(st_coord *c)
{
    st_window_set_timing(c->merge.win, c->t0, c->cfg.grace_ns);
}

/* The agent's p99 of record r's second, when it had responses: read from the sparse histograms
 * in place (one pass over their buckets, nothing merged or allocated), so that the agents' table
 * costs admission a walk over buckets it decodes anyway. Records come in sequence order, so
 * the latest with responses wins. */
static void agent_p99(st_coord_agent *a, const Stampede__SecondRecord *r)
{
    const Stampede__Histogram *h = r->latency, *raw = r->latency_uncorrected;
    if (!h || !raw || h->n_count == 0) {
        return;
    }
    a->has_p99 = true;
    a->p99_second = r->second;
    a->p99_us = st_hist_sparse_percentile(h->index_gap, h->count, h->n_count, true, h->min_us,
                                          h->max_us, 99);
    a->p99_raw_us = st_hist_sparse_percentile(raw->index_gap, raw->count, raw->n_count, true,
                                              raw->min_us, raw->max_us, 99);
}

void st_merge_records(st_coord *c, st_coord_agent *a, const Stampede__AgentUpdate *u,
                      const unsigned char *valid)
{
    uint32_t next_final = st_window_next(c->merge.win);
    size_t n_names = st_names_kept(&c->merge.names);
    for (size_t i = 0; i < u->n_records; i++) {
        const Stampede__SecondRecord *r = u->records[i];
        if (!r || r->seq <= a->acked_seq) {
            c->duplicates++;
            continue;
        }
        if (r->seq != a->acked_seq + 1) {
            /* A gap: wait for the agent to send the missing one first (it sends oldest first). */
            break;
        }
        a->acked_seq = r->seq;
        if (!valid[i]) {
            c->malformed++;
            st_warn("agent %u sent a malformed record (seq %llu): dropped", a->id,
                    (unsigned long long)r->seq);
            continue;
        }
        if (st_wire_record_check_names(r, n_names)) {
            c->malformed++;
            st_warn("agent %u sent a record (seq %llu) whose per-name parts do not fit the plan "
                    "(%zu request names kept apart): dropped",
                    a->id, (unsigned long long)r->seq, n_names);
            continue;
        }
        if (r->second >= next_final && r->second - next_final > ST_PROTO_SECOND_HORIZON) {
            /* No second of this run: dropped before it reaches the total or the agent's counts,
             * as the malformed count says. */
            c->malformed++;
            st_warn("agent %u sent a record for second %u, far beyond the run: dropped", a->id,
                    r->second);
            continue;
        }
        const Stampede__Counts *k = r->counts;
        if (a->lost && k->sent > 0 && c->t0 && a->assigned_until_ns != UINT64_MAX &&
            (uint64_t)r->second * ST_NS_PER_S >=
                (a->assigned_until_ns > c->t0 ? a->assigned_until_ns - c->t0 : 0)) {
            /* Sends in a second wholly after its share moved to others: in no plan. */
            c->malformed++;
            st_warn("agent %u, lost, sent requests in second %u, after its share had moved: its "
                    "record is dropped",
                    a->id, r->second);
            continue;
        }
        a->totals.sent += k->sent;
        a->totals.ok += k->ok;
        a->totals.http_4xx += k->http_4xx;
        a->totals.http_5xx += k->http_5xx;
        a->totals.err_connect += k->err_connect;
        a->totals.err_timeout += k->err_timeout;
        a->totals.err_other += k->err_other;
        a->totals.err_local += k->err_local;
        a->totals.err_tls += k->err_tls;
        a->totals.err_cert += k->err_cert;
        if ((int64_t)r->second > a->max_second) {
            a->max_second = r->second;
        }
        if (c->cfg.agent_p99) {
            agent_p99(a, r);
        }
        /* Checked once above, merged once: into its second, which joins the total when it is
         * handed out, or straight into the total when its second is gone already. */
        st_stats *dst;
        bool late;
        if (st_window_at(c->merge.win, r->second, &dst, &late) == 0) {
            if (st_wire_record_apply(r, dst)) {
                st_error("out of memory: agent %u's record for second %u counts in the run's "
                         "figures but not in its per-name figures",
                         a->id, r->second);
            }
            if (late && r->second >= st_window_next(c->merge.win)) {
                /* Not late: its second could not be stored. It is in the total, not in its
                 * second, and the run must say so (st_merge_unstored, the report, the exit). */
                st_error("out of memory: agent %u's record for second %u counts in the run's total "
                         "but is missing from its second",
                         a->id, r->second);
            }
        }
    }
}

/* The highest second every agent still waited for has reported: agents with a share that were
 * told the start and have not completed. INT64_MAX when none is waited for. */
static int64_t reported_through(const st_coord *c)
{
    int64_t through = INT64_MAX;
    for (size_t i = 0; i < c->n_agents; i++) {
        const st_coord_agent *a = c->agents[i];
        if (st_core_active(a) && a->started && !st_core_complete(a) && a->max_second < through) {
            through = a->max_second;
        }
    }
    return through;
}

/* Second k is handed out: every agent that owed its record and has not sent it is noted. */
static void owed(st_coord *c, uint32_t k)
{
    uint64_t begins = c->t0 + (uint64_t)k * ST_NS_PER_S;
    for (size_t i = 0; i < c->n_agents; i++) {
        st_coord_agent *a = c->agents[i];
        if (a->started && a->counted && begins < a->assigned_until_ns &&
            a->max_second < (int64_t)k && !st_core_complete(a) && a->first_owed_second < 0) {
            a->first_owed_second = k;
        }
    }
}

size_t st_merge_take_final(st_coord *c, uint64_t now, st_merge_second *out, size_t max)
{
    size_t n = 0;
    if (!c->t0) {
        return 0;
    }
    st_window *w = c->merge.win;
    bool ended = c->state == ST_COORD_DONE || c->state == ST_COORD_FAILED;
    int64_t through = reported_through(c);
    uint32_t end_k = (uint32_t)ceil(st_coord_duration_s(c) - 1e-9);
    while (n < max) {
        uint32_t k = st_window_next(w);
        if (k >= end_k && !st_window_pending(w)) {
            break;
        }
        /* After the coordinator's own stall, only the agents' reports make a second final. */
        bool final = now < c->hold_until_ns
                         ? (int64_t)k <= through && now >= c->t0 + (k + 1ULL) * ST_NS_PER_S
                         : st_window_final(w, through, now);
        if (!ended && !final) {
            break;
        }
        owed(c, k);
        if (st_stats_init(&out[n].s)) {
            break;
        }
        st_window_pop(w, &out[n].s);
        if (k >= end_k && st_counts_done(&out[n].s.c) == 0 && out[n].s.c.sent == 0) {
            st_stats_fini(&out[n].s);
            continue;
        }
        out[n].target_rps = c->plan->closed_loop
                                ? 0
                                : st_profile_integral(&c->profile, k + 1.0) -
                                      st_profile_integral(&c->profile, (double)k);
        out[n].agents = st_core_alive(c);
        n++;
    }
    return n;
}

const st_stats *st_merge_sum(st_coord *c)
{
    return st_window_sum(c->merge.win);
}

uint64_t st_merge_late(const st_coord *c)
{
    return st_window_late(c->merge.win);
}

uint64_t st_merge_unstored(const st_coord *c)
{
    return st_window_unstored(c->merge.win);
}
