/*
 * session.h - the agent's side of the control protocol, without I/O.
 *
 * One st_session is one agent's conversation with its coordinator (proto/stampede.proto): clock
 * pings (NTP-style; the minimum-RTT sample of the last ST_PROTO_CLOCK_WINDOW gives the offset),
 * its registration (token, identity, capacity), then updates at every heartbeat and whenever a
 * record is ready. Updates carry every record not yet acknowledged (oldest first, at most
 * ST_PROTO_RECORDS_PER_UPDATE), so records survive a lost reply and are sent again; each
 * exchange is a clock sample. Replies carry the commands (prepare, start, re-assignment, stop,
 * done), which the session hands to its caller with the decisions the protocol makes for it
 * (which prepare is new, when the start is in local time, which assignment is newer).
 *
 * The caller does the I/O: it asks for the next request (st_session_request), sends it, and
 * hands back the reply (st_session_reply) or says none came (st_session_lost). Exactly one
 * exchange is outstanding at a time, as on an nng REQ socket. The caller runs the load and tells
 * the session what became of the commands (st_session_prepared, _started, _assigned, _fail) and
 * what the load produced (st_session_push, _end). Time comes from the st_clock given at creation,
 * so the whole protocol runs on a fake clock in tests. agent/remote.c drives one session, the
 * ingest benchmark's simulator (bench/agent_sim.c) thousands, tests/test_coord.c a few.
 *
 * Errors: negative codes of error.h. A reply that does not decode is an error of that exchange
 * only: the session goes on. A refusal ends the session: every later request is refused.
 *
 * Threading: not thread-safe; one caller at a time per session (sessions share nothing, so
 * different sessions may be used on different threads at once).
 */
#ifndef ST_SESSION_H
#define ST_SESSION_H

#include "clock.h"
#include "stats.h"
#include "stampede.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct st_session st_session;

/* Who the agent is. Strings are copied by st_session_new; NULL reads as "". */
typedef struct st_session_cfg {
    const st_clock *clock; /* monotonic, this agent's; must outlive the session */
    const char *token;     /* the run token */
    uint64_t instance_id;  /* random per agent process: makes a re-sent Register idempotent */
    const char *name;
    const char *host;
    uint32_t pid;
    uint32_t cores;
    uint32_t threads; /* the capacity the coordinator weighs the agent by */
    const char *version;
    const char *task_arn;
    const char *availability_zone;
    const char *cluster;         /* ECS: the task's cluster */
    const char *task_definition; /* ECS: "family:revision" */
    double cpu_vcpus;            /* ECS: the task's CPU limit, 0 when not on ECS */
    bool has_clock_error_bound;
    double clock_error_bound_ms; /* ECS: the task's ClockErrorBound */
    int clock_pings;              /* pings before registering, 0 .. ST_PROTO_CLOCK_WINDOW */
    uint32_t connect_deadline_ms; /* to be registered by, from st_session_new; 0: none */
} st_session_cfg;

/* The cfg every agent uses: the real clock, ST_PROTO_CLOCK_PINGS, ST_PROTO_CONNECT_DEADLINE_MS,
 * everything else zero. */
void st_session_cfg_defaults(st_session_cfg *cfg);

typedef enum st_session_phase {
    ST_SESSION_PINGING,     /* taking clock samples */
    ST_SESSION_REGISTERING, /* sending its Register until accepted */
    ST_SESSION_REGISTERED,  /* sending updates */
    ST_SESSION_ENDED,       /* refused, or told it is done: nothing more to send */
} st_session_phase;

/* Returns 0, ST_EINVAL (no clock, clock_pings out of range) or ST_ENOMEM; *out only on 0. */
int st_session_new(st_session **out, const st_session_cfg *cfg);

/* Frees the session and every record it holds. NULL is a no-op. */
void st_session_free(st_session *s);

/* ---- exchanges ---------------------------------------------------------------------------- */

typedef enum st_session_kind {
    ST_SESSION_PING,
    ST_SESSION_REGISTER,
    ST_SESSION_UPDATE,
} st_session_kind;

