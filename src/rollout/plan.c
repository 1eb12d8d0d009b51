/* The rollout plan: the `rollout:` section of the serve config, parsed and
 * checked once at load time. Every error names file:line:column; an unknown
 * key anywhere under `rollout:` is an error naming the nearest valid key;
 * `analysis.gates`, `analysis.rollback_when` and each step's `hold` are
 * required (an explicit `[]` opts out of gates or tripwires, with a
 * warning); gate strings are compiled here. So a typo fails the load
 * instead of silently meaning "no gate", "no tripwire" or "no hold".
 * A parsed plan is immutable and may be read from any thread.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "rollout/internal.h"

static const char *const plan_keys[] = {"from", "to", "steps", "analysis", "notify"};
static const char *const step_keys[] = {"weight", "hold", "approve"};
static const char *const analysis_keys[] = {"interval", "window", "min_requests", "gates",
                                            "rollback_when", "tripwire_window",
                                            "tripwire_min_requests", "failure_limit",
                                            "error_limit"};
static const char *const notify_keys[] = {"webhook", "exec", "timeout", "ca", "events"};

const char *const rollout_event_names[ROLLOUT_NEVENTS] = {
    "start", "step", "hold", "approval", "rollback", "promoted", "abort", "pause", "resume"};

/* Unknown keys are errors, not warnings: a typo in a plan must never
 * silently mean no gate, no tripwire, no hold or no approval. The message
 * names the nearest valid key, or the level a known key belongs to (a
 * `rollback_when` indented one level too little lands in `rollout:`). */
static int check_keys(const conf_node *map, const char *const *allowed, size_t nallowed,
                      const char *where, char err[CU_ERRLEN])
{
    static const struct { const char *const *keys; size_t n; const char *where; } levels[] = {
        {plan_keys, CU_ARRAY_LEN(plan_keys), "rollout"},
        {step_keys, CU_ARRAY_LEN(step_keys), "a step"},
        {analysis_keys, CU_ARRAY_LEN(analysis_keys), "rollout.analysis"},
        {notify_keys, CU_ARRAY_LEN(notify_keys), "a rollout.notify item"},
    };
    for (size_t i = 0; i < map->n; i++) {
        const conf_node *kn = map->keys[i];
        const char *k = kn->str ? kn->str : "";
        bool ok = false;
        for (size_t j = 0; j < nallowed && !ok; j++)
            ok = strcmp(k, allowed[j]) == 0;
        if (ok)
            continue;
        const char *near = cu_nearest(k, allowed, nallowed);
        const char *belongs = NULL;
        for (size_t l = 0; l < CU_ARRAY_LEN(levels) && !belongs && !near; l++)
            for (size_t j = 0; j < levels[l].n && !belongs; j++)
                if (strcmp(k, levels[l].keys[j]) == 0)
                    belongs = levels[l].where;
        if (near)
            conf_errf(err, kn, "unknown key '%s' in %s (did you mean '%s'?)", k, where, near);
        else if (belongs)
            conf_errf(err, kn, "'%s' does not belong in %s but in %s (check its indentation)", k,
                      where, belongs);
        else
            conf_errf(err, kn, "unknown key '%s' in %s", k, where);
        return -EINVAL;
    }
    return 0;
}

/* A duration (conf_duration_ms), named `what` in the error. */
static int duration_ms(const conf_node *n, int64_t *out, const char *what, char err[CU_ERRLEN])
{
    uint64_t ms;
    if (!conf_duration_ms(n, &ms)) {
        conf_errf(err, n, "%s must be a duration such as 500ms, 30s, 1m, 48h or 7d (got '%s')", what,
                  n->str ? n->str : conf_type_name(n->type));
        return -EINVAL;
    }
    *out = (int64_t)ms;
    return 0;
}

static int count_of(const conf_node *n, uint64_t *out, const char *what, char err[CU_ERRLEN])
{
    if (n->type != CONF_INT || n->i < 0) {
        conf_errf(err, n, "%s must be a whole number >= 0 (got '%s')", what,
                  n->str ? n->str : conf_type_name(n->type));
        return -EINVAL;
    }
    *out = (uint64_t)n->i;
    return 0;
}

