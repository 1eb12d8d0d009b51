/* router/exchange.c: the upstream side of an exchange (see proxy.h).
 *
 * Getting a connection: an idle pooled one (most recent first), else a new
 * one while the server has fewer than `max_conns`, else the client waits in
 * the server's FIFO (bounded by the connect timeout). A connection freed
 * by a finished response goes straight to the first waiter.
 *
 * Retries (at most one per request, on the other colour, when enabled):
 * the request could not be connected, or it is idempotent, fully read,
 * still replayable (head + body <= 64 KiB) and got no byte back to the
 * client yet while its attempt failed in transport or was answered 502/503.
 * A reused keep-alive connection that dies before any response byte is
 * retried once more on a fresh connection to the same server first (the
 * server closed an idle connection as we reused it), idempotent requests
 * only. Every attempt is measured on its own colour.
 *
 * Re-entrancy: nothing re-binds an upstream connection from inside its own
 * parser callbacks; a complete response is handled after llhttp_execute
 * returns (msg_done). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "router/proxy.h"

static void send_request(rt_cconn *c);
static void upstream_failed(rt_cconn *c, int err);
static void acquire(rt_cconn *c, rt_server *srv, bool fresh);

/* ---- connections ------------------------------------------------------------------- */
static void detach(rt_cconn *c)
{
    if (c->u) {
        c->u->c = NULL;
        c->u = NULL;
    }
}

/* Off one of the doubly linked lists of upstream connections (a server's
 * idle list, the router's ending list). */
static void list_unlink(rt_uconn **head, rt_uconn *u)
{
    if (u->prev)
        u->prev->next = u->next;
    else
        *head = u->next;
    if (u->next)
        u->next->prev = u->prev;
    u->prev = u->next = NULL;
}

static void idle_unlink(rt_uconn *u)
{
    if (!u->idle)
        return;
    list_unlink(&u->srv->idle, u);
    u->idle = false;
    u->srv->nidle--;
}

/* ---- gathered writes ------------------------------------------------------------------ */
static void wunlink(rt_uconn *u)
{
    if (!u->wlisted)
        return;
    if (u->wprev)
        u->wprev->wnext = u->wnext;
    else
        u->gen->r->wpend = u->wnext;
    if (u->wnext)
        u->wnext->wprev = u->wprev;
    u->wprev = u->wnext = NULL;
    u->wlisted = false;
}

static void widle_cb(uv_idle_t *h)
{
    (void)h; /* only there to keep the poll from blocking */
}

static void client_unpause(rt_uconn *u);

/* What rt_uwrite gathered for u goes out now. A client paused for it is
 * resumed here when the kernel took it all (no on_drain follows then). */
static void wflush(rt_uconn *u)
{
    wunlink(u);
    if (u->wout.len && u->s && !u->closing) {
        net_write(u->s, u->wout.data, u->wout.len);
        if (net_stream_queued(u->s) == 0)
            client_unpause(u);
    }
    cu_buf_reset(&u->wout);
}

void rt_uwrite(rt_uconn *u, const void *p, size_t n)
{
    router *r = u->gen->r;
    if (r->wdirect) {
        net_write(u->s, p, n);
        return;
    }
    if (!u->wlisted) {
        if (!r->wpend)
            uv_idle_start(&r->widle, widle_cb); /* a write from a timer: do not block in the poll */
        u->wlisted = true;
        u->wnext = r->wpend;
        if (r->wpend)
            r->wpend->wprev = u;
        r->wpend = u;
    }
    cu_buf_append(&u->wout, p, n);
}

size_t rt_uqueued(const rt_uconn *u)
{
    return u->wout.len + (u->s ? net_stream_queued(u->s) : 0);
}

void rt_flush_writes(router *r)
{
    while (r->wpend)
        wflush(r->wpend);
    uv_idle_stop(&r->widle);
}

static void uconn_free(rt_uconn *u)
{
    rt_server *srv = u->srv;
    rt_gen *g = u->gen;
    srv->nconns--;
    wunlink(u);
    cu_buf_free(&u->wout);
    rt_head_free(&u->h);
    free(u);
    rt_server_slot_free(srv);
    rt_gen_unref(g);
}

