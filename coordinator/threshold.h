/*
 * threshold.h - pass/fail conditions on a run's merged results ("thresholds"), parsed strictly,
 * evaluated exactly every second on the run so far and once more on the final report.
 *
 * Grammar (README "Thresholds"; spaces are allowed between the parts, nowhere else):
 *
 *   threshold  = condition [ "," "abort" [ "after" DURATION ] ]
 *   condition  = latency [ selector ] OP NUMBER [ "us" | "ms" | "s" ]   a bare number is ms
 *              | ratio [ selector ] OP NUMBER [ "%" ]                   a bare number is a fraction
 *   selector   = "{" "name" ( "=" | ":" ) NAME "}"   one request name (k6's tag filter)
 *   NAME       = the name as written up to the "}", or in double quotes (any character but '"')
 *   latency    = [ "uncorrected" ] ( "p(" PERCENTILE ")" | "mean" | "min" | "max" )
 *   ratio      = "error_rate"          failed / total
 *              | "errors." CLASS       CLASS / total: http_4xx, http_5xx, connect, timeout,
 *                                      other, local (the summary's "errors" keys)
 *              | "achieved_ratio"      achieved / target requests (not in closed loop)
 *              | "late_ratio"          late / sent
 *              | "dropped_ratio"       dropped / (sent + dropped)
 *   OP         = "<" | "<=" | ">" | ">="
 *   NUMBER     = digits [ "." digits ]   (no sign, no exponent)
 *   PERCENTILE = a NUMBER above 0 and at most 100
 *   DURATION   = as every duration of stampede: "10s", "500ms", "2m", or seconds ("10")
 *
 * "total" is requests.total of the summary (completed requests); latency is corrected (from the
 * intended send instant) unless "uncorrected" says so. A fraction written bare must be from 0 to
 * 1 (0.01), or given in percent (1%): "error_rate<5" is refused as ambiguous (achieved_ratio may
 * go above 1, so it takes any number). A threshold whose value cannot be measured (a latency
 * without responses, a ratio over nothing) fails, with no observed value.
 *
 * Per request name: "p(99){name=login}<250ms" (or k6's "{name:login}") measures the requests of
 * that name only (every request of the plan that has it), on the exact merge of their counts and
 * histograms (common/names.h). The name must be one of the plan's request names: another is
 * refused (ST_EINVAL naming it and the plan's names). In a plan with a single name the selector
 * names the whole run; a plan of more than ST_NAMES_KEPT_MAX names keeps no results per name, and
 * a selector is refused there. achieved_ratio takes no selector (the target is not split by
 * name).
 *
 * Evaluation: st_thresholds_second adds each finished second (its counts and both histograms,
 * merged bucket by bucket) to the run-so-far totals and evaluates every threshold on them; the
 * target is the sum of the seconds' target rates. A threshold with "abort" asks to stop the run
 * once its evaluations have failed without a break for at least DURATION of run time (second
 * index of the latest evaluation minus the one where the breach began; plain "abort" at the first
 * failing evaluation). The final verdict is st_thresholds_final on the run's report (its totals
 * include the records that arrived after their second): a breach during the run that healed
 * by the end passes, unless it aborted the run (an aborted run's threshold fails).
 *
 * Errors: ST_EINVAL with "WHERE: \"EXPR\": what is wrong" in err, WHERE being "--threshold" or
 * "PLAN: $.thresholds[i]"; ST_ENOMEM.
 *
 * Ownership: st_thresholds_new copies what it needs from the plan; st_thresholds_free releases.
 * Threading: one owner at a time (the coordinator's owner thread).
 */
#ifndef ST_THRESHOLD_H
#define ST_THRESHOLD_H

#include "coord.h"
#include "plan.h"
#include "report.h"
#include "stats.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum st_threshold_metric {
    ST_THRESHOLD_PERCENTILE,
    ST_THRESHOLD_MEAN,
    ST_THRESHOLD_MIN,
    ST_THRESHOLD_MAX,
    ST_THRESHOLD_ERROR_RATE,
    ST_THRESHOLD_ERROR_CLASS,
    ST_THRESHOLD_ACHIEVED_RATIO,
    ST_THRESHOLD_LATE_RATIO,
    ST_THRESHOLD_DROPPED_RATIO,
} st_threshold_metric;

