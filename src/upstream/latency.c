/* upstream/latency: parsing and sampling the --latency distributions.
 * Samples are milliseconds as doubles; the server rounds them to its
 * timers' millisecond resolution. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/upstream.h"

#define Z99 2.3263478740408408  /* standard normal quantile at 0.99 */
#define MAX_MS (3600.0 * 1000.0) /* an hour: anything above is a typo */

/* Parses one duration of exactly `n` bytes into milliseconds. */
static int parse_duration(const char *s, size_t n, double *ms)
{
    char tmp[64];
    if (n == 0 || n >= sizeof tmp)
        return -EINVAL;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    char *end;
    errno = 0;
    double v = strtod(tmp, &end);
    if (end == tmp || errno || !isfinite(v) || v < 0)
        return -EINVAL;
    double scale;
    if (*end == 0 || !strcmp(end, "ms"))
        scale = 1;
    else if (!strcmp(end, "us"))
        scale = 0.001;
    else if (!strcmp(end, "s"))
        scale = 1000;
    else
        return -EINVAL;
    *ms = v * scale;
    return *ms <= MAX_MS ? 0 : -EINVAL;
}

static int bad(char err[CU_ERRLEN], const char *spec, const char *why)
{
    snprintf(err, CU_ERRLEN,
             "invalid latency '%s': %s (expected fixed:5ms, uniform:1ms-10ms or "
             "lognormal:p50=20ms,p99=200ms)", spec, why);
    return -EINVAL;
}

static int parse_lognormal(upstream_latency *l, const char *spec, const char *args,
                           char err[CU_ERRLEN])
{
    double p50 = -1, p99 = -1;
    const char *p = args;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (!eq)
            return bad(err, spec, "lognormal wants p50=...,p99=...");
        size_t kn = (size_t)(eq - p);
        double *dst = kn == 3 && !memcmp(p, "p50", 3) ? &p50
                      : kn == 3 && !memcmp(p, "p99", 3) ? &p99 : NULL;
        if (!dst)
            return bad(err, spec, "lognormal takes only p50 and p99");
        if (parse_duration(eq + 1, n - kn - 1, dst) < 0)
            return bad(err, spec, "bad duration");
        p = comma ? comma + 1 : p + n;
    }
    if (p50 < 0 || p99 < 0)
        return bad(err, spec, "lognormal needs both p50 and p99");
    if (p50 <= 0)
        return bad(err, spec, "p50 must be above zero");
    if (p99 < p50)
        return bad(err, spec, "p99 must not be below p50");
    l->kind = UPSTREAM_LAT_LOGNORMAL;
    l->a_ms = p50;
    l->b_ms = p99;
    l->mu = log(p50);
    l->sigma = (log(p99) - log(p50)) / Z99;
    return 0;
}

int upstream_latency_parse(upstream_latency *l, const char *spec, char err[CU_ERRLEN])
{
    memset(l, 0, sizeof *l);
    if (!spec || !*spec || !strcmp(spec, "none") || !strcmp(spec, "0"))
        return 0;
    const char *colon = strchr(spec, ':');
    if (!colon)
        return bad(err, spec, "missing 'kind:'");
    size_t kn = (size_t)(colon - spec);
    const char *args = colon + 1;
    if (kn == 5 && !memcmp(spec, "fixed", 5)) {
        if (parse_duration(args, strlen(args), &l->a_ms) < 0)
            return bad(err, spec, "bad duration");
        l->b_ms = l->a_ms;
        l->kind = UPSTREAM_LAT_FIXED;
        return 0;
    }
    if (kn == 7 && !memcmp(spec, "uniform", 7)) {
        const char *dash = strchr(args, '-');
        if (!dash)
            return bad(err, spec, "uniform wants MIN-MAX");
        if (parse_duration(args, (size_t)(dash - args), &l->a_ms) < 0 ||
            parse_duration(dash + 1, strlen(dash + 1), &l->b_ms) < 0)
            return bad(err, spec, "bad duration");
        if (l->b_ms < l->a_ms)
            return bad(err, spec, "MAX is below MIN");
        l->kind = UPSTREAM_LAT_UNIFORM;
        return 0;
    }
    if (kn == 9 && !memcmp(spec, "lognormal", 9))
        return parse_lognormal(l, spec, args, err);
    return bad(err, spec, "unknown distribution");
}

/* A standard normal variate (Box-Muller; one of the pair is dropped, which
 * keeps the sampler stateless). */
static double std_normal(cu_rng *r)
{
    double u1 = 1.0 - cu_rng_double(r); /* (0, 1] */
    double u2 = cu_rng_double(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double upstream_latency_sample(const upstream_latency *l, cu_rng *r)
{
    double v;
    switch (l->kind) {
    case UPSTREAM_LAT_FIXED:
        return l->a_ms;
    case UPSTREAM_LAT_UNIFORM:
        return l->a_ms + (l->b_ms - l->a_ms) * cu_rng_double(r);
    case UPSTREAM_LAT_LOGNORMAL:
        v = exp(l->mu + l->sigma * std_normal(r));
        return v < MAX_MS ? v : MAX_MS;
    case UPSTREAM_LAT_NONE:
    default:
        return 0;
    }
}

void upstream_latency_describe(const upstream_latency *l, char *buf, size_t len)
{
    switch (l->kind) {
    case UPSTREAM_LAT_FIXED:
        snprintf(buf, len, "fixed:%gms", l->a_ms);
        break;
    case UPSTREAM_LAT_UNIFORM:
        snprintf(buf, len, "uniform:%gms-%gms", l->a_ms, l->b_ms);
        break;
    case UPSTREAM_LAT_LOGNORMAL:
        snprintf(buf, len, "lognormal:p50=%gms,p99=%gms", l->a_ms, l->b_ms);
        break;
    case UPSTREAM_LAT_NONE:
    default:
        snprintf(buf, len, "none");
        break;
    }
}
