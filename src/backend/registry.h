/* registry.h - the backends compiled into this build, their devices, and how
 * a device is named on the command line and in configs.
 *
 * A device spec is "cpu", "cuda", "cuda:N", "hip" or "hip:N" (N = device index,
 * default 0). The registry is the one place that knows which backends exist:
 * model code, the trainer and the CLI pass a dx_backend_params through. */
#ifndef DX_REGISTRY_H
#define DX_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "backend/dx_backend.h"

#define DX_BACKEND_DEFAULT "cpu" /* what a NULL or empty name means */

/* One device as a backend sees it (for `dinox doctor` and the logs). */
typedef struct dx_device_info {
    char name[128];    /* "AMD Ryzen AI MAX+ 395", "NVIDIA H200" */
    char arch[32];     /* ISA or architecture: "x86-64 avx512", "sm_90", "gfx1151" */
    uint64_t mem_bytes; /* memory this device can address (host RAM on the CPU) */
    int unified;       /* 1 when device memory is host memory */
    char driver[64];   /* driver version ("" when none) */
    char runtime[64];  /* runtime / library version */
    char notes[256];   /* anything else that matters (BLAS library present, ...) */
} dx_device_info;

typedef struct dx_backend_entry {
    const char *name;  /* "cpu", "cuda", "hip" */
    int compiled;      /* 0: known, not in this build (create fails, doctor says so) */
    const char *build_hint; /* how to build it in, when not compiled */
    dx_status (*create)(dx_backend **out, const dx_backend_params *p, dx_err *err);
    /* devices present now (0 with a reason in why[] when none or not usable) */
    int (*device_count)(char *why, size_t why_len);
    dx_status (*device_info)(int device, dx_device_info *info, dx_err *err);
} dx_backend_entry;

/* All known backends, compiled in or not; *n receives the count. */
const dx_backend_entry *dx_backend_registry(int *n);
/* The entry named `name` (NULL/"" = the default), or NULL. */
const dx_backend_entry *dx_backend_find(const char *name);

/* Parses a device spec ("cpu", "cuda:1") into p->name (a registry string,
 * not the spec's memory) and p->device; p->nthreads is left as it is. */
dx_status dx_backend_parse_device(const char *spec, dx_backend_params *p, dx_err *err);
/* parse + create: the one call a command needs ("cuda:1", NULL = the default) */
dx_status dx_backend_open(dx_backend **out, const char *device_spec, int nthreads, dx_err *err);
/* "cpu" or "cuda:1" for params (buf of len >= 32). */
const char *dx_backend_device_string(const dx_backend_params *p, char *buf, size_t len);

#endif /* DX_REGISTRY_H */
