#include "json_strict.h"
#include "error.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A JSON path being built: "$", "$.requests", "$.requests[2].url". Long paths are cut short. */
typedef struct jpath {
    char buf[256];
    size_t len;
} jpath;

static void jpath_set(jpath *p, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Cuts the path back to at characters, then appends. */
static void jpath_set(jpath *p, size_t at, const char *fmt, ...)
{
    p->len = at < sizeof(p->buf) ? at : sizeof(p->buf) - 1;
    p->buf[p->len] = 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p->buf + p->len, sizeof(p->buf) - p->len, fmt, ap);
    va_end(ap);
    if (n > 0) {
        p->len += (size_t)n < sizeof(p->buf) - p->len ? (size_t)n : sizeof(p->buf) - 1 - p->len;
    }
}

static int hex4(const char *s, const char *lim, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        if (s + i >= lim) {
            return -1;
        }
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= (unsigned)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            v |= (unsigned)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            v |= (unsigned)(c - 'A' + 10);
        } else {
            return -1;
        }
    }
    *out = v;
    return 0;
}

/* Appends the bytes of b (n of them) to out, as far as they fit. */
static void put(char *out, size_t out_len, size_t *at, const char *b, size_t n)
{
    for (size_t i = 0; i < n && *at + 1 < out_len; i++) {
        out[(*at)++] = b[i];
    }
    out[*at] = 0;
}

/* Reads the JSON string whose first character (after the quote) is at s, up to lim. Writes its
 * text into out for messages (a NUL shown as "\u0000"), says whether it holds NUL, and returns
 * where it ends (after the closing quote). The text is valid JSON: cJSON parsed it. */
