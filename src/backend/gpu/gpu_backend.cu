/* gpu_backend.cu - the GPU backend: creation, device memory, transfers, the
 * ops tables, device facts for `dinox doctor`.
 *
 * Memory: alloc is cudaMalloc (hipMalloc), zero-filled on the stream before
 * it is handed out; on a unified-memory APU (Strix Halo) hipMalloc returns
 * memory from the GPU-visible carve-out of the same DRAM, so the same code
 * runs there unchanged (docs/gpu.md). host_alloc is page-locked host memory,
 * the fastest source for uploads. upload/download are blocking (the device
 * contract): each is queued on the backend's stream and then waited for, so
 * earlier kernels are complete before a download reads their output.
 * Errors: ops cannot return one, so the first failing CUDA call is recorded,
 * logged once, and the results it touches are left as they are (NaN-filled
 * where an op returns to the host), which the trainer's guard turns into a
 * stop with that message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/gpu/gpu_common.cuh"

extern "C" {
#include "backend/gpu/gpu_backend.h"
#include "core/dx_log.h"
}

void gpu_note_failure(dx_backend *be, const char *what, const char *detail) {
    gpu_state *st = gpu_st(be);
    if (st->failed) return;
    st->failed = 1;
    snprintf(st->why, sizeof st->why, "%s: %s", what, detail);
    fprintf(stderr, "dinox: %s backend: %s (later results of this backend are not valid)\n", DX_GPU_VENDOR,
            st->why);
}

void *gpu_scratch(dx_backend *be, int slot, size_t bytes) {
    gpu_state *st = gpu_st(be);
    if (st->scratch_bytes[slot] >= bytes && st->scratch[slot]) return st->scratch[slot];
    if (st->scratch[slot]) {
        gpu_drain(be); /* earlier ops may still read it */
        (void)cudaFree(st->scratch[slot]);
        st->scratch[slot] = NULL;
        st->scratch_bytes[slot] = 0;
    }
    size_t sz = bytes < 256 ? 256 : bytes;
    void *p = NULL;
    if (cudaMalloc(&p, sz) != cudaSuccess) {
        gpu_note_failure(be, "scratch", "out of device memory");
        return NULL;
    }
    st->scratch[slot] = p;
    st->scratch_bytes[slot] = sz;
    return p;
}

/* ---- deterministic double sums ---------------------------------------------- */

/* one block: dst = (acc ? dst : 0) + sum src[0..n) in thread-strided order,
 * then the block tree: the same order on every run and device */
__global__ void k_sum_f64(double *dst, const double *src, size_t n, int accumulate) {
    __shared__ double sh[DX_GPU_BLOCK];
    double s = 0;
    for (size_t i = threadIdx.x; i < n; i += DX_GPU_BLOCK) s += src[i];
    s = gpu_block_sum(s, sh);
    if (threadIdx.x == 0) *dst = (accumulate ? *dst : 0.0) + s;
}

void gpu_sum_f64_dev(dx_backend *be, double *dst, const double *src, size_t n, int accumulate) {
    k_sum_f64<<<1, DX_GPU_BLOCK, 0, gpu_stream(be)>>>(dst, src, n, accumulate);
    GPU_LAUNCHED(be);
}

