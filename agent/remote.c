#include "remote.h"
#include "cli.h"
#include "clock.h"
#include "engine.h"
#include "error.h"
#include "exit_code.h"
#include "log.h"
#include "plan.h"
#include "protocol.h"
#include "run.h"
#include "session.h"
#include "split.h"
#include "stats.h"
#include "tls.h"
#include "wire.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

typedef struct profile_node {
    struct profile_node *next;
    st_profile p;
} profile_node;

typedef struct remote {
    const st_remote_opts *o;
    nng_socket sock;
    st_session *ss;

    st_plan plan;
    const st_engine_ops *engine;
    profile_node *profiles; /* every profile handed to the run: it may read any until freed */
    st_slice slice;
    bool has_slice;
    uint64_t from_q;

    st_run *run; /* once started */
    bool run_closed, realised, coord_done;
    uint64_t t0_local;
    st_stats sec;

    /* tls+tcp:// only: the pipe in use, set from nng's pipe events (see drop_silent_pipe). */
    bool tls;
    _Atomic uint32_t pipe_id;
} remote;

/* On nng's thread: only records which pipe is current. */
static void on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    remote *r = arg;
    if (ev == NNG_PIPE_EV_ADD_POST) {
        atomic_store(&r->pipe_id, nng_pipe_id(p));
    } else {
        uint32_t id = (uint32_t)nng_pipe_id(p);
        atomic_compare_exchange_strong(&r->pipe_id, &id, 0);
    }
}

/* nng 1.5.2's TLS pipe can miss its peer's close and keep a dead connection for good (the
 * dialer never dials again). A TLS pipe that brought no reply in time is closed here, so that
 * the dialer dials anew and the REQ socket sends the request again over the new pipe. */
static void drop_silent_pipe(remote *r)
{
    uint32_t id = r->tls ? atomic_exchange(&r->pipe_id, 0) : 0;
    if (id != 0) {
        nng_pipe p = {.id = id};
        st_debug("no reply over the TLS connection in time: closing it to dial again");
        nng_pipe_close(p);
    }
}

/* One request of the session and its reply. Returns what st_session_reply returned, or
 * ST_ETIMEDOUT / ST_ECONNECT when no reply came (the session knows); cmds is written either way. */
static int exchange(remote *r, st_session_cmds *cmds)
{
    memset(cmds, 0, sizeof(*cmds));
    uint8_t *buf;
    size_t len;
    int timeout_ms;
    int rc = st_session_request(r->ss, &buf, &len, &timeout_ms, NULL);
    if (rc) {
        return rc;
    }
    nng_socket_set_ms(r->sock, NNG_OPT_RECVTIMEO, timeout_ms);
    int rv = nng_send(r->sock, buf, len, 0);
    free(buf);
    if (rv == 0) {
        void *rbuf;
        size_t rlen;
        rv = nng_recv(r->sock, &rbuf, &rlen, NNG_FLAG_ALLOC);
        if (rv == 0) {
            rc = st_session_reply(r->ss, rbuf, rlen, cmds);
            nng_free(rbuf, rlen);
            if (rc == ST_EPROTO || rc == ST_EINVAL) {
                st_warn("dropped a reply from the coordinator: %s", st_strerror(rc));
            }
            return rc;
        }
    }
    st_session_lost(r->ss);
    drop_silent_pipe(r);
    return rv == NNG_ETIMEDOUT ? ST_ETIMEDOUT : ST_ECONNECT;
}

