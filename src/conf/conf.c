/* conf: YAML/JSON documents -> conf_node trees that remember positions.
 *
 * Parsing goes through libyaml's event API: every event's start_mark (0-based)
 * becomes the node's 1-based line/col, so an error about any value can name
 * file:line:column. The builder keeps a stack of open collections; a node is
 * attached to its parent when it is complete.
 *
 * Semantics (as js-yaml's safeLoad, which Artillery uses, except that plain
 * scalars follow YAML 1.2's core schema):
 *  - plain scalars are typed (null, bool, int incl. 0x/0o, float incl.
 *    .inf/.nan); quoted and block scalars are strings; !!str forces a string;
 *  - anchors are recorded as a private copy when their node completes, and an
 *    alias gets a fresh clone (positioned at the alias). Expansion is capped
 *    (CONF_MAX_ALIAS_NODES) so a "billion laughs" document fails cleanly;
 *  - `<<` (plain) merges a map or a list of maps: explicit keys win, and of
 *    several merged maps the earlier wins;
 *  - a key given twice in one map is an error naming both positions (as
 *    js-yaml's "duplicated mapping key"); one document per stream;
 *  - nesting deeper than CONF_MAX_DEPTH is refused (every walk is recursive).
 *
 * The file name is shared by all nodes of a document through a small
 * reference-counted block, so subtrees may be cloned, merged into other trees
 * and outlive the document they came from. Nodes made by conf_new_* use a
 * static "<cli>" name and are not positioned (line 0).
 * Thread rules: a tree belongs to one thread at a time; the shared name's
 * count is atomic, so separate trees cloned from one may live on different
 * threads.
 */
#include "conf/conf.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define CONF_MAX_DEPTH 512
#define CONF_MAX_ALIAS_NODES 1000000

/* ---- shared file names ---------------------------------------------------- */
typedef struct fname {
    atomic_size_t refs;
    char name[];
} fname;

static const char cli_name[] = "<cli>";

static const char *fname_new(const char *name)
{
    size_t len = strlen(name);
    fname *f = cu_malloc(sizeof *f + len + 1);
    atomic_init(&f->refs, 1);
    memcpy(f->name, name, len + 1);
    return f->name;
}

static fname *fname_of(const char *file)
{
    return (fname *)(void *)((char *)(uintptr_t)file - offsetof(fname, name));
}

static const char *fname_ref(const char *file)
{
    if (file && file != cli_name)
        atomic_fetch_add(&fname_of(file)->refs, 1);
    return file;
}

static void fname_unref(const char *file)
{
    if (!file || file == cli_name)
        return;
    fname *f = fname_of(file);
    if (atomic_fetch_sub(&f->refs, 1) == 1)
        free(f);
}

/* ---- nodes --------------------------------------------------------------------- */
static conf_node *node_new(conf_type t, const char *file, int line, int col)
{
    conf_node *n = cu_calloc(1, sizeof *n);
    n->type = t;
    n->file = fname_ref(file);
    n->line = line;
    n->col = col;
    return n;
}

/* Frees what n owns but not n itself. */
static void node_release(conf_node *n)
{
    for (size_t i = 0; i < n->n; i++) {
        conf_free(n->items[i]);
        if (n->keys)
            conf_free(n->keys[i]);
    }
    free(n->items);
    free(n->keys);
    free(n->str);
    fname_unref(n->file);
}

void conf_free(conf_node *n)
{
    if (!n)
        return;
    node_release(n);
    free(n);
}

conf_node *conf_clone(const conf_node *n)
{
    if (!n)
        return NULL;
    conf_node *c = node_new(n->type, n->file, n->line, n->col);
    c->str = n->str ? cu_strdup(n->str) : NULL;
    c->quote = n->quote;
    c->b = n->b;
    c->i = n->i;
    c->f = n->f;
    c->n = n->n;
    if (n->n) {
        c->items = cu_malloc(n->n * sizeof *c->items);
        if (n->keys)
            c->keys = cu_malloc(n->n * sizeof *c->keys);
        for (size_t i = 0; i < n->n; i++) {
            c->items[i] = conf_clone(n->items[i]);
            if (n->keys)
                c->keys[i] = conf_clone(n->keys[i]);
        }
    }
    return c;
}

