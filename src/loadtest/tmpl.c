/* loadtest/tmpl.c: Artillery's templates, compiled once, rendered per user.
 *
 * Syntax (packages/commons/engine_util.js of Artillery 2.0.21):
 *  - a variable placeholder is `{{` `{`? then one or more of
 *    [whitespace $ A-Za-z0-9_ . [ ] ' " -] then `}}` `}`?; the name is the
 *    text between the braces, trimmed, looked up lodash-style (`a.b`,
 *    `a[0]`, `a['x']`; an exact key "a.b" wins, as _.get does);
 *  - a function placeholder is `{{ $name(args) }}` with args limited to
 *    [A-Za-z0-9_, whitespace]; only $randomNumber(min, max) (inclusive
 *    integers) and $randomString(n) ([A-Za-z0-9], default 10) exist. Their
 *    result is text (Artillery substitutes it into the string);
 *  - `$processEnvironment.X` and `$env.X` read the environment now, at
 *    compile time (unset -> undefined), and are folded into the text;
 *  - anything else, including unknown functions and unmatched braces, is
 *    literal text.
 * Rendering: a template that is exactly one variable placeholder yields the
 * raw value (lt_tmpl_value); inside larger text undefined becomes
 * "undefined", strings are copied, numbers print as JavaScript's String(n),
 * objects and arrays as JSON.stringify does.
 *
 * A compiled template is immutable: worker threads share it read-only.
 * Rendering allocates nothing but the output (and the json_t that
 * lt_tmpl_value / lt_value_render return); a static template renders with
 * one memcpy.
 */
#include "loadtest/script.h"
#include "loadtest/script_int.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { SEG_TEXT, SEG_VAR, SEG_UNDEF, SEG_RANDNUM, SEG_RANDSTR } seg_kind;

typedef struct seg {
    seg_kind kind;
    size_t off, len;        /* TEXT: slice of t->lit */
    char *name;             /* VAR: as written (trimmed); UNDEF: the env name */
    char **path;            /* VAR: lodash path components */
    size_t npath;
    long long a, b;         /* RANDNUM: bounds; RANDSTR: a = length */
    int nargs;
} seg;

struct lt_tmpl {
    char *src;              /* as written */
    char *lit;              /* literal text of all TEXT segments (the whole text when static) */
    size_t lit_len;
    seg *segs;
    size_t nsegs;
    bool single;            /* exactly one placeholder and nothing else */
    size_t nfuncs;
};

/* ---- numbers and JSON, as JavaScript prints them --------------------------------------- */
void lt_js_number(cu_buf *out, double v)
{
    if (isnan(v)) {
        cu_buf_appends(out, "NaN");
        return;
    }
    if (isinf(v)) {
        cu_buf_appends(out, v < 0 ? "-Infinity" : "Infinity");
        return;
    }
    if (v == 0) { /* -0 too */
        cu_buf_appendc(out, '0');
        return;
    }
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        cu_buf_appendf(out, "%lld", (long long)v);
        return;
    }
    /* The shortest digits that read back as v (Number::toString, step 5). */
    char tmp[48];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    const char *p = tmp;
    if (*p == '-') {
        cu_buf_appendc(out, '-');
        p++;
    }
    char d[24];
    int k = 0;
    for (; *p && *p != 'e'; p++)
        if (isdigit((unsigned char)*p))
            d[k++] = *p;
    while (k > 1 && d[k - 1] == '0')
        k--;
    int n = atoi(p + 1) + 1; /* v = 0.d1d2...dk x 10^n */
    if (k <= n && n <= 21) {
        cu_buf_append(out, d, (size_t)k);
        for (int i = k; i < n; i++)
            cu_buf_appendc(out, '0');
    } else if (0 < n && n <= 21) {
        cu_buf_append(out, d, (size_t)n);
        cu_buf_appendc(out, '.');
        cu_buf_append(out, d + n, (size_t)(k - n));
    } else if (-6 < n && n <= 0) {
        cu_buf_appends(out, "0.");
        for (int i = 0; i < -n; i++)
            cu_buf_appendc(out, '0');
        cu_buf_append(out, d, (size_t)k);
    } else {
        cu_buf_appendc(out, d[0]);
        if (k > 1) {
            cu_buf_appendc(out, '.');
            cu_buf_append(out, d + 1, (size_t)(k - 1));
        }
        cu_buf_appendf(out, "e%c%d", n - 1 < 0 ? '-' : '+', abs(n - 1));
    }
}

