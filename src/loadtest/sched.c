/* loadtest/sched.c: the open-model arrival schedule (script.h, "phases and
 * the arrival schedule").
 *
 * Every arrival time is computed from its phase's start in nanoseconds, never
 * accumulated tick by tick, so a long test does not drift and exactly the
 * planned number of users arrive (Artillery's integer-millisecond tick gives
 * 303 users for 30/s x 10 s; we give 300):
 *  - RATE r over D s: n = llround(r*D) arrivals at k*1e9/r, k = 0..n-1
 *    (fractional rates such as 0.5/s work; the first arrival is at the
 *    phase start, Artillery's is one tick later);
 *  - RAMP a -> b over D s: W = floor(D) one-second periods (D < 1 gives none);
 *    period i gets floor(raw) + (frac(raw) >= .5) arrivals, raw =
 *    (b-a)/(W-1)*i + a, computed in that order as Artillery's phases.js does
 *    (single worker), W = 1: floor((a+b)/2) as Artillery; negative -> 0.
 *    The n_i arrivals of period i are at i s + j*1e9/n_i. The phase lasts D;
 *  - COUNT c over D s: arrivals at k*D/c;
 *  - PAUSE: none.
 * Phases run back to back, each lasting exactly its duration, so arrivals
 * come out in time order across phases.
 * Thread rules: phases are read-only; an lt_sched belongs to one thread.
 */
#include <math.h>

#include "loadtest/script.h"

#define NS_PER_S 1000000000ull

uint64_t lt_phase_duration_ns(const lt_phase *p)
{
    double ns = p->duration_s * 1e9;
    if (!(ns > 0)) /* also NaN */
        return 0;
    if (ns >= 1.8e19)
        return UINT64_MAX;
    return (uint64_t)llround(ns);
}

uint64_t lt_phase_start_ns(const lt_phase *phases, size_t i)
{
    uint64_t t = 0;
    for (size_t j = 0; j < i; j++)
        t += lt_phase_duration_ns(&phases[j]);
    return t;
}

static uint64_t ramp_periods(const lt_phase *p)
{
    if (!(p->duration_s >= 1))
        return 0;
    return (uint64_t)floor(p->duration_s);
}

uint64_t lt_ramp_count(const lt_phase *p, uint64_t i)
{
    uint64_t w = ramp_periods(p);
    if (p->kind != LT_PHASE_RAMP || i >= w)
        return 0;
    double a = p->rate, b = p->ramp_to, n;
    if (w == 1) {
        n = floor((a + b) / 2);
    } else {
        double raw = ((b - a) / (double)(w - 1)) * (double)i + a;
        n = floor(raw);
        if (floor(fmod(raw, 1.0) + 0.5) >= 1) /* JavaScript's Math.round(raw % 1) >= 1 */
            n += 1;
    }
    if (!(n > 0))
        return 0;
    return (uint64_t)n;
}

static uint64_t rate_arrivals(const lt_phase *p)
{
    double n = p->rate * p->duration_s;
    if (!(p->rate > 0) || !(n > 0) || !isfinite(n))
        return 0;
    return (uint64_t)llround(n);
}

uint64_t lt_phase_arrivals(const lt_phase *p)
{
    switch (p->kind) {
    case LT_PHASE_RATE:
        return rate_arrivals(p);
    case LT_PHASE_COUNT:
        return p->count;
    case LT_PHASE_RAMP: {
        uint64_t total = 0, w = ramp_periods(p);
        for (uint64_t i = 0; i < w; i++)
            total += lt_ramp_count(p, i);
        return total;
    }
    case LT_PHASE_PAUSE:
        return 0;
    }
    return 0;
}

void lt_sched_init(lt_sched *s, const lt_phase *phases, size_t nphases)
{
    s->phases = phases;
    s->nphases = nphases;
    s->phase = 0;
    s->phase_start_ns = 0;
    s->k = 0;
    s->sec = 0;
}

/* Offset of the current arrival from the phase start; false when the phase
 * has no more. Advances the position within the phase. */
static bool phase_next(lt_sched *s, const lt_phase *p, uint64_t *off)
{
    switch (p->kind) {
    case LT_PHASE_RATE:
        if (s->k >= rate_arrivals(p))
            return false;
        *off = (uint64_t)llround((double)s->k * 1e9 / p->rate);
        s->k++;
        return true;
    case LT_PHASE_COUNT:
        if (s->k >= p->count)
            return false;
        *off = (uint64_t)llround((double)s->k * (double)lt_phase_duration_ns(p) / (double)p->count);
        s->k++;
        return true;
    case LT_PHASE_RAMP: {
        uint64_t w = ramp_periods(p);
        for (; s->sec < w; s->sec++, s->k = 0) {
            uint64_t n = lt_ramp_count(p, s->sec);
            if (s->k < n) {
                *off = s->sec * NS_PER_S + s->k * NS_PER_S / n;
                s->k++;
                return true;
            }
        }
        return false;
    }
    case LT_PHASE_PAUSE:
        return false;
    }
    return false;
}

bool lt_sched_next(lt_sched *s, uint64_t *t_ns, size_t *phase)
{
    while (s->phase < s->nphases) {
        const lt_phase *p = &s->phases[s->phase];
        uint64_t off;
        if (phase_next(s, p, &off)) {
            *t_ns = s->phase_start_ns + off;
            *phase = s->phase;
            return true;
        }
        s->phase_start_ns += lt_phase_duration_ns(p);
        s->phase++;
        s->k = 0;
        s->sec = 0;
    }
    return false;
}
