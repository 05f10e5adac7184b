/* gpu_backend.h - the GPU backend's entry points for the registry (C).
 *
 * One source (the .cu files of src/backend/gpu, CUDA dialect) builds two backends: "cuda"
 * (nvcc, -DDINOX_CUDA=ON) and "hip" (clang/hipcc for gfx1151, -DDINOX_HIP=ON).
 * Their functions differ only in the prefix (gpu_vendor.h, DX_GPU_FN). */
#ifndef DX_GPU_BACKEND_H
#define DX_GPU_BACKEND_H

#include <stddef.h>

#include "backend/dx_backend.h"
#include "backend/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

/* p->device selects the GPU; p->precision the GEMM policy (as on the CPU). */
dx_status dx_cuda_backend_create(dx_backend **out, const dx_backend_params *p, dx_err *err);
int dx_cuda_device_count(char *why, size_t why_len);
dx_status dx_cuda_device_info(int device, dx_device_info *info, dx_err *err);

dx_status dx_hip_backend_create(dx_backend **out, const dx_backend_params *p, dx_err *err);
int dx_hip_device_count(char *why, size_t why_len);
dx_status dx_hip_device_info(int device, dx_device_info *info, dx_err *err);

#ifdef __cplusplus
}
#endif

#endif /* DX_GPU_BACKEND_H */
