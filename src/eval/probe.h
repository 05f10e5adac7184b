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
} dx_probe_result;

/* X [n, d] (copied, not modified), y in {0,1}, split[i] = DX_SPLIT_*, group[i] =
 * patient id. Rows with y < 0 are ignored. */
dx_status dx_probe_run(const double *X, const int *y, const int *split, const int *group, int n, int d,
                       const double *Cgrid, int nC, int n_boot, uint64_t seed, dx_probe_result *r,
                       dx_err *err);
/* The same, and test_score[i] (n entries, may be NULL) = the probe's decision
 * value for every labelled test row i, NAN elsewhere: the per-item scores a
 * paired comparison of two probes on the same test items needs. */
dx_status dx_probe_run_scored(const double *X, const int *y, const int *split, const int *group, int n, int d,
                              const double *Cgrid, int nC, int n_boot, uint64_t seed, dx_probe_result *r,
                              double *test_score, dx_err *err);

#endif /* DX_EVAL_PROBE_H */