/* Off the idle list and away from its exchange, and marked closing; false
 * when it was closing already. */
static bool uconn_leave(rt_uconn *u)
{
    idle_unlink(u);
    if (u->c) {
        u->c->u = NULL;
        u->c = NULL;
    }
    if (u->closing)
        return false;
    u->closing = true;
    return true;
}

void rt_uconn_close(rt_uconn *u)
{
    if (uconn_leave(u) && u->s)
        net_stream_close(u->s);
    /* no stream: still resolving; on_resolved frees it */
}

rt_uconn *rt_server_take_idle(rt_server *srv)
{
    rt_uconn *u = srv->idle;
    if (u)
        idle_unlink(u);
    return u;
}

static void release(rt_uconn *u)
{
    rt_server *srv = u->srv;
    u->uses++;
    if (u->paused) {
        u->paused = false;
        net_resume(u->s);
    }
    if (srv->gen->retired || u->closing) {
        rt_uconn_close(u);
        return;
    }
    if (srv->wait_head) {
        rt_cconn *c = srv->wait_head;
        srv->wait_head = c->wnext;
        if (srv->wait_head)
            srv->wait_head->wprev = NULL;
        else
            srv->wait_tail = NULL;
        c->waiting = false;
        c->wnext = c->wprev = NULL;
        c->u = u;
        u->c = c;
        send_request(c);
        return;
    }
    if (srv->nidle >= srv->gen->cfg.pools[srv->color].max_idle) {
        rt_uconn_close(u);
        return;
    }
    u->idle = true;
    u->idle_since_ns = cu_now_ns();
    u->prev = NULL;
    u->next = srv->idle;
    if (srv->idle)
        srv->idle->prev = u;
    srv->idle = u;
    srv->nidle++;
}

static void wait_unlink(rt_cconn *c)
{
    if (!c->waiting)
        return;
    rt_server *srv = c->srv;
    if (c->wprev)
        c->wprev->wnext = c->wnext;
    else
        srv->wait_head = c->wnext;
    if (c->wnext)
        c->wnext->wprev = c->wprev;
    else
        srv->wait_tail = c->wprev;
    c->wprev = c->wnext = NULL;
    c->waiting = false;
}

void rt_server_slot_free(rt_server *srv)
{
    while (srv->wait_head && srv->nconns < srv->gen->cfg.pools[srv->color].max_conns) {
        rt_cconn *c = srv->wait_head;
        wait_unlink(c);
        acquire(c, srv, true);
    }
}

/* ---- upstream stream callbacks ------------------------------------------------------------ */
static void u_on_connect(net_stream *s, int status);
static void u_on_read(net_stream *s, const char *data, size_t len);
static void u_on_end(net_stream *s, int status);
static void u_on_drain(net_stream *s);
static void u_on_close(net_stream *s);
const net_stream_cbs rt_uconn_cbs = {u_on_connect, u_on_read, u_on_end, u_on_drain, u_on_close};

static void ending_unlink(rt_uconn *u)
{
    if (!u->ending)
        return;
    list_unlink(&u->gen->r->ending, u);
    u->ending = false;
}

void rt_uconn_end(rt_uconn *u)
{
    if (!u->closing && u->s)
        wflush(u); /* what was gathered for it goes before the end */
    if (!uconn_leave(u) || !u->s)
        return; /* closing already, or still resolving (on_resolved frees it) */
    router *r = u->gen->r;
    u->ending = true;
    u->end_by_ns = cu_now_ns() + (uint64_t)RT_LINGER_MS * 1000000ULL;
    u->prev = NULL;
    u->next = r->ending;
    if (r->ending)
        r->ending->prev = u;
    r->ending = u;
    net_stream_end(u->s);
}

void rt_uconn_sweep_ending(router *r, uint64_t now_ns, bool all)
{
    for (rt_uconn *u = r->ending; u; u = u->next)
        if (!u->cut && (all || now_ns >= u->end_by_ns)) {
            u->cut = true;
            net_stream_close(u->s); /* on_close unlinks it, later */
        }
}

