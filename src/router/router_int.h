/* router internals, shared by the files of src/router/ and its unit tests.
 *
 * Ownership map:
 * - router: loop, listeners, admin server, stats, the current generation;
 * - rt_gen ("generation"): what one config file built: the config, the
 *   servers with their connection pools and health checkers. Refcounted:
 *   each exchange in flight holds a reference, so a reload retires the old
 *   generation (no new requests, idle connections closed) and frees it
 *   when its last exchange ends;
 * - rt_server: one upstream server: idle keep-alive connections (LIFO),
 *   a FIFO of client connections waiting for a connection slot, health;
 * - rt_uconn: one upstream connection, idle in a pool or bound to one
 *   client connection's exchange;
 * - rt_cconn (proxy.c): one client connection with at most one exchange.
 */
#ifndef CUTOVER_ROUTER_INT_H
#define CUTOVER_ROUTER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "llhttp.h"
#include "net/net.h"
#include "router/router.h"

#define RT_BUCKETS 10000            /* sticky buckets = weight steps (0.01 %) */

/* ---- choice (choose.c): pure functions ------------------------------------------- */
/* The sticky bucket of a key, uniform in [0, RT_BUCKETS). */
uint32_t rt_bucket_of(const char *key, size_t len);
/* Green iff bucket < green_bp (green weight in hundredths of a percent). */
router_color rt_sticky_color(uint32_t bucket, int green_bp);
/* Smooth weighted round-robin between the two colours (nginx): weights
 * (RT_BUCKETS - green_bp, green_bp) come out spread, never in bursts. */
typedef struct rt_swrr {
    int64_t cur[2];
} rt_swrr;
router_color rt_swrr_next(rt_swrr *w, int green_bp);
/* The value of cookie `name` in a Cookie header value; NULL if absent. */
const char *rt_cookie_find(const char *hdr, size_t len, const char *name, size_t *vlen);
/* Percent -> basis points (rounded); -1 if outside 0..100 or not finite. */
int rt_weight_bp(double percent);

/* ---- measurement (metrics.c) ---------------------------------------------------------- */
#define RT_DUR_NB 12                /* Prometheus buckets incl. +Inf */
extern const double rt_dur_bounds[RT_DUR_NB - 1];

typedef struct rt_bucket {
    int64_t sec;                    /* monotonic second this bucket holds, -1 empty */
    uint64_t requests, e5xx, terr, codes[6], bin, bout;
    hist lat;
} rt_bucket;

typedef struct rt_stats {
    pthread_mutex_t mu;
    uint64_t horizon;               /* buckets per colour */
    uint64_t start_ns;
    rt_bucket *ring[2];
    /* totals since start, for /metrics */
    uint64_t by_code[2][600];       /* [0] counts transport errors */
    uint64_t terr[2], retries[2], bin[2], bout[2];
    uint64_t dur[2][RT_DUR_NB];     /* non-cumulative counts per bucket */
    double dur_sum[2];
    uint64_t dur_count[2];
} rt_stats;

void rt_stats_init(rt_stats *s, uint64_t horizon_s, uint64_t now_ns);
void rt_stats_free(rt_stats *s);
/* One attempt's outcome: status 0 = transport error (no response). */
void rt_stats_record(rt_stats *s, router_color c, int status, double ms, uint64_t bin,
                     uint64_t bout, uint64_t now_ns);
void rt_stats_retry(rt_stats *s, router_color c);
int rt_stats_window(rt_stats *s, router_color c, uint64_t seconds, uint64_t now_ns,
                    router_sample *out);
/* Prometheus text 0.0.4: counters, the duration histogram, weights (percent)
 * and, when given, server health lines (already formatted). */
void rt_stats_prometheus(rt_stats *s, cu_buf *out, double weight, double effective,
                         const char *server_lines);

/* ---- config (config.c) ------------------------------------------------------------------ */
/* ---- servers, pools, health (pool.c) ---------------------------------------------------- */
typedef struct rt_gen rt_gen;
typedef struct rt_server rt_server;
typedef struct rt_uconn rt_uconn;
typedef struct rt_cconn rt_cconn;


struct rt_server {
    rt_gen *gen;
    router_color color;
    size_t index;
    char *url;
    http_url u;
    bool up;                        /* active health (true without checks) */
    bool ejected;                   /* passive */
    uint64_t ejected_until_ns;
    int ok_run, fail_run;           /* active check streaks */
    int passive_fails;
    size_t nconns;                  /* open connections (idle + busy + connecting) */
    rt_uconn *idle;                 /* most recently used first */
    size_t nidle;
    rt_cconn *wait_head, *wait_tail;/* waiting for a connection slot */
    http_client *hc;                /* active checker */
    uv_timer_t htimer;
    bool htimer_on, checking;
    uint64_t checks_ok, checks_failed;
    char last_error[64];
};

