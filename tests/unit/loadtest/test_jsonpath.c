/* Unit tests for the JSONPath subset (loadtest/jsonpath.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadtest/script.h"

static const char *doc_text =
    "{\"data\": [{\"id\": 42, \"name\": \"castle\", \"tags\": [\"a\", \"b\"]},"
    "           {\"id\": 43, \"name\": \"ship\", \"tags\": []},"
    "           {\"id\": 44, \"name\": \"train\", \"owner\": {\"id\": 7}}],"
    " \"meta\": {\"total\": 3, \"page\": {\"n\": 1, \"id\": \"p1\"}},"
    " \"odd key\": true, \"it's\": 1, \"0\": \"zero\", \"id\": \"root\"}";

/* Runs path over the document; the matches as compact JSON. */
static char *query(const char *path, size_t *count)
{
    json_error_t jerr;
    json_t *doc = json_loads(doc_text, 0, &jerr);
    assert_non_null(doc);
    char err[CU_ERRLEN];
    lt_jsonpath *p = lt_jsonpath_compile(path, err);
    if (!p)
        fail_msg("'%s' does not compile: %s", path, err);
    json_t *out = json_array();
    size_t n = lt_jsonpath_query(p, doc, out);
    assert_int_equal(n, json_array_size(out));
    if (count)
        *count = n;
    char *s = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(out);
    json_decref(doc); /* matches must have been increfed */
    lt_jsonpath_free(p);
    return s;
}

static void check(const char *path, const char *want)
{
    char *got = query(path, NULL);
    if (strcmp(got, want) != 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "'%s' gave %s, expected %s", path, got, want);
        free(got);
        fail_msg("%s", msg);
    }
    free(got);
}

static void check_error(const char *path, const char *want)
{
    char err[CU_ERRLEN];
    lt_jsonpath *p = lt_jsonpath_compile(path, err);
    if (p) {
        lt_jsonpath_free(p);
        fail_msg("'%s' compiled, expected error '%s'", path, want);
    }
    if (strcmp(err, want) != 0)
        fail_msg("'%s': error '%s', expected '%s'", path, err, want);
}

static void test_lego_capture(void **state)
{
    (void)state;
    size_t n;
    char *s = query("$.data[0].id", &n);
    assert_int_equal(n, 1);
    assert_string_equal(s, "[42]");
    free(s);
    /* a list response without data: no match, not a crash */
    json_t *doc = json_loads("[1, 2]", 0, NULL);
    char err[CU_ERRLEN];
    lt_jsonpath *p = lt_jsonpath_compile("$.data[0].id", err);
    json_t *out = json_array();
    assert_int_equal(lt_jsonpath_query(p, doc, out), 0);
    assert_int_equal(json_array_size(out), 0);
    json_decref(doc);
    doc = json_loads("{\"data\": []}", 0, NULL);
    assert_int_equal(lt_jsonpath_query(p, doc, out), 0);
    json_decref(doc);
    doc = json_string("text");
    assert_int_equal(lt_jsonpath_query(p, doc, out), 0);
    json_decref(doc);
    json_decref(out);
    lt_jsonpath_free(p);
}

