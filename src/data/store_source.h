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

#endif /* DX_STORE_SOURCE_H */
