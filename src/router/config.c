/* router/config.c: the serve config (docs/serve.md) from a conf tree.
 *
 * Every error names file:line:column of the offending node; unknown keys
 * warn with the nearest valid key. `state` and `rollout` belong to the
 * rollout controller and are kept as parsed nodes, not interpreted here.
 * Relative file names (token_file, TLS files, access_log) are resolved
 * against the config file's directory. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "router/router_int.h"

typedef struct pctx {
    router_config *c;
    char *dir;
    char *err;
} pctx;

static int get_string(pctx *p, const conf_node *n, char **out)
{
    if (!conf_is_scalar(n) || n->type == CONF_NULL || n->type == CONF_BOOL) {
        conf_errf(p->err, n, "expected a string");
        return -EINVAL;
    }
    free(*out);
    *out = cu_strdup(n->str);
    return 0;
}

static int get_path(pctx *p, const conf_node *n, char **out)
{
    char *s = NULL;
    if (get_string(p, n, &s) < 0)
        return -EINVAL;
    free(*out);
    *out = cu_path_join(p->dir, s);
    free(s);
    return 0;
}

static int get_uint(pctx *p, const conf_node *n, long long min, long long max, long long *out)
{
    if (n->type != CONF_INT || n->i < min || n->i > max) {
        conf_errf(p->err, n, "expected an integer from %lld to %lld", min, max);
        return -EINVAL;
    }
    *out = n->i;
    return 0;
}

static int get_size(pctx *p, const conf_node *n, long long min, long long max, size_t *out)
{
    long long v;
    if (get_uint(p, n, min, max, &v) < 0)
        return -EINVAL;
    *out = (size_t)v;
    return 0;
}

static int get_dur(pctx *p, const conf_node *n, uint64_t *out)
{
    if (conf_duration_ms(n, out))
        return 0;
    conf_errf(p->err, n, "expected a duration such as 500ms, 2s, 1m or 1h");
    return -EINVAL;
}

/* busy_poll: 50us, 0.2ms, 0 or false (off); at most 1ms. */
static int get_busy_poll(pctx *p, const conf_node *n, uint64_t *out_us)
{
    double v = -1;
    if ((n->type == CONF_BOOL && !n->b) || (n->type == CONF_INT && n->i == 0)) {
        v = 0;
    } else if (n->type == CONF_STRING) {
        char *end;
        double x = strtod(n->str, &end);
        if (end != n->str && x >= 0 && !strcmp(end, "us"))
            v = x;
        else if (end != n->str && x >= 0 && !strcmp(end, "ms"))
            v = x * 1000;
    }
    if (!(v >= 0 && v <= 1000)) {
        conf_errf(p->err, n, "busy_poll must be a duration from 0us to 1ms such as 50us, or false");
        return -EINVAL;
    }
    *out_us = (uint64_t)llround(v);
    return 0;
}

static int get_bool(pctx *p, const conf_node *n, bool *out)
{
    if (n->type != CONF_BOOL) {
        conf_errf(p->err, n, "expected true or false");
        return -EINVAL;
    }
    *out = n->b;
    return 0;
}

static int need_map(pctx *p, const conf_node *n, const char *what)
{
    if (n->type != CONF_MAP) {
        conf_errf(p->err, n, "%s must be a map", what);
        return -EINVAL;
    }
    return 0;
}

static int get_hostport(pctx *p, const conf_node *n, char **host, int *port)
{
    if (n->type == CONF_INT) {
        if (n->i < 0 || n->i > 65535) {
            conf_errf(p->err, n, "invalid port %lld", n->i);
            return -EINVAL;
        }
        free(*host);
        *host = cu_strdup("127.0.0.1");
        *port = (int)n->i;
        return 0;
    }
    if (n->type != CONF_STRING) {
        conf_errf(p->err, n, "expected HOST:PORT");
        return -EINVAL;
    }
    char e[CU_ERRLEN];
    char *h = NULL;
    int pt;
    if (net_split_hostport(n->str, &h, &pt, e) < 0) {
        conf_errf(p->err, n, "%s", e);
        return -EINVAL;
    }
    free(*host);
    if (!*h) {
        free(h);
        h = cu_strdup("127.0.0.1");
    }
    *host = h;
    *port = pt;
    return 0;
}

