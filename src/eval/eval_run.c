/* eval_run.c - the evaluation pipeline behind `dinox eval` (eval_run.h). */
#include "eval/eval_run.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dx_file.h"
#include "core/dx_log.h"
#include "core/dx_version.h"
#include "eval/image_out.h"
#include "eval/metrics.h"
#include "eval/radiomics.h"
#include "eval/seghead.h"
#include "eval/split.h"

static const char *const FEAT_NAMES[DX_EVAL_NFEAT] = {"cls", "mean", "concat", "nodule"};

/* "nodule" features: the patch tokens pooled over the nodule, each patch weighted by the
 * share of its pixels inside the nodule's mask on the probe crop (the CLS token and the
 * mean over the crop describe mostly the anatomy around a small nodule: a 6 mm nodule is
 * 1/250 of a 96 mm crop). A mask that misses the centre slice falls back to the patch
 * under the crop centre, where the nodule's centroid is. out [n, D]. */
void dx_eval_nodule_pool(const dx_features *f, const uint8_t *mask, int S, float *out) {
    const int D = f->D, Hp = f->Hp, Wp = f->Wp, ph = S / Hp, pw = S / Wp;
    double *acc = malloc(sizeof(double) * (size_t)D);
    if (!acc) { for (size_t i = 0; i < (size_t)f->n * D; i++) out[i] = NAN; return; }
    for (int i = 0; i < f->n; i++) {
        const uint8_t *m = mask + (size_t)i * S * S;
        const float *tok = f->patch + (size_t)i * f->P * D;
        double wsum = 0;
        for (int j = 0; j < D; j++) acc[j] = 0;
        for (int y = 0; y < Hp; y++)
            for (int x = 0; x < Wp; x++) {
                int c = 0;
                for (int yy = y * ph; yy < (y + 1) * ph; yy++)
                    for (int xx = x * pw; xx < (x + 1) * pw; xx++) c += m[(size_t)yy * S + xx] != 0;
                if (!c) continue;
                const double w = (double)c / (ph * pw);
                const float *t = tok + (size_t)(y * Wp + x) * D;
                for (int j = 0; j < D; j++) acc[j] += w * t[j];
                wsum += w;
            }
        if (wsum <= 0) { /* the centre patch */
            const float *t = tok + (size_t)((Hp / 2) * Wp + Wp / 2) * D;
            for (int j = 0; j < D; j++) acc[j] = t[j];
            wsum = 1;
        }
        for (int j = 0; j < D; j++) out[(size_t)i * D + j] = (float)(acc[j] / wsum);
    }
    free(acc);
}
/* down to 1e-6: with the diameter unpenalised beside 768 features, a probe must be able to choose
 * (near) diameter alone when the features add nothing; 1e-4 still gave them a summed logit of ~1 */
static const double C_GRID[] = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10};
#define N_CGRID ((int)(sizeof C_GRID / sizeof C_GRID[0]))

void dx_eval_opts_default(dx_eval_opts *o) {
    memset(o, 0, sizeof *o);
    dx_crop_opts_default(&o->crop);
    o->seg_min_side_mm = 12;
    o->seg_diam_mult = 2;
    o->min_readers = 3;
    o->benign_below = 3;
    o->malignant_above = 3;
    o->f_val = 0.2;
    o->f_test = 0.2;
    o->seed = 0;
    o->random_init_seed = 12345;
    o->n_boot = 1000;
    o->knn_k = 20;
    o->seg_steps = 300;
    o->seg_lr = 0.05;
    o->n_attention = 4;
    o->batch = 16;
    o->random_baseline = 1;
}

/* ---- evaluation set ------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) { return strcmp(a, b); }

/* The hand-crafted baseline's columns: the diameter and radiomics.h's descriptors of every
 * nodule. A labelled nodule without mask voxels (a store without masks, or a label that a
 * later cluster overwrote) leaves the baseline out (es->radio NULL) rather than guessing;
 * an unlabelled one gets zeros, which no probe reads. */
static dx_status radiomics_columns(dx_eval_set *es, const dx_store *s, dx_err *err) {
    const int W = 1 + DX_RADIOMICS_N;
    es->radio = calloc((size_t)es->n * W, sizeof *es->radio);
    if (!es->radio) return dx_fail(err, DX_ENOMEM, "radiomics: %d nodules", es->n);
    for (int i = 0; i < es->n; i++) {
        double *r = es->radio + (size_t)i * W;
        r[0] = es->diam[i];
        dx_err e1 = {0};
        dx_status st = dx_radiomics_nodule(s, es->row[i], r + 1, &e1);
        if (st == DX_ENOMEM) { *err = e1; return st; }
        if (st) {
            for (int c = 1; c < W; c++) r[c] = 0;
            if (es->y[i] < 0) continue;
            DX_INFO("eval: no radiomics baseline (%s)", e1.msg);
            free(es->radio);
            es->radio = NULL;
            return DX_OK;
        }
    }
    return DX_OK;
}

dx_status dx_eval_set_build(dx_eval_set *es, const dx_store *s, const dx_eval_opts *o, dx_err *err) {
    memset(es, 0, sizeof *es);
    const int S = o->crop.size;
    es->S = S;
    /* patients: the distinct IDs, sorted so the split does not depend on ingest order */
    es->patient_id = malloc((size_t)(s->n_series ? s->n_series : 1) * sizeof *es->patient_id);
    if (!es->patient_id) return dx_fail(err, DX_ENOMEM, "eval set");
    for (int i = 0; i < s->n_series; i++) snprintf(es->patient_id[i], DX_UID_MAX, "%s", dx_store_info(s, i)->patient_id);
    qsort(es->patient_id, s->n_series, sizeof *es->patient_id, cmp_str);
    int np = 0;
    for (int i = 0; i < s->n_series; i++)
        if (!np || strcmp(es->patient_id[np - 1], es->patient_id[i])) memmove(es->patient_id[np++], es->patient_id[i], DX_UID_MAX);
    es->n_patients = np;
    if (!np) return dx_fail(err, DX_EINVAL, "the store has no series");
    int nn = 0;
    for (int r = 0; r < s->idx.n_rows; r++) {
        const dx_store_row *row = &s->idx.rows[r];
        if (row->info.kind == DX_NOD_NODULE && row->info.label > 0) nn++;
    }
    if (!nn) return dx_fail(err, DX_EINVAL, "the store has no nodules with consensus labels");
    es->n = nn;
    es->row = malloc((size_t)nn * sizeof(int));
    es->patient = malloc((size_t)nn * sizeof(int));
    es->y = malloc((size_t)nn * sizeof(int));
    es->split = malloc((size_t)nn * sizeof(int));
    es->diam = malloc((size_t)nn * sizeof(double));
    es->img = malloc((size_t)nn * 3 * S * S * sizeof(float));
    es->gray = malloc((size_t)nn * S * S * sizeof(float));
    es->mask = malloc((size_t)nn * S * S);
    es->seg_img = malloc((size_t)nn * 3 * S * S * sizeof(float));
    es->seg_mask = malloc((size_t)nn * S * S);
    es->patient_split = malloc((size_t)np * sizeof(int));
    es->patient_stratum = calloc((size_t)np, sizeof(int));
    if (!es->row || !es->patient || !es->y || !es->split || !es->diam || !es->img || !es->gray || !es->mask || !es->seg_img || !es->seg_mask ||
        !es->patient_split || !es->patient_stratum) {
        dx_eval_set_free(es);
        return dx_fail(err, DX_ENOMEM, "eval set: %d crops of %d px", nn, S);
    }
    int k = 0;
    for (int r = 0; r < s->idx.n_rows; r++) {
        const dx_store_row *row = &s->idx.rows[r];
        if (!(row->info.kind == DX_NOD_NODULE && row->info.label > 0)) continue;
        const char *pid = dx_store_info(s, row->series)->patient_id;
        char key[DX_UID_MAX];
        snprintf(key, sizeof key, "%s", pid);
        const char (*hit)[DX_UID_MAX] = bsearch(key, es->patient_id, np, sizeof *es->patient_id, cmp_str);
        es->row[k] = r;
        es->patient[k] = (int)(hit - es->patient_id);
        double m = row->info.malignancy;
        int y = -1;
        if (row->info.n_readers >= o->min_readers && m > 0) y = m > o->malignant_above ? 1 : m < o->benign_below ? 0 : -1;
        es->y[k] = y;
        es->diam[k] = row->info.diameter_mm;
        /* stratum: 2 = has a malignant nodule, 1 = benign only, 0 = no labelled nodule */
        int *st = &es->patient_stratum[es->patient[k]];
        if (y == 1) *st = 2;
        else if (y == 0 && *st < 1) *st = 1;
        dx_status e = dx_nodule_crop(s, r, &o->crop, es->img + (size_t)k * 3 * S * S, es->gray + (size_t)k * S * S,
                                     es->mask + (size_t)k * S * S, NULL, err);
        if (e) { dx_eval_set_free(es); return e; }
        dx_crop_opts so = o->crop;
        so.min_side_mm = o->seg_min_side_mm;
        so.diam_mult = o->seg_diam_mult;
        e = dx_nodule_crop(s, r, &so, es->seg_img + (size_t)k * 3 * S * S, NULL, es->seg_mask + (size_t)k * S * S, NULL, err);
        if (e) { dx_eval_set_free(es); return e; }
        k++;
    }
    dx_status e = radiomics_columns(es, s, err);
    if (e) { dx_eval_set_free(es); return e; }
    e = dx_split_patients(es->patient_stratum, np, o->f_val, o->f_test, o->seed, es->patient_split, err);
    if (e) { dx_eval_set_free(es); return e; }
    for (int i = 0; i < nn; i++) es->split[i] = es->patient_split[es->patient[i]];
    if (o->folds) {
        es->folds = o->folds;
        es->fold = malloc((size_t)nn * sizeof(int));
        es->patient_fold = malloc((size_t)np * sizeof(int));
        if (!es->fold || !es->patient_fold) { dx_eval_set_free(es); return dx_fail(err, DX_ENOMEM, "eval folds"); }
        if ((e = dx_fold_patients(es->patient_stratum, np, o->folds, o->seed, es->patient_fold, err))) {
            dx_eval_set_free(es);
            return e;
        }
        for (int i = 0; i < nn; i++) es->fold[i] = es->patient_fold[es->patient[i]];
    }
    return DX_OK;
}

