/* ingest.c - see ingest.h. */
#include "io/ingest.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/dx_log.h"
#include "io/dx_dicom.h"
#include "io/lidc.h"
#include "io/store.h"

void dx_ingest_opts_default(dx_ingest_opts *o) {
    memset(o, 0, sizeof *o);
    dx_lidc_cluster_opts_default(&o->cluster);
}

static void skip_add(dx_ingest_skips *t, const char *reason, const char *path) {
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->r[i].reason, reason)) {
            t->r[i].count++;
            return;
        }
    if (t->n == t->cap) {
        int nc = t->cap ? 2 * t->cap : 16;
        dx_ingest_skip *p = realloc(t->r, (size_t)nc * sizeof *p);
        if (!p) return;
        t->r = p, t->cap = nc;
    }
    dx_ingest_skip *s = &t->r[t->n++];
    snprintf(s->reason, sizeof s->reason, "%s", reason);
    snprintf(s->example, sizeof s->example, "%s", path ? path : "");
    s->count = 1;
}

void dx_ingest_result_free(dx_ingest_result *res) {
    free(res->series_skips.r);
    free(res->xml_skips.r);
    free(res->file_skips.r);
    memset(res, 0, sizeof *res);
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

/* Loads one work item, clusters its reads and adds it to the store. Returns
 * DX_OK or the failing status (err set); *counted = 0 when the failure was
 * the load (the item is not reported to the progress callback). */
static dx_status ingest_one(const dx_ingest_opts *o, dx_ingest_result *res, dx_store_writer *w,
                            const dx_series_list *list, work_item *it, xml_entry *xmls, int xi, const char *key,
                            int *counted, dx_err *err) {
    dx_volume v;
    memset(&v, 0, sizeof v);
    dx_status st;
    const char *src;
    int flags = 0;
    *counted = 1;
    dx_lidc_cluster_opts sopt = o->cluster; /* per series: pylidc's tol is the scan's SliceThickness */
    if (it->kind == 0) {
        dx_series_report rep;
        memset(&rep, 0, sizeof rep);
        src = list->series[it->series].slices[0].path;
        st = dx_series_load(&list->series[it->series], &v, &rep, err);
        if (o->cluster.tol <= 0 && rep.slice_thickness > 0) sopt.tol = rep.slice_thickness;
        flags = (rep.n_gaps ? DX_STORE_FLAG_GAPS : 0) | (rep.nonuniform ? DX_STORE_FLAG_NONUNIFORM : 0) |
                (rep.n_duplicates ? DX_STORE_FLAG_DUPLICATES : 0);
        if (!st && (rep.n_gaps || rep.nonuniform || rep.n_duplicates))
            DX_WARN("series %s: %d gap(s), %d duplicate slice(s)%s (stored as is, flagged in the index)",
                    it->uid, rep.n_gaps, rep.n_duplicates, rep.nonuniform ? ", non-uniform spacing" : "");
    } else {
        src = it->path;
        st = dx_nifti_load(it->path, &v, err);
        if (!st) {
            snprintf(v.series_uid, sizeof v.series_uid, "%s", it->uid);
            if (!v.patient_id[0]) snprintf(v.patient_id, sizeof v.patient_id, "%s", it->uid);
        }
    }
    if (st) {
        char reason[200];
        snprintf(reason, sizeof reason, "%s", dx_status_name(err->code));
        skip_add(&res->series_skips, reason, src);
        DX_WARN("series %s not stored: %s", it->uid, err->msg);
        res->failed++;
        res->done++;
        *counted = 0;
        return st;
    }
    uint8_t *labels = NULL;
    dx_nodule_info *rows = NULL;
    int nrows = 0;
    if (xi >= 0) {
        labels = malloc((size_t)v.nx * v.ny * v.nz);
        int unresolved = 0;
        dx_lidc_map_stats ms;
        st = labels ? dx_lidc_nodules_build(&xmls[xi].read, &v, &sopt, labels, &rows, &nrows, &ms, &unresolved, err)
                    : dx_fail(err, DX_ENOMEM, "labels");
        if (!st) {
            if (ms.n_unmatched) DX_WARN("series %s: %d ROI(s)/marks match no slice (dropped)", it->uid, ms.n_unmatched);
            if (unresolved) {
                res->unresolved_series++;
                DX_WARN("series %s: clustering could not meet the per-nodule rule down to min tol", it->uid);
            }
            for (int r = 0; r < nrows; r++) res->n_nodules += rows[r].kind == DX_NOD_NODULE;
        }
    }
    if (!st) {
        snprintf(v.series_uid, sizeof v.series_uid, "%s", key);
        st = dx_store_writer_add(w, &v, labels, rows, nrows, flags, err);
    }
    if (st) {
        DX_ERROR("series %s: %s", it->uid, err->msg);
        skip_add(&res->series_skips, "write/annotation error", src);
        res->failed++;
    } else {
        res->added++;
        res->slices_done += v.nz;
    }
    free(labels);
    free(rows);
    dx_volume_free(&v);
    res->done++;
    return st;
}

dx_status dx_ingest_run(const dx_ingest_opts *o, dx_ingest_result *res, dx_err *err_out) {
    memset(res, 0, sizeof *res);
    dx_err err = {0};
    dx_status rc = DX_OK;
    dx_series_list list;
    if (dx_dicom_scan(o->root, &list, &err)) {
        dx_fail(err_out, err.code, "%s", err.msg);
        return err.code;
    }
    int nxml = 0, nnifti = 0, nw = 0, have_store = 0;
    dx_store_writer w;
    work_item *work = NULL;
    const char **niftis = calloc((size_t)list.n_skipped + 1, sizeof *niftis);
    xml_entry *xmls = calloc((size_t)list.n_skipped + 1, sizeof *xmls);
    if (!xmls || !niftis) {
        rc = dx_fail(&err, DX_ENOMEM, "out of memory");
        goto done;
    }
    /* the store may live inside the input tree: its own files are not input */
    char store_real[PATH_MAX] = "", file_real[PATH_MAX];
    if (realpath(o->out, store_real)) strncat(store_real, "/", sizeof store_real - strlen(store_real) - 1);
    /* Files the DICOM scan did not keep: LIDC XML, NIfTI, or truly skipped. */
    for (int i = 0; i < list.n_skipped; i++) {
        const char *p = list.skipped[i].path;
        if (store_real[0] && realpath(p, file_real) && !strncmp(file_real, store_real, strlen(store_real))) continue;
        if (ends_with(p, ".nii") || ends_with(p, ".nii.gz")) {
            niftis[nnifti++] = p;
            continue;
        }
        if (ends_with(p, ".xml") || dx_lidc_sniff_file(p)) {
            res->xml_files++;
            dx_lidc_read rd;
            if (dx_lidc_parse_file(&rd, p, &err)) {
                const char *m = err.code == DX_EUNSUPPORTED ? "not a CT read (IdriReadMessage)"
                                : !dx_lidc_sniff_file(p)     ? "XML but not LidcReadMessage"
                                                             : "malformed LIDC XML";
                skip_add(&res->xml_skips, m, p);
                if (o->verbose) DX_WARN("skip %s: %s", p, err.msg);
                continue;
            }
            int j = 0;
            while (j < nxml && strcmp(xmls[j].read.series_uid, rd.series_uid)) j++;
            if (j < nxml) { /* a second XML for the same series: merge its sessions */
                int nd = 0;
                if (dx_lidc_merge(&xmls[j].read, &rd, &nd, &err)) {
                    skip_add(&res->xml_skips, "merge failed", p);
                    dx_lidc_read_free(&rd);
                }
                res->dup_sessions += nd;
            } else {
                xmls[nxml].read = rd;
                snprintf(xmls[nxml].path, sizeof xmls[nxml].path, "%s", p);
                nxml++;
            }
            continue;
        }
        skip_add(&res->file_skips, list.skipped[i].reason, p);
        if (o->verbose) DX_INFO("skip %s: %s", p, list.skipped[i].reason);
    }

    /* Nothing to ingest: fail before the store is opened (opening creates it),
     * rather than leave a store without an index behind. */
    if (list.n_series + nnifti == 0) {
        res->empty_input = 1;
        rc = dx_fail(&err, DX_ENOTFOUND, "no DICOM series or NIfTI volumes found under %s", o->root);
        goto done;
    }
    if ((rc = dx_store_writer_open(&w, o->out, &err))) goto done;
    have_store = 1;

    int nwork = list.n_series + nnifti;
    work = calloc((size_t)nwork + 1, sizeof *work);
    if (!work) {
        rc = dx_fail(&err, DX_ENOMEM, "out of memory");
        goto done;
    }
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
    char key[DX_UID_MAX];
    for (int i = 0; i < nw; i++) {
        dx_store_writer_key(&w, work[i].patient_id, work[i].uid, key);
        res->todo += needs_work(&w, key, o->force, xml_index(xmls, nxml, work[i].uid) >= 0);
    }
    res->n_series = nw, res->n_dicom = list.n_series, res->n_nifti = nnifti, res->xml_series = nxml;
    res->ran = 1;
    if (o->progress) o->progress(res, NULL, o->progress_user);

    double t0 = now_s();
    for (int i = 0; i < nw; i++) {
        work_item *it = &work[i];
        int xi = xml_index(xmls, nxml, it->uid);
        if (xi >= 0) xmls[xi].used = 1;
        /* A UID another patient holds in the store gets its own key: both are kept. */
        int other = dx_store_writer_key(&w, it->patient_id, it->uid, key);
        if (!needs_work(&w, key, o->force, xi >= 0)) {
            res->already++;
            continue;
        }
        if (other >= 0)
            DX_WARN("SeriesInstanceUID %s is used by two patients: stored for PatientID '%s', now found for "
                    "PatientID '%s'; keeping both, this one as %s", it->uid, w.idx.series[other].patient_id,
                    it->patient_id, key);
        if (!o->force && dx_store_writer_has(&w, key))
            DX_INFO("series %s: stored without annotations, LIDC reads found now: re-ingesting", it->uid);
        int counted;
        dx_status st = ingest_one(o, res, &w, &list, it, xmls, xi, key, &counted, &err);
        if (!counted) continue;
        if (st && err.code == DX_EIO) rc = DX_EIO; /* the store itself is in trouble: stop */
        res->elapsed_s = now_s() - t0;
        if (o->progress) o->progress(res, it->uid, o->progress_user);
        if (rc) break;
    }
    for (int j = 0; j < nxml; j++)
        if (!xmls[j].used) skip_add(&res->xml_skips, "its series is not in the input", xmls[j].path);
    res->elapsed_s = now_s() - t0;
    res->store_series = w.idx.n_series;

done:
    if (have_store) dx_store_writer_close(&w);
    if (xmls)
        for (int j = 0; j < nxml; j++) dx_lidc_read_free(&xmls[j].read);
    free(xmls), free(niftis), free(work);
    dx_series_list_free(&list);
    if (rc) dx_fail(err_out, rc, "%s", err.msg);
    return rc;
}
