/* config.c - the training-config schema table and its YAML reader/writer.
 *
 * One table row per key: dotted path, type, field offset, default (as YAML
 * text, parsed by the same code as files and overrides, so defaults can never
 * disagree with what a dump reloads), range or allowed values, help. Loading
 * walks the YAML mapping tree building dotted paths, so both nested
 * (`optim: {lr: 1e-3}`) and flat (`optim.lr: 1e-3`) spellings work. */
#include "train/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "backend/registry.h"
#include "core/dx_log.h"

typedef enum { T_INT, T_I64, T_FLOAT, T_BOOL, T_STR, T_ENUM, T_FLOAT2, T_WINDOWS } key_type;

typedef struct key_spec {
    const char *key;
    key_type type;
    size_t off;
    size_t size;         /* T_STR / T_ENUM: buffer size */
    const char *def;     /* YAML text */
    double lo, hi;       /* numeric range (inclusive) */
    const char *allowed; /* T_ENUM: '|'-separated */
    const char *help;
} key_spec;

#define F(field) offsetof(dx_config, field)
#define SZ(field) sizeof(((dx_config *)0)->field)
#define KI(k, fld, d, lo, hi, h) {k, T_INT, F(fld), 0, d, lo, hi, NULL, h}
#define KL(k, fld, d, lo, hi, h) {k, T_I64, F(fld), 0, d, lo, hi, NULL, h}
#define KF(k, fld, d, lo, hi, h) {k, T_FLOAT, F(fld), 0, d, lo, hi, NULL, h}
#define KB(k, fld, d, h) {k, T_BOOL, F(fld), 0, d, 0, 1, NULL, h}
#define KS(k, fld, d, h) {k, T_STR, F(fld), SZ(fld), d, 0, 0, NULL, h}
#define KE(k, fld, d, allow, h) {k, T_ENUM, F(fld), SZ(fld), d, 0, 0, allow, h}
#define K2(k, fld, d, lo, hi, h) {k, T_FLOAT2, F(fld), 0, d, lo, hi, NULL, h}

