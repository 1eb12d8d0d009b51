/* What the controller shows to people and to the CLI: the status document,
 * the decision history (JSON or a table for `cutover events`), and the
 * admin API handler that the serve glue mounts under /rollout/.
 * Everything here reads the controller or the journal; only the command
 * routes change anything, through the same commands as rollout.h's.
 * Thread rules: the controller's thread.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollout/internal.h"

static void set_time(json_t *o, const char *key, int64_t ms)
{
    if (ms <= 0) {
        json_object_set_new(o, key, json_null());
        return;
    }
    char iso[40];
    rj_iso_time(ms, iso, sizeof iso);
    json_object_set_new(o, key, json_string(iso));
}

static json_t *status_obj(rollout_ctl *c, size_t nd)
{
    const rollout_plan *p = rollout__plan(c);
    rollout_info in;
    rollout_get_info(c, &in);
    int64_t now = rollout__now(c);
    json_t *o = json_object();
    json_object_set_new(o, "state", json_string(rollout_state_name(in.state)));
    json_object_set_new(o, "run", json_integer(in.run));
    json_object_set_new(o, "step", json_integer(in.step + 1));
    json_object_set_new(o, "steps", json_integer((json_int_t)p->nsteps));
    json_object_set_new(o, "from", json_string(p->from));
    json_object_set_new(o, "to", json_string(p->to));
    json_t *w = json_object();
    json_object_set_new(w, p->from, json_real(100 - in.weight));
    json_object_set_new(w, p->to, json_real(in.weight));
    json_object_set_new(o, "weights", w);
    json_object_set_new(o, "weight_applied", json_boolean(in.weight_applied));
    set_time(o, "step_started", in.state == ROLLOUT_IDLE ? 0 : in.step_started_ms);
    set_time(o, "next_analysis", in.next_analysis_ms);
    set_time(o, "deadline", in.deadline_ms);
    json_object_set_new(o, "deadline_ms", json_integer(in.deadline_ms));
    json_object_set_new(o, "remaining_s",
                        json_integer(in.deadline_ms > now ? (in.deadline_ms - now + 999) / 1000 : 0));
    json_t *last = rj_decisions_json(rollout__journal(c), nd ? nd : 1);
    const char *waiting = NULL;
    if (in.state == ROLLOUT_PAUSED)
        waiting = "resume";
    else if (in.state == ROLLOUT_PROGRESSING) {
        size_t k = json_array_size(last);
        const char *v = k ? json_string_value(json_object_get(json_array_get(last, k - 1),
                                                              "verdict")) : NULL;
        if (in.awaiting_approval)
            waiting = "approval";
        else if (v && strcmp(v, "HOLD") == 0)
            waiting = "data";
        else if (now < in.deadline_ms)
            waiting = "hold";
        else
            waiting = "analysis";
    }
    json_object_set_new(o, "waiting", waiting ? json_string(waiting) : json_null());
    json_object_set_new(o, "failures", json_integer(in.failures));
    json_object_set_new(o, "failure_limit", json_integer(p->failure_limit));
    json_object_set_new(o, "errors", json_integer(in.errors));
    json_object_set_new(o, "error_limit", json_integer(p->error_limit));
    json_object_set_new(o, "decisions", json_integer((json_int_t)in.decisions));
    json_object_set_new(o, "recovered", json_integer((json_int_t)in.recovered));
    if (!nd) {
        json_decref(last);
        last = json_array();
    }
    json_object_set_new(o, "last_decisions", last);
    return o;
}

void rollout_status_json(rollout_ctl *c, size_t ndecisions, cu_buf *out)
{
    json_t *o = status_obj(c, ndecisions);
    char *s = json_dumps(o, JSON_INDENT(2));
    cu_buf_appends(out, s);
    free(s);
    json_decref(o);
}

/* A member's string, or "?" (a malformed record never reaches %s as NULL). */
static const char *str_of(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "?";
}

