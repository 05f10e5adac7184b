/* cpu_health.c - training-health statistics of the DINOv3 objective (CPU).
 *
 * Read-only reductions over tensors the step already holds (teacher targets,
 * student logits, CLS and patch features): they tell whether the objective is
 * learning or sitting in the uniform fixed point (docs/objective.md, "Training
 * health"). Accumulated in double, rows reduced in a fixed order, so a
 * statistic does not depend on the thread count. Shapes as in dx_loss_ops.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_health.h"

/* out[0] mean row entropy, out[1] entropy of the mean row, out[2] number of
 * columns that are the argmax (first max) of at least one row. Rows are
 * distributions, or logits turned into softmax(row / temp). */
void dx_cpu_prob_stats(double out[DX_PROB_STATS], const float *P, int N, int K, float temp, int from_logits) {
    double *mean = calloc((size_t)K, sizeof(double));
    double *row_h = malloc(sizeof(double) * (size_t)(N > 0 ? N : 1));
    unsigned char *used = calloc((size_t)K, 1);
    if (!mean || !row_h || !used) {
        free(mean); free(row_h); free(used);
        for (int i = 0; i < DX_PROB_STATS; i++) out[i] = NAN;
        return;
    }
    for (int n = 0; n < N; n++) {
        const float *r = P + (size_t)n * K;
        int am = 0;
        for (int k = 1; k < K; k++)
            if (r[k] > r[am]) am = k;
        used[am] = 1;
        double h = 0;
        if (from_logits) {
            /* H = log Z - sum p (x - max)/t with p = exp((x - max)/t) / Z */
            const double inv = 1.0 / temp, mx = r[am];
            double z = 0, ez = 0;
            for (int k = 0; k < K; k++) {
                double a = (r[k] - mx) * inv, e = exp(a);
                z += e;
                ez += e * a;
            }
            h = log(z) - ez / z;
            for (int k = 0; k < K; k++) mean[k] += exp((r[k] - mx) * inv) / z;
        } else {
            double s = 0;
            for (int k = 0; k < K; k++) s += r[k];
            if (s <= 0) s = 1;
            for (int k = 0; k < K; k++) {
                double p = r[k] / s;
                if (p > 0) h -= p * log(p);
                mean[k] += p;
            }
        }
        row_h[n] = h;
    }
    double hs = 0, hm = 0;
    int nu = 0;
    for (int n = 0; n < N; n++) hs += row_h[n];
    for (int k = 0; k < K; k++) {
        double p = N > 0 ? mean[k] / N : 0;
        if (p > 0) hm -= p * log(p);
        nu += used[k];
    }
    out[0] = N > 0 ? hs / N : 0;
    out[1] = hm;
    out[2] = nu;
    free(mean); free(row_h); free(used);
}

