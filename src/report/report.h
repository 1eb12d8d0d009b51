/* report: reading a load-test report and rendering it for people.
 *
 * Input is the JSON report in Artillery 2's shape (notes 2.4), whether
 * `cutover run -o` or Artillery itself wrote it: {aggregate, intermediate[]}
 * with counters, rates, summaries (or only histograms, their copy) and the
 * firstMetricAt/lastMetricAt/period stamps; an intermediate `period` may be
 * a string (Artillery) or a number. cutover adds an optional top-level
 * `ensure` object ({passed, checks: [{check, passed, optional}]}); Artillery
 * writes none, so the ensure section only appears for cutover's reports.
 *
 * Output is one self-contained HTML page (rpt_render_html): inline CSS, a
 * small inline script that draws the charts on <canvas> from a JSON blob,
 * no external fetch. Every text that comes from the report (metric names
 * come from users' scripts) is HTML-escaped in markup and escaped so it can
 * never close the <script> element that carries the JSON.
 *
 * Missing sections are omitted from the page, never an error; a report of
 * the wrong shape (not an object, a section of the wrong type, a counter that
 * is not a number) is refused with a message naming the place. JSON null
 * (what JavaScript writes for NaN) counts as absent.
 *
 * Thread rules: none; an rpt_report is immutable once parsed and may be
 * read from any thread.
 */
#ifndef CUTOVER_REPORT_H
#define CUTOVER_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

/* One named number of a window: a counter (http.codes.200) or a rate. */
typedef struct rpt_value {
    const char *name;  /* points into the parsed document */
    double value;
} rpt_value;

/* One summary (http.response_time): statistics in ms; NAN when absent. */
typedef struct rpt_stat {
    const char *name;
    double count, min, max, mean, p50, p75, p90, p95, p99, p999;
} rpt_stat;

/* The aggregate or one 10 s window. Times are Unix epoch milliseconds, -1
 * when the report does not say. */
typedef struct rpt_metrics {
    int64_t period;                 /* window start (aggregate: the last window's) */
    int64_t first_ms, last_ms;      /* firstMetricAt, lastMetricAt */
    rpt_value *counters;
    size_t ncounters;
    rpt_value *rates;
    size_t nrates;
    rpt_stat *summaries;
    size_t nsummaries;
} rpt_metrics;

/* One ensure check as `cutover run` evaluated it. */
typedef struct rpt_check {
    const char *text;               /* "http.response_time.p95 < 500", "maxErrorRate < 1" */
    bool passed, optional;
} rpt_check;

typedef struct rpt_report {
    void *doc;                      /* the parsed JSON (json_t *); owns every name */
    rpt_metrics aggregate;
    rpt_metrics *windows;           /* intermediate[], ordered by period */
    size_t nwindows;
    bool has_ensure, ensure_passed;
    rpt_check *checks;
    size_t nchecks;
} rpt_report;

/* Parses report text (`name` is used in messages, e.g. the file name).
 * Returns 0 with *out set (free it with rpt_free), or -EINVAL with err
 * ("r.json:3:7: ..." for JSON syntax, "r.json: aggregate.counters: ..." for
 * shape) and *out NULL. */
int rpt_parse(const char *text, size_t len, const char *name, rpt_report **out,
              char err[CU_ERRLEN]);
/* rpt_parse on a file's contents; a missing or unreadable file is a
 * negative errno with err. */
int rpt_load(const char *path, rpt_report **out, char err[CU_ERRLEN]);
void rpt_free(rpt_report *r);

/* Look-ups on one window or the aggregate; NULL or `dflt` when absent. */
const rpt_value *rpt_counter(const rpt_metrics *m, const char *name);
double rpt_counter_or(const rpt_metrics *m, const char *name, double dflt);
const rpt_value *rpt_rate(const rpt_metrics *m, const char *name);
const rpt_stat *rpt_summary(const rpt_metrics *m, const char *name);

/* Appends the whole page to out. `title` (usually the input file's name) is
 * shown in the header, escaped. */
void rpt_render_html(const rpt_report *r, const char *title, cu_buf *out);

/* Appends s with & < > " ' as character references: safe as element text
 * and inside a quoted attribute value. */
void rpt_html_escape(cu_buf *out, const char *s);
/* Appends JSON text made safe inside a <script> element: every '<', '>' and
 * '&' (which JSON allows only inside strings) becomes \u003c, \u003e,
 * \u0026, so neither "</script" nor "<!--" can appear; U+2028 and U+2029
 * become \u2028 and \u2029. The result parses to the same value. */
void rpt_script_json(cu_buf *out, const char *json);

#endif
