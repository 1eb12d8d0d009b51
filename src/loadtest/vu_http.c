/* loadtest/vu_http.c: one HTTP step of a virtual user: the request built
 * from its templates (headers with defaults, Accept-Encoding unless
 * `gzip: false`, the cookie jar, query, json/body/form/multipart bodies),
 * sent on the user's connection to the origin; redirects followed as got
 * follows them for Artillery (at most 10, every hop counted as a request
 * and a response, a 303 becomes a GET, cookies set on the way go along)
 * unless `followRedirect: false`; Set-Cookie into the jar; gzip and
 * deflate bodies decoded before captures and expect checks (byte counts
 * stay the bytes received, as Artillery's).
 *
 * Buffers live in the user (recycled with it) and the inflater in the
 * worker, so a warmed-up user does not allocate per request beyond the JSON
 * work captures and checks need.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zlib.h>

#include "loadtest/vu_int.h"

/* ---- requests -------------------------------------------------------------------------------- */
static void on_response(void *user, int err, const http_response *res);

void lt_vu_render(lt_vu *vu, const lt_tmpl *t, cu_buf *out)
{
    lt_tmpl_render(t, &vu->ctx, out);
}

static bool header_given(lt_vu *vu, const char *name)
{
    for (size_t i = 0; i < VU_NH(vu); i++)
        if (VU_HDR(vu, i).nlen == strlen(name) &&
            !strncasecmp(vu->vals.data + VU_HDR(vu, i).noff, name, VU_HDR(vu, i).nlen))
            return true;
    return false;
}

static void add_header(lt_vu *vu, const char *name, size_t nlen, const lt_tmpl *value,
                       const char *literal)
{
    if (VU_NH(vu) >= VU_MAX_HEADERS)
        return;
    vu_hdr h = {.noff = (uint32_t)vu->vals.len, .nlen = (uint32_t)nlen};
    cu_buf_append(&vu->vals, name, nlen);
    cu_buf_appendc(&vu->vals, '\0');
    h.voff = (uint32_t)vu->vals.len;
    if (value)
        lt_vu_render(vu, value, &vu->vals);
    else
        cu_buf_appends(&vu->vals, literal);
    h.vlen = (uint32_t)(vu->vals.len - h.voff);
    cu_buf_appendc(&vu->vals, '\0');
    cu_buf_append(&vu->hdrs, &h, sizeof h);
}

/* Percent-encoding of query values (encodeURIComponent's set, as the
 * querystring module), or with form=true of form bodies as got's
 * URLSearchParams serializes them: space as '+', "*-._" kept. */
static void url_encode(cu_buf *out, const char *s, size_t n, bool form)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || (form ? c == '*' : c == '~')) {
            cu_buf_appendc(out, (char)c);
        } else if (form && c == ' ') {
            cu_buf_appendc(out, '+');
        } else {
            cu_buf_appendc(out, '%');
            cu_buf_appendc(out, hex[c >> 4]);
            cu_buf_appendc(out, hex[c & 15]);
        }
    }
}

/* Appends "name=value&..." with templated values, url-encoded. */
static void encode_pairs(lt_vu *vu, const lt_kv *kv, size_t n, bool form, cu_buf *out)
{
    cu_buf tmp = CU_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        if (i)
            cu_buf_appendc(out, '&');
        url_encode(out, kv[i].name, strlen(kv[i].name), form);
        cu_buf_appendc(out, '=');
        cu_buf_reset(&tmp);
        lt_vu_render(vu, kv[i].value, &tmp);
        url_encode(out, tmp.data ? tmp.data : "", tmp.len, form);
    }
    cu_buf_free(&tmp);
}

