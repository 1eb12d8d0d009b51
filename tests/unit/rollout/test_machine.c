/* The controller's state machine over a fake target and a fake clock:
 * a healthy promotion through every step at the times the plan promises,
 * a tripwire rollback within the same 1-second tick, a latency gate that
 * fails until the failure limit, HOLD at low traffic, an approval step,
 * errors counted apart from failures, commands and the admin API. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#include "fake.h"

#define T0 1767225600000LL /* 2026-01-01T00:00:00Z */

static const char plan_yaml[] =
    "rollout:\n"
    "  from: blue\n"
    "  to: green\n"
    "  steps: [ { weight: 10, hold: 10m }, { weight: 50, hold: 10m }, { weight: 100, hold: 10m } ]\n"
    "  analysis:\n"
    "    interval: 1m\n"
    "    min_requests: 100\n"
    "    failure_limit: 1\n"
    "    error_limit: 2\n"
    "    gates: [ \"error_rate < 1%\", \"p95 < 500ms\", \"p95 <= baseline.p95 * 1.5\" ]\n"
    "    rollback_when: [ \"error_rate > 5%\" ]\n"
    "    tripwire_window: 10s\n"
    "    tripwire_min_requests: 20\n";

typedef struct env {
    fake f;
    rollout_plan *p;
    char *path;
    rollout_ctl *c;
} env;

static void env_open(env *e, const char *yaml)
{
    fake_init(&e->f, T0);
    e->p = plan_from(yaml, NULL);
    e->path = temp_journal();
    e->c = open_ctl(e->p, e->path, &e->f, NULL);
    fake_traffic(&e->f, 1, 1000, 0, 0, 200);
    fake_traffic(&e->f, 0, 1000, 0, 0, 200);
}

static void env_close(env *e)
{
    rollout_close(e->c);
    rollout_plan_free(e->p);
    remove_journal(e->path);
    fake_free(&e->f);
}

static long long count(env *e, const char *sql)
{
    return sql_int(e->path, sql);
}

static void test_healthy_promotion(void **state)
{
    (void)state;
    env e;
    env_open(&e, plan_yaml);
    char err[CU_ERRLEN];
    rollout_info in = info_of(e.c);
    assert_int_equal(in.state, ROLLOUT_IDLE);
    assert_int_equal(e.f.nset, 0); /* idle: the target's weights are left alone */
    assert_int_equal(rollout_start(e.c, "test", err), 0);
    assert_int_equal(e.f.nset, 1);
    assert_true(e.f.weight == 10);
    in = info_of(e.c);
    assert_int_equal(in.state, ROLLOUT_PROGRESSING);
    assert_int_equal(in.step, 0);
    assert_int_equal(in.deadline_ms, T0 + 600000);
    /* one second before the hold ends: still step 1 */
    run_for(e.c, &e.f, 599000);
    assert_int_equal(info_of(e.c).step, 0);
    assert_true(e.f.weight == 10);
    run_for(e.c, &e.f, 1000); /* the hold ends: analysis passes, step 2 */
    in = info_of(e.c);
    assert_int_equal(in.step, 1);
    assert_true(e.f.weight == 50);
    assert_int_equal(in.deadline_ms, T0 + 1200000);
    run_for(e.c, &e.f, 600000);
    assert_int_equal(info_of(e.c).step, 2);
    assert_true(e.f.weight == 100);
    /* at 100% blue has no traffic: the baseline gate is skipped, not held */
    fake_traffic(&e.f, 0, 0, 0, 0, 0);
    run_for(e.c, &e.f, 599000);
    assert_int_equal(info_of(e.c).state, ROLLOUT_PROGRESSING);
    run_for(e.c, &e.f, 1000);
    in = info_of(e.c);
    assert_int_equal(in.state, ROLLOUT_PROMOTED);
    assert_int_equal(e.f.now - T0, rollout_plan_min_promote_ms(e.p));
    /* weights went 10, 50, 100 and nothing else */
    assert_int_equal(e.f.nset, 3);
    assert_true(e.f.sets[0] == 10 && e.f.sets[1] == 50 && e.f.sets[2] == 100);
    assert_int_equal(count(&e, "SELECT count(*) FROM weights"), 3); /* promoting at 100 is no change */
    assert_int_equal(count(&e, "SELECT count(*) FROM decisions WHERE acted=0"), 0);
    /* one analysis a minute: 10 per step, the start command */
    assert_int_equal(count(&e, "SELECT count(*) FROM decisions WHERE kind='analysis'"), 30);
    assert_int_equal(count(&e, "SELECT count(*) FROM decisions WHERE verdict='SKIP' OR "
                               "verdict='FAIL' OR verdict='HOLD'"), 0);
    /* per-minute aggregates of both colours, with the histogram */
    assert_true(count(&e, "SELECT count(*) FROM minutes WHERE color='green'") >= 29);
    assert_true(count(&e, "SELECT count(*) FROM minutes WHERE color='blue'") >= 19);
    assert_int_equal(count(&e, "SELECT count(*) FROM minutes WHERE length(latency) < 10"), 0);
    /* promoted is final: start refuses */
    assert_int_equal(rollout_start(e.c, "test", err), -EINVAL);
    assert_non_null(strstr(err, "already promoted"));
    /* the decision history explains itself */
    cu_buf b = CU_BUF_INIT;
    assert_int_equal(rollout_events(e.c, false, 3, &b), 0);
    assert_non_null(strstr(b.data, "promote: green to 100%"));
    assert_non_null(strstr(b.data, "SKIP  p95 <= baseline.p95 * 1.5: skipped"));
    assert_non_null(strstr(b.data, "PASS  p95 < 500ms: p95 "));
    cu_buf_free(&b);
    env_close(&e);
}

