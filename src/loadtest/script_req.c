/* loadtest/script_req.c: one HTTP step of a flow, from its YAML map to
 * lt_request: url, headers, query, bodies (json, body, form, multipart parts
 * read from files now), cookies, auth, captures (JSONPath, header, regexp
 * translated from JavaScript's syntax to POSIX ERE), expect checks, and the
 * metrics-by-endpoint name.
 *
 * Artillery's validation applies (an HTTP step needs a string url, a capture
 * needs `as`); errors stop the load with file:line:col, and what Artillery
 * accepts but cutover does not do is a warning naming the place. On error
 * the request is left partly built for lt_request_free.
 */
#include "loadtest/script.h"
#include "loadtest/script_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_template(const conf_node *n)
{
    return n->type == CONF_STRING && n->str && strstr(n->str, "{{");
}

/* ---- JavaScript regular expressions -> POSIX ERE ------------------------------------------ */
typedef struct jsre {
    cu_buf out;
    int *map;               /* JS group number -> POSIX group number */
    char **names;           /* names[i]: name of JS group i+1, or NULL */
    size_t ngroups, nposix;
} jsre;

static void jsre_free(jsre *r)
{
    cu_buf_free(&r->out);
    for (size_t i = 0; i < r->ngroups; i++)
        free(r->names[i]);
    free(r->names);
    free(r->map);
}

static void ere_literal(cu_buf *o, unsigned c)
{
    if (c < 0x80) {
        if (strchr(".[]()*+?{}|^$\\", (int)c) && c)
            cu_buf_appendc(o, '\\');
        cu_buf_appendc(o, (char)c);
    } else if (c < 0x800) {
        cu_buf_appendc(o, (char)(0xC0 | (c >> 6)));
        cu_buf_appendc(o, (char)(0x80 | (c & 0x3F)));
    } else {
        cu_buf_appendc(o, (char)(0xE0 | (c >> 12)));
        cu_buf_appendc(o, (char)(0x80 | ((c >> 6) & 0x3F)));
        cu_buf_appendc(o, (char)(0x80 | (c & 0x3F)));
    }
}

/* \n \t \xHH \uHHHH ... at s (after the backslash): the code point, or -1. */
static long escape_char(const char *s, size_t *used)
{
    *used = 1;
    switch (*s) {
    case 'n': return '\n';
    case 't': return '\t';
    case 'r': return '\r';
    case 'f': return '\f';
    case 'v': return '\v';
    case 'x':
    case 'u': {
        size_t len = *s == 'x' ? 2 : 4;
        for (size_t i = 1; i <= len; i++)
            if (!isxdigit((unsigned char)s[i]))
                return -1;
        char hex[5] = {0};
        memcpy(hex, s + 1, len);
        *used = len + 1;
        long v = strtol(hex, NULL, 16);
        return v == 0 ? -1 : v;
    }
    }
    return -1;
}

static int jsre_class(const char **ps, cu_buf *o, char *msg)
{
    const char *s = *ps + 1;
    bool neg = false, rbracket = false, dash = false, caret = false;
    cu_buf m = CU_BUF_INIT;
    if (*s == '^') {
        neg = true;
        s++;
    }
    for (; *s && *s != ']'; s++) {
        if (*s != '\\') {
            if (*s == '^')
                caret = true;
            else
                cu_buf_appendc(&m, *s);
            continue;
        }
        s++;
        size_t used;
        long c;
        switch (*s) {
        case 'd': cu_buf_appends(&m, "0-9"); break;
        case 'w': cu_buf_appends(&m, "A-Za-z0-9_"); break;
        case 's': cu_buf_appends(&m, " \t\n\r\f\v"); break;
        case ']': rbracket = true; break;
        case '-': dash = true; break;
        case '^': caret = true; break;
        case 'D': case 'W': case 'S': case 'b': case 'B': case '\0':
            snprintf(msg, 128, "\\%c inside [...] is not supported", *s ? *s : '?');
            cu_buf_free(&m);
            return -EINVAL;
        default:
            if ((c = escape_char(s, &used)) >= 0) {
                cu_buf tmp = CU_BUF_INIT;
                ere_literal(&tmp, (unsigned)c);
                /* inside a bracket expression nothing is special but ] ^ - */
                cu_buf_append(&m, tmp.data[0] == '\\' ? tmp.data + 1 : tmp.data,
                              tmp.data[0] == '\\' ? tmp.len - 1 : tmp.len);
                cu_buf_free(&tmp);
                s += used - 1;
            } else {
                cu_buf_appendc(&m, *s);
            }
        }
    }
    if (*s != ']') {
        snprintf(msg, 128, "unterminated character class");
        cu_buf_free(&m);
        return -EINVAL;
    }
    if (!m.len && !rbracket && !dash && !caret) {
        snprintf(msg, 128, "empty character class");
        cu_buf_free(&m);
        return -EINVAL;
    }
    cu_buf_appendc(o, '[');
    if (neg)
        cu_buf_appendc(o, '^');
    if (rbracket)
        cu_buf_appendc(o, ']');
    if (m.len)
        cu_buf_append(o, m.data, m.len);
    if (caret)
        cu_buf_appendc(o, '^');
    if (dash)
        cu_buf_appendc(o, '-');
    cu_buf_appendc(o, ']');
    cu_buf_free(&m);
    *ps = s;
    return 0;
}

