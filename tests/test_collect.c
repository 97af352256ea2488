#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "assert_stats.h"

#include "clock.h"
#include "collect.h"
#include "error.h"
#include "stats.h"

/*
 * The agent's collector: worker threads close seconds, the consumer takes each second once every
 * worker reported it (or finished), merged exactly.
 */

/* A deadline this far from now, on the monotonic clock the collector waits on. */
static uint64_t in_ms(uint64_t ms)
{
    return st_clock_mono_ns() + ms * ST_NS_PER_MS;
}

/* What worker w measured in second k, into initialised stats: distinct per worker and second, so
 * a wrong merge shows. */
static void put(st_stats *s, int w, uint32_t k)
{
    s->second = k;
    s->c.sent = 10 + (uint64_t)w;
    s->c.ok = 9 + (uint64_t)w;
    s->c.http_5xx = 1;
    s->c.bytes_out = 1000 * (k + 1);
    st_hist_record_n(s->lat, 100 * (k + 1) + (uint64_t)w, 9 + (uint64_t)w);
    st_hist_record_n(s->lat_raw, 50 * (k + 1) + (uint64_t)w, 9 + (uint64_t)w);
}

static void measured(st_stats *s, int w, uint32_t k)
{
    assert_int_equal(st_stats_init(s), 0);
    put(s, w, k);
}

static void submit(st_collector *c, int w, uint32_t k)
{
    st_stats s;
    measured(&s, w, k);
    assert_int_equal(st_collector_submit(c, w, k, &s), 0);
    st_stats_fini(&s);
}

/* A collector for n workers from second first, which must be made. */
static st_collector *collector_new(int n, uint32_t first)
{
    st_collector *c = NULL;
    assert_int_equal(st_collector_new(&c, n, first), 0);
    return c;
}

/* The next second, within a second; it must be second k. */
static void take(st_collector *c, st_stats *out, uint32_t k)
{
    assert_int_equal(st_collector_next(c, out, in_ms(1000)), 0);
    assert_int_equal(out->second, k);
}

/* Worker w's second k over 3 request names: name j gets put(w + j, k), the whole their sum. */
static void measured_named(st_stats *s, int w, uint32_t k)
{
    assert_int_equal(st_stats_init(s), 0);
    assert_int_equal(st_stats_names(s, 3), 0);
    for (int j = 0; j < 3; j++) {
        st_stats part;
        measured(&part, w + j, k);
        st_test_add_part(s, (size_t)j, &part);
        st_stats_fini(&part);
    }
    s->second = k;
}

/* Per-name parts are merged name by name, exactly, with the whole; a worker whose stats have no
 * parts (none measured yet) leaves the parts as the others made them. */
static void test_collect_merges_per_name_parts(void **state)
{
    (void)state;
    st_collector *c = collector_new(3, 0);
    st_stats out, want, s;
    assert_int_equal(st_stats_init(&out), 0);
    assert_int_equal(st_stats_init(&want), 0);
    for (int w = 0; w < 2; w++) {
        measured_named(&s, w, 0);
        assert_int_equal(st_collector_submit(c, w, 0, &s), 0);
        st_stats_merge(&want, &s);
        st_stats_fini(&s);
    }
    assert_int_equal(st_stats_init(&s), 0);
    assert_int_equal(st_collector_submit(c, 2, 0, &s), 0);
    st_stats_fini(&s);
    take(c, &out, 0);
    assert_stats_parts_equal(&out, &want);
    for (int j = 0; j < 3; j++) {
        assert_int_equal(out.names[j].c.ok, 2 * 9 + (uint64_t)(2 * j + 1));
    }
    st_stats_fini(&want);
    st_stats_fini(&out);
    st_collector_free(c);
}

static void test_collect_new_needs_a_worker(void **state)
{
    (void)state;
    st_collector *c = (st_collector *)&c;
    assert_int_equal(st_collector_new(&c, 0, 0), ST_EINVAL);
    assert_ptr_equal(c, (st_collector *)&c);
    st_collector_free(NULL);
}

/* Second 0 is not complete until both workers closed it; then it is their exact merge. */
static void test_collect_waits_for_every_worker(void **state)
{
    (void)state;
    st_collector *c = collector_new(2, 0);
    st_stats out, want, s;
    assert_int_equal(st_stats_init(&out), 0);
    submit(c, 0, 0);
    assert_int_equal(st_collector_next(c, &out, in_ms(20)), ST_ETIMEDOUT);
    submit(c, 1, 0);
    take(c, &out, 0);
    assert_int_equal(st_stats_init(&want), 0);
    for (int w = 0; w < 2; w++) {
        measured(&s, w, 0);
        st_stats_merge(&want, &s);
        st_stats_fini(&s);
    }
    assert_stats_equal(&out, &want);
    /* Second 1: nothing yet. */
    assert_int_equal(st_collector_next(c, &out, in_ms(10)), ST_ETIMEDOUT);
    st_stats_fini(&want);
    st_stats_fini(&out);
    st_collector_free(c);
}

