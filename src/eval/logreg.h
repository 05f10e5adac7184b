/* logreg.h - L2-regularised binary logistic regression (Newton / IRLS with a
 * Cholesky solve), the probe of the frozen-feature evaluation.
 *
 * Objective (sklearn LogisticRegression's, intercept not penalised):
 *   min_{w,b} 0.5 |w_pen|^2 + C sum_i log(1 + exp(-s_i (x_i.w + b))),  s_i = +-1,
 * where w_pen is w without its last n_free entries: those columns are, like
 * the intercept, not penalised (glmnet's penalty.factor 0), so that a known
 * covariate (the nodule diameter) keeps its full weight however strongly the
 * features beside it are regularised.
 * Newton steps with a backtracking line search on that objective until the
 * step is below tol. With more penalised columns than rows the same problem is
 * solved exactly in the span of the rows (a Householder QR of the penalised
 * block), so a Newton step costs O(n^3), not O(d^3). Also the feature
 * standardiser (fit on train rows only). */
#ifndef DX_EVAL_LOGREG_H
#define DX_EVAL_LOGREG_H

#include "core/dx_error.h"

typedef struct dx_logreg {
    int d;
    double *w; /* [d] */
    double b;
    int iters;
} dx_logreg;

/* X [n, d] row-major (double), y in {0,1}; 0 <= n_free <= d. */
dx_status dx_logreg_fit(dx_logreg *m, const double *X, const int *y, int n, int d, int n_free, double C,
                        int max_iter, double tol, dx_err *err);
void dx_logreg_free(dx_logreg *m);
/* Decision values x.w + b for n rows. */
void dx_logreg_decision(const dx_logreg *m, const double *X, int n, double *out);

/* Column mean / std (population, std 0 -> 1) of the first n rows, applied
 * in place to rows 0..n_all-1: standardise with train statistics. */
dx_status dx_standardize(double *X, int n_fit, int n_all, int d, dx_err *err);

#endif /* DX_EVAL_LOGREG_H */
