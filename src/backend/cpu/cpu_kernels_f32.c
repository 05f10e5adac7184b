/* cpu_kernels_f32.c - the float instantiation of cpu_kernels.inc (what the
 * CPU backend runs): vectorisable exp/erf from cpu_math.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Full-width AVX-512 where the CPU has it (a no-op otherwise): GCC 12 tunes
 * -march=native on Zen 5 as an Intel core and prefers 256-bit vectors; the
 * exp/erf-heavy loops measured ~30% faster per element with 512. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC target("prefer-vector-width=512")
#endif

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_math.h"

#define real float
#define SFX(name) name##_f32
#define REXP(x) dx_cpu_expf(x)
#define RGELU_CDF2(x) dx_cpu_gelu_cdf2f(x)
#define RGAUSS(x) dx_cpu_gaussf(x)
#include "backend/cpu/cpu_kernels.inc"
