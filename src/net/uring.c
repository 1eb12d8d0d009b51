/* net/uring.c: raw early streams over io_uring (net_int.h, "uring streams").
 *
 * Why: on the machines we measure on, every system call costs about a
 * microsecond of entry and exit, and an open-model load test makes one
 * connection per virtual user, tens of thousands a second. Over epoll a
 * user costs six calls of its own (socket, connect, send, epoll_ctl, read,
 * close); here its whole life is a handful of submission entries that the
 * loop hands to the kernel in one io_uring_enter per loop turn, whatever
 * the number of users that turn started, answered or closed.
 *
 * One ring per thread (and loop), made by the first early stream: the ring
 * fd sits in the loop's epoll set through a uv_poll_t (COOP_TASKRUN: a
 * completion that arrives while the thread sleeps in epoll_wait interrupts
 * it, the kernel posts the completion on the way out and the ring fd is
 * readable when libuv polls again), and a uv_prepare_t (unreferenced) runs
 * just before each poll and turns what the loop turn asked for into
 * submission entries, then submits them. Nothing is submitted from inside
 * a stream call, so every callback still comes later, from the loop.
 *
 * A stream is a fixed-file slot (no descriptor in the process's table):
 *  - open:  SOCKET -> CONNECT [-> SEND of what was written meanwhile]
 *           [=> RECV when reading], one chain (a RECV not linked would run
 *           before the connect: ENOTCONN); the RECV is hard-linked to the
 *           SEND so a reply that came before a reset is still read, and
 *           the send's error waits for that read (libuv's read-first rule);
 *  - reads: one RECV at a time into a buffer the kernel picks from the
 *           ring's provided-buffer ring (256 of 64 KiB, touched as used;
 *           an idle stream holds none), re-armed while the stream reads,
 *           at once when it filled its buffer (on_ring: a large answer is
 *           read in one poll callback, as the epoll path's 32 reads an
 *           event), else with the turn's other work; a RECV that found
 *           every buffer taken (ENOBUFS: more answers in one turn than
 *           buffers) waits in line and is re-armed with at most as many
 *           others as there are buffers a turn; what comes while the
 *           stream is paused waits in u_stash until it resumes;
 *  - writes: one SEND (MSG_WAITALL) at a time from wfly; TCP_NODELAY is
 *           set (an URING_CMD setsockopt) just before the second, as the
 *           epoll path does (tcp.c, raw_send); a SEND's error, while the
 *           stream reads, waits until the read side ends (what the peer
 *           sent before a reset is read first) and is then its end status;
 *  - close: ASYNC_CANCEL of whatever is in flight on the slot, hard-linked
 *           to a CLOSE of the slot. The stream itself is freed as before
 *           (its uv_close callback); what the kernel may still read (the
 *           send buffer) moves to the slot and goes with the slot's close.
 * Completions carry slot and generation, never a pointer: a completion for
 * a closed stream finds the slot without a stream and is dropped (its
 * buffer returned). The CQ has 4 entries a slot, so it cannot overflow; if
 * it did, the kernel's overflow list is flushed when reaping. Timings:
 * a completion posted before a submit returned gets that submit's time
 * (net_event_ns), one reaped later the reap's. A submit that fails is
 * retried from a zero timer, so the loop is woken for it.
 *
 * The ring is made only if every feature above works (a probe at setup:
 * SOCKET into a fixed slot, the setsockopt command, CLOSE, the buffer
 * ring); otherwise, and with CUTOVER_IO_URING=0 in the environment,
 * streams take the epoll path. Like the poller, the ring leaves its loop
 * one loop turn after its last slot is free (so a finished loop has
 * nothing of it open), but the kernel ring itself is kept for the thread's
 * next loop or burst (on_ring_closed), and a thread whose ring serves
 * another loop takes the epoll path for the second loop's streams.
 * Latency: a completion that arrives while the thread sleeps in
 * epoll_wait wakes it through task work (EINTR, then libuv polls again),
 * a little later than a socket's own readiness would (tens of
 * microseconds on the VMs we measure on).
 */

#include <errno.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "net/net_int.h"

/* not in the 6.1 uapi headers Debian 12 ships; stable kernel ABI since 6.7 */
#ifndef SOCKET_URING_OP_SETSOCKOPT
#define SOCKET_URING_OP_SETSOCKOPT 3
#endif