void dx_eval_set_free(dx_eval_set *es) {
    free(es->row); free(es->patient); free(es->y); free(es->split); free(es->diam); free(es->radio);
    free(es->img); free(es->gray); free(es->mask); free(es->seg_img); free(es->seg_mask);
    free(es->patient_id); free(es->patient_split); free(es->patient_stratum);
    free(es->fold); free(es->patient_fold);
    memset(es, 0, sizeof *es);
}

/* ---- one backbone --------------------------------------------------------- */

/* The probe protocol on X [n, d]: the one patient split, or K-fold cross-validation. score[i]
 * (may be NULL): the decision value of every row the probe is tested on (test_rows). The last
 * n_free columns (the diameter beside the features) are not penalised. */
static dx_status probe(const dx_eval_set *es, const dx_eval_opts *o, const double *X, int d, int n_free, int n_boot,
                       dx_probe_result *r, double *score, dx_err *err) {
    if (es->folds)
        return dx_probe_run_cv(X, es->y, es->fold, es->folds, es->patient, es->n, d, n_free, C_GRID, N_CGRID, n_boot,
                               o->seed, r, score, err);
    return dx_probe_run_scored(X, es->y, es->split, es->patient, es->n, d, n_free, C_GRID, N_CGRID, n_boot, o->seed,
                               r, score, err);
}

static dx_status run_knn(const dx_eval_set *es, const float *F, int d, int k, double *acc, int *ntest, dx_err *err) {
    int ntr = 0, nte = 0;
    for (int i = 0; i < es->n; i++)
        if (es->y[i] >= 0) { if (es->split[i] == DX_SPLIT_TRAIN) ntr++; else if (es->split[i] == DX_SPLIT_TEST) nte++; }
    *acc = NAN;
    *ntest = nte;
    if (!ntr || !nte) return DX_OK;
    float *X = malloc((size_t)ntr * d * sizeof *X), *Q = malloc((size_t)nte * d * sizeof *Q);
    int *y = malloc((size_t)ntr * sizeof *y), *yq = malloc((size_t)nte * sizeof *yq), *pred = malloc((size_t)nte * sizeof *pred);
    dx_status st = DX_OK;
    if (!X || !Q || !y || !yq || !pred) { st = dx_fail(err, DX_ENOMEM, "knn"); goto done; }
    int a = 0, b = 0;
    for (int i = 0; i < es->n; i++) {
        if (es->y[i] < 0) continue;
        if (es->split[i] == DX_SPLIT_TRAIN) { memcpy(X + (size_t)a * d, F + (size_t)i * d, (size_t)d * sizeof *X); y[a++] = es->y[i]; }
        else if (es->split[i] == DX_SPLIT_TEST) { memcpy(Q + (size_t)b * d, F + (size_t)i * d, (size_t)d * sizeof *Q); yq[b++] = es->y[i]; }
    }
    if ((st = dx_knn_cosine(X, y, ntr, Q, nte, d, k, pred, err))) goto done;
    int ok = 0;
    for (int j = 0; j < nte; j++) ok += pred[j] == yq[j];
    *acc = (double)ok / nte;
done:
    free(X); free(Q); free(y); free(yq); free(pred);
    return st;
}

static dx_status run_seg(const dx_eval_set *es, const dx_eval_opts *o, const dx_features *f, dx_model_eval *r, dx_err *err) {
    const int S = es->S, P = f->P, D = f->D;
    /* crops whose mask is empty on the centre slice (no mask in the store, or a
     * centroid between contours) would score Dice 1 for predicting nothing: skipped */
    int ntr = 0, nte = 0;
    uint8_t *use = calloc((size_t)es->n, 1);
    if (!use) return dx_fail(err, DX_ENOMEM, "segmentation");
    for (int i = 0; i < es->n; i++) {
        const uint8_t *mi = es->seg_mask + (size_t)i * S * S;
        for (int q = 0; q < S * S && !use[i]; q++) use[i] = mi[q] != 0;
        if (!use[i]) continue;
        if (es->split[i] == DX_SPLIT_TRAIN) ntr++;
        else if (es->split[i] == DX_SPLIT_TEST) nte++;
    }
    r->seg_n_train = ntr;
    r->seg_n_test = nte;
    r->seg_dice = r->seg_iou = NAN;
    for (int b = 0; b < 3; b++) r->seg_dice_bin[b] = NAN;
    if (!ntr || !nte) { free(use); return DX_OK; }
    float *ft = malloc((size_t)ntr * P * D * sizeof *ft), *prob = malloc((size_t)S * S * sizeof *prob);
    uint8_t *mt = malloc((size_t)ntr * S * S), *pred = malloc((size_t)S * S);
    dx_seghead h = {0};
    dx_status st = DX_OK;
    if (!ft || !prob || !mt || !pred) { st = dx_fail(err, DX_ENOMEM, "segmentation"); goto done; }
    int a = 0;
    for (int i = 0; i < es->n; i++)
        if (use[i] && es->split[i] == DX_SPLIT_TRAIN) {
            memcpy(ft + (size_t)a * P * D, f->patch + (size_t)i * P * D, (size_t)P * D * sizeof *ft);
            memcpy(mt + (size_t)a * S * S, es->seg_mask + (size_t)i * S * S, (size_t)S * S);
            a++;
        }
    if ((st = dx_seghead_train(&h, ft, mt, ntr, f->Hp, f->Wp, D, S, S, o->seg_steps, o->seg_lr, &r->seg_loss, err))) goto done;
    double sd = 0, si = 0, bd[3] = {0, 0, 0};
    int bn[3] = {0, 0, 0};
    for (int i = 0; i < es->n; i++) {
        if (!use[i] || es->split[i] != DX_SPLIT_TEST) continue;
        dx_seghead_predict(&h, f->patch + (size_t)i * P * D, f->Hp, f->Wp, S, S, prob);
        for (int q = 0; q < S * S; q++) pred[q] = prob[q] >= 0.5f;
        double dsc = dx_dice(pred, es->seg_mask + (size_t)i * S * S, (int64_t)S * S);
        sd += dsc;
        si += dx_iou(pred, es->seg_mask + (size_t)i * S * S, (int64_t)S * S);
        int b = es->diam[i] < 6 ? 0 : es->diam[i] <= 10 ? 1 : 2;
        bd[b] += dsc;
        bn[b]++;
    }
    r->has_seg = 1;
    r->seg_dice = sd / nte;
    r->seg_iou = si / nte;
    for (int b = 0; b < 3; b++) { r->seg_n_bin[b] = bn[b]; r->seg_dice_bin[b] = bn[b] ? bd[b] / bn[b] : NAN; }
done:
    dx_seghead_free(&h);
    free(ft); free(prob); free(mt); free(pred); free(use);
    return st;
}

void dx_model_eval_free(dx_model_eval *r) {
    free(r->score);
    free(r->score_fd);
    free(r->att_ratio);
    r->score = r->score_fd = r->att_ratio = NULL;
}

double dx_attention_in_mask_ratio(const float *att, int Hp, int Wp, const uint8_t *mask, int S) {
    const int ph = S / Hp, pw = S / Wp;
    double in = 0, tot = 0, share = 0;
    for (int y = 0; y < Hp; y++)
        for (int x = 0; x < Wp; x++) {
            int c = 0;
            for (int yy = y * ph; yy < (y + 1) * ph; yy++)
                for (int xx = x * pw; xx < (x + 1) * pw; xx++) c += mask[(size_t)yy * S + xx] != 0;
            const double frac = (double)c / (ph * pw), a = att[y * Wp + x];
            in += a * frac;
            tot += a;
            share += frac;
        }
    share /= (double)Hp * Wp;
    if (share <= 0 || tot <= 0) return NAN;
    return in / tot / share;
}