static const key_spec SCHEMA[] = {
    /* ---- model ---- */
    KE("model.arch", model.arch, "vit_small", "vit_tiny|vit_small|vit_base|vit_large|vit_giant|custom",
       "backbone size preset (DINOv3's released sizes); custom needs dim/depth/heads"),
    KS("model.backend", model.backend, "cpu", "compute device: cpu, cuda[:N] or hip[:N] (`--device` overrides; `dinox doctor` lists them)"),
    KE("model.precision", model.precision, "fp32", "fp32|bf16",
       "bf16: the linear layers' GEMMs (backbone and heads) in bf16 with fp32 accumulation, and the student's GEMM, attention and LayerNorm outputs kept for backward in bf16; weights, optimizer, residual streams, norms, attention, losses stay fp32 (`--precision`)"),
    KI("model.patch", model.patch, "16", 2, 64, "patch size in pixels"),
    KI("model.registers", model.registers, "4", 0, 64, "register (storage) tokens"),
    KI("model.dim", model.dim, "0", 0, 8192, "embedding dim override (0 = the arch's); dim % (4*heads) == 0"),
    KI("model.depth", model.depth, "0", 0, 128, "number of blocks override (0 = the arch's)"),
    KI("model.heads", model.heads, "0", 0, 128, "attention heads override (0 = the arch's)"),
    KE("model.ffn", model.ffn, "auto", "auto|mlp|swiglu", "FFN kind (auto = the arch's: GELU MLP, SwiGLU for vit_giant)"),
    KI("model.ffn_hidden", model.ffn_hidden, "0", 0, 65536, "FFN width override (0 = 4*dim, or the SwiGLU width of 4*dim)"),
    KF("model.drop_path", model.drop_path, "0.3", 0, 0.99, "stochastic depth rate, uniform over blocks"),
    KF("model.layerscale", model.layerscale, "1e-5", 0, 1, "LayerScale init value"),
    KF("model.ln_eps", model.ln_eps, "1e-5", 1e-12, 1e-2, "LayerNorm epsilon"),
    KF("model.rope_rescale", model.rope_rescale, "2", 0, 16, "RoPE coordinate rescale augmentation factor (0 = off, else >= 1)"),
    KF("model.rope_jitter", model.rope_jitter, "0", 0, 16, "RoPE per-axis jitter factor (0 = off, else >= 1)"),
    KF("model.rope_shift", model.rope_shift, "0", 0, 16, "RoPE coordinate shift U(-s, s) (0 = off)"),
    /* ---- heads ---- */
    KI("heads.dino_hidden", heads.dino_hidden, "2048", 1, 65536, "DINO head MLP hidden width"),
    KI("heads.dino_bottleneck", heads.dino_bottleneck, "256", 1, 8192, "DINO head bottleneck dim"),
    KI("heads.dino_k", heads.dino_k, "65536", 2, 1048576, "DINO prototypes K"),
    KI("heads.ibot_hidden", heads.ibot_hidden, "2048", 1, 65536, "iBOT head MLP hidden width"),
    KI("heads.ibot_bottleneck", heads.ibot_bottleneck, "256", 1, 8192, "iBOT head bottleneck dim"),
    KI("heads.ibot_k", heads.ibot_k, "65536", 2, 1048576, "iBOT prototypes K"),
    KI("heads.nlayers", heads.nlayers, "3", 1, 8, "MLP layers before the bottleneck"),
    KB("heads.separate", heads.separate, "true", "separate iBOT head (false = share the DINO head)"),
    KB("heads.norm_last_layer", heads.norm_last_layer, "false",
       "L2-normalise each prototype in forward (DINO/DINOv2 weight norm, g = 1); DINOv3: false (docs/objective.md)"),
    KF("heads.init_std", heads.init_std, "0.02", 1e-6, 1, "std of the heads' truncated-normal weight init (DINOv3: 0.02)"),
    /* ---- loss weights ---- */
    KF("loss.dino", loss.dino, "1", 0, 100, "DINO (CLS) loss weight"),
    KF("loss.ibot", loss.ibot, "1", 0, 100, "iBOT masked-patch loss weight"),
    KF("loss.koleo", loss.koleo, "0.1", 0, 100, "KoLeo loss weight"),
    KI("loss.koleo_group", loss.koleo_group, "0", 0, 65536,
       "KoLeo over groups of N images (0 = the images of one student pass: each rank's batch, DINOv3's default, or train.micro_batch; set it to keep a run the same at any number of ranks or passes)"),
    KF("loss.student_temp", loss.student_temp, "0.1", 1e-3, 10, "student softmax temperature"),
    KF("loss.local_weight_start", loss.local_weight_start, "1", 0, 10, "weight of the DINO local-crop term at the start"),
    KF("loss.local_weight_end", loss.local_weight_end, "1", 0, 10, "weight of the DINO local-crop term at the end"),
    KF("loss.local_weight_epochs", loss.local_weight_epochs, "0", 0, 1e6,
       "epochs of the half-cosine ramp start -> end (0 = constant end)"),
    /* ---- teacher ---- */
    KF("teacher.temp_start", teacher.temp_start, "0.04", 1e-3, 10, "teacher temperature at step 0"),
    KF("teacher.temp_end", teacher.temp_end, "0.07", 1e-3, 10, "teacher temperature after the warm-up"),
    KF("teacher.temp_warmup_epochs", teacher.temp_warmup_epochs, "30", 0, 1e6, "linear temperature warm-up length"),
    KF("teacher.momentum_start", teacher.momentum_start, "0.992", 0, 1, "EMA momentum at step 0 (cosine schedule)"),
    KF("teacher.momentum_end", teacher.momentum_end, "1", 0, 1, "EMA momentum at the end"),
    KI("teacher.sk_iters", teacher.sk_iters, "3", 1, 100, "Sinkhorn-Knopp iterations"),
    KE("teacher.centering", teacher.centering, "sinkhorn_knopp", "sinkhorn_knopp|softmax",
       "teacher target centring: DINOv3's Sinkhorn-Knopp, or DINO/DINOv2 softmax centring (centre EMA 0.9)"),
    /* ---- Gram anchoring ---- */
    KB("gram.enabled", gram.enabled, "false", "Gram anchoring loss and Gram-teacher crops"),
    KF("gram.weight", gram.weight, "2", 0, 100, "Gram loss weight"),
    KF("gram.weight_start_epochs", gram.weight_start_epochs, "0", 0, 1e6,
       "Gram weight is 0 before this epoch (switching the term on mid-run)"),
    KF("gram.weight_ramp_epochs", gram.weight_ramp_epochs, "0", 0, 1e6,
       "half-cosine ramp of the Gram weight from 0 to gram.weight after the start (DINOv3: 1000 iterations)"),
    KF("gram.teacher_res_factor", gram.teacher_res_factor, "2", 1, 4, "Gram-teacher crop size = factor x global size"),
    KI("gram.refresh_every", gram.refresh_every, "0", 0, 100000000, "copy the EMA teacher into the Gram teacher every N steps (0 = never)"),
    KI("gram.refresh_first", gram.refresh_first, "0", 0, 100000000, "first step at which a refresh may happen"),
    KI("gram.refresh_max", gram.refresh_max, "0", 0, 1000000, "maximum number of refreshes (0 = unlimited)"),
    KB("gram.img_level", gram.img_level, "true", "Gram matrix per image (true) or over the batch"),
    /* ---- optimizer and schedules ---- */
    KF("optim.lr", optim.lr, "1e-3", 0, 10, "peak learning rate before the scaling rule"),
    KF("optim.min_lr", optim.min_lr, "1e-6", 0, 10, "final learning rate of the cosine"),
    KF("optim.warmup_epochs", optim.warmup_epochs, "10", 0, 1e6, "linear lr warm-up length"),
    KF("optim.wd_start", optim.wd_start, "0.04", 0, 10, "weight decay at step 0 (cosine)"),
    KF("optim.wd_end", optim.wd_end, "0.4", 0, 10, "weight decay at the end"),
    K2("optim.betas", optim.betas, "[0.9, 0.999]", 0, 0.999999, "AdamW betas"),
    KF("optim.eps", optim.eps, "1e-8", 1e-12, 1, "AdamW epsilon"),
    KF("optim.layer_decay", optim.layer_decay, "0.9", 0.01, 1, "layer-wise lr decay"),
    KF("optim.patch_embed_lr_mult", optim.patch_embed_lr_mult, "0.2", 0, 10, "extra lr multiplier of patch_embed"),
    KF("optim.clip_grad", optim.clip_grad, "3", 0, 1e6, "per-submodule gradient norm clip (0 = off)"),
    KF("optim.freeze_last_layer_epochs", optim.freeze_last_layer_epochs, "1", 0, 1e6, "epochs with the head prototypes frozen"),
    KE("optim.lr_scaling", optim.lr_scaling, "sqrt_wrt_1024", "none|sqrt_wrt_1024|linear_wrt_256",
       "lr scaling with the global batch (DINOv3's rule: lr*4*sqrt(B/1024))"),
    /* ---- multi-crop and augmentation ---- */
    KI("crops.global_size", crops.global_size, "224", 8, 4096, "global crop side in pixels"),
    K2("crops.global_scale", crops.global_scale, "[0.32, 1.0]", 1e-4, 1, "RandomResizedCrop area fraction range of global crops"),
    KI("crops.local_size", crops.local_size, "96", 8, 4096, "local crop side in pixels"),
    K2("crops.local_scale", crops.local_scale, "[0.05, 0.32]", 1e-4, 1, "RandomResizedCrop area fraction range of local crops"),
    KI("crops.local_count", crops.local_count, "8", 0, 64, "local crops per image"),
    KF("crops.flip_p", crops.flip_p, "0.5", 0, 1, "horizontal flip probability"),
    KF("crops.blur_p_global1", crops.blur_p_global1, "0", 0, 1, "blur probability of global crop 1 (effective DINOv3 value: never)"),
    KF("crops.blur_p_global2", crops.blur_p_global2, "0.9", 0, 1, "blur probability of global crop 2 (effective DINOv3 value 0.9)"),
    KF("crops.blur_p_local", crops.blur_p_local, "0.5", 0, 1, "blur probability of each local crop"),
    K2("crops.blur_sigma", crops.blur_sigma, "[0.1, 2.0]", 0.01, 20, "Gaussian blur sigma range (pixels, 9x9 kernel)"),
    KF("crops.noise_p", crops.noise_p, "0.2", 0, 1, "probability of additive Gaussian HU noise per crop"),
    K2("crops.noise_hu", crops.noise_hu, "[0, 20]", 0, 1000, "noise standard deviation range in HU"),
    KF("crops.mask_prob", crops.mask_prob, "0.5", 0, 1, "fraction of global crops that get an iBOT mask"),
    K2("crops.mask_ratio", crops.mask_ratio, "[0.1, 0.5]", 0, 1, "iBOT mask ratio range"),
    /* ---- CT data ---- */
    KS("data.root", data.root, "\"\"", "dataset location (store directory); empty = set by the command"),
    KB("data.stack25d", data.stack25d, "true", "2.5D input: slices z-d, z, z+d as channels (false = centre slice x3)"),
    KF("data.slice_spacing_mm", data.slice_spacing_mm, "2", 0.1, 50, "2.5D slice distance d in mm (nearest slice)"),
    KF("data.pixel_spacing_mm", data.pixel_spacing_mm, "0.7", 0, 10, "in-plane resampling target in mm (0 = native)"),
    KF("data.focus_p", data.focus_p, "0", 0, 1,
       "probability that a sample is aimed at one of the store's annotated nodules: a slice within its central half and every crop holding its centre (locations only, never ratings; 0 = uniform slices, as DINOv3)"),
    {"data.windows", T_WINDOWS, F(data.windows), 0, "[[1500, -600, 150, 400], [400, 40, 60, 150]]", -4000, 8000, NULL,
     "base windows [width, level, level_jitter, width_jitter] in HU; one is picked per draw"},
    KF("data.window_shift_p", data.window_shift_p, "0.5", 0, 1, "probability of drawing the level from U(L0 +- level_jitter)"),
    KF("data.window_scale_p", data.window_scale_p, "0.5", 0, 1, "probability of drawing the width from U(W0 +- width_jitter)"),
    KB("data.window_per_crop", data.window_per_crop, "true", "each crop draws its own window (false = one per image)"),
    KB("data.fixed_window", data.fixed_window, "false", "no window randomisation: always the first base window (eval)"),
    KF("data.norm_mean", data.norm_mean, "0.5", -10, 10, "after windowing to [0,1]: x = (x - mean) / std"),
    KF("data.norm_std", data.norm_std, "0.25", 1e-3, 10, "normalisation std"),
    /* ---- run ---- */
    KI("train.epochs", train.epochs, "100", 1, 1000000, "epochs"),
    KI("train.epoch_length", train.epoch_length, "1250", 1, 100000000, "steps per epoch"),
    KI("train.batch_size", train.batch_size, "64", 1, 65536, "images per step, over all ranks (each rank takes batch_size / ranks)"),
    KL("train.seed", train.seed, "0", 0, 9.007199254740992e15, "run seed: names every random stream"),
    KI("train.threads", train.threads, "2", 0, 256, "loader worker threads (0 = load in the caller)"),
    KI("train.compute_threads", train.compute_threads, "0", 0, 1024, "CPU backend (OpenMP) threads (0 = train.threads; both 0: all cores)"),
    KI("train.prefetch", train.prefetch, "2", 1, 64, "batches the loader may prepare ahead"),
    KI("train.ckpt_every_steps", train.ckpt_every_steps, "1000", 0, 100000000, "checkpoint every N steps (0 = off)"),
    KF("train.ckpt_every_minutes", train.ckpt_every_minutes, "30", 0, 1e6, "also checkpoint every M minutes (0 = off)"),
    KI("train.keep_last", train.keep_last, "3", 1, 1000, "rolling checkpoints kept"),
    KI("train.milestone_every", train.milestone_every, "0", 0, 100000000, "also keep every checkpoint whose step is a multiple (0 = none)"),
    KI("train.log_every", train.log_every, "10", 1, 1000000, "metrics / progress every N steps"),
    KI("train.collapse_window", train.collapse_window, "100", 0, 100000000,
       "collapse alarm: steps after the lr warm-up with the DINO targets uniform before it fires (0 = off)"),
    KE("train.checkpointing", train.checkpointing, "none", "none|block|selective",
       "activation checkpointing: block = keep each block's input, recompute the block in backward (~1/3 more compute, far less memory); selective = keep the GEMM and attention outputs, recompute the element-wise ops (no GEMM twice, less saved); gradients bit-identical either way"),
    KI("train.teacher_chunk", train.teacher_chunk, "0", 0, 131072,
       "global crops per EMA / Gram teacher forward (0 = all 2 x batch at once): the passes without backward run in chunks of the largest divisor of 2 x batch not above it, so their internals are allocated for one chunk; results equal to rounding"),
    KI("train.micro_batch", train.micro_batch, "0", 0, 65536,
       "images per student pass on a rank (0 = the rank's whole batch): the student runs forward and backward over slices of this many images in turn and accumulates their gradients, while the teachers, Sinkhorn-Knopp and the update see the whole batch; the same step to rounding (stochastic depth keeps the same share of every pass, as of every data-parallel rank) with the student's activations of one slice; must divide the rank's batch, and loss.koleo_group (0: the slice) must divide it"),
    KB("train.ibot_recompute", train.ibot_recompute, "false",
       "the iBOT teacher keeps its bottleneck features instead of its [masked patches, ibot_k] logits: Sinkhorn-Knopp runs over the student passes' masked patches in chunks, recomputing their logits in each of its sk_iters + 2 passes, and each pass's targets are formed before its loss; the same targets to rounding with one pass's [M, K] in memory instead of the batch's (pays with train.micro_batch; costs sk_iters + 2 more last-layer GEMMs of the teacher); needs Sinkhorn-Knopp centring"),
    KB("train.stop_on_collapse", train.stop_on_collapse, "false", "stop training (exit non-zero) when the collapse alarm fires"),
    KB("train.overlap_allreduce", train.overlap_allreduce, "true",
       "data parallel: all-reduce each block's gradients as soon as backward is through it (false: one all-reduce after backward)"),
    KF("train.comm_timeout_s", train.comm_timeout_s, "1800", 10, 1e7,
       "data parallel: a step that takes this long (a dead or hung rank) ends every rank with an error"),
};
#define N_KEYS ((int)(sizeof SCHEMA / sizeof SCHEMA[0]))

