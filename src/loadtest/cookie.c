/* loadtest/cookie.c: a virtual user's cookie jar, scoped as RFC 6265 (and
 * so tough-cookie, Artillery's jar) scopes it (see internal.h).
 *
 * A cookie is kept under (name, domain, path); a newer one with the same
 * three replaces it and keeps its creation order. Domain: without the
 * attribute the cookie is host-only (sent back to that exact host); with
 * it, to the domain and its subdomains, and it is refused when the host
 * that set it is outside that domain (or is an IP address and the domain
 * is another). Path: the attribute when it starts with '/', else the
 * directory of the request path. Secure cookies go to https only. Sent
 * longest path first, then oldest first. No public-suffix list: a load
 * test talks to hosts of its own. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "loadtest/internal.h"

/* The parts of an absolute URL a jar needs: lowercased host, path without
 * query or fragment, and whether it is https. */
typedef struct jar_url {
    char host[256];
    char path[1024];
    bool secure;
} jar_url;

static bool parse_url(const char *url, jar_url *u)
{
    const char *p = strstr(url, "://");
    if (!p)
        return false;
    u->secure = (size_t)(p - url) == 5 && strncasecmp(url, "https", 5) == 0;
    p += 3;
    size_t auth = strcspn(p, "/?#");
    const char *at = memchr(p, '@', auth);
    if (at) {
        auth -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    size_t hl;
    if (auth && p[0] == '[') {
        const char *rb = memchr(p, ']', auth);
        hl = rb ? (size_t)(rb + 1 - p) : auth;
    } else {
        const char *colon = memchr(p, ':', auth);
        hl = colon ? (size_t)(colon - p) : auth;
    }
    if (hl == 0 || hl >= sizeof u->host)
        return false;
    for (size_t i = 0; i < hl; i++)
        u->host[i] = (char)tolower((unsigned char)p[i]);
    u->host[hl] = '\0';
    const char *path = p + auth;
    size_t pl = strcspn(path, "?#");
    if (pl == 0 || path[0] != '/') {
        strcpy(u->path, "/");
    } else {
        if (pl >= sizeof u->path)
            pl = sizeof u->path - 1;
        memcpy(u->path, path, pl);
        u->path[pl] = '\0';
    }
    return true;
}

static bool is_ip(const char *host)
{
    if (host[0] == '[' || strchr(host, ':'))
        return true;
    for (const char *c = host; *c; c++)
        if (!isdigit((unsigned char)*c) && *c != '.')
            return false;
    return true;
}

/* RFC 6265 5.1.3 */
static bool domain_match(const char *host, const char *domain)
{
    if (!strcmp(host, domain))
        return true;
    size_t hl = strlen(host), dl = strlen(domain);
    return hl > dl && host[hl - dl - 1] == '.' && !strcmp(host + hl - dl, domain) && !is_ip(host);
}

/* RFC 6265 5.1.4 */
static bool path_match(const char *req, const char *cookie)
{
    size_t cl = strlen(cookie);
    if (strncmp(req, cookie, cl))
        return false;
    return req[cl] == '\0' || cookie[cl - 1] == '/' || req[cl] == '/';
}

static void default_path(const char *req, char *out, size_t cap)
{
    const char *last = strrchr(req, '/');
    size_t n = last ? (size_t)(last - req) : 0;
    if (n == 0 || req[0] != '/') {
        strcpy(out, "/");
        return;
    }
    if (n >= cap)
        n = cap - 1;
    memcpy(out, req, n);
    out[n] = '\0';
}

static char *trimmed(const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return cu_strndup(s, n);
}

static void cookie_free(lt_cookie *c)
{
    free(c->name);
    free(c->value);
    free(c->domain);
    free(c->path);
}

void lt_jar_reset(lt_jar *j)
{
    for (size_t i = 0; i < j->n; i++)
        cookie_free(&j->c[i]);
    j->n = 0;
}

void lt_jar_free(lt_jar *j)
{
    lt_jar_reset(j);
    free(j->c);
    memset(j, 0, sizeof *j);
}

static lt_cookie *find(lt_jar *j, const char *name, const char *domain, const char *path)
{
    for (size_t i = 0; i < j->n; i++)
        if (!strcmp(j->c[i].name, name) && !strcmp(j->c[i].domain, domain) &&
            !strcmp(j->c[i].path, path))
            return &j->c[i];
    return NULL;
}

/* Max-Age <= 0, or Expires in the past. */
static bool expired_attr(const char *attr)
{
    if (!strncasecmp(attr, "max-age=", 8))
        return strtol(attr + 8, NULL, 10) <= 0;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    return !strncasecmp(attr, "expires=", 8) &&
           strptime(attr + 8, "%a, %d %b %Y %H:%M:%S", &tm) && timegm(&tm) < time(NULL);
}

int lt_jar_set(lt_jar *j, const char *sc, size_t n, const char *url)
{
    jar_url u;
    if (!parse_url(url, &u))
        return 0; /* not an http(s) URL: nothing to scope it to */
    const char *end = memchr(sc, ';', n);
    size_t pair = end ? (size_t)(end - sc) : n;
    const char *eq = memchr(sc, '=', pair);
    if (!eq || eq == sc)
        return -1;
    char *name = trimmed(sc, (size_t)(eq - sc));
    if (!name[0]) {
        free(name);
        return -1;
    }
    char *value = trimmed(eq + 1, pair - (size_t)(eq + 1 - sc));
    char domain[256] = "", path[1024] = "";
    bool secure = false, expired = false, has_max_age = false;
    const char *a = sc + pair, *e = sc + n;
    while (a < e) {
        while (a < e && (*a == ';' || *a == ' ' || *a == '\t'))
            a++;
        size_t len = 0;
        while (a + len < e && a[len] != ';')
            len++;
        char *attr = trimmed(a, len);
        if (!strncasecmp(attr, "domain=", 7)) {
            const char *d = attr + 7;
            while (*d == '.')
                d++;
            size_t dl = strlen(d);
            if (dl && dl < sizeof domain)
                for (size_t i = 0; i <= dl; i++)
                    domain[i] = (char)tolower((unsigned char)d[i]);
        } else if (!strncasecmp(attr, "path=", 5)) {
            if (attr[5] == '/' && strlen(attr + 5) < sizeof path)
                strcpy(path, attr + 5);
        } else if (!strcasecmp(attr, "secure")) {
            secure = true;
        } else if (!strncasecmp(attr, "max-age=", 8)) {
            has_max_age = true; /* Max-Age wins over Expires (RFC 6265 5.3 step 3) */
            expired = expired_attr(attr);
        } else if (!has_max_age && expired_attr(attr)) {
            expired = true;
        }
        free(attr);
        a += len;
    }
    bool host_only = domain[0] == '\0';
    if (host_only)
        strcpy(domain, u.host);
    else if (!domain_match(u.host, domain)) {
        free(name);
        free(value);
        return 0; /* a domain the host is not in: ignored, as RFC 6265 5.3 step 6 */
    }
    if (!path[0])
        default_path(u.path, path, sizeof path);
    lt_cookie *old = find(j, name, domain, path);
    if (expired) {
        if (old) {
            cookie_free(old);
            *old = j->c[--j->n];
            /* order is by `seq`, so moving the last one here keeps it */
        }
        free(name);
        free(value);
        return 0;
    }
    if (old) {
        free(old->value);
        free(name);
        old->value = value;
        old->host_only = host_only;
        old->secure = secure;
        return 0;
    }
    if (j->n == j->cap) {
        j->cap = j->cap ? j->cap * 2 : 8;
        j->c = cu_realloc(j->c, j->cap * sizeof *j->c);
    }
    j->c[j->n++] = (lt_cookie){name, value, cu_strdup(domain), cu_strdup(path), host_only, secure,
                               ++j->seq};
    return 0;
}

static int by_path_then_age(const void *a, const void *b)
{
    const lt_cookie *x = *(const lt_cookie *const *)a, *y = *(const lt_cookie *const *)b;
    size_t xl = strlen(x->path), yl = strlen(y->path);
    if (xl != yl)
        return xl > yl ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void lt_jar_header(const lt_jar *j, const char *url, cu_buf *out)
{
    jar_url u;
    if (j->n == 0 || !parse_url(url, &u))
        return;
    const lt_cookie *pick[64];
    const lt_cookie **sel = j->n <= 64 ? pick : cu_malloc(j->n * sizeof *sel);
    size_t k = 0;
    for (size_t i = 0; i < j->n; i++) {
        const lt_cookie *c = &j->c[i];
        if (c->secure && !u.secure)
            continue;
        if (c->host_only ? strcmp(u.host, c->domain) != 0 : !domain_match(u.host, c->domain))
            continue;
        if (!path_match(u.path, c->path))
            continue;
        sel[k++] = c;
    }
    qsort(sel, k, sizeof *sel, by_path_then_age);
    for (size_t i = 0; i < k; i++) {
        if (out->len)
            cu_buf_appends(out, "; ");
        cu_buf_appends(out, sel[i]->name);
        cu_buf_appendc(out, '=');
        cu_buf_appends(out, sel[i]->value);
    }
    if (sel != pick)
        free(sel);
}
