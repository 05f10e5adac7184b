/* test_eval_metrics.c - evaluation statistics against independent references
 * computed here: brute-force pair counting for the AUC, a binormal
 * simulation for the bootstrap CI (coverage and standard error), KKT
 * conditions for the logistic regression, closed-form effective ranks,
 * finite differences for the segmentation head's gradient, and the split's
 * patient-level / stratification invariants. (sklearn/numpy/torch peers:
 * test_eval_peer.sh.) */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dx_rng.h"
#include "dx_test.h"
#include "eval/eval_run.h"
#include "eval/image_out.h"
#include "eval/logreg.h"
#include "eval/metrics.h"
#include "eval/probe.h"
#include "eval/seghead.h"
#include "eval/split.h"

static double auc_pairs(const double *s, const int *y, int n) {
    double num = 0, den = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (y[i] && !y[j]) { num += s[i] > s[j] ? 1 : s[i] == s[j] ? 0.5 : 0; den += 1; }
    return num / den;
}

static void test_auc(void) {
    dx_rng r;
    dx_rng_init(&r, 1, DX_RNG_TEST, 1, 0);
    for (int t = 0; t < 20; t++) {
        int n = 5 + (int)dx_rng_below(&r, 200);
        double *s = malloc(n * sizeof *s);
        int *y = malloc(n * sizeof *y), pos = 0;
        for (int i = 0; i < n; i++) {
            y[i] = dx_rng_uniform(&r) < 0.4;
            pos += y[i];
            s[i] = floor((dx_rng_normal(&r) + y[i]) * 4) / 4; /* many ties */
        }
        if (pos == 0 || pos == n) { y[0] = !y[0]; }
        CHECK_CLOSE(dx_auc(s, y, n), auc_pairs(s, y, n), 1e-12, 0, "AUC vs pair counting");
        free(s); free(y);
    }
    double s1[3] = {1, 2, 3};
    int y1[3] = {1, 1, 1};
    CHECK(isnan(dx_auc(s1, y1, 3)), "one class -> NAN");
}

/* Binormal model: scores N(0,1) for negatives, N(delta,1) for positives, so the
 * true AUC is Phi(delta / sqrt 2). The 95% bootstrap CI must cover it in about
 * 95% of simulated data sets, and the bootstrap SE must match the spread of
 * the AUC estimates across data sets. Groups: clusters of 1-3 items sharing a
 * random effect would change the truth, so clusters here are i.i.d. items
 * grouped in pairs (pairs resampled together: still unbiased). */
static void test_bootstrap(void) {
    const int sims = 200, n = 120, nboot = 400;
    const double delta = 1.0, truth = 0.5 * erfc(-(delta / sqrt(2.0)) / sqrt(2.0));
    int cover = 0;
    double sum = 0, sum2 = 0, se_mean = 0;
    double *s = malloc(n * sizeof *s);
    int *y = malloc(n * sizeof *y), *g = malloc(n * sizeof *g);
    for (int k = 0; k < sims; k++) {
        dx_rng r;
        dx_rng_init(&r, 2, DX_RNG_TEST, 2, k);
        for (int i = 0; i < n; i++) {
            y[i] = i % 3 == 0;
            s[i] = dx_rng_normal(&r) + delta * y[i];
            g[i] = i / 2;
        }
        double a = dx_auc(s, y, n);
        dx_boot_ci ci;
        dx_err e = {0};
        dx_status st = dx_auc_bootstrap(s, y, g, n, nboot, 0.95, 99 + k, &ci, &e);
        if (st) { CHECK(0, "bootstrap failed: %s", e.msg); break; }
        cover += ci.lo <= truth && truth <= ci.hi;
        sum += a;
        sum2 += a * a;
        se_mean += ci.se;
    }
    double mean = sum / sims, sd = sqrt((sum2 - sims * mean * mean) / (sims - 1));
    se_mean /= sims;
    printf("bootstrap: true AUC %.4f, mean estimate %.4f, sd across sims %.4f, mean bootstrap SE %.4f, coverage %d/%d\n",
           truth, mean, sd, se_mean, cover, sims);
    /* binomial(200, 0.95): 2.5-97.5% range is about 184..196; percentile CIs under-cover a little at n=120 */
    CHECK(cover >= 176 && cover <= 198, "coverage %d/%d", cover, sims);
    CHECK(fabs(se_mean / sd - 1) < 0.2, "bootstrap SE %.4f vs empirical sd %.4f", se_mean, sd);
    CHECK(fabs(mean - truth) < 0.01, "AUC estimate unbiased: %.4f vs %.4f", mean, truth);

    /* determinism and seed sensitivity */
    dx_boot_ci a, b, c;
    dx_auc_bootstrap(s, y, g, n, 200, 0.95, 5, &a, NULL);
    dx_auc_bootstrap(s, y, g, n, 200, 0.95, 5, &b, NULL);
    dx_auc_bootstrap(s, y, g, n, 200, 0.95, 6, &c, NULL);
    CHECK(a.lo == b.lo && a.hi == b.hi && a.se == b.se, "same seed, same CI");
    CHECK(a.lo != c.lo || a.hi != c.hi, "other seed, other CI");
    /* whole groups are resampled: if every group holds one positive and one
     * negative with the same order, every replicate has AUC 1 */
    for (int i = 0; i < n; i++) { g[i] = i / 2; y[i] = i % 2; s[i] = (i / 2) * 10 + y[i]; }
    dx_auc_bootstrap(s, y, g, n, 100, 0.95, 1, &a, NULL);
    CHECK(a.n_redrawn == 0, "paired groups never give a one-class replicate");
    /* non-contiguous group ids are fine */
    for (int i = 0; i < n; i++) g[i] = 1000 + 7 * (i / 4);
    CHECK(dx_auc_bootstrap(s, y, g, n, 50, 0.95, 1, &a, NULL) == DX_OK, "sparse group ids");
    free(s); free(y); free(g);
}

