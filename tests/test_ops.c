/* test_ops.c - the CPU backend's non-GEMM ops.
 *
 * (a) every op's double backward (cpu_kernels.inc, _f64) against central
 *     finite differences of the double forward, for L = sum(out * R) with a
 *     random R; gradients start from random values so the += contract is
 *     checked too;
 * (b) the float ops through the ops table against the double results now live
 *     in tests/test_backend_ops.c (the same sizes and more, on every backend
 *     of the registry); kept here: the loop-form float attention kernel
 *     (dx_cpu_attention_*_f32, not an ops-table entry) against the double one;
 * (c) specific properties: RoPE tables = formula and known values, RoPE keeps
 *     pair norms, attention = a naive reference, masked k-bias gets no
 *     gradient, the residual subset leaves other samples alone, AdamW = a hand
 *     computation of PyTorch's formula, the fast erf/exp accuracy.
 * Every ops-table call gets backend memory (alloc + upload, download to
 * check), so (c) runs unchanged against any backend; the double kernels and
 * the loop-form float attention are called directly on host memory. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/cpu_math.h"
#include "core/dx_rng.h"
#include "dx_test.h"

/* ---- sizes: odd on purpose ---- */
enum { M_ = 7, C_ = 13, NB = 2, T_ = 9, H_ = 3, DH = 8, PRE = 3, F_ = 11 };

static dx_backend *be;
static dx_rng rng;

static double *dnew(size_t n) { return calloc(n ? n : 1, sizeof(double)); }
static float *fnew(size_t n) { return calloc(n ? n : 1, sizeof(float)); }
static void drand(double *x, size_t n, double s) {
    for (size_t i = 0; i < n; i++) x[i] = s * dx_rng_normal(&rng);
}
static float *tof(const double *x, size_t n) {
    float *f = fnew(n);
    for (size_t i = 0; i < n; i++) f[i] = (float)x[i];
    return f;
}
/* max |a-b| / max(|b|, floor) with a float, b double */
static double relerr_fd(const float *a, const double *b, size_t n, double floor) {
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]), den = fabs(b[i]) > floor ? fabs(b[i]) : floor;
        if (!isfinite(a[i])) return INFINITY;
        if (d / den > w) w = d / den;
    }
    return w;
}

/* ---- backend memory: every ops-table call gets it ---- */
static float *dev(const float *h, size_t n) { /* alloc + upload */
    float *d = be->ops->alloc(be, sizeof(float) * (n ? n : 1));
    if (!d) abort();
    be->ops->upload(be, d, h, sizeof(float) * n);
    return d;
}
static float *devz(size_t n) { /* zero-filled */
    float *d = be->ops->alloc(be, sizeof(float) * (n ? n : 1));
    if (!d) abort();
    return d;
}
static void *devb(const void *h, size_t bytes) {
    void *d = be->ops->alloc(be, bytes ? bytes : 1);
    if (!d) abort();
    be->ops->upload(be, d, h, bytes);
    return d;
}
static void get(float *h, const float *d, size_t n) { be->ops->download(be, h, d, sizeof(float) * n); }
static void put(float *d, const float *h, size_t n) { be->ops->upload(be, d, h, sizeof(float) * n); }
static void dfree(void *d) { be->ops->free(be, d); }

/* ---- generic op case --------------------------------------------------------
 * in[k] (len[k], diff[k]: whether FD-checked), one output of nout. */
#define MAXIN 6
typedef struct op_case {
    const char *name;
    int nin;
    size_t len[MAXIN];
    int diff[MAXIN];
    size_t nout;
    void (*fwd64)(double **in, double *out);
    void (*bwd64)(double **in, const double *dout, double **gin); /* accumulates */
    double scale[MAXIN]; /* input std (0 -> 1) */
} op_case;

static double loss(const op_case *c, double **in, const double *R, double *out) {
    memset(out, 0, sizeof(double) * c->nout);
    c->fwd64(in, out);
    double L = 0;
    for (size_t i = 0; i < c->nout; i++) L += out[i] * R[i];
    return L;
}

static void run_case(const op_case *c) {
    double *in[MAXIN] = {0}, *g0[MAXIN] = {0}, *g[MAXIN] = {0};
    for (int k = 0; k < c->nin; k++) {
        in[k] = dnew(c->len[k]);
        drand(in[k], c->len[k], c->scale[k] ? c->scale[k] : 1.0);
        g0[k] = dnew(c->len[k]);
        drand(g0[k], c->len[k], 1.0);
        g[k] = dnew(c->len[k]);
        memcpy(g[k], g0[k], sizeof(double) * c->len[k]);
    }
    double *out = dnew(c->nout), *R = dnew(c->nout);
    drand(R, c->nout, 1.0);
    loss(c, in, R, out);
    c->bwd64(in, R, g);
    /* (a) FD */
    double worst = 0;
    int nchecked = 0;
    for (int k = 0; k < c->nin; k++) {
        if (!c->diff[k]) continue;
        for (size_t j = 0; j < c->len[k]; j++) {
            double x0 = in[k][j], h = 1e-6 * (1.0 + fabs(x0));
            in[k][j] = x0 + h;
            double lp = loss(c, in, R, out);
            in[k][j] = x0 - h;
            double lm = loss(c, in, R, out);
            in[k][j] = x0;
            double fd = (lp - lm) / (2 * h), an = g[k][j] - g0[k][j];
            double e = fabs(fd - an) / (1.0 + fabs(an));
            if (e > worst) worst = e;
            nchecked++;
        }
    }
    CHECK(nchecked > 0 && worst <= 1e-6, "%s: FD max err %.3g over %d entries", c->name, worst, nchecked);
    printf("%-22s FD  max err %.2e (%d entries)\n", c->name, worst, nchecked);
    for (int k = 0; k < c->nin; k++) {
        free(in[k]); free(g0[k]); free(g[k]);
    }
    free(out); free(R);
}

/* ---- bias (with a mask) ---- */
static double bias_mask64[C_];
static void bias_f64(double **in, double *out) {
    memcpy(out, in[0], sizeof(double) * M_ * C_);
    dx_cpu_bias_forward_f64(out, in[1], bias_mask64, M_, C_);
}
static void bias_b64(double **in, const double *d, double **g) {
    for (int i = 0; i < M_ * C_; i++) g[0][i] += d[i];
    dx_cpu_bias_backward_f64(g[1], d, bias_mask64, M_, C_);
}

