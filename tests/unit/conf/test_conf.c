/* Unit tests for conf: typing, positions, errors, aliases, merge keys,
 * conf_merge in both modes, key checks, big documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"

static conf_node *parse(const char *text, const char *file)
{
    char err[CU_ERRLEN];
    conf_node *n = conf_parse(text, strlen(text), file, err);
    if (!n)
        fail_msg("unexpected parse error: %s", err);
    return n;
}

/* Parses text that must fail; checks the message exactly. */
static void expect_error(const char *text, const char *want)
{
    char err[CU_ERRLEN];
    conf_node *n = conf_parse(text, strlen(text), "t.yml", err);
    if (n) {
        conf_free(n);
        fail_msg("expected error '%s', parse succeeded", want);
    }
    assert_string_equal(err, want);
}

/* Walks a path of keys (maps) and "#i" indices (sequences). */
static conf_node *at(conf_node *n, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *tok = strtok(buf, "/"); tok && n; tok = strtok(NULL, "/")) {
        if (tok[0] == '#') {
            size_t i = strtoul(tok + 1, NULL, 10);
            n = n->type == CONF_SEQ && i < n->n ? n->items[i] : NULL;
        } else {
            n = conf_get(n, tok);
        }
    }
    assert_non_null(n);
    return n;
}

static void assert_pos(const conf_node *n, int line, int col)
{
    if (n->line != line || n->col != col)
        fail_msg("position %d:%d, expected %d:%d", n->line, n->col, line, col);
}

static void test_types(void **state)
{
    (void)state;
    conf_node *d = parse("n1: null\nn2: ~\nn3:\nn4: NULL\nn5: Null\n"
                         "t1: true\nt2: True\nt3: TRUE\nf1: false\nf2: FALSE\n"
                         "i1: 42\ni2: -17\ni3: +5\ni4: 0x1F\ni5: 0o17\ni6: 007\n"
                         "x1: 1.5\nx2: -.5e3\nx3: .inf\nx4: -.Inf\nx5: .NaN\nx6: 1e3\nx7: 3.\n"
                         "x8: 99999999999999999999\n"
                         "s1: yes\ns2: '42'\ns3: \"true\"\ns4: 0b101\ns5: 1_000\ns6: !!str 12\n"
                         "s7: |\n  block\ns8: 12abc\ns9: null x\n"
                         "g1: !!float 3\n",
                         "t.yml");
    assert_int_equal(d->type, CONF_MAP);
    const char *nulls[] = {"n1", "n2", "n3", "n4", "n5"};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(conf_get(d, nulls[i])->type, CONF_NULL);
    const char *bools[] = {"t1", "t2", "t3", "f1", "f2"};
    for (size_t i = 0; i < 5; i++) {
        conf_node *b = conf_get(d, bools[i]);
        assert_int_equal(b->type, CONF_BOOL);
        assert_int_equal(b->b, bools[i][0] == 't');
    }
    struct { const char *k; long long v; } ints[] = {
        {"i1", 42}, {"i2", -17}, {"i3", 5}, {"i4", 31}, {"i5", 15}, {"i6", 7}};
    for (size_t i = 0; i < CU_ARRAY_LEN(ints); i++) {
        conf_node *n = conf_get(d, ints[i].k);
        assert_int_equal(n->type, CONF_INT);
        assert_int_equal(n->i, ints[i].v);
        assert_true(n->f == (double)ints[i].v);
    }
    assert_string_equal(conf_get(d, "i4")->str, "0x1F");
    struct { const char *k; double v; } floats[] = {
        {"x1", 1.5}, {"x2", -500}, {"x3", INFINITY}, {"x4", -INFINITY}, {"x6", 1000}, {"x7", 3},
        {"x8", 1e20}, {"g1", 3}};
    for (size_t i = 0; i < CU_ARRAY_LEN(floats); i++) {
        conf_node *n = conf_get(d, floats[i].k);
        assert_int_equal(n->type, CONF_FLOAT);
        assert_true(n->f == floats[i].v);
    }
    assert_int_equal(conf_get(d, "x5")->type, CONF_FLOAT);
    assert_true(isnan(conf_get(d, "x5")->f));
    struct { const char *k, *v; } strs[] = {
        {"s1", "yes"}, {"s2", "42"}, {"s3", "true"}, {"s4", "0b101"}, {"s5", "1_000"},
        {"s6", "12"}, {"s7", "block\n"}, {"s8", "12abc"}, {"s9", "null x"}};
    for (size_t i = 0; i < CU_ARRAY_LEN(strs); i++) {
        conf_node *n = conf_get(d, strs[i].k);
        assert_int_equal(n->type, CONF_STRING);
        assert_string_equal(n->str, strs[i].v);
    }
    /* keys are typed too but keep their text */
    conf_node *k = parse("200: ok\n1.5: x\n", "t.yml");
    assert_string_equal(conf_key(k, 0), "200");
    assert_string_equal(conf_get(k, "1.5")->str, "x");
    conf_free(k);
    conf_free(d);
}

