/*
 * ddb_json.h - converts between plain JSON and DynamoDB's typed JSON (AttributeValue).
 *
 * null -> {"NULL": true}, true/false -> {"BOOL": b}, numbers -> {"N": "text"}, strings -> {"S": s},
 * arrays -> {"L": [...]}, objects -> {"M": {...}}. Numbers are written exactly when they are
 * integers below 2^53, otherwise with the shortest of 15 or 17 significant digits that reads back
 * the same double. Back to plain JSON, N becomes a number, sets (SS, NS) become arrays and B
 * (base64 text) a string.
 *
 * Used by results/result_item.c (the sink's items and `stampede results`). Reentrant. Every function
 * returns a new cJSON tree the caller owns (cJSON_Delete) through *out, and writes *out only on 0.
 */
#ifndef ST_DDB_JSON_H
#define ST_DDB_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* Any plain value -> AttributeValue. Returns 0 or ST_ENOMEM (ST_EINVAL for a non-finite number). */
int st_ddb_value_from_json(const cJSON *value, cJSON **out);
/* A plain object -> an item (attribute name -> AttributeValue). ST_EINVAL when obj is no object. */
int st_ddb_item_from_json(const cJSON *obj, cJSON **out);

/* AttributeValue -> plain value. ST_EINVAL with a message in err when av is not an AttributeValue;
 * path names it in that message. */
int st_ddb_value_to_json(const cJSON *av, const char *path, cJSON **out, char *err, size_t err_len);
/* An item -> a plain object. */
int st_ddb_item_to_json(const cJSON *item, cJSON **out, char *err, size_t err_len);

/* Formats d as DynamoDB number text into buf (at least 32 bytes). */
void st_ddb_number_text(double d, char *buf, size_t len);

#endif
