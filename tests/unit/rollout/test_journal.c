/* Crash safety of the journal: a child process runs the controller and is
 * killed with SIGKILL (by the parent during a hold, by itself right after a
 * decision is journaled and before the weight is set, or at random moments
 * over a whole rollout); the parent reopens the journal and checks: same
 * step, same weight re-applied, the rest of the hold honoured, no decision
 * lost, none decided or acted on twice, notifications queued exactly once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/wait.h>
#include <time.h>

#include "fake.h"

#define T0 1767225600000LL

static const char plan_yaml[] =
    "rollout:\n"
    "  from: blue\n"
    "  to: green\n"
    "  steps: [ { weight: 10, hold: 10m }, { weight: 50, hold: 10m }, { weight: 100, hold: 10m } ]\n"
    "  analysis:\n"
    "    interval: 1m\n"
    "    min_requests: 100\n"
    "    gates: [ \"error_rate < 1%\", \"p95 < 500ms\" ]\n"
    "    rollback_when: [ \"error_rate > 5%\" ]\n"
    "  notify: [ { webhook: \"http://127.0.0.1:9/hook\" } ]\n";

typedef struct report {
    uint64_t decisions;
    int64_t now;
} report;

typedef enum { CHILD_HOLD, CHILD_KILL_AT_50, CHILD_KILL_AT_0, CHILD_RUN } child_mode;

/* The child: its own fake target and clock, never returns. */
static void child(const rollout_plan *p, const char *path, child_mode mode, int64_t start_ms,
                  int wfd)
{
    fake f;
    fake_init(&f, start_ms);
    fake_traffic(&f, 1, 1000, 0, 0, 200);
    fake_traffic(&f, 0, 1000, 0, 0, 200);
    char err[CU_ERRLEN];
    rollout_config cfg = {.plan = p, .journal_path = path, .ops = &fake_ops, .target_ctx = &f,
                          .clock = fake_clock, .clock_ctx = &f, .manual_ticks = true};
    rollout_ctl *c;
    if (rollout_open(&c, &cfg, err) != 0)
        _exit(3);
    if (mode == CHILD_KILL_AT_50)
        f.kill_at_weight = 50;
    if (mode == CHILD_KILL_AT_0)
        f.kill_at_weight = 0;
    rollout_info in;
    rollout_get_info(c, &in);
    if (in.state == ROLLOUT_IDLE && rollout_start(c, "child", err) != 0)
        _exit(4);
    if (mode == CHILD_HOLD) {
        run_for(c, &f, 5 * 60000);
        rollout_get_info(c, &in);
        report r = {in.decisions, f.now};
        if (write(wfd, &r, sizeof r) != (ssize_t)sizeof r)
            _exit(5);
        for (;;)
            pause(); /* the parent kills us here, mid-hold */
    }
    if (mode == CHILD_KILL_AT_0) {
        run_for(c, &f, 2 * 60000);
        fake_traffic(&f, 1, 1000, 100, 0, 200);
    }
    for (int i = 0; i < 3 * 3600; i++) {
        run_for(c, &f, 1000);
        rollout_get_info(c, &in);
        if (in.state == ROLLOUT_PROMOTED)
            _exit(0);
    }
    _exit(6);
}

static pid_t spawn(const rollout_plan *p, const char *path, child_mode mode, int64_t start_ms,
                   int *rfd)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        child(p, path, mode, start_ms, fds[1]);
    }
    close(fds[1]);
    if (rfd)
        *rfd = fds[0];
    else
        close(fds[0]);
    return pid;
}

static void expect_killed(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
        print_error("child: wanted SIGKILL, got status 0x%x\n", status);
        fail();
    }
}

