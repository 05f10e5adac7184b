/* dx_backend.h - the compute interface between the model and a device.
 *
 * Model code (src/nn, src/train) never dereferences a tensor pointer and never
 * calls a BLAS: it allocates through, and computes through, this ops table.
 * The CPU backend (src/backend/cpu) is the fp32 reference; a GPU backend fills
 * the same table with device kernels. Ops know nothing about models.
 *
 * The device contract (docs/backend.md, "The device contract"):
 *  - every tensor argument of an op is backend memory from ops->alloc. The
 *    only host pointers an op takes are small launch-parameter arrays and
 *    scalar results, marked (host) in their comment; nothing else, ever.
 *  - ops are queued in call order on the backend's one stream; they may run
 *    after the call returns. A host value of a tensor exists only after
 *    download (or an op marked "to host"), which waits for every earlier op.
 *  - upload and download are BLOCKING: when upload returns, the host source
 *    may be freed or reused; when download returns, the host copy is
 *    complete. sync waits for all queued work (needed only for timing).
 *  - host_alloc gives host memory the backend can transfer from fastest
 *    (page-locked on a GPU); the loader's batch slots use it.
 *
 * Conventions (all ops):
 *  - fp32, row-major, contiguous unless a leading dimension is given.
 *  - *_backward ops ACCUMULATE (+=) into every gradient they write, so a
 *    tensor read by two consumers needs no special handling; callers zero the
 *    gradient buffers once per step.
 *  - shapes are in the comments; M = rows (tokens), C = channels.
 *  - ops do not fail: shapes are validated when the model is built. */
#ifndef DX_BACKEND_H
#define DX_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "core/dx_error.h"

typedef struct dx_backend dx_backend;

/* One trainable tensor of a flat buffer, for the multi-tensor ops. */
typedef struct dx_segment {
    uint64_t offset, n; /* floats */
    float lr_mult, wd_mult;
    int32_t group;      /* 0: base lr, 1: last-layer lr (frozen while 0) */
    int32_t pad_;
} dx_segment;


/* Run-health facts of a backend's device (device_stats; -1 where unknown). */
typedef struct dx_device_stats {
    double mem_in_use, mem_peak; /* bytes of `alloc` memory held now, and the most held at once */
    double mem_total;            /* bytes the device has (host RAM on the CPU) */
    double busy_s;               /* seconds the device spent running queued work since the backend was
                                    created, from events (-1: not measured; the CPU runs ops inline) */
    double temp_c;               /* device temperature, degrees C (-1: unknown) */
    double clock_mhz;            /* current compute clock, MHz (-1: unknown) */
} dx_device_stats;

