/* cpu_loss.c - the CPU loss ops table (struct dx_loss_ops) for the fp32 backend.
 *
 * Instantiates the type-generic kernels of cpu_loss_impl.h for float (the
 * ops) and double (exported for the finite-difference tests), and wraps the
 * float ones with the backend signature. The CPU backend installs the table
 * through the weak symbol dx_cpu_loss_ops(). */
#include <math.h>
#include <stdlib.h>

#include "backend/cpu/cpu_loss.h" // defines: dx_cpu_loss_ops, dx_cpu_*_f, dx_cpu_*_d

#define R float
#define S f
#define R_EXP expf
#define R_LOG logf
#include "backend/cpu/cpu_loss_impl.h"
#undef R
#undef S
#undef R_EXP
#undef R_LOG

#define R double
#define S d
#define R_EXP exp
#define R_LOG log
#include "backend/cpu/cpu_loss_impl.h"
#undef R
#undef S
#undef R_EXP
#undef R_LOG

static void op_sinkhorn(dx_backend *be, float *out, const float *logits, int N, int K, float temp,
                        int n_iter) {
    dx_cpu_sinkhorn_f(out, logits, N, K, temp, n_iter);
}

static void op_softmax_center(dx_backend *be, float *out, const float *logits,
                              const float *center, int N, int K, float temp) {
    dx_cpu_softmax_center_f(out, logits, center, N, K, temp);
}

static void op_row_mean(dx_backend *be, float *mean, const float *x, int N, int K) {
    dx_cpu_row_mean_f(mean, x, N, K);
}

static double op_ce_forward(dx_backend *be, float *row_loss, const float *S_, const float *T,
                            const float *w, int N, int K, float temp) {
    return dx_cpu_ce_forward_f(row_loss, S_, T, w, N, K, temp);
}

static void op_ce_backward(dx_backend *be, float *dS, const float *S_, const float *T,
                           const float *w, int N, int K, float temp, float scale) {
    dx_cpu_ce_backward_f(dS, S_, T, w, N, K, temp, scale);
}

static double op_dino_forward(dx_backend *be, const float *S_, int ns, const float *T, int nt,
                              int B, int K, float temp, int ignore_diag) {
    return dx_cpu_dino_forward_f(S_, ns, T, nt, B, K, temp, ignore_diag);
}

static void op_dino_backward(dx_backend *be, float *dS, const float *S_, int ns, const float *T,
                             int nt, int B, int K, float temp, int ignore_diag, float scale) {
    dx_cpu_dino_backward_f(dS, S_, ns, T, nt, B, K, temp, ignore_diag, scale);
}

static double op_koleo_forward(dx_backend *be, int32_t *nn, const float *x, int B, int D) {
    return dx_cpu_koleo_forward_f(nn, x, B, D);
}

static void op_koleo_backward(dx_backend *be, float *dx, const float *x, const int32_t *nn, int B,
                              int D, float scale) {
    dx_cpu_koleo_backward_f(dx, x, nn, B, D, scale);
}

static double op_gram_forward(dx_backend *be, float *xs_hat, float *xt_hat, const float *xs,
                              const float *xt, int nimg, int P, int D, int img_level) {
    return dx_cpu_gram_forward_f(xs_hat, xt_hat, xs, xt, nimg, P, D, img_level);
}

static void op_gram_backward(dx_backend *be, float *dxs, const float *xs, const float *xs_hat,
                             const float *xt_hat, int nimg, int P, int D, int img_level,
                             float scale) {
    dx_cpu_gram_backward_f(dxs, xs, xs_hat, xt_hat, nimg, P, D, img_level, scale);
}

static void op_resize_bicubic(dx_backend *be, float *out, const float *in, int nimg, int Hin,
                              int Win, int Hout, int Wout, int C) {
    dx_cpu_resize_bicubic_f(out, in, nimg, Hin, Win, Hout, Wout, C);
}

static void op_resize_bicubic_backward(dx_backend *be, float *din, const float *dout, int nimg,
                                       int Hin, int Win, int Hout, int Wout, int C) {
    dx_cpu_resize_bicubic_backward_f(din, dout, nimg, Hin, Win, Hout, Wout, C);
}

static void op_l2norm_forward(dx_backend *be, float *out, const float *x, int M, int D,
                              float eps) {
    dx_cpu_l2norm_forward_f(out, x, M, D, eps);
}

static void op_l2norm_backward(dx_backend *be, float *dx, const float *x, const float *dout,
                               int M, int D, float eps) {
    dx_cpu_l2norm_backward_f(dx, x, dout, M, D, eps);
}

static const struct dx_loss_ops cpu_loss_ops = {
    .name = "cpu",
    .sinkhorn_knopp = op_sinkhorn,
    .softmax_center = op_softmax_center,
    .row_mean = op_row_mean,
    .ce_forward = op_ce_forward,
    .ce_backward = op_ce_backward,
    .dino_forward = op_dino_forward,
    .dino_backward = op_dino_backward,
    .koleo_forward = op_koleo_forward,
    .koleo_backward = op_koleo_backward,
    .gram_forward = op_gram_forward,
    .gram_backward = op_gram_backward,
    .resize_bicubic = op_resize_bicubic,
    .resize_bicubic_backward = op_resize_bicubic_backward,
    .l2norm_forward = op_l2norm_forward,
    .l2norm_backward = op_l2norm_backward,
};

const struct dx_loss_ops *dx_cpu_loss_ops(void) { return &cpu_loss_ops; }
