/* Gate expressions: a recursive-descent parser producing a small tree, and
 * its evaluation over two samples (new colour, old colour).
 *
 * Invariants: a parsed expression is a comparison whose two sides have
 * compatible dimensions (ratio, time, rate, count, or plain numbers) and
 * which reads at least one metric of the new colour, so a typo can never
 * become a constant that silently passes. Values are kept in base units:
 * ratios as fractions (1% = 0.01), times in milliseconds.
 * Error positions are offsets into the text, turned into file:line:col of
 * the offending character. Immutable after parsing; thread-safe to read.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollout/internal.h"

typedef enum { M_ERROR_RATE, M_P50, M_P90, M_P95, M_P99, M_RPS, M_REQUESTS, M_COUNT } metric;
static const char *const metric_names[M_COUNT] = {"error_rate", "p50", "p90", "p95",
                                                  "p99",        "rps", "requests"};
static const int metric_dims[M_COUNT] = {RX_RATIO, RX_TIME, RX_TIME, RX_TIME,
                                         RX_TIME,  RX_RATE, RX_COUNT};
static const double metric_q[M_COUNT] = {0, 0.5, 0.9, 0.95, 0.99, 0, 0};

typedef enum { N_NUM, N_METRIC, N_ADD, N_SUB, N_MUL, N_DIV, N_NEG } nkind;

typedef struct node {
    nkind kind;
    int dim;
    double num;            /* N_NUM, in base units */
    metric m;              /* N_METRIC */
    bool baseline;         /* N_METRIC of the old colour */
    struct node *l, *r;
} node;

struct rollout_expr {
    char *text;
    int op;
    node *side[2];
    size_t side_off[2], side_len[2];
    bool uses_new, uses_old, lat_new, lat_old;
    int nnew;              /* metrics of the new colour read, all sides */
    int side_new[2];       /* ... per side */
    char *warning;         /* load-time warning (also logged), or NULL */
};

typedef struct parser {
    const char *s;
    size_t pos;
    const char *file;
    int line, col;
    char *err;
    bool failed;
    rollout_expr *e;
} parser;

