/* upstream/app: the route table and every response body, without I/O.
 *
 * The lego-api bodies mimic the real API of the reference run byte for byte
 * in size: /api/mocs 88 bytes, /api/mocs/undefined 48, /api/gallery?search=
 * lego 62, /api/wishlist 33 (so http.downloaded_bytes compares). Fixed
 * bodies are static or built once at init; per-request ones are formatted
 * into the app's scratch buffer, whose memory is kept between replies. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "upstream/upstream.h"

#define CT_JSON "application/json; charset=utf-8"
#define CT_TEXT "text/plain; charset=utf-8"
#define CT_BIN "application/octet-stream"
#define MAX_BYTES (64u << 20)     /* /bytes/{n} */
#define MAX_DELAY_MS 600000u      /* /delay/{ms} */
#define MAX_PARTS 64

#define S(lit) lit, sizeof(lit) - 1

static const char BODY_MOCS[] =
    "{\"data\":[{\"id\":\"moc-1\",\"name\":\"Millennium Falcon\"},"
    "{\"id\":\"moc-2\",\"name\":\"Pirate Ship\"}]}";
static const char BODY_WISHLIST[] = "{\"data\":[{\"id\":\"moc-1\",\"qty\":1}]}";
static const char BODY_401[] =
    "{\"error\":\"unauthorized\",\"message\":\"missing Authorization header\"}";
static const char BODY_500[] =
    "{\"error\":\"internal server error\",\"message\":\"injected failure (--error-rate)\"}";

static const struct {
    const char *id, *title;
} gallery[] = {
    {"g-1", "Lego City"},
    {"g-2", "Technic Crane"},
    {"g-3", "Duplo Farm"},
};

/* ---- routes ----------------------------------------------------------------- */
static const struct route {
    const char *method;      /* NULL: any */
    const char *pattern;     /* "{}" one non-empty segment, "**" the rest */
    upstream_route_id id;
    bool inject;
} routes[] = {
    {"GET", "/", UPSTREAM_R_ROOT, true},
    {"GET", "/health", UPSTREAM_R_HEALTH, false},
    {"GET", "/api/mocs", UPSTREAM_R_MOCS, true},
    {"GET", "/api/mocs/{}", UPSTREAM_R_MOC, true},
    {"GET", "/api/gallery", UPSTREAM_R_GALLERY, true},
    {"GET", "/api/wishlist", UPSTREAM_R_WISHLIST, true},
    {"POST", "/api/gallery/{}/image", UPSTREAM_R_UPLOAD, true},
    {NULL, "/echo", UPSTREAM_R_ECHO, false},
    {NULL, "/echo/**", UPSTREAM_R_ECHO, false},
    {"GET", "/status/{}", UPSTREAM_R_STATUS, false},
    {"GET", "/bytes/{}", UPSTREAM_R_BYTES, true},
    {"GET", "/delay/{}", UPSTREAM_R_DELAY, false},
    {"PUT", "/_cutover/fault", UPSTREAM_R_FAULT, false},
    {"GET", "/cookies", UPSTREAM_R_COOKIES, false},
    {"GET", "/cookies/set", UPSTREAM_R_COOKIES_SET, false},
    {"GET", "/cookies/delete", UPSTREAM_R_COOKIES_DEL, false},
    {"GET", "/redirect/{}", UPSTREAM_R_REDIRECT, false},
    {NULL, "/redirect-to", UPSTREAM_R_REDIRECT_TO, false},
    {"GET", "/gzip", UPSTREAM_R_GZIP, false},
    {"GET", "/deflate", UPSTREAM_R_DEFLATE, false},
};

static bool pattern_match(const char *pat, const char *path, size_t len, const char **param,
                          size_t *plen)
{
    const char *p = path, *end = path + len;
    while (*pat) {
        if (pat[0] == '{' && pat[1] == '}') {
            const char *s = p;
            while (p < end && *p != '/')
                p++;
            if (p == s)
                return false;
            *param = s;
            *plen = (size_t)(p - s);
            pat += 2;
            continue;
        }
        if (pat[0] == '*' && pat[1] == '*')
            return true;
        if (p >= end || *p != *pat)
            return false;
        p++;
        pat++;
    }
    return p == end;
}

