/* loadtest/vu.c: virtual users. A user is one arrival: it picks a weighted
 * scenario, gets its own variables (config.variables with one random pick
 * per list, $uuid, ...), its own keep-alive connection and cookie jar, and
 * runs the flow step by step; the first error ends it (counted as
 * errors.<code> and vusers.failed), as in Artillery.
 *
 * Users are recycled per worker (their buffers and timer stay allocated),
 * so the steady state does not allocate per request beyond the JSON work a
 * capture or check needs. Metric handles for the current window are cached
 * in lt_hot (engine.c) so that a response costs a few additions and one
 * sketch insert per metric.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadtest/internal.h"

#define VU_MAX_HEADERS 64
#define VU_MAX_DEPTH 16

void lt_worker_vu_done(lt_worker *w); /* engine.c */

typedef struct frame {
    const lt_step *steps;
    size_t n, idx;
    int64_t iter;
    int64_t count;          /* iterations to run; -1: unbounded */
    json_t *over;           /* list iterated over (owned ref), or NULL */
} frame;

struct lt_vu {
    lt_worker *w;
    lt_vu *next, *prev;     /* live list, or free list (next only) */
    const lt_scenario *sc;
    json_t *vars;
    json_t *cookies;        /* name -> value */
    lt_ctx ctx;
    http_client *client;    /* to the target's origin */
    http_client *other;     /* to the last other origin used */
    char *other_origin;
    http_url other_url;
    bool other_ok;
    frame frames[VU_MAX_DEPTH];
    int depth;
    uint64_t start_ns;
    uv_timer_t think;
    bool think_active, in_flight, stopping, ended;
    const lt_request *req;  /* in flight */
    cu_buf url, target, body, vals;
    size_t hoff[VU_MAX_HEADERS][2]; /* name and value offsets into vals */
    size_t hlen[VU_MAX_HEADERS][2];
    http_header hdrs[VU_MAX_HEADERS];
    size_t nh;
};

/* ---- preparation (main thread, before workers start) ----------------------------------- */
static void number_requests(lt_run_t *run, lt_step *steps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (steps[i].kind == LT_STEP_REQUEST)
            steps[i].req.id = (int)run->nrequests++;
        else if (steps[i].kind == LT_STEP_LOOP)
            number_requests(run, steps[i].loop.steps, steps[i].loop.nsteps);
    }
}

void lt_vu_prepare(lt_run_t *run)
{
    lt_script *s = run->script;
    for (size_t i = 0; i < s->nscenarios; i++)
        number_requests(run, s->scenarios[i].flow, s->scenarios[i].nflow);
    run->scenario_table = cu_calloc(s->nscenarios ? s->nscenarios : 1, sizeof(int));
    int total = 0;
    for (size_t i = 0; i < s->nscenarios; i++) {
        total += s->scenarios[i].weight > 0 ? s->scenarios[i].weight : 0;
        run->scenario_table[i] = total;
    }
    run->scenario_table_len = (size_t)total;
    run->payload_next = cu_calloc(s->npayloads ? s->npayloads : 1, sizeof *run->payload_next);
    size_t nv = json_object_size(s->variables);
    run->var_tmpls = cu_calloc(nv ? nv : 1, sizeof(lt_tmpl *));
    size_t i = 0;
    const char *key;
    json_t *val;
    json_object_foreach(s->variables, key, val) {
        if (json_is_string(val) && strstr(json_string_value(val), "{{"))
            run->var_tmpls[i] = lt_tmpl_compile(json_string_value(val));
        i++;
    }
}

/* ---- metrics helpers ------------------------------------------------------------------------ */
#define HOT(h, field, name, kind)                                                          \
    ((h)->field ? (h)->field : ((h)->field = mset_get(w->win, (name), (kind))))

static void count_name(lt_worker *w, const char *name, int64_t n, int64_t ts)
{
    mset_count(lt_worker_window(w, ts), name, n, ts);
}

static void count_error(lt_vu *vu, const lt_request *r, const char *code, int64_t ts)
{
    lt_worker *w = vu->w;
    char name[512];
    snprintf(name, sizeof name, "errors.%s", code);
    count_name(w, name, 1, ts);
    const lt_plugins *pl = &w->run->script->plugins;
    if (r && pl->mbe && r->endpoint) {
        snprintf(name, sizeof name, "%s.%s.errors.%s", pl->mbe_prefix, r->endpoint, code);
        count_name(w, name, 1, ts);
    }
}

