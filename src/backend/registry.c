/* registry.c - see registry.h. The entries are compiled in: a backend's
 * constructor is referenced only when its build option is on. */
#include "backend/registry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/checked.h"
#include "backend/cpu/cpu_backend.h"
#if defined(DINOX_HAVE_CUDA) || defined(DINOX_HAVE_HIP)
#include "backend/gpu/gpu_backend.h"
#endif

static const dx_backend_entry entries[] = {
    {.name = "cpu",
     .compiled = 1,
     .create = dx_cpu_backend_create,
     .device_count = dx_cpu_device_count,
     .device_info = dx_cpu_device_info},
#ifdef DINOX_HAVE_CUDA
    {.name = "cuda", .compiled = 1, .create = dx_cuda_backend_create,
     .device_count = dx_cuda_device_count, .device_info = dx_cuda_device_info},
#else
    {.name = "cuda", .compiled = 0, .build_hint = "configure with -DDINOX_CUDA=ON (needs the CUDA toolkit)"},
#endif
#ifdef DINOX_HAVE_HIP
    {.name = "hip", .compiled = 1, .create = dx_hip_backend_create,
     .device_count = dx_hip_device_count, .device_info = dx_hip_device_info},
#else
    {.name = "hip", .compiled = 0, .build_hint = "configure with -DDINOX_HIP=ON (needs ROCm/HIP)"},
#endif
};

const dx_backend_entry *dx_backend_registry(int *n) {
    *n = (int)(sizeof entries / sizeof entries[0]);
    return entries;
}

const dx_backend_entry *dx_backend_find(const char *name) {
    if (!name || !name[0]) name = DX_BACKEND_DEFAULT;
    for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++)
        if (strcmp(entries[i].name, name) == 0) return &entries[i];
    return NULL;
}

static void compiled_list(char *buf, size_t len) {
    buf[0] = 0;
    for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++)
        if (entries[i].compiled) {
            size_t u = strlen(buf);
            snprintf(buf + u, len - u, "%s%s", u ? ", " : "", entries[i].name);
        }
}

dx_status dx_backend_parse_device(const char *spec, dx_backend_params *p, dx_err *err) {
    if (!spec || !spec[0]) spec = DX_BACKEND_DEFAULT;
    const char *colon = strchr(spec, ':');
    size_t nlen = colon ? (size_t)(colon - spec) : strlen(spec);
    char name[32];
    if (nlen == 0 || nlen >= sizeof name)
        return dx_fail(err, DX_EINVAL, "device '%s': expected cpu, cuda[:N] or hip[:N]", spec);
    memcpy(name, spec, nlen);
    name[nlen] = 0;
    const dx_backend_entry *e = dx_backend_find(name);
    if (!e) {
        char have[64];
        compiled_list(have, sizeof have);
        return dx_fail(err, DX_EINVAL, "device '%s': unknown backend '%s' (known: cpu, cuda, hip; this build has: %s)",
                       spec, name, have);
    }
    int dev = 0;
    if (colon) {
        char *end = NULL;
        errno = 0;
        long v = strtol(colon + 1, &end, 10);
        if (!colon[1] || *end || errno || v < 0 || v > 1024)
            return dx_fail(err, DX_EINVAL, "device '%s': the index after ':' must be a number 0..1024", spec);
        dev = (int)v;
    }
    p->name = e->name;
    p->device = dev;
    return DX_OK;
}

const char *dx_backend_device_string(const dx_backend_params *p, char *buf, size_t len) {
    const char *name = p && p->name && p->name[0] ? p->name : DX_BACKEND_DEFAULT;
    if (p && p->device) snprintf(buf, len, "%s:%d", name, p->device);
    else snprintf(buf, len, "%s", name);
    return buf;
}

dx_status dx_backend_create(dx_backend **out, const dx_backend_params *p, dx_err *err) {
    *out = NULL;
    dx_backend_params def = {0};
    if (!p) p = &def;
    const dx_backend_entry *e = dx_backend_find(p->name);
    if (!e || !e->compiled) { /* the list of what this build has, for the message only */
        char have[64];
        compiled_list(have, sizeof have);
        if (!e) return dx_fail(err, DX_EUNSUPPORTED, "unknown backend '%s' (this build has: %s)", p->name, have);
        return dx_fail(err, DX_EUNSUPPORTED, "backend '%s' is not in this build (this build has: %s); %s", e->name,
                       have, e->build_hint);
    }
    char why[160] = "";
    int n = e->device_count(why, sizeof why);
    if (p->device < 0 || p->device >= n)
        return dx_fail(err, DX_EUNSUPPORTED, "backend '%s': no device %d (%d present%s%s)", e->name, p->device, n,
                       why[0] ? ": " : "", why);
    dx_status st = e->create(out, p, err);
    if (st) return st;
    (*out)->device = p->device;
    if (dx_backend_checking_requested() && (st = dx_backend_checked_wrap(out, err))) {
        dx_backend_destroy(*out);
        *out = NULL;
    }
    return st;
}

dx_status dx_backend_open(dx_backend **out, const char *device_spec, int nthreads, dx_err *err) {
    *out = NULL;
    dx_backend_params p = {.nthreads = nthreads};
    dx_status st = dx_backend_parse_device(device_spec, &p, err);
    return st ? st : dx_backend_create(out, &p, err);
}

void dx_backend_destroy(dx_backend *be) {
    if (be && be->ops) be->ops->destroy(be);
}