static void test_crash_during_hold(void **state)
{
    (void)state;
    rollout_plan *p = plan_from(plan_yaml, NULL);
    char *path = temp_journal();
    int rfd;
    pid_t pid = spawn(p, path, CHILD_HOLD, T0, &rfd);
    report r;
    assert_int_equal(read(rfd, &r, sizeof r), (ssize_t)sizeof r);
    close(rfd);
    assert_int_equal(kill(pid, SIGKILL), 0);
    expect_killed(pid);
    assert_int_equal(r.decisions, 6); /* start + 5 analyses */
    assert_int_equal(sql_int(path, "SELECT count(*) FROM decisions"), 6);
    /* the history is readable straight from the file of the dead process */
    cu_buf b = CU_BUF_INIT;
    char err[CU_ERRLEN];
    assert_int_equal(rollout_journal_events(path, false, 0, &b, err), 0);
    assert_non_null(strstr(b.data, "start run 1: green to 10%"));
    assert_non_null(strstr(b.data, "    5  "));
    cu_buf_reset(&b);
    assert_int_equal(rollout_journal_events(path, true, 2, &b, err), 0);
    json_t *arr = json_loads(b.data, 0, NULL);
    assert_int_equal(json_array_size(arr), 2);
    json_decref(arr);
    cu_buf_free(&b);
    assert_true(rollout_journal_events("/nonexistent/cutover.db", true, 0, &b, err) < 0);
    assert_non_null(strstr(err, "/nonexistent/cutover.db"));

    /* restart two minutes later */
    fake f;
    fake_init(&f, r.now + 2 * 60000);
    fake_traffic(&f, 1, 1000, 0, 0, 200);
    fake_traffic(&f, 0, 1000, 0, 0, 200);
    rollout_ctl *c = open_ctl(p, path, &f, NULL);
    rollout_info in = info_of(c);
    assert_int_equal(in.state, ROLLOUT_PROGRESSING);
    assert_int_equal(in.step, 0);
    assert_int_equal(in.deadline_ms, T0 + 600000); /* the same absolute deadline */
    assert_int_equal(in.decisions, 6);
    assert_int_equal(in.recovered, 0);
    assert_int_equal(f.nset, 1); /* the journaled weight, re-applied */
    assert_true(f.sets[0] == 10);
    /* the rest of the hold: still step 1 one second before the deadline */
    while (f.now < T0 + 599000)
        run_for(c, &f, 1000);
    assert_int_equal(info_of(c).step, 0);
    run_for(c, &f, 1000);
    assert_int_equal(info_of(c).step, 1);
    assert_true(f.weight == 50);
    /* one start, one advance; each queued its notification once */
    assert_int_equal(sql_int(path, "SELECT count(*) FROM decisions WHERE kind='command'"), 1);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM decisions WHERE action LIKE "
                                   "'advance to step 2%'"), 1);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM outbox"), 2);
    rollout_close(c);
    fake_free(&f);
    rollout_plan_free(p);
    remove_journal(path);
}

static void test_crash_after_journal_before_act(void **state)
{
    (void)state;
    rollout_plan *p = plan_from(plan_yaml, NULL);
    char *path = temp_journal();
    pid_t pid = spawn(p, path, CHILD_KILL_AT_50, T0, NULL);
    expect_killed(pid);
    /* the advance is in the journal, not yet acted on */
    long long n = sql_int(path, "SELECT count(*) FROM decisions");
    assert_int_equal(n, 11); /* start + 10 analyses, the 10th deciding the advance */
    assert_int_equal(sql_int(path, "SELECT count(*) FROM decisions WHERE acted=0"), 1);
    assert_int_equal(sql_int(path, "SELECT acted FROM decisions WHERE action LIKE 'advance to "
                                   "step 2%'"), 0);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM outbox WHERE event='step'"), 1);

    fake f;
    fake_init(&f, T0 + 600000 + 30000); /* back 30 s after the crash */
    fake_traffic(&f, 1, 1000, 0, 0, 200);
    fake_traffic(&f, 0, 1000, 0, 0, 200);
    rollout_ctl *c = open_ctl(p, path, &f, NULL);
    rollout_info in = info_of(c);
    assert_int_equal(in.step, 1);
    assert_true(in.weight == 50);
    assert_int_equal(in.recovered, 1);
    assert_int_equal(f.nset, 1);
    assert_true(f.sets[0] == 50); /* acted now, once */
    assert_int_equal(sql_int(path, "SELECT count(*) FROM decisions WHERE acted=0"), 0);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM decisions"), n); /* not re-decided */
    assert_int_equal(in.deadline_ms, T0 + 1200000); /* from the decision's time, not the restart */
    while (f.now < T0 + 1199000)
        run_for(c, &f, 1000);
    assert_int_equal(info_of(c).step, 1);
    run_for(c, &f, 1000);
    assert_int_equal(info_of(c).step, 2);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM decisions WHERE action LIKE "
                                   "'advance to step 2%'"), 1);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM outbox WHERE event='step'"), 2);
    assert_int_equal(f.nset, 2);
    rollout_close(c);
    fake_free(&f);
    rollout_plan_free(p);
    remove_journal(path);
}

static void test_crash_during_rollback(void **state)
{
    (void)state;
    rollout_plan *p = plan_from(plan_yaml, NULL);
    char *path = temp_journal();
    pid_t pid = spawn(p, path, CHILD_KILL_AT_0, T0, NULL);
    expect_killed(pid);
    assert_int_equal(sql_int(path, "SELECT acted FROM decisions WHERE kind='tripwire'"), 0);
    long long n = sql_int(path, "SELECT count(*) FROM decisions");
    fake f;
    fake_init(&f, T0 + 3 * 60000);
    fake_traffic(&f, 1, 1000, 100, 0, 200);
    rollout_ctl *c = open_ctl(p, path, &f, NULL);
    rollout_info in = info_of(c);
    assert_int_equal(in.state, ROLLOUT_ROLLED_BACK);
    assert_int_equal(f.nset, 1);
    assert_true(f.sets[0] == 0);
    assert_int_equal(in.recovered, 1);
    run_for(c, &f, 60000);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM decisions"), n);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM outbox WHERE event='rollback'"), 1);
    assert_int_equal(f.nset, 1);
    /* a second process cannot take the journal while this one holds it */
    rj *j2;
    char err[CU_ERRLEN];
    assert_int_equal(rj_open(&j2, path, err), -EBUSY);
    assert_non_null(strstr(err, "in use by another cutover process"));
    rollout_close(c);
    fake_free(&f);
    rollout_plan_free(p);
    remove_journal(path);
}

