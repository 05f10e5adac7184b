/* comm.c - picking the communication engine, and the helpers over any engine. */
#include "comm/dx_comm.h"

#include <stdlib.h>
#include <string.h>

int dx_comm_launched(void) {
    /* Open MPI's mpirun, PMIx (Open MPI 4+, srun --mpi=pmix), PMI-1/2 (MPICH, srun --mpi=pmi2) */
    const char *n = getenv("OMPI_COMM_WORLD_SIZE");
    if (!n) n = getenv("PMI_SIZE");
    if (!n && getenv("PMIX_RANK")) return 1;
    if (!n && getenv("SLURM_STEP_ID") && getenv("SLURM_NTASKS")) n = getenv("SLURM_NTASKS");
    return n && atoi(n) > 1;
}

const char *dx_comm_engines(void) {
#if defined(DINOX_HAVE_MPI) && defined(DINOX_HAVE_NCCL)
    return "single mpi nccl";
#elif defined(DINOX_HAVE_MPI)
    return "single mpi";
#else
    return "single";
#endif
}

dx_status dx_comm_open(dx_comm **out, const char *want, dx_err *err) {
    *out = NULL;
    const char *env = getenv("DINOX_COMM");
    if ((!want || !strcmp(want, "auto")) && env && *env) want = env;
    if (!want || !strcmp(want, "auto")) want = dx_comm_launched() ? "mpi" : "single";
    if (!strcmp(want, "single")) return dx_comm_single_open(out, err);
    if (!strcmp(want, "mpi")) return dx_comm_mpi_open(out, err);
    return dx_fail(err, DX_EINVAL, "communication engine '%s': want auto, single or mpi (built: %s)", want,
                   dx_comm_engines());
}

void dx_comm_close(dx_comm *c) {
    if (c) c->close(c);
}

dx_status dx_comm_all_ok(dx_comm *c, int ok, int *all_ok, dx_err *err) {
    double bad = ok ? 0.0 : 1.0;
    dx_status st = c->allreduce_f64(c, &bad, 1, DX_COMM_SUM, err);
    *all_ok = st == DX_OK && bad == 0.0;
    return st;
}
