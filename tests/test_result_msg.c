#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "assert_stats.h"
#include "ddb_json.h"
#include "error.h"
#include "result_item.h"
#include "result_msg.h"

static void fill(st_stats *s, uint32_t second)
{
    st_stats_reset(s);
    s->second = second;
    s->c.sent = 100;
    s->c.ok = 97;
    s->c.http_5xx = 2;
    s->c.err_connect = 1;
    s->c.bytes_in = 123456789012ULL;
    s->c.inflight = 3;
    for (uint64_t v = 1; v <= 100; v++) {
        st_hist_record(s->lat, v * 997);
        st_hist_record(s->lat_raw, v * 13);
    }
}

/* Fills s (initialised here) for second k and encodes it as a second of run_id at 100 rps
 * targeted; returns the message (caller frees) and its id in id. */
static char *encoded_second(st_stats *s, uint32_t k, const char *run_id, double achieved_rps,
                            uint32_t agents, char *id)
{
    assert_int_equal(st_stats_init(s), 0);
    fill(s, k);
    char *json = NULL;
    assert_int_equal(st_result_encode_second(run_id, s, 100.0, achieved_rps, agents, &json, id), 0);
    return json;
}

static void test_result_msg_second_round_trip(void **state)
{
    (void)state;
    st_stats s;
    char id[ST_RESULT_ID_MAX + 1];
    char *json = encoded_second(&s, 42, "run-7", 99.5, 3, id);
    assert_string_equal(id, "run-7.s000042");
    assert_non_null(strstr(json, "\"schema\":\"stampede.result/1\""));

    st_result_msg m;
    char err[256] = "";
    assert_int_equal(st_result_decode(json, strlen(json), &m, err, sizeof(err)), 0);
    assert_int_equal(m.kind, ST_RESULT_SECOND);
    assert_string_equal(m.run_id, "run-7");
    assert_int_equal(m.second, 42);
    assert_int_equal(m.stats.second, 42);
    assert_int_equal(m.agents, 3);
    assert_true(m.target_rps == 100.0 && m.achieved_rps == 99.5);
    assert_memory_equal(&m.stats.c, &s.c, sizeof(s.c));
    assert_hist_percentiles_equal(m.stats.lat, s.lat, 7);
    assert_hist_percentiles_equal(m.stats.lat_raw, s.lat_raw, 7);
    st_result_msg_fini(&m);
    free(json);
    st_stats_fini(&s);
}

static void test_result_msg_summary_round_trip(void **state)
{
    (void)state;
    cJSON *sum = cJSON_Parse("{\"counts\":{\"sent\":5},\"name\":\"x\",\"list\":[1,null,true]}");
    char *json = NULL;
    char id[ST_RESULT_ID_MAX + 1];
    assert_int_equal(st_result_encode_summary("r.1_a", sum, &json, id), 0);
    assert_string_equal(id, "r.1_a.summary");
    st_result_msg m;
    assert_int_equal(st_result_decode(json, strlen(json), &m, NULL, 0), 0);
    assert_int_equal(m.kind, ST_RESULT_SUMMARY);
    assert_true(cJSON_Compare(m.summary, sum, 1));
    st_result_msg_fini(&m);
    free(json);
    cJSON *arr = cJSON_CreateArray();
    assert_int_equal(st_result_encode_summary("r", arr, &json, id), ST_EINVAL);
    cJSON_Delete(arr);
    cJSON_Delete(sum);
}

static void test_result_msg_ids_and_keys(void **state)
{
    (void)state;
    char out[ST_RESULT_ID_MAX + 1];
    assert_int_equal(st_result_id(ST_RESULT_SECOND, "a", 1234567, out, sizeof(out)), 0);
    assert_string_equal(out, "a.s1234567");
    assert_int_equal(st_result_sort_key(ST_RESULT_SECOND, 42, out, sizeof(out)), 0);
    assert_string_equal(out, "second#000042");
    assert_int_equal(st_result_sort_key(ST_RESULT_SUMMARY, 0, out, sizeof(out)), 0);
    assert_string_equal(out, "summary");
    assert_int_equal(st_result_id(ST_RESULT_SUMMARY, "bad/id", 0, out, sizeof(out)), ST_EINVAL);
    assert_int_equal(st_result_id(ST_RESULT_SUMMARY, ".hidden", 0, out, sizeof(out)), ST_EINVAL);
    char small[4];
    assert_int_equal(st_result_id(ST_RESULT_SUMMARY, "abc", 0, small, sizeof(small)), ST_ERANGE);
    char longest[ST_RESULT_RUN_ID_MAX + 2];
    memset(longest, 'x', sizeof(longest));
    longest[ST_RESULT_RUN_ID_MAX] = '\0';
    assert_true(st_result_run_id_valid(longest));
    assert_int_equal(st_result_id(ST_RESULT_SECOND, longest, UINT32_MAX, out, sizeof(out)), 0);
    longest[ST_RESULT_RUN_ID_MAX] = 'x';
    longest[ST_RESULT_RUN_ID_MAX + 1] = '\0';
    assert_false(st_result_run_id_valid(longest));
}

