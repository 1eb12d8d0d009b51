/* loadtest/report.c: what a run prints and writes, in Artillery 2's shapes.
 *
 * Console (notes 2.5): phase lines, a block per 10 s window and the final
 * summary, metric names byte-sorted, `name: .... value` padded to 79 columns
 * (the terminal width when it is a narrower TTY), summaries as min, max,
 * mean, median, p95, p99; metrics-by-endpoint hidden when suppressOutput.
 * JSON (notes 2.4): {aggregate, intermediate[]}, `histograms` a copy of
 * `summaries`, intermediate `period` a string with the stray
 * `"<rate>": null`, aggregate `period` a number, numbers printed as
 * JavaScript prints them, 2-space indentation as JSON.stringify(x, null, 2).
 * Ensure checks (notes 1.7) run on the aggregate after the summary; when
 * there were any, the JSON gains a top-level "ensure" after "intermediate"
 * ({passed, checks: [{check, passed, optional}]}, read by `cutover report`).
 * That key is cutover's only addition to Artillery's shape.
 *
 * Memory stays flat however long the run: a window, once final, is merged
 * into the aggregate and freed, and only its JSON text is kept for the
 * report, already indented as the final file wants it, spooled to an
 * unlinked temporary file (tmpfile(3)); in memory only when no temporary
 * file can be made, and not at all without -o. The aggregate's size is
 * bounded by the metric names the script can produce.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "loadtest/internal.h"

typedef struct rate_sum {
    char *name;
    double sum;
} rate_sum;

struct lt_report {
    const lt_run_t *run;
    mset *agg;
    FILE *spool;           /* -o: the windows' JSON texts, ",\n"-separated, or NULL */
    cu_buf windows;        /* the same in memory when no spool file could be made */
    size_t spooled;        /* bytes of window text so far */
    bool keep_windows;     /* -o given */
    rate_sum *rates;
    size_t nrates;
    size_t nwindows;
    int64_t last_period;
    int width;             /* dots column */
    double worst_lag_p99;
};

/* ---- small helpers -------------------------------------------------------------------------- */
void lt_console_time(cu_buf *b, int64_t wall_ms)
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    char s[32];
    strftime(s, sizeof s, "%H:%M:%S(%z)", &tm);
    cu_buf_appends(b, s);
}

static double window_rate(const mset_entry *e)
{
    double span = (double)(e->last_ms - e->first_ms);
    if (span < 1000)
        span = 1000;
    return (double)e->value / span * 1000.0;
}

static double js_round(double x)
{
    return floor(x + 0.5);
}

static bool suppressed(const lt_report *r, const char *name)
{
    const lt_plugins *pl = &r->run->script->plugins;
    return pl->mbe && pl->mbe_suppress_output && pl->mbe_prefix && strstr(name, pl->mbe_prefix);
}

/* ---- JSON ------------------------------------------------------------------------------------- */
static void js_string(cu_buf *b, const char *s)
{
    cu_buf_appendc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': cu_buf_appends(b, "\\\""); break;
        case '\\': cu_buf_appends(b, "\\\\"); break;
        case '\n': cu_buf_appends(b, "\\n"); break;
        case '\r': cu_buf_appends(b, "\\r"); break;
        case '\t': cu_buf_appends(b, "\\t"); break;
        case '\b': cu_buf_appends(b, "\\b"); break;
        case '\f': cu_buf_appends(b, "\\f"); break;
        default:
            if (*p < 0x20)
                cu_buf_appendf(b, "\\u%04x", *p);
            else
                cu_buf_appendc(b, (char)*p);
        }
    }
    cu_buf_appendc(b, '"');
}

static void indent(cu_buf *b, int depth)
{
    for (int i = 0; i < depth; i++)
        cu_buf_appends(b, "  ");
}