static void test_members_and_indices(void **state)
{
    (void)state;
    check("$", "[" "{\"data\":[{\"id\":42,\"name\":\"castle\",\"tags\":[\"a\",\"b\"]},{\"id\":43,\"name\":\"ship\","
          "\"tags\":[]},{\"id\":44,\"name\":\"train\",\"owner\":{\"id\":7}}],\"meta\":{\"total\":3,\"page\":{\"n\":1,"
          "\"id\":\"p1\"}},\"odd key\":true,\"it's\":1,\"0\":\"zero\",\"id\":\"root\"}" "]");
    check("$.meta.total", "[3]");
    check("$.meta.page.id", "[\"p1\"]");
    check("$['meta']['page'][\"n\"]", "[1]");
    check("$['odd key']", "[true]");
    check("$['it\\'s']", "[1]");
    check("$.odd key", "[true]");
    check("$.data[2].owner.id", "[7]");
    check("$.data[0].tags[1]", "[\"b\"]");
    check("$.data[-1].name", "[\"train\"]");
    check("$.data[-3].id", "[42]");
    check("$.data[-4].id", "[]");
    check("$.data[3]", "[]");
    check("$.data.0.id", "[42]");      /* jsonpath-plus: digits index arrays */
    check("$.data.length", "[3]");     /* and arrays have a length */
    check("$[0]", "[\"zero\"]");        /* an index on an object is a key */
    check("$[ 0 ]", "[\"zero\"]");
    check("data[1].name", "[\"ship\"]"); /* no leading $ */
    check("meta.total", "[3]");
    check("$.nope", "[]");
    check("$.meta.total.x", "[]");
    check("$.data.id", "[]");
}

static void test_wildcards(void **state)
{
    (void)state;
    check("$.data[*].id", "[42,43,44]");
    check("$.data.*.name", "[\"castle\",\"ship\",\"train\"]");
    check("$.meta.*", "[3,{\"n\":1,\"id\":\"p1\"}]");
    check("$.meta[*].n", "[1]");
    check("$.data[*].tags[*]", "[\"a\",\"b\"]");
    check("$.meta.total.*", "[]");
}

static void test_recursive(void **state)
{
    (void)state;
    check("$..id", "[\"root\",42,43,44,7,\"p1\"]"); /* the node itself first */
    check("$..owner.id", "[7]");
    check("$..tags[0]", "[\"a\"]");
    check("$..[1]", "[{\"id\":43,\"name\":\"ship\",\"tags\":[]},\"b\"]");
    check("$.meta..*", "[3,{\"n\":1,\"id\":\"p1\"},1,\"p1\"]");
    check("$..['n']", "[1]");
    check("$..nothing", "[]");
    check("$.data..id", "[42,43,44,7]");
    size_t n;
    char *s = query("$..*", &n);
    assert_int_equal(n, 25);
    free(s);
}

static void test_slices(void **state)
{
    (void)state;
    check("$.data[0:2].id", "[42,43]");
    check("$.data[1:].id", "[43,44]");
    check("$.data[:1].id", "[42]");
    check("$.data[-2:].id", "[43,44]");
    check("$.data[:-1].id", "[42,43]");
    check("$.data[::2].id", "[42,44]");
    check("$.data[0:3:2].id", "[42,44]");
    check("$.data[5:9]", "[]");
    check("$.data[2:1]", "[]");
    check("$.data[-99:99].id", "[42,43,44]");
    check("$.meta[0:1]", "[]");
    check("$.data[ 1 : 2 ].id", "[43]");
}

static void test_errors(void **state)
{
    (void)state;
    check_error("$.data[?(@.id > 1)]", "column 7: filter expressions ([?(...)]) are not supported");
    check_error("$.data[(@.length-1)]", "column 7: script expressions ([(...)]) are not supported");
    check_error("$.data[0,1]", "column 9: unions ([a,b]) are not supported");
    check_error("$['a','b']", "column 6: unions ([a,b]) are not supported");
    check_error("$.data[0", "column 9: expected ']' to close the '[' at column 7");
    check_error("$.data[]", "column 8: expected an index, a slice, '*' or a quoted name after '['");
    check_error("$.data[x]", "column 8: expected an index, a slice, '*' or a quoted name after '['");
    check_error("$['abc]", "column 3: unterminated quoted name");
    check_error("$.", "column 3: expected a name or '*' after '.'");
    check_error("$.a.", "column 5: expected a name or '*' after '.'");
    check_error("$..", "column 4: expected a name or '*' after '..'");
    check_error("$...a", "column 4: expected a name, '*' or '[' after '..'");
    check_error("$abc", "column 2: expected '.' or '[', found 'a'");
    check_error("$.a]", "column 4: unexpected ']'");
    check_error("$.data[::0]", "column 10: a slice step must be positive");
    check_error("", "column 1: empty path");
    char err[CU_ERRLEN];
    assert_null(lt_jsonpath_compile(NULL, err));
}

