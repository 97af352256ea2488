/*
 * summary.h - the end-of-run summary and the per-second progress line, shared by the agent and
 * the coordinator so that both speak the same numbers under the same names.
 *
 * The JSON keys are a contract other tools rely on (README "Outputs"): requests.{total, ok,
 * failed, sent, late, dropped}, rate.{target_rps, achieved_rps}, duration_s, latency_ms.{min,
 * mean, p50, p90, p99, p999, max} (from the intended send instant), latency_uncorrected_ms (same
 * keys, from the actual send), errors.{http_4xx, http_5xx, connect, timeout, other},
 * bytes.{in, out}. achieved_rps is completed requests / duration_s. A latency block of no
 * responses at all (every request failed without an answer, or none completed) has null members,
 * never zeros. With timeout_ms set, latency_with_timeouts_ms (same keys) follows
 * latency_uncorrected_ms: the corrected latency with every timed-out request counted at
 * timeout_ms, a lower bound of what it would have taken.
 *
 * Thread-safe (pure functions of their inputs). Ownership: st_summary_json returns a new cJSON
 * tree the caller frees with cJSON_Delete.
 */
#ifndef ST_SUMMARY_H
#define ST_SUMMARY_H

#include "stats.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>

typedef struct st_summary {
    const st_stats *total;
    double duration_s;      /* the measured window (the profile, or until the stop) */
    double target_requests; /* requests the profile asked for in that window; 0 in closed loop */
    bool closed_loop;
    uint32_t timeout_ms; /* > 0: the requests' timeout, for latency_with_timeouts_ms */
} st_summary;

/* Returns a new JSON object, or NULL when out of memory. */
cJSON *st_summary_json(const st_summary *s);

/* Prints the summary for people. */
void st_summary_print(FILE *f, const st_summary *s);

/* Formats one progress line (no newline): elapsed second, target and achieved rates, ok,
 * errors, p50/p99 of that second ("no responses" in their place when nothing answered in it);
 * agents >= 0 adds the number of agents alive. Returns the length written (truncated to
 * len - 1). */
int st_progress_format(char *buf, size_t len, uint32_t second, double target_rps,
                       const st_stats *sec, int agents);

/* Latency in milliseconds with microsecond resolution, as the JSON carries it. */
double st_us_to_ms(uint64_t us);

/* A new histogram: h plus n values of value_us (timed-out requests counted at the timeout).
 * Returns 0 with *out (the caller frees it with st_hist_free) or ST_ENOMEM. */
int st_hist_with_values(st_hist **out, const st_hist *h, uint64_t value_us, uint64_t n);

#endif
