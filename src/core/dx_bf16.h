/* dx_bf16.h - fp32 <-> bf16 element conversion, the one definition for the
 * project: the bf16 GEMM's inputs and the bf16 activation storage (backend)
 * and bf16 tensors read from safetensors files (io). bf16 is the upper half
 * of an fp32, so widening is exact. */
#ifndef DX_BF16_H
#define DX_BF16_H

#include <stdint.h>
#include <string.h>

/* fp32 -> bf16, round to nearest even; NaN stays a (quiet) NaN, overflow gives Inf */
static inline uint16_t dx_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* bf16 -> fp32, exact */
static inline float dx_bf16_widen(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#endif /* DX_BF16_H */
