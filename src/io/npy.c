/* npy.c - NumPy .npy reader (format 1.0/2.0/3.0) and atomic writer (1.0).
 * See dx_npy.h and docs/formats.md.
 *
 * File: "\x93NUMPY" | major | minor | header length (u16 LE for 1.x, u32 LE
 * for 2.x/3.x) | header: a Python dict literal
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 * padded with spaces and ended by '\n' | the array bytes, C order.
 * The header is parsed by a small recursive-descent parser that accepts the
 * literals numpy writes (quoted strings, True/False, tuples of non-negative
 * integers) and nothing else; the byte count of the data must equal
 * prod(shape) * itemsize exactly, so allocations are bounded by the input. */
#include "core/dx_file.h"
#include "io/dx_npy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_MAX_HEADER (1u << 20) /* numpy writes < 200 bytes for rank <= 8 */
#define NPY_ALIGN 64
#define NPY_GROWTH_DIGITS 21 /* numpy >= 1.24 leaves room for shape[0] to grow in place */

/* ------------------------------------------------------------------------ */
/* dtypes */

typedef enum { NPY_F, NPY_I, NPY_U, NPY_B } npy_kind;

static const struct {
    const char *descr;
    size_t size;
    npy_kind kind;
} npy_types[] = {
    {"<f4", 4, NPY_F}, {"<f8", 8, NPY_F}, {"<f2", 2, NPY_F}, {"<i2", 2, NPY_I},
    {"<i4", 4, NPY_I}, {"<i8", 8, NPY_I}, {"|i1", 1, NPY_I}, {"|u1", 1, NPY_U},
    {"<u2", 2, NPY_U}, {"<u4", 4, NPY_U}, {"<u8", 8, NPY_U}, {"|b1", 1, NPY_B},
};
#define NPY_N_TYPES ((int)(sizeof npy_types / sizeof npy_types[0]))