/* plan_yaml started and two minutes into its first step (green at 10%). */
static void env_at_first_step(env *e)
{
    env_open(e, plan_yaml);
    char err[CU_ERRLEN];
    assert_int_equal(rollout_start(e->c, "test", err), 0);
    run_for(e->c, &e->f, 120000);
    assert_true(e->f.weight == 10);
}

static void test_tripwire_rollback(void **state)
{
    (void)state;
    env e;
    env_at_first_step(&e);
    char err[CU_ERRLEN];
    /* a burst of errors below the tripwire's request floor does nothing */
    fake_traffic(&e.f, 1, 10, 5, 0, 200);
    run_for(e.c, &e.f, 3000);
    assert_int_equal(info_of(e.c).state, ROLLOUT_PROGRESSING);
    /* 8% errors over the window: the very next tick sets green to 0 */
    fake_traffic(&e.f, 1, 100, 6, 2, 200);
    int before = e.f.nset;
    e.f.now += 1000;
    rollout_tick(e.c);
    assert_int_equal(e.f.nset, before + 1);
    assert_true(e.f.weight == 0);
    rollout_info in = info_of(e.c);
    assert_int_equal(in.state, ROLLOUT_ROLLED_BACK);
    assert_true(in.weight == 0);
    assert_int_equal(count(&e, "SELECT count(*) FROM decisions WHERE kind='tripwire' AND "
                               "action='rollback: green to 0%' AND acted=1"), 1);
    /* the record names the rule, the value and the threshold */
    cu_buf b = CU_BUF_INIT;
    rollout_events(e.c, true, 1, &b);
    assert_non_null(strstr(b.data, "tripped: error_rate 8% > 5%"));
    assert_non_null(strstr(b.data, "\"requests\": 100"));
    cu_buf_free(&b);
    /* after a rollback nothing moves any more, and a new run can start */
    run_for(e.c, &e.f, 60000);
    assert_int_equal(e.f.nset, before + 1);
    fake_traffic(&e.f, 1, 1000, 0, 0, 200);
    assert_int_equal(rollout_start(e.c, "test", err), 0);
    in = info_of(e.c);
    assert_int_equal(in.run, 2);
    assert_int_equal(in.failures, 0);
    assert_true(e.f.weight == 10);
    env_close(&e);
}

/* Every server of the new colour ejected (its share gone to the old one):
 * too few new-colour requests for the error tripwires, yet the rollout
 * rolls back at the next tick, and the record says why. */
static void test_no_healthy_server_rolls_back(void **state)
{
    (void)state;
    env e;
    env_at_first_step(&e);
    e.f.unhealthy[0] = 1; /* the old colour's health does not matter */
    run_for(e.c, &e.f, 3000);
    assert_int_equal(info_of(e.c).state, ROLLOUT_PROGRESSING);
    fake_traffic(&e.f, 1, 5, 3, 0, 200); /* below tripwire_min_requests */
    e.f.unhealthy[1] = 1;
    int before = e.f.nset;
    e.f.now += 200;
    rollout_tick(e.c);
    assert_int_equal(e.f.nset, before + 1);
    assert_true(e.f.weight == 0);
    assert_int_equal(info_of(e.c).state, ROLLOUT_ROLLED_BACK);
    assert_int_equal(count(&e, "SELECT count(*) FROM decisions WHERE kind='tripwire' AND "
                               "action='rollback: green to 0%' AND acted=1"), 1);
    cu_buf b = CU_BUF_INIT;
    rollout_events(e.c, true, 1, &b);
    assert_non_null(strstr(b.data, "green has no healthy server"));
    cu_buf_free(&b);
    env_close(&e);
}

