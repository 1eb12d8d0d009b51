/* Unit tests for report: the two escapes, parsing both flavours of the
 * JSON report (Artillery 2.0.21's own file and cutover's with "ensure"),
 * missing sections, bad input (every prefix of a real report, wrong types),
 * and the rendered page: self-contained, sections present or left out, and
 * hostile metric names unable to escape their markup or the <script>. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "report/report.h"

/* `make unit` runs from the repository root; the shared folder is beside it. */
#define REFERENCE "../shared/reference/artillery-2.0.21-report.json"

#define assert_contains(hay, needle)                                                  \
    do {                                                                              \
        if (!strstr((hay), (needle))) {                                               \
            print_error("expected to find \"%s\" in:\n%.2000s\n", (needle), (hay));    \
            fail();                                                                   \
        }                                                                             \
    } while (0)
#define assert_lacks(hay, needle)                                                     \
    do {                                                                              \
        const char *at_ = strstr((hay), (needle));                                    \
        if (at_) {                                                                    \
            print_error("did not expect \"%s\", found at: %.200s\n", (needle), at_);   \
            fail();                                                                   \
        }                                                                             \
    } while (0)

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static rpt_report *parse_ok(const char *text)
{
    char err[CU_ERRLEN] = "";
    rpt_report *r = NULL;
    int rc = rpt_parse(text, strlen(text), "t.json", &r, err);
    if (rc != 0) {
        print_error("rpt_parse failed: %s\n", err);
        fail();
    }
    return r;
}

static void parse_fails(const char *text, const char *want)
{
    char err[CU_ERRLEN] = "";
    rpt_report *r = (rpt_report *)1;
    int rc = rpt_parse(text, strlen(text), "t.json", &r, err);
    assert_int_equal(rc, -EINVAL);
    assert_null(r);
    assert_contains(err, want);
}

static char *render(const rpt_report *r)
{
    cu_buf b = CU_BUF_INIT;
    rpt_render_html(r, "t.json", &b);
    return cu_buf_steal(&b);
}

/* The JSON blob of a page, unescaped by jansson exactly as JSON.parse would. */
static json_t *page_data(const char *html)
{
    const char *open = "<script type=\"application/json\" id=\"cutover-data\">";
    const char *s = strstr(html, open);
    assert_non_null(s);
    s += strlen(open);
    const char *e = strstr(s, "</script>");
    assert_non_null(e);
    json_error_t je;
    json_t *d = json_loadb(s, (size_t)(e - s), 0, &je);
    if (!d) {
        print_error("data blob is not JSON: %s\n", je.text);
        fail();
    }
    return d;
}

/* ---- escapes -------------------------------------------------------------------------------- */
static void test_html_escape(void **state)
{
    (void)state;
    cu_buf b = CU_BUF_INIT;
    rpt_html_escape(&b, "a<b>&\"c'd</script>");
    assert_string_equal(b.data, "a&lt;b&gt;&amp;&quot;c&#39;d&lt;/script&gt;");
    cu_buf_reset(&b);
    rpt_html_escape(&b, "plain /api/mocs/{{ id }} \xc3\xa9");
    assert_string_equal(b.data, "plain /api/mocs/{{ id }} \xc3\xa9");
    cu_buf_free(&b);
}

static void test_script_json_escape(void **state)
{
    (void)state;
    json_t *v = json_pack("{s:s, s:s}", "a</script><script>x", "<!-- & -->",
                          "line\xe2\x80\xa8sep\xe2\x80\xa9", "</SCRIPT>");
    char *text = json_dumps(v, JSON_COMPACT);
    cu_buf b = CU_BUF_INIT;
    rpt_script_json(&b, text);
    assert_lacks(b.data, "<");
    assert_lacks(b.data, ">");
    assert_lacks(b.data, "&");
    assert_lacks(b.data, "\xe2\x80\xa8");
    assert_lacks(b.data, "\xe2\x80\xa9");
    assert_contains(b.data, "\\u003c/script\\u003e");
    assert_contains(b.data, "\\u2028");
    /* same value after the escape */
    json_t *back = json_loads(b.data, 0, NULL);
    assert_non_null(back);
    assert_true(json_equal(v, back));
    json_decref(back);
    json_decref(v);
    free(text);
    cu_buf_free(&b);
}

