/* Unit tests for net: address splitting, error names, the resolver, TCP and
 * TLS streams on loopback (echo server and client on one loop), listener
 * options. Every test counts its callbacks and checks exact totals, then
 * checks that the loop closes (no handle left behind). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/net.h"

/* ---- helpers ----------------------------------------------------------------- */
static char tmpdir[256];
static char cert_file[300], key_file[300];

/* A self-signed certificate for localhost / 127.0.0.1 / ::1, made with the
 * openssl command line tool. */
static int make_cert(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cutover-net-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(cert_file, sizeof cert_file, "%s/cert.pem", tmpdir);
    snprintf(key_file, sizeof key_file, "%s/key.pem", tmpdir);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1 "
             "-keyout %s -out %s >/dev/null 2>&1",
             key_file, cert_file);
    return system(cmd) == 0 ? 0 : -1;
}

static int remove_cert(void **state)
{
    (void)state;
    unlink(cert_file);
    unlink(key_file);
    rmdir(tmpdir);
    return 0;
}

static void close_loop(uv_loop_t *loop)
{
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* ---- echo server + client ------------------------------------------------------ */
typedef struct echo {
    uv_loop_t loop;
    net_listener *l;
    const char *payload;
    size_t payload_len;
    cu_buf got;
    int connect_calls, connect_status;
    int read_calls, end_calls, end_status, close_calls, drain_calls;
    int accepts, srv_end_calls, srv_close_calls;
    uint64_t srv_bytes;
    bool srv_end_after_write; /* server: send payload_len bytes then net_stream_end */
    bool early;               /* client: net_connect_early, payload written at once */
    int read_before_connect;  /* on_read or on_end before on_connect: must stay 0 */
} echo;

static void srv_read(net_stream *s, const char *data, size_t len)
{
    echo *e = net_stream_user(s);
    e->srv_bytes += len;
    assert_int_equal(net_write(s, data, len), 0);
}

static void srv_end(net_stream *s, int status)
{
    (void)status;
    echo *e = net_stream_user(s);
    e->srv_end_calls++;
    net_stream_close(s);
}

static void srv_close(net_stream *s)
{
    echo *e = net_stream_user(s);
    e->srv_close_calls++;
}

static const net_stream_cbs srv_cbs = {NULL, srv_read, srv_end, NULL, srv_close};

static void on_accept(net_listener *l, net_stream *s, void *user)
{
    (void)l;
    echo *e = user;
    e->accepts++;
    net_stream_set_user(s, e);
    net_stream_set_cbs(s, &srv_cbs);
    if (e->srv_end_after_write) {
        char *big = malloc(e->payload_len);
        for (size_t i = 0; i < e->payload_len; i++)
            big[i] = (char)('a' + i % 26);
        assert_int_equal(net_write(s, big, e->payload_len), 0);
        free(big);
        net_stream_end(s);
    }
}

static void cli_connect(net_stream *s, int status)
{
    echo *e = net_stream_user(s);
    e->connect_calls++;
    e->connect_status = status;
    if (status < 0) {
        net_stream_close(s);
        return;
    }
    if (!e->srv_end_after_write && !e->early)
        assert_int_equal(net_write(s, e->payload, e->payload_len), 0);
}

static void cli_read(net_stream *s, const char *data, size_t len)
{
    echo *e = net_stream_user(s);
    e->read_calls++;
    e->read_before_connect += e->connect_calls == 0;
    cu_buf_append(&e->got, data, len);
    if (!e->srv_end_after_write && e->got.len == e->payload_len)
        net_stream_close(s);
}

static void cli_end(net_stream *s, int status)
{
    echo *e = net_stream_user(s);
    e->end_calls++;
    e->read_before_connect += e->connect_calls == 0;
    e->end_status = status;
    net_stream_close(s);
}

static void cli_drain(net_stream *s)
{
    echo *e = net_stream_user(s);
    e->drain_calls++;
}

static void cli_close(net_stream *s)
{
    echo *e = net_stream_user(s);
    e->close_calls++;
    if (e->l) {
        net_listener_close(e->l);
        e->l = NULL;
    }
}

static const net_stream_cbs cli_cbs = {cli_connect, cli_read, cli_end, cli_drain, cli_close};

static void echo_init(echo *e, const char *payload, size_t len)
{
    memset(e, 0, sizeof *e);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    e->payload = payload;
    e->payload_len = len;
}

static int echo_listen(echo *e, const char *host, net_tls *tls)
{
    char err[CU_ERRLEN];
    int rc = net_listen(&e->l, &e->loop, host, 0, tls, on_accept, e, err);
    if (rc == 0)
        assert_true(net_listener_port(e->l) > 0);
    return rc;
}

static void echo_connect(echo *e, const char *ip, int port, net_tls *tls, const char *name)
{
    struct sockaddr_storage ss;
    if (strchr(ip, ':'))
        assert_int_equal(uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&ss), 0);
    else
        assert_int_equal(uv_ip4_addr(ip, port, (struct sockaddr_in *)&ss), 0);
    net_stream *s = e->early
                        ? net_connect_early(&e->loop, (struct sockaddr *)&ss, tls, name, &cli_cbs, e)
                        : net_connect(&e->loop, (struct sockaddr *)&ss, tls, name, &cli_cbs, e);
    assert_non_null(s);
    assert_ptr_equal(net_stream_user(s), e);
    if (e->early && !e->srv_end_after_write)
        assert_int_equal(net_write(s, e->payload, e->payload_len), 0);
    assert_int_equal(e->connect_calls, 0); /* never from inside net_connect or net_write */
}

static void echo_fini(echo *e)
{
    close_loop(&e->loop);
    cu_buf_free(&e->got);
}

/* An early client of a server that writes 5000 bytes and ends at once. */
static void speaker_init(echo *e)
{
    echo_init(e, NULL, 5000);
    e->early = true;
    e->srv_end_after_write = true;
    assert_int_equal(echo_listen(e, "127.0.0.1", NULL), 0);
}

/* The server wrote len bytes and ended before the client wrote anything:
 * on_connect(0), the data, then on_end(EOF), then on_close. */
static void assert_spoke_first(const echo *e, size_t len)
{
    assert_int_equal(e->connect_calls, 1);
    assert_int_equal(e->connect_status, 0);
    assert_int_equal(e->read_before_connect, 0);
    assert_int_equal(e->got.len, len);
    assert_int_equal(e->end_calls, 1);
    assert_int_equal(e->end_status, UV_EOF);
    assert_int_equal(e->close_calls, 1);
}

