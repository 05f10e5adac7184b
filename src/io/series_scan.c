/* series_scan.c - walks a directory tree, reads DICOM headers only, and groups
 * CT image files into series by (PatientID, StudyInstanceUID,
 * SeriesInstanceUID) read from the headers - never by folder or file name.
 * Files that are not kept are listed with the reason (dx_dicom_scan).
 * Links are followed, but every directory and file is visited once: the walk
 * keeps the (st_dev, st_ino) of what it has seen, so symlink loops end and a
 * slice reached through two names is read once. */
#include "io/dx_dicom.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/dx_log.h"

#define CT_IMAGE_STORAGE "1.2.840.10008.5.1.4.1.1.2"
#define ENHANCED_CT_STORAGE "1.2.840.10008.5.1.4.1.1.2.1"
#define MAX_DIR_DEPTH 64 /* a bound on recursion; loops are cut by the visited set */

typedef struct kept {
    dx_series_slice sl;
    char patient_id[DX_UID_MAX], study_uid[DX_UID_MAX], series_uid[DX_UID_MAX], ts[DX_UID_MAX];
} kept;

/* What identifies a directory or file whatever path (symlink, hard link)
 * reaches it. */
typedef struct file_id {
    dev_t dev;
    ino_t ino;
    int used;
} file_id;

typedef struct scan_state {
    file_id *seen; /* open-addressing hash set, cap_seen a power of two */
    size_t n_seen, cap_seen;
    kept *kept;
    int n_kept, cap_kept;
    dx_scan_skip *skipped;
    int n_skipped, cap_skipped;
} scan_state;

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static size_t id_hash(dev_t dev, ino_t ino, size_t cap) {
    uint64_t h = ((uint64_t)dev * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)ino * 0xC2B2AE3D27D4EB4Full);
    return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

/* 1 if sb's (dev, inode) is new (and is now recorded), 0 if seen before,
 * -1 if the set cannot grow. */
static int seen_add(scan_state *s, const struct stat *sb, dx_err *err) {
    if (2 * (s->n_seen + 1) > s->cap_seen) {
        size_t cap = s->cap_seen ? 2 * s->cap_seen : 256;
        file_id *t = calloc(cap, sizeof *t);
        if (!t) {
            dx_fail(err, DX_ENOMEM, "scan: visited set");
            return -1;
        }
        for (size_t i = 0; i < s->cap_seen; i++) {
            if (!s->seen[i].used) continue;
            size_t j = id_hash(s->seen[i].dev, s->seen[i].ino, cap);
            while (t[j].used) j = (j + 1) & (cap - 1);
            t[j] = s->seen[i];
        }
        free(s->seen);
        s->seen = t;
        s->cap_seen = cap;
    }
    size_t j = id_hash(sb->st_dev, sb->st_ino, s->cap_seen);
    for (; s->seen[j].used; j = (j + 1) & (s->cap_seen - 1))
        if (s->seen[j].dev == sb->st_dev && s->seen[j].ino == sb->st_ino) return 0;
    s->seen[j] = (file_id){sb->st_dev, sb->st_ino, 1};
    s->n_seen++;
    return 1;
}

static dx_status add_skip(scan_state *s, const char *path, const char *reason, const char *detail, dx_err *err) {
    if (s->n_skipped == s->cap_skipped) {
        int cap = s->cap_skipped ? 2 * s->cap_skipped : 16;
        dx_scan_skip *p = realloc(s->skipped, (size_t)cap * sizeof *p);
        if (!p) return dx_fail(err, DX_ENOMEM, "scan: skip list");
        s->skipped = p;
        s->cap_skipped = cap;
    }
    dx_scan_skip *k = &s->skipped[s->n_skipped];
    k->path = dup_str(path);
    if (!k->path) return dx_fail(err, DX_ENOMEM, "scan: skip list");
    snprintf(k->reason, sizeof k->reason, "%s", reason);
    snprintf(k->detail, sizeof k->detail, "%s", detail ? detail : "");
    s->n_skipped++;
    DX_DEBUG("dicom scan: skip %s: %s%s%s", path, reason, detail && detail[0] ? ": " : "", detail ? detail : "");
    return DX_OK;
}

/* Why f is not a CT slice we can stack (a category, plus detail in det), or
 * NULL if it is. */
