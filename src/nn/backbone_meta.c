/* backbone_meta.c - see backbone_meta.h. */
#include "nn/backbone_meta.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dx_safetensors.h"

static void add(dx_meta_pairs *p, const char *k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add(dx_meta_pairs *p, const char *k, const char *fmt, ...) {
    if (p->n >= DX_META_MAX_PAIRS) return;
    char *key = p->buf[2 * p->n], *val = p->buf[2 * p->n + 1];
    snprintf(key, sizeof p->buf[0], "%s", k);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(val, sizeof p->buf[0], fmt, ap);
    va_end(ap);
    p->kv[2 * p->n] = key;
    p->kv[2 * p->n + 1] = val;
    p->n++;
}

const char *dx_backbone_meta_fstr(char *b, size_t n, float v) {
    if (v == floorf(v) && fabsf(v) < 1e7f) {
        snprintf(b, n, "%.0f", (double)v);
        return b;
    }
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(b, n, "%.*g", prec, (double)v);
        if (strtof(b, NULL) == v) break;
    }
    return b;
}

int dx_backbone_meta_timm(const dx_vit_config *c, char *name, size_t name_len, char *kwargs, size_t kwargs_len) {
    /* timm's DINOv3 family: GELU MLP, LayerNorm, RoPE "dinov3" (rotate-half), k
     * bias masked to zero (the _qkvb variants keep a qkv bias tensor) */
    if (c->ffn != DX_FFN_MLP || !c->qkv_bias || !c->mask_k_bias || !c->proj_bias || !c->ffn_bias) return 0;
    const char *base = "vit_small_patch16_dinov3_qkvb";
    if (c->dim == 768 && c->depth == 12 && c->heads == 12) base = "vit_base_patch16_dinov3_qkvb";
    else if (c->dim == 1024 && c->depth == 24 && c->heads == 16) base = "vit_large_patch16_dinov3_qkvb";
    snprintf(name, name_len, "%s", base);
    snprintf(kwargs, kwargs_len,
             "{\"embed_dim\": %d, \"depth\": %d, \"num_heads\": %d, \"num_reg_tokens\": %d, \"patch_size\": %d, "
             "\"in_chans\": %d, \"mlp_ratio\": %.9g, \"rope_temperature\": %.9g}", /* doubles: exact */
             c->dim, c->depth, c->heads, c->registers, c->patch, c->in_chans, (double)c->ffn_hidden / c->dim,
             (double)c->rope_base);
    return 1;
}

void dx_backbone_meta_pairs(const dx_backbone_meta *m, dx_meta_pairs *p) {
    memset(p, 0, sizeof *p);
    add(p, "format", "%s", m->format[0] ? m->format : "dinox-backbone");
    if (m->source[0]) add(p, "source", "%s", m->source);
    if (m->step >= 0) add(p, "step", "%lld", (long long)m->step);
    if (m->version[0]) add(p, "dinox_version", "%s", m->version);
    if (m->has_model) {
        const dx_vit_config *c = &m->model;
        add(p, "arch", "%s", c->arch);
        add(p, "model.dim", "%d", c->dim);
        add(p, "model.depth", "%d", c->depth);
        add(p, "model.heads", "%d", c->heads);
        add(p, "model.registers", "%d", c->registers);
        add(p, "model.patch", "%d", c->patch);
        add(p, "model.in_chans", "%d", c->in_chans);
        add(p, "model.ffn", "%s", c->ffn == DX_FFN_SWIGLU ? "swiglu" : "mlp");
        add(p, "model.ffn_hidden", "%d", c->ffn_hidden);
        char f[32];
        add(p, "model.ln_eps", "%s", dx_backbone_meta_fstr(f, sizeof f, c->ln_eps));
        add(p, "model.qkv_bias", "%d", c->qkv_bias);
        add(p, "model.mask_k_bias", "%d", c->mask_k_bias);
        add(p, "model.proj_bias", "%d", c->proj_bias);
        add(p, "model.ffn_bias", "%d", c->ffn_bias);
        add(p, "model.rope_base", "%s", dx_backbone_meta_fstr(f, sizeof f, c->rope_base));
        char tn[64], tk[320];
        if (dx_backbone_meta_timm(c, tn, sizeof tn, tk, sizeof tk)) {
            add(p, "timm.model", "%s", tn);
            add(p, "timm.kwargs", "%s", tk);
        }
    }
    if (m->has_prep) {
        const dx_backbone_prep *q = &m->prep;
        add(p, "preprocessing.input", "%s",
            q->stack25d ? "2.5d: channels are slices z-1, z, z+1 at the series' native spacing" : "2d: one slice in all 3 channels");
        add(p, "preprocessing.stack25d", "%d", q->stack25d);
        char w[160] = "";
        size_t o = 0;
        for (int i = 0; i < q->n_windows && o < sizeof w; i++) {
            char a[32], b[32];
            o += (size_t)snprintf(w + o, sizeof w - o, "%s%s,%s", i ? ";" : "",
                                  dx_backbone_meta_fstr(a, sizeof a, q->width[i]),
                                  dx_backbone_meta_fstr(b, sizeof b, q->level[i]));
        }
        add(p, "preprocessing.windows", "%s", w);
        char f[32];
        add(p, "preprocessing.norm_mean", "%s", dx_backbone_meta_fstr(f, sizeof f, q->norm_mean));
        add(p, "preprocessing.norm_std", "%s", dx_backbone_meta_fstr(f, sizeof f, q->norm_std));
        add(p, "preprocessing.formula", "%s",
            "x = (clip(HU, L - W/2, L + W/2) - (L - W/2)) / W; x = (x - norm_mean) / norm_std; eval uses the first window");
        if (q->crop_size > 0) add(p, "preprocessing.crop_size", "%d", q->crop_size);
    }
}

