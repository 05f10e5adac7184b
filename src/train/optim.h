/* optim.h - AdamW over a parameter table (decoupled weight decay, bias
 * correction, PyTorch semantics), with the per-tensor lr/wd multipliers that
 * the table carries (layer-wise decay, patch-embed factor, no-decay tensors). */
#ifndef DX_OPTIM_H
#define DX_OPTIM_H

#include "backend/dx_backend.h"
#include "core/dx_table.h"

typedef struct dx_adamw {
    float lr;            /* this step's base learning rate (schedules write it) */
    float last_layer_lr; /* lr for DX_TF_LAST_LAYER tensors (0 while frozen) */
    float wd;            /* this step's base weight decay */
    float beta1, beta2, eps;
} dx_adamw;

/* Sets lr_mult, wd_mult and the last-layer flag of every tensor as DINOv3's
 * param groups do (dx_param_mult_of): tensors named
 * "<backbone_prefix>..." belong to a backbone of `depth` blocks (layer-wise
 * decay, patch-embed factor), all others to a head (multiplier 1). */
void dx_table_set_param_groups(dx_table *tab, const char *backbone_prefix, int depth, float decay,
                               float patch_embed_mult);

/* The trainable tensors of tab (buffers left out) as the segment table of
 * the multi-tensor ops, in backend memory (free with be->ops->free). */
dx_status dx_optim_segments(dx_backend *be, const dx_table *tab, dx_segment **seg, int *nseg, dx_err *err);

/* One step t (>= 1) over every segment: w, g, m, v share the table's layout.
 * One backend call (adamw_multi), bit-identical to one adamw per tensor. */
void dx_adamw_step(dx_backend *be, const dx_segment *seg, int nseg, float *w, const float *g, float *m,
                   float *v, const dx_adamw *hp, int t);

#endif /* DX_OPTIM_H */
