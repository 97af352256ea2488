#include "store.h"
#include "error.h"
#include "log.h"
#include "result_item.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int st_sink_store_records(st_sink_store *s, st_sink_record *recs, size_t n, st_aws_error *err)
{
    st_aws_error local;
    if (!err) {
        err = &local;
    }
    memset(err, 0, sizeof(*err));
    if (n == 0) {
        return 0;
    }
    const st_aws_sys *sys = s->sys ? s->sys : &st_aws_sys_real;
    int64_t ttl = sys->now_s(sys->ctx) + (int64_t)s->ttl_days * 86400;
    int rc = 0;
    cJSON **items = calloc(n, sizeof(*items));
    char(*ids)[ST_RESULT_ID_MAX + 1] = calloc(n, sizeof(*ids));
    size_t *item_of = calloc(n, sizeof(*item_of)); /* record -> index in items */
    int *written = calloc(n, sizeof(*written));
    size_t n_items = 0;
    if (!items || !ids || !item_of || !written) {
        rc = ST_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        st_sink_record *r = &recs[i];
        st_result_msg m;
        char why[512];
        r->outcome = ST_SINK_PENDING;
        int drc = st_result_decode(r->body, r->body ? strlen(r->body) : 0, &m, why, sizeof(why));
        if (drc == ST_ENOMEM) {
            rc = drc;
            goto out;
        }
        if (drc) {
            r->outcome = ST_SINK_INVALID;
            s->invalid++;
            char seen[48] = "";
            if (r->receive_count > 0) {
                snprintf(seen, sizeof(seen), ", received %ld time(s)", r->receive_count);
            }
            st_error("message %s%s is not a stampede result (%s); not deleted, so the queue's "
                     "redrive policy moves it to the dead-letter queue",
                     r->message_id ? r->message_id : "?", seen, why);
            continue;
        }
        char id[ST_RESULT_ID_MAX + 1];
        st_result_id(m.kind, m.run_id, m.second, id, sizeof(id));
        size_t j = 0;
        while (j < n_items && strcmp(ids[j], id) != 0) {
            j++;
        }
        if (j < n_items) {
            /* The same result twice in one batch: the later copy replaces the earlier item. */
            cJSON_Delete(items[j]);
            items[j] = NULL;
        } else {
            snprintf(ids[j], sizeof(ids[j]), "%s", id);
            n_items++;
        }
        int brc = st_result_item_build(&m, ttl, &items[j]);
        st_result_msg_fini(&m);
        if (brc) {
            rc = brc;
            goto out;
        }
        item_of[i] = j;
    }
    if (n_items > 0) {
        rc = st_ddb_write(&s->ddb, items, n_items, written, err);
    }
    for (size_t i = 0; i < n; i++) {
        if (recs[i].outcome == ST_SINK_INVALID) {
            continue;
        }
        if (written[item_of[i]]) {
            recs[i].outcome = ST_SINK_WRITTEN;
            s->written++;
        } else {
            recs[i].outcome = ST_SINK_FAILED;
            s->failed++;
        }
    }
out:
    if (rc) {
        for (size_t i = 0; i < n; i++) {
            if (recs[i].outcome == ST_SINK_PENDING) {
                recs[i].outcome = ST_SINK_FAILED;
            }
        }
    }
    for (size_t i = 0; items && i < n_items; i++) {
        cJSON_Delete(items[i]);
    }
    free(items);
    free(ids);
    free(item_of);
    free(written);
    return rc;
}
