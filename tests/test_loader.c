/* test_loader.c - the multi-crop CT loader end to end on an in-memory source:
 * 2.5D channel conventions (nearest slices at the mm spacing, clamped at the
 * edges, centre x3 when off), uniform slice sampling, in-plane resampling,
 * crop-major layout, the effective blur / flip probabilities, HU noise, Gram
 * crops sharing the global geometry, per-crop vs per-image windows, focus
 * points (samples aimed at a lesion), error propagation, and byte-identical
 * batches for 0/1/2 threads and on resume. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dx_rng.h"
#include "data/augment.h"
#include "data/loader.h"
#include "dx_test.h"

#define N 32

static float hu_of(int s, int z, int y, int x) { return -900.0f + s * 500 + z * 10 + (float)((x * 7 + y * 3) % 11); }

/* Opts under which every crop is the whole image, unchanged except windowing. */
static void identity_opts(dx_loader_opts *o) {
    dx_loader_opts_default(o);
    o->seed = 11;
    o->batch_size = 4;
    o->global_size = o->local_size = N;
    o->n_local = 2;
    o->global_scale[0] = o->global_scale[1] = o->local_scale[0] = o->local_scale[1] = 1;
    o->ratio[0] = o->ratio[1] = 1;
    o->flip_p = 0;
    o->blur_p[0] = o->blur_p[1] = o->blur_p[2] = 0;
    o->noise_p = 0;
    o->pixel_spacing_mm = 0;
    o->windows[0] = (dx_window_spec){4000, 0, 500, 500}; /* [-2000, 2000]: nothing clips */
    o->n_windows = 1;
    o->fixed_window = 1;
    o->threads = 0;
}

static float to_hu(float v, const dx_loader_opts *o) { return (v * o->norm_std + o->norm_mean) * 4000 - 2000; }

static float *crop_ptr(const dx_batch *b, int c, int i) {
    if (c < 2) return b->global + ((size_t)c * b->B + i) * 3 * b->S * b->S;
    return b->local + ((size_t)(c - 2) * b->B + i) * 3 * b->s * b->s;
}

static int same_batch(const dx_batch *a, const dx_batch *b) {
    size_t ng = (size_t)2 * a->B * 3 * a->S * a->S, nl = (size_t)a->n_local * a->B * 3 * a->s * a->s;
    if (a->step != b->step || memcmp(a->global, b->global, ng * 4) || memcmp(a->series, b->series, a->B * 4) ||
        memcmp(a->z, b->z, a->B * 4))
        return 0;
    if (nl && memcmp(a->local, b->local, nl * 4)) return 0;
    if (a->G && memcmp(a->gram, b->gram, (size_t)2 * a->B * 3 * a->G * a->G * 4)) return 0;
    return 1;
}

/* a source whose reads fail */
static dx_status bad_read(void *ctx, int s, int z, int off, float *out, dx_err *err) {
    return dx_fail(err, DX_EIO, "disk gone");
}

