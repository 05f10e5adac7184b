/* export_timm.c - see export_timm.h. */
#include "train/export_timm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dx_safetensors.h"
#include "nn/backbone_meta.h"

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

dx_status dx_export_timm_write(const dx_vit *m, const float *w_host, const char *path, const char *const *meta,
                               int n_meta, dx_err *err) {
    char tn[64], tk[320];
    if (!dx_backbone_meta_timm(&m->cfg, tn, sizeof tn, tk, sizeof tk))
        return dx_fail(err, DX_EINVAL, "timm's DINOv3 ViTs need a GELU MLP, qkv/proj/FFN biases and the masked k "
                       "bias: this model has none to match (export --format safetensors instead)");
    const dx_table *t = &m->tab;
    const int64_t D = m->cfg.dim;
    dx_st_entry *e = calloc((size_t)t->n + m->cfg.depth + 1, sizeof *e);
    char (*names)[DX_NAME_MAX + 16] = calloc((size_t)t->n + m->cfg.depth + 1, sizeof *names);
    int64_t *bias_shape = calloc((size_t)t->n + 1, sizeof *bias_shape);
    if (!e || !names || !bias_shape) {
        free(e), free(names), free(bias_shape);
        return dx_fail(err, DX_ENOMEM, "timm export");
    }
    int n = 0;
    for (int i = 0; i < t->n; i++) {
        const dx_tensor_spec *ts = &t->t[i];
        const char *nm = ts->name;
        if (!strcmp(nm, "mask_token") || !strcmp(nm, "rope_embed.periods") || ends_with(nm, ".qkv.bias_mask"))
            continue;
        const float *src = w_host + ts->offset;
        if (ends_with(nm, ".attn.qkv.bias")) {
            /* [q | k | v]: q and v kept, k is zero under the bias mask */
            size_t stem = strlen(nm) - strlen("qkv.bias");
            bias_shape[i] = D;
            for (int part = 0; part < 2; part++) {
                snprintf(names[n], sizeof names[n], "%.*s%s", (int)stem, nm, part ? "v_bias" : "q_bias");
                e[n] = (dx_st_entry){.name = names[n], .dtype = DX_ST_F32, .ndim = 1, .shape = &bias_shape[i],
                                     .data = src + (part ? 2 * D : 0)};
                n++;
            }
            continue;
        }
        if (!strcmp(nm, "storage_tokens")) snprintf(names[n], sizeof names[n], "reg_token");
        else if (ends_with(nm, ".ls1.gamma") || ends_with(nm, ".ls2.gamma"))
            snprintf(names[n], sizeof names[n], "%.*sgamma_%c", (int)(strlen(nm) - strlen("ls1.gamma")), nm,
                     nm[strlen(nm) - strlen("1.gamma")]);
        else snprintf(names[n], sizeof names[n], "%s", nm);
        e[n] = (dx_st_entry){.name = names[n], .dtype = DX_ST_F32, .ndim = ts->ndim, .shape = ts->shape, .data = src};
        n++;
    }
    dx_status s = dx_st_write(path, e, n, meta, n_meta, err);
    free(e), free(names), free(bias_shape);
    return s;
}
