/* cpu_loss.c - the CPU loss ops table (struct dx_loss_ops) for the fp32 backend.
 *
 * Instantiates the type-generic kernels of cpu_loss.inc for float (the
 * ops) and double (exported for the finite-difference tests), and wraps the
 * float ones with the backend signature. The CPU backend installs the table
 * through the weak symbol dx_cpu_loss_ops(). */
#include <math.h>
#include <stdlib.h>

#include "backend/cpu/cpu_health.h" // defines: dx_cpu_prob_stats, dx_cpu_feature_stats, dx_cpu_patch_cosine
#include "backend/cpu/cpu_loss.h" // defines: dx_cpu_loss_ops, dx_cpu_*_f32, dx_cpu_*_f64
#include "backend/cpu/cpu_math.h" // defines: dx_cpu_expf (vectorisable, ~1e-7 relative)

#define DX_PRAGMA_(x) _Pragma(#x)
#define real float
#define SFX(name) name##_f32
#define REXP dx_cpu_expf
#define RSIMD(...) DX_PRAGMA_(omp simd __VA_ARGS__)
#include "backend/cpu/cpu_loss.inc"
#undef real
#undef SFX
#undef REXP
#undef RSIMD

#define real double
#define SFX(name) name##_f64
#define REXP exp
#define RSIMD(...)
#include "backend/cpu/cpu_loss.inc"
#undef real
#undef SFX
#undef REXP
#undef RSIMD

static void cpu_sinkhorn_knopp(dx_backend *be, float *out, const float *logits, int N, int K, float temp,
                        int n_iter, const dx_allreduce *red) {
    dx_cpu_sinkhorn_knopp_red_f32(out, logits, N, K, temp, n_iter, red);
}

static void cpu_sk_chunk_colmax(dx_backend *be, double *m, const float *Z, int R, int K, int first) {
    dx_cpu_sk_chunk_colmax_f32(m, Z, R, K, first);
}
static void cpu_sk_chunk_colsum(dx_backend *be, double *a, const float *Z, const double *m, const double *r, int R,
                                int K, float temp, int first) {
    dx_cpu_sk_chunk_colsum_f32(a, Z, m, r, R, K, temp, first);
}
static void cpu_sk_chunk_rowscale(dx_backend *be, double *r, const float *Z, const double *m, const double *a, int R,
                                  int K, float temp, double n_tot) {
    dx_cpu_sk_chunk_rowscale_f32(r, Z, m, a, R, K, temp, n_tot);
}
static void cpu_sk_chunk_targets(dx_backend *be, float *out, const float *Z, const double *m, const double *a,
                                 const double *r, int R, int K, float temp, double n_tot) {
    dx_cpu_sk_chunk_targets_f32(out, Z, m, a, r, R, K, temp, n_tot);
}

static void cpu_softmax_center(dx_backend *be, float *out, const float *logits,
                              const float *center, int N, int K, float temp) {
    dx_cpu_softmax_center_f32(out, logits, center, N, K, temp);
}

static void cpu_row_mean(dx_backend *be, float *mean, const float *x, int N, int K) {
    dx_cpu_row_mean_f32(mean, x, N, K);
}

static double cpu_ce_forward(dx_backend *be, float *row_loss, const float *S_, const float *T,
                            const float *w, int N, int K, float temp) {
    return dx_cpu_ce_forward_f32(row_loss, S_, T, w, N, K, temp);
}

static void cpu_ce_backward(dx_backend *be, float *dS, const float *S_, const float *T,
                           const float *w, int N, int K, float temp, float scale) {
    dx_cpu_ce_backward_f32(dS, S_, T, w, N, K, temp, scale);
}

static double cpu_dino_forward(dx_backend *be, const float *S_, int ns, const float *T, int nt,
                              int B, int K, float temp, int ignore_diag) {
    return dx_cpu_dino_forward_f32(S_, ns, T, nt, B, K, temp, ignore_diag);
}

static void cpu_dino_backward(dx_backend *be, float *dS, const float *S_, int ns, const float *T,
                             int nt, int B, int K, float temp, int ignore_diag, float scale) {
    dx_cpu_dino_backward_f32(dS, S_, ns, T, nt, B, K, temp, ignore_diag, scale);
}

static double cpu_koleo_forward(dx_backend *be, int32_t *nn, const float *x, int B, int D) {
    return dx_cpu_koleo_forward_f32(nn, x, B, D);
}

static void cpu_koleo_backward(dx_backend *be, float *dx, const float *x, const int32_t *nn, int B,
                              int D, float scale) {
    dx_cpu_koleo_backward_f32(dx, x, nn, B, D, scale);
}

