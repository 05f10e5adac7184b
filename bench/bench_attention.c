/* bench_attention.c - attention forward and backward on any backend, against
 * the GEMM peak measured in the same run on the same backend.
 *
 * Times (median of --reps after 2 warm-ups, the backend synchronised around
 * each call): the training forward (row log-sum-exps kept, no probabilities),
 * the forward of a pass without backward (neither kept), the forward that
 * keeps the probabilities (eval's attention maps; skipped when [N,H,T,T] does
 * not fit), the backward from the row statistics. FLOPs: forward 4 T^2 Dh per
 * (image, head), backward 8 T^2 Dh (the recomputation of the scores, 2 T^2 Dh
 * more, and the softmax are not counted). The GEMM peak is the best of square-ish GEMMs of the attention's
 * own size under the backend's precision (dx_gemm_linear: bf16 inputs with
 * fp32 accumulation under --precision bf16).
 *
 * The target on an H200: forward + backward at >= 50% of the bf16
 * GEMM peak for T = 1025, Dh = 64 (ViT-L/16 at 512 px: 16 heads).
 *
 * usage: bench_attention [--device D] [--precision fp32|bf16] [--n N] [--t T]
 *                        [--heads H] [--dh Dh] [--reps R]
 *   defaults: cpu, fp32, N 2, T 201, H 6, Dh 64, 5 reps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/dx_backend.h"
#include "backend/registry.h"
#include "core/dx_rng.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}
static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float *rand_dev(dx_backend *be, size_t n, uint64_t seed, float s) {
    float *h = malloc(n * sizeof(float));
    dx_rng r;
    dx_rng_init(&r, seed, DX_RNG_TEST, 0, 0);
    for (size_t i = 0; i < n; i++) h[i] = s * (float)dx_rng_normal(&r);
    float *d = be->ops->alloc(be, n * sizeof(float));
    if (d) be->ops->upload(be, d, h, n * sizeof(float));
    free(h);
    return d;
}

#define TIMED(out_s, reps, stmt)                                                \
    do {                                                                        \
        double t_[64];                                                          \
        for (int r_ = 0; r_ < (reps) + 2; r_++) {                               \
            be->ops->sync(be);                                                  \
            double t0_ = now();                                                 \
            stmt;                                                               \
            be->ops->sync(be);                                                  \
            if (r_ >= 2) t_[r_ - 2] = now() - t0_;                              \
        }                                                                       \
        qsort(t_, (size_t)(reps), sizeof(double), cmpd);                        \
        out_s = t_[(reps) / 2];                                                 \
    } while (0)

int main(int argc, char **argv) {
    const char *device = "cpu";
    int precision = DX_PREC_FP32, N = 2, T = 201, H = 6, Dh = 64, reps = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc) device = argv[++i];
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc) precision = !strcmp(argv[++i], "bf16");
        else if (!strcmp(argv[i], "--n") && i + 1 < argc) N = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--t") && i + 1 < argc) T = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--heads") && i + 1 < argc) H = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dh") && i + 1 < argc) Dh = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_attention [--device D] [--precision fp32|bf16] [--n N] [--t T] [--heads H] "
                            "[--dh Dh] [--reps R]\n");
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    if (reps > 64) reps = 64;
    if (N < 1 || T < 1 || H < 1 || Dh < 1) {
        fprintf(stderr, "bench_attention: N, T, heads and Dh must be >= 1\n");
        return 2;
    }
    dx_err err;
    dx_backend_params bp = {0};
    dx_backend *be = NULL;
    if (dx_backend_parse_device(device, &bp, &err) ||
        (bp.precision = precision, dx_backend_create(&be, &bp, &err))) {
        fprintf(stderr, "bench_attention: %s\n", err.msg);
        return 1;
    }
    const size_t nq = (size_t)N * T * 3 * H * Dh, no = (size_t)N * T * H * Dh, na = (size_t)N * H * T * T;
    float *qkv = rand_dev(be, nq, 1, 1.0f), *dout = rand_dev(be, no, 2, 1.0f);
    float *out = be->ops->alloc(be, no * sizeof(float)), *lse = be->ops->alloc(be, (size_t)N * H * T * sizeof(float));
    float *dqkv = be->ops->alloc(be, nq * sizeof(float));
    if (!qkv || !dout || !out || !lse || !dqkv) {
        fprintf(stderr, "bench_attention: out of memory on %s\n", device);
        return 1;
    }
    float *att = be->ops->alloc(be, na * sizeof(float)); /* NULL: the maps' forward is not timed */
    const float sc = 1.0f / sqrtf((float)Dh);
    const double f_fwd = 4.0 * N * H * (double)T * T * Dh, f_bwd = 2 * f_fwd;
    double t_fwd, t_fused, t_att = NAN, t_bwd;
    if (att) TIMED(t_att, reps, be->ops->attention_forward(be, out, att, NULL, qkv, N, T, H, Dh, sc));
    TIMED(t_fused, reps, be->ops->attention_forward(be, out, NULL, NULL, qkv, N, T, H, Dh, sc));
    TIMED(t_fwd, reps, be->ops->attention_forward(be, out, NULL, lse, qkv, N, T, H, Dh, sc));
    TIMED(t_bwd, reps, be->ops->attention_backward(be, dqkv, dout, qkv, out, lse, N, T, H, Dh, sc));
    /* the GEMM peak at this size: [N*T, H*Dh] x [H*Dh, H*Dh]-like shapes */
    const int M = N * T > 16384 ? 16384 : N * T, K = H * Dh;
    float *A = rand_dev(be, (size_t)M * 4 * K, 3, 1.0f), *B = rand_dev(be, (size_t)4 * K * 4 * K, 4, 1.0f);
    float *C = be->ops->alloc(be, (size_t)M * 4 * K * sizeof(float));
    double peak = 0;
    const int shapes[][3] = {{M, K, K}, {M, 4 * K, K}, {M, K, 4 * K}};
    for (int s = 0; s < 3 && A && B && C; s++) {
        double t;
        const int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        TIMED(t, reps, dx_gemm_linear(be, 0, 1, m, n, k, 1.0f, A, k, B, k, 0.0f, C, n));
        double g = 2.0 * m * n * k / t / 1e9;
        if (g > peak) peak = g;
    }
    const double g_train = (f_fwd + f_bwd) / (t_fwd + t_bwd) / 1e9;
    printf("{\"device\":\"%s\",\"precision\":\"%s\",\"N\":%d,\"T\":%d,\"H\":%d,\"Dh\":%d,"
           "\"fwd_ms\":%.3f,\"fwd_fused_ms\":%.3f,\"fwd_att_ms\":%.3f,\"bwd_ms\":%.3f,\"fwd_gflop_s\":%.1f,\"fwd_fused_gflop_s\":%.1f,"
           "\"bwd_gflop_s\":%.1f,\"fwd_bwd_gflop_s\":%.1f,\"gemm_peak_gflop_s\":%.1f,\"fwd_bwd_fraction_of_peak\":%.3f,"
           "\"fused_fraction_of_peak\":%.3f}\n",
           device, precision ? "bf16" : "fp32", N, T, H, Dh, 1e3 * t_fwd, 1e3 * t_fused, 1e3 * t_att, 1e3 * t_bwd,
           f_fwd / t_fwd / 1e9, f_fwd / t_fused / 1e9, f_bwd / t_bwd / 1e9, g_train, peak,
           peak > 0 ? g_train / peak : 0, peak > 0 ? f_fwd / t_fused / 1e9 / peak : 0);
    be->ops->free(be, qkv);
    be->ops->free(be, dout);
    be->ops->free(be, out);
    if (att) be->ops->free(be, att);
    be->ops->free(be, lse);
    be->ops->free(be, dqkv);
    be->ops->free(be, A);
    be->ops->free(be, B);
    be->ops->free(be, C);
    dx_backend_destroy(be);
    return 0;
}
