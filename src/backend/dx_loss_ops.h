/* dx_loss_ops.h - the DINOv3 objective kernels as a backend ops table.
 *
 * A backend fills one `struct dx_loss_ops` (be->loss); the CPU one comes from
 * dx_cpu_loss_ops() (src/backend/cpu/cpu_loss.c), a GPU backend implements
 * the same table. Formulas: docs/objective.md.
 *
 * Conventions (as dx_backend.h):
 *  - fp32, row-major, contiguous; pointer arguments are backend memory;
 *    scalar results (losses) are returned to the host as double.
 *  - *_backward ACCUMULATE (+=) `scale * dL/dinput` into the gradient, so the
 *    caller passes the loss weight of the term as `scale` and chains terms
 *    without temporaries.
 *  - ops do not fail on valid shapes. A CPU kernel that cannot get its small
 *    scratch memory returns NaN (forward) or writes NaN into the gradient, so
 *    the trainer's non-finite check turns it into DX_ENUMERIC.
 *  - student temperature `temp` divides the logits: p = softmax(S / temp).
 *
 * Row layouts follow the collate order: crop-major, row = c*B + b. */
#ifndef DX_LOSS_OPS_H
#define DX_LOSS_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "backend/dx_backend.h"

#define DX_PROB_STATS 3    /* prob_stats: mean row entropy, entropy of the mean row, argmax columns used */
#define DX_FEATURE_STATS 3 /* feature_stats: mean std over rows, effective rank, mean pairwise cosine */

/* Cross-rank reductions an op needs in the middle of its work: Sinkhorn-Knopp
 * over a batch split across data-parallel ranks (src/comm). In place over n
 * doubles of backend memory, entered by every rank in the same order. NULL
 * where an op takes one = a single process. */
typedef struct dx_allreduce {
    void *ctx;
    void (*sum_f64)(void *ctx, double *buf, int n);
    void (*max_f64)(void *ctx, double *buf, int n);
} dx_allreduce;

struct dx_loss_ops {
    const char *name;

    /* ---- teacher centring (no gradient) -----------------------------------
     * Sinkhorn-Knopp, single process (N_tot = N):
     *   Q[n,k] = exp((Z[n,k] - max Z) / temp); Q /= sum(Q)
     *   (the CPU kernel subtracts each prototype's max over n instead: the
     *   first prototype normalisation removes it exactly as it removes the
     *   global one, and in fp32 no prototype column underflows to all zeros)
     *   n_iter times: Q[:,k] /= (sum_n Q[n,k]) * K;  Q[n,:] /= (sum_k Q[n,k]) * N
     *   out = Q * N   -> every row of out[N,K] sums to 1.
     * out may alias logits. With red (data parallel: the all_reduce of DINOv3's distributed Sinkhorn-Knopp):
     * this rank holds N of the N_tot = sum over ranks rows; the prototype
     * maxima, the total and every iteration's prototype sums are reduced over
     * the ranks, so each rank gets its rows of the single-process result. A
     * rank with N = 0 still takes part. */
    void (*sinkhorn_knopp)(dx_backend *be, float *out, const float *logits, int N, int K,
                           float temp, int n_iter, const dx_allreduce *red);
    /* Sinkhorn-Knopp over row chunks, for logits that are never all in memory
     * at once (each chunk recomputed by the caller for every pass). The result
     * is sinkhorn_knopp's, factored as Q[n,k] = E[n,k] r[n] / (K a[k]) with
     * E = exp((Z - m) / temp), m[k] the prototype maxima; all in double.
     * The caller's passes over the chunks (every op called for every chunk, in
     * the same order, R = 0 allowed; `first` = the pass's first chunk), each
     * followed, with ranks, by the all_reduce of m (max) or a (sum):
     *   sk_chunk_colmax:   m[k] = max over the pass's rows of Z[n,k] (first: from -inf)
     *   sk_chunk_colsum:   a[k] (first: =, else +=) sum_n E[n,k] * (r ? r[n] : 1)
     *   then n_iter times: sk_chunk_rowscale for every chunk, r[n] = 1 / (N_tot sum_k E[n,k] / (K a[k])),
     *                      and, but for the last, sk_chunk_colsum with these r into the next a
     *   sk_chunk_targets:  out[n,k] = E[n,k] r[n] N_tot / (K a[k]), with the last rowscale's a:
     *                      every row of out sums to 1 (out may alias Z).
     * Z [R, K]; r [R] (this chunk's rows); m, a [K]; n_iter >= 1. */
    void (*sk_chunk_colmax)(dx_backend *be, double *m, const float *Z, int R, int K, int first);
    void (*sk_chunk_colsum)(dx_backend *be, double *a, const float *Z, const double *m, const double *r, int R,
                            int K, float temp, int first);
    void (*sk_chunk_rowscale)(dx_backend *be, double *r, const float *Z, const double *m, const double *a, int R,
                              int K, float temp, double n_tot);
    void (*sk_chunk_targets)(dx_backend *be, float *out, const float *Z, const double *m, const double *a,
                             const double *r, int R, int K, float temp, double n_tot);
    /* Softmax centring: out[N,K] = softmax((Z - center[K]) / temp) per row.
     * out may alias logits. */
    void (*softmax_center)(dx_backend *be, float *out, const float *logits, const float *center,
                           int N, int K, float temp);
    /* mean[K] = (1/N) sum_n x[n,:]  (the batch centre m_t; the lazy update
     * c <- 0.9 c + 0.1 m_t is be->ops->ema(center, mean, K, 0.9) next step). */
    void (*row_mean)(dx_backend *be, float *mean, const float *x, int N, int K);

