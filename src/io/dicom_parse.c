/* dicom_parse.c - DICOM Part 10 / bare-dataset parser: walks the element
 * stream (file meta always explicit VR LE; dataset implicit LE, explicit LE or
 * explicit BE), keeps the top-level attributes CT ingest needs (dx_dicom_file)
 * and locates PixelData. Sequences and items of defined or undefined length
 * are stepped over without interpreting their contents.
 *
 * Safety: every length is compared with the bytes that remain before it is
 * used; nesting is bounded (DX_DICOM_MAX_DEPTH); every loop iteration consumes
 * at least one 8-byte element header, so zero-length items cannot spin. */
#include "io/dicom_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define DX_DICOM_MAX_DEPTH 16
#define UNDEF_LEN 0xFFFFFFFFu
/* Header-only reads look at this much of the file first (LIDC headers are ~2 KB). */
#define HEADER_PREFIX (64 * 1024)
/* Files bigger than this are refused rather than slurped. */
#define MAX_FILE_BYTES ((size_t)1 << 30)
/* A deflated dataset may expand at most this much (deflate itself tops out near 1032x). */
#define DEFLATE_MAX_RATIO 1100

typedef struct parser {
    const uint8_t *d;
    size_t n;            /* bytes available in d */
    size_t file_size;    /* true size of the file (>= n when d is a prefix) */
    int prefix;          /* d holds only the first n bytes of the file */
    int need_more;       /* a length ran past n but not past file_size */
    int stop_at_pixels;  /* header-only: stop at top-level PixelData */
    int done;
    const char *name;
    dx_err *err;
    dx_dicom_file *f;
    uint32_t padding_raw, padding_limit_raw;
} parser;

static uint16_t rd16(const uint8_t *p, int big) {
    return big ? (uint16_t)(p[0] << 8 | p[1]) : (uint16_t)(p[1] << 8 | p[0]);
}

