/* cpu_kernels.h - the CPU kernels in both precisions (internal to the CPU
 * backend and its tests).
 *
 * The _f32 functions are what the backend's ops table calls; the _f64 ones are
 * the same source (cpu_kernels.inc) instantiated in double so tests can check
 * gradients by finite differences. Arguments and semantics are those of the
 * matching dx_backend_ops member (backend/dx_backend.h) without the backend.
 * Also: the GEMM (oneDNN) and the GEMM-based float attention. */
#ifndef DX_CPU_KERNELS_H
#define DX_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* ---- the kernel list ------------------------------------------------------
 * X(op, (parameters in `real`), (arguments)): one entry per kernel written in
 * cpu_kernels.inc. It generates the _f32 and _f64 prototypes below and, in
 * cpu_backend.c, the ops-table wrapper cpu_<op> and the table entry, so that
 * the op's name is the same from `be->ops-><op>` to `dx_cpu_<op>_f32`.
 * DX_CPU_KERNELS_TABLE: the ones the table calls as they are;
 * DX_CPU_KERNELS_OTHER: written in both precisions, but the table runs a
 * different float implementation (the GEMM-based attention). */
#define DX_CPU_KERNELS_TABLE(X)                                                                   \
    X(bias_forward, (real *y, const real *b, const real *mask, int M, int N), (y, b, mask, M, N)) \
    X(bias_backward, (real *db, const real *dy, const real *mask, int M, int N),                  \
      (db, dy, mask, M, N))                                                                       \
    X(layernorm_forward,                                                                          \
      (real *out, real *mean, real *rstd, const real *x, const real *w, const real *b, int M,     \
       int C, real eps),                                                                          \
      (out, mean, rstd, x, w, b, M, C, eps))                                                      \
    X(layernorm_backward,                                                                         \
      (real *dx, real *dw, real *db, const real *dout, const real *x, const real *w,              \
       const real *mean, const real *rstd, int M, int C),                                         \
      (dx, dw, db, dout, x, w, mean, rstd, M, C))                                                 \
    X(gelu_forward, (real *out, const real *x, size_t n), (out, x, n))                            \
    X(gelu_backward, (real *dx, const real *x, const real *dout, size_t n), (dx, x, dout, n))     \
    X(swiglu_forward, (real *out, const real *h, int M, int F), (out, h, M, F))                   \
    X(swiglu_backward, (real *dh, const real *h, const real *dout, int M, int F),                 \
      (dh, h, dout, M, F))                                                                        \
    X(softmax_forward, (real *out, const real *x, int M, int N, real scale), (out, x, M, N, scale)) \
    X(softmax_backward, (real *dx, const real *out, const real *dout, int M, int N, real scale), \
      (dx, out, dout, M, N, scale))                                                               \
    X(rope_tables,                                                                                \
      (real *sin_t, real *cos_t, const real *periods, int Hp, int Wp, int Dh, real shift_y,       \
       real shift_x, real scale_y, real scale_x),                                                 \
      (sin_t, cos_t, periods, Hp, Wp, Dh, shift_y, shift_x, scale_y, scale_x))                    \
    X(rope_forward,                                                                               \
      (real *qkv, const real *sin_t, const real *cos_t, int N, int T, int H, int Dh, int prefix), \
      (qkv, sin_t, cos_t, N, T, H, Dh, prefix))                                                   \
    X(rope_backward,                                                                              \
      (real *dqkv, const real *sin_t, const real *cos_t, int N, int T, int H, int Dh, int prefix), \
      (dqkv, sin_t, cos_t, N, T, H, Dh, prefix))                                                  \
    X(residual_forward,                                                                           \
      (real *out, const real *x, const real *y, const real *gamma, const int32_t *idx,            \
       int nsamples, int k, int T, int C, real scale),                                            \
      (out, x, y, gamma, idx, nsamples, k, T, C, scale))                                          \
    X(residual_backward,                                                                          \
      (real *dx, real *dy, real *dgamma, const real *dout, const real *y, const real *gamma,      \
       const int32_t *idx, int nsamples, int k, int T, int C, real scale),                        \
      (dx, dy, dgamma, dout, y, gamma, idx, nsamples, k, T, C, scale))                            \
    X(gather_rows, (real *dst, const real *src, const int32_t *idx, int k, size_t row),           \
      (dst, src, idx, k, row))                                                                    \
    X(scatter_add_rows, (real *dsrc, const real *ddst, const int32_t *idx, int k, size_t row),    \
      (dsrc, ddst, idx, k, row))                                                                  \
    X(im2col, (real *cols, const real *img, int N, int Cin, int H, int W, int p),                 \
      (cols, img, N, Cin, H, W, p))                                                               \
    X(col2im, (real *dimg, const real *dcols, int N, int Cin, int H, int W, int p),               \
      (dimg, dcols, N, Cin, H, W, p))                                                             \
    X(tokens_forward,                                                                             \
      (real *tokens, const real *patches, const real *cls, const real *reg,                       \
       const real *mask_token, const uint8_t *mask, int N, int P, int R, int D),                  \
      (tokens, patches, cls, reg, mask_token, mask, N, P, R, D))                                  \
    X(tokens_backward,                                                                            \
      (real *dpatches, real *dcls, real *dreg, real *dmask_token, const real *dtokens,            \
       const uint8_t *mask, int N, int P, int R, int D),                                          \
      (dpatches, dcls, dreg, dmask_token, dtokens, mask, N, P, R, D))

