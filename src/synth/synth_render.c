/* synth_render.c - one axial CT slice of the phantom in HU.
 *
 * Pipeline for slice k (all randomness from streams keyed by (patient, k),
 * so slices can be rendered in any order on any number of threads):
 *   1. partial volume along z: average S sub-planes spread over the slice
 *      thickness (box slice-sensitivity profile), each sampled ss x ss per
 *      pixel in-plane (box-averaged to the pixel);
 *   2. in-plane blur (Gaussian PSF, FWHM 0.6-1.0 mm);
 *   3. correlated noise: white fields of slices k-1, k, k+1 mixed along z
 *      (weak z correlation), band-passed in-plane by a difference of Gaussians
 *      and scaled to the scan's sigma, stronger towards the body periphery;
 *   4. calibration offset, rounding, clamp to [-1024, 3071];
 *   5. outside the reconstruction circle: the scanner's padding value. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "synth/synth_internal.h"

/* Separable Gaussian blur (zero-flux borders), in place; tmp >= w*h floats. */
static void blur(float *img, float *tmp, int w, int h, double sigma) {
    if (sigma < 0.2) return;
    int rad = (int)ceil(3 * sigma);
    if (rad > 16) rad = 16;
    float k[33];
    double s = 0;
    for (int i = -rad; i <= rad; i++) s += k[i + rad] = (float)exp(-0.5 * i * i / (sigma * sigma));
    for (int i = 0; i <= 2 * rad; i++) k[i] = (float)(k[i] / s);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double a = 0;
            for (int i = -rad; i <= rad; i++) {
                int xx = x + i < 0 ? 0 : x + i >= w ? w - 1 : x + i;
                a += k[i + rad] * img[(size_t)y * w + xx];
            }
            tmp[(size_t)y * w + x] = (float)a;
        }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double a = 0;
            for (int i = -rad; i <= rad; i++) {
                int yy = y + i < 0 ? 0 : y + i >= h ? h - 1 : y + i;
                a += k[i + rad] * tmp[(size_t)yy * w + x];
            }
            img[(size_t)y * w + x] = (float)a;
        }
}

/* Standard deviation of DoG-filtered unit white noise: sqrt(sum K^2) of the
 * 2-D kernel g1 (x) g1 - c g2 (x) g2 (the same truncation as blur()). */
static double dog_gain(double s1, double s2, double c) {
    double g1[33], g2[33];
    int r1 = (int)ceil(3 * s1), r2 = (int)ceil(3 * s2);
    if (r1 > 16) r1 = 16;
    if (r2 > 16) r2 = 16;
    double n1 = 0, n2 = 0;
    for (int i = -16; i <= 16; i++) {
        g1[i + 16] = abs(i) <= r1 ? exp(-0.5 * i * i / (s1 * s1)) : 0;
        g2[i + 16] = abs(i) <= r2 ? exp(-0.5 * i * i / (s2 * s2)) : 0;
        n1 += g1[i + 16], n2 += g2[i + 16];
    }
    double v = 0;
    for (int y = 0; y < 33; y++)
        for (int x = 0; x < 33; x++) {
            double k = g1[y] * g1[x] / (n1 * n1) - c * g2[y] * g2[x] / (n2 * n2);
            v += k * k;
        }
    return sqrt(v);
}

static void white(float *w, int n, uint64_t seed, int patient, int k) {
    dx_rng r;
    dx_rng_init(&r, seed, DX_RNG_SYNTH, (uint64_t)patient, (uint64_t)SYNTH_P_NOISE + (uint64_t)(k + 1));
    for (int i = 0; i < n; i++) w[i] = (float)dx_rng_normal(&r);
}