static void fail_plan(remote *r, const char *fmt, const char *detail)
{
    char error[256];
    snprintf(error, sizeof(error), fmt, detail);
    st_error("%s", error);
    st_session_fail(r->ss, error);
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

/* A new plan and share (the session decided it is new and nothing runs yet). */
static void apply_prepare(remote *r, const Stampede__Prepare *p)
{
    char err[512] = "";
    st_plan_fini(&r->plan);
    st_slice_fini(&r->slice);
    st_plan_init(&r->plan);
    int rc = st_wire_plan_load(p->plan, p->assignment, r->o->cpus, &r->plan, err, sizeof(err));
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
    /* Before READY: an agent that cannot open its connections says so now, not at t0. */
    if (st_run_reserve_fds(&r->plan, err, sizeof(err))) {
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
    st_session_prepared(r->ss, p->assignment->epoch);
    st_info("prepared: epoch %u, %s, engine %s, %d threads, %d connections",
            p->assignment->epoch, r->plan.closed_loop ? "closed loop" : "open loop",
            r->engine->name, r->plan.threads, r->plan.connections);
}

static void apply_start(remote *r, uint64_t t0_local)
{
    char err[512] = "";
    r->t0_local = t0_local;
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
    st_run_licence(r->run, st_session_licence_ns(r->ss));
    st_session_started(r->ss);
    int64_t lead = (int64_t)r->t0_local - (int64_t)st_clock_mono_ns();
    st_info("start in %.1f ms (epoch %u)", (double)lead / 1e6, st_session_epoch(r->ss));
}

/* A newer share while running (the session checked the epoch). */
static void apply_assignment(remote *r, const Stampede__Assignment *a)
{
    if (r->plan.closed_loop) {
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
        st_session_assigned(r->ss, a->epoch);
        st_info("re-assigned: epoch %u, %u of every %llu requests from request %llu", a->epoch,
                has ? slice.n_residues : 0, (unsigned long long)(has ? slice.period : 0),
                (unsigned long long)a->from_q);
    }
    st_slice_fini(&slice);
}

static void apply(remote *r, const st_session_cmds *c)
{
    if (c->prepare) {
        apply_prepare(r, c->prepare);
    }
    if (c->start) {
        apply_start(r, c->t0_local_ns);
    }
    if (c->assignment && r->run) {
        apply_assignment(r, c->assignment);
    }
    if (c->stop && r->run) {
        st_run_stop(r->run);
    }
    if (c->done) {
        r->coord_done = true;
    }
}

/* Takes the seconds the run has ready, waiting for one until deadline_ns. Returns how many. */
static int pull_seconds(remote *r, uint64_t deadline_ns)
{
    int n = 0;
    while (r->run && !r->run_closed) {
        int rc = st_run_next(r->run, &r->sec, n == 0 ? deadline_ns : 0);
        if (rc == ST_ETIMEDOUT) {
            break;
        }
        if (rc == ST_ECLOSED) {
            r->run_closed = true;
            st_session_end(r->ss);
            n++;
            break;
        }
        if (st_session_push(r->ss, &r->sec, NULL) == 0) {
            n++;
        }
    }
    if (r->run && !r->realised) {
        uint64_t start;
        if (st_run_realised_start(r->run, r->t0_local, &start) == 0) {
            st_session_first_send(r->ss, start);
            r->realised = true;
        }
    }
    return n;
}

/* Clock pings and the registration, back to back until accepted or the connect deadline.
 * Returns the exit code to leave with, or -1 once registered. */
static int connect_and_register(remote *r)
{
    const char *url = r->o->url;
    while (st_session_get_phase(r->ss) != ST_SESSION_REGISTERED) {
        if (st_session_expired(r->ss)) {
            if (st_session_pings(r->ss) == 0) {
                st_error("no answer from the coordinator at %s within %d s", url,
                         ST_PROTO_CONNECT_DEADLINE_MS / 1000);
            } else {
                st_error("the coordinator at %s did not accept the registration in time", url);
            }
            return ST_EXIT_UNREACHABLE;
        }
        st_session_cmds cmds;
        int rc = exchange(r, &cmds);
        if (rc == ST_ENOTFOUND && st_session_get_phase(r->ss) != ST_SESSION_ENDED) {
            st_warn("the coordinator does not know this agent (%s): registering again",
                    st_session_refusal(r->ss));
            continue;
        }
        if (rc == ST_EAUTH || rc == ST_ENOTFOUND) {
            st_error("the coordinator refused this agent: %s", st_session_refusal(r->ss));
            return ST_EXIT_AUTH;
        }
        if (rc == ST_ENOMEM) {
            st_error("out of memory");
            return ST_EXIT_FAILURE;
        }
    }
    st_info("registered as agent %u of run %s (clock offset %.3f ms, rtt %.3f ms)",
            st_session_agent_id(r->ss), st_session_run_id(r->ss),
            (double)st_session_offset_ns(r->ss) / 1e6, (double)st_session_rtt_ns(r->ss) / 1e6);
    return -1;
}

static void remote_fini(remote *r)
{
    st_run_free(r->run);
    r->run = NULL;
    while (r->profiles) {
        profile_node *n = r->profiles->next;
        st_profile_fini(&r->profiles->p);
        free(r->profiles);
        r->profiles = n;
    }
    st_slice_fini(&r->slice);
    st_plan_fini(&r->plan);
    st_stats_fini(&r->sec);
    st_session_free(r->ss);
    nng_close(r->sock);
}

/* The coordinator's certificate, fetched and checked against the pin; retried while nothing
 * listens. Returns -1 with *cert set, else the exit code to leave with. */
static int fetch_pinned(const st_remote_opts *o, st_tls_cert **cert)
{
    char pin[ST_TLS_FINGERPRINT_LEN], err[512];
    if (st_tls_fingerprint_parse(o->tls_fingerprint, "--tls-fingerprint", pin, err,
                                 sizeof(err))) {
        st_error("%s", err);
        return ST_EXIT_USAGE;
    }
    uint64_t deadline = st_clock_mono_ns() + ST_PROTO_CONNECT_DEADLINE_MS * ST_NS_PER_MS;
    for (;;) {
        uint64_t now = st_clock_mono_ns();
        int left_ms = now < deadline ? (int)((deadline - now) / ST_NS_PER_MS) : 0;
        int rc = st_tls_fetch_pinned(o->url, pin, left_ms < 2000 ? left_ms : 2000, cert, err,
                                     sizeof(err));
        switch (rc) {
        case 0:
            st_info("the coordinator's certificate matches the pinned fingerprint");
            return -1;
        case ST_EAUTH:
            st_error("refusing the coordinator: %s", err);
            return ST_EXIT_AUTH;
        case ST_EINVAL:
            st_error("--coordinator: %s", err);
            return ST_EXIT_USAGE;
        case ST_ECONNECT:
        case ST_ETIMEDOUT:
            if (st_clock_mono_ns() + 100 * ST_NS_PER_MS < deadline) {
                nng_msleep(100);
                continue;
            }
            st_error("no answer from the coordinator within %d s: %s",
                     ST_PROTO_CONNECT_DEADLINE_MS / 1000, err);
            return ST_EXIT_UNREACHABLE;
        default:
            st_error("cannot check the coordinator's certificate: %s",
                     rc == ST_ENOMEM ? "out of memory" : err);
            return rc == ST_ENOMEM ? ST_EXIT_FAILURE : ST_EXIT_UNREACHABLE;
        }
    }
}

/* Dials the coordinator, in the background: plain tcp://, or tls+tcp:// trusting only the
 * pinned certificate (remote.h). Returns -1 once dialing, else the exit code to leave with. */
static int dial(remote *r)
{
    const st_remote_opts *o = r->o;
    if (!st_tls_url_is_tls(o->url)) {
        int rv = nng_dial(r->sock, o->url, NULL, NNG_FLAG_NONBLOCK);
        if (rv != 0) {
            st_error("--coordinator %s: %s", o->url, nng_strerror(rv));
            return ST_EXIT_UNREACHABLE;
        }
        return -1;
    }
    st_tls_cert *cert = NULL;
    int code = fetch_pinned(o, &cert);
    if (code >= 0) {
        return code;
    }
    r->tls = true;
    nng_pipe_notify(r->sock, NNG_PIPE_EV_ADD_POST, on_pipe, r);
    nng_pipe_notify(r->sock, NNG_PIPE_EV_REM_POST, on_pipe, r);
    nng_dialer d;
    nng_tls_config *cfg = NULL;
    int rv = nng_dialer_create(&d, r->sock, o->url);
    if (rv == 0 && (rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT)) == 0 &&
        (rv = nng_tls_config_ca_chain(cfg, st_tls_cert_pem(cert), NULL)) == 0 &&
        (rv = nng_tls_config_server_name(cfg, st_tls_cert_name(cert))) == 0 &&
        (rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) == 0 &&
        (rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg)) == 0) {
        rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK);
    }
    if (cfg) {
        nng_tls_config_free(cfg); /* the dialer holds its own reference */
    }
    st_tls_cert_free(cert);
    if (rv != 0) {
        st_error("--coordinator %s: %s", o->url, nng_strerror(rv));
        return ST_EXIT_UNREACHABLE;
    }
    return -1;
}

