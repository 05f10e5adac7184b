/* seghead.c - linear patch head + bilinear upsampling + Adam (seghead.h). */
#include "eval/seghead.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Source taps of output index o for torch's align_corners=False rule:
 * src = (o + 0.5) * in/out - 0.5, clamped at 0; i1 = min(i0 + 1, in - 1). */
static void taps(int o, int in, int out, int *i0, int *i1, float *l) {
    float src = (o + 0.5f) * ((float)in / out) - 0.5f;
    if (src < 0) src = 0;
    int a = (int)src;
    if (a > in - 1) a = in - 1;
    *i0 = a;
    *i1 = a + 1 < in ? a + 1 : in - 1;
    *l = src - a;
}

void dx_bilinear_resize(const float *in, int h, int w, float *out, int H, int W) {
    for (int y = 0; y < H; y++) {
        int y0, y1;
        float ly;
        taps(y, h, H, &y0, &y1, &ly);
        for (int x = 0; x < W; x++) {
            int x0, x1;
            float lx;
            taps(x, w, W, &x0, &x1, &lx);
            out[(size_t)y * W + x] = (1 - ly) * ((1 - lx) * in[y0 * w + x0] + lx * in[y0 * w + x1]) +
                                     ly * ((1 - lx) * in[y1 * w + x0] + lx * in[y1 * w + x1]);
        }
    }
}

static double softplus(double z) { return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z)); }
static double sigm(double z) { return z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z)); }

static void patch_logits(const dx_seghead *m, const float *feat, int P, double *z) {
    for (int p = 0; p < P; p++) {
        double s = m->b;
        const float *f = feat + (size_t)p * m->D;
        for (int j = 0; j < m->D; j++) s += m->w[j] * ((f[j] - m->mu[j]) / m->sd[j]);
        z[p] = s;
    }
}

double dx_seghead_loss(const dx_seghead *m, const float *feat, const uint8_t *mask, int n, int Hp,
                       int Wp, int H, int W, double *grad) {
    const int P = Hp * Wp, D = m->D;
    double *z = malloc((size_t)P * sizeof *z), *dz = malloc((size_t)P * sizeof *dz);
    if (!z || !dz) { free(z); free(dz); return NAN; }
    if (grad) memset(grad, 0, (size_t)(D + 1) * sizeof *grad);
    const double inv = 1.0 / ((double)n * H * W);
    double loss = 0;
    for (int i = 0; i < n; i++) {
        const float *fi = feat + (size_t)i * P * D;
        const uint8_t *mi = mask + (size_t)i * H * W;
        patch_logits(m, fi, P, z);
        memset(dz, 0, (size_t)P * sizeof *dz);
        for (int y = 0; y < H; y++) {
            int y0, y1;
            float ly;
            taps(y, Hp, H, &y0, &y1, &ly);
            for (int x = 0; x < W; x++) {
                int x0, x1;
                float lx;
                taps(x, Wp, W, &x0, &x1, &lx);
                double w00 = (1 - ly) * (1 - lx), w01 = (1 - ly) * lx, w10 = ly * (1 - lx), w11 = ly * lx;
                double lg = w00 * z[y0 * Wp + x0] + w01 * z[y0 * Wp + x1] + w10 * z[y1 * Wp + x0] +
                            w11 * z[y1 * Wp + x1];
                int t = mi[(size_t)y * W + x] != 0;
                loss += softplus(lg) - t * lg;
                double g = (sigm(lg) - t) * inv; /* d loss / d pixel logit, transposed through the taps */
                dz[y0 * Wp + x0] += w00 * g; dz[y0 * Wp + x1] += w01 * g;
                dz[y1 * Wp + x0] += w10 * g; dz[y1 * Wp + x1] += w11 * g;
            }
        }
        if (grad)
            for (int p = 0; p < P; p++) {
                if (dz[p] == 0) continue;
                const float *f = fi + (size_t)p * D;
                for (int j = 0; j < D; j++) grad[j] += dz[p] * ((f[j] - m->mu[j]) / m->sd[j]);
                grad[D] += dz[p];
            }
    }
    free(z); free(dz);
    return loss * inv;
}

