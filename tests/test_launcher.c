#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "error.h"
#include "launcher.h"
#include "run_id.h"

#include <stdio.h>
#include <string.h>

/* The launcher Lambda's settings and events (launcher/launcher.h), and the run id it makes. */

static const char *const full_env[][2] = {
    {"STAMPEDE_CLUSTER", "stampede"},
    {"STAMPEDE_COORDINATOR_TASK_DEFINITION", "stampede-coordinator:3"},
    {"STAMPEDE_AGENT_TASK_DEFINITION", "stampede-agent:3"},
    {"STAMPEDE_SUBNETS", "subnet-1,subnet-2"},
    {"STAMPEDE_COORDINATOR_SECURITY_GROUPS", "sg-coord"},
    {"STAMPEDE_AGENT_SECURITY_GROUPS", "sg-a,sg-b"},
    {"STAMPEDE_ASSIGN_PUBLIC_IP", "ENABLED"},
    {"STAMPEDE_SQS_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/results"},
    {"STAMPEDE_TABLE", "results"},
};

/* The variable the test leaves out (or sets to g_value). */
static const char *g_name;
static const char *g_value;

static const char *fake_get(const char *name)
{
    if (g_name && strcmp(name, g_name) == 0) {
        return g_value;
    }
    for (size_t i = 0; i < sizeof(full_env) / sizeof(full_env[0]); i++) {
        if (strcmp(full_env[i][0], name) == 0) {
            return full_env[i][1];
        }
    }
    return NULL;
}

static void test_launcher_env_reads_every_setting(void **state)
{
    (void)state;
    st_launcher_env e;
    char err[512];
    g_name = NULL;
    assert_int_equal(st_launcher_env_read(&e, fake_get, err, sizeof(err)), 0);
    assert_string_equal(e.cluster, "stampede");
    assert_string_equal(e.agent_security_groups, "sg-a,sg-b");
    assert_true(e.assign_public_ip);
    assert_string_equal(e.coordinator_container, "coordinator");
    assert_null(e.coordinator_listen);
}

static void test_launcher_env_names_what_is_missing_or_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *name, *value, *want;
    } cases[] = {
        {"STAMPEDE_CLUSTER", NULL, "STAMPEDE_CLUSTER is not set"},
        {"STAMPEDE_TABLE", "", "STAMPEDE_TABLE is not set"},
        {"STAMPEDE_AGENT_TASK_DEFINITION", NULL, "STAMPEDE_AGENT_TASK_DEFINITION is not set"},
        {"STAMPEDE_ASSIGN_PUBLIC_IP", "true", "STAMPEDE_ASSIGN_PUBLIC_IP is \"true\""},
        {"STAMPEDE_SQS_QUEUE_URL", "results", "STAMPEDE_SQS_QUEUE_URL is \"results\""},
        {"STAMPEDE_SUBNETS", "subnet-1,vpc-2", "STAMPEDE_SUBNETS: \"vpc-2\" is not an id"},
        {"STAMPEDE_COORDINATOR_SECURITY_GROUPS", "sg-1,sg-2,sg-3,sg-4,sg-5,sg-6",
         "STAMPEDE_COORDINATOR_SECURITY_GROUPS: at most 5 ids"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        st_launcher_env e;
        char err[512] = "";
        g_name = cases[i].name;
        g_value = cases[i].value;
        assert_int_equal(st_launcher_env_read(&e, fake_get, err, sizeof(err)), ST_EINVAL);
        if (!strstr(err, cases[i].want)) {
            fail_msg("%s: \"%s\" lacks \"%s\"", cases[i].name, err, cases[i].want);
        }
    }
    g_name = NULL;
}