static void table(json_t *arr, cu_buf *out)
{
    cu_buf_appendf(out, "%5s  %-24s %4s %4s %6s  %-9s %-7s %s\n", "SEQ", "TIME", "RUN", "STEP",
                   "NEW%", "KIND", "VERDICT", "ACTION");
    size_t i;
    json_t *d;
    json_array_foreach(arr, i, d) {
        cu_buf_appendf(out, "%5lld  %-24s %4lld %4lld %5.1f%%  %-9s %-7s %s\n",
                       (long long)json_integer_value(json_object_get(d, "seq")),
                       str_of(d, "time"),
                       (long long)json_integer_value(json_object_get(d, "run")),
                       (long long)json_integer_value(json_object_get(d, "step")),
                       json_number_value(json_object_get(d, "weight")),
                       str_of(d, "kind"), str_of(d, "verdict"), str_of(d, "action"));
        json_t *rec = json_object_get(d, "record");
        json_t *gates = json_object_get(rec, "gates");
        if (!gates)
            gates = json_object_get(rec, "tripwires");
        size_t k;
        json_t *g;
        json_array_foreach(gates, k, g) {
            cu_buf_appendf(out, "%7s%-5s %s: %s\n", "", str_of(g, "verdict"), str_of(g, "expr"),
                           str_of(g, "detail"));
        }
    }
}

static void render_events(json_t *arr, bool json, cu_buf *out)
{
    if (json) {
        char *s = json_dumps(arr, JSON_INDENT(2));
        if (s)
            cu_buf_appends(out, s);
        free(s);
    } else {
        table(arr, out);
    }
}

int rollout_journal_events(const char *path, bool json, size_t limit, cu_buf *out,
                           char err[CU_ERRLEN])
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        rt_fmt(err, CU_ERRLEN, "%s: %s", path, db ? sqlite3_errmsg(db) : "cannot open");
        sqlite3_close(db);
        return -ENOENT;
    }
    sqlite3_busy_timeout(db, 2000);
    json_t *arr = rj_decisions_json_db(db, limit);
    sqlite3_close(db);
    if (!arr) {
        rt_fmt(err, CU_ERRLEN, "%s: not a cutover journal", path);
        return -EINVAL;
    }
    render_events(arr, json, out);
    json_decref(arr);
    return 0;
}

int rollout_events(rollout_ctl *c, bool json, size_t limit, cu_buf *out)
{
    json_t *arr = rj_decisions_json(rollout__journal(c), limit);
    render_events(arr, json, out);
    json_decref(arr);
    return 0;
}

int rollout_events_table(const char *text, cu_buf *out, char err[CU_ERRLEN])
{
    json_error_t je;
    json_t *arr = json_loads(text, 0, &je);
    if (!arr || !json_is_array(arr)) {
        rt_fmt(err, CU_ERRLEN, "events: expected a JSON array (%s)", arr ? "got another value"
                                                                            : je.text);
        json_decref(arr);
        return -EINVAL;
    }
    table(arr, out);
    json_decref(arr);
    return 0;
}

/* Never writes a NULL: a value jansson could not build or encode becomes
 * a fixed error body (and a 500 if the status said all was well). */
static int reply(cu_buf *out, int status, json_t *o)
{
    char *s = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
    if (!s) {
        cu_error("rollout: cannot encode an admin API answer as JSON");
        if (status < 400)
            status = 500;
        cu_buf_appends(out, "{\"ok\": false, \"error\": \"the answer could not be encoded as JSON\"}");
    } else {
        cu_buf_appends(out, s);
    }
    cu_buf_appendc(out, '\n');
    free(s);
    json_decref(o);
    return status;
}

static int reply_err(cu_buf *out, int status, const char *msg)
{
    return reply(out, status, json_pack("{s:b,s:s}", "ok", 0, "error", msg));
}

static const char *query_param(const char *q, const char *name, char *buf, size_t n)
{
    size_t len = strlen(name);
    while (q && *q) {
        if (strncmp(q, name, len) == 0 && q[len] == '=') {
            const char *v = q + len + 1;
            size_t k = strcspn(v, "&");
            rt_fmt(buf, n, "%.*s", (int)CU_MIN(k, n - 1), v);
            return buf;
        }
        q = strchr(q, '&');
        if (q)
            q++;
    }
    return NULL;
}

typedef int (*command_fn)(rollout_ctl *, const char *, char[CU_ERRLEN]);

