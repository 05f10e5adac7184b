/* cmd_embed.c - `dinox embed`: run a backbone in eval mode on a .npy batch.
 *
 * Input float32 [N, 3, H, W]; output float32 [N, 1+R+P, D] = the final-norm
 * tokens (cls, registers, patches in row-major patch order). This is the
 * interface by which the backbone is compared with other implementations:
 * keep it stable (docs/embed.md). The work is dx_embed_run (src/eval/embed.c);
 * this file parses options and prints the result. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/dx_file.h"
#include "eval/embed.h"

static void embed_usage(FILE *f) {
    fprintf(f,
            "usage: dinox embed --weights W.safetensors --input X.npy --output Y.npy [options]\n"
            "\n"
            "Runs the DINOv3 ViT backbone in eval mode on X (float32 [N,3,H,W], H and W\n"
            "multiples of the patch size; a remainder is cropped as by the strided conv)\n"
            "and writes the final-norm tokens Y (float32 [N, 1+R+P, D]: cls, registers,\n"
            "patches row-major).\n"
            "\n"
            "The shape comes from W's metadata (model.*, written by `dinox export` and\n"
            "tools/convert_dinov3_pth.py); options that disagree with it are refused.\n"
            "For a file without it:\n"
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
    dx_embed_opts o;
    dx_embed_opts_default(&o);
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
        case O_W: o.weights = optarg; break;
        case O_IN: o.input = optarg; break;
        case O_OUT: o.output = optarg; break;
        case O_ARCH: o.arch = optarg; break;
        case O_PATCH: CLI_INT("embed", o.patch, 1, 1024); break;
        case O_REG: CLI_INT("embed", o.registers, 0, 1024); break;
        case O_DIM: CLI_INT("embed", o.dim, 1, 1 << 16); break;
        case O_DEPTH: CLI_INT("embed", o.depth, 1, 1024); break;
        case O_HEADS: CLI_INT("embed", o.heads, 1, 1024); break;
        case O_FFN: o.ffn = optarg; break;
        case O_FFNH: CLI_INT("embed", o.ffn_hidden, 1, 1 << 20); break;
        case O_EPS: CLI_DOUBLE("embed", o.ln_eps, 1e-12, 1); break;
        case O_NOMASK: o.no_mask_k_bias = 1; break;
        case O_BATCH: CLI_INT("embed", o.batch, 1, 1 << 20); break;
        case O_THREADS: CLI_INT("embed", o.threads, 0, 4096); break;
        case O_DEVICE: o.device = optarg; break;
        case 'h': case O_HELP: embed_usage(stdout); return 0;
        default: embed_usage(stderr); return 2;
        }
    }
    if (!o.weights || !o.input || !o.output) {
        fprintf(stderr, "dinox embed: missing %s\n\n",
                !o.weights ? "--weights W.safetensors" : !o.input ? "--input X.npy" : "--output OUT.npy");
        embed_usage(stderr);
        return 2;
    }
    if (dx_same_file(o.output, o.weights) || dx_same_file(o.output, o.input)) {
        fprintf(stderr, "dinox embed: --output %s is the same file as --%s: refusing to replace an input\n", o.output,
                dx_same_file(o.output, o.weights) ? "weights" : "input");
        return 2;
    }
    dx_err err = {0};
    dx_embed_info info;
    int bad_option = 0;
    if (dx_embed_run(&o, &info, &bad_option, &err)) {
        fprintf(stderr, "dinox embed: %s\n", err.msg);
        return bad_option ? 2 : 1;
    }
    fprintf(stderr, "dinox embed: %d images %dx%d -> %s [%d, %d, %d]\n", info.n, info.h, info.w, o.output, info.n,
            info.tokens, info.dim);
    return 0;
}
