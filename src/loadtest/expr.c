/* loadtest/expr.c: ensure's condition language, Artillery's filtrex (2.x)
 * syntax (script.h, "expressions").
 *
 * A recursive-descent parser builds an AST once; evaluation walks it with
 * doubles and JavaScript's semantics: booleans are 1/0, `and`/`or` return
 * one of their operands (Number(a && b)), truthiness is "neither 0 nor NaN",
 * % is fmod, ^ is pow, and the branches of `and`, `or` and `?:` are only
 * evaluated when taken. A name the lookup does not know makes the whole
 * result NaN (so a check on a metric that does not exist fails, as in
 * Artillery) unless it sits in a branch not taken or in exists().
 *
 * Precedence, lowest first, as filtrex 2's grammar declares it (jison):
 *     ?:  (left: a ? b : c ? d : e is (a ? b : c) ? d : e)
 *     or
 *     and
 *     == !=
 *     < <= > >=
 *     + -
 *     * / %
 *     ^   (left: 2^3^2 = 64)
 *     not, unary -   (bind tightest: not a == b is (not a) == b, -2^2 = 4)
 * Names: [A-Za-z_$][A-Za-z0-9_$]* followed by .part (part may start with a
 * digit: http.codes.200) or [digits] / ['word'] suffixes, taken whole as one
 * variable name; any other name in single quotes ('plugins.x-y.p95', with \'
 * and \\ escapes). Numbers: digits[.digits][e[+-]digits]. Functions, as
 * filtrex's standard set: abs ceil floor log log2 log10 max min round sqrt,
 * and exists(name) (1 when the lookup knows the name; never "unknown").
 * Rejected at compile time with a column: "double-quoted strings" (metric
 * values are numbers), in / not in / of / ~=, array literals.
 * Thread rules: a compiled expression is immutable; evaluate from any thread.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadtest/script.h"

#define EXPR_MAX_DEPTH 200

typedef enum {
    E_NUM, E_VAR, E_NEG, E_NOT, E_ADD, E_SUB, E_MUL, E_DIV, E_MOD, E_POW,
    E_EQ, E_NE, E_LT, E_LE, E_GT, E_GE, E_AND, E_OR, E_COND, E_CALL
} enode_op;

typedef enum { F_ABS, F_CEIL, F_FLOOR, F_LOG, F_LOG2, F_LOG10, F_MAX, F_MIN, F_ROUND, F_SQRT, F_EXISTS } efn;

typedef struct enode enode;
struct enode {
    enode_op op;
    double num;          /* E_NUM */
    char *name;          /* E_VAR */
    efn fn;              /* E_CALL */
    enode *a, *b, *c;    /* operands; E_COND: a ? b : c */
    enode **args;        /* E_CALL */
    size_t nargs;
};

struct lt_expr {
    enode *root;
};

/* ---- lexer ---------------------------------------------------------------------- */
typedef enum {
    T_EOF, T_NUM, T_NAME, T_STRING, T_OP, T_LPAREN, T_RPAREN, T_COMMA, T_QUESTION, T_COLON,
    T_AND, T_OR, T_NOT, T_IN, T_OF
} tok_kind;

typedef struct parser {
    const char *src;
    size_t pos;          /* after the current token */
    tok_kind tok;
    size_t tok_start;    /* 0-based column of the current token */
    char op[3];          /* T_OP text */
    double num;
    cu_buf name;         /* T_NAME */
    char *err;
    bool failed;
    int depth;
} parser;

static void perr(parser *p, size_t col0, const char *fmt, ...) CU_PRINTF(3, 4);
static void perr(parser *p, size_t col0, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = true;
    int off = snprintf(p->err, CU_ERRLEN, "column %zu: ", col0 + 1);
    va_list ap;
    va_start(ap, fmt);
    if (off > 0 && off < CU_ERRLEN)
        vsnprintf(p->err + off, CU_ERRLEN - (size_t)off, fmt, ap);
    va_end(ap);
}

