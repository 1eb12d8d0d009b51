/* cli/report.c: `cutover report REPORT.json [-o REPORT.html]`.
 *
 * Reads a JSON report (cutover's or Artillery's own) and writes one
 * self-contained HTML page. The page is written to a temporary file next to
 * the target and renamed into place, so a failed run never leaves half a
 * page behind. Exit status: 0 written, 1 bad input or cannot write, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "cli/cli.h"
#include "report/report.h"

static void report_usage(FILE *f)
{
    fprintf(f,
            "usage: cutover report [options] REPORT.json\n"
            "\n"
            "Writes the JSON report of `cutover run -o` (or of `artillery run -o`) as one\n"
            "self-contained HTML page: summary, charts over time, errors, scenarios,\n"
            "endpoints, ensure checks. Nothing is fetched; it works offline.\n"
            "\n"
            "  -o, --output FILE   the page (default: REPORT.json with .html for .json)\n"
            "  -h, --help          this text\n"
            "\n"
            "Exit status: 0 written, 1 the report could not be read or the page written.\n");
}

/* REPORT.json -> REPORT.html; any other name gets ".html" appended. */
static char *default_output(const char *in)
{
    size_t n = strlen(in);
    if (n > 5 && !strcmp(in + n - 5, ".json"))
        return cu_asprintf("%.*s.html", (int)(n - 5), in);
    return cu_asprintf("%s.html", in);
}

static int write_page(const char *path, const cu_buf *page)
{
    int rc = cu_write_file(path, page->data, page->len);
    if (rc < 0)
        fprintf(stderr, "cutover: error: cannot write %s: %s\n", path, strerror(-rc));
    return rc;
}

int cmd_report(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *output = NULL;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': output = optarg; break;
        case 'h': report_usage(stdout); return 0;
        default:
            if (c == '?' && optopt == 'o')
                fprintf(stderr, "cutover: error: option -o needs a file name\n");
            else
                fprintf(stderr, "cutover: error: unknown option '%s'\n", argv[optind - 1]);
            report_usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, optind >= argc ? "cutover: error: no report given\n"
                                       : "cutover: error: one report at a time\n");
        report_usage(stderr);
        return 2;
    }
    const char *in = argv[optind];
    char err[CU_ERRLEN];
    rpt_report *r;
    if (rpt_load(in, &r, err) != 0) {
        fprintf(stderr, "cutover: error: %s\n", err);
        return 1;
    }
    char *out = output ? cu_strdup(output) : default_output(in);
    struct stat si, so;
    if (stat(in, &si) == 0 && stat(out, &so) == 0 && si.st_dev == so.st_dev && si.st_ino == so.st_ino) {
        fprintf(stderr, "cutover: error: %s is the report itself; give -o another file\n", out);
        free(out);
        rpt_free(r);
        return 1;
    }
    const char *slash = strrchr(in, '/');
    cu_buf page = CU_BUF_INIT;
    rpt_render_html(r, slash ? slash + 1 : in, &page);
    int rc = write_page(out, &page);
    if (!rc)
        printf("Report: %s\n", out);
    cu_buf_free(&page);
    free(out);
    rpt_free(r);
    return rc ? 1 : 0;
}
