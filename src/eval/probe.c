/* probe.c - C selection on validation AUC, test AUC + bootstrap; K-fold cross-validation (probe.h). */
#include "eval/probe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dx_log.h"
#include "eval/logreg.h"
#include "eval/split.h"

/* Fit at C on the rows with role[i] == 1 (standardised with their statistics)
 * and write the decision value of every row with role[i] == 2 into out[i];
 * train_z: as a z-score against the decision values of the model's own training
 * rows, so that the scores of K models can be pooled (a strongly regularised
 * model's decision values are its intercept plus a tiny spread, and the K
 * intercepts differ by more than that spread). Uses no label of a scored row.
 * Returns DX_OK with *fitted = 0 when the training rows have one class. */
static dx_status fit_and_score(const double *X, const int *y, const signed char *role, int n, int d, int n_free,
                               double C, int train_z, double *out, int *fitted, dx_err *err) {
    int ntr = 0, nsc = 0, pos = 0;
    for (int i = 0; i < n; i++) {
        if (role[i] == 1) { ntr++; pos += y[i]; }
        else if (role[i] == 2) nsc++;
    }
    *fitted = 0;
    if (!ntr || pos == 0 || pos == ntr) return DX_OK;
    const int m = ntr + nsc;
    double *Z = malloc((size_t)m * d * sizeof *Z), *sc = malloc((size_t)m * sizeof *sc);
    int *yy = malloc((size_t)m * sizeof *yy);
    dx_logreg lr = {0};
    dx_status st = DX_OK;
    if (!Z || !sc || !yy) { st = dx_fail(err, DX_ENOMEM, "probe"); goto done; }
    /* rows ordered train | scored, each in index order */
    int k = 0;
    for (int want = 1; want <= 2; want++)
        for (int i = 0; i < n; i++)
            if (role[i] == want) {
                memcpy(Z + (size_t)k * d, X + (size_t)i * d, (size_t)d * sizeof *Z);
                yy[k++] = y[i];
            }
    if ((st = dx_standardize(Z, ntr, m, d, err))) goto done;
    if ((st = dx_logreg_fit(&lr, Z, yy, ntr, d, n_free, C, 100, 1e-9, err))) goto done;
    dx_logreg_decision(&lr, Z, m, sc);
    double mu = 0, sd = 1;
    if (train_z) {
        double s1 = 0, s2 = 0;
        for (int i = 0; i < ntr; i++) { s1 += sc[i]; s2 += sc[i] * sc[i]; }
        mu = s1 / ntr;
        const double var = s2 / ntr - mu * mu;
        sd = var > 0 ? sqrt(var) : 1;
    }
    for (int i = 0, j = ntr; i < n; i++)
        if (role[i] == 2) out[i] = (sc[j++] - mu) / sd;
    *fitted = 1;
done:
    dx_logreg_free(&lr);
    free(Z); free(sc); free(yy);
    return st;
}

/* AUC and (n_boot >= 2) patient bootstrap CI of the rows with role[i] == 2 and a finite score */
static dx_status score_auc(const double *score, const int *y, const int *group, const signed char *role, int n,
                           int n_boot, uint64_t seed, double *auc, int *n_pos, int *n_rows, dx_boot_ci *ci,
                           dx_err *err) {
    double *vs = malloc((size_t)(n ? n : 1) * sizeof *vs);
    int *yy = malloc((size_t)(n ? n : 1) * sizeof *yy), *gg = malloc((size_t)(n ? n : 1) * sizeof *gg);
    dx_status st = DX_OK;
    *auc = NAN;
    if (!vs || !yy || !gg) { st = dx_fail(err, DX_ENOMEM, "probe"); goto done; }
    int m = 0, pos = 0;
    for (int i = 0; i < n; i++)
        if (role[i] == 2 && isfinite(score[i])) { vs[m] = score[i]; yy[m] = y[i]; gg[m++] = group[i]; pos += y[i]; }
    if (n_pos) *n_pos = pos;
    if (n_rows) *n_rows = m;
    if (m > 0) *auc = dx_auc(vs, yy, m);
    if (ci && m > 0 && !isnan(*auc) && n_boot >= 2) st = dx_auc_bootstrap(vs, yy, gg, m, n_boot, 0.95, seed, ci, err);
done:
    free(vs); free(yy); free(gg);
    return st;
}

