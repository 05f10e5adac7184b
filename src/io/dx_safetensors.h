/* dx_safetensors.h - safetensors read (mmap, validated) and write (atomic).
 *
 * Format: u64 little-endian header length n, n bytes of JSON
 * {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
 * then the tensor bytes (offsets relative to the data section, row-major,
 * little-endian). The reader trusts nothing: header length past the end,
 * offsets out of range or overlapping, sizes that disagree with dtype*shape,
 * absurd ranks/dims and malformed JSON are reported as DX_EFORMAT. */
#ifndef DX_SAFETENSORS_H
#define DX_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/dx_error.h"
#include "core/dx_table.h"

typedef enum {
    DX_ST_F32 = 0, DX_ST_F16, DX_ST_BF16, DX_ST_F64,
    DX_ST_I64, DX_ST_I32, DX_ST_I16, DX_ST_I8, DX_ST_U8, DX_ST_BOOL
} dx_st_dtype;

#define DX_ST_MAX_DIMS 8

typedef struct dx_st_tensor {
    char name[DX_NAME_MAX];
    dx_st_dtype dtype;
    int ndim;
    int64_t shape[DX_ST_MAX_DIMS];
    size_t numel;
    const void *data; /* into the mapping; valid until dx_st_close */
    size_t nbytes;
} dx_st_tensor;

typedef struct dx_safetensors {
    void *map;
    size_t map_len;
    dx_st_tensor *t;
    int n;
    char *metadata_json; /* the "__metadata__" object as JSON text, or NULL */
    char *path;          /* file opened (for messages), NULL for dx_st_open_memory */
} dx_safetensors;

dx_status dx_st_open(dx_safetensors *st, const char *path, dx_err *err);
/* Same validation on a memory buffer (used by the fuzzer); the buffer must outlive st. */
dx_status dx_st_open_memory(dx_safetensors *st, const void *buf, size_t len, dx_err *err);
void dx_st_close(dx_safetensors *st);

const dx_st_tensor *dx_st_find(const dx_safetensors *st, const char *name);
const char *dx_st_dtype_name(dx_st_dtype dt); /* "F32", "BF16", ... */
size_t dx_st_dtype_size(dx_st_dtype dt);

/* Exact scalar conversions (every F16/BF16 value is a float32 value; NaN
 * payloads, infinities, signed zeros and F16 subnormals are kept). */
float dx_f16_to_f32(uint16_t h);
float dx_bf16_to_f32(uint16_t h);

/* Converts a F32/F16/BF16/F64 tensor to float32 into dst (host, n = numel). */
dx_status dx_st_to_f32(const dx_st_tensor *t, float *dst, size_t n, dx_err *err);
/* Looks up `name`, checks its shape equals shape[0..ndim) (clear message on a
 * missing key, wrong shape or non-float dtype), converts into dst (host). */
dx_status dx_st_load_f32(const dx_safetensors *st, const char *name, const int64_t *shape, int ndim,
                         float *dst, dx_err *err);

typedef struct dx_st_entry {
    const char *name;
    dx_st_dtype dtype;
    int ndim;
    const int64_t *shape;
    const void *data;     /* host, numel * dtype size bytes */
} dx_st_entry;

/* Writes atomically (temp file, fsync, rename). metadata: NULL or
 * alternating key/value strings, n_meta pairs. */
dx_status dx_st_write(const char *path, const dx_st_entry *e, int n, const char *const *metadata,
                      int n_meta, dx_err *err);

#endif /* DX_SAFETENSORS_H */
