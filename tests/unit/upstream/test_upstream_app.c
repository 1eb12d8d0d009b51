/* Unit tests for upstream's pure parts: the multipart parser, latency
 * distributions, the route table and the app's responses (no I/O). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "upstream/upstream.h"

#define S(lit) lit, sizeof(lit) - 1

/* ---- multipart ------------------------------------------------------------------------ */
static int parse(const char *body, size_t len, const char *b, upstream_part *parts, size_t max,
                 size_t *n)
{
    const char *why = NULL;
    int r = upstream_mp_parse(body, len, b, strlen(b), parts, max, n, &why);
    if (r < 0)
        assert_non_null(why);
    return r;
}

static void assert_mem(const char *p, size_t n, const char *want)
{
    if (n != strlen(want) || memcmp(p, want, n)) {
        print_error("got '%.*s' (%zu bytes), want '%s' (%zu bytes)\n", (int)n, p, n, want,
                    strlen(want));
        fail();
    }
}

static void test_mp_boundary(void **state)
{
    (void)state;
    const char *b;
    size_t n;
    const char *ct = "multipart/form-data; boundary=--------------------------123456789012";
    assert_int_equal(upstream_mp_boundary(ct, strlen(ct), &b, &n), 0);
    assert_mem(b, n, "--------------------------123456789012");
    ct = "Multipart/Form-Data;charset=utf-8;  Boundary=\"a b;c\"";
    assert_int_equal(upstream_mp_boundary(ct, strlen(ct), &b, &n), 0);
    assert_mem(b, n, "a b;c");
    ct = "multipart/form-data; boundary=xyz ; foo=bar";
    assert_int_equal(upstream_mp_boundary(ct, strlen(ct), &b, &n), 0);
    assert_mem(b, n, "xyz");
    /* the lego-api script sets this header itself: no boundary */
    ct = "multipart/form-data";
    assert_int_equal(upstream_mp_boundary(ct, strlen(ct), &b, &n), -EINVAL);
    ct = "multipart/form-data; boundary=";
    assert_int_equal(upstream_mp_boundary(ct, strlen(ct), &b, &n), -EINVAL);
    ct = "multipart/form-data; boundary=\"unterminated";
    assert_int_equal(upstream_mp_boundary(ct, strlen(ct), &b, &n), -EINVAL);
    ct = "application/json; boundary=x";
    assert_int_equal(upstream_mp_boundary(ct, strlen(ct), &b, &n), -EINVAL);
    char longb[200];
    snprintf(longb, sizeof longb, "multipart/form-data; boundary=%071d", 7);
    assert_int_equal(upstream_mp_boundary(longb, strlen(longb), &b, &n), -EINVAL);
    assert_int_equal(upstream_mp_boundary(NULL, 0, &b, &n), -EINVAL);
}

/* What Node's form-data (Artillery's formData) sends. */
static const char NODE_BODY[] =
    "----------------------------123456789012\r\n"
    "Content-Disposition: form-data; name=\"image\"; filename=\"test-image.jpg\"\r\n"
    "Content-Type: image/jpeg\r\n"
    "\r\n"
    "\xff\xd8\xff\xe0JFIF\r\n\x00\x01--not-a-boundary\r\n"
    "\r\n"
    "----------------------------123456789012--\r\n";
static const char NODE_B[] = "--------------------------123456789012";

