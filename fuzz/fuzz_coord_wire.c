/*
 * fuzz_coord_wire: the coordinator's core (coordinator/coord.h) fed whatever bytes agents could
 * send, on a fake clock: decoding (st_wire_unpack), admission, record checks and the merge.
 *
 * An input is a sequence of messages, each [1 byte: clock step in 10 ms units][2 bytes: length,
 * little-endian][length bytes]; after each the core ticks. Run "fuzz-run", token "fuzz-token",
 * one agent expected, 10 rps for 5 s, two request names (records carry per-name parts).
 */
#include "clock.h"
#include "coord.h"
#include "fuzz_common.h"
#include "plan.h"
#include "stats.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static st_plan g_plan;
static int g_ready;

static void on_second(void *ctx, const st_coord_second *sec)
{
    (void)ctx;
    /* A second is handed out with its merged stats, for its own index. */
    if (!sec->stats || sec->stats->second != sec->second || sec->agents < 0) {
        abort();
    }
}

static int setup(void)
{
    static const char plan[] = "{\"requests\": [{\"name\": \"a\", \"url\": \"http://127.0.0.1:9/a\"}, "
                               "{\"name\": \"b\", \"url\": \"http://127.0.0.1:9/b\"}], "
                               "\"rate\": 10, \"duration\": 5}";
    char err[256];
    st_fuzz_quiet();
    st_plan_init(&g_plan);
    if (st_plan_parse(&g_plan, plan, sizeof(plan) - 1, "fuzz", err, sizeof(err)) != 0 ||
        st_plan_finish(&g_plan, 1, err, sizeof(err)) != 0) {
        return -1;
    }
    g_ready = 1;
    return 0;
}

/* The core handles each message as from an agent, then ticks. */
static int one_message(void *ctx, const uint8_t *msg, size_t len)
{
    st_coord *c = ctx;
    uint8_t *reply = NULL;
    size_t reply_len = 0;
    int rc = st_coord_handle(c, msg, len, &reply, &reply_len);
    if (rc == 0 && !reply) {
        abort(); /* the contract: 0 comes with a reply */
    }
    free(reply);
    st_coord_tick(c);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_ready && setup() != 0) {
        abort();
    }
    st_fuzz_env env;
    st_fuzz_start(&env);
    st_coord_cfg cfg;
    st_coord_cfg_defaults(&cfg);
    cfg.plan = &g_plan;
    cfg.run_id = "fuzz-run";
    cfg.token = "fuzz-token";
    cfg.expected_agents = 1;
    cfg.clock = &env.clock;
    cfg.on_second = on_second;
    st_coord *c = NULL;
    if (st_coord_new(&c, &cfg) != 0) {
        abort();
    }
    st_fuzz_frames_each(data, size, &env.now_ns, one_message, c);
    st_coord_stop(c);
    for (int i = 0; i < 20; i++) {
        env.now_ns += 500 * ST_NS_PER_MS;
        st_coord_tick(c);
    }
    st_coord_free(c);
    return 0;
}
