/*
 * report.h - the typed report of a coordinated run: everything the outputs say about it.
 *
 * The coordinator's core builds it (st_coord_report, coord.h) at the end of the run, or at any
 * moment while it runs; the outputs (output.h: the progress table, the summary JSON, the SQS
 * summary message; next the terminal UI, JUnit and HTML) read it instead of the core or of a JSON
 * tree. A report is a snapshot: it owns every string, array and histogram it holds, stays valid
 * after the core is freed, and is released with st_report_fini.
 *
 * st_report_json turns it into the summary object of `stampede run --summary` (README "Outputs",
 * docs/results-schema.md): the keys of common/summary.h (latency_with_timeouts_ms among them when
 * plan.timeout_ms is set), then run_id, start_skew_ms, agents[],
 * late_records, duplicate_records, malformed_messages (out_of_memory_records after them when
 * some were), incomplete_seconds (in a degraded run, or when some second is incomplete), and,
 * once the run ended, status (and error when it failed), rate_changes[] (when the rate was
 * changed live: {at_s, from_rps, to_rps, by}), and last thresholds[] (when the plan has
 * thresholds), in that order and format, and requests_by_name (plans with more than one
 * request name: st_report_by_name_json) after them. A lost agent's row also says why (reason),
 * when known.
 *
 * The per-second rows (st_report_second) are also what the core hands to on_second with each
 * finished second, so a streaming output and a final one read the same numbers.
 *
 * Threading: a report is plain data; one owner at a time. Functions here are reentrant.
 */
#ifndef ST_COORD_REPORT_H
#define ST_COORD_REPORT_H

#include "hist.h"
#include "names.h"
#include "stats.h"
#include "summary.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum st_report_status {
    ST_REPORT_RUNNING = 0, /* not ended yet (a report taken while the run goes on) */
    ST_REPORT_COMPLETED,   /* the profile ran to its end, every agent with it */
    ST_REPORT_STOPPED,     /* stopped after the start (st_coord_stop) */
    ST_REPORT_FAILED,      /* never started, or abandoned: see error */
    ST_REPORT_DEGRADED,    /* ran to its end, but agents were lost or seconds are incomplete
                            * (incomplete_seconds, and each lost agent's reason) */
} st_report_status;

/* "running", "completed", "stopped", "failed", "degraded". */
const char *st_report_status_name(st_report_status s);

/* An agent's state as it last reported it. */
typedef enum st_report_agent_state {
    ST_REPORT_AGENT_UNKNOWN = 0,
    ST_REPORT_AGENT_IDLE,
    ST_REPORT_AGENT_READY,
    ST_REPORT_AGENT_RUNNING,
    ST_REPORT_AGENT_DRAINING,
    ST_REPORT_AGENT_DONE,
    ST_REPORT_AGENT_FAILED,
    ST_REPORT_AGENT_LOST, /* lost (silent, exited, or stopped its load on its own); not failed */
} st_report_agent_state;

/* "unknown", "idle", "ready", "running", "draining", "done", "failed", "lost". */
const char *st_report_agent_state_name(st_report_agent_state s);

/* A latency distribution's figures, in microseconds (the JSON carries milliseconds). */
typedef struct st_report_latency {
    uint64_t count;
    uint64_t min_us, p50_us, p90_us, p99_us, p999_us, max_us;
    double mean_us;
} st_report_latency;

/* The figures of histogram h (all 0 when it is empty: count 0 means "no responses", and the
 * outputs say so instead of printing zeros). */
void st_report_latency_of(st_report_latency *out, const st_hist *h);

/* The figures of h with `timeouts` more values at timeout_ms: the latency view in which a
 * timed-out request counts at its timeout (a lower bound of what it would have taken), computed
 * exactly from the merged histogram and the timeout count. Returns 0 or ST_ENOMEM (*out zeroed). */
int st_report_latency_with_timeouts(st_report_latency *out, const st_hist *h, uint64_t timeouts,
                                    uint32_t timeout_ms);

/* One finished second of the whole run. */
typedef struct st_report_second {
    uint32_t second;           /* from the common start: it covers [second, second + 1) s */
    double target_rps;         /* what the profile asked for in it; 0 in closed loop */
    int agents;                /* agents alive when it was handed out */
    st_counts counts;          /* merged over the agents; inflight is their sum when it closed */
    st_report_latency latency; /* from the intended send instant */
    st_report_latency latency_uncorrected; /* from the actual send */
    st_report_latency latency_with_timeouts; /* latency, each timeout counted at the timeout
                                              * (st_report_latency_with_timeouts; the core fills
                                              * it beside st_report_second_of) */
} st_report_second;

