/* trainer.c - the training run loop: see trainer.h. */
#include "train/trainer.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/registry.h"
#include "core/dx_log.h"
#include "data/loader.h"
#include "data/masking.h"
#include "data/store_source.h"
#include "io/checkpoint.h"
#include "io/store.h"
#include "nn/weights.h"
#include "train/plan.h"
#include "train/rundir.h"
#include "train/train_sched.h"

/* Consecutive non-finite steps that trigger a rollback to the last checkpoint. */
#define DX_MAX_NONFINITE_STREAK 3

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

dx_status dx_train_ssl_config(const dx_config *c, dx_ssl_config *s, dx_err *err) {
    memset(s, 0, sizeof *s);
    dx_status st = dx_config_vit(c, &s->vit, err);
    if (st) return st;
    if (!c->heads.separate)
        return dx_fail(err, DX_EUNSUPPORTED, "heads.separate = false: DINOv3 uses a separate iBOT head");
    s->dino_head = (dx_head_config){.hidden = c->heads.dino_hidden, .bottleneck = c->heads.dino_bottleneck,
                                    .prototypes = c->heads.dino_k, .nlayers = c->heads.nlayers,
                                    .init_std = c->heads.init_std, .norm_last_layer = c->heads.norm_last_layer};
    s->ibot_head = (dx_head_config){.hidden = c->heads.ibot_hidden, .bottleneck = c->heads.ibot_bottleneck,
                                    .prototypes = c->heads.ibot_k, .nlayers = c->heads.nlayers,
                                    .init_std = c->heads.init_std, .norm_last_layer = c->heads.norm_last_layer};
    s->batch = c->train.batch_size;
    s->n_global = 2;
    s->n_local = c->crops.local_count;
    s->global_size = c->crops.global_size;
    s->local_size = c->crops.local_size;
    s->use_gram = c->gram.enabled;
    s->recompute = strcmp(c->train.checkpointing, "block") == 0;
    s->gram_img_level = c->gram.img_level;
    s->gram_size = c->gram.enabled ? (int)lroundf(c->crops.global_size * c->gram.teacher_res_factor) : 0;
    s->w_dino = c->loss.dino;
    s->w_koleo = c->loss.koleo;
    s->w_ibot = c->loss.ibot;
    s->student_temp = c->loss.student_temp;
    s->centering = strcmp(c->teacher.centering, "softmax") == 0 ? DX_CENTER_SOFTMAX : DX_CENTER_SINKHORN;
    s->sk_iters = c->teacher.sk_iters;
    s->clip_grad = c->optim.clip_grad;
    s->beta1 = c->optim.betas[0];
    s->beta2 = c->optim.betas[1];
    s->eps = c->optim.eps;
    s->layer_decay = c->optim.layer_decay;
    s->patch_embed_lr_mult = c->optim.patch_embed_lr_mult;
    s->seed = (uint64_t)c->train.seed;
    return DX_OK;
}

/* ---- checkpoints ------------------------------------------------------------ */

static void *pixel_alloc(void *be, size_t bytes) {
    return ((dx_backend *)be)->ops->host_alloc(be, bytes);
}
static void pixel_free(void *be, void *p) { ((dx_backend *)be)->ops->host_free(be, p); }

/* Host staging of one backend buffer (a copy on the CPU backend). */
static float *stage(dx_backend *be, const float *dev, size_t n) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    if (h) be->ops->download(be, h, dev, n * sizeof(float));
    return h;
}

