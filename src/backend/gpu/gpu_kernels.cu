/* gpu_kernels.cu - the GPU kernels of every non-GEMM, non-attention op of
 * dx_backend_ops: bias, LayerNorm, GELU, SwiGLU, softmax, RoPE, residual with
 * LayerScale, row gather/scatter, im2col/col2im, token assembly, the vector
 * and optimizer ops, bf16 storage. Semantics: backend/dx_backend.h; every
 * kernel mirrors the CPU kernel of the same name (cpu_kernels.inc,
 * cpu_vec.c) and is tested against it by test_backend_ops.
 *
 * Reductions over rows (bias, LayerNorm and LayerScale parameter gradients)
 * are two-stage: partial column sums per chunk of GPU_ROWS rows, then the
 * chunks summed in order, so the result does not depend on scheduling. */
#include <math.h>
#include <string.h>

#include "backend/gpu/gpu_common.cuh"

#define GPU_ROWS 128 /* rows per chunk of the column reductions */
/* grid (column blocks, chunks), the chunks capped at CUDA's 65535 blocks in y:
 * the part kernels stride over chunks by gridDim.y */
static inline dim3 gpu_part_grid(int cols, int nchunk) {
    return dim3((cols + DX_GPU_BLOCK - 1) / DX_GPU_BLOCK, nchunk < 65535 ? nchunk : 65535);
}


/* ---- column-sum finishing stage: dst[c] += scale * sum_chunks part[chunk, c] (* mask[c]) ---- */

__global__ void k_colsum_finish(float *dst, const float *part, int nchunk, int N, const float *mask, float scale) {
    GPU_FOR(c, (size_t)N) {
        float s = 0;
        for (int k = 0; k < nchunk; k++) s += part[(size_t)k * N + c];
        if (mask) s *= mask[c];
        dst[c] += scale * s;
    }
}

static void colsum_finish(dx_backend *be, float *dst, const float *part, int nchunk, int N, const float *mask,
                          float scale) {
    ELEM_LAUNCH(be, k_colsum_finish, (size_t)N, dst, part, nchunk, N, mask, scale);
}

/* ---- bias -------------------------------------------------------------------------- */

__global__ void k_bias_forward(float *y, const float *b, const float *mask, int M, int N) {
    GPU_FOR(e, (size_t)M * N) {
        int n = (int)(e % N);
        y[e] += mask ? b[n] * mask[n] : b[n];
    }
}
static void gpu_bias_forward(dx_backend *be, float *y, const float *b, const float *mask, int M, int N) {
    ELEM_LAUNCH(be, k_bias_forward, (size_t)M * N, y, b, mask, M, N);
}

/* part[chunk, c] = sum of dy over the chunk's rows; grid (column blocks, chunks) */
__global__ void k_colsum_part(float *part, const float *dy, int M, int N, int nchunk) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= N) return;
    for (int ch = blockIdx.y; ch < nchunk; ch += gridDim.y) {
        int m0 = ch * GPU_ROWS, m1 = m0 + GPU_ROWS < M ? m0 + GPU_ROWS : M;
        float s = 0;
        for (int m = m0; m < m1; m++) s += dy[(size_t)m * N + c];
        part[(size_t)ch * N + c] = s;
    }
}
static void gpu_bias_backward(dx_backend *be, float *db, const float *dy, const float *mask, int M, int N) {
    if (M <= 0 || N <= 0) return;
    int nchunk = (M + GPU_ROWS - 1) / GPU_ROWS;
    float *part = (float *)gpu_scratch(be, GPU_SCRATCH_OP, sizeof(float) * (size_t)nchunk * N);
    if (!part) return;
    k_colsum_part<<<gpu_part_grid(N, nchunk), DX_GPU_BLOCK, 0, gpu_stream(be)>>>(part, dy, M, N, nchunk);
    GPU_LAUNCHED(be);
    colsum_finish(be, db, part, nchunk, N, mask, 1.0f);
}

/* ---- LayerNorm (one block per row) ------------------------------------------------- */

