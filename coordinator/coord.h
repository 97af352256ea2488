/*
 * coord.h - the coordinator's core: agents, shares, the start instant, and exact merging.
 *
 * The core owns the run's state machine. Agents talk to it through st_coord_handle (one request,
 * one reply: see proto/stampede.proto and agent/remote.h); the program drives it with st_coord_tick
 * a few times per second, which moves the run along and hands finished seconds to the on_second
 * callback. The core never does I/O itself: the nng server (server.h) carries bytes in and out,
 * and outputs (terminal, files, SQS) live behind the callback.
 *
 * The run: WAITING for the expected agents to register (token checked) -> PREPARING: each gets the
 * plan and its share (weights by capacity: the agent's threads; split.h makes the shares add up
 * exactly to the profile), and must answer READY before the deadline, else the run is abandoned,
 * never started partially -> RUNNING from the start instant t0 (the prepare acknowledgements plus
 * a lead, in coordinator time; every agent converts it with its measured clock offset) ->
 * DRAINING after the profile's end (or a stop), until every agent reported its last record ->
 * DONE. An agent silent for silence_ns while running (or whose process the launcher saw exit) is
 * marked lost and its share moves to the survivors from the first global request due a re-plan
 * lead ahead (run_heartbeat_ms + 250 ms: every agent hears of the new split with its next update); an
 * agent registering while running (when late joiners are allowed) gets a share the same way.
 *
 * Merging: records carry per-agent sequence numbers; a record is taken exactly once (duplicates
 * from re-sends are ignored) and is added bucket by bucket to its second and to the run's total.
 * Second k is final when every agent still counted has reported it, or grace_ns after it ended;
 * a record arriving later still counts in the total (and in late_records).
 *
 * Inside, one module per job, sharing the core's state (core.h): coord.c runs the state machine
 * and this API; admit.h answers the agents' requests; share.h splits the load and re-splits it;
 * merge.h takes records into seconds (on the window of common/window.h); report.h is the typed
 * report the outputs read (built in report.c).
 *
 * Threading: st_coord_handle may be called from several threads at once; st_coord_tick,
 * st_coord_stop and the accessors from the owner thread. on_second runs on the owner thread
 * inside st_coord_tick, without the core's lock held.
 */
#ifndef ST_COORD_H
#define ST_COORD_H

#include "clock.h"
#include "names.h"
#include "plan.h"
#include "report.h"
#include "stats.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct st_coord st_coord;

typedef enum {
    ST_COORD_WAITING = 0,
    ST_COORD_PREPARING,
    ST_COORD_RUNNING,
    ST_COORD_DRAINING,
    ST_COORD_DONE,
    ST_COORD_FAILED,
} st_coord_state;

/* A finished second of the whole run. */
typedef struct st_coord_second {
    uint32_t second;
    double target_rps;   /* what the profile asked for in this second */
    const st_stats *stats;
    int agents;          /* agents counted in this second (not lost) */
    const st_report_second *row; /* the same second as the report's series holds it */
    const st_names *names; /* the plan's request names: stats->names[i] is names->name[i]'s */
    /* stats and row are valid during the on_second call only. */
} st_coord_second;

typedef void (*st_coord_second_fn)(void *ctx, const st_coord_second *sec);

typedef struct st_coord_cfg {
    const st_plan *plan; /* finished; outlives the core */
    const char *engine;  /* the agents' engine: auto, curl or fast */
    int plan_threads;    /* > 0: every agent runs this many threads; 0: each its own capacity */
    const char *run_id;
    const char *token;
    int expected_agents;       /* the run starts when this many registered */
    bool accept_late_joiners;  /* agents registering while running get a share */
    uint64_t register_timeout_ns;
    uint64_t prepare_timeout_ns;
    uint64_t start_lead_ns;    /* from the last READY to t0 */
    uint64_t silence_ns;       /* an agent silent this long is lost */
    uint64_t grace_ns;         /* second k is final at most this long after it ended */
    uint64_t end_timeout_ns;   /* after the end (+ drain), stop waiting for last records */
    uint32_t heartbeat_ms;     /* how often agents send updates before the start and after it */
    uint32_t run_heartbeat_ms; /* while running, when every update carries a second anyway */
    const st_clock *clock;     /* NULL: the real monotonic clock */
    bool agent_p99;            /* read each agent's p99 from its records as they are taken
                                * (st_report_agent.p99_ms: the terminal UI's); default false */
    st_coord_second_fn on_second;
    void *ctx;
} st_coord_cfg;

/* Fills cfg with the defaults (everything but plan, run_id, token, expected_agents, callbacks). */
void st_coord_cfg_defaults(st_coord_cfg *cfg);

/* Returns 0, ST_EINVAL or ST_ENOMEM. */
int st_coord_new(st_coord **out, const st_coord_cfg *cfg);
void st_coord_free(st_coord *c);

