#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "assert_text.h"

#include "agent_flags.h"
#include "error.h"
#include "plan.h"
#include "settings.h"

static int argc_of(char **argv)
{
    int n = 0;
    while (argv[n]) {
        n++;
    }
    return n;
}

static void expect_refused(char **argv, const char *frag)
{
    st_agent_opts o;
    st_plan p;
    const st_engine_ops *e = NULL;
    char err[512] = "";
    st_plan_init(&p);
    int rc = st_agent_flags_parse(argc_of(argv), argv, &o, err, sizeof(err));
    if (rc == 0) {
        rc = st_agent_flags_plan(&o, &p, &e, err, sizeof(err));
    }
    assert_int_equal(rc, ST_EINVAL);
    assert_says(err, frag);
    st_plan_fini(&p);
}

static void test_agent_flags_table_checks(void **state)
{
    (void)state;
    char err[256] = "";
    size_t n;
    const st_setting *rows = st_agent_settings(&n);
    assert_true(n > 0);
    if (st_settings_check(rows, n, err, sizeof(err))) {
        fail_msg("stampede-agent's table: %s", err);
    }
    st_agent_opts o;
    char *help[] = {"stampede-agent", "--help", NULL};
    assert_int_equal(st_agent_flags_parse(2, help, &o, err, sizeof(err)), 1);
    assert_int_equal(o.help, 1);
}

static void test_agent_flags_refuses_bent_values(void **state)
{
    (void)state;
    char *minus_zero[] = {"agent", "--url", "http://127.0.0.1/", "--rate", "-0", "--duration",
                          "1", NULL};
    expect_refused(minus_zero, "--rate: \"-0\"");
    char *hex[] = {"agent", "--url", "http://127.0.0.1/", "--rate", "0x10", "--duration", "1",
                   NULL};
    expect_refused(hex, "--rate: \"0x10\"");
    char *twice[] = {"agent", "--url", "http://127.0.0.1/", "--rate", "10", "--duration", "1",
                     "--duration", "2", NULL};
    expect_refused(twice, "--duration: given twice");
    char *names[] = {"agent", "--coordinator", "tcp://127.0.0.1:1", "--token", "t0k3n-t0k3n",
                     "--name", "a", "--name", "b", NULL};
    expect_refused(names, "--name: given twice");
    char *fast[] = {"agent", "--url", "https://127.0.0.1/", "--rate", "10", "--duration", "1",
                    "--http2", "--engine", "fast", NULL};
    expect_refused(fast, "--engine fast: cannot send this plan");
}

static void test_agent_flags_plan_and_engine(void **state)
{
    (void)state;
    st_agent_opts o;
    st_plan p;
    const st_engine_ops *e = NULL;
    char err[512] = "";
    char *argv[] = {"agent", "--url", "http://127.0.0.1/", "--rate", "10", "--duration", "2",
                    "--engine", "fast", NULL};
    assert_int_equal(st_agent_flags_parse(argc_of(argv), argv, &o, err, sizeof(err)), 0);
    assert_int_equal(st_agent_flags_plan(&o, &p, &e, err, sizeof(err)), 0);
    assert_non_null(e);
    assert_string_equal(e->name, "fast");
    assert_true(p.profile.total_n == 20);
    st_plan_fini(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agent_flags_table_checks),
        cmocka_unit_test(test_agent_flags_refuses_bent_values),
        cmocka_unit_test(test_agent_flags_plan_and_engine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