static void test_mp_single(void **state)
{
    (void)state;
    upstream_part p[4];
    size_t n = 99;
    assert_int_equal(parse(NODE_BODY, sizeof NODE_BODY - 1, NODE_B, p, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_mem(p[0].name, p[0].name_len, "image");
    assert_true(p[0].is_file);
    assert_mem(p[0].filename, p[0].filename_len, "test-image.jpg");
    assert_mem(p[0].content_type, p[0].content_type_len, "image/jpeg");
    const char want[] = "\xff\xd8\xff\xe0JFIF\r\n\x00\x01--not-a-boundary\r\n";
    assert_int_equal(p[0].data_len, sizeof want - 1);
    assert_memory_equal(p[0].data, want, sizeof want - 1);
}

static void test_mp_many(void **state)
{
    (void)state;
    static const char body[] =
        "preamble to ignore\r\n"
        "--XyZ  \t\r\n"                             /* transport padding */
        "content-disposition: form-data; name=title\r\n"
        "\r\n"
        "hello\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"a\"; filename=\"a.txt\"\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        "line1\r\n--XyZnot\r\n--XyZ-x\r\nline2\r\n" /* look-alikes are content */
        "\r\n--XyZ\r\n"
        "Content-Disposition: form-data; name=\"empty\"; filename=\"\"\r\n"
        "\r\n"
        "\r\n--XyZ\r\n"
        "Content-Disposition: form-data; name=\"nodata\"\r\n"
        "\r\n"
        "--XyZ--"                                    /* no CRLF after close */
        "";
    upstream_part p[8];
    size_t n = 0;
    assert_int_equal(parse(body, sizeof body - 1, "XyZ", p, 8, &n), 0);
    assert_int_equal(n, 4);
    assert_mem(p[0].name, p[0].name_len, "title");
    assert_false(p[0].is_file);
    assert_mem(p[0].content_type, p[0].content_type_len, "");
    assert_mem(p[0].data, p[0].data_len, "hello");
    assert_mem(p[1].name, p[1].name_len, "a");
    assert_true(p[1].is_file);
    assert_mem(p[1].data, p[1].data_len, "line1\r\n--XyZnot\r\n--XyZ-x\r\nline2\r\n");
    assert_mem(p[2].name, p[2].name_len, "empty");
    assert_true(p[2].is_file);
    assert_int_equal(p[2].filename_len, 0);
    assert_int_equal(p[2].data_len, 0);
    assert_mem(p[3].name, p[3].name_len, "nodata");
    assert_int_equal(p[3].data_len, 0);

    /* epilogue after the close delimiter is ignored */
    static const char body2[] = "--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n"
                                "--b--\r\nepilogue --b\r\n";
    assert_int_equal(parse(body2, sizeof body2 - 1, "b", p, 8, &n), 0);
    assert_int_equal(n, 1);
    assert_mem(p[0].data, p[0].data_len, "1");

    /* more parts than room */
    assert_int_equal(parse(body, sizeof body - 1, "XyZ", p, 2, &n), -E2BIG);
    assert_int_equal(n, 3);
}

static void test_mp_invalid(void **state)
{
    (void)state;
    upstream_part p[4];
    size_t n;
    /* every strict prefix is truncated (the last valid one drops only the final CRLF) */
    size_t len = sizeof NODE_BODY - 1;
    for (size_t i = 0; i < len - 2; i++) {
        int r = parse(NODE_BODY, i, NODE_B, p, 4, &n);
        if (r != -EINVAL) {
            print_error("prefix of %zu bytes: %d\n", i, r);
            fail();
        }
    }
    assert_int_equal(parse(NODE_BODY, len - 2, NODE_B, p, 4, &n), 0);
    /* wrong boundary */
    assert_int_equal(parse(NODE_BODY, len, "nope", p, 4, &n), -EINVAL);
    /* LF-only line ends are not multipart */
    static const char lf[] = "--b\nContent-Disposition: form-data; name=x\n\n1\n--b--\n";
    assert_int_equal(parse(lf, sizeof lf - 1, "b", p, 4, &n), -EINVAL);
    /* a part without Content-Disposition */
    static const char nocd[] = "--b\r\nContent-Type: text/plain\r\n\r\n1\r\n--b--\r\n";
    assert_int_equal(parse(nocd, sizeof nocd - 1, "b", p, 4, &n), -EINVAL);
    /* not form-data */
    static const char att[] = "--b\r\nContent-Disposition: attachment; name=x\r\n\r\n1\r\n--b--";
    assert_int_equal(parse(att, sizeof att - 1, "b", p, 4, &n), -EINVAL);
    /* a header line without a colon */
    static const char hdr[] = "--b\r\nContent-Disposition form-data\r\n\r\n1\r\n--b--";
    assert_int_equal(parse(hdr, sizeof hdr - 1, "b", p, 4, &n), -EINVAL);
    /* garbage after the first delimiter: it is preamble, so no parts */
    static const char junk[] = "--bX\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--";
    assert_int_equal(parse(junk, sizeof junk - 1, "b", p, 4, &n), 0);
    assert_int_equal(n, 0);
    /* empty body; a body with only the close delimiter has no parts */
    assert_int_equal(parse("", 0, "b", p, 4, &n), -EINVAL);
    assert_int_equal(parse(S("--b--\r\n"), "b", p, 4, &n), 0);
    assert_int_equal(n, 0);
}

/* ---- latency ---------------------------------------------------------------------- */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void assert_near(double got, double want, double rel)
{
    if (fabs(got - want) > rel * want) {
        print_error("got %g, want %g within %g%%\n", got, want, rel * 100);
        fail();
    }
}

static void test_latency_parse(void **state)
{
    (void)state;
    upstream_latency l;
    char err[CU_ERRLEN];
    assert_int_equal(upstream_latency_parse(&l, "fixed:5ms", err), 0);
    assert_int_equal(l.kind, UPSTREAM_LAT_FIXED);
    assert_near(l.a_ms, 5, 1e-9);
    assert_int_equal(upstream_latency_parse(&l, "fixed:1.5s", err), 0);
    assert_near(l.a_ms, 1500, 1e-9);
    assert_int_equal(upstream_latency_parse(&l, "fixed:250us", err), 0);
    assert_near(l.a_ms, 0.25, 1e-9);
    assert_int_equal(upstream_latency_parse(&l, "fixed:7", err), 0);
    assert_near(l.a_ms, 7, 1e-9);
    assert_int_equal(upstream_latency_parse(&l, "uniform:1ms-10ms", err), 0);
    assert_int_equal(l.kind, UPSTREAM_LAT_UNIFORM);
    assert_near(l.a_ms, 1, 1e-9);
    assert_near(l.b_ms, 10, 1e-9);
    assert_int_equal(upstream_latency_parse(&l, "lognormal:p50=20ms,p99=200ms", err), 0);
    assert_int_equal(l.kind, UPSTREAM_LAT_LOGNORMAL);
    assert_near(l.mu, log(20), 1e-9);
    assert_near(l.sigma, (log(200) - log(20)) / 2.3263479, 1e-6);
    assert_int_equal(upstream_latency_parse(&l, "lognormal:p99=1s,p50=100ms", err), 0);
    assert_near(l.b_ms, 1000, 1e-9);
    assert_int_equal(upstream_latency_parse(&l, "none", err), 0);
    assert_int_equal(l.kind, UPSTREAM_LAT_NONE);

    static const char *const bad[] = {
        "fixed", "fixed:", "fixed:5m", "fixed:-1ms", "fixed:abc", "uniform:5ms",
        "uniform:10ms-1ms", "lognormal:p50=20ms", "lognormal:p50=20ms,p99=10ms",
        "lognormal:p50=0ms,p99=10ms", "lognormal:p90=20ms,p99=30ms", "gauss:1ms",
        "fixed:nan", "fixed:inf", "fixed:99999s",
    };
    for (size_t i = 0; i < CU_ARRAY_LEN(bad); i++) {
        err[0] = 0;
        if (upstream_latency_parse(&l, bad[i], err) != -EINVAL) {
            print_error("'%s' was accepted\n", bad[i]);
            fail();
        }
        assert_non_null(strstr(err, "invalid latency"));
    }
}

static void test_latency_sample(void **state)
{
    (void)state;
    enum { N = 100000 };
    double *v = malloc(N * sizeof *v);
    upstream_latency l;
    char err[CU_ERRLEN];
    cu_rng r;
    cu_rng_seed(&r, 12345);

    assert_int_equal(upstream_latency_parse(&l, "lognormal:p50=20ms,p99=200ms", err), 0);
    for (int i = 0; i < N; i++)
        v[i] = upstream_latency_sample(&l, &r);
    qsort(v, N, sizeof *v, cmp_double);
    assert_near(v[N / 2], 20, 0.03);
    assert_near(v[N * 99 / 100], 200, 0.05);
    assert_true(v[0] > 0);

    assert_int_equal(upstream_latency_parse(&l, "uniform:1ms-10ms", err), 0);
    double sum = 0;
    for (int i = 0; i < N; i++) {
        double x = upstream_latency_sample(&l, &r);
        assert_true(x >= 1 && x <= 10);
        sum += x;
    }
    assert_near(sum / N, 5.5, 0.02);

    assert_int_equal(upstream_latency_parse(&l, "fixed:5ms", err), 0);
    assert_near(upstream_latency_sample(&l, &r), 5, 1e-12);
    assert_int_equal(upstream_latency_parse(&l, "none", err), 0);
    assert_true(upstream_latency_sample(&l, &r) == 0);
    free(v);
}

/* ---- routes ------------------------------------------------------------------------ */
static void test_routes(void **state)
{
    (void)state;
    static const struct {
        const char *method, *path;
        upstream_route_id want;
        const char *param;
        bool inject;
    } cases[] = {
        {"GET", "/", UPSTREAM_R_ROOT, NULL, true},
        {"GET", "/health", UPSTREAM_R_HEALTH, NULL, false},
        {"GET", "/api/mocs", UPSTREAM_R_MOCS, NULL, true},
        {"GET", "/api/mocs/undefined", UPSTREAM_R_MOC, "undefined", true},
        {"GET", "/api/mocs/42", UPSTREAM_R_MOC, "42", true},
        {"GET", "/api/mocs/", UPSTREAM_R_NOT_FOUND, NULL, false},
        {"GET", "/api/mocs/1/x", UPSTREAM_R_NOT_FOUND, NULL, false},
        {"GET", "/api/gallery", UPSTREAM_R_GALLERY, NULL, true},
        {"GET", "/api/wishlist", UPSTREAM_R_WISHLIST, NULL, true},
        {"POST", "/api/gallery/undefined/image", UPSTREAM_R_UPLOAD, "undefined", true},
        {"GET", "/api/gallery/7/image", UPSTREAM_R_BAD_METHOD, NULL, false},
        {"POST", "/api/mocs", UPSTREAM_R_BAD_METHOD, NULL, false},
        {"PUT", "/echo", UPSTREAM_R_ECHO, NULL, false},
        {"DELETE", "/echo/a/b?c", UPSTREAM_R_ECHO, NULL, false},
        {"GET", "/echo/", UPSTREAM_R_ECHO, NULL, false},
        {"GET", "/echoes", UPSTREAM_R_NOT_FOUND, NULL, false},
        {"GET", "/status/503", UPSTREAM_R_STATUS, "503", false},
        {"GET", "/bytes/1024", UPSTREAM_R_BYTES, "1024", true},
        {"GET", "/delay/10", UPSTREAM_R_DELAY, "10", false},
        {"GET", "/healthz", UPSTREAM_R_NOT_FOUND, NULL, false},
        {"GET", "", UPSTREAM_R_NOT_FOUND, NULL, false},
    };
    for (size_t i = 0; i < CU_ARRAY_LEN(cases); i++) {
        upstream_match m;
        upstream_route_id got = upstream_route(cases[i].method, cases[i].path,
                                               strlen(cases[i].path), &m);
        if (got != cases[i].want || m.inject != cases[i].inject) {
            print_error("%s %s: route %d inject %d, want %d %d\n", cases[i].method,
                        cases[i].path, got, m.inject, cases[i].want, cases[i].inject);
            fail();
        }
        if (cases[i].param)
            assert_mem(m.param, m.param_len, cases[i].param);
        if (got == UPSTREAM_R_BAD_METHOD)
            assert_non_null(m.allow);
    }
    upstream_match m;
    upstream_route("GET", S("/api/gallery/7/image"), &m);
    assert_string_equal(m.allow, "POST");
}

/* ---- the app ------------------------------------------------------------------------ */
typedef struct {
    upstream_app app;
    http_header hdrs[8];
    http_server_request req;
    upstream_plan plan;
    upstream_reply rep;
    json_t *json;
} fixture;

static int app_setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    upstream_config cfg = {.color = "green"};
    upstream_app_init(&f->app, &cfg, 1);
    *state = f;
    return 0;
}

static int app_teardown(void **state)
{
    fixture *f = *state;
    upstream_app_free(&f->app);
    json_decref(f->json);
    free(f);
    return 0;
}

/* Runs one request through plan + reply; the JSON body (if any) is parsed
 * into f->json. Headers are "Name: value" strings. */
static const upstream_reply *call(fixture *f, const char *method, const char *target,
                                  const char *body, size_t body_len, int nh, ...)
{
    va_list ap;
    va_start(ap, nh);
    for (int i = 0; i < nh; i++) {
        const char *h = va_arg(ap, const char *);
        const char *c = strchr(h, ':');
        f->hdrs[i] = (http_header){h, (size_t)(c - h), c + 2, strlen(c + 2)};
    }
    va_end(ap);
    const char *q = strchr(target, '?');
    f->req = (http_server_request){
        .method = method, .target = target, .path = target,
        .path_len = q ? (size_t)(q - target) : strlen(target), .query = q ? q + 1 : "",
        .headers = f->hdrs, .nheaders = (size_t)nh, .body = body, .body_len = body_len,
        .peer = "127.0.0.1",
    };
    upstream_app_plan(&f->app, &f->req, &f->plan);
    upstream_app_reply(&f->app, &f->req, &f->plan, &f->rep);
    json_decref(f->json);
    f->json = NULL;
    assert_true(f->rep.nheaders >= 2);
    assert_string_equal(f->rep.headers[1].name, "X-Cutover-Color");
    assert_mem(f->rep.headers[1].value, f->rep.headers[1].value_len, "green");
    assert_string_equal(f->rep.headers[0].name, "Content-Type");
    bool encoded = false;
    for (size_t i = 0; i < f->rep.nheaders; i++)
        encoded = encoded || !strcmp(f->rep.headers[i].name, "Content-Encoding");
    if (strstr(f->rep.headers[0].value, "json") && f->rep.body_len && !encoded) {
        json_error_t e;
        f->json = json_loadb(f->rep.body, f->rep.body_len, 0, &e);
        if (!f->json) {
            print_error("invalid JSON (%s): %.*s\n", e.text, (int)f->rep.body_len, f->rep.body);
            fail();
        }
    }
    return &f->rep;
}

static const char *jstr(fixture *f, const char *path)
{
    json_t *v = f->json;
    char key[64];
    for (const char *p = path; v && *p;) {
        size_t n = strcspn(p, ".");
        snprintf(key, sizeof key, "%.*s", (int)n, p);
        v = key[0] >= '0' && key[0] <= '9' ? json_array_get(v, (size_t)atoi(key))
                                           : json_object_get(v, key);
        p += n + (p[n] == '.');
    }
    if (json_is_integer(v)) {
        static char num[32];
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        return num;
    }
    return json_is_string(v) ? json_string_value(v) : v ? "<other>" : "<missing>";
}

static void test_app_lego(void **state)
{
    fixture *f = *state;
    const upstream_reply *r = call(f, "GET", "/health", NULL, 0, 0);
    assert_int_equal(r->status, 200);
    assert_string_equal(jstr(f, "status"), "ok");
    assert_string_equal(jstr(f, "color"), "green");

    /* sizes as the real API in the reference run */
    r = call(f, "GET", "/api/mocs", NULL, 0, 1, "Authorization: Bearer undefined");
    assert_int_equal(r->status, 200);
    assert_int_equal(r->body_len, 88);
    assert_string_equal(jstr(f, "data.0.id"), "moc-1");
    r = call(f, "GET", "/api/mocs/undefined", NULL, 0, 0);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->body_len, 48);
    assert_string_equal(jstr(f, "id"), "undefined");
    r = call(f, "GET", "/api/gallery?search=lego", NULL, 0, 0);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->body_len, 62);
    assert_string_equal(jstr(f, "search"), "lego");
    assert_string_equal(jstr(f, "results.0.title"), "Lego City");
    r = call(f, "GET", "/api/wishlist", NULL, 0, 1, "authorization: x");
    assert_int_equal(r->status, 200);
    assert_int_equal(r->body_len, 33);
    assert_mem(r->headers[0].value, r->headers[0].value_len, "application/json; charset=utf-8");

    r = call(f, "GET", "/api/wishlist", NULL, 0, 0);
    assert_int_equal(r->status, 401);
    assert_string_equal(jstr(f, "error"), "unauthorized");

    r = call(f, "GET", "/api/mocs/a%22b%2Fc", NULL, 0, 0);
    assert_string_equal(jstr(f, "id"), "a\"b/c");
    r = call(f, "GET", "/api/gallery?x=1&search=Technic+cr%41ne", NULL, 0, 0);
    assert_string_equal(jstr(f, "search"), "Technic crAne");
    assert_string_equal(jstr(f, "results.0.id"), "g-2");
    assert_string_equal(jstr(f, "results.1.id"), "<missing>");
    r = call(f, "GET", "/api/gallery?search=zzz", NULL, 0, 0);
    assert_string_equal(jstr(f, "results.0"), "<missing>");
    r = call(f, "GET", "/api/gallery", NULL, 0, 0);
    assert_string_equal(jstr(f, "results.2.id"), "g-3");
}

