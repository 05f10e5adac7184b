/* gpu_loss.cu - the DINOv3 objective kernels (struct dx_loss_ops) on the GPU.
 *
 * Each op mirrors the CPU kernel of the same name (cpu_loss.inc): the same
 * formulas, sums in double, row-wise work one block per row. Scalars reach
 * the host through the backend's reduction slots (a blocking download, as
 * the contract says of ops returning to the host). The Gram loss forms its
 * Gram matrices by blocks of rows with the fp32 GEMM (never all (nP)^2 at
 * once). The three health statistics (no gradient, logged steps only) are
 * computed by the CPU's code on a download of their input: they are read-
 * only, small next to a step, and then agree with the CPU by construction. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/gpu/gpu_common.cuh"

extern "C" {
#include "backend/cpu/cpu_health.h"
}


/* ---- row helpers (called by every thread of a block) -------------------------------- */

struct row_sh {
    double d[DX_GPU_BLOCK];
    float f[DX_GPU_BLOCK];
};

__device__ inline float row_max(const float *x, int K, row_sh *sh) {
    float mx = -INFINITY;
    for (int k = threadIdx.x; k < K; k += DX_GPU_BLOCK) mx = fmaxf(mx, x[k]);
    return gpu_block_max(mx, sh->f);
}
/* log sum_k exp((x_k - mx) * inv_t), exps in float, sum in double */
__device__ inline double row_lse0(const float *x, int K, float mx, double inv_t, row_sh *sh) {
    float it = (float)inv_t;
    double s = 0;
    for (int k = threadIdx.x; k < K; k += DX_GPU_BLOCK) s += (double)expf((x[k] - mx) * it);
    return log(gpu_block_sum(s, sh->d));
}
/* CE = lse sum T - inv_t sum T s */
__device__ inline double ce_row(const float *s, const float *t, int K, double inv_t, double lse, row_sh *sh) {
    double ts = 0, tsum = 0;
    for (int k = threadIdx.x; k < K; k += DX_GPU_BLOCK) {
        ts += (double)t[k] * (double)s[k];
        tsum += (double)t[k];
    }
    ts = gpu_block_sum(ts, sh->d);
    tsum = gpu_block_sum(tsum, sh->d);
    return lse * tsum - ts * inv_t;
}
/* ds (+)= g (softmax(s / temp) sum t - t), with g already divided by temp: accumulated when acc, else
 * overwritten, and then ds may be s (the row statistics are final before the loop, and each element is
 * read and written by one thread) */
__device__ inline void ce_back_row(float *ds, const float *s, const float *t, int K, double inv_t, double g, float mx,
                                   float l0, row_sh *sh, bool acc) {
    double tsum = 0;
    for (int k = threadIdx.x; k < K; k += DX_GPU_BLOCK) tsum += t[k];
    tsum = gpu_block_sum(tsum, sh->d);
    float it = (float)inv_t, gt = (float)(g * tsum), gr = (float)g;
    for (int k = threadIdx.x; k < K; k += DX_GPU_BLOCK) {
        const float v = gt * expf((s[k] - mx) * it - l0) - gr * t[k];
        ds[k] = acc ? ds[k] + v : v;
    }
}

/* the sum of n device doubles to the host */
static double sum_to_host(dx_backend *be, const double *part, int n) {
    gpu_sum_f64_dev(be, gpu_st(be)->red, part, (size_t)n, 0);
    double r;
    gpu_red_to_host(be, &r, 1);
    return r;
}

/* ---- Sinkhorn-Knopp -------------------------------------------------------------------- */

