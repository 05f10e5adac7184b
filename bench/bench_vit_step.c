/* bench_vit_step.c - ViT training-step throughput: forward + backward + AdamW.
 *
 * Configs (same as bench/torch_vit_step.py, its PyTorch peer):
 *   multicrop: ViT-S/16, per image 2 global 224-px + 8 local 96-px crops, batch 8
 *   single:    ViT-S/16, 112-px crops, batch 32
 * Prints one JSON line per config with images/s (median over steps), achieved
 * GFLOP/s (analytic count: fwd = matmuls + attention, bwd = 2 x fwd) and the
 * fraction of this machine's single-GEMM peak, measured here first on the
 * model's own linear-layer shapes.
 *
 *   dinov3:    the whole DINOv3 step (dx_ssl_step): ViT-S/16, 2x224 + 8x96 crops,
 *              batch 8, masked student globals, EMA teacher, DINO/iBOT heads
 *              2048/256/65536, Sinkhorn-Knopp, KoLeo, Gram teacher (same
 *              resolution; --gram-scale 2 for 448-px Gram crops), AdamW, EMA.
 *
 * usage: bench_vit_step [multicrop|single|dinov3|all] [--steps S] [--warmup W] [--arch A]
 *                       [--threads T] [--gram-scale F] [--precision fp32|bf16]
 *                       [--device cpu|cuda[:N]|hip[:N]] [--batch B] [--sizes G/L]
 *                       [--micro-batch M] [--ibot-recompute]
 * --batch and --sizes set the images per step and the global/local crop sizes of
 * multicrop and dinov3 (default 8 and 224/96; the GPU figures of the issue are
 * ViT-S/16 at --batch 64 and ViT-L/16 at --sizes 512/112 with the batch that
 * `dinox plan` says fits). Every figure is on the backend --device names.
 * --precision bf16: the linear layers' GEMMs in bf16 (fp32 accumulation), as
 * `dinox train --precision bf16`; the GEMM peak is then the bf16 GEMM's.
 * --micro-batch M (dinov3): the student in passes of M images (train.micro_batch),
 * so the cost of the passes is the ratio to the same run without it; --ibot-recompute
 * (dinov3): the iBOT targets pass by pass (train.ibot_recompute), its extra GEMMs' cost. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/dx_backend.h"
#include "backend/registry.h"
#include "core/dx_rng.h"
#include "nn/vit.h"
#include "data/masking.h"
#include "train/optim.h"
#include "train/ssl.h"

static char dev_label[40] = "cpu";

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static float *rand_buf(dx_backend *be, size_t n, uint64_t seed) {
    float *h = malloc(n * sizeof(float));
    dx_rng r;
    dx_rng_init(&r, seed, DX_RNG_TEST, 0, 0);
    for (size_t i = 0; i < n; i++) h[i] = (float)dx_rng_normal(&r);
    float *d = be->ops->alloc(be, n * sizeof(float));
    be->ops->upload(be, d, h, n * sizeof(float));
    free(h);
    return d;
}

/* Peak: best median GFLOP/s over the forward/dX/dW GEMMs of the linear layers. */
static double gemm_peak(dx_backend *be, int M, int D, int F) {
    int shapes[][3] = {{M, 3 * D, D}, {M, D, D}, {M, F, D}, {M, D, F}};
    double best = 0;
    /* every operand of these shapes: an M-row one is at most M x 3F, the others 3D x F */
    size_t n = (size_t)M * F * 3 + (size_t)3 * D * F;
    float *A = rand_buf(be, n, 1), *B = rand_buf(be, n, 2), *C = rand_buf(be, n, 3);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        for (int variant = 0; variant < 3; variant++) {
            double t[7];
            for (int rep = 0; rep < 7; rep++) {
                double t0 = now();
                if (variant == 0) dx_gemm_linear(be, 0, 1, m, n, k, 1, A, k, B, k, 0, C, n);      /* y = x W^T   */
                else if (variant == 1) dx_gemm_linear(be, 0, 0, m, k, n, 1, A, n, B, k, 0, C, k); /* dx = dy W   */
                else dx_gemm_linear(be, 1, 0, n, k, m, 1, A, n, B, k, 1, C, k);                   /* dW += dy^T x */
                t[rep] = now() - t0;
            }
            double g = 2.0 * m * n * k / median(t, 7) / 1e9;
            if (g > best) best = g;
        }
    }
    be->ops->free(be, A);
    be->ops->free(be, B);
    be->ops->free(be, C);
    return best;
}