#define UR_SQ 4096            /* submission entries */
#define UR_CQ 65536           /* completion entries: 4 a slot, so a turn cannot overflow them */
#define UR_BUFS 256           /* provided receive buffers ... */
#define UR_BUF_SIZE 65536     /* ... of this size (touched as used), as the epoll path's read buffer */
#define UR_ROUNDS 16          /* reaps a poll callback chains for reads that filled a buffer */
#define UR_BGID 7
#define UR_MAX_SLOTS (UR_CQ / 4)
#define UR_MARKS 16           /* submits a turn whose completion times are told apart */
#define UR_CHAIN 5            /* most entries one action needs */

enum { OP_OPEN = 1, OP_SEND, OP_RECV, OP_CANCEL, OP_CLOSE, OP_NODELAY };
enum { T_OPEN = 1, T_RECV = 2, T_SEND = 4, T_STASH = 8, T_CLOSE = 16 };

typedef struct ur_slot {
    net_stream *s;  /* NULL once closed */
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } addr;         /* CONNECT's, read by the kernel when the entry is submitted */
    cu_buf hold;    /* a closed stream's send buffer, until the slot's CLOSE completes */
    uint32_t gen;   /* bumped when the slot is freed */
    uint8_t todo;   /* T_*: what the next prepare submits */
    bool opened;    /* SOCKET submitted: the slot needs a CLOSE */
    bool busy;
    uint8_t fly;    /* 1 << OP_OPEN, OP_SEND, OP_RECV: in flight (close cancels them) */
    uint8_t chained; /* 1 << OP_SEND, OP_RECV: linked behind the CONNECT (their
                      * completion says the open is done; an unlinked one's may
                      * come first, e.g. a RECV's ENOBUFS) */
} ur_slot;

typedef struct net_uring net_uring;
struct net_uring {
    uv_poll_t poll;
    uv_prepare_t prep;
    uv_timer_t linger;
    uv_loop_t *loop;
    int fd;
    int handles;
    bool closing;
    /* rings */
    void *sq_ring, *cq_ring;
    size_t sq_ring_sz, cq_ring_sz, sqes_sz;
    unsigned *sq_head, *sq_tail, *sq_array, sq_mask, sq_entries;
    unsigned *cq_head, *cq_tail, cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    unsigned sq_local, to_submit;
    unsigned *sq_flags;
    /* for each submit since the last reap: the completion tail when it
     * returned, and when that was (what completed inside the call
     * completed by then, not when it is reaped) */
    struct { unsigned tail; uint64_t ns; } marks[UR_MARKS];
    unsigned nmarks;
    uv_timer_t retry;   /* a submit that failed is tried again on the next turn */
    /* streams whose RECV found no free buffer, re-armed a budget a turn */
    unsigned *starved, nstarved, starved_cap;
    bool more;          /* a read filled its buffer: more is likely there now */
    /* provided buffers */
    struct io_uring_buf_ring *br;
    size_t br_sz;
    char *bufs;
    unsigned br_tail;
    /* slots */
    ur_slot *slots;
    unsigned nslots, *freel, nfree, used;
    unsigned *todo_q, ntodo, todo_cap;
};

static _Thread_local net_uring *thread_ring;
static _Thread_local bool thread_ring_failed; /* the probe failed on this thread: don't retry */
static _Thread_local net_uring *thread_spare;  /* a closed ring kept for reuse (on_ring_closed) */
static const int one = 1;                     /* TCP_NODELAY's value, read by the kernel */

static int sys_enter(int fd, unsigned submit, unsigned min, unsigned flags)
{
    return (int)syscall(__NR_io_uring_enter, fd, submit, min, flags, NULL, 0);
}

/* ---- submission ----------------------------------------------------------- */
static void on_retry(uv_timer_t *t);

static void ur_submit(net_uring *r)
{
    if (!r->to_submit)
        return;
    __atomic_store_n(r->sq_tail, r->sq_local, __ATOMIC_RELEASE);
    int n = sys_enter(r->fd, r->to_submit, 0, 0);
    if (n > 0)
        r->to_submit -= (unsigned)n < r->to_submit ? (unsigned)n : r->to_submit;
    if (r->to_submit && !r->closing) /* EINTR, EAGAIN, EBUSY, ENOMEM: next turn, woken for it */
        uv_timer_start(&r->retry, on_retry, 0, 0);
    unsigned tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE), m = r->nmarks;
    if (m == UR_MARKS) /* more submits than marks: the last one's time for them */
        m--;
    r->marks[m].tail = tail;
    r->marks[m].ns = cu_now_ns();
    r->nmarks = m + 1;
}