/* `#define` for the repetitive "is this key present -> parse it" dance. */
#define TRY(x) do { if ((x) < 0) return -EINVAL; } while (0)

static int parse_health(pctx *p, const conf_node *n, router_health_conf *h)
{
    static const char *const keys[] = {"path",  "interval",    "timeout",
                                       "rise",  "fall",        "eject_after", "eject_time"};
    TRY(need_map(p, n, "health"));
    conf_check_keys(n, keys, CU_ARRAY_LEN(keys), "health");
    const conf_node *v;
    if ((v = conf_get(n, "path"))) {
        TRY(get_string(p, v, &h->path));
        if (h->path[0] != '/') {
            conf_errf(p->err, v, "health path must start with '/'");
            return -EINVAL;
        }
    }
    if ((v = conf_get(n, "interval"))) {
        TRY(get_dur(p, v, &h->interval_ms));
        if (h->interval_ms < 10) {
            conf_errf(p->err, v, "interval must be at least 10ms");
            return -EINVAL;
        }
    }
    if ((v = conf_get(n, "timeout")))
        TRY(get_dur(p, v, &h->timeout_ms));
    long long k;
    if ((v = conf_get(n, "rise"))) {
        TRY(get_uint(p, v, 1, 1000, &k));
        h->rise = (int)k;
    }
    if ((v = conf_get(n, "fall"))) {
        TRY(get_uint(p, v, 1, 1000, &k));
        h->fall = (int)k;
    }
    if ((v = conf_get(n, "eject_after"))) {
        TRY(get_uint(p, v, 0, 1000000, &k));
        h->eject_after = (int)k;
    }
    if ((v = conf_get(n, "eject_time")))
        TRY(get_dur(p, v, &h->eject_ms));
    return 0;
}

static int parse_pool(pctx *p, const conf_node *n, const char *name, router_pool_conf *pc)
{
    static const char *const keys[] = {"servers", "health", "pool", "tls"};
    TRY(need_map(p, n, name));
    conf_check_keys(n, keys, CU_ARRAY_LEN(keys), name);
    const conf_node *s = conf_get(n, "servers");
    if (!s) {
        conf_errf(p->err, n, "upstream '%s' needs 'servers'", name);
        return -EINVAL;
    }
    if (s->type == CONF_STRING) {
        pc->servers = cu_calloc(1, sizeof(char *));
        pc->servers[0] = cu_strdup(s->str);
        pc->nservers = 1;
    } else if (s->type == CONF_SEQ && s->n > 0) {
        pc->servers = cu_calloc(s->n, sizeof(char *));
        for (size_t i = 0; i < s->n; i++) {
            TRY(get_string(p, s->items[i], &pc->servers[i]));
            pc->nservers++;
        }
    } else {
        conf_errf(p->err, s, "servers must be a URL or a non-empty list of URLs");
        return -EINVAL;
    }
    for (size_t i = 0; i < pc->nservers; i++) {
        http_url u;
        char e[CU_ERRLEN];
        const conf_node *at = s->type == CONF_SEQ ? s->items[i] : s;
        if (http_url_parse(&u, pc->servers[i], e) < 0) {
            conf_errf(p->err, at, "%s", e);
            return -EINVAL;
        }
        bool has_path = strcmp(u.target, "/") != 0;
        http_url_free(&u);
        if (has_path) {
            conf_errf(p->err, at, "a server URL has no path: scheme://host:port");
            return -EINVAL;
        }
    }
    const conf_node *v;
    if ((v = conf_get(n, "health")))
        TRY(parse_health(p, v, &pc->health));
    if ((v = conf_get(n, "pool"))) {
        static const char *const pk[] = {"max_conns", "max_idle", "idle_timeout"};
        TRY(need_map(p, v, "pool"));
        conf_check_keys(v, pk, CU_ARRAY_LEN(pk), "pool");
        const conf_node *w;
        if ((w = conf_get(v, "max_conns")))
            TRY(get_size(p, w, 1, 100000, &pc->max_conns));
        if ((w = conf_get(v, "max_idle")))
            TRY(get_size(p, w, 0, 100000, &pc->max_idle));
        if ((w = conf_get(v, "idle_timeout")))
            TRY(get_dur(p, w, &pc->idle_timeout_ms));
    }
    if ((v = conf_get(n, "tls"))) {
        static const char *const tk[] = {"verify", "ca"};
        TRY(need_map(p, v, "tls"));
        conf_check_keys(v, tk, CU_ARRAY_LEN(tk), "tls");
        const conf_node *w;
        if ((w = conf_get(v, "verify")))
            TRY(get_bool(p, w, &pc->tls_verify));
        if ((w = conf_get(v, "ca")))
            TRY(get_path(p, w, &pc->tls_ca));
    }
    return 0;
}