static void u_on_close(net_stream *s)
{
    rt_uconn *u = net_stream_user(s);
    idle_unlink(u);
    ending_unlink(u);
    rt_cconn *c = u->c;
    if (c) {
        c->u = NULL;
        u->c = NULL;
        if (c->up == UP_TUNNEL) { /* a tunnel without its upstream is over */
            c->up = UP_NONE;
            rt_cconn_end(c);
        }
    }
    uconn_free(u);
}

static void on_resolved(void *user, int status, const struct sockaddr *addr)
{
    rt_uconn *u = user;
    if (!u->c || u->closing) {
        uconn_free(u);
        return;
    }
    if (status < 0) {
        rt_cconn *c = u->c;
        detach(c);
        uconn_free(u);
        upstream_failed(c, status);
        return;
    }
    rt_server *srv = u->srv;
    u->s = net_connect(srv->gen->r->loop, addr, srv->u.tls ? srv->gen->tls : NULL, srv->u.host,
                       &rt_uconn_cbs, u);
}

static void u_on_connect(net_stream *s, int status)
{
    rt_uconn *u = net_stream_user(s);
    if (status < 0) {
        rt_cconn *c = u->c;
        rt_uconn_close(u);
        if (c)
            upstream_failed(c, status);
        return;
    }
    u->connected = true;
    if (u->c)
        send_request(u->c);
    else
        release(u);
}

static void u_on_drain(net_stream *s)
{
    client_unpause(net_stream_user(s));
}

/* u's queue emptied: the client paused for its sake reads again. */
static void client_unpause(rt_uconn *u)
{
    rt_cconn *c = u->c;
    if (c && c->bp_paused) {
        c->bp_paused = false;
        /* the client was paused for the upstream's sake, not silent */
        if (c->tkind == T_BODY)
            rt_arm(c, T_BODY, c->gen->cfg.body_timeout_ms);
        rt_client_read_update(c);
    }
}

/* ---- response parsing ----------------------------------------------------------------------- */
static rt_uconn *U(llhttp_t *p) { return p->data; }

static int r_begin(llhttp_t *p)
{
    rt_head_reset(&U(p)->h);
    return 0;
}

static int r_field(llhttp_t *p, const char *at, size_t len)
{
    rt_uconn *u = U(p);
    if (rt_head_field(&u->h, at, len, 1000) < 0 || u->h.raw.len > 256 * 1024)
        return HPE_USER;
    return 0;
}

static int r_field_done(llhttp_t *p)
{
    rt_head_field_done(&U(p)->h);
    return 0;
}

static int r_value(llhttp_t *p, const char *at, size_t len)
{
    rt_uconn *u = U(p);
    rt_head_value(&u->h, at, len);
    return u->h.raw.len > 256 * 1024 ? HPE_USER : 0;
}

static int r_value_done(llhttp_t *p)
{
    rt_head_value_done(&U(p)->h);
    return 0;
}

static bool can_retry(const rt_cconn *c, bool connect_failure)
{
    if (!c->gen->cfg.retry || c->retried || c->resp_started || !c->replayable)
        return false;
    if (connect_failure)
        return true;
    return c->idempotent && c->rq == RQ_DONE;
}

static void retry(rt_cconn *c)
{
    router_color other = c->color == ROUTER_BLUE ? ROUTER_GREEN : ROUTER_BLUE;
    if (c->u) {
        rt_uconn *u = c->u;
        detach(c);
        rt_uconn_close(u);
    }
    wait_unlink(c);
    rt_stats_retry(&c->r->stats, other);
    c->retried = true;
    rt_exchange_start(c, other);
    c->why = "retry";
}

static void put_content_length(cu_buf *b, uint64_t n)
{
    cu_buf_appends(b, "Content-Length: ");
    cu_buf_append_u64(b, n);
    cu_buf_appends(b, "\r\n");
}