static void on_retry(uv_timer_t *t)
{
    ur_submit(t->data);
}

static unsigned sq_space(net_uring *r)
{
    return r->sq_entries - (r->sq_local - __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE));
}

/* Room for n entries, submitting what is queued if needed. */
static bool sq_room(net_uring *r, unsigned n)
{
    if (sq_space(r) >= n)
        return true;
    ur_submit(r);
    return sq_space(r) >= n;
}

static struct io_uring_sqe *sqe_get(net_uring *r, uint8_t op, unsigned slot)
{
    unsigned i = r->sq_local & r->sq_mask;
    struct io_uring_sqe *e = &r->sqes[i];
    r->sq_array[i] = i;
    r->sq_local++;
    r->to_submit++;
    memset(e, 0, sizeof *e);
    e->user_data = (uint64_t)r->slots[slot].gen << 32 | (uint64_t)slot << 8 | op;
    if (op == OP_OPEN || op == OP_SEND || op == OP_RECV)
        r->slots[slot].fly |= (uint8_t)(1u << op);
    return e;
}

static void todo(net_uring *r, unsigned slot, uint8_t what)
{
    ur_slot *sl = &r->slots[slot];
    if (sl->todo == 0) {
        if (r->ntodo == r->todo_cap) {
            r->todo_cap = r->todo_cap ? r->todo_cap * 2 : 256;
            r->todo_q = cu_realloc(r->todo_q, r->todo_cap * sizeof *r->todo_q);
        }
        r->todo_q[r->ntodo++] = slot;
    }
    sl->todo |= what;
}

static void on_linger(uv_timer_t *t);

static void slot_free(net_uring *r, unsigned slot)
{
    ur_slot *sl = &r->slots[slot];
    cu_buf_free(&sl->hold);
    sl->s = NULL;
    sl->gen++;
    sl->busy = false;
    sl->opened = false;
    sl->todo = 0;
    r->freel[r->nfree++] = slot;
    r->used--;
    if (r->used == 0 && !r->closing)
        uv_timer_start(&r->linger, on_linger, 0, 0);
}

/* The slot's pending actions, as entries; false when the ring is full
 * (they stay to do). */