dx_status dx_probe_run(const double *X, const int *y, const int *split, const int *group, int n, int d,
                       const double *Cgrid, int nC, int n_boot, uint64_t seed, dx_probe_result *r,
                       dx_err *err) {
    return dx_probe_run_scored(X, y, split, group, n, d, 0, Cgrid, nC, n_boot, seed, r, NULL, err);
}

dx_status dx_probe_run_scored(const double *X, const int *y, const int *split, const int *group, int n, int d,
                              int n_free, const double *Cgrid, int nC, int n_boot, uint64_t seed, dx_probe_result *r,
                              double *test_score, dx_err *err) {
    memset(r, 0, sizeof *r);
    if (test_score)
        for (int i = 0; i < n; i++) test_score[i] = NAN;
    r->val_auc = r->test_auc = r->ci.lo = r->ci.hi = r->ci.se = NAN;
    int cnt[3] = {0, 0, 0};
    for (int i = 0; i < n; i++)
        if (y[i] >= 0) cnt[split[i]]++;
    r->n_train = cnt[0]; r->n_val = cnt[1]; r->n_test = cnt[2];
    if (!cnt[0]) { DX_WARN("probe: no labelled training rows; no AUC"); return DX_OK; }
    signed char *role = malloc((size_t)(n ? n : 1));
    double *sc = malloc((size_t)(n ? n : 1) * sizeof *sc);
    dx_status st = DX_OK;
    if (!role || !sc) { st = dx_fail(err, DX_ENOMEM, "probe"); goto done; }
    for (int i = 0; i < n; i++) sc[i] = NAN;
    double best = -1, bestC = 1;
    int fitted = 1;
    for (int c = 0; c < nC && cnt[1] > 0; c++) {
        for (int i = 0; i < n; i++) role[i] = y[i] < 0 ? 0 : split[i] == DX_SPLIT_TRAIN ? 1 : split[i] == DX_SPLIT_VAL ? 2 : 0;
        if ((st = fit_and_score(X, y, role, n, d, n_free, Cgrid[c], 0, sc, &fitted, err))) goto done;
        if (!fitted) break;
        double a;
        if ((st = score_auc(sc, y, group, role, n, 0, seed, &a, NULL, NULL, NULL, err))) goto done;
        if (isnan(a)) break; /* validation has one class */
        if (a > best) { best = a; bestC = Cgrid[c]; }
    }
    if (!fitted) { /* nothing to fit: report NAN rather than fail the whole evaluation */
        DX_WARN("probe: the training split has one class only (%d rows); no AUC", cnt[0]);
        goto done;
    }
    r->selected_on_val = best >= 0;
    r->C = bestC;
    r->val_auc = best >= 0 ? best : NAN;
    for (int i = 0; i < n; i++) role[i] = y[i] < 0 ? 0 : split[i] == DX_SPLIT_TRAIN ? 1 : split[i] == DX_SPLIT_TEST ? 2 : 0;
    if ((st = fit_and_score(X, y, role, n, d, n_free, bestC, 0, sc, &fitted, err))) goto done;
    if (!fitted) {
        DX_WARN("probe: the training split has one class only (%d rows); no AUC", cnt[0]);
        goto done;
    }
    if (cnt[2] > 0) {
        if (test_score)
            for (int i = 0; i < n; i++)
                if (role[i] == 2) test_score[i] = sc[i];
        st = score_auc(sc, y, group, role, n, n_boot, seed, &r->test_auc, &r->n_test_pos, NULL, &r->ci, err);
    }
done:
    free(role); free(sc);
    return st;
}

dx_status dx_probe_run_cv(const double *X, const int *y, const int *fold, int K, const int *group, int n, int d,
                          int n_free, const double *Cgrid, int nC, int n_boot, uint64_t seed, dx_probe_result *r,
                          double *oof_score, dx_err *err) {
    return dx_probe_run_cv_sets(&X, &d, 1, n_free, y, fold, K, group, n, Cgrid, nC, n_boot, seed, r, oof_score, NULL,
                                err);
}

