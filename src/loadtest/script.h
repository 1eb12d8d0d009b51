/* loadtest/script.h: the Artillery v2 script model, internal to loadtest.
 *
 * lt_script_load() reads a script the way Artillery's loader does (notes
 * section 1.1: -e environment merge, -t target, -k, --overrides with arrays
 * replaced, -v variables, config templated once with $processEnvironment /
 * $env / $environment, relative paths against the script's directory) and
 * compiles it into the structures below, which the engine runs without
 * looking at YAML again. Every error names file:line:column; unknown keys
 * warn with the nearest valid key; the warnings a careful user needs
 * (processor functions that will not run, expect checks ignored without the
 * expect plugin, the formData `path:` trap, a multipart Content-Type without
 * a boundary) are printed once, at load.
 *
 * Runtime values (variables, captures, JSON bodies) are jansson json_t.
 * Templates, JSONPath and expressions are compiled once at load.
 * Everything here is immutable after loading and shared read-only by the
 * worker threads; per-user state lives in lt_ctx.
 */
#ifndef CUTOVER_LOADTEST_SCRIPT_H
#define CUTOVER_LOADTEST_SCRIPT_H

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "conf/conf.h"

/* ---- templates ------------------------------------------------------------------- */
/* Per-user rendering context: the user's variables (a JSON object holding
 * config.variables picks, captures, $uuid, $loopCount, ...) and its rng. */
typedef struct lt_ctx {
    json_t *vars;
    cu_rng *rng;
} lt_ctx;

typedef struct lt_tmpl lt_tmpl;
/* Compiles "text {{ name }} {{ $randomNumber(1,9) }}". Never fails:
 * unmatched braces stay literal text. $processEnvironment.X and $env.X are
 * resolved now (unset -> undefined). */
lt_tmpl *lt_tmpl_compile(const char *s);
void lt_tmpl_free(lt_tmpl *t);
/* True when there is no placeholder; then the text is lt_tmpl_text(t). */
bool lt_tmpl_is_static(const lt_tmpl *t);
const char *lt_tmpl_text(const lt_tmpl *t);
/* Appends the rendering: undefined -> "undefined", objects/arrays as JSON,
 * numbers as JavaScript prints them. */
void lt_tmpl_render(const lt_tmpl *t, const lt_ctx *ctx, cu_buf *out);
/* A template that is exactly one placeholder yields the raw value (a new
 * reference, NULL for undefined); any other yields a string. */
json_t *lt_tmpl_value(const lt_tmpl *t, const lt_ctx *ctx);
/* Names of the variables the template reads (for lint-style warnings):
 * calls fn(name, arg) for each plain variable placeholder. */
void lt_tmpl_each_var(const lt_tmpl *t, void (*fn)(const char *name, void *arg), void *arg);

/* A templated value tree (JSON bodies): strings are templates, keys too. */
typedef struct lt_value lt_value;
lt_value *lt_value_compile(const conf_node *n);
void lt_value_free(lt_value *v);
/* A new json_t; an undefined single-placeholder value drops its key. */
json_t *lt_value_render(const lt_value *v, const lt_ctx *ctx);

/* Prints a number as JavaScript's String(n) does (shortest round-trip,
 * integers without ".0", 1e21 and up in exponent form). */
void lt_js_number(cu_buf *out, double v);
/* Appends v as JavaScript's JSON.stringify(v) prints it: compact, key order
 * kept, numbers as lt_js_number (jansson's json_dumps prints 0.1 as
 * 0.10000000000000001), non-finite reals as null. For JSON bodies. */
void lt_json_dump(cu_buf *out, const json_t *v);

/* ---- JSONPath subset --------------------------------------------------------------- */
/* $, .key, ['key'], ["key"], [n], [-n], [*], .*, ..key, [a:b]. Filters and
 * scripts are rejected at compile time with a message in err. */
typedef struct lt_jsonpath lt_jsonpath;
lt_jsonpath *lt_jsonpath_compile(const char *expr, char err[CU_ERRLEN]);
void lt_jsonpath_free(lt_jsonpath *p);
/* All matches, in document order, appended to `out` (a JSON array; borrowed
 * values are increfed). Returns the number of matches. */
size_t lt_jsonpath_query(const lt_jsonpath *p, json_t *doc, json_t *out);
/* A path of members and indexes only (no [*], slices or ..): one that
 * lt_jsonpath_text can follow. Its steps, for jsontext.c: a member name in
 * *key, or (true) an index in *index. */
bool lt_jsonpath_plain(const lt_jsonpath *p);
size_t lt_jsonpath_nsteps(const lt_jsonpath *p);
bool lt_jsonpath_step(const lt_jsonpath *p, size_t i, const char **key, long long *index);

