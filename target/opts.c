#include "opts.h"
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: stampede-target [OPTIONS]\n"
    "\n"
    "A controllable HTTP/1.1 server for load tests: fixed or random latency, a deterministic "
    "status\n"
    "mix, response size, forced reconnects and stalls. It prints 'listening on HOST:PORT' once it\n"
    "accepts connections, and its final counters as one JSON line when stopped by SIGINT/SIGTERM.\n"
    "\n"
    "Options:\n"
    "  --listen HOST:PORT       address to listen on (default 127.0.0.1:0, 0 = a free port;\n"
    "                           IPv6 as [::1]:8080)\n"
    "  --port-file FILE         also write the port number to FILE\n"
    "  --latency-ms X|MIN-MAX   wait X ms (or uniformly MIN..MAX ms) before each answer (default "
    "0)\n"
    "  --seed N                 seed of the latency PRNG (default 1)\n"
    "  --status SPEC            status mix by weight, e.g. 200:95,500:5 (default 200); answers "
    "are\n"
    "                           interleaved so that every run of (sum of weights) answers has "
    "exactly\n"
    "                           the given counts\n"
    "  --body-bytes N           response body size (default 2)\n"
    "  --max-body-bytes N       larger request bodies get 413 (default 1048576)\n"
    "  --close-every N          close each connection after its N-th answer\n"
    "  --stall-at SECONDS       start a stall SECONDS after start (needs --stall-ms)\n"
    "  --stall-ms MS            length of that stall: answers are held until it ends\n"
    "  --log-level LEVEL        debug, info, warn or error (default warn)\n"
    "  -h, --help               print this help and exit\n"
    "\n"
    "Control endpoints (not counted, never delayed or stalled):\n"
    "  GET  /__target/stats          counters as JSON\n"
    "  POST /__target/reset          zero the counters and restart the status mix\n"
    "  POST /__target/stall?ms=MS    hold every answer for the next MS milliseconds\n"
    "\n"
    "Exit status: 0 after SIGINT/SIGTERM, 1 when it cannot listen, 2 for a bad flag.\n";

const char *st_target_usage(void)
{
    return usage;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9') {
        return ST_EINVAL;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return ST_EINVAL;
    }
    *out = v;
    return 0;
}

static int parse_seconds(const char *s, double max, double *out)
{
    if (!s || !((*s >= '0' && *s <= '9') || *s == '.')) {
        return ST_EINVAL;
    }
    return st_delay_number(s, max, out);
}

static int parse_listen(st_target_opts *o, const char *s)
{
    const char *host, *host_end, *colon;
    if (s[0] == '[') {
        host = s + 1;
        host_end = strchr(host, ']');
        if (!host_end || host_end[1] != ':') {
            return ST_EINVAL;
        }
        colon = host_end + 1;
    } else {
        host = s;
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s))) {
            return ST_EINVAL; /* no port, or an IPv6 address without brackets */
        }
        host_end = colon;
    }
    size_t len = (size_t)(host_end - host);
    if (len >= sizeof(o->listen_host)) {
        return ST_EINVAL;
    }
    uint64_t port;
    if (parse_u64(colon + 1, 0, 65535, &port) != 0) {
        return ST_EINVAL;
    }
    if (len == 0) {
        strcpy(o->listen_host, "0.0.0.0"); /* ":8080" means every IPv4 address */
    } else {
        memcpy(o->listen_host, host, len);
        o->listen_host[len] = '\0';
    }
    o->listen_port = (int)port;
    return 0;
}

static const char *const value_flags[] = {
    "--listen",   "--port-file",  "--latency-ms",     "--seed",
    "--status",   "--body-bytes", "--max-body-bytes", "--close-every",
    "--stall-at", "--stall-ms",   "--log-level",
};

static bool takes_value(const char *name)
{
    for (size_t i = 0; i < sizeof(value_flags) / sizeof(value_flags[0]); i++) {
        if (strcmp(name, value_flags[i]) == 0) {
            return true;
        }
    }
    return false;
}