static bool emit(net_uring *r, unsigned slot)
{
    ur_slot *sl = &r->slots[slot];
    net_stream *s = sl->s;
    if (!sq_room(r, UR_CHAIN))
        return false;
    /* taken as a whole: what a callback below asks for queues the slot again */
    uint8_t t = sl->todo;
    sl->todo = 0;
    struct io_uring_sqe *e;
    uint8_t send_link = 0;
    if (t & T_CLOSE) {
        if (!sl->opened) {
            slot_free(r, slot);
            return true;
        }
        uint8_t fly = sl->fly & (uint8_t)(1u << OP_SEND | 1u << OP_RECV);
        if ((sl->fly & (1u << OP_OPEN)) || (fly & (fly - 1))) {
            /* the open chain may be anywhere, or a SEND and a RECV are
             * both in flight: all on the slot, in one entry (so a slot
             * still posts at most 4 completions) */
            e = sqe_get(r, OP_CANCEL, slot);
            e->opcode = IORING_OP_ASYNC_CANCEL;
            e->fd = (int)slot;
            e->cancel_flags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_FD_FIXED | IORING_ASYNC_CANCEL_ALL;
            e->flags = IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS;
        } else if (fly) {
            /* the one in flight (usually the RECV), by its user_data: a
             * hashed lookup, where a cancel by descriptor walks every
             * request in flight, thousands at the rates this path is for */
            uint8_t op = fly == (1u << OP_SEND) ? OP_SEND : OP_RECV;
            e = sqe_get(r, OP_CANCEL, slot);
            e->opcode = IORING_OP_ASYNC_CANCEL;
            e->addr = (uint64_t)sl->gen << 32 | (uint64_t)slot << 8 | op;
            e->flags = IOSQE_IO_HARDLINK | IOSQE_CQE_SKIP_SUCCESS;
        }
        e = sqe_get(r, OP_CLOSE, slot);
        e->opcode = IORING_OP_CLOSE;
        e->file_index = slot + 1;
        return true;
    }
    if (!s)
        return true;
    if (t & T_OPEN) {
        sl->opened = true;
        e = sqe_get(r, OP_OPEN, slot);
        e->opcode = IORING_OP_SOCKET;
        e->fd = s->u_addr.sa.sa_family;
        e->off = SOCK_STREAM;
        e->file_index = slot + 1;
        e->flags = IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
        e = sqe_get(r, OP_OPEN, slot);
        e->opcode = IORING_OP_CONNECT;
        e->fd = (int)slot;
        memcpy(&sl->addr, &s->u_addr, sizeof sl->addr); /* the slot outlives the stream */
        e->addr = (uint64_t)(uintptr_t)&sl->addr;
        e->off = s->u_addr.sa.sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                    : sizeof(struct sockaddr_in);
        e->flags = IOSQE_FIXED_FILE | IOSQE_CQE_SKIP_SUCCESS;
        /* what was written before the open went out, and the first read,
         * follow the connect in the chain (an unlinked one could run before
         * it: ENOTCONN); the read is hard-linked to the send, so a reply
         * that came before a reset is still read, and the send's error
         * waits for it (on_send) */
        bool chain_recv = (t & T_RECV) && s->want_in && !s->u_recv;
        if (s->writing || chain_recv)
            e->flags |= IOSQE_IO_LINK;
        if (s->writing) {
            t |= T_SEND;
            send_link = chain_recv ? IOSQE_IO_HARDLINK : 0;
        }
        sl->chained = (uint8_t)((s->writing ? 1u << OP_SEND : 0) | (chain_recv ? 1u << OP_RECV : 0));
    }
    if ((t & T_SEND) && s->writing) {
        if (s->sends++ == 1) {
            e = sqe_get(r, OP_NODELAY, slot);
            e->opcode = IORING_OP_URING_CMD;
            e->fd = (int)slot;
            e->cmd_op = SOCKET_URING_OP_SETSOCKOPT;
            e->addr = (uint64_t)IPPROTO_TCP | (uint64_t)TCP_NODELAY << 32; /* level, optname */
            e->addr3 = (uint64_t)(uintptr_t)&one;                            /* optval */
            e->file_index = sizeof one;                                      /* optlen */
            e->flags = IOSQE_FIXED_FILE | IOSQE_CQE_SKIP_SUCCESS;
        }
        e = sqe_get(r, OP_SEND, slot);
        e->opcode = IORING_OP_SEND;
        e->fd = (int)slot;
        e->addr = (uint64_t)(uintptr_t)(s->wfly.data + s->wfly_off);
        e->len = (unsigned)(s->wfly.len - s->wfly_off);
        e->msg_flags = MSG_NOSIGNAL | MSG_WAITALL;
        e->flags = IOSQE_FIXED_FILE | send_link;
    }
    if ((t & T_STASH) && s->want_in) { /* what came while paused, then its end */
        if (s->u_stash.len) {
            cu_buf b = s->u_stash;
            s->u_stash = (cu_buf){0};
            net__stream_input(s, (ssize_t)b.len, b.data);
            cu_buf_free(&b);
        }
        if (sl->s == s && s->want_in && s->u_stash_end) {
            int end = s->u_stash_end;
            s->u_stash_end = 0;
            net__stream_input(s, end, NULL);
        }
        if (sl->s != s) /* closed from its callback */
            return true;
    }
    if (t & T_RECV) {
        if (s->want_in && !s->u_recv && s->state != NS_CLOSING) {
            s->u_recv = true;
            e = sqe_get(r, OP_RECV, slot);
            e->opcode = IORING_OP_RECV;
            e->fd = (int)slot;
            e->len = UR_BUF_SIZE;
            e->buf_group = UR_BGID;
            e->flags = IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
        }
    }
    return true;
}

/* Everything asked for so far goes in. */
static void flush(net_uring *r)
{
    /* the reads that found no buffer, as many as there are buffers (all
     * are back by now: each is returned as its completion is handled) */
    unsigned k = r->nstarved < UR_BUFS ? r->nstarved : UR_BUFS;
    for (unsigned j = 0; j < k; j++)
        if (r->slots[r->starved[j]].s) /* still open (a reused slot's extra read is harmless) */
            todo(r, r->starved[j], T_RECV);
    if (k) {
        memmove(r->starved, r->starved + k, (r->nstarved - k) * sizeof *r->starved);
        r->nstarved -= k;
    }
    unsigned i = 0;
    for (; i < r->ntodo; i++) /* emit may queue more (a callback of a stash) */
        if (r->slots[r->todo_q[i]].todo && !emit(r, r->todo_q[i]))
            break;
    if (i < r->ntodo) { /* ring full: the rest waits for the next turn */
        memmove(r->todo_q, r->todo_q + i, (r->ntodo - i) * sizeof *r->todo_q);
        r->ntodo -= i;
    } else {
        r->ntodo = 0;
    }
    ur_submit(r);
}

