/* export_hf.h - a backbone as a Hugging Face transformers model folder
 * (`dinox export --format hf`): DINOv3ViTModel.from_pretrained(DIR) loads it
 * with no missing or unexpected keys. The folder holds
 *   config.json        model_type "dinov3_vit": the shape, LayerNorm eps,
 *                      RoPE base, the bias switches, GELU MLP or gated SiLU
 *                      (SwiGLU), num_channels, the training RoPE augmentation
 *   model.safetensors  float32, the names of the released DINOv3 checkpoints
 *                      on the Hub (embeddings.*, layer.N.*, norm.*); metadata
 *                      format "pt" plus dinox's model.* and preprocessing.*
 *   README.md          the preprocessing in words and the loading recipe.
 * Renames: cls_token/mask_token/storage_tokens -> embeddings.cls_token/
 * mask_token/register_tokens (1,N,D); patch_embed.proj -> embeddings.
 * patch_embeddings; blocks.N -> layer.N; attn.qkv [3D,D] split into
 * attention.q_proj/k_proj/v_proj (the k bias is dropped when DINOv3's bias
 * mask zeroes it: key_bias false); attn.proj -> attention.o_proj;
 * ls1/ls2.gamma -> layer_scale1/2.lambda1; mlp.fc1/fc2 -> mlp.up_proj/
 * down_proj; SwiGLU mlp.w1/w2/w3 -> mlp.gate_proj/up_proj/down_proj
 * (silu(w1 x) * w2 x, then w3). rope_embed.periods and bias_mask are not
 * written: transformers computes the periods from rope_theta. */
#ifndef DX_EXPORT_HF_H
#define DX_EXPORT_HF_H

#include "core/dx_error.h"
#include "nn/backbone_meta.h"
#include "nn/vit.h"

/* w_host laid out by m->tab; bm is the exported file's metadata (its shape
 * and preprocessing also go into config.json and README.md). dir is made if
 * absent; an existing directory may only hold a previous hf export
 * (config.json, model.safetensors, README.md), which is replaced. */
dx_status dx_export_hf_write(const dx_vit *m, const float *w_host, const dx_backbone_meta *bm, const char *dir,
                             dx_err *err);

#endif /* DX_EXPORT_HF_H */
