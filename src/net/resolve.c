/* net/resolve.c: asynchronous name resolution with a per-loop cache, and
 * host:port splitting.
 *
 * One net_resolver per loop (worker thread). An answer is the first IPv4
 * address getaddrinfo returns, else the first address of any family (IPv4
 * first, as Node's "ipv4first" order: "localhost" works against servers
 * that listen on 127.0.0.1 only). Concurrent requests for the same
 * host:port share one lookup. Answers that need no lookup (literals, cache
 * hits) are queued and delivered from a uv_idle callback, so a callback
 * never runs inside net_resolve().
 *
 * Lifetime: net_resolver_free() fires every pending callback with
 * UV_ECANCELED (from inside the call), cancels lookups, and releases the
 * memory once libuv has given back the idle handle and the lookups; the
 * owner runs the loop afterwards for that.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"

#define RS_MAX_CACHE 256

typedef struct rs_waiter {
    struct rs_waiter *next;
    net_resolve_cb cb;
    void *user;
    int status;
    struct sockaddr_storage addr;
} rs_waiter;

typedef struct rs_lookup {
    uv_getaddrinfo_t req;
    struct rs_lookup *next;
    net_resolver *r;
    char *host;
    int port;
    rs_waiter *waiters;
} rs_lookup;

typedef struct rs_entry {
    char *host;
    int port;
    uint64_t expires;        /* uv_now() ms */
    struct sockaddr_storage addr;
} rs_entry;

struct net_resolver {
    uv_loop_t *loop;
    uint64_t ttl_ms;
    uv_idle_t idle;
    rs_waiter *ready, *ready_tail;  /* answers to deliver from the loop */
    rs_waiter *spare;               /* recycled waiter records */
    rs_lookup *lookups;
    rs_entry *cache;
    size_t ncache;
    int refs;                       /* idle handle + lookups in flight */
    bool freeing;
};

static void maybe_release(net_resolver *r)
{
    if (!r->freeing || r->refs > 0)
        return;
    while (r->spare) {
        rs_waiter *w = r->spare;
        r->spare = w->next;
        free(w);
    }
    for (size_t i = 0; i < r->ncache; i++)
        free(r->cache[i].host);
    free(r->cache);
    free(r);
}

static rs_waiter *waiter_new(net_resolver *r, net_resolve_cb cb, void *user)
{
    rs_waiter *w = r->spare;
    if (w)
        r->spare = w->next;
    else
        w = cu_malloc(sizeof *w);
    memset(w, 0, sizeof *w);
    w->cb = cb;
    w->user = user;
    return w;
}

static void waiter_recycle(net_resolver *r, rs_waiter *w)
{
    w->next = r->spare;
    r->spare = w;
}

static void deliver(net_resolver *r, rs_waiter *w)
{
    net_resolve_cb cb = w->cb;
    void *user = w->user;
    int status = w->status;
    struct sockaddr_storage addr = w->addr;
    waiter_recycle(r, w);
    cb(user, status, status == 0 ? (const struct sockaddr *)&addr : NULL);
}

static void on_idle(uv_idle_t *h)
{
    net_resolver *r = h->data;
    rs_waiter *list = r->ready;
    r->ready = r->ready_tail = NULL;
    uv_idle_stop(&r->idle);
    while (list) {
        rs_waiter *w = list;
        list = w->next;
        deliver(r, w);
    }
}

static void enqueue_ready(net_resolver *r, rs_waiter *w)
{
    w->next = NULL;
    if (r->ready_tail)
        r->ready_tail->next = w;
    else
        r->ready = w;
    r->ready_tail = w;
    uv_idle_start(&r->idle, on_idle);
}

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}

