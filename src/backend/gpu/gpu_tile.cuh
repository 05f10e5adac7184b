/* gpu_tile.cuh - one 16x16x16 matrix-multiply-accumulate on the matrix units,
 * bf16 inputs and fp32 accumulation, done by one warp (NVIDIA, 32 lanes) or one
 * wave32 (AMD RDNA3/3.5, gfx11): the tile abstraction of the fused attention.
 *
 *   tile_a a; tile_b b; tile_acc c;
 *   tile_zero(c);                          c = 0
 *   tile_load_acc(c, C, ldc);              c = C[16][16] (fp32, row-major, shared memory)
 *   tile_load_a(a, A, lda);                A[16 rows][16 k], bf16 bits, row-major
 *   tile_load_b_t(b, Bt, ldb);             B = Bt^T: Bt[16 n][16 k] row-major (K of q k^T)
 *   tile_load_b(b, B, ldb);                B[16 k][16 n] row-major (V of p v)
 *   tile_mma(c, a, b);                     c += A B
 *   tile_store_acc(c, C, ldc);             C = c
 * Operands live in shared memory as bf16 bits (uint16_t); every lane of the
 * warp calls each function (they are warp-collective).
 *
 * NVIDIA: nvcuda::wmma fragments (sm_80 and later have bf16 tensor cores);
 * the lane layout is the library's, so nothing here depends on it.
 * AMD: __builtin_amdgcn_wmma_f32_16x16x16_bf16_w32 (gfx11, wave32). Its lane
 * layout (RDNA3 ISA): lane l holds row l%16 of A and column l%16 of B (lanes
 * 16..31 repeat lanes 0..15), and element i of the accumulator is
 * C[2i + l/16][l%16]. The wave size is checked at compile time.
 *
 * DX_TILE_MMA is 1 where the target has the instructions; elsewhere (host
 * pass, older GPUs) the functions are absent and gpu_tile_usable() is 0. */
#ifndef DX_GPU_TILE_CUH
#define DX_GPU_TILE_CUH

#include "backend/gpu/gpu_common.cuh"

#define DX_TILE 16 /* the tile's side */
#define DX_TILE_WARP 32 /* lanes that share one tile operation, on both vendors */

#if defined(DX_GPU_HIP)
#if defined(__gfx1100__) || defined(__gfx1101__) || defined(__gfx1102__) || defined(__gfx1103__) || \
    defined(__gfx1150__) || defined(__gfx1151__) || defined(__gfx1152__) || defined(__gfx1153__)
#define DX_TILE_MMA 1
static_assert(DX_GPU_WAVE == DX_TILE_WARP, "the RDNA3 WMMA tile needs wave32 (build without -mwavefrontsize64)");
typedef short dx_v16s __attribute__((ext_vector_type(16)));
typedef float dx_v8f __attribute__((ext_vector_type(8)));
struct tile_a { dx_v16s v; };
struct tile_b { dx_v16s v; };
typedef tile_b tile_b_t; /* one register layout for both B forms on RDNA3: only the loads differ */
struct tile_acc { dx_v8f v; };

__device__ inline int tile_lane() { return (int)(threadIdx.x % DX_TILE_WARP); }
__device__ inline void tile_zero(tile_acc &c) {
    for (int i = 0; i < 8; i++) c.v[i] = 0.0f;
}
__device__ inline void tile_load_acc(tile_acc &c, const float *C, int ldc) {
    const int l = tile_lane();
    for (int i = 0; i < 8; i++) c.v[i] = C[(2 * i + l / 16) * ldc + l % 16];
}
__device__ inline void tile_store_acc(const tile_acc &c, float *C, int ldc) {
    const int l = tile_lane();
    for (int i = 0; i < 8; i++) C[(2 * i + l / 16) * ldc + l % 16] = c.v[i];
}
__device__ inline void tile_load_a(tile_a &a, const uint16_t *A, int lda) {
    const int r = tile_lane() % 16;
    for (int k = 0; k < 16; k++) a.v[k] = (short)A[r * lda + k];
}
__device__ inline void tile_load_b_t(tile_b &b, const uint16_t *Bt, int ldb) {
    const int n = tile_lane() % 16;
    for (int k = 0; k < 16; k++) b.v[k] = (short)Bt[n * ldb + k];
}
__device__ inline void tile_load_b(tile_b &b, const uint16_t *B, int ldb) {
    const int n = tile_lane() % 16;
    for (int k = 0; k < 16; k++) b.v[k] = (short)B[k * ldb + n];
}
__device__ inline void tile_mma(tile_acc &c, const tile_a &a, const tile_b &b) {
    c.v = __builtin_amdgcn_wmma_f32_16x16x16_bf16_w32(a.v, b.v, c.v);
}
#endif

#else /* NVIDIA */
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#include <mma.h>
#if defined(__CUDA_ARCH__)
#define DX_TILE_MMA 1
#endif
struct tile_a { nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, __nv_bfloat16, nvcuda::wmma::row_major> f; };
struct tile_b_t { nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, __nv_bfloat16, nvcuda::wmma::col_major> f; };
struct tile_b { nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, __nv_bfloat16, nvcuda::wmma::row_major> f; };
struct tile_acc { nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> f; };
#if defined(DX_TILE_MMA)
__device__ inline void tile_zero(tile_acc &c) { nvcuda::wmma::fill_fragment(c.f, 0.0f); }
__device__ inline void tile_load_acc(tile_acc &c, const float *C, int ldc) {
    nvcuda::wmma::load_matrix_sync(c.f, C, (unsigned)ldc, nvcuda::wmma::mem_row_major);
}
__device__ inline void tile_store_acc(const tile_acc &c, float *C, int ldc) {
    nvcuda::wmma::store_matrix_sync(C, c.f, (unsigned)ldc, nvcuda::wmma::mem_row_major);
}
__device__ inline void tile_load_a(tile_a &a, const uint16_t *A, int lda) {
    nvcuda::wmma::load_matrix_sync(a.f, (const __nv_bfloat16 *)A, (unsigned)lda);
}
/* Bt[n][k] row-major is B[k][n] column-major: the col_major fragment reads it as is */
__device__ inline void tile_load_b_t(tile_b_t &b, const uint16_t *Bt, int ldb) {
    nvcuda::wmma::load_matrix_sync(b.f, (const __nv_bfloat16 *)Bt, (unsigned)ldb);
}
__device__ inline void tile_load_b(tile_b &b, const uint16_t *B, int ldb) {
    nvcuda::wmma::load_matrix_sync(b.f, (const __nv_bfloat16 *)B, (unsigned)ldb);
}
__device__ inline void tile_mma(tile_acc &c, const tile_a &a, const tile_b_t &b) {
    nvcuda::wmma::mma_sync(c.f, a.f, b.f, c.f);
}
__device__ inline void tile_mma(tile_acc &c, const tile_a &a, const tile_b &b) {
    nvcuda::wmma::mma_sync(c.f, a.f, b.f, c.f);
}
#endif
#endif
#endif

#endif /* DX_GPU_TILE_CUH */
