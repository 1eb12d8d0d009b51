/* loadtest/engine.c: the run. The main thread loads the script, starts the
 * workers, prints phase lines, merges the windows the workers hand over and
 * prints them when final; the workers launch arrivals on time and run the
 * users (vu.c).
 *
 * Window finality: a worker publishes `passed` = the start of its current
 * window period after handing the previous one over; the main thread emits
 * period P once every worker has passed beyond P (a finished worker passes
 * everything). So a window is printed about a quarter of a second after it
 * closes, complete, and never twice.
 *
 * Arrival timing: libuv timers have millisecond resolution; the timer is set
 * to the ceiling of the time left, and every arrival due by then is started
 * in one go with its lateness (actual - intended start) recorded in the
 * summary `cutover.arrival_lag` (ms). A worker that is behind starts at
 * most LT_ARRIVAL_BATCH late arrivals per loop turn and takes the rest
 * after the next poll (arrival_more, an idle handle: the poll does not
 * block), so responses keep being read and finished users keep freeing
 * their sockets and memory while it catches up: every arrival still starts,
 * in order, as soon as the worker can, and its lag is recorded; only the
 * number of users alive at once stays near what the loop can serve rather
 * than the whole backlog.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "loadtest/internal.h"

static volatile sig_atomic_t got_signal;
/* run->stop when lt_run_opts.stop ended the run (no signal number is 1000). */
#define LT_STOP_ASKED 1000

static void on_signal(int sig)
{
    got_signal = sig;
}

/* ---- worker: windows ------------------------------------------------------------------- */
static int64_t period_of(int64_t ts)
{
    return ts - ts % LT_WINDOW_MS;
}

static void hand_off(lt_worker *w)
{
    if (!w->win)
        return;
    if (w->discard) { /* a before/after flow: not part of the test's metrics */
        mset_free(w->win);
        w->win = NULL;
        w->hot.period = -1;
        return;
    }
    lt_window_msg *msg = cu_malloc(sizeof *msg);
    msg->m = w->win;
    w->win = NULL;
    w->hot.period = -1;
    pthread_mutex_lock(&w->run->lock);
    msg->next = w->run->inbox;
    w->run->inbox = msg;
    pthread_mutex_unlock(&w->run->lock);
}

static void hot_clear(lt_worker *w)
{
    lt_hot *h = &w->hot;
    size_t nreq = w->run->nrequests, nsc = w->run->script->nscenarios;
    mset_entry **sc = h->scenario_created, **rt = h->ep_rt, **code = h->ep_code;
    int *status = h->ep_code_status;
    memset(h, 0, sizeof *h);
    h->period = -1;
    h->scenario_created = sc;
    h->ep_rt = rt;
    h->ep_code = code;
    h->ep_code_status = status;
    memset(sc, 0, nsc * sizeof *sc);
    memset(rt, 0, nreq * sizeof *rt);
    memset(code, 0, nreq * sizeof *code);
    memset(status, 0, nreq * sizeof *status);
}

mset *lt_worker_window(lt_worker *w, int64_t ts)
{
    int64_t p = period_of(ts);
    if (w->win && mset_period(w->win) >= p)
        return w->win; /* same period (or a clock step back: keep the current) */
    hand_off(w);
    w->win = mset_new(p);
    hot_clear(w);
    w->hot.period = p;
    atomic_store(&w->passed, p);
    return w->win;
}

lt_hot *lt_worker_hot(lt_worker *w, int64_t ts)
{
    lt_worker_window(w, ts);
    return &w->hot;
}

net_tls *lt_worker_tls(lt_worker *w, char err[CU_ERRLEN])
{
    if (!w->tls) {
        const lt_script *s = w->run->script;
        if (net_tls_client_new(&w->tls, s->tls_verify, s->tls_ca, err) != 0)
            return NULL;
    }
    return w->tls;
}

/* ---- worker: arrivals ------------------------------------------------------------------ */
static void maybe_finish(lt_worker *w);

/* Advances the schedule to this worker's next arrival. */
static void next_owned(lt_worker *w)
{
    uint64_t t;
    size_t phase;
    while (lt_sched_next(&w->sched, &t, &phase)) {
        uint64_t k = w->arrival_index++;
        if ((int)(k % (uint64_t)w->run->nworkers) == w->index) {
            w->next_t = t;
            w->next_phase = phase;
            return;
        }
    }
    w->sched_done = true;
}

