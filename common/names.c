#include "names.h"
#include "error.h"
#include "stats.h"

#include <stdlib.h>
#include <string.h>

int st_names_init(st_names *out, const st_plan *p)
{
    st_names n = {0};
    size_t nr = p->n_requests;
    n.of_request = malloc((nr ? nr : 1) * sizeof(*n.of_request));
    n.name = malloc((nr ? nr : 1) * sizeof(*n.name));
    if (!n.of_request || !n.name) {
        st_names_fini(&n);
        return ST_ENOMEM;
    }
    n.n_requests = nr;
    /* Plans hold a few requests (ST_PLAN_MAX_REQUESTS at most): a quadratic search is enough. */
    for (size_t i = 0; i < nr; i++) {
        const char *nm = p->requests[i].name ? p->requests[i].name : "";
        long at = st_names_find(&n, nm);
        if (at < 0) {
            if (n.n >= ST_STATS_MAX_NAMES) {
                st_names_fini(&n);
                return ST_EINVAL;
            }
            at = (long)n.n;
            n.name[n.n++] = nm;
        }
        n.of_request[i] = (uint32_t)at;
    }
    *out = n;
    return 0;
}

void st_names_fini(st_names *n)
{
    free(n->of_request);
    free(n->name);
    memset(n, 0, sizeof(*n));
}

size_t st_names_kept(const st_names *n)
{
    return n->n > 1 && n->n <= ST_NAMES_KEPT_MAX ? n->n : 0;
}

long st_names_find(const st_names *n, const char *name)
{
    for (size_t i = 0; i < n->n; i++) {
        if (strcmp(n->name[i], name) == 0) {
            return (long)i;
        }
    }
    return -1;
}

size_t st_names_kept_of(const st_plan *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_requests; i++) {
        size_t j = 0;
        while (j < i && strcmp(p->requests[j].name ? p->requests[j].name : "",
                               p->requests[i].name ? p->requests[i].name : "") != 0) {
            j++;
        }
        n += j == i;
    }
    return n > 1 && n <= ST_NAMES_KEPT_MAX ? n : 0;
}