static size_t node_count(const conf_node *n)
{
    size_t total = 1;
    for (size_t i = 0; i < n->n; i++)
        total += node_count(n->items[i]) + (n->keys ? 1 : 0);
    return total;
}

/* Appends (key may be NULL for sequences); capacity grows by powers of two. */
static void node_push(conf_node *n, conf_node *key, conf_node *item)
{
    if ((n->n & (n->n - 1)) == 0) { /* n is 0 or a power of two: grow */
        size_t cap = n->n ? n->n * 2 : 4;
        n->items = cu_realloc(n->items, cap * sizeof *n->items);
        if (n->type == CONF_MAP)
            n->keys = cu_realloc(n->keys, cap * sizeof *n->keys);
    }
    if (n->type == CONF_MAP)
        n->keys[n->n] = key;
    n->items[n->n++] = item;
}

conf_node *conf_new_string(const char *s)
{
    conf_node *n = node_new(CONF_STRING, cli_name, 0, 0);
    n->str = cu_strdup(s);
    return n;
}

conf_node *conf_new_map(void)
{
    return node_new(CONF_MAP, cli_name, 0, 0);
}

conf_node *conf_get(const conf_node *map, const char *key)
{
    if (!map || map->type != CONF_MAP || !key)
        return NULL;
    for (size_t i = map->n; i-- > 0;)
        if (strcmp(map->keys[i]->str, key) == 0)
            return map->items[i];
    return NULL;
}

const char *conf_key(const conf_node *map, size_t i)
{
    if (!map || map->type != CONF_MAP || i >= map->n)
        return NULL;
    return map->keys[i]->str;
}

static ssize_t map_index(const conf_node *map, const char *key)
{
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->keys[i]->str, key) == 0)
            return (ssize_t)i;
    return -1;
}

void conf_set(conf_node *map, const char *key, conf_node *value)
{
    if (!value)
        value = node_new(CONF_NULL, cli_name, 0, 0);
    if (!map || map->type != CONF_MAP || !key) {
        conf_free(value);
        return;
    }
    ssize_t i = map_index(map, key);
    if (i >= 0) {
        conf_free(map->items[i]);
        map->items[i] = value;
        return;
    }
    conf_node *k = node_new(CONF_STRING, value->file, value->line, value->col);
    k->str = cu_strdup(key);
    node_push(map, k, value);
}

/* ---- scalars -------------------------------------------------------------------- */
bool conf_is_scalar(const conf_node *n)
{
    return n && n->type != CONF_SEQ && n->type != CONF_MAP;
}

