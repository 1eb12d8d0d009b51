/* Unit tests for the serve config: defaults, every section parsed, and
 * errors that name file:line:column with a useful message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router/router_int.h"

#define UPS "upstreams:\n  blue: { servers: [\"http://127.0.0.1:1\"] }\n" \
            "  green: { servers: \"http://127.0.0.1:2\" }\n"

static void expect_error(const char *text, const char *want)
{
    router_config c;
    char err[CU_ERRLEN] = "";
    int rc = router_config_parse(&c, text, strlen(text), "/etc/cut.yml", err);
    if (rc == 0) {
        router_config_free(&c);
        print_error("accepted:\n%s\nwanted error: %s\n", text, want);
        fail();
    }
    if (!strstr(err, want)) {
        print_error("error   '%s'\nwanted  '%s'\n", err, want);
        fail();
    }
}

static void test_defaults(void **state)
{
    (void)state;
    router_config c;
    char err[CU_ERRLEN];
    assert_int_equal(router_config_parse(&c, UPS, strlen(UPS), "/etc/cut.yml", err), 0);
    assert_int_equal(c.nlisteners, 1);
    assert_string_equal(c.listeners[0].host, "127.0.0.1");
    assert_int_equal(c.listeners[0].port, 8080);
    assert_null(c.listeners[0].tls_cert);
    assert_string_equal(c.admin_host, "127.0.0.1");
    assert_int_equal(c.admin_port, 9090);
    assert_null(c.token_file);
    assert_null(c.force_header);
    assert_string_equal(c.color_header, "X-Cutover-Color");
    assert_true(c.retry);
    assert_int_equal(c.horizon_s, 900);
    assert_int_equal(c.busy_poll_us, 0);
    assert_int_equal(c.pools[ROUTER_BLUE].nservers, 1);
    assert_int_equal(c.pools[ROUTER_GREEN].nservers, 1);
    assert_string_equal(c.pools[ROUTER_GREEN].servers[0], "http://127.0.0.1:2");
    assert_null(c.pools[0].health.path);
    assert_true(c.weight == 0);
    assert_null(c.rollout);
    assert_null(c.state);
    router_config_free(&c);
}

static void test_full(void **state)
{
    (void)state;
    const char *text =
        "listen: [ 0.0.0.0:8443, { address: \":8080\" }, { address: 127.0.0.1:1, tls: {\n"
        "          cert: o.pem, key: o.key } } ]\n"
        "tls: { cert: certs/c.pem, key: /abs/k.pem }\n"
        "admin: { listen: 127.0.0.1:9999, token_file: admin.token }\n"
        "upstreams:\n"
        "  blue:\n"
        "    servers: [\"http://10.0.0.1:80\", \"https://b.example:443\"]\n"
        "    health: { path: /health, interval: 500ms, timeout: 1s, rise: 3, fall: 4,\n"
        "              eject_after: 5, eject_time: 1m }\n"
        "    pool: { max_conns: 10, max_idle: 2, idle_timeout: 5s }\n"
        "    tls: { verify: false }\n"
        "  green: { servers: [\"http://10.0.0.2:80\"] }\n"
        "weight: 12.345\n"
        "sticky: { cookie: uid }\n"
        "force_header: true\n"
        "color_header: false\n"
        "retry: false\n"
        "limits: { header_bytes: 8192, headers: 50 }\n"
        "timeouts: { header: 5s, body: 10s, idle: 30s, connect: 250ms, response: 2m, drain: 20s }\n"
        "metrics: { horizon: 30m }\n"
        "access_log: logs/a.jsonl\n"
        "busy_poll: 0.2ms\n"
        "state: cutover.db\n"
        "rollout: { from: blue, to: green, steps: [ { weight: 10, hold: 48h } ] }\n";
    router_config c;
    char err[CU_ERRLEN] = "";
    int rc = router_config_parse(&c, text, strlen(text), "/etc/cut/serve.yml", err);
    if (rc)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(c.nlisteners, 3);
    assert_string_equal(c.listeners[0].host, "0.0.0.0");
    assert_int_equal(c.listeners[0].port, 8443);
    assert_string_equal(c.listeners[0].tls_cert, "/etc/cut/certs/c.pem"); /* top-level tls */
    assert_string_equal(c.listeners[0].tls_key, "/abs/k.pem");
    assert_string_equal(c.listeners[1].host, "127.0.0.1");
    assert_int_equal(c.listeners[1].port, 8080);
    assert_null(c.listeners[1].tls_cert);                  /* a map sets its own */
    assert_string_equal(c.listeners[2].tls_cert, "/etc/cut/o.pem");
    assert_string_equal(c.token_file, "/etc/cut/admin.token");
    assert_int_equal(c.admin_port, 9999);
    const router_pool_conf *b = &c.pools[ROUTER_BLUE];
    assert_int_equal(b->nservers, 2);
    assert_string_equal(b->health.path, "/health");
    assert_int_equal(b->health.interval_ms, 500);
    assert_int_equal(b->health.timeout_ms, 1000);
    assert_int_equal(b->health.rise, 3);
    assert_int_equal(b->health.fall, 4);
    assert_int_equal(b->health.eject_after, 5);
    assert_int_equal(b->health.eject_ms, 60000);
    assert_int_equal(b->max_conns, 10);
    assert_int_equal(b->max_idle, 2);
    assert_int_equal(b->idle_timeout_ms, 5000);
    assert_false(b->tls_verify);
    assert_true(c.pools[ROUTER_GREEN].tls_verify);
    assert_true(c.weight > 12.34 && c.weight < 12.36); /* rounded to 0.01 */
    assert_string_equal(c.sticky_cookie, "uid");
    assert_null(c.sticky_header);
    assert_string_equal(c.force_header, "X-Cutover-Color");
    assert_null(c.color_header);
    assert_false(c.retry);
    assert_int_equal(c.max_header_bytes, 8192);
    assert_int_equal(c.max_headers, 50);
    assert_int_equal(c.header_timeout_ms, 5000);
    assert_int_equal(c.connect_timeout_ms, 250);
    assert_int_equal(c.response_timeout_ms, 120000);
    assert_int_equal(c.drain_timeout_ms, 20000);
    assert_int_equal(c.horizon_s, 1800);
    assert_int_equal(c.busy_poll_us, 200);
    assert_string_equal(c.access_log, "/etc/cut/logs/a.jsonl");
    /* the controller's sections, handed on as parsed nodes */
    assert_non_null(c.state);
    assert_string_equal(c.state->str, "cutover.db");
    assert_non_null(c.rollout);
    assert_int_equal(c.rollout->type, CONF_MAP);
    assert_int_equal(c.rollout->line, 24);
    assert_non_null(conf_get(c.rollout, "steps"));
    router_config_free(&c);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("listen: 1\n", "/etc/cut.yml:1:1: missing 'upstreams'");
    expect_error("upstreams:\n  blue: { servers: [\"http://a:1\"] }\n",
                 "/etc/cut.yml:2:3: missing upstream 'green'");
    expect_error("upstreams:\n  blue: { servers: [\"http://a:1\"] }\n"
                 "  gren: { servers: [\"http://a:1\"] }\n",
                 "/etc/cut.yml:3:3: upstreams are 'blue' and 'green', not 'gren'");
    expect_error("upstreams:\n  blue: { servers: [] }\n  green: { servers: [\"http://a:1\"] }\n",
                 "/etc/cut.yml:2:20: servers must be a URL or a non-empty list");
    expect_error("upstreams:\n  blue: { servers: [\"ftp://a:1\"] }\n"
                 "  green: { servers: [\"http://a:1\"] }\n",
                 "/etc/cut.yml:2:21: invalid URL 'ftp://a:1'");
    expect_error("upstreams:\n  blue: { servers: [\"http://a:1/path\"] }\n"
                 "  green: { servers: [\"http://a:1\"] }\n",
                 "/etc/cut.yml:2:21: a server URL has no path");
    expect_error("upstreams:\n  blue: { servers: [\"http://a:1\"] }\n"
                 "  green: { servers: [\"http://a:1\"], health: { interval: 2 weeks } }\n",
                 "/etc/cut.yml:3:57: expected a duration");
    expect_error("upstreams:\n  blue: { servers: [\"http://a:1\"] }\n"
                 "  green: { servers: [\"http://a:1\"], health: { path: health } }\n",
                 "/etc/cut.yml:3:53: health path must start with '/'");
    expect_error(UPS "weight: 100.5\n", "/etc/cut.yml:4:9: weight is green's percent");
    expect_error(UPS "weight: ten\n", "/etc/cut.yml:4:9: weight is green's percent");
    expect_error(UPS "sticky: { header: a, cookie: b }\n",
                 "/etc/cut.yml:4:9: sticky takes one of 'header' or 'cookie'");
    expect_error(UPS "tls: { cert: a.pem }\n", "/etc/cut.yml:4:6: tls needs both");
    expect_error(UPS "listen: nope\n", "/etc/cut.yml:4:9: ");
    expect_error(UPS "listen: []\n", "/etc/cut.yml:4:9: listen needs at least one address");
    expect_error(UPS "listen: [ { tls: {} } ]\n", "/etc/cut.yml:4:11: a listener needs 'address'");
    expect_error(UPS "listen: [ { address: \":1\", tls: { key: k } } ]\n",
                 "/etc/cut.yml:4:33: tls needs both");
    expect_error(UPS "retry: 1\n", "/etc/cut.yml:4:8: expected true or false");
    expect_error(UPS "timeouts: { connect: 0 }\n", "/etc/cut.yml:4:22: a timeout must be positive");
    expect_error(UPS "metrics: { horizon: 10s }\n", "/etc/cut.yml:4:21: horizon must be from 1m");
    expect_error(UPS "busy_poll: 2ms\n", "/etc/cut.yml:4:12: busy_poll must be a duration from 0us to 1ms");
    expect_error(UPS "busy_poll: 50\n", "/etc/cut.yml:4:12: busy_poll must be a duration");
    expect_error(UPS "busy_poll: true\n", "/etc/cut.yml:4:12: busy_poll must be a duration");
    expect_error(UPS "busy_poll: -5us\n", "/etc/cut.yml:4:12: busy_poll must be a duration");
    expect_error(UPS "limits: { headers: 100000 }\n",
                 "/etc/cut.yml:4:20: expected an integer from 4 to 10000");
    expect_error("- a\n- b\n", "/etc/cut.yml:1:1: the serve config must be a map");
    expect_error("listen: [1\n", "/etc/cut.yml:");
}

