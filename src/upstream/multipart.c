/* upstream/multipart: a strict, allocation-free multipart/form-data parser.
 *
 * Everything returned points into the caller's body. The grammar is RFC
 * 2046 section 5.1.1 with RFC 7578's rules for form-data: every part has a
 * Content-Disposition of form-data with a name; a part is a file when it has
 * a filename parameter. A "--boundary" inside content that is not preceded
 * by CRLF, or that is followed by something other than "--" or optional
 * blanks and CRLF, is content, not a delimiter. */
#include <errno.h>
#include <string.h>

#include "upstream/upstream.h"

#define MAX_BOUNDARY 70

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static const char *skip_blanks(const char *p, const char *end)
{
    while (p < end && is_blank(*p))
        p++;
    return p;
}

/* Reads a parameter value at p (a quoted string or a token) and returns the
 * position after it; the value (without quotes) goes to *v / *vlen. Returns
 * NULL for an unterminated quoted string. */
static const char *param_value(const char *p, const char *end, const char **v, size_t *vlen)
{
    if (p < end && *p == '"') {
        const char *s = ++p;
        while (p < end && *p != '"') {
            if (*p == '\\' && p + 1 < end)
                p++;
            p++;
        }
        if (p >= end)
            return NULL;
        *v = s;
        *vlen = (size_t)(p - s);
        return p + 1;
    }
    const char *s = p;
    while (p < end && *p != ';' && !is_blank(*p))
        p++;
    *v = s;
    *vlen = (size_t)(p - s);
    return p;
}

/* Walks "type; a=1; b="x"" calling back for each parameter. Returns false
 * on a malformed parameter list. `type` gets the leading value. */
typedef bool (*param_fn)(void *ctx, const char *k, size_t klen, const char *v, size_t vlen);

static bool walk_params(const char *s, size_t n, const char **type, size_t *type_len,
                        param_fn fn, void *ctx)
{
    const char *p = s, *end = s + n;
    p = skip_blanks(p, end);
    const char *t = p;
    while (p < end && *p != ';')
        p++;
    const char *te = p;
    while (te > t && is_blank(te[-1]))
        te--;
    *type = t;
    *type_len = (size_t)(te - t);
    while (p < end) {
        p = skip_blanks(p + 1, end); /* past ';' */
        if (p >= end)
            break;
        if (*p == ';')
            continue;
        const char *k = p;
        while (p < end && *p != '=' && *p != ';' && !is_blank(*p))
            p++;
        size_t klen = (size_t)(p - k);
        p = skip_blanks(p, end);
        if (p >= end || *p != '=')
            return false;
        p = skip_blanks(p + 1, end);
        const char *v;
        size_t vlen;
        p = param_value(p, end, &v, &vlen);
        if (!p)
            return false;
        if (fn && !fn(ctx, k, klen, v, vlen))
            return false;
        p = skip_blanks(p, end);
        if (p < end && *p != ';')
            return false;
    }
    return true;
}

static bool key_is(const char *k, size_t klen, const char *want)
{
    return strlen(want) == klen && cu_memcaseeq(k, klen, want);
}

typedef struct {
    const char *b;
    size_t blen;
} boundary_ctx;

static bool boundary_param(void *ctx, const char *k, size_t klen, const char *v, size_t vlen)
{
    boundary_ctx *bc = ctx;
    if (key_is(k, klen, "boundary")) {
        bc->b = v;
        bc->blen = vlen;
    }
    return true;
}

int upstream_mp_boundary(const char *ct, size_t ct_len, const char **b, size_t *blen)
{
    if (!ct)
        return -EINVAL;
    const char *type;
    size_t type_len;
    boundary_ctx bc = {NULL, 0};
    if (!walk_params(ct, ct_len, &type, &type_len, boundary_param, &bc))
        return -EINVAL;
    if (type_len < 10 || !cu_memcaseeq(type, 10, "multipart/"))
        return -EINVAL;
    if (!bc.b || bc.blen == 0 || bc.blen > MAX_BOUNDARY)
        return -EINVAL;
    *b = bc.b;
    *blen = bc.blen;
    return 0;
}

static bool disposition_param(void *ctx, const char *k, size_t klen, const char *v, size_t vlen)
{
    upstream_part *part = ctx;
    if (key_is(k, klen, "name")) {
        part->name = v;
        part->name_len = vlen;
    } else if (key_is(k, klen, "filename") ||
               (key_is(k, klen, "filename*") && !part->is_file)) {
        part->filename = v;
        part->filename_len = vlen;
        part->is_file = true;
    }
    return true;
}

