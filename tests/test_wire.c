#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "assert_text.h"

#include "assert_stats.h"

#include "error.h"
#include "hist.h"
#include "plan.h"
#include "stats.h"
#include "wire.h"

/* ---- helpers ------------------------------------------------------------------------------- */

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A second of measurements with n responses of every HTTP class and a few failures. */
static void fill_stats(st_stats *s, uint64_t seed, int n)
{
    for (int i = 0; i < n; i++) {
        unsigned bits = (unsigned)(xorshift(&seed) % 24);
        uint64_t v = (xorshift(&seed) & ((1ULL << bits) - 1)) | (1ULL << bits);
        st_hist_record(s->lat, v + 50);
        st_hist_record(s->lat_raw, v);
        switch (i % 4) {
        case 0:
            s->c.http_4xx++;
            break;
        case 1:
            s->c.http_5xx++;
            break;
        default:
            s->c.ok++;
            break;
        }
    }
    s->c.sent = (uint64_t)n + 3;
    s->c.err_connect = 1;
    s->c.err_timeout = 2;
    s->c.bytes_in = 1000 * (uint64_t)n;
    s->c.bytes_out = 300 * (uint64_t)n;
    s->c.late = 4;
    s->c.dropped = 5;
    s->c.inflight = 6;
}

/* A small valid record: 2 ok at 100 us, 1 ok at 300 us, one 5xx at 5000 us (corrected) and
 * 90 / 290 / 4900 us (uncorrected), one connect error. */
static Stampede__SecondRecord *small_record(st_arena *a, st_stats *s)
{
    assert_int_equal(st_stats_init(s), 0);
    st_hist_record_n(s->lat, 100, 2);
    st_hist_record(s->lat, 300);
    st_hist_record(s->lat, 5000);
    st_hist_record_n(s->lat_raw, 90, 2);
    st_hist_record(s->lat_raw, 290);
    st_hist_record(s->lat_raw, 4900);
    s->c.sent = 5;
    s->c.ok = 3;
    s->c.http_5xx = 1;
    s->c.err_connect = 1;
    s->second = 7;
    Stampede__SecondRecord *r = NULL;
    assert_int_equal(st_wire_record_build(a, s, 11, &r), 0);
    assert_int_equal(st_wire_record_check(r), 0);
    return r;
}

/* The record must be refused, and merging it must leave a stats untouched. */
static void expect_refused(const Stampede__SecondRecord *r)
{
    assert_int_equal(st_wire_record_check(r), ST_EINVAL);
    st_stats dst, before;
    assert_int_equal(st_stats_init(&dst), 0);
    assert_int_equal(st_stats_init(&before), 0);
    fill_stats(&dst, 5, 40);
    st_stats_merge(&before, &dst);
    assert_int_equal(st_wire_record_merge(r, &dst), ST_EINVAL);
    assert_stats_equal(&dst, &before);
    st_stats_fini(&dst);
    st_stats_fini(&before);
}

/* The record checks' fixture: small_record in an arena of its own. */
typedef struct rec_fx {
    st_arena a;
    st_stats s;
    Stampede__SecondRecord *r;
} rec_fx;

static int rec_setup(void **state)
{
    rec_fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->r = small_record(&f->a, &f->s);
    *state = f;
    return 0;
}

static int rec_teardown(void **state)
{
    rec_fx *f = *state;
    st_stats_fini(&f->s);
    st_arena_fini(&f->a);
    free(f);
    return 0;
}

/* ---- records ------------------------------------------------------------------------------- */

static void test_wire_record_round_trip_equals_source(void **state)
{
    (void)state;
    st_stats src;
    assert_int_equal(st_stats_init(&src), 0);
    fill_stats(&src, 12345, 3000);
    src.second = 42;

    st_arena a = {0};
    Stampede__SecondRecord *r = NULL;
    assert_int_equal(st_wire_record_build(&a, &src, 9, &r), 0);
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    Stampede__AgentUpdate up = STAMPEDE__AGENT_UPDATE__INIT;
    env.version = ST_PROTOCOL_VERSION;
    env.run_id = "run-a";
    env.body_case = STAMPEDE__ENVELOPE__BODY_UPDATE;
    env.update = &up;
    up.records = &r;
    up.n_records = 1;
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(st_wire_pack(&env, &buf, &len), 0);
    st_arena_fini(&a);

    int err = 1;
    Stampede__Envelope *e = st_wire_unpack(buf, len, "run-a", &err);
    free(buf);
    assert_non_null(e);
    assert_int_equal(err, 0);
    assert_int_equal(e->update->n_records, 1);
    const Stampede__SecondRecord *got = e->update->records[0];
    assert_int_equal(got->seq, 9);
    assert_int_equal(got->second, 42);

    /* Into an empty stats: the source again. */
    st_stats dst;
    assert_int_equal(st_stats_init(&dst), 0);
    dst.second = 3;
    assert_int_equal(st_wire_record_merge(got, &dst), 0);
    assert_stats_equal(&dst, &src);
    assert_int_equal(dst.second, 3);

    /* Into a stats that holds something already: the same as merging the source. */
    st_stats other, want;
    assert_int_equal(st_stats_init(&other), 0);
    assert_int_equal(st_stats_init(&want), 0);
    fill_stats(&other, 777, 500);
    st_stats_merge(&want, &other);
    st_stats_merge(&want, &src);
    assert_int_equal(st_wire_record_merge(got, &other), 0);
    assert_stats_equal(&other, &want);

    stampede__envelope__free_unpacked(e, NULL);
    st_stats_fini(&src);
    st_stats_fini(&dst);
    st_stats_fini(&other);
    st_stats_fini(&want);
}