#define DX_CPU_KERNELS_OTHER(X)                                                                   \
    X(attention_forward,                                                                          \
      (real *out, real *att, real *lse, const real *qkv, int N, int T, int H, int Dh, real scale),\
      (out, att, lse, qkv, N, T, H, Dh, scale))                                                   \
    X(attention_backward,                                                                         \
      (real *dqkv, const real *dout, const real *qkv, const real *out, const real *lse, int N,    \
       int T, int H, int Dh, real scale),                                                         \
      (dqkv, dout, qkv, out, lse, N, T, H, Dh, scale))

#define DX_CPU_KERNEL_DECLARE_F32(op, params, args) void dx_cpu_##op##_f32 params;
#define DX_CPU_KERNEL_DECLARE_F64(op, params, args) void dx_cpu_##op##_f64 params;

/* `real` is spelled out at each expansion, so the two lists give float and
 * double prototypes (and cpu_kernels.inc defines `real` itself afterwards). */
#define real float
DX_CPU_KERNELS_TABLE(DX_CPU_KERNEL_DECLARE_F32)
DX_CPU_KERNELS_OTHER(DX_CPU_KERNEL_DECLARE_F32)
#undef real
#define real double
DX_CPU_KERNELS_TABLE(DX_CPU_KERNEL_DECLARE_F64)
DX_CPU_KERNELS_OTHER(DX_CPU_KERNEL_DECLARE_F64)
#undef real

/* ---- GEMM (cpu_gemm.c) ----
 * C[M,N] = alpha op(A) op(B) + beta C, row-major, batch > 1 strided. oneDNN
 * dnnl_sgemm; inside an OpenMP parallel region it runs single-threaded. */
void dx_cpu_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc, int batch,
                  int64_t stride_a, int64_t stride_b, int64_t stride_c);
/* ---- bf16 GEMM (cpu_gemm_bf16.c) ----
 * The same contract with A and B rounded to bf16 and fp32 accumulation
 * (oneDNN matmul primitives, cached per shape in the state). */
typedef struct dx_cpu_bf16 dx_cpu_bf16;
dx_cpu_bf16 *dx_cpu_bf16_create(void);
void dx_cpu_bf16_destroy(dx_cpu_bf16 *s);
void dx_cpu_gemm_bf16(dx_cpu_bf16 *s, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc, int batch, int64_t stride_a,
                      int64_t stride_b, int64_t stride_c);
/* Naive triple loop in double (test reference / f64 path), same argument meaning. */
void dx_cpu_dgemm_ref(int ta, int tb, int M, int N, int K, double alpha, const double *A, int lda,
                      const double *B, int ldb, double beta, double *C, int ldc);

/* ---- attention on strided views with per-(image,head) sgemm (cpu_attention.c) ----
 * Same contract as dx_cpu_attention_{forward,backward}_f32; the backend uses
 * whichever measured faster (see docs/backend.md). */
void dx_cpu_attention_forward_gemm(float *out, float *att, float *lse, const float *qkv, int N, int T, int H,
                                   int Dh, float scale);
void dx_cpu_attention_backward_gemm(float *dqkv, const float *dout, const float *qkv, const float *out,
                                    const float *lse, int N, int T, int H, int Dh, float scale);

#endif /* DX_CPU_KERNELS_H */
