/* router/admin.c: the admin API on its own listener (docs/serve.md).
 *
 *   GET /status    JSON: weights, each server's health, per-colour figures
 *                  for the last 10 s, 1 min and 5 min
 *   PUT /weights   {"green": 12.5} (or {"blue": 87.5}); needs the token
 *   GET /metrics   Prometheus text format 0.0.4
 *   other paths under a registered prefix go to the glue's handler.
 * Mutating calls need `Authorization: Bearer <token>` (token_file); the
 * comparison runs in constant time and the token is never logged. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "router/proxy.h"

static const http_header JSON_CT[] = {{"Content-Type", 12, "application/json", 16}};
static const http_header PROM_CT[] = {
    {"Content-Type", 12, "text/plain; version=0.0.4; charset=utf-8", 40}};

static void reply_json(http_exchange *x, int status, const char *body)
{
    http_respond(x, status, JSON_CT, 1, body, strlen(body));
}

static void reply_error(http_exchange *x, int status, const char *msg)
{
    char buf[256];
    snprintf(buf, sizeof buf, "{\"error\":\"%s\"}\n", msg);
    reply_json(x, status, buf);
}

static bool authorized(router *r, const http_server_request *req)
{
    const char *tok = r->gen->token;
    if (!tok)
        return false;
    const http_header *h = http_header_find(req->headers, req->nheaders, "authorization");
    if (!h || h->value_len < 7 || strncasecmp(h->value, "Bearer ", 7) != 0)
        return false;
    const char *v = h->value + 7;
    size_t vl = h->value_len - 7, tl = strlen(tok);
    unsigned diff = (unsigned)(vl ^ tl);
    for (size_t i = 0; i < tl; i++)
        diff |= (unsigned char)tok[i] ^ (unsigned char)(i < vl ? v[i] : 0);
    return diff == 0;
}

static void sample_json(cu_buf *b, router *r, router_color c, uint64_t seconds)
{
    router_sample s;
    hist_init(&s.latency_ms);
    router_read_window(r, c, seconds, &s);
    double rate = s.seconds > 0 ? (double)s.requests / s.seconds : 0;
    double er = s.requests ? (double)(s.errors_5xx + s.transport_errors) / (double)s.requests : 0;
    cu_buf_appendf(b,
                   "{\"requests\":%llu,\"rps\":%.3f,\"errors_5xx\":%llu,\"transport_errors\":%llu,"
                   "\"error_rate\":%.6f,\"codes\":{\"1xx\":%llu,\"2xx\":%llu,\"3xx\":%llu,"
                   "\"4xx\":%llu,\"5xx\":%llu},\"bytes_in\":%llu,\"bytes_out\":%llu,"
                   "\"latency_ms\":{\"mean\":%.3f,\"p50\":%.3f,\"p95\":%.3f,\"p99\":%.3f,"
                   "\"max\":%.3f},\"seconds\":%.3f}",
                   (unsigned long long)s.requests, rate, (unsigned long long)s.errors_5xx,
                   (unsigned long long)s.transport_errors, er, (unsigned long long)s.codes[1],
                   (unsigned long long)s.codes[2], (unsigned long long)s.codes[3],
                   (unsigned long long)s.codes[4], (unsigned long long)s.codes[5],
                   (unsigned long long)s.bytes_in, (unsigned long long)s.bytes_out,
                   hist_mean(&s.latency_ms), hist_quantile(&s.latency_ms, 0.5),
                   hist_quantile(&s.latency_ms, 0.95), hist_quantile(&s.latency_ms, 0.99),
                   s.latency_ms.count ? s.latency_ms.max : 0.0, s.seconds);
    hist_free(&s.latency_ms);
}

static void json_esc(cu_buf *b, const char *s)
{
    cu_buf_appendc(b, '"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            cu_buf_appendf(b, "\\%c", ch);
        else if (ch < 0x20)
            cu_buf_appendf(b, "\\u%04x", ch);
        else
            cu_buf_appendc(b, (char)ch);
    }
    cu_buf_appendc(b, '"');
}

void rt_status_json(router *r, cu_buf *b)
{
    uint64_t now = cu_now_ns();
    double w = router_weight(r), e = router_effective_weight(r);
    cu_buf_appendf(b,
                   "{\"weights\":{\"green\":%.2f,\"blue\":%.2f},"
                   "\"effective_weights\":{\"green\":%.2f,\"blue\":%.2f},"
                   "\"draining\":%s,\"connections\":%zu,\"upstreams\":{",
                   w, 100 - w, e, 100 - e, r->draining ? "true" : "false", r->nconns);
    rt_gen *g = r->gen;
    for (int c = 0; c < 2; c++) {
        cu_buf_appendf(b, "%s\"%s\":{\"healthy\":%zu,\"servers\":[", c ? "," : "",
                       router_color_name((router_color)c), rt_gen_healthy(g, (router_color)c, now));
        for (size_t i = 0; i < g->nservers[c]; i++) {
            const rt_server *s = &g->servers[c][i];
            cu_buf_appends(b, i ? ",{\"url\":" : "{\"url\":");
            json_esc(b, s->url);
            bool ej = s->ejected && now < s->ejected_until_ns;
            cu_buf_appendf(b,
                           ",\"healthy\":%s,\"up\":%s,\"ejected\":%s,\"active_checks\":%s,"
                           "\"checks_ok\":%llu,\"checks_failed\":%llu,\"consecutive_failures\":%d,"
                           "\"connections\":%zu,\"idle\":%zu,\"last_error\":",
                           rt_server_healthy(s, now) ? "true" : "false", s->up ? "true" : "false",
                           ej ? "true" : "false",
                           g->cfg.pools[c].health.path ? "true" : "false",
                           (unsigned long long)s->checks_ok, (unsigned long long)s->checks_failed,
                           s->passive_fails, s->nconns, s->nidle);
            json_esc(b, s->last_error);
            cu_buf_appendc(b, '}');
        }
        cu_buf_appends(b, "]}");
    }
    cu_buf_appends(b, "},\"windows\":{");
    static const struct { const char *name; uint64_t s; } win[] = {{"10s", 10}, {"1m", 60},
                                                                   {"5m", 300}};
    for (size_t k = 0; k < CU_ARRAY_LEN(win); k++) {
        cu_buf_appendf(b, "%s\"%s\":{\"blue\":", k ? "," : "", win[k].name);
        sample_json(b, r, ROUTER_BLUE, win[k].s);
        cu_buf_appends(b, ",\"green\":");
        sample_json(b, r, ROUTER_GREEN, win[k].s);
        cu_buf_appendc(b, '}');
    }
    cu_buf_appendc(b, '}');
    if (r->status_hook) {
        size_t mark = b->len;
        cu_buf_appendc(b, ',');
        size_t before = b->len;
        r->status_hook(b, r->status_ctx);
        if (b->len == before) {
            b->len = mark;
            b->data[mark] = 0;
        }
    }
    cu_buf_appends(b, "}\n");
}

static void put_weights(router *r, http_exchange *x, const http_server_request *req)
{
    json_error_t je;
    json_t *j = json_loadb(req->body ? req->body : "", req->body_len, 0, &je);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        reply_error(x, 400, "expected a JSON object such as {\\\"green\\\": 12.5}");
        return;
    }
    json_t *g = json_object_get(j, "green"), *bl = json_object_get(j, "blue");
    double v;
    if (g && json_is_number(g))
        v = json_number_value(g);
    else if (bl && json_is_number(bl))
        v = 100.0 - json_number_value(bl);
    else {
        json_decref(j);
        reply_error(x, 400, "expected a number for \\\"green\\\" (percent, 0..100)");
        return;
    }
    json_decref(j);
    if (router_set_weight(r, v) < 0) {
        reply_error(x, 400, "weight must be from 0 to 100");
        return;
    }
    cu_info("router: green weight set to %.2f%% by the admin API", router_weight(r));
    char buf[128];
    double w = router_weight(r);
    snprintf(buf, sizeof buf, "{\"green\":%.2f,\"blue\":%.2f}\n", w, 100 - w);
    reply_json(x, 200, buf);
}

static void handle(http_exchange *x, const http_server_request *req, void *user)
{
    router *r = user;
    char path[256];
    snprintf(path, sizeof path, "%.*s", (int)CU_MIN(req->path_len, sizeof path - 1), req->path);
    bool get = !strcmp(req->method, "GET") || !strcmp(req->method, "HEAD");
    bool auth = authorized(r, req);
    if (r->admin_fn && r->admin_prefix && cu_startswith(path, r->admin_prefix)) {
        r->admin_fn(x, req, auth, r->admin_ctx);
        return;
    }
    if (!strcmp(path, "/status")) {
        if (!get) {
            reply_error(x, 405, "method not allowed");
            return;
        }
        cu_buf b = CU_BUF_INIT;
        rt_status_json(r, &b);
        http_respond(x, 200, JSON_CT, 1, b.data, b.len);
        cu_buf_free(&b);
    } else if (!strcmp(path, "/metrics")) {
        if (!get) {
            reply_error(x, 405, "method not allowed");
            return;
        }
        cu_buf lines = CU_BUF_INIT, b = CU_BUF_INIT;
        uint64_t now = cu_now_ns();
        for (int c = 0; c < 2; c++)
            for (size_t i = 0; i < r->gen->nservers[c]; i++) {
                const rt_server *s = &r->gen->servers[c][i];
                cu_buf_appendf(&lines, "cutover_server_up{color=\"%s\",server=\"%s\"} %d\n",
                               router_color_name((router_color)c), s->url,
                               rt_server_healthy(s, now) ? 1 : 0);
            }
        rt_stats_prometheus(&r->stats, &b, router_weight(r), router_effective_weight(r),
                            lines.data);
        http_respond(x, 200, PROM_CT, 1, b.data, b.len);
        cu_buf_free(&b);
        cu_buf_free(&lines);
    } else if (!strcmp(path, "/weights")) {
        if (strcmp(req->method, "PUT") && strcmp(req->method, "POST")) {
            reply_error(x, 405, "use PUT /weights");
            return;
        }
        if (!auth) {
            static const http_header h[] = {{"Content-Type", 12, "application/json", 16},
                                            {"WWW-Authenticate", 16, "Bearer", 6}};
            static const char body[] = "{\"error\":\"unauthorized\"}\n";
            http_respond(x, 401, h, 2, body, sizeof body - 1);
            return;
        }
        put_weights(r, x, req);
    } else {
        reply_error(x, 404, "not found");
    }
}

int rt_admin_start(router *r, char err[CU_ERRLEN])
{
    const router_config *c = &r->gen->cfg;
    http_server_opts o = {c->admin_host, c->admin_port, NULL, 1 << 20, 64 * 1024, 60000};
    int rc = http_server_start(&r->admin, r->loop, &o, handle, r, err);
    if (rc < 0)
        return rc;
    r->admin_port = http_server_port(r->admin);
    return 0;
}

void rt_admin_stop(router *r)
{
    if (r->admin) {
        http_server_stop(r->admin);
        r->admin = NULL;
    }
}
