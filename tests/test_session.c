#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "clock.h"
#include "error.h"
#include "hist.h"
#include "log.h"
#include "protocol.h"
#include "session.h"
#include "stats.h"
#include "wire.h"

/*
 * The agent's session on a fake clock, against a coordinator played by hand: each test reads the
 * requests the session builds and answers them with the replies it needs.
 */

#define RUN_ID "run-session"
#define T0     (5000 * ST_NS_PER_S)

typedef struct fx {
    uint64_t now;            /* the agent's clock */
    int64_t coord_offset_ns; /* the agent's clock minus the coordinator's, in answer() */
    st_clock clock;
    st_session *s;
} fx;

static fx *fx_new(int clock_pings)
{
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->now = T0;
    f->clock = (st_clock){st_clock_fake_now, &f->now};
    st_session_cfg cfg;
    st_session_cfg_defaults(&cfg);
    cfg.clock = &f->clock;
    cfg.token = "tok";
    cfg.instance_id = 0xabc;
    cfg.name = "agent-a";
    cfg.host = "host-a";
    cfg.pid = 4321;
    cfg.cores = 8;
    cfg.threads = 3;
    cfg.version = "1.2.3";
    cfg.availability_zone = "eu-west-1a";
    cfg.clock_pings = clock_pings;
    assert_int_equal(st_session_new(&f->s, &cfg), 0);
    return f;
}

static void fx_free(fx *f)
{
    st_session_free(f->s);
    free(f);
}

/* The next request, decoded; its timeout and kind must be as given. */
static Stampede__Envelope *take_request(fx *f, st_session_kind want, int want_timeout_ms)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int timeout_ms = 0;
    st_session_kind kind;
    assert_int_equal(st_session_request(f->s, &buf, &len, &timeout_ms, &kind), 0);
    assert_int_equal(kind, want);
    assert_int_equal(timeout_ms, want_timeout_ms);
    int err = 1;
    Stampede__Envelope *e = st_wire_unpack(buf, len, NULL, &err);
    free(buf);
    assert_non_null(e);
    assert_int_equal(err, 0);
    return e;
}

/* Takes the next update and answers nothing: its exchange is lost, or still going. */
static void drop_update(fx *f)
{
    Stampede__Envelope *req = take_request(f, ST_SESSION_UPDATE, ST_PROTO_UPDATE_TIMEOUT_MS);
    stampede__envelope__free_unpacked(req, NULL);
}

static Stampede__AgentUpdate *update_of(Stampede__Envelope *e)
{
    assert_int_equal(e->body_case, STAMPEDE__ENVELOPE__BODY_UPDATE);
    return e->update;
}

/* Packs env (version and, unless set, the run id filled in: STAMPEDE__ENVELOPE__INIT leaves
 * protobuf-c's empty string, which a test's own "" is not) and hands it to the session. */
static int give(fx *f, Stampede__Envelope *env, st_session_cmds *cmds)
{
    env->version = ST_PROTOCOL_VERSION;
    if (!env->run_id || env->run_id == protobuf_c_empty_string) {
        env->run_id = RUN_ID;
    }
    uint8_t *buf;
    size_t len;
    assert_int_equal(st_wire_pack(env, &buf, &len), 0);
    int rc = st_session_reply(f->s, buf, len, cmds);
    free(buf);
    return rc;
}

/* Hands the session a pong with nothing in it (to an update: a reply of the wrong kind). */
static int give_empty_pong(fx *f, st_session_cmds *cmds)
{
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    Stampede__ClockPong p = STAMPEDE__CLOCK_PONG__INIT;
    env.body_case = STAMPEDE__ENVELOPE__BODY_CLOCK_PONG;
    env.clock_pong = &p;
    return give(f, &env, cmds);
}

/* Answers a ping as a coordinator whose clock is the agent's minus offset_ns would, after the
 * ping spent up_ns on the way there and down_ns on the way back. */
static void pong(fx *f, int64_t offset_ns, uint64_t up_ns, uint64_t down_ns)
{
    Stampede__Envelope *req = take_request(f, ST_SESSION_PING, ST_PROTO_PING_TIMEOUT_MS);
    assert_int_equal(req->body_case, STAMPEDE__ENVELOPE__BODY_CLOCK_PING);
    assert_string_equal(req->run_id, "");
    assert_int_equal(req->clock_ping->agent_ns, f->now);
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    Stampede__ClockPong p = STAMPEDE__CLOCK_PONG__INIT;
    env.body_case = STAMPEDE__ENVELOPE__BODY_CLOCK_PONG;
    env.clock_pong = &p;
    env.run_id = "";
    p.agent_ns = req->clock_ping->agent_ns;
    f->now += up_ns;
    p.recv_coord_ns = (uint64_t)((int64_t)f->now - offset_ns);
    p.send_coord_ns = p.recv_coord_ns;
    f->now += down_ns;
    st_session_cmds cmds;
    assert_int_equal(give(f, &env, &cmds), 0);
    stampede__envelope__free_unpacked(req, NULL);
}

/* Takes the next request (of this kind, with this timeout, and with this body unless want_body
 * is 0) and answers it with env under run_id (NULL: the run's own); what st_session_reply
 * returned. */
static int answer_next(fx *f, st_session_kind kind, int timeout_ms, int want_body,
                       Stampede__Envelope *env, const char *run_id)
{
    Stampede__Envelope *req = take_request(f, kind, timeout_ms);
    if (want_body) {
        assert_int_equal(req->body_case, want_body);
    }
    stampede__envelope__free_unpacked(req, NULL);
    env->run_id = (char *)run_id;
    st_session_cmds cmds;
    return give(f, env, &cmds);
}

/* Refuses the next request (this kind, this timeout), telling the agent to register again or
 * not. */
static int refuse(fx *f, st_session_kind kind, int timeout_ms, const char *run_id,
                  const char *reason, bool reregister)
{
    Stampede__Refused no = STAMPEDE__REFUSED__INIT;
    no.reason = (char *)reason;
    no.reregister = reregister;
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    env.body_case = STAMPEDE__ENVELOPE__BODY_REFUSED;
    env.refused = &no;
    return answer_next(f, kind, timeout_ms, 0, &env, run_id);
}