static int session_open(remote *r)
{
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    char name[320];
    if (r->o->name) {
        snprintf(name, sizeof(name), "%s", r->o->name);
    } else {
        snprintf(name, sizeof(name), "%s-%d", host, (int)getpid());
    }
    st_session_cfg cfg;
    st_session_cfg_defaults(&cfg);
    if (getrandom(&cfg.instance_id, sizeof(cfg.instance_id), 0) != sizeof(cfg.instance_id)) {
        cfg.instance_id = st_clock_wall_ns() ^ (uint64_t)getpid();
    }
    cfg.token = r->o->token;
    cfg.name = name;
    cfg.host = host;
    cfg.pid = (uint32_t)getpid();
    cfg.cores = (uint32_t)r->o->cpus;
    cfg.threads = (uint32_t)(r->o->threads > 0 ? r->o->threads : r->o->cpus);
    cfg.version = ST_VERSION;
    cfg.task_arn = r->o->task_arn;
    cfg.availability_zone = r->o->availability_zone;
    cfg.cluster = r->o->cluster;
    cfg.task_definition = r->o->task_definition;
    cfg.cpu_vcpus = r->o->cpu_vcpus;
    cfg.has_clock_error_bound = r->o->has_clock_error_bound;
    cfg.clock_error_bound_ms = r->o->clock_error_bound_ms;
    return st_session_new(&r->ss, &cfg);
}