/* ---- layernorm ---- */
static void ln_f64(double **in, double *out) {
    double mean[M_], rstd[M_];
    dx_cpu_layernorm_forward_f64(out, mean, rstd, in[0], in[1], in[2], M_, C_, 1e-5);
}
static void ln_b64(double **in, const double *d, double **g) {
    double mean[M_], rstd[M_], tmp[M_ * C_];
    dx_cpu_layernorm_forward_f64(tmp, mean, rstd, in[0], in[1], in[2], M_, C_, 1e-5);
    dx_cpu_layernorm_backward_f64(g[0], g[1], g[2], d, in[0], in[1], mean, rstd, M_, C_);
}

/* ---- gelu ---- */
static void gelu_f64(double **in, double *out) { dx_cpu_gelu_forward_f64(out, in[0], M_ * C_); }
static void gelu_b64(double **in, const double *d, double **g) {
    dx_cpu_gelu_backward_f64(g[0], in[0], d, M_ * C_);
}

/* ---- swiglu ---- */
static void swi_f64(double **in, double *out) { dx_cpu_swiglu_forward_f64(out, in[0], M_, F_); }
static void swi_b64(double **in, const double *d, double **g) {
    dx_cpu_swiglu_backward_f64(g[0], in[0], d, M_, F_);
}

/* ---- softmax (scale 0.7) ---- */
static void sm_f64(double **in, double *out) { dx_cpu_softmax_forward_f64(out, in[0], M_, C_, 0.7); }
static void sm_b64(double **in, const double *d, double **g) {
    double out[M_ * C_];
    dx_cpu_softmax_forward_f64(out, in[0], M_, C_, 0.7);
    dx_cpu_softmax_backward_f64(g[0], out, d, M_, C_, 0.7);
}

/* ---- attention ---- */
#define QKV_N ((size_t)NB * T_ * 3 * H_ * DH)
#define ATT_N ((size_t)NB * H_ * T_ * T_)
#define AO_N ((size_t)NB * T_ * H_ * DH)
#define LSE_N ((size_t)NB * H_ * T_)
static const double att_scale = 0.35355339059327373; /* 1/sqrt(8) */
static void att_f64(double **in, double *out) {
    dx_cpu_attention_forward_f64(out, NULL, NULL, in[0], NB, T_, H_, DH, att_scale);
}
/* backward from the row statistics alone: the forward keeps no probabilities */
static void att_b64(double **in, const double *d, double **g) {
    double *lse = dnew(LSE_N), *out = dnew(AO_N);
    dx_cpu_attention_forward_f64(out, NULL, lse, in[0], NB, T_, H_, DH, att_scale);
    dx_cpu_attention_backward_f64(g[0], d, in[0], out, lse, NB, T_, H_, DH, att_scale);
    free(lse); free(out);
}

/* ---- rope (tables are inputs 1, 2: not differentiated) ---- */
#define ROPE_P (T_ - PRE)
static void rope_f64(double **in, double *out) {
    memcpy(out, in[0], sizeof(double) * QKV_N);
    dx_cpu_rope_forward_f64(out, in[1], in[2], NB, T_, H_, DH, PRE);
}
static void rope_b64(double **in, const double *d, double **g) {
    double *t = dnew(QKV_N);
    memcpy(t, d, sizeof(double) * QKV_N);
    dx_cpu_rope_backward_f64(t, in[1], in[2], NB, T_, H_, DH, PRE);
    for (size_t i = 0; i < QKV_N; i++) g[0][i] += t[i];
    free(t);
}

/* ---- residual with subset: nsamples 5, k 3, idx {4, 0, 2}, scale 5/3 ---- */
enum { RS_N = 5, RS_K = 3, RS_T = 4 };
static const int32_t rs_idx[RS_K] = {4, 0, 2};
static const double rs_scale = 5.0 / 3.0;
static void res_f64(double **in, double *out) {
    dx_cpu_residual_forward_f64(out, in[0], in[1], in[2], rs_idx, RS_N, RS_K, RS_T, C_, rs_scale);
}
static void res_b64(double **in, const double *d, double **g) {
    dx_cpu_residual_backward_f64(g[0], g[1], g[2], d, in[1], in[2], rs_idx, RS_N, RS_K, RS_T, C_, rs_scale);
}

/* ---- gather rows / scatter_add (repeated index on purpose) ---- */
enum { GR_N = 5, GR_K = 4, GR_ROW = 6 };
static const int32_t gr_idx[GR_K] = {3, 1, 3, 0};
static void gat_f64(double **in, double *out) { dx_cpu_gather_rows_f64(out, in[0], gr_idx, GR_K, GR_ROW); }
static void gat_b64(double **in, const double *d, double **g) {
    dx_cpu_scatter_add_rows_f64(g[0], d, gr_idx, GR_K, GR_ROW);
}

/* ---- im2col / col2im: N 2, Cin 3, H 7, W 9, p 3 (W remainder cropped: Wp 3) ---- */
enum { IC_N = 2, IC_C = 3, IC_H = 7, IC_W = 10, IC_P = 3 };
#define IC_COLS ((size_t)IC_N * (IC_H / IC_P) * (IC_W / IC_P) * IC_C * IC_P * IC_P)
static void i2c_f64(double **in, double *out) { dx_cpu_im2col_f64(out, in[0], IC_N, IC_C, IC_H, IC_W, IC_P); }
static void i2c_b64(double **in, const double *d, double **g) {
    dx_cpu_col2im_f64(g[0], d, IC_N, IC_C, IC_H, IC_W, IC_P);
}

/* ---- tokens: N 2, P 5, R 2, D 4; mask marks 2 patches ---- */
enum { TK_N = 2, TK_P = 5, TK_R = 2, TK_D = 4 };
static const uint8_t tk_mask[TK_N * TK_P] = {0, 1, 0, 0, 0, 1, 0, 0, 0, 1};
static void tok_f64(double **in, double *out) {
    dx_cpu_tokens_forward_f64(out, in[0], in[1], in[2], in[3], tk_mask, TK_N, TK_P, TK_R, TK_D);
}
static void tok_b64(double **in, const double *d, double **g) {
    dx_cpu_tokens_backward_f64(g[0], g[1], g[2], g[3], d, tk_mask, TK_N, TK_P, TK_R, TK_D);
}

