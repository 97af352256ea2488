/*
 * st-ecs-probe: the process tests/integration/fake_ecs.py starts for each ECS task in
 * tests/test_aws_ecs.c. It reads its task metadata with aws/taskmeta.h from
 * $ECS_CONTAINER_METADATA_URI_V4, as an agent on Fargate does, and writes what it learnt, with the
 * environment its task was given, to $PROBE_DIR/<task id> (renamed into place whole). Then it
 * exits with $PROBE_EXIT when that is set, or waits for a signal (StopTask).
 */
#include "taskmeta.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v ? v : dflt;
}

int main(void)
{
    const char *dir = getenv("PROBE_DIR");
    if (!dir) {
        fprintf(stderr, "st-ecs-probe: PROBE_DIR is not set\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    st_taskmeta m;
    char why[512] = "";
    int rc = st_taskmeta_get(NULL, 0, &m, why, sizeof(why));
    const char *id = "unknown";
    if (rc == 0 && strrchr(m.task_arn, '/')) {
        id = strrchr(m.task_arn, '/') + 1;
    }
    char path[4096], tmp[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, id);
    snprintf(tmp, sizeof(tmp), "%s/.tmp-%ld", dir, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        perror("st-ecs-probe: fopen");
        return 1;
    }
    if (rc == 0) {
        fprintf(f,
                "arn=%s\ncluster=%s\nfamily=%s\nrevision=%s\naz=%s\ncpu=%g\nmemory=%ld\n"
                "ip=%s\nclock_error_bound=%g\n",
                m.task_arn, m.cluster, m.family, m.revision, m.availability_zone, m.cpu_vcpus,
                m.memory_mib, m.ipv4, m.has_clock_error_bound ? m.clock_error_bound_ms : -1.0);
    } else {
        fprintf(f, "error=%s\n", why);
    }
    fprintf(f, "token=%s\ncoordinator=%s\n", env_or("STAMPEDE_TOKEN", "(none)"),
            env_or("STAMPEDE_COORDINATOR", "(none)"));
    fclose(f);
    rename(tmp, path);
    st_taskmeta_fini(&m);
    curl_global_cleanup();
    const char *code = getenv("PROBE_EXIT");
    if (code) {
        return atoi(code);
    }
    for (;;) {
        pause();
    }
}
