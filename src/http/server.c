/* http/server.c: HTTP/1.1 server connections (see http.h for the contract).
 *
 * One exchange per connection at a time: the parser pauses after each
 * request, the handler gets it (request data lives in the parser's buffers,
 * no copy), and parsing resumes only once it has been answered, so
 * pipelined requests are answered in order by construction. Bytes that
 * arrive meanwhile wait in `in` (reading pauses past IN_LIMIT). Responses
 * produced while a read is being processed are gathered in `out` and
 * written with one net_write at the end, so a pipelined burst costs one
 * write, and a plain keep-alive request costs one read and one write.
 *
 * Each connection has one timer: idle timeout (lazily re-armed from
 * `last_active`), "resume parsing" (zero delay, after an asynchronous
 * response) and, once closing, the grace period for the last response to
 * drain. Teardown: the stream closes first, then the timer, then the
 * connection is freed; a pending exchange is cancelled on the way.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http/http.h"
#include "http/parse.h"

#define IN_LIMIT (256 * 1024)
#define LINGER_MS 5000

typedef struct srv_conn srv_conn;

struct http_exchange {
    srv_conn *conn;
    http_server_request req;
    void (*cancel)(void *arg);
    void *cancel_arg;
    bool head;
    bool keep_alive;
    bool http10;
};

struct srv_conn {
    http_server *srv;
    srv_conn *prev, *next;
    net_stream *s;
    uv_timer_t timer;
    hp_msg parser;
    cu_buf in, out;
    http_exchange x;
    uint64_t last_active;
    bool x_pending;
    bool in_process;
    bool closing;
    bool resume_pending;
    bool read_paused;
    bool have_peer;
    char peer[64];
};

struct http_server {
    uv_loop_t *loop;
    net_listener *l;
    http_handler h;
    void *user;
    bool tls;
    size_t max_header;
    uint64_t max_body;
    uint64_t idle_ms;
    srv_conn *conns;
    size_t nconns;
    bool stopping;
    int64_t date_sec;
    char date[64];     /* "Date: ...\r\n" */
    size_t date_len;
};

static void on_read(net_stream *s, const char *data, size_t len);
static void on_end(net_stream *s, int status);
static void on_close(net_stream *s);
static const net_stream_cbs srv_cbs = {NULL, on_read, on_end, NULL, on_close};

static void put_date(http_server *srv, cu_buf *b)
{
    int64_t sec = cu_wall_ms() / 1000;
    if (sec != srv->date_sec) {
        time_t t = (time_t)sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        srv->date_len = strftime(srv->date, sizeof srv->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n",
                                 &tm);
        srv->date_sec = sec;
    }
    cu_buf_append(b, srv->date, srv->date_len);
}

/* ---- teardown -------------------------------------------------------------- */
static void server_maybe_free(http_server *srv)
{
    if (srv->stopping && srv->nconns == 0)
        free(srv);
}

static void on_timer_closed(uv_handle_t *h)
{
    srv_conn *conn = h->data;
    http_server *srv = conn->srv;
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        srv->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    srv->nconns--;
    hp_free(&conn->parser);
    cu_buf_free(&conn->in);
    cu_buf_free(&conn->out);
    free(conn);
    server_maybe_free(srv);
}

static void on_close(net_stream *s)
{
    srv_conn *conn = net_stream_user(s);
    conn->s = NULL;
    uv_close((uv_handle_t *)&conn->timer, on_timer_closed);
}

static void cancel_pending(srv_conn *conn)
{
    if (!conn->x_pending)
        return;
    conn->x_pending = false;
    void (*cancel)(void *) = conn->x.cancel;
    conn->x.cancel = NULL;
    if (cancel)
        cancel(conn->x.cancel_arg);
}

/* Abrupt close: the connection died or must go now. */
static void conn_close(srv_conn *conn)
{
    conn->closing = true;
    cancel_pending(conn);
    if (conn->s)
        net_stream_close(conn->s);
}

static void on_conn_timer(uv_timer_t *t);

static void flush_out(srv_conn *conn)
{
    if (!conn->out.len || !conn->s)
        return;
    net_write(conn->s, conn->out.data, conn->out.len);
    cu_buf_reset(&conn->out);
}

/* Graceful close after the last response: written first, then closed. */
static void conn_end(srv_conn *conn)
{
    if (conn->closing)
        return;
    conn->closing = true;
    flush_out(conn);
    uv_timer_start(&conn->timer, on_conn_timer, LINGER_MS, 0);
    net_stream_end(conn->s);
}