static int parse_tls(pctx *p, const conf_node *v, char **cert, char **key)
{
    static const char *const tk[] = {"cert", "key"};
    const conf_node *w;
    TRY(need_map(p, v, "tls"));
    conf_check_keys(v, tk, CU_ARRAY_LEN(tk), "tls");
    if ((w = conf_get(v, "cert")))
        TRY(get_path(p, w, cert));
    if ((w = conf_get(v, "key")))
        TRY(get_path(p, w, key));
    if (!*cert || !*key) {
        conf_errf(p->err, v, "tls needs both 'cert' and 'key'");
        return -EINVAL;
    }
    return 0;
}

static void defaults(router_config *c)
{
    c->admin_host = cu_strdup("127.0.0.1");
    c->admin_port = 9090;
    c->color_header = cu_strdup("X-Cutover-Color");
    c->retry = true;
    c->max_header_bytes = 32 * 1024;
    c->max_headers = 100;
    c->header_timeout_ms = 10000;
    c->body_timeout_ms = 30000;
    c->idle_timeout_ms = 60000;
    c->connect_timeout_ms = 2000;
    c->response_timeout_ms = 30000;
    c->drain_timeout_ms = 10000;
    c->tunnel_timeout_ms = 3600000;
    c->horizon_s = 900;
    c->busy_poll_us = 0;
    for (int i = 0; i < 2; i++) {
        router_pool_conf *pc = &c->pools[i];
        pc->max_conns = 512;
        pc->max_idle = 64;
        pc->idle_timeout_ms = 15000;
        pc->tls_verify = true;
        pc->health.interval_ms = 2000;
        pc->health.timeout_ms = 1000;
        pc->health.rise = 2;
        pc->health.fall = 3;
        pc->health.eject_after = 3;
        pc->health.eject_ms = 10000;
    }
}

