/* crops.h - nodule-centred 2.5D crops from the volume store.
 *
 * Geometry: centre = the nodule's consensus centroid (x = column, y = row,
 * z = round(slice index)); side = max(min_side_mm, diam_mult * diameter) mm,
 * sampled on a size x size grid (pixel centres, bilinear in-plane, edge
 * clamped) - so every nodule appears at the same relative scale. Channels:
 * slices z-1, z, z+1 (2.5D, clamped at the ends) or the centre slice three
 * times; then a fixed window (HU -> [0,1]) and (x - mean) / std.
 * The mask crop is the nodule's own consensus label on the centre slice,
 * nearest-neighbour sampled on the same grid. */
#ifndef DX_EVAL_CROPS_H
#define DX_EVAL_CROPS_H

#include <stdint.h>

#include "core/dx_error.h"
#include "io/store.h"

typedef struct dx_crop_opts {
    int size;                   /* output side in pixels (multiple of the patch) */
    double min_side_mm;         /* 32 */
    double diam_mult;           /* 2 */
    float win_width, win_level; /* lung window 1500 / -600 */
    float norm_mean, norm_std;  /* 0.5 / 0.25 (config data.norm_*) */
    int stack25d;               /* 1: z-1, z, z+1; 0: centre slice x 3 */
} dx_crop_opts;

void dx_crop_opts_default(dx_crop_opts *o);

/* Crop of store row `row` (a nodule row). img [3, S, S] normalised; gray
 * [S, S] windowed centre channel in [0,1] (NULL = skip); mask [S, S] (NULL =
 * skip; zeros if the series has no mask). side_mm receives the crop side. */
dx_status dx_nodule_crop(const dx_store *s, int row, const dx_crop_opts *o, float *img, float *gray,
                         uint8_t *mask, double *side_mm, dx_err *err);

#endif /* DX_EVAL_CROPS_H */