static bool quantifier_brace(const char *s)
{
    s++;
    if (!isdigit((unsigned char)*s))
        return false;
    while (isdigit((unsigned char)*s))
        s++;
    if (*s == ',')
        for (s++; isdigit((unsigned char)*s);)
            s++;
    return *s == '}';
}

static int jsre_translate(const char *src, jsre *r, char *msg)
{
    cu_buf *o = &r->out;
    for (const char *s = src; *s; s++) {
        switch (*s) {
        case '\\': {
            s++;
            size_t used;
            long c;
            if (*s == 'd') {
                cu_buf_appends(o, "[0-9]");
            } else if (*s == 'D') {
                cu_buf_appends(o, "[^0-9]");
            } else if (*s && strchr("wWsSbB", *s)) {
                cu_buf_appendc(o, '\\');
                cu_buf_appendc(o, *s);
            } else if (*s >= '1' && *s <= '9') {
                snprintf(msg, 128, "back-references (\\%c) are not supported", *s);
                return -EINVAL;
            } else if (!*s) {
                snprintf(msg, 128, "\\ at end of pattern");
                return -EINVAL;
            } else if ((c = escape_char(s, &used)) >= 0) {
                ere_literal(o, (unsigned)c);
                s += used - 1;
            } else {
                ere_literal(o, (unsigned char)*s);
            }
            break;
        }
        case '[':
            if (jsre_class(&s, o, msg) != 0)
                return -EINVAL;
            break;
        case '(': {
            bool capture = true;
            char *name = NULL;
            if (s[1] == '?') {
                if (s[2] == ':') {
                    capture = false;
                    s += 2;
                } else if (s[2] == '<' && s[3] != '=' && s[3] != '!') {
                    const char *e = strchr(s + 3, '>');
                    if (!e) {
                        snprintf(msg, 128, "unterminated group name");
                        return -EINVAL;
                    }
                    name = cu_strndup(s + 3, (size_t)(e - s - 3));
                    s = e;
                } else {
                    snprintf(msg, 128, "look-around groups (?%c...) are not supported", s[2]);
                    return -EINVAL;
                }
            }
            r->nposix++;
            if (capture) {
                r->map = cu_realloc(r->map, (r->ngroups + 1) * sizeof *r->map);
                r->names = cu_realloc(r->names, (r->ngroups + 1) * sizeof *r->names);
                r->map[r->ngroups] = (int)r->nposix;
                r->names[r->ngroups++] = name;
            }
            cu_buf_appendc(o, '(');
            break;
        }
        case '{':
            if (quantifier_brace(s)) {
                const char *e = strchr(s, '}');
                cu_buf_append(o, s, (size_t)(e - s + 1));
                s = e;
            } else {
                cu_buf_appends(o, "\\{");
            }
            if (s[1] == '?')
                s++; /* lazy: POSIX has only greedy */
            break;
        case '*':
        case '+':
        case '?':
            cu_buf_appendc(o, *s);
            if (s[1] == '?')
                s++;
            break;
        default:
            cu_buf_appendc(o, *s);
        }
    }
    if (!o->data)
        cu_buf_appends(o, "");
    return 0;
}

