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
 * on the server as with any well-behaved HTTP/1.1 client. `tmo` serves the
 * request timeout and, with a zero delay, errors found inside
 * http_client_send that must still be reported later and the free.
 *
 * Timeouts (`tmo`): not a libuv timer a client but an entry in its loop's
 * deadline lists (`tq`, one libuv timer a loop). A client's deadline is
 * set when its request is sent and rarely moves, so each list (one per
 * kind: deferred, connect, request) is kept in deadline order by inserting
 * from its tail, which is O(1) in the usual case, and a removal is an
 * unlink: at 20,000 connections a second libuv's timer functions were 18%
 * of `cutover run`'s user-space samples, most of them these timers' (a
 * start, a move on connect, a stop and a handle close a user). The loop's timer is set for the earliest deadline
 * and only moved earlier (a later firing finds nothing due and sets it
 * again); it is stopped when nothing is queued, so it never keeps a loop
 * running, and closed with the loop's last client, so the loop can close.
 *
 * Early write (http_client_set_early_write): a new plain connection comes
 * from net_connect_early and the request is written in do_connect, so
 * `early_sent` tells on_connect not to write it again; on_connect then
 * fires when the response starts and takes the connect time from
 * net_stream_tcp_done_ns.
 *
 * Lifetime: the struct lives until http_client_free has been called, a
 * loop turn has passed (the deferred free, through `tmo`), every stream is
 * closed and any resolution has answered (`refs`); callbacks arriving in
 * between see `freeing` and do nothing.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http.h"
#include "http/parse.h"

#define CLIENT_MAX_HEADER (256 * 1024)

enum { T_IDLE, T_TIMEOUT, T_DEFER, T_FREE };

/* ---- deadline lists: one libuv timer a loop ------------------------------- */
enum { K_DEFER, K_CONNECT, K_REQUEST, K_COUNT };

typedef struct tq tq;
typedef struct tq_item {
    struct tq_item *prev, *next;
    bool queued;
    int kind;
    uint64_t due;   /* loop time (uv_now), ms */
    uint64_t pass;  /* the set's pass it was queued in */
} tq_item;

struct tq {
    uv_timer_t timer;
    uv_loop_t *loop;
    tq *next;       /* this thread's other loops' sets */
    tq_item *head[K_COUNT], *tail[K_COUNT];
    size_t clients; /* the set lives while its loop has clients (under tqs_lock) */
    uint64_t armed; /* the due the timer is set for; UINT64_MAX: stopped */
    uint64_t pass;  /* bumped by every firing */
    bool firing;
};

/* Every loop's set, found by the loop when a client is made. Not a
 * thread's: a loop may be set up on one thread and run on another (the
 * demo starts its router so), and its clients go with it. */
static tq *tqs;
static pthread_mutex_t tqs_lock = PTHREAD_MUTEX_INITIALIZER;
static void tq_fire(tq_item *it); /* the client's, below */

static void tq_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_tq(uv_timer_t *t);

static void tq_start(tq *q, uint64_t due)
{
    uint64_t now = uv_now(q->loop);
    q->armed = due;
    uv_timer_start(&q->timer, on_tq, due > now ? due - now : 0, 0);
}

static void tq_stop(tq *q)
{
    q->armed = UINT64_MAX;
    uv_timer_stop(&q->timer); /* a set timer would keep the loop running */
}

static tq *tq_ref(uv_loop_t *loop)
{
    pthread_mutex_lock(&tqs_lock);
    tq *q = tqs;
    while (q && q->loop != loop)
        q = q->next;
    if (q) {
        q->clients++;
    } else {
        q = cu_calloc(1, sizeof *q);
        q->loop = loop;
        q->armed = UINT64_MAX;
        q->clients = 1;
        uv_timer_init(loop, &q->timer);
        q->timer.data = q;
        q->next = tqs;
        tqs = q;
    }
    pthread_mutex_unlock(&tqs_lock);
    return q;
}

static void tq_close(tq *q)
{
    pthread_mutex_lock(&tqs_lock);
    for (tq **pp = &tqs; *pp; pp = &(*pp)->next)
        if (*pp == q) {
            *pp = q->next;
            break;
        }
    pthread_mutex_unlock(&tqs_lock);
    uv_close((uv_handle_t *)&q->timer, tq_closed);
}

/* A client is gone; the last one takes the set's timer with it (so the
 * loop can close). Inside a firing, on_tq does it at its end. */
static void tq_unref(tq *q)
{
    pthread_mutex_lock(&tqs_lock);
    bool last = --q->clients == 0;
    pthread_mutex_unlock(&tqs_lock);
    if (last && !q->firing)
        tq_close(q);
}

