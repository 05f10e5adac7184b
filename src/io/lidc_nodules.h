/* lidc_nodules.h - LIDC reads placed on a CT volume: contour rasterisation,
 * clustering of the readers' marks into physical nodules, consensus masks and
 * the per-nodule table. Follows pylidc (Annotation.boolean_mask,
 * Scan.cluster_annotations, utils.consensus):
 *  - an "annotation" is one reader's unblindedReadNodule with characteristics
 *    (the >=3 mm class); ROIs with <=1 edgeMap point are stray marks, dropped;
 *  - ROI -> slice by imageSOP_UID, else the nearest slice z within half the
 *    slice spacing; unmatched ROIs are dropped and counted;
 *  - mask: pixel centres inside the closed edgeMap polygon (even-odd), each
 *    inclusion contour's own points removed, then inclusion=FALSE contours'
 *    insides and points removed;
 *  - distance between annotations: min Euclidean distance between their
 *    contour points in index space (row, col, slice) ('min', pylidc default)
 *    or between centroids; adjacency d <= tol, clusters = connected
 *    components; while a cluster is too big (> max_per_cluster, pylidc: 4) -
 *    or here also (one_per_reader) holds two marks of one reading session -
 *    tol *= factor, down to min_tol (then the last grouping is kept, flagged);
 *  - consensus voxel: fraction of the cluster's masks covering it >= clevel.
 * Index convention in this API: x = column, y = row, z = slice index k. */
#ifndef DX_LIDC_NODULES_H
#define DX_LIDC_NODULES_H

#include <stdint.h>

#include "core/dx_error.h"
#include "io/dx_volume.h"
#include "io/lidc.h"

typedef struct dx_lidc_contour {
    int k;               /* slice index in the volume */
    int inclusion;
    int npts;
    const dx_lidc_pt *pts; /* borrowed from the dx_lidc_read */
} dx_lidc_contour;

typedef struct dx_lidc_ann {
    int session, nodule;    /* indices into dx_lidc_read */
    int chars[DX_LIDC_NCHARS];
    int ncont;
    dx_lidc_contour *cont;  /* owned */
    double centroid[3];     /* mean contour point (x, y, k), pylidc Annotation.centroid */
    double diameter_mm;     /* largest in-slice point distance x pixel spacing */
    int bbox[6];            /* x0, x1, y0, y1, k0, k1 inclusive, of the contour points,
                             * clipped to the image */
} dx_lidc_ann;

typedef struct dx_lidc_map_stats {
    int n_sessions;
    int n_small;        /* <3 mm marks (no characteristics) */
    int n_nonnodule;
    int n_stray_rois;   /* ROIs with <= 1 point on a >=3 mm nodule */
    int n_unmatched;    /* ROIs / marks whose slice was not found */
    int n_empty_anns;   /* >=3 mm nodules left with no usable ROI (or wholly off the image) */
} dx_lidc_map_stats;

/* Slice index of (sop_uid, z): SOP UID first, then nearest z within
 * half the slice spacing; -1 if neither matches. */
int dx_lidc_find_slice(const dx_volume *v, const char *sop_uid, double z);

/* The >=3 mm annotations of r placed on v (only geometry, sop_uids and slice_z
 * of v are used; v->hu may be NULL). *anns is owned by the caller
 * (dx_lidc_anns_free). */
dx_status dx_lidc_map(const dx_lidc_read *r, const dx_volume *v, dx_lidc_ann **anns, int *nann,
                      dx_lidc_map_stats *stats, dx_err *err);
void dx_lidc_anns_free(dx_lidc_ann *anns, int nann);

/* Rasterises one annotation into mask[(k-bb[4])][(y-bb[2])][(x-bb[0])] over the
 * inclusive box bb (x0,x1,y0,y1,k0,k1), pylidc's boolean_mask convention
 * (contour points excluded unless include_contour). The box may be larger than
 * the annotation; pixels outside it are ignored. */
void dx_lidc_ann_mask(const dx_lidc_ann *a, const int bb[6], int include_contour, uint8_t *mask);

typedef enum { DX_LIDC_METRIC_MIN = 0, DX_LIDC_METRIC_CENTROID } dx_lidc_metric;

typedef struct dx_lidc_cluster_opts {
    dx_lidc_metric metric;
    double tol;          /* <= 0: the slice spacing in mm used as a voxel count (pylidc uses the
                          * DICOM SliceThickness; dinox ingest passes that when known) */
    double factor;       /* 0.9 */
    double min_tol;      /* 0.1 */
    int max_per_cluster; /* 4 */
    int one_per_reader;  /* 1: a cluster holds at most one mark per reading session */
    double clevel;       /* 0.5 */
} dx_lidc_cluster_opts;

void dx_lidc_cluster_opts_default(dx_lidc_cluster_opts *o);

/* cid[i] = cluster of annotation i, clusters numbered 0..*ncl-1 in increasing
 * mean centroid k. *unresolved = 1 if min_tol was reached without meeting the
 * size / reader rule. tol_used = the final tolerance. */
dx_status dx_lidc_cluster(const dx_lidc_ann *anns, int nann, const dx_lidc_cluster_opts *o, double tol,
                          int *cid, int *ncl, int *unresolved, double *tol_used, dx_err *err);

/* Consensus of the annotations idx[0..n-1]: bb = union of their boxes, mask
 * (allocated, [k][y][x] over bb) = voxels covered by >= clevel of the masks. */
dx_status dx_lidc_consensus(const dx_lidc_ann *anns, const int *idx, int n, double clevel, uint8_t **mask,
                            int bb[6], dx_err *err);

/* One row of the nodule table. */
typedef enum { DX_NOD_NODULE = 0, DX_NOD_SMALL = 1, DX_NOD_NONNODULE = 2 } dx_nodule_kind;

typedef struct dx_nodule_info {
    int kind;            /* dx_nodule_kind */
    int label;           /* value in the label volume (kind NODULE), else 0 */
    int n_readers;       /* annotations in the cluster (1 for SMALL / NONNODULE) */
    double malignancy;   /* median of the readers' ratings (0 if none) */
    double chars[DX_LIDC_NCHARS]; /* medians of all characteristics, 0 = not rated */
    double centroid_vox[3]; /* x, y, z(slice index): consensus centre of mass (or the mark) */
    double centroid_mm[3];  /* the same in patient coordinates (LPS, mm) */
    double diameter_mm;  /* median of the readers' pylidc diameters (0 for marks) */
    int64_t n_voxels;    /* consensus voxels */
    double volume_mm3;
} dx_nodule_info;

/* Everything for one series: clusters r's annotations on v, writes labels
 * [nz][ny][nx] (zeroed here; 1..n = nodule label, later clusters win overlaps)
 * and the table (owned by caller, free()): NODULE rows first (label order),
 * then SMALL and NONNODULE marks. labels may be NULL. */
dx_status dx_lidc_nodules_build(const dx_lidc_read *r, const dx_volume *v, const dx_lidc_cluster_opts *o,
                                uint8_t *labels, dx_nodule_info **table, int *nrows,
                                dx_lidc_map_stats *stats, int *unresolved, dx_err *err);

/* Voxel (x, y, k) -> patient mm through v's geometry. */
void dx_lidc_voxel_to_mm(const dx_volume *v, const double vox[3], double mm[3]);

#endif /* DX_LIDC_NODULES_H */