/* ---- reading ------------------------------------------------------------- */

static const char *str(const cJSON *o, const char *k) {
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    if (!s) return 0;
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || e == s || *e || v < lo || v > hi) return -1;
    *out = (int)v;
    return 1;
}

static int parse_float(const char *s, float *out) {
    if (!s) return 0;
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (errno || e == s || *e || !isfinite(v)) return -1;
    *out = (float)v;
    return 1;
}

dx_status dx_backbone_meta_read(const char *path, dx_backbone_meta *m, dx_err *err) {
    memset(m, 0, sizeof *m);
    m->step = -1;
    dx_safetensors st;
    dx_status s = dx_st_open(&st, path, err);
    if (s) return s;
    cJSON *j = st.metadata_json ? cJSON_Parse(st.metadata_json) : NULL;
    dx_st_close(&st);
    if (!j) return DX_OK;
    const char *v;
    if ((v = str(j, "format"))) snprintf(m->format, sizeof m->format, "%s", v);
    if (!strcmp(m->format, DX_META_FORMAT_TIMM)) {
        cJSON_Delete(j);
        return dx_fail(err, DX_EINVAL, "%s holds timm's tensor names (dinox export --format timm), for timm only; "
                       "dinox reads the --format safetensors export", path);
    }
    if ((v = str(j, "dinox_format")) && !strcmp(v, DX_META_FORMAT_HF)) {
        cJSON_Delete(j);
        return dx_fail(err, DX_EINVAL, "%s holds Hugging Face transformers' tensor names (dinox export --format hf), "
                       "for DINOv3ViTModel.from_pretrained only; dinox reads the --format safetensors export", path);
    }
    if ((v = str(j, "source"))) snprintf(m->source, sizeof m->source, "%s", v);
    if ((v = str(j, "dinox_version"))) snprintf(m->version, sizeof m->version, "%s", v);
    if ((v = str(j, "step"))) m->step = strtoll(v, NULL, 10);

    static const struct { const char *key; size_t off; int lo, hi; } ints[] = {
        {"model.dim", offsetof(dx_vit_config, dim), 1, 1 << 16},
        {"model.depth", offsetof(dx_vit_config, depth), 1, 1024},
        {"model.heads", offsetof(dx_vit_config, heads), 1, 1024},
        {"model.registers", offsetof(dx_vit_config, registers), 0, 1024},
        {"model.patch", offsetof(dx_vit_config, patch), 1, 1024},
        {"model.in_chans", offsetof(dx_vit_config, in_chans), 1, 1024},
        {"model.ffn_hidden", offsetof(dx_vit_config, ffn_hidden), 1, 1 << 20},
        {"model.qkv_bias", offsetof(dx_vit_config, qkv_bias), 0, 1},
        {"model.mask_k_bias", offsetof(dx_vit_config, mask_k_bias), 0, 1},
        {"model.proj_bias", offsetof(dx_vit_config, proj_bias), 0, 1},
        {"model.ffn_bias", offsetof(dx_vit_config, ffn_bias), 0, 1},
    };
    int found = 0, want = 0;
    const char *bad = NULL;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++, want++) {
        int r = parse_int(str(j, ints[i].key), ints[i].lo, ints[i].hi, (int *)((char *)&m->model + ints[i].off));
        if (r < 0) bad = ints[i].key;
        found += r > 0;
    }
    int r;
    want += 3;
    if ((r = parse_float(str(j, "model.ln_eps"), &m->model.ln_eps)) < 0) bad = "model.ln_eps";
    found += r > 0;
    if ((r = parse_float(str(j, "model.rope_base"), &m->model.rope_base)) < 0) bad = "model.rope_base";
    found += r > 0;
    if ((v = str(j, "model.ffn"))) {
        if (!strcmp(v, "mlp")) m->model.ffn = DX_FFN_MLP;
        else if (!strcmp(v, "swiglu")) m->model.ffn = DX_FFN_SWIGLU;
        else bad = "model.ffn";
        found++;
    }
    if ((v = str(j, "arch"))) snprintf(m->model.arch, sizeof m->model.arch, "%s", v);
    if (!bad && found > 0 && found < want) bad = "model.* (some keys missing)";
    if (bad) {
        cJSON_Delete(j);
        return dx_fail(err, DX_EFORMAT, "%s: metadata %s is malformed", path, bad);
    }
    m->has_model = found == want;
    if (m->has_model) {
        m->model.layerscale_init = 1e-5f; /* unused after init; a valid value for dx_vit_config_check */
        if (!m->model.arch[0]) snprintf(m->model.arch, sizeof m->model.arch, "custom");
    }

    dx_backbone_prep *q = &m->prep;
    int pr = parse_int(str(j, "preprocessing.stack25d"), 0, 1, &q->stack25d);
    int pm = parse_float(str(j, "preprocessing.norm_mean"), &q->norm_mean);
    int ps = parse_float(str(j, "preprocessing.norm_std"), &q->norm_std);
    if (pr < 0 || pm < 0 || ps < 0 || (ps > 0 && !(q->norm_std > 0))) bad = "preprocessing.*";
    if ((v = str(j, "preprocessing.windows"))) {
        const char *c = v;
        while (*c && q->n_windows < DX_META_MAX_WINDOWS) {
            char *e;
            double w = strtod(c, &e);
            if (e == c || *e != ',') { bad = "preprocessing.windows"; break; }
            c = e + 1;
            double l = strtod(c, &e);
            if (e == c || (*e && *e != ';') || !(w > 0)) { bad = "preprocessing.windows"; break; }
            q->width[q->n_windows] = (float)w;
            q->level[q->n_windows++] = (float)l;
            c = *e ? e + 1 : e;
        }
    }
    if ((v = str(j, "preprocessing.crop_size")) && parse_int(v, 1, 1 << 16, &q->crop_size) < 0)
        bad = "preprocessing.crop_size";
    cJSON_Delete(j);
    if (bad) return dx_fail(err, DX_EFORMAT, "%s: metadata %s is malformed", path, bad);
    m->has_prep = pr > 0 && pm > 0 && ps > 0;
    return DX_OK;
}