typedef struct dx_backend_ops {
    const char *name;
    void (*destroy)(dx_backend *be);

    /* ---- memory ---------------------------------------------------------- */
    void *(*alloc)(dx_backend *be, size_t bytes); /* zero-filled, 64-B aligned, NULL on failure */
    void (*free)(dx_backend *be, void *p);
    void (*upload)(dx_backend *be, void *dst, const void *src_host, size_t bytes);
    void (*download)(dx_backend *be, void *dst_host, const void *src, size_t bytes);
    void (*copy)(dx_backend *be, void *dst, const void *src, size_t bytes);
    void (*zero)(dx_backend *be, void *dst, size_t bytes);
    /* bf16 storage (the bf16 policy keeps some activations for backward in
     * bf16): dst[n] = bf16(src), round to nearest even, NaN stays NaN; and
     * back, exactly. uint16_t holds the bf16 bits. */
    void (*to_bf16)(dx_backend *be, uint16_t *dst, const float *src, size_t n);
    void (*from_bf16)(dx_backend *be, float *dst, const uint16_t *src, size_t n);
    void (*sync)(dx_backend *be);
    /* (host) staging memory for transfers: 64-B aligned, zero-filled, NULL on failure */
    void *(*host_alloc)(dx_backend *be, size_t bytes);
    void (*host_free)(dx_backend *be, void *p);
    /* Run-health facts (host out), cheap enough for every logged step; does
     * not wait for queued work. host_alloc memory is not counted. */
    void (*device_stats)(dx_backend *be, dx_device_stats *out);

    /* ---- GEMM: the one matrix-multiply entry point -------------------------
     * C[M,N] = alpha * op(A) @ op(B) + beta * C, op(X) = X or X^T.
     * A is [M,K] (ta=0) or [K,M] (ta=1) with leading dim lda; likewise B.
     * batch > 1: matrices i at A + i*stride_a, B + i*stride_b, C + i*stride_c. */
    void (*gemm)(dx_backend *be, int ta, int tb, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc,
                 int batch, int64_t stride_a, int64_t stride_b, int64_t stride_c);
    /* The same with A and B rounded to bf16 (nearest even) and the products
     * accumulated in fp32 into the fp32 C: the matmul of the bf16 policy
     * (dx_gemm_linear). Tolerance: bf16's 8-bit mantissa, ~2^-8 relative per
     * product, averaged over K. */
    void (*gemm_bf16)(dx_backend *be, int ta, int tb, int M, int N, int K, float alpha,
                      const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc,
                      int batch, int64_t stride_a, int64_t stride_b, int64_t stride_c);

    /* ---- elementwise / small reductions ----------------------------------- */
    /* y[M,N] += b[N] (* mask[N] if mask != NULL): linear bias, masked k-bias. */
    void (*bias_forward)(dx_backend *be, float *y, const float *b, const float *mask, int M, int N);
    /* db[N] += sum_m dy[m,:] (* mask) */
    void (*bias_backward)(dx_backend *be, float *db, const float *dy, const float *mask, int M, int N);

    /* LayerNorm over the last dim, biased variance:
     * out[M,C] = (x - mean) * rstd * w + b; mean[M], rstd[M] saved for backward. */
    void (*layernorm_forward)(dx_backend *be, float *out, float *mean, float *rstd, const float *x,
                              const float *w, const float *b, int M, int C, float eps);
    void (*layernorm_backward)(dx_backend *be, float *dx, float *dw, float *db, const float *dout,
                               const float *x, const float *w, const float *mean, const float *rstd,
                               int M, int C);

    /* exact GELU 0.5 x (1 + erf(x / sqrt 2)), n elements; out must not alias x. */
    void (*gelu_forward)(dx_backend *be, float *out, const float *x, size_t n);
    void (*gelu_backward)(dx_backend *be, float *dx, const float *x, const float *dout, size_t n);

    /* SwiGLU: h[M, 2F] = [w1 x | w2 x] (one GEMM over the stacked weights);
     * out[M,F] = silu(h[:, :F]) * h[:, F:]. */
    void (*swiglu_forward)(dx_backend *be, float *out, const float *h, int M, int F);
    void (*swiglu_backward)(dx_backend *be, float *dh, const float *h, const float *dout, int M, int F);

    /* Row softmax of scale*x: out[M,N]. Backward: dx += scale * out*(dout - <dout,out>). */
    void (*softmax_forward)(dx_backend *be, float *out, const float *x, int M, int N, float scale);
    void (*softmax_backward)(dx_backend *be, float *dx, const float *out, const float *dout, int M,
                             int N, float scale);

    /* ---- attention ---------------------------------------------------------
     * qkv[N,T,3,H,Dh] as produced by the qkv linear (q | k | v, head-major in
     * each third). out[N,T,H*Dh] = softmax(q k^T * scale) v per (image, head),
     * heads concatenated. No copies to a [N,H,T,Dh] layout are needed by the
     * caller, and no T x T matrix is kept for backward:
     *  - lse[N,H,T] (NULL: not wanted) receives each score row's log-sum-exp,
     *    lse_i = log sum_j exp(scale q_i.k_j), all that backward needs to
     *    recompute the probabilities P_ij = exp(scale q_i.k_j - lse_i);
     *  - att[N,H,T,T] (NULL: not wanted) receives the probabilities themselves,
     *    for the attention maps of eval.
     * With both NULL (passes without backward) the backend needs no more than
     * a few rows of scores at a time. */
    void (*attention_forward)(dx_backend *be, float *out, float *att, float *lse, const float *qkv, int N,
                              int T, int H, int Dh, float scale);
    /* dqkv[N,T,3,H,Dh] += gradient of out w.r.t. qkv, from the forward's out
     * and lse: P recomputed, dV = P^T dO, dP = dO V^T, D_i = dO_i . O_i,
     * dS = P (dP - D), dQ = scale dS K, dK = scale dS^T Q. */
    void (*attention_backward)(dx_backend *be, float *dqkv, const float *dout, const float *qkv,
                               const float *out, const float *lse, int N, int T, int H, int Dh, float scale);

    /* ---- RoPE (axial 2-D, rotate-half pairing i <-> i+Dh/2) ---------------
     * Tables for a Hp x Wp grid: sin/cos[P = Hp*Wp, Dh]. Coordinates per axis
     * c = (i + 0.5)/n * 2 - 1, then c' = (c + shift) * scale (scale = jitter *
     * rescale; shift/scale are the train-time augmentation draws, 0/1 at eval).
     * angle[p, j] = 2*pi*cy'/periods[j] (j < Dh/4), 2*pi*cx'/periods[j-Dh/4]
     * (Dh/4 <= j < Dh/2), tiled twice to length Dh. periods[Dh/4] on device. */
    void (*rope_tables)(dx_backend *be, float *sin_t, float *cos_t, const float *periods, int Hp,
                        int Wp, int Dh, float shift_y, float shift_x, float scale_y, float scale_x);
    /* In place on q and k of qkv[N,T,3,H,Dh] for tokens t >= prefix (t-prefix = patch p):
     * x'_i = x_i cos - x_{i+Dh/2} sin;  x'_{i+Dh/2} = x_{i+Dh/2} cos + x_i sin. */
    void (*rope_forward)(dx_backend *be, float *qkv, const float *sin_t, const float *cos_t, int N,
                         int T, int H, int Dh, int prefix);
    /* In place on dq, dk of dqkv: applies the transpose rotation (gradient of rope_forward). */
    void (*rope_backward)(dx_backend *be, float *dqkv, const float *sin_t, const float *cos_t, int N,
                          int T, int H, int Dh, int prefix);

    /* ---- residual with LayerScale and batch-subset stochastic depth --------
     * For i < k, sample s = idx ? idx[i] : i, each sample T rows of C:
     *   out[s] = x[s] + scale * gamma * y[i]       (rows of samples not in idx: out = x)
     * out may alias x. idx is int32 in backend memory (NULL = identity, k = all). */
    void (*residual_forward)(dx_backend *be, float *out, const float *x, const float *y,
                             const float *gamma, const int32_t *idx, int nsamples, int k, int T,
                             int C, float scale);
    /* dx += dout (all samples); dy[i] += scale*gamma*dout[s]; dgamma += scale*sum dout[s]*y[i]. */
    void (*residual_backward)(dx_backend *be, float *dx, float *dy, float *dgamma, const float *dout,
                              const float *y, const float *gamma, const int32_t *idx, int nsamples,
                              int k, int T, int C, float scale);
    /* dst[i] = src[idx[i]] for i < k, rows of `row` floats (gather a batch subset). */
    void (*gather_rows)(dx_backend *be, float *dst, const float *src, const int32_t *idx, int k,
                        size_t row);
    /* dsrc[idx[i]] += ddst[i] */
    void (*scatter_add_rows)(dx_backend *be, float *dsrc, const float *ddst, const int32_t *idx,
                             int k, size_t row);

    /* ---- patch embedding pieces ---------------------------------------------
     * im2col: img[N,3,H,W] -> cols[N*Hp*Wp, 3*p*p], column order (c, ky, kx) to
     * match conv weight [D,3,p,p]; Hp = H/p (remainder cropped as a strided conv). */
    void (*im2col)(dx_backend *be, float *cols, const float *img, int N, int Cin, int H, int W, int p);
    /* dimg += col2im(dcols) */
    void (*col2im)(dx_backend *be, float *dimg, const float *dcols, int N, int Cin, int H, int W, int p);

    /* tokens[N,T,D] = [cls, reg_0..reg_{R-1}, patch_0..patch_{P-1}] with
     * patches[N,P,D]; masked patches (mask[N,P] != 0, uint8, may be NULL) are
     * replaced by mask_token[D]. cls[D], reg[R,D] broadcast over N. */
    void (*tokens_forward)(dx_backend *be, float *tokens, const float *patches, const float *cls,
                           const float *reg, const float *mask_token, const uint8_t *mask, int N,
                           int P, int R, int D);
    /* dpatches += d at unmasked patches; dmask_token += sum d at masked ones;
     * dcls, dreg += sums over N. Any gradient pointer may be NULL (skipped). */
    void (*tokens_backward)(dx_backend *be, float *dpatches, float *dcls, float *dreg,
                            float *dmask_token, const float *dtokens, const uint8_t *mask, int N,
                            int P, int R, int D);

    /* ---- vector ops, optimizer -------------------------------------------- */
    void (*scale)(dx_backend *be, float *x, float s, size_t n);               /* x *= s   */
    void (*axpy)(dx_backend *be, float *y, float a, const float *x, size_t n); /* y += a x */
    double (*sumsq)(dx_backend *be, const float *x, size_t n);  /* sum x^2 in double, to host */
    /* 1 if any element is NaN or Inf (result to host) */
    int (*nonfinite)(dx_backend *be, const float *x, size_t n);
    /* AdamW (PyTorch semantics, decoupled decay): p -= lr*wd*p; m = b1 m + (1-b1) g;
     * v = b2 v + (1-b2) g^2; p -= lr * (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps). t >= 1. */
    void (*adamw)(dx_backend *be, float *p, const float *g, float *m, float *v, size_t n, float lr,
                  float beta1, float beta2, float eps, float wd, int t);
    /* teacher = m * teacher + (1 - m) * student */
    void (*ema)(dx_backend *be, float *teacher, const float *student, size_t n, float m);

    /* ---- multi-tensor optimizer: one call per step over the flat buffers ----
     * seg[nseg] (backend memory, uploaded once): the trainable tensors of a
     * table. Segment i covers [offset, offset + n) of p, g, m, v; its lr is
     * (group ? last_layer_lr : lr) * lr_mult and its wd is wd * wd_mult, both
     * rounded to float as adamw's arguments would be, so the result is bit-
     * identical to one adamw call per tensor. */
    void (*adamw_multi)(dx_backend *be, float *p, const float *g, float *m, float *v,
                        const struct dx_segment *seg, int nseg, float lr, float last_layer_lr,
                        float wd, float beta1, float beta2, float eps, int t);
    /* ema over every segment of seg (teacher and student share the layout) */
    void (*ema_multi)(dx_backend *be, float *teacher, const float *student,
                      const struct dx_segment *seg, int nseg, float m);
} dx_backend_ops;

