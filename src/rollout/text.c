/* Text helpers: everything the controller writes into JSON (decision
 * records, notification payloads, API answers) must stay valid UTF-8, or
 * jansson refuses it. Text is cut only on character boundaries, and bytes
 * that come from outside (request paths, names given to the C API) are
 * checked or cleaned before they reach a JSON string.
 * Thread rules: none (pure functions).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rollout/internal.h"

/* Length of the valid UTF-8 sequence at s (at most `left` bytes), 0 if invalid. */
static size_t seq_len(const unsigned char *s, size_t left)
{
    unsigned char c = s[0];
    size_t k;
    unsigned min;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        k = 2, min = 0x80, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        k = 3, min = 0x800, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        k = 4, min = 0x10000, cp = c & 0x07;
    else
        return 0;
    if (k > left)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return k;
}

bool rt_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t k = seq_len(p + i, len - i);
        if (!k || (k == 1 && p[i] == 0))
            return false;
        i += k;
    }
    return true;
}

void rt_utf8_clean(char *s)
{
    unsigned char *p = (unsigned char *)s;
    size_t len = strlen(s), i = 0;
    while (i < len) {
        size_t k = seq_len(p + i, len - i);
        if (!k) {
            p[i++] = '?';
            continue;
        }
        i += k;
    }
}

size_t rt_utf8_cut(const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t j = max;
    /* back over up to 3 continuation bytes to the lead byte of the last character */
    while (j > 0 && max - j < 3 && (p[j - 1] & 0xc0) == 0x80)
        j--;
    if (j == 0 || p[j - 1] < 0xc0)
        return max;
    unsigned char lead = p[j - 1];
    size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
    return j - 1 + need > max ? j - 1 : max;
}

int rt_fmt(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    if (k >= 0 && n && (size_t)k >= n) /* truncated: end on a character boundary */
        buf[rt_utf8_cut(buf, n - 1)] = 0;
    return k;
}
