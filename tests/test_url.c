/*
 * Tests for the URL splitter (common/url.c): the request target both engines send, the Host value,
 * and what is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "error.h"
#include "url.h"

static void expect_url(const char *url, const char *path, const char *request_url,
                       const char *host_header, int port)
{
    st_url u;
    const char *why = NULL;
    int rc = st_url_parse(url, &u, &why);
    if (rc != 0) {
        fail_msg("%s: %s", url, why ? why : st_strerror(rc));
    }
    assert_string_equal(u.path, path);
    assert_string_equal(u.request_url, request_url);
    assert_string_equal(u.host_header, host_header);
    assert_int_equal(u.port, port);
    st_url_fini(&u);
}

static void test_url_request_target(void **state)
{
    (void)state;
    expect_url("http://h/a/b?c=d", "/a/b?c=d", "http://h/a/b?c=d", "h", 80);
    expect_url("http://h", "/", "http://h/", "h", 80);
    expect_url("http://h?x=1", "/?x=1", "http://h/?x=1", "h", 80);
    /* Reserved characters, '%' escapes and dot segments are kept as written. */
    expect_url("http://h/a/../b/./c;p?q=[1]&r=%2F+x*", "/a/../b/./c;p?q=[1]&r=%2F+x*",
               "http://h/a/../b/./c;p?q=[1]&r=%2F+x*", "h", 80);
}

static void test_url_request_target_encoded(void **state)
{
    (void)state;
    /* Bytes that may not appear in a URI, in the path and in the query, upper-case hex. */
    expect_url("http://h:8080/caf\xc3\xa9?q=\xe2\x82\xac", "/caf%C3%A9?q=%E2%82%AC",
               "http://h:8080/caf%C3%A9?q=%E2%82%AC", "h:8080", 8080);
    expect_url("http://h/\"<>\\^`{|}", "/%22%3C%3E%5C%5E%60%7B%7C%7D",
               "http://h/%22%3C%3E%5C%5E%60%7B%7C%7D", "h", 80);
    expect_url("http://h?\xff", "/?%FF", "http://h/?%FF", "h", 80);
}

static void test_url_host_header(void **state)
{
    (void)state;
    /* The scheme's default port is not written, as libcurl does not write it. */
    expect_url("http://Example.COM:80/", "/", "http://Example.COM:80/", "Example.COM", 80);
    expect_url("https://h:443/", "/", "https://h:443/", "h", 443);
    expect_url("https://h:80/", "/", "https://h:80/", "h:80", 80);
    expect_url("http://h:0080/", "/", "http://h:0080/", "h", 80);
    expect_url("http://[::1]:80/", "/", "http://[::1]:80/", "[::1]", 80);
    expect_url("http://[::1]:8080/", "/", "http://[::1]:8080/", "[::1]:8080", 8080);
}

static void expect_refused(const char *url)
{
    st_url u;
    const char *why = NULL;
    assert_int_equal(st_url_parse(url, &u, &why), ST_EINVAL);
    assert_non_null(why);
    assert_null(u.path);
    assert_null(u.request_url);
    st_url_fini(&u);
}

static void test_url_refused(void **state)
{
    (void)state;
    expect_refused("ftp://h/");
    expect_refused("http://h/a b");
    expect_refused("http://h/a\tb");
    expect_refused("http://h/#frag");
    expect_refused("http://u@h/");
    expect_refused("http:///x");
    expect_refused("http://h:0/");
    expect_refused("http://h:65536/");
    expect_refused("http://[::1/");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_request_target),
        cmocka_unit_test(test_url_request_target_encoded),
        cmocka_unit_test(test_url_host_header),
        cmocka_unit_test(test_url_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
