/* synth_dicom.c - a minimal DICOM Part-10 writer for one CT slice.
 *
 * File = 128-byte zero preamble, "DICM", the file meta group (0002,xxxx) in
 * Explicit VR Little Endian with its group length, then the dataset in
 * Implicit VR LE (1.2.840.10008.1.2, default) or Explicit VR LE
 * (1.2.840.10008.1.2.1). Elements are written in ascending tag order; values
 * are padded to even length (UI with NUL, text with space). The attribute set
 * covers the CT Image IOD modules dciodvfy checks: Patient, General Study,
 * General Series, Frame of Reference, General Equipment, General Image, Image
 * Plane, Image Pixel, Contrast/Bolus (when contrast), CT Image, VOI LUT,
 * SOP Common. PixelPaddingValue (US or SS as PixelRepresentation says) only
 * on scanner styles that write it. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "synth/synth_internal.h"

#define CT_IMAGE_STORAGE "1.2.840.10008.5.1.4.1.1.2"
#define TS_IMPLICIT "1.2.840.10008.1.2"
#define TS_EXPLICIT "1.2.840.10008.1.2.1"
/* Implementation Class UID of dinox: a fixed 2.25 UUID-derived root. */
#define DINOX_IMPL_UID "2.25.165403118296367813722372547853440930714"

typedef struct {
    uint8_t *p;
    size_t n, cap;
    int explicit_vr;
    int fail;
} obuf;

static void put(obuf *b, const void *d, size_t n) {
    if (b->fail) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->n + n) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) { b->fail = 1; return; }
        b->p = q, b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void u16(obuf *b, unsigned v) { uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)}; put(b, x, 2); }
static void u32(obuf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}

/* Element header + value; len must already be even. */
static void elem(obuf *b, unsigned g, unsigned e, const char *vr, const void *val, uint32_t len) {
    u16(b, g), u16(b, e);
    if (b->explicit_vr || g == 0x0002) {
        put(b, vr, 2);
        if (!strcmp(vr, "OB") || !strcmp(vr, "OW") || !strcmp(vr, "SQ") || !strcmp(vr, "UN") || !strcmp(vr, "UT")) {
            u16(b, 0), u32(b, len);
        } else u16(b, len);
    } else u32(b, len);
    put(b, val, len);
}

static void str(obuf *b, unsigned g, unsigned e, const char *vr, const char *s) {
    char tmp[256];
    size_t n = strlen(s);
    if (n > sizeof tmp - 2) n = sizeof tmp - 2;
    memcpy(tmp, s, n);
    if (n & 1) tmp[n++] = !strcmp(vr, "UI") ? '\0' : ' ';
    elem(b, g, e, vr, tmp, (uint32_t)n);
}
static void us(obuf *b, unsigned g, unsigned e, unsigned v) {
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    elem(b, g, e, "US", x, 2);
}

/* Decimal string: shortest of %.6f with trailing zeros trimmed (<= 16 chars). */
static void ds_fmt(char *out, size_t cap, double v) {
    if (fabs(v) < 5e-7) v = 0;
    snprintf(out, cap, "%.6f", v);
    char *dot = strchr(out, '.');
    if (dot) {
        char *e = out + strlen(out) - 1;
        while (e > dot && *e == '0') *e-- = 0;
        if (e == dot) *e = 0;
    }
}

