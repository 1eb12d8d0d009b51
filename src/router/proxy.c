/* router/proxy.c: client connections (see proxy.h).
 *
 * Request path: llhttp (strict: no lenient flags) -> head spans in `h` ->
 * defences (smuggling shapes, limits) -> colour choice -> the forwarded
 * head in `fwd` -> exchange.c. Any malformed request gets a 400 (431 for
 * heads over the limits) and the connection closes, since after a framing
 * doubt nothing that follows on the connection can be trusted.
 * Teardown: rt_cconn_close is the one way out; the connection is freed in
 * the last close callback (stream, then timer). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "router/proxy.h"


static void on_read(net_stream *s, const char *data, size_t len);
static void on_end(net_stream *s, int status);
static void on_drain(net_stream *s);
static void on_close(net_stream *s);
static const net_stream_cbs client_cbs = {NULL, on_read, on_end, on_drain, on_close};

/* ---- head spans ------------------------------------------------------------------- */
void rt_head_reset(rt_head *h)
{
    cu_buf_reset(&h->raw);
    h->nsp = 0;
    h->url_len = 0;
    h->open = false;
}

void rt_head_free(rt_head *h)
{
    cu_buf_free(&h->raw);
    free(h->sp);
    memset(h, 0, sizeof *h);
}

int rt_head_field(rt_head *h, const char *at, size_t len, size_t max_headers)
{
    if (!h->open) {
        if (h->nsp >= max_headers)
            return -1;
        if (h->nsp == h->cap) {
            h->cap = h->cap ? h->cap * 2 : 16;
            h->sp = cu_realloc(h->sp, h->cap * sizeof *h->sp);
        }
        rt_span *sp = &h->sp[h->nsp++];
        sp->no = (uint32_t)h->raw.len;
        sp->nl = sp->vo = sp->vl = 0;
        h->open = true;
    }
    cu_buf_append(&h->raw, at, len);
    return 0;
}

void rt_head_field_done(rt_head *h)
{
    rt_span *sp = &h->sp[h->nsp - 1];
    sp->nl = (uint32_t)h->raw.len - sp->no;
    sp->vo = (uint32_t)h->raw.len;
}

void rt_head_value(rt_head *h, const char *at, size_t len)
{
    cu_buf_append(&h->raw, at, len);
}

/* llhttp drops leading whitespace but keeps trailing; a field value has
 * neither (RFC 9110 5.5), so the span ends at the last non-blank. */
void rt_head_value_done(rt_head *h)
{
    rt_span *sp = &h->sp[h->nsp - 1];
    sp->vl = (uint32_t)h->raw.len - sp->vo;
    while (sp->vl && (h->raw.data[sp->vo + sp->vl - 1] == ' ' ||
                      h->raw.data[sp->vo + sp->vl - 1] == '\t'))
        sp->vl--;
    h->open = false;
}

const char *rt_head_find(const rt_head *h, const char *name, size_t *vlen)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < h->nsp; i++) {
        const rt_span *sp = &h->sp[i];
        if (sp->nl == n && strncasecmp(h->raw.data + sp->no, name, n) == 0) {
            *vlen = sp->vl;
            return h->raw.data + sp->vo;
        }
    }
    return NULL;
}

static bool name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* Whether the comma-separated list v (n bytes) has the token want (wl bytes). */
static bool list_has_token(const char *v, size_t n, const char *want, size_t wl)
{
    const char *end = v + n;
    while (v < end) {
        while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
            v++;
        const char *t = v;
        while (v < end && *v != ',' && *v != ' ' && *v != '\t')
            v++;
        if ((size_t)(v - t) == wl && strncasecmp(t, want, wl) == 0)
            return true;
    }
    return false;
}

/* Whether `name` is listed as a token in any Connection header of h. */
static bool connection_token(const rt_head *h, const char *name, size_t len)
{
    for (size_t i = 0; i < h->nsp; i++) {
        const rt_span *sp = &h->sp[i];
        if (name_is(h->raw.data + sp->no, sp->nl, "connection") &&
            list_has_token(h->raw.data + sp->vo, sp->vl, name, len))
            return true;
    }
    return false;
}

