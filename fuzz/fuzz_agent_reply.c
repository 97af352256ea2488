/*
 * fuzz_agent_reply: what an agent reads from its coordinator: replies decoded by the agent's
 * session (common/session.h) and the plan and share of a Prepare loaded as the agent loads them
 * (st_wire_plan_load), on a fake clock.
 *
 * An input is a sequence of replies, each [1 byte: clock step in 10 ms units][2 bytes: length,
 * little-endian][length bytes]; before each, the session makes its next request, as the agent
 * would. Oracle besides the sanitizers: the reply's return code is one the header lists, and a
 * loaded plan is finished.
 */
#include "clock.h"
#include "error.h"
#include "fuzz_common.h"
#include "plan.h"
#include "session.h"
#include "wire.h"

#include <stdint.h>
#include <stdlib.h>

static void take_commands(st_session *s, const st_session_cmds *cmds)
{
    if (cmds->prepare) {
        st_plan p;
        st_plan_init(&p);
        char err[256];
        if (st_wire_plan_load(cmds->prepare->plan, cmds->prepare->assignment, 2, &p, err,
                              sizeof(err)) == 0) {
            if (!p.finished) {
                abort();
            }
            if (cmds->prepare->assignment) {
                st_session_prepared(s, cmds->prepare->assignment->epoch);
            }
        }
        st_plan_fini(&p);
    }
    if (cmds->start) {
        st_session_started(s);
    }
    if (cmds->assignment) {
        st_profile prof;
        if (st_wire_profile_load(cmds->assignment->stages, cmds->assignment->n_stages, &prof) ==
            0) {
            st_profile_fini(&prof);
            st_session_assigned(s, cmds->assignment->epoch);
        }
    }
}

/* Before each reply the session makes its next request, as the agent would; it ends the input
 * when the session has ended. */
static int one_reply(void *ctx, const uint8_t *msg, size_t len)
{
    st_session *s = ctx;
    uint8_t *req = NULL;
    size_t req_len = 0;
    int timeout_ms = 0;
    st_session_kind kind;
    if (st_session_request(s, &req, &req_len, &timeout_ms, &kind) != 0) {
        return 1; /* ended, or nothing to send */
    }
    free(req);
    st_session_cmds cmds;
    int rc = st_session_reply(s, msg, len, &cmds);
    if (rc != 0 && rc != ST_EPROTO && rc != ST_EINVAL && rc != ST_EAUTH && rc != ST_ENOTFOUND &&
        rc != ST_ENOMEM) {
        abort();
    }
    if (rc == 0) {
        take_commands(s, &cmds);
    }
    return rc == ST_EAUTH || rc == ST_ENOTFOUND || cmds.done;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_fuzz_env env;
    st_fuzz_start(&env);
    st_session_cfg cfg;
    st_fuzz_session_cfg(&cfg, &env.clock, "fuzz", 1, 1);
    st_session *s = NULL;
    if (st_session_new(&s, &cfg) != 0) {
        abort();
    }
    st_fuzz_frames_each(data, size, &env.now_ns, one_reply, s);
    st_session_free(s);
    return 0;
}
