/* gpu_attention.cu - attention on the strided qkv layout (dx_backend.h).
 *
 * qkv[N,T,3,H,Dh]: for image n, head h, q/k/v are [T,Dh] views with leading
 * dimension 3*H*Dh, and the H heads of one image are Dh apart, so each GEMM
 * of an image is one strided-batched BLAS call over its heads; no copies.
 *  - Forward with att (training): the unfused reference path, S = scale q k^T
 *    into att, row softmax, O = P v. Backward from att: dV = P^T dO,
 *    dP = dO V^T, dS = P (dP - rowsum(dP P)), dQ = scale dS K, dK = scale dS^T Q.
 *  - Forward with att NULL (passes without backward): a fused kernel, K/V
 *    tiles in shared memory, a running max and sum in fp32 (online softmax):
 *    no T x T matrix in memory. Under the fp32 policy, the fp32 form (one
 *    thread per query row). Under the bf16 policy, on GPUs with bf16 matrix
 *    units (sm_80+, gfx11) and Dh 32 or 64, the tensor-core form: q, k, v
 *    rounded to bf16, S = q k^T and O += P v as 16x16x16 tiles (gpu_tile.cuh),
 *    the softmax statistics and O in fp32. The fused backward is the next step
 *    (docs/gpu.md). */
#include <math.h>

#include "backend/gpu/gpu_common.cuh"
#include "backend/gpu/gpu_tile.cuh"

/* ---- unfused path ----------------------------------------------------------------- */

static void attention_unfused_image(dx_backend *be, float *out, float *P, const float *qkv, int n, int T, int H,
                                    int Dh, float scale) {
    const int rs = 3 * H * Dh, os = H * Dh;
    const float *q = qkv + (size_t)n * T * rs, *k = q + os, *v = q + 2 * os;
    gpu_gemm(be, 0, 1, T, T, Dh, scale, q, rs, k, rs, 0.0f, P, T, H, Dh, Dh, (int64_t)T * T);
    gpu_softmax_forward(be, P, P, H * T, T, 1.0f);
    gpu_gemm(be, 0, 0, T, Dh, T, 1.0f, P, T, v, rs, 0.0f, out + (size_t)n * T * os, os, H, (int64_t)T * T, Dh, Dh);
}

/* ---- fused forward (no probabilities kept) -------------------------------------------- */

#define FA_ROWS 64 /* query rows (threads) per block */
#define FA_KT 32   /* keys per shared-memory tile */

template <int DH>
__global__ void k_flash_forward(float *out, const float *qkv, int T, int H, float scale) {
    __shared__ float ks[FA_KT * DH], vs[FA_KT * DH];
    const int nh = blockIdx.y, n = nh / H, h = nh % H;
    const int i = blockIdx.x * FA_ROWS + threadIdx.x;
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
    }
}

template <int DH>
static void flash_forward(dx_backend *be, float *out, const float *qkv, int N, int T, int H, float scale) {
    dim3 grid((T + FA_ROWS - 1) / FA_ROWS, N * H);
    k_flash_forward<DH><<<grid, FA_ROWS, 0, gpu_stream(be)>>>(out, qkv, T, H, scale);
    GPU_LAUNCHED(be);
}

/* ---- fused forward on the matrix units (bf16 policy) ------------------------------------ */

#define FM_WARPS 4                 /* warps per block, 16 query rows each */
#define FM_BQ (FM_WARPS * DX_TILE) /* query rows per block */
#define FM_BK 32                   /* keys per shared-memory tile */

/* grid (ceil(T / FM_BQ), N * H), FM_WARPS * 32 threads. Shared memory for
 * Dh 64: q 8 KB, k and v 4 KB each, S 8 KB, P 4 KB, O 16 KB (45.6 KB in all). */
template <int DH>
__global__ void k_flash_forward_mma(float *out, const float *qkv, int T, int H, float scale) {
#if defined(DX_TILE_MMA)
    __shared__ __align__(32) uint16_t qs[FM_BQ * DH], ks[FM_BK * DH], vs[FM_BK * DH];
    __shared__ __align__(32) float ss[FM_WARPS][DX_TILE * FM_BK];
    __shared__ __align__(32) uint16_t ps[FM_WARPS][DX_TILE * FM_BK];
    __shared__ __align__(32) float os_[FM_WARPS][DX_TILE * DH];
    __shared__ float row_m[FM_BQ], row_l[FM_BQ], row_a[FM_BQ];
    const int nh = blockIdx.y, n = nh / H, h = nh % H, q0 = blockIdx.x * FM_BQ;
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
#elif defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__)
    __trap(); /* built for a target without bf16 matrix units but run on one that has them (PTX JIT): fail loudly */
#endif
}

