/* rollout: the progressive rollout controller that moves traffic from an
 * old colour ("blue") to a new one ("green") step by step and proves each
 * step safe before taking the next.
 *
 * Pieces (one file each): the plan (`rollout:` section of the serve config),
 * gate expressions ("p95 <= baseline.p95 * 1.2"), the judge (PASS / FAIL /
 * HOLD / ERROR per gate over one window), the state machine
 * (idle -> progressing(step i) -> paused -> promoted | rolled_back | aborted),
 * the SQLite journal, and notifications (webhooks, exec hooks) delivered from
 * the journal's outbox.
 *
 * The controller never includes the router: it drives a target through
 * rollout_target_ops (set the new colour's weight, read a window of either
 * colour), so the same controller can drive the built-in router, HAProxy's
 * runtime API or a fake in tests.
 *
 * Invariants:
 * - Journal first, act second: every decision, with the state it leads to
 *   and the notifications it causes, is committed in one SQLite transaction
 *   (WAL, synchronous=FULL) before the weight is set. After kill -9 the
 *   reopened controller re-applies the journaled weight and marks the
 *   interrupted decision acted; it never re-decides it.
 * - Holds are absolute wall-clock deadlines, so a restart honours the rest
 *   of a hold.
 * - Tripwires (rollback_when) are checked at every tick, five times a second,
 *   and one that fires sets the new colour to 0 within that same tick; the
 *   analysis (gates) runs every `interval`, from the same ticks.
 *
 * Thread rules: a controller belongs to the thread running its uv loop; all
 * calls (commands, status, admin) come from that thread, and so do the calls
 * it makes to the target ops. The journal fsyncs once per decision (about
 * one per analysis interval, plus commands) and once a minute for the
 * aggregates: if the router's loop must never wait for a disk, give the
 * controller a loop (thread) of its own and make the ops thread-safe.
 */
#ifndef CUTOVER_ROLLOUT_H
#define CUTOVER_ROLLOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/base.h"
#include "conf/conf.h"
#include "stats/stats.h"

/* ---- the target ---------------------------------------------------------- */
/* One colour over a window. `requests` counts every request routed to the
 * colour, including those that ended in a 5xx or a transport error (so the
 * error rate is (errors_5xx + transport_errors) / requests). */
typedef struct rollout_sample {
    uint64_t requests, errors_5xx, transport_errors;
    hist latency_ms;                 /* caller-owned: hist_init/hist_free */
    double seconds;                  /* window actually covered */
} rollout_sample;

/* Both return 0 or a negative errno. read_window fills `out` (whose
 * latency_ms the controller has initialised and reset) with the last
 * `seconds` seconds of one colour. healthy (may be NULL) says whether a
 * colour has a server its traffic can go to: 1 yes, 0 none (health checks
 * or passive ejection took them all out, so its share goes to the other
 * colour), < 0 unknown. Called on the controller's thread only. */
typedef struct rollout_target_ops {
    int (*set_weight)(void *ctx, double new_color_percent);          /* 0..100 */
    int (*read_window)(void *ctx, int is_new_color, uint64_t seconds, rollout_sample *out);
    int (*healthy)(void *ctx, int is_new_color);
} rollout_target_ops;

/* ---- gate expressions ------------------------------------------------------ */
/* Grammar: side OP side, OP one of < <= > >= == !=; a side is arithmetic
 * (+ - * / parentheses) over numbers with units (1%, 0.5%, 500ms, 2s, 1min;
 * `m` is refused as a likely 500ms typo),
 * metrics of the new colour (error_rate p50 p90 p95 p99 rps requests) and
 * the same metrics of the old colour as baseline.<metric>. Units are
 * checked: latencies compare with durations, error_rate with percentages. */
typedef struct rollout_expr rollout_expr;

/* Parses `text`, whose first character sits at file:line:col. On error
 * returns NULL with err = "file:line:col: message" pointing at the offending
 * character, and for an unknown metric the nearest valid name. */
rollout_expr *rollout_expr_parse(const char *text, const char *file, int line, int col,
                                 char err[CU_ERRLEN]);
/* The same for a conf string node (accounts for the opening quote). */
rollout_expr *rollout_expr_parse_node(const conf_node *n, char err[CU_ERRLEN]);
void rollout_expr_free(rollout_expr *e);
const char *rollout_expr_text(const rollout_expr *e);
bool rollout_expr_uses_baseline(const rollout_expr *e);

typedef enum {
    ROLLOUT_PASS,   /* measured, the condition holds */
    ROLLOUT_FAIL,   /* measured, the condition does not hold */
    ROLLOUT_HOLD,   /* not enough requests in the window to judge */
    ROLLOUT_ERROR,  /* could not be evaluated (read failed, 0/0, no latencies) */
    ROLLOUT_SKIP,   /* reads the baseline while the old colour has weight 0 */
} rollout_verdict;
const char *rollout_verdict_name(rollout_verdict v);