static int npy_type_find(const char *descr) {
    for (int i = 0; i < NPY_N_TYPES; i++)
        if (strcmp(descr, npy_types[i].descr) == 0) return i;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* header dict parser: input is h[0..n), not NUL-terminated */

typedef struct {
    const char *h;
    size_t n, i;
} npy_lex;

static void lx_ws(npy_lex *l) {
    while (l->i < l->n && (l->h[l->i] == ' ' || l->h[l->i] == '\t' || l->h[l->i] == '\n' ||
                           l->h[l->i] == '\r'))
        l->i++;
}

static int lx_eat(npy_lex *l, char c) {
    lx_ws(l);
    if (l->i < l->n && l->h[l->i] == c) {
        l->i++;
        return 1;
    }
    return 0;
}

/* 'text' or "text" without escapes, into out[cap]; 0 on malformed or too long. */
static int lx_string(npy_lex *l, char *out, size_t cap) {
    lx_ws(l);
    if (l->i >= l->n || (l->h[l->i] != '\'' && l->h[l->i] != '"')) return 0;
    char q = l->h[l->i++];
    size_t k = 0;
    while (l->i < l->n && l->h[l->i] != q) {
        char c = l->h[l->i++];
        if (c == '\\' || c == '\n' || c == '\0' || k + 1 >= cap) return 0;
        out[k++] = c;
    }
    if (l->i >= l->n) return 0;
    l->i++;
    out[k] = '\0';
    return 1;
}

static int lx_word(npy_lex *l, const char *w) {
    lx_ws(l);
    size_t m = strlen(w);
    if (l->n - l->i < m || memcmp(l->h + l->i, w, m) != 0) return 0;
    /* not a prefix of a longer identifier */
    if (l->i + m < l->n) {
        char c = l->h[l->i + m];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_') return 0;
    }
    l->i += m;
    return 1;
}

/* Non-negative decimal integer below 2^62 (an optional Python 2 'L' suffix is accepted). */
static int lx_int(npy_lex *l, int64_t *v) {
    lx_ws(l);
    size_t start = l->i;
    uint64_t x = 0;
    while (l->i < l->n && l->h[l->i] >= '0' && l->h[l->i] <= '9') {
        x = x * 10 + (uint64_t)(l->h[l->i++] - '0');
        if (x >= (1ull << 62)) return 0;
    }
    if (l->i == start) return 0;
    if (l->i < l->n && l->h[l->i] == 'L') l->i++;
    *v = (int64_t)x;
    return 1;
}

/* (d0, d1, ...) with Python's rule that a 1-tuple needs its trailing comma. */
static dx_status lx_shape(npy_lex *l, dx_npy *out, dx_err *err) {
    if (!lx_eat(l, '(')) return dx_fail(err, DX_EFORMAT, "npy header: 'shape' is not a tuple");
    int nd = 0, trailing_comma = 0;
    if (lx_eat(l, ')')) {
        out->ndim = 0;
        return DX_OK;
    }
    for (;;) {
        int64_t d;
        if (!lx_int(l, &d)) return dx_fail(err, DX_EFORMAT, "npy header: shape entry %d is not a non-negative integer", nd);
        if (nd >= DX_NPY_MAX_DIMS) return dx_fail(err, DX_EFORMAT, "npy header: rank exceeds %d", DX_NPY_MAX_DIMS);
        out->shape[nd++] = d;
        trailing_comma = lx_eat(l, ',');
        if (lx_eat(l, ')')) break;
        if (!trailing_comma) return dx_fail(err, DX_EFORMAT, "npy header: malformed shape tuple");
    }
    if (nd == 1 && !trailing_comma) return dx_fail(err, DX_EFORMAT, "npy header: shape (n) is not a tuple; (n,) expected");
    out->ndim = nd;
    return DX_OK;
}

/* Parses the dict; exactly the keys descr, fortran_order, shape (as numpy requires). */
static dx_status npy_parse_dict(const char *h, size_t n, dx_npy *out, dx_err *err) {
    npy_lex l = {h, n, 0};
    int have_descr = 0, have_fo = 0, have_shape = 0, fortran = 0;
    char descr[32];
    if (!lx_eat(&l, '{')) return dx_fail(err, DX_EFORMAT, "npy header is not a dict");
    while (!lx_eat(&l, '}')) {
        char key[32];
        if (!lx_string(&l, key, sizeof key)) return dx_fail(err, DX_EFORMAT, "npy header: malformed key");
        if (!lx_eat(&l, ':')) return dx_fail(err, DX_EFORMAT, "npy header: ':' expected after '%s'", key);
        if (strcmp(key, "descr") == 0) {
            if (have_descr++) return dx_fail(err, DX_EFORMAT, "npy header: duplicate 'descr'");
            if (!lx_string(&l, descr, sizeof descr)) {
                lx_ws(&l);
                if (l.i < l.n && l.h[l.i] == '[')
                    return dx_fail(err, DX_EUNSUPPORTED, "npy: structured dtypes are not supported");
                return dx_fail(err, DX_EFORMAT, "npy header: 'descr' is not a string");
            }
        } else if (strcmp(key, "fortran_order") == 0) {
            if (have_fo++) return dx_fail(err, DX_EFORMAT, "npy header: duplicate 'fortran_order'");
            if (lx_word(&l, "True")) fortran = 1;
            else if (lx_word(&l, "False")) fortran = 0;
            else return dx_fail(err, DX_EFORMAT, "npy header: 'fortran_order' is not True/False");
        } else if (strcmp(key, "shape") == 0) {
            if (have_shape++) return dx_fail(err, DX_EFORMAT, "npy header: duplicate 'shape'");
            dx_status s = lx_shape(&l, out, err);
            if (s) return s;
        } else {
            return dx_fail(err, DX_EFORMAT, "npy header: unexpected key '%s'", key);
        }
        if (!lx_eat(&l, ',')) {
            if (!lx_eat(&l, '}')) return dx_fail(err, DX_EFORMAT, "npy header: ',' or '}' expected");
            break;
        }
    }
    lx_ws(&l);
    if (l.i != l.n) return dx_fail(err, DX_EFORMAT, "npy header: trailing bytes after the dict");
    if (!have_descr || !have_fo || !have_shape)
        return dx_fail(err, DX_EFORMAT, "npy header lacks %s", !have_descr ? "'descr'" : !have_fo ? "'fortran_order'" : "'shape'");
    if (fortran) return dx_fail(err, DX_EUNSUPPORTED, "npy: fortran_order True is not supported (save a C-order array)");
    if (npy_type_find(descr) < 0)
        return dx_fail(err, DX_EUNSUPPORTED, "npy: dtype '%s' is not supported (little-endian numeric only)", descr);
    memcpy(out->descr, descr, strlen(descr) + 1); /* a table entry: <= 3 chars */
    return DX_OK;
}

/* Validates the preamble and header in buf[0..avail); sets *data_off and the
 * fields of out except data; *nbytes = numel * itemsize (overflow-checked). */
static dx_status npy_parse_header(const unsigned char *buf, size_t avail, dx_npy *out, size_t *data_off,
                                  size_t *nbytes, dx_err *err) {
    if (avail < NPY_MAGIC_LEN + 2 || memcmp(buf, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
        return dx_fail(err, DX_EFORMAT, "not a .npy file (bad magic)");
    int major = buf[6], minor = buf[7];
    size_t pre, hlen;
    if (major == 1 && minor == 0) {
        pre = 10;
        if (avail < pre) return dx_fail(err, DX_EFORMAT, "npy: truncated preamble");
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
    } else if ((major == 2 || major == 3) && minor == 0) {
        pre = 12;
        if (avail < pre) return dx_fail(err, DX_EFORMAT, "npy: truncated preamble");
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
    } else {
        return dx_fail(err, DX_EUNSUPPORTED, "npy format version %d.%d is not supported", major, minor);
    }
    if (hlen > NPY_MAX_HEADER) return dx_fail(err, DX_EFORMAT, "npy header length %zu exceeds %u", hlen, NPY_MAX_HEADER);
    if (hlen > avail - pre)
        return dx_fail(err, DX_EFORMAT, "npy header length %zu runs past the end of the file", hlen);
    if (memchr(buf + pre, '\0', hlen)) return dx_fail(err, DX_EFORMAT, "npy header contains a NUL byte");
    memset(out, 0, sizeof *out);
    dx_status s = npy_parse_dict((const char *)buf + pre, hlen, out, err);
    if (s) return s;
    size_t numel = 1;
    for (int i = 0; i < out->ndim; i++) {
        uint64_t d = (uint64_t)out->shape[i];
        if (d && numel > SIZE_MAX / d) return dx_fail(err, DX_EFORMAT, "npy: element count overflows");
        numel *= (size_t)d;
    }
    size_t isz = npy_types[npy_type_find(out->descr)].size;
    if (numel > SIZE_MAX / isz) return dx_fail(err, DX_EFORMAT, "npy: byte size overflows");
    out->numel = numel;
    *data_off = pre + hlen;
    *nbytes = numel * isz;
    return DX_OK;
}

static dx_status npy_check_len(size_t have, size_t want, const dx_npy *a, dx_err *err) {
    if (have == want) return DX_OK;
    return dx_fail(err, DX_EFORMAT, "npy: %zu data bytes, shape and dtype %s need %zu", have, a->descr, want);
}

dx_status dx_npy_parse_memory(dx_npy *out, const void *buf, size_t len, dx_err *err) {
    memset(out, 0, sizeof *out);
    if (!buf) return dx_fail(err, DX_EINVAL, "npy: NULL buffer");
    size_t off = 0, nb = 0;
    dx_status s = npy_parse_header(buf, len, out, &off, &nb, err);
    if (!s) s = npy_check_len(len - off, nb, out, err);
    if (s) {
        memset(out, 0, sizeof *out);
        return s;
    }
    out->data = malloc(nb ? nb : 1);
    if (!out->data) return dx_fail(err, DX_ENOMEM, "npy: %zu bytes", nb);
    if (nb) memcpy(out->data, (const unsigned char *)buf + off, nb);
    return DX_OK;
}

static int read_full(int fd, void *buf, size_t n, off_t at) {
    unsigned char *p = buf;
    while (n) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : n;
        ssize_t r = pread(fd, p, chunk, at);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) {
            errno = EIO; /* file shrank under us */
            return -1;
        }
        p += r;
        n -= (size_t)r;
        at += r;
    }
    return 0;
}

dx_status dx_npy_read(dx_npy *out, const char *path, dx_err *err) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dx_fail(err, errno == ENOENT ? DX_ENOTFOUND : DX_EIO, "open %s: %s", path, strerror(errno));
    dx_status s = DX_OK;
    unsigned char *head = NULL;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        s = dx_fail(err, DX_EIO, "%s: not a readable regular file", path);
        goto done;
    }
    size_t size = (size_t)sb.st_size;
    size_t want = size < 12 + NPY_MAX_HEADER ? size : 12 + NPY_MAX_HEADER;
    head = malloc(want ? want : 1);
    if (!head) {
        s = dx_fail(err, DX_ENOMEM, "%s: header buffer", path);
        goto done;
    }
    if (read_full(fd, head, want, 0)) {
        s = dx_fail(err, DX_EIO, "read %s: %s", path, strerror(errno));
        goto done;
    }
    size_t off = 0, nb = 0;
    s = npy_parse_header(head, want, out, &off, &nb, err);
    if (!s) s = npy_check_len(size - off, nb, out, err);
    if (s) {
        dx_fail_prefix(err, "%s", path);
        memset(out, 0, sizeof *out);
        goto done;
    }
    out->data = malloc(nb ? nb : 1);
    if (!out->data) {
        s = dx_fail(err, DX_ENOMEM, "%s: %zu bytes", path, nb);
        memset(out, 0, sizeof *out);
        goto done;
    }
    if (read_full(fd, out->data, nb, (off_t)off)) {
        s = dx_fail(err, DX_EIO, "read %s: %s", path, strerror(errno));
        dx_npy_free(out);
    }
