/* Unit tests for the virtual user's cookie jar (loadtest/cookie.c): RFC 6265
 * domain, path and Secure scoping, replacement, expiry and order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "loadtest/internal.h"

static int set(lt_jar *j, const char *sc, const char *url)
{
    return lt_jar_set(j, sc, strlen(sc), url);
}

/* The Cookie header for url (a static buffer, "" when none). */
static const char *hdr(const lt_jar *j, const char *url)
{
    static char out[512];
    cu_buf b = CU_BUF_INIT;
    lt_jar_header(j, url, &b);
    snprintf(out, sizeof out, "%s", b.data ? b.data : "");
    cu_buf_free(&b);
    return out;
}

static void host_only_by_default(void **state)
{
    (void)state;
    lt_jar j = {0};
    assert_int_equal(set(&j, "sid=1", "http://api.example.com/login"), 0);
    assert_string_equal(hdr(&j, "http://api.example.com/x"), "sid=1");
    assert_string_equal(hdr(&j, "http://API.example.com:8080/x"), "sid=1"); /* any port */
    assert_string_equal(hdr(&j, "http://example.com/x"), "");
    assert_string_equal(hdr(&j, "http://www.api.example.com/x"), "");
    assert_string_equal(hdr(&j, "http://evil.test/x"), "");
    lt_jar_free(&j);
}

static void domain_attribute(void **state)
{
    (void)state;
    lt_jar j = {0};
    set(&j, "a=1; Domain=.example.com", "http://api.example.com/");
    assert_string_equal(hdr(&j, "http://example.com/"), "a=1");
    assert_string_equal(hdr(&j, "http://cdn.example.com/"), "a=1");
    assert_string_equal(hdr(&j, "http://badexample.com/"), "");
    /* a domain the host is not in is refused */
    set(&j, "b=2; Domain=other.test", "http://api.example.com/");
    assert_string_equal(hdr(&j, "http://other.test/"), "");
    /* an IP address matches only itself */
    set(&j, "c=3; Domain=127.0.0.1", "http://127.0.0.1:9000/");
    assert_string_equal(hdr(&j, "http://127.0.0.1/"), "c=3");
    lt_jar_free(&j);
}

static void paths(void **state)
{
    (void)state;
    lt_jar j = {0};
    set(&j, "d=dir", "http://h/api/v1/login");          /* default path /api/v1 */
    set(&j, "r=root; Path=/", "http://h/api/v1/login");
    set(&j, "p=prefix; Path=/api", "http://h/");
    assert_string_equal(hdr(&j, "http://h/api/v1/items?x=1"), "d=dir; p=prefix; r=root");
    assert_string_equal(hdr(&j, "http://h/api/v1"), "d=dir; p=prefix; r=root");
    assert_string_equal(hdr(&j, "http://h/api/v10"), "p=prefix; r=root"); /* not a path match */
    assert_string_equal(hdr(&j, "http://h/apix"), "r=root");
    assert_string_equal(hdr(&j, "http://h/"), "r=root");
    set(&j, "q=1; Path=relative", "http://h/a/b");      /* not /-rooted: the default */
    assert_string_equal(hdr(&j, "http://h/a/z"), "q=1; r=root");
    lt_jar_free(&j);
}

static void secure_only_over_https(void **state)
{
    (void)state;
    lt_jar j = {0};
    set(&j, "s=1; Secure; HttpOnly", "https://h/");
    set(&j, "p=2", "https://h/");
    assert_string_equal(hdr(&j, "https://h/"), "s=1; p=2");
    assert_string_equal(hdr(&j, "http://h/"), "p=2");
    lt_jar_free(&j);
}

static void replace_expire_and_order(void **state)
{
    (void)state;
    lt_jar j = {0};
    set(&j, "a=1", "http://h/");
    set(&j, "b=2", "http://h/");
    set(&j, "a=3", "http://h/"); /* replaced, keeps its place */
    assert_string_equal(hdr(&j, "http://h/"), "a=3; b=2");
    set(&j, "a=gone; Max-Age=0", "http://h/");
    assert_string_equal(hdr(&j, "http://h/"), "b=2");
    set(&j, "b=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT", "http://h/");
    assert_string_equal(hdr(&j, "http://h/"), "");
    set(&j, "c=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=60", "http://h/");
    assert_string_equal(hdr(&j, "http://h/"), "c=1"); /* Max-Age wins */
    /* same name, other path: two cookies */
    set(&j, "c=deep; Path=/x", "http://h/");
    assert_string_equal(hdr(&j, "http://h/x/y"), "c=deep; c=1");
    lt_jar_free(&j);
}

static void malformed(void **state)
{
    (void)state;
    lt_jar j = {0};
    assert_int_equal(set(&j, "novalue", "http://h/"), -1);
    assert_int_equal(set(&j, "=v", "http://h/"), -1);
    assert_int_equal(set(&j, " a = b ; path=/", "http://h/"), 0);
    assert_string_equal(hdr(&j, "http://h/"), "a=b");
    assert_int_equal(set(&j, "x=1", "not a url"), 0); /* nothing to scope it to: dropped */
    assert_string_equal(hdr(&j, "not a url"), "");
    /* many cookies: more than the header builder's stack array */
    for (int i = 0; i < 100; i++) {
        char sc[32];
        snprintf(sc, sizeof sc, "k%d=%d", i, i);
        set(&j, sc, "http://many/");
    }
    cu_buf b = CU_BUF_INIT;
    lt_jar_header(&j, "http://many/", &b);
    assert_non_null(strstr(b.data, "k0=0; k1=1"));
    assert_non_null(strstr(b.data, "k99=99"));
    cu_buf_free(&b);
    lt_jar_reset(&j);
    assert_string_equal(hdr(&j, "http://h/"), "");
    lt_jar_free(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(host_only_by_default), cmocka_unit_test(domain_attribute),
        cmocka_unit_test(paths),                cmocka_unit_test(secure_only_over_https),
        cmocka_unit_test(replace_expire_and_order), cmocka_unit_test(malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
