/* export.c - see export.h. */
#include "train/export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dx_file.h"
#include "core/dx_version.h"
#include "io/checkpoint.h"
#include "nn/backbone_meta.h"
#include "nn/vit.h"
#include "nn/weights.h"
#include "train/config.h"
#include "train/export_hf.h"
#include "train/export_timm.h"
#include "train/trainer.h"

void dx_export_meta(const dx_config *cfg, const dx_vit_config *vit, const char *source, int64_t step,
                    dx_backbone_meta *m) {
    memset(m, 0, sizeof *m);
    snprintf(m->format, sizeof m->format, "dinox-backbone");
    snprintf(m->source, sizeof m->source, "%s", source);
    snprintf(m->version, sizeof m->version, "%s", dx_version_string());
    m->step = step;
    m->has_model = 1;
    m->model = *vit;
    m->has_prep = 1;
    m->prep.stack25d = cfg->data.stack25d;
    m->prep.n_windows = cfg->data.n_windows < DX_META_MAX_WINDOWS ? cfg->data.n_windows : DX_META_MAX_WINDOWS;
    for (int i = 0; i < m->prep.n_windows; i++) {
        m->prep.width[i] = cfg->data.windows[i].width;
        m->prep.level[i] = cfg->data.windows[i].level;
    }
    m->prep.norm_mean = cfg->data.norm_mean;
    m->prep.norm_std = cfg->data.norm_std;
    m->prep.crop_size = cfg->crops.global_size;
}

dx_status dx_export_backbone(const dx_export_opts *o, dx_export_info *info, dx_err *err) {
    dx_config cfg;
    dx_ssl_config sc;
    dx_vit m;
    int have_m = 0, have_ck = 0;
    dx_ckpt ck;
    float *w = NULL;
    dx_status s;
    char path[1200], ckdir[1200];
    const int timm = o->format && !strcmp(o->format, "timm"), hf = o->format && !strcmp(o->format, "hf");
    if (o->format && !timm && !hf && strcmp(o->format, "safetensors"))
        return dx_fail(err, DX_EINVAL, "--format %s: safetensors (DINOv3 names, what dinox reads), timm or hf",
                       o->format);
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
    dx_backbone_meta bm;
    dx_export_meta(&cfg, &sc.vit, o->student ? "student" : "ema_teacher", ck.step, &bm);
    dx_meta_pairs mp;
    dx_backbone_meta_pairs(&bm, &mp);
    if (hf) {
        if ((s = dx_export_hf_write(&m, w, &bm, o->out, err))) goto done;
    } else if (timm) {
        snprintf(bm.format, sizeof bm.format, "%s", DX_META_FORMAT_TIMM);
        dx_backbone_meta_pairs(&bm, &mp);
        if ((s = dx_export_timm_write(&m, w, o->out, mp.kv, mp.n, err))) goto done;
    } else if ((s = dx_weights_save_host(&m.tab, w, o->out, "", 1, mp.kv, mp.n, err))) {
        goto done;
    }
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