/* Answers the Register: agent `id`. */
static int reply_register(fx *f, uint32_t id, const char *run_id)
{
    Stampede__RegisterReply rr = STAMPEDE__REGISTER_REPLY__INIT;
    rr.agent_id = id;
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    env.body_case = STAMPEDE__ENVELOPE__BODY_REGISTER_REPLY;
    env.register_reply = &rr;
    return answer_next(f, ST_SESSION_REGISTER, ST_PROTO_EXCHANGE_TIMEOUT_MS,
                       STAMPEDE__ENVELOPE__BODY_REGISTER, &env, run_id);
}

/* Takes the Register and accepts it as agent `id`. */
static void accept_register(fx *f, uint32_t id)
{
    assert_int_equal(reply_register(f, id, NULL), 0);
    assert_int_equal(st_session_get_phase(f->s), ST_SESSION_REGISTERED);
}

/* A session registered without pings, as agent 3. */
static fx *fx_registered(void)
{
    fx *f = fx_new(0);
    accept_register(f, 3);
    return f;
}

/* Answers the update in req with *rep (the clock echo filled in when echo is set). */
static int answer(fx *f, const Stampede__Envelope *req, Stampede__CoordReply *rep, bool echo,
                  st_session_cmds *cmds)
{
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    env.body_case = STAMPEDE__ENVELOPE__BODY_REPLY;
    env.reply = rep;
    if (echo) {
        rep->echo_agent_ns = req->update->sent_agent_ns;
        rep->recv_coord_ns = (uint64_t)((int64_t)f->now - f->coord_offset_ns);
        rep->send_coord_ns = rep->recv_coord_ns;
    }
    return give(f, &env, cmds);
}

/* One update answered with *rep; returns what st_session_reply returned. */
static int round_trip(fx *f, Stampede__CoordReply *rep, st_session_cmds *cmds)
{
    Stampede__Envelope *req = take_request(f, ST_SESSION_UPDATE, ST_PROTO_UPDATE_TIMEOUT_MS);
    int rc = answer(f, req, rep, true, cmds);
    stampede__envelope__free_unpacked(req, NULL);
    return rc;
}

static void push_second(fx *f, uint32_t second, uint64_t want_seq)
{
    st_stats s;
    assert_int_equal(st_stats_init(&s), 0);
    s.second = second;
    st_hist_record_n(s.lat, 1000 + second, 3);
    st_hist_record_n(s.lat_raw, 900 + second, 3);
    s.c.sent = 3;
    s.c.ok = 3;
    uint64_t seq = 0;
    assert_int_equal(st_session_push(f->s, &s, &seq), 0);
    assert_int_equal(seq, want_seq);
    st_stats_fini(&s);
}

static void assert_seqs(const Stampede__AgentUpdate *u, uint64_t first, size_t n)
{
    assert_int_equal(u->n_records, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(u->records[i]->seq, first + i);
        assert_int_equal(u->records[i]->second, (uint32_t)(first + i - 1));
        assert_int_equal(st_wire_record_check(u->records[i]), 0);
    }
}

/* The next update carries the n records from seq first on; it is answered acknowledging acked. */
static void update_acked(fx *f, uint64_t first, size_t n, uint64_t acked)
{
    Stampede__Envelope *req = take_request(f, ST_SESSION_UPDATE, ST_PROTO_UPDATE_TIMEOUT_MS);
    assert_seqs(update_of(req), first, n);
    Stampede__CoordReply rep = STAMPEDE__COORD_REPLY__INIT;
    rep.acked_seq = acked;
    st_session_cmds cmds;
    assert_int_equal(answer(f, req, &rep, true, &cmds), 0);
    stampede__envelope__free_unpacked(req, NULL);
}

/* ---- creation ------------------------------------------------------------------------------ */

static void test_session_new_refuses_bad_cfg(void **state)
{
    (void)state;
    st_session_cfg cfg;
    st_session_cfg_defaults(&cfg);
    assert_ptr_equal(cfg.clock, &st_clock_real);
    assert_int_equal(cfg.clock_pings, ST_PROTO_CLOCK_PINGS);
    assert_int_equal(cfg.connect_deadline_ms, ST_PROTO_CONNECT_DEADLINE_MS);
    st_session *s = (st_session *)&cfg; /* a sentinel: must not be overwritten on error */
    cfg.clock = NULL;
    assert_int_equal(st_session_new(&s, &cfg), ST_EINVAL);
    st_session_cfg_defaults(&cfg);
    cfg.clock_pings = -1;
    assert_int_equal(st_session_new(&s, &cfg), ST_EINVAL);
    cfg.clock_pings = ST_PROTO_CLOCK_WINDOW + 1;
    assert_int_equal(st_session_new(&s, &cfg), ST_EINVAL);
    assert_ptr_equal(s, (st_session *)&cfg);
    st_session_free(NULL);
}

/* ---- clock samples and registration -------------------------------------------------------- */

