/*
 * Tests for the launchers (coordinator/launch.c). The local launcher starts real processes: small
 * /bin/sh scripts written by each test stand in for stampede-agent, record what they were given
 * (arguments, the token's environment variable, their pid) into the test's folder, and then exit,
 * wait, or ignore SIGTERM. Every test checks that no process it caused is left.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"
#include "error.h"
#include "launch.h"
#include "launch_ecs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct fx {
    char dir[64];
    char bin[128];
    int pids[16]; /* as the scripts recorded them */
    int n_pids;
} fx;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool alive(int pid)
{
    return kill(pid, 0) == 0 || errno != ESRCH;
}

/* Writes the stand-in agent: it records its arguments, token and pid, then runs `then`. */
static void write_agent(fx *f, const char *then)
{
    snprintf(f->bin, sizeof(f->bin), "%s/agent.sh", f->dir);
    FILE *fp = fopen(f->bin, "w");
    assert_non_null(fp);
    fprintf(fp,
            "#!/bin/sh\n"
            "d=%s\n"
            "printf '%%s\\n' \"$@\" > \"$d/args.tmp.$$\"\n"
            "printf '%%s' \"$STAMPEDE_TOKEN\" > \"$d/token.$$\"\n"
            "mv \"$d/args.tmp.$$\" \"$d/args.$$\"\n"
            "%s\n",
            f->dir, then);
    fclose(fp);
    assert_int_equal(chmod(f->bin, 0700), 0);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/st-test-launch-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static void rm_dir(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static int teardown(void **state)
{
    fx *f = *state;
    /* Whatever a failed assertion left running is ended here, and still counts as a failure. */
    bool left = false;
    for (int i = 0; i < f->n_pids; i++) {
        if (alive(f->pids[i])) {
            left = true;
            kill(f->pids[i], SIGKILL);
        }
    }
    rm_dir(f->dir);
    free(f);
    return left ? -1 : 0;
}

/* Waits (bounded) until n scripts recorded themselves; fills f->pids from their files. */
static void wait_agents(fx *f, int n)
{
    uint64_t deadline = st_clock_mono_ns() + 10 * ST_NS_PER_S;
    for (;;) {
        f->n_pids = 0;
        char cmd[160];
        snprintf(cmd, sizeof(cmd), "ls '%s' | sed -n 's/^args\\.\\([0-9]*\\)$/\\1/p'", f->dir);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        int pid;
        while (f->n_pids < 16 && fscanf(p, "%d", &pid) == 1) {
            f->pids[f->n_pids++] = pid;
        }
        pclose(p);
        if (f->n_pids >= n) {
            assert_int_equal(f->n_pids, n);
            return;
        }
        assert_true(st_clock_mono_ns() < deadline);
        sleep_ms(10);
    }
}

static char *read_file(const fx *f, const char *what, int pid)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/%s.%d", f->dir, what, pid);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    static char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    buf[n] = 0;
    fclose(fp);
    return buf;
}

static st_launch_cfg cfg_for(const fx *f, int agents)
{
    st_launch_cfg c = {
        .agents = agents,
        .coordinator_url = "tcp://127.0.0.1:7777",
        .token = "tok-123",
        .threads = 0,
        .engine = NULL,
        .log_level = NULL,
        .agent_bin = f->bin,
    };
    return c;
}

/* Starts c's agents with the local launcher and waits until every one recorded itself. */
static st_launcher *start_cfg(fx *f, const st_launch_cfg *c)
{
    st_launcher *l = NULL;
    char err[256] = "";
    assert_int_equal(st_launcher_local.start(&l, c, err, sizeof(err)), 0);
    assert_non_null(l);
    wait_agents(f, c->agents);
    return l;
}

/* Writes the stand-in agent (running `then`) and starts n of them with the default settings. */
static st_launcher *start_local(fx *f, const char *then, int n)
{
    write_agent(f, then);
    st_launch_cfg c = cfg_for(f, n);
    return start_cfg(f, &c);
}

/* Finishes l with the given grace; returns how long finish took. */
static uint64_t finish_took(st_launcher *l, uint64_t grace_ns)
{
    uint64_t t = st_clock_mono_ns();
    st_launcher_local.finish(l, grace_ns);
    return st_clock_mono_ns() - t;
}

/* Polls until the launcher reported n exits (bounded); returns how many it reported. */
static int poll_exits(st_launcher *l, int *exited, int max, int n)
{
    int got = 0;
    uint64_t deadline = st_clock_mono_ns() + 10 * ST_NS_PER_S;
    while (got < n && st_clock_mono_ns() < deadline) {
        got += st_launcher_local.poll(l, exited + got, max - got);
        if (got < n) {
            sleep_ms(10);
        }
    }
    return got;
}

static bool contains(const int *v, int n, int x)
{
    for (int i = 0; i < n; i++) {
        if (v[i] == x) {
            return true;
        }
    }
    return false;
}

static void test_launch_local_argv_and_token(void **state)
{
    fx *f = *state;
    write_agent(f, "exit 0");
    st_launch_cfg c = cfg_for(f, 3);
    c.threads = 2;
    c.engine = "fast";
    c.log_level = "debug";
    st_launcher *l = start_cfg(f, &c);
    bool seen[3] = {false, false, false};
    for (int i = 0; i < 3; i++) {
        char want[512];
        char args[1024];
        snprintf(args, sizeof(args), "%s", read_file(f, "args", f->pids[i]));
        int k = -1;
        assert_int_equal(
            sscanf(strstr(args, "local-") ? strstr(args, "local-") : "", "local-%d", &k), 1);
        assert_true(k >= 1 && k <= 3);
        seen[k - 1] = true;
        snprintf(want, sizeof(want),
                 "--coordinator\ntcp://127.0.0.1:7777\n--name\nlocal-%d\n--log-level\ndebug\n"
                 "--threads\n2\n--engine\nfast\n",
                 k);
        assert_string_equal(args, want);
        /* The token travels in the environment, never on the command line. */
        assert_string_equal(read_file(f, "token", f->pids[i]), "tok-123");
        assert_null(strstr(args, "tok-123"));
    }
    assert_true(seen[0] && seen[1] && seen[2]);
    int exited[8];
    assert_int_equal(poll_exits(l, exited, 8, 3), 3);
    for (int i = 0; i < 3; i++) {
        assert_true(contains(exited, 3, f->pids[i]));
        /* Reaped: not even a zombie is left. */
        assert_false(alive(f->pids[i]));
    }
    /* Reported once only. */
    assert_int_equal(st_launcher_local.poll(l, exited, 8), 0);
    st_launcher_local.finish(l, ST_NS_PER_S);
    st_launcher_local.free(l);
}

static void test_launch_local_defaults(void **state)
{
    fx *f = *state;
    st_launcher *l = start_local(f, "exit 0", 1);
    /* No --threads or --engine unless given; warnings only by default. */
    assert_string_equal(
        read_file(f, "args", f->pids[0]),
        "--coordinator\ntcp://127.0.0.1:7777\n--name\nlocal-1\n--log-level\nwarn\n");
    st_launcher_local.finish(l, 5 * ST_NS_PER_S);
    assert_false(alive(f->pids[0]));
    st_launcher_local.free(l);
}

static void test_launch_local_reports_failed_agents(void **state)
{
    fx *f = *state;
    st_launcher *l = start_local(f, "exit 3", 2);
    int exited[4];
    /* max bounds what one poll writes; the rest come with the next. */
    int got = 0;
    uint64_t deadline = st_clock_mono_ns() + 10 * ST_NS_PER_S;
    while (got < 2 && st_clock_mono_ns() < deadline) {
        int n = st_launcher_local.poll(l, exited + got, 1);
        assert_true(n <= 1);
        got += n;
        sleep_ms(5);
    }
    assert_int_equal(got, 2);
    assert_true(contains(exited, 2, f->pids[0]));
    assert_true(contains(exited, 2, f->pids[1]));
    st_launcher_local.finish(l, 0);
    st_launcher_local.free(l);
}

static void test_launch_local_finish_ends_running_agents(void **state)
{
    fx *f = *state;
    st_launcher *l = start_local(f, "exec sleep 30", 2);
    int exited[4];
    assert_int_equal(st_launcher_local.poll(l, exited, 4), 0);
    assert_true(alive(f->pids[0]) && alive(f->pids[1]));
    uint64_t took = finish_took(l, 200 * ST_NS_PER_MS);
    /* The grace, then SIGTERM: well before the scripts' 30 s. */
    assert_true(took >= 200 * ST_NS_PER_MS);
    assert_true(took < 3 * ST_NS_PER_S);
    assert_false(alive(f->pids[0]));
    assert_false(alive(f->pids[1]));
    st_launcher_local.free(l);
}

static void test_launch_local_kills_agents_ignoring_sigterm(void **state)
{
    fx *f = *state;
    st_launcher *l = start_local(f, "trap '' TERM\nexec sleep 30", 1);
    uint64_t took = finish_took(l, 0);
    /* SIGTERM is ignored for its 3 s, then SIGKILL. */
    assert_true(took >= 3 * ST_NS_PER_S);
    assert_true(took < 8 * ST_NS_PER_S);
    assert_false(alive(f->pids[0]));
    st_launcher_local.free(l);
}

static void test_launch_local_free_ends_agents(void **state)
{
    fx *f = *state;
    st_launcher *l = start_local(f, "exec sleep 30", 2);
    /* Torn down without finish (an error path of the run): nothing outlives it. */
    st_launcher_local.free(l);
    assert_false(alive(f->pids[0]));
    assert_false(alive(f->pids[1]));
    st_launcher_local.free(NULL);
}

static void test_launch_local_missing_program(void **state)
{
    fx *f = *state;
    snprintf(f->bin, sizeof(f->bin), "%s/no-such-agent", f->dir);
    st_launch_cfg c = cfg_for(f, 3);
    st_launcher *l = NULL;
    char err[256] = "";
    assert_int_equal(st_launcher_local.start(&l, &c, err, sizeof(err)), ST_ENOTFOUND);
    assert_null(l);
    assert_non_null(strstr(err, f->bin));
    assert_non_null(strstr(err, "stampede-agent on PATH"));
}

static void test_launch_local_program_not_executable(void **state)
{
    fx *f = *state;
    write_agent(f, "exit 0");
    assert_int_equal(chmod(f->bin, 0600), 0);
    st_launch_cfg c = cfg_for(f, 2);
    st_launcher *l = NULL;
    char err[256] = "";
    assert_int_equal(st_launcher_local.start(&l, &c, err, sizeof(err)), ST_ESYSTEM);
    assert_null(l);
    assert_non_null(strstr(err, "cannot run"));
    /* Nothing ran: no script recorded itself. */
    sleep_ms(50);
    wait_agents(f, 0);
}

/* Starts the external launcher with stderr on fd, and returns what start returned. */
static int external_start_on(int fd, st_launch_cfg *c, st_launcher **l, char *err, size_t len)
{
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    int rc = st_launcher_external.start(l, c, err, len);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    return rc;
}

static void test_launch_external(void **state)
{
    fx *f = *state;
    st_launch_cfg c = cfg_for(f, 4);
    st_launcher *l = NULL;
    char err[256] = "";
    assert_int_equal(st_launcher_external.start(&l, &c, err, sizeof(err)), 0);
    assert_non_null(l);
    int exited[4];
    assert_int_equal(st_launcher_external.poll(l, exited, 4), 0);
    st_launcher_external.finish(l, ST_NS_PER_S);
    st_launcher_external.free(l);
}

/* A generated token is a secret: never in a log. On a terminal it is shown (outside the log);
 * anywhere else the external launcher refuses to start without --token. */
static void test_launch_external_generated_token(void **state)
{
    fx *f = *state;
    st_launch_cfg c = cfg_for(f, 2);
    c.token_generated = 1;
    st_launcher *l = NULL;
    char err[256] = "";
    int devnull = open("/dev/null", O_WRONLY);
    assert_true(devnull >= 0);
    assert_int_equal(external_start_on(devnull, &c, &l, err, sizeof(err)), ST_EINVAL);
    close(devnull);
    assert_null(l);
    assert_non_null(strstr(err, "--token"));

    int master, slave;
    assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
    assert_int_equal(external_start_on(slave, &c, &l, err, sizeof(err)), 0);
    assert_non_null(l);
    /* The log line and the command line are two writes: read until the command shows. */
    char shown[2048];
    size_t have = 0;
    const char *want = "--coordinator tcp://127.0.0.1:7777 --token tok-123";
    shown[0] = '\0';
    for (int i = 0; i < 20 && !strstr(shown, want) && have < sizeof(shown) - 1; i++) {
        struct pollfd p = {.fd = master, .events = POLLIN};
        if (poll(&p, 1, 100) == 1) {
            ssize_t n = read(master, shown + have, sizeof(shown) - 1 - have);
            if (n <= 0) {
                break;
            }
            have += (size_t)n;
            shown[have] = '\0';
        }
    }
    assert_non_null(strstr(shown, want));
    close(slave);
    close(master);
    st_launcher_external.finish(l, ST_NS_PER_S);
    st_launcher_external.free(l);
}

static void test_launch_find(void **state)
{
    (void)state;
    assert_ptr_equal(st_launcher_find("local"), &st_launcher_local);
    assert_ptr_equal(st_launcher_find("external"), &st_launcher_external);
    assert_ptr_equal(st_launcher_find("ecs"), &st_launcher_ecs);
    assert_null(st_launcher_find("fargate"));
    assert_null(st_launcher_find(""));
    assert_string_equal(st_launcher_local.name, "local");
    assert_string_equal(st_launcher_external.name, "external");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_launch_local_argv_and_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_launch_local_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_launch_local_reports_failed_agents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_launch_local_finish_ends_running_agents, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_launch_local_kills_agents_ignoring_sigterm, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_launch_local_free_ends_agents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_launch_local_missing_program, setup, teardown),
        cmocka_unit_test_setup_teardown(test_launch_local_program_not_executable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_launch_external_generated_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_launch_external, setup, teardown),
        cmocka_unit_test_setup_teardown(test_launch_find, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