/* ---- tests ------------------------------------------------------------------------- */
static void test_split_hostport(void **state)
{
    (void)state;
    char err[CU_ERRLEN], *host;
    int port;
    assert_int_equal(net_split_hostport("127.0.0.1:8080", &host, &port, err), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    free(host);
    assert_int_equal(net_split_hostport("[::1]:9", &host, &port, err), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 9);
    free(host);
    assert_int_equal(net_split_hostport(":0", &host, &port, err), 0);
    assert_string_equal(host, "");
    assert_int_equal(port, 0);
    free(host);
    assert_int_equal(net_split_hostport("8081", &host, &port, err), 0);
    assert_string_equal(host, "");
    assert_int_equal(port, 8081);
    free(host);
    assert_int_equal(net_split_hostport("localhost:65535", &host, &port, err), 0);
    assert_string_equal(host, "localhost");
    free(host);
    const char *bad[] = {"", "localhost", "h:", "h:65536", "h:x", "[::1]", "[::1]8080", "::1:80",
                         "h:-1"};
    for (size_t i = 0; i < CU_ARRAY_LEN(bad); i++) {
        err[0] = 0;
        if (net_split_hostport(bad[i], &host, &port, err) != -EINVAL)
            fail_msg("'%s' should not parse", bad[i]);
        assert_null(host);
        assert_true(strlen(err) > 0);
    }
}

static void test_error_names(void **state)
{
    (void)state;
    assert_string_equal(net_error_name(UV_ECONNREFUSED), "ECONNREFUSED");
    assert_string_equal(net_error_name(UV_ETIMEDOUT), "ETIMEDOUT");
    assert_string_equal(net_error_name(UV_ECONNRESET), "ECONNRESET");
    assert_string_equal(net_error_name(UV_EAI_NONAME), "ENOTFOUND");
    assert_string_equal(net_error_name(NET_E_TLS), "EPROTO");
    assert_string_equal(net_error_name(NET_E_CERT_BASE - 18), "DEPTH_ZERO_SELF_SIGNED_CERT");
    assert_string_equal(net_error_name(NET_E_CERT_BASE - 19), "SELF_SIGNED_CERT_IN_CHAIN");
    assert_string_equal(net_error_name(NET_E_CERT_BASE - 20), "UNABLE_TO_GET_ISSUER_CERT_LOCALLY");
    assert_string_equal(net_error_name(NET_E_CERT_BASE - 21), "UNABLE_TO_VERIFY_LEAF_SIGNATURE");
    assert_string_equal(net_error_name(NET_E_CERT_BASE - 10), "CERT_HAS_EXPIRED");
    assert_string_equal(net_error_name(NET_E_CERT_BASE - 62), "ERR_TLS_CERT_ALTNAME_INVALID");
    assert_string_equal(net_error_name(-4000), "EUNKNOWN");
    assert_string_equal(net_error_name(12345), "EUNKNOWN");
}

/* ---- resolver ---- */
typedef struct rctx {
    int calls;
    int status[8];
    char addr[8][64];
    int port[8];
} rctx;

static void on_resolved(void *user, int status, const struct sockaddr *sa)
{
    rctx *r = user;
    int i = r->calls++;
    assert_true(i < 8);
    r->status[i] = status;
    if (status == 0) {
        if (sa->sa_family == AF_INET6) {
            uv_ip6_name((const struct sockaddr_in6 *)sa, r->addr[i], 64);
            r->port[i] = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
        } else {
            uv_ip4_name((const struct sockaddr_in *)sa, r->addr[i], 64);
            r->port[i] = ntohs(((const struct sockaddr_in *)sa)->sin_port);
        }
    } else {
        assert_null(sa);
    }
}

static void test_resolver(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    net_resolver *r = net_resolver_new(&loop, 10000);
    rctx a = {0};
    net_resolve(r, "127.0.0.1", 80, on_resolved, &a);
    net_resolve(r, "::1", 81, on_resolved, &a);
    net_resolve(r, "localhost", 82, on_resolved, &a);
    net_resolve(r, "localhost", 82, on_resolved, &a); /* joins the same lookup */
    assert_int_equal(a.calls, 0);                     /* literals too: later, not now */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(a.calls, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(a.status[i], 0);
    assert_string_equal(a.addr[0], "127.0.0.1");
    assert_int_equal(a.port[0], 80);
    assert_string_equal(a.addr[1], "::1");
    assert_int_equal(a.port[1], 81);
    assert_string_equal(a.addr[2], "127.0.0.1"); /* IPv4 first */
    assert_int_equal(a.port[2], 82);
    assert_string_equal(a.addr[3], "127.0.0.1");
    /* cached: still deferred */
    rctx b = {0};
    net_resolve(r, "localhost", 82, on_resolved, &b);
    assert_int_equal(b.calls, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status[0], 0);
    /* freed with answers pending: each fires once, cancelled */
    rctx c = {0};
    net_resolve(r, "127.0.0.1", 1, on_resolved, &c);
    net_resolve(r, "localhost", 82, on_resolved, &c);
    net_resolver_free(r);
    assert_int_equal(c.calls, 2);
    assert_int_equal(c.status[0], UV_ECANCELED);
    assert_int_equal(c.status[1], UV_ECANCELED);
    close_loop(&loop);
    assert_int_equal(c.calls, 2);
}

static void test_resolver_free_during_lookup(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    net_resolver *r = net_resolver_new(&loop, 0);
    rctx a = {0};
    net_resolve(r, "localhost", 1, on_resolved, &a);
    net_resolver_free(r);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status[0], UV_ECANCELED);
    close_loop(&loop); /* the lookup finishes or is cancelled; memory goes then */
    assert_int_equal(a.calls, 1);
}

/* ---- TCP ---- */
static void test_tcp_echo(void **state)
{
    (void)state;
    static char payload[300000];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (char)(i * 7);
    echo e;
    echo_init(&e, payload, sizeof payload);
    assert_int_equal(echo_listen(&e, "127.0.0.1", NULL), 0);
    echo_connect(&e, "127.0.0.1", net_listener_port(e.l), NULL, NULL);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    assert_int_equal(e.connect_calls, 1);
    assert_int_equal(e.connect_status, 0);
    assert_int_equal(e.got.len, sizeof payload);
    assert_memory_equal(e.got.data, payload, sizeof payload);
    assert_int_equal(e.end_calls, 0);
    assert_int_equal(e.close_calls, 1);
    assert_int_equal(e.accepts, 1);
    assert_int_equal(e.srv_end_calls, 1);
    assert_int_equal(e.srv_close_calls, 1);
    assert_int_equal(e.srv_bytes, sizeof payload);
    echo_fini(&e);
}

/* net_connect_early: the payload is written before on_connect, which still
 * fires once, before any on_read; a payload bigger than the socket buffer
 * goes out through the queue. */
static void early_echo(size_t len)
{
    char *payload = malloc(len);
    for (size_t i = 0; i < len; i++)
        payload[i] = (char)(i * 13);
    echo e;
    echo_init(&e, payload, len);
    e.early = true;
    assert_int_equal(echo_listen(&e, "127.0.0.1", NULL), 0);
    echo_connect(&e, "127.0.0.1", net_listener_port(e.l), NULL, NULL);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    assert_int_equal(e.connect_calls, 1);
    assert_int_equal(e.connect_status, 0);
    assert_int_equal(e.read_before_connect, 0);
    assert_int_equal(e.got.len, len);
    assert_memory_equal(e.got.data, payload, len);
    assert_int_equal(e.end_calls, 0);
    assert_int_equal(e.close_calls, 1);
    assert_int_equal(e.accepts, 1);
    assert_int_equal(e.srv_close_calls, 1);
    assert_int_equal(e.srv_bytes, len);
    echo_fini(&e);
    free(payload);
}

static void test_early_echo(void **state)
{
    (void)state;
    early_echo(100);
    early_echo(3000000);
}

/* The server writes and ends before the early client wrote anything:
 * on_connect(0), the data, then on_end(EOF). */
static void test_early_server_speaks(void **state)
{
    (void)state;
    echo e;
    speaker_init(&e);
    echo_connect(&e, "127.0.0.1", net_listener_port(e.l), NULL, NULL);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    assert_spoke_first(&e, 5000);
    echo_fini(&e);
}

static void test_ipv6(void **state)
{
    (void)state;
    echo e;
    echo_init(&e, "hello6", 6);
    if (echo_listen(&e, "::1", NULL) != 0) {
        close_loop(&e.loop);
        skip();
    }
    echo_connect(&e, "::1", net_listener_port(e.l), NULL, NULL);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    assert_int_equal(e.connect_status, 0);
    assert_int_equal(e.got.len, 6);
    assert_int_equal(e.close_calls, 1);
    assert_int_equal(e.srv_close_calls, 1);
    echo_fini(&e);
}

static void test_refused(void **state)
{
    (void)state;
    echo e;
    echo_init(&e, "x", 1);
    assert_int_equal(echo_listen(&e, "127.0.0.1", NULL), 0);
    int port = net_listener_port(e.l);
    net_listener_close(e.l);
    e.l = NULL;
    uv_run(&e.loop, UV_RUN_DEFAULT);
    echo_connect(&e, "127.0.0.1", port, NULL, NULL);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    assert_int_equal(e.connect_calls, 1);
    assert_int_equal(e.connect_status, UV_ECONNREFUSED);
    assert_string_equal(net_error_name(e.connect_status), "ECONNREFUSED");
    assert_int_equal(e.read_calls, 0);
    assert_int_equal(e.end_calls, 0);
    assert_int_equal(e.close_calls, 1);
    echo_fini(&e);
}

/* Refused with the payload already written: one on_connect(ECONNREFUSED),
 * nothing else, exactly as net_connect reports it. */
static void test_early_refused(void **state)
{
    (void)state;
    for (int with_write = 0; with_write < 2; with_write++) {
        echo e;
        echo_init(&e, "x", 1);
        e.early = true;
        e.srv_end_after_write = !with_write; /* (only stops the early write) */
        assert_int_equal(echo_listen(&e, "127.0.0.1", NULL), 0);
        int port = net_listener_port(e.l);
        net_listener_close(e.l);
        e.l = NULL;
        uv_run(&e.loop, UV_RUN_DEFAULT);
        echo_connect(&e, "127.0.0.1", port, NULL, NULL);
        uv_run(&e.loop, UV_RUN_DEFAULT);
        assert_int_equal(e.connect_calls, 1);
        assert_int_equal(e.connect_status, UV_ECONNREFUSED);
        assert_int_equal(e.read_calls, 0);
        assert_int_equal(e.end_calls, 0);
        assert_int_equal(e.close_calls, 1);
        echo_fini(&e);
    }
}

static void test_early_close_at_once(void **state)
{
    (void)state;
    echo e;
    echo_init(&e, "x", 1);
    assert_int_equal(echo_listen(&e, "127.0.0.1", NULL), 0);
    struct sockaddr_in sin;
    uv_ip4_addr("127.0.0.1", net_listener_port(e.l), &sin);
    net_stream *s = net_connect_early(&e.loop, (struct sockaddr *)&sin, NULL, NULL, &cli_cbs, &e);
    assert_int_equal(net_write(s, "hello", 5), 0);
    net_stream_close(s);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    assert_int_equal(e.connect_calls, 0);
    assert_int_equal(e.read_calls, 0);
    assert_int_equal(e.close_calls, 1);
    echo_fini(&e);
}

/* Which path early streams take: on io_uring (the default where the kernel
 * has what uring.c needs, as this project's machines do) the socket is a
 * fixed file of the ring and never a descriptor of the process; with
 * CUTOVER_IO_URING=0 (the second run of this suite) it is one, in the
 * epoll set. Either way the echo completes. */
static int count_fds(const char *prefix)
{
    char path[64], link[64];
    int n = 0;
    for (int fd = 0; fd < 4096; fd++) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t l = readlink(path, link, sizeof link - 1);
        if (l > 0 && (link[l] = 0, strncmp(link, prefix, strlen(prefix)) == 0))
            n++;
    }
    return n;
}

