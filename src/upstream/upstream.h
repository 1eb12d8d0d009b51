/* upstream: `cutover upstream`, a sample HTTP service to rehearse against.
 *
 * It speaks the lego-api of the case study (GET /health, /api/mocs,
 * /api/mocs/{id}, /api/gallery?search=, /api/wishlist, POST
 * /api/gallery/{id}/image with multipart/form-data) with bodies of the same
 * sizes as the real API in the reference run, plus endpoints for tests and
 * benchmarks: ANY /echo[/...], GET /, /status/{code}, /bytes/{n},
 * /delay/{ms}, and for the load tester's HTTP features: GET /cookies,
 * /cookies/set?k=v, /cookies/delete?k (both redirect to /cookies, as
 * httpbin's do), /redirect/{n}, ANY /redirect-to?url=U&status=S, GET
 * /gzip and /deflate (compressed bodies, whatever Accept-Encoding says). Every response carries Content-Type and
 * `X-Cutover-Color: <color>`. A latency distribution and an error rate are
 * applied to the "API" routes (/api/..., / and /bytes/{n}), never to
 * /health, /echo, /status or /delay, which always do exactly what they say.
 *
 * Layers, bottom up:
 * - pure building blocks, exported for unit tests: latency distributions,
 *   the multipart/form-data parser, the route table, and upstream_app,
 *   which turns a parsed request into a response without any I/O;
 * - upstream_server: one listening HTTP server on a caller's loop;
 * - upstream: N worker threads, each with its own loop and server, all
 *   listening on one port (SO_REUSEPORT); what `cutover upstream` runs.
 *
 * Hot path: responses of the lego-api routes are precomputed or formatted
 * into a per-app scratch buffer that is reused, and delayed requests take a
 * timer from a per-server free list, so a warmed-up server allocates
 * nothing per request beyond what the http module does.
 *
 * Thread rules: an upstream_app or upstream_server belongs to one loop
 * thread. upstream_start/_port/_requests/_stop are called from one
 * controlling thread (not a worker).
 */
#ifndef CUTOVER_UPSTREAM_H
#define CUTOVER_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/base.h"
#include "http/http.h"

/* ---- latency distributions ---------------------------------------------------- */
typedef enum {
    UPSTREAM_LAT_NONE = 0,
    UPSTREAM_LAT_FIXED,      /* a_ms */
    UPSTREAM_LAT_UNIFORM,    /* uniform in [a_ms, b_ms] */
    UPSTREAM_LAT_LOGNORMAL,  /* median a_ms, 99th percentile b_ms */
} upstream_lat_kind;

typedef struct upstream_latency {
    upstream_lat_kind kind;
    double a_ms, b_ms;
    double mu, sigma;        /* lognormal: of ln(milliseconds) */
} upstream_latency;

/* Parses "none", "fixed:5ms", "uniform:1ms-10ms" or
 * "lognormal:p50=20ms,p99=200ms" (durations take us, ms or s; a bare number
 * is ms). The lognormal is fitted to the two quantiles: mu = ln p50,
 * sigma = (ln p99 - ln p50) / z(0.99). Returns 0, or -EINVAL with err. */
int upstream_latency_parse(upstream_latency *l, const char *spec, char err[CU_ERRLEN]);
/* Writes the distribution as upstream_latency_parse reads it ("none",
 * "fixed:5ms", ...). */
void upstream_latency_describe(const upstream_latency *l, char *buf, size_t len);
/* One sample in milliseconds (>= 0; 0 for NONE). */
double upstream_latency_sample(const upstream_latency *l, cu_rng *r);

/* ---- multipart/form-data ------------------------------------------------------- */
/* The boundary parameter of a multipart Content-Type value (quoted or not).
 * Returns 0 with *b and *blen pointing into ct, or -EINVAL (not multipart, no
 * boundary, or a boundary longer than 70 characters / empty). */
int upstream_mp_boundary(const char *ct, size_t ct_len, const char **b, size_t *blen);

