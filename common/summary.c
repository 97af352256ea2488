#include "summary.h"
#include "error.h"

#include <math.h>

double st_us_to_ms(uint64_t us)
{
    return (double)us / 1000.0;
}

int st_hist_with_values(st_hist **out, const st_hist *h, uint64_t value_us, uint64_t n)
{
    st_hist *c;
    if (st_hist_new(&c)) {
        return ST_ENOMEM;
    }
    st_hist_merge(c, h);
    if (n) {
        st_hist_record_n(c, value_us, n);
    }
    *out = c;
    return 0;
}

static const char *const latency_keys[] = {"min", "mean", "p50", "p90", "p99", "p999", "max"};

static cJSON *latency_json(const st_hist *h)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        return NULL;
    }
    if (st_hist_count(h) == 0) {
        /* No response: there is no latency to give, and 0 ms would read as a fast one. */
        for (size_t i = 0; i < sizeof(latency_keys) / sizeof(latency_keys[0]); i++) {
            cJSON_AddNullToObject(o, latency_keys[i]);
        }
        return o;
    }
    cJSON_AddNumberToObject(o, "min", st_us_to_ms(st_hist_min(h)));
    cJSON_AddNumberToObject(o, "mean", round(st_hist_mean(h)) / 1000.0);
    cJSON_AddNumberToObject(o, "p50", st_us_to_ms(st_hist_percentile(h, 50)));
    cJSON_AddNumberToObject(o, "p90", st_us_to_ms(st_hist_percentile(h, 90)));
    cJSON_AddNumberToObject(o, "p99", st_us_to_ms(st_hist_percentile(h, 99)));
    cJSON_AddNumberToObject(o, "p999", st_us_to_ms(st_hist_percentile(h, 99.9)));
    cJSON_AddNumberToObject(o, "max", st_us_to_ms(st_hist_max(h)));
    return o;
}

cJSON *st_summary_json(const st_summary *s)
{
    const st_counts *c = &s->total->c;
    cJSON *root = cJSON_CreateObject();
    cJSON *req = cJSON_AddObjectToObject(root, "requests");
    cJSON *rate = cJSON_AddObjectToObject(root, "rate");
    cJSON *err = cJSON_AddObjectToObject(root, "errors");
    cJSON *bytes = cJSON_AddObjectToObject(root, "bytes");
    cJSON *lat = latency_json(s->total->lat);
    cJSON *raw = latency_json(s->total->lat_raw);
    cJSON *tmo = NULL;
    bool tmo_ok = true;
    if (s->timeout_ms > 0) {
        st_hist *h = NULL;
        tmo_ok = st_hist_with_values(&h, s->total->lat, (uint64_t)s->timeout_ms * 1000,
                                     c->err_timeout) == 0 &&
                 (tmo = latency_json(h)) != NULL;
        st_hist_free(h);
    }
    if (!root || !req || !rate || !err || !bytes || !lat || !raw || !tmo_ok) {
        cJSON_Delete(lat);
        cJSON_Delete(raw);
        cJSON_Delete(tmo);
        cJSON_Delete(root);
        return NULL;
    }
    uint64_t done = st_counts_done(c);
    cJSON_AddNumberToObject(req, "total", (double)done);
    cJSON_AddNumberToObject(req, "ok", (double)c->ok);
    cJSON_AddNumberToObject(req, "failed", (double)st_counts_failed(c));
    cJSON_AddNumberToObject(req, "sent", (double)c->sent);
    cJSON_AddNumberToObject(req, "late", (double)c->late);
    cJSON_AddNumberToObject(req, "dropped", (double)c->dropped);
    double dur = s->duration_s > 0 ? s->duration_s : 0;
    cJSON_AddNumberToObject(rate, "target_rps",
                            s->closed_loop || dur == 0 ? 0 : s->target_requests / dur);
    cJSON_AddNumberToObject(rate, "achieved_rps", dur > 0 ? (double)done / dur : 0);
    cJSON_AddNumberToObject(root, "duration_s", dur);
    cJSON_AddBoolToObject(root, "closed_loop", s->closed_loop);
    cJSON_AddItemToObject(root, "latency_ms", lat);
    cJSON_AddItemToObject(root, "latency_uncorrected_ms", raw);
    if (tmo) {
        cJSON_AddItemToObject(root, "latency_with_timeouts_ms", tmo);
    }
    cJSON_AddNumberToObject(err, "http_4xx", (double)c->http_4xx);
    cJSON_AddNumberToObject(err, "http_5xx", (double)c->http_5xx);
    cJSON_AddNumberToObject(err, "connect", (double)c->err_connect);
    cJSON_AddNumberToObject(err, "timeout", (double)c->err_timeout);
    cJSON_AddNumberToObject(err, "other", (double)c->err_other);
    /* Due but never sent: this machine had no file descriptor for it (not the target's doing). */
    cJSON_AddNumberToObject(err, "local", (double)c->err_local);
    cJSON_AddNumberToObject(err, "tls", (double)c->err_tls);
    cJSON_AddNumberToObject(err, "cert", (double)c->err_cert);
    cJSON_AddNumberToObject(bytes, "in", (double)c->bytes_in);
    cJSON_AddNumberToObject(bytes, "out", (double)c->bytes_out);
    return root;
}