static int count_sockets(void)
{
    return count_fds("socket:");
}

static bool kernel_has_io_uring(void)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    int fd = (int)syscall(__NR_io_uring_setup, 4, &p);
    if (fd < 0)
        return false; /* ENOSYS, or blocked (a container's seccomp profile) */
    close(fd);
    return true;
}

static void test_early_path(void **state)
{
    (void)state;
    const char *env = getenv("CUTOVER_IO_URING");
    bool uring = !(env && strcmp(env, "0") == 0) && kernel_has_io_uring();
    if (!uring && !(env && strcmp(env, "0") == 0))
        fprintf(stderr, "test_early_path: no io_uring here: checking the epoll path instead\n");
    echo e;
    echo_init(&e, "hello", 5);
    e.early = true;
    assert_int_equal(echo_listen(&e, "127.0.0.1", NULL), 0);
    int before = count_sockets();
    echo_connect(&e, "127.0.0.1", net_listener_port(e.l), NULL, NULL);
    assert_int_equal(count_sockets() - before, uring ? 0 : 1);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    assert_int_equal(e.connect_calls, 1);
    assert_int_equal(e.connect_status, 0);
    assert_int_equal(e.got.len, 5);
    assert_int_equal(e.close_calls, 1);
    echo_fini(&e);
    /* the thread's ring outlives its loop, kept for the next one (a client
     * opening one connection at a time must not pay a ring setup for each):
     * three more loops, one at a time, still leave exactly one ring */
    for (int i = 0; i < 3; i++)
        early_echo(100);
    assert_int_equal(count_fds("anon_inode:[io_uring]"), uring ? 1 : 0);
}

