/* Unit tests for base: buffers, rng, edit distance, paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <stdlib.h>
#include <errno.h>
#include <dirent.h>
#include <unistd.h>

#include "base/base.h"

static void test_buf(void **state)
{
    (void)state;
    cu_buf b = CU_BUF_INIT;
    for (int i = 0; i < 1000; i++)
        cu_buf_appendf(&b, "%d,", i);
    assert_int_equal(b.len, strlen(b.data));
    assert_true(cu_startswith(b.data, "0,1,2,3,"));
    cu_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    cu_buf_appendf(&b, "%s!", big);
    assert_int_equal(b.len, 1000);
    char *s = cu_buf_steal(&b);
    assert_int_equal(s[999], '!');
    free(s);
    assert_null(b.data);
}

static void test_rng(void **state)
{
    (void)state;
    cu_rng r;
    cu_rng_seed(&r, 42);
    int counts[10] = {0};
    for (int i = 0; i < 100000; i++) {
        uint64_t v = cu_rng_below(&r, 10);
        assert_true(v < 10);
        counts[v]++;
        double d = cu_rng_double(&r);
        assert_true(d >= 0 && d < 1);
    }
    for (int i = 0; i < 10; i++)
        assert_in_range(counts[i], 9500, 10500);
    assert_int_equal(cu_rng_below(&r, 0), 0);
}

static void test_nearest(void **state)
{
    (void)state;
    assert_int_equal(cu_edit_distance("kitten", "sitting"), 3);
    assert_int_equal(cu_edit_distance("", "abc"), 3);
    const char *keys[] = {"target", "phases", "variables", "processor", "plugins"};
    assert_string_equal(cu_nearest("phase", keys, 5), "phases");
    assert_string_equal(cu_nearest("varables", keys, 5), "variables");
    assert_null(cu_nearest("zzzzzzzz", keys, 5));
}

static void test_paths(void **state)
{
    (void)state;
    char *d = cu_dirname("a/b/c.yml");
    assert_string_equal(d, "a/b");
    char *p = cu_path_join(d, "./fixtures/x.jpg");
    assert_string_equal(p, "a/b/fixtures/x.jpg");
    free(p);
    p = cu_path_join(d, "/abs");
    assert_string_equal(p, "/abs");
    free(p);
    free(d);
    d = cu_dirname("c.yml");
    assert_string_equal(d, ".");
    free(d);
}

/* cu_write_file: whole contents, replaced atomically, nothing left behind. */
static void test_write_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/cutover-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = cu_path_join(dir, "f.txt");
    char err[CU_ERRLEN];
    assert_int_equal(cu_write_file(path, "first\n", 6), 0);
    cu_buf b = CU_BUF_INIT;
    assert_int_equal(cu_read_file(path, &b, err), 0);
    assert_string_equal(b.data, "first\n");
    assert_int_equal(cu_write_file(path, "2", 1), 0); /* replaced, not appended */
    cu_buf_reset(&b);
    assert_int_equal(cu_read_file(path, &b, err), 0);
    assert_string_equal(b.data, "2");
    assert_int_equal(cu_write_file(path, "", 0), 0);
    cu_buf_reset(&b);
    assert_int_equal(cu_read_file(path, &b, err), 0);
    assert_int_equal(b.len, 0);
    char *missing = cu_path_join(dir, "no/such/dir/f.txt");
    assert_int_equal(cu_write_file(missing, "x", 1), -ENOENT);
    /* only f.txt in the folder: no temporary file left */
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    assert_int_equal(n, 1);
    unlink(path);
    rmdir(dir);
    cu_buf_free(&b);
    free(path);
    free(missing);
}

static void test_append_u64(void **state)
{
    (void)state;
    cu_buf b = CU_BUF_INIT;
    cu_buf_append_u64(&b, 0);
    cu_buf_appendc(&b, ' ');
    cu_buf_append_u64(&b, 7);
    cu_buf_appendc(&b, ' ');
    cu_buf_append_u64(&b, 1000);
    cu_buf_appendc(&b, ' ');
    cu_buf_append_u64(&b, UINT64_MAX);
    assert_string_equal(b.data, "0 7 1000 18446744073709551615");
    cu_buf_free(&b);
}

static void test_hexval(void **state)
{
    (void)state;
    const char *digits = "0123456789abcdef", *upper = "ABCDEF";
    for (int i = 0; i < 16; i++)
        assert_int_equal(cu_hexval(digits[i]), i);
    for (int i = 0; i < 6; i++)
        assert_int_equal(cu_hexval(upper[i]), 10 + i);
    for (const char *c = "gG/:@`x \xff"; *c; c++)
        assert_int_equal(cu_hexval(*c), -1);
    assert_int_equal(cu_hexval('\0'), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_nearest),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_write_file),
        cmocka_unit_test(test_append_u64),
        cmocka_unit_test(test_hexval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