/* Durations are conf_duration_ms's (tests/unit/conf); here, that the
 * router reads its timeouts with it and names a bad one. */
static void test_durations(void **state)
{
    (void)state;
    router_config c;
    char err[CU_ERRLEN] = "";
    const char *text = UPS "timeouts: { idle: 1.5m, connect: 250ms, drain: 1min, tunnel: 2h }\n";
    assert_int_equal(router_config_parse(&c, text, strlen(text), "/etc/cut.yml", err), 0);
    assert_int_equal(c.idle_timeout_ms, 90000);
    assert_int_equal(c.connect_timeout_ms, 250);
    assert_int_equal(c.drain_timeout_ms, 60000);
    assert_int_equal(c.tunnel_timeout_ms, 7200000);
    router_config_free(&c);
    expect_error(UPS "timeouts: { idle: 1 s }\n", "/etc/cut.yml:4:19: expected a duration");
    expect_error(UPS "timeouts: { idle: 0x10s }\n", "/etc/cut.yml:4:19: expected a duration");
}

/* busy_poll: off with false or 0; microseconds or milliseconds up to 1ms */
static void test_busy_poll(void **state)
{
    (void)state;
    const char *ok[][2] = {{"false", "0"}, {"0", "0"}, {"0us", "0"}, {"10us", "10"},
                           {"1ms", "1000"}, {"0.05ms", "50"}, {"1000us", "1000"}};
    for (size_t i = 0; i < CU_ARRAY_LEN(ok); i++) {
        char text[256], err[CU_ERRLEN] = "";
        snprintf(text, sizeof text, UPS "busy_poll: %s\n", ok[i][0]);
        router_config c;
        int rc = router_config_parse(&c, text, strlen(text), "/etc/cut.yml", err);
        if (rc)
            fail_msg("%s: %s", ok[i][0], err);
        assert_int_equal(c.busy_poll_us, strtoull(ok[i][1], NULL, 10));
        router_config_free(&c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_busy_poll),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
