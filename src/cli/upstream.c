/* cli/upstream: `cutover upstream`, the sample service, until SIGINT/SIGTERM.
 * Parses options, starts the workers (src/upstream/), prints the one
 * "listening on" line, writes --port-file, and waits on a uv_signal. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "net/net.h"
#include "upstream/upstream.h"

static const char USAGE[] =
    "usage: cutover upstream [options]\n"
    "\n"
    "A sample HTTP service for rehearsals, tests and benchmarks: the lego-api of\n"
    "the case study plus test endpoints. Runs until SIGINT or SIGTERM (exit 0).\n"
    "\n"
    "options:\n"
    "  --listen HOST:PORT  address to listen on (default 127.0.0.1:8081; port 0\n"
    "                      picks a free one; ':PORT' means 127.0.0.1)\n"
    "  --color NAME        colour reported in X-Cutover-Color and /health\n"
    "                      (default blue)\n"
    "  --latency DIST      delay before answering each API request: fixed:5ms,\n"
    "                      uniform:1ms-10ms or lognormal:p50=20ms,p99=200ms\n"
    "                      (units us, ms, s; default none)\n"
    "  --error-rate P      fraction (0..1) of API requests answered 500 (default 0)\n"
    "  --tls-cert FILE     serve HTTPS with this PEM certificate (with --tls-key)\n"
    "  --tls-key FILE      the PEM private key of --tls-cert\n"
    "  --workers N         threads, each with its own event loop, all listening on\n"
    "                      the same port with SO_REUSEPORT (default 1)\n"
    "  --port-file FILE    write the bound port to FILE once listening\n"
    "  --seed N            seed for latency and error sampling (default random)\n"
    "  -h, --help          show this help\n"
    "\n"
    "endpoints (every response has Content-Type and X-Cutover-Color):\n"
    "  GET  /health                  200 {\"status\":\"ok\",\"color\":...}\n"
    "  GET  /api/mocs                200 {\"data\":[{\"id\":\"moc-1\",...},...]}\n"
    "  GET  /api/mocs/{id}           200 the MOC {id} (any id, even 'undefined')\n"
    "  GET  /api/gallery?search=X    200 gallery items whose title contains X\n"
    "  GET  /api/wishlist            401 without an Authorization header, else 200\n"
    "  POST /api/gallery/{id}/image  multipart/form-data upload: 200 with each file's\n"
    "                                field, filename, content_type, size and sha256;\n"
    "                                400 without a boundary, a valid body or a file\n"
    "  ANY  /echo, /echo/...         200 the request as JSON: method, target, headers,\n"
    "                                body_length, body (utf8 or base64)\n"
    "  GET  /                        200 a short text\n"
    "  GET  /status/{code}           answers {code} (200..599)\n"
    "  GET  /bytes/{n}               n bytes (n <= 64 MiB)\n"
    "  GET  /delay/{ms}              200 after ms milliseconds (ms <= 600000)\n"
    "API requests, to which --latency and --error-rate apply: /api/..., / and\n"
    "/bytes/{n}. /health, /echo, /status and /delay are never delayed or failed.\n";

static const char *const OPTIONS[] = {
    "--listen", "--color", "--latency", "--error-rate", "--tls-cert", "--tls-key",
    "--workers", "--port-file", "--seed", "--help",
};

/* The signals are caught from before the service starts, so a SIGTERM sent
 * right after the "listening" line can never kill the process. */
typedef struct {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    int signum;
} waiter;

static int usage_error(const char *fmt, ...) CU_PRINTF(1, 2);
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cutover upstream: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nrun 'cutover upstream --help' for the options\n");
    va_end(ap);
    return 2;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    if (!*s || *s == '-')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno || v > max)
        return false;
    *out = v;
    return true;
}

static void on_signal(uv_signal_t *h, int signum)
{
    waiter *w = h->data;
    w->signum = signum;
    uv_close((uv_handle_t *)&w->sigint, NULL);
    uv_close((uv_handle_t *)&w->sigterm, NULL);
}

static int waiter_init(waiter *w)
{
    memset(w, 0, sizeof *w);
    int rc = uv_loop_init(&w->loop);
    if (rc < 0)
        return rc;
    uv_signal_init(&w->loop, &w->sigint);
    uv_signal_init(&w->loop, &w->sigterm);
    w->sigint.data = w->sigterm.data = w;
    uv_signal_start(&w->sigint, on_signal, SIGINT);
    uv_signal_start(&w->sigterm, on_signal, SIGTERM);
    return 0;
}

/* Blocks until SIGINT or SIGTERM (already caught ones count). */
static int waiter_wait(waiter *w)
{
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    return w->signum;
}

