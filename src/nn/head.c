/* head.c - DINO / iBOT head: see head.h. */
#include "nn/head.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/dx_loss_ops.h"
#include "core/dx_rng.h"

#define L2_EPS 1e-12f

dx_status dx_head_init(dx_head *h, const dx_head_config *cfg, dx_err *err) {
    memset(h, 0, sizeof *h);
    if (cfg->in_dim <= 0 || cfg->bottleneck <= 0 || cfg->prototypes <= 0 || cfg->nlayers < 1 ||
        cfg->nlayers > DX_HEAD_MAX_LAYERS || (cfg->nlayers > 1 && cfg->hidden <= 0))
        return dx_fail(err, DX_EINVAL, "head: bad sizes (in %d hidden %d bottleneck %d K %d layers %d)",
                       cfg->in_dim, cfg->hidden, cfg->bottleneck, cfg->prototypes, cfg->nlayers);
    h->cfg = *cfg;
    dx_table_init(&h->tab);
    h->nlin = cfg->nlayers;
    char n[DX_NAME_MAX];
    for (int i = 0; i < h->nlin; i++) {
        h->in[i] = i == 0 ? cfg->in_dim : cfg->hidden;
        h->out[i] = i == h->nlin - 1 ? cfg->bottleneck : cfg->hidden;
        int64_t ws[2] = {h->out[i], h->in[i]}, bs[1] = {h->out[i]};
        snprintf(n, sizeof n, "mlp.%d.weight", 2 * i);
        h->w[i] = dx_table_add(&h->tab, n, 2, ws, 0, err);
        snprintf(n, sizeof n, "mlp.%d.bias", 2 * i);
        h->b[i] = dx_table_add(&h->tab, n, 1, bs, DX_TF_NO_WD, err);
        if (h->w[i] < 0 || h->b[i] < 0) return err ? err->code : DX_EINVAL;
    }
    int64_t ls[2] = {cfg->prototypes, cfg->bottleneck};
    h->last = dx_table_add(&h->tab, "last_layer.weight", 2, ls, DX_TF_LAST_LAYER, err);
    if (h->last < 0) return err ? err->code : DX_EINVAL;
    return DX_OK;
}

void dx_head_free(dx_head *h) { dx_table_free(&h->tab); }

dx_status dx_head_init_weights(const dx_head *h, dx_backend *be, float *w, uint64_t seed, dx_err *err) {
    float *host = calloc(h->tab.total, sizeof(float));
    if (!host) return dx_fail(err, DX_ENOMEM, "head init");
    const double std = h->cfg.init_std > 0 ? h->cfg.init_std : 0.02;
    for (int i = 0; i < h->tab.n; i++) {
        const dx_tensor_spec *s = &h->tab.t[i];
        if (s->ndim != 2) continue; /* biases stay 0 */
        dx_rng r;
        dx_rng_init(&r, seed, DX_RNG_INIT, 1000000 + (uint64_t)i, 0);
        for (size_t j = 0; j < s->numel; j++) {
            double v;
            do v = std * dx_rng_normal(&r); while (fabs(v) > 2.0);
            host[s->offset + j] = (float)v;
        }
    }
    be->ops->upload(be, w, host, h->tab.total * sizeof(float));
    free(host);
    return DX_OK;
}

double dx_head_flops_per_row(const dx_head_config *c) {
    double f = 2.0 * c->bottleneck * c->prototypes;
    for (int i = 0; i < c->nlayers; i++) {
        int in = i == 0 ? c->in_dim : c->hidden, out = i == c->nlayers - 1 ? c->bottleneck : c->hidden;
        f += 2.0 * in * out;
    }
    return f;
}

static int max_width(const dx_head *h) {
    int m = h->cfg.in_dim;
    if (h->cfg.hidden > m) m = h->cfg.hidden;
    if (h->cfg.bottleneck > m) m = h->cfg.bottleneck;
    return m;
}

