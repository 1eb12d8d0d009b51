/* The controller's state machine:
 *
 *   idle --start--> progressing(step i) <--pause/resume--> paused
 *   progressing --analysis passes at the hold's end--> step i+1 ... --> promoted
 *   progressing/paused --tripwire, failure/error limit--> rolled_back (new = 0)
 *   progressing/paused --promote--> promoted (new = 100) | --abort--> aborted (new = 0)
 *   rolled_back/aborted --start--> progressing (a new run)
 *
 * Every transition and every analysis is one decision: decide() journals the
 * record, the next state, the weight change and the notifications in one
 * transaction, and only then sets the weight (act). Two speeds: tripwires
 * every tick (ROLLOUT_TICK_MS, 200 ms) over a short window, acting in the same tick; gates every
 * analysis interval, deciding promotion when a hold ends (waiting while any
 * gate holds for data). Pausing freezes the schedule (no analysis, no
 * advance); tripwires stay armed whenever the new colour has weight.
 * Thread rules: the loop's thread only.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollout/internal.h"

struct rollout_ctl {
    rollout_config cfg;
    const rollout_plan *plan;
    rj *j;
    rn *notify;
    uv_timer_t *timer;
    rj_state st;
    bool weight_applied;
    double applied_weight;   /* what the target last accepted */
    int64_t pending_seq;     /* newest decision journaled but not yet acted */
    uint64_t decisions, recovered;
    int64_t last_minute_ms;
    bool journal_failing;    /* the last decision could not be journaled (logged once) */
    rollout_sample s_new, s_old;
};

typedef struct event {
    const char *name;        /* start step hold rollback promoted abort approval pause resume */
    char text[1024];
} event;

rj *rollout__journal(rollout_ctl *c)
{
    return c->j;
}

const rollout_plan *rollout__plan(const rollout_ctl *c)
{
    return c->plan;
}

int64_t rollout__now(const rollout_ctl *c)
{
    return c->cfg.clock ? c->cfg.clock(c->cfg.clock_ctx) : cu_wall_ms();
}

/* ---- acting ------------------------------------------------------------------ */
static void act(rollout_ctl *c)
{
    if (c->st.state == ROLLOUT_IDLE) {
        c->weight_applied = true;
        return;
    }
    int rc = 0;
    if (!c->weight_applied || c->applied_weight != c->st.weight)
        rc = c->cfg.ops->set_weight(c->cfg.target_ctx, c->st.weight);
    if (rc < 0) {
        if (c->weight_applied)
            cu_error("rollout: cannot set %s to %g%%: %s (retrying at every tick)", c->plan->to,
                     c->st.weight, strerror(-rc));
        c->weight_applied = false;
        return;
    }
    c->weight_applied = true;
    c->applied_weight = c->st.weight;
    if (c->pending_seq) {
        if (rj_mark_acted(c->j, c->pending_seq) == 0)
            c->pending_seq = 0;
    }
}

static json_t *rollout_json(const rollout_ctl *c, const rj_state *s)
{
    return json_pack("{s:s,s:s,s:I,s:s,s:i,s:i,s:f,s:f}", "from", c->plan->from, "to", c->plan->to,
                     "run", (json_int_t)s->run, "state",
                     rollout_state_name((rollout_state)s->state), "step", s->step + 1, "steps",
                     (int)c->plan->nsteps, "weight_new", s->weight, "weight_old",
                     100.0 - s->weight);
}

/* Journals one decision leading to state `next`, then acts on it. `detail`
 * (may be NULL, stolen) is merged into the record. Returns 0 or -EIO (the
 * journal refused: nothing changed, except that a move to weight 0 still
 * happens, since safety beats bookkeeping). */