/* The next request, stamped now: a ClockPing while pinging, a Register while registering, else an
 * AgentUpdate. On 0, *buf (malloc'ed, the caller frees it) holds the packed Envelope, *timeout_ms
 * how long to wait for its reply (ST_PROTO_PING_TIMEOUT_MS, _EXCHANGE_TIMEOUT_MS for a Register,
 * _UPDATE_TIMEOUT_MS for an update), and *kind (if not NULL) what it is; the exchange is then
 * outstanding until st_session_reply or st_session_lost. Returns 0; ST_ESTATE when an exchange is
 * already outstanding or the session has ended; ST_ENOMEM. Outputs are written only on 0. Nothing
 * stops a request from being built after st_session_expired says so: the caller decides. */
int st_session_request(st_session *s, uint8_t **buf, size_t *len, int *timeout_ms,
                       st_session_kind *kind);

/* What a reply asks of the caller. Pointers point into the reply the session keeps; they are
 * valid until the next st_session_reply or st_session_free. */
typedef struct st_session_cmds {
    /* The reply to an update as it came, for callers that observe more than the commands (NULL
     * for any other reply). */
    const Stampede__CoordReply *reply;
    /* A plan and share to prepare (new: not the epoch the session is prepared at, and nothing has
     * started): answer with st_session_prepared or st_session_fail. */
    const Stampede__Prepare *prepare;
    /* Start the load at t0_local_ns (monotonic, this agent's clock): the session is prepared and
     * not started, stopped or failed. Answer with st_session_started or st_session_fail. */
    bool start;
    uint64_t t0_local_ns;
    /* A share newer than the session's epoch while started: answer with st_session_assigned once
     * applied (or not at all, and it comes again). */
    const Stampede__Assignment *assignment;
    /* Stop the load now (the first stop only; the session's state follows, see
     * st_session_stop). */
    bool stop;
    /* The coordinator holds everything it needs: the agent may exit. The session has ended. */
    bool done;
} st_session_cmds;

/* Hands the session the reply to its outstanding exchange, received now; the exchange is over.
 * Every decoded reply resets the silence bound. *cmds is always written (all zero unless 0).
 * Returns:
 *   0           the reply was applied (a pong, a registration, or a CoordReply's commands in
 *               *cmds); a reply of the wrong kind for the request is ignored, also 0.
 *   ST_EPROTO   undecodable, another protocol version, or no body: ignored.
 *   ST_EINVAL   another run's reply: ignored.
 *   ST_EAUTH    refused (st_session_refusal says why): the session has ended.
 *   ST_ENOTFOUND refused with "register again" (the coordinator does not know this agent, or
 *               knows another instance by that id): the session starts over as a new
 *               registration (phase REGISTERING, state IDLE, no records: what it held belongs
 *               to an agent the coordinator does not know; the caller stops any load it runs),
 *               at most ST_PROTO_REREGISTER_MAX times; after that the session has ended.
 *   ST_ESTATE   no exchange is outstanding: nothing changes.
 * A heartbeat outside ST_PROTO_HEARTBEAT_MIN_MS .. _MAX_MS in a reply is ignored (the previous
 * one stays) and the rest of the reply applied. The caller keeps buf. */
int st_session_reply(st_session *s, const uint8_t *buf, size_t len, st_session_cmds *cmds);

/* The outstanding exchange got no reply (send failed, or its timeout passed): its records stay
 * unacknowledged and go again with the next update, which is due at once. No-op when nothing
 * is outstanding. */
void st_session_lost(st_session *s);

/* When the next exchange is due (monotonic ns): 0 (at once) while pinging or registering, and
 * once a record is pushed or the load ended; the instant of the loss after a lost update; else
 * one heartbeat after the last answered update. The first update after the registration is due
 * at once. Meaningless while an exchange is outstanding. */
uint64_t st_session_next_due(const st_session *s);

/* ST_ETIMEDOUT when the session should give up: not registered by the connect deadline, or,
 * registered, no reply decoded for ST_PROTO_AGENT_SILENCE_MS. Else 0. */
int st_session_expired(const st_session *s);

