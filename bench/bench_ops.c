/* bench_ops.c - throughput of the CPU backend's non-GEMM ops on ViT-S/16
 * shapes: 2 global 224-px crops x batch 8 = 16 images, T = 1 + 4 + 196 = 201
 * tokens, M = 16*201 = 3216 rows, C = 384, H = 6, Dh = 64, MLP hidden 1536.
 * Prints ms per call (min and median of 9 after 2 warm-ups) and GB/s of compulsory
 * traffic (each input read once, each output written once; += counts a read
 * and a write) or GFLOP/s for attention (fwd 4 T^2 Dh per (image, head),
 * bwd 8 T^2 Dh). Attention is shown for the op the backend uses (per-head
 * single-threaded sgemm) and for the loop kernel (cpu_kernels.inc), at
 * T = 201 and at T = 41 (96-px local crops, 64 images).
 * Usage: bench_ops [threads]  (default: OpenMP's). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/cpu_kernels.h"
#include "backend/dx_backend.h"
#include "core/dx_rng.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}
static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* best (minimum) and median wall time of 9 calls after 2 warm-ups, and the
 * median CPU time. On a shared, oversubscribed machine the minimum is the
 * figure closest to the uncontended cost; rates use it. */
#define TIME(label, bytes, flops, stmt)                                                        \
    do {                                                                                      \
        double t_[9], c_[9];                                                                  \
        stmt;                                                                                 \
        stmt;                                                                                 \
        for (int r_ = 0; r_ < 9; r_++) {                                                      \
            double t0_ = now(), c0_ = cpu_now();                                              \
            stmt;                                                                             \
            t_[r_] = now() - t0_;                                                             \
            c_[r_] = cpu_now() - c0_;                                                         \
        }                                                                                     \
        qsort(t_, 9, sizeof(double), cmpd);                                                   \
        qsort(c_, 9, sizeof(double), cmpd);                                                   \
        double s_ = t_[0];                                                                    \
        printf("%-36s min %8.3f ms  median %8.3f ms  cpu %8.3f ms  ", label, s_ * 1e3,        \
               t_[4] * 1e3, c_[4] * 1e3);                                                     \
        if ((flops) > 0)                                                                      \
            printf("%7.1f GFLOP/s\n", (flops) / s_ * 1e-9);                                   \
        else                                                                                  \
            printf("%7.1f GB/s\n", (bytes) / s_ * 1e-9);                                      \
    } while (0)

static float *buf(dx_backend *be, size_t n, dx_rng *r) {
    float *p = be->ops->alloc(be, n * sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) p[i] = (float)(0.5 * dx_rng_normal(r));
    return p;
}

