/* report/html.c: an rpt_report as one self-contained HTML page.
 *
 * The page is built here in C: the header figures, the tables (response
 * times, errors, scenarios, endpoints, windows, counters) as markup, and the
 * chart data as one JSON object in <script type="application/json">, which
 * the inline script of template.c draws on <canvas>. Nothing is fetched.
 *
 * Invariant: every string taken from the report goes through
 * rpt_html_escape (markup) or rpt_script_json (the data blob); the only
 * unescaped text is this file's own. A section whose metrics are absent is
 * left out, so an Artillery report without metrics-by-endpoint or ensure
 * simply has no such table. Latency from the intended send time
 * (cutover.response_time.intended) is shown beside http.response_time in
 * the header, the latency chart and the windows table only when present.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "report/report.h"
#include "report/internal.h"

#define MBE_PREFIX "plugins.metrics-by-endpoint."
#define MBE_RT_PREFIX MBE_PREFIX "response_time."
/* `cutover run --latency-from-intended`: shown beside http.response_time
 * wherever latency is, when the report has it. */
#define INTENDED "cutover.response_time.intended"
#define WINDOW_MS 10000
#define MAX_SERIES 8   /* more codes or errors than this are summed as "other" */

/* ---- formatting ----------------------------------------------------------------------------- */
/* A figure for people: "–" when absent, integers as integers with commas
 * every three digits, else 1 decimal (the precision Artillery reports). */
static void num(cu_buf *b, double v)
{
    if (isnan(v))
        cu_buf_appends(b, "\xe2\x80\x93");
    else if (fabs(v) < 1e15 && v == floor(v)) {
        char d[32];
        int n = snprintf(d, sizeof d, "%.0f", fabs(v));
        if (v < 0)
            cu_buf_appendc(b, '-');
        for (int i = 0; i < n; i++) {   /* 8,639,168: a thin space would not copy well */
            if (i && (n - i) % 3 == 0)
                cu_buf_appendc(b, ',');
            cu_buf_appendc(b, d[i]);
        }
    }
    else if (fabs(v) >= 0.05)
        cu_buf_appendf(b, "%.1f", v);
    else
        cu_buf_appendf(b, "%.2g", v);
}

/* 11.9 s, 5 min 3 s, 2 h 5 min. */
static void duration(cu_buf *b, double s)
{
    if (isnan(s))
        cu_buf_appends(b, "\xe2\x80\x93");
    else if (s < 60)
        cu_buf_appendf(b, "%.1f s", s);
    else if (s < 3600)
        cu_buf_appendf(b, "%d min %d s", (int)(s / 60), (int)fmod(s, 60));
    else
        cu_buf_appendf(b, "%.0f h %d min", floor(s / 3600), (int)fmod(s, 3600) / 60);
}

static void pct(cu_buf *b, double part, double whole)
{
    if (!(whole > 0) || isnan(part))
        cu_buf_appends(b, "\xe2\x80\x93");
    else if (part > 0 && part / whole < 0.001)
        cu_buf_appends(b, "&lt;0.1%");
    else
        cu_buf_appendf(b, "%.1f%%", part / whole * 100.0);
}

static void utc(cu_buf *b, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char s[40];
    strftime(s, sizeof s, "%Y-%m-%d %H:%M:%S UTC", &tm);
    cu_buf_appends(b, s);
}

static void esc(cu_buf *b, const char *s)
{
    rpt_html_escape(b, s);
}

static void td_num(cu_buf *b, double v)
{
    cu_buf_appends(b, "<td class=\"n\">");
    num(b, v);
    cu_buf_appends(b, "</td>");
}

static void td_text(cu_buf *b, const char *s)
{
    cu_buf_appends(b, "<td>");
    esc(b, s);
    cu_buf_appends(b, "</td>");
}

/* <tr><th>..</th>...</tr> from a '|'-separated list; a leading '#' marks a
 * numeric (right-aligned) column. */
