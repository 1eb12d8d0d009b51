/* loadtest/jsonpath.c: the JSONPath subset of captures (script.h,
 * "JSONPath subset"), over jansson values.
 *
 * Syntax: an optional leading `$` (a path without it, such as "data[0].id",
 * is read from the root, as jsonpath-plus does), then steps:
 *     .name  ['name']  ["name"]   a member (dot names run to the next . or [)
 *     [n]  [-n]                   an element; negative counts from the end
 *     [*]  .*                     every member value / element
 *     [a:b]  [a:b:step]           a slice (Python bounds, step > 0)
 *     ..name  ..*  ..[...]        the step applied to the node and all its
 *                                 descendants, pre-order (document order)
 * As in jsonpath-plus, a member name that is all digits also indexes an
 * array ($.data.0.id) and `length` of an array is its size. Differences, on
 * purpose: [-1] is the last element (jsonpath-plus finds nothing); filters
 * [?(...)], scripts [(...)] and unions [a,b] are rejected at compile time
 * with the column, so a capture that could never work fails at load.
 * Matches come in document order; object members in jansson's (insertion)
 * order.
 * Thread rules: a compiled path is immutable; query from any thread (the
 * document must not be shared mutably).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadtest/script.h"

typedef enum { JP_KEY, JP_INDEX, JP_WILD, JP_SLICE } jp_kind;

typedef struct jp_step {
    jp_kind kind;
    bool recursive;         /* reached through `..` */
    char *key;              /* JP_KEY */
    long long index;        /* JP_INDEX */
    long long start, end, step; /* JP_SLICE */
    bool has_start, has_end;
} jp_step;

struct lt_jsonpath {
    jp_step *steps;
    size_t n;
    bool plain; /* members and indexes only (lt_jsonpath_plain), set once compiled */
};

/* ---- compile ---------------------------------------------------------------------- */
typedef struct jp_parser {
    const char *s;
    size_t i;
    char *err;
    lt_jsonpath *p;
} jp_parser;

static bool jerr(jp_parser *q, size_t col0, const char *fmt, ...) CU_PRINTF(3, 4);
static bool jerr(jp_parser *q, size_t col0, const char *fmt, ...)
{
    int off = snprintf(q->err, CU_ERRLEN, "column %zu: ", col0 + 1);
    va_list ap;
    va_start(ap, fmt);
    if (off > 0 && off < CU_ERRLEN)
        vsnprintf(q->err + off, CU_ERRLEN - (size_t)off, fmt, ap);
    va_end(ap);
    return false;
}

static jp_step *add_step(jp_parser *q, jp_kind kind, bool recursive)
{
    lt_jsonpath *p = q->p;
    p->steps = cu_realloc(p->steps, (p->n + 1) * sizeof *p->steps);
    jp_step *st = &p->steps[p->n++];
    memset(st, 0, sizeof *st);
    st->kind = kind;
    st->recursive = recursive;
    return st;
}

static void skip_ws(jp_parser *q)
{
    while (q->s[q->i] == ' ' || q->s[q->i] == '\t')
        q->i++;
}

/* An optionally signed decimal integer; false when there is none. */
static bool read_int(jp_parser *q, long long *out)
{
    const char *s = q->s + q->i;
    size_t k = (s[0] == '-' || s[0] == '+') ? 1 : 0;
    if (!(s[k] >= '0' && s[k] <= '9'))
        return false;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (v == LLONG_MAX || v == LLONG_MIN) /* absurd, keep it in range */
        v = v > 0 ? LLONG_MAX / 2 : LLONG_MIN / 2;
    *out = v;
    q->i += (size_t)(end - s);
    return true;
}

/* A dot name: runs to the next '.', '[' or the end. */
static bool parse_dot_name(jp_parser *q, bool recursive)
{
    size_t start = q->i;
    if (q->s[q->i] == '*') {
        q->i++;
        add_step(q, JP_WILD, recursive);
        return true;
    }
    while (q->s[q->i] && q->s[q->i] != '.' && q->s[q->i] != '[' && q->s[q->i] != ']')
        q->i++;
    if (q->i == start)
        return jerr(q, start, "expected a name or '*' after '%s'", recursive ? ".." : ".");
    if (q->s[q->i] == ']')
        return jerr(q, q->i, "unexpected ']'");
    add_step(q, JP_KEY, recursive)->key = cu_strndup(q->s + start, q->i - start);
    return true;
}