int dx_config_n_keys(void) { return N_KEYS; }
const char *dx_config_key(int i) { return i >= 0 && i < N_KEYS ? SCHEMA[i].key : NULL; }

static const key_spec *find_key(const char *key) {
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(SCHEMA[i].key, key) == 0) return &SCHEMA[i];
    return NULL;
}

static int levenshtein(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int s = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < s) s = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < s) s = d[i][j - 1] + 1;
            d[i][j] = s;
        }
    return d[la][lb];
}

/* Closest key for "did you mean" (also matches a misplaced section: lr -> optim.lr). */
static const char *suggest(const char *key) {
    const char *best = NULL;
    int bd = 1 << 30;
    const char *leaf = strrchr(key, '.');
    leaf = leaf ? leaf + 1 : key;
    for (int i = 0; i < N_KEYS; i++) {
        int d = levenshtein(key, SCHEMA[i].key);
        const char *kl = strrchr(SCHEMA[i].key, '.') + 1;
        if (strcmp(kl, leaf) == 0 && d > 2) d = 2;
        if (d < bd) bd = d, best = SCHEMA[i].key;
    }
    int lim = (int)strlen(key) / 3;
    if (lim < 2) lim = 2;
    return bd <= lim ? best : NULL;
}

static dx_status unknown_key(dx_err *err, const char *where, const char *key) {
    const char *s = suggest(key);
    if (s) return dx_fail(err, DX_EINVAL, "%s: unknown key '%s' (did you mean %s?)", where, key, s);
    return dx_fail(err, DX_EINVAL, "%s: unknown key '%s'", where, key);
}

