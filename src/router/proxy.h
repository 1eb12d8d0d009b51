/* router/proxy.h: the client connection and its exchange, shared by
 * proxy.c (client side: parsing, defences, colour choice, request
 * forwarding) and exchange.c (upstream side: connections, response
 * streaming, retries). Internal to src/router/.
 *
 * A client connection has at most one exchange at a time; pipelined bytes
 * wait in `cin` until the response is done. Back-pressure both ways: a
 * reader pauses while its peer's write queue is above RT_HIGH bytes and
 * resumes on the peer's drain, so bodies stream with bounded memory.
 * One timer per client connection, armed for one purpose at a time
 * (`tkind`); the upstream side uses it too (connect, response). The
 * timer is lazy: the deadline lives in `due` and the uv timer is only set
 * again when the new deadline is earlier than the one it will fire at
 * (`timer_at`); firing early, it sets itself for what remains. Most
 * requests move the deadline later, so they cost no timer-heap work. */
#ifndef CUTOVER_ROUTER_PROXY_H
#define CUTOVER_ROUTER_PROXY_H

#include "router/router_int.h"

#define RT_HIGH (256 * 1024)       /* write queue / pending bytes before pausing */
#define RT_REPLAY_MAX (64 * 1024)  /* request bytes kept for a retry */
#define RT_CIN_MAX (64 * 1024)     /* pipelined bytes read ahead of the exchange */
#define RT_LINGER_MS 5000          /* the most a closing connection may take */

typedef struct rt_span {
    uint32_t no, nl, vo, vl;
} rt_span;

typedef struct rt_head {           /* a message head: url/status + header spans */
    cu_buf raw;
    rt_span *sp;
    size_t nsp, cap;
    size_t url_len;
    bool open;                     /* a header is being read */
} rt_head;

struct rt_uconn {
    rt_server *srv;
    rt_gen *gen;                   /* holds a reference until closed */
    net_stream *s;                 /* NULL while resolving */
    rt_cconn *c;                   /* the exchange it serves; NULL when idle */
    rt_uconn *prev, *next;         /* server's idle list */
    uint64_t idle_since_ns;
    uint64_t uses;                 /* requests sent before the current one */
    bool connected, idle, closing, paused, got_bytes, interim, msg_done;
    bool switched;                 /* answered 101: a tunnel from the next byte */
    bool ending, cut;              /* on the router's `ending` list; force-closed */
    uint64_t end_by_ns;            /* ending: cut at this time */
    llhttp_t ll;
    rt_head h;                     /* the response head */
    cu_buf wout;                   /* this loop turn's bytes for it (rt_uwrite) */
    rt_uconn *wprev, *wnext;       /* the router's `wpend` list, while wout has bytes */
    bool wlisted;
};

enum { RQ_IDLE, RQ_HEAD, RQ_BODY, RQ_DONE };
/* UP_TUNNEL: the upstream answered 101 to an Upgrade request; from then on
 * bytes are relayed both ways unparsed until either side ends or the
 * connection is silent for timeouts.tunnel. */
enum { UP_NONE, UP_WAIT, UP_CONNECT, UP_SENT, UP_RESP, UP_TUNNEL };
enum { T_NONE, T_RESUME, T_IDLE, T_HEADER, T_BODY, T_CONNECT, T_RESPONSE, T_LINGER, T_TUNNEL };

