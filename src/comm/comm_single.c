/* comm_single.c - the one-process engine: every collective is the identity. */
#include <stdlib.h>

#include "comm/dx_comm.h"

static dx_status single_f32(dx_comm *c, float *b, size_t n, dx_comm_op op, dx_err *e) { return DX_OK; }
static dx_status single_f64(dx_comm *c, double *b, size_t n, dx_comm_op op, dx_err *e) { return DX_OK; }
static dx_status single_bcast(dx_comm *c, void *b, size_t n, int root, dx_err *e) { return DX_OK; }
static dx_status single_iar(dx_comm *c, float *b, size_t n, dx_comm_req **req, dx_err *e) {
    *req = NULL;
    return DX_OK;
}
static void single_test(dx_comm *c, dx_comm_req *req) {}
static dx_status single_wait(dx_comm *c, dx_comm_req *req, dx_err *e) { return DX_OK; }
static void single_abort(dx_comm *c, int code) { _Exit(code); }
static void single_close(dx_comm *c) { free(c); }

dx_status dx_comm_single_open(dx_comm **out, dx_err *err) {
    dx_comm *c = calloc(1, sizeof *c);
    if (!c) return dx_fail(err, DX_ENOMEM, "comm");
    *c = (dx_comm){.kind = "single", .rank = 0, .size = 1, .local_rank = 0, .local_size = 1,
                   .allreduce_f32 = single_f32, .allreduce_f64 = single_f64, .bcast = single_bcast,
                   .iallreduce_f32 = single_iar, .test = single_test, .wait = single_wait,
                   .abort = single_abort, .close = single_close};
    *out = c;
    return DX_OK;
}