/* ---- value parsing --------------------------------------------------------- */

static dx_status parse_double(const char *s, double *v, const key_spec *k, const char *where, dx_err *err) {
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    while (end && isspace((unsigned char)*end)) end++;
    if (end == s || *end || errno == ERANGE || !isfinite(*v))
        return dx_fail(err, DX_EINVAL, "%s: %s: '%s' is not a number", where, k->key, s);
    if (*v < k->lo || *v > k->hi)
        return dx_fail(err, DX_EINVAL, "%s: %s = %s is out of range [%g, %g]", where, k->key, s, k->lo, k->hi);
    return DX_OK;
}

static const char *scalar_text(yaml_node_t *n) { return (const char *)n->data.scalar.value; }

/* Reads numbers of a (possibly nested-one-level) flow/block sequence. */
static dx_status seq_numbers(yaml_document_t *doc, yaml_node_t *n, double *v, int want_min, int want_max,
                             int *got, const key_spec *k, const char *where, dx_err *err) {
    if (!n || n->type != YAML_SEQUENCE_NODE)
        return dx_fail(err, DX_EINVAL, "%s: %s: expected a list like [a, b]", where, k->key);
    int i = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++, i++) {
        yaml_node_t *e = yaml_document_get_node(doc, *it);
        if (i >= want_max || !e || e->type != YAML_SCALAR_NODE)
            return dx_fail(err, DX_EINVAL, "%s: %s: expected %d..%d numbers", where, k->key, want_min, want_max);
        dx_status s = parse_double(scalar_text(e), &v[i], k, where, err);
        if (s) return s;
    }
    if (i < want_min)
        return dx_fail(err, DX_EINVAL, "%s: %s: expected %d..%d numbers, got %d", where, k->key, want_min,
                       want_max, i);
    *got = i;
    return DX_OK;
}