/* Compiles `pattern` with JavaScript flags into c->re; resolves `group`. */
int lt_loader_regexp(lt_loader *L, lt_capture *c, const conf_node *pat, const conf_node *flags,
                     const conf_node *group)
{
    char msg[128] = "";
    jsre r = {CU_BUF_INIT, NULL, NULL, 0, 0};
    int cflags = REG_EXTENDED;
    int rc = -EINVAL;
    if (flags) {
        if (flags->type != CONF_STRING) {
            conf_errf(L->err, flags, "flags must be a string such as \"i\"");
            goto out;
        }
        for (const char *f = flags->str; *f; f++) {
            if (*f == 'i')
                cflags |= REG_ICASE;
            else if (*f == 'm')
                cflags |= REG_NEWLINE;
            else if (!strchr("gsuyd", *f)) {
                conf_errf(L->err, flags, "invalid regular expression flag '%c'", *f);
                goto out;
            }
        }
    }
    if (jsre_translate(pat->str, &r, msg) != 0) {
        conf_errf(L->err, pat, "invalid regexp '%s': %s", pat->str, msg);
        goto out;
    }
    int group_ix = 0;
    if (group) {
        const char *gname = group->type == CONF_STRING ? group->str : NULL;
        char *end = NULL;
        long g = -1;
        if (group->type == CONF_INT)
            g = (long)group->i;
        else if (gname && *gname && (g = strtol(gname, &end, 10), *end == '\0'))
            gname = NULL;
        else
            g = -1;
        if (gname) {
            for (size_t i = 0; i < r.ngroups && !group_ix; i++)
                if (r.names[i] && !strcmp(r.names[i], gname))
                    group_ix = r.map[i];
            if (!group_ix) {
                conf_errf(L->err, group, "regexp '%s' has no group named '%s'", pat->str, gname);
                goto out;
            }
        } else if (g < 0 || (size_t)g > r.ngroups) {
            conf_errf(L->err, group, "group must be 0..%zu or a group name for regexp '%s'", r.ngroups,
                      pat->str);
            goto out;
        } else {
            group_ix = g ? r.map[g - 1] : 0;
        }
    }
    int e = regcomp(&c->re, r.out.data, cflags);
    if (e != 0) {
        char buf[128];
        regerror(e, &c->re, buf, sizeof buf);
        conf_errf(L->err, pat, "invalid regexp '%s': %s", pat->str, buf);
        goto out;
    }
    c->kind = LT_CAP_REGEXP;
    c->group = group_ix;
    rc = 0;
out:
    jsre_free(&r);
    return rc;
}

/* ---- captures and expects ------------------------------------------------------------------ */
static const char *const capture_keys[] = {"json", "header", "regexp", "selector", "xpath", "as",
                                           "strict", "group", "flags", "attr", "index"};