/* kill -9 at random moments over a whole rollout; every restart resumes
 * from the journal (the fake clock restarts at the last decision's time). */
static void test_kill_anywhere(void **state)
{
    (void)state;
    rollout_plan *p = plan_from(plan_yaml, NULL);
    char *path = temp_journal();
    srand((unsigned)time(NULL));
    int rounds = 0, kills = 0;
    for (;; rounds++) {
        long long last = sql_int(path, "SELECT max(time_ms) FROM decisions");
        int64_t start = last > 0 ? last + 1000 : T0;
        pid_t pid = spawn(p, path, CHILD_RUN, start, NULL);
        if (rounds < 60) {
            struct timespec ts = {0, (long)(1 + rand() % 40) * 1000000L};
            nanosleep(&ts, NULL);
            kill(pid, SIGKILL);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (WIFSIGNALED(status)) {
            kills++;
        } else {
            assert_true(WIFEXITED(status));
            assert_int_equal(WEXITSTATUS(status), 0);
            break;
        }
        /* never two pending decisions, never a step decided twice */
        assert_true(sql_int(path, "SELECT count(*) FROM decisions WHERE acted=0") <= 1);
        assert_true(sql_int(path, "SELECT count(*) FROM decisions WHERE action LIKE "
                                  "'advance to step 2%'") <= 1);
    }
    assert_true(kills > 0);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM decisions WHERE kind='command'"), 1);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM decisions WHERE action LIKE "
                                   "'advance to step 2%'"), 1);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM decisions WHERE action LIKE "
                                   "'advance to step 3%'"), 1);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM decisions WHERE action LIKE "
                                   "'promote%'"), 1);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM decisions WHERE acted=0"), 0);
    /* weights in order 10, 50, 100, once each */
    assert_int_equal(sql_int(path, "SELECT count(*) FROM weights"), 3);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM weights w1 JOIN weights w2 ON "
                                   "w2.id > w1.id AND w2.weight <= w1.weight"), 0);
    /* promotion took exactly the holds: the clock resumed from the journal */
    assert_int_equal(sql_int(path, "SELECT max(time_ms) - min(time_ms) FROM decisions"),
                     rollout_plan_min_promote_ms(p));
    assert_int_equal(sql_int(path, "SELECT count(*) FROM outbox"), 4); /* start, 2 steps, promoted */
    print_message("      %d rounds, %d kills\n", rounds + 1, kills);
    rollout_plan_free(p);
    remove_journal(path);
}

/* A damaged journal is refused, never taken for a new one: a state row
 * naming an unknown state, and a state row that cannot be read. */
static void test_corrupt_state_refused(void **state)
{
    (void)state;
    rollout_plan *p = plan_from(plan_yaml, NULL);
    char *path = temp_journal();
    fake f;
    fake_init(&f, T0);
    fake_traffic(&f, 1, 1000, 0, 0, 200);
    fake_traffic(&f, 0, 1000, 0, 0, 200);
    rollout_config cfg = {.plan = p, .journal_path = path, .ops = &fake_ops, .target_ctx = &f,
                          .clock = fake_clock, .clock_ctx = &f, .manual_ticks = true};
    char err[CU_ERRLEN] = "";
    rollout_ctl *c;
    assert_int_equal(rollout_open(&c, &cfg, err), 0);
    assert_int_equal(rollout_start(c, "t", err), 0);
    rollout_close(c);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE state SET state='bogus'", NULL, NULL, NULL),
                     SQLITE_OK);
    f.nset = 0;
    assert_int_equal(rollout_open(&c, &cfg, err), -EINVAL);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "unknown state 'bogus'"));
    assert_int_equal(f.nset, 0); /* nothing was applied */
    /* a row whose read fails at step time (integer overflow in a view) */
    assert_int_equal(sqlite3_exec(db,
        "DROP TABLE state; CREATE VIEW state AS SELECT 1 AS id, 1 AS run,"
        " abs(-9223372036854775807 - 1) AS state, 0 AS step, 10.0 AS weight,"
        " 0 AS step_started_ms, 0 AS deadline_ms, 0 AS next_analysis_ms, 0 AS last_analysis_ms,"
        " 0 AS failures, 0 AS errors, 0 AS awaiting_approval, 0 AS hold_notified,"
        " 0 AS updated_ms", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    err[0] = 0;
    assert_true(rollout_open(&c, &cfg, err) < 0);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "cannot read the rollout state"));
    assert_int_equal(f.nset, 0);
    fake_free(&f);
    rollout_plan_free(p);
    remove_journal(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_during_hold),
        cmocka_unit_test(test_crash_after_journal_before_act),
        cmocka_unit_test(test_crash_during_rollback),
        cmocka_unit_test(test_kill_anywhere),
        cmocka_unit_test(test_corrupt_state_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
