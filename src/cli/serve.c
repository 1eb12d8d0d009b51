/* cli/serve: `cutover serve CONFIG.yml`, the weighted blue/green router.
 * Loads the config, starts the router on this thread's loop, writes the
 * port files, then waits for signals: SIGHUP reloads (a broken file keeps
 * the old config running and says why), SIGTERM/SIGINT drain (stop
 * accepting, finish in-flight requests up to timeouts.drain) and exit 0.
 * This is also where the rollout controller will be attached: it gets
 * router_loop() for its timers and the parsed `rollout`/`state` nodes. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "router/router.h"

static const char USAGE[] =
    "usage: cutover serve [options] CONFIG.yml\n"
    "\n"
    "Runs the weighted blue/green router described by CONFIG.yml (docs/serve.md)\n"
    "until SIGTERM or SIGINT, which drain it: no new connections, in-flight\n"
    "requests finish (up to timeouts.drain), exit 0. SIGHUP reloads CONFIG.yml.\n"
    "\n"
    "options:\n"
    "  --port-file FILE        write the listeners' bound ports to FILE, one a line\n"
    "  --admin-port-file FILE  write the admin API's bound port to FILE\n"
    "  --check                 validate CONFIG.yml and exit (0 when valid)\n"
    "  -v, --verbose           debug logging (health changes, weight changes and\n"
    "                          reloads are logged anyway)\n"
    "  -h, --help              show this help\n";

typedef struct serve_ctx {
    uv_loop_t loop;
    uv_signal_t sighup, sigterm, sigint;
    router *r;
    serve_rollout *ro;           /* NULL without a rollout: section */
    uint64_t drain_ms;
    int stopping;
    int done;
} serve_ctx;

/* Writes the ports, one per line, atomically (rename). */
/* The bound ports, one a line (atomic: tests poll for the file). */
static int write_port_file(const char *path, const int *ports, size_t n)
{
    cu_buf b = CU_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        cu_buf_appendf(&b, "%d\n", ports[i]);
    int rc = cu_write_file(path, b.data, b.len);
    cu_buf_free(&b);
    return rc;
}

static void on_drained(void *arg)
{
    serve_ctx *s = arg;
    if (s->done++)
        return;
    cu_info("cutover serve: drained, exiting");
    uv_close((uv_handle_t *)&s->sighup, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_stop(&s->loop);
}

static void on_signal(uv_signal_t *h, int signum)
{
    serve_ctx *s = h->data;
    if (signum == SIGHUP) {
        char err[CU_ERRLEN];
        if (router_reload(s->r, err) < 0)
            cu_error("cutover serve: reload failed, still running the previous config: %s", err);
        else
            cu_warn("cutover serve: config reloaded");
        return;
    }
    if (s->stopping++) {
        if (s->stopping == 2) {
            cu_warn("cutover serve: second signal, closing now");
            on_drained(s);
        }
        return;
    }
    cu_warn("cutover serve: %s, draining (up to %llu ms)", signum == SIGTERM ? "SIGTERM" : "SIGINT",
            (unsigned long long)s->drain_ms);
    router_drain(s->r, s->drain_ms, on_drained, s);
}

int cmd_serve(int argc, char **argv)
{
    const char *path = NULL, *port_file = NULL, *admin_port_file = NULL;
    bool check = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(USAGE, stdout);
            return 0;
        } else if (!strcmp(a, "--port-file") && i + 1 < argc) {
            port_file = argv[++i];
        } else if (!strcmp(a, "--admin-port-file") && i + 1 < argc) {
            admin_port_file = argv[++i];
        } else if (!strcmp(a, "--check")) {
            check = true;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            cu_log_set_level(CU_LOG_DEBUG);
        } else if (a[0] == '-') {
            fprintf(stderr, "cutover serve: unknown option '%s'\n%s", a, USAGE);
            return 2;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "cutover serve: one config file, please ('%s')\n", a);
            return 2;
        }
    }
    if (!path) {
        fputs(USAGE, stderr);
        return 2;
    }
    char err[CU_ERRLEN];
    router_config cfg;
    if (router_config_load(&cfg, path, err) < 0) {
        fprintf(stderr, "cutover serve: %s\n", err);
        return 1;
    }
    if (check) {
        int rc = serve_rollout_check(&cfg, path, err);
        router_config_free(&cfg);
        if (rc < 0) {
            fprintf(stderr, "cutover serve: %s\n", err);
            return 1;
        }
        printf("%s: ok\n", path);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    serve_ctx s;
    memset(&s, 0, sizeof s);
    uv_loop_init(&s.loop);
    /* Signals are caught before the listeners open, so a SIGTERM right
     * after the port file appears is always a drain, never a kill. */
    uv_signal_init(&s.loop, &s.sighup);
    uv_signal_init(&s.loop, &s.sigterm);
    uv_signal_init(&s.loop, &s.sigint);
    s.sighup.data = s.sigterm.data = s.sigint.data = &s;
    s.drain_ms = cfg.drain_timeout_ms;
    int status = 1;
    if (router_start(&s.r, &s.loop, &cfg, err) < 0) {
        fprintf(stderr, "cutover serve: %s\n", err);
        goto out;
    }
    int rc;
    if ((rc = serve_rollout_attach(&s.ro, s.r, path, err)) < 0) {
        fprintf(stderr, "cutover serve: %s\n", err);
        goto out;
    }
    size_t nl = router_listeners(s.r);
    int ports[64];
    if (nl > CU_ARRAY_LEN(ports))
        nl = CU_ARRAY_LEN(ports);
    for (size_t i = 0; i < nl; i++)
        ports[i] = router_listener_port(s.r, i);
    int admin = router_admin_port(s.r);
    if (port_file && (rc = write_port_file(port_file, ports, nl)) < 0) {
        fprintf(stderr, "cutover serve: cannot write %s: %s\n", port_file, strerror(-rc));
        goto out;
    }
    if (admin_port_file && (rc = write_port_file(admin_port_file, &admin, 1)) < 0) {
        fprintf(stderr, "cutover serve: cannot write %s: %s\n", admin_port_file, strerror(-rc));
        goto out;
    }
    printf("cutover serve: listening on port");
    for (size_t i = 0; i < nl; i++)
        printf("%s%d", i ? ", " : " ", ports[i]);
    printf("; admin on port %d; green weight %.2f%%\n", admin, router_weight(s.r));
    if (s.ro) {
        cu_buf line = CU_BUF_INIT;
        serve_rollout_describe(s.ro, &line);
        printf("cutover serve: %s\n", line.data);
        cu_buf_free(&line);
    }
    fflush(stdout);
    uv_signal_start(&s.sighup, on_signal, SIGHUP);
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_run(&s.loop, UV_RUN_DEFAULT);
    status = 0;
out:
    serve_rollout_detach(s.ro);
    if (s.r)
        router_free(s.r);
    if (!uv_is_closing((uv_handle_t *)&s.sighup)) {
        uv_close((uv_handle_t *)&s.sighup, NULL);
        uv_close((uv_handle_t *)&s.sigterm, NULL);
        uv_close((uv_handle_t *)&s.sigint, NULL);
    }
    uv_run(&s.loop, UV_RUN_DEFAULT);
    uv_loop_close(&s.loop);
    return status;
}