__global__ void k_layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *w,
                                    const float *b, int C, float eps) {
    __shared__ float sh[DX_GPU_BLOCK];
    size_t m = blockIdx.x;
    const float *xr = x + m * C;
    float s = 0;
    for (int c = threadIdx.x; c < C; c += DX_GPU_BLOCK) s += xr[c];
    float mu = gpu_block_sum(s, sh) / C;
    float v = 0; /* two-pass variance, as the CPU kernel */
    for (int c = threadIdx.x; c < C; c += DX_GPU_BLOCK) v += (xr[c] - mu) * (xr[c] - mu);
    v = gpu_block_sum(v, sh);
    float rs = 1.0f / sqrtf(v / C + eps);
    for (int c = threadIdx.x; c < C; c += DX_GPU_BLOCK) out[m * C + c] = (xr[c] - mu) * rs * w[c] + b[c];
    if (threadIdx.x == 0) {
        mean[m] = mu;
        rstd[m] = rs;
    }
}
static void gpu_layernorm_forward(dx_backend *be, float *out, float *mean, float *rstd, const float *x,
                                  const float *w, const float *b, int M, int C, float eps) {
    if (M <= 0) return;
    k_layernorm_forward<<<M, DX_GPU_BLOCK, 0, gpu_stream(be)>>>(out, mean, rstd, x, w, b, C, eps);
    GPU_LAUNCHED(be);
}

__global__ void k_layernorm_backward_dx(float *dx, const float *dout, const float *x, const float *w,
                                        const float *mean, const float *rstd, int C) {
    __shared__ float sh[DX_GPU_BLOCK];
    size_t m = blockIdx.x;
    const float *xr = x + m * C, *g = dout + m * C;
    float mu = mean[m], rs = rstd[m];
    float s1 = 0, s2 = 0;
    for (int c = threadIdx.x; c < C; c += DX_GPU_BLOCK) {
        float dn = g[c] * w[c];
        s1 += dn;
        s2 += dn * (xr[c] - mu) * rs;
    }
    s1 = gpu_block_sum(s1, sh) / C;
    s2 = gpu_block_sum(s2, sh) / C;
    for (int c = threadIdx.x; c < C; c += DX_GPU_BLOCK) {
        float xh = (xr[c] - mu) * rs;
        dx[m * C + c] += (g[c] * w[c] - s1 - xh * s2) * rs;
    }
}
/* partials of dw (part) and db (part + nchunk*C) */
__global__ void k_layernorm_backward_part(float *part, const float *dout, const float *x, const float *mean,
                                          const float *rstd, int M, int C, int nchunk) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    for (int ch = blockIdx.y; ch < nchunk; ch += gridDim.y) {
        int m0 = ch * GPU_ROWS, m1 = m0 + GPU_ROWS < M ? m0 + GPU_ROWS : M;
        float aw = 0, ab = 0;
        for (int m = m0; m < m1; m++) {
            float g = dout[(size_t)m * C + c];
            aw += g * (x[(size_t)m * C + c] - mean[m]) * rstd[m];
            ab += g;
        }
        part[(size_t)ch * C + c] = aw;
        part[((size_t)nchunk + ch) * C + c] = ab;
    }
}
static void gpu_layernorm_backward(dx_backend *be, float *dx, float *dw, float *db, const float *dout,
                                   const float *x, const float *w, const float *mean, const float *rstd, int M,
                                   int C) {
    if (M <= 0 || C <= 0) return;
    if (dx) {
        k_layernorm_backward_dx<<<M, DX_GPU_BLOCK, 0, gpu_stream(be)>>>(dx, dout, x, w, mean, rstd, C);
        GPU_LAUNCHED(be);
    }
    if (!dw && !db) return;
    int nchunk = (M + GPU_ROWS - 1) / GPU_ROWS;
    float *part = (float *)gpu_scratch(be, GPU_SCRATCH_OP, sizeof(float) * 2 * (size_t)nchunk * C);
    if (!part) return;
    k_layernorm_backward_part<<<gpu_part_grid(C, nchunk), DX_GPU_BLOCK, 0, gpu_stream(be)>>>(part, dout, x, mean,
                                                                                            rstd, M, C, nchunk);
    GPU_LAUNCHED(be);
    if (dw) colsum_finish(be, dw, part, nchunk, C, NULL, 1.0f);
    if (db) colsum_finish(be, db, part + (size_t)nchunk * C, nchunk, C, NULL, 1.0f);
}

/* ---- GELU, SwiGLU ------------------------------------------------------------------- */

__global__ void k_gelu_forward(float *out, const float *x, size_t n) {
    GPU_FOR(i, n) {
        float v = x[i];
        out[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752440f));
    }
}
static void gpu_gelu_forward(dx_backend *be, float *out, const float *x, size_t n) {
    ELEM_LAUNCH(be, k_gelu_forward, n, out, x, n);
}
__global__ void k_gelu_backward(float *dx, const float *x, const float *dout, size_t n) {
    GPU_FOR(i, n) {
        float v = x[i];
        float cdf = 0.5f * (1.0f + erff(v * 0.70710678118654752440f));
        float pdf = 0.39894228040143267794f * expf(-0.5f * v * v);
        dx[i] += dout[i] * (cdf + v * pdf);
    }
}
static void gpu_gelu_backward(dx_backend *be, float *dx, const float *x, const float *dout, size_t n) {
    ELEM_LAUNCH(be, k_gelu_backward, n, dx, x, dout, n);
}

