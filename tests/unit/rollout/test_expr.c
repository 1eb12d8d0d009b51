/* Gate expressions and the judge: parsing, units, error positions (of the
 * character inside the YAML string), the plan's errors, and PASS / FAIL /
 * HOLD / ERROR / SKIP over scripted windows, with baseline comparisons. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#include "fake.h"

static void expect_parse_error(const char *text, const char *want)
{
    char err[CU_ERRLEN] = "";
    rollout_expr *e = rollout_expr_parse(text, "g.yml", 3, 10, err);
    if (e || !strstr(err, want)) {
        print_error("gate '%s': wanted an error containing '%s', got '%s'\n", text, want,
                    e ? "(parsed)" : err);
        rollout_expr_free(e);
        fail();
    }
}

static void test_expr_parse_ok(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "error_rate < 1%", "p95 < 500ms", "p99 <= 2s", "p95 <= baseline.p95 * 1.2",
        "error_rate <= baseline.error_rate + 0.5%", "rps > 5", "requests >= 100",
        "p50 / baseline.p50 < 1.5", "(p90 - baseline.p90) < 50ms", "p95<1min",
        "error_rate != 100%", "-p95 > -1s"};
    char err[CU_ERRLEN];
    for (size_t i = 0; i < CU_ARRAY_LEN(ok); i++) {
        rollout_expr *e = rollout_expr_parse(ok[i], "g.yml", 1, 1, err);
        if (!e) {
            print_error("'%s': %s\n", ok[i], err);
            fail();
        }
        assert_string_equal(rollout_expr_text(e), ok[i]);
        rollout_expr_free(e);
    }
}

static void test_expr_errors(void **state)
{
    (void)state;
    /* positions: the text starts at line 3 column 10 */
    expect_parse_error("p59 < 500ms", "g.yml:3:10: unknown metric 'p59' (did you mean 'p50'?)");
    expect_parse_error("erorr_rate < 1%", "g.yml:3:10: unknown metric 'erorr_rate' (did you mean "
                                          "'error_rate'?)");
    expect_parse_error("p95 <= baseline.pp95 * 1.2", "g.yml:3:26: unknown metric 'pp95' (did you "
                                                     "mean 'p95'?)");
    expect_parse_error("p95 <= basline.p95", "g.yml:3:17: unknown metric 'basline' (did you mean "
                                             "'baseline.<metric>'?)");
    expect_parse_error("latency < 5s", "3:10: unknown metric 'latency' (metrics:");
    expect_parse_error("p95 < 500", "3:14: cannot compare a duration with a plain number: give "
                                    "the duration a unit");
    expect_parse_error("error_rate < 0.01", "3:21: cannot compare a percentage with a plain "
                                            "number: give the rate a percent sign");
    expect_parse_error("p95 < 1%", "3:14: cannot compare a duration with a percentage");
    expect_parse_error("p95 < 500us", "3:19: unknown unit 'us'");
    expect_parse_error("p95 = 500ms", "3:14: use '=='");
    expect_parse_error("p95 500ms", "3:14: expected a comparison");
    expect_parse_error("p95 <", "3:15: unexpected end of the gate");
    expect_parse_error("p95 < 500ms)", "3:21: unexpected ')' after the gate");
    expect_parse_error("(p95 < 500ms", "3:15: missing ')'");
    expect_parse_error("p95 * p99 < 5ms", "3:14: cannot multiply a duration by a duration");
    expect_parse_error("p95 + 1% < 5ms", "3:14: cannot add a duration and a percentage");
    expect_parse_error("baseline.p95 < 500ms", "3:10: the gate reads no metric of the new colour");
    expect_parse_error("1% < 2%", "3:10: the gate reads no metric of the new colour");
    expect_parse_error("", "3:10: unexpected end");
    expect_parse_error("p95 < baseline", "3:24: baseline needs a metric");
    /* slips that used to parse into gates that always pass */
    expect_parse_error("p95 < 500m", "3:19: 'm' is not a unit in gates: did you mean 500ms? "
                                     "(write min for minutes)");
    expect_parse_error("p95 <= p95 * 1.2", "3:17: both sides read the new colour and neither "
                                           "the old one: compare against the old colour with "
                                           "baseline.<metric>");
    expect_parse_error("error_rate - error_rate < 1%", "3:21: error_rate - error_rate is always "
                                                       "0: did you mean error_rate - "
                                                       "baseline.error_rate?");
    expect_parse_error("p95 / p95 < 2", "is always 1");
}