bool conf_number(const conf_node *n, double *out)
{
    if (!n)
        return false;
    if (n->type == CONF_INT || n->type == CONF_FLOAT) {
        *out = n->f;
        return true;
    }
    if (n->type != CONF_STRING || !n->str)
        return false;
    const char *s = n->str;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    if (!*s)
        return false;
    for (const char *p = s; *p; p++) /* strtod's inf/nan/hex-float forms are not numbers here */
        if (strchr("iInNpP", *p))
            return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')
        end++;
    if (end == s || *end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

bool conf_duration_ms(const conf_node *n, uint64_t *out_ms)
{
    double v, mult = 1000;
    if (!n)
        return false;
    if (n->type == CONF_INT || n->type == CONF_FLOAT) {
        v = n->f;
    } else if (n->type == CONF_STRING && n->str) {
        const char *s = n->str;
        size_t digits = strspn(s, "0123456789.eE+-"); /* no inf, nan or hex forms */
        char *end;
        v = strtod(s, &end);
        if (digits == 0 || end == s || end > s + digits)
            return false;
        if (!*end || !strcmp(end, "s"))
            mult = 1000;
        else if (!strcmp(end, "ms"))
            mult = 1;
        else if (!strcmp(end, "m") || !strcmp(end, "min"))
            mult = 60000;
        else if (!strcmp(end, "h"))
            mult = 3600000;
        else if (!strcmp(end, "d"))
            mult = 86400000;
        else
            return false;
    } else {
        return false;
    }
    v *= mult;
    if (!isfinite(v) || v < 0 || v > 1e15)
        return false;
    *out_ms = (uint64_t)llround(v);
    return true;
}

const char *conf_type_name(conf_type t)
{
    switch (t) {
    case CONF_NULL: return "null";
    case CONF_BOOL: return "boolean";
    case CONF_INT: return "integer";
    case CONF_FLOAT: return "number";
    case CONF_STRING: return "string";
    case CONF_SEQ: return "list";
    case CONF_MAP: return "map";
    }
    return "?";
}

static bool all_in(const char *s, const char *set)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!strchr(set, *s))
            return false;
    return true;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool is_core_float(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    size_t digits = 0;
    while (*s >= '0' && *s <= '9')
        s++, digits++;
    if (*s == '.') {
        s++;
        size_t frac = 0;
        while (*s >= '0' && *s <= '9')
            s++, frac++;
        if (!digits && !frac)
            return false;
    } else if (!digits) {
        return false;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == 0;
}

/* An integer scalar: `approx` is used when the magnitude does not fit. */
static void set_int(conf_node *n, unsigned long long mag, bool neg, bool overflow, double approx)
{
    if (overflow || mag > (unsigned long long)LLONG_MAX + (neg ? 1u : 0u)) {
        n->type = CONF_FLOAT; /* as JavaScript would hold it */
        n->f = neg ? -approx : approx;
        return;
    }
    n->type = CONF_INT;
    n->i = neg ? (long long)(0 - mag) : (long long)mag;
    n->f = (double)n->i;
}

static double digits_value(const char *s, int base)
{
    double v = 0;
    for (; *s; s++)
        v = v * base + (double)(*s <= '9' ? *s - '0' : (*s | 0x20) - 'a' + 10);
    return v;
}

/* Types a plain scalar by YAML 1.2's core schema; n->str holds the text. */
static void resolve_plain(conf_node *n)
{
    const char *s = n->str;
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    static const char *const trues[] = {"true", "True", "TRUE"};
    static const char *const falses[] = {"false", "False", "FALSE"};
    n->type = CONF_STRING;
    for (size_t i = 0; i < CU_ARRAY_LEN(nulls); i++)
        if (strcmp(s, nulls[i]) == 0) {
            n->type = CONF_NULL;
            return;
        }
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(s, trues[i]) == 0 || strcmp(s, falses[i]) == 0) {
            n->type = CONF_BOOL;
            n->b = s[0] == 't' || s[0] == 'T';
            return;
        }
    }
    if ((s[0] == '0' && s[1] == 'x' && all_in(s + 2, "0123456789abcdefABCDEF")) ||
        (s[0] == '0' && s[1] == 'o' && all_in(s + 2, "01234567"))) {
        int base = s[1] == 'x' ? 16 : 8;
        errno = 0;
        unsigned long long v = strtoull(s + 2, NULL, base);
        set_int(n, v, false, errno == ERANGE, digits_value(s + 2, base));
        return;
    }
    const char *d = s + (s[0] == '-' || s[0] == '+');
    if (all_in(d, "0123456789")) {
        errno = 0;
        unsigned long long v = strtoull(d, NULL, 10);
        set_int(n, v, s[0] == '-', errno == ERANGE, strtod(d, NULL));
        return;
    }
    if (is_core_float(s)) {
        n->type = CONF_FLOAT;
        n->f = strtod(s, NULL);
        return;
    }
    if (strcmp(d, ".inf") == 0 || strcmp(d, ".Inf") == 0 || strcmp(d, ".INF") == 0) {
        n->type = CONF_FLOAT;
        n->f = s[0] == '-' ? -INFINITY : INFINITY;
        return;
    }
    if (strcmp(s, ".nan") == 0 || strcmp(s, ".NaN") == 0 || strcmp(s, ".NAN") == 0) {
        n->type = CONF_FLOAT;
        n->f = NAN;
    }
}