static bool is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The rest of an unquoted name after its first word: .part, [n], ['w']. */
static void lex_name_suffixes(parser *p)
{
    const char *s = p->src;
    for (;;) {
        size_t q = p->pos;
        if (s[q] == '.' && is_word(s[q + 1])) {
            for (q++; is_word(s[q]); q++)
                ;
        } else if (s[q] == '[' && is_digit(s[q + 1])) {
            for (q++; is_digit(s[q]); q++)
                ;
            if (s[q] != ']')
                return;
            q++;
        } else if (s[q] == '[' && (s[q + 1] == '\'' || s[q + 1] == '"' || s[q + 1] == '`')) {
            char quote = s[q + 1];
            size_t w = q + 2;
            while (is_word(s[w]))
                w++;
            if (w == q + 2 || s[w] != quote || s[w + 1] != ']')
                return;
            q = w + 2;
        } else {
            return;
        }
        cu_buf_append(&p->name, s + p->pos, q - p->pos);
        p->pos = q;
    }
}

static void next(parser *p)
{
    const char *s = p->src;
    while (s[p->pos] == ' ' || s[p->pos] == '\t' || s[p->pos] == '\n' || s[p->pos] == '\r')
        p->pos++;
    p->tok_start = p->pos;
    char c = s[p->pos];
    if (!c) {
        p->tok = T_EOF;
        return;
    }
    if (is_digit(c)) {
        size_t q = p->pos;
        while (is_digit(s[q]))
            q++;
        if (s[q] == '.' && is_digit(s[q + 1]))
            for (q++; is_digit(s[q]); q++)
                ;
        if ((s[q] == 'e' || s[q] == 'E') &&
            (is_digit(s[q + 1]) || ((s[q + 1] == '+' || s[q + 1] == '-') && is_digit(s[q + 2]))))
            for (q += 2; is_digit(s[q]); q++)
                ;
        if (is_word(s[q])) {
            perr(p, q, "unexpected '%c' after a number", s[q]);
            p->tok = T_EOF;
            return;
        }
        p->num = strtod(s + p->pos, NULL);
        p->pos = q;
        p->tok = T_NUM;
        return;
    }
    if (is_word(c)) { /* first char cannot be a digit here */
        size_t q = p->pos;
        while (is_word(s[q]))
            q++;
        cu_buf_reset(&p->name);
        cu_buf_append(&p->name, s + p->pos, q - p->pos);
        p->pos = q;
        static const struct { const char *w; tok_kind k; } kw[] = {
            {"and", T_AND}, {"or", T_OR}, {"not", T_NOT}, {"in", T_IN}, {"of", T_OF}};
        for (size_t i = 0; i < CU_ARRAY_LEN(kw); i++)
            if (strcmp(p->name.data, kw[i].w) == 0) {
                p->tok = kw[i].k;
                return;
            }
        lex_name_suffixes(p);
        p->tok = T_NAME;
        return;
    }
    if (c == '\'' || c == '"') {
        cu_buf_reset(&p->name);
        size_t q = p->pos + 1;
        for (; s[q] && s[q] != c; q++) {
            if (s[q] == '\\' && (s[q + 1] == c || s[q + 1] == '\\'))
                q++;
            cu_buf_appendc(&p->name, s[q]);
        }
        if (!s[q]) {
            perr(p, p->pos, "unterminated %s", c == '\'' ? "quoted name" : "string");
            p->tok = T_EOF;
            return;
        }
        if (!p->name.data)
            cu_buf_appends(&p->name, "");
        p->pos = q + 1;
        p->tok = c == '\'' ? T_NAME : T_STRING;
        return;
    }
    static const char *const ops2[] = {"==", "!=", "<=", ">=", "~="};
    for (size_t i = 0; i < CU_ARRAY_LEN(ops2); i++)
        if (s[p->pos] == ops2[i][0] && s[p->pos + 1] == ops2[i][1]) {
            memcpy(p->op, ops2[i], 3);
            p->pos += 2;
            p->tok = T_OP;
            return;
        }
    p->pos++;
    switch (c) {
    case '+': case '-': case '*': case '/': case '%': case '^': case '<': case '>':
        p->op[0] = c;
        p->op[1] = 0;
        p->tok = T_OP;
        return;
    case '(': p->tok = T_LPAREN; return;
    case ')': p->tok = T_RPAREN; return;
    case ',': p->tok = T_COMMA; return;
    case '?': p->tok = T_QUESTION; return;
    case ':': p->tok = T_COLON; return;
    default:
        perr(p, p->tok_start, "unexpected character '%c'", c);
        p->tok = T_EOF;
    }
}

