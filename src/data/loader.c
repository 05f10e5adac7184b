/* loader.c - multi-crop CT batches from a slice source, made by worker
 * threads into a ring of prefetch slots (see loader.h for the RNG naming).
 *
 * Threading: the slot of step t is slots[t % nslots]; the window of steps
 * being prepared is [base, base + nslots). The unit of work is one sample
 * (step t, index b): workers take the lowest untaken sample in the window,
 * write only that sample's rows of the slot's buffers, and count it done.
 * The consumer holds slot `base` between dx_loader_get calls; asking for
 * base + 1 releases it for step base + nslots. Any other step drains the
 * in-flight work and re-aims the window (resume / seek). */
#include "data/loader.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/dx_rng.h"
#include "data/augment.h"

/* ---- in-memory source ---------------------------------------------------- */

static int mem_n_series(void *ctx) { return ((dx_mem_source *)ctx)->n; }

static dx_status mem_info(void *ctx, int s, int dims[3], double sp[3], dx_err *err) {
    dx_mem_source *m = ctx;
    if (s < 0 || s >= m->n) return dx_fail(err, DX_ENOTFOUND, "mem source: no series %d", s);
    const dx_mem_volume *v = &m->vols[s];
    dims[0] = v->nx, dims[1] = v->ny, dims[2] = v->nz;
    memcpy(sp, v->spacing, 3 * sizeof(double));
    return DX_OK;
}

static dx_status mem_read(void *ctx, int s, int z, int off, float *out, dx_err *err) {
    dx_mem_source *m = ctx;
    if (s < 0 || s >= m->n) return dx_fail(err, DX_ENOTFOUND, "mem source: no series %d", s);
    const dx_mem_volume *v = &m->vols[s];
    if (z < 0 || z >= v->nz) return dx_fail(err, DX_EINVAL, "mem source: z %d outside [0, %d)", z, v->nz);
    size_t plane = (size_t)v->nx * v->ny;
    for (int c = 0; c < 3; c++) {
        int zz = z + (c - 1) * off;
        zz = zz < 0 ? 0 : zz >= v->nz ? v->nz - 1 : zz;
        memcpy(out + c * plane, v->hu + (size_t)zz * plane, plane * sizeof(float));
    }
    return DX_OK;
}

void dx_mem_source_init(dx_slice_source *src, dx_mem_source *m, const dx_mem_volume *vols, int n) {
    m->vols = vols;
    m->n = n;
    src->ctx = m;
    src->n_series = mem_n_series;
    src->series_info = mem_info;
    src->read_stack = mem_read;
}

/* ---- options --------------------------------------------------------------- */

void dx_loader_opts_default(dx_loader_opts *o) {
    memset(o, 0, sizeof *o);
    o->batch_size = 8;
    o->global_size = 224, o->local_size = 96, o->n_local = 8;
    o->global_scale[0] = 0.32f, o->global_scale[1] = 1.0f;
    o->local_scale[0] = 0.05f, o->local_scale[1] = 0.32f;
    o->ratio[0] = 3.0f / 4.0f, o->ratio[1] = 4.0f / 3.0f;
    o->flip_p = 0.5f;
    o->blur_p[0] = 0.0f, o->blur_p[1] = 0.9f, o->blur_p[2] = 0.5f;
    o->blur_sigma[0] = 0.1f, o->blur_sigma[1] = 2.0f;
    o->noise_p = 0.2f, o->noise_hu[0] = 0, o->noise_hu[1] = 20;
    o->stack25d = 1, o->slice_spacing_mm = 2.0f, o->pixel_spacing_mm = 0.7f;
    o->windows[0] = (dx_window_spec){1500, -600, 150, 400};
    o->windows[1] = (dx_window_spec){400, 40, 60, 150};
    o->n_windows = 2;
    o->window_shift_p = 0.5f, o->window_scale_p = 0.5f;
    o->window_per_crop = 1;
    o->norm_mean = 0.5f, o->norm_std = 0.25f;
    o->threads = 2, o->prefetch = 2;
}