static void test_result_msg_encode_rejects(void **state)
{
    (void)state;
    st_stats s;
    assert_int_equal(st_stats_init(&s), 0);
    char *json = NULL;
    char id[ST_RESULT_ID_MAX + 1];
    assert_int_equal(st_result_encode_second("no spaces", &s, 1, 1, 1, &json, id), ST_EINVAL);
    assert_int_equal(st_result_encode_second("r", &s, -1, 1, 1, &json, id), ST_EINVAL);
    assert_null(json);
    /* A summary too large for one SQS message. */
    cJSON *big = cJSON_CreateObject();
    char *text = malloc(ST_RESULT_MAX_BYTES + 10);
    memset(text, 'a', ST_RESULT_MAX_BYTES + 9);
    text[ST_RESULT_MAX_BYTES + 9] = '\0';
    cJSON_AddStringToObject(big, "blob", text);
    assert_int_equal(st_result_encode_summary("r", big, &json, id), ST_ERANGE);
    assert_null(json);
    free(text);
    cJSON_Delete(big);
    st_stats_fini(&s);
}

/* Decodes text and expects ST_EINVAL with a message that starts with want. */
static void expect_error(const char *text, const char *want)
{
    st_result_msg m;
    char err[256] = "";
    int rc = st_result_decode(text, strlen(text), &m, err, sizeof(err));
    if (rc != ST_EINVAL || strncmp(err, want, strlen(want)) != 0) {
        fail_msg("decoding %s: rc %d, error \"%s\", wanted \"%s...\"", text, rc, err, want);
    }
}

#define HIST "{\"count\":2,\"min\":5,\"max\":9,\"sum\":14,\"buckets\":[[5,1],[9,1]]}"
#define COUNTS                                                                                     \
    "{\"sent\":2,\"ok\":2,\"http_4xx\":0,\"http_5xx\":0,\"err_connect\":0,\"err_timeout\":0,"      \
    "\"err_other\":0,\"bytes_in\":0,\"bytes_out\":0,\"late\":0,\"dropped\":0,\"inflight\":0}"
#define HEAD "{\"schema\":\"stampede.result/1\",\"kind\":\"second\",\"run_id\":\"r\","

