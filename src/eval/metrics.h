/* metrics.h - evaluation statistics on host arrays: ROC AUC, patient-clustered
 * bootstrap CI, Dice/IoU, k-NN (cosine), mean pairwise patch cosine and
 * effective rank of a feature matrix.
 *
 * Definitions (docs/eval.md; the peers in tests/ref/eval_peer.py use sklearn
 * and numpy on the same inputs):
 *  - AUC: Mann-Whitney U / (n_pos n_neg) with average ranks for ties (=
 *    sklearn.metrics.roc_auc_score); NAN when a class is empty.
 *  - bootstrap: resample whole groups (patients) with replacement, AUC of the
 *    pooled items; replicates with one class only are redrawn; percentile CI.
 *  - effective rank (RankMe): sigma_k = singular values of the column-centred
 *    X [n, d] (= sqrt of the eigenvalues of X_c^T X_c), p = sigma /
 *    sum sigma, erank = exp(-sum p log p). */
#ifndef DX_EVAL_METRICS_H
#define DX_EVAL_METRICS_H

#include <stdint.h>

#include "core/dx_error.h"

double dx_auc(const double *score, const int *y, int n);

typedef struct dx_boot_ci {
    double lo, hi, se; /* percentile interval and bootstrap standard error */
    int n_boot, n_redrawn;
} dx_boot_ci;

/* group[i] = cluster id (0..n_groups-1) of item i. Streams: (seed, DX_RNG_EVAL, 100, replicate). */
dx_status dx_auc_bootstrap(const double *score, const int *y, const int *group, int n, int n_boot,
                           double level, uint64_t seed, dx_boot_ci *ci, dx_err *err);

/* A paired comparison on the same items: diff = stat(a) - stat(b) on all
 * items, its clustered-bootstrap percentile CI (the same resampled groups for
 * both), and p_le0 = the fraction of replicates <= 0 (one-sided). */
typedef struct dx_paired_diff {
    double diff, p_le0;
    dx_boot_ci ci;
} dx_paired_diff;
/* AUC(sa) - AUC(sb) over the same labelled items y, resampling groups (patients). */
dx_status dx_auc_diff_bootstrap(const double *sa, const double *sb, const int *y, const int *group, int n,
                                int n_boot, double level, uint64_t seed, dx_paired_diff *out, dx_err *err);
/* mean(a - b) (b NULL: mean(a)) with the same clustered bootstrap. */
dx_status dx_mean_bootstrap(const double *a, const double *b, const int *group, int n, int n_boot, double level,
                            uint64_t seed, dx_paired_diff *out, dx_err *err);

/* Binary masks (non-zero = foreground). Both empty -> 1. */
double dx_dice(const uint8_t *a, const uint8_t *b, int64_t n);
double dx_iou(const uint8_t *a, const uint8_t *b, int64_t n);

/* Cosine k-NN: pred[j] for each query row j of Q [nq, d] from train rows X [n, d]
 * with labels y in {0,1}: the majority of the k most similar rows (ties in the
 * vote -> 0, as sklearn's mode picks the smaller label). */
dx_status dx_knn_cosine(const float *X, const int *y, int n, const float *Q, int nq, int d, int k,
                        int *pred, dx_err *err);

/* Mean over i != j of cos(x_i, x_j) for the rows of X [n, d] (n >= 2). */
double dx_mean_pairwise_cosine(const float *X, int n, int d);

/* Eigenvalues of the symmetric A [d, d] (destroyed) into ev[d], descending:
 * Householder tridiagonalisation, then implicit QL (O(d^3) once, not per sweep
 * as Jacobi - d = 1024 takes seconds). */
dx_status dx_sym_eigvals(double *A, int d, double *ev, dx_err *err);

/* Effective rank from the eigenvalues of the scatter matrix C = X_c^T X_c [d, d]
 * (C is destroyed). */
dx_status dx_effective_rank_from_scatter(double *C, int d, double *erank, dx_err *err);
/* Convenience for small inputs: builds the scatter matrix on host. */
dx_status dx_effective_rank(const float *X, int n, int d, double *erank, dx_err *err);

#endif /* DX_EVAL_METRICS_H */