upstream_route_id upstream_route(const char *method, const char *path, size_t path_len,
                                 upstream_match *m)
{
    memset(m, 0, sizeof *m);
    for (size_t i = 0; i < CU_ARRAY_LEN(routes); i++) {
        const struct route *r = &routes[i];
        const char *param = NULL;
        size_t plen = 0;
        if (!pattern_match(r->pattern, path, path_len, &param, &plen))
            continue;
        if (r->method && strcmp(r->method, method)) {
            if (!m->allow)
                m->allow = r->method;
            continue;
        }
        m->route = r->id;
        m->param = param;
        m->param_len = plen;
        m->inject = r->inject;
        m->allow = NULL;
        return m->route;
    }
    m->route = m->allow ? UPSTREAM_R_BAD_METHOD : UPSTREAM_R_NOT_FOUND;
    return m->route;
}

/* ---- JSON and text helpers ---------------------------------------------------------- */
/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned min;
    if ((c & 0xe0) == 0xc0)
        len = 2, min = 0x80, c &= 0x1f;
    else if ((c & 0xf0) == 0xe0)
        len = 3, min = 0x800, c &= 0x0f;
    else if ((c & 0xf8) == 0xf0)
        len = 4, min = 0x10000, c &= 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    return len;
}

static bool is_utf8(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t l = utf8_len(p + i, n - i);
        if (!l)
            return false;
        i += l;
    }
    return true;
}

/* Appends s as a quoted JSON string; invalid UTF-8 bytes become U+FFFD. */
static void json_str(cu_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    cu_buf_reserve(b, n + 2);
    cu_buf_appendc(b, '"');
    size_t run = 0; /* bytes copied verbatim, flushed lazily */
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            run++;
            continue;
        }
        if (c >= 0x80) {
            size_t l = utf8_len(p + i, n - i);
            if (l) {
                i += l;
                run += l;
                continue;
            }
        }
        cu_buf_append(b, p + i - run, run);
        run = 0;
        char esc[7] = {'\\', 0};
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            if (c >= 0x80) {
                cu_buf_appends(b, "\\ufffd");
                i++;
                continue;
            }
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
        }
        cu_buf_appends(b, esc);
        i++;
    }
    cu_buf_append(b, p + n - run, run);
    cu_buf_appendc(b, '"');
}

static void json_cstr(cu_buf *b, const char *s)
{
    json_str(b, s, strlen(s));
}

static void base64(cu_buf *b, const char *s, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = (const unsigned char *)s;
    cu_buf_reserve(b, (n + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63], tab[v & 63]};
        cu_buf_append(b, q, 4);
    }
    if (i < n) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0);
        char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], i + 1 < n ? tab[(v >> 6) & 63] : '=',
                     '='};
        cu_buf_append(b, q, 4);
    }
}

/* Percent-decodes s into b (reset first); '+' is a space when `form`. */
static void url_decode(cu_buf *b, const char *s, size_t n, bool form)
{
    cu_buf_reset(b);
    cu_buf_reserve(b, n);
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = cu_hexval(s[i + 1])) >= 0 &&
            (lo = cu_hexval(s[i + 2])) >= 0) {
            cu_buf_appendc(b, (char)(hi << 4 | lo));
            i += 2;
        } else {
            cu_buf_appendc(b, form && s[i] == '+' ? ' ' : s[i]);
        }
    }
}

/* The raw value of query parameter `key`, or NULL. */
static const char *query_param(const char *q, const char *key, size_t *vlen)
{
    size_t klen = strlen(key);
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);
        if (n >= klen && !memcmp(q, key, klen) && (n == klen || q[klen] == '=')) {
            *vlen = n == klen ? 0 : n - klen - 1;
            return n == klen ? q + n : q + klen + 1;
        }
        q = amp ? amp + 1 : NULL;
    }
    return NULL;
}