/* Sets the field of k in c from node n (NULL node = empty scalar). */
static dx_status set_value(dx_config *c, const key_spec *k, yaml_document_t *doc, yaml_node_t *n,
                           const char *where, dx_err *err) {
    char *base = (char *)c + k->off;
    const char *txt = "";
    if (n && n->type == YAML_SCALAR_NODE) txt = scalar_text(n);
    int is_scalar = !n || n->type == YAML_SCALAR_NODE;
    if (k->type != T_FLOAT2 && k->type != T_WINDOWS && !is_scalar)
        return dx_fail(err, DX_EINVAL, "%s: %s: expected a single value, got a %s", where, k->key,
                       n->type == YAML_MAPPING_NODE ? "mapping" : "list");
    switch (k->type) {
    case T_INT:
    case T_I64: {
        char *end;
        errno = 0;
        long long v = strtoll(txt, &end, 10);
        if (end == txt || *end || errno == ERANGE)
            return dx_fail(err, DX_EINVAL, "%s: %s: '%s' is not an integer", where, k->key, txt);
        if ((double)v < k->lo || (double)v > k->hi)
            return dx_fail(err, DX_EINVAL, "%s: %s = %lld is out of range [%.0f, %.0f]", where, k->key, v, k->lo, k->hi);
        if (k->type == T_INT) *(int *)base = (int)v;
        else *(int64_t *)base = v;
        return DX_OK;
    }
    case T_FLOAT: {
        double v;
        dx_status s = parse_double(txt, &v, k, where, err);
        if (!s) *(float *)base = (float)v;
        return s;
    }
    case T_BOOL: {
        static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
        for (int i = 0; i < 4; i++) {
            if (strcasecmp(txt, yes[i]) == 0) return *(int *)base = 1, DX_OK;
            if (strcasecmp(txt, no[i]) == 0) return *(int *)base = 0, DX_OK;
        }
        return dx_fail(err, DX_EINVAL, "%s: %s: '%s' is not a boolean (true/false)", where, k->key, txt);
    }
    case T_STR:
        if (strlen(txt) >= k->size)
            return dx_fail(err, DX_EINVAL, "%s: %s: value longer than %zu characters", where, k->key, k->size - 1);
        memcpy(base, txt, strlen(txt) + 1);
        return DX_OK;
    case T_ENUM: {
        const char *p = k->allowed;
        size_t l = strlen(txt);
        while (*p) {
            const char *q = strchr(p, '|');
            size_t m = q ? (size_t)(q - p) : strlen(p);
            if (m == l && strncmp(p, txt, l) == 0 && l < k->size) {
                memcpy(base, txt, l + 1);
                return DX_OK;
            }
            p += m + (q ? 1 : 0);
        }
        return dx_fail(err, DX_EINVAL, "%s: %s: '%s' is not one of %s", where, k->key, txt, k->allowed);
    }
    case T_FLOAT2: {
        double v[2];
        int got;
        dx_status s = seq_numbers(doc, n, v, 2, 2, &got, k, where, err);
        if (s) return s;
        if (v[0] > v[1])
            return dx_fail(err, DX_EINVAL, "%s: %s: range [%g, %g] has min > max", where, k->key, v[0], v[1]);
        ((float *)base)[0] = (float)v[0];
        ((float *)base)[1] = (float)v[1];
        return DX_OK;
    }
    case T_WINDOWS: {
        if (!n || n->type != YAML_SEQUENCE_NODE)
            return dx_fail(err, DX_EINVAL, "%s: %s: expected a list of [width, level, level_jitter, width_jitter]",
                           where, k->key);
        dx_window_spec w[DX_CFG_MAX_WINDOWS];
        int nw = 0;
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
            if (nw == DX_CFG_MAX_WINDOWS)
                return dx_fail(err, DX_EINVAL, "%s: %s: at most %d windows", where, k->key, DX_CFG_MAX_WINDOWS);
            double v[4] = {0, 0, 0, 0};
            int got;
            dx_status s = seq_numbers(doc, yaml_document_get_node(doc, *it), v, 2, 4, &got, k, where, err);
            if (s) return s;
            if (v[0] <= 0 || v[2] < 0 || v[3] < 0 || v[3] >= v[0])
                return dx_fail(err, DX_EINVAL,
                               "%s: %s: window %d: need width > 0, jitters >= 0 and width_jitter < width",
                               where, k->key, nw);
            w[nw++] = (dx_window_spec){(float)v[0], (float)v[1], (float)v[2], (float)v[3]};
        }
        if (nw == 0) return dx_fail(err, DX_EINVAL, "%s: %s: at least one window is needed", where, k->key);
        memcpy(c->data.windows, w, sizeof w);
        c->data.n_windows = nw;
        return DX_OK;
    }
    }
    return dx_fail(err, DX_EINVAL, "%s: %s: bad schema type", where, k->key);
}

/* Parses a YAML text into a document; root may be NULL for an empty text. */
static dx_status parse_doc(yaml_document_t *doc, const char *text, const char *name, dx_err *err) {
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return dx_fail(err, DX_ENOMEM, "yaml parser init failed");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
    if (!yaml_parser_load(&p, doc)) {
        dx_status s = dx_fail(err, DX_EFORMAT, "%s:%zu:%zu: YAML syntax error: %s", name,
                              p.problem_mark.line + 1, p.problem_mark.column + 1,
                              p.problem ? p.problem : "?");
        yaml_parser_delete(&p);
        return s;
    }
    yaml_parser_delete(&p);
    return DX_OK;
}

static dx_status set_from_text(dx_config *c, const key_spec *k, const char *text, const char *where, dx_err *err) {
    yaml_document_t doc;
    dx_status s = parse_doc(&doc, text, where, err);
    if (s) return s;
    s = set_value(c, k, &doc, yaml_document_get_root_node(&doc), where, err);
    yaml_document_delete(&doc);
    return s;
}

void dx_config_defaults(dx_config *c) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < N_KEYS; i++) {
        dx_err e;
        /* Defaults are literals of this file; a failure is a schema bug caught by test_config. */
        if (set_from_text(c, &SCHEMA[i], SCHEMA[i].def, "default", &e))
            dx_log(DX_LOG_ERROR, "config schema: bad default: %s", e.msg);
    }
}

/* ---- YAML files ---------------------------------------------------------- */

static int has_prefix_key(const char *prefix) {
    size_t l = strlen(prefix);
    for (int i = 0; i < N_KEYS; i++)
        if (strncmp(SCHEMA[i].key, prefix, l) == 0 && SCHEMA[i].key[l] == '.') return 1;
    return 0;
}

static dx_status walk(dx_config *c, yaml_document_t *doc, yaml_node_t *map, const char *prefix,
                      const char *name, unsigned char *seen, dx_err *err) {
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = yaml_document_get_node(doc, pr->key);
        yaml_node_t *vn = yaml_document_get_node(doc, pr->value);
        char where[512];
        snprintf(where, sizeof where, "%s:%zu", name, kn->start_mark.line + 1);
        if (kn->type != YAML_SCALAR_NODE) return dx_fail(err, DX_EINVAL, "%s: keys must be plain names", where);
        char path[256];
        int l = snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", scalar_text(kn));
        if (l >= (int)sizeof path) return dx_fail(err, DX_EINVAL, "%s: key too long", where);
        const key_spec *k = find_key(path);
        if (k) {
            int idx = (int)(k - SCHEMA);
            if (seen[idx]) return dx_fail(err, DX_EINVAL, "%s: duplicate key '%s'", where, path);
            seen[idx] = 1;
            dx_status s = set_value(c, k, doc, vn, where, err);
            if (s) return s;
        } else if (vn->type == YAML_MAPPING_NODE && has_prefix_key(path)) {
            dx_status s = walk(c, doc, vn, path, name, seen, err);
            if (s) return s;
        } else if (has_prefix_key(path)) {
            /* an empty section ("optim:" with everything commented out) is fine */
            if (vn->type == YAML_SCALAR_NODE && vn->data.scalar.length == 0 &&
                vn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
                continue;
            return dx_fail(err, DX_EINVAL, "%s: '%s' is a section and needs a mapping of keys", where, path);
        } else {
            return unknown_key(err, where, path);
        }
    }
    return DX_OK;
}

