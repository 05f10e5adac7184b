/* export_hf.c - see export_hf.h. */
#include "train/export_hf.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/dx_file.h"
#include "io/dx_safetensors.h"

/* Only what this writer puts there may already be in the folder: a user's
 * other files are never replaced or mixed with a model. */
static dx_status check_dir(const char *dir, dx_err *err) {
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        if (errno != ENOENT) return dx_fail(err, DX_EIO, "--out %s: %s", dir, strerror(errno));
        return dx_mkdirs(dir, err);
    }
    if (!S_ISDIR(sb.st_mode))
        return dx_fail(err, DX_EINVAL, "--format hf writes a folder, and --out %s is a file", dir);
    DIR *d = opendir(dir);
    if (!d) return dx_fail(err, DX_EIO, "--out %s: %s", dir, strerror(errno));
    static const char *const ours[] = {".", "..", "config.json", "model.safetensors", "README.md"};
    dx_status s = DX_OK;
    for (struct dirent *e; (e = readdir(d)) && !s;) {
        int known = 0;
        for (size_t i = 0; i < sizeof ours / sizeof *ours; i++) known |= !strcmp(e->d_name, ours[i]);
        if (!known)
            s = dx_fail(err, DX_EINVAL, "--out %s holds %s, which no hf export writes: give an empty or new folder",
                        dir, e->d_name);
    }
    closedir(d);
    return s;
}

/* One output tensor: a name, a shape and a pointer into w_host. */
typedef struct hf_list {
    dx_st_entry *e;
    char (*names)[DX_NAME_MAX + 32];
    int64_t (*shapes)[DX_MAX_DIMS];
    int n, cap;
} hf_list;