static bool contains_nocase(const char *hay, const char *needle, size_t nlen)
{
    size_t hlen = strlen(hay);
    if (nlen == 0)
        return true;
    for (size_t i = 0; i + nlen <= hlen; i++)
        if (!strncasecmp(hay + i, needle, nlen))
            return true;
    return false;
}

/* Parses a decimal number of n bytes, at most max. */
static bool parse_uint(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 12)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

static const http_header *find_header(const http_server_request *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++)
        if (req->headers[i].name_len == n && cu_memcaseeq(req->headers[i].name, n, name))
            return &req->headers[i];
    return NULL;
}

/* ---- the app ---------------------------------------------------------------------------- */
void upstream_app_init(upstream_app *a, const upstream_config *cfg, uint64_t seed)
{
    memset(a, 0, sizeof *a);
    a->color = cu_strdup(cfg->color && *cfg->color ? cfg->color : "blue");
    a->latency = cfg->latency;
    a->error_rate = cfg->error_rate;
    a->fault = cfg->fault;
    cu_rng_seed(&a->rng, seed);
    cu_buf_appends(&a->health, "{\"status\":\"ok\",\"color\":");
    json_cstr(&a->health, a->color);
    cu_buf_appendc(&a->health, '}');
    cu_buf_appendf(&a->root, "cutover upstream (%s)\n", a->color);
}

void upstream_app_free(upstream_app *a)
{
    free(a->color);
    cu_buf_free(&a->health);
    cu_buf_free(&a->root);
    cu_buf_free(&a->scratch);
    cu_buf_free(&a->tmp);
    cu_buf_free(&a->hvals);
    free(a->bytes);
    memset(a, 0, sizeof *a);
}

void upstream_app_plan(upstream_app *a, const http_server_request *req, upstream_plan *p)
{
    memset(p, 0, sizeof *p);
    upstream_route(req->method, req->path, req->path_len, &p->m);
    if (a->fault)
        upstream_fault_sync(a->fault, &a->fault_gen, &a->error_rate, &a->latency);
    if (p->m.inject) {
        if (a->latency.kind != UPSTREAM_LAT_NONE)
            p->delay_ms = (uint64_t)(upstream_latency_sample(&a->latency, &a->rng) + 0.5);
        if (a->error_rate > 0 && cu_rng_double(&a->rng) < a->error_rate)
            p->fail = true;
    } else if (p->m.route == UPSTREAM_R_DELAY) {
        uint64_t ms;
        if (parse_uint(p->m.param, p->m.param_len, MAX_DELAY_MS, &ms))
            p->delay_ms = ms;
    }
}

static void set_reply(upstream_app *a, upstream_reply *out, int status, const char *ct,
                      const char *body, size_t len)
{
    out->status = status;
    out->headers[0] = (http_header){S("Content-Type"), ct, strlen(ct)};
    out->headers[1] = (http_header){S("X-Cutover-Color"), a->color, strlen(a->color)};
    out->nheaders = 2;
    out->body = body;
    out->body_len = len;
}

static void reply_scratch(upstream_app *a, upstream_reply *out, int status, const char *ct)
{
    set_reply(a, out, status, ct, a->scratch.data, a->scratch.len);
}

/* A 400 with a JSON explanation. */
static void reply_bad(upstream_app *a, upstream_reply *out, const char *msg)
{
    cu_buf *b = &a->scratch;
    cu_buf_reset(b);
    cu_buf_appends(b, "{\"error\":\"Bad Request\"");
    cu_buf_appends(b, ",\"message\":");
    json_cstr(b, msg);
    cu_buf_appendc(b, '}');
    reply_scratch(a, out, 400, CT_JSON);
}