/* Gates that parse but are probably slips carry a warning. */
static void test_expr_warnings(void **state)
{
    (void)state;
    char err[CU_ERRLEN];
    rollout_expr *e = rollout_expr_parse("p95 < 2min", "g.yml", 3, 10, err);
    assert_non_null(e);
    assert_non_null(rx_warning(e));
    assert_non_null(strstr(rx_warning(e), "g.yml:3:16: a latency threshold of 2min is above 60 s"));
    rollout_expr_free(e);
    e = rollout_expr_parse("p95 < 60s", "g.yml", 3, 10, err);
    assert_non_null(e);
    assert_null(rx_warning(e));
    rollout_expr_free(e);
    e = rollout_expr_parse("p99 < 5m" "in", "g.yml", 3, 10, err);
    assert_non_null(e);
    assert_non_null(rx_warning(e));
    rollout_expr_free(e);
    /* dividing by the baseline's error rate: blue at 0 errors makes it ERROR */
    e = rollout_expr_parse("error_rate / baseline.error_rate < 2", "g.yml", 3, 10, err);
    assert_non_null(e);
    assert_non_null(rx_warning(e));
    assert_non_null(strstr(rx_warning(e), "g.yml:3:21: dividing by baseline.error_rate"));
    assert_non_null(strstr(rx_warning(e), "error_rate <= baseline.error_rate + 0.5%"));
    rollout_expr_free(e);
    e = rollout_expr_parse("p95 / baseline.p95 < 1.2", "g.yml", 3, 10, err);
    assert_non_null(e);
    assert_null(rx_warning(e));
    rollout_expr_free(e);
}

/* The hard way: every prefix of valid gates, and random strings over the
 * gate alphabet, either parse or fail with a position inside the text
 * (never a crash, never a position past the end). */
static void check_error_column(const char *text, const char *err)
{
    int line, col;
    if (sscanf(err, "g:%d:%d:", &line, &col) != 2 || line != 1 || col < 1 ||
        col > (int)strlen(text) + 1) {
        print_error("'%s': bad position in '%s'\n", text, err);
        fail();
    }
}

static void gen_side(cu_rng *r, char *buf, int depth)
{
    static const char *const atoms[] = {"p95", "baseline.p95", "error_rate",
                                        "baseline.error_rate", "rps", "requests", "1%", "500ms",
                                        "2s", "1.2", "100"};
    static const char *const ops[] = {" * ", " / ", " + ", " - "};
    if (depth > 0 && cu_rng_below(r, 3) == 0) {
        strcat(buf, "(");
        gen_side(r, buf, depth - 1);
        strcat(buf, ops[cu_rng_below(r, 4)]);
        gen_side(r, buf, depth - 1);
        strcat(buf, ")");
        return;
    }
    strcat(buf, atoms[cu_rng_below(r, CU_ARRAY_LEN(atoms))]);
    if (depth > 0 && cu_rng_below(r, 2) == 0) {
        strcat(buf, ops[cu_rng_below(r, 4)]);
        gen_side(r, buf, depth - 1);
    }
}

