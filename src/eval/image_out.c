/* image_out.c - PNG (libpng, to memory), base64, heat-map overlay. */
#include "eval/image_out.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct membuf { uint8_t *p; size_t len, cap; int oom; } membuf;

static void mem_write(png_structp png, png_bytep data, png_size_t n) {
    membuf *b = png_get_io_ptr(png);
    if (b->oom) return;
    if (b->len + n > b->cap) {
        size_t nc = (b->len + n) * 2;
        uint8_t *np = realloc(b->p, nc);
        if (!np) { b->oom = 1; return; }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}
static void mem_flush(png_structp png) { (void)png; }

dx_status dx_png_encode_rgb(const uint8_t *rgb, int w, int h, uint8_t **out, size_t *len, dx_err *err) {
    if (w <= 0 || h <= 0) return dx_fail(err, DX_EINVAL, "png: %dx%d", w, h);
    membuf b = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    if (!png || !info || !rows) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        return dx_fail(err, DX_ENOMEM, "png");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        free(b.p);
        return dx_fail(err, DX_EIO, "png: libpng error");
    }
    png_set_write_fn(png, &b, mem_write, mem_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)(rgb + (size_t)y * w * 3);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    if (b.oom) { free(b.p); return dx_fail(err, DX_ENOMEM, "png buffer"); }
    *out = b.p;
    *len = b.len;
    return DX_OK;
}

dx_status dx_png_write_rgb(const char *path, const uint8_t *rgb, int w, int h, dx_err *err) {
    uint8_t *p;
    size_t n;
    dx_status st = dx_png_encode_rgb(rgb, w, h, &p, &n, err);
    if (st) return st;
    FILE *f = fopen(path, "wb");
    if (!f) { free(p); return dx_fail(err, DX_EIO, "open %s: %s", path, strerror(errno)); }
    size_t wr = fwrite(p, 1, n, f);
    free(p);
    if (fclose(f) != 0 || wr != n) return dx_fail(err, DX_EIO, "write %s", path);
    return DX_OK;
}

char *dx_base64(const uint8_t *d, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc(4 * ((n + 2) / 3) + 1), *p = o;
    if (!o) return NULL;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        *p++ = tab[v >> 18]; *p++ = tab[(v >> 12) & 63]; *p++ = tab[(v >> 6) & 63]; *p++ = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0);
        *p++ = tab[v >> 18];
        *p++ = tab[(v >> 12) & 63];
        *p++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *p++ = '=';
    }
    *p = 0;
    return o;
}

/* A small "inferno"-like ramp: black -> purple -> orange -> yellow. */
static void colormap(float t, float c[3]) {
    static const float k[5][3] = {{0, 0, 0.02f}, {0.34f, 0.06f, 0.43f}, {0.73f, 0.21f, 0.33f},
                                  {0.98f, 0.55f, 0.04f}, {0.99f, 1.0f, 0.64f}};
    if (t < 0) t = 0;
    if (t > 1) t = 1;
    float s = t * 4;
    int i = (int)s;
    if (i > 3) i = 3;
    float f = s - i;
    for (int j = 0; j < 3; j++) c[j] = k[i][j] + f * (k[i + 1][j] - k[i][j]);
}

void dx_heat_colormap(float t, float c[3]) { colormap(t, c); }

void dx_overlay_heat(const float *gray, const float *heat, int h, int w, float alpha, uint8_t *rgb) {
    for (size_t q = 0; q < (size_t)h * w; q++) {
        float g = gray[q] < 0 ? 0 : gray[q] > 1 ? 1 : gray[q];
        float t = heat ? (heat[q] < 0 ? 0 : heat[q] > 1 ? 1 : heat[q]) : 0, c[3];
        colormap(t, c);
        float a = alpha * t;
        for (int j = 0; j < 3; j++) {
            float v = (1 - a) * g + a * c[j];
            rgb[q * 3 + j] = (uint8_t)(v * 255.0f + 0.5f);
        }
    }
}
