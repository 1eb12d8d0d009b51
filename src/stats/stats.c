/* stats: DDSketch histograms and named metric windows (see stats.h).
 *
 * hist follows sketches-js v2.1.1 (the fork Artillery 2.0.21 uses) to the
 * bit where it matters for reported numbers:
 *   gm = 2a/(1-a), gamma = 1 + gm, mult = (1 / log1p(gm)) * ln 2
 *   key(v)   = ceil(log2(v) * mult)            for v > 2^-1023 * gamma
 *   value(k) = 2^(k / mult) * (2 / (1 + gamma))
 *   quantile: rank = q * (count - 1); rank < zero_count -> 0, else the
 *             first key whose running count exceeds rank - zero_count.
 * The mult is computed in the same order as KeyMapping/LogarithmicMapping
 * so that keys agree with V8's doubles. Values <= 2^-1023 * gamma (zero,
 * negatives, NaN) go to the zero bucket; Artillery never records negatives,
 * so no mirrored store is kept. Values above DBL_MAX / gamma are clamped to
 * that key so +inf cannot produce an unbounded key.
 *
 * The dense store is one array of uint64 counts; bins[i] counts key
 * offset + i. It only grows (geometrically, with slack on the side that
 * grew), never shrinks, so a warmed-up hist records without allocating.
 *
 * mset keeps entries in an open-addressing table keyed by (kind, name)
 * with the 64-bit hash stored per slot; each entry is one allocation
 * (entry + name), so pointers stay valid for the set's life. Counters,
 * rates and summaries live in separate name spaces, as in Artillery.
 */
#include "stats/stats.h"

#include <float.h>
#include <math.h>
#include <string.h>
#include <stdlib.h>

#include "base/base.h"

/* ---- hist ------------------------------------------------------------------ */

#define HIST_MIN_BINS 128u

/* The mapping constants for a = 0.01, as the doubles sketches-js computes
 * them (checked bit for bit against node and against the formulas in the
 * unit tests): gm = (2a)/(1-a), gamma = 1 + gm, mult = (1/log1p(gm))*ln 2,
 * min_possible = 2^-1023 * gamma, max_possible = DBL_MAX / gamma,
 * value_scale = 2 / (1 + gamma). */
typedef struct hist_mapping {
    double gamma, mult, min_possible, max_possible, value_scale;
} hist_mapping;

static const hist_mapping MAPPING = {
    .gamma = 0x1.052bf5a814afdp+0,
    .mult = 0x1.153fe7c0aefa4p+5,
    .min_possible = 0x0.8295fad40a57ep-1022,
    .max_possible = 0x1.f5dc83cd4e93p+1023,
    .value_scale = 0x1.fae147ae147afp-1,
};

static const hist_mapping *mapping(void)
{
    return &MAPPING;
}

static int32_t key_of(const hist_mapping *mp, double v)
{
    if (v > mp->max_possible)
        v = mp->max_possible;
    return (int32_t)ceil(log2(v) * mp->mult);
}

static double value_of(const hist_mapping *mp, int32_t k)
{
    return pow(2, (double)k / mp->mult) * mp->value_scale;
}

void hist_init(hist *h)
{
    memset(h, 0, sizeof *h);
}

void hist_free(hist *h)
{
    free(h->bins);
    hist_init(h);
}

void hist_reset(hist *h)
{
    if (h->bins)
        memset(h->bins, 0, (size_t)h->nbins * sizeof *h->bins);
    h->count = h->zero_count = 0;
    h->sum = h->min = h->max = 0;
}

/* Makes keys [lo, hi] addressable, keeping what is stored. The new slack
 * goes mostly to the side that grew, where further growth is likely. */
static void grow(hist *h, int32_t lo, int32_t hi)
{
    if (h->bins) {
        int32_t end = h->offset + (int32_t)h->nbins - 1;
        if (lo >= h->offset && hi <= end)
            return;
        bool down = lo < h->offset;
        if (h->offset < lo)
            lo = h->offset;
        if (end > hi)
            hi = end;
        uint32_t need = (uint32_t)(hi - lo + 1);
        uint32_t n = h->nbins * 2;
        if (n < need + need / 2)
            n = need + need / 2;
        uint32_t slack = n - need;
        int32_t noff = down ? lo - (int32_t)(slack - slack / 4) : lo - (int32_t)(slack / 4);
        uint64_t *nb = cu_calloc(n, sizeof *nb);
        memcpy(nb + (h->offset - noff), h->bins, (size_t)h->nbins * sizeof *nb);
        free(h->bins);
        h->bins = nb;
        h->nbins = n;
        h->offset = noff;
        return;
    }
    uint32_t need = (uint32_t)(hi - lo + 1);
    uint32_t n = need * 2 > HIST_MIN_BINS ? need * 2 : HIST_MIN_BINS;
    h->bins = cu_calloc(n, sizeof *h->bins);
    h->nbins = n;
    h->offset = lo - (int32_t)((n - need) / 2);
}

