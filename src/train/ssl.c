/* ssl.c - one DINOv3 step: see ssl.h; the formulas are in docs/objective.md. */
#include "train/ssl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/dx_loss_ops.h"
#include "data/masking.h"
#include "train/optim.h"
#include "train/schedule.h"

#define BV(s) ((s)->vit.tab.total) /* floats of the backbone part */

static double flops_vit_fwd(const dx_vit_config *c, int n, int side) {
    return n * dx_vit_flops_per_image(c, side, side);
}

/* global crops of the batch the masks are drawn over (all ranks') */
static int mask_crops(const dx_ssl_config *c) { return c->n_global * (c->mask_batch > 0 ? c->mask_batch : c->batch); }

double dx_ssl_flops_per_step(const dx_ssl_config *cin) {
    dx_ssl_config cc = *cin; /* heads read the backbone's width, whatever in_dim says */
    cc.dino_head.in_dim = cc.ibot_head.in_dim = cc.vit.dim;
    const dx_ssl_config *c = &cc;
    const int B = c->batch, G = c->n_global * B, L = c->n_local * B;
    const int P = (c->global_size / c->vit.patch) * (c->global_size / c->vit.patch);
    double f = 3.0 * (flops_vit_fwd(&c->vit, G, c->global_size) + flops_vit_fwd(&c->vit, L, c->local_size));
    f += flops_vit_fwd(&c->vit, G, c->global_size); /* EMA teacher */
    if (c->student_acts & DX_ACTS_RECOMPUTE) /* the student's blocks run forward twice */
        f += flops_vit_fwd(&c->vit, G, c->global_size) + flops_vit_fwd(&c->vit, L, c->local_size);
    if (c->use_gram) f += flops_vit_fwd(&c->vit, G, c->gram_size ? c->gram_size : c->global_size);
    f += (3.0 * (G + L) + G) * dx_head_flops_per_row(&c->dino_head);
    /* masked rows on average: this rank's share of the global batch's (fixed) masked count under
     * the mask rule; ~1/4 of the patches when the rule is unknown */
    double rows = G * P / 4.0;
    if (c->mask_ratio_max > 0) {
        dx_ssl_config g = *c; /* the whole batch the masks are drawn over: its count is fixed */
        g.batch = mask_crops(c) / c->n_global;
        rows = dx_ssl_max_masked(&g) * (double)c->batch / g.batch;
    }
    f += 4.0 * rows * dx_head_flops_per_row(&c->ibot_head);
    /* ibot_recompute: the teacher's last layer again in each of Sinkhorn-Knopp's passes and for the targets */
    if (c->ibot_recompute)
        f += (c->sk_iters > 0 ? c->sk_iters : 3) * rows * 2.0 * c->ibot_head.bottleneck * c->ibot_head.prototypes +
             2.0 * rows * 2.0 * c->ibot_head.bottleneck * c->ibot_head.prototypes;
    return f;
}

int dx_ssl_teacher_chunk(const dx_ssl_config *c) {
    const int G = c->n_global * c->batch;
    if (c->teacher_chunk <= 0 || c->teacher_chunk >= G) return G;
    int n = c->teacher_chunk;
    while (G % n) n--;
    return n;
}

static int cmp_desc(const void *a, const void *b) { return *(const int *)b - *(const int *)a; }

int dx_ssl_max_masked(const dx_ssl_config *c) {
    const int P = (c->global_size / c->vit.patch) * (c->global_size / c->vit.patch);
    const int G = c->n_global * c->batch, Gall = mask_crops(c);
    if (!(c->mask_ratio_max > 0) || Gall < G) return G * P > 0 ? G * P : 1;
    int *counts = malloc(sizeof(int) * (size_t)Gall);
    if (!counts) return G * P;
    int n = dx_mask_counts(counts, Gall, P, c->mask_prob, c->mask_ratio_min, c->mask_ratio_max);
    long long sum = 0;
    if (n < 0) sum = (long long)G * P;
    else {
        qsort(counts, (size_t)n, sizeof *counts, cmp_desc);
        for (int i = 0; i < n && i < G; i++) sum += counts[i];
    }
    free(counts);
    return sum > 0 ? (int)sum : 1;
}

int dx_ssl_micro_batch(const dx_ssl_config *c) {
    return c->micro_batch > 0 && c->micro_batch < c->batch ? c->micro_batch : c->batch;
}

static dx_status check_micro_batch(const dx_ssl_config *c, dx_err *err) {
    if (c->micro_batch < 0 || (c->micro_batch > 0 && c->batch % c->micro_batch))
        return dx_fail(err, DX_EINVAL, "train.micro_batch %d: need 0 or a divisor of the batch on a rank (%d)",
                       c->micro_batch, c->batch);
    return DX_OK;
}

/* Gram-teacher crops per forward: it runs per student pass, over its 2 x mb global crops */
static int gram_chunk(const dx_ssl_config *c) {
    dx_ssl_config m = *c;
    m.batch = dx_ssl_micro_batch(c);
    return dx_ssl_teacher_chunk(&m);
}

/* the most masked patches one student pass can hold: the 2 x mb largest per-crop counts */
static int max_masked_pass(const dx_ssl_config *c) {
    dx_ssl_config m = *c;
    m.batch = dx_ssl_micro_batch(c);
    if (m.mask_batch <= 0) m.mask_batch = c->batch;
    return dx_ssl_max_masked(&m);
}

static dx_status plan_bytes(const dx_ssl_config *c, size_t *state, size_t part[DX_SSL_PLAN_PARTS], dx_err *err) {
    dx_vit vit;
    dx_head dino, ibot;
    dx_status st;
    if ((st = check_micro_batch(c, err))) return st;
    dx_head_config dh = c->dino_head, ih = c->ibot_head;
    dh.in_dim = ih.in_dim = c->vit.dim;
    if ((st = dx_vit_init(&vit, &c->vit, err))) return st;
    if ((st = dx_head_init(&dino, &dh, err))) { dx_vit_free(&vit); return st; }
    if ((st = dx_head_init(&ibot, &ih, err))) { dx_vit_free(&vit); dx_head_free(&dino); return st; }
    const size_t f = sizeof(float), tab = vit.tab.total + dino.tab.total + ibot.tab.total;
    const int B = c->batch, G = 2 * B, D = c->vit.dim, p = c->vit.patch;
    const int mb = dx_ssl_micro_batch(c), g = 2 * mb, l = c->n_local * mb, split = mb < B; /* one student pass */
    const int S = c->global_size, s = c->local_size, Sg = c->gram_size ? c->gram_size : S;
    const size_t P = (size_t)(S / p) * (S / p), Pg = (size_t)(Sg / p) * (Sg / p);
    *state = (5 * tab + (c->use_gram ? vit.tab.total : 0)) * f;
    const unsigned sf = DX_ACTS_GRAD | c->student_acts;
    /* teachers: one chunk's internals, and the whole batch's output when chunked */
    const int C = dx_ssl_teacher_chunk(c), Cg = gram_chunk(c), R1 = 1 + c->vit.registers;
    memset(part, 0, sizeof(size_t) * DX_SSL_PLAN_PARTS);
    part[0] = dx_vit_acts_bytes(&vit, g, S, S, sf);
    if (l) part[1] = dx_vit_acts_bytes(&vit, l, s, s, sf);
    part[2] = dx_vit_acts_bytes(&vit, C, S, S, 0) + (C < G ? f * (size_t)G * (R1 + P) * D : 0);
    if (c->use_gram) part[3] = dx_vit_acts_bytes(&vit, Cg, Sg, Sg, 0);
    part[4] = dx_head_acts_bytes(&dino, g + l, DX_HEAD_GRAD) + dx_head_acts_bytes(&dino, G, 0) +
              (split ? f * (size_t)g * dh.prototypes : 0); /* one pass's DINO targets */
    const size_t Mx = (size_t)dx_ssl_max_masked(c), Ms = (size_t)max_masked_pass(c); /* masked patches only */
    part[5] = dx_head_acts_bytes(&ibot, (int)Ms, DX_HEAD_GRAD_IN_PLACE);
    if (c->ibot_recompute) /* the teacher without logits, one pass's targets, Sinkhorn-Knopp's factors, argmax */
        part[5] += dx_head_acts_bytes(&ibot, (int)Mx, DX_HEAD_NO_LOGITS) + f * Ms * ih.prototypes +
                   sizeof(double) * (3 * (size_t)ih.prototypes + Mx) + sizeof(int32_t) * Mx;
    else
        part[5] += dx_head_acts_bytes(&ibot, (int)Mx, 0);
    /* crops, targets, weights, centres, masks, index lists (as dx_ssl_init) */
    part[6] = f * ((size_t)(G + (split ? g : 0)) * 3 * S * S + (size_t)l * 3 * s * s +
                   (c->use_gram ? (size_t)g * 3 * Sg * Sg : 0)) +
              f * (Mx + 2 * (dh.prototypes + ih.prototypes)) + /* the targets replace the teacher logits */
              (size_t)g * P + sizeof(int32_t) * (G + l + g * P + (c->use_gram ? g * Pg : 0) + (split ? 2 : 1) * Mx);
    /* KoLeo, Gram (xs, xt, their normalised copies, dxs; xt_big: one chunk) */
    part[7] = f * ((size_t)g * D + g) + (c->use_gram ? f * (5 * g * P * D + (size_t)Cg * Pg * D) : 0);
    dx_head_free(&dino);
    dx_head_free(&ibot);
    dx_vit_free(&vit);
    return DX_OK;
}