static int compile_capture(lt_loader *L, lt_request *q, const conf_node *n)
{
    if (n->type != CONF_MAP) {
        conf_errf(L->err, n, "a capture must be a map such as {json: \"$.id\", as: id} (got a %s)",
                  conf_type_name(n->type));
        return -EINVAL;
    }
    conf_check_keys(n, capture_keys, CU_ARRAY_LEN(capture_keys), "capture");
    const conf_node *as = conf_get(n, "as"), *strict = conf_get(n, "strict");
    const conf_node *js = conf_get(n, "json"), *hd = conf_get(n, "header"), *re = conf_get(n, "regexp");
    if (!as || as->type != CONF_STRING || !*as->str) {
        conf_errf(L->err, as ? as : n, "capture needs 'as': the variable to store the value in");
        return -EINVAL;
    }
    if (strict && strict->type != CONF_BOOL) {
        conf_errf(L->err, strict, "strict must be true or false");
        return -EINVAL;
    }
    const conf_node *expr = js ? js : hd ? hd : re;
    if (!expr) {
        const conf_node *other = conf_get(n, "selector") ? conf_get(n, "selector") : conf_get(n, "xpath");
        if (other)
            conf_errf(L->err, other, "captures with %s are not supported by cutover (json, header "
                      "and regexp are)", conf_get(n, "selector") ? "selector" : "xpath");
        else
            conf_errf(L->err, n, "capture needs one of json, header or regexp");
        return -EINVAL;
    }
    if (expr->type != CONF_STRING) {
        conf_errf(L->err, expr, "%s must be a string (got a %s)", js ? "json" : hd ? "header" : "regexp",
                  conf_type_name(expr->type));
        return -EINVAL;
    }
    if (is_template(expr)) {
        conf_errf(L->err, expr, "templated capture expressions are not supported: '%s'", expr->str);
        return -EINVAL;
    }
    lt_capture *c = &q->captures[q->ncaptures++];
    memset(c, 0, sizeof *c);
    c->as = cu_strdup(as->str);
    c->strict = strict ? strict->b : L->default_strict;
    L->defs = cu_realloc(L->defs, (L->ndefs + 1) * sizeof *L->defs);
    L->defs[L->ndefs++] = (lt_defn){lt_root_name(as->str), L->scenario};
    if (js) {
        char e[CU_ERRLEN] = "";
        c->jsonpath = lt_jsonpath_compile(js->str, e);
        if (!c->jsonpath) {
            conf_errf(L->err, js, "invalid JSONPath '%s': %s", js->str, e);
            return -EINVAL;
        }
        c->kind = LT_CAP_JSON;
        q->needs_body = true;
    } else if (hd) {
        c->header = cu_strdup(hd->str);
        bool upper = false;
        for (char *p = c->header; *p; p++) {
            upper = upper || isupper((unsigned char)*p);
            *p = (char)tolower((unsigned char)*p);
        }
        if (upper)
            conf_warnf(hd, "header capture '%s' is not lower-case: Artillery never matches it, "
                       "cutover matches header names case-insensitively", hd->str);
        c->kind = LT_CAP_HEADER;
    } else {
        if (lt_loader_regexp(L, c, re, conf_get(n, "flags"), conf_get(n, "group")) != 0)
            return -EINVAL;
        q->needs_body = true;
    }
    return 0;
}

/* ---- multipart parts ----------------------------------------------------------------------- */
static const char *guess_type(const char *path)
{
    static const char *const types[][2] = {
        {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"}, {"png", "image/png"}, {"gif", "image/gif"},
        {"webp", "image/webp"}, {"svg", "image/svg+xml"}, {"txt", "text/plain"},
        {"csv", "text/csv"}, {"html", "text/html"}, {"json", "application/json"},
        {"xml", "application/xml"}, {"pdf", "application/pdf"}, {"zip", "application/zip"},
        {"gz", "application/gzip"}, {"mp4", "video/mp4"}, {"mp3", "audio/mpeg"}};
    const char *dot = strrchr(path, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < CU_ARRAY_LEN(types); i++)
            if (!strcasecmp(dot + 1, types[i][0]))
                return types[i][1];
    return "application/octet-stream";
}

static int compile_part(lt_loader *L, lt_part *p, const char *name, const conf_node *v)
{
    p->name = cu_strdup(name);
    char what[160];
    snprintf(what, sizeof what, "formData.%s", name);
    if (v->type != CONF_MAP) {
        p->value = lt_loader_tmpl(L, v, what);
        return p->value ? 0 : -EINVAL;
    }
    const conf_node *from = conf_get(v, "fromFile"), *path = conf_get(v, "path");
    const conf_node *value = conf_get(v, "value"), *ct = conf_get(v, "contentType");
    static const char *const keys[] = {"fromFile", "path", "value", "contentType"};
    conf_check_keys(v, keys, CU_ARRAY_LEN(keys), what);
    if (ct && ct->type != CONF_STRING) {
        conf_errf(L->err, ct, "contentType must be a string");
        return -EINVAL;
    }
    const conf_node *file = from ? from : path;
    if (!file) {
        if (!value) {
            conf_errf(L->err, v, "%s: expected a value, {fromFile: path} or {value: x, contentType: t}",
                      what);
            return -EINVAL;
        }
        p->value = lt_loader_tmpl(L, value, what);
        if (ct)
            p->content_type = cu_strdup(ct->str);
        return p->value ? 0 : -EINVAL;
    }
    if (file->type != CONF_STRING || !*file->str) {
        conf_errf(L->err, file, "%s: the file path must be a string", what);
        return -EINVAL;
    }
    if (!from)
        conf_warnf(file, "formData field '%s' uses {path: ...}: cutover uploads the file, but Artillery "
                   "2.0.21 sends no request and fails the user with `errors.source.on is not a "
                   "function` (use fromFile: to be portable)", name);
    p->file_path = cu_path_join(L->s->dir, file->str);
    const char *base = strrchr(p->file_path, '/');
    p->filename = cu_strdup(base ? base + 1 : p->file_path);
    p->content_type = cu_strdup(ct ? ct->str : guess_type(p->file_path));
    char e[CU_ERRLEN];
    if (cu_read_file(p->file_path, &p->file_data, e) != 0) {
        conf_errf(L->err, file, "formData field '%s': cannot read the file: %s", name, e);
        return -EINVAL;
    }
    return 0;
}

/* ---- metrics-by-endpoint names -------------------------------------------------------------- */
/* decodeURIComponent, keeping the text as is when it is malformed. */
static void uri_decode(cu_buf *out, const char *s, size_t n)
{
    cu_buf d = CU_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            cu_buf_appendc(&d, s[i]);
            continue;
        }
        int hi = i + 1 < n ? cu_hexval(s[i + 1]) : -1, lo = i + 2 < n ? cu_hexval(s[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
            cu_buf_free(&d);
            cu_buf_append(out, s, n);
            return;
        }
        cu_buf_appendc(&d, (char)(hi * 16 + lo));
        i += 2;
    }
    cu_buf_append(out, d.data ? d.data : "", d.len);
    cu_buf_free(&d);
}

