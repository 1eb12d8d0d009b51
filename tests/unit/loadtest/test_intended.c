/* Unit tests for the intended clock of --latency-from-intended
 * (loadtest/internal.h): a user's requests measured from when they should
 * have been sent, not from when the generator got round to sending them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "loadtest/internal.h"

#define MS 1000000ull

/* The first request counts from the intended arrival: its lag is in. */
static void test_first_request_from_intended_arrival(void **state)
{
    (void)state;
    lt_intended c;
    lt_intended_start(&c, 1000 * MS);          /* due at 1000 ms, started late, */
    double ms = lt_intended_response(&c, 1130 * MS); /* answered at 1130 ms */
    assert_true(ms == 130.0);
    assert_true(c.next_ns == 1130 * MS);        /* the next one is due at once */
}

/* A think moves the due time by the think as scheduled, whenever its timer
 * actually fires: a late timer (or a late send) counts. */
static void test_think_as_scheduled(void **state)
{
    (void)state;
    lt_intended c;
    lt_intended_start(&c, 0);
    assert_true(lt_intended_response(&c, 20 * MS) == 20.0);
    lt_intended_think(&c, 500);                 /* due at 520 ms */
    /* the timer fired at 600 ms, the response took 10 ms: 90 ms late + 10 */
    assert_true(lt_intended_response(&c, 610 * MS) == 90.0);
    lt_intended_think(&c, 0);                   /* a zero think changes nothing */
    assert_true(lt_intended_response(&c, 615 * MS) == 5.0);
    lt_intended_think(&c, 100);
    lt_intended_think(&c, 100);                 /* two thinks in a row add up */
    assert_true(c.next_ns == 815 * MS);
}

/* A response completing before its due time (a timer firing early by
 * the loop's millisecond rounding) counts as 0, never as negative. */
static void test_never_negative(void **state)
{
    (void)state;
    lt_intended c;
    lt_intended_start(&c, 100 * MS);
    assert_true(lt_intended_response(&c, 99 * MS) == 0.0);
    assert_true(c.next_ns == 99 * MS);
}

/* Each redirect hop is a response: the next hop is due at once. */
static void test_hops_chain(void **state)
{
    (void)state;
    lt_intended c;
    lt_intended_start(&c, 0);
    double total = 0;
    for (uint64_t t = 10; t <= 50; t += 10)
        total += lt_intended_response(&c, t * MS);
    assert_true(total == 50.0);                 /* five 10 ms hops back to back */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_request_from_intended_arrival),
        cmocka_unit_test(test_think_as_scheduled),
        cmocka_unit_test(test_never_negative),
        cmocka_unit_test(test_hops_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