static void sha256_of(const char *p, size_t n, char hex[65])
{
    unsigned char md[32];
    unsigned len;
    EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", md[i]);
}

static void test_app_upload(void **state)
{
    fixture *f = *state;
    const char *ct = "Content-Type: multipart/form-data; boundary="
                     "--------------------------123456789012";
    const upstream_reply *r = call(f, "POST", "/api/gallery/undefined/image", NODE_BODY,
                                   sizeof NODE_BODY - 1, 2, ct, "Authorization: a");
    assert_int_equal(r->status, 200);
    assert_string_equal(jstr(f, "id"), "undefined");
    assert_string_equal(jstr(f, "files.0.field"), "image");
    assert_string_equal(jstr(f, "files.0.filename"), "test-image.jpg");
    assert_string_equal(jstr(f, "files.0.content_type"), "image/jpeg");
    const char data[] = "\xff\xd8\xff\xe0JFIF\r\n\x00\x01--not-a-boundary\r\n";
    char size[16], hex[65];
    snprintf(size, sizeof size, "%zu", sizeof data - 1);
    assert_string_equal(jstr(f, "files.0.size"), size);
    sha256_of(data, sizeof data - 1, hex);
    assert_string_equal(jstr(f, "files.0.sha256"), hex);

    static const char mixed[] = "--b\r\nContent-Disposition: form-data; name=note\r\n\r\nhi\r\n"
                                "--b\r\nContent-Disposition: form-data; name=f; filename=x\r\n"
                                "\r\n\r\n--b--\r\n";
    r = call(f, "POST", "/api/gallery/9/image", S(mixed), 1,
             "Content-Type: multipart/form-data; boundary=b");
    assert_int_equal(r->status, 200);
    assert_string_equal(jstr(f, "files.0.field"), "f");
    assert_string_equal(jstr(f, "files.0.size"), "0");
    assert_string_equal(jstr(f, "files.0.sha256"),
                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_string_equal(jstr(f, "fields.0.field"), "note");
    assert_string_equal(jstr(f, "fields.0.size"), "2");

    /* what the lego-api script sends: no boundary in its own Content-Type */
    r = call(f, "POST", "/api/gallery/undefined/image", NODE_BODY, sizeof NODE_BODY - 1, 1,
             "Content-Type: multipart/form-data");
    assert_int_equal(r->status, 400);
    assert_non_null(strstr(jstr(f, "message"), "boundary"));
    r = call(f, "POST", "/api/gallery/1/image", NULL, 0, 0);
    assert_int_equal(r->status, 400);
    r = call(f, "POST", "/api/gallery/1/image", NODE_BODY, 40, 1,
             "Content-Type: multipart/form-data; boundary=--------------------------123456789012");
    assert_int_equal(r->status, 400);
    assert_non_null(strstr(jstr(f, "message"), "invalid multipart body"));
    static const char nofile[] = "--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b--";
    r = call(f, "POST", "/api/gallery/1/image", S(nofile), 1,
             "Content-Type: multipart/form-data; boundary=b");
    assert_int_equal(r->status, 400);
    assert_string_equal(jstr(f, "message"), "no file part in the multipart body");
}

static void test_app_misc(void **state)
{
    fixture *f = *state;
    const upstream_reply *r = call(f, "POST", "/echo/x?y=1", S("héllo\n\"w\""), 2,
                                   "Host: h", "X-Dup: \x01\xff");
    assert_int_equal(r->status, 200);
    assert_string_equal(jstr(f, "method"), "POST");
    assert_string_equal(jstr(f, "target"), "/echo/x?y=1");
    assert_string_equal(jstr(f, "query"), "y=1");
    assert_string_equal(jstr(f, "headers.0.0"), "Host");
    assert_string_equal(jstr(f, "headers.1.1"), "\x01\xef\xbf\xbd"); /* U+FFFD */
    assert_string_equal(jstr(f, "body_length"), "10");
    assert_string_equal(jstr(f, "body_encoding"), "utf8");
    assert_string_equal(jstr(f, "body"), "héllo\n\"w\"");
    r = call(f, "PUT", "/echo", S("\x00\x01\xfe\xff" "ab"), 0);
    assert_string_equal(jstr(f, "body_encoding"), "base64");
    assert_string_equal(jstr(f, "body"), "AAH+/2Fi");

    r = call(f, "GET", "/", NULL, 0, 0);
    assert_int_equal(r->status, 200);
    assert_mem(r->body, r->body_len, "cutover upstream (green)\n");
    r = call(f, "GET", "/status/503", NULL, 0, 0);
    assert_int_equal(r->status, 503);
    r = call(f, "GET", "/status/204", NULL, 0, 0);
    assert_int_equal(r->status, 204);
    assert_int_equal(r->body_len, 0);
    r = call(f, "GET", "/status/99", NULL, 0, 0);
    assert_int_equal(r->status, 400);
    r = call(f, "GET", "/bytes/5", NULL, 0, 0);
    assert_mem(r->body, r->body_len, "abcde");
    r = call(f, "GET", "/bytes/100000", NULL, 0, 0);
    assert_int_equal(r->body_len, 100000);
    assert_int_equal(r->body[99999], 'a' + 99999 % 26);
    r = call(f, "GET", "/bytes/0", NULL, 0, 0);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->body_len, 0);
    r = call(f, "GET", "/bytes/x", NULL, 0, 0);
    assert_int_equal(r->status, 400);
    r = call(f, "GET", "/delay/25", NULL, 0, 0);
    assert_int_equal(f->plan.delay_ms, 25);
    assert_string_equal(jstr(f, "delay_ms"), "25");
    r = call(f, "GET", "/delay/9999999", NULL, 0, 0);
    assert_int_equal(f->plan.delay_ms, 0);
    assert_int_equal(r->status, 400);
    r = call(f, "GET", "/nope\x01", NULL, 0, 0);
    assert_int_equal(r->status, 404);
    assert_string_equal(jstr(f, "path"), "/nope\x01");
    r = call(f, "DELETE", "/api/mocs", NULL, 0, 0);
    assert_int_equal(r->status, 405);
    assert_int_equal(r->nheaders, 3);
    assert_string_equal(r->headers[2].name, "Allow");
    assert_mem(r->headers[2].value, r->headers[2].value_len, "GET");
}

