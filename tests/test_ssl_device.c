/* test_ssl_device.c - the whole DINOv3 step on a GPU backend against the CPU
 * backend: the same config, seed, crops and masks on both, then
 *  - step 1: every loss term (DINO local/global, KoLeo, iBOT, Gram, total) and
 *    every gradient norm (backbone, DINO head, iBOT head) within the
 *    precision's tolerance: fp32 1e-4 relative (the bound), bf16
 *    2e-2 relative (bf16 has 8 mantissa bits: 4e-3 per rounding; the GEMMs
 *    round their inputs, and the two backends sum in different orders);
 *  - the step's update of the student and of the EMA teacher (w1 - w0) as a
 *    relative L2 difference (AdamW divides by sqrt(v), so a tiny gradient's
 *    rounding can move its update a lot: reported, checked loosely);
 *  - a trajectory of --steps steps (default 20): the total loss per step on
 *    both, and the relative difference at the last step.
 * Exits 77 (CTest: skipped) when no GPU backend with a device is present;
 * it never reports a pass without running on a GPU.
 *
 * usage: test_ssl_device [--device cuda[:N]|hip[:N]] [--precision fp32|bf16]
 *                        [--steps N] [--size tiny|small] [--micro-batch M] [--ibot-recompute]
 *   --micro-batch M: the student in passes of M images on both backends.
 *   --ibot-recompute: the iBOT targets pass by pass (Sinkhorn-Knopp over chunks) on both.
 *   no --device: every compiled GPU backend that has a device.
 *   --size small: ViT-S/16 at 2x224 + 4x96, batch 4, heads 2048/256/8192
 *   (the realistic attention and GEMM shapes; about 1 s per step on a GPU). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/dx_backend.h"
#include "backend/registry.h"
#include "core/dx_rng.h"
#include "data/masking.h"
#include "dx_test.h"
#include "train/ssl.h"

static dx_ssl_config make_config(int small) {
    dx_ssl_config c;
    memset(&c, 0, sizeof c);
    if (small) {
        dx_vit_config_named(&c.vit, "vit_small", NULL);
        c.dino_head = (dx_head_config){.hidden = 2048, .bottleneck = 256, .prototypes = 8192, .nlayers = 3};
        c.ibot_head = c.dino_head;
        c.batch = 4;
        c.n_local = 4;
        c.global_size = 224;
        c.local_size = 96;
    } else {
        dx_vit_config_named(&c.vit, "custom", NULL);
        c.vit.dim = 64;
        c.vit.depth = 2;
        c.vit.heads = 2; /* Dh 32: the fused kernel's path for passes without backward */
        c.vit.registers = 2;
        c.vit.patch = 8;
        c.vit.ffn_hidden = 128;
        c.vit.layerscale_init = 0.5f; /* blocks matter at step 1 */
        c.dino_head = (dx_head_config){.hidden = 96, .bottleneck = 32, .prototypes = 256, .nlayers = 3};
        c.ibot_head = (dx_head_config){.hidden = 80, .bottleneck = 32, .prototypes = 192, .nlayers = 3};
        c.batch = 4;
        c.n_local = 2;
        c.global_size = 48;
        c.local_size = 24;
    }
    c.n_global = 2;
    c.use_gram = 1;
    c.gram_img_level = 1;
    c.teacher_chunk = 4; /* the EMA and Gram teachers in 2 passes of 4 of the 8 crops (the copy op, per-chunk resize) */
    c.w_dino = 1.0f;
    c.w_koleo = 0.1f;
    c.w_ibot = 1.0f;
    c.student_temp = 0.1f;
    c.centering = DX_CENTER_SINKHORN;
    c.sk_iters = 3;
    c.clip_grad = 3.0f;
    c.beta1 = 0.9f;
    c.beta2 = 0.999f;
    c.eps = 1e-8f;
    c.layer_decay = 0.9f;
    c.patch_embed_lr_mult = 0.2f;
    c.seed = 11;
    return c;
}

typedef struct {
    float *global, *local;
    dx_ibot_masks mk;
} crops;

/* The crops and masks of step `step`: drawn on the host, the same for both backends. */
static int make_crops(crops *k, const dx_ssl_config *c, int step) {
    const int G = 2 * c->batch, L = c->n_local * c->batch, Hp = c->global_size / c->vit.patch;
    size_t ng = (size_t)G * 3 * c->global_size * c->global_size, nl = (size_t)L * 3 * c->local_size * c->local_size;
    k->global = malloc(ng * sizeof(float));
    k->local = malloc(nl * sizeof(float));
    dx_rng r;
    dx_rng_init(&r, 5, DX_RNG_TEST, (uint64_t)step, 0);
    for (size_t i = 0; i < ng; i++) k->global[i] = (float)dx_rng_normal(&r);
    for (size_t i = 0; i < nl; i++) k->local[i] = (float)dx_rng_normal(&r);
    dx_err err;
    return dx_ibot_masks_make(&k->mk, G, Hp, Hp, 0.5, 0.1, 0.5, 1, (uint64_t)step, &err) == DX_OK;
}

