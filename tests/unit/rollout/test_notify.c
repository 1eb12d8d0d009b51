/* Notifications end to end on loopback: a small webhook receiver built on
 * src/http's server and an exec hook (`cat >> file`) both get every event
 * of a rollout exactly once and in order, while the receiver refuses some
 * deliveries (retried with backoff on the fake clock, the later events
 * waiting behind) and while the controller is closed and reopened with
 * deliveries still pending. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fake.h"
#include "http/http.h"

#define T0 1767225600000LL

typedef struct receiver {
    http_server *srv;
    int port;
    char events[64][32];      /* accepted, in arrival order */
    char ids[64][96];
    int naccepted;
    int attempts;             /* every POST seen */
    int fail_event_index;     /* refuse the first attempts of the n-th distinct event */
    int fail_times;
    int failed;
    bool refuse_all;
    bool bad_payload;
} receiver;

static void on_hook(http_exchange *x, const http_server_request *req, void *user)
{
    receiver *r = user;
    r->attempts++;
    json_t *b = json_loadb(req->body, req->body_len, 0, NULL);
    const char *ev = json_string_value(json_object_get(b, "event"));
    const char *id = json_string_value(json_object_get(b, "event_id"));
    const char *text = json_string_value(json_object_get(b, "text"));
    json_t *dec = json_object_get(b, "decision");
    const http_header *h = http_header_find(req->headers, req->nheaders, "X-Cutover-Event-Id");
    if (!ev || !id || !text || strncmp(text, "cutover blue->green:", 20) != 0 ||
        !json_is_object(dec) || !json_object_get(dec, "verdict") || !h ||
        h->value_len != strlen(id) || memcmp(h->value, id, h->value_len) != 0 ||
        strcmp(req->method, "POST") != 0 || req->path_len != 5 || memcmp(req->path, "/hook", 5) != 0)
    {
        r->bad_payload = true;
        fprintf(stderr, "bad delivery: %s %.*s body=%.*s\n", req->method, (int)req->path_len,
                req->path, (int)req->body_len, req->body);
    }
    int status = 200;
    if (r->refuse_all || (r->naccepted == r->fail_event_index && r->failed < r->fail_times)) {
        status = 500;
        r->failed += !r->refuse_all;
    } else if (ev && id && r->naccepted < 64) {
        snprintf(r->events[r->naccepted], sizeof r->events[0], "%s", ev);
        snprintf(r->ids[r->naccepted], sizeof r->ids[0], "%s", id);
        r->naccepted++;
    }
    json_decref(b);
    http_respond(x, status, NULL, 0, "ok", 2);
}

static void receiver_start_tls(receiver *r, uv_loop_t *loop, net_tls *tls)
{
    memset(r, 0, sizeof *r);
    r->fail_event_index = -1;
    char err[CU_ERRLEN];
    http_server_opts o = {.host = "127.0.0.1", .port = 0, .tls = tls};
    assert_int_equal(http_server_start(&r->srv, loop, &o, on_hook, r, err), 0);
    r->port = http_server_port(r->srv);
}

static void receiver_start(receiver *r, uv_loop_t *loop)
{
    receiver_start_tls(r, loop, NULL);
}

/* Runs the loop (real time, at most 5 s) until `want` events were accepted,
 * moving the fake clock one second per round so retries come due. */