static void test_session_clock_samples_then_register(void **state)
{
    (void)state;
    fx *f = fx_new(3);
    assert_int_equal(st_session_get_phase(f->s), ST_SESSION_PINGING);
    assert_int_equal(st_session_next_due(f->s), 0);
    /* Offset 7 ms; the second sample has the shortest round trip and the least asymmetry. */
    pong(f, 7 * ST_NS_PER_MS, 900 * ST_NS_PER_US, 100 * ST_NS_PER_US);
    assert_int_equal(st_session_offset_ns(f->s), 7 * ST_NS_PER_MS - 400 * ST_NS_PER_US);
    assert_int_equal(st_session_rtt_ns(f->s), ST_NS_PER_MS);
    pong(f, 7 * ST_NS_PER_MS, 60 * ST_NS_PER_US, 40 * ST_NS_PER_US);
    assert_int_equal(st_session_get_phase(f->s), ST_SESSION_PINGING);

    /* A pong to another ping is no sample. */
    Stampede__Envelope *req = take_request(f, ST_SESSION_PING, ST_PROTO_PING_TIMEOUT_MS);
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    Stampede__ClockPong p = STAMPEDE__CLOCK_PONG__INIT;
    env.body_case = STAMPEDE__ENVELOPE__BODY_CLOCK_PONG;
    env.clock_pong = &p;
    env.run_id = "";
    p.agent_ns = req->clock_ping->agent_ns - 1;
    st_session_cmds cmds;
    assert_int_equal(give(f, &env, &cmds), 0);
    stampede__envelope__free_unpacked(req, NULL);
    assert_int_equal(st_session_pings(f->s), 2);
    /* A lost ping is no sample either; a slower third one does not move the offset. */
    uint8_t *buf;
    size_t len;
    int timeout_ms;
    assert_int_equal(st_session_request(f->s, &buf, &len, &timeout_ms, NULL), 0);
    free(buf);
    st_session_lost(f->s);
    pong(f, 7 * ST_NS_PER_MS, 2 * ST_NS_PER_MS, 2 * ST_NS_PER_MS);
    assert_int_equal(st_session_pings(f->s), 3);
    assert_int_equal(st_session_offset_ns(f->s), 7 * ST_NS_PER_MS - 10 * ST_NS_PER_US);
    assert_int_equal(st_session_rtt_ns(f->s), 100 * ST_NS_PER_US);

    /* Registering: who the agent is and its clock. */
    assert_int_equal(st_session_get_phase(f->s), ST_SESSION_REGISTERING);
    req = take_request(f, ST_SESSION_REGISTER, ST_PROTO_EXCHANGE_TIMEOUT_MS);
    assert_string_equal(req->run_id, "");
    const Stampede__Register *r = req->register_;
    assert_string_equal(r->token, "tok");
    assert_int_equal(r->instance_id, 0xabc);
    assert_string_equal(r->name, "agent-a");
    assert_string_equal(r->host, "host-a");
    assert_int_equal(r->pid, 4321);
    assert_int_equal(r->cores, 8);
    assert_int_equal(r->threads, 3);
    assert_string_equal(r->version, "1.2.3");
    assert_string_equal(r->task_arn, "");
    assert_string_equal(r->availability_zone, "eu-west-1a");
    assert_int_equal(r->clock_offset_ns, 7 * ST_NS_PER_MS - 10 * ST_NS_PER_US);
    assert_int_equal(r->clock_rtt_ns, 100 * ST_NS_PER_US);
    stampede__envelope__free_unpacked(req, NULL);
    /* The reply was lost: the same Register goes again. */
    st_session_lost(f->s);
    assert_int_equal(st_session_get_phase(f->s), ST_SESSION_REGISTERING);
    accept_register(f, 9);
    assert_int_equal(st_session_agent_id(f->s), 9);
    assert_string_equal(st_session_run_id(f->s), RUN_ID);
    /* The first update goes at once, with the run id and the agent's identity. */
    assert_int_equal(st_session_next_due(f->s), 0);
    req = take_request(f, ST_SESSION_UPDATE, ST_PROTO_UPDATE_TIMEOUT_MS);
    assert_string_equal(req->run_id, RUN_ID);
    Stampede__AgentUpdate *u = update_of(req);
    assert_int_equal(u->agent_id, 9);
    assert_int_equal(u->instance_id, 0xabc);
    assert_int_equal(u->state, STAMPEDE__AGENT_STATE__AGENT_IDLE);
    assert_int_equal(u->sent_agent_ns, f->now);
    assert_int_equal(u->n_records, 0);
    stampede__envelope__free_unpacked(req, NULL);
    fx_free(f);
}

static void test_session_register_refused(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    assert_int_equal(
        refuse(f, ST_SESSION_REGISTER, ST_PROTO_EXCHANGE_TIMEOUT_MS, "", "wrong token", false),
        ST_EAUTH);
    assert_string_equal(st_session_refusal(f->s), "wrong token");
    assert_int_equal(st_session_get_phase(f->s), ST_SESSION_ENDED);
    uint8_t *buf = NULL;
    size_t len;
    int timeout_ms;
    assert_int_equal(st_session_request(f->s, &buf, &len, &timeout_ms, NULL), ST_ESTATE);
    assert_null(buf);
    fx_free(f);

    /* A registration reply without a run id is no registration: the Register goes again. */
    f = fx_new(0);
    assert_int_equal(reply_register(f, 0, ""), 0);
    assert_int_equal(st_session_get_phase(f->s), ST_SESSION_REGISTERING);
    /* Nor a refusal without a reason unexplained. */
    assert_int_equal(refuse(f, ST_SESSION_REGISTER, ST_PROTO_EXCHANGE_TIMEOUT_MS, "", "", false),
                     ST_EAUTH);
    assert_string_equal(st_session_refusal(f->s), "no reason given");
    fx_free(f);
}

/* The coordinator's refusal of an update, telling the agent to register again or not. */
static int refuse_update(fx *f, const char *reason, bool reregister)
{
    return refuse(f, ST_SESSION_UPDATE, ST_PROTO_UPDATE_TIMEOUT_MS, NULL, reason, reregister);
}

static void test_session_register_again(void **state)
{
    (void)state;
    fx *f = fx_registered();
    push_second(f, 0, 1);
    /* "Register again": the session starts over as a new registration, its records (of an
     * agent the coordinator does not know) gone, and registers again. */
    for (int i = 0; i < ST_PROTO_REREGISTER_MAX; i++) {
        assert_int_equal(refuse_update(f, "unknown agent", true), ST_ENOTFOUND);
        assert_string_equal(st_session_refusal(f->s), "unknown agent");
        assert_int_equal(st_session_get_phase(f->s), ST_SESSION_REGISTERING);
        assert_int_equal(st_session_state(f->s), STAMPEDE__AGENT_STATE__AGENT_IDLE);
        assert_int_equal(st_session_unacked(f->s), 0);
        assert_int_equal(st_session_agent_id(f->s), 0);
        assert_string_equal(st_session_run_id(f->s), "");
        assert_int_equal(st_session_reregisters(f->s), i + 1);
        assert_false(st_session_expired(f->s));
        assert_int_equal(st_session_next_due(f->s), 0);
        accept_register(f, (uint32_t)(10 + i));
        assert_int_equal(st_session_agent_id(f->s), 10 + i);
        /* A new agent for the coordinator: its records number from 1 again. */
        push_second(f, 5, 1);
    }
    /* Bounded: the next "register again" ends the session. */
    assert_int_equal(refuse_update(f, "unknown agent", true), ST_ENOTFOUND);
    assert_int_equal(st_session_get_phase(f->s), ST_SESSION_ENDED);
    uint8_t *buf;
    size_t len;
    int timeout_ms;
    assert_int_equal(st_session_request(f->s, &buf, &len, &timeout_ms, NULL), ST_ESTATE);
    /* A plain refusal of an update ends it at once, as ST_EAUTH. */
    fx_free(f);
    f = fx_registered();
    assert_int_equal(refuse_update(f, "agent 3 was lost", false), ST_EAUTH);
    assert_int_equal(st_session_get_phase(f->s), ST_SESSION_ENDED);
    fx_free(f);
}

