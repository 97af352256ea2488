/*
 * url.h - splits an absolute http:// or https:// URL into what a client needs.
 *
 * Used by the plan checker (every request URL must parse), the fast engine (it connects to host and
 * port and writes path and the Host header itself), the curl engine (it hands libcurl the URL with
 * the request target encoded as below, so that both engines send the same request line) and the
 * engine chooser (one origin or several).
 * Userinfo ("user:pass@") and fragments are refused: load tests send neither; so are spaces and
 * control characters.
 *
 * The request target (`path`): path and query as written, starting with '/' ("http://h?q" gives
 * "/?q"), with every byte that may not appear in a URI at all (RFC 3986 section 2: bytes 0x80 and
 * above, as in UTF-8 text, and the ASCII characters " < > \ ^ ` { | }) percent-encoded with
 * upper-case hex digits. Everything else is kept as written: '%' (the URL is taken as already
 * encoded), reserved characters such as [ ] ; = +, and dot segments ("/a/../b" is not resolved).
 *
 * Ownership: st_url_parse fills a caller-provided st_url whose strings it owns; st_url_fini frees
 * them (a zeroed st_url is fine to fini). Thread-safe.
 */
#ifndef ST_URL_H
#define ST_URL_H

#include <stdbool.h>

typedef struct st_url {
    char *scheme;      /* "http" or "https" */
    char *host;        /* without brackets for IPv6 literals */
    int port;          /* explicit, or 80 / 443 */
    char *path;        /* path and query as sent on the request line (below) */
    char *host_header; /* value for the Host header: host as written, bracketed for IPv6, and
                          ":port" when the URL names a port other than the scheme's default */
    char *request_url; /* the URL with its path and query as in `path`: what libcurl is given */
    bool ipv6_literal;
} st_url;

/* Returns 0, ST_EINVAL (with a short reason in *why when why is not NULL: a static string) or
 * ST_ENOMEM. On error u is left zeroed. */
int st_url_parse(const char *url, st_url *u, const char **why);
void st_url_fini(st_url *u);

/* True when a and b share scheme, host and port. */
bool st_url_same_origin(const st_url *a, const st_url *b);

#endif
