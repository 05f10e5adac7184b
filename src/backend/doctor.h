/* doctor.h - `dinox doctor`: can this machine run dinox, and on what?
 *
 * Collects the platform facts that decide speed and correctness: the CPU
 * (model, ISA extensions that matter, cores), OpenMP (threads, wait policy),
 * oneDNN (version, the ISA it dispatches to), memory, every backend of the
 * registry with its devices, the environment overrides that change what the
 * GPU stacks do (on Strix Halo in particular), and a verdict per backend from
 * a real smoke test (a small GEMM and a LayerNorm through the ops table,
 * checked against a double computation). */
#ifndef DX_DOCTOR_H
#define DX_DOCTOR_H

#include <stdint.h>
#include <stdio.h>

#include "backend/dx_backend_info.h"
#include "backend/registry.h"

#define DX_DOCTOR_MAX_BACKENDS 8
#define DX_DOCTOR_MAX_DEVICES 8
#define DX_DOCTOR_MAX_ENV 16

typedef struct dx_doctor_backend {
    const char *name;
    int compiled;      /* in this build */
    int ndev;          /* devices present */
    char why[160];     /* why none is present / not compiled */
    dx_device_info dev[DX_DOCTOR_MAX_DEVICES];
    int usable;        /* the smoke test passed on device 0 */
    char verdict[256]; /* one line: "usable" or why not */
    char libs[256];    /* the vendor libraries this backend needs, found or not on this machine */
} dx_doctor_backend;

typedef struct dx_doctor_env {
    const char *name;  /* e.g. "HSA_OVERRIDE_GFX_VERSION" */
    const char *value; /* NULL when unset */
    const char *meaning;
} dx_doctor_env;

typedef struct dx_doctor {
    dx_backend_info info;        /* oneDNN, OpenMP, codecs */
    long cores_online;
    const char *omp_wait_policy; /* OMP_WAIT_POLICY or NULL */
    uint64_t mem_total, mem_available;
    int nbackends;
    dx_doctor_backend be[DX_DOCTOR_MAX_BACKENDS];
    int nenv;
    dx_doctor_env env[DX_DOCTOR_MAX_ENV];
} dx_doctor;

/* Fills d; runs the smoke test on every backend with a device. Never fails:
 * what does not work is recorded in the verdicts. */
void dx_doctor_run(dx_doctor *d);
/* 1 when the CPU backend is usable (the exit status of `dinox doctor`). */
int dx_doctor_cpu_ok(const dx_doctor *d);
void dx_doctor_print(const dx_doctor *d, FILE *f);
/* JSON object, caller frees (NULL on allocation failure). */
char *dx_doctor_json(const dx_doctor *d);

#endif /* DX_DOCTOR_H */
