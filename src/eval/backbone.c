/* backbone.c - loading a frozen backbone and extracting its features. */
#include "eval/backbone.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/weights.h"
#include "io/checkpoint.h"

static dx_status model_init(dx_eval_model *em, const dx_vit_config *cfg, dx_backend *be, uint64_t seed,
                            dx_err *err) {
    memset(em, 0, sizeof *em);
    em->step = -1;
    dx_status st = dx_vit_init(&em->vit, cfg, err);
    if (st) return st;
    em->w = be->ops->alloc(be, em->vit.tab.total * sizeof(float));
    if (!em->w) { dx_vit_free(&em->vit); return dx_fail(err, DX_ENOMEM, "backbone weights"); }
    /* buffers (RoPE periods, k-bias mask) get their computed values here */
    if ((st = dx_vit_init_weights(&em->vit, be, em->w, seed, err))) dx_eval_model_free(em, be);
    return st;
}

dx_status dx_eval_model_load(dx_eval_model *em, const dx_vit_config *cfg, dx_backend *be,
                             const char *path, const char *prefix, int full_depth, dx_err *err) {
    dx_status st = model_init(em, cfg, be, 0, err);
    if (st) return st;
    const int cut = full_depth > cfg->depth;
    if ((st = dx_weights_load(&em->vit.tab, be, em->w, path, prefix ? prefix : "",
                              DX_LOAD_BUFFERS_OPTIONAL | (cut ? DX_LOAD_IGNORE_EXTRA : 0u), err))) {
        dx_eval_model_free(em, be);
        return dx_fail_prefix(err, "loading %s", path);
    }
    em->full_depth = cut ? full_depth : 0;
    snprintf(em->source, sizeof em->source, "%s", path);
    return DX_OK;
}

dx_status dx_eval_model_random(dx_eval_model *em, const dx_vit_config *cfg, dx_backend *be,
                               uint64_t seed, dx_err *err) {
    dx_status st = model_init(em, cfg, be, seed, err);
    if (!st) snprintf(em->source, sizeof em->source, "random init (seed %" PRIu64 ")", seed);
    return st;
}

dx_status dx_eval_model_from_ckpt(dx_eval_model *em, const dx_vit_config *cfg, dx_backend *be,
                                  const char *ckpt_path, const char *which, dx_err *err) {
    dx_ckpt ck;
    dx_status st = dx_ckpt_open(&ck, ckpt_path, err);
    if (st) return st;
    if ((st = model_init(em, cfg, be, 0, err))) { dx_ckpt_close(&ck); return st; }
    const dx_table *t = &em->vit.tab;
    float *host = malloc(t->total * sizeof(float));
    if (!host) { st = dx_fail(err, DX_ENOMEM, "checkpoint staging"); goto done; }
    be->ops->download(be, host, em->w, t->total * sizeof(float));
    for (int i = 0; i < t->n; i++) {
        char name[DX_CKPT_NAME_MAX + 32];
        snprintf(name, sizeof name, "%s.backbone.%s", which, t->t[i].name);
        const dx_ckpt_tensor *ct = dx_ckpt_find(&ck, name);
        if (!ct) {
            if (t->t[i].flags & DX_TF_BUFFER) continue; /* computed buffers may be absent */
            st = dx_fail(err, DX_ENOTFOUND, "%s: no tensor %s", ckpt_path, name);
            goto done;
        }
        size_t numel = 1;
        for (int k = 0; k < ct->ndim; k++) numel *= (size_t)ct->shape[k];
        if (numel != t->t[i].numel) {
            st = dx_fail(err, DX_ESHAPE, "%s: %s has %zu elements, the model expects %zu (check model.* in config.yaml)",
                         ckpt_path, name, numel, t->t[i].numel);
            goto done;
        }
        memcpy(host + t->t[i].offset, ct->data, numel * sizeof(float));
    }
    be->ops->upload(be, em->w, host, t->total * sizeof(float));
    em->step = ck.step;
    snprintf(em->source, sizeof em->source, "%s (%s, step %" PRId64 ")", ckpt_path, which, ck.step);
done:
    free(host);
    dx_ckpt_close(&ck);
    if (st) dx_eval_model_free(em, be);
    return st;
}

