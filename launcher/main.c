/* stampede-launcher: the launcher Lambda, a custom runtime that starts one stampede run on ECS per
 * invocation (launcher.h). */
#include "aws.h"
#include "cli.h"
#include "error.h"
#include "exit_code.h"
#include "lambda.h"
#include "launcher.h"
#include "log.h"

#include <curl/curl.h>
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
    fprintf(
        to,
        "usage: stampede-launcher   (as a Lambda function: AWS_LAMBDA_RUNTIME_API set)\n\n"
        "The launcher Lambda. Each invocation's event is the seed's payload\n"
        "{\"taskCount\", \"targetUrl\", \"vus\", \"rate\", \"duration\"} or a stampede plan (its\n"
        "\"agents\" is the number of agent tasks). It is checked as stampede run checks a plan,\n"
        "then one coordinator task is started on ECS, which runs\n"
        "`stampede run --plan-env STAMPEDE_PLAN --launcher ecs --headless --run-id RUN_ID ...`\n"
        "and starts the agents. The answer: {\"run_id\", \"coordinator_task_arn\", \"queue_url\",\n"
        "\"table\", \"agents\", \"target_rps\", \"duration_s\"}.\n\n"
        "Settings (environment): STAMPEDE_CLUSTER, STAMPEDE_COORDINATOR_TASK_DEFINITION,\n"
        "STAMPEDE_AGENT_TASK_DEFINITION, STAMPEDE_SUBNETS, STAMPEDE_COORDINATOR_SECURITY_GROUPS,\n"
        "STAMPEDE_AGENT_SECURITY_GROUPS, STAMPEDE_ASSIGN_PUBLIC_IP (ENABLED or DISABLED),\n"
        "STAMPEDE_SQS_QUEUE_URL, STAMPEDE_TABLE; optional STAMPEDE_COORDINATOR_CONTAINER\n"
        "(default coordinator) and STAMPEDE_COORDINATOR_LISTEN (the coordinator's --listen).\n"
        "See docs/ecs.md.\n\n"
        "Exit codes: 0 stopped by SIGTERM, 1 the runtime API failed, 2 a setting is missing\n"
        "or malformed (reported to the runtime API as an initialisation error).\n");
}

static const char *env_get(const char *name)
{
    return getenv(name);
}

/* STAMPEDE_LOG_LEVEL, when set, is a setting like the others: a bad one is refused. */
static int log_level_from_env(char *err, size_t err_len)
{
    const char *name = getenv("STAMPEDE_LOG_LEVEL");
    st_log_level level;
    if (!name || !*name) {
        return 0;
    }
    if (st_log_level_parse(name, &level) != 0) {
        return st_errf(err, err_len, ST_EINVAL,
                       "STAMPEDE_LOG_LEVEL is \"%.20s\": it must be debug, info, warn or error",
                       name);
    }
    st_log_init("stampede-launcher", level);
    return 0;
}

int main(int argc, char **argv)
{
    st_log_init("stampede-launcher", ST_LOG_INFO);
    if (argc > 1) {
        bool help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;
        if (!help) {
            fprintf(stderr, "stampede-launcher: unexpected argument \"%s\": it takes none\n",
                    argv[1]);
        }
        usage(help ? stdout : stderr);
        return help ? ST_EXIT_OK : ST_EXIT_USAGE;
    }
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    if (!api || !*api) {
        fprintf(stderr, "stampede-launcher: AWS_LAMBDA_RUNTIME_API is not set: this program runs "
                        "as a Lambda function (see docs/ecs.md)\n");
        return ST_EXIT_USAGE;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        st_error("cannot initialise libcurl");
        return ST_EXIT_FAILURE;
    }
    char err[1024];
    st_launcher_env env;
    st_launcher *l = NULL;
    int rc = log_level_from_env(err, sizeof(err));
    if (!rc) {
        rc = st_launcher_env_read(&env, env_get, err, sizeof(err));
    }
    if (!rc) {
        st_aws_config cfg;
        st_aws_config_init(&cfg);
        rc = st_launcher_new(&l, &env, &cfg, err, sizeof(err));
    }
    if (rc) {
        st_error("%s", err);
        st_lambda_init_error(api, "Launcher.ConfigurationError", err);
        curl_global_cleanup();
        return rc == ST_ENOMEM ? ST_EXIT_FAILURE : ST_EXIT_USAGE;
    }

    st_cli_stop_signals(on_signal);

    st_info("running as a Lambda runtime (%s): coordinators of cluster %s from %s", api,
            env.cluster, env.coordinator_task_definition);
    rc = st_lambda_run(api, st_launcher_handle, l, &g_stop);
    st_launcher_free(l);
    curl_global_cleanup();
    return st_exit_code(rc);
}
