#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "curl_group.h"

#include <dirent.h>
#include <stdio.h>
#include <unistd.h>

#include "error.h"
#include "forward.h"

static void test_forward_batch_ten_entries(void **state)
{
    (void)state;
    const char *ids[25];
    size_t sizes[25];
    char names[25][16];
    for (int i = 0; i < 25; i++) {
        snprintf(names[i], sizeof(names[i]), "r.s%06d", i);
        ids[i] = names[i];
        sizes[i] = 100;
    }
    assert_int_equal(st_forward_batch_take(ids, sizes, 25), 10);
    assert_int_equal(st_forward_batch_take(ids, sizes, 10), 10);
    assert_int_equal(st_forward_batch_take(ids, sizes, 3), 3);
    assert_int_equal(st_forward_batch_take(ids, sizes, 0), 0);
}

static void test_forward_batch_byte_limit(void **state)
{
    (void)state;
    const char *ids[] = {"r.s000000", "r.s000001", "r.s000002", "r.s000003"};
    size_t quarter = ST_FORWARD_BATCH_BYTES / 4;
    /* Exactly 256 KiB in all fits. */
    size_t exact[] = {quarter, quarter, quarter, quarter};
    assert_int_equal(st_forward_batch_take(ids, exact, 4), 4);
    /* One byte more does not: the last message waits for the next batch. */
    size_t over[] = {quarter, quarter, quarter, quarter + 1};
    assert_int_equal(st_forward_batch_take(ids, over, 4), 3);
    /* A message of the full 256 KiB goes alone. */
    size_t full[] = {ST_FORWARD_BATCH_BYTES, 1, 1, 1};
    assert_int_equal(st_forward_batch_take(ids, full, 4), 1);
    size_t after[] = {1, ST_FORWARD_BATCH_BYTES, 1, 1};
    assert_int_equal(st_forward_batch_take(ids, after, 4), 1);
}

static void test_forward_batch_distinct_entry_ids(void **state)
{
    (void)state;
    /* "a.b" and "a_b" share the entry Id "a_b": they never share a batch. */
    const char *ids[] = {"x.s000001", "a.b", "a_b", "y"};
    size_t sizes[] = {10, 10, 10, 10};
    assert_int_equal(st_forward_batch_take(ids, sizes, 4), 2);
    const char *same[] = {"r.summary", "r.summary"};
    assert_int_equal(st_forward_batch_take(same, sizes, 2), 1);
}

static void test_forward_entry_ids_and_names(void **state)
{
    (void)state;
    char out[128];
    assert_int_equal(st_forward_entry_id("run-1.s000042", out, sizeof(out)), 0);
    assert_string_equal(out, "run-1_s000042");
    assert_int_equal(st_forward_entry_id("bad id", out, sizeof(out)), ST_EINVAL);
    assert_int_equal(st_forward_spool_name("run-1.summary", out, sizeof(out)), 0);
    assert_string_equal(out, "run-1.summary.json");
    assert_int_equal(st_forward_spool_id("run-1.summary.json", out, sizeof(out)), 0);
    assert_string_equal(out, "run-1.summary");
    assert_int_equal(st_forward_spool_id(".tmp-run-1.summary.json-12-0", out, sizeof(out)),
                     ST_EINVAL);
    assert_int_equal(st_forward_spool_id(".hidden.json", out, sizeof(out)), ST_EINVAL);
    assert_int_equal(st_forward_spool_id("notes.txt", out, sizeof(out)), ST_EINVAL);
    assert_int_equal(st_forward_spool_name("../escape", out, sizeof(out)), ST_EINVAL);
    assert_false(st_forward_id_valid(""));
    assert_false(st_forward_id_valid("a/b"));
    char tiny[6];
    assert_int_equal(st_forward_spool_name("abcdef", tiny, sizeof(tiny)), ST_ERANGE);
}

