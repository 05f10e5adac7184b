/* gpu_attention.cu - attention on the strided qkv layout (dx_backend.h).
 *
 * qkv[N,T,3,H,Dh]: for image n, head h, q/k/v are [T,Dh] views with leading
 * dimension 3*H*Dh, and the H heads of one image are Dh apart, so each GEMM
 * of an image is one strided-batched BLAS call over its heads; no copies.
 *  - Forward with att (eval's attention maps): the unfused path, S = scale
 *    q k^T into att, row softmax, O = P v.
 *  - Forward with att NULL (training and passes without backward): a fused
 *    kernel, K/V tiles in shared memory, a running max and sum in fp32
 *    (online softmax): no T x T matrix in memory. Under the fp32 policy, the
 *    fp32 form (one thread per query row). Under the bf16 policy, on GPUs with
 *    bf16 matrix units (sm_80+, gfx11) and Dh 32 or 64, the tensor-core form:
 *    q, k, v rounded to bf16, S = q k^T and O += P v as 16x16x16 tiles
 *    (gpu_tile.cuh), the softmax statistics and O in fp32. Both write each
 *    row's log-sum-exp (lse) when asked.
 *  - Backward from lse: P = exp(scale q k^T - lse) recomputed, D_i = dO_i.O_i,
 *    dS = P (dP - D). Fused for Dh 16/32/64: one kernel walks key tiles per
 *    query row for dQ, one walks query tiles per key row for dK and dV, so
 *    every gradient row has one writer (no atomics: deterministic). Other head
 *    sizes: the unfused path one image at a time, [H,T,T] of scratch twice. */
#include <math.h>

#include "backend/gpu/gpu_common.cuh"
#include "backend/gpu/gpu_tile.cuh"

/* ---- unfused path ----------------------------------------------------------------- */

/* lse[r] = log sum_j exp(S[r, j]), one block per row */
__global__ void k_attention_row_lse(float *lse, const float *S, int T) {
    __shared__ float sh[DX_GPU_BLOCK];
    const float *s = S + (size_t)blockIdx.x * T;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < T; j += DX_GPU_BLOCK) mx = fmaxf(mx, s[j]);
    mx = gpu_block_max(mx, sh);
    float sum = 0;
    for (int j = threadIdx.x; j < T; j += DX_GPU_BLOCK) sum += expf(s[j] - mx);
    sum = gpu_block_sum(sum, sh);
    if (threadIdx.x == 0) lse[blockIdx.x] = mx + logf(sum);
}

/* image n: P[H,T,T] = softmax(scale q k^T), lse[H,T] of its rows (NULL: not wanted), O = P v */
static void attention_unfused_image(dx_backend *be, float *out, float *P, float *lse, const float *qkv, int n, int T,
                                    int H, int Dh, float scale) {
    const int rs = 3 * H * Dh, os = H * Dh;
    const float *q = qkv + (size_t)n * T * rs, *k = q + os, *v = q + 2 * os;
    gpu_gemm(be, 0, 1, T, T, Dh, scale, q, rs, k, rs, 0.0f, P, T, H, Dh, Dh, (int64_t)T * T);
    if (lse) ROWS_LAUNCH(be, k_attention_row_lse, H * T, lse + (size_t)n * H * T, P, T);
    gpu_softmax_forward(be, P, P, H * T, T, 1.0f);
    gpu_gemm(be, 0, 0, T, Dh, T, 1.0f, P, T, v, rs, 0.0f, out + (size_t)n * T * os, os, H, (int64_t)T * T, Dh, Dh);
}

/* ---- fused forward (no probabilities kept) -------------------------------------------- */

#define FA_ROWS 64 /* query rows (threads) per block */
#define FA_KT 32   /* keys per shared-memory tile */