/* The header named `name` (the i-th of that name), or NULL. */
static const http_header *rep_header(const upstream_reply *r, const char *name, int i)
{
    for (size_t k = 0; k < r->nheaders; k++)
        if (!strcmp(r->headers[k].name, name) && i-- == 0)
            return &r->headers[k];
    return NULL;
}

static void test_app_cookies_redirects_gzip(void **state)
{
    fixture *f = *state;
    const upstream_reply *r = call(f, "GET", "/cookies/set?a=1&b=x%20y", NULL, 0, 0);
    assert_int_equal(r->status, 302);
    assert_mem(rep_header(r, "Location", 0)->value, rep_header(r, "Location", 0)->value_len,
               "/cookies");
    const http_header *c = rep_header(r, "Set-Cookie", 0);
    assert_mem(c->value, c->value_len, "a=1; Path=/");
    c = rep_header(r, "Set-Cookie", 1);
    assert_mem(c->value, c->value_len, "b=x y; Path=/");
    assert_null(rep_header(r, "Set-Cookie", 2));
    r = call(f, "GET", "/cookies/delete?a", NULL, 0, 0);
    c = rep_header(r, "Set-Cookie", 0);
    assert_mem(c->value, c->value_len, "a=; Max-Age=0; Path=/");
    call(f, "GET", "/cookies", NULL, 0, 1, "Cookie: a=1; b=2");
    assert_string_equal(jstr(f, "cookie"), "a=1; b=2");
    call(f, "GET", "/cookies", NULL, 0, 0);
    assert_string_equal(jstr(f, "cookie"), "");

    r = call(f, "GET", "/redirect/2", NULL, 0, 0);
    assert_int_equal(r->status, 302);
    assert_mem(rep_header(r, "Location", 0)->value, rep_header(r, "Location", 0)->value_len,
               "/redirect/1");
    r = call(f, "GET", "/redirect/0", NULL, 0, 0);
    assert_int_equal(r->status, 200);
    assert_null(rep_header(r, "Location", 0));
    r = call(f, "POST", "/redirect-to?url=http%3A%2F%2Fh%3A1%2Fx&status=307", NULL, 0, 0);
    assert_int_equal(r->status, 307);
    assert_mem(rep_header(r, "Location", 0)->value, rep_header(r, "Location", 0)->value_len,
               "http://h:1/x");
    assert_int_equal(call(f, "GET", "/redirect-to?url=/x&status=200", NULL, 0, 0)->status, 400);
    assert_int_equal(call(f, "GET", "/redirect-to", NULL, 0, 0)->status, 400);
    assert_int_equal(call(f, "GET", "/redirect/x", NULL, 0, 0)->status, 400);

    for (int gzip = 0; gzip < 2; gzip++) {
        r = call(f, "GET", gzip ? "/gzip" : "/deflate", NULL, 0, 1, "Accept-Encoding: gzip");
        assert_int_equal(r->status, 200);
        const http_header *ce = rep_header(r, "Content-Encoding", 0);
        assert_mem(ce->value, ce->value_len, gzip ? "gzip" : "deflate");
        char out[512];
        z_stream z;
        memset(&z, 0, sizeof z);
        assert_int_equal(inflateInit2(&z, gzip ? 15 + 16 : 15), Z_OK);
        z.next_in = (Bytef *)r->body;
        z.avail_in = (uInt)r->body_len;
        z.next_out = (Bytef *)out;
        z.avail_out = sizeof out;
        assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
        assert_mem(out, z.total_out, gzip ? "{\"gzipped\":true,\"method\":\"GET\",\"accept_encoding\":"
                                            "\"gzip\",\"color\":\"green\"}"
                                          : "{\"deflated\":true,\"method\":\"GET\",\"accept_encoding\":"
                                            "\"gzip\",\"color\":\"green\"}");
        inflateEnd(&z);
    }
}

