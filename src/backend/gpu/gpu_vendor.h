/* gpu_vendor.h - the one place where the GPU backend's source meets a vendor.
 *
 * The kernels and host code of src/backend/gpu are written once in the CUDA
 * dialect. Built with nvcc (-DDINOX_CUDA=ON) the names below are CUDA's own;
 * built as HIP (-DDINOX_HIP=ON, clang --offload-arch=gfx1151) this header maps
 * each runtime, BLAS and bf16 name the backend uses to its HIP equivalent, so
 * no other file has an #ifdef for the vendor. A name the backend starts to use
 * is added here, or the HIP build fails to compile: that is the check.
 *
 * Wave size: no kernel of this backend assumes a warp of 32 or a wavefront of
 * 64. Reductions go through shared memory with __syncthreads (gpu_common.cuh);
 * DX_GPU_WAVE is the compile-time wave size for code that needs one (RDNA3 is
 * wave32 by default, CDNA wave64), checked by a static assert where used. */
#ifndef DX_GPU_VENDOR_H
#define DX_GPU_VENDOR_H

#if defined(DX_GPU_HIP)
#include <hip/hip_runtime.h>
#include <hip/hip_bf16.h>
#include <hipblas/hipblas.h>
#include <hipblaslt/hipblaslt.h>

#define DX_GPU_VENDOR "hip"
#define DX_GPU_FN(name) dx_hip_##name
#if defined(__AMDGCN_WAVEFRONT_SIZE)
#define DX_GPU_WAVE __AMDGCN_WAVEFRONT_SIZE
#else
#define DX_GPU_WAVE 32 /* host pass: RDNA (gfx11) default */
#endif

/* runtime */
#define cudaError_t hipError_t
#define cudaSuccess hipSuccess
#define cudaGetErrorString hipGetErrorString
#define cudaGetLastError hipGetLastError
#define cudaMalloc hipMalloc
#define cudaFree hipFree
#define cudaMallocHost(p, n) hipHostMalloc((p), (n), hipHostMallocDefault)
#define cudaFreeHost hipHostFree
#define cudaMemcpyAsync hipMemcpyAsync
#define cudaMemsetAsync hipMemsetAsync
#define cudaMemcpyHostToDevice hipMemcpyHostToDevice
#define cudaMemcpyDeviceToHost hipMemcpyDeviceToHost
#define cudaMemcpyDeviceToDevice hipMemcpyDeviceToDevice
#define cudaStream_t hipStream_t
#define cudaStreamCreateWithFlags hipStreamCreateWithFlags
#define cudaStreamNonBlocking hipStreamNonBlocking
#define cudaStreamDestroy hipStreamDestroy
#define cudaStreamSynchronize hipStreamSynchronize
#define cudaGetDeviceCount hipGetDeviceCount
#define cudaSetDevice hipSetDevice
#define cudaDeviceProp hipDeviceProp_t
#define cudaGetDeviceProperties hipGetDeviceProperties
#define cudaDriverGetVersion hipDriverGetVersion
#define cudaRuntimeGetVersion hipRuntimeGetVersion
#define cudaMemGetInfo hipMemGetInfo
#define cudaEvent_t hipEvent_t
#define cudaEventCreate hipEventCreate
#define cudaEventDestroy hipEventDestroy
#define cudaEventRecord hipEventRecord
#define cudaEventElapsedTime hipEventElapsedTime
#define cudaDeviceGetPCIBusId hipDeviceGetPCIBusId
#define cudaDeviceSynchronize hipDeviceSynchronize

/* BLAS: fp32 through hipBLAS (hipBLASLt's fp32 path is measured far slower
 * on gfx1151), bf16 through hipBLASLt */
#define cublasHandle_t hipblasHandle_t
#define cublasStatus_t hipblasStatus_t
#define CUBLAS_STATUS_SUCCESS HIPBLAS_STATUS_SUCCESS
#define cublasCreate hipblasCreate
#define cublasDestroy hipblasDestroy
#define cublasSetStream hipblasSetStream
#define cublasOperation_t hipblasOperation_t
#define CUBLAS_OP_N HIPBLAS_OP_N
#define CUBLAS_OP_T HIPBLAS_OP_T
#define cublasSgemmStridedBatched hipblasSgemmStridedBatched
#define cublasLtHandle_t hipblasLtHandle_t
#define cublasLtCreate hipblasLtCreate
#define cublasLtDestroy hipblasLtDestroy
#define cublasLtMatmulDesc_t hipblasLtMatmulDesc_t
#define cublasLtMatmulDescCreate hipblasLtMatmulDescCreate
#define cublasLtMatmulDescDestroy hipblasLtMatmulDescDestroy
#define cublasLtMatmulDescSetAttribute hipblasLtMatmulDescSetAttribute
#define CUBLASLT_MATMUL_DESC_TRANSA HIPBLASLT_MATMUL_DESC_TRANSA
#define CUBLASLT_MATMUL_DESC_TRANSB HIPBLASLT_MATMUL_DESC_TRANSB
#define cublasLtMatrixLayout_t hipblasLtMatrixLayout_t
#define cublasLtMatrixLayoutCreate hipblasLtMatrixLayoutCreate
#define cublasLtMatrixLayoutDestroy hipblasLtMatrixLayoutDestroy
#define cublasLtMatrixLayoutSetAttribute hipblasLtMatrixLayoutSetAttribute
#define CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT HIPBLASLT_MATRIX_LAYOUT_BATCH_COUNT
#define CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET HIPBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET
#define cublasLtMatmulPreference_t hipblasLtMatmulPreference_t
#define cublasLtMatmulPreferenceCreate hipblasLtMatmulPreferenceCreate
#define cublasLtMatmulPreferenceDestroy hipblasLtMatmulPreferenceDestroy
#define cublasLtMatmulPreferenceSetAttribute hipblasLtMatmulPreferenceSetAttribute
#define CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES HIPBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES
/* hipBLASLt has no alignment preferences: its kernels take any aligned pointer */
#define DX_LT_PREF_C_ALIGNMENT(pref, bytes) ((void)(pref), (void)(bytes))
#define cublasLtMatmulHeuristicResult_t hipblasLtMatmulHeuristicResult_t
#define cublasLtMatmulAlgoGetHeuristic hipblasLtMatmulAlgoGetHeuristic
#define cublasLtMatmul hipblasLtMatmul
#define cublasComputeType_t hipblasComputeType_t
#define CUBLAS_COMPUTE_32F HIPBLAS_COMPUTE_32F
#define CUDA_R_32F HIP_R_32F
#define CUDA_R_16BF HIP_R_16BF
#define cudaDataType_t hipDataType

/* bf16 */
#define __nv_bfloat16 __hip_bfloat16

#else /* CUDA */
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cublas_v2.h>
#include <cublasLt.h>

#define DX_GPU_VENDOR "cuda"
#define DX_GPU_FN(name) dx_cuda_##name
#define DX_GPU_WAVE 32
/* cuBLASLt assumes 256-B aligned C/D unless told: a gradient inside the flat
 * table is only 64-B aligned, and an algorithm that needs more fails */
#define DX_LT_PREF_C_ALIGNMENT(pref, bytes)                                                               \
    do {                                                                                                  \
        uint32_t a_ = (bytes);                                                                            \
        cublasLtMatmulPreferenceSetAttribute((pref), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &a_, sizeof a_); \
        cublasLtMatmulPreferenceSetAttribute((pref), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &a_, sizeof a_); \
    } while (0)
#endif

#endif /* DX_GPU_VENDOR_H */