static void put(hf_list *l, const float *data, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void put(hf_list *l, const float *data, int ndim, const int64_t *shape, const char *fmt, ...) {
    if (l->n >= l->cap) { /* counted so that it cannot happen; dx_export_hf_write checks */
        l->n = l->cap + 1;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->names[l->n], sizeof l->names[0], fmt, ap);
    va_end(ap);
    memcpy(l->shapes[l->n], shape, (size_t)ndim * sizeof *shape);
    l->e[l->n] = (dx_st_entry){.name = l->names[l->n], .dtype = DX_ST_F32, .ndim = ndim, .shape = l->shapes[l->n],
                               .data = data};
    l->n++;
}

/* A table tensor under a new name, its own shape. */
static void put_t(hf_list *l, const dx_vit *m, const float *w, int id, const char *name) {
    const dx_tensor_spec *t = &m->tab.t[id];
    put(l, w + t->offset, t->ndim, t->shape, "%s", name);
}

/* The shortest exact decimal, always with a point or exponent: transformers'
 * strict configs refuse 100 where a float is declared (100.0 passes). */
static cJSON *raw_float(float v) {
    char b[40];
    dx_backbone_meta_fstr(b, sizeof b - 2, v);
    if (!strpbrk(b, ".e")) strcat(b, ".0");
    return cJSON_CreateRaw(b);
}

static dx_status write_config(const dx_vit *m, const dx_backbone_meta *bm, const char *dir, dx_err *err) {
    const dx_vit_config *c = &m->cfg;
    const int swiglu = c->ffn == DX_FFN_SWIGLU;
    cJSON *j = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(j, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("DINOv3ViTModel"));
    cJSON_AddStringToObject(j, "model_type", "dinov3_vit");
    cJSON_AddNumberToObject(j, "patch_size", c->patch);
    cJSON_AddNumberToObject(j, "hidden_size", c->dim);
    cJSON_AddNumberToObject(j, "intermediate_size", c->ffn_hidden);
    cJSON_AddNumberToObject(j, "num_hidden_layers", c->depth);
    cJSON_AddNumberToObject(j, "num_attention_heads", c->heads);
    cJSON_AddStringToObject(j, "hidden_act", swiglu ? "silu" : "gelu");
    cJSON_AddBoolToObject(j, "use_gated_mlp", swiglu);
    cJSON_AddItemToObject(j, "layer_norm_eps", raw_float(c->ln_eps));
    cJSON_AddItemToObject(j, "rope_theta", raw_float(c->rope_base));
    cJSON_AddNumberToObject(j, "image_size", bm->has_prep && bm->prep.crop_size > 0 ? bm->prep.crop_size : 224);
    cJSON_AddNumberToObject(j, "num_channels", c->in_chans);
    cJSON_AddBoolToObject(j, "query_bias", c->qkv_bias);
    cJSON_AddBoolToObject(j, "key_bias", c->qkv_bias && !c->mask_k_bias);
    cJSON_AddBoolToObject(j, "value_bias", c->qkv_bias);
    cJSON_AddBoolToObject(j, "proj_bias", c->proj_bias);
    cJSON_AddBoolToObject(j, "mlp_bias", c->ffn_bias);
    cJSON_AddItemToObject(j, "layerscale_value", raw_float(c->layerscale_init));
    cJSON_AddNumberToObject(j, "num_register_tokens", c->registers);
    cJSON_AddNumberToObject(j, "drop_path_rate", 0);
    /* the student's RoPE coordinate augmentation (model.train() only); 0 = off = null */
    const float aug[3] = {c->rope_shift, c->rope_jitter, c->rope_rescale};
    static const char *const aug_key[3] = {"pos_embed_shift", "pos_embed_jitter", "pos_embed_rescale"};
    for (int i = 0; i < 3; i++)
        cJSON_AddItemToObject(j, aug_key[i], aug[i] > 0 ? raw_float(aug[i]) : cJSON_CreateNull());
    cJSON_AddStringToObject(j, "dtype", "float32");
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) return dx_fail(err, DX_ENOMEM, "config.json");
    char path[1200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    const void *parts[2] = {text, "\n"};
    const size_t lens[2] = {strlen(text), 1};
    dx_status s = dx_atomic_write(path, parts, lens, 2, err);
    free(text);
    return s;
}

static dx_status write_readme(const dx_backbone_meta *bm, const dx_meta_pairs *mp, const char *dir, dx_err *err) {
    size_t cap = 8192, o = 0;
    char *b = malloc(cap);
    if (!b) return dx_fail(err, DX_ENOMEM, "README.md");
#define OUT(...) (o += (o < cap ? (size_t)snprintf(b + o, cap - o, __VA_ARGS__) : 0))
    OUT("# dinox backbone (%s, step %lld)\n\n", bm->source[0] ? bm->source : "backbone", (long long)bm->step);
    OUT("A DINOv3 ViT pre-trained on CT by %s, in Hugging Face transformers' format:\n\n", bm->version);
    OUT("```python\nfrom transformers import DINOv3ViTModel\n"
        "model = DINOv3ViTModel.from_pretrained(\"path/to/this/folder\").eval()\n"
        "out = model(pixel_values=x)  # x: (N, %d, H, W), H and W multiples of %d\n"
        "cls, patches = out.pooler_output, out.last_hidden_state[:, 1 + %d:]\n```\n\n",
        bm->model.in_chans, bm->model.patch, bm->model.registers);
    OUT("The inputs are not RGB photographs: use the preprocessing below, not an ImageNet image processor.\n\n");
    OUT("| key | value |\n|---|---|\n");
    for (int i = 0; i < mp->n; i++)
        if (!strncmp(mp->kv[2 * i], "preprocessing.", 14) || !strncmp(mp->kv[2 * i], "model.", 6))
            OUT("| %s | %s |\n", mp->kv[2 * i], mp->kv[2 * i + 1]);
    OUT("\nThe same keys are in model.safetensors' metadata.\n");
#undef OUT
    if (o >= cap) {
        free(b);
        return dx_fail(err, DX_EINVAL, "README.md: more than %zu bytes", cap);
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/README.md", dir);
    const void *parts[1] = {b};
    const size_t lens[1] = {o};
    dx_status s = dx_atomic_write(path, parts, lens, 1, err);
    free(b);
    return s;
}

dx_status dx_export_hf_write(const dx_vit *m, const float *w, const dx_backbone_meta *bm, const char *dir,
                             dx_err *err) {
    dx_status s = check_dir(dir, err);
    if (s) return s;
    const dx_vit_config *c = &m->cfg;
    const int64_t D = c->dim;
    /* per block at most 4 more tensors than the table has (q/k/v weights and biases from
     * qkv's two), plus register_tokens when there are none */
    hf_list l = {.cap = m->tab.n + 4 * c->depth + 2};
    l.e = calloc((size_t)l.cap, sizeof *l.e);
    l.names = calloc((size_t)l.cap, sizeof *l.names);
    l.shapes = calloc((size_t)l.cap, sizeof *l.shapes);
    if (!l.e || !l.names || !l.shapes) {
        s = dx_fail(err, DX_ENOMEM, "hf export");
        goto done;
    }
    const int64_t tok[3] = {1, 1, D}, reg0[3] = {1, 0, D}, sq[2] = {D, D}, vec[1] = {D};
    put_t(&l, m, w, m->cls, "embeddings.cls_token");
    put(&l, w + m->tab.t[m->mask_token].offset, 3, tok, "embeddings.mask_token"); /* (1,D) -> (1,1,D) */
    if (m->reg >= 0) put_t(&l, m, w, m->reg, "embeddings.register_tokens");
    else put(&l, w, 3, reg0, "embeddings.register_tokens"); /* (1,0,D): transformers always has the parameter */
    put_t(&l, m, w, m->pe_w, "embeddings.patch_embeddings.weight");
    put_t(&l, m, w, m->pe_b, "embeddings.patch_embeddings.bias");
    static const char qkv[3] = {'q', 'k', 'v'};
    char ln[DX_NAME_MAX + 32];
#define LN(suffix) (snprintf(ln, sizeof ln, "layer.%d." suffix, i), ln)
    for (int i = 0; i < c->depth; i++) {
        const dx_vit_block_ids *b = &m->blk[i];
        put_t(&l, m, w, b->norm1_w, LN("norm1.weight"));
        put_t(&l, m, w, b->norm1_b, LN("norm1.bias"));
        const float *wq = w + m->tab.t[b->qkv_w].offset; /* [3D, D]: rows q | k | v */
        for (int p = 0; p < 3; p++) {
            put(&l, wq + p * D * D, 2, sq, "layer.%d.attention.%c_proj.weight", i, qkv[p]);
            if (b->qkv_b >= 0 && !(p == 1 && c->mask_k_bias))
                put(&l, w + m->tab.t[b->qkv_b].offset + p * D, 1, vec, "layer.%d.attention.%c_proj.bias", i, qkv[p]);
        }
        put_t(&l, m, w, b->proj_w, LN("attention.o_proj.weight"));
        if (b->proj_b >= 0) put_t(&l, m, w, b->proj_b, LN("attention.o_proj.bias"));
        put_t(&l, m, w, b->ls1, LN("layer_scale1.lambda1"));
        put_t(&l, m, w, b->norm2_w, LN("norm2.weight"));
        put_t(&l, m, w, b->norm2_b, LN("norm2.bias"));
        const int gated = c->ffn == DX_FFN_SWIGLU; /* w1 is the gate, w2 the up projection */
        put_t(&l, m, w, b->fc1_w, gated ? LN("mlp.gate_proj.weight") : LN("mlp.up_proj.weight"));
        if (b->fc1_b >= 0) put_t(&l, m, w, b->fc1_b, gated ? LN("mlp.gate_proj.bias") : LN("mlp.up_proj.bias"));
        if (b->w2_w >= 0) put_t(&l, m, w, b->w2_w, LN("mlp.up_proj.weight"));
        if (b->w2_b >= 0) put_t(&l, m, w, b->w2_b, LN("mlp.up_proj.bias"));
        put_t(&l, m, w, b->fc2_w, LN("mlp.down_proj.weight"));
        if (b->fc2_b >= 0) put_t(&l, m, w, b->fc2_b, LN("mlp.down_proj.bias"));
        put_t(&l, m, w, b->ls2, LN("layer_scale2.lambda1"));
    }
#undef LN
    put_t(&l, m, w, m->norm_w, "norm.weight");
    put_t(&l, m, w, m->norm_b, "norm.bias");
    if (l.n > l.cap) {
        s = dx_fail(err, DX_EINVAL, "hf export: more tensors than counted (%d)", l.cap);
        goto done;
    }

    /* metadata: format "pt" (what transformers 4.x requires), dinox's own
     * format under dinox_format so that dinox's readers can refuse these
     * names, the shape and preprocessing; timm.* would name the wrong tensors */
    dx_meta_pairs mp;
    dx_backbone_meta_pairs(bm, &mp);
    const char *kv[2 * (DX_META_MAX_PAIRS + 1)];
    int n = 0;
    kv[2 * n] = "format", kv[2 * n + 1] = "pt", n++;
    kv[2 * n] = "dinox_format", kv[2 * n + 1] = DX_META_FORMAT_HF, n++;
    for (int i = 0; i < mp.n; i++) {
        const char *k = mp.kv[2 * i];
        if (!strcmp(k, "format") || !strncmp(k, "timm.", 5)) continue;
        kv[2 * n] = k, kv[2 * n + 1] = mp.kv[2 * i + 1], n++;
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if ((s = dx_st_write(path, l.e, l.n, kv, n, err))) goto done;
    if ((s = write_config(m, bm, dir, err))) goto done;
    s = write_readme(bm, &mp, dir, err);
done:
    free(l.e), free(l.names), free(l.shapes);
    return s;
}
