/* cpu_backend.c - the fp32 CPU backend: fills dx_backend_ops with host-memory
 * management, the oneDNN GEMM (cpu_gemm.c), the float kernels
 * (cpu_kernels.inc via cpu_kernels_f32.c), the GEMM-based attention
 * (cpu_attention.c) and the vector/optimizer ops (cpu_vec.c).
 *
 * Threads: OpenMP everywhere (oneDNN uses the same OpenMP runtime);
 * nthreads > 0 sets omp_set_num_threads once at creation. The loss kernels
 * (be->loss) live in cpu_loss*.c. */
#include "backend/cpu/cpu_backend.h"

#include <malloc.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "backend/dx_backend_info.h"
#include "core/dx_bf16.h"
#include "core/dx_meminfo.h"
#include "core/dx_sensors.h"
#include "backend/cpu/cpu_loss.h"
#include "backend/cpu/cpu_vec.h"

/* ---- memory: plain host memory, 64-byte aligned, zero-filled ---- */

/* private state: the bf16 GEMM's primitive cache, made on first use; the
 * bytes of alloc memory held (malloc_usable_size, so free needs no header;
 * atomic: the loader's threads may allocate while the trainer runs) */
typedef struct {
    dx_cpu_bf16 *bf16;
    _Atomic size_t bytes_in_use, bytes_peak;
} cpu_state;

static void *aligned_zeroed(size_t bytes) {
    size_t sz = (bytes + 63) / 64 * 64; /* aligned_alloc needs a multiple of the alignment */
    if (sz == 0) sz = 64;
    void *p = aligned_alloc(64, sz);
    if (p) memset(p, 0, sz);
    return p;
}
static void *cpu_alloc(dx_backend *be, size_t bytes) {
    void *p = aligned_zeroed(bytes);
    if (p) {
        cpu_state *st = be->impl;
        const size_t sz = malloc_usable_size(p);
        size_t now = atomic_fetch_add(&st->bytes_in_use, sz) + sz;
        size_t peak = atomic_load(&st->bytes_peak);
        while (now > peak && !atomic_compare_exchange_weak(&st->bytes_peak, &peak, now)) {
        }
    }
    return p;
}
static void cpu_free(dx_backend *be, void *p) {
    if (!p) return;
    cpu_state *st = be->impl;
    atomic_fetch_sub(&st->bytes_in_use, malloc_usable_size(p));
    free(p);
}
static void cpu_upload(dx_backend *be, void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
}
static void cpu_download(dx_backend *be, void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
}
static void cpu_copy(dx_backend *be, void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src) memmove(dst, src, bytes);
}
static void cpu_zero(dx_backend *be, void *dst, size_t bytes) {
    if (bytes) memset(dst, 0, bytes);
}
static void cpu_sync(dx_backend *be) { (void)be; /* host ops complete on return */ }
/* no page locking on the CPU: staging memory is ordinary aligned memory */
static void *cpu_host_alloc(dx_backend *be, size_t bytes) { return aligned_zeroed(bytes); }
static void cpu_device_stats(dx_backend *be, dx_device_stats *out) {
    cpu_state *st = be->impl;
    uint64_t total = 0;
    dx_meminfo(&total, NULL);
    out->mem_in_use = (double)atomic_load(&st->bytes_in_use);
    out->mem_peak = (double)atomic_load(&st->bytes_peak);
    out->mem_total = total ? (double)total : -1;
    out->busy_s = -1; /* ops run inline on the calling threads: the step time is the busy time */
    out->temp_c = dx_sensor_cpu_temp_c();
    out->clock_mhz = dx_sensor_cpu_mhz();
}
static void cpu_host_free(dx_backend *be, void *p) { free(p); }

/* ---- compute: thin wrappers over the float kernels ---- */

static void cpu_gemm(dx_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                     int lda, const float *B, int ldb, float beta, float *C, int ldc, int batch,
                     int64_t sa, int64_t sb, int64_t sc) {
    dx_cpu_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, batch, sa, sb, sc);
}