dx_status dx_ssl_plan_bytes(const dx_ssl_config *c, size_t *state, size_t *acts, dx_err *err) {
    size_t part[DX_SSL_PLAN_PARTS];
    dx_status st = plan_bytes(c, state, part, err);
    if (st) return st;
    *acts = 0;
    for (int i = 0; i < DX_SSL_PLAN_PARTS; i++) *acts += part[i];
    return DX_OK;
}

dx_status dx_ssl_plan_parts(const dx_ssl_config *c, size_t *state, size_t parts[DX_SSL_PLAN_PARTS], dx_err *err) {
    size_t st;
    return plan_bytes(c, state ? state : &st, parts, err);
}

/* Gradient buckets for data parallel: block l's tensors ("blocks.l.*" in the
 * backbone table, which starts the flat table) as one range, reduced as soon
 * as the last backward pass has finished block l. Any layout where blocks are
 * not disjoint ranges turns the overlap off (one reduction after backward). */
static dx_status grad_buckets(dx_ssl *s, dx_err *err) {
    const int L = s->cfg.vit.depth;
    s->bucket = calloc((size_t)2 * L, sizeof(size_t));
    s->reqs = calloc((size_t)L + 4, sizeof *s->reqs);
    if (!s->bucket || !s->reqs) return dx_fail(err, DX_ENOMEM, "gradient buckets");
    s->overlap = !s->cfg.no_overlap;
    for (int l = 0; l < L; l++) {
        char pre[32];
        int n = snprintf(pre, sizeof pre, "blocks.%d.", l);
        size_t lo = SIZE_MAX, hi = 0, sum = 0;
        for (int i = 0; i < s->vit.tab.n; i++) {
            const dx_tensor_spec *t = &s->vit.tab.t[i];
            if (strncmp(t->name, pre, (size_t)n)) continue;
            lo = t->offset < lo ? t->offset : lo;
            hi = t->offset + t->numel > hi ? t->offset + t->numel : hi;
            sum += t->numel;
        }
        if (hi <= lo || hi - lo != sum) s->overlap = 0; /* not one contiguous range */
        s->bucket[2 * l] = lo, s->bucket[2 * l + 1] = hi;
    }
    for (int l = 1; l < L && s->overlap; l++)
        if (s->bucket[2 * l] < s->bucket[2 * l - 1]) s->overlap = 0; /* not in block order */
    return DX_OK;
}

/* dx_vit_acts.on_block_grads of the last backward pass: start block l's reduction
 * and let the ones already in flight progress. */
static void block_grads_done(void *ctx, int l) {
    dx_ssl *s = ctx;
    dx_comm *c = s->comm;
    if (s->nreq < 0) return; /* an earlier start failed: everything goes in the final reduction */
    for (int i = 0; i < s->nreq; i++) c->test(c, s->reqs[i]);
    s->step_be->ops->sync(s->step_be); /* block l's gradient kernels are done before the engine reads them */
    const size_t lo = s->bucket[2 * l], hi = s->bucket[2 * l + 1];
    if (c->iallreduce_f32(c, s->g + lo, hi - lo, &s->reqs[s->nreq], NULL)) s->nreq = -1 - s->nreq;
    else s->nreq++;
}

static int32_t *upload_idx(dx_backend *be, const int32_t *host, size_t n) {
    int32_t *d = be->ops->alloc(be, (n ? n : 1) * sizeof(int32_t));
    if (d && n) be->ops->upload(be, d, host, n * sizeof(int32_t));
    return d;
}

