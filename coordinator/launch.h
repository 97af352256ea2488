/*
 * launch.h - how agents come to exist for a run: the launcher ops table.
 *
 *   local     starts N stampede-agent processes on this machine (fork/exec), each told the
 *             coordinator's URL, with the run token (and over TLS the certificate's fingerprint)
 *             in its environment (never on a command line);
 *   external  starts nothing and waits for N agents started elsewhere with
 *             `stampede-agent --coordinator URL --token TOKEN` (by hand, a scheduler, or ECS).
 *
 * Agents always register with the coordinator themselves; a launcher only brings them up and,
 * for processes it started, makes sure none outlives the run.
 *
 * Threading: every op from the coordinator's owner thread.
 */
#ifndef ST_LAUNCH_H
#define ST_LAUNCH_H

#include <stddef.h>
#include <stdint.h>

typedef struct st_launch_cfg {
    int agents;
    const char *coordinator_url; /* what agents dial */
    const char *token;
    int threads;            /* > 0: --threads for each agent */
    const char *engine;     /* NULL: the plan's */
    const char *log_level;  /* the agents' --log-level */
    const char *agent_bin;  /* NULL: stampede-agent beside this program, else on PATH */
    const char *tls_fingerprint; /* tls+tcp://: the certificate's SHA-256, handed over like
                                    the token (local: in the environment); NULL otherwise */
    int token_generated;    /* the token was made up here: external agents need to be told it
                               (on a terminal only; external refuses to start otherwise) */
} st_launch_cfg;

typedef struct st_launcher st_launcher;

typedef struct st_launcher_ops {
    const char *name;
    /* Starts (or announces) the agents. Returns 0, or ST_ESYSTEM / ST_ENOTFOUND / ST_ENOMEM with
     * a message in err; on error nothing it started is left running. */
    int (*start)(st_launcher **out, const st_launch_cfg *cfg, char *err, size_t err_len);
    /* Housekeeping, a few times a second: notices agents that exited and writes up to max of
     * their process ids into exited (so the run need not wait for their silence); exits beyond
     * max are kept for the next poll. Returns how many it wrote. */
    int (*poll)(st_launcher *l, int *exited, int max);
    /* After the run: waits up to grace_ns for its agents to exit, then ends the rest (SIGTERM,
     * then SIGKILL). */
    void (*finish)(st_launcher *l, uint64_t grace_ns);
    /* NULL is a no-op. */
    void (*free)(st_launcher *l);
} st_launcher_ops;

extern const st_launcher_ops st_launcher_local;
extern const st_launcher_ops st_launcher_external;

/* The ops for a --launcher name, or NULL. */
const st_launcher_ops *st_launcher_find(const char *name);

#endif