/* Before the loop polls: everything this turn asked for goes in. */
static void on_prep(uv_prepare_t *p)
{
    flush(p->data);
}

/* ---- completions ---------------------------------------------------------- */
static void buf_return(net_uring *r, unsigned bid)
{
    struct io_uring_buf *b = &r->br->bufs[r->br_tail & (UR_BUFS - 1)];
    b->addr = (uint64_t)(uintptr_t)(r->bufs + (size_t)bid * UR_BUF_SIZE);
    b->len = UR_BUF_SIZE;
    b->bid = (uint16_t)bid;
    r->br_tail++;
    __atomic_store_n(&r->br->tail, (uint16_t)r->br_tail, __ATOMIC_RELEASE);
}

static void starve(net_uring *r, unsigned slot)
{
    if (r->nstarved == r->starved_cap) {
        r->starved_cap = r->starved_cap ? r->starved_cap * 2 : 256;
        r->starved = cu_realloc(r->starved, r->starved_cap * sizeof *r->starved);
    }
    r->starved[r->nstarved++] = slot;
}

static void on_recv(net_uring *r, unsigned slot, net_stream *s, int res, uint32_t flags)
{
    char *data = NULL;
    unsigned bid = 0;
    if (flags & IORING_CQE_F_BUFFER) {
        bid = flags >> IORING_CQE_BUFFER_SHIFT;
        data = r->bufs + (size_t)bid * UR_BUF_SIZE;
    }
    if (s) {
        s->u_recv = false;
        if (res == -ENOBUFS) { /* more reads were ready than buffers: in line for one */
            if (s->want_in)
                starve(r, slot);
        } else if (res != -ECANCELED && s->state != NS_CLOSING) {
            if (!s->want_in) { /* paused meanwhile: kept for net_resume */
                if (res > 0)
                    cu_buf_append(&s->u_stash, data, (size_t)res);
                else
                    s->u_stash_end = res == 0 ? UV_EOF : res;
            } else {
                /* a send failed meanwhile (on_send): the read side ended,
                 * and the failure is the send's (a reset), said once */
                if (res <= 0 && s->u_send_err) {
                    res = s->u_send_err;
                    s->u_send_err = 0;
                }
                net__stream_input(s, res > 0 ? res : res == 0 ? UV_EOF : res, data);
                if (r->slots[slot].s == s && res > 0 && s->want_in) {
                    todo(r, slot, T_RECV);
                    if (res == UR_BUF_SIZE)
                        r->more = true;
                }
            }
        }
    }
    if (data)
        buf_return(r, bid);
}

static void on_send(net_uring *r, unsigned slot, net_stream *s, int res)
{
    if (!s)
        return;
    if (res == -ECANCELED) /* the open failed (its completion said so, see on_ring) */
        return;
    if (res < 0 && s->want_in) {
        /* read first, as libuv: what the peer sent before the reset is
         * read, and the error is reported when the read side ends */
        s->u_send_err = res;
        if (!s->u_recv)
            todo(r, slot, T_RECV);
        return;
    }
    if (res >= 0) {
        s->wfly_off += (size_t)res;
        if (s->wfly_off < s->wfly.len && res > 0) {
            todo(r, slot, T_SEND);
            return;
        }
        res = s->wfly_off < s->wfly.len ? UV_EPIPE : 0;
    }
    s->wfly_off = 0;
    net__write_done(s, res);
}