static void on_arrival(uv_timer_t *t);
static void on_arrival_more(uv_idle_t *i);

#define LT_ARRIVAL_BATCH 64

static void arm_arrival(lt_worker *w)
{
    if (w->sched_done || w->stopping)
        return;
    uint64_t due = w->run->start_ns + w->next_t, now = cu_now_ns();
    uint64_t delay = due > now ? (due - now + 999999) / 1000000 : 0;
    uv_update_time(&w->loop);
    uv_timer_start(&w->arrival_timer, on_arrival, delay, 0);
}

/* Starts the arrivals due now, at most a batch; false when some are left. */
static bool start_due(lt_worker *w)
{
    lt_run_t *run = w->run;
    uint64_t now = cu_now_ns();
    int n = 0;
    while (!w->sched_done && !w->stopping && run->start_ns + w->next_t <= now + 100000) {
        if (n++ == LT_ARRIVAL_BATCH)
            return false;
        const lt_phase *ph = &run->script->phases[w->next_phase];
        if (ph->max_vusers > 0 && atomic_load(&run->active_total) >= ph->max_vusers) {
            mset_count(lt_worker_window(w, cu_wall_ms()), "vusers.skipped", 1, cu_wall_ms());
        } else {
            lt_vu_start(w, run->start_ns + w->next_t);
        }
        next_owned(w);
        now = cu_now_ns();
    }
    return true;
}

static void arrivals_done_or_rearm(lt_worker *w, bool all)
{
    if (!all && !w->stopping) {
        uv_idle_start(&w->arrival_more, on_arrival_more);
        return;
    }
    uv_idle_stop(&w->arrival_more);
    if (w->sched_done)
        maybe_finish(w);
    else
        arm_arrival(w);
}

static void on_arrival(uv_timer_t *t)
{
    lt_worker *w = t->data;
    arrivals_done_or_rearm(w, start_due(w));
}

static void on_arrival_more(uv_idle_t *i)
{
    lt_worker *w = i->data;
    arrivals_done_or_rearm(w, start_due(w));
}

/* ---- worker: life cycle ---------------------------------------------------------------- */
static void on_tick(uv_timer_t *t)
{
    lt_worker *w = t->data;
    int64_t now = cu_wall_ms(), p = period_of(now);
    if (w->win && mset_period(w->win) < p)
        hand_off(w);
    if (atomic_load(&w->passed) < p)
        atomic_store(&w->passed, p);
}

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

static void maybe_finish(lt_worker *w)
{
    if (!w->sched_done || w->active > 0 || uv_is_closing((uv_handle_t *)&w->tick_timer))
        return;
    hand_off(w);
    atomic_store(&w->passed, INT64_MAX);
    lt_vu_http_free(w); /* http.pool's kept-alive connections would keep the loop running */
    uv_close((uv_handle_t *)&w->arrival_timer, close_cb);
    uv_close((uv_handle_t *)&w->arrival_more, close_cb);
    uv_close((uv_handle_t *)&w->tick_timer, close_cb);
    uv_close((uv_handle_t *)&w->wake, close_cb);
    atomic_fetch_add(&w->run->workers_done, 1);
}

/* Called by vu.c when a user ends. */
void lt_worker_vu_done(lt_worker *w);
void lt_worker_vu_done(lt_worker *w)
{
    w->active--;
    atomic_fetch_sub(&w->run->active_total, 1);
    if (w->sched_done)
        maybe_finish(w);
}

static void on_wake(uv_async_t *a)
{
    lt_worker *w = a->data;
    if (!atomic_load(&w->run->stop) || w->stopping)
        return;
    w->stopping = true;
    w->sched_done = true;
    uv_timer_stop(&w->arrival_timer);
    uv_idle_stop(&w->arrival_more);
    lt_vu_stop_all(w);
    maybe_finish(w);
}

