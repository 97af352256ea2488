/*
 * run_id.h - the run id: what names a run in its ECS tasks, its SQS messages and its DynamoDB
 * items, in one format wherever it is made (stampede run, the launcher Lambda) or given
 * (stampede run --run-id): "20261121T213500Z-3f9a1c2e", the UTC start second and 8 random
 * hexadecimal digits, so that run ids sort by time and stay unique.
 *
 * Errors: st_run_id_check says what is wrong with a given id. Ownership: callers' buffers only.
 * Threading: every function is thread-safe.
 */
#ifndef ST_RUN_ID_H
#define ST_RUN_ID_H

#include <stdbool.h>
#include <stddef.h>

#define ST_RUN_ID_LEN 25 /* characters, without the NUL */

/* Writes a new run id (now, random digits) into out (at least ST_RUN_ID_LEN + 1 bytes). */
void st_run_id_make(char *out, size_t len);

/* Whether id has the run id's form; when not, why (why_len bytes) says what differs. */
bool st_run_id_check(const char *id, char *why, size_t why_len);

/* Writes 2 * bytes lowercase hexadecimal digits of randomness (getrandom, or a clock-seeded
 * generator when the kernel gives none) and a NUL into out; bytes is at most 32. */
void st_random_hex(char *out, size_t bytes);

#endif