typedef struct upstream_part {
    const char *name;         /* Content-Disposition name="..."; raw, unescaped */
    size_t name_len;
    const char *filename;     /* filename="..." when is_file */
    size_t filename_len;
    bool is_file;             /* a filename parameter was present */
    const char *content_type; /* the part's Content-Type, "" when absent */
    size_t content_type_len;
    const char *data;         /* the part's bytes, pointing into the body */
    size_t data_len;
} upstream_part;

/* Parses a multipart body (RFC 2046 / 7578, CRLF line ends; preamble and
 * epilogue ignored; the closing delimiter may end the body without CRLF).
 * Stores up to `max` parts (all pointers into body) and the total count in
 * *nparts. Returns 0, -EINVAL with *why set to a static explanation for a
 * malformed body, or -E2BIG when there are more than max parts. */
int upstream_mp_parse(const char *body, size_t len, const char *boundary, size_t blen,
                      upstream_part *parts, size_t max, size_t *nparts, const char **why);

/* ---- routes ---------------------------------------------------------------------- */
typedef enum {
    UPSTREAM_R_NOT_FOUND = 0,
    UPSTREAM_R_BAD_METHOD,   /* the path exists; match.allow names the method */
    UPSTREAM_R_ROOT,         /* GET / */
    UPSTREAM_R_HEALTH,       /* GET /health */
    UPSTREAM_R_MOCS,         /* GET /api/mocs */
    UPSTREAM_R_MOC,          /* GET /api/mocs/{id} */
    UPSTREAM_R_GALLERY,      /* GET /api/gallery[?search=] */
    UPSTREAM_R_WISHLIST,     /* GET /api/wishlist */
    UPSTREAM_R_UPLOAD,       /* POST /api/gallery/{id}/image */
    UPSTREAM_R_ECHO,         /* ANY /echo, /echo/... */
    UPSTREAM_R_STATUS,       /* GET /status/{code} */
    UPSTREAM_R_BYTES,        /* GET /bytes/{n} */
    UPSTREAM_R_DELAY,        /* GET /delay/{ms} */
    UPSTREAM_R_FAULT,        /* PUT /_cutover/fault?error_rate=P&latency=DIST */
    UPSTREAM_R_COOKIES,      /* GET /cookies: the Cookie header received */
    UPSTREAM_R_COOKIES_SET,  /* GET /cookies/set?k=v[&...]: Set-Cookie each, 302 to /cookies */
    UPSTREAM_R_COOKIES_DEL,  /* GET /cookies/delete?k: Set-Cookie k=; Max-Age=0, 302 to /cookies */
    UPSTREAM_R_REDIRECT,     /* GET /redirect/{n}: 302 to /redirect/{n-1}; /redirect/0 is 200 */
    UPSTREAM_R_REDIRECT_TO,  /* ANY /redirect-to?url=U[&status=S]: S (302) to U */
    UPSTREAM_R_GZIP,         /* GET /gzip: a gzip-encoded JSON body */
    UPSTREAM_R_DEFLATE,      /* GET /deflate: a deflate (zlib) encoded JSON body */
} upstream_route_id;

typedef struct upstream_match {
    upstream_route_id route;
    const char *param;       /* the {id}/{code}/{n}/{ms} segment, into path */
    size_t param_len;
    const char *allow;       /* UPSTREAM_R_BAD_METHOD: the allowed method */
    bool inject;             /* latency and error rate apply */
} upstream_match;

/* Matches a method and a raw path (no query) against the route table.
 * Returns m->route. */
upstream_route_id upstream_route(const char *method, const char *path, size_t path_len,
                                 upstream_match *m);

/* ---- run-time faults ------------------------------------------------------------ */
/* The error rate and latency distribution of the API routes, changeable
 * while serving (for rehearsals: "green starts failing 5% of requests").
 * Shared by every worker of one service; setters may be called from any
 * thread. Readers pay one atomic load per request and copy the settings
 * under the lock only when the generation changed. */
typedef struct upstream_fault upstream_fault;
upstream_fault *upstream_fault_new(double error_rate, const upstream_latency *lat);
void upstream_fault_free(upstream_fault *f);
/* Sets the error rate (0..1) and, when lat is not NULL, the latency. */
void upstream_fault_set(upstream_fault *f, double error_rate, const upstream_latency *lat);
/* Copies the settings into *error_rate and *lat when the generation moved
 * past *gen (then updates *gen); a no-op costing one atomic load otherwise. */
