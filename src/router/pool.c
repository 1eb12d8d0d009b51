/* router/pool.c: generations, servers and their health (router_int.h).
 *
 * A server takes traffic when it is `up` (active checks: `rise` successes
 * in a row bring it up, `fall` failures take it down; without a health path
 * it is always up) and not passively ejected (`eject_after` consecutive
 * connection failures or 5xx eject it for `eject_time`; once back, one more
 * failure ejects it again until a good answer resets the streak).
 *
 * Lifetime: everything that may still call back into a generation holds a
 * reference on it: the router (current generation), each exchange, each
 * upstream connection, each health timer and each check in flight. So a
 * retired generation is freed by whoever drops the last reference, and no
 * callback can see freed memory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router/proxy.h"

int rt_gen_new(rt_gen **out, router *r, router_config *cfg, char err[CU_ERRLEN])
{
    rt_gen *g = cu_calloc(1, sizeof *g);
    g->r = r;
    g->refs = 1;
    bool need_tls = false;
    for (int c = 0; c < 2; c++) {
        router_pool_conf *pc = &cfg->pools[c];
        g->nservers[c] = pc->nservers;
        g->servers[c] = cu_calloc(pc->nservers, sizeof(rt_server));
        for (size_t i = 0; i < pc->nservers; i++) {
            rt_server *s = &g->servers[c][i];
            s->gen = g;
            s->color = (router_color)c;
            s->index = i;
            s->url = cu_strdup(pc->servers[i]);
            if (http_url_parse(&s->u, s->url, err) < 0) {
                /* validated by the config already; kept for safety */
                g->nservers[c] = i;
                free(s->url);
                goto fail;
            }
            s->up = true;
            need_tls |= s->u.tls;
        }
    }
    if (need_tls) {
        /* One client context; verification follows blue's setting unless
         * either colour turned it off explicitly. */
        bool verify = cfg->pools[0].tls_verify && cfg->pools[1].tls_verify;
        const char *ca = cfg->pools[0].tls_ca ? cfg->pools[0].tls_ca : cfg->pools[1].tls_ca;
        if (net_tls_client_new(&g->tls, verify, ca, err) < 0)
            goto fail;
    }
    if (cfg->token_file) {
        cu_buf b = CU_BUF_INIT;
        if (cu_read_file(cfg->token_file, &b, err) < 0) {
            cu_buf_free(&b);
            goto fail;
        }
        while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r' ||
                         b.data[b.len - 1] == ' '))
            b.data[--b.len] = 0;
        if (b.len < 8) {
            snprintf(err, CU_ERRLEN, "admin token_file %s: the token must have at least 8 "
                     "characters", cfg->token_file);
            cu_buf_free(&b);
            goto fail;
        }
        g->token = cu_buf_steal(&b);
    }
    g->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg);
    *out = g;
    return 0;
fail:
    for (int c = 0; c < 2; c++) {
        for (size_t i = 0; i < g->nservers[c]; i++) {
            free(g->servers[c][i].url);
            http_url_free(&g->servers[c][i].u);
        }
        free(g->servers[c]);
    }
    if (g->tls)
        net_tls_free(g->tls);
    free(g);
    return -EINVAL;
}

static void gen_free(rt_gen *g)
{
    for (int c = 0; c < 2; c++) {
        for (size_t i = 0; i < g->nservers[c]; i++) {
            free(g->servers[c][i].url);
            http_url_free(&g->servers[c][i].u);
        }
        free(g->servers[c]);
    }
    if (g->tls)
        net_tls_free(g->tls);
    free(g->token);
    router_config_free(&g->cfg);
    free(g);
}

void rt_gen_ref(rt_gen *g)
{
    g->refs++;
}

void rt_gen_unref(rt_gen *g)
{
    if (--g->refs == 0)
        gen_free(g);
}

/* ---- health ---------------------------------------------------------------------- */
bool rt_server_healthy(const rt_server *s, uint64_t now_ns)
{
    return s->up && !(s->ejected && now_ns < s->ejected_until_ns);
}

size_t rt_gen_healthy(const rt_gen *g, router_color c, uint64_t now_ns)
{
    size_t n = 0;
    for (size_t i = 0; i < g->nservers[c]; i++)
        n += rt_server_healthy(&g->servers[c][i], now_ns);
    return n;
}

rt_server *rt_gen_pick(rt_gen *g, router_color c, uint64_t now_ns)
{
    size_t n = g->nservers[c];
    if (n == 0)
        return NULL;
    for (size_t k = 0; k < n; k++) {
        rt_server *s = &g->servers[c][(g->rr[c] + k) % n];
        if (rt_server_healthy(s, now_ns)) {
            g->rr[c] = (g->rr[c] + k + 1) % n;
            return s;
        }
    }
    rt_server *s = &g->servers[c][g->rr[c] % n];
    g->rr[c] = (g->rr[c] + 1) % n;
    return s;
}

void rt_server_passive(rt_server *s, bool bad)
{
    const router_health_conf *h = &s->gen->cfg.pools[s->color].health;
    if (!bad) {
        s->passive_fails = 0;
        return;
    }
    s->passive_fails++;
    if (h->eject_after <= 0 || s->passive_fails < h->eject_after)
        return;
    uint64_t now = cu_now_ns();
    if (s->ejected && now < s->ejected_until_ns)
        return;
    s->ejected = true;
    s->ejected_until_ns = now + h->eject_ms * 1000000ULL;
    cu_warn("router: %s server %s ejected for %llu ms after %d consecutive failures",
            router_color_name(s->color), s->url, (unsigned long long)h->eject_ms,
            s->passive_fails);
    if (!s->gen->retired)
        rt_update_effective(s->gen->r);
}