static void test_latency_gate_failure_limit(void **state)
{
    (void)state;
    env e;
    env_open(&e, plan_yaml);
    char err[CU_ERRLEN];
    fake_traffic(&e.f, 1, 1000, 0, 0, 900); /* p95 ~900 ms > 500 ms */
    assert_int_equal(rollout_start(e.c, "test", err), 0);
    run_for(e.c, &e.f, 60000); /* first analysis: failure 1 of 1 tolerated */
    rollout_info in = info_of(e.c);
    assert_int_equal(in.state, ROLLOUT_PROGRESSING);
    assert_int_equal(in.failures, 1);
    assert_true(e.f.weight == 10);
    run_for(e.c, &e.f, 59000);
    assert_int_equal(info_of(e.c).state, ROLLOUT_PROGRESSING);
    run_for(e.c, &e.f, 1000); /* second failure > failure_limit 1: rollback */
    in = info_of(e.c);
    assert_int_equal(in.state, ROLLOUT_ROLLED_BACK);
    assert_int_equal(in.failures, 2);
    assert_true(e.f.weight == 0);
    assert_int_equal(e.f.now - T0, rollout_plan_gate_rollback_ms(e.p));
    assert_int_equal(count(&e, "SELECT count(*) FROM decisions WHERE verdict='FAIL'"), 2);
    cu_buf b = CU_BUF_INIT;
    rollout_events(e.c, true, 1, &b);
    assert_non_null(strstr(b.data, "2 failed analyses (failure_limit 1)"));
    assert_non_null(strstr(b.data, "wanted p95 < 500ms"));
    cu_buf_free(&b);
    env_close(&e);
}

static void test_failures_halt_then_recover(void **state)
{
    (void)state;
    env e;
    env_open(&e, plan_yaml);
    char err[CU_ERRLEN];
    assert_int_equal(rollout_start(e.c, "test", err), 0);
    run_for(e.c, &e.f, 540000);
    fake_traffic(&e.f, 1, 1000, 0, 0, 900);
    run_for(e.c, &e.f, 60000); /* a failure at the hold's end halts the step */
    assert_int_equal(info_of(e.c).step, 0);
    assert_int_equal(info_of(e.c).failures, 1);
    fake_traffic(&e.f, 1, 1000, 0, 0, 200);
    run_for(e.c, &e.f, 60000); /* healthy again: advance; failures are cumulative */
    assert_int_equal(info_of(e.c).step, 1);
    assert_int_equal(info_of(e.c).failures, 1);
    env_close(&e);
}

static void test_hold_low_traffic(void **state)
{
    (void)state;
    env e;
    env_open(&e, plan_yaml);
    char err[CU_ERRLEN];
    fake_traffic(&e.f, 1, 30, 0, 0, 200); /* 30 of the 100 needed */
    assert_int_equal(rollout_start(e.c, "test", err), 0);
    run_for(e.c, &e.f, 30 * 60000); /* three times the hold */
    rollout_info in = info_of(e.c);
    assert_int_equal(in.state, ROLLOUT_PROGRESSING);
    assert_int_equal(in.step, 0);
    assert_int_equal(in.failures, 0);
    assert_int_equal(in.errors, 0);
    assert_true(e.f.weight == 10);
    assert_int_equal(count(&e, "SELECT count(*) FROM decisions WHERE verdict='HOLD'"), 30);
    assert_int_equal(count(&e, "SELECT count(*) FROM decisions WHERE verdict='HOLD' AND action "
                               "LIKE 'hold for data: need about 70 more requests on green%'"), 30);
    /* the hold-for-data notification is queued once per step, not every minute */
    cu_buf b = CU_BUF_INIT;
    rollout_status_json(e.c, 1, &b);
    assert_non_null(strstr(b.data, "\"waiting\": \"data\""));
    assert_non_null(strstr(b.data, "need about 70 more requests"));
    cu_buf_free(&b);
    fake_traffic(&e.f, 1, 150, 0, 0, 200);
    run_for(e.c, &e.f, 60000);
    assert_int_equal(info_of(e.c).step, 1);
    assert_true(e.f.weight == 50);
    env_close(&e);
}

/* window: step accumulates since the step began, so a HOLD at low traffic
 * ends once enough requests came, and says when that will be. */