dx_status dx_config_load_string(dx_config *c, const char *yaml, const char *name, dx_err *err) {
    yaml_document_t doc;
    dx_status s = parse_doc(&doc, yaml, name, err);
    if (s) return s;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    unsigned char seen[N_KEYS];
    memset(seen, 0, sizeof seen);
    if (!root) s = DX_OK; /* empty file: all defaults */
    else if (root->type != YAML_MAPPING_NODE)
        s = dx_fail(err, DX_EINVAL, "%s:%zu: the top level must be a mapping of sections", name,
                    root->start_mark.line + 1);
    else s = walk(c, &doc, root, "", name, seen, err);
    yaml_document_delete(&doc);
    return s;
}

dx_status dx_config_load_file(dx_config *c, const char *path, dx_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return dx_fail(err, DX_EIO, "open config %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (n < cap - 1) break;
        if (cap > (64u << 20)) { free(buf); buf = NULL; break; }
        char *nb = realloc(buf, cap *= 2);
        if (!nb) { free(buf); buf = NULL; break; }
        buf = nb;
    }
    int rerr = ferror(f);
    fclose(f);
    if (!buf) return dx_fail(err, DX_ENOMEM, "config %s: too large or out of memory", path);
    if (rerr) { free(buf); return dx_fail(err, DX_EIO, "read config %s failed", path); }
    buf[n] = 0;
    /* libyaml stops at a NUL, so a binary or damaged file read as an empty config and
     * trained the defaults; an empty file is refused for the same reason */
    const char *nul = memchr(buf, 0, n);
    if (nul) {
        size_t line = 1;
        for (const char *q = buf; q < nul; q++) line += *q == '\n';
        const size_t at = (size_t)(nul - buf);
        free(buf);
        return dx_fail(err, DX_EFORMAT, "config %s:%zu: NUL byte at offset %zu: not a YAML text file", path, line, at);
    }
    int has_content = 0;
    for (const char *q = buf; *q && !has_content;) {
        while (*q == ' ' || *q == '\t' || *q == '\r') q++;
        if (*q && *q != '\n' && *q != '#') has_content = 1;
        while (*q && *q != '\n') q++;
        if (*q) q++;
    }
    if (!has_content) {
        free(buf);
        return dx_fail(err, DX_EINVAL, "config %s is empty (only blanks or comments): it would train the defaults; "
                       "start from configs/demo.yaml or configs/vits16_lidc.yaml", path);
    }
    dx_status s = dx_config_load_string(c, buf, path, err);
    free(buf);
    return s;
}

dx_status dx_config_override(dx_config *c, const char *a, dx_err *err) {
    const char *eq = strchr(a, '=');
    if (!eq || eq == a) return dx_fail(err, DX_EINVAL, "override '%s': expected key=value", a);
    char key[256], where[320];
    size_t kl = (size_t)(eq - a);
    if (kl >= sizeof key) return dx_fail(err, DX_EINVAL, "override '%s': key too long", a);
    memcpy(key, a, kl);
    key[kl] = 0;
    snprintf(where, sizeof where, "override '%s'", key);
    const key_spec *k = find_key(key);
    if (!k) return unknown_key(err, "command line override", key);
    return set_from_text(c, k, eq + 1, where, err);
}

/* ---- cross-key validation -------------------------------------------------- */

int dx_config_precision(const dx_config *c) {
    return strcmp(c->model.precision, "bf16") == 0 ? DX_PREC_BF16 : DX_PREC_FP32;
}

void dx_config_mask_rule(const dx_config *c, double *prob, float *ratio_min, float *ratio_max) {
    *prob = round(c->crops.mask_prob * 1e6) / 1e6;
    *ratio_min = (float)(round(c->crops.mask_ratio[0] * 1e6) / 1e6);
    *ratio_max = (float)(round(c->crops.mask_ratio[1] * 1e6) / 1e6);
}

dx_status dx_config_vit(const dx_config *c, dx_vit_config *v, dx_err *err) {
    dx_status s = dx_vit_config_named(v, c->model.arch, err);
    if (s) return s;
    if (c->model.dim) v->dim = c->model.dim;
    if (c->model.depth) v->depth = c->model.depth;
    if (c->model.heads) v->heads = c->model.heads;
    v->patch = c->model.patch;
    v->registers = c->model.registers;
    if (strcmp(c->model.ffn, "mlp") == 0) v->ffn = DX_FFN_MLP;
    else if (strcmp(c->model.ffn, "swiglu") == 0) v->ffn = DX_FFN_SWIGLU;
    v->ffn_hidden = v->ffn == DX_FFN_SWIGLU ? dx_swiglu_width(4 * v->dim, 8) : 4 * v->dim;
    if (c->model.ffn_hidden) v->ffn_hidden = c->model.ffn_hidden;
    v->ln_eps = c->model.ln_eps;
    v->layerscale_init = c->model.layerscale;
    v->drop_path = c->model.drop_path;
    v->rope_rescale = c->model.rope_rescale;
    v->rope_jitter = c->model.rope_jitter;
    v->rope_shift = c->model.rope_shift;
    if (v->dim <= 0 || v->depth <= 0 || v->heads <= 0)
        return dx_fail(err, DX_EINVAL, "model.arch = custom needs model.dim, model.depth and model.heads");
    s = dx_vit_config_check(v, err);
    if (s) return dx_fail_prefix(err, "model keys");
    return DX_OK;
}

