/* ssl.h - one DINOv3 self-supervised step as a library call.
 *
 * The model is one parameter table: "backbone.*" (the ViT), "dino_head.*",
 * "ibot_head.*". Student parameters, gradients, AdamW moments, the EMA
 * teacher and the Gram teacher (backbone only) are flat buffers over it.
 *
 * dx_ssl_step: teacher forward on the clean global crops -> Sinkhorn-Knopp (or
 * softmax-centred) targets; student forward on the masked global crops and on
 * the local crops; Gram-teacher forward; DINO local + global, KoLeo, iBOT and
 * Gram losses; backward; per-submodule clipping; AdamW; EMA. */
#ifndef DX_SSL_H
#define DX_SSL_H

#include <stdint.h>

#include "backend/dx_backend.h"
#include "comm/dx_comm.h"
#include "nn/head.h"
#include "nn/vit.h"

typedef enum { DX_CENTER_SINKHORN = 0, DX_CENTER_SOFTMAX = 1 } dx_centering;

typedef struct dx_ssl_config {
    dx_vit_config vit;
    dx_head_config dino_head, ibot_head;  /* in_dim is set from vit.dim */
    int batch;                            /* B images per step on this rank (the global batch / ranks) */
    int micro_batch;                      /* images per student pass (0 = batch): the student runs forward
                                             and backward over B / micro_batch slices of the batch in turn,
                                             its gradients accumulated, while the teachers, the targets
                                             (Sinkhorn-Knopp over all 2B crops) and the update see the
                                             whole batch. Same loss and gradients as one pass, to rounding,
                                             except stochastic depth, whose subsets are drawn per pass (each
                                             pass the same draws, as each data-parallel rank); the student's
                                             activations are allocated for one slice. */
    int koleo_group;                      /* KoLeo over groups of this many images (0 = the images of one
                                             student pass: the rank's batch, or micro_batch); must divide
                                             micro_batch */
    int ibot_recompute;                   /* 1: the iBOT teacher keeps its bottleneck features [M, bottleneck]
                                             instead of its logits [M, K]: Sinkhorn-Knopp runs over the
                                             student passes' masked rows as chunks (sk_chunk_*), recomputing
                                             their logits in each of its sk_iters + 2 passes, and a pass's
                                             targets are formed just before its loss. Same targets to
                                             rounding, one pass's [M_pass, K] in memory instead of the
                                             batch's [M, K]; needs Sinkhorn-Knopp centring */
    int no_overlap;                       /* data parallel: one all-reduce after backward instead of buckets */
    int n_global, n_local;                /* 2 and L */
    int global_size, local_size;          /* crop sides in pixels */
    int gram_size;                        /* Gram-teacher crop side (0 = global_size) */
    int use_gram, gram_img_level;
    unsigned student_acts;                /* DX_ACTS_* for the student: checkpointing (RECOMPUTE or
                                             SELECTIVE) and the bf16 policy's storage (BF16) */
    int teacher_chunk;                    /* global crops per EMA / Gram teacher forward (0 = all 2B at
                                             once): the passes without backward run in chunks of the
                                             largest divisor of 2B not above it (the Gram teacher's: of
                                             2 x micro_batch, as it runs per student pass; the EMA
                                             teacher's outputs copied into one [2B, T, D] buffer, the Gram
                                             teacher's patch tokens resized into their crops' rows);
                                             same results to rounding, the internals allocated for
                                             one chunk only */
    float w_dino, w_koleo, w_ibot;        /* w_gram and lambda_local come per step */
    float student_temp;
    dx_centering centering;
    int sk_iters;
    float clip_grad;                      /* per submodule; <= 0 disables */
    float beta1, beta2, eps;
    float layer_decay, patch_embed_lr_mult;
    uint64_t seed;
    /* The iBOT mask rule (crops.mask_prob, crops.mask_ratio), which sizes the
     * iBOT head's activations and targets for the most masked patches a batch
     * can hold instead of all 2B x P patches: masks are drawn over the
     * 2 x mask_batch global crops of the global batch (0 = batch), and this
     * rank gets 2 x batch of them. mask_ratio_max = 0: rule unknown, every
     * patch counts. A step whose masks exceed the bound is refused. */
    double mask_prob;
    float mask_ratio_min, mask_ratio_max;
    int mask_batch;
} dx_ssl_config;

/* Values of the schedules at this step (src/train/schedule.h computes them). */
typedef struct dx_ssl_sched {
    float lr, last_layer_lr, wd, momentum, teacher_temp, w_gram, lambda_local;
} dx_ssl_sched;

typedef struct dx_ssl_batch {
    const float *global;  /* host [n_global*B, 3, S, S], crop-major (row = c*B + b) */
    const float *local;   /* host [n_local*B, 3, s, s] or NULL when n_local = 0 */
    const float *gram;    /* host [n_global*B, 3, Sg, Sg] or NULL (= the global crops) */
    const uint8_t *masks; /* host [n_global*B, P] (1 = masked) or NULL */
    int masked_total;     /* masked patches over all ranks (data parallel; 0 = this batch's own) */
    int no_health;        /* 1: skip what only dx_ssl_health_compute reads (steps that log nothing) */
} dx_ssl_batch;