static bool parse_quoted(jp_parser *q, bool recursive)
{
    char quote = q->s[q->i];
    size_t open = q->i;
    cu_buf b = CU_BUF_INIT;
    cu_buf_appends(&b, "");
    for (q->i++; q->s[q->i] && q->s[q->i] != quote; q->i++) {
        if (q->s[q->i] == '\\' && q->s[q->i + 1])
            q->i++;
        cu_buf_appendc(&b, q->s[q->i]);
    }
    if (!q->s[q->i]) {
        cu_buf_free(&b);
        return jerr(q, open, "unterminated quoted name");
    }
    q->i++;
    add_step(q, JP_KEY, recursive)->key = cu_buf_steal(&b);
    return true;
}

/* After '[': index, slice, '*' or a quoted name, then ']'. */
static bool parse_bracket(jp_parser *q, bool recursive)
{
    size_t open = q->i - 1;
    skip_ws(q);
    char c = q->s[q->i];
    if (c == '?')
        return jerr(q, open, "filter expressions ([?(...)]) are not supported");
    if (c == '(')
        return jerr(q, open, "script expressions ([(...)]) are not supported");
    if (c == '*') {
        q->i++;
        add_step(q, JP_WILD, recursive);
    } else if (c == '\'' || c == '"') {
        if (!parse_quoted(q, recursive))
            return false;
    } else {
        long long a = 0, b = 0, step = 1;
        bool has_a = read_int(q, &a);
        skip_ws(q);
        if (q->s[q->i] == ':') {
            q->i++;
            skip_ws(q);
            bool has_b = read_int(q, &b);
            skip_ws(q);
            if (q->s[q->i] == ':') {
                q->i++;
                skip_ws(q);
                size_t at = q->i;
                if (read_int(q, &step) && step <= 0)
                    return jerr(q, at, "a slice step must be positive");
            }
            jp_step *st = add_step(q, JP_SLICE, recursive);
            st->start = a, st->has_start = has_a;
            st->end = b, st->has_end = has_b;
            st->step = step;
        } else if (has_a) {
            add_step(q, JP_INDEX, recursive)->index = a;
        } else {
            return jerr(q, q->i, "expected an index, a slice, '*' or a quoted name after '['");
        }
    }
    skip_ws(q);
    if (q->s[q->i] == ',')
        return jerr(q, q->i, "unions ([a,b]) are not supported");
    if (q->s[q->i] != ']')
        return jerr(q, q->i, "expected ']' to close the '[' at column %zu", open + 1);
    q->i++;
    return true;
}

lt_jsonpath *lt_jsonpath_compile(const char *expr, char err[CU_ERRLEN])
{
    jp_parser q = {.s = expr ? expr : "", .err = err, .p = cu_calloc(1, sizeof(lt_jsonpath))};
    err[0] = 0;
    skip_ws(&q);
    if (q.s[q.i] == '$') {
        q.i++;
    } else if (q.s[q.i] && q.s[q.i] != '.' && q.s[q.i] != '[') {
        if (!parse_dot_name(&q, false)) /* "data[0].id" reads as "$.data[0].id" */
            goto fail;
    } else if (!q.s[q.i]) {
        jerr(&q, q.i, "empty path");
        goto fail;
    }
    while (q.s[q.i]) {
        char c = q.s[q.i];
        if (c == '.' && q.s[q.i + 1] == '.') {
            q.i += 2;
            if (q.s[q.i] == '[') {
                q.i++;
                if (!parse_bracket(&q, true))
                    goto fail;
            } else if (q.s[q.i] == '.') {
                jerr(&q, q.i, "expected a name, '*' or '[' after '..'");
                goto fail;
            } else if (!parse_dot_name(&q, true)) {
                goto fail;
            }
        } else if (c == '.') {
            q.i++;
            if (!parse_dot_name(&q, false))
                goto fail;
        } else if (c == '[') {
            q.i++;
            if (!parse_bracket(&q, false))
                goto fail;
        } else {
            jerr(&q, q.i, "expected '.' or '[', found '%c'", c);
            goto fail;
        }
    }
    q.p->plain = true;
    for (size_t i = 0; i < q.p->n; i++)
        if (q.p->steps[i].recursive || (q.p->steps[i].kind != JP_KEY && q.p->steps[i].kind != JP_INDEX))
            q.p->plain = false;
    return q.p;
fail:
    lt_jsonpath_free(q.p);
    return NULL;
}

