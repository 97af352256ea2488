/*
 * split.h - exact division of one request schedule among agents and threads.
 *
 * The whole run sends global requests q = 0, 1, 2, ... at the instants the rate profile's integral
 * reaches q (profile.h). A slice is the part of that sequence one agent or one thread sends: the
 * global indexes whose residue modulo `period` is in `residues` (a lane set), thinned to every
 * `stride`-th of them starting at the `offset`-th. Element k of a slice is
 *     a = offset + k * stride,   q = (a / n_residues) * period + residues[a % n_residues].
 * Because the slices of a split are disjoint and together cover every q, the parts always add up
 * to exactly the profile, at any instant and any rate (5 rps over 8 agents is 5 rps), and because
 * residues are interleaved the merged sends stay evenly spaced.
 *
 * Who calls it: the coordinator gives each agent residues of one period (weighted by capacity,
 * st_split_weights); each agent subdivides its slice among its threads (st_slice_subdivide); the
 * request mix uses st_interleave_fill to pick request kinds by q.
 *
 * Ownership: an st_slice owns its residues array; _fini frees it. Thread-safe for readers.
 */
#ifndef ST_SPLIT_H
#define ST_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#define ST_SPLIT_MAX_PERIOD 1000000

typedef struct st_slice {
    uint64_t period;
    uint64_t *residues; /* owned; sorted, distinct, each < period */
    uint32_t n_residues;
    uint64_t stride; /* >= 1 */
    uint64_t offset; /* < stride */
} st_slice;

/* The whole sequence: period 1, residues {0}, stride 1, offset 0. Returns 0 or ST_ENOMEM. */
int st_slice_init_all(st_slice *s);

/* A slice with the given lanes (copied and sorted). Returns 0, ST_EINVAL (period 0 or above
 * ST_SPLIT_MAX_PERIOD, no residues, a residue >= period, duplicates, stride 0, offset >= stride)
 * or ST_ENOMEM. On error s is zeroed. */
int st_slice_init(st_slice *s, uint64_t period, const uint64_t *residues, uint32_t n_residues,
                  uint64_t stride, uint64_t offset);
void st_slice_fini(st_slice *s);

/* Child `part` of `parts` equal children of parent: they take turns element by element, so their
 * union is exactly the parent. Returns 0, ST_EINVAL (parts 0, part >= parts) or ST_ENOMEM. */
int st_slice_subdivide(const st_slice *parent, uint64_t parts, uint64_t part, st_slice *child);

/* Global index of element k. */
uint64_t st_slice_global(const st_slice *s, uint64_t k);

/* The smallest k whose global index is >= q (where a slice starts after a re-plan at q). */
uint64_t st_slice_first_at_or_after(const st_slice *s, uint64_t q);

/* Share of the whole sequence: n_residues / (period * stride). */
double st_slice_fraction(const st_slice *s);

/* Fills seq[0 .. sum(weights)-1] with part indexes so that part i appears exactly weights[i]
 * times, spread evenly: its c-th turn sits near (c + 1/2) / weights[i] of the sequence (ties go
 * to the lower index). O(sum log n), so that re-splitting 10,000 agents stays quick.
 * n >= 1; every weight >= 1; the sum must equal seq_len. Returns 0, ST_EINVAL or ST_ENOMEM. */
int st_interleave_fill(const uint32_t *weights, size_t n, uint32_t *seq, size_t seq_len);

/* Splits period = sum(weights) residues among n parts by weight, interleaved (st_interleave_fill).
 * residues_out[i] receives a malloc'ed sorted array of weights[i] residues (caller frees each).
 * Returns 0 and writes *period_out, ST_EINVAL (no parts, a weight of 0, sum above
 * ST_SPLIT_MAX_PERIOD) or ST_ENOMEM (nothing is left allocated). */
int st_split_weights(const uint32_t *weights, size_t n, uint64_t *period_out,
                     uint64_t **residues_out);

#endif
