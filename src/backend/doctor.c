/* doctor.c - see doctor.h. */
#include "backend/doctor.h"

#include <cjson/cJSON.h>
#include <dlfcn.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/dx_meminfo.h"


/* The environment variables that change what dinox or its libraries do. */
static const struct {
    const char *name, *meaning;
} env_vars[] = {
    {"OMP_NUM_THREADS", "OpenMP threads for the CPU kernels and oneDNN (default: all cores)"},
    {"OMP_WAIT_POLICY", "PASSIVE: idle OpenMP threads sleep (needed on a shared or oversubscribed machine)"},
    {"OMP_PROC_BIND", "pins OpenMP threads to cores (true/close/spread)"},
    {"ONEDNN_MAX_CPU_ISA", "caps the ISA oneDNN dispatches to (e.g. AVX2 to compare with AVX-512)"},
    {"CUDA_VISIBLE_DEVICES", "which NVIDIA GPUs the CUDA backend sees (and their numbering)"},
    {"HIP_VISIBLE_DEVICES", "which AMD GPUs the HIP backend sees"},
    {"HSA_OVERRIDE_GFX_VERSION", "makes ROCm treat the GPU as another gfx target (11.0.0 borrows gfx1100 kernels "
                                 "on gfx1151): a hack; unset it with a native gfx1151 build"},
    {"ROCBLAS_USE_HIPBLASLT", "1: rocBLAS/hipBLAS route GEMMs to hipBLASLt (on gfx1151 about 2x faster than "
                              "rocBLAS's own kernels)"},
    {"HSA_XNACK", "1: page migration for managed memory; dinox does not use managed memory"},
    {"NCCL_DEBUG", "INFO: NCCL/RCCL print their transport choices (multi-process runs)"},
};

/* Which of a backend's vendor libraries the dynamic linker finds here: tells
 * a user whether a GPU build would work on this machine even when this
 * binary has no GPU backend. */
static void probe_libs(const char *backend, char *out, size_t len) {
    static const char *cuda[] = {"libcuda.so.1", "libcudart.so", "libcublasLt.so", "libnccl.so.2", NULL};
    static const char *hip[] = {"libamdhip64.so", "libhipblaslt.so", "librccl.so", NULL};
    const char **libs = !strcmp(backend, "cuda") ? cuda : !strcmp(backend, "hip") ? hip : NULL;
    out[0] = 0;
    for (int i = 0; libs && libs[i]; i++) {
        /* kept loaded: unloading a vendor library can strand its static C++
         * allocations (LeakSanitizer reports them); the process ends soon */
        void *h = dlopen(libs[i], RTLD_LAZY | RTLD_LOCAL);
        size_t u = strlen(out);
        snprintf(out + u, len - u, "%s%s %s", u ? ", " : "", libs[i], h ? "found" : "missing");
    }
}

/* A small GEMM and LayerNorm through the ops table against double sums:
 * the backend allocates, computes and returns the right numbers. */
static int smoke_test(dx_backend *be, char *why, size_t len) {
    enum { M = 33, N = 17, K = 29 };
    float a[M * K], b[K * N], c[M * N], ln[M * N], mean[M], rstd[M], w[N], bb[N];
    for (int i = 0; i < M * K; i++) a[i] = (float)((i * 37 % 101) - 50) / 50.0f;
    for (int i = 0; i < K * N; i++) b[i] = (float)((i * 53 % 97) - 48) / 48.0f;
    for (int i = 0; i < N; i++) w[i] = 1.0f + 0.01f * (float)i, bb[i] = 0.1f;
    const dx_backend_ops *o = be->ops;
    float *da = o->alloc(be, sizeof a), *db = o->alloc(be, sizeof b), *dc = o->alloc(be, sizeof c);
    float *dl = o->alloc(be, sizeof ln), *dm = o->alloc(be, sizeof mean), *dr = o->alloc(be, sizeof rstd);
    float *dw = o->alloc(be, sizeof w), *dbb = o->alloc(be, sizeof bb);
    int ok = 0;
    if (!da || !db || !dc || !dl || !dm || !dr || !dw || !dbb) {
        snprintf(why, len, "cannot allocate %zu bytes", sizeof a + sizeof b + sizeof c);
        goto out;
    }
    o->upload(be, da, a, sizeof a);
    o->upload(be, db, b, sizeof b);
    o->upload(be, dw, w, sizeof w);
    o->upload(be, dbb, bb, sizeof bb);
    dx_gemm(be, 0, 0, M, N, K, 1.0f, da, K, db, N, 0.0f, dc, N);
    o->layernorm_forward(be, dl, dm, dr, dc, dw, dbb, M, N, 1e-5f);
    o->download(be, c, dc, sizeof c);
    o->download(be, ln, dl, sizeof ln);
    double worst = 0, worst_ln = 0;
    for (int i = 0; i < M; i++) {
        double row[N], mu = 0, var = 0;
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += (double)a[i * K + k] * b[k * N + j];
            row[j] = s;
            mu += s / N;
            double e = fabs(s - c[i * N + j]) / (1 + fabs(s));
            if (!(e <= worst)) worst = e;
        }
        for (int j = 0; j < N; j++) var += (row[j] - mu) * (row[j] - mu) / N;
        for (int j = 0; j < N; j++) {
            double r = (row[j] - mu) / sqrt(var + 1e-5) * w[j] + bb[j];
            double e = fabs(r - ln[i * N + j]) / (1 + fabs(r));
            if (!(e <= worst_ln)) worst_ln = e;
        }
    }
    if (worst > 1e-4 || worst_ln > 1e-4)
        snprintf(why, len, "wrong results: GEMM error %.2g, LayerNorm error %.2g", worst, worst_ln);
    else ok = 1;
