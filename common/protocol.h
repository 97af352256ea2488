/*
 * protocol.h - the numbers both sides of the control protocol (proto/stampede.proto) rely on.
 *
 * The wire format is in common/wire.h; the agent's side of the exchanges is common/session.h; the
 * coordinator's side is coordinator/coord.h. The bounds here depend on one another, so they are
 * written once: an agent stops its load on silence (ST_PROTO_AGENT_SILENCE_MS) before its
 * coordinator declares it lost (ST_PROTO_COORD_SILENCE_MS) and hands its share to others, both
 * above the slowest heartbeat an agent accepts, and a re-plan applies after every agent has had its
 * next update (run heartbeat + ST_PROTO_REPLAN_MARGIN_MS).
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
/* How long a registration waits for its reply before it counts as lost. */
#define ST_PROTO_EXCHANGE_TIMEOUT_MS 1000
/* How long an update waits for its reply before it counts as lost; a lost update goes again at
 * once. Short enough that one lost reply costs less than the margin below (an update is due at
 * least once a second while running: 1 s + 500 ms + the next exchange stays under the agent's
 * silence bound). */
#define ST_PROTO_UPDATE_TIMEOUT_MS 500
/* An agent that has not registered this long after it started gives up. */
#define ST_PROTO_CONNECT_DEADLINE_MS 15000
/* Unacknowledged records one update carries at most (oldest first): bounds the message. */
#define ST_PROTO_RECORDS_PER_UPDATE 30
/* The agent's dead-man: it sends a request of its load only while its last acknowledged exchange
 * was sent less than this long ago; past it, it drops its backlog (counted as dropped), stops its
 * load and keeps only its records to deliver. Counted from the *send* of that exchange, which the
 * coordinator received later, so the coordinator's own silence count (ST_PROTO_COORD_SILENCE_MS,
 * from the receipt) always started after it: an agent stops at least
 * ST_PROTO_COORD_SILENCE_MS - ST_PROTO_AGENT_SILENCE_MS = 500 ms before the coordinator may
 * declare it lost, and 500 ms + the re-plan lead before its share goes to others. The margin
 * covers the coordinator's tick (50 ms) and clock rate differences. An agent that was paused and
 * resumes finds itself past the bound before its first send, and never sends its backlog. */
#define ST_PROTO_AGENT_SILENCE_MS 2000
/* After its load stopped on silence, an agent keeps sending its unacknowledged records this long
 * (a coordinator that was paused takes them when it resumes), then exits. */
#define ST_PROTO_DELIVERY_MS 30000
/* How many times an agent registers again when the coordinator says it does not know it ("register
 * again"), before it gives up: once is what a coordinator that lost track of it needs; a
 * coordinator that keeps saying so is not going to take it. */
#define ST_PROTO_REREGISTER_MAX 2
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

/* An agent silent this long is lost (its share is re-planned). Must stay above
 * ST_PROTO_AGENT_SILENCE_MS (see there). */
#define ST_PROTO_COORD_SILENCE_MS 2500
/* A coordinator whose own ticks (every 50 ms) are this far apart was paused or starved itself:
 * that time does not count as its agents' silence, and the seconds it missed wait a grace for
 * the agents' records before they are final. */
#define ST_PROTO_COORD_STALL_MS 1000
/* A second is final when every agent reported it, or this long after its end. */
#define ST_PROTO_GRACE_MS 1500
/* The start instant is this far ahead of the tick that sets it. */
#define ST_PROTO_START_LEAD_MS 500
/* A re-plan applies this long after the run heartbeat from now: every agent hears of it first. */
#define ST_PROTO_REPLAN_MARGIN_MS 250
/* A record for a second this far past the first second not yet final belongs to no run. */
#define ST_PROTO_SECOND_HORIZON 100000

#endif
