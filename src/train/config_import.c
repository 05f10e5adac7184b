/* config_import.c - see config_import.h. */
#include "train/config_import.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "core/dx_file.h"
#include "nn/vit.h"

typedef enum { K_MAP, K_SAME, K_IGN, K_FN } kind;
typedef enum {
    F_NONE, F_ARCH, F_FFN, F_FFN_RATIO, F_BATCH, F_FLIP, F_GRAM_SIZE, F_BETA1, F_BETA2, F_CENTER, F_PREC, F_CKPT,
    F_ROPE_AUG, F_REWEIGHT, F_LOCAL_W, F_GRAM_FREQ, F_NULL0, F_KEEP_EVERY
} fn_id;

typedef struct rule {
    const char *key;    /* DINOv3 dotted key; a trailing '.' matches a whole section */
    kind k;
    const char *target; /* K_MAP / K_FN: dinox key; K_SAME: the value dinox behaves as */
    fn_id fn;
    const char *note;
} rule;

#define MAP(k, t) {k, K_MAP, t, F_NONE, NULL}
#define SAME(k, v, n) {k, K_SAME, v, F_NONE, n}
#define IGN(k, n) {k, K_IGN, NULL, F_NONE, n}
#define FN(k, t, f, n) {k, K_FN, t, f, n}