template <int DH>
__global__ void k_flash_forward(float *out, float *lse, const float *qkv, int T, int H, float scale) {
    __shared__ float ks[FA_KT * DH], vs[FA_KT * DH];
    const int nh = blockIdx.x, n = nh / H, h = nh % H;
    const int i = blockIdx.y * FA_ROWS + threadIdx.x;
    const size_t rs = (size_t)3 * H * DH, os = (size_t)H * DH;
    const float *q0 = qkv + (size_t)n * T * rs + (size_t)h * DH, *k0 = q0 + os, *v0 = q0 + 2 * os;
    float q[DH], o[DH];
    float m = -INFINITY, l = 0;
    for (int d = 0; d < DH; d++) {
        q[d] = i < T ? q0[(size_t)i * rs + d] : 0.0f;
        o[d] = 0;
    }
    for (int j0 = 0; j0 < T; j0 += FA_KT) {
        const int nk = T - j0 < FA_KT ? T - j0 : FA_KT;
        for (int e = threadIdx.x; e < nk * DH; e += FA_ROWS) {
            int jj = e / DH, d = e % DH;
            ks[e] = k0[(size_t)(j0 + jj) * rs + d];
            vs[e] = v0[(size_t)(j0 + jj) * rs + d];
        }
        __syncthreads();
        if (i < T)
            for (int jj = 0; jj < nk; jj++) {
                float s = 0;
                for (int d = 0; d < DH; d++) s += q[d] * ks[jj * DH + d];
                s *= scale;
                float mn = fmaxf(m, s), corr = expf(m - mn), p = expf(s - mn);
                l = l * corr + p;
                for (int d = 0; d < DH; d++) o[d] = o[d] * corr + p * vs[jj * DH + d];
                m = mn;
            }
        __syncthreads();
    }
    if (i < T) {
        float inv = 1.0f / l;
        for (int d = 0; d < DH; d++) out[((size_t)n * T + i) * os + (size_t)h * DH + d] = o[d] * inv;
        if (lse) lse[(size_t)nh * T + i] = m + logf(l);
    }
}

template <int DH>
static void flash_forward(dx_backend *be, float *out, float *lse, const float *qkv, int N, int T, int H,
                          float scale) {
    dim3 grid(N * H, (T + FA_ROWS - 1) / FA_ROWS); /* pairs in x: up to 2^31 - 1 */
    k_flash_forward<DH><<<grid, FA_ROWS, 0, gpu_stream(be)>>>(out, lse, qkv, T, H, scale);
    GPU_LAUNCHED(be);
}

/* ---- fused forward on the matrix units (bf16 policy) ------------------------------------ */

#define FM_WARPS 4                 /* warps per block, 16 query rows each */
#define FM_BQ (FM_WARPS * DX_TILE) /* query rows per block */
#define FM_BK 32                   /* keys per shared-memory tile */

/* grid (N * H, ceil(T / FM_BQ)), FM_WARPS * 32 threads. Shared memory for
 * Dh 64: q 8 KB, k and v 4 KB each, S 8 KB, P 4 KB, O 16 KB (45.6 KB in all). */
