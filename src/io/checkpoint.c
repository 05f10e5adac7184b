/* checkpoint.c - checkpoint files: safetensors container written atomically
 * (through core/dx_file.h's dx_atomic_write_gen), CRC-verified on load with
 * fallback, retention of last K + milestones. */
#include "io/checkpoint.h"

#include "core/dx_file.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/dx_log.h"

#define FORMAT "dinox-ckpt-1"

int dx_ckpt_entries_from_table(dx_ckpt_tensor *out, int cap, const char *prefix, const dx_table *tab,
                               const float *buf) {
    if (tab->n > cap) return -1;
    for (int i = 0; i < tab->n; i++) {
        const dx_tensor_spec *s = &tab->t[i];
        snprintf(out[i].name, sizeof out[i].name, "%s.%s", prefix, s->name);
        out[i].ndim = s->ndim;
        memcpy(out[i].shape, s->shape, sizeof out[i].shape);
        out[i].data = buf + s->offset;
        out[i].read = NULL;
        out[i].read_ctx = NULL;
    }
    return tab->n;
}

int dx_ckpt_entries_from_table_read(dx_ckpt_tensor *out, int cap, const char *prefix, const dx_table *tab,
                                    const float *buf, dx_ckpt_copy_fn read, void *ctx) {
    int n = dx_ckpt_entries_from_table(out, cap, prefix, tab, buf);
    for (int i = 0; i < n; i++) out[i].read = read, out[i].read_ctx = ctx;
    return n;
}

static size_t numel(const dx_ckpt_tensor *t) {
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    return n;
}

static uLong crc_of(uLong crc, const void *p, size_t n) {
    const unsigned char *b = p;
    while (n > 0) { /* zlib's crc32 takes a uInt length */
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = crc32(crc, b, k);
        b += k, n -= k;
    }
    return crc;
}

/* Header CRC: the 8 hex digits after "hdr_crc32":" in the raw header. The
 * tensor CRC covers only the data, so without it a flipped byte in the state
 * string loaded as "unreadable training state" with no fallback to the
 * previous checkpoint. Checkpoints from before it have no field (accepted). */
#define HDR_CRC_KEY "hdr_crc32"
static char *header_crc_slot(char *h, size_t n) {
    static const char pat[] = "\"" HDR_CRC_KEY "\":\"";
    const size_t pl = sizeof pat - 1;
    for (size_t i = 0; i + pl + 8 <= n; i++)
        if (memcmp(h + i, pat, pl) == 0) return h + i + pl;
    return NULL;
}

/* 1 = matches or absent (older file), 0 = corrupt header. */
static int header_crc_ok(const unsigned char *raw, size_t n) {
    char *h = malloc(n ? n : 1);
    if (!h) return 0;
    memcpy(h, raw, n);
    char *slot = header_crc_slot(h, n);
    int ok = 1;
    if (slot) {
        char want[9];
        memcpy(want, slot, 8);
        want[8] = 0;
        memset(slot, '0', 8);
        char got[16];
        snprintf(got, sizeof got, "%08lx", (unsigned long)crc_of(crc32(0L, Z_NULL, 0), h, n));
        ok = strcmp(got, want) == 0;
    }
    free(h);
    return ok;
}

/* s from an atomic write of dst: the message says that nothing changed */
static dx_status write_failed(dx_status s, const char *dst, dx_err *err) {
    if (s && err) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        dx_fail(err, s, "writing %s failed: %s; the previous checkpoint is intact", dst, why);
    }
    return s;
}

/* Writes bytes to dir/final atomically (core/dx_file.h); on failure nothing changes. */
static dx_status atomic_write(const char *dir, const char *final, const void *const *parts, const size_t *lens,
                              int nparts, const dx_ckpt_policy *pol, dx_err *err) {
    char dst[1200];
    snprintf(dst, sizeof dst, "%s/%s", dir, final);
    return write_failed(dx_atomic_write_via(dst, parts, lens, nparts, pol ? pol->write_fn : NULL,
                                            pol ? pol->write_user : NULL, err),
                        dst, err);
}

static int parse_step(const char *name, int64_t *step) {
    long long s;
    int len = 0;
    if (sscanf(name, "ckpt-%lld.safetensors%n", &s, &len) == 1 && name[len] == 0 && s >= 0) {
        *step = s;
        return 1;
    }
    return 0;
}

