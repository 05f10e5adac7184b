/* augment.c - RandomResizedCrop geometry, PIL-compatible antialiased bicubic
 * resize, bilinear resize, flip, Gaussian blur and noise (see augment.h). */
#include "data/augment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

dx_box dx_rrc_params(dx_rng *r, int H, int W, const float scale[2], const float ratio[2]) {
    double area = (double)H * W;
    double lr0 = log(ratio[0]), lr1 = log(ratio[1]);
    for (int t = 0; t < 10; t++) {
        double target = area * dx_rng_uniform_range(r, scale[0], scale[1]);
        double ar = exp(dx_rng_uniform_range(r, lr0, lr1));
        /* nearbyint rounds half to even under the default mode, like Python's round */
        int w = (int)nearbyint(sqrt(target * ar));
        int h = (int)nearbyint(sqrt(target / ar));
        if (w > 0 && w <= W && h > 0 && h <= H) {
            int top = (int)dx_rng_below(r, (uint32_t)(H - h + 1));
            int left = (int)dx_rng_below(r, (uint32_t)(W - w + 1));
            return (dx_box){top, left, h, w};
        }
    }
    double in_ratio = (double)W / H;
    int w, h;
    if (in_ratio < ratio[0]) {
        w = W;
        h = (int)nearbyint(w / ratio[0]);
    } else if (in_ratio > ratio[1]) {
        h = H;
        w = (int)nearbyint(h * ratio[1]);
    } else {
        w = W;
        h = H;
    }
    return (dx_box){(H - h) / 2, (W - w) / 2, h, w};
}

/* One axis of dx_box_cover: a start in [0, n - len] whose [start + len/4,
 * start + 3len/4] holds p. */
static int cover_start(dx_rng *r, int n, int len, double p) {
    int lo = (int)ceil(p - 0.75 * len), hi = (int)floor(p - 0.25 * len);
    if (lo < 0) lo = 0;
    if (hi > n - len) hi = n - len;
    if (lo <= hi) return lo + (int)dx_rng_below(r, (uint32_t)(hi - lo + 1));
    int c = (int)lround(p - 0.5 * len);
    return c < 0 ? 0 : c > n - len ? n - len : c;
}

dx_box dx_box_cover(dx_rng *r, dx_box b, int H, int W, double py, double px) {
    b.top = cover_start(r, H, b.h, py);
    b.left = cover_start(r, W, b.w, px);
    return b;
}

static double bicubic(double x) {
    const double a = -0.5;
    x = fabs(x);
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
}

/* Weights of one resampling axis: out index o reads in[first[o] .. first[o]+cnt[o]),
 * coefficients k[o*ksize ..]. in_size is the crop extent (support clipped to it). */
typedef struct { int ksize; int *first, *cnt; double *k; } axis_coeffs;

static int axis_init(axis_coeffs *a, int in_size, int out_size) {
    double scale = (double)in_size / out_size;
    double fs = scale > 1 ? scale : 1; /* antialias: widen the kernel when downscaling */
    double support = 2.0 * fs;
    a->ksize = (int)ceil(support) * 2 + 1;
    a->first = malloc(sizeof(int) * out_size);
    a->cnt = malloc(sizeof(int) * out_size);
    a->k = malloc(sizeof(double) * out_size * a->ksize);
    if (!a->first || !a->cnt || !a->k) return -1;
    for (int o = 0; o < out_size; o++) {
        double center = (o + 0.5) * scale;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in_size) hi = in_size;
        int n = hi - lo;
        if (n > a->ksize) n = a->ksize;
        double sum = 0, *k = a->k + (size_t)o * a->ksize;
        for (int i = 0; i < n; i++) {
            k[i] = bicubic((i + lo - center + 0.5) / fs);
            sum += k[i];
        }
        for (int i = 0; i < n; i++) k[i] = sum != 0 ? k[i] / sum : 0;
        a->first[o] = lo;
        a->cnt[o] = n;
    }
    return 0;
}

static void axis_free(axis_coeffs *a) {
    free(a->first);
    free(a->cnt);
    free(a->k);
}

int dx_resize_bicubic_aa(const float *src, int C, int H, int W, dx_box box, float *dst, int oh, int ow,
                         float *scratch) {
    axis_coeffs ax, ay;
    memset(&ax, 0, sizeof ax);
    memset(&ay, 0, sizeof ay);
    float *tmp = scratch ? scratch : malloc(sizeof(float) * (size_t)C * box.h * ow);
    int rc = -1;
    if (!tmp || axis_init(&ax, box.w, ow) || axis_init(&ay, box.h, oh)) goto done;
    for (int c = 0; c < C; c++) {
        const float *plane = src + (size_t)c * H * W;
        float *t = tmp + (size_t)c * box.h * ow; /* [h, ow] after the horizontal pass */
        for (int y = 0; y < box.h; y++) {
            const float *row = plane + (size_t)(box.top + y) * W + box.left;
            for (int o = 0; o < ow; o++) {
                const double *k = ax.k + (size_t)o * ax.ksize;
                const float *p = row + ax.first[o];
                double s = 0;
                for (int i = 0; i < ax.cnt[o]; i++) s += p[i] * k[i];
                t[(size_t)y * ow + o] = (float)s;
            }
        }
        float *d = dst + (size_t)c * oh * ow;
        for (int o = 0; o < oh; o++) {
            const double *k = ay.k + (size_t)o * ay.ksize;
            for (int x = 0; x < ow; x++) {
                double s = 0;
                for (int i = 0; i < ay.cnt[o]; i++) s += t[(size_t)(ay.first[o] + i) * ow + x] * k[i];
                d[(size_t)o * ow + x] = (float)s;
            }
        }
    }
    rc = 0;
done:
    axis_free(&ax);
    axis_free(&ay);
    if (!scratch) free(tmp);
    return rc;
}

