#include "engine.h"
#include "error.h"

#include <string.h>

/* In order of preference for --engine auto: the first that applies wins. */
static const st_engine_ops *const engines[] = {&st_engine_fast, &st_engine_h2, &st_engine_curl};
#define N_ENGINES (sizeof(engines) / sizeof(engines[0]))

static int choose(const char *name, const st_plan *plan, const st_engine_ops **out, char *err,
                  size_t err_len);

int st_engine_choose(const char *name, const st_plan *plan, const st_engine_ops **out, char *err,
                     size_t err_len)
{
    const st_engine_ops *e = NULL;
    int rc = choose(name, plan, &e, err, err_len);
    if (rc != 0) {
        return rc;
    }
    /* Streams are HTTP/2's: another engine would quietly send one request per connection. */
    if (plan && plan->streams > 1 && e != &st_engine_h2) {
        return st_errf(err, err_len, ST_EINVAL,
                       "--streams %d: only the h2 engine multiplexes streams (an --http2 plan of "
                       "one origin, no proxy); the %s engine would send one request per "
                       "connection",
                       plan->streams, e->name);
    }
    *out = e;
    return 0;
}

static int choose(const char *name, const st_plan *plan, const st_engine_ops **out, char *err,
                  size_t err_len)
{
    char why[256] = "";
    bool automatic = !name || strcmp(name, "auto") == 0;
    for (size_t i = 0; i < N_ENGINES; i++) {
        const st_engine_ops *e = engines[i];
        if (!automatic && strcmp(name, e->name) != 0) {
            continue;
        }
        if (e->applies(plan, why, sizeof(why))) {
            *out = e;
            return 0;
        }
        if (!automatic) {
            return st_errf(err, err_len, ST_EINVAL,
                           "--engine %s: cannot send this plan (%s); use --engine curl", e->name,
                           why);
        }
    }
    if (automatic) {
        /* Unreachable while curl applies to everything; kept so that auto always answers. */
        *out = &st_engine_curl;
        return 0;
    }
    return st_errf(err, err_len, ST_EINVAL,
                   "--engine: \"%s\" is not an engine (auto, curl, fast or h2)", name);
}
