/* cpu_attention.c - float attention on strided q/k/v views with one
 * single-threaded sgemm per GEMM of each (image, head) pair.
 *
 * qkv[N,T,3,H,Dh]: the q, k, v matrices of pair (n,h) are [T,Dh] views with
 * leading dimension 3*H*Dh, so no transposing copies are made; out[N,T,H*Dh]
 * is written through a view with leading dimension H*Dh. Pairs are spread
 * over OpenMP threads; oneDNN runs sequentially inside the parallel region.
 * Neither direction keeps a T x T matrix: each pair works through blocks of
 * query rows in [rows, T] scratch, so memory does not grow with N x H x T^2.
 * The forward writes each row's log-sum-exp (lse); backward recomputes the
 * block's probabilities from it, P = exp(scale q k^T - lse),
 * then dV += P^T dO, dP = dO V^T, dS = P (dP - D) with D_i = dO_i . O_i,
 * dQ += scale dS K, dK += scale dS^T Q. One thread owns a pair and walks its
 * blocks in order, so the sums do not depend on the thread count. */
#include <math.h>
#include <stdlib.h>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_math.h"

enum { ROWS = 64, STACK = 8192, BWD_FLOATS = 131072 };

/* query rows per backward block: all of them while two [rows, T] blocks stay
 * within 1 MB (the GEMMs over the block are then as large as without
 * recomputation), else fewer, at least 32 */
static int backward_rows(int T) {
    int r = BWD_FLOATS / (2 * T);
    if (r < 32) r = 32;
    return r < T ? r : T;
}

/* softmax of each of the rb rows of P[rb, T], in place; lse[i] (if given) = the
 * row's log-sum-exp */
static void softmax_rows(float *P, float *lse, int rb, int T) {
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
        if (lse) lse[i] = mx + logf(s);
    }
}

/* rows [T, Dh] of a strided view set to NaN: a pair whose scratch could not be
 * allocated, which the step's non-finite guard then reports */
static void nan_rows(float *x, int T, int Dh, int ld) {
    for (int i = 0; i < T; i++)
        for (int j = 0; j < Dh; j++) x[(size_t)i * ld + j] = NAN;
}

void dx_cpu_attention_forward_gemm(float *out, float *att, float *lse, const float *qkv, int N, int T, int H,
                                   int Dh, float scale) {
    const int rs = 3 * H * Dh, os = H * Dh;
#pragma omp parallel for schedule(dynamic, 1) if ((size_t)N * H * T * T * Dh > 65536)
    for (int nh = 0; nh < N * H; nh++) {
        const int n = nh / H, h = nh % H;
        const float *q0 = qkv + (size_t)n * T * rs + (size_t)h * Dh, *k = q0 + os, *v = q0 + 2 * os;
        float *o0 = out + (size_t)n * T * os + (size_t)h * Dh;
        float *l0 = lse ? lse + (size_t)nh * T : NULL;
        float stack[STACK];
        float *heap = NULL, *P;
        int rows;
        if (att) { /* the whole [T,T] block, asked for (attention maps) */
            P = att + (size_t)nh * T * T;
            rows = T;
        } else if ((heap = malloc(sizeof(float) * ROWS * (size_t)T))) {
            P = heap;
            rows = ROWS;
        } else { /* no memory for the scratch: as many rows as 32 KB of stack hold */
            P = stack;
            rows = STACK / T;
            if (rows < 1) { /* T > 8192 and no memory */
                nan_rows(o0, T, Dh, os);
                continue;
            }
        }
        for (int r0 = 0; r0 < T; r0 += rows) {
            const int rb = T - r0 < rows ? T - r0 : rows;
            float *pb = att ? P + (size_t)r0 * T : P;
            /* S = scale q k^T for query rows r0..r0+rb, softmax, O = P v */
            dx_cpu_sgemm(0, 1, rb, T, Dh, scale, q0 + (size_t)r0 * rs, rs, k, rs, 0.0f, pb, T, 1, 0, 0, 0);
            softmax_rows(pb, l0 ? l0 + r0 : NULL, rb, T);
            dx_cpu_sgemm(0, 0, rb, Dh, T, 1.0f, pb, T, v, rs, 0.0f, o0 + (size_t)r0 * os, os, 1, 0, 0, 0);
        }
        free(heap);
    }
}

void dx_cpu_attention_backward_gemm(float *dqkv, const float *dout, const float *qkv, const float *out,
                                    const float *lse, int N, int T, int H, int Dh, float scale) {
    const int rs = 3 * H * Dh, os = H * Dh;
#pragma omp parallel if ((size_t)N * H * T * T * Dh > 65536)
    {
        const int rows = backward_rows(T);
        float *P = malloc(sizeof(float) * 2 * rows * (size_t)T), *dS = P ? P + rows * (size_t)T : NULL;
#pragma omp for schedule(dynamic, 1)
        for (int nh = 0; nh < N * H; nh++) {
            const int n = nh / H, h = nh % H;
            const float *q = qkv + (size_t)n * T * rs + (size_t)h * Dh, *k = q + os, *v = q + 2 * os;
            float *dq = dqkv + (size_t)n * T * rs + (size_t)h * Dh, *dk = dq + os, *dv = dq + 2 * os;
            const float *go = dout + (size_t)n * T * os + (size_t)h * Dh;
            const float *o = out + (size_t)n * T * os + (size_t)h * Dh, *l0 = lse + (size_t)nh * T;
            if (!P) {
                nan_rows(dq, T, Dh, rs);
                continue;
            }
            for (int r0 = 0; r0 < T; r0 += rows) {
                const int rb = T - r0 < rows ? T - r0 : rows;
                const float *qb = q + (size_t)r0 * rs, *gb = go + (size_t)r0 * os;
                dx_cpu_sgemm(0, 1, rb, T, Dh, scale, qb, rs, k, rs, 0.0f, P, T, 1, 0, 0, 0);
                for (int i = 0; i < rb; i++) {
                    float *p = P + (size_t)i * T;
                    const float li = l0[r0 + i];
#pragma omp simd
                    for (int j = 0; j < T; j++) p[j] = dx_cpu_expf(p[j] - li);
                }
                dx_cpu_sgemm(1, 0, T, Dh, rb, 1.0f, P, T, gb, os, 1.0f, dv, rs, 1, 0, 0, 0);
                dx_cpu_sgemm(0, 1, rb, T, Dh, 1.0f, gb, os, v, rs, 0.0f, dS, T, 1, 0, 0, 0);
                for (int i = 0; i < rb; i++) {
                    const float *p = P + (size_t)i * T, *gi = gb + (size_t)i * os, *oi = o + (size_t)(r0 + i) * os;
                    float *d = dS + (size_t)i * T;
                    float dot = 0;
#pragma omp simd reduction(+ : dot)
                    for (int e = 0; e < Dh; e++) dot += gi[e] * oi[e];
#pragma omp simd
                    for (int j = 0; j < T; j++) d[j] = p[j] * (d[j] - dot);
                }
                dx_cpu_sgemm(0, 0, rb, Dh, T, scale, dS, T, k, rs, 1.0f, dq + (size_t)r0 * rs, rs, 1, 0, 0, 0);
                dx_cpu_sgemm(1, 0, T, Dh, rb, scale, dS, T, qb, rs, 1.0f, dk, rs, 1, 0, 0, 0);
            }
        }
        free(P);
    }
}