static void test_wire_record_empty_round_trip(void **state)
{
    (void)state;
    st_stats src, dst;
    assert_int_equal(st_stats_init(&src), 0);
    assert_int_equal(st_stats_init(&dst), 0);
    src.c.sent = 2;
    src.c.dropped = 2;
    st_arena a = {0};
    Stampede__SecondRecord *r = NULL;
    assert_int_equal(st_wire_record_build(&a, &src, 1, &r), 0);
    assert_int_equal(r->latency->n_count, 0);
    assert_int_equal(st_wire_record_merge(r, &dst), 0);
    assert_stats_equal(&dst, &src);
    st_arena_fini(&a);
    st_stats_fini(&src);
    st_stats_fini(&dst);
}

static void test_wire_record_check_refuses_zero_gap(void **state)
{
    rec_fx *f = *state;
    Stampede__SecondRecord *r = f->r;
    Stampede__Histogram *h = r->latency;
    assert_int_equal(h->n_count, 3); /* 100, 300, 5000 */
    /* The second bucket said again: keep the extremes inside the buckets left, so that the zero
     * gap is the only thing wrong. */
    h->index_gap[2] = 0;
    h->max_us = 300;
    expect_refused(r);
    /* A zero first gap is index 0, which is fine. */
    st_stats z;
    assert_int_equal(st_stats_init(&z), 0);
    st_hist_record(z.lat, 0);
    st_hist_record(z.lat_raw, 0);
    z.c.ok = 1;
    Stampede__SecondRecord *r0 = NULL;
    assert_int_equal(st_wire_record_build(&f->a, &z, 1, &r0), 0);
    assert_int_equal(r0->latency->index_gap[0], 0);
    assert_int_equal(st_wire_record_check(r0), 0);
    st_stats_fini(&z);
}

static void test_wire_record_check_refuses_index_past_last_bucket(void **state)
{
    rec_fx *f = *state;
    Stampede__SecondRecord *r = f->r;
    Stampede__Histogram *h = r->latency_uncorrected;
    uint32_t first = h->index_gap[0];
    h->index_gap[2] = st_hist_bucket_count() - first - h->index_gap[1];
    expect_refused(r);
    h->index_gap[2] = UINT32_MAX;
    expect_refused(r);
}

static void test_wire_record_check_refuses_length_mismatch(void **state)
{
    rec_fx *f = *state;
    Stampede__SecondRecord *r = f->r;
    /* Fewer index gaps than counts. */
    r->latency->n_index_gap--;
    expect_refused(r);
    r->latency->n_index_gap++;
    /* Fewer counts than index gaps: the last bucket (the 5xx at 5000 / 4900 us) dropped from
     * both histograms' counts, with the counts and extremes to match. */
    r->latency->n_count--;
    r->latency_uncorrected->n_count--;
    r->counts->http_5xx = 0;
    r->latency->max_us = 300;
    r->latency_uncorrected->max_us = 290;
    expect_refused(r);
    r->latency->n_index_gap--;
    r->latency_uncorrected->n_index_gap--;
    assert_int_equal(st_wire_record_check(r), 0);
}

static void test_wire_record_check_refuses_extremes_outside_buckets(void **state)
{
    rec_fx *f = *state;
    Stampede__SecondRecord *r = f->r;
    Stampede__Histogram *h = r->latency;
    h->min_us = 99; /* below the first occupied bucket (exact below 2048) */
    expect_refused(r);
    h->min_us = 100;
    h->max_us = 1ULL << 20; /* above the last */
    expect_refused(r);
    h->max_us = 4000; /* between occupied buckets, not in the last */
    expect_refused(r);
    h->max_us = 5000;
    h->min_us = 6000; /* min above max */
    expect_refused(r);
    h->min_us = 100;
    assert_int_equal(st_wire_record_check(r), 0);
}

