/* upstream/server: the app on an http_server, and worker threads.
 *
 * A request whose plan has no delay is answered from the handler. Otherwise
 * it takes a `pending` slot (a uv_timer and what is needed to answer) from
 * the server's free list; slots are created on demand, reused forever and
 * closed only when the server stops. If the connection dies first, the
 * exchange's cancel callback stops the timer and returns the slot.
 *
 * Teardown (upstream_server_stop): delayed requests are answered 503 at
 * once, the http server stops, every timer is closed, and the last close
 * callback frees the server. Worker threads each own a loop and a server
 * and are told to stop through a uv_async; upstream_stop joins them.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/upstream.h"

#define S(lit) lit, sizeof(lit) - 1

static const char BODY_503[] =
    "{\"error\":\"Service Unavailable\",\"message\":\"the server is shutting down\"}";

typedef struct pending pending;
struct pending {
    uv_timer_t timer;
    upstream_server *srv;
    http_exchange *x;
    const http_server_request *req;
    upstream_plan plan;
    pending *next_all;           /* every slot, for closing */
    pending *next, *prev;        /* the active list, or (next only) the free list */
};

struct upstream_server {
    uv_loop_t *loop;
    upstream_app app;
    http_server *http;
    net_tls *tls;
    pending *all;
    pending *idle;
    pending *active;
    int closing;                 /* timer handles not yet closed */
    _Atomic uint64_t requests;
};

/* ---- answering --------------------------------------------------------------------- */
static void answer(upstream_server *s, http_exchange *x, const http_server_request *req,
                   const upstream_plan *p)
{
    upstream_reply rep;
    upstream_app_reply(&s->app, req, p, &rep);
    atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
    http_respond(x, rep.status, rep.headers, rep.nheaders, rep.body, rep.body_len);
}

static void unlink_active(upstream_server *s, pending *pd)
{
    if (pd->prev)
        pd->prev->next = pd->next;
    else
        s->active = pd->next;
    if (pd->next)
        pd->next->prev = pd->prev;
    pd->prev = NULL;
    pd->next = s->idle;
    s->idle = pd;
    pd->x = NULL;
    pd->req = NULL;
}

static void on_timer(uv_timer_t *t)
{
    pending *pd = t->data;
    upstream_server *s = pd->srv;
    http_exchange *x = pd->x;
    const http_server_request *req = pd->req;
    upstream_plan plan = pd->plan;
    unlink_active(s, pd);
    answer(s, x, req, &plan);
}

static void on_cancel(void *arg)
{
    pending *pd = arg;
    uv_timer_stop(&pd->timer);
    unlink_active(pd->srv, pd);
}

static void on_request(http_exchange *x, const http_server_request *req, void *user)
{
    upstream_server *s = user;
    upstream_plan plan;
    upstream_app_plan(&s->app, req, &plan);
    if (plan.delay_ms == 0) {
        answer(s, x, req, &plan);
        return;
    }
    pending *pd = s->idle;
    if (pd) {
        s->idle = pd->next;
    } else {
        pd = cu_calloc(1, sizeof *pd);
        uv_timer_init(s->loop, &pd->timer);
        pd->timer.data = pd;
        pd->srv = s;
        pd->next_all = s->all;
        s->all = pd;
    }
    pd->x = x;
    pd->req = req;
    pd->plan = plan;
    pd->prev = NULL;
    pd->next = s->active;
    if (s->active)
        s->active->prev = pd;
    s->active = pd;
    http_exchange_set_cancel(x, on_cancel, pd);
    uv_update_time(s->loop); /* a cached loop time would fire early */
    uv_timer_start(&pd->timer, on_timer, plan.delay_ms, 0);
}

/* ---- one server ---------------------------------------------------------------------- */
static void server_free(upstream_server *s)
{
    upstream_app_free(&s->app);
    if (s->tls)
        net_tls_free(s->tls);
    free(s);
}