static int colour(const conf_node *n, char **out, const char *what, char err[CU_ERRLEN])
{
    if (!n || n->type != CONF_STRING || !n->str[0]) {
        if (n)
            conf_errf(err, n, "rollout.%s must name a colour (blue, green, ...)", what);
        else
            snprintf(err, CU_ERRLEN, "rollout: '%s' is required (the %s colour)", what,
                     strcmp(what, "from") == 0 ? "old" : "new");
        return -EINVAL;
    }
    *out = cu_strdup(n->str);
    return 0;
}

static int parse_steps(rollout_plan *p, const conf_node *n, const conf_node *parent,
                       char err[CU_ERRLEN])
{
    if (!n) {
        conf_errf(err, parent, "rollout: 'steps' is required, such as [ { weight: 10, hold: 1h }, "
                               "{ weight: 100, hold: 1h } ]");
        return -EINVAL;
    }
    if (n->type != CONF_SEQ || n->n == 0) {
        conf_errf(err, n, "rollout.steps must be a non-empty list of { weight, hold }");
        return -EINVAL;
    }
    p->steps = cu_calloc(n->n, sizeof *p->steps);
    p->nsteps = n->n;
    for (size_t i = 0; i < n->n; i++) {
        const conf_node *s = n->items[i];
        rollout_step *st = &p->steps[i];
        if (s->type != CONF_MAP) {
            conf_errf(err, s, "a step must be a map such as { weight: 10, hold: 1h }");
            return -EINVAL;
        }
        if (check_keys(s, step_keys, CU_ARRAY_LEN(step_keys), "a step", err) < 0)
            return -EINVAL;
        const conf_node *w = conf_get(s, "weight"), *h = conf_get(s, "hold"),
                        *a = conf_get(s, "approve");
        if (!w) {
            conf_errf(err, s, "step %zu needs a weight (percent of traffic to '%s')", i + 1, p->to);
            return -EINVAL;
        }
        double wv;
        if (!conf_number(w, &wv) || w->type == CONF_STRING || !(wv > 0 && wv <= 100)) {
            conf_errf(err, w, "weight must be a number in (0, 100] (got '%s')",
                      w->str ? w->str : conf_type_name(w->type));
            return -EINVAL;
        }
        if (i > 0 && wv <= p->steps[i - 1].weight) {
            conf_errf(err, w, "weights must increase from step to step (%g after %g)", wv,
                      p->steps[i - 1].weight);
            return -EINVAL;
        }
        st->weight = wv;
        if (!h) {
            conf_errf(err, s, "step %zu needs a hold (how long to stay at this weight, such as "
                              "1h; 'hold: 0s' to leave as soon as the gates pass)", i + 1);
            return -EINVAL;
        }
        if (duration_ms(h, &st->hold_ms, "hold", err) < 0)
            return -EINVAL;
        if (a) {
            if (a->type != CONF_BOOL) {
                conf_errf(err, a, "approve must be true or false");
                return -EINVAL;
            }
            st->approve = a->b;
        }
    }
    return 0;
}

/* `what` is required: absent or empty (`gates:` with nothing after it) is an
 * error; an explicit `[]` opts out, with a warning. */
static int parse_exprs(const conf_node *n, const conf_node *parent, rollout_expr ***out,
                       size_t *nout, const char *what, const char *example, char err[CU_ERRLEN])
{
    if (!n) {
        conf_errf(err, parent, "rollout.analysis.%s is required, such as %s: [ \"%s\" ] (an "
                  "explicit [] runs without any)", what, what, example);
        return -EINVAL;
    }
    if (n->type == CONF_NULL) {
        conf_errf(err, n, "rollout.analysis.%s is empty: list them, such as [ \"%s\" ], or write "
                  "[] to run without any", what, example);
        return -EINVAL;
    }
    if (n->type == CONF_SEQ && n->n == 0)
        conf_warnf(n, "rollout.analysis.%s is [], so %s", what,
                   strcmp(what, "gates") == 0 ? "no gate judges the steps: each step advances "
                   "when its hold ends" : "no tripwire rolls back between analyses");
    if (n->type == CONF_STRING) { /* one gate on its own */
        *out = cu_calloc(1, sizeof **out);
        if (!((*out)[0] = rollout_expr_parse_node(n, err)))
            return -EINVAL;
        *nout = 1;
        return 0;
    }
    if (n->type != CONF_SEQ) {
        conf_errf(err, n, "%s must be a list of strings such as [ \"p95 < 500ms\" ]", what);
        return -EINVAL;
    }
    *out = cu_calloc(n->n ? n->n : 1, sizeof **out);
    for (size_t i = 0; i < n->n; i++) {
        if (!((*out)[i] = rollout_expr_parse_node(n->items[i], err)))
            return -EINVAL;
        *nout = i + 1;
    }
    return 0;
}