dx_status synth_dicom_write(const char *path, const synth_scan *s, int k, const int16_t *hu,
                            int explicit_vr, dx_err *err) {
    obuf b = {0};
    char t[256], a1[32], a2[32], a3[32];
    const char *sop = s->sop_uid[k];
    /* --- file meta (always explicit VR LE) --- */
    obuf m = {0};
    m.explicit_vr = 1;
    uint8_t ver[2] = {0, 1};
    elem(&m, 0x0002, 0x0001, "OB", ver, 2);
    str(&m, 0x0002, 0x0002, "UI", CT_IMAGE_STORAGE);
    str(&m, 0x0002, 0x0003, "UI", sop);
    str(&m, 0x0002, 0x0010, "UI", explicit_vr ? TS_EXPLICIT : TS_IMPLICIT);
    str(&m, 0x0002, 0x0012, "UI", DINOX_IMPL_UID);
    str(&m, 0x0002, 0x0013, "SH", "DINOX_SYNTH_0_1");
    uint8_t pre[128] = {0};
    put(&b, pre, 128);
    put(&b, "DICM", 4);
    b.explicit_vr = 1;
    uint8_t gl[4] = {(uint8_t)m.n, (uint8_t)(m.n >> 8), (uint8_t)(m.n >> 16), (uint8_t)(m.n >> 24)};
    elem(&b, 0x0002, 0x0000, "UL", gl, 4);
    put(&b, m.p, m.n);
    free(m.p);
    if (m.fail) b.fail = 1;

    /* --- dataset --- */
    b.explicit_vr = explicit_vr;
    static const char *manuf[SYNTH_NVENDORS] = {"GE MEDICAL SYSTEMS", "SIEMENS", "Philips", "TOSHIBA"};
    static const char *model[SYNTH_NVENDORS] = {"LightSpeed16", "Sensation 16", "Brilliance 16", "Aquilion"};
    int inst = synth_scan_instance(s, k);
    str(&b, 0x0008, 0x0005, "CS", "ISO_IR 100");
    str(&b, 0x0008, 0x0008, "CS", "ORIGINAL\\PRIMARY\\AXIAL");
    str(&b, 0x0008, 0x0012, "DA", "20000101");
    str(&b, 0x0008, 0x0013, "TM", "000000");
    str(&b, 0x0008, 0x0016, "UI", CT_IMAGE_STORAGE);
    str(&b, 0x0008, 0x0018, "UI", sop);
    str(&b, 0x0008, 0x0020, "DA", "20000101");
    str(&b, 0x0008, 0x0021, "DA", "20000101");
    str(&b, 0x0008, 0x0022, "DA", "20000101");
    str(&b, 0x0008, 0x0023, "DA", "20000101");
    str(&b, 0x0008, 0x0030, "TM", "000000");
    str(&b, 0x0008, 0x0031, "TM", "000000");
    str(&b, 0x0008, 0x0032, "TM", "000000");
    str(&b, 0x0008, 0x0033, "TM", "000000");
    str(&b, 0x0008, 0x0050, "SH", "");
    str(&b, 0x0008, 0x0060, "CS", "CT");
    str(&b, 0x0008, 0x0070, "LO", manuf[s->vendor]);
    str(&b, 0x0008, 0x0090, "PN", "");
    str(&b, 0x0008, 0x1030, "LO", "SYNTHETIC CHEST CT");
    str(&b, 0x0008, 0x103E, "LO", "dinox synth phantom");
    str(&b, 0x0008, 0x1090, "LO", model[s->vendor]);
    str(&b, 0x0010, 0x0010, "PN", s->patient_id); /* LIDC keeps the ID as the name */
    str(&b, 0x0010, 0x0020, "LO", s->patient_id);
    str(&b, 0x0010, 0x0030, "DA", "");
    str(&b, 0x0010, 0x0040, "CS", "");
    if (s->contrast) str(&b, 0x0018, 0x0010, "LO", "IV CONTRAST");
    str(&b, 0x0018, 0x0015, "CS", "CHEST");
    ds_fmt(t, sizeof t, s->thick);
    str(&b, 0x0018, 0x0050, "DS", t);
    snprintf(t, sizeof t, "%d", s->kvp);
    str(&b, 0x0018, 0x0060, "DS", t);
    ds_fmt(t, sizeof t, s->dz);
    str(&b, 0x0018, 0x0088, "DS", t);
    str(&b, 0x0018, 0x1020, "LO", "dinox synth 0.1");
    ds_fmt(t, sizeof t, s->fov);
    str(&b, 0x0018, 0x1100, "DS", t);
    snprintf(t, sizeof t, "%d", s->ma);
    str(&b, 0x0018, 0x1151, "IS", t);
    str(&b, 0x0018, 0x1210, "SH", s->kernel);
    str(&b, 0x0018, 0x5100, "CS", "HFS");
    str(&b, 0x0020, 0x000D, "UI", s->study_uid);
    str(&b, 0x0020, 0x000E, "UI", s->series_uid);
    str(&b, 0x0020, 0x0010, "SH", "1");
    snprintf(t, sizeof t, "%d", s->series_number);
    str(&b, 0x0020, 0x0011, "IS", t);
    str(&b, 0x0020, 0x0012, "IS", "1");
    snprintf(t, sizeof t, "%d", inst);
    str(&b, 0x0020, 0x0013, "IS", t);
    ds_fmt(a1, sizeof a1, s->x0), ds_fmt(a2, sizeof a2, s->y0), ds_fmt(a3, sizeof a3, s->z[k]);
    snprintf(t, sizeof t, "%s\\%s\\%s", a1, a2, a3);
    str(&b, 0x0020, 0x0032, "DS", t);
    str(&b, 0x0020, 0x0037, "DS", "1\\0\\0\\0\\1\\0");
    str(&b, 0x0020, 0x0052, "UI", s->for_uid);
    str(&b, 0x0020, 0x1040, "LO", "");
    str(&b, 0x0020, 0x1041, "DS", a3);
    us(&b, 0x0028, 0x0002, 1);
    str(&b, 0x0028, 0x0004, "CS", "MONOCHROME2");
    us(&b, 0x0028, 0x0010, (unsigned)s->ny);
    us(&b, 0x0028, 0x0011, (unsigned)s->nx);
    ds_fmt(a1, sizeof a1, s->ps);
    snprintf(t, sizeof t, "%s\\%s", a1, a1);
    str(&b, 0x0028, 0x0030, "DS", t);
    us(&b, 0x0028, 0x0100, 16);
    us(&b, 0x0028, 0x0101, (unsigned)s->bits_stored);
    us(&b, 0x0028, 0x0102, (unsigned)s->bits_stored - 1);
    us(&b, 0x0028, 0x0103, (unsigned)s->pixel_signed);
    if (s->has_padding) {
        uint16_t pv = (uint16_t)(int16_t)s->outside_stored;
        uint8_t x[2] = {(uint8_t)pv, (uint8_t)(pv >> 8)};
        elem(&b, 0x0028, 0x0120, s->pixel_signed ? "SS" : "US", x, 2);
    }
    ds_fmt(t, sizeof t, s->window_center);
    str(&b, 0x0028, 0x1050, "DS", t);
    ds_fmt(t, sizeof t, s->window_width);
    str(&b, 0x0028, 0x1051, "DS", t);
    ds_fmt(t, sizeof t, s->intercept);
    str(&b, 0x0028, 0x1052, "DS", t);
    str(&b, 0x0028, 0x1053, "DS", "1");
    str(&b, 0x0028, 0x1054, "LO", "HU");
    /* pixels: stored = HU - intercept (slope 1), little endian */
    size_t np = (size_t)s->nx * s->ny;
    uint8_t *px = malloc(np * 2);
    if (!px) { free(b.p); return dx_fail(err, DX_ENOMEM, "synth: pixel buffer"); }
    for (size_t i = 0; i < np; i++) {
        int v = hu[i] - (int)s->intercept;
        uint16_t w = (uint16_t)(int16_t)v;
        px[2 * i] = (uint8_t)w, px[2 * i + 1] = (uint8_t)(w >> 8);
    }
    elem(&b, 0x7FE0, 0x0010, "OW", px, (uint32_t)(np * 2));
    free(px);
    if (b.fail) { free(b.p); return dx_fail(err, DX_ENOMEM, "synth: DICOM buffer"); }

    FILE *f = fopen(path, "wb");
    if (!f) { free(b.p); return dx_fail(err, DX_EIO, "open %s: %s", path, strerror(errno)); }
    size_t wr = fwrite(b.p, 1, b.n, f);
    int cl = fclose(f);
    free(b.p);
    if (wr != b.n || cl != 0) return dx_fail(err, DX_EIO, "write %s: %s", path, strerror(errno));
    return DX_OK;
}
