/* store_write.c - write side of the volume store (see store.h).
 *
 * Crash safety: every file goes to "<name>.tmp.<pid>", is fsynced, renamed over
 * the final name, and the directory is fsynced. Data files first, then
 * nodules.csv, then index.dxs - so the index on disk only ever names complete
 * data files. An exclusive flock on STORE/.lock keeps two ingests apart. */
#include "core/dx_file.h"
#include "io/store.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the store maps int16 little-endian files directly; big-endian hosts need a byte-swapping reader"
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Writes data[0..len) to path atomically (temp + fsync + rename + dir fsync). */
static dx_status write_atomic(const char *path, const void *data, size_t len, dx_err *err) {
    const void *parts[1] = {data};
    return dx_atomic_write(path, parts, &len, 1, err);
}


/* Removes "*.tmp.*" leftovers of an interrupted writer in dir. */
static void remove_stale_tmp(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[4400];
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
}

dx_status dx_store_writer_open(dx_store_writer *w, const char *dir, dx_err *err) {
    memset(w, 0, sizeof *w);
    w->lock_fd = -1;
    char sub[4096];
    if (strlen(dir) > 3000) return dx_fail(err, DX_EINVAL, "store path too long");
    snprintf(sub, sizeof sub, "%s/series", dir);
    dx_status st = dx_mkdirs(sub, err);
    if (st) return st;
    char lock[4096];
    snprintf(lock, sizeof lock, "%s/.lock", dir);
    w->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (w->lock_fd < 0) return dx_fail(err, DX_EIO, "open %s: %s", lock, strerror(errno));
    if (flock(w->lock_fd, LOCK_EX | LOCK_NB)) {
        close(w->lock_fd);
        w->lock_fd = -1;
        return dx_fail(err, DX_EIO, "store %s is being written by another process", dir);
    }
    st = dx_store_index_read(&w->idx, dir, err);
    if (st == DX_ENOTFOUND) {
        dx_err_clear(err);
        memset(&w->idx, 0, sizeof w->idx);
    } else if (st) {
        close(w->lock_fd);
        w->lock_fd = -1;
        return dx_fail_prefix(err, "refusing to write into store with a bad index");
    }
    remove_stale_tmp(dir);
    remove_stale_tmp(sub);
    w->dir = strdup(dir);
    if (!w->dir) {
        dx_store_writer_close(w);
        return dx_fail(err, DX_ENOMEM, "store");
    }
    return DX_OK;
}

void dx_store_writer_close(dx_store_writer *w) {
    if (!w) return;
    if (w->lock_fd >= 0) close(w->lock_fd); /* releases the flock */
    dx_store_index_free(&w->idx);
    free(w->dir);
    memset(w, 0, sizeof *w);
    w->lock_fd = -1;
}

int dx_store_writer_has(const dx_store_writer *w, const char *series_uid) {
    for (int i = 0; i < w->idx.n_series; i++)
        if (!strcmp(w->idx.series[i].series_uid, series_uid)) return 1;
    return 0;
}

#define KEY_UID_CHARS 47 /* + '#' + 16 hex digits = DX_UID_MAX - 1 */

int dx_store_writer_key(const dx_store_writer *w, const char *patient_id, const char *series_uid,
                        char key[DX_UID_MAX]) {
    int other = -1;
    for (int i = 0; i < w->idx.n_series; i++) {
        const dx_store_series *s = &w->idx.series[i];
        if (strcmp(s->series_uid, series_uid)) continue;
        if (!strcmp(s->patient_id, patient_id)) other = -1; /* stored for this patient: plain key */
        else other = i;
        break; /* series UIDs are unique in an index */
    }
    if (other < 0) {
        snprintf(key, DX_UID_MAX, "%s", series_uid);
        return -1;
    }
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)series_uid; *p; p++) h = (h ^ *p) * 1099511628211ull;
    h *= 1099511628211ull; /* the NUL between the two strings */
    for (const unsigned char *p = (const unsigned char *)patient_id; *p; p++) h = (h ^ *p) * 1099511628211ull;
    snprintf(key, DX_UID_MAX, "%.*s#%016llx", KEY_UID_CHARS, series_uid, (unsigned long long)h);
    return other;
}

/* New index = old minus any entry for v's UID, plus v's record and rows. */
static dx_status build_index(const dx_store_index *old, const dx_store_series *rec, const dx_nodule_info *rows,
                             int nrows, dx_store_index *out, dx_err *err) {
    memset(out, 0, sizeof *out);
    out->series = calloc((size_t)old->n_series + 1, sizeof *out->series);
    out->rows = calloc((size_t)old->n_rows + nrows + 1, sizeof *out->rows);
    if (!out->series || !out->rows) {
        dx_store_index_free(out);
        return dx_fail(err, DX_ENOMEM, "index");
    }
    for (int i = 0; i < old->n_series; i++) {
        const dx_store_series *s = &old->series[i];
        if (!strcmp(s->series_uid, rec->series_uid)) continue;
        dx_store_series *d = &out->series[out->n_series];
        *d = *s;
        d->first_row = out->n_rows;
        for (int r = 0; r < s->n_rows; r++) {
            out->rows[out->n_rows] = old->rows[s->first_row + r];
            out->rows[out->n_rows++].series = out->n_series;
        }
        out->n_series++;
    }
    dx_store_series *d = &out->series[out->n_series];
    *d = *rec;
    d->first_row = out->n_rows;
    d->n_rows = nrows;
    d->n_nodules = 0;
    for (int r = 0; r < nrows; r++) {
        out->rows[out->n_rows].series = out->n_series;
        out->rows[out->n_rows++].info = rows[r];
        d->n_nodules += rows[r].kind == DX_NOD_NODULE;
    }
    out->n_series++;
    return DX_OK;
}