template <int DH>
__global__ void k_flash_forward_mma(float *out, float *lse, const float *qkv, int T, int H, float scale) {
#if defined(DX_TILE_MMA)
    __shared__ __align__(32) uint16_t qs[FM_BQ * DH], ks[FM_BK * DH], vs[FM_BK * DH];
    __shared__ __align__(32) float ss[FM_WARPS][DX_TILE * FM_BK];
    __shared__ __align__(32) uint16_t ps[FM_WARPS][DX_TILE * FM_BK];
    __shared__ __align__(32) float os_[FM_WARPS][DX_TILE * DH];
    __shared__ float row_m[FM_BQ], row_l[FM_BQ], row_a[FM_BQ];
    const int nh = blockIdx.x, n = nh / H, h = nh % H, q0 = blockIdx.y * FM_BQ;
    const int tid = threadIdx.x, warp = tid / DX_TILE_WARP, lane = tid % DX_TILE_WARP;
    const size_t rs = (size_t)3 * H * DH, ostride = (size_t)H * DH;
    const float *qb = qkv + (size_t)n * T * rs + (size_t)h * DH, *kb = qb + ostride, *vb = qb + 2 * ostride;
    for (int e = tid; e < FM_BQ * DH; e += FM_WARPS * DX_TILE_WARP) {
        const int r = e / DH, d = e % DH, t = q0 + r;
        qs[e] = gpu_f32_to_bf16(t < T ? qb[(size_t)t * rs + d] : 0.0f);
    }
    for (int e = lane; e < DX_TILE * DH; e += DX_TILE_WARP) os_[warp][e] = 0.0f;
    if (tid < FM_BQ) row_m[tid] = -INFINITY, row_l[tid] = 0.0f;
    float *S = ss[warp], *O = os_[warp];
    uint16_t *P = ps[warp];
    const uint16_t *Q = qs + warp * DX_TILE * DH;
    for (int k0 = 0; k0 < T; k0 += FM_BK) {
        __syncthreads(); /* the previous tile's k/v are no longer read */
        for (int e = tid; e < FM_BK * DH; e += FM_WARPS * DX_TILE_WARP) {
            const int r = e / DH, d = e % DH, t = k0 + r;
            ks[e] = gpu_f32_to_bf16(t < T ? kb[(size_t)t * rs + d] : 0.0f);
            vs[e] = gpu_f32_to_bf16(t < T ? vb[(size_t)t * rs + d] : 0.0f);
        }
        __syncthreads();
        /* S[16, FM_BK] = Q_w K^T */
        for (int j = 0; j < FM_BK / DX_TILE; j++) {
            tile_acc c;
            tile_zero(c);
            for (int kk = 0; kk < DH / DX_TILE; kk++) {
                tile_a a;
                tile_b_t b;
                tile_load_a(a, Q + kk * DX_TILE, DH);
                tile_load_b_t(b, ks + j * DX_TILE * DH + kk * DX_TILE, DH);
                tile_mma(c, a, b);
            }
            tile_store_acc(c, S + j * DX_TILE, FM_BK);
        }
        __syncthreads();
        /* online softmax, one lane per row of the warp's 16 */
        if (lane < DX_TILE) {
            const int row = warp * DX_TILE + lane;
            const float mo = row_m[row];
            float mx = mo;
            for (int c = 0; c < FM_BK && k0 + c < T; c++) mx = fmaxf(mx, S[lane * FM_BK + c] * scale);
            float sum = 0;
            for (int c = 0; c < FM_BK; c++) {
                const float p = k0 + c < T ? expf(S[lane * FM_BK + c] * scale - mx) : 0.0f;
                P[lane * FM_BK + c] = gpu_f32_to_bf16(p);
                sum += p;
            }
            const float alpha = expf(mo - mx); /* 0 on the first tile (mo = -inf) */
            row_l[row] = row_l[row] * alpha + sum;
            row_m[row] = mx;
            row_a[row] = alpha;
        }
        __syncthreads();
        for (int e = lane; e < DX_TILE * DH; e += DX_TILE_WARP) O[e] *= row_a[warp * DX_TILE + e / DH];
        __syncthreads();
        /* O[16, DH] += P_w[16, FM_BK] V[FM_BK, DH] */
        for (int j = 0; j < DH / DX_TILE; j++) {
            tile_acc c;
            tile_load_acc(c, O + j * DX_TILE, DH);
            for (int kk = 0; kk < FM_BK / DX_TILE; kk++) {
                tile_a a;
                tile_b b;
                tile_load_a(a, P + kk * DX_TILE, FM_BK);
                tile_load_b(b, vs + kk * DX_TILE * DH + j * DX_TILE, DH);
                tile_mma(c, a, b);
            }
            tile_store_acc(c, O + j * DX_TILE, DH);
        }
    }
    __syncthreads();
    for (int e = lane; e < DX_TILE * DH; e += DX_TILE_WARP) {
        const int r = e / DH, d = e % DH, t = q0 + warp * DX_TILE + r;
        if (t < T) out[((size_t)n * T + t) * ostride + (size_t)h * DH + d] = O[e] / row_l[warp * DX_TILE + r];
    }
    if (lse && tid < FM_BQ && q0 + tid < T) lse[(size_t)nh * T + q0 + tid] = row_m[tid] + logf(row_l[tid]);
#elif defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__)
    __trap(); /* built for a target without bf16 matrix units but run on one that has them (PTX JIT): fail loudly */
#endif
}

template <int DH>
static void flash_forward_mma(dx_backend *be, float *out, float *lse, const float *qkv, int N, int T, int H,
                              float scale) {
    dim3 grid(N * H, (T + FM_BQ - 1) / FM_BQ);
    k_flash_forward_mma<DH><<<grid, FM_WARPS * DX_TILE_WARP, 0, gpu_stream(be)>>>(out, lse, qkv, T, H, scale);
    GPU_LAUNCHED(be);
}