/* ---- property checks ---- */

static void test_rope_tables(void) {
    const int Hp = 3, Wp = 4, Dh = 8, q4 = Dh / 4, P = Hp * Wp;
    double periods[2];
    for (int j = 0; j < q4; j++) periods[j] = pow(100.0, 4.0 * j / Dh);
    CHECK_CLOSE(periods[1], 10.0, 0, 1e-15, "period_1 = 100^(4/8)");
    double sy = 0.1, sx = -0.2, ky = 1.7, kx = 0.6;
    double *s = dnew(P * Dh), *c = dnew(P * Dh);
    dx_cpu_rope_tables_f64(s, c, periods, Hp, Wp, Dh, sy, sx, ky, kx);
    double worst = 0;
    for (int p = 0; p < P; p++) {
        int y = p / Wp, x = p % Wp;
        double cy = (((y + 0.5) / Hp) * 2 - 1 + sy) * ky, cx = (((x + 0.5) / Wp) * 2 - 1 + sx) * kx;
        for (int i = 0; i < Dh; i++) {
            int j = i % (Dh / 2);
            double ang = j < q4 ? 2 * M_PI * cy / periods[j] : 2 * M_PI * cx / periods[j - q4];
            worst = fmax(worst, fabs(s[p * Dh + i] - sin(ang)));
            worst = fmax(worst, fabs(c[p * Dh + i] - cos(ang)));
        }
    }
    CHECK(worst < 1e-14, "rope tables vs formula: %.3g", worst);
    /* known value, no augmentation: 2x2 grid, patch 0 has cy = -0.5 -> angle -pi for period 1 */
    double s2[4 * 8], c2[4 * 8];
    dx_cpu_rope_tables_f64(s2, c2, periods, 2, 2, 8, 0, 0, 1, 1);
    CHECK_CLOSE(c2[0], -1.0, 1e-15, 0, "cos(-pi)");
    CHECK_CLOSE(s2[0], 0.0, 1e-15, 0, "sin(-pi)");
    /* patch 3 (y=1, x=1): cx = 0.5, period_1 = 10 -> angle pi/10 at dims 3 and 7 */
    CHECK_CLOSE(s2[3 * 8 + 3], sin(M_PI / 10), 1e-15, 0, "x-angle with period 10");
    CHECK_CLOSE(s2[3 * 8 + 7], sin(M_PI / 10), 1e-15, 0, "tiled copy");
    /* float backend tables */
    float fp[2] = {(float)periods[0], (float)periods[1]}, *fs = fnew(P * Dh), *fc = fnew(P * Dh);
    float *dp = dev(fp, 2), *ds = devz(P * Dh), *dc = devz(P * Dh);
    be->ops->rope_tables(be, ds, dc, dp, Hp, Wp, Dh, (float)sy, (float)sx, (float)ky, (float)kx);
    get(fs, ds, P * Dh), get(fc, dc, P * Dh);
    dfree(dp), dfree(ds), dfree(dc);
    double e = fmax(relerr_fd(fs, s, P * Dh, 1.0), relerr_fd(fc, c, P * Dh, 1.0));
    CHECK(e < 1e-6, "f32 rope tables: %.3g", e);
    free(s); free(c); free(fs); free(fc);
}

static void test_rope_norms(void) {
    double periods[2] = {1.0, 10.0};
    double *s = dnew(ROPE_P * DH), *c = dnew(ROPE_P * DH), *x = dnew(QKV_N), *y = dnew(QKV_N);
    dx_cpu_rope_tables_f64(s, c, periods, 2, 3, DH, 0.05, 0.0, 1.3, 1.3);
    drand(x, QKV_N, 1.0);
    memcpy(y, x, sizeof(double) * QKV_N);
    dx_cpu_rope_forward_f64(y, s, c, NB, T_, H_, DH, PRE);
    double worst = 0, moved = 0, prefix_change = 0;
    for (int n = 0; n < NB; n++)
        for (int t = 0; t < T_; t++)
            for (int part = 0; part < 3; part++)
                for (int h = 0; h < H_; h++)
                    for (int i = 0; i < DH / 2; i++) {
                        size_t o = (((size_t)n * T_ + t) * 3 + part) * H_ * DH + h * DH;
                        double a = x[o + i] * x[o + i] + x[o + i + DH / 2] * x[o + i + DH / 2];
                        double b = y[o + i] * y[o + i] + y[o + i + DH / 2] * y[o + i + DH / 2];
                        worst = fmax(worst, fabs(a - b));
                        double ch = fabs(x[o + i] - y[o + i]);
                        if (t < PRE || part == 2) prefix_change = fmax(prefix_change, ch);
                        else moved = fmax(moved, ch);
                    }
    CHECK(worst < 1e-12, "rope pair norms preserved: %.3g", worst);
    CHECK(prefix_change == 0, "prefix tokens and v untouched: %.3g", prefix_change);
    CHECK(moved > 1e-3, "patch q/k rotated: %.3g", moved);
    free(s); free(c); free(x); free(y);
}

