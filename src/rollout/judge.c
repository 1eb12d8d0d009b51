/* The judge: one gate over one window gives PASS, FAIL, HOLD, ERROR or
 * SKIP; a list of gates gives one analysis whose verdict is the worst of
 * them (FAIL > ERROR > HOLD > PASS) plus the explanation that goes into the
 * decision record: every input, sample size, value and threshold.
 *
 * Order of checks, so that "could not measure" never passes for "measured
 * bad" or the reverse: a failed read is ERROR; a baseline gate while the old
 * colour carries no traffic is SKIP; too few requests on a colour that has
 * weight is HOLD ("need about N more requests"); an undefined value (no
 * latency samples, division by zero) is ERROR; then the comparison.
 * Pure functions; thread-safe.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rollout/internal.h"

const char *rollout_verdict_name(rollout_verdict v)
{
    switch (v) {
    case ROLLOUT_PASS: return "PASS";
    case ROLLOUT_FAIL: return "FAIL";
    case ROLLOUT_HOLD: return "HOLD";
    case ROLLOUT_ERROR: return "ERROR";
    default: return "SKIP";
    }
}

static void side_desc(const rollout_expr *e, int side, double v, char *buf, size_t n)
{
    bool constant;
    char tb[128];
    const char *t = rx_side_text(e, side, &constant, tb, sizeof tb);
    char val[64];
    rx_format(v, rx_side_dim(e, side), val, sizeof val);
    if (constant)
        rt_fmt(buf, n, "%s", t);
    else
        rt_fmt(buf, n, "%s %s", t, val);
}

void rollout_judge(const rollout_expr *e, const rollout_window *w, rollout_judgement *out)
{
    memset(out, 0, sizeof *out);
    out->lhs = out->rhs = NAN;
    bool base = rollout_expr_uses_baseline(e);
    const char *nn = w->new_name ? w->new_name : "new", *on = w->old_name ? w->old_name : "old";
    if (w->new_err < 0 || (w->old_err < 0 && (base || (w->old_has_traffic && w->require_old)))) {
        bool newbad = w->new_err < 0;
        out->verdict = ROLLOUT_ERROR;
        rt_fmt(out->detail, sizeof out->detail, "could not read the %s window: %s",
                 newbad ? nn : on, strerror(-(newbad ? w->new_err : w->old_err)));
        return;
    }
    if (base && !w->old_has_traffic) {
        out->verdict = ROLLOUT_SKIP;
        rt_fmt(out->detail, sizeof out->detail,
                 "skipped: %s carries no traffic, there is no baseline to compare with", on);
        return;
    }
    uint64_t have_n = w->new_color->requests, have_o = w->old_color ? w->old_color->requests : 0;
    uint64_t need_n = have_n < w->min_requests ? w->min_requests - have_n : 0;
    bool old_needed = w->old_has_traffic && (w->require_old || base);
    uint64_t need_o = old_needed && have_o < w->min_requests ? w->min_requests - have_o : 0;
    if (need_n || need_o) {
        out->verdict = ROLLOUT_HOLD;
        out->need_more = CU_MAX(need_n, need_o);
        const char *who = need_n >= need_o ? nn : on;
        char olds[96] = "";
        if (old_needed)
            rt_fmt(olds, sizeof olds, ", %s %llu/%llu", on, (unsigned long long)have_o,
                     (unsigned long long)w->min_requests);
        const rollout_sample *short_s = need_n >= need_o ? w->new_color : w->old_color;
        char eta[96] = "";
        if (w->growing && short_s && short_s->seconds > 0 && short_s->requests > 0) {
            double rps = (double)short_s->requests / short_s->seconds;
            rt_fmt(eta, sizeof eta, ", about %.0f s more at %.2f/s", (double)out->need_more / rps,
                     rps);
        }
        rt_fmt(out->detail, sizeof out->detail,
                 "need about %llu more requests on %s (%s %llu/%llu%s in %.0f s%s)",
                 (unsigned long long)out->need_more, who, nn, (unsigned long long)have_n,
                 (unsigned long long)w->min_requests, olds, w->new_color->seconds, eta);
        return;
    }
    if (rx_uses_latency(e, false) && w->new_color->latency_ms.count == 0) {
        out->verdict = ROLLOUT_ERROR;
        rt_fmt(out->detail, sizeof out->detail, "no latency samples for %s", nn);
        return;
    }
    if (base && rx_uses_latency(e, true) && (!w->old_color || w->old_color->latency_ms.count == 0)) {
        out->verdict = ROLLOUT_ERROR;
        rt_fmt(out->detail, sizeof out->detail, "no latency samples for %s", on);
        return;
    }
    out->lhs = rx_side_value(e, 0, w->new_color, w->old_color);
    out->rhs = rx_side_value(e, 1, w->new_color, w->old_color);
    char l[160], r[160]; /* side text (and value) */
    side_desc(e, 0, out->lhs, l, sizeof l);
    side_desc(e, 1, out->rhs, r, sizeof r);
    if (!isfinite(out->lhs) || !isfinite(out->rhs)) {
        out->verdict = ROLLOUT_ERROR;
        rt_fmt(out->detail, sizeof out->detail, "cannot evaluate %s %s %s (division by zero or "
                 "no requests)", l, rx_op_text(rx_op(e)), r);
        return;
    }
    bool ok = rx_compare(rx_op(e), out->lhs, out->rhs);
    out->verdict = ok ? ROLLOUT_PASS : ROLLOUT_FAIL;
    char lt[128];
    if (ok)
        rt_fmt(out->detail, sizeof out->detail, "%s %s %s", l, rx_op_text(rx_op(e)), r);
    else /* "p95 612.0ms, wanted p95 <= 500ms" names value and threshold */
        rt_fmt(out->detail, sizeof out->detail, "%s, wanted %s %s %s", l,
                 rx_side_text(e, 0, NULL, lt, sizeof lt), rx_op_text(rx_op(e)), r);
}