static int parse_analysis(rollout_plan *p, const conf_node *a, const conf_node *parent,
                          char err[CU_ERRLEN])
{
    p->interval_ms = 60000;
    p->min_requests = 100;
    p->tripwire_window_ms = 10000;
    p->tripwire_min_requests = 20;
    p->failure_limit = 2;
    p->error_limit = 3;
    if (!a || a->type != CONF_MAP) {
        if (a)
            conf_errf(err, a, "rollout.analysis must be a map { interval, min_requests, gates, "
                              "rollback_when, ... }");
        else
            conf_errf(err, parent, "rollout: 'analysis' is required, with its gates and "
                                   "rollback_when (explicit [] to run without them)");
        return -EINVAL;
    }
    if (check_keys(a, analysis_keys, CU_ARRAY_LEN(analysis_keys), "rollout.analysis", err) < 0)
        return -EINVAL;
    const conf_node *n;
    uint64_t u;
    if ((n = conf_get(a, "interval")) && duration_ms(n, &p->interval_ms, "interval", err) < 0)
        return -EINVAL;
    if (n && p->interval_ms < 1000) {
        conf_errf(err, n, "the analysis interval must be at least 1s");
        return -EINVAL;
    }
    if ((n = conf_get(a, "window")) && n->type == CONF_STRING && strcmp(n->str, "step") == 0) {
        p->window_ms = ROLLOUT_WINDOW_STEP;
    } else if (n) {
        if (duration_ms(n, &p->window_ms, "window", err) < 0)
            return -EINVAL;
        if (p->window_ms < 1000) {
            conf_errf(err, n, "the analysis window must be at least 1s");
            return -EINVAL;
        }
    }
    if ((n = conf_get(a, "min_requests")) && count_of(n, &p->min_requests, "min_requests", err) < 0)
        return -EINVAL;
    if ((n = conf_get(a, "tripwire_window"))) {
        if (duration_ms(n, &p->tripwire_window_ms, "tripwire_window", err) < 0)
            return -EINVAL;
        if (p->tripwire_window_ms < 1000) {
            conf_errf(err, n, "the tripwire window must be at least 1s");
            return -EINVAL;
        }
    }
    if ((n = conf_get(a, "tripwire_min_requests")) &&
        count_of(n, &p->tripwire_min_requests, "tripwire_min_requests", err) < 0)
        return -EINVAL;
    if ((n = conf_get(a, "failure_limit"))) {
        if (count_of(n, &u, "failure_limit", err) < 0)
            return -EINVAL;
        p->failure_limit = (unsigned)CU_MIN(u, 1000000u);
    }
    if ((n = conf_get(a, "error_limit"))) {
        if (count_of(n, &u, "error_limit", err) < 0)
            return -EINVAL;
        p->error_limit = (unsigned)CU_MIN(u, 1000000u);
    }
    if (parse_exprs(conf_get(a, "gates"), a, &p->gates, &p->ngates, "gates", "p95 < 500ms",
                    err) < 0)
        return -EINVAL;
    if (parse_exprs(conf_get(a, "rollback_when"), a, &p->tripwires, &p->ntripwires,
                    "rollback_when", "error_rate > 5%", err) < 0)
        return -EINVAL;
    if (!p->window_ms)
        p->window_ms = p->interval_ms;
    return 0;
}

