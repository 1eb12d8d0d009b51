/* loadtest/jsontext.c: JSON captures straight from the response text
 * (script.h, "JSON text").
 *
 * Why: a capture such as `json: "$.data[0].id"` used to load the whole
 * body into jansson values, one allocation a node, to read one of them:
 * for a 1.2 KB list that was most of the generator's CPU per request
 * (bench/capture.yml). A path of plain steps (members and indexes, the
 * usual capture) is now walked over the text itself: one pass checks the
 * document, one follows the path, and only the value found is loaded.
 *
 * Same answers as loading the document (jsonpath.c over json_loadb with
 * JSON_DECODE_ANY), which the unit tests check side by side:
 *  - lt_json_text_type accepts exactly what jansson 2.14 loads: one value
 *    (any type) with blanks around it; strings of valid UTF-8 without
 *    control characters, the JSON escapes, \u0000 refused, surrogates only
 *    in pairs; numbers by the JSON grammar, an integer within long long
 *    and a real that does not overflow; at most 2048 values deep (the
 *    root is 1, a scalar in 2048 arrays is 2049);
 *  - a member name found twice: the last one counts (jansson keeps the
 *    last value);
 *  - jsonpath-plus's rules kept by jsonpath.c: a member name of digits
 *    indexes an array, `length` of an array is its size, an index of an
 *    object is the member of that name, a negative index counts from the
 *    end.
 * Paths with wildcards, slices or `..` are not handled here
 * (lt_jsonpath_plain is false) and take the loaded document.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadtest/script.h"

#define JT_MAX_DEPTH 2048 /* jansson's JSON_PARSER_MAX_DEPTH */

typedef struct jt {
    const char *p, *end;
} jt;

static void blanks(jt *t)
{
    while (t->p < t->end && (*t->p == ' ' || *t->p == '\t' || *t->p == '\n' || *t->p == '\r'))
        t->p++;
}