static void test_positions(void **state)
{
    (void)state;
    const char *text = "# comment\n"                       /* 1 */
                       "config:\n"                         /* 2 */
                       "  target: \"http://x\"\n"          /* 3 */
                       "  phases:\n"                       /* 4 */
                       "    - duration: 60\n"              /* 5 */
                       "      arrivalRate: 10\n"           /* 6 */
                       "    -   duration: 5\n"             /* 7 */
                       "  list: [a, {b: c}]\n"             /* 8 */
                       "scenarios:\n"                      /* 9 */
                       "- flow:\n"                         /* 10 */
                       "  - get: {url: /x}\n";             /* 11 */
    conf_node *d = parse(text, "p.yml");
    assert_pos(d, 2, 1);
    conf_node *cfg = at(d, "config");
    assert_pos(cfg, 3, 3);
    assert_pos(cfg->keys[0], 3, 3);
    assert_pos(at(d, "config/target"), 3, 11);
    conf_node *ph = at(d, "config/phases");
    assert_pos(ph, 5, 5);
    assert_pos(at(d, "config/phases/#0"), 5, 7);
    assert_pos(at(d, "config/phases/#0")->keys[1], 6, 7);
    assert_pos(at(d, "config/phases/#0/arrivalRate"), 6, 20);
    assert_pos(at(d, "config/phases/#1"), 7, 9);
    assert_pos(at(d, "config/phases/#1/duration"), 7, 19);
    assert_pos(at(d, "config/list"), 8, 9);
    assert_pos(at(d, "config/list/#0"), 8, 10);
    assert_pos(at(d, "config/list/#1"), 8, 13);
    assert_pos(at(d, "config/list/#1/b"), 8, 17);
    assert_pos(at(d, "scenarios"), 10, 1);
    assert_pos(at(d, "scenarios/#0/flow/#0"), 11, 5);
    assert_pos(at(d, "scenarios/#0/flow/#0/get/url"), 11, 16);
    assert_string_equal(at(d, "config/phases/#1/duration")->file, "p.yml");
    char err[CU_ERRLEN];
    conf_errf(err, at(d, "config/phases/#0/arrivalRate"), "bad %s", "rate");
    assert_string_equal(err, "p.yml:6:20: bad rate");
    conf_free(d);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("a:\n  b: 1\n c: 2\n",
                 "t.yml:3:2: did not find expected key (while parsing a block mapping at line 1, column 1)");
    expect_error("a: \"abc\nb: 2\n",
                 "t.yml:3:1: found unexpected end of stream (while scanning a quoted scalar at line 1, column 4)");
    expect_error("a:\n\tb: 1\n", "t.yml:2:1: found character that cannot start any token "
                                  "(while scanning for the next token); tabs cannot be used for indentation");
    expect_error("a: 1\nb: 2\na: 3\n", "t.yml:3:1: duplicated mapping key 'a' (first defined at line 1, column 1)");
    expect_error("m:\n  a: 1\n  b: 2\n  c: 3\n  d: 4\n  e: 5\n  f: 6\n  g: 7\n  h: 8\n  i: 9\n  d: 10\n",
                 "t.yml:11:3: duplicated mapping key 'd' (first defined at line 5, column 3)");
    expect_error("a: [1, 2\n", "t.yml:2:1: did not find expected ',' or ']' "
                               "(while parsing a flow sequence at line 1, column 4)");
    expect_error("a: 1\n---\nb: 2\n", "t.yml:2:1: expected a single document, found another one");
    expect_error("x: *nope\n", "t.yml:1:4: unknown alias '*nope'");
    expect_error("? [a]\n: 1\n", "t.yml:1:3: a list cannot be a mapping key");
    expect_error("a:\n  <<: 5\n", "t.yml:2:7: merge key '<<' expects a map or a list of maps, found a integer");
    expect_error("a: !foo x\n", "t.yml:1:4: unsupported tag '!foo'");
    expect_error("a: !!int x\n", "t.yml:1:4: cannot read 'x' as !!int");
    expect_error("a: \xff\n", "t.yml:1:4: invalid leading UTF-8 octet (byte 0xff)");
    expect_error("{\"a\": 1,}x", "t.yml:1:10: did not find expected <document start>");
    /* too deep */
    cu_buf b = CU_BUF_INIT;
    for (int i = 0; i < 600; i++)
        cu_buf_appendc(&b, '[');
    char err[CU_ERRLEN];
    assert_null(conf_parse(b.data, b.len, "deep", err));
    assert_string_equal(err, "deep:1:513: nesting deeper than 512 levels");
    cu_buf_free(&b);
    assert_null(conf_load("/nonexistent/x.yml", err));
    assert_non_null(strstr(err, "/nonexistent/x.yml"));
}