static void test_result_msg_errors_name_paths(void **state)
{
    (void)state;
    /* The well-formed base decodes. */
    const char *good = HEAD "\"second\":1,\"agents\":1,\"target_rps\":2,\"achieved_rps\":2,"
                            "\"counts\":" COUNTS ",\"latency_us\":" HIST
                            ",\"latency_uncorrected_us\":" HIST ",\"future\":1}";
    st_result_msg m;
    char err[256] = "";
    assert_int_equal(st_result_decode(good, strlen(good), &m, err, sizeof(err)), 0);
    st_result_msg_fini(&m);

    expect_error("{nope", "$: not valid JSON");
    expect_error("[1]", "$: must be a JSON object");
    expect_error("{\"kind\":\"second\"}", "$.schema: missing");
    expect_error("{\"schema\":\"stampede.result/3\"}", "$.schema: \"stampede.result/3\" is not");
    expect_error("{\"schema\":\"stampede.result/1\",\"kind\":\"minute\"}", "$.kind: must be");
    expect_error("{\"schema\":\"stampede.result/1\",\"kind\":\"summary\",\"run_id\":\"a b\"}",
                 "$.run_id: must be");
    expect_error("{\"schema\":\"stampede.result/1\",\"kind\":\"summary\",\"run_id\":\"a\"}",
                 "$.summary: missing");
    expect_error(HEAD "\"second\":-1}", "$.second: must be an integer");
    expect_error(HEAD "\"second\":1,\"agents\":1,\"target_rps\":\"x\"}", "$.target_rps: must be");
    expect_error(HEAD "\"second\":1,\"agents\":1,\"target_rps\":2,\"achieved_rps\":2,"
                      "\"counts\":{\"sent\":1.5}}",
                 "$.counts.sent: must be an integer");
    expect_error(HEAD "\"second\":1,\"agents\":1,\"target_rps\":2,\"achieved_rps\":2,"
                      "\"counts\":" COUNTS "}",
                 "$.latency_us: missing");
    expect_error(HEAD "\"second\":1,\"agents\":1,\"target_rps\":2,\"achieved_rps\":2,"
                      "\"counts\":" COUNTS ",\"latency_us\":{\"count\":2,\"min\":5,\"max\":9,"
                      "\"sum\":14,\"buckets\":[[9,1],[5,1]]}}",
                 "$.latency_us.buckets[1]: bucket indexes must increase");
    expect_error(HEAD "\"second\":1,\"agents\":1,\"target_rps\":2,\"achieved_rps\":2,"
                      "\"counts\":" COUNTS ",\"latency_us\":{\"count\":3,\"min\":5,\"max\":9,"
                      "\"sum\":14,\"buckets\":[[5,1],[9,1]]}}",
                 "$.latency_us.count: 3, but the buckets hold 2");
    expect_error(HEAD "\"second\":1,\"agents\":1,\"target_rps\":2,\"achieved_rps\":2,"
                      "\"counts\":" COUNTS ",\"latency_us\":{\"count\":1,\"min\":5,\"max\":5,"
                      "\"sum\":5,\"buckets\":[[99999999,1]]}}",
                 "$.latency_us.buckets[0][0]: bucket index must be");
    expect_error(HEAD "\"second\":1,\"agents\":1,\"target_rps\":2,\"achieved_rps\":2,"
                      "\"counts\":" COUNTS ",\"latency_us\":{\"count\":1,\"min\":5,\"max\":5,"
                      "\"sum\":5,\"buckets\":[[5]]}}",
                 "$.latency_us.buckets[0]: must be a pair");
    expect_error(HEAD "\"second\":1,\"agents\":1,\"target_rps\":2,\"achieved_rps\":2,"
                      "\"counts\":" COUNTS ",\"latency_us\":" HIST
                      ",\"latency_uncorrected_us\":{\"count\":1,\"min\":1,\"max\":7,"
                      "\"sum\":5,\"buckets\":[[5,1]]}}",
                 "$.latency_uncorrected_us: min and max do not fall");
}

/* Stats of two names (fill(second) and fill(second + 1)), the whole their sum. */
static void fill_named(st_stats *s, uint32_t second)
{
    assert_int_equal(st_stats_init(s), 0);
    assert_int_equal(st_stats_names(s, 2), 0);
    for (int i = 0; i < 2; i++) {
        st_stats part;
        assert_int_equal(st_stats_init(&part), 0);
        fill(&part, second + (uint32_t)i);
        st_test_add_part(s, (size_t)i, &part);
        st_stats_fini(&part);
    }
    s->c.inflight = 3;
    s->second = second;
}

static void assert_named_equal(const st_result_msg *m, const st_stats *s, const char *const *names)
{
    assert_memory_equal(&m->stats.c, &s->c, sizeof(s->c));
    assert_int_equal(m->n_names, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(m->names[i], names[i]);
        assert_memory_equal(&m->stats.names[i].c, &s->names[i].c, sizeof(s->c));
        assert_same_buckets(m->stats.names[i].lat, s->names[i].lat);
        assert_same_buckets(m->stats.names[i].lat_raw, s->names[i].lat_raw);
    }
}