/* ---- life cycle ---------------------------------------------------------------------------- */
static void vu_run(lt_vu *vu);

static void free_clients(lt_vu *vu)
{
    http_client *c = vu->client, *o = vu->other;
    vu->client = vu->other = NULL;
    if (c)
        http_client_free(c);
    if (o)
        http_client_free(o);
    if (vu->other_ok) {
        http_url_free(&vu->other_url);
        vu->other_ok = false;
    }
    free(vu->other_origin);
    vu->other_origin = NULL;
}

/* Ends the user: error is NULL on success. Counts unless the run stops. */
static void vu_end(lt_vu *vu, const char *error)
{
    if (vu->ended)
        return;
    vu->ended = true;
    lt_worker *w = vu->w;
    if (!vu->stopping) {
        int64_t ts = cu_wall_ms();
        lt_hot *h = lt_worker_hot(w, ts);
        if (error) {
            mset_entry_count(w->win, HOT(h, failed, "vusers.failed", MSET_COUNTER), 1, ts);
        } else {
            mset_entry_count(w->win, HOT(h, completed, "vusers.completed", MSET_COUNTER), 1, ts);
            mset_entry_count(w->win, HOT(h, failed, "vusers.failed", MSET_COUNTER), 0, ts);
            double ms = (double)(cu_now_ns() - vu->start_ns) / 1e6;
            mset_entry_summary(w->win, HOT(h, session, "vusers.session_length", MSET_SUMMARY), ms,
                               ts);
        }
    }
    free_clients(vu);
    for (int i = 0; i < vu->depth; i++)
        json_decref(vu->frames[i].over);
    vu->depth = 0;
    json_decref(vu->vars);
    json_decref(vu->cookies);
    vu->vars = vu->cookies = NULL;
    if (vu->prev)
        vu->prev->next = vu->next;
    else
        w->live_vus = vu->next;
    if (vu->next)
        vu->next->prev = vu->prev;
    vu->prev = NULL;
    vu->next = w->free_vus;
    w->free_vus = vu;
    lt_worker_vu_done(w);
}

static void vu_fail(lt_vu *vu, const lt_request *r, const char *code)
{
    if (!vu->stopping)
        count_error(vu, r, code, cu_wall_ms());
    vu_end(vu, code);
}

static void set_var_int(json_t *vars, const char *name, int64_t v)
{
    json_object_set_new(vars, name, json_integer(v));
}

