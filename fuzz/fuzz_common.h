/*
 * fuzz_common.h - what the message fuzzers share: the framing of their inputs, a fake clock with
 * quiet logging for each input, and the agent they speak as.
 *
 * fuzz_coord_wire and fuzz_agent_reply read an input as a sequence of messages, each
 * [1 byte: clock step in 10 ms units][2 bytes: length, little-endian][length bytes], and
 * fuzz_seeds writes their seeds in the same framing.
 *
 * Errors: st_fuzz_frame_put returns -1 when a message does not fit; nothing else fails.
 * Ownership: messages point into the caller's input; nothing is allocated. Threading: the
 * functions keep no state but st_fuzz_quiet's, which is meant for one fuzzing thread.
 */
#ifndef ST_FUZZ_COMMON_H
#define ST_FUZZ_COMMON_H

#include "clock.h"
#include "session.h"

#include <stddef.h>
#include <stdint.h>

/* What every input starts with: a fake clock (st_clock_fake_now) reading now_ns. */
typedef struct st_fuzz_env {
    uint64_t now_ns;
    st_clock clock;
} st_fuzz_env;

/* Quiets logging (st_fuzz_quiet) and starts e's clock at 1000 s. e must not move while its clock
 * is used. */
void st_fuzz_start(st_fuzz_env *e);

/* Calls one(ctx, msg, len) for each message of the input (data, size) in turn, after advancing
 * *now_ns by its clock step; a length beyond the input's end is cut to what is left, and fewer
 * than the 3 bytes of a header left end the input. Stops early when one returns nonzero. */
void st_fuzz_frames_each(const uint8_t *data, size_t size, uint64_t *now_ns,
                         int (*one)(void *ctx, const uint8_t *msg, size_t len), void *ctx);

/* The agent the message fuzzers speak as: token "fuzz-token", instance 42, host "localhost", 2
 * cores and 2 threads, named and versioned `name`, with pid and clock_pings as given, on clock
 * (which must outlive any session made from cfg). */
void st_fuzz_session_cfg(st_session_cfg *cfg, const st_clock *clock, const char *name, uint32_t pid,
                         int clock_pings);

/* Appends msg (n bytes, at most 65535) framed with its clock step to buf (cap bytes, *used of
 * them taken). Returns 0, or -1 when it does not fit (nothing written). */
int st_fuzz_frame_put(uint8_t *buf, size_t cap, size_t *used, uint8_t step, const uint8_t *msg,
                      size_t n);

/* Turns logging off on the first call: bad input is logged, and a fuzzer's input is bad. */
void st_fuzz_quiet(void);

#endif
