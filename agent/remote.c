#include "remote.h"
#include "cli.h"
#include "clock.h"
#include "engine.h"
#include "error.h"
#include "exit_code.h"
#include "log.h"
#include "plan.h"
#include "run.h"
#include "split.h"
#include "stats.h"
#include "wire.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define CLOCK_WINDOW           16
#define MAX_RECORDS_PER_UPDATE 30
#define EXCHANGE_TIMEOUT_MS    1000
#define CONNECT_DEADLINE_MS    15000

typedef struct rec {
    struct rec *next;
    uint64_t seq;
    st_arena arena;
    Stampede__SecondRecord *pb;
} rec;

typedef struct profile_node {
    struct profile_node *next;
    st_profile p;
} profile_node;

typedef struct clock_sample {
    int64_t offset_ns; /* agent clock minus coordinator clock */
    uint64_t rtt_ns;
} clock_sample;

typedef struct remote {
    const st_remote_opts *o;
    nng_socket sock;
    char run_id[128];
    uint32_t agent_id;
    uint64_t instance_id;

    clock_sample samples[CLOCK_WINDOW];
    int n_samples, next_sample;
    int64_t offset_ns;
    uint64_t rtt_ns;

    bool prepared;
    st_plan plan;
    const st_engine_ops *engine;
    uint32_t epoch;
    profile_node *profiles; /* every profile handed to the run: it may read any until freed */
    st_slice slice;
    bool has_slice;
    uint64_t from_q;

    st_run *run;
    bool started, stop_applied, run_closed;
    uint64_t t0_local;
    uint64_t realised_start_coord;
    Stampede__AgentState state;
    char error[256];

    rec *head, *tail;
    uint64_t next_seq;
    uint64_t last_seq;
    uint64_t last_reply_ns;
    uint32_t heartbeat_ms;
    bool coord_done;
    st_stats sec;
} remote;

static void clock_add(remote *r, uint64_t t1, uint64_t t2, uint64_t t3, uint64_t t4)
{
    if (t4 < t1 || t3 < t2) {
        return;
    }
    uint64_t rtt = (t4 - t1) > (t3 - t2) ? (t4 - t1) - (t3 - t2) : 0;
    int64_t offset = ((int64_t)(t1 - t2) + (int64_t)(t4 - t3)) / 2;
    r->samples[r->next_sample] = (clock_sample){offset, rtt};
    r->next_sample = (r->next_sample + 1) % CLOCK_WINDOW;
    if (r->n_samples < CLOCK_WINDOW) {
        r->n_samples++;
    }
    /* The sample that spent least time in flight has the least asymmetry in it. */
    int best = 0;
    for (int i = 1; i < r->n_samples; i++) {
        if (r->samples[i].rtt_ns < r->samples[best].rtt_ns) {
            best = i;
        }
    }
    r->offset_ns = r->samples[best].offset_ns;
    r->rtt_ns = r->samples[best].rtt_ns;
}

static uint64_t coord_to_local(const remote *r, uint64_t coord_ns)
{
    return (uint64_t)((int64_t)coord_ns + r->offset_ns);
}

static uint64_t local_to_coord(const remote *r, uint64_t local_ns)
{
    return (uint64_t)((int64_t)local_ns - r->offset_ns);
}