static const char *reject_reason(const dx_dicom_file *f, char *buf, size_t cap, char *det, size_t dcap) {
    det[0] = 0;
    if (strcmp(f->modality, "CT") != 0) {
        snprintf(buf, cap, "Modality '%s' is not CT", f->modality);
        return buf;
    }
    if (f->sop_class_uid[0] && strcmp(f->sop_class_uid, CT_IMAGE_STORAGE) != 0) {
        snprintf(buf, cap, "SOP class %s is not CT Image Storage%s", f->sop_class_uid,
                 strcmp(f->sop_class_uid, ENHANCED_CT_STORAGE) == 0 ? " (Enhanced CT multi-frame unsupported)" : "");
        return buf;
    }
    if (strstr(f->image_type, "LOCALIZER")) {
        snprintf(det, dcap, "ImageType %s", f->image_type);
        return "LOCALIZER image";
    }
    if (!f->has_pixel_data) return "no PixelData";
    if (f->number_of_frames > 1) return "multi-frame image";
    if (!f->series_uid[0]) return "no SeriesInstanceUID";
    if (!f->has_ipp || !f->has_iop) return "no ImagePositionPatient/ImageOrientationPatient";
    const double *r = f->iop, *c = f->iop + 3;
    double nx = r[1] * c[2] - r[2] * c[1], ny = r[2] * c[0] - r[0] * c[2], nz = r[0] * c[1] - r[1] * c[0];
    double nn = sqrt(nx * nx + ny * ny + nz * nz);
    if (!(nn > 0.5)) return "degenerate ImageOrientationPatient";
    if (fabs(nz / nn) < 0.99) {
        snprintf(det, dcap, "normal %.3f %.3f %.3f", nx / nn, ny / nn, nz / nn);
        return "non-axial orientation";
    }
    return NULL;
}

static dx_status visit_file(scan_state *s, const char *path, dx_err *err) {
    dx_dicom_file f;
    dx_err e = {0};
    if (dx_dicom_read(&f, path, 0, &e) != DX_OK) {
        /* Drop the "path: " prefix the reader puts on its messages. */
        size_t pl = strlen(path);
        const char *m = strncmp(e.msg, path, pl) == 0 && e.msg[pl] == ':' ? e.msg + pl + 2 : e.msg;
        char cat[160];
        if (strncmp(m, "not a DICOM file", 16) == 0)
            snprintf(cat, sizeof cat, "not a DICOM file");
        else
            snprintf(cat, sizeof cat, "unreadable DICOM (%s)", dx_status_name(e.code));
        return add_skip(s, path, cat, m, err);
    }
    char buf[160], det[256];
    const char *why = reject_reason(&f, buf, sizeof buf, det, sizeof det);
    if (why) {
        dx_dicom_file_free(&f);
        return add_skip(s, path, why, det, err);
    }
    if (s->n_kept == s->cap_kept) {
        int cap = s->cap_kept ? 2 * s->cap_kept : 64;
        kept *p = realloc(s->kept, (size_t)cap * sizeof *p);
        if (!p) return dx_fail(err, DX_ENOMEM, "scan: slice list");
        s->kept = p;
        s->cap_kept = cap;
    }
    kept *k = &s->kept[s->n_kept];
    memset(k, 0, sizeof *k);
    k->sl.path = dup_str(path);
    if (!k->sl.path) return dx_fail(err, DX_ENOMEM, "scan: slice list");
    memcpy(k->sl.sop_uid, f.sop_instance_uid, DX_UID_MAX);
    memcpy(k->sl.ipp, f.ipp, sizeof f.ipp);
    memcpy(k->sl.iop, f.iop, sizeof f.iop);
    k->sl.instance_number = f.instance_number;
    memcpy(k->patient_id, f.patient_id, DX_UID_MAX);
    memcpy(k->study_uid, f.study_uid, DX_UID_MAX);
    memcpy(k->series_uid, f.series_uid, DX_UID_MAX);
    memcpy(k->ts, f.transfer_syntax, DX_UID_MAX);
    s->n_kept++;
    dx_dicom_file_free(&f);
    return DX_OK;
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static dx_status visit_dir(scan_state *s, const char *dir, int depth, dx_err *err) {
    if (depth > MAX_DIR_DEPTH) return add_skip(s, dir, "directory nesting deeper than 64 levels", NULL, err);
    DIR *d = opendir(dir);
    if (!d) return add_skip(s, dir, "cannot open directory", strerror(errno), err);
    /* Sorted names make the scan (and its skip list) reproducible. */
    char **names = NULL;
    int n = 0, cap = 0;
    dx_status st = DX_OK;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = realloc(names, (size_t)cap * sizeof *p);
            if (!p) {
                st = dx_fail(err, DX_ENOMEM, "scan: directory listing");
                break;
            }
            names = p;
        }
        if (!(names[n] = dup_str(de->d_name))) {
            st = dx_fail(err, DX_ENOMEM, "scan: directory listing");
            break;
        }
        n++;
    }
    closedir(d);
    if (!st && n > 1) qsort(names, (size_t)n, sizeof *names, cmp_name); /* names is NULL when empty */
    for (int i = 0; i < n && !st; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        char *path = malloc(len);
        if (!path) {
            st = dx_fail(err, DX_ENOMEM, "scan: path");
            break;
        }
        snprintf(path, len, "%s/%s", dir, names[i]);
        struct stat sb;
        int fresh = 1;
        if (stat(path, &sb) != 0)
            st = add_skip(s, path, "cannot stat", strerror(errno), err);
        else if ((S_ISDIR(sb.st_mode) || S_ISREG(sb.st_mode)) && (fresh = seen_add(s, &sb, err)) <= 0) {
            /* not a skip-list entry: ingest would take a listed .nii/.xml as input */
            if (fresh < 0) st = DX_ENOMEM;
            else DX_DEBUG("dicom scan: %s: already visited under another name", path);
        } else if (S_ISDIR(sb.st_mode))
            st = visit_dir(s, path, depth + 1, err);
        else if (S_ISREG(sb.st_mode))
            st = visit_file(s, path, err);
        free(path);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return st;
}

