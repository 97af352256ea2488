/*
 * names.h - the request names of a plan, as results are kept by name.
 *
 * Requests that share a name are one name in the results. A plan's names are numbered in the
 * order they first appear among its requests (request i has name index of_request[i]); that
 * index is what agents and the coordinator exchange (proto SecondRecord.by_name). Results are
 * kept by name only for plans with from 2 to ST_NAMES_KEPT_MAX names: each name costs two full
 * histograms (2 x 184 KiB) in every open second of every worker thread and of the coordinator,
 * so a plan of hundreds of URLs, each its own default name, would cost hundreds of MB. Plans
 * with one name, or more than ST_NAMES_KEPT_MAX, keep the whole only.
 *
 * Errors: st_names_init returns 0, ST_EINVAL (more than ST_STATS_MAX_NAMES names) or ST_ENOMEM.
 * Ownership: the names are borrowed from the plan, which must outlive the st_names;
 * of_request is owned (st_names_fini). Threading: read-only once made.
 */
#ifndef ST_NAMES_H
#define ST_NAMES_H

#include "plan.h"

#include <stddef.h>
#include <stdint.h>

#define ST_NAMES_KEPT_MAX 32

typedef struct st_names {
    size_t n;           /* distinct names */
    const char **name;  /* n names, borrowed from the plan's requests */
    uint32_t *of_request; /* per request of the plan: its name's index */
    size_t n_requests;
} st_names;

int st_names_init(st_names *out, const st_plan *p);
void st_names_fini(st_names *n);

/* How many names results are kept apart for: n when there are from 2 to ST_NAMES_KEPT_MAX,
 * else 0. */
size_t st_names_kept(const st_names *n);

/* st_names_kept for a plan, without allocating. */
size_t st_names_kept_of(const st_plan *p);

/* The index of a name, or -1. */
long st_names_find(const st_names *n, const char *name);

#endif
