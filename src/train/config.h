/* config.h - the training configuration: typed schema, YAML load, dotted
 * overrides, validation, YAML dump and documentation.
 *
 * Every key lives in one schema table (config.c): key path, type, default,
 * range or allowed values, help text. Loading starts from the defaults,
 * applies a YAML file, then `key=value` overrides (values are YAML scalars or
 * flow sequences: `optim.lr=2e-4`, `crops.global_scale=[0.3,1]`). Errors name
 * the key, the file and the line. dx_config_dump writes every key, so a dumped
 * config reloads to the identical struct (floats are printed with %.9g). */
#ifndef DX_CONFIG_H
#define DX_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "core/dx_error.h"
#include "data/loader.h"
#include "data/window.h"
#include "nn/vit.h"

#define DX_CFG_MAX_WINDOWS DX_WINDOW_MAX
#define DX_CFG_STR 256

typedef struct dx_config {
    struct {
        char arch[32];   /* vit_tiny .. vit_giant, custom */
        char backend[32]; /* device spec: cpu, cuda[:N], hip[:N] (backend/registry.h) */
        char precision[8]; /* fp32 | bf16 (the matmuls of linear layers, dx_gemm_linear) */
        int patch, registers;
        int dim, depth, heads; /* 0 = the arch's value */
        char ffn[16];    /* auto | mlp | swiglu */
        int ffn_hidden;  /* 0 = arch default */
        float drop_path, layerscale, ln_eps;
        float rope_rescale, rope_jitter, rope_shift;
    } model;
    struct {
        int dino_hidden, dino_bottleneck, dino_k;
        int ibot_hidden, ibot_bottleneck, ibot_k;
        int nlayers, separate;
        float init_std;
        int norm_last_layer;
    } heads;
    struct {
        float dino, ibot, koleo, student_temp;
        int koleo_group;
        float local_weight_start, local_weight_end, local_weight_epochs;
    } loss;
    struct {
        float temp_start, temp_end, temp_warmup_epochs;
        float momentum_start, momentum_end;
        int sk_iters;
        char centering[32]; /* sinkhorn_knopp | softmax */
    } teacher;
    struct {
        int enabled;
        float weight, teacher_res_factor;
        float weight_start_epochs, weight_ramp_epochs; /* loss_weight_schedule: 0 until start, ramp to weight */
        int refresh_every, refresh_first, refresh_max, img_level;
    } gram;
    struct {
        float lr, min_lr, warmup_epochs, wd_start, wd_end;
        float betas[2];
        float eps, layer_decay, patch_embed_lr_mult, clip_grad, freeze_last_layer_epochs;
        char lr_scaling[32]; /* none | sqrt_wrt_1024 | linear_wrt_256 */
    } optim;
    struct {
        int global_size;
        float global_scale[2];
        int local_size;
        float local_scale[2];
        int local_count;
        float flip_p;
        float blur_p_global1, blur_p_global2, blur_p_local;
        float blur_sigma[2];
        float noise_p;
        float noise_hu[2];
        float mask_prob;
        float mask_ratio[2];
    } crops;
    struct {
        char root[DX_CFG_STR];
        int stack25d, fixed_window, window_per_crop;
        float slice_spacing_mm, pixel_spacing_mm;
        float focus_p;
        int n_windows;
        dx_window_spec windows[DX_CFG_MAX_WINDOWS];
        float window_shift_p, window_scale_p;
        float norm_mean, norm_std;
    } data;
    struct {
        int epochs, epoch_length, batch_size;
        int64_t seed;
        int threads, prefetch;
        int compute_threads; /* OpenMP threads of the CPU backend; 0 = threads */
        int ckpt_every_steps;
        float ckpt_every_minutes;
        int keep_last, milestone_every, log_every;
        int collapse_window, stop_on_collapse;
        float comm_timeout_s;
        int overlap_allreduce;
        char checkpointing[16]; /* activation checkpointing: none | block | selective */
        int teacher_chunk;      /* global crops per EMA / Gram teacher forward; 0 = all */
        int micro_batch;        /* images per student pass (gradient accumulation); 0 = the rank's batch */
        int ibot_recompute;     /* iBOT teacher logits recomputed per Sinkhorn-Knopp pass, targets per student pass */
    } train;
} dx_config;

/* Fills every key with its default. */
void dx_config_defaults(dx_config *c);
/* Applies the keys of a YAML file over c (unknown keys, bad types and
 * out-of-range values are errors naming file:line and the key). */
dx_status dx_config_load_file(dx_config *c, const char *path, dx_err *err);
dx_status dx_config_load_string(dx_config *c, const char *yaml, const char *name, dx_err *err);
/* Applies one "a.b=value" override. */
dx_status dx_config_override(dx_config *c, const char *assignment, dx_err *err);
/* Cross-key checks (sizes divisible by the patch, dim % 4*heads, ...). */
dx_status dx_config_validate(const dx_config *c, dx_err *err);
/* defaults -> file (may be NULL) -> overrides -> validate. */
dx_status dx_config_resolve(dx_config *c, const char *path, const char *const *overrides, int n,
                            dx_err *err);

/* Resolved config as YAML, every key, with help comments. */
dx_status dx_config_dump(const dx_config *c, FILE *f, dx_err *err);
dx_status dx_config_save(const dx_config *c, const char *path, dx_err *err);
/* Markdown table of every key (docs/config.md is this output). */
void dx_config_write_schema_md(FILE *f);

/* The backbone configuration the model keys describe. */
dx_status dx_config_vit(const dx_config *c, dx_vit_config *vc, dx_err *err);
/* model.precision as the backend's policy: DX_PREC_FP32 or DX_PREC_BF16. */
int dx_config_precision(const dx_config *c);
/* The iBOT mask rule as the user wrote it: the config holds floats, and the
 * decimal is recovered (0.35f is 0.34999999) so that int(2B * prob) counts the
 * masked crops as DINOv3's Python does. What the trainer draws masks with. */
void dx_config_mask_rule(const dx_config *c, double *prob, float *ratio_min, float *ratio_max);
/* Loader options the crops / data / train keys describe (eval = 1: fixed
 * window, no flip / blur / noise). gram_size is set when gram.enabled. */
void dx_config_loader_opts(const dx_config *c, int eval, dx_loader_opts *o);
/* Peak learning rate after optim.lr_scaling:
 * sqrt_wrt_1024: lr * 4 * sqrt(B / 1024); linear_wrt_256: lr * B / 256. */
double dx_config_peak_lr(const dx_config *c);
/* Total iterations = epochs * epoch_length. */
int64_t dx_config_total_steps(const dx_config *c);

/* Schema introspection (for tests and tools). */
int dx_config_n_keys(void);
const char *dx_config_key(int i);
/* Value of a key as its dump text ("2e-4" prints as 0.000199999995). */
dx_status dx_config_get_text(const dx_config *c, const char *key, char *buf, size_t len,
                             dx_err *err);

#endif /* DX_CONFIG_H */