/* Fills row from a second's merged stats. */
void st_report_second_of(st_report_second *row, uint32_t second, double target_rps,
                         const st_stats *s, int agents);

/*
 * The seconds of a run as the core keeps them until the end: the only part of the coordinator's
 * memory that grows with the run's duration. A finished second's histograms are released when it
 * is handed out; what stays is its row, packed losslessly (integers as base-128 varints, doubles
 * as their 8 bytes, the view with timeouts left out when it equals the plain one) into 64 KiB
 * chunks that are filled in place and never copied. A second at a steady load costs about 75
 * bytes (25 more when it had timeouts) where an st_report_second takes 320: some 270 KB an hour,
 * 6.5 MB a day. No row packs to more than ST_REPORT_SERIES_ROW_MAX bytes.
 *
 * Threading: one owner at a time (the core's owner thread: st_coord_tick appends,
 * st_coord_report reads).
 */
typedef struct st_report_series st_report_series;

#define ST_REPORT_SERIES_CHUNK   65536 /* bytes taken at a time, in the chunk's own memory */
#define ST_REPORT_SERIES_ROW_MAX 403   /* bytes of a row with every field at its largest */

/* An empty series. Returns 0 or ST_ENOMEM. */
int st_report_series_new(st_report_series **out);
void st_report_series_free(st_report_series *s);

/* Appends a copy of row. Returns 0, or ST_ENOMEM: s is unchanged (without that row). */
int st_report_series_append(st_report_series *s, const st_report_second *row);

/* Every row appended, unpacked in order into a new array of st_report_series_count rows that the
 * caller frees (NULL when there are none), each field as it was appended (padding zeroed).
 * Returns 0, or ST_ENOMEM (*out NULL). */
int st_report_series_rows(const st_report_series *s, st_report_second **out);

size_t st_report_series_count(const st_report_series *s);

/* The bytes of the packed rows. */
size_t st_report_series_packed(const st_report_series *s);

/* The bytes the series holds: ST_REPORT_SERIES_CHUNK for each chunk begun. */
size_t st_report_series_bytes(const st_report_series *s);

/* What the run was asked to do. */
typedef struct st_report_plan {
    bool closed_loop;
    double duration_s;     /* planned length */
    double requests;       /* requests the profile asks for over it (live rate changes included);
                            * 0 in closed loop */
    double average_rps;    /* requests / duration_s */
    int expected_agents;   /* the run started when this many registered */
    int threads_per_agent; /* 0: each agent ran its own capacity */
    uint32_t timeout_ms;   /* every request's timeout, from its send */
    char *engine;          /* as asked: auto, curl, fast or h2 */
    int connections;       /* the connection cap of each agent */
    int late_ms;           /* a send later than this after its instant is late */
    double send_window_s;  /* open loop: at most one wake-up per window (0: one per request) */
    bool http2;
    int streams;           /* HTTP/2 streams per connection */
    bool insecure;         /* TLS certificates not verified */
} st_report_plan;

/* One agent that registered, lost or not. */
typedef struct st_report_agent {
    uint32_t id; /* 1-based, in registration order */
    char *name, *host, *version;
    char *task;              /* its ECS task ARN, "" elsewhere */
    char *availability_zone; /* "" when unknown */
    char *task_definition;   /* ECS: "family:revision", "" elsewhere */
    double cpu_vcpus;        /* ECS: the task's CPU limit, 0 elsewhere */
    uint32_t pid, cores, threads;
    uint32_t weight;  /* its part of the split: the threads it runs */
    double share_rps; /* the average rate of its current share; 0 without one (lost) */
    st_counts counts; /* what its records added up to: sent, ok and the failure classes */
    bool lost;
    st_report_agent_state state;
    char *error; /* why it failed, "" otherwise */
    char *lost_reason; /* why it was lost, "" otherwise */
    double clock_offset_ms, clock_rtt_ms;
    uint64_t first_send_coord_ns; /* its realised start in coordinator time; 0 before it sent */
    /* The p99 of its latest record with responses (second p99_second): the terminal UI's
     * agents' table. have_p99 false before one came, without st_coord_cfg.agent_p99, and in a
     * report read back from JSON. */
    bool have_p99;
    uint32_t p99_second;
    double p99_ms, p99_uncorrected_ms;
} st_report_agent;