/* part[b] = sum of x[i]^2 over the grid-stride share of block b */
__global__ void k_sumsq_part(double *part, const float *x, size_t n) {
    __shared__ double sh[DX_GPU_BLOCK];
    double s = 0;
    for (size_t i = (size_t)blockIdx.x * DX_GPU_BLOCK + threadIdx.x; i < n; i += (size_t)gridDim.x * DX_GPU_BLOCK)
        s += (double)x[i] * (double)x[i];
    s = gpu_block_sum(s, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

void gpu_sumsq_f64_dev(dx_backend *be, double *dst, double *part, int nparts, const float *x, size_t n, int accumulate) {
    k_sumsq_part<<<nparts, DX_GPU_BLOCK, 0, gpu_stream(be)>>>(part, x, n);
    GPU_LAUNCHED(be);
    gpu_sum_f64_dev(be, dst, part, (size_t)nparts, accumulate);
}

void gpu_red_to_host(dx_backend *be, double *host, int n) {
    gpu_state *st = gpu_st(be);
    GPU_CHECK(be, cudaMemcpyAsync(st->host_red, st->red, sizeof(double) * n, cudaMemcpyDeviceToHost, gpu_stream(be)));
    gpu_drain(be);
    if (st->failed)
        for (int i = 0; i < n; i++) host[i] = NAN;
    else
        memcpy(host, st->host_red, sizeof(double) * n);
}

/* ---- memory ------------------------------------------------------------------ */

/* cudaMalloc'd blocks carry their size in a header so free can count the
 * bytes in use (the run-health metric); the header keeps 256-B alignment */
#define GPU_HDR 256

static void *gpu_alloc(dx_backend *be, size_t bytes) {
    gpu_state *st = gpu_st(be);
    char *p = NULL;
    if (cudaMalloc((void **)&p, bytes + GPU_HDR) != cudaSuccess) {
        (void)cudaGetLastError(); /* an out-of-memory return is not a sticky error */
        return NULL;
    }
    if (cudaMemsetAsync(p + GPU_HDR, 0, bytes, gpu_stream(be)) != cudaSuccess ||
        cudaMemcpyAsync(p, &bytes, sizeof bytes, cudaMemcpyHostToDevice, gpu_stream(be)) != cudaSuccess ||
        gpu_drain_status(be) != cudaSuccess) {
        (void)cudaFree(p);
        return NULL;
    }
    st->bytes_in_use += bytes;
    if (st->bytes_in_use > st->bytes_peak) st->bytes_peak = st->bytes_in_use;
    return p + GPU_HDR;
}

static void gpu_free(dx_backend *be, void *p) {
    if (!p) return;
    gpu_state *st = gpu_st(be);
    char *base = (char *)p - GPU_HDR;
    size_t bytes = 0;
    /* the stream may still use p: wait, then read the size back and free */
    GPU_CHECK(be, cudaMemcpyAsync(&bytes, base, sizeof bytes, cudaMemcpyDeviceToHost, gpu_stream(be)));
    gpu_drain(be);
    st->bytes_in_use -= bytes <= st->bytes_in_use ? bytes : st->bytes_in_use;
    (void)cudaFree(base);
}

static void gpu_upload(dx_backend *be, void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    GPU_CHECK(be, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, gpu_stream(be)));
    gpu_drain(be);
}
static void gpu_download(dx_backend *be, void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    GPU_CHECK(be, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, gpu_stream(be)));
    gpu_drain(be);
}
static void gpu_copy(dx_backend *be, void *dst, const void *src, size_t bytes) {
    if (!bytes || dst == src) return;
    GPU_CHECK(be, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, gpu_stream(be)));
}
static void gpu_zero(dx_backend *be, void *dst, size_t bytes) {
    if (bytes) GPU_CHECK(be, cudaMemsetAsync(dst, 0, bytes, gpu_stream(be)));
}
static void gpu_sync(dx_backend *be) { gpu_drain(be); }

cudaError_t gpu_drain_status(dx_backend *be) {
    gpu_state *st = gpu_st(be);
    if (!st->burst_open) return cudaStreamSynchronize(st->stream);
    st->burst_open = 0;
    if (cudaEventRecord(st->ev_end, st->stream) != cudaSuccess) st->events_ok = 0;
    cudaError_t e = cudaStreamSynchronize(st->stream);
    float ms = 0;
    if (e == cudaSuccess && st->events_ok) {
        if (cudaEventElapsedTime(&ms, st->ev_begin, st->ev_end) == cudaSuccess) st->busy_ms += ms;
        else st->events_ok = 0;
    }
    return e;
}

