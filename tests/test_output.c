#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "curl_group.h"

#include <dirent.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "output.h"
#include "report.h"
#include "stats.h"

/*
 * The outputs: what the sqs output says became of its messages (sent, spooled and lost kept
 * apart), and what the file outputs write for seconds without responses.
 */

static size_t count_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

/* The forwarder's account of its messages. */
static void expect_delivery(const st_forward_report *d, uint64_t sent, uint64_t spooled,
                            uint64_t lost)
{
    assert_int_equal(d->sent, sent);
    assert_int_equal(d->spooled, spooled);
    assert_int_equal(d->lost, lost);
}

/* An sqs output towards a port nothing listens on, with n seconds submitted, spooling into a new
 * folder made from the mkdtemp template spool; remove_spool takes that folder away before they
 * are, so that they can be spooled nowhere. */
static int sqs_run(char *spool, int n, bool remove_spool, st_forward_report *delivery)
{
    assert_non_null(mkdtemp(spool));
    setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
    setenv("AWS_REGION", "us-east-1", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    st_aws_config aws;
    st_aws_config_init(&aws);
    st_output out;
    char err[512] = "";
    memset(delivery, 0xff, sizeof(*delivery));
    int rc = st_output_sqs(&out, "unit-run", "http://127.0.0.1:1/000000000000/q", spool, &aws, 3000,
                           delivery, err, sizeof(err));
    assert_int_equal(rc, 0);
    if (remove_spool) {
        assert_int_equal(rmdir(spool), 0);
    }
    st_stats s;
    assert_int_equal(st_stats_init(&s), 0);
    for (int k = 0; k < n; k++) {
        st_stats_reset(&s);
        s.second = (uint32_t)k;
        s.c.sent = s.c.ok = 10;
        st_hist_record_n(s.lat, 1500, 10);
        st_hist_record_n(s.lat_raw, 1400, 10);
        st_report_second row;
        st_report_second_of(&row, (uint32_t)k, 10, &s, 1);
        st_coord_second sec = {(uint32_t)k, 10, &s, 1, &row, NULL};
        assert_int_equal(out.ops->second(out.state, &sec), 0);
    }
    st_stats_fini(&s);
    return out.ops->close(out.state);
}

static void test_output_sqs_messages_wait_in_the_spool(void **state)
{
    (void)state;
    char spool[] = "/tmp/st-out-sqs-XXXXXX";
    st_forward_report d;
    assert_int_equal(sqs_run(spool, 3, false, &d), ST_EAGAIN);
    expect_delivery(&d, 0, 3, 0);
    assert_int_equal(count_files(spool), 3);
    char path[128];
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof(path), "%s/unit-run.s%06d.json", spool, k);
        assert_int_equal(unlink(path), 0);
    }
    assert_int_equal(rmdir(spool), 0);
}

/* Messages the spool cannot take are lost, and said to be: not counted as waiting there. */
static void test_output_sqs_messages_spooled_nowhere_are_lost(void **state)
{
    (void)state;
    char spool[] = "/tmp/st-out-sqs-XXXXXX";
    st_forward_report d;
    assert_int_equal(sqs_run(spool, 3, true, &d), ST_EIO);
    expect_delivery(&d, 0, 0, 3);
}

/* Opens the file output made by open on dir/name into out, dir a new folder made from the mkdtemp
 * template dir; path receives dir/name. */
typedef int (*file_output_fn)(st_output *out, const char *path, char *err, size_t err_len);
static void open_in_new_dir(st_output *out, file_output_fn open, char *dir, const char *name,
                            char *path, size_t path_len)
{
    assert_non_null(mkdtemp(dir));
    snprintf(path, path_len, "%s/%s", dir, name);
    char err[512] = "";
    assert_int_equal(open(out, path, err, sizeof(err)), 0);
}

/* A plan with several request names: every time-series line has by_name with each name, in the
 * plan's order, a name with nothing in a second at zero with null latencies (names are JSON
 * strings, escaped). */
