/* test_vit_parity.c - the C backbone against the PyTorch reference (tests/ref).
 *
 * For each fixture written by tests/ref/gen_vit_fixtures.py: load the weights
 * by their DINOv3 names, run every crop group forward (masks included), compare
 * the final-norm tokens; backpropagate L = sum_g <tokens_g, r_g>, compare every
 * parameter gradient; then 3 AdamW steps on that loss, compare the parameters
 * after each. Errors are normwise per tensor: max|c - ref| / max|ref| <= 1e-4.
 * The *_mults fixtures carry DINOv3's per-tensor lr/wd multipliers (layer decay
 * 0.9, patch-embed 0.2, no decay on biases/norms/gammas): the C param groups
 * must equal them and AdamW must follow them. The *_train fixture runs train
 * mode with injected stochastic-depth subsets and RoPE augmentation draws.
 * DINOX_FIXTURE_DIR overrides the fixture folder (CI points it at freshly
 * regenerated fixtures). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "backend/dx_backend.h"
#include "dx_test.h"
#include "io/dx_safetensors.h"
#include "nn/weights.h"
#include "nn/vit.h"
#include "train/optim.h"

enum { MODE_PLAIN = 0, MODE_MULTS = 1, MODE_TRAIN = 2 };

#define TOL 1e-4
#define MAX_GROUPS 4

static double normwise_err(const float *a, const float *ref, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - ref[i]);
        if (isnan(a[i])) return INFINITY;
        if (e > d) d = e;
        if (fabs(ref[i]) > r) r = fabs(ref[i]);
    }
    return r > 0 ? d / r : d;
}

static const dx_st_tensor *need(const dx_safetensors *st, const char *name) {
    const dx_st_tensor *t = dx_st_find(st, name);
    CHECK(t != NULL, "fixture lacks %s", name);
    return t;
}

static float *to_host_f32(const dx_st_tensor *t) {
    float *x = malloc(t->numel * sizeof(float));
    dx_err err;
    if (dx_st_to_f32(t, x, t->numel, &err)) {
        CHECK(0, "%s: %s", t->name, err.msg);
        free(x);
        return NULL;
    }
    return x;
}

/* Compares a table-laid-out backend buffer against "<prefix><name>" tensors. */
static double compare_table(const dx_vit *m, dx_backend *be, const float *buf, const dx_safetensors *st,
                            const char *prefix, const char *what) {
    float *host = malloc(m->tab.total * sizeof(float));
    be->ops->download(be, host, buf, m->tab.total * sizeof(float));
    double worst = 0;
    char name[256];
    for (int i = 0; i < m->tab.n; i++) {
        const dx_tensor_spec *s = &m->tab.t[i];
        if (s->flags & DX_TF_BUFFER) continue;
        snprintf(name, sizeof name, "%s%s", prefix, s->name);
        const dx_st_tensor *t = need(st, name);
        if (!t) continue;
        float *ref = to_host_f32(t);
        if (!ref) continue;
        double e = normwise_err(host + s->offset, ref, s->numel);
        CHECK(e <= TOL, "%s %s: normwise error %.3g", what, name, e);
        if (e > worst) worst = e;
        free(ref);
    }
    free(host);
    return worst;
}

