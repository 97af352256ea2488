#include "stored_run.h"
#include "ddb.h"
#include "error.h"
#include "result_item.h"
#include "result_msg.h"

#include <string.h>

typedef struct found {
    cJSON *summary;   /* the stored summary, detached from its message */
    size_t seconds;   /* second items seen */
    size_t unreadable; /* items that do not follow the schema */
    char why[256];    /* the first of them */
} found;

static int take_item(void *ctx, const cJSON *item)
{
    found *f = ctx;
    st_result_msg m;
    int64_t ttl = 0;
    char err[256];
    int rc = st_result_item_parse(item, &m, &ttl, err, sizeof(err));
    if (rc == ST_ENOMEM) {
        return rc;
    }
    if (rc) {
        if (f->unreadable++ == 0) {
            snprintf(f->why, sizeof(f->why), "%s", err);
        }
        return 0;
    }
    if (m.kind == ST_RESULT_SUMMARY) {
        cJSON_Delete(f->summary);
        f->summary = m.summary;
        m.summary = NULL;
    } else {
        f->seconds++;
    }
    st_result_msg_fini(&m);
    return 0;
}

int st_stored_summary(const st_aws_config *aws, const char *table, const char *run_id,
                      cJSON **summary, char *err, size_t err_len)
{
    st_aws_client *client = NULL;
    st_aws_error aerr;
    memset(&aerr, 0, sizeof(aerr));
    found f;
    memset(&f, 0, sizeof(f));
    int rc = st_aws_client_new(&client, aws, &aerr);
    if (!rc) {
        rc = st_ddb_query(client, table, "testId", run_id, take_item, &f, &aerr);
    }
    st_aws_client_free(client);
    if (rc) {
        cJSON_Delete(f.summary);
        if (rc == ST_ENOMEM) {
            return rc;
        }
        return st_errf(err, err_len, rc, "table %s: %s", table,
                       aerr.message[0] ? aerr.message : st_strerror(rc));
    }
    if (!f.summary) {
        if (f.unreadable) {
            return st_errf(err, err_len, ST_EINVAL,
                           "table %s: %zu item(s) of run %s do not follow the schema: %s", table,
                           f.unreadable, run_id, f.why);
        }
        return st_errf(err, err_len, ST_ENOTFOUND, "table %s holds no summary of run %s (%zu of "
                       "its seconds are there)", table, run_id, f.seconds);
    }
    *summary = f.summary;
    return 0;
}