static void write_head(rt_cconn *c, rt_uconn *u, llhttp_t *p)
{
    const router_config *cfg = &c->gen->cfg;
    const rt_head *h = &u->h;
    int st = p->status_code;
    cu_buf *bp = &c->rhead;
    cu_buf_reset(bp);
    cu_buf_appends(bp, "HTTP/1.1 ");
    cu_buf_append_u64(bp, (uint64_t)st);
    cu_buf_appends(bp, " ");
    cu_buf_appends(bp, http_status_text(st));
    cu_buf_appends(bp, "\r\n");
    size_t cl = cfg->color_header ? strlen(cfg->color_header) : 0;
    for (size_t i = 0; i < h->nsp; i++) {
        const rt_span *sp = &h->sp[i];
        const char *name = h->raw.data + sp->no;
        if (rt_hop_by_hop(h, name, sp->nl, false))
            continue;
        if (cl && sp->nl == cl && strncasecmp(name, cfg->color_header, cl) == 0)
            continue;
        rt_put_header(bp, name, sp->nl, h->raw.data + sp->vo, sp->vl);
    }
    bool has_cl = (p->flags & F_CONTENT_LENGTH) != 0;
    bool chunked = (p->flags & F_CHUNKED) != 0;
    bool no_body = c->head_req || st == 204 || st == 304;
    size_t ul;
    const char *upg = st == 101 ? rt_head_find(h, "upgrade", &ul) : NULL;
    if (upg) {
        cu_buf_appends(bp, "Connection: upgrade\r\n");
        rt_put_header(bp, "Upgrade", 7, upg, ul);
    } else if (no_body) {
        if (has_cl && c->head_req)
            put_content_length(bp, p->content_length);
    } else if (has_cl && !chunked) {
        put_content_length(bp, p->content_length);
    } else if (c->minor >= 1) {
        cu_buf_appends(bp, "Transfer-Encoding: chunked\r\n");
        c->resp_chunked = true;
    } else {
        c->resp_close = true;
        c->close_after = true;
    }
    size_t vl;
    const char *via = rt_head_find(h, "via", &vl);
    cu_buf_appends(bp, "Via: ");
    if (via) {
        cu_buf_append(bp, via, vl);
        cu_buf_appends(bp, ", ");
    }
    cu_buf_appends(bp, "1.1 cutover\r\n");
    if (cl)
        rt_put_header(bp, cfg->color_header, cl, router_color_name(c->color),
                      strlen(router_color_name(c->color)));
    if (upg)
        ;
    else if (c->close_after || !c->keep_alive || c->r->draining || c->upgrade)
        cu_buf_appends(bp, "Connection: close\r\n");
    else if (c->minor == 0)
        cu_buf_appends(bp, "Connection: keep-alive\r\n");
    cu_buf_appends(bp, "\r\n");
    c->resp_started = true;
    rt_cwrite(c, bp->data, bp->len);
}

static int r_headers_complete(llhttp_t *p)
{
    rt_uconn *u = U(p);
    rt_cconn *c = u->c;
    if (u->h.open)
        rt_head_value_done(&u->h);
    int st = p->status_code;
    size_t vl;
    if (st == 101) {
        /* switching protocols: only as the answer to an Upgrade we passed on */
        if (!c->tunnel_ok || !p->upgrade || !rt_head_find(&u->h, "upgrade", &vl))
            return HPE_USER;
        c->status = st;
        c->up = UP_RESP;
        u->switched = true;
        rt_server_passive(c->srv, false);
        write_head(c, u, p);
        return 1; /* no body, whatever the head says: the next byte is the new protocol's */
    }
    if (st < 200) {
        u->interim = true;
        return 0;
    }
    c->status = st;
    rt_server_passive(c->srv, st >= 500);
    if ((st == 502 || st == 503) && can_retry(c, false)) {
        rt_stats_record(&c->r->stats, c->color, st,
                        (double)(cu_now_ns() - c->t0_ns) / 1e6, 0, 0, cu_now_ns());
        retry(c);
        return HPE_USER;
    }
    c->up = UP_RESP;
    write_head(c, u, p);
    return c->head_req ? 1 : 0;
}

