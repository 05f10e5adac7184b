/* augment.h - geometric and photometric image ops of the multi-crop pipeline.
 *
 * Images are float planes, row-major [H, W]; multi-channel images are
 * [C, H, W] and ops loop over channels. These are pure functions: the random
 * parameters are drawn by the caller (loader.c) from named streams. */
#ifndef DX_AUGMENT_H
#define DX_AUGMENT_H

#include <stddef.h>

#include "core/dx_rng.h"

/* An integer crop box: rows [top, top+h), columns [left, left+w). */
typedef struct dx_box {
    int top, left, h, w;
} dx_box;

/* torchvision RandomResizedCrop.get_params on an H x W image: up to 10 tries
 * of area fraction U(scale), log-aspect U(ln ratio[0], ln ratio[1]),
 * w = round(sqrt(A*ar)), h = round(sqrt(A/ar)) (half to even), accepted if it
 * fits, top-left uniform; else the centred crop with the aspect ratio clamped
 * to the ratio range. */
dx_box dx_rrc_params(dx_rng *r, int H, int W, const float scale[2], const float ratio[2]);

/* The box b moved (same size) so that the point (py, px) lies in its central
 * half, rows [top + h/4, top + 3h/4], columns likewise: top (left) uniform
 * over the positions that do this and keep the box inside H x W.
 * Where no position does both (a point near the border), the box is centred on
 * the point as far as the image allows. */
dx_box dx_box_cover(dx_rng *r, dx_box b, int H, int W, double py, double px);

/* Resizes the box region of src [C, H, W] to dst [C, oh, ow] like PIL's
 * Image.crop(box).resize((ow, oh), BICUBIC) on mode-F images: separable
 * (horizontal pass, then vertical), bicubic kernel a = -0.5, support scaled
 * by the downscale factor (antialiasing), weights renormalised at the crop
 * border. scratch: C*h*ow floats (box height h) or NULL to allocate.
 * Returns 0, or -1 if out of memory. */
int dx_resize_bicubic_aa(const float *src, int C, int H, int W, dx_box box, float *dst, int oh, int ow,
                         float *scratch);

/* Bilinear resize of src [C, H, W] to dst [C, oh, ow], half-pixel centres
 * (align_corners = false), edge clamped, no antialiasing: used for in-plane
 * spacing resampling where the scale factor is near 1. */
void dx_resize_bilinear(const float *src, int C, int H, int W, float *dst, int oh, int ow);

/* Mirrors each row of x [C, H, W] in place. */
void dx_flip_h(float *x, int C, int H, int W);

/* torchvision GaussianBlur(kernel_size = 9, sigma): 1-D kernel
 * exp(-x^2 / (2 sigma^2)) at x = -4..4, normalised, applied separably with
 * reflect padding (mirror without repeating the edge pixel). In place on
 * [C, H, W]; needs H, W >= 5. scratch: H*W floats or NULL. Returns 0 / -1. */
int dx_gaussian_blur(float *x, int C, int H, int W, float sigma, float *scratch);

/* x[i] += sigma * N(0, 1): float Box-Muller on pairs (x[2k], x[2k+1]), 24-bit
 * uniforms from r in index order. */
void dx_add_noise(float *x, size_t n, float sigma, dx_rng *r);

#endif /* DX_AUGMENT_H */
