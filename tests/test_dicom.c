/* test_dicom.c - DICOM reader, series assembly and NIfTI input.
 *
 * Without arguments (CTest): self-contained checks - hand-built datasets in
 * every syntax, malformed inputs (truncation, lengths past the end, deep
 * nesting, garbage), HU conversion, and the real CT samples shipped with
 * Debian's python3-pydicom (scripts/setup.sh installs it; missing is a failure).
 * With arguments it is the dinox side of tests/test_dicom_peers.sh, which
 * compares what we read with pydicom / gdcm / dcmtk:
 *   test_dicom --dump FILE OUT      -> OUT.json (header), OUT.i32 (stored), OUT.i16 (HU)
 *   test_dicom --series DIR OUT     -> OUT.json (scan + volumes), OUT.<k>.i16 (HU of series k)
 *   test_dicom --nifti FILE OUT     -> OUT.json (geometry), OUT.i16 (HU)             */
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "dx_test.h"
#include "io/dx_dicom.h"

/* ---- tool modes (driven by tests/test_dicom_peers.sh) ------------------- */

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20 || c >= 0x7F) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void json_dvec(FILE *f, const double *v, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++) fprintf(f, "%s%.17g", i ? ", " : "", v[i]);
    fputc(']', f);
}

static int write_bin(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) != 0 || w != n;
}

static int tool_dump(const char *in, const char *out) {
    char path[4096];
    snprintf(path, sizeof path, "%s.json", out);
    FILE *j = fopen(path, "w");
    if (!j) return 2;
    dx_dicom_file f;
    dx_err err = {0};
    dx_status st = dx_dicom_read(&f, in, 1, &err);
    fprintf(j, "{\"status\": ");
    json_str(j, dx_status_name(st));
    fprintf(j, ", \"error\": ");
    json_str(j, st ? err.msg : "");
    if (!st) {
        fprintf(j, ", \"transfer_syntax\": ");
        json_str(j, f.transfer_syntax);
        fprintf(j, ", \"sop_class_uid\": ");
        json_str(j, f.sop_class_uid);
        fprintf(j, ", \"sop_instance_uid\": ");
        json_str(j, f.sop_instance_uid);
        fprintf(j, ", \"series_uid\": ");
        json_str(j, f.series_uid);
        fprintf(j, ", \"study_uid\": ");
        json_str(j, f.study_uid);
        fprintf(j, ", \"patient_id\": ");
        json_str(j, f.patient_id);
        fprintf(j, ", \"modality\": ");
        json_str(j, f.modality);
        fprintf(j, ", \"image_type\": ");
        json_str(j, f.image_type);
        fprintf(j, ", \"has_ipp\": %d, \"ipp\": ", f.has_ipp);
        json_dvec(j, f.ipp, 3);
        fprintf(j, ", \"has_iop\": %d, \"iop\": ", f.has_iop);
        json_dvec(j, f.iop, 6);
        fprintf(j, ", \"has_pixel_spacing\": %d, \"pixel_spacing\": ", f.has_pixel_spacing);
        json_dvec(j, f.pixel_spacing, 2);
        fprintf(j,
                ", \"slice_thickness\": %.17g, \"instance_number\": %d, \"rows\": %d, \"cols\": %d, "
                "\"frames\": %d, \"samples_per_pixel\": %d, \"bits_allocated\": %d, \"bits_stored\": %d, "
                "\"high_bit\": %d, \"pixel_representation\": %d, \"rescale_slope\": %.17g, "
                "\"rescale_intercept\": %.17g, \"has_padding\": %d, \"padding_value\": %d, "
                "\"window_center\": %.17g, \"window_width\": %.17g, \"explicit_vr\": %d, \"big_endian\": %d, "
                "\"encapsulated\": %d",
                f.slice_thickness, f.instance_number, f.rows, f.cols, f.number_of_frames, f.samples_per_pixel,
                f.bits_allocated, f.bits_stored, f.high_bit, f.pixel_representation, f.rescale_slope,
                f.rescale_intercept, f.has_padding, f.padding_value, f.window_center, f.window_width, f.explicit_vr,
                f.big_endian, f.encapsulated);
        size_t npx = (size_t)f.rows * f.cols * f.number_of_frames;
        snprintf(path, sizeof path, "%s.i32", out);
        int bad = write_bin(path, f.pixels, npx * sizeof(int32_t));
        int16_t *hu = malloc(npx * sizeof *hu + 1);
        for (int fr = 0; hu && fr < f.number_of_frames; fr++)
            if (dx_dicom_to_hu(&f, fr, hu + (size_t)fr * f.rows * f.cols, &err)) bad = 1;
        snprintf(path, sizeof path, "%s.i16", out);
        if (!hu || bad || write_bin(path, hu, npx * sizeof *hu)) fprintf(stderr, "dump: writing %s failed\n", out);
        free(hu);
        dx_dicom_file_free(&f);
    }
    fprintf(j, "}\n");
    fclose(j);
    return 0;
}

static void json_volume(FILE *j, const dx_volume *v) {
    fprintf(j, "\"nx\": %d, \"ny\": %d, \"nz\": %d, \"spacing\": ", v->nx, v->ny, v->nz);
    json_dvec(j, v->spacing, 3);
    fprintf(j, ", \"origin\": ");
    json_dvec(j, v->origin, 3);
    fprintf(j, ", \"direction\": ");
    json_dvec(j, v->direction, 9);
    if (v->slice_z) {
        fprintf(j, ", \"slice_z\": ");
        json_dvec(j, v->slice_z, v->nz);
    }
    if (v->sop_uids) {
        fprintf(j, ", \"sop_uids\": [");
        for (int k = 0; k < v->nz; k++) {
            if (k) fprintf(j, ", ");
            json_str(j, v->sop_uids[k]);
        }
        fprintf(j, "]");
    }
    fprintf(j, ", \"window_center\": %.17g, \"window_width\": %.17g", v->window_center, v->window_width);
}

