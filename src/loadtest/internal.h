/* loadtest/internal.h: what engine.c (workers and the run), vu.c (virtual
 * users) and report.c (console, JSON, ensure) share. Not for other modules.
 */
#ifndef CUTOVER_LOADTEST_INTERNAL_H
#define CUTOVER_LOADTEST_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "http/http.h"
#include "loadtest/loadtest.h"
#include "net/net.h"
#include "stats/stats.h"

#define LT_WINDOW_MS 10000
#define LT_LAG_METRIC "cutover.arrival_lag"
#define LT_INTENDED_METRIC "cutover.response_time.intended"
#define LT_MAX_ERROR_NAMES 1000   /* distinct errors.<code> per worker (vu.c) */
#define LT_OTHER_ERROR "cutover: other errors past the first 1000 distinct ones"

/* The intended clock of one user (--latency-from-intended), against
 * coordinated omission: `next_ns` is when the user's next request should
 * be sent had the generator been on time. It starts at the user's intended
 * arrival (so arrival lag counts), a think step moves it by the think time
 * as scheduled (its timer's intended expiry, not its actual firing: a late
 * timer counts), and every response (each redirect hop too) moves it to the
 * response's completion. A response's intended latency is its completion
 * minus `next_ns` as it was when the request was due (ms, >= 0): it covers
 * arrival lag, late think timers, waiting for an http.pool connection,
 * connecting and the response itself, where http.response_time covers only
 * the time from the request written to the response head (TTFB). Times
 * are cu_now_ns() (monotonic). */
typedef struct lt_intended {
    uint64_t next_ns;
} lt_intended;

static inline void lt_intended_start(lt_intended *c, uint64_t arrival_ns)
{
    c->next_ns = arrival_ns;
}

static inline void lt_intended_think(lt_intended *c, uint64_t think_ms)
{
    c->next_ns += think_ms * 1000000u;
}

/* A response completed at done_ns: returns its intended latency in ms and
 * makes done_ns the next request's intended send time. */
static inline double lt_intended_response(lt_intended *c, uint64_t done_ns)
{
    double ms = done_ns > c->next_ns ? (double)(done_ns - c->next_ns) / 1e6 : 0.0;
    c->next_ns = done_ns;
    return ms;
}

typedef struct lt_run lt_run_t;
#define LT_MAX_HEADERS 64 /* per request of a user */

typedef struct lt_worker lt_worker;
typedef struct lt_vu lt_vu;

/* A virtual user's cookie jar (cookie.c): RFC 6265 scoping by domain
 * (host-only or Domain), path and Secure, as tough-cookie (Artillery's jar). */
typedef struct lt_cookie {
    char *name, *value, *domain, *path;
    bool host_only, secure;
    uint64_t seq;                /* creation order */
} lt_cookie;
typedef struct lt_jar {
    lt_cookie *c;
    size_t n, cap;
    uint64_t seq;
} lt_jar;
/* Stores one Set-Cookie value (n bytes) received from the absolute `url`;
 * an expired one removes its match; one for a domain the URL's host is not
 * in is ignored. Returns -1 when it cannot be parsed (no name=value). */
int lt_jar_set(lt_jar *j, const char *set_cookie, size_t n, const char *url);
/* Appends the Cookie header value for `url` to out (nothing when none match). */
void lt_jar_header(const lt_jar *j, const char *url, cu_buf *out);
void lt_jar_reset(lt_jar *j);
void lt_jar_free(lt_jar *j);

/* Hot-path metric handles for the current window of one worker. */
typedef struct lt_hot {
    int64_t period;
    mset_entry *requests, *request_rate, *responses, *bytes, *rt, *rt_class[6];
    mset_entry *codes[600];
    mset_entry *lag, *intended, *created, *completed, *failed, *session;
    mset_entry *dns, *tcp, *tls, *total; /* http.extendedMetrics */
    mset_entry **scenario_created;   /* per scenario */
    mset_entry **ep_rt;              /* per request id: endpoint response_time */
    mset_entry **ep_code;            /* per request id: endpoint codes.<last status> */
    int *ep_code_status;
} lt_hot;