void hist_record_n(hist *h, double v, uint64_t n)
{
    if (n == 0)
        return;
    const hist_mapping *mp = mapping();
    if (v > mp->min_possible) {
        int32_t k = key_of(mp, v);
        if (!h->bins || k < h->offset || k >= h->offset + (int32_t)h->nbins)
            grow(h, k, k);
        h->bins[k - h->offset] += n;
    } else {
        h->zero_count += n;
    }
    if (h->count == 0) {
        h->min = h->max = v;
    } else {
        if (v < h->min)
            h->min = v;
        if (v > h->max)
            h->max = v;
    }
    h->count += n;
    h->sum += v * (double)n;
}

void hist_record(hist *h, double v)
{
    hist_record_n(h, v, 1);
}

/* Lowest and highest used keys; false when no bin is used. */
static bool used_range(const hist *h, int32_t *lo, int32_t *hi)
{
    if (!h->bins)
        return false;
    uint32_t a = 0, b = h->nbins;
    while (a < b && h->bins[a] == 0)
        a++;
    if (a == b)
        return false;
    while (h->bins[b - 1] == 0)
        b--;
    *lo = h->offset + (int32_t)a;
    *hi = h->offset + (int32_t)b - 1;
    return true;
}

void hist_merge(hist *dst, const hist *src)
{
    if (src->count == 0)
        return;
    int32_t lo, hi;
    if (used_range(src, &lo, &hi)) {
        grow(dst, lo, hi);
        uint64_t *d = dst->bins + (lo - dst->offset);
        const uint64_t *s = src->bins + (lo - src->offset);
        for (int32_t i = 0; i <= hi - lo; i++)
            d[i] += s[i];
    }
    if (dst->count == 0) {
        dst->min = src->min;
        dst->max = src->max;
    } else {
        if (src->min < dst->min)
            dst->min = src->min;
        if (src->max > dst->max)
            dst->max = src->max;
    }
    dst->zero_count += src->zero_count;
    dst->count += src->count;
    dst->sum += src->sum;
}

void hist_copy(hist *dst, const hist *src)
{
    hist_reset(dst);
    hist_merge(dst, src);
}

double hist_quantile(const hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (!(q >= 0))
        q = 0;
    if (q > 1)
        q = 1;
    double rank = q * (double)(h->count - 1);
    if (rank < (double)h->zero_count)
        return 0;
    rank -= (double)h->zero_count;
    const hist_mapping *mp = mapping();
    uint64_t running = 0;
    int32_t last = 0;
    for (uint32_t i = 0; i < h->nbins; i++) {
        if (h->bins[i] == 0)
            continue;
        running += h->bins[i];
        last = h->offset + (int32_t)i;
        if ((double)running > rank)
            return value_of(mp, last);
    }
    return value_of(mp, last); /* unreachable with consistent counts */
}

double hist_mean(const hist *h)
{
    return h->count ? h->sum / (double)h->count : 0;
}

double stats_round1(double x)
{
    /* Math.round as V8 does it: ceil, then step back if that overshot by
     * more than one half (ties go toward +inf, no x + 0.5 rounding error). */
    double y = x * 10;
    if (!isfinite(y))
        return x;
    double c = ceil(y);
    if (c - 0.5 > y)
        c -= 1;
    return c / 10;
}

/* ---- mset ------------------------------------------------------------------ */

typedef struct mset_slot {
    uint64_t hash;      /* 0 = empty */
    mset_entry *e;
} mset_slot;

typedef struct mset_list {
    mset_entry **v;
    size_t n, cap;
} mset_list;

struct mset {
    int64_t period;
    mset_slot *tab;
    size_t cap, used;   /* cap is a power of two; used <= cap / 2 */
    mset_list kinds[3];
    mset_times t;
};

static uint64_t name_hash(const char *name, mset_kind kind)
{
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)kind;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    h ^= h >> 29;
    return h ? h : 1;
}

mset *mset_new(int64_t period_ms)
{
    mset *m = cu_calloc(1, sizeof *m);
    m->period = period_ms;
    m->cap = 32;
    m->tab = cu_calloc(m->cap, sizeof *m->tab);
    m->t = (mset_times){-1, -1, -1, -1};
    return m;
}

void mset_free(mset *m)
{
    if (!m)
        return;
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < m->kinds[k].n; i++) {
            hist_free(&m->kinds[k].v[i]->h);
            free(m->kinds[k].v[i]);
        }
        free(m->kinds[k].v);
    }
    free(m->tab);
    free(m);
}

int64_t mset_period(const mset *m)
{
    return m->period;
}

