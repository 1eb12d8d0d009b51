/* Unit tests for stats: the DDSketch against sketches-js numbers and exact
 * order statistics, merging, edge values; metric sets.
 *
 * The "JS" constants below were produced by running the sketches-js
 * v2.1.1 formulas (mapping, accept, getValueAtQuantile) under node on the
 * same xorshift32 data. Keys must agree exactly; bucket values may differ
 * by an ulp (V8's fdlibm-style pow vs glibc's), which test_ulp_robust shows
 * can never change a value once rounded to 0.1 as Artillery reports it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "stats/stats.h"

static const double QS[6] = {0.5, 0.75, 0.9, 0.95, 0.99, 0.999};

#define assert_double_eq(a, b)                                                       \
    do {                                                                             \
        double a_ = (a), b_ = (b);                                                   \
        if (!(a_ == b_)) {                                                           \
            print_error("%s = %.17g != %s = %.17g\n", #a, a_, #b, b_);               \
            fail();                                                                  \
        }                                                                            \
    } while (0)

/* xorshift32, identical to the generator used for the JS constants */
static uint32_t xs_state;
static double xs_u(void)
{
    xs_state ^= xs_state << 13;
    xs_state ^= xs_state >> 17;
    xs_state ^= xs_state << 5;
    return xs_state / 4294967296.0;
}

static double gen_ints(void)
{
    double x = xs_u();
    return x < 0.75 ? 0 : x < 0.93 ? 1 : x < 0.96 ? 2 : x < 0.98 ? 3 : x < 0.995 ? 4 : 5;
}
static double gen_sq(void)
{
    double x = xs_u();
    return x * x * 5000;
}
static double gen_ms(void)
{
    double a = xs_u();
    return floor(a * xs_u() * 3000);
}
static double gen_mixed(void)
{
    double x = xs_u();
    return x < 0.1 ? 0 : x * x * x * 1e6;
}

static void fill(hist *h, int n, double (*gen)(void))
{
    xs_state = 12345;
    for (int i = 0; i < n; i++)
        hist_record(h, gen());
}

static double one(double v)
{
    hist h;
    hist_init(&h);
    hist_record(&h, v);
    double r = hist_quantile(&h, 0.5);
    hist_free(&h);
    return r;
}

