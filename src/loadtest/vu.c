/* loadtest/vu.c: virtual users. A user is one arrival: it picks a weighted
 * scenario, gets its own variables (config.variables with one random pick
 * per list, $uuid, ...), its own keep-alive connection and cookie jar, and
 * runs the flow step by step; the first error ends it (counted as
 * errors.<code> and vusers.failed), as in Artillery.
 *
 * Users are recycled per worker (their buffers, timer and client to the
 * target stay allocated; the client's connection does not),
 * so the steady state does not allocate per request beyond the JSON work a
 * capture or check needs. Metric handles for the current window are cached
 * in lt_hot (engine.c) so that a response costs a few additions and one
 * sketch insert per metric.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "loadtest/vu_int.h"

void lt_worker_vu_done(lt_worker *w); /* engine.c */

/* ---- preparation (main thread, before workers start) ----------------------------------- */
static void number_requests(lt_run_t *run, lt_step *steps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (steps[i].kind == LT_STEP_REQUEST)
            steps[i].req.id = (int)run->nrequests++;
        else if (steps[i].kind == LT_STEP_LOOP)
            number_requests(run, steps[i].loop.steps, steps[i].loop.nsteps);
    }
}

void lt_vu_prepare(lt_run_t *run)
{
    lt_script *s = run->script;
    for (size_t i = 0; i < s->nscenarios; i++)
        number_requests(run, s->scenarios[i].flow, s->scenarios[i].nflow);
    if (s->before)
        number_requests(run, s->before->flow, s->before->nflow);
    if (s->after)
        number_requests(run, s->after->flow, s->after->nflow);
    run->scenario_table = cu_calloc(s->nscenarios ? s->nscenarios : 1, sizeof(int));
    int total = 0;
    for (size_t i = 0; i < s->nscenarios; i++) {
        total += s->scenarios[i].weight > 0 ? s->scenarios[i].weight : 0;
        run->scenario_table[i] = total;
    }
    run->scenario_table_len = (size_t)total;
    run->payload_next = cu_calloc(s->npayloads ? s->npayloads : 1, sizeof *run->payload_next);
    size_t nv = json_object_size(s->variables);
    run->var_tmpls = cu_calloc(nv ? nv : 1, sizeof(lt_tmpl *));
    size_t i = 0;
    const char *key;
    json_t *val;
    json_object_foreach(s->variables, key, val) {
        if (json_is_string(val) && strstr(json_string_value(val), "{{"))
            run->var_tmpls[i] = lt_tmpl_compile(json_string_value(val));
        i++;
    }
}

/* ---- metrics helpers ---------------------------------------------------------------------- */
void lt_vu_count(lt_worker *w, const char *name, int64_t n, int64_t ts)
{
    mset_count(lt_worker_window(w, ts), name, n, ts);
}

/* Error codes are Artillery's, and some carry the rendered URL ("Invalid
 * URL - ...", "Failed expectations for request ..."): with random values in
 * URLs each error would be a new metric name, kept in every window and in
 * the aggregate for the whole run. Past LT_MAX_ERROR_NAMES distinct codes on
 * a worker, further new ones are counted under LT_OTHER_ERROR (warned once). */
static const char *error_code(lt_worker *w, const char *code)
{
    if (!w->error_names)
        w->error_names = mset_new(0);
    if (mset_find(w->error_names, code, MSET_COUNTER))
        return code;
    if (mset_len(w->error_names, MSET_COUNTER) < LT_MAX_ERROR_NAMES) {
        mset_get(w->error_names, code, MSET_COUNTER);
        return code;
    }
    if (!w->error_names_full) {
        w->error_names_full = true;
        cu_warn("more than %d distinct errors: further new ones are counted as errors.%s",
                LT_MAX_ERROR_NAMES, LT_OTHER_ERROR);
    }
    return LT_OTHER_ERROR;
}

void lt_vu_count_error(lt_vu *vu, const lt_request *r, const char *code, int64_t ts)
{
    lt_worker *w = vu->w;
    char name[512];
    code = error_code(w, code);
    snprintf(name, sizeof name, "errors.%s", code);
    lt_vu_count(w, name, 1, ts);
    const lt_plugins *pl = &w->run->script->plugins;
    if (r && pl->mbe && r->endpoint) {
        snprintf(name, sizeof name, "%s.%s.errors.%s", pl->mbe_prefix, r->endpoint, code);
        lt_vu_count(w, name, 1, ts);
    }
}
/* ---- life cycle ---------------------------------------------------------------------------- */