static void test_hold_growing_window(void **state)
{
    (void)state;
    env e;
    env_open(&e, "rollout:\n  from: blue\n  to: green\n"
                 "  steps: [ { weight: 10, hold: 1m }, { weight: 100, hold: 1m } ]\n"
                 "  analysis: { interval: 1m, window: step, min_requests: 100,"
                 " gates: [ \"p95 < 500ms\" ], rollback_when: [] }\n");
    e.f.rate[1] = 0.5; /* green: 30 requests a minute */
    e.f.rate[0] = 5;
    char err[CU_ERRLEN];
    assert_int_equal(rollout_start(e.c, "t", err), 0);
    run_for(e.c, &e.f, 60000);
    assert_int_equal(count(&e, "SELECT count(*) FROM decisions WHERE action LIKE '%need about 70 "
                               "more requests on green (green 30/100, blue 300/100 in 60 s, about "
                               "140 s more at 0.50/s)%'"), 1);
    run_for(e.c, &e.f, 2 * 60000);
    assert_int_equal(info_of(e.c).step, 0); /* 90 of 100 after 3 minutes */
    run_for(e.c, &e.f, 60000);
    assert_int_equal(info_of(e.c).step, 1); /* 120 after 4: advance */
    assert_int_equal(e.f.now - T0, 4 * 60000);
    env_close(&e);
}

/* A receiver may take only some events (no Slack spam for every step). */
static void test_receiver_event_filter(void **state)
{
    (void)state;
    env e;
    env_open(&e, "rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 10, hold: 1m } ]\n"
                 "  analysis: { interval: 1m, min_requests: 100, gates: [], rollback_when: [] }\n"
                 "  notify: [ { exec: \"cat\" }, { exec: \"true\", events: [ rollback, promoted ] } ]\n");
    char err[CU_ERRLEN];
    assert_int_equal(rollout_start(e.c, "t", err), 0);
    run_for(e.c, &e.f, 60000);
    assert_int_equal(info_of(e.c).state, ROLLOUT_PROMOTED);
    assert_int_equal(count(&e, "SELECT count(*) FROM outbox WHERE receiver='exec:cat'"), 2);
    assert_int_equal(count(&e, "SELECT count(*) FROM outbox WHERE receiver='exec:true'"), 1);
    assert_int_equal(count(&e, "SELECT count(*) FROM outbox WHERE receiver='exec:true' AND "
                               "event='promoted'"), 1);
    env_close(&e);
}

static void test_approval(void **state)
{
    (void)state;
    env e;
    env_open(&e, "rollout:\n  from: blue\n  to: green\n"
                 "  steps: [ { weight: 10, hold: 5m, approve: true }, { weight: 100, hold: 5m } ]\n"
                 "  analysis: { interval: 1m, min_requests: 100, gates: [ \"p95 < 500ms\" ],"
                 " rollback_when: [] }\n");
    char err[CU_ERRLEN];
    assert_int_equal(rollout_approve(e.c, "alice", err), -EINVAL);
    assert_non_null(strstr(err, "nothing waits for approval"));
    assert_int_equal(rollout_start(e.c, "test", err), 0);
    run_for(e.c, &e.f, 60000);
    assert_int_equal(rollout_approve(e.c, "alice", err), -EINVAL); /* too early */
    assert_non_null(strstr(err, "only once its hold is over"));
    run_for(e.c, &e.f, 4 * 60000);
    rollout_info in = info_of(e.c);
    assert_true(in.awaiting_approval);
    assert_int_equal(in.step, 0);
    run_for(e.c, &e.f, 3600000); /* waits as long as it takes */
    assert_true(info_of(e.c).awaiting_approval);
    assert_true(e.f.weight == 10);
    /* the gates are still judged: a failure withdraws the offer ... */
    fake_traffic(&e.f, 1, 1000, 0, 0, 900);
    run_for(e.c, &e.f, 60000);
    assert_false(info_of(e.c).awaiting_approval);
    assert_int_equal(info_of(e.c).failures, 1);
    assert_int_equal(rollout_approve(e.c, "alice", err), -EINVAL);
    /* ... and a pass offers it again (one more notification) */
    fake_traffic(&e.f, 1, 1000, 0, 0, 200);
    run_for(e.c, &e.f, 60000);
    assert_true(info_of(e.c).awaiting_approval);
    assert_int_equal(count(&e, "SELECT count(*) FROM decisions WHERE action LIKE 'wait for "
                               "approval%'"), 62); /* 1 + 60 + 1 */
    cu_buf b = CU_BUF_INIT;
    rollout_status_json(e.c, 0, &b);
    assert_non_null(strstr(b.data, "\"waiting\": \"approval\""));
    cu_buf_free(&b);
    assert_int_equal(rollout_approve(e.c, "alice", err), 0);
    in = info_of(e.c);
    assert_false(in.awaiting_approval);
    assert_int_equal(in.step, 1);
    assert_true(e.f.weight == 100);
    assert_int_equal(count(&e, "SELECT count(*) FROM decisions WHERE record LIKE "
                               "'%\"by\":\"alice\"%'"), 1);
    env_close(&e);
}