/* A paused early stream whose peer sent everything and closed: the loop
 * sleeps until it is resumed (a socket at EOF left in the epoll set would
 * wake it at once, again and again), then the data and EOF arrive. */
typedef struct paused {
    echo *e;
    net_stream *s;
    int checks, checks_at_resume;
    int reads_at_resume; /* on_read and on_end calls before net_resume */
    bool paused;         /* test_early_pause_in_flight: paused from the first check */
} paused;

static void paused_check(uv_check_t *c)
{
    paused *p = c->data;
    p->checks++;
}

static void paused_resume(uv_timer_t *t)
{
    paused *p = t->data;
    p->checks_at_resume = p->checks;
    p->reads_at_resume = p->e->read_calls + p->e->end_calls;
    net_resume(p->s);
    uv_close((uv_handle_t *)t, NULL);
}

static void paused_stop_check(uv_timer_t *t)
{
    uv_check_stop(t->data);
    uv_close((uv_handle_t *)t->data, NULL);
    uv_close((uv_handle_t *)t, NULL);
}

/* Both paused tests: an early stream to a speaker (which writes and ends
 * at once), a check handle running `cb` each loop turn, and net_resume
 * after 200 ms. */
static void paused_start(echo *e, paused *p, uv_check_t *check, uv_check_cb cb,
                         uv_timer_t *resume)
{
    speaker_init(e);
    struct sockaddr_in sin;
    uv_ip4_addr("127.0.0.1", net_listener_port(e->l), &sin);
    *p = (paused){.e = e};
    p->s = net_connect_early(&e->loop, (struct sockaddr *)&sin, NULL, NULL, &cli_cbs, e);
    uv_check_init(&e->loop, check);
    check->data = p;
    uv_check_start(check, cb);
    uv_timer_init(&e->loop, resume);
    resume->data = p;
    uv_timer_start(resume, paused_resume, 200, 0);
}

static void test_early_paused_eof(void **state)
{
    (void)state;
    echo e;
    paused p;
    uv_check_t check;
    uv_timer_t resume, stop;
    paused_start(&e, &p, &check, paused_check, &resume);
    net_pause(p.s);
    uv_timer_init(&e.loop, &stop);
    stop.data = &check;
    uv_timer_start(&stop, paused_stop_check, 300, 0);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    /* accept, the server's write and end, their closes, the timer: a few
     * dozen turns at most, not one per wake-up of a busy loop */
    if (p.checks_at_resume > 50)
        fail_msg("%d loop turns while paused", p.checks_at_resume);
    assert_int_equal(p.reads_at_resume, 0);
    assert_spoke_first(&e, 5000);
    echo_fini(&e);
}

/* Paused while its first read is already in flight (on io_uring: the
 * RECV went out with the open chain, before the server accepted): what
 * then arrives, data and EOF, waits for net_resume and comes in order. */
static void inflight_check(uv_check_t *c)
{
    paused *p = c->data;
    if (!p->paused) { /* after the first poll: the open chain and its read are out */
        p->paused = true;
        net_pause(p->s);
        uv_check_stop(c);
        uv_close((uv_handle_t *)c, NULL);
    }
}

static void test_early_pause_in_flight(void **state)
{
    (void)state;
    echo e;
    paused p;
    uv_check_t check;
    uv_timer_t resume;
    paused_start(&e, &p, &check, inflight_check, &resume);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    assert_true(p.paused);
    assert_int_equal(p.reads_at_resume, 0);
    assert_spoke_first(&e, 5000);
    echo_fini(&e);
}

/* Early streams of two loops on one thread: the first loop's streams share
 * the thread's epoll set, the second loop's fall back to libuv's streams;
 * both echo, and both loops close with nothing left open. */
static void test_early_two_loops(void **state)
{
    (void)state;
    echo a, b;
    echo_init(&a, "first loop", 10);
    echo_init(&b, "second loop", 11);
    a.early = b.early = true;
    assert_int_equal(echo_listen(&a, "127.0.0.1", NULL), 0);
    assert_int_equal(echo_listen(&b, "127.0.0.1", NULL), 0);
    echo_connect(&a, "127.0.0.1", net_listener_port(a.l), NULL, NULL);
    echo_connect(&b, "127.0.0.1", net_listener_port(b.l), NULL, NULL);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    for (echo *e = &a; e; e = e == &a ? &b : NULL) {
        assert_int_equal(e->connect_calls, 1);
        assert_int_equal(e->connect_status, 0);
        assert_int_equal(e->got.len, e->payload_len);
        assert_memory_equal(e->got.data, e->payload, e->payload_len);
        assert_int_equal(e->close_calls, 1);
        assert_int_equal(e->srv_close_calls, 1);
    }
    echo_fini(&b);
    echo_fini(&a);
    /* and a third loop after them gets the thread's set again */
    early_echo(100);
}

/* The server answers at once and closes without reading a large early
 * upload, so the client's socket holds the answer and then a reset while
 * a write still waits: the answer is delivered (on_connect(0), on_read)
 * before the failure (on_end), as on libuv's path, not lost to the
 * failed write (which would also make it look like a connect error). */
static size_t rr_len; /* what the server answers: rr_len bytes of 'r' */

static void rr_accept(net_listener *l, net_stream *s, void *user)
{
    (void)l;
    echo *e = user;
    e->accepts++;
    net_stream_set_user(s, e);
    net_stream_set_cbs(s, &srv_cbs);
    char *b = malloc(rr_len);
    memset(b, 'r', rr_len);
    assert_int_equal(net_write(s, b, rr_len), 0);
    assert_int_equal(net_stream_queued(s), 0); /* all in the socket before the reset */
    free(b);
    net_stream_close(s); /* unread data in its buffer: a reset */
}

