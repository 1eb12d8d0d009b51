/* router: `cutover serve`, the weighted blue/green HTTP/1.1 router.
 *
 * One router owns one uv loop's worth of work: the listeners (HTTP or TLS),
 * the two upstream pools ("blue" and "green") with keep-alive connection
 * pools and health checks, the admin API (its own listener) and the
 * per-colour measurements. Requests and responses are streamed (never
 * fully buffered); the colour of a request is chosen in this order:
 *   1. the forcing header (only when `force_header` is configured);
 *   2. the sticky key (header or cookie) hashed into 10,000 buckets: bucket
 *      < green weight in hundredths of a percent goes green, so raising the
 *      weight only moves users blue -> green and lowering it only back;
 *   3. smooth weighted round-robin (nginx's) between the two colours.
 * A colour without a healthy server gives its share to the other colour.
 *
 * Thread rules: everything runs on the router's loop thread, except the
 * functions marked thread-safe (weights and window reads), which any thread
 * may call while the router lives.
 */
#ifndef CUTOVER_ROUTER_H
#define CUTOVER_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/base.h"
#include "conf/conf.h"
#include "http/http.h"
#include "stats/stats.h"

typedef enum { ROUTER_BLUE = 0, ROUTER_GREEN = 1 } router_color;
const char *router_color_name(router_color c); /* "blue", "green" */

typedef struct router router;

typedef struct router_sample {     /* one colour over a window */
    uint64_t requests;             /* requests answered or failed */
    uint64_t errors_5xx;           /* responses with status >= 500 */
    uint64_t transport_errors;     /* connect failures, resets, timeouts (no response) */
    uint64_t codes[6];             /* by class: [1]=1xx ... [5]=5xx */
    uint64_t bytes_in, bytes_out;
    hist latency_ms;               /* caller hist_init()s and hist_free()s it */
    double seconds;                /* the window actually covered */
} router_sample;

/* ---- configuration (docs/serve.md) ----------------------------------------------- */
typedef struct router_health_conf {
    char *path;                    /* NULL: no active checks */
    uint64_t interval_ms, timeout_ms;
    int rise, fall;                /* consecutive results to flip the state */
    int eject_after;               /* passive: consecutive connect failures or 5xx (0: off) */
    uint64_t eject_ms;             /* passive ejection length without active checks */
} router_health_conf;

typedef struct router_pool_conf {
    char **servers;                /* "http://127.0.0.1:19001" */
    size_t nservers;
    router_health_conf health;
    size_t max_conns;              /* per server, in use + idle (queue beyond) */
    size_t max_idle;               /* per server kept for keep-alive */
    uint64_t idle_timeout_ms;      /* pooled connection kept this long */
    bool tls_verify;               /* https servers: verify (default true) */
    char *tls_ca;                  /* extra CA file or NULL */
} router_pool_conf;

typedef struct router_listen_conf {
    char *host;
    int port;                      /* 0 picks one */
    char *tls_cert, *tls_key;      /* TLS termination when both set */
} router_listen_conf;

typedef struct router_config {
    char *path;                    /* the file it came from */
    conf_node *root;               /* the whole document (owned) */
    router_listen_conf *listeners; /* at least one */
    size_t nlisteners;
    char *admin_host; int admin_port;
    char *token_file;              /* NULL: mutating admin calls always 401 */
    router_pool_conf pools[2];     /* [ROUTER_BLUE], [ROUTER_GREEN] */
    double weight;                 /* initial green percent */
    char *sticky_header, *sticky_cookie; /* at most one set */
    char *force_header;            /* NULL: forcing disabled */
    char *color_header;            /* response header naming the colour; NULL: none */
    bool retry;                    /* retry once on the other colour */
    size_t max_header_bytes, max_headers;
    uint64_t header_timeout_ms, body_timeout_ms, idle_timeout_ms;
    uint64_t connect_timeout_ms, response_timeout_ms, drain_timeout_ms;
    uint64_t tunnel_timeout_ms;    /* an upgraded (WebSocket) connection's longest silence */
    uint64_t horizon_s;            /* seconds of 1 s buckets kept */
    char *access_log;              /* JSON lines file or NULL */
    uint64_t busy_poll_us;         /* after a poll with reads, poll without blocking this long */
    /* Owned by the rollout controller: parsed, not interpreted (NULL if absent). */
    const conf_node *state;
    const conf_node *rollout;
} router_config;