out:;
    void *bufs[] = {da, db, dc, dl, dm, dr, dw, dbb};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) o->free(be, bufs[i]);
    return ok;
}

void dx_doctor_run(dx_doctor *d) {
    memset(d, 0, sizeof *d);
    dx_backend_info_get(&d->info);
    d->cores_online = sysconf(_SC_NPROCESSORS_ONLN);
    d->omp_wait_policy = getenv("OMP_WAIT_POLICY");
    dx_meminfo(&d->mem_total, &d->mem_available);
    for (size_t i = 0; i < sizeof env_vars / sizeof env_vars[0] && d->nenv < DX_DOCTOR_MAX_ENV; i++)
        d->env[d->nenv++] = (dx_doctor_env){env_vars[i].name, getenv(env_vars[i].name), env_vars[i].meaning};
    int n;
    const dx_backend_entry *e = dx_backend_registry(&n);
    for (int i = 0; i < n && i < DX_DOCTOR_MAX_BACKENDS; i++) {
        dx_doctor_backend *b = &d->be[d->nbackends++];
        b->name = e[i].name;
        b->compiled = e[i].compiled;
        probe_libs(b->name, b->libs, sizeof b->libs);
        if (!b->compiled) {
            snprintf(b->why, sizeof b->why, "not in this build: %s", e[i].build_hint);
            snprintf(b->verdict, sizeof b->verdict, "not usable: not in this build (%s)", e[i].build_hint);
            continue;
        }
        b->ndev = e[i].device_count(b->why, sizeof b->why);
        for (int k = 0; k < b->ndev && k < DX_DOCTOR_MAX_DEVICES; k++) {
            dx_err err = {0};
            if (e[i].device_info(k, &b->dev[k], &err))
                snprintf(b->dev[k].notes, sizeof b->dev[k].notes, "device info failed: %s", err.msg);
        }
        if (b->ndev <= 0) {
            snprintf(b->verdict, sizeof b->verdict, "not usable: no device%s%s", b->why[0] ? " (" : "",
                     b->why[0] ? b->why : "");
            if (b->why[0]) strncat(b->verdict, ")", sizeof b->verdict - strlen(b->verdict) - 1);
            continue;
        }
        dx_backend *be = NULL;
        dx_err err = {0};
        if (dx_backend_create(&be, &(dx_backend_params){.name = e[i].name}, &err)) {
            snprintf(b->verdict, sizeof b->verdict, "not usable: %s", err.msg);
            continue;
        }
        char why[200] = "";
        b->usable = smoke_test(be, why, sizeof why);
        dx_backend_destroy(be);
        if (b->usable) snprintf(b->verdict, sizeof b->verdict, "usable (device 0 passed the GEMM + LayerNorm check)");
        else snprintf(b->verdict, sizeof b->verdict, "not usable: %s", why);
    }
}

int dx_doctor_cpu_ok(const dx_doctor *d) {
    for (int i = 0; i < d->nbackends; i++)
        if (!strcmp(d->be[i].name, DX_BACKEND_DEFAULT)) return d->be[i].usable;
    return 0;
}

static double gib(uint64_t b) { return (double)b / (1024.0 * 1024 * 1024); }