dx_status dx_backbone_meta_check(const dx_backbone_meta *m, const dx_vit_config *c, const char *what, dx_err *err) {
    if (!m->has_model) return DX_OK;
    const dx_vit_config *f = &m->model;
#define CHECK_INT(field, label)                                                                                    \
    if (f->field != c->field)                                                                                      \
        return dx_fail(err, DX_EINVAL, "%s was trained with %s %d but the model is configured with %s %d", what, \
                       label, f->field, label, c->field);
    CHECK_INT(dim, "dim")
    CHECK_INT(depth, "depth")
    CHECK_INT(heads, "heads")
    CHECK_INT(registers, "registers")
    CHECK_INT(patch, "patch")
    CHECK_INT(in_chans, "in_chans")
    CHECK_INT(ffn_hidden, "ffn_hidden")
    CHECK_INT(qkv_bias, "qkv_bias")
    CHECK_INT(mask_k_bias, "mask_k_bias")
    CHECK_INT(proj_bias, "proj_bias")
    CHECK_INT(ffn_bias, "ffn_bias")
#undef CHECK_INT
    if (f->ffn != c->ffn)
        return dx_fail(err, DX_EINVAL, "%s was trained with a %s FFN but the model is configured with %s", what,
                       f->ffn == DX_FFN_SWIGLU ? "SwiGLU" : "GELU MLP", c->ffn == DX_FFN_SWIGLU ? "SwiGLU" : "GELU MLP");
    /* written by dx_backbone_meta_fstr, so they read back exactly */
    if (f->ln_eps != c->ln_eps || f->rope_base != c->rope_base)
        return dx_fail(err, DX_EINVAL, "%s was trained with ln_eps %g, rope_base %g but the model is configured with "
                       "ln_eps %g, rope_base %g", what, (double)f->ln_eps, (double)f->rope_base, (double)c->ln_eps,
                       (double)c->rope_base);
    return DX_OK;
}
