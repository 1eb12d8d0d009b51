/* cli/rollout_cmd: `cutover rollout start|status|pause|resume|approve|promote|abort`
 * and `cutover events`, clients of the /rollout/ routes that `cutover serve`
 * mounts on its admin API when its config has a rollout plan; `cutover
 * events --state FILE` reads the journal file directly instead.
 *
 * Commands are POSTs that need the admin token; `status` and `events` are
 * GETs that do not. Every command journals who asked (--by, default
 * $USER, else "cli"). Exit: 0 done, 1 refused or failed (the controller's
 * reason is printed), 2 usage.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "rollout/rollout.h"

static const char ROLLOUT_USAGE[] =
    "usage: cutover rollout COMMAND [--admin URL] [--token-file FILE] [--by NAME]\n"
    "\n"
    "Drives the rollout controller of a running `cutover serve` (docs/rollout.md):\n"
    "  start     begin the plan at its first step\n"
    "  status    state, step, weights, hold deadline, last decisions (JSON)\n"
    "  pause     stay at the current weight: no analysis, no advance; tripwires stay\n"
    "            armed and the hold's deadline does not move (after resume, a hold\n"
    "            that ended meanwhile advances at the next passing analysis)\n"
    "  resume    go on from a pause\n"
    "  approve   let a step marked `approve: true` move on\n"
    "  promote   send 100% to the new colour now, skipping the remaining steps\n"
    "  abort     send 100% back to the old colour now\n"
    "options:\n"
    "  --admin URL         admin API (default $CUTOVER_ADMIN or http://127.0.0.1:9090)\n"
    "  --token-file FILE   admin token (default $CUTOVER_TOKEN_FILE); needed for commands\n"
    "  --by NAME           who asks, kept in the journal (default $USER)\n";

static const char EVENTS_USAGE[] =
    "usage: cutover events [--json] [--limit N] [--admin URL] [--token-file FILE]\n"
    "       cutover events --state FILE [--json] [--limit N]\n"
    "\n"
    "The rollout's decision history, oldest first: each analysis, tripwire check\n"
    "and command with its inputs, sample sizes, verdict and action.\n"
    "  --state FILE  read the journal file itself (read-only, no lock), not the\n"
    "              admin API: works while serve runs and after it died\n"
    "  --json      the records as JSON instead of a table\n"
    "  --limit N   the last N records (default 50; 0 = as many as the API gives,\n"
    "              10000, or all of them with --state)\n";

/* Pulls our own flags out of argv (they are not the admin client's), leaving
 * the rest for cli_admin_opts. */
static int take_flag(int *argc, char **argv, const char *name, bool has_value, const char **value)
{
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], name) != 0)
            continue;
        int n = has_value ? 2 : 1;
        if (has_value) {
            if (i + 1 >= *argc)
                return -1;
            *value = argv[i + 1];
        } else {
            *value = "1";
        }
        memmove(argv + i, argv + i + n, (size_t)(*argc - i - n) * sizeof *argv);
        *argc -= n;
        return 1;
    }
    return 0;
}

static void print_json(const cu_buf *b)
{
    json_t *j = json_loadb(b->data ? b->data : "", b->len, 0, NULL);
    if (j) {
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
        json_decref(j);
    } else if (b->len) {
        fwrite(b->data, 1, b->len, stdout);
    }
}

/* The controller's reason from an error body {"error": "..."}. */
static void print_refusal(const char *cmd, const cli_admin_reply *c)
{
    json_t *j = json_loadb(c->body.data ? c->body.data : "", c->body.len, 0, NULL);
    const char *msg = j ? json_string_value(json_object_get(j, "error")) : NULL;
    if (c->status == 404 && !msg)
        msg = "this router has no rollout plan (add a rollout: section to its config)";
    fprintf(stderr, "cutover %s: HTTP %d: %s\n", cmd, c->status,
            msg ? msg : (c->body.data ? c->body.data : ""));
    json_decref(j);
}

