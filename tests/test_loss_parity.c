/* test_loss_parity.c - the DINOv3 loss kernels against the PyTorch reference and by finite differences.
 *
 * Reference: tests/fixtures/loss_objective.safetensors, written by
 * tests/ref/gen_loss_fixtures.py from tests/ref/loss_ref.py (float64 autograd,
 * spec §10 cases 1, 3-11, 20). For every kernel:
 *  - the float op (through be->loss of the CPU backend) matches the reference:
 *    losses <= 1e-5 relative, outputs and gradients <= 1e-4 (floor 1e-6);
 *  - the double instantiation matches to 1e-10;
 *  - every backward equals central finite differences of its own double
 *    forward (h = 1e-6 * max(1, |x|), |fd - g| <= 1e-6 (1 + |g|)) — this is
 *    independent of PyTorch;
 *  - properties: SK rows sum to 1, SK is invariant to a constant shift and
 *    finite for logits that would overflow exp without the max shift; SK
 *    columns reach N/K when iterated to convergence; KoLeo with a duplicate
 *    pair stays finite; the resize backward is the exact adjoint;
 *  - SK, CE and DINO give the same bits with 1 and 2 threads.
 * Every call of the ops table goes through backend memory (the h_<op>
 * wrappers: alloc + upload, download the results). dx_cpu_gram_gemm, the CPU
 * backend's internal GEMM-blocked Gram kernel, is not an ops-table entry: its
 * budget check below runs on host memory, which the CPU backend's memory is. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_loss.h"
#include "backend/dx_backend.h"
#include "backend/dx_loss_ops.h"
#include "core/dx_rng.h"
#include "dx_test.h"
#include "io/dx_safetensors.h"

static dx_safetensors ST;
static dx_backend *BE;
/* the plain CPU backend (never wrapped by the device-pointer check): for the
 * CPU-internal dx_cpu_gram_gemm, whose scratch is host memory by design */
static dx_backend *CPU;

/* ---- fixture access ------------------------------------------------------ */

static const dx_st_tensor *need(const char *name) {
    const dx_st_tensor *t = dx_st_find(&ST, name);
    CHECK(t != NULL, "fixture tensor '%s' missing", name);
    return t;
}

/* float copy of a F32/F64 tensor (malloc), n = numel */
static float *getf(const char *name, size_t *n) {
    const dx_st_tensor *t = need(name);
    if (!t) exit(1);
    float *v = malloc(sizeof(float) * (t->numel ? t->numel : 1));
    dx_err err;
    if (dx_st_to_f32(t, v, t->numel, &err)) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        exit(1);
    }
    if (n) *n = t->numel;
    return v;
}

/* double copy: F64 bit-exact, F32 widened */
static double *getd(const char *name, size_t *n) {
    const dx_st_tensor *t = need(name);
    if (!t) exit(1);
    double *v = malloc(sizeof(double) * (t->numel ? t->numel : 1));
    if (t->dtype == DX_ST_F64) {
        memcpy(v, t->data, t->numel * sizeof(double));
    } else {
        float *f = getf(name, NULL);
        for (size_t i = 0; i < t->numel; i++) v[i] = f[i];
        free(f);
    }
    if (n) *n = t->numel;
    return v;
}

static double scalar(const char *name) {
    double *v = getd(name, NULL);
    double s = v[0];
    free(v);
    return s;
}

static int32_t *geti(const char *name, size_t *n) {
    const dx_st_tensor *t = need(name);
    if (!t) exit(1);
    int32_t *v = malloc(sizeof(int32_t) * (t->numel ? t->numel : 1));
    memcpy(v, t->data, t->numel * sizeof(int32_t));
    if (n) *n = t->numel;
    return v;
}

static double *f2d(const float *f, size_t n) {
    double *d = malloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) d[i] = f[i];
    return d;
}

static double max_rel_d(const double *a, const double *b, size_t n, double floor) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        double den = fabs(b[i]) > floor ? fabs(b[i]) : floor;
        if (isnan(a[i]) || isnan(b[i])) return INFINITY;
        if (d / den > worst) worst = d / den;
    }
    return worst;
}

static double max_rel_fd(const float *a, const double *b, size_t n, double floor) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        double den = fabs(b[i]) > floor ? fabs(b[i]) : floor;
        if (isnan(a[i]) || isnan(b[i])) return INFINITY;
        if (d / den > worst) worst = d / den;
    }
    return worst;
}

/* float gradients: relative error, with entries below 1e-3 of the largest
 * judged by absolute error at that scale (their float rounding comes from
 * O(max) terms that cancel) */
static double grad_err(const float *a, const double *ref, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(ref[i]));
    return max_rel_fd(a, ref, n, fmax(1e-6, 1e-3 * m));
}

/* ---- the loss ops on backend memory ----------------------------------------
 * h_<op>(...): the op's arguments without the backend, on host arrays: every
 * input is uploaded into be->ops->alloc memory, the op runs through BE->loss,
 * outputs (and accumulated gradients, uploaded first) are downloaded. So every
 * ops-table call of this program gets backend memory, as on a GPU. */

static float *up(const float *h, size_t n) {
    if (!h) return NULL;
    float *d = BE->ops->alloc(BE, sizeof(float) * (n ? n : 1));
    if (!d) abort();
    BE->ops->upload(BE, d, h, sizeof(float) * n);
    return d;
}
/* download d into h (when h != NULL) and free d */
static void down(float *h, float *d, size_t n) {
    if (!d) return;
    if (h) BE->ops->download(BE, h, d, sizeof(float) * n);
    BE->ops->free(BE, d);
}
static void dfree(const void *d) {
    if (d) BE->ops->free(BE, (void *)d);
}

