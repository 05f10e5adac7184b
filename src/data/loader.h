/* loader.h - the CT multi-crop data loader: slice source -> 2.5D stack ->
 * in-plane resampling -> DINOv3 multi-crop with random CT windowing ->
 * crop-major batches, produced by worker threads ahead of the consumer.
 *
 * Reproducibility: every random draw is a function of (seed, step, sample,
 * crop) through named dx_rng streams:
 *   (seed, DX_RNG_SAMPLER, step, sample)             which (series, z) is read,
 *                                                    and the focus coin / point
 *   (seed, DX_RNG_CROPS,   step, sample*64 + crop)   crop c's geometry, flip,
 *                                                    window, noise, blur
 *   (seed, DX_RNG_CROPS,   step, sample*64 + 63)     the per-image window when
 *                                                    window_per_crop = 0
 * (crop 0, 1 = global, 2.. = local), where `sample` is the index in the
 * GLOBAL batch (sample_offset + b). So the batch of step s is identical for
 * any thread count and any number of data-parallel ranks, and a resumed run
 * starting at step s gets exactly the batches an uninterrupted run would
 * have seen. */
#ifndef DX_LOADER_H
#define DX_LOADER_H

#include <stdint.h>

#include "core/dx_error.h"
#include "data/window.h"

/* ---- slice source -------------------------------------------------------- */

/* Where the loader reads CT from. Callbacks must be safe to call from several
 * threads at once (they are called by the loader's workers). */
typedef struct dx_slice_source {
    void *ctx;
    int (*n_series)(void *ctx);
    /* dims = {nx, ny, nz}; spacing = {x, y, z} in mm. */
    dx_status (*series_info)(void *ctx, int series, int dims[3], double spacing[3], dx_err *err);
    /* Fills out [3, ny, nx] with HU of slices z - offset, z, z + offset
     * (slice indices clamped to [0, nz - 1], i.e. replicated at the volume
     * edges). offset 0 = the centre slice three times. */
    dx_status (*read_stack)(void *ctx, int series, int z, int offset, float *out, dx_err *err);
} dx_slice_source;

/* An in-memory source over caller-owned volumes (tests, benchmarks, small
 * synthetic data): vols[i] is [nz, ny, nx] float HU. */
typedef struct dx_mem_volume {
    const float *hu;
    int nx, ny, nz;
    double spacing[3];
} dx_mem_volume;

typedef struct dx_mem_source {
    const dx_mem_volume *vols;
    int n;
} dx_mem_source;

/* Points src at m (m must outlive src). */
void dx_mem_source_init(dx_slice_source *src, dx_mem_source *m, const dx_mem_volume *vols, int n);

/* ---- focus points ---------------------------------------------------------- */

/* A place the sampler may aim at (dx_loader_opts.focus_p): a lesion centre in
 * the native voxel grid of a series, e.g. an annotated nodule of the store. */
typedef struct dx_focus_point {
    int series;
    double x, y, z;     /* voxel column, row, slice index */
    double radius_mm;   /* the lesion's half-diameter: the slice is drawn within +-radius/2 of z */
} dx_focus_point;

/* ---- options and batches --------------------------------------------------- */

typedef struct dx_loader_opts {
    uint64_t seed;
    int batch_size;                 /* images this loader makes per step (one rank's share) */
    int sample_offset;              /* their first index in the global batch (rank * batch_size) */
    int global_size, local_size, n_local;
    float global_scale[2], local_scale[2];
    float ratio[2];                 /* aspect range, (3/4, 4/3) */
    float flip_p;
    float blur_p[3];                /* global 1, global 2, each local */
    float blur_sigma[2];
    float noise_p, noise_hu[2];
    int stack25d;                   /* 0: centre slice x3 */
    float slice_spacing_mm;         /* 2.5D slice distance (nearest slice) */
    float pixel_spacing_mm;         /* 0 = native */
    /* With probability focus_p a sample is aimed at one of the focus points
     * (uniform over them): its slice lies near the point and every crop box
     * holds the point in its central half. 0 (or no points) = DINOv3's uniform
     * slices, and no extra draws. The loader copies the points. */
    float focus_p;
    const dx_focus_point *focus;
    int n_focus;
    dx_window_spec windows[DX_WINDOW_MAX];
    int n_windows;
    float window_shift_p, window_scale_p;
    int window_per_crop;
    int fixed_window;               /* eval: first base window, no other randomness but geometry */
    float norm_mean, norm_std;
    int gram_size;                  /* 0 = no Gram-teacher crops */
    int threads;                    /* 0 = produce in the caller's thread */
    int prefetch;                   /* batches in flight (>= 1) */
    /* Memory for the pixel arrays of the batch slots (the data a trainer
     * uploads): a trainer passes its backend's host_alloc so that transfers
     * come from page-locked memory on a GPU. NULL = malloc / free. */
    void *(*pixel_alloc)(void *ctx, size_t bytes);
    void (*pixel_free)(void *ctx, void *p);
    void *pixel_ctx;
} dx_loader_opts;

/* DINOv3-like defaults for a global/local size (see docs/data-pipeline.md). */
void dx_loader_opts_default(dx_loader_opts *o);

typedef struct dx_batch {
    int64_t step;
    int B, n_local, S, s, G;  /* G: Gram crop size, 0 if none */
    float *global;            /* [2B, 3, S, S] crop-major: row c*B + b */
    float *local;             /* [n_local*B, 3, s, s] crop-major, or NULL */
    float *gram;              /* [2B, 3, G, G] or NULL */
    int32_t *series, *z;      /* [B] where sample b was read */
    int32_t *focused;         /* [B] 1 if sample b was aimed at a focus point */
    int32_t *window;          /* [2B] crop-major: the base window (index into windows) of each global crop */
    void (*pixel_free)(void *ctx, void *p); /* how global/local/gram are freed (NULL = free) */
    void *pixel_ctx;
} dx_batch;

typedef struct dx_loader dx_loader;

dx_status dx_loader_create(dx_loader **out, const dx_slice_source *src, const dx_loader_opts *o,
                           dx_err *err);
/* Returns the batch of `step` (blocking until it is ready). The pointer stays
 * valid until the next dx_loader_get or dx_loader_free. Consecutive steps
 * are prefetched; any other step restarts the pipeline there (resume). */
dx_status dx_loader_get(dx_loader *L, int64_t step, const dx_batch **out, dx_err *err);
void dx_loader_free(dx_loader *L);

/* Produces sample b of step `step` into the batch buffers (the unit of work
 * of the workers; exposed for tests and single-image previews). */
dx_status dx_loader_make_sample(const dx_slice_source *src, const dx_loader_opts *o, int64_t step, int b,
                                dx_batch *batch, dx_err *err);
/* Allocates / frees the buffers of a batch for these options. */
dx_status dx_batch_alloc(dx_batch *b, const dx_loader_opts *o, dx_err *err);
void dx_batch_free(dx_batch *b);

#endif /* DX_LOADER_H */