static void test_attention_naive(void) {
    double *qkv = dnew(QKV_N), *out = dnew(AO_N), *att = dnew(ATT_N), *ref = dnew(AO_N), *lse = dnew(LSE_N);
    double *lse_ref = dnew(LSE_N);
    drand(qkv, QKV_N, 1.0);
    dx_cpu_attention_forward_f64(out, att, lse, qkv, NB, T_, H_, DH, att_scale);
    /* naive: explicit q, k, v indexing, softmax with exp */
    for (int n = 0; n < NB; n++)
        for (int h = 0; h < H_; h++)
            for (int i = 0; i < T_; i++) {
                double sc[T_], mx = -1e300, sum = 0;
                for (int j = 0; j < T_; j++) {
                    double dot = 0;
                    for (int d = 0; d < DH; d++)
                        dot += qkv[(((size_t)n * T_ + i) * 3 + 0) * H_ * DH + h * DH + d] *
                               qkv[(((size_t)n * T_ + j) * 3 + 1) * H_ * DH + h * DH + d];
                    sc[j] = dot * att_scale;
                    mx = fmax(mx, sc[j]);
                }
                for (int j = 0; j < T_; j++) sum += (sc[j] = exp(sc[j] - mx));
                lse_ref[((size_t)n * H_ + h) * T_ + i] = mx + log(sum);
                for (int d = 0; d < DH; d++) {
                    double o = 0;
                    for (int j = 0; j < T_; j++)
                        o += sc[j] / sum * qkv[(((size_t)n * T_ + j) * 3 + 2) * H_ * DH + h * DH + d];
                    ref[((size_t)n * T_ + i) * H_ * DH + h * DH + d] = o;
                }
            }
    double w = 0;
    for (size_t i = 0; i < AO_N; i++) w = fmax(w, fabs(out[i] - ref[i]));
    CHECK(w < 1e-13, "f64 attention vs naive: %.3g", w);
    double wl = 0;
    for (size_t i = 0; i < LSE_N; i++) wl = fmax(wl, fabs(lse[i] - lse_ref[i]));
    CHECK(wl < 1e-13, "f64 attention lse vs naive: %.3g", wl);
    float *fq = tof(qkv, QKV_N), *fo = fnew(AO_N), *fa = fnew(ATT_N), *fo2 = fnew(AO_N), *fl = fnew(LSE_N);
    {
        float *dq = dev(fq, QKV_N), *dout = devz(AO_N), *datt = devz(ATT_N), *dl = devz(LSE_N);
        be->ops->attention_forward(be, dout, datt, dl, dq, NB, T_, H_, DH, (float)att_scale);
        get(fo, dout, AO_N), get(fa, datt, ATT_N), get(fl, dl, LSE_N);
        dfree(dq), dfree(dout), dfree(datt), dfree(dl);
    }
    double e1 = relerr_fd(fo, ref, AO_N, 1.0), ea = relerr_fd(fa, att, ATT_N, 1.0);
    double el = relerr_fd(fl, lse_ref, LSE_N, 1.0);
    dx_cpu_attention_forward_f32(fo2, fa, NULL, fq, NB, T_, H_, DH, (float)att_scale);
    double e2 = relerr_fd(fo2, ref, AO_N, 1.0);
    CHECK(e1 < 1e-5 && ea < 1e-5 && el < 1e-5, "backend attention vs naive: out %.3g att %.3g lse %.3g", e1, ea, el);
    CHECK(e2 < 1e-5, "loop attention (f32) vs naive: %.3g", e2);
    /* rows of att are probabilities */
    double rs = 0;
    for (int r = 0; r < NB * H_ * T_; r++) {
        double s = 0;
        for (int j = 0; j < T_; j++) s += fa[(size_t)r * T_ + j];
        rs = fmax(rs, fabs(s - 1));
    }
    CHECK(rs < 1e-6, "attention rows sum to 1: %.3g", rs);
    free(qkv); free(out); free(att); free(ref); free(fq); free(fo); free(fa); free(fo2);
    free(lse); free(lse_ref); free(fl);
}

static void test_kbias_mask(void) {
    /* qkv bias of size 3*D with the k third masked (DINOv3 mask_k_bias) */
    enum { D = 6, N3 = 18, MR = 5 };
    float mask[N3], b[N3], y[MR * N3] = {0}, dy[MR * N3], db[N3] = {0};
    for (int i = 0; i < N3; i++) {
        mask[i] = (i >= D && i < 2 * D) ? 0.0f : 1.0f;
        b[i] = 0.5f + i;
    }
    for (int i = 0; i < MR * N3; i++) dy[i] = (float)dx_rng_normal(&rng);
    float *d_mask = dev(mask, N3), *d_b = dev(b, N3), *d_y = dev(y, MR * N3), *d_dy = dev(dy, MR * N3);
    float *d_db = dev(db, N3);
    be->ops->bias_forward(be, d_y, d_b, d_mask, MR, N3);
    be->ops->bias_backward(be, d_db, d_dy, d_mask, MR, N3);
    get(y, d_y, MR * N3), get(db, d_db, N3);
    dfree(d_mask), dfree(d_b), dfree(d_y), dfree(d_dy), dfree(d_db);
    int ok_fwd = 1, ok_bwd = 1;
    for (int m = 0; m < MR; m++)
        for (int i = 0; i < N3; i++) ok_fwd &= y[m * N3 + i] == (mask[i] ? b[i] : 0.0f);
    for (int i = 0; i < N3; i++) {
        double s = 0;
        for (int m = 0; m < MR; m++) s += dy[m * N3 + i];
        if (!mask[i]) ok_bwd &= db[i] == 0.0f;
        else ok_bwd &= fabs(db[i] - s) < 1e-5;
    }
    CHECK(ok_fwd, "masked k-bias not added");
    CHECK(ok_bwd, "masked k-bias gets zero gradient, others the column sum");
}

static void test_residual_subset(void) {
    enum { n = RS_N * RS_T * C_, ny = RS_K * RS_T * C_ };
    float x[n], y[ny], gam[C_], out[n];
    for (int i = 0; i < n; i++) x[i] = (float)dx_rng_normal(&rng);
    for (int i = 0; i < ny; i++) y[i] = (float)dx_rng_normal(&rng);
    for (int i = 0; i < C_; i++) gam[i] = (float)dx_rng_normal(&rng);
    float sc = 5.0f / 3.0f;
    float *d_x = dev(x, n), *d_y = dev(y, ny), *d_g = dev(gam, C_), *d_out = devz(n);
    int32_t *d_idx = devb(rs_idx, sizeof rs_idx);
    be->ops->residual_forward(be, d_out, d_x, d_y, d_g, d_idx, RS_N, RS_K, RS_T, C_, sc);
    get(out, d_out, n);
    int untouched = 1;
    double w = 0;
    for (int s = 0; s < RS_N; s++) {
        int i = -1;
        for (int q = 0; q < RS_K; q++)
            if (rs_idx[q] == s) i = q;
        for (int e = 0; e < RS_T * C_; e++) {
            size_t o = (size_t)s * RS_T * C_ + e;
            if (i < 0) untouched &= out[o] == x[o];
            else w = fmax(w, fabs(out[o] - (x[o] + sc * gam[e % C_] * y[(size_t)i * RS_T * C_ + e])));
        }
    }
    CHECK(untouched, "samples 1 and 3 (not in idx) unchanged");
    CHECK(w < 1e-5, "selected samples get x + scale*gamma*y: %.3g", w);
    /* in place (out aliases x) gives the same */
    float x2[n];
    be->ops->residual_forward(be, d_x, d_x, d_y, d_g, d_idx, RS_N, RS_K, RS_T, C_, sc);
    get(x2, d_x, n);
    CHECK(memcmp(x2, out, sizeof x2) == 0, "in-place residual matches");
    dfree(d_x), dfree(d_y), dfree(d_g), dfree(d_out), dfree(d_idx);
}