/* ---- parsing -------------------------------------------------------------------------------- */
static void test_artillery_reference(void **state)
{
    (void)state;
    char err[CU_ERRLEN] = "";
    rpt_report *r;
    int rc = rpt_load(REFERENCE, &r, err);
    if (rc) {
        print_error("%s (run from the repository root, beside ../shared)\n", err);
        fail();
    }
    const rpt_metrics *a = &r->aggregate;
    assert_int_equal(rpt_counter_or(a, "http.requests", -1), 480);
    assert_int_equal(rpt_counter_or(a, "vusers.created", -1), 500);
    assert_int_equal(rpt_counter_or(a, "errors.source.on is not a function", -1), 20);
    assert_int_equal(rpt_counter_or(a, "no.such.counter", -1), -1);
    assert_int_equal(rpt_rate(a, "http.request_rate")->value, 49);
    const rpt_stat *rt = rpt_summary(a, "http.response_time");
    assert_non_null(rt);
    assert_true(rt->count == 480 && rt->max == 5 && rt->p99 == 4 && rt->mean == 0.3);
    assert_true(a->period == 1795552130000LL);            /* a number in the aggregate */
    assert_true(a->first_ms == 1795552126059LL && a->last_ms == 1795552136040LL);
    assert_int_equal(r->nwindows, 2);
    assert_true(r->windows[0].period == 1795552120000LL);  /* a string in the windows */
    assert_true(r->windows[1].period == 1795552130000LL);
    assert_int_equal(rpt_counter_or(&r->windows[0], "http.requests", -1), 192);
    assert_false(r->has_ensure);

    char *html = render(r);
    assert_contains(html, "<!DOCTYPE html>");
    static const char *const scenarios[] = {"List MOCs", "Get MOC by ID", "Upload Image",
                                            "Search Gallery", "Get Wishlist"};
    for (size_t i = 0; i < CU_ARRAY_LEN(scenarios); i++)
        assert_contains(html, scenarios[i]);
    assert_contains(html, "<td>/api/mocs/{{ mocId }}</td><td class=\"n\">160</td><td>200: 160</td>");
    assert_contains(html, "<td>source.on is not a function</td><td class=\"n\">20</td>"
                          "<td class=\"n\">4.0%</td>");
    assert_contains(html, "id=\"chart-rate\"");
    assert_contains(html, "id=\"chart-latency\"");
    assert_contains(html, "id=\"chart-codes\"");
    assert_contains(html, "id=\"chart-errors\"");
    assert_lacks(html, "id=\"ensure\"");
    /* self-contained: nothing to fetch */
    assert_lacks(html, "src=");
    assert_lacks(html, "href=");
    assert_lacks(html, "http://");
    assert_lacks(html, "https://");
    assert_lacks(html, "@import");
    assert_lacks(html, "url(");
    json_t *d = page_data(html);
    assert_int_equal(json_array_size(json_object_get(d, "t")), 2);
    json_t *lat = json_array_get(json_object_get(d, "charts"), 1);
    assert_string_equal(json_string_value(json_object_get(lat, "id")), "latency");
    json_t *p99 = json_array_get(json_object_get(lat, "series"), 2);
    assert_string_equal(json_string_value(json_object_get(p99, "name")), "p99");
    json_t *vals = json_object_get(p99, "values");
    assert_true(json_number_value(json_array_get(vals, 0)) == 3);
    assert_true(json_number_value(json_array_get(vals, 1)) == 4);
    json_decref(d);
    free(html);
    rpt_free(r);
}

/* What `cutover run -o` writes with ensure checks (and only histograms in
 * the second window, windows out of order, a JS NaN as null). */
