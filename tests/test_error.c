/*
 * Tests for the error codes and the one message formatter (common/error.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "error.h"

#include <string.h>

static void test_error_errf_formats_and_returns_code(void **state)
{
    (void)state;
    char err[64];
    assert_int_equal(st_errf(err, sizeof(err), ST_EINVAL, "$.%s: must be %d or more", "rate", 1),
                     ST_EINVAL);
    assert_string_equal(err, "$.rate: must be 1 or more");
    /* Any int comes back: a yes/no answer with a reason returns 0 or 1. */
    assert_int_equal(st_errf(err, sizeof(err), 0, "no"), 0);
    assert_string_equal(err, "no");
    assert_int_equal(st_errf(err, sizeof(err), 1, "%s", ""), 1);
    assert_string_equal(err, "");
}

static void test_error_errf_truncates(void **state)
{
    (void)state;
    char err[8];
    memset(err, 'x', sizeof(err));
    assert_int_equal(st_errf(err, sizeof(err), ST_ERANGE, "%s", "0123456789"), ST_ERANGE);
    assert_string_equal(err, "0123456");

    /* err_len 1 leaves room for the terminator only. */
    memset(err, 'x', sizeof(err));
    st_errf(err, 1, ST_EIO, "abc");
    assert_int_equal(err[0], '\0');
    assert_int_equal(err[1], 'x');
}

static void test_error_errf_without_buffer(void **state)
{
    (void)state;
    char err[4] = "abc";
    assert_int_equal(st_errf(NULL, 0, ST_ENOMEM, "ignored %d", 1), ST_ENOMEM);
    assert_int_equal(st_errf(NULL, 16, ST_EIO, "ignored"), ST_EIO);
    /* err_len 0: the buffer is not touched. */
    assert_int_equal(st_errf(err, 0, ST_EPROTO, "zzz"), ST_EPROTO);
    assert_string_equal(err, "abc");
}

static int wrapped(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = st_verrf(err, err_len, ST_EAUTH, fmt, ap);
    va_end(ap);
    return rc;
}

static void test_error_verrf(void **state)
{
    (void)state;
    char err[32];
    assert_int_equal(wrapped(err, sizeof(err), "%s=%u", "attempts", 3u), ST_EAUTH);
    assert_string_equal(err, "attempts=3");
    assert_int_equal(wrapped(NULL, 0, "%s", "x"), ST_EAUTH);
}

static void test_error_strerror(void **state)
{
    (void)state;
    for (int code = ST_ESYSTEM; code <= ST_OK; code++) {
        const char *s = st_strerror(code);
        assert_non_null(s);
        assert_string_not_equal(s, "unknown error");
    }
    assert_string_equal(st_strerror(ST_OK), "success");
    assert_string_equal(st_strerror(ST_EINVAL), "invalid input");
    assert_string_equal(st_strerror(ST_ESYSTEM - 1), "unknown error");
    assert_string_equal(st_strerror(1), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_errf_formats_and_returns_code),
        cmocka_unit_test(test_error_errf_truncates),
        cmocka_unit_test(test_error_errf_without_buffer),
        cmocka_unit_test(test_error_verrf),
        cmocka_unit_test(test_error_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
