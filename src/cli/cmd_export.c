/* cmd_export.c - `dinox export`: the EMA-teacher backbone of a run as a
 * safetensors file with the DINOv3 state-dict names (what `dinox embed`,
 * `dinox eval` and PyTorch load), timm's names, or a Hugging Face
 * transformers folder. The work is dx_export_backbone
 * (src/train/export.c); this file parses options and prints the result. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "train/export.h"

static void export_usage(FILE *f) {
    fprintf(f,
            "usage: dinox export RUN_DIR [--checkpoint N | --checkpoint FILE] [--student] [--format F]\n"
            "                    --out backbone.safetensors   (--format hf: --out FOLDER)\n"
            "\n"
            "Writes the EMA-teacher backbone (default) or the student backbone of a run's latest\n"
            "(or given) checkpoint, float32. Metadata: source, step, version, the model's shape\n"
            "(model.*), its preprocessing (preprocessing.*: 2.5D, HU windows, normalisation) and\n"
            "the timm model that takes it (timm.model, timm.kwargs). See docs/embed.md.\n"
            "\n"
            "  --format safetensors  DINOv3 key names incl. rope_embed.periods and qkv.bias_mask:\n"
            "                        what dinox embed/eval/train --init, DINOv3's code and timm's\n"
            "                        pretrained loader read (default)\n"
            "  --format timm         timm's own key names (reg_token, gamma_1, q_bias/v_bias):\n"
            "                        model.load_state_dict(load_file(W)) with strict=True\n"
            "  --format hf           a folder (config.json, model.safetensors, README.md) that\n"
            "                        transformers' DINOv3ViTModel.from_pretrained(FOLDER) loads\n");
}

int cmd_export(int argc, char **argv) {
    const char *out = NULL, *which = NULL, *format = NULL;
    int student = 0;
    enum { O_OUT = 1000, O_CKPT, O_STUDENT, O_FORMAT, O_HELP };
    static const struct option opts[] = {{"out", required_argument, 0, O_OUT},
                                         {"checkpoint", required_argument, 0, O_CKPT},
                                         {"student", no_argument, 0, O_STUDENT},
                                         {"format", required_argument, 0, O_FORMAT},
                                         {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        switch (c) {
        case O_OUT: out = optarg; break;
        case O_CKPT: which = optarg; break;
        case O_STUDENT: student = 1; break;
        case O_FORMAT:
            if (strcmp(optarg, "safetensors") && strcmp(optarg, "timm") && strcmp(optarg, "hf")) {
                fprintf(stderr, "dinox export: --format %s: safetensors, timm or hf\n", optarg);
                return 2;
            }
            format = optarg;
            break;
        case 'h': case O_HELP: export_usage(stdout); return 0;
        default: export_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1 || !out) {
        fprintf(stderr, "dinox export: %s\n\n",
                optind == argc ? "missing RUN_DIR" : optind < argc - 1 ? "one RUN_DIR only" : "missing --out W.safetensors (or FOLDER)");
        export_usage(stderr);
        return 2;
    }
    dx_export_opts o = {.run_dir = argv[optind], .checkpoint = which, .student = student, .out = out,
                         .format = format};
    dx_export_info info;
    dx_err err = {0};
    if (dx_export_backbone(&o, &info, &err)) {
        fprintf(stderr, "dinox export: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "dinox export: %s backbone of %s (step %lld) -> %s\n", student ? "student" : "EMA-teacher",
            info.checkpoint, (long long)info.step, out);
    return 0;
}