/* The user's connections go with it; its client to the target stays with
 * the recycled user (buffers and timer kept), ready for the next arrival. */
static void free_clients(lt_vu *vu)
{
    http_client *o = vu->other;
    vu->other = NULL;
    http_client_reset(vu->client);
    if (o)
        http_client_free(o);
    if (vu->other_ok) {
        http_url_free(&vu->other_url);
        vu->other_ok = false;
    }
    free(vu->other_origin);
    vu->other_origin = NULL;
}

static bool recyclable(const lt_vu *vu);

/* Ends the user: error is NULL on success. Counts unless the run stops. */
static void vu_end(lt_vu *vu, const char *error)
{
    if (vu->ended)
        return;
    vu->ended = true;
    lt_worker *w = vu->w;
    if (!vu->stopping) {
        int64_t ts = cu_wall_ms();
        lt_hot *h = lt_worker_hot(w, ts);
        if (error) {
            mset_entry_count(w->win, HOT(h, failed, "vusers.failed", MSET_COUNTER), 1, ts);
        } else {
            mset_entry_count(w->win, HOT(h, completed, "vusers.completed", MSET_COUNTER), 1, ts);
            mset_entry_count(w->win, HOT(h, failed, "vusers.failed", MSET_COUNTER), 0, ts);
            double ms = (double)(cu_now_ns() - vu->start_ns) / 1e6;
            mset_entry_summary(w->win, HOT(h, session, "vusers.session_length", MSET_SUMMARY), ms,
                               ts);
        }
    }
    lt_vu_pool_leave(vu);
    free_clients(vu);
    for (int i = 0; i < vu->depth; i++)
        json_decref(vu->frames[i].over);
    vu->depth = 0;
    vu->frames = vu->frame0;
    if (w->keep_vars && !error && !vu->stopping) /* a before/after flow completed */
        *w->keep_vars = json_incref(vu->vars);
    if (vu->vars && !vu->spare_vars && recyclable(vu))
        vu->spare_vars = vu->vars; /* for the next user (initial_vars) */
    else
        json_decref(vu->vars);
    lt_jar_reset(&vu->jar);
    vu->vars = NULL;
    if (vu->prev)
        vu->prev->next = vu->next;
    else
        w->live_vus = vu->next;
    if (vu->next)
        vu->next->prev = vu->prev;
    vu->prev = NULL;
    vu->next = w->free_vus;
    w->free_vus = vu;
    lt_worker_vu_done(w);
}

void lt_vu_fail(lt_vu *vu, const lt_request *r, const char *code)
{
    if (!vu->stopping)
        lt_vu_count_error(vu, r, code, cu_wall_ms());
    vu_end(vu, code);
}

static void set_var_int(json_t *vars, const char *name, int64_t v)
{
    json_object_set_new(vars, name, json_integer(v));
}

static void make_uuid(cu_rng *rng, char out[37])
{
    uint8_t b[16];
    uint64_t a = cu_rng_next(rng), c = cu_rng_next(rng);
    memcpy(b, &a, 8);
    memcpy(b + 8, &c, 8);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) { /* 8-4-4-4-12, without snprintf: once per user */
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 15];
    }
    *o = '\0';
}

/* A user's vars hold only the builtins when the script has no CSV, no
 * config.variables and no before flow: then the last user's object, if
 * its flow left it as it was made (recyclable), serves the next user with
 * a new $uuid, its keys in the same order, instead of an object, its
 * table, four entries and a string made and freed for every user (a
 * tenth of a plain user's instructions). */
static bool builtins_only(const lt_worker *w)
{
    const lt_script *s = w->run->script;
    return !w->before_vars && s->npayloads == 0 && json_object_size(s->variables) == 0;
}

static bool recyclable(const lt_vu *vu)
{
    const lt_worker *w = vu->w;
    json_t *v = vu->vars, *u = json_object_get(v, "$uuid");
    return v->refcount == 1 && builtins_only(w) && w->j_target &&
           json_object_size(v) == (w->j_environment ? 4u : 3u) && json_is_string(u) &&
           u->refcount == 1 && json_object_get(v, "target") == w->j_target &&
           json_object_get(v, "$testId") == w->j_test_id &&
           (!w->j_environment || json_object_get(v, "$environment") == w->j_environment);
}