static void test_dice_iou(void) {
    uint8_t a[8] = {1, 1, 1, 0, 0, 0, 1, 0}, b[8] = {1, 1, 0, 0, 1, 0, 1, 0}, z[8] = {0};
    /* |A| = 4, |B| = 4, |A^B| = 3, |AvB| = 5 */
    CHECK_CLOSE(dx_dice(a, b, 8), 6.0 / 8, 1e-15, 0, "dice");
    CHECK_CLOSE(dx_iou(a, b, 8), 3.0 / 5, 1e-15, 0, "iou");
    CHECK_CLOSE(dx_dice(z, z, 8), 1, 0, 0, "both empty");
    CHECK_CLOSE(dx_dice(a, z, 8), 0, 0, 0, "one empty");
    double d = dx_dice(a, b, 8);
    CHECK_CLOSE(dx_iou(a, b, 8), d / (2 - d), 1e-15, 0, "IoU = D / (2 - D)");
}

/* Largest stationarity residual of a fit on the full problem: w_pen + C X^T (p - y) = 0 (without
 * w for the n_free unpenalised columns) and sum (p - y) = 0 for the intercept. */
static double kkt_residual(const dx_logreg *m, const double *X, const int *y, int n, int d, int n_free, double C) {
    double *g = calloc((size_t)d + 1, sizeof *g), worst = 0;
    for (int i = 0; i < n; i++) {
        double z = m->b;
        for (int j = 0; j < d; j++) z += X[i * d + j] * m->w[j];
        const double res = 1 / (1 + exp(-z)) - y[i];
        for (int j = 0; j < d; j++) g[j] += C * X[i * d + j] * res;
        g[d] += res;
    }
    for (int j = 0; j < d; j++) worst = fmax(worst, fabs(g[j] + (j < d - n_free ? m->w[j] : 0)));
    worst = fmax(worst, fabs(g[d]));
    free(g);
    return worst;
}