/* PyTorch 1.13 AdamW single-tensor step, written op by op */
static void adamw_hand(float *p, const float *g, float *m, float *v, int n, double lr, double b1,
                       double b2, double eps, double wd, int t) {
    for (int i = 0; i < n; i++) {
        float pi = p[i] * (float)(1.0 - lr * wd);
        float mi = fmaf(g[i], (float)(1.0 - b1), m[i] * (float)b1);
        float vi = fmaf((float)(1.0 - b2) * g[i], g[i], v[i] * (float)b2);
        double bc1 = 1.0 - pow(b1, t), bc2 = 1.0 - pow(b2, t);
        float den = sqrtf(vi) / (float)sqrt(bc2) + (float)eps;
        p[i] = pi + ((float)(-(lr / bc1)) * mi) / den;
        m[i] = mi;
        v[i] = vi;
    }
}

/* PyTorch 1.13 reference: torch.optim.AdamW(foreach=False) with lr, betas,
 * eps, weight_decay equal to the float values 1e-3f, 0.9f, 0.999f, 1e-8f,
 * 0.04f (passed to torch as the doubles those floats are, so both sides
 * derive the same constants), p0[i] = ((37 i) mod 101 - 50)/64,
 * g_t[i] = ((13 i + 7 t) mod 29 - 14)/128, after 3 steps. Generated once with
 * python3-torch; hex floats are exact. */
static const float torch_p[24] = {
    -0x1.8f24160000000p-1, -0x1.a48aa80000000p-3, 0x1.8240900000000p-2, -0x1.40ece00000000p-1,
    -0x1.6ac6760000000p-5, 0x1.0f29840000000p-1, -0x1.e11d380000000p-2, 0x1.c09d180000000p-4,
    0x1.5fac320000000p-1, -0x1.3ea63c0000000p-2, 0x1.0d92a40000000p-2, -0x1.76e5d00000000p-1,
    -0x1.4415b60000000p-3, 0x1.b281c20000000p-2, -0x1.28c6960000000p-1, -0x1.5e5e340000000p-10,
    0x1.27e1460000000p-1, -0x1.b0b7000000000p-2, 0x1.41e0020000000p-3, 0x1.77d90e0000000p-1,
    -0x1.0e14080000000p-2, 0x1.3dc6ea0000000p-2, -0x1.5ebc4a0000000p-1, -0x1.c712e20000000p-4,
};
static const float torch_m[24] = {
    0x1.1062580000000p-10, 0x1.8312700000000p-8, -0x1.5c28fc0000000p-8, -0x1.d2f1c00000000p-12,
    -0x1.7e35440000000p-7, 0x1.03d70e0000000p-6, 0x1.6041600000000p-12, 0x1.378d540000000p-7,
    -0x1.8a3d780000000p-8, 0x1.9db2340000000p-9, 0x1.06e97c0000000p-7, -0x1.a2d0e80000000p-9,
    0x1.b645a00000000p-10, -0x1.38d5020000000p-7, -0x1.32b0260000000p-8, 0x1.4189380000000p-9,
    0x1.7ced980000000p-7, -0x1.fef9e60000000p-9, 0x1.5999a00000000p-8, -0x1.4fdf400000000p-7,
    -0x1.1a9fc00000000p-10, 0x1.f0a3d80000000p-9, -0x1.e6e9800000000p-8, -0x1.4fdf400000000p-9,
};
static const float torch_v[24] = {
    0x1.91006c0000000p-18, 0x1.249d0c0000000p-16, 0x1.ff23460000000p-18, 0x1.02f2a60000000p-16,
    0x1.a51df20000000p-17, 0x1.f5a7380000000p-17, 0x1.03a9ee0000000p-16, 0x1.2aef3e0000000p-17,
    0x1.1319b00000000p-16, 0x1.9d64500000000p-18, 0x1.3c1c660000000p-16, 0x1.c1dfe80000000p-18,
    0x1.08082c0000000p-16, 0x1.61a8a40000000p-17, 0x1.0b31680000000p-16, 0x1.0acb3a0000000p-16,
    0x1.623b5c0000000p-17, 0x1.07d1280000000p-16, 0x1.c255480000000p-18, 0x1.3c14880000000p-16,
    0x1.9d299e0000000p-18, 0x1.1340fc0000000p-16, 0x1.2a79dc0000000p-17, 0x1.0400640000000p-16,
};

static void test_adamw_torch(void) {
    float p[24], m[24] = {0}, v[24] = {0}, g[24];
    for (int i = 0; i < 24; i++) p[i] = (float)((i * 37) % 101 - 50) / 64.0f;
    float *dp = dev(p, 24), *dm = dev(m, 24), *dv = dev(v, 24), *dg = devz(24);
    for (int t = 1; t <= 3; t++) {
        for (int i = 0; i < 24; i++) g[i] = (float)((i * 13 + t * 7) % 29 - 14) / 128.0f;
        put(dg, g, 24);
        be->ops->adamw(be, dp, dg, dm, dv, 24, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.04f, t);
    }
    get(p, dp, 24), get(m, dm, 24), get(v, dv, 24);
    dfree(dp), dfree(dm), dfree(dv), dfree(dg);
    int same = 1;
    double w = 0;
    for (int i = 0; i < 24; i++) {
        same &= p[i] == torch_p[i] && m[i] == torch_m[i] && v[i] == torch_v[i];
        w = fmax(w, fabs(p[i] - torch_p[i]) / fabs(torch_p[i]));
    }
    CHECK(same, "adamw bitwise equal to torch 1.13 AdamW over 3 steps (max rel diff of p %.3g)", w);
}

