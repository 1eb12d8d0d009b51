/* Notifications: the journal's outbox delivered to each receiver (a webhook
 * POST of the JSON payload, or an exec hook fed the payload on stdin),
 * asynchronously on the controller's loop, so a slow receiver never delays
 * a decision or the traffic.
 *
 * Invariants: at most one delivery in flight per receiver, always of the
 * oldest undelivered row of that receiver, so each receiver sees its events
 * in order; a row is marked delivered (in the journal) only after a 2xx
 * answer or exit status 0, so a failure retries the same row, with
 * exponential backoff (base, 2 x base, ... capped at 64 x base) on the
 * controller's clock. A crash after the receiver accepted but before the
 * journal recorded it re-sends that one row on restart: receivers that must
 * not see it twice deduplicate on the payload's event_id (also sent as the
 * X-Cutover-Event-Id header).
 * Process-wide effect: rn_new ignores SIGPIPE if its disposition is still
 * the default (a hook that exits without reading stdin must not kill serve).
 * Thread rules: the loop's thread only.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "rollout/internal.h"

typedef struct rn_recv rn_recv;

struct rn {
    uv_loop_t *loop;
    rj *j;
    const rollout_plan *plan;
    rollout_clock_fn clock;
    void *clock_ctx;
    int64_t base_ms;
    net_resolver *resolver;
    rn_recv *rs;
    size_t nrs;
    int inflight;            /* deliveries whose callbacks have not fired yet */
    bool closing;
};

struct rn_recv {
    rn *n;
    const rollout_receiver *r;
    http_url url;
    bool url_ok;
    net_tls *tls;            /* https receivers: verifying client context */
    http_client *cli;
    bool busy;
    int64_t retry_at_ms;
    unsigned failures;       /* consecutive, for the backoff */
    rj_outbox_row row;
    char event_id[128];
};

typedef struct exec_job {
    rn_recv *rv;
    uv_process_t proc;
    uv_pipe_t pipe;
    uv_write_t wr;
    uv_timer_t timer;
    int open_handles;
    bool exited, killed;
    int64_t status;
    int term_signal;
    char *payload;
} exec_job;

static int64_t now_ms(const rn *n)
{
    return n->clock ? n->clock(n->clock_ctx) : cu_wall_ms();
}

rn *rn_new(uv_loop_t *loop, rj *j, const rollout_plan *plan, rollout_clock_fn clock,
           void *clock_ctx, int64_t retry_base_ms)
{
    rn *n = cu_calloc(1, sizeof *n);
    n->loop = loop;
    n->j = j;
    n->plan = plan;
    n->clock = clock;
    n->clock_ctx = clock_ctx;
    n->base_ms = retry_base_ms;
    n->resolver = net_resolver_new(loop, 60000);
    n->nrs = plan->nreceivers;
    /* a hook that exits without reading stdin (or a receiver that closes
     * early) must cost an EPIPE, not the process: ignore SIGPIPE unless
     * the program already chose a handler, as network servers do anyway */
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    n->rs = cu_calloc(n->nrs ? n->nrs : 1, sizeof *n->rs);
    for (size_t i = 0; i < n->nrs; i++) {
        rn_recv *rv = &n->rs[i];
        rv->n = n;
        rv->r = &plan->receivers[i];
        if (rv->r->webhook) {
            char err[CU_ERRLEN];
            rv->url_ok = http_url_parse(&rv->url, rv->r->webhook, err) == 0;
            if (!rv->url_ok)
                cu_error("rollout: webhook %s: %s", rv->r->webhook, err);
            if (rv->url_ok && rv->url.tls &&
                net_tls_client_new(&rv->tls, true, rv->r->ca, err) < 0) {
                cu_error("rollout: webhook %s: %s", rv->r->webhook, err);
                rv->tls = NULL; /* deliveries fail (and are retried) with EINVAL */
            }
        }
    }
    return n;
}

static void maybe_free(rn *n)
{
    if (!n->closing || n->inflight > 0)
        return;
    for (size_t i = 0; i < n->nrs; i++) {
        rj_outbox_row_free(&n->rs[i].row);
        if (n->rs[i].url_ok)
            http_url_free(&n->rs[i].url);
        if (n->rs[i].tls)
            net_tls_free(n->rs[i].tls);
    }
    net_resolver_free(n->resolver);
    free(n->rs);
    free(n);
}