/* One request and its reply. On 0 the caller owns *reply (free_unpacked). */
static int exchange(remote *r, Stampede__Envelope *env, Stampede__Envelope **reply, int timeout_ms)
{
    env->version = ST_PROTOCOL_VERSION;
    env->run_id = r->run_id;
    uint8_t *buf;
    size_t len;
    if (st_wire_pack(env, &buf, &len)) {
        return ST_ENOMEM;
    }
    nng_socket_set_ms(r->sock, NNG_OPT_RECVTIMEO, timeout_ms);
    int rv = nng_send(r->sock, buf, len, 0);
    free(buf);
    if (rv != 0) {
        return rv == NNG_ETIMEDOUT ? ST_ETIMEDOUT : ST_ECONNECT;
    }
    void *rbuf;
    size_t rlen;
    rv = nng_recv(r->sock, &rbuf, &rlen, NNG_FLAG_ALLOC);
    if (rv != 0) {
        return rv == NNG_ETIMEDOUT ? ST_ETIMEDOUT : ST_ECONNECT;
    }
    int err;
    Stampede__Envelope *e = st_wire_unpack(rbuf, rlen, r->run_id[0] ? r->run_id : NULL, &err);
    nng_free(rbuf, rlen);
    if (!e) {
        st_warn("dropped a reply from the coordinator: %s", st_strerror(err));
        return ST_EPROTO;
    }
    *reply = e;
    r->last_reply_ns = st_clock_mono_ns();
    return 0;
}

static int clock_sync(remote *r, int samples, uint64_t deadline_ns)
{
    int got = 0;
    while (got < samples && st_clock_mono_ns() < deadline_ns) {
        Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
        Stampede__ClockPing ping = STAMPEDE__CLOCK_PING__INIT;
        env.body_case = STAMPEDE__ENVELOPE__BODY_CLOCK_PING;
        env.clock_ping = &ping;
        ping.agent_ns = st_clock_mono_ns();
        Stampede__Envelope *rep = NULL;
        int rc = exchange(r, &env, &rep, 500);
        uint64_t t4 = st_clock_mono_ns();
        if (rc) {
            continue;
        }
        if (rep->body_case == STAMPEDE__ENVELOPE__BODY_CLOCK_PONG &&
            rep->clock_pong->agent_ns == ping.agent_ns) {
            clock_add(r, ping.agent_ns, rep->clock_pong->recv_coord_ns,
                      rep->clock_pong->send_coord_ns, t4);
            got++;
        }
        stampede__envelope__free_unpacked(rep, NULL);
    }
    return got > 0 ? 0 : ST_ETIMEDOUT;
}

static int do_register(remote *r, uint64_t deadline_ns)
{
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    char name[320];
    if (r->o->name) {
        snprintf(name, sizeof(name), "%s", r->o->name);
    } else {
        snprintf(name, sizeof(name), "%s-%d", host, (int)getpid());
    }
    while (st_clock_mono_ns() < deadline_ns) {
        Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
        Stampede__Register reg = STAMPEDE__REGISTER__INIT;
        env.body_case = STAMPEDE__ENVELOPE__BODY_REGISTER;
        env.register_ = &reg;
        reg.token = (char *)r->o->token;
        reg.instance_id = r->instance_id;
        reg.name = name;
        reg.host = host;
        reg.pid = (uint32_t)getpid();
        reg.cores = (uint32_t)st_cli_cpus();
        reg.threads = (uint32_t)(r->o->threads > 0 ? r->o->threads : st_cli_cpus());
        reg.version = ST_VERSION;
        reg.task_arn = (char *)(r->o->task_arn ? r->o->task_arn : "");
        reg.availability_zone = (char *)(r->o->availability_zone ? r->o->availability_zone : "");
        reg.clock_offset_ns = r->offset_ns;
        reg.clock_rtt_ns = r->rtt_ns;
        Stampede__Envelope *rep = NULL;
        if (exchange(r, &env, &rep, EXCHANGE_TIMEOUT_MS)) {
            continue;
        }
        int rc = ST_EPROTO;
        if (rep->body_case == STAMPEDE__ENVELOPE__BODY_REGISTER_REPLY && rep->run_id &&
            rep->run_id[0]) {
            r->agent_id = rep->register_reply->agent_id;
            snprintf(r->run_id, sizeof(r->run_id), "%s", rep->run_id);
            st_info("registered as agent %u of run %s (clock offset %.3f ms, rtt %.3f ms)",
                    r->agent_id, r->run_id, (double)r->offset_ns / 1e6, (double)r->rtt_ns / 1e6);
            rc = 0;
        } else if (rep->body_case == STAMPEDE__ENVELOPE__BODY_REFUSED) {
            st_error("the coordinator refused this agent: %s",
                     rep->refused->reason ? rep->refused->reason : "no reason given");
            rc = ST_EAUTH;
        }
        stampede__envelope__free_unpacked(rep, NULL);
        if (rc != ST_EPROTO) {
            return rc;
        }
    }
    return ST_ETIMEDOUT;
}