static json_t *initial_vars(lt_vu *vu)
{
    lt_run_t *run = vu->w->run;
    const lt_script *s = run->script;
    char uuid[37];
    make_uuid(&vu->w->rng, uuid);
    if (vu->spare_vars && builtins_only(vu->w)) {
        json_t *vars = vu->spare_vars;
        vu->spare_vars = NULL;
        json_string_set(json_object_get(vars, "$uuid"), uuid);
        return vars;
    }
    json_t *vars = json_object();
    json_object_set_new(vars, "$uuid", json_string(uuid));
    lt_worker *w = vu->w;
    if (!w->j_target) { /* the same for every user: one string per worker, shared */
        w->j_target = json_string(s->target);
        w->j_test_id = json_string(run->test_id);
        w->j_environment = s->environment ? json_string(s->environment) : NULL;
    }
    json_object_set(vars, "target", w->j_target);
    json_object_set(vars, "$testId", w->j_test_id);
    if (w->j_environment)
        json_object_set(vars, "$environment", w->j_environment);
    if (vu->w->before_vars) { /* the before flow's captures, then CSV, then config.variables */
        const char *k;
        json_t *v;
        json_object_foreach(vu->w->before_vars, k, v)
            if (k[0] != '$' && strcmp(k, "target"))
                json_object_set(vars, k, v);
    }
    /* CSV rows first: config.variables of the same name win, as in Artillery */
    for (size_t p = 0; p < s->npayloads; p++) {
        const lt_payload *pl = &s->payloads[p];
        size_t nrows = json_array_size(pl->rows);
        if (pl->name) {
            json_object_set(vars, pl->name, pl->all);
            continue;
        }
        if (nrows == 0 || pl->nfields == 0)
            continue;
        size_t k = pl->sequence ? atomic_fetch_add(&run->payload_next[p], 1) % nrows
                                : (size_t)cu_rng_below(&vu->w->rng, nrows);
        json_t *row = json_array_get(pl->rows, k);
        for (size_t f = 0; f < pl->nfields && f < json_array_size(row); f++)
            json_object_set(vars, pl->fields[f], json_array_get(row, f));
    }
    lt_ctx ctx = {vars, &vu->w->rng};
    size_t i = 0;
    const char *key;
    json_t *val;
    json_object_foreach(s->variables, key, val) {
        json_t *v = val;
        if (json_is_array(val)) {
            size_t n = json_array_size(val);
            v = n ? json_array_get(val, cu_rng_below(&vu->w->rng, n)) : json_null();
        }
        if (run->var_tmpls[i] && v == val) {
            json_t *r = lt_tmpl_value(run->var_tmpls[i], &ctx);
            json_object_set_new(vars, key, r ? r : json_null());
        } else {
            json_object_set(vars, key, v);
        }
        i++;
    }
    return vars;
}

/* Takes a recycled user (or a new one) and links it into the live list. */
static lt_vu *vu_take(lt_worker *w)
{
    lt_vu *vu = w->free_vus;
    if (vu) {
        w->free_vus = vu->next;
    } else {
        vu = cu_calloc(1, sizeof *vu);
        vu->w = w;
        vu->frames = vu->frame0;
        uv_timer_init(&w->loop, &vu->think);
        vu->think.data = vu;
    }
    vu->ended = vu->stopping = vu->in_flight = vu->think_active = vu->pool_waiting = false;
    vu->pool_slot = -1;
    vu->start_ns = cu_now_ns();
    vu->prev = NULL;
    vu->next = w->live_vus;
    if (w->live_vus)
        w->live_vus->prev = vu;
    w->live_vus = vu;
    w->active++;
    atomic_fetch_add(&w->run->active_total, 1);
    return vu;
}

/* The user's variables, cookie jar and first frame for scenario sc. */
static void vu_setup(lt_vu *vu, const lt_scenario *sc)
{
    lt_worker *w = vu->w;
    const lt_script *s = w->run->script;
    vu->sc = sc;
    vu->vars = initial_vars(vu);
    for (size_t i = 0; i < s->ndefault_cookies; i++) {
        /* defaults.cookie: set in the jar for config.target, as Artillery does */
        lt_ctx ctx = {vu->vars, &w->rng};
        cu_buf_reset(&vu->vals);
        cu_buf_appends(&vu->vals, s->default_cookies[i].name);
        cu_buf_appendc(&vu->vals, '=');
        lt_tmpl_render(s->default_cookies[i].value, &ctx, &vu->vals);
        lt_jar_set(&vu->jar, vu->vals.data, vu->vals.len, s->target ? s->target : "");
    }
    vu->ctx.vars = vu->vars;
    vu->ctx.rng = &w->rng;
    vu->depth = 1;
    vu->frames[0] = (frame){sc->flow, sc->nflow, 0, 0, 1, NULL, NULL};
}

