/* dx_npy.h - NumPy .npy (format 1.0/2.0/3.0) read and write, little-endian,
 * C order. The exchange format of `dinox embed` and `dinox store export`. */
#ifndef DX_NPY_H
#define DX_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "core/dx_error.h"

#define DX_NPY_MAX_DIMS 8

typedef struct dx_npy {
    char descr[8];   /* "<f4", "<f8", "<i2", "|u1", ... */
    int ndim;
    int64_t shape[DX_NPY_MAX_DIMS];
    size_t numel;
    void *data;      /* owned, numel * itemsize bytes */
} dx_npy;

dx_status dx_npy_read(dx_npy *out, const char *path, dx_err *err);
/* Reads and converts to float32 (accepts <f4, <f8, <i2, <i4, |u1, |i1). */
dx_status dx_npy_read_f32(const char *path, float **data, int64_t *shape, int *ndim, dx_err *err);
void dx_npy_free(dx_npy *a);
/* Same parsing and validation as dx_npy_read on a memory buffer (fuzzer,
 * tests); out->data is a copy, the buffer is not kept. */
dx_status dx_npy_parse_memory(dx_npy *out, const void *buf, size_t len, dx_err *err);
/* Converts a parsed array to float32 (same dtypes as dx_npy_read_f32); dst holds numel floats. */
dx_status dx_npy_to_f32(const dx_npy *a, float *dst, dx_err *err);
/* descr: "<f4", "<i2", "|u1", ...; atomic write (temp + rename). */
dx_status dx_npy_write(const char *path, const char *descr, const void *data, const int64_t *shape,
                       int ndim, dx_err *err);

#endif /* DX_NPY_H */