/* Handles one request from an agent (the bytes of an nng message) and writes the reply into a
 * malloc'ed buffer the caller frees and sends. Returns 0 with a reply; ST_EPROTO when the bytes
 * are not a message of ours or are malformed (*reply is NULL: drop the request; it was counted);
 * ST_ENOMEM. Any thread. */
int st_coord_handle(st_coord *c, const uint8_t *req, size_t len, uint8_t **reply,
                    size_t *reply_len);

/* Moves the run along (deadlines, losses, the start, final seconds). Owner thread. */
void st_coord_tick(st_coord *c);

/* The launcher saw the agent process pid (on this host) exit: it is lost now, without waiting
 * for its silence. Owner thread. */
void st_coord_agent_exited(st_coord *c, int pid);

/* Stops the run: agents stop sending and drain; the run ends when they reported. Owner thread. */
void st_coord_stop(st_coord *c);

/* Changes the total rate from a re-plan lead ahead on (run_heartbeat_ms + 250 ms, or the start instant
 * when that is further ahead): a hold at rate_rps until the planned end. Returns 0, ST_ESTATE (not
 * running, stopping, closed loop, or the planned end within the lead) or ST_EINVAL (rate_rps
 * outside 0 .. ST_PROFILE_MAX_RPS). Owner thread. */
int st_coord_change_rate(st_coord *c, double rate_rps);

/* st_coord_change_rate, saying who asked: by is "key" (the terminal UI) or "api" (static; what
 * st_coord_change_rate says). A change made is logged and listed in the report's rate_changes
 * with the instant it applies from and the rate it replaced. Returns st_coord_change_rate's codes,
 * or ST_ENOMEM (nothing changed). Owner thread. */
int st_coord_change_rate_by(st_coord *c, double rate_rps, const char *by);

/* The total rate a change made now would replace: the profile's rate a re-plan lead ahead (or at
 * the start instant when that is further ahead), so that a change still pending counts. 0 before
 * the start instant is known and in closed loop. Owner thread. */
double st_coord_planned_rps(st_coord *c);

/* How long ago each agent was last heard from, in ms, in registration order, into out (at most
 * n; UINT32_MAX for an agent not heard from since it was lost). Returns the number of agents
 * registered (which may exceed n). Owner thread. */
size_t st_coord_heard_ago_ms(st_coord *c, uint32_t *out, size_t n);

st_coord_state st_coord_get_state(st_coord *c);
/* Why the run failed (ST_COORD_FAILED), or "". */
const char *st_coord_failure(st_coord *c);
/* Why a run failed, as the program maps it to an exit code (cmd_run.c does, in one place). */
typedef enum st_coord_failure_reason {
    ST_COORD_FAILURE_NONE = 0,     /* the run did not fail */
    ST_COORD_FAILURE_RUNTIME,      /* an agent could not run the plan or went silent before the
                                    * start, the plan was not acknowledged in time, out of memory */
    ST_COORD_FAILURE_REGISTRATION, /* the agents did not all register in time */
    ST_COORD_FAILURE_STOPPED,      /* stopped (st_coord_stop) before the start */
} st_coord_failure_reason;

/* "none", "runtime", "registration", "stopped". */
const char *st_coord_failure_reason_name(st_coord_failure_reason r);

/* Why the run failed: ST_COORD_FAILURE_NONE unless the state is ST_COORD_FAILED. Owner thread. */
st_coord_failure_reason st_coord_failure_reason_of(st_coord *c);

/* Agents registered and not lost. */
int st_coord_agents_alive(st_coord *c);
/* Messages and records the agents sent that the core dropped as malformed (bytes that are not a
 * message of ours, another run's updates, records that fail st_wire_record_check or lie far
 * beyond the run). Re-sent duplicates are not in it: the summary counts them apart. */
uint64_t st_coord_malformed(st_coord *c);

/* The run's typed report as it stands (report.h): at the end, or while running. On 0 *out is a
 * snapshot the caller releases with st_report_fini; ST_ENOMEM leaves *out untouched. Owner
 * thread. */
int st_coord_report(st_coord *c, st_report *out);

/* The run's summary: st_report_json of st_coord_report (st_summary keys plus run_id,
 * start_skew_ms, agents[], late_records, duplicate_records, malformed_messages, and status and
 * error once the run ended). The caller frees it. NULL when out of memory. Owner thread. */
cJSON *st_coord_summary(st_coord *c);

/* The merged total of every record taken so far (seconds handed out or still open, and late
 * records), built when called. Owner thread; valid until the next call of st_coord_total,
 * st_coord_report or st_coord_summary. */
const st_stats *st_coord_total(st_coord *c);
/* The measured window so far: the profile's duration, or until the stop. */
double st_coord_duration_s(st_coord *c);
/* Requests the profile asked for in that window. */
double st_coord_target_requests(st_coord *c);

#endif