static void test_logreg(void) {
    const int n = 150, d = 6;
    double *X = malloc(n * d * sizeof *X);
    int *y = malloc(n * sizeof *y);
    dx_rng r;
    dx_rng_init(&r, 3, DX_RNG_TEST, 3, 0);
    for (int i = 0; i < n; i++) {
        double z = 0.3;
        for (int j = 0; j < d; j++) { X[i * d + j] = dx_rng_normal(&r); z += (j - 2.5) * 0.4 * X[i * d + j]; }
        y[i] = z + dx_rng_normal(&r) > 0;
    }
    const double Cs[3] = {0.01, 1, 1000};
    for (int c = 0; c < 6; c++) {
        const int n_free = c < 3 ? 0 : 2; /* then the last two columns unpenalised */
        dx_logreg m;
        dx_err e = {0};
        CHECK(dx_logreg_fit(&m, X, y, n, d, n_free, Cs[c % 3], 100, 1e-12, &e) == DX_OK, "fit: %s", e.msg);
        const double worst = kkt_residual(&m, X, y, n, d, n_free, Cs[c % 3]);
        CHECK(worst < 1e-8 * fmax(1, Cs[c % 3] * n), "KKT residual %.3g at C=%g, %d columns unpenalised", worst,
              Cs[c % 3], n_free);
        dx_logreg_free(&m);
    }
    /* more penalised columns than rows (the QR-reduced path), one column all zero and one a copy
     * of another (rank-deficient): the same stationarity on the full problem */
    {
        const int nw = 40, dw = 120;
        double *Xw = malloc(sizeof(double) * nw * dw);
        int yw[40];
        for (int i = 0; i < nw; i++) {
            double z = 0;
            for (int j = 0; j < dw; j++) Xw[i * dw + j] = j == 7 ? 0 : dx_rng_normal(&r);
            Xw[i * dw + 9] = Xw[i * dw + 3];
            for (int j = 0; j < 5; j++) z += Xw[i * dw + j];
            yw[i] = z + dx_rng_normal(&r) > 0;
        }
        for (int c = 0; c < 6; c++) {
            const int n_free = c < 3 ? 0 : 2;
            dx_logreg m;
            dx_err e = {0};
            CHECK(dx_logreg_fit(&m, Xw, yw, nw, dw, n_free, Cs[c % 3], 100, 1e-12, &e) == DX_OK, "wide fit: %s", e.msg);
            const double worst = kkt_residual(&m, Xw, yw, nw, dw, n_free, Cs[c % 3]);
            /* separable at C = 1000: the reduced problem's optimum is far out; looser there */
            CHECK(worst < 1e-7 * fmax(1, Cs[c % 3] * nw), "wide KKT residual %.3g at C=%g, %d unpenalised", worst,
                  Cs[c % 3], n_free);
            CHECK(fabs(m.w[7]) < 1e-12 * fmax(1, fabs(m.w[3])) && fabs(m.w[9] - m.w[3]) < 1e-9 * fmax(1, fabs(m.w[3])),
                  "a zero column gets no weight (%g), a copied column the same weight (%g, %g)", m.w[7], m.w[9], m.w[3]);
            dx_logreg_free(&m);
        }
        free(Xw);
    }
    /* separable data with a small penalty stays finite */
    for (int i = 0; i < n; i++) y[i] = X[i * d] > 0;
    dx_logreg m;
    CHECK(dx_logreg_fit(&m, X, y, n, d, 0, 1e4, 100, 1e-12, NULL) == DX_OK, "separable data");
    CHECK(isfinite(m.w[0]) && m.w[0] > 0, "separable: w0 = %g", m.w[0]);
    dx_logreg_free(&m);
    dx_err e = {0};
    CHECK(dx_logreg_fit(&m, X, y, n, d, 0, -1, 100, 1e-12, &e) == DX_EINVAL, "C <= 0 rejected");
    CHECK(dx_logreg_fit(&m, X, y, n, d, d + 1, 1, 100, 1e-12, &e) == DX_EINVAL, "n_free > d rejected");
    free(X); free(y);
}

static void test_erank(void) {
    /* rows +-s_k e_k (column-centred): singular values sqrt(2) s_k exactly */
    const int d = 10;
    const double sv[5] = {5, 4, 3, 2, 1};
    float X[10 * 10] = {0};
    for (int k = 0; k < 5; k++) { X[(2 * k) * d + k] = (float)sv[k]; X[(2 * k + 1) * d + k] = (float)-sv[k]; }
    double er, tot = 0, h = 0;
    CHECK(dx_effective_rank(X, 10, d, &er, NULL) == DX_OK, "erank");
    for (int k = 0; k < 5; k++) tot += sv[k];
    for (int k = 0; k < 5; k++) h -= sv[k] / tot * log(sv[k] / tot);
    CHECK_CLOSE(er, exp(h), 1e-9, 0, "erank of a known spectrum");
    float Y[8 * 4] = {0};
    for (int k = 0; k < 4; k++) { Y[(2 * k) * 4 + k] = 2; Y[(2 * k + 1) * 4 + k] = -2; }
    CHECK(dx_effective_rank(Y, 8, 4, &er, NULL) == DX_OK, "erank");
    CHECK_CLOSE(er, 4, 1e-9, 0, "equal singular values: erank = rank");
    float Z[6 * 3];
    for (int i = 0; i < 18; i++) Z[i] = 1.5f; /* all rows equal: centred matrix is zero */
    CHECK(dx_effective_rank(Z, 6, 3, &er, NULL) == DX_OK && er == 0, "collapsed features: erank 0");

    /* eigenvalues: trace and Frobenius invariants on a random symmetric matrix */
    const int m = 25;
    double A[25 * 25], A0[25 * 25], ev[25];
    dx_rng r;
    dx_rng_init(&r, 4, DX_RNG_TEST, 4, 0);
    for (int i = 0; i < m; i++)
        for (int j = 0; j <= i; j++) A[i * m + j] = A[j * m + i] = dx_rng_normal(&r);
    memcpy(A0, A, sizeof A);
    CHECK(dx_sym_eigvals(A, m, ev, NULL) == DX_OK, "jacobi");
    double tr = 0, fro = 0, str = 0, sfro = 0;
    for (int i = 0; i < m; i++) { tr += A0[i * m + i]; str += ev[i]; sfro += ev[i] * ev[i]; }
    for (int i = 0; i < m * m; i++) fro += A0[i] * A0[i];
    CHECK_CLOSE(str, tr, 1e-10, 0, "sum of eigenvalues = trace");
    CHECK_CLOSE(sfro, fro, 1e-9, 1e-12, "sum of squared eigenvalues = |A|_F^2");
    int sorted = 1;
    for (int i = 1; i < m; i++) sorted &= ev[i] <= ev[i - 1];
    CHECK(sorted, "descending");
    /* small and degenerate cases: 1x1, diagonal with repeats, 2x2 closed form */
    double one = -3.5, e1;
    CHECK(dx_sym_eigvals(&one, 1, &e1, NULL) == DX_OK && e1 == -3.5, "1x1");
    double Dg[16] = {2, 0, 0, 0, 0, -1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0}, e4[4];
    CHECK(dx_sym_eigvals(Dg, 4, e4, NULL) == DX_OK && e4[0] == 2 && e4[1] == 2 && e4[2] == 0 && e4[3] == -1, "diagonal");
    double T2[4] = {1, 2, 2, -2}, e2[2]; /* (a+c)/2 +- sqrt(((a-c)/2)^2 + b^2) = -0.5 +- 2.5 */
    CHECK(dx_sym_eigvals(T2, 2, e2, NULL) == DX_OK, "2x2");
    CHECK_CLOSE(e2[0], 2, 1e-14, 0, "2x2 largest");
    CHECK_CLOSE(e2[1], -3, 1e-14, 0, "2x2 smallest");
}