/* The load's licence runs from the send of the last answered exchange, never from its reply:
 * the coordinator's silence count starts later than that. */
static void test_session_licence_from_the_send(void **state)
{
    (void)state;
    fx *f = fx_new(0);
    assert_int_equal(st_session_licence_ns(f->s), 0); /* not registered: no load */
    fx_free(f);
    f = fx_registered();
    const uint64_t bound = ST_PROTO_AGENT_SILENCE_MS * ST_NS_PER_MS;
    assert_int_equal(st_session_licence_ns(f->s), f->now + bound);
    /* An update sent now and answered 400 ms later: the licence runs from the send. */
    f->now += ST_NS_PER_S;
    uint64_t sent = f->now;
    Stampede__Envelope *req = take_request(f, ST_SESSION_UPDATE, ST_PROTO_UPDATE_TIMEOUT_MS);
    f->now += 400 * ST_NS_PER_MS;
    Stampede__CoordReply rep = STAMPEDE__COORD_REPLY__INIT;
    st_session_cmds cmds;
    assert_int_equal(answer(f, req, &rep, true, &cmds), 0);
    stampede__envelope__free_unpacked(req, NULL);
    assert_int_equal(st_session_licence_ns(f->s), sent + bound);
    /* A lost exchange, a reply that does not decode, or a pong do not extend it. */
    drop_update(f);
    f->now += ST_PROTO_UPDATE_TIMEOUT_MS * ST_NS_PER_MS;
    st_session_lost(f->s);
    drop_update(f);
    const uint8_t garbage[] = {0x0f, 0xff, 0x12};
    assert_int_equal(st_session_reply(f->s, garbage, sizeof(garbage), &cmds), ST_EPROTO);
    drop_update(f);
    assert_int_equal(give_empty_pong(f, &cmds), 0);
    assert_int_equal(st_session_licence_ns(f->s), sent + bound);
    /* The licence is below the coordinator's loss bound: the agent stops first. */
    assert_true(ST_PROTO_AGENT_SILENCE_MS < ST_PROTO_COORD_SILENCE_MS);
    fx_free(f);
}

/* Stopped on silence: the records stay and go on for the delivery bound, with the reason and
 * the instant the licence ended; a coordinator that answers after all takes them. */
static void test_session_silenced_keeps_records(void **state)
{
    (void)state;
    fx *f = fx_registered();
    st_session_started(f->s);
    uint64_t licence = st_session_licence_ns(f->s);
    push_second(f, 0, 1);
    push_second(f, 1, 2);
    /* Noticed 1.5 s after the licence ended (a paused process): it ended at the licence. */
    f->now = licence + 1500 * ST_NS_PER_MS;
    uint64_t noticed = f->now;
    assert_true(st_session_silenced(f->s, "no acknowledged exchange"));
    assert_false(st_session_silenced(f->s, "again"));
    assert_true(st_session_is_silenced(f->s));
    assert_int_equal(st_session_licence_ns(f->s), 0);
    assert_int_equal(st_session_state(f->s), STAMPEDE__AGENT_STATE__AGENT_DRAINING);
    assert_int_equal(st_session_unacked(f->s), 2);
    assert_int_equal(st_session_next_due(f->s), 0);
    push_second(f, 2, 3);
    st_session_end(f->s);
    /* Every update carries the records, the reason and the stop instant in coordinator time. */
    for (int i = 0; i < 3; i++) {
        Stampede__Envelope *req = take_request(f, ST_SESSION_UPDATE, ST_PROTO_UPDATE_TIMEOUT_MS);
        Stampede__AgentUpdate *u = update_of(req);
        assert_seqs(u, 1, 3);
        assert_string_equal(u->stop_reason, "no acknowledged exchange");
        assert_int_equal(u->stopped_coord_ns, st_session_to_coord(f->s, licence));
        assert_int_equal(u->state, STAMPEDE__AGENT_STATE__AGENT_DONE);
        assert_int_equal(u->last_seq, 3);
        stampede__envelope__free_unpacked(req, NULL);
        f->now += ST_PROTO_UPDATE_TIMEOUT_MS * ST_NS_PER_MS;
        st_session_lost(f->s);
        assert_int_equal(st_session_undelivered(f->s), 0);
    }
    /* Until the delivery bound, counted from when it was noticed. */
    f->now = noticed + ST_PROTO_DELIVERY_MS * ST_NS_PER_MS - 1;
    assert_int_equal(st_session_undelivered(f->s), 0);
    f->now += 1;
    assert_int_equal(st_session_undelivered(f->s), ST_ETIMEDOUT);
    /* A coordinator that answers after all acknowledges them and says done. */
    f->now -= 10 * ST_NS_PER_MS;
    Stampede__CoordReply rep = STAMPEDE__COORD_REPLY__INIT;
    rep.acked_seq = 3;
    rep.done = true;
    st_session_cmds cmds;
    assert_int_equal(round_trip(f, &rep, &cmds), 0);
    assert_true(cmds.done);
    assert_int_equal(st_session_unacked(f->s), 0);
    assert_int_equal(st_session_get_phase(f->s), ST_SESSION_ENDED);
    assert_int_equal(st_session_undelivered(f->s), 0);
    fx_free(f);

    /* Not registered: nothing to silence. */
    f = fx_new(0);
    assert_false(st_session_silenced(f->s, "x"));
    fx_free(f);
}

