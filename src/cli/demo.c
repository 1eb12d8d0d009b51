/* cli/demo.c: `cutover demo`, the first command a new user runs.
 *
 * The whole blue/green story in one process, on loopback ports it picks:
 * two sample services (blue and green, `cutover upstream`), the router with
 * its rollout controller (`cutover serve` with a compressed plan: steps of
 * seconds instead of days), and the load generator (`cutover run`) sending
 * users through the router. It plays two acts, each with a fresh router and
 * journal:
 *   1. a healthy green, which the controller promotes step by step;
 *   2. a green that starts failing 5% of its requests once it reaches 50%,
 *      which the controller's tripwire rolls back.
 * It prints a live status line on a terminal (plain lines otherwise), writes
 * a report folder (per act: the config, the journal, the decision history,
 * per-step figures, the load test's JSON report; and a Markdown summary),
 * and exits 0 only if both acts ended as they should.
 *
 * Threads: the main thread directs the acts and talks to the controller
 * through the admin API over HTTP, like an operator would; the router and
 * controller run on their own loop thread; the load generator runs lt_run
 * in another thread; the services have their own threads. Only thread-safe
 * calls cross (router weights and windows, upstream faults, lt's stop flag).
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "cli/cli.h"
#include "loadtest/loadtest.h"
#include "report/report.h"
#include "router/router.h"
#include "upstream/upstream.h"

#define DEMO_TOKEN "demo-token-not-secret"
#define ACT_TIMEOUT_S 60

typedef struct step_figures {
    int step;                 /* 1-based */
    double weight;            /* green % */
    double seconds;
    uint64_t req[2], err[2];  /* [ROUTER_BLUE], [ROUTER_GREEN] */
    double p95[2];
} step_figures;

typedef struct demo_act {
    int number;
    const char *title;
    bool faulty;              /* green fails 5% from 50% on */
    const char *expect;       /* the end state that counts as success */
    char *dir;
    char admin[64];
    int port;
    uv_loop_t loop;
    uv_thread_t tid;
    uv_async_t stop;
    router *r;
    serve_rollout *ro;
    /* load generator */
    uv_thread_t lt_tid;
    atomic_int lt_stop;
    atomic_int lt_done;
    int lt_status;
    char *lt_script, *lt_report;
    /* what happened */
    char final_state[32];
    double elapsed_s;
    double fault_to_zero_ms;  /* act 2: fault injected -> green weight 0 */
    step_figures steps[16];
    int nsteps;
    bool ok;
} demo_act;

typedef struct demo {
    char *out;                /* report folder */
    bool tty;
    upstream *blue, *green;
    int rate;
} demo;

/* ---- small helpers ---------------------------------------------------------------- */
static int write_text(const char *path, const char *text)
{
    return cu_write_file(path, text, strlen(text));
}

