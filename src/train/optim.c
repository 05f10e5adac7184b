/* optim.c - see optim.h. */
#include "train/optim.h"

#include <string.h>

#include "train/schedule.h"

void dx_table_set_param_groups(dx_table *tab, const char *backbone_prefix, int depth, float decay,
                               float patch_embed_mult) {
    const size_t plen = strlen(backbone_prefix);
    for (int i = 0; i < tab->n; i++) {
        dx_tensor_spec *s = &tab->t[i];
        int in_backbone = strncmp(s->name, backbone_prefix, plen) == 0;
        dx_param_mult pm;
        dx_param_mult_of(in_backbone ? s->name + plen : s->name, in_backbone ? depth : 0, decay,
                         patch_embed_mult, &pm);
        s->lr_mult = (float)pm.lr_mult;
        s->wd_mult = (float)pm.wd_mult;
        if (pm.is_last_layer) s->flags |= DX_TF_LAST_LAYER;
        else s->flags &= ~DX_TF_LAST_LAYER;
    }
}

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