json_t *rj_sample_json(const rollout_sample *s)
{
    if (!s)
        return json_null();
    json_t *o = json_object();
    json_object_set_new(o, "requests", json_integer((json_int_t)s->requests));
    json_object_set_new(o, "errors_5xx", json_integer((json_int_t)s->errors_5xx));
    json_object_set_new(o, "transport_errors", json_integer((json_int_t)s->transport_errors));
    json_object_set_new(o, "seconds", json_real(s->seconds));
    if (s->requests)
        json_object_set_new(o, "error_rate",
                            json_real((double)(s->errors_5xx + s->transport_errors) /
                                      (double)s->requests));
    if (s->latency_ms.count) {
        json_object_set_new(o, "p50", json_real(hist_quantile(&s->latency_ms, 0.5)));
        json_object_set_new(o, "p90", json_real(hist_quantile(&s->latency_ms, 0.9)));
        json_object_set_new(o, "p95", json_real(hist_quantile(&s->latency_ms, 0.95)));
        json_object_set_new(o, "p99", json_real(hist_quantile(&s->latency_ms, 0.99)));
    }
    if (s->seconds > 0)
        json_object_set_new(o, "rps", json_real((double)s->requests / s->seconds));
    return o;
}

static json_t *num_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* A tripwire's words: "tripped: error_rate 5.26% > 2%", or "not tripped:
 * p95 9.3ms, trips when p95 > 1s" (a gate's "wanted" would read backwards). */
static void trip_detail(rollout_judgement *j, bool fired)
{
    char d[sizeof j->detail];
    rt_fmt(d, sizeof d, "%s", j->detail);
    char *w = strstr(d, ", wanted ");
    /* rt_fmt cuts the whole on a character boundary; the half cut below too */
    if (fired) {
        rt_fmt(j->detail, sizeof j->detail, "tripped: %s", d);
    } else if (w) {
        *w = 0;
        const char *want = w + strlen(", wanted ");
        rt_fmt(j->detail, sizeof j->detail, "not tripped: %.*s, trips when %s",
               (int)rt_utf8_cut(d, CU_MIN(strlen(d), (size_t)240)), d, want);
    } else {
        rt_fmt(j->detail, sizeof j->detail, "not tripped: %s", d);
    }
}