static const rule RULES[] = {
    SAME("MODEL.META_ARCHITECTURE", "SSLMetaArch", "dinox implements SSLMetaArch"),
    IGN("MODEL.DEVICE", "device: model.backend or --device"),
    SAME("MODEL.WEIGHTS", "", "initial weights: dinox train --init (tools/convert_dinov3_pth.py converts a .pth)"),
    IGN("MODEL.DTYPE", "dinox keeps weights in fp32; see compute_precision.param_dtype"),
    FN("compute_precision.param_dtype", "model.precision", F_PREC, "bf16 GEMMs with fp32 accumulation"),
    SAME("compute_precision.reduce_dtype", "fp32", "gradients are reduced in fp32"),
    MAP("dino.loss_weight", "loss.dino"),
    SAME("dino.global_ignore_diagonal", "true", "global DINO pairs are the cross pairs"),
    MAP("dino.head_n_prototypes", "heads.dino_k"),
    MAP("dino.head_bottleneck_dim", "heads.dino_bottleneck"),
    MAP("dino.head_norm_last_layer", "heads.norm_last_layer"),
    MAP("dino.head_nlayers", "heads.nlayers"),
    MAP("dino.head_hidden_dim", "heads.dino_hidden"),
    MAP("dino.koleo_loss_weight", "loss.koleo"),
    SAME("dino.koleo_loss_distributed", "false", "KoLeo over each rank's batch, or loss.koleo_group images"),
    SAME("dino.koleo_topk", "1", "nearest neighbour only"),
    SAME("dino.koleo_distributed_replicas", "0", NULL),
    FN("dino.koleo_distributed_loss_group_size", "loss.koleo_group", F_NULL0, "null = each rank's batch"),
    SAME("dino.koleo_distributed_loss_group_data", "true", NULL),
    SAME("dino.force_weight_norm", "false", "heads.norm_last_layer is the weight-norm switch"),
    FN("dino.reweight_dino_local_loss", NULL, F_REWEIGHT, "false: local term weight 1"),
    FN("dino.local_loss_weight_schedule.start", "loss.local_weight_start", F_LOCAL_W, NULL),
    IGN("dino.local_loss_weight_schedule.peak", "dinox ramps start -> end (half cosine), no separate peak"),
    FN("dino.local_loss_weight_schedule.end", "loss.local_weight_end", F_LOCAL_W, NULL),
    FN("dino.local_loss_weight_schedule.warmup_epochs", "loss.local_weight_epochs", F_LOCAL_W, NULL),
    MAP("ibot.loss_weight", "loss.ibot"),
    MAP("ibot.mask_sample_probability", "crops.mask_prob"),
    MAP("ibot.mask_ratio_min_max", "crops.mask_ratio"),
    SAME("ibot.mask_random_circular_shift", "false", NULL),
    IGN("ibot.force_masking_even_with_zero_weight", "masks are drawn whatever the weight"),
    MAP("ibot.separate_head", "heads.separate"),
    MAP("ibot.head_n_prototypes", "heads.ibot_k"),
    MAP("ibot.head_bottleneck_dim", "heads.ibot_bottleneck"),
    SAME("ibot.head_norm_last_layer", "false", "one switch for both heads: dino.head_norm_last_layer"),
    MAP("ibot.head_nlayers", "heads.nlayers"),
    MAP("ibot.head_hidden_dim", "heads.ibot_hidden"),
    MAP("gram.use_loss", "gram.enabled"),
    IGN("gram.compute_stats", "the training-health metrics are always logged"),
    MAP("gram.loss_weight", "gram.weight"),
    SAME("gram.ema_teacher", "false", "the Gram teacher is its own copy of the EMA teacher"),
    SAME("gram.ckpt", "", "a fixed Gram teacher: dinox train --gram-init W.safetensors"),
    SAME("gram.it_load_ema_teacher", "-1", "first copy: gram.refresh_first"),
    FN("gram.rep_update", NULL, F_GRAM_FREQ, "false: gram.refresh_every 0"),
    FN("gram.update_frequency", "gram.refresh_every", F_GRAM_FREQ, NULL),
    MAP("gram.it_first_update", "gram.refresh_first"),
    FN("gram.max_updates", "gram.refresh_max", F_NULL0, "null = unlimited"),
    SAME("gram.normalized", "true", "L2-normalised patch features"),
    MAP("gram.img_level", "gram.img_level"),
    SAME("gram.remove_neg", "false", NULL),
    SAME("gram.remove_only_teacher_neg", "false", NULL),
    SAME("gram.tokens_used", "all", NULL),
    SAME("gram.global_teacher_resize_method", "bicubic", NULL),
    SAME("gram.global_teacher_resize_antialias", "false", NULL),
    SAME("gram.loss_weight_schedule", "", "dinox: gram.weight_start_epochs and gram.weight_ramp_epochs"),
    FN("train.batch_size_per_gpu", "train.batch_size", F_BATCH, "global batch = per GPU x --gpus"),
    IGN("train.dataset_path", "the data is a dinox store: dinox train --store"),
    IGN("train.data_config", "the data is a dinox store"),
    IGN("train.output_dir", "dinox train --out"),
    IGN("train.saveckp_freq", "checkpoints: checkpointing.period (train.ckpt_every_steps)"),
    MAP("train.seed", "train.seed"),
    IGN("train.num_workers", "machine-specific: train.threads"),
    MAP("train.OFFICIAL_EPOCH_LENGTH", "train.epoch_length"),
    IGN("train.monitor_gradient_norm", "gradient norms are always logged"),
    SAME("train.chunk_schedule", "[]", NULL),
    SAME("train.use_teacher_head", "true", NULL),
    SAME("train.learn_from_teacher_tokens", "false", NULL),
    FN("train.centering", "teacher.centering", F_CENTER, NULL),
    FN("train.checkpointing", "train.checkpointing", F_CKPT, "true: block (recompute each block in backward)"),
    FN("train.checkpointing_full", "train.checkpointing", F_CKPT, "true: block"),
    IGN("train.compile", "torch.compile"),
    IGN("train.cudagraphs", "CUDA graphs"),
    IGN("train.fsdp_reshard_after_forward", "FSDP: dinox replicates the model per rank"),
    IGN("train.sharded_eval_checkpoint", "FSDP checkpoints"),
    IGN("train.cache_dataset", "the store is memory-mapped"),
    FN("student.arch", "model.arch", F_ARCH, NULL),
    MAP("student.patch_size", "model.patch"),
    MAP("student.drop_path_rate", "model.drop_path"),
    MAP("student.layerscale", "model.layerscale"),
    SAME("student.pretrained_weights", "", "dinox train --init"),
    FN("student.ffn_layer", "model.ffn", F_FFN, NULL),
    FN("student.ffn_ratio", "model.ffn_hidden", F_FFN_RATIO, "width = ratio x dim (SwiGLU: 2/3 of it, aligned)"),
    SAME("student.resume_from_teacher_chkpt", "", "dinox train --init"),
    SAME("student.qkv_bias", "true", NULL),
    SAME("student.proj_bias", "true", NULL),
    SAME("student.ffn_bias", "true", NULL),
    SAME("student.norm_layer", "layernorm", NULL),
    MAP("student.n_storage_tokens", "model.registers"),
    SAME("student.mask_k_bias", "true", "dinox masks the k bias as the released DINOv3 models do"),
    SAME("student.untie_cls_and_patch_norms", "false", NULL),
    SAME("student.untie_global_and_local_cls_norm", "false", NULL),
    SAME("student.in_chans", "3", "3 channels: the 2.5D slices"),
    SAME("student.pos_embed_type", "rope", NULL),
    SAME("student.pos_embed_rope_base", "100", NULL),
    SAME("student.pos_embed_rope_min_period", "", NULL),
    SAME("student.pos_embed_rope_max_period", "", NULL),
    SAME("student.pos_embed_rope_normalize_coords", "separate", NULL),
    FN("student.pos_embed_rope_shift_coords", "model.rope_shift", F_ROPE_AUG, "null = off"),
    FN("student.pos_embed_rope_jitter_coords", "model.rope_jitter", F_ROPE_AUG, "null = off"),
    FN("student.pos_embed_rope_rescale_coords", "model.rope_rescale", F_ROPE_AUG, "null = off"),
    IGN("student.pos_embed_rope_dtype", "dinox computes RoPE in fp32"),
    SAME("student.fp8_enabled", "false", NULL),
    IGN("student.fp8_filter", "fp8 is not used"),
    MAP("teacher.momentum_teacher", "teacher.momentum_start"),
    MAP("teacher.final_momentum_teacher", "teacher.momentum_end"),
    MAP("teacher.warmup_teacher_temp", "teacher.temp_start"),
    MAP("teacher.teacher_temp", "teacher.temp_end"),
    MAP("teacher.warmup_teacher_temp_epochs", "teacher.temp_warmup_epochs"),
    SAME("teacher.in_chans", "3", NULL),
    SAME("distillation.enabled", "false", NULL),
    IGN("distillation.", "distillation is off"),
    SAME("multidistillation.enabled", "false", NULL),
    IGN("multidistillation.", "distillation is off"),
    SAME("hrft.enabled", "false", NULL),
    IGN("hrft.", "high-resolution fine-tuning is off"),
    MAP("optim.epochs", "train.epochs"),
    SAME("optim.optimizer", "adamw", NULL),
    MAP("optim.weight_decay", "optim.wd_start"),
    MAP("optim.weight_decay_end", "optim.wd_end"),
    MAP("optim.lr", "optim.lr"),
    MAP("optim.warmup_epochs", "optim.warmup_epochs"),
    MAP("optim.min_lr", "optim.min_lr"),
    SAME("optim.schedule_trunc_extra", "0", NULL),
    MAP("optim.clip_grad", "optim.clip_grad"),
    MAP("optim.freeze_last_layer_epochs", "optim.freeze_last_layer_epochs"),
    MAP("optim.scaling_rule", "optim.lr_scaling"),
    MAP("optim.patch_embed_lr_mult", "optim.patch_embed_lr_mult"),
    SAME("optim.dino_head_wd_multiplier", "1", NULL),
    MAP("optim.layerwise_decay", "optim.layer_decay"),
    IGN("optim.multi_tensor_optim", "an implementation choice (dinox: one flat AdamW loop)"),
    IGN("optim.dump_fsdp_weights_path", "FSDP"),
    FN("optim.adamw_beta1", "optim.betas", F_BETA1, NULL),
    FN("optim.adamw_beta2", "optim.betas", F_BETA2, NULL),
    MAP("crops.global_crops_scale", "crops.global_scale"),
    MAP("crops.local_crops_number", "crops.local_count"),
    MAP("crops.local_crops_scale", "crops.local_scale"),
    MAP("crops.global_crops_size", "crops.global_size"),
    MAP("crops.local_crops_size", "crops.local_size"),
    SAME("crops.global_local_crop_pairs_ratios", "1", NULL),
    FN("crops.gram_teacher_crops_size", "gram.teacher_res_factor", F_GRAM_SIZE, "factor = size / global_crops_size"),
    SAME("crops.localcrops_subset_of_globalcrops", "false", NULL),
    IGN("crops.share_color_jitter", "CT: random HU windowing (data.windows) replaces colour jitter"),
    FN("crops.horizontal_flips", "crops.flip_p", F_FLIP, "true: 0.5"),
    SAME("crops.gram_teacher_no_distortions", "false", NULL),
    IGN("crops.rgb_mean", "natural-image RGB statistics; CT: data.norm_mean"),
    IGN("crops.rgb_std", "natural-image RGB statistics; CT: data.norm_std"),
    SAME("crops.teacher_to_student_resolution_scale", "1", NULL),
    IGN("evaluation.", "evaluation: dinox eval"),
    MAP("checkpointing.period", "train.ckpt_every_steps"),
    MAP("checkpointing.max_to_keep", "train.keep_last"),
    FN("checkpointing.keep_every", "train.milestone_every", F_KEEP_EVERY, "above 1e8 = never"),
    {"schedules.", K_SAME, "\x01", F_NONE, "schedules v2: use the optim.*/teacher.* start/end keys"},
};
#define N_RULES ((int)(sizeof RULES / sizeof RULES[0]))