static void make_uuid(cu_rng *rng, char out[37])
{
    uint8_t b[16];
    uint64_t a = cu_rng_next(rng), c = cu_rng_next(rng);
    memcpy(b, &a, 8);
    memcpy(b + 8, &c, 8);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

static json_t *initial_vars(lt_vu *vu)
{
    lt_run_t *run = vu->w->run;
    const lt_script *s = run->script;
    json_t *vars = json_object();
    char uuid[37];
    make_uuid(&vu->w->rng, uuid);
    json_object_set_new(vars, "$uuid", json_string(uuid));
    json_object_set_new(vars, "target", json_string(s->target));
    json_object_set_new(vars, "$testId", json_string(run->test_id));
    if (s->environment)
        json_object_set_new(vars, "$environment", json_string(s->environment));
    /* CSV rows first: config.variables of the same name win, as in Artillery */
    for (size_t p = 0; p < s->npayloads; p++) {
        const lt_payload *pl = &s->payloads[p];
        size_t nrows = json_array_size(pl->rows);
        if (pl->name) {
            json_object_set(vars, pl->name, pl->all);
            continue;
        }
        if (nrows == 0 || pl->nfields == 0)
            continue;
        size_t k = pl->sequence ? atomic_fetch_add(&run->payload_next[p], 1) % nrows
                                : (size_t)cu_rng_below(&vu->w->rng, nrows);
        json_t *row = json_array_get(pl->rows, k);
        for (size_t f = 0; f < pl->nfields && f < json_array_size(row); f++)
            json_object_set(vars, pl->fields[f], json_array_get(row, f));
    }
    lt_ctx ctx = {vars, &vu->w->rng};
    size_t i = 0;
    const char *key;
    json_t *val;
    json_object_foreach(s->variables, key, val) {
        json_t *v = val;
        if (json_is_array(val)) {
            size_t n = json_array_size(val);
            v = n ? json_array_get(val, cu_rng_below(&vu->w->rng, n)) : json_null();
        }
        if (run->var_tmpls[i] && v == val) {
            json_t *r = lt_tmpl_value(run->var_tmpls[i], &ctx);
            json_object_set_new(vars, key, r ? r : json_null());
        } else {
            json_object_set(vars, key, v);
        }
        i++;
    }
    return vars;
}

void lt_vu_start(lt_worker *w, uint64_t intended_ns)
{
    lt_run_t *run = w->run;
    uint64_t now = cu_now_ns();
    int64_t ts = cu_wall_ms();
    lt_vu *vu = w->free_vus;
    if (vu) {
        w->free_vus = vu->next;
    } else {
        vu = cu_calloc(1, sizeof *vu);
        vu->w = w;
        uv_timer_init(&w->loop, &vu->think);
        vu->think.data = vu;
    }
    vu->ended = vu->stopping = vu->in_flight = vu->think_active = false;
    vu->start_ns = now;
    /* link into the live list */
    vu->prev = NULL;
    vu->next = w->live_vus;
    if (w->live_vus)
        w->live_vus->prev = vu;
    w->live_vus = vu;
    w->active++;
    atomic_fetch_add(&run->active_total, 1);

    const lt_script *s = run->script;
    size_t pick = 0;
    if (run->scenario_table_len > 0) {
        int r = (int)cu_rng_below(&w->rng, run->scenario_table_len);
        while (pick + 1 < s->nscenarios && run->scenario_table[pick] <= r)
            pick++;
    } else if (s->nscenarios > 1) {
        pick = cu_rng_below(&w->rng, s->nscenarios);
    }
    vu->sc = &s->scenarios[pick];
    vu->vars = initial_vars(vu);
    vu->cookies = json_object();
    for (size_t i = 0; i < s->ndefault_cookies; i++) {
        lt_ctx ctx = {vu->vars, &w->rng};
        cu_buf_reset(&vu->vals);
        lt_tmpl_render(s->default_cookies[i].value, &ctx, &vu->vals);
        json_object_set_new(vu->cookies, s->default_cookies[i].name, json_string(vu->vals.data));
    }
    vu->ctx.vars = vu->vars;
    vu->ctx.rng = &w->rng;

    lt_hot *h = lt_worker_hot(w, ts);
    double lag = intended_ns < now ? (double)(now - intended_ns) / 1e6 : 0.0;
    mset_entry_summary(w->win, HOT(h, lag, LT_LAG_METRIC, MSET_SUMMARY), lag, ts);
    if (!h->scenario_created[pick])
        h->scenario_created[pick] = mset_get(w->win, vu->sc->created_metric, MSET_COUNTER);
    mset_entry_count(w->win, h->scenario_created[pick], 1, ts);
    mset_entry_count(w->win, HOT(h, created, "vusers.created", MSET_COUNTER), 1, ts);

    vu->depth = 1;
    vu->frames[0] = (frame){vu->sc->flow, vu->sc->nflow, 0, 0, 1, NULL};
    vu_run(vu);
}

static void on_think_done(uv_timer_t *t)
{
    lt_vu *vu = t->data;
    vu->think_active = false;
    vu_run(vu);
}

static void vu_close_cb(uv_handle_t *h)
{
    lt_vu *vu = h->data;
    cu_buf_free(&vu->url);
    cu_buf_free(&vu->target);
    cu_buf_free(&vu->body);
    cu_buf_free(&vu->vals);
    free(vu);
}

void lt_vu_pool_free(lt_worker *w)
{
    lt_vu *vu = w->free_vus;
    w->free_vus = NULL;
    while (vu) {
        lt_vu *next = vu->next;
        uv_close((uv_handle_t *)&vu->think, vu_close_cb);
        vu = next;
    }
}

void lt_vu_stop_all(lt_worker *w)
{
    lt_vu *vu = w->live_vus;
    while (vu) {
        lt_vu *next = vu->next;
        vu->stopping = true;
        if (vu->think_active) {
            uv_timer_stop(&vu->think);
            vu->think_active = false;
        }
        vu_end(vu, NULL); /* frees the clients: a request in flight is cancelled */
        vu = next;
    }
}

/* ---- requests -------------------------------------------------------------------------------- */
static void on_response(void *user, int err, const http_response *res);

static void render(lt_vu *vu, const lt_tmpl *t, cu_buf *out)
{
    lt_tmpl_render(t, &vu->ctx, out);
}

static bool header_given(lt_vu *vu, const char *name)
{
    for (size_t i = 0; i < vu->nh; i++)
        if (vu->hlen[i][0] == strlen(name) &&
            !strncasecmp(vu->vals.data + vu->hoff[i][0], name, vu->hlen[i][0]))
            return true;
    return false;
}

static void add_header(lt_vu *vu, const char *name, size_t nlen, const lt_tmpl *value,
                       const char *literal)
{
    if (vu->nh >= VU_MAX_HEADERS)
        return;
    size_t i = vu->nh++;
    vu->hoff[i][0] = vu->vals.len;
    cu_buf_append(&vu->vals, name, nlen);
    vu->hlen[i][0] = nlen;
    cu_buf_appendc(&vu->vals, '\0');
    vu->hoff[i][1] = vu->vals.len;
    if (value)
        render(vu, value, &vu->vals);
    else
        cu_buf_appends(&vu->vals, literal);
    vu->hlen[i][1] = vu->vals.len - vu->hoff[i][1];
    cu_buf_appendc(&vu->vals, '\0');
}

static void url_encode(cu_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            cu_buf_appendc(out, (char)c);
        } else {
            cu_buf_appendc(out, '%');
            cu_buf_appendc(out, hex[c >> 4]);
            cu_buf_appendc(out, hex[c & 15]);
        }
    }
}

