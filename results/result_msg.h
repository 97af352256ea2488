/*
 * result_msg.h - the JSON messages that carry a run's results from the coordinator to storage.
 *
 * Schemas "stampede.result/1" and "stampede.result/2", documented in docs/results-schema.md;
 * version 2 is version 1 with results per request name: a second's "by_name" parts, and the
 * summary's requests_by_name. A run whose plan has several request names is written in version 2,
 * any other in version 1, so that version-1 readers keep reading those. Two kinds of message:
 *   - "second": the merged aggregate of one finalised second of a run: counts, both latency
 *     histograms as sparse buckets with exact count/min/max/sum, target and achieved rates, agents;
 *   - "summary": the run's summary object, carried as given.
 * Every message has a deterministic identity (st_result_id): "<run_id>.s000042" for second 42,
 * "<run_id>.summary" for the summary. The forwarder names spool files and SQS entries after it and
 * the sink's DynamoDB key (testId = run id, sk = "second#000042" or "summary") follows from it, so
 * a message delivered twice rewrites the same item.
 *
 * The coordinator's forwarder encodes; the sink and `stampede results` decode. The decoder
 * validates everything it reads and names the JSON path of the first problem, e.g.
 * "$.latency_us.buckets[3]: bucket indexes must increase"; it ignores members it does not know, so
 * that additions within version 1 stay readable by older sinks.
 *
 * Threading: all functions are reentrant. Ownership is stated per function.
 */
#ifndef ST_RESULT_MSG_H
#define ST_RESULT_MSG_H

#include "stats.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define ST_RESULT_SCHEMA    "stampede.result/1"
#define ST_RESULT_SCHEMA_V2 "stampede.result/2"
/* A request name in a message: 1 to this many bytes. */
#define ST_RESULT_NAME_MAX 1024
/* A run id is 1 to 64 characters of A-Z a-z 0-9 '.' '_' '-', not starting with '.'. */
#define ST_RESULT_RUN_ID_MAX 64
/* Room for any identity: run id, ".s", up to 10 digits. */
#define ST_RESULT_ID_MAX 80
/* SQS's limit for one message (and for a whole batch). */
#define ST_RESULT_MAX_BYTES (256 * 1024)

typedef enum st_result_kind {
    ST_RESULT_SECOND = 1,
    ST_RESULT_SUMMARY = 2,
} st_result_kind;

/* A decoded message. Seconds fill second..stats; summaries fill summary. */
typedef struct st_result_msg {
    st_result_kind kind;
    char run_id[ST_RESULT_RUN_ID_MAX + 1];
    uint32_t second;
    uint32_t agents;
    double target_rps;
    double achieved_rps;
    st_stats stats; /* stats.second == second; histograms allocated for seconds only */
    cJSON *summary; /* owned; NULL for seconds */
    int schema;     /* 1 or 2 */
    /* Version 2 seconds: the names of the parts in stats.names (stats.n_names == n_names), in
     * the message's order; owned. */
    char **names;
    size_t n_names;
} st_result_msg;

/* True when run_id follows the rule above. */
int st_result_run_id_valid(const char *run_id);

/* True when text is 1 to max_len characters of A-Z a-z 0-9 '.' '_' '-', not starting with '.':
 * the rule of run ids, and of the identities made from them (safe as file and SQS names). */
int st_result_name_valid(const char *text, size_t max_len);

/* Writes the identity of (kind, run_id, second) into out (ST_RESULT_ID_MAX + 1 bytes or more).
 * Returns 0, or ST_EINVAL for an invalid run id, or ST_ERANGE when out is too small. */
int st_result_id(st_result_kind kind, const char *run_id, uint32_t second, char *out,
                 size_t out_len);

/* DynamoDB sort key: "second#000042" (at least 6 digits) or "summary". Same returns. */
int st_result_sort_key(st_result_kind kind, uint32_t second, char *out, size_t out_len);

/* Encodes one finalised second. stats->second is the second's index. On 0, *json_out is a new
 * NUL-terminated string the caller frees with free(), and id_out (ST_RESULT_ID_MAX + 1 bytes) holds
 * the identity. Errors: ST_EINVAL (run id, NULL stats or histograms, negative or non-finite
 * rates), ST_ERANGE (the message would exceed ST_RESULT_MAX_BYTES), ST_ENOMEM. */
int st_result_encode_second(const char *run_id, const st_stats *stats, double target_rps,
                            double achieved_rps, uint32_t agents, char **json_out, char *id_out);

/* st_result_encode_second for a run with n_names > 0 request names kept apart: a version-2
 * message whose by_name lists the parts of stats (stats->names[i] is names[i]'s; a part that
 * holds nothing is left out; stats may have fewer parts than names, none beyond). n_names 0 is
 * st_result_encode_second. Also ST_EINVAL when stats has parts that no name is given for. */
int st_result_encode_second_by_name(const char *run_id, const st_stats *stats,
                                    const char *const *names, size_t n_names, double target_rps,
                                    double achieved_rps, uint32_t agents, char **json_out,
                                    char *id_out);

/* Encodes the run's summary: summary must be a JSON object (not modified, copied into the
 * message); version 2 when it has requests_by_name. Same ownership and errors as
 * st_result_encode_second. */
int st_result_encode_summary(const char *run_id, const cJSON *summary, char **json_out,
                             char *id_out);

/* Decodes and validates a message. On 0, *out is filled (the caller calls st_result_msg_fini).
 * On ST_EINVAL, err (err_len bytes, may be NULL) names the JSON path and the problem, and *out
 * needs no fini. ST_ENOMEM also possible. */
int st_result_decode(const char *text, size_t len, st_result_msg *out, char *err, size_t err_len);
/* Same, from an already parsed document (root is not modified or kept). */
int st_result_decode_json(const cJSON *root, st_result_msg *out, char *err, size_t err_len);
void st_result_msg_fini(st_result_msg *m);

/* The sparse histogram block of the schema:
 * {"count": n, "min": us, "max": us, "sum": us, "buckets": [[index, count], ...]}.
 * Returns a new object, or NULL when out of memory. */
cJSON *st_result_hist_to_json(const st_hist *h);
/* Loads such a block into the empty histogram h. path names the block in error messages
 * ("$.latency_us"). Returns 0, ST_EINVAL (message in err) or ST_ENOMEM. */
int st_result_hist_from_json(const cJSON *j, const char *path, st_hist *h, char *err,
                             size_t err_len);

#endif