/* ---- the input, flattened -------------------------------------------------- */

typedef struct item {
    char key[160];
    char text[256]; /* scalar text, or "[a, b, ...]" for a sequence of scalars */
    int is_null, complex;
    int line;
} item;

typedef struct items {
    item *v;
    int n, cap;
} items;

static int is_null_scalar(const yaml_node_t *n) {
    const char *s = (const char *)n->data.scalar.value;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
    return !*s || !strcmp(s, "~") || !strcasecmp(s, "null") || !strcmp(s, "None");
}

static dx_status push(items *it, const char *key, int line, dx_err *err, item **out) {
    if (it->n == it->cap) {
        int cap = it->cap ? 2 * it->cap : 128;
        item *v = realloc(it->v, (size_t)cap * sizeof *v);
        if (!v) return dx_fail(err, DX_ENOMEM, "config import");
        it->v = v, it->cap = cap;
    }
    item *x = &it->v[it->n++];
    memset(x, 0, sizeof *x);
    snprintf(x->key, sizeof x->key, "%s", key);
    x->line = line;
    *out = x;
    return DX_OK;
}

static dx_status flatten(yaml_document_t *d, yaml_node_t *map, const char *prefix, items *it, dx_err *err) {
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(d, p->key), *v = yaml_document_get_node(d, p->value);
        if (!k || !v || k->type != YAML_SCALAR_NODE) continue;
        char key[160];
        snprintf(key, sizeof key, "%s%s", prefix, (const char *)k->data.scalar.value);
        if (v->type == YAML_MAPPING_NODE && v->data.mapping.pairs.top > v->data.mapping.pairs.start) {
            char sub[170];
            snprintf(sub, sizeof sub, "%s.", key);
            dx_status s = flatten(d, v, sub, it, err);
            if (s) return s;
            continue;
        }
        item *x = NULL;
        dx_status s = push(it, key, (int)k->start_mark.line + 1, err, &x);
        if (s) return s;
        if (v->type == YAML_SCALAR_NODE) {
            x->is_null = is_null_scalar(v);
            snprintf(x->text, sizeof x->text, "%s", x->is_null ? "" : (const char *)v->data.scalar.value);
        } else if (v->type == YAML_MAPPING_NODE) {
            snprintf(x->text, sizeof x->text, "{}");
        } else {
            size_t o = (size_t)snprintf(x->text, sizeof x->text, "[");
            for (yaml_node_item_t *e = v->data.sequence.items.start; e < v->data.sequence.items.top; e++) {
                yaml_node_t *en = yaml_document_get_node(d, *e);
                if (!en || en->type != YAML_SCALAR_NODE) { x->complex = 1; continue; }
                if (o < sizeof x->text)
                    o += (size_t)snprintf(x->text + o, sizeof x->text - o, "%s%s",
                                          e > v->data.sequence.items.start ? ", " : "",
                                          (const char *)en->data.scalar.value);
            }
            if (o < sizeof x->text) snprintf(x->text + o, sizeof x->text - o, "]");
        }
    }
    return DX_OK;
}

