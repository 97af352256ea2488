#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "error.h"
#include "outfile.h"

/*
 * Result files written whole or not at all: a temporary name in the folder, renamed at the end;
 * devices written in place; every failed write, flush, sync or close reported with the path and
 * the errno.
 */

static void make_dir(char *dir, size_t len)
{
    snprintf(dir, len, "/tmp/st-outfile-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

/* The names in dir, sorted, joined by spaces ("" when empty). */
static void listing(const char *dir, char *out, size_t len)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    assert_true(n >= 0);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, "..")) {
            if (out[0]) {
                strncat(out, " ", len - strlen(out) - 1);
            }
            strncat(out, names[i]->d_name, len - strlen(out) - 1);
        }
        free(names[i]);
    }
    free(names);
}

static void read_text(const char *path, char *out, size_t len)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, len - 1, f);
    out[n] = '\0';
    fclose(f);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void test_outfile_commit_replaces_the_file_whole(void **state)
{
    (void)state;
    char dir[64], path[128], names[512], text[256], err[512] = "";
    make_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/summary.json", dir);
    write_text(path, "old\n");
    st_outfile *f;
    assert_int_equal(st_outfile_open(&f, "--summary", path, err, sizeof(err)), 0);
    assert_string_equal(st_outfile_path(f), path);
    assert_int_equal(st_outfile_printf(f, "{\"n\":%d}\n", 1), 0);
    assert_int_equal(st_outfile_flush(f), 0);
    /* Until the commit a reader sees the old file, and the new one under a hidden name. */
    read_text(path, text, sizeof(text));
    assert_string_equal(text, "old\n");
    listing(dir, names, sizeof(names));
    assert_non_null(strstr(names, ".summary.json.tmp-"));
    assert_int_equal(st_outfile_commit(f, err, sizeof(err)), 0);
    read_text(path, text, sizeof(text));
    assert_string_equal(text, "{\"n\":1}\n");
    listing(dir, names, sizeof(names));
    assert_string_equal(names, "summary.json");
    /* The mode a plain fopen would have given (0666 less the umask), not mkstemp's 0600. */
    mode_t mask = umask(0);
    umask(mask);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0666 & ~mask);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_outfile_abort_leaves_nothing(void **state)
{
    (void)state;
    char dir[64], path[128], names[512], err[512] = "";
    make_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/ts.jsonl", dir);
    st_outfile *f;
    assert_int_equal(st_outfile_open(&f, "--timeseries", path, err, sizeof(err)), 0);
    st_outfile_printf(f, "{\"t\":0}\n");
    st_outfile_abort(f);
    st_outfile_abort(NULL);
    listing(dir, names, sizeof(names));
    assert_string_equal(names, "");
    assert_int_equal(rmdir(dir), 0);
}

static void test_outfile_full_device_fails_with_the_path(void **state)
{
    (void)state;
    struct stat before, after;
    if (stat("/dev/full", &before) != 0) {
        skip();
    }
    char err[512] = "";
    st_outfile *f;
    assert_int_equal(st_outfile_open(&f, "--summary", "/dev/full", err, sizeof(err)), 0);
    /* Buffered: the error shows at the flush, and sticks. */
    assert_int_equal(st_outfile_printf(f, "{}\n"), 0);
    assert_int_equal(st_outfile_flush(f), ENOSPC);
    assert_int_equal(st_outfile_printf(f, "more\n"), ENOSPC);
    assert_int_equal(st_outfile_commit(f, err, sizeof(err)), ST_EIO);
    assert_string_equal(err, "--summary /dev/full: cannot write it: No space left on device");
    /* Written in place: the device is still the device. */
    assert_int_equal(stat("/dev/full", &after), 0);
    assert_true(S_ISCHR(after.st_mode));
    assert_int_equal(after.st_rdev, before.st_rdev);
    /* A failure seen only at the commit's own flush is reported the same way. */
    assert_int_equal(st_outfile_open(&f, "--summary", "/dev/full", err, sizeof(err)), 0);
    st_outfile_printf(f, "{}\n");
    assert_int_equal(st_outfile_commit(f, err, sizeof(err)), ST_EIO);
    assert_string_equal(err, "--summary /dev/full: cannot write it: No space left on device");
}

static void test_outfile_unwritable_places_are_refused_at_open(void **state)
{
    (void)state;
    char dir[64], path[128], err[512] = "";
    make_dir(dir, sizeof(dir));
    st_outfile *f = (st_outfile *)&f;
    snprintf(path, sizeof(path), "%s/missing/summary.json", dir);
    assert_int_equal(st_outfile_open(&f, "--summary", path, err, sizeof(err)), ST_EIO);
    assert_non_null(strstr(err, "--summary "));
    assert_non_null(strstr(err, "cannot create a file in its folder: No such file or directory"));
    assert_ptr_equal(f, (st_outfile *)&f); /* *out written only on success */
    /* A folder named as the file: not a regular file, opened in place, refused. */
    assert_int_equal(st_outfile_open(&f, "--timeseries", dir, err, sizeof(err)), ST_EIO);
    assert_non_null(strstr(err, "cannot create it: Is a directory"));
    /* A bare name goes to the current folder. */
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(dir), 0);
    assert_int_equal(st_outfile_open(&f, "--summary", "bare.json", err, sizeof(err)), 0);
    st_outfile_printf(f, "x\n");
    assert_int_equal(st_outfile_commit(f, err, sizeof(err)), 0);
    assert_int_equal(unlink("bare.json"), 0);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outfile_commit_replaces_the_file_whole),
        cmocka_unit_test(test_outfile_abort_leaves_nothing),
        cmocka_unit_test(test_outfile_full_device_fails_with_the_path),
        cmocka_unit_test(test_outfile_unwritable_places_are_refused_at_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
