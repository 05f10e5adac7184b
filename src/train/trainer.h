/* trainer.h - a DINOv3 training run: store -> loader -> SSL steps -> run directory.
 *
 * Built to run unattended for weeks: atomic checkpoints every N steps and every
 * M minutes, bit-exact resume (all randomness is a function of (seed, step)),
 * non-finite steps skipped and counted, a rollback to the last checkpoint after
 * repeated failures or non-finite weights, a step-time watchdog, clean stop on
 * request (the CLI turns SIGINT/SIGTERM into *stop). */
#ifndef DX_TRAINER_H
#define DX_TRAINER_H

#include <signal.h>
#include <stdint.h>

#include "core/dx_error.h"
#include "train/config.h"
#include "train/ssl.h"

typedef struct dx_train_opts {
    const char *config_path;        /* YAML (ignored on resume: RUN_DIR/config.yaml is used) */
    const char *const *overrides;   /* "key=value" */
    int n_overrides;
    const char *store;              /* volume store directory */
    const char *run_dir;
    int resume;                     /* continue RUN_DIR from its latest valid checkpoint */
    const char *init_weights;       /* continual pre-training: backbone safetensors (DINOv3 names) */
    const char *gram_init;          /* Gram teacher backbone (DINOv3's gram.ckpt), new runs only */
    int64_t stop_at;                /* > 0: stop (with a checkpoint) once this step is reached */
    volatile sig_atomic_t *stop;    /* set asynchronously to request a checkpoint and exit */
    int quiet;                      /* no progress line */
    int force;                      /* run even when the memory plan says the config does not fit */
} dx_train_opts;

typedef struct dx_train_result {
    int64_t steps_done, last_step, nonfinite_steps, rollbacks;
    double final_loss;
    int stopped_early;              /* by *stop */
    int collapse_alarm;             /* the collapse alarm fired (docs/objective.md) */
    int64_t collapse_step;          /* first step at which it fired */
    int stopped_on_collapse;        /* ... and train.stop_on_collapse ended the run */
    int rank, world;                /* data parallel: this process, the number of ranks (1 alone) */
} dx_train_result;

/* The collapse alarm's test of one logged step: the teacher's DINO targets
 * are uniform (per-sample entropy above 0.98 ln K) or the DINO loss is within
 * 0.5% of ln K. Exposed for tests. */
int dx_train_collapsed(double teacher_entropy_lnk, double dino_loss, int K);

/* Launched by mpirun / srun with several ranks, every rank calls it and the
 * run is data parallel (docs/distributed.md): train.batch_size is the global
 * batch, rank 0 writes the run directory, the result is the same on every rank. */
dx_status dx_train_run(const dx_train_opts *o, dx_train_result *res, dx_err *err);

/* The SSL configuration a training config describes (crop sizes, heads,
 * weights, optimizer constants). */
dx_status dx_train_ssl_config(const dx_config *c, dx_ssl_config *s, dx_err *err);

/* Saves / restores the whole training state of s (student, teacher, Gram
 * teacher, AdamW moments and step count, centres) as one checkpoint. */
dx_status dx_train_save_checkpoint(dx_ssl *s, dx_backend *be, const dx_config *c, const char *ckpt_dir,
                                   int64_t next_step, int64_t gram_refreshes, int64_t nonfinite,
                                   dx_err *err);
dx_status dx_train_load_checkpoint(dx_ssl *s, dx_backend *be, const char *path_or_dir, int64_t *next_step,
                                   int64_t *gram_refreshes, int64_t *nonfinite, dx_err *err);

#endif /* DX_TRAINER_H */
