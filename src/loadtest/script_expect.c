/* loadtest/script_expect.c: a request's `expect:` checks (the expect
 * plugin's expectations.js): statusCode and notStatusCode (a code or a
 * list), contentType, hasHeader, headerEquals [name, value], hasProperty
 * and notHasProperty (lodash paths), equals [a, b, ...] and matchesRegexp;
 * values are templates rendered per user. cdnHit and jmespath/jpath are
 * warned about and skipped. Without config.plugins.expect nothing is
 * compiled and one warning names the ignored checks, since Artillery
 * ignores them silently.
 */
#include "loadtest/script.h"
#include "loadtest/script_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const expect_keys[] = {"statusCode", "notStatusCode", "contentType",
    "hasHeader", "headerEquals", "hasProperty", "notHasProperty", "equals", "matchesRegexp",
    "cdnHit", "jmespath", "jpath", "description"};
static const struct { const char *key; lt_exp_kind kind; } kinds[] = {
    {"statusCode", LT_EXP_STATUS}, {"notStatusCode", LT_EXP_NOT_STATUS},
    {"contentType", LT_EXP_CONTENT_TYPE}, {"hasHeader", LT_EXP_HAS_HEADER},
    {"headerEquals", LT_EXP_HEADER_EQUALS}, {"hasProperty", LT_EXP_HAS_PROPERTY},
    {"notHasProperty", LT_EXP_NOT_HAS_PROPERTY}, {"equals", LT_EXP_EQUALS},
    {"matchesRegexp", LT_EXP_MATCHES_REGEXP}};

static int status_code(lt_loader *L, const conf_node *n, lt_expect *e, const char *what)
{
    double v;
    if (!conf_number(n, &v) || v != (int)v || v < 100 || v > 999) {
        conf_errf(L->err, n, "%s must be an HTTP status code or a list of them", what);
        return -EINVAL;
    }
    if (e->nstatus == CU_ARRAY_LEN(e->status)) {
        conf_errf(L->err, n, "%s: at most %zu codes", what, CU_ARRAY_LEN(e->status));
        return -EINVAL;
    }
    e->status[e->nstatus++] = (int)v;
    return 0;
}

