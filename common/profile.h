/*
 * profile.h - a rate profile: the requested load as a function of time, in stages.
 *
 * A profile is a sequence of linear stages, each lasting duration_s and going from from_rps to
 * to_rps (a hold has from == to, a ramp differs, a step is a hold at a new level). N(t), the
 * integral of the rate from 0 to t, is the number of requests due by t: the open-loop schedule sends
 * global request q (q = 0, 1, 2, ...) at the instant N(t) reaches q, so request 0 goes at t = 0 when
 * the first stage starts above zero. This gives exact counts at fractional rates and lets any number
 * of threads and agents share one schedule (see split.h).
 *
 * Who calls it: the plan parser builds profiles; the agent's scheduler reads them; the coordinator
 * computes targets and re-plans from them. A profile is immutable after st_profile_init except through
 * st_profile_change_rate, and may then be read from several threads at once.
 */
#ifndef ST_PROFILE_H
#define ST_PROFILE_H

#include <stddef.h>

#define ST_PROFILE_MAX_STAGES 1024
#define ST_PROFILE_MAX_RPS    1e8
#define ST_PROFILE_MAX_S      (30.0 * 24 * 3600)

typedef struct st_stage {
    double duration_s;
    double from_rps;
    double to_rps;
} st_stage;

typedef struct st_profile {
    st_stage *stages; /* owned */
    double *t_start;  /* owned: start time of each stage */
    double *n_start;  /* owned: N(t) at the start of each stage */
    size_t n_stages;
    double total_s; /* sum of durations */
    double total_n; /* N(total_s): requests in the whole profile */
} st_profile;

/* Copies n stages (1 <= n <= ST_PROFILE_MAX_STAGES). Each duration must be finite and > 0, each
 * rate finite and in [0, ST_PROFILE_MAX_RPS], the total duration <= ST_PROFILE_MAX_S.
 * Returns 0, ST_EINVAL (when bad_stage is not NULL, *bad_stage is the index of the offending
 * stage) or ST_ENOMEM. On error p is left zeroed and needs no fini. */
int st_profile_init(st_profile *p, const st_stage *stages, size_t n, size_t *bad_stage);
void st_profile_fini(st_profile *p);

/* Deep copy. Returns 0 or ST_ENOMEM. */
int st_profile_copy(st_profile *dst, const st_profile *src);

/* Rate at time t (0 outside [0, total_s)). */
double st_profile_rate_at(const st_profile *p, double t_s);

/* N(t): requests due in [0, t). Clamped to [0, total_n]. */
double st_profile_integral(const st_profile *p, double t_s);

/* The earliest t with N(t) >= n, or a negative value when n >= total_n (the request would fall due
 * at or after the end of the profile, so it is never sent). */
double st_profile_time_of(const st_profile *p, double n);

/* Replaces the profile from at_s on by a hold at rate_rps until the original end (a live rate
 * change). at_s must be in [0, total_s); N(t) is unchanged before at_s. Returns 0, ST_EINVAL or
 * ST_ENOMEM (p unchanged on error). Not thread-safe: readers must be stopped or own a copy. */
int st_profile_change_rate(st_profile *p, double at_s, double rate_rps);

#endif
