/* comm_nccl.c - the NCCL engine (RCCL on AMD has the same API): collectives
 * over DEVICE memory, for a GPU backend. Built with -DDINOX_NCCL=ON (CUDA
 * toolkit with NCCL). The ranks, and NCCL's unique id, come from an MPI
 * engine opened first (rank 0 makes the id, MPI broadcasts it), so the
 * launch is the same mpirun/srun as for the CPU.
 *
 * Blocking collectives run on the engine's stream and synchronise it before
 * returning (the dx_comm contract); iallreduce only enqueues, test polls the
 * stream, wait synchronises it. Until the GPU backend exists the caller's
 * buffers are cudaMalloc'ed memory of the device chosen at open. */
#include <stdlib.h>

#include "comm/dx_comm.h"

#ifdef DINOX_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>

typedef struct nccl_impl {
    ncclComm_t nc;
    cudaStream_t stream;
    dx_comm *mpi; /* ranks, the id broadcast, abort */
} nccl_impl;

struct dx_comm_req {
    cudaEvent_t done;
};

static dx_status nccl_check(ncclResult_t r, const char *what, dx_err *err) {
    if (r == ncclSuccess) return DX_OK;
    return dx_fail(err, DX_EBACKEND, "NCCL %s failed: %s (did another rank die?)", what, ncclGetErrorString(r));
}
static dx_status cuda_check(cudaError_t r, const char *what, dx_err *err) {
    if (r == cudaSuccess) return DX_OK;
    return dx_fail(err, DX_EBACKEND, "CUDA %s failed: %s", what, cudaGetErrorString(r));
}

static dx_status nccl_reduce(dx_comm *c, void *buf, size_t n, ncclDataType_t t, size_t esize, dx_comm_op op,
                             dx_err *err) {
    nccl_impl *m = c->impl;
    c->bytes_reduced += n * esize;
    dx_status st = nccl_check(ncclAllReduce(buf, buf, n, t, op == DX_COMM_MAX ? ncclMax : ncclSum, m->nc, m->stream),
                              "allreduce", err);
    return st ? st : cuda_check(cudaStreamSynchronize(m->stream), "stream sync", err);
}
static dx_status nccl_f32(dx_comm *c, float *b, size_t n, dx_comm_op op, dx_err *e) {
    return nccl_reduce(c, b, n, ncclFloat32, sizeof(float), op, e);
}
static dx_status nccl_f64(dx_comm *c, double *b, size_t n, dx_comm_op op, dx_err *e) {
    return nccl_reduce(c, b, n, ncclFloat64, sizeof(double), op, e);
}

static dx_status nccl_iallreduce(dx_comm *c, float *buf, size_t n, dx_comm_req **out, dx_err *err) {
    nccl_impl *m = c->impl;
    *out = NULL;
    dx_comm_req *q = malloc(sizeof *q);
    if (!q) return dx_fail(err, DX_ENOMEM, "NCCL request");
    c->bytes_reduced += n * sizeof(float);
    dx_status st = nccl_check(ncclAllReduce(buf, buf, n, ncclFloat32, ncclSum, m->nc, m->stream), "allreduce", err);
    if (!st) st = cuda_check(cudaEventCreateWithFlags(&q->done, cudaEventDisableTiming), "event", err);
    if (!st) st = cuda_check(cudaEventRecord(q->done, m->stream), "event record", err);
    if (st) {
        free(q);
        return st;
    }
    *out = q;
    return DX_OK;
}
static void nccl_test(dx_comm *c, dx_comm_req *q) {
    if (q) (void)cudaEventQuery(q->done); /* NCCL progresses on the device by itself */
}
static dx_status nccl_wait(dx_comm *c, dx_comm_req *q, dx_err *err) {
    if (!q) return DX_OK;
    dx_status st = cuda_check(cudaEventSynchronize(q->done), "event sync", err);
    cudaEventDestroy(q->done);
    free(q);
    return st;
}

static dx_status nccl_bcast(dx_comm *c, void *buf, size_t bytes, int root, dx_err *err) {
    nccl_impl *m = c->impl;
    dx_status st = nccl_check(ncclBroadcast(buf, buf, bytes, ncclUint8, root, m->nc, m->stream), "broadcast", err);
    return st ? st : cuda_check(cudaStreamSynchronize(m->stream), "stream sync", err);
}

static void nccl_abort(dx_comm *c, int code) {
    nccl_impl *m = c->impl;
    ncclCommAbort(m->nc); /* unblocks kernels waiting on dead peers */
    m->mpi->abort(m->mpi, code);
}

static void nccl_close(dx_comm *c) {
    nccl_impl *m = c->impl;
    ncclCommDestroy(m->nc);
    cudaStreamDestroy(m->stream);
    free(m);
    free(c);
}

dx_status dx_comm_nccl_open(dx_comm **out, dx_comm *mpi, int device, dx_err *err) {
    *out = NULL;
    dx_status st;
    if ((st = cuda_check(cudaSetDevice(device), "set device", err))) return st;
    ncclUniqueId id;
    if (mpi->rank == 0 && (st = nccl_check(ncclGetUniqueId(&id), "unique id", err))) return st;
    if ((st = mpi->bcast(mpi, &id, sizeof id, 0, err))) return st;
    dx_comm *c = calloc(1, sizeof *c);
    nccl_impl *m = calloc(1, sizeof *m);
    if (!c || !m) {
        free(c), free(m);
        return dx_fail(err, DX_ENOMEM, "comm");
    }
    if ((st = cuda_check(cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking), "stream", err)) ||
        (st = nccl_check(ncclCommInitRank(&m->nc, mpi->size, id, mpi->rank), "init", err))) {
        free(c), free(m);
        return st;
    }
    m->mpi = mpi;
    *c = (dx_comm){.kind = "nccl", .rank = mpi->rank, .size = mpi->size, .local_rank = mpi->local_rank,
                   .local_size = mpi->local_size, .impl = m, .allreduce_f32 = nccl_f32, .allreduce_f64 = nccl_f64,
                   .iallreduce_f32 = nccl_iallreduce, .test = nccl_test, .wait = nccl_wait, .bcast = nccl_bcast,
                   .abort = nccl_abort, .close = nccl_close};
    *out = c;
    return DX_OK;
}

#else /* !DINOX_HAVE_NCCL */

dx_status dx_comm_nccl_open(dx_comm **out, dx_comm *mpi, int device, dx_err *err) {
    *out = NULL;
    return dx_fail(err, DX_EUNSUPPORTED, "this dinox was built without NCCL/RCCL (cmake -DDINOX_NCCL=ON with the "
                                         "CUDA toolkit; docs/distributed.md)");
}

#endif
