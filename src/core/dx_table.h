/* dx_table.h - named tensor table: one allocation, many named views.
 *
 * A table lists tensors (name, shape, flags) and gives each an offset into a
 * single flat float buffer. Parameters, their gradients, AdamW moments and the
 * teachers all use the same table over different buffers, so optimizer, EMA
 * and checkpoint code are flat loops, and the names are the DINOv3 state-dict
 * names that safetensors files use. The table holds no memory of the tensors
 * themselves; buffers belong to a backend and may be device memory. */
#ifndef DX_TABLE_H
#define DX_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "dx_error.h"

#define DX_MAX_DIMS 4
#define DX_NAME_MAX 96
#define DX_TABLE_ALIGN 16 /* elements: each tensor starts on a 64-byte boundary */

enum {
    DX_TF_BUFFER = 1u << 0, /* state, not trained: no grad, no AdamW, no EMA (rope periods, bias_mask) */
    DX_TF_NO_WD = 1u << 1,  /* excluded from weight decay (biases, norms, LayerScale) */
    DX_TF_LAST_LAYER = 1u << 2, /* head prototype layer: uses the last-layer lr schedule */
    DX_TF_PACKED = 1u << 3  /* the next tensor starts right after this one (no padding), so two
                               tensors can be used as one, e.g. SwiGLU w1|w2 in one GEMM */
};

typedef struct dx_tensor_spec {
    char name[DX_NAME_MAX];
    int ndim;
    int64_t shape[DX_MAX_DIMS];
    size_t numel;
    size_t offset;   /* in elements from the buffer start */
    unsigned flags;
    float lr_mult;   /* per-tensor multipliers for AdamW (layer decay, patch-embed x0.2) */
    float wd_mult;
} dx_tensor_spec;

typedef struct dx_table {
    dx_tensor_spec *t;
    int n, cap;
    size_t total;    /* elements, including alignment padding */
} dx_table;

void dx_table_init(dx_table *tab);
void dx_table_free(dx_table *tab);

/* Appends a tensor; returns its index (>= 0) or a negative dx_status. */
int dx_table_add(dx_table *tab, const char *name, int ndim, const int64_t *shape, unsigned flags,
                 dx_err *err);
int dx_table_find(const dx_table *tab, const char *name); /* -1 if absent */
/* Appends every tensor of src under "prefix<name>", keeping flags and
 * multipliers; *base receives the offset of src's first element, so that
 * src's own offsets + base address the same data inside dst's buffers. */
dx_status dx_table_append(dx_table *dst, const dx_table *src, const char *prefix, size_t *base,
                          dx_err *err);
size_t dx_table_numel_trainable(const dx_table *tab);

static inline float *dx_table_ptr(const dx_table *tab, float *base, int idx) {
    return base + tab->t[idx].offset;
}

/* "[384, 3, 16, 16]" into buf. */
const char *dx_shape_str(const int64_t *shape, int ndim, char *buf, size_t len);

#endif /* DX_TABLE_H */
