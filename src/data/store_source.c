/* store_source.c - see store_source.h. */
#include "data/store_source.h"

#include <stdlib.h>

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

dx_status dx_store_focus_points(const dx_store *store, dx_focus_point **out, int *n, dx_err *err) {
    *out = NULL, *n = 0;
    const dx_store_index *ix = &store->idx;
    int m = 0;
    for (int i = 0; i < ix->n_rows; i++) m += ix->rows[i].info.kind == DX_NOD_NODULE;
    if (m == 0) return DX_OK;
    dx_focus_point *f = malloc(sizeof *f * (size_t)m);
    if (!f) return dx_fail(err, DX_ENOMEM, "out of memory for %d focus points", m);
    for (int i = 0; i < ix->n_rows; i++) {
        const dx_store_row *r = &ix->rows[i];
        if (r->info.kind != DX_NOD_NODULE) continue;
        f[(*n)++] = (dx_focus_point){.series = r->series,
                                     .x = r->info.centroid_vox[0],
                                     .y = r->info.centroid_vox[1],
                                     .z = r->info.centroid_vox[2],
                                     .radius_mm = 0.5 * r->info.diameter_mm};
    }
    *out = f;
    return DX_OK;
}

dx_status dx_store_focus_attach(const dx_store *store, dx_loader_opts *o, dx_focus_point **owned, dx_err *err) {
    *owned = NULL;
    if (!(o->focus_p > 0)) return DX_OK;
    int n;
    dx_status s = dx_store_focus_points(store, owned, &n, err);
    if (s) return s;
    if (n == 0)
        return dx_fail(err, DX_EINVAL,
                       "data.focus_p = %g aims samples at annotated nodules, but store %s has none (set it to 0)",
                       o->focus_p, store->dir ? store->dir : "");
    o->focus = *owned, o->n_focus = n;
    return DX_OK;
}
