/* Unit tests for config.payload (loadtest/script_payload.c): the RFC 4180
 * reader (quotes, doubled quotes, line breaks in fields, CRLF, empty lines,
 * cast, delimiters, errors with the line, every prefix of a file), and the
 * loader's options (path relative to the script, fields, skipHeader,
 * loadAll + name, order) on scripts written to a temporary directory; and
 * the plan text (plan.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loadtest/script.h"

/* The parse of text as compact JSON (caller frees), or "ERR:<message>". */
static char *csv(const char *text, char delim, bool skip_empty, bool cast)
{
    char err[CU_ERRLEN] = "";
    json_t *rows = lt_csv_parse(text, strlen(text), delim, skip_empty, cast, err);
    if (!rows)
        return cu_asprintf("ERR:%s", err);
    cu_buf b = CU_BUF_INIT;
    lt_json_dump(&b, rows);
    json_decref(rows);
    return cu_buf_steal(&b);
}

#define CSV_EQ(text, delim, skip, cast, want)                                                  \
    do {                                                                                       \
        char *got_ = csv(text, delim, skip, cast);                                             \
        assert_string_equal(got_, want);                                                       \
        free(got_);                                                                            \
    } while (0)

static void test_rfc4180(void **state)
{
    (void)state;
    CSV_EQ("a,b\nc,d\n", ',', true, true, "[[\"a\",\"b\"],[\"c\",\"d\"]]");
    CSV_EQ("a,b\r\nc,d", ',', true, true, "[[\"a\",\"b\"],[\"c\",\"d\"]]");
    CSV_EQ("\"x,y\",\"say \"\"hi\"\"\"\n", ',', true, true, "[[\"x,y\",\"say \\\"hi\\\"\"]]");
    CSV_EQ("\"two\nlines\",z\nq,r\n", ',', true, true, "[[\"two\\nlines\",\"z\"],[\"q\",\"r\"]]");
    CSV_EQ("a,,\n", ',', true, true, "[[\"a\",\"\",\"\"]]");
    CSV_EQ("a,", ',', true, true, "[[\"a\",\"\"]]");
    CSV_EQ("\"\"\n", ',', true, true, "[[\"\"]]");
    CSV_EQ("", ',', true, true, "[]");
    CSV_EQ("a;b\n", ';', true, true, "[[\"a\",\"b\"]]");
    CSV_EQ("a\tb\n", '\t', true, true, "[[\"a\",\"b\"]]");
    CSV_EQ("x\r\ny", ',', true, true, "[[\"x\"],[\"y\"]]");
    CSV_EQ("a\rb\n", ',', true, true, "[[\"a\\rb\"]]"); /* a lone CR is data */
}

static void test_empty_lines_and_cast(void **state)
{
    (void)state;
    CSV_EQ("a\n\n\nb\n", ',', true, true, "[[\"a\"],[\"b\"]]");
    CSV_EQ("a\n\nb\n", ',', false, true, "[[\"a\"],[\"\"],[\"b\"]]");
    CSV_EQ("\r\n\r\na\r\n", ',', true, true, "[[\"a\"]]");
    CSV_EQ("12,-1.5,3e2, 7 ,0x10,1.2.3,,abc,\"42\"\n", ',', true, true,
           "[[12,-1.5,300,7,\"0x10\",\"1.2.3\",\"\",\"abc\",42]]");
    CSV_EQ("12,-1.5\n", ',', true, false, "[[\"12\",\"-1.5\"]]");
    CSV_EQ("007\n", ',', true, true, "[[7]]"); /* as csv-parse: a number */
}

static void test_errors_name_the_line(void **state)
{
    (void)state;
    CSV_EQ("a\nb\n\"open,c\n", ',', true, true, "ERR:line 3: quoted field not terminated");
    CSV_EQ("a\n\"x\"y\n", ',', true, true,
           "ERR:line 2: invalid closing quote: 'y' after a quoted field");
    CSV_EQ("a\nb\"c\n", ',', true, true,
           "ERR:line 2: quote inside an unquoted field (quote the whole field and double the quote)");
}

/* Every prefix of a file parses or fails cleanly, and no row has more
 * fields than the full record it is cut from. */
static void test_every_prefix(void **state)
{
    (void)state;
    const char *text = "id,name\r\n1,\"a, \"\"b\"\"\"\n\n\"multi\nline\",3.5\n,\n";
    size_t len = strlen(text);
    for (size_t n = 0; n <= len; n++) {
        char err[CU_ERRLEN] = "";
        char *copy = cu_strndup(text, n);
        json_t *rows = lt_csv_parse(copy, n, ',', true, true, err);
        if (rows) {
            size_t i;
            json_t *row;
            json_array_foreach(rows, i, row) assert_true(json_array_size(row) <= 2);
            json_decref(rows);
        } else {
            assert_non_null(strstr(err, "line "));
        }
        free(copy);
    }
    char err[CU_ERRLEN];
    json_t *rows = lt_csv_parse(text, len, ',', true, true, err);
    assert_non_null(rows);
    assert_int_equal(json_array_size(rows), 4);
    json_decref(rows);
}

/* ---- the loader ---------------------------------------------------------------------------- */
typedef struct dir {
    char path[64];
} dir;

