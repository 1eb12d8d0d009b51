/* Unit tests for the colour choice: the sticky bucket hash (uniform,
 * stable, monotonic in the weight), smooth weighted round-robin (exact
 * shares, spread rather than bursts, weight changes), cookies, weights. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router/router_int.h"

#define NKEYS 20000

static void key(char *buf, size_t n, int i)
{
    snprintf(buf, n, "user-%d", i);
}

static void test_bucket_range_and_stability(void **state)
{
    (void)state;
    char k[32];
    for (int i = 0; i < NKEYS; i++) {
        key(k, sizeof k, i);
        uint32_t b = rt_bucket_of(k, strlen(k));
        assert_true(b < RT_BUCKETS);
        assert_int_equal(b, rt_bucket_of(k, strlen(k)));
    }
    /* the key is the bytes, not a C string: the length matters */
    assert_int_not_equal(rt_bucket_of("abc", 3), rt_bucket_of("abc", 2));
}

static void test_bucket_uniform(void **state)
{
    (void)state;
    /* 20 classes of 500 buckets: each should get 1/20 of the keys */
    int cls[20] = {0};
    char k[32];
    for (int i = 0; i < NKEYS; i++) {
        key(k, sizeof k, i);
        cls[rt_bucket_of(k, strlen(k)) / 500]++;
    }
    for (int c = 0; c < 20; c++) {
        if (abs(cls[c] - NKEYS / 20) > 120) {
            print_error("class %d has %d keys, expected %d +- 120\n", c, cls[c], NKEYS / 20);
            fail();
        }
    }
}

static void test_sticky_monotonic(void **state)
{
    (void)state;
    static uint32_t buckets[NKEYS];
    char k[32];
    for (int i = 0; i < NKEYS; i++) {
        key(k, sizeof k, i);
        buckets[i] = rt_bucket_of(k, strlen(k));
    }
    router_color prev[NKEYS];
    for (int i = 0; i < NKEYS; i++)
        prev[i] = ROUTER_BLUE;
    for (int bp = 0; bp <= RT_BUCKETS; bp += 37) {
        int green = 0;
        for (int i = 0; i < NKEYS; i++) {
            router_color c = rt_sticky_color(buckets[i], bp);
            /* raising the weight never moves a user green -> blue */
            if (prev[i] == ROUTER_GREEN && c != ROUTER_GREEN) {
                print_error("key %d went back to blue at bp %d\n", i, bp);
                fail();
            }
            prev[i] = c;
            green += c == ROUTER_GREEN;
        }
        double share = 100.0 * green / NKEYS, want = bp / 100.0;
        if (fabs(share - want) > 1.5) {
            print_error("bp %d: share %.2f%%, want %.2f%%\n", bp, share, want);
            fail();
        }
    }
    for (int i = 0; i < NKEYS; i++)
        assert_int_equal(rt_sticky_color(buckets[i], RT_BUCKETS), ROUTER_GREEN);
    for (int i = 0; i < NKEYS; i++)
        assert_int_equal(rt_sticky_color(buckets[i], 0), ROUTER_BLUE);
    /* the boundary: bucket b is green exactly from weight b+1 bp on */
    assert_int_equal(rt_sticky_color(1234, 1234), ROUTER_BLUE);
    assert_int_equal(rt_sticky_color(1234, 1235), ROUTER_GREEN);
}

static void test_swrr_exact_shares(void **state)
{
    (void)state;
    const int bps[] = {0, 1, 50, 1234, 5000, 9000, 9999, 10000};
    for (size_t w = 0; w < CU_ARRAY_LEN(bps); w++) {
        rt_swrr s = {{0, 0}};
        int green = 0;
        for (int i = 0; i < 100000; i++)
            green += rt_swrr_next(&s, bps[w]) == ROUTER_GREEN;
        /* the realised share is exact to one pick per 10,000 */
        int want = bps[w] * 10;
        if (abs(green - want) > 1) {
            print_error("bp %d: %d greens of 100000, want %d\n", bps[w], green, want);
            fail();
        }
    }
}