/* Per-crop attention ratio (mean over heads) and the per-head means over test crops. */
static void attention_ratios(const dx_eval_set *es, const dx_features *f, dx_model_eval *r) {
    const int H = f->heads, P = f->P;
    r->att_heads = H;
    r->att_n = 0;
    double hs[64] = {0};
    for (int i = 0; i < es->n; i++) {
        r->att_ratio[i] = NAN;
        if (!f->att) continue;
        double s = 0, hv[64];
        int ok = 1;
        for (int h = 0; h < H; h++) {
            double v = dx_attention_in_mask_ratio(f->att + ((size_t)i * H + h) * P, f->Hp, f->Wp,
                                                  es->mask + (size_t)i * es->S * es->S, es->S);
            if (isnan(v)) { ok = 0; break; }
            s += v;
            if (h < 64) hv[h] = v;
        }
        if (!ok) continue;
        r->att_ratio[i] = s / H;
        if (es->split[i] == DX_SPLIT_TEST) {
            r->att_n++;
            for (int h = 0; h < H && h < 64; h++) hs[h] += hv[h];
        }
    }
    for (int h = 0; h < H && h < 64; h++) r->att_ratio_head[h] = r->att_n ? hs[h] / r->att_n : NAN;
}

static dx_status run_model(const dx_eval_set *es, const dx_eval_opts *o, dx_backend *be, const dx_eval_model *em,
                           int full, dx_model_eval *r, dx_features *keep, dx_err *err) {
    memset(r, 0, sizeof *r);
    snprintf(r->source, sizeof r->source, "%s", em->source);
    r->score = malloc(sizeof(double) * (size_t)(es->n > 0 ? es->n : 1));
    r->score_fd = malloc(sizeof(double) * (size_t)(es->n > 0 ? es->n : 1));
    r->att_ratio = malloc(sizeof(double) * (size_t)(es->n > 0 ? es->n : 1));
    if (!r->score || !r->score_fd || !r->att_ratio) {
        dx_model_eval_free(r);
        return dx_fail(err, DX_ENOMEM, "eval scores");
    }
    dx_features f, fs = {0};
    dx_status st = dx_extract_features(em, be, es->img, es->n, es->S, o->batch, 1, 1, &f, err);
    if (st) { dx_model_eval_free(r); return st; }
    if ((st = dx_extract_features(em, be, es->seg_img, es->n, es->S, o->batch, 1, 0, &fs, err))) {
        dx_features_free(&f);
        dx_model_eval_free(r);
        return st;
    }
    const int n = es->n, D = f.D;
    double *X = malloc((size_t)n * (2 * D + 1) * sizeof *X);
    float *cat = malloc((size_t)n * 2 * D * sizeof *cat);
    float *nod = malloc((size_t)(n ? n : 1) * D * sizeof *nod);
    if (!X || !cat || !nod) { st = dx_fail(err, DX_ENOMEM, "probe features"); goto done; }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < D; j++) {
            cat[(size_t)i * 2 * D + j] = f.cls[(size_t)i * D + j];
            cat[(size_t)i * 2 * D + D + j] = f.mean[(size_t)i * D + j];
        }
    dx_eval_nodule_pool(&f, es->mask, es->S, nod);
    /* feature set t: row i is fs[t] + i * fd[t] */
    const float *fs_[DX_EVAL_NFEAT] = {f.cls, f.mean, cat, nod};
    const int fd[DX_EVAL_NFEAT] = {D, D, 2 * D, D};
    double bestv = -1;
    r->best = 2;
    for (int t = 0; t < DX_EVAL_NFEAT; t++) {
        const int d = fd[t];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < d; j++) X[(size_t)i * d + j] = fs_[t][(size_t)i * d + j];
        if ((st = probe(es, o, X, d, 0, o->n_boot, &r->probe[t], NULL, err))) goto done;
        if (!isnan(r->probe[t].val_auc) && r->probe[t].val_auc > bestv) { bestv = r->probe[t].val_auc; r->best = t; }
    }
    /* the chosen features again, keeping their test scores, and with the diameter as one more,
     * unpenalised column: do the features add information beyond size? (With the diameter penalised
     * like each of the D feature columns, a strongly regularised probe would shrink its weight with
     * theirs and the comparison would be biased against the features.) */
    if (es->folds) { /* each fold chooses its feature set on its own validation fold */
        double *Xs[DX_EVAL_NFEAT] = {0}, *Xd[DX_EVAL_NFEAT] = {0};
        int fd1[DX_EVAL_NFEAT];
        for (int t = 0; t < DX_EVAL_NFEAT && !st; t++) {
            const int d = fd[t];
            fd1[t] = d + 1;
            Xs[t] = malloc((size_t)n * d * sizeof(double));
            Xd[t] = malloc((size_t)n * (d + 1) * sizeof(double));
            if (!Xs[t] || !Xd[t]) { st = dx_fail(err, DX_ENOMEM, "probe features"); break; }
            for (int i = 0; i < n; i++)
                for (int j = 0; j <= d; j++) {
                    const double v = j == d ? es->diam[i] : fs_[t][(size_t)i * d + j];
                    if (j < d) Xs[t][(size_t)i * d + j] = v;
                    Xd[t][(size_t)i * (d + 1) + j] = v;
                }
        }
        if (!st)
            st = dx_probe_run_cv_sets((const double *const *)Xs, fd, DX_EVAL_NFEAT, 0, es->y, es->fold, es->folds,
                                      es->patient, n, C_GRID, N_CGRID, o->n_boot, o->seed, &r->chosen, r->score,
                                      &r->best, err);
        if (!st)
            st = dx_probe_run_cv_sets((const double *const *)Xd, fd1, DX_EVAL_NFEAT, 1, es->y, es->fold, es->folds,
                                      es->patient, n, C_GRID, N_CGRID, o->n_boot, o->seed, &r->probe_fd,
                                      r->score_fd, NULL, err);
        for (int t = 0; t < DX_EVAL_NFEAT; t++) { free(Xs[t]); free(Xd[t]); }
        if (st) goto done;
    } else {
        const int t = r->best, d = fd[t];
        r->chosen = r->probe[t];
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= d; j++)
                X[(size_t)i * (d + 1) + j] = j == d ? es->diam[i] : fs_[t][(size_t)i * d + j];
        if ((st = probe(es, o, X, d + 1, 1, o->n_boot, &r->probe_fd, r->score_fd, err))) goto done;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < d; j++) X[(size_t)i * d + j] = fs_[t][(size_t)i * d + j];
        dx_probe_result again;
        if ((st = probe(es, o, X, d, 0, 0, &again, r->score, err))) goto done;
    }
    attention_ratios(es, &f, r);
    r->knn_k = o->knn_k;
    if ((st = run_knn(es, cat, 2 * D, o->knn_k, &r->knn_acc, &r->knn_n_test, err))) goto done;
    if (full && (st = run_seg(es, o, &fs, r, err))) goto done;
    st = dx_collapse_diagnostics(be, &f, &fs, es->seg_mask, es->S, es->split, o->seed, &r->col, err);
done:
    free(X); free(cat); free(nod);
    dx_features_free(&fs);
    if (!st && keep) *keep = f;
    else dx_features_free(&f);
    if (st) dx_model_eval_free(r);
    return st;
}

dx_status dx_eval_model_run(const dx_eval_set *es, const dx_eval_opts *o, dx_backend *be,
                            const dx_eval_model *em, int full, dx_model_eval *r, dx_err *err) {
    return run_model(es, o, be, em, full, r, NULL, err);
}

/* ---- outputs -------------------------------------------------------------- */

static void add_num(cJSON *o, const char *k, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}
static void add_pair(cJSON *o, const char *k, double a, double b) {
    cJSON *arr = cJSON_AddArrayToObject(o, k);
    cJSON_AddItemToArray(arr, isfinite(a) ? cJSON_CreateNumber(a) : cJSON_CreateNull());
    cJSON_AddItemToArray(arr, isfinite(b) ? cJSON_CreateNumber(b) : cJSON_CreateNull());
}

static cJSON *probe_json(const dx_probe_result *p) {
    cJSON *o = cJSON_CreateObject();
    add_num(o, "test_auc", p->test_auc);
    if (p->ci.n_boot) add_pair(o, "test_auc_ci", p->ci.lo, p->ci.hi);
    else add_pair(o, "test_auc_ci", NAN, NAN);
    add_num(o, "test_auc_se", p->ci.n_boot ? p->ci.se : NAN);
    add_num(o, "val_auc", p->val_auc);
    add_num(o, "C", p->C);
    cJSON_AddBoolToObject(o, "C_selected_on_val", p->selected_on_val);
    cJSON_AddNumberToObject(o, "cv_folds", p->folds);
    cJSON_AddNumberToObject(o, "n_train", p->n_train);
    cJSON_AddNumberToObject(o, "n_val", p->n_val);
    cJSON_AddNumberToObject(o, "n_test", p->n_test);
    cJSON_AddNumberToObject(o, "n_test_malignant", p->n_test_pos);
    cJSON_AddNumberToObject(o, "n_boot", p->ci.n_boot);
    return o;
}