static void put(const dir *d, const char *name, const char *text)
{
    char p[160];
    snprintf(p, sizeof p, "%s/%s", d->path, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static lt_script *load(const dir *d, const char *yaml, char err[CU_ERRLEN])
{
    put(d, "s.yml", yaml);
    char p[160];
    snprintf(p, sizeof p, "%s/s.yml", d->path);
    lt_load_opts o = {.path = p};
    err[0] = '\0';
    return lt_script_load(&o, err);
}

static int dir_setup(void **state)
{
    dir *d = calloc(1, sizeof *d);
    snprintf(d->path, sizeof d->path, "/tmp/cutover-payload-XXXXXX");
    assert_non_null(mkdtemp(d->path));
    *state = d;
    return 0;
}

static int dir_teardown(void **state)
{
    dir *d = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->path);
    assert_int_equal(system(cmd), 0);
    free(d);
    return 0;
}

static void test_loader_options(void **state)
{
    dir *d = *state;
    char err[CU_ERRLEN];
    put(d, "users.csv", "id;name\n1;ann\n\n2;\"bo;b\"\n");
    put(d, "all.csv", "x,1\ny,2\n");
    lt_script *s = load(d,
                        "config:\n  target: http://127.0.0.1:1\n  payload:\n"
                        "    - path: users.csv\n      fields: [id, name]\n      skipHeader: true\n"
                        "      delimiter: ';'\n      order: sequence\n"
                        "    - path: ./all.csv\n      fields: [k, v]\n      loadAll: true\n"
                        "      name: table\n      cast: false\n"
                        "scenarios:\n  - flow:\n      - get: {url: '/{{ id }}/{{ table }}'}\n",
                        err);
    if (!s)
        fail_msg("%s", err);
    assert_int_equal(s->npayloads, 2);
    const lt_payload *p = &s->payloads[0];
    assert_true(p->sequence);
    assert_null(p->name);
    assert_int_equal(p->nfields, 2);
    assert_string_equal(p->fields[1], "name");
    cu_buf b = CU_BUF_INIT;
    lt_json_dump(&b, p->rows);
    assert_string_equal(b.data, "[[1,\"ann\"],[2,\"bo;b\"]]");
    cu_buf_reset(&b);
    p = &s->payloads[1];
    assert_string_equal(p->name, "table");
    lt_json_dump(&b, p->all);
    assert_string_equal(b.data, "[{\"k\":\"x\",\"v\":\"1\"},{\"k\":\"y\",\"v\":\"2\"}]");
    cu_buf_free(&b);
    lt_script_free(s);

    /* a single object is a one-element list; a missing file and a bad CSV are errors */
    s = load(d, "config:\n  target: http://x\n  payload: {path: all.csv, fields: [a]}\n"
                "scenarios:\n  - flow: [{get: {url: /}}]\n", err);
    if (!s)
        fail_msg("%s", err);
    assert_int_equal(s->npayloads, 1);
    assert_false(s->payloads[0].sequence);
    lt_script_free(s);
    s = load(d, "config:\n  target: http://x\n  payload: {path: nope.csv, fields: [a]}\n"
                "scenarios:\n  - flow: [{get: {url: /}}]\n", err);
    assert_null(s);
    assert_non_null(strstr(err, "s.yml:3:19: payload: cannot read"));
    put(d, "bad.csv", "a\n\"b\n");
    s = load(d, "config:\n  target: http://x\n  payload:\n    path: bad.csv\n    fields: [a]\n"
                "scenarios:\n  - flow: [{get: {url: /}}]\n", err);
    assert_null(s);
    assert_non_null(strstr(err, "s.yml:4:11: payload "));
    assert_non_null(strstr(err, "bad.csv, line 2: quoted field not terminated"));
    s = load(d, "config:\n  target: http://x\n  payload: {path: users.csv, order: random-ish}\n"
                "scenarios:\n  - flow: [{get: {url: /}}]\n", err);
    assert_null(s);
    assert_non_null(strstr(err, "payload order must be random or sequence"));
}

static void test_plan_text(void **state)
{
    dir *d = *state;
    char err[CU_ERRLEN];
    lt_script *s = load(d,
                        "config:\n  target: http://x\n  phases:\n"
                        "    - {duration: 10, arrivalRate: 30, name: warm}\n"
                        "    - {duration: 5, arrivalRate: 1, rampTo: 5}\n"
                        "    - {pause: 90}\n"
                        "    - {duration: 2, arrivalCount: 7, maxVusers: 3}\n"
                        "scenarios:\n  - {name: a, weight: 3, flow: [{get: {url: /}}]}\n"
                        "  - {name: b, flow: [{get: {url: /}}, {think: 1}]}\n",
                        err);
    assert_non_null(s);
    cu_buf b = CU_BUF_INIT;
    lt_script_plan(s, &b);
    assert_string_equal(b.data,
        "Plan: 4 phases\n"
        "  1. warm: 30/s for 10 s, 300 arrivals, starts at 0 s\n"
        "  2. unnamed: ramp 1/s -> 5/s over 5 s, 15 arrivals, starts at 10 s\n"
        "  3. unnamed: pause for 90 s (1 min 30 s), 0 arrivals, starts at 15 s\n"
        "  4. unnamed: 7 users over 2 s, 7 arrivals, starts at 105 s, at most 3 users at once "
        "(more are skipped)\n"
        "  total: 107 s (1 min 47 s), 322 users, peak 30/s\n"
        "Scenarios: 2\n"
        "  a: weight 3, 75.0% of users (about 242), 1 step\n"
        "  b: weight 1, 25.0% of users (about 80), 2 steps\n"
        "Target: http://x\n");
    cu_buf_free(&b);
    lt_script_free(s);
}

int main(void)
{
    cu_log_set_level(CU_LOG_ERROR); /* the loader's warnings are not under test here */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4180),
        cmocka_unit_test(test_empty_lines_and_cast),
        cmocka_unit_test(test_errors_name_the_line),
        cmocka_unit_test(test_every_prefix),
        cmocka_unit_test_setup_teardown(test_loader_options, dir_setup, dir_teardown),
        cmocka_unit_test_setup_teardown(test_plan_text, dir_setup, dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