static void test_wire_record_check_refuses_totals_not_matching_counts(void **state)
{
    rec_fx *f = *state;
    Stampede__SecondRecord *r = f->r;
    /* More HTTP responses than latency samples, even with any number of other failures. */
    r->counts->ok++;
    expect_refused(r);
    r->counts->err_other = UINT64_MAX;
    expect_refused(r);
    r->counts->err_other = 0;
    /* Fewer HTTP responses than samples, with no other failure to account for the rest. */
    r->counts->ok -= 2;
    expect_refused(r);
    /* ... which an "other" failure (a 1xx answer) may. */
    r->counts->err_other = 1;
    assert_int_equal(st_wire_record_check(r), 0);
    r->counts->err_other = 0;
    r->counts->ok++;
    /* The two histograms disagree on how many samples there are. */
    r->latency_uncorrected->count[0]++;
    expect_refused(r);
    r->latency_uncorrected->count[0]--;
    /* A zero count in a sparse histogram. */
    r->latency->count[1] = 0;
    r->counts->ok--;
    r->latency_uncorrected->count[1] = 0;
    expect_refused(r);
}

static void test_wire_record_check_refuses_counts_that_wrap(void **state)
{
    rec_fx *f = *state;
    Stampede__SecondRecord *r = f->r;
    /* ok + 5xx adds up past 2^64 and wraps to the 4 samples there are. */
    r->counts->ok = UINT64_MAX;
    r->counts->http_5xx = 5;
    expect_refused(r);
    /* Sample counts that wrap to the 4 responses the counts give. */
    r->counts->ok = 3;
    r->counts->http_5xx = 1;
    for (int i = 0; i < 2; i++) {
        Stampede__Histogram *h = i ? r->latency_uncorrected : r->latency;
        h->count[0] = 3; /* 3 + 2^63 + 2^63 + 1 wraps to 4 */
        h->count[1] = 1ULL << 63;
        h->count[2] = (1ULL << 63) + 1;
    }
    expect_refused(r);
}

static void test_wire_record_check_refuses_missing_parts(void **state)
{
    rec_fx *f = *state;
    Stampede__SecondRecord *r = f->r;
    assert_int_equal(st_wire_record_check(NULL), ST_EINVAL);
    Stampede__Counts *k = r->counts;
    r->counts = NULL;
    expect_refused(r);
    r->counts = k;
    Stampede__Histogram *h = r->latency;
    r->latency = NULL;
    expect_refused(r);
    r->latency = h;
    h = r->latency_uncorrected;
    r->latency_uncorrected = NULL;
    expect_refused(r);
    r->latency_uncorrected = h;
    assert_int_equal(st_wire_record_check(r), 0);
}

/* ---- updates from records packed once ------------------------------------------------------ */

/* st_wire_update_pack gives protobuf-c's bytes for the same update with struct records: with no
 * record, with one of second 0 (proto3 leaves it out), and with several whose seq and second take
 * multi-byte varints, an update with every scalar field set, and one with all of them zero. */
static void test_wire_update_pack_equals_protobuf_c(void **state)
{
    (void)state;
    st_stats s[3];
    st_arena a = {0};
    Stampede__SecondRecord *r[3];
    uint8_t *body[3];
    size_t body_len[3];
    const uint64_t seqs[3] = {1, 200, 0x123456789ULL};
    const uint32_t seconds[3] = {0, 1, 299};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(st_stats_init(&s[i]), 0);
        fill_stats(&s[i], 100 + (uint64_t)i, 50 * (i + 1));
        s[i].second = seconds[i];
        assert_int_equal(st_wire_record_build(&a, &s[i], seqs[i], &r[i]), 0);
        assert_int_equal(st_wire_record_body_pack(r[i], &body[i], &body_len[i]), 0);
        /* The record itself is left as it was. */
        assert_int_equal(r[i]->seq, seqs[i]);
        assert_int_equal(r[i]->second, seconds[i]);
    }
    /* The body of a record built from stats is the same by either way. */
    uint8_t *direct;
    size_t direct_len;
    assert_int_equal(st_wire_record_body_build(&s[2], &direct, &direct_len), 0);
    assert_int_equal(direct_len, body_len[2]);
    assert_memory_equal(direct, body[2], direct_len);
    free(direct);

    for (int round = 0; round < 4; round++) {
        Stampede__AgentUpdate up = STAMPEDE__AGENT_UPDATE__INIT;
        if (round > 0) {
            up.agent_id = 7;
            up.instance_id = 0xfedcba9876543210ULL;
            up.epoch = (uint32_t)round;
            up.state = STAMPEDE__AGENT_STATE__AGENT_DONE;
            up.clock_offset_ns = -12345;
            up.clock_rtt_ns = 67890;
            up.first_send_coord_ns = 123456789;
            up.error = "an error";
            up.sent_agent_ns = 1000 + (uint64_t)round;
            up.last_seq = 300;
        }
        size_t n = round < 2 ? 0 : round == 2 ? 1 : 3;
        st_wire_packed_record recs[3];
        for (size_t i = 0; i < n; i++) {
            recs[i] = (st_wire_packed_record){seqs[i], seconds[i], body[i], body_len[i]};
        }
        const char *run_id = round == 1 ? NULL : "20261121T000000Z-5e1fc4ec";
        uint8_t *fast, *ref;
        size_t fast_len, ref_len;
        assert_int_equal(st_wire_update_pack(run_id, &up, recs, n, &fast, &fast_len), 0);

        Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
        env.version = ST_PROTOCOL_VERSION;
        env.run_id = (char *)(run_id ? run_id : "");
        env.body_case = STAMPEDE__ENVELOPE__BODY_UPDATE;
        env.update = &up;
        up.records = n ? r : NULL;
        up.n_records = n;
        assert_int_equal(st_wire_pack(&env, &ref, &ref_len), 0);
        assert_int_equal(fast_len, ref_len);
        assert_memory_equal(fast, ref, ref_len);

        /* And it decodes to the records it was given. */
        int err = 1;
        Stampede__Envelope *e = st_wire_unpack(fast, fast_len, run_id, &err);
        assert_non_null(e);
        assert_int_equal(err, 0);
        assert_int_equal(e->update->n_records, n);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(e->update->records[i]->seq, seqs[i]);
            assert_int_equal(e->update->records[i]->second, seconds[i]);
            st_stats got;
            assert_int_equal(st_stats_init(&got), 0);
            assert_int_equal(st_wire_record_merge(e->update->records[i], &got), 0);
            got.second = seconds[i];
            assert_stats_equal(&got, &s[i]);
            st_stats_fini(&got);
        }
        stampede__envelope__free_unpacked(e, NULL);
        free(fast);
        free(ref);

        /* An update that holds records of its own is refused. */
        if (n) {
            uint8_t *none = NULL;
            size_t none_len = 0;
            assert_int_equal(st_wire_update_pack(run_id, &up, recs, n, &none, &none_len),
                             ST_EINVAL);
            assert_null(none);
        }
    }
    for (int i = 0; i < 3; i++) {
        free(body[i]);
        st_stats_fini(&s[i]);
    }
    st_arena_fini(&a);
}

