/* cpu_math.h - vectorisable float exp and 1+erf for the CPU kernels.
 *
 * libm's expf/erff are scalar calls the compiler cannot vectorise without
 * -ffast-math, and GELU/softmax/attention run them over every activation.
 * These inline versions are branch-free (both branches computed, then
 * selected), so `#pragma omp simd` loops vectorise them.
 *
 * dx_cpu_expf: Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, degree-7
 *   Taylor for e^r, times 2^n built in the exponent bits. Input clamped to
 *   [-87.3, 88.3] so 2^n stays a normal float. Relative error ~1e-7.
 * dx_cpu_erf1pf(z) = 1 + erf(z) (dx_cpu_erff(z) = erf(z) likewise), computed as
 *   |z| < 1 : 1 + z * P(z^2)               (P: least-squares fit of erf(z)/z)
 *   |z| >= 1: erfc(|z|) = exp(-z^2) R(1/|z|) (R: fit of erfc(a) e^{a^2}, a in [1,10])
 *   and 2 - erfc for z > 0; z^2 carried as a hi+lo pair (see below). Working on 1+erf directly keeps the GELU tail
 *   (x << 0) accurate instead of cancelling 1 + (-1 + tiny).
 *   Fits were made in double with mpmath references: relative fit error
 *   1.4e-9 (P) and 1.6e-8 (R); tests/test_ops.c checks the float result
 *   against libm erf() to 1e-6 relative. */
#ifndef DX_CPU_MATH_H
#define DX_CPU_MATH_H

#include <stdint.h>
#include <string.h>

#pragma omp declare simd notinbranch
static inline float dx_cpu_expf(float x) {
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    /* round(x / ln2) by the 1.5*2^23 trick: exact for |.| < 2^22, no libm call */
    float t = x * 1.44269504088896341f + 12582912.0f;
    float n = t - 12582912.0f;
    float r = x - n * 0.693145751953125f;   /* ln2 hi (exact product for |n| < 2^9) */
    r = r - n * 1.42860682030941723e-6f;     /* ln2 lo */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* n in [-126, 127] for finite x; NaN stays NaN through p */
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* 1 + erf(z) given z and z^2 = z2hi + z2lo (a float pair): the tail needs
 * exp(-z^2) to relative accuracy ~|z|^2 * ulp, so z^2 is carried as an
 * unevaluated sum and exp(-hi - lo) = exp(-hi) (1 - lo). */
/* P(u), u = z^2: erf(z) = z P(z^2) for |z| < 1 */
#pragma omp declare simd notinbranch
static inline float dx_cpu_erf_poly(float u) {
    float ps = 7.898202142431004e-05f;
    ps = ps * u + -0.0008024351373940084f;
    ps = ps * u + 0.005190053211928769f;
    ps = ps * u + -0.02685480830029927f;
    ps = ps * u + 0.11283612420613766f;
    ps = ps * u + -0.37612628842231066f;
    ps = ps * u + 1.1283791665095702f;
    return ps;
}

/* erfc(a) for a >= 1 (a clamped to [1, 10] inside R): exp(-a^2) R(1/a), with
 * a^2 = a2hi + a2lo */
#pragma omp declare simd notinbranch
static inline float dx_cpu_erfc_tail(float a, float a2hi, float a2lo) {
    float ac = a < 1.0f ? 1.0f : (a > 10.0f ? 10.0f : a);
    float t = 1.0f / ac;
    float pr = -0.04873406584510678f;
    pr = pr * t + 0.33093632127293854f;
    pr = pr * t + -0.9941723830790702f;
    pr = pr * t + 1.7177648171632909f;
    pr = pr * t + -1.824263490755636f;
    pr = pr * t + 1.1038260831091087f;
    pr = pr * t + -0.16291762599823176f;
    pr = pr * t + -0.2566951489709635f;
    pr = pr * t + -0.002485033736162596f;
    pr = pr * t + 0.5643273882519055f;
    pr = pr * t + -3.285703782091255e-06f;
    return dx_cpu_expf(-a2hi) * (1.0f - a2lo) * pr;
}

/* 1 + erf(z) given z^2 = z2hi + z2lo */
#pragma omp declare simd notinbranch
static inline float dx_cpu_erf1p_core(float z, float z2hi, float z2lo) {
    float a = z < 0 ? -z : z;
    float small = __builtin_fmaf(z, dx_cpu_erf_poly(z2hi), 1.0f); /* one rounding */
    float erfc_a = dx_cpu_erfc_tail(a, z2hi, z2lo);
    float tail = z > 0 ? 2.0f - erfc_a : erfc_a;
    return a < 1.0f ? small : tail;
}

/* erf(z) itself (relative accuracy also for tiny |z|) */
#pragma omp declare simd notinbranch
static inline float dx_cpu_erff(float z) {
    float a = z < 0 ? -z : z;
    float hi = z * z;
    float lo = __builtin_fmaf(z, z, -hi);
    float small = z * dx_cpu_erf_poly(hi);
    float erfc_a = dx_cpu_erfc_tail(a, hi, lo);
    float tail = z > 0 ? 1.0f - erfc_a : erfc_a - 1.0f;
    return a < 1.0f ? small : tail;
}

/* 1 + erf(z) */
#pragma omp declare simd notinbranch
static inline float dx_cpu_erf1pf(float z) {
    float hi = z * z;
    float lo = __builtin_fmaf(z, z, -hi); /* exact remainder of the product */
    return dx_cpu_erf1p_core(z, hi, lo);
}

/* 1 + erf(x / sqrt 2), the GELU CDF times 2: z^2 = x^2 / 2 is formed from x
 * (exactly, by halving the x*x pair), so rounding x/sqrt2 costs no tail accuracy. */
#pragma omp declare simd notinbranch
static inline float dx_cpu_gelu_cdf2f(float x) {
    float hi = x * x;
    float lo = __builtin_fmaf(x, x, -hi);
    return dx_cpu_erf1p_core(x * 0.70710678118654752440f, 0.5f * hi, 0.5f * lo);
}

/* exp(-x^2 / 2) with the same hi+lo treatment of x^2 (GELU backward) */
#pragma omp declare simd notinbranch
static inline float dx_cpu_gaussf(float x) {
    float hi = x * x;
    float lo = __builtin_fmaf(x, x, -hi);
    return dx_cpu_expf(-0.5f * hi) * (1.0f - 0.5f * lo);
}

#endif /* DX_CPU_MATH_H */
