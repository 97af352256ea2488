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

/* An st_lambda_handler; ctx is the st_sink_store. Returns 0 with the batch response,
 * ST_EINVAL for an event it refuses, ST_ENOMEM. */
int st_sink_lambda_handle(void *ctx, const char *request_id, const char *event,
                          st_lambda_reply *reply);

#endif