/* ---- plans --------------------------------------------------------------------------------- */

static const char binary_body[] = {'a', 0, 'b', 0, 0, '\xff', 'c'};

/* An open-loop plan with two requests (headers; a binary body), weights and settings. */
static void make_plan(st_plan *p)
{
    char err[256] = "";
    st_plan_init(p);
    const char *json =
        "{\"requests\": ["
        "{\"name\": \"home\", \"url\": \"http://target.test:8080/a?x=1\", \"weight\": 3,"
        " \"headers\": {\"Accept\": \"text/plain\", \"X-Trace\": \"on\"}},"
        "{\"url\": \"https://target.test/b\", \"method\": \"PUT\", \"body\": \"x\", \"weight\": 2,"
        " \"headers\": {\"Content-Type\": \"application/octet-stream\"}}],"
        "\"stages\": [{\"duration\": 5, \"target\": 50}, {\"duration\": 10, \"rate\": 50}],"
        "\"connections\": 12, \"threads\": 3, \"timeout_ms\": 2500, \"late_ms\": 7,"
        " \"send_window\": \"250us\", \"insecure\": true}";
    assert_int_equal(st_plan_parse(p, json, strlen(json), "plan.json", err, sizeof(err)), 0);
    free(p->requests[1].body);
    p->requests[1].body = malloc(sizeof(binary_body));
    assert_non_null(p->requests[1].body);
    memcpy(p->requests[1].body, binary_body, sizeof(binary_body));
    p->requests[1].body_len = sizeof(binary_body);
    static const char pem[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    p->cacert = strdup("/etc/stampede/ca.pem");
    p->cacert_pem = strdup(pem);
    assert_non_null(p->cacert);
    assert_non_null(p->cacert_pem);
    p->cacert_pem_len = strlen(pem);
    assert_int_equal(st_plan_finish(p, 4, err, sizeof(err)), 0);
}

/* The spec and the assignment of p, through the bytes of a Prepare. */
static Stampede__Envelope *prepare_round_trip(const st_plan *p, const char *engine)
{
    st_arena a = {0};
    Stampede__PlanSpec *spec = NULL;
    assert_int_equal(st_wire_plan_build(&a, p, engine, &spec), 0);
    Stampede__Assignment asg = STAMPEDE__ASSIGNMENT__INIT;
    if (!p->closed_loop) {
        assert_int_equal(st_wire_stages_build(&a, &p->profile, &asg.stages, &asg.n_stages), 0);
    }
    Stampede__Prepare prep = STAMPEDE__PREPARE__INIT;
    prep.plan = spec;
    prep.assignment = &asg;
    Stampede__CoordReply rep = STAMPEDE__COORD_REPLY__INIT;
    rep.prepare = &prep;
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    env.version = ST_PROTOCOL_VERSION;
    env.run_id = "r";
    env.body_case = STAMPEDE__ENVELOPE__BODY_REPLY;
    env.reply = &rep;
    uint8_t *buf;
    size_t len;
    assert_int_equal(st_wire_pack(&env, &buf, &len), 0);
    st_arena_fini(&a);
    int err;
    Stampede__Envelope *e = st_wire_unpack(buf, len, "r", &err);
    free(buf);
    assert_non_null(e);
    assert_non_null(e->reply->prepare);
    return e;
}

static void test_wire_plan_round_trip(void **state)
{
    (void)state;
    st_plan src, got;
    make_plan(&src);
    Stampede__Envelope *e = prepare_round_trip(&src, "fast");
    const Stampede__Prepare *prep = e->reply->prepare;
    assert_string_equal(prep->plan->engine, "fast");

    char err[256] = "";
    st_plan_init(&got);
    assert_int_equal(st_wire_plan_load(prep->plan, prep->assignment, 9, &got, err, sizeof(err)), 0);
    assert_true(got.finished);
    assert_int_equal(got.n_requests, 2);
    for (size_t i = 0; i < 2; i++) {
        const st_request *x = &src.requests[i], *y = &got.requests[i];
        assert_string_equal(y->name, x->name);
        assert_string_equal(y->method, x->method);
        assert_string_equal(y->url, x->url);
        assert_int_equal(y->weight, x->weight);
        assert_int_equal(y->n_headers, x->n_headers);
        for (size_t h = 0; h < x->n_headers; h++) {
            assert_string_equal(y->headers[h], x->headers[h]);
        }
    }
    assert_int_equal(got.requests[0].n_headers, 2);
    assert_null(got.requests[0].body);
    assert_int_equal(got.requests[1].body_len, sizeof(binary_body));
    assert_memory_equal(got.requests[1].body, binary_body, sizeof(binary_body));
    assert_int_equal(got.connections, 12);
    assert_int_equal(got.threads, 3);
    assert_int_equal(got.timeout_ms, 2500);
    assert_int_equal(got.late_ms, 7);
    assert_true(got.send_window_s == 250e-6); /* as send_window_us = 250 */
    assert_int_equal(got.insecure, 1);
    /* The CA file travels as its contents: the agent need not have the file. */
    assert_string_equal(got.cacert, src.cacert);
    assert_int_equal(got.cacert_pem_len, src.cacert_pem_len);
    assert_memory_equal(got.cacert_pem, src.cacert_pem, src.cacert_pem_len);
    assert_int_equal(got.http2, 0);
    assert_false(got.closed_loop);
    assert_int_equal(got.profile.n_stages, src.profile.n_stages);
    for (size_t i = 0; i < src.profile.n_stages; i++) {
        assert_true(got.profile.stages[i].duration_s == src.profile.stages[i].duration_s);
        assert_true(got.profile.stages[i].from_rps == src.profile.stages[i].from_rps);
        assert_true(got.profile.stages[i].to_rps == src.profile.stages[i].to_rps);
    }
    assert_true(got.profile.total_n == src.profile.total_n);
    /* The mix follows the weights on both sides. */
    assert_int_equal(got.mix_len, src.mix_len);
    assert_memory_equal(got.mix, src.mix, src.mix_len * sizeof(*src.mix));
    st_plan_fini(&got);
    stampede__envelope__free_unpacked(e, NULL);

    /* Threads left to the agent: its default. */
    src.threads = -1;
    e = prepare_round_trip(&src, NULL);
    assert_string_equal(e->reply->prepare->plan->engine, "auto");
    assert_int_equal(e->reply->prepare->plan->threads, 0);
    st_plan_init(&got);
    assert_int_equal(st_wire_plan_load(e->reply->prepare->plan, e->reply->prepare->assignment, 9,
                                       &got, err, sizeof(err)),
                     0);
    assert_int_equal(got.threads, 9);
    st_plan_fini(&got);
    stampede__envelope__free_unpacked(e, NULL);
    st_plan_fini(&src);
}

static void test_wire_plan_round_trip_closed_loop(void **state)
{
    (void)state;
    st_plan src, got;
    char err[256] = "";
    st_plan_init(&src);
    const char *json = "{\"url\": \"http://h/\", \"rate\": 0, \"duration\": 2.5, \"threads\": 2}";
    assert_int_equal(st_plan_parse(&src, json, strlen(json), "p", err, sizeof(err)), 0);
    assert_int_equal(st_plan_finish(&src, 1, err, sizeof(err)), 0);
    Stampede__Envelope *e = prepare_round_trip(&src, "curl");
    assert_int_equal(e->reply->prepare->assignment->n_stages, 0);
    st_plan_init(&got);
    assert_int_equal(st_wire_plan_load(e->reply->prepare->plan, e->reply->prepare->assignment, 1,
                                       &got, err, sizeof(err)),
                     0);
    assert_true(got.closed_loop);
    assert_true(got.duration_s == 2.5);
    assert_string_equal(got.requests[0].url, "http://h/");
    st_plan_fini(&got);
    /* A closed-loop plan needs no assignment at all. */
    st_plan_init(&got);
    assert_int_equal(st_wire_plan_load(e->reply->prepare->plan, NULL, 1, &got, err, sizeof(err)),
                     0);
    st_plan_fini(&got);
    stampede__envelope__free_unpacked(e, NULL);
    st_plan_fini(&src);
}

/* Loads spec into a fresh plan and expects ST_EINVAL with a message containing frag. */
static void expect_plan_refused(const Stampede__PlanSpec *spec, const Stampede__Assignment *asg,
                                const char *frag)
{
    st_plan p;
    char err[256] = "";
    st_plan_init(&p);
    assert_int_equal(st_wire_plan_load(spec, asg, 2, &p, err, sizeof(err)), ST_EINVAL);
    assert_says(err, frag);
    assert_false(p.finished);
    st_plan_fini(&p);
}

static void test_wire_plan_load_refusals(void **state)
{
    (void)state;
    st_plan src;
    make_plan(&src);
    Stampede__Envelope *e = prepare_round_trip(&src, "auto");
    Stampede__PlanSpec *spec = e->reply->prepare->plan;
    Stampede__Assignment *asg = e->reply->prepare->assignment;

    expect_plan_refused(NULL, asg, "requests expected");
    size_t n = spec->n_requests;
    spec->n_requests = 0;
    expect_plan_refused(spec, asg, "requests expected");
    spec->n_requests = n;

    char *url = spec->requests[1]->url;
    spec->requests[1]->url = "ftp://target.test/b";
    expect_plan_refused(spec, asg, "request 1: URL");
    spec->requests[1]->url = "not a url";
    expect_plan_refused(spec, asg, "request 1: URL");
    spec->requests[1]->url = url;

    char *hdr = spec->requests[0]->headers[1];
    spec->requests[0]->headers[1] = "X-Trace on";
    expect_plan_refused(spec, asg, "header 1");
    spec->requests[0]->headers[1] = "X-Trace: on\r\nHost: evil";
    expect_plan_refused(spec, asg, "header 1");
    spec->requests[0]->headers[1] = hdr;

    uint32_t w = spec->requests[0]->weight;
    spec->requests[0]->weight = 0;
    expect_plan_refused(spec, asg, "request 0");
    spec->requests[0]->weight = w;

    uint32_t conns = spec->connections;
    spec->connections = 0;
    expect_plan_refused(spec, asg, "connections");
    spec->connections = conns;

    expect_plan_refused(spec, NULL, "no rate profile");
    size_t stages = asg->n_stages;
    asg->n_stages = 0;
    expect_plan_refused(spec, asg, "no rate profile");
    asg->n_stages = stages;

    /* Everything restored: it loads. */
    st_plan p;
    char err[256];
    st_plan_init(&p);
    assert_int_equal(st_wire_plan_load(spec, asg, 2, &p, err, sizeof(err)), 0);
    st_plan_fini(&p);
    stampede__envelope__free_unpacked(e, NULL);
    st_plan_fini(&src);
}

static void test_wire_profile_load_refusals(void **state)
{
    (void)state;
    Stampede__Stage s0 = STAMPEDE__STAGE__INIT, s1 = STAMPEDE__STAGE__INIT;
    s0.duration_s = 2;
    s0.from_rps = 0;
    s0.to_rps = 10;
    s1.duration_s = 3;
    s1.from_rps = 10;
    s1.to_rps = 10;
    Stampede__Stage *stages[] = {&s0, &s1};
    st_profile p;
    assert_int_equal(st_wire_profile_load(stages, 2, &p), 0);
    assert_true(p.total_n == 10 + 30);
    st_profile_fini(&p);
    assert_int_equal(st_wire_profile_load(stages, 0, &p), ST_EINVAL);
    Stampede__Stage *with_null[] = {&s0, NULL};
    assert_int_equal(st_wire_profile_load(with_null, 2, &p), ST_EINVAL);
    s1.duration_s = -1;
    assert_int_equal(st_wire_profile_load(stages, 2, &p), ST_EINVAL);
}

/* ---- envelopes ----------------------------------------------------------------------------- */

static uint8_t *pack_ping(uint32_t version, const char *run_id, bool with_body, size_t *len)
{
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    Stampede__ClockPing ping = STAMPEDE__CLOCK_PING__INIT;
    env.version = version;
    env.run_id = (char *)run_id;
    if (with_body) {
        ping.agent_ns = 77;
        env.body_case = STAMPEDE__ENVELOPE__BODY_CLOCK_PING;
        env.clock_ping = &ping;
    }
    uint8_t *buf;
    assert_int_equal(st_wire_pack(&env, &buf, len), 0);
    return buf;
}

static void test_wire_unpack_refusals(void **state)
{
    (void)state;
    int err = 0;
    /* Garbage: a field with wire type 7, a truncated varint, a length past the end. */
    const uint8_t bad1[] = {0x0f, 0x01};
    const uint8_t bad2[] = {0x08, 0xff};
    const uint8_t bad3[] = {0x12, 0x40, 'x'};
    assert_null(st_wire_unpack(bad1, sizeof(bad1), NULL, &err));
    assert_int_equal(err, ST_EPROTO);
    err = 0;
    assert_null(st_wire_unpack(bad2, sizeof(bad2), NULL, &err));
    assert_int_equal(err, ST_EPROTO);
    err = 0;
    assert_null(st_wire_unpack(bad3, sizeof(bad3), NULL, &err));
    assert_int_equal(err, ST_EPROTO);
    /* Nothing at all: version 0, no body. */
    err = 0;
    assert_null(st_wire_unpack((const uint8_t *)"", 0, NULL, &err));
    assert_int_equal(err, ST_EPROTO);

    size_t len;
    uint8_t *buf = pack_ping(ST_PROTOCOL_VERSION + 1, "run-1", true, &len);
    err = 0;
    assert_null(st_wire_unpack(buf, len, "run-1", &err));
    assert_int_equal(err, ST_EPROTO);
    free(buf);

    buf = pack_ping(ST_PROTOCOL_VERSION, "run-1", false, &len);
    err = 0;
    assert_null(st_wire_unpack(buf, len, "run-1", &err));
    assert_int_equal(err, ST_EPROTO);
    free(buf);

    buf = pack_ping(ST_PROTOCOL_VERSION, "run-2", true, &len);
    err = 0;
    assert_null(st_wire_unpack(buf, len, "run-1", &err));
    assert_int_equal(err, ST_EINVAL);
    /* Without an expected run, any run goes. */
    Stampede__Envelope *e = st_wire_unpack(buf, len, NULL, &err);
    assert_non_null(e);
    assert_int_equal(err, 0);
    stampede__envelope__free_unpacked(e, NULL);
    e = st_wire_unpack(buf, len, "", &err);
    assert_non_null(e);
    stampede__envelope__free_unpacked(e, NULL);
    free(buf);

    /* The right run, and an empty one (a pong before the agent knows its run), pass. */
    buf = pack_ping(ST_PROTOCOL_VERSION, "run-1", true, &len);
    e = st_wire_unpack(buf, len, "run-1", &err);
    assert_non_null(e);
    assert_int_equal(err, 0);
    assert_int_equal(e->body_case, STAMPEDE__ENVELOPE__BODY_CLOCK_PING);
    assert_int_equal(e->clock_ping->agent_ns, 77);
    stampede__envelope__free_unpacked(e, NULL);
    free(buf);
    buf = pack_ping(ST_PROTOCOL_VERSION, "", true, &len);
    e = st_wire_unpack(buf, len, "run-1", &err);
    assert_non_null(e);
    stampede__envelope__free_unpacked(e, NULL);
    free(buf);
}

static void test_wire_arena_strings_and_alignment(void **state)
{
    (void)state;
    st_arena a = {0};
    char *s = st_arena_strdup(&a, "hello");
    assert_string_equal(s, "hello");
    for (int i = 0; i < 100; i++) {
        uint64_t *p = st_arena_alloc(&a, 1 + (size_t)i * 37);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % _Alignof(max_align_t), 0);
        assert_int_equal(*p, 0);
        *p = UINT64_MAX;
    }
    /* Larger than a block. */
    char *big = st_arena_alloc(&a, 100000);
    assert_non_null(big);
    big[99999] = 1;
    assert_string_equal(s, "hello");
    st_arena_fini(&a);
    assert_null(a.head);
    st_arena_fini(&a);
}


