/* peer_io.c - evaluation statistics on peer-written .npy inputs (peer_io.h). */
#include "backend/registry.h"
#include "eval/peer_io.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend/dx_backend.h"
#include "eval/collapse.h"
#include "eval/logreg.h"
#include "eval/metrics.h"
#include "eval/probe.h"
#include "eval/seghead.h"
#include "io/dx_npy.h"

typedef struct arr { float *d; int64_t shape[8]; int ndim; int64_t n; } arr;

/* 1 if loaded, 0 if absent, -1 on error. */
static int load(const char *dir, const char *name, arr *a, dx_err *err) {
    char p[2048];
    snprintf(p, sizeof p, "%s/%s.npy", dir, name);
    struct stat st;
    memset(a, 0, sizeof *a);
    if (stat(p, &st)) return 0;
    if (dx_npy_read_f32(p, &a->d, a->shape, &a->ndim, err)) return -1;
    a->n = 1;
    for (int i = 0; i < a->ndim; i++) a->n *= a->shape[i];
    return 1;
}

static cJSON *darr(const double *v, int64_t n) {
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; i < n; i++) cJSON_AddItemToArray(a, isfinite(v[i]) ? cJSON_CreateNumber(v[i]) : cJSON_CreateNull());
    return a;
}

dx_status dx_eval_peer_compute(const char *in, const char *out_json, dx_err *err) {
    cJSON *root = cJSON_CreateObject();
    arr a, b, c, d;
    dx_status st = DX_OK;
    int r;
#define LOAD(name, x) do { if ((r = load(in, name, x, err)) < 0) { st = DX_EFORMAT; goto done; } } while (0)
    LOAD("auc_s", &a);
    if (r) {
        LOAD("auc_y", &b);
        double *s = malloc(a.n * sizeof *s);
        int *y = malloc(a.n * sizeof *y);
        for (int64_t i = 0; i < a.n; i++) { s[i] = a.d[i]; y[i] = b.d[i] != 0; }
        cJSON_AddNumberToObject(root, "auc", dx_auc(s, y, (int)a.n));
        free(s); free(y); free(a.d); free(b.d);
    }
    LOAD("bs_s", &a);
    if (r) {
        arr gg;
        LOAD("bs_y", &b);
        LOAD("bs_g", &gg);
        double *sc = malloc(a.n * sizeof *sc);
        int *y = malloc(a.n * sizeof *y), *g = malloc(a.n * sizeof *g);
        for (int64_t i = 0; i < a.n; i++) { sc[i] = a.d[i]; y[i] = b.d[i] != 0; g[i] = (int)gg.d[i]; }
        dx_boot_ci ci;
        st = dx_auc_bootstrap(sc, y, g, (int)a.n, 2000, 0.95, 3, &ci, err);
        if (!st) {
            cJSON *o = cJSON_AddObjectToObject(root, "boot");
            cJSON_AddNumberToObject(o, "lo", ci.lo);
            cJSON_AddNumberToObject(o, "hi", ci.hi);
            cJSON_AddNumberToObject(o, "se", ci.se);
        }
        free(sc); free(y); free(g); free(a.d); free(b.d); free(gg.d);
        if (st) goto done;
    }
    LOAD("lr_X", &a);
    if (r) {
        LOAD("lr_y", &b);
        LOAD("lr_C", &c);
        LOAD("lr_free", &d); /* optional: trailing unpenalised columns */
        const int n_free = r ? (int)d.d[0] : 0;
        if (r) free(d.d);
        int n = (int)a.shape[0], dd = (int)a.shape[1];
        double *X = malloc((size_t)n * dd * sizeof *X);
        int *y = malloc((size_t)n * sizeof *y);
        for (int64_t i = 0; i < a.n; i++) X[i] = a.d[i];
        for (int i = 0; i < n; i++) y[i] = b.d[i] != 0;
        dx_logreg m;
        st = dx_logreg_fit(&m, X, y, n, dd, n_free, c.d[0], 200, 1e-12, err);
        if (!st) {
            cJSON_AddItemToObject(root, "logreg_coef", darr(m.w, dd));
            cJSON_AddNumberToObject(root, "logreg_intercept", m.b);
            cJSON_AddNumberToObject(root, "logreg_iters", m.iters);
            dx_logreg_free(&m);
        }
        free(X); free(y); free(a.d); free(b.d); free(c.d);
        if (st) goto done;
    }
    LOAD("knn_X", &a);
    if (r) {
        LOAD("knn_y", &b);
        LOAD("knn_Q", &c);
        LOAD("knn_k", &d);
        int n = (int)a.shape[0], dd = (int)a.shape[1], nq = (int)c.shape[0];
        int *y = malloc((size_t)n * sizeof *y), *pred = malloc((size_t)nq * sizeof *pred);
        for (int i = 0; i < n; i++) y[i] = b.d[i] != 0;
        st = dx_knn_cosine(a.d, y, n, c.d, nq, dd, (int)d.d[0], pred, err);
        if (!st) {
            cJSON *p = cJSON_AddArrayToObject(root, "knn_pred");
            for (int j = 0; j < nq; j++) cJSON_AddItemToArray(p, cJSON_CreateNumber(pred[j]));
        }
        free(y); free(pred); free(a.d); free(b.d); free(c.d); free(d.d);
        if (st) goto done;
    }
    LOAD("seg_a", &a);
    if (r) {
        LOAD("seg_b", &b);
        int m = (int)a.shape[0];
        int64_t px = a.n / m;
        uint8_t *ma = malloc(a.n), *mb = malloc(a.n);
        double *dice = malloc(m * sizeof *dice), *iou = malloc(m * sizeof *iou);
        for (int64_t i = 0; i < a.n; i++) { ma[i] = a.d[i] != 0; mb[i] = b.d[i] != 0; }
        for (int k = 0; k < m; k++) { dice[k] = dx_dice(ma + k * px, mb + k * px, px); iou[k] = dx_iou(ma + k * px, mb + k * px, px); }
        cJSON_AddItemToObject(root, "dice", darr(dice, m));
        cJSON_AddItemToObject(root, "iou", darr(iou, m));
        free(ma); free(mb); free(dice); free(iou); free(a.d); free(b.d);
    }
    LOAD("er_X", &a);
    if (r) {
        double e1 = NAN, e2 = NAN;
        dx_backend *be = NULL;
        st = dx_effective_rank(a.d, (int)a.shape[0], (int)a.shape[1], &e1, err);
        if (!st) st = dx_backend_open(&be, NULL, 0, err);
        if (!st) st = dx_effective_rank_be(be, a.d, a.shape[0], (int)a.shape[1], &e2, err);
        if (be) dx_backend_destroy(be);
        free(a.d);
        if (st) goto done;
        cJSON_AddNumberToObject(root, "erank_host", e1);
        cJSON_AddNumberToObject(root, "erank_backend", e2);
    }
    LOAD("cos_X", &a);
    if (r) {
        int m = (int)a.shape[0], n = (int)a.shape[1], dd = (int)a.shape[2];
        double *v = malloc(m * sizeof *v);
        for (int k = 0; k < m; k++) v[k] = dx_mean_pairwise_cosine(a.d + (size_t)k * n * dd, n, dd);
        cJSON_AddItemToObject(root, "cosine", darr(v, m));
        free(v); free(a.d);
    }
    LOAD("eig_A", &a);
    if (r) {
        int n = (int)a.shape[0];
        double *A = malloc((size_t)n * n * sizeof *A), *ev = malloc((size_t)n * sizeof *ev);
        for (int64_t i = 0; i < a.n; i++) A[i] = a.d[i];
        st = dx_sym_eigvals(A, n, ev, err);
        if (!st) cJSON_AddItemToObject(root, "eigvals", darr(ev, n));
        free(A); free(ev); free(a.d);
        if (st) goto done;
    }
    LOAD("bil_in", &a);
    if (r) {
        LOAD("bil_size", &b);
        int H = (int)b.d[0], W = (int)b.d[1];
        float *o = malloc((size_t)H * W * sizeof *o);
        dx_bilinear_resize(a.d, (int)a.shape[0], (int)a.shape[1], o, H, W);
        double *v = malloc((size_t)H * W * sizeof *v);
        for (int i = 0; i < H * W; i++) v[i] = o[i];
        cJSON_AddItemToObject(root, "bilinear", darr(v, (int64_t)H * W));
        free(o); free(v); free(a.d); free(b.d);
    }
    LOAD("pr_X", &a);
    if (r) {
        arr sp, gr;
        LOAD("pr_y", &b);
        LOAD("pr_split", &sp);
        LOAD("pr_group", &gr);
        int n = (int)a.shape[0], dd = (int)a.shape[1];
        double *X = malloc((size_t)n * dd * sizeof *X);
        int *y = malloc(n * sizeof *y), *s = malloc(n * sizeof *s), *g = malloc(n * sizeof *g);
        for (int64_t i = 0; i < a.n; i++) X[i] = a.d[i];
        for (int i = 0; i < n; i++) { y[i] = (int)b.d[i]; s[i] = (int)sp.d[i]; g[i] = (int)gr.d[i]; }
        static const double grid[] = {1e-4, 1e-3, 1e-2, 1e-1, 1, 10};
        dx_probe_result pr;
        st = dx_probe_run(X, y, s, g, n, dd, grid, 6, 200, 7, &pr, err);
        if (!st) {
            cJSON *p = cJSON_AddObjectToObject(root, "probe");
            cJSON_AddNumberToObject(p, "C", pr.C);
            cJSON_AddNumberToObject(p, "val_auc", pr.val_auc);
            cJSON_AddNumberToObject(p, "test_auc", pr.test_auc);
            cJSON_AddNumberToObject(p, "ci_lo", pr.ci.lo);
            cJSON_AddNumberToObject(p, "ci_hi", pr.ci.hi);
        }
        free(X); free(y); free(s); free(g); free(a.d); free(b.d); free(sp.d); free(gr.d);
        if (st) goto done;
    }
#undef LOAD
    {
        char *txt = cJSON_Print(root);
        FILE *f = fopen(out_json, "w");
        if (!f) { free(txt); st = dx_fail(err, DX_EIO, "open %s: %s", out_json, strerror(errno)); goto done; }
        fputs(txt, f);
        free(txt);
        if (fclose(f)) st = dx_fail(err, DX_EIO, "write %s", out_json);
    }
done:
    cJSON_Delete(root);
    return st;
}
