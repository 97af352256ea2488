/*
 * result_item.h - how a result message is stored as a DynamoDB item, and read back.
 *
 * Key: partition key testId (S, the run id), sort key sk (S, "second#000042" or "summary").
 * Every item has schema, kind and ttl (N, epoch seconds; DynamoDB's TTL deletes it after that).
 * A second's item has second, agents, target_rps, achieved_rps, every count of the message as a
 * top-level number (sent, ok, http_4xx, ... inflight), failed, error_rate, the corrected latency's
 * min_us, mean_us, p50_us, p90_us, p95_us, p99_us, p999_us, max_us, and both histograms as maps
 * latency_us and latency_uncorrected_us in the message's sparse form, so that percentiles over any
 * window can be computed again by merging them. A version-2 second's item (schema
 * "stampede.result/2") also has by_name, a list of maps in the message's form (name, counts and
 * both histograms per request name). The summary's item holds the summary as a map. Layout
 * documented in docs/results-schema.md.
 *
 * The sink builds items; `stampede results` parses them. Reentrant.
 */
#ifndef ST_RESULT_ITEM_H
#define ST_RESULT_ITEM_H

#include "result_msg.h"

#include <cjson/cJSON.h>
#include <stdint.h>

/* Builds m's item in DynamoDB's typed JSON, with ttl = ttl_epoch_s. On 0 the caller owns *item.
 * Returns 0, ST_EINVAL (m is not a decoded message) or ST_ENOMEM. */
int st_result_item_build(const st_result_msg *m, int64_t ttl_epoch_s, cJSON **item);

/* Reads a stored item (typed JSON) back into *out (st_result_msg_fini it) and its ttl into *ttl
 * (may be NULL). Returns 0, ST_EINVAL with the attribute at fault in err, or ST_ENOMEM. */
int st_result_item_parse(const cJSON *item, st_result_msg *out, int64_t *ttl, char *err,
                         size_t err_len);

#endif