static void fail_plan(remote *r, const char *fmt, const char *detail)
{
    snprintf(r->error, sizeof(r->error), fmt, detail);
    st_error("%s", r->error);
    r->state = STAMPEDE__AGENT_STATE__AGENT_FAILED;
}

/* Builds a slice from an assignment; false when it has no residues (nothing to send). */
static int assignment_slice(const Stampede__Assignment *a, st_slice *out, bool *has)
{
    memset(out, 0, sizeof(*out));
    *has = a->n_residues > 0;
    if (!*has) {
        return 0;
    }
    return st_slice_init(out, a->period, a->residues, (uint32_t)a->n_residues, 1, 0);
}

static void apply_prepare(remote *r, const Stampede__Prepare *p)
{
    if (r->started || !p->plan || !p->assignment) {
        return;
    }
    if (r->prepared && p->assignment->epoch == r->epoch) {
        return;
    }
    char err[512] = "";
    st_plan_fini(&r->plan);
    st_slice_fini(&r->slice);
    r->prepared = false;
    st_plan_init(&r->plan);
    int rc = st_wire_plan_load(p->plan, p->assignment, st_cli_cpus(), &r->plan, err, sizeof(err));
    if (rc) {
        fail_plan(r, "the coordinator's plan cannot be run: %s", err);
        return;
    }
    if (r->o->threads > 0) {
        r->plan.threads = r->o->threads < r->plan.connections ? r->o->threads : r->plan.connections;
    }
    const char *engine = r->o->engine ? r->o->engine : p->plan->engine;
    if (st_engine_choose(engine, &r->plan, &r->engine, err, sizeof(err))) {
        fail_plan(r, "%s", err);
        return;
    }
    if (!r->plan.closed_loop) {
        if (assignment_slice(p->assignment, &r->slice, &r->has_slice) || !r->has_slice) {
            fail_plan(r, "the coordinator's assignment is invalid%s", "");
            return;
        }
    }
    r->from_q = p->assignment->from_q;
    r->epoch = p->assignment->epoch;
    r->prepared = true;
    r->state = STAMPEDE__AGENT_STATE__AGENT_READY;
    st_info("prepared: epoch %u, %s, engine %s, %d threads, %d connections", r->epoch,
            r->plan.closed_loop ? "closed loop" : "open loop", r->engine->name, r->plan.threads,
            r->plan.connections);
}

static void apply_start(remote *r, const Stampede__Start *s)
{
    if (!r->prepared || r->started || r->stop_applied ||
        r->state == STAMPEDE__AGENT_STATE__AGENT_FAILED) {
        return;
    }
    char err[512] = "";
    r->t0_local = coord_to_local(r, s->t0_coord_ns);
    st_run_cfg cfg = {
        .plan = &r->plan,
        .engine = r->engine,
        .slice = r->plan.closed_loop ? NULL : &r->slice,
        .profile = NULL,
        .from_q = r->from_q,
        .t0_ns = r->t0_local,
    };
    int rc = st_run_start(&r->run, &cfg, err, sizeof(err));
    if (rc) {
        fail_plan(r, "cannot start the load: %s", err[0] ? err : st_strerror(rc));
        return;
    }
    r->started = true;
    r->state = STAMPEDE__AGENT_STATE__AGENT_RUNNING;
    int64_t lead = (int64_t)r->t0_local - (int64_t)st_clock_mono_ns();
    st_info("start in %.1f ms (epoch %u)", (double)lead / 1e6, r->epoch);
}

