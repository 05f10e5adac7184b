/* cpu_backend.c - the fp32 CPU backend: fills dx_backend_ops with host-memory
 * management, the oneDNN GEMM (cpu_gemm.c), the float kernels
 * (cpu_kernels.inc via cpu_kernels_f32.c), the GEMM-based attention
 * (cpu_attention.c) and the vector/optimizer ops (cpu_vec.c).
 *
 * Threads: OpenMP everywhere (oneDNN uses the same OpenMP runtime);
 * nthreads > 0 sets omp_set_num_threads once at creation. The loss kernels
 * (be->loss) live in cpu_loss*.c. */
#include "backend/cpu/cpu_backend.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_loss.h"
#include "backend/cpu/cpu_vec.h"

/* ---- memory: plain host memory, 64-byte aligned, zero-filled ---- */

static void *cpu_alloc(dx_backend *be, size_t bytes) {
    size_t sz = (bytes + 63) / 64 * 64; /* aligned_alloc needs a multiple of the alignment */
    if (sz == 0) sz = 64;
    void *p = aligned_alloc(64, sz);
    if (p) memset(p, 0, sz);
    return p;
}
static void cpu_free(dx_backend *be, void *p) { free(p); }
static void cpu_upload(dx_backend *be, void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
}
static void cpu_download(dx_backend *be, void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
}
static void cpu_copy(dx_backend *be, void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src) memmove(dst, src, bytes);
}
static void cpu_zero(dx_backend *be, void *dst, size_t bytes) {
    if (bytes) memset(dst, 0, bytes);
}
static void cpu_sync(dx_backend *be) { (void)be; /* host ops complete on return */ }

/* ---- compute: thin wrappers over the float kernels ---- */

static void cpu_gemm(dx_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                     int lda, const float *B, int ldb, float beta, float *C, int ldc, int batch,
                     int64_t sa, int64_t sb, int64_t sc) {
    dx_cpu_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, batch, sa, sb, sc);
}
static void cpu_bias_forward(dx_backend *be, float *y, const float *b, const float *mask, int M, int N) {
    dx_cpu_bias_forward_f32(y, b, mask, M, N);
}
static void cpu_bias_backward(dx_backend *be, float *db, const float *dy, const float *mask, int M, int N) {
    dx_cpu_bias_backward_f32(db, dy, mask, M, N);
}
static void cpu_layernorm_forward(dx_backend *be, float *out, float *mean, float *rstd, const float *x,
                                  const float *w, const float *b, int M, int C, float eps) {
    dx_cpu_layernorm_forward_f32(out, mean, rstd, x, w, b, M, C, eps);
}
static void cpu_layernorm_backward(dx_backend *be, float *dx, float *dw, float *db, const float *dout,
                                   const float *x, const float *w, const float *mean,
                                   const float *rstd, int M, int C) {
    dx_cpu_layernorm_backward_f32(dx, dw, db, dout, x, w, mean, rstd, M, C);
}
static void cpu_gelu_forward(dx_backend *be, float *out, const float *x, size_t n) {
    dx_cpu_gelu_forward_f32(out, x, n);
}
static void cpu_gelu_backward(dx_backend *be, float *dx, const float *x, const float *dout, size_t n) {
    dx_cpu_gelu_backward_f32(dx, x, dout, n);
}
static void cpu_swiglu_forward(dx_backend *be, float *out, const float *h, int M, int F) {
    dx_cpu_swiglu_forward_f32(out, h, M, F);
}
static void cpu_swiglu_backward(dx_backend *be, float *dh, const float *h, const float *dout, int M, int F) {
    dx_cpu_swiglu_backward_f32(dh, h, dout, M, F);
}
static void cpu_softmax_forward(dx_backend *be, float *out, const float *x, int M, int N, float scale) {
    dx_cpu_softmax_forward_f32(out, x, M, N, scale);
}
static void cpu_softmax_backward(dx_backend *be, float *dx, const float *out, const float *dout, int M,
                                 int N, float scale) {
    dx_cpu_softmax_backward_f32(dx, out, dout, M, N, scale);
}
static void cpu_attention_forward(dx_backend *be, float *out, float *att, const float *qkv, int N,
                                  int T, int H, int Dh, float scale) {
    dx_cpu_attention_forward_gemm(out, att, qkv, N, T, H, Dh, scale);
}
static void cpu_attention_backward(dx_backend *be, float *dqkv, const float *dout, const float *qkv,
                                   const float *att, int N, int T, int H, int Dh, float scale) {
    dx_cpu_attention_backward_gemm(dqkv, dout, qkv, att, N, T, H, Dh, scale);
}
static void cpu_rope_tables(dx_backend *be, float *sin_t, float *cos_t, const float *periods, int Hp,
                            int Wp, int Dh, float shift_y, float shift_x, float scale_y, float scale_x) {
    dx_cpu_rope_tables_f32(sin_t, cos_t, periods, Hp, Wp, Dh, shift_y, shift_x, scale_y, scale_x);
}
static void cpu_rope_forward(dx_backend *be, float *qkv, const float *sin_t, const float *cos_t, int N,
                             int T, int H, int Dh, int prefix) {
    dx_cpu_rope_forward_f32(qkv, sin_t, cos_t, N, T, H, Dh, prefix);
}
static void cpu_rope_backward(dx_backend *be, float *dqkv, const float *sin_t, const float *cos_t, int N,
                              int T, int H, int Dh, int prefix) {
    dx_cpu_rope_backward_f32(dqkv, sin_t, cos_t, N, T, H, Dh, prefix);
}
static void cpu_residual_forward(dx_backend *be, float *out, const float *x, const float *y,
                                 const float *gamma, const int32_t *idx, int nsamples, int k, int T,
                                 int C, float scale) {
    dx_cpu_residual_forward_f32(out, x, y, gamma, idx, nsamples, k, T, C, scale);
}
static void cpu_residual_backward(dx_backend *be, float *dx, float *dy, float *dgamma, const float *dout,
                                  const float *y, const float *gamma, const int32_t *idx, int nsamples,
                                  int k, int T, int C, float scale) {
    dx_cpu_residual_backward_f32(dx, dy, dgamma, dout, y, gamma, idx, nsamples, k, T, C, scale);
}
static void cpu_gather_rows(dx_backend *be, float *dst, const float *src, const int32_t *idx, int k,
                            size_t row) {
    dx_cpu_gather_rows_f32(dst, src, idx, k, row);
}
static void cpu_scatter_add_rows(dx_backend *be, float *dsrc, const float *ddst, const int32_t *idx,
                                 int k, size_t row) {
    dx_cpu_scatter_add_rows_f32(dsrc, ddst, idx, k, row);
}
static void cpu_im2col(dx_backend *be, float *cols, const float *img, int N, int Cin, int H, int W, int p) {
    dx_cpu_im2col_f32(cols, img, N, Cin, H, W, p);
}
static void cpu_col2im(dx_backend *be, float *dimg, const float *dcols, int N, int Cin, int H, int W, int p) {
    dx_cpu_col2im_f32(dimg, dcols, N, Cin, H, W, p);
}
static void cpu_tokens_forward(dx_backend *be, float *tokens, const float *patches, const float *cls,
                               const float *reg, const float *mask_token, const uint8_t *mask, int N,
                               int P, int R, int D) {
    dx_cpu_tokens_forward_f32(tokens, patches, cls, reg, mask_token, mask, N, P, R, D);
}
static void cpu_tokens_backward(dx_backend *be, float *dpatches, float *dcls, float *dreg,
                                float *dmask_token, const float *dtokens, const uint8_t *mask, int N,
                                int P, int R, int D) {
    dx_cpu_tokens_backward_f32(dpatches, dcls, dreg, dmask_token, dtokens, mask, N, P, R, D);
}
static void cpu_scale(dx_backend *be, float *x, float s, size_t n) { dx_cpu_scale_f32(x, s, n); }
static void cpu_axpy(dx_backend *be, float *y, float a, const float *x, size_t n) {
    dx_cpu_axpy_f32(y, a, x, n);
}
static double cpu_sumsq(dx_backend *be, const float *x, size_t n) { return dx_cpu_sumsq_f32(x, n); }
static int cpu_nonfinite(dx_backend *be, const float *x, size_t n) { return dx_cpu_nonfinite_f32(x, n); }
static void cpu_adamw(dx_backend *be, float *p, const float *g, float *m, float *v, size_t n, float lr,
                      float beta1, float beta2, float eps, float wd, int t) {
    dx_cpu_adamw_f32(p, g, m, v, n, lr, beta1, beta2, eps, wd, t);
}
static void cpu_ema(dx_backend *be, float *teacher, const float *student, size_t n, float m) {
    dx_cpu_ema_f32(teacher, student, n, m);
}