static const char CUTOVER_REPORT[] =
    "{\"aggregate\": {\"counters\": {\"vusers.created\": 20, \"vusers.failed\": 1,"
    " \"http.requests\": 19, \"http.codes.200\": 18, \"http.codes.503\": 1,"
    " \"errors.ECONNRESET\": 1, \"vusers.created_by_name.a\": 20},"
    " \"rates\": {\"http.request_rate\": 2}, \"firstMetricAt\": 1000, \"lastMetricAt\": 20999,"
    " \"period\": 10000, \"summaries\": {\"http.response_time\": {\"min\": 1, \"max\": 9,"
    " \"count\": 19, \"mean\": null, \"p50\": 2, \"p95\": 8, \"p99\": 9}}},"
    " \"intermediate\": ["
    "  {\"counters\": {\"http.requests\": 9, \"http.codes.200\": 9}, \"rates\": {},"
    "   \"firstMetricAt\": 10000, \"lastMetricAt\": 20999, \"period\": \"10000\","
    "   \"histograms\": {\"http.response_time\": {\"count\": 9, \"median\": 3, \"p95\": 8}}},"
    "  {\"counters\": {\"http.requests\": 10, \"http.codes.503\": 1, \"http.codes.200\": 9},"
    "   \"rates\": {\"http.request_rate\": 1}, \"http.request_rate\": null,"
    "   \"firstMetricAt\": 1000, \"lastMetricAt\": 9999, \"period\": \"0\", \"summaries\": {}}],"
    " \"ensure\": {\"passed\": false, \"checks\": ["
    "  {\"check\": \"http.response_time.p95 < 5\", \"passed\": false, \"optional\": false},"
    "  {\"check\": \"vusers.created > 10\", \"passed\": true, \"optional\": true}]}}";

static void test_cutover_flavour(void **state)
{
    (void)state;
    rpt_report *r = parse_ok(CUTOVER_REPORT);
    assert_int_equal(r->nwindows, 2);
    assert_true(r->windows[0].period == 0 && r->windows[1].period == 10000);   /* sorted */
    const rpt_stat *s = rpt_summary(&r->windows[1], "http.response_time");
    assert_non_null(s);                                   /* from histograms */
    assert_true(s->p50 == 3 && s->p95 == 8 && isnan(s->p99));
    assert_true(isnan(rpt_summary(&r->aggregate, "http.response_time")->mean));
    assert_true(r->has_ensure && !r->ensure_passed);
    assert_int_equal(r->nchecks, 2);
    assert_string_equal(r->checks[0].text, "http.response_time.p95 < 5");
    assert_true(!r->checks[0].passed && !r->checks[0].optional);
    assert_true(r->checks[1].passed && r->checks[1].optional);

    char *html = render(r);
    assert_contains(html, "<section id=\"ensure\">");
    assert_contains(html, "<td class=\"fail\">fail</td><td>http.response_time.p95 &lt; 5</td>");
    assert_contains(html, "<td class=\"ok\">ok (optional)</td><td>vusers.created &gt; 10</td>");
    assert_contains(html, "2 checks, 1 failed</div>");
    assert_contains(html, "<td>ECONNRESET</td>");
    assert_lacks(html, "id=\"endpoints\"");              /* no metrics-by-endpoint */
    json_t *d = page_data(html);
    json_t *codes = json_array_get(json_object_get(d, "charts"), 2);
    assert_string_equal(json_string_value(json_object_get(codes, "id")), "codes");
    /* by code, so 2xx stack at the bottom, whatever order they came in */
    json_t *c503 = json_array_get(json_object_get(codes, "series"), 1);
    assert_string_equal(json_string_value(json_object_get(c503, "name")), "503");
    /* window 0 has the 503, window 1 none: absent counts as 0 */
    assert_true(json_number_value(json_array_get(json_object_get(c503, "values"), 0)) == 1);
    assert_true(json_number_value(json_array_get(json_object_get(c503, "values"), 1)) == 0);
    /* window 1 has no request_rate: http.requests over its width (10999 ms) */
    json_t *rate = json_array_get(json_object_get(json_array_get(json_object_get(d, "charts"), 0),
                                                  "series"), 0);
    assert_true(json_number_value(json_array_get(json_object_get(rate, "values"), 1)) == 1);
    json_decref(d);
    free(html);
    rpt_free(r);
}