static int parse_notify(rollout_plan *p, const conf_node *n, char err[CU_ERRLEN])
{
    if (!n || n->type == CONF_NULL)
        return 0;
    if (n->type != CONF_SEQ) {
        conf_errf(err, n, "rollout.notify must be a list such as [ { webhook: \"http://...\" } ]");
        return -EINVAL;
    }
    p->receivers = cu_calloc(n->n ? n->n : 1, sizeof *p->receivers);
    for (size_t i = 0; i < n->n; i++) {
        const conf_node *r = n->items[i];
        rollout_receiver *rc = &p->receivers[i];
        p->nreceivers = i + 1;
        rc->timeout_ms = 5000;
        if (r->type != CONF_MAP) {
            conf_errf(err, r, "a receiver must be { webhook: URL } or { exec: \"command\" }");
            return -EINVAL;
        }
        if (check_keys(r, notify_keys, CU_ARRAY_LEN(notify_keys), "a rollout.notify item",
                       err) < 0)
            return -EINVAL;
        const conf_node *w = conf_get(r, "webhook"), *x = conf_get(r, "exec"),
                        *t = conf_get(r, "timeout");
        if ((w != NULL) == (x != NULL)) {
            conf_errf(err, r, "a receiver needs exactly one of 'webhook' or 'exec'");
            return -EINVAL;
        }
        const conf_node *v = w ? w : x;
        if (v->type != CONF_STRING || !v->str[0]) {
            conf_errf(err, v, "%s must be a non-empty string", w ? "webhook" : "exec");
            return -EINVAL;
        }
        if (w) {
            http_url u;
            char uerr[CU_ERRLEN];
            if (http_url_parse(&u, w->str, uerr) < 0) {
                conf_errf(err, w, "webhook: %s", uerr);
                return -EINVAL;
            }
            http_url_free(&u);
            rc->webhook = cu_strdup(w->str);
            rc->key = cu_asprintf("webhook:%s", w->str);
        } else {
            rc->exec = cu_strdup(x->str);
            rc->key = cu_asprintf("exec:%s", x->str);
        }
        if (t && duration_ms(t, &rc->timeout_ms, "timeout", err) < 0)
            return -EINVAL;
        if (t && rc->timeout_ms <= 0) {
            conf_errf(err, t, "a receiver's timeout must be more than 0 (such as 5s): a hook "
                              "would be killed before it could answer");
            return -EINVAL;
        }
        rc->events = (1u << ROLLOUT_NEVENTS) - 1;
        const conf_node *evs = conf_get(r, "events");
        if (evs) {
            if (evs->type != CONF_SEQ || evs->n == 0) {
                conf_errf(err, evs, "events must be a list such as [ rollback, promoted ]");
                return -EINVAL;
            }
            rc->events = 0;
            for (size_t k = 0; k < evs->n; k++) {
                const conf_node *e = evs->items[k];
                size_t b = 0;
                while (e->type == CONF_STRING && b < ROLLOUT_NEVENTS &&
                       strcmp(e->str, rollout_event_names[b]) != 0)
                    b++;
                if (e->type != CONF_STRING || b == ROLLOUT_NEVENTS) {
                    const char *near = e->type == CONF_STRING
                                           ? cu_nearest(e->str, rollout_event_names, ROLLOUT_NEVENTS)
                                           : NULL;
                    conf_errf(err, e, "unknown event '%s'%s%s%s (events: start, step, hold, "
                              "approval, rollback, promoted, abort, pause, resume)",
                              e->str ? e->str : "?", near ? " (did you mean '" : "",
                              near ? near : "", near ? "'?)" : "");
                    return -EINVAL;
                }
                rc->events |= 1u << b;
            }
        }
        const conf_node *ca = conf_get(r, "ca");
        if (ca) {
            if (!w || ca->type != CONF_STRING || !ca->str[0]) {
                conf_errf(err, ca, "ca is a PEM file path, for https webhooks only");
                return -EINVAL;
            }
            rc->ca = cu_strdup(ca->str);
        }
        for (size_t k = 0; k < i; k++)
            if (strcmp(p->receivers[k].key, rc->key) == 0) {
                conf_errf(err, v, "the same receiver is listed twice");
                return -EINVAL;
            }
    }
    return 0;
}

int rollout_plan_parse(const conf_node *node, rollout_plan **out, char err[CU_ERRLEN])
{
    *out = NULL;
    err[0] = 0;
    if (!node || node->type != CONF_MAP) {
        if (node)
            conf_errf(err, node, "rollout must be a map { from, to, steps, analysis, notify }");
        else
            snprintf(err, CU_ERRLEN, "no rollout section");
        return -EINVAL;
    }
    rollout_plan *p = cu_calloc(1, sizeof *p);
    if (check_keys(node, plan_keys, CU_ARRAY_LEN(plan_keys), "rollout", err) < 0)
        goto fail;
    if (colour(conf_get(node, "from"), &p->from, "from", err) < 0 ||
        colour(conf_get(node, "to"), &p->to, "to", err) < 0)
        goto fail;
    if (strcmp(p->from, p->to) == 0) {
        conf_errf(err, conf_get(node, "to"), "rollout.to must differ from rollout.from ('%s')",
                  p->from);
        goto fail;
    }
    if (parse_steps(p, conf_get(node, "steps"), node, err) < 0 ||
        parse_analysis(p, conf_get(node, "analysis"), node, err) < 0 ||
        parse_notify(p, conf_get(node, "notify"), err) < 0)
        goto fail;
    *out = p;
    return 0;
fail:
    rollout_plan_free(p);
    return -EINVAL;
}