static void run_fixture(dx_backend *be, const char *path, int mode) {
    dx_err err;
    dx_safetensors st;
    if (dx_st_open(&st, path, &err)) {
        CHECK(0, "open %s: %s", path, err.msg);
        return;
    }
    cJSON *meta = cJSON_Parse(st.metadata_json ? st.metadata_json : "{}");
    cJSON *cfgj = cJSON_Parse(cJSON_GetStringValue(cJSON_GetObjectItem(meta, "config")));
    CHECK(cfgj != NULL, "%s: no config in metadata", path);
    if (!cfgj) goto out;
#define JI(k) ((int)cJSON_GetNumberValue(cJSON_GetObjectItem(cfgj, k)))
    dx_vit_config cfg;
    dx_vit_config_named(&cfg, "custom", NULL);
    cfg.dim = JI("dim");
    cfg.depth = JI("depth");
    cfg.heads = JI("heads");
    cfg.registers = JI("registers");
    cfg.patch = JI("patch");
    cfg.ln_eps = (float)cJSON_GetNumberValue(cJSON_GetObjectItem(cfgj, "ln_eps"));
    cfg.mask_k_bias = cJSON_IsTrue(cJSON_GetObjectItem(cfgj, "mask_k_bias")) || JI("mask_k_bias") == 1;
    const char *ffn = cJSON_GetStringValue(cJSON_GetObjectItem(cfgj, "ffn"));
    cfg.ffn = ffn && !strcmp(ffn, "swiglu") ? DX_FFN_SWIGLU : DX_FFN_MLP;
    /* FFN width from the file: the hidden rows of the first input projection */
    const dx_st_tensor *fc1 = dx_st_find(&st, cfg.ffn == DX_FFN_SWIGLU ? "blocks.0.mlp.w1.weight" : "blocks.0.mlp.fc1.weight");
    CHECK(fc1 != NULL, "%s: no FFN weight", path);
    if (!fc1) goto out;
    cfg.ffn_hidden = (int)fc1->shape[0];
#undef JI
    printf("%s: dim %d depth %d heads %d registers %d patch %d ffn %s(%d) eps %g mask_k_bias %d\n", path,
           cfg.dim, cfg.depth, cfg.heads, cfg.registers, cfg.patch, cfg.ffn ? "swiglu" : "mlp",
           cfg.ffn_hidden, cfg.ln_eps, cfg.mask_k_bias);

    dx_vit m;
    if (dx_vit_init(&m, &cfg, &err)) {
        CHECK(0, "vit init: %s", err.msg);
        goto out;
    }
    if (mode == MODE_MULTS) {
        dx_table_set_param_groups(&m.tab, "", cfg.depth, 0.9f, 0.2f);
        cJSON *mj = cJSON_Parse(cJSON_GetStringValue(cJSON_GetObjectItem(meta, "adamw_mults")));
        int nchk = 0;
        for (int i = 0; i < m.tab.n; i++) {
            const dx_tensor_spec *t = &m.tab.t[i];
            if (t->flags & DX_TF_BUFFER) continue;
            cJSON *e = cJSON_GetObjectItem(mj, t->name);
            CHECK(e != NULL, "no reference multipliers for %s", t->name);
            if (!e) continue;
            double lr = cJSON_GetNumberValue(cJSON_GetObjectItem(e, "lr"));
            double wd = cJSON_GetNumberValue(cJSON_GetObjectItem(e, "wd"));
            CHECK(fabs(t->lr_mult - lr) < 1e-6 * lr + 1e-12 && fabs(t->wd_mult - wd) < 1e-12,
                  "%s: lr_mult %g wd_mult %g, reference %g %g", t->name, t->lr_mult, t->wd_mult, lr, wd);
            nchk++;
        }
        printf("  param-group multipliers equal the reference for %d tensors\n", nchk);
        cJSON_Delete(mj);
    } else {
        for (int i = 0; i < m.tab.n; i++) m.tab.t[i].lr_mult = m.tab.t[i].wd_mult = 1.0f; /* one torch group */
    }

    const size_t bytes = m.tab.total * sizeof(float);
    float *w = be->ops->alloc(be, bytes), *g = be->ops->alloc(be, bytes);
    float *am = be->ops->alloc(be, bytes), *av = be->ops->alloc(be, bytes);
    dx_status s = dx_weights_load(&m.tab, be, w, path, "", DX_LOAD_IGNORE_EXTRA, &err);
    CHECK(s == DX_OK, "load weights: %s", err.msg);

    /* crop groups */
    int ngroups = 0;
    dx_vit_acts acts[MAX_GROUPS];
    float *img[MAX_GROUPS] = {0}, *probe[MAX_GROUPS] = {0};
    const uint8_t *mask[MAX_GROUPS] = {0};
    int32_t *subsets[MAX_GROUPS][64];   /* injected stochastic-depth draws (train mode) */
    int subset_k[MAX_GROUPS][64];
    float rope_aug[MAX_GROUPS][4 * 32];
    dx_vit_run runs[MAX_GROUPS];
    memset(runs, 0, sizeof runs);
    char name[64];
    for (int gi = 0; gi < MAX_GROUPS; gi++) {
        snprintf(name, sizeof name, "input.x%d", gi);
        const dx_st_tensor *x = dx_st_find(&st, name);
        if (!x) break;
        int N = (int)x->shape[0], H = (int)x->shape[2], W = (int)x->shape[3];
        if (dx_vit_acts_init(&acts[gi], &m, be, N, H, W, 1, &err)) {
            CHECK(0, "acts: %s", err.msg);
            break;
        }
        float *h = to_host_f32(x);
        img[gi] = be->ops->alloc(be, x->numel * sizeof(float));
        be->ops->upload(be, img[gi], h, x->numel * sizeof(float));
        free(h);
        snprintf(name, sizeof name, "input.mask%d", gi);
        const dx_st_tensor *mk = dx_st_find(&st, name);
        if (mk) {
            CHECK(mk->dtype == DX_ST_U8 && mk->numel == (size_t)N * acts[gi].P, "mask%d dtype/shape", gi);
            uint8_t *dm = be->ops->alloc(be, mk->numel); /* the model takes the mask in backend memory */
            be->ops->upload(be, dm, mk->data, mk->numel);
            mask[gi] = dm;
        }
        snprintf(name, sizeof name, "input.r%d", gi);
        const dx_st_tensor *r = need(&st, name);
        probe[gi] = r ? to_host_f32(r) : NULL;
        if (mode == MODE_TRAIN) {
            snprintf(name, sizeof name, "input.drop%d", gi);
            const dx_st_tensor *d = need(&st, name);
            snprintf(name, sizeof name, "input.rope_aug%d", gi);
            const dx_st_tensor *ra = need(&st, name);
            if (!d || !ra || d->dtype != DX_ST_I32 || d->shape[0] != 2 * cfg.depth || ra->nbytes > sizeof rope_aug[gi]) {
                CHECK(0, "train fixture: bad drop/rope_aug inputs for group %d", gi);
                break;
            }
            for (int j = 0; j < 2 * cfg.depth; j++) {
                subsets[gi][j] = (int32_t *)d->data + (size_t)j * d->shape[1];
                subset_k[gi][j] = (int)d->shape[1];
            }
            memcpy(rope_aug[gi], ra->data, ra->nbytes);
            runs[gi] = (dx_vit_run){.train = 1, .subsets = (const int32_t *const *)subsets[gi],
                                    .subset_k = subset_k[gi], .rope_aug = rope_aug[gi]};
        }
        printf("  group %d: %d x %dx%d (T = %d)%s%s\n", gi, N, H, W, acts[gi].T, mk ? ", masked" : "",
               mode == MODE_TRAIN ? ", train mode (injected drop-path subsets and RoPE augmentation)" : "");
        ngroups++;
    }
    CHECK(ngroups > 0, "%s: no input groups", path);

    /* forward + backward, compared */
    double worst_out = 0;
    be->ops->zero(be, g, bytes);
    for (int gi = 0; gi < ngroups; gi++) {
        s = dx_vit_forward(&m, be, w, &acts[gi], img[gi], mask[gi], &runs[gi], &err);
        CHECK(s == DX_OK, "forward: %s", err.msg);
        snprintf(name, sizeof name, "output.tokens%d", gi);
        const dx_st_tensor *ref = need(&st, name);
        size_t n = (size_t)acts[gi].N * acts[gi].T * cfg.dim;
        if (ref && ref->numel == n) {
            float *out = malloc(n * sizeof(float)), *rf = to_host_f32(ref);
            be->ops->download(be, out, acts[gi].out, n * sizeof(float));
            double e = normwise_err(out, rf, n);
            CHECK(e <= TOL, "tokens%d normwise error %.3g", gi, e);
            if (e > worst_out) worst_out = e;
            free(out);
            free(rf);
        }
        be->ops->upload(be, acts[gi].dout, probe[gi], n * sizeof(float));
        s = dx_vit_backward(&m, be, w, g, &acts[gi], &err);
        CHECK(s == DX_OK, "backward: %s", err.msg);
    }
    double worst_grad = compare_table(&m, be, g, &st, "grad.", "gradient");
    printf("  forward tokens: max normwise error %.3g; gradients: %.3g\n", worst_out, worst_grad);

    /* three AdamW steps, as torch.optim.AdamW(lr=1e-3, wd=0.05) in the generator */
    if (mode == MODE_TRAIN) goto cleanup; /* the train fixture has no optimizer steps */
    dx_adamw hp = {.lr = 1e-3f, .last_layer_lr = 1e-3f, .wd = 0.05f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    be->ops->zero(be, am, bytes);
    be->ops->zero(be, av, bytes);
    dx_segment *seg = NULL;
    int nseg = 0;
    CHECK(dx_optim_segments(be, &m.tab, &seg, &nseg, &err) == DX_OK, "segments: %s", err.msg);
    for (int t = 1; t <= 3 && seg; t++) {
        be->ops->zero(be, g, bytes);
        for (int gi = 0; gi < ngroups; gi++) {
            dx_vit_forward(&m, be, w, &acts[gi], img[gi], mask[gi], &runs[gi], &err);
            size_t n = (size_t)acts[gi].N * acts[gi].T * cfg.dim;
            be->ops->upload(be, acts[gi].dout, probe[gi], n * sizeof(float));
            dx_vit_backward(&m, be, w, g, &acts[gi], &err);
        }
        dx_adamw_step(be, seg, nseg, w, g, am, av, &hp, t);
        char prefix[32];
        snprintf(prefix, sizeof prefix, "adamw%d.", t);
        double e = compare_table(&m, be, w, &st, prefix, "adamw");
        printf("  after AdamW step %d: parameters max normwise error %.3g\n", t, e);
    }
    if (seg) be->ops->free(be, seg);

cleanup:
    for (int gi = 0; gi < ngroups; gi++) {
        dx_vit_acts_free(&acts[gi], be);
        be->ops->free(be, img[gi]);
        if (mask[gi]) be->ops->free(be, (void *)mask[gi]);
        free(probe[gi]);
    }
    be->ops->free(be, w);
    be->ops->free(be, g);
    be->ops->free(be, am);
    be->ops->free(be, av);
    dx_vit_free(&m);
out:
    cJSON_Delete(cfgj);
    cJSON_Delete(meta);
    dx_st_close(&st);
}

int main(void) {
    dx_err err;
    dx_backend *be;
    if (dx_backend_create(&be, &(dx_backend_params){.nthreads = 0}, &err)) {
        fprintf(stderr, "backend: %s\n", err.msg);
        return 1;
    }
    char dir[1024], path[1200];
    const char *fd = getenv("DINOX_FIXTURE_DIR");
    if (fd) snprintf(dir, sizeof dir, "%s", fd);
    else dx_test_path(dir, sizeof dir, "tests/fixtures");
    const struct { const char *file; int mode; } fixtures[] = {
        {"vit_swiglu.safetensors", MODE_PLAIN},       {"vit_mlp2crop.safetensors", MODE_PLAIN},
        {"vit_swiglu_mults.safetensors", MODE_MULTS}, {"vit_mlp2crop_mults.safetensors", MODE_MULTS},
        {"vit_mlp2crop_train.safetensors", MODE_TRAIN}};
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, fixtures[i].file);
        run_fixture(be, path, fixtures[i].mode);
    }
    dx_backend_destroy(be);
    return dx_test_summary();
}