struct lt_worker {
    lt_run_t *run;
    int index;
    pthread_t thread;
    uv_loop_t loop;
    uv_timer_t arrival_timer;
    uv_idle_t arrival_more;         /* late arrivals left after a batch: after the next poll */
    uv_timer_t tick_timer;          /* window rotation, stop checks */
    uv_async_t wake;                /* main -> worker: stop */
    net_resolver *resolver;
    net_tls *tls;                   /* created on first https use */
    struct z_stream_s *zs;          /* zlib inflater for gzip/deflate bodies, made on first use */
    struct http_client **pool;      /* http.pool: this worker's share of the connections */
    bool *pool_busy;
    size_t npool;
    lt_vu *pool_head, *pool_tail;   /* users waiting for one, first come first served */
    cu_rng rng;
    lt_sched sched;
    uint64_t next_t;                /* next owned arrival (ns from start) */
    size_t next_phase;
    bool sched_done;
    uint64_t arrival_index;         /* global index of the next arrival */
    uint64_t active;                /* users alive on this worker */
    lt_vu *free_vus;                /* recycled users */
    lt_vu *live_vus;                /* users running now */
    mset *win;                      /* current window (may be NULL) */
    lt_hot hot;
    bool stopping;
    bool discard;                   /* before/after flow: windows are dropped, not handed off */
    json_t **keep_vars;             /* before/after flow: where the ending user leaves its vars */
    json_t *before_vars;            /* this worker's copy of the before flow's variables */
    mset *error_names;              /* the distinct error codes counted so far (vu.c) */
    bool error_names_full;
    json_t *j_target, *j_test_id, *j_environment; /* vu.c: every user's, shared (made on first use) */
    atomic_llong passed;            /* windows before this period are final */
    http_header hdrs[LT_MAX_HEADERS]; /* vu_http.c: scratch for the request being sent
                                       (http_client_send copies them) */
};

/* A finished window handed from a worker to the main thread. */
typedef struct lt_window_msg {
    mset *m;
    struct lt_window_msg *next;
} lt_window_msg;

struct lt_run {
    const lt_run_opts *opts;
    lt_script *script;
    char test_id[48];
    http_url target;               /* parsed config.target */
    bool target_ok;
    char *target_prefix;           /* path part of the target, "" if none */
    lt_tmpl **var_tmpls;           /* per config variable: template or NULL */
    atomic_size_t *payload_next;   /* per payload: next row for order: sequence (all workers) */
    json_t *before_vars;           /* the before flow's final variables, or NULL */
    size_t nrequests;              /* request steps (ids 0..n-1) */
    int *scenario_table;           /* weighted pick table */
    size_t scenario_table_len;
    uint64_t start_ns;             /* common start of the schedule */
    int64_t start_wall_ms;
    atomic_int stop;               /* 0, the signal that stopped the run, or LT_STOP_ASKED */
    atomic_llong active_total;     /* users alive, all workers */
    atomic_int expect_failed;
    atomic_int workers_done;
    int nworkers;
    lt_worker *workers;
    pthread_mutex_t lock;          /* guards inbox */
    lt_window_msg *inbox;
};

/* ---- worker side (engine.c) ---------------------------------------------------------- */
/* The window for `ts` (creating it; rotating and handing off the current
 * one when ts is in a later period), and its hot handles. */
mset *lt_worker_window(lt_worker *w, int64_t ts);
lt_hot *lt_worker_hot(lt_worker *w, int64_t ts);
net_tls *lt_worker_tls(lt_worker *w, char err[CU_ERRLEN]);

/* ---- virtual users (vu.c) ------------------------------------------------------------ */
/* Starts a user for an arrival intended at `intended_ns` (monotonic). */
void lt_vu_start(lt_worker *w, uint64_t intended_ns);
/* Starts one user running sc (a before/after flow): not counted in
 * vusers.* (the worker discards its windows anyway). */
void lt_vu_start_scenario(lt_worker *w, const lt_scenario *sc);
/* Frees a worker's recycled users (at worker exit). */
void lt_vu_pool_free(lt_worker *w);
/* Asks every live user of the worker to stop (the run is stopping). */
void lt_vu_stop_all(lt_worker *w);
void lt_vu_prepare(lt_run_t *run);   /* request ids, pick table (before threads) */
/* Frees what the worker's users share for HTTP (http.pool's connections,
 * the inflater); idempotent. Called once no user is left (vu_http.c). */
void lt_vu_http_free(lt_worker *w);

/* ---- reports (report.c) --------------------------------------------------------------- */
typedef struct lt_report lt_report;
lt_report *lt_report_new(const lt_run_t *run);
void lt_report_free(lt_report *r);
/* A merged window is final: print it (unless quiet) and keep it. Takes m. */
void lt_report_window(lt_report *r, mset *m);
/* Console lines for phases. */
void lt_report_phase(lt_report *r, size_t phase, bool started);
/* The end: summary, ensure checks, JSON file. Returns the exit status
 * contribution (0, or LT_EXIT_FAIL when ensure failed or the file could not
 * be written). */
int lt_report_finish(lt_report *r, int64_t total_ms);
void lt_console_time(cu_buf *b, int64_t wall_ms);

#endif