int upstream_server_start(upstream_server **out, uv_loop_t *loop, const upstream_config *cfg,
                          int port, uint64_t seed, char err[CU_ERRLEN])
{
    int rc;
    upstream_server *s = cu_calloc(1, sizeof *s);
    s->loop = loop;
    upstream_app_init(&s->app, cfg, seed);
    if ((cfg->tls_cert != NULL) != (cfg->tls_key != NULL)) {
        snprintf(err, CU_ERRLEN, "TLS needs both a certificate and a key");
        rc = -EINVAL;
        goto fail;
    }
    if (cfg->tls_cert && (rc = net_tls_server_new(&s->tls, cfg->tls_cert, cfg->tls_key, err)) < 0)
        goto fail;
    http_server_opts o = {
        .host = cfg->host && *cfg->host ? cfg->host : "127.0.0.1",
        .port = port,
        .tls = s->tls,
    };
    if ((rc = http_server_start(&s->http, loop, &o, on_request, s, err)) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    server_free(s);
    *out = NULL;
    return rc;
}

int upstream_server_port(const upstream_server *s)
{
    return http_server_port(s->http);
}

uint64_t upstream_server_requests(const upstream_server *s)
{
    return atomic_load_explicit(&s->requests, memory_order_relaxed);
}

static void on_timer_closed(uv_handle_t *h)
{
    pending *pd = h->data;
    upstream_server *s = pd->srv;
    free(pd);
    if (--s->closing == 0)
        server_free(s);
}

void upstream_server_stop(upstream_server *s)
{
    while (s->active) {
        pending *pd = s->active;
        http_exchange *x = pd->x;
        uv_timer_stop(&pd->timer);
        unlink_active(s, pd);
        http_header h[2] = {
            {S("Content-Type"), S("application/json; charset=utf-8")},
            {S("X-Cutover-Color"), s->app.color, strlen(s->app.color)},
        };
        http_respond(x, 503, h, 2, S(BODY_503));
    }
    http_server_stop(s->http);
    s->http = NULL;
    pending *pd = s->all;
    s->all = s->idle = NULL;
    if (!pd) {
        server_free(s);
        return;
    }
    for (; pd; pd = pd->next_all) {
        s->closing++;
        uv_close((uv_handle_t *)&pd->timer, on_timer_closed);
    }
}

/* ---- worker threads -------------------------------------------------------------------- */
typedef struct worker {
    upstream *u;
    int index;
    int port;                    /* to bind; then the bound one */
    uint64_t seed;
    uv_thread_t tid;
    uv_loop_t loop;
    uv_async_t stop;
    upstream_server *srv;
    bool done;                   /* start-up finished (status valid) */
    int status;
    char err[CU_ERRLEN];
} worker;

struct upstream {
    upstream_config cfg;         /* strings are copies */
    char *host, *color, *tls_cert, *tls_key;
    int nworkers;
    int nstarted;                /* threads created */
    worker *w;
    uv_mutex_t mu;
    uv_cond_t cv;
    int port;
    upstream_fault *fault;       /* shared by the workers' apps */
};

static void on_stop(uv_async_t *a)
{
    worker *w = a->data;
    upstream_server_stop(w->srv);
    w->srv = NULL;
    uv_close((uv_handle_t *)a, NULL);
}

static void worker_main(void *arg)
{
    worker *w = arg;
    upstream *u = w->u;
    int rc = uv_loop_init(&w->loop);
    bool have_loop = rc == 0;
    if (rc < 0) {
        snprintf(w->err, CU_ERRLEN, "worker %d: uv_loop_init: %s", w->index, uv_strerror(rc));
    } else {
        rc = upstream_server_start(&w->srv, &w->loop, &u->cfg, w->port, w->seed, w->err);
        if (rc == 0) {
            uv_async_init(&w->loop, &w->stop, on_stop);
            w->stop.data = w;
            w->port = upstream_server_port(w->srv);
        }
    }
    uv_mutex_lock(&u->mu);
    w->status = rc;
    w->done = true;
    uv_cond_broadcast(&u->cv);
    uv_mutex_unlock(&u->mu);
    if (!have_loop)
        return;
    /* Serves until on_stop; after a failed start it only flushes closes. */
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&w->loop) != 0)
        cu_warn("upstream worker %d: loop closed with handles still open", w->index);
}

