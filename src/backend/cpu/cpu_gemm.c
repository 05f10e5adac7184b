/* cpu_gemm.c - the CPU GEMM: oneDNN dnnl_sgemm (row-major), plus a naive
 * double reference used by the f64 test path.
 *
 * oneDNN 2.6 picks its AVX-512 brgemm kernels from CPUID and is unaffected by
 * OPENBLAS_CORETYPE; bench/bench_gemm.c measures it against OpenBLAS and the
 * matmul primitive (figures in docs/backend.md). dnnl_sgemm threads with
 * OpenMP and runs single-threaded when called inside a parallel region, which
 * the batched form and the attention kernels rely on. */
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdint.h>

#include "backend/cpu/cpu_kernels.h"
#include "core/dx_log.h"

static void sgemm1(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* C = beta C (oneDNN rejects K = 0 on some paths) */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
        return;
    }
    dnnl_status_t st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb,
                                  beta, C, ldc);
    if (st != dnnl_success) DX_ERROR("dnnl_sgemm failed (status %d, M=%d N=%d K=%d)", (int)st, M, N, K);
}

void dx_cpu_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc, int batch,
                  int64_t stride_a, int64_t stride_b, int64_t stride_c) {
    if (batch <= 1) {
        sgemm1(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* many small matrices: one per thread; few large ones: each threaded */
    double flops = 2.0 * M * N * K;
    if (flops < 8e6 && batch >= omp_get_max_threads()) {
#pragma omp parallel for schedule(dynamic, 1)
        for (int i = 0; i < batch; i++)
            sgemm1(ta, tb, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, beta,
                   C + i * stride_c, ldc);
    } else {
        for (int i = 0; i < batch; i++)
            sgemm1(ta, tb, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, beta,
                   C + i * stride_c, ldc);
    }
}

void dx_cpu_dgemm_ref(int ta, int tb, int M, int N, int K, double alpha, const double *A, int lda,
                      const double *B, int ldb, double beta, double *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += a * b;
            }
            C[(size_t)i * ldc + j] = alpha * s + (beta == 0 ? 0 : beta * C[(size_t)i * ldc + j]);
        }
}