__global__ void k_set_f64(double *dst, double v) {
    if (threadIdx.x == 0 && blockIdx.x == 0) *dst = v;
}
/* shift[k] = max_n logits[n,k] (-inf when N = 0) */
__global__ void k_sk_colmax(double *shift, const float *logits, int N, int K) {
    GPU_FOR(k, (size_t)K) {
        float m = N ? logits[k] : -INFINITY;
        for (int n = 1; n < N; n++) m = fmaxf(m, logits[(size_t)n * K + k]);
        shift[k] = m;
    }
}
__global__ void k_sk_globalmax(double *shift, int K) {
    __shared__ double sh[DX_GPU_BLOCK];
    double m = -INFINITY;
    for (int k = threadIdx.x; k < K; k += DX_GPU_BLOCK) m = fmax(m, shift[k]);
    m = gpu_block_max(m, sh);
    for (int k = threadIdx.x; k < K; k += DX_GPU_BLOCK) shift[k] = m;
}
__global__ void k_sk_exp(float *out, double *rowpart, const float *logits, const double *shift, int K, float it) {
    __shared__ double sh[DX_GPU_BLOCK];
    size_t n = blockIdx.x;
    double s = 0;
    for (int k = threadIdx.x; k < K; k += DX_GPU_BLOCK) {
        float q = expf((logits[n * K + k] - (float)shift[k]) * it);
        out[n * K + k] = q;
        s += (double)q;
    }
    s = gpu_block_sum(s, sh);
    if (threadIdx.x == 0) rowpart[n] = s;
}
__global__ void k_sk_scale_total(float *out, size_t nk, const double *total) {
    float inv = (float)(1.0 / *total);
    GPU_FOR(i, nk) out[i] *= inv;
}
__global__ void k_sk_colsum(double *col, const float *q, int N, int K) {
    GPU_FOR(k, (size_t)K) {
        double s = 0;
        for (int n = 0; n < N; n++) s += (double)q[(size_t)n * K + k];
        col[k] = s;
    }
}
__global__ void k_sk_colinv(double *col, int K) {
    GPU_FOR(k, (size_t)K) col[k] = 1.0 / (col[k] * (double)K);
}
__global__ void k_sk_rows(float *out, const double *col, int K, const double *Nt, int last) {
    __shared__ double sh[DX_GPU_BLOCK];
    float *q = out + (size_t)blockIdx.x * K;
    double s = 0;
    for (int k = threadIdx.x; k < K; k += DX_GPU_BLOCK) {
        q[k] = (float)((double)q[k] * col[k]);
        s += (double)q[k];
    }
    s = gpu_block_sum(s, sh);
    double fin = last ? *Nt : 1.0;
    float f = (float)(fin / (s * *Nt));
    for (int k = threadIdx.x; k < K; k += DX_GPU_BLOCK) q[k] *= f;
}
__global__ void k_sk_times_nt(float *out, size_t nk, const double *Nt) {
    GPU_FOR(i, nk) out[i] = (float)((double)out[i] * *Nt);
}

static void gpu_sinkhorn_knopp(dx_backend *be, float *out, const float *logits, int N, int K, float temp, int n_iter,
                               const dx_allreduce *red) {
    if (K <= 0 || (N <= 0 && !red)) return;
    if (N < 0) N = 0;
    /* device doubles: shift[K] | col[K] | rowpart[N] | total | Nt */
    double *dd = (double *)gpu_scratch(be, GPU_SCRATCH_OP, sizeof(double) * (2 * (size_t)K + N + 2));
    if (!dd) return;
    double *shift = dd, *col = dd + K, *rowpart = dd + 2 * K, *total = rowpart + N, *Nt = total + 1;
    const size_t NK = (size_t)N * K;
    /* the engine's reductions (NCCL on its own stream) read device buffers that this
     * stream writes: each waits for the kernels before it (gpu_drain) */
    k_set_f64<<<1, 1, 0, gpu_stream(be)>>>(Nt, (double)N);
    GPU_LAUNCHED(be);
    if (red) {
        gpu_drain(be);
        red->sum_f64(red->ctx, Nt, 1);
    }
    ELEM_LAUNCH(be, k_sk_colmax, (size_t)K, shift, logits, N, K);
    if (red) {
        gpu_drain(be);
        red->max_f64(red->ctx, shift, K);
    }
    if (n_iter <= 0) {
        k_sk_globalmax<<<1, DX_GPU_BLOCK, 0, gpu_stream(be)>>>(shift, K);
        GPU_LAUNCHED(be);
    }
    ROWS_LAUNCH(be, k_sk_exp, N, out, rowpart, logits, shift, K, (float)(1.0 / temp));
    gpu_sum_f64_dev(be, total, rowpart, (size_t)N, 0);
    if (red) {
        gpu_drain(be);
        red->sum_f64(red->ctx, total, 1);
    }
    ELEM_LAUNCH(be, k_sk_scale_total, NK, out, NK, total);
    for (int it = 0; it < n_iter; it++) {
        ELEM_LAUNCH(be, k_sk_colsum, (size_t)K, col, out, N, K);
        if (red) {
        gpu_drain(be);
        red->sum_f64(red->ctx, col, K);
    }
        ELEM_LAUNCH(be, k_sk_colinv, (size_t)K, col, K);
        ROWS_LAUNCH(be, k_sk_rows, N, out, col, K, Nt, it == n_iter - 1);
    }
    if (n_iter <= 0) ELEM_LAUNCH(be, k_sk_times_nt, NK, out, NK, Nt);
}

/* ---- Sinkhorn-Knopp over row chunks (cpu_loss.inc's sk_chunk_*: the same E, sums in double) ---- */

