/* test_comm_nccl.c - the NCCL engine on a GPU: one rank (as a single H200
 * runs it), or every rank under mpirun. Sums and maxima in fp32 and fp64, a
 * broadcast and a non-blocking sum over device memory, checked on the host.
 * SKIPPED (exit 77, CTest reports it as skipped, never passed) when dinox was
 * built without NCCL or no GPU is present. */
#include <stdio.h>

#include "comm/dx_comm.h"
#include "dx_test.h"

#ifdef DINOX_HAVE_NCCL
#include <cuda_runtime.h>

int main(void) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("SKIPPED: no CUDA device (the NCCL engine is built but cannot run here)\n");
        return 77;
    }
    dx_err e = {0};
    dx_comm *mpi = NULL, *c = NULL;
    if (dx_comm_mpi_open(&mpi, &e)) {
        fprintf(stderr, "FAIL: MPI: %s\n", e.msg);
        return 1;
    }
    CHECK(dx_comm_nccl_open(&c, mpi, mpi->local_rank % ndev, &e) == DX_OK, "nccl open: %s", e.msg);
    if (!c) return dx_test_summary();
    const int W = c->size, r = c->rank;
    enum { N = 1 << 20 };
    static float hf[N];
    static double hd[64];
    float *df;
    double *dd;
    cudaMalloc((void **)&df, sizeof hf);
    cudaMalloc((void **)&dd, sizeof hd);
    for (int i = 0; i < N; i++) hf[i] = (float)(r + 1) * (float)(i % 7);
    cudaMemcpy(df, hf, sizeof hf, cudaMemcpyHostToDevice);
    CHECK(c->allreduce_f32(c, df, N, DX_COMM_SUM, &e) == DX_OK, "allreduce f32: %s", e.msg);
    cudaMemcpy(hf, df, sizeof hf, cudaMemcpyDeviceToHost);
    int bad = 0;
    for (int i = 0; i < N; i++) bad += hf[i] != (float)(W * (W + 1) / 2) * (float)(i % 7);
    CHECK(bad == 0, "f32 sum: %d wrong of %d", bad, N);
    for (int i = 0; i < 64; i++) hd[i] = r * 1000.0 + i;
    cudaMemcpy(dd, hd, sizeof hd, cudaMemcpyHostToDevice);
    CHECK(c->allreduce_f64(c, dd, 64, DX_COMM_MAX, &e) == DX_OK, "allreduce f64 max: %s", e.msg);
    cudaMemcpy(hd, dd, sizeof hd, cudaMemcpyDeviceToHost);
    CHECK(hd[5] == (W - 1) * 1000.0 + 5, "f64 max: %g", hd[5]);
    for (int i = 0; i < 64; i++) hd[i] = r == 0 ? 42.0 + i : -1;
    cudaMemcpy(dd, hd, sizeof hd, cudaMemcpyHostToDevice);
    CHECK(c->bcast(c, dd, sizeof hd, 0, &e) == DX_OK, "bcast: %s", e.msg);
    cudaMemcpy(hd, dd, sizeof hd, cudaMemcpyDeviceToHost);
    CHECK(hd[63] == 42.0 + 63, "bcast: %g", hd[63]);
    for (int i = 0; i < N; i++) hf[i] = 1.0f;
    cudaMemcpy(df, hf, sizeof hf, cudaMemcpyHostToDevice);
    dx_comm_req *q = NULL;
    CHECK(c->iallreduce_f32(c, df, N, &q, &e) == DX_OK, "iallreduce: %s", e.msg);
    c->test(c, q);
    CHECK(c->wait(c, q, &e) == DX_OK, "wait: %s", e.msg);
    cudaMemcpy(hf, df, sizeof hf, cudaMemcpyDeviceToHost);
    CHECK(hf[N - 1] == (float)W, "iallreduce: %g, want %d", hf[N - 1], W);
    printf("ok   NCCL engine: %d rank(s), f32/f64 sum and max, broadcast, non-blocking sum\n", W);
    cudaFree(df), cudaFree(dd);
    dx_comm_close(c);
    dx_comm_close(mpi);
    return dx_test_summary();
}

#else

int main(void) {
    printf("SKIPPED: built without NCCL (cmake -DDINOX_NCCL=ON): nothing to run\n");
    return 77;
}

#endif
