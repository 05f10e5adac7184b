/* dx_backend.c - backend registry: name -> constructor. */
#include "backend/dx_backend.h"

#include <string.h>

#include "backend/cpu/cpu_backend.h"

dx_status dx_backend_create(dx_backend **out, const char *name, int nthreads, dx_err *err) {
    *out = NULL;
    if (!name || strcmp(name, "cpu") == 0) return dx_cpu_backend_create(out, nthreads, err);
    return dx_fail(err, DX_EUNSUPPORTED, "unknown backend '%s' (this build has: cpu)", name);
}

void dx_backend_destroy(dx_backend *be) {
    if (be && be->ops) be->ops->destroy(be);
}
