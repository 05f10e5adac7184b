/* safetensors.c - safetensors reader (mmap, every header field validated)
 * and atomic writer. See dx_safetensors.h and docs/formats.md.
 *
 * File: u64 LE n | n bytes JSON header | data section.
 * The reader never trusts the header: all sizes are checked against the
 * mapping before any tensor pointer is formed, so a hostile file yields
 * DX_EFORMAT, never a read past the mapping or an allocation sized by the
 * file's claims (allocations are bounded by the header length, itself
 * bounded by the file size and by 100 MB). */
#include "core/dx_file.h"
#include "io/dx_safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dx_bf16.h"
#include "core/dx_table.h" /* dx_shape_str */

#define ST_MAX_HEADER (100ull * 1000 * 1000) /* same cap as the reference library */
#define ST_MAX_INT 9007199254740992.0        /* 2^53: JSON numbers beyond are not exact in a double */

/* ------------------------------------------------------------------------ */
/* dtypes */

static const struct {
    const char *name;
    size_t size;
} st_dtypes[] = {
    [DX_ST_F32] = {"F32", 4}, [DX_ST_F16] = {"F16", 2}, [DX_ST_BF16] = {"BF16", 2},
    [DX_ST_F64] = {"F64", 8}, [DX_ST_I64] = {"I64", 8}, [DX_ST_I32] = {"I32", 4},
    [DX_ST_I16] = {"I16", 2}, [DX_ST_I8] = {"I8", 1},   [DX_ST_U8] = {"U8", 1},
    [DX_ST_BOOL] = {"BOOL", 1},
};
#define ST_N_DTYPES ((int)(sizeof st_dtypes / sizeof st_dtypes[0]))

/* Valid safetensors dtypes that dinox does not handle: EUNSUPPORTED rather than EFORMAT. */
static const char *const st_other_dtypes[] = {"U16", "U32", "U64", "F8_E4M3", "F8_E5M2",
                                              "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64"};

const char *dx_st_dtype_name(dx_st_dtype dt) {
    return ((int)dt >= 0 && (int)dt < ST_N_DTYPES) ? st_dtypes[dt].name : "?";
}

size_t dx_st_dtype_size(dx_st_dtype dt) {
    return ((int)dt >= 0 && (int)dt < ST_N_DTYPES) ? st_dtypes[dt].size : 0;
}

static int st_dtype_parse(const char *s) {
    for (int i = 0; i < ST_N_DTYPES; i++)
        if (strcmp(s, st_dtypes[i].name) == 0) return i;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* reader */

static uint64_t le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* A JSON number that is an exact non-negative integer below 2^53. */
static int json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0.0) || d > ST_MAX_INT || d != floor(d)) return 0;
    *out = (uint64_t)d;
    return 1;
}

/* Per-tensor [begin, end) in the data section, kept only during validation. */
typedef struct {
    uint64_t begin, end;
    int idx;
} st_range;

