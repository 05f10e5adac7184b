/* metrics.c - AUC, clustered bootstrap, Dice/IoU, cosine k-NN, pairwise
 * cosine and effective rank (see metrics.h for the exact definitions). */
#include "eval/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dx_rng.h"

typedef struct { double s; int y; } scored;

static int cmp_scored(const void *a, const void *b) {
    double x = ((const scored *)a)->s, z = ((const scored *)b)->s;
    return x < z ? -1 : x > z;
}

/* Sum of the (average, 1-based) ranks of the positives; tied scores share
 * the mean of their ranks, which makes this sklearn's tie handling. */
static double auc_sorted(scored *v, int n) {
    qsort(v, n, sizeof *v, cmp_scored);
    double rank_pos = 0;
    long npos = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && v[j].s == v[i].s) j++;
        double r = 0.5 * (i + 1 + j); /* mean of ranks i+1..j */
        for (int k = i; k < j; k++)
            if (v[k].y) { rank_pos += r; npos++; }
        i = j;
    }
    long nneg = n - npos;
    if (npos == 0 || nneg == 0) return NAN;
    return (rank_pos - 0.5 * (double)npos * (npos + 1)) / ((double)npos * nneg);
}

double dx_auc(const double *score, const int *y, int n) {
    if (n <= 0) return NAN;
    scored *v = malloc((size_t)n * sizeof *v);
    if (!v) return NAN;
    for (int i = 0; i < n; i++) v[i] = (scored){score[i], y[i] != 0};
    double a = auc_sorted(v, n);
    free(v);
    return a;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, z = *(const double *)b;
    return x < z ? -1 : x > z;
}

/* Linear-interpolated quantile of sorted v (numpy's default 'linear'). */
static double quantile(const double *v, int n, double q) {
    double h = (n - 1) * q;
    int lo = (int)floor(h);
    if (lo >= n - 1) return v[n - 1];
    return v[lo] + (h - lo) * (v[lo + 1] - v[lo]);
}

/* The clustered bootstrap behind every CI here: resample whole groups with
 * replacement, evaluate stat on the pooled items (in draw order), redraw a
 * replicate whose stat is NaN (e.g. one class only), percentile interval.
 * Streams: (seed, DX_RNG_EVAL, 100, replicate * 1024 + attempt). Optionally
 * the fraction of replicates <= 0 (a one-sided bootstrap p-value of a
 * difference). */
typedef double (*boot_stat)(const void *ctx, const int *idx, int m, scored *scratch);

