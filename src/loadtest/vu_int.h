/* loadtest/vu_int.h: what vu.c (users' life cycle and flow) and vu_http.c
 * (building requests, redirects, cookies, decoding, captures, checks) share.
 * Not for the rest of loadtest. Everything here runs on the user's worker
 * thread.
 */
#ifndef CUTOVER_LOADTEST_VU_INT_H
#define CUTOVER_LOADTEST_VU_INT_H

#include "loadtest/internal.h"

#define VU_MAX_HEADERS LT_MAX_HEADERS
#define VU_MAX_DEPTH 16
#define VU_INLINE_DEPTH 2 /* the flow and one loop: most users never go deeper */


/* A request header's name and value in vu->vals: offsets and lengths (32
 * bits: a request's headers are far below 4 GiB). */
typedef struct vu_hdr {
    uint32_t noff, nlen, voff, vlen;
} vu_hdr;
#define VU_HDR(vu, i) (((vu_hdr *)(vu)->hdrs.data)[i])
#define VU_NH(vu) ((vu)->hdrs.len / sizeof(vu_hdr)) /* the request's headers so far */

typedef struct frame {
    const lt_step *steps;
    size_t n, idx;
    int64_t iter;
    int64_t count;          /* iterations to run; -1: unbounded */
    json_t *over;           /* list iterated over (owned ref), or NULL */
    const lt_step *loop;    /* the loop step (names, first value); NULL for the flow */
} frame;

struct lt_vu {
    lt_worker *w;
    lt_vu *next, *prev;     /* live list, or free list (next only) */
    const lt_scenario *sc;
    json_t *vars;
    json_t *spare_vars;     /* the last user's builtins-only vars, for the next (vu.c) */
    lt_jar jar;             /* cookies (cookie.c) */
    lt_ctx ctx;
    http_client *client;    /* to the target's origin */
    http_client *other;     /* to the last other origin used */
    char *other_origin;
    http_url other_url;
    bool other_ok;
    frame *frames;          /* frame0, or deep once a loop nests deeper than it holds */
    frame frame0[VU_INLINE_DEPTH];
    frame *deep;            /* VU_MAX_DEPTH frames, made on first need, kept while recycled */
    int depth;
    uint64_t start_ns;
    lt_intended intended;   /* --latency-from-intended's clock */
    uv_timer_t think;
    bool think_active, in_flight, stopping, ended;
    const lt_request *req;  /* in flight */
    const char *method;     /* of the hop in flight (a 303 turns it into GET) */
    int hops;               /* redirects followed for this step */
    int cookie_h;           /* index of the Cookie header built from the jar, or -1 */
    cu_buf url, target, body, vals;
    cu_buf hop_url;         /* absolute URL of the hop in flight */
    cu_buf hop_next;        /* the next hop's, swapped with hop_url */
    cu_buf inflated;        /* decoded gzip/deflate body, reused */
    int pool_slot;          /* http.pool: the worker's connection it holds, or -1 */
    bool pool_waiting;      /* in the worker's queue for a connection */
    lt_vu *pool_next;       /* that queue */
    /* the request's headers: its vu_hdr entries (offsets into vals,
     * VU_NH of them), in a buffer kept while the user is recycled; a user
     * waiting to connect costs its struct, so it holds no fixed table of
     * the 64 */
    cu_buf hdrs;
};


/* Cached metric handle of the current window (w must be in scope). */
#define HOT(h, field, name, kind)                                                          \
    ((h)->field ? (h)->field : ((h)->field = mset_get(w->win, (name), (kind))))


/* Counts `name` (or errors.<code>, also per endpoint when r is named) now. */
void lt_vu_count(lt_worker *w, const char *name, int64_t n, int64_t ts);
void lt_vu_count_error(lt_vu *vu, const lt_request *r, const char *code, int64_t ts);
/* Counts errors.<code> and ends the user as failed. */
void lt_vu_fail(lt_vu *vu, const lt_request *r, const char *code);
/* Runs the flow on from the current step (vu.c). */
void lt_vu_run(lt_vu *vu);
void lt_vu_render(lt_vu *vu, const lt_tmpl *t, cu_buf *out);
/* Sends step r (vu_http.c); the flow goes on in the response callback.
 * Returns false when the user failed before anything was sent. */
bool lt_vu_send_request(lt_vu *vu, const lt_request *r);
/* Runs r's expect checks on its final response (vu_expect.c): counts
 * plugins.expect.*, prints them in the plugin's output format, marks the
 * run for exit status 21 on a failure. Returns false when the user must
 * fail (reportFailuresAsErrors), with the error text in code. */
/* A response's body as its captures and checks read it: each form is made
 * once, on first need, and shared by both (vu_http.c). */
typedef struct lt_body {
    const char *data;
    size_t len;
    int type;      /* lt_json_text_type (0: not JSON); -1 until asked */
    json_t *doc;   /* the body loaded; NULL when not JSON or not yet asked */
    bool loaded;
} lt_body;
int lt_body_type(lt_body *b);
json_t *lt_body_doc(lt_body *b);
bool lt_vu_expects(lt_vu *vu, const lt_request *r, const http_response *res, lt_body *body,
                   char *code, size_t code_len);
/* The step's URL as Artillery's req.url: target + url for a path. */
void lt_vu_full_url(lt_vu *vu, cu_buf *out);

/* The user leaves http.pool (vu_http.c): out of the wait queue, its
 * connection slot freed (a request in flight is cancelled with it). */
void lt_vu_pool_leave(lt_vu *vu);

#endif
