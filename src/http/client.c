/* http/client.c: one keep-alive connection to one origin, one request at a
 * time (see http.h for the contract).
 *
 * Hot path (a reused connection): the request is formatted into `req`
 * (reused), handed to net_write in one piece (one uv_try_write when the
 * socket takes it), the response is parsed straight from the stream's read
 * buffer into `parser` (reused buffers), and the callback fires from the
 * read callback. Nothing is allocated once the buffers have grown.
 *
 * State: `busy` while a request is in flight; `s` is the live connection
 * (`connected` once TCP+TLS are up); `old` is a connection whose response
 * said "close", kept until the server's FIN arrives so that TIME_WAIT lands
 * on the server as with any well-behaved HTTP/1.1 client. `timer` serves the
 * request timeout and, with a zero delay, errors found inside
 * http_client_send that must still be reported later.
 *
 * Early write (http_client_set_early_write): a new plain connection comes
 * from net_connect_early and the request is written in do_connect, so
 * `early_sent` tells on_connect not to write it again; on_connect then
 * fires when the response starts and takes the connect time from
 * net_stream_tcp_done_ns.
 *
 * Lifetime: the struct lives until http_client_free has been called and
 * every handle (timer, streams) is closed and any resolution has answered
 * (`refs`); callbacks arriving in between see `freeing` and do nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http.h"
#include "http/parse.h"

#define CLIENT_MAX_HEADER (256 * 1024)

enum { T_IDLE, T_TIMEOUT, T_DEFER };

struct http_client {
    uv_loop_t *loop;
    http_url origin;
    net_resolver *resolver;
    net_tls *tls;
    uint64_t connect_timeout_ms;
    struct sockaddr_storage literal;
    bool is_literal;
    net_stream *s;
    net_stream *old;
    bool connected;
    bool resolving;
    bool busy;
    bool freeing;
    int refs;
    uv_timer_t timer;
    int timer_mode;
    int deferred_err;
    /* the request in flight */
    http_response_cb cb;
    void *user;
    uint64_t timeout_ms;
    uint64_t t_send_ns;
    uint64_t t_connect_start, t_connect_ns, t_written_ns;
    uint64_t t_resolve_start, t_dns_ns, t_tcp_ns, t_tls_ns;
    bool is_head, reused, retried, got_bytes, wait_drain, want_close;
    bool early;          /* http_client_set_early_write applies */
    bool early_sent;     /* this connection's request went out in do_connect */
    cu_buf req;
    hp_msg parser;
    uint64_t nreused;
};

static void on_connect(net_stream *s, int status);
static void on_read(net_stream *s, const char *data, size_t len);
static void on_end(net_stream *s, int status);
static void on_drain(net_stream *s);
static void on_close(net_stream *s);
static const net_stream_cbs client_cbs = {on_connect, on_read, on_end, on_drain, on_close};