static int r_body(llhttp_t *p, const char *at, size_t len)
{
    rt_uconn *u = U(p);
    rt_cconn *c = u->c;
    if (!c)
        return HPE_USER;
    if (c->resp_chunked) {
        char hdr[24];
        int n = snprintf(hdr, sizeof hdr, "%zx\r\n", len);
        rt_cwrite(c, hdr, (size_t)n);
        rt_cwrite(c, at, len);
        rt_cwrite(c, "\r\n", 2);
    } else {
        rt_cwrite(c, at, len);
    }
    return 0;
}

static int r_complete(llhttp_t *p)
{
    rt_uconn *u = U(p);
    if (u->interim) {
        u->interim = false;
        return 0;
    }
    u->msg_done = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t resp_settings = {
    .on_message_begin = r_begin,
    .on_header_field = r_field,
    .on_header_field_complete = r_field_done,
    .on_header_value = r_value,
    .on_header_value_complete = r_value_done,
    .on_headers_complete = r_headers_complete,
    .on_body = r_body,
    .on_message_complete = r_complete,
};

/* The response is complete (called outside the parser). `ended`: the
 * connection is not reusable (closed by the upstream, or spoke out of turn). */
static void complete(rt_uconn *u, rt_cconn *c, bool ended)
{
    if (c->resp_chunked)
        rt_cwrite(c, "0\r\n\r\n", 5);
    bool ka = !ended && llhttp_should_keep_alive(&u->ll) && c->rq == RQ_DONE;
    c->early = c->rq == RQ_BODY;
    detach(c);
    if (ka)
        release(u);
    else
        rt_uconn_close(u);
    c->up = UP_NONE;
    rt_finish(c, true);
}

static void u_on_read(net_stream *s, const char *data, size_t len)
{
    rt_uconn *u = net_stream_user(s);
    u->gen->r->io_read = true;
    if (u->closing)
        return;
    rt_cconn *c = u->c;
    if (!c) {
        rt_uconn_close(u); /* bytes on an idle connection: it is not reusable */
        return;
    }
    if (c->up == UP_TUNNEL) {
        rt_cwrite(c, data, len); /* pauses u while the client's queue is full */
        rt_arm(c, T_TUNNEL, c->r->gen->cfg.tunnel_timeout_ms);
        return;
    }
    u->got_bytes = true;
    if (c->tkind == T_RESPONSE)
        rt_arm(c, T_RESPONSE, c->gen->cfg.response_timeout_ms);
    c->cbatch = true;
    enum llhttp_errno e = llhttp_execute(&u->ll, data, len);
    if (u->switched && !u->closing && u->c == c &&
        (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE)) {
        /* the 101 head is out (batched in cout); what follows it is the
         * new protocol's */
        const char *pos = llhttp_get_error_pos(&u->ll);
        if (pos && pos >= data && pos < data + len)
            rt_cwrite(c, pos, (size_t)(data + len - pos));
        rt_cflush(c);
        rt_tunnel_begin(c);
        return;
    }
    rt_cflush(c);
    if (u->closing || u->c != c)
        return; /* retried or torn down from a callback */
    if (e == HPE_PAUSED && u->msg_done) {
        /* bytes after the response were never asked for: the connection
         * cannot be trusted for another request */
        const char *pos = llhttp_get_error_pos(&u->ll);
        complete(u, c, pos && pos < data + len);
        return;
    }
    if (e == HPE_OK)
        return;
    upstream_failed(c, HTTP_E_PARSE_BASE - (int)e);
}

static void u_on_end(net_stream *s, int status)
{
    rt_uconn *u = net_stream_user(s);
    if (u->closing)
        return;
    rt_cconn *c = u->c;
    if (!c) {
        rt_uconn_close(u);
        return;
    }
    if (c->up == UP_TUNNEL) {
        if (status == UV_EOF && !c->tun_client_eof && !c->closing) {
            /* the upstream half-closed: its FIN follows its bytes to the
             * client, whose bytes still go up (rt_tunnel_client_end) */
            c->tun_up_eof = true;
            net_stream_shutdown(c->s);
            return;
        }
        /* the upstream ended the tunnel (or both sides have now): what it
         * sent goes out, then the client closes */
        detach(c);
        rt_uconn_close(u);
        c->up = UP_NONE;
        rt_cconn_end(c);
        return;
    }
    if (status == UV_EOF && c->up == UP_RESP) {
        enum llhttp_errno e = llhttp_finish(&u->ll);
        if (u->msg_done && (e == HPE_OK || e == HPE_PAUSED)) {
            complete(u, c, true);
            return;
        }
    }
    upstream_failed(c, status == UV_EOF ? UV_ECONNRESET : status);
}

/* ---- the exchange ------------------------------------------------------------------------------ */
static void bind_conn(rt_cconn *c, rt_uconn *u)
{
    c->u = u;
    u->c = c;
    u->got_bytes = u->interim = u->msg_done = u->switched = false;
    llhttp_init(&u->ll, HTTP_RESPONSE, &resp_settings);
    u->ll.data = u;
    rt_head_reset(&u->h);
}

static void send_request(rt_cconn *c)
{
    rt_uconn *u = c->u;
    bind_conn(c, u);
    c->up = UP_SENT;
    /* one write: the head and what body arrived meanwhile (a retry replays
     * both from `replay`, which holds them all) */
    if (c->retried || c->fresh_retry) {
        rt_uwrite(u, c->replay.data, c->replay.len);
    } else {
        cu_buf_append(&c->fwd, c->pend.data, c->pend.len);
        rt_uwrite(u, c->fwd.data, c->fwd.len);
    }
    cu_buf_reset(&c->pend);
    c->head_sent = true;
    if (rt_uqueued(u) > RT_HIGH)
        c->bp_paused = true;
    if (c->rq == RQ_DONE)
        rt_arm(c, T_RESPONSE, c->gen->cfg.response_timeout_ms);
    else
        rt_arm(c, T_BODY, c->gen->cfg.body_timeout_ms);
    rt_client_read_update(c);
}

static void acquire(rt_cconn *c, rt_server *srv, bool fresh)
{
    c->srv = srv;
    rt_uconn *u = fresh ? NULL : rt_server_take_idle(srv);
    if (u) {
        c->u = u;
        u->c = c;
        send_request(c);
        return;
    }
    const router_pool_conf *pc = &srv->gen->cfg.pools[srv->color];
    if (srv->nconns >= pc->max_conns) {
        c->up = UP_WAIT;
        c->waiting = true;
        c->wnext = NULL;
        c->wprev = srv->wait_tail;
        if (srv->wait_tail)
            srv->wait_tail->wnext = c;
        else
            srv->wait_head = c;
        srv->wait_tail = c;
        rt_arm(c, T_CONNECT, c->gen->cfg.connect_timeout_ms);
        return;
    }
    u = cu_calloc(1, sizeof *u);
    u->srv = srv;
    u->gen = srv->gen;
    rt_gen_ref(u->gen);
    srv->nconns++;
    c->u = u;
    u->c = c;
    c->up = UP_CONNECT;
    rt_arm(c, T_CONNECT, c->gen->cfg.connect_timeout_ms);
    net_resolve(srv->gen->r->resolver, srv->u.host, srv->u.port, on_resolved, u);
}

void rt_exchange_start(rt_cconn *c, router_color color)
{
    c->color = color;
    c->up = UP_NONE;
    rt_server *srv = rt_gen_pick(c->gen, color, cu_now_ns());
    acquire(c, srv, false);
}

void rt_exchange_body(rt_cconn *c, const char *p, size_t n)
{
    if (c->replayable) {
        if (c->replay.len + n > RT_REPLAY_MAX) {
            c->replayable = false;
            cu_buf_free(&c->replay);
        } else {
            cu_buf_append(&c->replay, p, n);
        }
    }
    rt_uconn *u = c->u;
    if (u && u->s && (c->up == UP_SENT || c->up == UP_RESP)) {
        rt_uwrite(u, p, n); /* gathered for the turn with the head before it */
        if (!c->bp_paused && rt_uqueued(u) > RT_HIGH) {
            c->bp_paused = true;
            rt_client_read_update(c);
        }
        return;
    }
    cu_buf_append(&c->pend, p, n);
    if (c->pend.len >= RT_HIGH)
        rt_client_read_update(c);
}

static void upstream_failed(rt_cconn *c, int err)
{
    bool connecting = c->up == UP_CONNECT || c->up == UP_WAIT;
    bool queued = c->up == UP_WAIT; /* waiting for a pool slot says nothing of the server */
    rt_uconn *u = c->u;
    bool stale = u && u->uses > 0 && !u->got_bytes && !connecting;
    if (u) {
        detach(c);
        rt_uconn_close(u);
    }
    wait_unlink(c);
    c->up = UP_NONE;
    if (c->closing)
        return;
    if (stale && !c->fresh_retry && !c->resp_started && c->replayable && c->idempotent &&
        c->rq == RQ_DONE) {
        c->fresh_retry = true;
        acquire(c, c->srv, true);
        return;
    }
    if (c->srv && !queued && !c->resp_started)
        rt_server_passive(c->srv, true);
    uint64_t now = cu_now_ns();
    rt_stats_record(&c->r->stats, c->color, 0, (double)(now - c->t0_ns) / 1e6, 0, 0, now);
    if (c->resp_started) {
        c->status = 0;
        rt_cconn_close(c);
        return;
    }
    if (can_retry(c, connecting)) {
        retry(c);
        return;
    }
    rt_send_error(c, err == UV_ETIMEDOUT ? 504 : 502, false);
}

void rt_exchange_timeout(rt_cconn *c)
{
    if (c->up == UP_NONE)
        return;
    upstream_failed(c, UV_ETIMEDOUT);
}

void rt_exchange_abort(rt_cconn *c)
{
    wait_unlink(c);
    if (c->u) {
        rt_uconn *u = c->u;
        detach(c);
        rt_uconn_close(u);
    }
    c->up = UP_NONE;
}

/* ---- tunnels ---------------------------------------------------------------------------------- */
void rt_tunnel_client_bytes(rt_cconn *c, const char *p, size_t n)
{
    rt_uconn *u = c->u;
    if (!u || !u->s || u->closing)
        return;
    rt_uwrite(u, p, n);
    rt_arm(c, T_TUNNEL, c->r->gen->cfg.tunnel_timeout_ms);
    if (!c->bp_paused && rt_uqueued(u) > RT_HIGH) {
        c->bp_paused = true; /* u_on_drain resumes the client */
        rt_client_read_update(c);
    }
}

/* The client ended its side of the tunnel. A FIN (UV_EOF) while the
 * upstream still sends is passed on after the bytes before it, and the
 * upstream's answer still reaches the client, as over one half-closed TCP
 * connection (nginx and HAProxy tunnels do the same). Once both sides have
 * ended, or on a failure, both close: what is queued to either still goes
 * out, within the linger time. */
void rt_tunnel_client_end(rt_cconn *c, int status)
{
    rt_uconn *u = c->u;
    if (status == UV_EOF && u && u->s && !u->closing && !c->tun_up_eof) {
        c->tun_client_eof = true;
        wflush(u); /* the FIN follows the client's last bytes */
        net_stream_shutdown(u->s);
        return;
    }
    if (u) {
        detach(c);
        rt_uconn_end(u);
    }
    c->up = UP_NONE;
    rt_cconn_end(c); /* what is queued to the client still goes (a half-closed client reads it) */
}

void rt_exchange_client_drained(rt_cconn *c)
{
    rt_uconn *u = c->u;
    if (u && u->paused && u->s) {
        u->paused = false;
        if (c->tkind == T_RESPONSE)
            rt_arm(c, T_RESPONSE, c->gen->cfg.response_timeout_ms);
        net_resume(u->s);
    }
}