/* a and b within 2 ulps */
#define assert_close_ulp(a, b)                                                       \
    do {                                                                             \
        double a_ = (a), b_ = (b);                                                   \
        if (!(fabs(a_ - b_) <= 2 * (nextafter(fabs(b_), INFINITY) - fabs(b_)))) {   \
            print_error("%s = %.17g !~ %s = %.17g\n", #a, a_, #b, b_);              \
            fail();                                                                  \
        }                                                                            \
    } while (0)

static void test_mapping_constants(void **state)
{
    (void)state;
    /* The formulas of KeyMapping + LogarithmicMapping, evaluated here in the
     * same order, must land on the buckets the sketch uses. */
    volatile double a = 0.01;
    double gm = (2 * a) / (1 - a), gamma = 1 + gm, mult = 1 / log1p(gm);
    mult *= log(2);
    for (double v = 0.001; v < 2e6; v *= 1.37) {
        double k = ceil(log2(v) * mult);
        assert_double_eq(one(v), pow(2, k / mult) * (2 / (1 + gamma)));
    }
    /* just above / at the zero threshold 2^-1023 * gamma */
    double minp = ldexp(1.0, -1023) * gamma;
    hist h;
    hist_init(&h);
    hist_record(&h, minp);
    assert_int_equal(h.zero_count, 1);
    hist_record(&h, nextafter(minp, 1));
    assert_int_equal(h.zero_count, 1);
    assert_int_equal(h.count, 2);
    hist_free(&h);
}

static void test_worked_values(void **state)
{
    (void)state;
    assert_close_ulp(one(1), 0.9900000000000001);
    assert_close_ulp(one(4), 4.014835333028612);
    assert_close_ulp(one(100), 100.4945677085671);
    assert_close_ulp(one(123), 122.74516052680153);
    assert_close_ulp(one(1000), 1002.4280085221619);
    assert_close_ulp(one(2), 1.993661701417351);
    assert_close_ulp(one(0.5), 0.5015394534033245);
    assert_close_ulp(one(12345.678), 12459.820045918788);
    assert_double_eq(stats_round1(one(1)), 1);
    assert_double_eq(stats_round1(one(4)), 4);
    assert_double_eq(stats_round1(one(100)), 100.5);
    assert_double_eq(stats_round1(one(123)), 122.7);
    assert_double_eq(stats_round1(one(1000)), 1002.4);
}

static void test_round1(void **state)
{
    (void)state;
    static const double in[] = {0.05, 0.15, 2.25, -0.25, 1.005, 0.35, 0.45, 1.45, 2.675, 123.449999, 0, 7};
    static const double out[] = {0.1, 0.2, 2.3, -0.2, 1, 0.4, 0.5, 1.5, 2.7, 123.4, 0, 7};
    for (size_t i = 0; i < sizeof in / sizeof *in; i++)
        assert_double_eq(stats_round1(in[i]), out[i]);
    assert_double_eq(stats_round1(0.49999999999999994 / 10), 0);
    assert_true(isnan(stats_round1(NAN)));
}

/* Bit-exact quantiles on four data sets (the first: integer latencies 0..5). */
static void test_js_datasets(void **state)
{
    (void)state;
    static const struct {
        int n;
        double (*gen)(void);
        double q[6], rounded[6], mean;
    } sets[] = {
        {480, gen_ints, {0.0, 0.0, 0.9900000000000001, 1.993661701417351, 4.014835333028612, 5.002829575110742},
         {0, 0, 1, 2, 4, 5}, 0.4},
        {10000, gen_sq,
         {1249.1113761746642, 2893.4813632977757, 4065.235744881094, 4583.5588385801875, 4867.000022619838,
          4965.323255400037},
         {1249.1, 2893.5, 4065.2, 4583.6, 4867, 4965.3}, 1680},
        {20000, gen_ms,
         {550.133151990237, 1153.0720547569206, 1790.4095636081197, 2101.0762928045647, 2566.277488622581,
          2836.1847026384135},
         {550.1, 1153.1, 1790.4, 2101.1, 2566.3, 2836.2}, 748.3},
        {5000, gen_mixed,
         {124286.04729557065, 438179.10595573985, 751931.88815038, 882404.9514194486, 975211.5411695032,
          994912.7844254541},
         {124286, 438179.1, 751931.9, 882405, 975211.5, 994912.8}, 254801.8},
    };
    for (size_t s = 0; s < sizeof sets / sizeof *sets; s++) {
        hist h;
        hist_init(&h);
        fill(&h, sets[s].n, sets[s].gen);
        assert_int_equal(h.count, sets[s].n);
        for (int i = 0; i < 6; i++) {
            assert_close_ulp(hist_quantile(&h, QS[i]), sets[s].q[i]);
            assert_double_eq(stats_round1(hist_quantile(&h, QS[i])), sets[s].rounded[i]);
        }
        assert_double_eq(stats_round1(hist_mean(&h)), sets[s].mean);
        hist_free(&h);
    }
}

/* Every bucket value from 1e-4 to 1e8 ms rounds to the same 0.1 whatever
 * its last couple of bits, so libm differences cannot show in a report. */
static void test_ulp_robust(void **state)
{
    (void)state;
    volatile double a = 0.01;
    double gm = (2 * a) / (1 - a), gamma = 1 + gm, mult = 1 / log1p(gm);
    mult *= log(2);
    int n = 0;
    for (double k = ceil(log2(1e-4) * mult); k <= ceil(log2(1e8) * mult); k++, n++) {
        double v = pow(2, k / mult) * (2 / (1 + gamma));
        double lo = nextafter(nextafter(v, 0), 0), hi = nextafter(nextafter(v, INFINITY), INFINITY);
        if (stats_round1(lo) != stats_round1(hi)) {
            print_error("key %g value %.17g is on a rounding edge\n", k, v);
            fail();
        }
    }
    assert_true(n > 900);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void check_accuracy(double (*draw)(cu_rng *))
{
    enum { N = 100000 };
    double *v = malloc(N * sizeof *v);
    assert_non_null(v);
    cu_rng r;
    cu_rng_seed(&r, 7);
    hist h;
    hist_init(&h);
    for (int i = 0; i < N; i++) {
        v[i] = draw(&r);
        hist_record(&h, v[i]);
    }
    qsort(v, N, sizeof *v, cmp_double);
    assert_double_eq(h.min, v[0]);
    assert_double_eq(h.max, v[N - 1]);
    for (int i = 0; i <= 1000; i++) {
        double q = i / 1000.0;
        double exact = v[(size_t)floor(q * (N - 1))];
        double est = hist_quantile(&h, q);
        if (fabs(est - exact) > 0.01 * exact * (1 + 1e-12)) {
            print_error("q=%g est=%.17g exact=%.17g\n", q, est, exact);
            fail();
        }
    }
    hist_free(&h);
    free(v);
}

static double draw_uniform(cu_rng *r)
{
    return 0.001 + cu_rng_double(r) * 1e6;
}
static double draw_lognormal(cu_rng *r)
{
    double u1 = cu_rng_double(r), u2 = cu_rng_double(r);
    double z = sqrt(-2 * log(1 - u1)) * cos(2 * M_PI * u2);
    return exp(3 + 2.5 * z); /* spans ~1e-3 .. 1e6 */
}

static void test_accuracy(void **state)
{
    (void)state;
    check_accuracy(draw_uniform);
    check_accuracy(draw_lognormal);
}

static uint64_t bin_at(const hist *h, int32_t key)
{
    if (!h->bins || key < h->offset || key >= h->offset + (int32_t)h->nbins)
        return 0;
    return h->bins[key - h->offset];
}

static void assert_same_bins(const hist *a, const hist *b)
{
    assert_int_equal(a->count, b->count);
    assert_int_equal(a->zero_count, b->zero_count);
    assert_double_eq(a->min, b->min);
    assert_double_eq(a->max, b->max);
    int32_t lo = a->offset < b->offset ? a->offset : b->offset;
    int32_t hi = a->offset + (int32_t)a->nbins;
    if (b->offset + (int32_t)b->nbins > hi)
        hi = b->offset + (int32_t)b->nbins;
    for (int32_t k = lo; k < hi; k++)
        if (bin_at(a, k) != bin_at(b, k)) {
            print_error("key %d: %llu != %llu\n", k, (unsigned long long)bin_at(a, k),
                        (unsigned long long)bin_at(b, k));
            fail();
        }
    for (int i = 0; i <= 100; i++)
        assert_double_eq(hist_quantile(a, i / 100.0), hist_quantile(b, i / 100.0));
}

static void test_merge(void **state)
{
    (void)state;
    cu_rng r;
    cu_rng_seed(&r, 99);
    hist a, b, all;
    hist_init(&a);
    hist_init(&b);
    hist_init(&all);
    /* disjoint-ish ranges so the merge must grow dst both ways */
    for (int i = 0; i < 20000; i++) {
        double v = exp(cu_rng_double(&r) * 6); /* 1 .. 400 */
        double w = i % 3 ? 0.01 + cu_rng_double(&r) : 1e4 + cu_rng_double(&r) * 1e5;
        if (i % 50 == 0)
            v = 0;
        hist_record(&a, v);
        hist_record(&b, w);
        hist_record(&all, v);
        hist_record(&all, w);
    }
    hist m;
    hist_init(&m);
    hist_merge(&m, &a); /* into empty */
    hist_merge(&m, &b);
    assert_same_bins(&m, &all);
    assert_true(fabs(m.sum - all.sum) <= 1e-9 * all.sum);

    hist c; /* order does not matter */
    hist_init(&c);
    hist_copy(&c, &b);
    hist_merge(&c, &a);
    assert_same_bins(&c, &all);

    hist e; /* empty sources change nothing */
    hist_init(&e);
    hist_merge(&c, &e);
    assert_same_bins(&c, &all);
    hist_free(&a);
    hist_free(&b);
    hist_free(&all);
    hist_free(&m);
    hist_free(&c);
    hist_free(&e);
}

static void test_empty_zero(void **state)
{
    (void)state;
    hist h;
    hist_init(&h);
    assert_double_eq(hist_quantile(&h, 0.5), 0);
    assert_double_eq(hist_quantile(&h, 1), 0);
    assert_double_eq(hist_mean(&h), 0);
    hist e;
    hist_init(&e);
    hist_merge(&h, &e);
    assert_int_equal(h.count, 0);
    hist_copy(&h, &e);
    assert_int_equal(h.count, 0);

    for (int i = 0; i < 10; i++)
        hist_record(&h, 0);
    hist_record(&h, -3); /* negatives count as zero */
    assert_null(h.bins);
    assert_int_equal(h.zero_count, 11);
    assert_double_eq(h.min, -3);
    assert_double_eq(h.max, 0);
    assert_double_eq(hist_quantile(&h, 1), 0);
    /* 11 zeros + one 7: rank(0.95) = 10.45 < 11 -> 0; rank(1) = 11 -> 7's bucket */
    hist_record(&h, 7);
    assert_double_eq(hist_quantile(&h, 0.95), 0);
    assert_double_eq(stats_round1(hist_quantile(&h, 1)), 7);
    assert_double_eq(hist_quantile(&h, 0), 0);
    hist_record_n(&h, 5, 0); /* no-op */
    assert_int_equal(h.count, 12);
    hist_record_n(&h, 5, 100);
    assert_int_equal(h.count, 112);
    assert_double_eq(h.sum, -3 + 7 + 500);
    assert_double_eq(stats_round1(hist_quantile(&h, 0.5)), 5);
    hist_free(&h);
    hist_free(&e);
}

static void test_huge_tiny(void **state)
{
    (void)state;
    hist h;
    hist_init(&h);
    hist_record(&h, 1e300);
    hist_record(&h, DBL_MAX);
    hist_record(&h, INFINITY);
    hist_record(&h, 1e-300);
    hist_record(&h, 1e6);
    assert_int_equal(h.count, 5);
    assert_int_equal(h.zero_count, 0);
    double q0 = hist_quantile(&h, 0), q1 = hist_quantile(&h, 1);
    assert_true(q0 > 0.98e-300 && q0 < 1.02e-300);
    assert_true(isfinite(q1) && q1 > 1e308);
    assert_true(fabs(hist_quantile(&h, 0.25) - 1e6) <= 0.01 * 1e6);
    assert_true(fabs(hist_quantile(&h, 0.5) - 1e300) <= 0.01 * 1e300);
    assert_double_eq(h.max, INFINITY);
    hist_free(&h);
}

static void test_reset(void **state)
{
    (void)state;
    hist h;
    hist_init(&h);
    fill(&h, 10000, gen_mixed);
    uint64_t *bins = h.bins;
    uint32_t n = h.nbins;
    int32_t off = h.offset;
    hist_reset(&h);
    assert_int_equal(h.count, 0);
    assert_int_equal(h.zero_count, 0);
    assert_double_eq(h.sum, 0);
    assert_double_eq(hist_quantile(&h, 0.5), 0);
    assert_ptr_equal(h.bins, bins);
    assert_int_equal(h.nbins, n);
    /* same data again: no reallocation, same answers as a fresh sketch */
    fill(&h, 10000, gen_mixed);
    assert_ptr_equal(h.bins, bins);
    assert_int_equal(h.offset, off);
    hist f;
    hist_init(&f);
    fill(&f, 10000, gen_mixed);
    assert_same_bins(&h, &f);
    hist_free(&h);
    hist_free(&f);
}

/* ---- mset ------------------------------------------------------------------ */

static void test_mset_basic(void **state)
{
    (void)state;
    mset *m = mset_new(1700000000000);
    assert_int_equal(mset_period(m), 1700000000000);
    assert_true(mset_empty(m));
    mset_times t = mset_get_times(m);
    assert_int_equal(t.first_counter, -1);
    assert_int_equal(t.last_histogram, -1);

    mset_count(m, "vusers.created", 1, 1000);
    mset_count(m, "http.requests", 1, 1005);
    mset_count(m, "vusers.created", 1, 1010);
    mset_count(m, "vusers.failed", 0, 1020);
    mset_rate(m, "http.request_rate", 1003);
    mset_rate(m, "http.request_rate", 1050);
    mset_summary(m, "http.response_time", 4, 1100);
    mset_summary(m, "http.response_time", 0, 1200);
    mset_summary(m, "vusers.session_length", 12.5, 1300);
    assert_false(mset_empty(m));

    assert_int_equal(mset_len(m, MSET_COUNTER), 3);
    assert_string_equal(mset_at(m, MSET_COUNTER, 0)->name, "vusers.created");
    assert_string_equal(mset_at(m, MSET_COUNTER, 1)->name, "http.requests");
    assert_string_equal(mset_at(m, MSET_COUNTER, 2)->name, "vusers.failed");
    assert_null(mset_at(m, MSET_COUNTER, 3));
    assert_int_equal(mset_at(m, MSET_COUNTER, 0)->value, 2);
    assert_int_equal(mset_at(m, MSET_COUNTER, 2)->value, 0);

    assert_int_equal(mset_len(m, MSET_RATE), 1);
    const mset_entry *r = mset_at(m, MSET_RATE, 0);
    assert_int_equal(r->value, 2);
    assert_int_equal(r->first_ms, 1003);
    assert_int_equal(r->last_ms, 1050);

    assert_int_equal(mset_len(m, MSET_SUMMARY), 2);
    const mset_entry *s = mset_find(m, "http.response_time", MSET_SUMMARY);
    assert_non_null(s);
    assert_int_equal(s->h.count, 2);
    assert_double_eq(s->h.max, 4);
    assert_null(mset_find(m, "http.response_time", MSET_COUNTER));
    assert_null(mset_find(m, "nope", MSET_COUNTER));

    t = mset_get_times(m);
    assert_int_equal(t.first_counter, 1000); /* rates count as counters */
    assert_int_equal(t.last_counter, 1050);
    assert_int_equal(t.first_histogram, 1100);
    assert_int_equal(t.last_histogram, 1300);

    /* kinds are separate name spaces; get() returns stable pointers */
    mset_entry *c = mset_get(m, "http.response_time", MSET_COUNTER);
    assert_ptr_not_equal(c, s);
    assert_int_equal(mset_len(m, MSET_COUNTER), 4);
    mset_entry *hot = mset_get(m, "hot", MSET_COUNTER);
    char name[32];
    for (int i = 0; i < 1000; i++) { /* force several rehashes */
        snprintf(name, sizeof name, "c.%d", i);
        mset_count(m, name, i, 2000 + i);
    }
    assert_ptr_equal(mset_get(m, "hot", MSET_COUNTER), hot);
    mset_entry_count(m, hot, 5, 900);
    assert_int_equal(hot->value, 5);
    assert_int_equal(mset_get_times(m).first_counter, 900);
    assert_int_equal(mset_get_times(m).last_counter, 2999);
    assert_int_equal(mset_len(m, MSET_COUNTER), 1005);
    for (int i = 0; i < 1000; i++) {
        const mset_entry *e = mset_at(m, MSET_COUNTER, 5 + (size_t)i);
        snprintf(name, sizeof name, "c.%d", i);
        assert_string_equal(e->name, name);
        assert_int_equal(e->value, i);
        assert_ptr_equal(mset_find(m, name, MSET_COUNTER), e);
    }
    mset_free(m);
}

static void test_mset_merge(void **state)
{
    (void)state;
    mset *a = mset_new(10000), *b = mset_new(10000);
    mset_count(a, "x", 1, 12000);
    mset_count(a, "y", 2, 12500);
    mset_rate(a, "rate", 12100);
    mset_summary(a, "lat", 10, 13000);

    mset_count(b, "z", 7, 11000);
    mset_count(b, "y", 3, 11500);
    mset_count(b, "w", 1, 19000);
    mset_rate(b, "rate", 11900);
    mset_rate(b, "rate", 18000);
    mset_rate(b, "rate2", 15000);
    mset_summary(b, "lat2", 1, 14000);
    mset_summary(b, "lat", 1000, 14500);

    mset_merge(a, b);
    static const char *order[] = {"x", "y", "z", "w"};
    static const int64_t vals[] = {1, 5, 7, 1};
    assert_int_equal(mset_len(a, MSET_COUNTER), 4);
    for (int i = 0; i < 4; i++) {
        assert_string_equal(mset_at(a, MSET_COUNTER, (size_t)i)->name, order[i]);
        assert_int_equal(mset_at(a, MSET_COUNTER, (size_t)i)->value, vals[i]);
    }
    assert_int_equal(mset_len(a, MSET_RATE), 2);
    const mset_entry *r = mset_at(a, MSET_RATE, 0);
    assert_string_equal(r->name, "rate");
    assert_int_equal(r->value, 3);
    assert_int_equal(r->first_ms, 11900);
    assert_int_equal(r->last_ms, 18000);
    assert_string_equal(mset_at(a, MSET_RATE, 1)->name, "rate2");
    assert_int_equal(mset_len(a, MSET_SUMMARY), 2);
    const mset_entry *l = mset_at(a, MSET_SUMMARY, 0);
    assert_string_equal(l->name, "lat");
    assert_int_equal(l->h.count, 2);
    assert_double_eq(l->h.min, 10);
    assert_double_eq(l->h.max, 1000);
    assert_string_equal(mset_at(a, MSET_SUMMARY, 1)->name, "lat2");

    mset_times t = mset_get_times(a);
    assert_int_equal(t.first_counter, 11000);
    assert_int_equal(t.last_counter, 19000);
    assert_int_equal(t.first_histogram, 13000);
    assert_int_equal(t.last_histogram, 14500);

    /* merging into an empty set copies; merging an empty set is a no-op */
    mset *e = mset_new(10000);
    mset_merge(e, a);
    assert_int_equal(mset_len(e, MSET_COUNTER), 4);
    assert_string_equal(mset_at(e, MSET_COUNTER, 3)->name, "w");
    mset *none = mset_new(10000);
    mset_merge(e, none);
    t = mset_get_times(e);
    assert_int_equal(t.first_counter, 11000);
    assert_int_equal(t.last_histogram, 14500);
    mset_merge(none, none);
    assert_true(mset_empty(none));
    assert_int_equal(mset_get_times(none).first_histogram, -1);
    mset_free(a);
    mset_free(b);
    mset_free(e);
    mset_free(none);
    mset_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mapping_constants),
        cmocka_unit_test(test_worked_values),
        cmocka_unit_test(test_round1),
        cmocka_unit_test(test_js_datasets),
        cmocka_unit_test(test_ulp_robust),
        cmocka_unit_test(test_accuracy),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_empty_zero),
        cmocka_unit_test(test_huge_tiny),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_mset_basic),
        cmocka_unit_test(test_mset_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