static double now_s(void)
{
    return (double)cu_now_ns() / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* GET or POST on the act's admin API; the parsed JSON answer or NULL. */
static json_t *admin(demo_act *a, const char *method, const char *path, int *status)
{
    cli_admin_reply c = {0};
    char err[CU_ERRLEN];
    const char *body = strcmp(method, "GET") ? "{\"by\":\"cutover demo\"}" : NULL;
    if (cli_admin_call(a->admin, method, path, DEMO_TOKEN, body, &c, err) < 0) {
        cu_buf_free(&c.body);
        if (status)
            *status = 0;
        return NULL;
    }
    if (status)
        *status = c.status;
    json_t *j = json_loadb(c.body.data ? c.body.data : "", c.body.len, 0, NULL);
    cu_buf_free(&c.body);
    return j;
}

/* Raw body of a GET (the events table). */
static char *admin_text(demo_act *a, const char *path)
{
    cli_admin_reply c = {0};
    char err[CU_ERRLEN];
    if (cli_admin_call(a->admin, "GET", path, NULL, NULL, &c, err) < 0 || c.status != 200) {
        cu_buf_free(&c.body);
        return cu_strdup("");
    }
    if (!c.body.data)
        return cu_strdup("");
    return cu_buf_steal(&c.body);
}

/* ---- the router thread ---------------------------------------------------------- */
static void on_stop(uv_async_t *h)
{
    demo_act *a = h->data;
    serve_rollout_detach(a->ro);
    a->ro = NULL;
    router_free(a->r);
    a->r = NULL;
    uv_close((uv_handle_t *)h, NULL);
}

static void router_thread(void *arg)
{
    demo_act *a = arg;
    uv_run(&a->loop, UV_RUN_DEFAULT);
}

static const char CONFIG_FMT[] =
    "# The router and the rollout plan of `cutover demo` (act %d). A real plan\n"
    "# holds for hours or days; this one for seconds. docs/serve.md, docs/rollout.md\n"
    "listen: 127.0.0.1:0\n"
    "admin: { listen: 127.0.0.1:0, token_file: admin.token }\n"
    "upstreams:\n"
    "  blue:  { servers: [ \"http://127.0.0.1:%d\" ], health: { path: /health, interval: 500ms } }\n"
    "  green: { servers: [ \"http://127.0.0.1:%d\" ], health: { path: /health, interval: 500ms } }\n"
    "state: journal.db\n"
    "rollout:\n"
    "  from: blue\n"
    "  to: green\n"
    "  steps:\n"
    "    - { weight: 10, hold: 5s }\n"
    "    - { weight: 50, hold: 5s }\n"
    "    - { weight: 100, hold: 3s }\n"
    "  analysis:\n"
    "    interval: 1s\n"
    "    window: 3s\n"
    "    min_requests: 30\n"
    "    gates:\n"
    "      - \"error_rate <= baseline.error_rate + 0.5%%\"\n"
    "      - \"p95 < 250ms\"\n"
    "      - \"p95 <= baseline.p95 * 1.5 + 5ms\"\n"
    "    rollback_when: [ \"error_rate > 2%%\", \"p95 > 1s\" ]\n"
    "    tripwire_window: 2s\n"
    "    tripwire_min_requests: 20\n";

static const char LOAD_FMT[] =
    "# The traffic of `cutover demo`: an Artillery v2 script, run by `cutover run`.\n"
    "config:\n"
    "  target: \"http://127.0.0.1:%d\"\n"
    "  phases:\n"
    "    - { duration: %d, arrivalRate: %d, name: \"demo traffic\" }\n"
    "scenarios:\n"
    "  - name: Browse MOCs\n"
    "    weight: 3\n"
    "    flow:\n"
    "      - get: { url: \"/api/mocs\" }\n"
    "      - get: { url: \"/api/mocs/{{ $randomNumber(1, 500) }}\" }\n"
    "  - name: Search Gallery\n"
    "    weight: 1\n"
    "    flow:\n"
    "      - get: { url: \"/api/gallery?search=castle\" }\n";

static int act_start_router(demo *d, demo_act *a, char err[CU_ERRLEN])
{
    char *cfg_path = cu_path_join(a->dir, "serve.yml");
    char *tok_path = cu_path_join(a->dir, "admin.token");
    char *journal = cu_path_join(a->dir, "journal.db");
    char *cfg = cu_asprintf(CONFIG_FMT, a->number, upstream_port(d->blue), upstream_port(d->green));
    int rc = write_text(cfg_path, cfg);
    if (rc == 0)
        rc = write_text(tok_path, DEMO_TOKEN "\n");
    /* a fresh journal each time the demo runs */
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < CU_ARRAY_LEN(suffixes); i++) {
        char *p = cu_asprintf("%s%s", journal, suffixes[i]);
        remove(p);
        free(p);
    }
    free(cfg);
    free(tok_path);
    free(journal);
    if (rc < 0) {
        snprintf(err, CU_ERRLEN, "cannot write %s: %s", cfg_path, strerror(-rc));
        free(cfg_path);
        return rc;
    }
    router_config rcfg;
    if ((rc = router_config_load(&rcfg, cfg_path, err)) < 0) {
        free(cfg_path);
        return rc;
    }
    uv_loop_init(&a->loop);
    if ((rc = router_start(&a->r, &a->loop, &rcfg, err)) < 0) {
        router_config_free(&rcfg);
        free(cfg_path);
        uv_loop_close(&a->loop);
        return rc;
    }
    rc = serve_rollout_attach(&a->ro, a->r, cfg_path, err);
    free(cfg_path);
    if (rc == 0 && !a->ro) {
        snprintf(err, CU_ERRLEN, "the demo config has no rollout plan");
        rc = -EINVAL;
    }
    uv_async_init(&a->loop, &a->stop, on_stop);
    a->stop.data = a;
    if (rc < 0) {
        on_stop(&a->stop);
        uv_run(&a->loop, UV_RUN_DEFAULT);
        uv_loop_close(&a->loop);
        return rc;
    }
    a->port = router_port(a->r);
    snprintf(a->admin, sizeof a->admin, "http://127.0.0.1:%d", router_admin_port(a->r));
    uv_thread_create(&a->tid, router_thread, a);
    return 0;
}