static void test_app_injection(void **state)
{
    fixture *f = *state;
    upstream_app_free(&f->app);
    char err[CU_ERRLEN];
    upstream_config cfg = {.color = "green", .error_rate = 0.05};
    assert_int_equal(upstream_latency_parse(&cfg.latency, "fixed:5ms", err), 0);
    upstream_app_init(&f->app, &cfg, 7);
    int fails = 0;
    for (int i = 0; i < 20000; i++) {
        const upstream_reply *r = call(f, "GET", "/api/mocs", NULL, 0, 0);
        assert_int_equal(f->plan.delay_ms, 5);
        if (f->plan.fail) {
            assert_int_equal(r->status, 500);
            assert_string_equal(jstr(f, "error"), "internal server error");
            fails++;
        }
        r = call(f, "GET", "/health", NULL, 0, 0);
        assert_int_equal(r->status, 200);
        assert_int_equal(f->plan.delay_ms, 0);
        call(f, "GET", "/echo", NULL, 0, 0);
        assert_false(f->plan.fail);
    }
    assert_in_range(fails, 850, 1150);
    upstream_app_free(&f->app);
    cfg.error_rate = 1;
    upstream_app_init(&f->app, &cfg, 7);
    assert_int_equal(call(f, "GET", "/api/wishlist", NULL, 0, 0)->status, 500);
    assert_int_equal(call(f, "GET", "/health", NULL, 0, 0)->status, 200);
}