static void test_adamw(void) {
    enum { n = 1003 };
    static float p[n], m[n], v[n], g[n], p2[n], m2[n], v2[n];
    static double pd[n], md[n], vd[n];
    for (int i = 0; i < n; i++) pd[i] = p[i] = p2[i] = (float)dx_rng_normal(&rng);
    const float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.04f;
    int exact = 1;
    float *dp = dev(p, n), *dm = devz(n), *dv = devz(n), *dg = devz(n);
    for (int t = 1; t <= 3; t++) {
        for (int i = 0; i < n; i++) g[i] = (float)(0.1 * dx_rng_normal(&rng));
        put(dg, g, n);
        be->ops->adamw(be, dp, dg, dm, dv, n, lr, b1, b2, eps, wd, t);
        get(p, dp, n), get(m, dm, n), get(v, dv, n);
        adamw_hand(p2, g, m2, v2, n, lr, b1, b2, eps, wd, t);
        for (int i = 0; i < n; i++) {
            exact &= p[i] == p2[i] && m[i] == m2[i] && v[i] == v2[i];
            /* double-precision formula from the header */
            pd[i] -= (double)lr * wd * pd[i];
            md[i] = (double)b1 * md[i] + (1 - (double)b1) * g[i];
            vd[i] = (double)b2 * vd[i] + (1 - (double)b2) * g[i] * g[i];
            pd[i] -= lr * (md[i] / (1 - pow(b1, t))) / (sqrt(vd[i] / (1 - pow(b2, t))) + eps);
        }
    }
    dfree(dp), dfree(dm), dfree(dv), dfree(dg);
    CHECK(exact, "adamw bitwise equal to PyTorch-order hand computation over 3 steps");
    double w = 0;
    for (int i = 0; i < n; i++) w = fmax(w, fabs(p[i] - pd[i]));
    CHECK(w < 2e-6, "adamw vs double formula: %.3g", w);
}

static void test_fast_math(void) {
    double w_phi = 0, w_erf = 0, w_exp = 0, w_gelu = 0;
    /* tiny arguments: erf(z) ~ 2z/sqrt(pi) must keep its relative accuracy */
    for (double z = 1e-30; z < 1e-2; z *= 1.7) {
        w_erf = fmax(w_erf, fabs(dx_cpu_erff((float)z) - erf((float)z)) / erf((float)z));
        w_erf = fmax(w_erf, fabs(dx_cpu_erff((float)-z) - erf(-(float)z)) / erf((float)z));
    }
    for (double z = -9.0; z <= 9.0; z += 1.3e-4) {
        double ref = z < 0 ? erfc(-z) : 1.0 + erf(z);
        double got = dx_cpu_erf1pf((float)z), zr = (double)(float)z;
        ref = zr < 0 ? erfc(-zr) : 1.0 + erf(zr);
        w_phi = fmax(w_phi, fabs(got - ref) / ref);
        if (zr != 0) w_erf = fmax(w_erf, fabs(dx_cpu_erff((float)zr) - erf(zr)) / fabs(erf(zr)));
    }
    for (double x = -87.0; x <= 88.0; x += 1.7e-3) {
        float xf = (float)x;
        w_exp = fmax(w_exp, fabs(dx_cpu_expf(xf) - exp((double)xf)) / exp((double)xf));
    }
    /* GELU f32 op (value and derivative) vs double erf GELU on a grid */
    enum { n = 20001 };
    static float xs[n], ys[n], dxs[n], ones[n];
    for (int i = 0; i < n; i++) {
        xs[i] = -12.0f + 24.0f * i / (n - 1);
        ones[i] = 1.0f;
    }
    {
        float *d_x = dev(xs, n), *d_y = devz(n), *d_dx = devz(n), *d_1 = dev(ones, n);
        be->ops->gelu_forward(be, d_y, d_x, n);
        be->ops->gelu_backward(be, d_dx, d_x, d_1, n);
        get(ys, d_y, n), get(dxs, d_dx, n);
        dfree(d_x), dfree(d_y), dfree(d_dx), dfree(d_1);
    }
    double w_dgelu = 0;
    for (int i = 0; i < n; i++) {
        double x = xs[i], cdf = 0.5 * (x < 0 ? erfc(-x / sqrt(2.0)) : 1 + erf(x / sqrt(2.0)));
        double r = x * cdf, dr = cdf + x * exp(-0.5 * x * x) / sqrt(2 * M_PI);
        w_gelu = fmax(w_gelu, fabs(ys[i] - r) / fmax(fabs(r), 1e-30));
        /* the derivative crosses 0 near x = -0.75: judge it relative to the
         * magnitude of its two terms */
        double mag = cdf + fabs(x) * exp(-0.5 * x * x) / sqrt(2 * M_PI);
        w_dgelu = fmax(w_dgelu, fabs(dxs[i] - dr) / fmax(mag, 1e-30));
    }
    printf("fast math: 1+erf rel %.2e, erf rel %.2e, exp rel %.2e, gelu rel %.2e, gelu' rel %.2e\n",
           w_phi, w_erf, w_exp, w_gelu, w_dgelu);
    CHECK(w_phi <= 1e-6, "1+erf relative error %.3g", w_phi);
    CHECK(w_erf <= 1e-6, "erf relative error %.3g", w_erf);
    CHECK(w_exp <= 3e-7, "expf relative error %.3g", w_exp);
    CHECK(w_gelu <= 1e-6, "gelu relative error %.3g", w_gelu);
    CHECK(w_dgelu <= 1e-6, "gelu derivative relative error %.3g", w_dgelu);
}

