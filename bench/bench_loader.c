/* bench_loader.c - loader throughput: batches/s and images/s (one image =
 * one sample with all its crops) for the demo and ViT-S/16 configs at 1 and
 * 2 worker threads, on synthetic LIDC-sized volumes (512 x 512, 0.7 mm
 * pixels, 1.25 mm slices) held in memory, so the figure is the CPU cost of
 * the pipeline, not disk. Usage: bench_loader [steps] [source_dir]. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/dx_rng.h"
#include "data/loader.h"
#include "train/config.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 6;
    const char *root = argc > 2 ? argv[2] : getenv("DINOX_SOURCE_DIR");
    if (!root) root = ".";
    enum { NV = 2, NX = 512, NZ = 64 };
    dx_mem_volume vols[NV];
    for (int v = 0; v < NV; v++) {
        float *hu = malloc(sizeof(float) * NX * NX * NZ);
        dx_rng r;
        dx_rng_init(&r, 1, DX_RNG_TEST, v, 0);
        for (size_t i = 0; i < (size_t)NX * NX * NZ; i++) hu[i] = -1000 + 1400 * (float)dx_rng_uniform(&r);
        vols[v] = (dx_mem_volume){hu, NX, NX, NZ, {0.7, 0.7, 1.25}};
    }
    dx_mem_source ms;
    dx_slice_source src;
    dx_mem_source_init(&src, &ms, vols, NV);
    const char *cfgs[2] = {"configs/demo.yaml", "configs/vits16_lidc.yaml"};
    printf("%-26s %7s %6s %10s %10s\n", "config", "threads", "batch", "batches/s", "images/s");
    for (int c = 0; c < 2; c++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", root, cfgs[c]);
        dx_config cfg;
        dx_err e;
        if (dx_config_resolve(&cfg, path, NULL, 0, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        for (int th = 1; th <= 2; th++) {
            dx_loader_opts o;
            dx_config_loader_opts(&cfg, 0, &o);
            o.threads = th;
            dx_loader *L;
            if (dx_loader_create(&L, &src, &o, &e)) {
                fprintf(stderr, "%s\n", e.msg);
                return 1;
            }
            const dx_batch *b;
            dx_loader_get(L, 0, &b, &e); /* warm-up: first batch includes thread start */
            double t0 = now();
            for (int s = 1; s <= steps; s++)
                if (dx_loader_get(L, s, &b, &e)) {
                    fprintf(stderr, "%s\n", e.msg);
                    return 1;
                }
            double dt = now() - t0;
            printf("%-26s %7d %6d %10.2f %10.1f\n", cfgs[c] + 8, th, o.batch_size, steps / dt,
                   steps * o.batch_size / dt);
            dx_loader_free(L);
        }
    }
    for (int v = 0; v < NV; v++) free((void *)vols[v].hu);
    return 0;
}
