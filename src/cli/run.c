/* cli/run.c: `cutover run SCRIPT`, with Artillery's flags. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"
#include "cli/cli.h"
#include "loadtest/loadtest.h"

static void run_usage(FILE *f)
{
    fprintf(f,
            "usage: cutover run [options] SCRIPT.yml\n"
            "\n"
            "Runs an Artillery v2 test script (no JavaScript is run; see README).\n"
            "\n"
            "  -t, --target URL          set or override config.target\n"
            "  -e, --environment NAME    use config.environments.NAME\n"
            "  -o, --output FILE|DIR     write the JSON report (Artillery's shape)\n"
            "      --overrides JSON      deep-merge JSON into the script (arrays replace)\n"
            "  -v, --variables JSON      add to config.variables\n"
            "  -k, --insecure            do not verify TLS certificates\n"
            "  -q, --quiet               print only the test run id\n"
            "      --workers N           worker threads, each with its own event loop (default 1)\n"
            "      --seed N              seed the random choices (scenario picks, list variables)\n"
            "      --latency-from-intended\n"
            "                            also record cutover.response_time.intended: each request's\n"
            "                            time from when it should have been sent (the user's intended\n"
            "                            arrival, or the previous response plus think time) to its\n"
            "                            complete response, so generator delays are counted\n"
            "      --scenario-name NAME  run only this scenario (its name, or a regex)\n"
            "  -s, --solo                one virtual user, whatever the phases say\n"
            "      --dotenv FILE         set environment variables from FILE (alias --env-file)\n"
            "  -h, --help                this text\n"
            "\n"
            "Exit status: 0 done, 1 ensure failed or the script could not run, 21 an expect\n"
            "check failed, 130/143 stopped by SIGINT/SIGTERM (the partial report is written).\n");
}

static const char *const run_flags[] = {
    "--target", "--environment", "--output", "--overrides", "--variables",
    "--insecure", "--quiet", "--workers", "--seed", "--latency-from-intended", "--help", "--scenario-name", "--solo",
    "--dotenv", "--env-file",
};

/* --dotenv FILE, as the dotenv package reads it: KEY=VALUE lines (an
 * optional `export `, `#` comments, single, double or backtick quotes, \n
 * in double quotes); a variable already in the environment is kept. */
