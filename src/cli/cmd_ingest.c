/* cmd_ingest.c - `dinox ingest ROOT --out STORE`: DICOM series (and NIfTI
 * files) under ROOT + LIDC XML reads -> the volume store. The work is
 * dx_ingest_run (src/io/ingest.c); this file parses options and prints the
 * plan, the progress bar and the summary. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "io/ingest.h"

static void ingest_usage(FILE *f) {
    fprintf(f,
            "usage: dinox ingest INPUT_ROOT --out STORE [options]\n"
            "\n"
            "Walks INPUT_ROOT, groups CT DICOM files into series by UID (never by folder),\n"
            "reads LIDC XML annotations (LidcReadMessage) and NIfTI volumes (.nii, .nii.gz),\n"
            "and adds every series not yet in STORE: int16 HU volume, geometry, patient ID,\n"
            "consensus nodule labels and the nodule table (STORE/nodules.csv).\n"
            "Re-running skips stored series (except a series stored without annotations whose\n"
            "LIDC XML has appeared since); an interrupted run leaves a valid store.\n"
            "\n"
            "  --out STORE         store directory (created if missing)\n"
            "  --force             re-ingest series that are already stored\n"
            "  --metric min|centroid  annotation distance for clustering (min: pylidc default,\n"
            "                      closest contour points in (row, col, slice) index units)\n"
            "  --tol T             clustering tolerance in index units (default: the series'\n"
            "                      SliceThickness in mm, as pylidc; else the slice spacing)\n"
            "  --max-per-nodule N  shrink tol while a cluster holds more marks (4)\n"
            "  --allow-same-reader allow two marks of one reading session in a cluster (pylidc)\n"
            "  --clevel C          consensus agreement level (0.5)\n"
            "  --no-progress       no progress bar\n"
            "  -v, --verbose       log each skipped file\n");
}

static void skip_print(const dx_ingest_skips *t, const char *what) {
    for (int i = 0; i < t->n; i++)
        fprintf(stderr, "  %5d %s skipped: %s (e.g. %s)\n", t->r[i].count, what, t->r[i].reason, t->r[i].example);
}

static void fmt_dur(double s, char *buf, size_t n) {
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%lds", t);
}

typedef struct {
    int show; /* progress lines at all (not --no-progress) */
    int tty;  /* a redrawn bar on a terminal, else one line per step */
} progress_cfg;

/* The plan line, then progress on stderr after each series. */
static void progress(const dx_ingest_result *r, const char *label, void *user) {
    const progress_cfg *pc = user;
    if (!label) {
        fprintf(stderr, "ingest: %d series (%d DICOM, %d NIfTI), %d LIDC XML files for %d series; %d to add\n",
                r->n_series, r->n_dicom, r->n_nifti, r->xml_files, r->xml_series, r->todo);
        return;
    }
    if (!pc->show) return;
    int done = r->done, total = r->todo;
    double el = r->elapsed_s;
    double eta = done ? el / done * (total - done) : 0;
    char e1[32], e2[32];
    fmt_dur(el, e1, sizeof e1);
    fmt_dur(eta, e2, sizeof e2);
    int w = 30, fill = total ? (int)((double)w * done / total) : w;
    char bar[40];
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = 0;
    double rate = el > 0 ? r->slices_done / el : 0;
    if (pc->tty)
        fprintf(stderr, "\r[%s] %d/%d series  %.0f slices/s  elapsed %s  ETA %s ", bar, done, total, rate, e1, e2);
    else
        fprintf(stderr, "ingest: [%s] %d/%d series (%s)  %.0f slices/s  elapsed %s  ETA %s\n", bar, done, total,
                label, rate, e1, e2);
    fflush(stderr);
}

int cmd_ingest(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        ingest_usage(stdout);
        return 0;
    }
    int no_progress = 0;
    dx_ingest_opts o;
    dx_ingest_opts_default(&o);
    dx_lidc_cluster_opts *copt = &o.cluster;
    enum { O_OUT = 1000, O_FORCE, O_METRIC, O_TOL, O_MAXPN, O_SAME, O_CLEVEL, O_NOPROG };
    static const struct option opts[] = {
        {"out", required_argument, 0, O_OUT},      {"force", no_argument, 0, O_FORCE},
        {"metric", required_argument, 0, O_METRIC}, {"tol", required_argument, 0, O_TOL},
        {"max-per-nodule", required_argument, 0, O_MAXPN}, {"allow-same-reader", no_argument, 0, O_SAME},
        {"clevel", required_argument, 0, O_CLEVEL}, {"no-progress", no_argument, 0, O_NOPROG},
        {"verbose", no_argument, 0, 'v'},          {0, 0, 0, 0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "v", opts, NULL)) != -1;) {
        switch (c) {
        case O_OUT: o.out = optarg; break;
        case O_FORCE: o.force = 1; break;
        case O_METRIC:
            if (!strcmp(optarg, "min")) copt->metric = DX_LIDC_METRIC_MIN;
            else if (!strcmp(optarg, "centroid")) copt->metric = DX_LIDC_METRIC_CENTROID;
            else {
                fprintf(stderr, "ingest: --metric must be min or centroid\n");
                return 2;
            }
            break;
        case O_TOL: CLI_DOUBLE("ingest", copt->tol, 0, 1000); break;
        case O_MAXPN: CLI_INT("ingest", copt->max_per_cluster, 1, 1000); break;
        case O_SAME: copt->one_per_reader = 0; break;
        case O_CLEVEL:
            CLI_DOUBLE("ingest", copt->clevel, 1e-6, 1);
            break;
        case O_NOPROG: no_progress = 1; break;
        case 'v': o.verbose = 1; break;
        default: ingest_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1 || !o.out) {
        fprintf(stderr, "dinox ingest: %s\n\n",
                optind == argc ? "missing the input folder (DICOM tree or NIfTI files)"
                : optind < argc - 1 ? "one input folder only" : "missing --out STORE");
        ingest_usage(stderr);
        return 2;
    }
    o.root = argv[optind];
    progress_cfg pc = {.show = !no_progress, .tty = !no_progress && isatty(2)};
    o.progress = progress;
    o.progress_user = &pc;
    dx_ingest_result r;
    dx_err err = {0};
    dx_status st = dx_ingest_run(&o, &r, &err);
    if (!r.ran) { /* nothing was written */
        fprintf(stderr, "ingest: %s\n", err.msg);
        if (r.empty_input) {
            skip_print(&r.xml_skips, "XML files");
            skip_print(&r.file_skips, "files");
        }
        dx_ingest_result_free(&r);
        return 1;
    }
    if (pc.tty) fputc('\n', stderr);
    double el = r.elapsed_s;
    fprintf(stderr, "ingest: added %d series (%ld slices, %.1f s, %.0f slices/s), %d already stored, %d failed; "
                    "%d nodules; store now %d series\n",
            r.added, r.slices_done, el, el > 0 ? r.slices_done / el : 0.0, r.already, r.failed, r.n_nodules,
            r.store_series);
    if (r.dup_sessions)
        fprintf(stderr, "  %5d duplicate reading sessions dropped (same series in two XML files)\n", r.dup_sessions);
    if (r.unresolved_series)
        fprintf(stderr, "  %5d series with unresolved clustering (see warnings)\n", r.unresolved_series);
    skip_print(&r.series_skips, "series");
    skip_print(&r.xml_skips, "XML files");
    skip_print(&r.file_skips, "files");
    int failed = r.failed;
    dx_ingest_result_free(&r);
    return st ? 1 : (failed ? 3 : 0); /* st: the store failed and the run stopped (logged) */
}