static void build_multipart(lt_vu *vu, const lt_request *r, char boundary[40])
{
    snprintf(boundary, 40, "----cutover%016" PRIx64, cu_rng_next(&vu->w->rng));
    cu_buf *b = &vu->body;
    for (size_t i = 0; i < r->nparts; i++) {
        const lt_part *p = &r->parts[i];
        cu_buf_appendf(b, "--%s\r\nContent-Disposition: form-data; name=\"%s\"", boundary, p->name);
        if (p->value) {
            cu_buf_appends(b, "\r\n\r\n");
            lt_vu_render(vu, p->value, b);
        } else {
            cu_buf_appendf(b, "; filename=\"%s\"\r\nContent-Type: %s\r\n\r\n",
                           p->filename ? p->filename : "file",
                           p->content_type ? p->content_type : "application/octet-stream");
            cu_buf_append(b, p->file_data.data, p->file_data.len);
        }
        cu_buf_appends(b, "\r\n");
    }
    cu_buf_appendf(b, "--%s--\r\n", boundary);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void base64(cu_buf *out, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)(unsigned char)s[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)s[i + 2];
        cu_buf_appendc(out, b64[(v >> 18) & 63]);
        cu_buf_appendc(out, b64[(v >> 12) & 63]);
        cu_buf_appendc(out, i + 1 < n ? b64[(v >> 6) & 63] : '=');
        cu_buf_appendc(out, i + 2 < n ? b64[v & 63] : '=');
    }
}

static void drop_header(lt_vu *vu, const char *name);

/* The jar's cookies for the hop's URL (vu->hop_url) as a Cookie header:
 * added, or (on a redirect hop) replaced or removed, since the hop may go
 * elsewhere and its response may have set cookies. The old value stays in
 * vals. */
static void jar_header(lt_vu *vu)
{
    cu_buf cv = CU_BUF_INIT;
    lt_jar_header(&vu->jar, vu->hop_url.data ? vu->hop_url.data : "", &cv);
    if (cv.len == 0) {
        if (vu->cookie_h >= 0) {
            drop_header(vu, "cookie");
            vu->cookie_h = -1;
        }
        cu_buf_free(&cv);
        return;
    }
    if (vu->cookie_h >= 0) {
        vu_hdr *h = &VU_HDR(vu, (size_t)vu->cookie_h);
        h->voff = (uint32_t)vu->vals.len;
        cu_buf_appends(&vu->vals, cv.data);
        h->vlen = (uint32_t)(vu->vals.len - h->voff);
        cu_buf_appendc(&vu->vals, '\0');
    } else if (VU_NH(vu) < VU_MAX_HEADERS) {
        vu->cookie_h = (int)VU_NH(vu);
        add_header(vu, "cookie", 6, NULL, cv.data);
    }
    cu_buf_free(&cv);
}

static void drop_header(lt_vu *vu, const char *name)
{
    for (size_t i = 0; i < VU_NH(vu); i++) {
        if (VU_HDR(vu, i).nlen != strlen(name) ||
            strncasecmp(vu->vals.data + VU_HDR(vu, i).noff, name, VU_HDR(vu, i).nlen))
            continue;
        memmove(&VU_HDR(vu, i), &VU_HDR(vu, i + 1), (VU_NH(vu) - i - 1) * sizeof(vu_hdr));
        if (vu->cookie_h > (int)i)
            vu->cookie_h--;
        vu->hdrs.len -= sizeof(vu_hdr);
        i--;
    }
}

/* ---- http.pool ---------------------------------------------------------------------------- */
/* With config.http.pool = N, the users of the run share N keep-alive
 * connections to the target (split between the workers, at least one
 * each) instead of one each, as Artillery's shared agent does. A user that
 * finds them all busy waits in the worker's FIFO with its request built;
 * a connection is handed to the next waiting user once the response that
 * held it has been processed. Waiting is not measured (as in Artillery:
 * response_time starts when the request is written). */
static size_t pool_size(const lt_worker *w)
{
    size_t n = w->run->script->pool, k = (size_t)w->run->nworkers;
    size_t mine = n / k + ((size_t)w->index < n % k ? 1 : 0);
    return mine ? mine : 1;
}

/* A free slot of the pool for vu (marked busy), or NULL when all are. */
static http_client **pool_take(lt_vu *vu)
{
    lt_worker *w = vu->w;
    if (!w->pool) {
        w->npool = pool_size(w);
        w->pool = cu_calloc(w->npool, sizeof *w->pool);
        w->pool_busy = cu_calloc(w->npool, sizeof *w->pool_busy);
    }
    if (vu->pool_slot >= 0)
        return &w->pool[vu->pool_slot]; /* a redirect hop keeps its connection */
    for (size_t i = 0; i < w->npool; i++)
        if (!w->pool_busy[i]) {
            w->pool_busy[i] = true;
            vu->pool_slot = (int)i;
            return &w->pool[i];
        }
    return NULL;
}