static void test_expr_prefixes_and_fuzz(void **state)
{
    (void)state;
    static const char *const gates[] = {"p95 <= baseline.p95 * 1.2",
                                        "error_rate <= baseline.error_rate + 0.5%",
                                        "(p90 - baseline.p90) / 2 < 50ms", "rps >= 1.5"};
    char err[CU_ERRLEN], buf[512];
    for (size_t g = 0; g < CU_ARRAY_LEN(gates); g++) {
        size_t len = strlen(gates[g]);
        for (size_t k = 0; k <= len; k++) {
            snprintf(buf, sizeof buf, "%.*s", (int)k, gates[g]);
            rollout_expr *e = rollout_expr_parse(buf, "g", 1, 1, err);
            if (e)
                rollout_expr_free(e);
            else
                check_error_column(buf, err);
        }
    }
    static const char alphabet[] = "p95 <=>!()*/+-.%mserror_atbaseline0123456789 ";
    cu_rng rng;
    cu_rng_seed(&rng, 42);
    int parsed = 0;
    for (int i = 0; i < 20000; i++) {
        size_t len = 1 + cu_rng_below(&rng, 40);
        for (size_t k = 0; k < len; k++)
            buf[k] = alphabet[cu_rng_below(&rng, sizeof alphabet - 1)];
        buf[len] = 0;
        if (i % 4 == 0) /* bias toward almost-valid text */
            memcpy(buf, "p95 < ", CU_MIN(len, 6));
        rollout_expr *e = rollout_expr_parse(buf, "g", 1, 1, err);
        if (e) {
            parsed++;
            rollout_expr_free(e);
        } else {
            check_error_column(buf, err);
        }
    }
    /* grammar-shaped soup: more of it parses, and whatever parses must judge
     * cleanly (the old colour has no latencies and no errors, so divisions
     * by zero and missing samples happen) */
    fake f;
    fake_init(&f, 0);
    fake_traffic(&f, 1, 1000, 3, 1, 420);
    fake_traffic(&f, 0, 1000, 0, 0, 0);
    hist_reset(&f.s[0].latency_ms);
    f.s[0].seconds = f.s[1].seconds = 30;
    rollout_window w = {.new_color = &f.s[1], .old_color = &f.s[0], .min_requests = 10,
                        .old_has_traffic = true, .require_old = true};
    int soup_parsed = 0, verdicts[5] = {0};
    int level = cu_log_level();
    cu_log_set_level(CU_LOG_ERROR); /* the soup divides by error rates: quiet the warnings */
    for (int i = 0; i < 20000; i++) {
        buf[0] = 0;
        gen_side(&rng, buf, 2);
        strcat(buf, cu_rng_below(&rng, 2) ? " <= " : " > ");
        gen_side(&rng, buf, 2);
        rollout_expr *e = rollout_expr_parse(buf, "g", 1, 1, err);
        if (!e) {
            check_error_column(buf, err);
            continue;
        }
        soup_parsed++;
    rollout_judgement j;
        rollout_judge(e, &w, &j);
        assert_true(j.verdict <= ROLLOUT_SKIP);
        assert_true(j.detail[0] != 0);
        verdicts[j.verdict]++;
        rollout_expr_free(e);
    }
    cu_log_set_level(level);
    fake_free(&f);
    print_message("      random: %d/20000 parsed; grammar soup: %d/20000 parsed (pass %d, fail %d, "
                  "error %d)\n", parsed, soup_parsed, verdicts[0], verdicts[1], verdicts[3]);
    assert_true(soup_parsed > 500);
    assert_true(verdicts[ROLLOUT_PASS] > 0 && verdicts[ROLLOUT_FAIL] > 0 &&
                verdicts[ROLLOUT_ERROR] > 0);
}

/* Positions inside YAML: the column of the character inside the string,
 * for double-quoted, single-quoted and plain scalars, and a whole plan's
 * error messages. */
