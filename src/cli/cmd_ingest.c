/* cmd_ingest.c - `dinox ingest ROOT --out STORE`: DICOM series (and NIfTI
 * files) under ROOT + LIDC XML reads -> the volume store.
 *
 * One pass: scan the tree (headers only), parse every LIDC XML and merge reads
 * per series, then for each series not yet in the store: load, cluster the
 * reads into nodules, write volume + consensus labels + rows and commit the
 * index. Each series commit is atomic, so an interrupted ingest leaves a
 * valid store and re-running continues where it stopped. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/dx_log.h"
#include "io/dx_dicom.h"
#include "io/lidc.h"
#include "io/lidc_nodules.h"
#include "io/store.h"

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

/* Skip reasons, counted with one example each (the summary). */
typedef struct {
    char reason[200];
    int count;
    char example[512];
} skip_reason;

typedef struct {
    skip_reason *r;
    int n, cap;
} skip_table;

static void skip_add(skip_table *t, const char *reason, const char *path) {
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->r[i].reason, reason)) {
            t->r[i].count++;
            return;
        }
    if (t->n == t->cap) {
        int nc = t->cap ? 2 * t->cap : 16;
        skip_reason *p = realloc(t->r, (size_t)nc * sizeof *p);
        if (!p) return;
        t->r = p, t->cap = nc;
    }
    skip_reason *s = &t->r[t->n++];
    snprintf(s->reason, sizeof s->reason, "%s", reason);
    snprintf(s->example, sizeof s->example, "%s", path ? path : "");
    s->count = 1;
}

static void skip_print(const skip_table *t, const char *what) {
    for (int i = 0; i < t->n; i++)
        fprintf(stderr, "  %5d %s skipped: %s (e.g. %s)\n", t->r[i].count, what, t->r[i].reason, t->r[i].example);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcasecmp(s + a - b, suf);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void fmt_dur(double s, char *buf, size_t n) {
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%lds", t);
}

/* Progress on stderr: a redrawn bar on a terminal, else one line per step. */
static void progress(int done, int total, long slices, double t0, int tty, const char *label) {
    double el = now_s() - t0;
    double eta = done ? el / done * (total - done) : 0;
    char e1[32], e2[32];
    fmt_dur(el, e1, sizeof e1);
    fmt_dur(eta, e2, sizeof e2);
    int w = 30, fill = total ? (int)((double)w * done / total) : w;
    char bar[40];
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = 0;
    double rate = el > 0 ? slices / el : 0;
    if (tty)
        fprintf(stderr, "\r[%s] %d/%d series  %.0f slices/s  elapsed %s  ETA %s ", bar, done, total, rate, e1, e2);
    else
        fprintf(stderr, "ingest: [%s] %d/%d series (%s)  %.0f slices/s  elapsed %s  ETA %s\n", bar, done, total,
                label, rate, e1, e2);
    fflush(stderr);
}

typedef struct {
    dx_lidc_read read;
    char path[512];
    int used;
} xml_entry;

typedef struct {
    int kind;          /* 0 DICOM series index, 1 NIfTI path */
    int series;
    const char *path;
    char uid[DX_UID_MAX];
    char patient_id[DX_UID_MAX];
} work_item;

/* 1 if the series must be (re)written: not stored yet, --force, or stored
 * without a mask while LIDC reads for it are now in the input. uid is the
 * store key (dx_store_writer_key). */
static int needs_work(const dx_store_writer *w, const char *uid, int force, int has_xml) {
    if (force) return 1;
    for (int i = 0; i < w->idx.n_series; i++)
        if (!strcmp(w->idx.series[i].series_uid, uid)) return has_xml && !w->idx.series[i].has_mask;
    return 1;
}

static int xml_index(const xml_entry *xmls, int nxml, const char *uid) {
    for (int j = 0; j < nxml; j++)
        if (!strcmp(xmls[j].read.series_uid, uid)) return j;
    return -1;
}

/* Series UID for a NIfTI file: its base name without extension. */
static void nifti_uid(const char *path, char *uid) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(uid, DX_UID_MAX, "%s", b);
    char *d = strstr(uid, ".nii");
    if (d) *d = 0;
}