struct rt_cconn {
    router *r;
    rt_cconn *prev, *next;         /* router's list */
    net_stream *s;
    uv_timer_t timer;
    int tkind;
    uint64_t due;                  /* the deadline of tkind, loop ms */
    uint64_t timer_at;             /* when the uv timer fires, loop ms (while active) */
    int handles;
    bool closing;
    bool tls;
    char peer[64];
    llhttp_t ll;
    rt_head h;
    cu_buf cin;                    /* bytes after the current request */
    const char *chunk_start, *chunk_end; /* the buffer being parsed */
    int vpieces;                   /* on_header_value calls for this header */
    bool vprev_at_end;             /* the last piece ended the buffer */
    bool folded;                   /* obsolete line folding seen */
    int rq;
    bool bp_paused;                /* upstream's queue is full */
    bool close_after;              /* close once the response is out */
    bool early;                    /* the upstream answered before the body ended */
    bool lingering;                /* answered early: dropping the rest of the body */
    /* the exchange */
    bool active;
    uint64_t id, t0_ns;
    int method;
    uint8_t minor;
    bool keep_alive, req_chunked, idempotent, head_req, upgrade;
    bool tunnel_ok;                /* an Upgrade request that may become a tunnel */
    bool tun_client_eof, tun_up_eof; /* a tunnel side half-closed: its FIN was passed on */
    cu_buf fwd;                    /* the request head for upstreams */
    cu_buf pend;                   /* body bytes not yet written upstream */
    cu_buf replay;                 /* head + body so far, while replayable */
    cu_buf rhead;                  /* the response head being written (reused) */
    /* While one upstream read is parsed, what it produces for the client is
     * gathered and written once after it (one syscall instead of several);
     * what goes to an upstream is gathered for the whole turn (rt_uwrite). */
    bool cbatch;
    cu_buf cout;
    bool replayable, head_sent, discard_body;
    rt_gen *gen;
    router_color color;
    const char *why;               /* "forced", "sticky", "weighted", "retry" */
    rt_server *srv;
    rt_uconn *u;
    int up;
    bool retried, fresh_retry;
    rt_cconn *wprev, *wnext;       /* server's wait queue */
    bool waiting;
    /* the response */
    bool resp_started, resp_chunked, resp_close;
    int status;
    uint64_t bytes_in, bytes_out;
};

/* proxy.c */
void rt_cwrite(rt_cconn *c, const void *p, size_t n);
void rt_cflush(rt_cconn *c);
void rt_client_read_update(rt_cconn *c);
void rt_arm(rt_cconn *c, int kind, uint64_t ms);
/* Appends "name: value\r\n". */
void rt_put_header(cu_buf *b, const char *n, size_t nl, const char *v, size_t vl);
/* A local answer (400, 408, 502, 504 ...); closes after it when `close`
 * or when the request was not read completely. */
void rt_send_error(rt_cconn *c, int status, bool close);
/* The exchange is over: stats (record: this attempt's outcome counts),
 * access log, then the next request or the end of the connection. */
void rt_finish(rt_cconn *c, bool record);
void rt_cconn_close(rt_cconn *c);
/* Graceful close: queued bytes go out first (bounded by the linger timer). */
void rt_cconn_end(rt_cconn *c);
/* The upstream switched protocols: the exchange is measured and logged as
 * a 101, and the connection becomes a tunnel (c->up == UP_TUNNEL). */
void rt_tunnel_begin(rt_cconn *c);
bool rt_hop_by_hop(const rt_head *h, const char *name, size_t len, bool request);
const char *rt_head_find(const rt_head *h, const char *name, size_t *vlen);
void rt_head_reset(rt_head *h);
void rt_head_free(rt_head *h);
int rt_head_field(rt_head *h, const char *at, size_t len, size_t max_headers);
void rt_head_field_done(rt_head *h);
void rt_head_value(rt_head *h, const char *at, size_t len);
void rt_head_value_done(rt_head *h);

/* exchange.c */
/* Starts (or restarts, on retry) the upstream side on colour c. */
void rt_exchange_start(rt_cconn *c, router_color color);
/* Body bytes (already framed for the upstream) from the client. */
void rt_exchange_body(rt_cconn *c, const char *p, size_t n);
/* The client went away or the exchange is abandoned: releases upstream
 * resources (the upstream connection closes if mid-exchange). */
void rt_exchange_abort(rt_cconn *c);
/* Tunnel bytes from the client, and the client's end of a tunnel (the
 * client stream's on_end status). */
void rt_tunnel_client_bytes(rt_cconn *c, const char *p, size_t n);
void rt_tunnel_client_end(rt_cconn *c, int status);
/* The client's write queue drained: resume reading the upstream. */
void rt_exchange_client_drained(rt_cconn *c);
/* The connection timer fired for T_CONNECT or T_RESPONSE. */
void rt_exchange_timeout(rt_cconn *c);
void rt_uconn_close(rt_uconn *u);
/* Bytes for an upstream: gathered for the loop turn and written after the
 * turn's reads (rt_flush_writes), so the requests a turn forwards reach
 * each upstream in one write, and an upstream process is woken once for
 * them rather than once each. rt_uqueued counts them with the stream's
 * own queue, for back-pressure. */
void rt_uwrite(rt_uconn *u, const void *p, size_t n);
size_t rt_uqueued(const rt_uconn *u);
/* Writes out every upstream's gathered bytes (router.c, after each poll). */
void rt_flush_writes(router *r);
/* Closes after what is queued has been written, within RT_LINGER_MS (the
 * router's tick cuts it after that). */
void rt_uconn_end(rt_uconn *u);

#endif