static void h_sinkhorn_knopp(float *out, const float *logits, int N, int K, float temp, int n_iter) {
    size_t n = (size_t)N * K;
    float *dz = up(logits, n), *dout = up(out, n);
    BE->loss->sinkhorn_knopp(BE, dout, dz, N, K, temp, n_iter, NULL);
    down(out, dout, n), dfree(dz);
}
static void h_softmax_center(float *out, const float *logits, const float *center, int N, int K,
                             float temp) {
    size_t n = (size_t)N * K;
    float *dz = up(logits, n), *dc = up(center, K), *dout = up(out, n);
    BE->loss->softmax_center(BE, dout, dz, dc, N, K, temp);
    down(out, dout, n), dfree(dz), dfree(dc);
}
static void h_row_mean(float *mean, const float *x, int N, int K) {
    float *dx = up(x, (size_t)N * K), *dm = up(mean, K);
    BE->loss->row_mean(BE, dm, dx, N, K);
    down(mean, dm, K), dfree(dx);
}
static double h_ce_forward(float *row_loss, const float *S, const float *T, const float *w, int N,
                           int K, float temp) {
    size_t n = (size_t)N * K;
    float *dS = up(S, n), *dT = up(T, n), *dw = up(w, N), *drl = up(row_loss, N);
    double L = BE->loss->ce_forward(BE, drl, dS, dT, dw, N, K, temp);
    down(row_loss, drl, N), dfree(dS), dfree(dT), dfree(dw);
    return L;
}
static void h_ce_backward(float *dS, const float *S, const float *T, const float *w, int N, int K,
                          float temp, float scale) {
    size_t n = (size_t)N * K;
    float *ddS = up(dS, n), *d_S = up(S, n), *dT = up(T, n), *dw = up(w, N);
    BE->loss->ce_backward(BE, ddS, d_S, dT, dw, N, K, temp, scale);
    down(dS, ddS, n), dfree(d_S), dfree(dT), dfree(dw);
}
static double h_dino_forward(const float *S, int ns, const float *T, int nt, int B, int K,
                             float temp, int ignore_diag) {
    float *dS = up(S, (size_t)ns * B * K), *dT = up(T, (size_t)nt * B * K);
    double L = BE->loss->dino_forward(BE, dS, ns, dT, nt, B, K, temp, ignore_diag);
    dfree(dS), dfree(dT);
    return L;
}
static void h_dino_backward(float *dS, const float *S, int ns, const float *T, int nt, int B, int K,
                            float temp, int ignore_diag, float scale) {
    size_t n = (size_t)ns * B * K;
    float *ddS = up(dS, n), *d_S = up(S, n), *dT = up(T, (size_t)nt * B * K);
    BE->loss->dino_backward(BE, ddS, d_S, ns, dT, nt, B, K, temp, ignore_diag, scale);
    down(dS, ddS, n), dfree(d_S), dfree(dT);
}
static double h_ibot_loss_forward(const float *S, const float *T, const float *w, int M, int K,
                                  float temp, int n_crops) {
    size_t n = (size_t)M * K;
    float *dS = up(S, n), *dT = up(T, n), *dw = up(w, M);
    double L = dx_ibot_loss_forward(BE, dS, dT, dw, M, K, temp, n_crops);
    dfree(dS), dfree(dT), dfree(dw);
    return L;
}
static void h_ibot_loss_backward(float *dS, const float *S, const float *T, const float *w, int M,
                                 int K, float temp, int n_crops, float scale) {
    size_t n = (size_t)M * K;
    float *ddS = up(dS, n), *d_S = up(S, n), *dT = up(T, n), *dw = up(w, M);
    dx_ibot_loss_backward(BE, ddS, d_S, dT, dw, M, K, temp, n_crops, scale);
    down(dS, ddS, n), dfree(d_S), dfree(dT), dfree(dw);
}
static double h_koleo_forward(int32_t *nn, const float *x, int B, int D) {
    float *dx = up(x, (size_t)B * D);
    int32_t *dnn = BE->ops->alloc(BE, sizeof(int32_t) * B);
    double L = BE->loss->koleo_forward(BE, dnn, dx, B, D);
    BE->ops->download(BE, nn, dnn, sizeof(int32_t) * B);
    dfree(dx), dfree(dnn);
    return L;
}
static void h_koleo_backward(float *dx, const float *x, const int32_t *nn, int B, int D, float scale) {
    size_t n = (size_t)B * D;
    float *ddx = up(dx, n), *d_x = up(x, n);
    int32_t *dnn = BE->ops->alloc(BE, sizeof(int32_t) * B);
    BE->ops->upload(BE, dnn, nn, sizeof(int32_t) * B);
    BE->loss->koleo_backward(BE, ddx, d_x, dnn, B, D, scale);
    down(dx, ddx, n), dfree(d_x), dfree(dnn);
}
static double h_gram_forward(float *xs_hat, float *xt_hat, const float *xs, const float *xt, int nimg,
                             int P, int D, int img_level) {
    size_t n = (size_t)nimg * P * D;
    float *dsh = up(xs_hat, n), *dth = up(xt_hat, n), *dxs = up(xs, n), *dxt = up(xt, n);
    double L = BE->loss->gram_forward(BE, dsh, dth, dxs, dxt, nimg, P, D, img_level);
    down(xs_hat, dsh, n), down(xt_hat, dth, n), dfree(dxs), dfree(dxt);
    return L;
}
static void h_gram_backward(float *dxs, const float *xs, const float *xs_hat, const float *xt_hat,
                            int nimg, int P, int D, int img_level, float scale) {
    size_t n = (size_t)nimg * P * D;
    float *dd = up(dxs, n), *dx = up(xs, n), *dsh = up(xs_hat, n), *dth = up(xt_hat, n);
    BE->loss->gram_backward(BE, dd, dx, dsh, dth, nimg, P, D, img_level, scale);
    down(dxs, dd, n), dfree(dx), dfree(dsh), dfree(dth);
}
static void h_resize_bicubic(float *out, const float *in, int nimg, int Hin, int Win, int Hout,
                             int Wout, int C) {
    size_t ni = (size_t)nimg * Hin * Win * C, no = (size_t)nimg * Hout * Wout * C;
    float *di = up(in, ni), *dout = up(out, no);
    BE->loss->resize_bicubic(BE, dout, di, nimg, Hin, Win, Hout, Wout, C);
    down(out, dout, no), dfree(di);
}
static void h_resize_bicubic_backward(float *din, const float *dout, int nimg, int Hin, int Win,
                                      int Hout, int Wout, int C) {
    size_t ni = (size_t)nimg * Hin * Win * C, no = (size_t)nimg * Hout * Wout * C;
    float *ddin = up(din, ni), *ddout = up(dout, no);
    BE->loss->resize_bicubic_backward(BE, ddin, ddout, nimg, Hin, Win, Hout, Wout, C);
    down(din, ddin, ni), dfree(ddout);
}
static void h_l2norm_forward(float *out, const float *x, int M, int D, float eps) {
    size_t n = (size_t)M * D;
    float *dout = up(out, n), *dx = up(x, n);
    BE->loss->l2norm_forward(BE, dout, dx, M, D, eps);
    down(out, dout, n), dfree(dx);
}
static void h_l2norm_backward(float *dx, const float *x, const float *dout, int M, int D, float eps) {
    size_t n = (size_t)M * D;
    float *ddx = up(dx, n), *d_x = up(x, n), *ddout = up(dout, n);
    BE->loss->l2norm_backward(BE, ddx, d_x, ddout, M, D, eps);
    down(dx, ddx, n), dfree(d_x), dfree(ddout);
}

