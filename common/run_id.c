#include "run_id.h"
#include "clock.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

void st_random_hex(char *out, size_t bytes)
{
    unsigned char buf[32];
    if (bytes > sizeof(buf)) {
        bytes = sizeof(buf);
    }
    if (getrandom(buf, bytes, 0) != (ssize_t)bytes) {
        uint64_t x = st_clock_wall_ns() ^ ((uint64_t)getpid() << 32);
        for (size_t i = 0; i < bytes; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            buf[i] = (unsigned char)(x >> 56);
        }
    }
    for (size_t i = 0; i < bytes; i++) {
        sprintf(out + 2 * i, "%02x", buf[i]);
    }
    out[2 * bytes] = '\0';
}

void st_run_id_make(char *out, size_t len)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char stamp[32], rnd[9];
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    st_random_hex(rnd, 4);
    snprintf(out, len, "%s-%s", stamp, rnd);
}

bool st_run_id_check(const char *id, char *why, size_t why_len)
{
    /* D: a digit, x: a lowercase hexadecimal digit; the rest stands for itself. */
    static const char form[] = "DDDDDDDDTDDDDDDZ-xxxxxxxx";
    size_t n = id ? strlen(id) : 0;
    if (n != ST_RUN_ID_LEN) {
        snprintf(why, why_len, "%zu characters, a run id has %d (like 20261121T213500Z-3f9a1c2e)",
                 n, ST_RUN_ID_LEN);
        return false;
    }
    for (size_t i = 0; i < ST_RUN_ID_LEN; i++) {
        char c = i < n ? id[i] : '\0';
        bool ok = form[i] == 'D'   ? c >= '0' && c <= '9'
                  : form[i] == 'x' ? (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
                                   : c == form[i];
        if (!ok) {
            snprintf(why, why_len,
                     "character %zu is not what a run id has there (a run id is the UTC start "
                     "and 8 lowercase hexadecimal digits, like 20261121T213500Z-3f9a1c2e)",
                     i + 1);
            return false;
        }
    }
    return true;
}