/* Records the outcome of the delivery in flight; err == NULL is success. */
static void finish(rn_recv *rv, const char *err)
{
    rn *n = rv->n;
    rv->busy = false;
    n->inflight--;
    if (n->closing) {
        rj_outbox_row_free(&rv->row);
        maybe_free(n);
        return;
    }
    if (!err) {
        rj_outbox_done(n->j, rv->row.id, now_ms(n));
        rv->failures = 0;
        rv->retry_at_ms = 0;
    } else {
        rj_outbox_failed(n->j, rv->row.id, err);
        rv->failures++;
        int64_t delay = n->base_ms << CU_MIN(rv->failures - 1, 6u);
        rv->retry_at_ms = now_ms(n) + delay;
        cu_warn("rollout: notification %s to %s failed (%s); retry in %lld ms", rv->row.event,
                rv->r->key, err, (long long)delay);
    }
    rj_outbox_row_free(&rv->row);
    rn_pump(n);
}

/* ---- webhooks ----------------------------------------------------------------------- */
static void on_response(void *user, int err, const http_response *res)
{
    rn_recv *rv = user;
    char why[160];
    if (err < 0) {
        snprintf(why, sizeof why, "%s", http_error_name(err));
        finish(rv, why);
    } else if (res->status < 200 || res->status > 299) {
        snprintf(why, sizeof why, "HTTP %d", res->status);
        finish(rv, why);
    } else {
        finish(rv, NULL);
    }
}

static int send_webhook(rn_recv *rv)
{
    rn *n = rv->n;
    if (!rv->url_ok || (rv->url.tls && !rv->tls))
        return -EINVAL;
    if (!rv->cli) {
        http_client_opts o = {.resolver = n->resolver, .tls = rv->tls};
        rv->cli = http_client_new(n->loop, &rv->url, &o);
        if (!rv->cli)
            return -ENOMEM;
    }
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)rv->row.id);
    http_header h[] = {
        {"Content-Type", 12, "application/json", 16},
        {"User-Agent", 10, "cutover-rollout", 15},
        {"X-Cutover-Event", 15, rv->row.event, strlen(rv->row.event)},
        {"X-Cutover-Event-Id", 18, rv->event_id, strlen(rv->event_id)},
        {"X-Cutover-Delivery", 18, id, strlen(id)},
    };
    http_request req = {.method = "POST", .target = rv->url.target, .headers = h,
                        .nheaders = CU_ARRAY_LEN(h), .body = rv->row.payload,
                        .body_len = strlen(rv->row.payload)};
    return http_client_send(rv->cli, &req, false, (uint64_t)rv->r->timeout_ms, on_response, rv);
}

/* ---- exec hooks ----------------------------------------------------------------------- */
static void job_closed(uv_handle_t *h)
{
    exec_job *jb = h->data;
    if (--jb->open_handles > 0)
        return;
    char why[96] = "";
    if (jb->killed)
        snprintf(why, sizeof why, "timed out, killed");
    else if (jb->term_signal)
        snprintf(why, sizeof why, "killed by signal %d", jb->term_signal);
    else if (jb->status != 0)
        snprintf(why, sizeof why, "exit status %lld", (long long)jb->status);
    rn_recv *rv = jb->rv;
    free(jb->payload);
    free(jb);
    finish(rv, why[0] ? why : NULL);
}

static void close_job(exec_job *jb)
{
    if (!uv_is_closing((uv_handle_t *)&jb->timer))
        uv_close((uv_handle_t *)&jb->timer, job_closed);
    if (!uv_is_closing((uv_handle_t *)&jb->pipe))
        uv_close((uv_handle_t *)&jb->pipe, job_closed);
    if (!uv_is_closing((uv_handle_t *)&jb->proc))
        uv_close((uv_handle_t *)&jb->proc, job_closed);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int term_signal)
{
    exec_job *jb = p->data;
    jb->exited = true;
    jb->status = status;
    jb->term_signal = term_signal;
    close_job(jb);
}

static void on_timeout(uv_timer_t *t)
{
    exec_job *jb = t->data;
    if (!jb->exited) {
        jb->killed = true;
        uv_process_kill(&jb->proc, SIGKILL);
    }
}

