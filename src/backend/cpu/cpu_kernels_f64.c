/* cpu_kernels_f64.c - the double instantiation of cpu_kernels.inc, with libm
 * exp/erf: the reference the tests differentiate by finite differences. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"

#define real double
#define SFX(name) name##_f64
#define REXP(x) exp(x)
#define RERF1P(z) (1.0 + erf(z))
#include "backend/cpu/cpu_kernels.inc"