static void test_errors_apart_from_failures(void **state)
{
    (void)state;
    env e;
    env_open(&e, plan_yaml);
    char err[CU_ERRLEN];
    assert_int_equal(rollout_start(e.c, "test", err), 0);
    e.f.read_err[1] = -EIO;
    run_for(e.c, &e.f, 2 * 60000);
    rollout_info in = info_of(e.c);
    assert_int_equal(in.errors, 2);
    assert_int_equal(in.failures, 0);
    assert_int_equal(in.state, ROLLOUT_PROGRESSING);
    e.f.read_err[1] = 0; /* one good analysis resets the consecutive count */
    run_for(e.c, &e.f, 60000);
    assert_int_equal(info_of(e.c).errors, 0);
    e.f.read_err[1] = -EIO;
    run_for(e.c, &e.f, 3 * 60000); /* 3 in a row > error_limit 2 */
    in = info_of(e.c);
    assert_int_equal(in.state, ROLLOUT_ROLLED_BACK);
    assert_int_equal(in.failures, 0);
    assert_true(e.f.weight == 0);
    assert_int_equal(count(&e, "SELECT count(*) FROM decisions WHERE verdict='ERROR'"), 5);
    env_close(&e);
}

static void test_commands(void **state)
{
    (void)state;
    env e;
    env_open(&e, plan_yaml);
    char err[CU_ERRLEN];
    assert_int_equal(rollout_pause(e.c, "t", err), -EINVAL);
    assert_int_equal(rollout_resume(e.c, "t", err), -EINVAL);
    assert_int_equal(rollout_promote(e.c, "t", err), -EINVAL);
    assert_int_equal(rollout_abort(e.c, "t", err), -EINVAL);
    assert_non_null(strstr(err, "the rollout is idle"));
    assert_int_equal(rollout_start(e.c, "t", err), 0);
    assert_int_equal(rollout_start(e.c, "t", err), -EALREADY);
    assert_int_equal(rollout_pause(e.c, "t", err), 0);
    assert_int_equal(rollout_pause(e.c, "t", err), -EALREADY);
    run_for(e.c, &e.f, 20 * 60000); /* paused: no analysis, no advance */
    assert_int_equal(info_of(e.c).step, 0);
    assert_int_equal(count(&e, "SELECT count(*) FROM decisions WHERE kind='analysis'"), 0);
    /* tripwires stay armed while paused */
    fake_traffic(&e.f, 1, 100, 50, 0, 200);
    run_for(e.c, &e.f, 1000);
    assert_int_equal(info_of(e.c).state, ROLLOUT_ROLLED_BACK);
    fake_traffic(&e.f, 1, 1000, 0, 0, 200);
    assert_int_equal(rollout_start(e.c, "t", err), 0);
    assert_int_equal(rollout_pause(e.c, "t", err), 0);
    assert_int_equal(rollout_resume(e.c, "t", err), 0);
    run_for(e.c, &e.f, 1000); /* the hold (an absolute deadline) passed while paused */
    assert_int_equal(info_of(e.c).step, 0);
    assert_int_equal(rollout_promote(e.c, "t", err), 0);
    assert_true(e.f.weight == 100);
    assert_int_equal(info_of(e.c).state, ROLLOUT_PROMOTED);
    env_close(&e);

    env_open(&e, plan_yaml);
    assert_int_equal(rollout_start(e.c, "t", err), 0);
    run_for(e.c, &e.f, 600000);
    assert_true(e.f.weight == 50);
    assert_int_equal(rollout_abort(e.c, "t", err), 0);
    assert_true(e.f.weight == 0);
    assert_int_equal(info_of(e.c).state, ROLLOUT_ABORTED);
    /* a target that refuses a weight is retried every tick until it takes it */
    assert_int_equal(rollout_start(e.c, "t", err), 0);
    e.f.set_err = -ECONNREFUSED;
    assert_int_equal(rollout_pause(e.c, "t", err), 0); /* same weight: no call */
    assert_int_equal(rollout_abort(e.c, "t", err), 0);
    assert_false(info_of(e.c).weight_applied);
    assert_int_equal(count(&e, "SELECT count(*) FROM decisions WHERE acted=0"), 1);
    run_for(e.c, &e.f, 3000);
    assert_false(info_of(e.c).weight_applied);
    e.f.set_err = 0;
    run_for(e.c, &e.f, 1000);
    assert_true(info_of(e.c).weight_applied);
    assert_true(e.f.weight == 0);
    assert_int_equal(count(&e, "SELECT count(*) FROM decisions WHERE acted=0"), 0);
    env_close(&e);
}

