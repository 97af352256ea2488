/*
 * md_summary.h - the run's summary as GitHub-flavoured Markdown, for a CI job's step summary.
 *
 * `stampede run` appends it to the file GITHUB_STEP_SUMMARY names when that variable is set
 * (output.h's step summary output): a title with the verdict, a table of the status, the totals,
 * the rates and the latency (corrected and uncorrected), the thresholds' table (result,
 * expression, observed, wanted), and the agents' table. Every text that came from outside
 * (run id, names, hosts, expressions, errors) is escaped, ASCII punctuation by a backslash, so
 * that it reads as itself and never as markup or HTML.
 *
 * Threading: reentrant (the report is only read).
 */
#ifndef ST_MD_SUMMARY_H
#define ST_MD_SUMMARY_H

#include "report.h"

/* The Markdown for r, NUL-terminated and ending in a blank line; the caller frees it. NULL when
 * out of memory. */
char *st_md_summary_text(const st_report *r);

#endif
