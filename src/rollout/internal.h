/* rollout internals shared by the module's files (not for other modules;
 * unit tests may include it). Thread rules as in rollout.h. */
#ifndef CUTOVER_ROLLOUT_INTERNAL_H
#define CUTOVER_ROLLOUT_INTERNAL_H

#include <jansson.h>
#include <sqlite3.h>

#include "rollout/rollout.h"

/* ---- expressions (expr.c) ---- */
enum { RX_NONE, RX_RATIO, RX_TIME, RX_RATE, RX_COUNT }; /* dimensions */
enum { RX_LT, RX_LE, RX_GT, RX_GE, RX_EQ, RX_NE };       /* comparisons */

/* Value of side 0 (left) or 1 (right) over the samples (NaN when undefined,
 * e.g. 0 requests for error_rate). */
double rx_side_value(const rollout_expr *e, int side, const rollout_sample *nw,
                     const rollout_sample *old);
int rx_side_dim(const rollout_expr *e, int side);
/* The side's source text (trimmed, into buf) and whether it is a plain
 * constant. Returns buf. */
const char *rx_side_text(const rollout_expr *e, int side, bool *constant, char *buf, size_t n);
int rx_op(const rollout_expr *e);
const char *rx_op_text(int op);
bool rx_compare(int op, double l, double r);
/* Whether a latency metric of the new (baseline=false) or old colour is read. */
bool rx_uses_latency(const rollout_expr *e, bool baseline);
/* The load-time warning of a gate that parses but is probably a slip
 * (already logged), or NULL. */
const char *rx_warning(const rollout_expr *e);
/* "0.42%", "412.0ms", "3.20/s", "500". */
void rx_format(double v, int dim, char *buf, size_t n);

/* ---- analysis (judge.c) ---- */
typedef struct rj_analysis {
    rollout_verdict verdict;   /* FAIL > ERROR > HOLD > PASS (SKIP counts as PASS) */
    size_t npass, nfail, nhold, nerror, nskip;
    uint64_t need_more;        /* the largest HOLD shortfall */
    char summary[512];         /* the first failing / holding gate's detail */
    json_t *gates;             /* array of {expr, verdict, lhs, rhs, detail}; owned */
    json_t *inputs;            /* {new: {...}, old: {...}, window_s}; owned */
} rj_analysis;

/* Judges every expression over one window. For tripwires (`trip`), an
 * expression that holds is the FAIL (it fires) and one that does not is a
 * PASS; HOLD/ERROR/SKIP never fire. */
void rj_analyse(rollout_expr *const *exprs, size_t n, const rollout_window *w, double window_s,
                bool trip, rj_analysis *out);
void rj_analysis_free(rj_analysis *a);
json_t *rj_sample_json(const rollout_sample *s);

/* ---- journal (journal.c) ---- */
typedef struct rj rj;

typedef struct rj_state {
    int64_t run;
    int state;                 /* rollout_state */
    int step;                  /* -1 before the first start */
    double weight;             /* new colour percent that must be in force */
    int64_t step_started_ms, deadline_ms;
    int64_t next_analysis_ms, last_analysis_ms;
    unsigned failures, errors;
    bool awaiting_approval;
    bool hold_notified;        /* the hold-for-data event went out for this step */
    int64_t updated_ms;
} rj_state;

typedef struct rj_outbox_row {
    int64_t id;
    char *event;
    char *payload;
    int attempts;
} rj_outbox_row;

int rj_open(rj **out, const char *path, char err[CU_ERRLEN]);
void rj_close(rj *j);
/* 1 and *st filled when a state row exists, 0 when the journal is new
 * (no row), < 0 with err filled when the row cannot be read or names an
 * unknown state (never mistaken for a new journal). */
int rj_load_state(rj *j, rj_state *st, char err[CU_ERRLEN]);
int rj_begin(rj *j);
int rj_commit(rj *j);
void rj_rollback(rj *j);
/* Inside a transaction: */
int rj_put_state(rj *j, const rj_state *st);
int rj_add_decision(rj *j, int64_t time_ms, const rj_state *st, const char *kind,
                    const char *verdict, const char *action, const char *record, int64_t *seq);
int rj_add_weight(rj *j, int64_t time_ms, int64_t run, double weight, const char *reason,
                  int64_t seq);
int rj_outbox_add(rj *j, const char *receiver, int64_t seq, const char *event,
                  const char *payload, int64_t time_ms);
/* Outside: */
int rj_mark_acted(rj *j, int64_t seq);
/* Sequence numbers of decisions not yet acted on, oldest first (up to max,
 * count in *n). Returns 0 or -EIO. */
int rj_unacted(rj *j, int64_t *seqs, size_t max, size_t *n);
uint64_t rj_decision_count(rj *j);
/* The oldest undelivered row for a receiver: 1 found, 0 none, < 0 error. */
int rj_outbox_next(rj *j, const char *receiver, rj_outbox_row *row);
void rj_outbox_row_free(rj_outbox_row *row);
int rj_outbox_done(rj *j, int64_t id, int64_t time_ms);
int rj_outbox_failed(rj *j, int64_t id, const char *error);
int rj_minute_put(rj *j, int64_t minute_ms, const char *color, const rollout_sample *s);
/* Decision rows as JSON objects {seq, time, run, step, kind, verdict, action,
 * record}, oldest first, the last `limit` (0: all). */
json_t *rj_decisions_json(rj *j, size_t limit);
/* The same on any connection; NULL when it holds no decisions table. */
json_t *rj_decisions_json_db(sqlite3 *db, size_t limit);
sqlite3 *rj_db(rj *j);

/* ---- notifications (notify.c) ---- */
typedef struct rn rn;
rn *rn_new(uv_loop_t *loop, rj *j, const rollout_plan *plan, rollout_clock_fn clock,
           void *clock_ctx, int64_t retry_base_ms);
/* Starts deliveries that are due (one in flight per receiver, in order). */
void rn_pump(rn *n);
/* Cancels deliveries in flight (they stay in the outbox) and frees once
 * libuv has released the handles. */
void rn_close(rn *n);

/* ---- controller internals for admin.c ---- */
rj *rollout__journal(rollout_ctl *c);
const rollout_plan *rollout__plan(const rollout_ctl *c);
int64_t rollout__now(const rollout_ctl *c);

/* ---- text (text.c): JSON strings must be valid UTF-8 ---- */
/* Whether s[0..len) is valid UTF-8 without NUL bytes. */
bool rt_utf8_valid(const char *s, size_t len);
/* Replaces each byte that is not part of a valid UTF-8 character with '?'. */
void rt_utf8_clean(char *s);
/* The longest prefix of s[0..max) (s holds at least max bytes) that does
 * not end inside a multi-byte character. */
size_t rt_utf8_cut(const char *s, size_t max);
/* snprintf that, when it truncates, cuts on a character boundary. */
int rt_fmt(char *buf, size_t n, const char *fmt, ...) CU_PRINTF(3, 4);

/* ISO 8601 UTC with milliseconds. */
void rj_iso_time(int64_t ms, char *buf, size_t n);

#endif
