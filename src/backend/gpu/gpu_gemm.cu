/* gpu_gemm.cu - the GEMM entry points of the GPU backend.
 *
 * The table's GEMM is row-major; the BLAS libraries are column-major. A
 * row-major C[M,N] is the column-major C^T[N,M] with the same leading
 * dimension, and C^T = op(B)^T op(A)^T, so every call swaps A and B and M
 * and N and keeps the transposition flags: no copies.
 *  - gemm (fp32): cublasSgemmStridedBatched (hipblasSgemmStridedBatched on
 *    AMD: hipBLASLt's fp32 path is measured far slower on gfx1151). cuBLAS's
 *    default math mode is plain fp32 (no TF32), which the fp32 policy needs.
 *  - gemm_bf16: A and B rounded to bf16 (round to nearest even, the CPU's
 *    rounding) into scratch, then cuBLASLt / hipBLASLt with bf16 inputs, fp32
 *    accumulation and an fp32 C. The descriptor, layouts and algorithm of a
 *    shape are found once and kept (gpu_lt_plan): a training step repeats the
 *    same few dozen shapes, and the heuristic query costs tens of
 *    microseconds per call, which small models would spend more on than on
 *    the GEMM. */
#include "backend/gpu/gpu_common.cuh"

#include <stdlib.h>
#include <string.h>

static cublasOperation_t blas_op(int t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; }

/* K = 0: C = beta C (0 where beta = 0, NaN or not), as the CPU's GEMM does; the
 * BLAS libraries reject a leading dimension of 0 that such a call may carry */
__global__ void k_gemm_k0(float *C, int M, int N, int ldc, int64_t sc, int batch, float beta) {
    const size_t n = (size_t)batch * M * N;
    GPU_FOR(i, n) {
        const size_t b = i / ((size_t)M * N), r = i / N % M, c = i % N;
        float *p = C + (size_t)b * sc + r * (size_t)ldc + c;
        *p = beta == 0.0f ? 0.0f : beta * *p;
    }
}
static void gemm_k0(dx_backend *be, float *C, int M, int N, int ldc, int64_t sc, int batch, float beta) {
    const size_t n = (size_t)batch * M * N;
    k_gemm_k0<<<gpu_blocks(n), DX_GPU_BLOCK, 0, gpu_stream(be)>>>(C, M, N, ldc, sc, batch, beta);
    GPU_LAUNCHED(be);
}

void gpu_gemm(dx_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc, int batch, int64_t sa, int64_t sb, int64_t sc) {
    if (M <= 0 || N <= 0 || batch <= 0) return;
    gpu_state *st = gpu_st(be);
    if (batch == 1) sa = sb = sc = 0;
    if (K <= 0) {
        gemm_k0(be, C, M, N, ldc, sc, batch, beta);
        return;
    }
    (void)gpu_stream(be); /* opens the busy burst: cuBLAS queues on the handle's stream, the same one */
    cublasStatus_t s = cublasSgemmStridedBatched(st->blas, blas_op(tb), blas_op(ta), N, M, K, &alpha, B, ldb, sb, A,
                                                 lda, sa, &beta, C, ldc, sc, batch);
    if (s != CUBLAS_STATUS_SUCCESS) gpu_note_failure(be, "sgemm", "BLAS call failed");
}

/* dst[i] = bf16(src[i]) for the n elements a strided operand spans */
__global__ void k_round_bf16(__nv_bfloat16 *dst, const float *src, size_t n) {
    GPU_FOR(i, n) ((uint16_t *)dst)[i] = gpu_f32_to_bf16(src[i]);
}

/* elements from the first to one past the last of a [rows, cols] operand
 * with leading dimension ld, batch matrices `stride` apart */
static size_t span(int rows, int cols, int ld, int batch, int64_t stride) {
    if (rows <= 0 || cols <= 0) return 0;
    return (size_t)(batch - 1) * (size_t)stride + (size_t)(rows - 1) * ld + cols;
}

static cublasLtMatrixLayout_t lt_layout(cudaDataType_t type, int rows, int cols, int ld, int batch, int64_t stride) {
    cublasLtMatrixLayout_t l = NULL;
    if (cublasLtMatrixLayoutCreate(&l, type, rows, cols, ld) != CUBLAS_STATUS_SUCCESS) return NULL;
    if (batch > 1) {
        cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof batch);
        cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride);
    }
    return l;
}

/* A bf16 GEMM shape's cuBLASLt objects, made on first use. The key is everything
 * the descriptor, the layouts and the heuristic see: transpositions, sizes,
 * leading dimensions, batch and strides, and C's alignment. */
#define GPU_LT_KEY 13
typedef struct gpu_lt_plan {
    int64_t key[GPU_LT_KEY];
    int used, ok;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulHeuristicResult_t heur;
} gpu_lt_plan;
#define GPU_LT_PLANS 512 /* open addressing; past that, shapes are planned per call */

static void lt_plan_release(gpu_lt_plan *p) {
    if (p->lc) cublasLtMatrixLayoutDestroy(p->lc);
    if (p->lb) cublasLtMatrixLayoutDestroy(p->lb);
    if (p->la) cublasLtMatrixLayoutDestroy(p->la);
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    p->op = NULL, p->la = p->lb = p->lc = NULL;
}

void gpu_gemm_free_plans(gpu_state *st) {
    gpu_lt_plan *t = (gpu_lt_plan *)st->lt_plans;
    if (!t) return;
    for (int i = 0; i < GPU_LT_PLANS; i++)
        if (t[i].used) lt_plan_release(&t[i]);
    free(t);
    st->lt_plans = NULL;
}

