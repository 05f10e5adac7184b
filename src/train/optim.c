/* optim.c - see optim.h. */
#include "train/optim.h"

#include <stdlib.h>
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

dx_status dx_optim_segments(dx_backend *be, const dx_table *tab, dx_segment **seg, int *nseg, dx_err *err) {
    *seg = NULL;
    *nseg = 0;
    dx_segment *h = calloc(tab->n ? (size_t)tab->n : 1, sizeof *h);
    if (!h) return dx_fail(err, DX_ENOMEM, "optimizer segments");
    int n = 0;
    for (int i = 0; i < tab->n; i++) {
        const dx_tensor_spec *s = &tab->t[i];
        if (s->flags & DX_TF_BUFFER) continue;
        h[n++] = (dx_segment){.offset = s->offset, .n = s->numel, .lr_mult = s->lr_mult, .wd_mult = s->wd_mult,
                              .group = (s->flags & DX_TF_LAST_LAYER) ? 1 : 0};
    }
    dx_segment *d = be->ops->alloc(be, (n ? (size_t)n : 1) * sizeof *d);
    if (!d) {
        free(h);
        return dx_fail(err, DX_ENOMEM, "optimizer segments (%d)", n);
    }
    be->ops->upload(be, d, h, (size_t)n * sizeof *h); /* blocking: h may go */
    free(h);
    *seg = d;
    *nseg = n;
    return DX_OK;
}

void dx_adamw_step(dx_backend *be, const dx_segment *seg, int nseg, float *w, const float *g, float *m,
                   float *v, const dx_adamw *hp, int t) {
    be->ops->adamw_multi(be, w, g, m, v, seg, nseg, hp->lr, hp->last_layer_lr, hp->wd, hp->beta1, hp->beta2,
                         hp->eps, t);
}
