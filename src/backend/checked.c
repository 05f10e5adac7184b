/* checked.c - see checked.h. The wrappers of the ops whose signature is in
 * the CPU kernel list are generated from it (DX_CPU_KERNELS_TABLE/_OTHER:
 * every argument of pointer type is checked); the others are written out. */
#include "backend/checked.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "backend/dx_loss_ops.h"

typedef struct {
    uintptr_t lo, hi;
} span;

typedef struct {
    dx_backend *inner;
    pthread_mutex_t mu;
    span *s; /* live allocations, sorted by lo */
    size_t n, cap;
} checked_state;

#define ST(be) ((checked_state *)(be)->impl)
#define IN(be) (ST(be)->inner)

static void track(checked_state *c, void *p, size_t bytes) {
    pthread_mutex_lock(&c->mu);
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 256;
        span *s = realloc(c->s, cap * sizeof *s);
        if (!s) {
            fprintf(stderr, "dinox: device-pointer check: out of memory\n");
            abort();
        }
        c->s = s, c->cap = cap;
    }
    uintptr_t lo = (uintptr_t)p;
    size_t i = c->n;
    while (i > 0 && c->s[i - 1].lo > lo) c->s[i] = c->s[i - 1], i--;
    c->s[i] = (span){lo, lo + (bytes ? bytes : 1)};
    c->n++;
    pthread_mutex_unlock(&c->mu);
}

/* index of the allocation holding p, or -1 */
static long find(checked_state *c, uintptr_t p) {
    size_t a = 0, b = c->n;
    while (a < b) {
        size_t m = (a + b) / 2;
        if (c->s[m].lo <= p) a = m + 1;
        else b = m;
    }
    return a > 0 && p < c->s[a - 1].hi ? (long)a - 1 : -1;
}

static void untrack(checked_state *c, void *p, const char *op) {
    pthread_mutex_lock(&c->mu);
    long i = find(c, (uintptr_t)p);
    if (i < 0 || c->s[i].lo != (uintptr_t)p) {
        fprintf(stderr, "dinox: device contract violated: %s(%p): not a live allocation of this backend\n", op, p);
        abort();
    }
    memmove(c->s + i, c->s + i + 1, (c->n - (size_t)i - 1) * sizeof *c->s);
    c->n--;
    pthread_mutex_unlock(&c->mu);
}

/* NULL is allowed (optional arguments); anything else must be backend memory */
static void ck_ptr(dx_backend *be, const char *op, const char *arg, const void *p) {
    if (!p) return;
    checked_state *c = ST(be);
    pthread_mutex_lock(&c->mu);
    long i = find(c, (uintptr_t)p);
    pthread_mutex_unlock(&c->mu);
    if (i < 0) {
        fprintf(stderr,
                "dinox: device contract violated: %s: argument '%s' = %p is not backend memory "
                "(host memory, host_alloc staging or a freed buffer)\n",
                op, arg, p);
        abort();
    }
}
static void ck_none(dx_backend *be, const char *op, const char *arg, ...) { (void)be, (void)op, (void)arg; }

