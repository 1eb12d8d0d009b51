/* Unit tests for message-head spans and the hop-by-hop rule used when
 * forwarding both ways (proxy.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "router/proxy.h"

static void add(rt_head *h, const char *name, const char *value)
{
    assert_int_equal(rt_head_field(h, name, strlen(name), 10), 0);
    rt_head_field_done(h);
    rt_head_value(h, value, strlen(value));
    rt_head_value_done(h);
}

static bool hop(const rt_head *h, const char *name, bool request)
{
    return rt_hop_by_hop(h, name, strlen(name), request);
}

static void test_spans_and_find(void **state)
{
    (void)state;
    rt_head h;
    memset(&h, 0, sizeof h);
    add(&h, "Host", "x");
    add(&h, "X-Trail", "a b \t ");
    /* a name split over two callbacks is one name */
    assert_int_equal(rt_head_field(&h, "X-Sp", 4, 10), 0);
    assert_int_equal(rt_head_field(&h, "lit", 3, 10), 0);
    rt_head_field_done(&h);
    rt_head_value_done(&h); /* empty value */
    size_t vl;
    const char *v = rt_head_find(&h, "x-trail", &vl);
    assert_non_null(v);
    assert_int_equal(vl, 3);          /* trailing whitespace trimmed */
    assert_memory_equal(v, "a b", 3);
    v = rt_head_find(&h, "X-SPLIT", &vl);
    assert_non_null(v);
    assert_int_equal(vl, 0);
    assert_null(rt_head_find(&h, "X-Sp", &vl));
    /* the count limit */
    for (int i = 0; i < 7; i++)
        add(&h, "X-N", "1");
    assert_int_equal(rt_head_field(&h, "X-Over", 6, 10), -1);
    rt_head_reset(&h);
    assert_null(rt_head_find(&h, "host", &vl));
    rt_head_free(&h);
}

static void test_hop_by_hop(void **state)
{
    (void)state;
    rt_head h;
    memset(&h, 0, sizeof h);
    add(&h, "Connection", "keep-alive, X-Private ,Upgrade");
    add(&h, "connection", "x-other");
    const char *always[] = {"Connection", "keep-alive", "Proxy-Connection", "TE", "Trailer",
                            "Transfer-Encoding", "upgrade", "Content-Length", "Via"};
    for (size_t i = 0; i < CU_ARRAY_LEN(always); i++) {
        assert_true(hop(&h, always[i], true));
        assert_true(hop(&h, always[i], false));
    }
    /* named by Connection (any of its headers, any case) */
    assert_true(hop(&h, "x-private", true));
    assert_true(hop(&h, "X-Other", false));
    assert_false(hop(&h, "X-Privat", true));
    /* rewritten by the router on requests only */
    assert_true(hop(&h, "X-Forwarded-For", true));
    assert_true(hop(&h, "X-Forwarded-Proto", true));
    assert_true(hop(&h, "Expect", true));
    assert_false(hop(&h, "X-Forwarded-For", false));
    assert_false(hop(&h, "Host", true));
    assert_false(hop(&h, "Content-Type", false));
    assert_false(hop(&h, "Set-Cookie", false));
    rt_head_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spans_and_find),
        cmocka_unit_test(test_hop_by_hop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
