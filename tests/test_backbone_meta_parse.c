/* test_backbone_meta_parse.c - nn/backbone_meta.c on hand-made metadata: the
 * round trip of what export writes, files without metadata, every malformed
 * or incomplete model.* / preprocessing.* value refused with DX_EFORMAT
 * (never a model built from half a shape), the timm-names format refused,
 * and dx_backbone_meta_check naming each field that differs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dx_test.h"
#include "io/dx_safetensors.h"
#include "nn/backbone_meta.h"

static char path[64];

/* a one-tensor safetensors file with the given metadata pairs */
static void write_file(const char *const *kv, int n) {
    static const float x[2] = {1, 2};
    static const int64_t shape[1] = {2};
    dx_st_entry e = {"cls_token", DX_ST_F32, 1, shape, x};
    dx_err err = {0};
    if (dx_st_write(path, &e, 1, kv, n, &err)) fprintf(stderr, "write: %s\n", err.msg);
}

static dx_status read_with(const char *const *kv, int n, dx_backbone_meta *m) {
    write_file(kv, n);
    dx_err err = {0};
    return dx_backbone_meta_read(path, m, &err);
}

int main(void) {
    snprintf(path, sizeof path, "/tmp/dx_meta_%d.safetensors", (int)getpid());
    dx_vit_config c;
    dx_err err = {0};
    CHECK(dx_vit_config_named(&c, "vit_small", &err) == DX_OK, "vit_small");

    /* round trip of what export writes */
    dx_backbone_meta m = {.step = 1234, .has_model = 1, .model = c, .has_prep = 1};
    snprintf(m.format, sizeof m.format, "dinox-backbone");
    snprintf(m.source, sizeof m.source, "ema_teacher");
    m.prep = (dx_backbone_prep){.stack25d = 1, .n_windows = 2, .width = {1500, 400}, .level = {-600, 40},
                                .norm_mean = 0.5f, .norm_std = 0.25f, .crop_size = 224};
    dx_meta_pairs p;
    dx_backbone_meta_pairs(&m, &p);
    dx_backbone_meta back;
    CHECK(read_with(p.kv, p.n, &back) == DX_OK, "round trip read");
    CHECK(back.has_model && back.has_prep && back.step == 1234 && !strcmp(back.source, "ema_teacher"), "flags, step");
    CHECK(dx_backbone_meta_check(&back, &c, "f", &err) == DX_OK, "round trip: the model agrees with itself");
    CHECK(back.prep.n_windows == 2 && back.prep.width[1] == 400 && back.prep.level[0] == -600 &&
          back.prep.norm_std == 0.25f && back.prep.crop_size == 224, "preprocessing round trip");
    int has_timm = 0;
    for (int i = 0; i < p.n; i++)
        if (!strcmp(p.kv[2 * i], "timm.model")) has_timm = !strcmp(p.kv[2 * i + 1], "vit_small_patch16_dinov3_qkvb");
    CHECK(has_timm, "vit_small -> timm vit_small_patch16_dinov3_qkvb");
    for (int i = 0; i < p.n; i++)
        if (!strcmp(p.kv[2 * i], "model.ln_eps")) CHECK(!strcmp(p.kv[2 * i + 1], "1e-05"), "ln_eps written as 1e-05 (%s)", p.kv[2 * i + 1]);

    /* no metadata at all: loadable, nothing claimed */
    CHECK(read_with(NULL, 0, &back) == DX_OK && !back.has_model && !back.has_prep, "no metadata: has nothing");
    CHECK(dx_backbone_meta_check(&back, &c, "f", &err) == DX_OK, "no metadata: no check");

    /* each model.* value broken in turn (and one key dropped) -> DX_EFORMAT */
    static const char *const bad_values[] = {"abc", "-3", "", "1e400", "12x"};
    int refused = 0, tried = 0;
    for (int i = 0; i < p.n; i++) {
        if (strncmp(p.kv[2 * i], "model.", 6)) continue;
        for (size_t b = 0; b < sizeof bad_values / sizeof bad_values[0]; b++) {
            const char *kv[2 * DX_META_MAX_PAIRS];
            memcpy(kv, p.kv, sizeof(char *) * 2 * p.n);
            kv[2 * i + 1] = bad_values[b];
            /* "-3" is valid for nothing but a float; ln_eps/rope_base accept any finite number */
            int numeric_float = !strcmp(p.kv[2 * i], "model.ln_eps") || !strcmp(p.kv[2 * i], "model.rope_base");
            if (numeric_float && !strcmp(bad_values[b], "-3")) continue;
            tried++;
            refused += read_with(kv, p.n, &back) == DX_EFORMAT;
        }
        const char *kv[2 * DX_META_MAX_PAIRS];
        int n = 0;
        for (int j = 0; j < p.n; j++)
            if (j != i) kv[2 * n] = p.kv[2 * j], kv[2 * n + 1] = p.kv[2 * j + 1], n++;
        tried++;
        refused += read_with(kv, n, &back) == DX_EFORMAT;
    }
    CHECK(tried > 60 && refused == tried, "malformed or missing model.* values refused: %d of %d", refused, tried);

    static const char *const bad_windows[] = {"1500", "1500,-600;", "0,-600", "a,b", "1500;-600", "1500,-600x"};
    refused = 0;
    for (size_t b = 0; b < sizeof bad_windows / sizeof bad_windows[0]; b++) {
        const char *kv[2 * DX_META_MAX_PAIRS];
        memcpy(kv, p.kv, sizeof(char *) * 2 * p.n);
        for (int i = 0; i < p.n; i++)
            if (!strcmp(kv[2 * i], "preprocessing.windows")) kv[2 * i + 1] = bad_windows[b];
        const int r = read_with(kv, p.n, &back) == DX_EFORMAT;
        CHECK(r == (b != 1), "windows '%s' %s", bad_windows[b], r ? "refused" : "accepted");
        refused += r;
    }
    CHECK(refused == (int)(sizeof bad_windows / sizeof bad_windows[0]) - 1,
          "malformed preprocessing.windows refused (%d of 5; a trailing ';' is accepted)", refused);
    {
        const char *kv[2 * DX_META_MAX_PAIRS];
        memcpy(kv, p.kv, sizeof(char *) * 2 * p.n);
        for (int i = 0; i < p.n; i++)
            if (!strcmp(kv[2 * i], "preprocessing.norm_std")) kv[2 * i + 1] = "0";
        CHECK(read_with(kv, p.n, &back) == DX_EFORMAT, "norm_std 0 refused");
        for (int i = 0; i < p.n; i++)
            if (!strcmp(kv[2 * i], "format")) kv[2 * i + 1] = DX_META_FORMAT_TIMM;
        CHECK(read_with(kv, p.n, &back) == DX_EINVAL, "a timm-names file is refused by dinox's readers");
    }

    /* the check names the field */
    static const struct { const char *what; } cases[] = {{"dim"}, {"heads"}, {"ln_eps"}, {"mask_k_bias"}, {"SwiGLU"}};
    dx_vit_config d;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        d = c;
        if (k == 0) d.dim = 768;
        if (k == 1) d.heads = 12;
        if (k == 2) d.ln_eps = 1e-6f;
        if (k == 3) d.mask_k_bias = 0;
        if (k == 4) d.ffn = DX_FFN_SWIGLU;
        dx_err e = {0};
        CHECK(dx_backbone_meta_check(&m, &d, "W", &e) == DX_EINVAL && strstr(e.msg, cases[k].what),
              "mismatch in %s named: %s", cases[k].what, e.msg);
    }
    unlink(path);
    return dx_test_summary();
}