void dx_config_loader_opts(const dx_config *c, int eval, dx_loader_opts *o) {
    dx_loader_opts_default(o);
    o->seed = (uint64_t)c->train.seed;
    o->batch_size = c->train.batch_size;
    o->global_size = c->crops.global_size;
    o->local_size = c->crops.local_size;
    o->n_local = c->crops.local_count;
    memcpy(o->global_scale, c->crops.global_scale, sizeof o->global_scale);
    memcpy(o->local_scale, c->crops.local_scale, sizeof o->local_scale);
    o->flip_p = eval ? 0 : c->crops.flip_p;
    o->blur_p[0] = eval ? 0 : c->crops.blur_p_global1;
    o->blur_p[1] = eval ? 0 : c->crops.blur_p_global2;
    o->blur_p[2] = eval ? 0 : c->crops.blur_p_local;
    memcpy(o->blur_sigma, c->crops.blur_sigma, sizeof o->blur_sigma);
    o->noise_p = eval ? 0 : c->crops.noise_p;
    memcpy(o->noise_hu, c->crops.noise_hu, sizeof o->noise_hu);
    o->stack25d = c->data.stack25d;
    o->slice_spacing_mm = c->data.slice_spacing_mm;
    o->pixel_spacing_mm = c->data.pixel_spacing_mm;
    o->focus_p = eval ? 0 : c->data.focus_p;
    o->n_windows = c->data.n_windows;
    memcpy(o->windows, c->data.windows, sizeof o->windows);
    o->window_shift_p = c->data.window_shift_p;
    o->window_scale_p = c->data.window_scale_p;
    o->window_per_crop = c->data.window_per_crop;
    o->fixed_window = eval || c->data.fixed_window;
    o->norm_mean = c->data.norm_mean;
    o->norm_std = c->data.norm_std;
    o->gram_size = c->gram.enabled ? (int)lroundf(c->crops.global_size * c->gram.teacher_res_factor) : 0;
    o->threads = c->train.threads;
    o->prefetch = c->train.prefetch;
}

double dx_config_peak_lr(const dx_config *c) {
    double B = c->train.batch_size;
    if (strcmp(c->optim.lr_scaling, "sqrt_wrt_1024") == 0) return c->optim.lr * 4.0 * sqrt(B / 1024.0);
    if (strcmp(c->optim.lr_scaling, "linear_wrt_256") == 0) return c->optim.lr * B / 256.0;
    return c->optim.lr;
}

int64_t dx_config_total_steps(const dx_config *c) {
    return (int64_t)c->train.epochs * c->train.epoch_length;
}

dx_status dx_config_validate(const dx_config *c, dx_err *err) {
    dx_vit_config v;
    dx_status s = dx_config_vit(c, &v, err);
    if (s) return s;
    dx_backend_params bp = {0};
    if ((s = dx_backend_parse_device(c->model.backend, &bp, err))) return s;
    int p = c->model.patch;
    if (c->crops.global_size % p)
        return dx_fail(err, DX_EINVAL, "crops.global_size = %d is not a multiple of model.patch = %d",
                       c->crops.global_size, p);
    if (c->crops.local_count > 0 && c->crops.local_size % p)
        return dx_fail(err, DX_EINVAL, "crops.local_size = %d is not a multiple of model.patch = %d",
                       c->crops.local_size, p);
    if (c->gram.enabled) {
        int g = (int)lroundf(c->crops.global_size * c->gram.teacher_res_factor);
        if (g % p)
            return dx_fail(err, DX_EINVAL,
                           "gram.teacher_res_factor: Gram crop %d px (global_size x factor) is not a multiple of model.patch = %d",
                           g, p);
    }
    if (c->optim.min_lr > c->optim.lr)
        return dx_fail(err, DX_EINVAL, "optim.min_lr = %g exceeds optim.lr = %g", c->optim.min_lr, c->optim.lr);
    if (c->optim.warmup_epochs > c->train.epochs)
        return dx_fail(err, DX_EINVAL, "optim.warmup_epochs = %g exceeds train.epochs = %d", c->optim.warmup_epochs,
                       c->train.epochs);
    if (c->teacher.momentum_start > c->teacher.momentum_end)
        return dx_fail(err, DX_EINVAL, "teacher.momentum_start = %g exceeds teacher.momentum_end = %g",
                       c->teacher.momentum_start, c->teacher.momentum_end);
    if (c->model.rope_rescale != 0 && c->model.rope_rescale < 1)
        return dx_fail(err, DX_EINVAL, "model.rope_rescale must be 0 (off) or >= 1");
    if (c->model.rope_jitter != 0 && c->model.rope_jitter < 1)
        return dx_fail(err, DX_EINVAL, "model.rope_jitter must be 0 (off) or >= 1");
    if (c->crops.global_scale[0] <= 0 || c->crops.local_scale[0] <= 0)
        return dx_fail(err, DX_EINVAL, "crops.*_scale: the minimum area fraction must be > 0");
    if (c->data.n_windows < 1) return dx_fail(err, DX_EINVAL, "data.windows: at least one window is needed");
    if (dx_config_total_steps(c) > ((int64_t)1 << 40))
        return dx_fail(err, DX_EINVAL, "train.epochs x train.epoch_length is absurdly large");
    return DX_OK;
}

dx_status dx_config_resolve(dx_config *c, const char *path, const char *const *ov, int n, dx_err *err) {
    dx_config_defaults(c);
    dx_status s = DX_OK;
    if (path && (s = dx_config_load_file(c, path, err))) return s;
    for (int i = 0; i < n; i++)
        if ((s = dx_config_override(c, ov[i], err))) return s;
    return dx_config_validate(c, err);
}

/* ---- dump ------------------------------------------------------------------ */