/* Every prefix compiles or fails with a column, and never leaks. */
static void test_prefixes(void **state)
{
    (void)state;
    const char *src = "$..data[-1:]['it\\'s'][*].x[0:2:1]..*";
    json_t *doc = json_loads(doc_text, 0, NULL);
    json_t *out = json_array();
    char buf[128], err[CU_ERRLEN];
    size_t ok = 0;
    for (size_t n = 0; n <= strlen(src); n++) {
        memcpy(buf, src, n);
        buf[n] = 0;
        lt_jsonpath *p = lt_jsonpath_compile(buf, err);
        if (p) {
            ok++;
            lt_jsonpath_query(p, doc, out);
            lt_jsonpath_free(p);
        } else {
            assert_true(cu_startswith(err, "column "));
        }
    }
    assert_true(ok >= 8);
    json_decref(out);
    json_decref(doc);
}

/* ---- jsontext.c: the same answers from the text --------------------------------------- */
/* Documents jansson loads and documents it refuses, at their edges: the
 * text check must agree with json_loadb(JSON_DECODE_ANY) on every one. */
static const char *const text_docs[] = {
    /* loaded */
    "{\"a\":1}", " [1, 2, 3] ", "\"str\"", "123", "-0", "1.5e3", "2E-7", "true", "false", "null",
    " \t\r\n{ } ", "[]", "[[],[1],{}]", "{\"a\":{\"b\":[{\"c\":\"x\"}]}}",
    "{\"a\":1,\"a\":2}", "{\"a\":{\"b\":1},\"a\":{\"c\":2}}",
    "{\"k\\u00e9y\":\"v\",\"q\\\"\":1,\"\\ud83d\\ude00\":2,\"t\\tab\":3,\"s\\/l\":4}",
    "{\"k\xc3\xa9y\":\"raw\",\"\xf0\x9f\x98\x80\":\"raw emoji\",\"\xe2\x82\xac\":1}",
    "{\"data\":[{\"id\":\"moc-1\",\"n\":1},{\"id\":\"moc-2\"}],\"length\":5,\"obj\":{\"-1\":\"m1\",\"2\":\"two\"}}",
    "[10,20,30,{\"length\":\"own\"}]", "9223372036854775807", "-9223372036854775808", "1e308",
    "1e-400", "0.0", "-1.25e+2", "\"\x7f\"", "\"\\b\\f\\n\\r\"",
    /* refused */
    "", " ", "{", "}", "{\"a\"}", "{\"a\":}", "[1,]", "[,1]", "{\"a\":1,}", "01", "1.", ".5", "-",
    "+1", "1e", "1e+", "tru", "nul", "falsey", "\"abc", "\"a\x01" "b\"", "\"\\u0000\"", "\"\\ud800\"",
    "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\xff\"", "\"\xc0\x80\"", "\"\xed\xa0\x80\"",
    "\"\xf4\x90\x80\x80\"", "\"\xe2\x82\"", "\"\xe0\x80\x80\"", "\"\xf0\x80\x80\x80\"", "{} {}", "[1] x", "\xef\xbb\xbf{}", "'a'", "{a:1}",
    "\"\\x\"", "\"\\u12g4\"", "9223372036854775808", "-9223372036854775809", "1e309", "-1e309",
    "[1 2]", "{\"a\" 1}", "{1:2}", "\"\t\"", "NaN", "Infinity", "[-]",
};