/* Four hex digits at p (p + 4 <= end checked by the caller); -1 if not. */
static long hex4(const char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = cu_hexval(p[i]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/* One UTF-8 sequence at t->p (its first byte >= 0x80), as jansson checks
 * it: shortest form, no surrogates, at most U+10FFFF. */
static bool utf8_seq(jt *t)
{
    const unsigned char *u = (const unsigned char *)t->p;
    size_t left = (size_t)(t->end - t->p);
    unsigned c = u[0], n;
    unsigned long cp;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return false;
    }
    if (left < n)
        return false;
    for (unsigned i = 1; i < n; i++) {
        if ((u[i] & 0xC0) != 0x80)
            return false;
        cp = cp << 6 | (u[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return false;
    t->p += n;
    return true;
}

/* A string at t->p (the opening quote); t->p after the closing one. If
 * `key` is given, *eq tells whether the decoded string equals it. */
static bool string(jt *t, const char *key, size_t key_len, bool *eq)
{
    t->p++;
    size_t k = 0;
    bool same = key != NULL;
    for (;;) {
        if (t->p >= t->end)
            return false;
        unsigned char c = (unsigned char)*t->p;
        if (c == '"') {
            t->p++;
            if (eq)
                *eq = same && k == key_len;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c == '\\') {
            if (t->end - t->p < 2)
                return false;
            char e = t->p[1];
            const char *simple = strchr("\"\\/bfnrt", e);
            if (e && simple) {
                static const char to[] = "\"\\/\b\f\n\r\t";
                if (same && (k >= key_len || key[k] != to[simple - "\"\\/bfnrt"]))
                    same = false;
                k++;
                t->p += 2;
                continue;
            }
            if (e != 'u' || t->end - t->p < 6)
                return false;
            long cp = hex4(t->p + 2);
            if (cp < 0 || cp == 0)
                return false; /* \u0000: jansson refuses it without JSON_ALLOW_NUL */
            t->p += 6;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return false;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                long lo;
                if (t->end - t->p < 6 || t->p[0] != '\\' || t->p[1] != 'u' ||
                    (lo = hex4(t->p + 2)) < 0xDC00 || lo > 0xDFFF)
                    return false;
                t->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            char u8[4];
            size_t n;
            if (cp < 0x80) {
                u8[0] = (char)cp;
                n = 1;
            } else if (cp < 0x800) {
                u8[0] = (char)(0xC0 | cp >> 6);
                u8[1] = (char)(0x80 | (cp & 0x3F));
                n = 2;
            } else if (cp < 0x10000) {
                u8[0] = (char)(0xE0 | cp >> 12);
                u8[1] = (char)(0x80 | (cp >> 6 & 0x3F));
                u8[2] = (char)(0x80 | (cp & 0x3F));
                n = 3;
            } else {
                u8[0] = (char)(0xF0 | cp >> 18);
                u8[1] = (char)(0x80 | (cp >> 12 & 0x3F));
                u8[2] = (char)(0x80 | (cp >> 6 & 0x3F));
                u8[3] = (char)(0x80 | (cp & 0x3F));
                n = 4;
            }
            if (same && (k + n > key_len || memcmp(key + k, u8, n) != 0))
                same = false;
            k += n;
            continue;
        }
        const char *at = t->p;
        if (c >= 0x80) {
            if (!utf8_seq(t))
                return false;
        } else {
            t->p++;
        }
        size_t n = (size_t)(t->p - at);
        if (same && (k + n > key_len || memcmp(key + k, at, n) != 0))
            same = false;
        k += n;
    }
}

/* A number by the JSON grammar, within jansson's ranges. */
static bool number(jt *t)
{
    const char *s = t->p;
    bool real = false;
    if (t->p < t->end && *t->p == '-')
        t->p++;
    if (t->p >= t->end)
        return false;
    if (*t->p == '0') {
        t->p++;
    } else if (*t->p >= '1' && *t->p <= '9') {
        while (t->p < t->end && *t->p >= '0' && *t->p <= '9')
            t->p++;
    } else {
        return false;
    }
    if (t->p < t->end && *t->p == '.') {
        real = true;
        t->p++;
        if (t->p >= t->end || *t->p < '0' || *t->p > '9')
            return false;
        while (t->p < t->end && *t->p >= '0' && *t->p <= '9')
            t->p++;
    }
    if (t->p < t->end && (*t->p == 'e' || *t->p == 'E')) {
        real = true;
        t->p++;
        if (t->p < t->end && (*t->p == '+' || *t->p == '-'))
            t->p++;
        if (t->p >= t->end || *t->p < '0' || *t->p > '9')
            return false;
        while (t->p < t->end && *t->p >= '0' && *t->p <= '9')
            t->p++;
    }
    char buf[64];
    size_t n = (size_t)(t->p - s);
    char *num = n < sizeof buf ? buf : cu_malloc(n + 1);
    memcpy(num, s, n);
    num[n] = '\0';
    errno = 0;
    bool ok;
    if (real) {
        double d = strtod(num, NULL);
        ok = !(errno == ERANGE && isinf(d)); /* "real number overflow" */
    } else {
        (void)strtoll(num, NULL, 10);
        ok = errno != ERANGE; /* "too big integer" */
    }
    if (num != buf)
        free(num);
    return ok;
}

static bool literal(jt *t, const char *word, size_t n)
{
    if ((size_t)(t->end - t->p) < n || memcmp(t->p, word, n) != 0)
        return false;
    t->p += n;
    return true;
}

/* One value at t->p (blanks before it skipped), checked; t->p after it. */
static bool value(jt *t, int depth)
{
    blanks(t);
    if (t->p >= t->end || depth >= JT_MAX_DEPTH) /* jansson counts every value, scalars too */
        return false;
    switch (*t->p) {
    case '"':
        return string(t, NULL, 0, NULL);
    case 't':
        return literal(t, "true", 4);
    case 'f':
        return literal(t, "false", 5);
    case 'n':
        return literal(t, "null", 4);
    case '[':
    case '{': {
        bool obj = *t->p == '{';
        t->p++;
        blanks(t);
        if (t->p < t->end && *t->p == (obj ? '}' : ']')) {
            t->p++;
            return true;
        }
        for (;;) {
            if (obj) {
                blanks(t);
                if (t->p >= t->end || *t->p != '"' || !string(t, NULL, 0, NULL))
                    return false;
                blanks(t);
                if (t->p >= t->end || *t->p != ':')
                    return false;
                t->p++;
            }
            if (!value(t, depth + 1))
                return false;
            blanks(t);
            if (t->p >= t->end)
                return false;
            if (*t->p == ',') {
                t->p++;
                continue;
            }
            if (*t->p != (obj ? '}' : ']'))
                return false;
            t->p++;
            return true;
        }
    }
    default:
        return number(t);
    }
}

int lt_json_text_type(const char *text, size_t len)
{
    if (!text)
        return 0;
    jt t = {text, text + len};
    blanks(&t);
    const char *first = t.p;
    if (!value(&t, 0))
        return 0;
    blanks(&t);
    return t.p == t.end ? (unsigned char)*first : 0;
}

/* ---- following a plain path over checked text ------------------------------------ */
/* The member `key` of the object at *v (its last occurrence); false when
 * none. v is the span of the value, and becomes the member's. */
static bool member(const char **v, const char *end, const char *key, size_t key_len)
{
    jt t = {*v + 1, end};
    const char *found = NULL;
    blanks(&t);
    if (*t.p == '}')
        return false;
    for (;;) {
        blanks(&t);
        bool eq = false;
        string(&t, key, key_len, &eq);
        blanks(&t);
        t.p++; /* ':' */
        blanks(&t);
        if (eq)
            found = t.p;
        value(&t, 0);
        blanks(&t);
        if (*t.p++ == '}')
            break;
    }
    if (found)
        *v = found;
    return found != NULL;
}

/* The number of elements of the array at v. */
static long long elements(const char *v, const char *end)
{
    jt t = {v + 1, end};
    blanks(&t);
    if (*t.p == ']')
        return 0;
    long long n = 0;
    for (;;) {
        value(&t, 0);
        n++;
        blanks(&t);
        if (*t.p++ == ']')
            return n;
    }
}

/* Element i (>= 0) of the array at *v. */
static bool element(const char **v, const char *end, long long i)
{
    jt t = {*v + 1, end};
    blanks(&t);
    if (*t.p == ']')
        return false;
    for (long long k = 0;; k++) {
        blanks(&t);
        if (k == i) {
            *v = t.p;
            return true;
        }
        value(&t, 0);
        blanks(&t);
        if (*t.p++ == ']')
            return false;
    }
}

int lt_jsonpath_text(const lt_jsonpath *p, const char *text, size_t len, json_t **out)
{
    *out = NULL;
    size_t n = lt_jsonpath_nsteps(p);
    const char *v = text, *end = text + len;
    jt t = {v, end};
    blanks(&t);
    v = t.p;
    for (size_t i = 0; i < n; i++) {
        const char *key;
        long long index;
        bool is_index = lt_jsonpath_step(p, i, &key, &index);
        if (*v == '{') {
            char num[32];
            if (is_index) {
                snprintf(num, sizeof num, "%lld", index);
                key = num;
            }
            if (!member(&v, end, key, strlen(key)))
                return 0;
        } else if (*v == '[') {
            if (!is_index) {
                bool digits = *key != '\0';
                for (const char *c = key; *c; c++)
                    digits &= *c >= '0' && *c <= '9';
                if (digits) {
                    errno = 0;
                    unsigned long long u = strtoull(key, NULL, 10);
                    if (errno == ERANGE || u > (unsigned long long)LLONG_MAX)
                        return 0;
                    index = (long long)u;
                } else if (strcmp(key, "length") == 0) {
                    if (i + 1 < n) /* a step below a number finds nothing */
                        return 0;
                    *out = json_integer((json_int_t)elements(v, end));
                    return 1;
                } else {
                    return 0;
                }
            }
            if (index < 0)
                index += elements(v, end);
            if (index < 0 || !element(&v, end, index))
                return 0;
        } else {
            return 0;
        }
    }
    t.p = v;
    value(&t, 0);
    *out = json_loadb(v, (size_t)(t.p - v), JSON_DECODE_ANY, NULL);
    return *out ? 1 : -1;
}

bool lt_json_text_has_path(const char *text, size_t len, const char *path)
{
    const char *end = text + len, *p = path;
    jt t = {text, end};
    blanks(&t);
    const char *v = t.p;
    if (!*p)
        return false;
    while (*p) {
        size_t n = strcspn(p, ".[]");
        if (n >= 256)
            return false;
        if (n) {
            if (*v == '{') {
                if (!member(&v, end, p, n))
                    return false;
            } else if (*v == '[') {
                char key[256], *e;
                memcpy(key, p, n);
                key[n] = '\0';
                errno = 0;
                unsigned long long i = strtoull(key, &e, 10); /* as strtoul: " 1", "+1" */
                if (*e || errno == ERANGE || i > (unsigned long long)LLONG_MAX ||
                    !element(&v, end, (long long)i))
                    return false;
            } else {
                return false;
            }
        }
        p += n;
        p += strspn(p, ".[]");
    }
    return true;
}
