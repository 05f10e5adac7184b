/* weights.h - move a named tensor table's contents to and from safetensors.
 *
 * nn layer: it stages tensors between backend memory and the safetensors
 * container (io/dx_safetensors.h, which knows no backend). The host-memory
 * save needs no backend at all.
 *
 * Generic over any dx_table (backbone, heads, teachers): the model itself knows
 * no file format. Names in the file are the table's names, optionally under a
 * prefix ("teacher.backbone." ...). */
#ifndef DX_WEIGHTS_H
#define DX_WEIGHTS_H

#include "backend/dx_backend.h"
#include "core/dx_error.h"
#include "core/dx_table.h"

enum {
    /* Buffers (DX_TF_BUFFER: RoPE periods, k-bias masks) missing from the file
     * keep the values already in w; present ones take precedence (released
     * files carry bf16-rounded periods). */
    DX_LOAD_BUFFERS_OPTIONAL = 1u << 0,
    /* Tensors in the file that the table does not know are an error unless set. */
    DX_LOAD_IGNORE_EXTRA = 1u << 1
};

/* Loads every tensor of tab from the file into w (backend memory). Shapes must
 * match exactly, except that leading 1-dims may differ ([1, D] vs [1, 1, D]).
 * F32, BF16, F16 and F64 are converted to float32. */
dx_status dx_weights_load(const dx_table *tab, dx_backend *be, float *w, const char *path,
                          const char *prefix, unsigned flags, dx_err *err);

/* Writes the tensors of tab (w in backend memory) as F32 under prefix.
 * with_buffers: also write DX_TF_BUFFER tensors. metadata: key/value pairs. */
dx_status dx_weights_save(const dx_table *tab, dx_backend *be, const float *w, const char *path,
                          const char *prefix, int with_buffers, const char *const *metadata,
                          int n_meta, dx_err *err);

/* The same file from host memory (w_host laid out as the table): no backend. */
dx_status dx_weights_save_host(const dx_table *tab, const float *w_host, const char *path, const char *prefix,
                               int with_buffers, const char *const *metadata, int n_meta, dx_err *err);

#endif /* DX_WEIGHTS_H */