/* ---- per-name parts ---- */

/* Stats with n names: name i holds fill_stats(seed + i) (inflight 0), the whole their sum plus an
 * inflight gauge. Names in skip hold nothing. */
static void fill_by_name(st_stats *s, size_t n, uint64_t seed, size_t skip)
{
    assert_int_equal(st_stats_init(s), 0);
    assert_int_equal(st_stats_names(s, n), 0);
    for (size_t i = 0; i < n; i++) {
        if (i == skip) {
            continue;
        }
        st_stats part;
        assert_int_equal(st_stats_init(&part), 0);
        fill_stats(&part, seed + i, 20 + (int)i * 7);
        st_test_add_part(s, i, &part);
        st_stats_fini(&part);
    }
    s->c.inflight = 9;
}

/* Three agents' records with per-name parts, packed and unpacked, merge into exactly what merging
 * the source stats gives, name by name and bucket by bucket; an empty name is left out. */
static void test_wire_by_name_round_trip_merges_exactly(void **state)
{
    (void)state;
    st_stats src[3], want, got;
    assert_int_equal(st_stats_init(&want), 0);
    assert_int_equal(st_stats_init(&got), 0);
    for (int k = 0; k < 3; k++) {
        fill_by_name(&src[k], 4, 100 * (uint64_t)k, (size_t)k + 1);
        st_stats_merge(&want, &src[k]);
        st_arena a = {0};
        Stampede__SecondRecord *r;
        assert_int_equal(st_wire_record_build(&a, &src[k], 1, &r), 0);
        assert_int_equal(r->n_by_name, 3); /* name k + 1 held nothing */
        size_t len = stampede__second_record__get_packed_size(r);
        uint8_t *buf = malloc(len);
        stampede__second_record__pack(r, buf);
        Stampede__SecondRecord *back = stampede__second_record__unpack(NULL, len, buf);
        assert_non_null(back);
        assert_int_equal(st_wire_record_check(back), 0);
        assert_int_equal(st_wire_record_check_names(back, 4), 0);
        assert_int_equal(st_wire_record_check_names(back, 3), k == 2 ? 0 : ST_EINVAL);
        assert_int_equal(st_wire_record_check_names(back, 0), ST_EINVAL);
        assert_int_equal(st_wire_record_merge(back, &got), 0);
        stampede__second_record__free_unpacked(back, NULL);
        free(buf);
        st_arena_fini(&a);
    }
    assert_stats_parts_equal(&got, &want);
    for (int k = 0; k < 3; k++) {
        st_stats_fini(&src[k]);
    }
    st_stats_fini(&want);
    st_stats_fini(&got);
}

