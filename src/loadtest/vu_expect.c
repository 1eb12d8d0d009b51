/* loadtest/vu_expect.c: the expect plugin at run time, as its index.js,
 * expectations.js and formatters.js do it in Artillery 2.0.21: each check
 * of a request gives a result {ok, expected, type, got}; counters
 * plugins.expect.ok / .failed (and .<type>) are counted; the results are
 * printed in the configured format (pretty: every checked request;
 * prettyError: failed ones; json: one JSON line per request; silent:
 * nothing); any failure makes the run exit 21; with reportFailuresAsErrors
 * the user fails with "Failed expectations for request <url>" (or the
 * request's name with useOnlyRequestNames).
 *
 * The body the checks see is parsed as JSON only when the Content-Type is
 * application/json, problem+json or ld+json (a parse failure is null), as
 * the plugin's maybeParseBody does. Its type (what contentType: json needs)
 * comes from checking the text (jsontext.c), and hasProperty /
 * notHasProperty (lodash's _.has(body, "a.b[0].c")) follow their path over
 * the text too, so no check loads the body (a capture may, lt_body). This
 * path allocates (JSON results, rendered text); it runs only when the
 * expect plugin is on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "loadtest/vu_int.h"

void lt_vu_full_url(lt_vu *vu, cu_buf *out)
{
    const char *url = vu->url.data ? vu->url.data : "";
    if (url[0] == '/')
        cu_buf_appends(out, vu->w->run->script->target);
    cu_buf_appends(out, url);
}

/* url.parse(u).path: from the path on, without the fragment. */
static void url_path(const char *u, cu_buf *out)
{
    const char *p = strstr(u, "://");
    p = p ? p + 3 + strcspn(p + 3, "/?#") : u;
    cu_buf_append(out, p, strcspn(p, "#"));
    if (!out->len)
        cu_buf_appendc(out, '/');
}

static const http_header *header(const http_response *res, const char *name)
{
    /* Node lower-cases response header names: a name with capitals never matches */
    for (const char *c = name; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            return NULL;
    const http_header *h = http_header_find(res->headers, res->nheaders, name);
    return h && h->value_len ? h : NULL; /* an empty value is falsy */
}

static json_t *result(bool ok, json_t *expected, const char *type, json_t *got, bool type_first)
{
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_boolean(ok));
    if (type_first)
        json_object_set_new(o, "type", json_string(type));
    json_object_set_new(o, "expected", expected);
    if (!type_first)
        json_object_set_new(o, "type", json_string(type));
    json_object_set_new(o, "got", got);
    return o;
}

static json_t *str_printf(const char *fmt, const char *a)
{
    char *s = cu_asprintf(fmt, a);
    json_t *j = json_string(s);
    free(s);
    return j;
}

static json_t *status_expected(const lt_expect *e)
{
    if (!e->status_list)
        return json_integer(e->status[0]);
    json_t *a = json_array();
    for (size_t i = 0; i < e->nstatus; i++)
        json_array_append_new(a, json_integer(e->status[i]));
    return a;
}

/* One check. json_ct: the Content-Type is JSON; type: then the body's JSON
 * type (lt_json_text_type: 0 when it does not parse), else 0; text is the
 * raw body. */