static int decide(rollout_ctl *c, int64_t now, const char *kind, const char *verdict,
                  const char *action, json_t *detail, const rj_state *next, const event *ev,
                  size_t nev)
{
    rj_state n = *next;
    n.updated_ms = now;
    bool weight_changed = n.weight != c->st.weight || (n.state != c->st.state &&
                                                       c->st.state == ROLLOUT_IDLE);
    json_t *rec = detail ? detail : json_object();
    char iso[40];
    rj_iso_time(now, iso, sizeof iso);
    json_object_set_new(rec, "time", json_string(iso));
    json_object_set_new(rec, "time_ms", json_integer(now));
    json_object_set_new(rec, "kind", json_string(kind));
    json_object_set_new(rec, "verdict", json_string(verdict));
    json_object_set_new(rec, "action", json_string(action));
    json_object_set_new(rec, "run", json_integer(n.run));
    json_object_set_new(rec, "step", json_integer(n.step + 1));
    json_object_set_new(rec, "state", json_string(rollout_state_name((rollout_state)n.state)));
    json_object_set_new(rec, "weight_before", json_real(c->st.weight));
    json_object_set_new(rec, "weight_after", json_real(n.weight));
    json_object_set_new(rec, "failures", json_integer(n.failures));
    json_object_set_new(rec, "errors", json_integer(n.errors));
    if (n.deadline_ms) {
        rj_iso_time(n.deadline_ms, iso, sizeof iso);
        json_object_set_new(rec, "deadline", json_string(iso));
    }
    /* a record or payload jansson cannot encode (invalid UTF-8 slipped in)
     * fails the whole transaction: never a row with a NULL text */
    char *rec_s = json_dumps(rec, JSON_COMPACT);
    int64_t seq = 0;
    int rc = rec_s ? rj_begin(c->j) : -EINVAL;
    bool began = rc == 0;
    if (rc == 0)
        rc = rj_add_decision(c->j, now, &n, kind, verdict, action, rec_s, &seq);
    if (rc == 0 && weight_changed)
        rc = rj_add_weight(c->j, now, n.run, n.weight, action, seq);
    if (rc == 0)
        rc = rj_put_state(c->j, &n);
    json_object_set_new(rec, "seq", json_integer(seq));
    for (size_t i = 0; rc == 0 && i < nev; i++) {
        char id[96];
        rt_fmt(id, sizeof id, "%lld-%lld-%s", (long long)n.run, (long long)seq, ev[i].name);
        json_t *p = json_pack("{s:s,s:s,s:s,s:o,s:O}", "text", ev[i].text, "event", ev[i].name,
                              "event_id", id, "rollout", rollout_json(c, &n), "decision", rec);
        char *ps = p ? json_dumps(p, JSON_COMPACT) : NULL;
        if (!ps) {
            cu_error("rollout: cannot encode the '%s' notification as JSON", ev[i].name);
            rc = -EINVAL;
        }
        unsigned bit = 0;
        while (bit < ROLLOUT_NEVENTS && strcmp(rollout_event_names[bit], ev[i].name) != 0)
            bit++;
        for (size_t r = 0; rc == 0 && ps && r < c->plan->nreceivers; r++)
            if (bit == ROLLOUT_NEVENTS || (c->plan->receivers[r].events & (1u << bit)))
                rc = rj_outbox_add(c->j, c->plan->receivers[r].key, seq, ev[i].name, ps, now);
        free(ps);
        json_decref(p);
    }
    if (rc == 0)
        rc = rj_commit(c->j);
    free(rec_s);
    json_decref(rec);
    if (rc < 0) {
        if (began)
            rj_rollback(c->j);
        if (!rec_s)
            cu_error("rollout: cannot encode the decision '%s' as JSON", action);
        if (!c->journal_failing)
            cu_error("rollout: cannot journal the decision '%s' (logged once until the journal "
                     "takes a decision again; analyses go on in memory)", action);
        c->journal_failing = true;
        if (n.weight == 0 && c->st.weight != 0) { /* still get traffic off the new colour */
            cu_error("rollout: %s to 0%% without a journal record: %s", c->plan->to, action);
            c->st = n;
            act(c);
        }
        return -EIO;
    }
    if (c->journal_failing)
        cu_info("rollout: the journal takes decisions again ('%s')", action);
    c->journal_failing = false;
    c->st = n;
    c->decisions++;
    c->pending_seq = seq;
    act(c);
    if (c->notify)
        rn_pump(c->notify);
    return 0;
}