#define TOL_LOSS 1e-5
#define TOL_GRAD 1e-4
#define TOL_D 1e-10

/* ---- finite differences -------------------------------------------------- */

typedef double (*loss_fn)(const double *x, void *ctx);

/* central differences of f at x (perturbed in place, restored) vs g */
static void check_fd(const char *what, loss_fn f, void *ctx, double *x, const double *g, size_t n) {
    int bad = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double x0 = x[i];
        double h = 1e-6 * (fabs(x0) > 1 ? fabs(x0) : 1);
        x[i] = x0 + h;
        double fp = f(x, ctx);
        x[i] = x0 - h;
        double fm = f(x, ctx);
        x[i] = x0;
        double fd = (fp - fm) / (2 * h);
        double err = fabs(fd - g[i]) / (1 + fabs(g[i]));
        if (err > worst) worst = err;
        if (err > 1e-6 && bad++ < 3)
            fprintf(stderr, "  %s[%zu]: fd %.10g analytic %.10g\n", what, i, fd, g[i]);
    }
    CHECK(bad == 0, "%s: finite differences, %d of %zu entries off (worst %.3g)", what, bad, n,
          worst);
    printf("  FD %-22s worst %.2e over %zu entries\n", what, worst, n);
}

/* ---- Sinkhorn-Knopp (cases 1, 3) and softmax centring --------------------- */

static void test_sinkhorn(void) {
    static const struct { const char *name; int N, K; } cases[] = {
        {"sk1", 4, 8}, {"sk2", 6, 5}, {"sk3", 7, 16}, {"sk4", 16, 64}};
    for (int c = 0; c < 4; c++) {
        char key[64];
        int N = cases[c].N, K = cases[c].K;
        size_t NK = (size_t)N * K, n;
        snprintf(key, sizeof key, "%s.logits", cases[c].name);
        float *z = getf(key, &n);
        CHECK(n == NK, "%s shape", key);
        snprintf(key, sizeof key, "%s.temp", cases[c].name);
        double temp = scalar(key);
        snprintf(key, sizeof key, "%s.out", cases[c].name);
        double *ref = getd(key, NULL);
        snprintf(key, sizeof key, "%s.out1", cases[c].name);
        double *ref1 = getd(key, NULL);

        float *out = malloc(sizeof(float) * NK);
        h_sinkhorn_knopp(out, z, N, K, (float)temp, 3);
        double e = max_rel_fd(out, ref, NK, 1e-6);
        CHECK(e <= TOL_GRAD, "%s float vs torch: %.3g", cases[c].name, e);
        printf("  %s float SK rel err %.2e\n", cases[c].name, e);
        for (int i = 0; i < N; i++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += out[(size_t)i * K + k];
            CHECK(fabs(s - 1) <= 1e-5, "%s float row %d sums to %.9g", cases[c].name, i, s);
        }
        h_sinkhorn_knopp(out, z, N, K, (float)temp, 1);
        e = max_rel_fd(out, ref1, NK, 1e-6);
        CHECK(e <= TOL_GRAD, "%s float 1 iteration vs torch: %.3g", cases[c].name, e);

        /* double: reference to 1e-10, rows sum to 1, invariance to a constant shift */
        double *zd = f2d(z, NK), *od = malloc(sizeof(double) * NK), *os = malloc(sizeof(double) * NK);
        dx_cpu_sinkhorn_knopp_f64(od, zd, N, K, temp, 3);
        e = max_rel_d(od, ref, NK, 1e-12);
        CHECK(e <= TOL_D, "%s double vs torch: %.3g", cases[c].name, e);
        for (int i = 0; i < N; i++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += od[(size_t)i * K + k];
            CHECK(fabs(s - 1) <= 1e-13, "%s double row %d sums to %.17g", cases[c].name, i, s);
        }
        for (size_t i = 0; i < NK; i++) zd[i] += 3.75; /* exact in double */
        dx_cpu_sinkhorn_knopp_f64(os, zd, N, K, temp, 3);
        e = max_rel_d(os, od, NK, 1e-12);
        CHECK(e <= 1e-11, "%s constant shift changes SK by %.3g", cases[c].name, e);

        /* logits that overflow exp(z/temp) in float without the max shift */
        float *zb = malloc(sizeof(float) * NK);
        for (size_t i = 0; i < NK; i++) zb[i] = z[i] + 200.0f;
        h_sinkhorn_knopp(out, zb, N, K, (float)temp, 3);
        int finite = 1;
        for (size_t i = 0; i < NK; i++) finite &= isfinite(out[i]) != 0;
        CHECK(finite, "%s: SK of logits + 200 is not finite", cases[c].name);
        e = max_rel_fd(out, ref, NK, 1e-3);
        CHECK(e <= 0.05, "%s: SK of logits + 200 far from SK of logits (%.3g)", cases[c].name, e);

        free(z), free(ref), free(ref1), free(out), free(zd), free(od), free(os), free(zb);
    }

    /* convergence: many iterations make every prototype column sum to N/K */
    {
        size_t n;
        float *z = getf("sk1.logits", &n);
        double *zd = f2d(z, n), *od = malloc(sizeof(double) * n);
        dx_cpu_sinkhorn_knopp_f64(od, zd, 4, 8, 0.07, 2000);
        double worst = 0;
        for (int k = 0; k < 8; k++) {
            double s = 0;
            for (int i = 0; i < 4; i++) s += od[i * 8 + k];
            if (fabs(s - 0.5) > worst) worst = fabs(s - 0.5);
        }
        CHECK(worst < 1e-6, "SK columns at convergence: max |sum - N/K| = %.3g", worst);
        free(z), free(zd), free(od);
    }

    /* softmax centring + batch centre (§4.3) */
    {
        size_t n;
        float *z = getf("sc.logits", &n);
        float *c = getf("sc.center", NULL);
        double temp = scalar("sc.temp");
        double *ref = getd("sc.out", NULL), *refm = getd("sc.mean", NULL);
        float *out = malloc(sizeof(float) * n), mean[12];
        h_softmax_center(out, z, c, 5, 12, (float)temp);
        double e = max_rel_fd(out, ref, n, 1e-6);
        CHECK(e <= TOL_GRAD, "softmax centring vs torch: %.3g", e);
        h_row_mean(mean, z, 5, 12);
        e = max_rel_fd(mean, refm, 12, 1e-6);
        CHECK(e <= TOL_LOSS, "row mean vs torch: %.3g", e);
        free(z), free(c), free(ref), free(refm), free(out);
    }
}

