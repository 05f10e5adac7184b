/* cpu_backend.h - the fp32 CPU reference backend (OpenMP + oneDNN GEMM). */
#ifndef DX_CPU_BACKEND_H
#define DX_CPU_BACKEND_H

#include "backend/dx_backend.h"

#include <stddef.h>

#include "backend/registry.h"

/* p->nthreads <= 0: OpenMP's default. Device 0 is the only one. */
dx_status dx_cpu_backend_create(dx_backend **out, const dx_backend_params *p, dx_err *err);
void dx_cpu_backend_destroy(dx_backend *be);
int dx_cpu_device_count(char *why, size_t why_len);
/* This machine's CPU: model, ISA extensions that matter, RAM, oneDNN. */
dx_status dx_cpu_device_info(int device, dx_device_info *info, dx_err *err);

#endif /* DX_CPU_BACKEND_H */