static void test_cosine_knn(void) {
    const int n = 30, d = 5;
    float X[30 * 5];
    dx_rng r;
    dx_rng_init(&r, 5, DX_RNG_TEST, 5, 0);
    for (int i = 0; i < n * d; i++) X[i] = (float)dx_rng_normal(&r) + 0.7f;
    double tot = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            if (i == j) continue;
            double ab = 0, aa = 0, bb = 0;
            for (int k = 0; k < d; k++) {
                double u = X[i * d + k], v = X[j * d + k];
                ab += u * v; aa += u * u; bb += v * v;
            }
            tot += ab / sqrt(aa * bb);
        }
    CHECK_CLOSE(dx_mean_pairwise_cosine(X, n, d), tot / (n * (n - 1)), 1e-12, 0, "pairwise cosine vs O(n^2)");
    float same[4 * 3] = {1, 2, 3, 2, 4, 6, 0.5f, 1, 1.5f, 3, 6, 9};
    CHECK_CLOSE(dx_mean_pairwise_cosine(same, 4, 3), 1, 1e-12, 0, "parallel rows: cosine 1");
    /* k-NN: queries equal to a training row of a cluster get that cluster */
    int y[30], pred[30];
    for (int i = 0; i < n; i++) {
        y[i] = i < 15;
        for (int k = 0; k < d; k++) X[i * d + k] = (float)(0.05 * dx_rng_normal(&r) + (k == (y[i] ? 0 : 1)));
    }
    CHECK(dx_knn_cosine(X, y, n, X, n, d, 5, pred, NULL) == DX_OK, "knn");
    int ok = 0;
    for (int i = 0; i < n; i++) ok += pred[i] == y[i];
    CHECK(ok == n, "two clusters: %d/%d", ok, n);
    /* even k, tie in the vote -> 0 (sklearn's mode keeps the smaller label) */
    float T[4 * 2] = {1, 0, 1, 0.01f, 1, -0.01f, 1, 0.02f};
    int ty[4] = {1, 0, 1, 0}, tp;
    float q[2] = {1, 0};
    dx_knn_cosine(T, ty, 4, q, 1, 2, 4, &tp, NULL);
    CHECK(tp == 0, "vote tie -> 0");
}