/* ---- soft-target CE ------------------------------------------------------ */

typedef struct {
    const double *T, *w;
    int N, K, ns, nt, B, ignore;
    double temp;
} ce_ctx;

static double ce_f(const double *S, void *v) {
    ce_ctx *c = v;
    return dx_cpu_ce_forward_f64(NULL, S, c->T, c->w, c->N, c->K, c->temp);
}

static void test_ce(void) {
    size_t n;
    float *S = getf("ce.S", &n), *T = getf("ce.T", NULL), *w = getf("ce.w", NULL);
    double temp = scalar("ce.temp"), loss = scalar("ce.loss");
    double *rows = getd("ce.rows", NULL), *grad = getd("ce.grad", NULL);
    int N = 5, K = 10;
    float rl[5];
    float *dS = calloc(n, sizeof(float));
    double L = h_ce_forward(rl, S, T, w, N, K, (float)temp);
    CHECK_CLOSE(L, loss, 0, TOL_LOSS, "CE weighted sum (float)");
    CHECK(max_rel_fd(rl, rows, 5, 1e-6) <= TOL_LOSS, "CE rows (float)");
    /* overwritten, not accumulated: a second call with the same inputs leaves the same gradient */
    h_ce_backward(dS, S, T, w, N, K, (float)temp, 1.0f);
    h_ce_backward(dS, S, T, w, N, K, (float)temp, 1.0f);
    double e = grad_err(dS, grad, n);
    CHECK(e <= TOL_GRAD, "CE gradient (float, overwritten) vs torch: %.3g", e);

    double *Sd = f2d(S, n), *Td = f2d(T, n), *wd = f2d(w, N), *gd = calloc(n, sizeof(double));
    ce_ctx c = {.T = Td, .w = wd, .N = N, .K = K, .temp = temp};
    CHECK_CLOSE(ce_f(Sd, &c), loss, 0, TOL_D, "CE weighted sum (double)");
    dx_cpu_ce_backward_f64(gd, Sd, Td, wd, N, K, temp, 1.0);
    CHECK(max_rel_d(gd, grad, n, 1e-12) <= TOL_D, "CE gradient (double) vs torch");
    check_fd("ce (T not normalised)", ce_f, &c, Sd, gd, n);
    free(S), free(T), free(w), free(rows), free(grad), free(dS), free(Sd), free(Td), free(wd), free(gd);
}

/* ---- DINO (cases 4, 5) and iBOT (case 6) ------------------------------------ */

static double dino_f(const double *S, void *v) {
    ce_ctx *c = v;
    return dx_cpu_dino_forward_f64(S, c->ns, c->T, c->nt, c->B, c->K, c->temp, c->ignore);
}

static void dino_case(const char *pre, int ns, int nt, int ignore, const char *lkey,
                      const char *gkey) {
    char k1[64], k2[64];
    int B = 3, K = 16;
    snprintf(k1, sizeof k1, "%s.S", pre);
    snprintf(k2, sizeof k2, "%s.T", pre);
    size_t n, nT;
    float *S = getf(k1, &n), *T = getf(k2, &nT);
    CHECK(n == (size_t)ns * B * K && nT == (size_t)nt * B * K, "%s shapes", pre);
    double loss = scalar(lkey), *grad = getd(gkey, NULL);
    double L = h_dino_forward(S, ns, T, nt, B, K, 0.1f, ignore);
    CHECK_CLOSE(L, loss, 0, TOL_LOSS, lkey);
    float *dS = calloc(n, sizeof(float));
    h_dino_backward(dS, S, ns, T, nt, B, K, 0.1f, ignore, 1.0f);
    double e = grad_err(dS, grad, n);
    CHECK(e <= TOL_GRAD, "%s float gradient vs torch: %.3g", gkey, e);
    printf("  %-16s loss %.9g (torch %.9g), grad rel err %.2e\n", lkey, L, loss, e);

    double *Sd = f2d(S, n), *Td = f2d(T, nT), *gd = calloc(n, sizeof(double));
    ce_ctx c = {.T = Td, .K = K, .ns = ns, .nt = nt, .B = B, .ignore = ignore, .temp = 0.1};
    CHECK_CLOSE(dino_f(Sd, &c), loss, 0, TOL_D, lkey);
    dx_cpu_dino_backward_f64(gd, Sd, ns, Td, nt, B, K, 0.1, ignore, 1.0);
    CHECK(max_rel_d(gd, grad, n, 1e-12) <= TOL_D, "%s double gradient vs torch", gkey);
    check_fd(gkey, dino_f, &c, Sd, gd, n);
    free(S), free(T), free(grad), free(dS), free(Sd), free(Td), free(gd);
}