static void gpu_attention_forward(dx_backend *be, float *out, float *att, float *lse, const float *qkv, int N,
                                  int T, int H, int Dh, float scale) {
    if (N <= 0 || T <= 0) return;
    if (att) {
        for (int n = 0; n < N; n++)
            attention_unfused_image(be, out, att + (size_t)n * H * T * T, lse, qkv, n, T, H, Dh, scale);
        return;
    }
    if (be->precision == DX_PREC_BF16 && gpu_st(be)->tile_ok && (Dh == 32 || Dh == 64)) {
        if (Dh == 32) flash_forward_mma<32>(be, out, lse, qkv, N, T, H, scale);
        else flash_forward_mma<64>(be, out, lse, qkv, N, T, H, scale);
        return;
    }
    switch (Dh) {
    case 16: flash_forward<16>(be, out, lse, qkv, N, T, H, scale); return;
    case 32: flash_forward<32>(be, out, lse, qkv, N, T, H, scale); return;
    case 64: flash_forward<64>(be, out, lse, qkv, N, T, H, scale); return;
    case 128: flash_forward<128>(be, out, lse, qkv, N, T, H, scale); return;
    default: break;
    }
    /* other head sizes: the unfused path one image at a time, [H,T,T] of scratch */
    float *P = (float *)gpu_scratch(be, GPU_SCRATCH_OP2, sizeof(float) * (size_t)H * T * T);
    if (!P) return;
    for (int n = 0; n < N; n++) attention_unfused_image(be, out, P, lse, qkv, n, T, H, Dh, scale);
}

/* ---- backward from the row statistics -------------------------------------------------- */

/* Dv[(n*H + h)*T + t] = dO . O over the head's Dh columns of token t */
__global__ void k_attention_rowdot(float *Dv, const float *dout, const float *out, int N, int T, int H, int Dh) {
    GPU_FOR(r, (size_t)N * H * T) {
        const size_t t = r % T, nh = r / T, n = nh / H, h = nh % H;
        const size_t o = (n * T + t) * (size_t)H * Dh + h * Dh;
        float s = 0;
        for (int d = 0; d < Dh; d++) s += dout[o + d] * out[o + d];
        Dv[r] = s;
    }
}

#define FB_ROWS 64 /* rows (threads) per block: query rows for dQ, key rows for dK/dV */
#define FB_T 16    /* rows of the other side per shared-memory tile */

/* dQ: one thread per query row i, walking the key tiles. This block's q rows
 * live in shared memory (rows padded to DH + 1: no bank conflicts when each
 * thread reads its own row); dO_i and the dQ accumulator in registers. */
template <int DH>
__global__ void k_flash_backward_dq(float *dqkv, const float *dout, const float *qkv, const float *lse,
                                    const float *Dv, int T, int H, float scale) {
    __shared__ float qs[FB_ROWS * (DH + 1)], ks[FB_T * DH], vs[FB_T * DH];
    const int nh = blockIdx.x, n = nh / H, h = nh % H, i0 = blockIdx.y * FB_ROWS, tid = threadIdx.x;
    const int i = i0 + tid;
    const size_t rs = (size_t)3 * H * DH, os = (size_t)H * DH;
    const float *qb = qkv + (size_t)n * T * rs + (size_t)h * DH, *kb = qb + os, *vb = qb + 2 * os;
    for (int e = tid; e < FB_ROWS * DH; e += FB_ROWS) {
        const int r = e / DH, d = e % DH;
        qs[r * (DH + 1) + d] = i0 + r < T ? qb[(size_t)(i0 + r) * rs + d] : 0.0f;
    }
    float g[DH], dq[DH];
    const float li = i < T ? lse[(size_t)nh * T + i] : 0.0f, Di = i < T ? Dv[(size_t)nh * T + i] : 0.0f;
    for (int d = 0; d < DH; d++) {
        g[d] = i < T ? dout[((size_t)n * T + i) * os + (size_t)h * DH + d] : 0.0f;
        dq[d] = 0;
    }
    const float *q = qs + tid * (DH + 1);
    for (int j0 = 0; j0 < T; j0 += FB_T) {
        const int nk = T - j0 < FB_T ? T - j0 : FB_T;
        __syncthreads(); /* the previous tile is no longer read (and qs is complete on the first) */
        for (int e = tid; e < nk * DH; e += FB_ROWS) {
            const int jj = e / DH, d = e % DH;
            ks[e] = kb[(size_t)(j0 + jj) * rs + d];
            vs[e] = vb[(size_t)(j0 + jj) * rs + d];
        }
        __syncthreads();
        if (i < T)
            for (int jj = 0; jj < nk; jj++) {
                float s = 0, dp = 0;
                for (int d = 0; d < DH; d++) {
                    s += q[d] * ks[jj * DH + d];
                    dp += g[d] * vs[jj * DH + d];
                }
                const float ds = expf(s * scale - li) * (dp - Di) * scale;
                for (int d = 0; d < DH; d++) dq[d] += ds * ks[jj * DH + d];
            }
    }
    if (i < T) {
        float *dqr = dqkv + (size_t)n * T * rs + (size_t)i * rs + (size_t)h * DH;
        for (int d = 0; d < DH; d++) dqr[d] += dq[d];
    }
}

