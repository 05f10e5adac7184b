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

/* ---- float (backend) ---- */
void dx_cpu_bias_forward_f32(float *y, const float *b, const float *mask, int M, int N);
void dx_cpu_bias_backward_f32(float *db, const float *dy, const float *mask, int M, int N);
void dx_cpu_layernorm_forward_f32(float *out, float *mean, float *rstd, const float *x, const float *w,
                                   const float *b, int M, int C, float eps);
void dx_cpu_layernorm_backward_f32(float *dx, float *dw, float *db, const float *dout, const float *x,
                                    const float *w, const float *mean, const float *rstd, int M, int C);
void dx_cpu_gelu_forward_f32(float *out, const float *x, size_t n);
void dx_cpu_gelu_backward_f32(float *dx, const float *x, const float *dout, size_t n);
void dx_cpu_swiglu_forward_f32(float *out, const float *h, int M, int F);
void dx_cpu_swiglu_backward_f32(float *dh, const float *h, const float *dout, int M, int F);
void dx_cpu_softmax_forward_f32(float *out, const float *x, int M, int N, float scale);
void dx_cpu_softmax_backward_f32(float *dx, const float *out, const float *dout, int M, int N,
                                  float scale);
void dx_cpu_attention_forward_f32(float *out, float *att, const float *qkv, int N, int T, int H,
                                   int Dh, float scale);
void dx_cpu_attention_backward_f32(float *dqkv, const float *dout, const float *qkv, const float *att,
                                    int N, int T, int H, int Dh, float scale);
void dx_cpu_rope_tables_f32(float *sin_t, float *cos_t, const float *periods, int Hp, int Wp, int Dh,
                             float shift_y, float shift_x, float scale_y, float scale_x);
void dx_cpu_rope_forward_f32(float *qkv, const float *sin_t, const float *cos_t, int N, int T, int H,
                              int Dh, int prefix);
void dx_cpu_rope_backward_f32(float *dqkv, const float *sin_t, const float *cos_t, int N, int T, int H,
                               int Dh, int prefix);
void dx_cpu_residual_forward_f32(float *out, const float *x, const float *y, const float *gamma,
                                  const int32_t *idx, int nsamples, int k, int T, int C, float scale);
void dx_cpu_residual_backward_f32(float *dx, float *dy, float *dgamma, const float *dout, const float *y,
                                   const float *gamma, const int32_t *idx, int nsamples, int k, int T,
                                   int C, float scale);
void dx_cpu_gather_rows_f32(float *dst, const float *src, const int32_t *idx, int k, size_t row);
void dx_cpu_scatter_add_rows_f32(float *dsrc, const float *ddst, const int32_t *idx, int k, size_t row);
void dx_cpu_im2col_f32(float *cols, const float *img, int N, int Cin, int H, int W, int p);
void dx_cpu_col2im_f32(float *dimg, const float *dcols, int N, int Cin, int H, int W, int p);
void dx_cpu_tokens_forward_f32(float *tokens, const float *patches, const float *cls, const float *reg,
                                const float *mask_token, const uint8_t *mask, int N, int P, int R,
                                int D);
void dx_cpu_tokens_backward_f32(float *dpatches, float *dcls, float *dreg, float *dmask_token,
                                 const float *dtokens, const uint8_t *mask, int N, int P, int R, int D);

/* ---- double (tests) ---- */
void dx_cpu_bias_forward_f64(double *y, const double *b, const double *mask, int M, int N);
void dx_cpu_bias_backward_f64(double *db, const double *dy, const double *mask, int M, int N);
void dx_cpu_layernorm_forward_f64(double *out, double *mean, double *rstd, const double *x, const double *w,
                                   const double *b, int M, int C, double eps);
void dx_cpu_layernorm_backward_f64(double *dx, double *dw, double *db, const double *dout, const double *x,
                                    const double *w, const double *mean, const double *rstd, int M, int C);
