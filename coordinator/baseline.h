/*
 * baseline.h - a run compared with an earlier one: --baseline OLD_SUMMARY.json and
 * --max-regression EXPR (stampede run).
 *
 * The baseline is the summary JSON of an earlier run: its --summary file, or the summary that
 * stampede-sink stored in DynamoDB for a run id (--baseline RUN_ID --baseline-table TABLE: the
 * caller reads it, stored_run.h, and hands it to st_baseline_new_stored). At the end of the run
 * (cmd_run.c) its figures are set beside this run's summary: the deltas of a fixed set of figures
 * (p50, p90, p99, p99.9 and max latency, error rate, achieved rate), and one verdict per
 * --max-regression limit. A failed limit fails the run like a threshold (exit 11). The summary and
 * the HTML report carry it all under "baseline" (st_baseline_json; README "Baselines").
 *
 * An expression is `METRIC + NUMBER UNIT`, spaces allowed between the parts:
 *   latency    p(50) p(90) p(99) p(99.9) mean min max, optionally after `uncorrected `; the unit
 *              `%` (relative to the baseline's value) or `us`, `ms`, `s` (absolute);
 *   ratios     error_rate, errors.CLASS, late_ratio, dropped_ratio (as in thresholds); the unit
 *              `pt` (percentage points: error_rate+0.5pt allows 1.0% -> 1.5%) or `%` (relative).
 * A limit holds when this run's value is at most the baseline's plus the allowance; a value that
 * does not exist on either side (no responses, a ratio over nothing) fails it.
 *
 * Errors (st_baseline_new): ST_EINVAL with a message that names the expression and the character
 * (`--max-regression "p(99)+10": at character 9: a unit is needed: % ...`), or the baseline file
 * and the key it lacks (`--baseline old.json: key "latency_ms.p99": missing`); ST_ENOMEM.
 *
 * Threading: one owner at a time. Ownership: st_baseline_new copies what it keeps (the file's
 * JSON, the expressions); st_baseline_free releases it (NULL is a no-op).
 */
#ifndef ST_BASELINE_H
#define ST_BASELINE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct st_baseline st_baseline;

/* Reads the baseline summary at path and parses the n expressions (n may be 0: deltas only). */
int st_baseline_new(st_baseline **out, const char *path, const char *const *exprs, size_t n,
                    char *err, size_t err_len);

/* The same with the baseline given: summary is the stored run's summary object, taken over (freed
 * with b, and on every error); run_id and table name it in messages and in the JSON. */
int st_baseline_new_stored(st_baseline **out, const char *run_id, const char *table,
                           cJSON *summary, const char *const *exprs, size_t n, char *err,
                           size_t err_len);
void st_baseline_free(st_baseline *b);

/* Compares summary (this run's summary object) with the baseline; the verdicts are kept in b.
 * Returns 0, ST_EINVAL (summary lacks a figure: err says which) or ST_ENOMEM. */
int st_baseline_evaluate(st_baseline *b, const cJSON *summary, char *err, size_t err_len);

/* Some limit failed (false before st_baseline_evaluate). */
bool st_baseline_failed(const st_baseline *b);

/* The summary's "baseline" object: {"file" (null for a stored run, which has "table" instead),
 * "run_id" (the baseline's, null when it had none),
 * "deltas": {NAME: {"baseline", "observed", "delta", "change"}}, "regressions": [{"expression",
 * "metric", "unit" ("ms" or "ratio"), "baseline", "observed", "allowed", "result"}]}, values null
 * where they do not exist ("change" is delta / baseline). NULL when out of memory or before
 * st_baseline_evaluate. */
cJSON *st_baseline_json(const st_baseline *b);

/* The verdicts as lines under the progress summary. */
void st_baseline_print(const st_baseline *b, FILE *f);

#endif
