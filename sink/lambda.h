/*
 * lambda.h - stampede-sink as an AWS Lambda custom runtime, for SQS event source mappings.
 *
 * When AWS_LAMBDA_RUNTIME_API is set, sink/main.c hands over to st_sink_lambda_run, which loops:
 * GET /2018-06-01/runtime/invocation/next (waiting as long as it takes), store every record of the
 * SQS event through sink/store.h, and POST .../invocation/<request id>/response with
 * {"batchItemFailures": [{"itemIdentifier": "<messageId>"}, ...]} naming the records that were not
 * written (invalid bodies included, so that SQS redrives them to the dead-letter queue; the event
 * source mapping needs FunctionResponseTypes ReportBatchItemFailures). An event that is not an SQS
 * event is answered on .../invocation/<id>/error.
 *
 * Threading: runs on the main thread until *stop is raised (SIGTERM), which it checks between
 * invocations and while waiting for the next.
 */
#ifndef ST_SINK_LAMBDA_H
#define ST_SINK_LAMBDA_H

#include "store.h"

#include <stdatomic.h>

/* api is the value of AWS_LAMBDA_RUNTIME_API ("host:port"). Returns 0 after *stop was raised,
 * ST_ECONNECT / ST_EIO / ST_EPROTO when the runtime API fails, ST_ENOMEM. */
int st_sink_lambda_run(const char *api, st_sink_store *store, const atomic_int *stop);

/* Reports an initialisation failure (bad configuration) to the runtime API. Best effort. */
void st_sink_lambda_init_error(const char *api, const char *message);

#endif
