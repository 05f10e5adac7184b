/* collapse.h - dense-collapse diagnostics of frozen patch features.
 *
 *  patch_cosine      mean over images of the mean pairwise cosine similarity
 *                    of that image's P patch features (1 = all patches alike)
 *  effective_rank    RankMe of all patch features pooled [n*P, D] (metrics.h);
 *                    the D x D scatter matrix is one backend GEMM
 *  separability_auc  nodule-vs-parenchyma patch separability: test AUC of an
 *                    L2 logistic probe (C = 1, standardised) on patch features;
 *                    a patch is "nodule" if >= 50% of its pixels are in the
 *                    consensus mask, "parenchyma" if none are, else unused;
 *                    trained on train-split images (at most 1500 patches,
 *                    drawn by (seed, DX_RNG_EVAL, 200, 0)), tested on test-split
 *                    images. NAN when a class is missing. */
#ifndef DX_EVAL_COLLAPSE_H
#define DX_EVAL_COLLAPSE_H

#include <stdint.h>

#include "backend/dx_backend.h"
#include "core/dx_error.h"
#include "eval/backbone.h"

typedef struct dx_collapse {
    double patch_cosine, effective_rank, separability_auc;
    int n_sep_train, n_sep_test;
} dx_collapse;

/* f: patch features of the context crops (cosine, rank); fs: patch features of
 * the nodule-scale crops with their masks [n, S, S] (separability); split[i] =
 * DX_SPLIT_* of image i in both. */
dx_status dx_collapse_diagnostics(dx_backend *be, const dx_features *f, const dx_features *fs,
                                  const uint8_t *masks, int S, const int *split, uint64_t seed,
                                  dx_collapse *out, dx_err *err);

/* Effective rank of X [n, d] (host) with the scatter matrix through the backend GEMM. */
dx_status dx_effective_rank_be(dx_backend *be, const float *X, int64_t n, int d, double *erank, dx_err *err);

#endif /* DX_EVAL_COLLAPSE_H */