static void json_str(cu_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    cu_buf_appendc(out, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c >= 0x20)
                continue;
        }
        cu_buf_append(out, s + run, i - run);
        run = i + 1;
        if (esc) {
            cu_buf_appends(out, esc);
        } else {
            char u[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
            cu_buf_appends(out, u);
        }
    }
    cu_buf_append(out, s + run, n - run);
    cu_buf_appendc(out, '"');
}

void lt_json_dump(cu_buf *out, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        cu_buf_appendc(out, '{');
        bool first = true;
        const char *k;
        json_t *item;
        json_object_foreach((json_t *)v, k, item) {
            if (!first)
                cu_buf_appendc(out, ',');
            first = false;
            json_str(out, k, strlen(k));
            cu_buf_appendc(out, ':');
            lt_json_dump(out, item);
        }
        cu_buf_appendc(out, '}');
        break;
    }
    case JSON_ARRAY:
        cu_buf_appendc(out, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                cu_buf_appendc(out, ',');
            lt_json_dump(out, json_array_get(v, i));
        }
        cu_buf_appendc(out, ']');
        break;
    case JSON_STRING:
        json_str(out, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        cu_buf_appendf(out, "%lld", (long long)json_integer_value(v));
        break;
    case JSON_REAL: {
        double d = json_real_value(v);
        if (isfinite(d))
            lt_js_number(out, d);
        else
            cu_buf_appends(out, "null");
        break;
    }
    case JSON_TRUE: cu_buf_appends(out, "true"); break;
    case JSON_FALSE: cu_buf_appends(out, "false"); break;
    case JSON_NULL: cu_buf_appends(out, "null"); break;
    }
}

/* A value inside larger text: String(v), or JSON.stringify(v) for objects. */
static void render_value(cu_buf *out, const json_t *v)
{
    if (!v) {
        cu_buf_appends(out, "undefined");
        return;
    }
    switch (json_typeof(v)) {
    case JSON_STRING:
        cu_buf_append(out, json_string_value(v), json_string_length(v));
        break;
    case JSON_REAL:
        lt_js_number(out, json_real_value(v));
        break;
    default:
        lt_json_dump(out, v);
    }
}

/* ---- compiling ------------------------------------------------------------------------------ */
static bool var_char(unsigned char c)
{
    return isalnum(c) || c == '_' || c == '$' || c == '.' || c == '[' || c == ']' || c == '\'' ||
           c == '"' || c == '-' || isspace(c);
}

/* Length of a variable placeholder at s ("{{" already seen), or 0. */
static size_t match_var(const char *s)
{
    size_t j = 2;
    if (s[j] == '{')
        j++;
    size_t k = j;
    while (s[k] && var_char((unsigned char)s[k]))
        k++;
    if (k == j || s[k] != '}' || s[k + 1] != '}')
        return 0;
    k += 2;
    if (s[k] == '}')
        k++;
    return k;
}

/* Length of a function placeholder at s, with its name and args, or 0. */
static size_t match_func(const char *s, const char **name, size_t *nlen, const char **args,
                         size_t *alen)
{
    size_t j = 2;
    while (isspace((unsigned char)s[j]))
        j++;
    if (s[j] != '$')
        return 0;
    *name = s + j++;
    while (isalnum((unsigned char)s[j]) || s[j] == '_')
        j++;
    *nlen = (size_t)(s + j - *name);
    if (*nlen < 2)
        return 0;
    while (isspace((unsigned char)s[j]))
        j++;
    if (s[j++] != '(')
        return 0;
    *args = s + j;
    while (isalnum((unsigned char)s[j]) || s[j] == '_' || s[j] == ',' || isspace((unsigned char)s[j]))
        j++;
    *alen = (size_t)(s + j - *args);
    if (s[j++] != ')')
        return 0;
    while (isspace((unsigned char)s[j]))
        j++;
    if (s[j] != '}' || s[j + 1] != '}')
        return 0;
    return j + 2;
}