dx_status dx_probe_run_cv_sets(const double *const *Xs, const int *ds, int nsets, int n_free, const int *y,
                               const int *fold, int K, const int *group, int n, const double *Cgrid, int nC, int n_boot,
                               uint64_t seed, dx_probe_result *r, double *oof_score, int *set_mode, dx_err *err) {
    memset(r, 0, sizeof *r);
    r->folds = K;
    r->val_auc = r->test_auc = r->ci.lo = r->ci.hi = r->ci.se = NAN;
    if (oof_score)
        for (int i = 0; i < n; i++) oof_score[i] = NAN;
    if (K < 3) return dx_fail(err, DX_EINVAL, "probe: cross-validation needs at least 3 folds (train, val, test)");
    for (int i = 0; i < n; i++)
        if (y[i] >= 0 && (fold[i] < 0 || fold[i] >= K)) return dx_fail(err, DX_EINVAL, "probe: fold %d of row %d", fold[i], i);
    const int nh = nsets * nC; /* hyperparameters: (feature set, C) */
    signed char *role = malloc((size_t)(n ? n : 1));
    double *sc = malloc((size_t)(n ? n : 1) * sizeof *sc), *oof = malloc((size_t)(n ? n : 1) * sizeof *oof);
    int *chosen = calloc((size_t)(nh ? nh : 1), sizeof *chosen);
    dx_status st = DX_OK;
    if (!role || !sc || !oof || !chosen) { st = dx_fail(err, DX_ENOMEM, "probe (cv)"); goto done; }
    double ntr_sum = 0, nva_sum = 0;
    for (int f = 0; f < K; f++)
        for (int i = 0; i < n; i++)
            if (y[i] >= 0) { ntr_sum += fold[i] != f && fold[i] != (f + 1) % K; nva_sum += fold[i] == (f + 1) % K; }
    r->n_train = (int)(ntr_sum / K + 0.5);
    r->n_val = (int)(nva_sum / K + 0.5);
    for (int i = 0; i < n; i++) oof[i] = NAN;
    /* per fold f: (set, C) chosen by inner cross-validation on the other K-1 folds (each inner fold
     * v scored by models fitted on the K-2 folds left, the mean of those K-1 AUCs compared), then
     * refitted at that pair on every fold but f, which it scores: no label of fold f takes part in
     * anything that scores fold f. (One validation fold of ~n/K rows chose among the nsets * nC pairs
     * by noise: with 768 features of 200 nodules its pick overfitted and lost to the diameter alone.) */
    double val_sum = 0;
    int val_n = 0;
    for (int f = 0; f < K; f++) {
        double best = -1;
        int bh = -1;
        for (int h = 0; h < nh; h++) {
            double asum = 0;
            int an = 0;
            for (int v = 0; v < K; v++) {
                if (v == f) continue;
                for (int i = 0; i < n; i++) role[i] = y[i] < 0 || fold[i] == f ? 0 : fold[i] == v ? 2 : 1;
                int fitted;
                double a;
                if ((st = fit_and_score(Xs[h / nC], y, role, n, ds[h / nC], n_free, Cgrid[h % nC], 0, sc, &fitted, err)))
                    goto done;
                if (!fitted) continue;
                if ((st = score_auc(sc, y, group, role, n, 0, seed, &a, NULL, NULL, NULL, err))) goto done;
                if (isnan(a)) continue; /* this inner fold has one class */
                asum += a;
                an++;
            }
            if (an && asum / an > best) { best = asum / an; bh = h; }
        }
        if (bh >= 0) { val_sum += best; val_n++; chosen[bh]++; }
        const int t = bh >= 0 ? bh / nC : 0;
        const double C = bh >= 0 ? Cgrid[bh % nC] : 1;
        for (int i = 0; i < n; i++) role[i] = y[i] < 0 ? 0 : fold[i] == f ? 2 : 1;
        int fitted;
        if ((st = fit_and_score(Xs[t], y, role, n, ds[t], n_free, C, 1, oof, &fitted, err))) goto done;
        if (!fitted) DX_WARN("probe: the training folds of fold %d have one class; its rows get no score", f);
    }
    r->selected_on_val = val_n == K;
    r->val_auc = val_n ? val_sum / val_n : NAN;
    int mode = 0;
    for (int h = 1; h < nh; h++)
        if (chosen[h] > chosen[mode]) mode = h;
    r->C = val_n ? Cgrid[mode % nC] : 1; /* the (set, C) most folds chose */
    if (set_mode) *set_mode = mode / nC;
    if (oof_score) memcpy(oof_score, oof, (size_t)n * sizeof *oof);
    for (int i = 0; i < n; i++) role[i] = y[i] < 0 ? 0 : 2;
    st = score_auc(oof, y, group, role, n, n_boot, seed, &r->test_auc, &r->n_test_pos, &r->n_test, &r->ci, err);
done:
    free(role); free(sc); free(oof); free(chosen);
    return st;
}
