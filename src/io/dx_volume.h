/* dx_volume.h - a CT volume in Hounsfield units with its patient geometry.
 *
 * The common currency between the readers (DICOM series, NIfTI) and the
 * volume store. Voxels are int16 HU in (z, y, x) order, z ascending along the
 * slice normal, x fastest. Geometry follows DICOM patient coordinates (LPS, mm):
 * voxel (i=x, j=y, k=z) sits at origin + i*sx*row_dir + j*sy*col_dir + k*sz*normal,
 * with direction = {row_dir(3), col_dir(3), normal(3)} (the ImageOrientation
 * cosines and their cross product). */
#ifndef DX_VOLUME_H
#define DX_VOLUME_H

#include <stdint.h>

#include "core/dx_error.h"

#define DX_UID_MAX 65

/* HU values outside this range are clamped on ingest (documented in docs/data.md). */
#define DX_HU_MIN (-1024)
#define DX_HU_MAX 3071
/* Padding / outside-FOV voxels are stored as this value (mask them out). */
#define DX_HU_PAD (-1024)

typedef struct dx_volume {
    int nx, ny, nz;
    double spacing[3];    /* x (column), y (row), z (slice) in mm */
    double origin[3];     /* patient position of voxel (0,0,0), mm */
    double direction[9];  /* row_dir, col_dir, normal */
    int16_t *hu;          /* [nz][ny][nx], owned */
    char patient_id[DX_UID_MAX];
    char study_uid[DX_UID_MAX];
    char series_uid[DX_UID_MAX];
    /* Per slice (nz entries, owned, may be NULL for NIfTI): SOP Instance UID and
     * the slice's position along the normal (mm) - the keys LIDC XML uses. */
    char (*sop_uids)[DX_UID_MAX];
    double *slice_z;      /* ImagePositionPatient[2] of each slice (LIDC imageZposition) */
    double window_center, window_width; /* first values found, 0 if absent */
} dx_volume;

void dx_volume_free(dx_volume *v);

#endif /* DX_VOLUME_H */