/* JSON.stringify(v, null, 2). */
static void stringify(cu_buf *b, const json_t *v, int depth)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        if (json_object_size(v) == 0) {
            cu_buf_appends(b, "{}");
            return;
        }
        cu_buf_appends(b, "{\n");
        const char *k;
        json_t *x;
        size_t i = 0, n = json_object_size(v);
        json_object_foreach((json_t *)v, k, x) {
            indent(b, depth + 1);
            js_string(b, k);
            cu_buf_appends(b, ": ");
            stringify(b, x, depth + 1);
            cu_buf_appends(b, ++i < n ? ",\n" : "\n");
        }
        indent(b, depth);
        cu_buf_appendc(b, '}');
        return;
    }
    case JSON_ARRAY: {
        if (json_array_size(v) == 0) {
            cu_buf_appends(b, "[]");
            return;
        }
        cu_buf_appends(b, "[\n");
        for (size_t i = 0; i < json_array_size(v); i++) {
            indent(b, depth + 1);
            stringify(b, json_array_get(v, i), depth + 1);
            cu_buf_appends(b, i + 1 < json_array_size(v) ? ",\n" : "\n");
        }
        indent(b, depth);
        cu_buf_appendc(b, ']');
        return;
    }
    case JSON_STRING: js_string(b, json_string_value(v)); return;
    case JSON_INTEGER: cu_buf_appendf(b, "%lld", (long long)json_integer_value(v)); return;
    case JSON_REAL: {
        double d = json_real_value(v);
        if (isfinite(d))
            lt_js_number(b, d);
        else
            cu_buf_appends(b, "null");
        return;
    }
    case JSON_TRUE: cu_buf_appends(b, "true"); return;
    case JSON_FALSE: cu_buf_appends(b, "false"); return;
    case JSON_NULL: cu_buf_appends(b, "null"); return;
    }
}

static json_t *summary_json(const hist *h)
{
    json_t *o = json_object();
    json_object_set_new(o, "min", json_real(stats_round1(h->min)));
    json_object_set_new(o, "max", json_real(stats_round1(h->max)));
    json_object_set_new(o, "count", json_integer((json_int_t)h->count));
    json_object_set_new(o, "mean", json_real(stats_round1(hist_mean(h))));
    static const struct { const char *k; double q; } qs[] = {
        {"p50", .5}, {"median", .5}, {"p75", .75}, {"p90", .9}, {"p95", .95}, {"p99", .99}, {"p999", .999},
    };
    for (size_t i = 0; i < CU_ARRAY_LEN(qs); i++)
        json_object_set_new(o, qs[i].k, json_real(stats_round1(hist_quantile(h, qs[i].q))));
    return o;
}

static void set_time(json_t *o, const char *k, int64_t v)
{
    if (v >= 0)
        json_object_set_new(o, k, json_integer(v));
}

/* A window or the aggregate as Artillery writes it. rates: the values. */
static json_t *metrics_json(const mset *m, const double *rates, bool intermediate, int64_t period)
{
    json_t *o = json_object(), *counters = json_object(), *jr = json_object();
    for (size_t i = 0; i < mset_len(m, MSET_COUNTER); i++) {
        const mset_entry *e = mset_at(m, MSET_COUNTER, i);
        json_object_set_new(counters, e->name, json_integer(e->value));
    }
    for (size_t i = 0; i < mset_len(m, MSET_RATE); i++)
        json_object_set_new(jr, mset_at(m, MSET_RATE, i)->name, json_real(rates[i]));
    json_object_set_new(o, "counters", counters);
    json_object_set_new(o, "rates", jr);
    if (intermediate)
        for (size_t i = 0; i < mset_len(m, MSET_RATE); i++)
            json_object_set_new(o, mset_at(m, MSET_RATE, i)->name, json_null());
    mset_times t = mset_get_times(m);
    set_time(o, "firstCounterAt", t.first_counter);
    set_time(o, "firstHistogramAt", t.first_histogram);
    set_time(o, "lastCounterAt", t.last_counter);
    set_time(o, "lastHistogramAt", t.last_histogram);
    int64_t first = -1, last = -1;
    if (t.first_counter >= 0)
        first = t.first_counter;
    if (t.first_histogram >= 0 && (first < 0 || t.first_histogram < first))
        first = t.first_histogram;
    last = t.last_counter > t.last_histogram ? t.last_counter : t.last_histogram;
    set_time(o, "firstMetricAt", first);
    set_time(o, "lastMetricAt", last);
    if (intermediate) {
        char p[32];
        snprintf(p, sizeof p, "%lld", (long long)period);
        json_object_set_new(o, "period", json_string(p));
    } else {
        json_object_set_new(o, "period", json_integer(period));
    }
    json_t *sums = json_object();
    for (size_t i = 0; i < mset_len(m, MSET_SUMMARY); i++) {
        const mset_entry *e = mset_at(m, MSET_SUMMARY, i);
        json_object_set_new(sums, e->name, summary_json(&e->h));
    }
    json_object_set_new(o, "summaries", sums);
    json_object_set_new(o, "histograms", json_deep_copy(sums));
    return o;
}