void lt_jsonpath_free(lt_jsonpath *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        free(p->steps[i].key);
    free(p->steps);
    free(p);
}

bool lt_jsonpath_plain(const lt_jsonpath *p)
{
    return p && p->plain;
}

size_t lt_jsonpath_nsteps(const lt_jsonpath *p)
{
    return p ? p->n : 0;
}

bool lt_jsonpath_step(const lt_jsonpath *p, size_t i, const char **key, long long *index)
{
    *key = p->steps[i].key;
    *index = p->steps[i].index;
    return p->steps[i].kind == JP_INDEX;
}

/* ---- query -------------------------------------------------------------------------- */
typedef struct jp_run {
    const lt_jsonpath *p;
    json_t *out;
    size_t count;
} jp_run;

static void apply(jp_run *r, size_t step, json_t *v);

static void emit(jp_run *r, size_t step, json_t *v)
{
    if (v)
        apply(r, step + 1, v);
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* Applies step `step`'s selector to v alone, continuing with its matches. */
static void select_from(jp_run *r, size_t step, json_t *v)
{
    const jp_step *st = &r->p->steps[step];
    switch (st->kind) {
    case JP_KEY:
        if (json_is_object(v)) {
            emit(r, step, json_object_get(v, st->key));
        } else if (json_is_array(v) && all_digits(st->key)) {
            emit(r, step, json_array_get(v, strtoull(st->key, NULL, 10)));
        } else if (json_is_array(v) && strcmp(st->key, "length") == 0) {
            json_t *len = json_integer((json_int_t)json_array_size(v));
            emit(r, step, len);
            json_decref(len);
        }
        return;
    case JP_INDEX:
        if (json_is_array(v)) {
            long long n = (long long)json_array_size(v), i = st->index < 0 ? st->index + n : st->index;
            if (i >= 0 && i < n)
                emit(r, step, json_array_get(v, (size_t)i));
        } else if (json_is_object(v)) {
            char key[32];
            snprintf(key, sizeof key, "%lld", st->index);
            emit(r, step, json_object_get(v, key));
        }
        return;
    case JP_WILD:
        if (json_is_array(v)) {
            for (size_t i = 0; i < json_array_size(v); i++)
                emit(r, step, json_array_get(v, i));
        } else if (json_is_object(v)) {
            const char *k;
            json_t *m;
            json_object_foreach(v, k, m)
                emit(r, step, m);
        }
        return;
    case JP_SLICE: {
        if (!json_is_array(v))
            return;
        long long n = (long long)json_array_size(v);
        long long a = st->has_start ? st->start : 0, b = st->has_end ? st->end : n;
        a = a < 0 ? CU_MAX(0, a + n) : CU_MIN(n, a);
        b = b < 0 ? CU_MAX(0, b + n) : CU_MIN(n, b);
        for (long long i = a; i < b; i += st->step)
            emit(r, step, json_array_get(v, (size_t)i));
        return;
    }
    }
}

/* `..`: the selector on v, then on every descendant, pre-order. */
static void descend(jp_run *r, size_t step, json_t *v)
{
    select_from(r, step, v);
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            descend(r, step, json_array_get(v, i));
    } else if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach(v, k, m)
            descend(r, step, m);
    }
}

static void apply(jp_run *r, size_t step, json_t *v)
{
    if (step == r->p->n) {
        json_array_append(r->out, v);
        r->count++;
        return;
    }
    if (r->p->steps[step].recursive)
        descend(r, step, v);
    else
        select_from(r, step, v);
}

size_t lt_jsonpath_query(const lt_jsonpath *p, json_t *doc, json_t *out)
{
    if (!p || !doc || !json_is_array(out))
        return 0;
    jp_run r = {.p = p, .out = out};
    apply(&r, 0, doc);
    return r.count;
}
