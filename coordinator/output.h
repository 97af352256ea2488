/*
 * output.h - where a run's results go: an ops table of outputs fed by the coordinator's run.
 *
 * Each output receives every finished second (in order) and, at the end, the run's typed report
 * (report.h); none reads the core or a JSON tree. Built in:
 *   progress    one line per second on the terminal (elapsed, target and achieved rps, ok,
 *               errors, p50/p99, agents), then the readable summary table;
 *   timeseries  JSON Lines, one object per second (--timeseries FILE);
 *   summary     the summary JSON (--summary FILE);
 *   junit       the thresholds' and the run's verdicts as JUnit XML (--junit FILE, junit.h);
 *   report      the self-contained HTML report (--report FILE, html_report.h);
 *   step summary a Markdown summary appended to $GITHUB_STEP_SUMMARY (md_summary.h);
 *   sqs         every second and the summary as result messages (results/result_msg.h) to an SQS
 *               queue through the forwarder (forward.h): sent off the run's thread, spooled to
 *               disk while SQS is unreachable (--sqs-queue-url URL --spool DIR).
 * An output that fails to write logs why (the path and the errno) and keeps the run going: results
 * already sent to the other outputs are not held back by one broken file. Its close() then
 * returns an error, so that the run exits non-zero (cmd_run.c). Files are written whole or not at
 * all (outfile.h): through a temporary name in their folder, renamed into place at the end; a run
 * that fails before its end leaves no file behind.
 *
 * Threading: every call from the coordinator's owner thread.
 */
#ifndef ST_OUTPUT_H
#define ST_OUTPUT_H

#include "aws.h"
#include "baseline.h"
#include "coord.h"
#include "forward.h"
#include "report.h"

#include <stdio.h>

typedef struct st_output_ops {
    const char *name;
    /* A finished second. Returns 0 or an ST_E* code (logged by the output itself). */
    int (*second)(void *state, const st_coord_second *sec);
    /* The end: the run's report (st_coord_report; valid during the call only). Returns 0 or an
     * ST_E* code. */
    int (*summary)(void *state, const st_report *report);
    /* Closes and frees the state. Returns 0, or an ST_E* code when something this output had
     * to write was not written whole (logged by the output itself, path and errno included). */
    int (*close)(void *state);
} st_output_ops;

typedef struct st_output {
    const st_output_ops *ops;
    void *state;
} st_output;

/* Progress lines and the summary table on f (not closed). */
int st_output_progress(st_output *out, FILE *f);
/* JSON Lines into path: written to a temporary file as the seconds come, renamed to path when
 * the run's end is reported (summary). ST_EIO with a message in err when the temporary file
 * cannot be created. A second that cannot be written gives up the whole file (the temporary
 * file is removed, path is left as it was) and makes close() fail. */
int st_output_timeseries(st_output *out, const char *path, char *err, size_t err_len);
/* The summary JSON into path, written at the end (through a temporary file and a rename, so a
 * reader never sees half of it). ST_EIO when the folder cannot be written; a summary that cannot
 * be written whole makes close() fail. */
int st_output_summary_file(st_output *out, const char *path, char *err, size_t err_len);
/* The run's verdict as JUnit XML (junit.h) into path, written at the end like the summary. */
int st_output_junit(st_output *out, const char *path, char *err, size_t err_len);

/* The HTML report (html_report.h) of the run's summary and seconds into path, written at the
 * end like the summary. */
int st_output_report(st_output *out, const char *path, char *err, size_t err_len);
/* The Markdown summary (md_summary.h) appended to path at the end (GITHUB_STEP_SUMMARY: a file
 * the CI system made, shared by the job's steps, so it is appended to, not replaced). The file
 * must exist or be creatable now: ST_EIO with a message in err otherwise. A write that fails at
 * the end is logged (path and errno) and makes close() fail. */
int st_output_step_summary(st_output *out, const char *path, char *err, size_t err_len);

/* The summary object of --summary: st_report_json's, with "latency_histogram"
 * (st_html_histogram_json of the totals) after the latency blocks, and "baseline"
 * (st_baseline_json, when baseline is not NULL) before the thresholds. NULL when out of memory. */
cJSON *st_output_summary_json(const st_report *report, const st_baseline *baseline);

/* The summary and report outputs add baseline's comparison (evaluated before their summary()
 * is called; it must outlive them); other outputs ignore it. */
void st_output_set_baseline(st_output *out, const st_baseline *baseline);

/* The summary file's "results_delivery": what became of the run's result messages (the sqs
 * output's *delivery) and the spool they wait in. With it set, the summary file holds its summary
 * from summary() until close(), which must then come after the sqs output's close() (which fills
 * *delivery); delivery and spool_dir must outlive out. Other outputs ignore it. */
void st_output_set_delivery(st_output *out, const st_forward_report *delivery,
                            const char *spool_dir);

/* The --timeseries line of row, without its newline: its keys (README "Outputs"), then
 * p50/p90/p99_uncorrected_ms and "errors" by class. Returns 0, or ST_ERANGE when len is short
 * (ST_OUTPUT_SECOND_LINE_MAX always suffices). */
#define ST_OUTPUT_SECOND_LINE_MAX 1024
int st_output_second_line(char *buf, size_t len, const st_report_second *row);

/* rows as the objects of their --timeseries lines, in an array (the input of html_report.h). NULL
 * when out of memory. */
cJSON *st_output_series_json(const st_report_second *rows, size_t n);

/* Result messages to SQS. aws is copied; its strings must outlive the output. Checks the
 * configuration and the credentials now (before any load is sent): ST_EINVAL (no region, bad
 * endpoint, bad run id), ST_EAUTH (no credentials, or expired ones), ST_EIO (the spool folder
 * cannot be written), with a message in err. close() flushes for at most flush_timeout_ms and
 * writes what became of the messages into *delivery (may be NULL; written by close() only):
 * sent (SQS took them), spooled (files waiting in the spool folder: `stampede forward` delivers
 * them) and lost (neither: the spool could not be written, or the message could not be built or
 * queued). close() returns 0 when every message was sent, ST_EAGAIN when some wait in the spool
 * and none was lost, ST_EIO when some were lost. */
int st_output_sqs(st_output *out, const char *run_id, const char *queue_url, const char *spool_dir,
                  const st_aws_config *aws, uint32_t flush_timeout_ms, st_forward_report *delivery,
                  char *err, size_t err_len);

#endif
