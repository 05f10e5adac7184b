/* test_health.c - the training-health ops (prob_stats, feature_stats,
 * patch_cosine, row_argmax) against closed forms and brute-force double
 * references, the collapse test of the trainer, and the health metrics of
 * a real SSL step (uniform targets at init, as the diagnosis in
 * docs/objective.md says, and a weight-normalised head that is not), and the
 * window R^2 (dx_group_r2) against its within-group form. All
 * tensors go through the backend (alloc/upload/download). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "backend/dx_backend.h"
#include "backend/dx_loss_ops.h"
#include "core/dx_rng.h"
#include "dx_test.h"
#include "train/ssl.h"
#include "train/trainer.h"

static float *dev(dx_backend *be, const float *h, size_t n) {
    float *d = be->ops->alloc(be, n * sizeof(float));
    be->ops->upload(be, d, h, n * sizeof(float));
    return d;
}

/* brute-force references in double */
static void ref_prob_stats(double out[3], const float *P, int N, int K, double temp, int logits) {
    double hs = 0, *mean = calloc((size_t)K, sizeof(double));
    int *used = calloc((size_t)K, sizeof(int)), nu = 0;
    for (int n = 0; n < N; n++) {
        const float *r = P + (size_t)n * K;
        double *p = malloc(sizeof(double) * K), z = 0, mx = -INFINITY;
        int am = 0;
        for (int k = 0; k < K; k++) {
            if (r[k] > r[am]) am = k;
            if (r[k] > mx) mx = r[k];
        }
        for (int k = 0; k < K; k++) z += (p[k] = logits ? exp((r[k] - mx) / temp) : r[k]);
        for (int k = 0; k < K; k++) {
            p[k] /= z;
            if (p[k] > 0) hs -= p[k] * log(p[k]);
            mean[k] += p[k] / N;
        }
        used[am] = 1;
        free(p);
    }
    out[0] = hs / N;
    out[1] = 0;
    for (int k = 0; k < K; k++) {
        if (mean[k] > 0) out[1] -= mean[k] * log(mean[k]);
        nu += used[k];
    }
    out[2] = nu;
    free(mean);
    free(used);
}

static void test_prob_stats(dx_backend *be) {
    const int N = 7, K = 33;
    float P[7 * 33];
    double st[DX_PROB_STATS], ref[3];
    /* uniform rows: entropy ln K, mean row uniform, every row's argmax is column 0 */
    for (int i = 0; i < N * K; i++) P[i] = 1.0f / K;
    float *d = dev(be, P, N * K);
    be->loss->prob_stats(be, st, d, N, K, 1.0f, 0);
    CHECK_CLOSE(st[0], log(K), 1e-6, 0, "uniform rows: entropy ln K");
    CHECK_CLOSE(st[1], log(K), 1e-6, 0, "uniform rows: mean entropy ln K");
    CHECK(st[2] == 1, "uniform rows: one argmax column, got %g", st[2]);
    /* one-hot rows on columns n: entropy 0, mean over N columns = ln N, N columns used */
    for (int i = 0; i < N * K; i++) P[i] = 0;
    for (int n = 0; n < N; n++) P[n * K + 3 * n] = 1;
    be->ops->upload(be, d, P, sizeof P);
    be->loss->prob_stats(be, st, d, N, K, 1.0f, 0);
    CHECK_CLOSE(st[0], 0, 1e-12, 0, "one-hot rows: entropy 0");
    CHECK_CLOSE(st[1], log(N), 1e-6, 0, "one-hot rows: mean entropy ln N");
    CHECK(st[2] == N, "one-hot rows: %d columns used, got %g", N, st[2]);
    /* random distributions and random logits vs the brute-force reference */
    dx_rng r;
    dx_rng_init(&r, 7, 0, 0, 0);
    for (int i = 0; i < N * K; i++) P[i] = (float)dx_rng_uniform(&r);
    be->ops->upload(be, d, P, sizeof P);
    be->loss->prob_stats(be, st, d, N, K, 1.0f, 0);
    ref_prob_stats(ref, P, N, K, 1.0, 0);
    for (int i = 0; i < 3; i++) CHECK_CLOSE(st[i], ref[i], 1e-9, 1e-9, "random distributions");
    for (int i = 0; i < N * K; i++) P[i] = (float)(3 * dx_rng_normal(&r));
    be->ops->upload(be, d, P, sizeof P);
    be->loss->prob_stats(be, st, d, N, K, 0.1f, 1);
    ref_prob_stats(ref, P, N, K, 0.1f, 1);
    for (int i = 0; i < 3; i++) CHECK_CLOSE(st[i], ref[i], 1e-9, 1e-9, "random logits, temp 0.1");
    /* row_argmax */
    int32_t *di = be->ops->alloc(be, N * sizeof(int32_t)), hi[7];
    be->loss->row_argmax(be, di, d, N, K);
    be->ops->download(be, hi, di, sizeof hi);
    int ok = 1;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) ok &= P[n * K + k] <= P[n * K + hi[n]];
    CHECK(ok, "row_argmax returns a maximum of each row");
    be->ops->free(be, di);
    be->ops->free(be, d);
}