/* Eigenvalues of the symmetric n x n matrix a (destroyed) by cyclic Jacobi. */
static void jacobi_eigenvalues(double *a, int n, double *ev) {
    for (int sweep = 0; sweep < 60; sweep++) {
        double off = 0, diag = 0;
        for (int p = 0; p < n; p++)
            for (int q = 0; q < n; q++) {
                double v = a[(size_t)p * n + q] * a[(size_t)p * n + q];
                if (p == q) diag += v; else off += v;
            }
        if (off <= 1e-24 * (diag > 0 ? diag : 1)) break;
        for (int p = 0; p < n - 1; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = a[(size_t)p * n + q];
                if (fabs(apq) < 1e-300) continue;
                double app = a[(size_t)p * n + p], aqq = a[(size_t)q * n + q];
                double th = (aqq - app) / (2 * apq);
                double t = (th >= 0 ? 1.0 : -1.0) / (fabs(th) + sqrt(th * th + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < n; k++) { /* columns p, q */
                    double akp = a[(size_t)k * n + p], akq = a[(size_t)k * n + q];
                    a[(size_t)k * n + p] = c * akp - s * akq;
                    a[(size_t)k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) { /* rows p, q */
                    double apk = a[(size_t)p * n + k], aqk = a[(size_t)q * n + k];
                    a[(size_t)p * n + k] = c * apk - s * aqk;
                    a[(size_t)q * n + k] = s * apk + c * aqk;
                }
            }
    }
    for (int i = 0; i < n; i++) ev[i] = a[(size_t)i * n + i];
}

/* out[0] mean over d of the std over rows, out[1] effective rank
 * exp(H(lambda / sum lambda)) of the centred covariance (from the N x N Gram
 * of the centred rows: same non-zero spectrum, N <= a few hundred), out[2]
 * mean cosine of distinct row pairs. */
void dx_cpu_feature_stats(double out[DX_FEATURE_STATS], const float *x, int N, int D) {
    double *mu = calloc((size_t)D, sizeof(double));
    double *c = malloc(sizeof(double) * (size_t)N * D);
    double *g = malloc(sizeof(double) * (size_t)N * N);
    double *ev = malloc(sizeof(double) * (size_t)N);
    double *un = calloc((size_t)D, sizeof(double));
    if (!mu || !c || !g || !ev || !un || N < 2) {
        free(mu); free(c); free(g); free(ev); free(un);
        for (int i = 0; i < DX_FEATURE_STATS; i++) out[i] = N < 2 ? 0 : NAN;
        return;
    }
    for (int n = 0; n < N; n++)
        for (int d = 0; d < D; d++) mu[d] += x[(size_t)n * D + d];
    for (int d = 0; d < D; d++) mu[d] /= N;
    double sd = 0;
    for (int d = 0; d < D; d++) {
        double v = 0;
        for (int n = 0; n < N; n++) {
            double e = x[(size_t)n * D + d] - mu[d];
            c[(size_t)n * D + d] = e;
            v += e * e;
        }
        sd += sqrt(v / N);
    }
    out[0] = sd / D;
    for (int i = 0; i < N; i++)
        for (int j = i; j < N; j++) {
            double s = 0;
            for (int d = 0; d < D; d++) s += c[(size_t)i * D + d] * c[(size_t)j * D + d];
            g[(size_t)i * N + j] = g[(size_t)j * N + i] = s;
        }
    jacobi_eigenvalues(g, N, ev);
    double tot = 0, h = 0;
    for (int i = 0; i < N; i++) tot += ev[i] > 0 ? ev[i] : 0;
    for (int i = 0; i < N && tot > 0; i++)
        if (ev[i] > 0) { double p = ev[i] / tot; h -= p * log(p); }
    out[1] = tot > 0 ? exp(h) : 0;
    /* mean pairwise cosine = (|sum z|^2 - N) / (N (N - 1)) with z the unit rows */
    int nz = 0;
    for (int n = 0; n < N; n++) {
        double nn = 0;
        for (int d = 0; d < D; d++) nn += (double)x[(size_t)n * D + d] * x[(size_t)n * D + d];
        if (nn <= 0) continue;
        nz++;
        double inv = 1 / sqrt(nn);
        for (int d = 0; d < D; d++) un[d] += x[(size_t)n * D + d] * inv;
    }
    double s2 = 0;
    for (int d = 0; d < D; d++) s2 += un[d] * un[d];
    out[2] = nz > 1 ? (s2 - nz) / ((double)nz * (nz - 1)) : 0;
    free(mu); free(c); free(g); free(ev); free(un);
}

/* Mean over images of the mean cosine of distinct patch pairs; image i's
 * patch p is the row x + i*img_stride + p*D (so tokens [nimg, T, D] pass
 * their first patch row and T*D). */
double dx_cpu_patch_cosine(const float *x, int nimg, int P, int D, size_t img_stride) {
    if (P < 2 || nimg < 1) return 0;
    double tot = 0;
    double *u = malloc(sizeof(double) * (size_t)D);
    if (!u) return NAN;
    for (int i = 0; i < nimg; i++) {
        memset(u, 0, sizeof(double) * (size_t)D);
        int nz = 0;
        for (int p = 0; p < P; p++) {
            const float *r = x + (size_t)i * img_stride + (size_t)p * D;
            double nn = 0;
            for (int d = 0; d < D; d++) nn += (double)r[d] * r[d];
            if (nn <= 0) continue;
            nz++;
            double inv = 1 / sqrt(nn);
            for (int d = 0; d < D; d++) u[d] += r[d] * inv;
        }
        double s2 = 0;
        for (int d = 0; d < D; d++) s2 += u[d] * u[d];
        tot += nz > 1 ? (s2 - nz) / ((double)nz * (nz - 1)) : 0;
    }
    free(u);
    return tot / nimg;
}

void dx_cpu_row_argmax(int32_t *idx, const float *P, int N, int K) {
    for (int n = 0; n < N; n++) {
        const float *r = P + (size_t)n * K;
        int am = 0;
        for (int k = 1; k < K; k++)
            if (r[k] > r[am]) am = k;
        idx[n] = am;
    }
}
