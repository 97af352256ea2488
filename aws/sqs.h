/*
 * sqs.h - Amazon SQS over the AWS JSON protocol: SendMessageBatch (the results forwarder,
 * results/forward.c), long-poll ReceiveMessage and DeleteMessageBatch (the sink's service loop,
 * sink/main.c).
 *
 * Threading: whatever the st_aws_client allows (one thread). Ownership: st_sqs_receive returns an
 * array of messages the caller frees with st_sqs_msgs_free; every other argument stays the
 * caller's.
 */
#ifndef ST_AWS_SQS_H
#define ST_AWS_SQS_H

#include "aws.h"

#include <stddef.h>

typedef struct st_sqs_msg {
    char *message_id;
    char *receipt_handle;
    char *body;
    long receive_count; /* ApproximateReceiveCount, 0 when SQS did not say */
} st_sqs_msg;

/* Receives up to max_messages (1..10), waiting up to wait_s (0..20) seconds for the first. On 0,
 * *msgs (NULL when none) and *n are set. Errors are st_aws_call's (err says what). */
int st_sqs_receive(st_aws_client *c, const char *queue_url, int max_messages, int wait_s,
                    st_sqs_msg **msgs, size_t *n, st_aws_error *err);

/* Deletes msgs[i] for every i with del[i] != 0, in batches of 10. Entries SQS refuses are logged
 * (the message comes back after its visibility timeout and is written again, harmlessly).
 * Returns 0 or the first call error (err says what). */
int st_sqs_delete(st_aws_client *c, const char *queue_url, const st_sqs_msg *msgs, const int *del,
                   size_t n, st_aws_error *err);

void st_sqs_msgs_free(st_sqs_msg *msgs, size_t n);

/* A message's ApproximateReceiveCount from its attributes object (ReceiveMessage's "Attributes",
 * a Lambda SQS event record's "attributes"; NULL allowed): the count, 0 when it is not there. */
long st_sqs_receive_count(const cJSON *attributes);

/* One entry of a SendMessageBatch: the caller fills the inputs, st_sqs_send_batch the outputs. */
typedef struct st_sqs_entry {
    const char *id;       /* the batch entry id: 1..80 of [A-Za-z0-9_-], unique in the batch */
    const char *body;     /* MessageBody */
    const char *group_id; /* FIFO queues: MessageGroupId; NULL otherwise */
    const char *dedup_id; /* FIFO queues: MessageDeduplicationId; NULL otherwise */
    int sent;             /* out: 1 when SQS listed the entry as Successful */
    int refused;          /* out: 1 when SQS listed it as Failed (why says why) */
    char why[224];        /* out: "Code: Message" of a refusal */
} st_sqs_entry;

/* Sends e[0..n) (1..10 entries) in one SendMessageBatch. On 0 SQS answered the call and each
 * entry's sent / refused says what became of it (an entry SQS named in neither list has both 0).
 * Otherwise the call's error (err says what; no entry is marked), or ST_ENOMEM, or ST_EINVAL when
 * n is 0 or above 10. */
int st_sqs_send_batch(st_aws_client *c, const char *queue_url, st_sqs_entry *e, size_t n,
                      st_aws_error *err);

#endif