/* ---- console ---------------------------------------------------------------------------------- */
static void dotted(cu_buf *b, const char *label, const char *value, int width)
{
    size_t len = strlen(label);
    if ((int)len > width) {
        cu_buf_append(b, label, (size_t)width - 3);
        cu_buf_appends(b, "...");
        len = (size_t)width;
    } else {
        cu_buf_appends(b, label);
    }
    cu_buf_appendc(b, ' ');
    for (size_t i = len; i < (size_t)width; i++)
        cu_buf_appendc(b, '.');
    cu_buf_appendc(b, ' ');
    cu_buf_appends(b, value);
    cu_buf_appendc(b, '\n');
}

typedef struct line_item {
    const char *name;
    const mset_entry *e;
    mset_kind kind;
    double rate;
} line_item;

static int cmp_items(const void *a, const void *b)
{
    return strcmp(((const line_item *)a)->name, ((const line_item *)b)->name);
}

static void print_metrics(const lt_report *r, const mset *m, const double *rates, cu_buf *b)
{
    size_t n = mset_len(m, MSET_COUNTER) + mset_len(m, MSET_RATE) + mset_len(m, MSET_SUMMARY);
    line_item *items = cu_calloc(n ? n : 1, sizeof *items);
    size_t k = 0;
    for (int kind = MSET_COUNTER; kind <= MSET_SUMMARY; kind++)
        for (size_t i = 0; i < mset_len(m, (mset_kind)kind); i++) {
            const mset_entry *e = mset_at(m, (mset_kind)kind, i);
            if (suppressed(r, e->name))
                continue;
            items[k++] = (line_item){e->name, e, (mset_kind)kind, kind == MSET_RATE ? rates[i] : 0};
        }
    qsort(items, k, sizeof *items, cmp_items);
    cu_buf label = CU_BUF_INIT, val = CU_BUF_INIT;
    for (size_t i = 0; i < k; i++) {
        cu_buf_reset(&label);
        cu_buf_reset(&val);
        cu_buf_appendf(&label, "%s:", items[i].name);
        if (items[i].kind == MSET_COUNTER) {
            cu_buf_appendf(&val, "%lld", (long long)items[i].e->value);
            dotted(b, label.data, val.data, r->width);
        } else if (items[i].kind == MSET_RATE) {
            lt_js_number(&val, items[i].rate);
            cu_buf_appends(&val, "/sec");
            dotted(b, label.data, val.data, r->width);
        } else {
            cu_buf_appendf(b, "%s\n", label.data);
            const hist *h = &items[i].e->h;
            const struct { const char *k; double v; } rows[] = {
                {"  min:", h->min}, {"  max:", h->max}, {"  mean:", hist_mean(h)},
                {"  median:", hist_quantile(h, .5)}, {"  p95:", hist_quantile(h, .95)},
                {"  p99:", hist_quantile(h, .99)},
            };
            for (size_t j = 0; j < CU_ARRAY_LEN(rows); j++) {
                cu_buf_reset(&val);
                lt_js_number(&val, stats_round1(rows[j].v));
                dotted(b, rows[j].k, val.data, r->width);
            }
        }
    }
    cu_buf_free(&label);
    cu_buf_free(&val);
    free(items);
}

static void banner(cu_buf *b, const char *title)
{
    size_t n = strlen(title);
    for (size_t i = 0; i < n; i++)
        cu_buf_appendc(b, '-');
    cu_buf_appendf(b, "\n%s\n", title);
    for (size_t i = 0; i < n; i++)
        cu_buf_appendc(b, '-');
    cu_buf_appends(b, "\n\n");
}

