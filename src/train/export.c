/* export.c - see export.h. */
#include "train/export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dx_file.h"
#include "io/checkpoint.h"
#include "nn/vit.h"
#include "nn/weights.h"
#include "train/config.h"
#include "train/trainer.h"

dx_status dx_export_backbone(const dx_export_opts *o, dx_export_info *info, dx_err *err) {
    dx_config cfg;
    dx_ssl_config sc;
    dx_vit m;
    int have_m = 0, have_ck = 0;
    dx_ckpt ck;
    float *w = NULL;
    dx_status s;
    char path[1200], ckdir[1200];
    snprintf(path, sizeof path, "%s/config.yaml", o->run_dir);
    snprintf(ckdir, sizeof ckdir, "%s/checkpoints", o->run_dir);
    if ((s = dx_config_resolve(&cfg, path, NULL, 0, err))) goto done;
    if ((s = dx_train_ssl_config(&cfg, &sc, err))) goto done;
    if ((s = dx_vit_init(&m, &sc.vit, err))) goto done;
    have_m = 1;
    if (o->checkpoint) {
        char *end;
        long long n = strtoll(o->checkpoint, &end, 10);
        if (*end == '\0') snprintf(path, sizeof path, "%s/ckpt-%010lld.safetensors", ckdir, n);
        else snprintf(path, sizeof path, "%s", o->checkpoint);
        s = dx_ckpt_open(&ck, path, err);
    } else {
        s = dx_ckpt_open_latest(&ck, ckdir, err);
    }
    if (s) goto done;
    have_ck = 1;
    /* the output never replaces a checkpoint nor lands where retention deletes files */
    if (dx_same_file(o->out, ck.path) || dx_in_dir(o->out, ckdir)) {
        s = dx_fail(err, DX_EINVAL, "--out %s is inside %s: a checkpoint would be replaced; write the backbone "
                    "elsewhere (e.g. %s/backbone.safetensors)", o->out, ckdir, o->run_dir);
        goto done;
    }
    w = calloc(m.tab.total, sizeof(float));
    if (!w) {
        s = dx_fail(err, DX_ENOMEM, "export buffer");
        goto done;
    }
    if ((s = dx_ckpt_load_table(&ck, o->student ? "student.backbone" : "teacher.backbone", &m.tab, w, err)))
        goto done;
    char step[32], meta_arch[64];
    snprintf(step, sizeof step, "%lld", (long long)ck.step);
    snprintf(meta_arch, sizeof meta_arch, "%s", sc.vit.arch);
    const char *meta[] = {"format", "dinox-backbone", "source", o->student ? "student" : "ema_teacher",
                          "step", step, "arch", meta_arch};
    if ((s = dx_weights_save_host(&m.tab, w, o->out, "", 1, meta, 4, err))) goto done;
    if (info) {
        snprintf(info->checkpoint, sizeof info->checkpoint, "%s", ck.path);
        info->step = ck.step;
    }
done:
    if (have_ck) dx_ckpt_close(&ck);
    if (have_m) dx_vit_free(&m);
    free(w);
    return s;
}