static void on_ring(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    net_uring *r = h->data;
    unsigned head = *r->cq_head, tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE), m = 0;
    uint64_t reap_ns = cu_now_ns();
    int rounds = 0;
    for (;;) {
        for (; head != tail; head++) {
            struct io_uring_cqe *c = &r->cqes[head & r->cq_mask];
            /* when it happened, for the timings taken in its callbacks: the
             * first submit that returned after it was posted, else now */
            while (m < r->nmarks && (int)(head - r->marks[m].tail) >= 0)
                m++;
            net__event_ns = m < r->nmarks ? r->marks[m].ns : reap_ns;
            unsigned slot = (unsigned)(c->user_data >> 8) & 0xffffffu;
            uint8_t op = (uint8_t)c->user_data;
            uint32_t gen = (uint32_t)(c->user_data >> 32);
            int res = c->res;
            uint32_t flags = c->flags;
            if (slot >= r->nslots || r->slots[slot].gen != gen || !r->slots[slot].busy) {
                if (flags & IORING_CQE_F_BUFFER)
                    buf_return(r, flags >> IORING_CQE_BUFFER_SHIFT);
                continue;
            }
            net_stream *s = r->slots[slot].s;
            ur_slot *sl = &r->slots[slot];
            sl->fly &= (uint8_t)~(1u << op);
            if (op <= OP_RECV && (sl->chained & (1u << op))) { /* linked behind the open: it is done */
                sl->fly &= (uint8_t)~(1u << OP_OPEN);
                sl->chained = 0;
            }
            switch (op) {
            case OP_RECV:
                on_recv(r, slot, s, res, flags);
                break;
            case OP_SEND:
                on_send(r, slot, s, res);
                break;
            case OP_OPEN: /* SOCKET or CONNECT failed (successes post nothing) */
                if (s && res != -ECANCELED) {
                    /* the SEND and RECV linked behind it are cancelled
                     * without completions (they skip with it) */
                    s->u_recv = false;
                    if (s->writing) {
                        s->writing = false;
                        cu_buf_reset(&s->wfly);
                    }
                    net__fire_fail(s, res);
                }
                break;
            case OP_CLOSE:
                slot_free(r, slot);
                break;
            default: /* OP_CANCEL (nothing to cancel), OP_NODELAY: nothing to do */
                break;
            }
        }
        __atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
        /* completions the CQ had no room for wait in the kernel until an
         * enter flushes them (it cannot overflow with 4 entries a slot,
         * but an overflow must not stop the ring) */
        if (__atomic_load_n(r->sq_flags, __ATOMIC_ACQUIRE) & IORING_SQ_CQ_OVERFLOW)
            (void)sys_enter(r->fd, 0, 0, IORING_ENTER_GETEVENTS);
        /* a read that filled its buffer has more waiting, as a large
         * answer does: its next read goes in now and is reaped here (it
         * completes inside the submit), not a loop turn later, as the
         * epoll path reads up to 32 times an event */
        if (r->more && rounds < UR_ROUNDS) {
            r->more = false;
            rounds++;
            flush(r);
        }
        tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
        if (head == tail)
            break;
        reap_ns = cu_now_ns();
    }
    r->more = false;
    r->nmarks = 0; /* every completion up to the last submit's mark is reaped */
    net__event_ns = 0;
}

/* ---- the ring's life ------------------------------------------------------ */
static void ring_free(net_uring *r)
{
    if (r->fd >= 0)
        close(r->fd);
    if (r->sqes && r->sqes != MAP_FAILED)
        munmap(r->sqes, r->sqes_sz);
    if (r->cq_ring && r->cq_ring != MAP_FAILED && r->cq_ring != r->sq_ring)
        munmap(r->cq_ring, r->cq_ring_sz);
    if (r->sq_ring && r->sq_ring != MAP_FAILED)
        munmap(r->sq_ring, r->sq_ring_sz);
    if (r->br && r->br != MAP_FAILED)
        munmap(r->br, r->br_sz);
    free(r->bufs);
    if (r->slots)
        for (unsigned i = 0; i < r->nslots; i++)
            cu_buf_free(&r->slots[i].hold);
    free(r->slots);
    free(r->freel);
    free(r->todo_q);
    free(r->starved);
    free(r);
}

/* A ring whose loop handles closed is kept for the thread's next one: a
 * client that opens one connection at a time (a few users a second, or
 * think time between them) would otherwise pay a ring setup, its mmaps,
 * file table, buffers and probe for every connection, as the poller's
 * epoll_create is cheap and this is not. Freed at the thread's exit. */
static pthread_key_t spare_key;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;

static void spare_destroy(void *p)
{
    ring_free(p);
}

static void spare_key_make(void)
{
    (void)pthread_key_create(&spare_key, spare_destroy);
}

static void on_ring_closed(uv_handle_t *h)
{
    net_uring *r = h->data;
    if (--r->handles > 0)
        return;
    (void)pthread_once(&spare_once, spare_key_make);
    if (r->used == 0 && !thread_spare && pthread_setspecific(spare_key, r) == 0)
        thread_spare = r;
    else
        ring_free(r);
}

static void ring_close(net_uring *r)
{
    r->closing = true;
    if (thread_ring == r)
        thread_ring = NULL;
    uv_close((uv_handle_t *)&r->poll, on_ring_closed);
    uv_close((uv_handle_t *)&r->prep, on_ring_closed);
    uv_close((uv_handle_t *)&r->linger, on_ring_closed);
    uv_close((uv_handle_t *)&r->retry, on_ring_closed);
}

