/* Loopback tests for upstream: the service in worker threads and on the
 * test's own loop, hit with http_client on ports the kernel picks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "upstream/upstream.h"

#define FIXTURE "/work/shared/cases/lego-api/fixtures/test-image.jpg"

typedef struct {
    bool done;
    int err;
    int status;
    char ctype[128];
    char color[64];
    cu_buf body;
    uint64_t ms;
} result;

typedef struct {
    uv_loop_t loop;
    net_resolver *res;
    http_client *cli;
    net_tls *tls;
    http_url url;
    result r;
    json_t *json;
} client;

static void copy_header(const http_response *res, const char *name, char *dst, size_t cap)
{
    const http_header *h = http_header_find(res->headers, res->nheaders, name);
    snprintf(dst, cap, "%.*s", h ? (int)h->value_len : 0, h ? h->value : "");
}

static void on_response(void *user, int err, const http_response *res)
{
    result *r = user;
    r->done = true;
    r->err = err;
    if (err)
        return;
    r->status = res->status;
    copy_header(res, "content-type", r->ctype, sizeof r->ctype);
    copy_header(res, "x-cutover-color", r->color, sizeof r->color);
    cu_buf_reset(&r->body);
    if (res->body)
        cu_buf_append(&r->body, res->body, res->body_len);
}

static void client_open(client *c, const char *base, net_tls *tls)
{
    char err[CU_ERRLEN];
    memset(c, 0, sizeof *c);
    assert_int_equal(uv_loop_init(&c->loop), 0);
    c->res = net_resolver_new(&c->loop, 1000);
    c->tls = tls;
    assert_int_equal(http_url_parse(&c->url, base, err), 0);
    http_client_opts o = {.resolver = c->res, .tls = tls};
    c->cli = http_client_new(&c->loop, &c->url, &o);
    assert_non_null(c->cli);
}

static void client_close(client *c)
{
    http_client_free(c->cli);
    net_resolver_free(c->res);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&c->loop), 0);
    http_url_free(&c->url);
    cu_buf_free(&c->r.body);
    json_decref(c->json);
    if (c->tls)
        net_tls_free(c->tls);
}

/* Sends one request and runs the loop until it completes. Headers are
 * "Name: value" strings. */
static const result *fetch(client *c, const char *method, const char *target, const char *body,
                           size_t body_len, uint64_t timeout_ms, int nh, ...)
{
    http_header h[8];
    va_list ap;
    va_start(ap, nh);
    for (int i = 0; i < nh; i++) {
        const char *s = va_arg(ap, const char *);
        const char *colon = strchr(s, ':');
        h[i] = (http_header){s, (size_t)(colon - s), colon + 2, strlen(colon + 2)};
    }
    va_end(ap);
    http_request req = {method, target, h, (size_t)nh, body, body_len};
    c->r.done = false;
    uint64_t t0 = cu_now_ns();
    assert_int_equal(http_client_send(c->cli, &req, true, timeout_ms, on_response, &c->r), 0);
    while (!c->r.done)
        uv_run(&c->loop, UV_RUN_ONCE);
    c->r.ms = (cu_now_ns() - t0) / 1000000;
    json_decref(c->json);
    c->json = NULL;
    if (!c->r.err && strstr(c->r.ctype, "json") && c->r.body.len)
        c->json = json_loadb(c->r.body.data, c->r.body.len, 0, NULL);
    return &c->r;
}

static const char *jget(client *c, const char *key)
{
    json_t *v = json_object_get(c->json, key);
    return json_is_string(v) ? json_string_value(v) : "<missing>";
}

static void check_ok(const result *r, int status, const char *color)
{
    if (r->err || r->status != status) {
        print_error("err %d (%s) status %d, want %d\n", r->err,
                    r->err ? http_error_name(r->err) : "", r->status, status);
        fail();
    }
    assert_string_equal(r->color, color);
    assert_true(r->ctype[0] != 0);
}

/* A multipart body around the case study's fixture image. */
static void multipart(cu_buf *b, const char *boundary, cu_buf *file)
{
    char err[CU_ERRLEN];
    assert_int_equal(cu_read_file(FIXTURE, file, err), 0);
    cu_buf_appendf(b, "--%s\r\nContent-Disposition: form-data; name=\"image\"; "
                      "filename=\"test-image.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n", boundary);
    cu_buf_append(b, file->data, file->len);
    cu_buf_appendf(b, "\r\n--%s--\r\n", boundary);
}