static void test_forward_spool_write_atomic(void **state)
{
    (void)state;
    char dir[] = "/tmp/st-test-spool-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *body = "{\"schema\":\"stampede.result/1\"}";
    assert_int_equal(st_forward_spool_write(dir, "r.s000001", body, strlen(body)), 0);
    assert_int_equal(st_forward_spool_write(dir, "r.s000001", body, strlen(body)), 0);
    assert_int_equal(st_forward_spool_write(dir, "bad/id", body, strlen(body)), ST_EINVAL);
    assert_int_equal(st_forward_spool_write("/nonexistent/dir", "r", body, 1), ST_EIO);
    /* Exactly one file, under its final name, with the whole body: no temporary left. */
    DIR *d = opendir(dir);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            assert_true(strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0);
            continue;
        }
        assert_string_equal(e->d_name, "r.s000001.json");
        files++;
    }
    closedir(d);
    assert_int_equal(files, 1);
    char path[256], buf[128] = "";
    snprintf(path, sizeof(path), "%s/r.s000001.json", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_string_equal(buf, body);
    unlink(path);
    rmdir(dir);
}

static void test_forward_submit_validation(void **state)
{
    (void)state;
    char dir[] = "/tmp/st-test-fwd-XXXXXX";
    assert_non_null(mkdtemp(dir));
    st_forwarder_config cfg;
    st_forwarder_config_init(&cfg);
    st_forwarder *f = NULL;
    char err[256];
    assert_int_equal(st_forwarder_new(&f, &cfg, err, sizeof(err)), ST_EINVAL);
    assert_string_equal(err, "an SQS queue URL is required");
    cfg.queue_url = "http://127.0.0.1:9/000000000000/q";
    cfg.spool_dir = "/proc/self/no-spool-here";
    assert_int_equal(st_forwarder_new(&f, &cfg, err, sizeof(err)), ST_EIO);
    assert_non_null(strstr(err, "cannot create the spool directory /proc/self/no-spool-here"));
    /* Nothing listens on port 9 of loopback: whatever is submitted ends in the spool. */
    cfg.queue_url = "http://127.0.0.1:9/000000000000/q";
    cfg.spool_dir = dir;
    cfg.aws.region = "eu-west-1";
    cfg.aws.retry.max_attempts = 1;
    assert_int_equal(st_forwarder_new(&f, &cfg, err, sizeof(err)), 0);
    assert_int_equal(st_forwarder_submit(f, "bad id", "{}"), ST_EINVAL);
    assert_int_equal(st_forwarder_submit(f, "r.s000000", ""), ST_EINVAL);
    char *huge = malloc(ST_FORWARD_BATCH_BYTES + 2);
    memset(huge, 'x', ST_FORWARD_BATCH_BYTES + 1);
    huge[ST_FORWARD_BATCH_BYTES + 1] = '\0';
    assert_int_equal(st_forwarder_submit(f, "r.s000000", huge), ST_ERANGE);
    free(huge);
    assert_int_equal(st_forwarder_submit(f, "r.s000000", "{\"a\":1}"), 0);
    assert_int_equal(st_forwarder_submit(f, "r.summary", "{\"a\":2}"), 0);
    st_forward_report rep;
    assert_int_equal(st_forwarder_flush_and_close(f, 3000, &rep), ST_EAGAIN);
    assert_int_equal(rep.sent, 0);
    assert_int_equal(rep.spooled, 2);
    assert_int_equal(rep.lost, 0);
    assert_int_equal(st_forwarder_submit(f, "r.s000001", "{}"), ST_ECLOSED);
    assert_int_equal(st_forwarder_flush_and_close(f, 0, NULL), ST_ESTATE);
    st_forwarder_free(f);
    char path[256];
    snprintf(path, sizeof(path), "%s/r.s000000.json", dir);
    assert_int_equal(unlink(path), 0);
    snprintf(path, sizeof(path), "%s/r.summary.json", dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    st_forwarder_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_batch_ten_entries),
        cmocka_unit_test(test_forward_batch_byte_limit),
        cmocka_unit_test(test_forward_batch_distinct_entry_ids),
        cmocka_unit_test(test_forward_entry_ids_and_names),
        cmocka_unit_test(test_forward_spool_write_atomic),
        cmocka_unit_test(test_forward_submit_validation),
    };
    return cmocka_run_group_tests(tests, curl_group_setup, curl_group_teardown);
}
