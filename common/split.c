#include "split.h"
#include "error.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int st_slice_init(st_slice *s, uint64_t period, const uint64_t *residues, uint32_t n_residues,
                  uint64_t stride, uint64_t offset)
{
    memset(s, 0, sizeof(*s));
    if (period == 0 || period > ST_SPLIT_MAX_PERIOD || n_residues == 0 || n_residues > period ||
        !residues || stride == 0 || offset >= stride) {
        return ST_EINVAL;
    }
    uint64_t *r = malloc(n_residues * sizeof(*r));
    if (!r) {
        return ST_ENOMEM;
    }
    memcpy(r, residues, n_residues * sizeof(*r));
    qsort(r, n_residues, sizeof(*r), cmp_u64);
    for (uint32_t i = 0; i < n_residues; i++) {
        if (r[i] >= period || (i > 0 && r[i] == r[i - 1])) {
            free(r);
            return ST_EINVAL;
        }
    }
    s->period = period;
    s->residues = r;
    s->n_residues = n_residues;
    s->stride = stride;
    s->offset = offset;
    return 0;
}

int st_slice_init_all(st_slice *s)
{
    uint64_t zero = 0;
    return st_slice_init(s, 1, &zero, 1, 1, 0);
}

void st_slice_fini(st_slice *s)
{
    if (s) {
        free(s->residues);
        memset(s, 0, sizeof(*s));
    }
}

int st_slice_subdivide(const st_slice *parent, uint64_t parts, uint64_t part, st_slice *child)
{
    memset(child, 0, sizeof(*child));
    if (parts == 0 || part >= parts) {
        return ST_EINVAL;
    }
    return st_slice_init(child, parent->period, parent->residues, parent->n_residues,
                         parent->stride * parts, parent->offset + part * parent->stride);
}

uint64_t st_slice_global(const st_slice *s, uint64_t k)
{
    uint64_t a = s->offset + k * s->stride;
    return (a / s->n_residues) * s->period + s->residues[a % s->n_residues];
}

uint64_t st_slice_first_at_or_after(const st_slice *s, uint64_t q)
{
    /* a0 = how many lane-set elements lie below q; then the first a >= a0 on this slice's stride. */
    uint64_t full = q / s->period, rem = q % s->period;
    uint64_t below = 0;
    while (below < s->n_residues && s->residues[below] < rem) {
        below++;
    }
    uint64_t a0 = full * s->n_residues + below;
    if (a0 <= s->offset) {
        return 0;
    }
    return (a0 - s->offset + s->stride - 1) / s->stride;
}

double st_slice_fraction(const st_slice *s)
{
    return (double)s->n_residues / ((double)s->period * (double)s->stride);
}

/* Part i's c-th turn (c from 0) sits at (c + 1/2) / w_i of the period; the sequence is those
 * instants in order. Comparing (2c_i + 1) / w_i across parts needs only integer products. */
static bool turn_before(const uint32_t *w, const uint32_t *c, size_t a, size_t b)
{
    uint64_t lhs = (2ULL * c[a] + 1) * w[b], rhs = (2ULL * c[b] + 1) * w[a];
    return lhs < rhs || (lhs == rhs && a < b);
}

static void sift_down(size_t *heap, size_t n, size_t at, const uint32_t *w, const uint32_t *c)
{
    for (;;) {
        size_t l = 2 * at + 1, r = l + 1, m = at;
        if (l < n && turn_before(w, c, heap[l], heap[m])) {
            m = l;
        }
        if (r < n && turn_before(w, c, heap[r], heap[m])) {
            m = r;
        }
        if (m == at) {
            return;
        }
        size_t t = heap[at];
        heap[at] = heap[m];
        heap[m] = t;
        at = m;
    }
}

/* The sum of n >= 1 weights, each >= 1; ST_EINVAL otherwise. */
static int weight_sum(const uint32_t *weights, size_t n, uint64_t *total)
{
    if (n == 0) {
        return ST_EINVAL;
    }
    *total = 0;
    for (size_t i = 0; i < n; i++) {
        if (weights[i] == 0) {
            return ST_EINVAL;
        }
        *total += weights[i];
    }
    return 0;
}

int st_interleave_fill(const uint32_t *weights, size_t n, uint32_t *seq, size_t seq_len)
{
    uint64_t total;
    if (weight_sum(weights, n, &total)) {
        return ST_EINVAL;
    }
    if (total != seq_len) {
        return ST_EINVAL;
    }
    size_t *heap = malloc(n * sizeof(*heap));
    uint32_t *turns = calloc(n, sizeof(*turns));
    if (!heap || !turns) {
        free(heap);
        free(turns);
        return ST_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        heap[i] = i;
    }
    for (size_t i = n / 2; i-- > 0;) {
        sift_down(heap, n, i, weights, turns);
    }
    /* A part's turns c < w_i all fall before the end of the period and its later ones after
     * it, so the first `total` turns hold exactly w_i of each part. O(total log n). */
    for (size_t k = 0; k < seq_len; k++) {
        size_t best = heap[0];
        seq[k] = (uint32_t)best;
        turns[best]++;
        sift_down(heap, n, 0, weights, turns);
    }
    free(heap);
    free(turns);
    return 0;
}

int st_split_weights(const uint32_t *weights, size_t n, uint64_t *period_out,
                     uint64_t **residues_out)
{
    uint64_t total;
    if (weight_sum(weights, n, &total)) {
        return ST_EINVAL;
    }
    if (total > ST_SPLIT_MAX_PERIOD) {
        return ST_EINVAL;
    }
    uint32_t *seq = malloc(total * sizeof(*seq));
    size_t *fill = calloc(n, sizeof(*fill));
    int rc = ST_ENOMEM;
    if (!seq || !fill) {
        goto out;
    }
    memset(residues_out, 0, n * sizeof(*residues_out));
    for (size_t i = 0; i < n; i++) {
        residues_out[i] = malloc(weights[i] * sizeof(uint64_t));
        if (!residues_out[i]) {
            for (size_t j = 0; j < i; j++) {
                free(residues_out[j]);
                residues_out[j] = NULL;
            }
            goto out;
        }
    }
    rc = st_interleave_fill(weights, n, seq, total);
    if (rc) {
        for (size_t i = 0; i < n; i++) {
            free(residues_out[i]);
            residues_out[i] = NULL;
        }
        goto out;
    }
    for (uint64_t r = 0; r < total; r++) {
        residues_out[seq[r]][fill[seq[r]]++] = r;
    }
    *period_out = total;
out:
    free(fill);
    free(seq);
    return rc;
}