/* Splits an absolute URL: host (lower-case), explicit port, and the rest
 * from the path on (without #fragment). Returns false for relative text. */
static bool split_url(const char *url, char **host, char **port, const char **rest, size_t *rest_len)
{
    const char *p = strstr(url, "://");
    if (!p || strcspn(url, "/?#") < (size_t)(p - url))
        return false;
    p += 3;
    size_t alen = strcspn(p, "/?#");
    const char *at = memchr(p, '@', alen);
    const char *h = at ? at + 1 : p, *e = p + alen;
    const char *colon = NULL;
    for (const char *c = h; c < e; c++)
        if (*c == ':')
            colon = c;
    if (colon && *h == '[' && memchr(colon, ']', (size_t)(e - colon)))
        colon = NULL;
    *host = cu_strndup(h, (size_t)((colon ? colon : e) - h));
    for (char *c = *host; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    *port = colon && colon + 1 < e ? cu_strndup(colon + 1, (size_t)(e - colon - 1)) : NULL;
    *rest = e;
    *rest_len = strcspn(e, "#");
    return true;
}

void lt_loader_set_target(lt_loader *L, const char *target)
{
    const char *rest;
    size_t rlen;
    free(L->target_host);
    free(L->target_port);
    L->target_host = L->target_port = NULL;
    split_url(target, &L->target_host, &L->target_port, &rest, &rlen);
}

static char *endpoint_name(lt_loader *L, const char *url, const lt_tmpl *name)
{
    const lt_plugins *pl = &L->s->plugins;
    const char *name_raw = name ? lt_tmpl_text(name) : NULL;
    if (name_raw && !*name_raw)
        name_raw = NULL;
    if (!name_raw && pl->mbe_ignore_unnamed)
        return NULL;
    if (name_raw && pl->mbe_only_names)
        return cu_strdup(name_raw);
    char *full = url[0] == '/' ? cu_asprintf("%s%s", L->s->target ? L->s->target : "", url)
                               : cu_strdup(url);
    cu_buf b = CU_BUF_INIT;
    char *host = NULL, *port = NULL;
    const char *rest;
    size_t rlen;
    if (split_url(full, &host, &port, &rest, &rlen)) {
        if (L->target_host && strcmp(host, L->target_host))
            cu_buf_appends(&b, host);
        if (port && !cu_streq(port, L->target_port))
            cu_buf_appendf(&b, ":%s", port);
        if (rlen == 0 || rest[0] == '?')
            cu_buf_appendc(&b, '/');
    } else {
        rest = full;
        rlen = strcspn(full, "#");
    }
    if (pl->mbe_strip_query)
        rlen = CU_MIN(rlen, strcspn(rest, "?"));
    cu_buf_append(&b, rest, rlen);
    cu_buf out = CU_BUF_INIT;
    uri_decode(&out, b.data ? b.data : "", b.len);
    if (name_raw)
        cu_buf_appendf(&out, " (%s)", name_raw);
    free(host);
    free(port);
    free(full);
    cu_buf_free(&b);
    return out.data ? cu_buf_steal(&out) : cu_strdup("");
}

/* ---- the request ---------------------------------------------------------------------------- */
static const char *const req_keys[] = {"url", "uri", "name", "headers", "qs", "json", "body", "form",
    "formData", "cookie", "auth", "capture", "match", "expect", "beforeRequest", "afterResponse",
    "ifTrue", "probability", "followRedirect", "gzip", "setContentLengthHeader"};
static const char *const req_ignored[] = {"match", "setContentLengthHeader"};

static int compile_qs(lt_loader *L, lt_request *q, const conf_node *n)
{
    if (n->type != CONF_MAP) {
        conf_errf(L->err, n, "qs must be a map of names to values (got a %s)", conf_type_name(n->type));
        return -EINVAL;
    }
    size_t total = 0;
    for (size_t i = 0; i < n->n; i++)
        total += n->items[i]->type == CONF_SEQ ? n->items[i]->n : 1;
    q->qs = cu_calloc(total ? total : 1, sizeof *q->qs);
    for (size_t i = 0; i < n->n; i++) {
        const conf_node *v = n->items[i];
        size_t count = v->type == CONF_SEQ ? v->n : 1;
        for (size_t j = 0; j < count; j++) { /* a list repeats the name, as querystring does */
            lt_kv *kv = &q->qs[q->nqs];
            if (!(kv->value = lt_loader_tmpl(L, v->type == CONF_SEQ ? v->items[j] : v, "qs value")))
                return -EINVAL;
            kv->name = cu_strdup(conf_key(n, i));
            q->nqs++;
        }
    }
    return 0;
}

static int compile_parts(lt_loader *L, lt_request *q, const conf_node *n)
{
    if (n->type != CONF_MAP) {
        conf_errf(L->err, n, "formData must be a map of field names to values (got a %s)",
                  conf_type_name(n->type));
        return -EINVAL;
    }
    q->parts = cu_calloc(n->n ? n->n : 1, sizeof *q->parts);
    for (size_t i = 0; i < n->n; i++) {
        q->nparts++;
        if (compile_part(L, &q->parts[i], conf_key(n, i), n->items[i]) != 0)
            return -EINVAL;
    }
    return 0;
}

/* An explicit multipart Content-Type without a boundary cannot be parsed by
 * any server: drop it, the engine sets one with its boundary. */
static void drop_bare_multipart(lt_request *q, const conf_node *headers)
{
    for (size_t i = 0; i < q->nheaders; i++) {
        const char *v = lt_tmpl_text(q->headers[i].value);
        if (strcmp(q->headers[i].name, "content-type") || strncasecmp(v, "multipart/form-data", 19) ||
            strcasestr(v, "boundary="))
            continue;
        const conf_node *at = headers;
        for (size_t k = 0; k < headers->n; k++)
            if (!strcasecmp(conf_key(headers, k), "content-type"))
                at = headers->items[k];
        conf_warnf(at, "Content-Type '%s' has no boundary parameter: dropped (cutover sends its own "
                   "with the boundary; Artillery sends this one as is)", v);
        free(q->headers[i].name);
        lt_tmpl_free(q->headers[i].value);
        memmove(&q->headers[i], &q->headers[i + 1], (q->nheaders - i - 1) * sizeof *q->headers);
        q->nheaders--;
        i--;
    }
}

static size_t list_len(const conf_node *n)
{
    return n->type == CONF_SEQ ? n->n : 1;
}

static const conf_node *list_item(const conf_node *n, size_t i)
{
    return n->type == CONF_SEQ ? n->items[i] : n;
}

static bool is_identifier(const char *s)
{
    if (!*s || isdigit((unsigned char)*s))
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '$')
            return false;
    return true;
}