__global__ void k_swiglu_forward(float *out, const float *h, int M, int F) {
    GPU_FOR(e, (size_t)M * F) {
        size_t m = e / F, f = e % F;
        float a = h[m * 2 * F + f], b = h[m * 2 * F + F + f];
        float sig = 1.0f / (1.0f + expf(-a));
        out[e] = a * sig * b;
    }
}
static void gpu_swiglu_forward(dx_backend *be, float *out, const float *h, int M, int F) {
    ELEM_LAUNCH(be, k_swiglu_forward, (size_t)M * F, out, h, M, F);
}
__global__ void k_swiglu_backward(float *dh, const float *h, const float *dout, int M, int F) {
    GPU_FOR(e, (size_t)M * F) {
        size_t m = e / F, f = e % F;
        float a = h[m * 2 * F + f], b = h[m * 2 * F + F + f], g = dout[e];
        float sig = 1.0f / (1.0f + expf(-a));
        dh[m * 2 * F + f] += g * b * sig * (1.0f + a * (1.0f - sig));
        dh[m * 2 * F + F + f] += g * a * sig;
    }
}
static void gpu_swiglu_backward(dx_backend *be, float *dh, const float *h, const float *dout, int M, int F) {
    ELEM_LAUNCH(be, k_swiglu_backward, (size_t)M * F, dh, h, dout, M, F);
}

/* ---- softmax (one block per row) ---------------------------------------------------- */

__global__ void k_softmax_forward(float *out, const float *x, int N, float scale) {
    __shared__ float sh[DX_GPU_BLOCK];
    size_t m = blockIdx.x;
    const float *xr = x + m * N;
    float *o = out + m * N;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < N; j += DX_GPU_BLOCK) mx = fmaxf(mx, xr[j] * scale);
    mx = gpu_block_max(mx, sh);
    float s = 0;
    for (int j = threadIdx.x; j < N; j += DX_GPU_BLOCK) {
        float e = expf(xr[j] * scale - mx);
        o[j] = e;
        s += e;
    }
    float inv = 1.0f / gpu_block_sum(s, sh);
    for (int j = threadIdx.x; j < N; j += DX_GPU_BLOCK) o[j] *= inv;
}
void gpu_softmax_forward(dx_backend *be, float *out, const float *x, int M, int N, float scale) {
    if (M <= 0) return;
    k_softmax_forward<<<M, DX_GPU_BLOCK, 0, gpu_stream(be)>>>(out, x, N, scale);
    GPU_LAUNCHED(be);
}
__global__ void k_softmax_backward(float *dx, const float *out, const float *dout, int N, float scale) {
    __shared__ float sh[DX_GPU_BLOCK];
    size_t m = blockIdx.x;
    const float *o = out + m * N, *g = dout + m * N;
    float dot = 0;
    for (int j = threadIdx.x; j < N; j += DX_GPU_BLOCK) dot += g[j] * o[j];
    dot = gpu_block_sum(dot, sh);
    for (int j = threadIdx.x; j < N; j += DX_GPU_BLOCK) dx[m * N + j] += scale * o[j] * (g[j] - dot);
}
static void gpu_softmax_backward(dx_backend *be, float *dx, const float *out, const float *dout, int M, int N,
                                 float scale) {
    if (M <= 0) return;
    k_softmax_backward<<<M, DX_GPU_BLOCK, 0, gpu_stream(be)>>>(dx, out, dout, N, scale);
    GPU_LAUNCHED(be);
}

/* ---- RoPE ------------------------------------------------------------------------------ */

