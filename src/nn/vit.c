/* vit.c - DINOv3 ViT backbone: parameter table, init, forward, backward.
 *
 * Reading dx_vit_forward / dx_vit_backward is reading the model: a loop over
 * blocks calling backend ops in order, and the same list in reverse. Linear
 * layers are y[M,out] = x[M,in] W[out,in]^T + b, as in the state dict. */
#include "nn/vit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dx_rng.h"

/* ------------------------------------------------------------------------- */
/* configuration                                                              */

int dx_swiglu_width(int hidden, int align) {
    int d = (int)(hidden * 2.0 / 3.0);
    return (d + align - 1) / align * align;
}

dx_status dx_vit_config_named(dx_vit_config *c, const char *arch, dx_err *err) {
    memset(c, 0, sizeof *c);
    snprintf(c->arch, sizeof c->arch, "%s", arch);
    c->registers = 4;
    c->patch = 16;
    c->in_chans = 3;
    c->ffn = DX_FFN_MLP;
    c->ln_eps = 1e-5f;
    c->qkv_bias = 1;
    c->mask_k_bias = 1;
    c->proj_bias = 1;
    c->ffn_bias = 1;
    c->layerscale_init = 1e-5f;
    c->rope_base = 100.0f;
    struct { const char *name; int dim, depth, heads; } sizes[] = {
        {"vit_tiny", 192, 12, 3},   {"vit_small", 384, 12, 6}, {"vit_base", 768, 12, 12},
        {"vit_large", 1024, 24, 16}, {"vit_giant", 1536, 40, 24}, {"custom", 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (strcmp(arch, sizes[i].name) != 0) continue;
        c->dim = sizes[i].dim;
        c->depth = sizes[i].depth;
        c->heads = sizes[i].heads;
        c->ffn_hidden = 4 * c->dim;
        if (strcmp(arch, "vit_giant") == 0) {
            /* DINOv2's ViT-g: SwiGLU with mlp_ratio 4 -> int(6144*2/3) aligned to 8 = 4096. */
            c->ffn = DX_FFN_SWIGLU;
            c->ffn_hidden = dx_swiglu_width(4 * c->dim, 8);
        }
        return DX_OK;
    }
    return dx_fail(err, DX_EINVAL,
                   "unknown arch '%s' (vit_tiny, vit_small, vit_base, vit_large, vit_giant, custom)",
                   arch);
}

void dx_vit_config_override_shape(dx_vit_config *c, int patch, int registers, int dim, int depth, int heads) {
    if (patch) c->patch = patch;
    if (registers >= 0) c->registers = registers;
    if (dim) {
        c->dim = dim;
        c->ffn_hidden = 4 * dim;
    }
    if (depth) c->depth = depth;
    if (heads) c->heads = heads;
}

dx_status dx_vit_config_check(const dx_vit_config *c, dx_err *err) {
    if (c->dim <= 0 || c->depth <= 0 || c->heads <= 0 || c->patch <= 0 || c->ffn_hidden <= 0 ||
        c->registers < 0 || c->in_chans <= 0)
        return dx_fail(err, DX_EINVAL, "vit config: sizes must be positive (dim %d depth %d heads %d patch %d ffn %d)",
                       c->dim, c->depth, c->heads, c->patch, c->ffn_hidden);
    if (c->dim % (4 * c->heads) != 0)
        return dx_fail(err, DX_EINVAL, "vit config: dim %d must be a multiple of 4*heads = %d (axial RoPE)",
                       c->dim, 4 * c->heads);
    if (!(c->ln_eps > 0)) return dx_fail(err, DX_EINVAL, "vit config: ln_eps must be > 0");
    if (c->drop_path < 0 || c->drop_path >= 1)
        return dx_fail(err, DX_EINVAL, "vit config: drop_path %g not in [0, 1)", c->drop_path);
    if (c->rope_jitter != 0 && c->rope_jitter < 1)
        return dx_fail(err, DX_EINVAL, "vit config: rope_jitter must be 0 (off) or >= 1");
    if (c->rope_rescale != 0 && c->rope_rescale < 1)
        return dx_fail(err, DX_EINVAL, "vit config: rope_rescale must be 0 (off) or >= 1");
    return DX_OK;
}

/* ------------------------------------------------------------------------- */
/* parameter table                                                            */

static int add(dx_table *t, const char *name, unsigned flags, dx_err *err, int ndim, int64_t d0,
               int64_t d1, int64_t d2, int64_t d3) {
    int64_t shape[4] = {d0, d1, d2, d3};
    return dx_table_add(t, name, ndim, shape, flags, err);
}

dx_status dx_vit_init(dx_vit *m, const dx_vit_config *cfg, dx_err *err) {
    memset(m, 0, sizeof *m);
    dx_status st = dx_vit_config_check(cfg, err);
    if (st) return st;
    m->cfg = *cfg;
    dx_table *t = &m->tab;
    dx_table_init(t);
    const int64_t D = cfg->dim, p = cfg->patch, Dh = cfg->dim / cfg->heads;
    const unsigned NOWD = DX_TF_NO_WD;
    char n[DX_NAME_MAX];
    int bad = 0;
#define ADD(var, name, flags, nd, a, b, c, d) \
    do { var = add(t, name, flags, err, nd, a, b, c, d); bad |= var < 0; } while (0)
    ADD(m->cls, "cls_token", 0, 3, 1, 1, D, 0);
    m->reg = -1;
    if (cfg->registers > 0) ADD(m->reg, "storage_tokens", 0, 3, 1, cfg->registers, D, 0);
    ADD(m->mask_token, "mask_token", 0, 2, 1, D, 0, 0);
    ADD(m->pe_w, "patch_embed.proj.weight", 0, 4, D, cfg->in_chans, p, p);
    ADD(m->pe_b, "patch_embed.proj.bias", NOWD, 1, D, 0, 0, 0);
    ADD(m->periods, "rope_embed.periods", DX_TF_BUFFER, 1, Dh / 4, 0, 0, 0);
    m->blk = calloc((size_t)cfg->depth, sizeof *m->blk);
    if (!m->blk) return dx_fail(err, DX_ENOMEM, "vit blocks");
    const int swiglu = cfg->ffn == DX_FFN_SWIGLU;
    for (int l = 0; l < cfg->depth && !bad; l++) {
        dx_vit_block_ids *b = &m->blk[l];
        b->qkv_b = b->qkv_mask = b->proj_b = b->fc1_b = b->fc2_b = b->w2_w = b->w2_b = -1;
#define BN(suffix) (snprintf(n, sizeof n, "blocks.%d.%s", l, suffix), n)
        ADD(b->norm1_w, BN("norm1.weight"), NOWD, 1, D, 0, 0, 0);
        ADD(b->norm1_b, BN("norm1.bias"), NOWD, 1, D, 0, 0, 0);
        ADD(b->qkv_w, BN("attn.qkv.weight"), 0, 2, 3 * D, D, 0, 0);
        if (cfg->qkv_bias) {
            ADD(b->qkv_b, BN("attn.qkv.bias"), NOWD, 1, 3 * D, 0, 0, 0);
            if (cfg->mask_k_bias) ADD(b->qkv_mask, BN("attn.qkv.bias_mask"), DX_TF_BUFFER, 1, 3 * D, 0, 0, 0);
        }
        ADD(b->proj_w, BN("attn.proj.weight"), 0, 2, D, D, 0, 0);
        if (cfg->proj_bias) ADD(b->proj_b, BN("attn.proj.bias"), NOWD, 1, D, 0, 0, 0);
        ADD(b->ls1, BN("ls1.gamma"), NOWD, 1, D, 0, 0, 0);
        ADD(b->norm2_w, BN("norm2.weight"), NOWD, 1, D, 0, 0, 0);
        ADD(b->norm2_b, BN("norm2.bias"), NOWD, 1, D, 0, 0, 0);
        const int64_t F = cfg->ffn_hidden;
        if (swiglu) {
            /* w1 and w2 packed back to back: one GEMM computes [w1 x | w2 x]. */
            ADD(b->fc1_w, BN("mlp.w1.weight"), DX_TF_PACKED, 2, F, D, 0, 0);
            ADD(b->w2_w, BN("mlp.w2.weight"), 0, 2, F, D, 0, 0);
            if (cfg->ffn_bias) {
                ADD(b->fc1_b, BN("mlp.w1.bias"), NOWD | DX_TF_PACKED, 1, F, 0, 0, 0);
                ADD(b->w2_b, BN("mlp.w2.bias"), NOWD, 1, F, 0, 0, 0);
            }
            ADD(b->fc2_w, BN("mlp.w3.weight"), 0, 2, D, F, 0, 0);
            if (cfg->ffn_bias) ADD(b->fc2_b, BN("mlp.w3.bias"), NOWD, 1, D, 0, 0, 0);
        } else {
            ADD(b->fc1_w, BN("mlp.fc1.weight"), 0, 2, F, D, 0, 0);
            if (cfg->ffn_bias) ADD(b->fc1_b, BN("mlp.fc1.bias"), NOWD, 1, F, 0, 0, 0);
            ADD(b->fc2_w, BN("mlp.fc2.weight"), 0, 2, D, F, 0, 0);
            if (cfg->ffn_bias) ADD(b->fc2_b, BN("mlp.fc2.bias"), NOWD, 1, D, 0, 0, 0);
        }
        ADD(b->ls2, BN("ls2.gamma"), NOWD, 1, D, 0, 0, 0);
#undef BN
    }
    ADD(m->norm_w, "norm.weight", NOWD, 1, D, 0, 0, 0);
    ADD(m->norm_b, "norm.bias", NOWD, 1, D, 0, 0, 0);
#undef ADD
    if (bad) {
        dx_vit_free(m);
        return err ? err->code : DX_EINVAL;
    }
    return DX_OK;
}

void dx_vit_free(dx_vit *m) {
    dx_table_free(&m->tab);
    free(m->blk);
    m->blk = NULL;
}

double dx_vit_flops_per_image(const dx_vit_config *c, int H, int W) {
    const double D = c->dim, p = c->patch;
    const double P = (double)(H / c->patch) * (W / c->patch), T = 1 + c->registers + P;
    double ffn = c->ffn == DX_FFN_SWIGLU ? 3.0 * D * c->ffn_hidden : 2.0 * D * c->ffn_hidden;
    double per_layer = 2.0 * T * (3 * D * D + D * D + ffn) + 4.0 * T * T * D;
    return c->depth * per_layer + 2.0 * P * c->in_chans * p * p * D;
}

/* ------------------------------------------------------------------------- */
/* initialisation                                                 */

static void fill_normal(dx_rng *r, float *x, size_t n, double std, double cut) {
    for (size_t i = 0; i < n; i++) {
        double v;
        do v = std * dx_rng_normal(r); while (fabs(v) > cut);
        x[i] = (float)v;
    }
}

dx_status dx_vit_init_weights(const dx_vit *m, dx_backend *be, float *w, uint64_t seed, dx_err *err) {
    const dx_table *t = &m->tab;
    float *host = malloc(t->total * sizeof(float));
    if (!host) return dx_fail(err, DX_ENOMEM, "init buffer (%zu floats)", t->total);
    memset(host, 0, t->total * sizeof(float));
    const double pe_bound = 1.0 / sqrt((double)m->cfg.in_chans * m->cfg.patch * m->cfg.patch);
    const int Dh = m->cfg.dim / m->cfg.heads;
    for (int i = 0; i < t->n; i++) {
        const dx_tensor_spec *s = &t->t[i];
        float *x = host + s->offset;
        dx_rng r;
        dx_rng_init(&r, seed, DX_RNG_INIT, (uint64_t)i, 0);
        const char *nm = s->name;
        size_t len = strlen(nm);
#define ENDS(suf) (len >= strlen(suf) && !strcmp(nm + len - strlen(suf), suf))
        if (i == m->periods) {
            for (int j = 0; j < Dh / 4; j++) x[j] = (float)pow(m->cfg.rope_base, 4.0 * j / Dh);
        } else if (ENDS("bias_mask")) {
            const size_t D = s->numel / 3;
            for (size_t j = 0; j < s->numel; j++) x[j] = (j >= D && j < 2 * D) ? 0.0f : 1.0f;
        } else if (i == m->cls || i == m->reg) {
            fill_normal(&r, x, s->numel, 0.02, INFINITY);
        } else if (i == m->mask_token) {
            /* zero */
        } else if (i == m->pe_w || i == m->pe_b) {
            for (size_t j = 0; j < s->numel; j++) x[j] = (float)dx_rng_uniform_range(&r, -pe_bound, pe_bound);
        } else if (ENDS("gamma")) {
            for (size_t j = 0; j < s->numel; j++) x[j] = m->cfg.layerscale_init;
        } else if (strstr(nm, "norm") && ENDS("weight")) {
            for (size_t j = 0; j < s->numel; j++) x[j] = 1.0f;
        } else if (ENDS("weight")) {
            fill_normal(&r, x, s->numel, 0.02, 2.0); /* trunc_normal_(std=.02, a=-2, b=2) */
        } /* biases: zero */
#undef ENDS
    }
    be->ops->upload(be, w, host, t->total * sizeof(float));
    free(host);
    return DX_OK;
}

/* ------------------------------------------------------------------------- */
/* activations                                                                */

typedef struct acts_ids {
    int cols, patches, norm_mean, norm_rstd, out, dout;
    int dA, dB, dxs, dy, dattn, dqkv, dln, dh, da, dpatches;
} acts_ids;

/* Per-block activation names, in this order, at index base + k. */
enum { A_X, A_XA, A_LN1, A_MEAN1, A_RSTD1, A_QKV, A_ATT, A_LSE, A_ATTN, A_Y1, A_XM, A_XB, A_LN2, A_MEAN2,
       A_RSTD2, A_H, A_ACT, A_Y2, A_SIN, A_COS, A_COUNT };
_Static_assert(A_COUNT <= (int)(sizeof(((dx_vit_acts *)0)->bnumel) / sizeof(size_t)),
               "dx_vit_acts.bnumel is shorter than the list of activation kinds");
static const char *const A_NAMES[A_COUNT] = {
    "x", "xa", "ln1", "mean1", "rstd1", "qkv", "att", "lse", "attn", "y1", "xm", "xb", "ln2", "mean2",
    "rstd2", "h", "act", "y2", "rope_sin", "rope_cos"};

/* Whether backward finds activation k of every block again (else it is
 * recomputed, or not needed): the checkpointing policy. */
static int policy_keeps(int k, unsigned flags) {
    /* the residual stream: every block's input when backward runs; a pass without
     * backward uses one buffer for all blocks (a block reads its input x only
     * into xm, before it writes its output) */
    if (k == A_X) return (flags & DX_ACTS_GRAD) != 0;
    /* the probabilities, kept only for eval's maps: one buffer, the last block's */
    if (k == A_ATT) return 0;
    if (!(flags & DX_ACTS_GRAD) || (flags & DX_ACTS_RECOMPUTE)) return 0;
    if (flags & DX_ACTS_SELECTIVE) /* GEMM and attention outputs, and the attention's row statistics */
        return k == A_QKV || k == A_LSE || k == A_ATTN || k == A_Y1 || k == A_H || k == A_Y2;
    return 1;
}
/* Kept in bf16 (DX_ACTS_BF16): the outputs of GEMMs, attention and
 * LayerNorm. The residual streams (x, xm and their gathered subsets), the
 * LayerNorm statistics and the RoPE tables stay fp32. */
static int kept_bf16(int k, unsigned flags) {
    return (flags & DX_ACTS_BF16) && policy_keeps(k, flags) &&
           (k == A_LN1 || k == A_QKV || k == A_ATTN || k == A_Y1 || k == A_LN2 || k == A_H ||
            k == A_ACT || k == A_Y2);
}
/* Whether every block has its own fp32 activation k, or all blocks use blocks.0's. */
static int kept_per_block(int k, unsigned flags) { return policy_keeps(k, flags) && !kept_bf16(k, flags); }

static int build_acts_table(dx_table *t, const dx_vit *m, int N, int H, int W, unsigned flags,
                            dx_err *err) {
    const int with_grad = (flags & DX_ACTS_GRAD) != 0;
    const dx_vit_config *c = &m->cfg;
    const int64_t D = c->dim, Hh = c->heads, Dh = D / Hh, p = c->patch;
    const int64_t Hp = H / p, Wp = W / p, P = Hp * Wp, T = 1 + c->registers + P, M = N * T;
    const int64_t hw = c->ffn == DX_FFN_SWIGLU ? 2 * c->ffn_hidden : c->ffn_hidden; /* h width */
    const int64_t aw = c->ffn_hidden;                                             /* act width */
    dx_table_init(t);
    char n[DX_NAME_MAX];
    int bad = 0;
#define A1(name, a) bad |= add(t, name, 0, err, 1, a, 0, 0, 0) < 0
    A1("cols", N * P * c->in_chans * p * p);
    A1("patches", N * P * D);
    for (int l = 0; l <= c->depth; l++) {
        for (int k = 0; k < A_COUNT; k++) {
            if (l == c->depth && k != A_X) continue; /* x.depth = final pre-norm stream */
            if ((k == A_XA || k == A_XB) && !with_grad) continue;
            if (k == A_ATT && !(flags & DX_ACTS_ATTN)) continue; /* att = NULL in the forward */
            if (k == A_LSE && !with_grad) continue;                   /* lse = NULL: no backward */
            int64_t sz = 0;
            switch (k) {
            case A_X: case A_XA: case A_LN1: case A_ATTN: case A_Y1: case A_XM: case A_XB:
            case A_LN2: case A_Y2: sz = M * D; break;
            case A_MEAN1: case A_RSTD1: case A_MEAN2: case A_RSTD2: sz = M; break;
            case A_QKV: sz = M * 3 * D; break;
            case A_ATT: sz = (int64_t)N * Hh * T * T; break;
            case A_LSE: sz = (int64_t)N * Hh * T; break;
            case A_H: sz = M * hw; break;
            case A_ACT: sz = M * aw; break;
            case A_SIN: case A_COS: sz = P * Dh; break;
            }
            if (l == 0 || kept_per_block(k, flags)) { /* else this block uses blocks.0's */
                snprintf(n, sizeof n, "blocks.%d.%s", l, A_NAMES[k]);
                A1(n, sz);
            }
            if (l < c->depth && kept_bf16(k, flags)) { /* bf16 pairs in float slots */
                snprintf(n, sizeof n, "blocks.%d.%s.bf16", l, A_NAMES[k]);
                A1(n, (sz + 1) / 2);
            }
        }
    }
    A1("norm_mean", M);
    A1("norm_rstd", M);
    A1("out", M * D);
    if (with_grad) {
        A1("dout", M * D);
        A1("dA", M * D);
        A1("dB", M * D);
        A1("dxs", M * D);
        A1("dy", M * D);
        /* the attention branch's dqkv and the FFN branch's da are never live together, nor are
         * dattn (read by attention_backward) and dln (written after it): one buffer each */
        A1("dqkv_da", M * (3 * D > aw ? 3 * D : aw));
        A1("dattn_dln", M * D);
        A1("dh", M * hw);
        A1("dpatches", N * P * D);
    }
#undef A1
    return bad;
}

size_t dx_vit_acts_bytes(const dx_vit *m, int N, int H, int W, unsigned flags) {
    dx_table t;
    if (build_acts_table(&t, m, N, H, W, flags, NULL)) {
        dx_table_free(&t);
        return 0;
    }
    size_t bytes = t.total * sizeof(float);
    dx_table_free(&t);
    return bytes;
}

dx_status dx_vit_acts_init(dx_vit_acts *a, const dx_vit *m, dx_backend *be, int N, int H, int W,
                           unsigned flags, dx_err *err) {
    const int with_grad = (flags & DX_ACTS_GRAD) != 0;
    memset(a, 0, sizeof *a);
    const int p = m->cfg.patch;
    if (N <= 0 || H < p || W < p)
        return dx_fail(err, DX_EINVAL, "crop group %dx%dx%d: need N >= 1 and sides >= patch %d", N, H, W, p);
    a->N = N; a->H = H; a->W = W;
    a->Hp = H / p; a->Wp = W / p; a->P = a->Hp * a->Wp;
    a->T = 1 + m->cfg.registers + a->P;
    a->with_grad = with_grad;
    a->flags = flags;
    if (build_acts_table(&a->tab, m, N, H, W, flags, err)) {
        dx_table_free(&a->tab);
        return err ? err->code : DX_EINVAL;
    }
    /* per-block offsets, looked up once: block_forward/backward address ~30 per block */
    const int L = m->cfg.depth;
    a->boff = malloc(sizeof *a->boff * (size_t)(L + 1) * A_COUNT);
    a->boff16 = malloc(sizeof *a->boff16 * (size_t)L * A_COUNT);
    if (!a->boff || !a->boff16) {
        free(a->boff);
        free(a->boff16);
        a->boff = a->boff16 = NULL;
        dx_table_free(&a->tab);
        return dx_fail(err, DX_ENOMEM, "activation table");
    }
    for (int l = 0; l <= L; l++)
        for (int k = 0; k < A_COUNT; k++) {
            char n[DX_NAME_MAX];
            snprintf(n, sizeof n, "blocks.%d.%s", kept_per_block(k, flags) ? l : 0, A_NAMES[k]);
            int i = dx_table_find(&a->tab, n);
            a->boff[(size_t)l * A_COUNT + k] = i < 0 ? SIZE_MAX : (size_t)a->tab.t[i].offset;
            if (l == 0) a->bnumel[k] = i < 0 ? 0 : a->tab.t[i].numel;
            if (l == L) continue;
            snprintf(n, sizeof n, "blocks.%d.%s.bf16", l, A_NAMES[k]);
            i = dx_table_find(&a->tab, n);
            a->boff16[(size_t)l * A_COUNT + k] = i < 0 ? SIZE_MAX : (size_t)a->tab.t[i].offset;
        }
    a->bytes = a->tab.total * sizeof(float);
    a->buf = be->ops->alloc(be, a->bytes);
    a->idx = be->ops->alloc(be, sizeof(int32_t) * 2 * m->cfg.depth * (size_t)N);
    a->k = calloc(2 * (size_t)m->cfg.depth, sizeof *a->k);
    a->rope_aug = calloc(4 * (size_t)m->cfg.depth, sizeof *a->rope_aug);
    if (!a->buf || !a->idx || !a->k || !a->rope_aug) {
        const double mb = a->bytes / 1e6; /* read before the free clears it */
        dx_vit_acts_free(a, be);
        return dx_fail(err, DX_ENOMEM,
                       "cannot allocate %.1f MB of activations for %d crops of %dx%d: lower train.batch_size or "
                       "crops.local_count, or see `dinox plan` for what fits", mb, N, H, W);
    }
    a->out = a->buf + a->tab.t[dx_table_find(&a->tab, "out")].offset;
    a->dout = with_grad ? a->buf + a->tab.t[dx_table_find(&a->tab, "dout")].offset : NULL;
    return DX_OK;
}

void dx_vit_acts_free(dx_vit_acts *a, dx_backend *be) {
    if (a->buf) be->ops->free(be, a->buf);
    if (a->idx) be->ops->free(be, a->idx);
    free(a->k);
    free(a->rope_aug);
    free(a->boff);
    free(a->boff16);
    dx_table_free(&a->tab);
    memset(a, 0, sizeof *a);
}

/* Pointer to a named activation: per-block ones are at a fixed stride. */
static float *act(const dx_vit_acts *a, const char *name) {
    int i = dx_table_find(&a->tab, name);
    return i < 0 ? NULL : a->buf + a->tab.t[i].offset;
}
/* block l's activation k (blocks.0's where the policy shares it; NULL where absent) */
static float *bact(const dx_vit_acts *a, int l, int k) {
    size_t o = a->boff[(size_t)l * A_COUNT + k];
    return o == SIZE_MAX ? NULL : a->buf + o;
}

/* bf16 storage of block l's kept activations: after its forward, narrow them
 * (stash = 1); before its backward, widen them back into the fp32 working set. */
static void bf16_store(dx_backend *be, dx_vit_acts *a, int l, int stash) {
    for (int k = 0; k < A_COUNT; k++) {
        size_t o = a->boff16[(size_t)l * A_COUNT + k];
        if (o == SIZE_MAX) continue;
        uint16_t *s = (uint16_t *)(a->buf + o);
        if (stash) be->ops->to_bf16(be, s, bact(a, l, k), a->bnumel[k]);
        else be->ops->from_bf16(be, bact(a, l, k), s, a->bnumel[k]);
    }
}

const float *dx_vit_acts_last_attention(const dx_vit_acts *a, const dx_vit *m) {
    return bact(a, m->cfg.depth - 1, A_ATT);
}

/* ------------------------------------------------------------------------- */
/* forward                                                                    */

#define WP(id) ((id) >= 0 ? w + m->tab.t[(id)].offset : NULL)
#define GP(id) ((id) >= 0 ? g + m->tab.t[(id)].offset : NULL)

/* Linear layer y[M,out] = x[M,in] W^T (+ b). */
static void linear_forward(dx_backend *be, float *y, const float *x, const float *W, const float *b,
                           const float *bmask, int M, int in, int out) {
    dx_gemm_linear(be, 0, 1, M, out, in, 1.0f, x, in, W, in, 0.0f, y, out);
    if (b) be->ops->bias_forward(be, y, b, bmask, M, out);
}

/* dx[M,in] (+)= dy W (beta 0 overwrites), dW += dy^T x, db += colsum(dy). */
static void linear_backward(dx_backend *be, float *dx, float *dW, float *db, const float *dy,
                            const float *x, const float *W, const float *bmask, int M, int in,
                            int out, float beta) {
    if (dx) dx_gemm_linear(be, 0, 0, M, in, out, 1.0f, dy, out, W, in, beta, dx, in);
    dx_gemm_linear(be, 1, 0, out, in, M, 1.0f, dy, out, x, in, 1.0f, dW, in);
    if (db) be->ops->bias_backward(be, db, dy, bmask, M, out);
}

/* Draws this forward's stochastic-depth subsets and RoPE augmentation. */
static void draw_train_randomness(const dx_vit *m, dx_backend *be, dx_vit_acts *a, const dx_vit_run *run) {
    const dx_vit_config *c = &m->cfg;
    const int N = a->N, L = c->depth;
    int32_t *idx_host = malloc(sizeof(int32_t) * 2 * L * (size_t)N);
    int *perm = malloc(sizeof(int) * (size_t)N);
    for (int j = 0; j < 2 * L; j++) {
        a->k[j] = N;
        if (run->train && run->subsets) {
            a->k[j] = run->subset_k[j];
            memcpy(idx_host + (size_t)j * N, run->subsets[j], sizeof(int32_t) * a->k[j]);
        } else if (run->train && c->drop_path > 0) {
            int k = (int)floor(N * (1.0 - c->drop_path));
            a->k[j] = k < 1 ? 1 : k;
            dx_rng r;
            dx_rng_init(&r, run->seed, DX_RNG_DROPPATH, run->step, (uint64_t)run->group * 4096 + j);
            dx_rng_permutation(&r, perm, N);
            for (int i = 0; i < a->k[j]; i++) idx_host[(size_t)j * N + i] = perm[i];
        }
    }
    be->ops->upload(be, a->idx, idx_host, sizeof(int32_t) * 2 * L * (size_t)N);
    free(idx_host);
    free(perm);
    for (int l = 0; l < L; l++) {
        float *aug = a->rope_aug + 4 * l;
        aug[0] = aug[1] = 0.0f;
        aug[2] = aug[3] = 1.0f;
        if (!run->train) continue;
        if (run->rope_aug) {
            memcpy(aug, run->rope_aug + 4 * l, 4 * sizeof(float));
            continue;
        }
        dx_rng r;
        dx_rng_init(&r, run->seed, DX_RNG_ROPE, run->step, (uint64_t)run->group * 4096 + l);
        /* order as DINOv3: shift, then jitter, then rescale */
        if (c->rope_shift > 0) {
            aug[0] = (float)dx_rng_uniform_range(&r, -c->rope_shift, c->rope_shift);
            aug[1] = (float)dx_rng_uniform_range(&r, -c->rope_shift, c->rope_shift);
        }
        if (c->rope_jitter > 1) {
            double lj = log(c->rope_jitter);
            aug[2] *= (float)exp(dx_rng_uniform_range(&r, -lj, lj));
            aug[3] *= (float)exp(dx_rng_uniform_range(&r, -lj, lj));
        }
        if (c->rope_rescale > 1) {
            double lr = log(c->rope_rescale);
            float s = (float)exp(dx_rng_uniform_range(&r, -lr, lr));
            aug[2] *= s;
            aug[3] *= s;
        }
    }
}

/* Block l of the forward, from a's stream x_l to x_{l+1}, with the subsets and
 * RoPE draws already in a (forward and recompute run the very same ops).
 * elementwise_only: selective recompute, the GEMM and attention outputs are
 * still there; redo only what is computed from them and from x_l. */
static void block_forward(const dx_vit *m, dx_backend *be, const float *w, dx_vit_acts *a, int l,
                          int elementwise_only) {
    const int full = !elementwise_only;
    const dx_backend_ops *o = be->ops;
    const dx_vit_config *c = &m->cfg;
    const int N = a->N, T = a->T, R = c->registers, D = c->dim, Hh = c->heads;
    const int Dh = D / Hh;
    const int swiglu = c->ffn == DX_FFN_SWIGLU, F = c->ffn_hidden, hw = swiglu ? 2 * F : F;
    const float scale = 1.0f / sqrtf((float)Dh);
    const dx_vit_block_ids *b = &m->blk[l];
    float *x = bact(a, l, A_X), *xm = bact(a, l, A_XM), *xo = bact(a, l + 1, A_X);
    /* attention branch on a batch subset (stochastic depth) or on all samples */
    int k1 = a->k[2 * l];
    const int32_t *idx1 = k1 < N ? a->idx + (size_t)(2 * l) * N : NULL;
    const float *xin = x;
    if (idx1) {
        o->gather_rows(be, bact(a, l, A_XA), x, idx1, k1, (size_t)T * D);
        xin = bact(a, l, A_XA);
    }
    int M1 = k1 * T;
    float *ln1 = bact(a, l, A_LN1), *qkv = bact(a, l, A_QKV), *attn = bact(a, l, A_ATTN);
    float *sin_t = bact(a, l, A_SIN), *cos_t = bact(a, l, A_COS), *y1 = bact(a, l, A_Y1);
    o->layernorm_forward(be, ln1, bact(a, l, A_MEAN1), bact(a, l, A_RSTD1), xin, WP(b->norm1_w),
                         WP(b->norm1_b), M1, D, c->ln_eps);
    if (full) linear_forward(be, qkv, ln1, WP(b->qkv_w), WP(b->qkv_b), WP(b->qkv_mask), M1, D, 3 * D);
    const float *aug = a->rope_aug + 4 * l;
    o->rope_tables(be, sin_t, cos_t, WP(m->periods), a->Hp, a->Wp, Dh, aug[0], aug[1], aug[2], aug[3]);
    if (full) {
        o->rope_forward(be, qkv, sin_t, cos_t, k1, T, Hh, Dh, 1 + R);
        o->attention_forward(be, attn, bact(a, l, A_ATT), bact(a, l, A_LSE), qkv, k1, T, Hh, Dh, scale);
        linear_forward(be, y1, attn, WP(b->proj_w), WP(b->proj_b), NULL, M1, D, D);
    }
    o->residual_forward(be, xm, x, y1, WP(b->ls1), idx1, N, k1, T, D, (float)N / k1);

    /* FFN branch, subset drawn on the updated stream */
    int k2 = a->k[2 * l + 1];
    const int32_t *idx2 = k2 < N ? a->idx + (size_t)(2 * l + 1) * N : NULL;
    const float *xin2 = xm;
    if (idx2) {
        o->gather_rows(be, bact(a, l, A_XB), xm, idx2, k2, (size_t)T * D);
        xin2 = bact(a, l, A_XB);
    }
    int M2 = k2 * T;
    float *ln2 = bact(a, l, A_LN2), *h = bact(a, l, A_H), *ac = bact(a, l, A_ACT), *y2 = bact(a, l, A_Y2);
    o->layernorm_forward(be, ln2, bact(a, l, A_MEAN2), bact(a, l, A_RSTD2), xin2, WP(b->norm2_w),
                         WP(b->norm2_b), M2, D, c->ln_eps);
    if (full) linear_forward(be, h, ln2, WP(b->fc1_w), WP(b->fc1_b), NULL, M2, D, hw);
    if (swiglu) o->swiglu_forward(be, ac, h, M2, F);
    else o->gelu_forward(be, ac, h, (size_t)M2 * F);
    if (!full) return; /* x_{l+1} and y2 are kept */
    linear_forward(be, y2, ac, WP(b->fc2_w), WP(b->fc2_b), NULL, M2, F, D);
    o->residual_forward(be, xo, xm, y2, WP(b->ls2), idx2, N, k2, T, D, (float)N / k2);
}

dx_status dx_vit_forward(const dx_vit *m, dx_backend *be, const float *w, dx_vit_acts *a,
                         const float *img, const uint8_t *mask, const dx_vit_run *run,
                         dx_err *err) {
    const dx_backend_ops *o = be->ops;
    const dx_vit_config *c = &m->cfg;
    const int N = a->N, P = a->P, T = a->T, R = c->registers, D = c->dim;
    const int p = c->patch, L = c->depth, K = c->in_chans * p * p;
    dx_vit_run eval_run = {0};
    if (!run) run = &eval_run;
    if (run->train && !a->with_grad && (c->drop_path > 0 || run->subsets))
        return dx_fail(err, DX_EINVAL, "train-mode forward with stochastic depth needs activations with_grad");

    /* patch embedding: conv p x p stride p as im2col + GEMM */
    float *cols = act(a, "cols"), *patches = act(a, "patches");
    o->im2col(be, cols, img, N, c->in_chans, a->H, a->W, p);
    linear_forward(be, patches, cols, WP(m->pe_w), WP(m->pe_b), NULL, N * P, K, D);
    a->has_mask = mask != NULL;
    a->mask = mask;
    o->tokens_forward(be, bact(a, 0, A_X), patches, WP(m->cls), WP(m->reg), WP(m->mask_token),
                      a->has_mask ? a->mask : NULL, N, P, R, D);

    draw_train_randomness(m, be, a, run);
    const int stash = a->with_grad && (a->flags & DX_ACTS_BF16);
    for (int l = 0; l < L; l++) {
        block_forward(m, be, w, a, l, 0);
        if (stash) bf16_store(be, a, l, 1);
    }
    o->layernorm_forward(be, a->out, act(a, "norm_mean"), act(a, "norm_rstd"), bact(a, L, A_X),
                         WP(m->norm_w), WP(m->norm_b), N * T, D, c->ln_eps);
    return DX_OK;
}

/* ------------------------------------------------------------------------- */
/* backward                                                                   */

dx_status dx_vit_backward(const dx_vit *m, dx_backend *be, const float *w, float *g, dx_vit_acts *a,
                          dx_err *err) {
    if (!a->with_grad) return dx_fail(err, DX_EINVAL, "backward needs activations created with_grad");
    const dx_backend_ops *o = be->ops;
    const dx_vit_config *c = &m->cfg;
    const int N = a->N, P = a->P, T = a->T, R = c->registers, D = c->dim, Hh = c->heads;
    const int Dh = D / Hh, p = c->patch, L = c->depth, K = c->in_chans * p * p, MT = N * T;
    const int swiglu = c->ffn == DX_FFN_SWIGLU, F = c->ffn_hidden, hw = swiglu ? 2 * F : F;
    const float scale = 1.0f / sqrtf((float)Dh);
    float *dA = act(a, "dA"), *dB = act(a, "dB"), *dxs = act(a, "dxs"), *dy = act(a, "dy");
    float *dqkv = act(a, "dqkv_da"), *da = dqkv;    /* attention branch | FFN branch */
    float *dattn = act(a, "dattn_dln"), *dln = dattn; /* dattn is dead once dln is written */
    float *dh = act(a, "dh");
    const size_t MD = (size_t)MT * D * sizeof(float);

    /* final norm: dA = d(x_L) */
    o->zero(be, dA, MD);
    o->layernorm_backward(be, dA, GP(m->norm_w), GP(m->norm_b), a->dout, bact(a, L, A_X), WP(m->norm_w),
                          act(a, "norm_mean"), act(a, "norm_rstd"), MT, D);
    for (int l = L - 1; l >= 0; l--) {
        const dx_vit_block_ids *b = &m->blk[l];
        if (a->flags & DX_ACTS_BF16) bf16_store(be, a, l, 0);
        /* checkpointing: the block's internals (block), or its element-wise part (selective), again */
        if (a->flags & DX_ACTS_RECOMPUTE) block_forward(m, be, w, a, l, 0);
        else if (a->flags & DX_ACTS_SELECTIVE) block_forward(m, be, w, a, l, 1);
        /* FFN branch: dA = d(x_{l+1}) -> dB = d(xm) */
        int k2 = a->k[2 * l + 1];
        const int32_t *idx2 = k2 < N ? a->idx + (size_t)(2 * l + 1) * N : NULL;
        int M2 = k2 * T;
        float *ln2 = bact(a, l, A_LN2), *h = bact(a, l, A_H), *ac = bact(a, l, A_ACT), *y2 = bact(a, l, A_Y2);
        o->zero(be, dB, MD);
        o->zero(be, dy, (size_t)M2 * D * sizeof(float));
        o->residual_backward(be, dB, dy, GP(b->ls2), dA, y2, WP(b->ls2), idx2, N, k2, T, D, (float)N / k2);
        linear_backward(be, da, GP(b->fc2_w), GP(b->fc2_b), dy, ac, WP(b->fc2_w), NULL, M2, F, D, 0.0f);
        o->zero(be, dh, (size_t)M2 * hw * sizeof(float));
        if (swiglu) o->swiglu_backward(be, dh, h, da, M2, F);
        else o->gelu_backward(be, dh, h, da, (size_t)M2 * F);
        linear_backward(be, dln, GP(b->fc1_w), GP(b->fc1_b), dh, ln2, WP(b->fc1_w), NULL, M2, D, hw, 0.0f);
        const float *xin2 = idx2 ? bact(a, l, A_XB) : bact(a, l, A_XM);
        float *dxin2 = dB;
        if (idx2) {
            o->zero(be, dxs, (size_t)M2 * D * sizeof(float));
            dxin2 = dxs;
        }
        o->layernorm_backward(be, dxin2, GP(b->norm2_w), GP(b->norm2_b), dln, xin2, WP(b->norm2_w),
                              bact(a, l, A_MEAN2), bact(a, l, A_RSTD2), M2, D);
        if (idx2) o->scatter_add_rows(be, dB, dxs, idx2, k2, (size_t)T * D);

        /* attention branch: dB = d(xm) -> dA = d(x_l) */
        int k1 = a->k[2 * l];
        const int32_t *idx1 = k1 < N ? a->idx + (size_t)(2 * l) * N : NULL;
        int M1 = k1 * T;
        float *ln1 = bact(a, l, A_LN1), *qkv = bact(a, l, A_QKV), *attn = bact(a, l, A_ATTN);
        o->zero(be, dA, MD);
        o->zero(be, dy, (size_t)M1 * D * sizeof(float));
        o->residual_backward(be, dA, dy, GP(b->ls1), dB, bact(a, l, A_Y1), WP(b->ls1), idx1, N, k1, T, D,
                             (float)N / k1);
        linear_backward(be, dattn, GP(b->proj_w), GP(b->proj_b), dy, attn, WP(b->proj_w), NULL, M1, D, D, 0.0f);
        o->zero(be, dqkv, (size_t)M1 * 3 * D * sizeof(float));
        o->attention_backward(be, dqkv, dattn, qkv, attn, bact(a, l, A_LSE), k1, T, Hh, Dh, scale);
        o->rope_backward(be, dqkv, bact(a, l, A_SIN), bact(a, l, A_COS), k1, T, Hh, Dh, 1 + R);
        linear_backward(be, dln, GP(b->qkv_w), GP(b->qkv_b), dqkv, ln1, WP(b->qkv_w), WP(b->qkv_mask), M1, D,
                        3 * D, 0.0f);
        const float *xin = idx1 ? bact(a, l, A_XA) : bact(a, l, A_X);
        float *dxin = dA;
        if (idx1) {
            o->zero(be, dxs, (size_t)M1 * D * sizeof(float));
            dxin = dxs;
        }
        o->layernorm_backward(be, dxin, GP(b->norm1_w), GP(b->norm1_b), dln, xin, WP(b->norm1_w),
                              bact(a, l, A_MEAN1), bact(a, l, A_RSTD1), M1, D);
        if (idx1) o->scatter_add_rows(be, dA, dxs, idx1, k1, (size_t)T * D);
        if (a->on_block_grads) a->on_block_grads(a->grads_ctx, l);
    }
    /* tokens and patch embedding (the input image needs no gradient) */
    float *dpatches = act(a, "dpatches");
    o->zero(be, dpatches, (size_t)N * P * D * sizeof(float));
    o->tokens_backward(be, dpatches, GP(m->cls), GP(m->reg), GP(m->mask_token), dA,
                       a->has_mask ? a->mask : NULL, N, P, R, D);
    linear_backward(be, NULL, GP(m->pe_w), GP(m->pe_b), dpatches, act(a, "cols"), WP(m->pe_w), NULL, N * P,
                    K, D, 0.0f);
    return DX_OK;
}