/* Run-time faults: PUT /_cutover/fault changes what the API routes do, for
 * every app sharing the fault, and never touches /health. */
static void test_app_fault(void **state)
{
    fixture *f = *state;
    upstream_fault *fault = upstream_fault_new(0, NULL);
    upstream_config cfg = {.color = "green", .fault = fault};
    upstream_app other;
    upstream_app_init(&other, &cfg, 2);
    upstream_app_free(&f->app);
    upstream_app_init(&f->app, &cfg, 1);

    const upstream_reply *r = call(f, "GET", "/api/mocs", NULL, 0, 0);
    assert_int_equal(r->status, 200);
    r = call(f, "PUT", "/_cutover/fault?error_rate=1&latency=fixed:7ms", NULL, 0, 0);
    assert_int_equal(r->status, 200);
    assert_string_equal(jstr(f, "latency"), "fixed:7ms");
    assert_string_equal(jstr(f, "error_rate"), "1");
    r = call(f, "GET", "/api/mocs", NULL, 0, 0);
    assert_int_equal(r->status, 500);
    assert_int_equal(f->plan.delay_ms, 7);
    r = call(f, "GET", "/health", NULL, 0, 0);
    assert_int_equal(r->status, 200);
    /* the other app sharing the fault sees it on its next request */
    http_server_request req = {.method = "GET", .target = "/api/mocs", .path = "/api/mocs",
                               .path_len = 9, .query = ""};
    upstream_plan plan;
    upstream_app_plan(&other, &req, &plan);
    assert_true(plan.fail);
    assert_int_equal(plan.delay_ms, 7);
    /* set from a controlling thread: back to healthy */
    upstream_fault_set(fault, 0, &(upstream_latency){0});
    upstream_app_plan(&other, &req, &plan);
    assert_false(plan.fail);
    assert_int_equal(plan.delay_ms, 0);
    /* bad values are 400 and change nothing */
    r = call(f, "PUT", "/_cutover/fault?error_rate=2", NULL, 0, 0);
    assert_int_equal(r->status, 400);
    r = call(f, "PUT", "/_cutover/fault?latency=bogus", NULL, 0, 0);
    assert_int_equal(r->status, 400);
    r = call(f, "GET", "/api/mocs", NULL, 0, 0);
    assert_int_equal(r->status, 200);
    upstream_app_free(&other);
    upstream_app_free(&f->app);
    upstream_config plain = {.color = "green"};
    upstream_app_init(&f->app, &plain, 1);
    r = call(f, "PUT", "/_cutover/fault?error_rate=1", NULL, 0, 0);
    assert_int_equal(r->status, 400); /* no fault control on a bare app */
    upstream_fault_free(fault);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mp_boundary),
        cmocka_unit_test(test_mp_single),
        cmocka_unit_test(test_mp_many),
        cmocka_unit_test(test_mp_invalid),
        cmocka_unit_test(test_latency_parse),
        cmocka_unit_test(test_latency_sample),
        cmocka_unit_test(test_routes),
        cmocka_unit_test_setup_teardown(test_app_lego, app_setup, app_teardown),
        cmocka_unit_test_setup_teardown(test_app_upload, app_setup, app_teardown),
        cmocka_unit_test_setup_teardown(test_app_misc, app_setup, app_teardown),
        cmocka_unit_test_setup_teardown(test_app_cookies_redirects_gzip, app_setup, app_teardown),
        cmocka_unit_test_setup_teardown(test_app_injection, app_setup, app_teardown),
        cmocka_unit_test_setup_teardown(test_app_fault, app_setup, app_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
