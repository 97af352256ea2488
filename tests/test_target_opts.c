#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "error.h"
#include "opts.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void test_target_opts_defaults(void **state)
{
    (void)state;
    char *argv[] = {"stampede-target"};
    st_target_opts o;
    char err[256];
    assert_int_equal(st_target_opts_parse(&o, ARGC(argv), argv, err, sizeof(err)), 0);
    assert_string_equal(o.listen_host, "127.0.0.1");
    assert_int_equal(o.listen_port, 0);
    assert_null(o.port_file);
    assert_false(o.has_latency);
    assert_int_equal(o.seed, 1);
    assert_int_equal(o.mix.n, 1);
    assert_int_equal(o.mix.e[0].status, 200);
    assert_int_equal(o.body_bytes, ST_TARGET_DEFAULT_BODY_BYTES);
    assert_int_equal(o.max_body_bytes, ST_TARGET_DEFAULT_MAX_BODY_BYTES);
    assert_int_equal(o.close_every, 0);
    assert_false(o.has_stall);
    assert_false(o.help);
}

static void test_target_opts_every_flag(void **state)
{
    (void)state;
    char *argv[] = {"stampede-target",
                    "--listen",
                    "[::1]:8080",
                    "--port-file=/tmp/p",
                    "--latency-ms",
                    "2-10",
                    "--seed",
                    "77",
                    "--status",
                    "200:95,500:5",
                    "--body-bytes=0",
                    "--max-body-bytes",
                    "10",
                    "--close-every",
                    "3",
                    "--stall-at",
                    "1.5",
                    "--stall-ms",
                    "250",
                    "--log-level",
                    "debug"};
    st_target_opts o;
    char err[256];
    assert_int_equal(st_target_opts_parse(&o, ARGC(argv), argv, err, sizeof(err)), 0);
    assert_string_equal(o.listen_host, "::1");
    assert_int_equal(o.listen_port, 8080);
    assert_string_equal(o.port_file, "/tmp/p");
    assert_true(o.has_latency);
    assert_true(o.latency.min_ms == 2 && o.latency.max_ms == 10);
    assert_int_equal(o.latency.state, 77); /* seeded with --seed */
    assert_int_equal(o.mix.n, 2);
    assert_int_equal(o.mix.total, 100);
    assert_int_equal(o.body_bytes, 0);
    assert_int_equal(o.max_body_bytes, 10);
    assert_int_equal(o.close_every, 3);
    assert_true(o.has_stall);
    assert_true(o.stall_at_s == 1.5);
    assert_int_equal(o.stall_ms, 250);
    assert_int_equal(o.log_level, ST_LOG_DEBUG);
}

static void test_target_opts_listen_forms(void **state)
{
    (void)state;
    struct {
        const char *arg;
        const char *host;
        int port;
    } ok[] = {{"127.0.0.1:0", "127.0.0.1", 0},
              {"localhost:65535", "localhost", 65535},
              {":8080", "0.0.0.0", 8080},
              {"[::]:1", "::", 1}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char *argv[] = {"stampede-target", "--listen", (char *)ok[i].arg};
        st_target_opts o;
        char err[256];
        assert_int_equal(st_target_opts_parse(&o, ARGC(argv), argv, err, sizeof(err)), 0);
        assert_string_equal(o.listen_host, ok[i].host);
        assert_int_equal(o.listen_port, ok[i].port);
    }
}

static void test_target_opts_errors_name_the_flag(void **state)
{
    (void)state;
    struct {
        const char *a, *b;
        const char *named;
    } bad[] = {
        {"--listen", "127.0.0.1", "--listen"},
        {"--listen", "::1:80", "--listen"},
        {"--listen", "[::1]80", "--listen"},
        {"--listen", "h:65536", "--listen"},
        {"--listen", "h:-1", "--listen"},
        {"--port-file", "", "--port-file"},
        {"--latency-ms", "abc", "--latency-ms"},
        {"--latency-ms", "9-3", "--latency-ms"},
        {"--seed", "-1", "--seed"},
        {"--status", "700", "--status"},
        {"--body-bytes", "1x", "--body-bytes"},
        {"--body-bytes", "67108865", "--body-bytes"},
        {"--close-every", "0", "--close-every"},
        {"--stall-at", "-1", "--stall-at"},
        {"--stall-ms", "0", "--stall-ms"},
        {"--log-level", "loud", "--log-level"},
        {"--nope", "1", "--nope"},
        {"-x", "1", "-x"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *argv[] = {"stampede-target", (char *)bad[i].a, (char *)bad[i].b};
        st_target_opts o;
        char err[256];
        assert_int_equal(st_target_opts_parse(&o, ARGC(argv), argv, err, sizeof(err)), ST_EINVAL);
        if (!strstr(err, bad[i].named)) {
            fail_msg("'%s %s': error '%s' does not name %s", bad[i].a, bad[i].b, err, bad[i].named);
        }
    }
}

static void test_target_opts_missing_value_and_pairs(void **state)
{
    (void)state;
    st_target_opts o;
    char err[256];
    char *a1[] = {"stampede-target", "--status"};
    assert_int_equal(st_target_opts_parse(&o, ARGC(a1), a1, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "--status"));
    char *a2[] = {"stampede-target", "--stall-ms", "100"};
    assert_int_equal(st_target_opts_parse(&o, ARGC(a2), a2, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "--stall-at"));
    char *a3[] = {"stampede-target", "--stall-at", "1"};
    assert_int_equal(st_target_opts_parse(&o, ARGC(a3), a3, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "--stall-ms"));
    /* A tiny buffer still gets a terminated (truncated) message. */
    char small[8];
    assert_int_equal(st_target_opts_parse(&o, ARGC(a1), a1, small, sizeof(small)), ST_EINVAL);
    assert_int_equal(strlen(small), sizeof(small) - 1);
}

static void test_target_opts_help(void **state)
{
    (void)state;
    char *argv[] = {"stampede-target", "--help"};
    st_target_opts o;
    char err[256];
    assert_int_equal(st_target_opts_parse(&o, ARGC(argv), argv, err, sizeof(err)), 0);
    assert_true(o.help);
    assert_non_null(strstr(st_target_usage(), "--close-every"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_target_opts_defaults),
        cmocka_unit_test(test_target_opts_every_flag),
        cmocka_unit_test(test_target_opts_listen_forms),
        cmocka_unit_test(test_target_opts_errors_name_the_flag),
        cmocka_unit_test(test_target_opts_missing_value_and_pairs),
        cmocka_unit_test(test_target_opts_help),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