static int parse_root(pctx *p, const conf_node *root)
{
    static const char *const keys[] = {
        "listen", "tls", "admin", "upstreams", "weight", "sticky", "force_header", "color_header",
        "retry", "limits", "timeouts", "metrics", "access_log", "busy_poll", "state", "rollout"};
    router_config *c = p->c;
    if (root->type != CONF_MAP) {
        conf_errf(p->err, root, "the serve config must be a map");
        return -EINVAL;
    }
    conf_check_keys(root, keys, CU_ARRAY_LEN(keys), "the serve config");
    const conf_node *v, *w;
    char *cert = NULL, *key = NULL;
    if ((v = conf_get(root, "tls")) && parse_tls(p, v, &cert, &key) < 0)
        goto fail_tls;
    v = conf_get(root, "listen");
    size_t n = v && v->type == CONF_SEQ ? v->n : 1;
    if (v && v->type == CONF_SEQ && n == 0) {
        conf_errf(p->err, v, "listen needs at least one address");
        goto fail_tls;
    }
    c->listeners = cu_calloc(n, sizeof *c->listeners);
    c->nlisteners = n;
    for (size_t i = 0; i < n; i++) {
        router_listen_conf *l = &c->listeners[i];
        const conf_node *item = v && v->type == CONF_SEQ ? v->items[i] : v;
        l->port = 8080;
        if (!item) {
            l->host = cu_strdup("127.0.0.1");
        } else if (item->type == CONF_MAP) {
            static const char *const lk[] = {"address", "tls"};
            conf_check_keys(item, lk, 2, "listen");
            if (!(w = conf_get(item, "address"))) {
                conf_errf(p->err, item, "a listener needs 'address' (HOST:PORT)");
                goto fail_tls;
            }
            if (get_hostport(p, w, &l->host, &l->port) < 0)
                goto fail_tls;
            if ((w = conf_get(item, "tls")) && parse_tls(p, w, &l->tls_cert, &l->tls_key) < 0)
                goto fail_tls;
            continue;
        } else if (get_hostport(p, item, &l->host, &l->port) < 0) {
            goto fail_tls;
        }
        if (cert) {
            l->tls_cert = cu_strdup(cert);
            l->tls_key = cu_strdup(key);
        }
    }
    free(cert);
    free(key);
    if ((v = conf_get(root, "admin"))) {
        static const char *const ak[] = {"listen", "token_file"};
        TRY(need_map(p, v, "admin"));
        conf_check_keys(v, ak, CU_ARRAY_LEN(ak), "admin");
        if ((w = conf_get(v, "listen")))
            TRY(get_hostport(p, w, &c->admin_host, &c->admin_port));
        if ((w = conf_get(v, "token_file")))
            TRY(get_path(p, w, &c->token_file));
    }
    v = conf_get(root, "upstreams");
    if (!v) {
        conf_errf(p->err, root, "missing 'upstreams' (with 'blue' and 'green')");
        return -EINVAL;
    }
    TRY(need_map(p, v, "upstreams"));
    static const char *const uk[] = {"blue", "green"};
    if (conf_check_keys(v, uk, 2, "upstreams")) {
        for (size_t i = 0; i < v->n; i++)
            if (strcmp(conf_key(v, i), "blue") && strcmp(conf_key(v, i), "green")) {
                conf_errf(p->err, v->keys[i], "upstreams are 'blue' and 'green', not '%s'",
                          conf_key(v, i));
                return -EINVAL;
            }
    }
    for (int i = 0; i < 2; i++) {
        if (!(w = conf_get(v, uk[i]))) {
            conf_errf(p->err, v, "missing upstream '%s'", uk[i]);
            return -EINVAL;
        }
        TRY(parse_pool(p, w, uk[i], &c->pools[i]));
    }
    if ((v = conf_get(root, "weight"))) {
        double d;
        if (!conf_number(v, &d) || rt_weight_bp(d) < 0) {
            conf_errf(p->err, v, "weight is green's percent, from 0 to 100");
            return -EINVAL;
        }
        c->weight = rt_weight_bp(d) / 100.0;
    }
    if ((v = conf_get(root, "sticky"))) {
        if (v->type == CONF_NULL || (v->type == CONF_STRING && !strcmp(v->str, "none"))) {
            /* no key */
        } else {
            static const char *const sk[] = {"header", "cookie"};
            TRY(need_map(p, v, "sticky"));
            conf_check_keys(v, sk, 2, "sticky");
            if ((w = conf_get(v, "header")))
                TRY(get_string(p, w, &c->sticky_header));
            if ((w = conf_get(v, "cookie")))
                TRY(get_string(p, w, &c->sticky_cookie));
            if (c->sticky_header && c->sticky_cookie) {
                conf_errf(p->err, v, "sticky takes one of 'header' or 'cookie'");
                return -EINVAL;
            }
        }
    }
    if ((v = conf_get(root, "force_header"))) {
        if (v->type == CONF_BOOL && !v->b)
            ;
        else if (v->type == CONF_BOOL)
            c->force_header = cu_strdup("X-Cutover-Color");
        else
            TRY(get_string(p, v, &c->force_header));
    }
    if ((v = conf_get(root, "color_header"))) {
        if (v->type == CONF_BOOL && !v->b) {
            free(c->color_header);
            c->color_header = NULL;
        } else {
            TRY(get_string(p, v, &c->color_header));
        }
    }
    if ((v = conf_get(root, "retry")))
        TRY(get_bool(p, v, &c->retry));
    if ((v = conf_get(root, "limits"))) {
        static const char *const lk[] = {"header_bytes", "headers"};
        TRY(need_map(p, v, "limits"));
        conf_check_keys(v, lk, 2, "limits");
        if ((w = conf_get(v, "header_bytes")))
            TRY(get_size(p, w, 1024, 1 << 20, &c->max_header_bytes));
        if ((w = conf_get(v, "headers")))
            TRY(get_size(p, w, 4, 10000, &c->max_headers));
    }
    if ((v = conf_get(root, "timeouts"))) {
        static const char *const tk[] = {"header",   "body",  "idle",  "connect",
                                         "response", "drain", "tunnel"};
        uint64_t *dst[] = {&c->header_timeout_ms,   &c->body_timeout_ms,  &c->idle_timeout_ms,
                           &c->connect_timeout_ms,  &c->response_timeout_ms,
                           &c->drain_timeout_ms,    &c->tunnel_timeout_ms};
        TRY(need_map(p, v, "timeouts"));
        conf_check_keys(v, tk, CU_ARRAY_LEN(tk), "timeouts");
        for (size_t i = 0; i < CU_ARRAY_LEN(tk); i++)
            if ((w = conf_get(v, tk[i]))) {
                TRY(get_dur(p, w, dst[i]));
                if (*dst[i] == 0) {
                    conf_errf(p->err, w, "a timeout must be positive");
                    return -EINVAL;
                }
            }
    }
    if ((v = conf_get(root, "metrics"))) {
        static const char *const mk[] = {"horizon"};
        TRY(need_map(p, v, "metrics"));
        conf_check_keys(v, mk, 1, "metrics");
        if ((w = conf_get(v, "horizon"))) {
            uint64_t ms;
            TRY(get_dur(p, w, &ms));
            if (ms < 60000 || ms > 6 * 3600000ULL) {
                conf_errf(p->err, w, "horizon must be from 1m to 6h (each second of it costs memory)");
                return -EINVAL;
            }
            c->horizon_s = ms / 1000;
        }
    }
    if ((v = conf_get(root, "access_log")))
        TRY(get_path(p, v, &c->access_log));
    if ((v = conf_get(root, "busy_poll")))
        TRY(get_busy_poll(p, v, &c->busy_poll_us));
    c->state = conf_get(root, "state");
    c->rollout = conf_get(root, "rollout");
    return 0;
fail_tls:
    free(cert);
    free(key);
    return -EINVAL;
}

