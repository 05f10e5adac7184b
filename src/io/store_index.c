/* store_index.c - the store's index file: encode, validate + decode, CSV view.
 *
 * Layout (little-endian, fixed-size records; docs/data.md):
 *   header 64 B: "DXSTORE\0" | u32 version | u32 header_bytes | u32 n_series |
 *                u32 series_bytes | u32 n_rows | u32 row_bytes | u64 payload_bytes |
 *                u32 crc32(payload) | u32 crc32(header[0..44)) | 16 B zero
 *   n_series x 400 B series records, then n_rows x 168 B nodule rows.
 * Every field is checked on decode: the index is the one file a reader
 * trusts to size its mmaps. */
#include "io/store.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

/* ---- byte helpers (explicit little-endian, independent of the host) ---- */
static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_f64(uint8_t *p, double d) {
    uint64_t v;
    memcpy(&v, &d, 8);
    put_u64(p, v);
}
static uint32_t get_u32(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static int32_t get_i32(const uint8_t *p) { return (int32_t)get_u32(p); }
static double get_f64(const uint8_t *p) {
    uint64_t v = get_u64(p);
    double d;
    memcpy(&d, &v, 8);
    return d;
}

/* Series record offsets. */
enum {
    SR_PATIENT = 0, SR_STUDY = 65, SR_SERIES = 130, SR_STEM = 195, /* strings end at 219 */
    SR_INTS = 224,   /* nx ny nz has_mask n_nodules first_row n_rows flags: 8 x i32 */
    SR_F64 = 256,    /* spacing[3] origin[3] direction[9] wc ww: 17 x f64 -> 392 */
};
/* Row record offsets. */
enum {
    RR_INTS = 0,     /* series kind label n_readers: 4 x i32 */
    RR_NVOX = 16,    /* i64 */
    RR_F64 = 24,     /* malignancy chars[9] cvox[3] cmm[3] diameter volume: 18 x f64 -> 168 */
};

void dx_store_stem(const char *series_uid, char stem[DX_STORE_STEM_MAX]) {
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)series_uid; *p; p++) h = (h ^ *p) * 1099511628211ull;
    snprintf(stem, DX_STORE_STEM_MAX, "%016llx", (unsigned long long)h);
}

void dx_store_index_free(dx_store_index *idx) {
    if (!idx) return;
    free(idx->series);
    free(idx->rows);
    memset(idx, 0, sizeof *idx);
}

dx_status dx_store_index_encode(const dx_store_index *idx, void **buf, size_t *len, dx_err *err) {
    size_t payload = (size_t)idx->n_series * DX_STORE_SERIES_BYTES + (size_t)idx->n_rows * DX_STORE_ROW_BYTES;
    size_t total = DX_STORE_HEADER_BYTES + payload;
    uint8_t *b = calloc(1, total);
    if (!b) return dx_fail(err, DX_ENOMEM, "index of %zu bytes", total);
    uint8_t *p = b + DX_STORE_HEADER_BYTES;
    for (int s = 0; s < idx->n_series; s++, p += DX_STORE_SERIES_BYTES) {
        const dx_store_series *r = &idx->series[s];
        /* fixed, zero-padded string fields (the buffer is calloc'd) */
        memcpy(p + SR_PATIENT, r->patient_id, strnlen(r->patient_id, DX_UID_MAX - 1));
        memcpy(p + SR_STUDY, r->study_uid, strnlen(r->study_uid, DX_UID_MAX - 1));
        memcpy(p + SR_SERIES, r->series_uid, strnlen(r->series_uid, DX_UID_MAX - 1));
        memcpy(p + SR_STEM, r->stem, strnlen(r->stem, DX_STORE_STEM_MAX - 1));
        int32_t ints[8] = {r->nx, r->ny, r->nz, r->has_mask, r->n_nodules, r->first_row, r->n_rows, r->flags};
        for (int i = 0; i < 8; i++) put_u32(p + SR_INTS + 4 * i, (uint32_t)ints[i]);
        double f[17];
        memcpy(f, r->spacing, 3 * sizeof(double));
        memcpy(f + 3, r->origin, 3 * sizeof(double));
        memcpy(f + 6, r->direction, 9 * sizeof(double));
        f[15] = r->window_center;
        f[16] = r->window_width;
        for (int i = 0; i < 17; i++) put_f64(p + SR_F64 + 8 * i, f[i]);
    }
    for (int i = 0; i < idx->n_rows; i++, p += DX_STORE_ROW_BYTES) {
        const dx_store_row *r = &idx->rows[i];
        const dx_nodule_info *n = &r->info;
        int32_t ints[4] = {r->series, n->kind, n->label, n->n_readers};
        for (int k = 0; k < 4; k++) put_u32(p + RR_INTS + 4 * k, (uint32_t)ints[k]);
        put_u64(p + RR_NVOX, (uint64_t)n->n_voxels);
        double f[18];
        f[0] = n->malignancy;
        memcpy(f + 1, n->chars, 9 * sizeof(double));
        memcpy(f + 10, n->centroid_vox, 3 * sizeof(double));
        memcpy(f + 13, n->centroid_mm, 3 * sizeof(double));
        f[16] = n->diameter_mm;
        f[17] = n->volume_mm3;
        for (int k = 0; k < 18; k++) put_f64(p + RR_F64 + 8 * k, f[k]);
    }
    memcpy(b, DX_STORE_MAGIC, 8); /* includes the NUL */
    put_u32(b + 8, DX_STORE_VERSION);
    put_u32(b + 12, DX_STORE_HEADER_BYTES);
    put_u32(b + 16, (uint32_t)idx->n_series);
    put_u32(b + 20, DX_STORE_SERIES_BYTES);
    put_u32(b + 24, (uint32_t)idx->n_rows);
    put_u32(b + 28, DX_STORE_ROW_BYTES);
    put_u64(b + 32, (uint64_t)payload);
    put_u32(b + 40, (uint32_t)crc32(0L, b + DX_STORE_HEADER_BYTES, (uInt)payload));
    put_u32(b + 44, (uint32_t)crc32(0L, b, 44));
    *buf = b;
    *len = total;
    return DX_OK;
}