static void on_written(uv_write_t *w, int status)
{
    exec_job *jb = w->data;
    (void)status; /* a hook that does not read stdin may close it: EPIPE is fine */
    if (!uv_is_closing((uv_handle_t *)&jb->pipe))
        uv_close((uv_handle_t *)&jb->pipe, job_closed);
}

static int send_exec(rn_recv *rv)
{
    rn *n = rv->n;
    exec_job *jb = cu_calloc(1, sizeof *jb);
    jb->rv = rv;
    jb->payload = cu_asprintf("%s\n", rv->row.payload);
    uv_pipe_init(n->loop, &jb->pipe, 0);
    jb->pipe.data = jb;
    uv_timer_init(n->loop, &jb->timer);
    jb->timer.data = jb;
    jb->open_handles = 2;
    char *args[] = {"/bin/sh", "-c", rv->r->exec, NULL};
    uv_stdio_container_t io[3] = {
        {.flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&jb->pipe},
        {.flags = UV_INHERIT_FD, .data.fd = 1},
        {.flags = UV_INHERIT_FD, .data.fd = 2},
    };
    char ev_env[160], id_env[160];
    snprintf(ev_env, sizeof ev_env, "CUTOVER_EVENT=%s", rv->row.event);
    snprintf(id_env, sizeof id_env, "CUTOVER_EVENT_ID=%s", rv->event_id);
    extern char **environ;
    size_t ne = 0;
    while (environ[ne])
        ne++;
    char **env = cu_calloc(ne + 3, sizeof *env);
    memcpy(env, environ, ne * sizeof *env);
    env[ne] = ev_env;
    env[ne + 1] = id_env;
    uv_process_options_t o = {.exit_cb = on_exit_cb, .file = "/bin/sh", .args = args,
                              .env = env, .stdio_count = 3, .stdio = io};
    jb->proc.data = jb;
    int rc = uv_spawn(n->loop, &jb->proc, &o);
    free(env);
    if (rc < 0) {
        /* the process handle was initialised by uv_spawn and must be closed */
        jb->exited = true;
        jb->status = 127;
        jb->open_handles = 3;
        n->inflight++;
        rv->busy = true;
        close_job(jb);
        return 0;
    }
    jb->open_handles = 3;
    uv_buf_t b = uv_buf_init(jb->payload, (unsigned)strlen(jb->payload));
    jb->wr.data = jb;
    if (uv_write(&jb->wr, (uv_stream_t *)&jb->pipe, &b, 1, on_written) < 0)
        uv_close((uv_handle_t *)&jb->pipe, job_closed);
    uv_timer_start(&jb->timer, on_timeout, (uint64_t)rv->r->timeout_ms, 0);
    n->inflight++;
    rv->busy = true;
    return 0;
}

/* ---- pump ----------------------------------------------------------------------------- */
static void event_id_of(rn_recv *rv)
{
    rv->event_id[0] = 0;
    json_t *p = json_loads(rv->row.payload, 0, NULL);
    const char *id = p ? json_string_value(json_object_get(p, "event_id")) : NULL;
    snprintf(rv->event_id, sizeof rv->event_id, "%s", id ? id : "");
    json_decref(p);
}

void rn_pump(rn *n)
{
    if (n->closing)
        return;
    int64_t now = now_ms(n);
    for (size_t i = 0; i < n->nrs; i++) {
        rn_recv *rv = &n->rs[i];
        if (rv->busy || (rv->retry_at_ms && now < rv->retry_at_ms))
            continue;
        if (rj_outbox_next(n->j, rv->r->key, &rv->row) != 1)
            continue;
        event_id_of(rv);
        if (rv->r->webhook) {
            int rc = send_webhook(rv);
            if (rc < 0) {
                rj_outbox_failed(n->j, rv->row.id, strerror(-rc));
                rv->failures++;
                rv->retry_at_ms = now + (n->base_ms << CU_MIN(rv->failures - 1, 6u));
                rj_outbox_row_free(&rv->row);
                continue;
            }
            rv->busy = true;
            n->inflight++;
        } else {
            send_exec(rv);
        }
    }
}

void rn_close(rn *n)
{
    if (!n)
        return;
    n->closing = true;
    n->inflight++; /* a cancelled request may complete inside http_client_free */
    for (size_t i = 0; i < n->nrs; i++) {
        if (n->rs[i].cli) {
            http_client_free(n->rs[i].cli);
            n->rs[i].cli = NULL;
        }
    }
    n->inflight--;
    maybe_free(n);
}
