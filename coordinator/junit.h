/*
 * junit.h - the run's verdict as a JUnit XML document (--junit FILE), for CI systems to show.
 *
 * output.h's junit output (st_output_junit) writes it at the end: one <testsuites>
 * holding one <testsuite name="stampede run RUN_ID"> with a <testcase> per threshold (classname
 * "stampede.thresholds", named by its expression; a failing one has a <failure> whose message
 * says what was observed against what was wanted, and whether it stopped the run), then the
 * cases "every agent completed" (fails when an agent was lost or failed, or the run failed) and
 * "no second missing" (fails when some second is incomplete or records could not be merged),
 * classname "stampede.run". With --baseline, each --max-regression limit is a case too
 * (classname "stampede.baseline", named by its expression; a failure says observed, allowed and
 * the baseline's value). The form is the common one Jenkins and GitLab read;
 * tests/junit.xsd is its schema, checked with xmllint in the tests.
 *
 * Threading: reentrant (the report is only read).
 */
#ifndef ST_JUNIT_H
#define ST_JUNIT_H

#include "report.h"

#include <cjson/cJSON.h>

/* The document for r, NUL-terminated; the caller frees it. NULL when out of memory.
 * regressions: the "regressions" array of st_baseline_json, or NULL without a baseline. */
char *st_junit_text(const st_report *r, const cJSON *regressions);

#endif
