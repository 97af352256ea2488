/*
 * share.h - the agents' shares of the schedule, and re-sharing while the run goes on.
 *
 * The load is split among the agents that carry a share (counted, not lost) by weight: the
 * agent's threads, or the plan's threads for every agent (split.h makes the shares add up exactly
 * to the profile). Each split is an epoch and applies from one global request on, so no request is
 * sent twice or skipped by a re-split. While running, a new split (an agent lost or joined, a rate
 * change) applies from the first global request due a re-plan lead ahead: every agent hears of it
 * with its next update.
 *
 * Called by the core's modules only (coord.c on start, loss and rate changes; admit.c when an
 * agent joins; report.c for the agents' rates), with the core's lock held.
 */
#ifndef ST_COORD_SHARE_H
#define ST_COORD_SHARE_H

#include "coord.h"

#include <stdint.h>

typedef struct st_coord_agent st_coord_agent;

/* Splits the schedule among the agents with a share, from global request from_q on, as a new
 * epoch (the epoch moves on even with no agent to share). On 0 every such agent holds its
 * residues. Returns 0, ST_ENOMEM or ST_EINVAL (weights split.h refuses). */
int st_share_split(st_coord *c, uint64_t from_q);

/* How far ahead of now a new split applies while running. */
uint64_t st_share_lead_ns(const st_coord *c);

/* A new split a re-plan lead ahead, while running; why goes to the log. In closed loop there is
 * nothing to split: only the epoch moves on. */
void st_share_replan_ahead(st_coord *c, const char *why);

/* The total rate becomes rate_rps from a re-plan lead ahead (or the start instant when that is
 * further ahead), held until the planned end. Returns 0, ST_ESTATE (not running, stopping, closed
 * loop, or the planned end within the lead), ST_EINVAL (rate_rps out of range) or ST_ENOMEM. */
int st_share_change_rate(st_coord *c, double rate_rps);

/* A graceful stop of an open-loop run: the rate becomes 0 from a re-plan lead ahead (as
 * st_share_change_rate), so every agent sends exactly what was due before that instant and
 * nothing after. Returns 0 with *at_ns (coordinator time) set, or what st_share_change_rate
 * returns (ST_ESTATE: the caller stops at once instead). */
int st_share_stop_ahead(st_coord *c, uint64_t *at_ns);

/* The average rate agent a carries in the current split (0 without a share). */
double st_share_rps(const st_coord *c, const st_coord_agent *a);

#endif