/* dK, dV: one thread per key row j, walking the query tiles (q, dO, lse, D).
 * This block's k and v rows in shared memory (padded), dK and dV in registers. */
template <int DH>
__global__ void k_flash_backward_dkv(float *dqkv, const float *dout, const float *qkv, const float *lse,
                                     const float *Dv, int T, int H, float scale) {
    __shared__ float kv[2 * FB_ROWS * (DH + 1)], qt[FB_T * DH], gt[FB_T * DH], lt[FB_T], dt[FB_T];
    const int nh = blockIdx.x, n = nh / H, h = nh % H, j0 = blockIdx.y * FB_ROWS, tid = threadIdx.x;
    const int j = j0 + tid;
    const size_t rs = (size_t)3 * H * DH, os = (size_t)H * DH;
    const float *qb = qkv + (size_t)n * T * rs + (size_t)h * DH, *kb = qb + os, *vb = qb + 2 * os;
    const float *gb = dout + (size_t)n * T * os + (size_t)h * DH;
    for (int e = tid; e < FB_ROWS * DH; e += FB_ROWS) {
        const int r = e / DH, d = e % DH;
        kv[r * (DH + 1) + d] = j0 + r < T ? kb[(size_t)(j0 + r) * rs + d] : 0.0f;
        kv[(FB_ROWS + r) * (DH + 1) + d] = j0 + r < T ? vb[(size_t)(j0 + r) * rs + d] : 0.0f;
    }
    float dk[DH], dv[DH];
    for (int d = 0; d < DH; d++) dk[d] = dv[d] = 0;
    const float *k = kv + tid * (DH + 1), *v = kv + (FB_ROWS + tid) * (DH + 1);
    for (int i0 = 0; i0 < T; i0 += FB_T) {
        const int nq = T - i0 < FB_T ? T - i0 : FB_T;
        __syncthreads();
        for (int e = tid; e < nq * DH; e += FB_ROWS) {
            const int ii = e / DH, d = e % DH;
            qt[e] = qb[(size_t)(i0 + ii) * rs + d];
            gt[e] = gb[(size_t)(i0 + ii) * os + d];
        }
        if (tid < nq) {
            lt[tid] = lse[(size_t)nh * T + i0 + tid];
            dt[tid] = Dv[(size_t)nh * T + i0 + tid];
        }
        __syncthreads();
        if (j < T)
            for (int ii = 0; ii < nq; ii++) {
                float s = 0, dp = 0;
                for (int d = 0; d < DH; d++) {
                    s += qt[ii * DH + d] * k[d];
                    dp += gt[ii * DH + d] * v[d];
                }
                const float p = expf(s * scale - lt[ii]), ds = p * (dp - dt[ii]) * scale;
                for (int d = 0; d < DH; d++) {
                    dv[d] += p * gt[ii * DH + d];
                    dk[d] += ds * qt[ii * DH + d];
                }
            }
    }
    if (j < T) {
        float *r = dqkv + (size_t)n * T * rs + (size_t)j * rs + (size_t)h * DH;
        for (int d = 0; d < DH; d++) {
            r[os + d] += dk[d];
            r[2 * os + d] += dv[d];
        }
    }
}