#define CK(a)                                                                                        \
    _Generic((a), float *: ck_ptr, const float *: ck_ptr, int32_t *: ck_ptr, const int32_t *: ck_ptr, \
             uint8_t *: ck_ptr, const uint8_t *: ck_ptr, void *: ck_ptr, const void *: ck_ptr,        \
             double *: ck_ptr, const double *: ck_ptr,                                                \
             dx_segment *: ck_ptr, const dx_segment *: ck_ptr, default: ck_none)(be, op_name, #a, a)

/* CK over each argument of a list (at most 12) */
#define CK_N_(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, N, ...) N
#define CK_N(...) CK_N_(__VA_ARGS__, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define CK_CAT_(a, b) a##b
#define CK_CAT(a, b) CK_CAT_(a, b)
#define CK_1(a) CK(a)
#define CK_2(a, ...) CK(a); CK_1(__VA_ARGS__)
#define CK_3(a, ...) CK(a); CK_2(__VA_ARGS__)
#define CK_4(a, ...) CK(a); CK_3(__VA_ARGS__)
#define CK_5(a, ...) CK(a); CK_4(__VA_ARGS__)
#define CK_6(a, ...) CK(a); CK_5(__VA_ARGS__)
#define CK_7(a, ...) CK(a); CK_6(__VA_ARGS__)
#define CK_8(a, ...) CK(a); CK_7(__VA_ARGS__)
#define CK_9(a, ...) CK(a); CK_8(__VA_ARGS__)
#define CK_10(a, ...) CK(a); CK_9(__VA_ARGS__)
#define CK_11(a, ...) CK(a); CK_10(__VA_ARGS__)
#define CK_12(a, ...) CK(a); CK_11(__VA_ARGS__)
#define CK_ALL(...) CK_CAT(CK_, CK_N(__VA_ARGS__))(__VA_ARGS__)
#define UNPAREN(...) __VA_ARGS__

/* ---- generated: the ops of the CPU kernel list ---- */
#define real float
#define CK_WRAP(op, params, args)                                     \
    static void ck_##op(dx_backend *be, UNPAREN params) {             \
        static const char op_name[] = #op;                            \
        CK_ALL args;                                                  \
        dx_backend *in = IN(be);                                      \
        in->ops->op(in, UNPAREN args);                                \
    }
DX_CPU_KERNELS_TABLE(CK_WRAP)
DX_CPU_KERNELS_OTHER(CK_WRAP)
#undef CK_WRAP
#undef real

/* ---- written out: memory, GEMM, vector and optimizer ops ---- */
#define BEGIN(op) static const char op_name[] = #op; dx_backend *in = IN(be)