int lt_request_compile(lt_loader *L, lt_request *q, const char *method, const conf_node *n)
{
    q->method = method;
    q->line = n->line;
    q->col = n->col;
    if (n->type != CONF_MAP) {
        conf_errf(L->err, n, "a %s step must be a map with a url (got a %s)", method,
                  conf_type_name(n->type));
        return -EINVAL;
    }
    conf_check_keys(n, req_keys, CU_ARRAY_LEN(req_keys), "request");
    lt_loader_uses(L, n);
    const conf_node *url = conf_get(n, "url") ? conf_get(n, "url") : conf_get(n, "uri"), *v;
    if (!url) {
        conf_errf(L->err, n, "a %s step needs a url", method);
        return -EINVAL;
    }
    if (url->type != CONF_STRING) {
        conf_errf(L->err, url, "url must be a string (got a %s)", conf_type_name(url->type));
        return -EINVAL;
    }
    q->url = lt_tmpl_compile(url->str);
    q->url_raw = cu_strdup(url->str);
    if ((v = conf_get(n, "name")) && !(q->name = lt_loader_tmpl(L, v, "name")))
        return -EINVAL;
    const conf_node *headers = conf_get(n, "headers");
    if (headers && lt_loader_kvs(L, headers, "headers", true, &q->headers, &q->nheaders) != 0)
        return -EINVAL;
    if ((v = conf_get(n, "qs")) && compile_qs(L, q, v) != 0)
        return -EINVAL;
    if ((v = conf_get(n, "cookie")) && lt_loader_kvs(L, v, "cookie", false, &q->cookies, &q->ncookies) != 0)
        return -EINVAL;
    if ((v = conf_get(n, "auth"))) {
        static const char *const auth_keys[] = {"user", "pass"};
        if (v->type != CONF_MAP) {
            conf_errf(L->err, v, "auth must be a map {user, pass}");
            return -EINVAL;
        }
        conf_check_keys(v, auth_keys, 2, "auth");
        const conf_node *u = conf_get(v, "user"), *p = conf_get(v, "pass");
        if ((u && !(q->auth_user = lt_loader_tmpl(L, u, "auth.user"))) ||
            (p && !(q->auth_pass = lt_loader_tmpl(L, p, "auth.pass"))))
            return -EINVAL;
        if (!q->auth_user)
            q->auth_user = lt_tmpl_compile("");
    }

    /* bodies: json wins over body (Artillery deletes body), formData replaces body */
    const conf_node *json = conf_get(n, "json"), *body = conf_get(n, "body");
    const conf_node *form = conf_get(n, "form"), *fdata = conf_get(n, "formData");
    int nbodies = !!json + !!body + !!form + !!fdata;
    if (nbodies > 1)
        conf_warnf(n, "json, body, form and formData are exclusive: this step sends %s",
                   json ? "json" : fdata ? "formData" : "form");
    if (json) {
        q->body_kind = LT_BODY_JSON;
        q->json = lt_value_compile(json);
    } else if (fdata) {
        q->body_kind = LT_BODY_MULTIPART;
        if (compile_parts(L, q, fdata) != 0)
            return -EINVAL;
        if (headers)
            drop_bare_multipart(q, headers);
    } else if (form) {
        q->body_kind = LT_BODY_FORM;
        if (lt_loader_kvs(L, form, "form", false, &q->form, &q->nform) != 0)
            return -EINVAL;
    } else if (body) {
        if (!conf_is_scalar(body)) {
            conf_errf(L->err, body, "body must be a string (got a %s; use json: to send one)",
                      conf_type_name(body->type));
            return -EINVAL;
        }
        q->body_kind = LT_BODY_TEXT;
        q->body = lt_loader_tmpl(L, body, "body");
    }

    if ((v = conf_get(n, "capture"))) {
        q->captures = cu_calloc(list_len(v), sizeof *q->captures);
        for (size_t i = 0; i < list_len(v); i++)
            if (compile_capture(L, q, list_item(v, i)) != 0)
                return -EINVAL;
    }
    if (lt_expects_compile(L, q, conf_get(n, "expect")) != 0)
        return -EINVAL;
    if (lt_loader_funcs(L, conf_get(n, "beforeRequest"), "beforeRequest") != 0 ||
        lt_loader_funcs(L, conf_get(n, "afterResponse"), "afterResponse") != 0)
        return -EINVAL;
    struct { const char *key; bool *off; } flags[] = {{"followRedirect", &q->no_redirect},
                                                      {"gzip", &q->no_gzip}};
    for (size_t i = 0; i < CU_ARRAY_LEN(flags); i++) {
        if (!(v = conf_get(n, flags[i].key)))
            continue;
        if (v->type != CONF_BOOL) {
            conf_errf(L->err, v, "%s must be true or false", flags[i].key);
            return -EINVAL;
        }
        *flags[i].off = !v->b;
    }
    q->probability = -1;
    if ((v = conf_get(n, "probability"))) {
        if (!conf_number(v, &q->probability) || q->probability < 0 || q->probability > 100) {
            conf_errf(L->err, v, "probability must be a number from 0 to 100 (percent)");
            return -EINVAL;
        }
    }
    if ((v = conf_get(n, "ifTrue"))) { /* a filtrex expression over the user's variables */
        char e[CU_ERRLEN] = "";
        if (!conf_is_scalar(v) || v->type == CONF_NULL) {
            conf_errf(L->err, v, "ifTrue must be an expression such as \"count > 1\"");
            return -EINVAL;
        }
        cu_buf b = CU_BUF_INIT;
        lt_scalar_text(&b, v);
        q->if_true = lt_expr_compile(b.data, e);
        if (!q->if_true)
            conf_errf(L->err, v, "invalid ifTrue expression '%s': %s", b.data, e);
        cu_buf_free(&b);
        if (!q->if_true)
            return -EINVAL;
        if (v->type == CONF_STRING && is_identifier(v->str))
            conf_warnf(v, "ifTrue '%s' is read as a variable (truthy: runs the request); "
                       "processor functions do not run in cutover", v->str);
    }
    for (size_t i = 0; i < n->n; i++)
        for (size_t j = 0; j < CU_ARRAY_LEN(req_ignored); j++)
            if (!strcmp(conf_key(n, i), req_ignored[j]))
                conf_warnf(n->keys[i], "%s is not supported by cutover and is ignored", req_ignored[j]);
    if (L->s->plugins.mbe)
        q->endpoint = endpoint_name(L, q->url_raw, q->name);
    return 0;
}