/* ---- responses ------------------------------------------------------------- */
static void write_response(srv_conn *conn, int status, const http_header *headers, size_t n,
                           const char *body, size_t body_len, bool keep_alive, bool head,
                           bool *close_after)
{
    cu_buf *b = &conn->out;
    if (status < 100 || status > 999)
        status = 500;
    char line[16];
    int ll = snprintf(line, sizeof line, "HTTP/1.1 %d ", status);
    cu_buf_append(b, line, (size_t)ll);
    const char *text = http_status_text(status);
    cu_buf_append(b, text, strlen(text));
    cu_buf_append(b, "\r\n", 2);
    bool has_len = false, has_te = false, has_date = false, has_conn = false;
    *close_after = !keep_alive;
    for (size_t i = 0; i < n; i++) {
        const http_header *h = &headers[i];
        switch (h->name_len) {
        case 4:
            has_date |= strncasecmp(h->name, "date", 4) == 0;
            break;
        case 10:
            if (strncasecmp(h->name, "connection", 10) == 0) {
                has_conn = true;
                if (h->value_len == 5 && strncasecmp(h->value, "close", 5) == 0)
                    *close_after = true;
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
    bool bodyless = status < 200 || status == 204 || status == 304;
    if (!has_len && !has_te && !bodyless) {
        cu_buf_append(b, "Content-Length: ", 16);
        cu_buf_append_u64(b, body_len);
        cu_buf_append(b, "\r\n", 2);
    }
    if (!has_date)
        put_date(conn->srv, b);
    if (!has_conn) {
        if (*close_after)
            cu_buf_append(b, "Connection: close\r\n", 19);
        else
            cu_buf_append(b, "Connection: keep-alive\r\n", 24);
    }
    cu_buf_append(b, "\r\n", 2);
    if (!head && !bodyless && body_len)
        cu_buf_append(b, body, body_len);
}

/* A request we refuse: answer and close. */
static void reject(srv_conn *conn, int status)
{
    bool close_after;
    const char *text = http_status_text(status);
    static const http_header ct = {"Content-Type", 12, "text/plain", 10};
    write_response(conn, status, &ct, 1, text, strlen(text), false, false, &close_after);
    conn_end(conn);
}

static void process_in(srv_conn *conn);

static void schedule_resume(srv_conn *conn)
{
    conn->resume_pending = true;
    uv_timer_start(&conn->timer, on_conn_timer, 0, 0);
}

void http_respond(http_exchange *x, int status, const http_header *headers, size_t nheaders,
                  const char *body, size_t body_len)
{
    srv_conn *conn = x->conn;
    if (!conn->x_pending || conn->closing)
        return;
    conn->x_pending = false;
    x->cancel = NULL;
    bool close_after;
    write_response(conn, status, headers, nheaders, body, body_len, x->keep_alive, x->head,
                   &close_after);
    if (close_after) {
        conn_end(conn);
        return;
    }
    if (conn->in_process)
        return; /* process() goes on with the next request and writes at its end */
    flush_out(conn);
    if (conn->in.len)
        schedule_resume(conn);
}

void http_exchange_set_cancel(http_exchange *x, void (*cancel)(void *arg), void *arg)
{
    x->cancel = cancel;
    x->cancel_arg = arg;
}

/* ---- requests --------------------------------------------------------------- */
static void dispatch(srv_conn *conn)
{
    hp_msg *m = &conn->parser;
    http_exchange *x = &conn->x;
    http_server_request *r = &x->req;
    x->conn = conn;
    x->cancel = NULL;
    x->cancel_arg = NULL;
    x->keep_alive = m->keep_alive;
    x->head = m->ll.method == HTTP_HEAD;
    x->http10 = m->http_minor == 0;
    r->method = llhttp_method_name((llhttp_method_t)m->ll.method);
    r->target = m->raw.data ? m->raw.data : "/";
    const char *q = memchr(r->target, '?', m->url_len);
    r->path = r->target;
    r->path_len = q ? (size_t)(q - r->target) : m->url_len;
    r->query = q ? q + 1 : "";
    r->headers = m->headers;
    r->nheaders = m->nheaders;
    r->body = m->body.data ? m->body.data : "";
    r->body_len = (size_t)m->body_len;
    if (!conn->have_peer) {
        if (net_stream_peer(conn->s, conn->peer, sizeof conn->peer) < 0)
            snprintf(conn->peer, sizeof conn->peer, "unknown");
        conn->have_peer = true;
    }
    r->peer = conn->peer;
    r->tls = conn->srv->tls;
    conn->x_pending = true;
    conn->srv->h(x, r, conn->srv->user);
}

/* Parses and dispatches requests from data until it is used up or a
 * request awaits its response; returns how many bytes are left over. */
static size_t process(srv_conn *conn, const char *data, size_t len)
{
    conn->in_process = true;
    while (len > 0 && !conn->closing && !conn->x_pending) {
        size_t used;
        int r = hp_feed(&conn->parser, data, len, &used);
        if (r == HP_MORE) {
            len = 0;
            break;
        }
        if (r < 0) {
            reject(conn, r == HP_ERR_HEAD ? 431 : r == HP_ERR_BODY ? 413 : 400);
            len = 0;
            break;
        }
        data += used;
        len -= used;
        if (conn->parser.upgrade) { /* no protocol switching here */
            reject(conn, 400);
            len = 0;
            break;
        }
        dispatch(conn);
    }
    conn->in_process = false;
    if (!conn->closing)
        flush_out(conn);
    return conn->closing ? 0 : len;
}

static void process_in(srv_conn *conn)
{
    if (!conn->in.len || conn->x_pending || conn->closing)
        return;
    size_t len = conn->in.len;
    size_t rem = process(conn, conn->in.data, len);
    if (conn->closing) {
        cu_buf_reset(&conn->in);
        return;
    }
    memmove(conn->in.data, conn->in.data + (len - rem), rem);
    conn->in.len = rem;
    conn->in.data[rem] = '\0';
    if (conn->read_paused && rem < IN_LIMIT) {
        conn->read_paused = false;
        net_resume(conn->s);
    }
}

static void on_head(hp_msg *m)
{
    srv_conn *conn = m->owner;
    if (m->expect_continue && m->ll.http_minor >= 1)
        cu_buf_append(&conn->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
}

static void on_read(net_stream *s, const char *data, size_t len)
{
    srv_conn *conn = net_stream_user(s);
    if (conn->closing)
        return;
    conn->last_active = uv_now(conn->srv->loop);
    if (conn->x_pending || conn->in.len) {
        cu_buf_append(&conn->in, data, len);
        if (conn->in.len >= IN_LIMIT && !conn->read_paused) {
            conn->read_paused = true;
            net_pause(s);
        }
        process_in(conn);
        return;
    }
    size_t rem = process(conn, data, len);
    if (rem)
        cu_buf_append(&conn->in, data + (len - rem), rem);
}

static void on_end(net_stream *s, int status)
{
    (void)status;
    conn_close(net_stream_user(s));
}

static void on_conn_timer(uv_timer_t *t)
{
    srv_conn *conn = t->data;
    http_server *srv = conn->srv;
    if (conn->closing) { /* the last response did not drain in time */
        if (conn->s)
            net_stream_close(conn->s);
        return;
    }
    if (conn->resume_pending) {
        conn->resume_pending = false;
        process_in(conn);
        if (!conn->closing)
            uv_timer_start(&conn->timer, on_conn_timer, srv->idle_ms, 0);
        return;
    }
    uint64_t now = uv_now(srv->loop);
    uint64_t idle = now - conn->last_active;
    if (conn->x_pending || idle < srv->idle_ms) {
        uint64_t wait = conn->x_pending ? srv->idle_ms : srv->idle_ms - idle;
        uv_timer_start(&conn->timer, on_conn_timer, wait, 0);
        return;
    }
    conn_close(conn);
}

static void on_accept(net_listener *l, net_stream *s, void *user)
{
    (void)l;
    http_server *srv = user;
    if (srv->stopping) {
        net_stream_close(s);
        return;
    }
    srv_conn *conn = cu_calloc(1, sizeof *conn);
    conn->srv = srv;
    conn->s = s;
    hp_init(&conn->parser, false, srv->max_header, srv->max_body);
    conn->parser.keep_body = true;
    conn->parser.on_head = on_head;
    conn->parser.owner = conn;
    conn->last_active = uv_now(srv->loop);
    uv_timer_init(srv->loop, &conn->timer);
    conn->timer.data = conn;
    uv_timer_start(&conn->timer, on_conn_timer, srv->idle_ms, 0);
    conn->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = conn;
    srv->conns = conn;
    srv->nconns++;
    net_stream_set_user(s, conn);
    net_stream_set_cbs(s, &srv_cbs);
}

/* ---- API ------------------------------------------------------------------- */
int http_server_start(http_server **out, uv_loop_t *loop, const http_server_opts *o,
                      http_handler h, void *user, char err[CU_ERRLEN])
{
    *out = NULL;
    http_server *srv = cu_calloc(1, sizeof *srv);
    srv->loop = loop;
    srv->h = h;
    srv->user = user;
    srv->tls = o->tls != NULL;
    srv->max_body = o->max_body ? o->max_body : 64u << 20;
    srv->max_header = o->max_header ? o->max_header : 64u << 10;
    srv->idle_ms = o->idle_timeout_ms ? o->idle_timeout_ms : 60000;
    srv->date_sec = -1;
    int rc = net_listen(&srv->l, loop, o->host, o->port, o->tls, on_accept, srv, err);
    if (rc < 0) {
        free(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

int http_server_port(const http_server *s)
{
    return net_listener_port(s->l);
}

void http_server_stop(http_server *srv)
{
    if (!srv || srv->stopping)
        return;
    srv->stopping = true;
    net_listener_close(srv->l);
    srv->l = NULL;
    for (srv_conn *c = srv->conns; c; c = c->next)
        conn_close(c);
    server_maybe_free(srv);
}
