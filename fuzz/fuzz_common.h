/*
 * fuzz_common.h - what the message fuzzers share: the framing of their inputs and quiet logging.
 *
 * fuzz_coord_wire and fuzz_agent_reply read an input as a sequence of messages, each
 * [1 byte: clock step in 10 ms units][2 bytes: length, little-endian][length bytes], and
 * fuzz_seeds writes their seeds in the same framing.
 *
 * Errors: st_fuzz_frame_put returns -1 when a message does not fit; nothing else fails.
 * Ownership: messages point into the caller's input; nothing is allocated. Threading: one input
 * at a time per st_fuzz_frames; st_fuzz_quiet is meant for one fuzzing thread.
 */
#ifndef ST_FUZZ_COMMON_H
#define ST_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* A framed input being read; start with {data, size, 0}. */
typedef struct st_fuzz_frames {
    const uint8_t *data;
    size_t size;
    size_t off;
} st_fuzz_frames;

/* The next message: *now_ns advances by its clock step, *msg and *len get its bytes (a length
 * beyond the input's end is cut to what is left). Returns 1 for a message, 0 when fewer than the
 * 3 bytes of a header are left. */
int st_fuzz_frame_next(st_fuzz_frames *fr, uint64_t *now_ns, const uint8_t **msg, size_t *len);

/* Appends msg (n bytes, at most 65535) framed with its clock step to buf (cap bytes, *used of
 * them taken). Returns 0, or -1 when it does not fit (nothing written). */
int st_fuzz_frame_put(uint8_t *buf, size_t cap, size_t *used, uint8_t step, const uint8_t *msg,
                      size_t n);

/* Turns logging off on the first call: bad input is logged, and a fuzzer's input is bad. */
void st_fuzz_quiet(void);

#endif