/* When start-up fails after waiter_init. */
static void waiter_close(waiter *w)
{
    uv_close((uv_handle_t *)&w->sigint, NULL);
    uv_close((uv_handle_t *)&w->sigterm, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
}

int cmd_upstream(int argc, char **argv)
{
    upstream_config cfg = {.color = "blue", .workers = 1};
    const char *listen = "127.0.0.1:8081", *port_file = NULL, *latency = NULL;
    char err[CU_ERRLEN];
    char *host = NULL;
    int status = 2;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = NULL;
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            fputs(USAGE, stdout);
            return 0;
        }
        if (strncmp(arg, "--", 2) != 0)
            return usage_error("unexpected argument '%s'", arg);
        char name[64];
        const char *eq = strchr(arg, '=');
        size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        snprintf(name, sizeof name, "%.*s", (int)CU_MIN(nlen, sizeof name - 1), arg);
        bool known = false;
        for (size_t k = 0; k < CU_ARRAY_LEN(OPTIONS); k++)
            known |= !strcmp(name, OPTIONS[k]);
        if (!strcmp(name, "--help")) {
            fputs(USAGE, stdout);
            return 0;
        }
        if (!known) {
            const char *near = cu_nearest(name, OPTIONS, CU_ARRAY_LEN(OPTIONS));
            if (near)
                return usage_error("unknown option '%s' (did you mean '%s'?)", name, near);
            return usage_error("unknown option '%s'", name);
        }
        if (eq)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        else
            return usage_error("option '%s' needs a value", name);

        uint64_t u;
        if (!strcmp(name, "--listen")) {
            listen = val;
        } else if (!strcmp(name, "--color")) {
            if (!*val)
                return usage_error("--color needs a name");
            cfg.color = val;
        } else if (!strcmp(name, "--latency")) {
            latency = val;
        } else if (!strcmp(name, "--error-rate")) {
            char *end;
            double p = strtod(val, &end);
            if (!*val || *end || !(p >= 0 && p <= 1))
                return usage_error("invalid --error-rate '%s': want a number from 0 to 1",
                                   val);
            cfg.error_rate = p;
        } else if (!strcmp(name, "--tls-cert")) {
            cfg.tls_cert = val;
        } else if (!strcmp(name, "--tls-key")) {
            cfg.tls_key = val;
        } else if (!strcmp(name, "--workers")) {
            if (!parse_u64(val, 256, &u) || u == 0)
                return usage_error("invalid --workers '%s': want 1 to 256", val);
            cfg.workers = (int)u;
        } else if (!strcmp(name, "--port-file")) {
            port_file = val;
        } else if (!strcmp(name, "--seed")) {
            if (!parse_u64(val, UINT64_MAX, &u))
                return usage_error("invalid --seed '%s': want a non-negative integer", val);
            cfg.seed = u;
            cfg.has_seed = true;
        }
    }
    if (latency && upstream_latency_parse(&cfg.latency, latency, err) < 0)
        return usage_error("%s", err);
    if ((cfg.tls_cert != NULL) != (cfg.tls_key != NULL))
        return usage_error("--tls-cert and --tls-key go together");
    if (net_split_hostport(listen, &host, &cfg.port, err) < 0)
        return usage_error("--listen: %s", err);
    /* the listener takes literal addresses; "localhost" is the usual one */
    cfg.host = !*host || !strcmp(host, "localhost") ? "127.0.0.1" : host;

    signal(SIGPIPE, SIG_IGN);
    waiter w;
    int rc = waiter_init(&w);
    if (rc < 0) {
        fprintf(stderr, "cutover upstream: cannot watch signals: %s\n", uv_strerror(rc));
        status = 1;
        goto out;
    }
    upstream *u = NULL;
    if (upstream_start(&u, &cfg, err) < 0) {
        fprintf(stderr, "cutover upstream: cannot listen on %s: %s\n", listen, err);
        status = 1;
        goto close_waiter;
    }
    int port = upstream_port(u);
    char portline[16];
    snprintf(portline, sizeof portline, "%d\n", port);
    if (port_file && (rc = cu_write_file(port_file, portline, strlen(portline))) < 0) {
        fprintf(stderr, "cutover upstream: cannot write %s: %s\n", port_file, strerror(-rc));
        status = 1;
        goto stop;
    }
    bool v6 = strchr(cfg.host, ':') != NULL;
    printf("cutover upstream: listening on %s://%s%s%s:%d (color %s)\n",
           cfg.tls_cert ? "https" : "http", v6 ? "[" : "", cfg.host, v6 ? "]" : "", port,
           cfg.color);
    fflush(stdout);
    waiter_wait(&w);
    upstream_stop(u);
    status = 0;
    goto out;
stop:
    upstream_stop(u);
close_waiter:
    waiter_close(&w);
out:
    free(host);
    return status;
}