static void gpu_device_stats(dx_backend *be, dx_device_stats *out) {
    gpu_state *st = gpu_st(be);
    out->mem_in_use = (double)st->bytes_in_use;
    out->mem_peak = (double)st->bytes_peak;
    out->mem_total = st->mem_total ? (double)st->mem_total : -1;
    out->busy_s = st->events_ok ? st->busy_ms / 1e3 : -1;
    gpu_telemetry_read(st, &out->temp_c, &out->clock_mhz);
}
static void *gpu_host_alloc(dx_backend *be, size_t bytes) {
    void *p = NULL;
    if (cudaMallocHost(&p, bytes ? bytes : 64) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    memset(p, 0, bytes);
    return p;
}
static void gpu_host_free(dx_backend *be, void *p) {
    if (p) (void)cudaFreeHost(p);
}

/* ---- the tables ---------------------------------------------------------------- */

static void gpu_destroy(dx_backend *be);

static dx_backend_ops gpu_ops;
static struct dx_loss_ops gpu_loss_ops;
static int gpu_tables_filled;

static void gpu_fill_tables(void) {
    if (gpu_tables_filled) return;
    gpu_ops.name = DX_GPU_VENDOR;
    gpu_ops.destroy = gpu_destroy;
    gpu_ops.alloc = gpu_alloc;
    gpu_ops.free = gpu_free;
    gpu_ops.upload = gpu_upload;
    gpu_ops.download = gpu_download;
    gpu_ops.copy = gpu_copy;
    gpu_ops.zero = gpu_zero;
    gpu_ops.sync = gpu_sync;
    gpu_ops.host_alloc = gpu_host_alloc;
    gpu_ops.host_free = gpu_host_free;
    gpu_ops.device_stats = gpu_device_stats;
    gpu_ops.gemm = gpu_gemm;
    gpu_ops.gemm_bf16 = gpu_gemm_bf16;
    gpu_fill_kernel_ops(&gpu_ops);
    gpu_fill_attention_ops(&gpu_ops);
    gpu_loss_ops.name = DX_GPU_VENDOR;
    gpu_fill_loss_ops(&gpu_loss_ops);
    gpu_tables_filled = 1;
}

static void gpu_destroy(dx_backend *be) {
    gpu_state *st = gpu_st(be);
    if (st) {
        (void)cudaStreamSynchronize(st->stream);
        gpu_telemetry_close(st);
        if (st->events_ok) {
            (void)cudaEventDestroy(st->ev_begin);
            (void)cudaEventDestroy(st->ev_end);
        }
        for (int i = 0; i < 4; i++)
            if (st->scratch[i]) (void)cudaFree(st->scratch[i]);
        if (st->lt_workspace) (void)cudaFree(st->lt_workspace);
        gpu_gemm_free_plans(st);
        if (st->red) (void)cudaFree(st->red);
        if (st->host_red) (void)cudaFreeHost(st->host_red);
        if (st->lt) cublasLtDestroy(st->lt);
        if (st->blas) cublasDestroy(st->blas);
        if (st->stream) (void)cudaStreamDestroy(st->stream);
        free(st);
    }
    free(be);
}

extern "C" int DX_GPU_FN(device_count)(char *why, size_t why_len) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        if (why && why_len) snprintf(why, why_len, "%s", cudaGetErrorString(e));
        (void)cudaGetLastError();
        return 0;
    }
    if (n == 0 && why && why_len) snprintf(why, why_len, "the runtime sees no GPU");
    return n;
}

extern "C" dx_status DX_GPU_FN(device_info)(int device, dx_device_info *info, dx_err *err) {
    memset(info, 0, sizeof *info);
    cudaDeviceProp pr;
    cudaError_t e = cudaGetDeviceProperties(&pr, device);
    if (e != cudaSuccess) return dx_fail(err, DX_EBACKEND, "%s device %d: %s", DX_GPU_VENDOR, device, cudaGetErrorString(e));
    snprintf(info->name, sizeof info->name, "%.127s", pr.name);
#if defined(DX_GPU_HIP)
    snprintf(info->arch, sizeof info->arch, "%s", pr.gcnArchName);
#else
    snprintf(info->arch, sizeof info->arch, "sm_%d%d", pr.major, pr.minor);
#endif
    info->mem_bytes = (uint64_t)pr.totalGlobalMem;
    info->unified = pr.integrated ? 1 : 0;
    int dv = 0, rv = 0;
    (void)cudaDriverGetVersion(&dv);
    (void)cudaRuntimeGetVersion(&rv);
    snprintf(info->driver, sizeof info->driver, "%d.%d", dv / 1000, (dv % 1000) / 10);
    snprintf(info->runtime, sizeof info->runtime, "%s runtime %d.%d", DX_GPU_VENDOR, rv / 1000, (rv % 1000) / 10);
    snprintf(info->notes, sizeof info->notes, "%d compute units, %s", pr.multiProcessorCount,
             pr.integrated ? "integrated (memory shared with the host)" : "discrete");
    return DX_OK;
}