static dx_status cluster_bootstrap(const int *group, int n, int n_boot, double level, uint64_t seed, boot_stat stat,
                                   const void *ctx, dx_boot_ci *ci, double *frac_le0, dx_err *err) {
    if (n <= 0 || n_boot < 2 || !(level > 0 && level < 1))
        return dx_fail(err, DX_EINVAL, "bootstrap: n=%d n_boot=%d level=%g", n, n_boot, level);
    int ng = 0;
    for (int i = 0; i < n; i++) {
        if (group[i] < 0) return dx_fail(err, DX_EINVAL, "bootstrap: negative group id");
        if (group[i] + 1 > ng) ng = group[i] + 1;
    }
    /* items of each group, contiguous: start[g] .. start[g+1] */
    int *start = calloc((size_t)ng + 1, sizeof *start), *items = malloc((size_t)n * sizeof *items);
    int *fill = calloc((size_t)ng, sizeof *fill);
    double *reps = malloc((size_t)n_boot * sizeof *reps);
    int *idx = NULL;
    scored *v = NULL;
    size_t vcap = 0;
    dx_status st = DX_OK;
    if (!start || !items || !fill || !reps) { st = dx_fail(err, DX_ENOMEM, "bootstrap"); goto done; }
    for (int i = 0; i < n; i++) start[group[i] + 1]++;
    for (int g = 0; g < ng; g++) start[g + 1] += start[g];
    for (int i = 0; i < n; i++) items[start[group[i]] + fill[group[i]]++] = i;
    /* draw among the non-empty groups only (ids need not be contiguous) */
    int nne = 0;
    for (int g = 0; g < ng; g++)
        if (start[g + 1] > start[g]) fill[nne++] = g;
    int redrawn = 0;
    for (int b = 0; b < n_boot; b++) {
        for (int attempt = 0;; attempt++) {
            if (attempt > 1000) { st = dx_fail(err, DX_ENUMERIC, "bootstrap: replicates keep missing a class"); goto done; }
            dx_rng r;
            dx_rng_init(&r, seed, DX_RNG_EVAL, 100, (uint64_t)b * 1024 + attempt);
            size_t m = 0;
            for (int k = 0; k < nne; k++) {
                int g = fill[dx_rng_below(&r, (uint32_t)nne)];
                size_t need = m + (size_t)(start[g + 1] - start[g]);
                if (need > vcap) {
                    size_t nc = need * 2;
                    scored *nv = realloc(v, nc * sizeof *v);
                    int *ni = realloc(idx, nc * sizeof *ni);
                    if (nv) v = nv;
                    if (ni) idx = ni;
                    if (!nv || !ni) { st = dx_fail(err, DX_ENOMEM, "bootstrap"); goto done; }
                    vcap = nc;
                }
                for (int t = start[g]; t < start[g + 1]; t++) idx[m++] = items[t];
            }
            double a = stat(ctx, idx, (int)m, v);
            if (!isnan(a)) { reps[b] = a; break; }
            redrawn++;
        }
    }
    if (frac_le0) {
        int le = 0;
        for (int b = 0; b < n_boot; b++) le += reps[b] <= 0;
        *frac_le0 = (double)le / n_boot;
    }
    qsort(reps, n_boot, sizeof *reps, cmp_double);
    double mean = 0, ss = 0;
    for (int b = 0; b < n_boot; b++) mean += reps[b];
    mean /= n_boot;
    for (int b = 0; b < n_boot; b++) ss += (reps[b] - mean) * (reps[b] - mean);
    ci->lo = quantile(reps, n_boot, (1 - level) / 2);
    ci->hi = quantile(reps, n_boot, 1 - (1 - level) / 2);
    ci->se = sqrt(ss / (n_boot - 1));
    ci->n_boot = n_boot;
    ci->n_redrawn = redrawn;
done:
    free(start); free(items); free(fill); free(reps); free(v); free(idx);
    return st;
}

typedef struct { const double *a, *b; const int *y; } auc_ctx;

static double stat_auc(const void *c, const int *idx, int m, scored *v) {
    const auc_ctx *x = c;
    for (int i = 0; i < m; i++) v[i] = (scored){x->a[idx[i]], x->y[idx[i]] != 0};
    return auc_sorted(v, m);
}

static double stat_auc_diff(const void *c, const int *idx, int m, scored *v) {
    const auc_ctx *x = c;
    double ab[2];
    for (int k = 0; k < 2; k++) {
        const double *s = k ? x->b : x->a;
        for (int i = 0; i < m; i++) v[i] = (scored){s[idx[i]], x->y[idx[i]] != 0};
        ab[k] = auc_sorted(v, m);
    }
    return ab[0] - ab[1];
}

typedef struct { const double *a, *b; } mean_ctx;

static double stat_mean_diff(const void *c, const int *idx, int m, scored *v) {
    const mean_ctx *x = c;
    (void)v;
    double s = 0;
    for (int i = 0; i < m; i++) s += x->a[idx[i]] - (x->b ? x->b[idx[i]] : 0);
    return m ? s / m : NAN;
}

dx_status dx_auc_bootstrap(const double *score, const int *y, const int *group, int n, int n_boot,
                           double level, uint64_t seed, dx_boot_ci *ci, dx_err *err) {
    auc_ctx c = {score, NULL, y};
    return cluster_bootstrap(group, n, n_boot, level, seed, stat_auc, &c, ci, NULL, err);
}

