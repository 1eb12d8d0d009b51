/* report/model.c: a JSON report (Artillery 2's shape) into an rpt_report.
 *
 * Lenient about what is missing (an absent section is an empty one), strict
 * about what is wrong: a section of the wrong type or a number that is not a
 * number is refused with its path, because a page that silently drops half
 * a report misleads more than an error does. Names are borrowed from the
 * jansson document, which the report keeps alive until rpt_free.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/report.h"

typedef struct parse_ctx {
    const char *name;
    char *err;
} parse_ctx;

CU_PRINTF(2, 3) static int fail(parse_ctx *c, const char *fmt, ...)
{
    int n = snprintf(c->err, CU_ERRLEN, "%s: ", c->name);
    if (n < 0 || n >= CU_ERRLEN)
        return -EINVAL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + n, (size_t)(CU_ERRLEN - n), fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* A number, or NAN for null (JavaScript's NaN) and absence. -EINVAL for
 * anything else. */
static int number(parse_ctx *c, const json_t *v, const char *where, const char *key, double *out)
{
    if (!v || json_is_null(v)) {
        *out = NAN;
        return 0;
    }
    if (!json_is_number(v))
        return fail(c, "%s.%s: expected a number, found %s", where, key,
                    json_is_string(v) ? "a string" : json_is_object(v) ? "an object"
                    : json_is_array(v) ? "an array" : "a boolean");
    *out = json_number_value(v);
    return 0;
}

/* An epoch-ms stamp: a number or a string of digits (Artillery's
 * intermediate `period`); -1 when absent or null. */
static int stamp(parse_ctx *c, const json_t *o, const char *where, const char *key, int64_t *out)
{
    const json_t *v = json_object_get(o, key);
    *out = -1;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        long long n = strtoll(s, &end, 10);
        if (!*s || *end || errno || n < 0)
            return fail(c, "%s.%s: expected milliseconds, found \"%.40s\"", where, key, s);
        *out = n;
        return 0;
    }
    double d;
    int rc = number(c, v, where, key, &d);
    if (rc)
        return rc;
    if (!(d >= 0 && d < 9e15))
        return fail(c, "%s.%s: expected milliseconds, found %g", where, key, d);
    *out = (int64_t)d;
    return 0;
}

static int section(parse_ctx *c, const json_t *o, const char *where, const char *key,
                   const json_t **out)
{
    const json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return fail(c, "%s.%s: expected an object", where, key);
    *out = v;
    return 0;
}

static int values(parse_ctx *c, const json_t *sec, const char *where, const char *key,
                  rpt_value **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!sec)
        return 0;
    *out = cu_calloc(json_object_size(sec) + 1, sizeof **out);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)sec, k, v) {
        char path[256];
        snprintf(path, sizeof path, "%s.%s", where, key);
        double d;
        int rc = number(c, v, path, k, &d);
        if (rc)
            return rc;
        if (isnan(d))
            continue;
        (*out)[(*n)++] = (rpt_value){k, d};
    }
    return 0;
}

static int stat_of(parse_ctx *c, const char *where, const char *name, const json_t *v, rpt_stat *s)
{
    char path[512];
    snprintf(path, sizeof path, "%s.%s", where, name);
    if (!json_is_object(v))
        return fail(c, "%s: expected an object of statistics", path);
    const struct { const char *k; double *dst; } f[] = {
        {"count", &s->count}, {"min", &s->min}, {"max", &s->max}, {"mean", &s->mean},
        {"p50", &s->p50}, {"p75", &s->p75}, {"p90", &s->p90}, {"p95", &s->p95},
        {"p99", &s->p99}, {"p999", &s->p999},
    };
    s->name = name;
    for (size_t i = 0; i < CU_ARRAY_LEN(f); i++) {
        int rc = number(c, json_object_get(v, f[i].k), path, f[i].k, f[i].dst);
        if (rc)
            return rc;
    }
    if (isnan(s->p50)) {
        int rc = number(c, json_object_get(v, "median"), path, "median", &s->p50);
        if (rc)
            return rc;
    }
    return 0;
}

