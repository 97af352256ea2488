/*
 * fuzz_seeds COORD_DIR AGENT_DIR: writes the seed inputs of fuzz_coord_wire and fuzz_agent_reply
 * that cannot be typed by hand (packed protobuf messages in their framing). The committed
 * corpus/fuzz_coord_wire/ and corpus/fuzz_agent_reply/ came from it.
 */
#include "clock.h"
#include "error.h"
#include "fuzz_common.h"
#include "hist.h"
#include "plan.h"
#include "profile.h"
#include "session.h"
#include "stats.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t g_buf[1 << 16];
static size_t g_len;

/* Appends one framed message: [clock step, 10 ms units][length, LE16][bytes]. */
static void frame(uint8_t step, Stampede__Envelope *env)
{
    env->version = ST_PROTOCOL_VERSION;
    uint8_t *b;
    size_t n;
    if (st_wire_pack(env, &b, &n) != 0 ||
        st_fuzz_frame_put(g_buf, sizeof(g_buf), &g_len, step, b, n) != 0) {
        abort();
    }
    free(b);
}

static void flush(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(g_buf, 1, g_len, f) != g_len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    g_len = 0;
}

/* The Register of the agent the fuzzers speak as, made by its session as an agent makes it. */
static void reg(uint8_t step)
{
    uint64_t now = 0;
    st_clock clock = {st_clock_fake_now, &now};
    st_session_cfg cfg;
    st_fuzz_session_cfg(&cfg, &clock, "seed", 1234, 0);
    st_session *s = NULL;
    uint8_t *b = NULL;
    size_t n = 0;
    int timeout_ms;
    st_session_kind kind;
    if (st_session_new(&s, &cfg) != 0 || st_session_request(s, &b, &n, &timeout_ms, &kind) != 0 ||
        kind != ST_SESSION_REGISTER ||
        st_fuzz_frame_put(g_buf, sizeof(g_buf), &g_len, step, b, n) != 0) {
        abort();
    }
    free(b);
    st_session_free(s);
}

static void ping(uint8_t step)
{
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    Stampede__ClockPing p = STAMPEDE__CLOCK_PING__INIT;
    env.run_id = "";
    env.body_case = STAMPEDE__ENVELOPE__BODY_CLOCK_PING;
    env.clock_ping = &p;
    p.agent_ns = 5 * ST_NS_PER_S;
    frame(step, &env);
}

static void update(uint8_t step, Stampede__AgentState state, uint32_t first_second,
                   uint32_t n_records)
{
    st_arena a = {0};
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    Stampede__AgentUpdate u = STAMPEDE__AGENT_UPDATE__INIT;
    env.run_id = "fuzz-run";
    env.body_case = STAMPEDE__ENVELOPE__BODY_UPDATE;
    env.update = &u;
    u.agent_id = 1;
    u.instance_id = 42;
    u.epoch = 1;
    u.state = state;
    u.sent_agent_ns = 6 * ST_NS_PER_S;
    Stampede__SecondRecord *recs[8];
    for (uint32_t i = 0; i < n_records && i < 8; i++) {
        st_stats s;
        if (st_stats_init(&s) != 0) {
            abort();
        }
        /* Two request names (the fuzz plan's): name k % 2 takes request k. */
        if (st_stats_names(&s, 2) != 0) {
            abort();
        }
        s.second = first_second + i;
        for (int k = 0; k < 10; k++) {
            st_name_stats *p = &s.names[k % 2];
            p->c.sent++;
            p->c.bytes_in += 100;
            p->c.bytes_out += 50;
            if (k == 9) {
                p->c.http_5xx++;
            } else {
                p->c.ok++;
            }
            st_hist_record(p->lat, 1000 + 37 * (uint64_t)k);
            st_hist_record(p->lat_raw, 900 + 31 * (uint64_t)k);
        }
        for (int n = 0; n < 2; n++) {
            st_counts_add(&s.c, &s.names[n].c);
            st_hist_merge(s.lat, s.names[n].lat);
            st_hist_merge(s.lat_raw, s.names[n].lat_raw);
        }
        if (st_wire_record_build(&a, &s, first_second + i + 1, &recs[i]) != 0) {
            abort();
        }
        recs[i]->second = first_second + i;
        st_stats_fini(&s);
    }
    u.records = recs;
    u.n_records = n_records;
    frame(step, &env);
    st_arena_fini(&a);
}

/* ---- fuzz_agent_reply: what a coordinator answers an agent ---- */

static void reply(uint8_t step, Stampede__Envelope *env)
{
    env->run_id = "fuzz-run"; /* the agent learns it from the registration's reply */
    frame(step, env);
}