static void reply_moc(upstream_app *a, const upstream_plan *p, upstream_reply *out)
{
    url_decode(&a->tmp, p->m.param, p->m.param_len, false);
    cu_buf *b = &a->scratch;
    cu_buf_reset(b);
    cu_buf_appends(b, "{\"id\":");
    json_str(b, a->tmp.data, a->tmp.len);
    cu_buf_appends(b, ",\"name\":\"My MOC\",\"pieces\":1024}");
    reply_scratch(a, out, 200, CT_JSON);
}

static void reply_gallery(upstream_app *a, const http_server_request *req, upstream_reply *out)
{
    size_t vlen = 0;
    const char *v = query_param(req->query, "search", &vlen);
    url_decode(&a->tmp, v ? v : "", v ? vlen : 0, true);
    cu_buf *b = &a->scratch;
    cu_buf_reset(b);
    cu_buf_appends(b, "{\"search\":");
    json_str(b, a->tmp.data, a->tmp.len);
    cu_buf_appends(b, ",\"results\":[");
    bool first = true;
    for (size_t i = 0; i < CU_ARRAY_LEN(gallery); i++) {
        if (!contains_nocase(gallery[i].title, a->tmp.data, a->tmp.len))
            continue;
        cu_buf_appendf(b, "%s{\"id\":\"%s\",\"title\":\"%s\"}", first ? "" : ",", gallery[i].id,
                       gallery[i].title);
        first = false;
    }
    cu_buf_appends(b, "]}");
    reply_scratch(a, out, 200, CT_JSON);
}

static void sha256_hex(const char *data, size_t n, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(data, n, md, &mdlen, EVP_sha256(), NULL))
        mdlen = 0;
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", i < mdlen ? md[i] : 0);
    hex[64] = 0;
}

static void reply_upload(upstream_app *a, const http_server_request *req,
                         const upstream_plan *p, upstream_reply *out)
{
    const http_header *ct = find_header(req, "content-type");
    const char *bnd;
    size_t blen;
    if (!ct || upstream_mp_boundary(ct->value, ct->value_len, &bnd, &blen) < 0) {
        reply_bad(a, out, "Content-Type must be multipart/form-data with a boundary parameter");
        return;
    }
    upstream_part parts[MAX_PARTS];
    size_t n = 0;
    const char *why = "";
    int r = upstream_mp_parse(req->body ? req->body : "", req->body_len, bnd, blen, parts,
                              MAX_PARTS, &n, &why);
    if (r == -E2BIG) {
        reply_bad(a, out, "too many multipart parts (at most 64)");
        return;
    }
    if (r < 0) {
        cu_buf_reset(&a->tmp);
        cu_buf_appendf(&a->tmp, "invalid multipart body: %s", why);
        reply_bad(a, out, a->tmp.data);
        return;
    }
    size_t files = 0;
    for (size_t i = 0; i < n; i++)
        files += parts[i].is_file;
    if (!files) {
        reply_bad(a, out, "no file part in the multipart body");
        return;
    }
    url_decode(&a->tmp, p->m.param, p->m.param_len, false);
    cu_buf *b = &a->scratch;
    cu_buf_reset(b);
    cu_buf_appends(b, "{\"id\":");
    json_str(b, a->tmp.data, a->tmp.len);
    cu_buf_appends(b, ",\"files\":[");
    for (int pass = 0; pass < 2; pass++) {
        bool first = true;
        for (size_t i = 0; i < n; i++) {
            const upstream_part *pt = &parts[i];
            if (pt->is_file != (pass == 0))
                continue;
            cu_buf_appends(b, first ? "{\"field\":" : ",{\"field\":");
            first = false;
            json_str(b, pt->name, pt->name_len);
            if (pass == 0) {
                char hex[65];
                sha256_hex(pt->data, pt->data_len, hex);
                cu_buf_appends(b, ",\"filename\":");
                json_str(b, pt->filename, pt->filename_len);
                cu_buf_appends(b, ",\"content_type\":");
                json_str(b, pt->content_type, pt->content_type_len);
                cu_buf_appendf(b, ",\"size\":%zu,\"sha256\":\"%s\"}", pt->data_len, hex);
            } else {
                cu_buf_appendf(b, ",\"size\":%zu}", pt->data_len);
            }
        }
        cu_buf_appends(b, pass == 0 ? "],\"fields\":[" : "]}");
    }
    reply_scratch(a, out, 200, CT_JSON);
}

