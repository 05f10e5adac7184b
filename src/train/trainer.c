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
#include "comm/dx_comm.h"
#include "core/dx_log.h"
#include "data/loader.h"
#include "data/masking.h"
#include "data/store_source.h"
#include "io/checkpoint.h"
#include "io/store.h"
#include "nn/backbone_meta.h"
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
    s->batch = c->train.batch_size; /* the trainer divides it by the ranks */
    s->koleo_group = c->loss.koleo_group;
    s->no_overlap = !c->train.overlap_allreduce;
    s->n_global = 2;
    s->n_local = c->crops.local_count;
    s->global_size = c->crops.global_size;
    s->local_size = c->crops.local_size;
    s->use_gram = c->gram.enabled;
    s->student_acts = strcmp(c->train.checkpointing, "block") == 0       ? DX_ACTS_RECOMPUTE
                      : strcmp(c->train.checkpointing, "selective") == 0 ? DX_ACTS_SELECTIVE
                                                                          : 0u;
    if (dx_config_precision(c) == DX_PREC_BF16) s->student_acts |= DX_ACTS_BF16; /* bf16 storage */
    s->teacher_chunk = c->train.teacher_chunk;
    s->micro_batch = c->train.micro_batch;
    s->ibot_recompute = c->train.ibot_recompute;
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
    dx_config_mask_rule(c, &s->mask_prob, &s->mask_ratio_min, &s->mask_ratio_max); /* what the masks are drawn with */
    s->mask_batch = c->train.batch_size; /* masks are drawn over the global batch */
    return DX_OK;
}

/* ---- checkpoints ------------------------------------------------------------ */

static void *pixel_alloc(void *be, size_t bytes) {
    return ((dx_backend *)be)->ops->host_alloc(be, bytes);
}
static void pixel_free(void *be, void *p) { ((dx_backend *)be)->ops->host_free(be, p); }

/* dx_ckpt_copy_fn over a backend: the checkpoint streams the state from
 * backend memory through one host chunk instead of a host copy of it. */
static void download_floats(void *be, float *dst, const float *src, size_t n) {
    ((dx_backend *)be)->ops->download(be, dst, src, n * sizeof(float));
}

dx_status dx_train_save_checkpoint(dx_ssl *s, dx_backend *be, const dx_config *c, const char *ckpt_dir,
                                   int64_t next_step, int64_t gram_refreshes, int64_t nonfinite,
                                   dx_err *err) {
    int cap = 5 * s->tab.n + 8;
    dx_ckpt_tensor *t = calloc((size_t)cap, sizeof *t);
    dx_status st = DX_OK;
    if (!t) {
        st = dx_fail(err, DX_ENOMEM, "checkpoint tensor list");
        goto done;
    }
    int k = 0;
    k += dx_ckpt_entries_from_table_read(t + k, cap - k, "student", &s->tab, s->w, download_floats, be);
    k += dx_ckpt_entries_from_table_read(t + k, cap - k, "teacher", &s->tab, s->teacher, download_floats, be);
    k += dx_ckpt_entries_from_table_read(t + k, cap - k, "adam_m", &s->tab, s->m, download_floats, be);
    k += dx_ckpt_entries_from_table_read(t + k, cap - k, "adam_v", &s->tab, s->v, download_floats, be);
    if (s->gram_w)
        k += dx_ckpt_entries_from_table_read(t + k, cap - k, "gram", &s->vit.tab, s->gram_w, download_floats, be);
    char state[512];
    snprintf(state, sizeof state,
             "{\"next_step\":%lld,\"adam_t\":%lld,\"gram_refreshes\":%lld,\"nonfinite_steps\":%lld,"
             "\"arch\":\"%s\",\"dim\":%d,\"depth\":%d}",
             (long long)next_step, (long long)s->adam_t, (long long)gram_refreshes, (long long)nonfinite,
             s->cfg.vit.arch, s->cfg.vit.dim, s->cfg.vit.depth);
    dx_ckpt_policy pol = {.keep_last = c ? c->train.keep_last : 3, .milestone_every = c ? c->train.milestone_every : 0};
    st = dx_ckpt_save(ckpt_dir, next_step, state, t, k, &pol, err);
done:
    free(t);
    return st;
}

