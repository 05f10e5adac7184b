/* gpu_common.cuh - what every file of the GPU backend shares: its private
 * state, the launch helpers, the block reductions and the scratch buffers.
 *
 * Threads: kernels use blocks of DX_GPU_BLOCK threads; reductions over a
 * block go through shared memory (no warp shuffles, so nothing depends on a
 * warp of 32 or a wavefront of 64). Reductions over rows of a tensor are
 * two-stage with fixed chunking (partials per chunk, then summed in chunk
 * order), so results do not depend on the device or on scheduling: a run is
 * reproducible on one GPU, as it is on the CPU. No atomics on floats. */
#ifndef DX_GPU_COMMON_CUH
#define DX_GPU_COMMON_CUH

#include <stddef.h>
#include <stdint.h>

#include "backend/gpu/gpu_vendor.h"

/* the C headers assert their table sizes with C11's _Static_assert */
#ifndef _Static_assert
#define _Static_assert static_assert
#endif
extern "C" {
#include "backend/dx_backend.h"
#include "backend/dx_loss_ops.h"
}

#define DX_GPU_BLOCK 256

/* The backend's private state (be->impl). */
typedef struct gpu_state {
    int device;
    cudaStream_t stream;      /* the one stream every op is queued on */
    cublasHandle_t blas;      /* fp32 GEMMs */
    cublasLtHandle_t lt;      /* bf16 GEMMs */
    void *lt_workspace;       /* cuBLASLt workspace */
    size_t lt_workspace_bytes;
    void *lt_plans;           /* gpu_gemm.cu's bf16 GEMM plans by shape (gpu_gemm_free_plans) */
    /* grow-only scratch, reused by ops in stream order (an op never holds it
     * across a return); index by purpose so two live uses cannot collide */
    void *scratch[4];
    size_t scratch_bytes[4];
    double *red;              /* small device doubles for reductions to the host */
    double *host_red;         /* pinned host copy of red */
    size_t bytes_in_use, bytes_peak; /* device memory from alloc */
    size_t mem_total;         /* the device's memory (cudaMemGetInfo at creation) */
    /* Busy time from events: a burst opens when an op is queued on an idle
     * stream (ev_begin recorded before it) and closes where the host waits
     * for the stream (ev_end, then the elapsed time is added). Time between
     * bursts, when the device waits for the host, is not counted. */
    cudaEvent_t ev_begin, ev_end;
    int events_ok, burst_open;
    double busy_ms;
    char pci_bus_id[32];      /* "0000:c1:00.0": for NVML / sysfs telemetry */
    void *telemetry;          /* gpu_telemetry.cu's handle (NVML device), NULL = none */
    int tile_ok;              /* bf16 matrix units for gpu_tile.cuh: sm_80+ or gfx11 */
    int failed;               /* a CUDA/BLAS call failed: later results are NaN */
    char why[256];            /* the first failure, for the log */
} gpu_state;

enum { GPU_SCRATCH_BF16_A, GPU_SCRATCH_BF16_B, GPU_SCRATCH_OP, GPU_SCRATCH_OP2 };
#define GPU_RED_SLOTS 64 /* doubles in gpu_state.red */

static inline gpu_state *gpu_st(dx_backend *be) { return (gpu_state *)be->impl; }
/* The stream every op queues on. Every enqueue goes through here, so the
 * first one after the stream drained opens a busy burst. */
static inline cudaStream_t gpu_stream(dx_backend *be) {
    gpu_state *st = gpu_st(be);
    if (!st->burst_open && st->events_ok) {
        st->burst_open = 1;
        if (cudaEventRecord(st->ev_begin, st->stream) != cudaSuccess) st->events_ok = 0;
    }
    return st->stream;
}
/* Waits for everything queued (and closes the busy burst): the one place the
 * backend synchronises with its stream. */
cudaError_t gpu_drain_status(dx_backend *be);
#define gpu_drain(be) GPU_CHECK((be), gpu_drain_status(be))
/* temperature (deg C) and compute clock (MHz) of the backend's device, -1 where unknown */
void gpu_telemetry_open(gpu_state *st);
void gpu_telemetry_read(gpu_state *st, double *temp_c, double *clock_mhz);
void gpu_telemetry_close(gpu_state *st);

/* Records the first failure (the op cannot return an error: dx_backend.h);
 * the trainer's non-finite checks then stop the run with this message. */
