/* loadtest: runs Artillery v2 test scripts (`cutover run`).
 *
 * The run: the main thread loads the script (script.h), starts N worker
 * threads, each with its own libuv loop, connections, rng and metric
 * windows, and then only collects: every 10 s window (aligned to the epoch,
 * as Artillery's) is merged from the workers once all of them have moved
 * past it, printed in Artillery's console layout and kept, as its JSON
 * text only, for the JSON report (so memory stays flat over long runs). Arrivals follow the phases' open-model schedule computed in
 * nanoseconds from the test start; arrival k belongs to worker k mod N, so
 * the total is exact whatever N is. Each arrival is a virtual user that
 * runs one weighted scenario on its own keep-alive connection; the first
 * error ends it.
 *
 * Nothing is shared between workers but a few atomics (active users, stop
 * flag) and the window hand-off queue under one mutex.
 */
#ifndef CUTOVER_LOADTEST_H
#define CUTOVER_LOADTEST_H

#include <stdatomic.h>
#include <stdbool.h>

#include "loadtest/script.h"

typedef struct lt_run_opts {
    lt_load_opts load;
    const char *output;     /* -o FILE or DIR; NULL: no JSON report */
    bool quiet;             /* -q */
    int workers;            /* --workers N (>= 1) */
    uint64_t seed;          /* 0: from entropy */
    /* --latency-from-intended: also record the summary
     * cutover.response_time.intended (internal.h has the definition).
     * Off: the metrics are Artillery's plus cutover.arrival_lag. */
    bool latency_from_intended;
    /* Embedded use (`cutover demo`): nothing is printed on stdout, no
     * signal handlers are installed, and the run ends early, as a SIGINT
     * would end it but with the usual exit status, once *stop becomes
     * non-zero (set from any thread). NULL: a normal run. */
    atomic_int *stop;
} lt_run_opts;

/* Exit statuses, as Artillery's. */
enum {
    LT_EXIT_OK = 0,
    LT_EXIT_FAIL = 1,       /* ensure failed, or the script could not run */
    LT_EXIT_EXPECT = 21,    /* an expect check failed */
    LT_EXIT_SIGINT = 130,
    LT_EXIT_SIGTERM = 143,
};

/* Runs the test to completion and returns the process exit status. */
int lt_run(const lt_run_opts *o);

#endif