/* Gram loss through the backend GEMM. The Gram matrices are formed block by
 * block: a block is `rb` rows of one group (an image, or all tokens when
 * !img_level) against all G rows of that group, for `nb` groups at once
 * (batched GEMM), so scratch stays within `budget` floats per matrix even for
 * the (2BP)^2 batch-level Gram. Forward: sum of E^2, E = Gs - Gt (the two
 * Gram blocks by GEMM). Backward (dxs != NULL): dxhat = coef E xhat_s per
 * block (double accumulation), then the L2 normalisation's backward.
 * Returns NaN if scratch memory is missing. */
double dx_cpu_gram_gemm(dx_backend *be, float *dxs, const float *xs, const float *xs_hat,
                        const float *xt_hat, int nimg, int P, int D, int img_level, float scale,
                        size_t budget) {
    int M = nimg * P, G = img_level ? P : M, ngroups = M / G;
    if (budget < (size_t)G) budget = (size_t)G;
    int nb, bs;
    if ((size_t)G * G <= budget) {
        bs = G;
        nb = (int)(budget / ((size_t)G * G));
        if (nb > ngroups) nb = ngroups;
    } else {
        nb = 1;
        bs = (int)(budget / (size_t)G);
    }
    size_t blk = (size_t)nb * bs * G;
    float *Es = malloc(sizeof(float) * blk), *Et = malloc(sizeof(float) * blk);
    double *part = malloc(sizeof(double) * (size_t)nb * bs);
    float *dz = dxs ? malloc(sizeof(float) * (size_t)nb * bs * D) : NULL;
    double loss = 0;
    if (!Es || !Et || !part || (dxs && !dz)) {
        loss = NAN;
        if (dxs)
            for (size_t i = 0; i < (size_t)M * D; i++) dxs[i] = NAN;
        goto done;
    }
    double coef = (double)scale * 4.0 / ((double)M * G);
    for (int g0 = 0; g0 < ngroups; g0 += nb) {
        int ng = ngroups - g0 < nb ? ngroups - g0 : nb;
        for (int r0 = 0; r0 < G; r0 += bs) {
            int rb = G - r0 < bs ? G - r0 : bs;
            const float *As = xs_hat + (size_t)g0 * G * D, *At = xt_hat + (size_t)g0 * G * D;
            int64_t sg = (int64_t)G * D, se = (int64_t)rb * G;
            /* Es[b] (rb x G) = xhat[group b, rows r0..r0+rb) xhat[group b]^T */
            be->ops->gemm(be, 0, 1, rb, G, D, 1.0f, As + (size_t)r0 * D, D, As, D, 0.0f, Es, G, ng,
                          sg, sg, se);
            be->ops->gemm(be, 0, 1, rb, G, D, 1.0f, At + (size_t)r0 * D, D, At, D, 0.0f, Et, G, ng,
                          sg, sg, se);
            int rows = ng * rb;
#pragma omp parallel for schedule(static)
            for (int r = 0; r < rows; r++) {
                float *e = Es + (size_t)r * G;
                const float *t = Et + (size_t)r * G;
                double acc = 0;
                for (int q = 0; q < G; q++) {
                    e[q] -= t[q];
                    acc += (double)e[q] * e[q];
                }
                part[r] = acc;
            }
            for (int r = 0; r < rows; r++) loss += part[r];
            if (!dxs) continue;
            /* dz[b] (rb x D) = coef * E[b] xhat_s[group b], accumulated in
             * double: the L2-normalisation backward keeps only the part of dz
             * orthogonal to xhat, which is small for this loss, so an fp32
             * GEMM here costs ~1e-3 relative accuracy in the gradient */
#pragma omp parallel
            {
                double *acc = malloc(sizeof(double) * (size_t)D);
#pragma omp for schedule(static)
                for (int r = 0; r < rows; r++) {
                    int b = r / rb;
                    const float *e = Es + (size_t)r * G;
                    const float *xg = As + (size_t)b * G * D;
                    float *o = dz + (size_t)r * D;
                    if (!acc) {
                        for (int i = 0; i < D; i++) o[i] = NAN;
                        continue;
                    }
                    for (int i = 0; i < D; i++) acc[i] = 0;
                    for (int q = 0; q < G; q++) {
                        double eq = e[q];
                        const float *xq = xg + (size_t)q * D;
#pragma omp simd
                        for (int i = 0; i < D; i++) acc[i] += eq * (double)xq[i];
                    }
                    for (int i = 0; i < D; i++) o[i] = (float)(coef * acc[i]);
                }
                free(acc);
            }
            for (int b = 0; b < ng; b++) {
                size_t row0 = (size_t)(g0 + b) * G + r0;
                dx_cpu_l2norm_backward_f32(dxs + row0 * D, xs + row0 * D, dz + (size_t)b * rb * D, rb,
                                         D, 1e-12);
            }
        }
    }
    loss /= (double)M * G;
done:
    free(Es), free(Et), free(part), free(dz);
    return loss;
}