/* Parses "1, 9" (integer literals; identifiers count as undefined). */
static bool parse_args(const char *a, size_t n, long long v[2], bool def[2], int *count)
{
    *count = 0;
    def[0] = def[1] = false;
    size_t i = 0;
    while (i < n && isspace((unsigned char)a[i]))
        i++;
    if (i == n)
        return true;
    for (;;) {
        while (i < n && isspace((unsigned char)a[i]))
            i++;
        size_t st = i;
        while (i < n && (isalnum((unsigned char)a[i]) || a[i] == '_'))
            i++;
        if (i == st)
            return false;
        if (*count < 2) {
            bool digits = true;
            for (size_t j = st; j < i; j++)
                digits = digits && isdigit((unsigned char)a[j]);
            def[*count] = digits;
            v[*count] = digits ? strtoll(a + st, NULL, 10) : 0;
        }
        (*count)++;
        while (i < n && isspace((unsigned char)a[i]))
            i++;
        if (i == n)
            return true;
        if (a[i++] != ',')
            return false;
    }
}

/* lodash's stringToPath, for the forms templates use. */
static void parse_path(seg *g)
{
    const char *s = g->name;
    size_t cap = 4;
    g->path = cu_malloc(cap * sizeof *g->path);
    g->npath = 0;
    if (*s == '.')
        g->path[g->npath++] = cu_strdup("");
    while (*s) {
        const char *st = s;
        size_t len;
        if (*s == '.') {
            s++;
            continue;
        }
        if (*s == '[') {
            s++;
            char q = (*s == '\'' || *s == '"') ? *s++ : 0;
            st = s;
            while (*s && (q ? *s != q : *s != ']'))
                s++;
            len = (size_t)(s - st);
            if (q && *s)
                s++;
            if (*s == ']')
                s++;
        } else {
            while (*s && *s != '.' && *s != '[')
                s++;
            len = (size_t)(s - st);
        }
        if (g->npath == cap)
            g->path = cu_realloc(g->path, (cap *= 2) * sizeof *g->path);
        g->path[g->npath++] = cu_strndup(st, len);
    }
}

static seg *add_seg(lt_tmpl *t, size_t *cap, seg_kind kind)
{
    if (t->nsegs == *cap)
        t->segs = cu_realloc(t->segs, (*cap = *cap ? *cap * 2 : 4) * sizeof *t->segs);
    seg *g = &t->segs[t->nsegs++];
    memset(g, 0, sizeof *g);
    g->kind = kind;
    return g;
}

static void add_text(lt_tmpl *t, size_t *cap, cu_buf *lit, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (t->nsegs && t->segs[t->nsegs - 1].kind == SEG_TEXT) {
        t->segs[t->nsegs - 1].len += n;
    } else {
        seg *g = add_seg(t, cap, SEG_TEXT);
        g->off = lit->len;
        g->len = n;
    }
    cu_buf_append(lit, s, n);
}

/* A function placeholder, or false when it is none we know (then literal). */
static bool add_func(lt_tmpl *t, size_t *cap, const char *name, size_t nlen, const char *args,
                     size_t alen)
{
    long long v[2];
    bool def[2];
    int count;
    if (!parse_args(args, alen, v, def, &count))
        return false;
    if (nlen == 13 && !memcmp(name, "$randomNumber", 13)) {
        seg *g = add_seg(t, cap, SEG_RANDNUM);
        /* lodash _.random: (), (max), (min, max); bounds swap when reversed */
        long long lo = 0, hi = 1;
        if (count == 1 && def[0])
            hi = v[0];
        else if (count >= 2) {
            lo = def[0] ? v[0] : 0;
            hi = def[1] ? v[1] : 1;
        }
        g->a = CU_MIN(lo, hi);
        g->b = CU_MAX(lo, hi);
        g->nargs = count;
    } else if (nlen == 13 && !memcmp(name, "$randomString", 13)) {
        seg *g = add_seg(t, cap, SEG_RANDSTR);
        g->a = count >= 1 && def[0] ? v[0] : 10;
    } else {
        return false;
    }
    t->nfuncs++;
    return true;
}