/* ---- messages -------------------------------------------------------------------- */
static void vpos_format(char *out, size_t cap, const conf_node *at, const char *fmt, va_list ap)
{
    int off = 0;
    if (at && at->file && at->line > 0)
        off = snprintf(out, cap, "%s:%d:%d: ", at->file, at->line, at->col);
    else if (at && at->file && at->file != cli_name)
        off = snprintf(out, cap, "%s: ", at->file);
    if (off < 0 || (size_t)off >= cap)
        return;
    vsnprintf(out + off, cap - (size_t)off, fmt, ap);
}

void conf_errf(char err[CU_ERRLEN], const conf_node *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vpos_format(err, CU_ERRLEN, at, fmt, ap);
    va_end(ap);
}

void conf_warnf(const conf_node *at, const char *fmt, ...)
{
    char msg[CU_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vpos_format(msg, sizeof msg, at, fmt, ap);
    va_end(ap);
    cu_warn("%s", msg);
}

size_t conf_check_keys(const conf_node *map, const char *const *allowed, size_t nallowed,
                       const char *where)
{
    if (!map || map->type != CONF_MAP)
        return 0;
    size_t unknown = 0;
    for (size_t i = 0; i < map->n; i++) {
        const char *k = map->keys[i]->str;
        bool ok = false;
        for (size_t j = 0; j < nallowed && !ok; j++)
            ok = strcmp(k, allowed[j]) == 0;
        if (ok)
            continue;
        unknown++;
        const char *near = cu_nearest(k, allowed, nallowed);
        if (near)
            conf_warnf(map->keys[i], "unknown key '%s' in %s (did you mean '%s'?)", k, where, near);
        else
            conf_warnf(map->keys[i], "unknown key '%s' in %s", k, where);
    }
    return unknown;
}

/* ---- key index -------------------------------------------------------------------- */
/* An open-addressing hash of a map's keys (slots hold index+1), built only
 * once the map has 8 keys, so that duplicate checks while parsing and
 * conf_merge stay linear on big maps. Valid while the map only grows through
 * node_push followed by keyidx_added. */
typedef struct keyidx {
    size_t *slots;
    size_t cap;
} keyidx;

static size_t hash_str(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void keyidx_put(keyidx *x, const conf_node *m, size_t i)
{
    size_t mask = x->cap - 1;
    size_t h = hash_str(m->keys[i]->str) & mask;
    while (x->slots[h])
        h = (h + 1) & mask;
    x->slots[h] = i + 1;
}

/* Index of key in map m, or -1. */
static ssize_t keyidx_find(keyidx *x, const conf_node *m, const char *key)
{
    if (m->n < 8)
        return map_index(m, key);
    if (x->cap < m->n * 2) {
        free(x->slots);
        x->cap = 16;
        while (x->cap < m->n * 4)
            x->cap *= 2;
        x->slots = cu_calloc(x->cap, sizeof *x->slots);
        for (size_t i = 0; i < m->n; i++)
            keyidx_put(x, m, i);
    }
    size_t mask = x->cap - 1;
    for (size_t h = hash_str(key) & mask; x->slots[h]; h = (h + 1) & mask)
        if (strcmp(m->keys[x->slots[h] - 1]->str, key) == 0)
            return (ssize_t)(x->slots[h] - 1);
    return -1;
}

/* Call after node_push on m. */
static void keyidx_added(keyidx *x, const conf_node *m)
{
    if (!x->slots)
        return;
    if (x->cap >= m->n * 2) {
        keyidx_put(x, m, m->n - 1);
    } else { /* the next find rebuilds it bigger */
        free(x->slots);
        x->slots = NULL;
        x->cap = 0;
    }
}

/* ---- merge ------------------------------------------------------------------------ */
/* dst becomes a copy of src (same pointer, so parents need no update). */
static void replace_in_place(conf_node *dst, const conf_node *src)
{
    conf_node *c = conf_clone(src);
    node_release(dst);
    *dst = *c;
    free(c);
}

static bool mergeable(const conf_node *d, const conf_node *s, bool arrays_replace)
{
    return (d->type == CONF_MAP && s->type == CONF_MAP) ||
           (!arrays_replace && d->type == CONF_SEQ && s->type == CONF_SEQ);
}

void conf_merge(conf_node *dst, const conf_node *src, bool arrays_replace)
{
    if (!dst || !src)
        return;
    if (dst->type == CONF_MAP && src->type == CONF_MAP) {
        keyidx x = {NULL, 0};
        for (size_t i = 0; i < src->n; i++) {
            ssize_t j = keyidx_find(&x, dst, src->keys[i]->str);
            if (j < 0) {
                node_push(dst, conf_clone(src->keys[i]), conf_clone(src->items[i]));
                keyidx_added(&x, dst);
            } else if (mergeable(dst->items[j], src->items[i], arrays_replace))
                conf_merge(dst->items[j], src->items[i], arrays_replace);
            else
                replace_in_place(dst->items[j], src->items[i]);
        }
        free(x.slots);
        return;
    }
    if (!arrays_replace && dst->type == CONF_SEQ && src->type == CONF_SEQ) {
        for (size_t i = 0; i < src->n; i++) {
            if (i >= dst->n)
                node_push(dst, NULL, conf_clone(src->items[i]));
            else if (mergeable(dst->items[i], src->items[i], false))
                conf_merge(dst->items[i], src->items[i], false);
            else
                replace_in_place(dst->items[i], src->items[i]);
        }
        return;
    }
    replace_in_place(dst, src);
}

/* ---- the builder ------------------------------------------------------------------- */
typedef struct frame {
    conf_node *node;
    conf_node *key;        /* map: a key waiting for its value */
    bool key_merges;       /* that key is `<<` */
    char *anchor;          /* recorded when the node completes */
    conf_node **merges;    /* map: sources of `<<`, applied at the end */
    size_t nmerges;
    keyidx idx;            /* map: its keys, for duplicates and merges */
} frame;

typedef struct anchor {
    char *name;
    conf_node *node;       /* a private copy */
    size_t count;          /* its node count, for the expansion budget */
} anchor;

typedef struct builder {
    const char *text;
    size_t len;
    const char *file;      /* shared name (one reference held) */
    char *err;
    frame *st;
    size_t depth, cap;
    anchor *anchors;
    size_t nanchors;
    size_t alias_nodes;
    conf_node *root;
    int docs;
} builder;

static void berr(builder *b, int line, int col, const char *fmt, ...) CU_PRINTF(4, 5);
static void berr(builder *b, int line, int col, const char *fmt, ...)
{
    int off = snprintf(b->err, CU_ERRLEN, "%s:%d:%d: ", b->file, line, col);
    va_list ap;
    va_start(ap, fmt);
    if (off > 0 && off < CU_ERRLEN)
        vsnprintf(b->err + off, CU_ERRLEN - (size_t)off, fmt, ap);
    va_end(ap);
}

static ssize_t frame_find(frame *f, const char *key)
{
    return keyidx_find(&f->idx, f->node, key);
}

static void frame_push_item(frame *f, conf_node *key, conf_node *item)
{
    node_push(f->node, key, item);
    keyidx_added(&f->idx, f->node);
}

static void frame_release(frame *f)
{
    conf_free(f->node);
    conf_free(f->key);
    free(f->anchor);
    for (size_t i = 0; i < f->nmerges; i++)
        conf_free(f->merges[i]);
    free(f->merges);
    free(f->idx.slots);
}

static void record_anchor(builder *b, const char *name, const conf_node *n)
{
    if (!name)
        return;
    if ((b->nanchors & (b->nanchors - 1)) == 0)
        b->anchors = cu_realloc(b->anchors, (b->nanchors ? b->nanchors * 2 : 4) * sizeof *b->anchors);
    anchor *a = &b->anchors[b->nanchors++];
    a->name = cu_strdup(name);
    a->node = conf_clone(n);
    a->count = node_count(n);
}

static void add_merge_source(frame *f, conf_node *m)
{
    f->merges = cu_realloc(f->merges, (f->nmerges + 1) * sizeof *f->merges);
    f->merges[f->nmerges++] = m;
}

/* Attaches a complete node to the open collection (or makes it the root).
 * Takes ownership of n in every case. Returns false with b->err set. */
static bool attach(builder *b, conf_node *n, bool plain_merge_key)
{
    if (b->depth == 0) {
        b->root = n;
        return true;
    }
    frame *f = &b->st[b->depth - 1];
    if (f->node->type == CONF_SEQ) {
        node_push(f->node, NULL, n);
        return true;
    }
    if (!f->key) {
        if (!conf_is_scalar(n)) {
            berr(b, n->line, n->col, "a %s cannot be a mapping key", conf_type_name(n->type));
            conf_free(n);
            return false;
        }
        if (!n->str)
            n->str = cu_strdup("");
        f->key = n;
        f->key_merges = plain_merge_key;
        return true;
    }
    conf_node *key = f->key;
    f->key = NULL;
    if (f->key_merges) {
        if (n->type == CONF_MAP) {
            add_merge_source(f, n);
        } else if (n->type == CONF_SEQ) {
            for (size_t i = 0; i < n->n; i++) {
                if (n->items[i]->type != CONF_MAP) {
                    berr(b, n->items[i]->line, n->items[i]->col,
                         "merge key '<<' expects a map or a list of maps, found a %s in the list",
                         conf_type_name(n->items[i]->type));
                    conf_free(key);
                    conf_free(n);
                    return false;
                }
            }
            for (size_t i = 0; i < n->n; i++) {
                add_merge_source(f, n->items[i]);
                n->items[i] = NULL;
            }
            n->n = 0;
            conf_free(n);
        } else {
            berr(b, n->line, n->col, "merge key '<<' expects a map or a list of maps, found a %s",
                 conf_type_name(n->type));
            conf_free(key);
            conf_free(n);
            return false;
        }
        conf_free(key);
        return true;
    }
    ssize_t dup = frame_find(f, key->str);
    if (dup >= 0) {
        const conf_node *first = f->node->keys[dup];
        berr(b, key->line, key->col, "duplicated mapping key '%s' (first defined at line %d, column %d)",
             key->str, first->line, first->col);
        conf_free(key);
        conf_free(n);
        return false;
    }
    frame_push_item(f, key, n);
    return true;
}

/* Closes the innermost collection: applies `<<` sources, records the anchor,
 * attaches the node to its parent. */
static bool close_frame(builder *b)
{
    frame f = b->st[--b->depth];
    for (size_t s = 0; s < f.nmerges; s++) {
        conf_node *m = f.merges[s];
        for (size_t i = 0; i < m->n; i++) {
            if (frame_find(&f, m->keys[i]->str) >= 0)
                continue;
            frame_push_item(&f, m->keys[i], m->items[i]);
            m->keys[i] = m->items[i] = NULL;
        }
        for (size_t i = 0; i < m->n; i++) { /* what was not moved */
            conf_free(m->keys[i]);
            conf_free(m->items[i]);
        }
        m->n = 0;
        conf_free(m);
    }
    free(f.merges);
    free(f.idx.slots);
    record_anchor(b, f.anchor, f.node);
    free(f.anchor);
    return attach(b, f.node, false);
}

static bool open_frame(builder *b, conf_type t, const yaml_event_t *ev, const char *anchor_name)
{
    if (b->depth >= CONF_MAX_DEPTH) {
        berr(b, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
             "nesting deeper than %d levels", CONF_MAX_DEPTH);
        return false;
    }
    if (b->depth == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->st = cu_realloc(b->st, b->cap * sizeof *b->st);
    }
    frame *f = &b->st[b->depth++];
    memset(f, 0, sizeof *f);
    f->node = node_new(t, b->file, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1);
    f->anchor = anchor_name ? cu_strdup(anchor_name) : NULL;
    return true;
}

static bool check_tag(builder *b, const yaml_event_t *ev, const char *tag, const char *const *ok, size_t nok)
{
    if (!tag)
        return true;
    for (size_t i = 0; i < nok; i++)
        if (strcmp(tag, ok[i]) == 0)
            return true;
    berr(b, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1, "unsupported tag '%s'", tag);
    return false;
}

#define YTAG "tag:yaml.org,2002:"

static bool on_scalar(builder *b, const yaml_event_t *ev)
{
    const char *tag = (const char *)ev->data.scalar.tag;
    static const char *const tags[] = {"!", YTAG "str", YTAG "null", YTAG "bool", YTAG "int", YTAG "float"};
    if (!check_tag(b, ev, tag, tags, CU_ARRAY_LEN(tags)))
        return false;
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    conf_node *n = node_new(CONF_STRING, b->file, line, col);
    n->str = cu_strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
    bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    if (ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE)
        n->quote = '\'';
    else if (ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE)
        n->quote = '"';
    if (tag && strcmp(tag, "!") != 0 && strcmp(tag, YTAG "str") != 0) {
        resolve_plain(n);
        const char *want = tag + strlen(YTAG);
        bool match = (strcmp(want, "null") == 0 && n->type == CONF_NULL) ||
                     (strcmp(want, "bool") == 0 && n->type == CONF_BOOL) ||
                     (strcmp(want, "int") == 0 && n->type == CONF_INT) ||
                     (strcmp(want, "float") == 0 && (n->type == CONF_FLOAT || n->type == CONF_INT));
        if (!match) {
            berr(b, line, col, "cannot read '%s' as !!%s", n->str, want);
            conf_free(n);
            return false;
        }
        if (strcmp(want, "float") == 0)
            n->type = CONF_FLOAT;
    } else if (plain && !tag) {
        resolve_plain(n);
    }
    record_anchor(b, (const char *)ev->data.scalar.anchor, n);
    return attach(b, n, plain && !tag && strcmp(n->str, "<<") == 0);
}

static bool on_alias(builder *b, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    int line = (int)ev->start_mark.line + 1, col = (int)ev->start_mark.column + 1;
    for (size_t i = b->nanchors; i-- > 0;) {
        anchor *a = &b->anchors[i];
        if (strcmp(a->name, name) != 0)
            continue;
        b->alias_nodes += a->count;
        if (b->alias_nodes > CONF_MAX_ALIAS_NODES) {
            berr(b, line, col, "aliases expand to more than %d nodes", CONF_MAX_ALIAS_NODES);
            return false;
        }
        conf_node *c = conf_clone(a->node);
        c->line = line;
        c->col = col;
        return attach(b, c, false);
    }
    berr(b, line, col, "unknown alias '*%s'", name);
    return false;
}

static void parser_error(builder *b, const yaml_parser_t *p)
{
    const char *problem = p->problem ? p->problem : "cannot parse";
    if (p->error == YAML_MEMORY_ERROR) {
        snprintf(b->err, CU_ERRLEN, "%s: out of memory while parsing", b->file);
        return;
    }
    if (p->error == YAML_READER_ERROR) {
        int line = 1, col = 1;
        for (size_t i = 0; i < p->problem_offset && i < b->len; i++) {
            if (b->text[i] == '\n')
                line++, col = 1;
            else if (((unsigned char)b->text[i] & 0xC0) != 0x80)
                col++;
        }
        if (p->problem_value != -1)
            berr(b, line, col, "%s (byte 0x%02x)", problem, (unsigned)p->problem_value);
        else
            berr(b, line, col, "%s", problem);
        return;
    }
    yaml_mark_t m = p->problem_mark, c = p->context_mark;
    const char *hint = "";
    if (m.index < b->len && b->text[m.index] == '\t')
        hint = "; tabs cannot be used for indentation";
    if (p->context && (c.line != m.line || c.column != m.column))
        berr(b, (int)m.line + 1, (int)m.column + 1, "%s (%s at line %d, column %d)%s", problem,
             p->context, (int)c.line + 1, (int)c.column + 1, hint);
    else if (p->context)
        berr(b, (int)m.line + 1, (int)m.column + 1, "%s (%s)%s", problem, p->context, hint);
    else
        berr(b, (int)m.line + 1, (int)m.column + 1, "%s%s", problem, hint);
}

static bool on_event(builder *b, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->docs > 1) {
            berr(b, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                 "expected a single document, found another one");
            return false;
        }
        return true;
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev);
    case YAML_ALIAS_EVENT:
        return on_alias(b, ev);
    case YAML_SEQUENCE_START_EVENT: {
        static const char *const tags[] = {"!", YTAG "seq"};
        return check_tag(b, ev, (const char *)ev->data.sequence_start.tag, tags, 2) &&
               open_frame(b, CONF_SEQ, ev, (const char *)ev->data.sequence_start.anchor);
    }
    case YAML_MAPPING_START_EVENT: {
        static const char *const tags[] = {"!", YTAG "map"};
        return check_tag(b, ev, (const char *)ev->data.mapping_start.tag, tags, 2) &&
               open_frame(b, CONF_MAP, ev, (const char *)ev->data.mapping_start.anchor);
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return close_frame(b);
    default:
        return true;
    }
}