static uint32_t rd32(const uint8_t *p, int big) {
    return big ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
               : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static int is_upper(uint8_t c) { return c >= 'A' && c <= 'Z'; }

/* VRs whose explicit header is tag(4) VR(2) reserved(2) length(4). */
static int long_form_vr(const char *vr) {
    static const char *l[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"};
    for (size_t i = 0; i < sizeof l / sizeof *l; i++)
        if (vr[0] == l[i][0] && vr[1] == l[i][1]) return 1;
    return 0;
}

static dx_status fail_trunc(parser *p, size_t pos, size_t want, const char *what) {
    /* The bytes exist in the file but not in our prefix: ask for the whole file. */
    if (p->prefix && pos + want <= p->file_size) p->need_more = 1;
    return dx_fail(p->err, DX_EFORMAT, "%s: %s at offset %zu needs %zu bytes, only %zu remain", p->name, what,
                   pos, want, pos < p->n ? p->n - pos : 0);
}

/* Reads one element header at *pos (< end). Item/delimiter tags (FFFE,xxxx)
 * carry no VR in any syntax. vr is "" when the syntax is implicit. */
static dx_status read_elem_header(parser *p, size_t *pos, size_t end, int explicit_vr, int big, uint16_t *g,
                                  uint16_t *e, char vr[3], uint32_t *len) {
    size_t at = *pos;
    if (end - at < 8) return fail_trunc(p, at, 8, "element header");
    const uint8_t *q = p->d + at;
    *g = rd16(q, big);
    *e = rd16(q + 2, big);
    vr[0] = vr[1] = vr[2] = 0;
    if (*g == 0xFFFE || !explicit_vr) {
        *len = rd32(q + 4, big);
        *pos = at + 8;
        return DX_OK;
    }
    if (!is_upper(q[4]) || !is_upper(q[5]))
        return dx_fail(p->err, DX_EFORMAT, "%s: element (%04X,%04X) at offset %zu has invalid VR bytes 0x%02X 0x%02X",
                       p->name, *g, *e, at, q[4], q[5]);
    vr[0] = (char)q[4];
    vr[1] = (char)q[5];
    if (long_form_vr(vr)) {
        if (end - at < 12) return fail_trunc(p, at, 12, "element header");
        *len = rd32(q + 8, big);
        *pos = at + 12;
    } else {
        *len = rd16(q + 6, big);
        *pos = at + 8;
    }
    return DX_OK;
}

/* ---- value decoding ---------------------------------------------------- */

/* Copies a string value, dropping leading/trailing spaces and trailing NULs. */
static void copy_str(char *dst, size_t cap, const uint8_t *v, size_t len) {
    size_t a = 0, b = len;
    while (a < b && v[a] == ' ') a++;
    while (b > a && (v[b - 1] == ' ' || v[b - 1] == 0)) b--;
    size_t k = 0;
    for (size_t i = a; i < b && k + 1 < cap; i++) {
        if (v[i] == 0) break;
        dst[k++] = (char)v[i];
    }
    dst[k] = 0;
}

/* Parses up to max backslash-separated decimal numbers; returns how many
 * parsed as finite numbers before the first failure. */
static int parse_ds(const uint8_t *v, size_t len, double *out, int max) {
    char buf[512];
    if (len >= sizeof buf) len = sizeof buf - 1;
    memcpy(buf, v, len);
    buf[len] = 0;
    int n = 0;
    char *s = buf;
    while (n < max) {
        char *sep = strchr(s, '\\');
        if (sep) *sep = 0;
        while (*s == ' ') s++;
        char *endp;
        errno = 0;
        double x = strtod(s, &endp);
        if (endp == s || errno == ERANGE || !isfinite(x)) break;
        while (*endp == ' ') endp++;
        if (*endp != 0) break;
        out[n++] = x;
        if (!sep) break;
        s = sep + 1;
    }
    return n;
}

static int parse_is(const uint8_t *v, size_t len, int *out) {
    double x;
    if (parse_ds(v, len, &x, 1) != 1 || fabs(x) > 2147483647.0) return 0;
    *out = (int)x;
    return 1;
}

/* Keeps the top-level attributes we need. */
static void handle_value(parser *p, uint16_t g, uint16_t e, const char *vr, const uint8_t *v, size_t len,
                         int big) {
    dx_dicom_file *f = p->f;
    uint32_t tag = (uint32_t)g << 16 | e;
    double tmp[6];
    switch (tag) {
    case 0x00080008: copy_str(f->image_type, sizeof f->image_type, v, len); break;
    case 0x00080016: copy_str(f->sop_class_uid, sizeof f->sop_class_uid, v, len); break;
    case 0x00080018: copy_str(f->sop_instance_uid, sizeof f->sop_instance_uid, v, len); break;
    case 0x00080060: copy_str(f->modality, sizeof f->modality, v, len); break;
    case 0x00100020: copy_str(f->patient_id, sizeof f->patient_id, v, len); break;
    case 0x0020000D: copy_str(f->study_uid, sizeof f->study_uid, v, len); break;
    case 0x0020000E: copy_str(f->series_uid, sizeof f->series_uid, v, len); break;
    case 0x00280004: copy_str(f->photometric, sizeof f->photometric, v, len); break;
    case 0x00180050:
        if (parse_ds(v, len, tmp, 1) == 1) f->slice_thickness = tmp[0];
        break;
    case 0x00200013: parse_is(v, len, &f->instance_number); break;
    case 0x00200032:
        if (parse_ds(v, len, tmp, 3) == 3) {
            memcpy(f->ipp, tmp, sizeof f->ipp);
            f->has_ipp = 1;
        }
        break;
    case 0x00200037:
        if (parse_ds(v, len, tmp, 6) == 6) {
            memcpy(f->iop, tmp, sizeof f->iop);
            f->has_iop = 1;
        }
        break;
    case 0x00280030:
        if (parse_ds(v, len, tmp, 2) == 2) {
            f->pixel_spacing[0] = tmp[0];
            f->pixel_spacing[1] = tmp[1];
            f->has_pixel_spacing = 1;
        }
        break;
    case 0x00280008: parse_is(v, len, &f->number_of_frames); break;
    case 0x00280002: if (len >= 2) f->samples_per_pixel = rd16(v, big); break;
    case 0x00280010: if (len >= 2) f->rows = rd16(v, big); break;
    case 0x00280011: if (len >= 2) f->cols = rd16(v, big); break;
    case 0x00280100: if (len >= 2) f->bits_allocated = rd16(v, big); break;
    case 0x00280101: if (len >= 2) f->bits_stored = rd16(v, big); break;
    case 0x00280102: if (len >= 2) f->high_bit = rd16(v, big); break;
    case 0x00280103: if (len >= 2) f->pixel_representation = rd16(v, big); break;
    case 0x00280120:
        if (len >= 2) {
            p->padding_raw = rd16(v, big);
            f->has_padding = 1;
        }
        break;
    case 0x00280121:
        if (len >= 2) {
            p->padding_limit_raw = rd16(v, big);
            f->has_padding_limit = 1;
        }
        break;
    case 0x00281050:
        if (parse_ds(v, len, tmp, 1) == 1) f->window_center = tmp[0];
        break;
    case 0x00281051:
        if (parse_ds(v, len, tmp, 1) == 1) f->window_width = tmp[0];
        break;
    case 0x00281052:
        if (parse_ds(v, len, tmp, 1) == 1) {
            f->rescale_intercept = tmp[0];
            f->has_rescale = 1;
        }
        break;
    case 0x00281053:
        if (parse_ds(v, len, tmp, 1) == 1) {
            f->rescale_slope = tmp[0];
            f->has_rescale = 1;
        }
        break;
    default: break;
    }
    (void)vr;
}

/* ---- structure walk ---------------------------------------------------- */

static dx_status walk_dataset(parser *p, size_t *pos, size_t end, int explicit_vr, int big, int depth,
                              int in_undef_item);

/* Steps over the items of an undefined-length sequence (or the fragments of
 * encapsulated pixel data) up to and including the sequence delimiter. */
static dx_status walk_items(parser *p, size_t *pos, size_t end, int explicit_vr, int big, int depth,
                            int is_pixels, int *n_items) {
    if (depth > DX_DICOM_MAX_DEPTH)
        return dx_fail(p->err, DX_EFORMAT, "%s: sequences nested deeper than %d at offset %zu", p->name,
                       DX_DICOM_MAX_DEPTH, *pos);
    *n_items = 0;
    while (*pos < end) {
        size_t at = *pos;
        if (end - at < 8) return fail_trunc(p, at, 8, "item header");
        uint16_t g = rd16(p->d + at, big), e = rd16(p->d + at + 2, big);
        uint32_t len = rd32(p->d + at + 4, big);
        *pos = at + 8;
        if (g == 0xFFFE && e == 0xE0DD) return DX_OK;
        if (g != 0xFFFE || e != 0xE000)
            return dx_fail(p->err, DX_EFORMAT, "%s: expected an item tag at offset %zu, found (%04X,%04X)", p->name,
                           at, g, e);
        (*n_items)++;
        if (len == UNDEF_LEN) {
            if (is_pixels)
                return dx_fail(p->err, DX_EFORMAT, "%s: pixel data fragment of undefined length at offset %zu",
                               p->name, at);
            dx_status st = walk_dataset(p, pos, end, explicit_vr, big, depth + 1, 1);
            if (st) return st;
        } else {
            if (len > end - *pos) return fail_trunc(p, *pos, len, "item value");
            *pos += len;
        }
    }
    return fail_trunc(p, *pos, 8, "sequence delimiter");
}

static dx_status walk_dataset(parser *p, size_t *pos, size_t end, int explicit_vr, int big, int depth,
                              int in_undef_item) {
    if (depth > DX_DICOM_MAX_DEPTH)
        return dx_fail(p->err, DX_EFORMAT, "%s: items nested deeper than %d at offset %zu", p->name,
                       DX_DICOM_MAX_DEPTH, *pos);
    while (*pos < end) {
        size_t at = *pos;
        uint16_t g = 0, e = 0;
        uint32_t len = 0;
        char vr[3];
        dx_status st = read_elem_header(p, pos, end, explicit_vr, big, &g, &e, vr, &len);
        if (st) return st;
        if (g == 0xFFFE) {
            if (e == 0xE00D && in_undef_item) return DX_OK;
            return dx_fail(p->err, DX_EFORMAT, "%s: unexpected delimiter (FFFE,%04X) at offset %zu", p->name, e, at);
        }
        int is_pixels = depth == 0 && g == 0x7FE0 && e == 0x0010;
        if (len == UNDEF_LEN) {
            /* Undefined length is legal only for SQ, UN (contents implicit LE) and
             * encapsulated pixel data; in implicit VR we cannot tell SQ from UN. */
            int sq = !explicit_vr || (vr[0] == 'S' && vr[1] == 'Q');
            int un = explicit_vr && vr[0] == 'U' && vr[1] == 'N';
            int pix = g == 0x7FE0 && e == 0x0010;
            if (!sq && !un && !pix)
                return dx_fail(p->err, DX_EFORMAT, "%s: element (%04X,%04X) VR %s has undefined length", p->name, g,
                               e, vr);
            size_t value_at = *pos;
            int n_items;
            if (is_pixels && p->stop_at_pixels) {
                /* Header-only: do not walk (or read) the fragments; the length
                 * recorded is an upper bound (to the end of the file). */
                p->f->has_pixel_data = 1;
                p->f->encapsulated = 1;
                p->f->pixel_offset = value_at;
                p->f->pixel_length = p->file_size - value_at;
                p->done = 1;
                return DX_OK;
            }
            st = walk_items(p, pos, end, un ? 0 : explicit_vr, un ? 0 : big, depth + 1, pix, &n_items);
            if (st) return st;
            if (is_pixels) {
                p->f->has_pixel_data = 1;
                p->f->encapsulated = 1;
                p->f->pixel_offset = value_at;
                p->f->pixel_length = *pos - value_at;
            }
            continue;
        }
        if (len > end - *pos) {
            /* Header-only: native pixel data may extend past our prefix. */
            if (is_pixels && p->stop_at_pixels && *pos + (size_t)len <= p->file_size) {
                p->f->has_pixel_data = 1;
                p->f->pixel_offset = *pos;
                p->f->pixel_length = len;
                p->done = 1;
                return DX_OK;
            }
            char what[64];
            snprintf(what, sizeof what, "value of (%04X,%04X)", g, e);
            return fail_trunc(p, *pos, len, what);
        }
        if (is_pixels) {
            p->f->has_pixel_data = 1;
            p->f->pixel_offset = *pos;
            p->f->pixel_length = len;
            if (p->stop_at_pixels) {
                p->done = 1;
                return DX_OK;
            }
        } else if (depth == 0) {
            handle_value(p, g, e, vr, p->d + *pos, len, big);
        }
        *pos += len;
    }
    if (in_undef_item) return fail_trunc(p, *pos, 8, "item delimiter");
    return DX_OK;
}

/* ---- entry points ------------------------------------------------------ */

static int looks_explicit(const uint8_t *q, size_t avail) {
    return avail >= 6 && is_upper(q[4]) && is_upper(q[5]);
}

static dx_status parse_dataset(parser *p, size_t pos, int explicit_vr, int big, int with_pixels);

/* Deflated Explicit VR LE: everything after the file meta is a raw deflate
 * stream. Inflate it (bounded) and parse the result as explicit LE; pixel
 * offsets then refer to the inflated dataset. */
static dx_status parse_deflated(parser *p, size_t pos, int with_pixels) {
    if (p->prefix) {
        p->need_more = 1; /* a deflate stream cannot be parsed from a prefix */
        return dx_fail(p->err, DX_EFORMAT, "%s: deflated dataset needs the whole file", p->name);
    }
    size_t in_n = p->n - pos, cap = in_n * 4 + 4096, out_n = 0;
    size_t limit = in_n > MAX_FILE_BYTES / DEFLATE_MAX_RATIO ? MAX_FILE_BYTES : in_n * DEFLATE_MAX_RATIO + 65536;
    uint8_t *out = malloc(cap);
    if (!out) return dx_fail(p->err, DX_ENOMEM, "%s: inflate buffer", p->name);
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -15) != Z_OK) {
        free(out);
        return dx_fail(p->err, DX_ENOMEM, "%s: inflateInit failed", p->name);
    }
    /* zlib counts in uInt: feed and drain in chunks of at most 1 GiB. */
    const uint8_t *in = p->d + pos;
    int zr = Z_OK;
    dx_status st = DX_OK;
    while (zr != Z_STREAM_END) {
        if (out_n == cap) {
            if (cap >= limit) {
                st = dx_fail(p->err, DX_EFORMAT, "%s: deflated dataset expands beyond %zu bytes", p->name, limit);
                break;
            }
            size_t nc = cap * 2 < limit ? cap * 2 : limit;
            uint8_t *t = realloc(out, nc);
            if (!t) {
                st = dx_fail(p->err, DX_ENOMEM, "%s: inflate buffer", p->name);
                break;
            }
            out = t, cap = nc;
        }
        if (z.avail_in == 0 && in_n) {
            uInt c = in_n > (1u << 30) ? (1u << 30) : (uInt)in_n;
            z.next_in = (Bytef *)in;
            z.avail_in = c;
            in += c, in_n -= c;
        }
        size_t room = cap - out_n;
        z.next_out = out + out_n;
        z.avail_out = room > (1u << 30) ? (1u << 30) : (uInt)room;
        uInt before = z.avail_out;
        zr = inflate(&z, Z_NO_FLUSH);
        size_t made = before - z.avail_out;
        out_n += made;
        if (zr == Z_STREAM_END) break;
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            st = dx_fail(p->err, DX_EFORMAT, "%s: deflated dataset is corrupt (zlib error %d)", p->name, zr);
            break;
        }
        if (made == 0 && z.avail_in == 0 && in_n == 0) {
            st = dx_fail(p->err, DX_EFORMAT, "%s: deflated dataset is truncated", p->name);
            break;
        }
    }
    inflateEnd(&z);
    if (!st) {
        parser q = *p;
        q.d = out;
        q.n = q.file_size = out_n;
        st = parse_dataset(&q, 0, 1, 0, with_pixels);
    }
    free(out);
    return st;
}