/* ---- records ------------------------------------------------------------------------------- */

static void test_session_unacked_records_resent_after_lost_reply(void **state)
{
    (void)state;
    fx *f = fx_registered();
    push_second(f, 0, 1);
    push_second(f, 1, 2);
    assert_int_equal(st_session_unacked(f->s), 2);
    /* The reply to the update carrying 1 and 2 is lost: both go again. */
    Stampede__Envelope *req = take_request(f, ST_SESSION_UPDATE, ST_PROTO_UPDATE_TIMEOUT_MS);
    assert_seqs(update_of(req), 1, 2);
    stampede__envelope__free_unpacked(req, NULL);
    f->now += ST_PROTO_EXCHANGE_TIMEOUT_MS * ST_NS_PER_MS;
    st_session_lost(f->s);
    push_second(f, 2, 3);
    /* Acknowledged up to 2: only 3 is left. */
    update_acked(f, 1, 3, 2);
    assert_int_equal(st_session_acked(f->s), 2);
    assert_int_equal(st_session_unacked(f->s), 1);
    /* A late duplicate reply acknowledging less changes nothing. */
    update_acked(f, 3, 1, 1);
    assert_int_equal(st_session_acked(f->s), 2);
    assert_int_equal(st_session_unacked(f->s), 1);
    update_acked(f, 3, 1, 3);
    assert_int_equal(st_session_unacked(f->s), 0);
    req = take_request(f, ST_SESSION_UPDATE, ST_PROTO_UPDATE_TIMEOUT_MS);
    assert_int_equal(update_of(req)->n_records, 0);
    stampede__envelope__free_unpacked(req, NULL);
    fx_free(f);
}

static void test_session_update_carries_at_most_the_bound(void **state)
{
    (void)state;
    fx *f = fx_registered();
    uint64_t n = ST_PROTO_RECORDS_PER_UPDATE + 5;
    for (uint64_t k = 0; k < n; k++) {
        push_second(f, (uint32_t)k, k + 1);
    }
    update_acked(f, 1, ST_PROTO_RECORDS_PER_UPDATE, ST_PROTO_RECORDS_PER_UPDATE);
    Stampede__Envelope *req = take_request(f, ST_SESSION_UPDATE, ST_PROTO_UPDATE_TIMEOUT_MS);
    assert_seqs(update_of(req), ST_PROTO_RECORDS_PER_UPDATE + 1, 5);
    stampede__envelope__free_unpacked(req, NULL);
    fx_free(f);
}

/* A body packed elsewhere (the simulator's) goes out as pushed, with its seq and second. */
static void test_session_push_body(void **state)
{
    (void)state;
    fx *f = fx_registered();
    st_stats s;
    assert_int_equal(st_stats_init(&s), 0);
    st_hist_record_n(s.lat, 2000, 4);
    st_hist_record_n(s.lat_raw, 1500, 4);
    s.c.sent = 4;
    s.c.ok = 4;
    uint8_t *body;
    size_t len;
    assert_int_equal(st_wire_record_body_build(&s, &body, &len), 0);
    uint64_t seq = 0;
    assert_int_equal(st_session_push_body(f->s, 41, body, len, &seq), 0);
    assert_int_equal(seq, 1);
    memset(body, 0xff, len); /* copied: the caller's buffer is its own */
    free(body);
    Stampede__Envelope *req = take_request(f, ST_SESSION_UPDATE, ST_PROTO_UPDATE_TIMEOUT_MS);
    Stampede__AgentUpdate *u = update_of(req);
    assert_int_equal(u->n_records, 1);
    assert_int_equal(u->records[0]->seq, 1);
    assert_int_equal(u->records[0]->second, 41);
    st_stats got;
    assert_int_equal(st_stats_init(&got), 0);
    assert_int_equal(st_wire_record_merge(u->records[0], &got), 0);
    assert_int_equal(got.c.ok, 4);
    assert_int_equal(st_hist_count(got.lat), 4);
    st_stats_fini(&got);
    st_stats_fini(&s);
    stampede__envelope__free_unpacked(req, NULL);
    fx_free(f);
}

/* ---- pacing and silence -------------------------------------------------------------------- */

static void test_session_heartbeat_pacing(void **state)
{
    (void)state;
    fx *f = fx_registered();
    Stampede__CoordReply rep = STAMPEDE__COORD_REPLY__INIT;
    st_session_cmds cmds;
    assert_int_equal(st_session_heartbeat_ms(f->s), ST_PROTO_HEARTBEAT_MS);
    f->now += 3 * ST_NS_PER_MS;
    rep.heartbeat_ms = 1000;
    assert_int_equal(round_trip(f, &rep, &cmds), 0);
    assert_int_equal(st_session_heartbeat_ms(f->s), 1000);
    assert_int_equal(st_session_next_due(f->s), f->now + 1000 * ST_NS_PER_MS);
    /* Outside the accepted range: ignored, the rest of the reply applied. */
    const uint32_t bad[] = {0, ST_PROTO_HEARTBEAT_MIN_MS - 1, ST_PROTO_HEARTBEAT_MAX_MS + 1};
    for (size_t i = 0; i < 3; i++) {
        push_second(f, (uint32_t)i, i + 1);
        rep.heartbeat_ms = bad[i];
        rep.acked_seq = i + 1;
        f->now += ST_NS_PER_S;
        assert_int_equal(round_trip(f, &rep, &cmds), 0);
        assert_int_equal(st_session_heartbeat_ms(f->s), 1000);
        assert_int_equal(st_session_acked(f->s), i + 1);
    }
    rep.heartbeat_ms = ST_PROTO_HEARTBEAT_MIN_MS;
    assert_int_equal(round_trip(f, &rep, &cmds), 0);
    assert_int_equal(st_session_heartbeat_ms(f->s), ST_PROTO_HEARTBEAT_MIN_MS);
    rep.heartbeat_ms = ST_PROTO_HEARTBEAT_MAX_MS;
    assert_int_equal(round_trip(f, &rep, &cmds), 0);
    assert_int_equal(st_session_heartbeat_ms(f->s), ST_PROTO_HEARTBEAT_MAX_MS);
    uint64_t last = f->now;
    assert_int_equal(st_session_next_due(f->s), last + ST_PROTO_HEARTBEAT_MAX_MS * ST_NS_PER_MS);
    /* A new record makes the update due at once; so does the end of the load. */
    push_second(f, 3, 4);
    assert_int_equal(st_session_next_due(f->s), 0);
    f->now += 5 * ST_NS_PER_MS;
    /* A lost exchange: the next one at once (one lost reply must not eat the silence margin),
     * records kept. */
    drop_update(f);
    f->now += ST_PROTO_UPDATE_TIMEOUT_MS * ST_NS_PER_MS;
    st_session_lost(f->s);
    assert_true(st_session_next_due(f->s) <= f->now);
    assert_int_equal(st_session_unacked(f->s), 1);
    st_session_end(f->s);
    assert_int_equal(st_session_next_due(f->s), 0);
    fx_free(f);
}