/* Shortest %g text that reads back to the same float. */
static void fmt_float(char *buf, size_t len, float v) {
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, len, "%.*g", prec, (double)v);
        if ((float)strtod(buf, NULL) == v) return;
    }
}

static void value_text(const dx_config *c, const key_spec *k, char *buf, size_t len) {
    const char *base = (const char *)c + k->off;
    char a[40], b[40], cc[40], d[40];
    switch (k->type) {
    case T_INT: snprintf(buf, len, "%d", *(const int *)base); break;
    case T_I64: snprintf(buf, len, "%lld", (long long)*(const int64_t *)base); break;
    case T_FLOAT: fmt_float(buf, len, *(const float *)base); break;
    case T_BOOL: snprintf(buf, len, "%s", *(const int *)base ? "true" : "false"); break;
    case T_ENUM: snprintf(buf, len, "%s", base); break;
    case T_STR: {
        /* YAML double-quoted: escape whatever would not read back as itself -
         * quote, backslash, C0/C1 controls (a raw newline is folded, others are
         * refused by the parser), the line breaks U+2028/2029 and the
         * non-characters U+FEFF, U+FFFE, U+FFFF. Values are UTF-8 (libyaml). */
        size_t o = 0;
        buf[o++] = '"';
        for (const unsigned char *p = (const unsigned char *)base; *p && o + 8 < len; p++) {
            if (*p == '"' || *p == '\\') {
                buf[o++] = '\\';
                buf[o++] = (char)*p;
            } else if (*p < 0x20 || *p == 0x7f) {
                o += (size_t)snprintf(buf + o, len - o, "\\x%02x", *p);
            } else if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
                o += (size_t)snprintf(buf + o, len - o, "\\x%02x", p[1]);
                p++;
            } else if ((p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) ||
                       (p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf) ||
                       (p[0] == 0xef && p[1] == 0xbf && (p[2] == 0xbe || p[2] == 0xbf))) {
                unsigned cp = (unsigned)(p[0] & 0x0f) << 12 | (unsigned)(p[1] & 0x3f) << 6 | (p[2] & 0x3fu);
                o += (size_t)snprintf(buf + o, len - o, "\\u%04x", cp);
                p += 2;
            } else {
                buf[o++] = (char)*p;
            }
        }
        buf[o++] = '"';
        buf[o] = 0;
        break;
    }
    case T_FLOAT2:
        fmt_float(a, sizeof a, ((const float *)base)[0]);
        fmt_float(b, sizeof b, ((const float *)base)[1]);
        snprintf(buf, len, "[%s, %s]", a, b);
        break;
    case T_WINDOWS: {
        size_t o = (size_t)snprintf(buf, len, "[");
        for (int i = 0; i < c->data.n_windows && o < len; i++) {
            const dx_window_spec *w = &c->data.windows[i];
            fmt_float(a, sizeof a, w->width);
            fmt_float(b, sizeof b, w->level);
            fmt_float(cc, sizeof cc, w->level_jitter);
            fmt_float(d, sizeof d, w->width_jitter);
            o += (size_t)snprintf(buf + o, len - o, "%s[%s, %s, %s, %s]", i ? ", " : "", a, b, cc, d);
        }
        if (o < len) snprintf(buf + o, len - o, "]");
        break;
    }
    }
}

dx_status dx_config_get_text(const dx_config *c, const char *key, char *buf, size_t len, dx_err *err) {
    const key_spec *k = find_key(key);
    if (!k) return unknown_key(err, "dx_config_get_text", key);
    value_text(c, k, buf, len);
    return DX_OK;
}

dx_status dx_config_dump(const dx_config *c, FILE *f, dx_err *err) {
    fprintf(f, "# dinox training configuration (resolved: every key, reloadable with --config)\n");
    char section[64] = "";
    for (int i = 0; i < N_KEYS; i++) {
        const key_spec *k = &SCHEMA[i];
        const char *dot = strchr(k->key, '.');
        size_t sl = (size_t)(dot - k->key);
        if (strlen(section) != sl || strncmp(section, k->key, sl) != 0) {
            memcpy(section, k->key, sl);
            section[sl] = 0;
            fprintf(f, "%s:\n", section);
        }
        char v[2048]; /* a 255-byte string of escaped controls is 1022 */
        value_text(c, k, v, sizeof v);
        fprintf(f, "  %s: %s  # %s\n", dot + 1, v, k->help);
    }
    if (ferror(f)) return dx_fail(err, DX_EIO, "writing config dump failed");
    return DX_OK;
}

dx_status dx_config_save(const dx_config *c, const char *path, dx_err *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return dx_fail(err, DX_EIO, "create %s: %s", path, strerror(errno));
    dx_status s = dx_config_dump(c, f, err);
    if (fclose(f) != 0 && !s) s = dx_fail(err, DX_EIO, "close %s: %s", path, strerror(errno));
    return s;
}

void dx_config_write_schema_md(FILE *f) {
    static const char *tn[] = {"int", "int", "float", "bool", "string", "enum", "[float, float]", "list of windows"};
    fprintf(f, "| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n");
    for (int i = 0; i < N_KEYS; i++) {
        const key_spec *k = &SCHEMA[i];
        char range[160];
        if (k->type == T_ENUM) {
            size_t o = 0;
            for (const char *p = k->allowed; *p && o + 4 < sizeof range; p++)
                o += (size_t)snprintf(range + o, sizeof range - o, *p == '|' ? ", " : "%c", *p);
        } else if (k->type == T_STR || k->type == T_BOOL) {
            range[0] = 0;
        } else if (k->type == T_WINDOWS) {
            snprintf(range, sizeof range, "1..%d windows", DX_CFG_MAX_WINDOWS);
        } else {
            snprintf(range, sizeof range, "[%g, %g]", k->lo, k->hi);
        }
        fprintf(f, "| `%s` | %s | `%s` | %s | %s |\n", k->key, tn[k->type], k->def, range, k->help);
    }
}