static bool send_hop(lt_vu *vu, const lt_request *r, http_client *c, const char *target);

static void pool_wait(lt_vu *vu, const lt_request *r)
{
    lt_worker *w = vu->w;
    vu->req = r;
    vu->pool_waiting = true;
    vu->pool_next = NULL;
    if (w->pool_tail)
        w->pool_tail->pool_next = vu;
    else
        w->pool_head = vu;
    w->pool_tail = vu;
}

/* vu gives its slot back (its response is processed, or it ended); the
 * slot goes to the first waiting user. */
static void pool_release(lt_vu *vu)
{
    lt_worker *w = vu->w;
    if (vu->pool_slot < 0)
        return;
    size_t i = (size_t)vu->pool_slot;
    vu->pool_slot = -1;
    w->pool_busy[i] = false;
    while (w->pool_head && !w->pool_busy[i] && !w->stopping) {
        lt_vu *next = w->pool_head;
        w->pool_head = next->pool_next;
        if (!w->pool_head)
            w->pool_tail = NULL;
        next->pool_waiting = false;
        w->pool_busy[i] = true;
        next->pool_slot = (int)i;
        if (!w->pool[i]) {
            http_client_opts o = {w->resolver, NULL, 0};
            char err[CU_ERRLEN];
            if (w->run->target.tls && !(o.tls = lt_worker_tls(w, err))) {
                lt_vu_fail(next, next->req, "ERR_TLS_CONTEXT"); /* releases the slot again */
                continue;
            }
            w->pool[i] = http_client_new(&w->loop, &w->run->target, &o);
            http_client_set_early_write(w->pool[i], true);
        }
        send_hop(next, next->req, w->pool[i], next->target.data);
    }
}

void lt_vu_pool_leave(lt_vu *vu)
{
    lt_worker *w = vu->w;
    if (vu->pool_waiting) {
        lt_vu **pp = &w->pool_head, *prev = NULL;
        while (*pp && *pp != vu) {
            prev = *pp;
            pp = &(*pp)->pool_next;
        }
        if (*pp)
            *pp = vu->pool_next;
        if (w->pool_tail == vu)
            w->pool_tail = prev;
        vu->pool_waiting = false;
    }
    if (vu->pool_slot >= 0 && vu->in_flight) { /* cancel: the connection goes with it */
        http_client_free(w->pool[vu->pool_slot]);
        w->pool[vu->pool_slot] = NULL;
    }
    pool_release(vu);
}

/* The client for an absolute URL's origin (the target's, or another). */
static http_client *client_for(lt_vu *vu, const char *url, const char **target, bool *wait,
                               char *err)
{
    lt_run_t *run = vu->w->run;
    const http_url *origin = &run->target;
    http_client **slot = &vu->client;
    if (url) {
        http_url u;
        if (http_url_parse(&u, url, err) != 0)
            return NULL;
        bool same = u.tls == run->target.tls && u.port == run->target.port &&
                    !strcmp(u.host, run->target.host);
        cu_buf_reset(&vu->target);
        cu_buf_appends(&vu->target, u.target);
        if (same) {
            http_url_free(&u);
        } else {
            if (!vu->other_origin || strcmp(vu->other_origin, u.hostport) ||
                vu->other_url.tls != u.tls) {
                if (vu->other)
                    http_client_free(vu->other);
                vu->other = NULL;
                if (vu->other_ok)
                    http_url_free(&vu->other_url);
                free(vu->other_origin);
                vu->other_origin = cu_strdup(u.hostport);
                vu->other_url = u;
                vu->other_ok = true;
            } else {
                http_url_free(&u);
            }
            origin = &vu->other_url;
            slot = &vu->other;
        }
    }
    *target = vu->target.data;
    *wait = false;
    if (slot == &vu->client && run->script->pool > 0) { /* http.pool: the worker's shared clients */
        slot = pool_take(vu);
        if (!slot) {
            *wait = true;
            return NULL;
        }
    }
    if (!*slot) {
        http_client_opts o = {vu->w->resolver, NULL, 0};
        if (origin->tls) {
            o.tls = lt_worker_tls(vu->w, err);
            if (!o.tls)
                return NULL;
        }
        *slot = http_client_new(&vu->w->loop, origin, &o);
        http_client_set_early_write(*slot, true);
    }
    return *slot;
}