static int tool_series(const char *dir, const char *out) {
    char path[4096];
    snprintf(path, sizeof path, "%s.json", out);
    FILE *j = fopen(path, "w");
    if (!j) return 2;
    dx_series_list l;
    dx_err err = {0};
    dx_status st = dx_dicom_scan(dir, &l, &err);
    fprintf(j, "{\"status\": ");
    json_str(j, dx_status_name(st));
    fprintf(j, ", \"error\": ");
    json_str(j, st ? err.msg : "");
    if (!st) {
        fprintf(j, ", \"skipped\": [");
        for (int i = 0; i < l.n_skipped; i++) {
            fprintf(j, "%s{\"path\": ", i ? ", " : "");
            json_str(j, l.skipped[i].path);
            fprintf(j, ", \"reason\": ");
            json_str(j, l.skipped[i].reason);
            fprintf(j, ", \"detail\": ");
            json_str(j, l.skipped[i].detail);
            fprintf(j, "}");
        }
        fprintf(j, "], \"series\": [");
        for (int i = 0; i < l.n_series; i++) {
            const dx_series *s = &l.series[i];
            dx_volume v;
            dx_series_report r;
            dx_err e = {0};
            dx_status ls = dx_series_load(s, &v, &r, &e);
            fprintf(j, "%s{\"series_uid\": ", i ? ", " : "");
            json_str(j, s->series_uid);
            fprintf(j, ", \"study_uid\": ");
            json_str(j, s->study_uid);
            fprintf(j, ", \"patient_id\": ");
            json_str(j, s->patient_id);
            fprintf(j, ", \"n_files\": %d, \"status\": ", s->n_slices);
            json_str(j, dx_status_name(ls));
            fprintf(j, ", \"error\": ");
            json_str(j, ls ? e.msg : "");
            fprintf(j,
                    ", \"report\": {\"n_files\": %d, \"n_slices\": %d, \"n_duplicates\": %d, \"n_gaps\": %d, "
                    "\"nonuniform\": %d, \"spacing_median\": %.17g, \"spacing_min\": %.17g, \"spacing_max\": %.17g, "
                    "\"descending\": %d, \"inplane_shift_max\": %.17g}",
                    r.n_files, r.n_slices, r.n_duplicates, r.n_gaps, r.nonuniform, r.spacing_median, r.spacing_min,
                    r.spacing_max, r.descending, r.inplane_shift_max);
            if (!ls) {
                fprintf(j, ", ");
                json_volume(j, &v);
                snprintf(path, sizeof path, "%s.%d.i16", out, i);
                if (write_bin(path, v.hu, (size_t)v.nx * v.ny * v.nz * sizeof *v.hu))
                    fprintf(stderr, "series: writing %s failed\n", path);
                dx_volume_free(&v);
            }
            fprintf(j, "}");
        }
        fprintf(j, "]");
        dx_series_list_free(&l);
    }
    fprintf(j, "}\n");
    fclose(j);
    return 0;
}

static int tool_nifti(const char *in, const char *out) {
    char path[4096];
    snprintf(path, sizeof path, "%s.json", out);
    FILE *j = fopen(path, "w");
    if (!j) return 2;
    dx_volume v;
    dx_err err = {0};
    dx_status st = dx_nifti_load(in, &v, &err);
    fprintf(j, "{\"status\": ");
    json_str(j, dx_status_name(st));
    fprintf(j, ", \"error\": ");
    json_str(j, st ? err.msg : "");
    if (!st) {
        fprintf(j, ", ");
        json_volume(j, &v);
        snprintf(path, sizeof path, "%s.i16", out);
        if (write_bin(path, v.hu, (size_t)v.nx * v.ny * v.nz * sizeof *v.hu))
            fprintf(stderr, "nifti: writing %s failed\n", path);
        dx_volume_free(&v);
    }
    fprintf(j, "}\n");
    fclose(j);
    return 0;
}

/* ---- unit tests: a tiny DICOM writer for hand-built inputs ----------------- */

typedef struct wbuf {
    uint8_t *b;
    size_t n, cap;
    int big, expl;
} wbuf;

static void put(wbuf *w, const void *p, size_t n) {
    if (w->n + n > w->cap) {
        w->cap = (w->n + n) * 2 + 64;
        w->b = realloc(w->b, w->cap);
    }
    memcpy(w->b + w->n, p, n);
    w->n += n;
}
static void put16(wbuf *w, uint16_t v) {
    uint8_t b[2] = {w->big ? v >> 8 : v & 255, w->big ? v & 255 : v >> 8};
    put(w, b, 2);
}
static void put32(wbuf *w, uint32_t v) {
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(w->big ? v >> (24 - 8 * i) : v >> (8 * i));
    put(w, b, 4);
}
static int long_vr(const char *vr) {
    return !strcmp(vr, "OB") || !strcmp(vr, "OW") || !strcmp(vr, "SQ") || !strcmp(vr, "UN") || !strcmp(vr, "UT");
}
/* Element header; len may be 0xFFFFFFFF (undefined). */
static void hdr(wbuf *w, uint16_t g, uint16_t e, const char *vr, uint32_t len) {
    put16(w, g);
    put16(w, e);
    if (w->expl && g != 0xFFFE) {
        put(w, vr, 2);
        if (long_vr(vr)) {
            put16(w, 0);
            put32(w, len);
        } else {
            put16(w, (uint16_t)len);
        }
    } else {
        put32(w, len);
    }
}
static void el(wbuf *w, uint16_t g, uint16_t e, const char *vr, const void *v, uint32_t len) {
    hdr(w, g, e, vr, len);
    put(w, v, len);
}
/* Strings padded to even length (NUL for UI, space otherwise) unless odd_ok. */
static void el_str(wbuf *w, uint16_t g, uint16_t e, const char *vr, const char *s) {
    size_t n = strlen(s);
    char buf[256];
    memcpy(buf, s, n);
    if (n % 2) buf[n++] = strcmp(vr, "UI") ? ' ' : 0;
    el(w, g, e, vr, buf, (uint32_t)n);
}
static void el_us(wbuf *w, uint16_t g, uint16_t e, const char *vr, uint16_t v) {
    hdr(w, g, e, vr, 2);
    put16(w, v);
}
static void meta(wbuf *w, const char *ts) {
    uint8_t pre[128] = {0};
    put(w, pre, 128);
    put(w, "DICM", 4);
    int big = w->big, ex = w->expl;
    w->big = 0, w->expl = 1;
    el_str(w, 0x0002, 0x0002, "UI", "1.2.840.10008.5.1.4.1.1.2");
    el_str(w, 0x0002, 0x0003, "UI", "1.2.3.4.5");
    el_str(w, 0x0002, 0x0010, "UI", ts);
    w->big = big, w->expl = ex;
}

