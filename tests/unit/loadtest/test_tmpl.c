/* Unit tests for Artillery's templates (loadtest/tmpl.c): placeholders,
 * lodash paths, undefined, the built-in functions, environment lookups,
 * JavaScript number printing and templated JSON bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadtest/script.h"

typedef struct fixture {
    json_t *vars;
    cu_rng rng;
    lt_ctx ctx;
    cu_buf out;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    json_error_t jerr;
    f->vars = json_loads("{\"id\": 42, \"name\": \"castle\", \"pi\": 3.5, \"big\": 1e21,"
                         " \"obj\": {\"a\": [1, \"two\", {\"b\": true}]}, \"a.b\": \"exact\","
                         " \"list\": [\"x\", \"y\"], \"nil\": null, \"$uuid\": \"u-1\"}",
                         0, &jerr);
    assert_non_null(f->vars);
    cu_rng_seed(&f->rng, 7);
    f->ctx = (lt_ctx){f->vars, &f->rng};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    json_decref(f->vars);
    cu_buf_free(&f->out);
    free(f);
    return 0;
}

/* Renders src against the fixture's variables. */
static const char *render(fixture *f, const char *src)
{
    lt_tmpl *t = lt_tmpl_compile(src);
    assert_non_null(t);
    cu_buf_reset(&f->out);
    lt_tmpl_render(t, &f->ctx, &f->out);
    lt_tmpl_free(t);
    return f->out.len ? f->out.data : "";
}

static void test_placeholders(void **state)
{
    fixture *f = *state;
    assert_string_equal(render(f, "/api/mocs/{{ id }}"), "/api/mocs/42");
    assert_string_equal(render(f, "/api/mocs/{{id}}"), "/api/mocs/42");
    assert_string_equal(render(f, "{{ name }}-{{ id }}"), "castle-42");
    assert_string_equal(render(f, "{{{ name }}}"), "castle"); /* triple braces */
    assert_string_equal(render(f, "{{ obj.a[1] }}"), "two");
    assert_string_equal(render(f, "{{ obj.a[2].b }}"), "true");
    assert_string_equal(render(f, "{{ obj['a'][0] }}"), "1");
    assert_string_equal(render(f, "{{ a.b }}"), "exact"); /* an exact key wins, as _.get */
    assert_string_equal(render(f, "{{ $uuid }}"), "u-1");
    /* objects and arrays print as JSON.stringify, numbers as String(n) */
    assert_string_equal(render(f, "v={{ list }}"), "v=[\"x\",\"y\"]");
    assert_string_equal(render(f, "{{ pi }}|{{ big }}"), "3.5|1e+21");
    assert_string_equal(render(f, "n={{ nil }}"), "n=null");
}

static void test_undefined_and_literals(void **state)
{
    fixture *f = *state;
    /* an undefined variable renders as the text "undefined", as in Artillery */
    assert_string_equal(render(f, "/api/mocs/{{ mocId }}"), "/api/mocs/undefined");
    assert_string_equal(render(f, "{{ obj.zzz.q }}"), "undefined");
    /* not placeholders: stay literal */
    assert_string_equal(render(f, "{{ unclosed"), "{{ unclosed");
    assert_string_equal(render(f, "a }} b {{"), "a }} b {{");
    assert_string_equal(render(f, "{{ $nosuch(1) }}"), "{{ $nosuch(1) }}");
    assert_string_equal(render(f, "{{ a+b }}"), "{{ a+b }}");
    lt_tmpl *t = lt_tmpl_compile("plain text");
    assert_true(lt_tmpl_is_static(t));
    assert_string_equal(lt_tmpl_text(t), "plain text");
    lt_tmpl_free(t);
    t = lt_tmpl_compile("x {{ id }}");
    assert_false(lt_tmpl_is_static(t));
    lt_tmpl_free(t);
}