static int cmp_desc(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Steps of the ckpt files in dir, descending; caller frees. */
static int list_steps(const char *dir, int64_t **out) {
    DIR *d = opendir(dir);
    *out = NULL;
    if (!d) return 0;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        int64_t s;
        if (!parse_step(de->d_name, &s)) continue;
        if (n == cap) {
            int64_t *nb = realloc(*out, sizeof(int64_t) * (cap = cap ? cap * 2 : 16));
            if (!nb) break;
            *out = nb;
        }
        (*out)[n++] = s;
    }
    closedir(d);
    if (n) qsort(*out, n, sizeof(int64_t), cmp_desc);
    return n;
}

static void ckpt_name(char *b, size_t n, int64_t step) { snprintf(b, n, "ckpt-%010lld.safetensors", (long long)step); }

/* floats of the next chunk of a tensor of `total` floats, `at` of them done */
static size_t chunk_floats(size_t total, size_t at) {
    const size_t per = DX_CKPT_CHUNK_BYTES / sizeof(float);
    return total - at < per ? total - at : per;
}

/* The file's bytes in order: the header, then each tensor, whole from host
 * memory or chunk by chunk through its read function. */
typedef struct {
    const char *hdr;
    size_t hdr_len;
    const dx_ckpt_tensor *t;
    int n, i;     /* next tensor (-1: the header) */
    size_t done;  /* floats of tensor i produced */
    float *chunk; /* DX_CKPT_CHUNK_BYTES */
} ckpt_gen;

static int ckpt_next(void *user, const void **buf, size_t *len) {
    ckpt_gen *g = user;
    if (g->i < 0) {
        g->i = 0, g->done = 0;
        *buf = g->hdr, *len = g->hdr_len;
        return 1;
    }
    while (g->i < g->n && g->done >= numel(&g->t[g->i])) g->i++, g->done = 0;
    if (g->i >= g->n) return 0;
    const dx_ckpt_tensor *t = &g->t[g->i];
    const size_t total = numel(t);
    if (!t->read) {
        *buf = t->data, *len = total * sizeof(float);
        g->done = total;
        return 1;
    }
    const size_t k = chunk_floats(total, g->done);
    t->read(t->read_ctx, g->chunk, t->data + g->done, k);
    *buf = g->chunk, *len = k * sizeof(float);
    g->done += k;
    return 1;
}

/* CRC-32 of one tensor's data */
static uLong tensor_crc(uLong crc, const dx_ckpt_tensor *t, float *chunk) {
    const size_t total = numel(t);
    if (!t->read) return crc_of(crc, t->data, total * sizeof(float));
    for (size_t at = 0, k; at < total; at += k) {
        k = chunk_floats(total, at);
        t->read(t->read_ctx, chunk, t->data + at, k);
        crc = crc_of(crc, chunk, k * sizeof(float));
    }
    return crc;
}