static const char *const text_paths[] = {
    "$", "$.a", "$.a.b", "$.a.b[0].c", "$.a.c", "$.data[0].id", "$.data[1]", "$.data[-1].id",
    "$.data[-3]", "$.data.0.id", "$.data.1.n", "$.data.length", "$.data.length.x", "$.length",
    "$[0]", "$[2]", "$[3].length", "$[5]", "$[-4]", "$[-5]", "$.obj[-1]", "$.obj[2]", "$.obj.2",
    "$[\"k\xc3\xa9y\"]", "$[\"\xf0\x9f\x98\x80\"]", "$['q\"']", "$[\"t\tab\"]", "$[\"s/l\"]",
    "$[\"\xe2\x82\xac\"]", "$.data[99999999999999999999]", "$.data.99999999999999999999", "data[0]",
};

/* The rule hasProperty had over the loaded document (lodash's _.has as
 * the expect plugin uses it), kept here as the oracle of the text walk. */
static bool has_path_loaded(json_t *v, const char *path)
{
    char key[256];
    const char *p = path;
    if (!*p)
        return false;
    while (*p && v) {
        size_t n = strcspn(p, ".[]");
        if (n >= sizeof key)
            return false;
        memcpy(key, p, n);
        key[n] = '\0';
        p += n;
        if (n) {
            if (json_is_object(v)) {
                v = json_object_get(v, key);
            } else if (json_is_array(v)) {
                char *end;
                unsigned long i = strtoul(key, &end, 10);
                v = *end ? NULL : json_array_get(v, i);
            } else {
                return false;
            }
            if (!v)
                return false;
        }
        while (*p == '.' || *p == '[' || *p == ']')
            p++;
    }
    return v != NULL;
}

static void test_text_has_path_as_loaded(void **state)
{
    (void)state;
    static const char *const props[] = {
        "a", "a.b", "a.b[0]", "a.b[0].c", "a.b.0.c", "a.b[1]", "a.c", "data", "data[0].id",
        "data.1", "data[1].n", "data[2]", "length", "data.length", "obj.-1", "obj.2", "obj[2]",
        "0", "2", "3", "3.length", "4", "-1", "+1", " 1", "01", "1x", "k\xc3\xa9y", "q\"",
        "\xf0\x9f\x98\x80", "t\tab", "s/l", "\xe2\x82\xac", "", ".", "[]", "a..b", "a[0]",
        "[0]", "data[99999999999999999999]", "data.18446744073709551616", "x", "a.b[0].c.d"};
    int compared = 0, found = 0;
    for (size_t i = 0; i < sizeof text_docs / sizeof *text_docs; i++) {
        const char *d = text_docs[i];
        json_t *doc = json_loadb(d, strlen(d), JSON_DECODE_ANY, NULL);
        if (!doc)
            continue;
        for (size_t j = 0; j < sizeof props / sizeof *props; j++) {
            bool want = has_path_loaded(doc, props[j]);
            if (lt_json_text_has_path(d, strlen(d), props[j]) != want)
                fail_msg("'%s' over %s: loaded %d, text %d", props[j], d, want, !want);
            found += want;
            compared++;
        }
        json_decref(doc);
    }
    assert_true(compared > 1000);
    assert_true(found > 40);
    /* a name of 256 bytes or more finds nothing, even when it is there */
    char name[300], doc[310];
    memset(name, 'k', 256);
    name[256] = '\0';
    snprintf(doc, sizeof doc, "{\"%s\":1}", name);
    assert_false(lt_json_text_has_path(doc, strlen(doc), name));
    name[255] = '\0';
    snprintf(doc, sizeof doc, "{\"%s\":1}", name);
    assert_true(lt_json_text_has_path(doc, strlen(doc), name));
}

