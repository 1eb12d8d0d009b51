/* Text that reaches JSON stays valid UTF-8: a long non-ASCII `by` is
 * refused by the admin API, names given to the C API are cut on character
 * boundaries, no notification is ever stored without its payload, and a
 * journal holding such a row (written before the NOT NULL constraint)
 * reopens without crashing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fake.h"

#define T0 1767225600000LL

static const char plan_yaml[] =
    "rollout:\n  from: blue\n  to: green\n"
    "  steps: [ { weight: 10, hold: 1m, approve: true }, { weight: 100, hold: 1m } ]\n"
    "  analysis:\n    interval: 1m\n    min_requests: 100\n"
    "    gates: [ \"p95 < 500ms\" ]\n    rollback_when: [ \"error_rate > 5%\" ]\n"
    "  notify: [ { exec: \"cat\" } ]\n";

/* n copies of "é" (2 bytes each) */
static char *e_acute(int n)
{
    char *s = cu_calloc((size_t)n * 2 + 1, 1);
    for (int i = 0; i < n; i++)
        memcpy(s + 2 * i, "\xc3\xa9", 2);
    return s;
}

static void test_text_helpers(void **state)
{
    (void)state;
    char buf[8];
    rt_fmt(buf, sizeof buf, "%s", "ab\xc3\xa9\xc3\xa9\xc3\xa9"); /* 8 bytes into 7 */
    assert_string_equal(buf, "ab\xc3\xa9\xc3\xa9");
    rt_fmt(buf, sizeof buf, "%s", "abcd\xe2\x82\xac"); /* euro sign: 3 bytes, 7 in all */
    assert_string_equal(buf, "abcd\xe2\x82\xac");
    rt_fmt(buf, sizeof buf, "%s", "abcde\xe2\x82\xac");
    assert_string_equal(buf, "abcde");
    assert_true(rt_utf8_valid("\xc3\xa9", 2));
    assert_false(rt_utf8_valid("\xc3", 1));
    assert_false(rt_utf8_valid("\xc0\xaf", 2)); /* overlong */
    char bad[] = "a\xc3z\xff";
    rt_utf8_clean(bad);
    assert_string_equal(bad, "a?z?");
}

static void test_long_utf8_by(void **state)
{
    (void)state;
    fake f;
    fake_init(&f, T0);
    fake_traffic(&f, 1, 1000, 0, 0, 200);
    fake_traffic(&f, 0, 1000, 0, 0, 200);
    rollout_plan *p = plan_from(plan_yaml, NULL);
    char *path = temp_journal();
    rollout_ctl *c = open_ctl(p, path, &f, NULL);
    /* the reviewer's trigger: {"by": "é" x 64} is 128 bytes */
    char *name = e_acute(64);
    char *body = cu_asprintf("{\"by\": \"%s\"}", name);
    cu_buf b = CU_BUF_INIT;
    assert_int_equal(rollout_admin_handle(c, "POST", "/rollout/start", body, strlen(body), &b),
                     400);
    assert_non_null(strstr(b.data, "at most 64 bytes (got 128)"));
    assert_int_equal(info_of(c).state, ROLLOUT_IDLE);
    cu_buf_reset(&b);
    assert_int_equal(rollout_admin_handle(c, "POST", "/rollout/start", "{\"by\": 7}", 9, &b), 400);
    cu_buf_reset(&b);
    free(body);
    free(name);
    name = e_acute(32); /* 64 bytes: accepted */
    body = cu_asprintf("{\"by\": \"%s\"}", name);
    assert_int_equal(rollout_admin_handle(c, "POST", "/rollout/start", body, strlen(body), &b),
                     200);
    assert_non_null(strstr(b.data, "\"ok\": true"));
    free(body);
    free(name);
    /* the C API takes any name: cut on a character boundary, never half an é */
    run_for(c, &f, 60000);
    assert_true(info_of(c).awaiting_approval);
    char err[CU_ERRLEN];
    name = e_acute(58); /* "approved by " + 116 bytes does not fit in 128 */
    assert_int_equal(rollout_approve(c, name, err), 0);
    assert_int_equal(info_of(c).step, 1);
    free(name);
    name = e_acute(100);
    assert_int_equal(rollout_abort(c, name, err), 0);
    assert_int_equal(rollout_start(c, "a\xff" "b", err), 0); /* not UTF-8: cleaned */
    free(name);
    /* every decision and notification was stored, as valid JSON */
    assert_int_equal(sql_int(path, "SELECT count(*) FROM decisions"), 5);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM outbox"), 5);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM outbox WHERE payload IS NULL OR NOT "
                                   "json_valid(payload)"), 0);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM decisions WHERE record IS NULL OR NOT "
                                   "json_valid(record)"), 0);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM decisions WHERE record LIKE "
                                   "'%\"by\":\"a?b\"%'"), 1);
    /* a 404 for a route cut inside a character still answers JSON */
    cu_buf_reset(&b);
    name = e_acute(40);
    char *route = cu_asprintf("/rollout/x%s", name);
    assert_int_equal(rollout_admin_handle(c, "GET", route, NULL, 0, &b), 404);
    json_t *j = json_loads(b.data, 0, NULL);
    assert_non_null(j);
    assert_non_null(strstr(json_string_value(json_object_get(j, "error")), "unknown rollout route"));
    json_decref(j);
    free(route);
    free(name);
    cu_buf_free(&b);
    rollout_close(c);
    rollout_plan_free(p);
    remove_journal(path);
    fake_free(&f);
}