static void test_swrr_spread(void **state)
{
    (void)state;
    /* 10 %: every window of 10 consecutive picks has exactly one green */
    rt_swrr s = {{0, 0}};
    router_color seq[1000];
    for (int i = 0; i < 1000; i++)
        seq[i] = rt_swrr_next(&s, 1000);
    for (int i = 0; i + 10 <= 1000; i += 10) {
        int g = 0;
        for (int k = 0; k < 10; k++)
            g += seq[i + k] == ROUTER_GREEN;
        assert_int_equal(g, 1);
    }
    /* 50 %: strictly alternating */
    rt_swrr h = {{0, 0}};
    router_color last = rt_swrr_next(&h, 5000);
    for (int i = 0; i < 100; i++) {
        router_color c = rt_swrr_next(&h, 5000);
        assert_int_not_equal(c, last);
        last = c;
    }
    /* 90 %: never two blues in a row */
    rt_swrr n = {{0, 0}};
    last = ROUTER_GREEN;
    for (int i = 0; i < 1000; i++) {
        router_color c = rt_swrr_next(&n, 9000);
        assert_false(c == ROUTER_BLUE && last == ROUTER_BLUE);
        last = c;
    }
}

static void test_swrr_weight_change(void **state)
{
    (void)state;
    rt_swrr s = {{0, 0}};
    for (int i = 0; i < 777; i++)
        rt_swrr_next(&s, 3000);
    /* after a change the new share holds over the next picks, from the first */
    int green = 0;
    for (int i = 0; i < 10000; i++)
        green += rt_swrr_next(&s, 8000) == ROUTER_GREEN;
    assert_in_range(green, 7999, 8001);
    for (int i = 0; i < 100; i++)
        assert_int_equal(rt_swrr_next(&s, 0), ROUTER_BLUE);
    for (int i = 0; i < 100; i++)
        assert_int_equal(rt_swrr_next(&s, 10000), ROUTER_GREEN);
}

static void test_cookie_find(void **state)
{
    (void)state;
    size_t n;
    const char *h = "theme=dark; uid=abc123; x=1";
    const char *v = rt_cookie_find(h, strlen(h), "uid", &n);
    assert_non_null(v);
    assert_int_equal(n, 6);
    assert_memory_equal(v, "abc123", 6);
    v = rt_cookie_find(h, strlen(h), "x", &n);
    assert_true(v && n == 1 && *v == '1');
    assert_null(rt_cookie_find(h, strlen(h), "ui", &n));
    assert_null(rt_cookie_find(h, strlen(h), "id", &n));
    const char *q = "a=\"quoted v\";uid = spaced ;bare";
    v = rt_cookie_find(q, strlen(q), "a", &n);
    assert_true(v && n == 8 && !memcmp(v, "quoted v", 8));
    v = rt_cookie_find(q, strlen(q), "uid", &n);
    assert_true(v && n == 6 && !memcmp(v, "spaced", 6));
    assert_null(rt_cookie_find(q, strlen(q), "bare", &n));
    assert_null(rt_cookie_find("", 0, "uid", &n));
}

static void test_weight_bp(void **state)
{
    (void)state;
    assert_int_equal(rt_weight_bp(0), 0);
    assert_int_equal(rt_weight_bp(100), 10000);
    assert_int_equal(rt_weight_bp(12.34), 1234);
    assert_int_equal(rt_weight_bp(0.01), 1);
    assert_int_equal(rt_weight_bp(33.333), 3333);
    assert_int_equal(rt_weight_bp(-0.01), -1);
    assert_int_equal(rt_weight_bp(100.01), -1);
    assert_int_equal(rt_weight_bp(NAN), -1);
    assert_int_equal(rt_weight_bp(INFINITY), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_range_and_stability),
        cmocka_unit_test(test_bucket_uniform),
        cmocka_unit_test(test_sticky_monotonic),
        cmocka_unit_test(test_swrr_exact_shares),
        cmocka_unit_test(test_swrr_spread),
        cmocka_unit_test(test_swrr_weight_change),
        cmocka_unit_test(test_cookie_find),
        cmocka_unit_test(test_weight_bp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