static cJSON *model_json(const dx_model_eval *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "source", r->source);
    cJSON_AddStringToObject(o, "features", FEAT_NAMES[r->best]);
    cJSON_AddItemToObject(o, "probe", probe_json(&r->chosen));
    cJSON *by = cJSON_AddObjectToObject(o, "probe_by_features");
    for (int t = 0; t < DX_EVAL_NFEAT; t++) cJSON_AddItemToObject(by, FEAT_NAMES[t], probe_json(&r->probe[t]));
    add_num(o, "knn_test_accuracy", r->knn_acc);
    if (r->has_seg) {
        add_num(o, "seg_test_dice", r->seg_dice);
        add_num(o, "seg_test_iou", r->seg_iou);
    }
    add_num(o, "patch_cosine", r->col.patch_cosine);
    add_num(o, "effective_rank", r->col.effective_rank);
    add_num(o, "separability_auc", r->col.separability_auc);
    return o;
}

static dx_status write_json(cJSON *root, const char *path, dx_err *err) {
    char *txt = cJSON_Print(root);
    if (!txt) return dx_fail(err, DX_ENOMEM, "json");
    const void *parts[2] = {txt, "\n"};
    size_t lens[2] = {strlen(txt), 1};
    dx_status st = dx_atomic_write(path, parts, lens, 2, err);
    free(txt);
    return st;
}

/* The patient-level split of this evaluation; written with eval.json at the end. */
static cJSON *split_json(const dx_eval_set *es, const dx_store *s, const dx_eval_opts *o) {
    static const char *const SN[3] = {"train", "val", "test"};
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "seed", (double)o->seed);
    cJSON_AddNumberToObject(root, "val_fraction", o->f_val);
    cJSON_AddNumberToObject(root, "test_fraction", o->f_test);
    cJSON_AddNumberToObject(root, "cv_folds", es->folds);
    cJSON *pat = cJSON_AddObjectToObject(root, "patients");
    for (int p = 0; p < es->n_patients; p++) cJSON_AddStringToObject(pat, es->patient_id[p], SN[es->patient_split[p]]);
    if (es->folds) {
        cJSON *pf = cJSON_AddObjectToObject(root, "patient_folds");
        for (int p = 0; p < es->n_patients; p++) cJSON_AddNumberToObject(pf, es->patient_id[p], es->patient_fold[p]);
    }
    cJSON *nod = cJSON_AddArrayToObject(root, "nodules");
    for (int i = 0; i < es->n; i++) {
        const dx_store_row *row = &s->idx.rows[es->row[i]];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "patient_id", es->patient_id[es->patient[i]]);
        cJSON_AddStringToObject(e, "series_uid", dx_store_info(s, row->series)->series_uid);
        cJSON_AddNumberToObject(e, "label", row->info.label);
        cJSON_AddNumberToObject(e, "malignancy", row->info.malignancy);
        cJSON_AddNumberToObject(e, "n_readers", row->info.n_readers);
        cJSON_AddNumberToObject(e, "diameter_mm", row->info.diameter_mm);
        if (es->y[i] >= 0) cJSON_AddNumberToObject(e, "y", es->y[i]);
        else cJSON_AddNullToObject(e, "y");
        cJSON_AddStringToObject(e, "split", SN[es->split[i]]);
        if (es->folds) cJSON_AddNumberToObject(e, "fold", es->fold[i]);
        cJSON_AddItemToArray(nod, e);
    }
    return root;
}

/* The first three principal components of one crop's patch tokens X [P, D],
 * as RGB in [0, 1] per patch (out [P, 3]): the standard DINO picture, where
 * parts the backbone tells apart get different colours. Computed through the
 * P x P Gram matrix of the centred tokens (P is small, D may be 1024): power
 * iteration with deflation, a fixed start, signs fixed by the largest |score|
 * being positive, each component min-max scaled. */
static int patch_pca_rgb(const float *X, int P, int D, float *out) {
    double *mu = calloc((size_t)D, sizeof *mu), *G = malloc((size_t)P * P * sizeof *G);
    double *v = malloc((size_t)P * sizeof *v), *t = malloc((size_t)P * sizeof *t);
    if (!mu || !G || !v || !t) { free(mu), free(G), free(v), free(t); return -1; }
    for (int p = 0; p < P; p++)
        for (int d = 0; d < D; d++) mu[d] += X[(size_t)p * D + d] / (double)P;
    for (int p = 0; p < P; p++)
        for (int q = p; q < P; q++) {
            double g = 0;
            for (int d = 0; d < D; d++) g += (X[(size_t)p * D + d] - mu[d]) * (X[(size_t)q * D + d] - mu[d]);
            G[(size_t)p * P + q] = G[(size_t)q * P + p] = g;
        }
    for (int k = 0; k < 3; k++) {
        for (int p = 0; p < P; p++) v[p] = 1.0 + 0.01 * ((p * 7 + k * 13) % 11); /* fixed, not orthogonal to anything */
        double lam = 0;
        for (int it = 0; it < 200; it++) {
            double nn = 0;
            for (int p = 0; p < P; p++) {
                double a = 0;
                for (int q = 0; q < P; q++) a += G[(size_t)p * P + q] * v[q];
                t[p] = a, nn += a * a;
            }
            nn = sqrt(nn);
            if (!(nn > 1e-30)) { memset(t, 0, (size_t)P * sizeof *t); lam = 0; break; }
            for (int p = 0; p < P; p++) v[p] = t[p] / nn;
            lam = nn;
        }
        /* scores of the component: G v = lam v = (X X^T) v, so u = v sqrt(lam) */
        double big = 0, mn = INFINITY, mx = -INFINITY;
        for (int p = 0; p < P; p++) if (fabs(v[p]) > fabs(big)) big = v[p];
        const double sg = big < 0 ? -1 : 1;
        for (int p = 0; p < P; p++) {
            t[p] = sg * v[p] * sqrt(lam > 0 ? lam : 0);
            mn = t[p] < mn ? t[p] : mn, mx = t[p] > mx ? t[p] : mx;
        }
        for (int p = 0; p < P; p++) out[p * 3 + k] = mx > mn ? (float)((t[p] - mn) / (mx - mn)) : 0.5f;
        for (int p = 0; p < P; p++) /* deflate: G -= lam v v^T */
            for (int q = 0; q < P; q++) G[(size_t)p * P + q] -= lam * v[p] * v[q];
    }
    free(mu), free(G), free(v), free(t);
    return 0;
}

/* Strip [CT | PCA of the patch tokens | mean over heads | head 0 .. H-1] of
 * one crop, each tile S x S pixel-replicated u times (u = 128 / S, at least 1)
 * so small crops stay visible. Each attention map is min-max scaled: the
 * overlay shows where attention is relatively high, not its absolute level.
 * The consensus nodule mask's outline is drawn in cyan on every tile. */
static dx_status write_attention(const dx_eval_set *es, const dx_features *f, int i, const char *path, dx_err *err) {
    const int S = es->S, P = f->P, H = f->heads, cols = H + 3, u = S < 128 ? 128 / S : 1, T = S * u;
    uint8_t *rgb = malloc((size_t)T * T * cols * 3), *tile = malloc((size_t)S * S * 3);
    float *heat = malloc((size_t)S * S * sizeof *heat), *map = malloc((size_t)P * 3 * sizeof *map);
    dx_status st = DX_OK;
    if (!rgb || !tile || !heat || !map) { st = dx_fail(err, DX_ENOMEM, "attention image"); goto done; }
    const float *gray = es->gray + (size_t)i * S * S;
    const uint8_t *mask = es->mask ? es->mask + (size_t)i * S * S : NULL;
    for (int c = 0; c < cols; c++) {
        if (c == 0) dx_overlay_heat(gray, NULL, S, S, 0, tile);
        else if (c == 1) {
            if (!f->patch || patch_pca_rgb(f->patch + (size_t)i * P * f->D, P, f->D, map)) {
                memset(tile, 0, (size_t)S * S * 3);
            } else {
                for (int y = 0; y < S; y++) /* nearest: one colour per patch */
                    for (int x = 0; x < S; x++) {
                        const int p = (y * f->Hp / S) * f->Wp + x * f->Wp / S;
                        for (int j = 0; j < 3; j++) tile[((size_t)y * S + x) * 3 + j] = (uint8_t)(map[p * 3 + j] * 255.0f + 0.5f);
                    }
            }
        } else {
            for (int p = 0; p < P; p++) {
                double v = 0;
                if (c == 2) { for (int h = 0; h < H; h++) v += f->att[((size_t)i * H + h) * P + p] / H; }
                else v = f->att[((size_t)i * H + (c - 3)) * P + p];
                map[p] = (float)v;
            }
            float mx = map[0], mn = map[0];
            for (int p = 0; p < P; p++) { mx = map[p] > mx ? map[p] : mx; mn = map[p] < mn ? map[p] : mn; }
            for (int p = 0; p < P; p++) map[p] = mx > mn ? (map[p] - mn) / (mx - mn) : 0;
            dx_bilinear_resize(map, f->Hp, f->Wp, heat, S, S);
            dx_overlay_heat(gray, heat, S, S, 0.6f, tile);
        }
        if (mask) /* outline: mask pixels with a 4-neighbour outside the mask */
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++) {
                    if (!mask[(size_t)y * S + x]) continue;
                    int edge = y == 0 || x == 0 || y == S - 1 || x == S - 1 || !mask[(size_t)(y - 1) * S + x] ||
                               !mask[(size_t)(y + 1) * S + x] || !mask[(size_t)y * S + x - 1] || !mask[(size_t)y * S + x + 1];
                    if (edge) {
                        uint8_t *q = tile + ((size_t)y * S + x) * 3;
                        q[0] = 0, q[1] = 255, q[2] = 255;
                    }
                }
        for (int y = 0; y < T; y++)
            for (int x = 0; x < T; x++)
                memcpy(rgb + ((size_t)y * T * cols + (size_t)c * T + x) * 3, tile + ((size_t)(y / u) * S + x / u) * 3, 3);
    }
    st = dx_png_write_rgb(path, rgb, T * cols, T, err);