dx_status dx_ckpt_save(const char *dir, int64_t step, const char *state_json, const dx_ckpt_tensor *t, int n,
                       const dx_ckpt_policy *pol, dx_err *err) {
    if (step < 0) return dx_fail(err, DX_EINVAL, "checkpoint: negative step");
    float *chunk = NULL;
    for (int i = 0; i < n && !chunk; i++)
        if (t[i].read && !(chunk = malloc(DX_CKPT_CHUNK_BYTES)))
            return dx_fail(err, DX_ENOMEM, "checkpoint: out of memory for the %zu MB write buffer",
                           DX_CKPT_CHUNK_BYTES >> 20);
    /* header: tensors in the given order, contiguous, F32 */
    cJSON *h = cJSON_CreateObject(), *meta = cJSON_CreateObject();
    cJSON_AddItemToObject(h, "__metadata__", meta);
    size_t off = 0;
    uLong crc = crc32(0L, Z_NULL, 0);
    for (int i = 0; i < n; i++) {
        if (cJSON_GetObjectItemCaseSensitive(h, t[i].name) || strcmp(t[i].name, "__metadata__") == 0) {
            cJSON_Delete(h);
            free(chunk);
            return dx_fail(err, DX_EINVAL, "checkpoint: duplicate tensor name '%s'", t[i].name);
        }
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "dtype", "F32");
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t[i].ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t[i].shape[d]));
        size_t nb = numel(&t[i]) * sizeof(float);
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + nb)));
        cJSON_AddItemToObject(h, t[i].name, e);
        crc = tensor_crc(crc, &t[i], chunk);
        off += nb;
    }
    char sbuf[32], cbuf[16], dbuf[32];
    snprintf(sbuf, sizeof sbuf, "%lld", (long long)step);
    snprintf(cbuf, sizeof cbuf, "%08lx", (unsigned long)crc);
    snprintf(dbuf, sizeof dbuf, "%zu", off);
    cJSON_AddStringToObject(meta, "format", FORMAT);
    cJSON_AddStringToObject(meta, "step", sbuf);
    cJSON_AddStringToObject(meta, "state", state_json ? state_json : "{}");
    cJSON_AddStringToObject(meta, "crc32", cbuf);
    cJSON_AddStringToObject(meta, "data_bytes", dbuf);
    /* the header's own CRC (state, step, names, shapes, offsets): written as zeros,
     * computed over the padded header, then filled in; see header_crc_ok() */
    cJSON_AddStringToObject(meta, HDR_CRC_KEY, "00000000");
    char *js = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!js) {
        free(chunk);
        return dx_fail(err, DX_ENOMEM, "checkpoint: header encoding failed");
    }
    size_t jl = strlen(js), hl = (jl + 7) & ~(size_t)7; /* pad with spaces: data 8-byte aligned */
    char *hdr = malloc(8 + hl);
    if (!hdr) {
        free(js);
        free(chunk);
        return dx_fail(err, DX_ENOMEM, "checkpoint: out of memory");
    }
    for (int i = 0; i < 8; i++) hdr[i] = (char)((uint64_t)hl >> (8 * i));
    memcpy(hdr + 8, js, jl);
    memset(hdr + 8 + jl, ' ', hl - jl);
    free(js);
    char *slot = header_crc_slot(hdr + 8, hl);
    if (!slot) {
        free(hdr);
        free(chunk);
        return dx_fail(err, DX_EINVAL, "checkpoint: header CRC field not found");
    }
    char hc[9];
    snprintf(hc, sizeof hc, "%08lx", (unsigned long)crc_of(crc32(0L, Z_NULL, 0), hdr + 8, hl));
    memcpy(slot, hc, 8);

    char name[64];
    ckpt_name(name, sizeof name, step);
    char dst[1200];
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    ckpt_gen g = {.hdr = hdr, .hdr_len = 8 + hl, .t = t, .n = n, .i = -1, .chunk = chunk};
    dx_status s = write_failed(dx_atomic_write_gen(dst, ckpt_next, &g, pol ? pol->write_fn : NULL,
                                                   pol ? pol->write_user : NULL, err),
                               dst, err);
    free(hdr), free(chunk);
    if (s) return dx_fail_prefix(err, "checkpoint step %lld", (long long)step);

    /* the pointer moves last, so it never names a file that is not complete */
    char line[80];
    snprintf(line, sizeof line, "%s\n", name);
    const void *lp[1] = {line};
    size_t ll[1] = {strlen(line)};
    if ((s = atomic_write(dir, "latest", lp, ll, 1, pol, err)))
        return dx_fail_prefix(err, "checkpoint step %lld written but 'latest' not updated", (long long)step);

    /* retention */
    int keep = pol && pol->keep_last > 0 ? pol->keep_last : 1;
    int64_t mile = pol ? pol->milestone_every : 0;
    int64_t *steps;
    int ns = list_steps(dir, &steps), kept = 0;
    for (int i = 0; i < ns; i++) {
        if (steps[i] == step || (steps[i] < step && kept < keep - 1)) {
            if (steps[i] != step) kept++;
            continue;
        }
        if (steps[i] > step) continue; /* newer files (another run's future) are not ours to delete */
        if (mile > 0 && steps[i] % mile == 0) continue;
        char p[1200];
        ckpt_name(name, sizeof name, steps[i]);
        snprintf(p, sizeof p, "%s/%s", dir, name);
        if (unlink(p) != 0) DX_WARN("checkpoint retention: cannot remove %s: %s", p, strerror(errno));
    }
    free(steps);
    return DX_OK;
}

int dx_ckpt_due(int64_t step, int64_t total, int every_steps, double every_minutes, double now_s,
                double last_save_s) {
    if (step + 1 >= total) return 1;
    if (every_steps > 0 && (step + 1) % every_steps == 0) return 1;
    if (every_minutes > 0 && now_s - last_save_s >= every_minutes * 60.0) return 1;
    return 0;
}

/* ---- loading --------------------------------------------------------------- */

void dx_ckpt_close(dx_ckpt *ck) {
    if (ck->map) munmap(ck->map, ck->map_len);
    free(ck->t);
    free(ck->state_json);
    memset(ck, 0, sizeof *ck);
}