static const dx_backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = dx_cpu_backend_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .sync = cpu_sync,
    .gemm = cpu_gemm,
    .bias_forward = cpu_bias_forward,
    .bias_backward = cpu_bias_backward,
    .layernorm_forward = cpu_layernorm_forward,
    .layernorm_backward = cpu_layernorm_backward,
    .gelu_forward = cpu_gelu_forward,
    .gelu_backward = cpu_gelu_backward,
    .swiglu_forward = cpu_swiglu_forward,
    .swiglu_backward = cpu_swiglu_backward,
    .softmax_forward = cpu_softmax_forward,
    .softmax_backward = cpu_softmax_backward,
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
    .rope_tables = cpu_rope_tables,
    .rope_forward = cpu_rope_forward,
    .rope_backward = cpu_rope_backward,
    .residual_forward = cpu_residual_forward,
    .residual_backward = cpu_residual_backward,
    .gather_rows = cpu_gather_rows,
    .scatter_add_rows = cpu_scatter_add_rows,
    .im2col = cpu_im2col,
    .col2im = cpu_col2im,
    .tokens_forward = cpu_tokens_forward,
    .tokens_backward = cpu_tokens_backward,
    .scale = cpu_scale,
    .axpy = cpu_axpy,
    .sumsq = cpu_sumsq,
    .nonfinite = cpu_nonfinite,
    .adamw = cpu_adamw,
    .ema = cpu_ema,
};

dx_status dx_cpu_backend_create(dx_backend **out, int nthreads, dx_err *err) {
    *out = NULL;
    dx_backend *be = calloc(1, sizeof *be);
    if (!be) return dx_fail(err, DX_ENOMEM, "cpu backend: out of memory");
    if (nthreads > 0) omp_set_num_threads(nthreads);
    be->ops = &cpu_ops;
    be->loss = dx_cpu_loss_ops();
    be->impl = NULL;
    be->nthreads = nthreads > 0 ? nthreads : omp_get_max_threads();
    *out = be;
    return DX_OK;
}

void dx_cpu_backend_destroy(dx_backend *be) { free(be); }
