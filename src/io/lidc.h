/* lidc.h - LIDC-IDRI reader annotations (LidcReadMessage XML) parsed via libxml2.
 *
 * One XML file holds the unblinded reads of one CT series: a ResponseHeader
 * (SeriesInstanceUid, StudyInstanceUID) and N readingSessions, each with the
 * reader's nodules (contours per slice) and non-nodules (one point).
 * Elements are matched on local names, so the default namespace
 * http://www.nih.gov, no namespace and any prefix all parse the same way. The
 * real files' quirks are handled: "Uid"/"UID" spelling (names compared without
 * case), surrounding whitespace, any child order, TRUE/true inclusion,
 * all-zero/blank characteristics (= none, a "<3 mm" nodule), free-text IDs.
 * CXR reads (IdriReadMessage) are rejected with DX_EUNSUPPORTED.
 *
 * Coordinates are kept as written: x = column, y = row, 0-based pixels. */
#ifndef DX_LIDC_H
#define DX_LIDC_H

#include <stddef.h>

#include "core/dx_error.h"
#include "io/dx_volume.h"

#define DX_LIDC_ID_MAX 64

/* Order of dx_lidc_nodule.chars[]; ratings are 1..5 (internalStructure 1..4,
 * calcification 1..6), 0 = not given. */
enum {
    DX_LIDC_SUBTLETY = 0,
    DX_LIDC_INTERNAL_STRUCTURE,
    DX_LIDC_CALCIFICATION,
    DX_LIDC_SPHERICITY,
    DX_LIDC_MARGIN,
    DX_LIDC_LOBULATION,
    DX_LIDC_SPICULATION,
    DX_LIDC_TEXTURE,
    DX_LIDC_MALIGNANCY,
    DX_LIDC_NCHARS
};
extern const char *const dx_lidc_char_names[DX_LIDC_NCHARS];

typedef struct { int x, y; } dx_lidc_pt; /* x = column, y = row */

typedef struct dx_lidc_roi {
    double z;                    /* imageZposition, mm; NAN if absent */
    char sop_uid[DX_UID_MAX];    /* imageSOP_UID, "" if absent */
    int inclusion;               /* 1 = region, 0 = hole to subtract */
    int npts;
    dx_lidc_pt *pts;             /* [npts] edgeMap chain, owned */
} dx_lidc_roi;

typedef struct dx_lidc_nodule {
    char id[DX_LIDC_ID_MAX];     /* noduleID: free text, meaningful only inside its session */
    int has_chars;               /* 1 if any characteristic is non-zero (the ">=3 mm" class) */
    int chars[DX_LIDC_NCHARS];
    int nroi;
    dx_lidc_roi *rois;           /* [nroi], owned */
} dx_lidc_nodule;

typedef struct dx_lidc_nonnodule {
    char id[DX_LIDC_ID_MAX];
    double z;
    char sop_uid[DX_UID_MAX];
    dx_lidc_pt locus;
} dx_lidc_nonnodule;

typedef struct dx_lidc_session {
    char reader_id[DX_LIDC_ID_MAX]; /* servicingRadiologistID (anonymised) */
    int nnod, nnon;
    dx_lidc_nodule *nodules;        /* [nnod], owned */
    dx_lidc_nonnodule *nonnodules;  /* [nnon], owned */
} dx_lidc_session;

typedef struct dx_lidc_read {
    char series_uid[DX_UID_MAX];
    char study_uid[DX_UID_MAX];
    int nsess;
    dx_lidc_session *sessions;      /* [nsess], owned */
} dx_lidc_read;

/* Parses one XML document from memory / a file. On failure *out is left
 * zeroed. A missing SeriesInstanceUid is DX_EFORMAT (the read cannot be placed). */
dx_status dx_lidc_parse_memory(dx_lidc_read *out, const char *buf, size_t len, dx_err *err);
dx_status dx_lidc_parse_file(dx_lidc_read *out, const char *path, dx_err *err);
void dx_lidc_read_free(dx_lidc_read *r);

/* Appends the sessions of src to dst (both for the same series: a series with
 * two XML files). src's sessions are moved and src is emptied. A session that
 * duplicates one already in dst (same reader ID and identical marks) is dropped
 * and counted in *n_dup (may be NULL). */
dx_status dx_lidc_merge(dx_lidc_read *dst, dx_lidc_read *src, int *n_dup, dx_err *err);

/* Quick sniff: 1 if the first 4 KiB of the file contain "LidcReadMessage". */
int dx_lidc_sniff_file(const char *path);

#endif /* DX_LIDC_H */