static int cmp_range(const void *a, const void *b) {
    const st_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_name(const void *a, const void *b) {
    const dx_st_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Fills *t from one header entry; data_len = bytes in the data section. */
static dx_status st_parse_entry(dx_st_tensor *t, st_range *r, const cJSON *e, const char *name,
                                const unsigned char *data, uint64_t data_len, dx_err *err) {
    if (!cJSON_IsObject(e)) return dx_fail(err, DX_EFORMAT, "entry '%s' is not an object", name);
    if (strlen(name) >= DX_NAME_MAX)
        return dx_fail(err, DX_EUNSUPPORTED, "tensor name longer than %d bytes: '%.60s...'",
                       DX_NAME_MAX - 1, name);
    const cJSON *jd = NULL, *js = NULL, *jo = NULL;
    for (const cJSON *c = e->child; c; c = c->next) {
        const cJSON **slot = NULL;
        if (strcmp(c->string, "dtype") == 0) slot = &jd;
        else if (strcmp(c->string, "shape") == 0) slot = &js;
        else if (strcmp(c->string, "data_offsets") == 0) slot = &jo;
        else continue; /* unknown keys are ignored, like the reference reader */
        if (*slot) return dx_fail(err, DX_EFORMAT, "tensor '%s': duplicate key '%s'", name, c->string);
        *slot = c;
    }
    if (!cJSON_IsString(jd)) return dx_fail(err, DX_EFORMAT, "tensor '%s': missing or non-string dtype", name);
    int dt = st_dtype_parse(jd->valuestring);
    if (dt < 0) {
        for (size_t i = 0; i < sizeof st_other_dtypes / sizeof *st_other_dtypes; i++)
            if (strcmp(jd->valuestring, st_other_dtypes[i]) == 0)
                return dx_fail(err, DX_EUNSUPPORTED, "tensor '%s': dtype %s is not supported", name,
                               jd->valuestring);
        return dx_fail(err, DX_EFORMAT, "tensor '%s': unknown dtype '%.40s'", name, jd->valuestring);
    }
    if (!cJSON_IsArray(js)) return dx_fail(err, DX_EFORMAT, "tensor '%s': missing or non-array shape", name);
    int ndim = cJSON_GetArraySize(js);
    if (ndim > DX_ST_MAX_DIMS)
        return dx_fail(err, DX_EFORMAT, "tensor '%s': rank %d exceeds %d", name, ndim, DX_ST_MAX_DIMS);
    size_t numel = 1;
    int k = 0;
    for (const cJSON *c = js->child; c; c = c->next, k++) {
        uint64_t d;
        if (!json_uint(c, &d))
            return dx_fail(err, DX_EFORMAT, "tensor '%s': dim %d is not a non-negative integer", name, k);
        t->shape[k] = (int64_t)d;
        if (d != 0 && numel > SIZE_MAX / d)
            return dx_fail(err, DX_EFORMAT, "tensor '%s': element count overflows", name);
        numel *= (size_t)d;
    }
    size_t esz = st_dtypes[dt].size;
    if (numel > SIZE_MAX / esz) return dx_fail(err, DX_EFORMAT, "tensor '%s': byte size overflows", name);
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
        return dx_fail(err, DX_EFORMAT, "tensor '%s': data_offsets must be [begin, end]", name);
    uint64_t b, en;
    if (!json_uint(jo->child, &b) || !json_uint(jo->child->next, &en))
        return dx_fail(err, DX_EFORMAT, "tensor '%s': data_offsets are not non-negative integers", name);
    if (b > en)
        return dx_fail(err, DX_EFORMAT, "tensor '%s': data_offsets [%llu, %llu] are reversed", name,
                       (unsigned long long)b, (unsigned long long)en);
    if (en > data_len)
        return dx_fail(err, DX_EFORMAT,
                       "tensor '%s': data_offsets [%llu, %llu] outside the data section (%llu bytes)", name,
                       (unsigned long long)b, (unsigned long long)en, (unsigned long long)data_len);
    if (en - b != (uint64_t)(numel * esz))
        return dx_fail(err, DX_EFORMAT, "tensor '%s': %llu bytes in file, %s of %s needs %llu", name,
                       (unsigned long long)(en - b),
                       dx_shape_str(t->shape, ndim, (char[160]){0}, 160), st_dtypes[dt].name,
                       (unsigned long long)(numel * esz));
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = (dx_st_dtype)dt;
    t->ndim = ndim;
    t->numel = numel;
    t->data = data + b;
    t->nbytes = (size_t)(en - b);
    r->begin = b;
    r->end = en;
    return DX_OK;
}

/* Validates buf[0..len) and fills st (st->map/map_len/path are set by the caller). */
static dx_status st_parse(dx_safetensors *st, const unsigned char *buf, size_t len, dx_err *err) {
    if (len < 8) return dx_fail(err, DX_EFORMAT, "file too short (%zu bytes) for the header length", len);
    uint64_t n = le64(buf);
    if (n > ST_MAX_HEADER)
        return dx_fail(err, DX_EFORMAT, "header length %llu exceeds the %llu-byte limit",
                       (unsigned long long)n, ST_MAX_HEADER);
    if (n > len - 8)
        return dx_fail(err, DX_EFORMAT, "header length %llu runs past the end of the file (%zu bytes)",
                       (unsigned long long)n, len);
    const char *hdr = (const char *)buf + 8;
    if (n < 2 || hdr[0] != '{') return dx_fail(err, DX_EFORMAT, "header does not start with '{'");
    if (memchr(hdr, '\0', (size_t)n)) return dx_fail(err, DX_EFORMAT, "header contains a NUL byte");
    const unsigned char *data = buf + 8 + n;
    uint64_t data_len = (uint64_t)len - 8 - n;

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)n, &end, 0);
    if (!root)
        return dx_fail(err, DX_EFORMAT, "header is not valid JSON (at byte %lld of %llu)",
                       end ? (long long)(end - hdr) : -1LL, (unsigned long long)n);
    for (const char *p = end; p < hdr + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return dx_fail(err, DX_EFORMAT, "trailing bytes after the header JSON (at byte %lld)",
                           (long long)(p - hdr));
        }
    dx_status s = DX_OK;
    st_range *rg = NULL;
    dx_st_tensor **byname = NULL;
    if (!cJSON_IsObject(root)) {
        s = dx_fail(err, DX_EFORMAT, "header JSON is not an object");
        goto done;
    }
    int count = cJSON_GetArraySize(root);
    st->t = calloc((size_t)(count ? count : 1), sizeof *st->t);
    rg = calloc((size_t)(count ? count : 1), sizeof *rg);
    byname = calloc((size_t)(count ? count : 1), sizeof *byname);
    if (!st->t || !rg || !byname) {
        s = dx_fail(err, DX_ENOMEM, "safetensors header with %d entries", count);
        goto done;
    }
    int have_meta = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (have_meta++) {
                s = dx_fail(err, DX_EFORMAT, "duplicate __metadata__");
                goto done;
            }
            if (!cJSON_IsObject(e)) {
                s = dx_fail(err, DX_EFORMAT, "__metadata__ is not an object");
                goto done;
            }
            for (const cJSON *m = e->child; m; m = m->next)
                if (!cJSON_IsString(m)) {
                    s = dx_fail(err, DX_EFORMAT, "__metadata__ value of '%.80s' is not a string", m->string);
                    goto done;
                }
            char *txt = cJSON_PrintUnformatted(e);
            st->metadata_json = txt ? strdup(txt) : NULL;
            cJSON_free(txt);
            if (!st->metadata_json) {
                s = dx_fail(err, DX_ENOMEM, "__metadata__ text");
                goto done;
            }
            continue;
        }
        s = st_parse_entry(&st->t[st->n], &rg[st->n], e, e->string, data, data_len, err);
        if (s) goto done;
        rg[st->n].idx = st->n;
        byname[st->n] = &st->t[st->n];
        st->n++;
    }
    /* Duplicate names: cJSON keeps both members of {"a":..,"a":..}. */
    qsort(byname, (size_t)st->n, sizeof *byname, cmp_name);
    for (int i = 1; i < st->n; i++)
        if (strcmp(byname[i - 1]->name, byname[i]->name) == 0) {
            s = dx_fail(err, DX_EFORMAT, "duplicate tensor name '%s'", byname[i]->name);
            goto done;
        }
    /* Overlap: sorted by begin, each range must start at or after the furthest end so far. */
    qsort(rg, (size_t)st->n, sizeof *rg, cmp_range);
    uint64_t reach = 0;
    int reach_idx = -1;
    for (int i = 0; i < st->n; i++) {
        if (rg[i].begin < reach) {
            s = dx_fail(err, DX_EFORMAT, "tensors '%s' and '%s' overlap in the data section",
                        st->t[reach_idx].name, st->t[rg[i].idx].name);
            goto done;
        }
        if (rg[i].end > reach || reach_idx < 0) {
            reach = rg[i].end;
            reach_idx = rg[i].idx;
        }
    }
