/* plan.c - see plan.h. */
#include "train/plan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "backend/dx_backend.h"
#include "core/dx_meminfo.h"
#include "io/checkpoint.h"
#include "train/trainer.h"

/* Resident memory of the process before any model allocation (code, libc,
 * OpenMP and oneDNN runtime, thread stacks): measured with dinox on Debian 12. */
#define DX_RUNTIME_BYTES (40u << 20)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Best of a few 1024^3 linear-layer GEMMs through the backend, under the
 * precision policy (bf16: the bf16 GEMM): this machine's usable peak. */
static double measure_gemm_flops(int threads, int precision) {
    dx_backend *be;
    if (dx_backend_create(&be, &(dx_backend_params){.nthreads = threads, .precision = precision}, NULL)) return 0;
    const int n = 1024;
    size_t bytes = (size_t)n * n * sizeof(float);
    float *a = be->ops->alloc(be, bytes), *b = be->ops->alloc(be, bytes), *c = be->ops->alloc(be, bytes);
    double best = 0;
    if (a && b && c) {
        for (int r = 0; r < 4; r++) {
            double t0 = now_s();
            dx_gemm_linear(be, 0, 1, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
            be->ops->sync(be); /* a device GEMM returns before it has run */
            double t = now_s() - t0;
            if (r > 0 && 2.0 * n * n * n / t > best) best = 2.0 * n * n * n / t;
        }
    }
    if (a) be->ops->free(be, a);
    if (b) be->ops->free(be, b);
    if (c) be->ops->free(be, c);
    dx_backend_destroy(be);
    return best;
}

dx_status dx_device_get(const char *name, int threads, int precision, dx_device *d, dx_err *err) {
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    if (!strcmp(name, "cpu")) {
        uint64_t total;
        dx_meminfo(&total, NULL);
        d->mem_bytes = (double)total;
        d->bw_bytes_s = 40e9;
        d->flops = measure_gemm_flops(threads, precision);
        d->efficiency = 0.6; /* measured whole-step fraction of the GEMM peak: docs/performance.md */
        d->unified = 1;
    } else if (!strcmp(name, "strix-halo")) {
        /* Ryzen AI MAX+ 395: 128 GB LPDDR5X, ~256 GB/s; gfx1151 hipBLASLt bf16 ~30 TFLOPS
         * measured by others; up to ~96 GB GPU-visible. */
        d->mem_bytes = 96e9;
        d->bw_bytes_s = 256e9;
        d->flops = 30e12;
        d->efficiency = 0.45;
        d->unified = 1;
    } else if (!strcmp(name, "rtx-4090")) {
        d->mem_bytes = 24e9;
        d->bw_bytes_s = 1008e9;
        d->flops = 165e12; /* bf16 dense, fp32 accumulate */
        d->efficiency = 0.45;
    } else if (!strcmp(name, "h100")) {
        d->mem_bytes = 80e9;
        d->bw_bytes_s = 3350e9;
        d->flops = 989e12; /* SXM bf16 dense */
        d->efficiency = 0.45;
    } else if (!strcmp(name, "h200")) {
        d->mem_bytes = 141e9; /* HBM3e */
        d->bw_bytes_s = 4800e9;
        d->flops = 989e12; /* SXM bf16 dense, as H100 */
        d->efficiency = 0.45;
    } else if (!strcmp(name, "a100")) {
        d->mem_bytes = 80e9;
        d->bw_bytes_s = 2039e9;
        d->flops = 312e12; /* SXM bf16 dense */
        d->efficiency = 0.45;
    } else {
        return dx_fail(err, DX_EINVAL, "unknown device '%s' (cpu, strix-halo, rtx-4090, a100, h100, h200, or give "
                                       "--mem-gb/--tflops/--bw-gbs)", name);
    }
    return DX_OK;
}

int dx_plan_budget(const dx_plan *st, int n, double days, int64_t *steps_needed) {
    double total = 0;
    int longest = -1;
    for (int i = 0; i < n; i++) {
        total += st[i].run_s;
        if (longest < 0 || st[i].run_s > st[longest].run_s) longest = i;
    }
    *steps_needed = 0;
    const double over = total - days * 86400.0;
    if (over <= 0 || longest < 0) return -1;
    const double keep = st[longest].run_s - over;
    *steps_needed = keep > 0 && st[longest].step_s > 0 ? (int64_t)(keep / st[longest].step_s) : 0;
    return longest;
}

double dx_host_mem_usable(const char **what) {
    const char *w = "MemAvailable";
    uint64_t avail;
    dx_meminfo(NULL, &avail);
    double best = (double)avail;
    /* cgroup v2: a container's or a Slurm job's limit */
    double max = 0, cur = 0;
    FILE *m = fopen("/sys/fs/cgroup/memory.max", "r"), *c = fopen("/sys/fs/cgroup/memory.current", "r");
    if (m && c && fscanf(m, "%lf", &max) == 1 && fscanf(c, "%lf", &cur) == 1 && max > cur &&
        (best == 0 || max - cur < best)) {
        best = max - cur;
        w = "cgroup memory.max";
    }
    if (m) fclose(m);
    if (c) fclose(c);
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (best == 0 || (double)rl.rlim_cur < best)) {
        best = (double)rl.rlim_cur;
        w = "ulimit -v";
    }
    if (what) *what = w;
    return best;
}