void gpu_note_failure(dx_backend *be, const char *what, const char *detail);
#define GPU_CHECK(be, call)                                                              \
    do {                                                                                 \
        cudaError_t e_ = (call);                                                         \
        if (e_ != cudaSuccess) gpu_note_failure((be), #call, cudaGetErrorString(e_));    \
    } while (0)
#define GPU_LAUNCHED(be) GPU_CHECK((be), cudaGetLastError())

/* scratch[slot] of at least `bytes` (device memory; NULL on failure) */
void *gpu_scratch(dx_backend *be, int slot, size_t bytes);

static inline unsigned gpu_blocks(size_t n, unsigned per = DX_GPU_BLOCK) {
    size_t b = (n + per - 1) / per;
    if (b < 1) b = 1;
    if (b > 65535u * 8) b = 65535u * 8; /* kernels use grid-stride loops */
    return (unsigned)b;
}

/* grid-stride loop over [0, n) */
#define GPU_FOR(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)
/* n elements, grid-stride kernels of DX_GPU_BLOCK threads; nothing for n = 0 */
#define ELEM_LAUNCH(be, kernel, n, ...)                                                  \
    do {                                                                                 \
        if ((n) > 0) {                                                                   \
            kernel<<<gpu_blocks(n), DX_GPU_BLOCK, 0, gpu_stream(be)>>>(__VA_ARGS__);     \
            GPU_LAUNCHED(be);                                                            \
        }                                                                                \
    } while (0)
/* one block of DX_GPU_BLOCK threads per row */
#define ROWS_LAUNCH(be, kernel, rows, ...)                                               \
    do {                                                                                 \
        if ((rows) > 0) {                                                                \
            kernel<<<(rows), DX_GPU_BLOCK, 0, gpu_stream(be)>>>(__VA_ARGS__);            \
            GPU_LAUNCHED(be);                                                            \
        }                                                                                \
    } while (0)

/* bf16 bits of f, round to nearest even, NaN stays NaN: core/dx_bf16.h's rounding,
 * so the CPU and GPU bf16 policies round every operand identically */
__device__ inline uint16_t gpu_f32_to_bf16(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* ---- block reductions (blockDim.x == DX_GPU_BLOCK) ------------------------- */

template <typename T>
__device__ inline T gpu_block_sum(T v, T *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = DX_GPU_BLOCK / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    T r = sh[0];
    __syncthreads();
    return r;
}

template <typename T>
__device__ inline T gpu_block_max(T v, T *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = DX_GPU_BLOCK / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] = sh[threadIdx.x + s] > sh[threadIdx.x] ? sh[threadIdx.x + s] : sh[threadIdx.x];
        __syncthreads();
    }
    T r = sh[0];
    __syncthreads();
    return r;
}

/* first argmax over a block: (value, index) pairs, ties to the lower index */
__device__ inline int gpu_block_argmax(float v, int i, float *shv, int *shi) {
    shv[threadIdx.x] = v;
    shi[threadIdx.x] = i;
    __syncthreads();
    for (int s = DX_GPU_BLOCK / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) {
            float a = shv[threadIdx.x], b = shv[threadIdx.x + s];
            int ia = shi[threadIdx.x], ib = shi[threadIdx.x + s];
            if (b > a || (b == a && ib < ia)) {
                shv[threadIdx.x] = b;
                shi[threadIdx.x] = ib;
            }
        }
        __syncthreads();
    }
    int r = shi[0];
    __syncthreads();
    return r;
}

/* ---- deterministic sums into device doubles --------------------------------
 * gpu_sum_f64_dev: *dst (device) = (accumulate ? *dst : 0) + sum of n doubles
 * in src, in a fixed order. gpu_red_to_host: download slots [0, n) of red. */
void gpu_sum_f64_dev(dx_backend *be, double *dst, const double *src, size_t n, int accumulate);
/* *dst (device) = (accumulate ? *dst : 0) + sum of x[i]^2 in double, through
 * nparts partial sums in part[] (device doubles): a fixed order for a fixed nparts */
void gpu_sumsq_f64_dev(dx_backend *be, double *dst, double *part, int nparts, const float *x, size_t n, int accumulate);
void gpu_red_to_host(dx_backend *be, double *host, int n);

/* ---- GEMM, as the ops table's (row-major, fp32) ---------------------------- */
void gpu_gemm(dx_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc, int batch, int64_t sa, int64_t sb,
              int64_t sc);
/* frees the bf16 GEMM plans (gpu_destroy) */
void gpu_gemm_free_plans(gpu_state *st);
void gpu_gemm_bf16(dx_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc, int batch, int64_t sa, int64_t sb,
                   int64_t sc);

/* ---- the op families, filled into the tables by gpu_backend.cu ------------- */
void gpu_fill_kernel_ops(dx_backend_ops *ops);    /* gpu_kernels.cu */
void gpu_fill_attention_ops(dx_backend_ops *ops); /* gpu_attention.cu */
void gpu_fill_loss_ops(struct dx_loss_ops *ops);  /* gpu_loss.cu */

/* row softmax of scale * x (the softmax_forward op), used by attention */
void gpu_softmax_forward(dx_backend *be, float *out, const float *x, int M, int N, float scale);
/* l2 normalisation of rows and its backward, used by the losses */
void gpu_l2norm_backward_f64(dx_backend *be, float *dx, const float *x, const double *dz, int M, int D,
                             double eps);

#endif /* DX_GPU_COMMON_CUH */