int main(void) {
    /* two series: 1 mm and 0.5 mm slices */
    dx_mem_volume vols[2];
    float *data[2];
    int nzs[2] = {10, 30};
    for (int s = 0; s < 2; s++) {
        data[s] = malloc(sizeof(float) * nzs[s] * N * N);
        for (int z = 0; z < nzs[s]; z++)
            for (int y = 0; y < N; y++)
                for (int x = 0; x < N; x++) data[s][((size_t)z * N + y) * N + x] = hu_of(s, z, y, x);
        vols[s] = (dx_mem_volume){data[s], N, N, nzs[s], {0.8, 0.8, s ? 0.5 : 1.0}};
    }
    dx_mem_source ms;
    dx_slice_source src;
    dx_mem_source_init(&src, &ms, vols, 2);
    dx_err e;
    dx_err_clear(&e);

    /* ---- 2.5D channels, identity crops ---- */
    dx_loader_opts o;
    identity_opts(&o);
    dx_loader *L;
    CHECK(dx_loader_create(&L, &src, &o, &e) == DX_OK, "create: %s", e.msg);
    int counts[2] = {0, 0}, edge_seen = 0, all_ok = 1;
    for (int step = 0; step < 200; step++) {
        const dx_batch *b;
        if (dx_loader_get(L, step, &b, &e)) {
            CHECK(0, "get: %s", e.msg);
            break;
        }
        for (int i = 0; i < b->B; i++) {
            int s = b->series[i], z = b->z[i], off = s ? 4 : 2; /* 2 mm / 0.5 mm, 2 mm / 1 mm */
            counts[s]++;
            if (z == 0 || z == nzs[s] - 1) edge_seen = 1;
            for (int c = 0; c < 2 + o.n_local; c++) {
                const float *p = crop_ptr(b, c, i);
                for (int ch = 0; ch < 3; ch++) {
                    int zz = z + (ch - 1) * off;
                    zz = zz < 0 ? 0 : zz >= nzs[s] ? nzs[s] - 1 : zz;
                    for (int y = 0; y < N; y += 5)
                        for (int x = 0; x < N; x += 3)
                            if (fabsf(to_hu(p[((size_t)ch * N + y) * N + x], &o) - hu_of(s, zz, y, x)) > 0.02f) all_ok = 0;
                }
            }
        }
    }
    CHECK(all_ok, "channels are slices z-d, z, z+d (d = round(2 mm / dz), clamped) in every crop");
    CHECK(edge_seen, "edge slices are sampled");
    /* slices drawn uniformly over all 40: series 1 has 30/40 */
    CHECK(fabs(counts[1] / 800.0 - 0.75) < 4 * sqrt(0.75 * 0.25 / 800), "series 1 share %g", counts[1] / 800.0);
    dx_loader_free(L);

    o.stack25d = 0;
    dx_loader_create(&L, &src, &o, &e);
    const dx_batch *b;
    CHECK(dx_loader_get(L, 0, &b, &e) == DX_OK, "get");
    size_t plane = (size_t)N * N;
    CHECK(memcmp(b->global, b->global + plane, plane * 4) == 0 && memcmp(b->global, b->global + 2 * plane, plane * 4) == 0,
          "2.5D off: centre slice in all three channels");
    dx_loader_free(L);

    /* ---- in-plane resampling: a linear ramp stays exactly linear ---- */
    float *ramp = malloc(sizeof(float) * 3 * 40 * 40);
    for (int z = 0; z < 3; z++)
        for (int y = 0; y < 40; y++)
            for (int x = 0; x < 40; x++) ramp[(z * 40 + y) * 40 + x] = 10.0f * x - 3.0f * y;
    dx_mem_volume rv = {ramp, 40, 40, 3, {1.0, 1.0, 2.0}};
    dx_mem_source rms;
    dx_slice_source rsrc;
    dx_mem_source_init(&rsrc, &rms, &rv, 1);
    identity_opts(&o);
    o.global_size = o.local_size = 20;
    o.pixel_spacing_mm = 2.0f; /* 40 px at 1 mm -> 20 px at 2 mm */
    dx_loader_create(&L, &rsrc, &o, &e);
    CHECK(dx_loader_get(L, 0, &b, &e) == DX_OK, "get ramp: %s", e.msg);
    double worst = 0;
    for (int y = 0; y < 20; y++)
        for (int x = 0; x < 20; x++) {
            /* output pixel x covers source centre 2x + 0.5 */
            double want = 10.0 * (2 * x + 0.5) - 3.0 * (2 * y + 0.5);
            worst = fmax(worst, fabs(to_hu(b->global[y * 20 + x], &o) - want));
        }
    CHECK(worst < 0.05, "resampled ramp max err %g HU", worst);
    dx_loader_free(L);
    free(ramp);

    /* ---- effective blur and flip probabilities on a noise image ---- */
    float *noise = malloc(sizeof(float) * 4 * N * N);
    dx_rng r;
    dx_rng_init(&r, 1, DX_RNG_TEST, 0, 0);
    for (int i = 0; i < 4 * N * N; i++) noise[i] = (float)dx_rng_uniform_range(&r, -800, 800);
    dx_mem_volume nv = {noise, N, N, 4, {1, 1, 1}};
    dx_mem_source nms;
    dx_slice_source nsrc;
    dx_mem_source_init(&nsrc, &nms, &nv, 1);
    dx_loader_opts plain, aug;
    identity_opts(&plain);
    plain.batch_size = 16;
    plain.n_local = 4;
    aug = plain;
    aug.blur_p[0] = 0, aug.blur_p[1] = 0.9f, aug.blur_p[2] = 0.5f;
    aug.blur_sigma[0] = 1.0f; /* sigma ~0.1 leaves a float image unchanged: keep blur detectable */
    aug.flip_p = 0.5f;
    aug.threads = 2;
    dx_loader *Lp, *La;
    dx_loader_create(&Lp, &nsrc, &plain, &e);
    CHECK(dx_loader_create(&La, &nsrc, &aug, &e) == DX_OK, "create aug: %s", e.msg);
    int nblur[3] = {0, 0, 0}, ncrop[3] = {0, 0, 0}, nflip = 0, ntot = 0;
    size_t cn = (size_t)3 * N * N;
    float *tmp = malloc(sizeof(float) * cn);
    for (int step = 0; step < 40; step++) {
        const dx_batch *bp, *ba;
        dx_loader_get(Lp, step, &bp, &e);
        dx_loader_get(La, step, &ba, &e);
        for (int i = 0; i < 16; i++)
            for (int c = 0; c < 6; c++) {
                int kind = c < 2 ? c : 2;
                const float *pp = crop_ptr(bp, c, i), *pa = crop_ptr(ba, c, i);
                memcpy(tmp, pp, cn * 4);
                int same = memcmp(tmp, pa, cn * 4) == 0;
                dx_flip_h(tmp, 3, N, N);
                int flipped = memcmp(tmp, pa, cn * 4) == 0;
                if (!same && !flipped) {
                    nblur[kind]++;
                } else {
                    nflip += flipped;
                    ntot++;
                }
                ncrop[kind]++;
            }
    }
    CHECK(nblur[0] == 0, "global crop 1 never blurred (%d)", nblur[0]);
    double p2 = (double)nblur[1] / ncrop[1], pl = (double)nblur[2] / ncrop[2];
    CHECK(fabs(p2 - 0.9) < 4 * sqrt(0.09 / ncrop[1]), "global crop 2 blurred with p %g (want 0.9)", p2);
    CHECK(fabs(pl - 0.5) < 4 * sqrt(0.25 / ncrop[2]), "local crops blurred with p %g (want 0.5)", pl);
    CHECK(fabs((double)nflip / ntot - 0.5) < 4 * sqrt(0.25 / ntot), "flip p %g over %d unblurred crops",
          (double)nflip / ntot, ntot);
    printf("blur p: global1 %d/%d, global2 %.3f, local %.3f; flip %.3f\n", nblur[0], ncrop[0], p2, pl,
           (double)nflip / ntot);
    dx_loader_free(La);

    /* ---- HU noise before windowing ---- */
    aug = plain;
    aug.noise_p = 1, aug.noise_hu[0] = aug.noise_hu[1] = 10;
    dx_loader_create(&La, &nsrc, &aug, &e);
    const dx_batch *bp, *ba;
    dx_loader_get(Lp, 3, &bp, &e);
    dx_loader_get(La, 3, &ba, &e);
    double s1 = 0, s2 = 0;
    size_t nn = (size_t)2 * 16 * cn;
    for (size_t k = 0; k < nn; k++) {
        double d = to_hu(ba->global[k], &aug) - to_hu(bp->global[k], &aug);
        s1 += d, s2 += d * d;
    }
    CHECK(fabs(sqrt(s2 / nn - (s1 / nn) * (s1 / nn)) - 10) < 0.2, "noise sd %g HU", sqrt(s2 / nn));
    dx_loader_free(La);

    /* ---- per-crop vs per-image windows ---- */
    aug = plain;
    aug.fixed_window = 0;
    aug.window_shift_p = 1;
    aug.window_per_crop = 1;
    dx_loader_create(&La, &nsrc, &aug, &e);
    dx_loader_get(La, 0, &ba, &e);
    CHECK(memcmp(ba->global, ba->global + 16 * cn, cn * 4) != 0, "per-crop windows differ between the globals");
    dx_loader_free(La);
    aug.window_per_crop = 0;
    dx_loader_create(&La, &nsrc, &aug, &e);
    dx_loader_get(La, 0, &ba, &e);
    CHECK(memcmp(ba->global, ba->global + 16 * cn, cn * 4) == 0, "per-image window shared by both globals");
    CHECK(memcmp(ba->global, bp->global, cn * 4) != 0, "...and it is perturbed");
    dx_loader_free(La);

    /* ---- Gram crop: same box and flip as its global crop, 2x size, base window ---- */
    aug = plain;
    aug.flip_p = 1;
    aug.gram_size = 2 * N;
    aug.fixed_window = 0;
    aug.window_shift_p = aug.window_scale_p = 1;
    aug.blur_p[1] = 1;
    dx_loader_create(&La, &nsrc, &aug, &e);
    dx_loader_get(La, 5, &ba, &e);
    {
        int G = 2 * N;
        float *stack = malloc(sizeof(float) * cn), *g = malloc(sizeof(float) * 3 * G * G);
        int ok = 1;
        for (int i = 0; i < 16; i++) {
            nsrc.read_stack(nsrc.ctx, ba->series[i], ba->z[i], 2, stack, &e);
            dx_resize_bicubic_aa(stack, 3, N, N, (dx_box){0, 0, N, N}, g, G, G, NULL);
            dx_flip_h(g, 3, G, G);
            dx_window_apply(g, (size_t)3 * G * G, (dx_window){0, 4000, 0});
            dx_normalize(g, (size_t)3 * G * G, aug.norm_mean, aug.norm_std);
            for (int c = 0; c < 2; c++)
                if (memcmp(g, ba->gram + ((size_t)c * 16 + i) * 3 * G * G, sizeof(float) * 3 * G * G)) ok = 0;
        }
        CHECK(ok, "Gram crops = flipped 2x resize of the same box, base window, no blur");
        free(stack);
        free(g);
    }
    dx_loader_free(La);
    dx_loader_free(Lp);
    free(tmp);

    /* ---- determinism: 0 / 1 / 2 threads, resume, seek, crop-major rows ---- */
    dx_loader_opts_default(&o);
    o.seed = 1234;
    o.batch_size = 5;
    o.global_size = 32, o.local_size = 16, o.n_local = 3;
    o.gram_size = 64;
    o.pixel_spacing_mm = 0.6f;
    o.noise_p = 0.5f;
    o.prefetch = 3;
    dx_batch ref[6];
    o.threads = 0;
    dx_loader_create(&L, &src, &o, &e);
    for (int s = 0; s < 6; s++) {
        dx_batch_alloc(&ref[s], &o, &e);
        CHECK(dx_loader_get(L, s, &b, &e) == DX_OK, "sync get: %s", e.msg);
        size_t ng = (size_t)2 * 5 * 3 * 32 * 32, nl = (size_t)3 * 5 * 3 * 16 * 16, nq = (size_t)2 * 5 * 3 * 64 * 64;
        memcpy(ref[s].global, b->global, ng * 4);
        memcpy(ref[s].local, b->local, nl * 4);
        memcpy(ref[s].gram, b->gram, nq * 4);
        memcpy(ref[s].series, b->series, 20);
        memcpy(ref[s].z, b->z, 20);
        ref[s].step = s;
    }
    dx_loader_free(L);
    CHECK(memcmp(ref[0].global, ref[1].global, 4096) != 0, "different steps differ");
    for (int th = 1; th <= 2; th++) {
        o.threads = th;
        dx_loader_create(&L, &src, &o, &e);
        int ok = 1;
        for (int s = 0; s < 6; s++) ok &= dx_loader_get(L, s, &b, &e) == DX_OK && same_batch(b, &ref[s]);
        CHECK(ok, "%d threads: batches byte-identical to the synchronous ones", th);
        /* seek back, repeat, jump ahead */
        ok = dx_loader_get(L, 2, &b, &e) == DX_OK && same_batch(b, &ref[2]);
        ok &= dx_loader_get(L, 2, &b, &e) == DX_OK && same_batch(b, &ref[2]);
        ok &= dx_loader_get(L, 5, &b, &e) == DX_OK && same_batch(b, &ref[5]);
        ok &= dx_loader_get(L, 0, &b, &e) == DX_OK && same_batch(b, &ref[0]);
        CHECK(ok, "%d threads: seek / repeat give the same batches", th);
        dx_loader_free(L);
        /* resume: a fresh loader whose first request is step 3 */
        dx_loader_create(&L, &src, &o, &e);
        ok = dx_loader_get(L, 3, &b, &e) == DX_OK && same_batch(b, &ref[3]);
        ok &= dx_loader_get(L, 4, &b, &e) == DX_OK && same_batch(b, &ref[4]);
        CHECK(ok, "%d threads: resume at step 3 reproduces steps 3, 4", th);
        dx_loader_free(L);
    }
    /* crop-major: sample i of step 4 made alone lands in rows c*B + i */
    {
        dx_batch one;
        dx_batch_alloc(&one, &o, &e);
        CHECK(dx_loader_make_sample(&src, &o, 4, 3, &one, &e) == DX_OK, "make_sample");
        size_t gn = (size_t)3 * 32 * 32, ln = (size_t)3 * 16 * 16;
        int ok = one.series[3] == ref[4].series[3] && one.z[3] == ref[4].z[3];
        for (int c = 0; c < 2; c++) ok &= !memcmp(one.global + (c * 5 + 3) * gn, ref[4].global + (c * 5 + 3) * gn, gn * 4);
        for (int c = 0; c < 3; c++) ok &= !memcmp(one.local + (c * 5 + 3) * ln, ref[4].local + (c * 5 + 3) * ln, ln * 4);
        CHECK(ok, "crop-major rows c*B + b");
        dx_batch_free(&one);
    }
    for (int s = 0; s < 6; s++) dx_batch_free(&ref[s]);

    /* ---- the documented stream contract: crop c of sample b uses
     * (seed, DX_RNG_CROPS, step, b*64 + c), its first draws being the RRC box ---- */
    {
        dx_loader_opts q;
        identity_opts(&q);
        q.global_scale[0] = 0.3f, q.local_scale[0] = 0.05f, q.local_scale[1] = 0.3f;
        q.ratio[0] = 3.0f / 4, q.ratio[1] = 4.0f / 3;
        q.global_size = 24, q.local_size = 12;
        dx_batch one;
        dx_batch_alloc(&one, &q, &e);
        int ok = dx_loader_make_sample(&src, &q, 7, 2, &one, &e) == DX_OK;
        float *stack = malloc(sizeof(float) * 3 * N * N), *want = malloc(sizeof(float) * 3 * 24 * 24);
        int off = one.series[2] ? 4 : 2;
        src.read_stack(src.ctx, one.series[2], one.z[2], off, stack, &e);
        for (int c = 0; c < 2 + q.n_local; c++) {
            int sz = c < 2 ? 24 : 12;
            dx_rng_init(&r, q.seed, DX_RNG_CROPS, 7, 2 * 64 + c);
            dx_box bx = dx_rrc_params(&r, N, N, c < 2 ? q.global_scale : q.local_scale, q.ratio);
            dx_resize_bicubic_aa(stack, 3, N, N, bx, want, sz, sz, NULL);
            dx_window_apply(want, (size_t)3 * sz * sz, dx_window_base(q.windows, 0));
            dx_normalize(want, (size_t)3 * sz * sz, q.norm_mean, q.norm_std);
            const float *got = c < 2 ? one.global + ((size_t)c * q.batch_size + 2) * 3 * 24 * 24
                                     : one.local + ((size_t)(c - 2) * q.batch_size + 2) * 3 * 12 * 12;
            ok &= memcmp(got, want, sizeof(float) * 3 * sz * sz) == 0;
        }
        CHECK(ok, "crop c of sample b = RRC box from stream (seed, CROPS, step, b*64+c), resized and windowed");
        free(stack);
        free(want);
        dx_batch_free(&one);
    }

    /* ---- focus points: samples aimed at a lesion ---- */
    {
        enum { FX = 64, FZ = 20 };
        float *fv = malloc(sizeof(float) * FX * FX * FZ);
        for (int i = 0; i < FX * FX * FZ; i++) fv[i] = -1000;
        for (int z = 13; z <= 17; z++) /* a bright 3x3 lesion on 5 slices, near the right/top border */
            for (int y = 9; y <= 11; y++)
                for (int x = 55; x <= 57; x++) fv[((size_t)z * FX + y) * FX + x] = 500;
        dx_mem_volume fvol = {fv, FX, FX, FZ, {1, 1, 1}};
        dx_mem_source fms;
        dx_slice_source fsrc;
        dx_mem_source_init(&fsrc, &fms, &fvol, 1);
        dx_focus_point pt = {.series = 0, .x = 56, .y = 10, .z = 15, .radius_mm = 4}; /* slices 13..17 */
        dx_loader_opts q;
        identity_opts(&q);
        q.batch_size = 8, q.n_local = 4, q.global_size = 32, q.local_size = 16;
        q.global_scale[0] = 0.05f, q.global_scale[1] = 0.15f; /* 14-25 px boxes of 64 */
        q.local_scale[0] = 0.01f, q.local_scale[1] = 0.03f;   /* 6-11 px */
        q.ratio[0] = 3.0f / 4, q.ratio[1] = 4.0f / 3;
        q.flip_p = 0.5f;
        q.stack25d = 0;
        q.focus = &pt, q.n_focus = 1;
        /* does crop (c, b) of batch bt show the lesion? (any pixel above 0 HU) */
#define SHOWS(bt, c, bb)                                                                                        \
    ({                                                                                                         \
        int sz_ = (c) < 2 ? q.global_size : q.local_size, hit_ = 0;                                            \
        const float *p_ = (c) < 2 ? (bt).global + ((size_t)(c) * q.batch_size + (bb)) * 3 * sz_ * sz_          \
                                  : (bt).local + ((size_t)((c) - 2) * q.batch_size + (bb)) * 3 * sz_ * sz_;    \
        for (int i_ = 0; i_ < 3 * sz_ * sz_; i_++) hit_ |= to_hu(p_[i_], &q) > 0;                              \
        hit_;                                                                                                  \
    })
        dx_batch fb, ub, nb;
        dx_batch_alloc(&fb, &q, &e);
        dx_batch_alloc(&ub, &q, &e);
        dx_batch_alloc(&nb, &q, &e);
        int all_shown = 1, near = 1, flagged = 1, unfocused_missed = 0, same_off = 1;
        for (int64_t step = 0; step < 4; step++)
            for (int bb = 0; bb < q.batch_size; bb++) {
                q.focus_p = 1;
                CHECK(dx_loader_make_sample(&fsrc, &q, step, bb, &fb, &e) == DX_OK, "focused sample: %s", e.msg);
                near &= fb.z[bb] >= 13 && fb.z[bb] <= 17 && fb.series[bb] == 0;
                flagged &= fb.focused[bb] == 1;
                for (int c = 0; c < 2 + q.n_local; c++) all_shown &= SHOWS(fb, c, bb);
                q.focus_p = 0; /* with the points given but p = 0: exactly the unfocused loader */
                dx_loader_make_sample(&fsrc, &q, step, bb, &ub, &e);
                q.n_focus = 0;
                dx_loader_make_sample(&fsrc, &q, step, bb, &nb, &e);
                q.n_focus = 1;
                same_off &= ub.z[bb] == nb.z[bb] && ub.focused[bb] == 0;
                for (int c = 0; c < 2 + q.n_local; c++) unfocused_missed += !SHOWS(ub, c, bb);
            }
        same_off &= memcmp(ub.global, nb.global, sizeof(float) * 2 * q.batch_size * 3 * 32 * 32) == 0 &&
                    memcmp(ub.local, nb.local, sizeof(float) * 4 * q.batch_size * 3 * 16 * 16) == 0;
        CHECK(near && flagged, "focus_p = 1: every sample is flagged and read within the lesion's central half (z 13..17)");
        CHECK(all_shown, "focus_p = 1: every global and local crop shows the lesion, near the border too");
        CHECK(unfocused_missed > 100, "focus_p = 0: most small crops miss the lesion (%d of 192), so the check above can fail",
              unfocused_missed);
        CHECK(same_off, "focus_p = 0 with points given: the same draws and pixels as without points");
        /* focus_p = 0.5: about half the samples, and the threaded loader gives the same batches */
        q.focus_p = 0.5f;
        int nf = 0;
        for (int64_t step = 0; step < 8; step++)
            for (int bb = 0; bb < q.batch_size; bb++) {
                dx_loader_make_sample(&fsrc, &q, step, bb, &fb, &e);
                nf += fb.focused[bb];
            }
        CHECK(nf >= 20 && nf <= 44, "focus_p = 0.5: %d of 64 samples focused", nf);
        q.threads = 2;
        dx_loader *FL = NULL;
        CHECK(dx_loader_create(&FL, &fsrc, &q, &e) == DX_OK, "threaded focused loader: %s", e.msg);
        int same_thr = 1;
        for (int64_t step = 0; step < 3 && FL; step++) {
            const dx_batch *tb;
            dx_loader_get(FL, step, &tb, &e);
            for (int bb = 0; bb < q.batch_size; bb++) {
                dx_loader_make_sample(&fsrc, &q, step, bb, &fb, &e);
                same_thr &= tb->focused[bb] == fb.focused[bb] && tb->z[bb] == fb.z[bb];
            }
            q.threads = 0;
            same_thr &= memcmp(tb->local, fb.local, sizeof(float) * 4 * q.batch_size * 3 * 16 * 16) == 0;
            q.threads = 2;
        }
        CHECK(same_thr, "focused batches: threads 2 = threads 0 (the loader keeps its own copy of the points)");
        dx_loader_free(FL);
        q.threads = 0;
        dx_focus_point badpt = pt;
        badpt.series = 1;
        q.focus = &badpt;
        FL = NULL;
        CHECK(dx_loader_create(&FL, &fsrc, &q, &e) == DX_EINVAL && FL == NULL && strstr(e.msg, "series 1"),
              "a focus point outside the source is rejected: %s", e.msg);
        badpt.series = 0, badpt.z = NAN;
        CHECK(dx_loader_create(&FL, &fsrc, &q, &e) == DX_EINVAL && FL == NULL, "a NaN focus point is rejected: %s", e.msg);
#undef SHOWS
        dx_batch_free(&fb);
        dx_batch_free(&ub);
        dx_batch_free(&nb);
        free(fv);
    }
    /* dx_box_cover: the point in the central half wherever that fits, the box always inside */
    {
        dx_rng r;
        dx_rng_init(&r, 5, DX_RNG_CROPS, 0, 0);
        int inside = 1, central = 1, clamped = 1;
        for (int i = 0; i < 2000; i++) {
            int H = 40 + (int)dx_rng_below(&r, 60), W = 40 + (int)dx_rng_below(&r, 60);
            dx_box b0 = {0, 0, 4 + (int)dx_rng_below(&r, H - 4), 4 + (int)dx_rng_below(&r, W - 4)};
            double py = dx_rng_uniform(&r) * (H - 1), px = dx_rng_uniform(&r) * (W - 1);
            dx_box b = dx_box_cover(&r, b0, H, W, py, px);
            inside &= b.h == b0.h && b.w == b0.w && b.top >= 0 && b.left >= 0 && b.top + b.h <= H && b.left + b.w <= W;
            double lo = fmax(0, ceil(py - 0.75 * b.h)), hi = fmin(H - b.h, floor(py - 0.25 * b.h));
            if (lo <= hi) central &= py >= b.top + 0.25 * b.h && py <= b.top + 0.75 * b.h;
            else clamped &= py >= b.top && py < b.top + b.h; /* centred as far as the border allows */
            lo = fmax(0, ceil(px - 0.75 * b.w)), hi = fmin(W - b.w, floor(px - 0.25 * b.w));
            if (lo <= hi) central &= px >= b.left + 0.25 * b.w && px <= b.left + 0.75 * b.w;
            else clamped &= px >= b.left && px < b.left + b.w;
        }
        CHECK(inside, "dx_box_cover keeps the size and stays inside the image");
        CHECK(central, "dx_box_cover puts the point in the box's central half where a position allows it");
        CHECK(clamped, "dx_box_cover: where no position does, the box still holds the point");
    }

    /* ---- errors ---- */
    dx_slice_source bad = src;
    bad.read_stack = bad_read;
    o.threads = 2;
    dx_loader_create(&L, &bad, &o, &e);
    dx_err_clear(&e);
    CHECK(dx_loader_get(L, 0, &b, &e) == DX_EIO && strstr(e.msg, "disk gone") && b == NULL, "source error: %s", e.msg);
    CHECK(dx_loader_get(L, 1, &b, &e) == DX_EIO, "next step also fails");
    dx_loader_free(L);
    o.batch_size = 0;
    CHECK(dx_loader_create(&L, &src, &o, &e) == DX_EINVAL && L == NULL, "bad options rejected");
    dx_mem_source ems;
    dx_slice_source esrc;
    dx_mem_source_init(&esrc, &ems, vols, 0);
    dx_loader_opts_default(&o);
    CHECK(dx_loader_create(&L, &esrc, &o, &e) == DX_EINVAL, "empty source rejected: %s", e.msg);

    free(noise);
    free(data[0]);
    free(data[1]);
    return dx_test_summary();
}
