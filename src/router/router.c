/* router/router.c: life cycle, weights, reload and drain (router.h).
 *
 * The weight is one atomic (basis points of green), so any thread may set
 * it and the next request sees it. Health overrides it through a second
 * atomic (`override_bp`: -1, or 0 / 10000 while a colour has no healthy
 * server), recomputed on the loop thread whenever a server's health changes
 * and on the 1 s tick; a request reads both (rt_effective_bp), so neither
 * writer can lose the other's update.
 * The 1 s tick also closes pooled connections past their idle timeout,
 * ends expired passive ejections and flushes the access log. */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "router/proxy.h"

const char *router_color_name(router_color c)
{
    return c == ROUTER_GREEN ? "green" : "blue";
}

void rt_update_effective(router *r)
{
    uint64_t now = cu_now_ns();
    size_t hb = rt_gen_healthy(r->gen, ROUTER_BLUE, now);
    size_t hg = rt_gen_healthy(r->gen, ROUTER_GREEN, now);
    int ov = -1;
    if (hg == 0 && hb > 0)
        ov = 0;
    else if (hb == 0 && hg > 0)
        ov = RT_BUCKETS;
    int old = atomic_exchange(&r->override_bp, ov);
    if (old != ov && ov >= 0)
        cu_warn("router: %s has no healthy server; its share goes to %s",
                ov == 0 ? "green" : "blue", ov == 0 ? "blue" : "green");
    else if (old != ov)
        cu_info("router: both colours have healthy servers again");
}

static void on_tick(uv_timer_t *t)
{
    router *r = t->data;
    uint64_t now = cu_now_ns();
    rt_gen_sweep(r->gen, now);
    rt_uconn_sweep_ending(r, now, false);
    rt_update_effective(r);
    if (r->access_log)
        fflush(r->access_log);
}

int router_set_weight(router *r, double green_percent)
{
    int bp = rt_weight_bp(green_percent);
    if (bp < 0)
        return -EINVAL;
    atomic_store(&r->weight_bp, bp);
    return 0;
}

int rt_effective_bp(router *r)
{
    int ov = atomic_load(&r->override_bp);
    return ov >= 0 ? ov : atomic_load(&r->weight_bp);
}

double router_weight(const router *r)
{
    return atomic_load(&((router *)r)->weight_bp) / 100.0;
}

double router_effective_weight(const router *r)
{
    return rt_effective_bp((router *)r) / 100.0;
}

int router_read_window(router *r, router_color c, uint64_t seconds, router_sample *out)
{
    return rt_stats_window(&r->stats, c, seconds, cu_now_ns(), out);
}

uv_loop_t *router_loop(router *r) { return r->loop; }
int router_port(const router *r) { return r->nlisteners ? r->listeners[0].port : -1; }
size_t router_listeners(const router *r) { return r->nlisteners; }
int router_listener_port(const router *r, size_t i)
{
    return i < r->nlisteners ? r->listeners[i].port : -1;
}

static void close_listeners(router *r)
{
    for (size_t i = 0; i < r->nlisteners; i++)
        if (r->listeners[i].l) {
            net_listener_close(r->listeners[i].l);
            r->listeners[i].l = NULL;
        }
}

static void free_listeners(router *r)
{
    close_listeners(r);
    for (size_t i = 0; i < r->nlisteners; i++)
        if (r->listeners[i].tls)
            net_tls_free(r->listeners[i].tls);
    free(r->listeners);
    r->listeners = NULL;
    r->nlisteners = 0;
}

static int open_listeners(router *r, const router_config *cfg, char err[CU_ERRLEN])
{
    r->listeners = cu_calloc(cfg->nlisteners, sizeof *r->listeners);
    r->nlisteners = cfg->nlisteners;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const router_listen_conf *lc = &cfg->listeners[i];
        rt_listener *li = &r->listeners[i];
        li->r = r;
        li->port = -1;
        int rc;
        if (lc->tls_cert &&
            (rc = net_tls_server_new(&li->tls, lc->tls_cert, lc->tls_key, err)) < 0)
            return rc;
        if ((rc = net_listen(&li->l, r->loop, lc->host, lc->port, li->tls, rt_proxy_accept, li,
                             err)) < 0)
            return rc;
        li->port = net_listener_port(li->l);
    }
    return 0;
}
int router_admin_port(const router *r) { return r->admin_port; }
const conf_node *router_rollout_conf(const router *r) { return r->gen->cfg.rollout; }
const conf_node *router_state_conf(const router *r) { return r->gen->cfg.state; }

void router_set_reload_hook(router *r, void (*fn)(router *r, void *ctx), void *ctx)
{
    r->reload_hook = fn;
    r->reload_ctx = ctx;
}

