#include "fuzz_common.h"
#include "clock.h"
#include "log.h"

#include <string.h>

int st_fuzz_frame_next(st_fuzz_frames *fr, uint64_t *now_ns, const uint8_t **msg, size_t *len)
{
    if (fr->off > fr->size || fr->size - fr->off < 3) {
        return 0;
    }
    const uint8_t *h = fr->data + fr->off;
    *now_ns += (uint64_t)h[0] * 10 * ST_NS_PER_MS;
    size_t n = (size_t)h[1] | (size_t)h[2] << 8;
    fr->off += 3;
    if (n > fr->size - fr->off) {
        n = fr->size - fr->off;
    }
    *msg = fr->data + fr->off;
    *len = n;
    fr->off += n;
    return 1;
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
