/* net/tcp.c: streams over uv_tcp_t, and raw early streams (see net.h for the
 * contract; listeners are in listen.c).
 *
 * Invariants:
 * - one malloc per stream (on the libuv path also its connect and write
 *   requests and failure timer, each when needed), freed only in the last
 *   close callback, after on_close;
 * - reads go to the thread's read buffer (net__thread_rbuf): alloc_cb never
 *   allocates, and data handed to on_read is valid only during the call;
 * - writes try uv_try_write first; the rest waits in `wq`, with at most one
 *   uv_write in flight (from `wfly`), so callbacks stay ordered and a warm
 *   stream never allocates to write;
 * - an early stream (net_connect_early) is NS_CONNECTING until a write is
 *   taken by the kernel or the read side sees the peer; it reads and
 *   accepts writes from the start, and its on_connect(0) is delivered from
 *   the first callback that proves the connection up (early_up);
 * - a raw stream (a plain early one, see "raw early streams" below) has no
 *   socket in `tcp`; every libuv stream call on `tcp` goes through the
 *   helpers start_reading, stop_reading, try_write and flush_queue, which
 *   take the raw path for it;
 * - after net_stream_close (state NS_CLOSING) no callback but on_close fires:
 *   every fire_* helper checks the state first, and callers re-check after
 *   each owner callback because the owner may close from inside it.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net_int.h"

static const net_stream_cbs no_cbs;

static void start_reading(net_stream *s);
static void stop_reading(net_stream *s);
static void raw_update(net_stream *s);
static void raw_release(net_stream *s);

/* Deliberate exceptions to "no globals", all private to this file: scratch
 * space private to each thread, never holding data across callbacks (here);
 * the thread's poller of raw early streams and the process's fork count
 * (below: net_connect_early takes only a loop, and pthread_atfork handlers
 * take no context). */
static _Thread_local char thread_rbuf[NET_RBUF_SIZE];
_Thread_local uint64_t net__event_ns;

uint64_t net_event_ns(void)
{
    return net__event_ns ? net__event_ns : cu_now_ns();
}
static _Thread_local char thread_pbuf[NET_TLS_PBUF_SIZE];

char *net__thread_rbuf(void)
{
    return thread_rbuf;
}

char *net__thread_pbuf(void)
{
    return thread_pbuf;
}

static net_stream *stream_alloc(uv_loop_t *loop)
{
    net_stream *s = cu_malloc(sizeof *s);
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->cbs = &no_cbs;
    uv_tcp_init(loop, &s->tcp);
    s->tcp.data = s;
    s->handles = 1;
    s->fd = -1;
    return s;
}

static void stream_free(net_stream *s)
{
    net__tls_free(s);
    cu_buf_free(&s->wq);
    cu_buf_free(&s->wfly);
    cu_buf_free(&s->u_stash);
    free(s->wreq); /* a write in flight was cancelled before the close callback */
    free(s);
}

static void handle_closed(net_stream *s)
{
    if (--s->handles > 0)
        return;
    if (s->cbs->on_close)
        s->cbs->on_close(s);
    stream_free(s);
}

static void on_handle_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

static void on_defer_closed(uv_handle_t *h)
{
    net_stream *s = h->data;
    free(h);
    s->defer = NULL;
    handle_closed(s);
}

bool net__live(const net_stream *s)
{
    return s->state != NS_CLOSING && !s->ended && !s->close_after_flush;
}

void net__fire_connect(net_stream *s, int status)
{
    if (s->state == NS_CLOSING || s->connect_fired)
        return;
    s->connect_fired = true;
    if (status == 0)
        s->state = NS_OPEN;
    if (s->cbs->on_connect)
        s->cbs->on_connect(s, status);
}

void net__fire_end(net_stream *s, int status)
{
    if (!net__live(s))
        return;
    s->ended = true;
    s->peer_eof = status == UV_EOF;
    stop_reading(s);
    if (s->cbs->on_end)
        s->cbs->on_end(s, status);
}

void net__fire_fail(net_stream *s, int err)
{
    if (s->state == NS_CLOSING)
        return;
    if (!s->is_server && !s->connect_fired) {
        s->ended = true;
        stop_reading(s);
        net__fire_connect(s, err);
    } else {
        net__fire_end(s, err);
    }
}

