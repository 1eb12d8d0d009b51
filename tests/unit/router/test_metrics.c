/* Unit tests for per-colour measurement: 1 s buckets over a horizon,
 * windows of any length, stale buckets dropped, and the Prometheus text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router/router_int.h"

#define S(x) ((uint64_t)(x) * 1000000000ULL)

static void expect_line(const char *text, const char *line)
{
    char *want = cu_asprintf("\n%s\n", line);
    if (!strstr(text, want)) {
        print_error("missing line '%s' in:\n%s\n", line, text);
        free(want);
        fail();
    }
    free(want);
}

static void test_windows(void **state)
{
    (void)state;
    rt_stats s;
    rt_stats_init(&s, 60, S(1000));
    /* seconds 1000..1009: second k gets k-999 requests of 10 ms, green */
    for (int k = 0; k < 10; k++)
        for (int i = 0; i <= k; i++)
            rt_stats_record(&s, ROUTER_GREEN, 200, 10.0, 100, 1000, S(1000 + k) + 5);
    rt_stats_record(&s, ROUTER_GREEN, 503, 20.0, 0, 0, S(1009) + 7);
    rt_stats_record(&s, ROUTER_GREEN, 0, 5.0, 0, 0, S(1009) + 8);   /* transport error */
    rt_stats_record(&s, ROUTER_BLUE, 404, 1.0, 0, 0, S(1009) + 9);
    router_sample w;
    hist_init(&w.latency_ms);
    assert_int_equal(rt_stats_window(&s, ROUTER_GREEN, 1, S(1009) + 500000000ULL, &w), 0);
    assert_int_equal(w.requests, 12);            /* 10 + 503 + transport error */
    assert_int_equal(w.codes[2], 10);
    assert_int_equal(w.codes[5], 1);
    assert_int_equal(w.errors_5xx, 1);
    assert_int_equal(w.transport_errors, 1);
    assert_int_equal(w.latency_ms.count, 11);     /* transport errors have no latency */
    assert_true(w.seconds > 0.49 && w.seconds < 0.51);
    assert_int_equal(rt_stats_window(&s, ROUTER_GREEN, 3, S(1009) + 1, &w), 0);
    assert_int_equal(w.codes[2], 10 + 9 + 8);
    assert_int_equal(w.bytes_in, 2700);
    assert_int_equal(w.bytes_out, 27000);
    assert_int_equal(rt_stats_window(&s, ROUTER_GREEN, 60, S(1009) + 1, &w), 0);
    assert_int_equal(w.codes[2], 55);
    assert_true(w.seconds > 9.0 && w.seconds < 9.01); /* capped by the router's age */
    assert_int_equal(rt_stats_window(&s, ROUTER_BLUE, 60, S(1009) + 1, &w), 0);
    assert_int_equal(w.requests, 1);
    assert_int_equal(w.codes[4], 1);
    /* longer than the horizon: capped; later: old seconds fall out */
    assert_int_equal(rt_stats_window(&s, ROUTER_GREEN, 1000, S(1065), &w), 0);
    assert_int_equal(w.codes[2], 55 - 1 - 2 - 3 - 4 - 5 - 6);  /* seconds 1006.. remain */
    /* a bucket reused after a full turn of the ring starts from zero */
    rt_stats_record(&s, ROUTER_GREEN, 200, 1.0, 0, 0, S(1060));
    assert_int_equal(rt_stats_window(&s, ROUTER_GREEN, 1, S(1060), &w), 0);
    assert_int_equal(w.requests, 1);
    assert_int_equal(rt_stats_window(&s, 2, 1, S(1060), &w), -22);
    assert_int_equal(rt_stats_window(&s, ROUTER_GREEN, 0, S(1060), &w), -22);
    hist_free(&w.latency_ms);
    rt_stats_free(&s);
}

