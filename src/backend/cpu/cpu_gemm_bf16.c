/* cpu_gemm_bf16.c - the mixed-precision GEMM of the bf16 policy: A and B
 * rounded to bf16 (round to nearest even), products accumulated in fp32 by
 * oneDNN's bf16 matmul (AVX-512 BF16 / AMX where the CPU has them, emulated
 * otherwise), C fp32: C = alpha op(A) op(B) + beta C, the contract of gemm.
 *
 * oneDNN 2.6 has no BLAS-style bf16 call, so one matmul primitive is created
 * per shape (M, N, K, transposes, leading dimensions, alpha, beta) and kept in
 * a small cache: a training step uses a few dozen shapes, all of them again
 * every step. The bf16 copies of A and B go to scratch that grows as needed. */
#include <oneapi/dnnl/dnnl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "core/dx_bf16.h"
#include "core/dx_log.h"

#define CACHE 192

typedef struct {
    int ta, tb, M, N, K, lda, ldb, ldc;
    float alpha, beta;
    dnnl_primitive_t prim;
    dnnl_memory_t mA, mB, mC;
    uint64_t used;
} entry;

struct dx_cpu_bf16 {
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    entry e[CACHE];
    int n;
    uint64_t tick;
    uint16_t *a, *b; /* bf16 scratch */
    size_t na, nb;
};

dx_cpu_bf16 *dx_cpu_bf16_create(void) {
    dx_cpu_bf16 *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (dnnl_engine_create(&s->eng, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&s->stream, s->eng, dnnl_stream_default_flags) != dnnl_success) {
        free(s);
        return NULL;
    }
    return s;
}

static void entry_free(entry *x) {
    if (x->prim) dnnl_primitive_destroy(x->prim);
    if (x->mA) dnnl_memory_destroy(x->mA);
    if (x->mB) dnnl_memory_destroy(x->mB);
    if (x->mC) dnnl_memory_destroy(x->mC);
    memset(x, 0, sizeof *x);
}

void dx_cpu_bf16_destroy(dx_cpu_bf16 *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) entry_free(&s->e[i]);
    dnnl_stream_destroy(s->stream);
    dnnl_engine_destroy(s->eng);
    free(s->a);
    free(s->b);
    free(s);
}

/* rows x cols of a row-major matrix with leading dimension ld -> dense bf16 */
static void convert(uint16_t *dst, const float *src, int rows, int cols, int ld) {
#pragma omp parallel for schedule(static) if ((size_t)rows * cols > 65536)
    for (int r = 0; r < rows; r++) {
        const float *s = src + (size_t)r * ld;
        uint16_t *d = dst + (size_t)r * cols;
        for (int c = 0; c < cols; c++) d[c] = dx_f32_to_bf16(s[c]);
    }
}

static int grow(uint16_t **p, size_t *n, size_t want) {
    if (want <= *n) return 0;
    uint16_t *q = realloc(*p, want * sizeof **p);
    if (!q) return -1;
    *p = q, *n = want;
    return 0;
}

static entry *lookup(dx_cpu_bf16 *s, int ta, int tb, int M, int N, int K, int ldc, float alpha, float beta) {
    /* the bf16 copies are dense: lda/ldb of the primitive follow from the shape */
    const int lda = ta ? M : K, ldb = tb ? K : N;
    for (int i = 0; i < s->n; i++) {
        entry *x = &s->e[i];
        if (x->ta == ta && x->tb == tb && x->M == M && x->N == N && x->K == K && x->ldc == ldc && x->alpha == alpha &&
            x->beta == beta) {
            x->used = ++s->tick;
            return x;
        }
    }
    entry *x;
    const int appended = s->n < CACHE;
    if (appended) x = &s->e[s->n++];
    else { /* evict the least recently used shape */
        x = &s->e[0];
        for (int i = 1; i < CACHE; i++)
            if (s->e[i].used < x->used) x = &s->e[i];
        entry_free(x);
    }
    dnnl_memory_desc_t a, b, c;
    dnnl_dims_t da = {M, K}, db = {K, N}, dc = {M, N};
    dnnl_dims_t sa = {ta ? 1 : lda, ta ? lda : 1}, sb = {tb ? 1 : ldb, tb ? ldb : 1}, sc = {ldc, 1};
    dnnl_memory_desc_init_by_strides(&a, 2, da, dnnl_bf16, sa);
    dnnl_memory_desc_init_by_strides(&b, 2, db, dnnl_bf16, sb);
    dnnl_memory_desc_init_by_strides(&c, 2, dc, dnnl_f32, sc);
    dnnl_matmul_desc_t md;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    int ok = dnnl_matmul_desc_init(&md, &a, &b, NULL, &c) == dnnl_success &&
             dnnl_primitive_attr_create(&attr) == dnnl_success;
    if (ok && alpha != 1.0f) ok = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha) == dnnl_success;
    if (ok && beta != 0.0f) {
        dnnl_post_ops_t po;
        ok = dnnl_post_ops_create(&po) == dnnl_success;
        if (ok) {
            ok = dnnl_post_ops_append_sum(po, beta) == dnnl_success && dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
            dnnl_post_ops_destroy(po);
        }
    }
    ok = ok && dnnl_primitive_desc_create(&pd, &md, attr, s->eng, NULL) == dnnl_success;
    if (attr) dnnl_primitive_attr_destroy(attr);
    ok = ok && dnnl_primitive_create(&x->prim, pd) == dnnl_success;
    if (pd) dnnl_primitive_desc_destroy(pd);
    ok = ok && dnnl_memory_create(&x->mA, &a, s->eng, DNNL_MEMORY_NONE) == dnnl_success &&
         dnnl_memory_create(&x->mB, &b, s->eng, DNNL_MEMORY_NONE) == dnnl_success &&
         dnnl_memory_create(&x->mC, &c, s->eng, DNNL_MEMORY_NONE) == dnnl_success;
    if (!ok) {
        entry_free(x); /* an emptied slot matches no shape (M = 0) */
        if (appended) s->n--;
        return NULL;
    }
    x->ta = ta, x->tb = tb, x->M = M, x->N = N, x->K = K, x->lda = lda, x->ldb = ldb, x->ldc = ldc;
    x->alpha = alpha, x->beta = beta, x->used = ++s->tick;
    return x;
}