static void test_aliases(void **state)
{
    (void)state;
    conf_node *d = parse("base: &b {x: 1, y: [1, 2]}\n"
                         "s: &s hello\n"
                         "copy: *b\n"
                         "list: [*s, *s]\n"
                         "again: &b 7\n"
                         "late: *b\n",
                         "t.yml");
    conf_node *c = at(d, "copy");
    assert_int_equal(c->type, CONF_MAP);
    assert_pos(c, 3, 7);
    assert_int_equal(at(d, "copy/y")->n, 2);
    assert_ptr_not_equal(at(d, "copy/y"), at(d, "base/y"));
    assert_string_equal(at(d, "list/#1")->str, "hello");
    assert_int_equal(at(d, "late")->i, 7); /* the latest anchor of a name wins */
    conf_free(d);
    /* exponential expansion is refused */
    const char *laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                         "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                         "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                         "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                         "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                         "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
    char err[CU_ERRLEN];
    assert_null(conf_parse(laughs, strlen(laughs), "t.yml", err));
    assert_non_null(strstr(err, "aliases expand to more than"));
}

static void test_merge_keys(void **state)
{
    (void)state;
    conf_node *d = parse("defaults: &d {a: 1, b: 2, c: 3}\n"
                         "other: &o {c: 30, d: 40}\n"
                         "one:\n  b: 20\n  <<: *d\n"
                         "two:\n  <<: [*o, *d]\n  a: 10\n"
                         "lit:\n  <<: {z: 1}\n"
                         "quoted:\n  '<<': {z: 1}\n",
                         "t.yml");
    conf_node *one = at(d, "one");
    assert_int_equal(one->n, 3);
    assert_int_equal(at(one, "a")->i, 1);
    assert_int_equal(at(one, "b")->i, 20); /* explicit wins even before << */
    assert_int_equal(at(one, "c")->i, 3);
    assert_null(conf_get(one, "<<"));
    conf_node *two = at(d, "two");
    assert_int_equal(two->n, 4);
    assert_int_equal(at(two, "a")->i, 10);
    assert_int_equal(at(two, "b")->i, 2);
    assert_int_equal(at(two, "c")->i, 30); /* the earlier merged map wins */
    assert_int_equal(at(two, "d")->i, 40);
    assert_pos(at(two, "d"), 2, 22);       /* merged values keep where they were written */
    assert_int_equal(at(d, "lit/z")->i, 1);
    assert_int_equal(at(d, "quoted/<<")->type, CONF_MAP);
    conf_free(d);
}

static void test_json(void **state)
{
    (void)state;
    const char *j = "{\"config\":{\"phases\":[{\"duration\":10,\"arrivalRate\":50}],"
                    "\"s\":\"a\\/b\\u00e9\",\"n\":null,\"t\":true,\"f\":-1.5e2}}";
    conf_node *d = parse(j, "--overrides");
    conf_node *ph = at(d, "config/phases/#0");
    assert_int_equal(at(ph, "duration")->i, 10);
    assert_int_equal(at(ph, "arrivalRate")->i, 50);
    assert_pos(at(ph, "arrivalRate"), 1, 51);
    assert_string_equal(at(d, "config/s")->str, "a/b\xc3\xa9");
    assert_int_equal(at(d, "config/n")->type, CONF_NULL);
    assert_int_equal(at(d, "config/t")->type, CONF_BOOL);
    assert_true(at(d, "config/f")->f == -150);
    char err[CU_ERRLEN];
    conf_errf(err, ph, "x");
    assert_string_equal(err, "--overrides:1:22: x");
    conf_free(d);
    const char *bad = "{\"config\": {\"phases\": [}}";
    assert_null(conf_parse(bad, strlen(bad), "--overrides", err));
    assert_true(cu_startswith(err, "--overrides:1:24: "));
}