typedef enum st_threshold_op {
    ST_THRESHOLD_LT,
    ST_THRESHOLD_LE,
    ST_THRESHOLD_GT,
    ST_THRESHOLD_GE,
} st_threshold_op;

/* One parsed threshold. */
typedef struct st_threshold {
    st_threshold_metric metric;
    bool uncorrected;     /* latency from the actual send */
    double percentile;    /* ST_THRESHOLD_PERCENTILE: 0 < p <= 100 */
    size_t class_offset;  /* ST_THRESHOLD_ERROR_CLASS: the counter's offset in st_counts */
    st_threshold_op op;
    double limit;         /* milliseconds for latency, a fraction for ratios */
    bool abort;           /* stop the run when it has failed for abort_after_s */
    double abort_after_s; /* 0 with a plain "abort" */
    bool by_name;         /* a selector named one request name: */
    char name[256];       /* that name */
} st_threshold;

/* Whether the metric is a latency (its value in ms) rather than a ratio. */
bool st_threshold_is_latency(const st_threshold *t);

/* "<", "<=", ">", ">=". */
const char *st_threshold_op_name(st_threshold_op op);

/* Parses text into *t. where names it in messages; closed_loop refuses achieved_ratio (there is
 * no target to compare with). Returns 0 or ST_EINVAL (message in err). */
int st_threshold_parse(st_threshold *t, const char *text, const char *where, bool closed_loop,
                       char *err, size_t err_len);

/* What a threshold is measured on. */
typedef struct st_threshold_input {
    const st_counts *c;
    const st_hist *lat, *lat_raw; /* corrected and uncorrected latency */
    double target_requests;       /* what the profile asked for so far; 0 in closed loop */
} st_threshold_input;

/* The input of a threshold on stats s: the whole (name < 0), or the part of name index `name` (a
 * name s holds nothing of yet reads as nothing measured; no target: achieved_ratio is refused
 * with a selector). */
st_threshold_input st_threshold_input_of(const st_stats *s, long name, double target_requests);

/* The threshold's value on in (ms or a fraction). false when it has none (no responses, a ratio
 * over nothing). */
bool st_threshold_observe(const st_threshold *t, const st_threshold_input *in, double *value);

/* Whether value meets the threshold. */
bool st_threshold_holds(const st_threshold *t, double value);

typedef struct st_thresholds st_thresholds;

/* Parses every threshold of a finished plan (plan_file names the file in messages; NULL when
 * the plan came from flags). *out is NULL-free even with no thresholds. Returns 0, ST_EINVAL
 * (the first bad one named) or ST_ENOMEM. */
int st_thresholds_new(st_thresholds **out, const st_plan *plan, const char *plan_file, char *err,
                      size_t err_len);
void st_thresholds_free(st_thresholds *ts);

size_t st_thresholds_count(const st_thresholds *ts);

/* Adds a finished second to the run-so-far totals and evaluates every threshold on them. Writes
 * one line on progress (may be NULL) when a threshold starts failing, and one when it holds
 * again, labelled with the run time at the second's end as the progress lines are. Returns true once, at the evaluation where an "abort" threshold has failed long
 * enough: the caller stops the run (st_coord_stop). ST_ENOMEM cannot happen here (the totals
 * are allocated by st_thresholds_new). */
bool st_thresholds_second(st_thresholds *ts, const st_coord_second *sec, FILE *progress);

/* The threshold that asked to stop the run, or NULL. */
const char *st_thresholds_aborted_by(const st_thresholds *ts);

/* Evaluates every threshold on the final report and stores the rows in r->thresholds (owned by
 * r). Returns 0 or ST_ENOMEM. */
int st_thresholds_final(const st_thresholds *ts, st_report *r);

/* Whether some row of the report failed. */
bool st_thresholds_failed(const st_report *r);

#endif
