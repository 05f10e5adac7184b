/* export.h - a run's backbone as a standalone safetensors file (`dinox
 * export`): the EMA teacher (default) or the student of the run's newest
 * valid (or a given) checkpoint, float32, DINOv3 state-dict names incl.
 * rope_embed.periods and qkv.bias_mask; metadata (nn/backbone_meta.h): format
 * "dinox-backbone", source, step, version, model.* shape, preprocessing.*,
 * timm.model/kwargs. Reads the checkpoint into host memory and writes it
 * with dx_weights_save_host: no backend is involved. */
#ifndef DX_EXPORT_H
#define DX_EXPORT_H

#include <stdint.h>

#include "core/dx_error.h"

typedef struct dx_export_opts {
    const char *run_dir;    /* RUN_DIR: config.yaml + checkpoints/ */
    const char *checkpoint; /* NULL = newest valid; a step number or a file path */
    int student;            /* 1: the student backbone instead of the EMA teacher */
    const char *out;        /* output file; never inside RUN_DIR/checkpoints */
    const char *format;     /* NULL or "safetensors": DINOv3 names; "timm": timm's names (export_timm.h);
                               "hf": a transformers model folder, out is the folder (export_hf.h) */
} dx_export_opts;

/* What was exported (for the caller's message). */
typedef struct dx_export_info {
    char checkpoint[1024]; /* the checkpoint file read */
    int64_t step;
} dx_export_info;

/* The metadata of a backbone exported from a run of config cfg: model
 * shape, preprocessing (data.stack25d, data.windows, data.norm_*,
 * crops.global_size), source, step, version. */
struct dx_config;
struct dx_backbone_meta;
struct dx_vit_config;
void dx_export_meta(const struct dx_config *cfg, const struct dx_vit_config *vit, const char *source, int64_t step,
                    struct dx_backbone_meta *m);

/* info may be NULL. */
dx_status dx_export_backbone(const dx_export_opts *o, dx_export_info *info, dx_err *err);

#endif /* DX_EXPORT_H */