static void test_vec_ops(void) {
    enum { n = 777 };
    static float x[n], y[n], y0[n], t[n];
    double ss = 0;
    for (int i = 0; i < n; i++) {
        x[i] = (float)dx_rng_normal(&rng);
        y[i] = y0[i] = t[i] = (float)dx_rng_normal(&rng);
        ss += (double)x[i] * x[i];
    }
    float *dx_ = dev(x, n), *dy = dev(y, n), *dt = dev(t, n);
    be->ops->axpy(be, dy, -0.25f, dx_, n);
    get(y, dy, n);
    int ok = 1;
    for (int i = 0; i < n; i++) ok &= fabsf(y[i] - (y0[i] - 0.25f * x[i])) <= 1e-6f * (1 + fabsf(y[i]));
    CHECK(ok, "axpy");
    be->ops->scale(be, dy, 2.0f, n);
    get(y, dy, n);
    ok = 1;
    for (int i = 0; i < n; i++) ok &= fabsf(y[i] - 2 * (y0[i] - 0.25f * x[i])) <= 2e-6f * (1 + fabsf(y[i]));
    CHECK(ok, "scale");
    CHECK_CLOSE(be->ops->sumsq(be, dx_, n), ss, 0, 1e-12, "sumsq in double");
    CHECK(be->ops->nonfinite(be, dx_, n) == 0, "finite vector");
    x[n - 3] = INFINITY;
    put(dx_, x, n);
    CHECK(be->ops->nonfinite(be, dx_, n) == 1, "Inf detected");
    x[n - 3] = NAN;
    put(dx_, x, n);
    CHECK(be->ops->nonfinite(be, dx_, n) == 1, "NaN detected");
    x[n - 3] = 1.0f;
    put(dx_, x, n);
    be->ops->ema(be, dt, dx_, n, 0.9f);
    get(t, dt, n);
    ok = 1;
    for (int i = 0; i < n; i++) ok &= fabsf(t[i] - (0.9f * y0[i] + 0.1f * x[i])) <= 1e-6f * (1 + fabsf(t[i]));
    CHECK(ok, "ema");
    dfree(dx_), dfree(dy), dfree(dt);
    /* memory ops (backend memory is read only through download) */
    float *d = be->ops->alloc(be, 1001 * sizeof(float));
    CHECK(d && ((uintptr_t)d % 64) == 0, "alloc 64-byte aligned");
    if (!d) return;
    static float all[1001];
    for (int i = 0; i < 1001; i++) all[i] = -1.0f;
    get(all, d, 1001);
    int zero = 1;
    for (int i = 0; i < 1001; i++) zero &= all[i] == 0.0f;
    CHECK(zero, "alloc zero-filled");
    be->ops->upload(be, d, x, n * sizeof(float));
    be->ops->copy(be, d + 100, d, 50 * sizeof(float));
    float back[200];
    be->ops->download(be, back, d, sizeof back);
    CHECK(back[100] == x[0] && back[149] == x[49] && back[99] == x[99], "upload/copy/download");
    be->ops->zero(be, d, 1001 * sizeof(float));
    be->ops->download(be, back, d, sizeof back);
    CHECK(back[0] == 0 && back[199] == 0, "zero");
    be->ops->sync(be);
    be->ops->free(be, d);
}


/* the float attention op at ViT shapes (T 201 = 1 + 4 + 14x14, Dh 64), where
 * oneDNN takes its large-matrix kernels, against the double loop kernel */
static void test_attention_vit_shape(void) {
    enum { N = 2, T = 201, H = 2, D = 64 };
    const size_t nq = (size_t)N * T * 3 * H * D, na = (size_t)N * H * T * T, no = (size_t)N * T * H * D;
    const size_t nl = (size_t)N * H * T;
    double *q = dnew(nq), *o = dnew(no), *a = dnew(na), *g = dnew(no), *dq = dnew(nq), *l = dnew(nl);
    float *fq, *fo = fnew(no), *fa = fnew(na), *fg, *fdq = fnew(nq);
    drand(q, nq, 1.5);
    drand(g, no, 1.0);
    fq = tof(q, nq);
    fg = tof(g, no);
    const double sc = 0.125;
    dx_cpu_attention_forward_f64(o, a, l, q, N, T, H, D, sc);
    dx_cpu_attention_backward_f64(dq, g, q, o, l, N, T, H, D, sc);
    float *d_q = dev(fq, nq), *d_o = devz(no), *d_a = devz(na), *d_g = dev(fg, no), *d_dq = devz(nq);
    float *d_l = devz(nl);
    be->ops->attention_forward(be, d_o, d_a, d_l, d_q, N, T, H, D, (float)sc);
    be->ops->attention_backward(be, d_dq, d_g, d_q, d_o, d_l, N, T, H, D, (float)sc);
    get(fo, d_o, no), get(fa, d_a, na), get(fdq, d_dq, nq);
    dfree(d_q), dfree(d_o), dfree(d_a), dfree(d_g), dfree(d_dq), dfree(d_l);
    free(l);
    double eo = relerr_fd(fo, o, no, 1.0), ea = relerr_fd(fa, a, na, 1e-3), ed = relerr_fd(fdq, dq, nq, 1.0);
    printf("attention T=201 Dh=64: f32 out %.2e att %.2e dqkv %.2e\n", eo, ea, ed);
    CHECK(eo < 1e-5 && ea < 1e-5 && ed < 1e-5, "attention at ViT shape: out %.3g att %.3g dqkv %.3g", eo, ea, ed);
    free(q); free(o); free(a); free(g); free(dq); free(fq); free(fo); free(fa); free(fg); free(fdq);
}

/* the loop-form float attention kernels (dx_cpu_attention_*_f32: not what the
 * table runs, host memory) against the double ones, gradient accumulated */
static void test_attention_loop_f32(void) {
    double *q = dnew(QKV_N), *o = dnew(AO_N), *a = dnew(ATT_N), *g = dnew(AO_N), *dq = dnew(QKV_N);
    drand(q, QKV_N, 1.0);
    drand(g, AO_N, 1.0);
    drand(dq, QKV_N, 1.0);
    float *fq = tof(q, QKV_N), *fg = tof(g, AO_N), *fdq = tof(dq, QKV_N), *fo = fnew(AO_N), *fa = fnew(ATT_N);
    double *l = dnew(LSE_N);
    float *fl = fnew(LSE_N);
    dx_cpu_attention_forward_f64(o, a, l, q, NB, T_, H_, DH, att_scale);
    dx_cpu_attention_backward_f64(dq, g, q, o, l, NB, T_, H_, DH, att_scale);
    dx_cpu_attention_forward_f32(fo, fa, fl, fq, NB, T_, H_, DH, (float)att_scale);
    dx_cpu_attention_backward_f32(fdq, fg, fq, fo, fl, NB, T_, H_, DH, (float)att_scale);
    free(l), free(fl);
    double eo = relerr_fd(fo, o, AO_N, 1.0), ea = relerr_fd(fa, a, ATT_N, 1.0), eg = relerr_fd(fdq, dq, QKV_N, 1.0);
    CHECK(eo <= 1e-5 && ea <= 1e-5, "attention(loop f32): forward rel err out %.3g att %.3g", eo, ea);
    CHECK(eg <= 1e-5, "attention(loop f32): backward rel err %.3g", eg);
    printf("%-22s f32 fwd %.2e bwd %.2e\n", "attention(loop f32)", fmax(eo, ea), eg);
    free(q); free(o); free(a); free(g); free(dq); free(fq); free(fg); free(fdq); free(fo); free(fa);
}

/* reductions over rows are per column block: same bits with 1 and 2 threads
 * (sizes above the kernels' parallel thresholds) */
