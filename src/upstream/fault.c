/* upstream/fault.c: run-time fault settings shared by a service's workers.
 *
 * Writers (the control endpoint on any worker, or a controlling thread such
 * as `cutover demo`) take the mutex, change the settings and bump the
 * generation. Each worker's app keeps its own copy and the generation it
 * copied; on every request it compares generations with one acquire load
 * and copies under the mutex only after a change, so the hot path never
 * locks.
 */
#include "upstream/upstream.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct upstream_fault {
    pthread_mutex_t mu;
    _Atomic uint64_t gen;
    double error_rate;
    upstream_latency latency;
};

upstream_fault *upstream_fault_new(double error_rate, const upstream_latency *lat)
{
    upstream_fault *f = cu_calloc(1, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    f->error_rate = error_rate;
    if (lat)
        f->latency = *lat;
    atomic_init(&f->gen, 1);
    return f;
}

void upstream_fault_free(upstream_fault *f)
{
    if (!f)
        return;
    pthread_mutex_destroy(&f->mu);
    free(f);
}

void upstream_fault_set(upstream_fault *f, double error_rate, const upstream_latency *lat)
{
    pthread_mutex_lock(&f->mu);
    f->error_rate = error_rate < 0 ? 0 : error_rate > 1 ? 1 : error_rate;
    if (lat)
        f->latency = *lat;
    atomic_fetch_add_explicit(&f->gen, 1, memory_order_release);
    pthread_mutex_unlock(&f->mu);
}

void upstream_fault_sync(upstream_fault *f, uint64_t *gen, double *error_rate, upstream_latency *lat)
{
    if (atomic_load_explicit(&f->gen, memory_order_acquire) == *gen)
        return;
    pthread_mutex_lock(&f->mu);
    *error_rate = f->error_rate;
    *lat = f->latency;
    *gen = atomic_load_explicit(&f->gen, memory_order_relaxed);
    pthread_mutex_unlock(&f->mu);
}