void lt_vu_start_scenario(lt_worker *w, const lt_scenario *sc)
{
    lt_vu *vu = vu_take(w);
    vu_setup(vu, sc);
    lt_intended_start(&vu->intended, vu->start_ns);
    lt_vu_run(vu);
}

void lt_vu_start(lt_worker *w, uint64_t intended_ns)
{
    lt_run_t *run = w->run;
    int64_t ts = cu_wall_ms();
    lt_vu *vu = vu_take(w);
    uint64_t now = vu->start_ns;
    const lt_script *s = run->script;
    size_t pick = 0;
    if (run->scenario_table_len > 0) {
        int r = (int)cu_rng_below(&w->rng, run->scenario_table_len);
        while (pick + 1 < s->nscenarios && run->scenario_table[pick] <= r)
            pick++;
    } else if (s->nscenarios > 1) {
        pick = cu_rng_below(&w->rng, s->nscenarios);
    }
    vu_setup(vu, &s->scenarios[pick]);
    lt_intended_start(&vu->intended, intended_ns);

    lt_hot *h = lt_worker_hot(w, ts);
    double lag = intended_ns < now ? (double)(now - intended_ns) / 1e6 : 0.0;
    mset_entry_summary(w->win, HOT(h, lag, LT_LAG_METRIC, MSET_SUMMARY), lag, ts);
    if (!h->scenario_created[pick])
        h->scenario_created[pick] = mset_get(w->win, vu->sc->created_metric, MSET_COUNTER);
    mset_entry_count(w->win, h->scenario_created[pick], 1, ts);
    mset_entry_count(w->win, HOT(h, created, "vusers.created", MSET_COUNTER), 1, ts);
    lt_vu_run(vu);
}

static void on_think_done(uv_timer_t *t)
{
    lt_vu *vu = t->data;
    vu->think_active = false;
    lt_vu_run(vu);
}

static void vu_close_cb(uv_handle_t *h)
{
    lt_vu *vu = h->data;
    cu_buf_free(&vu->url);
    cu_buf_free(&vu->target);
    cu_buf_free(&vu->body);
    cu_buf_free(&vu->vals);
    cu_buf_free(&vu->hop_url);
    cu_buf_free(&vu->hop_next);
    cu_buf_free(&vu->inflated);
    cu_buf_free(&vu->hdrs);
    free(vu->deep);
    lt_jar_free(&vu->jar);
    json_decref(vu->spare_vars);
    free(vu);
}

void lt_vu_pool_free(lt_worker *w)
{
    lt_vu_http_free(w);
    lt_vu *vu = w->free_vus;
    w->free_vus = NULL;
    while (vu) {
        lt_vu *next = vu->next;
        http_client_free(vu->client);
        vu->client = NULL;
        uv_close((uv_handle_t *)&vu->think, vu_close_cb);
        vu = next;
    }
}

void lt_vu_stop_all(lt_worker *w)
{
    lt_vu *vu = w->live_vus;
    while (vu) {
        lt_vu *next = vu->next;
        vu->stopping = true;
        if (vu->think_active) {
            uv_timer_stop(&vu->think);
            vu->think_active = false;
        }
        vu_end(vu, NULL); /* frees the clients: a request in flight is cancelled */
        vu = next;
    }
}

/* ---- the flow ---------------------------------------------------------------------------------- */
static int64_t loop_count(lt_vu *vu, const lt_step *st)
{
    if (!st->loop.count)
        return -1;
    cu_buf b = CU_BUF_INIT;
    lt_vu_render(vu, st->loop.count, &b);
    char *end = NULL;
    long long n = strtoll(b.data ? b.data : "", &end, 10);
    bool ok = end && end != b.data;
    cu_buf_free(&b);
    return ok && n > 0 ? n : 0;
}

/* ifTrue's variables: numbers as they are, booleans 1/0, numeric strings
 * as numbers, other values by JavaScript truthiness (filtrex compares the
 * rest as text, which lt_expr does not: see README). Undefined: unknown. */
static bool var_number(const char *name, double *v, void *arg)
{
    json_t *x = arg;
    char key[256];
    for (const char *p = name; x && *p;) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof key)
            return false;
        memcpy(key, p, n);
        key[n] = '\0';
        x = json_is_array(x) ? json_array_get(x, strtoul(key, NULL, 10)) : json_object_get(x, key);
        p += n + (p[n] == '.');
    }
    if (!x)
        return false;
    if (json_is_number(x)) {
        *v = json_number_value(x);
    } else if (json_is_boolean(x) || json_is_null(x)) {
        *v = json_is_true(x) ? 1 : 0;
    } else if (json_is_string(x)) {
        const char *s = json_string_value(x);
        char *end;
        *v = strtod(s, &end);
        if (end == s || *end)
            *v = *s ? 1 : 0;
    } else {
        *v = 1;
    }
    return true;
}