bool rt_hop_by_hop(const rt_head *h, const char *name, size_t len, bool request)
{
    static const char *const hop[] = {"connection", "keep-alive",        "proxy-connection",
                                      "te",         "trailer",           "transfer-encoding",
                                      "upgrade",    "content-length",    "via"};
    for (size_t i = 0; i < CU_ARRAY_LEN(hop); i++)
        if (name_is(name, len, hop[i]))
            return true;
    if (request && (name_is(name, len, "expect") || name_is(name, len, "x-forwarded-for") ||
                    name_is(name, len, "x-forwarded-proto")))
        return true;
    return connection_token(h, name, len);
}

/* ---- writing, reading, timers ------------------------------------------------------- */
static void client_backpressure(rt_cconn *c)
{
    if (c->u && c->u->s && !c->u->paused && net_stream_queued(c->s) > RT_HIGH) {
        c->u->paused = true;
        net_pause(c->u->s);
    }
}

void rt_cwrite(rt_cconn *c, const void *p, size_t n)
{
    if (c->closing || n == 0)
        return;
    c->bytes_out += n;
    if (c->cbatch) {
        cu_buf_append(&c->cout, p, n);
        return;
    }
    net_write(c->s, p, n);
    client_backpressure(c);
}

void rt_cflush(rt_cconn *c)
{
    c->cbatch = false;
    if (c->cout.len && !c->closing) {
        net_write(c->s, c->cout.data, c->cout.len);
        client_backpressure(c);
    }
    cu_buf_reset(&c->cout);
}

static void on_drain(net_stream *s)
{
    rt_cconn *c = net_stream_user(s);
    if (!c->closing)
        rt_exchange_client_drained(c);
}

void rt_client_read_update(rt_cconn *c)
{
    if (c->closing)
        return;
    /* Reading goes on while a response is awaited (pipelined bytes wait in
     * cin, up to RT_CIN_MAX), so a keep-alive request costs no pause and
     * resume, and a client that goes away is noticed at once. */
    bool want = !c->bp_paused && c->pend.len < RT_HIGH && c->cin.len < RT_CIN_MAX;
    if (want)
        net_resume(c->s);
    else
        net_pause(c->s);
}

static void on_timer(uv_timer_t *t);
static void resume(rt_cconn *c);

static void timer_set(rt_cconn *c, uint64_t now)
{
    c->timer_at = c->due;
    uv_timer_start(&c->timer, on_timer, c->due - now, 0);
}

void rt_arm(rt_cconn *c, int kind, uint64_t ms)
{
    if (c->closing && kind != T_LINGER)
        return;
    uint64_t now = uv_now(c->r->loop);
    c->tkind = kind;
    c->due = now + ms;
    if (!uv_is_active((uv_handle_t *)&c->timer) || c->timer_at > c->due)
        timer_set(c, now);
}

/* ---- teardown ----------------------------------------------------------------------- */
/* Freed when both the stream and the timer have closed. */
static void cconn_unhandle(rt_cconn *c)
{
    if (--c->handles > 0)
        return;
    router *r = c->r;
    if (c->prev)
        c->prev->next = c->next;
    else if (r->conns == c)
        r->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    r->nconns--;
    if (c->gen)
        rt_gen_unref(c->gen); /* an exchange cut short */
    rt_head_free(&c->h);
    cu_buf_free(&c->cin);
    cu_buf_free(&c->fwd);
    cu_buf_free(&c->pend);
    cu_buf_free(&c->replay);
    cu_buf_free(&c->rhead);
    cu_buf_free(&c->cout);
    free(c);
    rt_conn_gone(r);
}

static void on_timer_closed(uv_handle_t *h)
{
    cconn_unhandle(h->data);
}

static void on_close(net_stream *s)
{
    rt_cconn *c = net_stream_user(s);
    c->s = NULL;
    c->closing = true;
    if (c->active || c->up == UP_TUNNEL)
        rt_exchange_abort(c);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    cconn_unhandle(c);
}