static void test_text_valid_as_jansson(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof text_docs / sizeof *text_docs; i++) {
        const char *d = text_docs[i];
        json_t *v = json_loadb(d, strlen(d), JSON_DECODE_ANY, NULL);
        int type = lt_json_text_type(d, strlen(d));
        if ((type != 0) != (v != NULL))
            fail_msg("document %zu (%s): jansson %s it, jsontext.c does not agree", i, d,
                     v ? "loads" : "refuses");
        /* the type is the value's first byte */
        if (v) {
            bool same = json_is_object(v) ? type == '{' : json_is_array(v) ? type == '[' :
                        json_is_string(v) ? type == '"' : json_is_true(v) ? type == 't' :
                        json_is_false(v) ? type == 'f' : json_is_null(v) ? type == 'n' :
                        type == '-' || (type >= '0' && type <= '9');
            if (!same)
                fail_msg("document %zu (%s): type '%c' for a jansson %d", i, d, type, (int)json_typeof(v));
        }
        json_decref(v);
    }
    /* nesting: jansson counts every value (2048 arrays load, 2049 do not;
     * a number inside 2047 arrays loads, inside 2048 it does not) */
    for (size_t depth = 2046; depth <= 2049; depth++) {
        for (int inner = 0; inner < 2; inner++) {
            size_t len = 2 * depth + (size_t)inner;
            char *d = malloc(len);
            memset(d, '[', depth);
            if (inner)
                d[depth] = '1';
            memset(d + depth + (size_t)inner, ']', depth);
            json_t *v = json_loadb(d, len, JSON_DECODE_ANY, NULL);
            assert_int_equal(lt_json_text_type(d, len) != 0, v != NULL);
            assert_int_equal(v != NULL, depth + (size_t)inner <= 2048);
            json_decref(v);
            free(d);
        }
    }
    assert_int_equal(lt_json_text_type(NULL, 0), 0);
    assert_int_equal(lt_json_text_type("[1]", 2), 0); /* the length counts, not a NUL */
}

static void test_text_paths_as_loaded(void **state)
{
    (void)state;
    int compared = 0, matched = 0;
    for (size_t i = 0; i < sizeof text_docs / sizeof *text_docs; i++) {
        const char *d = text_docs[i];
        json_t *doc = json_loadb(d, strlen(d), JSON_DECODE_ANY, NULL);
        if (!doc)
            continue;
        for (size_t j = 0; j < sizeof text_paths / sizeof *text_paths; j++) {
            char err[CU_ERRLEN];
            lt_jsonpath *p = lt_jsonpath_compile(text_paths[j], err);
            if (!p)
                fail_msg("'%s' does not compile: %s", text_paths[j], err);
            assert_true(lt_jsonpath_plain(p));
            json_t *out = json_array();
            size_t n = lt_jsonpath_query(p, doc, out);
            assert_true(n <= 1);
            json_t *got = NULL;
            int rc = lt_jsonpath_text(p, d, strlen(d), &got);
            if (rc != (n == 1) || (n == 1 && !json_equal(got, json_array_get(out, 0)))) {
                char *a = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);
                char *b = got ? json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
                char msg[1024];
                snprintf(msg, sizeof msg, "'%s' over %s: loaded %s, text %d %s", text_paths[j], d, a,
                         rc, b ? b : "-");
                free(a);
                free(b);
                fail_msg("%s", msg);
            }
            matched += rc == 1;
            compared++;
            json_decref(got);
            json_decref(out);
            lt_jsonpath_free(p);
        }
        json_decref(doc);
    }
    assert_true(compared > 500);
    assert_true(matched > 40); /* the corpus reaches the paths, not only misses */
    /* not plain: these take the loaded document */
    const char *loaded_only[] = {"$.data[*].id", "$..id", "$.data[0:2]", "$.*"};
    for (size_t i = 0; i < 4; i++) {
        char err[CU_ERRLEN];
        lt_jsonpath *p = lt_jsonpath_compile(loaded_only[i], err);
        assert_non_null(p);
        assert_false(lt_jsonpath_plain(p));
        lt_jsonpath_free(p);
    }
}

/* Random documents from JSON's tokens and near-misses, in buffers of their
 * exact size (so a read past the end is caught under ASan): the text check
 * agrees with jansson on every one, and over the valid ones the paths give
 * what the loaded document gives. Fixed seed: the same documents each run. */