void dx_doctor_print(const dx_doctor *d, FILE *f) {
    fprintf(f, "memory:      %.1f GiB total, %.1f GiB available\n", gib(d->mem_total), gib(d->mem_available));
    fprintf(f, "cores:       %ld online\n", d->cores_online);
    fprintf(f, "OpenMP:      %d threads (%d processors), wait policy %s\n", d->info.omp_max_threads,
            d->info.omp_procs, d->omp_wait_policy ? d->omp_wait_policy : "default (active spinning)");
    fprintf(f, "oneDNN:      %s\n", d->info.onednn);
    fprintf(f, "oneDNN ISA:  %s\n", d->info.onednn_isa);
    for (int i = 0; i < d->nbackends; i++) {
        const dx_doctor_backend *b = &d->be[i];
        fprintf(f, "\nbackend %s: %s\n", b->name, b->verdict);
        if (b->libs[0]) fprintf(f, "  libraries: %s\n", b->libs);
        for (int k = 0; k < b->ndev && k < DX_DOCTOR_MAX_DEVICES; k++) {
            const dx_device_info *v = &b->dev[k];
            fprintf(f, "  device %d:  %s\n", k, v->name);
            fprintf(f, "    arch:    %s%s%s\n", v->arch, v->notes[0] ? "; " : "", v->notes);
            fprintf(f, "    memory:  %.1f GiB%s\n", gib(v->mem_bytes), v->unified ? " (unified with the host)" : "");
            if (v->driver[0]) fprintf(f, "    driver:  %s\n", v->driver);
            if (v->runtime[0]) fprintf(f, "    runtime: %s\n", v->runtime);
        }
    }
    fprintf(f, "\nenvironment:\n");
    for (int i = 0; i < d->nenv; i++)
        fprintf(f, "  %-26s %-10s %s\n", d->env[i].name, d->env[i].value ? d->env[i].value : "(unset)",
                d->env[i].meaning);
    if (d->omp_wait_policy == NULL || strcasecmp(d->omp_wait_policy, "passive"))
        fprintf(f, "\nadvice: OMP_WAIT_POLICY is not PASSIVE; on a machine shared with other jobs set it "
                   "(an active-waiting OpenMP team loses badly when a thread is descheduled).\n");
    for (int i = 0; i < d->nenv; i++)
        if (!strcmp(d->env[i].name, "HSA_OVERRIDE_GFX_VERSION") && d->env[i].value)
            fprintf(f, "advice: HSA_OVERRIDE_GFX_VERSION=%s is set; with a native gfx1151 build unset it.\n",
                    d->env[i].value);
}

char *dx_doctor_json(const dx_doctor *d) {
    cJSON *r = cJSON_CreateObject();
    if (!r) return NULL;
    cJSON_AddNumberToObject(r, "mem_total_bytes", (double)d->mem_total);
    cJSON_AddNumberToObject(r, "mem_available_bytes", (double)d->mem_available);
    cJSON_AddNumberToObject(r, "cores_online", (double)d->cores_online);
    cJSON *omp = cJSON_AddObjectToObject(r, "openmp");
    cJSON_AddNumberToObject(omp, "max_threads", d->info.omp_max_threads);
    cJSON_AddNumberToObject(omp, "procs", d->info.omp_procs);
    if (d->omp_wait_policy) cJSON_AddStringToObject(omp, "wait_policy", d->omp_wait_policy);
    else cJSON_AddNullToObject(omp, "wait_policy");
    cJSON *dnn = cJSON_AddObjectToObject(r, "onednn");
    cJSON_AddStringToObject(dnn, "version", d->info.onednn);
    cJSON_AddStringToObject(dnn, "isa", d->info.onednn_isa);
    cJSON *bes = cJSON_AddArrayToObject(r, "backends");
    for (int i = 0; i < d->nbackends; i++) {
        const dx_doctor_backend *b = &d->be[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(bes, o);
        cJSON_AddStringToObject(o, "name", b->name);
        cJSON_AddBoolToObject(o, "compiled", b->compiled);
        cJSON_AddBoolToObject(o, "usable", b->usable);
        cJSON_AddStringToObject(o, "verdict", b->verdict);
        cJSON_AddStringToObject(o, "libraries", b->libs);
        cJSON *devs = cJSON_AddArrayToObject(o, "devices");
        for (int k = 0; k < b->ndev && k < DX_DOCTOR_MAX_DEVICES; k++) {
            const dx_device_info *v = &b->dev[k];
            cJSON *x = cJSON_CreateObject();
            cJSON_AddItemToArray(devs, x);
            cJSON_AddNumberToObject(x, "index", k);
            cJSON_AddStringToObject(x, "name", v->name);
            cJSON_AddStringToObject(x, "arch", v->arch);
            cJSON_AddStringToObject(x, "features", v->notes);
            cJSON_AddNumberToObject(x, "mem_bytes", (double)v->mem_bytes);
            cJSON_AddBoolToObject(x, "unified", v->unified);
            cJSON_AddStringToObject(x, "driver", v->driver);
            cJSON_AddStringToObject(x, "runtime", v->runtime);
        }
    }
    cJSON *env = cJSON_AddObjectToObject(r, "environment");
    for (int i = 0; i < d->nenv; i++) {
        if (d->env[i].value) cJSON_AddStringToObject(env, d->env[i].name, d->env[i].value);
        else cJSON_AddNullToObject(env, d->env[i].name);
    }
    char *s = cJSON_Print(r);
    cJSON_Delete(r);
    return s;
}