static void test_dino_ibot(void) {
    dino_case("dino4", 8, 2, 0, "dino4.loss", "dino4.grad");
    dino_case("dino5", 2, 2, 1, "dino5.loss", "dino5.grad");
    dino_case("dino5", 2, 2, 0, "dino5.loss_all", "dino5.grad_all");
    /* ignore_diag really drops the diagonal: the cross-pair loss is not the all-pair one */
    CHECK(fabs(scalar("dino5.loss") - scalar("dino5.loss_all")) > 1e-3,
          "fixture: diagonal pairs must change the global loss");

    size_t n, nw;
    float *S = getf("ibot6.S", &n), *T = getf("ibot6.T", NULL), *w = getf("ibot6.w", &nw);
    int M = (int)nw, K = 16;
    CHECK(M == 8, "ibot6: 3 + 5 masked rows, got %d", M);
    double loss = scalar("ibot6.loss"), *grad = getd("ibot6.grad", NULL);
    double L = h_ibot_loss_forward(S, T, w, M, K, 0.1f, 4);
    CHECK_CLOSE(L, loss, 0, TOL_LOSS, "iBOT loss (/2B over all 4 crops)");
    float *dS = calloc(n, sizeof(float));
    h_ibot_loss_backward(dS, S, T, w, M, K, 0.1f, 4, 1.0f);
    double e = grad_err(dS, grad, n);
    CHECK(e <= TOL_GRAD, "iBOT gradient vs torch: %.3g", e);
    printf("  ibot6 loss %.9g (torch %.9g), grad rel err %.2e\n", L, loss, e);
    double *Sd = f2d(S, n), *Td = f2d(T, n), *wd = f2d(w, M), *gd = calloc(n, sizeof(double));
    ce_ctx c = {.T = Td, .w = wd, .N = M, .K = K, .temp = 0.1};
    CHECK_CLOSE(ce_f(Sd, &c) / 4, loss, 0, TOL_D, "iBOT loss (double)");
    dx_cpu_ce_backward_f64(gd, Sd, Td, wd, M, K, 0.1, 0.25);
    CHECK(max_rel_d(gd, grad, n, 1e-12) <= TOL_D, "iBOT gradient (double)");
    free(S), free(T), free(w), free(grad), free(dS), free(Sd), free(Td), free(wd), free(gd);
}

/* ---- KoLeo (cases 7, 8) ----------------------------------------------------- */

typedef struct {
    int B, D;
    const int32_t *nn;
} ko_ctx;

/* forward with the neighbours of the unperturbed point held fixed (as the
 * reference: indices carry no gradient) */
static double koleo_fixed(const double *x, void *v) {
    ko_ctx *c = v;
    double s = 0;
    for (int b = 0; b < c->B; b++) {
        const double *xb = x + (size_t)b * c->D, *xn = x + (size_t)c->nn[b] * c->D;
        double nb = 0, nn = 0;
        for (int i = 0; i < c->D; i++) nb += xb[i] * xb[i], nn += xn[i] * xn[i];
        nb = fmax(sqrt(nb), 1e-8), nn = fmax(sqrt(nn), 1e-8);
        double d2 = 0;
        for (int i = 0; i < c->D; i++) {
            double u = xb[i] / nb - xn[i] / nn + 1e-8;
            d2 += u * u;
        }
        s += -log(sqrt(d2) + 1e-8);
    }
    return s / c->B;
}

static void test_koleo(void) {
    const char *pre[2] = {"koleo7", "koleo8"};
    int Bs[2] = {8, 6};
    for (int k = 0; k < 2; k++) {
        char key[64];
        int B = Bs[k], D = 5;
        size_t n;
        snprintf(key, sizeof key, "%s.x", pre[k]);
        float *x = getf(key, &n);
        snprintf(key, sizeof key, "%s.loss", pre[k]);
        double loss = scalar(key);
        snprintf(key, sizeof key, "%s.grad", pre[k]);
        double *grad = getd(key, NULL);
        snprintf(key, sizeof key, "%s.nn", pre[k]);
        int32_t *rnn = geti(key, NULL);

        int32_t nn[8];
        double L = h_koleo_forward(nn, x, B, D);
        int same = 1;
        for (int b = 0; b < B; b++) same &= nn[b] == rnn[b];
        CHECK(same, "%s: nearest neighbours differ from torch", pre[k]);
        CHECK(isfinite(L), "%s loss finite", pre[k]);
        CHECK_CLOSE(L, loss, 0, TOL_LOSS, pre[k]);
        float *dx = calloc(n, sizeof(float));
        h_koleo_backward(dx, x, nn, B, D, 1.0f);
        int finite = 1;
        for (size_t i = 0; i < n; i++) finite &= isfinite(dx[i]) != 0;
        CHECK(finite, "%s gradient finite", pre[k]);
        double e = grad_err(dx, grad, n);
        CHECK(e <= TOL_GRAD, "%s float gradient vs torch: %.3g", pre[k], e);
        printf("  %s loss %.9g (torch %.9g), grad rel err %.2e\n", pre[k], L, loss, e);

        double *xd = f2d(x, n), *gd = calloc(n, sizeof(double));
        int32_t nnd[8];
        double Ld = dx_cpu_koleo_forward_f64(nnd, xd, B, D);
        CHECK_CLOSE(Ld, loss, 0, TOL_D, pre[k]);
        dx_cpu_koleo_backward_f64(gd, xd, nnd, B, D, 1.0);
        /* the duplicate pair's gradient is ~1e8: relative check only */
        /* duplicate pair: +-2e6 contributions of the two rows cancel, so
         * judge against that scale (floor 1) rather than the tiny remainder */
        double ed = max_rel_d(gd, grad, n, k == 0 ? 1e-12 : 1.0);
        CHECK(ed <= (k == 0 ? TOL_D : 1e-8), "%s double gradient vs torch: %.3g", pre[k], ed);
        if (k == 0) {
            /* gradient flows through both endpoints: the neighbour-only part is non-zero */
            ko_ctx c = {.B = B, .D = D, .nn = nnd};
            check_fd("koleo (both endpoints)", koleo_fixed, &c, xd, gd, n);
        } else {
            /* duplicate rows: the term is -log(|1e-8 * 1| + 1e-8) */
            double dup = -log(1e-8 * sqrt((double)D) + 1e-8);
            CHECK(L > dup / B, "koleo8: the duplicate pair term dominates (%g vs %g)", L, dup / B);
        }
        free(x), free(grad), free(rnn), free(dx), free(xd), free(gd);
    }
}