static void lego_checks(client *c, const char *color)
{
    const result *r = fetch(c, "GET", "/health", NULL, 0, 5000, 0);
    check_ok(r, 200, color);
    assert_string_equal(jget(c, "status"), "ok");
    assert_true(r->ms < 15); /* --latency never applies to /health */

    r = fetch(c, "GET", "/api/mocs", NULL, 0, 5000, 1, "Authorization: Bearer undefined");
    check_ok(r, 200, color);
    assert_int_equal(r->body.len, 88);
    assert_true(r->ms >= 20); /* fixed:20ms */
    assert_string_equal(r->ctype, "application/json; charset=utf-8");
    r = fetch(c, "GET", "/api/mocs/undefined", NULL, 0, 5000, 0);
    check_ok(r, 200, color);
    assert_int_equal(r->body.len, 48);
    r = fetch(c, "GET", "/api/gallery?search=lego", NULL, 0, 5000, 0);
    check_ok(r, 200, color);
    assert_int_equal(r->body.len, 62);
    r = fetch(c, "GET", "/api/wishlist", NULL, 0, 5000, 1, "Authorization: Bearer x");
    check_ok(r, 200, color);
    assert_int_equal(r->body.len, 33);
    r = fetch(c, "GET", "/api/wishlist", NULL, 0, 5000, 0);
    check_ok(r, 401, color);

    cu_buf body = CU_BUF_INIT, file = CU_BUF_INIT;
    multipart(&body, "----cutoverTest42", &file);
    r = fetch(c, "POST", "/api/gallery/undefined/image", body.data, body.len, 5000, 1,
              "Content-Type: multipart/form-data; boundary=----cutoverTest42");
    check_ok(r, 200, color);
    json_t *f0 = json_array_get(json_object_get(c->json, "files"), 0);
    assert_int_equal(json_integer_value(json_object_get(f0, "size")), (json_int_t)file.len);
    unsigned char md[32];
    char hex[65];
    EVP_Digest(file.data, file.len, md, NULL, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", md[i]);
    assert_string_equal(json_string_value(json_object_get(f0, "sha256")), hex);
    r = fetch(c, "POST", "/api/gallery/undefined/image", body.data, body.len, 5000, 1,
              "Content-Type: multipart/form-data");
    check_ok(r, 400, color);
    cu_buf_free(&body);
    cu_buf_free(&file);

    r = fetch(c, "PATCH", "/echo/x?y=2", "hello", 5, 5000, 1, "X-Test: 1");
    check_ok(r, 200, color);
    assert_string_equal(jget(c, "method"), "PATCH");
    assert_string_equal(jget(c, "target"), "/echo/x?y=2");
    assert_string_equal(jget(c, "body"), "hello");
    r = fetch(c, "GET", "/", NULL, 0, 5000, 0);
    check_ok(r, 200, color);
    r = fetch(c, "GET", "/status/418", NULL, 0, 5000, 0);
    check_ok(r, 418, color);
    r = fetch(c, "GET", "/bytes/200000", NULL, 0, 5000, 0);
    check_ok(r, 200, color);
    assert_int_equal(r->body.len, 200000);
    r = fetch(c, "GET", "/delay/30", NULL, 0, 5000, 0);
    check_ok(r, 200, color);
    assert_true(r->ms >= 30);
    r = fetch(c, "GET", "/nope", NULL, 0, 5000, 0);
    check_ok(r, 404, color);
    r = fetch(c, "DELETE", "/api/mocs", NULL, 0, 5000, 0);
    check_ok(r, 405, color);
}

static void test_threads(void **state)
{
    (void)state;
    char err[CU_ERRLEN] = "";
    upstream_config cfg = {.color = "green", .workers = 2, .has_seed = true, .seed = 1};
    assert_int_equal(upstream_latency_parse(&cfg.latency, "fixed:20ms", err), 0);
    upstream *u = NULL;
    int rc = upstream_start(&u, &cfg, err);
    if (rc < 0) {
        print_error("upstream_start: %s\n", err);
        fail();
    }
    int port = upstream_port(u);
    assert_true(port > 0);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
    client c;
    client_open(&c, base, NULL);
    lego_checks(&c, "green");
    client_close(&c);
    assert_int_equal(upstream_requests(u), 15); /* one per fetch in lego_checks */

    /* a start that cannot bind fails cleanly, with a reason */
    upstream *v = NULL;
    upstream_config bad = {.host = "203.0.113.1", .port = 0};
    assert_true(upstream_start(&v, &bad, err) < 0);
    assert_null(v);
    assert_true(err[0] != 0);
    upstream_stop(u);
}

static void test_same_loop_stop_and_cancel(void **state)
{
    (void)state;
    char err[CU_ERRLEN];
    client c;
    upstream_config cfg = {.color = "blue", .error_rate = 1};
    /* start the client loop first, then the server on it */
    memset(&c, 0, sizeof c);
    uv_loop_t *loop = cu_malloc(sizeof *loop);
    assert_int_equal(uv_loop_init(loop), 0);
    upstream_server *s = NULL;
    assert_int_equal(upstream_server_start(&s, loop, &cfg, 0, 3, err), 0);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", upstream_server_port(s));

    net_resolver *res = net_resolver_new(loop, 1000);
    http_url url;
    assert_int_equal(http_url_parse(&url, base, err), 0);
    http_client_opts o = {.resolver = res};
    http_client *cli = http_client_new(loop, &url, &o);
    result r = {0};

    /* --error-rate 1 fails every API request, never /health */
    http_request req = {"GET", "/api/mocs", NULL, 0, NULL, 0};
    assert_int_equal(http_client_send(cli, &req, true, 5000, on_response, &r), 0);
    while (!r.done)
        uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.status, 500);
    req.target = "/health";
    r.done = false;
    assert_int_equal(http_client_send(cli, &req, true, 5000, on_response, &r), 0);
    while (!r.done)
        uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(r.status, 200);

    /* the client gives up during a delay: the server's cancel path */
    req.target = "/delay/300";
    r.done = false;
    assert_int_equal(http_client_send(cli, &req, true, 30, on_response, &r), 0);
    while (!r.done)
        uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(r.err, UV_ETIMEDOUT);

    /* a delayed request when the server stops is answered 503 (or cut) */
    req.target = "/delay/5000";
    r.done = false;
    assert_int_equal(http_client_send(cli, &req, true, 5000, on_response, &r), 0);
    uint64_t t0 = cu_now_ns();
    while (cu_now_ns() - t0 < 50000000ull)
        uv_run(loop, UV_RUN_NOWAIT);
    upstream_server_stop(s);
    while (!r.done)
        uv_run(loop, UV_RUN_ONCE);
    assert_true(r.err != 0 || r.status == 503);
    assert_true((cu_now_ns() - t0) / 1000000 < 1000);

    http_client_free(cli);
    net_resolver_free(res);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
    free(loop);
    http_url_free(&url);
    cu_buf_free(&r.body);
}