static void upload_floats(void *be, float *dst, const float *src, size_t n) {
    ((dx_backend *)be)->ops->upload(be, dst, src, n * sizeof(float));
}

/* tensor by tensor from the checkpoint's mapping into backend memory */
static dx_status load_buffer(const dx_ckpt *ck, const char *prefix, const dx_table *tab, dx_backend *be,
                             float *dev, dx_err *err) {
    return dx_ckpt_load_table_via(ck, prefix, tab, dev, upload_floats, be, err);
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
    double temp_c, clock_mhz, clock_max; /* the device's last logged temperature and clock, and the
                                            highest clock seen (-1: unknown): a slow step names throttling */
    int64_t step;
    dx_comm *comm;               /* several ranks: a step past timeout_s ends the job */
    double timeout_s;
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
            if (w->clock_mhz > 0 && w->clock_max > 0 && w->clock_mhz < 0.85 * w->clock_max)
                DX_WARN("watchdog: step %lld has been running %.0f s (typical %.1f s); the device clock is at %.0f "
                        "of %.0f MHz (%.0f C): thermal or power throttling?", (long long)w->step, t, w->typical,
                        w->clock_mhz, w->clock_max, w->temp_c);
            else
                DX_WARN("watchdog: step %lld has been running %.0f s (typical %.1f s) - a hung device or a "
                        "stalled filesystem?", (long long)w->step, t, w->typical);
            warned = w->step;
        }
        if (w->comm && w->comm->size > 1 && t > w->timeout_s) {
            /* a rank died or hangs and the others wait in a collective forever: end them all */
            DX_ERROR("rank %d: step %lld has not finished after %.0f s (train.comm_timeout_s): another rank died "
                     "or hangs; ending every rank. The last checkpoint is intact: resume with --resume",
                     w->comm->rank, (long long)w->step, t);
            w->comm->abort(w->comm, 3);
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

/* ---- run health of the device ------------------------------------------------------ */

typedef struct run_health {
    double t_last_log, busy_last_log; /* at the previous logged step (busy -1: not measured) */
    int throttle_warned;
} run_health;
#define RUN_HEALTH_MAX 8

/* The device's metrics of a logged step into out[] (returns how many): memory
 * from the backend's alloc (the four big allocations and the scratch), busy and
 * data-wait fractions since the last logged step, temperature and clock where
 * known. Hands temperature and clock to the watchdog, and warns once when the
 * clock has fallen to < 80% of its highest at >= 85 C (thermal throttling). */
static int run_health_metrics(run_health *rh, dx_backend *be, watchdog *wd, int64_t step, int root,
                              double wait_s, dx_metric out[RUN_HEALTH_MAX]) {
    dx_device_stats ds;
    be->ops->device_stats(be, &ds);
    const double t_now = now_s(), span = t_now - rh->t_last_log;
    int n = 0;
    out[n++] = (dx_metric){"device/mem_in_use_gb", ds.mem_in_use / 1e9};
    out[n++] = (dx_metric){"device/mem_peak_gb", ds.mem_peak / 1e9};
    if (ds.mem_total > 0) out[n++] = (dx_metric){"device/mem_peak_fraction", ds.mem_peak / ds.mem_total};
    if (ds.busy_s >= 0 && rh->busy_last_log >= 0 && span > 0)
        out[n++] = (dx_metric){"device/busy_fraction", fmin(1.0, (ds.busy_s - rh->busy_last_log) / span)};
    out[n++] = (dx_metric){"perf/data_wait_fraction", span > 0 ? fmin(1.0, wait_s / span) : 0};
    if (ds.temp_c >= 0) out[n++] = (dx_metric){"device/temp_c", ds.temp_c};
    if (ds.clock_mhz >= 0) out[n++] = (dx_metric){"device/clock_mhz", ds.clock_mhz};
    rh->t_last_log = t_now;
    rh->busy_last_log = ds.busy_s;
    pthread_mutex_lock(&wd->mu);
    wd->temp_c = ds.temp_c;
    wd->clock_mhz = ds.clock_mhz;
    if (ds.clock_mhz > wd->clock_max) wd->clock_max = ds.clock_mhz;
    const double cmax = wd->clock_max;
    pthread_mutex_unlock(&wd->mu);
    if (root && !rh->throttle_warned && ds.clock_mhz > 0 && ds.clock_mhz < 0.8 * cmax && ds.temp_c >= 85) {
        DX_WARN("step %lld: the device clock has fallen to %.0f MHz (highest so far %.0f) at %.0f C: thermal "
                "throttling; steps will be slower until it cools (check the cooling and the power limit)",
                (long long)step, ds.clock_mhz, cmax, ds.temp_c);
        rh->throttle_warned = 1;
    }
    return n;
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

/* ---- data parallel helpers (one rank = one process: docs/distributed.md) ------- */

/* Rank r's rows of the global batch's iBOT masks [2*Bg, P] (crop-major): rows
 * c*Bl + b of the result are rows c*Bg + r*Bl + b of the global set. */
static void masks_of_rank(const dx_ibot_masks *all, int Bg, int Bl, int r, uint8_t *out) {
    const int P = all->n_patches;
    for (int c = 0; c < 2; c++)
        memcpy(out + (size_t)c * Bl * P, all->mask + ((size_t)c * Bg + (size_t)r * Bl) * P, (size_t)Bl * P);
}

/* Rank 0's training state to every rank: weights, teacher, moments, Gram
 * teacher, counters. After a new run's init, --init, resume and rollback. */
static dx_status sync_from_root(dx_ssl *s, dx_comm *comm, int64_t *step, int64_t *gram_refreshes,
                                int64_t *nonfinite, dx_err *err) {
    if (comm->size == 1) return DX_OK;
    const size_t bytes = s->tab.total * sizeof(float);
    float *bufs[] = {s->w, s->teacher, s->m, s->v};
    dx_status st;
    for (int i = 0; i < 4; i++)
        if ((st = comm->bcast(comm, bufs[i], bytes, 0, err))) return st;
    if (s->gram_w && (st = comm->bcast(comm, s->gram_w, s->vit.tab.total * sizeof(float), 0, err))) return st;
    int64_t ctr[4] = {*step, *gram_refreshes, *nonfinite, s->adam_t};
    if ((st = comm->bcast(comm, ctr, sizeof ctr, 0, err))) return st;
    *step = ctr[0], *gram_refreshes = ctr[1], *nonfinite = ctr[2], s->adam_t = ctr[3];
    return DX_OK;
}

/* Health statistics as the mean over the ranks (each holds an equal share of the batch). */
static dx_status health_mean(dx_comm *comm, dx_ssl_health *h, dx_err *err) {
    if (comm->size == 1) return DX_OK;
    double *v = (double *)h;
    const size_t n = sizeof *h / sizeof(double);
    dx_status st = comm->allreduce_f64(comm, v, n, DX_COMM_SUM, err);
    for (size_t i = 0; i < n; i++) v[i] /= comm->size;
    return st;
}

/* A decision that every rank must take the same way (weights are equal on every rank, but a
 * decision must never rest on that). */
static int any_rank(dx_comm *comm, int flag) {
    if (comm->size == 1) return flag;
    double v = flag ? 1 : 0;
    if (comm->allreduce_f64(comm, &v, 1, DX_COMM_SUM, NULL)) return 1;
    return v > 0;
}

/* --init / --gram-init: a file that says its shape must match the configured
 * model (non-shape fields such as ln_eps or the k-bias mask would otherwise
 * load silently); preprocessing that differs from this run's is legitimate
 * in continual pre-training (new windows), so it is reported, not refused. */
static dx_status check_init_file(const char *path, const dx_vit_config *vc, const dx_config *c, dx_err *err) {
    dx_backbone_meta m;
    dx_status st = dx_backbone_meta_read(path, &m, err);
    if (!st) st = dx_backbone_meta_check(&m, vc, path, err);
    if (st || !m.has_prep) return st;
    int same = m.prep.stack25d == c->data.stack25d && m.prep.norm_mean == c->data.norm_mean &&
               m.prep.norm_std == c->data.norm_std && m.prep.n_windows == c->data.n_windows;
    for (int i = 0; same && i < m.prep.n_windows; i++)
        same = m.prep.width[i] == c->data.windows[i].width && m.prep.level[i] == c->data.windows[i].level;
    if (!same)
        DX_WARN("%s was trained with other preprocessing (2.5D %d, %d window(s) from %g,%g, norm %g/%g) than this "
                "run (2.5D %d, %d window(s) from %g,%g, norm %g/%g)", path, m.prep.stack25d, m.prep.n_windows,
                (double)m.prep.width[0], (double)m.prep.level[0], (double)m.prep.norm_mean, (double)m.prep.norm_std,
                c->data.stack25d, c->data.n_windows, (double)c->data.windows[0].width,
                (double)c->data.windows[0].level, (double)c->data.norm_mean, (double)c->data.norm_std);
    return DX_OK;
}

static dx_status train_run(const dx_train_opts *o, dx_train_result *res, dx_comm *comm, int *in_sync,
                           dx_err *err) {
    const int W = comm->size, R = comm->rank, root = R == 0;
    dx_status st = DX_OK;
    dx_config cfg;
    char path[1200];
    dx_store store;
    int store_open = 0;
    dx_slice_source src;
    dx_loader_opts lo;
    dx_loader *loader = NULL;
    dx_backend *be = NULL;
    dx_ssl s;
    memset(&s, 0, sizeof s);
    dx_rundir rd;
    memset(&rd, 0, sizeof rd);
    int rd_open = 0, ssl_ready = 0;
    watchdog wd = {.running = 0};
    int64_t step = 0, gram_refreshes = 0, nonfinite = 0;
    dx_ssl_config sc;
    uint8_t *rank_masks = NULL;
    int Bg = 0, Bl = 0; /* the global batch, this rank's share */

    /* ---- setup: every rank does its part, then all agree before the first collective
     * that carries data, so that a rank's failure here ends every rank cleanly ---- */
    /* on resume the run's own config is the truth; overrides still apply (e.g. train.epochs) */
    const char *cfg_path = o->config_path;
    if (o->resume) {
        snprintf(path, sizeof path, "%s/config.yaml", o->run_dir);
        cfg_path = path;
    }
    /* a new run never touches an existing one: refuse before anything is read or written */
    if (root && !o->resume && (st = dx_rundir_check_new(o->run_dir, err))) goto agree;
    if ((st = dx_config_resolve(&cfg, cfg_path, o->overrides, o->n_overrides, err))) goto agree;
    if ((st = dx_train_ssl_config(&cfg, &sc, err))) goto agree;
    if (cfg.train.batch_size % W) {
        st = dx_fail(err, DX_EINVAL,
                     "train.batch_size %d does not divide over %d ranks: the global batch must be a multiple of the "
                     "number of ranks (e.g. %d or %d)",
                     cfg.train.batch_size, W, cfg.train.batch_size / W * W > 0 ? cfg.train.batch_size / W * W : W,
                     (cfg.train.batch_size / W + 1) * W);
        goto agree;
    }
    Bg = cfg.train.batch_size, Bl = Bg / W;
    sc.batch = Bl; /* sc.mask_batch stays Bg: this rank's iBOT rows are bounded within the global masks */
    /* the memory plan of one rank, before anything large is allocated (the CPU backend's
     * memory is the host's, shared by the ranks on it; a GPU backend will report its device's) */
    if (!o->force) {
        dx_config per_rank = cfg;
        per_rank.train.batch_size = Bl;
        const char *what = NULL;
        double usable = dx_host_mem_usable(&what) / comm->local_size;
        char what_rank[160];
        if (comm->local_size > 1) {
            snprintf(what_rank, sizeof what_rank, "%s / %d ranks on this host", what ? what : "memory",
                     comm->local_size);
            what = what_rank;
        }
        if ((st = dx_plan_check_fits(&per_rank, &sc, usable, what, err))) goto agree;
    }

    if ((st = dx_store_open(&store, o->store, err))) goto agree;
    store_open = 1;
    if (store.n_series == 0) {
        st = dx_fail(err, DX_EINVAL, "store %s holds no series", o->store);
        goto agree;
    }
    dx_store_source_init(&src, &store);
    dx_config_loader_opts(&cfg, 0, &lo);
    lo.batch_size = Bl;          /* this rank's share of the global batch, */
    lo.sample_offset = R * Bl;   /* drawn as the global batch's samples R*Bl.. */
    dx_backend_params bp = {.nthreads = cfg.train.compute_threads ? cfg.train.compute_threads : cfg.train.threads,
                            .precision = dx_config_precision(&cfg)};
    if ((st = dx_backend_parse_device(cfg.model.backend, &bp, err))) goto agree;
    if ((st = dx_backend_create(&be, &bp, err))) goto agree;
    if (W > 1 && strcmp(comm->kind, "mpi") == 0 && bp.name && strcmp(bp.name, "cpu") != 0) {
        st = dx_fail(err, DX_EUNSUPPORTED,
                     "%d ranks over MPI need the cpu backend (MPI reduces host memory); device %s needs the NCCL/RCCL "
                     "engine, which this build does not have", W, bp.name);
        goto agree;
    }
    /* the batch slots are what gets uploaded: the backend's staging memory */
    lo.pixel_alloc = pixel_alloc;
    lo.pixel_free = pixel_free;
    lo.pixel_ctx = be;
    {
        dx_focus_point *focus = NULL;
        st = dx_store_focus_attach(&store, &lo, &focus, err);
        if (!st) st = dx_loader_create(&loader, &src, &lo, err);
        free(focus);
        if (st) goto agree;
    }
    if ((st = dx_ssl_init(&s, &sc, be, err))) goto agree;
    ssl_ready = 1;
    s.comm = comm;
    rank_masks = malloc((size_t)2 * Bl * s.P);
    if (!rank_masks) {
        st = dx_fail(err, DX_ENOMEM, "mask buffer");
        goto agree;
    }

    /* every input of a new run is read and checked before the run directory is
     * created, so that a rejected --init or --gram-init leaves nothing behind.
     * Only rank 0 reads weights and checkpoints; the others get them broadcast. */
    if (!o->resume) {
        if ((st = dx_ssl_init_weights(&s, be, err))) goto agree;
        if (root && o->init_weights) {
            /* continual pre-training: backbone from released weights into student,
             * teacher and Gram teacher; heads stay fresh */
            if ((st = check_init_file(o->init_weights, &s.vit.cfg, &cfg, err)) ||
                (st = dx_weights_load(&s.vit.tab, be, s.w, o->init_weights, "", DX_LOAD_BUFFERS_OPTIONAL, err)))
                goto agree;
            be->ops->copy(be, s.teacher, s.w, s.tab.total * sizeof(float));
            if (s.gram_w) be->ops->copy(be, s.gram_w, s.w, s.vit.tab.total * sizeof(float));
            DX_INFO("student and teachers initialised from %s", o->init_weights);
        }
        if (root && o->gram_init) {
            if (!s.gram_w) {
                st = dx_fail(err, DX_EINVAL, "--gram-init needs gram.enabled = true");
                goto agree;
            }
            if ((st = check_init_file(o->gram_init, &s.vit.cfg, &cfg, err)) ||
                (st = dx_weights_load(&s.vit.tab, be, s.gram_w, o->gram_init, "", DX_LOAD_BUFFERS_OPTIONAL, err)))
                goto agree;
            DX_INFO("Gram teacher initialised from %s", o->gram_init);
        }
        if (root && (!weights_finite(&s, be) || (s.gram_w && be->ops->nonfinite(be, s.gram_w, s.vit.tab.total)))) {
            st = dx_fail(err, DX_ENUMERIC, "the initial weights hold NaN or Inf values (%s): nothing to train from",
                         o->init_weights || o->gram_init ? "check --init / --gram-init" : "initialisation");
            goto agree;
        }
    }
    if (root) {
        if ((st = dx_rundir_open(&rd, o->run_dir, &cfg, o->resume, err))) goto agree;
        rd_open = 1;
        if (o->resume) {
            if ((st = dx_train_load_checkpoint(&s, be, rd.ckpt_dir, &step, &gram_refreshes, &nonfinite, err)))
                goto agree;
        } else {
            if ((st = dx_train_save_checkpoint(&s, be, &cfg, rd.ckpt_dir, 0, 0, 0, err))) goto agree;
        }
    }
agree:;
    int all_ok = st == DX_OK;
    if (W > 1) {
        dx_err e2;
        dx_comm_all_ok(comm, st == DX_OK, &all_ok, &e2);
        if (!all_ok && st == DX_OK)
            st = dx_fail(err, DX_EINVAL, "rank %d: another rank failed to set up the run (its error is above)", R);
    }
    if (!all_ok) goto out;
    if ((st = sync_from_root(&s, comm, &step, &gram_refreshes, &nonfinite, err))) {
        *in_sync = 0;
        goto out;
    }
    if (!root && dx_log_get_level() > DX_LOG_WARN) dx_log_set_level(DX_LOG_WARN); /* rank 0 speaks for the run */

    const int64_t total = dx_config_total_steps(&cfg);
    const int64_t end = o->stop_at > 0 && o->stop_at < total ? o->stop_at : total;
    const int Hp = sc.global_size / sc.vit.patch;
    DX_INFO("training %s (%d params) on %d series: steps %lld..%lld of %lld, batch %d%s, %d+%d crops of %d/%d px%s",
            sc.vit.arch, (int)dx_table_numel_trainable(&s.vit.tab), store.n_series, (long long)step,
            (long long)end, (long long)total, Bg, W > 1 ? " over ranks" : "", 2, sc.n_local, sc.global_size,
            sc.local_size, sc.use_gram ? ", Gram on" : "");
    DX_INFO("compute: %s backend, %d threads (train.compute_threads), %s precision; loader: %d worker threads "
            "(train.threads)", be->ops->name, be->nthreads, cfg.model.precision, cfg.train.threads);
    if (W > 1)
        DX_INFO("data parallel: %d ranks (%s, %d on this host), %d images each; %.1f MB of gradients all-reduced "
                "per step, %s", W, comm->kind, comm->local_size, Bl, s.tab.total * 4e-6,
                s.overlap ? "block by block during backward" : "in one piece after backward");
    if (s.mb < s.cfg.batch)
        DX_INFO("the student in %d passes of %d images per step (train.micro_batch), gradients accumulated; the "
                "teachers and Sinkhorn-Knopp over all %d", s.cfg.batch / s.mb, s.mb, s.cfg.batch);

    wd.running = 1;
    wd.comm = comm;
    wd.timeout_s = cfg.train.comm_timeout_s;
    pthread_mutex_init(&wd.mu, NULL);
    pthread_cond_init(&wd.cv, NULL);
    wd.step_start = now_s();
    wd.temp_c = wd.clock_mhz = wd.clock_max = -1; /* unknown until a logged step reads them */
    pthread_create(&wd.th, NULL, watchdog_main, &wd);

    double t_start = now_s(), t_last_ckpt = now_s(), last_step_s = 0;
    /* run health between logged steps: data wait and device busy time over wall time */
    double wait_since_log = 0;
    run_health rh = {.t_last_log = t_start};
    {
        dx_device_stats ds0;
        be->ops->device_stats(be, &ds0);
        rh.busy_last_log = ds0.busy_s;
    }
    int64_t start_step = step, streak = 0, last_ckpt_step = step, rollback_allowed_from = 0;
    /* collapse alarm: armed after the lr warm-up, fires when every logged step of a
     * train.collapse_window-step stretch looked collapsed */
    const int64_t warmup_steps = (int64_t)(cfg.optim.warmup_epochs * cfg.train.epoch_length);
    int64_t collapse_since = -1;
    /* from here an error on one rank alone leaves the others in a collective */
    *in_sync = 0;
    while (step < end) {
        int stop_now = o->stop && *o->stop;
        watchdog_step(&wd, step, last_step_s);
        double t0 = now_s();
        const dx_batch *batch = NULL;
        dx_status lst = DX_OK;
        if (!stop_now || W > 1) lst = dx_loader_get(loader, step, &batch, err);
        if (W > 1) {
            /* one small collective per step: a stop request (signals reach the ranks at
             * different times) and a loader failure become every rank's decision */
            double v[2] = {stop_now, lst != DX_OK};
            if ((st = comm->allreduce_f64(comm, v, 2, DX_COMM_SUM, err))) goto out;
            stop_now = v[0] > 0;
            if (v[1] > 0) {
                *in_sync = 1;
                st = lst ? lst
                         : dx_fail(err, DX_EIO, "rank %d: another rank could not load its part of step %lld", R,
                                   (long long)step);
                goto out;
            }
        } else if (lst) {
            st = lst;
            goto out;
        }
        if (stop_now) {
            res->stopped_early = 1;
            break;
        }
        const double data_wait = now_s() - t0; /* > 0 only when the loader is behind */
        wait_since_log += data_wait;
        dx_ibot_masks masks;
        /* the global batch's masks (2*Bg crops) under the step config's rule
         * (dx_config_mask_rule); a rank takes its rows */
        if ((st = dx_ibot_masks_make(&masks, 2 * Bg, Hp, Hp, sc.mask_prob, sc.mask_ratio_min, sc.mask_ratio_max,
                                     (uint64_t)cfg.train.seed, (uint64_t)step, err)))
            goto out;
        masks_of_rank(&masks, Bg, Bl, R, rank_masks);
        dx_ssl_sched sch;
        dx_train_sched_at(&cfg, step, &sch);
        const int log_now = cfg.train.log_every > 0 && (step % cfg.train.log_every == 0 || step + 1 == end);
        dx_ssl_batch b = {.global = batch->global, .local = batch->local, .gram = batch->gram, .masks = rank_masks,
                          .masked_total = masks.n_masked, .no_health = !log_now};
        dx_ssl_metrics m;
        st = dx_ssl_step(&s, be, &b, step, &sch, &m, err);
        dx_ibot_masks_free(&masks);
        if (st) goto out;
        const int masked_here = m.n_masked;
        m.n_masked = b.masked_total; /* reported for the global batch */
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
                int64_t back = 0;
                if (root && (st = dx_train_load_checkpoint(&s, be, rd.ckpt_dir, &back, &gram_refreshes, NULL, err)))
                    goto out;
                if ((st = sync_from_root(&s, comm, &back, &gram_refreshes, &nonfinite, err))) goto out;
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
        /* Gram teacher refresh from the EMA teacher */
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

        if (log_now) {
            double elapsed = now_s() - t_start;
            double ips = (step + 1 - start_step) * (double)Bg / (elapsed > 0 ? elapsed : 1);
            dx_ssl_health h;
            dx_ssl_health_compute(&s, be, &sch, masked_here, batch->window, &h); /* this rank's tensors */
            if ((st = health_mean(comm, &h, err))) goto out;
            dx_metric mt[] = {
                {"loss/total", m.total}, {"loss/dino_local", m.dino_local}, {"loss/dino_global", m.dino_global},
                {"loss/koleo", m.koleo}, {"loss/ibot", m.ibot}, {"loss/gram", m.gram},
                {"sched/lr", sch.lr}, {"sched/wd", sch.wd}, {"sched/momentum", sch.momentum},
                {"sched/teacher_temp", sch.teacher_temp}, {"sched/last_layer_lr", sch.last_layer_lr},
                {"grad_norm/backbone", m.gnorm_backbone}, {"grad_norm/dino_head", m.gnorm_dino},
                {"grad_norm/ibot_head", m.gnorm_ibot}, {"perf/img_per_s", ips}, {"perf/step_s", last_step_s},
                {"perf/data_wait_s", data_wait}, {"perf/comm_s", m.comm_s}, {"perf/rss_mb", dx_rss_bytes() / 1e6},
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
                {"health/cls_window_r2", h.cls_window_r2}, {"health/dino_teacher_window_r2", h.dino_t_window_r2},
                {"health/patch_cos", h.patch_cos}, {"health/last_layer_norm", h.last_layer_norm},
                {"health/collapse_alarm", 0}};
            const int n_mt = (int)(sizeof mt / sizeof mt[0]);
            dx_metric dev[RUN_HEALTH_MAX];
            const int n_dev = run_health_metrics(&rh, be, &wd, step, root, wait_since_log, dev);
            wait_since_log = 0;
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
            dx_metric all[sizeof mt / sizeof mt[0] + sizeof dev / sizeof dev[0]];
            memcpy(all, mt, sizeof mt); /* after the collapse flag is set */
            memcpy(all + n_mt, dev, sizeof(dx_metric) * (size_t)n_dev);
            if (root && (st = dx_rundir_log(&rd, step, all, n_mt + n_dev, err))) goto out;
            if (root && !o->quiet) {
                char line[512];
                dx_progress p = {.step = step, .total = total, .elapsed_s = elapsed, .start_step = start_step,
                                 .img_per_s = ips, .lr = sch.lr, .terms = mt, .n_terms = 6, .stop_at = o->stop_at};
                fprintf(stderr, "%s | teacher H %.3f lnK%s\n", dx_progress_format(line, sizeof line, &p),
                        h.dino_t_entropy, mt[n_mt - 1].value ? " | COLLAPSED" : "");
            }
            if (mt[n_mt - 1].value && cfg.train.stop_on_collapse) {
                res->stopped_on_collapse = 1;
                step++;
                if (root &&
                    (st = dx_train_save_checkpoint(&s, be, &cfg, rd.ckpt_dir, step, gram_refreshes, nonfinite, err)))
                    goto out;
                if (any_rank(comm, 0)) goto out; /* wait for rank 0's checkpoint: every rank ends here */
                *in_sync = 1;
                st = dx_fail(err, DX_ENUMERIC,
                             "stopped at step %lld by the collapse alarm (train.stop_on_collapse): the DINO targets "
                             "stayed uniform for %d steps after the warm-up; checkpoint written. docs/objective.md "
                             "lists what to change", (long long)step, cfg.train.collapse_window);
                goto out;
            }
            if (any_rank(comm, !weights_finite(&s, be)) && step >= rollback_allowed_from) {
                DX_WARN("step %lld: non-finite weights - rolling back to the last checkpoint", (long long)step);
                int64_t back = 0;
                if (root && (st = dx_train_load_checkpoint(&s, be, rd.ckpt_dir, &back, &gram_refreshes, NULL, err)))
                    goto out;
                if ((st = sync_from_root(&s, comm, &back, &gram_refreshes, &nonfinite, err))) goto out;
                res->rollbacks++;
                rollback_allowed_from = step + 1;
                step = back;
                continue;
            }
        }
        step++;
        /* checkpoints are rank 0's alone: the state is the same on every rank */
        int by_steps = cfg.train.ckpt_every_steps > 0 && step % cfg.train.ckpt_every_steps == 0;
        int by_time = cfg.train.ckpt_every_minutes > 0 && now_s() - t_last_ckpt >= 60.0 * cfg.train.ckpt_every_minutes;
        if (root && (by_steps || by_time) && step < end) {
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
    *in_sync = 1; /* every rank leaves the loop at the same step */
    if (res->steps_done == 0 && res->nonfinite_steps > 0) {
        /* every step failed: no checkpoint that looks like progress, and an error for the caller */
        st = dx_fail(err, DX_ENUMERIC,
                     "no usable step: %lld non-finite steps skipped, %lld rollbacks; the last good checkpoint is "
                     "step %lld (docs/training.md: non-finite steps)",
                     (long long)res->nonfinite_steps, (long long)res->rollbacks, (long long)last_ckpt_step);
        goto out;
    }
    if (root && (step > last_ckpt_step || res->stopped_early)) {
        if ((st = dx_train_save_checkpoint(&s, be, &cfg, rd.ckpt_dir, step, gram_refreshes, nonfinite, err))) {
            *in_sync = 0;
            goto out;
        }
    }
    DX_INFO("%s at step %lld; checkpoints in %s", res->stopped_early ? "stopped" : "done", (long long)step,
            root ? rd.ckpt_dir : "rank 0's run directory");
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
    free(rank_masks);
    if (rd_open) dx_rundir_close(&rd);
    if (ssl_ready) dx_ssl_free(&s, be);
    if (loader) dx_loader_free(loader); /* its batch slots are the backend's staging memory */
    if (be) dx_backend_destroy(be);
    if (store_open) dx_store_close(&store);
    return st;
}

dx_status dx_train_run(const dx_train_opts *o, dx_train_result *res, dx_err *err) {
    memset(res, 0, sizeof *res);
    dx_comm *comm = NULL;
    dx_status st = dx_comm_open(&comm, "auto", err);
    if (st) return st;
    res->rank = comm->rank, res->world = comm->size;
    int in_sync = 1;
    st = train_run(o, res, comm, &in_sync, err);
    if (st && !in_sync && comm->size > 1) {
        /* this rank failed alone while the others wait in a collective: end the job
         * rather than leave them hanging (MPI's answer; the message goes first) */
        DX_ERROR("rank %d: %s - ending every rank", comm->rank, err ? err->msg : dx_status_name(st));
        comm->abort(comm, 2);
    }
    dx_comm_close(comm);
    return st;
}
