/* cpu_vec.h - flat vector ops of the CPU backend: scale, axpy, sum of
 * squares, non-finite check, AdamW, EMA (internal; the ops table wraps them). */
#ifndef DX_CPU_VEC_H
#define DX_CPU_VEC_H

#include <stddef.h>

void dx_cpu_scale_f32(float *x, float s, size_t n);
void dx_cpu_axpy_f32(float *y, float a, const float *x, size_t n);
double dx_cpu_sumsq_f32(const float *x, size_t n);
int dx_cpu_nonfinite_f32(const float *x, size_t n);
/* torch.optim.AdamW (foreach=False) step t >= 1, float ops in PyTorch's order. */
void dx_cpu_adamw_f32(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
                      float beta2, float eps, float wd, int t);
void dx_cpu_ema_f32(float *teacher, const float *student, size_t n, float m);

#endif /* DX_CPU_VEC_H */