static dx_status check_opts(const dx_loader_opts *o, dx_err *err) {
    if (o->batch_size < 1 || o->global_size < 5 || (o->n_local > 0 && o->local_size < 5) || o->n_local < 0 ||
        o->n_local > 61 || o->gram_size < 0 || o->threads < 0 || o->prefetch < 1)
        return dx_fail(err, DX_EINVAL,
                       "loader options: batch %d, sizes %d/%d (>= 5), %d locals (<= 61), gram %d, threads %d, prefetch %d",
                       o->batch_size, o->global_size, o->local_size, o->n_local, o->gram_size, o->threads, o->prefetch);
    if (o->n_windows < 1 || o->n_windows > DX_WINDOW_MAX) return dx_fail(err, DX_EINVAL, "loader options: 1..%d windows needed", DX_WINDOW_MAX);
    for (int i = 0; i < o->n_windows; i++)
        if (!(o->windows[i].width - o->windows[i].width_jitter > 0))
            return dx_fail(err, DX_EINVAL, "loader options: window %d can reach a width <= 0", i);
    if (!(o->focus_p >= 0 && o->focus_p <= 1) || o->n_focus < 0 || (o->n_focus > 0 && !o->focus))
        return dx_fail(err, DX_EINVAL, "loader options: focus_p %g outside [0, 1] or a bad focus list", o->focus_p);
    for (int i = 0; i < o->n_focus; i++) {
        const dx_focus_point *f = &o->focus[i];
        if (f->series < 0 || !isfinite(f->x) || !isfinite(f->y) || !isfinite(f->z) || !(f->radius_mm >= 0) ||
            !isfinite(f->radius_mm))
            return dx_fail(err, DX_EINVAL, "loader options: focus point %d (series %d) is not a finite voxel position",
                           i, f->series);
    }
    if (!(o->norm_std > 0) || !(o->ratio[0] > 0) || o->ratio[0] > o->ratio[1] || !(o->global_scale[0] > 0) ||
        !(o->local_scale[0] > 0))
        return dx_fail(err, DX_EINVAL, "loader options: norm_std, ratio and scale minima must be > 0");
    return DX_OK;
}

/* ---- batches --------------------------------------------------------------- */

dx_status dx_batch_alloc(dx_batch *b, const dx_loader_opts *o, dx_err *err) {
    memset(b, 0, sizeof *b);
    b->step = -1;
    b->B = o->batch_size, b->n_local = o->n_local;
    b->S = o->global_size, b->s = o->local_size, b->G = o->gram_size;
    size_t B = (size_t)b->B;
    b->pixel_free = o->pixel_alloc ? o->pixel_free : NULL;
    b->pixel_ctx = o->pixel_ctx;
#define PIXELS(bytes) (o->pixel_alloc ? o->pixel_alloc(o->pixel_ctx, bytes) : malloc(bytes))
    b->global = PIXELS(sizeof(float) * 2 * B * 3 * b->S * b->S);
    if (b->n_local) b->local = PIXELS(sizeof(float) * b->n_local * B * 3 * b->s * b->s);
    if (b->G) b->gram = PIXELS(sizeof(float) * 2 * B * 3 * b->G * b->G);
#undef PIXELS
    b->series = malloc(sizeof(int32_t) * B);
    b->z = malloc(sizeof(int32_t) * B);
    b->focused = malloc(sizeof(int32_t) * B);
    b->window = malloc(sizeof(int32_t) * 2 * B);
    if (!b->global || (b->n_local && !b->local) || (b->G && !b->gram) || !b->series || !b->z || !b->focused ||
        !b->window) {
        dx_batch_free(b);
        return dx_fail(err, DX_ENOMEM, "loader: out of memory for a batch of %zu images", B);
    }
    return DX_OK;
}

void dx_batch_free(dx_batch *b) {
    float *px[3] = {b->global, b->local, b->gram};
    for (int i = 0; i < 3; i++) {
        if (!px[i]) continue;
        if (b->pixel_free) b->pixel_free(b->pixel_ctx, px[i]);
        else free(px[i]);
    }
    free(b->series);
    free(b->z);
    free(b->focused);
    free(b->window);
    memset(b, 0, sizeof *b);
}

