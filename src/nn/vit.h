/* vit.h - the DINOv3 Vision Transformer backbone, forward and backward.
 *
 * A dx_vit is configuration + the parameter table (DINOv3 state-dict names).
 * Weights and gradients are flat buffers laid out by that table, so the
 * student, the EMA teacher and the Gram teacher are three buffers over one
 * dx_vit, and AdamW/EMA/checkpointing are flat loops. Activations of one crop
 * group (N images of one size) live in a dx_vit_acts, one allocation, also
 * addressed through a named table. All compute goes through the backend.
 *
 * Dimension names: N images, T = 1 + R + P tokens, P patches, D dim,
 * H heads, Dh = D/H, F FFN width. */
#ifndef DX_VIT_H
#define DX_VIT_H

#include <stdint.h>

#include "backend/dx_backend.h"
#include "core/dx_error.h"
#include "core/dx_table.h"

typedef enum { DX_FFN_MLP = 0, DX_FFN_SWIGLU = 1 } dx_ffn_kind;

typedef struct dx_vit_config {
    char arch[32];
    int dim, depth, heads, registers, patch, in_chans;
    dx_ffn_kind ffn;
    int ffn_hidden;        /* MLP: fc1 width; SwiGLU: width of w1/w2 outputs */
    float ln_eps;
    int qkv_bias, mask_k_bias, proj_bias, ffn_bias;
    float layerscale_init;
    float rope_base;
    /* training only (student): stochastic depth rate, RoPE coordinate augmentation */
    float drop_path;
    float rope_shift;      /* 0 = off, else U(-s, s) added per axis */
    float rope_jitter;     /* 0 = off, else per-axis factor exp(U(-ln j, ln j)) */
    float rope_rescale;    /* 0 = off, else shared factor exp(U(-ln r, ln r)) */
} dx_vit_config;

/* Fills the released DINOv3 configuration of a named size: vit_tiny,
 * vit_small, vit_base, vit_large, vit_giant (patch 16, 4 registers, LN eps
 * 1e-5, masked k-bias, GELU MLP; SwiGLU for vit_giant as DINOv2's ViT-g).
 * "custom" fills the same defaults with dim/depth/heads left to the caller. */
dx_status dx_vit_config_named(dx_vit_config *cfg, const char *arch, dx_err *err);
/* Shape overrides (--patch/--registers/--dim/--depth/--heads): 0, or -1 for
 * registers, keeps the value; a new dim also resets the MLP width to 4*dim. */
void dx_vit_config_override_shape(dx_vit_config *c, int patch, int registers, int dim, int depth, int heads);
/* Checks consistency (D % 4H == 0 for RoPE, positive sizes, ...). */
dx_status dx_vit_config_check(const dx_vit_config *cfg, dx_err *err);
/* SwiGLU width as DINOv3 computes it: int(hidden*2/3) rounded up to a multiple of align. */
int dx_swiglu_width(int hidden, int align);

/* Indices into the parameter table of one block's tensors. */
typedef struct dx_vit_block_ids {
    int norm1_w, norm1_b, qkv_w, qkv_b, qkv_mask, proj_w, proj_b, ls1;
    int norm2_w, norm2_b, fc1_w, fc1_b, fc2_w, fc2_b, ls2; /* SwiGLU: fc1 = w1|w2 stacked, fc2 = w3 */
    int w2_w, w2_b;  /* SwiGLU only: the second half of the stacked input projection */
} dx_vit_block_ids;

typedef struct dx_vit {
    dx_vit_config cfg;
    dx_table tab; /* parameters and buffers, DINOv3 state-dict names */
    int cls, reg, mask_token, pe_w, pe_b, periods, norm_w, norm_b;
    dx_vit_block_ids *blk; /* [depth] */
} dx_vit;

dx_status dx_vit_init(dx_vit *m, const dx_vit_config *cfg, dx_err *err);
void dx_vit_free(dx_vit *m);

/* Writes the DINOv3 initialisation into w (backend memory),
 * deterministic from seed (domain DX_RNG_INIT, one stream per tensor). */
dx_status dx_vit_init_weights(const dx_vit *m, dx_backend *be, float *w, uint64_t seed, dx_err *err);

/* Forward FLOPs of one image of H x W (matmuls + attention), for benchmarks. */
double dx_vit_flops_per_image(const dx_vit_config *cfg, int H, int W);

/* ---- activations of one crop group ---------------------------------------
 * Flags of dx_vit_acts_init:
 *   DX_ACTS_GRAD       keep what backward needs (student); without it (teacher,
 *                      evaluation) every block runs in one shared set of block
 *                      buffers and only the last block's internals remain.
 *   DX_ACTS_RECOMPUTE  activation checkpointing "block": keep only each
 *                      block's input stream; dx_vit_backward recomputes the
 *                      block's internals into one shared set, with the same
 *                      stochastic-depth subsets and RoPE draws, so gradients are
 *                      bit-identical to keeping everything (about one extra
 *                      forward per step).
 *   DX_ACTS_SELECTIVE  activation checkpointing "selective": keep the outputs of
 *                      the GEMMs and of attention (qkv, attention row statistics
 *                      and output, projection, fc1, fc2) per block and recompute
 *                      the element-wise ops (LayerNorms, RoPE tables, the first
 *                      residual, GELU/SwiGLU, gathers) in backward: no GEMM is
 *                      run twice, gradients are again bit-identical. */