/* ---- JSON text (jsontext.c) --------------------------------------------------------- */
/* Whether json_loadb(text, len, JSON_DECODE_ANY) would load it, without
 * loading it (no allocation): 0 when it would not, else the first byte of
 * the value ('{', '[', '"', 't', 'f', 'n', '-' or a digit), its type. */
int lt_json_text_type(const char *text, size_t len);
/* A plain path (lt_jsonpath_plain: at most one match) over text that
 * lt_json_text_type accepted: 1 and a new value in *out, the one
 * lt_jsonpath_query finds in the loaded document; 0 when nothing matches;
 * -1 if the value found does not load (it always does in checked text).
 * Only the value found is loaded. */
int lt_jsonpath_text(const lt_jsonpath *p, const char *text, size_t len, json_t **out);
/* The expect plugin's hasProperty over text that lt_json_text_type
 * accepted, without loading it: whether the names of `path` ("a.b[0].c",
 * split at '.', '[' and ']') lead from the top value to a value, each a
 * member of an object (its last occurrence) or, as a decimal number, an
 * element of an array. A name of 256 bytes or more finds nothing. */
bool lt_json_text_has_path(const char *text, size_t len, const char *path);

/* ---- expressions (ensure conditions: Artillery's filtrex syntax) ------------------ */
/* Numbers, names (metric names with dots, e.g. http.response_time.p95),
 * + - * / % ^, == != < <= > >=, and or not, x ? y : z, parentheses. */
typedef struct lt_expr lt_expr;
lt_expr *lt_expr_compile(const char *src, char err[CU_ERRLEN]);
void lt_expr_free(lt_expr *e);
/* lookup returns false for an unknown name: the result is then NaN and
 * *unknown (if not NULL) is set. Booleans are 1 and 0. */
double lt_expr_eval(const lt_expr *e, bool (*lookup)(const char *name, double *v, void *arg),
                    void *arg, bool *unknown);

/* ---- phases and the arrival schedule ----------------------------------------------- */
typedef enum { LT_PHASE_RATE, LT_PHASE_RAMP, LT_PHASE_COUNT, LT_PHASE_PAUSE } lt_phase_kind;

typedef struct lt_phase {
    lt_phase_kind kind;
    char *name;             /* NULL when unnamed */
    double duration_s;      /* every kind has one (pause: the pause) */
    double rate;            /* RATE: arrivalRate; RAMP: from */
    double ramp_to;         /* RAMP */
    uint64_t count;         /* COUNT: arrivalCount */
    int64_t max_vusers;     /* 0: no limit */
} lt_phase;

/* Arrivals are computed from each phase's start in nanoseconds, so exactly
 * rate x duration users arrive (Artillery's integer-ms tick overshoots):
 * RATE: n = round(rate*D) arrivals at k*1e9/rate; RAMP: per second i the
 * count round_half_up(a + (b-a)*i/(D-1)) spread evenly in that second;
 * COUNT: count arrivals at k*D/count; PAUSE: none. */
typedef struct lt_sched {
    const lt_phase *phases;
    size_t nphases;
    size_t phase;           /* current phase */
    uint64_t phase_start_ns;/* offset of the current phase from the test start */
    uint64_t k;             /* arrival index within the phase (RAMP: within the second) */
    uint64_t sec;           /* RAMP: current second */
} lt_sched;

void lt_sched_init(lt_sched *s, const lt_phase *phases, size_t nphases);
/* The next arrival: its time from the test start and its phase. False when
 * the schedule is over. */
bool lt_sched_next(lt_sched *s, uint64_t *t_ns, size_t *phase);
/* Start offset and length of phase i (ns from the test start). */
uint64_t lt_phase_start_ns(const lt_phase *phases, size_t i);
uint64_t lt_phase_duration_ns(const lt_phase *p);
/* Arrivals in phase p (exact). */
uint64_t lt_phase_arrivals(const lt_phase *p);
/* RAMP: arrivals in second i. */
uint64_t lt_ramp_count(const lt_phase *p, uint64_t i);

/* ---- flow ---------------------------------------------------------------------------- */
typedef struct lt_kv {          /* a templated name/value pair */
    char *name;                 /* header names lower-cased */
    lt_tmpl *value;
} lt_kv;

typedef struct lt_part {        /* one multipart/form-data part */
    char *name;
    lt_tmpl *value;             /* a field; NULL for a file */
    char *file_path;            /* resolved against the script's directory */
    char *filename;             /* basename, sent in Content-Disposition */
    char *content_type;         /* file parts: given or guessed from the extension */
    cu_buf file_data;           /* read at load */
} lt_part;