/* Parses one header line [p, e) into the part. */
static int part_header(upstream_part *part, const char *p, const char *e, const char **why)
{
    const char *colon = memchr(p, ':', (size_t)(e - p));
    if (!colon || colon == p) {
        *why = "malformed part header line";
        return -EINVAL;
    }
    size_t nlen = (size_t)(colon - p);
    const char *v = skip_blanks(colon + 1, e);
    const char *ve = e;
    while (ve > v && is_blank(ve[-1]))
        ve--;
    if (key_is(p, nlen, "content-disposition")) {
        const char *type;
        size_t type_len;
        if (!walk_params(v, (size_t)(ve - v), &type, &type_len, disposition_param, part)) {
            *why = "malformed Content-Disposition parameters";
            return -EINVAL;
        }
        if (!key_is(type, type_len, "form-data")) {
            *why = "part Content-Disposition is not form-data";
            return -EINVAL;
        }
    } else if (key_is(p, nlen, "content-type")) {
        part->content_type = v;
        part->content_type_len = (size_t)(ve - v);
    }
    return 0;
}

/* After "--boundary" at p: "--" closes, blanks then CRLF opens a part.
 * Returns 1 for close, 0 for a part (with *next after the CRLF), -1 when the
 * bytes there make it no delimiter at all, -2 when the body ends first. */
static int after_delimiter(const char *p, const char *end, const char **next)
{
    if (end - p >= 2 && p[0] == '-' && p[1] == '-')
        return 1;
    const char *q = skip_blanks(p, end);
    if (end - q >= 2 && q[0] == '\r' && q[1] == '\n') {
        *next = q + 2;
        return 0;
    }
    if (q >= end || (end - q == 1 && q[0] == '\r') || (end - p == 1 && p[0] == '-'))
        return -2;
    return -1;
}

int upstream_mp_parse(const char *body, size_t len, const char *boundary, size_t blen,
                      upstream_part *parts, size_t max, size_t *nparts, const char **why)
{
    const char *local_why;
    char delim[2 + 2 + MAX_BOUNDARY]; /* "\r\n--" boundary */
    const char *end = body + len, *p, *next = NULL;
    size_t count = 0;
    int r;

    *nparts = 0;
    if (!why)
        why = &local_why;
    if (blen == 0 || blen > MAX_BOUNDARY) {
        *why = "invalid boundary";
        return -EINVAL;
    }
    memcpy(delim, "\r\n--", 4);
    memcpy(delim + 4, boundary, blen);
    size_t dlen = 4 + blen;

    /* The first delimiter may open the body (no preamble, no CRLF). */
    if (len >= dlen - 2 && !memcmp(body, delim + 2, dlen - 2)) {
        r = after_delimiter(body + dlen - 2, end, &next);
        if (r == 1)
            return 0;
        if (r == 0)
            goto parts;
    }
    for (p = body;;) {
        const char *d = memmem(p, (size_t)(end - p), delim, dlen);
        if (!d)
            break;
        r = after_delimiter(d + dlen, end, &next);
        if (r == 1)
            return 0; /* a body with no parts at all */
        if (r == 0)
            goto parts;
        if (r == -2)
            break;
        p = d + 2; /* not a delimiter: keep looking */
    }
    *why = "no opening boundary found in the body";
    return -EINVAL;

parts:
    for (;;) {
        upstream_part part;
        memset(&part, 0, sizeof part);
        part.content_type = "";
        /* headers, up to an empty line */
        p = next;
        for (;;) {
            const char *e = memmem(p, (size_t)(end - p), "\r\n", 2);
            if (!e) {
                *why = "body ends inside a part's headers";
                return -EINVAL;
            }
            if (e == p) {
                p = e + 2;
                break;
            }
            if (part_header(&part, p, e, why) < 0)
                return -EINVAL;
            p = e + 2;
        }
        if (!part.name) {
            *why = "part without Content-Disposition: form-data; name=...";
            return -EINVAL;
        }
        /* Content, up to the next real delimiter; the CRLF before it
         * belongs to the delimiter. A part may also have no content at all
         * (RFC 2046: body-part := headers [CRLF *OCTET]), and then the blank
         * line's CRLF is the delimiter's. */
        const char *s = p, *q = p, *d = NULL;
        if ((size_t)(end - s) + 2 >= dlen && !memcmp(s - 2, delim, dlen) &&
            (r = after_delimiter(s - 2 + dlen, end, &next)) >= 0)
            d = s - 2;
        while (!d) {
            d = memmem(q, (size_t)(end - q), delim, dlen);
            if (!d) {
                *why = "body ends before the closing boundary";
                return -EINVAL;
            }
            r = after_delimiter(d + dlen, end, &next);
            if (r == -2) {
                *why = "body ends inside a boundary";
                return -EINVAL;
            }
            if (r == -1) {
                q = d + 2;
                d = NULL;
            }
        }
        part.data = s;
        part.data_len = d < s ? 0 : (size_t)(d - s);
        if (count >= max) {
            *why = "too many parts";
            *nparts = count + 1;
            return -E2BIG;
        }
        parts[count++] = part;
        *nparts = count;
        if (r == 1)
            return 0;
    }
}