static void test_conf_merge(void **state)
{
    (void)state;
    const char *a = "config:\n  target: http://a\n  phases: [{duration: 1, arrivalRate: 1}, {duration: 2}]\n"
                    "  http: {timeout: 5}\n  tags: [x, y, z]\n";
    const char *b = "config:\n  target: http://b\n  phases: [{arrivalRate: 9}]\n  http: {pool: 3}\n"
                    "  tags: [q]\n  extra: {k: v}\n";
    /* lodash-style: arrays merged index by index */
    conf_node *d = parse(a, "a.yml");
    conf_node *s = parse(b, "b.yml");
    conf_merge(d, s, false);
    conf_free(s); /* merged nodes must not depend on the source document */
    assert_string_equal(at(d, "config/target")->str, "http://b");
    assert_pos(at(d, "config/target"), 2, 11);
    assert_string_equal(at(d, "config/target")->file, "b.yml");
    assert_int_equal(at(d, "config/phases")->n, 2);
    assert_int_equal(at(d, "config/phases/#0/duration")->i, 1);
    assert_int_equal(at(d, "config/phases/#0/arrivalRate")->i, 9);
    assert_int_equal(at(d, "config/phases/#1/duration")->i, 2);
    assert_int_equal(at(d, "config/http/timeout")->i, 5);
    assert_int_equal(at(d, "config/http/pool")->i, 3);
    assert_int_equal(at(d, "config/tags")->n, 3);
    assert_string_equal(at(d, "config/tags/#0")->str, "q");
    assert_string_equal(at(d, "config/tags/#2")->str, "z");
    assert_string_equal(at(d, "config/extra/k")->str, "v");
    assert_string_equal(at(d, "config/extra/k")->file, "b.yml");
    conf_free(d);
    /* --overrides style: arrays replaced */
    d = parse(a, "a.yml");
    s = parse(b, "--overrides");
    conf_merge(d, s, true);
    conf_free(s);
    assert_int_equal(at(d, "config/phases")->n, 1);
    assert_null(conf_get(at(d, "config/phases/#0"), "duration"));
    assert_int_equal(at(d, "config/tags")->n, 1);
    assert_int_equal(at(d, "config/http/timeout")->i, 5);
    assert_string_equal(at(d, "config/phases")->file, "--overrides");
    conf_free(d);
    /* type changes replace; scalar into root map replaces the root in place */
    d = parse("a: {x: 1}\nb: [1]\n", "a.yml");
    s = parse("a: 5\nb: {k: 1}\n", "b.yml");
    conf_merge(d, s, false);
    assert_int_equal(at(d, "a")->i, 5);
    assert_int_equal(at(d, "b")->type, CONF_MAP);
    conf_node *scalar = parse("7", "c.yml");
    conf_merge(d, scalar, false);
    assert_int_equal(d->type, CONF_INT);
    assert_int_equal(d->i, 7);
    conf_free(scalar);
    conf_free(s);
    conf_free(d);
    /* nested sequences merge by index too; clone is independent */
    d = parse("m: [[1, 2], {a: 1}]\n", "a.yml");
    s = parse("m: [[9], {b: 2}, 3]\n", "b.yml");
    conf_merge(d, s, false);
    conf_node *c = conf_clone(d);
    conf_free(d);
    conf_free(s);
    assert_int_equal(at(c, "m")->n, 3);
    assert_int_equal(at(c, "m/#0/#0")->i, 9);
    assert_int_equal(at(c, "m/#0/#1")->i, 2);
    assert_int_equal(at(c, "m/#1/a")->i, 1);
    assert_int_equal(at(c, "m/#1/b")->i, 2);
    assert_int_equal(at(c, "m/#2")->i, 3);
    conf_free(c);
}

