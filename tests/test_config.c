/* test_config.c - the training config: defaults, YAML files (nested and flat
 * keys), overrides, error messages naming key/file/line with suggestions,
 * range/type/cross-key validation, dump -> reload identity, the shipped
 * configs, and docs/config.md matching the schema table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dx_test.h"
#include "train/config.h"
#include "train/config_import.h"

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(n + 1);
    if (fread(b, 1, n, f) != (size_t)n) n = 0;
    b[n] = 0;
    fclose(f);
    return b;
}

static char *dump_text(const dx_config *c) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    dx_err e;
    dx_config_dump(c, f, &e);
    fclose(f);
    return buf;
}

/* Expects loading `yaml` over defaults to fail with a message containing all of needles. */
static void expect_load_error(const char *yaml, const char *n1, const char *n2, const char *n3) {
    dx_config c;
    dx_err e;
    dx_err_clear(&e);
    dx_config_defaults(&c);
    dx_status s = dx_config_load_string(&c, yaml, "t.yaml", &e);
    CHECK(s != DX_OK, "loading should fail: %s", yaml);
    const char *n[3] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        if (n[i]) CHECK(strstr(e.msg, n[i]) != NULL, "message '%s' lacks '%s'", e.msg, n[i]);
}

static int same_config(const dx_config *a, const dx_config *b) {
    for (int i = 0; i < dx_config_n_keys(); i++) {
        char x[1024], y[1024];
        dx_config_get_text(a, dx_config_key(i), x, sizeof x, NULL);
        dx_config_get_text(b, dx_config_key(i), y, sizeof y, NULL);
        if (strcmp(x, y) != 0) {
            fprintf(stderr, "key %s differs: %s vs %s\n", dx_config_key(i), x, y);
            return 0;
        }
    }
    return 1;
}