static void test_session_silence_bound(void **state)
{
    (void)state;
    /* Not registered by the connect deadline. */
    fx *f = fx_new(2);
    f->now += ST_PROTO_CONNECT_DEADLINE_MS * ST_NS_PER_MS - 1;
    assert_int_equal(st_session_expired(f->s), 0);
    f->now += 1;
    assert_int_equal(st_session_expired(f->s), ST_ETIMEDOUT);
    fx_free(f);

    /* Registered: nothing decoded for the silence bound. */
    f = fx_registered();
    uint64_t heard = f->now;
    drop_update(f);
    f->now += ST_PROTO_EXCHANGE_TIMEOUT_MS * ST_NS_PER_MS;
    st_session_lost(f->s);
    /* Bytes that do not decode are not a word from the coordinator. */
    drop_update(f);
    const uint8_t garbage[] = {0x0f, 0xff, 0x12};
    st_session_cmds cmds;
    f->now += ST_NS_PER_MS;
    assert_int_equal(st_session_reply(f->s, garbage, sizeof(garbage), &cmds), ST_EPROTO);
    f->now = heard + ST_PROTO_AGENT_SILENCE_MS * ST_NS_PER_MS;
    assert_int_equal(st_session_expired(f->s), 0);
    f->now += 1;
    assert_int_equal(st_session_expired(f->s), ST_ETIMEDOUT);
    /* A reply arriving after all: heard again. */
    Stampede__CoordReply rep = STAMPEDE__COORD_REPLY__INIT;
    assert_int_equal(round_trip(f, &rep, &cmds), 0);
    assert_int_equal(st_session_expired(f->s), 0);
    f->now += ST_PROTO_AGENT_SILENCE_MS * ST_NS_PER_MS + 1;
    assert_int_equal(st_session_expired(f->s), ST_ETIMEDOUT);
    fx_free(f);
}

/* ---- bad replies --------------------------------------------------------------------------- */

static void test_session_bad_replies(void **state)
{
    (void)state;
    fx *f = fx_registered();
    st_session_cmds cmds;
    uint8_t *buf;
    size_t len;
    int timeout_ms;
    /* No exchange outstanding: a reply is refused; a second request while one is. */
    Stampede__CoordReply rep = STAMPEDE__COORD_REPLY__INIT;
    Stampede__Stop stop = STAMPEDE__STOP__INIT;
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    env.body_case = STAMPEDE__ENVELOPE__BODY_REPLY;
    env.reply = &rep;
    rep.stop = &stop;
    rep.done = true;
    assert_int_equal(give(f, &env, &cmds), ST_ESTATE);
    assert_false(cmds.stop || cmds.done);
    assert_int_equal(st_session_request(f->s, &buf, &len, &timeout_ms, NULL), 0);
    free(buf);
    uint8_t *again = NULL;
    assert_int_equal(st_session_request(f->s, &again, &len, &timeout_ms, NULL), ST_ESTATE);
    assert_null(again);

    /* Another run's reply: ignored, its stop and done not applied, and not heard. */
    uint64_t heard = f->now;
    f->now += 2 * ST_NS_PER_S;
    env.run_id = "run-other";
    assert_int_equal(give(f, &env, &cmds), ST_EINVAL);
    assert_false(cmds.stop || cmds.done);
    assert_int_equal(st_session_state(f->s), STAMPEDE__AGENT_STATE__AGENT_IDLE);
    assert_int_equal(st_session_get_phase(f->s), ST_SESSION_REGISTERED);
    f->now = heard + ST_PROTO_AGENT_SILENCE_MS * ST_NS_PER_MS + 1;
    assert_int_equal(st_session_expired(f->s), ST_ETIMEDOUT);

    /* Another protocol version, and an envelope without a body: ST_EPROTO. */
    assert_int_equal(st_session_request(f->s, &buf, &len, &timeout_ms, NULL), 0);
    free(buf);
    env.run_id = RUN_ID;
    env.version = ST_PROTOCOL_VERSION + 1;
    assert_int_equal(st_wire_pack(&env, &buf, &len), 0);
    assert_int_equal(st_session_reply(f->s, buf, len, &cmds), ST_EPROTO);
    free(buf);
    assert_int_equal(st_session_request(f->s, &buf, &len, &timeout_ms, NULL), 0);
    free(buf);
    Stampede__Envelope empty = STAMPEDE__ENVELOPE__INIT;
    assert_int_equal(give(f, &empty, &cmds), ST_EPROTO);

    /* A reply of the wrong kind (a pong to an update) is heard, and changes nothing else. */
    assert_int_equal(st_session_request(f->s, &buf, &len, &timeout_ms, NULL), 0);
    free(buf);
    assert_int_equal(give_empty_pong(f, &cmds), 0);
    assert_null(cmds.reply);
    assert_int_equal(st_session_expired(f->s), 0);
    assert_int_equal(st_session_get_phase(f->s), ST_SESSION_REGISTERED);
    fx_free(f);
}

/* ---- commands ------------------------------------------------------------------------------ */