static dx_status parse(parser *p, int with_pixels) {
    dx_dicom_file *f = p->f;
    const uint8_t *d = p->d;
    size_t n = p->n, pos = 0;
    int has_meta = 0;
    if (n >= 132 && memcmp(d + 128, "DICM", 4) == 0) {
        pos = 132;
        has_meta = 1;
    } else if (n >= 4 && memcmp(d, "DICM", 4) == 0) {
        pos = 4;
        has_meta = 1;
    }
    if (has_meta) {
        /* File meta group: explicit VR LE, elements of group 0002 only. */
        while (n - pos >= 2 && rd16(d + pos, 0) == 0x0002) {
            uint16_t g = 0, e = 0;
            uint32_t len = 0;
            char vr[3];
            size_t at = pos;
            dx_status st = read_elem_header(p, &pos, n, 1, 0, &g, &e, vr, &len);
            if (st) return st;
            if (len == UNDEF_LEN || len > n - pos)
                return dx_fail(p->err, DX_EFORMAT, "%s: file meta element (0002,%04X) at offset %zu has bad length %u",
                               p->name, e, at, len);
            if (e == 0x0010) copy_str(f->transfer_syntax, sizeof f->transfer_syntax, d + pos, len);
            pos += len;
        }
    }
    if (!f->transfer_syntax[0]) {
        /* Bare dataset, or file meta without a TransferSyntaxUID: guess the
         * syntax from the first element; without DICM accept only group 0008 there. */
        if (n - pos < 8)
            return dx_fail(p->err, DX_EFORMAT, "%s: not a DICOM file (%zu bytes, no DICM magic)", p->name, n);
        const uint8_t *q = d + pos;
        uint16_t gl = rd16(q, 0), gb = rd16(q, 1);
        if (has_meta || gl == 0x0008 || gl == 0x0002)
            snprintf(f->transfer_syntax, sizeof f->transfer_syntax, "%s",
                     looks_explicit(q, n - pos) ? DX_TS_EXPLICIT_LE : DX_TS_IMPLICIT_LE);
        else if (gb == 0x0008 && looks_explicit(q, n - pos))
            snprintf(f->transfer_syntax, sizeof f->transfer_syntax, "%s", DX_TS_EXPLICIT_BE);
        else
            return dx_fail(p->err, DX_EFORMAT,
                           "%s: not a DICOM file (no DICM magic and the data does not start with group 0008)", p->name);
    }
    const char *ts = f->transfer_syntax;
    if (strcmp(ts, DX_TS_DEFLATED_LE) == 0) return parse_deflated(p, pos, with_pixels);
    int big = strcmp(ts, DX_TS_EXPLICIT_BE) == 0;
    int explicit_vr = strcmp(ts, DX_TS_IMPLICIT_LE) != 0;
    /* Some writers label explicit data implicit or vice versa: the VR bytes of
     * the first element decide (an implicit length rarely spells two capitals). */
    if (!big && n - pos >= 6) explicit_vr = looks_explicit(d + pos, n - pos);
    return parse_dataset(p, pos, explicit_vr, big, with_pixels);
}