typedef struct dx_ssl_metrics {
    double total, dino_local, dino_global, koleo, ibot, gram; /* unweighted terms + weighted total */
    double gnorm_backbone, gnorm_dino, gnorm_ibot;            /* before clipping */
    int n_masked;   /* on this rank */
    double comm_s;  /* seconds in the cross-rank reductions of the step (0 alone) */
    int nonfinite;  /* 1 if the loss or a gradient was NaN/Inf: no update was applied */
} dx_ssl_metrics;

/* Training health of the last step (dx_ssl_health), from tensors the step
 * holds; entropies are in units of ln K (1 = uniform). */
typedef struct dx_ssl_health {
    double dino_t_entropy;      /* mean per-sample entropy of the teacher's DINO targets / ln K */
    double dino_t_mean_entropy; /* entropy of the batch-mean target / ln K */
    double dino_t_used;         /* prototypes that are the argmax of at least one target */
    double dino_t_agree;        /* images whose two global crops get the same teacher argmax (fraction) */
    double dino_s_kl_uniform;   /* KL(student || uniform) in nats, student global crops */
    double ibot_t_entropy;      /* the same for the iBOT targets (0 when nothing was masked) */
    double ibot_t_used;
    double ibot_s_kl_uniform;
    double cls_std;             /* teacher CLS (pre-head): mean over dims of the std over the batch */
    double cls_erank;           /* its effective rank (of at most min(2B, D)) */
    double cls_cos;             /* mean cosine between different images' CLS */
    double patch_cos;           /* teacher patch tokens: mean cosine of patch pairs within an image */
    double last_layer_norm;     /* RMS row norm of the student's DINO prototypes */
    double cls_window_r2;       /* share of the teacher CLS variance that the global crops' base CT
                                 * window explains (one-way ANOVA R^2; NaN without windows) */
    double dino_t_window_r2;    /* the same for the teacher's DINO targets [2B, K]: how much of
                                 * what the DINO loss asks the student to predict is the window */
} dx_ssl_health;

typedef struct dx_ssl {
    dx_ssl_config cfg;
    dx_vit vit;
    dx_head dino, ibot;
    dx_table tab;                    /* backbone.* | dino_head.* | ibot_head.* */
    size_t base_dino, base_ibot;     /* offsets of the heads inside tab's buffers */
    float *w, *g, *m, *v, *teacher;  /* [tab.total] backend memory */
    float *gram_w;                   /* [vit.tab.total] Gram teacher backbone (use_gram) */
    int64_t adam_t;                  /* AdamW steps taken */
    dx_segment *seg;                 /* trainable tensors of tab, backend memory (optim.h) */
    int nseg;
    float *center_dino, *center_ibot;/* softmax centring (DX_CENTER_SOFTMAX) */
    int center_init;
    /* activations and scratch */
    dx_vit_acts s_glob, s_loc, t_glob, g_glob; /* s_*: one student pass (micro-batch); t_glob, g_glob:
                                                one teacher chunk of crops */
    int mb;                                  /* images per student pass (micro_batch, or batch) */
    int t_chunk, g_chunk;                    /* crops per EMA / Gram teacher forward */
    float *t_out;                            /* [2B*T, D] EMA teacher outputs when t_chunk < 2B, else NULL */
    dx_head_acts hd_s, hd_t, hi_s, hi_t;
    float *img_glob, *img_loc, *img_gram;    /* device copies of the crops: all 2B global ones (the EMA
                                                teacher's); one pass's local and Gram crops */
    float *img_sg, *tgt_mb;                  /* micro-batching: one pass's global crops and DINO targets */
    float *tgt_dino, *tgt_ibot, *mask_w;     /* targets [2B,K], [M,K] (ibot_recompute: one pass's); weights [M]; the masked rows in
                                                pass order (pass j's are [mb_off[j], mb_off[j+1])) */
    float *xs, *xt, *xs_hat, *xt_hat, *dxs, *xt_big, *dkoleo; /* Gram / KoLeo scratch */
    uint8_t *mask_dev;                       /* [2 mb, P] one pass's iBOT masks */
    int32_t *idx_cls_glob, *idx_cls_loc, *idx_patch, *idx_patch_gram, *idx_masked, *koleo_nn;
    int32_t *idx_masked_s;                   /* micro-batching: the masked rows in the student's pass */
    int *mb_off;                             /* host [passes + 1] */
    int P, Pg;
    int max_masked;                          /* rows of the iBOT teacher head and targets (dx_ssl_max_masked) */
    int max_masked_mb;                       /* rows of the iBOT student head: the most one pass can have */
    double *sk_m, *sk_a[2], *sk_r;           /* ibot_recompute: Sinkhorn-Knopp's prototype maxima and masses
                                                [K], row scalings [M] (device doubles) */
    int sk_cur;                              /* the sk_a the targets use */
    int32_t *ibot_argmax;                    /* ibot_recompute: each masked row's target argmax [M] (health) */
    double ibot_t_ent_sum;                   /* ibot_recompute: sum over the masked rows of the target entropy */
    double ibot_s_entropy;                   /* the iBOT student's mean row entropy at the last step, taken
                                              * before its backward turned the logits into their gradient
                                              * (NAN when the step had no_health) */
    /* Data parallel (NULL = one process): the step reduces Sinkhorn-Knopp's
     * sums, the softmax centre, the loss terms and the gradients over it. */
    dx_comm *comm;
    int overlap;                     /* 1: all-reduce block l's gradients while blocks < l run backward */
    size_t *bucket;                  /* host [depth][2]: block l's range [lo, hi) in tab (0 = not contiguous) */
    dx_comm_req **reqs;              /* host [depth + 4]: reductions in flight during a step */
    int nreq;
    dx_backend *step_be;             /* the backend of the step in progress (the overlap callback syncs it) */
} dx_ssl;