typedef struct { int n, size; } group;

static void run_config(dx_backend *be, const char *name, const char *arch, const group *groups, int ng,
                       int batch, int steps, int warmup, double peak) {
    dx_err err;
    dx_vit_config cfg;
    dx_vit_config_named(&cfg, arch, &err);
    dx_vit m;
    if (dx_vit_init(&m, &cfg, &err)) { fprintf(stderr, "%s\n", err.msg); return; }
    dx_table_set_param_groups(&m.tab, "", cfg.depth, 0.9f, 0.2f);
    size_t bytes = m.tab.total * sizeof(float);
    float *w = be->ops->alloc(be, bytes), *g = be->ops->alloc(be, bytes);
    float *am = be->ops->alloc(be, bytes), *av = be->ops->alloc(be, bytes);
    dx_vit_init_weights(&m, be, w, 1, &err);
    dx_segment *seg = NULL;
    int nseg = 0;
    if (dx_optim_segments(be, &m.tab, &seg, &nseg, &err)) { fprintf(stderr, "%s\n", err.msg); return; }
    dx_vit_acts acts[4];
    float *img[4];
    double flop = 0;
    for (int i = 0; i < ng; i++) {
        if (dx_vit_acts_init(&acts[i], &m, be, groups[i].n, groups[i].size, groups[i].size, 1, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return;
        }
        img[i] = rand_buf(be, (size_t)groups[i].n * 3 * groups[i].size * groups[i].size, 10 + i);
        float *d = rand_buf(be, (size_t)acts[i].N * acts[i].T * cfg.dim, 20 + i);
        be->ops->copy(be, acts[i].dout, d, (size_t)acts[i].N * acts[i].T * cfg.dim * sizeof(float));
        be->ops->free(be, d);
        flop += 3.0 * groups[i].n * dx_vit_flops_per_image(&cfg, groups[i].size, groups[i].size);
    }
    dx_adamw hp = {.lr = 1e-4f, .last_layer_lr = 1e-4f, .wd = 0.04f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    double *t = malloc(sizeof(double) * (size_t)steps);
    for (int s = 0; s < warmup + steps; s++) {
        double t0 = now();
        be->ops->zero(be, g, bytes);
        for (int i = 0; i < ng; i++) {
            dx_vit_run run = {.train = 1, .seed = 1, .step = (uint64_t)s, .group = i};
            dx_vit_forward(&m, be, w, &acts[i], img[i], NULL, &run, &err);
            dx_vit_backward(&m, be, w, g, &acts[i], &err);
        }
        dx_adamw_step(be, seg, nseg, w, g, am, av, &hp, s + 1);
        be->ops->sync(be);
        if (s >= warmup) t[s - warmup] = now() - t0;
    }
    double med = median(t, steps);
    double gflops = flop / med / 1e9;
    printf("{\"impl\":\"%s\",\"device\":\"%s\",\"config\":\"%s\",\"arch\":\"%s\",\"batch\":%d,\"threads\":%d,"
           "\"step_s_median\":%.4f,\"img_per_s\":%.3f,\"gflop_per_img\":%.2f,\"gflop_per_s\":%.1f,"
           "\"gemm_peak_gflop_per_s\":%.1f,\"fraction_of_gemm_peak\":%.3f}\n",
           be->precision == DX_PREC_BF16 ? "dinox-bf16" : "dinox", dev_label, name, arch, batch, be->nthreads, med, batch / med, flop / batch / 1e9, gflops, peak,
           peak > 0 ? gflops / peak : 0);
    fflush(stdout);
    free(t);
    for (int i = 0; i < ng; i++) {
        dx_vit_acts_free(&acts[i], be);
        be->ops->free(be, img[i]);
    }
    be->ops->free(be, w);
    be->ops->free(be, seg);
    be->ops->free(be, g);
    be->ops->free(be, am);
    be->ops->free(be, av);
    dx_vit_free(&m);
}

static void run_dinov3(dx_backend *be, const char *arch, int batch, int gsize, int lsize, int steps, int warmup,
                       int gram_scale, int micro_batch, int recompute, double peak) {
    dx_err err;
    dx_ssl_config c;
    memset(&c, 0, sizeof c);
    dx_vit_config_named(&c.vit, arch, &err);
    c.vit.drop_path = 0.1f;
    c.vit.rope_rescale = 2.0f;
    c.dino_head = (dx_head_config){.hidden = 2048, .bottleneck = 256, .prototypes = 65536, .nlayers = 3};
    c.ibot_head = c.dino_head;
    c.batch = batch;
    c.micro_batch = micro_batch;
    c.ibot_recompute = recompute;
    c.n_global = 2;
    c.n_local = 8;
    c.global_size = gsize;
    c.local_size = lsize;
    c.use_gram = 1;
    c.gram_img_level = 1;
    if (be->precision == DX_PREC_BF16) c.student_acts = DX_ACTS_BF16; /* as the trainer: bf16 storage */
    c.gram_size = gsize * gram_scale;
    c.w_dino = 1;
    c.w_koleo = 0.1f;
    c.w_ibot = 1;
    c.student_temp = 0.1f;
    c.sk_iters = 3;
    c.clip_grad = 3;
    c.beta1 = 0.9f;
    c.beta2 = 0.999f;
    c.eps = 1e-8f;
    c.layer_decay = 0.9f;
    c.patch_embed_lr_mult = 0.2f;
    c.seed = 1;
    dx_ssl s;
    if (dx_ssl_init(&s, &c, be, &err) || dx_ssl_init_weights(&s, be, &err)) {
        fprintf(stderr, "dinov3: %s\n", err.msg);
        return;
    }
    const int G = 2 * c.batch, L = c.n_local * c.batch, Hp = c.global_size / c.vit.patch;
    size_t ng = (size_t)G * 3 * gsize * gsize, nl = (size_t)L * 3 * lsize * lsize, ngr = (size_t)G * 3 * c.gram_size * c.gram_size;
    float *gl = malloc(ng * sizeof(float)), *lc = malloc(nl * sizeof(float)), *gr = malloc(ngr * sizeof(float));
    dx_rng r;
    dx_rng_init(&r, 3, DX_RNG_TEST, 0, 0);
    for (size_t i = 0; i < ng; i++) gl[i] = (float)dx_rng_normal(&r);
    for (size_t i = 0; i < nl; i++) lc[i] = (float)dx_rng_normal(&r);
    for (size_t i = 0; i < ngr; i++) gr[i] = (float)dx_rng_normal(&r);
    dx_ssl_sched sc = {.lr = 1e-4f, .last_layer_lr = 1e-4f, .wd = 0.04f, .momentum = 0.994f, .teacher_temp = 0.07f,
                       .w_gram = 1.0f, .lambda_local = 1.0f};
    double *t = malloc(sizeof(double) * (size_t)steps);
    for (int st = 0; st < warmup + steps; st++) {
        dx_ibot_masks mk;
        dx_ibot_masks_make(&mk, G, Hp, Hp, 0.5, 0.1, 0.5, 1, (uint64_t)st, &err);
        dx_ssl_batch b = {.global = gl, .local = lc, .gram = gram_scale > 1 ? gr : NULL, .masks = mk.mask};
        dx_ssl_metrics m;
        double t0 = now();
        dx_ssl_step(&s, be, &b, st, &sc, &m, &err);
        be->ops->sync(be);
        if (st >= warmup) t[st - warmup] = now() - t0;
        dx_ibot_masks_free(&mk);
    }
    double med = median(t, steps), flop = dx_ssl_flops_per_step(&c);
    printf("{\"impl\":\"%s\",\"device\":\"%s\",\"config\":\"dinov3\",\"arch\":\"%s\",\"batch\":%d,\"threads\":%d,"
           "\"micro_batch\":%d,\"ibot_recompute\":%d,\"gram_size\":%d,\"step_s_median\":%.4f,\"img_per_s\":%.3f,\"gflop_per_img\":%.2f,"
           "\"gflop_per_s\":%.1f,\"gemm_peak_gflop_per_s\":%.1f,\"fraction_of_gemm_peak\":%.3f}\n",
           be->precision == DX_PREC_BF16 ? "dinox-bf16" : "dinox", dev_label, arch, c.batch, be->nthreads, dx_ssl_micro_batch(&c), recompute, c.gram_size, med, c.batch / med, flop / c.batch / 1e9, flop / med / 1e9, peak,
           peak > 0 ? flop / med / 1e9 / peak : 0);
    fflush(stdout);
    free(t); free(gl); free(lc); free(gr);
    dx_ssl_free(&s, be);
}

int main(int argc, char **argv) {
    const char *which = "all", *arch = "vit_small";
    int steps = 5, warmup = 1, threads = 0, gram_scale = 1, precision = DX_PREC_FP32, batch = 8, micro_batch = 0, recompute = 0, gsize = 224,
        lsize = 96;
    const char *device = "cpu";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--arch") && i + 1 < argc) arch = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--gram-scale") && i + 1 < argc) gram_scale = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc) precision = !strcmp(argv[++i], "bf16");
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) device = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--micro-batch") && i + 1 < argc) micro_batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ibot-recompute")) recompute = 1;
        else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
            if (sscanf(argv[++i], "%d/%d", &gsize, &lsize) != 2) {
                fprintf(stderr, "--sizes wants G/L, e.g. 512/112\n");
                return 1;
            }
        }
        else which = argv[i];
    }
    if (steps < 1) steps = 1;
    if (batch < 1 || gsize < 16 || lsize < 16) {
        fprintf(stderr, "--batch must be >= 1 and --sizes at least 16/16\n");
        return 1;
    }
    dx_err err;
    dx_backend *be;
    dx_backend_params bp = {0};
    if (dx_backend_parse_device(device, &bp, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    bp.nthreads = threads;
    bp.precision = precision;
    snprintf(dev_label, sizeof dev_label, "%s", device);
    if (dx_backend_create(&be, &bp, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    dx_vit_config cfg;
    if (dx_vit_config_named(&cfg, arch, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    /* the GEMM peak on the global crops' token count (16 x 201 at batch 8, 224 px) */
    int ptok = (gsize / cfg.patch) * (gsize / cfg.patch) + 5, mrows = 2 * batch * ptok;
    if (mrows > 16384) mrows = 16384; /* the GEMM peak is reached well before (and the buffers stay small) */
    double peak = gemm_peak(be, mrows, cfg.dim, cfg.ffn_hidden);
    if (!strcmp(which, "all") || !strcmp(which, "multicrop")) {
        group g[2] = {{2 * batch, gsize}, {8 * batch, lsize}};
        run_config(be, "multicrop", arch, g, 2, batch, steps, warmup, peak);
    }
    if (!strcmp(which, "all") || !strcmp(which, "single")) {
        group g[1] = {{32, 112}};
        run_config(be, "single", arch, g, 1, 32, steps, warmup, peak);
    }
    if (!strcmp(which, "all") || !strcmp(which, "dinov3")) run_dinov3(be, arch, batch, gsize, lsize, steps, warmup, gram_scale, micro_batch, recompute, peak);
    dx_backend_destroy(be);
    return 0;
}
