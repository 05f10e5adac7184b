/* test_schedule_parity.c - schedules, parameter groups, clipping, loss weights and mask counts vs the reference.
 *
 * Reference: tests/fixtures/loss_schedules.safetensors (tests/ref/gen_loss_fixtures.py,
 * numpy/torch, spec §10 cases 23, 24, 25, 27, 29):
 *  - v1 CosineScheduler and v2 linear_warmup_cosine_decay: every entry of the
 *    numpy array (plus it >= T) equals dx_*_schedule_at to the bit (at most
 *    1 ulp is tolerated for libm-vs-numpy cos and reported);
 *  - per-parameter lr/wd multipliers for every ViT-S and head name;
 *  - clip factors and clipped float gradients vs torch.nn.utils.clip_grad_norm_;
 *  - total objective and each weighted term (default and Gram stage);
 *  - the collate's mask counts (float32 torch.linspace) exactly.
 * Plus the spec's worked examples, hard-coded independently of the fixture. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/masking.h"
#include "dx_test.h"
#include "io/dx_safetensors.h"
#include "train/schedule.h"

static dx_safetensors ST;

static const dx_st_tensor *need(const char *name) {
    const dx_st_tensor *t = dx_st_find(&ST, name);
    CHECK(t != NULL, "fixture tensor '%s' missing", name);
    if (!t) exit(1);
    return t;
}

static double *getd(const char *name, size_t *n) {
    const dx_st_tensor *t = need(name);
    double *v = malloc(sizeof(double) * (t->numel ? t->numel : 1));
    if (t->dtype == DX_ST_F64) {
        memcpy(v, t->data, t->numel * sizeof(double));
    } else {
        float *f = malloc(sizeof(float) * (t->numel ? t->numel : 1));
        dx_st_to_f32(t, f, t->numel, NULL);
        for (size_t i = 0; i < t->numel; i++) v[i] = f[i];
        free(f);
    }
    if (n) *n = t->numel;
    return v;
}

static float *getf(const char *name, size_t *n) {
    const dx_st_tensor *t = need(name);
    float *v = malloc(sizeof(float) * (t->numel ? t->numel : 1));
    dx_st_to_f32(t, v, t->numel, NULL);
    if (n) *n = t->numel;
    return v;
}

/* distance in units in the last place between two doubles of the same sign */
static int64_t ulps(double a, double b) {
    if (a == b) return 0;
    if ((a < 0) != (b < 0)) return INT64_MAX;
    int64_t ia, ib;
    memcpy(&ia, &a, 8);
    memcpy(&ib, &b, 8);
    return ia > ib ? ia - ib : ib - ia;
}

/* v[n] vs the reference arrays: bit-exact against the same operations with
 * glibc's cos (lib), and against numpy's own array (ref, whose np.cos may be a
 * SIMD version 1 ulp off) within 1 ulp of cos times the amplitude. */
static void compare_sched(const char *name, const double *v, const double *ref, const double *lib,
                          size_t n, double amp) {
    int64_t worst = 0;
    int exact = 0, bad = 0;
    double tol = 2 * 2.220446049250313e-16 * amp;
    for (size_t it = 0; it < n; it++) {
        int64_t u = ulps(v[it], lib[it]);
        if (u > worst) worst = u;
        exact += ulps(v[it], ref[it]) == 0;
        if (fabs(v[it] - ref[it]) > tol) {
            bad++;
            fprintf(stderr, "  %s[%zu]: %.17g numpy %.17g\n", name, it, v[it], ref[it]);
        }
    }
    CHECK(worst == 0, "%s: max %lld ulp from the libm-cos reference", name, (long long)worst);
    CHECK(bad == 0, "%s: %d values further than 1 ulp(cos) x amplitude from numpy", name, bad);
    printf("  %-10s %zu values: bit-exact vs libm reference; %d of %zu bit-exact vs numpy\n", name,
           n, exact, n);
}

