/* backbone.h - the frozen backbone of an evaluation: where its weights come
 * from (a safetensors file, a run's checkpoint, or a random initialisation)
 * and the features it gives for a set of crops.
 *
 * Features per image (eval-mode forward, final-norm tokens a->out [N, T, D]):
 *   cls   [D]      token 0
 *   mean  [D]      mean of the P patch tokens (registers excluded)
 *   patch [P, D]   the patch tokens, row-major over the Hp x Wp grid
 *   att   [H, P]   last block's attention probabilities CLS -> patch per head
 *                  ("blocks.<depth-1>.att" row 0, patch columns) */
#ifndef DX_EVAL_BACKBONE_H
#define DX_EVAL_BACKBONE_H

#include <stdint.h>

#include "backend/dx_backend.h"
#include "core/dx_error.h"
#include "nn/vit.h"

typedef struct dx_eval_model {
    dx_vit vit;
    float *w;          /* backend memory [vit.tab.total] */
    int64_t step;      /* checkpoint step, -1 if not from a checkpoint */
    char source[1024]; /* what was loaded, for the report */
    int full_depth;    /* blocks of the loaded backbone when cut after cfg.depth of them, else 0 */
} dx_eval_model;

/* Weights file (DINOv3 state-dict names, optional "prefix"): buffers the file
 * lacks keep their computed values. full_depth > cfg->depth: the file holds
 * that many blocks and the model is cut after cfg->depth (its final norm
 * kept): the later blocks are not loaded. */
dx_status dx_eval_model_load(dx_eval_model *em, const dx_vit_config *cfg, dx_backend *be,
                             const char *path, const char *prefix, int full_depth, dx_err *err);
/* The DINOv3 initialisation drawn from seed (the random-init baseline). */
dx_status dx_eval_model_random(dx_eval_model *em, const dx_vit_config *cfg, dx_backend *be,
                               uint64_t seed, dx_err *err);
/* One checkpoint file of `dinox train` (checkpoint.h): tensors
 * "<which>.backbone.<name>" (which = "teacher" or "student"). */
dx_status dx_eval_model_from_ckpt(dx_eval_model *em, const dx_vit_config *cfg, dx_backend *be,
                                  const char *ckpt_path, const char *which, dx_err *err);
void dx_eval_model_free(dx_eval_model *em, dx_backend *be);

/* Checkpoint files DIR/ckpt-*.safetensors sorted by ascending step
 * (malloc'd arrays; *n = 0 if none). */
dx_status dx_eval_list_checkpoints(const char *dir, char ***paths, int64_t **steps, int *n, dx_err *err);
void dx_eval_free_list(char **paths, int64_t *steps, int n);

typedef struct dx_features {
    int n, D, P, Hp, Wp, heads;
    float *cls, *mean; /* [n, D] */
    float *patch;      /* [n, P, D] or NULL */
    float *att;        /* [n, heads, P] or NULL */
} dx_features;

/* imgs: host [n, 3, S, S]. want_patch / want_att choose the big outputs. */
dx_status dx_extract_features(const dx_eval_model *em, dx_backend *be, const float *imgs, int n, int S,
                              int batch, int want_patch, int want_att, dx_features *f, dx_err *err);
void dx_features_free(dx_features *f);

#endif /* DX_EVAL_BACKBONE_H */