static void test_feature_stats(dx_backend *be) {
    const int N = 6, D = 10;
    float x[6 * 10];
    double fs[DX_FEATURE_STATS];
    /* identical rows: no spread, rank 0, cosine 1 */
    for (int n = 0; n < N; n++)
        for (int d = 0; d < D; d++) x[n * D + d] = (float)(d + 1);
    float *dx = dev(be, x, N * D);
    be->loss->feature_stats(be, fs, dx, N, D);
    CHECK_CLOSE(fs[0], 0, 1e-9, 0, "identical rows: std 0");
    CHECK_CLOSE(fs[1], 0, 1e-9, 0, "identical rows: effective rank 0");
    CHECK_CLOSE(fs[2], 1, 1e-9, 0, "identical rows: cosine 1");
    /* +-e_i pairs: centred rows span N/2 equal directions -> effective rank N/2, mean cosine -1/(N-1) */
    for (int i = 0; i < N * D; i++) x[i] = 0;
    for (int n = 0; n < N; n++) x[n * D + n / 2] = n % 2 ? -2.0f : 2.0f;
    be->ops->upload(be, dx, x, sizeof x);
    be->loss->feature_stats(be, fs, dx, N, D);
    CHECK_CLOSE(fs[1], N / 2, 1e-6, 0, "+-e_i pairs: effective rank N/2");
    CHECK_CLOSE(fs[2], -1.0 / (N - 1), 1e-9, 0, "+-e_i pairs: mean cosine");
    /* std: each of the first 3 dims has values {+2, -2, 0, 0, 0, 0}: std sqrt(8/6); the rest 0 */
    CHECK_CLOSE(fs[0], 3 * sqrt(8.0 / 6) / D, 1e-7, 0, "+-e_i pairs: mean std");
    be->ops->free(be, dx);
}

static void test_patch_cosine(dx_backend *be) {
    /* 2 images of T = 1 + P tokens; patches of image 0 identical (cos 1), of image 1 orthogonal (cos 0) */
    const int P = 4, D = 4, T = 1 + P;
    float x[2 * 5 * 4] = {0};
    for (int p = 0; p < P; p++) {
        x[(0 * T + 1 + p) * D + 1] = 3.0f;
        x[(1 * T + 1 + p) * D + p] = 1.0f + p;
    }
    x[0] = 100; /* the CLS rows must not count */
    float *d = dev(be, x, 2 * T * D);
    double c = be->loss->patch_cosine(be, d + D, 2, P, D, (size_t)T * D);
    CHECK_CLOSE(c, 0.5, 1e-9, 0, "patch cosine: mean of 1 and 0");
    be->ops->free(be, d);
}

static void test_collapse_rule(void) {
    const int K = 1024;
    const double lnk = log(K);
    CHECK(dx_train_collapsed(0.99, 5.0, K), "entropy above 0.98 ln K is collapsed");
    CHECK(dx_train_collapsed(0.5, lnk * 1.004, K), "DINO loss within 0.5%% of ln K is collapsed");
    CHECK(!dx_train_collapsed(0.95, lnk * 0.96, K), "entropy 0.95, loss 4%% below ln K is not collapsed");
}

/* One SSL step of a tiny model: the DINOv3 default init gives uniform DINO
 * targets (the CLS of every image is the same at LayerScale 1e-5); with
 * LayerScale 1 and weight-normalised prototypes the targets are not. */
