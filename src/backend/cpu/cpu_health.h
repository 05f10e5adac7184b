/* cpu_health.h - CPU kernels of the training-health ops of dx_loss_ops
 * (prob_stats, feature_stats, patch_cosine): see dx_loss_ops.h. */
#ifndef DX_CPU_HEALTH_H
#define DX_CPU_HEALTH_H

#include <stddef.h>
#include <stdint.h>

#include "backend/dx_loss_ops.h"

void dx_cpu_prob_stats(double out[DX_PROB_STATS], const float *P, int N, int K, float temp, int from_logits);
void dx_cpu_feature_stats(double out[DX_FEATURE_STATS], const float *x, int N, int D);
double dx_cpu_patch_cosine(const float *x, int nimg, int P, int D, size_t img_stride);
void dx_cpu_row_argmax(int32_t *idx, const float *P, int N, int K);

#endif /* DX_CPU_HEALTH_H */
