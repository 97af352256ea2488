/*
 * sqs_event.h - stampede-sink's Lambda handler: an SQS event (from an event source mapping) in,
 * a partial batch response out.
 *
 * When AWS_LAMBDA_RUNTIME_API is set, sink/main.c runs aws/lambda.h's runtime loop with this
 * handler. Every record of the event is stored through sink/store.h, and the response is
 * {"batchItemFailures": [{"itemIdentifier": "<messageId>"}, ...]} naming the records that were not
 * written (invalid bodies included, so that SQS redrives them to the dead-letter queue; the event
 * source mapping needs FunctionResponseTypes ReportBatchItemFailures). An event that is not an SQS
 * event, or a record without a messageId, is refused (the invocation's error, errorType
 * Sink.InvalidEvent).
 *
 * Threading: the runtime loop's thread.
 */
#ifndef ST_SINK_SQS_EVENT_H
#define ST_SINK_SQS_EVENT_H

#include "lambda.h"
#include "store.h"

/* Reads the records of an SQS event (the JSON text of an invocation). On 0, *doc is the parsed
 * event (the records' strings point into it: cJSON_Delete it after them) and *recs its n records
 * (free() it), with outcome ST_SINK_PENDING; a record without a string messageId has message_id
 * NULL, one without a string body has body "". ST_EINVAL when the event is not an SQS event (not
 * JSON, or no Records array); ST_ENOMEM. */
int st_sink_event_parse(const char *event, cJSON **doc, st_sink_record **recs, size_t *n);

/* An st_lambda_handler; ctx is the st_sink_store. Returns 0 with the batch response,
 * ST_EINVAL for an event it refuses, ST_ENOMEM. */
int st_sink_lambda_handle(void *ctx, const char *request_id, const char *event,
                          st_lambda_reply *reply);

#endif