static void add_var(lt_tmpl *t, size_t *cap, cu_buf *lit, const char *ph, size_t n)
{
    /* name = placeholder without braces, trimmed */
    const char *b = ph, *e = ph + n;
    while (b < e && (*b == '{' || isspace((unsigned char)*b)))
        b++;
    while (e > b && (e[-1] == '}' || isspace((unsigned char)e[-1])))
        e--;
    char *name = cu_strndup(b, (size_t)(e - b));
    const char *env = NULL;
    if (cu_startswith(name, "$processEnvironment."))
        env = name + 20;
    else if (cu_startswith(name, "$env."))
        env = name + 5;
    if (env) {
        const char *val = getenv(env);
        if (val) {
            add_text(t, cap, lit, val, strlen(val));
        } else {
            seg *g = add_seg(t, cap, SEG_UNDEF);
            g->name = name;
            return;
        }
        free(name);
        return;
    }
    seg *g = add_seg(t, cap, SEG_VAR);
    g->name = name;
    parse_path(g);
}

lt_tmpl *lt_tmpl_compile(const char *s)
{
    lt_tmpl *t = cu_calloc(1, sizeof *t);
    t->src = cu_strdup(s ? s : "");
    s = t->src;
    cu_buf lit = CU_BUF_INIT;
    size_t cap = 0, nph = 0, text_start = 0, i = 0;
    bool whole = false;
    while (s[i]) {
        if (s[i] != '{' || s[i + 1] != '{') {
            i++;
            continue;
        }
        const char *fname, *args;
        size_t nlen, alen, m = match_func(s + i, &fname, &nlen, &args, &alen);
        if (m) {
            add_text(t, &cap, &lit, s + text_start, i - text_start);
            if (!add_func(t, &cap, fname, nlen, args, alen))
                add_text(t, &cap, &lit, s + i, m);
        } else if ((m = match_var(s + i)) != 0) {
            add_text(t, &cap, &lit, s + text_start, i - text_start);
            whole = i == 0 && s[m] == '\0';
            add_var(t, &cap, &lit, s + i, m);
            nph++;
        } else {
            i++;
            continue;
        }
        i += m;
        text_start = i;
    }
    add_text(t, &cap, &lit, s + text_start, i - text_start);
    t->single = whole && nph == 1 && t->nsegs == 1 && t->segs[0].kind != SEG_TEXT;
    t->lit_len = lit.len;
    t->lit = lit.data ? cu_buf_steal(&lit) : cu_strdup("");
    return t;
}

void lt_tmpl_free(lt_tmpl *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nsegs; i++) {
        seg *g = &t->segs[i];
        for (size_t j = 0; j < g->npath; j++)
            free(g->path[j]);
        free(g->path);
        free(g->name);
    }
    free(t->segs);
    free(t->lit);
    free(t->src);
    free(t);
}

bool lt_tmpl_is_static(const lt_tmpl *t)
{
    return t->nsegs == 0 || (t->nsegs == 1 && t->segs[0].kind == SEG_TEXT);
}

const char *lt_tmpl_text(const lt_tmpl *t)
{
    return lt_tmpl_is_static(t) ? t->lit : t->src;
}

size_t lt_tmpl_nfuncs(const lt_tmpl *t)
{
    return t->nfuncs;
}

void lt_tmpl_each_var(const lt_tmpl *t, void (*fn)(const char *name, void *arg), void *arg)
{
    for (size_t i = 0; i < t->nsegs; i++)
        if (t->segs[i].kind == SEG_VAR)
            fn(t->segs[i].name, arg);
}

