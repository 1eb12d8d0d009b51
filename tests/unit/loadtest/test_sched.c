/* Unit tests for the arrival schedule (loadtest/sched.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "loadtest/script.h"

#define S 1000000000ull

static lt_phase rate(double r, double d)
{
    return (lt_phase){.kind = LT_PHASE_RATE, .rate = r, .duration_s = d};
}

static lt_phase ramp(double a, double b, double d)
{
    return (lt_phase){.kind = LT_PHASE_RAMP, .rate = a, .ramp_to = b, .duration_s = d};
}

static lt_phase count(uint64_t c, double d)
{
    return (lt_phase){.kind = LT_PHASE_COUNT, .count = c, .duration_s = d};
}

static lt_phase pause_(double d)
{
    return (lt_phase){.kind = LT_PHASE_PAUSE, .duration_s = d};
}

/* Runs the whole schedule: checks times never go back, that each arrival lies
 * inside its phase, and that per-phase totals equal lt_phase_arrivals. */
static uint64_t run_all(const lt_phase *ph, size_t n, uint64_t *per_phase)
{
    lt_sched s;
    lt_sched_init(&s, ph, n);
    uint64_t t, last = 0, total = 0;
    size_t p;
    memset(per_phase, 0, n * sizeof *per_phase);
    while (lt_sched_next(&s, &t, &p)) {
        assert_true(t >= last);
        assert_true(p < n);
        uint64_t start = lt_phase_start_ns(ph, p);
        assert_true(t >= start);
        assert_true(t < start + lt_phase_duration_ns(&ph[p]));
        per_phase[p]++;
        last = t;
        total++;
    }
    assert_false(lt_sched_next(&s, &t, &p)); /* stays over */
    for (size_t i = 0; i < n; i++)
        assert_int_equal(per_phase[i], lt_phase_arrivals(&ph[i]));
    return total;
}

static void test_ramp_up(void **state)
{
    (void)state;
    lt_phase p = ramp(10, 100, 120);
    uint64_t want_head[] = {10, 11, 12, 12, 13};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(lt_ramp_count(&p, i), want_head[i]);
    assert_int_equal(lt_ramp_count(&p, 117), 98);
    assert_int_equal(lt_ramp_count(&p, 118), 99);
    assert_int_equal(lt_ramp_count(&p, 119), 100);
    assert_int_equal(lt_ramp_count(&p, 120), 0);
    assert_int_equal(lt_phase_arrivals(&p), 6600);
    /* the schedule gives exactly those counts per second, evenly spread */
    lt_sched s;
    lt_sched_init(&s, &p, 1);
    uint64_t per_sec[121] = {0}, t;
    size_t ph;
    while (lt_sched_next(&s, &t, &ph)) {
        assert_true(t / S < 120);
        per_sec[t / S]++;
    }
    for (uint64_t i = 0; i < 120; i++)
        assert_int_equal(per_sec[i], lt_ramp_count(&p, i));
    lt_sched_init(&s, &p, 1);
    for (int i = 0; i < 10; i++) {
        assert_true(lt_sched_next(&s, &t, &ph));
        assert_int_equal(t, (uint64_t)i * S / 10);
    }
    assert_true(lt_sched_next(&s, &t, &ph));
    assert_int_equal(t, S); /* second 1 starts with its 11 arrivals */
    assert_true(lt_sched_next(&s, &t, &ph));
    assert_int_equal(t, S + S / 11);
}

static void test_ramp_down_and_edges(void **state)
{
    (void)state;
    lt_phase p = ramp(100, 10, 60);
    assert_int_equal(lt_phase_arrivals(&p), 3300);
    assert_int_equal(lt_ramp_count(&p, 0), 100);
    assert_int_equal(lt_ramp_count(&p, 59), 10);
    /* one second: Artillery's floor((a+b)/2) */
    p = ramp(1, 4, 1);
    assert_int_equal(lt_ramp_count(&p, 0), 2);
    assert_int_equal(lt_phase_arrivals(&p), 2);
    /* from 0 */
    p = ramp(0, 10, 11);
    assert_int_equal(lt_ramp_count(&p, 0), 0);
    assert_int_equal(lt_ramp_count(&p, 10), 10);
    assert_int_equal(lt_phase_arrivals(&p), 55);
    /* fractional duration: floor(D) periods, the phase still lasts D */
    lt_phase two[] = {ramp(10, 20, 2.5), rate(1, 1)};
    assert_int_equal(lt_ramp_count(&two[0], 0), 10);
    assert_int_equal(lt_ramp_count(&two[0], 1), 20);
    assert_int_equal(lt_ramp_count(&two[0], 2), 0);
    assert_int_equal(lt_phase_duration_ns(&two[0]), 2500000000ull);
    assert_int_equal(lt_phase_start_ns(two, 1), 2500000000ull);
    uint64_t per[2];
    assert_int_equal(run_all(two, 2, per), 31);
    /* shorter than a second, negative: nothing */
    p = ramp(10, 20, 0.5);
    assert_int_equal(lt_phase_arrivals(&p), 0);
    p = ramp(-10, -5, 10);
    assert_int_equal(lt_phase_arrivals(&p), 0);
}

