/* cli: the subcommand table and the top-level usage text. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

#include "base/base.h"

#ifndef CUTOVER_VERSION
#define CUTOVER_VERSION "0.1.0"
#endif

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} subcommand;

static const subcommand commands[] = {
    {"run", cmd_run, "run an Artillery v2 test script (load test)"},
    {"lint", cmd_lint, "check a test script without running it: warnings and the plan"},
    {"report", cmd_report, "write a JSON report as one self-contained HTML page"},
    {"upstream", cmd_upstream, "a sample HTTP service (the lego-api) for rehearsals and tests"},
    {"serve", cmd_serve, "the weighted blue/green router (config: docs/serve.md)"},
    {"status", cmd_status, "print a running router's status (admin API)"},
    {"weight", cmd_weight, "set green's share of traffic: cutover weight green=10"},
    {"rollout", cmd_rollout, "drive the rollout: start|status|pause|resume|approve|promote|abort"},
    {"events", cmd_events, "the rollout's decision history (table or --json)"},
    {"demo", cmd_demo, "run the lego-api load test against the sample service"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: cutover <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < CU_ARRAY_LEN(commands); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'cutover <command> --help' shows a command's options.\n");
}

int cli_main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "-h") || !strcmp(name, "--help") || !strcmp(name, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "-V") || !strcmp(name, "--version") || !strcmp(name, "version")) {
        printf("cutover %s\n", CUTOVER_VERSION);
        return 0;
    }
    const char *names[CU_ARRAY_LEN(commands)];
    for (size_t i = 0; i < CU_ARRAY_LEN(commands); i++) {
        if (!strcmp(name, commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
        names[i] = commands[i].name;
    }
    const char *near = cu_nearest(name, names, CU_ARRAY_LEN(commands));
    fprintf(stderr, "cutover: unknown command '%s'", name);
    if (near)
        fprintf(stderr, " (did you mean '%s'?)", near);
    fprintf(stderr, "\n\n");
    usage(stderr);
    return 2;
}
