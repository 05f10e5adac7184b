/* cpu_attention.c - float attention on strided q/k/v views with one
 * single-threaded sgemm per GEMM of each (image, head) pair.
 *
 * qkv[N,T,3,H,Dh]: the q, k, v matrices of pair (n,h) are [T,Dh] views with
 * leading dimension 3*H*Dh, so no transposing copies are made; out[N,T,H*Dh]
 * is written through a view with leading dimension H*Dh. Pairs are spread
 * over OpenMP threads; oneDNN runs sequentially inside the parallel region.
 * Backward: dV = P^T dO, dP = dO V^T, dS = P (dP - rowsum(dP P)),
 * dQ = scale dS K, dK = scale dS^T Q (all accumulated into dqkv).
 * Forward with att NULL (passes without backward): the probabilities are not
 * kept; each pair works through blocks of ROWS query rows in a [ROWS, T]
 * scratch, so memory no longer grows with N x H x T^2. */
#include <math.h>
#include <stdlib.h>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_math.h"

/* softmax of each of the rb rows of P[rb, T], in place */
static void softmax_rows(float *P, int rb, int T) {
    for (int i = 0; i < rb; i++) {
        float *p = P + (size_t)i * T;
        float mx = p[0];
#pragma omp simd reduction(max : mx)
        for (int j = 1; j < T; j++) mx = p[j] > mx ? p[j] : mx;
        float s = 0;
#pragma omp simd reduction(+ : s)
        for (int j = 0; j < T; j++) {
            float e = dx_cpu_expf(p[j] - mx);
            p[j] = e;
            s += e;
        }
        float inv = 1.0f / s;
#pragma omp simd
        for (int j = 0; j < T; j++) p[j] *= inv;
    }
}

void dx_cpu_attention_forward_gemm(float *out, float *att, const float *qkv, int N, int T, int H,
                                   int Dh, float scale) {
    const int rs = 3 * H * Dh, os = H * Dh;
    enum { ROWS = 64, STACK = 8192 };
#pragma omp parallel for schedule(dynamic, 1) if ((size_t)N * H * T * T * Dh > 65536)
    for (int nh = 0; nh < N * H; nh++) {
        const int n = nh / H, h = nh % H;
        const float *q0 = qkv + (size_t)n * T * rs + (size_t)h * Dh, *k = q0 + os, *v = q0 + 2 * os;
        float *o0 = out + (size_t)n * T * os + (size_t)h * Dh;
        float stack[STACK];
        float *heap = NULL, *P;
        int rows;
        if (att) { /* the whole [T,T] block, kept for backward */
            P = att + (size_t)nh * T * T;
            rows = T;
        } else if ((heap = malloc(sizeof(float) * ROWS * (size_t)T))) {
            P = heap;
            rows = ROWS;
        } else { /* no memory for the scratch: as many rows as 32 KB of stack hold */
            P = stack;
            rows = STACK / T;
            if (rows < 1) { /* T > 8192 and no memory: NaN, which the step's guard reports */
                for (int i = 0; i < T; i++)
                    for (int j = 0; j < Dh; j++) o0[(size_t)i * os + j] = NAN;
                continue;
            }
        }
        for (int r0 = 0; r0 < T; r0 += rows) {
            const int rb = T - r0 < rows ? T - r0 : rows;
            /* S = scale q k^T for query rows r0..r0+rb, softmax, O = P v */
            dx_cpu_sgemm(0, 1, rb, T, Dh, scale, q0 + (size_t)r0 * rs, rs, k, rs, 0.0f, P, T, 1, 0, 0, 0);
            softmax_rows(P, rb, T);
            dx_cpu_sgemm(0, 0, rb, Dh, T, 1.0f, P, T, v, rs, 0.0f, o0 + (size_t)r0 * os, os, 1, 0, 0, 0);
        }
        free(heap);
    }
}

void dx_cpu_attention_backward_gemm(float *dqkv, const float *dout, const float *qkv,
                                    const float *att, int N, int T, int H, int Dh, float scale) {
    const int rs = 3 * H * Dh, os = H * Dh;
#pragma omp parallel if ((size_t)N * H * T * T * Dh > 65536)
    {
        float *dS = malloc(sizeof(float) * (size_t)T * T); /* dP then dS, [T,T] */
#pragma omp for schedule(dynamic, 1)
        for (int nh = 0; nh < N * H; nh++) {
            int n = nh / H, h = nh % H;
            const float *q = qkv + (size_t)n * T * rs + (size_t)h * Dh;
            const float *k = q + os, *v = q + 2 * os;
            float *dq = dqkv + (size_t)n * T * rs + (size_t)h * Dh;
            float *dk = dq + os, *dv = dq + 2 * os;
            const float *go = dout + (size_t)n * T * os + (size_t)h * Dh;
            const float *P = att + (size_t)nh * T * T;
            dx_cpu_sgemm(1, 0, T, Dh, T, 1.0f, P, T, go, os, 1.0f, dv, rs, 1, 0, 0, 0);
            dx_cpu_sgemm(0, 1, T, T, Dh, 1.0f, go, os, v, rs, 0.0f, dS, T, 1, 0, 0, 0);
            for (int i = 0; i < T; i++) {
                const float *p = P + (size_t)i * T;
                float *d = dS + (size_t)i * T;
                float dot = 0;
#pragma omp simd reduction(+ : dot)
                for (int j = 0; j < T; j++) dot += d[j] * p[j];
#pragma omp simd
                for (int j = 0; j < T; j++) d[j] = p[j] * (d[j] - dot);
            }
            dx_cpu_sgemm(0, 0, T, Dh, T, scale, dS, T, k, rs, 1.0f, dq, rs, 1, 0, 0, 0);
            dx_cpu_sgemm(1, 0, T, Dh, T, scale, dS, T, q, rs, 1.0f, dk, rs, 1, 0, 0, 0);
        }
        free(dS);
    }
}
