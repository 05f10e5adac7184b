/* test_loader.c - the multi-crop CT loader end to end on an in-memory source:
 * 2.5D channel conventions (nearest slices at the mm spacing, clamped at the
 * edges, centre x3 when off), uniform slice sampling, in-plane resampling,
 * crop-major layout, the effective blur / flip probabilities, HU noise, Gram
 * crops sharing the global geometry, per-crop vs per-image windows, error
 * propagation, and byte-identical batches for 0/1/2 threads and on resume. */
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