/* Sizes in floats of every activation, in allocation order; returns total. */
static size_t layout(const dx_head *h, int R, int with_grad, size_t *off, int count_only) {
    size_t t = 0;
    int k = 0;
#define TAKE(n) do { if (!count_only) off[k] = t; k++; t += ((size_t)(n) + 15) / 16 * 16; } while (0)
    TAKE((size_t)R * h->cfg.in_dim);                       /* x */
    for (int i = 0; i < h->nlin; i++) {
        TAKE((size_t)R * h->out[i]);                       /* pre */
        TAKE(i < h->nlin - 1 ? (size_t)R * h->out[i] : 0); /* post (GELU) */
    }
    TAKE((size_t)R * h->cfg.bottleneck);                   /* u */
    TAKE(with_grad == DX_HEAD_NO_LOGITS ? 0 : (size_t)R * h->cfg.prototypes); /* logits */
    const size_t kb = h->cfg.norm_last_layer ? (size_t)h->cfg.prototypes * h->cfg.bottleneck : 0;
    TAKE(kb);                                              /* wn */
    if (with_grad == DX_HEAD_GRAD || with_grad == DX_HEAD_GRAD_IN_PLACE) {
        TAKE(with_grad == DX_HEAD_GRAD_IN_PLACE ? 0 : (size_t)R * h->cfg.prototypes); /* dlogits */
        TAKE((size_t)R * h->cfg.in_dim);                   /* dx */
        TAKE((size_t)R * max_width(h));                    /* dA */
        TAKE((size_t)R * max_width(h));                    /* dB */
        TAKE(kb);                                          /* dwn */
    }
#undef TAKE
    return t;
}

size_t dx_head_acts_bytes(const dx_head *h, int max_rows, int with_grad) {
    return layout(h, max_rows, with_grad, NULL, 1) * sizeof(float);
}

dx_status dx_head_acts_init(dx_head_acts *a, const dx_head *h, dx_backend *be, int max_rows,
                            int with_grad, dx_err *err) {
    memset(a, 0, sizeof *a);
    if (max_rows < 1) max_rows = 1;
    size_t off[4 + 2 * DX_HEAD_MAX_LAYERS + 6];
    size_t total = layout(h, max_rows, with_grad, off, 0);
    a->bytes = total * sizeof(float);
    a->buf = be->ops->alloc(be, a->bytes);
    if (!a->buf) return dx_fail(err, DX_ENOMEM, "head activations (%.1f MB)", a->bytes / 1e6);
    a->max_rows = max_rows;
    a->with_grad = with_grad;
    int k = 0;
    a->x = a->buf + off[k++];
    for (int i = 0; i < h->nlin; i++) {
        a->pre[i] = a->buf + off[k++];
        a->post[i] = a->buf + off[k++];
    }
    a->u = a->buf + off[k++];
    a->logits = a->buf + off[k++];
    a->wn = a->buf + off[k++];
    if (with_grad == DX_HEAD_NO_LOGITS) a->logits = NULL;
    if (with_grad == DX_HEAD_GRAD || with_grad == DX_HEAD_GRAD_IN_PLACE) {
        a->dlogits = with_grad == DX_HEAD_GRAD_IN_PLACE ? a->logits : a->buf + off[k];
        k++;
        a->dx = a->buf + off[k++];
        a->dA = a->buf + off[k++];
        a->dB = a->buf + off[k++];
        a->dwn = a->buf + off[k++];
    }
    if (!h->cfg.norm_last_layer) a->wn = a->dwn = NULL;
    return DX_OK;
}

void dx_head_acts_free(dx_head_acts *a, dx_backend *be) {
    if (a->buf) be->ops->free(be, a->buf);
    memset(a, 0, sizeof *a);
}

#define WP(id) (w + h->tab.t[(id)].offset)
#define GP(id) (g + h->tab.t[(id)].offset)

