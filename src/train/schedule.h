/* schedule.h - DINOv3 schedules, parameter-group multipliers, loss weights, clipping.
 *
 * As DINOv3 schedules them (docs/objective.md). Values are computed per
 * iteration on the fly (no arrays) with the same double-precision
 * operations, in the same order, as the numpy arrays of the reference, so
 * they match those arrays to the last bit or ulp:
 *  - v1 CosineScheduler (configs without a `schedules:` block):
 *      [freeze zeros | linspace(start_warmup, base, W) inclusive |
 *       final + 0.5 (base - final)(1 + cos(pi i / (T - W - F))), i = 0..T-W-F-1],
 *      it >= T -> final; train.py then zeroes the first `zero_first` entries
 *      of the last-layer lr schedule.
 *  - v2 linear_warmup_cosine_decay(start, peak, end, W, T, C):
 *      [linspace(start, peak, W) end-exclusive |
 *       end + (peak - end)(1 + cos(linspace(0, pi, C)))/2 | end ...], it >= T -> end. */
#ifndef DX_SCHEDULE_H
#define DX_SCHEDULE_H

#include <stdint.h>

#include "core/dx_error.h"

typedef struct dx_cosine_schedule {
    double base, final, start_warmup;
    int64_t total;      /* T: schedule length; it >= T returns final        */
    int64_t warmup;     /* W                                                */
    int64_t freeze;     /* F: leading zeros (constructor's freeze_iters)    */
    int64_t zero_first; /* entries it < zero_first forced to 0 (last-layer lr) */
} dx_cosine_schedule;

/* T >= W + F >= 0 and zero_first >= 0, else DX_EINVAL. */
dx_status dx_cosine_schedule_check(const dx_cosine_schedule *s, dx_err *err);
double dx_cosine_schedule_at(const dx_cosine_schedule *s, int64_t it);

typedef struct dx_lwcd_schedule {
    double start, peak, end;
    int64_t warmup;  /* W */
    int64_t total;   /* T */
    int64_t cosine;  /* C; < 0 means T - W */
} dx_lwcd_schedule;

/* W >= 0, C >= 0, W + C <= T, else DX_EINVAL. */
dx_status dx_lwcd_schedule_check(const dx_lwcd_schedule *s, dx_err *err);
double dx_lwcd_schedule_at(const dx_lwcd_schedule *s, int64_t it);

/* Optimizer multipliers of one parameter (as DINOv3's param_groups.py).
 * name is relative to its submodule ("blocks.3.attn.qkv.weight",
 * "last_layer.weight"); depth = number of blocks of the backbone, 0 for a
 * head. lr_mult = decay^(depth + 1 - layer_id) (x patch_embed_mult for
 * patch_embed.*), wd_mult = 0 iff the name ends with "bias" or contains
 * "norm", "gamma" or "fourier_w"; is_last_layer iff it contains "last_layer". */
typedef struct dx_param_mult {
    double lr_mult, wd_mult;
    int layer_id;
    int is_last_layer;
} dx_param_mult;

void dx_param_mult_of(const char *name, int depth, double decay, double patch_embed_mult,
                      dx_param_mult *out);

/* Per-submodule gradient clipping: grads *= min(1, clip / (norm + 1e-6)). */
double dx_clip_factor(double norm, double clip);

/* ---- total objective ------------------------------------------ */
typedef struct dx_loss_terms {
    double dino_local;   /* L_local  (dino_forward, ns = n_local, nt = n_global)   */
    double dino_global;  /* L_global (dino_forward, cross pairs)                  */
    double koleo;        /* L_koleo = mean over the global crops of the per-crop KoLeo */
    double ibot;         /* L_ibot                                                */
    double gram;         /* L_gram                                                */
} dx_loss_terms;

typedef struct dx_loss_weights {
    double w_dino, w_koleo, w_ibot, w_gram; /* defaults 1, 0.1, 1, (gram stage) */
    double local_weight;                    /* lambda_loc(it), 1 unless reweighted */
    int n_global, n_local;                  /* G = 2, L = 8                        */
    int global_ignore_diag;                 /* 1                                   */
    int use_gram;                           /* Gram term on/off                    */
} dx_loss_weights;

/* Defaults: w_dino 1, w_koleo 0.1, w_ibot 1, w_gram 0 (off), lambda 1, G 2, L 8. */
void dx_loss_weights_default(dx_loss_weights *w);

/* coef->x = the factor that multiplies term x in the total (and the `scale`
 * its backward gets): dino_local = w_dino * s_loc * lambda, dino_global =
 * w_dino * s_glob, koleo = w_koleo * G, ibot = w_ibot, gram = w_gram (0 when
 * !use_gram); s_glob = n_glob/(n_glob + n_loc), s_loc = n_loc/(...),
 * n_glob = G(G-1) (ignore diag) or G^2, n_loc = G*L. */
void dx_loss_coefs(const dx_loss_weights *w, dx_loss_terms *coef);

/* Returns sum coef_x * L_x; contrib (may be NULL) receives each product. */
double dx_loss_total(const dx_loss_terms *L, const dx_loss_weights *w, dx_loss_terms *contrib);

#endif /* DX_SCHEDULE_H */