/* A string field: NUL-terminated and zero after the terminator (what the
 * encoder writes; anything else is damage). */
static int str_ok(const uint8_t *p, size_t n) {
    const uint8_t *z = memchr(p, 0, n);
    if (!z) return 0;
    for (; z < p + n; z++)
        if (*z) return 0;
    return 1;
}

static int zeros(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

static int stem_ok(const char *s) {
    if (strlen(s) != 16) return 0;
    for (int i = 0; i < 16; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

dx_status dx_store_index_decode(dx_store_index *out, const void *buf, size_t len, dx_err *err) {
    memset(out, 0, sizeof *out);
    const uint8_t *b = buf;
    if (len < DX_STORE_HEADER_BYTES)
        return dx_fail(err, DX_EFORMAT, "store index truncated: %zu bytes, header needs %d", len,
                       DX_STORE_HEADER_BYTES);
    if (memcmp(b, DX_STORE_MAGIC, 8)) return dx_fail(err, DX_EFORMAT, "not a dinox store index (bad magic)");
    if (get_u32(b + 44) != (uint32_t)crc32(0L, b, 44))
        return dx_fail(err, DX_EFORMAT, "store index header is corrupt (CRC mismatch)");
    for (int i = 48; i < DX_STORE_HEADER_BYTES; i++)
        if (b[i]) return dx_fail(err, DX_EFORMAT, "store index header: reserved bytes are not zero");
    uint32_t ver = get_u32(b + 8);
    if (ver != DX_STORE_VERSION)
        return dx_fail(err, DX_EUNSUPPORTED, "store index version %u, this build reads %d", ver, DX_STORE_VERSION);
    uint32_t ns = get_u32(b + 16), nr = get_u32(b + 24);
    if (get_u32(b + 12) != DX_STORE_HEADER_BYTES || get_u32(b + 20) != DX_STORE_SERIES_BYTES ||
        get_u32(b + 28) != DX_STORE_ROW_BYTES)
        return dx_fail(err, DX_EFORMAT, "store index record sizes do not match version %u", ver);
    if (ns > (1u << 24) || nr > (1u << 26))
        return dx_fail(err, DX_EFORMAT, "store index claims %u series / %u rows", ns, nr);
    uint64_t payload = (uint64_t)ns * DX_STORE_SERIES_BYTES + (uint64_t)nr * DX_STORE_ROW_BYTES;
    if (get_u64(b + 32) != payload)
        return dx_fail(err, DX_EFORMAT, "store index payload size field is inconsistent");
    if (len != DX_STORE_HEADER_BYTES + payload)
        return dx_fail(err, DX_EFORMAT, "store index %s: %zu bytes, expected %llu",
                       len < DX_STORE_HEADER_BYTES + payload ? "truncated" : "has trailing bytes", len,
                       (unsigned long long)(DX_STORE_HEADER_BYTES + payload));
    if (get_u32(b + 40) != (uint32_t)crc32(0L, b + DX_STORE_HEADER_BYTES, (uInt)payload))
        return dx_fail(err, DX_EFORMAT, "store index is corrupt (payload CRC mismatch)");
    out->series = calloc((size_t)ns + 1, sizeof *out->series);
    out->rows = calloc((size_t)nr + 1, sizeof *out->rows);
    if (!out->series || !out->rows) {
        dx_store_index_free(out);
        return dx_fail(err, DX_ENOMEM, "store index");
    }
    const uint8_t *p = b + DX_STORE_HEADER_BYTES;
    dx_status st = DX_OK;
    for (uint32_t s = 0; s < ns; s++, p += DX_STORE_SERIES_BYTES) {
        dx_store_series *r = &out->series[s];
        if (!str_ok(p + SR_PATIENT, DX_UID_MAX) || !str_ok(p + SR_STUDY, DX_UID_MAX) ||
            !str_ok(p + SR_SERIES, DX_UID_MAX) || !str_ok(p + SR_STEM, DX_STORE_STEM_MAX)) {
            st = dx_fail(err, DX_EFORMAT, "series record %u: unterminated or unpadded string", s);
            break;
        }
        if (!zeros(p + SR_STEM + DX_STORE_STEM_MAX, SR_INTS - SR_STEM - DX_STORE_STEM_MAX) ||
            (r->flags & ~7) || !zeros(p + SR_F64 + 17 * 8, DX_STORE_SERIES_BYTES - SR_F64 - 17 * 8)) {
            st = dx_fail(err, DX_EFORMAT, "series record %u: reserved bytes are not zero", s);
            break;
        }
        memcpy(r->patient_id, p + SR_PATIENT, DX_UID_MAX);
        memcpy(r->study_uid, p + SR_STUDY, DX_UID_MAX);
        memcpy(r->series_uid, p + SR_SERIES, DX_UID_MAX);
        memcpy(r->stem, p + SR_STEM, DX_STORE_STEM_MAX);
        int32_t v[8];
        for (int i = 0; i < 8; i++) v[i] = get_i32(p + SR_INTS + 4 * i);
        r->nx = v[0], r->ny = v[1], r->nz = v[2], r->has_mask = v[3], r->n_nodules = v[4];
        r->first_row = v[5], r->n_rows = v[6], r->flags = v[7];
        double f[17];
        for (int i = 0; i < 17; i++) f[i] = get_f64(p + SR_F64 + 8 * i);
        memcpy(r->spacing, f, 3 * sizeof(double));
        memcpy(r->origin, f + 3, 3 * sizeof(double));
        memcpy(r->direction, f + 6, 9 * sizeof(double));
        r->window_center = f[15];
        r->window_width = f[16];
        int finite = 1;
        for (int i = 0; i < 17; i++) finite &= isfinite(f[i]) != 0;
        if (!r->series_uid[0] || !stem_ok(r->stem)) {
            st = dx_fail(err, DX_EFORMAT, "series record %u: empty UID or bad file stem", s);
            break;
        }
        if (r->nx < 1 || r->ny < 1 || r->nz < 1 || r->nx > DX_STORE_MAX_DIM || r->ny > DX_STORE_MAX_DIM ||
            r->nz > DX_STORE_MAX_DIM || (r->has_mask != 0 && r->has_mask != 1)) {
            st = dx_fail(err, DX_EFORMAT, "series %s: bad dimensions %d x %d x %d", r->series_uid, r->nx, r->ny,
                         r->nz);
            break;
        }
        if (!finite || !(r->spacing[0] > 0 && r->spacing[1] > 0 && r->spacing[2] > 0)) {
            st = dx_fail(err, DX_EFORMAT, "series %s: non-finite geometry or spacing <= 0", r->series_uid);
            break;
        }
        if (r->first_row < 0 || r->n_rows < 0 || (int64_t)r->first_row + r->n_rows > (int64_t)nr ||
            r->n_nodules < 0 || r->n_nodules > r->n_rows) {
            st = dx_fail(err, DX_EFORMAT, "series %s: nodule rows [%d, +%d) out of the table (%u rows)",
                         r->series_uid, r->first_row, r->n_rows, nr);
            break;
        }
        for (uint32_t t = 0; t < s && !st; t++)
            if (!strcmp(out->series[t].series_uid, r->series_uid) || !strcmp(out->series[t].stem, r->stem))
                st = dx_fail(err, DX_EFORMAT, "series %s listed twice", r->series_uid);
        if (st) break;
    }
    for (uint32_t i = 0; i < nr && !st; i++, p += DX_STORE_ROW_BYTES) {
        dx_store_row *r = &out->rows[i];
        dx_nodule_info *n = &r->info;
        r->series = get_i32(p + RR_INTS);
        n->kind = get_i32(p + RR_INTS + 4);
        n->label = get_i32(p + RR_INTS + 8);
        n->n_readers = get_i32(p + RR_INTS + 12);
        n->n_voxels = (int64_t)get_u64(p + RR_NVOX);
        double f[18];
        int finite = 1;
        for (int k = 0; k < 18; k++) f[k] = get_f64(p + RR_F64 + 8 * k), finite &= isfinite(f[k]) != 0;
        n->malignancy = f[0];
        memcpy(n->chars, f + 1, 9 * sizeof(double));
        memcpy(n->centroid_vox, f + 10, 3 * sizeof(double));
        memcpy(n->centroid_mm, f + 13, 3 * sizeof(double));
        n->diameter_mm = f[16];
        n->volume_mm3 = f[17];
        if (r->series < 0 || (uint32_t)r->series >= ns || n->kind < 0 || n->kind > 2 || n->label < 0 ||
            n->label > 255 || n->n_readers < 0 || n->n_voxels < 0 || !finite) {
            st = dx_fail(err, DX_EFORMAT, "nodule row %u is invalid", i);
            break;
        }
        const dx_store_series *sr = &out->series[r->series];
        if ((int)i < sr->first_row || (int)i >= sr->first_row + sr->n_rows)
            st = dx_fail(err, DX_EFORMAT, "nodule row %u is outside its series' range", i);
    }
    if (st) {
        dx_store_index_free(out);
        return st;
    }
    out->n_series = (int)ns;
    out->n_rows = (int)nr;
    return DX_OK;
}

dx_status dx_store_index_read(dx_store_index *out, const char *dir, dx_err *err) {
    memset(out, 0, sizeof *out);
    char path[4096];
    snprintf(path, sizeof path, "%s/index.dxs", dir);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return dx_fail(err, DX_ENOTFOUND, "%s: no store index (not a store?)", path);
        return dx_fail(err, DX_EIO, "open %s: %s", path, strerror(errno));
    }
    if (fseek(f, 0, SEEK_END)) {
        fclose(f);
        return dx_fail(err, DX_EIO, "seek %s", path);
    }
    long n = ftell(f);
    rewind(f);
    if (n < 0 || n > (1L << 34)) {
        fclose(f);
        return dx_fail(err, DX_EFORMAT, "%s: implausible size", path);
    }
    uint8_t *buf = malloc((size_t)n + 1);
    if (!buf) {
        fclose(f);
        return dx_fail(err, DX_ENOMEM, "%s", path);
    }
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    if (got != (size_t)n) {
        free(buf);
        return dx_fail(err, DX_EIO, "read %s", path);
    }
    dx_status st = dx_store_index_decode(out, buf, (size_t)n, err);
    free(buf);
    if (st) return dx_fail_prefix(err, "%s", path);
    return DX_OK;
}

static const char *kind_name(int k) {
    return k == DX_NOD_NODULE ? "nodule" : k == DX_NOD_SMALL ? "small" : "nonnodule";
}

dx_status dx_store_write_csv(const dx_store_index *idx, FILE *f, dx_err *err) {
    fprintf(f, "patient_id,series_uid,kind,label,n_readers,malignancy");
    for (int c = 0; c < DX_LIDC_NCHARS; c++)
        if (c != DX_LIDC_MALIGNANCY) fprintf(f, ",%s", dx_lidc_char_names[c]);
    fprintf(f, ",x,y,z,x_mm,y_mm,z_mm,diameter_mm,n_voxels,volume_mm3\n");
    for (int i = 0; i < idx->n_rows; i++) {
        const dx_store_row *r = &idx->rows[i];
        const dx_nodule_info *n = &r->info;
        const dx_store_series *s = &idx->series[r->series];
        fprintf(f, "%s,%s,%s,%d,%d,%g", s->patient_id, s->series_uid, kind_name(n->kind), n->label, n->n_readers,
                n->malignancy);
        for (int c = 0; c < DX_LIDC_NCHARS; c++)
            if (c != DX_LIDC_MALIGNANCY) fprintf(f, ",%g", n->chars[c]);
        fprintf(f, ",%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%lld,%.3f\n", n->centroid_vox[0], n->centroid_vox[1],
                n->centroid_vox[2], n->centroid_mm[0], n->centroid_mm[1], n->centroid_mm[2], n->diameter_mm,
                (long long)n->n_voxels, n->volume_mm3);
    }
    if (ferror(f)) return dx_fail(err, DX_EIO, "writing nodule CSV");
    return DX_OK;
}
