/*
 * sqs.h - the sink's side of SQS: long-poll ReceiveMessage and DeleteMessageBatch.
 *
 * Used by sink/main.c's service loop. Threading: whatever the st_aws_client allows (one thread).
 * Ownership: st_sink_receive returns an array of messages the caller frees with st_sink_msgs_free.
 */
#ifndef ST_SINK_SQS_H
#define ST_SINK_SQS_H

#include "aws.h"

#include <stddef.h>

typedef struct st_sink_msg {
    char *message_id;
    char *receipt_handle;
    char *body;
    long receive_count; /* ApproximateReceiveCount, 0 when SQS did not say */
} st_sink_msg;

/* Receives up to max_messages (1..10), waiting up to wait_s (0..20) seconds for the first. On 0,
 * *msgs (NULL when none) and *n are set. Errors are st_aws_call's (err says what). */
int st_sink_receive(st_aws_client *c, const char *queue_url, int max_messages, int wait_s,
                    st_sink_msg **msgs, size_t *n, st_aws_error *err);

/* Deletes msgs[i] for every i with del[i] != 0, in batches of 10. Entries SQS refuses are logged
 * (the message comes back after its visibility timeout and is written again, harmlessly).
 * Returns 0 or the first call error (err says what). */
int st_sink_delete(st_aws_client *c, const char *queue_url, const st_sink_msg *msgs, const int *del,
                   size_t n, st_aws_error *err);

void st_sink_msgs_free(st_sink_msg *msgs, size_t n);

#endif
