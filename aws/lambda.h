/*
 * lambda.h - the AWS Lambda runtime API loop for programs that run as a Lambda custom runtime
 * (stampede-sink today; the launcher function of deploy/ecs shares it).
 *
 * st_lambda_run loops: GET /2018-06-01/runtime/invocation/next (waiting as long as it takes),
 * hands the event to the program's handler, and POSTs the handler's answer to
 * .../invocation/<request id>/response, or its error to .../invocation/<request id>/error.
 *
 * Threading: runs on the calling thread until *stop is raised (a signal handler may raise it),
 * which it checks between invocations and while waiting for the next. The handler runs on that
 * thread too.
 */
#ifndef ST_AWS_LAMBDA_H
#define ST_AWS_LAMBDA_H

#include <cjson/cJSON.h>
#include <stdatomic.h>

/* What a handler answers for one invocation. */
typedef struct st_lambda_reply {
    cJSON *response;     /* when the handler returns 0: the response document (st_lambda_run
                            posts and frees it) */
    char error_type[64]; /* when it returns ST_EINVAL: errorType of the error document */
    char error_message[1024];
} st_lambda_reply;

/* Handles one event (the invocation's body, NUL-terminated). Returns 0 with reply->response set,
 * ST_EINVAL with reply->error_type and error_message set (the event is refused: posted as the
 * invocation's error, and the loop goes on), or another error code, which ends the loop. */
typedef int (*st_lambda_handler)(void *ctx, const char *request_id, const char *event,
                                 st_lambda_reply *reply);

/* api is the value of AWS_LAMBDA_RUNTIME_API ("host:port"). Returns 0 after *stop was raised,
 * ST_ECONNECT / ST_EIO / ST_EPROTO when the runtime API fails, ST_ENOMEM, or the handler's fatal
 * error. */
int st_lambda_run(const char *api, st_lambda_handler fn, void *ctx, const atomic_int *stop);

/* Reports an initialisation failure (bad configuration) to the runtime API under errorType
 * `type`. Best effort: a failure to report is logged. */
void st_lambda_init_error(const char *api, const char *type, const char *message);

#endif
