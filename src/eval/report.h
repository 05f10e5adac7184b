/* report.h - `dinox report`: one self-contained HTML page for a run.
 *
 * Sections: training curves (every numeric key of RUN_DIR/metrics.jsonl
 * against "step", inline SVG), the evaluation tables of EVAL_DIR/eval.json
 * (probe with 95% CI, per feature set, baselines, k-NN, segmentation,
 * collapse), attention overlays (EVAL_DIR/attention/att_<i>.png as base64
 * data: URIs), diagnostics over training (EVAL_DIR/collapse_track.json) and a
 * comparison table of other evaluations (--compare DIR: DIR/eval.json, with the
 * ablation keys of the run's config.yaml when found at DIR/config.yaml or
 * DIR/../config.yaml). No scripts, no external resources. */
#ifndef DX_EVAL_REPORT_H
#define DX_EVAL_REPORT_H

#include <stdio.h>

#include "core/dx_error.h"

typedef struct dx_report_opts {
    const char *run_dir;          /* may be NULL: eval-only report */
    const char *eval_dir;         /* NULL: RUN_DIR/eval */
    const char *const *compare;   /* other evaluation directories */
    int n_compare;
    const char *out_path;         /* the HTML file */
} dx_report_opts;

dx_status dx_report_write(const dx_report_opts *o, dx_err *err);

/* One line chart as inline SVG (NAN y values break the line); exposed for tests. */
void dx_svg_line_chart(FILE *f, const char *title, const double *x, const double *y, int n, int w, int h);
/* The same with the y axis spanning at least [ymin, ymax] (NAN: from the data). */
void dx_svg_line_chart_range(FILE *f, const char *title, const double *x, const double *y, int n, int w, int h,
                             double ymin, double ymax);

#endif /* DX_EVAL_REPORT_H */