static void act_stop_router(demo_act *a)
{
    uv_async_send(&a->stop);
    uv_thread_join(&a->tid);
    uv_loop_close(&a->loop);
}

/* ---- the load generator thread --------------------------------------------------- */
static void lt_thread(void *arg)
{
    demo_act *a = arg;
    lt_run_opts o;
    memset(&o, 0, sizeof o);
    o.load.path = a->lt_script;
    o.output = a->lt_report;
    o.quiet = true;
    o.workers = 1;
    o.stop = &a->lt_stop;
    a->lt_status = lt_run(&o);
    atomic_store(&a->lt_done, 1);
}

static int act_start_load(demo *d, demo_act *a, char err[CU_ERRLEN])
{
    a->lt_script = cu_path_join(a->dir, "load.yml");
    a->lt_report = cu_path_join(a->dir, "load-report.json");
    char *text = cu_asprintf(LOAD_FMT, a->port, ACT_TIMEOUT_S + 30, d->rate);
    int rc = write_text(a->lt_script, text);
    free(text);
    if (rc < 0) {
        snprintf(err, CU_ERRLEN, "cannot write %s: %s", a->lt_script, strerror(-rc));
        return rc;
    }
    atomic_init(&a->lt_stop, 0);
    atomic_init(&a->lt_done, 0);
    uv_thread_create(&a->lt_tid, lt_thread, a);
    return 0;
}

static void act_stop_load(demo_act *a)
{
    atomic_store(&a->lt_stop, 1);
    uv_thread_join(&a->lt_tid);
    /* the load test's report as a page too (`cutover report`) */
    rpt_report *rep;
    char err[CU_ERRLEN];
    if (rpt_load(a->lt_report, &rep, err) != 0) {
        fprintf(stderr, "cutover demo: %s\n", err);
        return;
    }
    cu_buf page = CU_BUF_INIT;
    char title[64];
    snprintf(title, sizeof title, "cutover demo, act %d: traffic through the router", a->number);
    rpt_render_html(rep, title, &page);
    char *p = cu_path_join(a->dir, "load-report.html");
    if (write_text(p, page.data) < 0)
        fprintf(stderr, "cutover demo: cannot write %s\n", p);
    free(p);
    cu_buf_free(&page);
    rpt_free(rep);
}

/* ---- watching ------------------------------------------------------------------------ */
typedef struct colour_now {
    uint64_t req, err;
    double p95;
} colour_now;

static void read_colour(router *r, router_color c, uint64_t secs, colour_now *out)
{
    router_sample s;
    memset(&s, 0, sizeof s);
    hist_init(&s.latency_ms);
    memset(out, 0, sizeof *out);
    if (router_read_window(r, c, secs, &s) == 0) {
        out->req = s.requests;
        out->err = s.errors_5xx + s.transport_errors;
        out->p95 = hist_quantile(&s.latency_ms, 0.95);
    }
    hist_free(&s.latency_ms);
}

static double pct(uint64_t part, uint64_t whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0;
}

static void close_step(demo_act *a, int step, double weight, double seconds)
{
    if (step < 1 || a->nsteps >= (int)CU_ARRAY_LEN(a->steps))
        return;
    step_figures *f = &a->steps[a->nsteps++];
    f->step = step;
    f->weight = weight;
    f->seconds = seconds;
    uint64_t secs = (uint64_t)ceil(seconds);
    for (int c = 0; c < 2; c++) {
        colour_now n;
        read_colour(a->r, (router_color)c, secs ? secs : 1, &n);
        f->req[c] = n.req;
        f->err[c] = n.err;
        f->p95[c] = n.p95;
    }
}

static void print_line(demo *d, const char *line)
{
    if (d->tty) {
        /* one screen line, or the \r redraw would leave wrapped pieces behind */
        struct winsize ws;
        int cols = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20 ? ws.ws_col : 80;
        printf("\r\033[K%.*s", cols - 1, line);
    } else {
        printf("%s\n", line);
    }
    fflush(stdout);
}

