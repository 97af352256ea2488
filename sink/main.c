/* stampede-sink: moves result messages from SQS into DynamoDB, as a service or a Lambda runtime. */
#include "aws.h"
#include "cli.h"
#include "error.h"
#include "exit_code.h"
#include "lambda.h"
#include "log.h"
#include "sqs.h"
#include "sqs_event.h"
#include "store.h"

#include <curl/curl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_int g_stop;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&g_stop, 1);
}

static void usage(FILE *to)
{
    fprintf(to,
            "usage: stampede-sink --queue-url URL --table NAME [--endpoint-url URL] [--region R]\n"
            "                     [--ttl-days 90] [--exit-when-empty] [--wait-seconds 20]\n\n"
            "Long-polls the SQS queue that `stampede run --sqs-queue-url` feeds and writes every\n"
            "result message into the DynamoDB table (key testId + sk, ttl attribute), deleting\n"
            "each message once its item is written. Invalid messages are logged and left for\n"
            "the queue's dead-letter queue. With AWS_LAMBDA_RUNTIME_API set it runs as a Lambda\n"
            "custom runtime for SQS events instead (--queue-url is then not needed; --table may\n"
            "come from STAMPEDE_TABLE). SIGTERM: finish the batch in hand, then exit.\n"
            "--endpoint-url is DynamoDB's; SQS is reached at the queue URL's host unless\n"
            "AWS_ENDPOINT_URL_SQS (or AWS_ENDPOINT_URL) says otherwise.\n\n"
            "Exit codes: 0 ok, 1 failure, 2 bad flags, 3 credentials, 5 no such queue or table.\n");
}

typedef struct sink_opts {
    const char *queue_url;
    const char *table;
    int ttl_days;
    int exit_when_empty;
    int wait_s;
    st_aws_config aws;
} sink_opts;

