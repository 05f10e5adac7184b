/* rundir.c - run directory files, metrics log and progress line (see rundir.h). */
#include "train/rundir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/file.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


static dx_status open_files(dx_rundir *rd, const char *path, const dx_config *cfg, int resume, dx_err *err);

dx_status dx_rundir_check_new(const char *path, dx_err *err) {
    DIR *d = opendir(path);
    if (!d) {
        if (errno == ENOENT) return DX_OK;
        return dx_fail(err, errno == ENOTDIR ? DX_EINVAL : DX_EIO, "run directory %s: %s", path, strerror(errno));
    }
    int n = 0, ckpts = 0, run_files = 0;
    char first[256] = "", example[256] = ""; /* copies: readdir's names die with closedir */
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *e = de->d_name;
        if (!strcmp(e, ".") || !strcmp(e, "..") || !strcmp(e, ".lock")) continue;
        if (!n++) snprintf(first, sizeof first, "%s", e);
        if (!strcmp(e, "config.yaml") || !strcmp(e, "metrics.jsonl") || !strncmp(e, "events.out.tfevents.", 20))
            run_files++, snprintf(example, sizeof example, "%s", e);
        if (!strcmp(e, "checkpoints")) ckpts = 1;
    }
    closedir(d);
    if (n == 0) return DX_OK;
    if (run_files || ckpts)
        return dx_fail(err, DX_EINVAL,
                       "%s already holds a training run (%s%s): nothing was changed. Continue it with "
                       "`dinox train --resume %s --store STORE`, or give a new --out",
                       path, example[0] ? example : "checkpoints/", example[0] && ckpts ? ", checkpoints/" : "", path);
    return dx_fail(err, DX_EINVAL, "%s is not empty (%s, %d entries): a new run needs a new or empty directory", path,
                   first, n);
}

static dx_status lock_dir(dx_rundir *rd, dx_err *err) {
    char f[1200];
    snprintf(f, sizeof f, "%s/.lock", rd->path);
    int fd = open(f, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return dx_fail(err, DX_EIO, "open %s: %s", f, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "", who[48] = "";
        ssize_t k = pread(fd, pid, sizeof pid - 1, 0);
        if (k > 0) pid[k] = 0, pid[strcspn(pid, "\n")] = 0;
        if (pid[0]) snprintf(who, sizeof who, " (pid %s)", pid);
        close(fd);
        return dx_fail(err, DX_EINVAL, "run directory %s is in use by another dinox process%s: one run per directory",
                       rd->path, who);
    }
    /* the holder's pid, for the message above (the lock, not the file, is the truth) */
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0) (void)!pwrite(fd, pid, (size_t)len, 0);
    rd->lock_fd = fd;
    return DX_OK;
}

dx_status dx_rundir_open(dx_rundir *rd, const char *path, const dx_config *cfg, int resume, dx_err *err) {
    memset(rd, 0, sizeof *rd);
    rd->lock_fd = -1;
    snprintf(rd->path, sizeof rd->path, "%s", path);
    snprintf(rd->ckpt_dir, sizeof rd->ckpt_dir, "%s/checkpoints", path);
    dx_status s = dx_mkdirs(path, err);
    if (s) return s;
    if ((s = lock_dir(rd, err))) return s;
    if (!resume && (s = dx_rundir_check_new(path, err))) goto fail;
    if ((s = dx_mkdirs(rd->ckpt_dir, err))) goto fail;
    s = open_files(rd, path, cfg, resume, err);
    if (s) goto fail;
    return DX_OK;
fail:
    close(rd->lock_fd);
    rd->lock_fd = -1;
    return s;
}

/* The keys a sweep varies, shown in TensorBoard's HParams tab beside the
 * metrics that judge a run (the eval/ metrics come from `dinox eval --run`). */
static const char *const HPARAM_KEYS[] = {
    "model.arch", "model.dim", "model.depth", "model.heads", "model.patch", "model.precision", "model.drop_path",
    "model.layerscale", "heads.dino_k", "heads.norm_last_layer", "loss.koleo", "teacher.centering",
    "teacher.momentum_start", "teacher.temp_end", "gram.enabled", "gram.weight", "optim.lr", "optim.layer_decay",
    "optim.wd_end", "crops.global_size", "crops.local_count", "crops.global_scale", "data.stack25d",
    "data.window_per_crop", "data.focus_p", "train.batch_size", "train.epochs", "train.epoch_length", "train.seed"};
