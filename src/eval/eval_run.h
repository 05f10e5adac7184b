/* eval_run.h - `dinox eval` as a library call: the evaluation set (nodules,
 * labels, patient split, crops) built once from a store, then each backbone
 * evaluated on it (probe on CLS / mean-pooled / concatenated features, size
 * and random-init baselines, k-NN, segmentation head, attention maps,
 * collapse diagnostics), results written as OUT/eval.json, OUT/split.json
 * and OUT/attention/att_<i>.png. --track adds OUT/collapse_track.json over the
 * checkpoints of a run. Layout and key meanings: docs/eval.md. */
#ifndef DX_EVAL_RUN_H
#define DX_EVAL_RUN_H

#include <stdint.h>

#include "backend/dx_backend.h"
#include "core/dx_error.h"
#include "eval/backbone.h"
#include "eval/collapse.h"
#include "eval/crops.h"
#include "eval/probe.h"
#include "io/store.h"

/* Frozen feature sets the probe tries (cls, mean, concat, nodule): eval_run.c. */
#define DX_EVAL_NFEAT 4

typedef struct dx_eval_opts {
    dx_crop_opts crop;       /* probe / attention / collapse crops (context around the nodule) */
    double seg_min_side_mm;  /* segmentation crops: side = max(this, seg_diam_mult x diameter) (12) */
    double seg_diam_mult;    /* (2): the nodule spans about half the crop, i.e. several patches */
    int min_readers;         /* nodules rated by fewer readers are not labelled (3) */
    double benign_below;     /* median malignancy < this -> benign (3) */
    double malignant_above;  /* median malignancy > this -> malignant (3); between: excluded */
    double f_val, f_test;    /* patient fractions (0.2, 0.2) */
    uint64_t seed;           /* split, bootstrap, subsampling */
    uint64_t random_init_seed; /* weights of the random-init baseline */
    int n_boot;              /* 1000 */
    int knn_k;               /* 20 */
    int seg_steps;           /* 300 */
    double seg_lr;           /* 0.05 */
    int n_attention;         /* attention overlays written (4) */
    int batch;               /* images per forward (16) */
    int random_baseline;     /* 1: evaluate the random-init backbone too */
    int folds;               /* 0: the probes use the one split; K >= 3: K-fold cross-validation over
                              * patients (every labelled nodule scored out of fold; k-NN, segmentation
                              * and attention keep the one split) */
} dx_eval_opts;

void dx_eval_opts_default(dx_eval_opts *o);

typedef struct dx_eval_set {
    int S;                   /* crop side (pixels) */
    int n;                   /* nodules = crops */
    int *row, *patient, *y, *split; /* [n]: store row, patient index, label (-1 = excluded), DX_SPLIT_* */
    double *diam;            /* [n] mm */
    double *radio;           /* [n, 1 + DX_RADIOMICS_N]: the diameter, then radiomics.h's descriptors
                              * (NULL when a labelled nodule has no consensus mask) */
    float *img;              /* [n, 3, S, S] */
    float *gray;             /* [n, S, S] windowed centre slice */
    uint8_t *mask;           /* [n, S, S] consensus mask on the probe crops */
    float *seg_img;          /* [n, 3, S, S] nodule-scale crops for segmentation */
    uint8_t *seg_mask;       /* [n, S, S] */
    int n_patients;
    char (*patient_id)[DX_UID_MAX];
    int *patient_split, *patient_stratum;
    int folds;               /* o->folds */
    int *fold;               /* [n] cross-validation fold of the nodule's patient (NULL without folds) */
    int *patient_fold;       /* [n_patients] (NULL without folds) */
} dx_eval_set;

dx_status dx_eval_set_build(dx_eval_set *es, const dx_store *s, const dx_eval_opts *o, dx_err *err);
void dx_eval_set_free(dx_eval_set *es);

typedef struct dx_model_eval {
    char source[1024];
    dx_probe_result probe[DX_EVAL_NFEAT]; /* features: 0 cls, 1 mean-pooled patches, 2 concat, 3 nodule-pooled */
    int best;                 /* feature set chosen by validation AUC (2 if undecided); with folds: the set
                               * most folds chose (each fold chooses its own) */
    dx_probe_result chosen;   /* the probe of the chosen features: probe[best], or with folds the
                               * cross-validated probe whose folds each chose a set */
    double knn_acc;
    int knn_k, knn_n_test;
    int has_seg;
    double seg_dice, seg_iou, seg_loss, seg_dice_bin[3];
    int seg_n_train, seg_n_test, seg_n_bin[3];
    dx_collapse col;
    /* paired comparisons need per-item values (allocated by the run, dx_model_eval_free) */
    double *score;            /* [n] test decision of the chosen features' probe, NAN elsewhere */
    dx_probe_result probe_fd; /* chosen features + nodule diameter */
    double *score_fd;         /* [n] its test decisions */
    double *att_ratio;        /* [n] CLS attention mass inside the nodule / the mask's share of the crop,
                                 mean over heads; NAN without a mask */
    double att_ratio_head[64];/* mean over test nodules, per head (first 64 heads) */
    int att_heads, att_n;     /* heads, test nodules with a mask */
} dx_model_eval;

void dx_model_eval_free(dx_model_eval *r);

/* Attention-in-nodule ratio of one crop and head: att[P] (CLS -> patch
 * probabilities), mask [S, S] on a Hp x Wp patch grid (S divisible): the
 * attention share of the patches weighted by the fraction of each patch
 * inside the mask, divided by the mask's share of the crop. 1 = chance,
 * 1/share = all mass inside; NAN for an empty mask. */
double dx_attention_in_mask_ratio(const float *att, int Hp, int Wp, const uint8_t *mask, int S);

/* The probe's "nodule" features: f->patch [n, P, D] pooled over the nodule,
 * each patch weighted by the share of its pixels inside mask [n, S, S]; a crop
 * whose mask is empty takes the patch under the crop centre. out [n, D]. */
void dx_eval_nodule_pool(const dx_features *f, const uint8_t *mask, int S, float *out);

/* full = 1: also the segmentation head. Features of em are computed here. */
dx_status dx_eval_model_run(const dx_eval_set *es, const dx_eval_opts *o, dx_backend *be,
                            const dx_eval_model *em, int full, dx_model_eval *r, dx_err *err);

/* The whole evaluation: main model, random-init baseline (same config),
 * optional extra models (each reported beside the main one), attention PNGs,
 * eval.json + split.json under out_dir. */
dx_status dx_eval_all(const dx_store *s, const dx_eval_opts *o, dx_backend *be, const dx_eval_model *main_model,
                      const dx_eval_model *const *extra, int n_extra, const char *out_dir, dx_err *err);

/* Diagnostics over the checkpoints of a run (OUT/collapse_track.json). */
dx_status dx_eval_track(const dx_store *s, const dx_eval_opts *o, dx_backend *be, const dx_vit_config *cfg,
                        const char *ckpt_dir, const char *out_dir, dx_err *err);

#endif /* DX_EVAL_RUN_H */