int main(int argc, char **argv) {
    int nth = argc > 1 ? atoi(argv[1]) : 0;
    dx_backend *be;
    dx_err err;
    if (dx_backend_create(&be, &(dx_backend_params){.nthreads = nth}, &err) != DX_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    dx_rng r;
    dx_rng_init(&r, 1, DX_RNG_TEST, 0, 0);
    const int N = 16, T = 201, C = 384, H = 6, Dh = 64, Fh = 1536, R = 4, P = 196;
    const size_t M = (size_t)N * T;
    const double fb = sizeof(float);
    printf("bench_ops: threads %d, N %d T %d C %d H %d Dh %d (M = %zu)\n", omp_get_max_threads(), N, T, C,
           H, Dh, M);

    float *x = buf(be, M * C, &r), *y = buf(be, M * C, &r), *dy = buf(be, M * C, &r);
    float *dx = buf(be, M * C, &r), *w = buf(be, C, &r), *b = buf(be, C, &r);
    float *dw = buf(be, C, &r), *db = buf(be, C, &r), *mean = buf(be, M, &r), *rstd = buf(be, M, &r);
    float *h = buf(be, M * Fh, &r), *ho = buf(be, M * Fh, &r), *dh = buf(be, M * Fh, &r);
    float *dho = buf(be, M * Fh, &r);
    float *qkv = buf(be, M * 3 * C, &r), *dqkv = buf(be, M * 3 * C, &r), *bq = buf(be, 3 * C, &r);
    float *mask = buf(be, 3 * C, &r);
    float *att = buf(be, (size_t)N * H * T * T, &r), *ao = buf(be, M * C, &r);

    be->ops->layernorm_forward(be, y, mean, rstd, x, w, b, (int)M, C, 1e-6f);
    TIME("layernorm fwd [3216,384]", fb * (2.0 * M * C + 2 * M), 0,
         be->ops->layernorm_forward(be, y, mean, rstd, x, w, b, (int)M, C, 1e-6f));
    TIME("layernorm bwd [3216,384]", fb * (4.0 * M * C), 0,
         be->ops->layernorm_backward(be, dx, dw, db, dy, x, w, mean, rstd, (int)M, C));
    TIME("gelu fwd [3216,1536]", fb * 2.0 * M * Fh, 0, be->ops->gelu_forward(be, ho, h, M * Fh));
    TIME("gelu bwd [3216,1536]", fb * 4.0 * M * Fh, 0, be->ops->gelu_backward(be, dh, h, dho, M * Fh));
    TIME("swiglu fwd [3216,2x768]", fb * 3.0 * M * 768, 0, be->ops->swiglu_forward(be, ho, h, (int)M, 768));
    TIME("swiglu bwd [3216,2x768]", fb * 6.0 * M * 768, 0,
         be->ops->swiglu_backward(be, dh, h, dho, (int)M, 768));
    TIME("bias fwd [3216,1152] (k mask)", fb * 2.0 * M * 3 * C, 0,
         be->ops->bias_forward(be, qkv, bq, mask, (int)M, 3 * C));
    TIME("bias bwd [3216,1152] (k mask)", fb * 1.0 * M * 3 * C, 0,
         be->ops->bias_backward(be, bq, dqkv, mask, (int)M, 3 * C));
    TIME("softmax fwd [19296,201]", fb * 2.0 * N * H * T * T, 0,
         be->ops->softmax_forward(be, att, att, N * H * T, T, 0.125f));
    TIME("residual fwd [16,201,384]", fb * 3.0 * M * C, 0,
         be->ops->residual_forward(be, x, x, y, w, NULL, N, N, T, C, 1.0f));
    TIME("residual bwd [16,201,384]", fb * 6.0 * M * C, 0,
         be->ops->residual_backward(be, dx, dy, dw, x, y, w, NULL, N, N, T, C, 1.0f));

    /* rope */
    float periods[16], *sn = buf(be, (size_t)P * Dh, &r), *cs = buf(be, (size_t)P * Dh, &r);
    for (int j = 0; j < 16; j++) periods[j] = 1.0f;
    TIME("rope tables 14x14", fb * 2.0 * P * Dh, 0,
         be->ops->rope_tables(be, sn, cs, periods, 14, 14, Dh, 0, 0, 1, 1));
    TIME("rope fwd (q,k of [16,201,3,6,64])", fb * 4.0 * N * P * C, 0,
         be->ops->rope_forward(be, qkv, sn, cs, N, T, H, Dh, 5));
    TIME("rope bwd", fb * 4.0 * N * P * C, 0, be->ops->rope_backward(be, dqkv, sn, cs, N, T, H, Dh, 5));

    /* attention: global crops and local crops */
    for (int pass = 0; pass < 2; pass++) {
        int An = pass == 0 ? 16 : 64, At = pass == 0 ? 201 : 41;
        double fl = 4.0 * An * H * (double)At * At * Dh;
        char lab[64];
        const float sc = 0.125f;
        snprintf(lab, sizeof lab, "attention fwd N=%d T=%d (gemm)", An, At);
        /* the training pair: forward keeps the rows' log-sum-exps (in att's buffer), backward recomputes P */
        TIME(lab, 0, fl, be->ops->attention_forward(be, ao, NULL, att, qkv, An, At, H, Dh, sc));
        snprintf(lab, sizeof lab, "attention bwd N=%d T=%d (gemm)", An, At);
        TIME(lab, 0, 2 * fl, be->ops->attention_backward(be, dqkv, ao, qkv, ao, att, An, At, H, Dh, sc));
        snprintf(lab, sizeof lab, "attention fwd N=%d T=%d (loop)", An, At);
        TIME(lab, 0, fl, dx_cpu_attention_forward_f32(ao, NULL, att, qkv, An, At, H, Dh, sc));
        snprintf(lab, sizeof lab, "attention bwd N=%d T=%d (loop)", An, At);
        TIME(lab, 0, 2 * fl, dx_cpu_attention_backward_f32(dqkv, ao, qkv, ao, att, An, At, H, Dh, sc));
    }

    /* patch embedding, tokens */
    float *img = buf(be, (size_t)N * 3 * 224 * 224, &r), *cols = buf(be, (size_t)N * P * 768, &r);
    TIME("im2col [16,3,224,224] p16", fb * 2.0 * N * 3 * 224 * 224, 0,
         be->ops->im2col(be, cols, img, N, 3, 224, 224, 16));
    TIME("col2im", fb * 3.0 * N * 3 * 224 * 224, 0, be->ops->col2im(be, img, cols, N, 3, 224, 224, 16));
    float *cls = buf(be, C, &r), *reg = buf(be, (size_t)R * C, &r), *mt = buf(be, C, &r);
    uint8_t *pm = calloc((size_t)N * P, 1);
    for (int i = 0; i < N * P; i += 3) pm[i] = 1;
    TIME("tokens fwd [16,201,384]", fb * 2.0 * M * C, 0,
         be->ops->tokens_forward(be, x, y, cls, reg, mt, pm, N, P, R, C));
    TIME("tokens bwd", fb * 3.0 * M * C, 0, be->ops->tokens_backward(be, y, cls, reg, mt, x, pm, N, P, R, C));

    /* optimizer over ViT-S backbone size */
    size_t np = 21600000;
    float *p = buf(be, np, &r), *g = buf(be, np, &r), *m1 = buf(be, np, &r), *m2 = buf(be, np, &r);
    for (size_t i = 0; i < np; i++) m2[i] = m2[i] * m2[i];
    TIME("adamw 21.6M", fb * 7.0 * np, 0, be->ops->adamw(be, p, g, m1, m2, np, 1e-4f, 0.9f, 0.999f, 1e-8f, 0.04f, 10));
    TIME("ema 21.6M", fb * 3.0 * np, 0, be->ops->ema(be, m1, p, np, 0.996f));
    TIME("sumsq 21.6M", fb * 1.0 * np, 0, (void)be->ops->sumsq(be, g, np));
    TIME("nonfinite 21.6M", fb * 1.0 * np, 0, (void)be->ops->nonfinite(be, g, np));
    TIME("axpy 21.6M", fb * 3.0 * np, 0, be->ops->axpy(be, p, 0.5f, g, np));
    dx_backend_destroy(be);
    return 0;
}