/* angles in double, as the CPU kernel */
__global__ void k_rope_tables(float *sin_t, float *cos_t, const float *periods, int Hp, int Wp, int Dh,
                              float shift_y, float shift_x, float scale_y, float scale_x) {
    const int q4 = Dh / 4, half = Dh / 2;
    GPU_FOR(e, (size_t)Hp * Wp * half) {
        int p = (int)(e / half), j = (int)(e % half);
        int y = p / Wp, x = p % Wp;
        double cy = ((y + 0.5) / Hp * 2.0 - 1.0 + (double)shift_y) * (double)scale_y;
        double cx = ((x + 0.5) / Wp * 2.0 - 1.0 + (double)shift_x) * (double)scale_x;
        const double two_pi = 6.283185307179586476925;
        double ang = j < q4 ? two_pi * cy / (double)periods[j] : two_pi * cx / (double)periods[j - q4];
        float s = (float)sin(ang), c = (float)cos(ang);
        sin_t[(size_t)p * Dh + j] = s;
        sin_t[(size_t)p * Dh + j + half] = s;
        cos_t[(size_t)p * Dh + j] = c;
        cos_t[(size_t)p * Dh + j + half] = c;
    }
}
static void gpu_rope_tables(dx_backend *be, float *sin_t, float *cos_t, const float *periods, int Hp, int Wp,
                            int Dh, float shift_y, float shift_x, float scale_y, float scale_x) {
    ELEM_LAUNCH(be, k_rope_tables, (size_t)Hp * Wp * (Dh / 2), sin_t, cos_t, periods, Hp, Wp, Dh, shift_y, shift_x,
           scale_y, scale_x);
}

/* one thread per (image, patch, q|k, head, i < Dh/2) pair of rotated elements */
__global__ void k_rope_apply(float *qkv, const float *sin_t, const float *cos_t, int N, int T, int H, int Dh,
                             int prefix, float dir) {
    const int half = Dh / 2, np = T - prefix;
    const size_t rs = (size_t)3 * H * Dh;
    GPU_FOR(e, (size_t)N * np * 2 * H * half) {
        int i = (int)(e % half);
        size_t r = e / half;
        int h = (int)(r % H);
        r /= H;
        int part = (int)(r % 2);
        r /= 2;
        int p = (int)(r % np);
        size_t n = r / np;
        float *x = qkv + (n * T + prefix + p) * rs + (size_t)part * H * Dh + (size_t)h * Dh;
        float a = x[i], b = x[i + half], c = cos_t[(size_t)p * Dh + i], s = dir * sin_t[(size_t)p * Dh + i];
        x[i] = a * c - b * s;
        x[i + half] = b * c + a * s;
    }
}
static void gpu_rope_forward(dx_backend *be, float *qkv, const float *sin_t, const float *cos_t, int N, int T,
                             int H, int Dh, int prefix) {
    ELEM_LAUNCH(be, k_rope_apply, (size_t)N * (T - prefix) * 2 * H * (Dh / 2), qkv, sin_t, cos_t, N, T, H, Dh, prefix,
           1.0f);
}
static void gpu_rope_backward(dx_backend *be, float *dqkv, const float *sin_t, const float *cos_t, int N, int T,
                              int H, int Dh, int prefix) {
    ELEM_LAUNCH(be, k_rope_apply, (size_t)N * (T - prefix) * 2 * H * (Dh / 2), dqkv, sin_t, cos_t, N, T, H, Dh,
           prefix, -1.0f);
}

/* ---- residual + LayerScale + stochastic-depth subset ---------------------------------- */

__global__ void k_residual_forward(float *out, const float *y, const float *gamma, const int32_t *idx, int k,
                                   int T, int C, float scale) {
    const size_t ss = (size_t)T * C;
    GPU_FOR(e, (size_t)k * ss) {
        size_t i = e / ss, r = e % ss;
        int c = (int)(r % C);
        size_t s = idx ? (size_t)idx[i] : i;
        out[s * ss + r] += scale * gamma[c] * y[e];
    }
}
static void gpu_residual_forward(dx_backend *be, float *out, const float *x, const float *y, const float *gamma,
                                 const int32_t *idx, int nsamples, int k, int T, int C, float scale) {
    const size_t ss = (size_t)T * C;
    if (out != x) GPU_CHECK(be, cudaMemcpyAsync(out, x, sizeof(float) * ss * nsamples, cudaMemcpyDeviceToDevice,
                                                gpu_stream(be)));
    ELEM_LAUNCH(be, k_residual_forward, (size_t)k * ss, out, y, gamma, idx, k, T, C, scale);
}