done:
    cJSON_Delete(root);
    free(rg);
    free(byname);
    return s;
}

static void st_reset(dx_safetensors *st) {
    free(st->t);
    free(st->metadata_json);
    free(st->path);
    if (st->map) munmap(st->map, st->map_len);
    memset(st, 0, sizeof *st);
}

dx_status dx_st_open_memory(dx_safetensors *st, const void *buf, size_t len, dx_err *err) {
    memset(st, 0, sizeof *st);
    if (!buf && len) return dx_fail(err, DX_EINVAL, "safetensors: NULL buffer");
    dx_status s = st_parse(st, buf ? buf : "", len, err);
    if (s) st_reset(st);
    return s;
}

dx_status dx_st_open(dx_safetensors *st, const char *path, dx_err *err) {
    memset(st, 0, sizeof *st);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dx_fail(err, errno == ENOENT ? DX_ENOTFOUND : DX_EIO, "open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return dx_fail(err, DX_EIO, "stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return dx_fail(err, DX_EIO, "%s: not a regular file", path);
    }
    size_t len = (size_t)sb.st_size;
    if (len < 8) {
        close(fd);
        return dx_fail(err, DX_EFORMAT, "%s: file too short (%zu bytes) for the header length", path, len);
    }
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the file alive */
    if (map == MAP_FAILED) return dx_fail(err, DX_EIO, "mmap %s: %s", path, strerror(e));
    st->map = map;
    st->map_len = len;
    st->path = strdup(path);
    if (!st->path) {
        st_reset(st);
        return dx_fail(err, DX_ENOMEM, "path");
    }
    dx_status s = st_parse(st, map, len, err);
    if (s) {
        dx_fail_prefix(err, "%s", path);
        st_reset(st);
    }
    return s;
}

