/*
 * wire.h - converting between stampede's structs and the protobuf messages of proto/stampede.proto.
 *
 * Builders turn our structs into protobuf-c messages whose memory comes from an st_arena, so a
 * whole message is released at once with st_arena_fini. Loaders check everything a peer sent
 * before using it (counts, histogram indexes and extremes, plan fields) and never crash on
 * malformed input: they return ST_EINVAL and leave the destination unchanged.
 *
 * st_wire_unpack is the one entry point for bytes from the network: it decodes an Envelope and
 * checks the protocol version and run id.
 *
 * Thread-safe (no shared state). Ownership as stated per function.
 */
#ifndef ST_WIRE_H
#define ST_WIRE_H

#include "plan.h"
#include "stats.h"
#include "stampede.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 2: records carry their per-name parts (SecondRecord.by_name). */
#define ST_PROTOCOL_VERSION 2

/* A bump allocator for building one message. Zero-initialise, then use; _fini frees it all. */
typedef struct st_arena {
    struct st_arena_block *head;
} st_arena;

/* Zeroed memory, or NULL when out of memory. */
void *st_arena_alloc(st_arena *a, size_t n);
char *st_arena_strdup(st_arena *a, const char *s);
void st_arena_fini(st_arena *a);

/* Builds a SecondRecord from s (counts and both histograms, sparse; the per-name parts that hold
 * anything, as by_name). Returns 0 or ST_ENOMEM. */
int st_wire_record_build(st_arena *a, const st_stats *s, uint64_t seq,
                         Stampede__SecondRecord **out);

/* Adds a received record into dst (counts, histograms and per-name parts, which dst gains as
 * needed; dst->second is not touched). Returns 0, ST_EINVAL for a malformed record (dst
 * unchanged), or ST_ENOMEM (the whole was added, the per-name parts could not be). */
int st_wire_record_merge(const Stampede__SecondRecord *r, st_stats *dst);

/* Checks a record without merging it: its counts and histograms agree, and its per-name parts
 * (each checked the same way) have ascending name indexes below ST_STATS_MAX_NAMES, an inflight
 * of 0, and add up to the whole in every count and in the histograms' sample counts, sums and
 * extremes. Returns 0 or ST_EINVAL. */
int st_wire_record_check(const Stampede__SecondRecord *r);

/* Whether a checked record fits a plan that keeps n_names names apart (st_names_kept: 0 for a
 * plan with one name): every name index is below n_names, and a record of a plan with several
 * names that counted anything has its per-name parts. Returns 0 or ST_EINVAL. */
int st_wire_record_check_names(const Stampede__SecondRecord *r, size_t n_names);

/* st_wire_record_merge for a record st_wire_record_check accepted: no second check (the
 * coordinator's ingest path checks once). Anything else is undefined. Returns 0 or ST_ENOMEM
 * (as st_wire_record_merge). */
int st_wire_record_apply(const Stampede__SecondRecord *r, st_stats *dst);

/* Builds the PlanSpec of a finished plan (requests and settings; the profile travels in the
 * assignment). Returns 0 or ST_ENOMEM. */
int st_wire_plan_build(st_arena *a, const st_plan *p, const char *engine, Stampede__PlanSpec **out);

/* Fills an initialised, empty plan from a PlanSpec and the stages of an assignment, then
 * finishes it (st_plan_finish with default_threads). Returns 0, ST_EINVAL (reason in err) or
 * ST_ENOMEM. Unlike the other loaders, on error the plan may hold part of the spec (it is not
 * finished): st_plan_fini releases it, as after st_plan_parse. */
int st_wire_plan_load(const Stampede__PlanSpec *spec, const Stampede__Assignment *asg,
                      int default_threads, st_plan *out, char *err, size_t err_len);

/* Builds the stages array of an assignment from a profile. Returns 0 or ST_ENOMEM. */
int st_wire_stages_build(st_arena *a, const st_profile *p, Stampede__Stage ***out, size_t *n);

/* Builds a profile from received stages. Returns 0, ST_EINVAL or ST_ENOMEM. */
int st_wire_profile_load(Stampede__Stage *const *stages, size_t n, st_profile *out);

/* ---- updates from records packed once --------------------------------------------------------
 *
 * An agent keeps every record until it is acknowledged and may send it several times, and a
 * simulator sends thousands a second: both pack each record once, as its "body" (the record with
 * seq and second left out), and an update is assembled from the bodies. The bytes are exactly
 * those stampede__envelope__pack gives for the same envelope with the records as structs, so the
 * coordinator cannot tell the two apart. */

/* Packs r without its seq and second (as if both were 0) into a malloc'ed buffer (caller frees;
 * r is not changed). Returns 0 or ST_ENOMEM. */
int st_wire_record_body_pack(const Stampede__SecondRecord *r, uint8_t **body, size_t *len);

/* st_wire_record_build and st_wire_record_body_pack in one step. Returns 0 or ST_ENOMEM. */
int st_wire_record_body_build(const st_stats *s, uint8_t **body, size_t *len);

/* A record as an update carries it: its sequence number and second, and its body. */
typedef struct st_wire_packed_record {
    uint64_t seq;
    uint32_t second;
    const uint8_t *body; /* from st_wire_record_body_pack; borrowed */
    size_t len;
} st_wire_packed_record;

/* Packs Envelope{version ST_PROTOCOL_VERSION, run_id, update} into a malloc'ed buffer (caller
 * frees), where update is *up (whose own records must be empty) with recs[0..n) as its records.
 * run_id NULL is "". Returns 0, ST_EINVAL (up has records of its own) or ST_ENOMEM. */
int st_wire_update_pack(const char *run_id, const Stampede__AgentUpdate *up,
                        const st_wire_packed_record *recs, size_t n, uint8_t **buf, size_t *len);

/* Packs an envelope into a malloc'ed buffer (caller frees). Returns 0 or ST_ENOMEM. */
int st_wire_pack(const Stampede__Envelope *env, uint8_t **buf, size_t *len);

/* Decodes bytes from a peer. Returns the envelope (free with stampede__envelope__free_unpacked(e,
 * NULL)) and *err = 0; or NULL with *err = ST_EPROTO (not a message of ours, no body, or another
 * protocol version) or ST_EINVAL (a run id is expected and differs). run_id NULL or "" accepts
 * any run. */
Stampede__Envelope *st_wire_unpack(const uint8_t *buf, size_t len, const char *run_id, int *err);

#endif
