/*
 * Tests for choosing an engine through the ops table (agent/engine.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "engine.h"
#include "error.h"

#include <stdlib.h>
#include <string.h>

static st_request request(const char *url)
{
    st_request q = {0};
    q.method = "GET";
    q.url = (char *)url;
    q.weight = 1;
    return q;
}

static int setup(void **state)
{
    (void)state;
    const char *proxies[] = {"http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i < 4; i++) {
        unsetenv(proxies[i]);
    }
    return 0;
}

static void test_engine_every_op_is_set(void **state)
{
    (void)state;
    const st_engine_ops *all[] = {&st_engine_fast, &st_engine_curl};
    for (size_t i = 0; i < 2; i++) {
        assert_non_null(all[i]->name);
        assert_non_null(all[i]->applies);
        assert_non_null(all[i]->create);
        assert_non_null(all[i]->free_slots);
        assert_non_null(all[i]->send);
        assert_non_null(all[i]->inflight);
        assert_non_null(all[i]->cancel_all);
        assert_non_null(all[i]->destroy);
    }
}

/* A plan of the n requests q, with http2 as given. */
static st_plan plan_of(st_request *q, size_t n, int http2)
{
    st_plan p = {0};
    p.requests = q;
    p.n_requests = n;
    p.http2 = http2;
    return p;
}

/* Chooses engine name for p, asserts that st_engine_choose returned want and returns the engine it
 * chose (NULL when none); err holds its message. */
static const st_engine_ops *choose(const char *name, const st_plan *p, int want, char *err,
                                   size_t err_len)
{
    const st_engine_ops *e = NULL;
    assert_int_equal(st_engine_choose(name, p, &e, err, err_len), want);
    return e;
}

static void test_engine_curl_applies_to_everything(void **state)
{
    (void)state;
    st_request q[2] = {request("https://127.0.0.1:8443/"), request("http://127.0.0.1:9/")};
    st_plan p = plan_of(q, 2, 1);
    char why[64] = "";
    assert_int_equal(st_engine_curl.applies(&p, why, sizeof(why)), 1);
}

static void test_engine_choose_auto(void **state)
{
    (void)state;
    st_request q[1] = {request("http://127.0.0.1:9/")};
    st_plan p = plan_of(q, 1, -1);
    char err[256] = "";
    assert_ptr_equal(choose("auto", &p, 0, err, sizeof(err)), &st_engine_fast);
    assert_ptr_equal(choose(NULL, &p, 0, err, sizeof(err)), &st_engine_fast);

    /* https:// on one origin is the fast engine's too. */
    q[0] = request("https://127.0.0.1:9/");
    assert_ptr_equal(choose("auto", &p, 0, err, sizeof(err)), &st_engine_fast);

    /* What the fast engine does not speak goes to curl, without an error. */
    q[0] = request("ftp://127.0.0.1:9/");
    assert_ptr_equal(choose("auto", &p, 0, err, sizeof(err)), &st_engine_curl);
    /* HTTP/2 to one origin goes to h2: h2c for http://, ALPN h2 for https://. */
    q[0] = request("http://127.0.0.1:9/");
    p.http2 = 1;
    assert_ptr_equal(choose("auto", &p, 0, err, sizeof(err)), &st_engine_h2);
    q[0] = request("https://127.0.0.1:9/");
    assert_ptr_equal(choose("auto", &p, 0, err, sizeof(err)), &st_engine_h2);
    assert_string_equal(err, "");
}

static void test_engine_choose_forced(void **state)
{
    (void)state;
    st_request q[1] = {request("http://127.0.0.1:9/")};
    st_plan p = plan_of(q, 1, -1);
    char err[256] = "";
    assert_ptr_equal(choose("curl", &p, 0, err, sizeof(err)), &st_engine_curl);
    assert_ptr_equal(choose("fast", &p, 0, err, sizeof(err)), &st_engine_fast);

    q[0] = request("https://127.0.0.1:9/");
    assert_ptr_equal(choose("fast", &p, 0, err, sizeof(err)), &st_engine_fast);
    q[0] = request("ftp://127.0.0.1:9/");
    assert_null(choose("fast", &p, ST_EINVAL, err, sizeof(err)));
    assert_string_equal(err, "--engine fast: cannot send this plan (requests[0].url is not "
                             "a valid URL); use --engine curl");
    assert_ptr_equal(choose("curl", &p, 0, err, sizeof(err)), &st_engine_curl);

    /* h2 only with --http2, only for http://. */
    q[0] = request("http://127.0.0.1:9/");
    assert_null(choose("h2", &p, ST_EINVAL, err, sizeof(err)));
    assert_string_equal(err, "--engine h2: cannot send this plan (the plan does not ask for "
                             "HTTP/2 (--http2)); use --engine curl");
    p.http2 = 1;
    assert_ptr_equal(choose("h2", &p, 0, err, sizeof(err)), &st_engine_h2);

    /* Streams only where they multiplex. */
    p.streams = 8;
    assert_ptr_equal(choose("auto", &p, 0, err, sizeof(err)), &st_engine_h2);
    assert_null(choose("curl", &p, ST_EINVAL, err, sizeof(err)));
    assert_string_equal(err, "--streams 8: only the h2 engine multiplexes streams (an --http2 plan "
                             "of one origin, no proxy); the curl engine would send one request "
                             "per connection");
    p.http2 = 0;
    assert_null(choose("auto", &p, ST_EINVAL, err, sizeof(err)));
    p.streams = 1;
    assert_ptr_equal(choose("auto", &p, 0, err, sizeof(err)), &st_engine_fast);
}

static void test_engine_choose_unknown(void **state)
{
    (void)state;
    st_request q[1] = {request("http://127.0.0.1:9/")};
    st_plan p = plan_of(q, 1, 0);
    char err[256] = "";
    assert_null(choose("turbo", &p, ST_EINVAL, err, sizeof(err)));
    assert_string_equal(err, "--engine: \"turbo\" is not an engine (auto, curl, fast or h2)");
    assert_null(choose("", &p, ST_EINVAL, err, sizeof(err)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_every_op_is_set),
        cmocka_unit_test(test_engine_curl_applies_to_everything),
        cmocka_unit_test(test_engine_choose_auto),
        cmocka_unit_test(test_engine_choose_forced),
        cmocka_unit_test(test_engine_choose_unknown),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