/* The load's licence (monotonic ns, this agent's clock): the load may send a request only
 * before this instant, ST_PROTO_AGENT_SILENCE_MS after the send of the last exchange the
 * coordinator answered (see protocol.h for why from the send). 0 when not registered, or once
 * silenced. The caller hands it to its load after every exchange. */
uint64_t st_session_licence_ns(const st_session *s);

/* The caller stopped its load because the licence passed (reason, copied, says so): the session
 * stops (st_session_stop), keeps every unacknowledged record, and reports reason and the instant
 * the licence ended (in coordinator time) with every later update, until the coordinator says
 * done or ST_PROTO_DELIVERY_MS from now pass (st_session_undelivered). Returns true the first
 * time, false after or when not registered. */
bool st_session_silenced(st_session *s, const char *reason);

/* ST_ETIMEDOUT when silenced and the delivery bound passed without a done (the caller exits;
 * st_session_unacked says what is lost). Else 0. */
int st_session_undelivered(const st_session *s);
bool st_session_is_silenced(const st_session *s);
/* How many times the session registered again ("register again"). */
int st_session_reregisters(const st_session *s);

/* ---- what the caller did with the commands, and what its load produced -------------------- */

/* Prepared at this epoch: the session reports READY. */
void st_session_prepared(st_session *s, uint32_t epoch);

/* The load started (after a start command): the session reports RUNNING. */
void st_session_started(st_session *s);

/* A re-assignment of this epoch applied: the session reports that epoch. */
void st_session_assigned(st_session *s, uint32_t epoch);

/* The plan cannot be run: the session reports FAILED with this reason (copied, truncated to 255
 * bytes). */
void st_session_fail(st_session *s, const char *reason);

/* Stops (a signal, or the coordinator's stop). Started: DRAINING (from RUNNING); not started and
 * not failed: DONE, with every record pushed so far. Returns true the first time (the caller
 * stops its load), false after. */
bool st_session_stop(st_session *s);

/* Queues the record of a second with the next sequence number (written to *seq when not NULL).
 * push builds it from stats; push_body takes a body from st_wire_record_body_pack (copied).
 * Returns 0 or ST_ENOMEM (nothing queued). */
int st_session_push(st_session *s, const st_stats *sec, uint64_t *seq);
int st_session_push_body(st_session *s, uint32_t second, const uint8_t *body, size_t len,
                         uint64_t *seq);

/* The load ended after its last record: the session reports DONE (unless FAILED) with the last
 * sequence number pushed. Idempotent. */
void st_session_end(st_session *s);

/* The realised start (first actual send minus its offset in the schedule), monotonic local ns:
 * reported in coordinator time. */
void st_session_first_send(st_session *s, uint64_t local_ns);

/* ---- what the session knows -------------------------------------------------------------- */

st_session_phase st_session_get_phase(const st_session *s);
Stampede__AgentState st_session_state(const st_session *s);
uint32_t st_session_epoch(const st_session *s);
bool st_session_is_started(const st_session *s);
uint32_t st_session_agent_id(const st_session *s);
/* The run id the registration gave, or "" before. */
const char *st_session_run_id(const st_session *s);
/* Why the coordinator refused the agent, or "". */
const char *st_session_refusal(const st_session *s);
/* The clock offset (agent minus coordinator) and its round trip, from the minimum-RTT sample. */
int64_t st_session_offset_ns(const st_session *s);
uint64_t st_session_rtt_ns(const st_session *s);
/* Pongs taken as clock samples so far. */
int st_session_pings(const st_session *s);
/* The heartbeat the coordinator asked for (ST_PROTO_HEARTBEAT_MS until one does). */
uint32_t st_session_heartbeat_ms(const st_session *s);
/* Records queued and not acknowledged; the highest sequence number acknowledged; the last one
 * reported with DONE (0 before). */
size_t st_session_unacked(const st_session *s);
uint64_t st_session_acked(const st_session *s);
uint64_t st_session_last_seq(const st_session *s);
/* Converts between this agent's monotonic clock and the coordinator's, with the offset. */
uint64_t st_session_to_local(const st_session *s, uint64_t coord_ns);
uint64_t st_session_to_coord(const st_session *s, uint64_t local_ns);

#endif
