/* stats: the project's one histogram type and named metric sets.
 *
 * hist: a DDSketch with 1% relative accuracy, built to give exactly the
 * percentiles Artillery 2 reports (sketches-js v2.1.1 rules: gamma =
 * 1 + 2a/(1-a) with a = 0.01, key(v) = ceil(log2(v) * m) with
 * m = ln 2 / log1p(2a/(1-a)), value(k) = 2^(k/m) * 2/(1+gamma), a zero bucket
 * for values <= 0 (and tiny ones), rank = q * (count - 1)). Exact count,
 * sum, min and max are kept beside the buckets. Merging two sketches is
 * exact (bucket sums), so each worker thread keeps its own and they are
 * merged per window. Recording never allocates once the dense store covers
 * the value range seen (it grows geometrically otherwise).
 *
 * mset: one time window of named metrics, Artillery-style: counters
 * (int64 sums), rates (event counts turned into per-second rates when
 * reported) and summaries (one hist each), plus the first/last timestamps
 * Artillery reports (firstCounterAt, lastHistogramAt, ...). Names are kept
 * in first-seen order per kind. Lookups hash the name; callers on hot
 * paths may keep the returned pointers for the life of the set.
 *
 * Thread rules: none of these are shared between threads; merge instead.
 */
#ifndef CUTOVER_STATS_H
#define CUTOVER_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- hist ------------------------------------------------------------------ */
typedef struct hist {
    uint64_t count;
    uint64_t zero_count; /* values mapped to the zero bucket */
    double sum, min, max;
    int32_t offset;      /* key of bins[0] */
    uint32_t nbins;      /* allocated bins */
    uint64_t *bins;      /* NULL until the first non-zero value */
} hist;

void hist_init(hist *h);
void hist_free(hist *h);
void hist_reset(hist *h);              /* empty again, keeps memory */
void hist_record(hist *h, double v);
void hist_record_n(hist *h, double v, uint64_t n);
void hist_merge(hist *dst, const hist *src);
void hist_copy(hist *dst, const hist *src); /* dst must be initialised */
/* The q-quantile (0 <= q <= 1) by Artillery's rule, unrounded; 0 when empty. */
double hist_quantile(const hist *h, double q);
double hist_mean(const hist *h);       /* 0 when empty */
/* JavaScript's Math.round(x * 10) / 10, the rounding Artillery applies to
 * every summary value it reports. */
double stats_round1(double x);

/* ---- mset ------------------------------------------------------------------ */
typedef enum { MSET_COUNTER, MSET_RATE, MSET_SUMMARY } mset_kind;

typedef struct mset_entry {
    const char *name;      /* owned by the set */
    mset_kind kind;
    int64_t value;         /* counter sum, or rate event count */
    int64_t first_ms, last_ms; /* rate: first/last event time in the window */
    hist h;                /* summary */
} mset_entry;

typedef struct mset mset;

/* A window starting at `period_ms` (epoch ms, multiple of the width). */
mset *mset_new(int64_t period_ms);
void mset_free(mset *m);
int64_t mset_period(const mset *m);

/* Find or create; the pointer stays valid for the set's life. */
mset_entry *mset_get(mset *m, const char *name, mset_kind kind);
/* Look up without creating (NULL if absent or of another kind). */
mset_entry *mset_find(const mset *m, const char *name, mset_kind kind);

/* Record with the event's wall-clock time (ms), which also maintains the
 * first/last timestamps of the window. */
void mset_count(mset *m, const char *name, int64_t n, int64_t ts_ms);
void mset_rate(mset *m, const char *name, int64_t ts_ms);
void mset_summary(mset *m, const char *name, double v, int64_t ts_ms);
/* The same on an entry already looked up (hot paths). */
void mset_entry_count(mset *m, mset_entry *e, int64_t n, int64_t ts_ms);
void mset_entry_rate(mset *m, mset_entry *e, int64_t ts_ms);
void mset_entry_summary(mset *m, mset_entry *e, double v, int64_t ts_ms);

/* Adds every metric of src into dst (counters and rate counts summed,
 * hists merged, timestamps widened). Names new to dst are appended in
 * src's order. */
void mset_merge(mset *dst, const mset *src);

/* Entries of one kind in first-seen order. */
size_t mset_len(const mset *m, mset_kind kind);
const mset_entry *mset_at(const mset *m, mset_kind kind, size_t i);

/* Timestamps as Artillery reports them; -1 when no such event happened. */
typedef struct mset_times {
    int64_t first_counter, last_counter;
    int64_t first_histogram, last_histogram;
} mset_times;
mset_times mset_get_times(const mset *m);
bool mset_empty(const mset *m);

#endif