static void test_seghead(void) {
    /* finite differences of the loss w.r.t. (w, b) */
    const int n = 3, Hp = 3, Wp = 4, D = 5, H = 12, W = 16, P = Hp * Wp;
    float *f = malloc((size_t)n * P * D * sizeof *f);
    uint8_t *m = malloc((size_t)n * H * W);
    dx_rng r;
    dx_rng_init(&r, 6, DX_RNG_TEST, 6, 0);
    for (int i = 0; i < n * P * D; i++) f[i] = (float)dx_rng_normal(&r);
    for (int i = 0; i < n * H * W; i++) m[i] = dx_rng_uniform(&r) < 0.3;
    double mu[5], sd[5], w[5];
    for (int j = 0; j < D; j++) { mu[j] = 0.1 * j; sd[j] = 1 + 0.2 * j; w[j] = dx_rng_normal(&r); }
    dx_seghead h = {D, mu, sd, w, 0.3};
    double g[6], worst = 0;
    dx_seghead_loss(&h, f, m, n, Hp, Wp, H, W, g);
    for (int j = 0; j <= D; j++) {
        double *p = j < D ? &w[j] : &h.b, keep = *p, eps = 1e-5;
        *p = keep + eps;
        double lp = dx_seghead_loss(&h, f, m, n, Hp, Wp, H, W, NULL);
        *p = keep - eps;
        double lm = dx_seghead_loss(&h, f, m, n, Hp, Wp, H, W, NULL);
        *p = keep;
        worst = fmax(worst, fabs((lp - lm) / (2 * eps) - g[j]));
    }
    CHECK(worst < 1e-7, "seg head gradient vs finite differences: %.3g", worst);
    free(f); free(m);

    /* a learnable problem: patch features carry the block's label */
    const int n2 = 8, Hp2 = 6, S = 48, P2 = 36, D2 = 4;
    float *f2 = malloc((size_t)n2 * P2 * D2 * sizeof *f2);
    uint8_t *m2 = calloc((size_t)n2 * S * S, 1);
    for (int i = 0; i < n2; i++)
        for (int p = 0; p < P2; p++) {
            int py = p / Hp2, px = p % Hp2, fg = abs(py - 2 - i % 2) <= 1 && abs(px - 2) <= 1;
            for (int k = 0; k < D2; k++) f2[((size_t)i * P2 + p) * D2 + k] = (float)(0.2 * dx_rng_normal(&r) + (k == 0 ? 2.0 * fg : 0));
            if (fg)
                for (int y = py * 8; y < py * 8 + 8; y++)
                    for (int x = px * 8; x < px * 8 + 8; x++) m2[((size_t)i * S + y) * S + x] = 1;
        }
    dx_seghead h2;
    double loss;
    CHECK(dx_seghead_train(&h2, f2, m2, n2, Hp2, Hp2, D2, S, S, 300, 0.05, &loss, NULL) == DX_OK, "seg train");
    float *prob = malloc((size_t)S * S * sizeof *prob);
    uint8_t *pred = malloc((size_t)S * S);
    double dice = 0;
    for (int i = 0; i < n2; i++) {
        dx_seghead_predict(&h2, f2 + (size_t)i * P2 * D2, Hp2, Hp2, S, S, prob);
        for (int q = 0; q < S * S; q++) pred[q] = prob[q] >= 0.5f;
        dice += dx_dice(pred, m2 + (size_t)i * S * S, S * S) / n2;
    }
    printf("seg head on a learnable toy problem: loss %.4f, Dice %.3f\n", loss, dice);
    CHECK(dice > 0.85, "Dice %.3f", dice);
    dx_seghead_free(&h2);
    free(f2); free(m2); free(prob); free(pred);

    float c[6] = {2, 2, 2, 2, 2, 2}, o[35];
    dx_bilinear_resize(c, 2, 3, o, 5, 7);
    int allc = 1;
    for (int i = 0; i < 35; i++) allc &= fabsf(o[i] - 2) < 1e-6f;
    CHECK(allc, "bilinear keeps constants");
}

static void test_split(void) {
    enum { N = 103 };
    int strat[N], out[N], out2[N], out3[N];
    for (int i = 0; i < N; i++) strat[i] = i % 7 == 0 ? 2 : i % 3 == 0 ? 1 : 0;
    CHECK(dx_split_patients(strat, N, 0.2, 0.2, 11, out, NULL) == DX_OK, "split");
    dx_split_patients(strat, N, 0.2, 0.2, 11, out2, NULL);
    dx_split_patients(strat, N, 0.2, 0.2, 12, out3, NULL);
    CHECK(!memcmp(out, out2, sizeof out), "deterministic");
    CHECK(memcmp(out, out3, sizeof out), "seed matters");
    for (int s = 0; s < 3; s++) {
        int m = 0, c[3] = {0, 0, 0};
        for (int i = 0; i < N; i++)
            if (strat[i] == s) { m++; c[out[i]]++; }
        CHECK(c[DX_SPLIT_TEST] == (int)floor(0.2 * m + 0.5) && c[DX_SPLIT_VAL] == (int)floor(0.2 * m + 0.5),
              "stratum %d: %d patients -> test %d val %d", s, m, c[2], c[1]);
    }
    dx_err e = {0};
    CHECK(dx_split_patients(strat, N, 0.5, 0.5, 1, out, &e) == DX_EINVAL, "fractions must leave train");
}

static void test_image_out(void) {
    char *b = dx_base64((const uint8_t *)"foobar", 6);
    CHECK(!strcmp(b, "Zm9vYmFy"), "base64 %s", b);
    free(b);
    b = dx_base64((const uint8_t *)"fooba", 5);
    CHECK(!strcmp(b, "Zm9vYmE="), "base64 %s", b);
    free(b);
    b = dx_base64((const uint8_t *)"f", 1);
    CHECK(!strcmp(b, "Zg=="), "base64 %s", b);
    free(b);
    uint8_t rgb[4 * 3 * 3];
    float gray[12], heat[12];
    for (int i = 0; i < 12; i++) { gray[i] = i / 11.0f; heat[i] = 0; }
    dx_overlay_heat(gray, heat, 3, 4, 0.6f, rgb);
    CHECK(rgb[0] == 0 && rgb[33] == 255 && rgb[34] == 255, "zero heat leaves the grey image");
    uint8_t *png;
    size_t len;
    CHECK(dx_png_encode_rgb(rgb, 4, 3, &png, &len, NULL) == DX_OK, "png");
    CHECK(len > 8 && !memcmp(png, "\x89PNG\r\n\x1a\n", 8), "PNG signature");
    free(png);
}