static dx_status bad(dx_ckpt *ck, dx_err *err, const char *path, const char *why) {
    dx_ckpt_close(ck);
    return dx_fail(err, DX_EFORMAT, "checkpoint %s: %s", path, why);
}

dx_status dx_ckpt_open(dx_ckpt *ck, const char *path, dx_err *err) {
    memset(ck, 0, sizeof *ck);
    snprintf(ck->path, sizeof ck->path, "%s", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return dx_fail(err, errno == ENOENT ? DX_ENOTFOUND : DX_EIO, "open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return dx_fail(err, DX_EIO, "stat %s: %s", path, strerror(errno));
    }
    size_t len = (size_t)st.st_size;
    if (len < 8) {
        close(fd);
        return dx_fail(err, DX_EFORMAT, "checkpoint %s: truncated (%zu bytes)", path, len);
    }
    void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return dx_fail(err, DX_EIO, "mmap %s: %s", path, strerror(errno));
    ck->map = m, ck->map_len = len;
    const unsigned char *b = m;
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)b[i] << (8 * i);
    if (hl > len - 8 || hl > (100u << 20)) return bad(ck, err, path, "header length past the end (truncated?)");
    if (!header_crc_ok(b + 8, (size_t)hl)) return bad(ck, err, path, "header CRC-32 mismatch (corrupt metadata)");
    char *js = malloc(hl + 1);
    if (!js) return bad(ck, err, path, "out of memory");
    memcpy(js, b + 8, hl);
    js[hl] = 0;
    cJSON *h = cJSON_Parse(js);
    free(js);
    if (!h || !cJSON_IsObject(h)) {
        cJSON_Delete(h);
        return bad(ck, err, path, "header is not valid JSON");
    }
    const char *why = NULL;
    cJSON *meta = cJSON_GetObjectItemCaseSensitive(h, "__metadata__");
    const char *fmt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(meta, "format"));
    const char *sstep = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(meta, "step"));
    const char *state = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(meta, "state"));
    const char *scrc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(meta, "crc32"));
    const char *sbytes = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(meta, "data_bytes"));
    size_t data0 = 8 + (size_t)hl, dbytes = 0;
    if (!fmt || strcmp(fmt, FORMAT) || !sstep || !state || !scrc || !sbytes) why = "missing dinox metadata";
    else {
        dbytes = (size_t)strtoull(sbytes, NULL, 10);
        ck->step = strtoll(sstep, NULL, 10);
        if (data0 + dbytes != len) why = "file size does not match the header (truncated or padded)";
    }
    int cnt = cJSON_GetArraySize(h) - 1;
    if (!why && cnt >= 0) {
        ck->t = calloc(cnt ? cnt : 1, sizeof(dx_ckpt_tensor));
        if (!ck->t) why = "out of memory";
    }
    size_t covered = 0;
    for (cJSON *e = h->child; e && !why; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        dx_ckpt_tensor *t = &ck->t[ck->n];
        const char *dt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "dtype"));
        cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
        cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!dt || strcmp(dt, "F32") || !cJSON_IsArray(shape) || cJSON_GetArraySize(shape) > DX_MAX_DIMS ||
            !cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || strlen(e->string) >= DX_CKPT_NAME_MAX) {
            why = "bad tensor entry";
            break;
        }
        snprintf(t->name, sizeof t->name, "%s", e->string);
        t->ndim = cJSON_GetArraySize(shape);
        size_t ne = 1;
        for (int d = 0; d < t->ndim; d++) {
            double v = cJSON_GetArrayItem(shape, d)->valuedouble;
            if (!(v >= 0 && v < 1e12)) why = "bad shape";
            t->shape[d] = (int64_t)v;
            ne *= (size_t)t->shape[d];
        }
        double o0 = cJSON_GetArrayItem(offs, 0)->valuedouble, o1 = cJSON_GetArrayItem(offs, 1)->valuedouble;
        if (why || !(o0 >= 0) || o1 < o0 || o1 > (double)dbytes || (size_t)o1 - (size_t)o0 != ne * sizeof(float) ||
            ((size_t)o0 & 3)) {
            why = why ? why : "tensor size or offsets disagree with its shape";
            break;
        }
        t->data = (const float *)(b + data0 + (size_t)o0);
        covered += (size_t)o1 - (size_t)o0;
        ck->n++;
    }
    if (!why && covered != dbytes) why = "tensors do not cover the data section";
    if (!why) {
        uLong crc = crc_of(crc32(0L, Z_NULL, 0), b + data0, dbytes);
        char c[16];
        snprintf(c, sizeof c, "%08lx", (unsigned long)crc);
        if (strcmp(c, scrc) != 0) why = "CRC-32 mismatch (corrupt data)";
    }
    if (!why && !(ck->state_json = strdup(state))) why = "out of memory";
    cJSON_Delete(h);
    if (why) return bad(ck, err, path, why);
    return DX_OK;
}

