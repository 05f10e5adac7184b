/* cmd_report.c - `dinox report RUN_DIR`: the run's self-contained HTML
 * report (src/eval/report.c). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "eval/report.h"

static void report_usage(FILE *f) {
    fprintf(f,
            "usage: dinox report RUN_DIR [--eval DIR] [--compare EVAL_DIR ...] [--out report.html]\n"
            "       dinox report --eval DIR [--compare EVAL_DIR ...] --out report.html\n"
            "\n"
            "Writes one self-contained HTML page (inline SVG plots and base64 PNG images, no\n"
            "scripts, no network): training curves of every numeric key of RUN_DIR/metrics.jsonl,\n"
            "the evaluation tables of DIR/eval.json (default RUN_DIR/eval, as written by\n"
            "`dinox eval --out`), attention overlays, collapse diagnostics over the checkpoints\n"
            "(DIR/collapse_track.json from `dinox eval --track`) and, with --compare, one table\n"
            "row per other evaluation directory (ablations: Gram, window, 2.5D from its config).\n"
            "\n"
            "  --eval DIR         evaluation directory (default RUN_DIR/eval)\n"
            "  --compare DIR      another evaluation to compare (repeatable; several may follow)\n"
            "  --out FILE         output (default RUN_DIR/report.html)\n");
}

int cmd_report(int argc, char **argv) {
    const char *eval = NULL, *out = NULL, *run = NULL;
    const char **cmp = calloc((size_t)argc + 1, sizeof *cmp);
    int ncmp = 0;
    if (!cmp) return 1;
    enum { O_EVAL = 1000, O_CMP, O_OUT, O_HELP };
    static const struct option opts[] = {{"eval", required_argument, 0, O_EVAL}, {"compare", required_argument, 0, O_CMP},
                                         {"out", required_argument, 0, O_OUT}, {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0}};
    optind = 1;
    int in_compare = 0;
    /* "--compare A B C": positional arguments after --compare are more comparisons */
    for (int c; (c = getopt_long(argc, argv, "-h", opts, NULL)) != -1;) {
        switch (c) {
        case 1:
            if (in_compare) cmp[ncmp++] = optarg;
            else if (!run) run = optarg;
            else { report_usage(stderr); free(cmp); return 2; }
            break;
        case O_EVAL: eval = optarg; in_compare = 0; break;
        case O_CMP: cmp[ncmp++] = optarg; in_compare = 1; break;
        case O_OUT: out = optarg; in_compare = 0; break;
        case 'h': case O_HELP: report_usage(stdout); free(cmp); return 0;
        default: report_usage(stderr); free(cmp); return 2;
        }
    }
    if (!run && !eval) {
        fprintf(stderr, "dinox report: missing RUN_DIR (or --eval EVAL_DIR --out REPORT.html)\n\n");
        report_usage(stderr);
        free(cmp);
        return 2;
    }
    char def[2048];
    if (!out) {
        if (!run) {
            fprintf(stderr, "dinox report: --eval without RUN_DIR needs --out REPORT.html\n\n");
            report_usage(stderr);
            free(cmp);
            return 2;
        }
        snprintf(def, sizeof def, "%s/report.html", run);
        out = def;
    }
    dx_report_opts o = {run, eval, cmp, ncmp, out};
    dx_err err = {0};
    int rc = 0;
    if (dx_report_write(&o, &err)) {
        fprintf(stderr, "dinox report: %s\n", err.msg);
        rc = 1;
    } else {
        fprintf(stderr, "dinox report: wrote %s\n", out);
    }
    free(cmp);
    return rc;
}