static void test_single_placeholder_value(void **state)
{
    fixture *f = *state;
    lt_tmpl *t = lt_tmpl_compile("{{ id }}");
    json_t *v = lt_tmpl_value(t, &f->ctx);
    assert_true(json_is_integer(v)); /* the raw value, not its text */
    assert_int_equal(json_integer_value(v), 42);
    json_decref(v);
    lt_tmpl_free(t);
    t = lt_tmpl_compile("{{ missing }}");
    assert_null(lt_tmpl_value(t, &f->ctx));
    lt_tmpl_free(t);
    t = lt_tmpl_compile("#{{ id }}");
    v = lt_tmpl_value(t, &f->ctx);
    assert_string_equal(json_string_value(v), "#42");
    json_decref(v);
    lt_tmpl_free(t);
}

static void test_functions(void **state)
{
    fixture *f = *state;
    int seen[4] = {0};
    for (int i = 0; i < 400; i++) {
        long n = strtol(render(f, "{{ $randomNumber(1, 3) }}"), NULL, 10);
        assert_true(n >= 1 && n <= 3); /* inclusive bounds */
        seen[n]++;
    }
    assert_true(seen[1] > 0 && seen[2] > 0 && seen[3] > 0);
    const char *s = render(f, "{{ $randomString(12) }}");
    assert_int_equal(strlen(s), 12);
    for (const char *p = s; *p; p++)
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", *p));
    assert_int_equal(strlen(render(f, "{{ $randomString() }}")), 10);
}

static void test_environment(void **state)
{
    fixture *f = *state;
    setenv("CUTOVER_TMPL_TEST", "from-env", 1);
    unsetenv("CUTOVER_TMPL_UNSET");
    assert_string_equal(render(f, "{{ $processEnvironment.CUTOVER_TMPL_TEST }}"), "from-env");
    assert_string_equal(render(f, "{{ $env.CUTOVER_TMPL_TEST }}/x"), "from-env/x");
    assert_string_equal(render(f, "{{ $env.CUTOVER_TMPL_UNSET }}"), "undefined");
    /* read at compile time, folded into the text */
    lt_tmpl *t = lt_tmpl_compile("{{ $env.CUTOVER_TMPL_TEST }}");
    setenv("CUTOVER_TMPL_TEST", "changed", 1);
    cu_buf_reset(&f->out);
    lt_tmpl_render(t, &f->ctx, &f->out);
    assert_string_equal(f->out.data, "from-env");
    lt_tmpl_free(t);
}

static void test_js_numbers(void **state)
{
    (void)state;
    static const struct { double v; const char *want; } cases[] = {
        {0, "0"}, {-0.0, "0"}, {1, "1"}, {-7, "-7"}, {0.1, "0.1"}, {1.5, "1.5"},
        {100, "100"}, {1e20, "100000000000000000000"}, {1e21, "1e+21"},
        {123456789.125, "123456789.125"}, {1e-7, "1e-7"}, {0.000001, "0.000001"},
    };
    cu_buf b = CU_BUF_INIT;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cu_buf_reset(&b);
        lt_js_number(&b, cases[i].v);
        if (strcmp(b.data, cases[i].want))
            fail_msg("%.17g printed %s, want %s", cases[i].v, b.data, cases[i].want);
    }
    cu_buf_free(&b);
}

static void test_value_trees(void **state)
{
    fixture *f = *state;
    char err[CU_ERRLEN];
    static const char text[] = "{\"user\": \"{{ name }}\", \"n\": \"{{ id }}\","
                               " \"gone\": \"{{ missing }}\", \"k{{ id }}\": [\"{{ pi }}\", 2]}";
    conf_node *n = conf_parse(text, sizeof text - 1, "t.yml", err);
    if (!n)
        fail_msg("%s", err);
    lt_value *v = lt_value_compile(n);
    json_t *j = lt_value_render(v, &f->ctx);
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    /* a single placeholder keeps its type; an undefined one drops its key */
    assert_string_equal(s, "{\"user\":\"castle\",\"n\":42,\"k42\":[3.5,2]}");
    free(s);
    json_decref(j);
    lt_value_free(v);
    conf_free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_placeholders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_undefined_and_literals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_single_placeholder_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_functions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_environment, setup, teardown),
        cmocka_unit_test(test_js_numbers),
        cmocka_unit_test_setup_teardown(test_value_trees, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
