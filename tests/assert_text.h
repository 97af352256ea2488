/*
 * assert_text.h - a cmocka assertion that an error message names what it must. Shared by the
 * unit tests; include after <cmocka.h>.
 */
#ifndef ST_ASSERT_TEXT_H
#define ST_ASSERT_TEXT_H

#include <string.h>

/* msg contains frag; the failure shows both. */
static inline void assert_says(const char *msg, const char *frag)
{
    if (!strstr(msg, frag)) {
        fail_msg("message \"%s\" lacks \"%s\"", msg, frag);
    }
}

#endif