static json_t *check(lt_vu *vu, const lt_expect *e, const http_response *res, lt_body *body,
                     bool json_ct, int type, const char *text, size_t text_len)
{
    bool null = json_ct && (type == 0 || type == 'n'), structured = type == '{' || type == '[';
    cu_buf t = CU_BUF_INIT;
    json_t *out = NULL;
    if (e->text)
        lt_vu_render(vu, e->text, &t);
    const char *tx = t.data ? t.data : "";
    switch (e->kind) {
    case LT_EXP_STATUS:
    case LT_EXP_NOT_STATUS: {
        bool in = false;
        for (size_t i = 0; i < e->nstatus; i++)
            in = in || e->status[i] == res->status;
        if (e->kind == LT_EXP_STATUS) {
            out = result(in, status_expected(e), e->type, json_integer(res->status), false);
        } else {
            cu_buf x = CU_BUF_INIT;
            for (size_t i = 0; i < e->nstatus; i++)
                cu_buf_appendf(&x, "%s%d", i ? "," : "", e->status[i]);
            out = result(!in, str_printf("Status code different than %s", x.data), e->type,
                         json_integer(res->status), false);
            cu_buf_free(&x);
        }
        break;
    }
    case LT_EXP_CONTENT_TYPE: {
        const http_header *ct = http_header_find(res->headers, res->nheaders, "content-type");
        char *ctv = ct ? cu_strndup(ct->value, ct->value_len) : NULL;
        if (!strcmp(tx, "json")) {
            bool typed = ctv && (strstr(ctv, "application/json") || strstr(ctv, "application/problem+json") ||
                                 strstr(ctv, "application/ld+json"));
            bool ok = structured && typed;
            out = result(ok, json_string(tx), e->type,
                         ok ? json_string("json")
                         : null ? json_string("could not parse response body as JSON")
                                     : str_printf("content-type is %s", ctv ? ctv : "undefined"),
                         false);
        } else {
            bool ok = ctv && !strcasecmp(ctv, tx);
            out = result(ok, json_string(tx), e->type,
                         json_string(ctv ? ctv : "content-type header not set"), false);
        }
        free(ctv);
        break;
    }
    case LT_EXP_HAS_HEADER: {
        bool ok = header(res, tx) != NULL;
        out = result(ok, json_string(tx), e->type,
                     ok ? json_string(tx) : str_printf("response has no %s header", tx), false);
        break;
    }
    case LT_EXP_HEADER_EQUALS: {
        const http_header *h = header(res, tx);
        if (h) {
            cu_buf want = CU_BUF_INIT;
            lt_vu_render(vu, e->equals[0], &want);
            bool ok = h->value_len == want.len && !memcmp(h->value, want.data ? want.data : "", want.len);
            out = result(ok, json_string(want.data ? want.data : ""), e->type,
                         json_stringn(h->value, h->value_len), true);
            cu_buf_free(&want);
        } else {
            out = result(false, str_printf("response to have %s header", tx), e->type,
                         str_printf("response has no %s header", tx), true);
        }
        break;
    }
    case LT_EXP_HAS_PROPERTY:
    case LT_EXP_NOT_HAS_PROPERTY: {
        bool object = structured;
        bool has = object && lt_json_text_has_path(text, text_len, tx);
        bool ok = object && (e->kind == LT_EXP_HAS_PROPERTY ? has : !has);
        out = result(ok, json_string(tx), e->type,
                     !object ? json_string("response body is not an object")
                     : ok    ? json_string(tx)
                             : str_printf(e->kind == LT_EXP_HAS_PROPERTY
                                              ? "response body has no %s property"
                                              : "response body has %s property", tx),
                     false);
        break;
    }
    case LT_EXP_EQUALS: {
        cu_buf all = CU_BUF_INIT, first = CU_BUF_INIT, v = CU_BUF_INIT;
        bool same = true;
        for (size_t i = 0; i < e->nequals; i++) {
            cu_buf_reset(&v);
            lt_vu_render(vu, e->equals[i], &v);
            if (i == 0)
                cu_buf_appends(&first, v.data ? v.data : "");
            else
                same = same && !strcmp(first.data ? first.data : "", v.data ? v.data : "");
            cu_buf_appendf(&all, "%s%s", i ? ", " : "", v.data ? v.data : "");
        }
        out = result(same, json_string("all values to be equal"), e->type,
                     json_string(all.data ? all.data : ""), false);
        cu_buf_free(&all);
        cu_buf_free(&first);
        cu_buf_free(&v);
        break;
    }
    case LT_EXP_MATCHES_REGEXP: {
        char *s = cu_strndup(text ? text : "", text ? text_len : 0);
        bool m = regexec(&e->re, s, 0, NULL, 0) == 0;
        free(s);
        out = result(m, json_true(), e->type, json_boolean(m), false);
        break;
    }
    }
    cu_buf_free(&t);
    return out;
}

/* console.log of a value: strings as they are, arrays as util.inspect. */
static void text_of(cu_buf *b, const json_t *v)
{
    if (json_is_string(v)) {
        cu_buf_append(b, json_string_value(v), json_string_length(v));
    } else if (json_is_array(v)) {
        cu_buf_appends(b, "[ ");
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                cu_buf_appends(b, ", ");
            lt_json_dump(b, json_array_get(v, i));
        }
        cu_buf_appends(b, " ]");
    } else {
        lt_json_dump(b, v);
    }
}

