/* cpu_loss.h - CPU implementation of the DINOv3 loss kernels (dx_loss_ops).
 *
 * The kernels are written once, type-generic over the element type, in
 * cpu_loss.inc and instantiated twice: `_f32` (float, behind the ops
 * table) and `_f64` (double, so tests can check every backward against central
 * finite differences at 1e-6). Accumulations are in double in both. Argument
 * meaning and shapes are exactly those of struct dx_loss_ops
 * (backend/dx_loss_ops.h), minus the backend pointer. */
#ifndef DX_CPU_LOSS_H
#define DX_CPU_LOSS_H

#include <stddef.h>
#include <stdint.h>

#include "backend/dx_loss_ops.h"

/* The table the CPU backend installs as be->loss. */
const struct dx_loss_ops *dx_cpu_loss_ops(void);

#define DX_CPU_LOSS_DECLARE(R, SUFFIX)                                                               \
    void dx_cpu_sinkhorn_knopp_##SUFFIX(R *out, const R *logits, int N, int K, double temp, int n_iter);   \
    void dx_cpu_sinkhorn_knopp_red_##SUFFIX(R *out, const R *logits, int N, int K, double temp, int n_iter, \
                                            const dx_allreduce *red);                                    \
    void dx_cpu_sk_chunk_colmax_##SUFFIX(double *m, const R *Z, int Rn, int K, int first);            \
    void dx_cpu_sk_chunk_colsum_##SUFFIX(double *a, const R *Z, const double *m, const double *r, int Rn, \
                                         int K, double temp, int first);                                 \
    void dx_cpu_sk_chunk_rowscale_##SUFFIX(double *r, const R *Z, const double *m, const double *a, int Rn, \
                                           int K, double temp, double n_tot);                              \
    void dx_cpu_sk_chunk_targets_##SUFFIX(R *out, const R *Z, const double *m, const double *a,          \
                                          const double *r, int Rn, int K, double temp, double n_tot);    \
    void dx_cpu_softmax_center_##SUFFIX(R *out, const R *logits, const R *center, int N, int K,      \
                                   double temp);                                                \
    void dx_cpu_row_mean_##SUFFIX(R *mean, const R *x, int N, int K);                                \
    double dx_cpu_ce_forward_##SUFFIX(R *row_loss, const R *Sl, const R *T, const R *w, int N,       \
                                 int K, double temp);                                           \
    void dx_cpu_ce_backward_##SUFFIX(R *dS, const R *Sl, const R *T, const R *w, int N, int K,       \
                                double temp, double scale);                                     \
    double dx_cpu_dino_forward_##SUFFIX(const R *Sl, int ns, const R *T, int nt, int B, int K,       \
                                   double temp, int ignore_diag);                               \
    void dx_cpu_dino_backward_##SUFFIX(R *dS, const R *Sl, int ns, const R *T, int nt, int B, int K, \
                                  double temp, int ignore_diag, double scale);                  \
    double dx_cpu_koleo_forward_##SUFFIX(int32_t *nn, const R *x, int B, int D);                     \
    void dx_cpu_koleo_backward_##SUFFIX(R *dx, const R *x, const int32_t *nn, int B, int D,          \
                                   double scale);                                               \
    double dx_cpu_gram_forward_##SUFFIX(R *xs_hat, R *xt_hat, const R *xs, const R *xt, int nimg,    \
                                   int P, int D, int img_level);                                \
    void dx_cpu_gram_backward_##SUFFIX(R *dxs, const R *xs, const R *xs_hat, const R *xt_hat,        \
                                  int nimg, int P, int D, int img_level, double scale);         \
    void dx_cpu_resize_bicubic_##SUFFIX(R *out, const R *in, int nimg, int Hin, int Win, int Hout,   \
                                   int Wout, int C);                                            \
    void dx_cpu_resize_bicubic_backward_##SUFFIX(R *din, const R *dout, int nimg, int Hin, int Win,  \
                                            int Hout, int Wout, int C);                         \
    void dx_cpu_l2norm_forward_##SUFFIX(R *out, const R *x, int M, int D, double eps);               \
    void dx_cpu_l2norm_backward_##SUFFIX(R *dx, const R *x, const R *dout, int M, int D, double eps);

DX_CPU_LOSS_DECLARE(float, f32)
DX_CPU_LOSS_DECLARE(double, f64)

/* The float Gram loss as the ops table runs it: Gram blocks through
 * be->ops->gemm with at most `budget` floats of scratch per Gram block
 * (the scalar dx_cpu_gram_*_f32 are the fallback when the backend has no GEMM).
 * dxs == NULL: forward only (returns the loss, xs unused); otherwise also
 * dxs += scale * dL/dxs. xs_hat, xt_hat: the normalised rows (forward output). */
double dx_cpu_gram_gemm(dx_backend *be, float *dxs, const float *xs, const float *xs_hat,
                        const float *xt_hat, int nimg, int P, int D, int img_level, float scale,
                        size_t budget);

#endif /* DX_CPU_LOSS_H */