void rt_cconn_close(rt_cconn *c)
{
    if (!c->s)
        return;
    if (c->active || c->up == UP_TUNNEL)
        rt_exchange_abort(c);
    c->closing = true;
    net_stream_close(c->s); /* idempotent; on_close closes the timer */
}

/* Graceful end: what is queued goes out first; a peer that does not read
 * is cut after the linger timer. */
void rt_cconn_end(rt_cconn *c)
{
    if (c->closing)
        return;
    if (c->active || c->up == UP_TUNNEL)
        rt_exchange_abort(c);
    c->closing = true;
    net_stream_end(c->s);
    rt_arm(c, T_LINGER, RT_LINGER_MS);
}

/* ---- local answers -------------------------------------------------------------------- */
void rt_send_error(rt_cconn *c, int status, bool close)
{
    if (c->closing)
        return;
    if (c->resp_started) {
        rt_cconn_close(c); /* mid-response: the only honest signal is a cut */
        return;
    }
    if (c->rq != RQ_DONE)
        close = true;
    if (c->r->draining)
        close = true;
    const char *text = http_status_text(status);
    /* an exchange's failure names the colour of its last attempt */
    const char *ch = c->active && c->gen ? c->gen->cfg.color_header : NULL;
    char colour[160] = "";
    if (ch && strlen(ch) < 100)
        snprintf(colour, sizeof colour, "%s: %s\r\n", ch, router_color_name(c->color));
    char buf[512];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "%s%s\r\n%s\n",
                     status, text, strlen(text) + 1, colour, close ? "Connection: close\r\n" : "",
                     text);
    c->resp_started = true;
    c->status = status;
    rt_cwrite(c, buf, (size_t)n);
    if (close)
        c->close_after = true;
    if (c->active)
        rt_finish(c, false);
    else
        rt_cconn_end(c);
}

/* ---- the end of an exchange ---------------------------------------------------------------- */
static void json_str(cu_buf *b, const char *s, size_t n)
{
    cu_buf_appendc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            cu_buf_appendf(b, "\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            cu_buf_appendf(b, "\\u%04x", ch);
        else
            cu_buf_appendc(b, (char)ch);
    }
    cu_buf_appendc(b, '"');
}

static void access_log(rt_cconn *c, double ms)
{
    FILE *f = c->r->access_log;
    if (!f)
        return;
    cu_buf b = CU_BUF_INIT;
    cu_buf_appendf(&b, "{\"ts\":%lld,\"id\":%llu,\"client\":", (long long)cu_wall_ms(),
                   (unsigned long long)c->id);
    json_str(&b, c->peer, strlen(c->peer));
    cu_buf_appendf(&b, ",\"method\":\"%s\",\"target\":",
                   llhttp_method_name((llhttp_method_t)c->method));
    json_str(&b, c->h.raw.data ? c->h.raw.data : "", c->h.url_len);
    cu_buf_appendf(&b, ",\"color\":\"%s\",\"why\":\"%s\",\"server\":",
                   router_color_name(c->color), c->why ? c->why : "");
    const char *url = c->srv ? c->srv->url : "";
    json_str(&b, url, strlen(url));
    cu_buf_appendf(&b, ",\"status\":%d,\"ms\":%.3f,\"bytes_in\":%llu,\"bytes_out\":%llu,"
                       "\"retried\":%s}\n",
                   c->status, ms, (unsigned long long)c->bytes_in,
                   (unsigned long long)c->bytes_out, c->retried ? "true" : "false");
    fwrite(b.data, 1, b.len, f);
    cu_buf_free(&b);
}

/* The exchange's books close: measured (when `record`) and logged, and
 * its configuration reference and back-pressure state dropped. */
static void exchange_done(rt_cconn *c, bool record)
{
    uint64_t now = cu_now_ns();
    double ms = (double)(now - c->t0_ns) / 1e6;
    if (record)
        rt_stats_record(&c->r->stats, c->color, c->status, ms, c->bytes_in, c->bytes_out, now);
    access_log(c, ms);
    c->active = false;
    if (c->gen) {
        rt_gen_unref(c->gen);
        c->gen = NULL;
    }
    c->bp_paused = false; /* the exchange (and its upstream) is over */
    cu_buf_reset(&c->pend);
}

