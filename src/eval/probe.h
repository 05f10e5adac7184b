/* probe.h - the linear probe protocol on a feature matrix with a
 * patient-level split: standardise with train statistics, fit L2 logistic
 * regression for each C of a grid on train, pick C by validation AUC (the
 * first best; C = 1 if the validation split lacks a class), report the test
 * AUC with a patient-clustered bootstrap CI. */
#ifndef DX_EVAL_PROBE_H
#define DX_EVAL_PROBE_H

#include <stdint.h>

#include "core/dx_error.h"
#include "eval/metrics.h"

typedef struct dx_probe_result {
    int n_train, n_val, n_test, n_test_pos;
    double C, val_auc, test_auc;
    int selected_on_val; /* 0: default C (validation had one class) */
    dx_boot_ci ci;       /* ci.n_boot = 0 if no CI (test has one class) */
    int folds;           /* 0: one split; K: K-fold cross-validation (dx_probe_run_cv) */
} dx_probe_result;

/* X [n, d] (copied, not modified), y in {0,1}, split[i] = DX_SPLIT_*, group[i] =
 * patient id. Rows with y < 0 are ignored. */
dx_status dx_probe_run(const double *X, const int *y, const int *split, const int *group, int n, int d,
                       const double *Cgrid, int nC, int n_boot, uint64_t seed, dx_probe_result *r,
                       dx_err *err);
/* The same, and test_score[i] (n entries, may be NULL) = the probe's decision
 * value for every labelled test row i, NAN elsewhere: the per-item scores a
 * paired comparison of two probes on the same test items needs. The last
 * n_free columns of X are not penalised (dx_logreg_fit): a known covariate
 * beside the features, so that the probe tests what the features add to it. */
dx_status dx_probe_run_scored(const double *X, const int *y, const int *split, const int *group, int n, int d,
                              int n_free, const double *Cgrid, int nC, int n_boot, uint64_t seed, dx_probe_result *r,
                              double *test_score, dx_err *err);


/* K-fold cross-validated probe over patients, for evaluation sets too small for
 * one held-out split to give a usable CI. fold[i] in [0, K) per row, constant
 * per patient (dx_fold_patients). For each fold f, fold f is the test set
 * and C is chosen by inner cross-validation on the other K-1 folds (each in
 * turn scored by a model fitted on the K-2 left; the best mean AUC wins), then
 * a model at that C fitted on every fold but f scores fold f; no label of fold f takes part in
 * scoring fold f. Every labelled row so gets one out-of-fold score (oof_score,
 * n entries, may be NULL; NAN for unlabelled rows): its decision value as a
 * z-score against the decision values of its model's own training rows, so
 * that the K models' scores are on one scale and can be pooled. test_auc is
 * the AUC of the pooled scores, its CI a bootstrap over patients; val_auc the
 * mean over folds of the chosen C's inner-CV AUC, C the value most folds
 * chose; n_train / n_val per-fold means, n_test all labelled rows scored. */
dx_status dx_probe_run_cv(const double *X, const int *y, const int *fold, int K, const int *group, int n, int d,
                          int n_free, const double *Cgrid, int nC, int n_boot, uint64_t seed, dx_probe_result *r,
                          double *oof_score, dx_err *err);
/* The same with the feature set as one more hyperparameter: each fold chooses
 * the (set t, C) pair with the best inner-CV AUC among nsets matrices Xs[t]
 * [n, ds[t]]; *set_mode (may be NULL) = the set most folds chose. */
dx_status dx_probe_run_cv_sets(const double *const *Xs, const int *ds, int nsets, int n_free, const int *y,
                               const int *fold, int K, const int *group, int n, const double *Cgrid, int nC, int n_boot,
                               uint64_t seed, dx_probe_result *r, double *oof_score, int *set_mode, dx_err *err);
#endif /* DX_EVAL_PROBE_H */