static void spin_until(uv_loop_t *loop, rollout_ctl *c, fake *f, receiver *r, int want)
{
    uint64_t end = cu_now_ns() + 5000000000ull;
    while (r->naccepted < want && cu_now_ns() < end) {
        for (int i = 0; i < 50; i++)
            uv_run(loop, UV_RUN_NOWAIT);
        f->now += 1000;
        rollout_tick(c);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
}

static void tick_spin(uv_loop_t *loop, rollout_ctl *c, fake *f, int seconds)
{
    for (int s = 0; s < seconds; s++) {
        f->now += 1000;
        rollout_tick(c);
        for (int i = 0; i < 5; i++)
            uv_run(loop, UV_RUN_NOWAIT);
    }
}

static int read_exec_log(const char *path, char events[][32], int max)
{
    cu_buf b = CU_BUF_INIT;
    char err[CU_ERRLEN];
    int n = 0;
    if (cu_read_file(path, &b, err) < 0)
        return 0;
    for (char *line = b.data, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        json_t *o = json_loads(line, 0, NULL);
        const char *ev = json_string_value(json_object_get(o, "event"));
        if (ev && n < max)
            snprintf(events[n++], 32, "%s", ev);
        json_decref(o);
    }
    cu_buf_free(&b);
    return n;
}

static void test_webhook_and_exec_in_order(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    receiver r;
    receiver_start(&r, &loop);
    r.fail_event_index = 1; /* the second event is refused twice */
    r.fail_times = 2;
    char *path = temp_journal();
    char *dir = cu_dirname(path);
    char *log = cu_path_join(dir, "exec.log");
    char *yaml = cu_asprintf(
        "rollout:\n  from: blue\n  to: green\n"
        "  steps: [ { weight: 10, hold: 1m }, { weight: 50, hold: 1m, approve: true },"
        " { weight: 100, hold: 1m } ]\n"
        "  analysis: { interval: 1m, min_requests: 100, gates: [ \"p95 < 500ms\" ],"
        " rollback_when: [] }\n"
        "  notify:\n    - { webhook: \"http://127.0.0.1:%d/hook\", timeout: 2s }\n"
        "    - { exec: \"cat >> '%s'\" }\n", r.port, log);
    rollout_plan *p = plan_from(yaml, NULL);
    fake f;
    fake_init(&f, T0);
    fake_traffic(&f, 1, 30, 0, 0, 200); /* too little: the first analysis holds */
    fake_traffic(&f, 0, 1000, 0, 0, 200);
    rollout_ctl *c = open_ctl(p, path, &f, &loop);
    char err[CU_ERRLEN];
    assert_int_equal(rollout_start(c, "test", err), 0);
    tick_spin(&loop, c, &f, 60);                /* hold for data */
    fake_traffic(&f, 1, 1000, 0, 0, 200);
    tick_spin(&loop, c, &f, 60);                /* step 2 */
    tick_spin(&loop, c, &f, 60);                /* approval needed */
    assert_true(info_of(c).awaiting_approval);
    assert_int_equal(rollout_approve(c, "test", err), 0); /* step 3 */
    tick_spin(&loop, c, &f, 60);                /* promoted */
    assert_int_equal(info_of(c).state, ROLLOUT_PROMOTED);
    spin_until(&loop, c, &f, &r, 6);
    static const char *const want[] = {"start", "hold", "step", "approval", "step", "promoted"};
    assert_int_equal(r.naccepted, 6);
    for (int i = 0; i < 6; i++)
        assert_string_equal(r.events[i], want[i]);
    for (int i = 0; i < 6; i++)
        for (int k = 0; k < i; k++)
            assert_string_not_equal(r.ids[i], r.ids[k]);
    assert_int_equal(r.failed, 2);
    assert_int_equal(r.attempts, 8); /* 6 accepted + 2 refused, nothing repeated */
    assert_false(r.bad_payload);
    /* the exec hook got the same events, in order */
    char got[16][32];
    uint64_t end = cu_now_ns() + 5000000000ull;
    int n;
    while (((n = read_exec_log(log, got, 16)) < 6 ||
            sql_int(path, "SELECT count(*) FROM outbox WHERE delivered_ms IS NULL") > 0) &&
           cu_now_ns() < end) {
        uv_run(&loop, UV_RUN_NOWAIT);
        f.now += 1000;
        rollout_tick(c);
    }
    assert_int_equal(n, 6);
    for (int i = 0; i < 6; i++)
        assert_string_equal(got[i], want[i]);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM outbox WHERE delivered_ms IS NULL"), 0);
    assert_int_equal(sql_int(path, "SELECT attempts FROM outbox WHERE event='hold' AND receiver "
                                   "LIKE 'webhook:%'"), 3);
    rollout_close(c);
    http_server_stop(r.srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    /* nothing more arrived while shutting down */
    assert_int_equal(read_exec_log(log, got, 16), 6);
    fake_free(&f);
    rollout_plan_free(p);
    free(yaml);
    free(log);
    free(dir);
    remove_journal(path);
}

/* Deliveries pending at close are neither lost nor repeated after reopening. */
static void test_outbox_survives_restart(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    receiver r;
    receiver_start(&r, &loop);
    char *path = temp_journal();
    char *yaml = cu_asprintf(
        "rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 10, hold: 1h } ]\n"
        "  analysis: { interval: 1m, min_requests: 100, gates: [], rollback_when: [] }\n"
        "  notify: [ { webhook: \"http://127.0.0.1:%d/hook\" } ]\n", r.port);
    rollout_plan *p = plan_from(yaml, NULL);
    fake f;
    fake_init(&f, T0);
    fake_traffic(&f, 1, 1000, 0, 0, 200);
    fake_traffic(&f, 0, 1000, 0, 0, 200);
    rollout_ctl *c = open_ctl(p, path, &f, &loop);
    char err[CU_ERRLEN];
    assert_int_equal(rollout_start(c, "test", err), 0);
    spin_until(&loop, c, &f, &r, 1);
    assert_int_equal(r.naccepted, 1);
    r.refuse_all = true;
    assert_int_equal(rollout_pause(c, "test", err), 0);
    assert_int_equal(rollout_resume(c, "test", err), 0);
    tick_spin(&loop, c, &f, 5);
    int refused = r.attempts - 1;
    assert_true(refused >= 1);
    assert_int_equal(r.naccepted, 1);
    rollout_close(c); /* with 'pause' and 'resume' undelivered */
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM outbox WHERE delivered_ms IS NULL"), 2);
    r.refuse_all = false;
    c = open_ctl(p, path, &f, &loop);
    spin_until(&loop, c, &f, &r, 3);
    tick_spin(&loop, c, &f, 3);
    assert_int_equal(r.naccepted, 3);
    assert_string_equal(r.events[0], "start");
    assert_string_equal(r.events[1], "pause");
    assert_string_equal(r.events[2], "resume");
    assert_false(r.bad_payload);
    rollout_close(c);
    http_server_stop(r.srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    fake_free(&f);
    rollout_plan_free(p);
    free(yaml);
    remove_journal(path);
}

/* A receiver that is down does not slow decisions: the rollback still sets
 * the weight to 0 within the tick, and a hook that fails or hangs is retried. */
static void test_receiver_down_does_not_block(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char *path = temp_journal();
    rollout_plan *p = plan_from(
        "rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 10, hold: 1h } ]\n"
        "  analysis: { gates: [], rollback_when: [ \"error_rate > 5%\" ] }\n"
        "  notify: [ { webhook: \"http://127.0.0.1:9/hook\", timeout: 1s },"
        " { exec: \"exit 3\" }, { exec: \"sleep 5\", timeout: 200ms } ]\n", NULL);
    fake f;
    fake_init(&f, T0);
    fake_traffic(&f, 1, 1000, 0, 0, 200);
    rollout_ctl *c = open_ctl(p, path, &f, &loop);
    char err[CU_ERRLEN];
    assert_int_equal(rollout_start(c, "test", err), 0);
    fake_traffic(&f, 1, 1000, 200, 0, 200);
    f.now += 1000;
    rollout_tick(c);
    assert_true(f.weight == 0);
    uint64_t end = cu_now_ns() + 3000000000ull;
    while (cu_now_ns() < end &&
           sql_int(path, "SELECT min(attempts) FROM outbox WHERE event='start'") < 2) {
        uv_run(&loop, UV_RUN_NOWAIT);
        f.now += 1000;
        rollout_tick(c);
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    assert_true(sql_int(path, "SELECT min(attempts) FROM outbox WHERE event='start'") >= 2);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM outbox WHERE delivered_ms IS NOT NULL"),
                     0);
    /* order: nothing after 'start' was tried while 'start' is undelivered */
    assert_int_equal(sql_int(path, "SELECT count(*) FROM outbox WHERE event='rollback' AND "
                                   "attempts > 0"), 0);
    rollout_close(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    fake_free(&f);
    rollout_plan_free(p);
    remove_journal(path);
}

/* https webhooks verify the receiver's certificate: trusted through `ca`,
 * refused (and retried, not dropped) without it. */
static void test_https_webhook(void **state)
{
    (void)state;
    char *path = temp_journal();
    char *dir = cu_dirname(path);
    char *cmd = cu_asprintf("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
                            "-addext subjectAltName=IP:127.0.0.1 -keyout %s/key.pem -out "
                            "%s/cert.pem >/dev/null 2>&1", dir, dir);
    if (system(cmd) != 0) {
        free(cmd);
        free(dir);
        remove_journal(path);
        print_message("openssl CLI unavailable: https webhook test skipped\n");
        skip();
    }
    free(cmd);
    char *cert = cu_path_join(dir, "cert.pem"), *key = cu_path_join(dir, "key.pem");
    char err[CU_ERRLEN];
    net_tls *stls;
    assert_int_equal(net_tls_server_new(&stls, cert, key, err), 0);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    receiver r;
    receiver_start_tls(&r, &loop, stls);
    char *yaml = cu_asprintf(
        "rollout:\n  from: blue\n  to: green\n  steps: [ { weight: 10, hold: 1h } ]\n"
        "  analysis: { gates: [], rollback_when: [] }\n"
        "  notify:\n    - { webhook: \"https://127.0.0.1:%d/hook\", ca: \"%s\" }\n"
        "    - { webhook: \"https://127.0.0.1:%d/hook?untrusted\", timeout: 1s }\n",
        r.port, cert, r.port);
    rollout_plan *p = plan_from(yaml, NULL);
    fake f;
    fake_init(&f, T0);
    rollout_ctl *c = open_ctl(p, path, &f, &loop);
    assert_int_equal(rollout_start(c, "test", err), 0);
    spin_until(&loop, c, &f, &r, 1);
    tick_spin(&loop, c, &f, 3);
    assert_int_equal(r.naccepted, 1); /* only through the trusted receiver */
    assert_string_equal(r.events[0], "start");
    assert_int_equal(sql_int(path, "SELECT count(*) FROM outbox WHERE receiver LIKE "
                                   "'%untrusted' AND delivered_ms IS NULL AND attempts >= 1 AND "
                                   "last_error IS NOT NULL"), 1);
    rollout_close(c);
    http_server_stop(r.srv);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    net_tls_free(stls);
    fake_free(&f);
    rollout_plan_free(p);
    free(yaml);
    free(cert);
    free(key);
    free(dir);
    remove_journal(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_webhook_and_exec_in_order),
        cmocka_unit_test(test_outbox_survives_restart),
        cmocka_unit_test(test_receiver_down_does_not_block),
        cmocka_unit_test(test_https_webhook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