void rt_finish(rt_cconn *c, bool record)
{
    router *r = c->r;
    rt_exchange_abort(c); /* releases whatever upstream state is left */
    exchange_done(c, record);
    if (c->early && c->rq == RQ_BODY && !c->closing && llhttp_get_errno(&c->ll) == HPE_OK) {
        /* The upstream answered before the request body ended (413, 401):
         * read and drop the rest of the body for a while before closing,
         * so the client is not reset before it reads the answer. */
        c->lingering = true;
        c->close_after = true;
        rt_arm(c, T_LINGER, RT_LINGER_MS);
        rt_client_read_update(c);
        return;
    }
    if (c->close_after || !c->keep_alive || r->draining || c->upgrade || c->rq != RQ_DONE) {
        rt_cconn_end(c);
        return;
    }
    c->rq = RQ_IDLE;
    if (c->cin.len == 0) {
        resume(c); /* nothing pipelined: just read again */
        return;
    }
    /* Parse what is pipelined from the loop, not from inside the caller
     * (which may be the upstream parser's callback). */
    rt_arm(c, T_RESUME, 0);
}

void rt_tunnel_begin(rt_cconn *c)
{
    exchange_done(c, true); /* measured and logged as its 101 */
    c->up = UP_TUNNEL;
    rt_arm(c, T_TUNNEL, c->r->gen->cfg.tunnel_timeout_ms);
    if (c->cin.len) { /* what the client sent after its request, before the 101 */
        cu_buf tmp = c->cin;
        c->cin = (cu_buf)CU_BUF_INIT;
        rt_tunnel_client_bytes(c, tmp.data, tmp.len);
        cu_buf_free(&tmp);
    }
    rt_client_read_update(c);
}

/* ---- llhttp callbacks (requests) ----------------------------------------------------------- */
static rt_cconn *C(llhttp_t *p) { return p->data; }

static int on_message_begin(llhttp_t *p)
{
    rt_cconn *c = C(p);
    rt_head_reset(&c->h);
    c->folded = false;
    c->resp_started = false;
    c->status = 0;
    c->rq = RQ_HEAD;
    c->t0_ns = cu_now_ns();
    if (c->tkind != T_HEADER)
        rt_arm(c, T_HEADER, c->r->gen->cfg.header_timeout_ms);
    return 0;
}

static int head_limit(rt_cconn *c)
{
    if (c->h.raw.len > c->r->gen->cfg.max_header_bytes) {
        c->rq = RQ_DONE;
        rt_send_error(c, 431, true);
        return HPE_USER;
    }
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    rt_cconn *c = C(p);
    cu_buf_append(&c->h.raw, at, len);
    c->h.url_len += len;
    return head_limit(c);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    rt_cconn *c = C(p);
    if (rt_head_field(&c->h, at, len, c->r->gen->cfg.max_headers) < 0) {
        c->rq = RQ_DONE;
        rt_send_error(c, 431, true);
        return HPE_USER;
    }
    return head_limit(c);
}

static int on_header_field_complete(llhttp_t *p)
{
    rt_cconn *c = C(p);
    rt_head_field_done(&c->h);
    c->vpieces = 0;
    return 0;
}

/* llhttp (8.x) accepts obsolete line folding and hands the continuation
 * as a second value piece. Within one buffer a value comes in one piece,
 * so a second piece is a fold unless the first ended the previous buffer
 * and this one starts the next. */
static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    rt_cconn *c = C(p);
    if (c->vpieces++ > 0 && !(c->vprev_at_end && at == c->chunk_start))
        c->folded = true;
    c->vprev_at_end = at + len == c->chunk_end;
    rt_head_value(&c->h, at, len);
    return head_limit(c);
}

static int on_header_value_complete(llhttp_t *p)
{
    rt_head_value_done(&C(p)->h);
    return 0;
}

/* Defences llhttp's strict mode leaves to us. Returns 0, or the status to
 * answer before closing: 400 for doubtful framing, 501 for a transfer
 * coding other than chunked (we would forward the body undecoded). */