/* ---- rendering ------------------------------------------------------------------------------ */
static json_t *lookup_path(char *const *path, size_t npath, json_t *v)
{
    for (size_t i = 0; i < npath && v; i++) {
        const char *k = path[i];
        if (json_is_object(v)) {
            v = json_object_get(v, k);
        } else if (json_is_array(v)) {
            char *end;
            unsigned long idx = strtoul(k, &end, 10);
            v = (*k && !*end && isdigit((unsigned char)*k)) ? json_array_get(v, idx) : NULL;
        } else {
            v = NULL;
        }
    }
    return v;
}

static json_t *lookup(const seg *g, json_t *vars)
{
    if (!vars || g->npath == 0)
        return NULL;
    if (g->npath > 1) { /* _.get: an exact key wins over the path */
        json_t *v = json_object_get(vars, g->name);
        if (v)
            return v;
    }
    return lookup_path(g->path, g->npath, vars);
}

/* `list.length` / `text.length` (a new reference) or NULL. */
static json_t *length_of(const seg *g, json_t *vars)
{
    if (!vars || g->npath < 2 || strcmp(g->path[g->npath - 1], "length"))
        return NULL;
    json_t *p = lookup_path(g->path, g->npath - 1, vars);
    if (json_is_array(p))
        return json_integer((json_int_t)json_array_size(p));
    if (json_is_string(p)) {
        size_t n = 0;
        for (const unsigned char *c = (const unsigned char *)json_string_value(p); *c; c++)
            n += (*c & 0xC0) != 0x80;
        return json_integer((json_int_t)n);
    }
    return NULL;
}

static void render_seg(const lt_tmpl *t, const seg *g, const lt_ctx *ctx, cu_buf *out)
{
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    switch (g->kind) {
    case SEG_TEXT:
        cu_buf_append(out, t->lit + g->off, g->len);
        break;
    case SEG_UNDEF:
        cu_buf_appends(out, "undefined");
        break;
    case SEG_VAR: {
        json_t *v = lookup(g, ctx ? ctx->vars : NULL);
        if (!v && ctx && (v = length_of(g, ctx->vars)) != NULL) {
            render_value(out, v);
            json_decref(v);
        } else {
            render_value(out, v);
        }
        break;
    }
    case SEG_RANDNUM: {
        uint64_t span = (uint64_t)(g->b - g->a) + 1;
        long long r = g->a + (ctx && ctx->rng ? (long long)cu_rng_below(ctx->rng, span) : 0);
        cu_buf_appendf(out, "%lld", r);
        break;
    }
    case SEG_RANDSTR:
        cu_buf_reserve(out, (size_t)CU_MAX(g->a, 0));
        for (long long i = 0; i < g->a; i++)
            cu_buf_appendc(out, alnum[ctx && ctx->rng ? cu_rng_below(ctx->rng, 62) : 0]);
        break;
    }
}

void lt_tmpl_render(const lt_tmpl *t, const lt_ctx *ctx, cu_buf *out)
{
    if (lt_tmpl_is_static(t)) {
        cu_buf_append(out, t->lit, t->lit_len);
        return;
    }
    for (size_t i = 0; i < t->nsegs; i++)
        render_seg(t, &t->segs[i], ctx, out);
}

json_t *lt_tmpl_value(const lt_tmpl *t, const lt_ctx *ctx)
{
    if (t->single && t->segs[0].kind == SEG_VAR) {
        json_t *v = lookup(&t->segs[0], ctx ? ctx->vars : NULL);
        return v ? json_incref(v) : (ctx ? length_of(&t->segs[0], ctx->vars) : NULL);
    }
    if (t->single && t->segs[0].kind == SEG_UNDEF)
        return NULL;
    if (lt_tmpl_is_static(t))
        return json_stringn_nocheck(t->lit, t->lit_len);
    cu_buf b = CU_BUF_INIT;
    lt_tmpl_render(t, ctx, &b);
    json_t *s = json_stringn_nocheck(b.data ? b.data : "", b.len);
    cu_buf_free(&b);
    return s;
}

/* ---- templated value trees ---------------------------------------------------------------- */
typedef enum { LV_CONST, LV_TMPL, LV_OBJ, LV_ARR } lv_kind;

