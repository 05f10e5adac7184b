/* split.c - stratified patient-level split (split.h). */
#include "eval/split.h"

#include <math.h>
#include <stdlib.h>

#include "core/dx_rng.h"

/* 1 + the largest stratum, or -1 if one is negative */
static int count_strata(const int *stratum, int n) {
    int ns = 0;
    for (int i = 0; i < n; i++) {
        if (stratum[i] < 0) return -1;
        if (stratum[i] + 1 > ns) ns = stratum[i] + 1;
    }
    return ns;
}

dx_status dx_split_patients(const int *stratum, int n, double f_val, double f_test, uint64_t seed,
                            int *out, dx_err *err) {
    if (n <= 0 || f_val < 0 || f_test < 0 || f_val + f_test >= 1)
        return dx_fail(err, DX_EINVAL, "split: n=%d val=%g test=%g", n, f_val, f_test);
    const int ns = count_strata(stratum, n);
    if (ns < 0) return dx_fail(err, DX_EINVAL, "split: negative stratum");
    int *members = malloc((size_t)n * sizeof *members), *perm = malloc((size_t)n * sizeof *perm);
    if (!members || !perm) { free(members); free(perm); return dx_fail(err, DX_ENOMEM, "split"); }
    for (int s = 0; s < ns; s++) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (stratum[i] == s) members[m++] = i; /* in patient order: the caller sorts by ID */
        if (!m) continue;
        dx_rng r;
        dx_rng_init(&r, seed, DX_RNG_EVAL, 1, (uint64_t)s);
        dx_rng_permutation(&r, perm, m);
        int nt = (int)floor(f_test * m + 0.5), nv = (int)floor(f_val * m + 0.5);
        if (nt + nv > m) nv = m - nt;
        for (int k = 0; k < m; k++)
            out[members[perm[k]]] = k < nt ? DX_SPLIT_TEST : k < nt + nv ? DX_SPLIT_VAL : DX_SPLIT_TRAIN;
    }
    free(members);
    free(perm);
    return DX_OK;
}

dx_status dx_fold_patients(const int *stratum, int n, int K, uint64_t seed, int *out, dx_err *err) {
    if (n <= 0 || K < 2 || K > n) return dx_fail(err, DX_EINVAL, "folds: n=%d K=%d (need 2 <= K <= patients)", n, K);
    const int ns = count_strata(stratum, n);
    if (ns < 0) return dx_fail(err, DX_EINVAL, "folds: negative stratum");
    int *members = malloc((size_t)n * sizeof *members), *perm = malloc((size_t)n * sizeof *perm);
    if (!members || !perm) { free(members); free(perm); return dx_fail(err, DX_ENOMEM, "folds"); }
    int dealt = 0;
    for (int s = ns - 1; s >= 0; s--) { /* the rarest stratum (malignant) first */
        int m = 0;
        for (int i = 0; i < n; i++)
            if (stratum[i] == s) members[m++] = i;
        if (!m) continue;
        dx_rng r;
        dx_rng_init(&r, seed, DX_RNG_EVAL, 2, (uint64_t)s);
        dx_rng_permutation(&r, perm, m);
        for (int k = 0; k < m; k++) out[members[perm[k]]] = (dealt + k) % K;
        dealt += m;
    }
    free(members);
    free(perm);
    return DX_OK;
}