int router_config_parse(router_config *c, const char *text, size_t len, const char *file,
                        char err[CU_ERRLEN])
{
    memset(c, 0, sizeof *c);
    defaults(c);
    c->path = cu_strdup(file);
    c->root = conf_parse(text, len, file, err);
    if (!c->root) {
        router_config_free(c);
        return -EINVAL;
    }
    pctx p = {c, cu_dirname(file), err};
    int rc = parse_root(&p, c->root);
    free(p.dir);
    if (rc < 0)
        router_config_free(c);
    return rc;
}

int router_config_load(router_config *c, const char *path, char err[CU_ERRLEN])
{
    cu_buf b = CU_BUF_INIT;
    memset(c, 0, sizeof *c);
    int rc = cu_read_file(path, &b, err);
    if (rc < 0)
        return rc;
    rc = router_config_parse(c, b.data ? b.data : "", b.len, path, err);
    cu_buf_free(&b);
    return rc;
}

void router_config_free(router_config *c)
{
    free(c->path);
    conf_free(c->root);
    for (size_t i = 0; i < c->nlisteners; i++) {
        free(c->listeners[i].host);
        free(c->listeners[i].tls_cert);
        free(c->listeners[i].tls_key);
    }
    free(c->listeners);
    free(c->admin_host);
    free(c->token_file);
    for (int i = 0; i < 2; i++) {
        router_pool_conf *pc = &c->pools[i];
        for (size_t k = 0; k < pc->nservers; k++)
            free(pc->servers[k]);
        free(pc->servers);
        free(pc->health.path);
        free(pc->tls_ca);
    }
    free(c->sticky_header);
    free(c->sticky_cookie);
    free(c->force_header);
    free(c->color_header);
    free(c->access_log);
    memset(c, 0, sizeof *c);
}
