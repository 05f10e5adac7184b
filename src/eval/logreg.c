/* logreg.c - Newton/IRLS logistic regression with L2 penalty (logreg.h). */
#include "eval/logreg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* log(1 + exp(z)) without overflow */
static double log1pexp(double z) { return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z)); }
static double sigmoid(double z) {
    if (z >= 0) return 1 / (1 + exp(-z));
    double e = exp(z);
    return e / (1 + e);
}

static double objective(const double *X, const int *y, int n, int d, int dp, double C, const double *w,
                        double b) {
    double f = 0;
    for (int j = 0; j < dp; j++) f += 0.5 * w[j] * w[j]; /* the first dp columns are penalised */
    for (int i = 0; i < n; i++) {
        double z = b;
        for (int j = 0; j < d; j++) z += X[(size_t)i * d + j] * w[j];
        f += C * log1pexp(y[i] ? -z : z);
    }
    return f;
}

/* In-place Cholesky A = L L^T (lower), then solves L L^T x = r into r. */
static int chol_solve(double *A, int m, double *r) {
    for (int j = 0; j < m; j++) {
        double s = A[(size_t)j * m + j];
        for (int k = 0; k < j; k++) s -= A[(size_t)j * m + k] * A[(size_t)j * m + k];
        if (!(s > 0)) return -1;
        double l = sqrt(s);
        A[(size_t)j * m + j] = l;
        for (int i = j + 1; i < m; i++) {
            double t = A[(size_t)i * m + j];
            for (int k = 0; k < j; k++) t -= A[(size_t)i * m + k] * A[(size_t)j * m + k];
            A[(size_t)i * m + j] = t / l;
        }
    }
    for (int i = 0; i < m; i++) {
        double t = r[i];
        for (int k = 0; k < i; k++) t -= A[(size_t)i * m + k] * r[k];
        r[i] = t / A[(size_t)i * m + i];
    }
    for (int i = m - 1; i >= 0; i--) {
        double t = r[i];
        for (int k = i + 1; k < m; k++) t -= A[(size_t)k * m + i] * r[k];
        r[i] = t / A[(size_t)i * m + i];
    }
    return 0;
}

dx_status dx_logreg_fit(dx_logreg *m, const double *X, const int *y, int n, int d, int n_free, double C,
                        int max_iter, double tol, dx_err *err) {
    memset(m, 0, sizeof *m);
    if (n <= 0 || d <= 0 || !(C > 0) || n_free < 0 || n_free > d)
        return dx_fail(err, DX_EINVAL, "logreg: n=%d d=%d n_free=%d C=%g", n, d, n_free, C);
    const int p = d + 1, dp = d - n_free; /* unknowns: w, then b; w[0..dp) penalised */
    m->d = d;
    m->w = calloc((size_t)d, sizeof *m->w);
    double *H = malloc((size_t)p * p * sizeof *H), *g = malloc((size_t)p * sizeof *g);
    double *wt = malloc((size_t)d * sizeof *wt), *xi1 = malloc((size_t)p * sizeof *xi1);
    dx_status st = DX_OK;
    if (!m->w || !H || !g || !wt || !xi1) { st = dx_fail(err, DX_ENOMEM, "logreg d=%d", d); goto done; }
    double f = objective(X, y, n, d, dp, C, m->w, m->b);
    for (m->iters = 0; m->iters < max_iter; m->iters++) {
        /* g = [w_pen; 0; 0] + C X1^T (p - y);  H = diag(1..1, 0..0, 0) + C X1^T S X1, X1 = [X, 1] */
        memset(H, 0, (size_t)p * p * sizeof *H);
        for (int j = 0; j < d; j++) {
            g[j] = j < dp ? m->w[j] : 0;
            H[(size_t)j * p + j] = j < dp ? 1 : 1e-12; /* like the intercept's, below */
        }
        g[d] = 0;
        for (int i = 0; i < n; i++) {
            const double *xi = X + (size_t)i * d;
            double z = m->b;
            for (int j = 0; j < d; j++) z += xi[j] * m->w[j];
            double pr = sigmoid(z), r = C * (pr - (y[i] != 0)), s = C * pr * (1 - pr);
            memcpy(xi1, xi, (size_t)d * sizeof *xi1);
            xi1[d] = 1;
            for (int a = 0; a < p; a++) {
                g[a] += r * xi1[a];
                double sa = s * xi1[a];
                if (sa == 0) continue;
                double *Ha = H + (size_t)a * p;
                for (int c = 0; c <= a; c++) Ha[c] += sa * xi1[c]; /* lower triangle */
            }
        }
        for (int a = 0; a < p; a++)
            for (int c = a + 1; c < p; c++) H[(size_t)a * p + c] = H[(size_t)c * p + a];
        /* the unpenalised intercept row can be ~0 when every p(1-p) underflows */
        H[(size_t)d * p + d] += 1e-12;
        if (chol_solve(H, p, g)) { st = dx_fail(err, DX_ENUMERIC, "logreg: Hessian not positive definite"); goto done; }
        /* g now holds the Newton direction (to subtract) */
        double step = 1, fn = f;
        for (int ls = 0; ls < 60; ls++, step *= 0.5) {
            for (int j = 0; j < d; j++) wt[j] = m->w[j] - step * g[j];
            fn = objective(X, y, n, d, dp, C, wt, m->b - step * g[d]);
            if (fn <= f) break;
        }
        double maxstep = 0;
        for (int a = 0; a < p; a++) maxstep = fmax(maxstep, fabs(step * g[a]));
        if (fn > f) break; /* no descent left at double precision */
        memcpy(m->w, wt, (size_t)d * sizeof *wt);
        m->b -= step * g[d];
        f = fn;
        if (maxstep < tol) { m->iters++; break; }
    }
    if (!isfinite(f)) st = dx_fail(err, DX_ENUMERIC, "logreg: non-finite objective");
done:
    free(H); free(g); free(wt); free(xi1);
    if (st) dx_logreg_free(m);
    return st;
}

void dx_logreg_free(dx_logreg *m) {
    free(m->w);
    m->w = NULL;
}

void dx_logreg_decision(const dx_logreg *m, const double *X, int n, double *out) {
    for (int i = 0; i < n; i++) {
        double z = m->b;
        for (int j = 0; j < m->d; j++) z += X[(size_t)i * m->d + j] * m->w[j];
        out[i] = z;
    }
}

dx_status dx_standardize(double *X, int n_fit, int n_all, int d, dx_err *err) {
    if (n_fit <= 0) return dx_fail(err, DX_EINVAL, "standardize: no rows to fit");
    for (int j = 0; j < d; j++) {
        double mu = 0, ss = 0;
        for (int i = 0; i < n_fit; i++) mu += X[(size_t)i * d + j];
        mu /= n_fit;
        for (int i = 0; i < n_fit; i++) ss += (X[(size_t)i * d + j] - mu) * (X[(size_t)i * d + j] - mu);
        double sd = sqrt(ss / n_fit);
        if (!(sd > 0)) sd = 1;
        for (int i = 0; i < n_all; i++) X[(size_t)i * d + j] = (X[(size_t)i * d + j] - mu) / sd;
    }
    return DX_OK;
}