/* columns: one thread per prototype walks the chunk's rows in order */
__global__ void k_skc_colmax(double *m, const float *Z, int R, int K, int first) {
    GPU_FOR(k, (size_t)K) {
        double v = first ? -INFINITY : m[k];
        for (int n = 0; n < R; n++) v = fmax(v, (double)Z[(size_t)n * K + k]);
        m[k] = v;
    }
}
__global__ void k_skc_colsum(double *a, const float *Z, const double *m, const double *r, int R, int K, float it,
                             int first) {
    GPU_FOR(k, (size_t)K) {
        const float mk = (float)m[k];
        double s = first ? 0.0 : a[k];
        for (int n = 0; n < R; n++) s += (r ? r[n] : 1.0) * (double)expf((Z[(size_t)n * K + k] - mk) * it);
        a[k] = s;
    }
}
/* rows: one block per row */
__global__ void k_skc_rowscale(double *r, const float *Z, const double *m, const double *a, int K, float it,
                               double n_tot) {
    __shared__ double sh[DX_GPU_BLOCK];
    const float *z = Z + (size_t)blockIdx.x * K;
    double s = 0;
    for (int k = threadIdx.x; k < K; k += DX_GPU_BLOCK)
        s += (double)expf((z[k] - (float)m[k]) * it) / (a[k] * (double)K);
    s = gpu_block_sum(s, sh);
    if (threadIdx.x == 0) r[blockIdx.x] = 1.0 / (n_tot * s);
}
__global__ void k_skc_targets(float *out, const float *Z, const double *m, const double *a, const double *r, int K,
                              float it, double n_tot) {
    const size_t n = blockIdx.x;
    const double f = r[n] * n_tot;
    for (int k = threadIdx.x; k < K; k += DX_GPU_BLOCK) {
        const size_t i = n * K + k;
        out[i] = (float)((double)expf((Z[i] - (float)m[k]) * it) * f / (a[k] * (double)K));
    }
}
static void gpu_sk_chunk_colmax(dx_backend *be, double *m, const float *Z, int R, int K, int first) {
    ELEM_LAUNCH(be, k_skc_colmax, (size_t)K, m, Z, R < 0 ? 0 : R, K, first);
}
static void gpu_sk_chunk_colsum(dx_backend *be, double *a, const float *Z, const double *m, const double *r, int R,
                                int K, float temp, int first) {
    ELEM_LAUNCH(be, k_skc_colsum, (size_t)K, a, Z, m, r, R < 0 ? 0 : R, K, (float)(1.0 / temp), first);
}
static void gpu_sk_chunk_rowscale(dx_backend *be, double *r, const float *Z, const double *m, const double *a, int R,
                                  int K, float temp, double n_tot) {
    ROWS_LAUNCH(be, k_skc_rowscale, R, r, Z, m, a, K, (float)(1.0 / temp), n_tot);
}
static void gpu_sk_chunk_targets(dx_backend *be, float *out, const float *Z, const double *m, const double *a,
                                 const double *r, int R, int K, float temp, double n_tot) {
    ROWS_LAUNCH(be, k_skc_targets, R, out, Z, m, a, r, K, (float)(1.0 / temp), n_tot);
}

/* ---- softmax centring, row mean ------------------------------------------------------------ */

__global__ void k_softmax_center(float *out, const float *logits, const float *center, int K, double inv_t) {
    __shared__ double sh[DX_GPU_BLOCK];
    size_t n = blockIdx.x;
    const float *z = logits + n * K;
    float *o = out + n * K;
    double m = -INFINITY;
    for (int k = threadIdx.x; k < K; k += DX_GPU_BLOCK) m = fmax(m, ((double)z[k] - (double)center[k]) * inv_t);
    m = gpu_block_max(m, sh);
    double s = 0;
    for (int k = threadIdx.x; k < K; k += DX_GPU_BLOCK) {
        float e = expf((float)(((double)z[k] - (double)center[k]) * inv_t - m));
        o[k] = e;
        s += e;
    }
    double inv_s = 1.0 / gpu_block_sum(s, sh);
    for (int k = threadIdx.x; k < K; k += DX_GPU_BLOCK) o[k] = (float)((double)o[k] * inv_s);
}
static void gpu_softmax_center(dx_backend *be, float *out, const float *logits, const float *center, int N, int K,
                               float temp) {
    ROWS_LAUNCH(be, k_softmax_center, N, out, logits, center, K, 1.0 / (double)temp);
}
__global__ void k_row_mean(float *mean, const float *x, int N, int K) {
    GPU_FOR(k, (size_t)K) {
        double s = 0;
        for (int n = 0; n < N; n++) s += x[(size_t)n * K + k];
        mean[k] = (float)(s / N);
    }
}
static void gpu_row_mean(dx_backend *be, float *mean, const float *x, int N, int K) {
    ELEM_LAUNCH(be, k_row_mean, (size_t)K, mean, x, N, K);
}

/* ---- cross-entropy, DINO ----------------------------------------------------------------------- */