dx_status dx_ssl_init(dx_ssl *s, const dx_ssl_config *cfg, dx_backend *be, dx_err *err);
void dx_ssl_free(dx_ssl *s, dx_backend *be);
/* Fresh DINOv3 initialisation of student, teacher (= student) and Gram teacher. */
dx_status dx_ssl_init_weights(dx_ssl *s, dx_backend *be, dx_err *err);
/* Copies the EMA teacher's backbone into the Gram teacher (refresh). */
void dx_ssl_gram_refresh(dx_ssl *s, dx_backend *be);
/* Bytes of parameters/optimizer state and of activations (memory planner). */
size_t dx_ssl_state_bytes(const dx_ssl *s);
size_t dx_ssl_acts_bytes(const dx_ssl *s);
/* Memory dx_ssl_init would allocate for cfg, without allocating it: state
 * (student, gradients, AdamW m and v, EMA teacher, Gram teacher) and the
 * step's activations and scratch (crops on the device, all four forward
 * passes, heads, targets, Gram/KoLeo scratch). */
dx_status dx_ssl_plan_bytes(const dx_ssl_config *cfg, size_t *state, size_t *acts, dx_err *err);
/* The same in parts: state (may be NULL) and the activations (their sum is
 * dx_ssl_plan_bytes's acts) in the order of DX_SSL_PLAN_PART_NAMES. */
#define DX_SSL_PLAN_PARTS 8
#define DX_SSL_PLAN_PART_NAMES                                                                                 \
    {"student, global crops", "student, local crops", "EMA teacher pass", "Gram teacher pass",                \
     "DINO heads (student + teacher)", "iBOT heads (student + teacher)", "crops, targets, index lists",       \
     "Gram and KoLeo scratch"}
dx_status dx_ssl_plan_parts(const dx_ssl_config *cfg, size_t *state, size_t parts[DX_SSL_PLAN_PARTS], dx_err *err);
/* Training FLOPs of one step (student fwd+bwd, teacher and Gram fwd, heads). */
double dx_ssl_flops_per_step(const dx_ssl_config *cfg);
/* The most masked patches one step of this rank can have under the mask rule
 * (the sum of the 2 x batch largest per-crop counts of the global batch), or
 * 2 x batch x P when the rule is unknown; at least 1. */
int dx_ssl_max_masked(const dx_ssl_config *cfg);
/* Images per student pass: cfg->micro_batch when it splits the batch, else the batch. */
int dx_ssl_micro_batch(const dx_ssl_config *cfg);
/* Global crops per teacher forward: the largest divisor of 2 x batch that is
 * not above cfg->teacher_chunk (all 2 x batch when it is 0 or above). */
int dx_ssl_teacher_chunk(const dx_ssl_config *cfg);

/* With s->comm of several ranks, every rank calls it with its part of the
 * global batch; the metrics are then the global batch's (means over ranks). */
dx_status dx_ssl_step(dx_ssl *s, dx_backend *be, const dx_ssl_batch *batch, int64_t step,
                      const dx_ssl_sched *sched, dx_ssl_metrics *out, dx_err *err);

/* Health statistics of the step just taken (call after dx_ssl_step, before
 * the next one, which must not have had no_health; costs a few reductions,
 * meant for logged steps). With micro-batching the DINO student's statistic
 * is that of the last pass; the rest cover the whole batch. window: host
 * [2B] crop-major base-window index of each global crop (dx_batch.window), or
 * NULL (cls_window_r2 = NaN). */
void dx_ssl_health_compute(const dx_ssl *s, dx_backend *be, const dx_ssl_sched *sched, int n_masked,
                           const int32_t *window, dx_ssl_health *out);

/* One-way ANOVA R^2 of the rows of x [n, D] grouped by g [n] (values >= 0):
 * sum_g n_g |mean_g - mean|^2 / sum_i |x_i - mean|^2, in [0, 1]; 0 when all
 * rows are equal or in one group, NaN for a negative group. About (groups - 1) / (n - 1) when the rows
 * do not depend on the group. */
double dx_group_r2(const float *x, const int32_t *g, int n, int D);

#endif /* DX_SSL_H */