/* ---- one sample ------------------------------------------------------------ */

/* Cumulative slice counts, so (series, z) is drawn uniformly over all slices. */
typedef struct slice_index {
    int n;
    int64_t *cum; /* [n + 1] */
} slice_index;

static dx_status index_build(slice_index *ix, const dx_slice_source *src, dx_err *err) {
    ix->n = src->n_series(src->ctx);
    ix->cum = NULL;
    if (ix->n < 1) return dx_fail(err, DX_EINVAL, "loader: the slice source has no series");
    ix->cum = malloc(sizeof(int64_t) * (ix->n + 1));
    if (!ix->cum) return dx_fail(err, DX_ENOMEM, "loader: out of memory");
    ix->cum[0] = 0;
    for (int i = 0; i < ix->n; i++) {
        int d[3];
        double sp[3];
        dx_status s = src->series_info(src->ctx, i, d, sp, err);
        if (s) return dx_fail_prefix(err, "loader: series %d", i);
        if (d[0] < 1 || d[1] < 1 || d[2] < 1 || !(sp[0] > 0) || !(sp[1] > 0) || !(sp[2] > 0))
            return dx_fail(err, DX_EFORMAT, "loader: series %d has bad dims %dx%dx%d or spacing", i, d[0], d[1], d[2]);
        ix->cum[i + 1] = ix->cum[i] + d[2];
    }
    return DX_OK;
}

/* Focus points must name a series of the source. */
static dx_status check_focus(const slice_index *ix, const dx_loader_opts *o, dx_err *err) {
    for (int i = 0; i < o->n_focus; i++)
        if (o->focus[i].series >= ix->n)
            return dx_fail(err, DX_EINVAL, "loader: focus point %d names series %d; the source has %d", i,
                           o->focus[i].series, ix->n);
    return DX_OK;
}

