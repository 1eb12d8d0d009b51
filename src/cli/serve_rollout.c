/* cli/serve_rollout.c: the rollout controller inside `cutover serve`.
 *
 * The glue between two modules that never include each other: it parses
 * the config's `rollout:` section into a plan, opens the controller's
 * journal (`state:`), and adapts the router to rollout_target_ops (the new
 * colour's weight is green's weight, or 100 minus it when the plan goes
 * green -> blue). The controller runs on the router's loop, so every call
 * here happens on that one thread. It also mounts the controller's admin
 * routes under /rollout/ (mutations need the admin token, like PUT
 * /weights) and adds a "rollout" member to GET /status.
 *
 * The plan is read once, at start-up: a SIGHUP reload changes the router
 * but not a rollout that may be half-way (restart serve to change a plan;
 * the journal carries the rollout over the restart).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "rollout/rollout.h"
#include "router/router.h"

struct serve_rollout {
    router *r;
    rollout_plan *plan;
    rollout_ctl *ctl;
    bool new_is_green;
    char *journal;
};

/* ---- the router as a rollout target ------------------------------------------------ */
static int target_set_weight(void *ctx, double new_pct)
{
    serve_rollout *sr = ctx;
    return router_set_weight(sr->r, sr->new_is_green ? new_pct : 100.0 - new_pct);
}

static int target_read_window(void *ctx, int is_new, uint64_t seconds, rollout_sample *out)
{
    serve_rollout *sr = ctx;
    bool green = is_new ? sr->new_is_green : !sr->new_is_green;
    router_sample s;
    memset(&s, 0, sizeof s);
    hist_init(&s.latency_ms);
    int rc = router_read_window(sr->r, green ? ROUTER_GREEN : ROUTER_BLUE, seconds, &s);
    if (rc == 0) {
        out->requests = s.requests;
        out->errors_5xx = s.errors_5xx;
        out->transport_errors = s.transport_errors;
        out->seconds = s.seconds;
        hist_merge(&out->latency_ms, &s.latency_ms);
    }
    hist_free(&s.latency_ms);
    return rc;
}

/* The router moves a colour's share to the other colour when it has no
 * healthy server: the share in force then differs from the one set. */
static int target_healthy(void *ctx, int is_new)
{
    serve_rollout *sr = ctx;
    bool green = is_new ? sr->new_is_green : !sr->new_is_green;
    double set = router_weight(sr->r), in_force = router_effective_weight(sr->r);
    if (green)
        return !(set > 0 && in_force <= 0);
    return !(set < 100 && in_force >= 100);
}

static const rollout_target_ops router_target = {target_set_weight, target_read_window,
                                                 target_healthy};

/* ---- admin API ------------------------------------------------------------------------ */
static void status_hook(cu_buf *json, void *ctx)
{
    serve_rollout *sr = ctx;
    cu_buf_appends(json, "\"rollout\":");
    rollout_status_json(sr->ctl, 5, json);
}

static void admin_handler(http_exchange *x, const http_server_request *req, bool authorized,
                          void *ctx)
{
    serve_rollout *sr = ctx;
    static const http_header json_ct[] = {{"Content-Type", 12, "application/json", 16}};
    cu_buf out = CU_BUF_INIT;
    int status;
    if (strcmp(req->method, "GET") != 0 && !authorized) {
        cu_buf_appends(&out, "{\"error\":\"unauthorized: this call needs "
                             "'Authorization: Bearer <token from token_file>'\"}\n");
        status = 401;
    } else {
        status = rollout_admin_handle(sr->ctl, req->method, req->target, req->body, req->body_len,
                                      &out);
    }
    http_respond(x, status, json_ct, CU_ARRAY_LEN(json_ct), out.data ? out.data : "", out.len);
    cu_buf_free(&out);
}

/* ---- life cycle ------------------------------------------------------------------------- */
/* The journal path: `state:` (a path relative to the config file), or
 * "<config>.state.db" beside the config. */