static lt_expect *push(lt_request *q, lt_exp_kind kind, const char *type)
{
    q->expects = cu_realloc(q->expects, (q->nexpects + 1) * sizeof *q->expects);
    lt_expect *e = &q->expects[q->nexpects++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->type = cu_strdup(type);
    return e;
}

static int compile_one(lt_loader *L, lt_request *q, const char *k, const conf_node *key,
                       const conf_node *v)
{
    int kind = -1;
    for (size_t i = 0; i < CU_ARRAY_LEN(kinds) && kind < 0; i++)
        if (!strcmp(k, kinds[i].key))
            kind = (int)kinds[i].kind;
    if (kind < 0) { /* unknown keys were warned about by conf_check_keys */
        if (!strcmp(k, "cdnHit") || !strcmp(k, "jmespath") || !strcmp(k, "jpath"))
            conf_warnf(key, "expect check '%s' is not supported by cutover and is skipped", k);
        return 0;
    }
    if (kind == LT_EXP_HEADER_EQUALS) {
        if (v->type != CONF_SEQ || v->n != 2 || !conf_is_scalar(v->items[0]) ||
            !conf_is_scalar(v->items[1])) {
            conf_errf(L->err, v, "headerEquals must be a list [header-name, value]");
            return -EINVAL;
        }
        cu_buf type = CU_BUF_INIT;
        lt_scalar_text(&type, v->items[0]);
        char *t = cu_asprintf("header %s values equals", type.data ? type.data : "");
        lt_expect *e = push(q, LT_EXP_HEADER_EQUALS, t);
        free(t);
        cu_buf_free(&type);
        e->text = lt_loader_tmpl(L, v->items[0], "headerEquals");
        e->equals = cu_calloc(1, sizeof *e->equals);
        e->equals[0] = lt_loader_tmpl(L, v->items[1], "headerEquals");
        e->nequals = 1;
        return e->text && e->equals[0] ? 0 : -EINVAL;
    }
    /* MATCHES_REGEXP gets its kind once e->re holds a compiled pattern */
    lt_expect *e = push(q, kind == LT_EXP_MATCHES_REGEXP ? LT_EXP_EQUALS : (lt_exp_kind)kind, k);
    switch ((lt_exp_kind)kind) {
    case LT_EXP_STATUS:
    case LT_EXP_NOT_STATUS:
        if (v->type == CONF_SEQ) {
            e->status_list = true;
            for (size_t j = 0; j < v->n; j++)
                if (status_code(L, v->items[j], e, k) != 0)
                    return -EINVAL;
            return 0;
        }
        return status_code(L, v, e, k);
    case LT_EXP_EQUALS:
        if (v->type != CONF_SEQ || v->n < 1) {
            conf_errf(L->err, v, "equals must be a list of values to compare");
            return -EINVAL;
        }
        e->equals = cu_calloc(v->n, sizeof *e->equals);
        for (size_t j = 0; j < v->n; j++) {
            if (!(e->equals[j] = lt_loader_tmpl(L, v->items[j], "equals")))
                return -EINVAL;
            e->nequals++;
        }
        return 0;
    case LT_EXP_MATCHES_REGEXP: {
        if (v->type != CONF_STRING || strstr(v->str, "{{")) {
            conf_errf(L->err, v, "matchesRegexp must be a regular expression (templates are not "
                      "supported here)");
            return -EINVAL;
        }
        lt_capture c;
        memset(&c, 0, sizeof c);
        if (lt_loader_regexp(L, &c, v, NULL, NULL) != 0)
            return -EINVAL;
        e->re = c.re;
        e->kind = LT_EXP_MATCHES_REGEXP;
        q->needs_body = true;
        return 0;
    }
    default:
        if (!conf_is_scalar(v) || v->type == CONF_NULL) {
            conf_errf(L->err, v, "%s must be a string (got a %s)", k, conf_type_name(v->type));
            return -EINVAL;
        }
        if (!(e->text = lt_loader_tmpl(L, v, k)))
            return -EINVAL;
        if (kind == LT_EXP_HAS_HEADER && v->type == CONF_STRING) {
            for (const char *p = v->str; *p; p++)
                if (isupper((unsigned char)*p)) {
                    conf_warnf(v, "hasHeader '%s' is not lower-case: it never matches (response "
                               "header names are lower-case, in Artillery and here)", v->str);
                    break;
                }
        }
        if (kind != LT_EXP_HAS_HEADER)
            q->needs_body = true;
        return 0;
    }
}

int lt_expects_compile(lt_loader *L, lt_request *q, const conf_node *n)
{
    if (!L->s->plugins.expect) {
        if (!n)
            return 0;
        cu_buf names = CU_BUF_INIT;
        size_t count = n->type == CONF_SEQ ? n->n : 1;
        for (size_t i = 0; i < count; i++) {
            const conf_node *it = n->type == CONF_SEQ ? n->items[i] : n;
            for (size_t k = 0; it->type == CONF_MAP && k < it->n; k++)
                cu_buf_appendf(&names, "%s%s", names.len ? ", " : "", conf_key(it, k));
        }
        conf_warnf(n, "expect checks ignored (%s): config.plugins.expect is not enabled, and "
                   "Artillery ignores them silently; add `plugins: {expect: {}}` to run them",
                   names.data ? names.data : "none");
        cu_buf_free(&names);
        return 0;
    }
    if (n && n->type != CONF_SEQ && n->type != CONF_MAP) {
        conf_errf(L->err, n, "expect must be a list of checks such as [{statusCode: 200}]");
        return -EINVAL;
    }
    size_t count = n ? (n->type == CONF_SEQ ? n->n : 1) : 0;
    for (size_t i = 0; i < count; i++) {
        const conf_node *it = n->type == CONF_SEQ ? n->items[i] : n;
        if (it->type != CONF_MAP) {
            conf_errf(L->err, it, "an expect check must be a map such as {statusCode: 200}");
            return -EINVAL;
        }
        conf_check_keys(it, expect_keys, CU_ARRAY_LEN(expect_keys), "expect");
        /* a list item is one check (its first key, as the plugin reads it); a map, one per key */
        size_t keys = n->type == CONF_SEQ ? CU_MIN(it->n, (size_t)1) : it->n;
        for (size_t k = 0; k < keys; k++)
            if (compile_one(L, q, conf_key(it, k), it->keys[k], it->items[k]) != 0)
                return -EINVAL;
    }
    if (q->nexpects == 0 && L->s->plugins.expect_default_200) {
        lt_expect *e = push(q, LT_EXP_STATUS, "statusCode");
        e->status[e->nstatus++] = 200;
    }
    return 0;
}

void lt_expect_free(lt_expect *e)
{
    lt_tmpl_free(e->text);
    for (size_t j = 0; j < e->nequals; j++)
        lt_tmpl_free(e->equals[j]);
    free(e->equals);
    if (e->kind == LT_EXP_MATCHES_REGEXP)
        regfree(&e->re);
    free(e->type);
}