/* ---- the report ------------------------------------------------------------------------------- */
lt_report *lt_report_new(const lt_run_t *run)
{
    lt_report *r = cu_calloc(1, sizeof *r);
    r->run = run;
    r->agg = mset_new(0);
    r->keep_windows = run->opts->output != NULL;
    if (r->keep_windows)
        r->spool = tmpfile();
    r->width = 79;
    struct winsize ws;
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        r->width = CU_MIN(CU_MAX((int)ws.ws_col, 50), 79);
    return r;
}

void lt_report_free(lt_report *r)
{
    if (!r)
        return;
    mset_free(r->agg);
    if (r->spool)
        fclose(r->spool);
    cu_buf_free(&r->windows);
    for (size_t i = 0; i < r->nrates; i++)
        free(r->rates[i].name);
    free(r->rates);
    free(r);
}

void lt_report_phase(lt_report *r, size_t phase, bool started)
{
    if (r->run->opts->quiet)
        return;
    const lt_phase *p = &r->run->script->phases[phase];
    cu_buf b = CU_BUF_INIT;
    if (!started)
        cu_buf_appendc(&b, '\n');
    cu_buf_appendf(&b, "Phase %s: %s (index: %zu, duration: ", started ? "started" : "completed",
                   p->name ? p->name : "unnamed", phase);
    lt_js_number(&b, p->duration_s);
    cu_buf_appends(&b, "s) ");
    lt_console_time(&b, cu_wall_ms());
    cu_buf_appends(&b, "\n\n");
    fputs(b.data, stdout);
    fflush(stdout);
    cu_buf_free(&b);
}

static void add_rate(lt_report *r, const char *name, double v)
{
    for (size_t i = 0; i < r->nrates; i++)
        if (!strcmp(r->rates[i].name, name)) {
            r->rates[i].sum += v;
            return;
        }
    r->rates = cu_realloc(r->rates, (r->nrates + 1) * sizeof *r->rates);
    r->rates[r->nrates++] = (rate_sum){cu_strdup(name), v};
}

/* Moves the first `len` spooled bytes into r->windows and stops spooling. */
static void spool_to_memory(lt_report *r, size_t len)
{
    if (!r->spool)
        return;
    char chunk[65536];
    size_t n;
    rewind(r->spool);
    while (len > 0 && (n = fread(chunk, 1, CU_MIN(sizeof chunk, len), r->spool)) > 0) {
        cu_buf_append(&r->windows, chunk, n);
        len -= n;
    }
    fclose(r->spool);
    r->spool = NULL;
}