static void agent_seeds(const char *dir)
{
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    Stampede__ClockPong pong = STAMPEDE__CLOCK_PONG__INIT;
    env.body_case = STAMPEDE__ENVELOPE__BODY_CLOCK_PONG;
    env.clock_pong = &pong;
    pong.agent_ns = 1000 * ST_NS_PER_S;
    pong.recv_coord_ns = 2000 * ST_NS_PER_S;
    pong.send_coord_ns = 2000 * ST_NS_PER_S + 1000;
    reply(0, &env);

    Stampede__Envelope renv = STAMPEDE__ENVELOPE__INIT;
    Stampede__RegisterReply rr = STAMPEDE__REGISTER_REPLY__INIT;
    renv.body_case = STAMPEDE__ENVELOPE__BODY_REGISTER_REPLY;
    renv.register_reply = &rr;
    rr.agent_id = 1;
    reply(1, &renv);

    /* A Prepare with a real plan and share, then the start, a new share and the end. */
    static const char plan_json[] =
        "{\"url\": \"http://127.0.0.1:9/\", \"rate\": 10, \"duration\": 5}";
    st_plan plan;
    st_plan_init(&plan);
    char err[256];
    st_arena a = {0};
    Stampede__PlanSpec *spec = NULL;
    Stampede__Assignment asg = STAMPEDE__ASSIGNMENT__INIT;
    uint64_t residues[1] = {0};
    if (st_plan_parse(&plan, plan_json, sizeof(plan_json) - 1, "seed", err, sizeof(err)) != 0 ||
        st_plan_finish(&plan, 1, err, sizeof(err)) != 0 ||
        st_wire_plan_build(&a, &plan, "auto", &spec) != 0 ||
        st_wire_stages_build(&a, &plan.profile, &asg.stages, &asg.n_stages) != 0) {
        abort();
    }
    asg.epoch = 1;
    asg.period = 1;
    asg.residues = residues;
    asg.n_residues = 1;
    Stampede__Prepare prep = STAMPEDE__PREPARE__INIT;
    prep.plan = spec;
    prep.assignment = &asg;
    Stampede__Envelope cenv = STAMPEDE__ENVELOPE__INIT;
    Stampede__CoordReply cr = STAMPEDE__COORD_REPLY__INIT;
    cenv.body_case = STAMPEDE__ENVELOPE__BODY_REPLY;
    cenv.reply = &cr;
    cr.prepare = &prep;
    cr.heartbeat_ms = 500;
    reply(5, &cenv);

    Stampede__Start start = STAMPEDE__START__INIT;
    start.t0_coord_ns = 2001 * ST_NS_PER_S;
    cr.prepare = NULL;
    cr.start = &start;
    reply(50, &cenv);

    Stampede__Assignment asg2 = asg;
    asg2.epoch = 2;
    asg2.from_q = 20;
    cr.assignment = &asg2;
    cr.acked_seq = 1;
    reply(100, &cenv);

    Stampede__Stop stop = STAMPEDE__STOP__INIT;
    cr.assignment = NULL;
    cr.stop = &stop;
    cr.done = 1;
    reply(100, &cenv);
    flush(dir, "run");

    /* Regressions: an ack before any record was held, and a request whose body is empty. */
    reply(0, &env);
    reply(1, &renv);
    Stampede__CoordReply ack = STAMPEDE__COORD_REPLY__INIT;
    ack.acked_seq = 5;
    cenv.reply = &ack;
    reply(5, &cenv);
    spec->requests[0]->has_body = 1;
    spec->requests[0]->body.len = 0;
    spec->requests[0]->body.data = NULL;
    ack.prepare = &prep;
    reply(5, &cenv);
    flush(dir, "ack-nothing-empty-body");
    cenv.reply = &cr;

    Stampede__Envelope fenv = STAMPEDE__ENVELOPE__INIT;
    Stampede__Refused ref = STAMPEDE__REFUSED__INIT;
    fenv.body_case = STAMPEDE__ENVELOPE__BODY_REFUSED;
    fenv.refused = &ref;
    ref.reason = "unknown agent";
    ref.reregister = 1;
    reply(0, &env);
    reply(1, &fenv);
    flush(dir, "refused");
    st_arena_fini(&a);
    st_plan_fini(&plan);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: fuzz_seeds COORD_WIRE_DIR AGENT_REPLY_DIR\n");
        return 2;
    }
    agent_seeds(argv[2]);
    reg(0);
    flush(argv[1], "register");
    ping(0);
    reg(1);
    update(5, STAMPEDE__AGENT_STATE__AGENT_IDLE, 0, 0);
    flush(argv[1], "register-idle");
    reg(0);
    update(5, STAMPEDE__AGENT_STATE__AGENT_READY, 0, 0);
    update(100, STAMPEDE__AGENT_STATE__AGENT_RUNNING, 0, 1);
    update(100, STAMPEDE__AGENT_STATE__AGENT_RUNNING, 0, 2);
    update(100, STAMPEDE__AGENT_STATE__AGENT_DONE, 2, 3);
    flush(argv[1], "run");
    return 0;
}