#define GRAM_BUDGET ((size_t)4 << 20) /* floats per scratch Gram block (16 MB) */

static double cpu_gram_forward(dx_backend *be, float *xs_hat, float *xt_hat, const float *xs,
                              const float *xt, int nimg, int P, int D, int img_level) {
    if (!be || !be->ops || !be->ops->gemm)
        return dx_cpu_gram_forward_f32(xs_hat, xt_hat, xs, xt, nimg, P, D, img_level);
    dx_cpu_l2norm_forward_f32(xs_hat, xs, nimg * P, D, 1e-12);
    dx_cpu_l2norm_forward_f32(xt_hat, xt, nimg * P, D, 1e-12);
    return dx_cpu_gram_gemm(be, NULL, NULL, xs_hat, xt_hat, nimg, P, D, img_level, 1.0f,
                            GRAM_BUDGET);
}

static void cpu_gram_backward(dx_backend *be, float *dxs, const float *xs, const float *xs_hat,
                             const float *xt_hat, int nimg, int P, int D, int img_level,
                             float scale) {
    if (!be || !be->ops || !be->ops->gemm) {
        dx_cpu_gram_backward_f32(dxs, xs, xs_hat, xt_hat, nimg, P, D, img_level, scale);
        return;
    }
    dx_cpu_gram_gemm(be, dxs, xs, xs_hat, xt_hat, nimg, P, D, img_level, scale, GRAM_BUDGET);
}

static void cpu_resize_bicubic(dx_backend *be, float *out, const float *in, int nimg, int Hin,
                              int Win, int Hout, int Wout, int C) {
    dx_cpu_resize_bicubic_f32(out, in, nimg, Hin, Win, Hout, Wout, C);
}

static void cpu_resize_bicubic_backward(dx_backend *be, float *din, const float *dout, int nimg,
                                       int Hin, int Win, int Hout, int Wout, int C) {
    dx_cpu_resize_bicubic_backward_f32(din, dout, nimg, Hin, Win, Hout, Wout, C);
}

static void cpu_l2norm_forward(dx_backend *be, float *out, const float *x, int M, int D,
                              float eps) {
    dx_cpu_l2norm_forward_f32(out, x, M, D, eps);
}

static void cpu_l2norm_backward(dx_backend *be, float *dx, const float *x, const float *dout,
                               int M, int D, float eps) {
    dx_cpu_l2norm_backward_f32(dx, x, dout, M, D, eps);
}

static void cpu_prob_stats(dx_backend *be, double out[DX_PROB_STATS], const float *P, int N, int K,
                          float temp, int from_logits) {
    dx_cpu_prob_stats(out, P, N, K, temp, from_logits);
}

static void cpu_feature_stats(dx_backend *be, double out[DX_FEATURE_STATS], const float *x, int N, int D) {
    dx_cpu_feature_stats(out, x, N, D);
}

static double cpu_patch_cosine(dx_backend *be, const float *x, int nimg, int P, int D, size_t img_stride) {
    return dx_cpu_patch_cosine(x, nimg, P, D, img_stride);
}

static void cpu_row_argmax(dx_backend *be, int32_t *idx, const float *P, int N, int K) {
    dx_cpu_row_argmax(idx, P, N, K);
}

static const struct dx_loss_ops cpu_loss_ops = {
    .name = "cpu",
    .sinkhorn_knopp = cpu_sinkhorn_knopp,
    .sk_chunk_colmax = cpu_sk_chunk_colmax,
    .sk_chunk_colsum = cpu_sk_chunk_colsum,
    .sk_chunk_rowscale = cpu_sk_chunk_rowscale,
    .sk_chunk_targets = cpu_sk_chunk_targets,
    .softmax_center = cpu_softmax_center,
    .row_mean = cpu_row_mean,
    .ce_forward = cpu_ce_forward,
    .ce_backward = cpu_ce_backward,
    .dino_forward = cpu_dino_forward,
    .dino_backward = cpu_dino_backward,
    .koleo_forward = cpu_koleo_forward,
    .koleo_backward = cpu_koleo_backward,
    .gram_forward = cpu_gram_forward,
    .gram_backward = cpu_gram_backward,
    .resize_bicubic = cpu_resize_bicubic,
    .resize_bicubic_backward = cpu_resize_bicubic_backward,
    .l2norm_forward = cpu_l2norm_forward,
    .l2norm_backward = cpu_l2norm_backward,
    .prob_stats = cpu_prob_stats,
    .feature_stats = cpu_feature_stats,
    .patch_cosine = cpu_patch_cosine,
    .row_argmax = cpu_row_argmax,
};

const struct dx_loss_ops *dx_cpu_loss_ops(void) { return &cpu_loss_ops; }