int st_remote_run(const st_remote_opts *o, volatile sig_atomic_t *stop_signal)
{
    remote r;
    memset(&r, 0, sizeof(r));
    r.o = o;
    st_plan_init(&r.plan);
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
    nng_socket_set_ms(r.sock, NNG_OPT_SENDTIMEO, ST_PROTO_EXCHANGE_TIMEOUT_MS);
    nng_socket_set_size(r.sock, NNG_OPT_RECVMAXSZ, 256u << 20);
    /* The session's connect deadline starts once dialing does (a TLS pin check may have waited
     * for the coordinator already). */
    if ((code = dial(&r)) >= 0) {
        goto out;
    }
    code = ST_EXIT_FAILURE;
    if (session_open(&r)) {
        st_error("out of memory");
        goto out;
    }
    if ((code = connect_and_register(&r)) >= 0) {
        goto out;
    }
    bool signalled = false;
    for (;;) {
        uint64_t now = st_clock_mono_ns();
        uint64_t due = st_session_next_due(r.ss);
        if (r.run && !r.run_closed) {
            pull_seconds(&r, now < due ? due : now);
        } else if (now < due) {
            nng_msleep((nng_duration)((due - now) / ST_NS_PER_MS + 1));
        }
        if (*stop_signal && !signalled) {
            signalled = true;
            st_info("signal %d: stopping the load", (int)*stop_signal);
            if (st_session_stop(r.ss) && r.run) {
                st_run_stop(r.run);
            }
        }
        /* The dead-man: the workers check the licence before every send themselves (a paused
         * process that resumes never sends its backlog); here the load is stopped for good and
         * only the records go on. */
        if (st_session_get_phase(r.ss) == ST_SESSION_REGISTERED && !st_session_is_silenced(r.ss) &&
            st_clock_mono_ns() >= st_session_licence_ns(r.ss)) {
            char why[160];
            snprintf(why, sizeof(why), "no acknowledged exchange with the coordinator for %d ms",
                     ST_PROTO_AGENT_SILENCE_MS);
            st_error("%s: stopping the load; undelivered records are kept for %d s", why,
                     ST_PROTO_DELIVERY_MS / 1000);
            st_session_silenced(r.ss, why);
            if (r.run) {
                st_run_stop(r.run);
            } else {
                st_session_end(r.ss);
            }
        }
        /* A fresh record (or the end of the load) makes the update due at once. */
        if (st_clock_mono_ns() >= st_session_next_due(r.ss)) {
            st_session_cmds cmds;
            int rc = exchange(&r, &cmds);
            if (rc == ST_ENOTFOUND && st_session_get_phase(r.ss) != ST_SESSION_ENDED) {
                /* The coordinator does not know this agent: whatever it was sending is in no
                 * plan. The load stops, its records go with it, and the agent registers anew. */
                st_warn("the coordinator does not know this agent (%s): stopping the load and "
                        "registering again",
                        st_session_refusal(r.ss));
                st_run_free(r.run);
                r.run = NULL;
                r.run_closed = r.realised = false;
                if ((code = connect_and_register(&r)) >= 0) {
                    goto out;
                }
                continue;
            }
            if (rc == ST_ENOTFOUND) {
                st_error("the coordinator still does not know this agent after %d registrations "
                         "again: %s",
                         st_session_reregisters(r.ss), st_session_refusal(r.ss));
                code = ST_EXIT_AUTH;
                goto out;
            }
            if (rc == ST_EAUTH) {
                st_error("the coordinator refused an update: %s", st_session_refusal(r.ss));
                code = ST_EXIT_AUTH;
                goto out;
            }
            if (rc == 0) {
                apply(&r, &cmds);
            }
            if (r.run && !st_session_is_silenced(r.ss)) {
                st_run_licence(r.run, st_session_licence_ns(r.ss));
            }
        }
        if (r.coord_done) {
            if (st_session_is_silenced(r.ss)) {
                st_error("the coordinator has every record of this agent, whose load stopped "
                         "early: no word from the coordinator in time");
                code = ST_EXIT_UNREACHABLE;
            } else if (!st_session_is_started(r.ss) && !signalled) {
                st_error("the coordinator ended the run before it started (it stopped or gave up "
                         "waiting for agents): nothing was sent");
                code = ST_EXIT_UNREACHABLE;
            } else {
                code = st_session_state(r.ss) == STAMPEDE__AGENT_STATE__AGENT_FAILED
                           ? ST_EXIT_FAILURE
                           : ST_EXIT_OK;
            }
            break;
        }
        if (st_session_is_silenced(r.ss)) {
            bool nothing_left = (!r.run || r.run_closed) && st_session_unacked(r.ss) == 0 &&
                                !st_session_is_started(r.ss);
            if (nothing_left || st_session_undelivered(r.ss)) {
                if (st_session_unacked(r.ss) > 0) {
                    st_error("no word from the coordinator for %d s after the load stopped: %zu "
                             "records of this agent are lost",
                             ST_PROTO_DELIVERY_MS / 1000, st_session_unacked(r.ss));
                } else {
                    st_error("no word from the coordinator: the load stopped and the agent exits");
                }
                code = ST_EXIT_UNREACHABLE;
                break;
            }
        }
        if (signalled && st_session_state(r.ss) == STAMPEDE__AGENT_STATE__AGENT_DONE &&
            st_session_unacked(r.ss) == 0) {
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