static const char *read_string(const char *s, const char *lim, char *out, size_t out_len,
                               bool *nul)
{
    size_t at = 0;
    out[0] = 0;
    *nul = false;
    while (s < lim && *s != '"') {
        if (*s != '\\') {
            if (*s == 0) {
                *nul = true;
                put(out, out_len, &at, "\\u0000", 6);
            } else {
                put(out, out_len, &at, s, 1);
            }
            s++;
            continue;
        }
        if (++s >= lim) {
            break;
        }
        char e = *s++;
        static const char esc_in[] = "\"\\/bfnrt", esc_out[] = "\"\\/\b\f\n\r\t";
        const char *k = strchr(esc_in, e);
        unsigned cp;
        if (e != 'u' || hex4(s, lim, &cp) != 0) {
            if (k && e) {
                put(out, out_len, &at, &esc_out[k - esc_in], 1);
            }
            continue;
        }
        s += 4;
        unsigned lo;
        if (cp >= 0xd800 && cp < 0xdc00 && lim - s >= 6 && s[0] == '\\' && s[1] == 'u' &&
            hex4(s + 2, lim, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            s += 6;
        }
        char u[4];
        size_t n;
        if (cp == 0) {
            *nul = true;
            put(out, out_len, &at, "\\u0000", 6);
            continue;
        } else if (cp < 0x80) {
            u[0] = (char)cp;
            n = 1;
        } else if (cp < 0x800) {
            u[0] = (char)(0xc0 | (cp >> 6));
            u[1] = (char)(0x80 | (cp & 0x3f));
            n = 2;
        } else if (cp < 0x10000) {
            u[0] = (char)(0xe0 | (cp >> 12));
            u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
            u[2] = (char)(0x80 | (cp & 0x3f));
            n = 3;
        } else {
            u[0] = (char)(0xf0 | (cp >> 18));
            u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
            u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
            u[3] = (char)(0x80 | (cp & 0x3f));
            n = 4;
        }
        put(out, out_len, &at, u, n);
    }
    return s < lim ? s + 1 : lim;
}

typedef struct frame {
    size_t base;  /* the path's length at the container */
    size_t index; /* the element being read, in an array */
    bool array;
} frame;

/* Walks the raw text (cJSON's strings cannot show a NUL) with the path of every string. */
static int find_nul(const char *text, const char *lim, char *where, size_t where_len, char *why,
                    size_t why_len)
{
    frame *st = NULL;
    size_t depth = 0, cap = 0;
    jpath p = {"$", 1};
    bool want_key = false;
    int rc = 0;
    for (const char *s = text; s < lim;) {
        char ch = *s;
        if (ch == '{' || ch == '[') {
            if (depth == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                frame *nst = realloc(st, ncap * sizeof(*nst));
                if (!nst) {
                    rc = ST_ENOMEM;
                    goto out;
                }
                st = nst;
                cap = ncap;
            }
            st[depth++] = (frame){p.len, 0, ch == '['};
            if (ch == '[') {
                jpath_set(&p, p.len, "[0]");
            }
            want_key = ch == '{';
            s++;
        } else if ((ch == '}' || ch == ']') && depth > 0) {
            depth--;
            jpath_set(&p, st[depth].base, "%s", "");
            s++;
        } else if (ch == ',' && depth > 0) {
            frame *f = &st[depth - 1];
            if (f->array) {
                f->index++;
                jpath_set(&p, f->base, "[%zu]", f->index);
            } else {
                want_key = true;
            }
            s++;
        } else if (ch == '"') {
            char str[200];
            bool nul;
            s = read_string(s + 1, lim, str, sizeof(str), &nul);
            if (want_key && depth > 0) {
                want_key = false;
                jpath_set(&p, st[depth - 1].base, nul ? "%s" : ".%s", nul ? "" : str);
                if (nul) {
                    snprintf(where, where_len, "%s", p.buf);
                    snprintf(why, why_len, "key \"%s\" holds a NUL character (\\u0000), which "
                                           "no key may hold", str);
                    rc = ST_EINVAL;
                    goto out;
                }
            } else if (nul) {
                snprintf(where, where_len, "%s", p.buf);
                snprintf(why, why_len, "holds a NUL character (\\u0000), which would cut the "
                                       "text short: remove it");
                rc = ST_EINVAL;
                goto out;
            }
        } else {
            s++;
        }
    }
out:
    free(st);
    return rc;
}

typedef struct keyref {
    const char *key;
    size_t index;
} keyref;

static int cmp_keyref(const void *a, const void *b)
{
    const keyref *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : x->index < y->index ? -1 : x->index > y->index;
}

/* Refuses an object of the tree with a key twice, naming the later one. */
static int find_dup(const cJSON *v, jpath *p, char *where, size_t where_len, char *why,
                    size_t why_len)
{
    bool object = cJSON_IsObject(v);
    if (!object && !cJSON_IsArray(v)) {
        return 0;
    }
    size_t n = 0;
    for (const cJSON *c = v->child; c; c = c->next) {
        n++;
    }
    if (object && n >= 2) {
        keyref *keys = malloc(n * sizeof(*keys));
        if (!keys) {
            return ST_ENOMEM;
        }
        size_t i = 0;
        for (const cJSON *c = v->child; c; c = c->next, i++) {
            keys[i] = (keyref){c->string ? c->string : "", i};
        }
        qsort(keys, n, sizeof(*keys), cmp_keyref);
        /* Of every key given more than once, the second mention that comes first. */
        const keyref *dup = NULL;
        for (i = 1; i < n; i++) {
            if (strcmp(keys[i].key, keys[i - 1].key) == 0 &&
                (i < 2 || strcmp(keys[i - 2].key, keys[i].key) != 0) &&
                (!dup || keys[i].index < dup->index)) {
                dup = &keys[i];
            }
        }
        if (dup) {
            jpath_set(p, p->len, ".%s", dup->key);
            snprintf(where, where_len, "%s", p->buf);
            snprintf(why, why_len, "is given twice in one object: keep one (the JSON reader "
                                   "would see only one of them)");
        }
        free(keys);
        if (dup) {
            return ST_EINVAL;
        }
    }
    size_t base = p->len, i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        if (object) {
            jpath_set(p, base, ".%s", c->string ? c->string : "");
        } else {
            jpath_set(p, base, "[%zu]", i);
        }
        int rc = find_dup(c, p, where, where_len, why, why_len);
        if (rc) {
            return rc;
        }
    }
    jpath_set(p, base, "%s", "");
    return 0;
}

int st_json_strict_check(const char *text, size_t len, const char *end, const cJSON *root,
                         char *where, size_t where_len, char *why, size_t why_len)
{
    const char *lim = text + len;
    if (!end || end < text || end > lim) {
        end = lim;
    }
    int rc = find_nul(text, end, where, where_len, why, why_len);
    if (rc) {
        return rc;
    }
    jpath p = {"$", 1};
    if ((rc = find_dup(root, &p, where, where_len, why, why_len))) {
        return rc;
    }
    const char *s = end;
    while (s < lim && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) {
        s++;
    }
    if (s < lim) {
        int line = 1, col = 1;
        for (const char *q = text; q < s; q++) {
            if (*q == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        snprintf(where, where_len, "line %d, column %d", line, col);
        return st_errf(why, why_len, ST_EINVAL,
                       "text after the end of the JSON value (one value per file)");
    }
    return 0;
}