void router_set_status_hook(router *r, router_status_hook fn, void *ctx)
{
    r->status_hook = fn;
    r->status_ctx = ctx;
}

void router_set_admin_handler(router *r, const char *prefix, router_admin_handler fn, void *ctx)
{
    free(r->admin_prefix);
    r->admin_prefix = prefix ? cu_strdup(prefix) : NULL;
    r->admin_fn = fn;
    r->admin_ctx = ctx;
}

static int open_log(router *r, const char *path, char err[CU_ERRLEN])
{
    if (r->access_log) {
        fclose(r->access_log);
        r->access_log = NULL;
    }
    if (!path)
        return 0;
    r->access_log = fopen(path, "a");
    if (!r->access_log) {
        snprintf(err, CU_ERRLEN, "access_log %s: %s", path, strerror(errno));
        return -errno;
    }
    return 0;
}

/* ---- busy poll ------------------------------------------------------------------------
 * After a poll that brought reads, the loop polls again without blocking
 * (an active idle handle) until busy_poll_us pass without one. A client or
 * upstream that writes to a router that is awake costs its sender no
 * wake-up (on a VM, an interrupt to a halted CPU), and the answer no wake-up
 * latency. Each spin yields the CPU, so a router sharing its core with
 * runnable work gives that work the core instead of spinning over it. */
static void on_spin_idle(uv_idle_t *h)
{
    router *r = h->data;
    if (uv_hrtime() - r->io_last_ns > r->gen->cfg.busy_poll_us * 1000) {
        uv_idle_stop(&r->spin_idle);
    } else {
        sched_yield();
    }
}

static void on_spin_check(uv_check_t *h)
{
    router *r = h->data;
    if (!r->io_read)
        return;
    r->io_read = false;
    if (!r->gen->cfg.busy_poll_us || r->draining)
        return;
    r->io_last_ns = uv_hrtime();
    uv_idle_start(&r->spin_idle, on_spin_idle); /* a no-op when it runs already */
}

static void on_wcheck(uv_check_t *h)
{
    rt_flush_writes(h->data);
}

/* Gathered upstream writes (exchange.c rt_uwrite) go out from a check,
 * right after the poll's callbacks; rt_uwrite keeps widle active while any
 * wait, so a write gathered in a timer callback does not wait for a poll
 * that blocks. */
static void gather_init(router *r, uv_loop_t *loop)
{
    uv_check_init(loop, &r->wcheck);
    uv_idle_init(loop, &r->widle);
    r->wcheck.data = r;
    uv_unref((uv_handle_t *)&r->wcheck);
    uv_check_start(&r->wcheck, on_wcheck);
}

static void spin_init(router *r, uv_loop_t *loop)
{
    uv_check_init(loop, &r->spin_check);
    uv_idle_init(loop, &r->spin_idle);
    r->spin_check.data = r->spin_idle.data = r;
    uv_unref((uv_handle_t *)&r->spin_check);
    uv_unref((uv_handle_t *)&r->spin_idle);
    uv_check_start(&r->spin_check, on_spin_check);
}

int router_start(router **out, uv_loop_t *loop, router_config *cfg, char err[CU_ERRLEN])
{
    *out = NULL;
    router *r = cu_calloc(1, sizeof *r);
    r->loop = loop;
    r->admin_port = -1;
    int rc;
    r->resolver = net_resolver_new(loop, 30000);
    rt_stats_init(&r->stats, cfg->horizon_s, cu_now_ns());
    int bp = rt_weight_bp(cfg->weight);
    atomic_store(&r->weight_bp, bp);
    atomic_store(&r->override_bp, -1);
    if ((rc = open_log(r, cfg->access_log, err)) < 0)
        goto fail;
    if ((rc = rt_gen_new(&r->gen, r, cfg, err)) < 0)
        goto fail;
    if ((rc = open_listeners(r, &r->gen->cfg, err)) < 0)
        goto fail;
    if ((rc = rt_admin_start(r, err)) < 0)
        goto fail;
    rt_gen_start_health(r->gen);
    uv_timer_init(loop, &r->tick);
    r->tick.data = r;
    uv_timer_start(&r->tick, on_tick, 1000, 1000);
    gather_init(r, loop);
    spin_init(r, loop);
    *out = r;
    return 0;
fail:
    free_listeners(r);
    if (r->gen) {
        rt_gen_retire(r->gen);
        rt_gen_unref(r->gen);
    } else {
        router_config_free(cfg);
    }
    if (r->access_log)
        fclose(r->access_log);
    net_resolver_free(r->resolver);
    rt_stats_free(&r->stats);
    free(r);
    return rc;
}

