/* dx_backend_info.c - backends, oneDNN and OpenMP as this process sees them. */
#include "backend/dx_backend_info.h"

#include "backend/registry.h"

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <stdio.h>
#include <string.h>

static const char *runtime_name(unsigned r) {
    switch (r) {
    case DNNL_RUNTIME_NONE: return "none";
    case DNNL_RUNTIME_SEQ: return "sequential";
    case DNNL_RUNTIME_OMP: return "OpenMP";
    case DNNL_RUNTIME_TBB: return "TBB";
    case DNNL_RUNTIME_THREADPOOL: return "threadpool";
    default: return "other";
    }
}

void dx_backend_info_get(dx_backend_info *info) {
    memset(info, 0, sizeof *info);
    /* the registry's compiled-in entries, space separated */
    static char names[64];
    names[0] = 0;
    int n;
    const dx_backend_entry *e = dx_backend_registry(&n);
    for (int i = 0; i < n; i++)
        if (e[i].compiled) {
            size_t u = strlen(names);
            snprintf(names + u, sizeof names - u, "%s%s", u ? " " : "", e[i].name);
        }
    info->backends = names;
    const dnnl_version_t *v = dnnl_version();
    snprintf(info->onednn, sizeof info->onednn, "%d.%d.%d (git %.12s, CPU runtime %s)", v->major, v->minor,
             v->patch, v->hash && v->hash[0] ? v->hash : "unknown", runtime_name(v->cpu_runtime));
    const char *isa = dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa());
    snprintf(info->onednn_isa, sizeof info->onednn_isa, "%s", isa ? isa : "unknown");
    info->omp_max_threads = omp_get_max_threads();
    info->omp_procs = omp_get_num_procs();
#if defined(DINOX_HAVE_OPENJPEG) && defined(DINOX_HAVE_CHARLS)
    info->codecs = "JPEG 2000 (OpenJPEG), JPEG-LS (CharLS)";
#elif defined(DINOX_HAVE_OPENJPEG)
    info->codecs = "JPEG 2000 (OpenJPEG)";
#elif defined(DINOX_HAVE_CHARLS)
    info->codecs = "JPEG-LS (CharLS)";
#else
    info->codecs = "none";
#endif
}