template <int DH>
static void flash_forward_mma(dx_backend *be, float *out, const float *qkv, int N, int T, int H, float scale) {
    dim3 grid((T + FM_BQ - 1) / FM_BQ, N * H);
    k_flash_forward_mma<DH><<<grid, FM_WARPS * DX_TILE_WARP, 0, gpu_stream(be)>>>(out, qkv, T, H, scale);
    GPU_LAUNCHED(be);
}

static void gpu_attention_forward(dx_backend *be, float *out, float *att, const float *qkv, int N, int T, int H,
                                  int Dh, float scale) {
    if (N <= 0 || T <= 0) return;
    if (att) {
        for (int n = 0; n < N; n++) attention_unfused_image(be, out, att + (size_t)n * H * T * T, qkv, n, T, H, Dh, scale);
        return;
    }
    if (be->precision == DX_PREC_BF16 && gpu_st(be)->tile_ok && (Dh == 32 || Dh == 64)) {
        if (Dh == 32) flash_forward_mma<32>(be, out, qkv, N, T, H, scale);
        else flash_forward_mma<64>(be, out, qkv, N, T, H, scale);
        return;
    }
    switch (Dh) {
    case 16: flash_forward<16>(be, out, qkv, N, T, H, scale); return;
    case 32: flash_forward<32>(be, out, qkv, N, T, H, scale); return;
    case 64: flash_forward<64>(be, out, qkv, N, T, H, scale); return;
    case 128: flash_forward<128>(be, out, qkv, N, T, H, scale); return;
    default: break;
    }
    /* other head sizes: the unfused path one image at a time, [H,T,T] of scratch */
    float *P = (float *)gpu_scratch(be, GPU_SCRATCH_OP2, sizeof(float) * (size_t)H * T * T);
    if (!P) return;
    for (int n = 0; n < N; n++) attention_unfused_image(be, out, P, qkv, n, T, H, Dh, scale);
}

/* ---- backward from the kept probabilities ---------------------------------------------- */

/* d[row] = p[row] * (d[row] - <d[row], p[row]>), one block per row, in place */
__global__ void k_attention_ds(float *dS, const float *P, int T) {
    __shared__ float sh[DX_GPU_BLOCK];
    size_t r = blockIdx.x;
    float *d = dS + r * T;
    const float *p = P + r * T;
    float dot = 0;
    for (int j = threadIdx.x; j < T; j += DX_GPU_BLOCK) dot += d[j] * p[j];
    dot = gpu_block_sum(dot, sh);
    for (int j = threadIdx.x; j < T; j += DX_GPU_BLOCK) d[j] = p[j] * (d[j] - dot);
}

static void gpu_attention_backward(dx_backend *be, float *dqkv, const float *dout, const float *qkv,
                                   const float *att, int N, int T, int H, int Dh, float scale) {
    if (N <= 0 || T <= 0) return;
    const int rs = 3 * H * Dh, os = H * Dh;
    float *dS = (float *)gpu_scratch(be, GPU_SCRATCH_OP2, sizeof(float) * (size_t)H * T * T);
    if (!dS) return;
    const int64_t tt = (int64_t)T * T;
    for (int n = 0; n < N; n++) {
        const float *q = qkv + (size_t)n * T * rs, *k = q + os, *v = q + 2 * os;
        float *dq = dqkv + (size_t)n * T * rs, *dk = dq + os, *dv = dq + 2 * os;
        const float *go = dout + (size_t)n * T * os, *P = att + (size_t)n * H * tt;
        gpu_gemm(be, 1, 0, T, Dh, T, 1.0f, P, T, go, os, 1.0f, dv, rs, H, tt, Dh, Dh);
        gpu_gemm(be, 0, 1, T, T, Dh, 1.0f, go, os, v, rs, 0.0f, dS, T, H, Dh, Dh, tt);
        k_attention_ds<<<H * T, DX_GPU_BLOCK, 0, gpu_stream(be)>>>(dS, P, T);
        GPU_LAUNCHED(be);
        gpu_gemm(be, 0, 0, T, Dh, T, scale, dS, T, k, rs, 1.0f, dq, rs, H, tt, Dh, Dh);
        gpu_gemm(be, 1, 0, T, Dh, T, scale, dS, T, q, rs, 1.0f, dk, rs, H, tt, Dh, Dh);
    }
}

void gpu_fill_attention_ops(dx_backend_ops *o) {
    o->attention_forward = gpu_attention_forward;
    o->attention_backward = gpu_attention_backward;
}