extern "C" dx_status DX_GPU_FN(backend_create)(dx_backend **out, const dx_backend_params *p, dx_err *err) {
    *out = NULL;
    int device = p ? p->device : 0;
    cudaError_t e = cudaSetDevice(device);
    if (e != cudaSuccess) return dx_fail(err, DX_EBACKEND, "%s device %d: %s", DX_GPU_VENDOR, device, cudaGetErrorString(e));
    dx_backend *be = (dx_backend *)calloc(1, sizeof *be);
    gpu_state *st = (gpu_state *)calloc(1, sizeof *st);
    if (!be || !st) {
        free(be);
        free(st);
        return dx_fail(err, DX_ENOMEM, "%s backend: out of memory", DX_GPU_VENDOR);
    }
    gpu_fill_tables();
    be->ops = &gpu_ops;
    be->loss = &gpu_loss_ops;
    be->impl = st;
    be->device = device;
    be->nthreads = p && p->nthreads > 0 ? p->nthreads : 1;
    be->precision = p ? p->precision : DX_PREC_FP32;
    st->device = device;
    const char *what = NULL;
    st->lt_workspace_bytes = (size_t)32 << 20;
    if (cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking) != cudaSuccess) what = "stream";
    else if (cublasCreate(&st->blas) != CUBLAS_STATUS_SUCCESS) what = "BLAS handle";
    else if (cublasSetStream(st->blas, st->stream) != CUBLAS_STATUS_SUCCESS) what = "BLAS stream";
    else if (cublasLtCreate(&st->lt) != CUBLAS_STATUS_SUCCESS) what = "BLASLt handle";
    else if (cudaMalloc(&st->lt_workspace, st->lt_workspace_bytes) != cudaSuccess) what = "BLASLt workspace";
    else if (cudaMalloc((void **)&st->red, sizeof(double) * GPU_RED_SLOTS) != cudaSuccess) what = "reduction slots";
    else if (cudaMallocHost((void **)&st->host_red, sizeof(double) * GPU_RED_SLOTS) != cudaSuccess)
        what = "pinned reduction slots";
    if (!what) {
        st->events_ok = cudaEventCreate(&st->ev_begin) == cudaSuccess;
        if (st->events_ok && cudaEventCreate(&st->ev_end) != cudaSuccess) {
            (void)cudaEventDestroy(st->ev_begin);
            st->events_ok = 0;
        }
        size_t free_b = 0, total_b = 0;
        if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) st->mem_total = total_b;
        if (cudaDeviceGetPCIBusId(st->pci_bus_id, (int)sizeof st->pci_bus_id, device) != cudaSuccess)
            st->pci_bus_id[0] = 0;
        (void)cudaGetLastError();
        gpu_telemetry_open(st);
        cudaDeviceProp pr;
        if (cudaGetDeviceProperties(&pr, device) == cudaSuccess)
#if defined(DX_GPU_HIP)
            st->tile_ok = strncmp(pr.gcnArchName, "gfx11", 5) == 0;
#else
            st->tile_ok = pr.major >= 8;
#endif
    }
    if (what) {
        gpu_destroy(be);
        return dx_fail(err, DX_EBACKEND, "%s backend, device %d: could not create its %s", DX_GPU_VENDOR, device, what);
    }
    *out = be;
    return DX_OK;
}
