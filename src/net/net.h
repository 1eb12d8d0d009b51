/* net: byte streams over libuv, plain TCP or TLS (OpenSSL over memory BIOs),
 * and name resolution. Knows nothing of HTTP.
 *
 * A net_stream is one connection, client or server side, bound to one
 * uv_loop_t (one worker thread). TLS is a transport under the same API: the
 * owner reads and writes plaintext and never sees OpenSSL's want-read /
 * want-write dance. Every callback fires exactly once per event and never
 * from inside the call that caused it... except on_read, which fires for
 * each chunk of plaintext. After net_stream_close() no callback fires but
 * on_close, once; memory is released after it.
 *
 * Errors are negative libuv codes (UV_ECONNREFUSED, UV_ETIMEDOUT, ...) or
 * the NET_E* codes below; net_error_name() gives Node.js's name for either
 * (ECONNREFUSED, ETIMEDOUT, DEPTH_ZERO_SELF_SIGNED_CERT,
 * ERR_TLS_CERT_ALTNAME_INVALID, ...), which is what reports count.
 */
#ifndef CUTOVER_NET_H
#define CUTOVER_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "base/base.h"

/* Our own error codes, below libuv's range. */
enum {
    NET_E_TLS = -30001,          /* TLS handshake or record failure */
    NET_E_CERT_BASE = -31000,    /* -31000 - X509_V_ERR_*: verification failures */
};
const char *net_error_name(int err);

/* ---- TLS contexts (one per worker thread and role) ------------------------- */
typedef struct net_tls net_tls;
/* Client context. verify: check the chain and the host name (the default
 * everywhere). ca_file: extra trusted PEM certificates (may be NULL); the
 * system store is always trusted, and so is $NODE_EXTRA_CA_CERTS when set. */
int net_tls_client_new(net_tls **out, bool verify, const char *ca_file, char err[CU_ERRLEN]);
/* Server context from PEM files. */
int net_tls_server_new(net_tls **out, const char *cert_file, const char *key_file,
                       char err[CU_ERRLEN]);
void net_tls_free(net_tls *t);

/* ---- streams ------------------------------------------------------------------ */
typedef struct net_stream net_stream;

typedef struct net_stream_cbs {
    /* Client side: connected (and TLS handshake done) or failed. */
    void (*on_connect)(net_stream *s, int status);
    /* Plaintext received. `data` is valid only during the call (it is the
     * thread's read buffer): copy what must outlive it. */
    void (*on_read)(net_stream *s, const char *data, size_t len);
    /* The peer closed (UV_EOF) or the connection failed (negative code).
     * No more on_read after this. The owner still calls net_stream_close. */
    void (*on_end)(net_stream *s, int status);
    /* All writes queued so far have been handed to the kernel (optional);
     * also after on_end(UV_EOF), for an owner that writes on to a peer that
     * half-closed. */
    void (*on_drain)(net_stream *s);
    /* After net_stream_close, or when a write fails after on_end (a peer
     * that half-closed has gone); the stream is freed right after this
     * returns. */
    void (*on_close)(net_stream *s);
} net_stream_cbs;

/* Starts connecting to addr. tls may be NULL (plain TCP); server_name is
 * used for SNI and certificate host checks (may be NULL with plain TCP).
 * on_connect fires once, later, with 0 or an error. */
net_stream *net_connect(uv_loop_t *loop, const struct sockaddr *addr, net_tls *tls,
                        const char *server_name, const net_stream_cbs *cbs, void *user);
/* As net_connect, for a client that speaks first (HTTP): the socket is made
 * here (non-blocking; TCP_NODELAY is set before the second send, the first
 * that Nagle could hold back) and connect() started, and net_write may
 * be called at once: the first write is tried straight away. On loopback
 * the handshake has completed when connect() returns, so the request goes
 * out without waiting a loop turn for writability and without the
 * SO_ERROR check; elsewhere the kernel refuses it (EAGAIN) and it waits in
 * the queue until the socket is writable. on_connect still fires exactly
 * once, never from inside this call or net_write: with 0 once the
 * connection is known to be up (a queued write completed, or data or EOF
 * arrived: just before the first on_read/on_end), or with the connect
 * error (ECONNREFUSED, ...), however it shows (connect(), the first write,
 * the read side). net_stream_tcp_done_ns is when the first write was taken
 * by the kernel (the handshake was done by then) or when the connection
 * was seen up. The owner must write something (or the peer send) for
 * on_connect(0) to fire. With tls this is net_connect. The socket is not
 * a libuv handle (tcp.c, "raw early streams": it costs 6 system calls a
 * connection instead of 9), and a loop's early streams share one epoll
 * set per thread, so a thread runs early streams of one loop at a time
 * (another loop's fall back to libuv's, which behave the same). */