static void maybe_free(http_client *c)
{
    if (!c->freeing || c->refs > 0)
        return;
    hp_free(&c->parser);
    cu_buf_free(&c->req);
    http_url_free(&c->origin);
    free(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    http_client *c = h->data;
    c->refs--;
    maybe_free(c);
}

static void close_conn(http_client *c)
{
    if (c->s)
        net_stream_close(c->s);
    c->s = NULL;
    c->connected = false;
}

/* The request ends with an error; the callback is the last thing we do. */
static void complete_err(http_client *c, int err)
{
    uv_timer_stop(&c->timer);
    c->timer_mode = T_IDLE;
    c->busy = false;
    c->cb(c->user, err, NULL);
}

static void on_timer(uv_timer_t *t);

static void fail_later(http_client *c, int err)
{
    c->timer_mode = T_DEFER;
    c->deferred_err = err;
    uv_timer_start(&c->timer, on_timer, 0, 0);
}

static void on_timer(uv_timer_t *t)
{
    http_client *c = t->data;
    int mode = c->timer_mode;
    c->timer_mode = T_IDLE;
    if (c->freeing || !c->busy)
        return;
    if (mode == T_DEFER) {
        close_conn(c);
        complete_err(c, c->deferred_err);
    } else if (mode == T_TIMEOUT) {
        close_conn(c);
        complete_err(c, UV_ETIMEDOUT);
    }
}

/* Arms the timeout for the current phase: connecting (connect_timeout_ms
 * when set, bounded by the request's) or the rest of the request. */
static void arm_timer(http_client *c)
{
    if (c->timer_mode == T_DEFER)
        return;
    uint64_t ms = 0;
    if (c->timeout_ms) {
        uint64_t spent = (cu_now_ns() - c->t_send_ns) / 1000000;
        ms = spent < c->timeout_ms ? c->timeout_ms - spent : 1;
    }
    if (!c->connected && c->connect_timeout_ms && (!ms || c->connect_timeout_ms < ms))
        ms = c->connect_timeout_ms;
    if (!ms) {
        uv_timer_stop(&c->timer);
        c->timer_mode = T_IDLE;
        return;
    }
    c->timer_mode = T_TIMEOUT;
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* ---- request formatting ---------------------------------------------------- */
static bool has_token(const char *v, size_t n, const char *tok, size_t tl)
{
    for (size_t i = 0; i + tl <= n; i++)
        if (strncasecmp(v + i, tok, tl) == 0)
            return true;
    return false;
}

static void build_request(http_client *c, const http_request *r)
{
    cu_buf *b = &c->req;
    cu_buf_reset(b);
    const char *method = r->method && *r->method ? r->method : "GET";
    const char *target = r->target && *r->target ? r->target : "/";
    cu_buf_append(b, method, strlen(method));
    cu_buf_append(b, " ", 1);
    cu_buf_append(b, target, strlen(target));
    cu_buf_append(b, " HTTP/1.1\r\n", 11);
    bool has_host = false, has_len = false, has_te = false, has_conn = false;
    c->want_close = false;
    for (size_t i = 0; i < r->nheaders; i++) {
        const http_header *h = &r->headers[i];
        switch (h->name_len) {
        case 4:
            has_host |= strncasecmp(h->name, "host", 4) == 0;
            break;
        case 10:
            if (strncasecmp(h->name, "connection", 10) == 0) {
                has_conn = true;
                c->want_close = has_token(h->value, h->value_len, "close", 5);
            }
            break;
        case 14:
            has_len |= strncasecmp(h->name, "content-length", 14) == 0;
            break;
        case 17:
            has_te |= strncasecmp(h->name, "transfer-encoding", 17) == 0;
            break;
        default:
            break;
        }
        cu_buf_append(b, h->name, h->name_len);
        cu_buf_append(b, ": ", 2);
        cu_buf_append(b, h->value, h->value_len);
        cu_buf_append(b, "\r\n", 2);
    }
    if (!has_host) {
        cu_buf_append(b, "Host: ", 6);
        cu_buf_append(b, c->origin.hostport, strlen(c->origin.hostport));
        cu_buf_append(b, "\r\n", 2);
    }
    bool body_method = strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                       strcmp(method, "PATCH") == 0;
    if (!has_len && !has_te && (r->body_len > 0 || body_method)) {
        cu_buf_append(b, "Content-Length: ", 16);
        cu_buf_append_u64(b, r->body_len);
        cu_buf_append(b, "\r\n", 2);
    }
    if (!has_conn)
        cu_buf_append(b, "Connection: keep-alive\r\n", 24);
    cu_buf_append(b, "\r\n", 2);
    if (r->body_len)
        cu_buf_append(b, r->body, r->body_len);
    c->is_head = strcmp(method, "HEAD") == 0;
}

/* ---- connection management ------------------------------------------------- */
static void write_request(http_client *c)
{
    c->got_bytes = false;
    c->parser.head = c->is_head;
    c->wait_drain = false;
    int rc = net_write(c->s, c->req.data, c->req.len);
    if (rc < 0) {
        fail_later(c, rc);
        return;
    }
    if (net_stream_queued(c->s) == 0)
        c->t_written_ns = cu_now_ns();
    else
        c->wait_drain = true;
}

static void do_connect(http_client *c, const struct sockaddr *addr)
{
    c->t_connect_start = cu_now_ns();
    c->connected = false;
    hp_reset(&c->parser);
    c->early_sent = false;
    if (c->early) {
        c->s = net_connect_early(c->loop, addr, NULL, c->origin.host, &client_cbs, c);
        c->refs++;
        if (c->busy) {
            c->early_sent = true;
            write_request(c);
        }
        return;
    }
    c->s = net_connect(c->loop, addr, c->origin.tls ? c->tls : NULL, c->origin.host, &client_cbs,
                       c);
    c->refs++;
}

static void on_resolved(void *user, int status, const struct sockaddr *addr)
{
    http_client *c = user;
    c->resolving = false;
    c->refs--;
    if (c->freeing) {
        maybe_free(c);
        return;
    }
    if (!c->busy || c->s)
        return; /* the request timed out meanwhile */
    c->t_dns_ns = cu_now_ns() - c->t_resolve_start;
    if (status < 0)
        complete_err(c, status);
    else
        do_connect(c, addr);
}

static void start_connect(http_client *c)
{
    close_conn(c);
    if (c->origin.tls && !c->tls) {
        fail_later(c, NET_E_TLS);
        return;
    }
    if (c->is_literal) {
        do_connect(c, (const struct sockaddr *)&c->literal);
        return;
    }
    if (c->resolving)
        return; /* an earlier lookup is still out: its answer serves this request */
    c->resolving = true;
    c->refs++;
    c->t_resolve_start = cu_now_ns();
    net_resolve(c->resolver, c->origin.host, c->origin.port, on_resolved, c);
}

/* A response is complete: decide the connection's fate, then call back. */
static void finish(http_client *c, bool clean)
{
    hp_msg *p = &c->parser;
    bool keep = p->keep_alive && clean && !p->upgrade && !c->want_close;
    uv_timer_stop(&c->timer);
    c->timer_mode = T_IDLE;
    uint64_t now = cu_now_ns();
    if (c->wait_drain) { /* response before the drain notice: written anyway */
        c->wait_drain = false;
        c->t_written_ns = now;
    }
    if (!keep && c->s) {
        if (clean && !p->upgrade) { /* wait for the server's FIN */
            if (c->old)
                net_stream_close(c->old);
            c->old = c->s;
            c->s = NULL;
            c->connected = false;
        } else {
            close_conn(c);
        }
    }
    http_response res = {
        .status = p->status,
        .headers = p->headers,
        .nheaders = p->nheaders,
        .body = c->parser.keep_body ? (p->body.data ? p->body.data : "") : NULL,
        .body_len = (size_t)p->body_len,
        .keep_alive = keep,
        .t_connect_ns = c->t_connect_ns,
        .t_dns_ns = c->t_dns_ns,
        .t_tcp_ns = c->t_tcp_ns,
        .t_tls_ns = c->t_tls_ns,
        .t_start_ns = c->t_send_ns,
        .t_written_ns = c->t_written_ns,
        .t_headers_ns = p->t_headers_ns ? p->t_headers_ns : now,
        .t_done_ns = now,
    };
    c->busy = false;
    c->cb(c->user, 0, &res);
}

/* ---- stream callbacks ----------------------------------------------------- */
static void on_connect(net_stream *s, int status)
{
    http_client *c = net_stream_user(s);
    if (s != c->s)
        return;
    if (status < 0) {
        close_conn(c);
        complete_err(c, status);
        return;
    }
    c->connected = true;
    uint64_t tcp = net_stream_tcp_done_ns(s), now = c->early_sent && tcp ? tcp : cu_now_ns();
    c->t_connect_ns = now - c->t_connect_start;
    c->t_tcp_ns = tcp > c->t_connect_start ? tcp - c->t_connect_start : c->t_connect_ns;
    c->t_tls_ns = c->origin.tls && tcp ? now - tcp : 0;
    if (!c->busy)
        return;
    arm_timer(c);
    if (c->early_sent) {
        c->early_sent = false; /* written in do_connect */
        return;
    }
    write_request(c);
}

static void on_read(net_stream *s, const char *data, size_t len)
{
    http_client *c = net_stream_user(s);
    if (s != c->s)
        return; /* a retired connection: nothing more to read from it */
    if (!c->busy) {
        close_conn(c); /* bytes nobody asked for: the connection is unusable */
        return;
    }
    c->got_bytes = true;
    size_t used;
    int r = hp_feed(&c->parser, data, len, &used);
    if (r == HP_MORE)
        return;
    if (r == HP_DONE) {
        finish(c, used == len);
        return;
    }
    close_conn(c);
    complete_err(c, HTTP_E_PARSE_BASE - c->parser.hpe);
}

static void on_end(net_stream *s, int status)
{
    http_client *c = net_stream_user(s);
    if (s == c->old) {
        net_stream_close(s);
        c->old = NULL;
        return;
    }
    if (s != c->s)
        return;
    if (!c->busy) {
        close_conn(c); /* idle connection closed by the server: reconnect on next send */
        return;
    }
    int r = c->got_bytes ? hp_eof(&c->parser) : HP_MORE;
    close_conn(c);
    if (r == HP_DONE) {
        finish(c, true);
    } else if (r < 0) {
        complete_err(c, HTTP_E_PARSE_BASE - c->parser.hpe);
    } else if (!c->got_bytes && c->reused && !c->retried &&
               (status == UV_EOF || status == UV_ECONNRESET || status == UV_EPIPE)) {
        /* The server dropped a kept-alive connection as we reused it: the
         * request was not processed; try once on a fresh connection. */
        c->retried = true;
        c->reused = false;
        c->t_connect_ns = 0;
        arm_timer(c);
        start_connect(c);
    } else {
        complete_err(c, status == UV_EOF ? HTTP_E_CLOSED : status);
    }
}

static void on_drain(net_stream *s)
{
    http_client *c = net_stream_user(s);
    if (s == c->s && c->busy && c->wait_drain) {
        c->wait_drain = false;
        c->t_written_ns = net_event_ns();
    }
}

static void on_close(net_stream *s)
{
    http_client *c = net_stream_user(s);
    c->refs--;
    maybe_free(c);
}

/* ---- API ------------------------------------------------------------------- */
http_client *http_client_new(uv_loop_t *loop, const http_url *origin, const http_client_opts *o)
{
    http_client *c = cu_calloc(1, sizeof *c);
    c->loop = loop;
    c->origin.tls = origin->tls;
    c->origin.host = cu_strdup(origin->host);
    c->origin.port = origin->port;
    c->origin.hostport = cu_strdup(origin->hostport);
    c->origin.target = cu_strdup("/");
    if (o) {
        c->resolver = o->resolver;
        c->tls = o->tls;
        c->connect_timeout_ms = o->connect_timeout_ms;
    }
    memset(&c->literal, 0, sizeof c->literal);
    if (uv_ip4_addr(c->origin.host, c->origin.port, (struct sockaddr_in *)&c->literal) == 0 ||
        (strchr(c->origin.host, ':') &&
         uv_ip6_addr(c->origin.host, c->origin.port, (struct sockaddr_in6 *)&c->literal) == 0))
        c->is_literal = true;
    hp_init(&c->parser, true, CLIENT_MAX_HEADER, UINT64_MAX);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->refs = 1; /* the timer */
    return c;
}

int http_client_send(http_client *c, const http_request *req, bool keep_body,
                     uint64_t timeout_ms, http_response_cb cb, void *user)
{
    if (c->freeing)
        return UV_ECANCELED;
    if (c->busy)
        return -EBUSY;
    build_request(c, req);
    c->busy = true;
    c->cb = cb;
    c->user = user;
    c->timeout_ms = timeout_ms;
    c->t_send_ns = cu_now_ns();
    c->t_connect_ns = c->t_dns_ns = c->t_tcp_ns = c->t_tls_ns = 0;
    c->t_written_ns = 0;
    c->retried = false;
    c->parser.keep_body = keep_body;
    c->timer_mode = T_IDLE;
    if (!c->is_literal && !c->resolver) {
        fail_later(c, UV_EINVAL);
        return 0;
    }
    if (c->s && c->connected) {
        c->reused = true;
        c->nreused++;
        arm_timer(c);
        write_request(c);
        return 0;
    }
    c->reused = false;
    arm_timer(c);
    start_connect(c);
    return 0;
}

void http_client_free(http_client *c)
{
    if (!c || c->freeing)
        return;
    c->freeing = true;
    if (c->busy)
        complete_err(c, UV_ECANCELED);
    close_conn(c);
    if (c->old)
        net_stream_close(c->old);
    c->old = NULL;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    maybe_free(c);
}

void http_client_set_early_write(http_client *c, bool on)
{
    c->early = on && !c->connect_timeout_ms && !c->origin.tls;
}

void http_client_reset(http_client *c)
{
    if (!c || c->freeing)
        return;
    if (c->busy)
        complete_err(c, UV_ECANCELED);
    close_conn(c);
    if (c->old)
        net_stream_close(c->old);
    c->old = NULL;
}

uint64_t http_client_reused(const http_client *c)
{
    return c->nreused;
}
