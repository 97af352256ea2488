#include "engine.h"
#include "error.h"

#include <stdio.h>
#include <string.h>

int st_engine_choose(const char *name, const st_plan *plan, const st_engine_ops **out, char *err,
                     size_t err_len)
{
    char why[256] = "";
    if (!name || strcmp(name, "auto") == 0) {
        *out = st_engine_fast_applies(plan, why, sizeof(why)) ? &st_engine_fast : &st_engine_curl;
        return 0;
    }
    if (strcmp(name, "curl") == 0) {
        *out = &st_engine_curl;
        return 0;
    }
    if (strcmp(name, "fast") == 0) {
        if (!st_engine_fast_applies(plan, why, sizeof(why))) {
            snprintf(err, err_len, "--engine fast: cannot send this plan (%s); use --engine curl",
                     why);
            return ST_EINVAL;
        }
        *out = &st_engine_fast;
        return 0;
    }
    snprintf(err, err_len, "--engine: \"%s\" is not an engine (auto, curl or fast)", name);
    return ST_EINVAL;
}