static int metrics(parse_ctx *c, const json_t *o, const char *where, rpt_metrics *m)
{
    memset(m, 0, sizeof *m);
    m->period = m->first_ms = m->last_ms = -1;
    if (!json_is_object(o))
        return fail(c, "%s: expected an object", where);
    const json_t *counters, *rates, *sums, *hists;
    int rc;
    if ((rc = section(c, o, where, "counters", &counters)) ||
        (rc = section(c, o, where, "rates", &rates)) ||
        (rc = section(c, o, where, "summaries", &sums)) ||
        (rc = section(c, o, where, "histograms", &hists)) ||
        (rc = stamp(c, o, where, "period", &m->period)) ||
        (rc = stamp(c, o, where, "firstMetricAt", &m->first_ms)) ||
        (rc = stamp(c, o, where, "lastMetricAt", &m->last_ms)) ||
        (rc = values(c, counters, where, "counters", &m->counters, &m->ncounters)) ||
        (rc = values(c, rates, where, "rates", &m->rates, &m->nrates)))
        return rc;
    /* Older writers left only firstCounterAt/firstHistogramAt; use the earliest. */
    static const char *const firsts[] = {"firstCounterAt", "firstHistogramAt"};
    static const char *const lasts[] = {"lastCounterAt", "lastHistogramAt"};
    for (size_t i = 0; i < 2; i++) {
        int64_t t;
        if ((rc = stamp(c, o, where, firsts[i], &t)))
            return rc;
        if (t >= 0 && (m->first_ms < 0 || t < m->first_ms))
            m->first_ms = t;
        if ((rc = stamp(c, o, where, lasts[i], &t)))
            return rc;
        if (t > m->last_ms)
            m->last_ms = t;
    }
    /* `histograms` is a copy of `summaries` (notes 2.4): read one of them. */
    const json_t *s = sums ? sums : hists;
    const char *skey = sums ? "summaries" : "histograms";
    if (s) {
        char path[256];
        snprintf(path, sizeof path, "%s.%s", where, skey);
        m->summaries = cu_calloc(json_object_size(s) + 1, sizeof *m->summaries);
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)s, k, v) {
            if (json_is_null(v))
                continue;
            if ((rc = stat_of(c, path, k, v, &m->summaries[m->nsummaries])))
                return rc;
            m->nsummaries++;
        }
    }
    return 0;
}

static void metrics_free(rpt_metrics *m)
{
    free(m->counters);
    free(m->rates);
    free(m->summaries);
}

static int cmp_window(const void *a, const void *b)
{
    int64_t x = ((const rpt_metrics *)a)->period, y = ((const rpt_metrics *)b)->period;
    return x < y ? -1 : x > y;
}

static int ensure_of(parse_ctx *c, const json_t *e, rpt_report *r)
{
    if (!e || json_is_null(e))
        return 0;
    if (!json_is_object(e))
        return fail(c, "ensure: expected an object");
    const json_t *passed = json_object_get(e, "passed"), *checks = json_object_get(e, "checks");
    if (!json_is_boolean(passed))
        return fail(c, "ensure.passed: expected true or false");
    if (checks && !json_is_array(checks))
        return fail(c, "ensure.checks: expected an array");
    r->has_ensure = true;
    r->ensure_passed = json_is_true(passed);
    size_t n = checks ? json_array_size(checks) : 0;
    r->checks = cu_calloc(n + 1, sizeof *r->checks);
    for (size_t i = 0; i < n; i++) {
        const json_t *k = json_array_get(checks, i);
        const json_t *text = json_object_get(k, "check"), *ok = json_object_get(k, "passed");
        const json_t *opt = json_object_get(k, "optional");
        if (!json_is_object(k) || !json_is_string(text) || !json_is_boolean(ok) ||
            (opt && !json_is_boolean(opt)))
            return fail(c, "ensure.checks[%zu]: expected {\"check\": text, \"passed\": bool, "
                           "\"optional\": bool}", i);
        r->checks[r->nchecks++] = (rpt_check){json_string_value(text), json_is_true(ok),
                                              json_is_true(opt)};
    }
    return 0;
}