int st_target_opts_parse(st_target_opts *o, int argc, char **argv, char *err, size_t err_len)
{
    memset(o, 0, sizeof(*o));
    strcpy(o->listen_host, "127.0.0.1");
    o->seed = 1;
    st_mix_single(&o->mix, 200);
    o->body_bytes = ST_TARGET_DEFAULT_BODY_BYTES;
    o->max_body_bytes = ST_TARGET_DEFAULT_MAX_BODY_BYTES;
    o->log_level = ST_LOG_WARN;
    if (err_len > 0) {
        err[0] = '\0';
    }
    bool has_stall_at = false, has_stall_ms = false;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            o->help = true;
            continue;
        }
        char name[32];
        const char *val = NULL;
        const char *eq = strchr(arg, '=');
        size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
        if (strncmp(arg, "--", 2) != 0 || name_len >= sizeof(name)) {
            return st_errf(err, err_len, ST_EINVAL, "unknown argument '%s' (see --help)", arg);
        }
        memcpy(name, arg, name_len);
        name[name_len] = '\0';
        if (!takes_value(name)) {
            return st_errf(err, err_len, ST_EINVAL, "unknown flag '%s' (see --help)", name);
        }
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            return st_errf(err, err_len, ST_EINVAL, "%s needs a value (see --help)", name);
        }

        const char *why = NULL;
        uint64_t u;
        if (strcmp(name, "--listen") == 0) {
            if (parse_listen(o, val) != 0) {
                return st_errf(err, err_len, ST_EINVAL,
                               "--listen '%s': expected HOST:PORT with PORT 0..65535, e.g. "
                               "127.0.0.1:8080 or [::1]:0",
                               val);
            }
        } else if (strcmp(name, "--port-file") == 0) {
            if (*val == '\0') {
                return st_errf(err, err_len, ST_EINVAL, "--port-file: the path is empty");
            }
            o->port_file = val;
        } else if (strcmp(name, "--latency-ms") == 0) {
            if (st_delay_parse(&o->latency, val, &why) != 0) {
                return st_errf(err, err_len, ST_EINVAL, "--latency-ms '%s': %s", val, why);
            }
            o->has_latency = o->latency.max_ms > 0;
        } else if (strcmp(name, "--seed") == 0) {
            if (parse_u64(val, 0, UINT64_MAX, &o->seed) != 0) {
                return st_errf(err, err_len, ST_EINVAL,
                               "--seed '%s': expected a non-negative integer", val);
            }
        } else if (strcmp(name, "--status") == 0) {
            if (st_mix_parse(&o->mix, val, &why) != 0) {
                return st_errf(err, err_len, ST_EINVAL, "--status '%s': %s (e.g. 200:95,500:5)",
                               val, why);
            }
        } else if (strcmp(name, "--body-bytes") == 0) {
            if (parse_u64(val, 0, ST_TARGET_MAX_BODY_BYTES, &u) != 0) {
                return st_errf(err, err_len, ST_EINVAL,
                               "--body-bytes '%s': expected an integer 0..%d", val,
                               ST_TARGET_MAX_BODY_BYTES);
            }
            o->body_bytes = (size_t)u;
        } else if (strcmp(name, "--max-body-bytes") == 0) {
            if (parse_u64(val, 0, 1ULL << 40, &u) != 0) {
                return st_errf(err, err_len, ST_EINVAL,
                               "--max-body-bytes '%s': expected an integer 0..1099511627776", val);
            }
            o->max_body_bytes = (size_t)u;
        } else if (strcmp(name, "--close-every") == 0) {
            if (parse_u64(val, 1, UINT32_MAX, &o->close_every) != 0) {
                return st_errf(err, err_len, ST_EINVAL,
                               "--close-every '%s': expected an integer 1..4294967295", val);
            }
        } else if (strcmp(name, "--stall-at") == 0) {
            if (parse_seconds(val, 86400, &o->stall_at_s) != 0) {
                return st_errf(err, err_len, ST_EINVAL,
                               "--stall-at '%s': expected seconds 0..86400 (e.g. 2.5)", val);
            }
            has_stall_at = true;
        } else if (strcmp(name, "--stall-ms") == 0) {
            if (parse_u64(val, 1, (uint64_t)ST_DELAY_MAX_MS, &o->stall_ms) != 0) {
                return st_errf(err, err_len, ST_EINVAL,
                               "--stall-ms '%s': expected an integer 1..3600000", val);
            }
            has_stall_ms = true;
        } else if (strcmp(name, "--log-level") == 0) {
            if (st_log_level_parse(val, &o->log_level) != 0) {
                return st_errf(err, err_len, ST_EINVAL,
                               "--log-level '%s': expected debug, info, warn or error", val);
            }
        }
    }
    if (has_stall_at != has_stall_ms) {
        return st_errf(
            err, err_len, ST_EINVAL, "%s needs %s too: a scheduled stall has a start and a length",
            has_stall_at ? "--stall-at" : "--stall-ms", has_stall_at ? "--stall-ms" : "--stall-at");
    }
    o->has_stall = has_stall_at;
    st_delay_seed(&o->latency, o->seed);
    return 0;
}