static void ck_destroy(dx_backend *be) {
    checked_state *c = ST(be);
    dx_backend_destroy(c->inner);
    pthread_mutex_destroy(&c->mu);
    free(c->s);
    free(c);
    free(be);
}
static void *ck_alloc(dx_backend *be, size_t bytes) {
    void *p = IN(be)->ops->alloc(IN(be), bytes);
    if (p) track(ST(be), p, bytes);
    return p;
}
static void ck_free(dx_backend *be, void *p) {
    if (!p) return;
    untrack(ST(be), p, "free");
    IN(be)->ops->free(IN(be), p);
}
static void ck_upload(dx_backend *be, void *dst, const void *src_host, size_t bytes) {
    BEGIN(upload);
    CK(dst);
    in->ops->upload(in, dst, src_host, bytes);
}
static void ck_download(dx_backend *be, void *dst_host, const void *src, size_t bytes) {
    BEGIN(download);
    CK(src);
    in->ops->download(in, dst_host, src, bytes);
}
static void ck_copy(dx_backend *be, void *dst, const void *src, size_t bytes) {
    BEGIN(copy);
    CK_ALL(dst, src);
    in->ops->copy(in, dst, src, bytes);
}
static void ck_zero(dx_backend *be, void *dst, size_t bytes) {
    BEGIN(zero);
    CK(dst);
    in->ops->zero(in, dst, bytes);
}
static void ck_to_bf16(dx_backend *be, uint16_t *dst, const float *src, size_t n) {
    BEGIN(to_bf16);
    CK_ALL(dst, src);
    in->ops->to_bf16(in, dst, src, n);
}
static void ck_from_bf16(dx_backend *be, float *dst, const uint16_t *src, size_t n) {
    BEGIN(from_bf16);
    CK_ALL(dst, src);
    in->ops->from_bf16(in, dst, src, n);
}
static void ck_sync(dx_backend *be) { IN(be)->ops->sync(IN(be)); }
static void *ck_host_alloc(dx_backend *be, size_t bytes) { return IN(be)->ops->host_alloc(IN(be), bytes); }
static void ck_host_free(dx_backend *be, void *p) { IN(be)->ops->host_free(IN(be), p); }
static void ck_device_stats(dx_backend *be, dx_device_stats *out) { IN(be)->ops->device_stats(IN(be), out); }
static void ck_gemm(dx_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc, int batch, int64_t sa, int64_t sb,
                    int64_t sc) {
    BEGIN(gemm);
    CK_ALL(A, B, C);
    in->ops->gemm(in, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, batch, sa, sb, sc);
}
static void ck_gemm_bf16(dx_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                         const float *B, int ldb, float beta, float *C, int ldc, int batch, int64_t sa, int64_t sb,
                         int64_t sc) {
    BEGIN(gemm_bf16);
    CK_ALL(A, B, C);
    in->ops->gemm_bf16(in, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, batch, sa, sb, sc);
}
static void ck_scale(dx_backend *be, float *x, float s, size_t n) {
    BEGIN(scale);
    CK(x);
    in->ops->scale(in, x, s, n);
}
static void ck_axpy(dx_backend *be, float *y, float a, const float *x, size_t n) {
    BEGIN(axpy);
    CK_ALL(y, x);
    in->ops->axpy(in, y, a, x, n);
}
static double ck_sumsq(dx_backend *be, const float *x, size_t n) {
    BEGIN(sumsq);
    CK(x);
    return in->ops->sumsq(in, x, n);
}
static int ck_nonfinite(dx_backend *be, const float *x, size_t n) {
    BEGIN(nonfinite);
    CK(x);
    return in->ops->nonfinite(in, x, n);
}
static void ck_adamw(dx_backend *be, float *p, const float *g, float *m, float *v, size_t n, float lr, float b1,
                     float b2, float eps, float wd, int t) {
    BEGIN(adamw);
    CK_ALL(p, g, m, v);
    in->ops->adamw(in, p, g, m, v, n, lr, b1, b2, eps, wd, t);
}
static void ck_ema(dx_backend *be, float *teacher, const float *student, size_t n, float m) {
    BEGIN(ema);
    CK_ALL(teacher, student);
    in->ops->ema(in, teacher, student, n, m);
}
static void ck_adamw_multi(dx_backend *be, float *p, const float *g, float *m, float *v, const dx_segment *seg,
                           int nseg, float lr, float llr, float wd, float b1, float b2, float eps, int t) {
    BEGIN(adamw_multi);
    CK_ALL(p, g, m, v, seg);
    in->ops->adamw_multi(in, p, g, m, v, seg, nseg, lr, llr, wd, b1, b2, eps, t);
}
static void ck_ema_multi(dx_backend *be, float *teacher, const float *student, const dx_segment *seg, int nseg,
                         float m) {
    BEGIN(ema_multi);
    CK_ALL(teacher, student, seg);
    in->ops->ema_multi(in, teacher, student, seg, nseg, m);
}

static const dx_backend_ops checked_ops = {
    .name = "checked",
    .destroy = ck_destroy,
    .alloc = ck_alloc,
    .free = ck_free,
    .upload = ck_upload,
    .download = ck_download,
    .copy = ck_copy,
    .zero = ck_zero,
    .to_bf16 = ck_to_bf16,
    .from_bf16 = ck_from_bf16,
    .sync = ck_sync,
    .host_alloc = ck_host_alloc,
    .host_free = ck_host_free,
    .device_stats = ck_device_stats,
    .gemm = ck_gemm,
    .gemm_bf16 = ck_gemm_bf16,
#define CK_ENTRY(op, params, args) .op = ck_##op,
    DX_CPU_KERNELS_TABLE(CK_ENTRY) DX_CPU_KERNELS_OTHER(CK_ENTRY)
#undef CK_ENTRY
    .scale = ck_scale,
    .axpy = ck_axpy,
    .sumsq = ck_sumsq,
    .nonfinite = ck_nonfinite,
    .adamw = ck_adamw,
    .ema = ck_ema,
    .adamw_multi = ck_adamw_multi,
    .ema_multi = ck_ema_multi,
};