void dx_eval_model_free(dx_eval_model *em, dx_backend *be) {
    if (em->w) be->ops->free(be, em->w);
    em->w = NULL;
    dx_vit_free(&em->vit);
}

typedef struct { char *path; int64_t step; } ck_item;
static int cmp_ck(const void *a, const void *b) {
    int64_t x = ((const ck_item *)a)->step, y = ((const ck_item *)b)->step;
    return x < y ? -1 : x > y;
}

dx_status dx_eval_list_checkpoints(const char *dir, char ***paths, int64_t **steps, int *n, dx_err *err) {
    *paths = NULL;
    *steps = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return dx_fail(err, DX_ENOTFOUND, "no checkpoint directory %s", dir);
    ck_item *it = NULL;
    int cnt = 0, cap = 0;
    dx_status st = DX_OK;
    for (struct dirent *e; (e = readdir(d));) {
        long long s;
        char tail[8];
        if (sscanf(e->d_name, "ckpt-%lld.safetensor%1s", &s, tail) != 2 || strcmp(tail, "s")) continue;
        if (strlen(e->d_name) != strlen("ckpt-0000000000.safetensors")) continue;
        if (cnt == cap) {
            cap = cap ? 2 * cap : 16;
            ck_item *ni = realloc(it, (size_t)cap * sizeof *it);
            if (!ni) { st = dx_fail(err, DX_ENOMEM, "checkpoint list"); break; }
            it = ni;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        it[cnt].path = malloc(len);
        if (!it[cnt].path) { st = dx_fail(err, DX_ENOMEM, "checkpoint list"); break; }
        snprintf(it[cnt].path, len, "%s/%s", dir, e->d_name);
        it[cnt++].step = s;
    }
    closedir(d);
    if (!st) {
        qsort(it, cnt, sizeof *it, cmp_ck);
        *paths = malloc((size_t)(cnt ? cnt : 1) * sizeof **paths);
        *steps = malloc((size_t)(cnt ? cnt : 1) * sizeof **steps);
        if (!*paths || !*steps) st = dx_fail(err, DX_ENOMEM, "checkpoint list");
    }
    if (st) {
        for (int i = 0; i < cnt; i++) free(it[i].path);
        free(it);
        free(*paths); free(*steps);
        *paths = NULL; *steps = NULL;
        return st;
    }
    for (int i = 0; i < cnt; i++) { (*paths)[i] = it[i].path; (*steps)[i] = it[i].step; }
    *n = cnt;
    free(it);
    return DX_OK;
}

void dx_eval_free_list(char **paths, int64_t *steps, int n) {
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
    free(steps);
}

dx_status dx_extract_features(const dx_eval_model *em, dx_backend *be, const float *imgs, int n, int S,
                              int batch, int want_patch, int want_att, dx_features *f, dx_err *err) {
    memset(f, 0, sizeof *f);
    const dx_vit_config *c = &em->vit.cfg;
    if (n <= 0 || batch <= 0 || S % c->patch) return dx_fail(err, DX_EINVAL, "features: n=%d S=%d patch %d", n, S, c->patch);
    const int D = c->dim, R = c->registers, Hp = S / c->patch, Wp = Hp, P = Hp * Wp, T = 1 + R + P;
    const int Hh = c->heads;
    f->n = n; f->D = D; f->P = P; f->Hp = Hp; f->Wp = Wp; f->heads = Hh;
    f->cls = malloc((size_t)n * D * sizeof(float));
    f->mean = calloc((size_t)n * D, sizeof(float));
    if (want_patch) f->patch = malloc((size_t)n * P * D * sizeof(float));
    if (want_att) f->att = malloc((size_t)n * Hh * P * sizeof(float));
    const int B = batch < n ? batch : n;
    const size_t img_elems = (size_t)3 * S * S, tok = (size_t)T * D;
    /* the CLS query rows of the last block's attention, gathered on the device
     * and read back in one transfer per batch: [B*H, T] */
    float *out = malloc((size_t)B * tok * sizeof(float));
    float *rows = want_att ? malloc((size_t)B * Hh * T * sizeof(float)) : NULL;
    int32_t *ridx = want_att ? malloc((size_t)B * Hh * sizeof(int32_t)) : NULL;
    float *drows = want_att ? be->ops->alloc(be, (size_t)B * Hh * T * sizeof(float)) : NULL;
    int32_t *dridx = want_att ? be->ops->alloc(be, (size_t)B * Hh * sizeof(int32_t)) : NULL;
    float *dimg = be->ops->alloc(be, (size_t)B * img_elems * sizeof(float));
    dx_vit_acts acts = {0};
    dx_status st = DX_OK;
    if (!f->cls || !f->mean || (want_patch && !f->patch) || (want_att && !f->att) || !out || !dimg ||
        (want_att && (!rows || !ridx || !drows || !dridx))) {
        st = dx_fail(err, DX_ENOMEM, "features for %d images", n);
        goto done;
    }
    if (want_att) {
        for (int i = 0; i < B * Hh; i++) ridx[i] = i * T; /* row 0 of each (image, head) T x T block */
        be->ops->upload(be, dridx, ridx, (size_t)B * Hh * sizeof(int32_t));
    }
    for (int n0 = 0; n0 < n; n0 += B) {
        int nb = n - n0 < B ? n - n0 : B;
        if (!acts.buf || nb != acts.N) {
            if (acts.buf) dx_vit_acts_free(&acts, be);
            memset(&acts, 0, sizeof acts);
            if ((st = dx_vit_acts_init(&acts, &em->vit, be, nb, S, S, want_att ? DX_ACTS_ATTN : 0u, err))) goto done;
        }
        be->ops->upload(be, dimg, imgs + (size_t)n0 * img_elems, (size_t)nb * img_elems * sizeof(float));
        if ((st = dx_vit_forward(&em->vit, be, em->w, &acts, dimg, NULL, NULL, err))) goto done;
        be->ops->download(be, out, acts.out, (size_t)nb * tok * sizeof(float));
        for (int i = 0; i < nb; i++) {
            const float *o = out + (size_t)i * tok;
            float *cl = f->cls + (size_t)(n0 + i) * D, *mn = f->mean + (size_t)(n0 + i) * D;
            memcpy(cl, o, (size_t)D * sizeof(float));
            for (int p = 0; p < P; p++)
                for (int j = 0; j < D; j++) mn[j] += o[(size_t)(1 + R + p) * D + j] / P;
            if (want_patch)
                memcpy(f->patch + (size_t)(n0 + i) * P * D, o + (size_t)(1 + R) * D, (size_t)P * D * sizeof(float));
        }
        if (want_att) {
            const float *att = dx_vit_acts_last_attention(&acts, &em->vit); /* [nb, H, T, T] */
            be->ops->gather_rows(be, drows, att, dridx, nb * Hh, (size_t)T);
            be->ops->download(be, rows, drows, (size_t)nb * Hh * T * sizeof(float));
            for (int r = 0; r < nb * Hh; r++)
                memcpy(f->att + ((size_t)n0 * Hh + r) * P, rows + (size_t)r * T + 1 + R, (size_t)P * sizeof(float));
        }
    }
done:
    if (acts.buf) dx_vit_acts_free(&acts, be);
    if (dimg) be->ops->free(be, dimg);
    if (drows) be->ops->free(be, drows);
    if (dridx) be->ops->free(be, dridx);
    free(out);
    free(rows);
    free(ridx);
    if (st) dx_features_free(f);
    return st;
}

void dx_features_free(dx_features *f) {
    free(f->cls); free(f->mean); free(f->patch); free(f->att);
    f->cls = f->mean = f->patch = f->att = NULL;
}