net_stream *net_connect_early(uv_loop_t *loop, const struct sockaddr *addr, net_tls *tls,
                              const char *server_name, const net_stream_cbs *cbs, void *user);
/* Queues plaintext for writing (copied). Returns 0 or a negative code. */
int net_write(net_stream *s, const void *data, size_t len);
/* Stops/starts delivering on_read (back-pressure). */
void net_pause(net_stream *s);
void net_resume(net_stream *s);
/* Closes (with a TLS close_notify when possible). Safe to call once from any
 * callback; on_close follows. */
void net_stream_close(net_stream *s);
/* Closes gracefully: data already queued by net_write (and a TLS
 * close_notify) is written first, then the stream closes as with
 * net_stream_close. No on_read/on_end after this call; on_close follows.
 * A peer that stops reading keeps the stream open: owners keep a timer and
 * call net_stream_close to force it (allowed after net_stream_end). After
 * on_end(UV_EOF) (the peer half-closed) the queue still goes out; after a
 * failed one the stream closes at once. */
void net_stream_end(net_stream *s);
/* Half-closes: the write side ends once what is queued is written (a TLS
 * close_notify, then a FIN), and reading goes on: on_read and on_end still
 * come, and on_end(UV_EOF) then means both directions are done. net_write
 * fails with UV_EPIPE after it. On a stream whose peer already ended, still
 * connecting or in its TLS handshake, and on an early stream
 * (net_connect_early), it is net_stream_end. */
void net_stream_shutdown(net_stream *s);
/* Bytes accepted by net_write that the kernel has not taken yet. 0 right
 * after net_write means the data went out synchronously (no on_drain will
 * follow for it); otherwise on_drain fires once the queue empties. */
size_t net_stream_queued(const net_stream *s);
/* The peer's address as text ("127.0.0.1", "::1") into buf; 0 or a negative
 * code. */
int net_stream_peer(const net_stream *s, char *buf, size_t len);
void *net_stream_user(const net_stream *s);
void net_stream_set_user(net_stream *s, void *user);
/* Set the stream's callbacks (a server hands accepted streams to an owner). */
void net_stream_set_cbs(net_stream *s, const net_stream_cbs *cbs);
/* Client: cu_now_ns() when the TCP connection was established, before any
 * TLS handshake (0 until then), to split connect time into TCP and TLS. */
uint64_t net_stream_tcp_done_ns(const net_stream *s);
/* For timings taken in a stream callback: when the event being delivered
 * happened. An early stream on io_uring (tcp.c, uring.c) learns of a write
 * or a read from a completion that may be reaped a little after it
 * completed (a send into a connected socket completes inside the submit
 * call); this gives that time, and cu_now_ns() everywhere else. */
uint64_t net_event_ns(void);
/* Bytes read and written on the wire (TLS records included). */
uint64_t net_stream_bytes_in(const net_stream *s);
uint64_t net_stream_bytes_out(const net_stream *s);

/* ---- listeners ------------------------------------------------------------------ */
typedef struct net_listener net_listener;
/* on_accept gets a ready stream (TLS handshake runs as data arrives); it
 * must set the stream's callbacks and user with net_stream_set_cbs/_user. */
typedef void (*net_accept_cb)(net_listener *l, net_stream *s, void *user);

/* Binds host:port (port 0 picks one; SO_REUSEPORT so several workers can
 * bind the same port). tls may be NULL. */
int net_listen(net_listener **out, uv_loop_t *loop, const char *host, int port, net_tls *tls,
               net_accept_cb cb, void *user, char err[CU_ERRLEN]);
int net_listener_port(const net_listener *l);
void net_listener_close(net_listener *l); /* frees asynchronously */

/* ---- addresses ------------------------------------------------------------------ */
/* Asynchronous resolution with a per-loop cache (entries live `ttl_ms`).
 * Literal IPv4/IPv6 addresses resolve without a lookup, synchronously:
 * then the callback still fires later, from the loop, never re-entrantly. */
typedef struct net_resolver net_resolver;
typedef void (*net_resolve_cb)(void *user, int status, const struct sockaddr *addr);
net_resolver *net_resolver_new(uv_loop_t *loop, uint64_t ttl_ms);
void net_resolver_free(net_resolver *r);
void net_resolve(net_resolver *r, const char *host, int port, net_resolve_cb cb, void *user);

/* Parses "host:port", "[v6]:port" or ":port" into host (allocated) and port. */
int net_split_hostport(const char *s, char **host, int *port, char err[CU_ERRLEN]);

#endif