void lt_report_window(lt_report *r, mset *m)
{
    size_t nr = mset_len(m, MSET_RATE);
    double *rates = cu_calloc(nr ? nr : 1, sizeof *rates);
    for (size_t i = 0; i < nr; i++) {
        rates[i] = js_round(window_rate(mset_at(m, MSET_RATE, i)));
        add_rate(r, mset_at(m, MSET_RATE, i)->name, rates[i]);
    }
    if (r->keep_windows) { /* its text as the report's intermediate[i], at depth 2 */
        cu_buf text = CU_BUF_INIT;
        if (r->nwindows)
            cu_buf_appends(&text, ",\n");
        indent(&text, 2);
        json_t *j = metrics_json(m, rates, true, mset_period(m));
        stringify(&text, j, 2);
        json_decref(j);
        if (r->spool && fwrite(text.data, 1, text.len, r->spool) != text.len) {
            cu_warn("cannot spool the report's windows to a temporary file: %s; keeping them "
                    "in memory", strerror(errno));
            spool_to_memory(r, r->spooled);
        }
        r->spooled += text.len;
        if (!r->spool)
            cu_buf_append(&r->windows, text.data, text.len);
        cu_buf_free(&text);
    }
    r->nwindows++;
    r->last_period = mset_period(m);

    const mset_entry *lag = mset_find(m, LT_LAG_METRIC, MSET_SUMMARY);
    if (lag && lag->h.count > 0) {
        double p99 = hist_quantile(&lag->h, .99);
        if (p99 > r->worst_lag_p99)
            r->worst_lag_p99 = p99;
        if (p99 > 10.0 && !r->run->opts->stop) /* embedded runs keep it in the report */
            cu_warn("the load generator is falling behind: arrivals started up to %.1f ms late "
                    "(p99 %.1f ms) in the 10 s to %lld; the schedule is not being met (add --workers "
                    "or lower the rate)",
                    lag->h.max, p99, (long long)(mset_period(m) + LT_WINDOW_MS) / 1000);
    }
    if (!r->run->opts->quiet) {
        cu_buf b = CU_BUF_INIT, title = CU_BUF_INIT;
        cu_buf_appends(&title, "Metrics for period to: ");
        lt_console_time(&title, mset_period(m) + LT_WINDOW_MS);
        mset_times t = mset_get_times(m);
        int64_t first = t.first_counter >= 0 ? t.first_counter : t.first_histogram;
        if (t.first_histogram >= 0 && t.first_histogram < first)
            first = t.first_histogram;
        int64_t last = CU_MAX(t.last_counter, t.last_histogram);
        size_t dashes = title.len;
        cu_buf_appends(&title, " (width: ");
        lt_js_number(&title, (double)(last - first) / 1000.0);
        cu_buf_appends(&title, "s)");
        for (size_t i = 0; i < dashes; i++)
            cu_buf_appendc(&b, '-');
        cu_buf_appendf(&b, "\n%s\n", title.data);
        for (size_t i = 0; i < dashes; i++)
            cu_buf_appendc(&b, '-');
        cu_buf_appends(&b, "\n\n");
        if (mset_empty(m))
            cu_buf_appends(&b, "No measurements recorded during this period\n");
        else
            print_metrics(r, m, rates, &b);
        cu_buf_appends(&b, "\n\n");
        fputs(b.data, stdout);
        fflush(stdout);
        cu_buf_free(&b);
        cu_buf_free(&title);
    }
    mset_merge(r->agg, m);
    mset_free(m);
    free(rates);
}

/* ---- ensure -------------------------------------------------------------------------------------- */
typedef struct lookup_arg {
    const mset *m;
    const double *rates;
} lookup_arg;

static bool lookup_metric(const char *name, double *v, void *arg)
{
    const lookup_arg *a = arg;
    const mset_entry *e = mset_find(a->m, name, MSET_COUNTER);
    if (e) {
        *v = (double)e->value;
        return true;
    }
    for (size_t i = 0; i < mset_len(a->m, MSET_RATE); i++)
        if (!strcmp(mset_at(a->m, MSET_RATE, i)->name, name)) {
            *v = a->rates[i];
            return true;
        }
    const char *dot = strrchr(name, '.');
    if (!dot)
        return false;
    char *base = cu_strndup(name, (size_t)(dot - name));
    e = mset_find(a->m, base, MSET_SUMMARY);
    free(base);
    if (!e)
        return false;
    const char *stat = dot + 1;
    const hist *h = &e->h;
    static const struct { const char *k; double q; } qs[] = {
        {"p50", .5}, {"median", .5}, {"p75", .75}, {"p90", .9}, {"p95", .95}, {"p99", .99}, {"p999", .999},
    };
    if (!strcmp(stat, "min")) *v = stats_round1(h->min);
    else if (!strcmp(stat, "max")) *v = stats_round1(h->max);
    else if (!strcmp(stat, "count")) *v = (double)h->count;
    else if (!strcmp(stat, "mean")) *v = stats_round1(hist_mean(h));
    else {
        for (size_t i = 0; i < CU_ARRAY_LEN(qs); i++)
            if (!strcmp(stat, qs[i].k)) {
                *v = stats_round1(hist_quantile(h, qs[i].q));
                return true;
            }
        return false;
    }
    return true;
}

/* The apdex plugin's line after the summary: (satisfied + tolerated/2) /
 * all, ranked as artillery-plugin-apdex ranks it. Nothing without data. */
