/*
 * json_get.h - a number or a string out of a JSON object for a test's checks: the key must be
 * there with that type, or the test fails naming it. Shared by the unit tests; include after
 * <cmocka.h>.
 */
#ifndef ST_JSON_GET_H
#define ST_JSON_GET_H

#include <cjson/cJSON.h>

static inline double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) {
        fail_msg("\"%s\" is not a number", key);
    }
    return v->valuedouble;
}

static inline const char *str(const cJSON *o, const char *key)
{
    const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
    if (!v) {
        fail_msg("\"%s\" is not a string", key);
    }
    return v;
}

#endif