static dx_status make_sample(const dx_slice_source *src, const slice_index *ix, const dx_loader_opts *o,
                             int64_t step, int b, dx_batch *bt, dx_err *err) {
    dx_rng r;
    dx_rng_init(&r, o->seed, DX_RNG_SAMPLER, (uint64_t)step, (uint64_t)(o->sample_offset + b));
    uint64_t total = (uint64_t)ix->cum[ix->n];
    uint64_t u = total <= UINT32_MAX ? dx_rng_below(&r, (uint32_t)total) : dx_rng_u64(&r) % total;
    int lo = 0, hi = ix->n - 1; /* last series with cum[s] <= u */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if ((uint64_t)ix->cum[mid] <= u) lo = mid;
        else hi = mid - 1;
    }
    int series = lo, z = (int)(u - (uint64_t)ix->cum[lo]);
    /* The focus coin comes after the uniform draw, and only when focusing is
     * on, so focus_p = 0 leaves every stream as it was. */
    const dx_focus_point *fp = NULL;
    if (o->focus_p > 0 && o->n_focus > 0 && dx_rng_uniform(&r) < o->focus_p) {
        fp = &o->focus[dx_rng_below(&r, (uint32_t)o->n_focus)];
        series = fp->series;
    }

    int d[3];
    double sp[3];
    dx_status s = src->series_info(src->ctx, series, d, sp, err);
    if (s) return s;
    if (fp) {
        int zr = (int)floor(0.5 * fp->radius_mm / sp[2]); /* within the lesion's central half */
        z = (int)lround(fp->z) + (int)dx_rng_below(&r, (uint32_t)(2 * zr + 1)) - zr;
        z = z < 0 ? 0 : z >= d[2] ? d[2] - 1 : z;
    }
    bt->series[b] = series, bt->z[b] = z, bt->focused[b] = fp != NULL;
    /* 2.5D: nearest slices at +-slice_spacing_mm (no z interpolation yet) */
    int off = 0;
    if (o->stack25d) {
        off = (int)lround(o->slice_spacing_mm / sp[2]);
        if (off < 1) off = 1;
    }
    int W0 = d[0], H0 = d[1], H = H0, W = W0;
    if (o->pixel_spacing_mm > 0) {
        W = (int)lround(W0 * sp[0] / o->pixel_spacing_mm);
        H = (int)lround(H0 * sp[1] / o->pixel_spacing_mm);
        if (W < 1) W = 1;
        if (H < 1) H = 1;
    }
    int S = o->global_size, sl = o->local_size, G = o->gram_size;
    int maxs = S > sl ? S : sl;
    if (G > maxs) maxs = G;
    size_t n_raw = (size_t)3 * H0 * W0, n_img = (size_t)3 * H * W;
    size_t n_scr = (size_t)3 * (H > maxs ? H : maxs) * maxs;
    float *raw = malloc(sizeof(float) * n_raw);
    float *img = (H != H0 || W != W0) ? malloc(sizeof(float) * n_img) : raw;
    float *scr = malloc(sizeof(float) * n_scr);
    if (!raw || !img || !scr) {
        s = dx_fail(err, DX_ENOMEM, "loader: out of memory for a %dx%d slice", W0, H0);
        goto done;
    }
    if ((s = src->read_stack(src->ctx, series, z, off, raw, err))) {
        dx_fail_prefix(err, "loader: series %d z %d", series, z);
        goto done;
    }
    if (img != raw) dx_resize_bilinear(raw, 3, H0, W0, img, H, W);
    /* the focus point on the resampled grid (pixel centres at i + 0.5 on both) */
    double fy = fp ? (fp->y + 0.5) * H / H0 - 0.5 : 0, fx = fp ? (fp->x + 0.5) * W / W0 - 0.5 : 0;

    dx_window img_win = {0};
    if (!o->window_per_crop) {
        dx_rng_init(&r, o->seed, DX_RNG_CROPS, (uint64_t)step, (uint64_t)(o->sample_offset + b) * 64 + 63);
        img_win = dx_window_draw(&r, o->windows, o->n_windows, o->window_shift_p, o->window_scale_p);
    }
    int B = o->batch_size;
    for (int c = 0; c < 2 + o->n_local; c++) {
        int global = c < 2, size = global ? S : sl;
        dx_rng_init(&r, o->seed, DX_RNG_CROPS, (uint64_t)step, (uint64_t)(o->sample_offset + b) * 64 + c);
        dx_box box = dx_rrc_params(&r, H, W, global ? o->global_scale : o->local_scale, o->ratio);
        if (fp) box = dx_box_cover(&r, box, H, W, fy, fx);
        int flip = dx_rng_uniform(&r) < o->flip_p;
        dx_window win = dx_window_draw(&r, o->windows, o->n_windows, o->window_shift_p, o->window_scale_p);
        if (!o->window_per_crop) win = img_win;
        if (o->fixed_window) win = dx_window_base(o->windows, 0);
        if (global) bt->window[(size_t)c * B + b] = win.base;
        int noise = dx_rng_uniform(&r) < o->noise_p;
        float noise_sd = (float)dx_rng_uniform_range(&r, o->noise_hu[0], o->noise_hu[1]);
        float blur_p = o->blur_p[global ? c : 2];
        int blur = dx_rng_uniform(&r) < blur_p;
        float sigma = (float)dx_rng_uniform_range(&r, o->blur_sigma[0], o->blur_sigma[1]);

        size_t n = (size_t)3 * size * size;
        float *out = global ? bt->global + ((size_t)c * B + b) * n : bt->local + ((size_t)(c - 2) * B + b) * n;
        if (dx_resize_bicubic_aa(img, 3, H, W, box, out, size, size, scr)) {
            s = dx_fail(err, DX_ENOMEM, "loader: resize scratch");
            goto done;
        }
        if (flip) dx_flip_h(out, 3, size, size);
        if (noise && noise_sd > 0) dx_add_noise(out, n, noise_sd, &r); /* HU noise, before windowing */
        dx_window_apply(out, n, win);
        if (blur && dx_gaussian_blur(out, 3, size, size, sigma, scr)) {
            s = dx_fail(err, DX_ENOMEM, "loader: blur scratch");
            goto done;
        }
        dx_normalize(out, n, o->norm_mean, o->norm_std);
        if (global && G) {
            /* Gram-teacher crop: same box and flip at G px, base window, no noise/blur */
            size_t ng = (size_t)3 * G * G;
            float *g = bt->gram + ((size_t)c * B + b) * ng;
            if (dx_resize_bicubic_aa(img, 3, H, W, box, g, G, G, scr)) {
                s = dx_fail(err, DX_ENOMEM, "loader: resize scratch");
                goto done;
            }
            if (flip) dx_flip_h(g, 3, G, G);
            dx_window_apply(g, ng, dx_window_base(o->windows, win.base));
            dx_normalize(g, ng, o->norm_mean, o->norm_std);
        }
    }
    s = DX_OK;
