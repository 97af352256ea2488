/*
 * ddb.h - Amazon DynamoDB over the AWS JSON protocol: BatchWriteItem with UnprocessedItems retried
 * (the sink's store, sink/store.c) and a paginated Query of one partition (`stampede results`,
 * coordinator/cmd_results.c).
 *
 * Writing: items go in calls of at most 25; whatever DynamoDB hands back as
 * UnprocessedItems is sent again after an exponential backoff with jitter (st_aws_backoff_ms with
 * the writer's retry settings), up to `rounds` calls per chunk; throttling errors of the calls
 * themselves are retried by the AWS client. The caller must not pass two items with the same key.
 *
 * Threading: one thread (the client's). Ownership: items stay the caller's.
 */
#ifndef ST_AWS_DDB_H
#define ST_AWS_DDB_H

#include "aws.h"

#include <stddef.h>

typedef struct st_ddb_writer {
    st_aws_client *client;
    const char *table;
    st_aws_retry backoff;     /* delays between UnprocessedItems rounds */
    int rounds;               /* calls per chunk, first included */
    const st_aws_sys *sys;    /* NULL: the real world (sleep, random) */
    const atomic_int *cancel; /* optional: stop retrying (items stay unwritten) */
} st_ddb_writer;

/* Writes items[0..n) (DynamoDB typed JSON, each with testId and sk). written[i] becomes 1 for each
 * item DynamoDB accepted, 0 otherwise. Returns 0 when all were written; otherwise ST_EAGAIN when
 * some stayed unprocessed after every round, or the error of a failed call (err says what). */
int st_ddb_write(st_ddb_writer *w, cJSON *const *items, size_t n, int *written,
                    st_aws_error *err);

/* Called by st_ddb_query for each item (DynamoDB typed JSON, still the reply's: copy what you
 * keep). A non-zero return stops the query and becomes its result. */
typedef int (*st_ddb_item_fn)(void *ctx, const cJSON *item);

/* Queries every item whose string partition key `key` equals `value` (strongly consistent reads),
 * following LastEvaluatedKey to the last page, and hands each to fn in the table's sort-key order.
 * Returns 0, the first call error (err says what), fn's non-zero result, or ST_ENOMEM. */
int st_ddb_query(st_aws_client *c, const char *table, const char *key, const char *value,
                 st_ddb_item_fn fn, void *ctx, st_aws_error *err);

#endif
