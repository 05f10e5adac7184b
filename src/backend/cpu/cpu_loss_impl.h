/* cpu_loss_impl.h - the DINOv3 loss kernels, written once for a generic real type.
 *
 * Included twice by cpu_loss.c (no include guard, on purpose) with
 *   R = float,  S = f, R_EXP = dx_cpu_expf           (the backend's kernels)
 *   R = double, S = d, R_EXP = exp                   (finite-difference checks)
 * R_SIMD(clauses) is `#pragma omp simd clauses` on loops calling R_EXP where
 * R_EXP has a vector version (float), and nothing otherwise.
 * Sums run in double in both instantiations. Reductions over rows write one
 * partial per row and are added in row order afterwards, so a result does not
 * depend on the number of threads. Formulas: docs/objective.md. */

#define FN_(a, b) a##_##b
#define FN(a, b) FN_(a, b)
#define F(name) FN(dx_cpu_##name, S)

/* ---- small helpers ------------------------------------------------------- */

/* |x| of one row (double) */
static inline double FN(row_norm, S)(const R *x, int D) {
    double s = 0;
    for (int i = 0; i < D; i++) s += (double)x[i] * (double)x[i];
    return sqrt(s);
}

static inline R FN(row_max, S)(const R *x, int K) {
    R mx = x[0];
    for (int k = 1; k < K; k++) mx = x[k] > mx ? x[k] : mx;
    return mx;
}

/* log sum_k exp((x_k - mx) / temp) for mx = max x (double). The exponents
 * (x_k - mx) * (1/temp) <= 0 are formed in R without first scaling x (the
 * difference is nearly exact, so the exponent keeps R's relative accuracy),
 * exp'd in R (vectorised), summed in double. lse of x/temp = mx/temp + this. */
static inline double FN(row_lse0, S)(const R *x, int K, R mx, double inv_t) {
    R it = (R)inv_t;
    double s = 0;
    R_SIMD(reduction(+ : s))
    for (int k = 0; k < K; k++) s += (double)R_EXP((x[k] - mx) * it);
    return log(s);
}

/* log-sum-exp of x[K] / temp (double) */
static inline double FN(row_lse, S)(const R *x, int K, double inv_t) {
    R mx = FN(row_max, S)(x, K);
    return (double)mx * inv_t + FN(row_lse0, S)(x, K, mx, inv_t);
}

/* dx[D] += gradient of z = x / max(|x|, eps) given dz[D] (double). Matches
 * autograd of x / clamp_min(norm, eps): clamp_min passes the gradient when
 * norm >= eps. */
static inline void FN(l2n_back_row, S)(R *dx, const R *x, const double *dz, int D, double eps) {
    double n = FN(row_norm, S)(x, D);
    if (n >= eps && n > 0) {
        double zd = 0;
        for (int i = 0; i < D; i++) zd += (double)x[i] * dz[i];
        zd /= n * n; /* <z, dz> / n with z = x / n */
        for (int i = 0; i < D; i++) dx[i] += (R)((dz[i] - (double)x[i] * zd) / n);
    } else {
        for (int i = 0; i < D; i++) dx[i] += (R)(dz[i] / eps);
    }
}

static double FN(sum_in_order, S)(const double *part, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += part[i];
    return s;
}

/* ---- Sinkhorn-Knopp, spec §4.2 ------------------------------------------- */

/* col[k] = sum_n q[n,k] for k in [k0, k1), row-major walk (vectorised over k) */
static void FN(col_sums, S)(double *col, const R *q, int N, int K, int k0, int k1) {
    for (int k = k0; k < k1; k++) col[k] = 0;
    for (int n = 0; n < N; n++) {
        const R *r = q + (size_t)n * K;
#pragma omp simd
        for (int k = k0; k < k1; k++) col[k] += (double)r[k];
    }
}

#define SK_CHUNK 2048 /* prototypes per task of the column passes */