static void test_plan_errors(void **state)
{
    (void)state;
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 10, hold: 0s } ]\n  analysis:\n"
         "    gates: [ \"error_rate < 1%\", \"p59 < 500ms\" ]\n",
         "plan.yml:6:34: unknown metric 'p59' (did you mean 'p50'?)"},
        {"rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 10, hold: 0s } ]\n  analysis:\n"
         "    rollback_when:\n      - 'error_rate > 2 %'\n    gates: []\n",
         "plan.yml:7:25: unexpected '%' after the gate"},
        {"rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 10, hold: 0s } ]\n  analysis:\n"
         "    gates:\n      - p95 < 500\n",
         "plan.yml:7:13: cannot compare a duration with a plain number"},
        {"rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 50, hold: 0s }, { weight: 10 } ]\n",
         "plan.yml:4:48: weights must increase"},
        {"rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 150 } ]\n",
         "plan.yml:4:22: weight must be a number in (0, 100]"},
        {"rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 10, hold: 2 weeks } ]\n",
         "plan.yml:4:32: hold must be a duration"},
        {"rollout:\n  from: blue\n  to: blue\n  steps: [ { weight: 10, hold: 0s } ]\n",
         "plan.yml:3:7: rollout.to must differ"},
        {"rollout:\n  from: blue\n  to: green\n", "plan.yml:2:3: rollout: 'steps' is required"},
        {"rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 10, hold: 0s } ]\n  analysis: "
         "{ interval: 500ms }\n", "plan.yml:5:25: the analysis interval must be at least 1s"},
        {"rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 10, hold: 0s } ]\n  notify:\n"
         "    - { webhook: \"ftp://x\" }\n"
         "  analysis: { gates: [], rollback_when: [] }\n", "plan.yml:6:18: webhook:"},
        {"rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 10, hold: 0s } ]\n  notify:\n"
         "    - { webhook: \"http://127.0.0.1:1/\", exec: \"cat\" }\n"
         "  analysis: { gates: [], rollback_when: [] }\n",
         "plan.yml:6:7: a receiver needs exactly one of"},
        {"rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 10, hold: 0s } ]\n  notify:\n"
         "    - { exec: \"cat\", events: [ promoted, rollbak ] }\n"
         "  analysis: { gates: [], rollback_when: [] }\n",
         "plan.yml:6:42: unknown event 'rollbak' (did you mean 'rollback'?)"},
        /* typos that used to mean no gate, no tripwire, no hold or no approval */
        {"rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 10, hold: 1m } ]\n"
         "  analysis:\n    gatess: [ \"p95 < 500ms\" ]\n    rollback_when: []\n",
         "plan.yml:6:5: unknown key 'gatess' in rollout.analysis (did you mean 'gates'?)"},
        {"rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 10, hold: 1m } ]\n"
         "  analysis:\n    gates: [ \"p95 < 500ms\" ]\n  rollback_when: [ \"error_rate > 5%\" ]\n",
         "plan.yml:7:3: 'rollback_when' does not belong in rollout but in rollout.analysis"},
        {"rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 10, hlod: 48h } ]\n",
         "plan.yml:4:26: unknown key 'hlod' in a step (did you mean 'hold'?)"},
        {"rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 10, hold: 1m, aprove: true } ]\n",
         "plan.yml:4:36: unknown key 'aprove' in a step (did you mean 'approve'?)"},
        {"rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 10 } ]\n",
         "plan.yml:4:12: step 1 needs a hold"},
        {"rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 10, hold: 1m } ]\n",
         "plan.yml:2:3: rollout: 'analysis' is required"},
        {"rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 10, hold: 1m } ]\n"
         "  analysis: { rollback_when: [] }\n",
         "plan.yml:5:13: rollout.analysis.gates is required"},
        {"rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 10, hold: 1m } ]\n"
         "  analysis:\n    gates: [ \"p95 < 500ms\" ]\n",
         "plan.yml:6:5: rollout.analysis.rollback_when is required"},
        {"rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 10, hold: 1m } ]\n"
         "  analysis:\n    gates:\n    rollback_when: []\n",
         "rollout.analysis.gates is empty"},
        {"rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 10, hold: 1m } ]\n"
         "  analysis: { gates: [], rollback_when: [] }\n  notify: [ { exec: cat, timout: 2s } ]\n",
         "plan.yml:6:26: unknown key 'timout' in a rollout.notify item (did you mean 'timeout'?)"},
        {"rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 10, hold: 1m } ]\n"
         "  analysis: { gates: [], rollback_when: [] }\n  notify: [ { exec: cat, timeout: 0 } ]\n",
         "plan.yml:6:35: a receiver's timeout must be more than 0"},
        {"rollout:\n  form: blue\n  to: green\n",
         "plan.yml:2:3: unknown key 'form' in rollout (did you mean 'from'?)"},
    };
    for (size_t i = 0; i < CU_ARRAY_LEN(cases); i++) {
        char err[CU_ERRLEN] = "";
        conf_node *root = conf_parse(cases[i].yaml, strlen(cases[i].yaml), "plan.yml", err);
        assert_non_null(root);
        rollout_plan *p = NULL;
        int rc = rollout_plan_parse(conf_get(root, "rollout"), &p, err);
        if (rc == 0 || !strstr(err, cases[i].want)) {
            print_error("case %zu: wanted '%s', got '%s'\n", i, cases[i].want, rc ? err : "(ok)");
            fail();
        }
        assert_null(p);
        conf_free(root);
    }
}