static void test_output_timeseries_by_name(void **state)
{
    (void)state;
    char dir[] = "/tmp/st-out-ts-XXXXXX";
    char path[128];
    st_output out;
    open_in_new_dir(&out, st_output_timeseries, dir, "ts.jsonl", path, sizeof(path));
    const char *names[] = {"home", "log\"in"};
    uint32_t of_request[] = {0, 1};
    st_names nm = {.n = 2, .name = names, .of_request = of_request, .n_requests = 2};
    st_stats s;
    assert_int_equal(st_stats_init(&s), 0);
    for (uint32_t k = 0; k < 2; k++) {
        st_stats_reset(&s);
        s.second = k;
        if (k == 0) {
            assert_int_equal(st_stats_names(&s, 2), 0);
            s.c.sent = s.c.ok = 3;
            s.c.http_5xx = 1;
            s.names[0].c.ok = 3;
            s.names[1].c.http_5xx = 1;
            st_hist_record_n(s.lat, 1500, 3);
            st_hist_record_n(s.names[0].lat, 1500, 3);
            st_hist_record(s.lat, 2500);
            st_hist_record(s.names[1].lat, 2500);
        }
        st_report_second row;
        st_report_second_of(&row, k, 10, &s, 1);
        st_coord_second sec = {k, 10, &s, 1, &row, &nm};
        assert_int_equal(out.ops->second(out.state, &sec), 0);
    }
    st_stats_fini(&s);
    st_report r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(out.ops->summary(out.state, &r), 0);
    assert_int_equal(out.ops->close(out.state), 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[2048];
    assert_non_null(fgets(line, sizeof(line), f));
    assert_non_null(strstr(line, ",\"by_name\":{\"home\":{\"ok\":3,\"failed\":0,\"p50_ms\":1.500,"
                                 "\"p99_ms\":1.500},\"log\\\"in\":{\"ok\":0,\"failed\":1,"
                                 "\"p50_ms\":2.500,\"p99_ms\":2.500}}}\n"));
    assert_non_null(fgets(line, sizeof(line), f));
    assert_non_null(strstr(line, ",\"by_name\":{\"home\":{\"ok\":0,\"failed\":0,\"p50_ms\":null,"
                                 "\"p99_ms\":null},\"log\\\"in\":{\"ok\":0,\"failed\":0,"
                                 "\"p50_ms\":null,\"p99_ms\":null}}}\n"));
    assert_null(fgets(line, sizeof(line), f));
    fclose(f);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

/* With --sqs-queue-url, the summary file waits for the forwarder's account: nothing at its path
 * after summary(), and at close() its "results_delivery" holds the figures the sqs output's
 * close() wrote (here by hand), the spool named. */
static void test_output_summary_file_says_what_became_of_the_messages(void **state)
{
    (void)state;
    char dir[] = "/tmp/st-out-sum-XXXXXX";
    char path[128];
    st_output out;
    open_in_new_dir(&out, st_output_summary_file, dir, "summary.json", path, sizeof(path));
    st_forward_report d = {0};
    st_output_set_delivery(&out, &d, "/var/spool/here");
    st_report r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(st_stats_init(&r.total), 0);
    r.total.c.sent = r.total.c.ok = 7;
    st_hist_record_n(r.total.lat, 1500, 7);
    st_hist_record_n(r.total.lat_raw, 1400, 7);
    assert_int_equal(out.ops->summary(out.state, &r), 0);
    st_report_fini(&r);
    assert_int_equal(access(path, F_OK), -1);
    d = (st_forward_report){.sent = 5, .spooled = 2, .lost = 1};
    assert_int_equal(out.ops->close(out.state), 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char text[16384];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = 0;
    cJSON *j = cJSON_Parse(text);
    assert_non_null(j);
    cJSON *rd = cJSON_GetObjectItemCaseSensitive(j, "results_delivery");
    assert_non_null(rd);
    char *got = cJSON_PrintUnformatted(rd);
    assert_string_equal(got, "{\"sent\":5,\"spooled\":2,\"lost\":1,\"spool\":\"/var/spool/here\"}");
    free(got);
    cJSON_Delete(j);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_sqs_messages_wait_in_the_spool),
        cmocka_unit_test(test_output_sqs_messages_spooled_nowhere_are_lost),
        cmocka_unit_test(test_output_timeseries_by_name),
        cmocka_unit_test(test_output_summary_file_says_what_became_of_the_messages),
    };
    st_log_init("test_output", ST_LOG_ERROR);
    return cmocka_run_group_tests(tests, curl_group_setup, curl_group_teardown);
}
