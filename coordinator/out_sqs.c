/* The sqs output (output.h): result messages through the forwarder. */
#include "aws_creds.h"
#include "error.h"
#include "forward.h"
#include "log.h"
#include "output.h"
#include "result_msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sqs_out {
    st_forwarder *f;
    char run_id[ST_RESULT_RUN_ID_MAX + 1];
    uint32_t flush_timeout_ms;
    char *spool_dir;
    st_forward_report *delivery;
    uint64_t submitted; /* messages the forwarder took */
    uint64_t rejected;  /* messages that could not be built or that the forwarder would not take:
                         * lost, since they reach neither SQS nor the spool */
} sqs_out;

static void submit(sqs_out *o, int rc, char *json, const char *id)
{
    if (rc == 0) {
        rc = st_forwarder_submit(o->f, id, json);
    }
    if (rc) {
        o->rejected++;
        st_error("sqs: result %s is lost: not queued: %s", id[0] ? id : "(unnamed)",
                 st_strerror(rc));
    } else {
        o->submitted++;
    }
    free(json);
}

static int sqs_second(void *state, const st_coord_second *sec)
{
    sqs_out *o = state;
    char *json = NULL, id[ST_RESULT_ID_MAX + 1] = "";
    uint64_t done = st_counts_done(&sec->stats->c);
    /* A plan with several request names ships its seconds with their per-name parts. */
    size_t n_names = sec->names ? st_names_kept(sec->names) : 0;
    int rc = st_result_encode_second_by_name(o->run_id, sec->stats,
                                             n_names ? sec->names->name : NULL, n_names,
                                             sec->target_rps, (double)done,
                                             (uint32_t)sec->agents, &json, id);
    submit(o, rc, json, id);
    return 0;
}

static int sqs_summary(void *state, const st_report *report)
{
    sqs_out *o = state;
    char *json = NULL, id[ST_RESULT_ID_MAX + 1] = "";
    /* The message carries the summary object exactly as --summary writes it. */
    cJSON *summary = st_report_json(report);
    int rc = summary ? st_result_encode_summary(o->run_id, summary, &json, id) : ST_ENOMEM;
    cJSON_Delete(summary);
    submit(o, rc, json, id);
    return 0;
}

static int sqs_close(void *state)
{
    sqs_out *o = state;
    st_forward_report rep = {0};
    int rc = st_forwarder_flush_and_close(o->f, o->flush_timeout_ms, &rep);
    /* Three outcomes, never folded into one another: a lost message is not in the spool, and
     * `stampede forward` cannot bring it back. */
    rep.lost += o->rejected;
    if (rep.lost == 0 && rc == 0) {
        st_info("sqs: %llu result messages delivered", (unsigned long long)rep.sent);
    } else if (rep.lost == 0 && rc == ST_EAGAIN) {
        st_warn("sqs: %llu result messages delivered, %llu wait in the spool: deliver them with "
                "stampede forward",
                (unsigned long long)rep.sent, (unsigned long long)rep.spooled);
    } else {
        st_error("sqs: %llu of the run's %llu result messages are lost (neither delivered nor "
                 "spooled); %llu delivered, %llu wait in the spool %s",
                 (unsigned long long)rep.lost, (unsigned long long)(o->submitted + o->rejected),
                 (unsigned long long)rep.sent, (unsigned long long)rep.spooled, o->spool_dir);
        rc = ST_EIO;
    }
    if (o->delivery) {
        *o->delivery = rep;
    }
    st_forwarder_free(o->f);
    free(o->spool_dir);
    free(o);
    return rc;
}

static const st_output_ops sqs_ops = {"sqs", sqs_second, sqs_summary, sqs_close};

int st_output_sqs(st_output *out, const char *run_id, const char *queue_url, const char *spool_dir,
                  const st_aws_config *aws, uint32_t flush_timeout_ms, st_forward_report *delivery,
                  char *err, size_t err_len)
{
    if (!st_result_run_id_valid(run_id)) {
        return st_errf(err, err_len, ST_EINVAL, "run id \"%s\" cannot name result messages",
                       run_id);
    }
    /* Credentials are looked for now: a run whose results cannot go anywhere should not start. */
    st_aws_creds_provider *prov = NULL;
    const st_aws_creds *creds = NULL;
    char why[512] = "";
    int rc = st_aws_creds_provider_new(&prov, NULL);
    if (rc == 0) {
        rc = st_aws_creds_get(prov, &creds, why, sizeof(why));
    }
    st_aws_creds_provider_free(prov);
    if (rc) {
        snprintf(err, err_len, "--sqs-queue-url: %s", why[0] ? why : st_strerror(rc));
        return rc == ST_ENOMEM ? ST_ENOMEM : ST_EAUTH;
    }
    sqs_out *o = calloc(1, sizeof(*o));
    if (!o) {
        return ST_ENOMEM;
    }
    snprintf(o->run_id, sizeof(o->run_id), "%s", run_id);
    o->flush_timeout_ms = flush_timeout_ms;
    o->delivery = delivery;
    if (!(o->spool_dir = strdup(spool_dir))) {
        free(o);
        return ST_ENOMEM;
    }
    st_forwarder_config cfg;
    st_forwarder_config_init(&cfg);
    cfg.queue_url = queue_url;
    cfg.spool_dir = spool_dir;
    cfg.aws = *aws;
    cfg.aws.sqs_queue_url = queue_url;
    if ((rc = st_forwarder_new(&o->f, &cfg, err, err_len))) {
        free(o->spool_dir);
        free(o);
        return rc;
    }
    out->ops = &sqs_ops;
    out->state = o;
    return 0;
}