static void thead(cu_buf *b, const char *cols)
{
    cu_buf_appends(b, "<thead><tr>");
    while (*cols) {
        size_t n = strcspn(cols, "|");
        bool numeric = cols[0] == '#';
        cu_buf_appends(b, numeric ? "<th class=\"n\">" : "<th>");
        cu_buf_append(b, cols + numeric, n - numeric);
        cu_buf_appends(b, "</th>");
        cols += n + (cols[n] == '|');
    }
    cu_buf_appends(b, "</tr></thead><tbody>");
}

/* ---- what the report says, gathered once ---------------------------------------------------- */
typedef struct code_count {
    char *code;
    double n;
} code_count;

typedef struct endpoint {
    char *url;
    code_count *codes, *errors;
    size_t ncodes, nerrors;
    double requests;             /* the sum of its status codes */
    const rpt_stat *rt;
} endpoint;

typedef struct facts {
    const rpt_report *r;
    const rpt_metrics *a;
    int64_t start, end;         /* -1 when unknown */
    double duration_s;          /* NAN when unknown */
    double errors, non2xx;
    endpoint *eps;
    size_t neps;
} facts;

static void add_count(code_count **v, size_t *n, const char *key, size_t keylen, double x)
{
    for (size_t i = 0; i < *n; i++)
        if (strlen((*v)[i].code) == keylen && !memcmp((*v)[i].code, key, keylen)) {
            (*v)[i].n += x;
            return;
        }
    *v = cu_realloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = (code_count){cu_strndup(key, keylen), x};
}