static int head_acceptable(rt_cconn *c)
{
    const rt_head *h = &c->h;
    int ncl = 0, nte = 0;
    if (c->folded || c->ll.http_major != 1)
        return 400; /* obsolete folding; HTTP/0.9 or 2.0 spoken as 1.x */
    for (size_t i = 0; i < h->nsp; i++) {
        const rt_span *sp = &h->sp[i];
        const char *name = h->raw.data + sp->no, *v = h->raw.data + sp->vo;
        if (sp->nl == 0)
            return 400;
        for (uint32_t k = 0; k < sp->vl; k++)
            if (v[k] == '\r' || v[k] == '\n' || v[k] == 0)
                return 400; /* obsolete line folding or smuggled line ends */
        if (name_is(name, sp->nl, "content-length"))
            ncl++;
        if (name_is(name, sp->nl, "transfer-encoding")) {
            nte++;
            if (sp->vl != 7 || strncasecmp(v, "chunked", 7) != 0)
                return 501;
        }
    }
    if (ncl > 1 || (ncl && nte) || nte > 1)
        return 400;
    if (nte && c->ll.http_minor == 0)
        return 400; /* RFC 9112 6.1: chunked from an HTTP/1.0 client is faulty framing */
    if (c->ll.method == HTTP_CONNECT)
        return 400;
    return 0;
}

void rt_put_header(cu_buf *b, const char *n, size_t nl, const char *v, size_t vl)
{
    cu_buf_append(b, n, nl);
    cu_buf_append(b, ": ", 2);
    cu_buf_append(b, v, vl);
    cu_buf_append(b, "\r\n", 2);
}

static void build_forward(rt_cconn *c)
{
    const router_config *cfg = &c->r->gen->cfg;
    const rt_head *h = &c->h;
    cu_buf *b = &c->fwd;
    cu_buf_reset(b);
    cu_buf_appends(b, llhttp_method_name((llhttp_method_t)c->method));
    cu_buf_append(b, " ", 1);
    cu_buf_append(b, h->raw.data, h->url_len);
    cu_buf_appends(b, " HTTP/1.1\r\n");
    size_t fl = cfg->force_header ? strlen(cfg->force_header) : 0;
    for (size_t i = 0; i < h->nsp; i++) {
        const rt_span *sp = &h->sp[i];
        const char *name = h->raw.data + sp->no;
        if (rt_hop_by_hop(h, name, sp->nl, true))
            continue;
        if (fl && sp->nl == fl && strncasecmp(name, cfg->force_header, fl) == 0)
            continue;
        rt_put_header(b, name, sp->nl, h->raw.data + sp->vo, sp->vl);
    }
    /* X-Forwarded-For: every earlier hop (all such headers, in order), then us */
    cu_buf_appends(b, "X-Forwarded-For: ");
    for (size_t i = 0; i < h->nsp; i++) {
        const rt_span *sp = &h->sp[i];
        if (sp->vl && name_is(h->raw.data + sp->no, sp->nl, "x-forwarded-for")) {
            cu_buf_append(b, h->raw.data + sp->vo, sp->vl);
            cu_buf_appends(b, ", ");
        }
    }
    size_t vl;
    cu_buf_appends(b, c->peer);
    cu_buf_appends(b, c->tls ? "\r\nX-Forwarded-Proto: https\r\n" : "\r\nX-Forwarded-Proto: http\r\n");
    const char *via = rt_head_find(h, "via", &vl);
    cu_buf_appends(b, "Via: ");
    if (via) {
        cu_buf_append(b, via, vl);
        cu_buf_appends(b, ", ");
    }
    cu_buf_appends(b, c->minor ? "1.1 cutover\r\n" : "1.0 cutover\r\n");
    const char *up;
    if (c->tunnel_ok && (up = rt_head_find(h, "upgrade", &vl))) {
        cu_buf_appends(b, "Connection: upgrade\r\n");
        rt_put_header(b, "Upgrade", 7, up, vl);
    }
    if (c->req_chunked)
        cu_buf_appends(b, "Transfer-Encoding: chunked\r\n");
    else if (c->ll.flags & F_CONTENT_LENGTH) {
        cu_buf_appends(b, "Content-Length: ");
        cu_buf_append_u64(b, c->ll.content_length);
        cu_buf_appends(b, "\r\n");
    }
    cu_buf_appends(b, "\r\n");
}