dx_status dx_seghead_train(dx_seghead *m, const float *feat, const uint8_t *mask, int n, int Hp,
                           int Wp, int D, int H, int W, int steps, double lr, double *final_loss,
                           dx_err *err) {
    memset(m, 0, sizeof *m);
    if (n <= 0 || D <= 0 || Hp <= 0 || Wp <= 0 || steps < 0)
        return dx_fail(err, DX_EINVAL, "seghead: n=%d D=%d grid %dx%d", n, D, Hp, Wp);
    const int P = Hp * Wp;
    m->D = D;
    m->mu = calloc((size_t)D, sizeof(double));
    m->sd = calloc((size_t)D, sizeof(double));
    m->w = calloc((size_t)D, sizeof(double));
    double *g = calloc((size_t)D + 1, sizeof *g), *am = calloc((size_t)D + 1, sizeof *am),
           *av = calloc((size_t)D + 1, sizeof *av);
    if (!m->mu || !m->sd || !m->w || !g || !am || !av) {
        free(g); free(am); free(av); dx_seghead_free(m);
        return dx_fail(err, DX_ENOMEM, "seghead");
    }
    const size_t rows = (size_t)n * P;
    for (size_t r = 0; r < rows; r++)
        for (int j = 0; j < D; j++) m->mu[j] += feat[r * D + j];
    for (int j = 0; j < D; j++) m->mu[j] /= rows;
    for (size_t r = 0; r < rows; r++)
        for (int j = 0; j < D; j++) m->sd[j] += (feat[r * D + j] - m->mu[j]) * (feat[r * D + j] - m->mu[j]);
    for (int j = 0; j < D; j++) {
        m->sd[j] = sqrt(m->sd[j] / rows);
        if (!(m->sd[j] > 1e-12)) m->sd[j] = 1;
    }
    double loss = 0;
    for (int t = 1; t <= steps; t++) {
        loss = dx_seghead_loss(m, feat, mask, n, Hp, Wp, H, W, g);
        if (!isfinite(loss)) break;
        double c1 = 1 - pow(0.9, t), c2 = 1 - pow(0.999, t);
        for (int j = 0; j <= D; j++) {
            am[j] = 0.9 * am[j] + 0.1 * g[j];
            av[j] = 0.999 * av[j] + 0.001 * g[j] * g[j];
            double step = lr * (am[j] / c1) / (sqrt(av[j] / c2) + 1e-8);
            if (j < D) m->w[j] -= step; else m->b -= step;
        }
    }
    loss = dx_seghead_loss(m, feat, mask, n, Hp, Wp, H, W, NULL);
    free(g); free(am); free(av);
    if (!isfinite(loss)) { dx_seghead_free(m); return dx_fail(err, DX_ENUMERIC, "seghead: loss diverged"); }
    if (final_loss) *final_loss = loss;
    return DX_OK;
}

void dx_seghead_predict(const dx_seghead *m, const float *feat, int Hp, int Wp, int H, int W,
                        float *prob) {
    const int P = Hp * Wp;
    double *z = malloc((size_t)P * sizeof *z);
    float *zf = malloc((size_t)P * sizeof *zf);
    if (!z || !zf) { free(z); free(zf); memset(prob, 0, (size_t)H * W * sizeof *prob); return; }
    patch_logits(m, feat, P, z);
    for (int p = 0; p < P; p++) zf[p] = (float)z[p];
    dx_bilinear_resize(zf, Hp, Wp, prob, H, W);
    for (size_t q = 0; q < (size_t)H * W; q++) prob[q] = (float)sigm(prob[q]);
    free(z); free(zf);
}

void dx_seghead_free(dx_seghead *m) {
    free(m->mu); free(m->sd); free(m->w);
    m->mu = m->sd = m->w = NULL;
}