static void test_plan_ok_and_formulas(void **state)
{
    (void)state;
    rollout_plan *p = plan_from(
        "rollout:\n  from: blue\n  to: green\n"
        "  steps: [ { weight: 10, hold: 48h }, { weight: 50, hold: 72h, approve: true },"
        " { weight: 100, hold: 7d } ]\n"
        "  analysis:\n    interval: 1m\n    min_requests: 500\n    failure_limit: 3\n"
        "    gates: [ \"error_rate < 1%\", \"p95 < 500ms\", \"p95 <= baseline.p95 * 1.2\" ]\n"
        "    rollback_when: [ \"error_rate > 2%\", \"p95 > 1000ms\" ]\n"
        "  notify: [ { webhook: \"http://127.0.0.1:9999/hook\" }, { exec: \"cat\", timeout: 2s } ]\n",
        NULL);
    assert_string_equal(p->from, "blue");
    assert_string_equal(p->to, "green");
    assert_int_equal(p->nsteps, 3);
    assert_true(p->steps[1].approve);
    assert_int_equal(p->steps[2].hold_ms, 7 * 86400000LL);
    assert_int_equal(p->interval_ms, 60000);
    assert_int_equal(p->window_ms, 60000);
    assert_int_equal(p->min_requests, 500);
    assert_int_equal(p->ngates, 3);
    assert_int_equal(p->ntripwires, 2);
    assert_int_equal(p->nreceivers, 2);
    assert_int_equal(p->receivers[1].timeout_ms, 2000);
    assert_int_equal(rollout_plan_min_promote_ms(p), (48 + 72 + 168) * 3600000LL);
    assert_int_equal(rollout_plan_gate_rollback_ms(p), 4 * 60000);
    cu_buf b = CU_BUF_INIT;
    rollout_plan_describe(p, &b);
    assert_non_null(strstr(b.data, "shortest time to promote: 12d"));
    assert_non_null(strstr(b.data, "time for failing gates to roll back: 4m"));
    cu_buf_free(&b);
    rollout_plan_free(p);
    /* the explicit opt-outs: no gates, no tripwires, a hold of 0s */
    p = plan_from("rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 100, hold: 0s } ]\n"
                  "  analysis: { gates: [], rollback_when: [] }\n", NULL);
    assert_int_equal(p->ngates, 0);
    assert_int_equal(p->ntripwires, 0);
    assert_int_equal(p->steps[0].hold_ms, 0);
    rollout_plan_free(p);
}

/* ---- judging ---- */
static rollout_judgement judge(const char *gate, fake *f, uint64_t min, bool old_traffic)
{
    char err[CU_ERRLEN];
    rollout_expr *e = rollout_expr_parse(gate, "g", 1, 1, err);
    if (!e) {
        print_error("%s\n", err);
        fail();
    }
    rollout_window w = {.new_color = &f->s[1], .old_color = &f->s[0], .new_err = f->read_err[1],
                        .old_err = f->read_err[0], .min_requests = min,
                        .old_has_traffic = old_traffic, .require_old = true,
                        .new_name = "green", .old_name = "blue"};
    f->s[0].seconds = f->s[1].seconds = 60;
    rollout_judgement j;
    rollout_judge(e, &w, &j);
    rollout_expr_free(e);
    return j;
}

#define ASSERT_VERDICT(j, v, sub)                                                               \
    do {                                                                                        \
        rollout_judgement j_ = (j);                                                             \
        if (j_.verdict != (v) || !strstr(j_.detail, (sub))) {                                   \
            print_error("wanted %s '%s', got %s '%s'\n", rollout_verdict_name(v), (sub),        \
                        rollout_verdict_name(j_.verdict), j_.detail);                           \
            fail();                                                                             \
        }                                                                                       \
    } while (0)

