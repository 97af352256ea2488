/*
 * st-fake-run: stands in for the coordinator's run in the AWS integration tests until `stampede
 * run` ships results itself. It builds a deterministic run (N seconds of merged stats with latency
 * histograms, then a summary whose percentiles come from the merged histogram), encodes every
 * message with results/result_msg.h and hands them to the forwarder exactly as the coordinator's
 * stats thread will: one st_forwarder_submit per finalised second, the summary last, then
 * st_forwarder_flush_and_close. With --spool-only it writes the messages into a spool directory
 * instead, as a run whose SQS never answered would have left them.
 *
 * Prints one JSON line: what it submitted and what the forwarder reported.
 */
#include "aws.h"
#include "clock.h"
#include "exit_code.h"
#include "forward.h"
#include "log.h"
#include "result_msg.h"
#include "summary.h"

#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void fill_second(st_stats *s, uint32_t k, uint32_t rps)
{
    st_stats_reset(s);
    s->second = k;
    s->c.sent = rps;
    s->c.http_5xx = k % 3 == 0 ? 1 : 0;
    s->c.err_timeout = k % 5 == 4 ? 1 : 0;
    s->c.ok = rps - s->c.http_5xx - s->c.err_timeout;
    s->c.bytes_in = 512ULL * rps;
    s->c.bytes_out = 128ULL * rps;
    s->c.late = k % 4;
    s->c.inflight = k % 7;
    for (uint32_t j = 0; j < rps; j++) {
        uint64_t v = 800 + ((uint64_t)k * 7919 + (uint64_t)j * 104729) % 60000;
        if (j == 0 && k % 10 == 9) {
            v = 1500000 + k; /* one slow outlier now and then */
        }
        st_hist_record(s->lat, v);
        st_hist_record(s->lat_raw, v - v / 10);
    }
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Hands one encoded message (freed here) to the forwarder, or without one (--spool-only) writes it
 * into the spool directory. */
static int hand_over(st_forwarder *f, const char *spool, const char *id, char *json)
{
    int rc = f ? st_forwarder_submit(f, id, json)
               : st_forward_spool_write(spool, id, json, strlen(json));
    free(json);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"run-id", required_argument, NULL, 'i'},
        {"seconds", required_argument, NULL, 'n'},
        {"rps", required_argument, NULL, 'r'},
        {"interval-ms", required_argument, NULL, 'v'},
        {"sqs-queue-url", required_argument, NULL, 'q'},
        {"spool", required_argument, NULL, 's'},
        {"spool-only", no_argument, NULL, 'o'},
        ST_AWS_FLAGS,
        {"flush-timeout-ms", required_argument, NULL, 'f'},
        {"retry-interval-ms", required_argument, NULL, 't'},
        {"agents", required_argument, NULL, 'a'},
        {NULL, 0, NULL, 0},
    };
    const char *run_id = "run-1", *queue = NULL, *spool = NULL;
    unsigned seconds = 10, rps = 50, interval_ms = 0, flush_ms = 10000, agents = 2;
    int spool_only = 0;
    st_forwarder_config cfg;
    st_forwarder_config_init(&cfg);
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (st_aws_config_flag(&cfg.aws, c, optarg, ST_AWS_N_SERVICES)) {
            continue;
        }
        switch (c) {
        case 'i':
            run_id = optarg;
            break;
        case 'n':
            seconds = (unsigned)atoi(optarg);
            break;
        case 'r':
            rps = (unsigned)atoi(optarg);
            break;
        case 'v':
            interval_ms = (unsigned)atoi(optarg);
            break;
        case 'q':
            queue = optarg;
            break;
        case 's':
            spool = optarg;
            break;
        case 'o':
            spool_only = 1;
            break;
        case 'f':
            flush_ms = (unsigned)atoi(optarg);
            break;
        case 't':
            cfg.retry_interval_ms = (unsigned)atoi(optarg);
            break;
        case 'a':
            agents = (unsigned)atoi(optarg);
            break;
        default:
            return ST_EXIT_USAGE;
        }
    }
    if (!spool || (!spool_only && !queue) || rps < 2) {
        fprintf(stderr, "st-fake-run: --spool and --sqs-queue-url (or --spool-only) needed\n");
        return ST_EXIT_USAGE;
    }
    st_log_init("st-fake-run", ST_LOG_INFO);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = 0;
    st_forwarder *f = NULL;
    st_stats sec, total;
    memset(&sec, 0, sizeof(sec));
    memset(&total, 0, sizeof(total));
    char err[1024] = "";
    if (st_stats_init(&sec) || st_stats_init(&total)) {
        rc = ST_ENOMEM;
        goto out;
    }
    if (!spool_only) {
        cfg.queue_url = queue;
        cfg.spool_dir = spool;
        if ((rc = st_forwarder_new(&f, &cfg, err, sizeof(err))) != 0) {
            fprintf(stderr, "st-fake-run: %s\n", err);
            goto out;
        }
    }
    unsigned submitted = 0;
    for (uint32_t k = 0; k < seconds; k++) {
        fill_second(&sec, k, rps);
        st_stats_merge(&total, &sec);
        char *json = NULL;
        char id[ST_RESULT_ID_MAX + 1];
        if ((rc = st_result_encode_second(run_id, &sec, rps, (double)st_counts_done(&sec.c), agents,
                                          &json, id)) != 0) {
            goto out;
        }
        if ((rc = hand_over(f, spool, id, json)) != 0) {
            goto out;
        }
        submitted++;
        if (interval_ms) {
            sleep_ms(interval_ms);
        }
    }
    /* The summary object as `stampede run --summary` writes it. */
    st_summary sm = {.total = &total, .duration_s = seconds, .target_requests = (double)rps * seconds};
    cJSON *summary = st_summary_json(&sm);
    if (summary) {
        cJSON_AddStringToObject(summary, "name", "fake run");
    }
    char *json = NULL;
    char id[ST_RESULT_ID_MAX + 1];
    rc = summary ? st_result_encode_summary(run_id, summary, &json, id) : ST_ENOMEM;
    cJSON_Delete(summary);
    if (rc) {
        goto out;
    }
    if ((rc = hand_over(f, spool, id, json)) != 0) {
        goto out;
    }
    submitted++;
    st_forward_report rep = {0};
    if (f) {
        rc = st_forwarder_flush_and_close(f, flush_ms, &rep);
    }
    printf("{\"submitted\": %u, \"sent\": %llu, \"spooled\": %llu, \"lost\": %llu, "
           "\"total_sent\": %llu, \"total_ok\": %llu, \"p99_us\": %llu, \"rc\": %d}\n",
           submitted, (unsigned long long)rep.sent, (unsigned long long)rep.spooled,
           (unsigned long long)rep.lost, (unsigned long long)total.c.sent,
           (unsigned long long)total.c.ok, (unsigned long long)st_hist_percentile(total.lat, 99),
           rc);
out:
    if (rc && rc != ST_EAGAIN) {
        fprintf(stderr, "st-fake-run: %s\n", st_strerror(rc));
    }
    st_forwarder_free(f);
    st_stats_fini(&sec);
    st_stats_fini(&total);
    curl_global_cleanup();
    return st_exit_code(rc);
}