static void exchange_context(lt_vu *vu, const http_response *res, const char *text, size_t len,
                             const char *full_url, cu_buf *b)
{
    cu_buf_appendf(b, "  Request params:\n    %s\n    \"\"\n  Headers:\n", full_url);
    for (size_t i = 0; i < res->nheaders; i++) {
        cu_buf_appends(b, "   ");
        for (size_t k = 0; k < res->headers[i].name_len; k++) {
            char c = res->headers[i].name[k];
            cu_buf_appendc(b, c >= 'A' && c <= 'Z' ? (char)(c + 32) : c);
        }
        cu_buf_appends(b, " : ");
        cu_buf_append(b, res->headers[i].value, res->headers[i].value_len);
        cu_buf_appendc(b, '\n');
    }
    cu_buf_appends(b, "  Body:\n    ");
    if (text) {
        json_t *s = json_stringn_nocheck(text, len);
        lt_json_dump(b, s);
        json_decref(s);
    } else {
        cu_buf_appends(b, "undefined");
    }
    cu_buf_appends(b, "\n  User variables:\n");
    const char *k;
    json_t *v;
    json_object_foreach(vu->vars, k, v) {
        cu_buf_appendf(b, "     %s : ", k);
        text_of(b, v);
        cu_buf_appendc(b, '\n');
    }
}

bool lt_vu_expects(lt_vu *vu, const lt_request *r, const http_response *res, lt_body *body, char *code,
                   size_t code_len)
{
    lt_worker *w = vu->w;
    const lt_plugins *pl = &w->run->script->plugins;
    int64_t ts = cu_wall_ms();
    const http_header *ct = http_header_find(res->headers, res->nheaders, "content-type");
    bool json_ct = ct && res->body && (memmem(ct->value, ct->value_len, "application/json", 16) ||
                                       memmem(ct->value, ct->value_len, "application/problem+json", 24) ||
                                       memmem(ct->value, ct->value_len, "application/ld+json", 19));
    int type = json_ct ? lt_body_type(body) : 0;
    json_t *results = json_array();
    bool all = true;
    for (size_t i = 0; i < r->nexpects; i++) {
        json_t *x = check(vu, &r->expects[i], res, body, json_ct, type, res->body, res->body_len);
        bool ok = json_is_true(json_object_get(x, "ok"));
        char name[300];
        snprintf(name, sizeof name, "plugins.expect.%s.%s", ok ? "ok" : "failed", r->expects[i].type);
        lt_vu_count(w, ok ? "plugins.expect.ok" : "plugins.expect.failed", 1, ts);
        lt_vu_count(w, name, 1, ts);
        all = all && ok;
        json_array_append_new(results, x);
    }
    cu_buf full = CU_BUF_INIT, out = CU_BUF_INIT, name = CU_BUF_INIT;
    lt_vu_full_url(vu, &full);
    if (r->name)
        lt_vu_render(vu, r->name, &name);
    if (pl->expect_format == LT_EXPECT_JSON) {
        json_t *o = json_object();
        if (r->name)
            json_object_set_new(o, "name", json_string(name.data ? name.data : ""));
        cu_buf path = CU_BUF_INIT;
        url_path(full.data, &path);
        json_object_set_new(o, "url", json_string(path.data));
        cu_buf_free(&path);
        json_object_set(o, "results", results);
        lt_json_dump(&out, o);
        cu_buf_appendc(&out, '\n');
        json_decref(o);
    } else if (pl->expect_format == LT_EXPECT_PRETTY ||
               (pl->expect_format == LT_EXPECT_PRETTY_ERROR && !all)) {
        cu_buf_appendf(&out, "* %s ", vu->method);
        url_path(full.data, &out);
        cu_buf_appendf(&out, " %s%s\n\n", r->name ? "- " : "", r->name && name.data ? name.data : "");
        for (size_t i = 0; i < json_array_size(results); i++) {
            json_t *x = json_array_get(results, i);
            bool ok = json_is_true(json_object_get(x, "ok"));
            cu_buf_appendf(&out, "  %s %s ", ok ? "ok" : "not ok",
                           json_string_value(json_object_get(x, "type")));
            text_of(&out, json_object_get(x, "got"));
            cu_buf_appends(&out, " \n");
            if (!ok) {
                cu_buf_appends(&out, "  expected: ");
                text_of(&out, json_object_get(x, "expected"));
                cu_buf_appends(&out, "\n       got: ");
                text_of(&out, json_object_get(x, "got"));
                cu_buf_appendc(&out, '\n');
            }
        }
        if (!all)
            exchange_context(vu, res, res->body, res->body_len, full.data, &out);
    }
    if (out.len)
        fwrite(out.data, 1, out.len, stdout); /* one write: lines from threads stay whole */
    json_decref(results);
    if (!all) {
        atomic_store(&w->run->expect_failed, 1);
        snprintf(code, code_len, "Failed expectations for request %s",
                 pl->expect_only_names && r->name && name.data ? name.data : full.data);
    }
    cu_buf_free(&full);
    cu_buf_free(&out);
    cu_buf_free(&name);
    return all || !pl->expect_failures_as_errors;
}