dx_status dx_auc_diff_bootstrap(const double *sa, const double *sb, const int *y, const int *group, int n,
                                int n_boot, double level, uint64_t seed, dx_paired_diff *out, dx_err *err) {
    memset(out, 0, sizeof *out);
    out->diff = dx_auc(sa, y, n) - dx_auc(sb, y, n);
    auc_ctx c = {sa, sb, y};
    return cluster_bootstrap(group, n, n_boot, level, seed, stat_auc_diff, &c, &out->ci, &out->p_le0, err);
}

dx_status dx_mean_bootstrap(const double *a, const double *b, const int *group, int n, int n_boot, double level,
                            uint64_t seed, dx_paired_diff *out, dx_err *err) {
    memset(out, 0, sizeof *out);
    double s = 0;
    for (int i = 0; i < n; i++) s += a[i] - (b ? b[i] : 0);
    out->diff = n ? s / n : NAN;
    mean_ctx c = {a, b};
    return cluster_bootstrap(group, n, n_boot, level, seed, stat_mean_diff, &c, &out->ci, &out->p_le0, err);
}

double dx_dice(const uint8_t *a, const uint8_t *b, int64_t n) {
    int64_t inter = 0, sa = 0, sb = 0;
    for (int64_t i = 0; i < n; i++) {
        int x = a[i] != 0, z = b[i] != 0;
        inter += x & z; sa += x; sb += z;
    }
    return sa + sb == 0 ? 1.0 : 2.0 * inter / (double)(sa + sb);
}

double dx_iou(const uint8_t *a, const uint8_t *b, int64_t n) {
    int64_t inter = 0, uni = 0;
    for (int64_t i = 0; i < n; i++) {
        int x = a[i] != 0, z = b[i] != 0;
        inter += x & z; uni += x | z;
    }
    return uni == 0 ? 1.0 : inter / (double)uni;
}

static double *unit_rows(const float *X, int n, int d) {
    double *u = malloc((size_t)n * d * sizeof *u);
    if (!u) return NULL;
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)X[(size_t)i * d + j] * X[(size_t)i * d + j];
        s = s > 0 ? 1 / sqrt(s) : 0;
        for (int j = 0; j < d; j++) u[(size_t)i * d + j] = X[(size_t)i * d + j] * s;
    }
    return u;
}

typedef struct { double sim; int i; } nb;
static int cmp_nb(const void *a, const void *b) { /* descending similarity, then index */
    const nb *x = a, *z = b;
    if (x->sim != z->sim) return x->sim > z->sim ? -1 : 1;
    return x->i - z->i;
}

dx_status dx_knn_cosine(const float *X, const int *y, int n, const float *Q, int nq, int d, int k,
                        int *pred, dx_err *err) {
    if (n <= 0 || k <= 0 || d <= 0) return dx_fail(err, DX_EINVAL, "knn: n=%d k=%d d=%d", n, k, d);
    if (k > n) k = n;
    double *ux = unit_rows(X, n, d), *uq = unit_rows(Q, nq, d);
    nb *s = malloc((size_t)n * sizeof *s);
    if (!ux || !uq || !s) { free(ux); free(uq); free(s); return dx_fail(err, DX_ENOMEM, "knn"); }
    for (int j = 0; j < nq; j++) {
        for (int i = 0; i < n; i++) {
            double dot = 0;
            for (int t = 0; t < d; t++) dot += uq[(size_t)j * d + t] * ux[(size_t)i * d + t];
            s[i] = (nb){dot, i};
        }
        qsort(s, n, sizeof *s, cmp_nb);
        int pos = 0;
        for (int t = 0; t < k; t++) pos += y[s[t].i] != 0;
        pred[j] = 2 * pos > k;
    }
    free(ux); free(uq); free(s);
    return DX_OK;
}

