/* comm_mpi.c - the MPI engine (Open MPI in setup.sh): host buffers, blocking
 * collectives on a duplicate of MPI_COMM_WORLD. MPI is initialised here when
 * the process was launched by mpirun/srun and finalised by close; errors in
 * a collective come back as DX_EBACKEND (MPI_ERRORS_RETURN) rather than
 * ending the process. */
#include <stdlib.h>

#include "comm/dx_comm.h"

#ifdef DINOX_HAVE_MPI
#include <limits.h>
#include <mpi.h>

typedef struct mpi_impl {
    MPI_Comm world;
    int inited_here;
} mpi_impl;

#define CHUNK ((size_t)1 << 28) /* MPI counts are int: large buffers go in pieces */

static dx_status mpi_check(int rc, const char *what, dx_err *err) {
    if (rc == MPI_SUCCESS) return DX_OK;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return dx_fail(err, DX_EBACKEND, "MPI %s failed: %.*s (did another rank die?)", what, len, msg);
}

static dx_status mpi_allreduce(dx_comm *c, void *buf, size_t n, size_t esize, MPI_Datatype t, dx_comm_op op,
                               dx_err *err) {
    mpi_impl *m = c->impl;
    char *p = buf;
    c->bytes_reduced += n * esize;
    for (size_t done = 0; done < n; done += CHUNK) {
        size_t k = n - done < CHUNK ? n - done : CHUNK;
        int rc = MPI_Allreduce(MPI_IN_PLACE, p + done * esize, (int)k, t, op == DX_COMM_MAX ? MPI_MAX : MPI_SUM,
                               m->world);
        dx_status st = mpi_check(rc, "allreduce", err);
        if (st) return st;
    }
    return DX_OK;
}

static dx_status mpi_f32(dx_comm *c, float *b, size_t n, dx_comm_op op, dx_err *e) {
    return mpi_allreduce(c, b, n, sizeof(float), MPI_FLOAT, op, e);
}
static dx_status mpi_f64(dx_comm *c, double *b, size_t n, dx_comm_op op, dx_err *e) {
    return mpi_allreduce(c, b, n, sizeof(double), MPI_DOUBLE, op, e);
}

struct dx_comm_req {
    int n;
    MPI_Request r[];
};

static dx_status mpi_iallreduce(dx_comm *c, float *buf, size_t n, dx_comm_req **out, dx_err *err) {
    mpi_impl *m = c->impl;
    const int parts = (int)((n + CHUNK - 1) / CHUNK);
    dx_comm_req *q = malloc(sizeof *q + sizeof(MPI_Request) * (size_t)(parts ? parts : 1));
    *out = NULL;
    if (!q) return dx_fail(err, DX_ENOMEM, "MPI request");
    q->n = 0;
    c->bytes_reduced += n * sizeof(float);
    for (size_t done = 0; done < n; done += CHUNK) {
        size_t k = n - done < CHUNK ? n - done : CHUNK;
        int rc = MPI_Iallreduce(MPI_IN_PLACE, buf + done, (int)k, MPI_FLOAT, MPI_SUM, m->world, &q->r[q->n]);
        if (rc != MPI_SUCCESS) {
            MPI_Waitall(q->n, q->r, MPI_STATUSES_IGNORE);
            free(q);
            return mpi_check(rc, "iallreduce", err);
        }
        q->n++;
    }
    *out = q;
    return DX_OK;
}

static void mpi_test(dx_comm *c, dx_comm_req *q) {
    int flag;
    if (q && q->n) MPI_Testall(q->n, q->r, &flag, MPI_STATUSES_IGNORE);
}

static dx_status mpi_wait(dx_comm *c, dx_comm_req *q, dx_err *err) {
    if (!q) return DX_OK;
    int rc = MPI_Waitall(q->n, q->r, MPI_STATUSES_IGNORE);
    free(q);
    return mpi_check(rc, "iallreduce wait", err);
}

static dx_status mpi_bcast(dx_comm *c, void *buf, size_t bytes, int root, dx_err *err) {
    mpi_impl *m = c->impl;
    char *p = buf;
    for (size_t done = 0; done < bytes; done += CHUNK) {
        size_t k = bytes - done < CHUNK ? bytes - done : CHUNK;
        dx_status st = mpi_check(MPI_Bcast(p + done, (int)k, MPI_BYTE, root, m->world), "broadcast", err);
        if (st) return st;
    }
    return DX_OK;
}

static void mpi_abort(dx_comm *c, int code) {
    MPI_Abort(MPI_COMM_WORLD, code);
    _Exit(code); /* MPI_Abort does not return; this is for a broken runtime */
}

static void mpi_close(dx_comm *c) {
    mpi_impl *m = c->impl;
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) {
        MPI_Comm_free(&m->world);
        if (m->inited_here) MPI_Finalize();
    }
    free(m);
    free(c);
}

dx_status dx_comm_mpi_open(dx_comm **out, dx_err *err) {
    int fin = 0, init = 0, provided = 0;
    MPI_Finalized(&fin);
    if (fin) return dx_fail(err, DX_EINVAL, "MPI was already finalised in this process: one run per process");
    dx_comm *c = calloc(1, sizeof *c);
    mpi_impl *m = calloc(1, sizeof *m);
    if (!c || !m) {
        free(c), free(m);
        return dx_fail(err, DX_ENOMEM, "comm");
    }
    MPI_Initialized(&init);
    if (!init) {
        /* the loader's workers and the watchdog never call MPI, except the
         * watchdog's MPI_Abort, which the runtime handles at any level */
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
            free(c), free(m);
            return dx_fail(err, DX_EBACKEND, "MPI_Init_thread failed");
        }
        m->inited_here = 1;
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &m->world);
    MPI_Comm_set_errhandler(m->world, MPI_ERRORS_RETURN);
    MPI_Comm_rank(m->world, &c->rank);
    MPI_Comm_size(m->world, &c->size);
    MPI_Comm node;
    MPI_Comm_split_type(m->world, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &c->local_rank);
    MPI_Comm_size(node, &c->local_size);
    MPI_Comm_free(&node);
    c->kind = "mpi";
    c->impl = m;
    c->allreduce_f32 = mpi_f32;
    c->allreduce_f64 = mpi_f64;
    c->bcast = mpi_bcast;
    c->iallreduce_f32 = mpi_iallreduce;
    c->test = mpi_test;
    c->wait = mpi_wait;
    c->abort = mpi_abort;
    c->close = mpi_close;
    *out = c;
    return DX_OK;
}

#else /* !DINOX_HAVE_MPI */

dx_status dx_comm_mpi_open(dx_comm **out, dx_err *err) {
    *out = NULL;
    return dx_fail(err, DX_EUNSUPPORTED,
                   "this dinox was built without MPI (install libopenmpi-dev: scripts/setup.sh, then rebuild)");
}

#endif