void rj_analyse(rollout_expr *const *exprs, size_t n, const rollout_window *w, double window_s,
                bool trip, rj_analysis *out)
{
    memset(out, 0, sizeof *out);
    out->gates = json_array();
    out->inputs = json_object();
    json_object_set_new(out->inputs, "window_s", json_real(window_s));
    json_object_set_new(out->inputs, "min_requests", json_integer((json_int_t)w->min_requests));
    json_t *nw = w->new_err < 0 ? json_pack("{s:s}", "error", strerror(-w->new_err))
                                : rj_sample_json(w->new_color);
    json_t *old = w->old_err < 0 ? json_pack("{s:s}", "error", strerror(-w->old_err))
                                 : rj_sample_json(w->old_color);
    json_object_set_new(out->inputs, w->new_name ? w->new_name : "new", nw);
    json_object_set_new(out->inputs, w->old_name ? w->old_name : "old", old);
    char first_fail[512] = "", first_err[512] = "", first_hold[512] = "";
    for (size_t i = 0; i < n; i++) {
        rollout_judgement jj, *j = &jj;
        rollout_judge(exprs[i], w, j);
        rollout_verdict v = j->verdict;
        if (trip && (v == ROLLOUT_PASS || v == ROLLOUT_FAIL)) {
            v = v == ROLLOUT_PASS ? ROLLOUT_FAIL : ROLLOUT_PASS; /* holding = firing */
            trip_detail(j, v == ROLLOUT_FAIL);
        }
        switch (v) {
        case ROLLOUT_PASS: out->npass++; break;
        case ROLLOUT_FAIL:
            out->nfail++;
            if (!first_fail[0])
                rt_fmt(first_fail, sizeof first_fail, "%s", j->detail);
            break;
        case ROLLOUT_HOLD:
            out->nhold++;
            out->need_more = CU_MAX(out->need_more, j->need_more);
            if (!first_hold[0])
                rt_fmt(first_hold, sizeof first_hold, "%s", j->detail);
            break;
        case ROLLOUT_ERROR:
            out->nerror++;
            if (!first_err[0])
                rt_fmt(first_err, sizeof first_err, "%s", j->detail);
            break;
        default: out->nskip++; break;
        }
        json_t *g = json_object();
        json_object_set_new(g, "expr", json_string(rollout_expr_text(exprs[i])));
        json_object_set_new(g, "verdict", json_string(rollout_verdict_name(v)));
        json_object_set_new(g, "value", num_or_null(j->lhs));
        json_object_set_new(g, "threshold", num_or_null(j->rhs));
        if (j->need_more)
            json_object_set_new(g, "need_more", json_integer((json_int_t)j->need_more));
        json_object_set_new(g, "detail", json_string(j->detail));
        json_array_append_new(out->gates, g);
    }
    const char *why = NULL;
    if (out->nfail) {
        out->verdict = ROLLOUT_FAIL;
        why = first_fail;
    } else if (out->nerror) {
        out->verdict = ROLLOUT_ERROR;
        why = first_err;
    } else if (out->nhold) {
        out->verdict = ROLLOUT_HOLD;
        why = first_hold;
    } else {
        out->verdict = ROLLOUT_PASS;
    }
    if (why && why[0])
        rt_fmt(out->summary, sizeof out->summary, "%s", why);
    else
        rt_fmt(out->summary, sizeof out->summary, "%zu gate%s passed%s", out->npass,
                 out->npass == 1 ? "" : "s", out->nskip ? " (baseline gates skipped)" : "");
}

void rj_analysis_free(rj_analysis *a)
{
    json_decref(a->gates);
    json_decref(a->inputs);
    a->gates = a->inputs = NULL;
}