static void print_apdex(const lt_report *r)
{
    if (!r->run->script->plugins.apdex)
        return;
    const char *names[] = {"apdex.satisfied", "apdex.tolerated", "apdex.frustrated"};
    double n[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        const mset_entry *e = mset_find(r->agg, names[i], MSET_COUNTER);
        n[i] = e ? (double)e->value : 0;
    }
    double total = n[0] + n[1] + n[2];
    if (total <= 0)
        return;
    double score = (n[0] + n[1] / 2) / total;
    const char *rank = score >= 0.94 ? "excellent" : score >= 0.85 ? "good" : score >= 0.7 ? "fair"
                     : score >= 0.49 ? "poor" : "unacceptable";
    cu_buf b = CU_BUF_INIT;
    lt_js_number(&b, score);
    printf("\nApdex score: %s (%s)\n", b.data, rank);
    cu_buf_free(&b);
}

/* One check's result: its line for the console (ok first, then fail, as
 * Artillery prints them) and its entry for the JSON report. */
static void ensure_result(cu_buf *ok, cu_buf *bad, json_t *checks, bool pass, bool optional,
                          const cu_buf *text)
{
    cu_buf_appendf(pass ? ok : bad, "%s: %s%s\n", pass ? "ok" : "fail", text->data,
                   optional ? " (optional)" : "");
    json_t *c = json_object();
    json_object_set_new(c, "check", json_string(text->data));
    json_object_set_new(c, "passed", json_boolean(pass));
    json_object_set_new(c, "optional", json_boolean(optional));
    json_array_append_new(checks, c);
}

/* Runs the ensure checks on the aggregate. Returns true when every strict
 * check passed. When there were checks, *out is set to the "Checks:" text
 * to print and *json to {"passed", "checks": [{check, passed, optional}]}
 * for the report (cutover's addition: Artillery writes none); both stay
 * untouched otherwise. */
static bool run_ensure(const lt_report *r, const double *rates, cu_buf *out, json_t **json)
{
    const lt_plugins *pl = &r->run->script->plugins;
    if (!pl->ensure || getenv("ARTILLERY_DISABLE_ENSURE"))
        return true;
    size_t n = pl->nthresholds + pl->nconditions + (pl->max_error_rate >= 0 ? 1 : 0);
    if (n == 0)
        return true;
    lookup_arg arg = {r->agg, rates};
    cu_buf ok = CU_BUF_INIT, bad = CU_BUF_INIT, text = CU_BUF_INIT;
    json_t *checks = json_array();
    bool pass_all = true;
    for (size_t i = 0; i < pl->nthresholds; i++) {
        double v;
        bool pass = lookup_metric(pl->thresholds[i].metric, &v, &arg) && v < pl->thresholds[i].max;
        cu_buf_reset(&text);
        cu_buf_appendf(&text, "%s < ", pl->thresholds[i].metric);
        lt_js_number(&text, pl->thresholds[i].max);
        ensure_result(&ok, &bad, checks, pass, false, &text);
        pass_all &= pass;
    }
    for (size_t i = 0; i < pl->nconditions; i++) {
        bool unknown = false;
        double v = lt_expr_eval(pl->conditions[i].expr, lookup_metric, &arg, &unknown);
        bool pass = !unknown && !isnan(v) && v != 0;
        cu_buf_reset(&text);
        cu_buf_appends(&text, pl->conditions[i].text);
        ensure_result(&ok, &bad, checks, pass, !pl->conditions[i].strict, &text);
        if (pl->conditions[i].strict)
            pass_all &= pass;
    }
    if (pl->max_error_rate >= 0) {
        double created = 0, completed = 0;
        lookup_metric("vusers.created", &created, &arg);
        lookup_metric("vusers.completed", &completed, &arg);
        double rate = created > 0 ? (created - completed) / created * 100.0 : 0;
        bool pass = rate <= pl->max_error_rate;
        cu_buf_reset(&text);
        cu_buf_appends(&text, "maxErrorRate < ");
        lt_js_number(&text, pl->max_error_rate);
        ensure_result(&ok, &bad, checks, pass, false, &text);
        pass_all &= pass;
    }
    cu_buf_appendf(out, "\nChecks:\n%s%s", ok.data ? ok.data : "", bad.data ? bad.data : "");
    *json = json_object();
    json_object_set_new(*json, "passed", json_boolean(pass_all));
    json_object_set_new(*json, "checks", checks);
    cu_buf_free(&ok);
    cu_buf_free(&bad);
    cu_buf_free(&text);
    return pass_all;
}

