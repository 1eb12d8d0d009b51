/* http: HTTP/1.1 messages over net streams, parsed with llhttp.
 *
 * Client: an http_client is one keep-alive connection to one origin
 * (scheme, host, port), used for one request at a time. It resolves,
 * connects (and handshakes TLS) lazily on the first request and again
 * whenever the previous connection was closed by either side; Content-Length
 * and chunked bodies; no body for HEAD, 1xx, 204 and 304; "Connection: close"
 * honoured. Each http_client_send() completes exactly once through its
 * callback: with 0 and a response, or with a negative error (net.h codes,
 * UV_ETIMEDOUT when the request timeout expires, HTTP_E_PARSE for a garbage
 * or truncated response) and net_error_name() naming it.
 *
 * Server: http_server accepts connections, parses requests (bodies are
 * buffered up to a limit), and hands each to a handler which answers,
 * now or later, with http_respond(). Pipelined requests are answered in
 * order. Bad requests get 400 and the connection closes.
 *
 * Thread rules: one loop per object; nothing is shared across threads.
 */
#ifndef CUTOVER_HTTP_H
#define CUTOVER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/base.h"
#include "net/net.h"

enum {
    HTTP_E_PARSE = -32001,   /* malformed or truncated response: "HPE_..." name */
    HTTP_E_CLOSED = -32002,  /* the server closed before answering: ECONNRESET */
    /* Parse errors carry llhttp's reason: HTTP_E_PARSE_BASE - llhttp_errno
     * ("HPE_INVALID_CONSTANT", "HPE_INVALID_EOF_STATE" for a truncated
     * body, ...). Test with http_error_is_parse(), not == HTTP_E_PARSE. */
    HTTP_E_PARSE_BASE = -32100,
};
/* Name for an error from this module or net (falls back to net_error_name). */
const char *http_error_name(int err);
/* HTTP_E_PARSE or one of the HTTP_E_PARSE_BASE - n codes. */
bool http_error_is_parse(int err);

typedef struct http_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} http_header;

/* Case-insensitive lookup; NULL if absent. */
const http_header *http_header_find(const http_header *h, size_t n, const char *name);

/* ---- URLs ------------------------------------------------------------------------ */
typedef struct http_url {
    bool tls;        /* https */
    char *host;      /* without brackets for IPv6 */
    int port;        /* explicit or 80/443 */
    char *hostport;  /* what goes in Host: "example.com", "127.0.0.1:8080", "[::1]:8080" */
    char *target;    /* path and query, at least "/" */
} http_url;

/* Parses an absolute http:// or https:// URL. Returns 0 or -EINVAL with err. */
int http_url_parse(http_url *u, const char *s, char err[CU_ERRLEN]);
void http_url_free(http_url *u);

/* ---- client -------------------------------------------------------------------------- */
typedef struct http_request {
    const char *method;      /* "GET" */
    const char *target;      /* "/path?q" */
    const http_header *headers; /* Host, Content-Length and Connection are added
                                   unless present; copied at send */
    size_t nheaders;
    const char *body;        /* may be NULL */
    size_t body_len;
} http_request;

typedef struct http_response {
    int status;
    const http_header *headers; /* valid only during the callback */
    size_t nheaders;
    const char *body;           /* only when keep_body was set; else NULL */
    size_t body_len;            /* body bytes received (after de-chunking) */
    bool keep_alive;
    uint64_t t_connect_ns;      /* connect (+TLS) time for this request, 0 if reused */
    uint64_t t_dns_ns;          /* name lookup for a new connection (0: none, or reused) */
    uint64_t t_tcp_ns;          /* TCP connect of a new connection (0 if reused) */
    uint64_t t_tls_ns;          /* TLS handshake of a new connection (0: plain or reused) */
    uint64_t t_start_ns;        /* cu_now_ns() when http_client_send was called */
    uint64_t t_written_ns;      /* cu_now_ns() when the request was fully written */
    uint64_t t_headers_ns;      /* ... when the response head was parsed */
    uint64_t t_done_ns;         /* ... when the body was complete */
} http_response;