dx_status dx_train_save_checkpoint(dx_ssl *s, dx_backend *be, const dx_config *c, const char *ckpt_dir,
                                   int64_t next_step, int64_t gram_refreshes, int64_t nonfinite,
                                   dx_err *err) {
    const size_t n = s->tab.total;
    float *hw = stage(be, s->w, n), *ht = stage(be, s->teacher, n), *hm = stage(be, s->m, n);
    float *hv = stage(be, s->v, n), *hg = s->gram_w ? stage(be, s->gram_w, s->vit.tab.total) : NULL;
    int cap = 5 * s->tab.n + 8;
    dx_ckpt_tensor *t = calloc((size_t)cap, sizeof *t);
    dx_status st = DX_OK;
    if (!hw || !ht || !hm || !hv || (s->gram_w && !hg) || !t) {
        st = dx_fail(err, DX_ENOMEM, "checkpoint staging buffers");
        goto done;
    }
    int k = 0;
    k += dx_ckpt_entries_from_table(t + k, cap - k, "student", &s->tab, hw);
    k += dx_ckpt_entries_from_table(t + k, cap - k, "teacher", &s->tab, ht);
    k += dx_ckpt_entries_from_table(t + k, cap - k, "adam_m", &s->tab, hm);
    k += dx_ckpt_entries_from_table(t + k, cap - k, "adam_v", &s->tab, hv);
    if (hg) k += dx_ckpt_entries_from_table(t + k, cap - k, "gram", &s->vit.tab, hg);
    char state[512];
    snprintf(state, sizeof state,
             "{\"next_step\":%lld,\"adam_t\":%lld,\"gram_refreshes\":%lld,\"nonfinite_steps\":%lld,"
             "\"arch\":\"%s\",\"dim\":%d,\"depth\":%d}",
             (long long)next_step, (long long)s->adam_t, (long long)gram_refreshes, (long long)nonfinite,
             s->cfg.vit.arch, s->cfg.vit.dim, s->cfg.vit.depth);
    dx_ckpt_policy pol = {.keep_last = c ? c->train.keep_last : 3, .milestone_every = c ? c->train.milestone_every : 0};
    st = dx_ckpt_save(ckpt_dir, next_step, state, t, k, &pol, err);
done:
    free(hw); free(ht); free(hm); free(hv); free(hg); free(t);
    return st;
}

static dx_status load_buffer(const dx_ckpt *ck, const char *prefix, const dx_table *tab, dx_backend *be,
                             float *dev, dx_err *err) {
    float *h = calloc(tab->total ? tab->total : 1, sizeof(float));
    if (!h) return dx_fail(err, DX_ENOMEM, "checkpoint load buffer");
    dx_status st = dx_ckpt_load_table(ck, prefix, tab, h, err);
    if (!st) be->ops->upload(be, dev, h, tab->total * sizeof(float));
    free(h);
    return st;
}

dx_status dx_train_load_checkpoint(dx_ssl *s, dx_backend *be, const char *path_or_dir, int64_t *next_step,
                                   int64_t *gram_refreshes, int64_t *nonfinite, dx_err *err) {
    dx_ckpt ck;
    struct stat sb;
    int is_dir = stat(path_or_dir, &sb) == 0 && S_ISDIR(sb.st_mode);
    dx_status st = is_dir ? dx_ckpt_open_latest(&ck, path_or_dir, err) : dx_ckpt_open(&ck, path_or_dir, err);
    if (st) return st;
    if ((st = load_buffer(&ck, "student", &s->tab, be, s->w, err))) goto done;
    if ((st = load_buffer(&ck, "teacher", &s->tab, be, s->teacher, err))) goto done;
    if ((st = load_buffer(&ck, "adam_m", &s->tab, be, s->m, err))) goto done;
    if ((st = load_buffer(&ck, "adam_v", &s->tab, be, s->v, err))) goto done;
    if (s->gram_w && (st = load_buffer(&ck, "gram", &s->vit.tab, be, s->gram_w, err))) goto done;
    cJSON *j = cJSON_Parse(ck.state_json ? ck.state_json : "");
    if (!j) {
        st = dx_fail(err, DX_EFORMAT, "%s: unreadable training state", ck.path);
        goto done;
    }
    *next_step = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "next_step"));
    s->adam_t = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "adam_t"));
    if (gram_refreshes) *gram_refreshes = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "gram_refreshes"));
    if (nonfinite) *nonfinite = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "nonfinite_steps"));
    cJSON_Delete(j);
    DX_INFO("resumed from %s (next step %lld)", ck.path, (long long)*next_step);