static void test_tls(void **state)
{
    (void)state;
    char dir[] = "/tmp/cutover-upstream-tlsXXXXXX";
    assert_non_null(mkdtemp(dir));
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 -keyout %s/key.pem -out %s/cert.pem "
             ">/dev/null 2>&1", dir, dir);
    if (system(cmd) != 0) {
        print_message("openssl CLI unavailable: TLS test skipped\n");
        skip();
    }
    char cert[128], key[128], err[CU_ERRLEN] = "";
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    upstream_config cfg = {.color = "teal", .tls_cert = cert, .tls_key = key};
    upstream *u = NULL;
    if (upstream_start(&u, &cfg, err) < 0) {
        print_error("upstream_start: %s\n", err);
        fail();
    }
    char base[64];
    snprintf(base, sizeof base, "https://127.0.0.1:%d", upstream_port(u));
    net_tls *tls = NULL;
    assert_int_equal(net_tls_client_new(&tls, true, cert, err), 0);
    client c;
    client_open(&c, base, tls);
    const result *r = fetch(&c, "GET", "/echo", NULL, 0, 5000, 0);
    check_ok(r, 200, "teal");
    assert_true(json_is_true(json_object_get(c.json, "tls")));
    client_close(&c);
    upstream_stop(u);

    cfg.tls_key = NULL;
    assert_true(upstream_start(&u, &cfg, err) < 0);
    cfg.tls_key = "/nonexistent/key.pem";
    assert_true(upstream_start(&u, &cfg, err) < 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_same_loop_stop_and_cancel),
        cmocka_unit_test(test_tls),
    };
    cmocka_set_test_filter(getenv("UPSTREAM_TEST"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