static const char *const HPARAM_METRICS[] = {
    "loss/total", "loss/dino_global", "health/dino_teacher_entropy", "health/patch_cos", "eval/probe_test_auc",
    "eval/ssl_minus_random_init_auc", "eval/knn_test_accuracy", "eval/seg_test_dice", "eval/attention_in_nodule"};

static dx_status tb_describe_run(dx_tb_writer *tb, const dx_config *cfg, dx_err *err) {
    enum { NK = sizeof HPARAM_KEYS / sizeof HPARAM_KEYS[0] };
    char vals[NK][96];
    const char *v[NK];
    for (int i = 0; i < NK; i++) {
        if (dx_config_get_text(cfg, HPARAM_KEYS[i], vals[i], sizeof vals[i], err)) return err ? err->code : DX_EINVAL;
        char *q = vals[i]; /* strings are dumped quoted */
        size_t n = strlen(q);
        if (n >= 2 && q[0] == '"' && q[n - 1] == '"') memmove(q, q + 1, n - 2), q[n - 2] = 0;
        v[i] = vals[i];
    }
    const double now = (double)time(NULL);
    dx_status s = dx_tb_hparams(tb, now, HPARAM_KEYS, v, NK, HPARAM_METRICS,
                                (int)(sizeof HPARAM_METRICS / sizeof HPARAM_METRICS[0]), err);
    if (s) return s;
    /* the resolved config as a markdown code block (4-space indent) */
    char *yaml = NULL, *md = NULL;
    size_t yl = 0, ml = 0;
    FILE *y = open_memstream(&yaml, &yl);
    if (!y) return dx_fail(err, DX_ENOMEM, "tb config text");
    s = dx_config_dump(cfg, y, err);
    fclose(y);
    FILE *m = s ? NULL : open_memstream(&md, &ml);
    if (!s && !m) s = dx_fail(err, DX_ENOMEM, "tb config text");
    if (m) {
        for (char *line = yaml, *nl; line && *line; line = nl ? nl + 1 : NULL) {
            nl = strchr(line, '\n');
            fprintf(m, "    %.*s\n", (int)(nl ? nl - line : (ptrdiff_t)strlen(line)), line);
        }
        fclose(m);
        s = dx_tb_text(tb, 0, now, "config", md, err);
    }
    free(yaml);
    free(md);
    return s ? s : dx_tb_flush(tb, err);
}

static dx_status open_files(dx_rundir *rd, const char *path, const dx_config *cfg, int resume, dx_err *err) {
    dx_status s;
    char f[1200];
    if (cfg) {
        snprintf(f, sizeof f, "%s/config.yaml", path);
        if (resume && access(f, F_OK) == 0) {
            /* keep the original; record a changed config next to it */
            char tmp[1200];
            snprintf(tmp, sizeof tmp, "%s/config.resume.yaml", path);
            if ((s = dx_config_save(cfg, tmp, err))) return s;
            char *a = dx_read_file(f, NULL), *b = dx_read_file(tmp, NULL);
            if (a && b && strcmp(a, b) == 0) remove(tmp);
            free(a);
            free(b);
        } else if ((s = dx_config_save(cfg, f, err))) {
            return s;
        }
    }
    snprintf(f, sizeof f, "%s/metrics.jsonl", path);
    rd->metrics = fopen(f, resume ? "ab" : "wb");
    if (!rd->metrics) return dx_fail(err, DX_EIO, "open %s: %s", f, strerror(errno));
    if ((s = dx_tb_open(&rd->tb, path, err))) {
        fclose(rd->metrics);
        rd->metrics = NULL;
        return s;
    }
    /* a new run tells TensorBoard its config (Text tab) and hyperparameters (HParams tab) */
    if (cfg && !resume && (s = tb_describe_run(&rd->tb, cfg, err))) {
        fclose(rd->metrics);
        rd->metrics = NULL;
        dx_tb_close(&rd->tb);
        return s;
    }
    return DX_OK;
}

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

/* resident and shared (file-backed) bytes from one read of /proc/self/statm; 0 if unknown */
static void statm_read(size_t *rss, size_t *file) {
    *rss = *file = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return;
    unsigned long long v[3] = {0};
    int ok = fscanf(f, "%llu %llu %llu", &v[0], &v[1], &v[2]) == 3;
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    if (ok && page > 0) *rss = (size_t)v[1] * (size_t)page, *file = (size_t)v[2] * (size_t)page;
}