static void on_linger(uv_timer_t *t)
{
    net_uring *r = t->data;
    if (r->used == 0 && !r->closing)
        ring_close(r);
}

/* The probe: a socket into slot 0, TCP_NODELAY on it, its close; true when
 * all three worked. */
static bool ring_probe(net_uring *r)
{
    struct io_uring_sqe *e = sqe_get(r, OP_OPEN, 0);
    e->opcode = IORING_OP_SOCKET;
    e->fd = AF_INET;
    e->off = SOCK_STREAM;
    e->file_index = 1;
    e->flags = IOSQE_IO_LINK;
    e = sqe_get(r, OP_NODELAY, 0);
    e->opcode = IORING_OP_URING_CMD;
    e->fd = 0;
    e->cmd_op = SOCKET_URING_OP_SETSOCKOPT;
    e->addr = (uint64_t)IPPROTO_TCP | (uint64_t)TCP_NODELAY << 32;
    e->addr3 = (uint64_t)(uintptr_t)&one;
    e->file_index = sizeof one;
    e->flags = IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK;
    e = sqe_get(r, OP_CLOSE, 0);
    e->opcode = IORING_OP_CLOSE;
    e->file_index = 1;
    __atomic_store_n(r->sq_tail, r->sq_local, __ATOMIC_RELEASE);
    if (sys_enter(r->fd, 3, 3, IORING_ENTER_GETEVENTS) != 3)
        return false;
    r->to_submit = 0;
    bool ok = true;
    unsigned head = *r->cq_head, tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE), n = 0;
    for (; head != tail; head++, n++)
        if (r->cqes[head & r->cq_mask].res < 0)
            ok = false;
    __atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
    return ok && n == 3;
}

static net_uring *ring_new(uv_loop_t *loop)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
              IORING_SETUP_SINGLE_ISSUER;
    p.cq_entries = UR_CQ;
    int fd = (int)syscall(__NR_io_uring_setup, UR_SQ, &p);
    if (fd < 0)
        return NULL;
    net_uring *r = cu_calloc(1, sizeof *r);
    r->fd = fd;
    r->loop = loop;
    r->sq_ring_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    r->cq_ring_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (p.features & IORING_FEAT_SINGLE_MMAP) {
        if (r->cq_ring_sz > r->sq_ring_sz)
            r->sq_ring_sz = r->cq_ring_sz;
        r->cq_ring_sz = r->sq_ring_sz;
    }
    r->sq_ring = mmap(NULL, r->sq_ring_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                      IORING_OFF_SQ_RING);
    if (r->sq_ring == MAP_FAILED)
        goto fail;
    r->cq_ring = (p.features & IORING_FEAT_SINGLE_MMAP)
                     ? r->sq_ring
                     : mmap(NULL, r->cq_ring_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                            fd, IORING_OFF_CQ_RING);
    r->sqes_sz = p.sq_entries * sizeof(struct io_uring_sqe);
    r->sqes = mmap(NULL, r->sqes_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                   IORING_OFF_SQES);
    if (r->cq_ring == MAP_FAILED || r->sqes == MAP_FAILED)
        goto fail;
    char *sq = r->sq_ring, *cq = r->cq_ring;
    r->sq_head = (unsigned *)(sq + p.sq_off.head);
    r->sq_flags = (unsigned *)(sq + p.sq_off.flags);
    r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    r->sq_array = (unsigned *)(sq + p.sq_off.array);
    r->sq_mask = *(unsigned *)(sq + p.sq_off.ring_mask);
    r->sq_entries = p.sq_entries;
    r->cq_head = (unsigned *)(cq + p.cq_off.head);
    r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    r->cq_mask = *(unsigned *)(cq + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    r->sq_local = *r->sq_tail;

    /* fixed-file slots: as many as the descriptor limit allows (the kernel
     * caps the table there), at most UR_MAX_SLOTS */
    struct rlimit nofile;
    unsigned n = UR_MAX_SLOTS;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < n)
        n = (unsigned)nofile.rlim_cur;
    struct io_uring_rsrc_register reg;
    memset(&reg, 0, sizeof reg);
    reg.nr = n;
    reg.flags = IORING_RSRC_REGISTER_SPARSE;
    if (n < 64 || syscall(__NR_io_uring_register, fd, IORING_REGISTER_FILES2, &reg, sizeof reg) < 0)
        goto fail;
    r->nslots = n;
    r->slots = cu_calloc(n, sizeof *r->slots);
    r->freel = cu_malloc(n * sizeof *r->freel);
    for (unsigned i = 0; i < n; i++)
        r->freel[r->nfree++] = n - 1 - i;

    /* provided receive buffers */
    r->br_sz = UR_BUFS * sizeof(struct io_uring_buf);
    r->br = mmap(NULL, r->br_sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r->br == MAP_FAILED)
        goto fail;
    struct io_uring_buf_reg breg;
    memset(&breg, 0, sizeof breg);
    breg.ring_addr = (uint64_t)(uintptr_t)r->br;
    breg.ring_entries = UR_BUFS;
    breg.bgid = UR_BGID;
    if (syscall(__NR_io_uring_register, fd, IORING_REGISTER_PBUF_RING, &breg, 1) < 0)
        goto fail;
    r->bufs = cu_malloc((size_t)UR_BUFS * UR_BUF_SIZE);
    for (unsigned i = 0; i < UR_BUFS; i++)
        buf_return(r, i);
    if (!ring_probe(r))
        goto fail;
    return r;