static void test_missing_sections(void **state)
{
    (void)state;
    rpt_report *r = parse_ok("{\"aggregate\": {}}");
    assert_int_equal(r->nwindows, 0);
    assert_int_equal(r->aggregate.ncounters, 0);
    char *html = render(r);
    assert_contains(html, "no intermediate windows");
    assert_lacks(html, "<canvas id=");
    static const char *const gone[] = {"id=\"ensure\"", "id=\"errors\"", "id=\"scenarios\"",
                                       "id=\"endpoints\"", "id=\"summaries\"", "id=\"windows\""};
    for (size_t i = 0; i < CU_ARRAY_LEN(gone); i++)
        assert_lacks(html, gone[i]);
    json_decref(page_data(html));
    free(html);
    rpt_free(r);
    /* nulls (JavaScript's NaN) and empty sections are absent, not errors */
    r = parse_ok("{\"aggregate\": {\"counters\": null, \"summaries\": {\"x\": null}},"
                 " \"intermediate\": null, \"ensure\": null}");
    assert_int_equal(r->aggregate.nsummaries, 0);
    rpt_free(r);
    /* a window without period is placed by firstMetricAt */
    r = parse_ok("{\"aggregate\": {}, \"intermediate\": [{\"firstMetricAt\": 1795552126059}]}");
    assert_true(r->windows[0].period == 1795552120000LL);
    html = render(r);
    assert_contains(html, "id=\"chart-rate\"");
    assert_lacks(html, "id=\"chart-errors\"");              /* no errors: no errors chart */
    free(html);
    rpt_free(r);
}

static void test_bad_input(void **state)
{
    (void)state;
    parse_fails("", "t.json:1:0: not valid JSON");
    parse_fails("not json", "t.json:1:");
    parse_fails("{\"aggregate\": {}", "not valid JSON");
    parse_fails("[1, 2]", "not a load-test report");
    parse_fails("{\"counters\": {}}", "not a load-test report");
    parse_fails("{\"aggregate\": []}", "aggregate: expected an object");
    parse_fails("{\"aggregate\": {\"timestamp\": \"2020-01-01T00:00:00Z\", \"scenariosCreated\": 5,"
                " \"latency\": {\"p95\": 3}}, \"intermediate\": []}",
                "an Artillery 1.x report");
    parse_fails("{\"aggregate\": {\"counters\": []}}", "aggregate.counters: expected an object");
    parse_fails("{\"aggregate\": {\"counters\": {\"http.requests\": \"5\"}}}",
                "aggregate.counters.http.requests: expected a number, found a string");
    parse_fails("{\"aggregate\": {\"summaries\": {\"rt\": 5}}}",
                "aggregate.summaries.rt: expected an object of statistics");
    parse_fails("{\"aggregate\": {\"summaries\": {\"rt\": {\"p95\": true}}}}",
                "aggregate.summaries.rt.p95: expected a number");
    parse_fails("{\"aggregate\": {}, \"intermediate\": {}}", "intermediate: expected an array");
    parse_fails("{\"aggregate\": {}, \"intermediate\": [{\"period\": 0}, 3]}", "intermediate[1]: expected an object");
    parse_fails("{\"aggregate\": {}, \"intermediate\": [{}]}", "intermediate[0]: no period");
    parse_fails("{\"aggregate\": {}, \"intermediate\": [{\"period\": \"soon\"}]}",
                "intermediate[0].period: expected milliseconds");
    parse_fails("{\"aggregate\": {\"period\": -5}}", "aggregate.period: expected milliseconds");
    parse_fails("{\"aggregate\": {}, \"ensure\": {\"checks\": []}}", "ensure.passed");
    parse_fails("{\"aggregate\": {}, \"ensure\": {\"passed\": true, \"checks\": [{\"check\": 1}]}}",
                "ensure.checks[0]");
    char err[CU_ERRLEN];
    rpt_report *r = (rpt_report *)1;
    assert_int_equal(rpt_load("/nonexistent/r.json", &r, err), -ENOENT);
    assert_null(r);
    assert_contains(err, "/nonexistent/r.json");
}

