/*
 * stats.h - what a load generator measured over one second (or a whole run), in mergeable form.
 *
 * An st_stats is the unit of measurement everywhere: each agent thread fills one per second, the
 * agent merges its threads' into one per second and sends it to the coordinator (common/wire.h),
 * the coordinator merges every agent's into the run's per-second aggregate and its total, and the
 * forwarder ships those. Merging adds counts and histograms exactly (never averages percentiles).
 *
 * Second k covers [start + k s, start + (k+1) s) of the common start instant: `sent` counts the
 * requests handed to a connection in it; ok, the error classes, bytes and the histograms count
 * the requests that completed in it; `inflight` is a gauge taken when it closed.
 *
 * Threading: not thread-safe; one owner at a time. Ownership: st_stats_init allocates the two
 * histograms, st_stats_fini frees them.
 */
#ifndef ST_STATS_H
#define ST_STATS_H

#include "hist.h"

#include <stddef.h>
#include <stdint.h>

typedef struct st_counts {
    uint64_t sent;
    uint64_t ok;       /* responses 2xx and 3xx */
    uint64_t http_4xx;
    uint64_t http_5xx;
    uint64_t err_connect;
    uint64_t err_timeout;
    uint64_t err_other; /* resets, malformed or 1xx responses, requests aborted at stop */
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t late;     /* sent more than the late threshold after their intended instant */
    uint64_t dropped;  /* due but never sent */
    uint64_t inflight; /* gauge: summed across threads and agents, not over time */
    uint64_t err_local; /* due, but this agent could not send it: out of file descriptors
                           (EMFILE/ENFILE). Never a target error and never in `sent`. */
    uint64_t err_tls;   /* the TLS handshake failed: protocol error, alert, no common version or
                           ALPN protocol, a peer that is not TLS */
    uint64_t err_cert;  /* the server's certificate did not verify */
} st_counts;

/* Every counter by name, in declaration order, for encoders that walk them all (result messages,
 * DynamoDB items): the counter is *(uint64_t *)((char *)&counts + offset). */
typedef struct st_counts_field {
    const char *name;
    size_t offset;
    int optional; /* added after schema version 1 first shipped: a message or item without it
                     reads as 0 */
} st_counts_field;

extern const st_counts_field st_counts_fields[];
#define ST_COUNTS_N_FIELDS 15

/* dst += src, field by field (inflight included: callers merging seconds over time overwrite it). */
void st_counts_add(st_counts *dst, const st_counts *src);
/* dst += src * times, field by field (inflight included): times records alike at once. */
void st_counts_add_times(st_counts *dst, const st_counts *src, uint64_t times);
/* 4xx + 5xx + connect + timeout + other + tls + cert. */
uint64_t st_counts_failed(const st_counts *c);
/* ok + failed: requests that completed one way or another. */
uint64_t st_counts_done(const st_counts *c);

/* The part of a second (or run) that went to one request name (plans with several names). */
typedef struct st_name_stats {
    st_counts c; /* inflight is not kept per name (always 0) */
    st_hist *lat;
    st_hist *lat_raw;
} st_name_stats;

/* At most this many request names are measured apart (a plan holds at most this many requests). */
#define ST_STATS_MAX_NAMES 4096

typedef struct st_stats {
    uint32_t second;
    st_counts c;
    st_hist *lat;     /* latency from the intended send instant (coordinated omission corrected) */
    st_hist *lat_raw; /* latency from the actual send instant (uncorrected) */
    /* Per request name (common/names.h), for plans with more than one: n_names parts whose
     * counts and histograms add up to the whole above. 0 and NULL otherwise. */
    size_t n_names;
    st_name_stats *names;
} st_stats;

/* Returns 0 or ST_ENOMEM (s is left zeroed; fini is still safe). No per-name parts. */
int st_stats_init(st_stats *s);
void st_stats_fini(st_stats *s);
/* Gives s per-name parts for n names (0 .. ST_STATS_MAX_NAMES; existing ones are kept, none are
 * taken away). Returns 0, ST_EINVAL or ST_ENOMEM (s unchanged). */
int st_stats_names(st_stats *s, size_t n);
/* Zeroes counts and histograms (the per-name parts too), keeps the allocation; second is left
 * as is. */
void st_stats_reset(st_stats *s);
/* dst += src (counts, both histograms and the per-name parts, which dst gains when src has them);
 * dst->second is unchanged. Returns 0, or ST_ENOMEM when dst could not gain src's per-name parts
 * (the whole is merged all the same, the parts are not). */
int st_stats_merge(st_stats *dst, const st_stats *src);

#endif
