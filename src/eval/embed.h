/* embed.h - `dinox embed` as a library call: a DINOv3 backbone file run in
 * eval mode over an .npy batch of images (float32 [N, 3, H, W]; H and W
 * multiples of the patch size, a remainder cropped as by the strided conv),
 * the final-norm tokens written as .npy float32 [N, 1+R+P, D] (cls,
 * registers, patches row-major). Opens the backend on the requested device. */
#ifndef DX_EMBED_H
#define DX_EMBED_H

#include "core/dx_error.h"

typedef struct dx_embed_opts {
    const char *weights; /* safetensors backbone (DINOv3 names) */
    const char *input;   /* .npy images */
    const char *output;  /* .npy tokens */
    const char *arch;    /* released configuration: vit_tiny ... vit_giant; NULL = the file's model.*
                          * metadata, else vit_small */
    int patch, registers, dim, depth, heads; /* shape overrides: 0 (registers -1) = keep */
    const char *ffn;     /* NULL, "mlp" or "swiglu" */
    int ffn_hidden;      /* 0 = keep */
    float ln_eps;        /* 0 = keep */
    int no_mask_k_bias;  /* the file's qkv bias applies to keys too */
    int batch;           /* images per forward pass (8) */
    const char *device;  /* device spec for dx_backend_open (NULL = default) */
    int threads;         /* CPU threads (0 = default) */
} dx_embed_opts;

/* Defaults: arch NULL, registers -1, batch 8. */
void dx_embed_opts_default(dx_embed_opts *o);

/* What was written: n images h x w -> [n, tokens, dim]. */
typedef struct dx_embed_info {
    int n, h, w, tokens, dim;
} dx_embed_info;

/* info may be NULL. On failure *bad_option (if non-NULL) is 1 when an option
 * value is invalid (--ffn), else 0. */
dx_status dx_embed_run(const dx_embed_opts *o, dx_embed_info *info, int *bad_option, dx_err *err);

#endif /* DX_EMBED_H */
