/* peer_io.h - the hidden `dinox eval --selftest IN --out RESULTS.json` tool:
 * runs the evaluation statistics of this directory on inputs written by an
 * independent peer (tests/ref/eval_peer.py: sklearn/numpy/torch), so the
 * peer can compare. Every input is an optional float32 .npy in IN:
 *   auc_s, auc_y            -> "auc"
 *   bs_s, bs_y, bs_g        -> "boot": {lo, hi, se} (2000 replicates, seed 3)
 *   lr_X, lr_y, lr_C        -> "logreg_coef", "logreg_intercept"
 *   knn_X, knn_y, knn_Q, knn_k -> "knn_pred"
 *   seg_a, seg_b [m, h, w]  -> "dice", "iou" (per mask)
 *   er_X [n, d]             -> "erank_host", "erank_backend"
 *   cos_X [m, n, d]         -> "cosine" (per m)
 *   eig_A [d, d]            -> "eigvals" (descending)
 *   bil_in [h, w], bil_size [2] -> "bilinear" (row-major)
 *   pr_X, pr_y, pr_split, pr_group -> "probe": {C, val_auc, test_auc} */
#ifndef DX_EVAL_PEER_IO_H
#define DX_EVAL_PEER_IO_H

#include "core/dx_error.h"

dx_status dx_eval_peer_compute(const char *in_dir, const char *out_json, dx_err *err);

#endif /* DX_EVAL_PEER_IO_H */