static void test_v1(void) {
    static const char *cases[] = {"v1_lr", "v1_freeze", "v1_last", "v1_tt", "v1_mom", "v1_wd",
                                  "v1_w1"};
    for (int c = 0; c < 7; c++) {
        char key[64];
        size_t n;
        snprintf(key, sizeof key, "%s.cfg", cases[c]);
        double *cfg = getd(key, NULL);
        snprintf(key, sizeof key, "%s.values", cases[c]);
        double *ref = getd(key, &n);
        snprintf(key, sizeof key, "%s.values_libm", cases[c]);
        double *lib = getd(key, NULL);
        dx_cosine_schedule s = {.base = cfg[0], .final = cfg[1], .total = (int64_t)cfg[2],
                                .warmup = (int64_t)cfg[3], .start_warmup = cfg[4],
                                .freeze = (int64_t)cfg[5], .zero_first = (int64_t)cfg[6]};
        CHECK(dx_cosine_schedule_check(&s, NULL) == DX_OK, "%s config valid", cases[c]);
        double *v = malloc(sizeof(double) * n);
        for (size_t it = 0; it < n; it++) v[it] = dx_cosine_schedule_at(&s, (int64_t)it);
        compare_sched(cases[c], v, ref, lib, n, fmax(fabs(cfg[0]), fabs(cfg[1])));
        free(cfg), free(ref), free(lib), free(v);
    }
    dx_cosine_schedule bad = {.base = 1, .final = 0, .total = 4, .warmup = 3, .freeze = 2};
    dx_err err;
    CHECK(dx_cosine_schedule_check(&bad, &err) == DX_EINVAL, "T < W + F rejected");
}

static void test_v2(void) {
    static const char *cases[] = {"v2_a", "v2_b", "v2_c", "v2_gram", "v2_loc"};
    for (int c = 0; c < 5; c++) {
        char key[64];
        size_t n;
        snprintf(key, sizeof key, "%s.cfg", cases[c]);
        double *cfg = getd(key, NULL);
        snprintf(key, sizeof key, "%s.values", cases[c]);
        double *ref = getd(key, &n);
        snprintf(key, sizeof key, "%s.values_libm", cases[c]);
        double *lib = getd(key, NULL);
        dx_lwcd_schedule s = {.start = cfg[0], .peak = cfg[1], .end = cfg[2],
                              .warmup = (int64_t)cfg[3], .total = (int64_t)cfg[4],
                              .cosine = (int64_t)cfg[5]};
        CHECK(dx_lwcd_schedule_check(&s, NULL) == DX_OK, "%s config valid", cases[c]);
        double *v = malloc(sizeof(double) * n);
        for (size_t it = 0; it < n; it++) v[it] = dx_lwcd_schedule_at(&s, (int64_t)it);
        compare_sched(cases[c], v, ref, lib, n,
                      fmax(fabs(cfg[0]), fmax(fabs(cfg[1]), fabs(cfg[2]))));
        free(cfg), free(ref), free(lib), free(v);
    }
    /* endpoint conventions, independent of the fixture: warm-up excludes peak,
     * the cosine includes both peak and end */
    dx_lwcd_schedule s = {.start = 0, .peak = 1, .end = 0.25, .warmup = 4, .total = 12, .cosine = 5};
    CHECK(dx_lwcd_schedule_at(&s, 0) == 0.0 && dx_lwcd_schedule_at(&s, 3) == 0.75,
          "v2 warm-up is end-exclusive");
    CHECK(dx_lwcd_schedule_at(&s, 4) == 1.0, "v2 cosine starts at peak");
    CHECK(dx_lwcd_schedule_at(&s, 8) == 0.25 && dx_lwcd_schedule_at(&s, 11) == 0.25 &&
              dx_lwcd_schedule_at(&s, 100) == 0.25,
          "v2 cosine ends at end, constant after");
    dx_lwcd_schedule bad = {.warmup = 5, .total = 10, .cosine = 6};
    CHECK(dx_lwcd_schedule_check(&bad, NULL) == DX_EINVAL, "W + C > T rejected");
    dx_cosine_schedule v1 = {.base = 1, .final = 0.5, .total = 10, .warmup = 3};
    CHECK(dx_cosine_schedule_at(&v1, 0) == 0.0 && dx_cosine_schedule_at(&v1, 2) == 1.0,
          "v1 warm-up linspace includes both ends");
    CHECK(dx_cosine_schedule_at(&v1, 9) > 0.5 && dx_cosine_schedule_at(&v1, 10) == 0.5,
          "v1 cosine never reaches final inside T; it >= T gives final");
}

/* names of a metadata entry, one per line */
static int split_names(const char *text, char ***out) {
    int n = 1;
    for (const char *p = text; *p; p++) n += *p == '\n';
    char **v = malloc(sizeof(char *) * n);
    char *copy = strdup(text);
    int i = 0;
    for (char *tok = strtok(copy, "\n"); tok && i < n; tok = strtok(NULL, "\n")) v[i++] = strdup(tok);
    free(copy);
    *out = v;
    return i;
}

