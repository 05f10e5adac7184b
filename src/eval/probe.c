/* probe.c - C selection on validation AUC, test AUC + bootstrap; K-fold cross-validation (probe.h). */
#include "eval/probe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dx_log.h"
#include "eval/logreg.h"
#include "eval/split.h"

dx_status dx_probe_run(const double *X, const int *y, const int *split, const int *group, int n, int d,
                       const double *Cgrid, int nC, int n_boot, uint64_t seed, dx_probe_result *r,
                       dx_err *err) {
    return dx_probe_run_scored(X, y, split, group, n, d, Cgrid, nC, n_boot, seed, r, NULL, err);
}

dx_status dx_probe_run_scored(const double *X, const int *y, const int *split, const int *group, int n, int d,
                              const double *Cgrid, int nC, int n_boot, uint64_t seed, dx_probe_result *r,
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
    const int m = cnt[0] + cnt[1] + cnt[2];
    double *Z = malloc((size_t)m * d * sizeof *Z), *sc = malloc((size_t)m * sizeof *sc);
    int *yy = malloc((size_t)m * sizeof *yy), *gg = malloc((size_t)m * sizeof *gg);
    dx_logreg lr = {0};
    dx_status st = DX_OK;
    if (!Z || !sc || !yy || !gg) { st = dx_fail(err, DX_ENOMEM, "probe"); goto done; }
    /* rows ordered train | val | test */
    int k = 0;
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < n; i++)
            if (y[i] >= 0 && split[i] == s) {
                memcpy(Z + (size_t)k * d, X + (size_t)i * d, (size_t)d * sizeof *Z);
                yy[k] = y[i];
                gg[k++] = group[i];
            }
    const int ntr = cnt[0], nva = cnt[1], nte = cnt[2];
    if ((st = dx_standardize(Z, ntr, m, d, err))) goto done;
    int pos = 0;
    for (int i = 0; i < ntr; i++) pos += yy[i];
    if (pos == 0 || pos == ntr) { /* nothing to fit: report NAN rather than fail the whole evaluation */
        DX_WARN("probe: the training split has one class only (%d rows); no AUC", ntr);
        goto done;
    }
    double best = -1, bestC = 1;
    for (int c = 0; c < nC && nva > 0; c++) {
        if ((st = dx_logreg_fit(&lr, Z, yy, ntr, d, Cgrid[c], 100, 1e-9, err))) goto done;
        dx_logreg_decision(&lr, Z + (size_t)ntr * d, nva, sc);
        double a = dx_auc(sc, yy + ntr, nva);
        dx_logreg_free(&lr);
        if (isnan(a)) break; /* validation has one class */
        if (a > best) { best = a; bestC = Cgrid[c]; }
    }
    r->selected_on_val = best >= 0;
    r->C = bestC;
    r->val_auc = best >= 0 ? best : NAN;
    if ((st = dx_logreg_fit(&lr, Z, yy, ntr, d, bestC, 100, 1e-9, err))) goto done;
    if (nte > 0) {
        dx_logreg_decision(&lr, Z + (size_t)(ntr + nva) * d, nte, sc);
        for (int i = 0; i < nte; i++) r->n_test_pos += yy[ntr + nva + i];
        if (test_score) /* back to the caller's row order: test rows were appended in index order */
            for (int i = 0, k = 0; i < n; i++)
                if (y[i] >= 0 && split[i] == DX_SPLIT_TEST) test_score[i] = sc[k++];
        r->test_auc = dx_auc(sc, yy + ntr + nva, nte);
        if (!isnan(r->test_auc) && n_boot >= 2)
            st = dx_auc_bootstrap(sc, yy + ntr + nva, gg + ntr + nva, nte, n_boot, 0.95, seed, &r->ci, err);
    }
done:
    dx_logreg_free(&lr);
    free(Z); free(sc); free(yy); free(gg);
    return st;
}

/* Fit at C on the rows with role[i] == 1 (standardised with their statistics)
 * and write the decision value of every row with role[i] == 2 into out[i];
 * train_z: as a z-score against the decision values of the model's own training
 * rows, so that the scores of K models can be pooled (a strongly regularised
 * model's decision values are its intercept plus a tiny spread, and the K
 * intercepts differ by more than that spread). Uses no label of a scored row.
 * Returns DX_OK with *fitted = 0 when the training rows have one class. */
