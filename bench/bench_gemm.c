/* bench_gemm.c - GFLOP/s of the CPU backend's GEMM on the ViT-S linear-layer
 * shapes, next to the alternatives it was chosen over.
 *
 * For M = B*T tokens in {3216 (16 x 201), 1640 (40 x 41)} and each ViT-S
 * linear layer (qkv 384->1152, proj 384->384, fc1 384->1536, fc2 1536->384)
 * it times the three GEMMs of a training step:
 *   fwd  Y[M,N]  = X[M,K] W[N,K]^T   (ta=0, tb=1)
 *   dX   dX[M,K] = dY[M,N] W[N,K]    (ta=0, tb=0)
 *   dW   dW[N,K] = dY[M,N]^T X[M,K]  (ta=1, tb=0, beta=1: accumulate)
 * with: oneDNN dnnl_sgemm (what the backend calls), the oneDNN matmul
 * primitive (created once per shape, i.e. as if cached), and OpenBLAS
 * cblas_sgemm loaded with dlopen (libopenblas.so.0; skipped if absent; it
 * obeys OPENBLAS_CORETYPE as found in the environment, printed below).
 * 1 and 2 threads. Each figure: 7 timed runs after 2 warm-ups; the best wall
 * time and (in parentheses) the median process CPU time / threads.
 * Usage: bench_gemm [quick]   (quick: M = 1640 only) */
#include <dlfcn.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/dx_backend.h"

typedef void (*cblas_sgemm_fn)(int, int, int, int, int, int, float, const float *, int,
                               const float *, int, float, float *, int);
typedef void (*oblas_threads_fn)(int);

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}
static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    int which; /* 0 dnnl_sgemm, 1 matmul primitive, 2 openblas */
    int ta, tb, M, N, K;
    float beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
    dnnl_primitive_t prim;
    dnnl_stream_t stream;
    dnnl_memory_t mA, mB, mC;
    cblas_sgemm_fn cblas;
} job;

static void run(job *j) {
    if (j->which == 0) {
        dnnl_sgemm(j->ta ? 'T' : 'N', j->tb ? 'T' : 'N', j->M, j->N, j->K, 1.0f, j->A, j->lda, j->B,
                   j->ldb, j->beta, j->C, j->ldc);
    } else if (j->which == 1) {
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, j->mA}, {DNNL_ARG_WEIGHTS, j->mB}, {DNNL_ARG_DST, j->mC}};
        dnnl_primitive_execute(j->prim, j->stream, 3, args);
        dnnl_stream_wait(j->stream);
    } else {
        /* CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112 */
        j->cblas(101, j->ta ? 112 : 111, j->tb ? 112 : 111, j->M, j->N, j->K, 1.0f, j->A, j->lda, j->B,
                 j->ldb, j->beta, j->C, j->ldc);
    }
}