/* Every member of dx_backend_ops after `name`, in order: test_backend_ops
 * fails when one has no test case, and the static assert below fails when a
 * member is added without its name here. */
#define DX_BACKEND_OP_NAMES(X)                                                                  \
    X(destroy) X(alloc) X(free) X(upload) X(download) X(copy) X(zero) X(to_bf16) X(from_bf16)  \
    X(sync) X(host_alloc)                                                                       \
    X(host_free) X(device_stats) X(gemm) X(gemm_bf16) X(bias_forward) X(bias_backward) X(layernorm_forward)                  \
    X(layernorm_backward) X(gelu_forward) X(gelu_backward) X(swiglu_forward)                    \
    X(swiglu_backward) X(softmax_forward) X(softmax_backward) X(attention_forward)              \
    X(attention_backward) X(rope_tables) X(rope_forward) X(rope_backward) X(residual_forward)   \
    X(residual_backward) X(gather_rows) X(scatter_add_rows) X(im2col) X(col2im)                 \
    X(tokens_forward) X(tokens_backward) X(scale) X(axpy) X(sumsq) X(nonfinite) X(adamw) X(ema) \
    X(adamw_multi) X(ema_multi)
#define DX_OP_COUNT_ONE_(op) +1
_Static_assert(sizeof(dx_backend_ops) ==
                   (1 DX_BACKEND_OP_NAMES(DX_OP_COUNT_ONE_)) * sizeof(void (*)(void)),
               "DX_BACKEND_OP_NAMES must list every member of dx_backend_ops");