done:
    free(rgb); free(tile); free(heat); free(map);
    return st;
}

/* ---- paired comparisons on the same test nodules ---------------------------- */

/* Labelled test rows with finite values in every given array (NULL = skip). */
static int test_rows(const dx_eval_set *es, const double *a, const double *b, int *idx) {
    int m = 0;
    for (int i = 0; i < es->n; i++)
        if ((es->folds || es->split[i] == DX_SPLIT_TEST) && es->y[i] >= 0 && (!a || isfinite(a[i])) && (!b || isfinite(b[i])))
            idx[m++] = i;
    return m;
}

static cJSON *diff_json(const dx_paired_diff *d, int n, const char *what) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "what", what);
    add_num(o, "difference", d->diff);
    add_pair(o, "ci95", d->ci.n_boot ? d->ci.lo : NAN, d->ci.n_boot ? d->ci.hi : NAN);
    add_num(o, "p_le0", d->ci.n_boot ? d->p_le0 : NAN);
    cJSON_AddNumberToObject(o, "n_test", n);
    cJSON_AddNumberToObject(o, "n_boot", d->ci.n_boot);
    cJSON_AddStringToObject(o, "resampled", "test patients (all their nodules), paired");
    return o;
}

/* AUC(a) - AUC(b) or mean(a) - mean(b) over the test rows where both are defined. */
static dx_status paired(const dx_eval_set *es, const dx_eval_opts *o, const double *a, const double *b, int auc,
                        const char *what, cJSON *parent, const char *key, dx_err *err) {
    int *idx = malloc(sizeof(int) * (size_t)(es->n > 0 ? es->n : 1));
    double *va = malloc(sizeof(double) * (size_t)(es->n > 0 ? es->n : 1)), *vb = malloc(sizeof(double) * (size_t)(es->n > 0 ? es->n : 1));
    int *y = malloc(sizeof(int) * (size_t)(es->n > 0 ? es->n : 1)), *g = malloc(sizeof(int) * (size_t)(es->n > 0 ? es->n : 1));
    dx_status st = DX_OK;
    if (!idx || !va || !vb || !y || !g) { st = dx_fail(err, DX_ENOMEM, "paired"); goto done; }
    const int m = test_rows(es, a, b, idx);
    int pos = 0;
    for (int k = 0; k < m; k++) {
        va[k] = a[idx[k]];
        vb[k] = b ? b[idx[k]] : 0;
        y[k] = es->y[idx[k]];
        g[k] = es->patient[idx[k]];
        pos += y[k] == 1;
    }
    dx_paired_diff d = {.diff = NAN};
    if (m >= 2 && o->n_boot >= 2 && (!auc || (pos > 0 && pos < m)))
        st = auc ? dx_auc_diff_bootstrap(va, vb, y, g, m, o->n_boot, 0.95, o->seed, &d, err)
                 : dx_mean_bootstrap(va, b ? vb : NULL, g, m, o->n_boot, 0.95, o->seed, &d, err);
    if (!st) cJSON_AddItemToObject(parent, key, diff_json(&d, m, what));
done:
    free(idx); free(va); free(vb); free(y); free(g);
    return st;
}

static cJSON *att_json(const dx_model_eval *r, const dx_paired_diff *d, int n) {
    cJSON *o = diff_json(d, n, "mean over test nodules of the CLS attention mass inside the nodule mask / the mask's "
                               "share of the crop (last block, mean over heads; 1 = chance)");
    /* one backbone: the ratio itself, resampled over test patients, no pairing, no sign test */
    cJSON_DeleteItemFromObject(o, "p_le0");
    cJSON_ReplaceItemInObject(o, "resampled", cJSON_CreateString("test patients (all their nodules)"));
    cJSON *ratio = cJSON_DetachItemFromObject(o, "difference");
    cJSON_AddItemToObject(o, "ratio", ratio);
    cJSON *h = cJSON_AddArrayToObject(o, "per_head");
    for (int k = 0; k < r->att_heads && k < 64; k++)
        cJSON_AddItemToArray(h, isfinite(r->att_ratio_head[k]) ? cJSON_CreateNumber(r->att_ratio_head[k]) : cJSON_CreateNull());
    return o;
}

/* ROC points [[fpr, tpr], ...] of scores over the labelled test rows (all
 * labelled rows under --folds), from (0, 0) to (1, 1), one point per distinct
 * score; NULL when one class is missing. */
static int cmp_desc(const void *a, const void *b) {
    const double x = ((const double *)a)[0], y = ((const double *)b)[0];
    return x < y ? 1 : x > y ? -1 : 0;
}

static cJSON *roc_json(const dx_eval_set *es, const double *score) {
    if (!score) return NULL;
    int *idx = malloc(sizeof(int) * (size_t)(es->n > 0 ? es->n : 1));
    double *sy = idx ? malloc(sizeof(double) * 2 * (size_t)(es->n > 0 ? es->n : 1)) : NULL;
    if (!idx || !sy) { free(idx); free(sy); return NULL; }
    int m = test_rows(es, score, NULL, idx), pos = 0;
    for (int k = 0; k < m; k++) sy[2 * k] = score[idx[k]], sy[2 * k + 1] = es->y[idx[k]], pos += es->y[idx[k]] > 0;
    cJSON *a = NULL;
    if (pos > 0 && pos < m) {
        qsort(sy, (size_t)m, 2 * sizeof(double), cmp_desc);
        a = cJSON_CreateArray();
        double tp = 0, fp = 0;
        const double P = pos, N = m - pos;
        cJSON_AddItemToArray(a, cJSON_CreateDoubleArray((const double[]){0, 0}, 2));
        for (int k = 0; k < m; k++) {
            if (sy[2 * k + 1] > 0) tp++;
            else fp++;
            if (k + 1 < m && sy[2 * (k + 1)] == sy[2 * k]) continue; /* ties: one step */
            cJSON_AddItemToArray(a, cJSON_CreateDoubleArray((const double[]){fp / N, tp / P}, 2));
        }
    }
    free(idx);
    free(sy);
    return a;
}

/* The scores behind every comparison, one entry per labelled nodule the probes scored
 * (the test split, or all under --folds), as columns: what lets figures be pooled over
 * runs (several training seeds resampled together with the patients) without re-running
 * the evaluation. NaN / missing scores are null. */
static cJSON *nodule_scores_json(const dx_eval_set *es, const dx_model_eval *rm, const dx_model_eval *rr,
                                 const double *size_score, const double *rad_score) {
    int *idx = malloc(sizeof(int) * (size_t)(es->n > 0 ? es->n : 1));
    if (!idx) return NULL;
    const int m = test_rows(es, NULL, NULL, idx);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "rows", es->folds ? "every labelled nodule, scored out of fold"
                                                 : "the labelled nodules of the test split");
    cJSON *pid = cJSON_AddArrayToObject(o, "patient");
    for (int k = 0; k < m; k++) cJSON_AddItemToArray(pid, cJSON_CreateString(es->patient_id[es->patient[idx[k]]]));
    const struct {
        const char *key;
        const double *v;
    } col[] = {{"diameter_mm", es->diam},
               {"backbone", rm->score},
               {"random_init", rr ? rr->score : NULL},
               {"diameter", size_score},
               {"radiomics", rad_score},
               {"features_plus_diameter", rm->score_fd},
               {"attention_backbone", rm->att_ratio},
               {"attention_random_init", rr ? rr->att_ratio : NULL}};
    cJSON *lab = cJSON_AddArrayToObject(o, "label");
    for (int k = 0; k < m; k++) cJSON_AddItemToArray(lab, cJSON_CreateNumber(es->y[idx[k]]));
    for (size_t c = 0; c < sizeof col / sizeof col[0]; c++) {
        if (!col[c].v) continue;
        cJSON *a = cJSON_AddArrayToObject(o, col[c].key);
        for (int k = 0; k < m; k++) {
            const double v = col[c].v[idx[k]];
            cJSON_AddItemToArray(a, isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull());
        }
    }
    free(idx);
    return o;
}