int rollout_admin_handle(rollout_ctl *c, const char *method, const char *path, const char *body,
                         size_t body_len, cu_buf *out_json)
{
    static const char *const routes[] = {"status", "events", "start", "pause", "resume",
                                         "approve", "promote", "abort"};
    static const command_fn cmds[] = {NULL, NULL, rollout_start, rollout_pause, rollout_resume,
                                      rollout_approve, rollout_promote, rollout_abort};
    char route[64];
    const char *p = path ? path : "";
    if (strncmp(p, "/rollout", 8) == 0 && (p[8] == 0 || p[8] == '/' || p[8] == '?'))
        p += 8;
    while (*p == '/')
        p++;
    size_t rl = strcspn(p, "?/");
    const char *query = strchr(p, '?');
    query = query ? query + 1 : "";
    rt_fmt(route, sizeof route, "%.*s", (int)rt_utf8_cut(p, CU_MIN(rl, sizeof route - 1)), p);
    rt_utf8_clean(route); /* the path's bytes are the client's */
    if (!route[0])
        rt_fmt(route, sizeof route, "status");
    size_t r = 0;
    while (r < CU_ARRAY_LEN(routes) && strcmp(route, routes[r]) != 0)
        r++;
    if (r == CU_ARRAY_LEN(routes)) {
        char msg[256];
        const char *near = cu_nearest(route, routes, CU_ARRAY_LEN(routes));
        rt_fmt(msg, sizeof msg, "unknown rollout route '%s'%s%s%s", route,
                 near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
        return reply_err(out_json, 404, msg);
    }
    bool get = method && strcmp(method, "GET") == 0;
    if (r <= 1) {
        if (!get)
            return reply_err(out_json, 405, "use GET");
        if (r == 0)
            return reply(out_json, 200, status_obj(c, 10));
        char buf[32];
        size_t limit = 50;
        if (query_param(query, "limit", buf, sizeof buf))
            limit = (size_t)strtoull(buf, NULL, 10);
        /* the answer is built on the router's thread: bound it */
        if (limit == 0 || limit > ROLLOUT_EVENTS_MAX)
            limit = ROLLOUT_EVENTS_MAX;
        if (query_param(query, "format", buf, sizeof buf) && strcmp(buf, "table") == 0) {
            rollout_events(c, false, limit, out_json);
            return 200;
        }
        rollout_events(c, true, limit, out_json);
        cu_buf_appendc(out_json, '\n');
        return 200;
    }
    if (!method || strcmp(method, "POST") != 0)
        return reply_err(out_json, 405, "use POST");
    char by[128] = "admin-api";
    if (body && body_len) {
        json_error_t je;
        json_t *b = json_loadb(body, body_len, 0, &je);
        if (!b || !json_is_object(b)) {
            json_decref(b);
            char msg[300];
            rt_fmt(msg, sizeof msg, "the body must be a JSON object such as {\"by\": \"alice\"}: %s",
                     je.text);
            return reply_err(out_json, 400, msg);
        }
        /* jansson has checked the UTF-8; the length is ours to bound */
        json_t *w = json_object_get(b, "by");
        if (w && !json_is_string(w)) {
            json_decref(b);
            return reply_err(out_json, 400, "\"by\" must be a string such as \"alice\"");
        }
        if (w && (json_string_length(w) > ROLLOUT_BY_MAX ||
                  !rt_utf8_valid(json_string_value(w), json_string_length(w)))) {
            char msg[200];
            rt_fmt(msg, sizeof msg, "\"by\" must be valid UTF-8 without NUL bytes, at most %d "
                   "bytes (got %zu)", ROLLOUT_BY_MAX, json_string_length(w));
            json_decref(b);
            return reply_err(out_json, 400, msg);
        }
        if (w && json_string_length(w))
            rt_fmt(by, sizeof by, "%s", json_string_value(w));
        json_decref(b);
    }
    char err[CU_ERRLEN];
    int rc = cmds[r](c, by, err);
    if (rc < 0)
        return reply_err(out_json, rc == -EIO ? 500 : 409, err);
    return reply(out_json, 200, json_pack("{s:b,s:o}", "ok", 1, "status", status_obj(c, 1)));
}