void upstream_fault_sync(upstream_fault *f, uint64_t *gen, double *error_rate, upstream_latency *lat);

/* ---- the application: requests to responses, no I/O ----------------------------- */
typedef struct upstream_config {
    const char *host;        /* default "127.0.0.1" */
    int port;                /* 0 picks one */
    const char *color;       /* default "blue" */
    upstream_latency latency;
    double error_rate;       /* 0..1 */
    const char *tls_cert;    /* both or neither: HTTPS */
    const char *tls_key;
    int workers;             /* threads for upstream_start; <= 0 means 1 */
    uint64_t seed;           /* with has_seed; else entropy */
    bool has_seed;
    upstream_fault *fault;   /* NULL: latency and error_rate stay as given;
                                else they follow the fault (upstream_start
                                makes one) and PUT /_cutover/fault sets it */
} upstream_config;

typedef struct upstream_plan {
    upstream_match m;
    uint64_t delay_ms;       /* wait this long before upstream_app_reply */
    bool fail;               /* answer 500 (error-rate injection) */
} upstream_plan;

typedef struct upstream_reply {
    int status;
    http_header headers[8];  /* Content-Type, X-Cutover-Color, then Allow, Location,
                                Content-Encoding or Set-Cookie as the route needs */
    size_t nheaders;
    const char *body;        /* valid until the next reply from the same app */
    size_t body_len;
} upstream_reply;

typedef struct upstream_app {
    char *color;
    upstream_latency latency;
    double error_rate;
    cu_rng rng;
    cu_buf health;           /* precomputed bodies */
    cu_buf root;
    cu_buf scratch;          /* per-reply bodies, reused */
    cu_buf tmp;              /* decoding space, reused */
    cu_buf hvals;            /* header values of the reply (Location, Set-Cookie), reused */
    char *bytes;             /* /bytes/{n} pattern, grown on demand */
    size_t bytes_len;
    upstream_fault *fault;   /* not owned; may be NULL */
    uint64_t fault_gen;      /* the fault generation copied into latency/error_rate */
} upstream_app;

/* Copies what it needs from cfg (color, latency, error rate, seed). */
void upstream_app_init(upstream_app *a, const upstream_config *cfg, uint64_t seed);
void upstream_app_free(upstream_app *a);
/* Routes a request and decides its delay and whether it fails. */
void upstream_app_plan(upstream_app *a, const http_server_request *req, upstream_plan *p);
/* Builds the response for a planned request. Pointers in *out stay valid
 * until the next call on the same app (or upstream_app_free). */
void upstream_app_reply(upstream_app *a, const http_server_request *req,
                        const upstream_plan *p, upstream_reply *out);

/* ---- one server on a caller's loop ------------------------------------------- */
typedef struct upstream_server upstream_server;

/* Listens on cfg->host and `port` (overrides cfg->port; 0 picks one) on
 * `loop`, with TLS when cfg has a certificate. Returns 0 or a negative code
 * with err filled. */
int upstream_server_start(upstream_server **out, uv_loop_t *loop, const upstream_config *cfg,
                          int port, uint64_t seed, char err[CU_ERRLEN]);
int upstream_server_port(const upstream_server *s);
/* Requests answered so far (readable from any thread). */
uint64_t upstream_server_requests(const upstream_server *s);
/* Answers delayed requests 503 at once, stops listening and closing
 * connections; the memory is released as the loop runs its close callbacks. */
void upstream_server_stop(upstream_server *s);

/* ---- the multi-threaded service ---------------------------------------------------- */
typedef struct upstream upstream;

/* Starts cfg->workers threads, each with its own loop and server on the
 * same port, and returns once all listen (or the first fails: then the
 * others are stopped and err says why). */
int upstream_start(upstream **out, const upstream_config *cfg, char err[CU_ERRLEN]);
int upstream_port(const upstream *u);
uint64_t upstream_requests(const upstream *u);
/* The service's fault settings (what PUT /_cutover/fault changes). */
upstream_fault *upstream_get_fault(upstream *u);
/* Stops every worker, joins the threads and frees everything. */
void upstream_stop(upstream *u);

#endif