dx_status synth_render_slice(const synth_render_ctx *ctx, int k, int16_t *hu_out, dx_err *err) {
    const synth_scan *s = ctx->s;
    const synth_anatomy *an = ctx->an;
    int nx = s->nx, ny = s->ny, ss = ctx->ss;
    int W = nx * ss, H = ny * ss;
    size_t np = (size_t)nx * ny;
    float *plane = malloc(sizeof(float) * (size_t)W * H);
    float *acc = calloc(np, sizeof(float));
    float *tmp = malloc(sizeof(float) * np);
    float *n1 = malloc(sizeof(float) * np), *n2 = malloc(sizeof(float) * np);
    if (!plane || !acc || !tmp || !n1 || !n2) {
        free(plane), free(acc), free(tmp), free(n1), free(n2);
        return dx_fail(err, DX_ENOMEM, "synth: slice buffers %dx%d", W, H);
    }
    /* 1. partial volume: S sub-planes over the thickness */
    int S = (int)ceil(s->thick / 0.5);
    if (S < 2) S = 2;
    if (S > 8) S = 8;
    double step = s->ps / ss;
    double sx0 = s->x0 - s->ps / 2 + step / 2, sy0 = s->y0 - s->ps / 2 + step / 2;
    for (int si = 0; si < S; si++) {
        double z = s->z[k] + s->thick * ((si + 0.5) / S - 0.5);
        synth_anatomy_plane(an, z, sx0, sy0, step, W, H, plane);
        synth_tubes_plane(&an->bones, z, sx0, sy0, step, W, H, plane);
        synth_tubes_plane(&an->airways, z, sx0, sy0, step, W, H, plane);
        synth_tubes_plane(&an->vessels, z, sx0, sy0, step, W, H, plane);
        synth_tubes_plane(&an->spicules, z, sx0, sy0, step, W, H, plane);
        synth_lesions_plane(ctx->ls, an, z, sx0, sy0, step, W, H, plane);
        for (int j = 0; j < ny; j++)
            for (int i = 0; i < nx; i++) {
                double a = 0;
                for (int v = 0; v < ss; v++)
                    for (int u = 0; u < ss; u++) a += plane[(size_t)(j * ss + v) * W + i * ss + u];
                acc[(size_t)j * nx + i] += (float)a;
            }
    }
    float norm = 1.0f / (float)(S * ss * ss);
    for (size_t i = 0; i < np; i++) acc[i] *= norm;
    /* 2. PSF */
    blur(acc, tmp, nx, ny, s->psf_fwhm / 2.3548 / s->ps);
    /* 3. noise: z-mixed white -> DoG band-pass -> sigma map */
    white(n1, (int)np, ctx->seed, s->patient, k);
    white(n2, (int)np, ctx->seed, s->patient, k - 1);
    for (size_t i = 0; i < np; i++) n1[i] += 0.5f * n2[i];
    white(n2, (int)np, ctx->seed, s->patient, k + 1);
    for (size_t i = 0; i < np; i++) n1[i] = (n1[i] + 0.5f * n2[i]) / sqrtf(1.5f);
    double s1 = fmax(0.6, 0.55 / s->ps), s2 = 3 * s1, c = 0.6;
    memcpy(n2, n1, sizeof(float) * np);
    blur(n1, tmp, nx, ny, s1);
    blur(n2, tmp, nx, ny, s2);
    double gain = 1.0 / dog_gain(s1, s2, c);
    for (int j = 0; j < ny; j++) {
        double y = s->y0 + j * s->ps;
        for (int i = 0; i < nx; i++) {
            size_t p = (size_t)j * nx + i;
            if (synth_outside_fov(s, i, j)) {
                hu_out[p] = (int16_t)(s->outside_stored + (int)s->intercept);
                continue;
            }
            double x = s->x0 + i * s->ps;
            double ex = (x - an->bx) / an->body_a, ey = (y - an->by) / an->body_b;
            double rb = ex * ex + ey * ey;
            double sig = s->noise_sigma * (rb < 1 ? 1 + 0.6 * rb : 0.4); /* photon starvation at the edge */
            double v = acc[p] + s->hu_offset + sig * gain * (n1[p] - c * n2[p]);
            v = synth_clamp(floor(v + 0.5), -1024, 3071);
            hu_out[p] = (int16_t)v;
        }
    }
    free(plane), free(acc), free(tmp), free(n1), free(n2);
    return DX_OK;
}

void synth_render_labels(const synth_render_ctx *ctx, int k, uint8_t *lab) {
    const synth_scan *s = ctx->s;
    const synth_anatomy *an = ctx->an;
    double z = s->z[k];
    for (int j = 0; j < s->ny; j++)
        for (int i = 0; i < s->nx; i++)
            lab[(size_t)j * s->nx + i] = (uint8_t)synth_anatomy_label(an, s->x0 + i * s->ps, s->y0 + j * s->ps, z);
    synth_tubes_label(&an->bones, z, s->x0, s->y0, s->ps, s->nx, s->ny, lab, SYNTH_L_BONE);
    synth_tubes_label(&an->airways, z, s->x0, s->y0, s->ps, s->nx, s->ny, lab, SYNTH_L_AIRWAY);
    synth_tubes_label(&an->vessels, z, s->x0, s->y0, s->ps, s->nx, s->ny, lab, SYNTH_L_VESSEL);
    for (int n = 0; n < ctx->ls->n; n++) {
        const synth_lesion *L = &ctx->ls->l[n];
        if (z < L->lo[2] || z > L->hi[2]) continue;
        int i0 = (int)((L->lo[0] - s->x0) / s->ps), i1 = (int)((L->hi[0] - s->x0) / s->ps) + 1;
        int j0 = (int)((L->lo[1] - s->y0) / s->ps), j1 = (int)((L->hi[1] - s->y0) / s->ps) + 1;
        for (int j = j0 < 0 ? 0 : j0; j <= j1 && j < s->ny; j++)
            for (int i = i0 < 0 ? 0 : i0; i <= i1 && i < s->nx; i++)
                if (synth_lesion_inside(L, an, s->x0 + i * s->ps, s->y0 + j * s->ps, z))
                    lab[(size_t)j * s->nx + i] = SYNTH_L_LESION;
    }
    for (int j = 0; j < s->ny; j++)
        for (int i = 0; i < s->nx; i++)
            if (synth_outside_fov(s, i, j)) lab[(size_t)j * s->nx + i] = SYNTH_L_OUTSIDE;
}