static char *journal_path(const conf_node *st, const char *config_path, char err[CU_ERRLEN])
{
    char *dir = cu_dirname(config_path);
    char *path = NULL;
    if (!st || st->type == CONF_NULL) {
        path = cu_asprintf("%s.state.db", config_path);
    } else if (st->type == CONF_STRING && st->str && st->str[0]) {
        path = cu_path_join(dir, st->str);
    } else {
        snprintf(err, CU_ERRLEN, "%s:%d:%d: 'state' wants the path of the rollout journal "
                 "(an SQLite file), e.g. state: cutover.db", st->file, st->line, st->col);
    }
    free(dir);
    return path;
}

/* Parses and checks the plan and the journal path; what `serve --check`
 * and the start-up both run. Returns 0 with *plan and *journal (owned by
 * the caller), or a negative code with err. */
static int load_plan(const conf_node *node, const conf_node *state, const char *config_path,
                     rollout_plan **plan, char **journal, char err[CU_ERRLEN])
{
    *plan = NULL;
    *journal = NULL;
    int rc = rollout_plan_parse(node, plan, err);
    if (rc < 0)
        return rc;
    const rollout_plan *p = *plan;
    bool from_blue = cu_streq(p->from, "blue"), from_green = cu_streq(p->from, "green");
    bool to_blue = cu_streq(p->to, "blue"), to_green = cu_streq(p->to, "green");
    if (!((from_blue && to_green) || (from_green && to_blue))) {
        snprintf(err, CU_ERRLEN, "%s:%d:%d: rollout: 'from' and 'to' must be blue and green "
                 "(one each; the router has those two pools), not '%s' -> '%s'",
                 node->file, node->line, node->col, p->from ? p->from : "?",
                 p->to ? p->to : "?");
        rc = -EINVAL;
    } else if (!(*journal = journal_path(state, config_path, err))) {
        rc = -EINVAL;
    }
    if (rc < 0) {
        rollout_plan_free(*plan);
        *plan = NULL;
    }
    return rc;
}

int serve_rollout_check(const router_config *cfg, const char *config_path, char err[CU_ERRLEN])
{
    if (!cfg->rollout)
        return 0;
    rollout_plan *plan;
    char *journal;
    int rc = load_plan(cfg->rollout, cfg->state, config_path, &plan, &journal, err);
    rollout_plan_free(plan);
    free(journal);
    return rc;
}

int serve_rollout_attach(serve_rollout **out, router *r, const char *config_path,
                         char err[CU_ERRLEN])
{
    *out = NULL;
    const conf_node *node = router_rollout_conf(r);
    if (!node)
        return 0;
    serve_rollout *sr = cu_calloc(1, sizeof *sr);
    sr->r = r;
    int rc = load_plan(node, router_state_conf(r), config_path, &sr->plan, &sr->journal, err);
    if (rc < 0)
        goto fail;
    sr->new_is_green = cu_streq(sr->plan->to, "green");
    rollout_config rc_cfg = {
        .plan = sr->plan,
        .journal_path = sr->journal,
        .ops = &router_target,
        .target_ctx = sr,
        .loop = router_loop(r),
    };
    rc = rollout_open(&sr->ctl, &rc_cfg, err);
    if (rc < 0)
        goto fail;
    router_set_status_hook(r, status_hook, sr);
    router_set_admin_handler(r, "/rollout", admin_handler, sr);
    *out = sr;
    return 0;
fail:
    rollout_plan_free(sr->plan);
    free(sr->journal);
    free(sr);
    return rc;
}

void serve_rollout_describe(const serve_rollout *sr, cu_buf *out)
{
    rollout_info info;
    rollout_get_info(sr->ctl, &info);
    cu_buf_appendf(out, "rollout %s -> %s: %s", sr->plan->from, sr->plan->to,
                   rollout_state_name(info.state));
    if (info.step >= 0)
        cu_buf_appendf(out, " at step %d of %zu", info.step + 1, sr->plan->nsteps);
    cu_buf_appendf(out, ", %s weight %.2f%%, journal %s", sr->plan->to, info.weight, sr->journal);
    if (info.recovered)
        cu_buf_appendf(out, " (recovered %llu interrupted decision%s)",
                       (unsigned long long)info.recovered, info.recovered == 1 ? "" : "s");
}

void serve_rollout_detach(serve_rollout *sr)
{
    if (!sr)
        return;
    rollout_close(sr->ctl);
    rollout_plan_free(sr->plan);
    free(sr->journal);
    free(sr);
}
