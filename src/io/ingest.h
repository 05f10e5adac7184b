/* ingest.h - DICOM series (and NIfTI files) under a root + LIDC XML reads ->
 * the volume store (`dinox ingest`).
 *
 * One pass: scan the tree (headers only), parse every LIDC XML and merge reads
 * per series, then for each series not yet in the store: load, cluster the
 * reads into nodules, write volume + consensus labels + rows and commit the
 * index. Each series commit is atomic, so an interrupted ingest leaves a
 * valid store and re-running continues where it stopped.
 *
 * The library prints nothing itself except log lines (dx_log: per-series
 * warnings, skipped files with verbose); counts, skip reasons and progress
 * come back in dx_ingest_result and through the progress callback. */
#ifndef DX_INGEST_H
#define DX_INGEST_H

#include "core/dx_error.h"
#include "io/lidc_nodules.h"

/* Skip reasons, counted with one example path each. */
typedef struct dx_ingest_skip {
    char reason[200];
    int count;
    char example[512];
} dx_ingest_skip;

typedef struct dx_ingest_skips {
    dx_ingest_skip *r;
    int n, cap;
} dx_ingest_skips;

typedef struct dx_ingest_result {
    /* the plan, known before the first series is written */
    int n_series;   /* DICOM series + NIfTI volumes in the input */
    int n_dicom, n_nifti;
    int xml_files;  /* LIDC XML files seen */
    int xml_series; /* series those reads are for */
    int todo;       /* series to (re)write */
    /* progress and outcome */
    int done, added, already, failed;
    long slices_done;
    int n_nodules, unresolved_series, dup_sessions;
    double elapsed_s;  /* since the plan was made */
    int store_series;  /* series in the store at the end */
    int ran;           /* 1 once the loop over series started: the counts above are a summary */
    int empty_input;   /* 1: no DICOM series nor NIfTI volume in the input (DX_ENOTFOUND) */
    dx_ingest_skips series_skips, xml_skips, file_skips;
} dx_ingest_result;

struct dx_ingest_opts;
/* Called once with label NULL when the plan is made (r->todo etc. set), then
 * after each series written (or failed to write) with its UID. */
typedef void (*dx_ingest_progress_fn)(const dx_ingest_result *r, const char *label, void *user);

typedef struct dx_ingest_opts {
    const char *root;  /* input folder */
    const char *out;   /* store directory (created if missing) */
    int force;         /* re-ingest stored series */
    int verbose;       /* log each skipped file */
    dx_lidc_cluster_opts cluster;
    dx_ingest_progress_fn progress; /* may be NULL */
    void *progress_user;
} dx_ingest_opts;

/* Defaults: pylidc clustering (dx_lidc_cluster_opts_default), no callback. */
void dx_ingest_opts_default(dx_ingest_opts *o);

/* Runs the ingest. res is filled in every case (free it with
 * dx_ingest_result_free). DX_OK: every series was looked at; res->failed
 * counts the ones that could not be stored. An error with res->ran == 0: the
 * input could not be scanned, held nothing to ingest (DX_ENOTFOUND;
 * res->empty_input; res->xml_skips / file_skips say what was skipped) or
 * the store could not be opened; nothing was written. An error with res->ran == 1: the store
 * itself failed (DX_EIO) and the run stopped; res is the summary so far. */
dx_status dx_ingest_run(const dx_ingest_opts *o, dx_ingest_result *res, dx_err *err);
void dx_ingest_result_free(dx_ingest_result *res);

#endif /* DX_INGEST_H */
