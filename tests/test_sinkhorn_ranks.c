/* test_sinkhorn_ranks.c - Sinkhorn-Knopp over a batch split across ranks.
 *
 * Data-parallel training gives each rank some rows of the teacher logits and
 * reduces the prototype maxima, the total and every iteration's prototype
 * sums across the ranks (dx_allreduce). Here W threads play the ranks, with a
 * barrier-based reducer, and uneven splits (one rank may have no rows at all):
 * the rows they produce together must be the single-process result.
 * The reducer also counts its calls: 1 (N_tot) + 1 (maxima) + 1 (total) +
 * n_iter (prototype sums), identical on every rank. */
#include <pthread.h>
#include <stdint.h>

#include "backend/cpu/cpu_loss.h"
#include "core/dx_rng.h"
#include "dx_test.h"

#define MAXW 4

typedef struct shared {
    pthread_barrier_t bar;
    pthread_mutex_t mu;
    double acc[70000];
    int W;
} shared;

typedef struct rank_ctx {
    shared *sh;
    int rank, calls;
} rank_ctx;

static void reduce(void *ctx, double *buf, int n, int is_max) {
    rank_ctx *r = ctx;
    shared *sh = r->sh;
    r->calls++;
    if (r->rank == 0)
        for (int i = 0; i < n; i++) sh->acc[i] = is_max ? -INFINITY : 0.0;
    pthread_barrier_wait(&sh->bar);
    pthread_mutex_lock(&sh->mu);
    for (int i = 0; i < n; i++) sh->acc[i] = is_max ? fmax(sh->acc[i], buf[i]) : sh->acc[i] + buf[i];
    pthread_mutex_unlock(&sh->mu);
    pthread_barrier_wait(&sh->bar);
    for (int i = 0; i < n; i++) buf[i] = sh->acc[i];
    pthread_barrier_wait(&sh->bar); /* nobody resets acc before everyone has read it */
}
static void red_sum(void *ctx, double *buf, int n) { reduce(ctx, buf, n, 0); }
static void red_max(void *ctx, double *buf, int n) { reduce(ctx, buf, n, 1); }

typedef struct job {
    rank_ctx rc;
    int f32, N, K, iters;
    double temp;
    const double *z;
    double *out;       /* f64 rows of this rank */
    const float *zf;
    float *outf;
} job;

static void *run_rank(void *arg) {
    job *j = arg;
    dx_allreduce red = {.ctx = &j->rc, .sum_f64 = red_sum, .max_f64 = red_max};
    if (j->f32)
        dx_cpu_sinkhorn_knopp_red_f32(j->outf, j->zf, j->N, j->K, j->temp, j->iters, &red);
    else
        dx_cpu_sinkhorn_knopp_red_f64(j->out, j->z, j->N, j->K, j->temp, j->iters, &red);
    return NULL;
}

static shared SH;