static void test_launcher_event_seed_payload(void **state)
{
    (void)state;
    const char *text = "{ \"taskCount\": 2, \"targetUrl\": \"http://127.0.0.1:9/\", \"vus\": 5,\n"
                       "  \"rate\": 20, \"duration\": 5 }";
    st_launcher_event ev;
    char err[512];
    assert_int_equal(st_launcher_event_read(text, strlen(text), &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.agents, 2);
    assert_true(ev.target_rps == 200);
    assert_true(ev.duration_s == 5);
    /* Handed on unchanged, only compact. */
    assert_string_equal(ev.plan_json, "{\"taskCount\":2,\"targetUrl\":\"http://127.0.0.1:9/\","
                                      "\"vus\":5,\"rate\":20,\"duration\":5}");
    st_launcher_event_fini(&ev);
}

static void test_launcher_event_plan_with_stages(void **state)
{
    (void)state;
    const char *text =
        "{\"url\": \"http://127.0.0.1:9/\", \"agents\": 4, \"stages\": "
        "[{\"duration\": 10, \"target\": 100}, {\"duration\": 10, \"target\": 100}]}";
    st_launcher_event ev;
    char err[512];
    assert_int_equal(st_launcher_event_read(text, strlen(text), &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.agents, 4);
    assert_true(ev.duration_s == 20);
    assert_true(ev.target_rps == 75); /* 500 + 1000 requests over 20 s */
    st_launcher_event_fini(&ev);
    text = "{\"url\": \"http://127.0.0.1:9/\", \"rate\": 0, \"duration\": 3}";
    assert_int_equal(st_launcher_event_read(text, strlen(text), &ev, err, sizeof(err)), 0);
    assert_int_equal(ev.agents, 1);
    assert_true(ev.target_rps == 0); /* a closed loop has no planned rate */
    assert_true(ev.duration_s == 3);
    st_launcher_event_fini(&ev);
}

static void test_launcher_event_refusals_name_the_path(void **state)
{
    (void)state;
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"{\"taskCount\": 2, \"targetUrl\": \"http://127.0.0.1:9/\", \"vus\": 5, \"rate\": -1, "
         "\"duration\": 5}",
         "$.rate: "},
        {"{\"taskCount\": 0, \"targetUrl\": \"http://127.0.0.1:9/\", \"rate\": 1, \"duration\": 5}",
         "$.taskCount: "},
        {"{\"requests\": [{\"url\": \"http://127.0.0.1:9/\"}, {\"url\": \"http://127.0.0.1:9/b\", "
         "\"body_file\": \"/etc/hostname\"}], \"rate\": 1, \"duration\": 1}",
         "$.requests[1].body_file: "},
        {"[]", "$: "},
        {"", ""},
        {"{\"taskCount\": 1, \"targetUrl\": \"http://127.0.0.1:9/\", \"rate\": 1, \"duration\": 1, "
         "\"taskCount\": 3}",
         ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        st_launcher_event ev;
        char err[512] = "";
        assert_int_equal(
            st_launcher_event_read(cases[i].text, strlen(cases[i].text), &ev, err, sizeof(err)),
            ST_EINVAL);
        assert_null(ev.plan_json);
        assert_true(err[0] != '\0');
        if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0) {
            fail_msg("case %zu: \"%s\" does not start with \"%s\"", i, err, cases[i].want);
        }
    }
}

static void test_launcher_run_ids_have_one_form(void **state)
{
    (void)state;
    char id[ST_RUN_ID_LEN + 1], other[ST_RUN_ID_LEN + 1], why[256];
    st_run_id_make(id, sizeof(id));
    st_run_id_make(other, sizeof(other));
    assert_int_equal(strlen(id), ST_RUN_ID_LEN);
    assert_true(st_run_id_check(id, why, sizeof(why)));
    assert_string_not_equal(id, other);
    assert_true(st_run_id_check("20261121T213500Z-3f9a1c2e", why, sizeof(why)));
    assert_false(st_run_id_check("20261121T213500Z-3F9A1C2E", why, sizeof(why)));
    assert_non_null(strstr(why, "character 19"));
    assert_false(st_run_id_check("20261121T213500Z-3f9a1c2", why, sizeof(why)));
    assert_non_null(strstr(why, "24 characters"));
    assert_false(st_run_id_check("2026-11-21T21:35:00Z-3f9", why, sizeof(why)));
    assert_false(st_run_id_check(NULL, why, sizeof(why)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_launcher_env_reads_every_setting),
        cmocka_unit_test(test_launcher_env_names_what_is_missing_or_malformed),
        cmocka_unit_test(test_launcher_event_seed_payload),
        cmocka_unit_test(test_launcher_event_plan_with_stages),
        cmocka_unit_test(test_launcher_event_refusals_name_the_path),
        cmocka_unit_test(test_launcher_run_ids_have_one_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
