/* Test helpers for the rollout controller: a fake target whose windows are
 * scripted per colour, a fake wall clock, and plans from YAML text.
 * Header-only (each test binary is one translation unit). */
#ifndef TEST_ROLLOUT_FAKE_H
#define TEST_ROLLOUT_FAKE_H

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rollout/internal.h"

typedef struct fake {
    int64_t now;                   /* the fake wall clock, ms */
    double weight;                 /* last weight set */
    int nset;
    double sets[256];              /* every set_weight call */
    int set_err;                   /* set_weight returns this when < 0 */
    double kill_at_weight;         /* >= 0: SIGKILL self when asked to set it */
    rollout_sample s[2];           /* [0] old colour, [1] new colour */
    int read_err[2];
    double rate[2];                /* > 0: requests = rate x seconds asked (at 200 ms) */
    int unhealthy[2];              /* 1: healthy() says the colour has no healthy server */
    uint64_t reads;
} fake;

static inline int64_t fake_clock(void *ctx)
{
    return ((fake *)ctx)->now;
}

static inline int fake_set_weight(void *ctx, double w)
{
    fake *f = ctx;
    if (f->kill_at_weight >= 0 && w == f->kill_at_weight)
        raise(SIGKILL); /* crash after the journal, before acting */
    if (f->set_err < 0)
        return f->set_err;
    if (f->nset < 256)
        f->sets[f->nset] = w;
    f->nset++;
    f->weight = w;
    return 0;
}

static inline int fake_read_window(void *ctx, int is_new, uint64_t seconds, rollout_sample *out)
{
    fake *f = ctx;
    f->reads++;
    if (f->read_err[is_new])
        return f->read_err[is_new];
    if (f->rate[is_new] > 0) {
        out->requests = (uint64_t)(f->rate[is_new] * (double)seconds);
        hist_record_n(&out->latency_ms, 200, out->requests);
        out->seconds = (double)seconds;
        return 0;
    }
    const rollout_sample *s = &f->s[is_new];
    out->requests = s->requests;
    out->errors_5xx = s->errors_5xx;
    out->transport_errors = s->transport_errors;
    hist_merge(&out->latency_ms, &s->latency_ms);
    out->seconds = (double)seconds;
    return 0;
}

static inline int fake_healthy(void *ctx, int is_new)
{
    return !((fake *)ctx)->unhealthy[is_new];
}

static const rollout_target_ops fake_ops = {fake_set_weight, fake_read_window, fake_healthy};

static inline void fake_init(fake *f, int64_t now)
{
    memset(f, 0, sizeof *f);
    f->now = now;
    f->kill_at_weight = -1;
    hist_init(&f->s[0].latency_ms);
    hist_init(&f->s[1].latency_ms);
}

static inline void fake_free(fake *f)
{
    hist_free(&f->s[0].latency_ms);
    hist_free(&f->s[1].latency_ms);
}

/* One colour's window: n requests, e5 5xx, et transport errors, all at
 * latency `ms` (so every percentile is about ms). */
static inline void fake_traffic(fake *f, int is_new, uint64_t n, uint64_t e5, uint64_t et, double ms)
{
    rollout_sample *s = &f->s[is_new];
    s->requests = n;
    s->errors_5xx = e5;
    s->transport_errors = et;
    hist_reset(&s->latency_ms);
    if (n)
        hist_record_n(&s->latency_ms, ms, n);
}

/* Parses YAML holding a `rollout:` section; fails the test on error. */
static inline rollout_plan *plan_from(const char *yaml, conf_node **root_out)
{
    char err[CU_ERRLEN] = "";
    conf_node *root = conf_parse(yaml, strlen(yaml), "plan.yml", err);
    if (!root) {
        fprintf(stderr, "conf_parse: %s\n", err);
        abort();
    }
    rollout_plan *p = NULL;
    if (rollout_plan_parse(conf_get(root, "rollout"), &p, err) != 0) {
        fprintf(stderr, "rollout_plan_parse: %s\n", err);
        abort();
    }
    if (root_out)
        *root_out = root;
    else
        conf_free(root);
    return p;
}

static inline char *temp_journal(void)
{
    char tmpl[] = "/tmp/cutover-rollout-XXXXXX";
    char *d = mkdtemp(tmpl);
    if (!d)
        abort();
    return cu_asprintf("%s/cutover.db", d);
}

static inline void remove_journal(char *path)
{
    char *cmd = cu_asprintf("rm -rf \"$(dirname '%s')\"", path);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", path);
    free(cmd);
    free(path);
}

static inline rollout_ctl *open_ctl(const rollout_plan *p, const char *path, fake *f, uv_loop_t *loop)
{
    char err[CU_ERRLEN] = "";
    rollout_config cfg = {.plan = p, .journal_path = path, .ops = &fake_ops, .target_ctx = f,
                          .loop = loop, .clock = fake_clock, .clock_ctx = f,
                          .manual_ticks = true, .retry_base_ms = 1000};
    rollout_ctl *c = NULL;
    if (rollout_open(&c, &cfg, err) != 0) {
        fprintf(stderr, "rollout_open: %s\n", err);
        abort();
    }
    return c;
}

/* Advances the fake clock one second at a time, ticking each second. */
static inline void run_for(rollout_ctl *c, fake *f, int64_t ms)
{
    for (int64_t t = 0; t < ms; t += 1000) {
        f->now += 1000;
        rollout_tick(c);
    }
}

static inline rollout_info info_of(rollout_ctl *c)
{
    rollout_info in;
    rollout_get_info(c, &in);
    return in;
}

/* A single-value SQL query on the journal file (opened separately). */
static inline long long sql_int(const char *path, const char *sql)
{
    sqlite3 *db;
    long long v = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return -1;
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return v;
}

#endif