void F(sinkhorn)(R *out, const R *logits, int N, int K, double temp, int n_iter) {
    if (N <= 0 || K <= 0) return;
    size_t NK = (size_t)N * K;
    double *col = malloc(sizeof(double) * (size_t)K);
    R *shift = malloc(sizeof(R) * (size_t)K);
    double *rowpart = malloc(sizeof(double) * (size_t)N);
    if (!col || !shift || !rowpart) {
        for (size_t i = 0; i < NK; i++) out[i] = (R)NAN;
        free(col), free(shift), free(rowpart);
        return;
    }
    int nchunk = (K + SK_CHUNK - 1) / SK_CHUNK;
    /* Shift before exp. The spec's global max is one constant factor; we go
     * one step further and subtract each prototype's own max over the batch,
     * a per-prototype factor that the first prototype normalisation removes
     * exactly as well. In float this keeps every prototype's largest entry at
     * 1, so a prototype far from all samples (exp underflowing to 0 for every
     * row with temp 0.04) still gets its 1/K mass instead of 0/0 = NaN. With
     * n_iter = 0 nothing would remove it, so the global max is used then. */
#pragma omp parallel for schedule(static) if (NK > 65536)
    for (int c = 0; c < nchunk; c++) {
        int k0 = c * SK_CHUNK, k1 = k0 + SK_CHUNK < K ? k0 + SK_CHUNK : K;
        for (int k = k0; k < k1; k++) shift[k] = logits[k];
        for (int n = 1; n < N; n++) {
            const R *z = logits + (size_t)n * K;
            for (int k = k0; k < k1; k++) shift[k] = z[k] > shift[k] ? z[k] : shift[k];
        }
    }
    if (n_iter <= 0) {
        R g = shift[0];
        for (int k = 1; k < K; k++) g = shift[k] > g ? shift[k] : g;
        for (int k = 0; k < K; k++) shift[k] = g;
    }
    R it = (R)(1.0 / temp);
#pragma omp parallel for schedule(static) if (NK > 65536)
    for (int n = 0; n < N; n++) {
        double s = 0;
        const R *z = logits + (size_t)n * K;
        R *o = out + (size_t)n * K;
        R_SIMD(reduction(+ : s))
        for (int k = 0; k < K; k++) {
            R q = R_EXP((z[k] - shift[k]) * it);
            o[k] = q;
            s += (double)q;
        }
        rowpart[n] = s;
    }
    /* Q /= sum(Q): a global factor; the first prototype step removes it too,
     * but it is kept so n_iter = 0 and partial iterations follow the spec */
    R inv_total = (R)(1.0 / FN(sum_in_order, S)(rowpart, N));
#pragma omp parallel for schedule(static) if (NK > 65536)
    for (int n = 0; n < N; n++) {
        R *o = out + (size_t)n * K;
#pragma omp simd
        for (int k = 0; k < K; k++) o[k] *= inv_total;
    }

    for (int iter = 0; iter < n_iter; iter++) {
        /* prototypes (columns of out): divide by their mass, then by K */
#pragma omp parallel for schedule(static) if (NK > 65536)
        for (int c = 0; c < nchunk; c++) {
            int k0 = c * SK_CHUNK, k1 = k0 + SK_CHUNK < K ? k0 + SK_CHUNK : K;
            FN(col_sums, S)(col, out, N, K, k0, k1);
            for (int k = k0; k < k1; k++) col[k] = 1.0 / (col[k] * (double)K);
        }
        /* samples (rows of out): divide by their mass, then by N; the final
         * * N is folded into the last iteration */
        double fin = iter == n_iter - 1 ? (double)N : 1.0;
#pragma omp parallel for schedule(static) if (NK > 65536)
        for (int n = 0; n < N; n++) {
            R *q = out + (size_t)n * K;
            double s = 0;
#pragma omp simd reduction(+ : s)
            for (int k = 0; k < K; k++) {
                q[k] = (R)((double)q[k] * col[k]);
                s += (double)q[k];
            }
            R f = (R)(fin / (s * (double)N));
#pragma omp simd
            for (int k = 0; k < K; k++) q[k] *= f;
        }
    }
    if (n_iter <= 0)
        for (size_t i = 0; i < NK; i++) out[i] = (R)((double)out[i] * N);
    free(col), free(shift), free(rowpart);
}

/* ---- softmax centring, spec §4.3 ------------------------------------------ */

void F(softmax_center)(R *out, const R *logits, const R *center, int N, int K, double temp) {
    double inv_t = 1.0 / temp;
#pragma omp parallel for schedule(static) if ((size_t)N * K > 65536)
    for (int n = 0; n < N; n++) {
        const R *z = logits + (size_t)n * K;
        R *o = out + (size_t)n * K;
        double m = -INFINITY;
        for (int k = 0; k < K; k++) {
            double v = ((double)z[k] - (double)center[k]) * inv_t;
            if (v > m) m = v;
        }
        double s = 0;
        for (int k = 0; k < K; k++) {
            R e = R_EXP((R)(((double)z[k] - (double)center[k]) * inv_t - m));
            o[k] = e;
            s += e;
        }
        double inv_s = 1.0 / s;
        for (int k = 0; k < K; k++) o[k] = (R)((double)o[k] * inv_s);
    }
}

