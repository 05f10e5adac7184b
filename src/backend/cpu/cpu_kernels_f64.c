/* cpu_kernels_f64.c - the double instantiation of cpu_kernels.inc, with libm
 * exp/erf: the reference the tests differentiate by finite differences. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"

#define real double
#define SFX(name) name##_f64
#define REXP(x) exp(x)
/* erfc for x < 0: 1 + erf cancels in the tail */
#define RGELU_CDF2(x) ((x) < 0 ? erfc(-(x) * M_SQRT1_2) : 1.0 + erf((x) * M_SQRT1_2))
#define RGAUSS(x) exp(-0.5 * (x) * (x))
#include "backend/cpu/cpu_kernels.inc"