/* What a gate is judged on: both colours over the same window. */
typedef struct rollout_window {
    const rollout_sample *new_color, *old_color;
    int new_err, old_err;       /* read_window results; < 0: that read failed */
    uint64_t min_requests;      /* per colour that must have data */
    bool old_has_traffic;       /* false at 100%: baseline gates are SKIPped */
    bool require_old;           /* gates: the old colour needs min_requests too;
                                   tripwires: only when they read the baseline */
    bool growing;               /* the window grows with time (window: step): a HOLD
                                   can say when the data will be there */
    const char *new_name, *old_name;
} rollout_window;

typedef struct rollout_judgement {
    rollout_verdict verdict;
    double lhs, rhs;            /* both sides; NaN when not computed */
    uint64_t need_more;         /* HOLD: about this many more requests */
    char detail[512];           /* "p95 412.0ms <= 500ms", "need about ..." */
} rollout_judgement;

/* Judges one expression: PASS when it holds. Never fails. */
void rollout_judge(const rollout_expr *e, const rollout_window *w, rollout_judgement *out);

/* ---- the plan -------------------------------------------------------------- */
typedef struct rollout_step {
    double weight;              /* new colour percent, 0 < w <= 100, increasing */
    int64_t hold_ms;            /* minimum time at this weight */
    bool approve;               /* wait for a person before leaving the step */
} rollout_step;

/* Notification events, in the order of their bits in rollout_receiver.events. */
extern const char *const rollout_event_names[];
#define ROLLOUT_NEVENTS 9

typedef struct rollout_receiver {
    char *webhook;              /* POST URL, or NULL */
    char *exec;                 /* shell command fed the JSON on stdin, or NULL */
    char *ca;                   /* https: extra trusted PEM file (system store always) */
    unsigned events;            /* bit i: rollout_event_names[i] goes to it (all by default) */
    int64_t timeout_ms;
    char *key;                  /* identity in the outbox: "webhook:URL" / "exec:CMD" */
} rollout_receiver;

#define ROLLOUT_WINDOW_STEP INT64_MAX

typedef struct rollout_plan {
    char *from, *to;            /* colour names */
    rollout_step *steps;
    size_t nsteps;
    int64_t interval_ms;        /* analysis interval */
    int64_t window_ms;          /* analysis window (default: the interval);
                                   ROLLOUT_WINDOW_STEP: everything since the step began */
    uint64_t min_requests;      /* per colour per window, below it: HOLD */
    rollout_expr **gates;
    size_t ngates;
    rollout_expr **tripwires;   /* rollback_when */
    size_t ntripwires;
    int64_t tripwire_window_ms; /* default 10 s */
    uint64_t tripwire_min_requests; /* default 20 */
    unsigned failure_limit;     /* failed analyses tolerated (cumulative) */
    unsigned error_limit;       /* consecutive errored analyses tolerated */
    rollout_receiver *receivers;
    size_t nreceivers;
} rollout_plan;

/* Parses the `rollout:` map. Returns 0, or -EINVAL with err =
 * "file:line:col: message". Unknown keys are errors (with the nearest valid
 * key); analysis.gates, analysis.rollback_when and each step's hold are
 * required ([] opts out of gates or tripwires, with a warning).
 * *out is owned by the caller (rollout_plan_free). */
int rollout_plan_parse(const conf_node *node, rollout_plan **out, char err[CU_ERRLEN]);
void rollout_plan_free(rollout_plan *p);
/* Shortest time to promote (all gates pass at every hold's end, no
 * approvals waited for) and worst-case time for the gates to roll back
 * a bad step: interval x (failure_limit + 1). docs/rollout.md explains. */
int64_t rollout_plan_min_promote_ms(const rollout_plan *p);
int64_t rollout_plan_gate_rollback_ms(const rollout_plan *p);
/* A human-readable schedule with both times. */
void rollout_plan_describe(const rollout_plan *p, cu_buf *out);

/* ---- the controller -------------------------------------------------------- */
typedef enum {
    ROLLOUT_IDLE, ROLLOUT_PROGRESSING, ROLLOUT_PAUSED,
    ROLLOUT_PROMOTED, ROLLOUT_ROLLED_BACK, ROLLOUT_ABORTED,
} rollout_state;
const char *rollout_state_name(rollout_state s);

typedef int64_t (*rollout_clock_fn)(void *ctx); /* wall-clock ms since the epoch */

typedef struct rollout_config {
    const rollout_plan *plan;        /* borrowed: must outlive the controller */
    const char *journal_path;        /* SQLite file, created if absent */
    const rollout_target_ops *ops;
    void *target_ctx;
    uv_loop_t *loop;                 /* runs the tick timer and notifications; may be
                                        NULL with manual_ticks (then notifications
                                        stay in the outbox) */
    rollout_clock_fn clock;          /* NULL: cu_wall_ms */
    void *clock_ctx;
    bool manual_ticks;               /* tests: no timer, call rollout_tick */
    int64_t retry_base_ms;           /* notification backoff base (default 1000) */
} rollout_config;

