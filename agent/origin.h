/*
 * origin.h - what the fast and h2 engines (engine_fast.c, engine_h2.c) do alike when they are
 * created: check the configuration, walk the plan's requests (each URL http:// or https://, all on
 * the origin of the first), hand each to the engine's own request builder, resolve the origin once
 * (tcp_open.h) and, for https://, make its TLS context (conn_io.h) with the engine's ALPN list.
 * Also the two request checks both builders make: the method is an HTTP token and a header line
 * is "Name: value".
 *
 * Errors: each call returns 0 or an ST_E* code with a message in err that names the request
 * (requests[i]) and the engine. Nothing here keeps state between calls.
 *
 * Threading: any thread; the results belong to the caller's engine instance.
 */
#ifndef ST_ORIGIN_H
#define ST_ORIGIN_H

#include "conn_io.h"
#include "engine.h"
#include "tcp_open.h"
#include "url.h"

#include <stdbool.h>
#include <stddef.h>

/* ST_EINVAL with "<engine> engine: invalid configuration" in err unless every argument create
 * needs is there (a loop, a configuration with requests, connections >= 1, timeout_ms >= 1, a
 * done callback, somewhere to write the engine). */
int st_origin_check_cfg(const char *engine, const void *out, const struct ev_loop *loop,
                        const st_engine_cfg *cfg, st_engine_done_fn done, char *err,
                        size_t err_len);

/* The engine's timeout sweep interval for cfg->timeout_ms, in seconds: a twentieth of the timeout,
 * between 1 ms and 100 ms. */
double st_origin_sweep_interval(int timeout_ms);

/* Builds request i, whose URL parsed as url, into the engine's own form. */
typedef int (*st_origin_build_fn)(void *engine, size_t i, const st_request *req, const st_url *url,
                                  char *err, size_t err_len);

/* Walks cfg's requests: each URL parsed, http:// or https://, on the first one's origin, then
 * built by build(engine, ...). Then resolves that origin into *addrs and, when it is https://,
 * makes *tls (ALPN alpn, verification as cfg asks; NULL for http://). Returns 0, ST_EINVAL (a URL
 * that does not parse, another scheme or origin, a host that does not resolve), whatever build
 * returns, or what st_conn_tls_new returns; on an error *tls may be set, and the caller frees it
 * with its engine. */
int st_origin_setup(const char *engine, const st_engine_cfg *cfg, const char *alpn,
                    st_origin_build_fn build, void *engine_arg, st_tcp_addrs *addrs,
                    st_conn_tls **tls, char *err, size_t err_len);

/* Whether m is a non-empty HTTP token (no control bytes, blanks or ':'). */
bool st_origin_method_ok(const char *m);

/* The length of the name of the header line "Name: value", or 0 when it is not one (no colon,
 * an empty name, a name with blanks or control bytes, CR or LF anywhere after the name). */
size_t st_origin_header_name_len(const char *line);

#endif
