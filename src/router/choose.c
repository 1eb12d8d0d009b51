/* router/choose.c: the colour choice, as pure functions (router_int.h).
 *
 * Sticky buckets: FNV-1a 64 of the key, finished with a splitmix64 mix so
 * short keys spread evenly, reduced modulo 10,000. A key's bucket never
 * changes, and "bucket < weight" is monotonic in the weight: raising green's
 * weight can only move buckets to green, lowering it only back to blue.
 * Smooth weighted round-robin: nginx's algorithm over two peers. */
#include <math.h>
#include <string.h>

#include "router/router_int.h"

uint32_t rt_bucket_of(const char *key, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return (uint32_t)(h % RT_BUCKETS);
}

router_color rt_sticky_color(uint32_t bucket, int green_bp)
{
    return (int64_t)bucket < green_bp ? ROUTER_GREEN : ROUTER_BLUE;
}

router_color rt_swrr_next(rt_swrr *w, int green_bp)
{
    int64_t wt[2] = {RT_BUCKETS - green_bp, green_bp};
    if (wt[ROUTER_GREEN] <= 0)
        return ROUTER_BLUE;
    if (wt[ROUTER_BLUE] <= 0)
        return ROUTER_GREEN;
    w->cur[0] += wt[0];
    w->cur[1] += wt[1];
    router_color best = w->cur[1] > w->cur[0] ? ROUTER_GREEN : ROUTER_BLUE;
    w->cur[best] -= RT_BUCKETS;
    /* A weight change can leave the sums drifted; keep them bounded. */
    if (w->cur[0] > 2 * RT_BUCKETS || w->cur[0] < -2 * RT_BUCKETS)
        w->cur[0] = w->cur[1] = 0;
    return best;
}

const char *rt_cookie_find(const char *hdr, size_t len, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    size_t i = 0;
    while (i < len) {
        while (i < len && (hdr[i] == ' ' || hdr[i] == '\t' || hdr[i] == ';'))
            i++;
        size_t ks = i;
        while (i < len && hdr[i] != '=' && hdr[i] != ';')
            i++;
        size_t ke = i;
        while (ke > ks && (hdr[ke - 1] == ' ' || hdr[ke - 1] == '\t'))
            ke--;
        if (i >= len || hdr[i] != '=') {
            continue;
        }
        i++;
        while (i < len && (hdr[i] == ' ' || hdr[i] == '\t'))
            i++;
        size_t vs = i;
        while (i < len && hdr[i] != ';')
            i++;
        size_t ve = i;
        while (ve > vs && (hdr[ve - 1] == ' ' || hdr[ve - 1] == '\t'))
            ve--;
        if (ve - vs >= 2 && hdr[vs] == '"' && hdr[ve - 1] == '"') {
            vs++;
            ve--;
        }
        if (ke - ks == nlen && memcmp(hdr + ks, name, nlen) == 0) {
            *vlen = ve - vs;
            return hdr + vs;
        }
    }
    return NULL;
}

int rt_weight_bp(double percent)
{
    if (!isfinite(percent) || percent < 0 || percent > 100)
        return -1;
    return (int)lround(percent * 100.0);
}
