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

/* Newton with a backtracking line search on X [n, d], the first dp columns penalised; w [d] and *b
 * start at zero. */
static dx_status newton_fit(const double *X, const int *y, int n, int d, int dp, double C, int max_iter,
                            double tol, double *w, double *b, int *iters, dx_err *err) {
    const int p = d + 1; /* unknowns: w, then b */
    double *H = malloc((size_t)p * p * sizeof *H), *g = malloc((size_t)p * sizeof *g);
    double *wt = malloc((size_t)d * sizeof *wt), *xi1 = malloc((size_t)p * sizeof *xi1);
    dx_status st = DX_OK;
    if (!H || !g || !wt || !xi1) { st = dx_fail(err, DX_ENOMEM, "logreg d=%d", d); goto done; }
    double f = objective(X, y, n, d, dp, C, w, *b);
    for (*iters = 0; *iters < max_iter; (*iters)++) {
        /* g = [w_pen; 0; 0] + C X1^T (p - y);  H = diag(1..1, 0..0, 0) + C X1^T S X1, X1 = [X, 1] */
        memset(H, 0, (size_t)p * p * sizeof *H);
        for (int j = 0; j < d; j++) {
            g[j] = j < dp ? w[j] : 0;
            H[(size_t)j * p + j] = j < dp ? 1 : 1e-12; /* like the intercept's, below */
        }
        g[d] = 0;
        for (int i = 0; i < n; i++) {
            const double *xi = X + (size_t)i * d;
            double z = *b;
            for (int j = 0; j < d; j++) z += xi[j] * w[j];
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
            for (int j = 0; j < d; j++) wt[j] = w[j] - step * g[j];
            fn = objective(X, y, n, d, dp, C, wt, *b - step * g[d]);
            if (fn <= f) break;
        }
        double maxstep = 0;
        for (int a = 0; a < p; a++) maxstep = fmax(maxstep, fabs(step * g[a]));
        if (fn > f) break; /* no descent left at double precision */
        memcpy(w, wt, (size_t)d * sizeof *wt);
        *b -= step * g[d];
        f = fn;
        if (maxstep < tol) { (*iters)++; break; }
    }
    if (!isfinite(f)) st = dx_fail(err, DX_ENUMERIC, "logreg: non-finite objective");
done:
    free(H); free(g); free(wt); free(xi1);
    return st;
}

/* More penalised columns than rows (a probe on 768 features of 200 nodules): the optimal w_pen lies
 * in the span of the rows' penalised parts (a component orthogonal to every row leaves the loss as
 * it is and only adds penalty), so the problem is solved exactly in that span, of dimension <= n.
 * Householder QR of A = X_pen^T [dp, n]: A = Q R, Q's columns orthonormal, so w_pen = Q g keeps
 * |w_pen| = |g| and x_i.w_pen = (R^T)_i.g; the reduced design is [R^T, X_free], n + n_free columns.
 * This turns a Newton step's O(n d^2 + d^3) into O(n^3) after one O(n^2 d) factorisation. */
static dx_status reduced_fit(const double *X, const int *y, int n, int d, int dp, double C, int max_iter,
                             double tol, dx_logreg *m, dx_err *err) {
    const int nf = d - dp, dr = n + nf;
    double *A = malloc((size_t)n * dp * sizeof *A); /* column i = row i's penalised part */
    double *beta = malloc((size_t)n * sizeof *beta), *Z = malloc((size_t)n * dr * sizeof *Z);
    double *wr = calloc((size_t)dr, sizeof *wr), *v = malloc((size_t)dp * sizeof *v);
    dx_status st = DX_OK;
    if (!A || !beta || !Z || !wr || !v) { st = dx_fail(err, DX_ENOMEM, "logreg d=%d n=%d", d, n); goto done; }
    for (int i = 0; i < n; i++) memcpy(A + (size_t)i * dp, X + (size_t)i * d, (size_t)dp * sizeof *A);
    /* column k's reflector v_k = A[k.., k] after the step, stored in place below the diagonal;
     * beta[k] = 2 / |v_k|^2 (0: the column was already zero there, no reflection) */
    for (int k = 0; k < n; k++) {
        double *ak = A + (size_t)k * dp, nrm = 0;
        for (int j = k; j < dp; j++) nrm += ak[j] * ak[j];
        nrm = sqrt(nrm);
        if (nrm == 0) { beta[k] = 0; Z[(size_t)k * dr + k] = 0; continue; }
        const double alpha = ak[k] > 0 ? -nrm : nrm;
        ak[k] -= alpha; /* v = x - alpha e_k */
        double vv = 0;
        for (int j = k; j < dp; j++) vv += ak[j] * ak[j];
        beta[k] = 2 / vv;
        for (int c = k + 1; c < n; c++) {
            double *ac = A + (size_t)c * dp, s = 0;
            for (int j = k; j < dp; j++) s += ak[j] * ac[j];
            s *= beta[k];
            for (int j = k; j < dp; j++) ac[j] -= s * ak[j];
        }
        /* R[k][k] = alpha; v stays in ak[k..], R's diagonal goes straight into Z */
        Z[(size_t)k * dr + k] = alpha;
    }
    /* Z row i = (R^T)_i: R[k][i] for k < i (above R's diagonal, stored in column i), R[i][i], 0 after */
    for (int i = 0; i < n; i++) {
        const double *ai = A + (size_t)i * dp;
        for (int k = 0; k < i; k++) Z[(size_t)i * dr + k] = ai[k];
        for (int k = i + 1; k < n; k++) Z[(size_t)i * dr + k] = 0;
        for (int j = 0; j < nf; j++) Z[(size_t)i * dr + n + j] = X[(size_t)i * d + dp + j];
    }
    if ((st = newton_fit(Z, y, n, dr, n, C, max_iter, tol, wr, &m->b, &m->iters, err))) goto done;
    /* w_pen = Q [g; 0] = H_0 H_1 ... H_{n-1} [g; 0] */
    memset(v, 0, (size_t)dp * sizeof *v);
    memcpy(v, wr, (size_t)n * sizeof *v);
    for (int k = n - 1; k >= 0; k--) {
        if (beta[k] == 0) continue;
        const double *ak = A + (size_t)k * dp;
        double s = 0;
        for (int j = k; j < dp; j++) s += ak[j] * v[j];
        s *= beta[k];
        for (int j = k; j < dp; j++) v[j] -= s * ak[j];
    }
    memcpy(m->w, v, (size_t)dp * sizeof *v);
    memcpy(m->w + dp, wr + n, (size_t)nf * sizeof *v);
done:
    free(A); free(beta); free(Z); free(wr); free(v);
    return st;
}

dx_status dx_logreg_fit(dx_logreg *m, const double *X, const int *y, int n, int d, int n_free, double C,
                        int max_iter, double tol, dx_err *err) {
    memset(m, 0, sizeof *m);
    if (n <= 0 || d <= 0 || !(C > 0) || n_free < 0 || n_free > d)
        return dx_fail(err, DX_EINVAL, "logreg: n=%d d=%d n_free=%d C=%g", n, d, n_free, C);
    const int dp = d - n_free; /* w[0..dp) penalised */
    m->d = d;
    m->w = calloc((size_t)d, sizeof *m->w);
    if (!m->w) return dx_fail(err, DX_ENOMEM, "logreg d=%d", d);
    dx_status st = dp > n ? reduced_fit(X, y, n, d, dp, C, max_iter, tol, m, err)
                          : newton_fit(X, y, n, d, dp, C, max_iter, tol, m->w, &m->b, &m->iters, err);
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