struct lt_value {
    lv_kind kind;
    json_t *cnst;           /* CONST: the whole (static) subtree */
    lt_tmpl *t;             /* TMPL */
    lt_tmpl **keys;         /* OBJ */
    lt_value **items;       /* OBJ, ARR */
    size_t n;
};

static json_t *scalar_json(const conf_node *n)
{
    switch (n->type) {
    case CONF_BOOL: return json_boolean(n->b);
    case CONF_INT: return json_integer((json_int_t)n->i);
    case CONF_FLOAT: return json_real(n->f);
    case CONF_STRING: return json_string_nocheck(n->str ? n->str : "");
    default: return json_null();
    }
}

lt_value *lt_value_compile(const conf_node *n)
{
    lt_value *v = cu_calloc(1, sizeof *v);
    if (!n) {
        v->cnst = json_null();
        return v;
    }
    if (n->type == CONF_STRING) {
        lt_tmpl *t = lt_tmpl_compile(n->str);
        if (lt_tmpl_is_static(t)) {
            v->cnst = json_stringn_nocheck(t->lit, t->lit_len);
            lt_tmpl_free(t);
        } else {
            v->kind = LV_TMPL;
            v->t = t;
        }
        return v;
    }
    if (n->type != CONF_MAP && n->type != CONF_SEQ) {
        v->cnst = scalar_json(n);
        return v;
    }
    bool all_static = true;
    v->kind = n->type == CONF_MAP ? LV_OBJ : LV_ARR;
    v->n = n->n;
    v->items = cu_calloc(n->n ? n->n : 1, sizeof *v->items);
    if (v->kind == LV_OBJ)
        v->keys = cu_calloc(n->n ? n->n : 1, sizeof *v->keys);
    for (size_t i = 0; i < n->n; i++) {
        v->items[i] = lt_value_compile(n->items[i]);
        all_static = all_static && v->items[i]->kind == LV_CONST;
        if (v->kind == LV_OBJ) {
            v->keys[i] = lt_tmpl_compile(n->keys[i]->str);
            all_static = all_static && lt_tmpl_is_static(v->keys[i]);
        }
    }
    if (all_static) { /* fold: render once, copy per use */
        json_t *c = lt_value_render(v, NULL);
        for (size_t i = 0; i < v->n; i++) {
            lt_value_free(v->items[i]);
            if (v->keys)
                lt_tmpl_free(v->keys[i]);
        }
        free(v->items);
        free(v->keys);
        v->items = NULL;
        v->keys = NULL;
        v->n = 0;
        v->kind = LV_CONST;
        v->cnst = c;
    }
    return v;
}

void lt_value_free(lt_value *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++) {
        lt_value_free(v->items[i]);
        if (v->keys)
            lt_tmpl_free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    lt_tmpl_free(v->t);
    json_decref(v->cnst);
    free(v);
}

json_t *lt_value_render(const lt_value *v, const lt_ctx *ctx)
{
    switch (v->kind) {
    case LV_CONST:
        return json_deep_copy(v->cnst);
    case LV_TMPL:
        return lt_tmpl_value(v->t, ctx);
    case LV_ARR: {
        json_t *a = json_array();
        for (size_t i = 0; i < v->n; i++) {
            json_t *item = lt_value_render(v->items[i], ctx);
            json_array_append_new(a, item ? item : json_null()); /* JSON.stringify: null */
        }
        return a;
    }
    case LV_OBJ: {
        json_t *o = json_object();
        cu_buf key = CU_BUF_INIT;
        for (size_t i = 0; i < v->n; i++) {
            json_t *item = lt_value_render(v->items[i], ctx);
            if (!item)
                continue; /* undefined: JSON.stringify drops the key */
            cu_buf_reset(&key);
            lt_tmpl_render(v->keys[i], ctx, &key);
            json_object_setn_new_nocheck(o, key.data ? key.data : "", key.len, item);
        }
        cu_buf_free(&key);
        return o;
    }
    }
    return NULL;
}