dx_status dx_ssl_init(dx_ssl *s, const dx_ssl_config *cfg_in, dx_backend *be, dx_err *err) {
    memset(s, 0, sizeof *s);
    s->cfg = *cfg_in;
    dx_ssl_config *c = &s->cfg;
    if (c->batch < 1 || c->n_global != 2 || c->n_local < 0 || c->global_size < c->vit.patch ||
        (c->n_local > 0 && c->local_size < c->vit.patch))
        return dx_fail(err, DX_EINVAL, "ssl: need batch >= 1, exactly 2 global crops, crops >= patch size");
    if (!be->loss) return dx_fail(err, DX_EBACKEND, "backend %s has no loss kernels", be->ops->name);
    dx_status st;
    if ((st = check_micro_batch(c, err))) return st;
    s->mb = dx_ssl_micro_batch(c);
    if (c->koleo_group < 0 || (c->koleo_group > 0 && (c->koleo_group < 2 || s->mb % c->koleo_group)))
        return dx_fail(err, DX_EINVAL,
                       "loss.koleo_group %d: need 0 or a divisor >= 2 of the images of one student pass (%d: %s)",
                       c->koleo_group, s->mb, s->mb < c->batch ? "train.micro_batch" : "the batch on a rank");
    if (s->mb < c->batch && c->use_gram && !c->gram_img_level)
        return dx_fail(err, DX_EINVAL, "train.micro_batch %d with gram.img_level = false: the batch-level Gram "
                       "matrix spans every patch of the batch and does not split over student passes (set "
                       "gram.img_level = true, DINOv3's per-image Gram, or train.micro_batch = 0)", c->micro_batch);
    if (c->ibot_recompute && c->centering != DX_CENTER_SINKHORN)
        return dx_fail(err, DX_EINVAL, "train.ibot_recompute needs teacher.centering = sinkhorn_knopp (the "
                       "softmax centre's targets are formed in one piece)");
    c->dino_head.in_dim = c->ibot_head.in_dim = c->vit.dim;
    if (!c->gram_size) c->gram_size = c->global_size;
    if (c->sk_iters <= 0) c->sk_iters = 3;
    if ((st = dx_vit_init(&s->vit, &c->vit, err))) return st;
    if ((st = dx_head_init(&s->dino, &c->dino_head, err))) return st;
    if ((st = dx_head_init(&s->ibot, &c->ibot_head, err))) return st;
    size_t base_vit;
    dx_table_init(&s->tab);
    if ((st = dx_table_append(&s->tab, &s->vit.tab, "backbone.", &base_vit, err))) return st;
    if ((st = dx_table_append(&s->tab, &s->dino.tab, "dino_head.", &s->base_dino, err))) return st;
    if ((st = dx_table_append(&s->tab, &s->ibot.tab, "ibot_head.", &s->base_ibot, err))) return st;
    dx_table_set_param_groups(&s->tab, "backbone.", c->vit.depth, c->layer_decay > 0 ? c->layer_decay : 1.0f,
                              c->patch_embed_lr_mult > 0 ? c->patch_embed_lr_mult : 1.0f);

    const size_t bytes = s->tab.total * sizeof(float);
    s->w = be->ops->alloc(be, bytes);
    s->g = be->ops->alloc(be, bytes);
    s->m = be->ops->alloc(be, bytes);
    s->v = be->ops->alloc(be, bytes);
    s->teacher = be->ops->alloc(be, bytes);
    if (c->use_gram) s->gram_w = be->ops->alloc(be, BV(s) * sizeof(float));
    if (!s->w || !s->g || !s->m || !s->v || !s->teacher || (c->use_gram && !s->gram_w))
        return dx_fail(err, DX_ENOMEM, "ssl state (%zu floats x 5)", s->tab.total);
    if ((st = dx_optim_segments(be, &s->tab, &s->seg, &s->nseg, err))) return st;
    if ((st = grad_buckets(s, err))) return st;

    const int B = c->batch, G = 2 * B, D = c->vit.dim, p = c->vit.patch;
    const int mb = s->mb, g = 2 * mb, l = c->n_local * mb, split = mb < B; /* one student pass */
    const unsigned sf = DX_ACTS_GRAD | c->student_acts; /* student */
    if ((st = dx_vit_acts_init(&s->s_glob, &s->vit, be, g, c->global_size, c->global_size, sf, err))) return st;
    if (l > 0 && (st = dx_vit_acts_init(&s->s_loc, &s->vit, be, l, c->local_size, c->local_size, sf, err))) return st;
    s->t_chunk = dx_ssl_teacher_chunk(c);
    s->g_chunk = gram_chunk(c);
    if ((st = dx_vit_acts_init(&s->t_glob, &s->vit, be, s->t_chunk, c->global_size, c->global_size, 0, err)))
        return st;
    if (c->use_gram &&
        (st = dx_vit_acts_init(&s->g_glob, &s->vit, be, s->g_chunk, c->gram_size, c->gram_size, 0, err)))
        return st;
    if (s->t_chunk < G) { /* the EMA teacher's chunks side by side, as one unchunked pass leaves them */
        s->t_out = be->ops->alloc(be, (size_t)G * s->t_glob.T * D * sizeof(float));
        if (!s->t_out) return dx_fail(err, DX_ENOMEM, "teacher outputs");
    }
    s->P = s->s_glob.P;
    s->Pg = (c->gram_size / p) * (c->gram_size / p);
    const int P = s->P, Pg = s->Pg, Kd = c->dino_head.prototypes, Ki = c->ibot_head.prototypes;
    if ((st = dx_head_acts_init(&s->hd_s, &s->dino, be, g + l, DX_HEAD_GRAD, err))) return st;
    if ((st = dx_head_acts_init(&s->hd_t, &s->dino, be, G, 0, err))) return st;
    s->max_masked = dx_ssl_max_masked(c);
    s->max_masked_mb = max_masked_pass(c);
    const int Mx = s->max_masked;
    /* the iBOT loss turns the student's logits into their gradient in place */
    if ((st = dx_head_acts_init(&s->hi_s, &s->ibot, be, s->max_masked_mb, DX_HEAD_GRAD_IN_PLACE, err))) return st;
    if ((st = dx_head_acts_init(&s->hi_t, &s->ibot, be, Mx, c->ibot_recompute ? DX_HEAD_NO_LOGITS : 0, err)))
        return st;

    const size_t GPD = (size_t)g * P * D * sizeof(float);
    const size_t per_glob = (size_t)3 * c->global_size * c->global_size * sizeof(float);
    s->img_glob = be->ops->alloc(be, (size_t)G * per_glob);
    s->img_sg = split ? be->ops->alloc(be, (size_t)g * per_glob) : s->img_glob;
    s->img_loc = l ? be->ops->alloc(be, (size_t)l * 3 * c->local_size * c->local_size * sizeof(float)) : NULL;
    s->img_gram = c->use_gram ? be->ops->alloc(be, (size_t)g * 3 * c->gram_size * c->gram_size * sizeof(float)) : NULL;
    /* the teacher targets replace the teacher heads' logits (centring works in place) */
    s->tgt_dino = s->hd_t.logits;
    if (c->ibot_recompute) { /* one pass's targets, and Sinkhorn-Knopp's factors */
        s->tgt_ibot = be->ops->alloc(be, (size_t)s->max_masked_mb * Ki * sizeof(float));
        s->sk_m = be->ops->alloc(be, sizeof(double) * 3 * (size_t)Ki);
        s->sk_r = be->ops->alloc(be, sizeof(double) * (size_t)Mx);
        s->ibot_argmax = be->ops->alloc(be, sizeof(int32_t) * (size_t)Mx);
        if (!s->tgt_ibot || !s->sk_m || !s->sk_r || !s->ibot_argmax)
            return dx_fail(err, DX_ENOMEM, "iBOT targets of one pass (train.ibot_recompute)");
        s->sk_a[0] = s->sk_m + Ki, s->sk_a[1] = s->sk_m + 2 * (size_t)Ki;
    } else {
        s->tgt_ibot = s->hi_t.logits;
    }
    s->tgt_mb = split ? be->ops->alloc(be, (size_t)g * Kd * sizeof(float)) : s->tgt_dino;
    s->mask_w = be->ops->alloc(be, (size_t)Mx * sizeof(float));
    s->mask_dev = be->ops->alloc(be, (size_t)g * P); /* one pass's iBOT masks */
    s->mb_off = calloc((size_t)B / mb + 1, sizeof(int));
    s->center_dino = be->ops->alloc(be, (size_t)Kd * sizeof(float) * 2);
    s->center_ibot = be->ops->alloc(be, (size_t)Ki * sizeof(float) * 2);
    s->dkoleo = be->ops->alloc(be, (size_t)g * D * sizeof(float));
    s->koleo_nn = be->ops->alloc(be, (size_t)g * sizeof(int32_t)); /* per global crop, kept for backward */
    if (c->use_gram) {
        s->xs = be->ops->alloc(be, GPD);
        s->xt = be->ops->alloc(be, GPD);
        s->xs_hat = be->ops->alloc(be, GPD);
        s->xt_hat = be->ops->alloc(be, GPD);
        s->dxs = be->ops->alloc(be, GPD);
        s->xt_big = be->ops->alloc(be, (size_t)s->g_chunk * Pg * D * sizeof(float)); /* one teacher chunk */
    }
    /* fixed gather lists: CLS rows (of all 2B teacher crops; a pass's are the first 2 mb) and
     * all patch rows of each crop group */
    const int R1 = 1 + c->vit.registers;
    int32_t *h = malloc(sizeof(int32_t) * (size_t)g * (Pg > P ? Pg : P) + sizeof(int32_t) * (G + l));
    if (!h) return dx_fail(err, DX_ENOMEM, "index lists");
    for (int n = 0; n < G; n++) h[n] = n * s->s_glob.T;
    s->idx_cls_glob = upload_idx(be, h, G);
    for (int n = 0; n < l; n++) h[n] = n * (l ? s->s_loc.T : 0);
    s->idx_cls_loc = upload_idx(be, h, l);
    for (int n = 0; n < g; n++)
        for (int q = 0; q < P; q++) h[n * P + q] = n * s->s_glob.T + R1 + q;
    s->idx_patch = upload_idx(be, h, (size_t)g * P);
    if (c->use_gram) {
        for (int n = 0; n < g; n++)
            for (int q = 0; q < Pg; q++) h[n * Pg + q] = n * s->g_glob.T + R1 + q;
        s->idx_patch_gram = upload_idx(be, h, (size_t)g * Pg);
    }
    free(h);
    s->idx_masked = be->ops->alloc(be, (size_t)Mx * sizeof(int32_t));
    s->idx_masked_s = split ? be->ops->alloc(be, (size_t)Mx * sizeof(int32_t)) : s->idx_masked;
    if (!s->img_glob || !s->img_sg || (l && !s->img_loc) || !s->tgt_dino || !s->tgt_ibot || !s->tgt_mb ||
        !s->mask_w || !s->idx_masked || !s->idx_masked_s || !s->mb_off || !s->idx_cls_glob || !s->idx_patch ||
        !s->dkoleo || !s->koleo_nn || !s->mask_dev ||
        (c->use_gram && (!s->xs || !s->xt || !s->xs_hat || !s->xt_hat || !s->dxs || !s->xt_big)))
        return dx_fail(err, DX_ENOMEM, "ssl scratch buffers");
    return DX_OK;
}