static void *worker_main(void *arg)
{
    lt_worker *w = arg;
    next_owned(w);
    uv_timer_start(&w->tick_timer, on_tick, 200, 200);
    if (w->sched_done)
        maybe_finish(w);
    else
        arm_arrival(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    lt_vu_pool_free(w);
    net_resolver_free(w->resolver);
    uv_run(&w->loop, UV_RUN_DEFAULT); /* let the resolver's handles close */
    if (w->tls)
        net_tls_free(w->tls);
    return NULL;
}

static int worker_init(lt_worker *w, lt_run_t *run, int index, uint64_t seed, char err[CU_ERRLEN])
{
    memset(w, 0, sizeof *w);
    w->run = run;
    w->index = index;
    int rc = uv_loop_init(&w->loop);
    if (rc) {
        snprintf(err, CU_ERRLEN, "event loop: %s", uv_strerror(rc));
        return rc;
    }
    uv_timer_init(&w->loop, &w->arrival_timer);
    uv_idle_init(&w->loop, &w->arrival_more);
    w->arrival_more.data = w;
    uv_timer_init(&w->loop, &w->tick_timer);
    uv_async_init(&w->loop, &w->wake, on_wake);
    w->arrival_timer.data = w->tick_timer.data = w->wake.data = w;
    w->resolver = net_resolver_new(&w->loop, 10000);
    cu_rng_seed(&w->rng, seed + (uint64_t)index * 0x9e3779b97f4a7c15ull);
    lt_sched_init(&w->sched, run->script->phases, run->script->nphases);
    size_t nreq = run->nrequests ? run->nrequests : 1;
    size_t nsc = run->script->nscenarios ? run->script->nscenarios : 1;
    w->hot.scenario_created = cu_calloc(nsc, sizeof(mset_entry *));
    w->hot.ep_rt = cu_calloc(nreq, sizeof(mset_entry *));
    w->hot.ep_code = cu_calloc(nreq, sizeof(mset_entry *));
    w->hot.ep_code_status = cu_calloc(nreq, sizeof(int));
    hot_clear(w);
    atomic_store(&w->passed, 0);
    return 0;
}

static void worker_fini(lt_worker *w)
{
    json_decref(w->before_vars);
    if (w->error_names)
        mset_free(w->error_names);
    json_decref(w->j_target);
    json_decref(w->j_test_id);
    json_decref(w->j_environment);
    if (w->win)
        mset_free(w->win);
    uv_loop_close(&w->loop);
    free(w->hot.scenario_created);
    free(w->hot.ep_rt);
    free(w->hot.ep_code);
    free(w->hot.ep_code_status);
}

/* ---- before / after flows -------------------------------------------------------------- */
/* Runs a top-level before: or after: flow once, as one user on a loop of
 * its own on the calling (main) thread, and waits for it (Ctrl-C stops
 * it). Its metrics are discarded. Returns its final variables (a new
 * reference; NULL when it did not complete) for the users to start with. */
static json_t *run_side_flow(lt_run_t *run, const lt_scenario *sc, uint64_t seed)
{
    lt_worker w;
    char err[CU_ERRLEN];
    if (worker_init(&w, run, 0, seed ^ 0x5bd1e995u, err) != 0) {
        cu_error("%s", err);
        return NULL;
    }
    w.discard = true;
    if (run->before_vars) /* the after flow sees what the before flow captured */
        w.before_vars = json_deep_copy(run->before_vars);
    json_t *vars = NULL;
    w.keep_vars = &vars;
    lt_vu_start_scenario(&w, sc);
    while (w.active > 0) {
        if (got_signal && !w.stopping) {
            w.stopping = true;
            lt_vu_stop_all(&w);
        }
        uv_run(&w.loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&w.arrival_timer, NULL);
    uv_close((uv_handle_t *)&w.arrival_more, NULL);
    uv_close((uv_handle_t *)&w.tick_timer, NULL);
    uv_close((uv_handle_t *)&w.wake, NULL);
    lt_vu_pool_free(&w);
    net_resolver_free(w.resolver);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    if (w.tls)
        net_tls_free(w.tls);
    worker_fini(&w);
    return vars;
}

/* ---- main thread ------------------------------------------------------------------------ */
typedef struct pending {
    mset **items; /* sorted by period */
    size_t n, cap;
} pending;

static void pending_add(pending *p, mset *m)
{
    for (size_t i = 0; i < p->n; i++) {
        if (mset_period(p->items[i]) == mset_period(m)) {
            mset_merge(p->items[i], m);
            mset_free(m);
            return;
        }
    }
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 8;
        p->items = cu_realloc(p->items, p->cap * sizeof *p->items);
    }
    size_t i = p->n++;
    while (i > 0 && mset_period(p->items[i - 1]) > mset_period(m)) {
        p->items[i] = p->items[i - 1];
        i--;
    }
    p->items[i] = m;
}

static void collect(lt_run_t *run, pending *p, lt_report *rep, bool all)
{
    pthread_mutex_lock(&run->lock);
    lt_window_msg *msg = run->inbox;
    run->inbox = NULL;
    pthread_mutex_unlock(&run->lock);
    /* The inbox is newest-first; reverse so merges keep first-seen order. */
    lt_window_msg *rev = NULL;
    while (msg) {
        lt_window_msg *next = msg->next;
        msg->next = rev;
        rev = msg;
        msg = next;
    }
    for (msg = rev; msg; msg = rev) {
        rev = msg->next;
        pending_add(p, msg->m);
        free(msg);
    }
    int64_t final_before = INT64_MAX;
    for (int i = 0; i < run->nworkers; i++) {
        int64_t passed = atomic_load(&run->workers[i].passed);
        if (passed < final_before)
            final_before = passed;
    }
    size_t k = 0;
    while (k < p->n && (all || mset_period(p->items[k]) < final_before))
        lt_report_window(rep, p->items[k++]);
    if (k > 0 && k < p->n)
        memmove(p->items, p->items + k, (p->n - k) * sizeof *p->items);
    p->n -= k;
}

static void make_test_id(char out[48], cu_rng *rng)
{
    static const char alphabet[] = "3456789abcdefghjkmnpqrtwxyz";
    static const int groups[] = {4, 29, 4};
    size_t pos = 0;
    out[pos++] = 't';
    for (size_t g = 0; g < 3; g++) {
        if (g)
            out[pos++] = '_';
        for (int i = 0; i < groups[g]; i++)
            out[pos++] = alphabet[cu_rng_below(rng, sizeof alphabet - 1)];
    }
    out[pos] = '\0';
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void format_total_time(cu_buf *b, int64_t secs)
{
    int64_t h = secs / 3600, m = (secs % 3600) / 60, s = secs % 60;
    if (h > 0)
        cu_buf_appendf(b, "%" PRId64 " hour%s, %" PRId64 " minute%s, %" PRId64 " second%s", h,
                       h == 1 ? "" : "s", m, m == 1 ? "" : "s", s, s == 1 ? "" : "s");
    else if (m > 0)
        cu_buf_appendf(b, "%" PRId64 " minute%s, %" PRId64 " second%s", m, m == 1 ? "" : "s", s,
                       s == 1 ? "" : "s");
    else
        cu_buf_appendf(b, "%" PRId64 " second%s", s, s == 1 ? "" : "s");
}

static int prepare_target(lt_run_t *run)
{
    char err[CU_ERRLEN];
    const char *target = run->script->target;
    if (http_url_parse(&run->target, target, err) != 0) {
        cu_error("config.target '%s' is not a usable URL: %s", target, err);
        return -1;
    }
    run->target_ok = true;
    /* Artillery concatenates target and url: keep the target's own path. */
    const char *p = strstr(target, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    run->target_prefix = cu_strdup(p ? p : "");
    return 0;
}

int lt_run(const lt_run_opts *o)
{
    char err[CU_ERRLEN] = "";
    lt_script *script = lt_script_load(&o->load, err);
    if (!script) {
        fprintf(stderr, "cutover: error: %s\n", err);
        return LT_EXIT_FAIL;
    }
    lt_run_t run_storage, *run = &run_storage;
    memset(run, 0, sizeof *run);
    run->opts = o;
    run->script = script;
    run->nworkers = o->workers > 0 ? o->workers : 1;
    pthread_mutex_init(&run->lock, NULL);
    int status = LT_EXIT_FAIL;
    if (prepare_target(run) != 0)
        goto out_script;
    lt_vu_prepare(run);

    cu_rng rng;
    uint64_t seed = o->seed ? o->seed : cu_seed_entropy();
    cu_rng_seed(&rng, seed);
    const char *env_id = getenv("ARTILLERY_TEST_RUN_ID");
    if (env_id && *env_id)
        snprintf(run->test_id, sizeof run->test_id, "%s", env_id);
    else
        make_test_id(run->test_id, &rng);
    if (!o->stop) {
        printf("Test run id: %s\n", run->test_id);
        fflush(stdout);
    }
    raise_fd_limit();

    lt_report *rep = lt_report_new(run);
    run->workers = cu_calloc((size_t)run->nworkers, sizeof *run->workers);
    for (int i = 0; i < run->nworkers; i++) {
        if (worker_init(&run->workers[i], run, i, seed, err) != 0) {
            cu_error("%s", err);
            goto out_report;
        }
    }
    if (!o->stop) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
    signal(SIGPIPE, SIG_IGN);

    if (script->before) {
        run->before_vars = run_side_flow(run, script->before, seed);
        if (!run->before_vars && !got_signal)
            cu_warn("the before flow did not complete: users start without its variables");
        for (int i = 0; i < run->nworkers && run->before_vars; i++)
            run->workers[i].before_vars = json_deep_copy(run->before_vars); /* share nothing */
    }
    run->start_ns = cu_now_ns() + 20 * 1000000ull;
    run->start_wall_ms = cu_wall_ms() + 20;
    for (int i = 0; i < run->nworkers; i++)
        pthread_create(&run->workers[i].thread, NULL, worker_main, &run->workers[i]);

    pending pend = {0};
    size_t next_phase_event = 0; /* 2*i: start of phase i, 2*i+1: its end */
    size_t nphases = script->nphases;
    while (atomic_load(&run->workers_done) < run->nworkers) {
        int asked = o->stop && atomic_load(o->stop) ? LT_STOP_ASKED : 0;
        if ((got_signal || asked) && !atomic_load(&run->stop)) {
            atomic_store(&run->stop, got_signal ? (int)got_signal : asked);
            for (int i = 0; i < run->nworkers; i++)
                uv_async_send(&run->workers[i].wake);
        }
        uint64_t now = cu_now_ns();
        while (next_phase_event < 2 * nphases && !atomic_load(&run->stop)) {
            size_t i = next_phase_event / 2;
            bool start = next_phase_event % 2 == 0;
            uint64_t at = run->start_ns + lt_phase_start_ns(script->phases, i) +
                          (start ? 0 : lt_phase_duration_ns(&script->phases[i]));
            if (at > now)
                break;
            lt_report_phase(rep, i, start);
            next_phase_event++;
        }
        collect(run, &pend, rep, false);
        sleep_ms(50);
    }
    for (int i = 0; i < run->nworkers; i++)
        pthread_join(run->workers[i].thread, NULL);
    if (!atomic_load(&run->stop)) {
        while (next_phase_event < 2 * nphases) {
            lt_report_phase(rep, next_phase_event / 2, next_phase_event % 2 == 0);
            next_phase_event++;
        }
    }
    collect(run, &pend, rep, true);
    free(pend.items);
    if (script->after && !atomic_load(&run->stop) && !got_signal)
        json_decref(run_side_flow(run, script->after, seed + 1));

    int64_t total_ms = cu_wall_ms() - run->start_wall_ms;
    if (!o->quiet) {
        cu_buf b = CU_BUF_INIT;
        cu_buf_appends(&b, atomic_load(&run->stop) ? "Stopped. Total time: " : "All VUs finished. Total time: ");
        format_total_time(&b, (total_ms + 500) / 1000);
        printf("%s\n", b.data);
        cu_buf_free(&b);
    }
    status = lt_report_finish(rep, total_ms);
    if (status == LT_EXIT_OK && atomic_load(&run->expect_failed))
        status = LT_EXIT_EXPECT;
    int sig = atomic_load(&run->stop);
    if (sig == SIGINT)
        status = LT_EXIT_SIGINT;
    else if (sig == SIGTERM)
        status = LT_EXIT_SIGTERM;

out_report:
    for (int i = 0; i < run->nworkers; i++)
        if (run->workers && run->workers[i].run)
            worker_fini(&run->workers[i]);
    free(run->workers);
    lt_report_free(rep);
out_script:
    if (run->var_tmpls) {
        for (size_t i = 0; i < json_object_size(script->variables); i++)
            lt_tmpl_free(run->var_tmpls[i]);
        free(run->var_tmpls);
    }
    free(run->scenario_table);
    free(run->payload_next);
    json_decref(run->before_vars);
    free(run->target_prefix);
    if (run->target_ok)
        http_url_free(&run->target);
    pthread_mutex_destroy(&run->lock);
    lt_script_free(script);
    fflush(stdout);
    return status;
}
