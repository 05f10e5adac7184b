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
 *    accumulation and an fp32 C. Descriptors are made per call (a few
 *    microseconds; a cache keyed by shape is the next step). */
#include "backend/gpu/gpu_common.cuh"

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

    /* column-major call: C^T[N,M] = op(B)^T[N,K] op(A)^T[K,M]; the first
     * operand is the stored B seen column-major ([N,K] when tb = 0, ld ldb) */
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    cublasOperation_t opa = blas_op(tb), opb = blas_op(ta);
    const char *fail = NULL;
    if (cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS) fail = "descriptor";
    else {
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa);
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb);
        la = lt_layout(CUDA_R_16BF, tb ? K : N, tb ? N : K, ldb, batch, sb);
        lb = lt_layout(CUDA_R_16BF, ta ? M : K, ta ? K : M, lda, batch, sa);
        lc = lt_layout(CUDA_R_32F, N, M, ldc, batch, sc);
        if (!la || !lb || !lc) fail = "layout";
    }
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    if (!fail) {
        if (cublasLtMatmulPreferenceCreate(&pref) != CUBLAS_STATUS_SUCCESS) fail = "preference";
        else {
            size_t ws = st->lt_workspace_bytes;
            cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
            /* C's real alignment (and of its batch stride): the largest power of two, at most 256 B */
            uintptr_t cu = (uintptr_t)C | (batch > 1 ? (uintptr_t)(sc * (int64_t)sizeof(float)) : 0) | 256;
            DX_LT_PREF_C_ALIGNMENT(pref, (uint32_t)(cu & (~cu + 1)));
            if (cublasLtMatmulAlgoGetHeuristic(st->lt, op, la, lb, lc, lc, pref, 1, &heur, &found) !=
                    CUBLAS_STATUS_SUCCESS ||
                found < 1)
                fail = "no algorithm for this shape";
        }
    }
    if (!fail && cublasLtMatmul(st->lt, op, &alpha, b16, la, a16, lb, &beta, C, lc, C, lc, &heur.algo,
                                st->lt_workspace, st->lt_workspace_bytes, gpu_stream(be)) != CUBLAS_STATUS_SUCCESS)
        fail = "matmul";
    if (fail) gpu_note_failure(be, "bf16 GEMM (BLASLt)", fail);
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
}