static void tq_unlink(tq *q, tq_item *it)
{
    if (it->prev)
        it->prev->next = it->next;
    else
        q->head[it->kind] = it->next;
    if (it->next)
        it->next->prev = it->prev;
    else
        q->tail[it->kind] = it->prev;
    it->queued = false;
}

static bool tq_empty(const tq *q)
{
    for (int k = 0; k < K_COUNT; k++)
        if (q->head[k])
            return false;
    return true;
}

static void on_tq(uv_timer_t *t)
{
    tq *q = t->data;
    q->armed = UINT64_MAX;
    uint64_t now = uv_now(q->loop), pass = ++q->pass;
    q->firing = true;
    for (int k = 0; k < K_COUNT; k++) {
        tq_item *it;
        /* in deadline order; what a callback queues now waits for the next pass */
        while ((it = q->head[k]) && it->due <= now && it->pass != pass) {
            tq_unlink(q, it);
            tq_fire(it);
        }
    }
    q->firing = false;
    if (q->clients == 0) { /* the last client went during the pass */
        tq_close(q);
        return;
    }
    uint64_t next = UINT64_MAX;
    for (int k = 0; k < K_COUNT; k++)
        if (q->head[k] && q->head[k]->due < next)
            next = q->head[k]->due;
    if (next != UINT64_MAX)
        tq_start(q, next);
}

static void tq_del(tq *q, tq_item *it)
{
    if (!it->queued)
        return;
    tq_unlink(q, it);
    if (!q->firing && tq_empty(q))
        tq_stop(q);
}

/* Queues `it` (or moves it) to fire at loop time `due`. */
static void tq_add(tq *q, tq_item *it, int kind, uint64_t due)
{
    if (it->queued && it->kind == kind && it->due == due)
        return; /* already so */
    if (it->queued) /* moved: the timer is seen to below */
        tq_unlink(q, it);
    tq_item *at = q->tail[kind];
    while (at && at->due > due) /* usually none: deadlines come in order */
        at = at->prev;
    it->queued = true;
    it->kind = kind;
    it->due = due;
    it->pass = q->firing ? q->pass : 0;
    it->prev = at;
    it->next = at ? at->next : q->head[kind];
    if (it->next)
        it->next->prev = it;
    else
        q->tail[kind] = it;
    if (at)
        at->next = it;
    else
        q->head[kind] = it;
    if (!q->firing && due < q->armed)
        tq_start(q, due);
}

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
    tq *tq;         /* the loop's deadline lists */
    tq_item tmo;
    int timer_mode;
    uint64_t deadline; /* the request's, in loop time (ms); 0: none */
    int deferred_err;
    /* the request in flight */
    http_response_cb cb;
    void *user;
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
    tq_unref(c->tq);
    free(c);
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
    tq_del(c->tq, &c->tmo);
    c->timer_mode = T_IDLE;
    c->busy = false;
    c->cb(c->user, err, NULL);
}

static void fail_later(http_client *c, int err)
{
    c->timer_mode = T_DEFER;
    c->deferred_err = err;
    tq_add(c->tq, &c->tmo, K_DEFER, uv_now(c->loop));
}

static void tq_fire(tq_item *it)
{
    http_client *c = (http_client *)(void *)((char *)it - offsetof(http_client, tmo));
    int mode = c->timer_mode;
    c->timer_mode = T_IDLE;
    if (mode == T_FREE) { /* http_client_free's turn has passed */
        c->refs--;
        maybe_free(c);
        return;
    }
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
    uint64_t due = c->deadline;
    int kind = K_REQUEST;
    if (!c->connected && c->connect_timeout_ms) {
        uint64_t d = uv_now(c->loop) + c->connect_timeout_ms;
        if (!due || d < due) {
            due = d;
            kind = K_CONNECT;
        }
    }
    if (!due) {
        tq_del(c->tq, &c->tmo);
        c->timer_mode = T_IDLE;
        return;
    }
    c->timer_mode = T_TIMEOUT;
    tq_add(c->tq, &c->tmo, kind, due); /* nothing to do when the deadline stays */
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
    tq_del(c->tq, &c->tmo);
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
    c->tq = tq_ref(loop);
    c->refs = 1; /* the deferred free (http_client_free) */
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
    c->t_send_ns = cu_now_ns();
    c->deadline = timeout_ms ? uv_now(c->loop) + timeout_ms : 0;
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
    c->timer_mode = T_FREE; /* the struct outlives this call by a loop turn */
    tq_add(c->tq, &c->tmo, K_DEFER, uv_now(c->loop));
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