/* A worker that skips seconds closes them empty; a finished worker is not waited for; when all
 * finished and every second was taken, the collector is closed. */
static void test_collect_skips_and_finish(void **state)
{
    (void)state;
    st_collector *c = collector_new(2, 0);
    st_stats out, s;
    assert_int_equal(st_stats_init(&out), 0);
    submit(c, 0, 2); /* worker 0 skipped 0 and 1 */
    submit(c, 1, 0);
    take(c, &out, 0);
    measured(&s, 1, 0);
    assert_stats_equal(&out, &s);
    st_stats_fini(&s);
    /* Second 1: worker 1 has not closed it yet. */
    assert_int_equal(st_collector_next(c, &out, in_ms(10)), ST_ETIMEDOUT);
    st_collector_finish(c, 1);
    take(c, &out, 1);
    assert_int_equal(out.c.sent, 0);
    assert_int_equal(st_hist_count(out.lat), 0);
    take(c, &out, 2);
    measured(&s, 0, 2);
    assert_stats_equal(&out, &s);
    st_stats_fini(&s);
    /* Worker 0 may still submit second 3. */
    assert_int_equal(st_collector_next(c, &out, in_ms(10)), ST_ETIMEDOUT);
    st_collector_finish(c, 0);
    assert_int_equal(st_collector_next(c, &out, in_ms(1000)), ST_ECLOSED);
    st_stats_fini(&out);
    st_collector_free(c);
}

/* Seconds are taken from first_second on; a second already taken is refused, and the worker that
 * sent it still counts as having closed it. */
static void test_collect_refuses_seconds_taken(void **state)
{
    (void)state;
    st_collector *c = collector_new(1, 5);
    st_stats out, s;
    assert_int_equal(st_stats_init(&out), 0);
    measured(&s, 0, 4);
    assert_int_equal(st_collector_submit(c, 0, 4, &s), ST_EINVAL);
    st_stats_fini(&s);
    submit(c, 0, 5);
    take(c, &out, 5);
    measured(&s, 0, 5);
    assert_int_equal(st_collector_submit(c, 0, 5, &s), ST_EINVAL);
    assert_stats_equal(&out, &s); /* what was taken is not changed by the refused one */
    st_stats_fini(&s);
    st_collector_finish(c, 0);
    assert_int_equal(st_collector_next(c, &out, in_ms(1000)), ST_ECLOSED);
    st_stats_fini(&out);
    st_collector_free(c);
}

#define N_WORKERS 4
#define N_SECONDS 40

typedef struct worker_arg {
    st_collector *c;
    int w;
} worker_arg;

static void *worker_main(void *p)
{
    worker_arg *a = p;
    for (uint32_t k = 0; k < N_SECONDS; k++) {
        st_stats s;
        if (st_stats_init(&s)) {
            break;
        }
        put(&s, a->w, k);
        st_collector_submit(a->c, a->w, k, &s);
        st_stats_fini(&s);
    }
    st_collector_finish(a->c, a->w);
    return NULL;
}

/* Workers on their own threads; the consumer gets every second once, in order, exactly merged. */
static void test_collect_threads(void **state)
{
    (void)state;
    st_collector *c = collector_new(N_WORKERS, 0);
    pthread_t th[N_WORKERS];
    worker_arg args[N_WORKERS];
    for (int w = 0; w < N_WORKERS; w++) {
        args[w] = (worker_arg){c, w};
        assert_int_equal(pthread_create(&th[w], NULL, worker_main, &args[w]), 0);
    }
    st_stats out, want, s;
    assert_int_equal(st_stats_init(&out), 0);
    assert_int_equal(st_stats_init(&want), 0);
    uint32_t k = 0;
    int rc;
    while ((rc = st_collector_next(c, &out, in_ms(5000))) == 0) {
        assert_int_equal(out.second, k);
        st_stats_reset(&want);
        for (int w = 0; w < N_WORKERS; w++) {
            measured(&s, w, k);
            st_stats_merge(&want, &s);
            st_stats_fini(&s);
        }
        assert_stats_equal(&out, &want);
        k++;
    }
    assert_int_equal(rc, ST_ECLOSED);
    assert_int_equal(k, N_SECONDS);
    for (int w = 0; w < N_WORKERS; w++) {
        pthread_join(th[w], NULL);
    }
    st_stats_fini(&want);
    st_stats_fini(&out);
    st_collector_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collect_new_needs_a_worker),
        cmocka_unit_test(test_collect_merges_per_name_parts),
        cmocka_unit_test(test_collect_waits_for_every_worker),
        cmocka_unit_test(test_collect_skips_and_finish),
        cmocka_unit_test(test_collect_refuses_seconds_taken),
        cmocka_unit_test(test_collect_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