void dx_ssl_free(dx_ssl *s, dx_backend *be) {
    free(s->bucket);
    free(s->reqs);
    free(s->mb_off);
    /* without micro-batching these alias the whole batch's buffers */
    if (s->img_sg && s->img_sg != s->img_glob) be->ops->free(be, s->img_sg);
    if (s->tgt_mb && s->tgt_mb != s->tgt_dino) be->ops->free(be, s->tgt_mb);
    if (s->idx_masked_s && s->idx_masked_s != s->idx_masked) be->ops->free(be, s->idx_masked_s);
    if (s->cfg.ibot_recompute) { /* else tgt_ibot is the teacher head's logits */
        void *rb[] = {s->tgt_ibot, s->sk_m, s->sk_r, s->ibot_argmax};
        for (int i = 0; i < 4; i++)
            if (rb[i]) be->ops->free(be, rb[i]);
    }
    void *bufs[] = {s->seg, s->w, s->g, s->m, s->v, s->teacher, s->gram_w, s->center_dino, s->center_ibot,
                    s->img_glob, s->img_loc, s->img_gram, s->mask_w, s->xs,
                    s->xt, s->xs_hat, s->xt_hat, s->dxs, s->xt_big, s->dkoleo, s->idx_cls_glob,
                    s->idx_cls_loc, s->idx_patch, s->idx_patch_gram, s->idx_masked, s->koleo_nn, s->mask_dev,
                    s->t_out};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be->ops->free(be, bufs[i]);
    dx_vit_acts *va[] = {&s->s_glob, &s->s_loc, &s->t_glob, &s->g_glob};
    for (int i = 0; i < 4; i++)
        if (va[i]->buf) dx_vit_acts_free(va[i], be);
    dx_head_acts *ha[] = {&s->hd_s, &s->hd_t, &s->hi_s, &s->hi_t};
    for (int i = 0; i < 4; i++)
        if (ha[i]->buf) dx_head_acts_free(ha[i], be);
    dx_table_free(&s->tab);
    dx_head_free(&s->dino);
    dx_head_free(&s->ibot);
    dx_vit_free(&s->vit);
    memset(s, 0, sizeof *s);
}

dx_status dx_ssl_init_weights(dx_ssl *s, dx_backend *be, dx_err *err) {
    dx_status st;
    if ((st = dx_vit_init_weights(&s->vit, be, s->w, s->cfg.seed, err))) return st;
    if ((st = dx_head_init_weights(&s->dino, be, s->w + s->base_dino, s->cfg.seed, err))) return st;
    if ((st = dx_head_init_weights(&s->ibot, be, s->w + s->base_ibot, s->cfg.seed + 1, err))) return st;
    const size_t bytes = s->tab.total * sizeof(float);
    be->ops->copy(be, s->teacher, s->w, bytes); /* teacher = student at init */
    be->ops->zero(be, s->m, bytes);
    be->ops->zero(be, s->v, bytes);
    if (s->gram_w) be->ops->copy(be, s->gram_w, s->w, BV(s) * sizeof(float));
    s->adam_t = 0;
    s->center_init = 0;
    return DX_OK;
}

void dx_ssl_gram_refresh(dx_ssl *s, dx_backend *be) {
    if (s->gram_w) be->ops->copy(be, s->gram_w, s->teacher, BV(s) * sizeof(float));
}

size_t dx_ssl_state_bytes(const dx_ssl *s) {
    return (5 * s->tab.total + (s->gram_w ? BV(s) : 0)) * sizeof(float);
}

size_t dx_ssl_acts_bytes(const dx_ssl *s) {
    const size_t G = 2 * (size_t)s->cfg.batch, D = (size_t)s->cfg.vit.dim;
    return s->s_glob.bytes + s->s_loc.bytes + s->t_glob.bytes + s->g_glob.bytes + s->hd_s.bytes +
           s->hd_t.bytes + s->hi_s.bytes + s->hi_t.bytes +
           (s->t_out ? G * s->t_glob.T * D * sizeof(float) : 0);
}

static double mono_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int distributed(const dx_ssl *s) { return s->comm && s->comm->size > 1; }

/* Sinkhorn-Knopp's mid-op reductions over the ranks. A failed collective
 * fails the next checked one too (the loss terms' reduction), which reports it. */
static void red_sum(void *ctx, double *b, int n) { ((dx_comm *)ctx)->allreduce_f64(ctx, b, (size_t)n, DX_COMM_SUM, NULL); }
static void red_max(void *ctx, double *b, int n) { ((dx_comm *)ctx)->allreduce_f64(ctx, b, (size_t)n, DX_COMM_MAX, NULL); }

/* The EMA teacher's pass (no backward, eval mode) over the G global crops
 * img[G, 3, side, side] in chunks of a->N crops; returns the [G*T, D] output:
 * a's own when one chunk holds them all, else `full`, which receives each
 * chunk's output at its crops' rows. Eval mode draws nothing, so every crop's
 * output is that of the unchunked pass (to the GEMMs' rounding). The Gram
 * teacher's chunks go straight into the Gram target instead (dx_ssl_step). */
static const float *teacher_forward(dx_ssl *s, dx_backend *be, const float *w, dx_vit_acts *a, const float *img,
                                    int G, int side, float *full, dx_status *st, dx_err *err) {
    const dx_vit_run eval = {0};
    const size_t per_img = (size_t)3 * side * side, per_out = (size_t)a->T * s->cfg.vit.dim;
    for (int c0 = 0; c0 < G; c0 += a->N) {
        if ((*st = dx_vit_forward(&s->vit, be, w, a, img + (size_t)c0 * per_img, NULL, &eval, err))) return NULL;
        if (a->N == G) return a->out;
        be->ops->copy(be, full + (size_t)c0 * per_out, a->out, (size_t)a->N * per_out * sizeof(float));
    }
    return full;
}

/* Teacher targets from logits [N, K] (N of the N_tot rows over all ranks):
 * Sinkhorn-Knopp or softmax centring. */
static dx_status teacher_targets(dx_ssl *s, dx_backend *be, float *out, const float *logits, float *center,
                                 int N, int N_tot, int K, float temp, dx_err *err) {
    if (s->cfg.centering == DX_CENTER_SINKHORN) {
        dx_allreduce red = {.ctx = s->comm, .sum_f64 = red_sum, .max_f64 = red_max};
        be->loss->sinkhorn_knopp(be, out, logits, N, K, temp, s->cfg.sk_iters, distributed(s) ? &red : NULL);
        return DX_OK;
    }
    /* DINOv2 softmax centring: use the centre, then c <- 0.9 c + 0.1 mean(logits),
     * the mean over the rows of every rank */
    float *mean = center + K;
    if (N > 0) { /* the batch mean first: out may be logits */
        be->loss->row_mean(be, mean, logits, N, K);
        be->loss->softmax_center(be, out, logits, center, N, K, temp);
    } else {
        be->ops->zero(be, mean, (size_t)K * sizeof(float));
    }
    if (distributed(s)) {
        if (N > 0) be->ops->scale(be, mean, (float)N / (float)N_tot, (size_t)K);
        /* a GPU backend's kernels run on its own stream, the engine's (NCCL) on another:
         * the buffer is complete before it is reduced (a no-op on the CPU) */
        be->ops->sync(be);
        dx_status st = s->comm->allreduce_f32(s->comm, mean, (size_t)K, DX_COMM_SUM, err);
        if (st) return st;
    }
    be->ops->ema(be, center, mean, (size_t)K, 0.9f);
    return DX_OK;
}

/* train.ibot_recompute: Sinkhorn-Knopp of the iBOT targets over the student passes'
 * masked rows as chunks (dx_loss_ops.h, sk_chunk_*). Each of the sk_iters + 2 passes
 * recomputes a chunk's logits from the teacher head's bottleneck features into the
 * one-pass target buffer; ranks reduce the maxima and masses after each pass. Every
 * rank runs every pass over all its chunks, empty ones too, so the reductions pair up.
 * Leaves sk_m, sk_a[sk_cur] and sk_r for ibot_pass_targets. */