static void apply_assignment(remote *r, const Stampede__Assignment *a)
{
    if (!r->started || a->epoch <= r->epoch || r->plan.closed_loop) {
        return;
    }
    profile_node *node = calloc(1, sizeof(*node));
    st_slice slice;
    bool has;
    if (!node) {
        return;
    }
    if (st_wire_profile_load(a->stages, a->n_stages, &node->p) ||
        assignment_slice(a, &slice, &has)) {
        st_warn("ignored an invalid re-assignment (epoch %u)", a->epoch);
        free(node);
        return;
    }
    node->next = r->profiles;
    r->profiles = node;
    if (st_run_replan(r->run, &node->p, has ? &slice : NULL, a->from_q) == 0) {
        r->epoch = a->epoch;
        st_info("re-assigned: epoch %u, %u of every %llu requests from request %llu", a->epoch,
                has ? slice.n_residues : 0, (unsigned long long)(has ? slice.period : 0),
                (unsigned long long)a->from_q);
    }
    st_slice_fini(&slice);
}

static void apply_stop(remote *r)
{
    if (r->stop_applied) {
        return;
    }
    r->stop_applied = true;
    if (r->started) {
        st_run_stop(r->run);
        if (r->state == STAMPEDE__AGENT_STATE__AGENT_RUNNING) {
            r->state = STAMPEDE__AGENT_STATE__AGENT_DRAINING;
        }
    } else if (r->state != STAMPEDE__AGENT_STATE__AGENT_FAILED) {
        r->state = STAMPEDE__AGENT_STATE__AGENT_DONE;
        r->last_seq = r->next_seq - 1;
    }
}

static void drop_acked(remote *r, uint64_t acked)
{
    while (r->head && r->head->seq <= acked) {
        rec *n = r->head->next;
        st_arena_fini(&r->head->arena);
        free(r->head);
        r->head = n;
    }
    if (!r->head) {
        r->tail = NULL;
    }
}

/* Sends an update; applies the reply. Returns 0, or an error when no reply came. */
static int send_update(remote *r)
{
    st_arena a = {0};
    Stampede__Envelope env = STAMPEDE__ENVELOPE__INIT;
    Stampede__AgentUpdate up = STAMPEDE__AGENT_UPDATE__INIT;
    env.body_case = STAMPEDE__ENVELOPE__BODY_UPDATE;
    env.update = &up;
    up.agent_id = r->agent_id;
    up.instance_id = r->instance_id;
    up.epoch = r->epoch;
    up.state = r->state;
    up.clock_offset_ns = r->offset_ns;
    up.clock_rtt_ns = r->rtt_ns;
    up.first_send_coord_ns = r->realised_start_coord;
    up.error = r->error;
    up.last_seq = r->state == STAMPEDE__AGENT_STATE__AGENT_DONE ? r->last_seq : 0;
    size_t n = 0;
    for (rec *x = r->head; x && n < MAX_RECORDS_PER_UPDATE; x = x->next) {
        n++;
    }
    if (n > 0) {
        up.records = st_arena_alloc(&a, n * sizeof(*up.records));
        if (!up.records) {
            st_arena_fini(&a);
            return ST_ENOMEM;
        }
        rec *x = r->head;
        for (size_t i = 0; i < n; i++, x = x->next) {
            up.records[i] = x->pb;
        }
        up.n_records = n;
    }
    up.sent_agent_ns = st_clock_mono_ns();
    Stampede__Envelope *rep = NULL;
    int rc = exchange(r, &env, &rep, EXCHANGE_TIMEOUT_MS);
    uint64_t t4 = st_clock_mono_ns();
    st_arena_fini(&a);
    if (rc) {
        return rc;
    }
    if (rep->body_case == STAMPEDE__ENVELOPE__BODY_REPLY) {
        const Stampede__CoordReply *cr = rep->reply;
        if (cr->echo_agent_ns == up.sent_agent_ns) {
            clock_add(r, up.sent_agent_ns, cr->recv_coord_ns, cr->send_coord_ns, t4);
        }
        drop_acked(r, cr->acked_seq);
        if (cr->heartbeat_ms >= 50 && cr->heartbeat_ms <= 2000) {
            r->heartbeat_ms = cr->heartbeat_ms;
        }
        if (cr->prepare) {
            apply_prepare(r, cr->prepare);
        }
        if (cr->start) {
            apply_start(r, cr->start);
        }
        if (cr->assignment) {
            apply_assignment(r, cr->assignment);
        }
        if (cr->stop) {
            apply_stop(r);
        }
        if (cr->done) {
            r->coord_done = true;
        }
    } else if (rep->body_case == STAMPEDE__ENVELOPE__BODY_REFUSED) {
        st_error("the coordinator refused an update: %s",
                 rep->refused->reason ? rep->refused->reason : "no reason given");
        rc = rep->refused->reregister ? ST_ESTATE : ST_EAUTH;
    }
    stampede__envelope__free_unpacked(rep, NULL);
    return rc;
}

