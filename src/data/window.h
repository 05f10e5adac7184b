/* window.h - CT intensity windowing with random window augmentation.
 *
 * As in docs/data-pipeline.md: pick a base window (width W0, level L0), with probability
 * shift_p draw the level L ~ U(L0 - lj, L0 + lj), independently with
 * probability scale_p draw the width W ~ U(W0 - wj, W0 + wj); clip HU to
 * [L - W/2, L + W/2] and map that range linearly to [0, 1]. Eval uses the
 * first base window unperturbed (fixed window). */
#ifndef DX_WINDOW_H
#define DX_WINDOW_H

#include <stddef.h>

#include "core/dx_rng.h"

#define DX_WINDOW_MAX 8

typedef struct dx_window_spec {
    float width, level;               /* base window W0, L0 in HU */
    float level_jitter, width_jitter; /* draws: L ~ U(L0 +- lj), W ~ U(W0 +- wj) */
} dx_window_spec;

typedef struct dx_window {
    float level, width;
    int base;  /* index of the base window it came from */
} dx_window;

/* Draws one window: base index, shift coin, level, scale coin, width, in
 * that order; all are drawn whatever the probabilities, so changing a
 * probability does not shift the later draws of the stream. */
dx_window dx_window_draw(dx_rng *r, const dx_window_spec *w, int n, float shift_p, float scale_p);
/* The unperturbed base window i. */
dx_window dx_window_base(const dx_window_spec *w, int i);
/* x[i] <- clamp((x[i] - (L - W/2)) / W, 0, 1). */
void dx_window_apply(float *x, size_t n, dx_window w);
/* x[i] <- (x[i] - mean) / std. */
void dx_normalize(float *x, size_t n, float mean, float std);

#endif /* DX_WINDOW_H */
