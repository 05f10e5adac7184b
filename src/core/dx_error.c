/* dx_error.c - see dx_error.h. */
#include "dx_error.h"

#include <stdio.h>
#include <string.h>

dx_status dx_fail(dx_err *err, dx_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

dx_status dx_fail_prefix(dx_err *err, const char *fmt, ...) {
    if (!err) return DX_EINVAL;
    char prefix[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    return err->code;
}

void dx_err_clear(dx_err *err) {
    if (err) {
        err->code = DX_OK;
        err->msg[0] = '\0';
    }
}

const char *dx_status_name(dx_status code) {
    switch (code) {
    case DX_OK: return "ok";
    case DX_EINVAL: return "invalid argument";
    case DX_EIO: return "I/O error";
    case DX_ENOMEM: return "out of memory";
    case DX_EFORMAT: return "malformed input";
    case DX_EUNSUPPORTED: return "unsupported";
    case DX_ESHAPE: return "shape mismatch";
    case DX_ENOTFOUND: return "not found";
    case DX_ENUMERIC: return "numerical failure";
    case DX_EBACKEND: return "backend failure";
    }
    return "unknown error";
}