/* op(A) and op(B) rounded to bf16 values (kept as float, same layout and
 * leading dimension), then the fp32 GEMM. 0 on success, -1 without memory. */
static int sgemm_rounded(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                         int ldb, float beta, float *C, int ldc) {
    const size_t ra = ta ? (size_t)K : (size_t)M, rb = tb ? (size_t)N : (size_t)K;
    float *a = malloc(ra * (size_t)lda * sizeof *a), *b = malloc(rb * (size_t)ldb * sizeof *b);
    if (!a || !b) {
        free(a), free(b);
        return -1;
    }
    const int ca = ta ? M : K, cb = tb ? K : N;
    for (size_t r = 0; r < ra; r++)
        for (int c = 0; c < ca; c++) a[r * lda + c] = dx_bf16_widen(dx_f32_to_bf16(A[r * lda + c]));
    for (size_t r = 0; r < rb; r++)
        for (int c = 0; c < cb; c++) b[r * ldb + c] = dx_bf16_widen(dx_f32_to_bf16(B[r * ldb + c]));
    dx_cpu_sgemm(ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, C, ldc, 1, 0, 0, 0);
    free(a), free(b);
    return 0;
}

void dx_cpu_gemm_bf16(dx_cpu_bf16 *s, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc, int batch, int64_t stride_a,
                      int64_t stride_b, int64_t stride_c) {
    if (M <= 0 || N <= 0) return;
    for (int i = 0; i < (batch > 1 ? batch : 1); i++) {
        const float *Ai = A + i * stride_a, *Bi = B + i * stride_b;
        float *Ci = C + i * stride_c;
        entry *x = K > 0 && s ? lookup(s, ta, tb, M, N, K, ldc, alpha, beta) : NULL;
        if (!x || grow(&s->a, &s->na, (size_t)M * K) || grow(&s->b, &s->nb, (size_t)K * N)) {
            /* K = 0, or no oneDNN bf16 matmul on this CPU (oneDNN 2.7 has none
             * without AVX-512): the fp32 GEMM of the bf16-rounded operands keeps
             * the contract - every product of two bf16 values is exact in fp32 */
            static int warned;
            if (K > 0 && !warned++)
                DX_WARN("no oneDNN bf16 matmul for %dx%dx%d on this CPU: bf16-rounded operands, fp32 GEMM", M, N, K);
            if (K > 0 && !sgemm_rounded(ta, tb, M, N, K, alpha, Ai, lda, Bi, ldb, beta, Ci, ldc)) continue;
            dx_cpu_sgemm(ta, tb, M, N, K, alpha, Ai, lda, Bi, ldb, beta, Ci, ldc, 1, 0, 0, 0);
            continue;
        }
        if (ta) convert(s->a, Ai, K, M, lda); /* stored [K, M] */
        else convert(s->a, Ai, M, K, lda);
        if (tb) convert(s->b, Bi, N, K, ldb); /* stored [N, K] */
        else convert(s->b, Bi, K, N, ldb);
        dnnl_memory_set_data_handle(x->mA, s->a);
        dnnl_memory_set_data_handle(x->mB, s->b);
        dnnl_memory_set_data_handle(x->mC, Ci);
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, x->mA}, {DNNL_ARG_WEIGHTS, x->mB}, {DNNL_ARG_DST, x->mC}};
        if (dnnl_primitive_execute(x->prim, s->stream, 3, args) != dnnl_success || dnnl_stream_wait(s->stream) != dnnl_success)
            DX_ERROR("oneDNN bf16 matmul failed (M=%d N=%d K=%d)", M, N, K);
    }
}