/* matmul primitive for C = op(A) op(B) (+ C if beta = 1, via a sum post-op) */
static int make_matmul(job *j, dnnl_engine_t eng) {
    dnnl_memory_desc_t a, b, c;
    dnnl_dims_t da = {j->M, j->K}, db = {j->K, j->N}, dc = {j->M, j->N};
    dnnl_dims_t sa = {j->ta ? 1 : j->lda, j->ta ? j->lda : 1};
    dnnl_dims_t sb = {j->tb ? 1 : j->ldb, j->tb ? j->ldb : 1};
    dnnl_dims_t sc = {j->ldc, 1};
    dnnl_memory_desc_init_by_strides(&a, 2, da, dnnl_f32, sa);
    dnnl_memory_desc_init_by_strides(&b, 2, db, dnnl_f32, sb);
    dnnl_memory_desc_init_by_strides(&c, 2, dc, dnnl_f32, sc);
    dnnl_matmul_desc_t md;
    if (dnnl_matmul_desc_init(&md, &a, &b, NULL, &c) != dnnl_success) return -1;
    dnnl_primitive_attr_t attr;
    dnnl_primitive_attr_create(&attr);
    if (j->beta != 0) {
        dnnl_post_ops_t po;
        dnnl_post_ops_create(&po);
        dnnl_post_ops_append_sum(po, j->beta);
        dnnl_primitive_attr_set_post_ops(attr, po);
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &md, attr, eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) return -1;
    dnnl_primitive_create(&j->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    dnnl_memory_create(&j->mA, &a, eng, (void *)j->A);
    dnnl_memory_create(&j->mB, &b, eng, (void *)j->B);
    dnnl_memory_create(&j->mC, &c, eng, j->C);
    return 0;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* GFLOP/s from the best wall time; *cpu_gf from the median process CPU
 * time divided by the thread count, which on a shared, oversubscribed
 * machine estimates the uncontended rate (time spent descheduled is not
 * counted; spinning at barriers is). */
static double time_job(job *j, int threads, double *cpu_gf) {
    double t[7], c[7];
    run(j);
    run(j);
    for (int r = 0; r < 7; r++) {
        double t0 = now(), c0 = cpu_now();
        run(j);
        t[r] = now() - t0;
        c[r] = cpu_now() - c0;
    }
    qsort(t, 7, sizeof t[0], cmpd);
    qsort(c, 7, sizeof c[0], cmpd);
    double fl = 2.0 * j->M * j->N * j->K;
    *cpu_gf = fl / (c[3] / threads) * 1e-9;
    return fl / t[0] * 1e-9; /* best of 7: closest to uncontended */
}

int main(int argc, char **argv) {
    int quick = argc > 1 && strcmp(argv[1], "quick") == 0;
    const char *ct = getenv("OPENBLAS_CORETYPE");
    void *ob = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    cblas_sgemm_fn cblas = ob ? (cblas_sgemm_fn)dlsym(ob, "cblas_sgemm") : NULL;
    oblas_threads_fn obthr = ob ? (oblas_threads_fn)dlsym(ob, "openblas_set_num_threads") : NULL;
    printf("bench_gemm: OPENBLAS_CORETYPE=%s, OpenBLAS %s\n", ct ? ct : "(unset)",
           cblas ? "loaded" : "not found");
    const dnnl_version_t *v = dnnl_version();
    printf("oneDNN %d.%d.%d, cpu isa hints: %s\n", v->major, v->minor, v->patch, v->cpu_runtime == DNNL_RUNTIME_OMP ? "omp" : "other");
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    dnnl_engine_create(&eng, dnnl_cpu, 0);
    dnnl_stream_create(&stream, eng, dnnl_stream_default_flags);

    const int Ms[2] = {3216, 1640};
    const struct { const char *name; int in, out; } layers[4] = {
        {"qkv", 384, 1152}, {"proj", 384, 384}, {"fc1", 384, 1536}, {"fc2", 1536, 384}};
    const char *lib[3] = {"dnnl_sgemm", "dnnl_matmul", "openblas"};
    double sum[3][3] = {{0}}, sumc[3][3] = {{0}}; /* [lib][threads], wall / cpu-time based */
    double peak[3][3] = {{0}};                     /* best single GEMM per [lib][threads] */
    int cnt = 0;
    printf("%-5s %5s %-4s %5s %5s %5s |", "layer", "M", "op", "m", "n", "k");
    for (int th = 1; th <= 2; th++)
        for (int l = 0; l < 3; l++) printf(" %12s/%dt", lib[l], th);
    printf("   (GFLOP/s: wall (cpu-time based))\n");
    for (int mi = quick ? 1 : 0; mi < 2; mi++) {
        int M = Ms[mi];
        for (int li = 0; li < 4; li++) {
            int K = layers[li].in, N = layers[li].out;
            float *X = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * N * K);
            float *Y = malloc(sizeof(float) * M * N), *dW = malloc(sizeof(float) * N * K);
            float *dX = malloc(sizeof(float) * M * K);
            for (size_t i = 0; i < (size_t)M * K; i++) X[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
            for (size_t i = 0; i < (size_t)N * K; i++) W[i] = (float)((i * 40503u) % 1000) * 1e-3f - 0.5f;
            for (size_t i = 0; i < (size_t)M * N; i++) Y[i] = (float)((i * 9973u) % 1000) * 1e-3f - 0.5f;
            memset(dW, 0, sizeof(float) * N * K);
            job base[3] = {
                /* fwd: Y = X W^T */
                {.ta = 0, .tb = 1, .M = M, .N = N, .K = K, .beta = 0, .A = X, .lda = K, .B = W, .ldb = K, .C = Y, .ldc = N},
                /* dX = dY W */
                {.ta = 0, .tb = 0, .M = M, .N = K, .K = N, .beta = 0, .A = Y, .lda = N, .B = W, .ldb = K, .C = dX, .ldc = K},
                /* dW += dY^T X */
                {.ta = 1, .tb = 0, .M = N, .N = K, .K = M, .beta = 1, .A = Y, .lda = N, .B = X, .ldb = K, .C = dW, .ldc = K},
            };
            const char *opn[3] = {"fwd", "dX", "dW"};
            for (int o = 0; o < 3; o++) {
                job *b = &base[o];
                printf("%-5s %5d %-4s %5d %5d %5d |", layers[li].name, M, opn[o], b->M, b->N, b->K);
                for (int th = 1; th <= 2; th++) {
                    omp_set_num_threads(th);
                    if (obthr) obthr(th);
                    for (int l = 0; l < 3; l++) {
                        job j = *b;
                        j.which = l;
                        j.stream = stream;
                        j.cblas = cblas;
                        double g = -1, gc = -1;
                        if (l == 2 && !cblas) g = -1;
                        else if (l == 1 && make_matmul(&j, eng) != 0) g = -1;
                        else g = time_job(&j, th, &gc);
                        if (l == 1 && j.prim) {
                            dnnl_primitive_destroy(j.prim);
                            dnnl_memory_destroy(j.mA);
                            dnnl_memory_destroy(j.mB);
                            dnnl_memory_destroy(j.mC);
                        }
                        printf(" %6.1f (%5.1f)", g, gc);
                        if (g > peak[l][th]) peak[l][th] = g;
                        if (g > 0) {
                            sum[l][th] += g;
                            sumc[l][th] += gc;
                        }
                    }
                }
                printf("\n");
                cnt++;
            }
            free(X); free(W); free(Y); free(dW); free(dX);
        }
    }
    printf("mean over %d GEMMs:", cnt);
    for (int th = 1; th <= 2; th++)
        for (int l = 0; l < 3; l++)
            printf("  %s/%dt %.1f (%.1f)", lib[l], th, sum[l][th] / cnt, sumc[l][th] / cnt);
    printf("\n");
    printf("measured single-GEMM peak (best wall time, GFLOP/s):");
    for (int th = 1; th <= 2; th++)
        for (int l = 0; l < 3; l++) printf("  %s/%dt %.1f", lib[l], th, peak[l][th]);
    printf("\n");
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(eng);
    return 0;
}