static void reply_then_reset(size_t reply_len)
{
    size_t len = 16 << 20;
    char *payload = calloc(1, len);
    echo e;
    echo_init(&e, payload, len);
    e.early = true;
    rr_len = reply_len;
    char err[CU_ERRLEN];
    assert_int_equal(net_listen(&e.l, &e.loop, "127.0.0.1", 0, NULL, rr_accept, &e, err), 0);
    echo_connect(&e, "127.0.0.1", net_listener_port(e.l), NULL, NULL);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    assert_int_equal(e.accepts, 1);
    assert_int_equal(e.connect_calls, 1);
    assert_int_equal(e.connect_status, 0);
    assert_int_equal(e.read_before_connect, 0);
    assert_int_equal(e.got.len, reply_len);
    for (size_t i = 0; i < reply_len; i++)
        if (e.got.data[i] != 'r')
            fail_msg("byte %zu of the answer is %d", i, e.got.data[i]);
    assert_int_equal(e.end_calls, 1);
    assert_true(e.end_status == UV_ECONNRESET || e.end_status == UV_EPIPE);
    assert_int_equal(e.close_calls, 1);
    echo_fini(&e);
    free(payload);
}

static void test_early_reply_then_reset(void **state)
{
    (void)state;
    reply_then_reset(4);
}

/* The same with an answer bigger than one read buffer of either path (16
 * KiB provided buffers on io_uring): all of it is delivered before the
 * failure, which is the reset, not an EOF. */
static void test_early_big_reply_then_reset(void **state)
{
    (void)state;
    reply_then_reset(100000);
}

/* An early stream closed while its reads or sends are in flight (a RECV
 * waiting for an answer that never comes, a SEND waiting for a peer that
 * does not read, in the open chain or after it, or both): the close must
 * still reach the peer at once,
 * and what was not yet sent is dropped. On io_uring each case cancels the
 * requests in flight in its own way (uring.c, emit); one that stayed in
 * flight would hold the socket open, and the peer would wait for ever. */
typedef struct inflight {
    uv_loop_t loop;
    net_listener *l;
    net_stream *cli, *srv;
    uv_timer_t close_t, watchdog;
    bool send, read;     /* the case: a large write, a read */
    bool later;          /* the large write after the open's own SEND completed */
    uint64_t srv_bytes;
    int srv_ends, cli_closes;
    bool timed_out;
} inflight;

enum { IF_BIG = 64 << 20 }; /* more than loopback's socket buffers hold */

static void if_stop(inflight *f)
{
    uv_timer_stop(&f->watchdog);
    uv_timer_stop(&f->close_t);
    if (f->srv)
        net_stream_close(f->srv);
    if (f->cli)
        net_stream_close(f->cli);
    if (f->l)
        net_listener_close(f->l);
    f->srv = f->cli = NULL;
    f->l = NULL;
}

static void if_close_client(uv_timer_t *t);

static void if_srv_read(net_stream *s, const char *data, size_t len)
{
    (void)data;
    inflight *f = net_stream_user(s);
    f->srv_bytes += len;
    if (f->later && f->srv_bytes == 5) {
        /* the open chain is done: now a SEND alone is in flight (its
         * cancel by user_data), as the server reads nothing more */
        net_pause(s);
        char *big = calloc(1, IF_BIG);
        assert_int_equal(net_write(f->cli, big, IF_BIG), 0);
        free(big);
        uv_update_time(&f->loop); /* (filling 64 MiB takes a while under ASan) */
        uv_timer_start(&f->close_t, if_close_client, 50, 0);
    } else if (!f->send && !f->later && f->srv_bytes == 5) { /* the client's RECV is armed by now */
        uv_timer_start(&f->close_t, if_close_client, 0, 0);
    }
}

static void if_srv_end(net_stream *s, int status)
{
    (void)status;
    inflight *f = net_stream_user(s);
    f->srv_ends++;
    if_stop(f);
}

static const net_stream_cbs if_srv_cbs = {NULL, if_srv_read, if_srv_end, NULL, NULL};

static void if_accept(net_listener *l, net_stream *s, void *user)
{
    (void)l;
    inflight *f = user;
    f->srv = s;
    net_stream_set_user(s, f);
    net_stream_set_cbs(s, &if_srv_cbs);
    if (f->send) { /* reads nothing until the client is gone: the SEND stays in flight */
        net_pause(s);
        uv_timer_start(&f->close_t, if_close_client, 50, 0);
    }
}

static void if_cli_close(net_stream *s)
{
    inflight *f = net_stream_user(s);
    f->cli_closes++;
    if (f->srv)
        net_resume(f->srv); /* now reads what the kernel holds, then the end */
}

static const net_stream_cbs if_cli_cbs = {NULL, NULL, NULL, NULL, if_cli_close};

static void if_close_client(uv_timer_t *t)
{
    inflight *f = t->data;
    net_stream_close(f->cli);
    f->cli = NULL;
}

static void if_watchdog(uv_timer_t *t)
{
    inflight *f = t->data;
    f->timed_out = true;
    if_stop(f);
}

static void early_close_in_flight(bool send, bool read, bool later)
{
    inflight f;
    memset(&f, 0, sizeof f);
    f.send = send;
    f.read = read;
    f.later = later;
    assert_int_equal(uv_loop_init(&f.loop), 0);
    char err[CU_ERRLEN];
    assert_int_equal(net_listen(&f.l, &f.loop, "127.0.0.1", 0, NULL, if_accept, &f, err), 0);
    uv_timer_init(&f.loop, &f.close_t);
    uv_timer_init(&f.loop, &f.watchdog);
    f.close_t.data = f.watchdog.data = &f;
    uv_timer_start(&f.watchdog, if_watchdog, 5000, 0);
    struct sockaddr_in sin;
    uv_ip4_addr("127.0.0.1", net_listener_port(f.l), &sin);
    f.cli = net_connect_early(&f.loop, (struct sockaddr *)&sin, NULL, NULL, &if_cli_cbs, &f);
    assert_non_null(f.cli);
    if (!read)
        net_pause(f.cli);
    if (send) {
        char *big = calloc(1, IF_BIG);
        assert_int_equal(net_write(f.cli, big, IF_BIG), 0);
        free(big);
    } else {
        assert_int_equal(net_write(f.cli, "hello", 5), 0);
    }
    uv_run(&f.loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&f.close_t, NULL);
    uv_close((uv_handle_t *)&f.watchdog, NULL);
    close_loop(&f.loop);
    assert_false(f.timed_out);
    assert_int_equal(f.cli_closes, 1);
    assert_int_equal(f.srv_ends, 1);
    if (send || later)
        assert_true(f.srv_bytes < (later ? 5 : 0) + IF_BIG); /* the rest was dropped with the close */
    else
        assert_int_equal(f.srv_bytes, 5);
}