/* ---- deferred failure (a synchronous error must still be reported later) -- */
static void on_defer(uv_timer_t *t)
{
    net_stream *s = t->data;
    net__fire_fail(s, s->deferred_err);
}

static void fail_later(net_stream *s, int err)
{
    if (s->state == NS_CLOSING)
        return; /* a timer made now would never be closed, nor the stream freed */
    if (!s->defer) {
        s->defer = cu_malloc(sizeof *s->defer);
        uv_timer_init(s->loop, s->defer);
        s->defer->data = s;
        s->handles++;
    }
    s->deferred_err = err;
    uv_timer_start(s->defer, on_defer, 0, 0);
}

/* ---- early streams ------------------------------------------------------ */
/* The connection of an early stream is known to be up: remember when (the
 * first proof counts) and leave NS_CONNECTING. */
static void early_mark_up(net_stream *s)
{
    if (!s->tcp_done_ns)
        s->tcp_done_ns = net_event_ns();
    if (s->state == NS_CONNECTING)
        s->state = NS_OPEN;
}

/* From a libuv callback that proves the connection up: delivers the
 * pending on_connect(0). Returns false when the owner closed or ended the
 * stream from it (the caller must then stop). */
static bool early_up(net_stream *s)
{
    if (!s->early || s->connect_fired)
        return true;
    early_mark_up(s);
    net__fire_connect(s, 0);
    return net__live(s);
}

/* ---- reading ------------------------------------------------------------ */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    (void)h;
    buf->base = thread_rbuf;
    buf->len = sizeof thread_rbuf;
}

/* What a read gave (bytes, or a negative code with UV_EOF), from libuv's
 * read callback or a raw stream's read. */
void net__stream_input(net_stream *s, ssize_t nread, char *base)
{
    if (nread == 0 || s->state == NS_CLOSING)
        return;
    if (nread < 0) {
        int err = (int)nread;
        if (s->ssl && !s->hs_done && err == UV_EOF)
            err = UV_ECONNRESET; /* as Node: closed before the handshake finished */
        /* early: an error before the connection was seen up is the connect's */
        if ((err == UV_EOF || s->state == NS_OPEN) && !early_up(s))
            return;
        net__fire_fail(s, err);
        return;
    }
    if (!early_up(s))
        return;
    s->bytes_in += (uint64_t)nread;
    if (s->close_after_flush)
        return; /* ending: input is discarded */
    if (s->ssl)
        net__tls_input(s, base, (size_t)nread);
    else if (s->cbs->on_read)
        s->cbs->on_read(s, base, (size_t)nread);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    net__stream_input(st->data, nread, buf->base);
}

static bool may_write(const net_stream *s)
{
    return s->state != NS_CONNECTING || s->early;
}

static void start_reading(net_stream *s)
{
    if (s->paused)
        return;
    if (s->raw) {
        s->want_in = true;
        raw_update(s);
        return;
    }
    if (s->uring) {
        s->want_in = true;
        net__uring_read(s);
        return;
    }
    uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
}

static void stop_reading(net_stream *s)
{
    if (s->raw || s->uring) {
        s->want_in = false; /* EPOLLIN goes at its next event, or with the close;
                               a RECV in flight stays (what it brings waits) */
        return;
    }
    uv_read_stop((uv_stream_t *)&s->tcp);
}

/* ---- writing ------------------------------------------------------------ */
static void on_written(uv_write_t *req, int status);

static void on_shut(uv_shutdown_t *req, int status)
{
    (void)status; /* a failed FIN shows on the read side, as a reset */
    free(req);
}

/* net_stream_shutdown's FIN, once everything queued is out (a libuv stream:
 * net_stream_shutdown hands raw and io_uring ones to net_stream_end). */
static void shut_now(net_stream *s)
{
    uv_shutdown_t *req = cu_malloc(sizeof *req);
    if (uv_shutdown(req, (uv_stream_t *)&s->tcp, on_shut) < 0)
        free(req); /* not writable any more: the read side says why */
}