void F(row_mean)(R *mean, const R *x, int N, int K) {
#pragma omp parallel for schedule(static) if ((size_t)N * K > 65536)
    for (int k = 0; k < K; k++) {
        double s = 0;
        for (int n = 0; n < N; n++) s += x[(size_t)n * K + k];
        mean[k] = (R)(s / N);
    }
}

/* ---- soft-target cross-entropy -------------------------------------------- */

/* CE(T, S) = sum_k T_k (lse - s_k/temp) = lse sum T - (1/temp) sum T s, given the row's lse */
static inline double FN(ce_row, S)(const R *s, const R *t, int K, double inv_t, double lse) {
    double ts = 0, tsum = 0;
#pragma omp simd reduction(+ : ts, tsum)
    for (int k = 0; k < K; k++) {
        ts += (double)t[k] * (double)s[k];
        tsum += (double)t[k];
    }
    return lse * tsum - ts * inv_t;
}

double F(ce_forward)(R *row_loss, const R *Sl, const R *T, const R *w, int N, int K,
                     double temp) {
    double inv_t = 1.0 / temp;
    double *part = malloc(sizeof(double) * (size_t)(N > 0 ? N : 1));
    if (!part) return NAN;
#pragma omp parallel for schedule(static) if ((size_t)N * K > 32768)
    for (int n = 0; n < N; n++) {
        const R *s = Sl + (size_t)n * K;
        double lse = FN(row_lse, S)(s, K, inv_t);
        double ce = FN(ce_row, S)(s, T + (size_t)n * K, K, inv_t, lse);
        if (row_loss) row_loss[n] = (R)ce;
        part[n] = (w ? (double)w[n] : 1.0) * ce;
    }
    double r = FN(sum_in_order, S)(part, N);
    free(part);
    return r;
}

/* dS_row += g * (softmax(s/temp) * sum(t) - t) / temp, with g already / temp */
static inline void FN(ce_back_row, S)(R *ds, const R *s, const R *t, int K, double inv_t,
                                      double g) {
    R mx = FN(row_max, S)(s, K);
    R l0 = (R)FN(row_lse0, S)(s, K, mx, inv_t); /* log of the softmax denominator, in [0, log K] */
    double tsum = 0;
#pragma omp simd reduction(+ : tsum)
    for (int k = 0; k < K; k++) tsum += t[k];
    R it = (R)inv_t, gt = (R)(g * tsum), gr = (R)g;
    R_SIMD()
    for (int k = 0; k < K; k++) ds[k] += gt * R_EXP((s[k] - mx) * it - l0) - gr * t[k];
}

void F(ce_backward)(R *dS, const R *Sl, const R *T, const R *w, int N, int K, double temp,
                    double scale) {
    double inv_t = 1.0 / temp;
#pragma omp parallel for schedule(static) if ((size_t)N * K > 32768)
    for (int n = 0; n < N; n++) {
        double g = scale * (w ? (double)w[n] : 1.0) * inv_t;
        FN(ce_back_row, S)(dS + (size_t)n * K, Sl + (size_t)n * K, T + (size_t)n * K, K, inv_t, g);
    }
}

/* ---- DINO CLS loss, spec §3.1 --------------------------------------------- */

static int FN(dino_npairs, S)(int ns, int nt, int ignore_diag) {
    int np = 0;
    for (int c = 0; c < ns; c++)
        for (int t = 0; t < nt; t++)
            if (!(ignore_diag && c == t)) np++;
    return np;
}

double F(dino_forward)(const R *Sl, int ns, const R *T, int nt, int B, int K, double temp,
                       int ignore_diag) {
    double inv_t = 1.0 / temp;
    int np = FN(dino_npairs, S)(ns, nt, ignore_diag);
    int rows = ns * B;
    double *part = malloc(sizeof(double) * (size_t)(rows > 0 ? rows : 1));
    if (!part) return NAN;
#pragma omp parallel for schedule(static) if ((size_t)rows * K > 32768)
    for (int r = 0; r < rows; r++) {
        int c = r / B, b = r % B;
        const R *s = Sl + (size_t)r * K;
        double lse = FN(row_lse, S)(s, K, inv_t);
        double acc = 0;
        for (int t = 0; t < nt; t++) {
            if (ignore_diag && c == t) continue;
            acc += FN(ce_row, S)(s, T + ((size_t)t * B + b) * K, K, inv_t, lse);
        }
        part[r] = acc;
    }
    double sum = FN(sum_in_order, S)(part, rows);
    free(part);
    return np > 0 ? sum / ((double)np * B) : 0.0;
}

