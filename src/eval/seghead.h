/* seghead.h - segmentation from frozen patch features: a linear (1x1) head
 * per patch, bilinearly upsampled to pixels, trained with the mean
 * per-pixel logistic loss by full-batch Adam on host.
 *
 *   z[p]      = w . (f[p] - mu) / sd + b          patch logits   [Hp, Wp]
 *   logit[q]  = bilinear_up(z)[q]                 pixel logits   [H, W]
 *   loss      = mean_q softplus(logit) - m[q] logit
 * bilinear_up is torch's F.interpolate(mode="bilinear", align_corners=False);
 * mu, sd are the per-dimension statistics of the training patches. */
#ifndef DX_EVAL_SEGHEAD_H
#define DX_EVAL_SEGHEAD_H

#include <stdint.h>

#include "core/dx_error.h"

typedef struct dx_seghead {
    int D;
    double *mu, *sd, *w; /* [D] each */
    double b;
} dx_seghead;

/* out[H, W] = bilinear upsampling of in[h, w] (align_corners=False). */
void dx_bilinear_resize(const float *in, int h, int w, float *out, int H, int W);

/* Loss over n crops (feat [n, Hp*Wp, D] float, mask [n, H, W]) and, if grad
 * is non-NULL, its gradient w.r.t. (w[0..D-1], b) into grad[D+1]. */
double dx_seghead_loss(const dx_seghead *m, const float *feat, const uint8_t *mask, int n, int Hp,
                       int Wp, int H, int W, double *grad);

/* Fits mu/sd on the n crops, then `steps` Adam steps (lr, betas 0.9/0.999). */
dx_status dx_seghead_train(dx_seghead *m, const float *feat, const uint8_t *mask, int n, int Hp,
                           int Wp, int D, int H, int W, int steps, double lr, double *final_loss,
                           dx_err *err);
/* Pixel probabilities prob[H, W] for one crop's features [Hp*Wp, D]. */
void dx_seghead_predict(const dx_seghead *m, const float *feat, int Hp, int Wp, int H, int W,
                        float *prob);
void dx_seghead_free(dx_seghead *m);

#endif /* DX_EVAL_SEGHEAD_H */
