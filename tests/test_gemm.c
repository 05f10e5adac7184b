/* test_gemm.c - the CPU backend's GEMM against naive double loops: all four
 * transpose combinations, padded leading dimensions, alpha/beta (including
 * beta = 0 over a NaN-filled C, which must not propagate), the batched
 * strided form, and one ViT-sized product that runs multi-threaded. Every
 * operand is backend memory (alloc + upload; the result is downloaded), so the
 * program runs unchanged against any backend. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/dx_backend.h"
#include "core/dx_rng.h"
#include "dx_test.h"

static dx_rng rng;

static void fill(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = (float)dx_rng_normal(&rng);
}

/* backend copy of n host floats */
static float *dev(dx_backend *be, const float *h, size_t n) {
    float *d = be->ops->alloc(be, sizeof(float) * (n ? n : 1));
    if (!d) abort();
    be->ops->upload(be, d, h, sizeof(float) * n);
    return d;
}

/* reference: C = alpha op(A) op(B) + beta C, accumulated in double */
static void ref_gemm(int ta, int tb, int M, int N, int K, double alpha, const float *A, int lda,
                     const float *B, int ldb, double beta, const float *C0, double *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += a * b;
            }
            C[(size_t)i * ldc + j] = alpha * s + (beta != 0 ? beta * C0[(size_t)i * ldc + j] : 0);
        }
}

/* max |got - ref| / (sum_k |a||b| scale + tiny): error relative to the size of the terms */
static double check_one(dx_backend *be, int ta, int tb, int M, int N, int K, float alpha, float beta,
                        int pad, int batch, int nan_c) {
    int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    size_t sa = (size_t)(ta ? K : M) * lda + 3, sb = (size_t)(tb ? N : K) * ldb + 5,
           sc = (size_t)M * ldc + 7;
    float *A = malloc(sizeof(float) * sa * batch), *B = malloc(sizeof(float) * sb * batch);
    float *C = malloc(sizeof(float) * sc * batch), *C0 = malloc(sizeof(float) * sc * batch);
    double *R = malloc(sizeof(double) * sc);
    fill(A, sa * batch);
    fill(B, sb * batch);
    fill(C, sc * batch);
    if (nan_c)
        for (size_t i = 0; i < sc * batch; i++) C[i] = NAN;
    memcpy(C0, C, sizeof(float) * sc * batch);
    /* the op runs on backend memory: upload, gemm, download */
    float *dA = dev(be, A, sa * batch), *dB = dev(be, B, sb * batch), *dC = dev(be, C, sc * batch);
    be->ops->gemm(be, ta, tb, M, N, K, alpha, dA, lda, dB, ldb, beta, dC, ldc, batch, (int64_t)sa,
                  (int64_t)sb, (int64_t)sc);
    be->ops->download(be, C, dC, sizeof(float) * sc * batch);
    be->ops->free(be, dA), be->ops->free(be, dB), be->ops->free(be, dC);
    double worst = 0;
    for (int bi = 0; bi < batch; bi++) {
        const float *Ab = A + bi * sa, *Bb = B + bi * sb, *Cb = C + bi * sc, *C0b = C0 + bi * sc;
        ref_gemm(ta, tb, M, N, K, alpha, Ab, lda, Bb, ldb, beta, C0b, R, ldc);
        for (int i = 0; i < M; i++) {
            for (int j = 0; j < N; j++) {
                double e = fabs(Cb[(size_t)i * ldc + j] - R[(size_t)i * ldc + j]) / (sqrt((double)K) + 1);
                if (isnan(Cb[(size_t)i * ldc + j])) e = INFINITY;
                if (e > worst) worst = e;
            }
            /* padding columns of C are untouched */
            for (int j = N; j < ldc && i < M; j++)
                if (memcmp(&Cb[(size_t)i * ldc + j], &C0b[(size_t)i * ldc + j], sizeof(float)) != 0)
                    worst = INFINITY;
        }
    }
    free(A); free(B); free(C); free(C0); free(R);
    return worst;
}

int main(void) {
    dx_err err = {0};
    dx_backend *be = NULL;
    CHECK(dx_backend_create(&be, &(dx_backend_params){.nthreads = 2}, &err) == DX_OK, "create: %s", err.msg);
    if (!be) return dx_test_summary();
    dx_rng_init(&rng, 7, DX_RNG_TEST, 2, 0);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            double e;
            e = check_one(be, ta, tb, 37, 29, 53, 1.0f, 0.0f, 0, 1, 1);
            CHECK(e < 1e-5, "ta=%d tb=%d plain, beta=0 over NaN C: err %.3g", ta, tb, e);
            e = check_one(be, ta, tb, 37, 29, 53, -0.75f, 0.5f, 11, 1, 0);
            CHECK(e < 1e-5, "ta=%d tb=%d padded ld, alpha=-0.75 beta=0.5: err %.3g", ta, tb, e);
            e = check_one(be, ta, tb, 17, 23, 9, 0.3f, 1.0f, 4, 6, 0);
            CHECK(e < 1e-5, "ta=%d tb=%d batched x6 strided, beta=1: err %.3g", ta, tb, e);
            e = check_one(be, ta, tb, 201, 64, 201, 1.0f, 0.0f, 0, 12, 0);
            CHECK(e < 1e-5, "ta=%d tb=%d attention-shaped batch x12: err %.3g", ta, tb, e);
            e = check_one(be, ta, tb, 1, 1, 1, 2.0f, 0.0f, 0, 1, 0);
            CHECK(e < 1e-6, "ta=%d tb=%d 1x1x1: err %.3g", ta, tb, e);
        }
    /* one ViT-sized product (threaded path) */
    double e = check_one(be, 0, 1, 402, 384, 384, 1.0f, 0.0f, 0, 1, 0);
    CHECK(e < 1e-5, "402x384x384 (x W^T): err %.3g", e);
    e = check_one(be, 1, 0, 384, 384, 402, 1.0f, 1.0f, 0, 1, 0);
    CHECK(e < 1e-5, "dW = dY^T X accumulate: err %.3g", e);
    /* K = 0: C = beta C */
    {
        float A[4] = {0}, B[4] = {0}, C[4] = {1, 2, 3, 4};
        float *dA = dev(be, A, 4), *dB = dev(be, B, 4), *dC = dev(be, C, 4);
        be->ops->gemm(be, 0, 0, 2, 2, 0, 1.0f, dA, 1, dB, 2, 0.5f, dC, 2, 1, 0, 0, 0);
        be->ops->download(be, C, dC, sizeof C);
        be->ops->free(be, dA), be->ops->free(be, dB), be->ops->free(be, dC);
        CHECK(C[0] == 0.5f && C[3] == 2.0f, "K = 0 scales C by beta");
    }
    dx_backend_destroy(be);
    return dx_test_summary();
}
