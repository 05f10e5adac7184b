/* embed.c - see embed.h. */
#include "eval/embed.h"

#include <stdlib.h>
#include <string.h>

#include "backend/registry.h"
#include "io/dx_npy.h"
#include "nn/backbone_meta.h"
#include "nn/vit.h"
#include "nn/weights.h"

void dx_embed_opts_default(dx_embed_opts *o) {
    memset(o, 0, sizeof *o);
    o->registers = -1;
    o->batch = 8;
}

dx_status dx_embed_run(const dx_embed_opts *o, dx_embed_info *info, int *bad_option, dx_err *err) {
    if (bad_option) *bad_option = 0;
    dx_vit_config cfg;
    dx_backend *be = NULL;
    dx_vit m;
    int have_model = 0;
    float *x = NULL, *w = NULL, *img = NULL, *out = NULL;
    dx_vit_acts acts = {0};
    int64_t shape[8];
    int ndim;
    dx_status s;
    /* the file's own shape (model.* metadata) unless --arch names one; shape
     * options then override, and must still agree with what the file says */
    dx_backbone_meta meta;
    if ((s = dx_backbone_meta_read(o->weights, &meta, err))) return s;
    if (meta.has_model && !o->arch) cfg = meta.model;
    else if ((s = dx_vit_config_named(&cfg, o->arch ? o->arch : "vit_small", err))) return s;
    dx_vit_config_override_shape(&cfg, o->patch, o->registers, o->dim, o->depth, o->heads);
    if (o->ffn) {
        if (!strcmp(o->ffn, "swiglu")) { cfg.ffn = DX_FFN_SWIGLU; cfg.ffn_hidden = dx_swiglu_width(4 * cfg.dim, 8); }
        else if (!strcmp(o->ffn, "mlp")) cfg.ffn = DX_FFN_MLP;
        else {
            if (bad_option) *bad_option = 1;
            return dx_fail(err, DX_EINVAL, "--ffn must be mlp or swiglu");
        }
    }
    if (o->ffn_hidden) cfg.ffn_hidden = o->ffn_hidden;
    if (o->ln_eps > 0) cfg.ln_eps = o->ln_eps;
    if (o->no_mask_k_bias) cfg.mask_k_bias = 0;
    if ((s = dx_backbone_meta_check(&meta, &cfg, o->weights, err))) {
        if (bad_option) *bad_option = 1;
        return dx_fail_prefix(err, "the shape options disagree with the file's metadata (leave them out: the file "
                              "says its shape)");
    }

    if ((s = dx_backend_open(&be, o->device, o->threads, err))) goto done;
    if ((s = dx_vit_init(&m, &cfg, err))) goto done;
    have_model = 1;
    w = be->ops->alloc(be, m.tab.total * sizeof(float));
    if (!w) { s = dx_fail(err, DX_ENOMEM, "weights"); goto done; }
    /* buffers the file lacks (periods, k-bias mask) keep their computed values */
    if ((s = dx_vit_init_weights(&m, be, w, 0, err))) goto done;
    if ((s = dx_weights_load(&m.tab, be, w, o->weights, "", DX_LOAD_BUFFERS_OPTIONAL, err))) goto done;
    if ((s = dx_npy_read_f32(o->input, &x, shape, &ndim, err))) goto done;
    if (ndim != 4 || shape[1] != cfg.in_chans) {
        s = dx_fail(err, DX_ESHAPE, "%s: expected float32 [N, %d, H, W], got %d dims", o->input, cfg.in_chans, ndim);
        goto done;
    }
    const int N = (int)shape[0], H = (int)shape[2], W = (int)shape[3];
    const int batch = o->batch > 0 ? o->batch : 8;
    const int B = batch < N ? batch : N;
    if ((s = dx_vit_acts_init(&acts, &m, be, B, H, W, 0, err))) goto done;
    const size_t img_elems = (size_t)cfg.in_chans * H * W, tok = (size_t)acts.T * cfg.dim;
    out = malloc((size_t)N * tok * sizeof(float));
    img = be->ops->alloc(be, (size_t)B * img_elems * sizeof(float));
    if (!out || !img) { s = dx_fail(err, DX_ENOMEM, "output buffers"); goto done; }
    for (int n0 = 0; n0 < N; n0 += B) {
        int nb = N - n0 < B ? N - n0 : B;
        if (nb != acts.N) { /* last partial batch */
            dx_vit_acts_free(&acts, be);
            if ((s = dx_vit_acts_init(&acts, &m, be, nb, H, W, 0, err))) goto done;
        }
        be->ops->upload(be, img, x + (size_t)n0 * img_elems, (size_t)nb * img_elems * sizeof(float));
        if ((s = dx_vit_forward(&m, be, w, &acts, img, NULL, NULL, err))) goto done;
        be->ops->download(be, out + (size_t)n0 * tok, acts.out, (size_t)nb * tok * sizeof(float));
    }
    int64_t oshape[3] = {N, acts.T, cfg.dim};
    if ((s = dx_npy_write(o->output, "<f4", out, oshape, 3, err))) goto done;
    if (info) *info = (dx_embed_info){.n = N, .h = H, .w = W, .tokens = acts.T, .dim = cfg.dim};
done:
    if (be) {
        if (acts.buf) dx_vit_acts_free(&acts, be);
        if (img) be->ops->free(be, img);
        if (w) be->ops->free(be, w);
    }
    if (have_model) dx_vit_free(&m);
    if (be) dx_backend_destroy(be);
    free(x);
    free(out);
    return s;
}