static int push_record(remote *r, const st_stats *s)
{
    rec *x = calloc(1, sizeof(*x));
    if (!x) {
        return ST_ENOMEM;
    }
    x->seq = r->next_seq++;
    if (st_wire_record_build(&x->arena, s, x->seq, &x->pb)) {
        st_arena_fini(&x->arena);
        free(x);
        return ST_ENOMEM;
    }
    if (r->tail) {
        r->tail->next = x;
    } else {
        r->head = x;
    }
    r->tail = x;
    return 0;
}

/* Takes the seconds the run has ready, waiting for one until deadline_ns. Returns how many. */
static int pull_seconds(remote *r, uint64_t deadline_ns)
{
    int n = 0;
    while (r->started && !r->run_closed) {
        int rc = st_run_next(r->run, &r->sec, n == 0 ? deadline_ns : 0);
        if (rc == ST_ETIMEDOUT) {
            break;
        }
        if (rc == ST_ECLOSED) {
            r->run_closed = true;
            r->last_seq = r->next_seq - 1;
            if (r->state != STAMPEDE__AGENT_STATE__AGENT_FAILED) {
                r->state = STAMPEDE__AGENT_STATE__AGENT_DONE;
            }
            n++;
            break;
        }
        if (push_record(r, &r->sec) == 0) {
            n++;
        }
    }
    if (r->started && !r->realised_start_coord) {
        uint64_t start;
        if (st_run_realised_start(r->run, r->t0_local, &start) == 0) {
            r->realised_start_coord = local_to_coord(r, start);
        }
    }
    return n;
}

static void remote_fini(remote *r)
{
    st_run_free(r->run);
    r->run = NULL;
    drop_acked(r, UINT64_MAX);
    while (r->profiles) {
        profile_node *n = r->profiles->next;
        st_profile_fini(&r->profiles->p);
        free(r->profiles);
        r->profiles = n;
    }
    st_slice_fini(&r->slice);
    st_plan_fini(&r->plan);
    st_stats_fini(&r->sec);
    nng_close(r->sock);
}

