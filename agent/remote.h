/*
 * remote.h - the agent under a coordinator: registration, clock sync, commands, and records.
 *
 * The agent dials the coordinator's nng REP socket with a REQ socket. The protocol itself (clock
 * pings, registration, updates carrying every unacknowledged record, the commands on the replies)
 * is common/session.h; this module does its I/O and runs the load the commands ask for: prepare
 * (the plan and this agent's share), start (the common instant in coordinator time),
 * re-assignments (a new share from a global request on), and stop.
 *
 * Safety: the load sends only while the last acknowledged exchange was sent less than
 * ST_PROTO_AGENT_SILENCE_MS ago (common/protocol.h; every worker checks it before a send, so a
 * paused agent that resumes never sends its backlog); past it the agent stops its load, keeps its
 * records and delivers them for ST_PROTO_DELIVERY_MS, then exits. It never runs past the plan's
 * end plus the drain bound either. Told "register again", it stops any load and registers anew,
 * at most ST_PROTO_REREGISTER_MAX times.
 *
 * Over tls+tcp:// the agent pins the coordinator's certificate (common/tls.h says how): before
 * dialing, it fetches the certificate the coordinator presents and checks its SHA-256 against
 * tls_fingerprint, retrying while nothing listens, up to ST_PROTO_CONNECT_DEADLINE_MS; then nng
 * dials with exactly that certificate as its only trusted CA, its name as server_name and
 * NNG_TLS_AUTH_MODE_REQUIRED, so every connection and reconnection is to the holder of its key.
 * A TLS connection that brings no reply within an exchange's timeout is closed and dialed anew
 * (nng 1.5.2's TLS pipe can miss its peer's close and would otherwise never be replaced).
 *
 * Threading: st_remote_run runs on the main thread and returns when the agent is done.
 */
#ifndef ST_REMOTE_H
#define ST_REMOTE_H

#include <signal.h>
#include <stdbool.h>

typedef struct st_remote_opts {
    const char *url;    /* coordinator, e.g. tcp://10.0.0.5:7400 */
    const char *token;  /* the run token */
    const char *tls_fingerprint; /* tls+tcp:// only: the pinned SHA-256, as the user wrote it */
    const char *name;   /* this agent's name; NULL: host-pid */
    const char *engine; /* auto / curl / fast; NULL: what the plan asks */
    int threads;        /* > 0: overrides the plan's threads */
    int cpus;           /* the CPUs this agent may use (st_cli_cpus, lowered on ECS to the task's
                           vCPUs rounded up): its threads when neither the plan nor threads say */
    /* On ECS, from the task metadata (NULL / 0 elsewhere): what the agent registers with. */
    const char *task_arn;
    const char *availability_zone;
    const char *cluster;
    const char *task_definition; /* "family:revision" */
    double cpu_vcpus;
    bool has_clock_error_bound;
    double clock_error_bound_ms;
} st_remote_opts;

/* Runs until the coordinator is done with this agent. stop_signal, when it becomes non-zero
 * (a signal handler's flag), stops the load and ends the agent after a last update. Returns the
 * process exit code (exit_code.h): ST_EXIT_OK when the run ended and the coordinator holds every
 * record; ST_EXIT_FAILURE when the plan could not be run; ST_EXIT_AUTH when the coordinator
 * refused the agent (token, run, or "register again" beyond the bound) or the agent refused the
 * coordinator (its certificate does not match tls_fingerprint); ST_EXIT_UNREACHABLE when
 * the coordinator could not be reached, went silent (the load stops at once; the exit follows
 * the delivery of its records or the delivery bound), or ended the run before it started. */
int st_remote_run(const st_remote_opts *o, volatile sig_atomic_t *stop_signal);

#endif