/* Paired bootstrap of an AUC difference, clustered mean, attention-in-mask ratio. */
static void test_paired(void) {
    enum { N = 60 };
    double good[N], same[N], noise[N];
    int y[N], g[N];
    dx_rng r;
    dx_rng_init(&r, 5, 0, 0, 0);
    for (int i = 0; i < N; i++) {
        y[i] = i % 2;
        g[i] = i / 3; /* 3 nodules per patient */
        good[i] = y[i] + 0.01 * i / N;   /* perfect ranking */
        same[i] = good[i];
        noise[i] = dx_rng_uniform(&r);
    }
    dx_err err = {0};
    dx_paired_diff d, d2;
    CHECK(dx_auc_diff_bootstrap(good, same, y, g, N, 500, 0.95, 1, &d, &err) == DX_OK, "%s", err.msg);
    CHECK(d.diff == 0 && d.ci.lo == 0 && d.ci.hi == 0 && d.p_le0 == 1, "identical scorers: diff %g [%g, %g] p %g",
          d.diff, d.ci.lo, d.ci.hi, d.p_le0);
    CHECK(dx_auc_diff_bootstrap(good, noise, y, g, N, 500, 0.95, 1, &d, &err) == DX_OK, "%s", err.msg);
    CHECK_CLOSE(d.diff, 1.0 - dx_auc(noise, y, N), 1e-12, 0, "perfect - random: point difference");
    CHECK(d.ci.lo > 0 && d.p_le0 == 0, "perfect vs random scorer: CI above 0 ([%g, %g], p %g)", d.ci.lo, d.ci.hi, d.p_le0);
    CHECK(dx_auc_diff_bootstrap(noise, good, y, g, N, 500, 0.95, 1, &d2, &err) == DX_OK, "%s", err.msg);
    CHECK(d2.ci.hi < 0 && fabs(d2.diff + d.diff) < 1e-12, "swapped: CI below 0, difference negated");
    CHECK(dx_auc_diff_bootstrap(good, noise, y, g, N, 500, 0.95, 1, &d2, &err) == DX_OK &&
              d2.ci.lo == d.ci.lo && d2.ci.hi == d.ci.hi, "same seed: same CI");
    /* clustered mean: constant values -> CI is that constant */
    double c[N];
    for (int i = 0; i < N; i++) c[i] = 2.5;
    CHECK(dx_mean_bootstrap(c, NULL, g, N, 200, 0.95, 3, &d, &err) == DX_OK && d.diff == 2.5 && d.ci.lo == 2.5 &&
              d.ci.hi == 2.5, "mean of a constant");
    CHECK(dx_mean_bootstrap(good, same, g, N, 200, 0.95, 3, &d, &err) == DX_OK && d.diff == 0, "mean of a - a");
    /* attention ratio: 4x4 patches of 2x2 pixels on an 8x8 crop, mask = the top-left patch (share 1/16) */
    float att[16];
    uint8_t mask[64] = {0};
    mask[0] = mask[1] = mask[8] = mask[9] = 1;
    for (int p = 0; p < 16; p++) att[p] = 1.0f / 16;
    CHECK_CLOSE(dx_attention_in_mask_ratio(att, 4, 4, mask, 8), 1.0, 1e-12, 0, "uniform attention = chance");
    for (int p = 0; p < 16; p++) att[p] = p == 0 ? 0.5f : 0; /* all mass inside; the scale of att does not matter */
    CHECK_CLOSE(dx_attention_in_mask_ratio(att, 4, 4, mask, 8), 16.0, 1e-12, 0, "all mass inside = 1 / share");
    mask[1] = mask[9] = 0; /* the patch half covered: share 1/32, inside fraction 1/2 */
    CHECK_CLOSE(dx_attention_in_mask_ratio(att, 4, 4, mask, 8), 16.0, 1e-12, 0, "partial patch coverage");
    memset(mask, 0, sizeof mask);
    CHECK(isnan(dx_attention_in_mask_ratio(att, 4, 4, mask, 8)), "empty mask: NaN");
}

