/* plan.h - memory, FLOPs and time of a training config on a device, before
 * running it (`dinox plan`). The memory model is the allocation list of
 * dx_ssl_init (dx_ssl_plan_bytes) plus the loader's batch ring, the host
 * staging of a checkpoint and the process's fixed runtime, all fp32 as the
 * current backends store them. */
#ifndef DX_PLAN_H
#define DX_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "core/dx_error.h"
#include "train/config.h"
#include "train/ssl.h"

typedef struct dx_device {
    char name[32];
    double mem_bytes;     /* usable memory */
    double bw_bytes_s;    /* memory bandwidth */
    double flops;         /* dense matmul peak the backend reaches (fp32 CPU / bf16 GPU) */
    double efficiency;    /* fraction of `flops` a whole training step achieves */
    int unified;          /* host and device share memory (CPU, Strix Halo) */
} dx_device;

/* "cpu" (this machine: MemTotal, a short measured GEMM peak), "strix-halo",
 * "rtx-4090", "a100", "h100", "h200"; or "custom" filled by the caller.
 * GPU peaks are dense bf16 matmul rates (the precision a GPU run uses); the
 * CPU's is measured at `precision` (DX_PREC_FP32 or DX_PREC_BF16, the
 * linear layers' GEMM of that policy). */
dx_status dx_device_get(const char *name, int threads, int precision, dx_device *d, dx_err *err);

typedef struct dx_plan {
    size_t params, grads, adam, teacher, gram_teacher; /* bytes */
    size_t acts;              /* activations + step scratch at the config's batch */
    size_t acts_per_image;    /* marginal activation bytes per image of the batch */
    size_t loader, staging, runtime; /* batch ring, checkpoint staging, fixed process */
    size_t total;             /* predicted peak */
    int batch, max_batch;     /* config batch; largest batch that fits the device (with micro-batching:
                                 a multiple of micro_batch) */
    int micro_batch;          /* images per student pass (= batch without train.micro_batch) */
    int fit_micro_batch;      /* a config that does not fit and has no micro_batch: the largest
                                 divisor of the batch as train.micro_batch that fits (0: none) */
    double flops_per_image, flops_per_step;
    double step_s, epoch_s, run_s;
    int64_t steps, epoch_length;
    int teacher_chunk;        /* global crops per teacher pass (dx_ssl_teacher_chunk), of 2 x batch */
    size_t chunk_saving;      /* bytes train.teacher_chunk=DX_PLAN_HINT_CHUNK would save (0: none, or set) */
    int ibot_recompute;       /* train.ibot_recompute: the iBOT targets formed pass by pass */
    size_t recompute_saving;  /* bytes train.ibot_recompute=true would save (0: none, or set) */
    size_t acts_part[DX_SSL_PLAN_PARTS];           /* acts in parts (DX_SSL_PLAN_PART_NAMES) */
    size_t acts_part_per_image[DX_SSL_PLAN_PARTS]; /* their marginal bytes per image */
} dx_plan;
/* the teacher chunk the plan suggests when a config without one does not fit */
#define DX_PLAN_HINT_CHUNK 8

dx_status dx_plan_compute(const dx_config *c, const dx_device *d, dx_plan *p, dx_err *err);
/* The same for a given step configuration (its batch, masks, crops); c gives the run (steps, loader). */
struct dx_ssl_config;
dx_status dx_plan_compute_ssl(const dx_config *c, const struct dx_ssl_config *sc, const dx_device *d, dx_plan *p,
                              dx_err *err);

/* Stages of one pre-training (e.g. DINOv3's long low-resolution stage, then a
 * short high-resolution one with Gram anchoring) against a budget in days:
 * -1 when the sum of run_s fits; otherwise the index of the longest stage and
 * in *steps_needed the steps it may keep so that the total fits (0: even
 * dropping it does not). */
int dx_plan_budget(const dx_plan *stages, int n, double days, int64_t *steps_needed);

/* Data parallel over `ranks` processes: every step all-reduces the flat fp32
 * gradient buffer (grad_bytes = the plan's `grads`). A ring all-reduce sends
 * and receives 2 (ranks-1)/ranks of it per rank; links are the usual ones
 * between workstations and inside clusters, with their achievable bandwidth. */
typedef struct dx_plan_link {
    const char *name;
    double bytes_s;   /* achievable per-rank bandwidth, one direction */
    double latency_s; /* per message step */
    double comm_s;    /* all-reduce time of one step's gradients */
    double efficiency;/* compute / (compute + all-reduce): the bound without overlap */
} dx_plan_link;
#define DX_PLAN_LINKS 6
/* Fills links[DX_PLAN_LINKS] for a step of step_s seconds per rank. */
void dx_plan_links(size_t grad_bytes, int ranks, double step_s, dx_plan_link links[DX_PLAN_LINKS]);

/* Memory this process can use now on the host: the least of MemAvailable,
 * the cgroup's memory.max - memory.current and RLIMIT_AS (ulimit -v);
 * *what names the limit that decided ("MemAvailable", "cgroup memory.max",
 * "ulimit -v"). 0 when nothing can be read. */
double dx_host_mem_usable(const char **what);

/* The check `dinox train` runs before allocating: DX_OK when the plan's peak
 * fits in mem_bytes; otherwise DX_ENOMEM with the breakdown, the largest
 * batch that fits and what to change in err. sc: the step's configuration
 * (one rank's batch, masks over the global batch); c gives the run. */
struct dx_ssl_config;
dx_status dx_plan_check_fits(const dx_config *c, const struct dx_ssl_config *sc, double mem_bytes,
                             const char *mem_what, dx_err *err);

#endif /* DX_PLAN_H */
