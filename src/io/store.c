/* store.c - read side of the volume store: open = decode index + mmap data
 * files; slice lookup is pointer arithmetic (see store.h). */
#include "io/store.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the store maps int16 little-endian files directly; big-endian hosts need a byte-swapping reader"
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Maps path read-only, requiring exactly `want` bytes. */
static dx_status map_file(const char *path, size_t want, const void **out, dx_err *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dx_fail(err, DX_EIO, "open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb)) {
        close(fd);
        return dx_fail(err, DX_EIO, "stat %s: %s", path, strerror(errno));
    }
    if ((uint64_t)sb.st_size != (uint64_t)want) {
        close(fd);
        return dx_fail(err, DX_EFORMAT, "%s: %lld bytes, the index says %zu (truncated or foreign file)", path,
                       (long long)sb.st_size, want);
    }
    void *p = mmap(NULL, want, PROT_READ, MAP_SHARED, fd, 0);
    close(fd); /* the mapping keeps the file alive */
    if (p == MAP_FAILED) return dx_fail(err, DX_EIO, "mmap %s: %s", path, strerror(errno));
    *out = p;
    return DX_OK;
}

void dx_store_close(dx_store *s) {
    if (!s) return;
    for (int i = 0; i < s->n_series; i++) {
        if (s->hu && s->hu[i]) munmap((void *)s->hu[i], s->hu_bytes[i]);
        if (s->mask && s->mask[i]) munmap((void *)s->mask[i], s->mask_bytes[i]);
    }
    free(s->hu), free(s->mask), free(s->hu_bytes), free(s->mask_bytes);
    dx_store_index_free(&s->idx);
    free(s->dir);
    memset(s, 0, sizeof *s);
}

dx_status dx_store_open(dx_store *s, const char *dir, dx_err *err) {
    memset(s, 0, sizeof *s);
    dx_status st = dx_store_index_read(&s->idx, dir, err);
    if (st) return st;
    int n = s->idx.n_series;
    s->dir = strdup(dir);
    s->hu = calloc((size_t)n + 1, sizeof *s->hu);
    s->mask = calloc((size_t)n + 1, sizeof *s->mask);
    s->hu_bytes = calloc((size_t)n + 1, sizeof *s->hu_bytes);
    s->mask_bytes = calloc((size_t)n + 1, sizeof *s->mask_bytes);
    if (!s->dir || !s->hu || !s->mask || !s->hu_bytes || !s->mask_bytes) {
        dx_store_close(s);
        return dx_fail(err, DX_ENOMEM, "store %s", dir);
    }
    s->n_series = n;
    char path[4096];
    for (int i = 0; i < n; i++) {
        const dx_store_series *r = &s->idx.series[i];
        size_t vox = (size_t)r->nx * r->ny * r->nz;
        snprintf(path, sizeof path, "%s/series/%s.hu", dir, r->stem);
        const void *p;
        if ((st = map_file(path, vox * sizeof(int16_t), &p, err))) break;
        s->hu[i] = p;
        s->hu_bytes[i] = vox * sizeof(int16_t);
        if (r->has_mask) {
            snprintf(path, sizeof path, "%s/series/%s.mask", dir, r->stem);
            if ((st = map_file(path, vox, &p, err))) break;
            s->mask[i] = p;
            s->mask_bytes[i] = vox;
        }
    }
    if (st) {
        dx_store_close(s);
        return dx_fail_prefix(err, "store %s", dir);
    }
    return DX_OK;
}

int dx_store_find(const dx_store *s, const char *series_uid) {
    for (int i = 0; i < s->n_series; i++)
        if (!strcmp(s->idx.series[i].series_uid, series_uid)) return i;
    return -1;
}

const int16_t *dx_store_slice(const dx_store *s, int series, int z) {
    if (series < 0 || series >= s->n_series) return NULL;
    const dx_store_series *r = &s->idx.series[series];
    if (z < 0 || z >= r->nz) return NULL;
    return s->hu[series] + (size_t)z * r->nx * r->ny;
}

const uint8_t *dx_store_mask_slice(const dx_store *s, int series, int z) {
    if (series < 0 || series >= s->n_series || !s->mask[series]) return NULL;
    const dx_store_series *r = &s->idx.series[series];
    if (z < 0 || z >= r->nz) return NULL;
    return s->mask[series] + (size_t)z * r->nx * r->ny;
}