/* nodule-pooled patch features: weights = share of each patch inside the mask */
static void test_nodule_pool(void) {
    enum { S = 8, Hp = 4, Wp = 4, P = 16, D = 2 };
    float patch[2 * P * D];
    for (int i = 0; i < 2; i++)
        for (int p = 0; p < P; p++) patch[(i * P + p) * D] = (float)p, patch[(i * P + p) * D + 1] = (float)(10 * i);
    uint8_t mask[2 * S * S];
    memset(mask, 0, sizeof mask);
    /* crop 0: patch 0 fully inside (4 px), patch 1 half inside (2 px): weights 1 and 0.5 */
    mask[0] = mask[1] = mask[8] = mask[9] = 1;
    mask[2] = mask[10] = 1;
    /* crop 1: empty mask -> the centre patch (row 2, column 2 = patch 10) */
    dx_features f = {.n = 2, .D = D, .P = P, .Hp = Hp, .Wp = Wp, .patch = patch};
    float out[2 * D];
    dx_eval_nodule_pool(&f, mask, S, out);
    CHECK_CLOSE(out[0], (0 * 1.0 + 1 * 0.5) / 1.5, 1e-6, 0, "weighted mean over the mask's patches");
    CHECK_CLOSE(out[1], 0.0, 1e-6, 0, "second dimension of crop 0");
    CHECK_CLOSE(out[2], 10.0, 1e-6, 0, "empty mask: the centre patch");
    CHECK_CLOSE(out[3], 10.0, 1e-6, 0, "empty mask: the centre patch, dimension 2");
}