done:
    dx_ckpt_close(&ck);
    return st;
}

/* ---- watchdog: warns when one step takes far longer than usual ---------------- */

typedef struct watchdog {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running;
    double step_start, typical;  /* seconds; typical = EMA of step times */
    int64_t step;
} watchdog;

static void *watchdog_main(void *arg) {
    watchdog *w = arg;
    pthread_mutex_lock(&w->mu);
    int64_t warned = -1;
    while (w->running) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 5;
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        if (!w->running) break;
        double limit = w->typical > 0 ? fmax(10 * w->typical, 60.0) : 1800.0;
        double t = now_s() - w->step_start;
        if (t > limit && warned != w->step) {
            DX_WARN("watchdog: step %lld has been running %.0f s (typical %.1f s) - a hung device or a "
                    "stalled filesystem?", (long long)w->step, t, w->typical);
            warned = w->step;
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void watchdog_step(watchdog *w, int64_t step, double last_step_s) {
    pthread_mutex_lock(&w->mu);
    if (last_step_s > 0) w->typical = w->typical > 0 ? 0.9 * w->typical + 0.1 * last_step_s : last_step_s;
    w->step = step;
    w->step_start = now_s();
    pthread_mutex_unlock(&w->mu);
}

/* ---- collapse alarm ------------------------------------------------------------ */

int dx_train_collapsed(double teacher_entropy_lnk, double dino_loss, int K) {
    const double lnk = log((double)K);
    return teacher_entropy_lnk > 0.98 || fabs(dino_loss - lnk) < 0.005 * lnk;
}

/* ---- the run ------------------------------------------------------------------- */

static int weights_finite(dx_ssl *s, dx_backend *be) {
    return !be->ops->nonfinite(be, s->w, s->tab.total) && !be->ops->nonfinite(be, s->teacher, s->tab.total);
}

dx_status dx_train_run(const dx_train_opts *o, dx_train_result *res, dx_err *err) {
    memset(res, 0, sizeof *res);
    dx_status st;
    dx_config cfg;
    char path[1200];
    /* on resume the run's own config is the truth; overrides still apply (e.g. train.epochs) */
    const char *cfg_path = o->config_path;
    if (o->resume) {
        snprintf(path, sizeof path, "%s/config.yaml", o->run_dir);
        cfg_path = path;
    }
    /* a new run never touches an existing one: refuse before anything is read or written */
    if (!o->resume && (st = dx_rundir_check_new(o->run_dir, err))) return st;
    if ((st = dx_config_resolve(&cfg, cfg_path, o->overrides, o->n_overrides, err))) return st;
    dx_ssl_config sc;
    if ((st = dx_train_ssl_config(&cfg, &sc, err))) return st;
    /* the memory plan, before anything large is allocated (the CPU backend's
     * memory is the host's; a GPU backend will report its device's) */
    if (!o->force) {
        const char *what = NULL;
        double usable = dx_host_mem_usable(&what);
        if ((st = dx_plan_check_fits(&cfg, usable, what, err))) return st;
    }

    dx_store store;
    if ((st = dx_store_open(&store, o->store, err))) return st;
    if (store.n_series == 0) {
        dx_store_close(&store);
        return dx_fail(err, DX_EINVAL, "store %s holds no series", o->store);
    }
    dx_slice_source src;
    dx_store_source_init(&src, &store);
    dx_loader_opts lo;
    dx_config_loader_opts(&cfg, 0, &lo);
    dx_loader *loader = NULL;
    dx_backend *be = NULL;
    dx_ssl s;
    memset(&s, 0, sizeof s);
    dx_rundir rd;
    memset(&rd, 0, sizeof rd);
    int rd_open = 0, ssl_ready = 0;
    watchdog wd = {.running = 0};
    dx_backend_params bp = {.nthreads = cfg.train.threads,
                            .precision = strcmp(cfg.model.precision, "bf16") == 0 ? DX_PREC_BF16 : DX_PREC_FP32};
    if ((st = dx_backend_parse_device(cfg.model.backend, &bp, err))) goto out;
    if ((st = dx_backend_create(&be, &bp, err))) goto out;
    /* the batch slots are what gets uploaded: the backend's staging memory */
    lo.pixel_alloc = pixel_alloc;
    lo.pixel_free = pixel_free;
    lo.pixel_ctx = be;
    if ((st = dx_loader_create(&loader, &src, &lo, err))) goto out;
    if ((st = dx_ssl_init(&s, &sc, be, err))) goto out;
    ssl_ready = 1;

    /* every input of a new run is read and checked before the run directory is
     * created, so that a rejected --init or --gram-init leaves nothing behind */
    int64_t step = 0, gram_refreshes = 0, nonfinite = 0;
    if (!o->resume) {
        if ((st = dx_ssl_init_weights(&s, be, err))) goto out;
        if (o->init_weights) {
            /* continual pre-training: backbone from released weights into student,
             * teacher and Gram teacher; heads stay fresh */
            if ((st = dx_weights_load(&s.vit.tab, be, s.w, o->init_weights, "", DX_LOAD_BUFFERS_OPTIONAL, err)))
                goto out;
            be->ops->copy(be, s.teacher, s.w, s.tab.total * sizeof(float));
            if (s.gram_w) be->ops->copy(be, s.gram_w, s.w, s.vit.tab.total * sizeof(float));
            DX_INFO("student and teachers initialised from %s", o->init_weights);
        }
        if (o->gram_init) {
            if (!s.gram_w) {
                st = dx_fail(err, DX_EINVAL, "--gram-init needs gram.enabled = true");
                goto out;
            }
            if ((st = dx_weights_load(&s.vit.tab, be, s.gram_w, o->gram_init, "", DX_LOAD_BUFFERS_OPTIONAL, err)))
                goto out;
            DX_INFO("Gram teacher initialised from %s", o->gram_init);
        }
        if (!weights_finite(&s, be) || (s.gram_w && be->ops->nonfinite(be, s.gram_w, s.vit.tab.total))) {
            st = dx_fail(err, DX_ENUMERIC, "the initial weights hold NaN or Inf values (%s): nothing to train from",
                         o->init_weights || o->gram_init ? "check --init / --gram-init" : "initialisation");
            goto out;
        }
    }
    if ((st = dx_rundir_open(&rd, o->run_dir, &cfg, o->resume, err))) goto out;
    rd_open = 1;
    if (o->resume) {
        if ((st = dx_train_load_checkpoint(&s, be, rd.ckpt_dir, &step, &gram_refreshes, &nonfinite, err))) goto out;
    } else {
        if ((st = dx_train_save_checkpoint(&s, be, &cfg, rd.ckpt_dir, 0, 0, 0, err))) goto out;
    }
    const int64_t total = dx_config_total_steps(&cfg);
    const int64_t end = o->stop_at > 0 && o->stop_at < total ? o->stop_at : total;
    const int B = sc.batch, G = 2 * B;
    const int Hp = sc.global_size / sc.vit.patch;
    DX_INFO("training %s (%d params) on %d series: steps %lld..%lld of %lld, batch %d, %d+%d crops of %d/%d px%s",
            sc.vit.arch, (int)dx_table_numel_trainable(&s.vit.tab), store.n_series, (long long)step,
            (long long)end, (long long)total, B, 2, sc.n_local, sc.global_size, sc.local_size,
            sc.use_gram ? ", Gram on" : "");

    wd.running = 1;
    pthread_mutex_init(&wd.mu, NULL);
    pthread_cond_init(&wd.cv, NULL);
    wd.step_start = now_s();
    pthread_create(&wd.th, NULL, watchdog_main, &wd);

    double t_start = now_s(), t_last_ckpt = now_s(), last_step_s = 0;
    int64_t start_step = step, streak = 0, last_ckpt_step = step, rollback_allowed_from = 0;
    /* collapse alarm: armed after the lr warm-up, fires when every logged step of a
     * train.collapse_window-step stretch looked collapsed */
    const int64_t warmup_steps = (int64_t)(cfg.optim.warmup_epochs * cfg.train.epoch_length);
    int64_t collapse_since = -1;
    while (step < end) {
        if (o->stop && *o->stop) {
            res->stopped_early = 1;
            break;
        }
        watchdog_step(&wd, step, last_step_s);
        double t0 = now_s();
        const dx_batch *batch;
        if ((st = dx_loader_get(loader, step, &batch, err))) goto out;
        const double data_wait = now_s() - t0; /* > 0 only when the loader is behind */
        dx_ibot_masks masks;
        /* the config holds floats; recover the decimal the user wrote (0.35f is 0.34999999) so
         * that int(2B * prob) counts masked crops as DINOv3's Python does */
        const double mask_prob = round(cfg.crops.mask_prob * 1e6) / 1e6;
        if ((st = dx_ibot_masks_make(&masks, G, Hp, Hp, mask_prob, round(cfg.crops.mask_ratio[0] * 1e6) / 1e6,
                                     round(cfg.crops.mask_ratio[1] * 1e6) / 1e6, (uint64_t)cfg.train.seed,
                                     (uint64_t)step, err)))
            goto out;
        dx_ssl_sched sch;
        dx_train_sched_at(&cfg, step, &sch);
        dx_ssl_batch b = {.global = batch->global, .local = batch->local, .gram = batch->gram, .masks = masks.mask};
        dx_ssl_metrics m;
        st = dx_ssl_step(&s, be, &b, step, &sch, &m, err);
        dx_ibot_masks_free(&masks);
        if (st) goto out;
        last_step_s = now_s() - t0;

        if (m.nonfinite) {
            nonfinite++;
            res->nonfinite_steps++;
            DX_WARN("step %lld: non-finite loss or gradient (loss %g) - step skipped (%lld so far)",
                    (long long)step, m.total, (long long)nonfinite);
            if (++streak >= DX_MAX_NONFINITE_STREAK && step >= rollback_allowed_from) {
                /* the state itself may be poisoned: go back to the last good checkpoint and replay;
                 * steps that fail again on the replay are skipped, not rolled back again */
                DX_WARN("%d non-finite steps in a row: rolling back to the last checkpoint", DX_MAX_NONFINITE_STREAK);
                int64_t back;
                if ((st = dx_train_load_checkpoint(&s, be, rd.ckpt_dir, &back, &gram_refreshes, NULL, err))) goto out;
                res->rollbacks++;
                streak = 0;
                rollback_allowed_from = step + 1;
                step = back;
                continue;
            }
            step++;
            continue;
        }
        streak = 0;
        /* Gram teacher refresh from the EMA teacher (spec §5.2) */
        if (sc.use_gram && cfg.gram.refresh_every > 0 && step + 1 >= cfg.gram.refresh_first &&
            (step + 1) % cfg.gram.refresh_every == 0 &&
            (cfg.gram.refresh_max == 0 || gram_refreshes < cfg.gram.refresh_max)) {
            dx_ssl_gram_refresh(&s, be);
            gram_refreshes++;
            DX_INFO("step %lld: Gram teacher refreshed from the EMA teacher (%lld)", (long long)step,
                    (long long)gram_refreshes);
        }
        res->steps_done++;
        res->final_loss = m.total;
        res->last_step = step;

        int log_now = cfg.train.log_every > 0 && (step % cfg.train.log_every == 0 || step + 1 == end);
        if (log_now) {
            double elapsed = now_s() - t_start;
            double ips = (step + 1 - start_step) * (double)B / (elapsed > 0 ? elapsed : 1);
            dx_ssl_health h;
            dx_ssl_health_compute(&s, be, &sch, m.n_masked, &h);
            dx_metric mt[] = {
                {"loss/total", m.total}, {"loss/dino_local", m.dino_local}, {"loss/dino_global", m.dino_global},
                {"loss/koleo", m.koleo}, {"loss/ibot", m.ibot}, {"loss/gram", m.gram},
                {"sched/lr", sch.lr}, {"sched/wd", sch.wd}, {"sched/momentum", sch.momentum},
                {"sched/teacher_temp", sch.teacher_temp}, {"sched/last_layer_lr", sch.last_layer_lr},
                {"grad_norm/backbone", m.gnorm_backbone}, {"grad_norm/dino_head", m.gnorm_dino},
                {"grad_norm/ibot_head", m.gnorm_ibot}, {"perf/img_per_s", ips}, {"perf/step_s", last_step_s},
                {"perf/data_wait_s", data_wait}, {"perf/rss_mb", dx_rss_bytes() / 1e6},
                {"train/masked_patches", m.n_masked},
                {"train/nonfinite_steps", (double)nonfinite},
                {"health/dino_teacher_entropy", h.dino_t_entropy},
                {"health/dino_teacher_mean_entropy", h.dino_t_mean_entropy},
                {"health/dino_prototypes_used", h.dino_t_used},
                {"health/dino_crop_agreement", h.dino_t_agree},
                {"health/dino_student_kl_uniform", h.dino_s_kl_uniform},
                {"health/ibot_teacher_entropy", h.ibot_t_entropy},
                {"health/ibot_prototypes_used", h.ibot_t_used},
                {"health/ibot_student_kl_uniform", h.ibot_s_kl_uniform},
                {"health/cls_std", h.cls_std}, {"health/cls_erank", h.cls_erank}, {"health/cls_cos", h.cls_cos},
                {"health/patch_cos", h.patch_cos}, {"health/last_layer_norm", h.last_layer_norm},
                {"health/collapse_alarm", 0}};
            const int n_mt = (int)(sizeof mt / sizeof mt[0]);
            const double dino = sc.n_local ? (2.0 * m.dino_global + 16.0 * m.dino_local) / 18.0 : m.dino_global;
            if (cfg.train.collapse_window > 0 && step >= warmup_steps &&
                dx_train_collapsed(h.dino_t_entropy, dino, sc.dino_head.prototypes)) {
                if (collapse_since < 0) collapse_since = step;
                if (step - collapse_since >= cfg.train.collapse_window) {
                    mt[n_mt - 1].value = 1;
                    if (!res->collapse_alarm) {
                        res->collapse_alarm = 1;
                        res->collapse_step = step;
                        DX_WARN("COLLAPSE ALARM at step %lld: for %lld steps the teacher's DINO targets have been "
                                "uniform (per-sample entropy %.4f ln K, DINO loss %.4f, ln K = %.4f): the heads give "
                                "no learning signal. See docs/objective.md (Training health) for the causes and the "
                                "settings that learn%s",
                                (long long)step, (long long)(step - collapse_since), h.dino_t_entropy, dino,
                                log((double)sc.dino_head.prototypes),
                                cfg.train.stop_on_collapse ? "; stopping (train.stop_on_collapse)" : "");
                    }
                }
            } else {
                collapse_since = -1;
            }
            if ((st = dx_rundir_log(&rd, step, mt, n_mt, err))) goto out;
            if (!o->quiet) {
                char line[512];
                dx_progress p = {.step = step, .total = total, .elapsed_s = elapsed, .start_step = start_step,
                                 .img_per_s = ips, .lr = sch.lr, .terms = mt, .n_terms = 6, .stop_at = o->stop_at};
                fprintf(stderr, "%s | teacher H %.3f lnK%s\n", dx_progress_format(line, sizeof line, &p),
                        h.dino_t_entropy, mt[n_mt - 1].value ? " | COLLAPSED" : "");
            }
            if (mt[n_mt - 1].value && cfg.train.stop_on_collapse) {
                res->stopped_on_collapse = 1;
                step++;
                if ((st = dx_train_save_checkpoint(&s, be, &cfg, rd.ckpt_dir, step, gram_refreshes, nonfinite, err)))
                    goto out;
                st = dx_fail(err, DX_ENUMERIC,
                             "stopped at step %lld by the collapse alarm (train.stop_on_collapse): the DINO targets "
                             "stayed uniform for %d steps after the warm-up; checkpoint written. docs/objective.md "
                             "lists what to change", (long long)step, cfg.train.collapse_window);
                goto out;
            }
            if (!weights_finite(&s, be) && step >= rollback_allowed_from) {
                DX_WARN("step %lld: non-finite weights - rolling back to the last checkpoint", (long long)step);
                int64_t back;
                if ((st = dx_train_load_checkpoint(&s, be, rd.ckpt_dir, &back, &gram_refreshes, NULL, err))) goto out;
                res->rollbacks++;
                rollback_allowed_from = step + 1;
                step = back;
                continue;
            }
        }
        step++;
        int by_steps = cfg.train.ckpt_every_steps > 0 && step % cfg.train.ckpt_every_steps == 0;
        int by_time = cfg.train.ckpt_every_minutes > 0 && now_s() - t_last_ckpt >= 60.0 * cfg.train.ckpt_every_minutes;
        if ((by_steps || by_time) && step < end) {
            st = dx_train_save_checkpoint(&s, be, &cfg, rd.ckpt_dir, step, gram_refreshes, nonfinite, err);
            if (st) {
                /* the previous checkpoint is intact (atomic write): say so and keep training */
                DX_ERROR("checkpoint at step %lld failed, the previous one (step %lld) is intact: %s",
                         (long long)step, (long long)last_ckpt_step, err->msg);
                st = DX_OK;
            } else {
                last_ckpt_step = step;
                t_last_ckpt = now_s();
            }
        }
    }
    if (res->steps_done == 0 && res->nonfinite_steps > 0) {
        /* every step failed: no checkpoint that looks like progress, and an error for the caller */
        st = dx_fail(err, DX_ENUMERIC,
                     "no usable step: %lld non-finite steps skipped, %lld rollbacks; the last good checkpoint is "
                     "step %lld (docs/training.md: non-finite steps)",
                     (long long)res->nonfinite_steps, (long long)res->rollbacks, (long long)last_ckpt_step);
        goto out;
    }
    if (step > last_ckpt_step || res->stopped_early) {
        if ((st = dx_train_save_checkpoint(&s, be, &cfg, rd.ckpt_dir, step, gram_refreshes, nonfinite, err))) goto out;
    }
    DX_INFO("%s at step %lld; checkpoints in %s", res->stopped_early ? "stopped" : "done", (long long)step,
            rd.ckpt_dir);
out:
    if (wd.running) {
        pthread_mutex_lock(&wd.mu);
        wd.running = 0;
        pthread_cond_signal(&wd.cv);
        pthread_mutex_unlock(&wd.mu);
        pthread_join(wd.th, NULL);
        pthread_mutex_destroy(&wd.mu);
        pthread_cond_destroy(&wd.cv);
    }
    if (rd_open) dx_rundir_close(&rd);
    if (ssl_ready) dx_ssl_free(&s, be);
    if (loader) dx_loader_free(loader); /* its batch slots are the backend's staging memory */
    if (be) dx_backend_destroy(be);
    dx_store_close(&store);
    return st;
}