void rollout_plan_free(rollout_plan *p)
{
    if (!p)
        return;
    free(p->from);
    free(p->to);
    free(p->steps);
    for (size_t i = 0; i < p->ngates; i++)
        rollout_expr_free(p->gates[i]);
    free(p->gates);
    for (size_t i = 0; i < p->ntripwires; i++)
        rollout_expr_free(p->tripwires[i]);
    free(p->tripwires);
    for (size_t i = 0; i < p->nreceivers; i++) {
        free(p->receivers[i].webhook);
        free(p->receivers[i].exec);
        free(p->receivers[i].ca);
        free(p->receivers[i].key);
    }
    free(p->receivers);
    free(p);
}

int64_t rollout_plan_min_promote_ms(const rollout_plan *p)
{
    int64_t t = 0;
    for (size_t i = 0; i < p->nsteps; i++)
        /* no step is analysed before it has a second of its own data */
        t += CU_MAX(p->steps[i].hold_ms, 1000);
    return t;
}

int64_t rollout_plan_gate_rollback_ms(const rollout_plan *p)
{
    return p->interval_ms * ((int64_t)p->failure_limit + 1);
}

static void human(int64_t ms, char *buf, size_t n)
{
    if (ms % 86400000 == 0 && ms >= 86400000)
        snprintf(buf, n, "%lldd", (long long)(ms / 86400000));
    else if (ms % 3600000 == 0 && ms >= 3600000)
        snprintf(buf, n, "%lldh", (long long)(ms / 3600000));
    else if (ms % 60000 == 0 && ms >= 60000)
        snprintf(buf, n, "%lldm", (long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(buf, n, "%llds", (long long)(ms / 1000));
    else
        snprintf(buf, n, "%lldms", (long long)ms);
}

void rollout_plan_describe(const rollout_plan *p, cu_buf *out)
{
    char a[32], b[64];
    cu_buf_appendf(out, "rollout %s -> %s in %zu step%s\n", p->from, p->to, p->nsteps,
                   p->nsteps == 1 ? "" : "s");
    for (size_t i = 0; i < p->nsteps; i++) {
        human(p->steps[i].hold_ms, a, sizeof a);
        cu_buf_appendf(out, "  step %zu: %s %g%%, hold %s%s\n", i + 1, p->to, p->steps[i].weight, a,
                       p->steps[i].approve ? ", then wait for approval" : "");
    }
    human(p->interval_ms, a, sizeof a);
    if (p->window_ms == ROLLOUT_WINDOW_STEP)
        snprintf(b, sizeof b, "everything since the step began");
    else
        human(p->window_ms, b, sizeof b);
    cu_buf_appendf(out, "  analysis every %s over %s, at least %llu requests per colour\n", a, b,
                   (unsigned long long)p->min_requests);
    for (size_t i = 0; i < p->ngates; i++)
        cu_buf_appendf(out, "  gate: %s\n", rollout_expr_text(p->gates[i]));
    human(p->tripwire_window_ms, a, sizeof a);
    for (size_t i = 0; i < p->ntripwires; i++)
        cu_buf_appendf(out, "  rollback when: %s (over %s, checked five times a second)\n",
                       rollout_expr_text(p->tripwires[i]), a);
    human(rollout_plan_min_promote_ms(p), a, sizeof a);
    human(rollout_plan_gate_rollback_ms(p), b, sizeof b);
    cu_buf_appendf(out, "  shortest time to promote: %s (sum of holds)\n", a);
    cu_buf_appendf(out, "  time for failing gates to roll back: %s (interval x (failure_limit %u "
                        "+ 1)); tripwires: within 1s\n", b, p->failure_limit);
}