/* Runs one act to its end state (or the timeout). */
static void act_watch(demo *d, demo_act *a)
{
    int status;
    json_t *j = admin(a, "POST", "/rollout/start", &status);
    json_decref(j);
    if (status != 200) {
        snprintf(a->final_state, sizeof a->final_state, "not started (HTTP %d)", status);
        return;
    }
    double t0 = now_s(), step_t0 = t0, fault_t = 0;
    int last_step = 0;
    double last_weight = 0;
    char last_state[32] = "";
    bool faulted = false;
    for (;;) {
        double t = now_s();
        if (t - t0 > ACT_TIMEOUT_S) {
            snprintf(a->final_state, sizeof a->final_state, "timed out");
            break;
        }
        if (atomic_load(&a->lt_done)) {
            snprintf(a->final_state, sizeof a->final_state, "load generator stopped");
            break;
        }
        json_t *st = admin(a, "GET", "/rollout/status", &status);
        if (!st) {
            sleep_ms(100);
            continue;
        }
        const char *state = json_string_value(json_object_get(st, "state"));
        int step = (int)json_integer_value(json_object_get(st, "step"));
        double weight = json_number_value(json_object_get(json_object_get(st, "weights"), "green"));
        const char *waiting = json_string_value(json_object_get(st, "waiting"));
        double remaining = json_number_value(json_object_get(st, "remaining_s"));
        state = state ? state : "?";
        bool done = strcmp(state, "progressing") && strcmp(state, "paused") && strcmp(state, "idle");
        if (step != last_step || done) {
            if (last_step)
                close_step(a, last_step, last_weight, t - step_t0);
            step_t0 = t;
        }
        /* Act 2: green goes bad once it carries half the traffic. */
        if (a->faulty && !faulted && weight >= 50) {
            upstream_fault_set(upstream_get_fault(d->green), 0.05, NULL);
            faulted = true;
            fault_t = now_s();
            print_line(d, "  !! green starts failing 5% of its requests");
            if (d->tty)
                printf("\n");
        }
        if (faulted && a->fault_to_zero_ms == 0) {
            /* poll the weight itself, not the status, for the timing */
            while (router_weight(a->r) > 0 && now_s() - fault_t < 10)
                sleep_ms(2);
            if (router_weight(a->r) == 0)
                a->fault_to_zero_ms = (now_s() - fault_t) * 1000;
        }
        colour_now g, b;
        read_colour(a->r, ROUTER_GREEN, 3, &g);
        read_colour(a->r, ROUTER_BLUE, 3, &b);
        char line[320];
        char wait[64] = "";
        if (waiting && !strcmp(waiting, "data"))
            snprintf(wait, sizeof wait, ", holding for data");
        else if (!done && remaining > 0)
            snprintf(wait, sizeof wait, ", %.0f s left in step", remaining);
        snprintf(line, sizeof line,
                 "  act %d %5.1fs  %-11s step %d/3 green %5.1f%%%s | last 3 s: "
                 "green %4llu req %4.1f%% err p95 %5.1fms, blue %4llu req %4.1f%% err p95 %5.1fms",
                 a->number, t - t0, state, step, weight, wait, (unsigned long long)g.req,
                 pct(g.err, g.req), g.p95, (unsigned long long)b.req, pct(b.err, b.req), b.p95);
        bool changed = step != last_step || strcmp(state, last_state) != 0;
        if (d->tty || changed)
            print_line(d, line);
        last_step = step;
        last_weight = weight;
        snprintf(last_state, sizeof last_state, "%s", state);
        if (done)
            snprintf(a->final_state, sizeof a->final_state, "%s", state);
        json_decref(st); /* state pointed into it */
        if (done)
            break;
        sleep_ms(d->tty ? 200 : 100);
    }
    if (d->tty)
        printf("\n");
    a->elapsed_s = now_s() - t0;
    a->ok = !strcmp(a->final_state, a->expect);
    if (a->faulty)
        a->ok = a->ok && a->fault_to_zero_ms > 0;
}