/* Stored values of the 3x4 test image (signed 16): padding, body, both clamp ends. */
static const int16_t k_img[12] = {-2000, -2000, 0, 1024, 1000, 1100, 5000, -3000, 2047, -1, 4095, 24};
/* HU with slope 1, intercept -1024, padding -2000: hand-computed. */
static const int16_t k_hu[12] = {-1024, -1024, -1024, 0, -24, 76, 3071, -1024, 1023, -1024, 3071, -1000};

/* A CT slice: rows 3, cols 4; optional extras inserted before the image module. */
static void ct_dataset(wbuf *w, int with_seq, double z, int inst, const char *sop, const char *series) {
    el_str(w, 0x0008, 0x0008, "CS", "ORIGINAL\\PRIMARY\\AXIAL");
    el_str(w, 0x0008, 0x0016, "UI", "1.2.840.10008.5.1.4.1.1.2");
    el_str(w, 0x0008, 0x0018, "UI", sop);
    el_str(w, 0x0008, 0x0060, "CS", "CT");
    if (with_seq) {
        /* Undefined-length SQ, undefined-length item holding a nested SQ and a
         * decoy Rows; a zero-length item; then a defined-length SQ. */
        hdr(w, 0x0008, 0x1140, "SQ", 0xFFFFFFFF);
        hdr(w, 0xFFFE, 0xE000, "", 0xFFFFFFFF);
        el_us(w, 0x0028, 0x0010, "US", 999);
        hdr(w, 0x0008, 0x1155, "SQ", 0xFFFFFFFF);
        hdr(w, 0xFFFE, 0xE000, "", 0xFFFFFFFF);
        el_str(w, 0x0020, 0x000E, "UI", "9.9.9");
        hdr(w, 0xFFFE, 0xE00D, "", 0);
        hdr(w, 0xFFFE, 0xE000, "", 0);
        hdr(w, 0xFFFE, 0xE0DD, "", 0);
        hdr(w, 0xFFFE, 0xE00D, "", 0);
        hdr(w, 0xFFFE, 0xE000, "", 0);
        hdr(w, 0xFFFE, 0xE0DD, "", 0);
        wbuf item = {0};
        item.big = w->big, item.expl = w->expl;
        el_str(&item, 0x0010, 0x0020, "LO", "DECOY");
        hdr(w, 0x0008, 0x1115, "SQ", (uint32_t)item.n + 8);
        hdr(w, 0xFFFE, 0xE000, "", (uint32_t)item.n);
        put(w, item.b, item.n);
        free(item.b);
        /* An odd-length private value is tolerated. */
        el(w, 0x0009, 0x1001, "LO", "ABC", 3);
    }
    el_str(w, 0x0010, 0x0020, "LO", "LIDC-IDRI-0001");
    el_str(w, 0x0018, 0x0050, "DS", "2.5");
    el_str(w, 0x0020, 0x000D, "UI", "1.2.3");
    el_str(w, 0x0020, 0x000E, "UI", series);
    char buf[64];
    snprintf(buf, sizeof buf, "%d", inst);
    el_str(w, 0x0020, 0x0013, "IS", buf);
    snprintf(buf, sizeof buf, "-100.5\\-120.25\\%g", z);
    el_str(w, 0x0020, 0x0032, "DS", buf);
    el_str(w, 0x0020, 0x0037, "DS", "1\\0\\0\\0\\1\\0");
    el_us(w, 0x0028, 0x0002, "US", 1);
    el_str(w, 0x0028, 0x0004, "CS", "MONOCHROME2");
    el_us(w, 0x0028, 0x0010, "US", 3);
    el_us(w, 0x0028, 0x0011, "US", 4);
    el_str(w, 0x0028, 0x0030, "DS", "0.7\\0.8");
    el_us(w, 0x0028, 0x0100, "US", 16);
    el_us(w, 0x0028, 0x0101, "US", 16);
    el_us(w, 0x0028, 0x0102, "US", 15);
    el_us(w, 0x0028, 0x0103, "US", 1);
    el_us(w, 0x0028, 0x0120, "SS", (uint16_t)-2000);
    el_str(w, 0x0028, 0x1050, "DS", "-600\\40");
    el_str(w, 0x0028, 0x1051, "DS", "1500\\400");
    el_str(w, 0x0028, 0x1052, "DS", "-1024");
    el_str(w, 0x0028, 0x1053, "DS", "1");
    hdr(w, 0x7FE0, 0x0010, "OW", 24);
    for (int i = 0; i < 12; i++) put16(w, (uint16_t)k_img[i]);
}

static void build_ct(wbuf *w, const char *ts, int big, int expl, int with_meta, int with_seq) {
    memset(w, 0, sizeof *w);
    if (with_meta) meta(w, ts);
    w->big = big, w->expl = expl;
    ct_dataset(w, with_seq, -42.5, 7, "1.2.3.4.5", "1.2.3.9");
}