/* A reply with a prepare at this epoch. */
static void prepare_reply(Stampede__CoordReply *rep, Stampede__Prepare *prep,
                          Stampede__PlanSpec *plan, Stampede__Assignment *asg, uint32_t epoch)
{
    *rep = (Stampede__CoordReply)STAMPEDE__COORD_REPLY__INIT;
    *prep = (Stampede__Prepare)STAMPEDE__PREPARE__INIT;
    *plan = (Stampede__PlanSpec)STAMPEDE__PLAN_SPEC__INIT;
    *asg = (Stampede__Assignment)STAMPEDE__ASSIGNMENT__INIT;
    asg->epoch = epoch;
    prep->plan = plan;
    prep->assignment = asg;
    rep->prepare = prep;
}

static void test_session_commands(void **state)
{
    (void)state;
    /* The agent's clock is 2 ms ahead of the coordinator's. */
    fx *f = fx_new(1);
    f->coord_offset_ns = 2 * ST_NS_PER_MS;
    pong(f, f->coord_offset_ns, 0, 0);
    accept_register(f, 3);
    Stampede__CoordReply rep;
    Stampede__Prepare prep;
    Stampede__PlanSpec plan;
    Stampede__Assignment asg;
    st_session_cmds cmds;

    /* A start before the session is prepared is not one. */
    Stampede__Start start = STAMPEDE__START__INIT;
    start.t0_coord_ns = 9000 * ST_NS_PER_S;
    rep = (Stampede__CoordReply)STAMPEDE__COORD_REPLY__INIT;
    rep.start = &start;
    assert_int_equal(round_trip(f, &rep, &cmds), 0);
    assert_false(cmds.start);
    assert_non_null(cmds.reply->start); /* the reply as it came */

    /* Prepare at epoch 4: handed out; cannot be run: FAILED with the reason. */
    prepare_reply(&rep, &prep, &plan, &asg, 4);
    assert_int_equal(round_trip(f, &rep, &cmds), 0);
    assert_non_null(cmds.prepare);
    assert_int_equal(cmds.prepare->assignment->epoch, 4);
    st_session_fail(f->s, "no such engine");
    Stampede__Envelope *req = take_request(f, ST_SESSION_UPDATE, ST_PROTO_UPDATE_TIMEOUT_MS);
    assert_int_equal(update_of(req)->state, STAMPEDE__AGENT_STATE__AGENT_FAILED);
    assert_string_equal(update_of(req)->error, "no such engine");
    /* Asked again: handed out again; now prepared at 4, READY. */
    assert_int_equal(answer(f, req, &rep, true, &cmds), 0);
    stampede__envelope__free_unpacked(req, NULL);
    assert_non_null(cmds.prepare);
    st_session_prepared(f->s, 4);
    assert_int_equal(st_session_state(f->s), STAMPEDE__AGENT_STATE__AGENT_READY);
    /* The same epoch again is nothing new; a prepare without its parts is none. */
    assert_int_equal(round_trip(f, &rep, &cmds), 0);
    assert_null(cmds.prepare);
    prep.plan = NULL;
    asg.epoch = 5;
    assert_int_equal(round_trip(f, &rep, &cmds), 0);
    assert_null(cmds.prepare);
    assert_int_equal(st_session_epoch(f->s), 4);

    /* The start, in local time; started, RUNNING. A second start is none. */
    rep = (Stampede__CoordReply)STAMPEDE__COORD_REPLY__INIT;
    rep.start = &start;
    assert_int_equal(round_trip(f, &rep, &cmds), 0);
    assert_true(cmds.start);
    uint64_t t0_local = cmds.t0_local_ns;
    assert_int_equal(t0_local, 9000 * ST_NS_PER_S + 2 * ST_NS_PER_MS);
    st_session_started(f->s);
    assert_true(st_session_is_started(f->s));
    assert_int_equal(round_trip(f, &rep, &cmds), 0);
    assert_false(cmds.start);
    /* Started: a prepare is no longer one. */
    prepare_reply(&rep, &prep, &plan, &asg, 6);
    assert_int_equal(round_trip(f, &rep, &cmds), 0);
    assert_null(cmds.prepare);

    /* The realised start goes in coordinator time. */
    st_session_first_send(f->s, t0_local + 300 * ST_NS_PER_US);
    req = take_request(f, ST_SESSION_UPDATE, ST_PROTO_UPDATE_TIMEOUT_MS);
    assert_int_equal(update_of(req)->state, STAMPEDE__AGENT_STATE__AGENT_RUNNING);
    assert_int_equal(update_of(req)->first_send_coord_ns, 9000 * ST_NS_PER_S + 300 * ST_NS_PER_US);
    assert_int_equal(update_of(req)->epoch, 4);
    /* Assignments: only newer ones, and applied only when the caller says so. */
    rep = (Stampede__CoordReply)STAMPEDE__COORD_REPLY__INIT;
    asg = (Stampede__Assignment)STAMPEDE__ASSIGNMENT__INIT;
    asg.epoch = 4;
    rep.assignment = &asg;
    assert_int_equal(answer(f, req, &rep, true, &cmds), 0);
    stampede__envelope__free_unpacked(req, NULL);
    assert_null(cmds.assignment);
    asg.epoch = 7;
    assert_int_equal(round_trip(f, &rep, &cmds), 0);
    assert_ptr_equal(cmds.assignment, cmds.reply->assignment);
    assert_int_equal(st_session_epoch(f->s), 4);
    assert_int_equal(round_trip(f, &rep, &cmds), 0);
    assert_non_null(cmds.assignment);
    st_session_assigned(f->s, 7);
    assert_int_equal(round_trip(f, &rep, &cmds), 0);
    assert_null(cmds.assignment);
    assert_int_equal(st_session_epoch(f->s), 7);

    /* Stop: DRAINING, handed out once. */
    Stampede__Stop stop = STAMPEDE__STOP__INIT;
    rep = (Stampede__CoordReply)STAMPEDE__COORD_REPLY__INIT;
    rep.stop = &stop;
    assert_int_equal(round_trip(f, &rep, &cmds), 0);
    assert_true(cmds.stop);
    assert_int_equal(st_session_state(f->s), STAMPEDE__AGENT_STATE__AGENT_DRAINING);
    assert_int_equal(round_trip(f, &rep, &cmds), 0);
    assert_false(cmds.stop);
    assert_false(st_session_stop(f->s));

    /* The end: DONE with the last sequence number, then done ends the session. */
    push_second(f, 0, 1);
    push_second(f, 1, 2);
    st_session_end(f->s);
    req = take_request(f, ST_SESSION_UPDATE, ST_PROTO_UPDATE_TIMEOUT_MS);
    assert_int_equal(update_of(req)->state, STAMPEDE__AGENT_STATE__AGENT_DONE);
    assert_int_equal(update_of(req)->last_seq, 2);
    rep = (Stampede__CoordReply)STAMPEDE__COORD_REPLY__INIT;
    rep.acked_seq = 2;
    rep.done = true;
    assert_int_equal(answer(f, req, &rep, true, &cmds), 0);
    stampede__envelope__free_unpacked(req, NULL);
    assert_true(cmds.done);
    assert_int_equal(st_session_get_phase(f->s), ST_SESSION_ENDED);
    assert_int_equal(st_session_unacked(f->s), 0);
    fx_free(f);

    /* Stopped before the start: DONE at once with what it has (nothing), and no start after. */
    f = fx_registered();
    prepare_reply(&rep, &prep, &plan, &asg, 1);
    assert_int_equal(round_trip(f, &rep, &cmds), 0);
    st_session_prepared(f->s, 1);
    assert_true(st_session_stop(f->s));
    assert_int_equal(st_session_state(f->s), STAMPEDE__AGENT_STATE__AGENT_DONE);
    rep = (Stampede__CoordReply)STAMPEDE__COORD_REPLY__INIT;
    rep.start = &start;
    req = take_request(f, ST_SESSION_UPDATE, ST_PROTO_UPDATE_TIMEOUT_MS);
    assert_int_equal(update_of(req)->state, STAMPEDE__AGENT_STATE__AGENT_DONE);
    assert_int_equal(update_of(req)->last_seq, 0);
    assert_int_equal(answer(f, req, &rep, true, &cmds), 0);
    stampede__envelope__free_unpacked(req, NULL);
    assert_false(cmds.start);
    fx_free(f);
}