static const item *find_item(const items *it, const char *key) {
    for (int i = 0; i < it->n; i++)
        if (!strcmp(it->v[i].key, key)) return &it->v[i];
    return NULL;
}

static const rule *find_rule(const char *key) {
    for (int i = 0; i < N_RULES; i++)
        if (!strcmp(RULES[i].key, key)) return &RULES[i];
    for (int i = 0; i < N_RULES; i++) { /* section rules */
        size_t n = strlen(RULES[i].key);
        if (RULES[i].key[n - 1] == '.' && !strncmp(RULES[i].key, key, n)) return &RULES[i];
    }
    return NULL;
}

/* true/false/numbers compared by value, strings exactly */
static int same_value(const char *a, const char *b) {
    static const char *T[] = {"true", "True", "TRUE"}, *F_[] = {"false", "False", "FALSE"};
    int ta = 0, tb = 0, fa = 0, fb = 0;
    for (int i = 0; i < 3; i++) ta |= !strcmp(a, T[i]), tb |= !strcmp(b, T[i]), fa |= !strcmp(a, F_[i]), fb |= !strcmp(b, F_[i]);
    if (ta || tb || fa || fb) return (ta && tb) || (fa && fb);
    char *ea, *eb;
    double x = strtod(a, &ea), y = strtod(b, &eb);
    if (*a && *b && !*ea && !*eb) return x == y;
    if (!strcmp(a, "[]") && !*b) return 1;
    return !strcmp(a, b);
}

