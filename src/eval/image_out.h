/* image_out.h - images for the report: PNG encoding to memory (libpng),
 * base64, and the attention overlay (heat map blended over a CT slice). */
#ifndef DX_EVAL_IMAGE_OUT_H
#define DX_EVAL_IMAGE_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "core/dx_error.h"

/* rgb [h, w, 3] -> malloc'd PNG bytes. */
dx_status dx_png_encode_rgb(const uint8_t *rgb, int w, int h, uint8_t **png, size_t *len, dx_err *err);
dx_status dx_png_write_rgb(const char *path, const uint8_t *rgb, int w, int h, dx_err *err);
/* malloc'd NUL-terminated standard base64 (RFC 4648, with padding). */
char *dx_base64(const uint8_t *data, size_t len);

/* rgb [h, w, 3] = (1 - alpha*heat) * gray + alpha*heat * colormap(heat);
 * gray and heat in [0, 1] ([h, w] each). */
void dx_overlay_heat(const float *gray, const float *heat, int h, int w, float alpha, uint8_t *rgb);
/* The heat colormap at t in [0, 1] (black - purple - red - orange - pale yellow), c in [0, 1]. */
void dx_heat_colormap(float t, float c[3]);

#endif /* DX_EVAL_IMAGE_OUT_H */