__global__ void k_add(float *dst, const float *src, size_t n) {
    GPU_FOR(i, n) dst[i] += src[i];
}
__global__ void k_residual_backward_dy(float *dy, const float *dout, const float *gamma, const int32_t *idx, int k,
                                       int T, int C, float scale) {
    const size_t ss = (size_t)T * C;
    GPU_FOR(e, (size_t)k * ss) {
        size_t i = e / ss, r = e % ss;
        size_t s = idx ? (size_t)idx[i] : i;
        dy[e] += scale * gamma[r % C] * dout[s * ss + r];
    }
}
/* part[chunk, c] over rows (i, t) of the k selected samples */
__global__ void k_residual_dgamma_part(float *part, const float *dout, const float *y, const int32_t *idx, int k,
                                       int T, int C, int nchunk) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const size_t ss = (size_t)T * C;
    for (int ch = blockIdx.y; ch < nchunk; ch += gridDim.y) {
        int r0 = ch * GPU_ROWS, r1 = r0 + GPU_ROWS < k * T ? r0 + GPU_ROWS : k * T;
        float acc = 0;
        for (int r = r0; r < r1; r++) {
            int i = r / T, t = r % T;
            size_t s = idx ? (size_t)idx[i] : (size_t)i;
            acc += dout[s * ss + (size_t)t * C + c] * y[(size_t)i * ss + (size_t)t * C + c];
        }
        part[(size_t)ch * C + c] = acc;
    }
}
static void gpu_residual_backward(dx_backend *be, float *dx, float *dy, float *dgamma, const float *dout,
                                  const float *y, const float *gamma, const int32_t *idx, int nsamples, int k, int T,
                                  int C, float scale) {
    const size_t ss = (size_t)T * C;
    if (dx) ELEM_LAUNCH(be, k_add, ss * nsamples, dx, dout, ss * nsamples);
    if (dy) ELEM_LAUNCH(be, k_residual_backward_dy, (size_t)k * ss, dy, dout, gamma, idx, k, T, C, scale);
    if (dgamma && k > 0 && T > 0 && C > 0) {
        int rows = k * T, nchunk = (rows + GPU_ROWS - 1) / GPU_ROWS;
        float *part = (float *)gpu_scratch(be, GPU_SCRATCH_OP, sizeof(float) * (size_t)nchunk * C);
        if (!part) return;
        k_residual_dgamma_part<<<gpu_part_grid(C, nchunk), DX_GPU_BLOCK, 0, gpu_stream(be)>>>(part, dout, y, idx, k,
                                                                                             T, C, nchunk);
        GPU_LAUNCHED(be);
        colsum_finish(be, dgamma, part, nchunk, C, NULL, scale);
    }
}

__global__ void k_gather_rows(float *dst, const float *src, const int32_t *idx, int k, size_t row) {
    GPU_FOR(e, (size_t)k * row) dst[e] = src[(size_t)idx[e / row] * row + e % row];
}
static void gpu_gather_rows(dx_backend *be, float *dst, const float *src, const int32_t *idx, int k, size_t row) {
    ELEM_LAUNCH(be, k_gather_rows, (size_t)k * row, dst, src, idx, k, row);
}
/* parallel over the row, serial over i: repeated indices add in order */
__global__ void k_scatter_add_rows(float *dsrc, const float *ddst, const int32_t *idx, int k, size_t row) {
    GPU_FOR(e, row) {
        for (int i = 0; i < k; i++) dsrc[(size_t)idx[i] * row + e] += ddst[(size_t)i * row + e];
    }
}
static void gpu_scatter_add_rows(dx_backend *be, float *dsrc, const float *ddst, const int32_t *idx, int k,
                                 size_t row) {
    ELEM_LAUNCH(be, k_scatter_add_rows, row, dsrc, ddst, idx, k, row);
}

/* ---- patch embedding ---------------------------------------------------------------------- */

__global__ void k_im2col(float *cols, const float *img, int N, int Cin, int H, int W, int p) {
    const int Hp = H / p, Wp = W / p, K = Cin * p * p;
    GPU_FOR(e, (size_t)N * Hp * Wp * K) {
        size_t r = e / K;
        int col = (int)(e % K);
        int n = (int)(r / ((size_t)Hp * Wp)), py = (int)((r / Wp) % Hp), px = (int)(r % Wp);
        int c = col / (p * p), ky = (col / p) % p, kx = col % p;
        cols[e] = img[(((size_t)n * Cin + c) * H + (size_t)py * p + ky) * W + (size_t)px * p + kx];
    }
}
static void gpu_im2col(dx_backend *be, float *cols, const float *img, int N, int Cin, int H, int W, int p) {
    ELEM_LAUNCH(be, k_im2col, (size_t)N * (H / p) * (W / p) * Cin * p * p, cols, img, N, Cin, H, W, p);
}
/* stride = kernel: every pixel gets at most one column element, no conflicts */
__global__ void k_col2im(float *dimg, const float *dcols, int N, int Cin, int H, int W, int p) {
    const int Hp = H / p, Wp = W / p, K = Cin * p * p;
    GPU_FOR(e, (size_t)N * Hp * Wp * K) {
        size_t r = e / K;
        int col = (int)(e % K);
        int n = (int)(r / ((size_t)Hp * Wp)), py = (int)((r / Wp) % Hp), px = (int)(r % Wp);
        int c = col / (p * p), ky = (col / p) % p, kx = col % p;
        dimg[(((size_t)n * Cin + c) * H + (size_t)py * p + ky) * W + (size_t)px * p + kx] += dcols[e];
    }
}
static void gpu_col2im(dx_backend *be, float *dimg, const float *dcols, int N, int Cin, int H, int W, int p) {
    ELEM_LAUNCH(be, k_col2im, (size_t)N * (H / p) * (W / p) * Cin * p * p, dimg, dcols, N, Cin, H, W, p);
}