static dx_status sk_reduce(dx_ssl *s, dx_backend *be, double *buf, int K, dx_comm_op op, dx_err *err) {
    if (!distributed(s)) return DX_OK;
    be->ops->sync(be); /* a GPU stream's kernels finish before the engine reads the buffer */
    return s->comm->allreduce_f64(s->comm, buf, (size_t)K, op, err);
}

static dx_status ibot_targets_chunked(dx_ssl *s, dx_backend *be, const float *ti, int nmb, int M_tot, float temp,
                                      dx_err *err) {
    const struct dx_loss_ops *lo = be->loss;
    const int K = s->cfg.ibot_head.prototypes, n_iter = s->cfg.sk_iters;
    float *Z = s->tgt_ibot;
    dx_status st;
#define SK_CHUNK_ROWS(j) const int r0 = s->mb_off[j], R = s->mb_off[(j) + 1] - r0; \
    dx_head_logits(&s->ibot, be, ti, &s->hi_t, r0, R, Z)
    for (int j = 0; j < nmb; j++) {
        SK_CHUNK_ROWS(j);
        lo->sk_chunk_colmax(be, s->sk_m, Z, R, K, j == 0);
    }
    if ((st = sk_reduce(s, be, s->sk_m, K, DX_COMM_MAX, err))) return st;
    for (int j = 0; j < nmb; j++) {
        SK_CHUNK_ROWS(j);
        lo->sk_chunk_colsum(be, s->sk_a[0], Z, s->sk_m, NULL, R, K, temp, j == 0);
    }
    if ((st = sk_reduce(s, be, s->sk_a[0], K, DX_COMM_SUM, err))) return st;
    int cur = 0;
    for (int it = 0; it < n_iter; it++) {
        const int more = it < n_iter - 1;
        for (int j = 0; j < nmb; j++) {
            SK_CHUNK_ROWS(j);
            lo->sk_chunk_rowscale(be, s->sk_r + r0, Z, s->sk_m, s->sk_a[cur], R, K, temp, (double)M_tot);
            if (more) lo->sk_chunk_colsum(be, s->sk_a[cur ^ 1], Z, s->sk_m, s->sk_r + r0, R, K, temp, j == 0);
        }
        if (more) {
            if ((st = sk_reduce(s, be, s->sk_a[cur ^ 1], K, DX_COMM_SUM, err))) return st;
            cur ^= 1;
        }
    }
#undef SK_CHUNK_ROWS
    s->sk_cur = cur;
    return DX_OK;
}

/* train.ibot_recompute: the targets of the masked rows r0 .. r0 + R into tgt_ibot,
 * and (health) their entropy sum and argmax. */
static void ibot_pass_targets(dx_ssl *s, dx_backend *be, const float *ti, int r0, int R, int M_tot, float temp,
                              int health) {
    const int K = s->cfg.ibot_head.prototypes;
    dx_head_logits(&s->ibot, be, ti, &s->hi_t, r0, R, s->tgt_ibot);
    be->loss->sk_chunk_targets(be, s->tgt_ibot, s->tgt_ibot, s->sk_m, s->sk_a[s->sk_cur], s->sk_r + r0, R, K, temp,
                               (double)M_tot);
    if (health && R > 0) {
        double pst[DX_PROB_STATS];
        be->loss->prob_stats(be, pst, s->tgt_ibot, R, K, 1.0f, 0);
        s->ibot_t_ent_sum += pst[0] * R;
        be->loss->row_argmax(be, s->ibot_argmax + r0, s->tgt_ibot, R, K);
    }
}

/* L2 norm of g[0..n) (one submodule), then g *= min(1, clip / (norm + 1e-6)). */
static double clip_range(dx_backend *be, float *g, size_t n, float clip) {
    double norm = sqrt(be->ops->sumsq(be, g, n));
    if (clip > 0 && isfinite(norm)) {
        double f = dx_clip_factor(norm, clip);
        if (f < 1.0) be->ops->scale(be, g, (float)f, n);
    }
    return norm;
}