/* Sends the prepared headers and body to c (one hop of r); counts
 * http.requests. Returns false when the user failed instead. */
static bool send_hop(lt_vu *vu, const lt_request *r, http_client *c, const char *target)
{
    lt_worker *w = vu->w;
    for (size_t i = 0; i < VU_NH(vu); i++)
        w->hdrs[i] = (http_header){vu->vals.data + VU_HDR(vu, i).noff, VU_HDR(vu, i).nlen,
                                   vu->vals.data + VU_HDR(vu, i).voff, VU_HDR(vu, i).vlen};
    int64_t ts = cu_wall_ms();
    lt_hot *h = lt_worker_hot(w, ts);
    mset_entry_count(w->win, HOT(h, requests, "http.requests", MSET_COUNTER), 1, ts);
    mset_entry_rate(w->win, HOT(h, request_rate, "http.request_rate", MSET_RATE), ts);

    http_request req = {vu->method, target && *target ? target : "/", w->hdrs, VU_NH(vu),
                        vu->body.len ? vu->body.data : NULL, vu->body.len};
    vu->req = r;
    vu->in_flight = true;
    uint64_t timeout_ms = (uint64_t)(w->run->script->timeout_s * 1000.0);
    bool keep = r->needs_body;
    int rc = http_client_send(c, &req, keep, timeout_ms, on_response, vu);
    if (rc != 0) {
        vu->in_flight = false;
        lt_vu_fail(vu, r, http_error_name(rc));
        return false;
    }
    return true;
}