static void test_param_groups(void) {
    cJSON *meta = cJSON_Parse(ST.metadata_json ? ST.metadata_json : "{}");
    static const struct { const char *key, *tensor; int depth; } groups[] = {
        {"backbone_names", "pm.backbone", 12}, {"head_names", "pm.head", 0}};
    for (int g = 0; g < 2; g++) {
        cJSON *it = cJSON_GetObjectItemCaseSensitive(meta, groups[g].key);
        CHECK(cJSON_IsString(it), "metadata '%s'", groups[g].key);
        if (!cJSON_IsString(it)) continue;
        char **names;
        int n = split_names(it->valuestring, &names);
        size_t nv;
        double *ref = getd(groups[g].tensor, &nv);
        CHECK(nv == (size_t)n * 3, "%s: %d names, %zu values", groups[g].tensor, n, nv);
        int bad = 0;
        for (int i = 0; i < n && (size_t)i * 3 < nv; i++) {
            dx_param_mult m;
            dx_param_mult_of(names[i], groups[g].depth, 0.9, 0.2, &m);
            if (m.lr_mult != ref[3 * i] || m.wd_mult != ref[3 * i + 1] ||
                m.is_last_layer != (ref[3 * i + 2] != 0)) {
                bad++;
                fprintf(stderr, "  %s: lr %.17g wd %g last %d; want %.17g %g %g\n", names[i],
                        m.lr_mult, m.wd_mult, m.is_last_layer, ref[3 * i], ref[3 * i + 1],
                        ref[3 * i + 2]);
            }
        }
        CHECK(bad == 0, "%s: %d of %d multipliers differ", groups[g].tensor, bad, n);
        printf("  %-12s %d names checked\n", groups[g].tensor, n);
        for (int i = 0; i < n; i++) free(names[i]);
        free(names), free(ref);
    }
    cJSON_Delete(meta);

    /* spec §10 case 25 worked examples */
    dx_param_mult m;
    dx_param_mult_of("blocks.11.mlp.fc1.weight", 12, 0.9, 0.2, &m);
    CHECK(fabs(m.lr_mult - 0.9) < 1e-15 && m.wd_mult == 1, "blocks.11.* -> 0.9^1, wd 1");
    dx_param_mult_of("blocks.0.ls1.gamma", 12, 0.9, 0.2, &m);
    CHECK(fabs(m.lr_mult - pow(0.9, 12)) < 1e-15 && m.wd_mult == 0, "blocks.0 gamma: 0.9^12, wd 0");
    dx_param_mult_of("cls_token", 12, 0.9, 0.2, &m);
    CHECK(fabs(m.lr_mult - pow(0.9, 13)) < 1e-15 && m.wd_mult == 1, "cls_token -> 0.9^13, decayed");
    dx_param_mult_of("patch_embed.proj.weight", 12, 0.9, 0.2, &m);
    CHECK(fabs(m.lr_mult - 0.2 * pow(0.9, 13)) < 1e-15 && m.wd_mult == 1, "patch_embed weight");
    dx_param_mult_of("patch_embed.proj.bias", 12, 0.9, 0.2, &m);
    CHECK(m.wd_mult == 0, "patch_embed bias: no wd");
    dx_param_mult_of("norm.weight", 12, 0.9, 0.2, &m);
    CHECK(m.lr_mult == 1 && m.wd_mult == 0 && !m.is_last_layer, "norm.weight -> 1, wd 0");
    dx_param_mult_of("last_layer.weight", 0, 0.9, 0.2, &m);
    CHECK(m.lr_mult == 1 && m.wd_mult == 1 && m.is_last_layer, "head last_layer");
    dx_param_mult_of("mlp.0.bias", 0, 0.9, 0.2, &m);
    CHECK(m.lr_mult == 1 && m.wd_mult == 0 && !m.is_last_layer, "head bias");
}

static void test_clip(void) {
    static const double norms[3] = {5, 1, 10}, want[3] = {3 / (5 + 1e-6), 1.0, 3 / (10 + 1e-6)};
    for (int i = 0; i < 3; i++) {
        char key[64];
        size_t n;
        snprintf(key, sizeof key, "clip%d.g", i);
        float *g = getf(key, &n);
        snprintf(key, sizeof key, "clip%d.scaled", i);
        float *ref = getf(key, NULL);
        snprintf(key, sizeof key, "clip%d.factor", i);
        double *rf = getd(key, NULL);
        double ss = 0;
        for (size_t j = 0; j < n; j++) ss += (double)g[j] * g[j];
        double f = dx_clip_factor(sqrt(ss), 3.0);
        CHECK_CLOSE(sqrt(ss), norms[i], 0, 1e-6, "submodule gradient norm");
        CHECK_CLOSE(f, rf[0], 0, 1e-12, "clip factor vs reference");
        CHECK_CLOSE(f, want[i], 0, 1e-6, "clip factor = min(1, 3/(norm+1e-6))");
        for (size_t j = 0; j < n; j++) g[j] *= (float)f;
        CHECK(dx_max_rel_err(g, ref, n, 1e-6) <= 1e-6, "clipped grads vs torch clip_grad_norm_ (%.3g)",
              dx_max_rel_err(g, ref, n, 1e-6));
        free(g), free(ref), free(rf);
    }
}

