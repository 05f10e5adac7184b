/* eval_tb.h - an evaluation into TensorBoard: the figures of DIR/eval.json as
 * "eval/..." scalars at the backbone's step, DIR/collapse_track.json as
 * "eval_track/..." scalars at each checkpoint's step, and the attention overlays
 * (DIR/attention/att_*.png) as images - written as a new event file in LOGDIR
 * (the run directory for `dinox eval --run`, so they sit beside the training
 * curves; else the evaluation directory). */
#ifndef DX_EVAL_TB_H
#define DX_EVAL_TB_H

#include <stdint.h>

#include "core/dx_error.h"

/* step: the backbone's training step (0 when unknown). Missing files are skipped. */
dx_status dx_eval_tb_write(const char *logdir, const char *eval_dir, int64_t step, dx_err *err);

#endif /* DX_EVAL_TB_H */
