#include "share.h"
#include "core.h"
#include "error.h"
#include "log.h"
#include "protocol.h"
#include "split.h"

#include <math.h>
#include <stdlib.h>

int st_share_split(st_coord *c, uint64_t from_q)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_agents; i++) {
        n += st_core_active(c->agents[i]);
    }
    c->epoch++;
    if (n == 0) {
        return 0;
    }
    uint32_t *w = malloc(n * sizeof(*w));
    uint64_t **res = calloc(n, sizeof(*res));
    int rc = ST_ENOMEM;
    if (!w || !res) {
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < c->n_agents; i++) {
        if (st_core_active(c->agents[i])) {
            w[k++] = c->agents[i]->weight;
        }
    }
    uint64_t period;
    if ((rc = st_split_weights(w, n, &period, res))) {
        goto out;
    }
    c->period = period;
    k = 0;
    for (size_t i = 0; i < c->n_agents; i++) {
        st_coord_agent *a = c->agents[i];
        if (!st_core_active(a)) {
            continue;
        }
        free(a->residues);
        a->residues = res[k];
        a->n_residues = w[k];
        res[k] = NULL;
        a->from_q = from_q;
        a->share_epoch = c->epoch;
        k++;
    }
out:
    if (res) {
        for (size_t i = 0; i < n; i++) {
            free(res[i]);
        }
    }
    free(res);
    free(w);
    return rc;
}

/* The first global request due at or after coordinator instant at_ns. */
static uint64_t first_q_at(const st_coord *c, uint64_t at_ns)
{
    if (c->plan->closed_loop || at_ns <= c->t0) {
        return 0;
    }
    double n = st_profile_integral(&c->profile, (double)(at_ns - c->t0) / 1e9);
    return (uint64_t)ceil(n - 1e-9);
}

/* Every agent hears of a new split with its next update. */
uint64_t st_share_lead_ns(const st_coord *c)
{
    return ((uint64_t)c->cfg.run_heartbeat_ms + ST_PROTO_REPLAN_MARGIN_MS) * ST_NS_PER_MS;
}

void st_share_replan_ahead(st_coord *c, const char *why)
{
    uint64_t at = st_core_now(c) + st_share_lead_ns(c);
    if (c->plan->closed_loop) {
        c->epoch++;
        return;
    }
    uint64_t q = first_q_at(c, at);
    if (st_share_split(c, q) == 0) {
        st_info("re-planned (%s): epoch %u, %zu agents share the load from request %llu", why,
                c->epoch, (size_t)st_core_alive(c), (unsigned long long)q);
    }
}

/* The instant a change made now takes effect; 0 when it cannot be made (ST_ESTATE). */
static uint64_t change_at(const st_coord *c)
{
    uint64_t at = st_core_now(c) + st_share_lead_ns(c);
    if (c->state == ST_COORD_RUNNING && at < c->t0) {
        /* A start lead longer than the re-plan lead: nothing was sent yet, so the new rate holds
         * from the start (at - t0 would wrap around and be refused). */
        at = c->t0;
    }
    if (c->state != ST_COORD_RUNNING || c->plan->closed_loop || c->stopping || c->stop_at_ns ||
        at >= c->end_ns) {
        return 0;
    }
    return at;
}

static int change_rate_at(st_coord *c, uint64_t at, double rate_rps)
{
    int rc = st_profile_change_rate(&c->profile, (double)(at - c->t0) / 1e9, rate_rps);
    if (rc == 0) {
        uint64_t q = first_q_at(c, at);
        if ((rc = st_share_split(c, q)) == 0) {
            st_info("rate changed to %.1f rps from request %llu (epoch %u)", rate_rps,
                    (unsigned long long)q, c->epoch);
        }
    }
    return rc;
}

int st_share_change_rate(st_coord *c, double rate_rps)
{
    uint64_t at = change_at(c);
    return at ? change_rate_at(c, at, rate_rps) : ST_ESTATE;
}

int st_share_stop_ahead(st_coord *c, uint64_t *at_ns)
{
    uint64_t at = change_at(c);
    int rc = at ? change_rate_at(c, at, 0) : ST_ESTATE;
    if (rc == 0) {
        *at_ns = at;
    }
    return rc;
}

double st_share_rps(const st_coord *c, const st_coord_agent *a)
{
    double total_s = st_core_total_s(c);
    double avg_rps = c->plan->closed_loop || total_s <= 0 ? 0 : c->profile.total_n / total_s;
    return c->period && a->counted && !a->lost && a->n_residues
               ? avg_rps * (double)a->n_residues / (double)c->period
               : 0;
}
