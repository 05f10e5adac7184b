/* probe.c - C selection on validation AUC, test AUC + bootstrap (probe.h). */
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
