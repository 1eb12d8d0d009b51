/* loadtest/plan.c: lt_script_plan, the test's plan in words (`cutover
 * lint`): per phase its kind, length, rate and exact number of arrivals
 * (the same numbers the schedule in sched.c produces), the whole test's
 * length and user count, and each scenario's share of the users.
 * Pure: reads the compiled script only.
 */
#include <math.h>
#include <stdio.h>

#include "loadtest/script.h"

/* "45 s", "14 min", "1 h 2 min 5 s" after the seconds. */
static void duration_text(cu_buf *out, double s)
{
    lt_js_number(out, s);
    cu_buf_appends(out, " s");
    if (s < 60 || s != floor(s))
        return;
    long long t = (long long)s, h = t / 3600, m = t % 3600 / 60, sec = t % 60;
    cu_buf_appends(out, " (");
    if (h)
        cu_buf_appendf(out, "%lld h%s", h, m || sec ? " " : "");
    if (m)
        cu_buf_appendf(out, "%lld min%s", m, sec ? " " : "");
    if (sec)
        cu_buf_appendf(out, "%lld s", sec);
    cu_buf_appendc(out, ')');
}

static void rate_text(cu_buf *out, double r)
{
    lt_js_number(out, r);
    cu_buf_appends(out, "/s");
}

void lt_script_plan(const lt_script *s, cu_buf *out)
{
    uint64_t total = 0;
    double secs = 0, peak = 0;
    cu_buf_appendf(out, "Plan: %zu phase%s\n", s->nphases, s->nphases == 1 ? "" : "s");
    for (size_t i = 0; i < s->nphases; i++) {
        const lt_phase *p = &s->phases[i];
        uint64_t n = lt_phase_arrivals(p);
        cu_buf_appendf(out, "  %zu. %s: ", i + 1, p->name ? p->name : "unnamed");
        switch (p->kind) {
        case LT_PHASE_RATE:
            rate_text(out, p->rate);
            cu_buf_appends(out, " for ");
            peak = fmax(peak, p->rate);
            break;
        case LT_PHASE_RAMP:
            cu_buf_appends(out, "ramp ");
            rate_text(out, p->rate);
            cu_buf_appends(out, " -> ");
            rate_text(out, p->ramp_to);
            cu_buf_appends(out, " over ");
            peak = fmax(peak, fmax(p->rate, p->ramp_to));
            break;
        case LT_PHASE_COUNT:
            cu_buf_appendf(out, "%llu users over ", (unsigned long long)p->count);
            break;
        case LT_PHASE_PAUSE:
            cu_buf_appends(out, "pause for ");
            break;
        }
        duration_text(out, p->duration_s);
        cu_buf_appendf(out, ", %llu arrival%s, starts at ", (unsigned long long)n, n == 1 ? "" : "s");
        lt_js_number(out, secs);
        cu_buf_appends(out, " s");
        if (p->max_vusers)
            cu_buf_appendf(out, ", at most %lld users at once (more are skipped)",
                           (long long)p->max_vusers);
        cu_buf_appendc(out, '\n');
        total += n;
        secs += p->duration_s;
    }
    cu_buf_appends(out, "  total: ");
    duration_text(out, secs);
    cu_buf_appendf(out, ", %llu users", (unsigned long long)total);
    if (peak > 0) {
        cu_buf_appends(out, ", peak ");
        rate_text(out, peak);
    }
    cu_buf_appendc(out, '\n');
    cu_buf_appendf(out, "Scenarios: %zu\n", s->nscenarios);
    for (size_t i = 0; i < s->nscenarios; i++) {
        const lt_scenario *sc = &s->scenarios[i];
        double share = s->total_weight ? 100.0 * sc->weight / s->total_weight : 0;
        cu_buf_appendf(out, "  %s: weight %d, %.1f%% of users (about %.0f), %zu step%s\n", sc->name,
                       sc->weight, share, share / 100.0 * (double)total, sc->nflow,
                       sc->nflow == 1 ? "" : "s");
    }
    for (int k = 0; k < 2; k++) {
        const lt_scenario *sc = k == 0 ? s->before : s->after;
        if (sc)
            cu_buf_appendf(out, "%s flow: %zu step%s, run once %s the phases\n", k ? "After" : "Before",
                           sc->nflow, sc->nflow == 1 ? "" : "s", k ? "after" : "before");
    }
    cu_buf_appendf(out, "Target: %s\n", s->target);
}
