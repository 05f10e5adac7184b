/* dx_error.h - error codes and the error record every library call fills.
 *
 * Library functions return a dx_status and, on failure, write a human-readable
 * reason into a caller-owned dx_err (which may be NULL). They never exit().
 * There is no global "last error": the record travels with the call. */
#ifndef DX_ERROR_H
#define DX_ERROR_H

#include <stdarg.h>

typedef enum {
    DX_OK = 0,
    DX_EINVAL,       /* bad argument or configuration value            */
    DX_EIO,          /* read/write/open failed                          */
    DX_ENOMEM,       /* allocation failed or would exceed a sanity cap  */
    DX_EFORMAT,      /* malformed or truncated file                     */
    DX_EUNSUPPORTED, /* well-formed but not handled (e.g. transfer syntax) */
    DX_ESHAPE,       /* tensor shape or dtype mismatch                  */
    DX_ENOTFOUND,    /* missing key, tag, file or series                */
    DX_ENUMERIC,     /* NaN/Inf or other numerical failure              */
    DX_EBACKEND      /* backend/device failure                          */
} dx_status;

typedef struct dx_err {
    dx_status code;
    char msg[1024];
} dx_err;

/* Records code + formatted message in err (if non-NULL) and returns code, so
 * that `return dx_fail(err, DX_EIO, "open %s: %s", path, strerror(errno));`
 * is the idiom. */
dx_status dx_fail(dx_err *err, dx_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes an existing message with context ("loading X: <old msg>"). */
dx_status dx_fail_prefix(dx_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void dx_err_clear(dx_err *err);
const char *dx_status_name(dx_status code);

#endif /* DX_ERROR_H */
