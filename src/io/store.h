/* store.h - the volume store: a directory of memory-mappable CT volumes.
 *
 *   STORE/index.dxs           binary index (header + series records + nodule
 *                             rows, CRC-32 checked), replaced atomically last
 *   STORE/nodules.csv         the nodule table as CSV (rewritten with the index)
 *   STORE/series/<h>.hu       int16 HU, raw little-endian [nz][ny][nx], z ascending
 *   STORE/series/<h>.mask     uint8 consensus labels [nz][ny][nx] (0 = none,
 *                             n = nodule row with label n of that series)
 * <h> = 16 hex digits of FNV-1a-64(SeriesInstanceUID). Byte layout:
 * docs/data.md. Readers mmap every data file at open, so (series, z) -> slice
 * pointer is O(1) and touches only that slice's pages.
 *
 * Writers (store_write.c) put each data file in place by temp + fsync +
 * rename, then rewrite the index the same way; a crash leaves the previous
 * index valid (at worst an orphan data file, overwritten by the next ingest). */
#ifndef DX_STORE_H
#define DX_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/dx_error.h"
#include "io/dx_volume.h"
#include "io/lidc_nodules.h"

#define DX_STORE_MAGIC "DXSTORE"
#define DX_STORE_VERSION 1
#define DX_STORE_HEADER_BYTES 64
#define DX_STORE_SERIES_BYTES 400
#define DX_STORE_ROW_BYTES 168
#define DX_STORE_STEM_MAX 24
#define DX_STORE_MAX_DIM 65536

/* Series flags. The store keeps one z spacing (the median step); a series with
 * gaps or uneven steps is stored as is and flagged, so a LUNA16-style filter
 * (drop gaps / non-uniform spacing) can run on the index. */
#define DX_STORE_FLAG_GAPS 1        /* a step > 1.5 x the median */
#define DX_STORE_FLAG_NONUNIFORM 2  /* steps differ from the median by > 1% + 0.01 mm */
#define DX_STORE_FLAG_DUPLICATES 4  /* slices at a repeated position were dropped */

typedef struct dx_store_series {
    char patient_id[DX_UID_MAX];
    char study_uid[DX_UID_MAX];
    char series_uid[DX_UID_MAX];
    char stem[DX_STORE_STEM_MAX]; /* data file stem under series/ */
    int nx, ny, nz;
    int has_mask;
    int n_nodules;                /* rows of kind DX_NOD_NODULE */
    int first_row, n_rows;        /* this series' rows in the table */
    int flags;                    /* DX_STORE_FLAG_*: what the slice stacking found */
    double spacing[3];            /* x, y, z mm (z = median slice step) */
    double origin[3];             /* LPS mm of voxel (0,0,0) */
    double direction[9];          /* row_dir, col_dir, normal */
    double window_center, window_width;
} dx_store_series;

typedef struct dx_store_row {
    int series;                   /* index into the store's series */
    dx_nodule_info info;
} dx_store_row;

/* Decoded index (no data files). */
typedef struct dx_store_index {
    int n_series;
    dx_store_series *series;      /* owned */
    int n_rows;
    dx_store_row *rows;           /* owned */
} dx_store_index;

/* Validates and decodes an index image (what the fuzzer drives): magic,
 * version, sizes, both CRCs, NUL-terminated strings, dimensions, finite
 * positive spacing, row ranges, unique series UIDs and stems. */
dx_status dx_store_index_decode(dx_store_index *out, const void *buf, size_t len, dx_err *err);
/* Encodes idx into a malloc'd buffer of *len bytes. */
dx_status dx_store_index_encode(const dx_store_index *idx, void **buf, size_t *len, dx_err *err);
/* Reads STORE/index.dxs; a store without an index yet is DX_ENOTFOUND. */
dx_status dx_store_index_read(dx_store_index *out, const char *dir, dx_err *err);
void dx_store_index_free(dx_store_index *idx);

/* The stem of a series UID (16 lowercase hex digits + NUL). */
void dx_store_stem(const char *series_uid, char stem[DX_STORE_STEM_MAX]);

typedef struct dx_store {
    char *dir;
    dx_store_index idx;
    int n_series;                 /* = idx.n_series */
    const int16_t **hu;           /* [n_series] mapped [nz][ny][nx] */
    const uint8_t **mask;         /* [n_series] mapped labels, NULL if none */
    size_t *hu_bytes, *mask_bytes;
} dx_store;

/* Opens a store read-only: decodes the index and maps every data file,
 * checking each file's size against its record. */
dx_status dx_store_open(dx_store *s, const char *dir, dx_err *err);
void dx_store_close(dx_store *s);

static inline const dx_store_series *dx_store_info(const dx_store *s, int series) {
    return &s->idx.series[series];
}
/* Index of the series with this UID, -1 if absent. */
int dx_store_find(const dx_store *s, const char *series_uid);
/* Pointer to slice z of a series ([ny][nx] int16 HU), NULL if out of range. */
const int16_t *dx_store_slice(const dx_store *s, int series, int z);
/* Pointer to the label slice, NULL if out of range or the series has no mask. */
const uint8_t *dx_store_mask_slice(const dx_store *s, int series, int z);

/* The nodule table as CSV (header + one line per row). */
dx_status dx_store_write_csv(const dx_store_index *idx, FILE *f, dx_err *err);

/* ---- writing (store_write.c) ------------------------------------------- */

typedef struct dx_store_writer {
    char *dir;
    int lock_fd;
    dx_store_index idx;           /* what is committed so far */
} dx_store_writer;

/* Creates dir (and series/) if needed, takes an exclusive lock
 * (STORE/.lock, a second concurrent writer fails), removes stale temp files and
 * loads the existing index. A corrupt index is an error (never overwritten). */
dx_status dx_store_writer_open(dx_store_writer *w, const char *dir, dx_err *err);
int dx_store_writer_has(const dx_store_writer *w, const char *series_uid);
/* The key (the series_uid to store under) for the series series_uid of
 * patient_id: series_uid itself, unless the store holds that UID for another
 * PatientID; then "<series_uid, cut to 47 chars>#<16 hex digits of FNV-1a-64
 * of series_uid NUL patient_id>", so two patients sharing a UID never replace
 * each other. Returns the index of the entry of the other patient on such a
 * clash, else -1. The same (patient, UID) always gets the same key. */
int dx_store_writer_key(const dx_store_writer *w, const char *patient_id, const char *series_uid,
                        char key[DX_UID_MAX]);
/* Writes v (its hu, geometry and IDs), labels ([nz][ny][nx] or NULL) and the
 * series' nodule rows (flags: DX_STORE_FLAG_*), then commits a new index (and nodules.csv). Replaces
 * an existing entry with the same series UID. */
dx_status dx_store_writer_add(dx_store_writer *w, const dx_volume *v, const uint8_t *labels,
                              const dx_nodule_info *rows, int nrows, int flags, dx_err *err);
void dx_store_writer_close(dx_store_writer *w);

#endif /* DX_STORE_H */