/* ---- reading windows ------------------------------------------------------------ */
static void read_both(rollout_ctl *c, uint64_t seconds, rollout_window *w)
{
    hist_reset(&c->s_new.latency_ms);
    hist_reset(&c->s_old.latency_ms);
    c->s_new.requests = c->s_new.errors_5xx = c->s_new.transport_errors = 0;
    c->s_old.requests = c->s_old.errors_5xx = c->s_old.transport_errors = 0;
    c->s_new.seconds = c->s_old.seconds = 0;
    memset(w, 0, sizeof *w);
    w->new_err = c->cfg.ops->read_window(c->cfg.target_ctx, 1, seconds, &c->s_new);
    w->old_err = c->cfg.ops->read_window(c->cfg.target_ctx, 0, seconds, &c->s_old);
    w->new_color = &c->s_new;
    w->old_color = &c->s_old;
    w->new_name = c->plan->to;
    w->old_name = c->plan->from;
    w->old_has_traffic = c->st.weight < 100;
}

/* Whole seconds of the window, clipped to the time in the step and rounded
 * down (never up: half a second of the previous step must not vouch for
 * this one); at least 1 (an analysis waits for that, see rollout_tick). */
static uint64_t window_seconds(const rollout_ctl *c, int64_t now, int64_t window_ms)
{
    int64_t since = now - c->st.step_started_ms;
    int64_t ms = CU_MIN(window_ms, since);
    return ms < 1000 ? 1 : (uint64_t)(ms / 1000);
}

/* ---- transitions ------------------------------------------------------------------- */
static void enter_step(const rollout_ctl *c, rj_state *n, int step, int64_t now)
{
    n->step = step;
    n->weight = c->plan->steps[step].weight;
    n->step_started_ms = now;
    n->deadline_ms = now + c->plan->steps[step].hold_ms;
    n->next_analysis_ms = now + c->plan->interval_ms;
    n->last_analysis_ms = 0;
    n->awaiting_approval = false;
    n->hold_notified = false;
}

static void end_run(rj_state *n, int state, double weight)
{
    n->state = state;
    n->weight = weight;
    n->deadline_ms = 0;
    n->next_analysis_ms = 0;
    n->awaiting_approval = false;
}

/* Leaves the current step: to the next one, or promotion after the last. */
static int advance(rollout_ctl *c, int64_t now, const char *kind, const char *verdict,
                   json_t *detail, const char *why)
{
    rj_state n = c->st;
    event ev[2];
    size_t nev = 0;
    char action[256];
    const rollout_plan *p = c->plan;
    if ((size_t)c->st.step + 1 >= p->nsteps) {
        end_run(&n, ROLLOUT_PROMOTED, 100);
        rt_fmt(action, sizeof action, "promote: %s to 100%%", p->to);
        ev[nev].name = "promoted";
        rt_fmt(ev[nev++].text, sizeof ev[0].text, "cutover %s->%s: promoted, %s takes 100%% of "
                 "traffic (%s)", p->from, p->to, p->to, why);
    } else {
        enter_step(c, &n, c->st.step + 1, now);
        char iso[40];
        rj_iso_time(n.deadline_ms, iso, sizeof iso);
        rt_fmt(action, sizeof action, "advance to step %d: %s to %g%%, hold until %s",
                 n.step + 1, p->to, n.weight, iso);
        ev[nev].name = "step";
        rt_fmt(ev[nev++].text, sizeof ev[0].text, "cutover %s->%s: step %d of %zu, %s at %g%% "
                 "until %s (%s)", p->from, p->to, n.step + 1, p->nsteps, p->to, n.weight, iso, why);
    }
    if (detail)
        json_object_set_new(detail, "reason", json_string(why));
    return decide(c, now, kind, verdict, action, detail, &n, ev, nev);
}

static int rollback(rollout_ctl *c, int64_t now, const char *kind, const char *verdict,
                    json_t *detail, const char *why)
{
    json_object_set_new(detail, "reason", json_string(why));
    rj_state n = c->st;
    end_run(&n, ROLLOUT_ROLLED_BACK, 0);
    char action[256];
    rt_fmt(action, sizeof action, "rollback: %s to 0%%", c->plan->to);
    event ev = {.name = "rollback"};
    rt_fmt(ev.text, sizeof ev.text, "cutover %s->%s: ROLLED BACK at step %d, %s to 0%%, %s "
             "takes all traffic. Reason: %s", c->plan->from, c->plan->to, c->st.step + 1,
             c->plan->to, c->plan->from, why);
    return decide(c, now, kind, verdict, action, detail, &n, &ev, 1);
}