__global__ void k_ce_forward(double *part, float *row_loss, const float *S, const float *T, const float *w, int K,
                             double inv_t) {
    __shared__ row_sh sh;
    size_t n = blockIdx.x;
    const float *s = S + n * K;
    float mx = row_max(s, K, &sh);
    double lse = (double)mx * inv_t + row_lse0(s, K, mx, inv_t, &sh);
    double ce = ce_row(s, T + n * K, K, inv_t, lse, &sh);
    if (threadIdx.x == 0) {
        if (row_loss) row_loss[n] = (float)ce;
        part[n] = (w ? (double)w[n] : 1.0) * ce;
    }
}
static double gpu_ce_forward(dx_backend *be, float *row_loss, const float *S, const float *T, const float *w, int N,
                             int K, float temp) {
    if (N <= 0) return 0.0;
    double *part = (double *)gpu_scratch(be, GPU_SCRATCH_OP, sizeof(double) * (size_t)N);
    if (!part) return NAN;
    ROWS_LAUNCH(be, k_ce_forward, N, part, row_loss, S, T, w, K, 1.0 / (double)temp);
    return sum_to_host(be, part, N);
}
__global__ void k_ce_backward(float *dS, const float *S, const float *T, const float *w, int K, double inv_t,
                              double scale) {
    __shared__ row_sh sh;
    size_t n = blockIdx.x;
    const float *s = S + n * K;
    float mx = row_max(s, K, &sh);
    float l0 = (float)row_lse0(s, K, mx, inv_t, &sh);
    double g = scale * (w ? (double)w[n] : 1.0) * inv_t;
    ce_back_row(dS + n * K, s, T + n * K, K, inv_t, g, mx, l0, &sh, false);
}
static void gpu_ce_backward(dx_backend *be, float *dS, const float *S, const float *T, const float *w, int N, int K,
                            float temp, float scale) {
    ROWS_LAUNCH(be, k_ce_backward, N, dS, S, T, w, K, 1.0 / (double)temp, (double)scale);
}

static int dino_npairs(int ns, int nt, int ignore_diag) {
    int np = 0;
    for (int c = 0; c < ns; c++)
        for (int t = 0; t < nt; t++)
            if (!(ignore_diag && c == t)) np++;
    return np;
}
__global__ void k_dino_forward(double *part, const float *S, const float *T, int nt, int B, int K, double inv_t,
                               int ignore_diag) {
    __shared__ row_sh sh;
    int r = blockIdx.x, c = r / B, b = r % B;
    const float *s = S + (size_t)r * K;
    float mx = row_max(s, K, &sh);
    double lse = (double)mx * inv_t + row_lse0(s, K, mx, inv_t, &sh);
    double acc = 0;
    for (int t = 0; t < nt; t++) {
        if (ignore_diag && c == t) continue;
        acc += ce_row(s, T + ((size_t)t * B + b) * K, K, inv_t, lse, &sh);
    }
    if (threadIdx.x == 0) part[r] = acc;
}
static double gpu_dino_forward(dx_backend *be, const float *S, int ns, const float *T, int nt, int B, int K, float temp,
                               int ignore_diag) {
    int np = dino_npairs(ns, nt, ignore_diag), rows = ns * B;
    if (np == 0 || rows <= 0) return 0.0;
    double *part = (double *)gpu_scratch(be, GPU_SCRATCH_OP, sizeof(double) * (size_t)rows);
    if (!part) return NAN;
    ROWS_LAUNCH(be, k_dino_forward, rows, part, S, T, nt, B, K, 1.0 / (double)temp, ignore_diag);
    return sum_to_host(be, part, rows) / ((double)np * B);
}
__global__ void k_dino_backward(float *dS, const float *S, const float *T, int nt, int B, int K, double inv_t,
                                int ignore_diag, double g) {
    __shared__ row_sh sh;
    int r = blockIdx.x, c = r / B, b = r % B;
    const float *s = S + (size_t)r * K;
    float mx = row_max(s, K, &sh);
    float l0 = (float)row_lse0(s, K, mx, inv_t, &sh);
    for (int t = 0; t < nt; t++) {
        if (ignore_diag && c == t) continue;
        ce_back_row(dS + (size_t)r * K, s, T + ((size_t)t * B + b) * K, K, inv_t, g, mx, l0, &sh, true);
        __syncthreads(); /* each element of the row is written by one thread; the next pass reads the same */
    }
}
static void gpu_dino_backward(dx_backend *be, float *dS, const float *S, int ns, const float *T, int nt, int B, int K,
                              float temp, int ignore_diag, float scale) {
    int np = dino_npairs(ns, nt, ignore_diag);
    if (np == 0) return;
    double inv_t = 1.0 / (double)temp, g = (double)scale / ((double)np * B) * inv_t;
    ROWS_LAUNCH(be, k_dino_backward, ns * B, dS, S, T, nt, B, K, inv_t, ignore_diag, g);
}

/* ---- L2 normalisation ------------------------------------------------------------------------- */

