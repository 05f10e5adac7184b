/* store_source.c - see store_source.h. */
#include "data/store_source.h"

static int n_series(void *ctx) { return ((const dx_store *)ctx)->n_series; }

static dx_status series_info(void *ctx, int series, int dims[3], double spacing[3], dx_err *err) {
    const dx_store *s = ctx;
    if (series < 0 || series >= s->n_series)
        return dx_fail(err, DX_EINVAL, "series %d out of range (store has %d)", series, s->n_series);
    const dx_store_series *in = dx_store_info(s, series);
    dims[0] = in->nx;
    dims[1] = in->ny;
    dims[2] = in->nz;
    for (int i = 0; i < 3; i++) spacing[i] = in->spacing[i];
    return DX_OK;
}

static dx_status read_stack(void *ctx, int series, int z, int offset, float *out, dx_err *err) {
    const dx_store *s = ctx;
    if (series < 0 || series >= s->n_series)
        return dx_fail(err, DX_EINVAL, "series %d out of range (store has %d)", series, s->n_series);
    const dx_store_series *in = dx_store_info(s, series);
    const size_t plane = (size_t)in->nx * in->ny;
    for (int c = 0; c < 3; c++) {
        int zz = z + (c - 1) * offset;
        zz = zz < 0 ? 0 : zz >= in->nz ? in->nz - 1 : zz; /* replicate at the volume ends */
        const int16_t *src = dx_store_slice(s, series, zz);
        if (!src) return dx_fail(err, DX_EINVAL, "series %d has no slice %d", series, zz);
        float *dst = out + c * plane;
        for (size_t i = 0; i < plane; i++) dst[i] = (float)src[i];
    }
    return DX_OK;
}

void dx_store_source_init(dx_slice_source *src, const dx_store *store) {
    src->ctx = (void *)store;
    src->n_series = n_series;
    src->series_info = series_info;
    src->read_stack = read_stack;
}
