/* store_source.h - the volume store as the loader's slice source.
 *
 * Adapts dx_store (src/io/store.h, memory-mapped int16 HU) to the
 * dx_slice_source callbacks of src/data/loader.h: O(1) access to any
 * (series, z) without reading whole volumes. */
#ifndef DX_STORE_SOURCE_H
#define DX_STORE_SOURCE_H

#include "data/loader.h"
#include "io/store.h"

/* src->ctx = store; the store must outlive the source. */
void dx_store_source_init(dx_slice_source *src, const dx_store *store);

/* The store's nodules (rows of kind DX_NOD_NODULE) as focus points for the
 * loader: consensus centre, radius = half the readers' median diameter. Only
 * locations are used, never ratings. *out is malloc'd (NULL when *n = 0). */
dx_status dx_store_focus_points(const dx_store *store, dx_focus_point **out, int *n, dx_err *err);

/* When o->focus_p > 0: points o at the store's focus points (*owned, the
 * caller frees it once the loader is created; the loader keeps a copy), or
 * fails when the store has no nodules to aim at. */
dx_status dx_store_focus_attach(const dx_store *store, dx_loader_opts *o, dx_focus_point **owned, dx_err *err);

#endif /* DX_STORE_SOURCE_H */