static int parse_flags(int argc, char **argv, sink_opts *o)
{
    static const struct option opts[] = {
        {"queue-url", required_argument, NULL, 'q'},
        {"table", required_argument, NULL, 't'},
        ST_AWS_FLAGS,
        {"ttl-days", required_argument, NULL, 'd'},
        {"exit-when-empty", no_argument, NULL, 'x'},
        {"wait-seconds", required_argument, NULL, 'w'},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    st_log_level level;
    char err[256];
    while ((c = st_aws_getopt(argc, argv, opts, &o->aws, ST_AWS_DYNAMODB)) != -1) {
        switch (c) {
        case 'q':
            o->queue_url = optarg;
            break;
        case 't':
            o->table = optarg;
            break;
        case 'x':
            o->exit_when_empty = 1;
            break;
        case 'd':
            if (st_cli_int("--ttl-days", optarg, 1, 3650, &o->ttl_days, err, sizeof(err))) {
                st_error("--ttl-days must be a whole number of days from 1 to 3650");
                return ST_EINVAL;
            }
            break;
        case 'w':
            if (st_cli_int("--wait-seconds", optarg, 0, 20, &o->wait_s, err, sizeof(err))) {
                st_error("--wait-seconds must be from 0 to 20 (SQS's long-poll limit)");
                return ST_EINVAL;
            }
            break;
        case 'l':
            if (st_cli_log_level("--log-level", optarg, &level, err, sizeof(err))) {
                st_error("%s", err);
                return ST_EINVAL;
            }
            st_log_init("stampede-sink", level);
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            return ST_EINVAL; /* getopt named the flag; main prints the usage once */
        }
    }
    if (optind != argc) {
        st_error("unexpected argument \"%s\"", argv[optind]);
        return ST_EINVAL;
    }
    return 0;
}

/* The service: receive, store, delete, until stopped (or the queue is empty). */
static int serve(const sink_opts *o, st_aws_client *recv_client, st_aws_client *write_client,
                 st_sink_store *store)
{
    int rc = 0;
    st_info("reading %s into table %s", o->queue_url, o->table);
    while (!atomic_load(&g_stop)) {
        st_sqs_msg *msgs = NULL;
        size_t n = 0;
        st_aws_error err;
        rc = st_sqs_receive(recv_client, o->queue_url, 10, o->wait_s, &msgs, &n, &err);
        if (rc == ST_ECLOSED) {
            rc = 0;
            break;
        }
        if (rc) {
            st_error("%s", err.message);
            if (rc == ST_EAUTH || rc == ST_ENOTFOUND || rc == ST_EINVAL || o->exit_when_empty) {
                break;
            }
            /* A long-running sink outlives an SQS outage: wait, then poll again. */
            for (int i = 0; i < 100 && !atomic_load(&g_stop); i++) {
                st_aws_sys_real.sleep_ms(NULL, 50);
            }
            rc = 0;
            continue;
        }
        if (n == 0) {
            if (o->exit_when_empty) {
                break;
            }
            continue;
        }
        /* From here on the batch is finished even when SIGTERM arrives. */
        st_sink_record *recs = calloc(n, sizeof(*recs));
        int *del = calloc(n, sizeof(*del));
        if (!recs || !del) {
            free(recs);
            free(del);
            st_sqs_msgs_free(msgs, n);
            rc = ST_ENOMEM;
            break;
        }
        for (size_t i = 0; i < n; i++) {
            recs[i].message_id = msgs[i].message_id;
            recs[i].body = msgs[i].body;
            recs[i].receive_count = msgs[i].receive_count;
        }
        int src = st_sink_store_records(store, recs, n, &err);
        if (src) {
            st_error("%s; those messages stay in the queue and are written when they come back",
                     err.message[0] ? err.message : st_strerror(src));
        }
        size_t n_del = 0;
        for (size_t i = 0; i < n; i++) {
            del[i] = recs[i].outcome == ST_SINK_WRITTEN;
            n_del += (size_t)del[i];
        }
        int drc = n_del ? st_sqs_delete(write_client, o->queue_url, msgs, del, n, &err) : 0;
        if (drc) {
            st_error("%s; the written messages come back and are rewritten, harmlessly",
                     err.message);
        }
        st_debug("batch: %zu message(s), %zu written and deleted", n, n_del);
        free(recs);
        free(del);
        st_sqs_msgs_free(msgs, n);
        if (src == ST_EAUTH || src == ST_ENOTFOUND || src == ST_ENOMEM) {
            rc = src;
            break;
        }
        if (drc == ST_EAUTH || drc == ST_ENOTFOUND) {
            rc = drc;
            break;
        }
    }
    return rc;
}

int main(int argc, char **argv)
{
    const char *level_name = getenv("STAMPEDE_LOG_LEVEL");
    st_log_level level = ST_LOG_INFO;
    bool bad_level = level_name && *level_name && st_log_level_parse(level_name, &level) != 0;
    st_log_init("stampede-sink", bad_level ? ST_LOG_INFO : level);

    sink_opts o;
    memset(&o, 0, sizeof(o));
    o.ttl_days = 90;
    o.wait_s = 20;
    st_aws_config_init(&o.aws);
    int prc = parse_flags(argc, argv, &o);
    if (prc == 1) {
        return ST_EXIT_OK;
    }
    const char *lambda_api = getenv("AWS_LAMBDA_RUNTIME_API");
    if (lambda_api && !*lambda_api) {
        lambda_api = NULL;
    }
    if (!o.table && lambda_api) {
        o.table = getenv("STAMPEDE_TABLE");
    }
    const char *missing = !o.table                        ? "--table"
                          : (!o.queue_url && !lambda_api) ? "--queue-url"
                                                          : NULL;
    if (prc == 0 && missing) {
        st_error("%s is required", missing);
        prc = ST_EINVAL;
    }
    if (prc == 0 && bad_level) {
        st_error("STAMPEDE_LOG_LEVEL is \"%.20s\": it must be debug, info, warn or error",
                 level_name);
        prc = ST_EINVAL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        st_error("cannot initialise libcurl");
        return ST_EXIT_FAILURE;
    }
    if (prc) {
        if (lambda_api) {
            st_lambda_init_error(lambda_api, "Sink.ConfigurationError",
                                 "bad configuration: see the function's log");
        } else {
            usage(stderr);
        }
        curl_global_cleanup();
        return ST_EXIT_USAGE;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    st_aws_client *recv_client = NULL, *write_client = NULL;
    st_aws_error err;
    int rc;
    o.aws.sqs_queue_url = o.queue_url;
    /* Long polls take up to 20 s: give requests room beyond that. */
    o.aws.timeout_ms = (uint32_t)(o.wait_s + 15) * 1000;
    if ((rc = st_aws_client_new(&recv_client, &o.aws, &err)) != 0 ||
        (rc = st_aws_client_new(&write_client, &o.aws, &err)) != 0) {
        st_error("%s", err.message);
        if (lambda_api) {
            st_lambda_init_error(lambda_api, "Sink.ConfigurationError", err.message);
        }
        goto out;
    }
    /* Only the receive is cancelled by SIGTERM; writes and deletes of a batch always finish. */
    st_aws_client_set_cancel(recv_client, &g_stop);

    st_sink_store store;
    memset(&store, 0, sizeof(store));
    store.ttl_days = o.ttl_days;
    store.ddb.client = write_client;
    store.ddb.table = o.table;
    store.ddb.rounds = 8;
    store.ddb.backoff.max_attempts = 8;
    store.ddb.backoff.base_delay_ms = 50;
    store.ddb.backoff.max_delay_ms = 2000;

    if (lambda_api) {
        st_info("running as a Lambda runtime (%s), writing to table %s", lambda_api, o.table);
        rc = st_lambda_run(lambda_api, st_sink_lambda_handle, &store, &g_stop);
    } else {
        rc = serve(&o, recv_client, write_client, &store);
    }
    st_info("%llu message(s) written, %llu invalid left for the dead-letter queue, %llu not "
            "written (left in the queue)",
            (unsigned long long)store.written, (unsigned long long)store.invalid,
            (unsigned long long)store.failed);
out:
    st_aws_client_free(recv_client);
    st_aws_client_free(write_client);
    curl_global_cleanup();
    return st_exit_code(rc);
}
