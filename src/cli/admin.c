/* cli/admin: `cutover status` and `cutover weight green=N`, clients of the
 * admin API of a running `cutover serve`. The admin URL comes from --admin
 * (default $CUTOVER_ADMIN, else http://127.0.0.1:9090) and the token from
 * --token-file (default $CUTOVER_TOKEN_FILE); the token is sent as
 * `Authorization: Bearer`, never printed. Exit: 0 ok, 1 the call failed,
 * 2 usage. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "http/http.h"
#include "net/net.h"


static void on_response(void *user, int err, const http_response *res)
{
    cli_admin_reply *c = user;
    c->done = true;
    c->err = err;
    if (err == 0) {
        c->status = res->status;
        cu_buf_append(&c->body, res->body ? res->body : "", res->body_len);
    }
}

int cli_admin_call(const char *base, const char *method, const char *path,
                   const char *token, const char *body, cli_admin_reply *c,
                   char err[CU_ERRLEN])
{
    memset(c, 0, sizeof *c);
    http_url u;
    if (http_url_parse(&u, base, err) < 0)
        return -EINVAL;
    uv_loop_t loop;
    uv_loop_init(&loop);
    net_resolver *res = net_resolver_new(&loop, 1000);
    net_tls *tls = NULL;
    int rc = 0;
    if (u.tls && (rc = net_tls_client_new(&tls, true, NULL, err)) < 0)
        goto out;
    http_client_opts o = {res, tls, 5000};
    http_client *hc = http_client_new(&loop, &u, &o);
    http_header h[2];
    size_t nh = 0;
    char *auth = NULL;
    if (token) {
        auth = cu_asprintf("Bearer %s", token);
        h[nh++] = (http_header){"Authorization", 13, auth, strlen(auth)};
    }
    if (body)
        h[nh++] = (http_header){"Content-Type", 12, "application/json", 16};
    http_request req = {method, path, h, nh, body, body ? strlen(body) : 0};
    memset(c, 0, sizeof *c);
    rc = http_client_send(hc, &req, true, 10000, on_response, c);
    if (rc == 0)
        while (!c->done && uv_run(&loop, UV_RUN_ONCE))
            ;
    http_client_free(hc);
    uv_run(&loop, UV_RUN_DEFAULT);
    free(auth);
    if (rc == 0 && c->err) {
        snprintf(err, CU_ERRLEN, "%s%s: %s", base, path, http_error_name(c->err));
        rc = c->err;
    }
out:
    if (tls)
        net_tls_free(tls);
    net_resolver_free(res);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    http_url_free(&u);
    return rc;
}

char *cli_read_token(const char *file, char err[CU_ERRLEN])
{
    cu_buf b = CU_BUF_INIT;
    if (cu_read_file(file, &b, err) < 0) {
        cu_buf_free(&b);
        return NULL;
    }
    while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r' ||
                     b.data[b.len - 1] == ' '))
        b.data[--b.len] = 0;
    return cu_buf_steal(&b);
}

int cli_admin_opts(int argc, char **argv, cli_admin_args *o, const char *usage, bool want_arg)
{
    o->admin = getenv("CUTOVER_ADMIN");
    if (!o->admin || !*o->admin)
        o->admin = "http://127.0.0.1:9090";
    o->token_file = getenv("CUTOVER_TOKEN_FILE");
    o->arg = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "--admin") && i + 1 < argc) {
            o->admin = argv[++i];
        } else if (!strcmp(a, "--token-file") && i + 1 < argc) {
            o->token_file = argv[++i];
        } else if (a[0] != '-' && want_arg && !o->arg) {
            o->arg = a;
        } else {
            fprintf(stderr, "%s: unexpected argument '%s'\n%s", argv[0], a, usage);
            return 2;
        }
    }
    if (want_arg && !o->arg) {
        fputs(usage, stderr);
        return 2;
    }
    return -1;
}

static const char STATUS_USAGE[] =
    "usage: cutover status [--admin URL] [--token-file FILE]\n"
    "\n"
    "Prints the router's status (GET /status of the admin API) as JSON: weights,\n"
    "each server's health, per-colour figures for the last 10 s, 1 min, 5 min.\n"
    "  --admin URL         admin API (default $CUTOVER_ADMIN or http://127.0.0.1:9090)\n"
    "  --token-file FILE   admin token (default $CUTOVER_TOKEN_FILE)\n";

int cmd_status(int argc, char **argv)
{
    cli_admin_args o;
    int rc = cli_admin_opts(argc, argv, &o, STATUS_USAGE, false);
    if (rc >= 0)
        return rc;
    char err[CU_ERRLEN];
    char *token = NULL;
    if (o.token_file && !(token = cli_read_token(o.token_file, err))) {
        fprintf(stderr, "cutover status: %s\n", err);
        return 1;
    }
    cli_admin_reply c = {0};
    rc = cli_admin_call(o.admin, "GET", "/status", token, NULL, &c, err);
    free(token);
    if (rc < 0) {
        fprintf(stderr, "cutover status: %s\n", err);
        return 1;
    }
    int status = c.status == 200 ? 0 : 1;
    json_t *j = json_loadb(c.body.data ? c.body.data : "", c.body.len, 0, NULL);
    if (j) {
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
        json_decref(j);
    } else {
        fwrite(c.body.data, 1, c.body.len, stdout);
    }
    if (status)
        fprintf(stderr, "cutover status: HTTP %d\n", c.status);
    cu_buf_free(&c.body);
    return status;
}

static const char WEIGHT_USAGE[] =
    "usage: cutover weight [--admin URL] [--token-file FILE] green=PERCENT\n"
    "\n"
    "Sets green's share of the traffic (0..100 in steps of 0.01; blue gets the\n"
    "rest) through PUT /weights; it applies to the next request. Also blue=PERCENT.\n"
    "  --admin URL         admin API (default $CUTOVER_ADMIN or http://127.0.0.1:9090)\n"
    "  --token-file FILE   admin token (default $CUTOVER_TOKEN_FILE); required\n";

int cmd_weight(int argc, char **argv)
{
    cli_admin_args o;
    int rc = cli_admin_opts(argc, argv, &o, WEIGHT_USAGE, true);
    if (rc >= 0)
        return rc;
    const char *eq = strchr(o.arg, '=');
    char *end = NULL;
    double v = eq ? strtod(eq + 1, &end) : -1;
    bool green = eq && (size_t)(eq - o.arg) == 5 && !strncmp(o.arg, "green", 5);
    bool blue = eq && (size_t)(eq - o.arg) == 4 && !strncmp(o.arg, "blue", 4);
    if ((!green && !blue) || !end || end == eq + 1 || *end || !(v >= 0 && v <= 100)) {
        fprintf(stderr, "cutover weight: expected green=PERCENT or blue=PERCENT (0..100), "
                        "not '%s'\n", o.arg);
        return 2;
    }
    char err[CU_ERRLEN];
    if (!o.token_file) {
        fprintf(stderr, "cutover weight: --token-file (or $CUTOVER_TOKEN_FILE) is required\n");
        return 2;
    }
    char *token = cli_read_token(o.token_file, err);
    if (!token) {
        fprintf(stderr, "cutover weight: %s\n", err);
        return 1;
    }
    char body[64];
    snprintf(body, sizeof body, "{\"%s\": %.2f}", green ? "green" : "blue", v);
    cli_admin_reply c = {0};
    rc = cli_admin_call(o.admin, "PUT", "/weights", token, body, &c, err);
    free(token);
    if (rc < 0) {
        fprintf(stderr, "cutover weight: %s\n", err);
        return 1;
    }
    int status = c.status == 200 ? 0 : 1;
    if (status)
        fprintf(stderr, "cutover weight: HTTP %d: %.*s", c.status, (int)c.body.len,
                c.body.data ? c.body.data : "");
    else
        fwrite(c.body.data, 1, c.body.len, stdout);
    cu_buf_free(&c.body);
    return status;
}