static void test_prometheus_text(void **state)
{
    (void)state;
    rt_stats s;
    rt_stats_init(&s, 900, S(1));
    rt_stats_record(&s, ROUTER_BLUE, 200, 3.0, 10, 20, S(2));    /* <= 5 ms */
    rt_stats_record(&s, ROUTER_BLUE, 200, 7.0, 10, 20, S(2));    /* <= 10 ms */
    rt_stats_record(&s, ROUTER_BLUE, 500, 700.0, 0, 0, S(2));    /* <= 1 s */
    rt_stats_record(&s, ROUTER_BLUE, 0, 1.0, 0, 0, S(2));        /* transport error */
    rt_stats_record(&s, ROUTER_GREEN, 302, 20000.0, 1, 2, S(2)); /* > 10 s */
    rt_stats_retry(&s, ROUTER_GREEN);
    cu_buf b = CU_BUF_INIT;
    cu_buf_appendc(&b, '\n');
    rt_stats_prometheus(&s, &b, 12.5, 0, "cutover_server_up{color=\"blue\",server=\"x\"} 1\n");
    const char *t = b.data;
    expect_line(t, "# TYPE cutover_requests_total counter");
    expect_line(t, "cutover_requests_total{color=\"blue\",code_class=\"2xx\"} 2");
    expect_line(t, "cutover_requests_total{color=\"blue\",code_class=\"5xx\"} 1");
    expect_line(t, "cutover_requests_total{color=\"green\",code_class=\"3xx\"} 1");
    expect_line(t, "cutover_requests_total{color=\"green\",code_class=\"2xx\"} 0");
    expect_line(t, "cutover_responses_total{color=\"blue\",code=\"500\"} 1");
    expect_line(t, "cutover_transport_errors_total{color=\"blue\"} 1");
    expect_line(t, "cutover_retries_total{color=\"green\"} 1");
    expect_line(t, "cutover_received_bytes_total{color=\"blue\"} 20");
    expect_line(t, "cutover_sent_bytes_total{color=\"green\"} 2");
    expect_line(t, "# TYPE cutover_request_duration_seconds histogram");
    expect_line(t, "cutover_request_duration_seconds_bucket{color=\"blue\",le=\"0.005\"} 1");
    expect_line(t, "cutover_request_duration_seconds_bucket{color=\"blue\",le=\"0.01\"} 2");
    expect_line(t, "cutover_request_duration_seconds_bucket{color=\"blue\",le=\"0.5\"} 2");
    expect_line(t, "cutover_request_duration_seconds_bucket{color=\"blue\",le=\"1\"} 3");
    expect_line(t, "cutover_request_duration_seconds_bucket{color=\"blue\",le=\"+Inf\"} 3");
    expect_line(t, "cutover_request_duration_seconds_count{color=\"blue\"} 3");
    expect_line(t, "cutover_request_duration_seconds_sum{color=\"blue\"} 0.71");
    expect_line(t, "cutover_request_duration_seconds_bucket{color=\"green\",le=\"10\"} 0");
    expect_line(t, "cutover_request_duration_seconds_bucket{color=\"green\",le=\"+Inf\"} 1");
    expect_line(t, "# TYPE cutover_weight gauge");
    expect_line(t, "cutover_weight{color=\"green\"} 12.50");
    expect_line(t, "cutover_weight{color=\"blue\"} 87.50");
    expect_line(t, "cutover_effective_weight{color=\"green\"} 0.00");
    expect_line(t, "cutover_server_up{color=\"blue\",server=\"x\"} 1");
    /* every sample line belongs to a family announced by # TYPE before it */
    char *copy = cu_strdup(t), *save = NULL;
    char fam[128] = "";
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(line, "# TYPE ", 7)) {
            sscanf(line + 7, "%127s", fam);
            continue;
        }
        if (line[0] == '#')
            continue;
        assert_true(fam[0] && !strncmp(line, fam, strlen(fam)));
        assert_non_null(strchr(line, ' '));
    }
    free(copy);
    assert_int_equal(t[b.len - 1], '\n');
    cu_buf_free(&b);
    rt_stats_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_prometheus_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