static void cpu_gemm_bf16(dx_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                          int lda, const float *B, int ldb, float beta, float *C, int ldc, int batch, int64_t sa,
                          int64_t sb, int64_t sc) {
    cpu_state *st = be->impl;
    if (!st->bf16) st->bf16 = dx_cpu_bf16_create(); /* NULL: dx_cpu_gemm_bf16 falls back to fp32, once warned */
    dx_cpu_gemm_bf16(st->bf16, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, batch, sa, sb, sc);
}

/* cpu_<op>(be, ...) -> dx_cpu_<op>_f32(...), for every kernel of the list */
#define DX_UNPAREN(...) __VA_ARGS__
#define real float
#define CPU_WRAP(op, params, args) \
    static void cpu_##op(dx_backend *be, DX_UNPAREN params) { (void)be; dx_cpu_##op##_f32 args; }
DX_CPU_KERNELS_TABLE(CPU_WRAP)
#undef CPU_WRAP
#undef real

static void cpu_attention_forward(dx_backend *be, float *out, float *att, float *lse, const float *qkv, int N,
                                  int T, int H, int Dh, float scale) {
    dx_cpu_attention_forward_gemm(out, att, lse, qkv, N, T, H, Dh, scale);
}
static void cpu_attention_backward(dx_backend *be, float *dqkv, const float *dout, const float *qkv,
                                   const float *out, const float *lse, int N, int T, int H, int Dh, float scale) {
    dx_cpu_attention_backward_gemm(dqkv, dout, qkv, out, lse, N, T, H, Dh, scale);
}
static void cpu_to_bf16(dx_backend *be, uint16_t *dst, const float *src, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) dst[i] = dx_f32_to_bf16(src[i]);
}
static void cpu_from_bf16(dx_backend *be, float *dst, const uint16_t *src, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) dst[i] = dx_bf16_widen(src[i]);
}
static void cpu_scale(dx_backend *be, float *x, float s, size_t n) { dx_cpu_scale_f32(x, s, n); }
static void cpu_axpy(dx_backend *be, float *y, float a, const float *x, size_t n) {
    dx_cpu_axpy_f32(y, a, x, n);
}
static double cpu_sumsq(dx_backend *be, const float *x, size_t n) { return dx_cpu_sumsq_f32(x, n); }
static int cpu_nonfinite(dx_backend *be, const float *x, size_t n) { return dx_cpu_nonfinite_f32(x, n); }
static void cpu_adamw(dx_backend *be, float *p, const float *g, float *m, float *v, size_t n, float lr,
                      float beta1, float beta2, float eps, float wd, int t) {
    dx_cpu_adamw_f32(p, g, m, v, n, lr, beta1, beta2, eps, wd, t);
}
static void cpu_ema(dx_backend *be, float *teacher, const float *student, size_t n, float m) {
    dx_cpu_ema_f32(teacher, student, n, m);
}
/* Per segment, the same float arithmetic as one adamw call per tensor
 * (optim.c's former loop), so the results are bit-identical. */
static void cpu_adamw_multi(dx_backend *be, float *p, const float *g, float *m, float *v,
                            const dx_segment *seg, int nseg, float lr, float last_layer_lr, float wd,
                            float beta1, float beta2, float eps, int t) {
    for (int i = 0; i < nseg; i++) {
        const dx_segment *s = &seg[i];
        float slr = (s->group ? last_layer_lr : lr) * s->lr_mult;
        float swd = wd * s->wd_mult;
        dx_cpu_adamw_f32(p + s->offset, g + s->offset, m + s->offset, v + s->offset, (size_t)s->n, slr,
                         beta1, beta2, eps, swd, t);
    }
}
static void cpu_ema_multi(dx_backend *be, float *teacher, const float *student, const dx_segment *seg,
                          int nseg, float m) {
    for (int i = 0; i < nseg; i++)
        dx_cpu_ema_f32(teacher + seg[i].offset, student + seg[i].offset, (size_t)seg[i].n, m);
}

static const dx_backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = dx_cpu_backend_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .to_bf16 = cpu_to_bf16,
    .from_bf16 = cpu_from_bf16,
    .sync = cpu_sync,
    .host_alloc = cpu_host_alloc,
    .device_stats = cpu_device_stats,
    .host_free = cpu_host_free,
    .gemm = cpu_gemm,
    .gemm_bf16 = cpu_gemm_bf16,