static void reply_echo(upstream_app *a, const http_server_request *req, upstream_reply *out)
{
    cu_buf *b = &a->scratch;
    cu_buf_reset(b);
    cu_buf_appends(b, "{\"method\":");
    json_cstr(b, req->method);
    cu_buf_appends(b, ",\"target\":");
    json_cstr(b, req->target);
    cu_buf_appends(b, ",\"path\":");
    json_str(b, req->path, req->path_len);
    cu_buf_appends(b, ",\"query\":");
    json_cstr(b, req->query ? req->query : "");
    cu_buf_appends(b, ",\"color\":");
    json_cstr(b, a->color);
    cu_buf_appends(b, ",\"tls\":");
    cu_buf_appends(b, req->tls ? "true" : "false");
    cu_buf_appends(b, ",\"headers\":[");
    for (size_t i = 0; i < req->nheaders; i++) {
        const http_header *h = &req->headers[i];
        cu_buf_appends(b, i ? ",[" : "[");
        json_str(b, h->name, h->name_len);
        cu_buf_appendc(b, ',');
        json_str(b, h->value, h->value_len);
        cu_buf_appendc(b, ']');
    }
    const char *body = req->body ? req->body : "";
    bool text = is_utf8(body, req->body_len);
    cu_buf_appendf(b, "],\"body_length\":%zu,\"body_encoding\":\"%s\",\"body\":", req->body_len,
                   text ? "utf8" : "base64");
    if (text) {
        json_str(b, body, req->body_len);
    } else {
        cu_buf_appendc(b, '"');
        base64(b, body, req->body_len);
        cu_buf_appendc(b, '"');
    }
    cu_buf_appendc(b, '}');
    reply_scratch(a, out, 200, CT_JSON);
}

static void reply_bytes(upstream_app *a, const upstream_plan *p, upstream_reply *out)
{
    uint64_t n;
    if (!parse_uint(p->m.param, p->m.param_len, MAX_BYTES, &n)) {
        reply_bad(a, out, "/bytes/{n} wants 0 <= n <= 67108864");
        return;
    }
    if (n > a->bytes_len) {
        size_t cap = a->bytes_len ? a->bytes_len : 4096;
        while (cap < n)
            cap *= 2;
        a->bytes = cu_realloc(a->bytes, cap);
        for (size_t i = a->bytes_len; i < cap; i++)
            a->bytes[i] = (char)('a' + i % 26);
        a->bytes_len = cap;
    }
    set_reply(a, out, 200, CT_BIN, a->bytes ? a->bytes : "", (size_t)n);
}

static void reply_status(upstream_app *a, const upstream_plan *p, upstream_reply *out)
{
    uint64_t code;
    if (!parse_uint(p->m.param, p->m.param_len, 599, &code) || code < 200) {
        reply_bad(a, out, "/status/{code} wants 200 <= code <= 599");
        return;
    }
    cu_buf_reset(&a->scratch);
    if (code != 204 && code != 304)
        cu_buf_appendf(&a->scratch, "{\"status\":%d}", (int)code);
    reply_scratch(a, out, (int)code, CT_JSON);
}

/* PUT /_cutover/fault?error_rate=0.05&latency=fixed:300ms: changes the
 * service's fault settings (both optional; latency "none" clears it) and
 * answers with the settings now in force. */
