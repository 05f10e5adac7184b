/* rundir.c - run directory files, metrics log and progress line (see rundir.h). */
#include "train/rundir.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    size_t r;
    while (b && (r = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) { free(b); b = NULL; }
            else b = nb;
        }
    }
    fclose(f);
    if (b) b[n] = 0;
    return b;
}

dx_status dx_rundir_open(dx_rundir *rd, const char *path, const dx_config *cfg, int resume, dx_err *err) {
    memset(rd, 0, sizeof *rd);
    snprintf(rd->path, sizeof rd->path, "%s", path);
    snprintf(rd->ckpt_dir, sizeof rd->ckpt_dir, "%s/checkpoints", path);
    dx_status s = dx_mkdirs(rd->ckpt_dir, err);
    if (s) return s;
    char f[1200];
    if (cfg) {
        snprintf(f, sizeof f, "%s/config.yaml", path);
        if (resume && access(f, F_OK) == 0) {
            /* keep the original; record a changed config next to it */
            char tmp[1200];
            snprintf(tmp, sizeof tmp, "%s/config.resume.yaml", path);
            if ((s = dx_config_save(cfg, tmp, err))) return s;
            char *a = slurp(f), *b = slurp(tmp);
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
    size_t rss = dx_rss_bytes();
    if (rss) fprintf(rd->metrics, ", \"mem/rss_mb\": %.1f", rss / 1048576.0);
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
}

size_t dx_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long long size = 0, rss = 0;
    int ok = fscanf(f, "%llu %llu", &size, &rss) == 2;
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return ok && page > 0 ? (size_t)rss * (size_t)page : 0;
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
    ADD("step %lld/%lld (%.1f%%)", (long long)done, (long long)p->total,
        p->total > 0 ? 100.0 * done / p->total : 0.0);
    if (p->n_terms > 0) {
        ADD(" |");
        for (int i = 0; i < p->n_terms; i++) ADD(" %s %.4g", p->terms[i].name, p->terms[i].value);
    }
    ADD(" | lr %.2e | %.1f img/s", p->lr, p->img_per_s);
    int64_t did = done - p->start_step;
    char eta[32];
    fmt_hms(eta, sizeof eta, did > 0 ? p->elapsed_s / did * (p->total - done) : -1);
    ADD(" | ETA %s", eta);
    size_t rss = p->rss_bytes ? p->rss_bytes : dx_rss_bytes();
    ADD(" | RSS %.0f MB", rss / 1048576.0);
#undef ADD
    return buf;
}