static bool parse_literal(const char *host, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return true;
    if (strchr(host, ':') && uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return true;
    return false;
}

static rs_entry *cache_find(net_resolver *r, const char *host, int port)
{
    uint64_t now = uv_now(r->loop);
    for (size_t i = 0; i < r->ncache; i++) {
        rs_entry *e = &r->cache[i];
        if (e->port == port && strcmp(e->host, host) == 0) {
            if (e->expires > now)
                return e;
            free(e->host);
            *e = r->cache[--r->ncache];
            return NULL;
        }
    }
    return NULL;
}

static void cache_put(net_resolver *r, const char *host, int port,
                      const struct sockaddr_storage *ss)
{
    if (r->ttl_ms == 0)
        return;
    if (!r->cache)
        r->cache = cu_calloc(RS_MAX_CACHE, sizeof *r->cache);
    if (r->ncache == RS_MAX_CACHE) { /* full: drop the entry closest to expiry */
        size_t victim = 0;
        for (size_t i = 1; i < r->ncache; i++)
            if (r->cache[i].expires < r->cache[victim].expires)
                victim = i;
        free(r->cache[victim].host);
        r->cache[victim] = r->cache[--r->ncache];
    }
    rs_entry *e = &r->cache[r->ncache++];
    e->host = cu_strdup(host);
    e->port = port;
    e->expires = uv_now(r->loop) + r->ttl_ms;
    e->addr = *ss;
}

static void on_getaddrinfo(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    rs_lookup *lk = req->data;
    net_resolver *r = lk->r;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (status == 0) {
        const struct addrinfo *pick = NULL;
        for (const struct addrinfo *a = res; a; a = a->ai_next) {
            if (a->ai_family == AF_INET) {
                pick = a;
                break;
            }
            if (!pick && a->ai_family == AF_INET6)
                pick = a;
        }
        if (pick) {
            memcpy(&ss, pick->ai_addr, pick->ai_addrlen);
            set_port(&ss, lk->port);
        } else {
            status = UV_EAI_NODATA;
        }
    }
    uv_freeaddrinfo(res);
    /* unlink */
    for (rs_lookup **pp = &r->lookups; *pp; pp = &(*pp)->next)
        if (*pp == lk) {
            *pp = lk->next;
            break;
        }
    r->refs--;
    if (status == UV_EAI_CANCELED)
        status = UV_ECANCELED;
    if (status == 0 && !r->freeing)
        cache_put(r, lk->host, lk->port, &ss);
    rs_waiter *list = lk->waiters;
    free(lk->host);
    free(lk);
    while (list) {
        rs_waiter *w = list;
        list = w->next;
        w->status = status;
        w->addr = ss;
        deliver(r, w);
    }
    maybe_release(r);
}

net_resolver *net_resolver_new(uv_loop_t *loop, uint64_t ttl_ms)
{
    net_resolver *r = cu_calloc(1, sizeof *r);
    r->loop = loop;
    r->ttl_ms = ttl_ms;
    uv_idle_init(loop, &r->idle);
    r->idle.data = r;
    r->refs = 1;
    return r;
}

static void on_idle_closed(uv_handle_t *h)
{
    net_resolver *r = h->data;
    r->refs--;
    maybe_release(r);
}

void net_resolver_free(net_resolver *r)
{
    if (!r || r->freeing)
        return;
    r->freeing = true;
    uv_close((uv_handle_t *)&r->idle, on_idle_closed);
    rs_waiter *list = r->ready;
    r->ready = r->ready_tail = NULL;
    for (rs_lookup *lk = r->lookups; lk; lk = lk->next) {
        uv_cancel((uv_req_t *)&lk->req);
        rs_waiter *w = lk->waiters;
        lk->waiters = NULL;
        while (w) { /* append to the list cancelled below */
            rs_waiter *next = w->next;
            w->next = list;
            list = w;
            w = next;
        }
    }
    while (list) {
        rs_waiter *w = list;
        list = w->next;
        w->status = UV_ECANCELED;
        deliver(r, w);
    }
}

void net_resolve(net_resolver *r, const char *host, int port, net_resolve_cb cb, void *user)
{
    if (r->freeing) {
        cb(user, UV_ECANCELED, NULL); /* only reachable from a callback run by free */
        return;
    }
    rs_waiter *w = waiter_new(r, cb, user);
    if (parse_literal(host, port, &w->addr)) {
        enqueue_ready(r, w);
        return;
    }
    rs_entry *e = cache_find(r, host, port);
    if (e) {
        w->addr = e->addr;
        enqueue_ready(r, w);
        return;
    }
    for (rs_lookup *lk = r->lookups; lk; lk = lk->next)
        if (lk->port == port && strcmp(lk->host, host) == 0) {
            w->next = lk->waiters;
            lk->waiters = w;
            return;
        }
    rs_lookup *lk = cu_calloc(1, sizeof *lk);
    lk->r = r;
    lk->host = cu_strdup(host);
    lk->port = port;
    lk->req.data = lk;
    lk->waiters = w;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = uv_getaddrinfo(r->loop, &lk->req, on_getaddrinfo, host, NULL, &hints);
    if (rc < 0) {
        free(lk->host);
        free(lk);
        w->status = rc;
        enqueue_ready(r, w);
        return;
    }
    lk->next = r->lookups;
    r->lookups = lk;
    r->refs++;
}

int net_split_hostport(const char *s, char **host, int *port, char err[CU_ERRLEN])
{
    *host = NULL;
    *port = 0;
    const char *h = s, *p = NULL;
    size_t hlen = 0;
    if (!s || !*s) {
        snprintf(err, CU_ERRLEN, "empty address");
        return -EINVAL;
    }
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') {
            snprintf(err, CU_ERRLEN, "invalid address '%s': expected [v6]:port", s);
            return -EINVAL;
        }
        h = s + 1;
        hlen = (size_t)(close - h);
        p = close + 2;
    } else if (strspn(s, "0123456789") == strlen(s)) {
        p = s; /* a bare port */
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || strchr(s, ':') != colon) {
            snprintf(err, CU_ERRLEN, "invalid address '%s': expected host:port", s);
            return -EINVAL;
        }
        hlen = (size_t)(colon - s);
        p = colon + 1;
    }
    char *end = NULL;
    long v = *p ? strtol(p, &end, 10) : -1;
    if (!*p || *end || v < 0 || v > 65535) {
        snprintf(err, CU_ERRLEN, "invalid port in '%s'", s);
        return -EINVAL;
    }
    *host = cu_strndup(h, hlen);
    *port = (int)v;
    return 0;
}