static void check_ct_fields(const dx_dicom_file *f, const char *what) {
    CHECK(f->rows == 3 && f->cols == 4, "%s: rows/cols %d %d", what, f->rows, f->cols);
    CHECK(!strcmp(f->modality, "CT") && !strcmp(f->patient_id, "LIDC-IDRI-0001"), "%s: modality/patient '%s' '%s'",
          what, f->modality, f->patient_id);
    CHECK(!strcmp(f->series_uid, "1.2.3.9") && !strcmp(f->sop_instance_uid, "1.2.3.4.5"), "%s: uids '%s' '%s'", what,
          f->series_uid, f->sop_instance_uid);
    CHECK(!strcmp(f->image_type, "ORIGINAL\\PRIMARY\\AXIAL"), "%s: image type '%s'", what, f->image_type);
    CHECK(f->has_ipp && f->ipp[0] == -100.5 && f->ipp[1] == -120.25 && f->ipp[2] == -42.5, "%s: ipp", what);
    CHECK(f->has_iop && f->iop[0] == 1 && f->iop[4] == 1 && f->iop[2] == 0, "%s: iop", what);
    CHECK(f->pixel_spacing[0] == 0.7 && f->pixel_spacing[1] == 0.8, "%s: spacing", what);
    CHECK(f->instance_number == 7 && f->slice_thickness == 2.5, "%s: instance/thickness", what);
    CHECK(f->bits_allocated == 16 && f->bits_stored == 16 && f->high_bit == 15 && f->pixel_representation == 1,
          "%s: bits", what);
    CHECK(f->has_padding && f->padding_value == -2000, "%s: padding %d", what, f->padding_value);
    CHECK(f->rescale_intercept == -1024 && f->rescale_slope == 1, "%s: rescale", what);
    CHECK(f->window_center == -600 && f->window_width == 1500, "%s: window (first values)", what);
}

