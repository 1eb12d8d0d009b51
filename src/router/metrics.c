/* router/metrics.c: per-colour measurement (router_int.h).
 *
 * Each colour keeps a ring of `horizon` one-second buckets keyed by the
 * monotonic second; a bucket whose key is stale is reset before reuse, so
 * reading any window is a sum over at most `horizon` buckets and recording
 * touches one bucket. Totals since start (by status code, the duration
 * histogram at fixed SLO bounds, bytes) feed /metrics, which must never go
 * backwards, so they are kept apart from the rings.
 *
 * Thread rules: the loop thread records; any thread may read a window or
 * render the text. One mutex guards it all (records are a few additions).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "router/router_int.h"

const double rt_dur_bounds[RT_DUR_NB - 1] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                             0.5,   1,    2.5,   5,    10};

void rt_stats_init(rt_stats *s, uint64_t horizon_s, uint64_t now_ns)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->horizon = horizon_s ? horizon_s : 900;
    s->start_ns = now_ns;
    for (int c = 0; c < 2; c++) {
        s->ring[c] = cu_calloc(s->horizon, sizeof(rt_bucket));
        for (uint64_t i = 0; i < s->horizon; i++) {
            s->ring[c][i].sec = -1;
            hist_init(&s->ring[c][i].lat);
        }
    }
}

void rt_stats_free(rt_stats *s)
{
    for (int c = 0; c < 2; c++) {
        if (!s->ring[c])
            continue;
        for (uint64_t i = 0; i < s->horizon; i++)
            hist_free(&s->ring[c][i].lat);
        free(s->ring[c]);
        s->ring[c] = NULL;
    }
    pthread_mutex_destroy(&s->mu);
}

static rt_bucket *bucket_for(rt_stats *s, router_color c, int64_t sec)
{
    rt_bucket *b = &s->ring[c][(uint64_t)sec % s->horizon];
    if (b->sec != sec) {
        hist lat = b->lat;
        hist_reset(&lat);
        memset(b, 0, sizeof *b);
        b->lat = lat;
        b->sec = sec;
    }
    return b;
}

void rt_stats_record(rt_stats *s, router_color c, int status, double ms, uint64_t bin,
                     uint64_t bout, uint64_t now_ns)
{
    int64_t sec = (int64_t)(now_ns / 1000000000ULL);
    int cls = status >= 100 && status < 600 ? status / 100 : 0;
    pthread_mutex_lock(&s->mu);
    rt_bucket *b = bucket_for(s, c, sec);
    b->requests++;
    b->bin += bin;
    b->bout += bout;
    s->bin[c] += bin;
    s->bout[c] += bout;
    if (cls == 0) {
        b->terr++;
        s->terr[c]++;
        s->by_code[c][0]++;
    } else {
        b->codes[cls]++;
        if (status >= 500)
            b->e5xx++;
        s->by_code[c][status]++;
        hist_record(&b->lat, ms);
        double sec_v = ms / 1000.0;
        int k = 0;
        while (k < RT_DUR_NB - 1 && sec_v > rt_dur_bounds[k])
            k++;
        s->dur[c][k]++;
        s->dur_sum[c] += sec_v;
        s->dur_count[c]++;
    }
    pthread_mutex_unlock(&s->mu);
}

void rt_stats_retry(rt_stats *s, router_color c)
{
    pthread_mutex_lock(&s->mu);
    s->retries[c]++;
    pthread_mutex_unlock(&s->mu);
}

int rt_stats_window(rt_stats *s, router_color c, uint64_t seconds, uint64_t now_ns,
                    router_sample *out)
{
    if ((c != ROUTER_BLUE && c != ROUTER_GREEN) || seconds == 0 || !out)
        return -EINVAL;
    if (seconds > s->horizon)
        seconds = s->horizon;
    int64_t cur = (int64_t)(now_ns / 1000000000ULL);
    out->requests = out->errors_5xx = out->transport_errors = 0;
    memset(out->codes, 0, sizeof out->codes);
    out->bytes_in = out->bytes_out = 0;
    hist_reset(&out->latency_ms);
    pthread_mutex_lock(&s->mu);
    for (uint64_t k = 0; k < seconds; k++) {
        int64_t sec = cur - (int64_t)k;
        if (sec < 0)
            break;
        const rt_bucket *b = &s->ring[c][(uint64_t)sec % s->horizon];
        if (b->sec != sec)
            continue;
        out->requests += b->requests;
        out->errors_5xx += b->e5xx;
        out->transport_errors += b->terr;
        for (int i = 0; i < 6; i++)
            out->codes[i] += b->codes[i];
        out->bytes_in += b->bin;
        out->bytes_out += b->bout;
        hist_merge(&out->latency_ms, &b->lat);
    }
    pthread_mutex_unlock(&s->mu);
    double frac = (double)(now_ns % 1000000000ULL) / 1e9;
    double covered = (double)(seconds - 1) + frac;
    double alive = (double)(now_ns - s->start_ns) / 1e9;
    out->seconds = covered < alive ? covered : alive;
    return 0;
}

static const char *const CNAME[2] = {"blue", "green"};

void rt_stats_prometheus(rt_stats *s, cu_buf *o, double weight, double effective,
                         const char *server_lines)
{
    pthread_mutex_lock(&s->mu);
    cu_buf_appends(o, "# HELP cutover_requests_total Requests answered by an upstream, by colour "
                      "and status class.\n# TYPE cutover_requests_total counter\n");
    for (int c = 0; c < 2; c++)
        for (int cls = 1; cls <= 5; cls++) {
            uint64_t n = 0;
            for (int code = cls * 100; code < cls * 100 + 100; code++)
                n += s->by_code[c][code];
            cu_buf_appendf(o, "cutover_requests_total{color=\"%s\",code_class=\"%dxx\"} %llu\n",
                           CNAME[c], cls, (unsigned long long)n);
        }
    cu_buf_appends(o, "# HELP cutover_responses_total Responses by colour and status code.\n"
                      "# TYPE cutover_responses_total counter\n");
    for (int c = 0; c < 2; c++)
        for (int code = 100; code < 600; code++)
            if (s->by_code[c][code])
                cu_buf_appendf(o, "cutover_responses_total{color=\"%s\",code=\"%d\"} %llu\n",
                               CNAME[c], code, (unsigned long long)s->by_code[c][code]);
    cu_buf_appends(o, "# HELP cutover_transport_errors_total Attempts that got no response "
                      "(connect failure, reset, timeout).\n"
                      "# TYPE cutover_transport_errors_total counter\n");
    for (int c = 0; c < 2; c++)
        cu_buf_appendf(o, "cutover_transport_errors_total{color=\"%s\"} %llu\n", CNAME[c],
                       (unsigned long long)s->terr[c]);
    cu_buf_appends(o, "# HELP cutover_retries_total Requests retried on this colour.\n"
                      "# TYPE cutover_retries_total counter\n");
    for (int c = 0; c < 2; c++)
        cu_buf_appendf(o, "cutover_retries_total{color=\"%s\"} %llu\n", CNAME[c],
                       (unsigned long long)s->retries[c]);
    cu_buf_appends(o, "# HELP cutover_received_bytes_total Bytes received from clients.\n"
                      "# TYPE cutover_received_bytes_total counter\n");
    for (int c = 0; c < 2; c++)
        cu_buf_appendf(o, "cutover_received_bytes_total{color=\"%s\"} %llu\n", CNAME[c],
                       (unsigned long long)s->bin[c]);
    cu_buf_appends(o, "# HELP cutover_sent_bytes_total Bytes sent to clients.\n"
                      "# TYPE cutover_sent_bytes_total counter\n");
    for (int c = 0; c < 2; c++)
        cu_buf_appendf(o, "cutover_sent_bytes_total{color=\"%s\"} %llu\n", CNAME[c],
                       (unsigned long long)s->bout[c]);
    cu_buf_appends(o, "# HELP cutover_request_duration_seconds Time from the request head to "
                      "the end of the response.\n"
                      "# TYPE cutover_request_duration_seconds histogram\n");
    for (int c = 0; c < 2; c++) {
        uint64_t cum = 0;
        for (int k = 0; k < RT_DUR_NB; k++) {
            cum += s->dur[c][k];
            if (k < RT_DUR_NB - 1)
                cu_buf_appendf(o, "cutover_request_duration_seconds_bucket{color=\"%s\",le=\"%g\"} "
                                  "%llu\n", CNAME[c], rt_dur_bounds[k], (unsigned long long)cum);
            else
                cu_buf_appendf(o, "cutover_request_duration_seconds_bucket{color=\"%s\",le=\"+Inf\"}"
                                  " %llu\n", CNAME[c], (unsigned long long)cum);
        }
        cu_buf_appendf(o, "cutover_request_duration_seconds_sum{color=\"%s\"} %.9g\n", CNAME[c],
                       s->dur_sum[c]);
        cu_buf_appendf(o, "cutover_request_duration_seconds_count{color=\"%s\"} %llu\n", CNAME[c],
                       (unsigned long long)s->dur_count[c]);
    }
    pthread_mutex_unlock(&s->mu);
    cu_buf_appends(o, "# HELP cutover_weight Configured share of requests, percent.\n"
                      "# TYPE cutover_weight gauge\n");
    cu_buf_appendf(o, "cutover_weight{color=\"blue\"} %.2f\ncutover_weight{color=\"green\"} %.2f\n",
                   100.0 - weight, weight);
    cu_buf_appends(o, "# HELP cutover_effective_weight Share in force after health, percent.\n"
                      "# TYPE cutover_effective_weight gauge\n");
    cu_buf_appendf(o,
                   "cutover_effective_weight{color=\"blue\"} %.2f\n"
                   "cutover_effective_weight{color=\"green\"} %.2f\n",
                   100.0 - effective, effective);
    if (server_lines && *server_lines) {
        cu_buf_appends(o, "# HELP cutover_server_up Whether an upstream server takes traffic.\n"
                          "# TYPE cutover_server_up gauge\n");
        cu_buf_appends(o, server_lines);
    }
}