static void test_ssl_health(dx_backend *be, int fixed) {
    dx_ssl_config c = {0};
    dx_err err = {0};
    if (dx_vit_config_named(&c.vit, "custom", &err)) {
        CHECK(0, "vit config: %s", err.msg);
        return;
    }
    c.vit.dim = 32; c.vit.depth = 2; c.vit.heads = 2; c.vit.patch = 8; c.vit.registers = 1; c.vit.ffn_hidden = 64;
    c.vit.layerscale_init = fixed ? 1.0f : 1e-5f;
    c.dino_head = (dx_head_config){.hidden = 32, .bottleneck = 16, .prototypes = 64, .nlayers = 3,
                                   .norm_last_layer = fixed};
    c.ibot_head = c.dino_head;
    c.batch = 8;
    c.n_global = 2;
    c.n_local = 0;
    c.global_size = c.local_size = 32;
    c.w_dino = c.w_ibot = 1;
    c.w_koleo = 0.1f;
    c.student_temp = 0.1f;
    c.sk_iters = 3;
    c.clip_grad = 3;
    c.beta1 = 0.9f; c.beta2 = 0.999f; c.eps = 1e-8f;
    c.layer_decay = 0.9f; c.patch_embed_lr_mult = 0.2f;
    c.seed = 3;
    dx_ssl s;
    if (dx_ssl_init(&s, &c, be, &err) || dx_ssl_init_weights(&s, be, &err)) {
        CHECK(0, "ssl init: %s", err.msg);
        return;
    }
    const size_t n = (size_t)2 * c.batch * 3 * 32 * 32;
    float *img = malloc(n * sizeof(float));
    dx_rng r;
    dx_rng_init(&r, 11, 0, 0, 0);
    for (size_t i = 0; i < n; i++) img[i] = (float)dx_rng_normal(&r);
    dx_ssl_batch b = {.global = img};
    dx_ssl_sched sc = {.lr = 1e-4f, .last_layer_lr = 1e-4f, .wd = 0.04f, .momentum = 0.99f, .teacher_temp = 0.04f};
    dx_ssl_metrics m;
    CHECK(dx_ssl_step(&s, be, &b, 0, &sc, &m, &err) == 0, "step: %s", err.msg);
    dx_ssl_health h;
    dx_ssl_health_compute(&s, be, &sc, m.n_masked, NULL, &h);
    if (!fixed) {
        CHECK(h.dino_t_entropy > 0.999, "DINOv3 init: teacher targets uniform (entropy %.5f ln K)", h.dino_t_entropy);
        CHECK(h.cls_cos > 0.99, "DINOv3 init: every image's CLS the same (cosine %.5f)", h.cls_cos);
    } else {
        CHECK(h.dino_t_entropy < 0.98, "LayerScale 1 + normalised prototypes: targets not uniform (%.4f ln K)",
              h.dino_t_entropy);
        CHECK(h.cls_cos < 0.99, "LayerScale 1: CLS differ between images (cosine %.4f)", h.cls_cos);
        CHECK(h.dino_s_kl_uniform > 0.05, "normalised prototypes: student far from uniform (KL %.4f)",
              h.dino_s_kl_uniform);
    }
    CHECK(h.dino_t_used >= 1 && h.dino_t_used <= 2 * c.batch, "prototypes used in [1, 2B]: %g", h.dino_t_used);
    CHECK(h.dino_t_agree >= 0 && h.dino_t_agree <= 1, "crop agreement is a fraction: %g", h.dino_t_agree);
    CHECK(h.last_layer_norm > 0.05 && h.last_layer_norm < 0.2, "prototype row norm ~0.02 sqrt(16): %g",
          h.last_layer_norm);
    CHECK(isfinite(h.patch_cos) && isfinite(h.cls_erank) && h.cls_erank <= 2 * c.batch, "finite feature stats");
    CHECK(isnan(h.cls_window_r2) && isnan(h.dino_t_window_r2), "no windows given: the window R^2 are NaN (%g, %g)",
          h.cls_window_r2, h.dino_t_window_r2);
    /* with windows: the same R^2 as dx_group_r2 of the downloaded teacher CLS */
    int32_t win[64];
    for (int i = 0; i < 2 * c.batch; i++) win[i] = (i * 5 + 1) % 3 == 0;
    dx_ssl_health hw;
    dx_ssl_health_compute(&s, be, &sc, m.n_masked, win, &hw);
    float *cls = malloc(sizeof(float) * 2 * c.batch * c.vit.dim);
    be->ops->download(be, cls, s.hd_t.x, sizeof(float) * 2 * c.batch * c.vit.dim);
    CHECK(hw.cls_window_r2 == dx_group_r2(cls, win, 2 * c.batch, c.vit.dim) && hw.cls_window_r2 >= 0 &&
              hw.cls_window_r2 <= 1,
          "cls_window_r2 = R^2 of the teacher CLS by window: %g", hw.cls_window_r2);
    const int Kd = c.dino_head.prototypes;
    float *tg = malloc(sizeof(float) * 2 * c.batch * Kd);
    be->ops->download(be, tg, s.tgt_dino, sizeof(float) * 2 * c.batch * Kd);
    CHECK(hw.dino_t_window_r2 == dx_group_r2(tg, win, 2 * c.batch, Kd) && hw.dino_t_window_r2 >= 0 &&
              hw.dino_t_window_r2 <= 1,
          "dino_teacher_window_r2 = R^2 of the teacher targets by window: %g", hw.dino_t_window_r2);
    free(tg);
    free(cls);
    free(img);
    dx_ssl_free(&s, be);
}

