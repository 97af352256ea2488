/*
 * curl_group.h - a cmocka group setup and teardown that hold libcurl's global state around a
 * suite, as a program's main does around its work. Include after <cmocka.h>; pass them to
 * cmocka_run_group_tests, or call them from a suite's own group setup and teardown.
 */
#ifndef ST_CURL_GROUP_H
#define ST_CURL_GROUP_H

#include <curl/curl.h>

static inline int curl_group_setup(void **state)
{
    (void)state;
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static inline int curl_group_teardown(void **state)
{
    (void)state;
    curl_global_cleanup();
    return 0;
}

#endif
