/*
 * stampede ecs list|stop --cluster NAME [--run RUN_ID]: the agents' tasks that stampede run
 * started on a cluster (startedBy "stampede-RUN_ID", tag stampede:run), found and stopped, for
 * what a coordinator that died could not stop itself.
 */
#include "commands.h"
#include "ecs.h"
#include "error.h"
#include "exit_code.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STARTED_BY_PREFIX "stampede-"

static void usage(FILE *f)
{
    fprintf(f, "usage: stampede ecs list|stop --cluster NAME [--run RUN_ID] [--region R]\n"
               "                              [--endpoint-url URL]\n"
               "\n"
               "Lists (list) or stops (stop) the running ECS tasks stampede run started on the\n"
               "cluster: those of one run with --run, else those of every run.\n"
               "\n"
               "Exit codes: 0 done, 1 ECS failed, 2 bad flags, 3 credentials or access refused,\n"
               "5 no such cluster.\n");
}

static int exit_of(int rc, const st_aws_error *aerr)
{
    fprintf(stderr, "stampede ecs: %s\n", aerr->message);
    switch (st_ecs_error_kind(rc, aerr)) {
    case ST_ECS_ACCESS_DENIED:
    case ST_ECS_AUTH:
        return ST_EXIT_AUTH;
    case ST_ECS_NOT_FOUND:
        return ST_EXIT_NOTFOUND;
    case ST_ECS_INVALID:
        return ST_EXIT_USAGE;
    default:
        return ST_EXIT_FAILURE;
    }
}

static const char *tag_run(const st_ecs_task *t)
{
    for (size_t i = 0; i < t->n_tags; i++) {
        if (t->tags[i].key && strcmp(t->tags[i].key, "stampede:run") == 0) {
            return t->tags[i].value;
        }
    }
    return NULL;
}

/* Whether t is one of stampede's tasks (of run, when run is not NULL). */
static int ours(const st_ecs_task *t, const char *run)
{
    const char *tagged = tag_run(t);
    const char *by = t->started_by;
    int stampede = tagged || (by && strncmp(by, STARTED_BY_PREFIX, strlen(STARTED_BY_PREFIX)) == 0);
    if (!stampede) {
        return 0;
    }
    if (!run) {
        return 1;
    }
    return (tagged && strcmp(tagged, run) == 0) ||
           (by && strcmp(by + strlen(STARTED_BY_PREFIX), run) == 0);
}

int st_cmd_ecs(int argc, char **argv)
{
    static const struct option opts[] = {
        {"cluster", required_argument, NULL, 'c'},
        {"run", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        ST_AWS_FLAGS,
        {NULL, 0, NULL, 0},
    };
    st_aws_config cfg;
    st_aws_config_init(&cfg);
    const char *cluster = NULL, *run = NULL;
    optind = 1;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return ST_EXIT_OK;
        } else if (opt == 'c') {
            cluster = optarg;
        } else if (opt == 'r') {
            run = optarg;
        } else if (!st_aws_config_flag(&cfg, opt, optarg, ST_AWS_ECS)) {
            fprintf(stderr,
                    "stampede ecs: unknown flag or missing value: %s (see stampede ecs "
                    "--help)\n",
                    argv[optind - 1]);
            return ST_EXIT_USAGE;
        }
    }
    const char *action = optind < argc ? argv[optind] : NULL;
    if (!action || (strcmp(action, "list") && strcmp(action, "stop")) || optind + 1 < argc) {
        fprintf(stderr, "stampede ecs: say list or stop (see stampede ecs --help)\n");
        return ST_EXIT_USAGE;
    }
    if (!cluster || !cluster[0]) {
        fprintf(stderr, "stampede ecs: --cluster NAME is required\n");
        return ST_EXIT_USAGE;
    }
    char started_by[64];
    if (run && (!run[0] || strlen(run) + strlen(STARTED_BY_PREFIX) > 36)) {
        fprintf(stderr, "stampede ecs: --run: a run id like 20261121T213500Z-3f9a1c2e\n");
        return ST_EXIT_USAGE;
    }
    snprintf(started_by, sizeof(started_by), STARTED_BY_PREFIX "%s", run ? run : "");
    bool stop = strcmp(action, "stop") == 0;

    st_aws_client *c = NULL;
    st_aws_error aerr;
    char **arns = NULL;
    size_t n = 0;
    st_ecs_tasks got = {0};
    int code = ST_EXIT_OK, rc;
    if ((rc = st_aws_client_new(&c, &cfg, &aerr))) {
        fprintf(stderr, "stampede ecs: %s\n", aerr.message);
        return rc == ST_EINVAL ? ST_EXIT_USAGE : ST_EXIT_FAILURE;
    }
    if ((rc =
             st_ecs_list_tasks(c, cluster, run ? started_by : NULL, "RUNNING", &arns, &n, &aerr))) {
        code = exit_of(rc, &aerr);
        goto out;
    }
    if (n > 0 &&
        (rc = st_ecs_describe_tasks(c, cluster, (const char *const *)arns, n, &got, &aerr))) {
        code = exit_of(rc, &aerr);
        goto out;
    }
    int found = 0, failed = 0;
    for (size_t i = 0; i < got.n_tasks; i++) {
        const st_ecs_task *t = &got.tasks[i];
        if (!ours(t, run)) {
            continue;
        }
        found++;
        const char *r = tag_run(t);
        printf("%s  %s  run %s  %s\n", t->arn, t->last_status ? t->last_status : "?",
               r               ? r
               : t->started_by ? t->started_by + strlen(STARTED_BY_PREFIX)
                               : "?",
               t->availability_zone ? t->availability_zone : "?");
        char reason[ST_ECS_STOP_REASON_MAX + 1];
        snprintf(reason, sizeof(reason), "stampede ecs stop: a leftover of run %s", r ? r : "?");
        if (stop && (rc = st_ecs_stop_task(c, cluster, t->arn, reason, NULL, &aerr))) {
            code = exit_of(rc, &aerr);
            failed++;
        }
    }
    fprintf(stderr, "stampede ecs: %d running task%s of %s on cluster %s%s\n", found,
            found == 1 ? "" : "s", run ? run : "stampede runs", cluster,
            !stop    ? ""
            : failed ? ": some could not be stopped (see above)"
                     : ": stopped");
out:
    st_ecs_tasks_fini(&got);
    st_ecs_strv_free(arns);
    st_aws_client_free(c);
    return code;
}