static json_t *analysis_detail(rj_analysis *a, const char *which)
{
    json_t *d = json_object();
    json_object_set_new(d, which, a->gates);
    json_object_set_new(d, "inputs", a->inputs);
    json_object_set_new(d, "summary", json_string(a->summary));
    a->gates = a->inputs = NULL;
    return d;
}

/* Returns true when a tripwire fired (and the rollback was decided). The
 * first is always armed while the new colour has weight: no healthy
 * server left in it (every one failed its health checks or was ejected
 * after consecutive failures). Its share then goes to the old colour, so
 * the error tripwires, which judge the new colour's own requests, would
 * see too few of them to fire and the rollout would hold at a weight
 * nobody is served by; it rolls back instead. */
static bool check_tripwires(rollout_ctl *c, int64_t now)
{
    const rollout_plan *p = c->plan;
    if (c->st.weight <= 0)
        return false;
    if (c->cfg.ops->healthy && c->cfg.ops->healthy(c->cfg.target_ctx, 1) == 0) {
        char why[256];
        rt_fmt(why, sizeof why, "tripwire: %s has no healthy server (all failed their health "
               "checks or were ejected)", p->to);
        json_t *d = json_object();
        json_object_set_new(d, "health", json_string(why + strlen("tripwire: ")));
        rollback(c, now, "tripwire", "FAIL", d, why);
        return true;
    }
    if (!p->ntripwires)
        return false;
    rollout_window w;
    uint64_t secs = window_seconds(c, now, p->tripwire_window_ms);
    read_both(c, secs, &w);
    w.min_requests = p->tripwire_min_requests;
    w.require_old = false;
    rj_analysis a;
    rj_analyse(p->tripwires, p->ntripwires, &w, (double)secs, true, &a);
    if (a.verdict != ROLLOUT_FAIL) {
        rj_analysis_free(&a);
        return false;
    }
    char why[600 + 512];
    rt_fmt(why, sizeof why, "tripwire %s", a.summary);
    rollback(c, now, "tripwire", "FAIL", analysis_detail(&a, "tripwires"), why);
    return true;
}

/* An analysis whose decision the journal refused still happened: keep its
 * counters and the schedule in memory, so failures add up toward the limit
 * (whose rollback to weight 0 happens even unjournaled) and the next
 * analysis waits an interval instead of re-running at every tick. */
static void keep_in_memory(rollout_ctl *c, const rj_state *n)
{
    c->st.failures = n->failures;
    c->st.errors = n->errors;
    c->st.last_analysis_ms = n->last_analysis_ms;
    c->st.next_analysis_ms = n->next_analysis_ms;
}