static void reply_fault(upstream_app *a, const http_server_request *req, upstream_reply *out)
{
    if (!a->fault) {
        reply_bad(a, out, "this server has no run-time fault control");
        return;
    }
    size_t elen = 0, llen = 0;
    const char *ev = query_param(req->query, "error_rate", &elen);
    const char *lv = query_param(req->query, "latency", &llen);
    double rate = a->error_rate;
    if (ev) {
        char tmp[32];
        char *end = NULL;
        if (elen == 0 || elen >= sizeof tmp)
            goto bad_rate;
        memcpy(tmp, ev, elen);
        tmp[elen] = '\0';
        rate = strtod(tmp, &end);
        if (*end || !(rate >= 0 && rate <= 1))
            goto bad_rate;
    }
    upstream_latency lat = a->latency;
    if (lv) {
        char spec[128], err[CU_ERRLEN];
        if (llen >= sizeof spec) {
            reply_bad(a, out, "latency: too long");
            return;
        }
        memcpy(spec, lv, llen);
        spec[llen] = '\0';
        if (upstream_latency_parse(&lat, spec, err) < 0) {
            reply_bad(a, out, err);
            return;
        }
    }
    upstream_fault_set(a->fault, rate, &lat);
    upstream_fault_sync(a->fault, &a->fault_gen, &a->error_rate, &a->latency);
    cu_buf_reset(&a->scratch);
    cu_buf_appendf(&a->scratch, "{\"error_rate\":%g,\"latency\":", a->error_rate);
    char desc[96];
    upstream_latency_describe(&a->latency, desc, sizeof desc);
    json_cstr(&a->scratch, desc);
    cu_buf_appendc(&a->scratch, '}');
    reply_scratch(a, out, 200, CT_JSON);
    return;
bad_rate:
    reply_bad(a, out, "error_rate wants a number from 0 to 1");
}

/* ---- cookies, redirects, compression ----------------------------------------------------- */
/* Adds header `name` with the value at [off, off+len) of a->hvals; call
 * once a->hvals has stopped growing (fix_hvals points them). */
static void add_hval(upstream_reply *out, const char *name, size_t off, size_t len)
{
    if (out->nheaders < CU_ARRAY_LEN(out->headers))
        out->headers[out->nheaders++] = (http_header){name, strlen(name), (const char *)(uintptr_t)off, len};
}

static void fix_hvals(upstream_app *a, upstream_reply *out, size_t first)
{
    for (size_t i = first; i < out->nheaders; i++)
        out->headers[i].value = a->hvals.data + (uintptr_t)out->headers[i].value;
}

static void reply_cookies(upstream_app *a, const http_server_request *req, upstream_reply *out)
{
    const http_header *h = find_header(req, "cookie");
    cu_buf_reset(&a->scratch);
    cu_buf_appends(&a->scratch, "{\"cookie\":");
    if (h)
        json_str(&a->scratch, h->value, h->value_len);
    else
        cu_buf_appends(&a->scratch, "\"\"");
    cu_buf_appendc(&a->scratch, '}');
    reply_scratch(a, out, 200, CT_JSON);
}

/* /cookies/set?k=v&... or /cookies/delete?k&...: one Set-Cookie per
 * parameter (at most 5), then 302 to /cookies. */
static void reply_cookies_set(upstream_app *a, const http_server_request *req, bool del,
                              upstream_reply *out)
{
    cu_buf_reset(&a->scratch);
    cu_buf_appends(&a->scratch, "{\"redirect\":\"/cookies\"}");
    reply_scratch(a, out, 302, CT_JSON);
    cu_buf_reset(&a->hvals);
    size_t first = out->nheaders;
    cu_buf_appends(&a->hvals, "/cookies");
    add_hval(out, "Location", 0, 8);
    for (const char *q = req->query; q && *q && out->nheaders < CU_ARRAY_LEN(out->headers);) {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', n);
        size_t klen = eq ? (size_t)(eq - q) : n, off = a->hvals.len;
        if (klen) {
            url_decode(&a->tmp, q, klen, true);
            cu_buf_append(&a->hvals, a->tmp.data, a->tmp.len);
            cu_buf_appendc(&a->hvals, '=');
            if (!del && eq) {
                url_decode(&a->tmp, eq + 1, n - klen - 1, true);
                cu_buf_append(&a->hvals, a->tmp.data, a->tmp.len);
            }
            cu_buf_appends(&a->hvals, del ? "; Max-Age=0; Path=/" : "; Path=/");
            add_hval(out, "Set-Cookie", off, a->hvals.len - off);
        }
        q = amp ? amp + 1 : NULL;
    }
    fix_hvals(a, out, first);
}

