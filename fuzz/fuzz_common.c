#include "fuzz_common.h"
#include "log.h"

#include <string.h>

void st_fuzz_frames_each(const uint8_t *data, size_t size, uint64_t *now_ns,
                         int (*one)(void *ctx, const uint8_t *msg, size_t len), void *ctx)
{
    size_t off = 0;
    while (size - off >= 3) {
        *now_ns += (uint64_t)data[off] * 10 * ST_NS_PER_MS;
        size_t len = (size_t)data[off + 1] | (size_t)data[off + 2] << 8;
        off += 3;
        if (len > size - off) {
            len = size - off;
        }
        const uint8_t *msg = data + off;
        off += len;
        if (one(ctx, msg, len)) {
            return;
        }
    }
}

int st_fuzz_frame_put(uint8_t *buf, size_t cap, size_t *used, uint8_t step, const uint8_t *msg,
                      size_t n)
{
    if (n > 0xffff || *used > cap || cap - *used < 3 + n) {
        return -1;
    }
    uint8_t *at = buf + *used;
    at[0] = step;
    at[1] = (uint8_t)(n & 0xff);
    at[2] = (uint8_t)(n >> 8);
    if (n) {
        memcpy(at + 3, msg, n);
    }
    *used += 3 + n;
    return 0;
}

void st_fuzz_quiet(void)
{
    static int quiet;
    if (!quiet) {
        st_log_init("fuzz", (st_log_level)(ST_LOG_ERROR + 1));
        quiet = 1;
    }
}

void st_fuzz_start(st_fuzz_env *e)
{
    st_fuzz_quiet();
    e->now_ns = 1000 * ST_NS_PER_S;
    e->clock = (st_clock){st_clock_fake_now, &e->now_ns};
}

void st_fuzz_session_cfg(st_session_cfg *cfg, const st_clock *clock, const char *name, uint32_t pid,
                         int clock_pings)
{
    st_session_cfg_defaults(cfg);
    cfg->clock = clock;
    cfg->token = "fuzz-token";
    cfg->instance_id = 42;
    cfg->name = name;
    cfg->host = "localhost";
    cfg->pid = pid;
    cfg->cores = 2;
    cfg->threads = 2;
    cfg->version = name;
    cfg->clock_pings = clock_pings;
}