double dx_mean_pairwise_cosine(const float *X, int n, int d) {
    if (n < 2) return NAN;
    /* sum_{i,j} u_i.u_j = |sum_i u_i|^2, so the off-diagonal mean needs no n^2 loop */
    double *u = unit_rows(X, n, d), *s = calloc((size_t)d, sizeof *s);
    if (!u || !s) { free(u); free(s); return NAN; }
    double diag = 0;
    for (int i = 0; i < n; i++) {
        double q = 0;
        for (int j = 0; j < d; j++) { s[j] += u[(size_t)i * d + j]; q += u[(size_t)i * d + j] * u[(size_t)i * d + j]; }
        diag += q; /* 1 per row, 0 for an all-zero row */
    }
    double tot = 0;
    for (int j = 0; j < d; j++) tot += s[j] * s[j];
    free(u); free(s);
    return (tot - diag) / ((double)n * (n - 1));
}

/* Householder reduction of the symmetric A [n, n] (destroyed) to tridiagonal
 * form: diag[n], off[n] with off[k] = entry (k, k+1), off[n-1] = 0. Step k
 * reflects rows/columns k+1.. with H = I - 2 v v^T (|v| = 1), applied as
 * A22 <- A22 - 2 v q^T - 2 q v^T, q = A22 v - (v^T A22 v) v. */
static void tridiagonalize(double *A, int n, double *diag, double *off, double *v, double *q) {
    for (int k = 0; k + 2 < n; k++) {
        const int m = n - k - 1; /* size of the trailing block */
        double *x = v;
        double norm = 0;
        for (int i = 0; i < m; i++) { x[i] = A[(size_t)(k + 1 + i) * n + k]; norm += x[i] * x[i]; }
        norm = sqrt(norm);
        diag[k] = A[(size_t)k * n + k];
        if (norm == 0) { off[k] = 0; continue; }
        double alpha = x[0] > 0 ? -norm : norm;
        off[k] = alpha;
        x[0] -= alpha;
        double vn = 0;
        for (int i = 0; i < m; i++) vn += x[i] * x[i];
        vn = sqrt(vn);
        if (vn == 0) continue; /* already in place */
        for (int i = 0; i < m; i++) v[i] = x[i] / vn;
        double K = 0;
        for (int i = 0; i < m; i++) {
            const double *row = A + (size_t)(k + 1 + i) * n + k + 1;
            double t = 0;
            for (int j = 0; j < m; j++) t += row[j] * v[j];
            q[i] = t;
            K += v[i] * t;
        }
        for (int i = 0; i < m; i++) q[i] -= K * v[i];
        for (int i = 0; i < m; i++) {
            double *row = A + (size_t)(k + 1 + i) * n + k + 1;
            const double vi = 2 * v[i], qi = 2 * q[i];
            for (int j = 0; j < m; j++) row[j] -= vi * q[j] + qi * v[j];
        }
    }
    if (n >= 2) {
        diag[n - 2] = A[(size_t)(n - 2) * n + n - 2];
        off[n - 2] = A[(size_t)(n - 1) * n + n - 2];
    }
    diag[n - 1] = A[(size_t)(n - 1) * n + n - 1];
    off[n - 1] = 0;
}

/* Eigenvalues of the symmetric tridiagonal (diag, off) by implicit QL with
 * Wilkinson-type shifts: each sweep chases a bulge from the bottom of the
 * unreduced block up to row l with Givens rotations. */