static void test_syntaxes(void) {
    struct {
        const char *ts;
        int big, expl, meta, seq;
        const char *what;
    } cases[] = {
        {"1.2.840.10008.1.2.1", 0, 1, 1, 0, "explicit LE"},
        {"1.2.840.10008.1.2", 0, 0, 1, 0, "implicit LE"},
        {"1.2.840.10008.1.2.2", 1, 1, 1, 0, "explicit BE"},
        {"1.2.840.10008.1.2.1", 0, 1, 1, 1, "explicit LE + sequences"},
        {"1.2.840.10008.1.2", 0, 0, 1, 1, "implicit LE + sequences"},
        {"1.2.840.10008.1.2.2", 1, 1, 1, 1, "explicit BE + sequences"},
        {"", 0, 1, 0, 1, "no meta, explicit LE"},
        {"", 0, 0, 0, 1, "no meta, implicit LE"},
        {"", 1, 1, 0, 0, "no meta, explicit BE"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        wbuf w;
        build_ct(&w, cases[c].ts, cases[c].big, cases[c].expl, cases[c].meta, cases[c].seq);
        dx_dicom_file f;
        dx_err err = {0};
        dx_status st = dx_dicom_read_memory(&f, w.b, w.n, 1, cases[c].what, &err);
        CHECK(st == DX_OK, "%s: %s", cases[c].what, err.msg);
        if (!st) {
            check_ct_fields(&f, cases[c].what);
            CHECK(f.explicit_vr == cases[c].expl && f.big_endian == cases[c].big, "%s: encoding", cases[c].what);
            int16_t hu[12];
            CHECK(dx_dicom_to_hu(&f, 0, hu, &err) == DX_OK, "%s", err.msg);
            int same_stored = 1, same_hu = 1;
            for (int i = 0; i < 12; i++) {
                same_stored &= f.pixels[i] == k_img[i];
                same_hu &= hu[i] == k_hu[i];
            }
            CHECK(same_stored, "%s: stored pixels", cases[c].what);
            CHECK(same_hu, "%s: HU (padding, clamp)", cases[c].what);
            dx_dicom_file_free(&f);
        }
        /* Header-only reading stops at PixelData and gives the same header. */
        st = dx_dicom_read_memory(&f, w.b, w.n, 0, cases[c].what, &err);
        CHECK(st == DX_OK && !f.pixels && f.has_pixel_data && f.pixel_length == 24, "%s header-only: %s",
              cases[c].what, err.msg);
        if (!st) check_ct_fields(&f, cases[c].what);
        /* Every truncation of the file fails cleanly (PixelData is last). */
        int bad = 0;
        for (size_t n = 0; n < w.n; n++) {
            uint8_t *cut = malloc(n ? n : 1); /* exact-size copy: ASan sees any over-read */
            memcpy(cut, w.b, n);
            dx_dicom_file g;
            if (dx_dicom_read_memory(&g, cut, n, 1, "cut", &err) == DX_OK) bad++, dx_dicom_file_free(&g);
            free(cut);
        }
        CHECK(bad == 0, "%s: %d truncated prefixes were accepted", cases[c].what, bad);
        free(w.b);
    }
}

static void test_malformed(void) {
    dx_dicom_file f;
    dx_err err = {0};
    /* Length past the end of the buffer. */
    wbuf w = {0};
    meta(&w, "1.2.840.10008.1.2.1");
    w.expl = 1;
    el_str(&w, 0x0008, 0x0060, "CS", "CT");
    hdr(&w, 0x0009, 0x0010, "OB", 0xFFFFFFF0u);
    put(&w, "abcd", 4);
    dx_status st = dx_dicom_read_memory(&f, w.b, w.n, 0, "huge-len", &err);
    CHECK(st == DX_EFORMAT && strstr(err.msg, "huge-len") && strstr(err.msg, "(0009,0010)"), "length past end: %s",
          err.msg);
    free(w.b);
    /* Deep nesting: 200 levels of undefined-length SQ/item. */
    memset(&w, 0, sizeof w);
    meta(&w, "1.2.840.10008.1.2.1");
    w.expl = 1;
    for (int i = 0; i < 200; i++) {
        hdr(&w, 0x0008, 0x1140, "SQ", 0xFFFFFFFF);
        hdr(&w, 0xFFFE, 0xE000, "", 0xFFFFFFFF);
    }
    st = dx_dicom_read_memory(&f, w.b, w.n, 0, "deep", &err);
    CHECK(st == DX_EFORMAT && strstr(err.msg, "nested"), "deep nesting: %s", err.msg);
    free(w.b);
    /* Many zero-length items end normally. */
    memset(&w, 0, sizeof w);
    meta(&w, "1.2.840.10008.1.2.1");
    w.expl = 1;
    hdr(&w, 0x0008, 0x1140, "SQ", 0xFFFFFFFF);
    for (int i = 0; i < 1000; i++) hdr(&w, 0xFFFE, 0xE000, "", 0);
    hdr(&w, 0xFFFE, 0xE0DD, "", 0);
    el_str(&w, 0x0008, 0x0060, "CS", "CT");
    st = dx_dicom_read_memory(&f, w.b, w.n, 0, "zero-items", &err);
    CHECK(st == DX_OK && !strcmp(f.modality, "CT"), "zero-length items: %s", err.msg);
    /* ...but without the sequence delimiter the sequence is truncated. */
    w.n -= 8 + 10;
    st = dx_dicom_read_memory(&f, w.b, w.n, 0, "no-delim", &err);
    CHECK(st == DX_EFORMAT, "missing sequence delimiter: %s", err.msg);
    free(w.b);
    /* A stray item tag inside an undefined-length sequence. */
    memset(&w, 0, sizeof w);
    meta(&w, "1.2.840.10008.1.2.1");
    w.expl = 1;
    hdr(&w, 0x0008, 0x1140, "SQ", 0xFFFFFFFF);
    el_str(&w, 0x0008, 0x0060, "CS", "CT");
    st = dx_dicom_read_memory(&f, w.b, w.n, 0, "bad-item", &err);
    CHECK(st == DX_EFORMAT && strstr(err.msg, "item"), "non-item inside sequence: %s", err.msg);
    free(w.b);
    /* Garbage: never accepted as an image, never crashes. */
    uint32_t s = 12345;
    int ok = 0;
    for (int t = 0; t < 300; t++) {
        size_t n = 1 + t * 7;
        uint8_t *g = malloc(n);
        for (size_t i = 0; i < n; i++) g[i] = (uint8_t)((s = s * 1664525u + 1013904223u) >> 24);
        if (t % 3 == 0 && n > 132) memcpy(g + 128, "DICM", 4);
        if (dx_dicom_read_memory(&f, g, n, 1, "garbage", &err) == DX_OK) ok++, dx_dicom_file_free(&f);
        free(g);
    }
    CHECK(ok == 0, "%d garbage buffers decoded as images", ok);
    /* Not DICOM at all. */
    const char *xml = "<?xml version=\"1.0\"?><LidcReadMessage/>";
    st = dx_dicom_read_memory(&f, (const uint8_t *)xml, strlen(xml), 0, "x.xml", &err);
    CHECK(st == DX_EFORMAT && strstr(err.msg, "not a DICOM file"), "xml: %s", err.msg);
    /* Pixel data shorter than Rows x Columns x 2. */
    build_ct(&w, "1.2.840.10008.1.2.1", 0, 1, 1, 0);
    w.b[w.n - 24 - 4] = 20; /* OW length 24 -> 20; the dataset now ends 4 bytes later */
    st = dx_dicom_read_memory(&f, w.b, w.n - 4, 1, "short", &err);
    CHECK(st == DX_EFORMAT && strstr(err.msg, "PixelData has 20 bytes"), "short pixel data: %s", err.msg);
    free(w.b);
    /* Unknown encapsulated syntax: refused naming the UID. */
    memset(&w, 0, sizeof w);
    meta(&w, "1.2.840.10008.1.2.4.50");
    w.expl = 1;
    el_us(&w, 0x0028, 0x0010, "US", 3);
    el_us(&w, 0x0028, 0x0011, "US", 4);
    el_us(&w, 0x0028, 0x0100, "US", 16);
    hdr(&w, 0x7FE0, 0x0010, "OB", 0xFFFFFFFF);
    hdr(&w, 0xFFFE, 0xE000, "", 0);
    hdr(&w, 0xFFFE, 0xE000, "", 4);
    put(&w, "\xFF\xD8\xFF\xD9", 4);
    hdr(&w, 0xFFFE, 0xE0DD, "", 0);
    st = dx_dicom_read_memory(&f, w.b, w.n, 1, "jpeg", &err);
    CHECK(st == DX_EUNSUPPORTED && strstr(err.msg, "1.2.840.10008.1.2.4.50"), "jpeg baseline refused: %s", err.msg);
    free(w.b);
}

/* Deflated Explicit VR LE: the dataset after the meta is a raw deflate stream. */
static void test_deflated(void) {
    wbuf plain = {0};
    plain.expl = 1;
    ct_dataset(&plain, 1, -42.5, 7, "1.2.3.4.5", "1.2.3.9");
    wbuf w = {0};
    meta(&w, "1.2.840.10008.1.2.1.99");
    size_t meta_n = w.n;
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    uLong bound = deflateBound(&z, (uLong)plain.n);
    uint8_t *buf = malloc(meta_n + bound);
    memcpy(buf, w.b, meta_n);
    z.next_in = plain.b, z.avail_in = (uInt)plain.n;
    z.next_out = buf + meta_n, z.avail_out = (uInt)bound;
    deflate(&z, Z_FINISH);
    size_t n = meta_n + (bound - z.avail_out);
    deflateEnd(&z);
    dx_dicom_file f;
    dx_err err = {0};
    dx_status st = dx_dicom_read_memory(&f, buf, n, 1, "deflated", &err);
    CHECK(st == DX_OK, "deflated: %s", err.msg);
    if (!st) {
        check_ct_fields(&f, "deflated");
        int same = 1;
        for (int i = 0; i < 12; i++) same &= f.pixels[i] == k_img[i];
        CHECK(same, "deflated: stored pixels");
        dx_dicom_file_free(&f);
    }
    int bad = 0;
    for (size_t cut = meta_n; cut < n; cut++)
        if (dx_dicom_read_memory(&f, buf, cut, 1, "deflated-cut", &err) == DX_OK) bad++, dx_dicom_file_free(&f);
    CHECK(bad == 0, "deflated: %d truncations accepted", bad);
    free(buf);
    free(w.b);
    free(plain.b);
}

/* RLE Lossless by hand (PS3.5 Annex G): 3x4 signed 16-bit, high bytes then low bytes. */
static void test_rle(void) {
    uint8_t hi[12], lo[12];
    for (int i = 0; i < 12; i++) hi[i] = (uint8_t)((uint16_t)k_img[i] >> 8), lo[i] = (uint8_t)k_img[i];
    wbuf seg = {0};
    /* segment 0: literal run of 12 bytes; segment 1: literal 2, replicate, literal rest. */
    uint8_t h = 11;
    put(&seg, &h, 1);
    put(&seg, hi, 12);
    size_t off1 = 64 + seg.n;
    h = 11;
    put(&seg, &h, 1);
    put(&seg, lo, 12);
    uint8_t hdrb[64] = {0};
    hdrb[0] = 2;
    hdrb[4] = 64;
    hdrb[8] = (uint8_t)off1;
    wbuf w = {0};
    meta(&w, "1.2.840.10008.1.2.5");
    w.expl = 1;
    el_us(&w, 0x0028, 0x0010, "US", 3);
    el_us(&w, 0x0028, 0x0011, "US", 4);
    el_us(&w, 0x0028, 0x0100, "US", 16);
    el_us(&w, 0x0028, 0x0101, "US", 16);
    el_us(&w, 0x0028, 0x0102, "US", 15);
    el_us(&w, 0x0028, 0x0103, "US", 1);
    hdr(&w, 0x7FE0, 0x0010, "OB", 0xFFFFFFFF);
    hdr(&w, 0xFFFE, 0xE000, "", 0);
    hdr(&w, 0xFFFE, 0xE000, "", (uint32_t)(64 + seg.n));
    put(&w, hdrb, 64);
    put(&w, seg.b, seg.n);
    hdr(&w, 0xFFFE, 0xE0DD, "", 0);
    dx_dicom_file f;
    dx_err err = {0};
    dx_status st = dx_dicom_read_memory(&f, w.b, w.n, 1, "rle", &err);
    CHECK(st == DX_OK, "rle: %s", err.msg);
    if (!st) {
        int same = 1;
        for (int i = 0; i < 12; i++) same &= f.pixels[i] == k_img[i];
        CHECK(same, "rle: stored pixels");
        dx_dicom_file_free(&f);
    }
    /* A replicate run that overruns the segment is an error, not an overflow. */
    size_t at = w.n - 8 - seg.n;
    w.b[at] = (uint8_t)(int8_t)-100; /* repeat 101 bytes into a 12-byte plane */
    st = dx_dicom_read_memory(&f, w.b, w.n, 1, "rle-bad", &err);
    CHECK(st == DX_EFORMAT && strstr(err.msg, "RLE"), "rle overrun: %s", err.msg);
    free(w.b);
    free(seg.b);
}

static void test_hu_rules(void) {
    /* Unsigned 12-in-16 with garbage high bits, HighBit 11, padding range, slope 0.5. */
    int32_t px[6];
    dx_dicom_file f;
    memset(&f, 0, sizeof f);
    f.rows = 2, f.cols = 3, f.number_of_frames = 1, f.rescale_slope = 0.5, f.rescale_intercept = -1000;
    f.has_padding = 1, f.padding_value = 10, f.has_padding_limit = 1, f.padding_limit = 5;
    int32_t v[6] = {5, 7, 10, 11, 0, 4095};
    memcpy(px, v, sizeof v);
    f.pixels = px;
    int16_t hu[6];
    dx_err err = {0};
    CHECK(dx_dicom_to_hu(&f, 0, hu, &err) == DX_OK, "to_hu: %s", err.msg);
    /* 5,7,10 in [5,10] -> pad; 11 -> -994.5 -> round half even -994; 0 -> -1000; 4095 -> 1047.5 -> 1048 */
    CHECK(hu[0] == DX_HU_PAD && hu[1] == DX_HU_PAD && hu[2] == DX_HU_PAD, "padding range");
    CHECK(hu[3] == -994 && hu[4] == -1000 && hu[5] == 1048, "slope 0.5: %d %d %d", hu[3], hu[4], hu[5]);
    CHECK(dx_dicom_to_hu(&f, 1, hu, &err) == DX_EINVAL, "frame out of range");
}

/* ---- series assembly from hand-built files ------------------------------- */

static void write_file(const char *path, const wbuf *w) {
    FILE *fp = fopen(path, "wb");
    if (fp) fwrite(w->b, 1, w->n, fp), fclose(fp);
}

static void write_slice(const char *dir, const char *name, double z, int inst, const char *sop, const char *series,
                        const char *modality, const char *image_type) {
    wbuf w = {0};
    meta(&w, inst % 2 ? "1.2.840.10008.1.2" : "1.2.840.10008.1.2.1");
    w.expl = !(inst % 2);
    wbuf body = {0};
    body.expl = w.expl;
    ct_dataset(&body, 0, z, inst, sop, series);
    /* Patch Modality / ImageType by rebuilding the first elements when asked. */
    if (modality || image_type) {
        free(body.b);
        memset(&body, 0, sizeof body);
        body.expl = w.expl;
        el_str(&body, 0x0008, 0x0008, "CS", image_type ? image_type : "ORIGINAL\\PRIMARY\\AXIAL");
        el_str(&body, 0x0008, 0x0018, "UI", sop);
        el_str(&body, 0x0008, 0x0060, "CS", modality ? modality : "CT");
        el_str(&body, 0x0020, 0x000E, "UI", series);
        el_str(&body, 0x0020, 0x0032, "DS", "0\\0\\0");
        el_str(&body, 0x0020, 0x0037, "DS", "1\\0\\0\\0\\1\\0");
        hdr(&body, 0x7FE0, 0x0010, "OW", 0);
    }
    put(&w, body.b, body.n);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_file(path, &w);
    free(w.b);
    free(body.b);
}

static void test_series(void) {
    char dir[] = "/tmp/dinox-test-dicom-XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/nested", dir);
    mkdir(sub, 0700);
    /* Series A: z = 5, 2.5, 0, -2.5, [gap], -7.5, duplicate 0 with higher instance; names shuffled. */
    write_slice(dir, "z.dcm", 5.0, 1, "1.1.1", "7.7.A", NULL, NULL);
    write_slice(sub, "a.dcm", 2.5, 2, "1.1.2", "7.7.A", NULL, NULL);
    write_slice(dir, "m.dcm", 0.0, 3, "1.1.3", "7.7.A", NULL, NULL);
    write_slice(dir, "b.dcm", -2.5, 4, "1.1.4", "7.7.A", NULL, NULL);
    write_slice(dir, "k.dcm", -7.5, 5, "1.1.5", "7.7.A", NULL, NULL);
    write_slice(dir, "c.dcm", 0.0, 9, "1.1.9", "7.7.A", NULL, NULL);
    /* Series B in the same folder, 2 slices. */
    write_slice(dir, "q.dcm", 10.0, 1, "2.2.1", "7.7.B", NULL, NULL);
    write_slice(dir, "r.dcm", 11.0, 2, "2.2.2", "7.7.B", NULL, NULL);
    /* A localizer, an MR and a text file. */
    write_slice(dir, "loc.dcm", 0, 1, "3.3.1", "7.7.A", NULL, "ORIGINAL\\PRIMARY\\LOCALIZER");
    write_slice(dir, "mr.dcm", 0, 1, "4.4.1", "7.7.C", "MR", NULL);
    char path[4300];
    snprintf(path, sizeof path, "%s/notes.txt", dir);
    FILE *fp = fopen(path, "w");
    if (fp) fputs("not dicom\n", fp), fclose(fp);

    dx_series_list l;
    dx_err err = {0};
    dx_status st = dx_dicom_scan(dir, &l, &err);
    CHECK(st == DX_OK, "scan: %s", err.msg);
    if (st) return;
    CHECK(l.n_series == 2, "two CT series, got %d", l.n_series);
    CHECK(l.n_skipped == 3, "three skipped, got %d", l.n_skipped);
    int loc = 0, mr = 0, txt = 0;
    for (int i = 0; i < l.n_skipped; i++) {
        loc += strstr(l.skipped[i].reason, "LOCALIZER") != NULL;
        mr += strstr(l.skipped[i].reason, "Modality 'MR'") != NULL;
        txt += strstr(l.skipped[i].reason, "not a DICOM file") != NULL;
    }
    CHECK(loc == 1 && mr == 1 && txt == 1, "skip reasons: localizer %d, MR %d, text %d", loc, mr, txt);
    if (l.n_series == 2) {
        const dx_series *a = &l.series[0];
        CHECK(!strcmp(a->series_uid, "7.7.A") && a->n_slices == 6, "series A: %s %d", a->series_uid, a->n_slices);
        dx_volume v;
        dx_series_report r;
        st = dx_series_load(a, &v, &r, &err);
        CHECK(st == DX_OK, "load A: %s", err.msg);
        if (!st) {
            CHECK(v.nx == 4 && v.ny == 3 && v.nz == 5, "A dims %d %d %d", v.nx, v.ny, v.nz);
            CHECK(r.n_duplicates == 1 && r.n_gaps == 1 && r.nonuniform && r.descending, "A report dup %d gap %d nonuni %d desc %d",
                  r.n_duplicates, r.n_gaps, r.nonuniform, r.descending);
            double want_z[5] = {-7.5, -2.5, 0.0, 2.5, 5.0};
            const char *want_uid[5] = {"1.1.5", "1.1.4", "1.1.3", "1.1.2", "1.1.1"};
            int ok = 1;
            for (int k = 0; k < 5; k++) ok &= v.slice_z[k] == want_z[k] && !strcmp(v.sop_uids[k], want_uid[k]);
            CHECK(ok, "A order: ascending z, duplicate keeps lower InstanceNumber (1.1.3, not 1.1.9)");
            CHECK(v.spacing[0] == 0.8 && v.spacing[1] == 0.7, "in-plane spacing x=col %g y=row %g", v.spacing[0], v.spacing[1]);
            /* Steps 5, 2.5, 2.5, 2.5 -> median 2.5 (SliceThickness 2.5 too, so check the gap figures). */
            CHECK(v.spacing[2] == 2.5 && r.spacing_max == 5.0 && r.spacing_min == 2.5, "z spacing %g", v.spacing[2]);
            CHECK(v.origin[2] == -7.5 && v.origin[0] == -100.5 && v.direction[8] == 1.0, "origin/normal");
            CHECK(v.hu[0] == -1024 && v.hu[3] == 0 && v.hu[6] == 3071 && v.window_center == -600, "A HU values");
            CHECK(!strcmp(v.patient_id, "LIDC-IDRI-0001") && !strcmp(v.series_uid, "7.7.A"), "A identity");
            CHECK(r.inplane_shift_max == 0, "A: no in-plane drift (%g)", r.inplane_shift_max);
            dx_volume_free(&v);
        }
        st = dx_series_load(&l.series[1], &v, &r, &err);
        CHECK(st == DX_OK && v.nz == 2 && v.spacing[2] == 1.0 && r.n_gaps == 0 && !r.nonuniform,
              "series B: spacing from positions (1.0), not SliceThickness (2.5): %s %g", err.msg, v.spacing[2]);
        if (!st) dx_volume_free(&v);
    }
    dx_series_list_free(&l);
    /* A directory that does not exist is an error. */
    st = dx_dicom_scan("/nonexistent/dinox", &l, &err);
    CHECK(st == DX_EIO, "missing root: %s", err.msg);
    /* Header larger than the 64 KiB first read: the reader must go back for more. */
    wbuf w = {0};
    meta(&w, "1.2.840.10008.1.2.1");
    w.expl = 1;
    size_t big = 100000;
    uint8_t *junk = calloc(1, big);
    el(&w, 0x0008, 0x0008, "CS", "ORIGINAL\\PRIMARY\\AXIAL ", 24);
    el(&w, 0x0009, 0x1010, "OB", junk, (uint32_t)big);
    free(junk);
    ct_dataset(&w, 0, 1.0, 1, "5.5.5", "5.5");
    snprintf(path, sizeof path, "%s/big.dcm", dir);
    write_file(path, &w);
    free(w.b);
    dx_dicom_file f;
    st = dx_dicom_read(&f, path, 0, &err);
    CHECK(st == DX_OK && f.rows == 3 && f.cols == 4 && f.has_pixel_data, "header beyond 64 KiB: %s", err.msg);
    st = dx_dicom_read(&f, dir, 0, &err);
    CHECK(st == DX_EIO, "directory as file: %s", err.msg);
    /* clean up */
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* ---- real CT samples from Debian's python3-pydicom (scripts/setup.sh) ------ */

static const char *pyd(const char *rel, char *buf, size_t n) {
    snprintf(buf, n, "/usr/lib/python3/dist-packages/pydicom/data/test_files/%s", rel);
    struct stat sb;
    return stat(buf, &sb) == 0 ? buf : NULL;
}

static void test_pydicom_samples(void) {
    char p[512];
    if (!pyd("CT_small.dcm", p, sizeof p)) {
        CHECK(0, "pydicom's sample CT files are missing (%s): apt-get install python3-pydicom; scripts/setup.sh does", p);
        return;
    }
    dx_dicom_file f;
    dx_err err = {0};
    dx_status st = dx_dicom_read(&f, p, 1, &err);
    CHECK(st == DX_OK, "CT_small: %s", err.msg);
    if (!st) {
        /* Figures from docs/design ct-data.md section 6 (read there with pydicom). */
        int32_t lo = INT32_MAX, hi = INT32_MIN;
        for (int i = 0; i < f.rows * f.cols; i++) lo = f.pixels[i] < lo ? f.pixels[i] : lo, hi = f.pixels[i] > hi ? f.pixels[i] : hi;
        CHECK(f.rows == 128 && f.cols == 128 && lo == 128 && hi == 2191, "CT_small stored range %d..%d", lo, hi);
        CHECK(f.has_padding && f.padding_value == -2000 && f.rescale_intercept == -1024, "CT_small padding/intercept");
        CHECK(fabs(f.pixel_spacing[0] - 0.661468) < 1e-6 && fabs(f.ipp[2] + 75.7) < 1e-4, "CT_small geometry");
        dx_dicom_file_free(&f);
    }
    if (pyd("dicomdirtests/98892001", p, sizeof p)) {
        dx_series_list l;
        st = dx_dicom_scan(p, &l, &err);
        CHECK(st == DX_OK && l.n_series == 1 && l.n_skipped == 2, "CT5N+CT2N: %d series, %d skipped: %s", l.n_series,
              l.n_skipped, err.msg);
        if (!st && l.n_series == 1) {
            dx_volume v;
            dx_series_report r;
            st = dx_series_load(&l.series[0], &v, &r, &err);
            CHECK(st == DX_OK && v.nz == 5 && r.descending && fabs(v.spacing[2] - 2.5) < 1e-6 && r.n_gaps == 0,
                  "CT5N: %s", err.msg);
            if (!st) {
                CHECK(fabs(v.slice_z[0] + 1.24) < 0.01 && fabs(v.slice_z[4] - 8.76) < 0.01, "CT5N z %g..%g",
                      v.slice_z[0], v.slice_z[4]);
                dx_volume_free(&v);
            }
        }
        if (!st) dx_series_list_free(&l);
    } else {
        CHECK(0, "pydicom sample %s missing (python3-pydicom)", p);
    }
    if (pyd("dicomdirtests/77654033/CT2", p, sizeof p)) {
        dx_series_list l;
        st = dx_dicom_scan(p, &l, &err);
        if (!st && l.n_series == 1) {
            dx_volume v;
            dx_series_report r;
            st = dx_series_load(&l.series[0], &v, &r, &err);
            CHECK(st == DX_OK && v.nz == 4 && r.n_gaps == 1 && r.nonuniform, "CT2 gap flagged: %s", err.msg);
            if (!st) dx_volume_free(&v);
            dx_series_list_free(&l);
        } else {
            CHECK(0, "CT2 scan: %s", err.msg);
        }
    } else {
        CHECK(0, "pydicom sample %s missing (python3-pydicom)", p);
    }
}

static void run_unit_tests(void) {
    test_syntaxes();
    test_malformed();
    test_rle();
    test_deflated();
    test_hu_rules();
    test_series();
    test_pydicom_samples();
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "--dump") == 0) return tool_dump(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "--series") == 0) return tool_series(argv[2], argv[3]);
    if (argc == 4 && strcmp(argv[1], "--nifti") == 0) return tool_nifti(argv[2], argv[3]);
    run_unit_tests();
    return dx_test_summary();
}
