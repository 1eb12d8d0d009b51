/* net internals shared by tcp.c (streams), listen.c (listeners), tls.c
 * (the TLS transport) and uring.c (early streams on io_uring). Not part of the module's interface: nothing outside src/net/
 * includes this file.
 *
 * A stream is one malloc (reads go to the thread's read buffer), and on the
 * libuv path up to three more, each made only when needed: the connect
 * request (until its callback), the write request (from the first uv_write
 * on) and the timer that reports a synchronous failure. Writes go
 * out with uv_try_write when nothing is queued; what the kernel does not take
 * is appended to `wq`, and at most one uv_write is in flight, from `wfly`
 * (the two buffers are swapped, never freed while the stream lives), so a
 * warmed-up stream writes without allocating.
 *
 * Raw early streams (tcp.c): a plain early client stream bypasses uv_tcp_t
 * and is driven by the thread's poller, one epoll set watched by the loop
 * through a single uv_poll_t; see tcp.c.
 *
 * TLS: `ssl` reads ciphertext from `rbio` (fed by the read callback) and
 * writes ciphertext to `wbio`, which tls.c drains into the raw write path
 * after every OpenSSL call.
 */
#ifndef CUTOVER_NET_INT_H
#define CUTOVER_NET_INT_H

#include <openssl/ssl.h>

#include "net/net.h"

struct net_tls {
    SSL_CTX *ctx;
    bool server;
    bool verify;
};

enum { NS_CONNECTING, NS_HANDSHAKE, NS_OPEN, NS_CLOSING };

/* Reads land in one buffer per thread (every loop runs on its own thread
 * and on_read consumers copy what they keep), so an idle or connecting
 * stream costs only its struct: an open-model load test can hold tens of
 * thousands of them. TLS plaintext likewise. */
#define NET_RBUF_SIZE (64 * 1024)
#define NET_TLS_PBUF_SIZE (16 * 1024)
char *net__thread_rbuf(void);   /* NET_RBUF_SIZE bytes, this thread's */
char *net__thread_pbuf(void);   /* NET_TLS_PBUF_SIZE bytes, this thread's */

struct net_stream {
    uv_tcp_t tcp;
    /* Made only when needed, so a raw or io_uring stream (one a virtual
     * user, thousands alive at once) does not carry them: the libuv
     * connect (freed in its callback), the libuv write (made with the first
     * uv_write, kept for the stream's later ones) and the timer that reports
     * a synchronous failure. */
    uv_connect_t *creq;
    uv_write_t *wreq;
    uv_timer_t *defer;
    uv_loop_t *loop;
    const net_stream_cbs *cbs;
    void *user;
    int state;                   /* NS_* */
    int handles;                 /* handles still to close before freeing */
    int deferred_err;
    bool is_server;
    bool connect_fired;          /* on_connect delivered (client) */
    bool ended;                  /* on_end delivered */
    bool writing;                /* wreq in flight */
    bool paused;
    bool close_after_flush;      /* net_stream_end */
    bool peer_eof;               /* on_end said UV_EOF: the peer only half-closed, writes go on */
    bool shut;                   /* net_stream_shutdown: the write side ends once flushed */
    bool early;                  /* net_connect_early: writes allowed while connecting */
    /* raw: an early stream driven by the thread's poller (tcp.c) instead of
     * libuv's stream code; `tcp` is then only initialised (no socket), for
     * the deferred close callback */
    bool raw;
    bool want_in;                /* raw: reading (started and not paused) */
    uint32_t ev_cur;             /* raw: the events registered (0: not in the set) */
    int fd;                      /* raw: the socket (-1 once closed) */
    size_t wfly_off;             /* raw: bytes of wfly already written */
    unsigned sends;              /* raw: send() calls so far (TCP_NODELAY from the second) */
    unsigned fork_gen;           /* raw: forks counted when it entered the epoll set */
    struct net_poller *poller;   /* raw */
    /* uring: an early stream on the thread's io_uring (uring.c) instead */
    bool uring;
    bool u_recv;                 /* uring: a RECV in flight */
    int u_stash_end;             /* uring: EOF or error that came while paused */
    int u_send_err;              /* uring: a send's error, held until the read in flight ends */
    unsigned u_slot;             /* uring: its fixed-file slot */
    struct net_uring *ring;      /* uring: NULL once closed */
    cu_buf u_stash;              /* uring: data that came while paused */
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } u_addr;                    /* uring: the peer (for CONNECT and net_stream_peer) */
    cu_buf wq;                   /* not yet handed to libuv */
    cu_buf wfly;                 /* the uv_write in flight */
    uint64_t bytes_in, bytes_out;
    uint64_t tcp_done_ns;        /* client: cu_now_ns() when TCP connected (before TLS) */
    /* TLS (ssl == NULL for plain TCP) */
    SSL *ssl;
    BIO *rbio, *wbio;
    bool hs_done;
    cu_buf tls_pending;          /* plaintext written before the handshake finished */
};

/* tcp.c, used by tls.c */
int net__raw_write(net_stream *s, const void *data, size_t len);
void net__fire_connect(net_stream *s, int status);
/* A failure: on_connect(err) for a client still connecting, else on_end(err). */
void net__fire_fail(net_stream *s, int err);
void net__fire_end(net_stream *s, int status);
bool net__live(const net_stream *s); /* not closing and on_end not fired */

/* tcp.c, used by listen.c: the stream of a connection waiting on `server`
 * (accepted, reading, TLS attached when tls is set), or NULL when the
 * accept failed. */
net_stream *net__accept(uv_stream_t *server, uv_loop_t *loop, net_tls *tls);

/* tcp.c, used by uring.c */
void net__stream_input(net_stream *s, ssize_t nread, char *base); /* bytes or UV_EOF/-errno */
void net__write_done(net_stream *s, int status);                  /* wfly went, or failed */
/* The time of the event being delivered: a completion's, while uring.c
 * delivers one (0 otherwise: net_event_ns() is then cu_now_ns()). */
extern _Thread_local uint64_t net__event_ns;

/* uring.c, used by tcp.c: raw early streams over io_uring (see uring.c).
 * net__uring_open returns 0 when s is now a uring stream, 1 when the
 * thread has no ring for its loop (the caller takes the epoll path). */
int net__uring_open(net_stream *s, const struct sockaddr *addr);
void net__uring_read(net_stream *s);    /* reading started (or resumed) */
void net__uring_send(net_stream *s);    /* wfly is ready to go */
void net__uring_release(net_stream *s); /* net_stream_close */

/* tls.c, used by tcp.c */
int net__tls_attach(net_stream *s, net_tls *t, const char *server_name);
void net__tls_start(net_stream *s);                 /* client: send ClientHello */
void net__tls_input(net_stream *s, const char *data, size_t len);
int net__tls_write(net_stream *s, const void *data, size_t len);
void net__tls_shutdown(net_stream *s);              /* queue close_notify */
void net__tls_free(net_stream *s);

#endif
