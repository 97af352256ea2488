/*
 * ddb.h - writes items to a DynamoDB table with BatchWriteItem, retrying UnprocessedItems.
 *
 * Used by sink/store.c. Items go in calls of at most 25; whatever DynamoDB hands back as
 * UnprocessedItems is sent again after an exponential backoff with jitter (st_aws_backoff_ms with
 * the writer's retry settings), up to `rounds` calls per chunk; throttling errors of the calls
 * themselves are retried by the AWS client. The caller must not pass two items with the same key.
 *
 * Threading: one thread (the client's). Ownership: items stay the caller's.
 */
#ifndef ST_SINK_DDB_H
#define ST_SINK_DDB_H

#include "aws.h"

#include <stddef.h>

typedef struct st_sink_ddb {
    st_aws_client *client;
    const char *table;
    st_aws_retry backoff;     /* delays between UnprocessedItems rounds */
    int rounds;               /* calls per chunk, first included */
    const st_aws_sys *sys;    /* NULL: the real world (sleep, random) */
    const atomic_int *cancel; /* optional: stop retrying (items stay unwritten) */
} st_sink_ddb;

/* Writes items[0..n) (DynamoDB typed JSON, each with testId and sk). written[i] becomes 1 for each
 * item DynamoDB accepted, 0 otherwise. Returns 0 when all were written; otherwise ST_EAGAIN when
 * some stayed unprocessed after every round, or the error of a failed call (err says what). */
int st_sink_ddb_write(st_sink_ddb *w, cJSON *const *items, size_t n, int *written,
                      st_aws_error *err);

#endif
