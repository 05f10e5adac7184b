/* cmd_config.c - `dinox config import`: a DINOv3 training YAML as a dinox
 * config. The work is dx_config_import_file (src/train/config_import.c),
 * which reads, reports and writes; this file parses options. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/dx_file.h"
#include "train/config.h"
#include "train/config_import.h"

static void config_usage(FILE *f) {
    fprintf(f,
            "usage: dinox config import DINOV3.yaml --out dinox.yaml [-c BASE.yaml] [--gpus N] [--strict]\n"
            "       dinox config table     (the DINOv3 -> dinox key mapping as a markdown table)\n"
            "\n"
            "Reads a facebookresearch/dinov3 training config (MODEL, student, teacher, dino,\n"
            "ibot, gram, optim, crops, train, checkpointing, ...) and writes the dinox config\n"
            "it amounts to: BASE (default: dinox's defaults; e.g. configs/vits16_lidc.yaml for\n"
            "the CT data.* settings) with every mapped key applied. One line per input key says\n"
            "what became of it: mapped (-> dinox key = value), same (dinox behaves so without a\n"
            "key), ignored (meaningless here: device, dataset path, compile, RGB statistics, ...),\n"
            "UNSUPPORTED (a recipe choice dinox cannot make; dropped) or unknown. The mapping\n"
            "table is in docs/config.md.\n"
            "\n"
            "  --gpus N     DINOv3's world size: train.batch_size = batch_size_per_gpu x N (1)\n"
            "  --strict     exit 3 (writing nothing) when a key is unsupported or unknown\n");
}

int cmd_config(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "table")) { /* the mapping table of docs/config.md */
        dx_config_import_write_md(stdout);
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "import")) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            config_usage(stdout);
            return 0;
        }
        config_usage(stderr);
        return 2;
    }
    const char *out = NULL, *base = NULL;
    long long gpus = 1;
    int strict = 0;
    enum { O_OUT = 1000, O_GPUS, O_STRICT, O_HELP };
    static const struct option opts[] = {{"out", required_argument, 0, O_OUT}, {"config", required_argument, 0, 'c'},
                                         {"gpus", required_argument, 0, O_GPUS}, {"strict", no_argument, 0, O_STRICT},
                                         {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0}};
    optind = 1;
    argc--, argv++;
    for (int c; (c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1;) {
        switch (c) {
        case O_OUT: out = optarg; break;
        case 'c': base = optarg; break;
        case O_GPUS:
            if (cli_int("config import", opts, c, optarg, 1, 1 << 20, &gpus)) return 2;
            break;
        case O_STRICT: strict = 1; break;
        case 'h': case O_HELP: config_usage(stdout); return 0;
        default: config_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1 || !out) {
        fprintf(stderr, "dinox config import: %s\n\n", optind >= argc ? "missing DINOV3.yaml" : !out ? "missing --out" : "one input only");
        config_usage(stderr);
        return 2;
    }
    const char *in = argv[optind];
    if (dx_same_file(out, in) || (base && dx_same_file(out, base))) { /* a usage error: exit 2 */
        fprintf(stderr, "dinox config import: --out %s would replace an input\n", out);
        return 2;
    }
    dx_config_import_opts o = {.in = in, .base = base, .out = out, .gpus = (int)gpus, .strict = strict};
    dx_import_counts n = {0};
    dx_err err = {0};
    int written = 0;
    dx_status s = dx_config_import_file(&o, stdout, &n, &written, &err);
    if (s) {
        fprintf(stderr, "dinox config import: %s\n", err.msg);
        return 1;
    }
    if (!written) {
        fprintf(stderr, "dinox config import: --strict: %d unsupported, %d unknown key(s); nothing written\n",
                n.unsupported, n.unknown);
        return 3;
    }
    printf("wrote %s: dinox train -c %s --store STORE --out RUN_DIR\n", out, out);
    return 0;
}