/* file:line:col of offset `at` into the text. */
static void position(const parser *p, size_t at, int *line, int *col)
{
    *line = p->line;
    *col = p->col;
    for (size_t i = 0; i < at && p->s[i]; i++) {
        if (p->s[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static void perr(parser *p, size_t at, const char *fmt, ...) CU_PRINTF(3, 4);
static void perr(parser *p, size_t at, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = true;
    /* count lines inside the text too (block scalars) */
    int line, col;
    position(p, at, &line, &col);
    int k = snprintf(p->err, CU_ERRLEN, "%s:%d:%d: ", p->file ? p->file : "<gate>", line, col);
    va_list ap;
    va_start(ap, fmt);
    if (k > 0 && k < CU_ERRLEN)
        vsnprintf(p->err + k, CU_ERRLEN - (size_t)k, fmt, ap);
    va_end(ap);
}

/* A gate that parses but is probably not what was meant: the first such
 * remark is kept for rx_warning and logged once the gate has parsed. */
static void pwarn(parser *p, size_t at, const char *fmt, ...) CU_PRINTF(3, 4);
static void pwarn(parser *p, size_t at, const char *fmt, ...)
{
    int line, col;
    position(p, at, &line, &col);
    char msg[CU_ERRLEN];
    int k = snprintf(msg, sizeof msg, "%s:%d:%d: ", p->file ? p->file : "<gate>", line, col);
    va_list ap;
    va_start(ap, fmt);
    if (k > 0 && k < (int)sizeof msg)
        vsnprintf(msg + k, sizeof msg - (size_t)k, fmt, ap);
    va_end(ap);
    if (!p->e->warning)
        p->e->warning = cu_strdup(msg);
}

static void skip_ws(parser *p)
{
    while (p->s[p->pos] && isspace((unsigned char)p->s[p->pos]))
        p->pos++;
}

static node *mk(nkind k, int dim)
{
    node *n = cu_calloc(1, sizeof *n);
    n->kind = k;
    n->dim = dim;
    return n;
}

static void node_free(node *n)
{
    if (!n)
        return;
    node_free(n->l);
    node_free(n->r);
    free(n);
}

static const char *dim_name(int d)
{
    switch (d) {
    case RX_RATIO: return "a percentage";
    case RX_TIME: return "a duration";
    case RX_RATE: return "a rate per second";
    case RX_COUNT: return "a count";
    default: return "a plain number";
    }
}

static node *parse_sum(parser *p);

static node *parse_number(parser *p)
{
    size_t start = p->pos;
    char *end;
    errno = 0;
    double v = strtod(p->s + p->pos, &end);
    if (end == p->s + p->pos || errno == ERANGE || !isfinite(v)) {
        perr(p, start, "expected a number");
        return NULL;
    }
    p->pos = (size_t)(end - p->s);
    int dim = RX_NONE;
    const char *u = p->s + p->pos;
    if (*u == '%') {
        v /= 100;
        dim = RX_RATIO;
        p->pos++;
    } else if (strncmp(u, "ms", 2) == 0 && !isalnum((unsigned char)u[2])) {
        dim = RX_TIME;
        p->pos += 2;
    } else if (*u == 's' && !isalnum((unsigned char)u[1])) {
        v *= 1000;
        dim = RX_TIME;
        p->pos++;
    } else if (strncmp(u, "min", 3) == 0 && !isalnum((unsigned char)u[3])) {
        v *= 60000;
        dim = RX_TIME;
        p->pos += 3;
    } else if (*u == 'm' && !isalnum((unsigned char)u[1])) {
        /* `m` is not a unit in gates: `p95 < 500m` meant 500ms far more
         * often than 500 minutes, and a 500-minute gate always passes */
        perr(p, p->pos, "'m' is not a unit in gates: did you mean %.*sms? (write min for "
             "minutes)", (int)(p->pos - start), p->s + start);
        return NULL;
    } else if (isalpha((unsigned char)*u)) {
        size_t k = 0;
        while (isalnum((unsigned char)u[k]))
            k++;
        perr(p, p->pos, "unknown unit '%.*s' (use %%, ms, s or min)", (int)k, u);
        return NULL;
    }
    if (dim == RX_TIME && v > 60000)
        pwarn(p, start, "a latency threshold of %.*s is above 60 s: a gate on it can hardly "
              "fail (did you mean milliseconds?)", (int)(p->pos - start), p->s + start);
    node *n = mk(N_NUM, dim);
    n->num = v;
    return n;
}

static node *parse_metric(parser *p)
{
    size_t start = p->pos;
    while (isalnum((unsigned char)p->s[p->pos]) || p->s[p->pos] == '_')
        p->pos++;
    size_t len = p->pos - start;
    char word[64];
    snprintf(word, sizeof word, "%.*s", (int)CU_MIN(len, sizeof word - 1), p->s + start);
    bool baseline = false;
    size_t name_at = start;
    if (strcmp(word, "baseline") == 0) {
        if (p->s[p->pos] != '.') {
            perr(p, p->pos, "baseline needs a metric, as in baseline.p95");
            return NULL;
        }
        p->pos++;
        name_at = p->pos;
        while (isalnum((unsigned char)p->s[p->pos]) || p->s[p->pos] == '_')
            p->pos++;
        len = p->pos - name_at;
        snprintf(word, sizeof word, "%.*s", (int)CU_MIN(len, sizeof word - 1), p->s + name_at);
        baseline = true;
    }
    for (int m = 0; m < M_COUNT; m++) {
        if (strcmp(word, metric_names[m]) == 0) {
            node *n = mk(N_METRIC, metric_dims[m]);
            n->m = (metric)m;
            n->baseline = baseline;
            if (baseline) {
                p->e->uses_old = true;
                p->e->lat_old |= metric_dims[m] == RX_TIME;
            } else {
                p->e->uses_new = true;
                p->e->nnew++;
                p->e->lat_new |= metric_dims[m] == RX_TIME;
            }
            return n;
        }
    }
    if (word[0] == 0) {
        perr(p, name_at, "expected a metric name after 'baseline.'");
        return NULL;
    }
    const char *near = cu_nearest(word, metric_names, M_COUNT);
    if (!near && !baseline && cu_nearest(word, (const char *const[]){"baseline"}, 1))
        near = "baseline.<metric>";
    if (near)
        perr(p, name_at, "unknown metric '%s' (did you mean '%s'?)", word, near);
    else
        perr(p, name_at, "unknown metric '%s' (metrics: error_rate, p50, p90, p95, p99, rps, "
                         "requests, and baseline.<metric>)", word);
    return NULL;
}

static node *parse_factor(parser *p)
{
    skip_ws(p);
    char c = p->s[p->pos];
    if (c == '(') {
        size_t open = p->pos++;
        node *n = parse_sum(p);
        if (!n)
            return NULL;
        skip_ws(p);
        if (p->s[p->pos] != ')') {
            perr(p, p->s[p->pos] ? p->pos : open, "missing ')'");
            node_free(n);
            return NULL;
        }
        p->pos++;
        return n;
    }
    if (c == '-') {
        p->pos++;
        node *x = parse_factor(p);
        if (!x)
            return NULL;
        node *n = mk(N_NEG, x->dim);
        n->l = x;
        return n;
    }
    if (isdigit((unsigned char)c) || c == '.')
        return parse_number(p);
    if (isalpha((unsigned char)c) || c == '_')
        return parse_metric(p);
    if (c == 0)
        perr(p, p->pos, "unexpected end of the gate: expected a metric or a number");
    else
        perr(p, p->pos, "unexpected '%c': expected a metric or a number", c);
    return NULL;
}

static bool countlike(int d)
{
    return d == RX_COUNT || d == RX_RATE;
}

/* Dimension of l op r, or -1 with an error at `at`. */
static int combine(parser *p, char op, int l, int r, size_t at)
{
    if (op == '+' || op == '-') {
        if (l == r)
            return l;
        if (l == RX_NONE && countlike(r))
            return r;
        if (r == RX_NONE && countlike(l))
            return l;
        perr(p, at, "cannot %s %s and %s", op == '+' ? "add" : "subtract", dim_name(l),
             dim_name(r));
        return -1;
    }
    if (op == '*') {
        if (l == RX_NONE)
            return r;
        if (r == RX_NONE)
            return l;
        perr(p, at, "cannot multiply %s by %s (one side must be a plain number)", dim_name(l),
             dim_name(r));
        return -1;
    }
    /* '/' */
    if (r == RX_NONE)
        return l;
    if (l == r)
        return RX_NONE;
    perr(p, at, "cannot divide %s by %s", dim_name(l), dim_name(r));
    return -1;
}

/* Whether the subtree reads metric m (of either colour / of the old one). */
static bool reads_metric(const node *n, metric m)
{
    return n && ((n->kind == N_METRIC && n->m == m) || reads_metric(n->l, m) ||
                 reads_metric(n->r, m));
}

static bool reads_metric_baseline(const node *n, metric m)
{
    return n && ((n->kind == N_METRIC && n->m == m && n->baseline) ||
                 reads_metric_baseline(n->l, m) || reads_metric_baseline(n->r, m));
}

/* One precedence level of left-associative binary operators: `ops` holds
 * the two operator characters and `kinds` their node kinds, `sub` parses
 * the operands (the next level up). */
static node *parse_level(parser *p, const char ops[2], const nkind kinds[2], node *(*sub)(parser *))
{
    node *l = sub(p);
    while (l) {
        skip_ws(p);
        char c = p->s[p->pos];
        if (c != ops[0] && c != ops[1])
            break;
        size_t at = p->pos++;
        node *r = sub(p);
        if (!r) {
            node_free(l);
            return NULL;
        }
        if ((c == '-' || c == '/') && l->kind == N_METRIC && r->kind == N_METRIC &&
            l->m == r->m && !l->baseline && !r->baseline) {
            perr(p, at, "%s %c %s is always %s: did you mean %s %c baseline.%s?",
                 metric_names[l->m], c, metric_names[l->m], c == '-' ? "0" : "1",
                 metric_names[l->m], c, metric_names[l->m]);
            node_free(l);
            node_free(r);
            return NULL;
        }
        if (c == '/' && reads_metric(r, M_ERROR_RATE))
            pwarn(p, at, "dividing by %s: a healthy colour often has 0 errors, which makes the "
                  "gate ERROR at every analysis (and roll back after error_limit + 1); compare "
                  "additively instead, as in error_rate <= baseline.error_rate + 0.5%%",
                  reads_metric_baseline(r, M_ERROR_RATE) ? "baseline.error_rate" : "error_rate");
        int d = combine(p, c, l->dim, r->dim, at);
        node *n = mk(kinds[c == ops[0] ? 0 : 1], d);
        n->l = l;
        n->r = r;
        l = n;
        if (d < 0) {
            node_free(l);
            return NULL;
        }
    }
    return l;
}

static node *parse_term(parser *p)
{
    static const nkind kinds[2] = {N_MUL, N_DIV};
    return parse_level(p, "*/", kinds, parse_factor);
}

static node *parse_sum(parser *p)
{
    static const nkind kinds[2] = {N_ADD, N_SUB};
    return parse_level(p, "+-", kinds, parse_term);
}

static int parse_op(parser *p)
{
    skip_ws(p);
    const char *s = p->s + p->pos;
    static const struct { const char *t; int op; } ops[] = {
        {"<=", RX_LE}, {">=", RX_GE}, {"==", RX_EQ}, {"!=", RX_NE}, {"<", RX_LT}, {">", RX_GT}};
    for (size_t i = 0; i < CU_ARRAY_LEN(ops); i++) {
        size_t k = strlen(ops[i].t);
        if (strncmp(s, ops[i].t, k) == 0) {
            p->pos += k;
            return ops[i].op;
        }
    }
    if (*s == '=')
        perr(p, p->pos, "use '==' to compare, or '<=' / '>='");
    else if (*s)
        perr(p, p->pos, "expected a comparison (<, <=, >, >=, ==, !=) here");
    else
        perr(p, p->pos, "a gate needs a comparison, such as \"p95 < 500ms\"");
    return -1;
}

/* Whether a comparison of dimensions a and b makes sense; else the hint. */
static const char *cmp_hint(int a, int b)
{
    if (a == b)
        return NULL;
    if ((a == RX_NONE && countlike(b)) || (b == RX_NONE && countlike(a)))
        return NULL;
    int other = a == RX_NONE ? b : b == RX_NONE ? a : -1;
    if (other == RX_TIME)
        return "give the duration a unit, such as 500ms or 2s";
    if (other == RX_RATIO)
        return "give the rate a percent sign, such as 1% or 0.5%";
    return "both sides must measure the same thing";
}

void rollout_expr_free(rollout_expr *e)
{
    if (!e)
        return;
    node_free(e->side[0]);
    node_free(e->side[1]);
    free(e->warning);
    free(e->text);
    free(e);
}

rollout_expr *rollout_expr_parse(const char *text, const char *file, int line, int col,
                                 char err[CU_ERRLEN])
{
    rollout_expr *e = cu_calloc(1, sizeof *e);
    e->text = cu_strdup(text ? text : "");
    parser p = {.s = e->text, .file = file, .line = line, .col = col, .err = err, .e = e};
    skip_ws(&p);
    e->side_off[0] = p.pos;
    e->side[0] = parse_sum(&p);
    e->side_new[0] = e->nnew;
    size_t op_at = 0;
    if (e->side[0]) {
        skip_ws(&p);
        e->side_len[0] = p.pos - e->side_off[0];
        op_at = p.pos;
        e->op = parse_op(&p);
    }
    if (!p.failed) {
        skip_ws(&p);
        e->side_off[1] = p.pos;
        e->side[1] = parse_sum(&p);
    }
    if (!p.failed) {
        size_t end = p.pos;
        while (end > e->side_off[1] && isspace((unsigned char)e->text[end - 1]))
            end--;
        e->side_len[1] = end - e->side_off[1];
        skip_ws(&p);
        if (p.s[p.pos])
            perr(&p, p.pos, "unexpected '%c' after the gate", p.s[p.pos]);
    }
    if (!p.failed) {
        const char *hint = cmp_hint(e->side[0]->dim, e->side[1]->dim);
        if (hint)
            perr(&p, op_at, "cannot compare %s with %s: %s", dim_name(e->side[0]->dim),
                 dim_name(e->side[1]->dim), hint);
    }
    if (!p.failed && !e->uses_new)
        perr(&p, e->side_off[0], "the gate reads no metric of the new colour (such as p95 or "
                                 "error_rate), so it could never fail");
    e->side_new[1] = e->nnew - e->side_new[0];
    if (!p.failed && e->side_new[0] && e->side_new[1] && !e->uses_old)
        perr(&p, e->side_off[1], "both sides read the new colour and neither the old one: "
                                 "compare against the old colour with baseline.<metric>, as in "
                                 "p95 <= baseline.p95 * 1.2");
    if (p.failed) {
        rollout_expr_free(e);
        return NULL;
    }
    if (e->warning)
        cu_warn("%s", e->warning);
    return e;
}

rollout_expr *rollout_expr_parse_node(const conf_node *n, char err[CU_ERRLEN])
{
    if (!n || n->type != CONF_STRING) {
        if (n)
            conf_errf(err, n, "a gate must be a string such as \"p95 < 500ms\" (got %s)",
                      n->type == CONF_NULL ? "nothing" : n->str ? n->str : conf_type_name(n->type));
        else
            snprintf(err, CU_ERRLEN, "missing gate");
        return NULL;
    }
    return rollout_expr_parse(n->str, n->file, n->line, n->col + (n->quote ? 1 : 0), err);
}

const char *rollout_expr_text(const rollout_expr *e)
{
    return e->text;
}

const char *rx_warning(const rollout_expr *e)
{
    return e->warning;
}

bool rollout_expr_uses_baseline(const rollout_expr *e)
{
    return e->uses_old;
}

bool rx_uses_latency(const rollout_expr *e, bool baseline)
{
    return baseline ? e->lat_old : e->lat_new;
}

int rx_op(const rollout_expr *e)
{
    return e->op;
}

const char *rx_op_text(int op)
{
    static const char *const t[] = {"<", "<=", ">", ">=", "==", "!="};
    return op >= 0 && op < 6 ? t[op] : "?";
}

bool rx_compare(int op, double l, double r)
{
    switch (op) {
    case RX_LT: return l < r;
    case RX_LE: return l <= r;
    case RX_GT: return l > r;
    case RX_GE: return l >= r;
    case RX_EQ: return l == r;
    default: return l != r;
    }
}

int rx_side_dim(const rollout_expr *e, int side)
{
    return e->side[side]->dim;
}

const char *rx_side_text(const rollout_expr *e, int side, bool *constant, char *buf, size_t cap)
{
    size_t len = e->side_len[side];
    while (len && isspace((unsigned char)e->text[e->side_off[side] + len - 1]))
        len--;
    snprintf(buf, cap, "%.*s", (int)len, e->text + e->side_off[side]);
    if (constant) {
        const node *n = e->side[side];
        *constant = n->kind == N_NUM || (n->kind == N_NEG && n->l->kind == N_NUM);
    }
    return buf;
}

static double metric_value(metric m, const rollout_sample *s)
{
    if (!s)
        return NAN;
    switch (m) {
    case M_ERROR_RATE:
        if (s->requests == 0)
            return NAN;
        return (double)(s->errors_5xx + s->transport_errors) / (double)s->requests;
    case M_RPS:
        return s->seconds > 0 ? (double)s->requests / s->seconds : NAN;
    case M_REQUESTS:
        return (double)s->requests;
    default:
        if (s->latency_ms.count == 0)
            return NAN;
        return hist_quantile(&s->latency_ms, metric_q[m]);
    }
}

static double eval(const node *n, const rollout_sample *nw, const rollout_sample *old)
{
    switch (n->kind) {
    case N_NUM: return n->num;
    case N_METRIC: return metric_value(n->m, n->baseline ? old : nw);
    case N_NEG: return -eval(n->l, nw, old);
    case N_ADD: return eval(n->l, nw, old) + eval(n->r, nw, old);
    case N_SUB: return eval(n->l, nw, old) - eval(n->r, nw, old);
    case N_MUL: return eval(n->l, nw, old) * eval(n->r, nw, old);
    default: {
        double d = eval(n->r, nw, old);
        return d == 0 ? NAN : eval(n->l, nw, old) / d;
    }
    }
}

double rx_side_value(const rollout_expr *e, int side, const rollout_sample *nw,
                     const rollout_sample *old)
{
    return eval(e->side[side], nw, old);
}

void rx_format(double v, int dim, char *buf, size_t n)
{
    if (isnan(v)) {
        snprintf(buf, n, "n/a");
        return;
    }
    switch (dim) {
    case RX_RATIO: snprintf(buf, n, "%.3g%%", v * 100); break;
    case RX_TIME: snprintf(buf, n, "%.1fms", v); break;
    case RX_RATE: snprintf(buf, n, "%.2f/s", v); break;
    case RX_COUNT: snprintf(buf, n, "%.0f", v); break;
    default: snprintf(buf, n, "%.4g", v); break;
    }
}