static router_color choose(rt_cconn *c)
{
    router *r = c->r;
    const router_config *cfg = &r->gen->cfg;
    int bp = rt_effective_bp(r);
    size_t vl;
    const char *v;
    if (cfg->force_header && (v = rt_head_find(&c->h, cfg->force_header, &vl))) {
        if (vl == 5 && strncasecmp(v, "green", 5) == 0) {
            c->why = "forced";
            return ROUTER_GREEN;
        }
        if (vl == 4 && strncasecmp(v, "blue", 4) == 0) {
            c->why = "forced";
            return ROUTER_BLUE;
        }
    }
    const char *key = NULL;
    size_t klen = 0;
    if (cfg->sticky_header)
        key = rt_head_find(&c->h, cfg->sticky_header, &klen);
    else if (cfg->sticky_cookie)
        for (size_t i = 0; i < c->h.nsp && !key; i++) {
            const rt_span *sp = &c->h.sp[i];
            if (name_is(c->h.raw.data + sp->no, sp->nl, "cookie"))
                key = rt_cookie_find(c->h.raw.data + sp->vo, sp->vl, cfg->sticky_cookie, &klen);
        }
    if (key && klen) {
        c->why = "sticky";
        return rt_sticky_color(rt_bucket_of(key, klen), bp);
    }
    c->why = "weighted";
    return rt_swrr_next(&r->swrr, bp);
}

static int on_headers_complete(llhttp_t *p)
{
    rt_cconn *c = C(p);
    router *r = c->r;
    if (c->h.open)
        rt_head_value_done(&c->h);
    c->method = p->method;
    c->minor = p->http_minor;
    c->keep_alive = llhttp_should_keep_alive(p);
    c->upgrade = p->upgrade;
    /* Upgrade (WebSocket): passed on, and tunnelled after a 101, for an
     * HTTP/1.1 request without a body; any other Upgrade request is
     * forwarded without it (and the connection closes after the answer). */
    size_t ul;
    const char *uv = rt_head_find(&c->h, "upgrade", &ul);
    c->tunnel_ok = p->upgrade && p->method != HTTP_CONNECT && p->http_minor >= 1 &&
                   !(p->flags & F_CHUNKED) &&
                   !((p->flags & F_CONTENT_LENGTH) && p->content_length > 0) && uv &&
                   list_has_token(uv, ul, "websocket", 9);
    c->req_chunked = (p->flags & F_CHUNKED) != 0;
    c->head_req = p->method == HTTP_HEAD;
    c->idempotent = p->method == HTTP_GET || p->method == HTTP_HEAD ||
                    p->method == HTTP_OPTIONS || p->method == HTTP_PUT ||
                    p->method == HTTP_DELETE || p->method == HTTP_TRACE;
    int bad = head_acceptable(c);
    if (bad) {
        c->rq = RQ_DONE;
        rt_send_error(c, bad, true);
        return HPE_USER;
    }
    c->rq = RQ_BODY;
    c->active = true;
    c->id = ++r->next_id;
    c->gen = r->gen;
    rt_gen_ref(c->gen);
    c->resp_started = c->resp_chunked = c->resp_close = false;
    c->status = 0;
    c->bytes_in = c->h.raw.len; /* approximately the head; the body adds below */
    c->bytes_out = 0;
    c->retried = c->fresh_retry = c->head_sent = c->discard_body = c->early = false;
    c->srv = NULL;
    cu_buf_reset(&c->pend);
    build_forward(c);
    c->replayable = c->gen->cfg.retry;
    cu_buf_reset(&c->replay);
    if (c->replayable)
        cu_buf_append(&c->replay, c->fwd.data, c->fwd.len);
    size_t vl;
    const char *ex = rt_head_find(&c->h, "expect", &vl);
    if (ex && vl == 12 && strncasecmp(ex, "100-continue", 12) == 0 && c->minor >= 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        net_write(c->s, cont, sizeof cont - 1);
    }
    rt_arm(c, T_BODY, c->gen->cfg.body_timeout_ms);
    rt_exchange_start(c, choose(c));
    if (c->closing)
        return HPE_USER;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    rt_cconn *c = C(p);
    c->bytes_in += len;
    if (c->tkind == T_BODY)
        rt_arm(c, T_BODY, c->r->gen->cfg.body_timeout_ms);
    if (c->discard_body || !c->active)
        return 0;
    if (c->req_chunked) {
        char hdr[24];
        int n = snprintf(hdr, sizeof hdr, "%zx\r\n", len);
        rt_exchange_body(c, hdr, (size_t)n);
        rt_exchange_body(c, at, len);
        rt_exchange_body(c, "\r\n", 2);
    } else {
        rt_exchange_body(c, at, len);
    }
    return c->closing ? HPE_USER : 0;
}

