/* cmd_embed.c - `dinox embed`: run a backbone in eval mode on a .npy batch.
 *
 * Input float32 [N, 3, H, W]; output float32 [N, 1+R+P, D] = the final-norm
 * tokens (cls, registers, patches in row-major patch order). This is the
 * interface by which the backbone is compared with other implementations:
 * keep it stable (docs/embed.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/registry.h"
#include "backend/dx_backend.h"
#include "cli/cli.h"
#include "core/dx_file.h"
#include "io/dx_npy.h"
#include "nn/weights.h"
#include "nn/vit.h"

static void embed_usage(FILE *f) {
    fprintf(f,
            "usage: dinox embed --weights W.safetensors --input X.npy --output Y.npy [options]\n"
            "\n"
            "Runs the DINOv3 ViT backbone in eval mode on X (float32 [N,3,H,W], H and W\n"
            "multiples of the patch size; a remainder is cropped as by the strided conv)\n"
            "and writes the final-norm tokens Y (float32 [N, 1+R+P, D]: cls, registers,\n"
            "patches row-major).\n"
            "\n"
            "  --arch NAME        vit_tiny | vit_small | vit_base | vit_large | vit_giant (default vit_small)\n"
            "                     = the released DINOv3 configuration unless overridden below\n"
            "  --patch P          patch size (16)\n"
            "  --registers R      register tokens (4)\n"
            "  --dim D --depth L --heads H   custom shape\n"
            "  --ffn mlp|swiglu   FFN kind; --ffn-hidden F its width\n"
            "  --ln-eps E         LayerNorm eps (1e-5)\n"
            "  --no-mask-k-bias   the file's qkv bias applies to keys too\n"
            "  --batch B          images per forward pass (8)\n"
            "  --threads T        CPU threads (default: all)\n"
            "  --device DEV       cpu, cuda[:N] or hip[:N] (default cpu; `dinox doctor` lists them)\n");
}

int cmd_embed(int argc, char **argv) {
    const char *weights = NULL, *input = NULL, *output = NULL, *arch = "vit_small";
    const char *device = NULL;
    int patch = 0, registers = -1, dim = 0, depth = 0, heads = 0, ffn_hidden = 0, batch = 8, threads = 0;
    int no_mask_k_bias = 0;
    const char *ffn = NULL;
    float ln_eps = 0;
    enum { O_W = 1000, O_IN, O_OUT, O_ARCH, O_PATCH, O_REG, O_DIM, O_DEPTH, O_HEADS, O_FFN, O_FFNH,
           O_EPS, O_NOMASK, O_BATCH, O_THREADS, O_HELP, O_DEVICE };
    static const struct option opts[] = {
        {"weights", required_argument, 0, O_W}, {"input", required_argument, 0, O_IN},
        {"output", required_argument, 0, O_OUT}, {"arch", required_argument, 0, O_ARCH},
        {"patch", required_argument, 0, O_PATCH}, {"registers", required_argument, 0, O_REG},
        {"dim", required_argument, 0, O_DIM}, {"depth", required_argument, 0, O_DEPTH},
        {"heads", required_argument, 0, O_HEADS}, {"ffn", required_argument, 0, O_FFN},
        {"ffn-hidden", required_argument, 0, O_FFNH}, {"ln-eps", required_argument, 0, O_EPS},
        {"no-mask-k-bias", no_argument, 0, O_NOMASK}, {"batch", required_argument, 0, O_BATCH},
        {"threads", required_argument, 0, O_THREADS}, {"help", no_argument, 0, O_HELP},
        {"device", required_argument, 0, O_DEVICE}, {0, 0, 0, 0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        switch (c) {
        case O_W: weights = optarg; break;
        case O_IN: input = optarg; break;
        case O_OUT: output = optarg; break;
        case O_ARCH: arch = optarg; break;
        case O_PATCH: CLI_INT("embed", patch, 1, 1024); break;
        case O_REG: CLI_INT("embed", registers, 0, 1024); break;
        case O_DIM: CLI_INT("embed", dim, 1, 1 << 16); break;
        case O_DEPTH: CLI_INT("embed", depth, 1, 1024); break;
        case O_HEADS: CLI_INT("embed", heads, 1, 1024); break;
        case O_FFN: ffn = optarg; break;
        case O_FFNH: CLI_INT("embed", ffn_hidden, 1, 1 << 20); break;
        case O_EPS: CLI_DOUBLE("embed", ln_eps, 1e-12, 1); break;
        case O_NOMASK: no_mask_k_bias = 1; break;
        case O_BATCH: CLI_INT("embed", batch, 1, 1 << 20); break;
        case O_THREADS: CLI_INT("embed", threads, 0, 4096); break;
        case O_DEVICE: device = optarg; break;
        case 'h': case O_HELP: embed_usage(stdout); return 0;
        default: embed_usage(stderr); return 2;
        }
    }
    if (!weights || !input || !output) {
        fprintf(stderr, "dinox embed: missing %s\n\n",
                !weights ? "--weights W.safetensors" : !input ? "--input X.npy" : "--output OUT.npy");
        embed_usage(stderr);
        return 2;
    }
    if (dx_same_file(output, weights) || dx_same_file(output, input)) {
        fprintf(stderr, "dinox embed: --output %s is the same file as --%s: refusing to replace an input\n", output,
                dx_same_file(output, weights) ? "weights" : "input");
        return 2;
    }
    dx_err err = {0};
    dx_vit_config cfg;
    dx_backend *be = NULL;
    dx_vit m;
    int have_model = 0;
    float *x = NULL, *w = NULL, *img = NULL, *out = NULL;
    dx_vit_acts acts = {0};
    int64_t shape[8];
    int ndim;
    if (dx_vit_config_named(&cfg, arch, &err)) goto fail;
    dx_vit_config_override_shape(&cfg, patch, registers, dim, depth, heads);
    if (ffn) {
        if (!strcmp(ffn, "swiglu")) { cfg.ffn = DX_FFN_SWIGLU; cfg.ffn_hidden = dx_swiglu_width(4 * cfg.dim, 8); }
        else if (!strcmp(ffn, "mlp")) cfg.ffn = DX_FFN_MLP;
        else { fprintf(stderr, "dinox embed: --ffn must be mlp or swiglu\n"); return 2; }
    }
    if (ffn_hidden) cfg.ffn_hidden = ffn_hidden;
    if (ln_eps > 0) cfg.ln_eps = ln_eps;
    if (no_mask_k_bias) cfg.mask_k_bias = 0;

    if (dx_backend_open(&be, device, threads, &err)) goto fail;
    if (dx_vit_init(&m, &cfg, &err)) goto fail;
    have_model = 1;
    w = be->ops->alloc(be, m.tab.total * sizeof(float));
    if (!w) { dx_fail(&err, DX_ENOMEM, "weights"); goto fail; }
    /* buffers the file lacks (periods, k-bias mask) keep their computed values */
    if (dx_vit_init_weights(&m, be, w, 0, &err)) goto fail;
    if (dx_weights_load(&m.tab, be, w, weights, "", DX_LOAD_BUFFERS_OPTIONAL, &err)) goto fail;
    if (dx_npy_read_f32(input, &x, shape, &ndim, &err)) goto fail;
    if (ndim != 4 || shape[1] != cfg.in_chans) {
        dx_fail(&err, DX_ESHAPE, "%s: expected float32 [N, %d, H, W], got %d dims", input, cfg.in_chans, ndim);
        goto fail;
    }
    const int N = (int)shape[0], H = (int)shape[2], W = (int)shape[3];
    const int B = batch < N ? batch : N;
    if (dx_vit_acts_init(&acts, &m, be, B, H, W, 0, &err)) goto fail;
    const size_t img_elems = (size_t)cfg.in_chans * H * W, tok = (size_t)acts.T * cfg.dim;
    out = malloc((size_t)N * tok * sizeof(float));
    img = be->ops->alloc(be, (size_t)B * img_elems * sizeof(float));
    if (!out || !img) { dx_fail(&err, DX_ENOMEM, "output buffers"); goto fail; }
    for (int n0 = 0; n0 < N; n0 += B) {
        int nb = N - n0 < B ? N - n0 : B;
        if (nb != acts.N) { /* last partial batch */
            dx_vit_acts_free(&acts, be);
            if (dx_vit_acts_init(&acts, &m, be, nb, H, W, 0, &err)) goto fail;
        }
        be->ops->upload(be, img, x + (size_t)n0 * img_elems, (size_t)nb * img_elems * sizeof(float));
        if (dx_vit_forward(&m, be, w, &acts, img, NULL, NULL, &err)) goto fail;
        be->ops->download(be, out + (size_t)n0 * tok, acts.out, (size_t)nb * tok * sizeof(float));
    }
    int64_t oshape[3] = {N, acts.T, cfg.dim};
    if (dx_npy_write(output, "<f4", out, oshape, 3, &err)) goto fail;
    fprintf(stderr, "dinox embed: %d images %dx%d -> %s [%d, %d, %d]\n", N, H, W, output, N, acts.T, cfg.dim);
    dx_vit_acts_free(&acts, be);
    be->ops->free(be, img);
    be->ops->free(be, w);
    dx_vit_free(&m);
    dx_backend_destroy(be);
    free(x);
    free(out);
    return 0;
fail:
    fprintf(stderr, "dinox embed: %s\n", err.msg);
    if (be) {
        if (acts.buf) dx_vit_acts_free(&acts, be);
        if (img) be->ops->free(be, img);
        if (w) be->ops->free(be, w);
        dx_backend_destroy(be);
    }
    if (have_model) dx_vit_free(&m);
    free(x);
    free(out);
    return 1;
}