static void test_early_close_in_flight(void **state)
{
    (void)state;
    early_close_in_flight(false, true, false); /* a RECV */
    early_close_in_flight(true, false, false); /* a SEND in the open chain */
    early_close_in_flight(true, true, false);  /* both */
    early_close_in_flight(false, false, true); /* a SEND alone, after the open */
}

/* A burst: hundreds of early users whose answers all arrive in the same
 * loop turn, more than the io_uring path has receive buffers (256): the
 * reads that find none wait in line for one, and every user completes
 * (a forked server answers each connection at once and closes it). */
typedef struct burst {
    int ok, reads, closes;
} burst;

static void bu_read(net_stream *s, const char *data, size_t len)
{
    (void)data;
    (void)len;
    burst *b = net_stream_user(s);
    b->reads++;
    net_stream_close(s);
}

static void bu_connect(net_stream *s, int status)
{
    burst *b = net_stream_user(s);
    if (status == 0)
        b->ok++;
    else
        net_stream_close(s);
}

static void bu_end(net_stream *s, int status)
{
    (void)status;
    net_stream_close(s);
}

static void bu_close(net_stream *s)
{
    burst *b = net_stream_user(s);
    b->closes++;
}

static const net_stream_cbs bu_cbs = {bu_connect, bu_read, bu_end, NULL, bu_close};