/* A run with several names: version 2, its parts round trip through the message and the item. */
static void test_result_msg_by_name_round_trip(void **state)
{
    (void)state;
    const char *names[] = {"home", "login \"x\""};
    st_stats s;
    fill_named(&s, 5);
    char *json = NULL, id[ST_RESULT_ID_MAX + 1];
    assert_int_equal(st_result_encode_second_by_name("run-2", &s, names, 2, 10, 9, 1, &json, id),
                     0);
    assert_non_null(strstr(json, "\"schema\":\"stampede.result/2\""));
    st_result_msg m, back;
    char err[256] = "";
    assert_int_equal(st_result_decode(json, strlen(json), &m, err, sizeof(err)), 0);
    assert_int_equal(m.schema, 2);
    assert_named_equal(&m, &s, names);
    cJSON *item = NULL;
    assert_int_equal(st_result_item_build(&m, 1700000000, &item), 0);
    const cJSON *schema = cJSON_GetObjectItem(cJSON_GetObjectItem(item, "schema"), "S");
    assert_string_equal(schema->valuestring, "stampede.result/2");
    assert_int_equal(st_result_item_parse(item, &back, NULL, err, sizeof(err)), 0);
    assert_named_equal(&back, &s, names);
    st_result_msg_fini(&back);
    cJSON_Delete(item);
    st_result_msg_fini(&m);
    free(json);
    /* Parts without a name for them are refused; a version-1 run has no by_name. */
    assert_int_equal(st_result_encode_second_by_name("run-2", &s, names, 1, 10, 9, 1, &json, id),
                     ST_EINVAL);
    assert_int_equal(st_result_encode_second("run-2", &s, 10, 9, 1, &json, id), ST_EINVAL);
    st_stats_fini(&s);

    /* A summary with requests_by_name is version 2, any other version 1. */
    cJSON *sum = cJSON_Parse("{\"requests_by_name\": {}}");
    assert_int_equal(st_result_encode_summary("run-2", sum, &json, id), 0);
    assert_non_null(strstr(json, "\"schema\":\"stampede.result/2\""));
    free(json);
    cJSON_Delete(sum);
}

#define HEAD2 "{\"schema\":\"stampede.result/2\",\"kind\":\"second\",\"run_id\":\"r\","
#define PART(name, sent)                                                                           \
    "{\"name\":\"" name "\",\"counts\":{\"sent\":" #sent ",\"ok\":1,\"http_4xx\":0,\"http_5xx\":0," \
    "\"err_connect\":0,\"err_timeout\":0,\"err_other\":0,\"bytes_in\":0,\"bytes_out\":0,"          \
    "\"late\":0,\"dropped\":0,\"inflight\":0},\"latency_us\":{\"count\":1,\"min\":5,\"max\":5,"    \
    "\"sum\":5,\"buckets\":[[5,1]]},\"latency_uncorrected_us\":{\"count\":1,\"min\":5,\"max\":5,"  \
    "\"sum\":5,\"buckets\":[[5,1]]}}"
#define HIST_SAME "{\"count\":2,\"min\":5,\"max\":5,\"sum\":10,\"buckets\":[[5,2]]}"
#define BODY2                                                                                      \
    "\"second\":1,\"agents\":1,\"target_rps\":2,\"achieved_rps\":2,\"counts\":" COUNTS            \
    ",\"latency_us\":" HIST_SAME ",\"latency_uncorrected_us\":" HIST_SAME

static void test_result_msg_by_name_refusals(void **state)
{
    (void)state;
    const char *good = HEAD2 BODY2 ",\"by_name\":[" PART("a", 1) "," PART("b", 1) "]}";
    st_result_msg m;
    char err[256] = "";
    assert_int_equal(st_result_decode(good, strlen(good), &m, err, sizeof(err)), 0);
    assert_int_equal(m.n_names, 2);
    st_result_msg_fini(&m);
    expect_error(HEAD2 BODY2 "}", "$.by_name: missing (schema stampede.result/2)");
    expect_error(HEAD BODY2 ",\"by_name\":[]}", "$.by_name: needs schema stampede.result/2");
    expect_error(HEAD2 BODY2 ",\"by_name\":[" PART("a", 1) "," PART("a", 1) "]}",
                 "$.by_name[1].name: \"a\" is listed twice");
    expect_error(HEAD2 BODY2 ",\"by_name\":[" PART("a", 1) "," PART("b", 0) "]}",
                 "$.by_name: the parts' sent add up to 1, the second's is 2");
    expect_error(HEAD2 BODY2 ",\"by_name\":[" PART("a", 1) "," PART("b", 2) "]}",
                 "$.by_name: the parts' sent add up to 3, the second's is 2");
    expect_error(HEAD2 BODY2 ",\"by_name\":[" PART("a", 3) "," PART("b", 0) "]}",
                 "$.by_name: the parts' sent add up to at least 3, the second's is 2");
    expect_error(HEAD2 BODY2 ",\"by_name\":[" PART("a", 2) "]}",
                 "$.by_name: the parts' ok add up to 1, the second's is 2");
    expect_error(HEAD2 BODY2 ",\"by_name\":[{\"name\":\"\"}]}",
                 "$.by_name[0].name: must be a string of 1 to 1024 bytes");
    expect_error(HEAD2 BODY2 ",\"by_name\":[{\"name\":\"a\"}]}", "$.by_name[0].counts: missing");
}

