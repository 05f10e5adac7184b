/* stack25d.c - 2.5D (z-1, z, z+1) stacks from the volume store (see stack25d.h). */
#include "data/stack25d.h"

#include <string.h>

dx_status dx_stack25d_ptrs(const dx_store *s, int series, int z, const int16_t *ch[3], dx_err *err) {
    if (series < 0 || series >= s->n_series)
        return dx_fail(err, DX_EINVAL, "series %d out of range [0, %d)", series, s->n_series);
    int nz = dx_store_info(s, series)->nz;
    if (z < 0 || z >= nz) return dx_fail(err, DX_EINVAL, "slice %d out of range [0, %d)", z, nz);
    for (int c = 0; c < 3; c++) {
        int k = z + c - 1;
        k = k < 0 ? 0 : k >= nz ? nz - 1 : k; /* clamp: edge slices repeat */
        ch[c] = dx_store_slice(s, series, k);
    }
    return DX_OK;
}

dx_status dx_stack25d_copy(const dx_store *s, int series, int z, int16_t *out, dx_err *err) {
    const int16_t *ch[3];
    dx_status st = dx_stack25d_ptrs(s, series, z, ch, err);
    if (st) return st;
    const dx_store_series *r = dx_store_info(s, series);
    size_t plane = (size_t)r->nx * r->ny;
    for (int c = 0; c < 3; c++) memcpy(out + c * plane, ch[c], plane * sizeof(int16_t));
    return DX_OK;
}

double dx_stack25d_spacing(const dx_store *s, int series) {
    if (series < 0 || series >= s->n_series) return 0;
    return dx_store_info(s, series)->spacing[2];
}