__global__ void k_l2norm_forward(float *out, const float *x, int D, double eps) {
    __shared__ double sh[DX_GPU_BLOCK];
    size_t m = blockIdx.x;
    const float *xr = x + m * D;
    double s = 0;
    for (int i = threadIdx.x; i < D; i += DX_GPU_BLOCK) s += (double)xr[i] * (double)xr[i];
    double n = sqrt(gpu_block_sum(s, sh));
    double inv = 1.0 / (n > eps ? n : eps);
    for (int i = threadIdx.x; i < D; i += DX_GPU_BLOCK) out[m * D + i] = (float)((double)xr[i] * inv);
}
static void gpu_l2norm_forward(dx_backend *be, float *out, const float *x, int M, int D, float eps) {
    ROWS_LAUNCH(be, k_l2norm_forward, M, out, x, D, (double)eps);
}
/* dx += gradient of x / max(|x|, eps) given dz (float or double) */
template <typename DZ>
__global__ void k_l2norm_backward(float *dx, const float *x, const DZ *dz, int D, double eps) {
    __shared__ double sh[DX_GPU_BLOCK];
    size_t m = blockIdx.x;
    const float *xr = x + m * D;
    const DZ *g = dz + m * D;
    double s = 0, zd = 0;
    for (int i = threadIdx.x; i < D; i += DX_GPU_BLOCK) {
        s += (double)xr[i] * (double)xr[i];
        zd += (double)xr[i] * (double)g[i];
    }
    double n = sqrt(gpu_block_sum(s, sh));
    zd = gpu_block_sum(zd, sh);
    if (n >= eps && n > 0) {
        zd /= n * n;
        for (int i = threadIdx.x; i < D; i += DX_GPU_BLOCK) dx[m * D + i] += (float)(((double)g[i] - (double)xr[i] * zd) / n);
    } else {
        for (int i = threadIdx.x; i < D; i += DX_GPU_BLOCK) dx[m * D + i] += (float)((double)g[i] / eps);
    }
}
static void gpu_l2norm_backward(dx_backend *be, float *dx, const float *x, const float *dout, int M, int D, float eps) {
    ROWS_LAUNCH(be, k_l2norm_backward<float>, M, dx, x, dout, D, (double)eps);
}
void gpu_l2norm_backward_f64(dx_backend *be, float *dx, const float *x, const double *dz, int M, int D, double eps) {
    ROWS_LAUNCH(be, k_l2norm_backward<double>, M, dx, x, dz, D, eps);
}

/* ---- KoLeo --------------------------------------------------------------------------------------- */

#define KOLEO_EPS 1e-8

__global__ void k_koleo_inv(double *inv, const float *x, int D) {
    __shared__ double sh[DX_GPU_BLOCK];
    size_t b = blockIdx.x;
    double s = 0;
    for (int i = threadIdx.x; i < D; i += DX_GPU_BLOCK) s += (double)x[b * D + i] * (double)x[b * D + i];
    double n = sqrt(gpu_block_sum(s, sh));
    if (threadIdx.x == 0) inv[b] = 1.0 / (n > KOLEO_EPS ? n : KOLEO_EPS);
}
/* nn[b] = first argmax over j != b of z_b.z_j (diagonal -1); part[b] = -log(|z_b - z_nn + eps| + eps) */
__global__ void k_koleo_forward(int32_t *nn, double *part, const float *x, const double *inv, int B, int D) {
    __shared__ double sh[DX_GPU_BLOCK];
    int b = blockIdx.x;
    const float *xb = x + (size_t)b * D;
    double best = -INFINITY;
    int arg = 0;
    for (int j = 0; j < B; j++) {
        double dot = 0;
        if (j != b)
            for (int i = threadIdx.x; i < D; i += DX_GPU_BLOCK)
                dot += ((double)xb[i] * inv[b]) * ((double)x[(size_t)j * D + i] * inv[j]);
        dot = j != b ? gpu_block_sum(dot, sh) : -1.0;
        if (dot > best) {
            best = dot;
            arg = j;
        }
    }
    const float *xn = x + (size_t)arg * D;
    double d2 = 0;
    for (int i = threadIdx.x; i < D; i += DX_GPU_BLOCK) {
        double u = (double)xb[i] * inv[b] - (double)xn[i] * inv[arg] + KOLEO_EPS;
        d2 += u * u;
    }
    d2 = gpu_block_sum(d2, sh);
    if (threadIdx.x == 0) {
        nn[b] = arg;
        part[b] = -log(sqrt(d2) + KOLEO_EPS);
    }
}
static double gpu_koleo_forward(dx_backend *be, int32_t *nn, const float *x, int B, int D) {
    if (B <= 0) return 0.0;
    double *dd = (double *)gpu_scratch(be, GPU_SCRATCH_OP, sizeof(double) * 2 * (size_t)B);
    if (!dd) return NAN;
    ROWS_LAUNCH(be, k_koleo_inv, B, dd, x, D);
    ROWS_LAUNCH(be, k_koleo_forward, B, nn, dd + B, x, dd, B, D);
    return sum_to_host(be, dd + B, B) / B;
}
/* g[b] = dL/dd_b / d_b (0 where d_b = 0) */
__global__ void k_koleo_coef(double *g, const float *x, const double *inv, const int32_t *nn, int B, int D, double scale) {
    __shared__ double sh[DX_GPU_BLOCK];
    int b = blockIdx.x, j = nn[b];
    double d2 = 0;
    for (int i = threadIdx.x; i < D; i += DX_GPU_BLOCK) {
        double u = (double)x[(size_t)b * D + i] * inv[b] - (double)x[(size_t)j * D + i] * inv[j] + KOLEO_EPS;
        d2 += u * u;
    }
    double d = sqrt(gpu_block_sum(d2, sh));
    if (threadIdx.x == 0) g[b] = d == 0 ? 0.0 : -scale / ((double)B * (d + KOLEO_EPS)) / d;
}
/* dz[b,i] = g_b u_b,i - sum over b' with nn[b'] = b of g_b' u_b',i (u_b = z_b - z_nn(b) + eps) */
__global__ void k_koleo_dz(double *dz, const float *x, const double *inv, const double *g, const int32_t *nn, int B,
                           int D) {
    GPU_FOR(e, (size_t)B * D) {
        int b = (int)(e / D), i = (int)(e % D);
        int j = nn[b];
        double acc = g[b] * ((double)x[(size_t)b * D + i] * inv[b] - (double)x[(size_t)j * D + i] * inv[j] + KOLEO_EPS);
        for (int c = 0; c < B; c++) {
            if (nn[c] != b) continue;
            double u = (double)x[(size_t)c * D + i] * inv[c] - (double)x[(size_t)b * D + i] * inv[b] + KOLEO_EPS;
            acc -= g[c] * u;
        }
        dz[e] = acc;
    }
}
static void gpu_koleo_backward(dx_backend *be, float *dx, const float *x, const int32_t *nn, int B, int D, float scale) {
    if (B <= 0) return;
    double *dd = (double *)gpu_scratch(be, GPU_SCRATCH_OP, sizeof(double) * (2 * (size_t)B + (size_t)B * D));
    if (!dd) return;
    double *inv = dd, *g = dd + B, *dz = dd + 2 * B;
    ROWS_LAUNCH(be, k_koleo_inv, B, inv, x, D);
    ROWS_LAUNCH(be, k_koleo_coef, B, g, x, inv, nn, B, D, (double)scale);
    ELEM_LAUNCH(be, k_koleo_dz, (size_t)B * D, dz, x, inv, g, nn, B, D);
    gpu_l2norm_backward_f64(be, dx, x, dz, B, D, KOLEO_EPS);
}