template <int DH>
static void flash_backward(dx_backend *be, float *dqkv, const float *dout, const float *qkv, const float *lse,
                           const float *Dv, int N, int T, int H, float scale) {
    dim3 grid(N * H, (T + FB_ROWS - 1) / FB_ROWS);
    k_flash_backward_dq<DH><<<grid, FB_ROWS, 0, gpu_stream(be)>>>(dqkv, dout, qkv, lse, Dv, T, H, scale);
    GPU_LAUNCHED(be);
    k_flash_backward_dkv<DH><<<grid, FB_ROWS, 0, gpu_stream(be)>>>(dqkv, dout, qkv, lse, Dv, T, H, scale);
    GPU_LAUNCHED(be);
}

/* P = exp(P - lse) per row in place (the scores -> probabilities) */
__global__ void k_attention_recompute_p(float *P, const float *lse, size_t rows, int T) {
    GPU_FOR(e, rows * T) P[e] = expf(P[e] - lse[e / T]);
}

/* d[row] = p[row] * (d[row] - D[row]), in place */
__global__ void k_attention_ds(float *dS, const float *P, const float *Dv, size_t rows, int T) {
    GPU_FOR(e, rows * T) dS[e] = P[e] * (dS[e] - Dv[e / T]);
}

static void gpu_attention_backward(dx_backend *be, float *dqkv, const float *dout, const float *qkv,
                                   const float *out, const float *lse, int N, int T, int H, int Dh, float scale) {
    if (N <= 0 || T <= 0) return;
    const int rs = 3 * H * Dh, os = H * Dh;
    const size_t rows = (size_t)N * H * T, tt = (size_t)T * T;
    float *Dv = (float *)gpu_scratch(be, GPU_SCRATCH_OP, sizeof(float) * rows); /* D[N*H*T] */
    if (!Dv) return;
    ELEM_LAUNCH(be, k_attention_rowdot, rows, Dv, dout, out, N, T, H, Dh);
    switch (Dh) {
    case 16: flash_backward<16>(be, dqkv, dout, qkv, lse, Dv, N, T, H, scale); return;
    case 32: flash_backward<32>(be, dqkv, dout, qkv, lse, Dv, N, T, H, scale); return;
    case 64: flash_backward<64>(be, dqkv, dout, qkv, lse, Dv, N, T, H, scale); return;
    default: break;
    }
    /* other head sizes: P and dS of one image, [H,T,T] each */
    float *P = (float *)gpu_scratch(be, GPU_SCRATCH_OP2, sizeof(float) * 2 * H * tt);
    if (!P) return;
    float *dS = P + (size_t)H * tt;
    for (int n = 0; n < N; n++) {
        const float *q = qkv + (size_t)n * T * rs, *k = q + os, *v = q + 2 * os;
        float *dq = dqkv + (size_t)n * T * rs, *dk = dq + os, *dv = dq + 2 * os;
        const float *go = dout + (size_t)n * T * os, *ln = lse + (size_t)n * H * T, *Dn = Dv + (size_t)n * H * T;
        gpu_gemm(be, 0, 1, T, T, Dh, scale, q, rs, k, rs, 0.0f, P, T, H, Dh, Dh, (int64_t)tt);
        ELEM_LAUNCH(be, k_attention_recompute_p, (size_t)H * tt, P, ln, (size_t)H * T, T);
        gpu_gemm(be, 1, 0, T, Dh, T, 1.0f, P, T, go, os, 1.0f, dv, rs, H, (int64_t)tt, Dh, Dh);
        gpu_gemm(be, 0, 1, T, T, Dh, 1.0f, go, os, v, rs, 0.0f, dS, T, H, Dh, Dh, (int64_t)tt);
        ELEM_LAUNCH(be, k_attention_ds, (size_t)H * tt, dS, P, Dn, (size_t)H * T, T);
        gpu_gemm(be, 0, 0, T, Dh, T, scale, dS, T, k, rs, 1.0f, dq, rs, H, (int64_t)tt, Dh, Dh);
        gpu_gemm(be, 1, 0, T, Dh, T, scale, dS, T, q, rs, 1.0f, dk, rs, H, (int64_t)tt, Dh, Dh);
    }
}

void gpu_fill_attention_ops(dx_backend_ops *o) {
    o->attention_forward = gpu_attention_forward;
    o->attention_backward = gpu_attention_backward;
}