/* ---- token assembly ------------------------------------------------------------------------ */

__global__ void k_tokens_forward(float *tokens, const float *patches, const float *cls, const float *reg,
                                 const float *mask_token, const uint8_t *mask, int N, int P, int R, int D) {
    const int T = 1 + R + P;
    GPU_FOR(e, (size_t)N * T * D) {
        int d = (int)(e % D);
        size_t nt = e / D;
        int n = (int)(nt / T), t = (int)(nt % T);
        float v;
        if (t == 0) v = cls[d];
        else if (t <= R) v = reg[(size_t)(t - 1) * D + d];
        else {
            int p = t - 1 - R;
            v = (mask && mask[(size_t)n * P + p]) ? mask_token[d] : patches[((size_t)n * P + p) * D + d];
        }
        tokens[e] = v;
    }
}
static void gpu_tokens_forward(dx_backend *be, float *tokens, const float *patches, const float *cls,
                               const float *reg, const float *mask_token, const uint8_t *mask, int N, int P, int R,
                               int D) {
    ELEM_LAUNCH(be, k_tokens_forward, (size_t)N * (1 + R + P) * D, tokens, patches, cls, reg, mask_token, mask, N, P, R,
           D);
}
__global__ void k_tokens_backward_patches(float *dpatches, const float *dtokens, const uint8_t *mask, int N, int P,
                                          int R, int D) {
    const int T = 1 + R + P;
    GPU_FOR(e, (size_t)N * P * D) {
        size_t np = e / D;
        if (mask && mask[np]) continue;
        int n = (int)(np / P), p = (int)(np % P), d = (int)(e % D);
        dpatches[e] += dtokens[((size_t)n * T + 1 + R + p) * D + d];
    }
}
/* the sums over images: one thread per (token 0..R, d), serial over n; and
 * the mask token, one thread per d over (n, masked p) */
__global__ void k_tokens_backward_prefix(float *dcls, float *dreg, float *dmask_token, const float *dtokens,
                                         const uint8_t *mask, int N, int P, int R, int D) {
    const int T = 1 + R + P;
    GPU_FOR(e, (size_t)(2 + R) * D) {
        int t = (int)(e / D), d = (int)(e % D);
        if (t <= R) { /* 0: cls, 1..R: registers */
            float *dst = t == 0 ? dcls : (dreg ? dreg + (size_t)(t - 1) * D : NULL);
            if (!dst) continue;
            float s = 0;
            for (int n = 0; n < N; n++) s += dtokens[((size_t)n * T + t) * D + d];
            dst[d] += s;
        } else if (dmask_token && mask) {
            float s = 0;
            for (int n = 0; n < N; n++)
                for (int p = 0; p < P; p++)
                    if (mask[(size_t)n * P + p]) s += dtokens[((size_t)n * T + 1 + R + p) * D + d];
            dmask_token[d] += s;
        }
    }
}
static void gpu_tokens_backward(dx_backend *be, float *dpatches, float *dcls, float *dreg, float *dmask_token,
                                const float *dtokens, const uint8_t *mask, int N, int P, int R, int D) {
    if (dpatches) ELEM_LAUNCH(be, k_tokens_backward_patches, (size_t)N * P * D, dpatches, dtokens, mask, N, P, R, D);
    if (dcls || dreg || (dmask_token && mask))
        ELEM_LAUNCH(be, k_tokens_backward_prefix, (size_t)(2 + R) * D, dcls, dreg, dmask_token, dtokens, mask, N, P, R, D);
}

/* ---- vector ops ---------------------------------------------------------------------------- */

__global__ void k_scale(float *x, float s, size_t n) {
    GPU_FOR(i, n) x[i] *= s;
}
static void gpu_scale(dx_backend *be, float *x, float s, size_t n) { ELEM_LAUNCH(be, k_scale, n, x, s, n); }
__global__ void k_axpy(float *y, float a, const float *x, size_t n) {
    GPU_FOR(i, n) y[i] += a * x[i];
}
static void gpu_axpy(dx_backend *be, float *y, float a, const float *x, size_t n) {
    ELEM_LAUNCH(be, k_axpy, n, y, a, x, n);
}