/* ---- Gram (cases 9, 10) ------------------------------------------------------ */

typedef struct {
    const double *xt;
    int nimg, P, D, lvl;
} gram_ctx;

static double gram_f(const double *xs, void *v) {
    gram_ctx *c = v;
    size_t n = (size_t)c->nimg * c->P * c->D;
    double *a = malloc(sizeof(double) * n), *b = malloc(sizeof(double) * n);
    double L = dx_cpu_gram_forward_f64(a, b, xs, c->xt, c->nimg, c->P, c->D, c->lvl);
    free(a), free(b);
    return L;
}

static void test_gram(void) {
    size_t n;
    float *xs = getf("gram.xs", &n), *xt = getf("gram.xt", NULL);
    int nimg = 2, P = 6, D = 4;
    const char *names[2] = {"batch", "img"};
    for (int lvl = 0; lvl < 2; lvl++) {
        char key[64];
        snprintf(key, sizeof key, "gram.loss_%s", names[lvl]);
        double loss = scalar(key);
        snprintf(key, sizeof key, "gram.grad_%s", names[lvl]);
        double *grad = getd(key, NULL);
        float *sh = malloc(sizeof(float) * n), *th = malloc(sizeof(float) * n);
        float *dx = calloc(n, sizeof(float));
        double L = h_gram_forward(sh, th, xs, xt, nimg, P, D, lvl);
        CHECK_CLOSE(L, loss, 0, TOL_LOSS, key);
        h_gram_backward(dx, xs, sh, th, nimg, P, D, lvl, 1.0f);
        double e = grad_err(dx, grad, n);
        CHECK(e <= TOL_GRAD, "gram %s float gradient: %.3g", names[lvl], e);
        printf("  gram %-5s loss %.9g (torch %.9g), grad rel err %.2e\n", names[lvl], L, loss, e);

        double *xsd = f2d(xs, n), *xtd = f2d(xt, n), *gd = calloc(n, sizeof(double));
        double *shd = malloc(sizeof(double) * n), *thd = malloc(sizeof(double) * n);
        gram_ctx c = {.xt = xtd, .nimg = nimg, .P = P, .D = D, .lvl = lvl};
        CHECK_CLOSE(dx_cpu_gram_forward_f64(shd, thd, xsd, xtd, nimg, P, D, lvl), loss, 0, TOL_D,
                    key);
        dx_cpu_gram_backward_f64(gd, xsd, shd, thd, nimg, P, D, lvl, 1.0);
        CHECK(max_rel_d(gd, grad, n, 1e-12) <= TOL_D, "gram %s double gradient", names[lvl]);
        check_fd(lvl ? "gram img_level" : "gram batch", gram_f, &c, xsd, gd, n);
        free(grad), free(sh), free(th), free(dx), free(xsd), free(xtd), free(gd), free(shd),
            free(thd);
    }
    free(xs), free(xt);

    /* the GEMM path of the float op with several scratch budgets (several
     * images per batched GEMM, one image, row blocks of 7 and of 1) equals
     * the double scalar kernel on a larger random case */
    {
        int ni = 3, Pp = 20, Dd = 24;
        size_t nn = (size_t)ni * Pp * Dd;
        float *a = malloc(sizeof(float) * nn), *b = malloc(sizeof(float) * nn);
        float *ah = malloc(sizeof(float) * nn), *bh = malloc(sizeof(float) * nn);
        double *ad = malloc(sizeof(double) * nn), *bd = malloc(sizeof(double) * nn);
        double *ahd = malloc(sizeof(double) * nn), *bhd = malloc(sizeof(double) * nn);
        double *gd = calloc(nn, sizeof(double));
        float *g = malloc(sizeof(float) * nn);
        for (size_t i = 0; i < nn; i++) {
            a[i] = (float)sin(0.37 * i + 0.1), b[i] = (float)cos(0.23 * i * i + 0.3);
            ad[i] = a[i], bd[i] = b[i];
        }
        for (int lvl = 0; lvl < 2; lvl++) {
            int G = lvl ? Pp : ni * Pp;
            memset(gd, 0, sizeof(double) * nn);
            double Ld = dx_cpu_gram_forward_f64(ahd, bhd, ad, bd, ni, Pp, Dd, lvl);
            dx_cpu_gram_backward_f64(gd, ad, ahd, bhd, ni, Pp, Dd, lvl, 0.7);
            double Lo = h_gram_forward(ah, bh, a, b, ni, Pp, Dd, lvl);
            CHECK_CLOSE(Lo, Ld, 0, TOL_LOSS, "gram op (GEMM) vs double kernel");
            size_t budgets[4] = {(size_t)2 * G * G, (size_t)G * G, (size_t)7 * G, 1};
            for (int k = 0; k < 4; k++) {
                memset(g, 0, sizeof(float) * nn);
                double L = dx_cpu_gram_gemm(CPU, g, a, ah, bh, ni, Pp, Dd, lvl, 0.7f, budgets[k]);
                CHECK_CLOSE(L, Ld, 0, TOL_LOSS, "gram GEMM blocks: loss");
                double e = grad_err(g, gd, nn);
                CHECK(e <= TOL_GRAD, "gram GEMM level %d budget %zu: gradient err %.3g", lvl,
                      budgets[k], e);
            }
        }
        free(a), free(b), free(ah), free(bh), free(ad), free(bd), free(ahd), free(bhd), free(gd),
            free(g);
    }
}

/* ---- bicubic resize (case 11) ------------------------------------------------ */

/* [C, H, W] planar -> [H*W, C] channels-last */
static void to_cl(float *dst, const float *src, int C, int H, int W) {
    for (int c = 0; c < C; c++)
        for (int p = 0; p < H * W; p++) dst[(size_t)p * C + c] = src[(size_t)c * H * W + p];
}

