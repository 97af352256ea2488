/*
 * store.h - turns SQS message bodies into DynamoDB items and writes them: the sink's core, shared
 * by the long-running service (sink/main.c) and the Lambda runtime loop (sink/lambda.c).
 *
 * Each body is decoded and validated as a result message (results/result_msg.h); invalid ones are
 * logged with the JSON path at fault and marked ST_SINK_INVALID (their SQS message is left alone,
 * so the queue's redrive policy moves it to the dead-letter queue). Valid ones become items
 * (results/result_item.h) with ttl = now + ttl_days; two messages with the same identity in one call
 * share one item. Items are written through aws/ddb.h.
 *
 * Threading: one thread. Ownership: records and their strings stay the caller's.
 */
#ifndef ST_SINK_STORE_H
#define ST_SINK_STORE_H

#include "ddb.h"

#include <stdint.h>

enum { ST_SINK_PENDING = 0, ST_SINK_WRITTEN = 1, ST_SINK_INVALID = 2, ST_SINK_FAILED = 3 };

typedef struct st_sink_record {
    const char *message_id; /* for logs and Lambda's batchItemFailures */
    const char *body;
    long receive_count; /* 0 when unknown */
    int outcome;        /* set by st_sink_store_records */
} st_sink_record;

typedef struct st_sink_store {
    st_ddb_writer ddb;
    int ttl_days;
    const st_aws_sys *sys; /* NULL: the real clock */
    uint64_t written;      /* totals over the store's life */
    uint64_t invalid;
    uint64_t failed;
} st_sink_store;

/* Sets every record's outcome. Returns 0 when every valid record was written, otherwise the write
 * error (err says what; those records are ST_SINK_FAILED), or ST_ENOMEM. */
int st_sink_store_records(st_sink_store *s, st_sink_record *recs, size_t n, st_aws_error *err);

#endif