/* ---- Gram loss ----------------------------------------------------------------------------------- */

#define GRAM_EPS 1e-12
#define GRAM_BLOCK_FLOATS ((size_t)16 << 20) /* one block of Gram rows: 64 MB */
#define GRAM_SQ_BLOCKS 32

/* dz[r, :] = coef * E[r, :] xg, summed in double as the CPU does: the
 * L2-normalisation backward keeps only the part of dz orthogonal to x_hat,
 * small for this loss, so an fp32 GEMM here costs ~1e-3 of the gradient.
 * One block per row, threads over the D columns (xg rows read coalesced). */
__global__ void k_gram_dz(float *dz, const float *E, const float *xg, int G, int D, double coef) {
    const size_t r = blockIdx.x;
    const float *e = E + r * G;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        double acc = 0;
        for (int q = 0; q < G; q++) acc += (double)e[q] * (double)xg[(size_t)q * D + d];
        dz[r * D + d] = (float)(coef * acc);
    }
}

/* For each Gram block (an image, or all rows) and each block of rb rows:
 * E = xs_hat[r] xs_hat[g]^T - xt_hat[r] xt_hat[g]^T. Forward (dxs NULL): the
 * sum of E^2 into red[1]; backward: dz = coef E xs_hat[g], then through the
 * normalisation of rows r. */
static void gram_blocks(dx_backend *be, float *dxs, const float *xs, const float *xs_hat, const float *xt_hat, int nimg,
                        int P, int D, int img_level, double coef) {
    gpu_state *st = gpu_st(be);
    const int M = nimg * P, G = img_level ? P : M;
    size_t rbz = GRAM_BLOCK_FLOATS / (size_t)G;
    int rb = rbz < 1 ? 1 : (rbz > (size_t)G ? G : (int)rbz);
    float *E = (float *)gpu_scratch(be, GPU_SCRATCH_OP2, sizeof(float) * (size_t)rb * G);
    float *dz = dxs ? (float *)gpu_scratch(be, GPU_SCRATCH_OP, sizeof(float) * (size_t)rb * D) : NULL;
    if (!E || (dxs && !dz)) return;
    for (int g0 = 0; g0 < M; g0 += G)
        for (int r0 = g0; r0 < g0 + G; r0 += rb) {
            int nr = g0 + G - r0 < rb ? g0 + G - r0 : rb;
            gpu_gemm(be, 0, 1, nr, G, D, 1.0f, xs_hat + (size_t)r0 * D, D, xs_hat + (size_t)g0 * D, D, 0.0f, E, G, 1, 0, 0, 0);
            gpu_gemm(be, 0, 1, nr, G, D, -1.0f, xt_hat + (size_t)r0 * D, D, xt_hat + (size_t)g0 * D, D, 1.0f, E, G, 1, 0, 0,
                     0);
            if (!dxs) {
                gpu_sumsq_f64_dev(be, st->red + 1, st->red + 16, GRAM_SQ_BLOCKS, E, (size_t)nr * G, 1);
            } else {
                k_gram_dz<<<nr, DX_GPU_BLOCK, 0, gpu_stream(be)>>>(dz, E, xs_hat + (size_t)g0 * D, G, D, coef);
                GPU_LAUNCHED(be);
                ROWS_LAUNCH(be, k_l2norm_backward<float>, nr, dxs + (size_t)r0 * D, xs + (size_t)r0 * D, dz, D, GRAM_EPS);
            }
        }
}
static double gpu_gram_forward(dx_backend *be, float *xs_hat, float *xt_hat, const float *xs, const float *xt, int nimg,
                               int P, int D, int img_level) {
    const int M = nimg * P, G = img_level ? P : M;
    if (M <= 0) return 0.0;
    ROWS_LAUNCH(be, k_l2norm_forward, M, xs_hat, xs, D, GRAM_EPS); /* eps in double, as on the CPU */
    ROWS_LAUNCH(be, k_l2norm_forward, M, xt_hat, xt, D, GRAM_EPS);
    gpu_state *st = gpu_st(be);
    GPU_CHECK(be, cudaMemsetAsync(st->red, 0, sizeof(double) * 2, gpu_stream(be)));
    gram_blocks(be, NULL, xs, xs_hat, xt_hat, nimg, P, D, img_level, 0.0);
    double r[2];
    gpu_red_to_host(be, r, 2);
    return r[1] / ((double)M * G);
}
static void gpu_gram_backward(dx_backend *be, float *dxs, const float *xs, const float *xs_hat, const float *xt_hat,
                              int nimg, int P, int D, int img_level, float scale) {
    const int M = nimg * P, G = img_level ? P : M;
    if (M <= 0) return;
    gram_blocks(be, dxs, xs, xs_hat, xt_hat, nimg, P, D, img_level, (double)scale * 4.0 / ((double)M * G));
}

