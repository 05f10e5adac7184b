/* export_timm.h - a backbone in timm's own tensor names (`dinox export
 * --format timm`), so that timm's DINOv3 ViT (timm.model / timm.kwargs in
 * the metadata) takes it with load_state_dict(strict=True) and no filter:
 *   storage_tokens -> reg_token, blocks.N.ls1/ls2.gamma -> gamma_1/gamma_2,
 *   attn.qkv.bias [3D] -> attn.q_bias + attn.v_bias (timm's fixed-zero k bias:
 *   DINOv3's bias_mask zeroes it), rope_embed.periods, bias_mask and
 *   mask_token dropped (timm computes the periods; mask_token is pre-training
 *   only); every other name is DINOv3's and timm's alike. */
#ifndef DX_EXPORT_TIMM_H
#define DX_EXPORT_TIMM_H

#include "core/dx_error.h"
#include "nn/vit.h"

/* w_host laid out by m->tab. DX_EINVAL when timm has no matching model
 * (SwiGLU, no qkv bias, k bias not masked). */
dx_status dx_export_timm_write(const dx_vit *m, const float *w_host, const char *path, const char *const *meta,
                               int n_meta, dx_err *err);

#endif /* DX_EXPORT_TIMM_H */