int cmd_ingest(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        ingest_usage(stdout);
        return 0;
    }
    const char *out = NULL;
    int force = 0, no_progress = 0, verbose = 0;
    dx_lidc_cluster_opts copt;
    dx_lidc_cluster_opts_default(&copt);
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
        case O_OUT: out = optarg; break;
        case O_FORCE: force = 1; break;
        case O_METRIC:
            if (!strcmp(optarg, "min")) copt.metric = DX_LIDC_METRIC_MIN;
            else if (!strcmp(optarg, "centroid")) copt.metric = DX_LIDC_METRIC_CENTROID;
            else {
                fprintf(stderr, "ingest: --metric must be min or centroid\n");
                return 2;
            }
            break;
        case O_TOL: CLI_DOUBLE("ingest", copt.tol, 0, 1000); break;
        case O_MAXPN: CLI_INT("ingest", copt.max_per_cluster, 1, 1000); break;
        case O_SAME: copt.one_per_reader = 0; break;
        case O_CLEVEL:
            CLI_DOUBLE("ingest", copt.clevel, 1e-6, 1);
            break;
        case O_NOPROG: no_progress = 1; break;
        case 'v': verbose = 1; break;
        default: ingest_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1 || !out) {
        fprintf(stderr, "dinox ingest: %s\n\n",
                optind == argc ? "missing the input folder (DICOM tree or NIfTI files)"
                : optind < argc - 1 ? "one input folder only" : "missing --out STORE");
        ingest_usage(stderr);
        return 2;
    }
    const char *root = argv[optind];
    dx_err err = {0};
    dx_series_list list;
    if (dx_dicom_scan(root, &list, &err)) {
        fprintf(stderr, "ingest: %s\n", err.msg);
        return 1;
    }

    skip_table file_skips = {0}, series_skips = {0}, xml_skips = {0};
    xml_entry *xmls = NULL;
    int nxml = 0;
    const char **niftis = calloc((size_t)list.n_skipped + 1, sizeof *niftis);
    int nnifti = 0;
    xmls = calloc((size_t)list.n_skipped + 1, sizeof *xmls);
    if (!xmls || !niftis) {
        fprintf(stderr, "ingest: out of memory\n");
        return 1;
    }
    int xml_files = 0, dup_sessions = 0;
    /* the store may live inside the input tree: its own files are not input */
    char store_real[PATH_MAX] = "", file_real[PATH_MAX];
    if (realpath(out, store_real)) strncat(store_real, "/", sizeof store_real - strlen(store_real) - 1);
    /* Files the DICOM scan did not keep: LIDC XML, NIfTI, or truly skipped. */
    for (int i = 0; i < list.n_skipped; i++) {
        const char *p = list.skipped[i].path;
        if (store_real[0] && realpath(p, file_real) && !strncmp(file_real, store_real, strlen(store_real))) continue;
        if (ends_with(p, ".nii") || ends_with(p, ".nii.gz")) {
            niftis[nnifti++] = p;
            continue;
        }
        if (ends_with(p, ".xml") || dx_lidc_sniff_file(p)) {
            xml_files++;
            dx_lidc_read rd;
            if (dx_lidc_parse_file(&rd, p, &err)) {
                const char *m = err.code == DX_EUNSUPPORTED ? "not a CT read (IdriReadMessage)"
                                : !dx_lidc_sniff_file(p)     ? "XML but not LidcReadMessage"
                                                             : "malformed LIDC XML";
                skip_add(&xml_skips, m, p);
                if (verbose) DX_WARN("skip %s: %s", p, err.msg);
                continue;
            }
            int j = 0;
            while (j < nxml && strcmp(xmls[j].read.series_uid, rd.series_uid)) j++;
            if (j < nxml) { /* a second XML for the same series: merge its sessions */
                int nd = 0;
                if (dx_lidc_merge(&xmls[j].read, &rd, &nd, &err)) {
                    skip_add(&xml_skips, "merge failed", p);
                    dx_lidc_read_free(&rd);
                }
                dup_sessions += nd;
            } else {
                xmls[nxml].read = rd;
                snprintf(xmls[nxml].path, sizeof xmls[nxml].path, "%s", p);
                nxml++;
            }
            continue;
        }
        skip_add(&file_skips, list.skipped[i].reason, p);
        if (verbose) DX_INFO("skip %s: %s", p, list.skipped[i].reason);
    }

    /* Nothing to ingest: fail before the store is opened (opening creates it),
     * rather than leave a store without an index behind. */
    dx_store_writer w;
    int rc_open = 0;
    if (list.n_series + nnifti == 0) {
        fprintf(stderr, "ingest: no DICOM series or NIfTI volumes found under %s\n", root);
        skip_print(&xml_skips, "XML files");
        skip_print(&file_skips, "files");
        rc_open = 1;
    } else if (dx_store_writer_open(&w, out, &err)) {
        fprintf(stderr, "ingest: %s\n", err.msg);
        rc_open = 1;
    }
    if (rc_open) {
        for (int j = 0; j < nxml; j++) dx_lidc_read_free(&xmls[j].read);
        free(xmls), free(niftis);
        free(file_skips.r), free(xml_skips.r);
        dx_series_list_free(&list);
        return rc_open;
    }

    int nwork = list.n_series + nnifti;
    work_item *work = calloc((size_t)nwork + 1, sizeof *work);
    if (!work) {
        fprintf(stderr, "ingest: out of memory\n");
        return 1;
    }
    int nw = 0;
    for (int i = 0; i < list.n_series; i++) {
        work[nw].kind = 0, work[nw].series = i;
        snprintf(work[nw].uid, DX_UID_MAX, "%s", list.series[i].series_uid);
        snprintf(work[nw].patient_id, DX_UID_MAX, "%s", list.series[i].patient_id);
        nw++;
    }
    for (int i = 0; i < nnifti; i++) {
        work[nw].kind = 1, work[nw].path = niftis[i];
        nifti_uid(niftis[i], work[nw].uid);
        snprintf(work[nw].patient_id, DX_UID_MAX, "%s", work[nw].uid); /* no PatientID in NIfTI: stored as the name */
        nw++;
    }
    int todo = 0;
    char key[DX_UID_MAX];
    for (int i = 0; i < nw; i++) {
        dx_store_writer_key(&w, work[i].patient_id, work[i].uid, key);
        todo += needs_work(&w, key, force, xml_index(xmls, nxml, work[i].uid) >= 0);
    }
    fprintf(stderr, "ingest: %d series (%d DICOM, %d NIfTI), %d LIDC XML files for %d series; %d to add\n", nw,
            list.n_series, nnifti, xml_files, nxml, todo);

    int tty = !no_progress && isatty(2);
    double t0 = now_s();
    long slices_done = 0;
    int done = 0, added = 0, already = 0, failed = 0, n_nodules = 0, unresolved_series = 0;
    int rc = 0;
    for (int i = 0; i < nw; i++) {
        work_item *it = &work[i];
        int xi = xml_index(xmls, nxml, it->uid);
        if (xi >= 0) xmls[xi].used = 1;
        /* A UID another patient holds in the store gets its own key: both are kept. */
        int other = dx_store_writer_key(&w, it->patient_id, it->uid, key);
        if (!needs_work(&w, key, force, xi >= 0)) {
            already++;
            continue;
        }
        if (other >= 0)
            DX_WARN("SeriesInstanceUID %s is used by two patients: stored for PatientID '%s', now found for "
                    "PatientID '%s'; keeping both, this one as %s", it->uid, w.idx.series[other].patient_id,
                    it->patient_id, key);
        if (!force && dx_store_writer_has(&w, key))
            DX_INFO("series %s: stored without annotations, LIDC reads found now: re-ingesting", it->uid);
        dx_volume v;
        memset(&v, 0, sizeof v);
        dx_status st;
        const char *src;
        int flags = 0;
        dx_lidc_cluster_opts sopt = copt; /* per series: pylidc's tol is the scan's SliceThickness */
        if (it->kind == 0) {
            dx_series_report rep;
            memset(&rep, 0, sizeof rep);
            src = list.series[it->series].slices[0].path;
            st = dx_series_load(&list.series[it->series], &v, &rep, &err);
            if (copt.tol <= 0 && rep.slice_thickness > 0) sopt.tol = rep.slice_thickness;
            flags = (rep.n_gaps ? DX_STORE_FLAG_GAPS : 0) | (rep.nonuniform ? DX_STORE_FLAG_NONUNIFORM : 0) |
                    (rep.n_duplicates ? DX_STORE_FLAG_DUPLICATES : 0);
            if (!st && (rep.n_gaps || rep.nonuniform || rep.n_duplicates))
                DX_WARN("series %s: %d gap(s), %d duplicate slice(s)%s (stored as is, flagged in the index)",
                        it->uid, rep.n_gaps, rep.n_duplicates, rep.nonuniform ? ", non-uniform spacing" : "");
        } else {
            src = it->path;
            st = dx_nifti_load(it->path, &v, &err);
            if (!st) {
                snprintf(v.series_uid, sizeof v.series_uid, "%s", it->uid);
                if (!v.patient_id[0]) snprintf(v.patient_id, sizeof v.patient_id, "%s", it->uid);
            }
        }
        if (st) {
            char reason[200];
            snprintf(reason, sizeof reason, "%s", dx_status_name(err.code));
            skip_add(&series_skips, reason, src);
            DX_WARN("series %s not stored: %s", it->uid, err.msg);
            failed++;
            done++;
            continue;
        }
        uint8_t *labels = NULL;
        dx_nodule_info *rows = NULL;
        int nrows = 0;
        if (xi >= 0) {
            labels = malloc((size_t)v.nx * v.ny * v.nz);
            int unresolved = 0;
            dx_lidc_map_stats ms;
            st = labels ? dx_lidc_nodules_build(&xmls[xi].read, &v, &sopt, labels, &rows, &nrows, &ms, &unresolved,
                                                &err)
                        : dx_fail(&err, DX_ENOMEM, "labels");
            if (!st) {
                if (ms.n_unmatched) DX_WARN("series %s: %d ROI(s)/marks match no slice (dropped)", it->uid, ms.n_unmatched);
                if (unresolved) {
                    unresolved_series++;
                    DX_WARN("series %s: clustering could not meet the per-nodule rule down to min tol", it->uid);
                }
                for (int r = 0; r < nrows; r++) n_nodules += rows[r].kind == DX_NOD_NODULE;
            }
        }
        if (!st) {
            snprintf(v.series_uid, sizeof v.series_uid, "%s", key);
            st = dx_store_writer_add(&w, &v, labels, rows, nrows, flags, &err);
        }
        if (st) {
            DX_ERROR("series %s: %s", it->uid, err.msg);
            skip_add(&series_skips, "write/annotation error", src);
            failed++;
            if (err.code == DX_EIO) rc = 1; /* the store itself is in trouble: stop */
        } else {
            added++;
            slices_done += v.nz;
        }
        free(labels);
        free(rows);
        dx_volume_free(&v);
        done++;
        if (!no_progress) progress(done, todo, slices_done, t0, tty, it->uid);
        if (rc) break;
    }
    if (tty) fputc('\n', stderr);
    for (int j = 0; j < nxml; j++)
        if (!xmls[j].used) skip_add(&xml_skips, "its series is not in the input", xmls[j].path);

    double el = now_s() - t0;
    fprintf(stderr, "ingest: added %d series (%ld slices, %.1f s, %.0f slices/s), %d already stored, %d failed; "
                    "%d nodules; store now %d series\n",
            added, slices_done, el, el > 0 ? slices_done / el : 0.0, already, failed, n_nodules, w.idx.n_series);
    if (dup_sessions) fprintf(stderr, "  %5d duplicate reading sessions dropped (same series in two XML files)\n", dup_sessions);
    if (unresolved_series) fprintf(stderr, "  %5d series with unresolved clustering (see warnings)\n", unresolved_series);
    skip_print(&series_skips, "series");
    skip_print(&xml_skips, "XML files");
    skip_print(&file_skips, "files");

    for (int j = 0; j < nxml; j++) dx_lidc_read_free(&xmls[j].read);
    free(xmls), free(niftis), free(work);
    free(file_skips.r), free(series_skips.r), free(xml_skips.r);
    dx_series_list_free(&list);
    dx_store_writer_close(&w);
    return rc ? rc : (failed ? 3 : 0);
}