/* ---- bicubic resize (PyTorch upsample_bicubic2d, align_corners = False) ----------------------- */

__device__ inline void cubic_taps(int dst, int in, int out, int idx[4], float wt[4]) {
    const float A = -0.75f;
    float scale = (float)in / (float)out;
    float src = scale * ((float)dst + 0.5f) - 0.5f;
    int i0 = (int)floorf(src);
    if (i0 > in - 1) i0 = in - 1;
    float t = src - (float)i0;
    t = t < 0 ? 0 : (t > 1 ? 1 : t);
    float x1 = t, x2 = 1.0f - t, y;
    y = x1 + 1.0f;
    wt[0] = ((A * y - 5.0f * A) * y + 8.0f * A) * y - 4.0f * A;
    wt[1] = ((A + 2.0f) * x1 - (A + 3.0f)) * x1 * x1 + 1.0f;
    wt[2] = ((A + 2.0f) * x2 - (A + 3.0f)) * x2 * x2 + 1.0f;
    y = x2 + 1.0f;
    wt[3] = ((A * y - 5.0f * A) * y + 8.0f * A) * y - 4.0f * A;
    for (int k = 0; k < 4; k++) {
        int v = i0 - 1 + k;
        idx[k] = v < 0 ? 0 : (v > in - 1 ? in - 1 : v);
    }
}
__global__ void k_resize_bicubic(float *out, const float *in, int nimg, int Hin, int Win, int Hout, int Wout, int C) {
    GPU_FOR(e, (size_t)nimg * Hout * Wout * C) {
        int c = (int)(e % C);
        size_t r = e / C;
        int ox = (int)(r % Wout), oy = (int)((r / Wout) % Hout);
        size_t im = r / ((size_t)Wout * Hout);
        int iy[4], ix[4];
        float wy[4], wx[4];
        cubic_taps(oy, Hin, Hout, iy, wy);
        cubic_taps(ox, Win, Wout, ix, wx);
        const float *src = in + im * Hin * Win * C + c;
        float rows[4];
        for (int j = 0; j < 4; j++) {
            const float *rp = src + (size_t)iy[j] * Win * C;
            rows[j] = rp[(size_t)ix[0] * C] * wx[0] + rp[(size_t)ix[1] * C] * wx[1] + rp[(size_t)ix[2] * C] * wx[2] +
                      rp[(size_t)ix[3] * C] * wx[3];
        }
        out[e] = rows[0] * wy[0] + rows[1] * wy[1] + rows[2] * wy[2] + rows[3] * wy[3];
    }
}
static void gpu_resize_bicubic(dx_backend *be, float *out, const float *in, int nimg, int Hin, int Win, int Hout,
                               int Wout, int C) {
    ELEM_LAUNCH(be, k_resize_bicubic, (size_t)nimg * Hout * Wout * C, out, in, nimg, Hin, Win, Hout, Wout, C);
}
/* the adjoint as a gather (one thread per input element, no atomics): the
 * weight of output (oy, ox) on input (iy, ix) is the sum of the tap weights
 * that land on iy, times those that land on ix (clamped taps coincide) */