dx_status dx_plan_check_fits(const dx_config *c, const dx_ssl_config *sc, double mem_bytes, const char *mem_what,
                             dx_err *err) {
    if (mem_bytes <= 0) return DX_OK; /* nothing known: do not guess */
    dx_device d = {.mem_bytes = mem_bytes};
    snprintf(d.name, sizeof d.name, "this machine");
    dx_plan p;
    dx_status st = dx_plan_compute_ssl(c, sc, &d, &p, err);
    if (st) return st;
    /* the same 8% margin as max_batch: allocator slack and fragmentation */
    if ((double)p.total <= 0.92 * mem_bytes) return DX_OK;
    const double G = 1e9;
    char fix[360];
    char chunk[96] = "";
    if (p.chunk_saving)
        snprintf(chunk, sizeof chunk, ", set train.teacher_chunk=%d (saves %.2f GB)", DX_PLAN_HINT_CHUNK,
                 p.chunk_saving / G);
    char rec[96] = "";
    if (p.recompute_saving)
        snprintf(rec, sizeof rec, ", set train.ibot_recompute=true (saves %.2f GB)", p.recompute_saving / G);
    char micro[96] = "";
    if (p.fit_micro_batch)
        snprintf(micro, sizeof micro, ", or keep it with train.micro_batch=%d (the student in passes of %d images)",
                 p.fit_micro_batch, p.fit_micro_batch);
    if (p.max_batch >= 1)
        snprintf(fix, sizeof fix, "The largest batch that fits is %d: set train.batch_size=%d%s%s%s", p.max_batch,
                 p.max_batch, micro, chunk, rec);
    else if (p.micro_batch < p.batch)
        snprintf(fix, sizeof fix, "Not even batch %d fits with student passes of %d images: lower "
                 "train.micro_batch, use a smaller model.arch or crops%s%s", p.micro_batch, p.micro_batch, chunk, rec);
    else
        snprintf(fix, sizeof fix, "Not even batch 1 fits: use a smaller model.arch or crops%s%s", chunk, rec);
    return dx_fail(err, DX_ENOMEM,
                   "the memory plan says this config does not fit: it needs %.2f GB at its peak, %.2f GB usable "
                   "(%s, with an 8%% margin: %.2f GB). Breakdown: parameters %.2f, gradients %.2f, AdamW %.2f, "
                   "EMA teacher %.2f, Gram teacher %.2f, activations %.2f (batch %d, %.1f MB per image), loader "
                   "%.2f, checkpoint staging %.2f, runtime %.2f GB. %s, or lower crops.local_count / the crop sizes "
                   "(`dinox plan -c CONFIG` shows the plan; --force runs anyway)",
                   p.total / G, mem_bytes / G, mem_what ? mem_what : "?", 0.92 * mem_bytes / G, p.params / G,
                   p.grads / G, p.adam / G, p.teacher / G, p.gram_teacher / G, p.acts / G, p.batch,
                   p.acts_per_image / 1e6, p.loader / G, p.staging / G, p.runtime / G, fix);
}