int cli_dotenv(const char *path, char err[CU_ERRLEN])
{
    cu_buf text = CU_BUF_INIT;
    if (cu_read_file(path, &text, err) != 0) {
        cu_buf_free(&text);
        return -1;
    }
    char *save = NULL;
    for (char *line = strtok_r(text.data ? text.data : (char[]){0}, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        while (*line == ' ' || *line == '\t')
            line++;
        if (!strncmp(line, "export ", 7))
            line += 7;
        size_t klen = strspn(line, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                   "0123456789_.-");
        char *p = line + klen;
        while (*p == ' ')
            p++;
        if (!klen || (*p != '=' && *p != ':'))
            continue;
        line[klen] = '\0';
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        size_t n = strlen(p);
        while (n && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
            p[--n] = '\0';
        cu_buf v = CU_BUF_INIT;
        char q = *p;
        char *end = (q == '"' || q == '\'' || q == '`') && n > 1 ? strrchr(p + 1, q) : NULL;
        if (end) {
            for (char *c = p + 1; c < end; c++) {
                if (q == '"' && c[0] == '\\' && c[1] == 'n') {
                    cu_buf_appendc(&v, '\n');
                    c++;
                } else {
                    cu_buf_appendc(&v, *c);
                }
            }
        } else {
            char *hash = strstr(p, " #");
            size_t len = hash ? (size_t)(hash - p) : n;
            if (*p == '#')
                len = 0;
            while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
                len--;
            cu_buf_append(&v, p, len);
        }
        setenv(line, v.data ? v.data : "", 0);
        cu_buf_free(&v);
    }
    cu_buf_free(&text);
    return 0;
}

static int output_ok(const char *out)
{
    struct stat st;
    if (stat(out, &st) == 0)
        return 0;
    char *dir = cu_dirname(out);
    int ok = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
    if (!ok)
        fprintf(stderr, "cutover: error: Path does not exist: %s\n", dir);
    free(dir);
    return ok ? 0 : -1;
}

bool cli_load_option(int c, const char *arg, lt_load_opts *o, const char **dotenv)
{
    switch (c) {
    case 't': o->target = arg; return true;
    case 'e': o->environment = arg; return true;
    case 'v': o->variables = arg; return true;
    case 'k': o->insecure = true; return true;
    case 's': o->solo = true; return true;
    case CLI_OPT_OVERRIDES: o->overrides = arg; return true;
    case CLI_OPT_SCENARIO: o->scenario_name = arg; return true;
    case CLI_OPT_DOTENV: *dotenv = arg; return true;
    default: return false;
    }
}

int cli_load_script_arg(int argc, char **argv, lt_load_opts *o, const char *dotenv,
                        void (*usage)(FILE *))
{
    if (optind != argc - 1) {
        fprintf(stderr, optind >= argc ? "cutover: error: no script given\n"
                                       : "cutover: error: one script at a time\n");
        usage(stderr);
        return 2;
    }
    o->path = argv[optind];
    char err[CU_ERRLEN];
    if (dotenv && cli_dotenv(dotenv, err) != 0) {
        fprintf(stderr, "cutover: error: --dotenv: %s\n", err);
        return LT_EXIT_FAIL;
    }
    return -1;
}

int cmd_run(int argc, char **argv)
{
    enum { OPT_WORKERS = CLI_OPT_FIRST_FREE, OPT_SEED, OPT_INTENDED };
    static const struct option longopts[] = {
        CLI_LOAD_LONGOPTS,
        {"output", required_argument, NULL, 'o'},
        {"quiet", no_argument, NULL, 'q'},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"seed", required_argument, NULL, OPT_SEED},
        {"latency-from-intended", no_argument, NULL, OPT_INTENDED},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    lt_run_opts o;
    memset(&o, 0, sizeof o);
    o.workers = 1;
    opterr = 0;
    optind = 1;
    int c;
    const char *dotenv = NULL;
    while ((c = getopt_long(argc, argv, "t:e:o:v:kqsh", longopts, NULL)) != -1) {
        if (cli_load_option(c, optarg, &o.load, &dotenv))
            continue;
        switch (c) {
        case 'o': o.output = optarg; break;
        case 'q': o.quiet = true; break;
        case OPT_WORKERS: {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || n < 1 || n > 256) {
                fprintf(stderr, "cutover: error: --workers takes a number from 1 to 256, not '%s'\n", optarg);
                return 2;
            }
            o.workers = (int)n;
            break;
        }
        case OPT_SEED: o.seed = strtoull(optarg, NULL, 10); break;
        case OPT_INTENDED: o.latency_from_intended = true; break;
        case 'h': run_usage(stdout); return 0;
        default: {
            const char *bad = argv[optind - 1];
            if (optopt && c == '?' && strchr("teov", optopt))
                fprintf(stderr, "cutover: error: option -%c needs a value\n", optopt);
            else {
                char name[64];
                snprintf(name, sizeof name, "%.*s", (int)strcspn(bad, "="), bad);
                const char *near = cu_nearest(name, run_flags, CU_ARRAY_LEN(run_flags));
                fprintf(stderr, "cutover: error: unknown option '%s'%s%s%s\n", bad,
                        near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
            }
            run_usage(stderr);
            return 2;
        }
        }
    }
    int rc = cli_load_script_arg(argc, argv, &o.load, dotenv, run_usage);
    if (rc >= 0)
        return rc;
    if (o.output && output_ok(o.output) != 0)
        return LT_EXIT_FAIL;
    return lt_run(&o);
}