/* Every exchange is a clock sample: an update echoed with the coordinator's times moves the
 * offset when its round trip is shorter; one echoing another instant does not. */
static void test_session_update_is_a_clock_sample(void **state)
{
    (void)state;
    fx *f = fx_new(1);
    pong(f, 5 * ST_NS_PER_MS, ST_NS_PER_MS, ST_NS_PER_MS);
    accept_register(f, 3);
    assert_int_equal(st_session_rtt_ns(f->s), 2 * ST_NS_PER_MS);
    Stampede__Envelope *req = take_request(f, ST_SESSION_UPDATE, ST_PROTO_UPDATE_TIMEOUT_MS);
    Stampede__CoordReply rep = STAMPEDE__COORD_REPLY__INIT;
    rep.echo_agent_ns = req->update->sent_agent_ns + 1;
    rep.recv_coord_ns = f->now;
    rep.send_coord_ns = f->now;
    st_session_cmds cmds;
    assert_int_equal(answer(f, req, &rep, false, &cmds), 0);
    stampede__envelope__free_unpacked(req, NULL);
    assert_int_equal(st_session_offset_ns(f->s), 5 * ST_NS_PER_MS);
    req = take_request(f, ST_SESSION_UPDATE, ST_PROTO_UPDATE_TIMEOUT_MS);
    rep.echo_agent_ns = req->update->sent_agent_ns;
    f->now += 100 * ST_NS_PER_US;
    rep.recv_coord_ns = f->now - 4 * ST_NS_PER_MS;
    rep.send_coord_ns = rep.recv_coord_ns;
    f->now += 100 * ST_NS_PER_US;
    assert_int_equal(answer(f, req, &rep, false, &cmds), 0);
    stampede__envelope__free_unpacked(req, NULL);
    assert_int_equal(st_session_offset_ns(f->s), 4 * ST_NS_PER_MS);
    assert_int_equal(st_session_rtt_ns(f->s), 200 * ST_NS_PER_US);
    assert_int_equal(st_session_to_local(f->s, 1000), 1000 + 4 * ST_NS_PER_MS);
    assert_int_equal(st_session_to_coord(f->s, 1000 + 4 * ST_NS_PER_MS), 1000);
    fx_free(f);
}

/* A clock that moves on every read, as a real one does between two calls. */
static uint64_t ticking_now(void *ctx)
{
    uint64_t *t = ctx;
    return *t += 7;
}

/* "Due at once" must hold for a caller that read its own now before asking. */
static void test_session_due_at_once_on_a_moving_clock(void **state)
{
    (void)state;
    uint64_t t = T0;
    st_clock clock = {ticking_now, &t};
    st_session_cfg cfg;
    st_session_cfg_defaults(&cfg);
    cfg.clock = &clock;
    cfg.clock_pings = 0;
    st_session *s;
    assert_int_equal(st_session_new(&s, &cfg), 0);
    uint64_t now = st_clock_now(&clock);
    assert_true(now >= st_session_next_due(s)); /* registering */
    st_stats sec;
    assert_int_equal(st_stats_init(&sec), 0);
    assert_int_equal(st_session_push(s, &sec, NULL), 0);
    now = st_clock_now(&clock);
    assert_true(now >= st_session_next_due(s)); /* a fresh record */
    st_stats_fini(&sec);
    st_session_free(s);
}

int main(void)
{
    st_log_init("test_session", ST_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_new_refuses_bad_cfg),
        cmocka_unit_test(test_session_clock_samples_then_register),
        cmocka_unit_test(test_session_register_refused),
        cmocka_unit_test(test_session_register_again),
        cmocka_unit_test(test_session_licence_from_the_send),
        cmocka_unit_test(test_session_silenced_keeps_records),
        cmocka_unit_test(test_session_unacked_records_resent_after_lost_reply),
        cmocka_unit_test(test_session_update_carries_at_most_the_bound),
        cmocka_unit_test(test_session_push_body),
        cmocka_unit_test(test_session_heartbeat_pacing),
        cmocka_unit_test(test_session_silence_bound),
        cmocka_unit_test(test_session_bad_replies),
        cmocka_unit_test(test_session_commands),
        cmocka_unit_test(test_session_update_is_a_clock_sample),
        cmocka_unit_test(test_session_due_at_once_on_a_moving_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