/* Appends "name=value&..." with templated values, url-encoded. */
static void encode_pairs(lt_vu *vu, const lt_kv *kv, size_t n, cu_buf *out)
{
    cu_buf tmp = CU_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        if (i)
            cu_buf_appendc(out, '&');
        url_encode(out, kv[i].name, strlen(kv[i].name));
        cu_buf_appendc(out, '=');
        cu_buf_reset(&tmp);
        render(vu, kv[i].value, &tmp);
        url_encode(out, tmp.data ? tmp.data : "", tmp.len);
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
            render(vu, p->value, b);
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

/* The client for an absolute URL's origin (the target's, or another). */
static http_client *client_for(lt_vu *vu, const char *url, const char **target, char *err)
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
    if (!*slot) {
        http_client_opts o = {vu->w->resolver, NULL, 0};
        if (origin->tls) {
            o.tls = lt_worker_tls(vu->w, err);
            if (!o.tls)
                return NULL;
        }
        *slot = http_client_new(&vu->w->loop, origin, &o);
    }
    return *slot;
}

/* Sends r; returns false when the user failed before anything was sent. */
static bool send_request(lt_vu *vu, const lt_request *r)
{
    lt_worker *w = vu->w;
    lt_run_t *run = w->run;
    const lt_script *s = run->script;
    cu_buf_reset(&vu->url);
    render(vu, r->url, &vu->url);
    if (r->nqs) {
        cu_buf_appendc(&vu->url, strchr(vu->url.data, '?') ? '&' : '?');
        encode_pairs(vu, r->qs, r->nqs, &vu->url);
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
        vu_fail(vu, r, code);
        return false;
    }
    char err[CU_ERRLEN];
    const char *target = NULL;
    http_client *c = client_for(vu, absolute, &target, err);
    if (!c) {
        char code[600];
        snprintf(code, sizeof code, "Invalid URL - %s", url);
        vu_fail(vu, r, absolute ? code : "ERR_TLS_CONTEXT");
        return false;
    }

    /* headers: the request's own, then defaults it does not override */
    cu_buf_reset(&vu->vals);
    vu->nh = 0;
    for (size_t i = 0; i < r->nheaders; i++)
        add_header(vu, r->headers[i].name, strlen(r->headers[i].name), r->headers[i].value, NULL);
    for (size_t i = 0; i < s->ndefault_headers; i++)
        if (!header_given(vu, s->default_headers[i].name))
            add_header(vu, s->default_headers[i].name, strlen(s->default_headers[i].name),
                       s->default_headers[i].value, NULL);
    if (r->auth_user && !header_given(vu, "authorization")) {
        cu_buf up = CU_BUF_INIT, enc = CU_BUF_INIT;
        render(vu, r->auth_user, &up);
        cu_buf_appendc(&up, ':');
        if (r->auth_pass)
            render(vu, r->auth_pass, &up);
        cu_buf_appends(&enc, "Basic ");
        base64(&enc, up.data, up.len);
        add_header(vu, "authorization", 13, NULL, enc.data);
        cu_buf_free(&up);
        cu_buf_free(&enc);
    }
    for (size_t i = 0; i < r->ncookies; i++) {
        cu_buf v = CU_BUF_INIT;
        render(vu, r->cookies[i].value, &v);
        json_object_set_new(vu->cookies, r->cookies[i].name, json_string(v.data ? v.data : ""));
        cu_buf_free(&v);
    }
    if (json_object_size(vu->cookies) > 0 && !header_given(vu, "cookie")) {
        cu_buf cv = CU_BUF_INIT;
        const char *k;
        json_t *v;
        json_object_foreach(vu->cookies, k, v) {
            if (cv.len)
                cu_buf_appends(&cv, "; ");
            cu_buf_appendf(&cv, "%s=%s", k, json_string_value(v));
        }
        add_header(vu, "cookie", 6, NULL, cv.data);
        cu_buf_free(&cv);
    }
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
        render(vu, r->body, &vu->body);
        break;
    case LT_BODY_FORM:
        encode_pairs(vu, r->form, r->nform, &vu->body);
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
    for (size_t i = 0; i < vu->nh; i++)
        vu->hdrs[i] = (http_header){vu->vals.data + vu->hoff[i][0], vu->hlen[i][0],
                                    vu->vals.data + vu->hoff[i][1], vu->hlen[i][1]};

    int64_t ts = cu_wall_ms();
    lt_hot *h = lt_worker_hot(w, ts);
    mset_entry_count(w->win, HOT(h, requests, "http.requests", MSET_COUNTER), 1, ts);
    mset_entry_rate(w->win, HOT(h, request_rate, "http.request_rate", MSET_RATE), ts);

    http_request req = {r->method, target && *target ? target : "/", vu->hdrs, vu->nh,
                        vu->body.len ? vu->body.data : NULL, vu->body.len};
    vu->req = r;
    vu->in_flight = true;
    uint64_t timeout_ms = (uint64_t)(s->timeout_s * 1000.0);
    int rc = http_client_send(c, &req, r->needs_body, timeout_ms, on_response, vu);
    if (rc != 0) {
        vu->in_flight = false;
        vu_fail(vu, r, http_error_name(rc));
        return false;
    }
    return true;
}