void dx_st_close(dx_safetensors *st) {
    if (st) st_reset(st);
}

const dx_st_tensor *dx_st_find(const dx_safetensors *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->t[i].name, name) == 0) return &st->t[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* conversion to float32 (bit-exact: every F16/BF16 value is a float32 value) */

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float dx_bf16_to_f32(uint16_t h) { return dx_bf16_widen(h); }

float dx_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0) {
        if (mant == 0) return bits_f32(sign); /* +-0 */
        /* subnormal: mant * 2^-24; renormalise so the leading 1 becomes implicit */
        uint32_t e = 127 - 15 + 1;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            e--;
        }
        return bits_f32(sign | (e << 23) | ((mant & 0x3ffu) << 13));
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (mant << 13)); /* inf, NaN (payload kept) */
    return bits_f32(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

dx_status dx_st_to_f32(const dx_st_tensor *t, float *dst, size_t n, dx_err *err) {
    if (n != t->numel)
        return dx_fail(err, DX_ESHAPE, "tensor '%s': %zu elements, destination holds %zu", t->name, t->numel, n);
    const unsigned char *p = t->data;
    /* memcpy / byte loads: tensor data in a file need not be aligned. */
    switch (t->dtype) {
    case DX_ST_F32:
        if (n) memcpy(dst, p, n * 4);
        return DX_OK;
    case DX_ST_F16:
        for (size_t i = 0; i < n; i++) dst[i] = dx_f16_to_f32(rd16(p + 2 * i));
        return DX_OK;
    case DX_ST_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = dx_bf16_to_f32(rd16(p + 2 * i));
        return DX_OK;
    case DX_ST_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            dst[i] = (float)d; /* round to nearest even */
        }
        return DX_OK;
    default:
        return dx_fail(err, DX_ESHAPE, "tensor '%s': dtype %s is not a float type", t->name,
                       dx_st_dtype_name(t->dtype));
    }
}