void lt_request_free(lt_request *q)
{
    if (q->if_true)
        lt_expr_free(q->if_true);
    lt_tmpl_free(q->url);
    free(q->url_raw);
    free(q->endpoint);
    lt_tmpl_free(q->name);
    lt_kvs_free(q->headers, q->nheaders);
    lt_kvs_free(q->qs, q->nqs);
    lt_value_free(q->json);
    lt_tmpl_free(q->body);
    lt_kvs_free(q->form, q->nform);
    for (size_t i = 0; i < q->nparts; i++) {
        lt_part *p = &q->parts[i];
        free(p->name);
        lt_tmpl_free(p->value);
        free(p->file_path);
        free(p->filename);
        free(p->content_type);
        cu_buf_free(&p->file_data);
    }
    free(q->parts);
    lt_kvs_free(q->cookies, q->ncookies);
    lt_tmpl_free(q->auth_user);
    lt_tmpl_free(q->auth_pass);
    for (size_t i = 0; i < q->ncaptures; i++) {
        lt_capture *c = &q->captures[i];
        if (c->jsonpath)
            lt_jsonpath_free(c->jsonpath);
        if (c->kind == LT_CAP_REGEXP)
            regfree(&c->re);
        free(c->header);
        free(c->as);
    }
    free(q->captures);
    for (size_t i = 0; i < q->nexpects; i++)
        lt_expect_free(&q->expects[i]);
    free(q->expects);
}