static void test_thread_determinism(void) {
    enum { M = 600, C = 200, T = 50, NS = 12, K = 8 };
    static float x[M * C], dy[M * C], w[C], b[C];
    static float r1[K * T * C + 4 * C], r2[K * T * C + 4 * C];
    static float y[K * T * C];
    static const int32_t idx[K] = {11, 0, 3, 7, 5, 9, 1, 2};
    for (int i = 0; i < M * C; i++) {
        x[i] = (float)dx_rng_normal(&rng);
        dy[i] = (float)dx_rng_normal(&rng);
    }
    for (int i = 0; i < K * T * C; i++) y[i] = (float)dx_rng_normal(&rng);
    for (int i = 0; i < C; i++) {
        w[i] = (float)dx_rng_normal(&rng);
        b[i] = (float)dx_rng_normal(&rng);
    }
    float *d_x = dev(x, M * C), *d_dy = dev(dy, M * C), *d_w = dev(w, C), *d_b = dev(b, C);
    float *d_y = dev(y, K * T * C), *d_out = devz(M * C), *d_mean = devz(M), *d_rstd = devz(M);
    float *d_r = devz(K * T * C + 4 * C);
    int32_t *d_idx = devb(idx, sizeof idx);
    for (int pass = 0; pass < 2; pass++) {
        float *r = pass ? r2 : r1;
        omp_set_num_threads(pass ? 2 : 1);
        be->ops->zero(be, d_r, sizeof r1);
        be->ops->zero(be, d_out, sizeof(float) * M * C);
        be->ops->bias_backward(be, d_r, d_dy, NULL, M, C);
        be->ops->layernorm_forward(be, d_out, d_mean, d_rstd, d_x, d_w, d_b, M, C, 1e-6f);
        be->ops->layernorm_backward(be, d_out, d_r + C, d_r + 2 * C, d_dy, d_x, d_w, d_mean, d_rstd, M, C);
        /* dout: the first NS*T rows of dy */
        be->ops->residual_backward(be, NULL, d_r + 4 * C, d_r + 3 * C, d_dy, d_y, d_w, d_idx, NS, K, T, C, 0.5f);
        get(r, d_r, K * T * C + 4 * C);
    }
    omp_set_num_threads(2);
    dfree(d_x), dfree(d_dy), dfree(d_w), dfree(d_b), dfree(d_y), dfree(d_out), dfree(d_mean),
        dfree(d_rstd), dfree(d_r), dfree(d_idx);
    CHECK(memcmp(r1, r2, sizeof r1) == 0, "row reductions bitwise equal with 1 and 2 threads");
}

int main(void) {
    dx_err err = {0};
    CHECK(dx_backend_create(&be, &(dx_backend_params){.nthreads = 2}, &err) == DX_OK, "create: %s", err.msg);
    if (!be) return dx_test_summary();
    /* every ops member is set */
    {
        const void *const *slots = (const void *const *)be->ops;
        size_t ns = sizeof(dx_backend_ops) / sizeof(void *);
        int all = 1;
        for (size_t i = 0; i < ns; i++) all &= slots[i] != NULL;
        CHECK(all, "no NULL entry in the ops table (%zu slots)", ns);
        CHECK(be->loss != NULL, "cpu backend carries the loss kernels (be->loss)");
        /* under DINOX_CHECK_DEVICE_POINTERS=1 (CTest) the registry wraps the backend */
        const char *chk = getenv("DINOX_CHECK_DEVICE_POINTERS");
        const char *want = chk && !strcmp(chk, "1") ? "checked" : "cpu";
        CHECK(strcmp(be->ops->name, want) == 0, "name %s, want %s", be->ops->name, want);
    }
    dx_rng_init(&rng, 1234, DX_RNG_TEST, 1, 0);
    for (int i = 0; i < C_; i++) bias_mask64[i] = (i % 4 == 1) ? 0.0 : 1.0;

    op_case cases[] = {
        {"bias(mask)", 2, {M_ * C_, C_}, {1, 1}, M_ * C_, bias_f64, bias_b64, {1, 1}},
        {"layernorm", 3, {M_ * C_, C_, C_}, {1, 1, 1}, M_ * C_, ln_f64, ln_b64, {1, 1, 1}},
        {"gelu", 1, {M_ * C_}, {1}, M_ * C_, gelu_f64, gelu_b64, {2.5}},
        {"swiglu", 1, {M_ * 2 * F_}, {1}, M_ * F_, swi_f64, swi_b64, {2.0}},
        {"softmax", 1, {M_ * C_}, {1}, M_ * C_, sm_f64, sm_b64, {2.0}},
        {"attention", 1, {QKV_N}, {1}, AO_N, att_f64, att_b64, {1.0}},
        {"rope", 3, {QKV_N, ROPE_P * DH, ROPE_P * DH}, {1, 0, 0}, QKV_N, rope_f64, rope_b64, {1, 1, 1}},
        {"residual(subset)", 3, {RS_N * RS_T * C_, RS_K * RS_T * C_, C_}, {1, 1, 1}, RS_N * RS_T * C_,
         res_f64, res_b64, {1, 1, 1}},
        {"gather/scatter_add", 1, {GR_N * GR_ROW}, {1}, GR_K * GR_ROW, gat_f64, gat_b64, {1}},
        {"im2col/col2im", 1, {IC_N * IC_C * IC_H * IC_W}, {1}, IC_COLS, i2c_f64, i2c_b64, {1}},
        {"tokens", 4, {TK_N * TK_P * TK_D, TK_D, TK_R * TK_D, TK_D}, {1, 1, 1, 1}, TK_N * (1 + TK_R + TK_P) * TK_D,
         tok_f64, tok_b64, {1, 1, 1, 1}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* rope: run_case draws random sin/cos tables; the op is linear in
         * q/k for any tables, so FD and transpose checks still hold */
        run_case(&cases[i]);
    }
    /* the loop-form float attention kernel (not an ops-table entry) */
    test_attention_loop_f32();

    test_rope_tables();
    test_rope_norms();
    test_attention_naive();
    test_kbias_mask();
    test_residual_subset();
    test_adamw();
    test_adamw_torch();
    test_fast_math();
    test_vec_ops();
    test_thread_determinism();
    test_attention_vit_shape();
    dx_backend_destroy(be);
    return dx_test_summary();
}