static dx_status fit_and_score(const double *X, const int *y, const signed char *role, int n, int d, double C,
                               int train_z, double *out, int *fitted, dx_err *err) {
    int ntr = 0, nsc = 0, pos = 0;
    for (int i = 0; i < n; i++) {
        if (role[i] == 1) { ntr++; pos += y[i]; }
        else if (role[i] == 2) nsc++;
    }
    *fitted = 0;
    if (!ntr || pos == 0 || pos == ntr) return DX_OK;
    const int m = ntr + nsc;
    double *Z = malloc((size_t)m * d * sizeof *Z), *sc = malloc((size_t)(nsc ? nsc : 1) * sizeof *sc);
    int *yy = malloc((size_t)m * sizeof *yy);
    dx_logreg lr = {0};
    dx_status st = DX_OK;
    if (!Z || !sc || !yy) { st = dx_fail(err, DX_ENOMEM, "probe (cv)"); goto done; }
    int k = 0;
    for (int want = 1; want <= 2; want++)
        for (int i = 0; i < n; i++)
            if (role[i] == want) {
                memcpy(Z + (size_t)k * d, X + (size_t)i * d, (size_t)d * sizeof *Z);
                yy[k++] = y[i];
            }
    if ((st = dx_standardize(Z, ntr, m, d, err))) goto done;
    if ((st = dx_logreg_fit(&lr, Z, yy, ntr, d, C, 100, 1e-9, err))) goto done;
    dx_logreg_decision(&lr, Z + (size_t)ntr * d, nsc, sc);
    double mu = 0, sd = 1;
    if (train_z) {
        double s1 = 0, s2 = 0;
        for (int i = 0; i < ntr; i++) {
            double v = lr.b;
            for (int j = 0; j < d; j++) v += lr.w[j] * Z[(size_t)i * d + j];
            s1 += v;
            s2 += v * v;
        }
        mu = s1 / ntr;
        const double var = s2 / ntr - mu * mu;
        sd = var > 0 ? sqrt(var) : 1;
    }
    for (int i = 0, j = 0; i < n; i++)
        if (role[i] == 2) out[i] = (sc[j++] - mu) / sd;
    *fitted = 1;
done:
    dx_logreg_free(&lr);
    free(Z); free(sc); free(yy);
    return st;
}

dx_status dx_probe_run_cv(const double *X, const int *y, const int *fold, int K, const int *group, int n, int d,
                          const double *Cgrid, int nC, int n_boot, uint64_t seed, dx_probe_result *r,
                          double *oof_score, dx_err *err) {
    return dx_probe_run_cv_sets(&X, &d, 1, y, fold, K, group, n, Cgrid, nC, n_boot, seed, r, oof_score, NULL, err);
}