static void analyse(rollout_ctl *c, int64_t now)
{
    const rollout_plan *p = c->plan;
    rollout_window w;
    uint64_t secs = window_seconds(c, now, p->window_ms);
    read_both(c, secs, &w);
    w.min_requests = p->min_requests;
    w.require_old = true;
    w.growing = p->window_ms == ROLLOUT_WINDOW_STEP;
    rj_analysis a;
    rj_analyse(p->gates, p->ngates, &w, (double)secs, false, &a);
    rj_state n = c->st;
    n.last_analysis_ms = now;
    n.next_analysis_ms = now + p->interval_ms;
    const char *verdict = rollout_verdict_name(a.verdict);
    char action[800], why[800];
    switch (a.verdict) {
    case ROLLOUT_FAIL: n.failures++; n.errors = 0; break;
    case ROLLOUT_ERROR: n.errors++; break;
    case ROLLOUT_PASS: n.errors = 0; break;
    default: break;
    }
    if (n.failures > p->failure_limit) {
        rt_fmt(why, sizeof why, "%u failed analyses (failure_limit %u); last: %s", n.failures,
                 p->failure_limit, a.summary);
        c->st.failures = n.failures; /* the record shows the count that tripped */
        c->st.errors = n.errors;
        c->st.last_analysis_ms = now;
        rollback(c, now, "analysis", verdict, analysis_detail(&a, "gates"), why);
        return;
    }
    if (n.errors > p->error_limit) {
        rt_fmt(why, sizeof why, "%u analyses in a row could not measure (error_limit %u); "
                 "last: %s", n.errors, p->error_limit, a.summary);
        c->st.failures = n.failures;
        c->st.errors = n.errors;
        c->st.last_analysis_ms = now;
        rollback(c, now, "analysis", verdict, analysis_detail(&a, "gates"), why);
        return;
    }
    event ev[1];
    size_t nev = 0;
    n.awaiting_approval = false; /* set again below if this analysis passes */
    bool hold_over = now >= c->st.deadline_ms;
    if (a.verdict == ROLLOUT_PASS && hold_over) {
        const rollout_step *s = &p->steps[c->st.step];
        if (s->approve) {
            /* the gates keep being judged while a person decides: approval
             * is offered only while the last analysis passed */
            rt_fmt(action, sizeof action, "wait for approval to leave step %d", n.step + 1);
            if (!c->st.awaiting_approval) {
                ev[nev].name = "approval";
                rt_fmt(ev[nev++].text, sizeof ev[0].text, "cutover %s->%s: step %d (%s at "
                         "%g%%) passed its gates and waits for approval: cutover rollout approve",
                         p->from, p->to, n.step + 1, p->to, n.weight);
            }
            n.awaiting_approval = true;
            if (decide(c, now, "analysis", verdict, action, analysis_detail(&a, "gates"), &n, ev,
                       nev) < 0)
                keep_in_memory(c, &n);
            return;
        }
        c->st.last_analysis_ms = now;
        c->st.next_analysis_ms = n.next_analysis_ms;
        c->st.errors = n.errors;
        advance(c, now, "analysis", verdict, analysis_detail(&a, "gates"), a.summary);
        return;
    }
    if (a.verdict == ROLLOUT_HOLD) {
        rt_fmt(action, sizeof action, "hold for data: %s", a.summary);
        if (!n.hold_notified) {
            n.hold_notified = true;
            ev[nev].name = "hold";
            rt_fmt(ev[nev++].text, sizeof ev[0].text, "cutover %s->%s: step %d holds for data, "
                     "%s", p->from, p->to, n.step + 1, a.summary);
        }
    } else if (a.verdict == ROLLOUT_FAIL) {
        rt_fmt(action, sizeof action, "halt at %g%%: failure %u of %u tolerated: %s", n.weight,
                 n.failures, p->failure_limit, a.summary);
    } else if (a.verdict == ROLLOUT_ERROR) {
        rt_fmt(action, sizeof action, "halt at %g%%: could not measure (%u in a row, %u "
                 "tolerated): %s", n.weight, n.errors, p->error_limit, a.summary);
    } else {
        char iso[40];
        rj_iso_time(c->st.deadline_ms, iso, sizeof iso);
        rt_fmt(action, sizeof action, "continue: hold at %g%% until %s", n.weight, iso);
    }
    if (decide(c, now, "analysis", verdict, action, analysis_detail(&a, "gates"), &n, ev, nev) < 0)
        keep_in_memory(c, &n);
}

static void record_minute(rollout_ctl *c, int64_t now)
{
    int64_t minute = now - now % 60000;
    if (!c->last_minute_ms) {
        c->last_minute_ms = minute;
        return;
    }
    if (minute <= c->last_minute_ms)
        return;
    c->last_minute_ms = minute;
    rollout_window w;
    read_both(c, 60, &w);
    if (rj_begin(c->j) < 0)
        return;
    int rc = 0;
    if (w.new_err == 0 && c->s_new.requests)
        rc = rj_minute_put(c->j, minute - 60000, c->plan->to, &c->s_new);
    if (rc == 0 && w.old_err == 0 && c->s_old.requests)
        rc = rj_minute_put(c->j, minute - 60000, c->plan->from, &c->s_old);
    if (rc == 0)
        rc = rj_commit(c->j); /* one fsync a minute for both colours */
    if (rc < 0)
        rj_rollback(c->j);
}

void rollout_tick(rollout_ctl *c)
{
    int64_t now = rollout__now(c);
    if (!c->weight_applied)
        act(c);
    if (c->st.state == ROLLOUT_PROGRESSING || c->st.state == ROLLOUT_PAUSED) {
        if (check_tripwires(c, now))
            goto out;
    }
    if (c->st.state == ROLLOUT_PROGRESSING) {
        /* no analysis before the step has a full second of its own data */
        bool due = now >= c->st.step_started_ms + 1000 &&
                   (now >= c->st.next_analysis_ms ||
                    (now >= c->st.deadline_ms && c->st.last_analysis_ms < c->st.deadline_ms));
        if (due)
            analyse(c, now);
    }
    record_minute(c, now);
out:
    if (c->notify)
        rn_pump(c->notify);
}