/* rows[r] rows for rank r; logits scaled by zs */
static void split_case(int W, const int *rows, int K, double temp, int iters, double zs, int f32) {
    int N = 0;
    for (int r = 0; r < W; r++) N += rows[r];
    const size_t NK = (size_t)N * K;
    double *z = malloc(sizeof(double) * NK), *ref = malloc(sizeof(double) * NK), *got = malloc(sizeof(double) * NK);
    float *zf = malloc(sizeof(float) * NK), *gotf = malloc(sizeof(float) * NK);
    dx_rng g;
    dx_rng_init(&g, 11, DX_RNG_TEST, (uint64_t)N, (uint64_t)K);
    for (size_t i = 0; i < NK; i++) z[i] = zs * dx_rng_normal(&g), zf[i] = (float)z[i];
    if (f32)
        for (size_t i = 0; i < NK; i++) z[i] = (double)zf[i]; /* the same inputs in both precisions */
    dx_cpu_sinkhorn_knopp_f64(ref, z, N, K, f32 ? (double)(float)temp : temp, iters);

    SH.W = W;
    pthread_barrier_init(&SH.bar, NULL, (unsigned)W);
    pthread_mutex_init(&SH.mu, NULL);
    pthread_t th[MAXW];
    job jobs[MAXW];
    size_t row0 = 0;
    for (int r = 0; r < W; r++) {
        jobs[r] = (job){.rc = {.sh = &SH, .rank = r}, .f32 = f32, .N = rows[r], .K = K, .iters = iters,
                        .temp = f32 ? (double)(float)temp : temp, .z = z + row0 * K, .out = got + row0 * K,
                        .zf = zf + row0 * K, .outf = gotf + row0 * K};
        row0 += rows[r];
        pthread_create(&th[r], NULL, run_rank, &jobs[r]);
    }
    for (int r = 0; r < W; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&SH.bar);
    pthread_mutex_destroy(&SH.mu);

    double worst = 0;
    for (size_t i = 0; i < NK; i++) {
        double v = f32 ? (double)gotf[i] : got[i];
        double e = fabs(v - ref[i]) / fmax(fabs(ref[i]), 1e-3);
        worst = e > worst || isnan(v) ? (isnan(v) ? INFINITY : e) : worst;
    }
    char what[160];
    snprintf(what, sizeof what, "%s W=%d rows %d/%d/%d/%d K=%d iters %d", f32 ? "f32" : "f64", W, rows[0],
             W > 1 ? rows[1] : 0, W > 2 ? rows[2] : 0, W > 3 ? rows[3] : 0, K, iters);
    CHECK(worst <= (f32 ? 1e-4 : 1e-12), "%s: max rel err %.3g against one process", what, worst);
    for (int r = 0; r < W; r++)
        CHECK(jobs[r].rc.calls == 3 + (iters > 0 ? iters : 0), "%s: rank %d made %d reductions, want %d", what, r,
              jobs[r].rc.calls, 3 + (iters > 0 ? iters : 0));
    printf("ok   sinkhorn_knopp %s: max rel err %.2e\n", what, worst);
    free(z), free(ref), free(got), free(zf), free(gotf);
}

int main(void) {
    split_case(2, (int[]){3, 5}, 16, 0.07, 3, 1, 0);
    split_case(3, (int[]){4, 0, 4}, 33, 0.05, 3, 1, 0); /* a rank with no rows (no masked patch) */
    split_case(4, (int[]){1, 2, 3, 4}, 8, 0.1, 1, 1, 0);
    split_case(2, (int[]){6, 6}, 9, 0.04, 0, 1, 0);     /* n_iter = 0: the global max path */
    split_case(2, (int[]){8, 8}, 4099, 0.04, 3, 2, 1);  /* fp32, several prototype chunks */
    split_case(3, (int[]){5, 7, 0}, 64, 0.04, 3, 6, 1); /* fp32, sharp logits */
    /* one rank: the reducer is the identity, the result the plain kernel's, bit for bit */
    {
        const int N = 6, K = 10;
        double z[60], a[60], b[60];
        dx_rng g;
        dx_rng_init(&g, 3, DX_RNG_TEST, 0, 0);
        for (int i = 0; i < N * K; i++) z[i] = dx_rng_normal(&g);
        dx_cpu_sinkhorn_knopp_f64(a, z, N, K, 0.07, 3);
        split_case(1, (int[]){N}, K, 0.07, 3, 1, 0);
        rank_ctx rc = {.sh = &SH, .rank = 0};
        SH.W = 1;
        pthread_barrier_init(&SH.bar, NULL, 1);
        pthread_mutex_init(&SH.mu, NULL);
        dx_allreduce red = {.ctx = &rc, .sum_f64 = red_sum, .max_f64 = red_max};
        dx_cpu_sinkhorn_knopp_red_f64(b, z, N, K, 0.07, 3, &red);
        CHECK(memcmp(a, b, sizeof a) == 0, "one rank through the reducer differs from the plain kernel");
        pthread_barrier_destroy(&SH.bar);
    }
    return dx_test_summary();
}
