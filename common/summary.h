/*
 * summary.h - the end-of-run summary and the per-second progress line, shared by the agent and
 * the coordinator so that both speak the same numbers under the same names.
 *
 * The JSON keys are a contract other tools rely on (README "Outputs"): requests.{total, ok,
 * failed, sent, late, dropped}, rate.{target_rps, achieved_rps}, duration_s, latency_ms.{min,
 * mean, p50, p90, p99, p999, max} (from the intended send instant), latency_uncorrected_ms (same
 * keys, from the actual send), errors.{http_4xx, http_5xx, connect, timeout, other},
 * bytes.{in, out}. achieved_rps is completed requests / duration_s.
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
} st_summary;

/* Returns a new JSON object, or NULL when out of memory. */
cJSON *st_summary_json(const st_summary *s);

/* Prints the summary for people. */
void st_summary_print(FILE *f, const st_summary *s);

/* Formats one progress line (no newline): elapsed second, target and achieved rates, ok,
 * errors, p50/p99 of that second; agents >= 0 adds the number of agents alive. Returns the
 * length written (truncated to len - 1). */
int st_progress_format(char *buf, size_t len, uint32_t second, double target_rps,
                       const st_stats *sec, int agents);

/* Latency in milliseconds with microsecond resolution, as the JSON carries it. */
double st_us_to_ms(uint64_t us);

#endif