/* ---- the report ------------------------------------------------------------------------ */
static void act_save(demo_act *a)
{
    char *events = admin_text(a, "/rollout/events?limit=0&format=table");
    char *p = cu_path_join(a->dir, "events.txt");
    write_text(p, events);
    free(p);
    free(events);
    char *ej = admin_text(a, "/rollout/events?limit=0");
    p = cu_path_join(a->dir, "events.json");
    write_text(p, ej);
    free(p);
    free(ej);
    json_t *steps = json_array();
    for (int i = 0; i < a->nsteps; i++) {
        const step_figures *f = &a->steps[i];
        json_t *s = json_pack("{s:i,s:f,s:f}", "step", f->step, "green_weight", f->weight,
                              "seconds", f->seconds);
        for (int c = 0; c < 2; c++)
            json_object_set_new(s, router_color_name((router_color)c),
                                json_pack("{s:I,s:I,s:f}", "requests", (json_int_t)f->req[c],
                                          "errors", (json_int_t)f->err[c], "p95_ms", f->p95[c]));
        json_array_append_new(steps, s);
    }
    p = cu_path_join(a->dir, "steps.json");
    json_dump_file(steps, p, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    free(p);
    json_decref(steps);
}

static void summary_act(cu_buf *md, const demo_act *a)
{
    cu_buf_appendf(md, "## Act %d: %s\n\n", a->number, a->title);
    cu_buf_appendf(md, "Outcome: **%s** after %.1f s (expected: %s) %s\n\n", a->final_state,
                   a->elapsed_s, a->expect, a->ok ? "- as expected" : "- NOT as expected");
    if (a->faulty && a->fault_to_zero_ms > 0)
        cu_buf_appendf(md, "Green started failing 5%% of its requests at 50%%; its weight was 0 "
                           "**%.0f ms** later (detection by the 2 s tripwire window included).\n\n",
                       a->fault_to_zero_ms);
    cu_buf_appends(md, "| step | green weight | seconds | blue requests | blue errors | blue p95 "
                       "| green requests | green errors | green p95 |\n"
                       "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < a->nsteps; i++) {
        const step_figures *f = &a->steps[i];
        cu_buf_appendf(md, "| %d | %.0f%% | %.1f | %llu | %.2f%% | %.1f ms | %llu | %.2f%% | %.1f ms |\n",
                       f->step, f->weight, f->seconds, (unsigned long long)f->req[0],
                       pct(f->err[0], f->req[0]), f->p95[0], (unsigned long long)f->req[1],
                       pct(f->err[1], f->req[1]), f->p95[1]);
    }
    cu_buf_appendf(md, "\nFiles in `act%d/`: `serve.yml` (router and plan), `journal.db` (the "
                       "controller's SQLite journal), `events.txt` / `events.json` (every "
                       "decision with its inputs), `steps.json`, `load.yml` and "
                       "`load-report.json` / `load-report.html` (the load test, in Artillery's format "
                       "and as a page).\n\n", a->number);
}

static void write_summary(demo *d, demo_act *acts, int n, bool all_ok)
{
    cu_buf md = CU_BUF_INIT;
    cu_buf_appends(&md, "# cutover demo\n\n"
                        "Blue and green sample services behind the cutover router; a rollout "
                        "controller moves traffic 10% -> 50% -> 100%, judging green against blue "
                        "from the router's own per-request figures; `cutover run` sends the "
                        "traffic.\n\n");
    cu_buf_appendf(&md, "Result: **%s**\n\n", all_ok ? "both acts ended as expected"
                                                       : "an act did not end as expected");
    for (int i = 0; i < n; i++)
        summary_act(&md, &acts[i]);
    char *p = cu_path_join(d->out, "summary.md");
    write_text(p, md.data);
    free(p);
    cu_buf_free(&md);
}

/* ---- main ---------------------------------------------------------------------------- */
static const char USAGE[] =
    "usage: cutover demo [--out DIR] [--rate N]\n"
    "\n"
    "Runs the whole blue/green story on built-in sample services, in this process,\n"
    "on loopback ports it picks, in about 40 seconds:\n"
    "  act 1: a healthy green is promoted 10% -> 50% -> 100%;\n"
    "  act 2: a green that fails 5% of its requests from 50% on is rolled back.\n"
    "Writes a report folder (default ./cutover-demo) with the configs, journals,\n"
    "decision histories and a summary.md. Exit 0 only if both acts end as expected.\n"
    "  --out DIR   the report folder\n"
    "  --rate N    virtual users arriving per second (default 80)\n";

static int run_act(demo *d, demo_act *a)
{
    char err[CU_ERRLEN];
    a->dir = cu_asprintf("%s/act%d", d->out, a->number);
    if (mkdir(a->dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "cutover demo: cannot create %s: %s\n", a->dir, strerror(errno));
        return -1;
    }
    printf("\nAct %d: %s\n", a->number, a->title);
    fflush(stdout);
    if (act_start_router(d, a, err) < 0) {
        fprintf(stderr, "cutover demo: router: %s\n", err);
        return -1;
    }
    if (act_start_load(d, a, err) < 0) {
        fprintf(stderr, "cutover demo: %s\n", err);
        act_stop_router(a);
        return -1;
    }
    act_watch(d, a);
    act_save(a);
    act_stop_load(a);
    act_stop_router(a);
    if (a->faulty)
        printf("  => %s after %.1f s; green's weight reached 0 %.0f ms after the fault %s\n",
               a->final_state, a->elapsed_s, a->fault_to_zero_ms, a->ok ? "(as expected)" : "(NOT as expected)");
    else
        printf("  => %s after %.1f s %s\n", a->final_state, a->elapsed_s,
               a->ok ? "(as expected)" : "(NOT as expected)");
    fflush(stdout);
    return 0;
}

int cmd_demo(int argc, char **argv)
{
    demo d = {.out = NULL, .rate = 80};
    const char *out = "cutover-demo";
    static const struct option longopts[] = {
        {"out", required_argument, NULL, 'o'},
        {"rate", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "o:r:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'r': d.rate = atoi(optarg); break;
        case 'h': fputs(USAGE, stdout); return 0;
        default: fputs(USAGE, stderr); return 2;
        }
    }
    if (d.rate < 10 || d.rate > 5000) {
        fprintf(stderr, "cutover demo: --rate takes 10 to 5000 arrivals per second\n");
        return 2;
    }
    if (mkdir(out, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "cutover demo: cannot create %s: %s\n", out, strerror(errno));
        return 1;
    }
    d.out = cu_strdup(out);
    d.tty = isatty(STDOUT_FILENO);
    char err[CU_ERRLEN];
    upstream_config bc = {.color = "blue", .workers = 1};
    upstream_config gc = {.color = "green", .workers = 1};
    upstream_latency_parse(&bc.latency, "lognormal:p50=3ms,p99=15ms", err);
    gc.latency = bc.latency;
    if (upstream_start(&d.blue, &bc, err) < 0 || upstream_start(&d.green, &gc, err) < 0) {
        fprintf(stderr, "cutover demo: sample service: %s\n", err);
        upstream_stop(d.blue);
        free(d.out);
        return 1;
    }
    printf("cutover demo: blue and green sample services on 127.0.0.1:%d and :%d\n"
           "  (the same as `cutover upstream --color blue|green --latency "
           "lognormal:p50=3ms,p99=15ms`)\n"
           "cutover demo: plan 10%% (5 s) -> 50%% (5 s) -> 100%% (3 s); gates judge green against "
           "blue each second\n"
           "  over 3 s; tripwires (error rate > 2%%, p95 > 1 s) over 2 s roll back at once.\n"
           "cutover demo: %d virtual users/s through the router (`cutover run`), report in %s/\n",
           upstream_port(d.blue), upstream_port(d.green), d.rate, d.out);
    demo_act acts[2] = {
        {.number = 1, .title = "a healthy green is promoted", .expect = "promoted"},
        {.number = 2, .title = "green fails 5% of its requests from 50% on, and is rolled back",
         .faulty = true, .expect = "rolled_back"},
    };
    bool all_ok = true;
    int ran = 0;
    for (int i = 0; i < 2; i++) {
        upstream_fault_set(upstream_get_fault(d.green), 0, NULL); /* a fresh green */
        if (run_act(&d, &acts[i]) < 0) {
            all_ok = false;
            break;
        }
        ran++;
        all_ok = all_ok && acts[i].ok;
    }
    write_summary(&d, acts, ran, all_ok && ran == 2);
    printf("\ncutover demo: %s; report: %s/summary.md\n",
           all_ok && ran == 2 ? "both acts ended as expected" : "FAILED: an act did not end as expected",
           d.out);
    printf("\nNext: %s/act1/serve.yml is a working router config with a rollout plan; point its\n"
           "servers at your blue and green, run `cutover serve` on it, then `cutover rollout start`\n"
           "and `cutover events` (docs/serve.md, docs/rollout.md). Your Artillery scripts run as\n"
           "they are with `cutover run SCRIPT.yml`.\n", d.out);
    for (int i = 0; i < 2; i++) {
        free(acts[i].dir);
        free(acts[i].lt_script);
        free(acts[i].lt_report);
    }
    upstream_stop(d.blue);
    upstream_stop(d.green);
    free(d.out);
    return all_ok && ran == 2 ? 0 : 1;
}
