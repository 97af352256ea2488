/*
 * forward.h - ships result messages (results/result_msg.h) to an SQS queue without ever slowing a
 * run down, and without losing any.
 *
 * The coordinator creates one forwarder per run (--sqs-queue-url), submits every finalised second
 * and the summary from its stats thread, and closes it at the end. Submitting only copies the
 * message into a queue; the forwarder's own thread batches messages into SendMessageBatch calls
 * (at most 10 entries and 256 KiB each; entry Ids derived from the message identity, so a batch
 * never holds the same identity twice).
 *
 * Delivery rules:
 *   - every message is sent once in the normal path;
 *   - an entry SQS refuses inside a batch is retried alone, with backoff;
 *   - when SQS cannot be reached or refuses the call, the messages go to the spool directory, one
 *     file per message named "<identity>.json", written atomically (temporary file, fsync, rename),
 *     and the forwarder keeps sending new messages there; every retry_interval_ms it replays the
 *     spool, and once SQS answers it delivers the spool in order, removing each file only after SQS
 *     accepted it, and goes back to sending directly;
 *   - files already in the spool when the forwarder starts (an earlier run's) are replayed too;
 *   - `stampede forward` (st_forward_spool) replays a spool later.
 * A message may still reach SQS twice (an answer lost after SQS stored it, a spool replayed by two
 * processes at once): the sink's writes are keyed by identity, so that rewrites the same item.
 *
 * FIFO queues (URL ending in ".fifo") get MessageGroupId = run id and MessageDeduplicationId =
 * identity.
 */
#ifndef ST_FORWARD_H
#define ST_FORWARD_H

#include "aws.h"

#include <stddef.h>
#include <stdint.h>

/* SendMessageBatch's limits. */
#define ST_FORWARD_BATCH_MAX   10
#define ST_FORWARD_BATCH_BYTES (256 * 1024)

typedef struct st_forwarder_config {
    const char *queue_url;      /* required */
    const char *spool_dir;      /* required; created (with parents) when missing */
    st_aws_config aws;          /* region, endpoint, retries and timeouts of the SQS client */
    uint32_t retry_interval_ms; /* how often to try SQS again while it is unreachable */
    int entry_attempts;         /* tries of an entry SQS refused, counting its first */
} st_forwarder_config;

/* Defaults: st_aws_config_init with 3 attempts, 100 ms base and 1 s cap (the spool takes over
 * after that), 2 s connect and 10 s request timeouts; retry every 1000 ms; 3 entry attempts. */
void st_forwarder_config_init(st_forwarder_config *cfg);

typedef struct st_forward_report {
    uint64_t sent;    /* messages SQS accepted */
    uint64_t spooled; /* files left in the spool directory at the end */
    uint64_t lost;    /* messages that could be neither sent nor spooled (disk errors) */
} st_forward_report;

typedef struct st_forwarder st_forwarder;

/* Creates the spool directory if needed and starts the forwarder's thread. Returns 0, ST_EINVAL
 * (missing queue URL or spool directory, no region, bad endpoint: err says which), ST_EIO (the
 * spool directory cannot be created or written), ST_ESYSTEM (no thread) or ST_ENOMEM. err may be
 * NULL. No network call is made here. Call from any thread. */
int st_forwarder_new(st_forwarder **out, const st_forwarder_config *cfg, char *err, size_t err_len);

/* Queues one message: id is its identity (st_result_id: 1 to 80 characters of A-Z a-z 0-9 . _ -,
 * not starting with '.'), json_text its body (NUL-terminated, at most 256 KiB). Both are copied.
 * Never blocks on the network or the disk; thread-safe. Returns 0, ST_EINVAL (bad id or empty
 * body), ST_ERANGE (body too large), ST_ECLOSED (after st_forwarder_flush_and_close) or ST_ENOMEM.
 */
int st_forwarder_submit(st_forwarder *f, const char *id, const char *json_text);

/* Stops taking messages, delivers what is queued (and a spool being replayed) for at most
 * timeout_ms, then spools whatever is still undelivered and stops the thread. Fills report (may be
 * NULL). Returns 0 when every message reached SQS and the spool is empty, ST_EAGAIN when messages
 * are left in the spool (report->spooled says how many), ST_EIO when some could not even be spooled
 * (report->lost), ST_ESTATE when called twice. Call once, from the thread that owns f. */
int st_forwarder_flush_and_close(st_forwarder *f, uint32_t timeout_ms, st_forward_report *report);

/* Frees f, closing it first with a zero timeout when that was not done. NULL is a no-op. */
void st_forwarder_free(st_forwarder *f);

/* Replays every "<identity>.json" file of spool_dir to queue_url now, oldest identity first,
 * removing each one SQS accepted. Returns 0 when the spool is empty at the end, ST_EAGAIN when
 * files remain (SQS unreachable or refusing some; err says why, report->spooled how many),
 * ST_ENOTFOUND when spool_dir does not exist, ST_EINVAL for a bad configuration, the client's
 * ST_EAUTH when credentials are missing, or ST_ENOMEM. The `stampede forward` command. */
int st_forward_spool(const char *spool_dir, const char *queue_url, const st_aws_config *aws,
                     st_forward_report *report, char *err, size_t err_len);

/* ---- the arithmetic behind batches and names, exposed for tests ---- */

/* True when id is a valid message identity (see st_forwarder_submit). */
int st_forward_id_valid(const char *id);

/* SQS entry Id for identity id: '.' becomes '_' (Ids allow A-Z a-z 0-9 _ -, 80 characters).
 * out needs 81 bytes. Returns 0 or ST_EINVAL. */
int st_forward_entry_id(const char *id, char *out, size_t out_len);

/* Spool file name for identity id: "<id>.json". Returns 0, ST_EINVAL or ST_ERANGE. */
int st_forward_spool_name(const char *id, char *out, size_t out_len);

/* Identity of spool file name, or ST_EINVAL when name is not a spool file (temporary files start
 * with '.'). */
int st_forward_spool_id(const char *name, char *out, size_t out_len);

/* How many messages from the front of a list (ids[i], sizes[i] bytes) go into the next
 * SendMessageBatch: at most ST_FORWARD_BATCH_MAX, at most ST_FORWARD_BATCH_BYTES in all, no two
 * with the same entry Id. Always at least 1 when n > 0 (a message alone never exceeds the limit).
 */
size_t st_forward_batch_take(const char *const *ids, const size_t *sizes, size_t n);

/* Writes json (len bytes) to spool_dir/<id>.json atomically. Returns 0, ST_EINVAL or ST_EIO. */
int st_forward_spool_write(const char *spool_dir, const char *id, const char *json, size_t len);

#endif