done:
    if (img != raw) free(img);
    free(raw);
    free(scr);
    return s;
}

dx_status dx_loader_make_sample(const dx_slice_source *src, const dx_loader_opts *o, int64_t step, int b,
                                dx_batch *batch, dx_err *err) {
    dx_status s = check_opts(o, err);
    if (s) return s;
    if (b < 0 || b >= o->batch_size) return dx_fail(err, DX_EINVAL, "loader: sample %d outside the batch", b);
    slice_index ix;
    s = index_build(&ix, src, err);
    if (!s) s = check_focus(&ix, o, err);
    if (!s) s = make_sample(src, &ix, o, step, b, batch, err);
    free(ix.cum);
    return s;
}

/* ---- the threaded loader ---------------------------------------------------- */

typedef struct slot {
    dx_batch b;
    int next, done, failed;
    dx_err err;
} slot;

struct dx_loader {
    dx_slice_source src;
    dx_loader_opts o;
    slice_index ix;
    int nslots;
    slot *slots;
    pthread_t *th;
    int nth;
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    int64_t base;
    int held, in_flight, pausing, stop;
};

static slot *slot_of(dx_loader *L, int64_t t) { return &L->slots[t % L->nslots]; }

static void slot_reset(slot *s, int64_t step) {
    s->b.step = step;
    s->next = s->done = s->failed = 0;
}

static void *worker(void *arg) {
    dx_loader *L = arg;
    int B = L->o.batch_size;
    pthread_mutex_lock(&L->mu);
    while (!L->stop) {
        slot *sl = NULL;
        int64_t t = 0;
        if (!L->pausing)
            for (t = L->base; t < L->base + L->nslots; t++) {
                slot *c = slot_of(L, t);
                if (c->b.step == t && c->next < B) {
                    sl = c;
                    break;
                }
            }
        if (!sl) {
            pthread_cond_wait(&L->work_cv, &L->mu);
            continue;
        }
        int j = sl->next++;
        L->in_flight++;
        pthread_mutex_unlock(&L->mu);
        dx_err e;
        dx_err_clear(&e);
        dx_status s = make_sample(&L->src, &L->ix, &L->o, t, j, &sl->b, &e);
        pthread_mutex_lock(&L->mu);
        L->in_flight--;
        if (s && !sl->failed) sl->failed = 1, sl->err = e;
        sl->done++;
        pthread_cond_broadcast(&L->done_cv);
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

void dx_loader_free(dx_loader *L) {
    if (!L) return;
    if (L->th) {
        pthread_mutex_lock(&L->mu);
        L->stop = 1;
        pthread_cond_broadcast(&L->work_cv);
        pthread_mutex_unlock(&L->mu);
        for (int i = 0; i < L->nth; i++) pthread_join(L->th[i], NULL);
        free(L->th);
    }
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->work_cv);
    pthread_cond_destroy(&L->done_cv);
    for (int i = 0; i < L->nslots && L->slots; i++) dx_batch_free(&L->slots[i].b);
    free(L->slots);
    free(L->ix.cum);
    free((void *)L->o.focus);
    free(L);
}

dx_status dx_loader_create(dx_loader **out, const dx_slice_source *src, const dx_loader_opts *o, dx_err *err) {
    *out = NULL;
    dx_status s = check_opts(o, err);
    if (s) return s;
    dx_loader *L = calloc(1, sizeof *L);
    if (!L) return dx_fail(err, DX_ENOMEM, "loader: out of memory");
    L->src = *src;
    L->o = *o;
    L->o.focus = NULL; /* the loader's own copy, below */
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->work_cv, NULL);
    pthread_cond_init(&L->done_cv, NULL);
    if ((s = index_build(&L->ix, src, err)) || (s = check_focus(&L->ix, o, err))) goto fail;
    if (o->n_focus > 0) {
        dx_focus_point *f = malloc(sizeof *f * (size_t)o->n_focus);
        if (!f) {
            s = dx_fail(err, DX_ENOMEM, "loader: out of memory for %d focus points", o->n_focus);
            goto fail;
        }
        memcpy(f, o->focus, sizeof *f * (size_t)o->n_focus);
        L->o.focus = f;
    }
    L->nslots = o->threads ? o->prefetch + 1 : 1; /* +1: the slot the consumer holds */
    L->slots = calloc(L->nslots, sizeof(slot));
    if (!L->slots) {
        s = dx_fail(err, DX_ENOMEM, "loader: out of memory");
        goto fail;
    }
    for (int i = 0; i < L->nslots; i++) {
        if ((s = dx_batch_alloc(&L->slots[i].b, o, err))) goto fail;
        slot_reset(&L->slots[i], i);
    }
    L->base = 0;
    if (o->threads) {
        L->th = calloc(o->threads, sizeof(pthread_t));
        if (!L->th) {
            s = dx_fail(err, DX_ENOMEM, "loader: out of memory");
            goto fail;
        }
        for (int i = 0; i < o->threads; i++) {
            if (pthread_create(&L->th[i], NULL, worker, L) != 0) {
                s = dx_fail(err, DX_ENOMEM, "loader: cannot start worker thread %d", i);
                goto fail;
            }
            L->nth++;
        }
    }
    *out = L;
    return DX_OK;
fail:
    dx_loader_free(L);
    return s;
}

