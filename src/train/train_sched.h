/* train_sched.h - the values of every DINOv3 schedule at an iteration, from a
 * training config (DINOv3's v1 schedule shapes; the Gram and local-weight ramps). */
#ifndef DX_TRAIN_SCHED_H
#define DX_TRAIN_SCHED_H

#include <stdint.h>

#include "train/config.h"
#include "train/ssl.h"

/* lr: linear warm-up 0 -> peak (scaled by optim.lr_scaling) then cosine to
 * min_lr; last-layer lr: the same, 0 during the first freeze epochs; wd and
 * EMA momentum: cosine from start to end over the whole run; teacher
 * temperature: linear warm-up then constant; Gram weight: 0 until
 * gram.weight_start_epochs, then a half-cosine ramp to gram.weight over
 * gram.weight_ramp_epochs (DINOv3's loss_weight_schedule); DINO local weight: cosine from start to end over
 * loss.local_weight_epochs (constant start if 0). */
void dx_train_sched_at(const dx_config *c, int64_t it, dx_ssl_sched *out);

#endif /* DX_TRAIN_SCHED_H */
