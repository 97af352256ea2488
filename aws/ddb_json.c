#include "ddb_json.h"
#include "error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void st_ddb_number_text(double d, char *buf, size_t len)
{
    if (d == floor(d) && fabs(d) < 9007199254740992.0) {
        snprintf(buf, len, "%.0f", d);
        return;
    }
    snprintf(buf, len, "%.15g", d);
    if (strtod(buf, NULL) != d) {
        snprintf(buf, len, "%.17g", d);
    }
}

static cJSON *typed(const char *type, cJSON *v)
{
    cJSON *o = v ? cJSON_CreateObject() : NULL;
    if (!o) {
        cJSON_Delete(v);
        return NULL;
    }
    cJSON_AddItemToObject(o, type, v);
    return o;
}

/* Adds item to the container being built from e's: under e's key in an object (in_object), at
 * the end of an array otherwise. */
static void add_member(cJSON *c, int in_object, const cJSON *e, cJSON *item)
{
    if (in_object) {
        cJSON_AddItemToObject(c, e->string, item);
    } else {
        cJSON_AddItemToArray(c, item);
    }
}

int st_ddb_value_from_json(const cJSON *value, cJSON **out)
{
    cJSON *r = NULL;
    int rc;
    if (cJSON_IsNull(value)) {
        r = typed("NULL", cJSON_CreateTrue());
    } else if (cJSON_IsBool(value)) {
        r = typed("BOOL", cJSON_CreateBool(cJSON_IsTrue(value)));
    } else if (cJSON_IsNumber(value)) {
        if (!isfinite(value->valuedouble)) {
            return ST_EINVAL;
        }
        char buf[40];
        st_ddb_number_text(value->valuedouble, buf, sizeof(buf));
        r = typed("N", cJSON_CreateString(buf));
    } else if (cJSON_IsString(value)) {
        r = typed("S", cJSON_CreateString(value->valuestring));
    } else if (cJSON_IsArray(value) || cJSON_IsObject(value)) {
        int is_obj = cJSON_IsObject(value);
        cJSON *c = is_obj ? cJSON_CreateObject() : cJSON_CreateArray();
        if (!c) {
            return ST_ENOMEM;
        }
        const cJSON *e;
        cJSON_ArrayForEach(e, value)
        {
            cJSON *av;
            if ((rc = st_ddb_value_from_json(e, &av)) != 0) {
                cJSON_Delete(c);
                return rc;
            }
            add_member(c, is_obj, e, av);
        }
        r = typed(is_obj ? "M" : "L", c);
    } else {
        return ST_EINVAL;
    }
    if (!r) {
        return ST_ENOMEM;
    }
    *out = r;
    return 0;
}

int st_ddb_item_from_json(const cJSON *obj, cJSON **out)
{
    if (!cJSON_IsObject(obj)) {
        return ST_EINVAL;
    }
    cJSON *m;
    int rc = st_ddb_value_from_json(obj, &m);
    if (rc) {
        return rc;
    }
    cJSON *item = cJSON_DetachItemFromObjectCaseSensitive(m, "M");
    cJSON_Delete(m);
    *out = item;
    return 0;
}

static int bad(char *err, size_t err_len, const char *path, const char *what)
{
    if (err && err_len) {
        snprintf(err, err_len, "%s: %s", path, what);
    }
    return ST_EINVAL;
}

int st_ddb_value_to_json(const cJSON *av, const char *path, cJSON **out, char *err, size_t err_len)
{
    if (!cJSON_IsObject(av) || !av->child || av->child->next) {
        return bad(err, err_len, path, "not a DynamoDB attribute value");
    }
    const cJSON *v = av->child;
    const char *t = v->string;
    cJSON *r = NULL;
    int rc = 0;
    if (strcmp(t, "S") == 0 || strcmp(t, "B") == 0) {
        if (!cJSON_IsString(v)) {
            return bad(err, err_len, path, "S or B must hold a string");
        }
        r = cJSON_CreateString(v->valuestring);
    } else if (strcmp(t, "N") == 0) {
        char *end = NULL;
        double d = cJSON_IsString(v) ? strtod(v->valuestring, &end) : 0;
        if (!cJSON_IsString(v) || end == v->valuestring || *end != '\0') {
            return bad(err, err_len, path, "N must hold a number as a string");
        }
        r = cJSON_CreateNumber(d);
    } else if (strcmp(t, "BOOL") == 0) {
        if (!cJSON_IsBool(v)) {
            return bad(err, err_len, path, "BOOL must hold true or false");
        }
        r = cJSON_CreateBool(cJSON_IsTrue(v));
    } else if (strcmp(t, "NULL") == 0) {
        r = cJSON_CreateNull();
    } else if (strcmp(t, "L") == 0 || strcmp(t, "M") == 0 || strcmp(t, "SS") == 0 ||
               strcmp(t, "NS") == 0 || strcmp(t, "BS") == 0) {
        int is_map = t[0] == 'M';
        if (is_map ? !cJSON_IsObject(v) : !cJSON_IsArray(v)) {
            return bad(err, err_len, path,
                       is_map ? "M must hold an object" : "a list must hold an array");
        }
        r = is_map ? cJSON_CreateObject() : cJSON_CreateArray();
        if (!r) {
            return ST_ENOMEM;
        }
        const cJSON *e;
        int i = 0;
        cJSON_ArrayForEach(e, v)
        {
            char sub[512];
            if (is_map) {
                snprintf(sub, sizeof(sub), "%s.%s", path, e->string);
            } else {
                snprintf(sub, sizeof(sub), "%s[%d]", path, i);
            }
            cJSON *plain;
            if (t[0] == 'L' || is_map) {
                rc = st_ddb_value_to_json(e, sub, &plain, err, err_len);
            } else if (!cJSON_IsString(e)) {
                rc = bad(err, err_len, sub, "set members must be strings");
            } else if (t[0] == 'N') {
                char *end = NULL;
                double d = strtod(e->valuestring, &end);
                rc = *end ? bad(err, err_len, sub, "not a number") : 0;
                plain = rc ? NULL : cJSON_CreateNumber(d);
            } else {
                plain = cJSON_CreateString(e->valuestring);
            }
            if (!rc && !plain) {
                rc = ST_ENOMEM;
            }
            if (rc) {
                cJSON_Delete(r);
                return rc;
            }
            add_member(r, is_map, e, plain);
            i++;
        }
    } else {
        return bad(err, err_len, path, "unknown DynamoDB type");
    }
    if (!r) {
        return ST_ENOMEM;
    }
    *out = r;
    return 0;
}

int st_ddb_item_to_json(const cJSON *item, cJSON **out, char *err, size_t err_len)
{
    if (!cJSON_IsObject(item)) {
        return bad(err, err_len, "item", "must be an object");
    }
    cJSON *r = cJSON_CreateObject();
    if (!r) {
        return ST_ENOMEM;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, item)
    {
        char path[512];
        snprintf(path, sizeof(path), "item.%s", e->string);
        cJSON *plain;
        int rc = st_ddb_value_to_json(e, path, &plain, err, err_len);
        if (rc) {
            cJSON_Delete(r);
            return rc;
        }
        cJSON_AddItemToObject(r, e->string, plain);
    }
    *out = r;
    return 0;
}