    /* ---- soft-target cross-entropy ----------------------------------------
     * CE_n = -sum_k T[n,k] log softmax(S[n,:]/temp)_k, S,T [N,K], w[N] (NULL = 1).
     * Returns sum_n w_n CE_n; row_loss[N] (may be NULL) receives the unweighted CE_n. */
    double (*ce_forward)(dx_backend *be, float *row_loss, const float *S, const float *T,
                         const float *w, int N, int K, float temp);
    /* dS[n,:] = scale * w_n * (softmax(S_n/temp) * sum_k T[n,k] - T[n,:]) / temp, overwritten; dS may
     * be S (in place: the iBOT student's logits become their gradient) */
    void (*ce_backward)(dx_backend *be, float *dS, const float *S, const float *T,
                        const float *w, int N, int K, float temp, float scale);

    /* ---- DINO CLS loss ---------------------------------------------
     * S[ns*B, K] student logits (crop-major), T[nt*B, K] teacher targets.
     * Sum of CE(T[t,b], S[c,b]) over all pairs (c, t), b, excluding c == t when
     * ignore_diag, divided by (number of pairs * B). Local term: ns = 8, nt = 2,
     * ignore_diag = 0 (/16B); global term: ns = nt = 2, ignore_diag = 1 (/2B). */
    double (*dino_forward)(dx_backend *be, const float *S, int ns, const float *T, int nt, int B,
                           int K, float temp, int ignore_diag);
    void (*dino_backward)(dx_backend *be, float *dS, const float *S, int ns, const float *T,
                          int nt, int B, int K, float temp, int ignore_diag, float scale);

    /* ---- KoLeo, one crop of B images -------------------------------
     * z = x / max(|x|, 1e-8); nn[b] = argmax_{b' != b} z_b.z_b' (first max; int32,
     * backend memory, written); d_b = |z_b - z_nn(b) + 1e-8|; returns
     * -(1/B) sum_b log(d_b + 1e-8). x[B, D]. */
    double (*koleo_forward)(dx_backend *be, int32_t *nn, const float *x, int B, int D);
    /* dx += scale * dL/dx, gradient through both z_b and z_nn(b), nn held fixed. */
    void (*koleo_backward)(dx_backend *be, float *dx, const float *x, const int32_t *nn, int B,
                           int D, float scale);

    /* ---- Gram loss -------------------------------------------------
     * xs, xt [nimg*P, D] student / teacher patch features (teacher already
     * resized to P tokens). Writes xs_hat, xt_hat = rows / max(|row|, 1e-12)
     * (kept for backward). img_level = 1: mean over nimg*P*P of (Gs - Gt)^2
     * with per-image Gram matrices; 0: one (nimg*P)^2 Gram of all tokens. */
    double (*gram_forward)(dx_backend *be, float *xs_hat, float *xt_hat, const float *xs,
                           const float *xt, int nimg, int P, int D, int img_level);
    /* dxs += scale * dL/dxs (through the L2 normalisation; teacher gets none). */
    void (*gram_backward)(dx_backend *be, float *dxs, const float *xs, const float *xs_hat,
                          const float *xt_hat, int nimg, int P, int D, int img_level, float scale);