done:
    free(head);
    close(fd);
    return s;
}

void dx_npy_free(dx_npy *a) {
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------------------------ */
/* conversion */

dx_status dx_npy_to_f32(const dx_npy *a, float *dst, dx_err *err) {
    const unsigned char *p = a->data;
    size_t n = a->numel;
    /* memcpy per element: the data buffer is malloc'd (aligned) here, but
     * the loop does not rely on it. */
#define NPY_CONV(T)                                                                                  \
    for (size_t i = 0; i < n; i++) {                                                                 \
        T v;                                                                                         \
        memcpy(&v, p + i * sizeof(T), sizeof(T));                                                    \
        dst[i] = (float)v;                                                                           \
    }                                                                                                \
    return DX_OK
    if (strcmp(a->descr, "<f4") == 0) {
        if (n) memcpy(dst, p, n * 4);
        return DX_OK;
    }
    if (strcmp(a->descr, "<f8") == 0) { NPY_CONV(double); }
    if (strcmp(a->descr, "<i2") == 0) { NPY_CONV(int16_t); }
    if (strcmp(a->descr, "<i4") == 0) { NPY_CONV(int32_t); }
    if (strcmp(a->descr, "|u1") == 0) { NPY_CONV(uint8_t); }
    if (strcmp(a->descr, "|i1") == 0) { NPY_CONV(int8_t); }
#undef NPY_CONV
    return dx_fail(err, DX_EUNSUPPORTED, "npy: dtype %s cannot be read as float32 (<f4 <f8 <i2 <i4 |u1 |i1)", a->descr);
}

dx_status dx_npy_read_f32(const char *path, float **data, int64_t *shape, int *ndim, dx_err *err) {
    *data = NULL;
    dx_npy a;
    dx_status s = dx_npy_read(&a, path, err);
    if (s) return s;
    float *f = NULL;
    if (strcmp(a.descr, "<f4") == 0) {
        f = a.data; /* already float32: take ownership, no copy */
        a.data = NULL;
    } else {
        f = malloc(a.numel ? a.numel * sizeof *f : 1);
        if (!f) s = dx_fail(err, DX_ENOMEM, "%s: %zu floats", path, a.numel);
        else if ((s = dx_npy_to_f32(&a, f, err))) {
            dx_fail_prefix(err, "%s", path);
            free(f);
            f = NULL;
        }
    }
    if (!s) {
        memcpy(shape, a.shape, (size_t)a.ndim * sizeof *shape);
        *ndim = a.ndim;
        *data = f;
    }
    dx_npy_free(&a);
    return s;
}

/* ------------------------------------------------------------------------ */
/* writer */


dx_status dx_npy_write(const char *path, const char *descr, const void *data, const int64_t *shape,
                       int ndim, dx_err *err) {
    int ti = descr ? npy_type_find(descr) : -1;
    if (ti < 0) return dx_fail(err, DX_EINVAL, "npy write %s: unsupported dtype '%s'", path, descr ? descr : "(null)");
    if (ndim < 0 || ndim > DX_NPY_MAX_DIMS || (ndim && !shape))
        return dx_fail(err, DX_EINVAL, "npy write %s: bad rank %d", path, ndim);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (uint64_t)shape[i] >= (1ull << 62) ||
            (shape[i] && numel > SIZE_MAX / 16 / (size_t)shape[i]))
            return dx_fail(err, DX_EINVAL, "npy write %s: bad shape", path);
        numel *= (size_t)shape[i];
    }
    size_t nb = numel * npy_types[ti].size;
    if (nb && !data) return dx_fail(err, DX_EINVAL, "npy write %s: NULL data", path);

    /* header exactly as numpy 1.24 writes it, so files are byte-identical to np.save */
    char hdr[512];
    int k = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < ndim; i++)
        k += snprintf(hdr + k, sizeof hdr - (size_t)k, i ? ", %lld" : "%lld", (long long)shape[i]);
    k += snprintf(hdr + k, sizeof hdr - (size_t)k, "%s), }", ndim == 1 ? "," : "");
    if (ndim > 0) {
        int digits = snprintf(NULL, 0, "%lld", (long long)shape[0]);
        for (int i = digits; i < NPY_GROWTH_DIGITS; i++) hdr[k++] = ' ';
    }
    int pad = NPY_ALIGN - (NPY_MAGIC_LEN + 4 + k + 1) % NPY_ALIGN; /* 1..64, like numpy */
    for (int i = 0; i < pad; i++) hdr[k++] = ' ';
    hdr[k++] = '\n';
    unsigned char pre[10];
    memcpy(pre, NPY_MAGIC, NPY_MAGIC_LEN);
    pre[6] = 1;
    pre[7] = 0;
    pre[8] = (unsigned char)(k & 0xff);
    pre[9] = (unsigned char)(k >> 8);

    /* atomic: the previous file at path is untouched on any failure */
    const void *parts[3] = {pre, hdr, data};
    const size_t lens[3] = {sizeof pre, (size_t)k, nb};
    return dx_atomic_write(path, parts, lens, nb ? 3 : 2, err);
}
