/*
 * stored_run.h - the summary of an earlier run, read back from the DynamoDB table that
 * stampede-sink writes (results/result_item.h: testId = the run id, sk = "summary").
 * `stampede run --baseline RUN_ID --baseline-table TABLE` compares a run with it (baseline.h).
 *
 * Errors: the AWS call's code (ST_EAUTH, ST_ENOTFOUND for a table that does not exist, ...) with
 * err naming the service, the operation and AWS's message; ST_ENOTFOUND when the table holds no
 * summary for the run (err says how many of its seconds it does hold); ST_EINVAL when the stored
 * summary does not follow the schema; ST_ENOMEM.
 *
 * Threading: makes its own AWS client and uses it on the calling thread only. Ownership: on 0,
 * *summary is a new JSON object the caller frees with cJSON_Delete.
 */
#ifndef ST_STORED_RUN_H
#define ST_STORED_RUN_H

#include "aws.h"

#include <cjson/cJSON.h>
#include <stddef.h>

int st_stored_summary(const st_aws_config *aws, const char *table, const char *run_id,
                      cJSON **summary, char *err, size_t err_len);

#endif