static dx_status parse_dataset(parser *p, size_t pos, int explicit_vr, int big, int with_pixels) {
    dx_dicom_file *f = p->f;
    f->explicit_vr = explicit_vr;
    f->big_endian = big;
    dx_status st = walk_dataset(p, &pos, p->n, explicit_vr, big, 0, 0);
    if (st) return st;

    /* Defaults and derived fields. */
    if (!f->samples_per_pixel) f->samples_per_pixel = 1;
    if (f->number_of_frames <= 0) f->number_of_frames = 1;
    if (f->rescale_slope == 0) f->rescale_slope = 1; /* absent, or only the intercept given */
    if (f->pixel_representation == 1) {
        f->padding_value = (int16_t)(uint16_t)p->padding_raw;
        f->padding_limit = (int16_t)(uint16_t)p->padding_limit_raw;
    } else {
        f->padding_value = (int32_t)p->padding_raw;
        f->padding_limit = (int32_t)p->padding_limit_raw;
    }
    if (with_pixels) {
        if (!f->has_pixel_data) return dx_fail(p->err, DX_ENOTFOUND, "%s: no PixelData (7FE0,0010)", p->name);
        return dx_dicom_decode_pixels_(f, p->d, p->n, p->name, p->err);
    }
    return DX_OK;
}