static const char *tok_text(const parser *p)
{
    switch (p->tok) {
    case T_EOF: return "the end of the expression";
    case T_NUM: return "a number";
    case T_NAME: return "a name";
    case T_STRING: return "a string";
    case T_OP: return p->op;
    case T_LPAREN: return "'('";
    case T_RPAREN: return "')'";
    case T_COMMA: return "','";
    case T_QUESTION: return "'?'";
    case T_COLON: return "':'";
    case T_AND: return "'and'";
    case T_OR: return "'or'";
    case T_NOT: return "'not'";
    case T_IN: return "'in'";
    case T_OF: return "'of'";
    }
    return "?";
}

/* ---- AST ----------------------------------------------------------------------- */
static enode *node(enode_op op, enode *a, enode *b)
{
    enode *n = cu_calloc(1, sizeof *n);
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

static void node_free(enode *n)
{
    if (!n)
        return;
    node_free(n->a);
    node_free(n->b);
    node_free(n->c);
    for (size_t i = 0; i < n->nargs; i++)
        node_free(n->args[i]);
    free(n->args);
    free(n->name);
    free(n);
}

/* ---- parser ---------------------------------------------------------------------- */
static enode *parse_expr(parser *p);

static bool is_op(const parser *p, const char *op)
{
    return p->tok == T_OP && strcmp(p->op, op) == 0;
}

static void unsupported(parser *p)
{
    if (p->tok == T_IN || p->tok == T_OF)
        perr(p, p->tok_start, "operator '%s' is not supported", p->tok == T_IN ? "in" : "of");
    else if (is_op(p, "~="))
        perr(p, p->tok_start, "operator '~=' is not supported");
    else if (p->tok == T_STRING)
        perr(p, p->tok_start, "strings are not supported (values are numbers); "
                              "write a name with spaces or dashes in single quotes");
}

static const struct { const char *name; efn fn; int min, max; } fns[] = {
    {"abs", F_ABS, 1, 1},   {"ceil", F_CEIL, 1, 1},   {"floor", F_FLOOR, 1, 1}, {"log", F_LOG, 1, 1},
    {"log2", F_LOG2, 1, 1}, {"log10", F_LOG10, 1, 1}, {"max", F_MAX, 0, 64},    {"min", F_MIN, 0, 64},
    {"round", F_ROUND, 1, 1}, {"sqrt", F_SQRT, 1, 1}, {"exists", F_EXISTS, 1, 1},
};

static enode *parse_call(parser *p, char *name, size_t col)
{
    size_t f = 0;
    while (f < CU_ARRAY_LEN(fns) && strcmp(fns[f].name, name) != 0)
        f++;
    if (f == CU_ARRAY_LEN(fns)) {
        perr(p, col, "unknown function '%s'", name);
        free(name);
        return NULL;
    }
    free(name);
    enode *n = node(E_CALL, NULL, NULL);
    n->fn = fns[f].fn;
    next(p); /* ( */
    if (p->tok != T_RPAREN) {
        for (;;) {
            enode *arg = parse_expr(p);
            if (!arg)
                goto fail;
            n->args = cu_realloc(n->args, (n->nargs + 1) * sizeof *n->args);
            n->args[n->nargs++] = arg;
            if (p->tok != T_COMMA)
                break;
            next(p);
        }
    }
    if (p->tok != T_RPAREN) {
        unsupported(p);
        perr(p, p->tok_start, "expected ',' or ')' in the call of %s(), found %s", fns[f].name, tok_text(p));
        goto fail;
    }
    if ((int)n->nargs < fns[f].min || (int)n->nargs > fns[f].max) {
        perr(p, col, "%s() takes %d argument%s", fns[f].name, fns[f].min, fns[f].min == 1 ? "" : "s");
        goto fail;
    }
    if (n->fn == F_EXISTS && n->args[0]->op != E_VAR) {
        perr(p, col, "exists() takes a name");
        goto fail;
    }
    next(p);
    return n;
fail:
    node_free(n);
    return NULL;
}

static enode *parse_primary(parser *p)
{
    if (p->failed)
        return NULL;
    size_t col = p->tok_start;
    switch (p->tok) {
    case T_NUM: {
        enode *n = node(E_NUM, NULL, NULL);
        n->num = p->num;
        next(p);
        return n;
    }
    case T_NAME: {
        char *name = cu_strdup(p->name.data);
        bool quoted = p->src[col] == '\'';
        next(p);
        if (p->tok == T_LPAREN && !quoted)
            return parse_call(p, name, col);
        if (p->tok == T_OF) {
            free(name);
            unsupported(p);
            return NULL;
        }
        enode *n = node(E_VAR, NULL, NULL);
        n->name = name;
        return n;
    }
    case T_LPAREN: {
        next(p);
        enode *n = parse_expr(p);
        if (!n)
            return NULL;
        if (p->tok == T_COMMA) {
            perr(p, p->tok_start, "lists are not supported");
            node_free(n);
            return NULL;
        }
        if (p->tok != T_RPAREN) {
            unsupported(p);
            perr(p, p->tok_start, "expected ')' to close the '(' at column %zu, found %s", col + 1, tok_text(p));
            node_free(n);
            return NULL;
        }
        next(p);
        return n;
    }
    default:
        unsupported(p);
        perr(p, col, "expected a number, a name or '(', found %s", tok_text(p));
        return NULL;
    }
}

static enode *parse_unary(parser *p)
{
    if (p->failed)
        return NULL;
    if (p->tok == T_NOT || is_op(p, "-")) {
        enode_op op = p->tok == T_NOT ? E_NOT : E_NEG;
        if (++p->depth > EXPR_MAX_DEPTH) {
            perr(p, p->tok_start, "expression nested too deeply");
            return NULL;
        }
        next(p);
        enode *a = parse_unary(p);
        p->depth--;
        return a ? node(op, a, NULL) : NULL;
    }
    return parse_primary(p);
}

/* One left-associative binary level: operators ops[i] -> codes[i]. */
typedef enode *(*level_fn)(parser *);

static enode *binary_level(parser *p, level_fn sub, const char *const *ops, const enode_op *codes, size_t nops,
                           tok_kind kw, enode_op kwcode)
{
    enode *left = sub(p);
    while (left && !p->failed) {
        enode_op op;
        if (kw != T_EOF && p->tok == kw) {
            op = kwcode;
        } else {
            size_t i = 0;
            while (i < nops && !is_op(p, ops[i]))
                i++;
            if (i == nops)
                break;
            op = codes[i];
        }
        next(p);
        enode *right = sub(p);
        if (!right) {
            node_free(left);
            return NULL;
        }
        left = node(op, left, right);
    }
    if (p->failed) {
        node_free(left);
        return NULL;
    }
    return left;
}

static enode *parse_pow(parser *p)
{
    static const char *const ops[] = {"^"};
    static const enode_op codes[] = {E_POW};
    return binary_level(p, parse_unary, ops, codes, 1, T_EOF, E_NUM);
}

static enode *parse_mul(parser *p)
{
    static const char *const ops[] = {"*", "/", "%"};
    static const enode_op codes[] = {E_MUL, E_DIV, E_MOD};
    return binary_level(p, parse_pow, ops, codes, 3, T_EOF, E_NUM);
}

static enode *parse_add(parser *p)
{
    static const char *const ops[] = {"+", "-"};
    static const enode_op codes[] = {E_ADD, E_SUB};
    return binary_level(p, parse_mul, ops, codes, 2, T_EOF, E_NUM);
}

static enode *parse_rel(parser *p)
{
    static const char *const ops[] = {"<", "<=", ">", ">="};
    static const enode_op codes[] = {E_LT, E_LE, E_GT, E_GE};
    return binary_level(p, parse_add, ops, codes, 4, T_EOF, E_NUM);
}

static enode *parse_eq(parser *p)
{
    static const char *const ops[] = {"==", "!="};
    static const enode_op codes[] = {E_EQ, E_NE};
    return binary_level(p, parse_rel, ops, codes, 2, T_EOF, E_NUM);
}

static enode *parse_and(parser *p)
{
    return binary_level(p, parse_eq, NULL, NULL, 0, T_AND, E_AND);
}

static enode *parse_or(parser *p)
{
    return binary_level(p, parse_and, NULL, NULL, 0, T_OR, E_OR);
}

static enode *parse_expr(parser *p)
{
    if (++p->depth > EXPR_MAX_DEPTH) {
        perr(p, p->tok_start, "expression nested too deeply");
        return NULL;
    }
    enode *cond = parse_or(p);
    while (cond && p->tok == T_QUESTION) {
        next(p);
        enode *yes = parse_expr(p);
        if (!yes)
            goto fail;
        if (p->tok != T_COLON) {
            unsupported(p);
            perr(p, p->tok_start, "expected ':' of the '?', found %s", tok_text(p));
            node_free(yes);
            goto fail;
        }
        next(p);
        enode *no = parse_or(p);
        if (!no) {
            node_free(yes);
            goto fail;
        }
        enode *n = node(E_COND, cond, yes);
        n->c = no;
        cond = n;
    }
    p->depth--;
    return cond;
fail:
    node_free(cond);
    p->depth--;
    return NULL;
}

lt_expr *lt_expr_compile(const char *src, char err[CU_ERRLEN])
{
    parser p = {.src = src ? src : "", .err = err};
    err[0] = 0;
    next(&p);
    enode *root = parse_expr(&p);
    if (root && p.tok != T_EOF) {
        unsupported(&p);
        perr(&p, p.tok_start, "expected an operator or the end, found %s", tok_text(&p));
    }
    cu_buf_free(&p.name);
    if (p.failed || !root) {
        node_free(root);
        if (!p.failed)
            snprintf(err, CU_ERRLEN, "column 1: empty expression");
        return NULL;
    }
    lt_expr *e = cu_malloc(sizeof *e);
    e->root = root;
    return e;
}

void lt_expr_free(lt_expr *e)
{
    if (!e)
        return;
    node_free(e->root);
    free(e);
}

/* ---- evaluation ------------------------------------------------------------------- */
typedef struct eval_ctx {
    bool (*lookup)(const char *name, double *v, void *arg);
    void *arg;
    bool unknown;
} eval_ctx;

static bool truthy(double v)
{
    return v != 0 && !isnan(v);
}

static double eval(const enode *n, eval_ctx *c)
{
    double a, b;
    switch (n->op) {
    case E_NUM:
        return n->num;
    case E_VAR:
        if (c->lookup && c->lookup(n->name, &a, c->arg))
            return a;
        c->unknown = true;
        return NAN;
    case E_NEG: return -eval(n->a, c);
    case E_NOT: return truthy(eval(n->a, c)) ? 0 : 1;
    case E_AND:
        a = eval(n->a, c);
        return truthy(a) ? eval(n->b, c) : a;
    case E_OR:
        a = eval(n->a, c);
        return truthy(a) ? a : eval(n->b, c);
    case E_COND:
        return truthy(eval(n->a, c)) ? eval(n->b, c) : eval(n->c, c);
    case E_CALL: {
        if (n->fn == F_EXISTS)
            return c->lookup && c->lookup(n->args[0]->name, &a, c->arg) ? 1 : 0;
        if (n->fn == F_MAX || n->fn == F_MIN) {
            double r = n->fn == F_MAX ? -INFINITY : INFINITY;
            for (size_t i = 0; i < n->nargs; i++) {
                double v = eval(n->args[i], c);
                if (isnan(v) || isnan(r))
                    r = NAN;
                else
                    r = n->fn == F_MAX ? fmax(r, v) : fmin(r, v);
            }
            return r;
        }
        a = eval(n->args[0], c);
        switch (n->fn) {
        case F_ABS: return fabs(a);
        case F_CEIL: return ceil(a);
        case F_FLOOR: return floor(a);
        case F_LOG: return log(a);
        case F_LOG2: return log2(a);
        case F_LOG10: return log10(a);
        case F_ROUND: return floor(a + 0.5); /* JavaScript's Math.round */
        case F_SQRT: return sqrt(a);
        default: return NAN;
        }
    }
    default:
        break;
    }
    a = eval(n->a, c);
    b = eval(n->b, c);
    switch (n->op) {
    case E_ADD: return a + b;
    case E_SUB: return a - b;
    case E_MUL: return a * b;
    case E_DIV: return a / b;
    case E_MOD: return fmod(a, b);
    case E_POW: /* JavaScript: x ** NaN and (+-1) ** +-Infinity are NaN, C says 1 */
        return isnan(b) || (fabs(a) == 1 && isinf(b)) ? NAN : pow(a, b);
    case E_EQ: return a == b;
    case E_NE: return a != b;
    case E_LT: return a < b;
    case E_LE: return a <= b;
    case E_GT: return a > b;
    case E_GE: return a >= b;
    default: return NAN;
    }
}

double lt_expr_eval(const lt_expr *e, bool (*lookup)(const char *name, double *v, void *arg), void *arg,
                    bool *unknown)
{
    eval_ctx c = {.lookup = lookup, .arg = arg};
    double v = e ? eval(e->root, &c) : NAN;
    if (c.unknown)
        v = NAN;
    if (unknown)
        *unknown = c.unknown;
    return v;
}