dx_status dx_store_writer_add(dx_store_writer *w, const dx_volume *v, const uint8_t *labels,
                              const dx_nodule_info *rows, int nrows, int flags, dx_err *err) {
    if (!v->hu || v->nx < 1 || v->ny < 1 || v->nz < 1 || v->nx > DX_STORE_MAX_DIM || v->ny > DX_STORE_MAX_DIM ||
        v->nz > DX_STORE_MAX_DIM)
        return dx_fail(err, DX_EINVAL, "volume %s: bad dimensions %d x %d x %d", v->series_uid, v->nx, v->ny, v->nz);
    if (!v->series_uid[0]) return dx_fail(err, DX_EINVAL, "volume without a series UID");
    if (!(v->spacing[0] > 0 && v->spacing[1] > 0 && v->spacing[2] > 0))
        return dx_fail(err, DX_EINVAL, "volume %s: spacing must be > 0", v->series_uid);
    dx_store_series rec;
    memset(&rec, 0, sizeof rec);
    snprintf(rec.patient_id, sizeof rec.patient_id, "%s", v->patient_id);
    snprintf(rec.study_uid, sizeof rec.study_uid, "%s", v->study_uid);
    snprintf(rec.series_uid, sizeof rec.series_uid, "%s", v->series_uid);
    dx_store_stem(v->series_uid, rec.stem);
    for (int i = 0; i < w->idx.n_series; i++)
        if (!strcmp(w->idx.series[i].stem, rec.stem) && strcmp(w->idx.series[i].series_uid, v->series_uid))
            return dx_fail(err, DX_EFORMAT, "series %s and %s hash to the same file stem %s",
                           w->idx.series[i].series_uid, v->series_uid, rec.stem);
    rec.nx = v->nx, rec.ny = v->ny, rec.nz = v->nz;
    rec.has_mask = labels != NULL;
    rec.flags = flags & (DX_STORE_FLAG_GAPS | DX_STORE_FLAG_NONUNIFORM | DX_STORE_FLAG_DUPLICATES);
    memcpy(rec.spacing, v->spacing, sizeof rec.spacing);
    memcpy(rec.origin, v->origin, sizeof rec.origin);
    memcpy(rec.direction, v->direction, sizeof rec.direction);
    rec.window_center = v->window_center;
    rec.window_width = v->window_width;

    size_t vox = (size_t)v->nx * v->ny * v->nz;
    char sub[4096], path[4200];
    snprintf(sub, sizeof sub, "%s/series", w->dir);
    /* the .hu file is the in-memory array as is: int16 little-endian (x86/ARM hosts) */
    snprintf(path, sizeof path, "%s/%s.hu", sub, rec.stem);
    dx_status st = write_atomic(path, v->hu, vox * sizeof(int16_t), err);
    if (st) return st;
    snprintf(path, sizeof path, "%s/%s.mask", sub, rec.stem);
    if (labels) {
        if ((st = write_atomic(path, labels, vox, err))) return st;
    } else {
        unlink(path); /* a replaced entry may have had one */
    }

    dx_store_index nidx;
    if ((st = build_index(&w->idx, &rec, rows, nrows, &nidx, err))) return st;
    /* nodules.csv before the index: the CSV may run ahead of the index after a
     * crash, never behind it */
    char *csv = NULL;
    size_t csv_len = 0;
    FILE *mf = open_memstream(&csv, &csv_len);
    if (!mf) {
        dx_store_index_free(&nidx);
        return dx_fail(err, DX_ENOMEM, "csv buffer");
    }
    st = dx_store_write_csv(&nidx, mf, err);
    fclose(mf);
    if (!st) {
        snprintf(path, sizeof path, "%s/nodules.csv", w->dir);
        st = write_atomic(path, csv, csv_len, err);
    }
    free(csv);
    void *buf = NULL;
    size_t len = 0;
    if (!st) st = dx_store_index_encode(&nidx, &buf, &len, err);
    if (!st) {
        snprintf(path, sizeof path, "%s/index.dxs", w->dir);
        st = write_atomic(path, buf, len, err);
    }
    free(buf);
    if (st) {
        dx_store_index_free(&nidx);
        return st;
    }
    dx_store_index_free(&w->idx);
    w->idx = nidx;
    return DX_OK;
}
