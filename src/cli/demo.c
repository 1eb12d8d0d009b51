/* cli/demo.c: `cutover demo`, the first command a new user runs.
 *
 * For now (issue 3) it starts the sample lego-api service in this process,
 * runs the case study's Artillery script against it for a short while and
 * prints Artillery's summary. The rollout issue turns it into the whole
 * blue/green story.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "cli/cli.h"
#include "loadtest/loadtest.h"
#include "upstream/upstream.h"

#define DEMO_SCRIPT "examples/lego-api/load-test.yml"

/* The example script, found from the working directory or next to the
 * binary (a checkout's root). */
static char *find_script(void)
{
    if (access(DEMO_SCRIPT, R_OK) == 0)
        return cu_strdup(DEMO_SCRIPT);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    char *dir = cu_dirname(exe);
    for (int up = 0; up < 3; up++) {
        char *p = cu_path_join(dir, DEMO_SCRIPT);
        if (access(p, R_OK) == 0) {
            free(dir);
            return p;
        }
        free(p);
        char *parent = cu_dirname(dir);
        free(dir);
        dir = parent;
    }
    free(dir);
    return NULL;
}

int cmd_demo(int argc, char **argv)
{
    int seconds = 10, rate = 50;
    static const struct option longopts[] = {
        {"duration", required_argument, NULL, 'd'},
        {"rate", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "d:r:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': seconds = atoi(optarg); break;
        case 'r': rate = atoi(optarg); break;
        case 'h':
            printf("usage: cutover demo [--duration SECONDS] [--rate ARRIVALS_PER_SECOND]\n\n"
                   "Starts the sample lego-api service on a loopback port and runs the case\n"
                   "study's Artillery script (%s) against it (default 10 s at 50/s).\n",
                   DEMO_SCRIPT);
            return 0;
        default: return 2;
        }
    }
    if (seconds < 1 || rate < 1) {
        fprintf(stderr, "cutover: error: --duration and --rate take positive numbers\n");
        return 2;
    }
    char *script = find_script();
    if (!script) {
        fprintf(stderr, "cutover: error: %s not found (run the demo from the checkout)\n", DEMO_SCRIPT);
        return 1;
    }
    char err[CU_ERRLEN];
    upstream_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.host = "127.0.0.1";
    cfg.color = "blue";
    cfg.workers = 1;
    upstream *up = NULL;
    if (upstream_start(&up, &cfg, err) != 0) {
        fprintf(stderr, "cutover: error: sample service: %s\n", err);
        free(script);
        return 1;
    }
    char target[64], overrides[160];
    snprintf(target, sizeof target, "http://127.0.0.1:%d", upstream_port(up));
    snprintf(overrides, sizeof overrides,
             "{\"config\":{\"phases\":[{\"duration\":%d,\"arrivalRate\":%d,\"name\":\"demo\"}]}}",
             seconds, rate);
    printf("cutover demo: the sample lego-api service listens on %s\n"
           "cutover demo: running %s against it: %d s at %d arrivals/s\n"
           "  (cutover run %s -t %s --overrides '%s')\n\n",
           target, script, seconds, rate, script, target, overrides);
    fflush(stdout);
    lt_run_opts o;
    memset(&o, 0, sizeof o);
    o.load.path = script;
    o.load.target = target;
    o.load.overrides = overrides;
    o.workers = 1;
    int status = lt_run(&o);
    printf("\ncutover demo: the sample service answered %llu requests; exit status %d\n",
           (unsigned long long)upstream_requests(up), status);
    upstream_stop(up);
    free(script);
    return status;
}