static int on_message_complete(llhttp_t *p)
{
    rt_cconn *c = C(p);
    if (c->lingering) {
        c->rq = RQ_DONE;
        rt_cconn_end(c); /* the answer is out (or queued); the body is read */
        return HPE_USER;
    }
    if (c->active && !c->discard_body && c->req_chunked)
        rt_exchange_body(c, "0\r\n\r\n", 5);
    c->rq = RQ_DONE;
    if (c->active && c->tkind == T_BODY)
        rt_arm(c, T_RESPONSE, c->r->gen->cfg.response_timeout_ms);
    if (!c->active && !c->closing) {
        /* answered before the body ended (a local error or an early
         * response): now that the body is read, finish like a response */
        c->rq = RQ_DONE;
    }
    return HPE_PAUSED;
}

static const llhttp_settings_t req_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- input ------------------------------------------------------------------------------------ */
static void feed(rt_cconn *c, const char *data, size_t len)
{
    c->chunk_start = data;
    c->chunk_end = data + len;
    enum llhttp_errno e = llhttp_execute(&c->ll, data, len);
    if (c->closing)
        return;
    if (e == HPE_OK)
        return;
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
        size_t used = (size_t)(llhttp_get_error_pos(&c->ll) - data);
        if (used < len)
            cu_buf_append(&c->cin, data + used, len - used);
        rt_client_read_update(c);
        return;
    }
    if (e == HPE_USER)
        return;
    if (c->active) {
        /* a broken body mid-exchange: the request cannot be completed */
        rt_send_error(c, 400, true);
        return;
    }
    c->rq = RQ_DONE;
    rt_send_error(c, 400, true);
}

static void on_read(net_stream *s, const char *data, size_t len)
{
    rt_cconn *c = net_stream_user(s);
    c->r->io_read = true;
    if (c->closing)
        return;
    if (c->up == UP_TUNNEL) {
        rt_tunnel_client_bytes(c, data, len);
        return;
    }
    if (c->rq == RQ_DONE || c->tkind == T_RESUME) {
        cu_buf_append(&c->cin, data, len);
        rt_client_read_update(c);
        return;
    }
    feed(c, data, len);
}

/* Parses the pipelined bytes after an exchange, then reads again. */
static void resume(rt_cconn *c)
{
    c->tkind = T_NONE;
    llhttp_resume(&c->ll);
    rt_arm(c, T_IDLE, c->r->gen->cfg.idle_timeout_ms);
    if (c->cin.len) {
        cu_buf tmp = c->cin;
        c->cin = (cu_buf)CU_BUF_INIT;
        feed(c, tmp.data, tmp.len);
        cu_buf_free(&tmp);
    }
    rt_client_read_update(c);
}

