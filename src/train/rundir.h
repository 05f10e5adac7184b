/* rundir.h - the run directory of `dinox train`: RUN_DIR/config.yaml (the
 * resolved config), RUN_DIR/metrics.jsonl (one JSON object per logged step),
 * RUN_DIR/events.out.tfevents.* (TensorBoard scalars, same names as the
 * JSONL keys), checkpoints under RUN_DIR/checkpoints/ (checkpoint.h), and
 * the one-line progress formatter. */
#ifndef DX_RUNDIR_H
#define DX_RUNDIR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/dx_error.h"
#include "core/dx_file.h" /* dx_mkdirs */
#include "train/config.h"
#include "train/tbevents.h"

typedef struct dx_metric {
    const char *name; /* "loss/dino", "lr", "img_per_s", ... ('/' groups in TensorBoard) */
    double value;
} dx_metric;

typedef struct dx_rundir {
    char path[1024];
    char ckpt_dir[1100];
    FILE *metrics;
    dx_tb_writer tb;
    int lock_fd;      /* RUN_DIR/.lock, flock()ed for the life of the run; -1 = none */
} dx_rundir;

/* A new run may only start in a directory that does not exist or is empty
 * (a stale .lock aside): an existing run is never overwritten or mixed with
 * a new one; it is continued with --resume. Read-only, so that a command can
 * refuse before it writes anything. */
dx_status dx_rundir_check_new(const char *path, dx_err *err);

/* Creates path (and parents), takes its lock (a second training on the same
 * directory is refused, naming the holder's pid), checks a new run's
 * directory again under the lock (dx_rundir_check_new), creates
 * path/checkpoints, writes config.yaml (when cfg is non-NULL; on resume the
 * existing file is kept as config.yaml and a differing new one is written
 * as config.resume.yaml), opens metrics.jsonl for appending and a new
 * TensorBoard event file. */
dx_status dx_rundir_open(dx_rundir *rd, const char *path, const dx_config *cfg, int resume, dx_err *err);
/* Appends {"step": step, "time": unix seconds, name: value, ...,
 * "mem/rss_mb": resident MB, "mem/rss_file_mb": its file-backed part} to metrics.jsonl (non-finite values as null)
 * and the finite caller values to the event file; both are flushed. */
dx_status dx_rundir_log(dx_rundir *rd, int64_t step, const dx_metric *m, int n, dx_err *err);
void dx_rundir_close(dx_rundir *rd);


/* Resident set size of this process in bytes (/proc/self/statm), 0 if unknown. */
size_t dx_rss_bytes(void);
/* The part of it that is file-backed or shared (statm's third field): chiefly
 * the memory-mapped store's pages, which the kernel can drop at any time,
 * unlike the process's own (anonymous) memory. 0 if unknown. */
size_t dx_rss_file_bytes(void);

typedef struct dx_progress {
    int64_t step, total;      /* step just finished (0-based) and total steps */
    double elapsed_s;         /* since this process started training */
    int64_t start_step;       /* first step of this process (resume), for the ETA rate */
    double img_per_s;
    double lr;
    const dx_metric *terms;   /* loss terms to show */
    int n_terms;
    size_t rss_bytes;         /* 0 = read /proc/self/statm (and rss_file_bytes with it) */
    size_t rss_file_bytes;    /* file-backed part of rss_bytes when that is given */
    int64_t stop_at;          /* > 0: the run stops at this step (--stop-at): the ETA counts to it */
} dx_progress;

/* "step 119 (120/300 done, 40.0%) | loss 8.123 dino 4.100 | lr 2.30e-04 |
 * 58.1 img/s | ETA 0:03:05 | RSS 412 MB" into buf; returns buf. The step is
 * the 0-based index metrics.jsonl and TensorBoard log; with stop_at the ETA
 * reads "ETA 0:01:00 to step N (--stop-at)". RSS in MB (10^6 bytes), as
 * perf/rss_mb and mem/rss_mb. */
const char *dx_progress_format(char *buf, size_t len, const dx_progress *p);

#endif /* DX_RUNDIR_H */