dx_status dx_rundir_log(dx_rundir *rd, int64_t step, const dx_metric *m, int n, dx_err *err) {
    if (!rd->metrics) return dx_fail(err, DX_EINVAL, "run dir is not open");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double now = ts.tv_sec + ts.tv_nsec * 1e-9;
    fprintf(rd->metrics, "{\"step\": %lld, \"time\": %.3f", (long long)step, now);
    for (int i = 0; i < n; i++) {
        fputs(", ", rd->metrics);
        json_string(rd->metrics, m[i].name);
        if (isfinite(m[i].value)) fprintf(rd->metrics, ": %.9g", m[i].value);
        else fputs(": null", rd->metrics);
    }
    size_t rss, file;
    statm_read(&rss, &file);
    if (rss) fprintf(rd->metrics, ", \"mem/rss_mb\": %.1f, \"mem/rss_file_mb\": %.1f", rss / 1e6, file / 1e6); /* MB, as perf/rss_mb */
    fputs("}\n", rd->metrics);
    if (fflush(rd->metrics) != 0 || ferror(rd->metrics))
        return dx_fail(err, DX_EIO, "write %s/metrics.jsonl: %s", rd->path, strerror(errno));
    const char **tags = malloc(sizeof(char *) * (n + 1));
    float *vals = malloc(sizeof(float) * (n + 1));
    if (!tags || !vals) {
        free(tags);
        free(vals);
        return dx_fail(err, DX_ENOMEM, "rundir: out of memory");
    }
    for (int i = 0; i < n; i++) tags[i] = m[i].name, vals[i] = (float)m[i].value;
    dx_status s = dx_tb_scalars(&rd->tb, step, now, tags, vals, n, err);
    if (!s) s = dx_tb_flush(&rd->tb, err);
    free(tags);
    free(vals);
    return s;
}

void dx_rundir_close(dx_rundir *rd) {
    if (rd->metrics) fclose(rd->metrics);
    rd->metrics = NULL;
    dx_tb_close(&rd->tb);
    if (rd->lock_fd >= 0) close(rd->lock_fd); /* releases the flock */
    rd->lock_fd = -1;
}

size_t dx_rss_bytes(void) {
    size_t rss, file;
    statm_read(&rss, &file);
    return rss;
}
size_t dx_rss_file_bytes(void) {
    size_t rss, file;
    statm_read(&rss, &file);
    return file;
}

static void fmt_hms(char *b, size_t n, double s) {
    if (!(s >= 0) || s > 1e9) {
        snprintf(b, n, "?");
        return;
    }
    long long t = (long long)(s + 0.5);
    snprintf(b, n, "%lld:%02lld:%02lld", t / 3600, (t / 60) % 60, t % 60);
}

const char *dx_progress_format(char *buf, size_t len, const dx_progress *p) {
    size_t o = 0;
#define ADD(...) do { if (o < len) o += (size_t)snprintf(buf + o, len - o, __VA_ARGS__); } while (0)
    int64_t done = p->step + 1;
    ADD("step %lld (%lld/%lld done, %.1f%%)", (long long)p->step, (long long)done, (long long)p->total,
        p->total > 0 ? 100.0 * done / p->total : 0.0);
    if (p->n_terms > 0) {
        ADD(" |");
        for (int i = 0; i < p->n_terms; i++) ADD(" %s %.4g", p->terms[i].name, p->terms[i].value);
    }
    ADD(" | lr %.2e | %.1f img/s", p->lr, p->img_per_s);
    int64_t did = done - p->start_step;
    /* --stop-at ends the run early: count to the step at which it stops */
    const int64_t end = p->stop_at > 0 && p->stop_at < p->total ? p->stop_at : p->total;
    char eta[32];
    fmt_hms(eta, sizeof eta, did > 0 ? p->elapsed_s / did * (double)(end > done ? end - done : 0) : -1);
    if (end < p->total) ADD(" | ETA %s to step %lld (--stop-at)", eta, (long long)end);
    else ADD(" | ETA %s", eta);
    size_t rss = p->rss_bytes, file = p->rss_file_bytes;
    if (!rss) statm_read(&rss, &file);
    ADD(" | RSS %.0f MB", rss / 1e6);
    /* a training run maps the store: say when most of the RSS is those droppable pages */
    if (file > rss / 4 && file > 100000000) ADD(" (%.0f MB of it mapped files)", file / 1e6);
#undef ADD
    return buf;
}