/* dx_group_r2 against the within-group form 1 - W/T, and its edge cases */
static void test_group_r2(void) {
    enum { n = 64, D = 24 };
    static float x[n * D];
    int32_t g[n];
    dx_rng r;
    dx_rng_init(&r, 9, 0, 0, 0);
    for (int i = 0; i < n; i++) {
        g[i] = (int32_t)dx_rng_below(&r, 3);
        for (int d = 0; d < D; d++) x[i * D + d] = (float)dx_rng_normal(&r) + (d < 4 ? 0.8f * g[i] : 0);
    }
    double mean[D] = {0}, gm[3][D] = {{0}}, tot = 0, within = 0;
    int cnt[3] = {0};
    for (int i = 0; i < n; i++) {
        cnt[g[i]]++;
        for (int d = 0; d < D; d++) mean[d] += x[i * D + d] / n, gm[g[i]][d] += x[i * D + d];
    }
    for (int i = 0; i < n; i++)
        for (int d = 0; d < D; d++) {
            double m = gm[g[i]][d] / cnt[g[i]];
            tot += (x[i * D + d] - mean[d]) * (x[i * D + d] - mean[d]);
            within += (x[i * D + d] - m) * (x[i * D + d] - m);
        }
    double r2 = dx_group_r2(x, g, n, D);
    CHECK(fabs(r2 - (1 - within / tot)) < 1e-12, "R^2 %.15g = 1 - within/total %.15g", r2, 1 - within / tot);
    CHECK(r2 > 0.1 && r2 < 0.5, "4 of 24 dims shifted by the group: R^2 %.3f", r2);
    for (int i = 0; i < n; i++)
        for (int d = 0; d < D; d++) x[i * D + d] = (float)dx_rng_normal(&r);
    r2 = dx_group_r2(x, g, n, D);
    CHECK(r2 < 0.08, "rows independent of the group: R^2 %.4f near (3 - 1) / 63", r2);
    for (int i = 0; i < n; i++)
        for (int d = 0; d < D; d++) x[i * D + d] = (float)(g[i] * 2 - d % 3);
    CHECK(fabs(dx_group_r2(x, g, n, D) - 1) < 1e-12, "rows = their group's mean: R^2 1");
    for (int i = 0; i < n; i++) g[i] = 0;
    CHECK(dx_group_r2(x, g, n, D) == 0, "one group: R^2 0");
    g[5] = -1;
    CHECK(isnan(dx_group_r2(x, g, n, D)), "a negative group: NaN");
}

int main(void) {
    dx_err err = {0};
    dx_backend *be = NULL;
    if (dx_backend_create(&be, &(dx_backend_params){.nthreads = 2}, &err)) {
        fprintf(stderr, "backend: %s\n", err.msg);
        return 1;
    }
    test_prob_stats(be);
    test_feature_stats(be);
    test_patch_cosine(be);
    test_collapse_rule();
    test_group_r2();
    test_ssl_health(be, 0);
    test_ssl_health(be, 1);
    dx_backend_destroy(be);
    return dx_test_summary();
}