dx_status dx_ckpt_open_latest(dx_ckpt *ck, const char *dir, dx_err *err) {
    memset(ck, 0, sizeof *ck);
    char p[1200], first[256] = "";
    snprintf(p, sizeof p, "%s/latest", dir);
    FILE *f = fopen(p, "r");
    if (f) {
        if (!fgets(first, sizeof first, f)) first[0] = 0;
        fclose(f);
        first[strcspn(first, "\r\n")] = 0;
        int64_t s;
        if (first[0] && !parse_step(first, &s)) {
            DX_WARN("checkpoint: %s names '%s', not a checkpoint file; scanning %s", p, first, dir);
            first[0] = 0;
        }
    }
    int64_t *steps;
    int ns = list_steps(dir, &steps);
    if (!first[0] && ns == 0) {
        free(steps);
        return dx_fail(err, DX_ENOTFOUND, "no checkpoint in %s", dir);
    }
    char reasons[900] = "";
    const char *prev_bad = NULL;
    char prev_path[1200] = "";
    for (int i = -1; i < ns; i++) {
        char name[256];
        if (i < 0) {
            if (!first[0]) continue;
            snprintf(name, sizeof name, "%s", first);
        } else {
            ckpt_name(name, sizeof name, steps[i]);
            if (strcmp(name, first) == 0) continue;
        }
        snprintf(p, sizeof p, "%s/%s", dir, name);
        dx_err e;
        dx_err_clear(&e);
        if (dx_ckpt_open(ck, p, &e) == DX_OK) {
            if (prev_bad) DX_WARN("checkpoint: falling back to %s", p);
            free(steps);
            return DX_OK;
        }
        DX_WARN("checkpoint: %s is unusable: %s", p, e.msg);
        size_t rl = strlen(reasons);
        snprintf(reasons + rl, sizeof reasons - rl, "%s%s", rl ? "; " : "", e.msg);
        snprintf(prev_path, sizeof prev_path, "%s", p);
        prev_bad = prev_path;
    }
    free(steps);
    return dx_fail(err, DX_EFORMAT, "no usable checkpoint in %s: %s", dir, reasons);
}

const dx_ckpt_tensor *dx_ckpt_find(const dx_ckpt *ck, const char *name) {
    for (int i = 0; i < ck->n; i++)
        if (strcmp(ck->t[i].name, name) == 0) return &ck->t[i];
    return NULL;
}

dx_status dx_ckpt_load_table_via(const dx_ckpt *ck, const char *prefix, const dx_table *tab, float *buf,
                                 dx_ckpt_copy_fn put, void *ctx, dx_err *err) {
    for (int i = 0; i < tab->n; i++) {
        const dx_tensor_spec *s = &tab->t[i];
        char name[DX_CKPT_NAME_MAX + 8];
        snprintf(name, sizeof name, "%s.%s", prefix, s->name);
        const dx_ckpt_tensor *t = dx_ckpt_find(ck, name);
        if (!t) return dx_fail(err, DX_ENOTFOUND, "checkpoint %s: no tensor '%s'", ck->path, name);
        int same = t->ndim == s->ndim;
        for (int d = 0; same && d < s->ndim; d++) same = t->shape[d] == s->shape[d];
        if (!same) {
            char a[64], b[64];
            return dx_fail(err, DX_ESHAPE, "checkpoint %s: '%s' has shape %s, the model wants %s", ck->path, name,
                           dx_shape_str(t->shape, t->ndim, a, sizeof a), dx_shape_str(s->shape, s->ndim, b, sizeof b));
        }
        if (put) put(ctx, buf + s->offset, t->data, s->numel);
        else memcpy(buf + s->offset, t->data, s->numel * sizeof(float));
    }
    return DX_OK;
}

dx_status dx_ckpt_load_table(const dx_ckpt *ck, const char *prefix, const dx_table *tab, float *buf, dx_err *err) {
    return dx_ckpt_load_table_via(ck, prefix, tab, buf, NULL, NULL, err);
}
