/* split.h - patient-level train/val/test split, stratified, deterministic.
 *
 * Patients (never nodules) are assigned: within each stratum (the caller's
 * per-patient class, e.g. 0 = no labelled nodule, 1 = benign only,
 * 2 = has a malignant one) the patients are permuted by the stream
 * (seed, DX_RNG_EVAL, 1, stratum) and cut into test, val, train with
 * n_test = round(f_test n), n_val = round(f_val n). */
#ifndef DX_EVAL_SPLIT_H
#define DX_EVAL_SPLIT_H

#include <stdint.h>

#include "core/dx_error.h"

enum { DX_SPLIT_TRAIN = 0, DX_SPLIT_VAL = 1, DX_SPLIT_TEST = 2 };

/* stratum[i] >= 0 for patient i; out[i] = DX_SPLIT_*. */
dx_status dx_split_patients(const int *stratum, int n, double f_val, double f_test, uint64_t seed,
                            int *out, dx_err *err);


/* K-fold assignment for cross-validation: within each stratum (the rarest,
 * highest-numbered first) the patients are permuted by the stream
 * (seed, DX_RNG_EVAL, 2, stratum) and dealt round-robin into folds 0..K-1,
 * continuing where the previous stratum stopped, so folds differ in size by at
 * most one patient and each holds its share of every stratum.
 * out[i] = fold of patient i; 2 <= K <= n. */
dx_status dx_fold_patients(const int *stratum, int n, int K, uint64_t seed, int *out, dx_err *err);

#endif /* DX_EVAL_SPLIT_H */