/* ---- the loss table ---- */
#define LBEGIN(op) static const char op_name[] = #op; dx_backend *in = IN(be)
static void lk_sinkhorn_knopp(dx_backend *be, float *out, const float *logits, int N, int K, float temp, int it,
                              const dx_allreduce *red) {
    LBEGIN(sinkhorn_knopp);
    if (N > 0) CK_ALL(out, logits); /* a rank without rows passes no tensor */
    in->loss->sinkhorn_knopp(in, out, logits, N, K, temp, it, red);
}
/* a chunk without rows passes no row tensors */
static void lk_sk_chunk_colmax(dx_backend *be, double *m, const float *Z, int R, int K, int first) {
    LBEGIN(sk_chunk_colmax);
    CK(m);
    if (R > 0) CK(Z);
    in->loss->sk_chunk_colmax(in, m, Z, R, K, first);
}
static void lk_sk_chunk_colsum(dx_backend *be, double *a, const float *Z, const double *m, const double *r, int R,
                               int K, float temp, int first) {
    LBEGIN(sk_chunk_colsum);
    CK_ALL(a, m);
    if (R > 0) CK_ALL(Z, r);
    in->loss->sk_chunk_colsum(in, a, Z, m, r, R, K, temp, first);
}
static void lk_sk_chunk_rowscale(dx_backend *be, double *r, const float *Z, const double *m, const double *a, int R,
                                 int K, float temp, double n_tot) {
    LBEGIN(sk_chunk_rowscale);
    CK_ALL(m, a);
    if (R > 0) CK_ALL(r, Z);
    in->loss->sk_chunk_rowscale(in, r, Z, m, a, R, K, temp, n_tot);
}
static void lk_sk_chunk_targets(dx_backend *be, float *out, const float *Z, const double *m, const double *a,
                                const double *r, int R, int K, float temp, double n_tot) {
    LBEGIN(sk_chunk_targets);
    CK_ALL(m, a);
    if (R > 0) CK_ALL(out, Z, r);
    in->loss->sk_chunk_targets(in, out, Z, m, a, r, R, K, temp, n_tot);
}
static void lk_softmax_center(dx_backend *be, float *out, const float *logits, const float *center, int N, int K,
                              float temp) {
    LBEGIN(softmax_center);
    CK_ALL(out, logits, center);
    in->loss->softmax_center(in, out, logits, center, N, K, temp);
}
static void lk_row_mean(dx_backend *be, float *mean, const float *x, int N, int K) {
    LBEGIN(row_mean);
    CK_ALL(mean, x);
    in->loss->row_mean(in, mean, x, N, K);
}
static double lk_ce_forward(dx_backend *be, float *row_loss, const float *S, const float *T, const float *w, int N,
                            int K, float temp) {
    LBEGIN(ce_forward);
    CK_ALL(row_loss, S, T, w);
    return in->loss->ce_forward(in, row_loss, S, T, w, N, K, temp);
}
static void lk_ce_backward(dx_backend *be, float *dS, const float *S, const float *T, const float *w, int N, int K,
                           float temp, float scale) {
    LBEGIN(ce_backward);
    CK_ALL(dS, S, T, w);
    in->loss->ce_backward(in, dS, S, T, w, N, K, temp, scale);
}
static double lk_dino_forward(dx_backend *be, const float *S, int ns, const float *T, int nt, int B, int K,
                              float temp, int diag) {
    LBEGIN(dino_forward);
    CK_ALL(S, T);
    return in->loss->dino_forward(in, S, ns, T, nt, B, K, temp, diag);
}
static void lk_dino_backward(dx_backend *be, float *dS, const float *S, int ns, const float *T, int nt, int B, int K,
                             float temp, int diag, float scale) {
    LBEGIN(dino_backward);
    CK_ALL(dS, S, T);
    in->loss->dino_backward(in, dS, S, ns, T, nt, B, K, temp, diag, scale);
}
static double lk_koleo_forward(dx_backend *be, int32_t *nn, const float *x, int B, int D) {
    LBEGIN(koleo_forward);
    CK_ALL(nn, x);
    return in->loss->koleo_forward(in, nn, x, B, D);
}
static void lk_koleo_backward(dx_backend *be, float *dx, const float *x, const int32_t *nn, int B, int D,
                              float scale) {
    LBEGIN(koleo_backward);
    CK_ALL(dx, x, nn);
    in->loss->koleo_backward(in, dx, x, nn, B, D, scale);
}
static double lk_gram_forward(dx_backend *be, float *xs_hat, float *xt_hat, const float *xs, const float *xt,
                              int nimg, int P, int D, int lvl) {
    LBEGIN(gram_forward);
    CK_ALL(xs_hat, xt_hat, xs, xt);
    return in->loss->gram_forward(in, xs_hat, xt_hat, xs, xt, nimg, P, D, lvl);
}
static void lk_gram_backward(dx_backend *be, float *dxs, const float *xs, const float *xs_hat, const float *xt_hat,
                             int nimg, int P, int D, int lvl, float scale) {
    LBEGIN(gram_backward);
    CK_ALL(dxs, xs, xs_hat, xt_hat);
    in->loss->gram_backward(in, dxs, xs, xs_hat, xt_hat, nimg, P, D, lvl, scale);
}
static void lk_resize_bicubic(dx_backend *be, float *out, const float *inp, int nimg, int Hin, int Win, int Hout,
                              int Wout, int C) {
    LBEGIN(resize_bicubic);
    CK_ALL(out, inp);
    in->loss->resize_bicubic(in, out, inp, nimg, Hin, Win, Hout, Wout, C);
}
static void lk_resize_bicubic_backward(dx_backend *be, float *din, const float *dout, int nimg, int Hin, int Win,
                                       int Hout, int Wout, int C) {
    LBEGIN(resize_bicubic_backward);
    CK_ALL(din, dout);
    in->loss->resize_bicubic_backward(in, din, dout, nimg, Hin, Win, Hout, Wout, C);
}
static void lk_l2norm_forward(dx_backend *be, float *out, const float *x, int M, int D, float eps) {
    LBEGIN(l2norm_forward);
    CK_ALL(out, x);
    in->loss->l2norm_forward(in, out, x, M, D, eps);
}
static void lk_l2norm_backward(dx_backend *be, float *dx, const float *x, const float *dout, int M, int D,
                               float eps) {
    LBEGIN(l2norm_backward);
    CK_ALL(dx, x, dout);
    in->loss->l2norm_backward(in, dx, x, dout, M, D, eps);
}
static void lk_prob_stats(dx_backend *be, double out[DX_PROB_STATS], const float *P, int N, int K, float temp,
                          int from_logits) {
    LBEGIN(prob_stats);
    CK(P); /* out: host scalars by contract */
    in->loss->prob_stats(in, out, P, N, K, temp, from_logits);
}
static void lk_feature_stats(dx_backend *be, double out[DX_FEATURE_STATS], const float *x, int N, int D) {
    LBEGIN(feature_stats);
    CK(x);
    in->loss->feature_stats(in, out, x, N, D);
}
static double lk_patch_cosine(dx_backend *be, const float *x, int nimg, int P, int D, size_t stride) {
    LBEGIN(patch_cosine);
    CK(x);
    return in->loss->patch_cosine(in, x, nimg, P, D, stride);
}
static void lk_row_argmax(dx_backend *be, int32_t *idx, const float *P, int N, int K) {
    LBEGIN(row_argmax);
    CK_ALL(idx, P);
    in->loss->row_argmax(in, idx, P, N, K);
}

static const struct dx_loss_ops checked_loss = {
    .name = "checked",
#define LK_ENTRY(op) .op = lk_##op,
    DX_LOSS_OP_NAMES(LK_ENTRY)
#undef LK_ENTRY
};

int dx_backend_checking_requested(void) {
    const char *e = getenv("DINOX_CHECK_DEVICE_POINTERS");
    return e && !strcmp(e, "1");
}

dx_status dx_backend_checked_wrap(dx_backend **bep, dx_err *err) {
    dx_backend *inner = *bep;
    dx_backend *be = calloc(1, sizeof *be);
    checked_state *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return dx_fail(err, DX_ENOMEM, "checked backend");
    }
    pthread_mutex_init(&c->mu, NULL);
    c->inner = inner;
    be->ops = &checked_ops;
    be->loss = &checked_loss;
    be->impl = c;
    be->nthreads = inner->nthreads;
    be->device = inner->device;
    be->precision = inner->precision;
    *bep = be;
    return DX_OK;
}
