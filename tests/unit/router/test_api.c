/* The interface the rollout controller uses (router.h), exercised in one
 * process: a router on a loop in front of two http_server upstreams;
 * weights set from another thread; windows read back; the status hook and
 * the admin handler; drain and free without leaks. Callbacks are counted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "router/router.h"

typedef struct world {
    uv_loop_t loop;
    http_server *up[2];
    router *r;
    net_resolver *res;
    http_client *cli, *adm;
    int answered[2];
    int responses, hook_calls, handler_calls, drained;
    int last_status;
    bool last_authorized;
    cu_buf last_body;
} world;

static void upstream_handler(http_exchange *x, const http_server_request *req, void *user)
{
    int *count = user;
    (*count)++;
    http_respond(x, 200, NULL, 0, "ok", 2);
}

static void status_hook(cu_buf *json, void *ctx)
{
    world *w = ctx;
    w->hook_calls++;
    cu_buf_appends(json, "\"rollout\":{\"step\":1}");
}

static void admin_handler(http_exchange *x, const http_server_request *req, bool authorized,
                          void *ctx)
{
    world *w = ctx;
    w->handler_calls++;
    w->last_authorized = authorized;
    http_respond(x, 202, NULL, 0, req->path, req->path_len);
}

static void on_resp(void *user, int err, const http_response *res)
{
    world *w = user;
    assert_int_equal(err, 0);
    w->responses++;
    w->last_status = res->status;
    cu_buf_reset(&w->last_body);
    cu_buf_append(&w->last_body, res->body ? res->body : "", res->body_len);
}

static void roundtrip(world *w, http_client *c, const char *method, const char *path)
{
    int before = w->responses;
    http_request req = {method, path, NULL, 0, NULL, 0};
    assert_int_equal(http_client_send(c, &req, true, 5000, on_resp, w), 0);
    while (w->responses == before)
        uv_run(&w->loop, UV_RUN_ONCE);
}

static void *set_weight_thread(void *arg)
{
    router *r = arg;
    for (int i = 0; i <= 100; i++)
        assert_int_equal(router_set_weight(r, i), 0);
    assert_int_equal(router_set_weight(r, 42.424), 0);
    assert_int_equal(router_set_weight(r, 100.5), -22);
    return NULL;
}

static void on_drained(void *arg)
{
    ((world *)arg)->drained++;
}

static void test_controller_interface(void **state)
{
    (void)state;
    world w;
    memset(&w, 0, sizeof w);
    char err[CU_ERRLEN];
    uv_loop_init(&w.loop);
    for (int c = 0; c < 2; c++) {
        http_server_opts o = {"127.0.0.1", 0, NULL, 0, 0, 0};
        assert_int_equal(http_server_start(&w.up[c], &w.loop, &o, upstream_handler,
                                           &w.answered[c], err), 0);
    }
    char *text = cu_asprintf("listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:0 }\n"
                             "weight: 0\nrollout: { steps: [ {weight: 10} ] }\n"
                             "upstreams:\n  blue: { servers: \"http://127.0.0.1:%d\" }\n"
                             "  green: { servers: \"http://127.0.0.1:%d\" }\n",
                             http_server_port(w.up[0]), http_server_port(w.up[1]));
    router_config cfg;
    assert_int_equal(router_config_parse(&cfg, text, strlen(text), "api.yml", err), 0);
    free(text);
    assert_int_equal(router_start(&w.r, &w.loop, &cfg, err), 0);
    assert_ptr_equal(router_loop(w.r), &w.loop);
    assert_non_null(router_rollout_conf(w.r));
    assert_non_null(conf_get(router_rollout_conf(w.r), "steps"));
    assert_null(router_state_conf(w.r));
    router_set_status_hook(w.r, status_hook, &w);
    router_set_admin_handler(w.r, "/rollout/", admin_handler, &w);

    w.res = net_resolver_new(&w.loop, 1000);
    char url[64];
    http_url u;
    snprintf(url, sizeof url, "http://127.0.0.1:%d", router_port(w.r));
    assert_int_equal(http_url_parse(&u, url, err), 0);
    http_client_opts co = {w.res, NULL, 0};
    w.cli = http_client_new(&w.loop, &u, &co);
    http_url_free(&u);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", router_admin_port(w.r));
    assert_int_equal(http_url_parse(&u, url, err), 0);
    w.adm = http_client_new(&w.loop, &u, &co);
    http_url_free(&u);

    for (int i = 0; i < 10; i++)
        roundtrip(&w, w.cli, "GET", "/x");
    assert_int_equal(w.answered[0], 10);
    assert_int_equal(w.answered[1], 0);

    pthread_t t;
    pthread_create(&t, NULL, set_weight_thread, w.r);
    pthread_join(t, NULL);
    assert_true(router_weight(w.r) == 42.42);
    assert_int_equal(router_set_weight(w.r, 50), 0);
    for (int i = 0; i < 10; i++)
        roundtrip(&w, w.cli, "GET", "/x");
    assert_int_equal(w.answered[0], 15);
    assert_int_equal(w.answered[1], 5);

    router_sample s;
    hist_init(&s.latency_ms);
    assert_int_equal(router_read_window(w.r, ROUTER_BLUE, 60, &s), 0);
    assert_int_equal(s.requests, 15);
    assert_int_equal(s.codes[2], 15);
    assert_int_equal(s.latency_ms.count, 15);
    assert_true(s.bytes_out > 0);
    assert_int_equal(router_read_window(w.r, ROUTER_GREEN, 60, &s), 0);
    assert_int_equal(s.requests, 5);
    hist_free(&s.latency_ms);

    roundtrip(&w, w.adm, "GET", "/status");
    assert_int_equal(w.last_status, 200);
    assert_int_equal(w.hook_calls, 1);
    assert_non_null(strstr(w.last_body.data, ",\"rollout\":{\"step\":1}}"));
    roundtrip(&w, w.adm, "POST", "/rollout/pause");
    assert_int_equal(w.last_status, 202);
    assert_int_equal(w.handler_calls, 1);
    assert_false(w.last_authorized);      /* no token configured: never authorized */
    assert_string_equal(w.last_body.data, "/rollout/pause");
    roundtrip(&w, w.adm, "PUT", "/weights");
    assert_int_equal(w.last_status, 401);

    http_client_free(w.cli);
    http_client_free(w.adm);
    router_drain(w.r, 1000, on_drained, &w);
    while (!w.drained)
        uv_run(&w.loop, UV_RUN_ONCE);
    assert_int_equal(w.drained, 1);
    router_free(w.r);
    for (int c = 0; c < 2; c++)
        http_server_stop(w.up[c]);
    net_resolver_free(w.res);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    assert_int_equal(w.drained, 1);
    assert_int_equal(uv_loop_close(&w.loop), 0);
    cu_buf_free(&w.last_body);
}