fail:
    ring_free(r);
    return NULL;
}

/* The thread's ring for this loop, made on first use; NULL for the epoll
 * path. */
static net_uring *ring_get(uv_loop_t *loop)
{
    net_uring *r = thread_ring;
    if (r)
        return r->loop == loop ? r : NULL;
    if (thread_ring_failed)
        return NULL;
    const char *env = getenv("CUTOVER_IO_URING");
    if ((r = thread_spare)) { /* idle since its last loop: nothing in flight */
        thread_spare = NULL;
        (void)pthread_setspecific(spare_key, NULL);
        r->loop = loop;
        r->closing = false;
        r->ntodo = r->nstarved = r->nmarks = 0;
    } else if ((env && strcmp(env, "0") == 0) || !(r = ring_new(loop))) {
        thread_ring_failed = true;
        return NULL;
    }
    r->poll.data = r->prep.data = r->linger.data = r->retry.data = r;
    if (uv_poll_init(loop, &r->poll, r->fd) < 0) {
        ring_free(r);
        thread_ring_failed = true;
        return NULL;
    }
    uv_prepare_init(loop, &r->prep);
    uv_timer_init(loop, &r->linger);
    uv_timer_init(loop, &r->retry);
    r->handles = 4;
    uv_prepare_start(&r->prep, on_prep);
    uv_unref((uv_handle_t *)&r->prep);
    if (uv_poll_start(&r->poll, UV_READABLE, on_ring) < 0) {
        ring_close(r);
        thread_ring_failed = true;
        return NULL;
    }
    thread_ring = r;
    return r;
}

/* ---- the stream side (tcp.c) ---------------------------------------------- */
int net__uring_open(net_stream *s, const struct sockaddr *addr)
{
    net_uring *r = ring_get(s->loop);
    if (!r || r->closing || r->nfree == 0)
        return 1;
    unsigned slot = r->freel[--r->nfree];
    ur_slot *sl = &r->slots[slot];
    sl->busy = true;
    sl->fly = sl->chained = 0;
    sl->s = s;
    r->used++;
    uv_timer_stop(&r->linger);
    s->uring = true;
    s->ring = r;
    s->u_slot = slot;
    memcpy(&s->u_addr, addr, addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                         : sizeof(struct sockaddr_in));
    todo(r, slot, T_OPEN);
    return 0;
}

void net__uring_read(net_stream *s)
{
    if (s->state == NS_CLOSING || !s->ring)
        return;
    uint8_t what = s->u_stash_end ? T_STASH : s->u_stash.len ? T_STASH | T_RECV : T_RECV;
    todo(s->ring, s->u_slot, what);
}

void net__uring_send(net_stream *s)
{
    if (s->ring && s->ring->slots[s->u_slot].opened)
        todo(s->ring, s->u_slot, T_SEND);
    /* else the open chain takes it (emit, T_OPEN) */
}

void net__uring_release(net_stream *s)
{
    net_uring *r = s->ring;
    if (!r)
        return;
    ur_slot *sl = &r->slots[s->u_slot];
    sl->s = NULL;
    if (s->writing) { /* the kernel may still read it */
        sl->hold = s->wfly;
        s->wfly = (cu_buf){0};
        s->writing = false;
    }
    s->ring = NULL;
    sl->todo = 0; /* nothing else for it but the close (a stale queue entry finds nothing to do) */
    todo(r, s->u_slot, T_CLOSE);
}