static bool if_true(lt_vu *vu, const lt_expr *e)
{
    bool unknown = false;
    double r = lt_expr_eval(e, var_number, vu->vars, &unknown);
    return !unknown && r == r && r != 0;
}

static void set_loop_vars(lt_vu *vu, frame *f)
{
    set_var_int(vu->vars, f->loop->loop.value_name, f->loop->loop.first + f->iter);
    if (f->over)
        json_object_set(vu->vars, f->loop->loop.element_name,
                        json_array_get(f->over, (size_t)f->iter));
}

void lt_vu_run(lt_vu *vu)
{
    for (;;) {
        if (vu->stopping) {
            vu_end(vu, NULL);
            return;
        }
        frame *f = &vu->frames[vu->depth - 1];
        if (f->idx >= f->n) {
            if (vu->depth == 1) {
                vu_end(vu, NULL);
                return;
            }
            f->iter++;
            bool more = f->over ? (size_t)f->iter < json_array_size(f->over)
                                : (f->count < 0 || f->iter < f->count);
            if (more) {
                f->idx = 0;
                set_loop_vars(vu, f);
                continue;
            }
            json_decref(f->over);
            f->over = NULL;
            vu->depth--;
            continue;
        }
        const lt_step *st = &f->steps[f->idx++];
        switch (st->kind) {
        case LT_STEP_REQUEST:
            /* probability: N: skipped unless a uniform draw in [0, 100) is below N */
            if (st->req.probability >= 0 && cu_rng_double(&vu->w->rng) * 100 >= st->req.probability)
                break;
            if (st->req.if_true && !if_true(vu, st->req.if_true))
                break;
            lt_vu_send_request(vu, &st->req);
            return; /* continues in on_response, or the user has ended */
        case LT_STEP_THINK: {
            /* jitter: uniform within +-N% of the think time, or +-N ms */
            const lt_script *s = vu->w->run->script;
            double j = st->has_jitter ? st->jitter : s->think_jitter;
            bool pct = st->has_jitter ? st->jitter_pct : s->think_jitter_pct;
            double ms = st->think_ms;
            if (j > 0)
                ms += (cu_rng_double(&vu->w->rng) * 2 - 1) * (pct ? ms * j / 100 : j);
            uint64_t think_ms = (uint64_t)llround(ms > 0 ? ms : 0);
            lt_intended_think(&vu->intended, think_ms);
            vu->think_active = true;
            uv_timer_start(&vu->think, on_think_done, think_ms, 0);
            return;
        }
        case LT_STEP_LOG: {
            cu_buf b = CU_BUF_INIT;
            lt_vu_render(vu, st->log, &b);
            printf("%s\n", b.data ? b.data : "");
            cu_buf_free(&b);
            break;
        }
        case LT_STEP_FUNCTION: {
            char code[300];
            snprintf(code, sizeof code, "Undefined function \"%s\"", st->function);
            lt_vu_count_error(vu, NULL, code, cu_wall_ms());
            break;
        }
        case LT_STEP_LOOP: {
            if (vu->depth >= VU_MAX_DEPTH)
                break;
            json_t *over = NULL;
            if (st->loop.over_list)
                over = json_incref(st->loop.over_list);
            else if (st->loop.over_var) {
                json_t *v = json_object_get(vu->vars, st->loop.over_var);
                if (!json_is_array(v))
                    break; /* Artillery skips a loop over a non-list */
                over = json_incref(v);
            }
            int64_t count = over ? (int64_t)json_array_size(over) : loop_count(vu, st);
            if (count == 0 || st->loop.nsteps == 0) {
                json_decref(over);
                break;
            }
            if (vu->depth == VU_INLINE_DEPTH && vu->frames == vu->frame0) {
                if (!vu->deep)
                    vu->deep = cu_malloc(VU_MAX_DEPTH * sizeof *vu->deep);
                memcpy(vu->deep, vu->frame0, sizeof vu->frame0);
                vu->frames = vu->deep;
            }
            frame *nf = &vu->frames[vu->depth++];
            *nf = (frame){st->loop.steps, st->loop.nsteps, 0, 0, count, over, st};
            set_loop_vars(vu, nf);
            break;
        }
        }
    }
}
