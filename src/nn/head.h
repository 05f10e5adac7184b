/* head.h - the DINO / iBOT projection head, forward and backward.
 *
 *   h1 = GELU(W0 x + b0), h2 = GELU(W2 h1 + b2), ...   (nlayers - 1 hidden layers)
 *   z  = W_last_mlp h + b                              (bottleneck)
 *   u  = z / max(|z|, 1e-12)
 *   logits = W_proto u                                 (no bias, NO weight norm)
 * or, with norm_last_layer (DINO / DINOv2's weight-normalised prototypes,
 * weight_g fixed at 1): logits = normalize_rows(W_proto) u, cosine logits in
 * [-1, 1] whose spread the optimiser cannot shrink (docs/objective.md).
 * Parameter names as DINOv3's DINOHead: mlp.0.*, mlp.2.*, mlp.4.*,
 * last_layer.weight (the linear layers sit at even indices of its Sequential). */
#ifndef DX_HEAD_H
#define DX_HEAD_H

#include "backend/dx_backend.h"
#include "core/dx_error.h"
#include "core/dx_table.h"

#define DX_HEAD_MAX_LAYERS 8

typedef struct dx_head_config {
    int in_dim, hidden, bottleneck, prototypes, nlayers;
    float init_std; /* std of the truncated-normal weight init (0 = DINOv3's 0.02) */
    int norm_last_layer; /* 1: prototypes L2-normalised per row in forward (DINOv2 weight norm, g = 1) */
} dx_head_config;

typedef struct dx_head {
    dx_head_config cfg;
    dx_table tab;
    int nlin;                        /* linear layers in the MLP */
    int w[DX_HEAD_MAX_LAYERS], b[DX_HEAD_MAX_LAYERS];
    int in[DX_HEAD_MAX_LAYERS], out[DX_HEAD_MAX_LAYERS];
    int last;                        /* last_layer.weight [K, bottleneck] */
} dx_head;

dx_status dx_head_init(dx_head *h, const dx_head_config *cfg, dx_err *err);
void dx_head_free(dx_head *h);
/* trunc-normal(0.02) weights, zero biases (DINOHead._init_weights). */
dx_status dx_head_init_weights(const dx_head *h, dx_backend *be, float *w, uint64_t seed, dx_err *err);
double dx_head_flops_per_row(const dx_head_config *cfg);

/* Activations for up to max_rows rows, one allocation. */
typedef struct dx_head_acts {
    int max_rows, rows, with_grad;
    float *buf;
    float *x;          /* [rows, in_dim] input copy (caller fills via dx_head_acts_input) */
    float *pre[DX_HEAD_MAX_LAYERS], *post[DX_HEAD_MAX_LAYERS]; /* per MLP layer */
    float *u;          /* [rows, bottleneck] normalised */
    float *logits;     /* [rows, K] */
    float *dlogits;    /* [rows, K] caller writes (grad mode); = logits under DX_HEAD_GRAD_IN_PLACE */
    float *dx;         /* [rows, in_dim] gradient w.r.t. x after backward */
    float *dA, *dB;    /* scratch [rows, max width] */
    float *wn, *dwn;   /* norm_last_layer: normalised prototypes [K, bottleneck] and their gradient */
    size_t bytes;
} dx_head_acts;

/* with_grad: 0 (forward only), DX_HEAD_GRAD, or DX_HEAD_GRAD_IN_PLACE: dlogits is
 * logits, for a loss whose backward overwrites the logits with their gradient
 * (the iBOT student's: one [rows, K] buffer fewer, its largest). */
#define DX_HEAD_GRAD 1
#define DX_HEAD_GRAD_IN_PLACE 2
/* forward only, and no [rows, K] logits: the forward stops at u (and the normalised
 * prototypes), and dx_head_logits computes the logits of any rows on demand (the iBOT
 * teacher under train.ibot_recompute: its Sinkhorn-Knopp passes recompute them). */
#define DX_HEAD_NO_LOGITS 3
dx_status dx_head_acts_init(dx_head_acts *a, const dx_head *h, dx_backend *be, int max_rows,
                            int with_grad, dx_err *err);
void dx_head_acts_free(dx_head_acts *a, dx_backend *be);
size_t dx_head_acts_bytes(const dx_head *h, int max_rows, int with_grad);

/* logits = head(a->x[0..rows)) (DX_HEAD_NO_LOGITS: u and wn only). */
void dx_head_forward(const dx_head *h, dx_backend *be, const float *w, dx_head_acts *a, int rows);
/* out[rows, K] = the logits of rows row0 .. row0 + rows of the last forward (from a->u). */
void dx_head_logits(const dx_head *h, dx_backend *be, const float *w, const dx_head_acts *a, int row0, int rows,
                    float *out);
/* g += dL/dparams, a->dx = dL/dx (overwritten), from a->dlogits. */
void dx_head_backward(const dx_head *h, dx_backend *be, const float *w, float *g, dx_head_acts *a);

#endif /* DX_HEAD_H */
