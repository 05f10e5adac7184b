/* eval_job.h - one `dinox eval` invocation as a library call: resolve the
 * backbone configuration (a run's config.yaml, a training config or a named
 * size, plus shape overrides), pick the weights (a file, a run's exported
 * backbone or newest valid checkpoint, a given checkpoint), open the backend
 * on the requested device and the store, then dx_eval_all and/or
 * dx_eval_track (eval_run.h). The CLI only parses options into a dx_eval_job. */
#ifndef DX_EVAL_JOB_H
#define DX_EVAL_JOB_H

#include "core/dx_error.h"
#include "eval/eval_run.h"

#define DX_EVAL_MAX_ALSO 4

typedef struct dx_eval_job {
    const char *store_dir; /* volume store */
    const char *out;       /* output directory */
    /* backbone: at least one of weights / run / checkpoint */
    const char *weights;    /* safetensors backbone (overrides the run's) */
    const char *prefix;     /* tensor name prefix in weights and also[] ("") */
    const char *run;        /* run directory: config.yaml, backbone.safetensors, checkpoints/ */
    const char *checkpoint; /* a checkpoint file (its EMA teacher) */
    const char *config;     /* training config (without run) */
    const char *arch;       /* named size when there is no config; NULL = the file's model.*
                             * metadata, else vit_small */
    int patch, registers, dim, depth, heads; /* shape overrides: 0 (registers -1) = keep */
    int layer; /* features after this many blocks (1 .. depth), the final norm kept; 0 = all blocks */
    const char *also[DX_EVAL_MAX_ALSO];      /* more backbone files of the same shape */
    int n_also;
    int track;      /* also the checkpoint track (needs run) */
    int track_only; /* only the track */
    int no25d;      /* centre slice in all three channels */
    const char *device; /* device spec for dx_backend_open (NULL = default) */
    int threads;        /* CPU threads (0 = default) */
    dx_eval_opts eval;  /* protocol; crop normalisation comes from the config when there is one */
} dx_eval_job;

/* Defaults: arch NULL, prefix "", registers -1, dx_eval_opts_default. */
void dx_eval_job_default(dx_eval_job *j);

/* Runs the job. On failure *bad_option (if non-NULL) is 1 when an option
 * value is wrong for the model (the crop size is not a multiple of the patch
 * size: a usage error), else 0. */
dx_status dx_eval_job_run(const dx_eval_job *j, int *bad_option, dx_err *err);

#endif /* DX_EVAL_JOB_H */