/* p's objects for the key's shape: NULL, or what could not be made */
static const char *lt_plan_make(gpu_state *st, gpu_lt_plan *p, int ta, int tb, int M, int N, int K, int lda, int ldb,
                                int ldc, int batch, int64_t sa, int64_t sb, int64_t sc, uint32_t c_align) {
    /* column-major call: C^T[N,M] = op(B)^T[N,K] op(A)^T[K,M]; the first
     * operand is the stored B seen column-major ([N,K] when tb = 0, ld ldb) */
    cublasOperation_t opa = blas_op(tb), opb = blas_op(ta);
    if (cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS) {
        p->op = NULL;
        return "descriptor";
    }
    cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa);
    cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb);
    p->la = lt_layout(CUDA_R_16BF, tb ? K : N, tb ? N : K, ldb, batch, sb);
    p->lb = lt_layout(CUDA_R_16BF, ta ? M : K, ta ? K : M, lda, batch, sa);
    p->lc = lt_layout(CUDA_R_32F, N, M, ldc, batch, sc);
    if (!p->la || !p->lb || !p->lc) return "layout";
    cublasLtMatmulPreference_t pref = NULL;
    if (cublasLtMatmulPreferenceCreate(&pref) != CUBLAS_STATUS_SUCCESS) return "preference";
    size_t ws = st->lt_workspace_bytes;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    DX_LT_PREF_C_ALIGNMENT(pref, c_align);
    int found = 0;
    const cublasStatus_t hs =
        cublasLtMatmulAlgoGetHeuristic(st->lt, p->op, p->la, p->lb, p->lc, p->lc, pref, 1, &p->heur, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (hs != CUBLAS_STATUS_SUCCESS || found < 1) return "no algorithm for this shape";
    return NULL;
}

void gpu_gemm_bf16(dx_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc, int batch, int64_t sa, int64_t sb,
                   int64_t sc) {
    if (M <= 0 || N <= 0 || batch <= 0) return;
    if (batch == 1) sa = sb = sc = 0;
    if (K <= 0) {
        gemm_k0(be, C, M, N, ldc, sc, batch, beta);
        return;
    }
    gpu_state *st = gpu_st(be);
    /* row-major operands as stored: A is [M,K] (ta = 0) or [K,M]; B is [K,N] or [N,K] */
    size_t na = span(ta ? K : M, ta ? M : K, lda, batch, sa), nb = span(tb ? N : K, tb ? K : N, ldb, batch, sb);
    __nv_bfloat16 *a16 = (__nv_bfloat16 *)gpu_scratch(be, GPU_SCRATCH_BF16_A, na * sizeof(uint16_t));
    __nv_bfloat16 *b16 = (__nv_bfloat16 *)gpu_scratch(be, GPU_SCRATCH_BF16_B, nb * sizeof(uint16_t));
    if (!a16 || !b16) return;
    k_round_bf16<<<gpu_blocks(na), DX_GPU_BLOCK, 0, gpu_stream(be)>>>(a16, A, na);
    k_round_bf16<<<gpu_blocks(nb), DX_GPU_BLOCK, 0, gpu_stream(be)>>>(b16, B, nb);
    GPU_LAUNCHED(be);

    /* C's real alignment (and of its batch stride): the largest power of two, at most 256 B */
    const uintptr_t cu = (uintptr_t)C | (batch > 1 ? (uintptr_t)(sc * (int64_t)sizeof(float)) : 0) | 256;
    const uint32_t c_align = (uint32_t)(cu & (~cu + 1));
    const int64_t key[GPU_LT_KEY] = {ta, tb, M, N, K, lda, ldb, ldc, batch, sa, sb, sc, c_align};
    if (!st->lt_plans) st->lt_plans = calloc(GPU_LT_PLANS, sizeof(gpu_lt_plan));
    gpu_lt_plan *t = (gpu_lt_plan *)st->lt_plans, local, *p = NULL;
    memset(&local, 0, sizeof local);
    if (t) {
        uint64_t h = 1469598103934665603ull; /* FNV-1a over the key */
        for (int i = 0; i < GPU_LT_KEY; i++) h = (h ^ (uint64_t)key[i]) * 1099511628211ull;
        for (int i = 0; i < GPU_LT_PLANS && !p; i++) {
            gpu_lt_plan *q = &t[(h + (uint64_t)i) % GPU_LT_PLANS];
            if (!q->used || !memcmp(q->key, key, sizeof key)) p = q;
        }
    }
    const char *fail = NULL;
    const int cached = p != NULL;
    if (!p) p = &local; /* the table is full: plan this call alone */
    if (!p->used) {
        memcpy(p->key, key, sizeof key);
        p->used = 1;
        fail = lt_plan_make(st, p, ta, tb, M, N, K, lda, ldb, ldc, batch, sa, sb, sc, c_align);
        p->ok = !fail;
        if (fail) lt_plan_release(p); /* kept as a failed shape: reported again, not retried */
    } else if (!p->ok) {
        fail = "no algorithm for this shape (planned before)";
    }
    if (!fail && cublasLtMatmul(st->lt, p->op, &alpha, b16, p->la, a16, p->lb, &beta, C, p->lc, C, p->lc,
                                &p->heur.algo, st->lt_workspace, st->lt_workspace_bytes,
                                gpu_stream(be)) != CUBLAS_STATUS_SUCCESS)
        fail = "matmul";
    if (fail) gpu_note_failure(be, "bf16 GEMM (BLASLt)", fail);
    if (!cached) lt_plan_release(p);
}