static void test_text_random_documents(void **state)
{
    (void)state;
    static const char *const tok[] = {
        "{", "}", "[", "]", ",", ":", " ", "\n", "\"a\"", "\"data\"", "\"id\"", "\"\\u00e9\"",
        "\"\\ud83d\\ude00\"", "\"\\ud800\"", "\"\\u0000\"", "\"x\\\"y\"", "\"\xc3\xa9\"", "\"\xff\"",
        "\"\xe2\x82\"", "0", "-1", "12", "1.5", "1e3", "-0.0e-1", "01", "1.", "99999999999999999999",
        "true", "false", "null", "tru", "\"", "\\", "\"\x01\"", "x", "\"length\"", "\"0\"", "1e999",
    };
    static const char *const paths[] = {"$", "$.a", "$.data[0].id", "$.data[1]", "$[0]", "$[-1]",
                                        "$.a.length", "$.length", "$[0].a", "$.data.0", "$['\xc3\xa9']"};
    lt_jsonpath *compiled[sizeof paths / sizeof *paths];
    char err[CU_ERRLEN];
    for (size_t j = 0; j < sizeof paths / sizeof *paths; j++)
        assert_non_null(compiled[j] = lt_jsonpath_compile(paths[j], err));
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int valid = 0, matched = 0;
    char buf[512];
    for (int round = 0; round < 20000; round++) {
        size_t len = 0, ntok = (round & 5) == 5 ? 1 : 1 + (x >> 60);
        /* half the documents start from a valid skeleton, so many are valid */
        if (round & 1) {
            const char *base = (round & 2) ? "{\"data\":[{\"id\":" : "[{\"a\":";
            memcpy(buf, base, strlen(base));
            len = strlen(base);
        }
        for (size_t k = 0; k < ntok; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            const char *t = tok[x % (sizeof tok / sizeof *tok)];
            memcpy(buf + len, t, strlen(t));
            len += strlen(t);
        }
        if (round & 1) {
            const char *tail = (round & 2) ? "}]}" : "}]";
            if ((x >> 8) & 1) { /* usually closed properly */
                memcpy(buf + len, tail, strlen(tail));
                len += strlen(tail);
            }
        }
        char *d = malloc(len ? len : 1);
        memcpy(d, buf, len);
        json_t *doc = json_loadb(d, len, JSON_DECODE_ANY, NULL);
        if ((lt_json_text_type(d, len) != 0) != (doc != NULL))
            fail_msg("round %d: '%.*s': jansson %s it, jsontext.c does not agree", round, (int)len, d,
                     doc ? "loads" : "refuses");
        if (doc) {
            valid++;
            for (size_t j = 0; j < sizeof paths / sizeof *paths; j++) {
                json_t *out = json_array(), *got = NULL;
                size_t n = lt_jsonpath_query(compiled[j], doc, out);
                int rc = lt_jsonpath_text(compiled[j], d, len, &got);
                if (rc != (n == 1) || (n == 1 && !json_equal(got, json_array_get(out, 0))))
                    fail_msg("round %d: '%s' over '%.*s': loaded %zu, text %d", round, paths[j],
                             (int)len, d, n, rc);
                matched += rc == 1;
                json_decref(got);
                json_decref(out);
            }
            json_decref(doc);
        }
        free(d);
    }
    for (size_t j = 0; j < sizeof paths / sizeof *paths; j++)
        lt_jsonpath_free(compiled[j]);
    if (valid < 1000 || matched < 500)
        fail_msg("only %d valid documents and %d matches: the generator no longer reaches them", valid, matched);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lego_capture), cmocka_unit_test(test_members_and_indices),
        cmocka_unit_test(test_wildcards),    cmocka_unit_test(test_recursive),
        cmocka_unit_test(test_slices),       cmocka_unit_test(test_errors),
        cmocka_unit_test(test_prefixes),     cmocka_unit_test(test_text_valid_as_jansson),
        cmocka_unit_test(test_text_paths_as_loaded), cmocka_unit_test(test_text_has_path_as_loaded), cmocka_unit_test(test_text_random_documents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