int main(void) {
    dx_config c, d;
    dx_err e;
    dx_err_clear(&e);

    /* defaults: the DINOv3 default recipe (spec §8) and a valid config */
    CHECK(dx_config_resolve(&c, NULL, NULL, 0, &e) == DX_OK, "defaults invalid: %s", e.msg);
    CHECK(strcmp(c.model.arch, "vit_small") == 0, "arch %s", c.model.arch);
    CHECK_CLOSE(c.optim.lr, 1e-3, 0, 1e-7, "optim.lr");
    CHECK_CLOSE(c.optim.betas[1], 0.999, 0, 1e-7, "beta2");
    CHECK_CLOSE(c.teacher.momentum_start, 0.992, 0, 1e-7, "momentum_start");
    CHECK_CLOSE(c.crops.global_scale[0], 0.32, 0, 1e-7, "global scale lo");
    CHECK_CLOSE(c.crops.blur_p_global2, 0.9, 0, 1e-7, "effective blur p of global 2");
    CHECK(c.crops.blur_p_global1 == 0, "global 1 is never blurred");
    CHECK(c.data.n_windows == 2 && c.data.windows[0].width == 1500 && c.data.windows[0].level == -600 &&
              c.data.windows[1].width == 400 && c.data.windows[1].level_jitter == 60,
          "default windows");
    CHECK(c.train.batch_size == 64 && c.train.epoch_length == 1250 && dx_config_total_steps(&c) == 125000,
          "train defaults");
    CHECK_CLOSE(dx_config_peak_lr(&c), 1e-3 * 4 * 0.25, 0, 1e-6, "sqrt_wrt_1024 at B=64");
    dx_vit_config v;
    CHECK(dx_config_vit(&c, &v, &e) == DX_OK && v.dim == 384 && v.depth == 12 && v.heads == 6 &&
              v.ffn_hidden == 1536 && v.patch == 16 && v.registers == 4,
          "vit from defaults: %d %d %d %d", v.dim, v.depth, v.heads, v.ffn_hidden);
    CHECK(dx_config_n_keys() > 80, "schema has %d keys", dx_config_n_keys());

    /* nested and flat keys, comments, lists */
    dx_config_defaults(&c);
    const char *y1 = "# comment\n"
                     "optim:\n"
                     "  lr: 2e-4   # trailing comment\n"
                     "  betas: [0.8, 0.95]\n"
                     "train.batch_size: 32\n"
                     "data:\n"
                     "  windows: [[400, 40], [2000, -500, 100, 300]]\n"
                     "  stack25d: off\n"
                     "  root: \"/data/lidc x\"\n";
    CHECK(dx_config_load_string(&c, y1, "y1", &e) == DX_OK, "load y1: %s", e.msg);
    CHECK(c.optim.lr == 2e-4f && c.optim.betas[0] == 0.8f && c.optim.betas[1] == 0.95f, "lr/betas");
    CHECK(c.train.batch_size == 32, "flat key");
    CHECK(c.data.n_windows == 2 && c.data.windows[0].level_jitter == 0 && c.data.windows[1].width_jitter == 300,
          "windows list");
    CHECK(c.data.stack25d == 0, "bool 'off'");
    CHECK(strcmp(c.data.root, "/data/lidc x") == 0, "string %s", c.data.root);
    CHECK(c.optim.min_lr == 1e-6f, "untouched keys keep defaults");
    CHECK(dx_config_load_string(&c, "optim:\n#  lr: 5\ntrain:\n  seed: 3\n", "y2", &e) == DX_OK && c.train.seed == 3,
          "empty section accepted: %s", e.msg);

    /* errors name the key, the file and the line */
    expect_load_error("optim:\n  lr: 1e-3\n  lrr: 2\n", "t.yaml:3", "unknown key 'optim.lrr'", "did you mean optim.lr?");
    expect_load_error("train:\n  bach_size: 8\n", "t.yaml:2", "did you mean train.batch_size?", NULL);
    expect_load_error("lr: 0.1\n", "unknown key 'lr'", "did you mean optim.lr?", NULL);
    expect_load_error("zzz:\n  qqq: 1\n", "unknown key 'zzz'", NULL, NULL);
    expect_load_error("train:\n  batch_size: 0\n", "t.yaml:2", "train.batch_size", "out of range");
    expect_load_error("train:\n  batch_size: 8.5\n", "train.batch_size", "not an integer", NULL);
    expect_load_error("optim:\n\n  lr: fast\n", "t.yaml:3", "optim.lr", "not a number");
    expect_load_error("model:\n  arch: vit_huge\n", "model.arch", "vit_huge", "vit_small");
    expect_load_error("gram:\n  enabled: maybe\n", "gram.enabled", "boolean", NULL);
    expect_load_error("crops:\n  global_scale: 0.5\n", "crops.global_scale", "list", NULL);
    expect_load_error("crops:\n  global_scale: [0.9, 0.2]\n", "crops.global_scale", "min > max", NULL);
    expect_load_error("crops:\n  global_scale: [0.1, 0.2, 0.3]\n", "crops.global_scale", NULL, NULL);
    expect_load_error("optim:\n  lr: [1, 2]\n", "optim.lr", "single value", NULL);
    expect_load_error("optim:\n  lr: 1e-3\n  lr: 2e-3\n", "t.yaml:3", "duplicate key 'optim.lr'", NULL);
    expect_load_error("optim: 3\n", "optim", "section", NULL);
    expect_load_error("optim:\n  lr: [1e-3\n", "t.yaml", "YAML syntax error", NULL);
    expect_load_error("data:\n  windows: [[100, 0, 0, 200]]\n", "data.windows", "width_jitter < width", NULL);
    expect_load_error("data:\n  windows: []\n", "data.windows", "at least one", NULL);
    expect_load_error("- 1\n- 2\n", "top level must be a mapping", NULL, NULL);

    /* overrides */
    const char *ov[] = {"optim.lr=2e-4", "train.batch_size=32", "crops.global_scale=[0.3,1]", "model.arch=vit_base"};
    CHECK(dx_config_resolve(&c, NULL, ov, 4, &e) == DX_OK, "overrides: %s", e.msg);
    CHECK(c.optim.lr == 2e-4f && c.train.batch_size == 32 && c.crops.global_scale[0] == 0.3f &&
              strcmp(c.model.arch, "vit_base") == 0,
          "override values");
    const char *bad[] = {"optim.lrr=1"};
    CHECK(dx_config_resolve(&c, NULL, bad, 1, &e) != DX_OK && strstr(e.msg, "unknown key 'optim.lrr'") &&
              strstr(e.msg, "did you mean optim.lr?"),
          "override error: %s", e.msg);
    const char *bad2[] = {"train.batch_size"};
    CHECK(dx_config_resolve(&c, NULL, bad2, 1, &e) != DX_OK && strstr(e.msg, "key=value"), "no '=': %s", e.msg);
    const char *bad3[] = {"train.seed=-1"};
    CHECK(dx_config_resolve(&c, NULL, bad3, 1, &e) != DX_OK && strstr(e.msg, "train.seed"), "seed: %s", e.msg);

    /* cross-key validation */
    const char *x1[] = {"model.arch=custom", "model.dim=100", "model.depth=2", "model.heads=4"};
    CHECK(dx_config_resolve(&c, NULL, x1, 4, &e) != DX_OK && strstr(e.msg, "4*heads"), "dim %% 4h: %s", e.msg);
    const char *x2[] = {"crops.global_size=100"};
    CHECK(dx_config_resolve(&c, NULL, x2, 1, &e) != DX_OK && strstr(e.msg, "crops.global_size"), "patch: %s", e.msg);
    const char *x3[] = {"optim.min_lr=0.1"};
    CHECK(dx_config_resolve(&c, NULL, x3, 1, &e) != DX_OK && strstr(e.msg, "optim.min_lr"), "min_lr: %s", e.msg);
    const char *x4[] = {"model.arch=custom"};
    CHECK(dx_config_resolve(&c, NULL, x4, 1, &e) != DX_OK && strstr(e.msg, "custom"), "custom: %s", e.msg);
    const char *x5[] = {"gram.enabled=true", "gram.teacher_res_factor=1.5", "crops.global_size=48",
                        "crops.local_size=32"};
    CHECK(dx_config_resolve(&c, NULL, x5, 4, &e) != DX_OK && strstr(e.msg, "gram"), "gram size: %s", e.msg);
    const char *x6[] = {"model.ffn=swiglu", "model.arch=vit_small"};
    CHECK(dx_config_resolve(&c, NULL, x6, 2, &e) == DX_OK && dx_config_vit(&c, &v, &e) == DX_OK &&
              v.ffn == DX_FFN_SWIGLU && v.ffn_hidden == dx_swiglu_width(1536, 8),
          "swiglu width %d", v.ffn_hidden);

    /* dump -> reload -> identical, for defaults and an edited config */
    const char *ov2[] = {"optim.lr=2e-4", "optim.eps=1.5e-9", "data.root=a \"quoted\" \\path",
                         "crops.noise_hu=[0.3, 17.25]", "train.seed=123456789012",
                         "data.windows=[[350.5, 40.25, 1.5, 2.5]]"};
    for (int round = 0; round < 2; round++) {
        CHECK(dx_config_resolve(&c, NULL, ov2, round ? 6 : 0, &e) == DX_OK, "resolve: %s", e.msg);
        char *t1 = dump_text(&c);
        dx_config_defaults(&d);
        CHECK(dx_config_load_string(&d, t1, "dump", &e) == DX_OK, "reload dump: %s", e.msg);
        CHECK(same_config(&c, &d), "reloaded config differs (round %d)", round);
        char *t2 = dump_text(&d);
        CHECK(strcmp(t1, t2) == 0, "dump not a fixed point");
        if (round) {
            CHECK(d.optim.lr == 2e-4f && d.optim.eps == 1.5e-9f && d.train.seed == 123456789012LL, "numbers");
            CHECK(strcmp(d.data.root, "a \"quoted\" \\path") == 0, "string escapes: %s", d.data.root);
            CHECK(strstr(t1, "lr: 0.0002  #") != NULL, "shortest float text");
        }
        free(t1);
        free(t2);
    }
    char tmp[] = "/tmp/dx_cfg_XXXXXX";
    int fd = mkstemp(tmp);
    close(fd);
    CHECK(dx_config_save(&c, tmp, &e) == DX_OK, "save");
    CHECK(dx_config_resolve(&d, tmp, NULL, 0, &e) == DX_OK && same_config(&c, &d), "file round trip: %s", e.msg);
    remove(tmp);
    CHECK(dx_config_load_file(&d, "/nonexistent/x.yaml", &e) == DX_EIO && strstr(e.msg, "/nonexistent/x.yaml"),
          "missing file");

    /* the shipped configs */
    const char *ship[] = {"configs/demo.yaml", "configs/vits16_lidc.yaml", "configs/vitl16_lidc_strixhalo.yaml",
                          "configs/vitg14_lidc_strixhalo.yaml"};
    char path[1024];
    for (int i = 0; i < 4; i++) {
        dx_test_path(path, sizeof path, ship[i]);
        CHECK(dx_config_resolve(&c, path, NULL, 0, &e) == DX_OK, "%s: %s", ship[i], e.msg);
    }
    dx_test_path(path, sizeof path, "configs/demo.yaml");
    dx_config_resolve(&c, path, NULL, 0, &e);
    CHECK(dx_config_vit(&c, &v, &e) == DX_OK && v.dim == 96 && v.depth == 4 && v.heads == 4 && v.patch == 8,
          "demo vit");
    CHECK(c.crops.global_size == 64 && c.crops.local_size == 32 && c.crops.local_count == 4 &&
              dx_config_total_steps(&c) <= 1000,
          "demo crops / steps");
    dx_test_path(path, sizeof path, "configs/vitg14_lidc_strixhalo.yaml");
    dx_config_resolve(&c, path, NULL, 0, &e);
    CHECK_CLOSE(dx_config_peak_lr(&c), 5e-4, 0, 1e-6, "vitg peak lr");
    CHECK(c.model.patch == 14 && c.train.batch_size == 64 && c.crops.global_size % 14 == 0, "vitg14");

    /* docs/config.md carries the generated schema table */
    char *md = NULL;
    size_t mdlen = 0;
    FILE *mf = open_memstream(&md, &mdlen);
    dx_config_write_schema_md(mf);
    fclose(mf);
    dx_test_path(path, sizeof path, "docs/config.md");
    char *doc = read_all(path);
    CHECK(doc && strstr(doc, md), "docs/config.md is stale: regenerate the table with `dinox train --schema`");
    if (getenv("DX_WRITE_SCHEMA")) fputs(md, stdout);
    free(md);
    /* ... and the DINOv3-key mapping table of `dinox config import` */
    md = NULL;
    mf = open_memstream(&md, &mdlen);
    dx_config_import_write_md(mf);
    fclose(mf);
    CHECK(doc && strstr(doc, md), "docs/config.md is stale: regenerate the DINOv3 mapping with `dinox config table`");
    free(doc);
    free(md);
    return dx_test_summary();
}
