/* cli/lint.c: `cutover lint SCRIPT`: loads the script exactly as `cutover
 * run` does (the same flags, the same warnings, on stderr, each with
 * file:line:col), prints the plan on stdout and sends nothing. Exit 0 when
 * the script would run (warnings only), 1 when it would not (an error). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "http/http.h"
#include "loadtest/loadtest.h"

static void lint_usage(FILE *f)
{
    fprintf(f,
            "usage: cutover lint [options] SCRIPT.yml\n"
            "\n"
            "Checks an Artillery v2 test script without running it: every warning\n"
            "`cutover run` would print (file:line:col), then the plan (phases,\n"
            "arrivals, length, scenario shares). Nothing is sent.\n"
            "\n"
            "  -t, --target URL          set or override config.target\n"
            "  -e, --environment NAME    use config.environments.NAME\n"
            "      --overrides JSON      deep-merge JSON into the script (arrays replace)\n"
            "  -v, --variables JSON      add to config.variables\n"
            "  -k, --insecure            do not verify TLS certificates\n"
            "      --scenario-name NAME  plan only this scenario (its name, or a regex)\n"
            "  -s, --solo                plan one virtual user\n"
            "      --dotenv FILE         set environment variables from FILE (alias --env-file)\n"
            "  -h, --help                this text\n"
            "\n"
            "Exit status: 0 the script runs (warnings only), 1 it has errors, 2 usage.\n");
}

int cmd_lint(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_LOAD_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    lt_load_opts o;
    memset(&o, 0, sizeof o);
    opterr = 0;
    optind = 1;
    int c;
    const char *dotenv = NULL;
    char err[CU_ERRLEN] = "";
    while ((c = getopt_long(argc, argv, "t:e:v:ksh", longopts, NULL)) != -1) {
        if (cli_load_option(c, optarg, &o, &dotenv))
            continue;
        switch (c) {
        case 'h': lint_usage(stdout); return 0;
        default:
            fprintf(stderr, "cutover: error: bad option '%s'\n", argv[optind - 1]);
            lint_usage(stderr);
            return 2;
        }
    }
    int rc = cli_load_script_arg(argc, argv, &o, dotenv, lint_usage);
    if (rc >= 0)
        return rc;
    size_t before = cu_log_count(CU_LOG_WARN);
    lt_script *s = lt_script_load(&o, err);
    if (!s) {
        fprintf(stderr, "cutover: error: %s\n", err);
        printf("%s: 1 error, %zu warning%s\n", o.path, cu_log_count(CU_LOG_WARN) - before,
               cu_log_count(CU_LOG_WARN) - before == 1 ? "" : "s");
        return LT_EXIT_FAIL;
    }
    http_url u;
    int status = 0;
    if (http_url_parse(&u, s->target, err) != 0) {
        fprintf(stderr, "cutover: error: config.target '%s': %s\n", s->target, err);
        status = LT_EXIT_FAIL;
    } else {
        http_url_free(&u);
    }
    cu_buf b = CU_BUF_INIT;
    lt_script_plan(s, &b);
    size_t nwarn = cu_log_count(CU_LOG_WARN) - before;
    cu_buf_appendf(&b, "%s: %s, %zu warning%s\n", o.path, status ? "1 error" : "no errors", nwarn,
                   nwarn == 1 ? "" : "s");
    fflush(stderr);
    fwrite(b.data, 1, b.len, stdout);
    cu_buf_free(&b);
    lt_script_free(s);
    return status;
}
