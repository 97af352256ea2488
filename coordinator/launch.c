/* The local and external launchers (launch.h). */
#include "launch.h"
#include "launch_ecs.h"
#include "clock.h"
#include "error.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct st_launcher {
    st_launch_cfg cfg;
    pid_t *pids; /* 0 once reaped */
    int n;
};

/* stampede-agent next to this program (build/bin, /usr/local/bin), else whatever PATH finds. */
static void agent_path(const st_launch_cfg *cfg, char *out, size_t len)
{
    if (cfg->agent_bin) {
        snprintf(out, len, "%s", cfg->agent_bin);
        return;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            if (strlen(self) + 16 <= len) {
                strcpy(out, self);
                strcat(out, "/stampede-agent");
                if (access(out, X_OK) == 0) {
                    return;
                }
            }
        }
    }
    snprintf(out, len, "stampede-agent");
}

static int reap(st_launcher *l, bool log, int *exited, int max)
{
    int n_exited = 0;
    for (int i = 0; i < l->n; i++) {
        if (l->pids[i] <= 0) {
            continue;
        }
        if (exited && n_exited == max) {
            break; /* the rest are reaped (and reported) by the next poll */
        }
        int status;
        pid_t r = waitpid(l->pids[i], &status, WNOHANG);
        if (r == l->pids[i]) {
            if (log && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
                if (WIFSIGNALED(status)) {
                    st_warn("local agent %d (pid %d) was killed by signal %d", i + 1,
                            (int)l->pids[i], WTERMSIG(status));
                } else {
                    st_warn("local agent %d (pid %d) exited with code %d", i + 1,
                            (int)l->pids[i], WEXITSTATUS(status));
                }
            }
            if (exited && n_exited < max) {
                exited[n_exited++] = (int)l->pids[i];
            }
            l->pids[i] = 0;
        }
    }
    return n_exited;
}

static int running(const st_launcher *l)
{
    int n = 0;
    for (int i = 0; i < l->n; i++) {
        n += l->pids[i] > 0;
    }
    return n;
}

static void local_finish(st_launcher *l, uint64_t grace_ns)
{
    uint64_t deadline = st_clock_mono_ns() + grace_ns;
    reap(l, true, NULL, 0);
    while (running(l) && st_clock_mono_ns() < deadline) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        reap(l, true, NULL, 0);
    }
    for (int sig = SIGTERM; running(l); sig = SIGKILL) {
        for (int i = 0; i < l->n; i++) {
            if (l->pids[i] > 0) {
                st_warn("local agent %d (pid %d) is still running: sending %s", i + 1,
                        (int)l->pids[i], sig == SIGTERM ? "SIGTERM" : "SIGKILL");
                kill(l->pids[i], sig);
            }
        }
        uint64_t wait_until = st_clock_mono_ns() + 3 * ST_NS_PER_S;
        while (running(l) && st_clock_mono_ns() < wait_until) {
            struct timespec ts = {0, 20 * 1000 * 1000};
            nanosleep(&ts, NULL);
            reap(l, false, NULL, 0);
        }
        if (sig == SIGKILL) {
            break;
        }
    }
}

static void local_free(st_launcher *l)
{
    if (!l) {
        return;
    }
    if (running(l)) {
        local_finish(l, 0);
    }
    free(l->pids);
    free(l);
}