dx_status dx_probe_run_cv_sets(const double *const *Xs, const int *ds, int nsets, const int *y, const int *fold, int K,
                               const int *group, int n, const double *Cgrid, int nC, int n_boot, uint64_t seed,
                               dx_probe_result *r, double *oof_score, int *set_mode, dx_err *err) {
    memset(r, 0, sizeof *r);
    r->folds = K;
    r->val_auc = r->test_auc = r->ci.lo = r->ci.hi = r->ci.se = NAN;
    if (oof_score)
        for (int i = 0; i < n; i++) oof_score[i] = NAN;
    if (K < 3) return dx_fail(err, DX_EINVAL, "probe: cross-validation needs at least 3 folds (train, val, test)");
    for (int i = 0; i < n; i++)
        if (y[i] >= 0 && (fold[i] < 0 || fold[i] >= K)) return dx_fail(err, DX_EINVAL, "probe: fold %d of row %d", fold[i], i);
    signed char *role = malloc((size_t)(n ? n : 1));
    double *sc = malloc((size_t)(n ? n : 1) * sizeof *sc), *vs = malloc((size_t)(n ? n : 1) * sizeof *vs);
    int *yy = malloc((size_t)(n ? n : 1) * sizeof *yy), *gg = malloc((size_t)(n ? n : 1) * sizeof *gg);
    dx_status st = DX_OK;
    if (!role || !sc || !vs || !yy || !gg) { st = dx_fail(err, DX_ENOMEM, "probe (cv)"); goto done; }
    double ntr_sum = 0, nva_sum = 0;
    for (int f = 0; f < K; f++)
        for (int i = 0; i < n; i++)
            if (y[i] >= 0) { ntr_sum += fold[i] != f && fold[i] != (f + 1) % K; nva_sum += fold[i] == (f + 1) % K; }
    r->n_train = (int)(ntr_sum / K + 0.5);
    r->n_val = (int)(nva_sum / K + 0.5);
    /* per fold f: C chosen on its validation fold v = (f+1) mod K alone (models fitted on the
     * other K-2 folds), then refitted at that C on every fold but f, which it scores: no label of
     * fold f takes part in anything that scores fold f */
    double *oof = malloc((size_t)(n ? n : 1) * sizeof *oof);
    const int nh = nsets * nC; /* hyperparameters: (feature set, C) */
    int *cnt_c = calloc((size_t)(nh ? nh : 1), sizeof *cnt_c);
    if (!oof || !cnt_c) { free(oof); free(cnt_c); st = dx_fail(err, DX_ENOMEM, "probe (cv)"); goto done; }
    for (int i = 0; i < n; i++) oof[i] = NAN;
    double val_sum = 0;
    int val_n = 0;
    for (int f = 0; f < K && !st; f++) {
        const int v = (f + 1) % K;
        for (int i = 0; i < n; i++) role[i] = y[i] < 0 || fold[i] == f ? 0 : fold[i] == v ? 2 : 1;
        double best = -1;
        int bc = -1;
        for (int h = 0; h < nh; h++) {
            const int t = h / nC, c = h % nC;
            int fitted, m = 0;
            if ((st = fit_and_score(Xs[t], y, role, n, ds[t], Cgrid[c], 0, sc, &fitted, err))) break;
            if (!fitted) break;
            for (int i = 0; i < n; i++)
                if (role[i] == 2) { vs[m] = sc[i]; yy[m++] = y[i]; }
            const double a = dx_auc(vs, yy, m);
            if (isnan(a)) break; /* the validation fold has one class */
            if (a > best) { best = a; bc = h; }
        }
        if (st) break;
        if (bc >= 0) { val_sum += best; val_n++; cnt_c[bc]++; }
        const int t = bc >= 0 ? bc / nC : 0;
        const double C = bc >= 0 ? Cgrid[bc % nC] : 1;
        for (int i = 0; i < n; i++) role[i] = y[i] < 0 ? 0 : fold[i] == f ? 2 : 1;
        int fitted;
        if ((st = fit_and_score(Xs[t], y, role, n, ds[t], C, 1, oof, &fitted, err))) break;
        if (!fitted) DX_WARN("probe: the training folds of fold %d have one class; its rows get no score", f);
    }
    if (st) { free(oof); free(cnt_c); goto done; }
    r->selected_on_val = val_n == K;
    r->val_auc = val_n ? val_sum / val_n : NAN;
    int mode = 0;
    for (int h = 1; h < nh; h++)
        if (cnt_c[h] > cnt_c[mode]) mode = h;
    r->C = val_n ? Cgrid[mode % nC] : 1; /* the (set, C) most folds chose */
    if (set_mode) *set_mode = mode / nC;
    memcpy(sc, oof, (size_t)n * sizeof *sc);
    free(oof);
    free(cnt_c);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (y[i] >= 0 && isfinite(sc[i])) { vs[m] = sc[i]; yy[m] = y[i]; gg[m++] = group[i]; r->n_test_pos += y[i]; }
    r->n_test = m;
    if (oof_score) memcpy(oof_score, sc, (size_t)n * sizeof *sc);
    if (m > 0) {
        r->test_auc = dx_auc(vs, yy, m);
        if (!isnan(r->test_auc) && n_boot >= 2) st = dx_auc_bootstrap(vs, yy, gg, m, n_boot, 0.95, seed, &r->ci, err);
    }
done:
    free(role); free(sc); free(vs); free(yy); free(gg);
    return st;
}