struct rt_gen {
    router *r;
    int refs;
    bool retired;
    router_config cfg;
    rt_server *servers[2];
    size_t nservers[2];
    size_t rr[2];
    net_tls *tls;                   /* client TLS for https servers (NULL if none) */
    char *token;                    /* admin token (NULL: none) */
    int pending_closes;             /* health timers still closing */
};

int rt_gen_new(rt_gen **out, router *r, router_config *cfg, char err[CU_ERRLEN]);
void rt_gen_start_health(rt_gen *g);
void rt_gen_ref(rt_gen *g);
void rt_gen_unref(rt_gen *g);
/* No more requests: stops checks, closes idle connections; freed at 0 refs. */
void rt_gen_retire(rt_gen *g);
/* Copies health state from servers of old with the same URL and colour. */
void rt_gen_inherit(rt_gen *g, const rt_gen *old);
bool rt_server_healthy(const rt_server *s, uint64_t now_ns);
size_t rt_gen_healthy(const rt_gen *g, router_color c, uint64_t now_ns);
/* Next server of colour c, round-robin over healthy ones (all when none). */
rt_server *rt_gen_pick(rt_gen *g, router_color c, uint64_t now_ns);
/* Passive health: a connection failure or 5xx (bad) or a good answer. */
void rt_server_passive(rt_server *s, bool bad);
/* Pooled connections: an idle one (NULL if none alive). */
rt_uconn *rt_server_take_idle(rt_server *s);
/* Closes idle connections idle for longer than the pool's idle timeout. */
void rt_gen_sweep(rt_gen *g, uint64_t now_ns);

/* ---- proxy (proxy.c) ---------------------------------------------------------------------- */
void rt_proxy_accept(net_listener *l, net_stream *s, void *user);
/* A connection slot of srv freed up: hands it to the first waiter. */
void rt_server_slot_free(rt_server *srv);
/* Drain: closes idle client connections, marks busy ones to close. */
void rt_proxy_drain(router *r);
/* Logs the state of up to max client connections (drain deadline). */
void rt_proxy_describe(router *r, int max);
/* Closes every client connection now. */
void rt_proxy_close_all(router *r);
/* Cuts the upstream connections still flushing after their end: those past
 * their deadline, or all of them. */
void rt_uconn_sweep_ending(router *r, uint64_t now_ns, bool all);
/* The upstream connection's callbacks (proxy.c owns the exchange logic). */
extern const net_stream_cbs rt_uconn_cbs;

/* ---- admin (admin.c) -------------------------------------------------------------------------- */
int rt_admin_start(router *r, char err[CU_ERRLEN]);
void rt_admin_stop(router *r);
void rt_status_json(router *r, cu_buf *out);

/* ---- the router (router.c) ---------------------------------------------------------------------- */
typedef struct rt_listener {        /* one proxy listener; the accept callback's user */
    router *r;
    net_listener *l;                /* NULL once closed */
    net_tls *tls;                   /* NULL: plain HTTP */
    int port;
} rt_listener;

struct router {
    uv_loop_t *loop;
    rt_listener *listeners;
    size_t nlisteners;
    http_server *admin;
    net_resolver *resolver;
    rt_gen *gen;                    /* current */
    atomic_int weight_bp;
    atomic_int override_bp;         /* -1, or 0 / 10000 when a colour has no healthy server */
    rt_swrr swrr;
    rt_stats stats;
    uv_timer_t tick;                /* 1 s: sweep, health effects, log flush */
    rt_cconn *conns;                /* client connections */
    size_t nconns;
    rt_uconn *ending;               /* upstream connections flushing before they close */
    uint64_t next_id;
    FILE *access_log;
    bool draining;
    uv_timer_t drain_timer;
    bool drain_timer_on;
    void (*drain_done)(void *arg);
    void *drain_arg;
    void (*reload_hook)(router *r, void *ctx);
    void *reload_ctx;
    router_status_hook status_hook;
    void *status_ctx;
    char *admin_prefix;
    router_admin_handler admin_fn;
    void *admin_ctx;
    int admin_port;
    /* busy poll (router.c): after a poll with reads, poll without blocking */
    bool io_read;                   /* a read callback ran since the last check */
    uint64_t io_last_ns;            /* the last check that saw one */
    uv_check_t spin_check;
    uv_idle_t spin_idle;
    /* upstream writes gathered in a loop turn (exchange.c rt_uwrite) */
    rt_uconn *wpend;                /* upstream connections with bytes to write */
    uv_check_t wcheck;              /* writes them after the poll's callbacks */
    uv_idle_t widle;                /* active while any wait: the poll does not block */
    bool wdirect;                   /* closing: rt_uwrite writes at once */
};

/* Green's share in force: the weight unless health overrides it. */
int rt_effective_bp(router *r);
/* Updates override_bp from the current generation's health. */
void rt_update_effective(router *r);
/* Called when the last client connection closed (drain bookkeeping). */
void rt_conn_gone(router *r);

#endif
