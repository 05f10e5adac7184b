/* backbone_meta.h - what a backbone file says about itself: the model's shape
 * and the preprocessing it was trained with, as flat string pairs in the
 * safetensors "__metadata__" (readable with any safetensors library:
 * safe_open(f).metadata()["model.dim"]).
 *
 * Keys (all values strings):
 *   format "dinox-backbone" (or DX_META_FORMAT_TIMM), dinox_version, source, step, arch
 *   model.dim model.depth model.heads model.registers model.patch model.in_chans
 *   model.ffn ("mlp" | "swiglu") model.ffn_hidden model.ln_eps model.qkv_bias
 *   model.mask_k_bias model.proj_bias model.ffn_bias model.rope_base
 *   preprocessing.input ("2.5d: slices z-1,z,z+1 at native spacing" | "2d")
 *   preprocessing.stack25d (1 | 0), preprocessing.windows ("W,L;W,L" in HU),
 *   preprocessing.norm_mean, preprocessing.norm_std, preprocessing.formula,
 *   preprocessing.crop_size (training global crop side, pixels)
 *   timm.model, timm.kwargs (the timm model the tensors load into)
 *
 * A file without model.* keys (a converted release with no shape given, a
 * file from elsewhere) is still loadable: the caller's configuration rules. */
#ifndef DX_BACKBONE_META_H
#define DX_BACKBONE_META_H

#include <stdint.h>

#include "core/dx_error.h"
#include "nn/vit.h"

#define DX_META_MAX_WINDOWS 8
#define DX_META_FORMAT_TIMM "dinox-backbone-timm-names" /* `dinox export --format timm`: for timm only */
/* `dinox export --format hf`: under the key "dinox_format" ("format" is "pt",
 * what transformers asks for); transformers' names, for transformers only */
#define DX_META_FORMAT_HF "dinox-backbone-hf-names"
#define DX_META_MAX_PAIRS 40

typedef struct dx_backbone_prep {
    int stack25d;
    int n_windows;
    float width[DX_META_MAX_WINDOWS], level[DX_META_MAX_WINDOWS];
    float norm_mean, norm_std;
    int crop_size;
} dx_backbone_prep;

typedef struct dx_backbone_meta {
    int has_model;        /* model.* keys present and complete */
    dx_vit_config model;  /* arch + shape (training-only fields zero) */
    int has_prep;         /* preprocessing.* keys present */
    dx_backbone_prep prep;
    char format[32], source[32], version[64];
    int64_t step;         /* -1 when absent */
} dx_backbone_meta;

/* Key/value strings for dx_st_write, owned by the struct. */
typedef struct dx_meta_pairs {
    char buf[DX_META_MAX_PAIRS * 2][160];
    const char *kv[DX_META_MAX_PAIRS * 2];
    int n; /* pairs */
} dx_meta_pairs;

/* Fills pairs from m (format/source/step/version/model/prep/timm keys). */
void dx_backbone_meta_pairs(const dx_backbone_meta *m, dx_meta_pairs *p);
/* Reads the metadata of a safetensors file. A file without metadata gives
 * has_model = has_prep = 0 and DX_OK; malformed model.* values are DX_EFORMAT. */
dx_status dx_backbone_meta_read(const char *path, dx_backbone_meta *m, dx_err *err);
/* DX_EINVAL naming the first architectural field where the file (what) and
 * the configured model disagree; DX_OK when the file has no model.* keys. */
dx_status dx_backbone_meta_check(const dx_backbone_meta *m, const dx_vit_config *c, const char *what, dx_err *err);
/* The timm model name and keyword arguments that take these tensors as they
 * are (timm's DINOv3 ViTs, qkv bias variant); returns 0 when timm has no
 * matching family (SwiGLU widths other than DINOv3's, no k-bias mask). */
int dx_backbone_meta_timm(const dx_vit_config *c, char *name, size_t name_len, char *kwargs, size_t kwargs_len);

/* The shortest decimal that reads back as the same float (1e-05, not
 * 9.99999975e-06): what a person and Python's float() both see right. */
const char *dx_backbone_meta_fstr(char *buf, size_t len, float v);

#endif /* DX_BACKBONE_META_H */