void F(dino_backward)(R *dS, const R *Sl, int ns, const R *T, int nt, int B, int K,
                      double temp, int ignore_diag, double scale) {
    double inv_t = 1.0 / temp;
    int np = FN(dino_npairs, S)(ns, nt, ignore_diag);
    if (np == 0) return;
    double g = scale / ((double)np * B) * inv_t;
    int rows = ns * B;
#pragma omp parallel for schedule(static) if ((size_t)rows * K > 32768)
    for (int r = 0; r < rows; r++) {
        int c = r / B, b = r % B;
        for (int t = 0; t < nt; t++) {
            if (ignore_diag && c == t) continue;
            FN(ce_back_row, S)(dS + (size_t)r * K, Sl + (size_t)r * K,
                               T + ((size_t)t * B + b) * K, K, inv_t, g);
        }
    }
}

/* ---- KoLeo, spec §3.3 ---------------------------------------------------- */

#define KOLEO_EPS 1e-8

double F(koleo_forward)(int32_t *nn, const R *x, int B, int D) {
    double *inv = malloc(sizeof(double) * (size_t)(B > 0 ? B : 1));
    double *part = malloc(sizeof(double) * (size_t)(B > 0 ? B : 1));
    if (!inv || !part) {
        free(inv);
        free(part);
        return NAN;
    }
    for (int b = 0; b < B; b++) {
        double n = FN(row_norm, S)(x + (size_t)b * D, D);
        inv[b] = 1.0 / (n > KOLEO_EPS ? n : KOLEO_EPS);
    }
#pragma omp parallel for schedule(static) if ((size_t)B * B * D > 65536)
    for (int b = 0; b < B; b++) {
        const R *xb = x + (size_t)b * D;
        /* the reference fills the diagonal of z z^T with -1 and takes the
         * first maximum of the row */
        double best = -INFINITY;
        int arg = 0;
        for (int j = 0; j < B; j++) {
            double dot = -1.0;
            if (j != b) {
                const R *xj = x + (size_t)j * D;
                dot = 0;
                for (int i = 0; i < D; i++) dot += ((double)xb[i] * inv[b]) * ((double)xj[i] * inv[j]);
            }
            if (dot > best) {
                best = dot;
                arg = j;
            }
        }
        nn[b] = arg;
        const R *xn = x + (size_t)arg * D;
        double d2 = 0;
        for (int i = 0; i < D; i++) {
            double u = (double)xb[i] * inv[b] - (double)xn[i] * inv[arg] + KOLEO_EPS;
            d2 += u * u;
        }
        part[b] = -log(sqrt(d2) + KOLEO_EPS);
    }
    double s = FN(sum_in_order, S)(part, B) / B;
    free(inv);
    free(part);
    return s;
}

void F(koleo_backward)(R *dx, const R *x, const int32_t *nn, int B, int D, double scale) {
    double *dz = calloc((size_t)B * D, sizeof(double));
    double *inv = malloc(sizeof(double) * (size_t)(B > 0 ? B : 1));
    if (!dz || !inv) {
        for (size_t i = 0; i < (size_t)B * D; i++) dx[i] = (R)NAN;
        free(dz);
        free(inv);
        return;
    }
    for (int b = 0; b < B; b++) {
        double n = FN(row_norm, S)(x + (size_t)b * D, D);
        inv[b] = 1.0 / (n > KOLEO_EPS ? n : KOLEO_EPS);
    }
    /* serial: z_nn(b) is shared between rows */
    for (int b = 0; b < B; b++) {
        int j = nn[b];
        const R *xb = x + (size_t)b * D, *xj = x + (size_t)j * D;
        double d2 = 0;
        for (int i = 0; i < D; i++) {
            double u = (double)xb[i] * inv[b] - (double)xj[i] * inv[j] + KOLEO_EPS;
            d2 += u * u;
        }
        double d = sqrt(d2);
        if (d == 0) continue; /* norm backward at 0 is 0 in the reference */
        /* L = -(1/B) sum log(d + eps): dL/dd = -1 / (B (d + eps)); dd/du = u / d */
        double g = -scale / ((double)B * (d + KOLEO_EPS)) / d;
        for (int i = 0; i < D; i++) {
            double u = (double)xb[i] * inv[b] - (double)xj[i] * inv[j] + KOLEO_EPS;
            dz[(size_t)b * D + i] += g * u;
            dz[(size_t)j * D + i] -= g * u;
        }
    }
#pragma omp parallel for schedule(static) if ((size_t)B * D > 65536)
    for (int b = 0; b < B; b++)
        FN(l2n_back_row, S)(dx + (size_t)b * D, x + (size_t)b * D, dz + (size_t)b * D, D,
                            KOLEO_EPS);
    free(dz);
    free(inv);
}