#define CPU_ENTRY(op, params, args) .op = cpu_##op,
    DX_CPU_KERNELS_TABLE(CPU_ENTRY)
#undef CPU_ENTRY
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
    .scale = cpu_scale,
    .axpy = cpu_axpy,
    .sumsq = cpu_sumsq,
    .nonfinite = cpu_nonfinite,
    .adamw = cpu_adamw,
    .ema = cpu_ema,
    .adamw_multi = cpu_adamw_multi,
    .ema_multi = cpu_ema_multi,
};

dx_status dx_cpu_backend_create(dx_backend **out, const dx_backend_params *p, dx_err *err) {
    *out = NULL;
    int nthreads = p ? p->nthreads : 0;
    dx_backend *be = calloc(1, sizeof *be);
    cpu_state *st = calloc(1, sizeof *st);
    if (!be || !st) {
        free(be);
        free(st);
        return dx_fail(err, DX_ENOMEM, "cpu backend: out of memory");
    }
    if (nthreads > 0) omp_set_num_threads(nthreads);
    be->ops = &cpu_ops;
    be->loss = dx_cpu_loss_ops();
    be->impl = st;
    be->precision = p ? p->precision : DX_PREC_FP32;
    be->nthreads = nthreads > 0 ? nthreads : omp_get_max_threads();
    *out = be;
    return DX_OK;
}

void dx_cpu_backend_destroy(dx_backend *be) {
    cpu_state *st = be->impl;
    if (st) dx_cpu_bf16_destroy(st->bf16);
    free(st);
    free(be);
}

int dx_cpu_device_count(char *why, size_t why_len) {
    (void)why, (void)why_len;
    return 1;
}

/* first "key : value" line of /proc/cpuinfo with this key */
static int cpuinfo_field(const char *key, char *val, size_t len) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return 0;
    char line[4096];
    int found = 0;
    size_t kl = strlen(key);
    while (!found && fgets(line, sizeof line, f)) {
        if (strncmp(line, key, kl) || (line[kl] != ' ' && line[kl] != '\t' && line[kl] != ':')) continue;
        char *c = strchr(line, ':');
        if (!c) continue;
        c++;
        while (*c == ' ') c++;
        c[strcspn(c, "\n")] = 0;
        snprintf(val, len, "%s", c);
        found = 1;
    }
    fclose(f);
    return found;
}

static int has_flag(const char *flags, const char *flag) {
    size_t n = strlen(flag);
    for (const char *p = flags; (p = strstr(p, flag)); p += n)
        if ((p == flags || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0)) return 1;
    return 0;
}

dx_status dx_cpu_device_info(int device, dx_device_info *info, dx_err *err) {
    memset(info, 0, sizeof *info);
    if (device != 0) return dx_fail(err, DX_EINVAL, "cpu: only device 0 exists");
    if (!cpuinfo_field("model name", info->name, sizeof info->name))
        snprintf(info->name, sizeof info->name, "unknown CPU");
    static char flags[8192];
    flags[0] = 0;
    cpuinfo_field("flags", flags, sizeof flags);
#if defined(__x86_64__)
    snprintf(info->arch, sizeof info->arch, "x86-64");
    static const char *isa[] = {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16"};
    for (size_t i = 0; i < sizeof isa / sizeof isa[0]; i++)
        if (has_flag(flags, isa[i])) {
            size_t u = strlen(info->notes);
            snprintf(info->notes + u, sizeof info->notes - u, "%s%s", u ? " " : "", isa[i]);
        }
#elif defined(__aarch64__)
    snprintf(info->arch, sizeof info->arch, "aarch64");
#else
    snprintf(info->arch, sizeof info->arch, "unknown");
#endif
    dx_meminfo(&info->mem_bytes, NULL);
    info->unified = 1;
    dx_backend_info bi;
    dx_backend_info_get(&bi);
    snprintf(info->runtime, sizeof info->runtime, "oneDNN %.40s", bi.onednn);
    return DX_OK;
}