static void test_resize(void) {
    static const struct { const char *name; int C, Hin, Hout; } cases[] = {
        {"rs1", 3, 8, 4}, {"rs2", 2, 4, 7}, {"rs3", 2, 8, 5}};
    for (int k = 0; k < 3; k++) {
        char key[64];
        int C = cases[k].C, Hi = cases[k].Hin, Ho = cases[k].Hout;
        size_t ni = (size_t)C * Hi * Hi, no = (size_t)C * Ho * Ho;
        snprintf(key, sizeof key, "%s.x", cases[k].name);
        float *x = getf(key, NULL);
        snprintf(key, sizeof key, "%s.r", cases[k].name);
        float *r = getf(key, NULL);
        snprintf(key, sizeof key, "%s.out", cases[k].name);
        double *ref = getd(key, NULL);
        snprintf(key, sizeof key, "%s.grad", cases[k].name);
        double *gref = getd(key, NULL);
        float *xc = malloc(sizeof(float) * ni), *rc = malloc(sizeof(float) * no);
        float *oc = malloc(sizeof(float) * no), *gc = calloc(ni, sizeof(float));
        double *refc = malloc(sizeof(double) * no), *grefc = malloc(sizeof(double) * ni);
        to_cl(xc, x, C, Hi, Hi);
        to_cl(rc, r, C, Ho, Ho);
        for (int c = 0; c < C; c++) {
            for (int p = 0; p < Ho * Ho; p++) refc[(size_t)p * C + c] = ref[(size_t)c * Ho * Ho + p];
            for (int p = 0; p < Hi * Hi; p++) grefc[(size_t)p * C + c] = gref[(size_t)c * Hi * Hi + p];
        }
        h_resize_bicubic(oc, xc, 1, Hi, Hi, Ho, Ho, C);
        /* inputs are N(0,1): relative error with a floor of 1 (the data scale),
         * so entries that happen to be near 0 are judged by absolute error */
        double e = max_rel_fd(oc, refc, no, 1.0);
        CHECK(e <= TOL_LOSS, "%s resize vs F.interpolate: %.3g", cases[k].name, e);
        h_resize_bicubic_backward(gc, rc, 1, Hi, Hi, Ho, Ho, C);
        double eg = max_rel_fd(gc, grefc, ni, 1.0);
        CHECK(eg <= TOL_GRAD, "%s resize backward vs autograd: %.3g", cases[k].name, eg);
        printf("  %s %dx%d -> %dx%d: out rel err %.2e, backward %.2e\n", cases[k].name, Hi, Hi,
               Ho, Ho, e, eg);

        /* double: to 1e-10, and backward = exact adjoint: <A x, r> == <x, A^T r> */
        double *xd = f2d(xc, ni), *rd = f2d(rc, no), *od = malloc(sizeof(double) * no);
        double *gd = calloc(ni, sizeof(double));
        dx_cpu_resize_bicubic_f64(od, xd, 1, Hi, Hi, Ho, Ho, C);
        CHECK(max_rel_d(od, refc, no, 1e-3) <= TOL_D, "%s double resize", cases[k].name);
        dx_cpu_resize_bicubic_backward_f64(gd, rd, 1, Hi, Hi, Ho, Ho, C);
        double a = 0, b = 0;
        for (size_t i = 0; i < no; i++) a += od[i] * rd[i];
        for (size_t i = 0; i < ni; i++) b += xd[i] * gd[i];
        CHECK_CLOSE(a, b, 1e-12, 1e-12, "resize adjoint identity");
        free(x), free(r), free(ref), free(gref), free(xc), free(rc), free(oc), free(gc), free(refc),
            free(grefc), free(xd), free(rd), free(od), free(gd);
    }
    /* identity size: bicubic at t = 0 reproduces the input */
    {
        float in[2 * 5 * 5], out[2 * 5 * 5];
        for (int i = 0; i < 50; i++) in[i] = (float)sin(i * 0.7);
        h_resize_bicubic(out, in, 2, 5, 1, 5, 1, 5);
        CHECK(dx_max_rel_err(out, in, 50, 1e-6) <= 1e-6, "same-size resize is the identity");
    }
}

/* ---- L2 normalisation (case 20, head part) ------------------------------------ */

typedef struct {
    const double *dout;
    int M, D;
} l2_ctx;

static double l2_f(const double *x, void *v) {
    l2_ctx *c = v;
    size_t n = (size_t)c->M * c->D;
    double *o = malloc(sizeof(double) * n), s = 0;
    dx_cpu_l2norm_forward_f64(o, x, c->M, c->D, 1e-12);
    for (size_t i = 0; i < n; i++) s += o[i] * c->dout[i];
    free(o);
    return s;
}

static void test_l2norm(void) {
    size_t n;
    float *x = getf("l2n.x", &n), *dout = getf("l2n.dout", NULL);
    double *ref = getd("l2n.out", NULL), *gref = getd("l2n.grad", NULL);
    int M = 5, D = 16;
    float *out = malloc(sizeof(float) * n), *dx = calloc(n, sizeof(float));
    h_l2norm_forward(out, x, M, D, 1e-12f);
    h_l2norm_backward(dx, x, dout, M, D, 1e-12f);
    /* row 3 is below eps: out = x / 1e-12, gradient dout / 1e-12 (large, relative check) */
    CHECK(max_rel_fd(out, ref, n, 1e-6) <= TOL_LOSS, "l2norm forward vs torch");
    CHECK(max_rel_fd(dx, gref, n, 1e-6) <= TOL_GRAD, "l2norm backward vs torch: %.3g",
          max_rel_fd(dx, gref, n, 1e-6));
    double *xd = f2d(x, n), *dd = f2d(dout, n), *gd = calloc(n, sizeof(double));
    dx_cpu_l2norm_backward_f64(gd, xd, dd, M, D, 1e-12);
    CHECK(max_rel_d(gd, gref, n, 1e-12) <= TOL_D, "l2norm backward (double)");
    /* FD on the rows above eps (row 3's scale 1e-14 is below any useful h) */
    l2_ctx c = {.dout = dd, .M = 3, .D = D};
    check_fd("l2norm", l2_f, &c, xd, gd, (size_t)3 * D);
    free(x), free(dout), free(ref), free(gref), free(out), free(dx), free(xd), free(dd), free(gd);
}

/* ---- realistic sizes: fp32 ops vs the double kernels ----------------------- */