static void test_judge(void **state)
{
    (void)state;
    fake f;
    fake_init(&f, 0);
    fake_traffic(&f, 1, 1000, 4, 1, 400);  /* green: 0.5% errors, ~400 ms */
    fake_traffic(&f, 0, 1000, 1, 0, 300);  /* blue: 0.1% errors, ~300 ms */
    ASSERT_VERDICT(judge("error_rate < 1%", &f, 100, true), ROLLOUT_PASS, "error_rate 0.5% < 1%");
    ASSERT_VERDICT(judge("error_rate < 0.4%", &f, 100, true), ROLLOUT_FAIL,
                   "error_rate 0.5%, wanted error_rate < 0.4%");
    /* transport errors count as errors */
    fake_traffic(&f, 1, 1000, 0, 5, 400);
    ASSERT_VERDICT(judge("error_rate < 0.4%", &f, 100, true), ROLLOUT_FAIL, "0.5%");
    ASSERT_VERDICT(judge("p95 < 500ms", &f, 100, true), ROLLOUT_PASS, "p95 ");
    ASSERT_VERDICT(judge("p95 < 0.3s", &f, 100, true), ROLLOUT_FAIL, "wanted p95 < 0.3s");
    /* against the baseline: 400 vs 300 * 1.2 = 360 fails; * 1.5 = 450 passes */
    ASSERT_VERDICT(judge("p95 <= baseline.p95 * 1.2", &f, 100, true), ROLLOUT_FAIL,
                   "wanted p95 <= baseline.p95 * 1.2");
    rollout_judgement j = judge("p95 <= baseline.p95 * 1.5", &f, 100, true);
    ASSERT_VERDICT(j, ROLLOUT_PASS, "baseline.p95 * 1.5 ");
    assert_true(fabs(j.rhs - 1.5 * j.lhs * 300 / 400) < 0.05 * j.rhs);
    ASSERT_VERDICT(judge("error_rate <= baseline.error_rate + 0.5%", &f, 100, true),
                   ROLLOUT_PASS, "");
    ASSERT_VERDICT(judge("error_rate <= baseline.error_rate + 0.3%", &f, 100, true),
                   ROLLOUT_FAIL, "");
    ASSERT_VERDICT(judge("rps > 10", &f, 100, true), ROLLOUT_PASS, "rps 16.67/s > 10");
    ASSERT_VERDICT(judge("requests >= 2000", &f, 100, true), ROLLOUT_FAIL, "requests 1000");
    /* HOLD below min_requests, on either colour, saying how many more */
    fake_traffic(&f, 1, 30, 0, 0, 400);
    j = judge("p95 < 500ms", &f, 100, true);
    ASSERT_VERDICT(j, ROLLOUT_HOLD, "need about 70 more requests on green (green 30/100, blue "
                                    "1000/100 in 60 s)");
    assert_int_equal(j.need_more, 70);
    fake_traffic(&f, 1, 1000, 0, 0, 400);
    fake_traffic(&f, 0, 10, 0, 0, 300);
    ASSERT_VERDICT(judge("p95 < 500ms", &f, 100, true), ROLLOUT_HOLD, "need about 90 more "
                                                                      "requests on blue");
    /* at 100% the old colour is not required; baseline gates are skipped */
    fake_traffic(&f, 0, 0, 0, 0, 0);
    ASSERT_VERDICT(judge("p95 < 500ms", &f, 100, false), ROLLOUT_PASS, "");
    ASSERT_VERDICT(judge("p95 <= baseline.p95 * 1.2", &f, 100, false), ROLLOUT_SKIP, "no traffic");
    /* ERROR: a failed read, no latencies, division by zero */
    fake_traffic(&f, 0, 1000, 0, 0, 300);
    f.read_err[1] = -EIO;
    ASSERT_VERDICT(judge("p95 < 500ms", &f, 100, true), ROLLOUT_ERROR, "could not read the green");
    f.read_err[1] = 0;
    f.read_err[0] = -ECONNREFUSED;
    ASSERT_VERDICT(judge("p95 < 500ms", &f, 100, true), ROLLOUT_ERROR, "could not read the blue");
    f.read_err[0] = 0;
    fake_traffic(&f, 1, 1000, 0, 0, 400);
    hist_reset(&f.s[1].latency_ms);
    ASSERT_VERDICT(judge("p95 < 500ms", &f, 100, true), ROLLOUT_ERROR, "no latency samples for "
                                                                       "green");
    ASSERT_VERDICT(judge("error_rate < 1%", &f, 100, true), ROLLOUT_PASS, "");
    ASSERT_VERDICT(judge("error_rate / baseline.error_rate < 2", &f, 100, true), ROLLOUT_ERROR,
                   "cannot evaluate");
    /* min_requests 0 and no traffic: error_rate is 0/0 */
    fake_traffic(&f, 1, 0, 0, 0, 0);
    ASSERT_VERDICT(judge("error_rate < 1%", &f, 0, true), ROLLOUT_ERROR, "cannot evaluate");
    fake_free(&f);
}

/* An analysis over several gates: the worst verdict wins, errors are
 * counted apart from failures, and tripwires invert (holding = firing). */