static void test_admin(void **state)
{
    (void)state;
    env e;
    env_open(&e, plan_yaml);
    cu_buf b = CU_BUF_INIT;
    assert_int_equal(rollout_admin_handle(e.c, "GET", "/rollout/status", NULL, 0, &b), 200);
    assert_non_null(strstr(b.data, "\"state\": \"idle\""));
    cu_buf_reset(&b);
    assert_int_equal(rollout_admin_handle(e.c, "GET", "/rollout/start", NULL, 0, &b), 405);
    cu_buf_reset(&b);
    const char *body = "{\"by\": \"bob\"}";
    assert_int_equal(rollout_admin_handle(e.c, "POST", "/rollout/start", body, strlen(body), &b),
                     200);
    assert_non_null(strstr(b.data, "\"ok\": true"));
    assert_non_null(strstr(b.data, "\"green\": 10"));
    assert_non_null(strstr(b.data, "\"blue\": 90"));
    cu_buf_reset(&b);
    assert_int_equal(rollout_admin_handle(e.c, "POST", "/rollout/start", NULL, 0, &b), 409);
    assert_non_null(strstr(b.data, "already progressing"));
    cu_buf_reset(&b);
    assert_int_equal(rollout_admin_handle(e.c, "POST", "/rollout/pase", NULL, 0, &b), 404);
    assert_non_null(strstr(b.data, "did you mean 'pause'"));
    cu_buf_reset(&b);
    assert_int_equal(rollout_admin_handle(e.c, "POST", "/rollout/pause", "{nope", 5, &b), 400);
    cu_buf_reset(&b);
    run_for(e.c, &e.f, 120000);
    assert_int_equal(rollout_admin_handle(e.c, "GET", "/rollout/events?limit=2", NULL, 0, &b),
                     200);
    json_t *arr = json_loads(b.data, 0, NULL);
    assert_true(json_is_array(arr));
    assert_int_equal(json_array_size(arr), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 1), "kind")),
                        "analysis");
    cu_buf t = CU_BUF_INIT;
    char err[CU_ERRLEN];
    assert_int_equal(rollout_events_table(b.data, &t, err), 0);
    assert_non_null(strstr(t.data, "continue: hold at 10% until"));
    assert_int_equal(rollout_events_table("{}", &t, err), -EINVAL);
    cu_buf_free(&t);
    json_decref(arr);
    cu_buf_reset(&b);
    assert_int_equal(rollout_admin_handle(e.c, "GET", "/rollout/events?format=table", NULL, 0, &b),
                     200);
    assert_non_null(strstr(b.data, "start run 1: green to 10%"));
    cu_buf_reset(&b);
    assert_int_equal(rollout_admin_handle(e.c, "GET", "/rollout", NULL, 0, &b), 200);
    json_t *st = json_loads(b.data, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(st, "state")), "progressing");
    assert_int_equal(json_integer_value(json_object_get(st, "step")), 1);
    assert_int_equal(json_integer_value(json_object_get(st, "deadline_ms")), T0 + 600000);
    assert_int_equal(json_integer_value(json_object_get(st, "remaining_s")), 480);
    assert_string_equal(json_string_value(json_object_get(st, "waiting")), "hold");
    assert_string_equal(json_string_value(json_object_get(st, "deadline")),
                        "2026-01-01T00:10:00.000Z");
    assert_string_equal(json_string_value(json_object_get(st, "next_analysis")),
                        "2026-01-01T00:03:00.000Z");
    assert_true(json_array_size(json_object_get(st, "last_decisions")) == 3);
    json_decref(st);
    cu_buf_free(&b);
    env_close(&e);
}

/* The real thing: the controller's own 1 s timer on a uv loop and the real
 * wall clock. Errors appear; within about a second green is at 0. */