typedef enum { LT_CAP_JSON, LT_CAP_HEADER, LT_CAP_REGEXP } lt_cap_kind;
typedef struct lt_capture {
    lt_cap_kind kind;
    lt_jsonpath *jsonpath;      /* JSON */
    char *header;               /* HEADER, lower-case */
    regex_t re;                 /* REGEXP (POSIX extended) */
    int group;                  /* REGEXP: 0 = whole match */
    char *as;
    bool strict;                /* default true: failure fails the user */
} lt_capture;

typedef enum {
    LT_EXP_STATUS, LT_EXP_NOT_STATUS, LT_EXP_CONTENT_TYPE, LT_EXP_HAS_HEADER, LT_EXP_HEADER_EQUALS,
    LT_EXP_HAS_PROPERTY, LT_EXP_NOT_HAS_PROPERTY, LT_EXP_EQUALS, LT_EXP_MATCHES_REGEXP
} lt_exp_kind;
/* One check of the expect plugin, as its expectations.js does it. */
typedef struct lt_expect {
    lt_exp_kind kind;
    int status[16];             /* (NOT_)STATUS: the codes */
    size_t nstatus;
    bool status_list;           /* written as a list (printed as one) */
    lt_tmpl *text;              /* CONTENT_TYPE, HAS_HEADER, (NOT_)HAS_PROPERTY; HEADER_EQUALS: name */
    lt_tmpl **equals;           /* EQUALS: values compared as strings; HEADER_EQUALS: [value] */
    size_t nequals;
    regex_t re;                 /* MATCHES_REGEXP */
    char *type;                 /* the result type, for counters: "statusCode", "header x values equals" */
} lt_expect;

typedef enum { LT_BODY_NONE, LT_BODY_JSON, LT_BODY_TEXT, LT_BODY_FORM, LT_BODY_MULTIPART } lt_body_kind;

typedef struct lt_request {
    const char *method;         /* "GET", static */
    lt_tmpl *url;
    char *url_raw;              /* as written, for messages and endpoint names */
    char *endpoint;             /* metrics-by-endpoint name, computed at load */
    lt_tmpl *name;              /* may be NULL */
    lt_kv *headers;             /* request headers (lower-case names) */
    size_t nheaders;
    lt_kv *qs;                  /* query string parameters, appended */
    size_t nqs;
    lt_body_kind body_kind;
    lt_value *json;             /* LT_BODY_JSON */
    lt_tmpl *body;              /* LT_BODY_TEXT */
    lt_kv *form;                /* LT_BODY_FORM (urlencoded) */
    size_t nform;
    lt_part *parts;             /* LT_BODY_MULTIPART */
    size_t nparts;
    lt_kv *cookies;             /* cookie: {name: value} */
    size_t ncookies;
    lt_tmpl *auth_user, *auth_pass; /* basic auth, NULL when absent */
    lt_capture *captures;
    size_t ncaptures;
    lt_expect *expects;         /* empty unless the expect plugin is enabled */
    size_t nexpects;
    bool needs_body;            /* captures or expects read the response body */
    bool no_redirect;           /* followRedirect: false (default: follow up to 10) */
    bool no_gzip;               /* gzip: false: no Accept-Encoding, bodies kept encoded */
    double probability;         /* percent chance the step runs; < 0: always */
    lt_expr *if_true;           /* ifTrue: runs only when true over the user's variables */
    int line, col;              /* where the step is, for messages */
    int id;                     /* 0..n-1, assigned by the engine before the run */
} lt_request;

typedef enum { LT_STEP_REQUEST, LT_STEP_THINK, LT_STEP_LOOP, LT_STEP_LOG, LT_STEP_FUNCTION } lt_step_kind;

typedef struct lt_step lt_step;
struct lt_step {
    lt_step_kind kind;
    lt_request req;             /* REQUEST */
    double think_ms;            /* THINK */
    bool has_jitter, jitter_pct; /* THINK: its own jitter ("N%" or ms), else defaults.think's */
    double jitter;
    struct {                    /* LOOP */
        lt_step *steps;
        size_t nsteps;
        lt_tmpl *count;         /* NULL: no count (runs `over`, or forever) */
        json_t *over_list;      /* literal list, or NULL */
        char *over_var;         /* variable holding the list, or NULL */
        char *value_name;       /* loopValue: the counter's name (default $loopCount) */
        char *element_name;     /* loopElement: the element's name (default $loopElement) */
        int64_t first;          /* count "a-b": the counter starts at a */
    } loop;
    lt_tmpl *log;               /* LOG */
    char *function;             /* FUNCTION: name (no JavaScript is run) */
};

typedef struct lt_scenario {
    char *name;                 /* "0", "1", ... when unnamed, as Artillery */
    char *created_metric;       /* "vusers.created_by_name.<name>" */
    int weight;
    lt_step *flow;
    size_t nflow;
} lt_scenario;