/* Every prefix of a real report is refused cleanly (ASan watches), and only
 * the whole text parses. */
static void test_every_prefix(void **state)
{
    (void)state;
    cu_buf b = CU_BUF_INIT;
    char err[CU_ERRLEN];
    assert_int_equal(cu_read_file(REFERENCE, &b, err), 0);
    size_t end = b.len;
    while (end > 0 && (b.data[end - 1] == '\n' || b.data[end - 1] == ' '))
        end--;
    size_t tried = 0;
    for (size_t n = 0; n < end; n += (n < 512 ? 1 : 13)) {
        rpt_report *r = (rpt_report *)1;
        int rc = rpt_parse(b.data, n, "p.json", &r, err);
        if (rc != -EINVAL || r) {
            print_error("prefix of %zu bytes: rc %d\n", n, rc);
            fail();
        }
        tried++;
    }
    assert_true(tried > 1000);
    rpt_report *r;
    assert_int_equal(rpt_parse(b.data, b.len, "p.json", &r, err), 0);
    rpt_free(r);
    cu_buf_free(&b);
}

/* Names come from users' scripts: none may break out of its markup or out
 * of the <script> that carries the chart data. */
static void test_hostile_names(void **state)
{
    (void)state;
    const char *text =
        "{\"aggregate\": {\"counters\": {"
        "\"vusers.created_by_name.</script><script>alert(1)</script>\": 3,"
        "\"errors.<!-- <img src=x onerror=alert(2)>\": 2,"
        "\"http.codes.<b>\": 1,"
        "\"plugins.metrics-by-endpoint./x\\\"><svg onload=alert(3)>.codes.200\": 4},"
        " \"summaries\": {\"</style><i>s\": {\"count\": 1, \"p95\": 1}}},"
        " \"intermediate\": [{\"period\": \"0\", \"counters\": {"
        "\"errors.</script><script>alert(4)</script>\": 1, \"http.codes.</SCRIPT >\": 2}}],"
        " \"ensure\": {\"passed\": true, \"checks\": [{\"check\": \"<script>x</script>\", \"passed\": true}]}}";
    rpt_report *r = parse_ok(text);
    cu_buf b = CU_BUF_INIT;
    rpt_render_html(r, "<title></title><script>t</script>.json", &b);
    const char *html = b.data;
    /* only the page's own two scripts and one style */
    assert_int_equal(count_of(html, "<script"), 2);
    assert_int_equal(count_of(html, "</script"), 2);
    assert_int_equal(count_of(html, "</SCRIPT"), 0);
    assert_int_equal(count_of(html, "</style"), 1);
    assert_int_equal(count_of(html, "<title"), 1);
    assert_lacks(html, "<!--");
    assert_lacks(html, "<img");
    assert_lacks(html, "<svg");
    assert_lacks(html, "<i>");
    assert_lacks(html, "<b>");
    assert_contains(html, "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;");
    assert_contains(html, "&lt;!-- &lt;img src=x onerror=alert(2)&gt;");
    assert_contains(html, "/x&quot;&gt;&lt;svg onload=alert(3)&gt;");
    /* and the data blob still carries the names exactly */
    json_t *d = page_data(html);
    json_t *errs = json_array_get(json_object_get(d, "charts"), 3);
    assert_string_equal(json_string_value(json_object_get(errs, "id")), "errors");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(errs, "series"), 0), "name")),
        "</script><script>alert(4)</script>");
    json_decref(d);
    cu_buf_free(&b);
    rpt_free(r);
}