static int local_start(st_launcher **out, const st_launch_cfg *cfg, char *err, size_t err_len)
{
    char bin[PATH_MAX];
    agent_path(cfg, bin, sizeof(bin));
    st_launcher *l = calloc(1, sizeof(*l));
    if (!l || !(l->pids = calloc((size_t)cfg->agents, sizeof(pid_t)))) {
        free(l);
        return ST_ENOMEM;
    }
    l->cfg = *cfg;
    for (int i = 0; i < cfg->agents; i++) {
        char name[32], threads[16];
        snprintf(name, sizeof(name), "local-%d", i + 1);
        snprintf(threads, sizeof(threads), "%d", cfg->threads);
        const char *argv[16];
        int k = 0;
        argv[k++] = bin;
        argv[k++] = "--coordinator";
        argv[k++] = cfg->coordinator_url;
        argv[k++] = "--name";
        argv[k++] = name;
        argv[k++] = "--log-level";
        argv[k++] = cfg->log_level ? cfg->log_level : "warn";
        if (cfg->threads > 0) {
            argv[k++] = "--threads";
            argv[k++] = threads;
        }
        if (cfg->engine) {
            argv[k++] = "--engine";
            argv[k++] = cfg->engine;
        }
        argv[k] = NULL;
        /* A pipe tells the parent whether exec worked. */
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) != 0) {
            snprintf(err, err_len, "cannot start local agents: %s", strerror(errno));
            local_free(l);
            return ST_ESYSTEM;
        }
        pid_t pid = fork();
        if (pid < 0) {
            snprintf(err, err_len, "cannot start local agents: %s", strerror(errno));
            close(fds[0]);
            close(fds[1]);
            local_free(l);
            return ST_ESYSTEM;
        }
        if (pid == 0) {
            close(fds[0]);
            /* The agent ends with us even when we are killed: it also stops by itself when we go
             * silent, but a local agent need not wait for that. */
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            setenv("STAMPEDE_TOKEN", cfg->token, 1);
            if (cfg->tls_fingerprint) {
                setenv("STAMPEDE_TLS_FINGERPRINT", cfg->tls_fingerprint, 1);
            } else {
                unsetenv("STAMPEDE_TLS_FINGERPRINT"); /* the agent would refuse it with tcp:// */
            }
            int devnull = open("/dev/null", O_RDWR);
            if (devnull >= 0) {
                dup2(devnull, 0);
                dup2(devnull, 1);
            }
            execvp(bin, (char *const *)argv);
            int e = errno;
            if (write(fds[1], &e, sizeof(e)) < 0) {
                _exit(127);
            }
            _exit(127);
        }
        close(fds[1]);
        int child_errno = 0;
        ssize_t got = read(fds[0], &child_errno, sizeof(child_errno));
        close(fds[0]);
        if (got == (ssize_t)sizeof(child_errno)) {
            waitpid(pid, NULL, 0);
            snprintf(err, err_len, "cannot run %s: %s (build it, or put stampede-agent on PATH)",
                     bin, strerror(child_errno));
            local_free(l);
            return child_errno == ENOENT ? ST_ENOTFOUND : ST_ESYSTEM;
        }
        l->pids[i] = pid;
        l->n = i + 1;
    }
    st_info("started %d local agents (%s)", cfg->agents, bin);
    *out = l;
    return 0;
}

static int local_poll(st_launcher *l, int *exited, int max)
{
    return reap(l, true, exited, max);
}

const st_launcher_ops st_launcher_local = {
    .name = "local",
    .start = local_start,
    .poll = local_poll,
    .finish = local_finish,
    .free = local_free,
};

static int external_start(st_launcher **out, const st_launch_cfg *cfg, char *err, size_t err_len)
{
    /* A made-up token is useless unless the people starting agents learn it, and a secret must
     * never reach a log: it is shown on a terminal only, outside the log. */
    if (cfg->token_generated && !isatty(STDERR_FILENO)) {
        snprintf(err, err_len,
                 "--launcher external needs --token TOKEN when stderr is not a terminal: a "
                 "generated token is shown on a terminal only, never written to a log");
        return ST_EINVAL;
    }
    st_launcher *l = calloc(1, sizeof(*l));
    if (!l) {
        return ST_ENOMEM;
    }
    l->cfg = *cfg;
    const char *pin = cfg->tls_fingerprint;
    if (cfg->token_generated) {
        st_info("waiting for %d agents: the command that starts one follows", cfg->agents);
        fprintf(stderr, "  stampede-agent --coordinator %s --token %s%s%s\n",
                cfg->coordinator_url, cfg->token, pin ? " --tls-fingerprint " : "", pin ? pin : "");
    } else {
        st_info("waiting for %d agents: stampede-agent --coordinator %s --token <your token>%s%s",
                cfg->agents, cfg->coordinator_url, pin ? " --tls-fingerprint " : "",
                pin ? pin : "");
    }
    *out = l;
    return 0;
}

int st_launch_poll_none(st_launcher *l, int *exited, int max)
{
    (void)l;
    (void)exited;
    (void)max;
    return 0;
}

static void external_finish(st_launcher *l, uint64_t grace_ns)
{
    (void)l;
    (void)grace_ns;
}

static void external_free(st_launcher *l)
{
    free(l);
}

const st_launcher_ops st_launcher_external = {
    .name = "external",
    .start = external_start,
    .poll = st_launch_poll_none,
    .finish = external_finish,
    .free = external_free,
};

const st_launcher_ops *st_launcher_find(const char *name)
{
    if (strcmp(name, "local") == 0) {
        return &st_launcher_local;
    }
    if (strcmp(name, "external") == 0) {
        return &st_launcher_external;
    }
    if (strcmp(name, "ecs") == 0) {
        return &st_launcher_ecs;
    }
    return NULL;
}