dx_status dx_st_load_f32(const dx_safetensors *st, const char *name, const int64_t *shape, int ndim,
                         float *dst, dx_err *err) {
    const char *where = st->path ? st->path : "<memory>";
    const dx_st_tensor *t = dx_st_find(st, name);
    if (!t) return dx_fail(err, DX_ENOTFOUND, "missing tensor '%s' in %s", name, where);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char a[160], b[160];
        return dx_fail(err, DX_ESHAPE, "tensor '%s': shape %s in file, %s expected", name,
                       dx_shape_str(t->shape, t->ndim, a, sizeof a), dx_shape_str(shape, ndim, b, sizeof b));
    }
    return dx_st_to_f32(t, dst, t->numel, err);
}

/* ------------------------------------------------------------------------ */
/* writer */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* JSON string with serde_json's escaping: quote, backslash, control bytes. */
static void sb_json_str(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char tmp[8];
        if (c == '"') sb_put(b, "\\\"", 2);
        else if (c == '\\') sb_put(b, "\\\\", 2);
        else if (c == '\n') sb_put(b, "\\n", 2);
        else if (c == '\r') sb_put(b, "\\r", 2);
        else if (c == '\t') sb_put(b, "\\t", 2);
        else if (c == '\b') sb_put(b, "\\b", 2);
        else if (c == '\f') sb_put(b, "\\f", 2);
        else if (c < 0x20) {
            snprintf(tmp, sizeof tmp, "\\u%04x", c);
            sb_put(b, tmp, 6);
        } else sb_put(b, (const char *)s, 1);
    }
    sb_put(b, "\"", 1);
}

typedef struct {
    const char *key;
    int idx;
} keyed;

static int cmp_keyed(const void *a, const void *b) {
    return strcmp(((const keyed *)a)->key, ((const keyed *)b)->key);
}