__global__ void k_resize_bicubic_backward(float *din, const float *dout, int nimg, int Hin, int Win, int Hout, int Wout,
                                          int C) {
    GPU_FOR(e, (size_t)nimg * Hin * Win * C) {
        int c = (int)(e % C);
        size_t r = e / C;
        int ix = (int)(r % Win), iy = (int)((r / Win) % Hin);
        size_t im = r / ((size_t)Win * Hin);
        float acc = 0;
        for (int oy = 0; oy < Hout; oy++) {
            int ty[4];
            float wy[4];
            cubic_taps(oy, Hin, Hout, ty, wy);
            float a = 0;
            for (int j = 0; j < 4; j++)
                if (ty[j] == iy) a += wy[j];
            if (a == 0) continue;
            for (int ox = 0; ox < Wout; ox++) {
                int tx[4];
                float wx[4];
                cubic_taps(ox, Win, Wout, tx, wx);
                float b = 0;
                for (int i = 0; i < 4; i++)
                    if (tx[i] == ix) b += wx[i];
                if (b != 0) acc += dout[((im * Hout + oy) * Wout + ox) * C + c] * (a * b);
            }
        }
        din[e] += acc;
    }
}
static void gpu_resize_bicubic_backward(dx_backend *be, float *din, const float *dout, int nimg, int Hin, int Win,
                                        int Hout, int Wout, int C) {
    ELEM_LAUNCH(be, k_resize_bicubic_backward, (size_t)nimg * Hin * Win * C, din, dout, nimg, Hin, Win, Hout, Wout, C);
}

/* ---- health statistics (on the host, from a download) ------------------------------------------ */

static float *download_floats(dx_backend *be, const float *src, size_t n) {
    float *h = (float *)malloc(sizeof(float) * (n ? n : 1));
    if (h) be->ops->download(be, h, src, sizeof(float) * n);
    return h;
}
static void gpu_prob_stats(dx_backend *be, double out[DX_PROB_STATS], const float *P, int N, int K, float temp,
                           int from_logits) {
    float *h = download_floats(be, P, (size_t)N * K);
    if (!h) {
        for (int i = 0; i < DX_PROB_STATS; i++) out[i] = NAN;
        return;
    }
    dx_cpu_prob_stats(out, h, N, K, temp, from_logits);
    free(h);
}
static void gpu_feature_stats(dx_backend *be, double out[DX_FEATURE_STATS], const float *x, int N, int D) {
    float *h = download_floats(be, x, (size_t)N * D);
    if (!h) {
        for (int i = 0; i < DX_FEATURE_STATS; i++) out[i] = NAN;
        return;
    }
    dx_cpu_feature_stats(out, h, N, D);
    free(h);
}
static double gpu_patch_cosine(dx_backend *be, const float *x, int nimg, int P, int D, size_t img_stride) {
    if (P < 2 || nimg < 1) return 0;
    size_t n = (size_t)(nimg - 1) * img_stride + (size_t)P * D;
    float *h = download_floats(be, x, n);
    if (!h) return NAN;
    double r = dx_cpu_patch_cosine(h, nimg, P, D, img_stride);
    free(h);
    return r;
}
__global__ void k_row_argmax(int32_t *idx, const float *P, int K) {
    __shared__ float shv[DX_GPU_BLOCK];
    __shared__ int shi[DX_GPU_BLOCK];
    const float *r = P + (size_t)blockIdx.x * K;
    float best = -INFINITY;
    int arg = K; /* no element yet: loses every tie */
    for (int k = threadIdx.x; k < K; k += DX_GPU_BLOCK)
        if (r[k] > best || arg == K) {
            best = r[k];
            arg = k;
        }
    arg = gpu_block_argmax(best, arg, shv, shi);
    if (threadIdx.x == 0) idx[blockIdx.x] = arg < K ? arg : 0;
}
static void gpu_row_argmax(dx_backend *be, int32_t *idx, const float *P, int N, int K) {
    ROWS_LAUNCH(be, k_row_argmax, N, idx, P, K);
}

void gpu_fill_loss_ops(struct dx_loss_ops *o) {
    o->sinkhorn_knopp = gpu_sinkhorn_knopp;
    o->sk_chunk_colmax = gpu_sk_chunk_colmax;
    o->sk_chunk_colsum = gpu_sk_chunk_colsum;
    o->sk_chunk_rowscale = gpu_sk_chunk_rowscale;
    o->sk_chunk_targets = gpu_sk_chunk_targets;
    o->softmax_center = gpu_softmax_center;
    o->row_mean = gpu_row_mean;
    o->ce_forward = gpu_ce_forward;
    o->ce_backward = gpu_ce_backward;
    o->dino_forward = gpu_dino_forward;
    o->dino_backward = gpu_dino_backward;
    o->koleo_forward = gpu_koleo_forward;
    o->koleo_backward = gpu_koleo_backward;
    o->gram_forward = gpu_gram_forward;
    o->gram_backward = gpu_gram_backward;
    o->resize_bicubic = gpu_resize_bicubic;
    o->resize_bicubic_backward = gpu_resize_bicubic_backward;
    o->l2norm_forward = gpu_l2norm_forward;
    o->l2norm_backward = gpu_l2norm_backward;
    o->prob_stats = gpu_prob_stats;
    o->feature_stats = gpu_feature_stats;
    o->patch_cosine = gpu_patch_cosine;
    o->row_argmax = gpu_row_argmax;
}