static void test_rate(void **state)
{
    (void)state;
    lt_phase p = rate(50, 10);
    uint64_t per[1];
    assert_int_equal(lt_phase_arrivals(&p), 500);
    assert_int_equal(run_all(&p, 1, per), 500);
    p = rate(30, 10); /* Artillery's 33 ms tick gives 303 */
    assert_int_equal(run_all(&p, 1, per), 300);
    p = rate(0.5, 10);
    assert_int_equal(run_all(&p, 1, per), 5);
    lt_sched s;
    lt_sched_init(&s, &p, 1);
    uint64_t t;
    size_t ph;
    for (uint64_t k = 0; k < 5; k++) {
        assert_true(lt_sched_next(&s, &t, &ph));
        assert_int_equal(t, k * 2 * S);
        assert_int_equal(ph, 0);
    }
    assert_false(lt_sched_next(&s, &t, &ph));
    /* 3/s: times rounded to the nanosecond, no drift */
    p = rate(3, 100);
    lt_sched_init(&s, &p, 1);
    for (uint64_t k = 0; k < 300; k++) {
        assert_true(lt_sched_next(&s, &t, &ph));
        assert_int_equal(t, (k * S * 10 / 3 + 5) / 10);
    }
    assert_false(lt_sched_next(&s, &t, &ph));
    p = rate(0, 10);
    assert_int_equal(lt_phase_arrivals(&p), 0);
    p = rate(1000, 0.0025); /* 2.5 -> 3, all inside the 2.5 ms */
    assert_int_equal(run_all(&p, 1, per), 3);
}

static void test_count(void **state)
{
    (void)state;
    lt_phase p = count(7, 10);
    uint64_t per[1];
    assert_int_equal(run_all(&p, 1, per), 7);
    lt_sched s;
    lt_sched_init(&s, &p, 1);
    uint64_t t;
    size_t ph;
    for (uint64_t k = 0; k < 7; k++) {
        assert_true(lt_sched_next(&s, &t, &ph));
        assert_int_equal(t, (k * 10 * S * 10 / 7 + 5) / 10);
    }
    p = count(1, 1); /* Artillery's default phase */
    lt_sched_init(&s, &p, 1);
    assert_true(lt_sched_next(&s, &t, &ph));
    assert_int_equal(t, 0);
    assert_false(lt_sched_next(&s, &t, &ph));
    p = count(0, 5);
    assert_int_equal(run_all(&p, 1, per), 0);
}

static void test_phases_back_to_back(void **state)
{
    (void)state;
    lt_phase ph[] = {rate(2, 3), pause_(5), count(4, 2), ramp(1, 3, 3), pause_(1.5), rate(1, 2)};
    size_t n = CU_ARRAY_LEN(ph);
    uint64_t starts[] = {0, 3 * S, 8 * S, 10 * S, 13 * S, 14500000000ull};
    for (size_t i = 0; i < n; i++)
        assert_int_equal(lt_phase_start_ns(ph, i), starts[i]);
    uint64_t per[6];
    assert_int_equal(run_all(ph, n, per), 6 + 0 + 4 + 6 + 0 + 2);
    assert_int_equal(per[1], 0);
    assert_int_equal(per[4], 0);
    /* exact times at the seams */
    lt_sched s;
    lt_sched_init(&s, ph, n);
    uint64_t want[] = {0, S / 2, S, 3 * S / 2, 2 * S, 5 * S / 2,             /* rate 2/s x 3 s */
                       8 * S, 8 * S + S / 2, 9 * S, 9 * S + S / 2,           /* count 4 in 2 s */
                       10 * S, 11 * S, 11 * S + S / 2,                       /* ramp: 1, 2, */
                       12 * S, 12 * S + S / 3, 12 * S + 2 * S / 3,           /* 3 per second */
                       14500000000ull, 15500000000ull};                      /* after 1.5 s pause */
    size_t wphase[] = {0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 5, 5};
    uint64_t t;
    size_t p, j = 0;
    while (lt_sched_next(&s, &t, &p)) {
        assert_true(j < CU_ARRAY_LEN(want));
        assert_int_equal(t, want[j]);
        assert_int_equal(p, wphase[j]);
        j++;
    }
    assert_int_equal(j, CU_ARRAY_LEN(want));
    /* no phases at all */
    lt_sched_init(&s, NULL, 0);
    assert_false(lt_sched_next(&s, &t, &p));
}

static void test_lego_api(void **state)
{
    (void)state;
    /* cases/lego-api/load-test.yml: warm-up, ramp-up, sustained, ramp-down */
    lt_phase ph[] = {rate(10, 60), ramp(10, 100, 120), rate(100, 600), ramp(100, 10, 60)};
    uint64_t per[4];
    assert_int_equal(run_all(ph, 4, per), 600 + 6600 + 60000 + 3300);
    assert_int_equal(lt_phase_start_ns(ph, 1), 60 * S);
    assert_int_equal(lt_phase_start_ns(ph, 2), 180 * S);
    assert_int_equal(lt_phase_start_ns(ph, 3), 780 * S);
    assert_int_equal(lt_phase_start_ns(ph, 4), 840 * S);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ramp_up),   cmocka_unit_test(test_ramp_down_and_edges),
        cmocka_unit_test(test_rate),      cmocka_unit_test(test_count),
        cmocka_unit_test(test_phases_back_to_back), cmocka_unit_test(test_lego_api),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