dx_status dx_dicom_read_memory(dx_dicom_file *f, const uint8_t *data, size_t size, int with_pixels,
                               const char *name, dx_err *err) {
    if (!f) return dx_fail(err, DX_EINVAL, "dx_dicom_read_memory: NULL file");
    memset(f, 0, sizeof *f);
    if (!data && size) return dx_fail(err, DX_EINVAL, "dx_dicom_read_memory: NULL data");
    parser p = {.d = data, .n = size, .file_size = size, .name = name ? name : "<memory>", .err = err, .f = f,
                .stop_at_pixels = !with_pixels};
    dx_status st = parse(&p, with_pixels);
    if (st) dx_dicom_file_free(f);
    return st;
}

/* Reads up to want bytes of path into a fresh buffer; *got = bytes read. */
static dx_status slurp(const char *path, FILE *fp, size_t want, uint8_t **buf, size_t *got, dx_err *err) {
    *buf = malloc(want ? want : 1);
    if (!*buf) return dx_fail(err, DX_ENOMEM, "%s: cannot allocate %zu bytes", path, want);
    size_t n = fread(*buf, 1, want, fp);
    if (n != want && ferror(fp)) {
        free(*buf);
        *buf = NULL;
        return dx_fail(err, DX_EIO, "%s: read failed: %s", path, strerror(errno));
    }
    *got = n;
    return DX_OK;
}