typedef struct http_client http_client;
typedef void (*http_response_cb)(void *user, int err, const http_response *res);

typedef struct http_client_opts {
    net_resolver *resolver;  /* required */
    net_tls *tls;            /* required for https origins */
    uint64_t connect_timeout_ms; /* 0: use timeout_ms */
} http_client_opts;

/* A client for url's origin (the URL's target is ignored). */
http_client *http_client_new(uv_loop_t *loop, const http_url *origin, const http_client_opts *o);
/* Early write, for plain http without connect_timeout_ms (else ignored):
 * new connections come from net_connect_early and the request is written
 * as connect() returns instead of a loop turn later; errors are reported
 * as without it. t_tcp_ns then runs until the kernel took the request
 * (the handshake was done by then). Call before the first send. */
void http_client_set_early_write(http_client *c, bool on);
/* Sends one request; cb fires once, later. keep_body: buffer the body for
 * the callback. timeout_ms covers connect + request + response (0 = none).
 * Returns 0, or -EBUSY if a request is already in flight. */
int http_client_send(http_client *c, const http_request *req, bool keep_body,
                     uint64_t timeout_ms, http_response_cb cb, void *user);
/* Closes the connection and frees the client once the loop has released
 * it. A request in flight completes with UV_ECANCELED first. */
void http_client_free(http_client *c);
/* Closes the connection (and a retired one) as http_client_free does, a
 * request in flight completing with UV_ECANCELED first, but keeps the
 * client and its buffers: the next http_client_send opens a new
 * connection. For owners that recycle clients (one connection per
 * virtual user without an allocation per user). */
void http_client_reset(http_client *c);
/* Requests sent over a reused connection so far (for tests). */
uint64_t http_client_reused(const http_client *c);

/* ---- server -------------------------------------------------------------------------- */
typedef struct http_server http_server;
typedef struct http_exchange http_exchange; /* one request awaiting its response */

typedef struct http_server_request {
    const char *method;
    const char *target;          /* raw request-target */
    const char *path;            /* target up to '?', decoded no further */
    size_t path_len;
    const char *query;           /* after '?', or "" */
    const http_header *headers;
    size_t nheaders;
    const char *body;
    size_t body_len;
    const char *peer;            /* "127.0.0.1" */
    bool tls;
} http_server_request;

/* Called once per request. The request stays valid until http_respond. */
typedef void (*http_handler)(http_exchange *x, const http_server_request *req, void *user);

typedef struct http_server_opts {
    const char *host;            /* "127.0.0.1" */
    int port;                    /* 0 picks one */
    net_tls *tls;                /* NULL: plain HTTP */
    size_t max_body;             /* 0: 64 MiB */
    size_t max_header;           /* 0: 64 KiB */
    uint64_t idle_timeout_ms;    /* 0: 60 s */
} http_server_opts;

int http_server_start(http_server **out, uv_loop_t *loop, const http_server_opts *o,
                      http_handler h, void *user, char err[CU_ERRLEN]);
int http_server_port(const http_server *s);
/* Stops accepting and closes every connection; frees asynchronously.
 * Exchanges not yet answered are dropped (their handlers must not respond
 * after this: use http_exchange_set_cancel to learn of it). */
void http_server_stop(http_server *s);

/* Answers an exchange (once). Content-Length, Date and Connection are added
 * unless present. The body is copied. */
void http_respond(http_exchange *x, int status, const http_header *headers, size_t nheaders,
                  const char *body, size_t body_len);
/* Called if the connection dies before the handler responds; after it the
 * exchange is gone and must not be used. */
void http_exchange_set_cancel(http_exchange *x, void (*cancel)(void *arg), void *arg);
const char *http_status_text(int status);

#endif