/* K-fold assignment and the cross-validated probe. */
static void test_probe_cv(void) {
    enum { NP = 103, K = 5 };
    int strat[NP], fold[NP], fold2[NP], fold3[NP];
    for (int i = 0; i < NP; i++) strat[i] = i % 7 == 0 ? 2 : i % 3 == 0 ? 1 : 0;
    CHECK(dx_fold_patients(strat, NP, K, 11, fold, NULL) == DX_OK, "folds");
    dx_fold_patients(strat, NP, K, 11, fold2, NULL);
    dx_fold_patients(strat, NP, K, 12, fold3, NULL);
    CHECK(!memcmp(fold, fold2, sizeof fold), "folds deterministic");
    CHECK(memcmp(fold, fold3, sizeof fold), "folds: seed matters");
    int size[K] = {0}, lo = NP, hi = 0;
    for (int i = 0; i < NP; i++) size[fold[i]]++;
    for (int f = 0; f < K; f++) { lo = size[f] < lo ? size[f] : lo; hi = size[f] > hi ? size[f] : hi; }
    CHECK(hi - lo <= 1, "fold sizes %d..%d", lo, hi);
    for (int s = 0; s < 3; s++) {
        int c[K] = {0}, a = NP, b = 0;
        for (int i = 0; i < NP; i++)
            if (strat[i] == s) c[fold[i]]++;
        for (int f = 0; f < K; f++) { a = c[f] < a ? c[f] : a; b = c[f] > b ? c[f] : b; }
        CHECK(b - a <= 1, "stratum %d spread over folds %d..%d", s, a, b);
    }
    dx_err e = {0};
    CHECK(dx_fold_patients(strat, NP, 1, 0, fold, &e) == DX_EINVAL, "one fold rejected");
    CHECK(dx_fold_patients(strat, 3, 4, 0, fold, &e) == DX_EINVAL, "more folds than patients rejected");

    /* rows: 2 nodules per patient; x0 carries the label, x1.. noise; a few unlabelled rows */
    enum { N = 2 * NP, D = 4 };
    double X[N * D], x0[N];
    int y[N], g[N], rf[N];
    dx_rng r;
    dx_rng_init(&r, 5, DX_RNG_TEST, 9, 0);
    dx_fold_patients(strat, NP, K, 3, fold, NULL);
    for (int i = 0; i < N; i++) {
        g[i] = i / 2;
        rf[i] = fold[g[i]];
        y[i] = dx_rng_uniform(&r) < 0.4;
        x0[i] = (y[i] ? 1.2 : 0) + dx_rng_normal(&r);
        X[i * D] = x0[i];
        for (int j = 1; j < D; j++) X[i * D + j] = dx_rng_normal(&r);
        if (i % 17 == 0) y[i] = -1;
    }
    const double Cs[3] = {1e-4, 1e-2, 1};
    dx_probe_result p;
    double oof[N];
    CHECK(dx_probe_run_cv(X, y, rf, K, g, N, D, 0, Cs, 3, 200, 1, &p, oof, &e) == DX_OK, "cv probe: %s", e.msg);
    int labelled = 0, scored = 0, unl_nan = 1;
    for (int i = 0; i < N; i++) {
        labelled += y[i] >= 0;
        scored += y[i] >= 0 && isfinite(oof[i]);
        if (y[i] < 0 && !isnan(oof[i])) unl_nan = 0;
    }
    CHECK(p.folds == K && p.n_test == labelled && scored == labelled, "every labelled row scored once (%d of %d)", scored, labelled);
    CHECK(unl_nan, "unlabelled rows get no score");
    CHECK(p.test_auc > 0.7 && p.ci.n_boot == 200 && p.ci.lo < p.test_auc && p.test_auc < p.ci.hi,
          "signal found: AUC %.3f [%.3f, %.3f]", p.test_auc, p.ci.lo, p.ci.hi);
    /* one feature and the strongest penalty: every fold's model is a positive multiple of x0 plus its
     * own intercept, so pooled z-scores must rank like x0 itself (raw decision values, dominated by the
     * intercepts of five models, do not) */
    double c1 = 1e-4, ya[N];
    int yl[N], m = 0;
    for (int i = 0; i < N; i++)
        if (y[i] >= 0) { ya[m] = x0[i]; yl[m++] = y[i]; }
    const double auc_x0 = dx_auc(ya, yl, m);
    CHECK(dx_probe_run_cv(x0, y, rf, K, g, N, 1, 0, &c1, 1, 0, 1, &p, oof, &e) == DX_OK, "cv probe 1-d");
    CHECK(fabs(p.test_auc - auc_x0) < 0.02, "1-d pooled AUC %.4f vs AUC of the feature %.4f", p.test_auc, auc_x0);
    /* no label of a fold reaches its own scores: flipping fold 0's labels leaves fold 0's scores as they were */
    double oof2[N];
    int y2[N];
    memcpy(y2, y, sizeof y);
    for (int i = 0; i < N; i++)
        if (rf[i] == 0 && y2[i] >= 0) y2[i] = 1 - y2[i];
    dx_probe_run_cv(X, y, rf, K, g, N, D, 0, &c1, 1, 0, 1, &p, oof, NULL);
    dx_probe_run_cv(X, y2, rf, K, g, N, D, 0, &c1, 1, 0, 1, &p, oof2, NULL);
    int same = 1;
    for (int i = 0; i < N; i++)
        if (rf[i] == 0 && y[i] >= 0 && oof[i] != oof2[i]) same = 0;
    CHECK(same, "fold 0's scores do not depend on fold 0's labels");
    /* feature sets as a hyperparameter: a pure-noise set beside the signal set; folds choose the signal */
    double Xn[N * D];
    for (int i = 0; i < N * D; i++) Xn[i] = dx_rng_normal(&r);
    const double *sets[2] = {Xn, X};
    const int ds[2] = {D, D};
    int mode = -1;
    CHECK(dx_probe_run_cv_sets(sets, ds, 2, 0, y, rf, K, g, N, Cs, 3, 0, 1, &p, oof, &mode, &e) == DX_OK, "cv sets");
    CHECK(mode == 1 && p.test_auc > 0.7, "sets: chose %d, AUC %.3f", mode, p.test_auc);
    CHECK(dx_probe_run_cv(X, y, rf, 2, g, N, D, 0, Cs, 3, 0, 1, &p, oof, &e) == DX_EINVAL, "2 folds rejected");
    /* a known covariate (x0, last) beside 40 noise features at the strongest penalty: unpenalised
     * (n_free 1) it keeps its weight and the probe ranks like x0 alone; penalised like the noise,
     * its weight shrinks with theirs and the noise costs AUC */
    enum { DN = 41 };
    double *Xc = malloc(sizeof(double) * N * DN);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < DN; j++) Xc[i * DN + j] = j == DN - 1 ? x0[i] : dx_rng_normal(&r);
    dx_probe_result pf, pp;
    CHECK(dx_probe_run_cv(Xc, y, rf, K, g, N, DN, 1, &c1, 1, 0, 1, &pf, oof, &e) == DX_OK &&
              dx_probe_run_cv(Xc, y, rf, K, g, N, DN, 0, &c1, 1, 0, 1, &pp, oof2, &e) == DX_OK,
          "cv probe with a covariate: %s", e.msg);
    CHECK(fabs(pf.test_auc - auc_x0) < 0.02 && pp.test_auc < pf.test_auc - 0.02,
          "covariate unpenalised: AUC %.4f (x0 alone %.4f); penalised with the noise: %.4f", pf.test_auc, auc_x0,
          pp.test_auc);
    free(Xc);
    /* the same covariate beside 300 noise columns (more than the rows), choosing C on the probe's own
     * grid: the features + covariate probe must not lose to the covariate alone by more than noise,
     * because a C small enough to silence the noise is on the grid and inner cross-validation finds it
     * (here -0.002; choosing on one validation fold gave -0.018, and -0.06 on real SSL features) */
    enum { DW = 301 };
    const double grid[8] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10};
    double *Xw = malloc(sizeof(double) * N * DW);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < DW; j++) Xw[i * DW + j] = j == DW - 1 ? x0[i] : dx_rng_normal(&r);
    CHECK(dx_probe_run_cv(Xw, y, rf, K, g, N, DW, 1, grid, 8, 0, 1, &pf, oof, &e) == DX_OK, "wide probe: %s", e.msg);
    CHECK(pf.test_auc > auc_x0 - 0.01, "300 noise features + covariate: AUC %.4f, covariate alone %.4f (C %g)",
          pf.test_auc, auc_x0, pf.C);
    free(Xw);
}

int main(void) {
    test_nodule_pool();
    test_paired();
    test_auc();
    test_bootstrap();
    test_dice_iou();
    test_logreg();
    test_erank();
    test_cosine_knn();
    test_seghead();
    test_split();
    test_probe_cv();
    test_image_out();
    return dx_test_summary();
}