static size_t probe(const mset *m, uint64_t hash, const char *name, mset_kind kind)
{
    size_t mask = m->cap - 1, i = (size_t)hash & mask;
    for (;; i = (i + 1) & mask) {
        const mset_slot *s = &m->tab[i];
        if (s->hash == 0)
            return i;
        if (s->hash == hash && s->e->kind == kind && strcmp(s->e->name, name) == 0)
            return i;
    }
}

static void rehash(mset *m)
{
    mset_slot *old = m->tab;
    size_t oldcap = m->cap;
    m->cap *= 2;
    m->tab = cu_calloc(m->cap, sizeof *m->tab);
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].hash == 0)
            continue;
        size_t mask = m->cap - 1, j = (size_t)old[i].hash & mask;
        while (m->tab[j].hash)
            j = (j + 1) & mask;
        m->tab[j] = old[i];
    }
    free(old);
}

mset_entry *mset_find(const mset *m, const char *name, mset_kind kind)
{
    size_t i = probe(m, name_hash(name, kind), name, kind);
    return m->tab[i].e;
}

mset_entry *mset_get(mset *m, const char *name, mset_kind kind)
{
    uint64_t hash = name_hash(name, kind);
    size_t i = probe(m, hash, name, kind);
    if (m->tab[i].e)
        return m->tab[i].e;
    size_t len = strlen(name);
    mset_entry *e = cu_malloc(sizeof *e + len + 1);
    char *copy = (char *)(e + 1);
    memcpy(copy, name, len + 1);
    *e = (mset_entry){.name = copy, .kind = kind, .first_ms = -1, .last_ms = -1};
    hist_init(&e->h);
    mset_list *l = &m->kinds[kind];
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = cu_realloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = e;
    m->tab[i] = (mset_slot){hash, e};
    if (++m->used * 2 > m->cap)
        rehash(m);
    return e;
}

static void widen(int64_t *first, int64_t *last, int64_t lo, int64_t hi)
{
    if (lo < 0)
        return;
    if (*first < 0 || lo < *first)
        *first = lo;
    if (*last < 0 || hi > *last)
        *last = hi;
}

void mset_entry_count(mset *m, mset_entry *e, int64_t n, int64_t ts_ms)
{
    e->value += n;
    widen(&e->first_ms, &e->last_ms, ts_ms, ts_ms);
    widen(&m->t.first_counter, &m->t.last_counter, ts_ms, ts_ms);
}

void mset_entry_rate(mset *m, mset_entry *e, int64_t ts_ms)
{
    e->value += 1;
    widen(&e->first_ms, &e->last_ms, ts_ms, ts_ms);
    widen(&m->t.first_counter, &m->t.last_counter, ts_ms, ts_ms);
}

void mset_entry_summary(mset *m, mset_entry *e, double v, int64_t ts_ms)
{
    hist_record(&e->h, v);
    widen(&e->first_ms, &e->last_ms, ts_ms, ts_ms);
    widen(&m->t.first_histogram, &m->t.last_histogram, ts_ms, ts_ms);
}

void mset_count(mset *m, const char *name, int64_t n, int64_t ts_ms)
{
    mset_entry_count(m, mset_get(m, name, MSET_COUNTER), n, ts_ms);
}

void mset_rate(mset *m, const char *name, int64_t ts_ms)
{
    mset_entry_rate(m, mset_get(m, name, MSET_RATE), ts_ms);
}

void mset_summary(mset *m, const char *name, double v, int64_t ts_ms)
{
    mset_entry_summary(m, mset_get(m, name, MSET_SUMMARY), v, ts_ms);
}

void mset_merge(mset *dst, const mset *src)
{
    for (int k = 0; k < 3; k++) {
        const mset_list *l = &src->kinds[k];
        for (size_t i = 0; i < l->n; i++) {
            const mset_entry *s = l->v[i];
            mset_entry *d = mset_get(dst, s->name, (mset_kind)k);
            d->value += s->value;
            hist_merge(&d->h, &s->h);
            widen(&d->first_ms, &d->last_ms, s->first_ms, s->last_ms);
        }
    }
    widen(&dst->t.first_counter, &dst->t.last_counter, src->t.first_counter, src->t.last_counter);
    widen(&dst->t.first_histogram, &dst->t.last_histogram, src->t.first_histogram,
          src->t.last_histogram);
}

size_t mset_len(const mset *m, mset_kind kind)
{
    return m->kinds[kind].n;
}

const mset_entry *mset_at(const mset *m, mset_kind kind, size_t i)
{
    return i < m->kinds[kind].n ? m->kinds[kind].v[i] : NULL;
}

mset_times mset_get_times(const mset *m)
{
    return m->t;
}

bool mset_empty(const mset *m)
{
    return m->used == 0;
}