/* Sends r; returns false when the user failed before anything was sent. */
bool lt_vu_send_request(lt_vu *vu, const lt_request *r)
{
    lt_worker *w = vu->w;
    lt_run_t *run = w->run;
    const lt_script *s = run->script;
    cu_buf_reset(&vu->url);
    lt_vu_render(vu, r->url, &vu->url);
    if (r->nqs) {
        cu_buf_appendc(&vu->url, strchr(vu->url.data, '?') ? '&' : '?');
        encode_pairs(vu, r->qs, r->nqs, false, &vu->url);
    }
    const char *url = vu->url.data ? vu->url.data : "";
    const char *absolute = NULL;
    cu_buf_reset(&vu->target);
    if (url[0] == '/') {
        cu_buf_appends(&vu->target, run->target_prefix);
        cu_buf_appends(&vu->target, url);
    } else if (cu_startswith(url, "http")) {
        absolute = url;
    } else {
        char code[600];
        snprintf(code, sizeof code, "Invalid URL - %s", url);
        lt_vu_fail(vu, r, code);
        return false;
    }
    cu_buf_reset(&vu->hop_url); /* the absolute URL: cookies are scoped by it */
    if (absolute) {
        cu_buf_appends(&vu->hop_url, absolute);
    } else {
        cu_buf_appends(&vu->hop_url, s->target);
        cu_buf_appends(&vu->hop_url, url);
    }
    char err[CU_ERRLEN];
    const char *target = NULL;
    bool wait;
    http_client *c = client_for(vu, absolute, &target, &wait, err);
    if (!c && !wait) {
        char code[600];
        snprintf(code, sizeof code, "Invalid URL - %s", url);
        lt_vu_fail(vu, r, absolute ? code : "ERR_TLS_CONTEXT");
        return false;
    }

    /* headers: the request's own, then defaults it does not override */
    cu_buf_reset(&vu->vals);
    cu_buf_reset(&vu->hdrs);
    for (size_t i = 0; i < r->nheaders; i++)
        add_header(vu, r->headers[i].name, strlen(r->headers[i].name), r->headers[i].value, NULL);
    for (size_t i = 0; i < s->ndefault_headers; i++)
        if (!header_given(vu, s->default_headers[i].name))
            add_header(vu, s->default_headers[i].name, strlen(s->default_headers[i].name),
                       s->default_headers[i].value, NULL);
    if (r->auth_user && !header_given(vu, "authorization")) {
        cu_buf up = CU_BUF_INIT, enc = CU_BUF_INIT;
        lt_vu_render(vu, r->auth_user, &up);
        cu_buf_appendc(&up, ':');
        if (r->auth_pass)
            lt_vu_render(vu, r->auth_pass, &up);
        cu_buf_appends(&enc, "Basic ");
        base64(&enc, up.data, up.len);
        add_header(vu, "authorization", 13, NULL, enc.data);
        cu_buf_free(&up);
        cu_buf_free(&enc);
    }
    for (size_t i = 0; i < r->ncookies; i++) { /* set in the jar for this URL, as Artillery does */
        cu_buf v = CU_BUF_INIT;
        cu_buf_appends(&v, r->cookies[i].name);
        cu_buf_appendc(&v, '=');
        lt_vu_render(vu, r->cookies[i].value, &v);
        lt_jar_set(&vu->jar, v.data, v.len, vu->hop_url.data);
        cu_buf_free(&v);
    }
    vu->cookie_h = -1;
    if (!header_given(vu, "cookie"))
        jar_header(vu);
    if (!r->no_gzip && !header_given(vu, "accept-encoding"))
        add_header(vu, "accept-encoding", 15, NULL, "gzip, deflate");
    /* body */
    cu_buf_reset(&vu->body);
    switch (r->body_kind) {
    case LT_BODY_JSON: {
        json_t *j = lt_value_render(r->json, &vu->ctx);
        char *txt = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        if (txt)
            cu_buf_appends(&vu->body, txt);
        free(txt);
        json_decref(j);
        if (!header_given(vu, "content-type"))
            add_header(vu, "content-type", 12, NULL, "application/json");
        break;
    }
    case LT_BODY_TEXT:
        lt_vu_render(vu, r->body, &vu->body);
        break;
    case LT_BODY_FORM:
        encode_pairs(vu, r->form, r->nform, true, &vu->body);
        if (!header_given(vu, "content-type"))
            add_header(vu, "content-type", 12, NULL, "application/x-www-form-urlencoded");
        break;
    case LT_BODY_MULTIPART: {
        char boundary[40], ct[80];
        build_multipart(vu, r, boundary);
        snprintf(ct, sizeof ct, "multipart/form-data; boundary=%s", boundary);
        add_header(vu, "content-type", 12, NULL, ct); /* the loader dropped a bare one */
        break;
    }
    case LT_BODY_NONE:
        break;
    }
    vu->method = r->method;
    vu->hops = 0;
    if (wait) {
        pool_wait(vu, r);
        return true;
    }
    return send_hop(vu, r, c, target);
}

/* ---- captures and checks ---------------------------------------------------------------------- */
int lt_body_type(lt_body *b)
{
    if (b->type < 0)
        b->type = lt_json_text_type(b->data, b->len);
    return b->type;
}

json_t *lt_body_doc(lt_body *b)
{
    if (!b->loaded) {
        b->loaded = true;
        if (lt_body_type(b)) /* (text that does not check would not load) */
            b->doc = json_loadb(b->data, b->len, JSON_DECODE_ANY, NULL);
    }
    return b->doc;
}

static bool run_captures(lt_vu *vu, const lt_request *r, const http_response *res, lt_body *body)
{
    json_t *got = json_object();
    bool ok = true;
    for (size_t i = 0; i < r->ncaptures && ok; i++) {
        const lt_capture *c = &r->captures[i];
        json_t *val = NULL;
        if (c->kind == LT_CAP_JSON && lt_jsonpath_plain(c->jsonpath)) {
            /* from the text: only the value found is loaded (jsontext.c) */
            if (lt_body_type(body))
                (void)lt_jsonpath_text(c->jsonpath, body->data, body->len, &val);
        } else if (c->kind == LT_CAP_JSON) {
            json_t *d = lt_body_doc(body);
            if (d) {
                json_t *matches = json_array();
                size_t n = lt_jsonpath_query(c->jsonpath, d, matches);
                if (n > 0)
                    val = json_incref(json_array_get(matches, n == 1 ? 0 : cu_rng_below(&vu->w->rng, n)));
                json_decref(matches);
            }
        } else if (c->kind == LT_CAP_HEADER) {
            const http_header *hh = http_header_find(res->headers, res->nheaders, c->header);
            if (hh)
                val = json_stringn(hh->value, hh->value_len);
        } else if (res->body) {
            char *text = cu_strndup(res->body, res->body_len);
            regmatch_t m[10];
            if (regexec(&c->re, text, 10, m, 0) == 0 && c->group < 10 && m[c->group].rm_so >= 0)
                val = json_stringn(text + m[c->group].rm_so,
                                   (size_t)(m[c->group].rm_eo - m[c->group].rm_so));
            free(text);
        }
        if (!val || (json_is_string(val) && json_string_length(val) == 0)) {
            json_decref(val);
            if (c->strict)
                ok = false;
            continue;
        }
        json_object_set_new(got, c->as, val);
    }
    if (ok)
        json_object_update(vu->vars, got);
    json_decref(got);
    return ok;
}

