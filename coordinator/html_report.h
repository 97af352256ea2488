/*
 * html_report.h - the run's report as one self-contained HTML file (--report FILE).
 *
 * Three callers build the same document: `stampede run --report` (output.h's report output, at
 * the end of the run), `stampede report SUMMARY.json TIMESERIES.jsonl -o FILE` (cmd_report.c,
 * afterwards from the files) and `stampede results RUN_ID --report FILE` (from DynamoDB). All
 * three hand over what the files hold: the summary object (README "Outputs") and the time series,
 * one object per second (the --timeseries line), so the report reads the same from any of them.
 *
 * The document makes no network request and opens offline: inline CSS, no script, charts drawn
 * here as inline SVG, and a Content-Security-Policy of default-src 'none' that lets a browser
 * fetch nothing at all. No charting library is embedded: none is packaged and pinned on the
 * machines that build stampede, and the four charts (rate, latency over time, errors by class,
 * the latency distribution) are a few hundred lines of SVG from C. Every figure sits in the DOM
 * as text inside an element with data-fig="KEY" (the summary's key path, e.g. requests.total,
 * latency_ms.p99) and data-value (the number exactly as in the summary), within an element whose
 * data-scope says whose figure it is ("run", "agent:ID", "name:NAME", "threshold:INDEX",
 * "baseline"). Each chart is an <svg class="chart" id="chart-..."> whose data-points gives how
 * many values it drew. Names, URLs and messages are escaped: a request name with <script> in it
 * is text, never markup.
 *
 * The latency distribution comes from the summary's "latency_histogram" (st_html_histogram_json,
 * added to the summary file by the summary output); without it the report draws the summary's
 * percentiles instead.
 *
 * Reading is strict: a required key missing, a value of the wrong type, a negative count or a
 * second out of order is ST_EINVAL with "FILE:LINE: key \"PATH\": what is wrong" in err (the
 * line is left out when it is not known, as for a pretty-printed summary).
 *
 * Threading: reentrant. Ownership: the caller keeps the inputs; the text returned is the caller's
 * to free.
 */
#ifndef ST_HTML_REPORT_H
#define ST_HTML_REPORT_H

#include "stats.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* Where the inputs came from, for error messages: names (a path, or "DynamoDB") and, for each
 * time series element, its line in that file (lines NULL: not known). */
typedef struct st_html_source {
    const char *summary_name;
    const char *series_name;
    const size_t *series_lines;
} st_html_source;

/* The document for summary (an object) and series (an array of second objects, in order; NULL
 * or empty: a report without charts over time). Returns 0 with *out (NUL-terminated), ST_EINVAL
 * with the reason in err, or ST_ENOMEM. */
int st_html_report_text(const cJSON *summary, const cJSON *series, const st_html_source *src,
                        char **out, char *err, size_t err_len);

/* st_html_report_text written to path through outfile.h (whole or not at all; label names the
 * flag in messages, e.g. "-o"). Returns 0, ST_EINVAL (the inputs; nothing is written), ST_EIO
 * (the file; path keeps what it held) or ST_ENOMEM, with the reason in err. */
int st_html_report_file(const char *label, const char *path, const cJSON *summary,
                        const cJSON *series, const st_html_source *src, char *err, size_t err_len);

/* The summary's "latency_histogram" for the totals' two histograms: {"unit": "us", "corrected":
 * [[low, high, count], ...], "uncorrected": [...]}, bins of an eighth of a power of two (values
 * below 8 us one bin each), in increasing order, empty bins left out. Each bin holds whole
 * buckets of st_hist, so its counts are exact. NULL when out of memory. */
cJSON *st_html_histogram_json(const st_stats *total);

#endif