#define GPU_SUM_BLOCKS 512 /* fixed: the partials and their order do not depend on n */
static double gpu_sumsq(dx_backend *be, const float *x, size_t n) {
    double *part = (double *)gpu_scratch(be, GPU_SCRATCH_OP2, sizeof(double) * GPU_SUM_BLOCKS);
    if (!part) return NAN;
    gpu_sumsq_f64_dev(be, gpu_st(be)->red, part, GPU_SUM_BLOCKS, x, n, 0);
    double r;
    gpu_red_to_host(be, &r, 1);
    return r;
}

/* red[0] (as an int) |= any element NaN or Inf: an integer OR, deterministic */
__global__ void k_nonfinite(int *flag, const float *x, size_t n) {
    int bad = 0;
    const uint32_t *u = (const uint32_t *)x;
    GPU_FOR(i, n) bad |= (u[i] & 0x7f800000u) == 0x7f800000u;
    if (bad) atomicOr(flag, 1);
}
static int gpu_nonfinite(dx_backend *be, const float *x, size_t n) {
    gpu_state *st = gpu_st(be);
    GPU_CHECK(be, cudaMemsetAsync(st->red, 0, sizeof(double), gpu_stream(be)));
    ELEM_LAUNCH(be, k_nonfinite, n, (int *)st->red, x, n);
    double r;
    gpu_red_to_host(be, &r, 1);
    int flag;
    memcpy(&flag, &r, sizeof flag);
    return st->failed ? 1 : flag != 0;
}

/* AdamW with the CPU kernel's float roundings (cpu_vec.c); the double
 * scalars are formed by the caller (host) or by the block (multi). The _rn
 * intrinsics keep the compilers from contracting a*b + c into an FMA (nvcc
 * and clang do by default for GPU code): only the CPU's two fmaf are fused. */
__device__ inline void adamw_elem(float *p, const float *g, float *m, float *v, size_t i, float decay, float b1,
                                  float one_m_b1, float b2, float one_m_b2, float neg_step, float bc2_sqrt, float e) {
    float pi = __fmul_rn(p[i], decay);
    float gi = g[i];
    float mi = fmaf(gi, one_m_b1, __fmul_rn(m[i], b1));
    float vi = fmaf(__fmul_rn(one_m_b2, gi), gi, __fmul_rn(v[i], b2));
    float den = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), e);
    p[i] = __fadd_rn(pi, __fdiv_rn(__fmul_rn(neg_step, mi), den));
    m[i] = mi;
    v[i] = vi;
}
__global__ void k_adamw(float *p, const float *g, float *m, float *v, size_t n, float decay, float b1, float one_m_b1,
                        float b2, float one_m_b2, float neg_step, float bc2_sqrt, float e) {
    GPU_FOR(i, n) adamw_elem(p, g, m, v, i, decay, b1, one_m_b1, b2, one_m_b2, neg_step, bc2_sqrt, e);
}
static void gpu_adamw(dx_backend *be, float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
                      float beta2, float eps, float wd, int t) {
    const double dlr = lr, db1 = beta1, db2 = beta2;
    const double bc1 = 1.0 - pow(db1, (double)t), bc2 = 1.0 - pow(db2, (double)t);
    ELEM_LAUNCH(be, k_adamw, n, p, g, m, v, n, (float)(1.0 - dlr * (double)wd), beta1, (float)(1.0 - db1), beta2,
           (float)(1.0 - db2), (float)(-(dlr / bc1)), (float)sqrt(bc2), eps);
}
/* grid (blocks, segments): segment blockIdx.y, its scalars formed in double */
__global__ void k_adamw_multi(float *p, const float *g, float *m, float *v, const dx_segment *seg, float lr,
                              float last_layer_lr, float wd, float beta1, float beta2, float eps, int t) {
    const dx_segment s = seg[blockIdx.y];
    const float slr = (s.group ? last_layer_lr : lr) * s.lr_mult, swd = wd * s.wd_mult;
    const double dlr = slr, db1 = beta1, db2 = beta2;
    const double bc1 = 1.0 - pow(db1, (double)t), bc2 = 1.0 - pow(db2, (double)t);
    const float decay = (float)(1.0 - dlr * (double)swd), neg_step = (float)(-(dlr / bc1)),
                bc2_sqrt = (float)sqrt(bc2);
    float *ps = p + s.offset, *ms = m + s.offset, *vs = v + s.offset;
    const float *gs = g + s.offset;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < s.n; i += (size_t)gridDim.x * blockDim.x)
        adamw_elem(ps, gs, ms, vs, i, decay, beta1, (float)(1.0 - db1), beta2, (float)(1.0 - db2), neg_step, bc2_sqrt,
                   eps);
}
static void gpu_adamw_multi(dx_backend *be, float *p, const float *g, float *m, float *v, const dx_segment *seg,
                            int nseg, float lr, float last_layer_lr, float wd, float beta1, float beta2, float eps,
                            int t) {
    if (nseg <= 0) return;
    dim3 grid(128, nseg);
    k_adamw_multi<<<grid, DX_GPU_BLOCK, 0, gpu_stream(be)>>>(p, g, m, v, seg, lr, last_layer_lr, wd, beta1, beta2, eps,
                                                             t);
    GPU_LAUNCHED(be);
}