/* Set-Cookie into the user's jar, scoped to the URL that answered. */
static void store_cookies(lt_vu *vu, const http_response *res)
{
    for (size_t i = 0; i < res->nheaders; i++) {
        const http_header *h = &res->headers[i];
        if (cu_memcaseeq(h->name, h->name_len, "set-cookie") &&
            lt_jar_set(&vu->jar, h->value, h->value_len, vu->hop_url.data ? vu->hop_url.data : "") < 0)
            lt_vu_count_error(vu, NULL, "cookie_parse_error_invalid_cookie", cu_wall_ms());
    }
}

/* ---- redirects and compressed bodies --------------------------------------------------------- */
/* Location resolved against the absolute URL base (RFC 3986 without dot
 * segments): absolute, //authority, /path, ?query or a relative path. */
static void resolve_location(cu_buf *out, const char *base, const char *loc, size_t n)
{
    const char *se = strstr(base, "://");
    if ((n > 7 && !strncasecmp(loc, "http://", 7)) || (n > 8 && !strncasecmp(loc, "https://", 8)) ||
        !se) {
        cu_buf_append(out, loc, n);
        return;
    }
    if (n >= 2 && loc[0] == '/' && loc[1] == '/') {
        cu_buf_append(out, base, (size_t)(se - base) + 1);
        cu_buf_append(out, loc, n);
        return;
    }
    const char *auth = se + 3;
    size_t origin = (size_t)(auth - base) + strcspn(auth, "/?#");
    const char *path = base + origin;
    size_t plen = strcspn(path, "?#");
    if (n && loc[0] == '/') {
        cu_buf_append(out, base, origin);
    } else if (n && loc[0] == '?') {
        cu_buf_append(out, base, origin + plen);
    } else {
        const char *slash = NULL;
        for (const char *c = path; c < path + plen; c++)
            if (*c == '/')
                slash = c;
        cu_buf_append(out, base, slash ? (size_t)(slash - base) + 1 : origin);
        if (!slash)
            cu_buf_appendc(out, '/');
    }
    cu_buf_append(out, loc, n);
}