/* Per-name parts that do not add up, are out of order, carry an inflight, or are missing from
 * a plan with several names are refused. */
static void test_wire_by_name_refusals(void **state)
{
    (void)state;
    st_stats s;
    fill_by_name(&s, 3, 7, 99);
    st_arena a = {0};
    Stampede__SecondRecord *r;
    assert_int_equal(st_wire_record_build(&a, &s, 1, &r), 0);
    assert_int_equal(st_wire_record_check(r), 0);

    r->by_name[1]->counts->ok++; /* a part's count no longer adds up (nor matches its samples) */
    expect_refused(r);
    r->by_name[1]->counts->ok--;
    r->by_name[1]->counts->sent++; /* adds up per part, not to the whole */
    expect_refused(r);
    r->by_name[1]->counts->sent--;
    r->by_name[2]->counts->inflight = 1;
    expect_refused(r);
    r->by_name[2]->counts->inflight = 0;
    uint32_t n1 = r->by_name[1]->name;
    r->by_name[1]->name = r->by_name[0]->name; /* twice the same name */
    expect_refused(r);
    r->by_name[1]->name = n1;
    r->by_name[2]->name = ST_STATS_MAX_NAMES;
    expect_refused(r);
    r->by_name[2]->name = 2;
    r->by_name[0]->latency->sum_us++; /* the sums of the parts' histograms differ */
    expect_refused(r);
    r->by_name[0]->latency->sum_us--;
    assert_int_equal(st_wire_record_check(r), 0);

    /* Without its parts the record is well formed, but not for a plan with several names. */
    size_t nb = r->n_by_name;
    r->n_by_name = 0;
    assert_int_equal(st_wire_record_check(r), 0);
    assert_int_equal(st_wire_record_check_names(r, 0), 0);
    assert_int_equal(st_wire_record_check_names(r, 3), ST_EINVAL);
    r->n_by_name = nb;
    assert_int_equal(st_wire_record_check_names(r, 3), 0);
    st_arena_fini(&a);
    st_stats_fini(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_record_round_trip_equals_source),
        cmocka_unit_test(test_wire_record_empty_round_trip),
        cmocka_unit_test_setup_teardown(test_wire_record_check_refuses_zero_gap, rec_setup,
                                        rec_teardown),
        cmocka_unit_test_setup_teardown(test_wire_record_check_refuses_index_past_last_bucket,
                                        rec_setup, rec_teardown),
        cmocka_unit_test_setup_teardown(test_wire_record_check_refuses_length_mismatch, rec_setup,
                                        rec_teardown),
        cmocka_unit_test_setup_teardown(test_wire_record_check_refuses_extremes_outside_buckets,
                                        rec_setup, rec_teardown),
        cmocka_unit_test_setup_teardown(test_wire_record_check_refuses_totals_not_matching_counts,
                                        rec_setup, rec_teardown),
        cmocka_unit_test_setup_teardown(test_wire_record_check_refuses_counts_that_wrap, rec_setup,
                                        rec_teardown),
        cmocka_unit_test_setup_teardown(test_wire_record_check_refuses_missing_parts, rec_setup,
                                        rec_teardown),
        cmocka_unit_test(test_wire_update_pack_equals_protobuf_c),
        cmocka_unit_test(test_wire_plan_round_trip),
        cmocka_unit_test(test_wire_plan_round_trip_closed_loop),
        cmocka_unit_test(test_wire_plan_load_refusals),
        cmocka_unit_test(test_wire_profile_load_refusals),
        cmocka_unit_test(test_wire_unpack_refusals),
        cmocka_unit_test(test_wire_arena_strings_and_alignment),
        cmocka_unit_test(test_wire_by_name_round_trip_merges_exactly),
        cmocka_unit_test(test_wire_by_name_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