static void reply_redirect(upstream_app *a, const http_server_request *req, const upstream_plan *p,
                           upstream_reply *out)
{
    uint64_t n, status = 302;
    size_t first;
    cu_buf_reset(&a->hvals);
    cu_buf_reset(&a->scratch);
    if (p->m.route == UPSTREAM_R_REDIRECT) {
        if (!parse_uint(p->m.param, p->m.param_len, 1000, &n)) {
            reply_bad(a, out, "/redirect/{n} wants 0 <= n <= 1000");
            return;
        }
        if (n == 0) {
            cu_buf_appends(&a->scratch, "{\"redirected\":true}");
            reply_scratch(a, out, 200, CT_JSON);
            return;
        }
        cu_buf_appendf(&a->hvals, "/redirect/%llu", (unsigned long long)(n - 1));
    } else {
        size_t ulen = 0, slen = 0;
        const char *u = query_param(req->query, "url", &ulen);
        const char *st = query_param(req->query, "status", &slen);
        if (!u || !ulen || (st && (!parse_uint(st, slen, 399, &status) || status < 300))) {
            reply_bad(a, out, "/redirect-to wants url=U and optionally status=3xx");
            return;
        }
        url_decode(&a->tmp, u, ulen, true);
        cu_buf_append(&a->hvals, a->tmp.data, a->tmp.len);
    }
    cu_buf_appends(&a->scratch, "{\"location\":");
    json_str(&a->scratch, a->hvals.data, a->hvals.len);
    cu_buf_appendc(&a->scratch, '}');
    reply_scratch(a, out, (int)status, CT_JSON);
    first = out->nheaders;
    add_hval(out, "Location", 0, a->hvals.len);
    fix_hvals(a, out, first);
}

/* A JSON body compressed with zlib: gzip framing or zlib's (deflate). */
static void reply_compressed(upstream_app *a, const http_server_request *req, bool gzip,
                             upstream_reply *out)
{
    const http_header *ae = find_header(req, "accept-encoding");
    cu_buf_reset(&a->tmp);
    cu_buf_appendf(&a->tmp, "{\"%s\":true,\"method\":", gzip ? "gzipped" : "deflated");
    json_cstr(&a->tmp, req->method);
    cu_buf_appends(&a->tmp, ",\"accept_encoding\":");
    if (ae)
        json_str(&a->tmp, ae->value, ae->value_len);
    else
        cu_buf_appends(&a->tmp, "\"\"");
    cu_buf_appends(&a->tmp, ",\"color\":");
    json_cstr(&a->tmp, a->color);
    cu_buf_appendc(&a->tmp, '}');
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, gzip ? 15 + 16 : 15, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        set_reply(a, out, 500, CT_JSON, S(BODY_500));
        return;
    }
    uLong bound = deflateBound(&z, (uLong)a->tmp.len) + 32;
    cu_buf_reset(&a->scratch);
    cu_buf_reserve(&a->scratch, bound);
    z.next_in = (Bytef *)a->tmp.data;
    z.avail_in = (uInt)a->tmp.len;
    z.next_out = (Bytef *)a->scratch.data;
    z.avail_out = (uInt)bound;
    int rc = deflate(&z, Z_FINISH);
    a->scratch.len = rc == Z_STREAM_END ? z.total_out : 0;
    deflateEnd(&z);
    reply_scratch(a, out, rc == Z_STREAM_END ? 200 : 500, CT_JSON);
    out->headers[out->nheaders++] = gzip ? (http_header){S("Content-Encoding"), S("gzip")}
                                         : (http_header){S("Content-Encoding"), S("deflate")};
}