static dx_status paired_comparisons(const dx_eval_set *es, const dx_eval_opts *o, const dx_model_eval *rm,
                                    const dx_model_eval *rr, const dx_model_eval *rx, int n_extra,
                                    const double *size_score, const double *rad_score, cJSON **out, dx_err *err) {
    cJSON *c = cJSON_CreateObject();
    /* the main backbone against each --also backbone (e.g. Gram on vs off), same test nodules */
    cJSON *va = cJSON_AddArrayToObject(c, "main_minus_also_auc");
    for (int k = 0; k < n_extra; k++) {
        cJSON *tmp = cJSON_CreateObject();
        char what[1200];
        snprintf(what, sizeof what, "test AUC, main backbone - %s", rx[k].source);
        dx_status s2 = paired(es, o, rm->score, rx[k].score, 1, what, tmp, "d", err);
        if (s2) { cJSON_Delete(tmp); cJSON_Delete(c); return s2; }
        cJSON *d = cJSON_DetachItemFromObject(tmp, "d");
        cJSON_AddStringToObject(d, "also", rx[k].source);
        cJSON_AddItemToArray(va, d);
        cJSON_Delete(tmp);
    }
    dx_status st = paired(es, o, rm->score, rr ? rr->score : NULL, 1, "test AUC, SSL backbone - random-init backbone",
                          c, "ssl_minus_random_init_auc", err);
    if (!rr) cJSON_DeleteItemFromObject(c, "ssl_minus_random_init_auc");
    if (!st) st = paired(es, o, rm->score_fd, size_score, 1, "test AUC, SSL features + diameter - diameter alone", c,
                         "features_plus_diameter_minus_diameter_auc", err);
    if (!st) st = paired(es, o, rm->score, size_score, 1, "test AUC, SSL features - diameter alone", c,
                         "ssl_minus_diameter_auc", err);
    /* the hand-crafted baseline: is there information beyond size in the image at all, and
     * do the learned features carry as much of it? */
    if (!st && rad_score)
        st = paired(es, o, rad_score, size_score, 1, "test AUC, hand-crafted radiomics + diameter - diameter alone", c,
                    "radiomics_minus_diameter_auc", err);
    if (!st && rad_score)
        st = paired(es, o, rm->score_fd, rad_score, 1,
                    "test AUC, SSL features + diameter - hand-crafted radiomics + diameter", c,
                    "features_plus_diameter_minus_radiomics_auc", err);
    cJSON *fd = probe_json(&rm->probe_fd);
    cJSON_AddItemToObject(c, "features_plus_diameter_probe", fd);
    /* attention inside the nodule: each backbone alone, and SSL - random init */
    for (int k = 0; !st && k < (rr ? 2 : 1); k++) {
        const dx_model_eval *r = k ? rr : rm;
        int *idx = malloc(sizeof(int) * (size_t)(es->n > 0 ? es->n : 1));
        double *v = malloc(sizeof(double) * (size_t)(es->n > 0 ? es->n : 1));
        int *g = malloc(sizeof(int) * (size_t)(es->n > 0 ? es->n : 1));
        dx_paired_diff d = {.diff = NAN};
        int m = 0;
        if (!idx || !v || !g) st = dx_fail(err, DX_ENOMEM, "attention ratio");
        else {
            for (int i = 0; i < es->n; i++)
                if (es->split[i] == DX_SPLIT_TEST && isfinite(r->att_ratio[i])) { v[m] = r->att_ratio[i]; g[m++] = es->patient[i]; }
            if (m >= 2 && o->n_boot >= 2) st = dx_mean_bootstrap(v, NULL, g, m, o->n_boot, 0.95, o->seed, &d, err);
        }
        if (!st) cJSON_AddItemToObject(c, k ? "attention_in_nodule_random_init" : "attention_in_nodule", att_json(r, &d, m));
        free(idx); free(v); free(g);
    }
    if (!st && rr) {
        /* paired over the test nodules where both have a ratio */
        int *idx = malloc(sizeof(int) * (size_t)(es->n > 0 ? es->n : 1));
        double *a = malloc(sizeof(double) * (size_t)(es->n > 0 ? es->n : 1)), *b = malloc(sizeof(double) * (size_t)(es->n > 0 ? es->n : 1));
        int *g = malloc(sizeof(int) * (size_t)(es->n > 0 ? es->n : 1));
        dx_paired_diff d = {.diff = NAN};
        int m = 0;
        if (!idx || !a || !b || !g) st = dx_fail(err, DX_ENOMEM, "attention ratio");
        else {
            for (int i = 0; i < es->n; i++)
                if (es->split[i] == DX_SPLIT_TEST && isfinite(rm->att_ratio[i]) && isfinite(rr->att_ratio[i])) {
                    a[m] = rm->att_ratio[i]; b[m] = rr->att_ratio[i]; g[m++] = es->patient[i];
                }
            if (m >= 2 && o->n_boot >= 2) st = dx_mean_bootstrap(a, b, g, m, o->n_boot, 0.95, o->seed, &d, err);
        }
        if (!st) cJSON_AddItemToObject(c, "attention_in_nodule_ssl_minus_random_init",
                                       diff_json(&d, m, "attention-in-nodule ratio, SSL - random init"));
        free(idx); free(a); free(b); free(g);
    }
    if (st) { cJSON_Delete(c); return st; }
    *out = c;
    return DX_OK;
}

/* Plain sentences: does the backbone beat its baselines, with the paired CIs. */
static cJSON *verdicts_json(const cJSON *cmp, const dx_model_eval *rm, const dx_probe_result *size_r,
                            const dx_model_eval *rr) {
    cJSON *v = cJSON_CreateArray();
    char b[512];
    /* probe: a comparison of probe scores (out of fold under --folds); else of test nodules */
    struct { const char *key, *yes, *no; int probe; } q[] = {
        {"ssl_minus_random_init_auc", "The SSL backbone beats the random-init backbone",
         "The SSL backbone does not beat the random-init backbone", 1},
        {"features_plus_diameter_minus_diameter_auc", "The SSL features add information beyond the nodule diameter",
         "The SSL features do not add information beyond the nodule diameter", 1},
        {"ssl_minus_diameter_auc", "The SSL features alone beat the diameter alone",
         "The SSL features alone do not beat the diameter alone", 1},
        {"radiomics_minus_diameter_auc",
         "Hand-crafted radiomics (intensity, shape, margin of the consensus mask) add information beyond the diameter",
         "Hand-crafted radiomics (intensity, shape, margin of the consensus mask) do not add information beyond the diameter", 1},
        {"features_plus_diameter_minus_radiomics_auc", "The SSL features + diameter beat the hand-crafted radiomics + diameter",
         "The SSL features + diameter do not beat the hand-crafted radiomics + diameter", 1},
        {"attention_in_nodule_ssl_minus_random_init", "The SSL backbone's CLS attention falls on the nodule more than a random-init backbone's",
         "The SSL backbone's CLS attention does not fall on the nodule more than a random-init backbone's", 0},
    };
    for (size_t k = 0; k < sizeof q / sizeof q[0]; k++) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(cmp, q[k].key);
        if (!d) continue;
        const cJSON *ci = cJSON_GetObjectItemCaseSensitive(d, "ci95");
        double diff = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(d, "difference"));
        double lo = cJSON_GetNumberValue(cJSON_GetArrayItem(ci, 0)), hi = cJSON_GetNumberValue(cJSON_GetArrayItem(ci, 1));
        if (!isfinite(diff) || !isfinite(lo)) {
            snprintf(b, sizeof b, "%s: not measurable here (too few labelled test nodules).", q[k].no);
        } else {
            /* the probe comparisons use out-of-fold scores of every patient under --folds; attention the test split */
            char over[64];
            if (rm->chosen.folds && q[k].probe) snprintf(over, sizeof over, "all patients, %d-fold out-of-fold scores", rm->chosen.folds);
            else snprintf(over, sizeof over, "test patients");
            snprintf(b, sizeof b, "%s: difference %+.3f [%+.3f, %+.3f] (95%% paired bootstrap over %s)%s.",
                     lo > 0 ? q[k].yes : q[k].no, diff, lo, hi, over, lo > 0 ? "" : hi < 0 ? "; it is worse" : "; the CI includes 0");
        }
        cJSON_AddItemToArray(v, cJSON_CreateString(b));
    }
    const cJSON *ar = cJSON_GetObjectItemCaseSensitive(cmp, "attention_in_nodule");
    if (ar) {
        const cJSON *ci = cJSON_GetObjectItemCaseSensitive(ar, "ci95");
        double m = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(ar, "ratio"));
        double lo = cJSON_GetNumberValue(cJSON_GetArrayItem(ci, 0)), hi = cJSON_GetNumberValue(cJSON_GetArrayItem(ci, 1));
        if (isfinite(m) && isfinite(lo)) {
            snprintf(b, sizeof b, "CLS attention inside the nodule: %.2fx chance [%.2f, %.2f]%s.", m, lo, hi,
                     lo > 1 ? "" : " - not above chance");
            cJSON_AddItemToArray(v, cJSON_CreateString(b));
        }
    }
    (void)rm; (void)size_r; (void)rr;
    return v;
}

