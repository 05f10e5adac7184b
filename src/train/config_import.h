/* config_import.h - a facebookresearch/dinov3 training YAML (ssl_default_config
 * keys: MODEL, compute_precision, dino, ibot, gram, train, student, teacher,
 * optim, crops, checkpointing, ...) turned into a dinox config
 * (`dinox config import`).
 *
 * Every key of the input is classified and reported, one line each:
 *   mapped       set the dinox key(s) shown (value converted where the units
 *                differ: per-GPU batch x GPUs, horizontal_flips -> flip_p, Gram
 *                crop size -> factor, ffn_ratio -> width, ...);
 *   same         dinox has no key for it but behaves as the value says;
 *   ignored      meaningless here (CUDA device, dataset path, torch.compile,
 *                RGB normalisation of natural images, evaluation hooks, ...);
 *   unsupported  a recipe choice dinox cannot make (the value is dropped: the
 *                run would differ from the DINOv3 one there);
 *   unknown      not a DINOv3 key dinox knows.
 * The result is the base config (dinox defaults, or a dinox YAML such as
 * configs/vits16_lidc.yaml for the CT data.* settings) with the mapped keys
 * applied through the same validation as any override. */
#ifndef DX_CONFIG_IMPORT_H
#define DX_CONFIG_IMPORT_H

#include <stdio.h>

#include "core/dx_error.h"
#include "train/config.h"

typedef struct dx_import_counts {
    int mapped, same, ignored, unsupported, unknown;
} dx_import_counts;

/* Reads path into *c (which holds the base config on entry), writes the
 * report to rep (NULL = none). gpus: DINOv3's world size, for
 * batch_size_per_gpu (global batch = per GPU x gpus). */
dx_status dx_config_import_dinov3(dx_config *c, const char *path, int gpus, FILE *rep, dx_import_counts *counts,
                                  dx_err *err);

/* `dinox config import` whole: in (a DINOv3 YAML) read over base (a dinox
 * config file; NULL = dinox's defaults), the report to rep, the result saved
 * to out. out may not name in or base. With strict, any unsupported or
 * unknown key leaves out unwritten: DX_OK with *written = 0 (counts say
 * why); else *written = 1. */
typedef struct dx_config_import_opts {
    const char *in, *base, *out;
    int gpus, strict;
} dx_config_import_opts;
dx_status dx_config_import_file(const dx_config_import_opts *o, FILE *rep, dx_import_counts *counts, int *written,
                                dx_err *err);

/* The mapping table as a markdown table (docs/config.md). */
void dx_config_import_write_md(FILE *f);

#endif /* DX_CONFIG_IMPORT_H */