/* ---- L2 normalisation ----------------------------------------------------- */

void F(l2norm_forward)(R *out, const R *x, int M, int D, double eps) {
#pragma omp parallel for schedule(static) if ((size_t)M * D > 65536)
    for (int m = 0; m < M; m++) {
        const R *xr = x + (size_t)m * D;
        double n = FN(row_norm, S)(xr, D);
        double inv = 1.0 / (n > eps ? n : eps);
        for (int i = 0; i < D; i++) out[(size_t)m * D + i] = (R)((double)xr[i] * inv);
    }
}

void F(l2norm_backward)(R *dx, const R *x, const R *dout, int M, int D, double eps) {
#pragma omp parallel
    {
        double *dz = malloc(sizeof(double) * (size_t)(D > 0 ? D : 1));
#pragma omp for schedule(static)
        for (int m = 0; m < M; m++) {
            if (!dz) {
                for (int i = 0; i < D; i++) dx[(size_t)m * D + i] = (R)NAN;
                continue;
            }
            for (int i = 0; i < D; i++) dz[i] = dout[(size_t)m * D + i];
            FN(l2n_back_row, S)(dx + (size_t)m * D, x + (size_t)m * D, dz, D, eps);
        }
        free(dz);
    }
}

/* ---- Gram loss, spec §3.4 ------------------------------------------------- */

#define GRAM_EPS 1e-12

static inline double FN(dot, S)(const R *a, const R *b, int D) {
    double s = 0;
    for (int i = 0; i < D; i++) s += (double)a[i] * (double)b[i];
    return s;
}

double F(gram_forward)(R *xs_hat, R *xt_hat, const R *xs, const R *xt, int nimg, int P, int D,
                       int img_level) {
    int M = nimg * P;
    F(l2norm_forward)(xs_hat, xs, M, D, GRAM_EPS);
    F(l2norm_forward)(xt_hat, xt, M, D, GRAM_EPS);
    int G = img_level ? P : M; /* rows of one Gram matrix */
    double *part = malloc(sizeof(double) * (size_t)(M > 0 ? M : 1));
    if (!part) return NAN;
#pragma omp parallel for schedule(dynamic, 4)
    for (int r = 0; r < M; r++) {
        int g0 = (r / G) * G; /* first row of this row's Gram block */
        double acc = 0;
        for (int q = g0; q < g0 + G; q++) {
            double e = FN(dot, S)(xs_hat + (size_t)r * D, xs_hat + (size_t)q * D, D) -
                       FN(dot, S)(xt_hat + (size_t)r * D, xt_hat + (size_t)q * D, D);
            acc += e * e;
        }
        part[r] = acc;
    }
    double sum = FN(sum_in_order, S)(part, M);
    free(part);
    return sum / ((double)M * G); /* number of Gram entries: (M/G) * G * G */
}

void F(gram_backward)(R *dxs, const R *xs, const R *xs_hat, const R *xt_hat, int nimg, int P,
                      int D, int img_level, double scale) {
    int M = nimg * P;
    int G = img_level ? P : M;
    /* dL/dxhat_r = (4 / #entries) sum_q E[r,q] xhat_q  (E symmetric) */
    double coef = scale * 4.0 / ((double)M * G);
#pragma omp parallel
    {
        double *dz = malloc(sizeof(double) * (size_t)(D > 0 ? D : 1));
#pragma omp for schedule(dynamic, 4)
        for (int r = 0; r < M; r++) {
            if (!dz) {
                for (int i = 0; i < D; i++) dxs[(size_t)r * D + i] = (R)NAN;
                continue;
            }
            int g0 = (r / G) * G;
            for (int i = 0; i < D; i++) dz[i] = 0;
            for (int q = g0; q < g0 + G; q++) {
                const R *sq = xs_hat + (size_t)q * D;
                double e = FN(dot, S)(xs_hat + (size_t)r * D, sq, D) -
                           FN(dot, S)(xt_hat + (size_t)r * D, xt_hat + (size_t)q * D, D);
                for (int i = 0; i < D; i++) dz[i] += e * (double)sq[i];
            }
            for (int i = 0; i < D; i++) dz[i] *= coef;
            FN(l2n_back_row, S)(dxs + (size_t)r * D, xs + (size_t)r * D, dz, D, GRAM_EPS);
        }
        free(dz);
    }
}