static void free_crops(crops *k) {
    free(k->global);
    free(k->local);
    dx_ibot_masks_free(&k->mk);
}

static float *download(dx_backend *be, const float *d, size_t n) {
    float *h = malloc(n * sizeof(float));
    be->ops->download(be, h, d, n * sizeof(float));
    return h;
}

/* ||(a1 - a0) - (b1 - b0)|| / ||b1 - b0||: how far one update is from the other. */
static double update_diff(const float *a0, const float *a1, const float *b0, const float *b1, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double da = (double)a1[i] - a0[i], db = (double)b1[i] - b0[i];
        num += (da - db) * (da - db);
        den += db * db;
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static int close_rel(double a, double ref, double rtol, double atol) {
    return isfinite(a) && fabs(a - ref) <= rtol * fabs(ref) + atol;
}

/* One backend pair: returns 1 if it ran. */
static int run_pair(const char *device, int precision, int steps, int small, int micro, int recompute) {
    dx_err err;
    dx_backend_params pg = {0}, pc = {.name = "cpu", .precision = precision};
    if (dx_backend_parse_device(device, &pg, &err)) {
        printf("%s: %s, skipped\n", device, err.msg);
        return 0;
    }
    pg.precision = precision;
    dx_backend *cpu = NULL, *gpu = NULL;
    if (dx_backend_create(&gpu, &pg, &err)) {
        printf("%s: %s, skipped\n", device, err.msg);
        return 0;
    }
    if (dx_backend_create(&cpu, &pc, &err)) {
        CHECK(0, "cpu backend: %s", err.msg);
        dx_backend_destroy(gpu);
        return 1;
    }
    const int bf16 = precision == DX_PREC_BF16;
    const double rtol = bf16 ? 2e-2 : 1e-4, atol = bf16 ? 1e-4 : 1e-7;
    dx_ssl_config c = make_config(small);
    c.micro_batch = micro; /* the student in passes (the per-pass copies and uploads into offsets) */
    c.ibot_recompute = recompute; /* the sk_chunk_* ops and the per-pass targets */
    if (bf16) c.student_acts = DX_ACTS_BF16; /* as the trainer under the bf16 policy */
    dx_ssl sc, sg;
    dx_status st = dx_ssl_init(&sc, &c, cpu, &err);
    if (!st) st = dx_ssl_init_weights(&sc, cpu, &err);
    CHECK(st == DX_OK, "cpu init: %s", err.msg);
    dx_status st2 = dx_ssl_init(&sg, &c, gpu, &err);
    if (!st2) st2 = dx_ssl_init_weights(&sg, gpu, &err);
    CHECK(st2 == DX_OK, "%s init: %s", device, err.msg);
    if (st || st2) {
        dx_backend_destroy(cpu);
        dx_backend_destroy(gpu);
        return 1;
    }
    const size_t n = sc.tab.total;
    /* the same initial weights on both: the GPU's are the CPU's, uploaded */
    float *w0 = download(cpu, sc.w, n), *t0 = download(cpu, sc.teacher, n);
    gpu->ops->upload(gpu, sg.w, w0, n * sizeof(float));
    gpu->ops->upload(gpu, sg.teacher, t0, n * sizeof(float));
    if (c.use_gram) {
        float *gw = download(cpu, sc.gram_w, sc.vit.tab.total);
        gpu->ops->upload(gpu, sg.gram_w, gw, sc.vit.tab.total * sizeof(float));
        free(gw);
    }
    dx_ssl_sched sched = {.lr = 1e-3f, .last_layer_lr = 1e-3f, .wd = 0.04f, .momentum = 0.99f,
                          .teacher_temp = 0.07f, .w_gram = 1.0f, .lambda_local = 1.0f};
    printf("%s vs cpu, %s, %s config, %d steps\n", device, bf16 ? "bf16" : "fp32", small ? "small (ViT-S/16)" : "tiny",
           steps);
    double last_c = 0, last_g = 0;
    for (int s = 0; s < steps; s++) {
        crops k;
        if (!make_crops(&k, &c, s)) {
            CHECK(0, "masks of step %d", s);
            break;
        }
        dx_ssl_batch b = {.global = k.global, .local = k.local, .gram = NULL, .masks = k.mk.mask};
        dx_ssl_metrics mc, mg;
        st = dx_ssl_step(&sc, cpu, &b, s, &sched, &mc, &err);
        CHECK(st == DX_OK, "cpu step %d: %s", s, err.msg);
        st2 = dx_ssl_step(&sg, gpu, &b, s, &sched, &mg, &err);
        CHECK(st2 == DX_OK, "%s step %d: %s", device, s, err.msg);
        free_crops(&k);
        if (st || st2) break;
        CHECK(!mg.nonfinite, "%s step %d: non-finite loss or gradient", device, s);
        if (s == 0) {
            const char *names[] = {"total", "dino_local", "dino_global", "koleo", "ibot", "gram",
                                   "gnorm_backbone", "gnorm_dino", "gnorm_ibot"};
            double vc[] = {mc.total, mc.dino_local, mc.dino_global, mc.koleo, mc.ibot, mc.gram,
                           mc.gnorm_backbone, mc.gnorm_dino, mc.gnorm_ibot};
            double vg[] = {mg.total, mg.dino_local, mg.dino_global, mg.koleo, mg.ibot, mg.gram,
                           mg.gnorm_backbone, mg.gnorm_dino, mg.gnorm_ibot};
            for (int i = 0; i < 9; i++) {
                double rel = fabs(vg[i] - vc[i]) / fmax(fabs(vc[i]), 1e-30);
                printf("  step 1 %-15s cpu %+.8e  %s %+.8e  rel %.2e\n", names[i], vc[i], device, vg[i], rel);
                CHECK(close_rel(vg[i], vc[i], rtol, atol), "step 1 %s: %s %.8g vs cpu %.8g (rel %.3g > %.1g)",
                      names[i], device, vg[i], vc[i], rel, rtol);
            }
            CHECK(mg.n_masked == mc.n_masked, "masked patches %d vs %d", mg.n_masked, mc.n_masked);
            float *wc = download(cpu, sc.w, n), *wg = download(gpu, sg.w, n);
            float *tc = download(cpu, sc.teacher, n), *tg = download(gpu, sg.teacher, n);
            double du = update_diff(w0, wg, w0, wc, n), dt = update_diff(t0, tg, t0, tc, n);
            printf("  step 1 student update: relative L2 difference %.2e; EMA teacher update %.2e\n", du, dt);
            CHECK(du <= (bf16 ? 0.2 : 2e-2), "student update differs by %.3g (relative L2)", du);
            CHECK(dt <= (bf16 ? 0.2 : 2e-2), "teacher update differs by %.3g (relative L2)", dt);
            free(wc); free(wg); free(tc); free(tg);
        }
        printf("  step %2d total loss cpu %.6f  %s %.6f\n", s + 1, mc.total, device, mg.total);
        last_c = mc.total;
        last_g = mg.total;
    }
    if (steps > 1) {
        double rel = fabs(last_g - last_c) / fmax(fabs(last_c), 1e-30);
        printf("  trajectory: after %d steps the total losses differ by %.2e (relative)\n", steps, rel);
        CHECK(close_rel(last_g, last_c, bf16 ? 5e-2 : 1e-3, 0), "after %d steps: %s %.6g vs cpu %.6g", steps,
              device, last_g, last_c);
    }
    free(w0);
    free(t0);
    dx_ssl_free(&sc, cpu);
    dx_ssl_free(&sg, gpu);
    dx_backend_destroy(cpu);
    dx_backend_destroy(gpu);
    return 1;
}

int main(int argc, char **argv) {
    const char *device = NULL;
    int precision = DX_PREC_FP32, steps = 20, small = 0, micro = 0, recompute = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc) device = argv[++i];
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc) precision = !strcmp(argv[++i], "bf16");
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) small = !strcmp(argv[++i], "small");
        else if (!strcmp(argv[i], "--micro-batch") && i + 1 < argc) micro = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ibot-recompute")) recompute = 1;
        else {
            fprintf(stderr, "usage: test_ssl_device [--device D] [--precision fp32|bf16] [--steps N] [--size tiny|small] "
                            "[--micro-batch M] [--ibot-recompute]\n");
            return 2;
        }
    }
    if (steps < 1) steps = 1;
    int ran = 0;
    if (device) {
        ran = run_pair(device, precision, steps, small, micro, recompute);
    } else {
        int ne;
        const dx_backend_entry *e = dx_backend_registry(&ne);
        for (int i = 0; i < ne; i++) {
            if (!strcmp(e[i].name, "cpu")) continue;
            if (!e[i].compiled) {
                printf("%s: not compiled in, skipped\n", e[i].name);
                continue;
            }
            char why[160] = "";
            if (e[i].device_count(why, sizeof why) < 1) {
                printf("%s: no device, skipped (%s)\n", e[i].name, why);
                continue;
            }
            ran += run_pair(e[i].name, precision, steps, small, micro, recompute);
        }
    }
    if (!ran) {
        printf("no GPU backend with a device: SKIPPED (nothing was compared)\n");
        return 77;
    }
    return dx_test_summary();
}