void dx_head_forward(const dx_head *h, dx_backend *be, const float *w, dx_head_acts *a, int rows) {
    const dx_backend_ops *o = be->ops;
    a->rows = rows;
    const float *in = a->x;
    for (int i = 0; i < h->nlin; i++) {
        dx_gemm_linear(be, 0, 1, rows, h->out[i], h->in[i], 1.0f, in, h->in[i], WP(h->w[i]), h->in[i], 0.0f,
                a->pre[i], h->out[i]);
        o->bias_forward(be, a->pre[i], WP(h->b[i]), NULL, rows, h->out[i]);
        if (i < h->nlin - 1) {
            o->gelu_forward(be, a->post[i], a->pre[i], (size_t)rows * h->out[i]);
            in = a->post[i];
        }
    }
    const int Bn = h->cfg.bottleneck, K = h->cfg.prototypes;
    be->loss->l2norm_forward(be, a->u, a->pre[h->nlin - 1], rows, Bn, L2_EPS);
    const float *proto = WP(h->last);
    if (h->cfg.norm_last_layer) {
        be->loss->l2norm_forward(be, a->wn, proto, K, Bn, L2_EPS);
        proto = a->wn;
    }
    if (a->logits) dx_gemm_linear(be, 0, 1, rows, K, Bn, 1.0f, a->u, Bn, proto, Bn, 0.0f, a->logits, K);
}

void dx_head_logits(const dx_head *h, dx_backend *be, const float *w, const dx_head_acts *a, int row0, int rows,
                    float *out) {
    const int Bn = h->cfg.bottleneck, K = h->cfg.prototypes;
    const float *proto = h->cfg.norm_last_layer ? a->wn : WP(h->last);
    if (rows > 0)
        dx_gemm_linear(be, 0, 1, rows, K, Bn, 1.0f, a->u + (size_t)row0 * Bn, Bn, proto, Bn, 0.0f, out, K);
}

void dx_head_backward(const dx_head *h, dx_backend *be, const float *w, float *g, dx_head_acts *a) {
    const dx_backend_ops *o = be->ops;
    const int R = a->rows, Bn = h->cfg.bottleneck, K = h->cfg.prototypes;
    /* logits = u Wl^T: du = dlogits Wl; dWl += dlogits^T u */
    float *du = a->dA, *dz = a->dB;
    if (h->cfg.norm_last_layer) {
        /* logits = u Wn^T, Wn = normalize_rows(V): dWn = dlogits^T u, then through the row norm into dV */
        dx_gemm_linear(be, 0, 0, R, Bn, K, 1.0f, a->dlogits, K, a->wn, Bn, 0.0f, du, Bn);
        dx_gemm_linear(be, 1, 0, K, Bn, R, 1.0f, a->dlogits, K, a->u, Bn, 0.0f, a->dwn, Bn);
        be->loss->l2norm_backward(be, GP(h->last), WP(h->last), a->dwn, K, Bn, L2_EPS);
    } else {
        dx_gemm_linear(be, 0, 0, R, Bn, K, 1.0f, a->dlogits, K, WP(h->last), Bn, 0.0f, du, Bn);
        dx_gemm_linear(be, 1, 0, K, Bn, R, 1.0f, a->dlogits, K, a->u, Bn, 1.0f, GP(h->last), Bn);
    }
    o->zero(be, dz, (size_t)R * Bn * sizeof(float));
    be->loss->l2norm_backward(be, dz, a->pre[h->nlin - 1], du, R, Bn, L2_EPS);
    /* dz is d(pre of the last MLP layer); walk the MLP backwards */
    float *dpre = dz, *spare = a->dA;
    for (int i = h->nlin - 1; i >= 0; i--) {
        const float *in = i == 0 ? a->x : a->post[i - 1];
        o->bias_backward(be, GP(h->b[i]), dpre, NULL, R, h->out[i]);
        dx_gemm_linear(be, 1, 0, h->out[i], h->in[i], R, 1.0f, dpre, h->out[i], in, h->in[i], 1.0f, GP(h->w[i]),
                h->in[i]);
        float *din = i == 0 ? a->dx : spare; /* d(post[i-1]) or dx */
        dx_gemm_linear(be, 0, 0, R, h->in[i], h->out[i], 1.0f, dpre, h->out[i], WP(h->w[i]), h->in[i], 0.0f, din,
                h->in[i]);
        if (i > 0) {
            float *dprev = dpre; /* reuse: dpre is consumed */
            o->zero(be, dprev, (size_t)R * h->out[i - 1] * sizeof(float));
            o->gelu_backward(be, dprev, a->pre[i - 1], din, (size_t)R * h->out[i - 1]);
            spare = din;
            dpre = dprev;
        }
    }
}
