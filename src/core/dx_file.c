/* dx_file.c - see dx_file.h. */
#include "core/dx_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int dx_write_all(int fd, const void *buf, size_t n) { return dx_write_all_via(fd, buf, n, NULL, NULL); }

int dx_write_all_via(int fd, const void *buf, size_t n, dx_write_fn fn, void *user) {
    const char *p = buf;
    while (n) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : n;
        ssize_t w = fn ? fn(fd, p, chunk, user) : write(fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int dx_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int r = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

int dx_fsync_parent_dir(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    return dx_fsync_dir(dir);
}

dx_status dx_atomic_write(const char *path, const void *const *parts, const size_t *lens, int n, dx_err *err) {
    return dx_atomic_write_via(path, parts, lens, n, NULL, NULL, err);
}

/* the parts of dx_atomic_write_via, one by one */
typedef struct {
    const void *const *parts;
    const size_t *lens;
    int n, i;
} parts_gen;

static int next_part(void *user, const void **buf, size_t *len) {
    parts_gen *g = user;
    if (g->i >= g->n) return 0;
    *buf = g->parts[g->i], *len = g->lens[g->i];
    g->i++;
    return 1;
}

dx_status dx_atomic_write_via(const char *path, const void *const *parts, const size_t *lens, int n, dx_write_fn fn,
                              void *user, dx_err *err) {
    parts_gen g = {parts, lens, n, 0};
    return dx_atomic_write_gen(path, next_part, &g, fn, user, err);
}

dx_status dx_atomic_write_gen(const char *path, dx_write_gen_fn gen, void *gen_user, dx_write_fn fn, void *user,
                              dx_err *err) {
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return dx_fail(err, DX_EINVAL, "path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return dx_fail(err, DX_EIO, "create %s: %s", tmp, strerror(errno));
    for (;;) {
        const void *buf = NULL;
        size_t len = 0;
        int r = gen(gen_user, &buf, &len);
        if (r == 0) break;
        if (r < 0 || dx_write_all_via(fd, buf, len, fn, user)) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return dx_fail(err, DX_EIO, "%s %s: %s", r < 0 ? "produce the data of" : "write", tmp, strerror(e));
        }
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return dx_fail(err, DX_EIO, "fsync %s: %s", tmp, strerror(e));
    }
    if (close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return dx_fail(err, DX_EIO, "close %s: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return dx_fail(err, DX_EIO, "rename %s -> %s: %s", tmp, path, strerror(e));
    }
    if (dx_fsync_parent_dir(path) != 0)
        return dx_fail(err, DX_EIO, "fsync the directory of %s: %s (the file was renamed)", path, strerror(errno));
    return DX_OK;
}

dx_status dx_mkdirs(const char *path, dx_err *err) {
    char p[4096];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) return dx_fail(err, DX_EINVAL, "path too long: %s", path);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST) return dx_fail(err, DX_EIO, "mkdir %s: %s", p, strerror(errno));
            struct stat st;
            if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
                return dx_fail(err, DX_EIO, "%s exists and is not a directory", p);
            *s = c;
            if (!c) break;
        }
    }
    return DX_OK;
}

int dx_same_file(const char *a, const char *b) {
    struct stat x, y;
    return a && b && stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

int dx_in_dir(const char *path, const char *dir) {
    char parent[4096];
    size_t n = strlen(path);
    if (n >= sizeof parent) return 0;
    memcpy(parent, path, n + 1);
    char *slash = strrchr(parent, '/');
    if (!slash) snprintf(parent, sizeof parent, ".");
    else if (slash == parent) parent[1] = 0;
    else *slash = 0;
    return dx_same_file(parent, dir);
}

char *dx_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap + 1);
    for (size_t r; b && (r = fread(b + n, 1, cap - n, f)) > 0;) {
        n += r;
        if (n == cap) {
            char *nb = realloc(b, 2 * cap + 1);
            if (!nb) { free(b); b = NULL; break; }
            b = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!b) return NULL;
    b[n] = 0;
    if (len) *len = n;
    return b;
}
