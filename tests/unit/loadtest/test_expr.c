/* Unit tests for ensure's expression language (loadtest/expr.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "loadtest/script.h"

static const struct { const char *name; double v; } vars[] = {
    {"http.response_time.p95", 180},
    {"http.response_time.p99", 420.5},
    {"http.codes.200", 500},
    {"vusers.created", 1000},
    {"vusers.completed", 990},
    {"vusers.failed", 10},
    {"plugins.metrics-by-endpoint.response_time./api/mocs.p95", 95},
    {"it's", 1},
    {"a[0]", 3},
    {"a['x']", 4},
    {"android", 2},
    {"$x_1", 6},
    {"zero", 0},
};

static int lookups;

static bool lookup(const char *name, double *v, void *arg)
{
    (void)arg;
    lookups++;
    for (size_t i = 0; i < CU_ARRAY_LEN(vars); i++)
        if (strcmp(vars[i].name, name) == 0) {
            *v = vars[i].v;
            return true;
        }
    return false;
}

static double ev(const char *src, bool *unknown)
{
    char err[CU_ERRLEN];
    lt_expr *e = lt_expr_compile(src, err);
    if (!e)
        fail_msg("'%s' does not compile: %s", src, err);
    double v = lt_expr_eval(e, lookup, NULL, unknown);
    lt_expr_free(e);
    return v;
}

static void check(const char *src, double want)
{
    bool unknown = true;
    double got = ev(src, &unknown);
    if (!(got == want || (isnan(got) && isnan(want))))
        fail_msg("'%s' = %.17g, expected %.17g", src, got, want);
    assert_false(unknown);
}

static void check_error(const char *src, const char *want)
{
    char err[CU_ERRLEN];
    lt_expr *e = lt_expr_compile(src, err);
    if (e) {
        lt_expr_free(e);
        fail_msg("'%s' compiled, expected error '%s'", src, want);
    }
    if (strcmp(err, want) != 0)
        fail_msg("'%s': error\n  '%s', expected\n  '%s'", src, err, want);
}

static void test_precedence(void **state)
{
    (void)state;
    check("1 + 2 * 3", 7);
    check("(1 + 2) * 3", 9);
    check("2 * 3 ^ 2", 18);
    check("2 ^ 3 ^ 2", 64);        /* left-associative, as filtrex's grammar */
    check("-2 ^ 2", 4);            /* unary minus binds tighter than ^ */
    check("2 ^ -1", 0.5);
    check("10 - 4 - 3", 3);
    check("12 / 3 / 2", 2);
    check("1 + 6 % 4 * 2", 5);
    check("1 - -1", 2);
    check("- -3", 3);
    check("--3", 3);
    check("2 == 2 < 3", 0);        /* comparisons bind tighter than equality */
    check("3 > 2 > 1", 0);
    check("1 + 1 == 2", 1);
    check("not 1 + 1", 1);         /* (not 1) + 1: not binds tightest */
    check("not (1 + 1)", 0);
    check("1 or 0 and 0", 1);
    check("0 and 1 or 1", 1);
    check("1 ? 0 : 1 ? 2 : 3", 3); /* (1 ? 0 : 1) ? 2 : 3 */
    check("1 ? 2 ? 3 : 4 : 5", 3);
    check("0 ? 1 : 2 or 3", 2);
    check("0 or 0 ? 1 : 2", 2);
    check("1 > 0 ? 10 : 20", 10);
    check("  1+2  ", 3);
}

static void test_operators(void **state)
{
    (void)state;
    check("7 % 4", 3);
    check("-7 % 4", -3);
    check("7.5 % 2", 1.5);
    check("1 / 0", INFINITY);
    check("0 / 0", NAN);
    check("1e3 + 0.5", 1000.5);
    check("2.5E-1", 0.25);
    check("1 == 1", 1);
    check("1 != 1", 0);
    check("1 < 2", 1);
    check("2 <= 2", 1);
    check("2 > 2", 0);
    check("2 >= 3", 0);
    check("(0 / 0) != (0 / 0)", 1); /* JavaScript's NaN != NaN */
    check("(0 / 0) < 1", 0);
    check("2 and 3", 3);            /* Number(a && b) */
    check("0 and 3", 0);
    check("2 or 3", 2);
    check("0 or 3", 3);
    check("(0 / 0) or 7", 7);
    check("not 0", 1);
    check("not 5", 0);
    check("not not 5", 1);
    check("not (0 / 0)", 1);
    check("1 ^ (0 / 0)", NAN);
    check("max(1, 5, 3)", 5);
    check("min(4, 2, 8)", 2);
    check("min()", INFINITY);
    check("round(2.5)", 3);
    check("round(-2.5)", -2);
    check("abs(-3) + sqrt(16) + floor(1.7) + ceil(1.2) + log10(1000)", 3 + 4 + 1 + 2 + 3);
    check("log(1) + log2(8)", 3);
}