/* ---- commands ------------------------------------------------------------------- */
static int refuse(char err[CU_ERRLEN], int code, const char *fmt, ...) CU_PRINTF(3, 4);
static int refuse(char err[CU_ERRLEN], int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, CU_ERRLEN, fmt, ap);
    va_end(ap);
    return code;
}

/* {"by": ...}; a name that is not valid UTF-8 is cleaned ('?' per bad
 * byte) rather than dropped, so the record always says who asked. */
static json_t *by_detail(const char *by)
{
    char *who = cu_strdup(by && by[0] ? by : "unknown");
    rt_utf8_clean(who);
    json_t *d = json_object();
    json_object_set_new(d, "by", json_string(who));
    free(who);
    return d;
}

/* `by` as it goes into texts: "unknown" when absent, cut at 128 bytes on a
 * character boundary, invalid UTF-8 bytes replaced (the C API may pass anything). */
static const char *who(const char *by, char *buf, size_t n)
{
    rt_fmt(buf, n, "%s", by && by[0] ? by : "unknown");
    rt_utf8_clean(buf);
    return buf;
}

static int journal_err(int rc, char err[CU_ERRLEN])
{
    if (rc < 0)
        rt_fmt(err, CU_ERRLEN, "the journal refused the decision (see the log)");
    return rc;
}

int rollout_start(rollout_ctl *c, const char *by, char err[CU_ERRLEN])
{
    char whobuf[128];
    by = who(by, whobuf, sizeof whobuf);
    int s = c->st.state;
    if (s == ROLLOUT_PROGRESSING || s == ROLLOUT_PAUSED)
        return refuse(err, -EALREADY, "a rollout is already %s (step %d)", rollout_state_name(s),
                      c->st.step + 1);
    if (s == ROLLOUT_PROMOTED)
        return refuse(err, -EINVAL, "already promoted: %s has all traffic", c->plan->to);
    int64_t now = rollout__now(c);
    rj_state n = c->st;
    n.run++;
    n.state = ROLLOUT_PROGRESSING;
    n.failures = n.errors = 0;
    enter_step(c, &n, 0, now);
    char action[256], iso[40];
    rj_iso_time(n.deadline_ms, iso, sizeof iso);
    rt_fmt(action, sizeof action, "start run %lld: %s to %g%%, hold until %s", (long long)n.run,
             c->plan->to, n.weight, iso);
    event ev = {.name = "start"};
    rt_fmt(ev.text, sizeof ev.text, "cutover %s->%s: rollout started by %s, step 1 of %zu: %s "
             "at %g%% until %s", c->plan->from, c->plan->to, by, c->plan->nsteps,
             c->plan->to, n.weight, iso);
    return journal_err(decide(c, now, "command", "-", action, by_detail(by), &n, &ev, 1), err);
}

int rollout_pause(rollout_ctl *c, const char *by, char err[CU_ERRLEN])
{
    char whobuf[128];
    by = who(by, whobuf, sizeof whobuf);
    if (c->st.state != ROLLOUT_PROGRESSING)
        return refuse(err, c->st.state == ROLLOUT_PAUSED ? -EALREADY : -EINVAL,
                      "cannot pause: the rollout is %s", rollout_state_name(c->st.state));
    rj_state n = c->st;
    n.state = ROLLOUT_PAUSED;
    event ev = {.name = "pause"};
    rt_fmt(ev.text, sizeof ev.text, "cutover %s->%s: paused by %s at step %d (%s %g%%); "
             "tripwires stay armed", c->plan->from, c->plan->to, by, n.step + 1,
             c->plan->to, n.weight);
    return journal_err(decide(c, rollout__now(c), "command", "-", "pause", by_detail(by), &n,
                              &ev, 1), err);
}