/* Loads and validates a serve config. Returns 0, or a negative code with
 * err = "file:line:col: message". Unknown keys warn with the nearest valid
 * key; `state` and `rollout` are accepted as they are. */
int router_config_load(router_config *c, const char *path, char err[CU_ERRLEN]);
/* The same from text (file names the text in messages). */
int router_config_parse(router_config *c, const char *text, size_t len, const char *file,
                        char err[CU_ERRLEN]);
void router_config_free(router_config *c);

/* ---- life cycle ------------------------------------------------------------------------ */
/* Creates and starts a router on loop (binds the listeners, starts health
 * checks). Takes ownership of *cfg (its fields are moved; cfg is zeroed).
 * Returns 0 or a negative code with err. */
int router_start(router **out, uv_loop_t *loop, router_config *cfg, char err[CU_ERRLEN]);
/* The loop the router, its admin API and health checks run on: the place
 * for a controller's timers. */
uv_loop_t *router_loop(router *r);
int router_port(const router *r);        /* bound port of the first listener */
int router_listener_port(const router *r, size_t i); /* i-th listener's; -1 past the end */
size_t router_listeners(const router *r);
int router_admin_port(const router *r);  /* bound admin port (-1 if none) */
/* Re-reads the config file. On error the old config keeps running and err
 * says why (returns < 0). Listener addresses are not changed by a reload. */
int router_reload(router *r, char err[CU_ERRLEN]);
/* Called (loop thread) after each successful reload, once the new config
 * is in force: the place to pick up a new router_rollout_conf(). */
void router_set_reload_hook(router *r, void (*fn)(router *r, void *ctx), void *ctx);
/* The rollout part of the config in force (NULL if absent); valid until the
 * next successful reload or router_free. */
const conf_node *router_rollout_conf(const router *r);
const conf_node *router_state_conf(const router *r);
/* Stops accepting and lets in-flight requests finish; idle connections
 * close now, busy ones after their response. After deadline_ms what is
 * left is closed. done fires once, later, when no client connection is
 * left (the admin listener stays until router_free). */
void router_drain(router *r, uint64_t deadline_ms, void (*done)(void *arg), void *arg);
/* Closes everything; the loop must then be run until it has no handles of
 * the router left (uv_run until it returns). */
void router_free(router *r);

/* ---- weights and windows (thread-safe) ------------------------------------------------ */
/* Sets green's share, 0..100 in steps of 0.01 (rounded to the nearest
 * step); applies to the next request. Returns 0 or -EINVAL. */
int router_set_weight(router *r, double green_percent);
double router_weight(const router *r);
/* Green's share in force after health (0 or 100 when a colour has no
 * healthy server). */
double router_effective_weight(const router *r);
/* Sums colour c's 1 s buckets over the last `seconds` (capped at the
 * horizon; the current, partial second included). Returns 0 or -EINVAL. */
int router_read_window(router *r, router_color c, uint64_t seconds, router_sample *out);

/* ---- admin extensions (loop thread) ----------------------------------------------------- */
/* Appends JSON members (`"name":value`, comma-separated, no leading comma)
 * to the /status object. */
typedef void (*router_status_hook)(cu_buf *json, void *ctx);
void router_set_status_hook(router *r, router_status_hook fn, void *ctx);
/* Requests to admin paths starting with `prefix` (e.g. "/rollout/") go to
 * fn, which must answer x with http_respond (now or later). `authorized`
 * says whether the request carried the admin token; fn decides what needs
 * it (mutations should). One handler; a new call replaces it. */
typedef void (*router_admin_handler)(http_exchange *x, const http_server_request *req,
                                     bool authorized, void *ctx);
void router_set_admin_handler(router *r, const char *prefix, router_admin_handler fn, void *ctx);

#endif
