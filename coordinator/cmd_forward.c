/* stampede forward: replays a spool directory of result messages to SQS. */
#include "aws.h"
#include "cmd_flags.h"
#include "commands.h"
#include "exit_code.h"
#include "forward.h"
#include "log.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *to)
{
    fprintf(to, "usage: stampede forward --spool DIR --sqs-queue-url URL [--endpoint-url URL] "
                "[--region R]\n\n"
                "Sends the result messages that a run left in its spool directory (because SQS\n"
                "was unreachable) to the queue, and removes each one SQS accepted.\n"
                "Exit codes: 0 all sent, 1 failure, 2 bad flags, 3 credentials, 4 some remain\n"
                "in the spool, 5 no such spool directory.\n");
}

int st_cmd_forward(int argc, char **argv)
{
    static const struct option opts[] = {
        {"spool", required_argument, NULL, 's'},
        {"sqs-queue-url", required_argument, NULL, 'q'},
        ST_AWS_FLAGS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *spool = NULL, *queue = NULL;
    st_aws_config aws;
    st_aws_config_init(&aws);
    aws.retry.max_attempts = 4;
    aws.retry.base_delay_ms = 100;
    aws.retry.max_delay_ms = 2000;
    const st_cmd_flag flags[] = {{'s', &spool, NULL}, {'q', &queue, NULL}};
    int done = st_cmd_flags(argc, argv, opts, flags, 2, &aws, ST_AWS_SQS, usage);
    if (done >= 0) {
        return done;
    }
    if (optind != argc || !spool || !queue) {
        if (optind != argc) {
            st_error("forward: unexpected argument \"%s\"", argv[optind]);
        } else {
            st_error("forward: --spool and --sqs-queue-url are required");
        }
        usage(stderr);
        return ST_EXIT_USAGE;
    }
    st_forward_report rep;
    char err[ST_AWS_MSG_LEN + 256] = "";
    int rc = st_forward_spool(spool, queue, &aws, &rep, err, sizeof(err));
    if (rc == 0 || rc == ST_EAGAIN) {
        printf("sent %llu result message(s) from %s; %llu remain in the spool\n",
               (unsigned long long)rep.sent, spool, (unsigned long long)rep.spooled);
    }
    if (rc) {
        st_error("forward: %s", err[0] ? err : st_strerror(rc));
    }
    return st_exit_code(rc);
}