static void test_helpers(void **state)
{
    (void)state;
    conf_node *m = conf_new_map();
    conf_set(m, "target", conf_new_string("http://x"));
    conf_set(m, "n", conf_new_string(" 12.5 "));
    conf_set(m, "target", conf_new_string("http://y"));
    assert_int_equal(m->n, 2);
    assert_string_equal(conf_key(m, 0), "target");
    assert_string_equal(conf_get(m, "target")->str, "http://y");
    assert_null(conf_get(m, "zz"));
    assert_null(conf_key(m, 5));
    double v;
    assert_true(conf_number(conf_get(m, "n"), &v));
    assert_true(v == 12.5);
    assert_false(conf_number(conf_get(m, "target"), &v));
    char err[CU_ERRLEN];
    conf_errf(err, conf_get(m, "target"), "plain");
    assert_string_equal(err, "plain");
    conf_node *d = parse("a: 3\nb: '0x10'\nc: inf\nd: ''\ne: true\nf: [1]\ng: 1e3\n", "t.yml");
    assert_true(conf_number(at(d, "a"), &v) && v == 3);
    assert_true(conf_number(at(d, "b"), &v) && v == 16);
    assert_false(conf_number(at(d, "c"), &v));
    assert_false(conf_number(at(d, "d"), &v));
    assert_false(conf_number(at(d, "e"), &v));
    assert_false(conf_number(at(d, "f"), &v));
    assert_true(conf_number(at(d, "g"), &v) && v == 1000);
    assert_true(conf_is_scalar(at(d, "e")));
    assert_false(conf_is_scalar(at(d, "f")));
    assert_string_equal(conf_type_name(CONF_SEQ), "list");
    conf_set(d, "f", conf_new_string("s"));
    assert_int_equal(at(d, "f")->type, CONF_STRING);
    conf_free(d);
    conf_free(m);
}

/* Runs conf_check_keys with stderr captured into out. */
static size_t check_keys_captured(const conf_node *map, const char *const *allowed, size_t n,
                                  const char *where, char *out, size_t cap)
{
    fflush(stderr);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    size_t unknown = conf_check_keys(map, allowed, n, where);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t got = fread(out, 1, cap - 1, tmp);
    out[got] = 0;
    fclose(tmp);
    return unknown;
}

static void test_durations(void **state)
{
    (void)state;
    char err[CU_ERRLEN];
    const char *ok[][2] = {{"1500ms", "1500"}, {"2s", "2000"},       {"1.5s", "1500"},
                           {"1m", "60000"},    {"2min", "120000"},   {"1h", "3600000"},
                           {"7d", "604800000"}, {"3", "3000"},       {"1.5", "1500"},
                           {"\"30\"", "30000"}, {"1e3ms", "1000"}, {"0", "0"},
                           {"0.0004", "0"}};
    for (size_t i = 0; i < CU_ARRAY_LEN(ok); i++) {
        conf_node *n = conf_parse(ok[i][0], strlen(ok[i][0]), "t", err);
        assert_non_null(n);
        uint64_t ms = 1;
        if (!conf_duration_ms(n, &ms))
            fail_msg("'%s' was refused", ok[i][0]);
        assert_int_equal(ms, strtoull(ok[i][1], NULL, 10));
        conf_free(n);
    }
    const char *bad[] = {"-1s", "-2",   "1 s",  "1y",   "abc", "[1]", "{a: 1}", "true",
                         "s",   "ms",   "inf",  "nans", "0x10s", "1e16", "2ee", "\"\""};
    for (size_t i = 0; i < CU_ARRAY_LEN(bad); i++) {
        conf_node *n = conf_parse(bad[i], strlen(bad[i]), "t", err);
        assert_non_null(n);
        uint64_t ms = 7;
        if (conf_duration_ms(n, &ms))
            fail_msg("'%s' was taken as %llu ms", bad[i], (unsigned long long)ms);
        assert_int_equal(ms, 7); /* untouched */
        conf_free(n);
    }
    assert_false(conf_duration_ms(NULL, &(uint64_t){0}));
}

static void test_check_keys(void **state)
{
    (void)state;
    conf_node *d = parse("config:\n  target: x\n  phase: []\n  zzzzzzzzzz: 1\n  variables: {}\n", "s.yml");
    const char *allowed[] = {"target", "phases", "variables", "processor", "plugins"};
    char out[2048];
    size_t n = check_keys_captured(at(d, "config"), allowed, 5, "config", out, sizeof out);
    assert_int_equal(n, 2);
    assert_string_equal(out, "cutover: warning: s.yml:3:3: unknown key 'phase' in config (did you mean 'phases'?)\n"
                             "cutover: warning: s.yml:4:3: unknown key 'zzzzzzzzzz' in config\n");
    n = check_keys_captured(at(d, "config/target"), allowed, 5, "x", out, sizeof out);
    assert_int_equal(n, 0);
    assert_string_equal(out, "");
    conf_free(d);
}