static endpoint *endpoint_get(facts *f, const char *url, size_t len)
{
    for (size_t i = 0; i < f->neps; i++)
        if (strlen(f->eps[i].url) == len && !memcmp(f->eps[i].url, url, len))
            return &f->eps[i];
    f->eps = cu_realloc(f->eps, (f->neps + 1) * sizeof *f->eps);
    endpoint *e = &f->eps[f->neps++];
    memset(e, 0, sizeof *e);
    e->url = cu_strndup(url, len);
    return e;
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* metrics-by-endpoint names (Artillery's plugin, and cutover's):
 *   <prefix>.<endpoint>.codes.<status>, <prefix>.<endpoint>.errors.<error>,
 *   <prefix>.response_time.<endpoint>. An endpoint may itself contain dots,
 * so the status is the last ".codes.<digits>" and the error follows the
 * first ".errors.". */
static void gather_endpoints(facts *f)
{
    const rpt_metrics *a = f->a;
    for (size_t i = 0; i < a->ncounters; i++) {
        const char *n = a->counters[i].name;
        if (!cu_startswith(n, MBE_PREFIX))
            continue;
        const char *rest = n + strlen(MBE_PREFIX);
        const char *codes = NULL;
        for (const char *p = strstr(rest, ".codes."); p; p = strstr(p + 1, ".codes."))
            if (all_digits(p + 7))
                codes = p;
        const char *errs = strstr(rest, ".errors.");
        if (codes && codes > rest) {
            endpoint *e = endpoint_get(f, rest, (size_t)(codes - rest));
            add_count(&e->codes, &e->ncodes, codes + 7, strlen(codes + 7), a->counters[i].value);
            e->requests += a->counters[i].value;
        } else if (errs && errs > rest) {
            endpoint *e = endpoint_get(f, rest, (size_t)(errs - rest));
            add_count(&e->errors, &e->nerrors, errs + 8, strlen(errs + 8), a->counters[i].value);
        }
    }
    for (size_t i = 0; i < a->nsummaries; i++) {
        const char *n = a->summaries[i].name;
        if (cu_startswith(n, MBE_RT_PREFIX) && n[strlen(MBE_RT_PREFIX)])
            endpoint_get(f, n + strlen(MBE_RT_PREFIX), strlen(n + strlen(MBE_RT_PREFIX)))->rt =
                &a->summaries[i];
    }
}

static void facts_init(facts *f, const rpt_report *r)
{
    memset(f, 0, sizeof *f);
    f->r = r;
    f->a = &r->aggregate;
    f->start = f->a->first_ms;
    f->end = f->a->last_ms;
    for (size_t i = 0; i < r->nwindows; i++) {
        const rpt_metrics *w = &r->windows[i];
        if (w->first_ms >= 0 && (f->start < 0 || w->first_ms < f->start))
            f->start = w->first_ms;
        if (w->last_ms > f->end)
            f->end = w->last_ms;
    }
    f->duration_s = f->start >= 0 && f->end >= f->start ? (double)(f->end - f->start) / 1000.0 : NAN;
    for (size_t i = 0; i < f->a->ncounters; i++) {
        const rpt_value *v = &f->a->counters[i];
        if (cu_startswith(v->name, "errors."))
            f->errors += v->value;
        else if (cu_startswith(v->name, "http.codes.") && !cu_startswith(v->name + 11, "2") &&
                 !cu_startswith(v->name + 11, "3"))
            f->non2xx += v->value;
    }
    gather_endpoints(f);
}

static void facts_free(facts *f)
{
    for (size_t i = 0; i < f->neps; i++) {
        endpoint *e = &f->eps[i];
        for (size_t j = 0; j < e->ncodes; j++)
            free(e->codes[j].code);
        for (size_t j = 0; j < e->nerrors; j++)
            free(e->errors[j].code);
        free(e->codes);
        free(e->errors);
        free(e->url);
    }
    free(f->eps);
}

/* ---- header --------------------------------------------------------------------------------- */
static void card(cu_buf *b, const char *cls, const char *label, const char *value, const char *sub)
{
    cu_buf_appendf(b, "<div class=\"card %s\"><div class=\"label\">%s</div><div class=\"value\">%s"
                      "</div><div class=\"sub\">%s</div></div>",
                   cls, label, value, sub ? sub : "");
}

static void header(cu_buf *b, const facts *f, const char *title)
{
    const rpt_metrics *a = f->a;
    cu_buf v = CU_BUF_INIT, s = CU_BUF_INIT;
    cu_buf_appends(b, "<header><h1>Load test report</h1><p class=\"meta\"><span class=\"src\">");
    esc(b, title);
    cu_buf_appends(b, "</span>");
    if (f->start >= 0) {
        cu_buf_appends(b, " &middot; ");
        utc(b, f->start);
        if (f->end >= f->start) {
            cu_buf_appends(b, " to ");
            utc(b, f->end);
        }
    }
    cu_buf_appends(b, "</p><div class=\"cards\">");

    duration(&v, f->duration_s);
    cu_buf_appendf(&s, "%zu intermediate window%s", f->r->nwindows, f->r->nwindows == 1 ? "" : "s");
    card(b, "", "Duration", v.data, s.data);

    double req = rpt_counter_or(a, "http.requests", NAN);
    cu_buf_reset(&v), cu_buf_reset(&s);
    num(&v, req);
    cu_buf_appends(&s, "responses ");
    num(&s, rpt_counter_or(a, "http.responses", NAN));
    card(b, "", "Requests", v.data, s.data);

    const rpt_value *rate = rpt_rate(a, "http.request_rate");
    cu_buf_reset(&v), cu_buf_reset(&s);
    num(&v, rate ? rate->value : NAN);
    cu_buf_appends(&v, " /s");
    if (!isnan(req) && f->duration_s > 0) {
        cu_buf_appends(&s, "requests / duration: ");
        num(&s, round(req / f->duration_s * 10) / 10);
        cu_buf_appends(&s, " /s");
    }
    card(b, "", "Request rate", v.data, s.data);

    double created = rpt_counter_or(a, "vusers.created", NAN);
    double failed = rpt_counter_or(a, "vusers.failed", 0);
    cu_buf_reset(&v), cu_buf_reset(&s);
    num(&v, failed);
    cu_buf_appends(&s, "of ");
    num(&s, created);
    cu_buf_appends(&s, " users (");
    pct(&s, failed, created);
    cu_buf_appends(&s, ")");
    card(b, failed > 0 ? "bad" : "good", "Failed users", v.data, s.data);

    cu_buf_reset(&v), cu_buf_reset(&s);
    num(&v, f->errors);
    cu_buf_appends(&s, "non-2xx/3xx responses: ");
    num(&s, f->non2xx);
    card(b, f->errors > 0 ? "bad" : "good", "Errors", v.data, s.data);

    const rpt_stat *rt = rpt_summary(a, "http.response_time");
    if (rt) {
        cu_buf_reset(&v), cu_buf_reset(&s);
        num(&v, rt->p95);
        cu_buf_appends(&v, " ms");
        cu_buf_appends(&s, "p50 ");
        num(&s, rt->p50);
        cu_buf_appends(&s, " &middot; p99 ");
        num(&s, rt->p99);
        cu_buf_appends(&s, " &middot; max ");
        num(&s, rt->max);
        card(b, "", "Response time p95", v.data, s.data);
    }
    const rpt_stat *it = rpt_summary(a, INTENDED);
    if (it) {
        cu_buf_reset(&v), cu_buf_reset(&s);
        num(&v, it->p95);
        cu_buf_appends(&v, " ms");
        cu_buf_appends(&s, "from the intended send: p50 ");
        num(&s, it->p50);
        cu_buf_appends(&s, " &middot; p99 ");
        num(&s, it->p99);
        cu_buf_appends(&s, " &middot; max ");
        num(&s, it->max);
        card(b, "", "Intended latency p95", v.data, s.data);
    }
    if (f->r->has_ensure) {
        size_t nfail = 0, nopt = 0;
        for (size_t i = 0; i < f->r->nchecks; i++) {
            nfail += !f->r->checks[i].passed;
            nopt += !f->r->checks[i].passed && f->r->checks[i].optional;
        }
        cu_buf_reset(&s);
        cu_buf_appendf(&s, "%zu check%s, %zu failed", f->r->nchecks, f->r->nchecks == 1 ? "" : "s",
                       nfail);
        if (nopt)
            cu_buf_appendf(&s, " (%zu optional)", nopt);
        card(b, f->r->ensure_passed ? "good" : "bad", "Ensure",
             f->r->ensure_passed ? "passed" : "failed", s.data);
    }
    cu_buf_appends(b, "</div></header>\n");
    cu_buf_free(&v);
    cu_buf_free(&s);
}

/* ---- tables --------------------------------------------------------------------------------- */
static void ensure_table(cu_buf *b, const rpt_report *r)
{
    if (!r->has_ensure)
        return;
    cu_buf_appends(b, "<section id=\"ensure\"><h2>Ensure checks</h2>");
    if (r->nchecks == 0) {
        cu_buf_appends(b, "<p>No checks.</p></section>\n");
        return;
    }
    cu_buf_appends(b, "<table>");
    thead(b, "Result|Check");
    for (size_t i = 0; i < r->nchecks; i++) {
        const rpt_check *c = &r->checks[i];
        cu_buf_appendf(b, "<tr><td class=\"%s\">%s%s</td>", c->passed ? "ok" : c->optional ? "warn" : "fail",
                       c->passed ? "ok" : "fail", c->optional ? " (optional)" : "");
        td_text(b, c->text);
        cu_buf_appends(b, "</tr>");
    }
    cu_buf_appends(b, "</tbody></table></section>\n");
}

static void stat_cells(cu_buf *b, const rpt_stat *s)
{
    td_num(b, s ? s->count : NAN);
    td_num(b, s ? s->min : NAN);
    td_num(b, s ? s->mean : NAN);
    td_num(b, s ? s->p50 : NAN);
    td_num(b, s ? s->p90 : NAN);
    td_num(b, s ? s->p95 : NAN);
    td_num(b, s ? s->p99 : NAN);
    td_num(b, s ? s->max : NAN);
}

static void summaries_table(cu_buf *b, const rpt_metrics *a)
{
    size_t shown = 0;
    for (size_t i = 0; i < a->nsummaries; i++)
        shown += !cu_startswith(a->summaries[i].name, MBE_PREFIX);
    if (!shown)
        return;
    cu_buf_appends(b, "<section id=\"summaries\"><h2>Summaries (ms)</h2><table>");
    thead(b, "Metric|#count|#min|#mean|#p50|#p90|#p95|#p99|#max");
    for (size_t i = 0; i < a->nsummaries; i++) {
        const rpt_stat *s = &a->summaries[i];
        if (cu_startswith(s->name, MBE_PREFIX))
            continue;
        cu_buf_appends(b, "<tr>");
        td_text(b, s->name);
        stat_cells(b, s);
        cu_buf_appends(b, "</tr>");
    }
    cu_buf_appends(b, "</tbody></table></section>\n");
}

/* Counters named PREFIX* as a name | count | share table. */
static void prefix_table(cu_buf *b, const rpt_metrics *a, const char *id, const char *title,
                         const char *prefix, const char *cols, double whole)
{
    size_t n = 0;
    for (size_t i = 0; i < a->ncounters; i++)
        n += cu_startswith(a->counters[i].name, prefix);
    if (!n)
        return;
    cu_buf_appendf(b, "<section id=\"%s\"><h2>%s</h2><table>", id, title);
    thead(b, cols);
    for (size_t i = 0; i < a->ncounters; i++) {
        const rpt_value *v = &a->counters[i];
        if (!cu_startswith(v->name, prefix))
            continue;
        cu_buf_appends(b, "<tr>");
        td_text(b, v->name + strlen(prefix));
        td_num(b, v->value);
        cu_buf_appends(b, "<td class=\"n\">");
        pct(b, v->value, whole);
        cu_buf_appends(b, "</td></tr>");
    }
    cu_buf_appends(b, "</tbody></table></section>\n");
}

static void counts_cell(cu_buf *b, const code_count *v, size_t n)
{
    cu_buf_appends(b, "<td>");
    for (size_t i = 0; i < n; i++) {
        if (i)
            cu_buf_appends(b, ", ");
        esc(b, v[i].code);
        cu_buf_appends(b, ": ");
        num(b, v[i].n);
    }
    cu_buf_appends(b, "</td>");
}

static void endpoints_table(cu_buf *b, const facts *f)
{
    if (!f->neps)
        return;
    cu_buf_appends(b, "<section id=\"endpoints\"><h2>Endpoints</h2><table>");
    thead(b, "Endpoint|#responses|Codes|Errors|#count|#min|#mean|#p50|#p90|#p95|#p99|#max");
    for (size_t i = 0; i < f->neps; i++) {
        const endpoint *e = &f->eps[i];
        cu_buf_appends(b, "<tr>");
        td_text(b, e->url);
        td_num(b, e->requests);
        counts_cell(b, e->codes, e->ncodes);
        counts_cell(b, e->errors, e->nerrors);
        stat_cells(b, e->rt);
        cu_buf_appends(b, "</tr>");
    }
    cu_buf_appends(b, "</tbody></table><p class=\"note\">Response times in ms.</p></section>\n");
}

static double window_rate(const rpt_metrics *w)
{
    const rpt_value *r = rpt_rate(w, "http.request_rate");
    if (r)
        return r->value;
    const rpt_value *n = rpt_counter(w, "http.requests");
    if (!n)
        return NAN;
    double span = w->first_ms >= 0 && w->last_ms > w->first_ms ? (double)(w->last_ms - w->first_ms) : 0;
    return round(n->value / CU_MAX(span, 1000.0) * 1000.0);   /* Artillery's window rate */
}

/* Does any window or the aggregate have the intended latency? */
static bool has_intended(const rpt_report *r)
{
    if (rpt_summary(&r->aggregate, INTENDED))
        return true;
    for (size_t i = 0; i < r->nwindows; i++)
        if (rpt_summary(&r->windows[i], INTENDED))
            return true;
    return false;
}

static void windows_table(cu_buf *b, const rpt_report *r)
{
    if (!r->nwindows)
        return;
    cu_buf_appends(b, "<section id=\"windows\"><h2>Windows</h2><details><summary>");
    cu_buf_appendf(b, "%zu intermediate windows of 10 s (times UTC)</summary><table>", r->nwindows);
    bool intended = has_intended(r);
    thead(b, intended ? "Window start|#requests|#rate /s|#p50|#p95|#p99|#intended p95|#intended p99|"
                        "#failed users|#errors|Codes"
                      : "Window start|#requests|#rate /s|#p50|#p95|#p99|#failed users|#errors|Codes");
    for (size_t i = 0; i < r->nwindows; i++) {
        const rpt_metrics *w = &r->windows[i];
        const rpt_stat *rt = rpt_summary(w, "http.response_time");
        const rpt_stat *it = intended ? rpt_summary(w, INTENDED) : NULL;
        double errs = 0;
        code_count *codes = NULL;
        size_t ncodes = 0;
        for (size_t j = 0; j < w->ncounters; j++) {
            if (cu_startswith(w->counters[j].name, "errors."))
                errs += w->counters[j].value;
            else if (cu_startswith(w->counters[j].name, "http.codes."))
                add_count(&codes, &ncodes, w->counters[j].name + 11, strlen(w->counters[j].name + 11),
                          w->counters[j].value);
        }
        cu_buf_appends(b, "<tr><td>");
        utc(b, w->period);
        cu_buf_appends(b, "</td>");
        td_num(b, rpt_counter_or(w, "http.requests", 0));
        td_num(b, window_rate(w));
        td_num(b, rt ? rt->p50 : NAN);
        td_num(b, rt ? rt->p95 : NAN);
        td_num(b, rt ? rt->p99 : NAN);
        if (intended) {
            td_num(b, it ? it->p95 : NAN);
            td_num(b, it ? it->p99 : NAN);
        }
        td_num(b, rpt_counter_or(w, "vusers.failed", 0));
        td_num(b, errs);
        counts_cell(b, codes, ncodes);
        cu_buf_appends(b, "</tr>");
        for (size_t j = 0; j < ncodes; j++)
            free(codes[j].code);
        free(codes);
    }
    cu_buf_appends(b, "</tbody></table></details></section>\n");
}

static void counters_table(cu_buf *b, const rpt_metrics *a)
{
    if (!a->ncounters && !a->nrates)
        return;
    cu_buf_appends(b, "<section id=\"counters\"><h2>All counters and rates</h2><details><summary>");
    cu_buf_appendf(b, "%zu counters, %zu rates</summary><table>", a->ncounters, a->nrates);
    thead(b, "Metric|#value");
    for (size_t i = 0; i < a->ncounters; i++) {
        cu_buf_appends(b, "<tr>");
        td_text(b, a->counters[i].name);
        td_num(b, a->counters[i].value);
        cu_buf_appends(b, "</tr>");
    }
    for (size_t i = 0; i < a->nrates; i++) {
        cu_buf_appends(b, "<tr>");
        td_text(b, a->rates[i].name);
        cu_buf_appends(b, "<td class=\"n\">");
        num(b, a->rates[i].value);
        cu_buf_appends(b, " /s</td></tr>");
    }
    cu_buf_appends(b, "</tbody></table></details></section>\n");
}

/* ---- chart data ----------------------------------------------------------------------------- */
static json_t *jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *series(const char *name, json_t *values)
{
    json_t *s = json_object();
    json_object_set_new(s, "name", json_string(name));
    json_object_set_new(s, "values", values);
    return s;
}

/* kind: "line" or "bars" (stacked); agg: how the page combines windows when
 * there are more than pixels to draw them: "mean" or "max" (latency, where
 * a mean would hide the spikes people look for). */
static json_t *chart(const char *id, const char *title, const char *unit, const char *kind,
                     const char *agg)
{
    json_t *c = json_object();
    json_object_set_new(c, "agg", json_string(agg));
    json_object_set_new(c, "id", json_string(id));
    json_object_set_new(c, "title", json_string(title));
    json_object_set_new(c, "unit", json_string(unit));
    json_object_set_new(c, "kind", json_string(kind));
    json_object_set_new(c, "series", json_array());
    return c;
}

static int cmp_code(const void *a, const void *b)
{
    return strcmp(((const code_count *)a)->code, ((const code_count *)b)->code);
}

/* One series per counter named PREFIX* (in first-seen order over the
 * windows, or by name when `sorted`: status codes stack 2xx at the bottom),
 * the ones after MAX_SERIES-1 summed as "other"; absent = 0. */
static size_t counter_series(json_t *c, const rpt_report *r, const char *prefix, bool sorted)
{
    code_count *names = NULL;
    size_t n = 0;
    for (size_t i = 0; i < r->nwindows; i++)
        for (size_t j = 0; j < r->windows[i].ncounters; j++)
            if (cu_startswith(r->windows[i].counters[j].name, prefix)) {
                const char *k = r->windows[i].counters[j].name + strlen(prefix);
                add_count(&names, &n, k, strlen(k), 0);
            }
    if (sorted && n > 1)
        qsort(names, n, sizeof *names, cmp_code);
    size_t shown = n > MAX_SERIES ? MAX_SERIES - 1 : n;
    json_t *arr = json_object_get(c, "series");
    for (size_t s = 0; s < shown + (n > shown); s++) {
        json_t *vals = json_array();
        for (size_t i = 0; i < r->nwindows; i++) {
            double sum = 0;
            for (size_t j = 0; j < r->windows[i].ncounters; j++) {
                const rpt_value *v = &r->windows[i].counters[j];
                if (!cu_startswith(v->name, prefix))
                    continue;
                const char *k = v->name + strlen(prefix);
                bool match = false;
                if (s < shown)
                    match = !strcmp(k, names[s].code);
                else
                    for (size_t o = shown; o < n && !match; o++)
                        match = !strcmp(k, names[o].code);
                if (match)
                    sum += v->value;
            }
            json_array_append_new(vals, json_real(sum));
        }
        json_array_append_new(arr, series(s < shown ? names[s].code : "other", vals));
    }
    for (size_t i = 0; i < n; i++)
        free(names[i].code);
    free(names);
    return n;
}

static json_t *chart_data(const rpt_report *r)
{
    json_t *d = json_object(), *t = json_array(), *charts = json_array();
    for (size_t i = 0; i < r->nwindows; i++)
        json_array_append_new(t, json_integer(r->windows[i].period));
    json_object_set_new(d, "t", t);
    json_object_set_new(d, "step", json_integer(WINDOW_MS));

    json_t *rate = chart("rate", "Request rate", "req/s", "line", "mean"), *rv = json_array();
    for (size_t i = 0; i < r->nwindows; i++)
        json_array_append_new(rv, jnum(window_rate(&r->windows[i])));
    json_array_append_new(json_object_get(rate, "series"), series("http.request_rate", rv));
    json_array_append_new(charts, rate);

    json_t *lat = chart("latency", "Response time (http.response_time)", "ms", "line", "max");
    static const char *const qn[] = {"p50", "p95", "p99"};
    for (size_t q = 0; q < CU_ARRAY_LEN(qn); q++) {
        json_t *vals = json_array();
        for (size_t i = 0; i < r->nwindows; i++) {
            const rpt_stat *s = rpt_summary(&r->windows[i], "http.response_time");
            double v = !s ? NAN : q == 0 ? s->p50 : q == 1 ? s->p95 : s->p99;
            json_array_append_new(vals, jnum(v));
        }
        json_array_append_new(json_object_get(lat, "series"), series(qn[q], vals));
    }
    if (has_intended(r)) {
        json_object_set_new(lat, "title", json_string("Response time (http.response_time) and from "
                                                      "the intended send (" INTENDED ")"));
        static const char *const in[] = {"intended p95", "intended p99"};
        for (size_t q = 0; q < CU_ARRAY_LEN(in); q++) {
            json_t *vals = json_array();
            for (size_t i = 0; i < r->nwindows; i++) {
                const rpt_stat *s = rpt_summary(&r->windows[i], INTENDED);
                json_array_append_new(vals, jnum(!s ? NAN : q == 0 ? s->p95 : s->p99));
            }
            json_array_append_new(json_object_get(lat, "series"), series(in[q], vals));
        }
    }
    json_array_append_new(charts, lat);

    json_t *codes = chart("codes", "Status codes per window", "responses", "bars", "mean");
    counter_series(codes, r, "http.codes.", true);
    json_array_append_new(charts, codes);

    json_t *errs = chart("errors", "Errors per window", "errors", "bars", "mean");
    if (counter_series(errs, r, "errors.", false))
        json_array_append_new(charts, errs);
    else
        json_decref(errs);
    json_object_set_new(d, "charts", charts);
    return d;
}

static void charts_section(cu_buf *b, const rpt_report *r, json_t *data)
{
    cu_buf_appends(b, "<section id=\"charts\"><h2>Over time</h2>");
    if (!r->nwindows) {
        cu_buf_appends(b, "<p class=\"note\">This report has no intermediate windows.</p></section>\n");
        return;
    }
    cu_buf_appends(b, "<p class=\"note\">One point per 10 s window (times UTC); the first and last "
                      "windows may be partial.</p><div class=\"charts\">");
    json_t *charts = json_object_get(data, "charts");
    for (size_t i = 0; i < json_array_size(charts); i++) {
        json_t *c = json_array_get(charts, i);
        const char *id = json_string_value(json_object_get(c, "id"));  /* ours: [a-z]+ */
        cu_buf_appendf(b, "<figure class=\"chart\"><canvas id=\"chart-%s\" data-chart=\"%s\" "
                          "role=\"img\" aria-label=\"%s over time\" width=\"600\" height=\"260\">"
                          "</canvas></figure>",
                       id, id, json_string_value(json_object_get(c, "title")));
    }
    cu_buf_appends(b, "</div></section>\n");
}

/* ---- the page ------------------------------------------------------------------------------- */
void rpt_render_html(const rpt_report *r, const char *title, cu_buf *out)
{
    facts f;
    facts_init(&f, r);
    json_t *data = chart_data(r);

    cu_buf_appends(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                        "<title>Load test report: ");
    esc(out, title);
    cu_buf_appends(out, "</title>\n<style>\n");
    cu_buf_appends(out, rpt_template_css);
    cu_buf_appends(out, "</style>\n</head>\n<body>\n");
    header(out, &f, title);
    cu_buf_appends(out, "<main>\n");
    ensure_table(out, r);
    charts_section(out, r, data);
    summaries_table(out, f.a);
    prefix_table(out, f.a, "errors", "Errors", "errors.", "Error|#count|#of users",
                 rpt_counter_or(f.a, "vusers.created", NAN));
    prefix_table(out, f.a, "scenarios", "Scenarios", "vusers.created_by_name.",
                 "Scenario|#users|#share", rpt_counter_or(f.a, "vusers.created", NAN));
    endpoints_table(out, &f);
    windows_table(out, r);
    counters_table(out, f.a);
    cu_buf_appends(out, "</main>\n<footer>Written by <code>cutover report</code>; "
                        "self-contained, works offline.</footer>\n");

    char *json = json_dumps(data, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(10));
    cu_buf_appends(out, "<script type=\"application/json\" id=\"cutover-data\">");
    rpt_script_json(out, json ? json : "{}");
    cu_buf_appends(out, "</script>\n<script>\n");
    cu_buf_appends(out, rpt_template_js);
    cu_buf_appends(out, "</script>\n</body>\n</html>\n");
    free(json);
    json_decref(data);
    facts_free(&f);
}