static int start_worker(upstream *u, worker *w, char err[CU_ERRLEN])
{
    int rc = uv_thread_create(&w->tid, worker_main, w);
    if (rc < 0) {
        snprintf(err, CU_ERRLEN, "cannot start a worker thread: %s", uv_strerror(rc));
        return rc;
    }
    u->nstarted++;
    uv_mutex_lock(&u->mu);
    while (!w->done)
        uv_cond_wait(&u->cv, &u->mu);
    uv_mutex_unlock(&u->mu);
    if (w->status < 0)
        snprintf(err, CU_ERRLEN, "%s", w->err);
    return w->status;
}

int upstream_start(upstream **out, const upstream_config *cfg, char err[CU_ERRLEN])
{
    upstream *u = cu_calloc(1, sizeof *u);
    u->cfg = *cfg;
    u->host = cu_strdup(cfg->host && *cfg->host ? cfg->host : "127.0.0.1");
    u->color = cu_strdup(cfg->color && *cfg->color ? cfg->color : "blue");
    u->tls_cert = cfg->tls_cert ? cu_strdup(cfg->tls_cert) : NULL;
    u->tls_key = cfg->tls_key ? cu_strdup(cfg->tls_key) : NULL;
    u->cfg.host = u->host;
    u->cfg.color = u->color;
    u->cfg.tls_cert = u->tls_cert;
    u->cfg.tls_key = u->tls_key;
    u->fault = upstream_fault_new(cfg->error_rate, &cfg->latency);
    u->cfg.fault = u->fault;
    u->nworkers = cfg->workers > 0 ? cfg->workers : 1;
    u->w = cu_calloc((size_t)u->nworkers, sizeof *u->w);
    uv_mutex_init(&u->mu);
    uv_cond_init(&u->cv);
    uint64_t seed = cfg->has_seed ? cfg->seed : cu_seed_entropy();
    int rc = 0;
    for (int i = 0; i < u->nworkers; i++) {
        worker *w = &u->w[i];
        w->u = u;
        w->index = i;
        w->port = i == 0 ? cfg->port : u->port;
        w->seed = seed + (uint64_t)i * 0x9e3779b97f4a7c15ull;
        if ((rc = start_worker(u, w, err)) < 0)
            break;
        if (i == 0)
            u->port = w->port;
    }
    if (rc < 0) {
        upstream_stop(u);
        *out = NULL;
        return rc;
    }
    *out = u;
    return 0;
}

int upstream_port(const upstream *u)
{
    return u->port;
}

uint64_t upstream_requests(const upstream *u)
{
    uint64_t n = 0;
    for (int i = 0; i < u->nstarted; i++)
        if (u->w[i].status == 0 && u->w[i].srv)
            n += upstream_server_requests(u->w[i].srv);
    return n;
}

void upstream_stop(upstream *u)
{
    if (!u)
        return;
    for (int i = 0; i < u->nstarted; i++)
        if (u->w[i].status == 0)
            uv_async_send(&u->w[i].stop);
    for (int i = 0; i < u->nstarted; i++)
        uv_thread_join(&u->w[i].tid);
    uv_cond_destroy(&u->cv);
    uv_mutex_destroy(&u->mu);
    free(u->w);
    free(u->host);
    free(u->color);
    free(u->tls_cert);
    free(u->tls_key);
    upstream_fault_free(u->fault);
    free(u);
}

upstream_fault *upstream_get_fault(upstream *u)
{
    return u->fault;
}