    /* ---- Gram-teacher resize ----------------------------------------
     * Bicubic as F.interpolate(mode='bicubic', align_corners=False, antialias=False):
     * a = -0.75, src = (dst + 0.5) * in/out - 0.5, taps clamped at the border.
     * Channels-last token layout: in[nimg, Hin*Win, C] -> out[nimg, Hout*Wout, C]
     * (row-major patch index p = h*W + w), so teacher tokens need no transpose. */
    void (*resize_bicubic)(dx_backend *be, float *out, const float *in, int nimg, int Hin,
                           int Win, int Hout, int Wout, int C);
    /* din += adjoint of resize_bicubic applied to dout. */
    void (*resize_bicubic_backward)(dx_backend *be, float *din, const float *dout, int nimg,
                                    int Hin, int Win, int Hout, int Wout, int C);

    /* ---- L2 normalisation of rows (heads: eps 1e-12) ---------------------------
     * out[M,D] = x / max(|x|, eps); out may not alias x. */
    void (*l2norm_forward)(dx_backend *be, float *out, const float *x, int M, int D, float eps);
    /* dx += (dout - out <out, dout>) / |x|   if |x| > eps, else dout / eps. */
    void (*l2norm_backward)(dx_backend *be, float *dx, const float *x, const float *dout, int M,
                            int D, float eps);

    /* ---- training health (no gradient; scalars to the host, in nats) -----------
     * prob_stats: rows of P[N,K] are distributions (from_logits = 0) or logits
     * read as softmax(P/temp) (from_logits = 1). out[0] = mean row entropy,
     * out[1] = entropy of the mean row, out[2] = number of columns that are
     * the argmax of at least one row. KL(p || uniform) = ln K - out[0]. */
    void (*prob_stats)(dx_backend *be, double out[DX_PROB_STATS], const float *P, int N, int K,
                       float temp, int from_logits);
    /* feature_stats: x[N,D], rows = samples. out[0] = mean over d of the std
     * over rows, out[1] = effective rank exp(H(lambda/sum lambda)) of the
     * centred covariance, out[2] = mean cosine of distinct row pairs. */
    void (*feature_stats)(dx_backend *be, double out[DX_FEATURE_STATS], const float *x, int N, int D);
    /* patch_cosine: mean over nimg images of the mean cosine of distinct
     * patch pairs; image i's patch p is the row x + i*img_stride + p*D. */
    double (*patch_cosine)(dx_backend *be, const float *x, int nimg, int P, int D, size_t img_stride);
    /* idx[n] = first argmax_k P[n,k] (int32, backend memory). */
    void (*row_argmax)(dx_backend *be, int32_t *idx, const float *P, int N, int K);
};

/* Every member of struct dx_loss_ops after `name` (see DX_BACKEND_OP_NAMES). */
#define DX_LOSS_OP_NAMES(X)                                                                     \
    X(sinkhorn_knopp) X(sk_chunk_colmax) X(sk_chunk_colsum) X(sk_chunk_rowscale) X(sk_chunk_targets)   \
    X(softmax_center) X(row_mean) X(ce_forward) X(ce_backward) X(dino_forward)                        \
    X(dino_backward) X(koleo_forward) X(koleo_backward) X(gram_forward) X(gram_backward)        \
    X(resize_bicubic) X(resize_bicubic_backward) X(l2norm_forward) X(l2norm_backward)           \
    X(prob_stats) X(feature_stats) X(patch_cosine) X(row_argmax)
_Static_assert(sizeof(struct dx_loss_ops) ==
                   (1 DX_LOSS_OP_NAMES(DX_OP_COUNT_ONE_)) * sizeof(void (*)(void)),
               "DX_LOSS_OP_NAMES must list every member of struct dx_loss_ops");

/* iBOT patch loss: S, T [M, K] at the masked positions, w[M] =
 * 1/n_i (masks_weight from the collate), n_crops = 2B (ALL global crops).
 * L = sum_j w_j CE_j / n_crops. */
static inline double dx_ibot_loss_forward(dx_backend *be, const float *S, const float *T,
                                          const float *w, int M, int K, float temp, int n_crops) {
    return be->loss->ce_forward(be, NULL, S, T, w, M, K, temp) / (double)n_crops;
}
/* dS = dL/dS (overwritten; dS may be S) */
static inline void dx_ibot_loss_backward(dx_backend *be, float *dS, const float *S,
                                         const float *T, const float *w, int M, int K, float temp,
                                         int n_crops, float scale) {
    be->loss->ce_backward(be, dS, S, T, w, M, K, temp, scale / (float)n_crops);
}

#endif /* DX_LOSS_OPS_H */