static int truthy(const char *s) { return !strcasecmp(s, "true"); }

/* ---- applying -------------------------------------------------------------- */

typedef struct ctx {
    dx_config *c;
    FILE *rep;
    dx_import_counts n;
    const char *path;
    dx_err *err;
    int gpus;
} ctx;

static dx_status set(ctx *x, const item *it, const char *dkey, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static dx_status set(ctx *x, const item *it, const char *dkey, const char *fmt, ...) {
    char val[256], ov[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(val, sizeof val, fmt, ap);
    va_end(ap);
    snprintf(ov, sizeof ov, "%s=%s", dkey, val);
    if (dx_config_override(x->c, ov, x->err))
        return dx_fail_prefix(x->err, "%s:%d: %s = %s -> %s", x->path, it->line, it->key, it->text, ov);
    if (x->rep) fprintf(x->rep, "  mapped       %-48s -> %s = %s\n", it->key, dkey, val);
    x->n.mapped++;
    return DX_OK;
}

static void say(ctx *x, const char *what, const item *it, const char *note) {
    if (x->rep)
        fprintf(x->rep, "  %-12s %s = %s%s%s%s\n", what, it->key, it->is_null ? "null" : it->text, note ? "  (" : "",
                note ? note : "", note ? ")" : "");
}

static void unsupported(ctx *x, const item *it, const char *dinox_does) {
    char note[200];
    snprintf(note, sizeof note, "dinox: %s; value dropped", dinox_does);
    say(x, "UNSUPPORTED", it, note);
    x->n.unsupported++;
}

/* DINOv3's architecture names -> dinox preset or custom shape */
static const struct { const char *name, *preset; int dim, depth, heads; } ARCHS[] = {
    {"vit_small", "vit_small", 384, 12, 6},   {"vit_base", "vit_base", 768, 12, 12},
    {"vit_large", "vit_large", 1024, 24, 16}, {"vit_giant2", "vit_giant", 1536, 40, 24},
    {"vit_so400m", "custom", 1152, 27, 18},   {"vit_huge2", "custom", 1280, 32, 20},
    {"vit_7b", "custom", 4096, 40, 32},
};

static int arch_index(const char *name) {
    for (int i = 0; i < (int)(sizeof ARCHS / sizeof ARCHS[0]); i++)
        if (!strcmp(ARCHS[i].name, name)) return i;
    return -1;
}

static int swiglu_align(const char *ffn_layer) {
    if (!strncmp(ffn_layer, "swiglu", 6)) return ffn_layer[6] ? atoi(ffn_layer + 6) : 8;
    return 0;
}

static dx_status apply_fn(ctx *x, const items *in, const item *it, const rule *r) {
    const char *v = it->text;
    char *end;
    double num = strtod(v, &end);
    const int is_num = *v && !*end;
    switch (r->fn) {
    case F_ARCH: {
        int a = arch_index(v);
        if (a < 0) { unsupported(x, it, "vit_small, vit_base, vit_large, vit_giant2, vit_so400m, vit_huge2, vit_7b"); return DX_OK; }
        dx_status s = set(x, it, "model.arch", "%s", ARCHS[a].preset);
        if (!s && !strcmp(ARCHS[a].preset, "custom")) {
            if (!(s = set(x, it, "model.dim", "%d", ARCHS[a].dim)) && !(s = set(x, it, "model.depth", "%d", ARCHS[a].depth)))
                s = set(x, it, "model.heads", "%d", ARCHS[a].heads);
        }
        return s;
    }
    case F_FFN:
        if (!strcmp(v, "mlp")) return set(x, it, r->target, "mlp");
        if (swiglu_align(v) > 0) return set(x, it, r->target, "swiglu");
        unsupported(x, it, "mlp or swiglu[N]");
        return DX_OK;
    case F_FFN_RATIO: {
        if (!is_num || num <= 0) { unsupported(x, it, "a positive ratio"); return DX_OK; }
        const item *ai = find_item(in, "student.arch"), *fi = find_item(in, "student.ffn_layer");
        int dim;
        if (ai && arch_index(ai->text) >= 0) dim = ARCHS[arch_index(ai->text)].dim;
        else {
            dx_vit_config vc;
            if (dx_config_vit(x->c, &vc, x->err)) return dx_fail_prefix(x->err, "%s:%d: %s", x->path, it->line, it->key);
            dim = vc.dim;
        }
        int align = fi ? swiglu_align(fi->text) : (!strcmp(x->c->model.ffn, "swiglu") ? 8 : 0);
        int hidden = (int)lround(num * dim);
        return set(x, it, r->target, "%d", align > 0 ? dx_swiglu_width(hidden, align) : hidden);
    }
    case F_BATCH:
        if (!is_num || num < 1) { unsupported(x, it, "a batch size"); return DX_OK; }
        return set(x, it, r->target, "%lld", (long long)num * x->gpus);
    case F_FLIP: return set(x, it, r->target, "%s", truthy(v) ? "0.5" : "0");
    case F_GRAM_SIZE: {
        const item *g = find_item(in, "crops.global_crops_size");
        double global = g ? strtod(g->text, NULL) : x->c->crops.global_size;
        if (it->is_null) return set(x, it, r->target, "1"); /* null: the Gram teacher sees the global crops */
        if (!is_num || !(global > 0)) { unsupported(x, it, "a crop size"); return DX_OK; }
        return set(x, it, r->target, "%.9g", num / global);
    }
    case F_BETA1:
    case F_BETA2: {
        const item *b1 = find_item(in, "optim.adamw_beta1"), *b2 = find_item(in, "optim.adamw_beta2");
        return set(x, it, r->target, "[%s, %s]", b1 ? b1->text : "0.9", b2 ? b2->text : "0.999");
    }
    case F_CENTER:
        if (!strcmp(v, "sinkhorn_knopp")) return set(x, it, r->target, "sinkhorn_knopp");
        if (!strcmp(v, "centering") || !strcmp(v, "softmax")) return set(x, it, r->target, "softmax");
        unsupported(x, it, "sinkhorn_knopp or centering");
        return DX_OK;
    case F_PREC:
        if (!strcmp(v, "bf16") || !strcmp(v, "fp32")) return set(x, it, r->target, "%s", v);
        unsupported(x, it, "fp32 or bf16");
        return DX_OK;
    case F_CKPT: {
        const item *full = find_item(in, "train.checkpointing_full");
        if (truthy(v)) return set(x, it, r->target, "block");
        if (!strcmp(it->key, "train.checkpointing") && !(full && truthy(full->text))) return set(x, it, r->target, "none");
        say(x, "same", it, NULL);
        x->n.same++;
        return DX_OK;
    }
    case F_ROPE_AUG:
    case F_NULL0:
        if (it->is_null) return set(x, it, r->target, "0");
        return set(x, it, r->target, "%s", v);
    case F_KEEP_EVERY:
        if (!is_num) { unsupported(x, it, "a step count"); return DX_OK; }
        return set(x, it, r->target, "%lld", num > 1e8 ? 0LL : (long long)num);
    case F_REWEIGHT:
        if (!truthy(v)) {
            dx_status s = set(x, it, "loss.local_weight_start", "1");
            return s ? s : set(x, it, "loss.local_weight_end", "1");
        }
        say(x, "same", it, "the local-weight schedule below is used");
        x->n.same++;
        return DX_OK;
    case F_LOCAL_W: {
        const item *rw = find_item(in, "dino.reweight_dino_local_loss");
        if (!rw || !truthy(rw->text)) {
            say(x, "ignored", it, "dino.reweight_dino_local_loss is false");
            x->n.ignored++;
            return DX_OK;
        }
        return set(x, it, r->target, "%s", v);
    }
    case F_GRAM_FREQ: {
        const item *ru = find_item(in, "gram.rep_update");
        const int rep = !ru || truthy(ru->text);
        if (!strcmp(it->key, "gram.rep_update")) {
            if (!rep) return set(x, it, "gram.refresh_every", "0");
            say(x, "same", it, "refreshes every gram.update_frequency steps");
            x->n.same++;
            return DX_OK;
        }
        if (!rep) {
            say(x, "ignored", it, "gram.rep_update is false");
            x->n.ignored++;
            return DX_OK;
        }
        return set(x, it, r->target, "%s", v);
    }
    case F_NONE: break;
    }
    return DX_OK;
}

dx_status dx_config_import_dinov3(dx_config *c, const char *path, int gpus, FILE *rep, dx_import_counts *counts,
                                  dx_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return dx_fail(err, DX_EIO, "open %s: %s", path, strerror(errno));
    yaml_parser_t p;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&p)) {
        fclose(f);
        return dx_fail(err, DX_ENOMEM, "yaml parser");
    }
    yaml_parser_set_input_file(&p, f);
    int ok = yaml_parser_load(&p, &doc);
    dx_status s = DX_OK;
    if (!ok) s = dx_fail(err, DX_EFORMAT, "%s:%zu:%zu: YAML syntax error: %s", path, p.problem_mark.line + 1,
                         p.problem_mark.column + 1, p.problem ? p.problem : "?");
    yaml_parser_delete(&p);
    fclose(f);
    if (s) return s;
    items in = {0};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_MAPPING_NODE) s = dx_fail(err, DX_EFORMAT, "%s: not a YAML mapping", path);
    else s = flatten(&doc, root, "", &in, err);
    yaml_document_delete(&doc);
    ctx x = {.c = c, .rep = rep, .path = path, .err = err, .gpus = gpus > 0 ? gpus : 1};
    for (int i = 0; !s && i < in.n; i++) {
        const item *it = &in.v[i];
        const rule *r = find_rule(it->key);
        if (!r) {
            say(&x, "unknown", it, "not a DINOv3 key dinox knows");
            x.n.unknown++;
        } else if (r->k == K_IGN) {
            say(&x, "ignored", it, r->note);
            x.n.ignored++;
        } else if (r->k == K_SAME) {
            if (r->target[0] != '\x01' && !it->complex && same_value(it->text, r->target)) {
                say(&x, "same", it, r->note);
                x.n.same++;
            } else {
                char does[200];
                if (r->target[0] == '\x01') snprintf(does, sizeof does, "%s", r->note);
                else snprintf(does, sizeof does, "always %s%s%s", *r->target ? r->target : "''/null", r->note ? "; " : "",
                              r->note ? r->note : "");
                unsupported(&x, it, does);
            }
        } else if (it->complex || (it->is_null && r->k == K_MAP)) {
            unsupported(&x, it, "a plain value");
        } else if (r->k == K_MAP) {
            s = set(&x, it, r->target, "%s", it->text);
        } else {
            s = apply_fn(&x, &in, it, r);
        }
    }
    free(in.v);
    if (!s) s = dx_config_validate(c, err);
    if (rep && !s)
        fprintf(rep, "%d mapped, %d same as dinox, %d ignored, %d unsupported, %d unknown\n", x.n.mapped, x.n.same,
                x.n.ignored, x.n.unsupported, x.n.unknown);
    if (counts) *counts = x.n;
    return s;
}