void dx_resize_bilinear(const float *src, int C, int H, int W, float *dst, int oh, int ow) {
    double sy = (double)H / oh, sx = (double)W / ow;
    for (int y = 0; y < oh; y++) {
        double fy = (y + 0.5) * sy - 0.5;
        if (fy < 0) fy = 0;
        int y0 = (int)fy;
        if (y0 > H - 1) y0 = H - 1;
        int y1 = y0 + 1 < H ? y0 + 1 : H - 1;
        float wy = (float)(fy - y0);
        for (int x = 0; x < ow; x++) {
            double fx = (x + 0.5) * sx - 0.5;
            if (fx < 0) fx = 0;
            int x0 = (int)fx;
            if (x0 > W - 1) x0 = W - 1;
            int x1 = x0 + 1 < W ? x0 + 1 : W - 1;
            float wx = (float)(fx - x0);
            for (int c = 0; c < C; c++) {
                const float *p = src + (size_t)c * H * W;
                float top = p[(size_t)y0 * W + x0] * (1 - wx) + p[(size_t)y0 * W + x1] * wx;
                float bot = p[(size_t)y1 * W + x0] * (1 - wx) + p[(size_t)y1 * W + x1] * wx;
                dst[(size_t)c * oh * ow + (size_t)y * ow + x] = top * (1 - wy) + bot * wy;
            }
        }
    }
}

void dx_flip_h(float *x, int C, int H, int W) {
    for (size_t r = 0; r < (size_t)C * H; r++) {
        float *row = x + r * W;
        for (int i = 0, j = W - 1; i < j; i++, j--) {
            float t = row[i];
            row[i] = row[j];
            row[j] = t;
        }
    }
}

static inline int reflect(int i, int n) {
    if (i < 0) return -i;
    if (i >= n) return 2 * (n - 1) - i;
    return i;
}

int dx_gaussian_blur(float *x, int C, int H, int W, float sigma, float *scratch) {
    if (H < 5 || W < 5) return -1;
    float k[9];
    double sum = 0;
    for (int i = 0; i < 9; i++) sum += (k[i] = (float)exp(-0.5 * ((i - 4) / sigma) * ((i - 4) / sigma)));
    for (int i = 0; i < 9; i++) k[i] = (float)(k[i] / sum);
    float *t = scratch ? scratch : malloc(sizeof(float) * (size_t)H * W);
    if (!t) return -1;
    for (int c = 0; c < C; c++) {
        float *p = x + (size_t)c * H * W;
        /* horizontal: reflect only within 4 pixels of the border */
        for (int y = 0; y < H; y++) {
            const float *row = p + (size_t)y * W;
            float *o = t + (size_t)y * W;
            for (int xx = 0; xx < W; xx++) {
                float s = 0;
                if (xx >= 4 && xx < W - 4)
                    for (int i = 0; i < 9; i++) s += k[i] * row[xx + i - 4];
                else
                    for (int i = 0; i < 9; i++) s += k[i] * row[reflect(xx + i - 4, W)];
                o[xx] = s;
            }
        }
        /* vertical: accumulate whole rows (contiguous, vectorisable) */
        for (int y = 0; y < H; y++) {
            float *o = p + (size_t)y * W;
            for (int xx = 0; xx < W; xx++) o[xx] = 0;
            for (int i = 0; i < 9; i++) {
                const float *src = t + (size_t)reflect(y + i - 4, H) * W;
                for (int xx = 0; xx < W; xx++) o[xx] += k[i] * src[xx];
            }
        }
    }
    if (!scratch) free(t);
    return 0;
}

void dx_add_noise(float *x, size_t n, float sigma, dx_rng *r) {
    /* Box-Muller in float, both outputs of each pair used: noise amplitude
     * needs no 53-bit uniforms, and this is the loader's hottest loop. */
    const float two_pi = 6.28318530717958647f, inv24 = 1.0f / 16777216.0f;
    for (size_t i = 0; i < n; i += 2) {
        float u1 = ((dx_rng_u32(r) >> 8) + 1) * inv24; /* (0, 1] */
        float u2 = (dx_rng_u32(r) >> 8) * inv24;
        float rad = sigma * sqrtf(-2.0f * logf(u1));
        float a = two_pi * u2;
        x[i] += rad * cosf(a);
        if (i + 1 < n) x[i + 1] += rad * sinf(a);
    }
}