conf_node *conf_parse(const char *text, size_t len, const char *file, char err[CU_ERRLEN])
{
    if (!text)
        text = "", len = 0;
    builder b = {.text = text, .len = len, .file = fname_new(file ? file : "<input>"), .err = err};
    yaml_parser_t p;
    bool ok = false, done = false;
    err[0] = 0;
    if (!yaml_parser_initialize(&p)) {
        snprintf(err, CU_ERRLEN, "%s: cannot initialise the YAML parser", b.file);
        goto out_name;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    while (!done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            parser_error(&b, &p);
            goto out_parser;
        }
        bool step = on_event(&b, &ev);
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
        if (!step)
            goto out_parser;
    }
    if (!b.root)
        b.root = node_new(CONF_NULL, b.file, 1, 1), b.root->str = cu_strdup("");
    ok = true;
out_parser:
    yaml_parser_delete(&p);
    while (b.depth > 0)
        frame_release(&b.st[--b.depth]);
    free(b.st);
    for (size_t i = 0; i < b.nanchors; i++) {
        free(b.anchors[i].name);
        conf_free(b.anchors[i].node);
    }
    free(b.anchors);
    if (!ok) {
        conf_free(b.root);
        b.root = NULL;
    }
out_name:
    fname_unref(b.file);
    return b.root;
}

conf_node *conf_load(const char *path, char err[CU_ERRLEN])
{
    cu_buf buf = CU_BUF_INIT;
    if (cu_read_file(path, &buf, err) < 0) {
        cu_buf_free(&buf);
        return NULL;
    }
    conf_node *n = conf_parse(buf.data ? buf.data : "", buf.len, path, err);
    cu_buf_free(&buf);
    return n;
}