static int cmp_kept(const void *a, const void *b) {
    const kept *x = a, *y = b;
    int c = strcmp(x->patient_id, y->patient_id);
    if (!c) c = strcmp(x->study_uid, y->study_uid);
    if (!c) c = strcmp(x->series_uid, y->series_uid);
    if (!c) c = strcmp(x->sl.path, y->sl.path);
    return c;
}

static int same_series(const kept *x, const kept *y) {
    return !strcmp(x->patient_id, y->patient_id) && !strcmp(x->study_uid, y->study_uid) &&
           !strcmp(x->series_uid, y->series_uid);
}

dx_status dx_dicom_scan(const char *root, dx_series_list *out, dx_err *err) {
    if (!root || !out) return dx_fail(err, DX_EINVAL, "dx_dicom_scan: NULL argument");
    memset(out, 0, sizeof *out);
    struct stat sb;
    if (stat(root, &sb) != 0) return dx_fail(err, DX_EIO, "%s: %s", root, strerror(errno));
    scan_state s = {0};
    dx_status st = seen_add(&s, &sb, err) < 0      ? DX_ENOMEM
                   : S_ISDIR(sb.st_mode) ? visit_dir(&s, root, 0, err)
                                         : visit_file(&s, root, err);
    if (!st && s.n_kept) {
        qsort(s.kept, (size_t)s.n_kept, sizeof *s.kept, cmp_kept);
        int n_series = 1;
        for (int i = 1; i < s.n_kept; i++) n_series += !same_series(&s.kept[i - 1], &s.kept[i]);
        out->series = calloc((size_t)n_series, sizeof *out->series);
        if (!out->series) st = dx_fail(err, DX_ENOMEM, "scan: series list");
        for (int i = 0, j; !st && i < s.n_kept; i = j) {
            for (j = i + 1; j < s.n_kept && same_series(&s.kept[i], &s.kept[j]); j++) {}
            dx_series *se = &out->series[out->n_series];
            memcpy(se->patient_id, s.kept[i].patient_id, DX_UID_MAX);
            memcpy(se->study_uid, s.kept[i].study_uid, DX_UID_MAX);
            memcpy(se->series_uid, s.kept[i].series_uid, DX_UID_MAX);
            memcpy(se->transfer_syntax, s.kept[i].ts, DX_UID_MAX);
            se->slices = malloc((size_t)(j - i) * sizeof *se->slices);
            if (!se->slices) {
                st = dx_fail(err, DX_ENOMEM, "scan: series slices");
                break;
            }
            for (int k = i; k < j; k++) {
                se->slices[k - i] = s.kept[k].sl;
                s.kept[k].sl.path = NULL; /* ownership moved */
            }
            se->n_slices = j - i;
            out->n_series++;
        }
    }
    for (int i = 0; i < s.n_kept; i++) free(s.kept[i].sl.path);
    free(s.kept);
    free(s.seen);
    out->skipped = s.skipped;
    out->n_skipped = s.n_skipped;
    if (st) dx_series_list_free(out);
    return st;
}

void dx_series_list_free(dx_series_list *l) {
    if (!l) return;
    for (int i = 0; i < l->n_series; i++) {
        for (int k = 0; k < l->series[i].n_slices; k++) free(l->series[i].slices[k].path);
        free(l->series[i].slices);
    }
    free(l->series);
    for (int i = 0; i < l->n_skipped; i++) free(l->skipped[i].path);
    free(l->skipped);
    memset(l, 0, sizeof *l);
}
