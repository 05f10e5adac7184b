/* dx_file.h - durable file writing, shared by every writer in dinox (npy,
 * safetensors, the volume store, checkpoints, synth, run directories).
 *
 * Atomic replacement = write a temp file in the same directory, fsync it,
 * rename it over the target, fsync the directory: a reader (or a crash) sees
 * the old file or the new one, never a mix. */
#ifndef DX_FILE_H
#define DX_FILE_H

#include <stddef.h>
#include <sys/types.h>

#include "core/dx_error.h"

/* Write hook: behaves like write(2) (bytes written, or -1 with errno set).
 * NULL means write(2); tests inject ENOSPC / EIO through it. */
typedef ssize_t (*dx_write_fn)(int fd, const void *buf, size_t n, void *user);

/* write() until done (EINTR retried, 1 GiB chunks); 0 or -1 with errno. */
int dx_write_all(int fd, const void *buf, size_t n);
/* The same through a write hook (fn NULL = write(2)). */
int dx_write_all_via(int fd, const void *buf, size_t n, dx_write_fn fn, void *user);
/* fsync a directory / the directory holding path; 0 or -1 with errno. */
int dx_fsync_dir(const char *dir);
int dx_fsync_parent_dir(const char *path);
/* Atomically replaces path with the concatenation of parts[0..n). On any
 * failure the temp file is removed and path is untouched. */
dx_status dx_atomic_write(const char *path, const void *const *parts, const size_t *lens, int n, dx_err *err);
/* dx_atomic_write with every write going through fn (NULL = write(2)). The
 * temp file is "<path>.tmp.<pid>"; a failure after the rename (the directory
 * fsync) says "(the file was renamed)". */
dx_status dx_atomic_write_via(const char *path, const void *const *parts, const size_t *lens, int n, dx_write_fn fn,
                              void *user, dx_err *err);
/* Producer of a file's bytes in order: sets *buf and *len to the next part and
 * returns 1, returns 0 when there are no more parts, or -1 (with errno set)
 * on a failure. A part stays valid until the next call. */
typedef int (*dx_write_gen_fn)(void *user, const void **buf, size_t *len);
/* dx_atomic_write_via with the bytes from gen: files larger than memory are
 * written through one part buffer at a time. */
dx_status dx_atomic_write_gen(const char *path, dx_write_gen_fn gen, void *gen_user, dx_write_fn fn, void *user,
                              dx_err *err);
/* 1 if both paths exist and name the same file (device and inode: links and
 * different spellings of one path included), else 0. */
int dx_same_file(const char *a, const char *b);
/* 1 if path's parent directory is the directory dir (same device and inode). */
int dx_in_dir(const char *path, const char *dir);
/* The whole file, malloc'd and NUL-terminated (len, if non-NULL, gets its
 * size without the NUL); NULL if it cannot be opened or memory runs out. */
char *dx_read_file(const char *path, size_t *len);
/* mkdir -p (0755); an existing non-directory is an error. */
dx_status dx_mkdirs(const char *path, dx_err *err);

#endif /* DX_FILE_H */
