/* collapse.c - patch cosine, effective rank, patch separability (collapse.h). */
#include "eval/collapse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dx_rng.h"
#include "eval/logreg.h"
#include "eval/metrics.h"
#include "eval/split.h"

dx_status dx_effective_rank_be(dx_backend *be, const float *X, int64_t n, int d, double *erank, dx_err *err) {
    if (n < 2 || d <= 0) return dx_fail(err, DX_EINVAL, "effective rank: n=%lld d=%d", (long long)n, d);
    double *mu = calloc((size_t)d, sizeof *mu), *C = malloc((size_t)d * d * sizeof *C);
    float *xc = malloc((size_t)n * d * sizeof *xc), *ch = malloc((size_t)d * d * sizeof *ch);
    float *dx = be->ops->alloc(be, (size_t)n * d * sizeof(float)), *dc = be->ops->alloc(be, (size_t)d * d * sizeof(float));
    dx_status st = DX_OK;
    if (!mu || !C || !xc || !ch || !dx || !dc) { st = dx_fail(err, DX_ENOMEM, "effective rank [%lld, %d]", (long long)n, d); goto done; }
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < d; j++) mu[j] += X[(size_t)i * d + j];
    for (int j = 0; j < d; j++) mu[j] /= (double)n;
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < d; j++) xc[(size_t)i * d + j] = (float)(X[(size_t)i * d + j] - mu[j]);
    be->ops->upload(be, dx, xc, (size_t)n * d * sizeof(float));
    /* C[d, d] = Xc^T Xc: op(A) = Xc^T [d, n], B = Xc [n, d] */
    dx_gemm(be, 1, 0, d, d, (int)n, 1.0f, dx, d, dx, d, 0.0f, dc, d);
    be->ops->sync(be);
    be->ops->download(be, ch, dc, (size_t)d * d * sizeof(float));
    for (int a = 0; a < d; a++)
        for (int b = 0; b < d; b++) /* symmetrise away GEMM rounding asymmetry */
            C[(size_t)a * d + b] = 0.5 * ((double)ch[(size_t)a * d + b] + ch[(size_t)b * d + a]);
    st = dx_effective_rank_from_scatter(C, d, erank, err);
done:
    free(mu); free(C); free(xc); free(ch);
    if (dx) be->ops->free(be, dx);
    if (dc) be->ops->free(be, dc);
    return st;
}

dx_status dx_collapse_diagnostics(dx_backend *be, const dx_features *fc, const dx_features *f,
                                  const uint8_t *masks, int S, const int *split, uint64_t seed,
                                  dx_collapse *out, dx_err *err) {
    memset(out, 0, sizeof *out);
    if (!fc->patch || fc->n <= 0 || !f->patch || f->n != fc->n) return dx_fail(err, DX_EINVAL, "collapse: no patch features");
    double cs = 0;
    for (int i = 0; i < fc->n; i++) cs += dx_mean_pairwise_cosine(fc->patch + (size_t)i * fc->P * fc->D, fc->P, fc->D);
    out->patch_cosine = cs / fc->n;
    dx_status st = dx_effective_rank_be(be, fc->patch, (int64_t)fc->n * fc->P, fc->D, &out->effective_rank, err);
    if (st) return st;
    const int n = f->n, P = f->P, D = f->D, ps = S / f->Hp;

    /* patch labels from the mask crops */
    const int64_t np = (int64_t)n * P;
    int *lab = malloc((size_t)np * sizeof *lab), *tr = malloc((size_t)np * sizeof *tr),
        *te = malloc((size_t)np * sizeof *te), *perm = NULL;
    double *X = NULL, *sc = NULL;
    int *ytr = NULL, *yte = NULL;
    int ntr = 0, nte = 0;
    dx_logreg m = {0};
    if (!lab || !tr || !te) { st = dx_fail(err, DX_ENOMEM, "separability"); goto done; }
    for (int i = 0; i < n; i++)
        for (int p = 0; p < P; p++) {
            int py = p / f->Wp, px = p % f->Wp, cnt = 0;
            for (int y = py * ps; y < (py + 1) * ps; y++)
                for (int x = px * ps; x < (px + 1) * ps; x++) cnt += masks[((size_t)i * S + y) * S + x] != 0;
            int64_t k = (int64_t)i * P + p;
            lab[k] = 2 * cnt >= ps * ps ? 1 : cnt == 0 ? 0 : -1;
            if (lab[k] < 0) continue;
            if (split[i] == DX_SPLIT_TRAIN) tr[ntr++] = (int)k;
            else if (split[i] == DX_SPLIT_TEST) te[nte++] = (int)k;
        }
    /* subsample train patches: keep up to half the budget of positives, fill with negatives */
    const int budget = 1500;
    if (ntr > budget) {
        perm = malloc((size_t)ntr * sizeof *perm);
        if (!perm) { st = dx_fail(err, DX_ENOMEM, "separability"); goto done; }
        dx_rng r;
        dx_rng_init(&r, seed, DX_RNG_EVAL, 200, 0);
        dx_rng_permutation(&r, perm, ntr);
        int npos = 0, nneg = 0, k = 0;
        int *keep = malloc((size_t)budget * sizeof *keep);
        if (!keep) { st = dx_fail(err, DX_ENOMEM, "separability"); goto done; }
        int npos_all = 0;
        for (int t = 0; t < ntr; t++) npos_all += lab[tr[t]];
        int pos_cap = npos_all < budget / 2 ? npos_all : budget / 2;
        for (int t = 0; t < ntr && k < budget; t++) {
            int id = tr[perm[t]];
            if (lab[id] && npos < pos_cap) { keep[k++] = id; npos++; }
            else if (!lab[id] && nneg < budget - pos_cap) { keep[k++] = id; nneg++; }
        }
        memcpy(tr, keep, (size_t)k * sizeof *keep);
        free(keep);
        ntr = k;
    }
    out->n_sep_train = ntr;
    out->n_sep_test = nte;
    out->separability_auc = NAN;
    int pos_tr = 0, pos_te = 0;
    for (int t = 0; t < ntr; t++) pos_tr += lab[tr[t]];
    for (int t = 0; t < nte; t++) pos_te += lab[te[t]];
    if (!pos_tr || pos_tr == ntr || !pos_te || pos_te == nte) goto done; /* a class is missing */
    X = malloc((size_t)(ntr + nte) * D * sizeof *X);
    sc = malloc((size_t)nte * sizeof *sc);
    ytr = malloc((size_t)ntr * sizeof *ytr);
    yte = malloc((size_t)nte * sizeof *yte);
    if (!X || !sc || !ytr || !yte) { st = dx_fail(err, DX_ENOMEM, "separability"); goto done; }
    for (int t = 0; t < ntr + nte; t++) {
        int id = t < ntr ? tr[t] : te[t - ntr];
        for (int j = 0; j < D; j++) X[(size_t)t * D + j] = f->patch[(size_t)id * D + j];
        if (t < ntr) ytr[t] = lab[id]; else yte[t - ntr] = lab[id];
    }
    if ((st = dx_standardize(X, ntr, ntr + nte, D, err))) goto done;
    if ((st = dx_logreg_fit(&m, X, ytr, ntr, D, 0, 1.0, 50, 1e-8, err))) goto done;
    dx_logreg_decision(&m, X + (size_t)ntr * D, nte, sc);
    out->separability_auc = dx_auc(sc, yte, nte);
done:
    dx_logreg_free(&m);
    free(lab); free(tr); free(te); free(perm); free(X); free(sc); free(ytr); free(yte);
    return st;
}