int rollout_resume(rollout_ctl *c, const char *by, char err[CU_ERRLEN])
{
    char whobuf[128];
    by = who(by, whobuf, sizeof whobuf);
    if (c->st.state != ROLLOUT_PAUSED)
        return refuse(err, -EINVAL, "cannot resume: the rollout is %s, not paused",
                      rollout_state_name(c->st.state));
    rj_state n = c->st;
    n.state = ROLLOUT_PROGRESSING;
    event ev = {.name = "resume"};
    rt_fmt(ev.text, sizeof ev.text, "cutover %s->%s: resumed by %s at step %d", c->plan->from,
             c->plan->to, by, n.step + 1);
    return journal_err(decide(c, rollout__now(c), "command", "-", "resume", by_detail(by), &n,
                              &ev, 1), err);
}

int rollout_approve(rollout_ctl *c, const char *by, char err[CU_ERRLEN])
{
    char whobuf[128];
    by = who(by, whobuf, sizeof whobuf);
    if (c->st.state != ROLLOUT_PROGRESSING || !c->st.awaiting_approval) {
        if (c->st.state == ROLLOUT_PROGRESSING && c->plan->steps[c->st.step].approve)
            return refuse(err, -EINVAL, "step %d waits for approval only once its hold is over "
                          "and its last analysis passed", c->st.step + 1);
        return refuse(err, -EINVAL, "nothing waits for approval (the rollout is %s)",
                      rollout_state_name(c->st.state));
    }
    char why[128];
    rt_fmt(why, sizeof why, "approved by %s", by);
    return journal_err(advance(c, rollout__now(c), "command", "-", by_detail(by), why), err);
}

int rollout_promote(rollout_ctl *c, const char *by, char err[CU_ERRLEN])
{
    char whobuf[128];
    by = who(by, whobuf, sizeof whobuf);
    if (c->st.state != ROLLOUT_PROGRESSING && c->st.state != ROLLOUT_PAUSED)
        return refuse(err, -EINVAL, "cannot promote: the rollout is %s",
                      rollout_state_name(c->st.state));
    rj_state n = c->st;
    end_run(&n, ROLLOUT_PROMOTED, 100);
    char action[128];
    rt_fmt(action, sizeof action, "promote: %s to 100%% (by command)", c->plan->to);
    event ev = {.name = "promoted"};
    rt_fmt(ev.text, sizeof ev.text, "cutover %s->%s: promoted by %s at step %d, %s takes 100%% "
             "of traffic", c->plan->from, c->plan->to, by, c->st.step + 1,
             c->plan->to);
    return journal_err(decide(c, rollout__now(c), "command", "-", action, by_detail(by), &n, &ev,
                              1), err);
}

int rollout_abort(rollout_ctl *c, const char *by, char err[CU_ERRLEN])
{
    char whobuf[128];
    by = who(by, whobuf, sizeof whobuf);
    if (c->st.state != ROLLOUT_PROGRESSING && c->st.state != ROLLOUT_PAUSED)
        return refuse(err, -EINVAL, "cannot abort: the rollout is %s",
                      rollout_state_name(c->st.state));
    rj_state n = c->st;
    end_run(&n, ROLLOUT_ABORTED, 0);
    char action[128];
    rt_fmt(action, sizeof action, "abort: %s to 0%%", c->plan->to);
    event ev = {.name = "abort"};
    rt_fmt(ev.text, sizeof ev.text, "cutover %s->%s: aborted by %s at step %d, %s takes all "
             "traffic", c->plan->from, c->plan->to, by, c->st.step + 1,
             c->plan->from);
    return journal_err(decide(c, rollout__now(c), "command", "-", action, by_detail(by), &n, &ev,
                              1), err);
}