/* ---- bicubic resize (PyTorch upsample_bicubic2d, align_corners = False) ---- */

/* Source taps and weights of one output coordinate, computed in R like the
 * reference (opmath of float is float): scale = in/out, src = scale*(dst+0.5)-0.5
 * (not clamped for cubic), i0 = min(floor(src), in-1), t = clamp(src-i0, 0, 1). */
static void FN(cubic_taps, S)(int dst, int in, int out, int idx[4], R wt[4]) {
    const R A = (R)-0.75;
    R scale = (R)in / (R)out;
    R src = scale * ((R)dst + (R)0.5) - (R)0.5;
    R fl = (R)floor((double)src);
    int i0 = (int)fl;
    if (i0 > in - 1) i0 = in - 1;
    R t = src - (R)i0;
    if (t < 0) t = 0;
    if (t > 1) t = 1;
    R x1 = t, x2 = (R)1 - t;
    R y;
    y = x1 + (R)1;
    wt[0] = ((A * y - (R)5 * A) * y + (R)8 * A) * y - (R)4 * A;
    wt[1] = ((A + (R)2) * x1 - (A + (R)3)) * x1 * x1 + (R)1;
    wt[2] = ((A + (R)2) * x2 - (A + (R)3)) * x2 * x2 + (R)1;
    y = x2 + (R)1;
    wt[3] = ((A * y - (R)5 * A) * y + (R)8 * A) * y - (R)4 * A;
    for (int k = 0; k < 4; k++) {
        int v = i0 - 1 + k;
        idx[k] = v < 0 ? 0 : (v > in - 1 ? in - 1 : v);
    }
}

void F(resize_bicubic)(R *out, const R *in, int nimg, int Hin, int Win, int Hout, int Wout,
                       int C) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int im = 0; im < nimg; im++) {
        for (int oy = 0; oy < Hout; oy++) {
            int iy[4], ix[4];
            R wy[4], wx[4];
            FN(cubic_taps, S)(oy, Hin, Hout, iy, wy);
            const R *src = in + (size_t)im * Hin * Win * C;
            for (int ox = 0; ox < Wout; ox++) {
                FN(cubic_taps, S)(ox, Win, Wout, ix, wx);
                R *o = out + (((size_t)im * Hout + oy) * Wout + ox) * C;
                for (int c = 0; c < C; c++) {
                    R rows[4];
                    for (int j = 0; j < 4; j++) {
                        const R *rp = src + (size_t)iy[j] * Win * C + c;
                        rows[j] = rp[(size_t)ix[0] * C] * wx[0] + rp[(size_t)ix[1] * C] * wx[1] +
                                  rp[(size_t)ix[2] * C] * wx[2] + rp[(size_t)ix[3] * C] * wx[3];
                    }
                    o[c] = rows[0] * wy[0] + rows[1] * wy[1] + rows[2] * wy[2] + rows[3] * wy[3];
                }
            }
        }
    }
}

void F(resize_bicubic_backward)(R *din, const R *dout, int nimg, int Hin, int Win, int Hout,
                                int Wout, int C) {
    /* scatter; images are independent, so parallel over images only */
#pragma omp parallel for schedule(static)
    for (int im = 0; im < nimg; im++) {
        R *dst = din + (size_t)im * Hin * Win * C;
        for (int oy = 0; oy < Hout; oy++) {
            int iy[4], ix[4];
            R wy[4], wx[4];
            FN(cubic_taps, S)(oy, Hin, Hout, iy, wy);
            for (int ox = 0; ox < Wout; ox++) {
                FN(cubic_taps, S)(ox, Win, Wout, ix, wx);
                const R *g = dout + (((size_t)im * Hout + oy) * Wout + ox) * C;
                for (int j = 0; j < 4; j++)
                    for (int i = 0; i < 4; i++) {
                        R wgt = wy[j] * wx[i];
                        R *d = dst + ((size_t)iy[j] * Win + ix[i]) * C;
                        for (int c = 0; c < C; c++) d[c] += g[c] * wgt;
                    }
            }
        }
    }
}

#undef F
#undef FN
#undef FN_