/* ---- captures and checks ---------------------------------------------------------------------- */
static json_t *parse_body(const http_response *res, json_t **cache, bool *tried)
{
    if (!*tried) {
        *tried = true;
        if (res->body)
            *cache = json_loadb(res->body, res->body_len, JSON_DECODE_ANY, NULL);
    }
    return *cache;
}

static bool run_captures(lt_vu *vu, const lt_request *r, const http_response *res, json_t **doc,
                         bool *tried)
{
    json_t *got = json_object();
    bool ok = true;
    for (size_t i = 0; i < r->ncaptures && ok; i++) {
        const lt_capture *c = &r->captures[i];
        json_t *val = NULL;
        if (c->kind == LT_CAP_JSON) {
            json_t *d = parse_body(res, doc, tried);
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

static const char *const expect_names[] = {"statusCode", "contentType", "hasProperty", "equals"};

static bool expect_one(lt_vu *vu, const lt_expect *e, const http_response *res, json_t **doc,
                       bool *tried, cu_buf *got)
{
    switch (e->kind) {
    case LT_EXP_STATUS:
        cu_buf_appendf(got, "%d", res->status);
        for (size_t i = 0; i < e->nstatus; i++)
            if (e->status[i] == res->status)
                return true;
        return false;
    case LT_EXP_CONTENT_TYPE: {
        const http_header *ct = http_header_find(res->headers, res->nheaders, "content-type");
        if (ct)
            cu_buf_append(got, ct->value, ct->value_len);
        if (!ct)
            return false;
        if (!strcmp(e->text, "json")) {
            bool type_ok = memmem(ct->value, ct->value_len, "application/json", 16) ||
                           memmem(ct->value, ct->value_len, "+json", 5);
            return type_ok && parse_body(res, doc, tried) != NULL;
        }
        size_t n = strlen(e->text);
        return ct->value_len >= n && !strncasecmp(ct->value, e->text, n) &&
               (ct->value_len == n || ct->value[n] == ';' || ct->value[n] == ' ');
    }
    case LT_EXP_HAS_PROPERTY: {
        json_t *d = parse_body(res, doc, tried);
        char *path = cu_strdup(e->text), *save = NULL;
        for (char *part = strtok_r(path, ".", &save); part && d; part = strtok_r(NULL, ".", &save))
            d = json_is_array(d) ? json_array_get(d, strtoul(part, NULL, 10)) : json_object_get(d, part);
        free(path);
        cu_buf_appends(got, d ? "present" : "absent");
        return d != NULL;
    }
    case LT_EXP_EQUALS: {
        cu_buf first = CU_BUF_INIT, other = CU_BUF_INIT;
        bool eq = true;
        for (size_t i = 0; i < e->nequals; i++) {
            cu_buf *b = i == 0 ? &first : &other;
            cu_buf_reset(b);
            render(vu, e->equals[i], b);
            if (i > 0 && strcmp(first.data ? first.data : "", other.data ? other.data : ""))
                eq = false;
            cu_buf_appendf(got, "%s%s", i ? ", " : "", b->data ? b->data : "");
        }
        cu_buf_free(&first);
        cu_buf_free(&other);
        return eq;
    }
    }
    return true;
}

/* Returns false when a failed check must fail the user. */
static bool run_expects(lt_vu *vu, const lt_request *r, const http_response *res, json_t **doc,
                        bool *tried)
{
    lt_worker *w = vu->w;
    const lt_plugins *pl = &w->run->script->plugins;
    int64_t ts = cu_wall_ms();
    bool all = true;
    cu_buf out = CU_BUF_INIT, got = CU_BUF_INIT;
    for (size_t i = 0; i < r->nexpects; i++) {
        cu_buf_reset(&got);
        bool ok = expect_one(vu, &r->expects[i], res, doc, tried, &got);
        const char *type = expect_names[r->expects[i].kind];
        char name[128];
        snprintf(name, sizeof name, "plugins.expect.%s.%s", ok ? "ok" : "failed", type);
        count_name(w, ok ? "plugins.expect.ok" : "plugins.expect.failed", 1, ts);
        count_name(w, name, 1, ts);
        if (!ok) {
            all = false;
            cu_buf_appendf(&out, "  not ok %s: got %s\n", type, got.data ? got.data : "");
        }
    }
    if (!all) {
        atomic_store(&w->run->expect_failed, 1);
        if (pl->expect_format != LT_EXPECT_SILENT)
            printf("* %s %s%s%s\n%s\n", r->method, vu->url.data, r->name ? " - " : "", "",
                   out.data);
    }
    cu_buf_free(&out);
    cu_buf_free(&got);
    return all || !pl->expect_failures_as_errors;
}

static void store_cookies(lt_vu *vu, const http_response *res)
{
    for (size_t i = 0; i < res->nheaders; i++) {
        const http_header *h = &res->headers[i];
        if (!cu_memcaseeq(h->name, h->name_len, "set-cookie"))
            continue;
        const char *eq = memchr(h->value, '=', h->value_len);
        if (!eq)
            continue;
        const char *end = memchr(h->value, ';', h->value_len);
        if (!end)
            end = h->value + h->value_len;
        if (eq > end)
            continue;
        char *name = cu_strndup(h->value, (size_t)(eq - h->value));
        json_object_set_new(vu->cookies, name, json_stringn(eq + 1, (size_t)(end - eq - 1)));
        free(name);
    }
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
        vu_fail(vu, r, http_error_name(err));
        return;
    }
    const lt_plugins *pl = &w->run->script->plugins;
    int64_t ts = cu_wall_ms();
    lt_hot *h = lt_worker_hot(w, ts);
    mset *m = w->win;
    int status = res->status;
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
    int cls = status / 100;
    if (cls >= 1 && cls <= 5) {
        if (!h->rt_class[cls]) {
            char name[32];
            snprintf(name, sizeof name, "http.response_time.%dxx", cls);
            h->rt_class[cls] = mset_get(m, name, MSET_SUMMARY);
        }
        mset_entry_summary(m, h->rt_class[cls], rt, ts);
    }
    if (pl->mbe && r->endpoint) {
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
    store_cookies(vu, res);
    json_t *doc = NULL;
    bool tried = false, ok = true;
    if (r->ncaptures && !run_captures(vu, r, res, &doc, &tried)) {
        json_decref(doc);
        vu_fail(vu, r, "Failed capture or match");
        return;
    }
    if (r->nexpects)
        ok = run_expects(vu, r, res, &doc, &tried);
    json_decref(doc);
    if (!ok) {
        char code[600];
        snprintf(code, sizeof code, "Failed expectations for request %s", vu->url.data);
        vu_fail(vu, r, code);
        return;
    }
    vu_run(vu);
}

/* ---- the flow ---------------------------------------------------------------------------------- */
static int64_t loop_count(lt_vu *vu, const lt_step *st)
{
    if (!st->loop.count)
        return -1;
    cu_buf b = CU_BUF_INIT;
    render(vu, st->loop.count, &b);
    char *end = NULL;
    long long n = strtoll(b.data ? b.data : "", &end, 10);
    bool ok = end && end != b.data;
    cu_buf_free(&b);
    return ok && n > 0 ? n : 0;
}

static void set_loop_vars(lt_vu *vu, frame *f)
{
    set_var_int(vu->vars, "$loopCount", f->iter);
    if (f->over)
        json_object_set(vu->vars, "$loopElement", json_array_get(f->over, (size_t)f->iter));
}

static void vu_run(lt_vu *vu)
{
    for (;;) {
        if (vu->stopping) {
            vu_end(vu, NULL);
            return;
        }
        frame *f = &vu->frames[vu->depth - 1];
        if (f->idx >= f->n) {
            if (vu->depth == 1) {
                vu_end(vu, NULL);
                return;
            }
            f->iter++;
            bool more = f->over ? (size_t)f->iter < json_array_size(f->over)
                                : (f->count < 0 || f->iter < f->count);
            if (more) {
                f->idx = 0;
                set_loop_vars(vu, f);
                continue;
            }
            json_decref(f->over);
            f->over = NULL;
            vu->depth--;
            continue;
        }
        const lt_step *st = &f->steps[f->idx++];
        switch (st->kind) {
        case LT_STEP_REQUEST:
            send_request(vu, &st->req);
            return; /* continues in on_response, or the user has ended */
        case LT_STEP_THINK:
            vu->think_active = true;
            uv_timer_start(&vu->think, on_think_done, (uint64_t)llround(st->think_ms), 0);
            return;
        case LT_STEP_LOG: {
            cu_buf b = CU_BUF_INIT;
            render(vu, st->log, &b);
            printf("%s\n", b.data ? b.data : "");
            cu_buf_free(&b);
            break;
        }
        case LT_STEP_FUNCTION: {
            char code[300];
            snprintf(code, sizeof code, "Undefined function \"%s\"", st->function);
            count_error(vu, NULL, code, cu_wall_ms());
            break;
        }
        case LT_STEP_LOOP: {
            if (vu->depth >= VU_MAX_DEPTH)
                break;
            json_t *over = NULL;
            if (st->loop.over_list)
                over = json_incref(st->loop.over_list);
            else if (st->loop.over_var) {
                json_t *v = json_object_get(vu->vars, st->loop.over_var);
                if (!json_is_array(v))
                    break; /* Artillery skips a loop over a non-list */
                over = json_incref(v);
            }
            int64_t count = over ? (int64_t)json_array_size(over) : loop_count(vu, st);
            if (count == 0 || st->loop.nsteps == 0) {
                json_decref(over);
                break;
            }
            frame *nf = &vu->frames[vu->depth++];
            *nf = (frame){st->loop.steps, st->loop.nsteps, 0, 0, count, over};
            set_loop_vars(vu, nf);
            break;
        }
        }
    }
}