static void test_early_burst(void **state)
{
    (void)state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    int n = rl.rlim_cur > 2100 ? 2000 : (int)rl.rlim_cur - 100; /* the epoll path needs descriptors */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin;
    uv_ip4_addr("127.0.0.1", 0, &sin);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(lfd, 4096), 0);
    socklen_t sl = sizeof sin;
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (int i = 0; i < n; i++) {
            int c = accept(lfd, NULL, NULL);
            if (c < 0)
                continue;
            char req[64];
            (void)!read(c, req, sizeof req);
            (void)!write(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 38);
            close(c);
        }
        _exit(0);
    }
    close(lfd);
    uv_loop_t loop;
    uv_loop_init(&loop);
    burst b = {0};
    for (int i = 0; i < n; i++) {
        net_stream *s = net_connect_early(&loop, (struct sockaddr *)&sin, NULL, NULL, &bu_cbs, &b);
        assert_int_equal(net_write(s, "GET / HTTP/1.1\r\n\r\n", 18), 0);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    int st;
    waitpid(pid, &st, 0);
    assert_int_equal(b.ok, n);
    assert_int_equal(b.reads, n);
    assert_int_equal(b.closes, n);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* An early stream closed while a forked child still holds its socket (as
 * between uv_spawn's fork and exec): the socket stays in the epoll set, and
 * data the peer sends then makes events for a stream that is gone; they
 * must find nothing (under ASan a pointer kept in the event would be a
 * use after free), and the loop goes on and closes cleanly. Since the fork
 * is counted (pthread_atfork) the socket leaves the set before its close,
 * so the loop is not woken for it either. A second early stream (the
 * keeper) keeps the thread's epoll set alive meanwhile. */
typedef struct forked {
    uv_loop_t loop;
    net_listener *l;
    net_stream *cli, *keeper, *srv[2];
    int nsrv, cli_reads, keeper_reads, cli_closes, keeper_closes, srv_closes;
    int turns; /* loop turns from the fork to the end */
    pid_t child;
    uv_timer_t t;
    uv_check_t check;
} forked;

static void fk_turn(uv_check_t *c)
{
    forked *f = c->data;
    f->turns++;
}

static void fk_srv_close(net_stream *s)
{
    forked *f = net_stream_user(s);
    f->srv_closes++;
    for (int i = 0; i < 2; i++)
        if (f->srv[i] == s)
            f->srv[i] = NULL;
}

static void fk_srv_end(net_stream *s, int status)
{
    (void)status;
    net_stream_close(s);
}

static const net_stream_cbs fk_srv_cbs = {NULL, NULL, fk_srv_end, NULL, fk_srv_close};

static void fk_accept(net_listener *l, net_stream *s, void *user)
{
    (void)l;
    forked *f = user;
    assert_true(f->nsrv < 2);
    f->srv[f->nsrv++] = s;
    net_stream_set_user(s, f);
    net_stream_set_cbs(s, &fk_srv_cbs);
    assert_int_equal(net_write(s, "hi", 2), 0);
}

static void fk_done(uv_timer_t *t)
{
    forked *f = t->data;
    for (int i = 0; i < 2; i++)
        if (f->srv[i])
            net_stream_close(f->srv[i]);
    if (f->keeper)
        net_stream_close(f->keeper);
    net_listener_close(f->l);
    uv_close((uv_handle_t *)t, NULL);
    uv_check_stop(&f->check);
    uv_close((uv_handle_t *)&f->check, NULL);
}

static void fk_cli_read(net_stream *s, const char *data, size_t len)
{
    (void)data;
    (void)len;
    forked *f = net_stream_user(s);
    f->cli_reads++;
    if (f->child || f->nsrv < 2) /* (both are accepted before "hi" can arrive) */
        return;
    f->child = fork();
    assert_true(f->child >= 0);
    if (f->child == 0) {
        usleep(150000); /* holds every descriptor, as a child before exec */
        _exit(0);
    }
    net_stream_close(s);
    uv_check_start(&f->check, fk_turn);
    /* to both clients: the closed one's socket, alive in the child, would
     * wake the set were it still in it; the keeper reads its share */
    static char more[100000];
    for (int i = 0; i < 2; i++)
        assert_int_equal(net_write(f->srv[i], more, sizeof more), 0);
    uv_timer_start(&f->t, fk_done, 300, 0);
}

static void fk_cli_close(net_stream *s)
{
    forked *f = net_stream_user(s);
    f->cli_closes++;
}

static void fk_keeper_read(net_stream *s, const char *data, size_t len)
{
    (void)data;
    (void)len;
    forked *f = net_stream_user(s);
    f->keeper_reads++;
}

static void fk_keeper_close(net_stream *s)
{
    forked *f = net_stream_user(s);
    f->keeper_closes++;
    f->keeper = NULL;
}

static const net_stream_cbs fk_cli_cbs = {NULL, fk_cli_read, NULL, NULL, fk_cli_close};
static const net_stream_cbs fk_keeper_cbs = {NULL, fk_keeper_read, NULL, NULL, fk_keeper_close};

static void test_early_closed_in_child(void **state)
{
    (void)state;
    forked f;
    memset(&f, 0, sizeof f);
    assert_int_equal(uv_loop_init(&f.loop), 0);
    uv_timer_init(&f.loop, &f.t);
    f.t.data = &f;
    uv_check_init(&f.loop, &f.check);
    f.check.data = &f;
    char err[CU_ERRLEN];
    assert_int_equal(net_listen(&f.l, &f.loop, "127.0.0.1", 0, NULL, fk_accept, &f, err), 0);
    struct sockaddr_in sin;
    uv_ip4_addr("127.0.0.1", net_listener_port(f.l), &sin);
    f.keeper = net_connect_early(&f.loop, (struct sockaddr *)&sin, NULL, NULL, &fk_keeper_cbs, &f);
    f.cli = net_connect_early(&f.loop, (struct sockaddr *)&sin, NULL, NULL, &fk_cli_cbs, &f);
    assert_int_equal(net_write(f.cli, "hello", 5), 0);
    close_loop(&f.loop);
    int st = 0;
    assert_true(f.child > 0);
    assert_int_equal(waitpid(f.child, &st, 0), f.child);
    assert_int_equal(f.nsrv, 2);
    assert_true(f.cli_reads >= 1);
    assert_true(f.keeper_reads >= 1);
    assert_int_equal(f.cli_closes, 1);
    assert_int_equal(f.keeper_closes, 1);
    assert_int_equal(f.srv_closes, 2);
    /* it left the set before its close (the fork was counted), so it did
     * not wake the loop while the child held it: a few dozen turns (the
     * keeper's reads, the writes), not one per wake-up of a spinning loop */
    if (f.turns > 100)
        fail_msg("%d loop turns while the child held the socket", f.turns);
}

static void test_close_while_connecting(void **state)
{
    (void)state;
    echo e;
    echo_init(&e, "x", 1);
    assert_int_equal(echo_listen(&e, "127.0.0.1", NULL), 0);
    struct sockaddr_in sin;
    uv_ip4_addr("127.0.0.1", net_listener_port(e.l), &sin);
    net_stream *s = net_connect(&e.loop, (struct sockaddr *)&sin, NULL, NULL, &cli_cbs, &e);
    net_stream_close(s);
    net_stream_close(s); /* idempotent */
    uv_run(&e.loop, UV_RUN_DEFAULT);
    assert_int_equal(e.connect_calls, 0);
    assert_int_equal(e.close_calls, 1);
    echo_fini(&e);
}

static void test_end_flushes(void **state)
{
    (void)state;
    echo e;
    echo_init(&e, NULL, 4 << 20);
    e.srv_end_after_write = true;
    assert_int_equal(echo_listen(&e, "127.0.0.1", NULL), 0);
    echo_connect(&e, "127.0.0.1", net_listener_port(e.l), NULL, NULL);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    assert_int_equal(e.connect_status, 0);
    assert_int_equal(e.got.len, (size_t)4 << 20);
    assert_int_equal(e.got.data[(4 << 20) - 1], (char)('a' + ((4 << 20) - 1) % 26));
    assert_int_equal(e.end_calls, 1);
    assert_int_equal(e.end_status, UV_EOF);
    assert_int_equal(e.close_calls, 1);
    assert_int_equal(e.srv_close_calls, 1);
    assert_int_equal(e.srv_end_calls, 0); /* ended by us: no on_end */
    echo_fini(&e);
}

/* ---- half-close: the client sends, shuts its write side and reads on; the
 * server answers the FIN with more than the kernel buffers hold and ends at
 * once (the rest goes out from its queue) ---- */
#define HC_SENT 300000
#define HC_REPLY (8 << 20)
typedef struct half {
    uv_loop_t loop;
    net_listener *l;
    char *reply;
    size_t srv_got, cli_got;
    int srv_end_status, cli_end_status, write_after_shut, closes;
    bool cli_bytes_ok;
} half;

static void half_srv_read(net_stream *s, const char *data, size_t len)
{
    (void)data;
    half *h = net_stream_user(s);
    h->srv_got += len;
}

static void half_srv_end(net_stream *s, int status)
{
    half *h = net_stream_user(s);
    h->srv_end_status = status;
    if (status == UV_EOF)
        assert_int_equal(net_write(s, h->reply, HC_REPLY), 0); /* the peer half-closed: writing goes on */
    net_stream_end(s);
}

static void half_close(net_stream *s)
{
    half *h = net_stream_user(s);
    if (++h->closes == 2) {
        net_listener_close(h->l);
        h->l = NULL;
    }
}

static const net_stream_cbs half_srv_cbs = {NULL, half_srv_read, half_srv_end, NULL, half_close};

static void half_accept(net_listener *l, net_stream *s, void *user)
{
    (void)l;
    net_stream_set_user(s, user);
    net_stream_set_cbs(s, &half_srv_cbs);
}

static void half_cli_connect(net_stream *s, int status)
{
    half *h = net_stream_user(s);
    assert_int_equal(status, 0);
    char *sent = malloc(HC_SENT);
    memset(sent, 'q', HC_SENT);
    assert_int_equal(net_write(s, sent, HC_SENT), 0);
    free(sent);
    net_stream_shutdown(s);
    h->write_after_shut = net_write(s, "x", 1);
}

static void half_cli_read(net_stream *s, const char *data, size_t len)
{
    half *h = net_stream_user(s);
    if (memcmp(data, h->reply + h->cli_got, len) != 0)
        h->cli_bytes_ok = false;
    h->cli_got += len;
}

static void half_cli_end(net_stream *s, int status)
{
    half *h = net_stream_user(s);
    h->cli_end_status = status;
    net_stream_close(s);
}

static const net_stream_cbs half_cli_cbs = {half_cli_connect, half_cli_read, half_cli_end, NULL,
                                            half_close};

static void half_case(net_tls *stls, net_tls *ctls)
{
    half h = {.cli_bytes_ok = true};
    assert_int_equal(uv_loop_init(&h.loop), 0);
    h.reply = malloc(HC_REPLY);
    for (size_t i = 0; i < HC_REPLY; i++)
        h.reply[i] = (char)(i * 11);
    char err[CU_ERRLEN];
    assert_int_equal(net_listen(&h.l, &h.loop, "127.0.0.1", 0, stls, half_accept, &h, err), 0);
    struct sockaddr_in sa;
    assert_int_equal(uv_ip4_addr("127.0.0.1", net_listener_port(h.l), &sa), 0);
    assert_non_null(net_connect(&h.loop, (struct sockaddr *)&sa, ctls, ctls ? "localhost" : NULL,
                                &half_cli_cbs, &h));
    uv_run(&h.loop, UV_RUN_DEFAULT);
    assert_int_equal(h.write_after_shut, UV_EPIPE);
    assert_int_equal(h.srv_got, HC_SENT);          /* everything before the FIN */
    assert_int_equal(h.srv_end_status, UV_EOF);    /* then the FIN itself */
    assert_int_equal(h.cli_got, HC_REPLY);         /* read on after shutting down */
    assert_true(h.cli_bytes_ok);
    assert_int_equal(h.cli_end_status, UV_EOF);
    assert_int_equal(h.closes, 2);
    close_loop(&h.loop);
    free(h.reply);
}

static void test_half_close(void **state)
{
    (void)state;
    half_case(NULL, NULL);
}

/* A server context with the test certificate and a client context. */
static void tls_pair(net_tls **stls, net_tls **ctls, bool verify, const char *ca)
{
    char err[CU_ERRLEN];
    if (net_tls_server_new(stls, cert_file, key_file, err) != 0)
        fail_msg("server ctx: %s", err);
    if (net_tls_client_new(ctls, verify, ca, err) != 0)
        fail_msg("client ctx: %s", err);
}

static void test_tls_half_close(void **state)
{
    (void)state;
    net_tls *stls, *ctls;
    tls_pair(&stls, &ctls, false, NULL);
    half_case(stls, ctls);
    net_tls_free(stls);
    net_tls_free(ctls);
}

static void test_listen_errors(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[CU_ERRLEN];
    net_listener *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(net_listen(&a, &loop, "127.0.0.1", 0, NULL, on_accept, NULL, err), 0);
    /* SO_REUSEPORT: a second listener on the same port works */
    assert_int_equal(
        net_listen(&b, &loop, "127.0.0.1", net_listener_port(a), NULL, on_accept, NULL, err), 0);
    assert_int_equal(net_listener_port(a), net_listener_port(b));
    assert_true(net_listen(&c, &loop, "no.such.host.invalid", 0, NULL, on_accept, NULL, err) < 0);
    assert_null(c);
    assert_true(net_listen(&c, &loop, "127.0.0.1", 70000, NULL, on_accept, NULL, err) < 0);
    net_listener_close(a);
    net_listener_close(b);
    close_loop(&loop);
}

/* ---- TLS ---- */
static void tls_case(bool verify, const char *ca, const char *name, int want_connect,
                     size_t payload_len)
{
    net_tls *stls, *ctls;
    tls_pair(&stls, &ctls, verify, ca);
    char *payload = malloc(payload_len);
    for (size_t i = 0; i < payload_len; i++)
        payload[i] = (char)(i * 13);
    echo e;
    echo_init(&e, payload, payload_len);
    assert_int_equal(echo_listen(&e, "127.0.0.1", stls), 0);
    echo_connect(&e, "127.0.0.1", net_listener_port(e.l), ctls, name);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    assert_int_equal(e.connect_calls, 1);
    if (e.connect_status != want_connect)
        fail_msg("connect: got %d (%s), want %d (%s)", e.connect_status,
                 net_error_name(e.connect_status), want_connect, net_error_name(want_connect));
    assert_int_equal(e.close_calls, 1);
    assert_int_equal(e.accepts, 1);
    assert_int_equal(e.srv_close_calls, 1);
    if (want_connect == 0) {
        assert_int_equal(e.got.len, payload_len);
        assert_memory_equal(e.got.data, payload, payload_len);
        assert_int_equal(e.srv_bytes, payload_len);
    } else {
        assert_int_equal(e.got.len, 0);
    }
    echo_fini(&e);
    free(payload);
    net_tls_free(stls);
    net_tls_free(ctls);
}

static void test_tls_self_signed_rejected(void **state)
{
    (void)state;
    tls_case(true, NULL, "localhost", NET_E_CERT_BASE - 18, 10);
    assert_string_equal(net_error_name(NET_E_CERT_BASE - 18), "DEPTH_ZERO_SELF_SIGNED_CERT");
}

static void test_tls_with_ca(void **state)
{
    (void)state;
    tls_case(true, cert_file, "localhost", 0, 200000);
    tls_case(true, cert_file, "127.0.0.1", 0, 100); /* IP SAN */
}

static void test_tls_no_verify(void **state)
{
    (void)state;
    tls_case(false, NULL, "whatever.example", 0, 5000);
}

static void test_tls_wrong_host(void **state)
{
    (void)state;
    tls_case(true, cert_file, "wrong.example", NET_E_CERT_BASE - 62, 10);
}

static void test_tls_bad_files(void **state)
{
    (void)state;
    char err[CU_ERRLEN] = "";
    net_tls *t = NULL;
    assert_int_equal(net_tls_server_new(&t, "/nonexistent.pem", key_file, err), NET_E_TLS);
    assert_null(t);
    assert_non_null(strstr(err, "/nonexistent.pem"));
    assert_int_equal(net_tls_client_new(&t, true, "/nonexistent-ca.pem", err), NET_E_TLS);
    assert_null(t);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    alarm(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_hostport),
        cmocka_unit_test(test_error_names),
        cmocka_unit_test(test_resolver),
        cmocka_unit_test(test_resolver_free_during_lookup),
        cmocka_unit_test(test_tcp_echo),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_close_while_connecting),
        cmocka_unit_test(test_early_echo),
        cmocka_unit_test(test_early_server_speaks),
        cmocka_unit_test(test_early_refused),
        cmocka_unit_test(test_early_close_at_once),
        cmocka_unit_test(test_early_path),
        cmocka_unit_test(test_early_paused_eof),
        cmocka_unit_test(test_early_pause_in_flight),
        cmocka_unit_test(test_early_two_loops),
        cmocka_unit_test(test_early_closed_in_child),
        cmocka_unit_test(test_early_reply_then_reset),
        cmocka_unit_test(test_early_big_reply_then_reset),
        cmocka_unit_test(test_early_close_in_flight),
        cmocka_unit_test(test_early_burst),
        cmocka_unit_test(test_end_flushes),
        cmocka_unit_test(test_half_close),
        cmocka_unit_test(test_tls_half_close),
        cmocka_unit_test(test_listen_errors),
        cmocka_unit_test(test_tls_self_signed_rejected),
        cmocka_unit_test(test_tls_with_ca),
        cmocka_unit_test(test_tls_no_verify),
        cmocka_unit_test(test_tls_wrong_host),
        cmocka_unit_test(test_tls_bad_files),
    };
    return cmocka_run_group_tests(tests, make_cert, remove_cert);
}