struct dx_loss_ops; /* DINOv3 objective kernels: backend/dx_loss_ops.h */

struct dx_backend {
    const dx_backend_ops *ops;
    const struct dx_loss_ops *loss;
    void *impl;   /* backend private state */
    int nthreads;
    int device;   /* device index within the backend (0 on the CPU) */
    int precision; /* DX_PREC_FP32 | DX_PREC_BF16: the matmul policy of dx_gemm_linear */
};

/* Precision policies. bf16: the GEMMs of linear layers (backbone and heads)
 * take bf16 inputs with fp32 accumulation and fp32 outputs; master weights,
 * AdamW state, gradients, activations, LayerNorm, softmax and attention, the
 * losses, Sinkhorn-Knopp, KoLeo, Gram, EMA and the gradient norms stay fp32. */
#define DX_PREC_FP32 0
#define DX_PREC_BF16 1

/* What to create: backend/registry.c turns it into a backend. */
typedef struct dx_backend_params {
    const char *name; /* a registry name ("cpu", "cuda", "hip"); NULL = the default */
    int device;       /* device index within that backend */
    int nthreads;     /* host threads (OpenMP); 0 = the runtime's default */
    int precision;    /* DX_PREC_FP32 (default) or DX_PREC_BF16 */
} dx_backend_params;

/* Creates a backend from the registry (backend/registry.c). */
dx_status dx_backend_create(dx_backend **out, const dx_backend_params *p, dx_err *err);
void dx_backend_destroy(dx_backend *be);

/* The one GEMM wrapper model code calls (single matrix). */
static inline void dx_gemm(dx_backend *be, int ta, int tb, int M, int N, int K, float alpha,
                           const float *A, int lda, const float *B, int ldb, float beta, float *C,
                           int ldc) {
    be->ops->gemm(be, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, 1, 0, 0, 0);
}

/* The GEMM of a linear layer, under the backend's precision policy (fp32, or
 * bf16 inputs with fp32 accumulation). Everything else calls dx_gemm / gemm:
 * attention, Gram matrices and statistics are always fp32. */
static inline void dx_gemm_linear(dx_backend *be, int ta, int tb, int M, int N, int K, float alpha,
                                  const float *A, int lda, const float *B, int ldb, float beta, float *C,
                                  int ldc) {
    (be->precision == DX_PREC_BF16 ? be->ops->gemm_bf16 : be->ops->gemm)(be, ta, tb, M, N, K, alpha, A, lda, B,
                                                                          ldb, beta, C, ldc, 1, 0, 0, 0);
}

#endif /* DX_BACKEND_H */