static void on_reload(router *r, void *ctx)
{
    int *n = ctx;
    (*n)++;
    assert_non_null(router_rollout_conf(r));
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* router_reload from a file: the hook fires after a good reload only; a
 * broken file keeps the old config (and says where it broke). */
static void test_reload_hook(void **state)
{
    (void)state;
    char dir[] = "/tmp/cutover-router-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = cu_asprintf("%s/serve.yml", dir);
    const char *ups = "upstreams:\n  blue: { servers: \"http://127.0.0.1:1\" }\n"
                      "  green: { servers: \"http://127.0.0.1:2\" }\n";
    char *v1 = cu_asprintf("listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:0 }\nweight: 5\n"
                           "rollout: { steps: [1] }\n%s", ups);
    char *v2 = cu_asprintf("listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:0 }\nweight: 7\n"
                           "rollout: { steps: [1, 2] }\n%s", ups);
    write_file(path, v1);
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[CU_ERRLEN];
    router_config cfg;
    assert_int_equal(router_config_load(&cfg, path, err), 0);
    router *r;
    assert_int_equal(router_start(&r, &loop, &cfg, err), 0);
    int reloads = 0;
    router_set_reload_hook(r, on_reload, &reloads);
    router_set_weight(r, 42);
    write_file(path, v2);
    assert_int_equal(router_reload(r, err), 0);
    assert_int_equal(reloads, 1);
    assert_int_equal(conf_get(router_rollout_conf(r), "steps")->n, 2);
    assert_true(router_weight(r) == 7); /* the file's weight changed: it applies */
    router_set_weight(r, 42);
    assert_int_equal(router_reload(r, err), 0); /* same file: the live weight stays */
    assert_true(router_weight(r) == 42);
    write_file(path, "weight: [1\n");
    assert_true(router_reload(r, err) < 0);
    assert_non_null(strstr(err, path));
    assert_int_equal(reloads, 2);
    assert_int_equal(conf_get(router_rollout_conf(r), "steps")->n, 2);
    router_free(r);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    remove(path);
    rmdir(dir);
    free(path);
    free(v1);
    free(v2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_controller_interface),
        cmocka_unit_test(test_reload_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