static void test_load(void **state)
{
    (void)state;
    char path[] = "/tmp/cutover-conf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "config:\n  phases:\n    - duration: 60\n      arrivalRate: x\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char err[CU_ERRLEN];
    conf_node *d = conf_load(path, err);
    assert_non_null(d);
    conf_node *rate = at(d, "config/phases/#0/arrivalRate");
    conf_errf(err, rate, "arrivalRate must be a number, not %s", conf_type_name(rate->type));
    char want[CU_ERRLEN];
    snprintf(want, sizeof want, "%s:4:20: arrivalRate must be a number, not string", path);
    assert_string_equal(err, want);
    conf_free(d);
    unlink(path);
}

static void test_empty(void **state)
{
    (void)state;
    const char *docs[] = {"", "# nothing\n", "---\n", "\n\n", "~"};
    for (size_t i = 0; i < CU_ARRAY_LEN(docs); i++) {
        conf_node *d = parse(docs[i], "e.yml");
        assert_int_equal(d->type, CONF_NULL);
        assert_true(d->line >= 1);
        conf_free(d);
    }
    conf_node *d = parse("{}", "e.yml");
    assert_int_equal(d->type, CONF_MAP);
    assert_int_equal(d->n, 0);
    conf_free(d);
}

/* Every prefix of a document with every feature parses or fails cleanly
 * (positioned message, no leak). */
static void test_prefixes(void **state)
{
    (void)state;
    const char *text = "base: &b {x: 1, 'y': [1, 2.5, ~]}\n"
                       "list:\n  - *b\n  - <<: [*b, {z: \"q\\u00e9\"}]\n    w: |\n      text\n"
                       "json: {\"a\": [true, null, -0x1F]}\n"
                       "? complex\n: !!str 12\n";
    char err[CU_ERRLEN];
    size_t ok = 0;
    for (size_t n = 0; n <= strlen(text); n++) {
        conf_node *d = conf_parse(text, n, "t.yml", err);
        if (d) {
            ok++;
            conf_free(d);
        } else {
            assert_true(cu_startswith(err, "t.yml:"));
        }
    }
    assert_true(ok > 10);
    conf_node *d = parse(text, "t.yml");
    assert_string_equal(at(d, "list/#1/z")->str, "q\xc3\xa9");
    assert_int_equal(at(d, "list/#1/x")->i, 1);
    assert_int_equal(at(d, "json/a/#2")->type, CONF_STRING); /* core schema: hex has no sign */
    conf_free(d);
}

static void test_big(void **state)
{
    (void)state;
    cu_buf b = CU_BUF_INIT;
    cu_buf_appends(&b, "items:\n");
    size_t n = 0;
    while (b.len < (1u << 20)) {
        cu_buf_appendf(&b, "  - {id: %zu, name: \"item %zu\", tags: [a, b], ok: true}\n", n, n);
        n++;
    }
    cu_buf_appends(&b, "index:\n");
    for (size_t i = 0; i < 20000; i++)
        cu_buf_appendf(&b, "  k%zu: %zu\n", i, i);
    uint64_t t0 = cu_now_ns();
    char err[CU_ERRLEN];
    conf_node *d = conf_parse(b.data, b.len, "big.yml", err);
    uint64_t dt = cu_now_ns() - t0;
    assert_non_null(d);
    assert_int_equal(at(d, "items")->n, n);
    assert_int_equal(at(d, "items/#1000/id")->i, 1000);
    assert_int_equal(at(d, "items/#1000/id")->line, 1002);
    assert_int_equal(at(d, "index")->n, 20000);
    assert_int_equal(at(d, "index/k19999")->i, 19999);
    assert_true(dt < 5000000000ull); /* generous: sanitizers are slow */
    conf_node *c = conf_clone(d);
    conf_merge(c, d, false);
    assert_int_equal(at(c, "items")->n, n);
    conf_free(c);
    conf_free(d);
    /* a duplicate among many keys is still found */
    cu_buf_appends(&b, "  k777: 1\n");
    assert_null(conf_parse(b.data, b.len, "big.yml", err));
    assert_non_null(strstr(err, "duplicated mapping key 'k777'"));
    cu_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),       cmocka_unit_test(test_positions),
        cmocka_unit_test(test_errors),      cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_merge_keys),  cmocka_unit_test(test_json),
        cmocka_unit_test(test_conf_merge),  cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_check_keys),  cmocka_unit_test(test_load),
        cmocka_unit_test(test_empty),       cmocka_unit_test(test_durations),
        cmocka_unit_test(test_prefixes),    cmocka_unit_test(test_big),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