int cmd_rollout(int argc, char **argv)
{
    static const char *const cmds[] = {"start", "status", "pause", "resume",
                                       "approve", "promote", "abort"};
    const char *by = NULL;
    if (take_flag(&argc, argv, "--by", true, &by) < 0) {
        fputs(ROLLOUT_USAGE, stderr);
        return 2;
    }
    cli_admin_args o;
    int rc = cli_admin_opts(argc, argv, &o, ROLLOUT_USAGE, true);
    if (rc >= 0)
        return rc;
    size_t k = 0;
    while (k < CU_ARRAY_LEN(cmds) && strcmp(o.arg, cmds[k]) != 0)
        k++;
    if (k == CU_ARRAY_LEN(cmds)) {
        const char *near = cu_nearest(o.arg, cmds, CU_ARRAY_LEN(cmds));
        fprintf(stderr, "cutover rollout: unknown command '%s'%s%s%s\n\n%s", o.arg,
                near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "",
                ROLLOUT_USAGE);
        return 2;
    }
    bool is_get = k == 1;
    char err[CU_ERRLEN];
    char *token = NULL;
    if (o.token_file && !(token = cli_read_token(o.token_file, err))) {
        fprintf(stderr, "cutover rollout: %s\n", err);
        return 1;
    }
    if (!is_get && !token) {
        fprintf(stderr, "cutover rollout: '%s' changes traffic and needs --token-file "
                        "(or $CUTOVER_TOKEN_FILE)\n", o.arg);
        return 2;
    }
    if (!by)
        by = getenv("USER");
    json_t *body = json_pack("{s:s}", "by", by && *by ? by : "cli");
    char *body_text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    char path[64];
    snprintf(path, sizeof path, "/rollout/%s", o.arg);
    cli_admin_reply c = {0};
    rc = cli_admin_call(o.admin, is_get ? "GET" : "POST", path, token, is_get ? NULL : body_text,
                        &c, err);
    free(token);
    free(body_text);
    if (rc < 0) {
        fprintf(stderr, "cutover rollout: %s\n", err);
        return 1;
    }
    int status = c.status >= 200 && c.status < 300 ? 0 : 1;
    if (status)
        print_refusal("rollout", &c);
    else
        print_json(&c.body);
    cu_buf_free(&c.body);
    return status;
}

int cmd_events(int argc, char **argv)
{
    const char *json_flag = NULL, *limit = "50", *state = NULL;
    if (take_flag(&argc, argv, "--json", false, &json_flag) < 0 ||
        take_flag(&argc, argv, "--limit", true, &limit) < 0 ||
        take_flag(&argc, argv, "--state", true, &state) < 0) {
        fputs(EVENTS_USAGE, stderr);
        return 2;
    }
    char *end = NULL;
    unsigned long long n = strtoull(limit, &end, 10);
    if (!end || end == limit || *end) {
        fprintf(stderr, "cutover events: --limit wants a whole number, not '%s'\n", limit);
        return 2;
    }
    char err[CU_ERRLEN];
    if (state) {
        if (argc > 1) {
            fprintf(stderr, "cutover events: --state reads the journal file; '%s' is not an "
                            "option for it\n\n%s", argv[1], EVENTS_USAGE);
            return 2;
        }
        cu_buf b = CU_BUF_INIT;
        int rc = rollout_journal_events(state, json_flag != NULL, (size_t)n, &b, err);
        if (rc < 0) {
            fprintf(stderr, "cutover events: %s\n", err);
            cu_buf_free(&b);
            return 1;
        }
        if (json_flag)
            cu_buf_appendc(&b, '\n');
        if (b.len)
            fwrite(b.data, 1, b.len, stdout);
        cu_buf_free(&b);
        return 0;
    }
    cli_admin_args o;
    int rc = cli_admin_opts(argc, argv, &o, EVENTS_USAGE, false);
    if (rc >= 0)
        return rc;
    char path[96];
    snprintf(path, sizeof path, "/rollout/events?limit=%llu%s", n, json_flag ? "" : "&format=table");
    cli_admin_reply c = {0};
    rc = cli_admin_call(o.admin, "GET", path, NULL, NULL, &c, err);
    if (rc < 0) {
        fprintf(stderr, "cutover events: %s\n", err);
        return 1;
    }
    int status = c.status == 200 ? 0 : 1;
    if (status)
        print_refusal("events", &c);
    else if (json_flag)
        print_json(&c.body);
    else if (c.body.len)
        fwrite(c.body.data, 1, c.body.len, stdout);
    cu_buf_free(&c.body);
    return status;
}