static void on_end(net_stream *s, int status)
{
    rt_cconn *c = net_stream_user(s);
    /* The client closed or failed. A half-closed client (shutdown after its
     * request) is taken as gone, as nginx does by default: after the peer's
     * end the stream can no longer report a failed write, so streaming on
     * would hold the upstream connection until a timeout. */
    if (c->closing)
        return;
    if (c->up == UP_TUNNEL) {
        rt_tunnel_client_end(c, status);
        return;
    }
    if (c->active && c->resp_started && c->status) {
        /* the upstream did answer: that answer counts for its colour */
        uint64_t now = cu_now_ns();
        rt_stats_record(&c->r->stats, c->color, c->status, (double)(now - c->t0_ns) / 1e6,
                        c->bytes_in, c->bytes_out, now);
    }
    rt_cconn_close(c);
}

static void on_timer(uv_timer_t *t)
{
    rt_cconn *c = t->data;
    uint64_t now = uv_now(c->r->loop);
    if (c->tkind != T_NONE && c->due > now) {
        timer_set(c, now); /* the deadline moved later since the timer was set */
        return;
    }
    int kind = c->tkind;
    c->tkind = T_NONE;
    switch (kind) {
    case T_RESUME:
        if (!c->closing)
            resume(c);
        break;
    case T_LINGER:
        if (c->s)
            rt_cconn_close(c);
        break;
    case T_IDLE:
    case T_TUNNEL:
        rt_cconn_close(c);
        break;
    case T_HEADER:
        c->rq = RQ_DONE;
        rt_send_error(c, 408, true);
        break;
    case T_BODY:
        if (c->up == UP_CONNECT || c->up == UP_WAIT) {
            rt_exchange_timeout(c);
            break;
        }
        rt_send_error(c, 408, true);
        break;
    case T_CONNECT:
    case T_RESPONSE:
        rt_exchange_timeout(c);
        break;
    default:
        break;
    }
}

void rt_proxy_accept(net_listener *l, net_stream *s, void *user)
{
    rt_listener *li = user;
    router *r = li->r;
    rt_cconn *c = cu_calloc(1, sizeof *c);
    c->r = r;
    c->s = s;
    c->tls = li->tls != NULL;
    if (net_stream_peer(s, c->peer, sizeof c->peer) < 0)
        snprintf(c->peer, sizeof c->peer, "unknown");
    net_stream_set_user(s, c);
    net_stream_set_cbs(s, &client_cbs);
    uv_timer_init(r->loop, &c->timer);
    c->timer.data = c;
    c->handles = 2;
    llhttp_init(&c->ll, HTTP_REQUEST, &req_settings);
    c->ll.data = c;
    c->next = r->conns;
    if (r->conns)
        r->conns->prev = c;
    r->conns = c;
    r->nconns++;
    if (r->draining) {
        rt_cconn_close(c);
        return;
    }
    rt_arm(c, T_HEADER, r->gen->cfg.header_timeout_ms);
}

void rt_proxy_drain(router *r)
{
    rt_cconn *c = r->conns;
    while (c) {
        rt_cconn *next = c->next;
        if (c->closing)
            ;
        else if (!c->active && c->rq == RQ_IDLE && c->tkind != T_RESUME)
            rt_cconn_close(c);
        else if (!c->active && c->rq == RQ_HEAD)
            rt_cconn_close(c);
        else
            c->close_after = true;
        c = next;
    }
}

void rt_proxy_describe(router *r, int max)
{
    static const char *const RQ[] = {"idle", "head", "body", "done"};
    static const char *const UP[] = {"none", "wait", "connect", "sent", "response", "tunnel"};
    _Static_assert(CU_ARRAY_LEN(UP) == UP_TUNNEL + 1, "a name for every upstream state");
    int k = 0;
    for (rt_cconn *c = r->conns; c && k < max; c = c->next, k++)
        cu_warn("router:   %s: request %s, upstream %s%s%s%s; %zu bytes queued to the client, "
                "%zu read ahead%s", c->peer, RQ[c->rq], UP[c->up],
                c->closing ? ", closing" : "", c->resp_started ? ", response started" : "",
                c->bp_paused ? ", waiting for the upstream to read" : "",
                c->s ? net_stream_queued(c->s) : 0, c->cin.len,
                c->u && c->u->paused ? ", upstream paused" : "");
}

void rt_proxy_close_all(router *r)
{
    for (rt_cconn *c = r->conns; c; c = c->next)
        rt_cconn_close(c);
}
