/* radiomics.h - hand-crafted descriptors of one nodule from the store's native HU and
 * consensus mask: the classic comparator of a learned representation. If these add to
 * the diameter and the SSL features do not, the information is in the image and the
 * backbone misses it; if neither adds, the image (at this resolution) does not carry it.
 *
 * Over the voxels whose consensus label is the nodule's (native grid, no resampling):
 *   0 log_volume      ln(voxels x voxel volume in mm^3)
 *   1 mean_hu         mean HU
 *   2 sd_hu           standard deviation of HU (internal heterogeneity)
 *   3 p95_hu          95th percentile HU (calcification is benign)
 *   4 solid_fraction  share of voxels above -300 HU (solid vs ground-glass)
 *   5 sphericity      pi^(1/3) (6V)^(2/3) / A, A = the exposed voxel faces in mm^2
 *                     (1 for a ball in the limit, 0.806 for a cube, lower when lobulated)
 *   6 elongation      sqrt(smallest / largest eigenvalue) of the voxel positions' covariance
 *                     in mm (1 for a single voxel or an isotropic shape)
 *   7 edge_contrast   mean HU inside - mean HU of the face-adjacent voxels outside (margin)
 * These are first-order and shape features in the IBSI sense, not a full radiomics suite. */
#ifndef DX_EVAL_RADIOMICS_H
#define DX_EVAL_RADIOMICS_H

#include <stdint.h>

#include "core/dx_error.h"
#include "io/store.h"

#define DX_RADIOMICS_N 8

extern const char *const dx_radiomics_names[DX_RADIOMICS_N];

/* The descriptors of the voxels labelled `label` inside the box [x0, x1) x [y0, y1) x [z0, z1)
 * of a volume given as slice pointers hu[z], mask[z] ([ny][nx] each, z in [0, nz)); spacing
 * x, y, z in mm. Neighbours outside the box are read where they exist (edge contrast,
 * faces). n_found receives the voxel count. No voxel: DX_ENOTFOUND. */
dx_status dx_radiomics_box(const int16_t *const *hu, const uint8_t *const *mask, int nx, int ny, int nz,
                           const double spacing[3], int label, const int box[6], double out[DX_RADIOMICS_N],
                           int64_t *n_found, dx_err *err);

/* The descriptors of store row `row` (a nodule with a consensus label): a box around its
 * centroid of twice its diameter, widened to the whole volume when it holds fewer voxels
 * than the index counts for the nodule. */
dx_status dx_radiomics_nodule(const dx_store *s, int row, double out[DX_RADIOMICS_N], dx_err *err);

#endif /* DX_EVAL_RADIOMICS_H */
