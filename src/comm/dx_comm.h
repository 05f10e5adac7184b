/* dx_comm.h - the communication seam of data-parallel training.
 *
 * One small interface, several engines:
 *   "single"  one process; every collective is the identity (no MPI needed);
 *   "mpi"     Open MPI (or any MPI) over host memory: the CPU backend's tensors;
 *   "nccl"    NCCL / RCCL over device memory (the same names; -DDINOX_NCCL=ON,
 *             its unique id broadcast over MPI). dx_train_run does not open
 *             it yet: there is no GPU backend to hand it device tensors.
 * dx_comm_open picks the engine from the launcher's environment, so
 * `mpirun -np 4 dinox train ...` and `srun dinox train ...` need no flag.
 *
 * Every collective is blocking and must be entered by every rank in the same
 * order with the same sizes (MPI's rule). Buffers are the backend's memory;
 * "mpi" therefore pairs with the CPU backend only. Floating-point sums are
 * the only place where the result depends on the world size: the order in
 * which MPI adds the ranks' parts. */
#ifndef DX_COMM_H
#define DX_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "core/dx_error.h"

typedef enum { DX_COMM_SUM = 0, DX_COMM_MAX = 1 } dx_comm_op;

typedef struct dx_comm dx_comm;
typedef struct dx_comm_req dx_comm_req; /* a collective in flight */
struct dx_comm {
    const char *kind;            /* "single" | "mpi" */
    int rank, size;              /* this process in the world, the world */
    int local_rank, local_size;  /* the ranks on this host (shared memory) */
    uint64_t bytes_reduced;      /* payload bytes this rank gave to allreduce (benchmarks) */
    void *impl;
    /* in place, over n elements */
    dx_status (*allreduce_f32)(dx_comm *c, float *buf, size_t n, dx_comm_op op, dx_err *err);
    dx_status (*allreduce_f64)(dx_comm *c, double *buf, size_t n, dx_comm_op op, dx_err *err);
    /* Non-blocking sum: starts the reduction of buf[0..n) and returns; buf must
     * stay untouched until wait. test lets the engine progress (MPI moves data
     * only inside MPI calls), wait finishes and frees the request. */
    dx_status (*iallreduce_f32)(dx_comm *c, float *buf, size_t n, dx_comm_req **req, dx_err *err);
    void (*test)(dx_comm *c, dx_comm_req *req);
    dx_status (*wait)(dx_comm *c, dx_comm_req *req, dx_err *err);
    /* root's bytes to every rank */
    dx_status (*bcast)(dx_comm *c, void *buf, size_t bytes, int root, dx_err *err);
    /* ends every rank of the job now (a hung collective: the watchdog); does not return */
    void (*abort)(dx_comm *c, int code);
    void (*close)(dx_comm *c);
};

/* want: "auto" (MPI when a launcher started this process, else single),
 * "single" or "mpi". The environment variable DINOX_COMM overrides "auto". */
dx_status dx_comm_open(dx_comm **out, const char *want, dx_err *err);
void dx_comm_close(dx_comm *c);
/* 1 when mpirun / srun / a PMI(x) launcher started this process with more than one rank. */
int dx_comm_launched(void);
/* The engines compiled into this build, e.g. "single mpi". */
const char *dx_comm_engines(void);

/* Every rank says whether it is fine; *all_ok is 1 on every rank only if all
 * are. The way a rank's local failure becomes a collective decision (no rank
 * may leave while the others wait in a collective). */
dx_status dx_comm_all_ok(dx_comm *c, int ok, int *all_ok, dx_err *err);

/* The engines (comm_single.c, comm_mpi.c, comm_nccl.c). */
dx_status dx_comm_single_open(dx_comm **out, dx_err *err);
dx_status dx_comm_mpi_open(dx_comm **out, dx_err *err);
/* NCCL / RCCL over device memory of `device`, its ranks and id from an open
 * MPI engine (which must outlive it). */
dx_status dx_comm_nccl_open(dx_comm **out, dx_comm *mpi, int device, dx_err *err);

#endif /* DX_COMM_H */
