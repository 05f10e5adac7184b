/* eval_job.c - see eval_job.h. */
#include "eval/eval_job.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "backend/registry.h"
#include "core/dx_log.h"
#include "eval/eval_tb.h"
#include "io/checkpoint.h"
#include "nn/backbone_meta.h"
#include "train/config.h"

void dx_eval_job_default(dx_eval_job *j) {
    memset(j, 0, sizeof *j);
    j->prefix = "";
    j->registers = -1;
    dx_eval_opts_default(&j->eval);
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

dx_status dx_eval_job_run(const dx_eval_job *j, int *bad_option, dx_err *err) {
    if (bad_option) *bad_option = 0;
    if (!j->store_dir || !j->out || (!j->weights && !j->run && !j->checkpoint) || (j->track && !j->run))
        return dx_fail(err, DX_EINVAL, "eval job: missing the store, the output, the backbone or (--track) the run");
    dx_eval_opts o = j->eval;
    const char *weights = j->weights, *ckpt = j->checkpoint, *prefix = j->prefix ? j->prefix : "";
    dx_config cfg;
    dx_vit_config vc;
    char path[2048], run_ckpt[2048] = "";
    const char *cfg_path = j->config;
    if (j->run) {
        snprintf(path, sizeof path, "%s/config.yaml", j->run);
        cfg_path = path;
    }
    dx_status s;
    /* a backbone file that says its shape and preprocessing needs no config */
    dx_backbone_meta meta = {.step = -1};
    if (weights && (s = dx_backbone_meta_read(weights, &meta, err))) return s;
    if (cfg_path) {
        if ((s = dx_config_resolve(&cfg, cfg_path, NULL, 0, err)) || (s = dx_config_vit(&cfg, &vc, err))) return s;
        o.crop.norm_mean = cfg.data.norm_mean;
        o.crop.norm_std = cfg.data.norm_std;
        o.crop.stack25d = cfg.data.stack25d;
    } else if (meta.has_model && !j->arch) {
        vc = meta.model;
        if (meta.has_prep) {
            o.crop.norm_mean = meta.prep.norm_mean;
            o.crop.norm_std = meta.prep.norm_std;
            o.crop.stack25d = meta.prep.stack25d;
        }
    } else if ((s = dx_vit_config_named(&vc, j->arch ? j->arch : "vit_small", err))) {
        return s;
    }
    dx_vit_config_override_shape(&vc, j->patch, j->registers, j->dim, j->depth, j->heads);
    if ((s = dx_backbone_meta_check(&meta, &vc, weights, err))) {
        if (bad_option) *bad_option = !cfg_path;
        return s;
    }
    for (int k = 0; k < j->n_also && k < DX_EVAL_MAX_ALSO; k++) {
        dx_backbone_meta am;
        if ((s = dx_backbone_meta_read(j->also[k], &am, err)) || (s = dx_backbone_meta_check(&am, &vc, j->also[k], err)))
            return s;
    }
    if (j->no25d) o.crop.stack25d = 0;
    if (o.crop.size % vc.patch) {
        if (bad_option) *bad_option = 1;
        return dx_fail(err, DX_EINVAL, "--size %d is not a multiple of the patch size %d", o.crop.size, vc.patch);
    }
    char ckdir[2100] = "";
    if (j->run) {
        snprintf(ckdir, sizeof ckdir, "%s/checkpoints", j->run);
        if (!weights && !ckpt) {
            snprintf(path, sizeof path, "%s/backbone.safetensors", j->run);
            if (file_exists(path)) weights = path;
            else {
                dx_ckpt ck;
                if ((s = dx_ckpt_open_latest(&ck, ckdir, err))) return s;
                snprintf(run_ckpt, sizeof run_ckpt, "%s", ck.path);
                dx_ckpt_close(&ck);
                ckpt = run_ckpt;
            }
        }
        if (weights && weights != j->weights &&
            ((s = dx_backbone_meta_read(weights, &meta, err)) || (s = dx_backbone_meta_check(&meta, &vc, weights, err))))
            return s;
    }

    /* --layer: cut the backbone after that block (the later blocks are not loaded), keeping its
     * final norm, so every measure below is of that depth's features (the random-init baseline too) */
    const int full_depth = vc.depth;
    if (j->layer) {
        if (j->layer > vc.depth) {
            if (bad_option) *bad_option = 1;
            return dx_fail(err, DX_EINVAL, "--layer %d: the backbone has %d blocks", j->layer, vc.depth);
        }
        vc.depth = j->layer;
    }

    dx_backend *be = NULL;
    dx_store store;
    int have_store = 0, n_loaded = 0, have_main = 0;
    dx_eval_model main_m, extra[DX_EVAL_MAX_ALSO];
    const dx_eval_model *extra_p[DX_EVAL_MAX_ALSO];
    int n_also = j->n_also < DX_EVAL_MAX_ALSO ? j->n_also : DX_EVAL_MAX_ALSO;
    if ((s = dx_backend_open(&be, j->device, j->threads, err))) goto done;
    if ((s = dx_store_open(&store, j->store_dir, err))) goto done;
    have_store = 1;
    if (!j->track_only) {
        if (weights) s = dx_eval_model_load(&main_m, &vc, be, weights, prefix, full_depth, err);
        else if (!(s = dx_eval_model_from_ckpt(&main_m, &vc, be, ckpt, "teacher", err)) && full_depth > vc.depth)
            main_m.full_depth = full_depth;
        if (s) goto done;
        have_main = 1;
        for (; n_loaded < n_also; n_loaded++) {
            if ((s = dx_eval_model_load(&extra[n_loaded], &vc, be, j->also[n_loaded], prefix, full_depth, err)))
                goto done;
            extra_p[n_loaded] = &extra[n_loaded];
        }
        if ((s = dx_eval_all(&store, &o, be, &main_m, extra_p, n_also, j->out, err))) goto done;
    }
    if (j->track) s = dx_eval_track(&store, &o, be, &vc, ckdir, j->out, err);
    if (!s) {
        /* the figures beside the training curves; a TensorBoard file that cannot be written
         * (a read-only run directory) costs the evaluation nothing */
        int64_t step = have_main && main_m.step >= 0 ? main_m.step : meta.step >= 0 ? meta.step : 0;
        dx_err te = {0};
        if (dx_eval_tb_write(j->run ? j->run : j->out, j->out, step, &te))
            DX_WARN("eval: no TensorBoard file: %s", te.msg);
    }
done:
    for (int i = 0; i < n_loaded; i++) dx_eval_model_free(&extra[i], be);
    if (have_main) dx_eval_model_free(&main_m, be);
    if (have_store) dx_store_close(&store);
    if (be) dx_backend_destroy(be);
    return s;
}