#define DX_ACTS_GRAD 1u
#define DX_ACTS_RECOMPUTE 2u
#define DX_ACTS_SELECTIVE 4u
/*   DX_ACTS_BF16       the bf16 policy's storage: of what backward keeps, the
 *                      outputs of GEMMs, attention and LayerNorm (ln, qkv,
 *                      attention output, projection, fc1,
 *                      GELU, fc2) are narrowed to bf16 per block after the
 *                      block's forward and widened into one shared fp32 set
 *                      before its backward; the residual streams, LayerNorm
 *                      statistics and RoPE tables stay fp32. */
#define DX_ACTS_BF16 8u
/*   DX_ACTS_ATTN       the pass keeps the attention probabilities ([N,H,T,T],
 *                      one block's, shared: what dx_vit_acts_last_attention
 *                      returns after the forward) for eval's maps. Without it
 *                      no pass stores them: backward recomputes them from each
 *                      row's log-sum-exp (the [N,H,T] "lse" activation), and
 *                      the attention runs through [64,T] scratch rows per
 *                      (image, head). */
#define DX_ACTS_ATTN 16u

typedef struct dx_vit_acts {
    int N, H, W, Hp, Wp, P, T;
    int with_grad;      /* scratch for backward allocated */
    unsigned flags;     /* DX_ACTS_* of dx_vit_acts_init */
    size_t *boff;       /* [(depth+1) * activation kinds] offsets of the per-block tensors (vit.c) */
    size_t *boff16;     /* [depth * kinds] offsets of their bf16 copies (DX_ACTS_BF16), SIZE_MAX = none */
    size_t bnumel[24];  /* elements of each kind (>= the vit.c kinds, checked there) */
    dx_table tab;       /* named activation tensors */
    float *buf;         /* one allocation (backend memory) */
    const uint8_t *mask; /* [N, P] backend memory borrowed from dx_vit_forward's caller, or NULL */
    int32_t *idx;       /* [2*depth, N] stochastic-depth subsets (backend memory) */
    int has_mask;
    int *k;             /* [2*depth] host: subset sizes used by the last forward (N = no drop) */
    float *rope_aug;    /* [depth, 4] host: shift_y, shift_x, scale_y, scale_x of the last forward */
    float *out;         /* [N, T, D] final-norm tokens (cls, registers, patches) */
    float *dout;        /* [N, T, D] gradient w.r.t. out, filled by the caller before backward */
    size_t bytes;
    /* Optional: called by dx_vit_backward when block l's parameter gradients
     * are complete for this pass (data parallel: start their all-reduce while
     * the blocks below are still running). NULL = none. */
    void (*on_block_grads)(void *ctx, int block);
    void *grads_ctx;
} dx_vit_acts;

dx_status dx_vit_acts_init(dx_vit_acts *a, const dx_vit *m, dx_backend *be, int N, int H, int W,
                           unsigned flags, dx_err *err);
void dx_vit_acts_free(dx_vit_acts *a, dx_backend *be);
/* Bytes dx_vit_acts_init would allocate (memory planner). */
size_t dx_vit_acts_bytes(const dx_vit *m, int N, int H, int W, unsigned flags);
/* The attention probabilities [N, H, T, T] of the last block, after a forward. */
const float *dx_vit_acts_last_attention(const dx_vit_acts *a, const dx_vit *m);

/* How a forward pass is run. */
typedef struct dx_vit_run {
    int train;          /* 1: stochastic depth + RoPE augmentation (student only) */
    uint64_t seed;      /* names the random streams: (seed, DOMAIN, step, group*4096+block) */
    uint64_t step;
    int group;          /* crop group index (global = 0, local = 1, ...) */
    /* Tests may inject the random draws: if non-NULL, subsets[2*l + branch] lists
     * k[2*l+branch] sample indices for block l's attention (0) / FFN (1) branch,
     * and rope_aug[4*l..] the (shift_y, shift_x, scale_y, scale_x) of block l. */
    const int32_t *const *subsets;
    const int *subset_k;
    const float *rope_aug;
} dx_vit_run;

/* img: [N, 3, H, W] backend memory. mask: [N, P] uint8 backend memory (1 = masked)
 * or NULL; it is borrowed, and must stay unchanged until dx_vit_backward.
 * Result in a->out. */
dx_status dx_vit_forward(const dx_vit *m, dx_backend *be, const float *w, dx_vit_acts *a,
                         const float *img, const uint8_t *mask, const dx_vit_run *run,
                         dx_err *err);
/* Accumulates parameter gradients into g from a->dout (backend memory, [N,T,D]). */
dx_status dx_vit_backward(const dx_vit *m, dx_backend *be, const float *w, float *g,
                          dx_vit_acts *a, dx_err *err);

#endif /* DX_VIT_H */