typedef struct rollout_ctl rollout_ctl;

/* The controller's tick: tripwires are checked this often. Everything else
 * a tick does is due by wall-clock time (analysis every interval, holds,
 * per-minute aggregates), so the tick only bounds how late it can be. */
#define ROLLOUT_TICK_MS 200

/* Opens (or creates) the journal, recovers the state it holds: re-applies
 * the journaled weight, marks an interrupted decision acted, resumes
 * undelivered notifications; then starts the tick timer (ROLLOUT_TICK_MS).
 * Only one process may hold a journal (a lock file beside it). Returns 0 or a negative errno
 * with err filled. */
int rollout_open(rollout_ctl **out, const rollout_config *cfg, char err[CU_ERRLEN]);
/* Stops the timer, cancels webhook requests in flight (they stay in the
 * outbox and go out after the next open) and closes the journal. An exec
 * hook already running is left to finish or time out. Memory behind libuv
 * handles is freed in their close callbacks: run the loop afterwards. */
void rollout_close(rollout_ctl *c);

/* One tick (the timer calls this every ROLLOUT_TICK_MS): tripwires, analysis
 * when due, hold deadlines, per-minute aggregates, the notification outbox. */
void rollout_tick(rollout_ctl *c);

/* Longest `by` the admin API accepts, in bytes of UTF-8. */
#define ROLLOUT_BY_MAX 64

/* Commands. `by` names who asked (journaled; may be NULL; cut at 127 bytes
 * on a character boundary, bytes that are not UTF-8 replaced by '?'). Return 0, or
 * -EINVAL / -EALREADY / -EIO with err saying why ("not paused"). */
int rollout_start(rollout_ctl *c, const char *by, char err[CU_ERRLEN]);
int rollout_pause(rollout_ctl *c, const char *by, char err[CU_ERRLEN]);
int rollout_resume(rollout_ctl *c, const char *by, char err[CU_ERRLEN]);
int rollout_approve(rollout_ctl *c, const char *by, char err[CU_ERRLEN]);
int rollout_promote(rollout_ctl *c, const char *by, char err[CU_ERRLEN]);   /* new = 100 */
int rollout_abort(rollout_ctl *c, const char *by, char err[CU_ERRLEN]);     /* new = 0 */

typedef struct rollout_info {
    rollout_state state;
    int64_t run;                     /* 1, 2, ... one per start */
    int step;                        /* 0-based; -1 before start */
    double weight;                   /* new colour percent in force */
    int64_t deadline_ms;             /* end of the current hold; 0 if none */
    int64_t step_started_ms, next_analysis_ms;
    bool awaiting_approval;
    unsigned failures, errors;       /* cumulative failures, consecutive errors */
    uint64_t decisions;              /* decision records in the journal */
    uint64_t recovered;              /* interrupted decisions re-acted at open */
    bool weight_applied;             /* the target accepted `weight` */
} rollout_info;
void rollout_get_info(const rollout_ctl *c, rollout_info *out);

/* Status as JSON: state, step, weights of both colours, deadline, waiting
 * reason, counters and the last `ndecisions` decision records. */
void rollout_status_json(rollout_ctl *c, size_t ndecisions, cu_buf *out);
/* Decision history, newest last, at most `limit` (0: all): JSON array, or a
 * fixed-width table for `cutover events`. Returns 0 or a negative errno. */
int rollout_events(rollout_ctl *c, bool json, size_t limit, cu_buf *out);
/* The same read straight from a journal file (read-only, no lock: works
 * while serve runs or after it died), for `cutover events --state FILE`.
 * Returns 0, or a negative errno with err filled. */
int rollout_journal_events(const char *path, bool json, size_t limit, cu_buf *out,
                           char err[CU_ERRLEN]);
/* Renders the JSON array that rollout_events (or GET /rollout/events)
 * produced as the table, for a CLI that only has the admin API's answer. */
int rollout_events_table(const char *json, cu_buf *out, char err[CU_ERRLEN]);

/* Most decision records one GET /rollout/events answer holds (limit=0 or a
 * larger limit means this many, the newest). */
#define ROLLOUT_EVENTS_MAX 10000

/* Admin API under /rollout/: GET status, GET events[?limit=N&format=table],
 * POST start|pause|resume|approve|promote|abort (body optional JSON
 * {"by": "..."}). Writes a JSON body to out (the table is text); returns the
 * HTTP status: 200, 400 bad body, 404 unknown route (with the nearest one),
 * 405 wrong method, 409 refused command, 500 journal failure. */
int rollout_admin_handle(rollout_ctl *c, const char *method, const char *path, const char *body,
                         size_t body_len, cu_buf *out_json);

/* Latency histogram serialization used for the per-minute aggregates. */
void rollout_hist_encode(const hist *h, cu_buf *out);
int rollout_hist_decode(const void *data, size_t len, hist *h); /* h initialised */

#endif