static bool is_redirect(int status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* The next hop of a redirect, as got follows them for Artillery: at most
 * 10, a 303 turns into a GET without body, cookies set on the way go with
 * the next hop. */
/* The next hop's URL is already in vu->hop_next. */
static void follow(lt_vu *vu, const lt_request *r, int status)
{
    if (vu->hops >= 10) {
        lt_vu_fail(vu, r, "ERR_TOO_MANY_REDIRECTS");
        return;
    }
    vu->hops++;
    cu_buf t = vu->hop_url;
    vu->hop_url = vu->hop_next;
    vu->hop_next = t;
    if (status == 303 && strcmp(vu->method, "HEAD")) {
        vu->method = "GET";
        cu_buf_reset(&vu->body);
        drop_header(vu, "content-type");
    }
    if (vu->cookie_h >= 0 || !header_given(vu, "cookie"))
        jar_header(vu);
    char err[CU_ERRLEN];
    const char *target = NULL;
    bool wait;
    http_client *c = client_for(vu, vu->hop_url.data, &target, &wait, err);
    if (!c && !wait) {
        char code[600];
        snprintf(code, sizeof code, "Invalid URL - %s", vu->hop_url.data);
        lt_vu_fail(vu, r, code);
        return;
    }
    if (wait)
        pool_wait(vu, r);
    else
        send_hop(vu, r, c, target);
}

/* Inflates a gzip or zlib (or raw deflate) body into out with the
 * worker's one inflater. Returns 0 or -1 for corrupt or truncated data. */
static int inflate_body(lt_worker *w, const char *in, size_t n, bool raw_ok, cu_buf *out)
{
    if (!w->zs) {
        w->zs = cu_calloc(1, sizeof *w->zs);
        if (inflateInit2(w->zs, 15 + 32) != Z_OK) {
            free(w->zs);
            w->zs = NULL;
            return -1;
        }
    }
    for (int attempt = 0; attempt < (raw_ok ? 2 : 1); attempt++) {
        z_stream *z = w->zs;
        inflateReset2(z, attempt == 0 ? 15 + 32 : -15);
        cu_buf_reset(out);
        z->next_in = (Bytef *)in;
        z->avail_in = (uInt)n;
        int rc = Z_OK;
        while (rc == Z_OK) {
            cu_buf_reserve(out, n * 2 + 4096);
            z->next_out = (Bytef *)out->data + out->len;
            z->avail_out = (uInt)(out->cap - out->len - 1);
            size_t before = z->avail_out;
            rc = inflate(z, Z_NO_FLUSH);
            out->len += before - z->avail_out;
            if (rc == Z_BUF_ERROR && z->avail_in == 0)
                break; /* truncated */
            if (rc == Z_BUF_ERROR)
                rc = Z_OK;
        }
        out->data[out->len] = '\0';
        if (rc == Z_STREAM_END)
            return 0;
    }
    return -1;
}

static void on_response(void *user, int err, const http_response *res)
{
    lt_vu *vu = user;
    lt_worker *w = vu->w;
    const lt_request *r = vu->req;
    vu->in_flight = false;
    if (vu->ended)
        return; /* cancelled while the user was being torn down */
    if (err) {
        lt_vu_fail(vu, r, http_error_name(err));
        return;
    }
    const lt_plugins *pl = &w->run->script->plugins;
    int64_t ts = cu_wall_ms();
    lt_hot *h = lt_worker_hot(w, ts);
    mset *m = w->win;
    int status = res->status;
    const http_header *loc = NULL;
    if (!r->no_redirect && is_redirect(status))
        loc = http_header_find(res->headers, res->nheaders, "location");
    if (status >= 0 && status < 600) {
        if (!h->codes[status]) {
            char name[32];
            snprintf(name, sizeof name, "http.codes.%d", status);
            h->codes[status] = mset_get(m, name, MSET_COUNTER);
        }
        mset_entry_count(m, h->codes[status], 1, ts);
    }
    mset_entry_count(m, HOT(h, responses, "http.responses", MSET_COUNTER), 1, ts);
    mset_entry_count(m, HOT(h, bytes, "http.downloaded_bytes", MSET_COUNTER), (int64_t)res->body_len,
                     ts);
    double rt = res->t_headers_ns > res->t_written_ns
                    ? (double)(res->t_headers_ns - res->t_written_ns) / 1e6
                    : 0.0;
    mset_entry_summary(m, HOT(h, rt, "http.response_time", MSET_SUMMARY), rt, ts);
    double intended = lt_intended_response(&vu->intended, res->t_done_ns);
    if (w->run->opts->latency_from_intended)
        mset_entry_summary(m, HOT(h, intended, LT_INTENDED_METRIC, MSET_SUMMARY), intended, ts);
    int cls = status / 100;
    if (cls >= 1 && cls <= 5) {
        if (!h->rt_class[cls]) {
            char name[32];
            snprintf(name, sizeof name, "http.response_time.%dxx", cls);
            h->rt_class[cls] = mset_get(m, name, MSET_SUMMARY);
        }
        mset_entry_summary(m, h->rt_class[cls], rt, ts);
    }
    if (pl->mbe && r->endpoint && !loc) { /* the step's final response only */
        char name[600];
        if (!h->ep_rt[r->id]) {
            snprintf(name, sizeof name, "%s.response_time.%s", pl->mbe_prefix, r->endpoint);
            h->ep_rt[r->id] = mset_get(m, name, MSET_SUMMARY);
        }
        mset_entry_summary(m, h->ep_rt[r->id], rt, ts);
        if (!h->ep_code[r->id] || h->ep_code_status[r->id] != status) {
            snprintf(name, sizeof name, "%s.%s.codes.%d", pl->mbe_prefix, r->endpoint, status);
            h->ep_code[r->id] = mset_get(m, name, MSET_COUNTER);
            h->ep_code_status[r->id] = status;
        }
        mset_entry_count(m, h->ep_code[r->id], 1, ts);
    }
    if (w->run->script->extended_metrics) { /* got's timings.phases, per hop */
        if (res->t_dns_ns)
            mset_entry_summary(m, HOT(h, dns, "http.dns", MSET_SUMMARY), (double)res->t_dns_ns / 1e6, ts);
        if (res->t_tcp_ns)
            mset_entry_summary(m, HOT(h, tcp, "http.tcp", MSET_SUMMARY), (double)res->t_tcp_ns / 1e6, ts);
        if (res->t_tls_ns)
            mset_entry_summary(m, HOT(h, tls, "http.tls", MSET_SUMMARY), (double)res->t_tls_ns / 1e6, ts);
        if (res->t_done_ns > res->t_start_ns)
            mset_entry_summary(m, HOT(h, total, "http.total", MSET_SUMMARY),
                               (double)(res->t_done_ns - res->t_start_ns) / 1e6, ts);
    }
    if (!loc && w->run->script->plugins.apdex) { /* the step's final response, total time */
        const lt_plugins *ap = &w->run->script->plugins;
        double total = (double)(res->t_done_ns - res->t_start_ns) / 1e6;
        lt_vu_count(w, total <= ap->apdex_ms ? "apdex.satisfied"
                       : total <= 4 * ap->apdex_ms ? "apdex.tolerated" : "apdex.frustrated", 1, ts);
    }
    store_cookies(vu, res);
    if (loc) {
        cu_buf_reset(&vu->hop_next); /* resolved now: res dies with the slot's next use */
        resolve_location(&vu->hop_next, vu->hop_url.data ? vu->hop_url.data : "", loc->value,
                         loc->value_len);
        pool_release(vu); /* the next hop queues again, behind users already waiting */
        follow(vu, r, status);
        return;
    }
    http_response decoded;
    const http_header *ce = res->body && !r->no_gzip
                                ? http_header_find(res->headers, res->nheaders, "content-encoding")
                                : NULL;
    if (ce && (cu_memcaseeq(ce->value, ce->value_len, "gzip") ||
               cu_memcaseeq(ce->value, ce->value_len, "x-gzip") ||
               cu_memcaseeq(ce->value, ce->value_len, "deflate"))) {
        bool deflate = cu_memcaseeq(ce->value, ce->value_len, "deflate");
        if (inflate_body(w, res->body, res->body_len, deflate, &vu->inflated) != 0) {
            lt_vu_fail(vu, r, "Z_DATA_ERROR");
            return;
        }
        decoded = *res;
        decoded.body = vu->inflated.data;
        decoded.body_len = vu->inflated.len;
        res = &decoded;
    }
    lt_body body = {res->body, res->body_len, -1, NULL, false};
    bool ok = true;
    if (r->ncaptures && !run_captures(vu, r, res, &body)) {
        json_decref(body.doc);
        lt_vu_fail(vu, r, "Failed capture or match");
        return;
    }
    char code[600];
    if (r->nexpects && !lt_vu_expects(vu, r, res, &body, code, sizeof code))
        ok = false;
    json_decref(body.doc);
    pool_release(vu); /* res is not used after this */
    if (!ok) {
        lt_vu_fail(vu, r, code);
        return;
    }
    lt_vu_run(vu);
}

void lt_vu_http_free(lt_worker *w)
{
    for (size_t i = 0; i < w->npool; i++)
        if (w->pool[i])
            http_client_free(w->pool[i]);
    free(w->pool);
    free(w->pool_busy);
    w->pool = NULL;
    w->pool_busy = NULL;
    w->npool = 0;
    if (w->zs) {
        inflateEnd(w->zs);
        free(w->zs);
        w->zs = NULL;
    }
}