int router_reload(router *r, char err[CU_ERRLEN])
{
    router_config cfg;
    const char *path = r->gen->cfg.path;
    int rc = router_config_load(&cfg, path, err);
    if (rc < 0)
        return rc;
    const router_config *old = &r->gen->cfg;
    bool same = cfg.nlisteners == old->nlisteners && !strcmp(cfg.admin_host, old->admin_host) &&
                cfg.admin_port == old->admin_port;
    for (size_t i = 0; same && i < cfg.nlisteners; i++) {
        const router_listen_conf *a = &cfg.listeners[i], *b = &old->listeners[i];
        same = !strcmp(a->host, b->host) && a->port == b->port &&
               cu_streq(a->tls_cert, b->tls_cert) && cu_streq(a->tls_key, b->tls_key);
    }
    if (!same)
        cu_warn("router: reload: listener changes (listen, admin, tls) need a restart; "
                "kept the old ones");
    if (cfg.horizon_s != old->horizon_s)
        cu_warn("router: reload: metrics.horizon changes need a restart");
    bool weight_changed = fabs(cfg.weight - old->weight) > 1e-9;
    double weight = cfg.weight;
    char *log_path = cfg.access_log ? cu_strdup(cfg.access_log) : NULL;
    bool log_changed = !cu_streq(log_path, old->access_log);
    rt_gen *g;
    rc = rt_gen_new(&g, r, &cfg, err);
    if (rc < 0) {
        router_config_free(&cfg);
        free(log_path);
        return rc;
    }
    if (log_changed && open_log(r, log_path, err) < 0) {
        cu_warn("router: reload: %s (access log off)", err);
        err[0] = 0;
    }
    free(log_path);
    rt_gen *old_gen = r->gen;
    rt_gen_inherit(g, old_gen);
    r->gen = g;
    rt_gen_retire(old_gen);
    rt_gen_unref(old_gen);
    rt_gen_start_health(g);
    if (weight_changed)
        router_set_weight(r, weight);
    rt_update_effective(r);
    if (r->reload_hook)
        r->reload_hook(r, r->reload_ctx);
    return 0;
}

void rt_conn_gone(router *r)
{
    if (r->draining && r->nconns == 0 && r->drain_done) {
        void (*done)(void *) = r->drain_done;
        r->drain_done = NULL;
        if (r->drain_timer_on) {
            uv_timer_stop(&r->drain_timer);
        }
        done(r->drain_arg);
    }
}

static void on_drain_deadline(uv_timer_t *t)
{
    router *r = t->data;
    if (r->nconns) {
        cu_warn("router: drain deadline: closing %zu connection(s)", r->nconns);
        rt_proxy_describe(r, 10);
    }
    rt_proxy_close_all(r);
    rt_uconn_sweep_ending(r, 0, true);
}

void router_drain(router *r, uint64_t deadline_ms, void (*done)(void *arg), void *arg)
{
    if (r->draining)
        return;
    r->draining = true;
    r->drain_done = done;
    r->drain_arg = arg;
    close_listeners(r);
    rt_proxy_drain(r);
    uv_timer_init(r->loop, &r->drain_timer);
    r->drain_timer.data = r;
    r->drain_timer_on = true;
    uv_timer_start(&r->drain_timer, on_drain_deadline, deadline_ms, 0);
    if (r->nconns == 0) {
        r->drain_done = NULL;
        uv_timer_stop(&r->drain_timer);
        if (done)
            done(arg);
    }
}

static void on_closed_free(uv_handle_t *h)
{
    (void)h;
}

void router_free(router *r)
{
    if (!r)
        return;
    r->drain_done = NULL; /* freeing is not draining: no callback from here */
    close_listeners(r);
    rt_proxy_close_all(r);
    rt_admin_stop(r);
    uv_close((uv_handle_t *)&r->tick, on_closed_free);
    uv_close((uv_handle_t *)&r->spin_check, on_closed_free);
    uv_close((uv_handle_t *)&r->spin_idle, on_closed_free);
    rt_flush_writes(r);
    r->wdirect = true; /* the handles that gather writes close now */
    uv_close((uv_handle_t *)&r->wcheck, on_closed_free);
    uv_close((uv_handle_t *)&r->widle, on_closed_free);
    if (r->drain_timer_on)
        uv_close((uv_handle_t *)&r->drain_timer, on_closed_free);
    /* Connections close asynchronously and reach back into the router;
     * run the loop until they are gone before freeing what they use. */
    rt_uconn_sweep_ending(r, 0, true);
    while (r->nconns || r->ending)
        uv_run(r->loop, UV_RUN_ONCE);
    rt_gen_retire(r->gen);
    rt_gen_unref(r->gen);
    uv_run(r->loop, UV_RUN_NOWAIT);
    free_listeners(r);
    if (r->access_log)
        fclose(r->access_log);
    net_resolver_free(r->resolver);
    rt_stats_free(&r->stats);
    free(r->admin_prefix);
    free(r);
}
