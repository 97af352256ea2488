/*
 * pick.h - the per-request choices stampede-target makes: which status to answer with, and how long
 * to wait before answering.
 *
 * Both choices are deterministic so that tests can predict exact counts. The status mix is a smooth
 * weighted round robin: over every run of W consecutive picks from a rewind (W = the sum of the
 * weights) each status is picked exactly its weight times, spread out rather than bunched, and the
 * sequence repeats with period W. The delay is uniform between a minimum and a maximum, drawn from
 * a seeded PRNG (splitmix64), so the same seed and the same arrival order give the same delays.
 *
 * Used by the target's option parser (parsing) and its server loop (picking). The objects are plain
 * values with no heap memory: nothing to free. Not thread-safe; one owner per object.
 */
#ifndef ST_TARGET_PICK_H
#define ST_TARGET_PICK_H

#include <stdint.h>

#define ST_MIX_MAX        32      /* distinct statuses in one mix */
#define ST_MIX_MAX_WEIGHT 1000000 /* per entry, and for the sum */
#define ST_DELAY_MAX_MS   3600000.0

typedef struct st_mix_entry {
    int status; /* 200..599 */
    int weight; /* 0..ST_MIX_MAX_WEIGHT */
    long current;
} st_mix_entry;

typedef struct st_mix {
    int n;
    int total; /* sum of the weights, > 0 */
    st_mix_entry e[ST_MIX_MAX];
} st_mix;

/* A mix that always picks status (which must be 200..599). */
void st_mix_single(st_mix *m, int status);

/* Parses "STATUS[:WEIGHT][,STATUS[:WEIGHT]]...", e.g. "200:95,500:5" (a missing weight is 1; spaces
 * around items are allowed). Returns 0 and fills *m, or ST_EINVAL with a static reason in *why
 * (when why is not NULL) and *m unchanged. Statuses must be 200..599 and distinct, weights integers
 * 0..ST_MIX_MAX_WEIGHT with a positive sum of at most ST_MIX_MAX_WEIGHT. */
int st_mix_parse(st_mix *m, const char *spec, const char **why);

/* The index (0..n-1) of the next pick. Never fails on a parsed mix. */
int st_mix_next(st_mix *m);

/* Starts the sequence again from its beginning. */
void st_mix_rewind(st_mix *m);

typedef struct st_delay {
    double min_ms;
    double max_ms;
    uint64_t state;
} st_delay;

/* Parses "X" (a fixed delay) or "MIN-MAX" (uniform), in milliseconds, decimals allowed, each
 * 0..ST_DELAY_MAX_MS and MIN <= MAX. Returns 0 and fills *d (seeded with 0), or ST_EINVAL with a
 * static reason in *why and *d unchanged. */
int st_delay_parse(st_delay *d, const char *spec, const char **why);

/* Reads all of s (NUL-terminated) as a finite number from 0 to max: 0 with *out set, or ST_EINVAL
 * with *out unchanged. strtod's grammar: callers that take less (no hex, exponents or "inf") check
 * the characters first. Used for the delays here and for stampede-target's seconds flags. */
int st_delay_number(const char *s, double max, double *out);

/* Restarts the PRNG from seed. */
void st_delay_seed(st_delay *d, uint64_t seed);

/* The next delay in milliseconds, in [min_ms, max_ms]. A fixed delay does not advance the PRNG. */
double st_delay_next_ms(st_delay *d);

/* The standard reason phrase for an HTTP status, or a generic one for its class. Never NULL. */
const char *st_http_reason(int status);

#endif