void dx_config_import_write_md(FILE *f) {
    static const char *K[] = {"mapped", "fixed", "ignored", "converted"};
    fprintf(f, "| DINOv3 key | dinox | how |\n|---|---|---|\n");
    for (int i = 0; i < N_RULES; i++) {
        const rule *r = &RULES[i];
        char key[200];
        size_t n = strlen(r->key);
        snprintf(key, sizeof key, "%s%s", r->key, r->key[n - 1] == '.' ? "*" : "");
        if (r->k == K_MAP) fprintf(f, "| `%s` | `%s` | %s |\n", key, r->target, K[0]);
        else if (r->k == K_SAME && r->target[0] == '\x01') fprintf(f, "| `%s` | — | unsupported: %s |\n", key, r->note);
        else if (r->k == K_SAME)
            fprintf(f, "| `%s` | — | %s: `%s`%s%s |\n", key, K[1], *r->target ? r->target : "''/null",
                    r->note ? "; " : "", r->note ? r->note : "");
        else if (r->k == K_IGN) fprintf(f, "| `%s` | — | %s: %s |\n", key, K[2], r->note);
        else fprintf(f, "| `%s` | `%s` | %s%s%s |\n", key, r->target ? r->target : "—", K[3], r->note ? ": " : "",
                     r->note ? r->note : "");
    }
}

dx_status dx_config_import_file(const dx_config_import_opts *o, FILE *rep, dx_import_counts *n, int *written,
                                dx_err *err) {
    *written = 0;
    if (dx_same_file(o->out, o->in) || (o->base && dx_same_file(o->out, o->base)))
        return dx_fail(err, DX_EINVAL, "--out %s would replace an input", o->out);
    dx_config cfg;
    dx_status s = DX_OK;
    if (o->base) s = dx_config_resolve(&cfg, o->base, NULL, 0, err);
    else dx_config_defaults(&cfg);
    if (s) return s;
    if (rep) fprintf(rep, "dinox config import: %s (on %s)\n", o->in, o->base ? o->base : "dinox defaults");
    if ((s = dx_config_import_dinov3(&cfg, o->in, o->gpus, rep, n, err))) return s;
    if (o->strict && (n->unsupported || n->unknown)) return DX_OK;
    if ((s = dx_config_save(&cfg, o->out, err))) return s;
    *written = 1;
    return DX_OK;
}
