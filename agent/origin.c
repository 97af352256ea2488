/*
 * origin.c - see origin.h.
 */
#include "origin.h"

#include "error.h"

#include <stdio.h>
#include <string.h>

int st_origin_check_cfg(const char *engine, const void *out, const struct ev_loop *loop,
                        const st_engine_cfg *cfg, st_engine_done_fn done, char *err,
                        size_t err_len)
{
    if (!out || !loop || !cfg || !done || !cfg->requests || cfg->n_requests == 0 ||
        cfg->connections < 1 || cfg->timeout_ms < 1) {
        return st_errf(err, err_len, ST_EINVAL, "%s engine: invalid configuration", engine);
    }
    return 0;
}

double st_origin_sweep_interval(int timeout_ms)
{
    double iv = timeout_ms / 20000.0;
    return iv < 0.001 ? 0.001 : iv > 0.1 ? 0.1 : iv;
}

int st_origin_setup(const char *engine, const st_engine_cfg *cfg, const char *alpn,
                    st_origin_build_fn build, void *engine_arg, st_tcp_addrs *addrs,
                    st_conn_tls **tls, char *err, size_t err_len)
{
    int rc = 0;
    st_url first = {0}, u = {0};
    for (size_t i = 0; i < cfg->n_requests && rc == 0; i++) {
        const char *why = NULL;
        st_url *cur = i == 0 ? &first : &u;
        rc = st_url_parse(cfg->requests[i].url, cur, &why);
        if (rc != 0) {
            if (rc == ST_EINVAL) {
                snprintf(err, err_len, "requests[%zu].url: %s", i, why ? why : "invalid");
            }
        } else if (strcmp(cur->scheme, "http") != 0 && strcmp(cur->scheme, "https") != 0) {
            rc = st_errf(err, err_len, ST_EINVAL,
                         "requests[%zu].url: the %s engine sends http:// and https:// only", i,
                         engine);
        } else if (i > 0 && !st_url_same_origin(&first, cur)) {
            rc = st_errf(err, err_len, ST_EINVAL,
                         "requests[%zu].url: the %s engine needs one origin", i, engine);
        } else {
            rc = build(engine_arg, i, &cfg->requests[i], cur, err, err_len);
        }
        if (i > 0) {
            st_url_fini(&u);
        }
    }
    if (rc == 0) {
        rc = st_tcp_resolve(addrs, first.host, first.port, err, err_len);
    }
    if (rc == 0 && strcmp(first.scheme, "https") == 0) {
        st_conn_tls_cfg tc = {.host = first.host,
                              .insecure = cfg->insecure != 0,
                              .cacert = cfg->cacert,
                              .cacert_pem = cfg->cacert_pem,
                              .cacert_pem_len = cfg->cacert_pem_len,
                              .alpn = alpn};
        rc = st_conn_tls_new(tls, &tc, err, err_len);
    }
    st_url_fini(&u);
    st_url_fini(&first);
    return rc;
}

bool st_origin_method_ok(const char *m)
{
    if (!m || !*m) {
        return false;
    }
    for (const char *p = m; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == ':') {
            return false;
        }
    }
    return true;
}

size_t st_origin_header_name_len(const char *line)
{
    const char *colon = strchr(line, ':');
    if (!colon || colon == line) {
        return 0;
    }
    for (const char *p = line; p < colon; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            return 0;
        }
    }
    if (strpbrk(colon, "\r\n")) {
        return 0;
    }
    return (size_t)(colon - line);
}