static void print_latency(FILE *f, const char *label, const st_hist *h)
{
    if (st_hist_count(h) == 0) {
        fprintf(f, "  %-22s no responses\n", label);
        return;
    }
    fprintf(f, "  %-22s p50 %9.3f  p90 %9.3f  p99 %9.3f  p99.9 %9.3f  max %9.3f ms\n", label,
            st_us_to_ms(st_hist_percentile(h, 50)), st_us_to_ms(st_hist_percentile(h, 90)),
            st_us_to_ms(st_hist_percentile(h, 99)), st_us_to_ms(st_hist_percentile(h, 99.9)),
            st_us_to_ms(st_hist_max(h)));
}

void st_summary_print(FILE *f, const st_summary *s)
{
    const st_counts *c = &s->total->c;
    uint64_t done = st_counts_done(c);
    double dur = s->duration_s > 0 ? s->duration_s : 0;
    fprintf(f, "\n%llu requests in %.2f s\n", (unsigned long long)done, dur);
    if (s->closed_loop) {
        fprintf(f, "  %-22s %.1f rps (closed loop: as fast as the connections allow)\n", "rate",
                dur > 0 ? (double)done / dur : 0);
    } else {
        fprintf(f, "  %-22s target %.1f rps, achieved %.1f rps\n", "rate",
                dur > 0 ? s->target_requests / dur : 0, dur > 0 ? (double)done / dur : 0);
    }
    fprintf(f, "  %-22s ok %llu, failed %llu (4xx %llu, 5xx %llu, connect %llu, timeout %llu, "
               "other %llu, tls %llu, cert %llu)\n",
            "requests", (unsigned long long)c->ok, (unsigned long long)st_counts_failed(c),
            (unsigned long long)c->http_4xx, (unsigned long long)c->http_5xx,
            (unsigned long long)c->err_connect, (unsigned long long)c->err_timeout,
            (unsigned long long)c->err_other, (unsigned long long)c->err_tls,
            (unsigned long long)c->err_cert);
    fprintf(f, "  %-22s sent %llu, late %llu, dropped %llu, not sent for lack of file descriptors "
               "%llu\n",
            "sends", (unsigned long long)c->sent, (unsigned long long)c->late,
            (unsigned long long)c->dropped, (unsigned long long)c->err_local);
    print_latency(f, "latency (corrected)", s->total->lat);
    print_latency(f, "latency (uncorrected)", s->total->lat_raw);
    if (s->timeout_ms > 0 && c->err_timeout > 0) {
        /* The corrected view with every timeout counted at the timeout: a stall shows as slow,
         * not as the few fast answers around it. */
        st_hist *h = NULL;
        if (st_hist_with_values(&h, s->total->lat, (uint64_t)s->timeout_ms * 1000,
                                c->err_timeout) == 0) {
            print_latency(f, "latency (w/ timeouts)", h);
            fprintf(f,
                    "  %-22s (%llu timeouts, each counted at its timeout of %u ms: a lower "
                    "bound)\n",
                    "", (unsigned long long)c->err_timeout, s->timeout_ms);
        }
        st_hist_free(h);
    }
    fprintf(f, "  %-22s in %.2f MB, out %.2f MB\n", "traffic", (double)c->bytes_in / 1e6,
            (double)c->bytes_out / 1e6);
}

int st_progress_format(char *buf, size_t len, uint32_t second, double target_rps,
                       const st_stats *sec, int agents)
{
    const st_counts *c = &sec->c;
    char lat[64];
    if (st_hist_count(sec->lat) == 0) {
        /* As wide as the figures, so that the columns after it stay in place. */
        snprintf(lat, sizeof(lat), "%-32s", "no responses");
    } else {
        snprintf(lat, sizeof(lat), "p50 %8.3f ms  p99 %8.3f ms",
                 st_us_to_ms(st_hist_percentile(sec->lat, 50)),
                 st_us_to_ms(st_hist_percentile(sec->lat, 99)));
    }
    int n = snprintf(buf, len,
                     "[%5us] target %8.1f rps  achieved %8llu rps  ok %8llu  errors %6llu  "
                     "%s  inflight %5llu",
                     second + 1, target_rps, (unsigned long long)st_counts_done(c),
                     (unsigned long long)c->ok, (unsigned long long)st_counts_failed(c), lat,
                     (unsigned long long)c->inflight);
    if (agents >= 0 && n >= 0 && (size_t)n < len) {
        n += snprintf(buf + n, len - (size_t)n, "  agents %d", agents);
    }
    if (n < 0) {
        return 0;
    }
    return (size_t)n >= len ? (int)len - 1 : n;
}