/* A threshold's verdict (coordinator/threshold.h fills these at the end of the run). */
typedef struct st_report_threshold {
    char *expression;  /* as written */
    const char *unit;  /* "ms" or "ratio" (static) */
    const char *op;    /* "<", "<=", ">", ">=" (static) */
    double limit;      /* in unit */
    bool have_value;   /* false: nothing to measure (no responses, a ratio over nothing) */
    double observed;   /* in unit */
    bool pass;
    bool aborted;      /* it stopped the run ("abort after"): then it fails */
    uint32_t aborted_at; /* when it stopped the run: run time in s at the end of the second whose
                          * evaluation asked for the stop */
} st_report_threshold;

/* A live change of the total rate (st_coord_change_rate_by). */
typedef struct st_report_rate_change {
    double at_s;     /* from the start instant: the new rate holds from then on */
    double from_rps; /* the profile's rate there before the change */
    double to_rps;
    const char *by;  /* "key" (the terminal UI) or "api" (static) */
} st_report_rate_change;

typedef struct st_report {
    char *run_id;
    st_report_status status;
    char *error; /* why the run failed (ST_REPORT_FAILED), "" otherwise */
    st_report_plan plan;

    double duration_s;         /* the measured window: the profile's length, or until the stop */
    double target_requests;    /* requests the profile asked for in it; 0 in closed loop */
    st_stats total;            /* every record taken: the seconds, the late records, open seconds */
    st_report_latency latency; /* of total.lat */
    st_report_latency latency_uncorrected; /* of total.lat_raw */
    st_report_latency latency_with_timeouts; /* of total.lat, each of total.c.err_timeout
                                              * counted at plan.timeout_ms */

    bool have_start_skew; /* some agent sent (false: nothing was sent) */
    double start_skew_ms; /* the spread of the agents' realised starts, coordinator time */
    bool have_clock_error_bound; /* some agent (on ECS) gave its clock's error bound */
    double clock_error_bound_ms; /* the largest of them */

    st_report_agent *agents;
    size_t n_agents;
    int agents_lost;

    st_report_second *seconds; /* the seconds handed out so far, in order, unpacked from the
                                * core's series (st_report_series) for this report */
    size_t n_seconds;

    /* Seconds of the run that lack load or records of some agent: from the first second a lost
     * agent did not report (or stopped its load in) to the last one its share was its own,
     * ascending, each once. */
    uint32_t *incomplete_seconds;
    size_t n_incomplete;

    uint64_t late_records;       /* arrived after their second was handed out (in total) */
    uint64_t unmerged_records;   /* out of memory: in total, missing from their second; the JSON
                                  * has "out_of_memory_records" only when it is not 0 */
    uint64_t duplicate_records;  /* re-sent records ignored */
    uint64_t malformed_messages; /* foreign or malformed messages and records dropped */

    st_report_threshold *thresholds; /* the plan's thresholds, in order; none without */
    size_t n_thresholds;

    st_report_rate_change *rate_changes; /* in the order they were made; the JSON has
                                          * "rate_changes" only when there are some */
    size_t n_rate_changes;
    /* Plans with more than one request name: the names (common/names.h order), and
     * total.n_names == n_names parts (st_report_name_view). */
    char **names;
    size_t n_names;
} st_report;

/* Releases what r owns and zeroes it; a zeroed report is a no-op. */
void st_report_fini(st_report *r);

/* The summary object described above; the caller frees it with cJSON_Delete. NULL when out of
 * memory. */
cJSON *st_report_json(const st_report *r);

/* The whole-run figures of r as summary.h renders them (st_summary_print, st_summary_json); the
 * result points into r and lives as long as r does. */
st_summary st_report_summary(const st_report *r);

/* Name i's part of the total as stats to read (borrowed from r: never fini'ed, never merged into;
 * second 0). i < r->n_names. */
st_stats st_report_name_view(const st_report *r, size_t i);

/* The requests_by_name object: name -> {"requests": {total, ok, failed, sent, late, dropped},
 * "errors": {the summary's classes}, "latency_ms": {...}, "latency_uncorrected_ms": {...}}, the
 * blocks as in the summary (common/summary.h). NULL when the plan has one name or out of memory. */
cJSON *st_report_by_name_json(const st_report *r);

/* Copies the plan's names kept apart (st_names_kept) into r->names and gives r->total a part for
 * each. Returns 0 or ST_ENOMEM. */
int st_report_names_of(st_report *r, const st_names *names);

#endif