/* K = 65536 prototypes, logits up to ~+-20 (x 1/temp = 200 for the student,
 * 500 for the teacher's SK at temp 0.04): the fp32 path (vectorised exp,
 * exponents (x - max)/temp) stays within the fixture tolerances of the
 * double-precision kernels. */
static void test_large(void) {
    int N = 8, K = 65536;
    size_t NK = (size_t)N * K;
    float *s = malloc(sizeof(float) * NK), *z = malloc(sizeof(float) * NK);
    float *t = malloc(sizeof(float) * NK), *g = calloc(NK, sizeof(float));
    double *sd = malloc(sizeof(double) * NK), *zd = malloc(sizeof(double) * NK);
    double *td = malloc(sizeof(double) * NK), *gd = calloc(NK, sizeof(double));
    dx_rng r;
    dx_rng_init(&r, 3, DX_RNG_TEST, 1, 0);
    for (size_t i = 0; i < NK; i++) {
        s[i] = (float)(6 * dx_rng_normal(&r));
        z[i] = (float)(6 * dx_rng_normal(&r));
        sd[i] = s[i], zd[i] = z[i];
    }
    h_sinkhorn_knopp(t, z, N, K, 0.04f, 3);
    dx_cpu_sinkhorn_knopp_f64(td, zd, N, K, 0.04, 3);
    double e = max_rel_fd(t, td, NK, 1e-8);
    CHECK(e <= TOL_GRAD, "SK 8 x 65536, temp 0.04: fp32 vs double %.3g", e);
    /* both CEs use the double targets rounded to float, so only the CE differs */
    for (size_t i = 0; i < NK; i++) t[i] = (float)td[i], td[i] = t[i];
    double L = h_ce_forward(NULL, s, t, NULL, N, K, 0.1f);
    double Ld = dx_cpu_ce_forward_f64(NULL, sd, td, NULL, N, K, 0.1);
    CHECK_CLOSE(L, Ld, 0, TOL_LOSS, "CE 8 x 65536 fp32 vs double");
    h_ce_backward(g, s, t, NULL, N, K, 0.1f, 1.0f);
    dx_cpu_ce_backward_f64(gd, sd, td, NULL, N, K, 0.1, 1.0);
    double eg = grad_err(g, gd, NK);
    CHECK(eg <= TOL_GRAD, "CE gradient 8 x 65536 fp32 vs double %.3g", eg);
    printf("  8 x 65536: SK fp32 rel err %.2e, CE %.9g vs %.9g, gradient %.2e\n", e, L, Ld, eg);
    free(s), free(z), free(t), free(g), free(sd), free(zd), free(td), free(gd);
}

/* ---- thread-count independence ------------------------------------------ */

/* SK, CE and DINO on sizes above the kernels' parallel thresholds give the
 * same bits with 1 and 2 threads (row partials are added in row order). */
static void test_threads(void) {
    int N = 48, K = 4096;
    size_t NK = (size_t)N * K;
    float *z = malloc(sizeof(float) * NK), *t = malloc(sizeof(float) * NK);
    float *o1 = malloc(sizeof(float) * NK), *o2 = malloc(sizeof(float) * NK);
    float *g1 = calloc(NK, sizeof(float)), *g2 = calloc(NK, sizeof(float));
    for (size_t i = 0; i < NK; i++) z[i] = (float)(3 * sin(0.001 * i * i + 0.3 * i));
    double l1[3], l2[3];
    for (int pass = 0; pass < 2; pass++) {
        omp_set_num_threads(pass ? 2 : 1);
        float *o = pass ? o2 : o1, *g = pass ? g2 : g1;
        double *l = pass ? l2 : l1;
        h_sinkhorn_knopp(o, z, N, K, 0.04f, 3);
        memcpy(t, o, sizeof(float) * NK);
        l[0] = h_ce_forward(NULL, z, t, NULL, N, K, 0.1f);
        l[1] = h_dino_forward(z, 2, t, 2, N / 2, K, 0.1f, 1);
        l[2] = h_dino_forward(z, 4, t, 2, N / 4, K, 0.1f, 0);
        h_ce_backward(g, z, t, NULL, N, K, 0.1f, 1.0f);
        h_dino_backward(g, z, 2, t, 2, N / 2, K, 0.1f, 1, 0.5f);
    }
    omp_set_num_threads(2);
    CHECK(memcmp(o1, o2, sizeof(float) * NK) == 0, "SK: 1 and 2 threads differ");
    CHECK(l1[0] == l2[0] && l1[1] == l2[1] && l1[2] == l2[2], "losses: 1 and 2 threads differ");
    CHECK(memcmp(g1, g2, sizeof(float) * NK) == 0, "gradients: 1 and 2 threads differ");
    free(z), free(t), free(o1), free(o2), free(g1), free(g2);
}

int main(void) {
    char path[4096];
    dx_err err;
    /* DINOX_FIXTURE_DIR: CI's freshly regenerated fixtures (label `parity`) */
    const char *fd = getenv("DINOX_FIXTURE_DIR");
    if (fd)
        snprintf(path, sizeof path, "%s/loss_objective.safetensors", fd);
    else
        dx_test_path(path, sizeof path, "tests/fixtures/loss_objective.safetensors");
    if (dx_st_open(&ST, path, &err)) {
        fprintf(stderr, "open %s: %s\n", path, err.msg);
        return 1;
    }
    if (dx_backend_create(&BE, &(dx_backend_params){.nthreads = 2}, &err)) {
        fprintf(stderr, "backend: %s\n", err.msg);
        return 1;
    }
    if (dx_cpu_backend_create(&CPU, &(dx_backend_params){.nthreads = 2}, &err)) {
        fprintf(stderr, "cpu backend: %s\n", err.msg);
        return 1;
    }
    CHECK(CPU->loss == dx_cpu_loss_ops(), "the CPU backend installs the CPU loss ops");
    if (!BE->loss) return dx_test_summary();
    test_sinkhorn();
    test_ce();
    test_dino_ibot();
    test_koleo();
    test_gram();
    test_resize();
    test_l2norm();
    test_large();
    test_threads();
    dx_backend_destroy(BE);
    dx_backend_destroy(CPU);
    dx_st_close(&ST);
    return dx_test_summary();
}