dx_status dx_ssl_step(dx_ssl *s, dx_backend *be, const dx_ssl_batch *batch, int64_t step,
                      const dx_ssl_sched *sc, dx_ssl_metrics *out, dx_err *err) {
    const dx_backend_ops *o = be->ops;
    const struct dx_loss_ops *lo = be->loss;
    const dx_ssl_config *c = &s->cfg;
    const int B = c->batch, G = 2 * B, D = c->vit.dim, P = s->P, Pg = s->Pg;
    /* the student passes: nmb slices of mb images; pass j holds images j*mb .. of every crop group */
    const int mb = s->mb, nmb = B / mb, g = 2 * mb, l = c->n_local * mb;
    const int Kd = c->dino_head.prototypes, Ki = c->ibot_head.prototypes;
    const int T = s->s_glob.T, R1 = 1 + c->vit.registers;
    const float ts = c->student_temp;
    float *wd_ = s->w + s->base_dino, *wi = s->w + s->base_ibot;
    float *gd = s->g + s->base_dino, *gi = s->g + s->base_ibot;
    float *td = s->teacher + s->base_dino, *ti = s->teacher + s->base_ibot;
    const size_t per_glob = (size_t)3 * c->global_size * c->global_size;
    const size_t per_loc = (size_t)3 * c->local_size * c->local_size;
    const size_t per_gram = (size_t)3 * c->gram_size * c->gram_size;
    dx_status st;
    memset(out, 0, sizeof *out);

    /* all global crops to the device (the EMA teacher's input; the student's passes take slices) */
    o->upload(be, s->img_glob, batch->global, (size_t)G * per_glob * sizeof(float));

    /* masks: the masked token rows in pass order (pass j's crops c*B + j*mb + i, c = 0, 1), as rows
     * of the teacher's [2B*T] output and of the pass's [2mb*T] student output; weights 1/n_i (collate).
     * One pass: the collate's crop order. */
    int M = 0;
    float *mw = NULL;
    s->mb_off[0] = 0;
    if (batch->masks) {
        mw = malloc(sizeof(float) * (size_t)G * P);
        int32_t *rows = malloc(sizeof(int32_t) * (size_t)G * P * 2), *rows_s = rows ? rows + (size_t)G * P : NULL;
        if (!mw || !rows) {
            free(mw); free(rows);
            return dx_fail(err, DX_ENOMEM, "mask lists");
        }
        int most = 0;
        for (int j = 0; j < nmb; j++) {
            for (int cr = 0; cr < 2; cr++)
                for (int i = 0; i < mb; i++) {
                    const int n = cr * B + j * mb + i, ns = cr * mb + i;
                    const uint8_t *mk = batch->masks + (size_t)n * P;
                    int cnt = 0;
                    for (int q = 0; q < P; q++) cnt += mk[q] != 0;
                    for (int q = 0; q < P; q++)
                        if (mk[q]) {
                            rows[M] = n * T + R1 + q;
                            rows_s[M] = ns * T + R1 + q;
                            mw[M] = 1.0f / (float)(cnt > 0 ? cnt : 1);
                            M++;
                        }
                }
            s->mb_off[j + 1] = M;
            if (M - s->mb_off[j] > most) most = M - s->mb_off[j];
        }
        if (M > s->max_masked || most > s->max_masked_mb) {
            free(rows), free(mw);
            if (M > s->max_masked)
                return dx_fail(err, DX_EINVAL, "the step's iBOT masks hold %d patches, more than the %d the iBOT "
                               "head was sized for (mask_prob %.6g, mask_ratio [%.6g, %.6g] over %d global crops)", M,
                               s->max_masked, c->mask_prob, (double)c->mask_ratio_min, (double)c->mask_ratio_max,
                               mask_crops(c));
            return dx_fail(err, DX_EINVAL, "a student pass's iBOT masks hold %d patches, more than the %d its iBOT "
                           "head was sized for (the %d largest per-crop counts of the mask rule)", most,
                           s->max_masked_mb, g);
        }
        if (M) {
            o->upload(be, s->idx_masked, rows, sizeof(int32_t) * M);
            if (s->idx_masked_s != s->idx_masked) o->upload(be, s->idx_masked_s, rows_s, sizeof(int32_t) * M);
            o->upload(be, s->mask_w, mw, sizeof(float) * M);
        }
        free(rows);
    } else {
        for (int j = 0; j < nmb; j++) s->mb_off[j + 1] = 0;
    }
    out->n_masked = M;

    /* ---- teacher (EMA): clean global crops, eval mode, the whole batch --------- */
    const float *t_out = teacher_forward(s, be, s->teacher, &s->t_glob, s->img_glob, G, c->global_size, s->t_out,
                                         &st, err);
    if (!t_out) goto done;
    o->gather_rows(be, s->hd_t.x, t_out, s->idx_cls_glob, G, (size_t)D);
    dx_head_forward(&s->dino, be, td, &s->hd_t, G);
    const int W = s->comm ? s->comm->size : 1;
    const int M_tot = batch->masked_total > 0 ? batch->masked_total : M; /* over all ranks */
    if ((st = teacher_targets(s, be, s->tgt_dino, s->hd_t.logits, s->center_dino, G, G * W, Kd, sc->teacher_temp,
                              err))) goto done;
    if (M) {
        o->gather_rows(be, s->hi_t.x, t_out, s->idx_masked, M, (size_t)D);
        dx_head_forward(&s->ibot, be, ti, &s->hi_t, M);
    }
    /* every rank joins the iBOT targets' reductions, with or without masked patches of its own */
    if (M_tot && c->ibot_recompute) {
        if ((st = ibot_targets_chunked(s, be, ti, nmb, M_tot, sc->teacher_temp, err))) goto done;
    } else if (M_tot && (st = teacher_targets(s, be, s->tgt_ibot, s->hi_t.logits, s->center_ibot, M, M_tot, Ki,
                                              sc->teacher_temp, err))) goto done;
    s->ibot_t_ent_sum = 0;

    if (c->use_gram && c->gram_size != c->global_size && !batch->gram) {
        st = dx_fail(err, DX_EINVAL, "Gram teacher crops of %d px were configured but the batch has none",
                     c->gram_size);
        goto done;
    }
    dx_loss_weights lw;
    dx_loss_weights_default(&lw);
    lw.w_dino = c->w_dino;
    lw.w_koleo = c->w_koleo;
    lw.w_ibot = c->w_ibot;
    lw.w_gram = sc->w_gram;
    lw.local_weight = sc->lambda_local;
    lw.n_global = 2;
    lw.n_local = c->n_local;
    lw.use_gram = c->use_gram;
    dx_loss_terms coef, terms;
    dx_loss_coefs(&lw, &coef);
    /* the per-image means (DINO, Gram) of a pass are 1/nmb of the batch's; KoLeo's groups and
     * iBOT's 1/(2B) normalisation already count over the whole batch */
    const float w_loc = (float)coef.dino_local / (float)nmb, w_glob = (float)coef.dino_global / (float)nmb;
    const int kg = c->koleo_group > 0 ? c->koleo_group : mb, ngrp = B / kg;
    const int overlap = distributed(s) && s->overlap;
    double ent_sum = 0, t_comm = 0;
    o->zero(be, s->g, s->tab.total * sizeof(float));

    for (int j = 0; j < nmb; j++) {
        const int last_pass = j == nmb - 1, m0 = s->mb_off[j], Mj = s->mb_off[j + 1] - m0;
        /* ---- this pass's crops, masks and DINO targets ------------------------------ */
        if (nmb > 1) {
            for (int cr = 0; cr < 2; cr++) {
                const size_t at = (size_t)cr * B + (size_t)j * mb;
                o->copy(be, s->img_sg + (size_t)cr * mb * per_glob, s->img_glob + at * per_glob,
                        (size_t)mb * per_glob * sizeof(float));
                o->copy(be, s->tgt_mb + (size_t)cr * mb * Kd, s->tgt_dino + at * Kd, (size_t)mb * Kd * sizeof(float));
            }
        }
        for (int cr = 0; cr < c->n_local; cr++)
            o->upload(be, s->img_loc + (size_t)cr * mb * per_loc,
                      batch->local + ((size_t)cr * B + (size_t)j * mb) * per_loc, (size_t)mb * per_loc * sizeof(float));
        if (batch->masks)
            for (int cr = 0; cr < 2; cr++)
                o->upload(be, s->mask_dev + (size_t)cr * mb * P, batch->masks + ((size_t)cr * B + (size_t)j * mb) * P,
                          (size_t)mb * P);
        const float *tgt = s->tgt_mb, *tgt_i = s->tgt_ibot + (size_t)m0 * Ki;
        if (c->ibot_recompute) {
            tgt_i = s->tgt_ibot;
            if (Mj) ibot_pass_targets(s, be, ti, m0, Mj, M_tot, sc->teacher_temp, !batch->no_health);
        }

        /* ---- student: masked global crops, local crops, train mode. Every pass draws the
         * same stochastic-depth positions and RoPE jitter, as every rank does: passes of m
         * images are the same step as B / m ranks of m images ------------------------- */
        dx_vit_run tr = {.train = 1, .seed = c->seed, .step = (uint64_t)step, .group = 0};
        if ((st = dx_vit_forward(&s->vit, be, s->w, &s->s_glob, s->img_sg, batch->masks ? s->mask_dev : NULL, &tr,
                                  err))) goto done;
        if (l) {
            tr.group = 1;
            if ((st = dx_vit_forward(&s->vit, be, s->w, &s->s_loc, s->img_loc, NULL, &tr, err))) goto done;
        }
        /* DINO head on [global CLS (2mb) ; local CLS (L mb)] */
        o->gather_rows(be, s->hd_s.x, s->s_glob.out, s->idx_cls_glob, g, (size_t)D);
        if (l) o->gather_rows(be, s->hd_s.x + (size_t)g * D, s->s_loc.out, s->idx_cls_loc, l, (size_t)D);
        dx_head_forward(&s->dino, be, wd_, &s->hd_s, g + l);
        if (Mj) {
            o->gather_rows(be, s->hi_s.x, s->s_glob.out, s->idx_masked_s + m0, Mj, (size_t)D);
            dx_head_forward(&s->ibot, be, wi, &s->hi_s, Mj);
        }

        /* ---- Gram teacher, on this pass's crops ------------------------------------- */
        if (c->use_gram) {
            const float *gimg_src = s->img_sg;
            if (batch->gram) {
                for (int cr = 0; cr < 2; cr++)
                    o->upload(be, s->img_gram + (size_t)cr * mb * per_gram,
                              batch->gram + ((size_t)cr * B + (size_t)j * mb) * per_gram,
                              (size_t)mb * per_gram * sizeof(float));
                gimg_src = s->img_gram;
            }
            /* chunk by chunk: the patch tokens (bicubically resized BEFORE normalisation when the Gram
             * crops are larger, channels-last) go straight to their crops' rows of xt. The first
             * C * Pg entries of idx_patch_gram are the rows of a chunk's own output. */
            const dx_vit_run eval = {0};
            const int C = s->g_chunk, ng = c->gram_size / c->vit.patch, ns = c->global_size / c->vit.patch;
            for (int c0 = 0; c0 < g; c0 += C) {
                const float *img = gimg_src + (size_t)c0 * per_gram;
                if ((st = dx_vit_forward(&s->vit, be, s->gram_w, &s->g_glob, img, NULL, &eval, err))) goto done;
                float *xt_c = s->xt + (size_t)c0 * P * D;
                if (Pg != P) {
                    o->gather_rows(be, s->xt_big, s->g_glob.out, s->idx_patch_gram, C * Pg, (size_t)D);
                    lo->resize_bicubic(be, xt_c, s->xt_big, C, ng, ng, ns, ns, D);
                } else {
                    o->gather_rows(be, xt_c, s->g_glob.out, s->idx_patch_gram, C * P, (size_t)D);
                }
            }
            o->gather_rows(be, s->xs, s->s_glob.out, s->idx_patch, g * P, (size_t)D);
        }

        /* ---- losses: this pass's share of the batch's terms ------------------------- */
        const float *S_glob = s->hd_s.logits, *S_loc = s->hd_s.logits + (size_t)g * Kd;
        if (l) out->dino_local += lo->dino_forward(be, S_loc, c->n_local, tgt, 2, mb, Kd, ts, 0) / nmb;
        out->dino_global += lo->dino_forward(be, S_glob, 2, tgt, 2, mb, Kd, ts, 1) / nmb;
        /* KoLeo per global crop on the pre-head CLS, over groups of kg images of one
         * pass (DINOv3's default: the rank's batch, no all-gather) */
        for (int cr = 0; cr < 2; cr++)
            for (int q = 0; q < mb / kg; q++) {
                const size_t r0 = (size_t)cr * mb + (size_t)q * kg;
                out->koleo += 0.5 / ngrp * lo->koleo_forward(be, s->koleo_nn + r0, s->hd_s.x + r0 * D, kg, D);
            }
        if (Mj) {
            out->ibot += dx_ibot_loss_forward(be, s->hi_s.logits, tgt_i, s->mask_w + m0, Mj, Ki, ts, G);
            if (!batch->no_health) { /* for the health metrics: the backward overwrites these logits */
                double pst[DX_PROB_STATS];
                lo->prob_stats(be, pst, s->hi_s.logits, Mj, Ki, c->student_temp, 1);
                ent_sum += pst[0] * Mj;
            }
        }
        if (c->use_gram)
            out->gram += lo->gram_forward(be, s->xs_hat, s->xt_hat, s->xs, s->xt, g, P, D, c->gram_img_level) / nmb;

        if (last_pass) {
            s->ibot_s_entropy = batch->no_health || !M ? NAN : ent_sum / M;
            terms = (dx_loss_terms){out->dino_local, out->dino_global, out->koleo, out->ibot, out->gram};
            out->total = dx_loss_total(&terms, &lw, NULL);
            if (distributed(s)) {
                /* the global batch's terms (ranks hold equal shares: the mean of the ranks'
                 * means), and one decision on a non-finite loss: no rank may skip the
                 * gradient reduction that the others enter */
                double v[7] = {out->dino_local, out->dino_global, out->koleo, out->ibot, out->gram, out->total,
                               isfinite(out->total) ? 0.0 : 1.0};
                if ((st = s->comm->allreduce_f64(s->comm, v, 7, DX_COMM_SUM, err))) goto done;
                out->dino_local = v[0] / W, out->dino_global = v[1] / W, out->koleo = v[2] / W;
                out->ibot = v[3] / W, out->gram = v[4] / W, out->total = v[6] > 0 ? NAN : v[5] / W;
            }
            if (!isfinite(out->total)) { /* earlier passes' gradients are discarded with it */
                out->nonfinite = 1;
                goto done;
            }
        }

        /* ---- backward of this pass: gradients accumulate in s->g ---------------------- */
        o->zero(be, s->s_glob.dout, (size_t)g * T * D * sizeof(float));
        if (l) o->zero(be, s->s_loc.dout, (size_t)l * s->s_loc.T * D * sizeof(float));
        o->zero(be, s->hd_s.dlogits, (size_t)(g + l) * Kd * sizeof(float));
        if (l) lo->dino_backward(be, s->hd_s.dlogits + (size_t)g * Kd, S_loc, c->n_local, tgt, 2, mb, Kd, ts, 0, w_loc);
        lo->dino_backward(be, s->hd_s.dlogits, S_glob, 2, tgt, 2, mb, Kd, ts, 1, w_glob);
        dx_head_backward(&s->dino, be, wd_, gd, &s->hd_s);
        /* KoLeo */
        o->zero(be, s->dkoleo, (size_t)g * D * sizeof(float));
        for (int cr = 0; cr < 2; cr++) /* the neighbours found by the forward; the term is coef * mean over crops, groups */
            for (int q = 0; q < mb / kg; q++) {
                const size_t r0 = (size_t)cr * mb + (size_t)q * kg;
                lo->koleo_backward(be, s->dkoleo + r0 * D, s->hd_s.x + r0 * D, s->koleo_nn + r0, kg, D,
                                   (float)coef.koleo * 0.5f / (float)ngrp);
            }
        o->axpy(be, s->hd_s.dx, 1.0f, s->dkoleo, (size_t)g * D);
        o->scatter_add_rows(be, s->s_glob.dout, s->hd_s.dx, s->idx_cls_glob, g, (size_t)D);
        if (l) o->scatter_add_rows(be, s->s_loc.dout, s->hd_s.dx + (size_t)g * D, s->idx_cls_loc, l, (size_t)D);
        if (Mj) {
            dx_ibot_loss_backward(be, s->hi_s.dlogits, s->hi_s.logits, tgt_i, s->mask_w + m0, Mj, Ki, ts, G,
                                  (float)coef.ibot);
            dx_head_backward(&s->ibot, be, wi, gi, &s->hi_s);
            o->scatter_add_rows(be, s->s_glob.dout, s->hi_s.dx, s->idx_masked_s + m0, Mj, (size_t)D);
        }
        if (c->use_gram && sc->w_gram != 0) {
            o->zero(be, s->dxs, (size_t)g * P * D * sizeof(float));
            lo->gram_backward(be, s->dxs, s->xs, s->xs_hat, s->xt_hat, g, P, D, c->gram_img_level,
                              (float)coef.gram / (float)nmb);
            o->scatter_add_rows(be, s->s_glob.dout, s->dxs, s->idx_patch, g * P, (size_t)D);
        }
        /* data parallel with overlap: in the last pass the heads' gradients are final now, block
         * l's once the last backward (local crops, or global without them) is through it */
        dx_vit_acts *last = l ? &s->s_loc : &s->s_glob;
        s->nreq = 0;
        if (overlap && last_pass) {
            const double t0 = mono_s();
            s->step_be = be;
            be->ops->sync(be); /* the heads' gradients are complete (see softmax-centre reduction) */
            if ((st = s->comm->iallreduce_f32(s->comm, s->g + s->base_dino, s->tab.total - s->base_dino,
                                              &s->reqs[s->nreq], err))) goto done;
            s->nreq++;
            last->on_block_grads = block_grads_done;
            last->grads_ctx = s;
            t_comm += mono_s() - t0;
        }
        st = dx_vit_backward(&s->vit, be, s->w, s->g, &s->s_glob, err);
        if (!st && l) st = dx_vit_backward(&s->vit, be, s->w, s->g, &s->s_loc, err);
        last->on_block_grads = NULL;
        if (st && !(overlap && last_pass)) goto done; /* with reductions in flight: wait for them first */
    }
    if (overlap) {
        /* the rest of the backbone (tokens, patch embedding, final norm) and what is left in flight */
        const double t0 = mono_s();
        dx_err e2;
        dx_status ws = DX_OK;
        const int started = s->nreq < 0 ? -1 - s->nreq : s->nreq;
        for (int i = 0; i < started; i++) {
            dx_status w1 = s->comm->wait(s->comm, s->reqs[i], &e2);
            if (w1 && !ws) ws = w1;
        }
        if (st) goto done;
        if (ws) {
            st = dx_fail(err, ws, "%s", e2.msg);
            goto done;
        }
        const int L_ = c->vit.depth;
        be->ops->sync(be); /* the rest of the backbone's gradients are complete */
        if (s->nreq < 0) { /* a bucket failed to start: reduce the whole backbone once */
            if ((st = s->comm->allreduce_f32(s->comm, s->g, BV(s), DX_COMM_SUM, err))) goto done;
        } else {
            size_t at = 0;
            for (int l = 0; l <= L_; l++) {
                const size_t lo = l < L_ ? s->bucket[2 * l] : BV(s);
                if (lo > at && (st = s->comm->allreduce_f32(s->comm, s->g + at, lo - at, DX_COMM_SUM, err)))
                    goto done;
                if (l < L_) at = s->bucket[2 * l + 1];
            }
        }
        t_comm += mono_s() - t0;
        out->comm_s = t_comm;
        o->scale(be, s->g, 1.0f / (float)W, s->tab.total);
    }
    if (st) goto done;

    /* ---- data parallel: the mean of the ranks' gradients (each is its share's mean) ---- */
    if (distributed(s) && !overlap) {
        const double t0 = mono_s();
        be->ops->sync(be); /* the gradients are complete before the engine reads them */
        if ((st = s->comm->allreduce_f32(s->comm, s->g, s->tab.total, DX_COMM_SUM, err))) goto done;
        out->comm_s = mono_s() - t0; /* includes waiting for the slowest rank's backward */
        o->scale(be, s->g, 1.0f / (float)W, s->tab.total);
    }

    /* ---- clip per submodule, AdamW, EMA ---------------------------------- */
    out->gnorm_backbone = clip_range(be, s->g, BV(s), c->clip_grad);
    out->gnorm_dino = clip_range(be, gd, s->base_ibot - s->base_dino, c->clip_grad);
    out->gnorm_ibot = clip_range(be, gi, s->tab.total - s->base_ibot, c->clip_grad);
    if (!isfinite(out->gnorm_backbone) || !isfinite(out->gnorm_dino) || !isfinite(out->gnorm_ibot)) {
        out->nonfinite = 1;
        goto done;
    }
    dx_adamw hp = {.lr = sc->lr, .last_layer_lr = sc->last_layer_lr, .wd = sc->wd,
                   .beta1 = c->beta1, .beta2 = c->beta2, .eps = c->eps};
    s->adam_t++;
    dx_adamw_step(be, s->seg, s->nseg, s->w, s->g, s->m, s->v, &hp, (int)s->adam_t);
    o->ema_multi(be, s->teacher, s->w, s->seg, s->nseg, sc->momentum);
done:
    free(mw);
    return st;
}

