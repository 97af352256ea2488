#include "url.h"
#include "error.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int fail(st_url *u, const char **why, const char *reason)
{
    st_url_fini(u);
    if (why) {
        *why = reason;
    }
    return ST_EINVAL;
}

/* Bytes that cannot appear in a URI, whatever the component (RFC 3986 section 2): non-ASCII and
 * the printable ASCII characters that are neither reserved nor unreserved. Spaces and controls are
 * refused before this is asked. */
static bool must_encode(unsigned char ch)
{
    return ch >= 0x80 || (ch && strchr("\"<>\\^`{|}", ch));
}

/* The request target for rest (what follows the authority): percent-encoded, '/' first. */
static char *encode_target(const char *rest)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 2;
    for (const char *c = rest; *c; c++) {
        n += must_encode((unsigned char)*c) ? 3 : 1;
    }
    char *out = malloc(n);
    if (!out) {
        return NULL;
    }
    char *o = out;
    if (*rest != '/') {
        *o++ = '/'; /* "http://h?x" has an empty path: the request line needs "/?x". */
    }
    for (const char *c = rest; *c; c++) {
        unsigned char ch = (unsigned char)*c;
        if (must_encode(ch)) {
            *o++ = '%';
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 15];
        } else {
            *o++ = (char)ch;
        }
    }
    *o = 0;
    return out;
}

int st_url_parse(const char *url, st_url *u, const char **why)
{
    memset(u, 0, sizeof(*u));
    if (!url) {
        return fail(u, why, "no URL");
    }
    size_t skip;
    int default_port;
    if (strncasecmp(url, "http://", 7) == 0) {
        skip = 7;
        default_port = 80;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        skip = 8;
        default_port = 443;
    } else {
        return fail(u, why, "must start with http:// or https://");
    }
    for (const char *c = url; *c; c++) {
        if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            return fail(u, why, "contains a space or a control character");
        }
    }
    if (strchr(url, '#')) {
        return fail(u, why, "has a fragment (#...)");
    }
    const char *auth = url + skip;
    size_t auth_len = strcspn(auth, "/?");
    if (memchr(auth, '@', auth_len)) {
        return fail(u, why, "has user information (user@host): put credentials in a header");
    }
    const char *host = auth, *host_end, *port_at = NULL;
    bool v6 = false;
    if (auth_len > 0 && auth[0] == '[') {
        const char *close = memchr(auth, ']', auth_len);
        if (!close) {
            return fail(u, why, "has an unclosed IPv6 bracket");
        }
        host = auth + 1;
        host_end = close;
        v6 = true;
        if (close + 1 < auth + auth_len) {
            if (close[1] != ':') {
                return fail(u, why, "has characters after the IPv6 address");
            }
            port_at = close + 2;
        }
    } else {
        const char *colon = memchr(auth, ':', auth_len);
        host_end = colon ? colon : auth + auth_len;
        if (colon) {
            port_at = colon + 1;
        }
    }
    if (host_end == host) {
        return fail(u, why, "has no host");
    }
    int port = default_port;
    bool explicit_port = false;
    if (port_at) {
        const char *end = auth + auth_len;
        if (port_at == end) {
            return fail(u, why, "has an empty port");
        }
        long v = 0;
        for (const char *c = port_at; c < end; c++) {
            if (!isdigit((unsigned char)*c) || v > 65535) {
                return fail(u, why, "has a port that is not a number from 1 to 65535");
            }
            v = v * 10 + (*c - '0');
        }
        if (v < 1 || v > 65535) {
            return fail(u, why, "has a port that is not a number from 1 to 65535");
        }
        port = (int)v;
        explicit_port = true;
    }
    const char *rest = auth + auth_len;
    u->scheme = strndup(url, skip - 3);
    u->host = strndup(host, (size_t)(host_end - host));
    u->path = encode_target(rest);
    if (u->path) {
        size_t auth_end = (size_t)(rest - url);
        u->request_url = malloc(auth_end + strlen(u->path) + 1);
        if (u->request_url) {
            memcpy(u->request_url, url, auth_end);
            strcpy(u->request_url + auth_end, u->path);
        }
    }
    size_t hh_len = strlen(u->host ? u->host : "") + 16;
    u->host_header = malloc(hh_len);
    if (!u->scheme || !u->host || !u->path || !u->request_url || !u->host_header) {
        st_url_fini(u);
        return ST_ENOMEM;
    }
    for (char *c = u->scheme; *c; c++) {
        *c = (char)tolower((unsigned char)*c);
    }
    /* As libcurl writes it: "http://h:80/" and "http://h/" are the same origin and get the same
     * Host header. */
    if (explicit_port && port != default_port) {
        snprintf(u->host_header, hh_len, v6 ? "[%s]:%d" : "%s:%d", u->host, port);
    } else {
        snprintf(u->host_header, hh_len, v6 ? "[%s]" : "%s", u->host);
    }
    u->port = port;
    u->ipv6_literal = v6;
    return 0;
}

void st_url_fini(st_url *u)
{
    if (!u) {
        return;
    }
    free(u->scheme);
    free(u->host);
    free(u->path);
    free(u->host_header);
    free(u->request_url);
    memset(u, 0, sizeof(*u));
}

bool st_url_same_origin(const st_url *a, const st_url *b)
{
    return strcmp(a->scheme, b->scheme) == 0 && strcasecmp(a->host, b->host) == 0 &&
           a->port == b->port;
}