__global__ void k_ema(float *teacher, const float *student, size_t n, float m) {
    const float om = 1.0f - m;
    GPU_FOR(i, n) teacher[i] = __fadd_rn(__fmul_rn(m, teacher[i]), __fmul_rn(om, student[i]));
}
static void gpu_ema(dx_backend *be, float *teacher, const float *student, size_t n, float m) {
    ELEM_LAUNCH(be, k_ema, n, teacher, student, n, m);
}
__global__ void k_ema_multi(float *teacher, const float *student, const dx_segment *seg, float m) {
    const dx_segment s = seg[blockIdx.y];
    const float om = 1.0f - m;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < s.n; i += (size_t)gridDim.x * blockDim.x)
        teacher[s.offset + i] = __fadd_rn(__fmul_rn(m, teacher[s.offset + i]), __fmul_rn(om, student[s.offset + i]));
}
static void gpu_ema_multi(dx_backend *be, float *teacher, const float *student, const dx_segment *seg, int nseg,
                          float m) {
    if (nseg <= 0) return;
    dim3 grid(128, nseg);
    k_ema_multi<<<grid, DX_GPU_BLOCK, 0, gpu_stream(be)>>>(teacher, student, seg, m);
    GPU_LAUNCHED(be);
}

/* ---- bf16 storage (the rounding of core/dx_bf16.h) ---------------------------------------- */

__global__ void k_to_bf16(uint16_t *dst, const float *src, size_t n) {
    GPU_FOR(i, n) dst[i] = gpu_f32_to_bf16(src[i]);
}
__global__ void k_from_bf16(float *dst, const uint16_t *src, size_t n) {
    GPU_FOR(i, n) dst[i] = __uint_as_float((uint32_t)src[i] << 16);
}
static void gpu_to_bf16(dx_backend *be, uint16_t *dst, const float *src, size_t n) {
    ELEM_LAUNCH(be, k_to_bf16, n, dst, src, n);
}
static void gpu_from_bf16(dx_backend *be, float *dst, const uint16_t *src, size_t n) {
    ELEM_LAUNCH(be, k_from_bf16, n, dst, src, n);
}

void gpu_fill_kernel_ops(dx_backend_ops *o) {
    o->to_bf16 = gpu_to_bf16;
    o->from_bf16 = gpu_from_bf16;
    o->bias_forward = gpu_bias_forward;
    o->bias_backward = gpu_bias_backward;
    o->layernorm_forward = gpu_layernorm_forward;
    o->layernorm_backward = gpu_layernorm_backward;
    o->gelu_forward = gpu_gelu_forward;
    o->gelu_backward = gpu_gelu_backward;
    o->swiglu_forward = gpu_swiglu_forward;
    o->swiglu_backward = gpu_swiglu_backward;
    o->softmax_forward = gpu_softmax_forward;
    o->softmax_backward = gpu_softmax_backward;
    o->rope_tables = gpu_rope_tables;
    o->rope_forward = gpu_rope_forward;
    o->rope_backward = gpu_rope_backward;
    o->residual_forward = gpu_residual_forward;
    o->residual_backward = gpu_residual_backward;
    o->gather_rows = gpu_gather_rows;
    o->scatter_add_rows = gpu_scatter_add_rows;
    o->im2col = gpu_im2col;
    o->col2im = gpu_col2im;
    o->tokens_forward = gpu_tokens_forward;
    o->tokens_backward = gpu_tokens_backward;
    o->scale = gpu_scale;
    o->axpy = gpu_axpy;
    o->sumsq = gpu_sumsq;
    o->nonfinite = gpu_nonfinite;
    o->adamw = gpu_adamw;
    o->ema = gpu_ema;
    o->adamw_multi = gpu_adamw_multi;
    o->ema_multi = gpu_ema_multi;
}
