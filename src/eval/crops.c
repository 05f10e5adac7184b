/* crops.c - nodule-centred crops: geometry, 2.5D, window, mask (crops.h). */
#include "eval/crops.h"

#include <math.h>
#include <string.h>

#include "data/stack25d.h"

void dx_crop_opts_default(dx_crop_opts *o) {
    o->size = 96;
    o->min_side_mm = 32;
    o->diam_mult = 2;
    o->win_width = 1500;
    o->win_level = -600;
    o->norm_mean = 0.5f;
    o->norm_std = 0.25f;
    o->stack25d = 1;
}

/* Bilinear HU at (x, y) in pixel-centre index coordinates, edge clamped. */
static float sample(const int16_t *sl, int nx, int ny, double x, double y) {
    if (x < 0) x = 0;
    if (y < 0) y = 0;
    if (x > nx - 1) x = nx - 1;
    if (y > ny - 1) y = ny - 1;
    int x0 = (int)x, y0 = (int)y;
    int x1 = x0 + 1 < nx ? x0 + 1 : x0, y1 = y0 + 1 < ny ? y0 + 1 : y0;
    double fx = x - x0, fy = y - y0;
    return (float)((1 - fy) * ((1 - fx) * sl[(size_t)y0 * nx + x0] + fx * sl[(size_t)y0 * nx + x1]) +
                   fy * ((1 - fx) * sl[(size_t)y1 * nx + x0] + fx * sl[(size_t)y1 * nx + x1]));
}

dx_status dx_nodule_crop(const dx_store *s, int row, const dx_crop_opts *o, float *img, float *gray,
                         uint8_t *mask, double *side_mm, dx_err *err) {
    if (row < 0 || row >= s->idx.n_rows) return dx_fail(err, DX_EINVAL, "crop: row %d out of range", row);
    if (o->size <= 0 || !(o->win_width > 0) || !(o->norm_std > 0))
        return dx_fail(err, DX_EINVAL, "crop: size %d window %g std %g", o->size, o->win_width, o->norm_std);
    const dx_store_row *r = &s->idx.rows[row];
    const dx_store_series *se = dx_store_info(s, r->series);
    const int S = o->size, nx = se->nx, ny = se->ny;
    int z = (int)floor(r->info.centroid_vox[2] + 0.5);
    if (z < 0) z = 0;
    if (z > se->nz - 1) z = se->nz - 1;
    double side = fmax(o->min_side_mm, o->diam_mult * r->info.diameter_mm);
    if (side_mm) *side_mm = side;
    const int16_t *ch[3];
    dx_status st = dx_stack25d_ptrs(s, r->series, z, ch, err);
    if (st) return st;
    if (!o->stack25d) ch[0] = ch[2] = ch[1];
    const double cx = r->info.centroid_vox[0], cy = r->info.centroid_vox[1];
    const float lo = o->win_level - 0.5f * o->win_width;
    const uint8_t *ms = mask ? dx_store_mask_slice(s, r->series, z) : NULL;
    for (int i = 0; i < S; i++) {
        double y = cy + ((i + 0.5) / S - 0.5) * side / se->spacing[1];
        for (int j = 0; j < S; j++) {
            double x = cx + ((j + 0.5) / S - 0.5) * side / se->spacing[0];
            for (int c = 0; c < 3; c++) {
                float v = (sample(ch[c], nx, ny, x, y) - lo) / o->win_width;
                v = v < 0 ? 0 : v > 1 ? 1 : v;
                if (c == 1 && gray) gray[(size_t)i * S + j] = v;
                img[((size_t)c * S + i) * S + j] = (v - o->norm_mean) / o->norm_std;
            }
            if (mask) {
                int xi = (int)floor(x + 0.5), yi = (int)floor(y + 0.5);
                int in = ms && xi >= 0 && yi >= 0 && xi < nx && yi < ny;
                mask[(size_t)i * S + j] = in && r->info.label > 0 && ms[(size_t)yi * nx + xi] == r->info.label;
            }
        }
    }
    return DX_OK;
}