/* Teacher argmax agreement between the two global crops of each image, from
 * targets [2B, K] crop-major: the fraction of b with argmax T[b] == argmax T[B+b]. */
static double crop_agreement(dx_backend *be, const float *T, int B, int K) {
    int32_t *d = be->ops->alloc(be, sizeof(int32_t) * 2 * (size_t)B);
    int32_t *h = malloc(sizeof(int32_t) * 2 * (size_t)B);
    double agree = NAN;
    if (d && h) {
        be->loss->row_argmax(be, d, T, 2 * B, K);
        be->ops->download(be, h, d, sizeof(int32_t) * 2 * (size_t)B);
        agree = 0;
        for (int b = 0; b < B; b++) agree += h[b] == h[B + b];
        agree /= B;
    }
    if (d) be->ops->free(be, d);
    free(h);
    return agree;
}

/* the number of distinct values among idx[0..n) (backend memory) in [0, K) */
static double argmax_distinct(dx_backend *be, const int32_t *idx, int n, int K) {
    int32_t *h = malloc(sizeof(int32_t) * (size_t)n);
    unsigned char *seen = calloc((size_t)K, 1);
    double used = NAN;
    if (h && seen) {
        be->ops->download(be, h, idx, sizeof(int32_t) * (size_t)n);
        used = 0;
        for (int i = 0; i < n; i++)
            if (h[i] >= 0 && h[i] < K && !seen[h[i]]) seen[h[i]] = 1, used++;
    }
    free(h), free(seen);
    return used;
}

