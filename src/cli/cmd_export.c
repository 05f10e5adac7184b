/* cmd_export.c - `dinox export`: the EMA-teacher backbone of a run as a
 * safetensors file with the DINOv3 state-dict names (what `dinox embed`,
 * `dinox eval` and PyTorch load). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/registry.h"
#include "cli/cli.h"
#include "core/dx_file.h"
#include "nn/weights.h"
#include "io/checkpoint.h"
#include "train/trainer.h"

static void export_usage(FILE *f) {
    fprintf(f,
            "usage: dinox export RUN_DIR [--checkpoint N | --checkpoint FILE] [--student] --out backbone.safetensors\n"
            "\n"
            "Writes the EMA-teacher backbone (default) or the student backbone of a run's latest\n"
            "(or given) checkpoint, float32, DINOv3 key names incl. rope_embed.periods and\n"
            "qkv.bias_mask; metadata records the architecture and step.\n");
}

int cmd_export(int argc, char **argv) {
    const char *out = NULL, *which = NULL;
    int student = 0;
    enum { O_OUT = 1000, O_CKPT, O_STUDENT, O_HELP };
    static const struct option opts[] = {{"out", required_argument, 0, O_OUT},
                                         {"checkpoint", required_argument, 0, O_CKPT},
                                         {"student", no_argument, 0, O_STUDENT},
                                         {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0}};
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        switch (c) {
        case O_OUT: out = optarg; break;
        case O_CKPT: which = optarg; break;
        case O_STUDENT: student = 1; break;
        case 'h': case O_HELP: export_usage(stdout); return 0;
        default: export_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1 || !out) {
        fprintf(stderr, "dinox export: %s\n\n",
                optind == argc ? "missing RUN_DIR" : optind < argc - 1 ? "one RUN_DIR only" : "missing --out W.safetensors");
        export_usage(stderr);
        return 2;
    }
    const char *run = argv[optind];
    dx_err err = {0};
    dx_config cfg;
    dx_ssl_config sc;
    dx_vit m;
    int have_m = 0;
    dx_ckpt ck;
    int have_ck = 0;
    float *w = NULL;
    char path[1200], ckdir[1200];
    snprintf(path, sizeof path, "%s/config.yaml", run);
    snprintf(ckdir, sizeof ckdir, "%s/checkpoints", run);
    if (dx_config_resolve(&cfg, path, NULL, 0, &err)) goto fail;
    if (dx_train_ssl_config(&cfg, &sc, &err)) goto fail;
    if (dx_vit_init(&m, &sc.vit, &err)) goto fail;
    have_m = 1;
    if (which) {
        char *end;
        long long n = strtoll(which, &end, 10);
        if (*end == '\0') snprintf(path, sizeof path, "%s/ckpt-%010lld.safetensors", ckdir, n);
        else snprintf(path, sizeof path, "%s", which);
        if (dx_ckpt_open(&ck, path, &err)) goto fail;
    } else if (dx_ckpt_open_latest(&ck, ckdir, &err)) {
        goto fail;
    }
    have_ck = 1;
    /* the output never replaces a checkpoint nor lands where retention deletes files */
    if (dx_same_file(out, ck.path) || dx_in_dir(out, ckdir)) {
        dx_fail(&err, DX_EINVAL, "--out %s is inside %s: a checkpoint would be replaced; write the backbone "
                "elsewhere (e.g. %s/backbone.safetensors)", out, ckdir, run);
        goto fail;
    }
    w = calloc(m.tab.total, sizeof(float));
    if (!w) { dx_fail(&err, DX_ENOMEM, "export buffer"); goto fail; }
    if (dx_ckpt_load_table(&ck, student ? "student.backbone" : "teacher.backbone", &m.tab, w, &err)) goto fail;
    dx_backend *be;
    if (dx_backend_open(&be, NULL, 1, &err)) goto fail;
    char step[32], meta_arch[64];
    snprintf(step, sizeof step, "%lld", (long long)ck.step);
    snprintf(meta_arch, sizeof meta_arch, "%s", sc.vit.arch);
    const char *meta[] = {"format", "dinox-backbone", "source", student ? "student" : "ema_teacher",
                          "step", step, "arch", meta_arch};
    float *dw = be->ops->alloc(be, m.tab.total * sizeof(float));
    dx_status st = dw ? DX_OK : dx_fail(&err, DX_ENOMEM, "export buffer");
    if (dw) {
        be->ops->upload(be, dw, w, m.tab.total * sizeof(float));
        st = dx_weights_save(&m.tab, be, dw, out, "", 1, meta, 4, &err);
        be->ops->free(be, dw);
    }
    dx_backend_destroy(be);
    if (st) goto fail;
    fprintf(stderr, "dinox export: %s backbone of %s (step %lld) -> %s\n", student ? "student" : "EMA-teacher",
            ck.path, (long long)ck.step, out);
    dx_ckpt_close(&ck);
    dx_vit_free(&m);
    free(w);
    return 0;
fail:
    fprintf(stderr, "dinox export: %s\n", err.msg);
    if (have_ck) dx_ckpt_close(&ck);
    if (have_m) dx_vit_free(&m);
    free(w);
    return 1;
}
