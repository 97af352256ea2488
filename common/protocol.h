/*
 * protocol.h - the numbers both sides of the control protocol (proto/stampede.proto) rely on.
 *
 * The wire format is in common/wire.h; the agent's side of the exchanges is common/session.h; the
 * coordinator's side is coordinator/coord.h. The bounds here depend on one another, so they are
 * written once: a coordinator notices a silent agent (ST_PROTO_COORD_SILENCE_MS) before the agent
 * gives up on it (ST_PROTO_AGENT_SILENCE_MS), both well above the slowest heartbeat an agent
 * accepts, and a re-plan applies after every agent has had its next update
 * (run heartbeat + ST_PROTO_REPLAN_MARGIN_MS).
 *
 * Constants only: no functions, no state.
 */
#ifndef ST_PROTOCOL_H
#define ST_PROTOCOL_H

/* ---- the agent ---------------------------------------------------------------------------- */

/* Clock samples an agent keeps (NTP-style); the one with the smallest round trip gives the
 * offset, because it has the least asymmetry in it. */
#define ST_PROTO_CLOCK_WINDOW 16
/* Clock pings before the registration, so that the Register carries an offset already. */
#define ST_PROTO_CLOCK_PINGS 8
/* How long a clock ping waits for its pong. */
#define ST_PROTO_PING_TIMEOUT_MS 500
/* How long a registration or an update waits for its reply before it counts as lost. */
#define ST_PROTO_EXCHANGE_TIMEOUT_MS 1000
/* An agent that has not registered this long after it started gives up. */
#define ST_PROTO_CONNECT_DEADLINE_MS 15000
/* Unacknowledged records one update carries at most (oldest first): bounds the message. */
#define ST_PROTO_RECORDS_PER_UPDATE 30
/* An agent that hears nothing from its coordinator this long stops its load and exits. */
#define ST_PROTO_AGENT_SILENCE_MS 3000
/* In-flight requests may complete this long after the end of the profile at most (less when
 * the plan's request timeout is shorter). */
#define ST_PROTO_DRAIN_MAX_MS 5000

/* ---- heartbeats --------------------------------------------------------------------------- */

/* The heartbeats an agent accepts in a reply; anything else is ignored. */
#define ST_PROTO_HEARTBEAT_MIN_MS 50
#define ST_PROTO_HEARTBEAT_MAX_MS 2000
/* Before the start (and an agent's own, until a reply says otherwise). */
#define ST_PROTO_HEARTBEAT_MS 500
/* While running, each agent's update carries its new second once a second: a heartbeat as slow
 * as that halves the coordinator's work, and the silence bound still notices a lost agent. */
#define ST_PROTO_RUN_HEARTBEAT_MS 1000

/* ---- the coordinator ---------------------------------------------------------------------- */

/* An agent silent this long is lost (its share is re-planned). */
#define ST_PROTO_COORD_SILENCE_MS 2500
/* A second is final when every agent reported it, or this long after its end. */
#define ST_PROTO_GRACE_MS 1500
/* The start instant is this far ahead of the tick that sets it. */
#define ST_PROTO_START_LEAD_MS 500
/* A re-plan applies this long after the run heartbeat from now: every agent hears of it first. */
#define ST_PROTO_REPLAN_MARGIN_MS 250
/* A record for a second this far past the first second not yet final belongs to no run. */
#define ST_PROTO_SECOND_HORIZON 100000

#endif