dx_status dx_dicom_read(dx_dicom_file *f, const char *path, int with_pixels, dx_err *err) {
    if (!f || !path) return dx_fail(err, DX_EINVAL, "dx_dicom_read: NULL argument");
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) return dx_fail(err, DX_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(fp);
        return dx_fail(err, DX_EIO, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size > MAX_FILE_BYTES) {
        fclose(fp);
        return dx_fail(err, DX_ENOMEM, "%s: %zu bytes is larger than the %zu-byte limit", path, size, MAX_FILE_BYTES);
    }
    size_t want = (!with_pixels && size > HEADER_PREFIX) ? HEADER_PREFIX : size;
    uint8_t *buf;
    size_t got;
    dx_status st = slurp(path, fp, want, &buf, &got, err);
    if (st) {
        fclose(fp);
        return st;
    }
    parser p = {.d = buf, .n = got, .file_size = size, .prefix = got < size, .name = path, .err = err, .f = f,
                .stop_at_pixels = !with_pixels};
    st = parse(&p, with_pixels);
    if (st && p.need_more) {
        /* The header is longer than our prefix: read the whole file. */
        free(buf);
        dx_dicom_file_free(f);
        rewind(fp);
        st = slurp(path, fp, size, &buf, &got, err);
        if (st) {
            fclose(fp);
            return st;
        }
        memset(f, 0, sizeof *f);
        parser q = {.d = buf, .n = got, .file_size = got, .name = path, .err = err, .f = f,
                    .stop_at_pixels = !with_pixels};
        st = parse(&q, with_pixels);
    }
    free(buf);
    fclose(fp);
    if (st) dx_dicom_file_free(f);
    return st;
}

void dx_dicom_file_free(dx_dicom_file *f) {
    if (!f) return;
    free(f->pixels);
    f->pixels = NULL;
}