dx_status dx_st_write(const char *path, const dx_st_entry *e, int n, const char *const *metadata,
                      int n_meta, dx_err *err) {
    if (n < 0 || n_meta < 0 || (n && !e) || (n_meta && !metadata))
        return dx_fail(err, DX_EINVAL, "dx_st_write %s: bad arguments", path);
    /* validate entries and compute offsets (given order, no gaps) */
    keyed *order = calloc((size_t)n + 1, sizeof *order);
    keyed *morder = calloc((size_t)n_meta + 1, sizeof *morder);
    uint64_t *off = calloc((size_t)n + 1, sizeof *off);
    sbuf h = {0};
    dx_status s = DX_OK;
    const void **parts = NULL;
    size_t *lens = NULL;
    if (!order || !morder || !off) {
        s = dx_fail(err, DX_ENOMEM, "dx_st_write %s", path);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const dx_st_entry *x = &e[i];
        if (!x->name || !*x->name || strcmp(x->name, "__metadata__") == 0) {
            s = dx_fail(err, DX_EINVAL, "dx_st_write %s: entry %d has an invalid name", path, i);
            goto done;
        }
        if ((int)x->dtype < 0 || (int)x->dtype >= ST_N_DTYPES || x->ndim < 0 || x->ndim > DX_ST_MAX_DIMS ||
            (x->ndim && !x->shape)) {
            s = dx_fail(err, DX_EINVAL, "dx_st_write %s: tensor '%s': bad dtype or rank", path, x->name);
            goto done;
        }
        uint64_t numel = 1;
        for (int d = 0; d < x->ndim; d++) {
            if (x->shape[d] < 0 || (x->shape[d] && numel > UINT64_MAX / 16 / (uint64_t)x->shape[d])) {
                s = dx_fail(err, DX_EINVAL, "dx_st_write %s: tensor '%s': bad shape", path, x->name);
                goto done;
            }
            numel *= (uint64_t)x->shape[d];
        }
        uint64_t nb = numel * st_dtypes[x->dtype].size;
        if (nb && !x->data) {
            s = dx_fail(err, DX_EINVAL, "dx_st_write %s: tensor '%s' has no data", path, x->name);
            goto done;
        }
        off[i + 1] = off[i] + nb;
        order[i].key = x->name;
        order[i].idx = i;
    }
    qsort(order, (size_t)n, sizeof *order, cmp_keyed);
    for (int i = 1; i < n; i++)
        if (strcmp(order[i - 1].key, order[i].key) == 0) {
            s = dx_fail(err, DX_EINVAL, "dx_st_write %s: duplicate tensor '%s'", path, order[i].key);
            goto done;
        }
    for (int i = 0; i < n_meta; i++) {
        if (!metadata[2 * i] || !metadata[2 * i + 1]) {
            s = dx_fail(err, DX_EINVAL, "dx_st_write %s: NULL metadata string", path);
            goto done;
        }
        morder[i].key = metadata[2 * i];
        morder[i].idx = i;
    }
    qsort(morder, (size_t)n_meta, sizeof *morder, cmp_keyed);
    for (int i = 1; i < n_meta; i++)
        if (strcmp(morder[i - 1].key, morder[i].key) == 0) {
            s = dx_fail(err, DX_EINVAL, "dx_st_write %s: duplicate metadata key '%s'", path, morder[i].key);
            goto done;
        }

    /* header: {"__metadata__":{..},"name":{"dtype":..,"shape":[..],"data_offsets":[b,e]},..} */
    sb_str(&h, "{");
    int first = 1;
    if (n_meta) {
        sb_str(&h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) sb_str(&h, ",");
            sb_json_str(&h, morder[i].key);
            sb_str(&h, ":");
            sb_json_str(&h, metadata[2 * morder[i].idx + 1]);
        }
        sb_str(&h, "}");
        first = 0;
    }
    for (int k = 0; k < n; k++) {
        const dx_st_entry *x = &e[order[k].idx];
        char num[48];
        if (!first) sb_str(&h, ",");
        first = 0;
        sb_json_str(&h, x->name);
        sb_str(&h, ":{\"dtype\":\"");
        sb_str(&h, st_dtypes[x->dtype].name);
        sb_str(&h, "\",\"shape\":[");
        for (int d = 0; d < x->ndim; d++) {
            snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)x->shape[d]);
            sb_str(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off[order[k].idx],
                 (unsigned long long)off[order[k].idx + 1]);
        sb_str(&h, num);
    }
    sb_str(&h, "}");
    while (!h.oom && h.len % 8) sb_str(&h, " "); /* data section starts 8-aligned */
    if (h.oom) {
        s = dx_fail(err, DX_ENOMEM, "dx_st_write %s: header", path);
        goto done;
    }
    if (h.len > ST_MAX_HEADER) {
        s = dx_fail(err, DX_EINVAL, "dx_st_write %s: header of %zu bytes exceeds the limit", path, h.len);
        goto done;
    }

    /* atomic (core/dx_file.h): on any failure the previous file at path is untouched */
    parts = malloc(sizeof *parts * ((size_t)n + 2));
    lens = malloc(sizeof *lens * ((size_t)n + 2));
    if (!parts || !lens) {
        s = dx_fail(err, DX_ENOMEM, "dx_st_write %s: out of memory", path);
        goto done;
    }
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    int np = 0;
    parts[np] = lenb, lens[np++] = 8;
    parts[np] = h.p, lens[np++] = h.len;
    for (int i = 0; i < n; i++)
        if (off[i + 1] > off[i]) parts[np] = e[i].data, lens[np++] = (size_t)(off[i + 1] - off[i]);
    s = dx_atomic_write(path, parts, lens, np, err);
done:
    free(parts);
    free(lens);
    free(order);
    free(morder);
    free(off);
    free(h.p);
    return s;
}