/* More than 8 status codes: the first 7 by first sight, the rest "other". */
static void test_many_codes_fold_into_other(void **state)
{
    (void)state;
    cu_buf t = CU_BUF_INIT;
    cu_buf_appends(&t, "{\"aggregate\": {}, \"intermediate\": [{\"period\": 0, \"counters\": {");
    for (int i = 0; i < 10; i++)
        cu_buf_appendf(&t, "%s\"http.codes.%d\": %d", i ? ", " : "", 200 + i, i + 1);
    cu_buf_appends(&t, "}}]}");
    rpt_report *r = parse_ok(t.data);
    char *html = render(r);
    json_t *d = page_data(html);
    json_t *series = json_object_get(json_array_get(json_object_get(d, "charts"), 2), "series");
    assert_int_equal(json_array_size(series), 8);
    json_t *other = json_array_get(series, 7);
    assert_string_equal(json_string_value(json_object_get(other, "name")), "other");
    assert_true(json_number_value(json_array_get(json_object_get(other, "values"), 0)) == 8 + 9 + 10);
    json_decref(d);
    free(html);
    rpt_free(r);
    cu_buf_free(&t);
}

/* Endpoints with dots, ".codes." and ".errors." in their own names. */
static void test_endpoint_names(void **state)
{
    (void)state;
    rpt_report *r = parse_ok(
        "{\"aggregate\": {\"counters\": {"
        "\"plugins.metrics-by-endpoint.http://a.b/x.codes.200\": 5,"
        "\"plugins.metrics-by-endpoint.http://a.b/x.codes.404\": 2,"
        "\"plugins.metrics-by-endpoint./v1.codes.list.codes.201\": 1,"
        "\"plugins.metrics-by-endpoint./up.errors.ETIMEDOUT\": 3,"
        "\"plugins.metrics-by-endpoint./up.errors.Invalid URL - a.b\": 1},"
        " \"summaries\": {\"plugins.metrics-by-endpoint.response_time.http://a.b/x\":"
        " {\"count\": 7, \"p95\": 12.5}}}}");
    char *html = render(r);
    assert_contains(html, "<td>http://a.b/x</td><td class=\"n\">7</td><td>200: 5, 404: 2</td><td></td>"
                          "<td class=\"n\">7</td>");
    assert_contains(html, "<td class=\"n\">12.5</td>");
    assert_contains(html, "<td>/v1.codes.list</td><td class=\"n\">1</td><td>201: 1</td>");
    assert_contains(html, "<td>/up</td><td class=\"n\">0</td><td></td>"
                          "<td>ETIMEDOUT: 3, Invalid URL - a.b: 1</td>");
    /* metrics-by-endpoint summaries stay out of the summaries table */
    assert_lacks(html, "id=\"summaries\"");
    free(html);
    rpt_free(r);
}

/* Figures for people: grouped thousands, durations in h/min/s. */
static void test_figures(void **state)
{
    (void)state;
    rpt_report *r = parse_ok("{\"aggregate\": {\"counters\": {\"http.requests\": 8639168,"
                             " \"vusers.created\": -1234, \"x\": 0.34},"
                             " \"firstMetricAt\": 0, \"lastMetricAt\": 3725000}}");
    char *html = render(r);
    assert_contains(html, "<div class=\"value\">8,639,168</div>");
    assert_contains(html, "<div class=\"value\">1 h 2 min</div>");
    assert_contains(html, "<td class=\"n\">-1,234</td>");
    assert_contains(html, "<td class=\"n\">0.3</td>");   /* 1 decimal, as Artillery */
    free(html);
    rpt_free(r);
    r = parse_ok("{\"aggregate\": {\"firstMetricAt\": 1000, \"lastMetricAt\": 304000}}");
    html = render(r);
    assert_contains(html, "<div class=\"value\">5 min 3 s</div>");
    free(html);
    rpt_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_html_escape),
        cmocka_unit_test(test_script_json_escape),
        cmocka_unit_test(test_artillery_reference),
        cmocka_unit_test(test_cutover_flavour),
        cmocka_unit_test(test_missing_sections),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_hostile_names),
        cmocka_unit_test(test_many_codes_fold_into_other),
        cmocka_unit_test(test_endpoint_names),
        cmocka_unit_test(test_figures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
