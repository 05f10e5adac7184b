/* checkpoint.h - atomic, checksummed training checkpoints with retention.
 *
 * A checkpoint is one safetensors file DIR/ckpt-<step, 10 digits>.safetensors
 * holding named F32 tensors ("student.<param>", "teacher.<param>",
 * "adam_m.<param>", "adam_v.<param>", "gram.<param>", "dino_head.<...>", ...
 * - names are the caller's) and "__metadata__" strings: format
 * "dinox-ckpt-1", step, state (the caller's JSON: RNG seed, schedule
 * position, counters), crc32 (zlib CRC-32 of the whole data section, hex) and
 * data_bytes. Any safetensors reader can open it.
 *
 * A pure container format (io layer: no backend, no model); train/ writes
 * it, eval/ and export read it.
 *
 * Saving: dx_atomic_write_gen (core/dx_file.h: temp file "<name>.tmp.<pid>"
 * in DIR, write, fsync, rename, fsync DIR); tensors with a read function are
 * streamed through one DX_CKPT_CHUNK_BYTES buffer (read twice: once for the
 * CRC the header carries, once to write), so a checkpoint of device memory
 * needs no host copy of the state; then the text
 * file DIR/latest (the checkpoint's file name) is replaced the same way,
 * last; then old files beyond keep_last are deleted, except milestones
 * (step % milestone_every == 0). A failed write (ENOSPC, EIO, ...) removes
 * the temp file and leaves every earlier checkpoint and `latest` untouched.
 * Loading verifies structure, sizes and the CRC; if the newest checkpoint is
 * corrupt or truncated it logs why and falls back to the next older one. */
#ifndef DX_CHECKPOINT_H
#define DX_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/dx_error.h"
#include "core/dx_file.h"
#include "core/dx_table.h"

#define DX_CKPT_NAME_MAX 160

/* Copies n floats from src to dst where one side is memory the host cannot
 * touch directly (a backend's): device -> host when saving, host -> device
 * when loading. */
typedef void (*dx_ckpt_copy_fn)(void *ctx, float *dst, const float *src, size_t n);

typedef struct dx_ckpt_tensor {
    char name[DX_CKPT_NAME_MAX];
    int ndim;
    int64_t shape[DX_MAX_DIMS];
    const float *data;    /* host memory; for a loaded checkpoint: into the mapping */
    dx_ckpt_copy_fn read; /* saving: non-NULL = data is read through it, DX_CKPT_CHUNK_BYTES at a time */
    void *read_ctx;
} dx_ckpt_tensor;

/* The host buffer dx_ckpt_save reads tensors with a read function through:
 * all the host memory a checkpoint of such tensors needs beside its header. */
#define DX_CKPT_CHUNK_BYTES ((size_t)16 << 20)

/* Write hook: must behave like write(2) (return bytes written, or -1 with
 * errno set). NULL = write(2). Tests inject ENOSPC / EIO through it. */
typedef dx_write_fn dx_ckpt_write_fn;

typedef struct dx_ckpt_policy {
    int keep_last;           /* rolling checkpoints kept, >= 1 */
    int64_t milestone_every; /* also keep steps that are multiples (0 = none) */
    dx_ckpt_write_fn write_fn;
    void *write_user;
} dx_ckpt_policy;

/* Appends one entry per tensor of tab (named prefix + "." + tensor name)
 * pointing into buf (host); returns the number added or -1 if cap is too small. */
int dx_ckpt_entries_from_table(dx_ckpt_tensor *out, int cap, const char *prefix, const dx_table *tab,
                               const float *buf);
/* The same for buf in memory that read (with ctx) copies to the host. */
int dx_ckpt_entries_from_table_read(dx_ckpt_tensor *out, int cap, const char *prefix, const dx_table *tab,
                                    const float *buf, dx_ckpt_copy_fn read, void *ctx);

dx_status dx_ckpt_save(const char *dir, int64_t step, const char *state_json, const dx_ckpt_tensor *t, int n,
                       const dx_ckpt_policy *pol, dx_err *err);

/* Whether a checkpoint is due after finishing `step` (0-based): every
 * `every_steps` steps (0 = off), or when `every_minutes` (0 = off) have
 * passed since the last save (times in seconds), and always at the last step. */
int dx_ckpt_due(int64_t step, int64_t total, int every_steps, double every_minutes, double now_s,
                double last_save_s);

typedef struct dx_ckpt {
    char path[1024];
    int64_t step;
    char *state_json;     /* the caller's state, as saved */
    dx_ckpt_tensor *t;
    int n;
    void *map;
    size_t map_len;
} dx_ckpt;

/* Opens and fully verifies one checkpoint file. */
dx_status dx_ckpt_open(dx_ckpt *ck, const char *path, dx_err *err);
/* The newest valid checkpoint of DIR: `latest` first, then the others by
 * descending step; DX_ENOTFOUND if there is none, DX_EFORMAT if all are bad. */
dx_status dx_ckpt_open_latest(dx_ckpt *ck, const char *dir, dx_err *err);
void dx_ckpt_close(dx_ckpt *ck);

const dx_ckpt_tensor *dx_ckpt_find(const dx_ckpt *ck, const char *name);
/* Copies every tensor of tab from "<prefix>.<name>" into buf (host), checking
 * presence and shapes. */
dx_status dx_ckpt_load_table(const dx_ckpt *ck, const char *prefix, const dx_table *tab, float *buf, dx_err *err);
/* The same into buf that put (with ctx) writes, tensor by tensor from the
 * file's mapping: no host buffer of the table's size. */
dx_status dx_ckpt_load_table_via(const dx_ckpt *ck, const char *prefix, const dx_table *tab, float *buf,
                                 dx_ckpt_copy_fn put, void *ctx, dx_err *err);

#endif /* DX_CHECKPOINT_H */