int rpt_parse(const char *text, size_t len, const char *name, rpt_report **out, char err[CU_ERRLEN])
{
    *out = NULL;
    parse_ctx c = {name ? name : "report", err};
    json_error_t je;
    json_t *doc = json_loadb(text, len, 0, &je);
    if (!doc) {
        snprintf(err, CU_ERRLEN, "%s:%d:%d: not valid JSON: %s", c.name, je.line, je.column, je.text);
        return -EINVAL;
    }
    rpt_report *r = cu_calloc(1, sizeof *r);
    r->doc = doc;
    int rc;
    const json_t *agg = json_is_object(doc) ? json_object_get(doc, "aggregate") : NULL;
    if (!agg) {
        rc = fail(&c, "not a load-test report: expected an object with \"aggregate\" "
                      "(as `cutover run -o` or `artillery run -o` write)");
        goto fail;
    }
    if (json_is_object(agg) && !json_object_get(agg, "counters") &&
        (json_object_get(agg, "scenariosCreated") || json_object_get(agg, "latency"))) {
        rc = fail(&c, "an Artillery 1.x report (the legacy format, "
                      "ARTILLERY_USE_LEGACY_REPORT_FORMAT): only Artillery 2's shape is read");
        goto fail;
    }
    if ((rc = metrics(&c, agg, "aggregate", &r->aggregate)))
        goto fail;
    const json_t *inter = json_object_get(doc, "intermediate");
    if (inter && !json_is_null(inter)) {
        if (!json_is_array(inter)) {
            rc = fail(&c, "intermediate: expected an array");
            goto fail;
        }
        size_t n = json_array_size(inter);
        r->windows = cu_calloc(n + 1, sizeof *r->windows);
        for (size_t i = 0; i < n; i++) {
            char where[64];
            snprintf(where, sizeof where, "intermediate[%zu]", i);
            rpt_metrics *w = &r->windows[r->nwindows++];
            if ((rc = metrics(&c, json_array_get(inter, i), where, w)))
                goto fail;
            if (w->period < 0 && w->first_ms >= 0)
                w->period = w->first_ms - w->first_ms % 10000;
            if (w->period < 0) {
                rc = fail(&c, "%s: no period and no firstMetricAt: cannot place it in time", where);
                goto fail;
            }
        }
        qsort(r->windows, r->nwindows, sizeof *r->windows, cmp_window);
    }
    if ((rc = ensure_of(&c, json_object_get(doc, "ensure"), r)))
        goto fail;
    *out = r;
    return 0;
fail:
    rpt_free(r);
    return rc;
}

int rpt_load(const char *path, rpt_report **out, char err[CU_ERRLEN])
{
    *out = NULL;
    cu_buf b = CU_BUF_INIT;
    int rc = cu_read_file(path, &b, err);
    if (rc == 0)
        rc = rpt_parse(b.data ? b.data : "", b.len, path, out, err);
    cu_buf_free(&b);
    return rc;
}

void rpt_free(rpt_report *r)
{
    if (!r)
        return;
    metrics_free(&r->aggregate);
    for (size_t i = 0; i < r->nwindows; i++)
        metrics_free(&r->windows[i]);
    free(r->windows);
    free(r->checks);
    json_decref(r->doc);
    free(r);
}

/* ---- look-ups ------------------------------------------------------------------------------- */
const rpt_value *rpt_counter(const rpt_metrics *m, const char *name)
{
    for (size_t i = 0; i < m->ncounters; i++)
        if (!strcmp(m->counters[i].name, name))
            return &m->counters[i];
    return NULL;
}

double rpt_counter_or(const rpt_metrics *m, const char *name, double dflt)
{
    const rpt_value *v = rpt_counter(m, name);
    return v ? v->value : dflt;
}

const rpt_value *rpt_rate(const rpt_metrics *m, const char *name)
{
    for (size_t i = 0; i < m->nrates; i++)
        if (!strcmp(m->rates[i].name, name))
            return &m->rates[i];
    return NULL;
}

const rpt_stat *rpt_summary(const rpt_metrics *m, const char *name)
{
    for (size_t i = 0; i < m->nsummaries; i++)
        if (!strcmp(m->summaries[i].name, name))
            return &m->summaries[i];
    return NULL;
}
