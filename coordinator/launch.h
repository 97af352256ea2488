/*
 * launch.h - how agents come to exist for a run: the launcher ops table.
 *
 *   local     starts N stampede-agent processes on this machine (fork/exec), each told the
 *             coordinator's URL, with the run token (and over TLS the certificate's fingerprint)
 *             in its environment (never on a command line);
 *   external  starts nothing and waits for N agents started elsewhere with
 *             `stampede-agent --coordinator URL --token TOKEN` (by hand, a scheduler, or ECS);
 *   ecs       starts N ECS Fargate tasks that run stampede-agent, configured through their
 *             environment (launch_ecs.h).
 *
 * Agents always register with the coordinator themselves; a launcher only brings them up and,
 * for processes it started, makes sure none outlives the run.
 *
 * Threading: every op from the coordinator's owner thread.
 */
#ifndef ST_LAUNCH_H
#define ST_LAUNCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct st_ecs_launch_cfg;

typedef struct st_launch_cfg {
    int agents;
    const char *run_id;          /* tags and names what a launcher starts */
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
    const struct st_ecs_launch_cfg *ecs; /* the ecs launcher's settings; NULL for the others */
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
    /* NULL for launchers with nothing to watch. Every loop of the run: registered is how many
     * agents are registered, waiting whether the run still waits for agents. Returns 0 while
     * the launch goes on, or an error code with a message in err when the run cannot get its
     * agents (the caller ends the run; finish and free still follow). */
    int (*watch)(st_launcher *l, int registered, bool waiting, char *err, size_t err_len);
    /* After the run, on every path: waits up to grace_ns for its agents to exit, then ends the
     * rest (local: SIGTERM, then SIGKILL; ecs: StopTask). */
    void (*finish)(st_launcher *l, uint64_t grace_ns);
    /* NULL is a no-op. */
    void (*free)(st_launcher *l);
} st_launcher_ops;

extern const st_launcher_ops st_launcher_local;
extern const st_launcher_ops st_launcher_external;
/* st_launcher_ecs: launch_ecs.h */

/* The poll op of a launcher whose agents are not this machine's processes: writes nothing,
 * returns 0. */
int st_launch_poll_none(st_launcher *l, int *exited, int max);

/* The ops for a --launcher name, or NULL. */
const st_launcher_ops *st_launcher_find(const char *name);

#endif