static char *output_path(const char *out)
{
    struct stat st;
    if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) {
        time_t t = time(NULL);
        struct tm tm;
        localtime_r(&t, &tm);
        char name[64];
        strftime(name, sizeof name, "artillery_report_%Y%m%d_%H%M%S.json", &tm);
        return cu_path_join(out, name);
    }
    return cu_strdup(out);
}

int lt_report_finish(lt_report *r, int64_t total_ms)
{
    (void)total_ms;
    size_t nr = mset_len(r->agg, MSET_RATE);
    double *rates = cu_calloc(nr ? nr : 1, sizeof *rates);
    for (size_t i = 0; i < nr; i++)
        for (size_t j = 0; j < r->nrates; j++)
            if (!strcmp(r->rates[j].name, mset_at(r->agg, MSET_RATE, i)->name))
                rates[i] = r->nwindows ? js_round(r->rates[j].sum / (double)r->nwindows) : 0;
    const lt_run_opts *o = r->run->opts;
    if (!o->quiet) {
        cu_buf b = CU_BUF_INIT, title = CU_BUF_INIT;
        cu_buf_appends(&title, "Summary report @ ");
        lt_console_time(&title, cu_wall_ms());
        cu_buf_appendc(&b, '\n');
        banner(&b, title.data);
        print_metrics(r, r->agg, rates, &b);
        fputs(b.data, stdout);
        cu_buf_free(&b);
        cu_buf_free(&title);
    }
    if (r->worst_lag_p99 > 10.0 && !o->stop)
        cu_warn("the load generator fell behind its schedule (worst 10 s arrival lag p99 %.1f ms): "
                "the offered load was lower than the script asks",
                r->worst_lag_p99);
    int status = LT_EXIT_OK;
    cu_buf checks_text = CU_BUF_INIT;
    json_t *ensure = NULL;
    if (!run_ensure(r, rates, &checks_text, &ensure))
        status = LT_EXIT_FAIL;
    if (o->output) {
        /* JSON.stringify({aggregate, intermediate, ensure}, null, 2), the
         * windows' texts copied in between */
        cu_buf text = CU_BUF_INIT, tail = CU_BUF_INIT;
        json_t *agg = metrics_json(r->agg, rates, false, r->last_period);
        cu_buf_appends(&text, "{\n  \"aggregate\": ");
        stringify(&text, agg, 1);
        json_decref(agg);
        cu_buf_appends(&text, ",\n  \"intermediate\": ");
        cu_buf_appends(&text, r->nwindows ? "[\n" : "[]");
        if (r->nwindows)
            cu_buf_appends(&tail, "\n  ]");
        if (ensure) {
            cu_buf_appends(&tail, ",\n  \"ensure\": ");
            stringify(&tail, ensure, 1);
        }
        cu_buf_appends(&tail, "\n}\n");
        char *path = output_path(o->output);
        FILE *f = fopen(path, "w");
        bool ok = f && fwrite(text.data, 1, text.len, f) == text.len;
        if (ok && r->spool) {
            char chunk[65536];
            size_t n;
            rewind(r->spool);
            while (ok && (n = fread(chunk, 1, sizeof chunk, r->spool)) > 0)
                ok = fwrite(chunk, 1, n, f) == n;
            ok = ok && !ferror(r->spool);
        } else if (ok && r->windows.len) {
            ok = fwrite(r->windows.data, 1, r->windows.len, f) == r->windows.len;
        }
        ok = ok && fwrite(tail.data, 1, tail.len, f) == tail.len;
        cu_buf_free(&tail);
        if (!ok) {
            cu_error("cannot write the report to %s: %s", path, strerror(errno));
            status = LT_EXIT_FAIL;
        } else if (!o->quiet) {
            printf("Log file: %s\n", path);
        }
        if (f && fclose(f) != 0)
            status = LT_EXIT_FAIL;
        free(path);
        cu_buf_free(&text);
    }
    print_apdex(r);
    if (checks_text.len)
        fputs(checks_text.data, stdout);
    cu_buf_free(&checks_text);
    json_decref(ensure);
    fflush(stdout);
    free(rates);
    return status;
}