static void stop_loop(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void test_timer_on_loop(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    fake f;
    fake_init(&f, 0);
    fake_traffic(&f, 1, 1000, 0, 0, 200);
    fake_traffic(&f, 0, 1000, 0, 0, 200);
    rollout_plan *p = plan_from(plan_yaml, NULL);
    char *path = temp_journal();
    char err[CU_ERRLEN];
    rollout_config cfg = {.plan = p, .journal_path = path, .ops = &fake_ops, .target_ctx = &f,
                          .loop = &loop};
    rollout_ctl *c;
    assert_int_equal(rollout_open(&c, &cfg, err), 0);
    assert_int_equal(rollout_start(c, "test", err), 0);
    assert_true(f.weight == 10);
    int64_t t_bad = cu_wall_ms();
    fake_traffic(&f, 1, 1000, 500, 0, 200);
    uv_timer_t stop;
    uv_timer_init(&loop, &stop);
    uv_timer_start(&stop, stop_loop, 1300, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(f.weight == 0);
    assert_int_equal(info_of(c).state, ROLLOUT_ROLLED_BACK);
    long long t_rb = sql_int(path, "SELECT time_ms FROM decisions WHERE kind='tripwire'");
    assert_true(t_rb - t_bad <= 1100);
    rollout_close(c);
    uv_close((uv_handle_t *)&stop, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    rollout_plan_free(p);
    remove_journal(path);
    fake_free(&f);
}

/* Per-minute aggregates keep the latency histogram, decodable later. */
static void test_minute_aggregates(void **state)
{
    (void)state;
    env e;
    env_open(&e, plan_yaml);
    fake_traffic(&e.f, 1, 600, 6, 0, 250);
    run_for(e.c, &e.f, 3 * 60000);
    sqlite3 *db = rj_db(rollout__journal(e.c));
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT minute_ms, requests, errors_5xx, latency FROM "
                                            "minutes WHERE color='green' ORDER BY minute_ms",
                                        -1, &st, NULL), SQLITE_OK);
    int rows = 0;
    hist h;
    hist_init(&h);
    while (sqlite3_step(st) == SQLITE_ROW) {
        assert_int_equal(sqlite3_column_int64(st, 0) % 60000, 0);
        assert_int_equal(sqlite3_column_int64(st, 1), 600);
        assert_int_equal(sqlite3_column_int64(st, 2), 6);
        assert_int_equal(rollout_hist_decode(sqlite3_column_blob(st, 3),
                                             (size_t)sqlite3_column_bytes(st, 3), &h), 0);
        assert_int_equal(h.count, 600);
        assert_true(fabs(hist_quantile(&h, 0.95) - 250) < 2.5);
        rows++;
    }
    sqlite3_finalize(st);
    hist_free(&h);
    assert_int_equal(rows, 3); /* idle, but the router's traffic is still recorded */
    env_close(&e);
}

/* A journal that refuses writes: commands fail with -EIO and change
 * nothing; a tripwire still takes the new colour to 0 (safety first). */
static void test_journal_refuses(void **state)
{
    (void)state;
    env e;
    env_open(&e, plan_yaml);
    char err[CU_ERRLEN];
    assert_int_equal(rollout_start(e.c, "t", err), 0);
    sqlite3 *db = rj_db(rollout__journal(e.c));
    assert_int_equal(sqlite3_exec(db, "PRAGMA query_only=1", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(rollout_pause(e.c, "t", err), -EIO);
    assert_non_null(strstr(err, "journal refused"));
    assert_int_equal(info_of(e.c).state, ROLLOUT_PROGRESSING);
    run_for(e.c, &e.f, 60000); /* the analysis cannot be journaled: nothing moves */
    assert_int_equal(info_of(e.c).decisions, 1);
    fake_traffic(&e.f, 1, 1000, 100, 0, 200);
    run_for(e.c, &e.f, 1000);
    assert_true(e.f.weight == 0);
    assert_int_equal(info_of(e.c).state, ROLLOUT_ROLLED_BACK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA query_only=0", NULL, NULL, NULL), SQLITE_OK);
    fake_traffic(&e.f, 1, 1000, 0, 0, 200);
    assert_int_equal(rollout_start(e.c, "t", err), 0);
    assert_true(e.f.weight == 10);
    env_close(&e);
}

/* Holds under a second still take a second per step: with hold: 0s and
 * 200 ms ticks the plan must not go 10 -> 50 -> 100 in 400 ms, and no
 * window reaches back into the previous step. */
static void test_short_holds_take_a_second(void **state)
{
    (void)state;
    env e;
    env_open(&e, "rollout:\n  from: blue\n  to: green\n"
                 "  steps: [ { weight: 10, hold: 0s }, { weight: 50, hold: 300ms },"
                 " { weight: 100, hold: 0s } ]\n"
                 "  analysis: { interval: 1s, min_requests: 10, gates: [ \"p95 < 500ms\" ],"
                 " rollback_when: [] }\n");
    e.f.rate[1] = e.f.rate[0] = 100; /* requests = 100 x the seconds asked for */
    char err[CU_ERRLEN];
    assert_int_equal(rollout_start(e.c, "t", err), 0);
    int64_t entered[3] = {T0, 0, 0};
    while (info_of(e.c).state == ROLLOUT_PROGRESSING && e.f.now < T0 + 10000) {
        int step = info_of(e.c).step;
        e.f.now += ROLLOUT_TICK_MS;
        rollout_tick(e.c);
        int now_step = info_of(e.c).step;
        if (now_step != step && info_of(e.c).state == ROLLOUT_PROGRESSING)
            entered[now_step] = e.f.now;
    }
    assert_int_equal(info_of(e.c).state, ROLLOUT_PROMOTED);
    assert_int_equal(entered[1] - entered[0], 1000);
    assert_int_equal(entered[2] - entered[1], 1000);
    assert_true(e.f.now - T0 >= rollout_plan_min_promote_ms(e.p));
    assert_int_equal(rollout_plan_min_promote_ms(e.p), 3000);
    /* every analysis read whole seconds of its own step only: 1 s windows */
    assert_int_equal(count(&e, "SELECT count(*) FROM decisions WHERE kind='analysis'"), 3);
    assert_int_equal(count(&e, "SELECT count(*) FROM decisions WHERE kind='analysis' AND "
                               "json_extract(record, '$.inputs.window_s') != 1"), 0);
    env_close(&e);
}

/* GET /rollout/events is capped (limit=0 means the cap), and marking a
 * decision acted uses the partial index of unacted rows. */
static void test_events_limit_cap(void **state)
{
    (void)state;
    env e;
    env_open(&e, plan_yaml);
    char err[CU_ERRLEN];
    assert_int_equal(rollout_start(e.c, "t", err), 0);
    sqlite3 *db = rj_db(rollout__journal(e.c));
    assert_int_equal(sqlite3_exec(db, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                                      "FROM n WHERE i < 10050) INSERT INTO decisions(time_ms, run,"
                                      " step, kind, verdict, action, weight, state, record, acted)"
                                      " SELECT i, 1, 0, 'analysis', 'PASS', 'continue', 10,"
                                      " 'progressing', '{}', 1 FROM n", NULL, NULL, NULL),
                     SQLITE_OK);
    static const char *const paths[] = {"/rollout/events?limit=0", "/rollout/events?limit=20000"};
    for (size_t i = 0; i < CU_ARRAY_LEN(paths); i++) {
        cu_buf b = CU_BUF_INIT;
        assert_int_equal(rollout_admin_handle(e.c, "GET", paths[i], NULL, 0, &b), 200);
        json_t *arr = json_loads(b.data, 0, NULL);
        assert_int_equal(json_array_size(arr), ROLLOUT_EVENTS_MAX);
        json_decref(arr);
        cu_buf_free(&b);
    }
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "EXPLAIN QUERY PLAN UPDATE decisions SET acted=1 "
                                            "WHERE seq<=? AND acted=0", -1, &st, NULL), SQLITE_OK);
    bool indexed = false;
    while (sqlite3_step(st) == SQLITE_ROW)
        indexed |= strstr((const char *)sqlite3_column_text(st, 3), "decisions_unacted") != NULL;
    sqlite3_finalize(st);
    assert_true(indexed);
    env_close(&e);
}

/* While the journal refuses writes the gates still count: failed analyses
 * add up in memory, the next analysis waits an interval (not every tick),
 * and the failure limit rolls back to weight 0 (unjournaled). */
static void test_journal_refuses_gates_still_roll_back(void **state)
{
    (void)state;
    env e;
    env_open(&e, plan_yaml); /* failure_limit 1 */
    char err[CU_ERRLEN];
    assert_int_equal(rollout_start(e.c, "t", err), 0);
    sqlite3 *db = rj_db(rollout__journal(e.c));
    assert_int_equal(sqlite3_exec(db, "PRAGMA query_only=1", NULL, NULL, NULL), SQLITE_OK);
    fake_traffic(&e.f, 1, 1000, 0, 0, 900); /* p95 ~900 ms > 500 ms: green fails its gates */
    run_for(e.c, &e.f, 60000);              /* first analysis: failure 1, not journaled */
    rollout_info in = info_of(e.c);
    assert_int_equal(in.failures, 1);
    assert_int_equal(in.next_analysis_ms, T0 + 120000);
    assert_true(e.f.weight == 10);
    uint64_t reads = e.f.reads;
    run_for(e.c, &e.f, 59000); /* only the tripwires read: 2 windows a tick */
    assert_int_equal(e.f.reads - reads, 2 * 59);
    run_for(e.c, &e.f, 1000);  /* failure 2 > failure_limit 1: rollback, weight 0 */
    in = info_of(e.c);
    assert_int_equal(in.state, ROLLOUT_ROLLED_BACK);
    assert_true(e.f.weight == 0);
    assert_int_equal(in.decisions, 1); /* only the start was journaled */
    env_close(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthy_promotion),
        cmocka_unit_test(test_tripwire_rollback),
        cmocka_unit_test(test_no_healthy_server_rolls_back),
        cmocka_unit_test(test_latency_gate_failure_limit),
        cmocka_unit_test(test_failures_halt_then_recover),
        cmocka_unit_test(test_hold_low_traffic),
        cmocka_unit_test(test_hold_growing_window),
        cmocka_unit_test(test_receiver_event_filter),
        cmocka_unit_test(test_approval),
        cmocka_unit_test(test_errors_apart_from_failures),
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_admin),
        cmocka_unit_test(test_timer_on_loop),
        cmocka_unit_test(test_minute_aggregates),
        cmocka_unit_test(test_journal_refuses),
        cmocka_unit_test(test_journal_refuses_gates_still_roll_back),
        cmocka_unit_test(test_short_holds_take_a_second),
        cmocka_unit_test(test_events_limit_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