void dx_cpu_gelu_forward_f64(double *out, const double *x, size_t n);
void dx_cpu_gelu_backward_f64(double *dx, const double *x, const double *dout, size_t n);
void dx_cpu_swiglu_forward_f64(double *out, const double *h, int M, int F);
void dx_cpu_swiglu_backward_f64(double *dh, const double *h, const double *dout, int M, int F);
void dx_cpu_softmax_forward_f64(double *out, const double *x, int M, int N, double scale);
void dx_cpu_softmax_backward_f64(double *dx, const double *out, const double *dout, int M, int N,
                                  double scale);
void dx_cpu_attention_forward_f64(double *out, double *att, const double *qkv, int N, int T, int H,
                                   int Dh, double scale);
void dx_cpu_attention_backward_f64(double *dqkv, const double *dout, const double *qkv, const double *att,
                                    int N, int T, int H, int Dh, double scale);
void dx_cpu_rope_tables_f64(double *sin_t, double *cos_t, const double *periods, int Hp, int Wp, int Dh,
                             double shift_y, double shift_x, double scale_y, double scale_x);
void dx_cpu_rope_forward_f64(double *qkv, const double *sin_t, const double *cos_t, int N, int T, int H,
                              int Dh, int prefix);
void dx_cpu_rope_backward_f64(double *dqkv, const double *sin_t, const double *cos_t, int N, int T, int H,
                               int Dh, int prefix);
void dx_cpu_residual_forward_f64(double *out, const double *x, const double *y, const double *gamma,
                                  const int32_t *idx, int nsamples, int k, int T, int C, double scale);
void dx_cpu_residual_backward_f64(double *dx, double *dy, double *dgamma, const double *dout, const double *y,
                                   const double *gamma, const int32_t *idx, int nsamples, int k, int T,
                                   int C, double scale);
void dx_cpu_gather_rows_f64(double *dst, const double *src, const int32_t *idx, int k, size_t row);
void dx_cpu_scatter_add_rows_f64(double *dsrc, const double *ddst, const int32_t *idx, int k, size_t row);
void dx_cpu_im2col_f64(double *cols, const double *img, int N, int Cin, int H, int W, int p);
void dx_cpu_col2im_f64(double *dimg, const double *dcols, int N, int Cin, int H, int W, int p);
void dx_cpu_tokens_forward_f64(double *tokens, const double *patches, const double *cls, const double *reg,
                                const double *mask_token, const uint8_t *mask, int N, int P, int R,
                                int D);
void dx_cpu_tokens_backward_f64(double *dpatches, double *dcls, double *dreg, double *dmask_token,
                                 const double *dtokens, const uint8_t *mask, int N, int P, int R, int D);

/* ---- GEMM (cpu_gemm.c) ----
 * C[M,N] = alpha op(A) op(B) + beta C, row-major, batch > 1 strided. oneDNN
 * dnnl_sgemm; inside an OpenMP parallel region it runs single-threaded. */
void dx_cpu_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc, int batch,
                  int64_t stride_a, int64_t stride_b, int64_t stride_c);
/* Naive triple loop in double (test reference / f64 path), same argument meaning. */
void dx_cpu_dgemm_ref(int ta, int tb, int M, int N, int K, double alpha, const double *A, int lda,
                      const double *B, int ldb, double beta, double *C, int ldc);

/* ---- attention on strided views with per-(image,head) sgemm (cpu_attention.c) ----
 * Same contract as dx_cpu_attention_{forward,backward}_f32; the backend uses
 * whichever measured faster (see docs/backend.md). */
void dx_cpu_attention_forward_gemm(float *out, float *att, const float *qkv, int N, int T, int H,
                                   int Dh, float scale);
void dx_cpu_attention_backward_gemm(float *dqkv, const float *dout, const float *qkv,
                                    const float *att, int N, int T, int H, int Dh, float scale);

#endif /* DX_CPU_KERNELS_H */