dx_status dx_eval_all(const dx_store *s, const dx_eval_opts *o, dx_backend *be, const dx_eval_model *main_model,
                      const dx_eval_model *const *extra, int n_extra, const char *out_dir, dx_err *err) {
    dx_eval_set es;
    dx_model_eval rm, rr, *rx = NULL;
    memset(&rm, 0, sizeof rm);
    memset(&rr, 0, sizeof rr);
    dx_features fm = {0};
    dx_eval_model rnd = {0};
    int have_rnd = 0;
    cJSON *root = NULL, *split = NULL, *roc = NULL;
    dx_status st;
    if ((st = dx_mkdirs(out_dir, err))) return st;
    /* results of an earlier evaluation in out_dir go first and the new split.json and
     * eval.json are written together at the end: an evaluation killed half-way leaves
     * no eval.json, never one that belongs to another split */
    char path[1100];
    static const char *const OLD[] = {"eval.json", "split.json"};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", out_dir, OLD[k]);
        if (unlink(path) != 0 && errno != ENOENT) return dx_fail(err, DX_EIO, "remove %s: %s", path, strerror(errno));
    }
    if ((st = dx_eval_set_build(&es, s, o, err))) return st;
    int nl = 0, nm = 0;
    for (int i = 0; i < es.n; i++) { nl += es.y[i] >= 0; nm += es.y[i] == 1; }
    DX_INFO("eval: %d nodules (%d labelled, %d malignant), %d patients, crops %dx%d", es.n, nl, nm, es.n_patients, es.S, es.S);
    if (!(split = split_json(&es, s, o))) { st = dx_fail(err, DX_ENOMEM, "eval: split"); goto done; }
    rx = calloc((size_t)(n_extra ? n_extra : 1), sizeof *rx);
    if (!rx) { st = dx_fail(err, DX_ENOMEM, "eval"); goto done; }

    DX_INFO("eval: backbone %s", main_model->source);
    if ((st = run_model(&es, o, be, main_model, 1, &rm, &fm, err))) goto done;
    if (o->random_baseline) {
        if ((st = dx_eval_model_random(&rnd, &main_model->vit.cfg, be, o->random_init_seed, err))) goto done;
        have_rnd = 1;
        DX_INFO("eval: baseline %s", rnd.source);
        if ((st = run_model(&es, o, be, &rnd, 1, &rr, NULL, err))) goto done;
    }
    for (int k = 0; k < n_extra; k++) {
        DX_INFO("eval: extra backbone %s", extra[k]->source);
        if ((st = run_model(&es, o, be, extra[k], 1, &rx[k], NULL, err))) goto done;
    }
    /* size-only baseline: the same probe protocol on the diameter alone */
    dx_probe_result size_r;
    double *size_score = malloc(sizeof(double) * (size_t)(es.n > 0 ? es.n : 1));
    if (!size_score) { st = dx_fail(err, DX_ENOMEM, "eval"); goto done; }
    st = probe(&es, o, es.diam, 1, 0, o->n_boot, &size_r, size_score, err);
    /* hand-crafted baseline: the diameter and radiomics.h's descriptors, the same protocol */
    dx_probe_result rad_r;
    memset(&rad_r, 0, sizeof rad_r);
    double *rad_score = NULL;
    if (!st && es.radio) {
        if (!(rad_score = malloc(sizeof(double) * (size_t)es.n))) st = dx_fail(err, DX_ENOMEM, "eval");
        else st = probe(&es, o, es.radio, 1 + DX_RADIOMICS_N, 0, o->n_boot, &rad_r, rad_score, err);
    }
    /* ROC curves of the test scores, for the report */
    cJSON *rc;
    roc = cJSON_CreateObject();
    if ((rc = roc_json(&es, rm.score))) cJSON_AddItemToObject(roc, "backbone", rc);
    if ((rc = roc_json(&es, size_score))) cJSON_AddItemToObject(roc, "diameter", rc);
    if ((rc = roc_json(&es, rad_score))) cJSON_AddItemToObject(roc, "radiomics", rc);
    if (have_rnd && (rc = roc_json(&es, rr.score))) cJSON_AddItemToObject(roc, "random_init", rc);
    if ((rc = roc_json(&es, rm.score_fd))) cJSON_AddItemToObject(roc, "features_plus_diameter", rc);
    cJSON *cmp = NULL, *scores = NULL;
    if (!st) st = paired_comparisons(&es, o, &rm, have_rnd ? &rr : NULL, rx, n_extra, size_score, rad_score, &cmp, err);
    if (!st) scores = nodule_scores_json(&es, &rm, have_rnd ? &rr : NULL, size_score, rad_score);
    free(size_score);
    free(rad_score);
    if (st) goto done;

    /* attention overlays: test nodules first, then any */
    char adir[1100];
    snprintf(adir, sizeof adir, "%s/attention", out_dir);
    if ((st = dx_mkdirs(adir, err))) { cJSON_Delete(scores); cJSON_Delete(cmp); goto done; }
    root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "comparisons", cmp); /* owned by root from here */
    cJSON_AddItemToObject(root, "roc", roc);
    roc = NULL;
    if (scores) cJSON_AddItemToObject(root, "nodule_scores", scores);
    cJSON *att = cJSON_CreateArray();
    int written = 0;
    for (int pass = 0; pass < 2 && written < o->n_attention; pass++)
        for (int i = 0; i < es.n && written < o->n_attention; i++) {
            if ((pass == 0) != (es.split[i] == DX_SPLIT_TEST)) continue;
            char path[1200], rel[64];
            snprintf(rel, sizeof rel, "attention/att_%d.png", written);
            snprintf(path, sizeof path, "%s/%s", out_dir, rel);
            if ((st = write_attention(&es, &fm, i, path, err))) { cJSON_Delete(att); goto done; }
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "file", rel);
            cJSON_AddStringToObject(e, "patient_id", es.patient_id[es.patient[i]]);
            cJSON_AddNumberToObject(e, "diameter_mm", es.diam[i]);
            cJSON_AddNumberToObject(e, "malignancy", s->idx.rows[es.row[i]].info.malignancy);
            cJSON_AddStringToObject(e, "split", es.split[i] == DX_SPLIT_TEST ? "test" : es.split[i] == DX_SPLIT_VAL ? "val" : "train");
            cJSON *cols = cJSON_AddArrayToObject(e, "columns"); /* left to right, equal tiles */
            cJSON_AddItemToArray(cols, cJSON_CreateString("CT"));
            cJSON_AddItemToArray(cols, cJSON_CreateString("PCA"));
            cJSON_AddItemToArray(cols, cJSON_CreateString("mean"));
            for (int h = 0; h < fm.heads; h++) {
                char hn[24];
                snprintf(hn, sizeof hn, "head %d", h);
                cJSON_AddItemToArray(cols, cJSON_CreateString(hn));
            }
            cJSON_AddBoolToObject(e, "nodule_outline", es.mask != NULL);
            cJSON_AddItemToArray(att, e);
            written++;
        }

    cJSON *probe = probe_json(&rm.chosen);
    cJSON_AddStringToObject(probe, "features", FEAT_NAMES[rm.best]);
    cJSON *by = cJSON_AddObjectToObject(probe, "by_features");
    for (int t = 0; t < DX_EVAL_NFEAT; t++) cJSON_AddItemToObject(by, FEAT_NAMES[t], probe_json(&rm.probe[t]));
    cJSON_AddItemToObject(root, "probe", probe);

    cJSON *bl = cJSON_AddObjectToObject(root, "baselines");
    add_num(bl, "size_only_auc", size_r.test_auc);
    add_pair(bl, "size_only_auc_ci", size_r.ci.n_boot ? size_r.ci.lo : NAN, size_r.ci.n_boot ? size_r.ci.hi : NAN);
    cJSON_AddItemToObject(bl, "size_only", probe_json(&size_r));
    if (es.radio) {
        add_num(bl, "radiomics_auc", rad_r.test_auc);
        add_pair(bl, "radiomics_auc_ci", rad_r.ci.n_boot ? rad_r.ci.lo : NAN, rad_r.ci.n_boot ? rad_r.ci.hi : NAN);
        cJSON *ra = probe_json(&rad_r);
        cJSON *fe = cJSON_AddArrayToObject(ra, "features");
        cJSON_AddItemToArray(fe, cJSON_CreateString("diameter_mm"));
        for (int c = 0; c < DX_RADIOMICS_N; c++) cJSON_AddItemToArray(fe, cJSON_CreateString(dx_radiomics_names[c]));
        cJSON_AddItemToObject(bl, "radiomics", ra);
    } else {
        cJSON_AddNullToObject(bl, "radiomics_auc");
    }
    if (have_rnd) {
        const dx_probe_result *p = &rr.chosen;
        add_num(bl, "random_init_auc", p->test_auc);
        add_pair(bl, "random_init_auc_ci", p->ci.n_boot ? p->ci.lo : NAN, p->ci.n_boot ? p->ci.hi : NAN);
        cJSON_AddItemToObject(bl, "random_init", model_json(&rr));
    } else {
        cJSON_AddNullToObject(bl, "random_init_auc");
    }
    cJSON *ex = cJSON_AddArrayToObject(bl, "extra");
    for (int k = 0; k < n_extra; k++) cJSON_AddItemToArray(ex, model_json(&rx[k]));

    cJSON_AddItemToObject(root, "verdicts", verdicts_json(cmp, &rm, &size_r, have_rnd ? &rr : NULL));

    cJSON *knn = cJSON_AddObjectToObject(root, "knn");
    add_num(knn, "test_accuracy", rm.knn_acc);
    cJSON_AddNumberToObject(knn, "k", o->knn_k);
    cJSON_AddNumberToObject(knn, "n_test", rm.knn_n_test);
    cJSON_AddStringToObject(knn, "features", "concat (cosine)");
    if (have_rnd) add_num(knn, "random_init_test_accuracy", rr.knn_acc);

    cJSON *seg = cJSON_AddObjectToObject(root, "seg");
    add_num(seg, "test_dice", rm.seg_dice);
    add_num(seg, "test_iou", rm.seg_iou);
    cJSON_AddNumberToObject(seg, "n_train", rm.seg_n_train);
    cJSON_AddNumberToObject(seg, "n_test", rm.seg_n_test);
    cJSON_AddNumberToObject(seg, "steps", o->seg_steps);
    add_num(seg, "final_train_loss", rm.seg_loss);
    cJSON *bins = cJSON_AddObjectToObject(seg, "dice_by_size");
    static const char *const BN[3] = {"lt6mm", "6to10mm", "gt10mm"};
    for (int b = 0; b < 3; b++) {
        cJSON *e = cJSON_AddObjectToObject(bins, BN[b]);
        add_num(e, "dice", rm.seg_dice_bin[b]);
        cJSON_AddNumberToObject(e, "n", rm.seg_n_bin[b]);
    }
    if (have_rnd) { add_num(seg, "random_init_dice", rr.seg_dice); add_num(seg, "random_init_iou", rr.seg_iou); }

    cJSON *col = cJSON_AddObjectToObject(root, "collapse");
    add_num(col, "patch_cosine", rm.col.patch_cosine);
    add_num(col, "effective_rank", rm.col.effective_rank);
    add_num(col, "separability_auc", rm.col.separability_auc);
    cJSON_AddStringToObject(col, "separability", "test AUC of a logistic probe, nodule (>=50% mask) vs parenchyma (0%) patches");
    cJSON_AddNumberToObject(col, "n_sep_train", rm.col.n_sep_train);
    cJSON_AddNumberToObject(col, "n_sep_test", rm.col.n_sep_test);
    if (have_rnd) {
        add_num(col, "random_init_patch_cosine", rr.col.patch_cosine);
        add_num(col, "random_init_effective_rank", rr.col.effective_rank);
        add_num(col, "random_init_separability_auc", rr.col.separability_auc);
    }
    cJSON_AddItemToObject(root, "attention", att);

    cJSON_AddStringToObject(root, "dinox_version", dx_version_string());
    const dx_vit_config *vc = &main_model->vit.cfg;
    cJSON *mo = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(mo, "source", main_model->source);
    cJSON_AddStringToObject(mo, "arch", vc->arch);
    cJSON_AddNumberToObject(mo, "dim", vc->dim);
    cJSON_AddNumberToObject(mo, "depth", vc->depth);
    if (main_model->full_depth > vc->depth) /* --layer: the features of block `depth` of full_depth */
        cJSON_AddNumberToObject(mo, "full_depth", main_model->full_depth);
    cJSON_AddNumberToObject(mo, "heads", vc->heads);
    cJSON_AddNumberToObject(mo, "patch", vc->patch);
    cJSON_AddNumberToObject(mo, "registers", vc->registers);
    if (main_model->step >= 0) cJSON_AddNumberToObject(mo, "step", (double)main_model->step);

    cJSON *da = cJSON_AddObjectToObject(root, "data");
    cJSON_AddStringToObject(da, "store", s->dir);
    cJSON_AddNumberToObject(da, "n_patients", es.n_patients);
    cJSON_AddNumberToObject(da, "n_nodules", es.n);
    cJSON_AddNumberToObject(da, "n_labelled", nl);
    cJSON_AddNumberToObject(da, "n_malignant", nm);
    cJSON_AddNumberToObject(da, "crop_size", es.S);
    cJSON_AddNumberToObject(da, "crop_min_side_mm", o->crop.min_side_mm);
    cJSON_AddNumberToObject(da, "crop_diameter_mult", o->crop.diam_mult);
    cJSON_AddNumberToObject(da, "seg_crop_min_side_mm", o->seg_min_side_mm);
    cJSON_AddNumberToObject(da, "seg_crop_diameter_mult", o->seg_diam_mult);
    add_pair(da, "window_width_level", o->crop.win_width, o->crop.win_level);
    cJSON_AddBoolToObject(da, "stack25d", o->crop.stack25d);
    cJSON_AddNumberToObject(da, "min_readers", o->min_readers);
    add_pair(da, "benign_below_malignant_above", o->benign_below, o->malignant_above);
    cJSON_AddNumberToObject(da, "seed", (double)o->seed);

    snprintf(path, sizeof path, "%s/split.json", out_dir);
    if ((st = write_json(split, path, err))) goto done;
    snprintf(path, sizeof path, "%s/eval.json", out_dir);
    st = write_json(root, path, err);
    if (!st)
        DX_INFO("eval: probe test AUC %.3f [%.3f, %.3f] (%s), size-only %.3f, radiomics %.3f, random-init %.3f, kNN %.3f, Dice %.3f, IoU %.3f, patch cos %.3f, erank %.1f -> %s",
                rm.chosen.test_auc, rm.chosen.ci.lo, rm.chosen.ci.hi, FEAT_NAMES[rm.best],
                size_r.test_auc, es.radio ? rad_r.test_auc : NAN, have_rnd ? rr.chosen.test_auc : NAN, rm.knn_acc, rm.seg_dice, rm.seg_iou,
                rm.col.patch_cosine, rm.col.effective_rank, path);