static void test_analyse(void **state)
{
    (void)state;
    fake f;
    fake_init(&f, 0);
    char err[CU_ERRLEN];
    rollout_expr *g[3] = {rollout_expr_parse("error_rate < 1%", "g", 1, 1, err),
                          rollout_expr_parse("p95 < 500ms", "g", 1, 1, err),
                          rollout_expr_parse("p99 < 2s", "g", 1, 1, err)};
    fake_traffic(&f, 1, 1000, 0, 0, 700);
    fake_traffic(&f, 0, 1000, 0, 0, 300);
    rollout_window w = {.new_color = &f.s[1], .old_color = &f.s[0], .min_requests = 100,
                        .old_has_traffic = true, .require_old = true, .new_name = "green",
                        .old_name = "blue"};
    rj_analysis a;
    rj_analyse(g, 3, &w, 60, false, &a);
    assert_int_equal(a.verdict, ROLLOUT_FAIL);
    assert_int_equal(a.npass, 2);
    assert_int_equal(a.nfail, 1);
    assert_non_null(strstr(a.summary, "wanted p95 < 500ms"));
    assert_int_equal(json_array_size(a.gates), 3);
    assert_non_null(json_object_get(a.inputs, "green"));
    rj_analysis_free(&a);
    /* as tripwires: p95 < 500ms does not hold -> does not fire; the others hold -> fire */
    rj_analyse(g, 3, &w, 10, true, &a);
    assert_int_equal(a.verdict, ROLLOUT_FAIL);
    assert_int_equal(a.nfail, 2);
    assert_non_null(strstr(a.summary, "tripped: error_rate 0% < 1%"));
    const char *d1 = json_string_value(json_object_get(json_array_get(a.gates, 1), "detail"));
    assert_non_null(strstr(d1, "not tripped: p95 "));
    assert_non_null(strstr(d1, ", trips when p95 < 500ms"));
    rj_analysis_free(&a);
    hist_reset(&f.s[1].latency_ms);
    rj_analyse(g, 3, &w, 60, false, &a);
    assert_int_equal(a.verdict, ROLLOUT_ERROR);
    assert_int_equal(a.nerror, 2);
    assert_int_equal(a.nfail, 0);
    rj_analysis_free(&a);
    for (int i = 0; i < 3; i++)
        rollout_expr_free(g[i]);
    fake_free(&f);
}

static void test_hist_codec(void **state)
{
    (void)state;
    hist h, d;
    hist_init(&h);
    hist_init(&d);
    cu_buf b = CU_BUF_INIT;
    rollout_hist_encode(&h, &b);
    assert_int_equal(rollout_hist_decode(b.data, b.len, &d), 0);
    assert_int_equal(d.count, 0);
    for (int i = 0; i < 5000; i++)
        hist_record(&h, 0.5 + (i % 977) * 1.7);
    hist_record(&h, 0);
    cu_buf_reset(&b);
    rollout_hist_encode(&h, &b);
    assert_int_equal(rollout_hist_decode(b.data, b.len, &d), 0);
    assert_int_equal(d.count, h.count);
    assert_int_equal(d.zero_count, h.zero_count);
    assert_true(d.sum == h.sum && d.min == h.min && d.max == h.max);
    static const double qs[] = {0, 0.5, 0.9, 0.95, 0.99, 1};
    for (size_t i = 0; i < CU_ARRAY_LEN(qs); i++)
        assert_true(hist_quantile(&d, qs[i]) == hist_quantile(&h, qs[i]));
    hist_merge(&d, &h); /* still a valid sketch */
    assert_int_equal(d.count, 2 * h.count);
    assert_int_equal(rollout_hist_decode(b.data, b.len - 3, &d), -EINVAL);
    assert_int_equal(rollout_hist_decode("XX", 2, &d), -EINVAL);
    cu_buf_free(&b);
    hist_free(&h);
    hist_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expr_parse_ok), cmocka_unit_test(test_expr_errors),
        cmocka_unit_test(test_expr_warnings),
        cmocka_unit_test(test_expr_prefixes_and_fuzz),
        cmocka_unit_test(test_plan_errors),   cmocka_unit_test(test_plan_ok_and_formulas),
        cmocka_unit_test(test_judge),         cmocka_unit_test(test_analyse),
        cmocka_unit_test(test_hist_codec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