void dx_plan_links(size_t grad_bytes, int ranks, double step_s, dx_plan_link links[DX_PLAN_LINKS]) {
    /* achievable rates, not line rates: TCP over Ethernet reaches ~90% of the line,
     * NVLink/InfiniBand figures are NCCL's typical bus bandwidths */
    static const struct { const char *name; double gbs, lat_us; } L[DX_PLAN_LINKS] = {
        {"1 GbE", 0.112, 50},          {"10 GbE", 1.12, 20},       {"25 GbE", 2.8, 15},
        {"100 Gb InfiniBand", 11.0, 3}, {"400 Gb InfiniBand", 44.0, 3}, {"NVLink (H100/H200)", 300.0, 5}};
    for (int i = 0; i < DX_PLAN_LINKS; i++) {
        dx_plan_link *l = &links[i];
        l->name = L[i].name;
        l->bytes_s = L[i].gbs * 1e9;
        l->latency_s = L[i].lat_us * 1e-6;
        l->comm_s = ranks > 1 ? 2.0 * (ranks - 1) / ranks * (double)grad_bytes / l->bytes_s +
                                    2.0 * (ranks - 1) * l->latency_s
                              : 0;
        l->efficiency = step_s > 0 ? step_s / (step_s + l->comm_s) : 0;
    }
}

dx_status dx_plan_compute(const dx_config *c, const dx_device *d, dx_plan *p, dx_err *err) {
    dx_ssl_config sc;
    dx_status st = dx_train_ssl_config(c, &sc, err);
    if (st) return st;
    return dx_plan_compute_ssl(c, &sc, d, p, err);
}

