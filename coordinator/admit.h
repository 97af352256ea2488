/*
 * admit.h - the coordinator's side of the agent protocol: each request decoded, admitted or
 * refused, and answered.
 *
 * One request, one reply (proto/stampede.proto, agent/remote.h): a clock ping gets a pong;
 * a registration is checked against the token (compared in constant time) and admitted while the
 * run waits for its agents, or while running when late joiners are allowed (they get a share the
 * way a re-split gives one, share.h); an update refreshes the agent's state and clock, hands its
 * records to the merge window (merge.h) and is answered with what the agent must do next:
 * prepare (the plan and its share), a new assignment, the start instant, stop, and whether it is
 * done. Another run's messages, unknown or lost agents and wrong tokens are refused with a reason.
 *
 * Called by st_coord_handle (coord.h) from any thread: st_admit_handle takes the core's lock
 * itself, after the work that needs nothing shared (decoding, checking records).
 */
#ifndef ST_COORD_ADMIT_H
#define ST_COORD_ADMIT_H

#include "coord.h"

#include <stddef.h>
#include <stdint.h>

/* Same contract as st_coord_handle: 0 with a malloc'ed reply the caller frees and sends;
 * ST_EPROTO (not a message of ours: *reply is NULL, the request was counted as malformed);
 * ST_ENOMEM. */
int st_admit_handle(st_coord *c, const uint8_t *req, size_t len, uint8_t **reply,
                    size_t *reply_len);

#endif