int st_remote_run(const st_remote_opts *o, volatile sig_atomic_t *stop_signal)
{
    remote r;
    memset(&r, 0, sizeof(r));
    r.o = o;
    r.next_seq = 1;
    r.heartbeat_ms = 500;
    st_plan_init(&r.plan);
    if (getrandom(&r.instance_id, sizeof(r.instance_id), 0) != sizeof(r.instance_id)) {
        r.instance_id = st_clock_wall_ns() ^ (uint64_t)getpid();
    }
    int code = ST_EXIT_FAILURE;
    if (st_stats_init(&r.sec)) {
        st_error("out of memory");
        return ST_EXIT_FAILURE;
    }
    int rv = nng_req0_open(&r.sock);
    if (rv != 0) {
        st_error("cannot open an nng socket: %s", nng_strerror(rv));
        st_stats_fini(&r.sec);
        return ST_EXIT_FAILURE;
    }
    /* A request lost with its connection is sent again on the next one within a second. */
    nng_socket_set_ms(r.sock, NNG_OPT_REQ_RESENDTIME, 1000);
    nng_socket_set_ms(r.sock, NNG_OPT_RECONNMINT, 50);
    nng_socket_set_ms(r.sock, NNG_OPT_RECONNMAXT, 500);
    nng_socket_set_ms(r.sock, NNG_OPT_SENDTIMEO, EXCHANGE_TIMEOUT_MS);
    nng_socket_set_size(r.sock, NNG_OPT_RECVMAXSZ, 256u << 20);
    if ((rv = nng_dial(r.sock, o->url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
        st_error("--coordinator %s: %s", o->url, nng_strerror(rv));
        code = ST_EXIT_UNREACHABLE;
        goto out;
    }
    uint64_t deadline = st_clock_mono_ns() + CONNECT_DEADLINE_MS * ST_NS_PER_MS;
    if (clock_sync(&r, 8, deadline)) {
        st_error("no answer from the coordinator at %s within %d s", o->url,
                 CONNECT_DEADLINE_MS / 1000);
        code = ST_EXIT_UNREACHABLE;
        goto out;
    }
    int rc = do_register(&r, deadline);
    if (rc == ST_EAUTH) {
        code = ST_EXIT_AUTH;
        goto out;
    } else if (rc) {
        st_error("the coordinator at %s did not accept the registration in time", o->url);
        code = ST_EXIT_UNREACHABLE;
        goto out;
    }
    r.last_reply_ns = st_clock_mono_ns();
    uint64_t next_update = 0;
    bool signalled = false;
    for (;;) {
        uint64_t now = st_clock_mono_ns();
        int fresh = 0;
        if (r.started && !r.run_closed) {
            fresh = pull_seconds(&r, now < next_update ? next_update : now);
        } else if (now < next_update) {
            uint64_t wait = next_update - now;
            nng_msleep((nng_duration)(wait / ST_NS_PER_MS + 1));
        }
        if (*stop_signal && !signalled) {
            signalled = true;
            st_info("signal %d: stopping the load", (int)*stop_signal);
            apply_stop(&r);
        }
        now = st_clock_mono_ns();
        if (now >= next_update || fresh > 0) {
            rc = send_update(&r);
            now = st_clock_mono_ns();
            next_update = now + r.heartbeat_ms * ST_NS_PER_MS;
            if (rc == ST_EAUTH || rc == ST_ESTATE) {
                /* The coordinator no longer counts on this agent: its share went elsewhere. */
                code = ST_EXIT_AUTH;
                goto out;
            }
        }
        if (r.coord_done) {
            code = r.state == STAMPEDE__AGENT_STATE__AGENT_FAILED ? ST_EXIT_FAILURE
                                                                   : ST_EXIT_OK;
            break;
        }
        if (now - r.last_reply_ns > ST_REMOTE_SILENCE_MS * ST_NS_PER_MS) {
            st_error("no word from the coordinator for %d ms: stopping the load and exiting",
                     ST_REMOTE_SILENCE_MS);
            code = ST_EXIT_UNREACHABLE;
            break;
        }
        if (signalled && r.state == STAMPEDE__AGENT_STATE__AGENT_DONE && !r.head) {
            /* Stopped by a signal and everything delivered: no need to wait for the end. */
            code = ST_EXIT_OK;
            break;
        }
    }
out:
    if (r.run) {
        st_run_stop(r.run);
    }
    remote_fini(&r);
    return code;
}
