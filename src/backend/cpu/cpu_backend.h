/* cpu_backend.h - the fp32 CPU reference backend (OpenMP + oneDNN GEMM). */
#ifndef DX_CPU_BACKEND_H
#define DX_CPU_BACKEND_H

#include "backend/dx_backend.h"

/* nthreads <= 0: OpenMP's default. */
dx_status dx_cpu_backend_create(dx_backend **out, int nthreads, dx_err *err);
void dx_cpu_backend_destroy(dx_backend *be);

#endif /* DX_CPU_BACKEND_H */