dx_status dx_loader_get(dx_loader *L, int64_t step, const dx_batch **out, dx_err *err) {
    *out = NULL;
    if (step < 0) return dx_fail(err, DX_EINVAL, "loader: negative step %lld", (long long)step);
    int B = L->o.batch_size;
    if (!L->th) { /* synchronous: one slot, filled here */
        slot *sl = &L->slots[0];
        if (sl->b.step != step || sl->done != B || sl->failed) {
            slot_reset(sl, step);
            for (int j = 0; j < B; j++) {
                dx_status s = make_sample(&L->src, &L->ix, &L->o, step, j, &sl->b, err);
                if (s) {
                    sl->b.step = -1;
                    return s;
                }
                sl->done++;
            }
        }
        *out = &sl->b;
        return DX_OK;
    }
    pthread_mutex_lock(&L->mu);
    if (L->held && step == L->base + 1) {
        slot_reset(slot_of(L, L->base), L->base + L->nslots);
        L->base++;
        L->held = 0;
        pthread_cond_broadcast(&L->work_cv);
    } else if (!(step == L->base)) {
        /* seek: let in-flight samples land, then re-aim every slot */
        L->pausing = 1;
        while (L->in_flight > 0) pthread_cond_wait(&L->done_cv, &L->mu);
        for (int64_t t = step; t < step + L->nslots; t++) slot_reset(slot_of(L, t), t);
        L->base = step;
        L->held = 0;
        L->pausing = 0;
        pthread_cond_broadcast(&L->work_cv);
    }
    slot *sl = slot_of(L, step);
    while (sl->done < B) pthread_cond_wait(&L->done_cv, &L->mu);
    L->held = 1;
    dx_status s = DX_OK;
    if (sl->failed) {
        if (err) *err = sl->err;
        s = sl->err.code ? sl->err.code : DX_EIO;
        /* a failed step is retried from scratch if asked again */
        L->pausing = 1;
        while (L->in_flight > 0) pthread_cond_wait(&L->done_cv, &L->mu);
        slot_reset(sl, step);
        L->held = 0;
        L->pausing = 0;
        pthread_cond_broadcast(&L->work_cv);
    } else {
        *out = &sl->b;
    }
    pthread_mutex_unlock(&L->mu);
    return s;
}