done:
    cJSON_Delete(root);
    cJSON_Delete(split);
    cJSON_Delete(roc);
    if (have_rnd) dx_eval_model_free(&rnd, be);
    dx_features_free(&fm);
    dx_model_eval_free(&rm);
    dx_model_eval_free(&rr);
    for (int k = 0; rx && k < n_extra; k++) dx_model_eval_free(&rx[k]);
    free(rx);
    dx_eval_set_free(&es);
    return st;
}

dx_status dx_eval_track(const dx_store *s, const dx_eval_opts *o, dx_backend *be, const dx_vit_config *cfg,
                        const char *ckpt_dir, const char *out_dir, dx_err *err) {
    char **paths = NULL;
    int64_t *steps = NULL;
    int n = 0;
    dx_status st = dx_eval_list_checkpoints(ckpt_dir, &paths, &steps, &n, err);
    if (st) return st;
    if (!n) { dx_eval_free_list(paths, steps, n); return dx_fail(err, DX_ENOTFOUND, "no checkpoints in %s", ckpt_dir); }
    if ((st = dx_mkdirs(out_dir, err))) { dx_eval_free_list(paths, steps, n); return st; }
    dx_eval_set es;
    if ((st = dx_eval_set_build(&es, s, o, err))) { dx_eval_free_list(paths, steps, n); return st; }
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n && !st; i++) {
        dx_eval_model em;
        if ((st = dx_eval_model_from_ckpt(&em, cfg, be, paths[i], "teacher", err))) break;
        dx_model_eval r;
        st = run_model(&es, o, be, &em, 0, &r, NULL, err);
        dx_eval_model_free(&em, be);
        if (st) break;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "step", (double)steps[i]);
        add_num(e, "patch_cosine", r.col.patch_cosine);
        add_num(e, "effective_rank", r.col.effective_rank);
        add_num(e, "separability_auc", r.col.separability_auc);
        add_num(e, "probe_test_auc", r.chosen.test_auc);
        add_num(e, "knn_test_accuracy", r.knn_acc);
        cJSON_AddItemToArray(arr, e);
        DX_INFO("track: step %lld patch cos %.4f erank %.2f separability %.3f", (long long)steps[i],
                r.col.patch_cosine, r.col.effective_rank, r.col.separability_auc);
        dx_model_eval_free(&r);
    }
    if (!st) {
        char path[1100];
        snprintf(path, sizeof path, "%s/collapse_track.json", out_dir);
        st = write_json(arr, path, err);
    }
    cJSON_Delete(arr);
    dx_eval_set_free(&es);
    dx_eval_free_list(paths, steps, n);
    return st;
}