void upstream_app_reply(upstream_app *a, const http_server_request *req,
                        const upstream_plan *p, upstream_reply *out)
{
    if (p->fail) {
        set_reply(a, out, 500, CT_JSON, S(BODY_500));
        return;
    }
    switch (p->m.route) {
    case UPSTREAM_R_ROOT:
        set_reply(a, out, 200, CT_TEXT, a->root.data, a->root.len);
        return;
    case UPSTREAM_R_HEALTH:
        set_reply(a, out, 200, CT_JSON, a->health.data, a->health.len);
        return;
    case UPSTREAM_R_MOCS:
        set_reply(a, out, 200, CT_JSON, S(BODY_MOCS));
        return;
    case UPSTREAM_R_MOC:
        reply_moc(a, p, out);
        return;
    case UPSTREAM_R_GALLERY:
        reply_gallery(a, req, out);
        return;
    case UPSTREAM_R_WISHLIST:
        if (find_header(req, "authorization"))
            set_reply(a, out, 200, CT_JSON, S(BODY_WISHLIST));
        else
            set_reply(a, out, 401, CT_JSON, S(BODY_401));
        return;
    case UPSTREAM_R_UPLOAD:
        reply_upload(a, req, p, out);
        return;
    case UPSTREAM_R_ECHO:
        reply_echo(a, req, out);
        return;
    case UPSTREAM_R_STATUS:
        reply_status(a, p, out);
        return;
    case UPSTREAM_R_BYTES:
        reply_bytes(a, p, out);
        return;
    case UPSTREAM_R_DELAY:
        if (!parse_uint(p->m.param, p->m.param_len, MAX_DELAY_MS, &(uint64_t){0})) {
            reply_bad(a, out, "/delay/{ms} wants 0 <= ms <= 600000");
            return;
        }
        cu_buf_reset(&a->scratch);
        cu_buf_appendf(&a->scratch, "{\"delay_ms\":%llu}", (unsigned long long)p->delay_ms);
        reply_scratch(a, out, 200, CT_JSON);
        return;
    case UPSTREAM_R_FAULT:
        reply_fault(a, req, out);
        return;
    case UPSTREAM_R_COOKIES:
        reply_cookies(a, req, out);
        return;
    case UPSTREAM_R_COOKIES_SET:
    case UPSTREAM_R_COOKIES_DEL:
        reply_cookies_set(a, req, p->m.route == UPSTREAM_R_COOKIES_DEL, out);
        return;
    case UPSTREAM_R_REDIRECT:
    case UPSTREAM_R_REDIRECT_TO:
        reply_redirect(a, req, p, out);
        return;
    case UPSTREAM_R_GZIP:
    case UPSTREAM_R_DEFLATE:
        reply_compressed(a, req, p->m.route == UPSTREAM_R_GZIP, out);
        return;
    case UPSTREAM_R_BAD_METHOD:
        cu_buf_reset(&a->scratch);
        cu_buf_appends(&a->scratch, "{\"error\":\"Method Not Allowed\",\"allow\":");
        json_cstr(&a->scratch, p->m.allow);
        cu_buf_appendc(&a->scratch, '}');
        reply_scratch(a, out, 405, CT_JSON);
        out->headers[out->nheaders++] = (http_header){S("Allow"), p->m.allow,
                                                      strlen(p->m.allow)};
        return;
    case UPSTREAM_R_NOT_FOUND:
    default:
        cu_buf_reset(&a->scratch);
        cu_buf_appends(&a->scratch, "{\"error\":\"Not Found\",\"path\":");
        json_str(&a->scratch, req->path, CU_MIN(req->path_len, (size_t)512));
        cu_buf_appendc(&a->scratch, '}');
        reply_scratch(a, out, 404, CT_JSON);
        return;
    }
}