dx_status dx_plan_compute_ssl(const dx_config *c, const dx_ssl_config *scp, const dx_device *d, dx_plan *p,
                              dx_err *err) {
    memset(p, 0, sizeof *p);
    const dx_ssl_config sc = *scp;
    dx_status st;
    /* the activations at batch B and at batch 1: their difference is what one image costs. With
     * micro-batching the student's passes stay at mb images whatever the batch: an image then costs
     * its share of the teachers, targets and crops, measured at batch 2B with the same teacher
     * chunk and the masks over a global batch twice as large */
    const int mb = dx_ssl_micro_batch(&sc) < sc.batch ? sc.micro_batch : 0;
    size_t state, acts = 0, acts1 = 0, part1[DX_SSL_PLAN_PARTS];
    dx_ssl_config one = sc;
    one.batch = 1;
    if (mb) {
        one.batch = 2 * sc.batch;
        one.teacher_chunk = dx_ssl_teacher_chunk(&sc);
        one.mask_batch = sc.mask_batch > 0 ? 2 * sc.mask_batch : 0;
    }
    if ((st = dx_ssl_plan_parts(&sc, &state, p->acts_part, err)) || (st = dx_ssl_plan_parts(&one, NULL, part1, err)))
        return st;
    for (int i = 0; i < DX_SSL_PLAN_PARTS; i++) {
        acts += p->acts_part[i];
        acts1 += part1[i];
    }
    /* state = 5 tables (+ Gram backbone): params, grads, m, v, teacher */
    size_t gram = 0;
    if (sc.use_gram) {
        dx_vit v;
        if ((st = dx_vit_init(&v, &sc.vit, err))) return st;
        gram = v.tab.total * sizeof(float);
        dx_vit_free(&v);
    }
    const size_t per = (state - gram) / 5;
    p->params = p->grads = p->teacher = per;
    p->adam = 2 * per;
    p->gram_teacher = gram;
    p->batch = sc.batch;
    p->acts = acts;
    p->micro_batch = dx_ssl_micro_batch(&sc);
    size_t fixed_acts; /* what does not grow with the batch */
    if (mb) {
        p->acts_per_image = acts1 > acts ? (acts1 - acts) / (size_t)sc.batch : 0;
        for (int i = 0; i < DX_SSL_PLAN_PARTS; i++)
            p->acts_part_per_image[i] =
                part1[i] > p->acts_part[i] ? (part1[i] - p->acts_part[i]) / (size_t)sc.batch : 0;
        const size_t scaled = p->acts_per_image * (size_t)sc.batch;
        fixed_acts = acts > scaled ? acts - scaled : 0;
    } else {
        p->acts_per_image = sc.batch > 1 ? (acts - acts1) / (size_t)(sc.batch - 1) : acts;
        for (int i = 0; i < DX_SSL_PLAN_PARTS; i++)
            p->acts_part_per_image[i] = sc.batch > 1 && p->acts_part[i] > part1[i]
                                            ? (p->acts_part[i] - part1[i]) / (size_t)(sc.batch - 1)
                                            : (sc.batch > 1 ? 0 : p->acts_part[i]);
        fixed_acts = acts1 > p->acts_per_image ? acts1 - p->acts_per_image : 0;
    }
    p->teacher_chunk = dx_ssl_teacher_chunk(&sc);
    if (sc.teacher_chunk <= 0 && 2 * sc.batch > DX_PLAN_HINT_CHUNK) {
        dx_ssl_config ch = sc;
        ch.teacher_chunk = DX_PLAN_HINT_CHUNK;
        size_t s2, a2;
        if (dx_ssl_plan_bytes(&ch, &s2, &a2, NULL) == DX_OK && a2 < acts) p->chunk_saving = acts - a2;
    }
    p->ibot_recompute = sc.ibot_recompute;
    if (!sc.ibot_recompute && sc.centering == DX_CENTER_SINKHORN) {
        dx_ssl_config rc = sc;
        rc.ibot_recompute = 1;
        size_t s2, a2;
        if (dx_ssl_plan_bytes(&rc, &s2, &a2, NULL) == DX_OK && a2 < acts) p->recompute_saving = acts - a2;
    }
    /* loader ring: (prefetch + 1) batches when threaded, host float32 crops */
    const size_t img = sizeof(float) * 3 *
                       (2 * (size_t)sc.global_size * sc.global_size + (size_t)sc.n_local * sc.local_size * sc.local_size +
                        (sc.use_gram ? 2 * (size_t)sc.gram_size * sc.gram_size : 0));
    const int slots = c->train.threads ? c->train.prefetch + 1 : 1;
    p->loader = (size_t)slots * sc.batch * img;
    p->staging = DX_CKPT_CHUNK_BYTES; /* checkpoint: the state streamed through one host chunk */
    p->runtime = DX_RUNTIME_BYTES;
    p->total = state + acts + p->loader + p->staging + p->runtime;
    /* largest batch: everything that scales with the batch against what is left */
    const size_t per_image_all = p->acts_per_image + (size_t)slots * img;
    const double left = d->mem_bytes * 0.92 - (double)(state + fixed_acts + p->staging + p->runtime);
    p->max_batch = left > 0 ? (int)(left / per_image_all) : 0;
    if (mb) p->max_batch = p->max_batch / mb * mb; /* whole passes */
    /* without micro-batching: the smallest student pass that would let this batch fit */
    p->fit_micro_batch = 0;
    if (!mb && (double)p->total > 0.92 * d->mem_bytes)
        for (int m = sc.batch / 2; m >= 1; m--) {
            if (sc.batch % m) continue;
            dx_ssl_config t = sc;
            t.micro_batch = m;
            size_t s2, a2;
            if (dx_ssl_plan_bytes(&t, &s2, &a2, NULL) == DX_OK &&
                (double)(s2 + a2 + p->loader + p->staging + p->runtime) <= 0.92 * d->mem_bytes) {
                p->fit_micro_batch = m;
                break;
            }
        }
    p->flops_per_step = dx_ssl_flops_per_step(&sc);
    p->flops_per_image = p->flops_per_step / sc.batch;
    p->epoch_length = c->train.epoch_length;
    p->steps = dx_config_total_steps(c);
    if (d->flops > 0 && d->efficiency > 0) {
        /* compute-bound estimate, with a floor from streaming the state through memory
         * a few times per step (AdamW, EMA, gradients) */
        double t_compute = p->flops_per_step / (d->flops * d->efficiency);
        double t_memory = d->bw_bytes_s > 0 ? 8.0 * state / d->bw_bytes_s : 0;
        p->step_s = t_compute > t_memory ? t_compute : t_memory;
        p->epoch_s = p->step_s * p->epoch_length;
        p->run_s = p->step_s * p->steps;
    }
    return DX_OK;
}