static void test_result_item_round_trip(void **state)
{
    (void)state;
    st_stats s;
    char id[ST_RESULT_ID_MAX + 1];
    char *json = encoded_second(&s, 7, "run-9", 99.25, 2, id);
    st_result_msg m, back;
    assert_int_equal(st_result_decode(json, strlen(json), &m, NULL, 0), 0);
    cJSON *item = NULL;
    assert_int_equal(st_result_item_build(&m, 1700000000, &item), 0);
    const cJSON *sk = cJSON_GetObjectItem(cJSON_GetObjectItem(item, "sk"), "S");
    assert_string_equal(sk->valuestring, "second#000007");
    const cJSON *ttl = cJSON_GetObjectItem(cJSON_GetObjectItem(item, "ttl"), "N");
    assert_string_equal(ttl->valuestring, "1700000000");
    const cJSON *bytes = cJSON_GetObjectItem(cJSON_GetObjectItem(item, "bytes_in"), "N");
    assert_string_equal(bytes->valuestring, "123456789012");
    const cJSON *p50 = cJSON_GetObjectItem(cJSON_GetObjectItem(item, "p50_us"), "N");
    assert_non_null(p50);
    int64_t t = 0;
    char err[256] = "";
    assert_int_equal(st_result_item_parse(item, &back, &t, err, sizeof(err)), 0);
    assert_int_equal(t, 1700000000);
    assert_int_equal(back.second, 7);
    assert_true(back.achieved_rps == 99.25);
    assert_memory_equal(&back.stats.c, &s.c, sizeof(s.c));
    assert_hist_percentiles_equal(back.stats.lat, s.lat, 7);
    assert_hist_percentiles_equal(back.stats.lat_raw, s.lat_raw, 7);
    st_result_msg_fini(&back);

    /* An item whose sort key does not match its second is refused. */
    cJSON_ReplaceItemInObject(item, "sk", cJSON_Parse("{\"S\":\"second#000008\"}"));
    assert_int_equal(st_result_item_parse(item, &back, NULL, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "sk does not match"));
    /* A broken attribute is named. */
    cJSON_ReplaceItemInObject(item, "sent", cJSON_Parse("{\"S\":\"lots\"}"));
    assert_int_equal(st_result_item_parse(item, &back, NULL, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "sent: must be an integer"));
    cJSON_Delete(item);
    st_result_msg_fini(&m);
    free(json);
    st_stats_fini(&s);
}

static void test_ddb_json_conversions(void **state)
{
    (void)state;
    cJSON *plain = cJSON_Parse("{\"s\":\"x\",\"n\":1.5,\"i\":9007199254740991,\"b\":false,"
                               "\"z\":null,\"l\":[1,\"a\"],\"m\":{\"k\":0.1}}");
    cJSON *item = NULL;
    assert_int_equal(st_ddb_item_from_json(plain, &item), 0);
    char *text = cJSON_PrintUnformatted(item);
    assert_string_equal(text, "{\"s\":{\"S\":\"x\"},\"n\":{\"N\":\"1.5\"},"
                              "\"i\":{\"N\":\"9007199254740991\"},\"b\":{\"BOOL\":false},"
                              "\"z\":{\"NULL\":true},\"l\":{\"L\":[{\"N\":\"1\"},{\"S\":\"a\"}]},"
                              "\"m\":{\"M\":{\"k\":{\"N\":\"0.1\"}}}}");
    free(text);
    cJSON *back = NULL;
    char err[128];
    assert_int_equal(st_ddb_item_to_json(item, &back, err, sizeof(err)), 0);
    assert_true(cJSON_Compare(back, plain, 1));
    cJSON_Delete(back);
    cJSON *bad = cJSON_Parse("{\"a\":{\"X\":1}}");
    assert_int_equal(st_ddb_item_to_json(bad, &back, err, sizeof(err)), ST_EINVAL);
    assert_string_equal(err, "item.a: unknown DynamoDB type");
    cJSON_Delete(bad);
    cJSON_Delete(item);
    cJSON_Delete(plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_result_msg_second_round_trip),
        cmocka_unit_test(test_result_msg_by_name_round_trip),
        cmocka_unit_test(test_result_msg_by_name_refusals),
        cmocka_unit_test(test_result_msg_summary_round_trip),
        cmocka_unit_test(test_result_msg_ids_and_keys),
        cmocka_unit_test(test_result_msg_encode_rejects),
        cmocka_unit_test(test_result_msg_errors_name_paths),
        cmocka_unit_test(test_result_item_round_trip),
        cmocka_unit_test(test_ddb_json_conversions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