/* ---- life cycle ------------------------------------------------------------------- */
static void on_timer(uv_timer_t *t)
{
    rollout_tick(t->data);
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

int rollout_open(rollout_ctl **out, const rollout_config *cfg, char err[CU_ERRLEN])
{
    *out = NULL;
    if (!cfg->plan || !cfg->ops || !cfg->ops->set_weight || !cfg->ops->read_window ||
        !cfg->journal_path || (!cfg->loop && !cfg->manual_ticks)) {
        rt_fmt(err, CU_ERRLEN, "rollout: plan, journal path, target ops and a loop are required");
        return -EINVAL;
    }
    rollout_ctl *c = cu_calloc(1, sizeof *c);
    c->cfg = *cfg;
    c->plan = cfg->plan;
    hist_init(&c->s_new.latency_ms);
    hist_init(&c->s_old.latency_ms);
    int rc = rj_open(&c->j, cfg->journal_path, err);
    if (rc < 0)
        goto fail;
    char why[CU_ERRLEN];
    rc = rj_load_state(c->j, &c->st, why);
    if (rc < 0) {
        rt_fmt(err, CU_ERRLEN, "%s: %s; refusing to start the controller (move the file "
               "aside to start afresh)", cfg->journal_path, why);
        goto fail;
    }
    if (rc == 0) {
        memset(&c->st, 0, sizeof c->st);
        c->st.step = -1;
    }
    if (c->st.state != ROLLOUT_IDLE && (size_t)c->st.step >= c->plan->nsteps) {
        rt_fmt(err, CU_ERRLEN, "%s: the journal is at step %d but the plan has %zu steps; "
                 "finish or abort that rollout with the plan it started with", cfg->journal_path,
                 c->st.step + 1, c->plan->nsteps);
        rc = -EINVAL;
        goto fail;
    }
    if ((c->st.state == ROLLOUT_PROGRESSING || c->st.state == ROLLOUT_PAUSED) &&
        c->st.weight != c->plan->steps[c->st.step].weight)
        cu_warn("rollout: the journal has %s at %g%% for step %d but the plan now says %g%%; "
                "keeping %g%% until the step ends", c->plan->to, c->st.weight, c->st.step + 1,
                c->plan->steps[c->st.step].weight, c->st.weight);
    c->decisions = rj_decision_count(c->j);
    /* recovery: re-apply the journaled weight; decisions that never got to
     * act are acted now (not decided again) */
    int64_t seqs[64];
    size_t nun = 0;
    if ((rc = rj_unacted(c->j, seqs, CU_ARRAY_LEN(seqs), &nun)) < 0) {
        rt_fmt(err, CU_ERRLEN, "%s: cannot read the decisions to recover: %s", cfg->journal_path,
               sqlite3_errmsg(rj_db(c->j)));
        goto fail;
    }
    c->recovered = nun;
    c->pending_seq = nun ? seqs[nun - 1] : 0;
    c->weight_applied = false; /* forces set_weight: the target may have restarted too */
    act(c);
    if (c->st.state == ROLLOUT_IDLE && c->pending_seq)
        rj_mark_acted(c->j, c->pending_seq), c->pending_seq = 0;
    if (cfg->loop)
        c->notify = rn_new(cfg->loop, c->j, c->plan, cfg->clock, cfg->clock_ctx,
                           cfg->retry_base_ms > 0 ? cfg->retry_base_ms : 1000);
    if (!cfg->manual_ticks) {
        c->timer = cu_calloc(1, sizeof *c->timer);
        uv_timer_init(cfg->loop, c->timer);
        c->timer->data = c;
        uv_timer_start(c->timer, on_timer, ROLLOUT_TICK_MS, ROLLOUT_TICK_MS);
    }
    if (c->notify)
        rn_pump(c->notify);
    *out = c;
    return 0;
fail:
    rj_close(c->j);
    hist_free(&c->s_new.latency_ms);
    hist_free(&c->s_old.latency_ms);
    free(c);
    return rc < 0 ? rc : -EIO;
}

void rollout_close(rollout_ctl *c)
{
    if (!c)
        return;
    if (c->timer) {
        uv_timer_stop(c->timer);
        uv_close((uv_handle_t *)c->timer, free_handle);
    }
    if (c->notify)
        rn_close(c->notify);
    rj_close(c->j);
    hist_free(&c->s_new.latency_ms);
    hist_free(&c->s_old.latency_ms);
    free(c);
}

void rollout_get_info(const rollout_ctl *c, rollout_info *out)
{
    memset(out, 0, sizeof *out);
    out->state = (rollout_state)c->st.state;
    out->run = c->st.run;
    out->step = c->st.step;
    out->weight = c->st.weight;
    out->deadline_ms = c->st.deadline_ms;
    out->step_started_ms = c->st.step_started_ms;
    out->next_analysis_ms = c->st.next_analysis_ms;
    out->awaiting_approval = c->st.awaiting_approval;
    out->failures = c->st.failures;
    out->errors = c->st.errors;
    out->decisions = c->decisions;
    out->recovered = c->recovered;
    out->weight_applied = c->weight_applied;
}