static void flush_queue(net_stream *s)
{
    cu_buf tmp = s->wfly;
    s->wfly = s->wq;
    s->wq = tmp;
    cu_buf_reset(&s->wq);
    if (s->raw) { /* written when the socket says it is writable */
        s->wfly_off = 0;
        s->writing = true;
        raw_update(s);
        return;
    }
    if (s->uring) { /* a SEND at the end of the loop turn */
        s->wfly_off = 0;
        s->writing = true;
        net__uring_send(s);
        return;
    }
    uv_buf_t b = uv_buf_init(s->wfly.data, (unsigned)s->wfly.len);
    if (!s->wreq)
        s->wreq = cu_malloc(sizeof *s->wreq);
    int rc = uv_write(s->wreq, (uv_stream_t *)&s->tcp, &b, 1, on_written);
    if (rc < 0) {
        cu_buf_reset(&s->wfly);
        fail_later(s, rc);
        return;
    }
    s->writing = true;
}

/* The write in flight (wfly) finished, with 0 or a negative code. */
void net__write_done(net_stream *s, int status)
{
    s->writing = false;
    cu_buf_reset(&s->wfly);
    if (s->state == NS_CLOSING)
        return;
    if (status < 0) {
        if (s->close_after_flush || s->ended)
            net_stream_close(s); /* ended: on_end was said, and now nothing can go either */
        else
            net__fire_fail(s, status);
        return;
    }
    if (!early_up(s))
        return;
    if (s->wq.len) {
        flush_queue(s);
        return;
    }
    if (s->close_after_flush) {
        net_stream_close(s);
        return;
    }
    if (s->shut) {
        shut_now(s);
        return;
    }
    if (s->cbs->on_drain && (!s->ended || s->peer_eof))
        s->cbs->on_drain(s);
}

static void on_written(uv_write_t *req, int status)
{
    net__write_done(req->handle->data, status);
}

/* One send() of a raw stream: bytes taken or a negative code (UV_E* are
 * -errno here). TCP_NODELAY is set before the second send, not at
 * connect: Nagle only holds back a segment while earlier data is unacked,
 * which needs an earlier send, so a connection that writes one request
 * (a virtual user of the open model) saves the setsockopt, and every later
 * write goes out as with TCP_NODELAY from the start. */