/* A journal written before payload was NOT NULL may hold a row without
 * one: opening it (which pumps the outbox) sets the row aside and logs,
 * and the receiver's later rows still go out. */
static void test_reopen_with_null_payload(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    fake f;
    fake_init(&f, T0);
    rollout_plan *p = plan_from(plan_yaml, NULL);
    char *path = temp_journal();
    rollout_ctl *c = open_ctl(p, path, &f, NULL);
    rollout_close(c);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
        "DROP TABLE outbox;"
        "CREATE TABLE outbox(id INTEGER PRIMARY KEY AUTOINCREMENT, receiver TEXT,"
        " decision INTEGER, event TEXT, payload TEXT, created_ms INTEGER, delivered_ms INTEGER,"
        " attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT);"
        "INSERT INTO outbox(receiver, decision, event, payload, created_ms)"
        " VALUES('exec:cat', 1, 'start', NULL, 1);"
        "INSERT INTO outbox(receiver, decision, event, payload, created_ms)"
        " VALUES('exec:cat', 2, 'pause', '{\"event_id\": \"1-2-pause\"}', 2);",
        NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    c = open_ctl(p, path, &f, &loop); /* rollout_open pumps the outbox: must not crash */
    assert_int_equal(sql_int(path, "SELECT delivered_ms FROM outbox WHERE id=1"), 0);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM outbox WHERE id=1 AND last_error LIKE "
                                   "'bad row%'"), 1);
    for (int i = 0; i < 200 && sql_int(path, "SELECT count(*) FROM outbox WHERE id=2 AND "
                                             "delivered_ms > 0") != 1; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(10000);
        rollout_tick(c);
    }
    assert_int_equal(sql_int(path, "SELECT count(*) FROM outbox WHERE id=2 AND delivered_ms > 0"),
                     1);
    rollout_close(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    rollout_plan_free(p);
    remove_journal(path);
    fake_free(&f);
}

/* A journal SQLite cannot put in WAL mode is refused (an in-memory
 * database answers journal_mode=memory), and the events table renders a
 * malformed record without passing NULL to %s. */
static void test_wal_required_and_table_guard(void **state)
{
    (void)state;
    fake f;
    fake_init(&f, T0);
    rollout_plan *p = plan_from(plan_yaml, NULL);
    char err[CU_ERRLEN] = "";
    rollout_config cfg = {.plan = p, .journal_path = ":memory:", .ops = &fake_ops,
                          .target_ctx = &f, .clock = fake_clock, .clock_ctx = &f,
                          .manual_ticks = true};
    rollout_ctl *c = NULL;
    assert_int_equal(rollout_open(&c, &cfg, err), -EIO);
    assert_non_null(strstr(err, "needs SQLite's WAL mode, but journal_mode is 'memory'"));
    unlink(":memory:.lock");
    cu_buf b = CU_BUF_INIT;
    assert_int_equal(rollout_events_table("[{\"seq\": 1, \"kind\": 7, \"record\": {\"gates\": "
                                          "[{\"expr\": \"p95 < 1s\"}]}}]", &b, err), 0);
    assert_null(strstr(b.data, "(null)"));
    assert_non_null(strstr(b.data, "?     p95 < 1s: ?"));
    cu_buf_free(&b);
    rollout_plan_free(p);
    fake_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_helpers),
        cmocka_unit_test(test_long_utf8_by),
        cmocka_unit_test(test_reopen_with_null_payload),
        cmocka_unit_test(test_wal_required_and_table_guard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
