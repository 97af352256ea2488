/*
 * opts.h - stampede-target's command line.
 *
 * main() calls st_target_opts_parse once; the server reads the result. A bad flag is reported as a
 * message naming the flag, the value and what is wrong, for main to print before exiting with 2.
 * Not thread-safe (there is only ever one caller).
 */
#ifndef ST_TARGET_OPTS_H
#define ST_TARGET_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "pick.h"

#define ST_TARGET_DEFAULT_BODY_BYTES     2
#define ST_TARGET_DEFAULT_MAX_BODY_BYTES (1024 * 1024)
#define ST_TARGET_MAX_BODY_BYTES         (64 * 1024 * 1024)

typedef struct st_target_opts {
    char listen_host[256]; /* numeric address or name, without brackets */
    int listen_port;       /* 0..65535; 0 picks a free port */
    const char *port_file; /* NULL, or a path (points into argv) */
    bool has_latency;
    st_delay latency; /* seeded with seed */
    uint64_t seed;
    st_mix mix;
    size_t body_bytes;
    size_t max_body_bytes; /* larger request bodies get 413 */
    uint64_t close_every;  /* 0 = never */
    bool has_stall;
    double stall_at_s;
    uint64_t stall_ms;
    st_log_level log_level;
    bool help;
} st_target_opts;

/* Parses argv[1..argc-1] into *o (which need not be initialised). Flags take their value as the
 * next argument or after '='. Returns 0, or ST_EINVAL with a one-line message in err (always
 * NUL-terminated, truncated to err_len). On 0 with o->help set, the caller prints the usage. */
int st_target_opts_parse(st_target_opts *o, int argc, char **argv, char *err, size_t err_len);

/* The usage text for --help, ending in a newline. */
const char *st_target_usage(void);

#endif