/* ---- plugins --------------------------------------------------------------------------- */
typedef struct lt_threshold {
    char *metric;               /* "http.response_time.p99" */
    double max;                 /* passes when value < max */
} lt_threshold;

typedef struct lt_condition {
    char *text;
    lt_expr *expr;
    bool strict;
} lt_condition;

typedef struct lt_plugins {
    bool ensure, expect, mbe;   /* enabled in config.plugins (mbe is on by default) */
    bool apdex;                 /* plugins.apdex or config.apdex */
    double apdex_ms;            /* its threshold T (default 500): satisfied <= T < tolerated <= 4T */
    /* ensure */
    lt_threshold *thresholds;
    size_t nthresholds;
    lt_condition *conditions;
    size_t nconditions;
    double max_error_rate;      /* < 0: not set */
    /* metrics-by-endpoint */
    bool mbe_strip_query, mbe_only_names, mbe_ignore_unnamed, mbe_suppress_output;
    char *mbe_prefix;           /* "plugins.metrics-by-endpoint" or metricsNamespace */
    /* expect */
    enum { LT_EXPECT_PRETTY, LT_EXPECT_JSON, LT_EXPECT_SILENT, LT_EXPECT_PRETTY_ERROR } expect_format;
    bool expect_failures_as_errors, expect_default_200, expect_only_names;
} lt_plugins;

/* ---- payload (CSV) ---------------------------------------------------------------------- */
typedef struct lt_payload {
    char *path;                 /* resolved against the script's directory */
    char **fields;              /* column names, in order */
    size_t nfields;
    bool sequence;              /* order: sequence (else random) */
    char *name;                 /* loadAll: the variable holding every row; NULL otherwise */
    json_t *rows;               /* list of lists of cells (strings, or numbers with cast) */
    json_t *all;                /* loadAll: list of objects keyed by fields (or the rows) */
} lt_payload;

/* Reads CSV text as RFC 4180 does: fields separated by `delim`, records by
 * LF or CRLF, a quoted field may hold delimiters, line breaks and doubled
 * quotes. skip_empty drops empty lines; cast turns decimal-looking cells
 * into numbers (csv-parse's cast: true). Returns a new list of lists, or
 * NULL with err ("line N: ...") for an unterminated or misplaced quote. */
json_t *lt_csv_parse(const char *text, size_t len, char delim, bool skip_empty, bool cast,
                     char err[CU_ERRLEN]);

/* ---- the script ------------------------------------------------------------------------ */
typedef struct lt_load_opts {
    const char *path;           /* the script */
    const char *target;         /* -t, or NULL */
    const char *environment;    /* -e, or NULL */
    const char *overrides;      /* --overrides JSON text, or NULL */
    const char *variables;      /* -v JSON text, or NULL */
    bool insecure;              /* -k */
    const char *scenario_name;  /* --scenario-name: run only this one (exact name, else a regex) */
    bool solo;                  /* -s/--solo: one user (phases replaced by one arrival) */
} lt_load_opts;

typedef struct lt_script {
    char *path, *dir;
    conf_node *doc;             /* the merged document, after config templating */
    char *target;               /* no trailing slash removed: Artillery concatenates */
    char *environment;          /* or NULL */
    lt_phase *phases;
    size_t nphases;
    json_t *variables;          /* object: name -> scalar or list (pick one per user) */
    lt_payload *payloads;       /* config.payload: one row per user from each (or loadAll) */
    size_t npayloads;
    lt_kv *default_headers;     /* lower-case names; includes user-agent when Artillery adds it */
    size_t ndefault_headers;
    lt_kv *default_cookies;
    size_t ndefault_cookies;
    double timeout_s;           /* http.timeout, default 10 */
    bool extended_metrics;      /* http.extendedMetrics or $ARTILLERY_EXTENDED_HTTP_METRICS */
    size_t pool;                /* http.pool: connections shared by all users (0: one per user) */
    double think_jitter;        /* config.defaults.think.jitter: ms, or percent when _pct */
    bool think_jitter_pct;
    bool tls_verify;            /* config.tls.rejectUnauthorized (default true), -k */
    char *tls_ca;               /* config.tls.ca file (PEM), or NULL */
    lt_plugins plugins;
    lt_scenario *scenarios;
    size_t nscenarios;
    int total_weight;
    lt_scenario *before, *after; /* top-level before: / after: flows, or NULL */
} lt_script;

/* Loads and compiles. Returns NULL with err ("file:line:col: message").
 * Warnings go to stderr through cu_warn as they are found. */
lt_script *lt_script_load(const lt_load_opts *o, char err[CU_ERRLEN]);
void lt_script_free(lt_script *s);
/* Appends the plan in words (plan.c): per phase its rate, length, exact
 * arrivals and start; the total length and users; each scenario's share. */
void lt_script_plan(const lt_script *s, cu_buf *out);

#endif
