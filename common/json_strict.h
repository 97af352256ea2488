/*
 * json_strict.h - what cJSON lets through and a plan must not hold.
 *
 * cJSON takes a text with a key twice in one object (the reader sees the first, a lookup loop the
 * last), strings holding NUL ("\u0000", or a raw 0 byte: its C strings end there, so the rest
 * vanishes), and anything after the value when asked for where the value ended. The plan parser
 * calls st_json_strict_check on every text cJSON accepted, before reading it, so that each of
 * these is refused with the place it is at instead of silently changing what the plan means.
 *
 * Thread-safe; nothing is kept.
 */
#ifndef ST_JSON_STRICT_H
#define ST_JSON_STRICT_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* Checks text[0..len), which cJSON_ParseWithLengthOpts parsed into root and said ends at end
 * (text <= end <= text + len). In order: no string, value or key, holds NUL; no object of the
 * document has a key twice; only whitespace follows end. Returns 0; ST_EINVAL with the place in
 * where (a JSON path such as "$.requests[0].url", or "line 3, column 2" for text after the
 * value) and what is wrong in why; ST_ENOMEM. */
int st_json_strict_check(const char *text, size_t len, const char *end, const cJSON *root,
                         char *where, size_t where_len, char *why, size_t why_len);

#endif