static void test_names(void **state)
{
    (void)state;
    check("http.response_time.p95 < 250 and vusers.failed == 0", 0);
    check("http.response_time.p95 < 250 and http.response_time.p99 < 500", 1);
    check("http.codes.200 == 500", 1);
    check("(vusers.created - vusers.completed)/vusers.created * 100 <= 1", 1);
    check("'plugins.metrics-by-endpoint.response_time./api/mocs.p95' < 100", 1);
    check("'it\\'s' == 1", 1);
    check("a[0] + a['x']", 7);
    check("android + 1", 3);        /* keywords only as whole words */
    check("$x_1", 6);
    check("zero ? 1 : 2", 2);
    check("exists(vusers.failed)", 1);
    check("exists(nope)", 0);
    check("exists(nope) ? nope : 7", 7); /* an untaken branch is not evaluated */
    check("1 or nope", 1);
    check("0 and nope", 0);
}

static void test_unknown(void **state)
{
    (void)state;
    bool unknown = false;
    assert_true(isnan(ev("nope", &unknown)));
    assert_true(unknown);
    unknown = false;
    assert_true(isnan(ev("nope.p95 < 5", &unknown))); /* the whole result */
    assert_true(unknown);
    unknown = false;
    assert_true(isnan(ev("not (vusers.nothing > 5)", &unknown)));
    assert_true(unknown);
    unknown = false;
    assert_true(isnan(ev("0 or missing", &unknown)));
    assert_true(unknown);
    /* no lookup at all, and NULL for *unknown */
    char err[CU_ERRLEN];
    lt_expr *e = lt_expr_compile("x + 1", err);
    assert_non_null(e);
    assert_true(isnan(lt_expr_eval(e, NULL, NULL, NULL)));
    lt_expr_free(e);
    /* lookups happen at evaluation only, once per evaluated name */
    e = lt_expr_compile("vusers.failed > 1 and vusers.created > 1", err);
    lookups = 0;
    assert_true(lt_expr_eval(e, lookup, NULL, NULL) == 1);
    assert_int_equal(lookups, 2);
    lt_expr_free(e);
}

static void test_errors(void **state)
{
    (void)state;
    check_error("", "column 1: expected a number, a name or '(', found the end of the expression");
    check_error("   ", "column 4: expected a number, a name or '(', found the end of the expression");
    check_error("1 +", "column 4: expected a number, a name or '(', found the end of the expression");
    check_error("(1 + 2", "column 7: expected ')' to close the '(' at column 1, found the end of the expression");
    check_error("1 2", "column 3: expected an operator or the end, found a number");
    check_error("a b", "column 3: expected an operator or the end, found a name");
    check_error("a ? b", "column 6: expected ':' of the '?', found the end of the expression");
    check_error("a : b", "column 3: expected an operator or the end, found ':'");
    check_error("x == \"foo\"", "column 6: strings are not supported (values are numbers); "
                                "write a name with spaces or dashes in single quotes");
    check_error("x in (1, 2)", "column 3: operator 'in' is not supported");
    check_error("x not in (1, 2)", "column 3: expected an operator or the end, found 'not'");
    check_error("a of b", "column 3: operator 'of' is not supported");
    check_error("x ~= 1", "column 3: operator '~=' is not supported");
    check_error("foo(1)", "column 1: unknown function 'foo'");
    check_error("3x", "column 2: unexpected 'x' after a number");
    check_error("a # b", "column 3: unexpected character '#'");
    check_error("a = 1", "column 3: unexpected character '='");
    check_error("a && b", "column 3: unexpected character '&'");
    check_error("'abc", "column 1: unterminated quoted name");
    check_error("max(1", "column 6: expected ',' or ')' in the call of max(), found the end of the expression");
    check_error("sqrt()", "column 1: sqrt() takes 1 argument");
    check_error("exists(1)", "column 1: exists() takes a name");
    check_error("(1, 2)", "column 3: lists are not supported");
    check_error("http.codes. == 1", "column 11: unexpected character '.'");
    check_error("1 + * 2", "column 5: expected a number, a name or '(', found *");
    char deep[1300];
    memset(deep, '(', 600);
    deep[600] = '1';
    memset(deep + 601, ')', 600);
    deep[1201] = 0;
    char err[CU_ERRLEN];
    assert_null(lt_expr_compile(deep, err));
    assert_non_null(strstr(err, "nested too deeply"));
    memset(deep, '-', 1000);
    deep[1000] = '1';
    deep[1001] = 0;
    assert_null(lt_expr_compile(deep, err));
    assert_non_null(strstr(err, "nested too deeply"));
    check("((((((((((1))))))))))", 1);
}

/* Every prefix compiles or fails with a column, and never leaks. */
static void test_prefixes(void **state)
{
    (void)state;
    const char *src = "not (http.codes.200 >= 2e1 ? max(a[0], 'x-y', -3 ^ 2) : exists(b)) or c % 2 != 1";
    char buf[256], err[CU_ERRLEN];
    size_t ok = 0;
    for (size_t n = 0; n <= strlen(src); n++) {
        memcpy(buf, src, n);
        buf[n] = 0;
        lt_expr *e = lt_expr_compile(buf, err);
        if (e) {
            ok++;
            (void)lt_expr_eval(e, lookup, NULL, NULL);
            lt_expr_free(e);
        } else {
            assert_true(cu_startswith(err, "column "));
        }
    }
    assert_true(ok >= 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precedence), cmocka_unit_test(test_operators),
        cmocka_unit_test(test_names),      cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_errors),     cmocka_unit_test(test_prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
