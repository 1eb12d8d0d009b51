/* cli: one file per subcommand; cli_main dispatches on argv[1].
 * Each cmd_* function takes the arguments after the subcommand name
 * (argv[0] is the subcommand) and returns the process exit status. */
#ifndef CUTOVER_CLI_H
#define CUTOVER_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "base/base.h"

int cli_main(int argc, char **argv);

int cmd_run(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_lint(int argc, char **argv);

/* run.c: the script-loading options `run` and `lint` share: -t, -e, -v, -k,
 * --overrides, --scenario-name, -s/--solo, --dotenv/--env-file. Their long
 * options use these codes; cli_load_option() applies one (returns false
 * for any other code), cli_load_script_arg() takes the one SCRIPT argument
 * and applies --dotenv, returning -1 to go on or the exit status to return
 * now (after printing the error and, for usage errors, usage). */
enum { CLI_OPT_OVERRIDES = 1000, CLI_OPT_SCENARIO, CLI_OPT_DOTENV, CLI_OPT_FIRST_FREE };
/* Their entries for a command's getopt_long table (short options: "t:e:v:ks"). */
#define CLI_LOAD_LONGOPTS                                      \
    {"target", required_argument, NULL, 't'},                  \
    {"environment", required_argument, NULL, 'e'},             \
    {"overrides", required_argument, NULL, CLI_OPT_OVERRIDES}, \
    {"variables", required_argument, NULL, 'v'},               \
    {"insecure", no_argument, NULL, 'k'},                      \
    {"scenario-name", required_argument, NULL, CLI_OPT_SCENARIO}, \
    {"solo", no_argument, NULL, 's'},                          \
    {"dotenv", required_argument, NULL, CLI_OPT_DOTENV},       \
    {"env-file", required_argument, NULL, CLI_OPT_DOTENV}
struct lt_load_opts;
bool cli_load_option(int c, const char *arg, struct lt_load_opts *o, const char **dotenv);
int cli_load_script_arg(int argc, char **argv, struct lt_load_opts *o, const char *dotenv,
                        void (*usage)(FILE *));
/* run.c: --dotenv FILE into the environment (existing variables win).
 * Returns 0, or -1 with err. */
int cli_dotenv(const char *path, char err[CU_ERRLEN]);
int cmd_upstream(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_weight(int argc, char **argv);
int cmd_rollout(int argc, char **argv);
int cmd_events(int argc, char **argv);

/* admin.c: the client side of the admin API, shared by the commands that
 * talk to a running `cutover serve` (status, weight, rollout, events). */
typedef struct cli_admin_reply {
    int err;                 /* transport error, 0 when an answer came */
    int status;              /* HTTP status */
    cu_buf body;             /* the caller frees it */
    bool done;
} cli_admin_reply;
/* One request to the admin API at `base` (token may be NULL, body is JSON
 * or NULL); fills *c, which is initialised whatever happens (free c->body).
 * Returns 0 or a negative code with err. */
int cli_admin_call(const char *base, const char *method, const char *path, const char *token,
                   const char *body, cli_admin_reply *c, char err[CU_ERRLEN]);
/* The token from a file, trailing white space dropped; NULL with err. */
char *cli_read_token(const char *file, char err[CU_ERRLEN]);
typedef struct cli_admin_args {
    const char *admin, *token_file;
    const char *arg;         /* the one positional argument, when wanted */
} cli_admin_args;
/* Parses --admin URL and --token-file FILE (defaults: $CUTOVER_ADMIN or
 * http://127.0.0.1:9090, $CUTOVER_TOKEN_FILE). Returns -1 to go on, or the
 * exit status to return now (0 after --help, 2 on a usage error). */
int cli_admin_opts(int argc, char **argv, cli_admin_args *o, const char *usage, bool want_arg);

/* serve_rollout.c: the rollout controller inside `cutover serve`. */
typedef struct serve_rollout serve_rollout;
struct router;
/* Starts the controller when the config has a `rollout:` section (else
 * *out stays NULL and 0 is returned). Returns 0 or a negative code with err
 * ("file:line:col: ..." for plan errors). */
int serve_rollout_attach(serve_rollout **out, struct router *r, const char *config_path,
                         char err[CU_ERRLEN]);
/* The same checks without starting anything (`serve --check`). */
struct router_config;
int serve_rollout_check(const struct router_config *cfg, const char *config_path,
                        char err[CU_ERRLEN]);
/* One line for the start-up banner: state, step, weight, journal. */
void serve_rollout_describe(const serve_rollout *sr, cu_buf *out);
void serve_rollout_detach(serve_rollout *sr);

#endif