double dx_group_r2(const float *x, const int32_t *g, int n, int D) {
    int ng = 0;
    for (int i = 0; i < n; i++) {
        if (g[i] < 0) return NAN;
        ng = g[i] + 1 > ng ? g[i] + 1 : ng;
    }
    double *mean = calloc((size_t)D * (ng + 1), sizeof(double)); /* [D] overall, then [ng, D] */
    int *cnt = calloc((size_t)ng + 1, sizeof(int));
    double between = 0, total = 0;
    if (mean && cnt && n > 0 && ng > 0) {
        double *gm = mean + D;
        for (int i = 0; i < n; i++) {
            cnt[g[i]]++;
            for (int d = 0; d < D; d++) mean[d] += x[(size_t)i * D + d], gm[(size_t)g[i] * D + d] += x[(size_t)i * D + d];
        }
        for (int d = 0; d < D; d++) mean[d] /= n;
        for (int k = 0; k < ng; k++)
            for (int d = 0; d < D && cnt[k]; d++) {
                double e = gm[(size_t)k * D + d] / cnt[k] - mean[d];
                between += cnt[k] * e * e;
            }
        for (int i = 0; i < n; i++)
            for (int d = 0; d < D; d++) {
                double e = x[(size_t)i * D + d] - mean[d];
                total += e * e;
            }
    }
    free(mean), free(cnt);
    return total > 0 ? between / total : 0;
}

/* dx_group_r2 of rows [G, D] in backend memory (teacher CLS or targets) by the crops' windows */
static double window_r2(dx_backend *be, const float *cls, const int32_t *window, int G, int D) {
    if (!window) return NAN;
    float *h = malloc(sizeof(float) * (size_t)G * D);
    double r2 = NAN;
    if (h) {
        be->ops->download(be, h, cls, sizeof(float) * (size_t)G * D);
        r2 = dx_group_r2(h, window, G, D);
    }
    free(h);
    return r2;
}

void dx_ssl_health_compute(const dx_ssl *s, dx_backend *be, const dx_ssl_sched *sc, int M, const int32_t *window,
                           dx_ssl_health *h) {
    const struct dx_loss_ops *lo = be->loss;
    const dx_ssl_config *c = &s->cfg;
    const int B = c->batch, G = 2 * B, D = c->vit.dim;
    const int Kd = c->dino_head.prototypes, Ki = c->ibot_head.prototypes;
    double st[DX_PROB_STATS], fs[DX_FEATURE_STATS];
    memset(h, 0, sizeof *h);
    lo->prob_stats(be, st, s->tgt_dino, G, Kd, 1.0f, 0);
    h->dino_t_entropy = st[0] / log((double)Kd);
    h->dino_t_mean_entropy = st[1] / log((double)Kd);
    h->dino_t_used = st[2];
    h->dino_t_agree = crop_agreement(be, s->tgt_dino, B, Kd);
    lo->prob_stats(be, st, s->hd_s.logits, 2 * s->mb, Kd, c->student_temp, 1); /* the last student pass */
    h->dino_s_kl_uniform = log((double)Kd) - st[0];
    if (M > 0 && c->ibot_recompute) { /* gathered pass by pass in the step */
        h->ibot_t_entropy = s->ibot_t_ent_sum / M / log((double)Ki);
        h->ibot_t_used = argmax_distinct(be, s->ibot_argmax, M, Ki);
        h->ibot_s_kl_uniform = log((double)Ki) - s->ibot_s_entropy;
    } else if (M > 0) {
        lo->prob_stats(be, st, s->tgt_ibot, M, Ki, 1.0f, 0);
        h->ibot_t_entropy = st[0] / log((double)Ki);
        h->ibot_t_used = st[2];
        h->ibot_s_kl_uniform = log((double)Ki) - s->ibot_s_entropy; /* measured in the step */
    }
    lo->feature_stats(be, fs, s->hd_t.x, G, D);
    h->cls_std = fs[0];
    h->cls_erank = fs[1];
    h->cls_cos = fs[2];
    h->cls_window_r2 = window_r2(be, s->hd_t.x, window, G, D);
    h->dino_t_window_r2 = window_r2(be, s->tgt_dino, window, G, Kd);
    const int T = s->t_glob.T, first = 1 + c->vit.registers;
    const float *t_out = s->t_out ? s->t_out : s->t_glob.out; /* all G crops' teacher tokens */
    h->patch_cos = lo->patch_cosine(be, t_out + (size_t)first * D, G, s->P, D, (size_t)T * D);
    const dx_tensor_spec *ll = &s->dino.tab.t[s->dino.last];
    h->last_layer_norm = sqrt(be->ops->sumsq(be, s->w + s->base_dino + ll->offset, ll->numel) / Kd);
    (void)sc;
}