static void set_nodelay(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static ssize_t raw_send(net_stream *s, const void *data, size_t len)
{
    if (s->sends++ == 1)
        set_nodelay(s->fd);
    ssize_t n = send(s->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    return n >= 0 ? n : -errno;
}

/* uv_try_write, or its raw equivalent: bytes taken or a negative code. */
static int try_write(net_stream *s, const void *data, size_t len)
{
    if (s->uring)
        return UV_EAGAIN; /* nothing is written from inside a call: queued for the turn's end */
    if (s->raw)
        return (int)raw_send(s, data, len);
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    return uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
}

int net__raw_write(net_stream *s, const void *data, size_t len)
{
    if (s->state == NS_CLOSING)
        return UV_EPIPE;
    if (len == 0)
        return 0;
    s->bytes_out += len;
    if (!s->writing && s->wq.len == 0 && may_write(s)) {
        int n = try_write(s, data, len);
        if (n > 0 && s->early)
            early_mark_up(s); /* the kernel took data: the handshake is done */
        if (n == (int)len)
            return 0;
        if (n > 0) {
            data = (const char *)data + n;
            len -= (size_t)n;
        }
        if (n < 0 && n != UV_EAGAIN && s->state == NS_CONNECTING) {
            /* early, refused (or failed) before it was up: this is the
             * connect's error; a second write would only say EPIPE (and
             * a read, EOF) */
            stop_reading(s);
            fail_later(s, n);
            return 0;
        }
        /* EAGAIN, a partial write, or a real error: uv_write below reports
         * the error (if any) asynchronously through on_written. */
    }
    cu_buf_append(&s->wq, data, len);
    if (!s->writing && may_write(s))
        flush_queue(s);
    return 0;
}

int net_write(net_stream *s, const void *data, size_t len)
{
    if (s->state == NS_CLOSING || s->close_after_flush || s->shut)
        return UV_EPIPE;
    if (s->ssl)
        return net__tls_write(s, data, len);
    return net__raw_write(s, data, len);
}

size_t net_stream_queued(const net_stream *s)
{
    size_t n = s->wq.len + s->wfly.len;
    if (s->ssl)
        n += s->tls_pending.len;
    return n;
}

/* ---- connecting --------------------------------------------------------- */
static void on_connected(uv_connect_t *req, int status)
{
    net_stream *s = req->handle->data;
    free(req);
    s->creq = NULL;
    if (s->state == NS_CLOSING)
        return; /* UV_ECANCELED from net_stream_close */
    if (status < 0) {
        net__fire_fail(s, status);
        return;
    }
    s->tcp_done_ns = cu_now_ns();
    uv_tcp_nodelay(&s->tcp, 1);
    start_reading(s);
    if (s->ssl) {
        s->state = NS_HANDSHAKE;
        net__tls_start(s);
        return;
    }
    s->state = NS_OPEN;
    if (s->wq.len && !s->writing)
        flush_queue(s);
    net__fire_connect(s, 0);
}

net_stream *net_connect(uv_loop_t *loop, const struct sockaddr *addr, net_tls *tls,
                        const char *server_name, const net_stream_cbs *cbs, void *user)
{
    net_stream *s = stream_alloc(loop);
    s->cbs = cbs ? cbs : &no_cbs;
    s->user = user;
    s->state = NS_CONNECTING;
    if (tls) {
        int rc = net__tls_attach(s, tls, server_name);
        if (rc < 0) {
            fail_later(s, rc);
            return s;
        }
    }
    s->creq = cu_malloc(sizeof *s->creq);
    int rc = uv_tcp_connect(s->creq, &s->tcp, addr, on_connected);
    if (rc < 0) {
        free(s->creq); /* no callback follows a refused start */
        s->creq = NULL;
        fail_later(s, rc);
    }
    return s;
}

/* ---- raw early streams ---------------------------------------------------
 * A plain early client stream is what an open-model load test makes tens of
 * thousands of a second, one per virtual user, so its system calls are
 * counted: through uv_tcp_t a connection costs socket, setsockopt, connect,
 * ioctl(FIONBIO) (uv_tcp_open sets non-blocking again), write,
 * epoll_ctl(ADD), read, epoll_ctl(DEL) (uv_close) and close. A raw stream
 * keeps its socket out of libuv: it sits in the thread's poller, one epoll
 * set that the loop watches with a single uv_poll_t, and costs socket,
 * connect, send, epoll_ctl(ADD), read and close (close takes the socket
 * out of the set; it is never dup'ed; TCP_NODELAY waits for a second send,
 * see raw_send).
 *
 * The poller is made by the first raw stream of a loop; when the last one
 * closes, a zero-delay timer closes it on the next loop turn unless a new
 * stream came meanwhile (a retry, the next user), so it never keeps a
 * finished loop open, needs no teardown call, and is not rebuilt for each
 * connection of a one-at-a-time client. Its events carry the fd, looked up
 * in the poller's table of open raw streams, never a pointer, so a stale
 * event finds no stream (skipped) or the new stream that reuses the
 * number, for which a spurious wake-up is harmless (its read says EAGAIN).
 * Stale events come from a socket closed while a forked child still holds
 * it (uv_spawn, between fork and exec): it stays in the epoll set until the
 * child's exec. To keep that from waking the loop meanwhile, a stream
 * registered before the latest fork (pthread_atfork counts them) leaves
 * the set explicitly before its close; libuv pays that EPOLL_CTL_DEL on
 * every close.
 *
 * Events are handled as libuv does: read first (data that came before a
 * reset is delivered before the write fails), then write. A stream wants
 * EPOLLIN while reading and EPOLLOUT while a queued write waits; what it no
 * longer wants is dropped lazily, at its next event (a paused or ended
 * stream that is closed first costs no epoll_ctl), and a stream that wants
 * nothing leaves the set, as EPOLLHUP and EPOLLERR would otherwise wake the
 * loop for it. Threads that already have a poller for another loop, and
 * epoll failures, fall back to the uv_tcp_t path. */
typedef struct net_poller {
    uv_poll_t poll;
    uv_timer_t linger;  /* empty: closes the poller on the next loop turn if still empty */
    uv_loop_t *loop;
    int epfd;
    int handles;        /* poll and linger, until both close callbacks ran */
    size_t streams;     /* raw streams not yet closed */
    net_stream **by_fd; /* the open raw stream of each fd, NULL for none */
    size_t nfd;         /* entries in by_fd */
    bool closing;
} net_poller;

/* Forks so far (pthread_atfork, in the parent): a stream registered before
 * the latest fork leaves the epoll set explicitly before its close, since
 * the child may still hold the socket (uv_spawn forks; a vfork-style
 * spawn suspends the parent until exec and needs nothing). */
static atomic_uint fork_gen;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void on_fork_parent(void)
{
    atomic_fetch_add(&fork_gen, 1);
}

static void fork_hook(void)
{
    (void)pthread_atfork(NULL, on_fork_parent, NULL);
}

static _Thread_local net_poller *thread_poller;

#define RAW_BATCH 256
#define RAW_READS 32 /* reads per event while each fills the buffer, as libuv */

static void on_poller_closed(uv_handle_t *h)
{
    net_poller *p = h->data;
    if (--p->handles > 0)
        return;
    close(p->epfd);
    free(p->by_fd);
    free(p);
}

static void poller_close(net_poller *p)
{
    p->closing = true;
    if (thread_poller == p)
        thread_poller = NULL;
    uv_close((uv_handle_t *)&p->poll, on_poller_closed);
    uv_close((uv_handle_t *)&p->linger, on_poller_closed);
}

/* The loop turn after the last raw stream closed: a stream opened since
 * (a retry, the next user) keeps the poller, else it goes, so a finished
 * loop has nothing of it left. */
static void on_linger(uv_timer_t *t)
{
    net_poller *p = t->data;
    if (p->streams == 0 && !p->closing)
        poller_close(p);
}

static void raw_read(net_stream *s)
{
    char *buf = thread_rbuf;
    for (int i = 0; i < RAW_READS && s->want_in && s->state != NS_CLOSING; i++) {
        ssize_t n = read(s->fd, buf, sizeof thread_rbuf);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        net__stream_input(s, n < 0 ? -errno : n == 0 ? UV_EOF : n, buf);
        if (n <= 0 || (size_t)n < sizeof thread_rbuf)
            return;
    }
}

/* EPOLLOUT: writes what is left of wfly; once it is all written (or the
 * write failed) the write completes as a uv_write would, and EPOLLOUT goes
 * unless the owner queued more meanwhile (raw_update after write_done: the
 * stream's memory lives until its close callback, and a closed one has no
 * socket left to update). */
static void raw_flush(net_stream *s)
{
    int status = 0;
    while (s->wfly_off < s->wfly.len) {
        ssize_t n = raw_send(s, s->wfly.data + s->wfly_off, s->wfly.len - s->wfly_off);
        if (n == UV_EAGAIN || n == UV_EINTR)
            return;
        if (n < 0) {
            status = (int)n;
            break;
        }
        s->wfly_off += (size_t)n;
    }
    s->wfly_off = 0;
    net__write_done(s, status);
    raw_update(s);
}

static void on_poller(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    net_poller *p = h->data;
    struct epoll_event evs[RAW_BATCH];
    for (int round = 0; round < 4 && !p->closing; round++) {
        int n = epoll_wait(p->epfd, evs, RAW_BATCH, 0);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            net_stream *s = (size_t)fd < p->nfd ? p->by_fd[fd] : NULL;
            uint32_t e = evs[i].events;
            if (!s || s->state == NS_CLOSING)
                continue;
            /* read first, as libuv: data that came before a reset (an early
             * 413 to a large upload) is delivered before the write fails */
            if (s->want_in && (e & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                raw_read(s);
            if (s->state != NS_CLOSING && s->writing && (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                raw_flush(s);
            if (s->state != NS_CLOSING)
                raw_update(s); /* drops what the stream no longer wants (paused, ended) */
        }
        if (n < RAW_BATCH)
            break;
    }
}

/* The thread's poller for this loop, made on first use; NULL to fall back. */
static net_poller *poller_get(uv_loop_t *loop)
{
    net_poller *p = thread_poller;
    if (p)
        return p->loop == loop ? p : NULL;
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        return NULL;
    p = cu_calloc(1, sizeof *p);
    p->loop = loop;
    p->epfd = epfd;
    p->poll.data = p;
    if (uv_poll_init(loop, &p->poll, epfd) < 0) {
        close(epfd);
        free(p);
        return NULL;
    }
    uv_timer_init(loop, &p->linger);
    p->linger.data = p;
    p->handles = 2;
    if (uv_poll_start(&p->poll, UV_READABLE, on_poller) < 0) {
        poller_close(p);
        return NULL;
    }
    (void)pthread_once(&fork_once, fork_hook);
    thread_poller = p;
    return p;
}

/* Registers what the stream wants now (EPOLLIN while reading, EPOLLOUT
 * while a write waits), leaving the set when it wants nothing. */
static void raw_update(net_stream *s)
{
    if (s->fd < 0)
        return;
    uint32_t want = (s->want_in ? EPOLLIN : 0) | (s->writing ? EPOLLOUT : 0);
    if (want == s->ev_cur)
        return;
    struct epoll_event ev = {.events = want, .data.fd = s->fd};
    int op = want == 0 ? EPOLL_CTL_DEL : s->ev_cur == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (epoll_ctl(s->poller->epfd, op, s->fd, &ev) < 0) {
        int err = -errno;
        if (op == EPOLL_CTL_MOD)
            (void)epoll_ctl(s->poller->epfd, EPOLL_CTL_DEL, s->fd, &ev); /* not left half-set */
        s->ev_cur = 0;
        if (op != EPOLL_CTL_DEL)
            fail_later(s, err); /* ENOMEM, ENOSPC (max_user_watches) */
        return;
    }
    if (op == EPOLL_CTL_ADD)
        s->fork_gen = atomic_load(&fork_gen);
    s->ev_cur = want;
}

/* net_stream_close of a raw stream: the socket goes, and with the last
 * stream the poller. */
static void raw_release(net_stream *s)
{
    net_poller *p = s->poller;
    if (s->fd >= 0) {
        p->by_fd[s->fd] = NULL;
        if (s->ev_cur && s->fork_gen != atomic_load(&fork_gen)) {
            struct epoll_event ev = {0};
            (void)epoll_ctl(p->epfd, EPOLL_CTL_DEL, s->fd, &ev);
        }
        close(s->fd);
    }
    s->fd = -1;
    s->ev_cur = 0;
    s->poller = NULL;
    if (p && --p->streams == 0)
        uv_timer_start(&p->linger, on_linger, 0, 0);
}

/* The socket of an early stream, connect() started; 0 or a negative code. */
static int early_open(net_stream *s, const struct sockaddr *addr)
{
    if (net__uring_open(s, addr) == 0) {
        start_reading(s);
        return 0;
    }
    socklen_t len = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                : sizeof(struct sockaddr_in);
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (connect(fd, addr, len) < 0 && errno != EINPROGRESS && errno != EINTR)
        rc = -errno; /* as libuv: ECONNREFUSED and the rest, reported later */
    net_poller *p = rc == 0 ? poller_get(s->loop) : NULL;
    if (p) {
        s->raw = true; /* TCP_NODELAY comes with the second send (raw_send) */
        s->fd = fd;
        s->poller = p;
        p->streams++;
        if ((size_t)fd >= p->nfd) {
            size_t n = p->nfd ? p->nfd : 1024;
            while (n <= (size_t)fd)
                n *= 2;
            p->by_fd = cu_realloc(p->by_fd, n * sizeof *p->by_fd);
            memset(p->by_fd + p->nfd, 0, (n - p->nfd) * sizeof *p->by_fd);
            p->nfd = n;
        }
        p->by_fd[fd] = s;
    } else if (rc == 0) {
        set_nodelay(fd);
        rc = uv_tcp_open(&s->tcp, fd);
    }
    if (rc < 0) {
        close(fd);
        return rc;
    }
    start_reading(s); /* a refused or reset connect shows on the read side */
    return 0;
}

net_stream *net_connect_early(uv_loop_t *loop, const struct sockaddr *addr, net_tls *tls,
                              const char *server_name, const net_stream_cbs *cbs, void *user)
{
    if (tls)
        return net_connect(loop, addr, tls, server_name, cbs, user);
    net_stream *s = stream_alloc(loop);
    s->cbs = cbs ? cbs : &no_cbs;
    s->user = user;
    s->state = NS_CONNECTING;
    s->early = true;
    int rc = early_open(s, addr);
    if (rc < 0) {
        s->early = false; /* no socket: nothing may be written */
        fail_later(s, rc);
    }
    return s;
}

/* ---- the rest of the stream API ------------------------------------------ */
uint64_t net_stream_tcp_done_ns(const net_stream *s)
{
    return s->tcp_done_ns;
}

void net_pause(net_stream *s)
{
    if (s->paused)
        return;
    s->paused = true;
    if (s->state != NS_CLOSING && may_write(s))
        stop_reading(s);
}

void net_resume(net_stream *s)
{
    if (!s->paused)
        return;
    s->paused = false;
    if (net__live(s) && may_write(s))
        start_reading(s);
}

void net_stream_close(net_stream *s)
{
    if (s->state == NS_CLOSING)
        return;
    if (s->ssl && s->hs_done && !s->close_after_flush && !s->ended && !s->shut)
        net__tls_shutdown(s); /* best effort: goes out only if try_write takes it */
    s->state = NS_CLOSING;
    if (s->raw)
        raw_release(s);
    else if (s->uring)
        net__uring_release(s);
    uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
    if (s->defer)
        uv_close((uv_handle_t *)s->defer, on_defer_closed);
}

void net_stream_end(net_stream *s)
{
    if (s->state == NS_CLOSING || s->close_after_flush)
        return;
    if (s->state == NS_CONNECTING || (s->ended && !s->peer_eof)) {
        net_stream_close(s); /* a failed stream: nothing more can go out */
        return;
    }
    if (s->ssl && s->hs_done && !s->shut)
        net__tls_shutdown(s);
    s->close_after_flush = true;
    stop_reading(s);
    if (!s->writing && s->wq.len == 0)
        net_stream_close(s);
}

void net_stream_shutdown(net_stream *s)
{
    if (s->state == NS_CLOSING || s->close_after_flush || s->shut)
        return;
    if (s->ended || s->raw || s->uring || s->state == NS_CONNECTING || (s->ssl && !s->hs_done)) {
        net_stream_end(s);
        return;
    }
    if (s->ssl)
        net__tls_shutdown(s); /* close_notify, queued before the FIN */
    s->shut = true;
    if (!s->writing && s->wq.len == 0)
        shut_now(s);
}

void *net_stream_user(const net_stream *s) { return s->user; }
void net_stream_set_user(net_stream *s, void *user) { s->user = user; }
void net_stream_set_cbs(net_stream *s, const net_stream_cbs *cbs) { s->cbs = cbs ? cbs : &no_cbs; }
uint64_t net_stream_bytes_in(const net_stream *s) { return s->bytes_in; }
uint64_t net_stream_bytes_out(const net_stream *s) { return s->bytes_out; }

int net_stream_peer(const net_stream *s, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    int n = sizeof ss, rc;
    if (s->uring) {
        memcpy(&ss, &s->u_addr, sizeof s->u_addr);
        rc = 0;
    } else if (s->raw) {
        socklen_t sl = sizeof ss;
        rc = s->fd < 0 ? UV_EBADF : getpeername(s->fd, (struct sockaddr *)&ss, &sl) < 0 ? -errno : 0;
    } else {
        rc = uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &n);
    }
    if (rc < 0)
        return rc;
    if (ss.ss_family == AF_INET6)
        return uv_ip6_name((const struct sockaddr_in6 *)&ss, buf, len);
    return uv_ip4_name((const struct sockaddr_in *)&ss, buf, len);
}

/* ---- accepted streams ------------------------------------------------------ */
net_stream *net__accept(uv_stream_t *server, uv_loop_t *loop, net_tls *tls)
{
    net_stream *s = stream_alloc(loop);
    s->is_server = true;
    if (uv_accept(server, (uv_stream_t *)&s->tcp) < 0) {
        s->state = NS_CLOSING;
        uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
        return NULL;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    s->state = NS_OPEN;
    if (tls) {
        if (net__tls_attach(s, tls, NULL) < 0) {
            net_stream_close(s);
            return NULL;
        }
        s->state = NS_HANDSHAKE;
    }
    start_reading(s);
    return s;
}