static int tridiag_ql(double *dg, double *e, int n) {
    for (int l = 0; l < n; l++) {
        int iter = 0, m;
        do {
            for (m = l; m < n - 1; m++) {
                double dd = fabs(dg[m]) + fabs(dg[m + 1]);
                if (fabs(e[m]) <= 1e-16 * dd) break;
            }
            if (m == l) break;
            if (iter++ == 100) return -1;
            double g = (dg[l + 1] - dg[l]) / (2 * e[l]);
            double r = hypot(g, 1.0);
            g = dg[m] - dg[l] + e[l] / (g + (g >= 0 ? r : -r));
            double s = 1, c = 1, p = 0;
            int i, deflated = 0;
            for (i = m - 1; i >= l; i--) {
                double f = s * e[i], b = c * e[i];
                r = hypot(f, g);
                e[i + 1] = r;
                if (r == 0) { /* underflow: split here and restart */
                    dg[i + 1] -= p;
                    e[m] = 0;
                    deflated = 1;
                    break;
                }
                s = f / r;
                c = g / r;
                g = dg[i + 1] - p;
                r = (dg[i] - g) * s + 2 * c * b;
                p = s * r;
                dg[i + 1] = g + p;
                g = c * r - b;
            }
            if (deflated) continue;
            dg[l] -= p;
            e[l] = g;
            e[m] = 0;
        } while (1);
    }
    return 0;
}

dx_status dx_sym_eigvals(double *A, int d, double *ev, dx_err *err) {
    if (d <= 0) return dx_fail(err, DX_EINVAL, "eigenvalues: d=%d", d);
    double *off = malloc((size_t)d * sizeof *off), *v = malloc((size_t)d * sizeof *v), *q = malloc((size_t)d * sizeof *q);
    if (!off || !v || !q) { free(off); free(v); free(q); return dx_fail(err, DX_ENOMEM, "eigenvalues d=%d", d); }
    tridiagonalize(A, d, ev, off, v, q);
    int bad = tridiag_ql(ev, off, d);
    free(off); free(v); free(q);
    if (bad) return dx_fail(err, DX_ENUMERIC, "tridiagonal QL did not converge (d=%d)", d);
    qsort(ev, d, sizeof *ev, cmp_double);
    for (int i = 0; i < d / 2; i++) { double t = ev[i]; ev[i] = ev[d - 1 - i]; ev[d - 1 - i] = t; }
    return DX_OK;
}

dx_status dx_effective_rank_from_scatter(double *C, int d, double *erank, dx_err *err) {
    double *ev = malloc((size_t)d * sizeof *ev);
    if (!ev) return dx_fail(err, DX_ENOMEM, "effective rank");
    dx_status st = dx_sym_eigvals(C, d, ev, err);
    if (st) { free(ev); return st; }
    double tot = 0;
    for (int i = 0; i < d; i++) { ev[i] = ev[i] > 0 ? sqrt(ev[i]) : 0; tot += ev[i]; }
    double h = 0;
    if (tot > 0)
        for (int i = 0; i < d; i++) {
            double p = ev[i] / tot;
            if (p > 0) h -= p * log(p);
        }
    *erank = tot > 0 ? exp(h) : 0;
    free(ev);
    return DX_OK;
}

dx_status dx_effective_rank(const float *X, int n, int d, double *erank, dx_err *err) {
    double *mu = calloc((size_t)d, sizeof *mu), *C = calloc((size_t)d * d, sizeof *C);
    if (!mu || !C) { free(mu); free(C); return dx_fail(err, DX_ENOMEM, "effective rank"); }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) mu[j] += X[(size_t)i * d + j];
    for (int j = 0; j < d; j++) mu[j] /= n;
    for (int i = 0; i < n; i++)
        for (int a = 0; a < d; a++) {
            double xa = X[(size_t)i * d + a] - mu[a];
            for (int b = a; b < d; b++) C[(size_t)a * d + b] += xa * (X[(size_t)i * d + b] - mu[b]);
        }
    for (int a = 0; a < d; a++)
        for (int b = 0; b < a; b++) C[(size_t)a * d + b] = C[(size_t)b * d + a];
    dx_status st = dx_effective_rank_from_scatter(C, d, erank, err);
    free(mu); free(C);
    return st;
}