static void check_done(void *user, int err, const http_response *res)
{
    rt_server *s = user;
    rt_gen *g = s->gen;
    s->checking = false;
    if (err == UV_ECANCELED || g->retired) {
        rt_gen_unref(g);
        return;
    }
    const router_health_conf *h = &g->cfg.pools[s->color].health;
    bool ok = err == 0 && res->status >= 200 && res->status < 400;
    if (ok) {
        s->checks_ok++;
        s->fail_run = 0;
        s->ok_run++;
        s->last_error[0] = 0;
        if (!s->up && s->ok_run >= h->rise) {
            s->up = true;
            s->ejected = false;
            s->passive_fails = 0;
            cu_info("router: %s server %s is up", router_color_name(s->color), s->url);
            rt_update_effective(g->r);
        }
    } else {
        s->checks_failed++;
        s->ok_run = 0;
        s->fail_run++;
        if (err)
            snprintf(s->last_error, sizeof s->last_error, "%s", http_error_name(err));
        else
            snprintf(s->last_error, sizeof s->last_error, "status %d", res->status);
        if (s->up && s->fail_run >= h->fall) {
            s->up = false;
            cu_warn("router: %s server %s is down (%s)", router_color_name(s->color), s->url,
                    s->last_error);
            rt_update_effective(g->r);
        }
    }
    rt_gen_unref(g);
}

static void on_check_timer(uv_timer_t *t)
{
    rt_server *s = t->data;
    rt_gen *g = s->gen;
    if (s->checking || g->retired)
        return;
    const router_health_conf *h = &g->cfg.pools[s->color].health;
    http_request req = {"GET", h->path, NULL, 0, NULL, 0};
    rt_gen_ref(g);
    s->checking = true;
    if (http_client_send(s->hc, &req, false, h->timeout_ms, check_done, s) < 0) {
        s->checking = false;
        rt_gen_unref(g);
    }
}

void rt_gen_start_health(rt_gen *g)
{
    for (int c = 0; c < 2; c++) {
        const router_health_conf *h = &g->cfg.pools[c].health;
        if (!h->path)
            continue;
        for (size_t i = 0; i < g->nservers[c]; i++) {
            rt_server *s = &g->servers[c][i];
            http_client_opts o = {g->r->resolver, g->tls, h->timeout_ms};
            s->hc = http_client_new(g->r->loop, &s->u, &o);
            uv_timer_init(g->r->loop, &s->htimer);
            s->htimer.data = s;
            s->htimer_on = true;
            rt_gen_ref(g);
            /* The first check runs at once, so a server that is down at
             * start-up is found within one timeout. */
            uv_timer_start(&s->htimer, on_check_timer, 0, h->interval_ms);
        }
    }
}

void rt_gen_inherit(rt_gen *g, const rt_gen *old)
{
    for (int c = 0; c < 2; c++)
        for (size_t i = 0; i < g->nservers[c]; i++) {
            rt_server *s = &g->servers[c][i];
            for (size_t k = 0; k < old->nservers[c]; k++) {
                const rt_server *o = &old->servers[c][k];
                if (strcmp(o->url, s->url))
                    continue;
                bool had_checks = old->cfg.pools[c].health.path != NULL;
                bool has_checks = g->cfg.pools[c].health.path != NULL;
                s->up = has_checks && had_checks ? o->up : true;
                s->ok_run = o->ok_run;
                s->fail_run = o->fail_run;
                s->ejected = o->ejected;
                s->ejected_until_ns = o->ejected_until_ns;
                s->passive_fails = o->passive_fails;
                break;
            }
        }
}

static void on_htimer_closed(uv_handle_t *h)
{
    rt_server *s = h->data;
    rt_gen_unref(s->gen);
}

void rt_gen_retire(rt_gen *g)
{
    if (g->retired)
        return;
    g->retired = true;
    for (int c = 0; c < 2; c++)
        for (size_t i = 0; i < g->nservers[c]; i++) {
            rt_server *s = &g->servers[c][i];
            while (s->idle)
                rt_uconn_close(s->idle);
            if (s->hc) {
                http_client_free(s->hc);
                s->hc = NULL;
            }
            if (s->htimer_on) {
                s->htimer_on = false;
                uv_close((uv_handle_t *)&s->htimer, on_htimer_closed);
            }
        }
}

void rt_gen_sweep(rt_gen *g, uint64_t now_ns)
{
    for (int c = 0; c < 2; c++) {
        uint64_t limit = g->cfg.pools[c].idle_timeout_ms * 1000000ULL;
        for (size_t i = 0; i < g->nservers[c]; i++) {
            rt_server *s = &g->servers[c][i];
            rt_uconn *u = s->idle;
            while (u) {
                rt_uconn *next = u->next;
                if (now_ns - u->idle_since_ns >= limit)
                    rt_uconn_close(u);
                u = next;
            }
            if (s->ejected && now_ns >= s->ejected_until_ns) {
                s->ejected = false;
                const router_health_conf *h = &g->cfg.pools[c].health;
                s->passive_fails = h->eject_after > 0 ? h->eject_after - 1 : 0;
                cu_info("router: %s server %s back from ejection", router_color_name(s->color),
                        s->url);
            }
        }
    }
}
