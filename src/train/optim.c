/* optim.c - see optim.h. */
#include "train/optim.h"

void dx_adamw_step(dx_backend *be, const dx_table *tab, float *w, const float *g, float *m, float *v,
                   const dx_adamw *hp, int t) {
    for (int i = 0; i < tab->n; i++) {
        const dx_tensor_spec *s = &tab->t[i];
        if (s->flags & DX_TF_BUFFER) continue;
        float lr = ((s->flags & DX_TF_LAST_LAYER) ? hp->last_layer_lr : hp->lr) * s->lr_mult;
        float wd = hp->wd * s->wd_mult;
        be->ops->adamw(be, w + s->offset, g + s->offset, m + s->offset, v + s->offset, s->numel, lr,
                       hp->beta1, hp->beta2, hp->eps, wd, t);
    }
}