static void test_total(void) {
    double *t = getd("tot.terms", NULL);
    dx_loss_terms L = {t[0], t[1], t[2], t[3], t[4]};
    for (int stage = 0; stage < 2; stage++) {
        dx_loss_weights w;
        dx_loss_weights_default(&w);
        if (stage) {
            w.use_gram = 1;
            w.w_gram = 2.0;
            w.local_weight = 0.5;
        }
        dx_loss_terms c;
        double total = dx_loss_total(&L, &w, &c);
        double *rt = getd(stage ? "tot.gram.total" : "tot.default.total", NULL);
        double *rc = getd(stage ? "tot.gram.contrib" : "tot.default.contrib", NULL);
        CHECK_CLOSE(total, rt[0], 0, 1e-12, stage ? "total (Gram stage)" : "total (default)");
        double got[5] = {c.dino_local, c.dino_global, c.koleo, c.ibot, c.gram};
        for (int k = 0; k < 5; k++) CHECK_CLOSE(got[k], rc[k], 1e-15, 1e-12, "weighted term");
        free(rt), free(rc);
    }
    dx_loss_weights w;
    dx_loss_weights_default(&w);
    dx_loss_terms k;
    dx_loss_coefs(&w, &k);
    CHECK_CLOSE(k.dino_local, 16.0 / 18, 0, 1e-15, "s_loc = 16/18");
    CHECK_CLOSE(k.dino_global, 2.0 / 18, 0, 1e-15, "s_glob = 2/18");
    CHECK_CLOSE(k.koleo, 0.2, 0, 1e-15, "KoLeo x 0.1 x G");
    CHECK(k.ibot == 1 && k.gram == 0, "iBOT x 1, Gram off by default");
    free(t);
}

static void test_mask_counts(void) {
    static const int cases[][2] = {{196, 8}, {256, 8}, {196, 4}, {49, 6}, {1024, 32}, {36, 2},
                                   {256, 128}};
    for (int c = 0; c < 7; c++) {
        char key[64];
        int N = cases[c][0], crops = cases[c][1];
        snprintf(key, sizeof key, "mc.%d_%d", N, crops);
        const dx_st_tensor *t = need(key);
        int32_t ref[128];
        memcpy(ref, t->data, t->numel * sizeof(int32_t));
        int counts[128];
        int n = dx_mask_counts(counts, crops, N, 0.5, 0.1f, 0.5f);
        CHECK(n == (int)t->numel, "%s: %d masked crops, want %zu", key, n, t->numel);
        int same = n == (int)t->numel;
        for (int i = 0; same && i < n; i++) same = counts[i] == ref[i];
        CHECK(same, "%s: counts differ from torch", key);
    }
    int c20[20];
    CHECK(dx_mask_counts(c20, 20, 196, 0.35, 0.1f, 0.5f) == 7, "int(20 * 0.35) = 7 in double");
    int counts[8];
    int n = dx_mask_counts(counts, 8, 196, 0.5, 0.1f, 0.5f);
    CHECK(n == 4 && counts[0] == 39 && counts[1] == 58 && counts[2] == 78 && counts[3] == 98,
          "N=196, B=4: 39, 58, 78, 98 (got %d: %d %d %d %d)", n, counts[0], counts[1], counts[2],
          counts[3]);
}

int main(void) {
    char path[4096];
    dx_err err;
    /* DINOX_FIXTURE_DIR: CI's freshly regenerated fixtures (label `parity`) */
    const char *fd = getenv("DINOX_FIXTURE_DIR");
    if (fd)
        snprintf(path, sizeof path, "%s/loss_schedules.safetensors", fd);
    else
        dx_test_path(path, sizeof path, "tests/fixtures/loss_schedules.safetensors");
    if (dx_st_open(&ST, path, &err)) {
        fprintf(stderr, "open %s: %s\n", path, err.msg);
        return 1;
    }
    test_v1();
    test_v2();
    test_param_groups();
    test_clip();
    test_total();
    test_mask_counts();
    dx_st_close(&ST);
    return dx_test_summary();
}
