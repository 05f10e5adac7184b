/* nifti_load.c - NIfTI-1 image (.nii, .nii.gz, .hdr/.img) -> dx_volume in HU.
 * libniftiio decodes the 348-byte header (both byte orders, qform/sform); the
 * voxel bytes are read here, because the library fills a short read with
 * zeros and reports success: a truncated file would become a fake volume.
 * Every byte the header announces must be present, or the file is refused.
 * NIfTI world coordinates are RAS; dx_volume is DICOM LPS, so the affine's x
 * and y rows change sign. Voxel order is kept (i = x fastest), except that k
 * is reversed when it runs against row x col. */
#include "io/dx_dicom.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include <nifti1_io.h>

#define NII_HDR 348
#define NII_VOX_OFFSET_AT 108
/* Header + extensions larger than this are not a CT volume but a forged or
 * corrupt offset (1e12 would otherwise mean "skip a terabyte"). */
#define NII_MAX_VOX_OFFSET (1.0 * (1u << 30))

static int bytes_per_voxel(int dt) {
    switch (dt) {
    case DT_UINT8: case DT_INT8: return 1;
    case DT_INT16: case DT_UINT16: return 2;
    case DT_INT32: case DT_UINT32: case DT_FLOAT32: return 4;
    case DT_INT64: case DT_UINT64: case DT_FLOAT64: return 8;
    default: return 0;
    }
}

/* Voxel at p (any alignment) as a double, byte-swapped when the file's order
 * differs from the host's. */
static double voxel(const uint8_t *p, int dt, int nb, int swap) {
    uint8_t b[8];
    for (int i = 0; i < nb; i++) b[i] = swap ? p[nb - 1 - i] : p[i];
    union { uint8_t u8; int8_t i8; int16_t i16; uint16_t u16; int32_t i32; uint32_t u32; int64_t i64; uint64_t u64;
            float f32; double f64; } v;
    memcpy(&v, b, (size_t)nb);
    switch (dt) {
    case DT_UINT8: return v.u8;
    case DT_INT8: return v.i8;
    case DT_INT16: return v.i16;
    case DT_UINT16: return v.u16;
    case DT_INT32: return v.i32;
    case DT_UINT32: return v.u32;
    case DT_INT64: return (double)v.i64;
    case DT_UINT64: return (double)v.u64;
    case DT_FLOAT32: return v.f32;
    case DT_FLOAT64: return v.f64;
    default: return NAN;
    }
}

static uint32_t u32_at(const uint8_t *p, int swap) {
    uint32_t v;
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[i] = swap ? p[3 - i] : p[i];
    memcpy(&v, b, 4);
    return v;
}

static int i16_at(const uint8_t *p, int swap) {
    int16_t v;
    uint8_t b[2] = {swap ? p[1] : p[0], swap ? p[0] : p[1]};
    memcpy(&v, b, 2);
    return v;
}

/* A decoded header: libniftiio's image (no data) plus what we need to find
 * and check the voxel bytes. */
typedef struct nii_header {
    nifti_image *nim;
    int swap;          /* file byte order differs from the host's */
    int one_file;      /* .nii: voxels follow the header in the same file */
    int bpv;           /* bytes per voxel */
    size_t offset;     /* of the first voxel byte in the data file */
    size_t data_bytes; /* nx * ny * nz * bpv */
} nii_header;

/* Checks and decodes the first 348 bytes of a NIfTI-1 / ANALYZE header. */
static dx_status parse_header(const uint8_t *h, size_t len, const char *name, nii_header *out, dx_err *err) {
    memset(out, 0, sizeof *out);
    uint32_t sz = len >= 4 ? u32_at(h, 0) : 0;
    if (len >= 4 && (sz == 540 || u32_at(h, 1) == 540))
        return dx_fail(err, DX_EUNSUPPORTED, "%s: NIfTI-2 header (this build reads NIfTI-1 only)", name);
    if (len < NII_HDR) return dx_fail(err, DX_EFORMAT, "%s: truncated header (%zu of %d bytes)", name, len, NII_HDR);
    int swap;
    if (sz == NII_HDR) swap = 0;
    else if (u32_at(h, 1) == NII_HDR) swap = 1;
    else return dx_fail(err, DX_EFORMAT, "%s: not a NIfTI-1/ANALYZE image (sizeof_hdr %u, want 348)", name, sz);
    /* What libniftiio would refuse (with a line on stderr each time) is
     * refused here first, with a message naming the file. */
    int dim[8], dt;
    for (int i = 0; i < 8; i++) dim[i] = i16_at(h + 40 + 2 * i, swap);
    dt = i16_at(h + 70, swap);
    if (dim[0] < 1 || dim[0] > 7)
        return dx_fail(err, DX_EFORMAT, "%s: dim[0] = %d (the number of dimensions must be 1..7)", name, dim[0]);
    for (int i = 1; i <= dim[0]; i++)
        if (dim[i] < 1) return dx_fail(err, DX_EFORMAT, "%s: dim[%d] = %d (must be >= 1)", name, i, dim[i]);
    if (!bytes_per_voxel(dt))
        return dx_fail(err, DX_EUNSUPPORTED, "%s: voxel type %s (%d) is not supported", name,
                       nifti_datatype_string(dt), dt);
    struct nifti_1_header nh;
    memcpy(&nh, h, sizeof nh);
    nifti_image *nim = nifti_convert_nhdr2nim(nh, name); /* swaps its copy of the header itself */
    if (!nim) return dx_fail(err, DX_EFORMAT, "%s: not a readable NIfTI-1/ANALYZE header", name);
    out->nim = nim;
    if ((nim->byteorder != nifti_short_order()) != swap) {
        nifti_image_free(nim);
        return dx_fail(err, DX_EFORMAT, "%s: sizeof_hdr and dim[0] disagree on the byte order", name);
    }
    out->swap = swap;
    out->one_file = nim->nifti_type == NIFTI_FTYPE_NIFTI1_1;
    int nx = nim->nx, ny = nim->ny, nz = nim->nz;
    size_t extra = 1;
    for (int d = 4; d <= 7 && d <= nim->dim[0]; d++) extra *= nim->dim[d] > 0 ? (size_t)nim->dim[d] : 1;
    dx_status st = DX_OK;
    float vf;
    uint32_t vbits = u32_at(h + NII_VOX_OFFSET_AT, swap);
    memcpy(&vf, &vbits, 4);
    double vox = vf;
    if (nim->dim[0] < 1 || nx < 1 || ny < 1 || nz < 1 || extra != 1) {
        st = dx_fail(err, DX_EUNSUPPORTED, "%s: only 3-D scalar images are supported (dim %d: %d %d %d %d)", name,
                     nim->dim[0], nim->dim[1], nim->dim[2], nim->dim[3], nim->dim[4]);
    } else if (!(out->bpv = bytes_per_voxel(nim->datatype))) {
        st = dx_fail(err, DX_EUNSUPPORTED, "%s: voxel type %s is not supported", name,
                     nifti_datatype_string(nim->datatype));
    } else if ((size_t)nx * ny * nz > ((size_t)1 << 31)) {
        st = dx_fail(err, DX_ENOMEM, "%s: %d x %d x %d voxels is too large", name, nx, ny, nz);
    } else if (!(vox >= 0) || vox > NII_MAX_VOX_OFFSET) {
        st = dx_fail(err, DX_EFORMAT, "%s: vox_offset %g is not a plausible data offset (0 .. 2^30)", name, vox);
    }
    if (st) {
        nifti_image_free(nim);
        out->nim = NULL;
        return st;
    }
    /* A .nii's data cannot start inside the header; libniftiio reads an
     * offset below 348 as 348 too. */
    out->offset = (size_t)vox;
    if (out->one_file && out->offset < NII_HDR) out->offset = NII_HDR;
    out->data_bytes = (size_t)nx * ny * nz * (size_t)out->bpv;
    return DX_OK;
}

static dx_status truncated(const nii_header *hd, const char *name, size_t got, const char *why, dx_err *err) {
    const nifti_image *n = hd->nim;
    return dx_fail(err, DX_EFORMAT,
                   "%s: truncated: the header announces %d x %d x %d %s voxels, %zu bytes at vox_offset %zu, "
                   "but only %zu are there%s%s",
                   name, n->nx, n->ny, n->nz, nifti_datatype_string(n->datatype), hd->data_bytes, hd->offset, got,
                   why ? " " : "", why ? why : "");
}

/* Header + voxel bytes -> vol. data holds hd->data_bytes bytes. */
static dx_status decode(const nii_header *hd, const uint8_t *data, const char *name, dx_volume *vol, dx_err *err) {
    const nifti_image *nim = hd->nim;
    int nx = nim->nx, ny = nim->ny, nz = nim->nz;
    /* Affine: sform if set, else qform (the library fills qto_xyz from pixdim
     * when qform_code is 0). RAS -> LPS: negate the x and y rows. */
    mat44 m = nim->sform_code > 0 ? nim->sto_xyz : nim->qto_xyz;
    double a[3][4];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++) {
            a[r][c] = (r < 2 ? -1.0 : 1.0) * m.m[r][c];
            /* the store refuses non-finite geometry: refuse it here, naming the file */
            if (!isfinite(a[r][c])) return dx_fail(err, DX_EFORMAT, "%s: affine is not finite", name);
        }
    double dir[3][3], sp[3];
    for (int c = 0; c < 3; c++) {
        sp[c] = sqrt(a[0][c] * a[0][c] + a[1][c] * a[1][c] + a[2][c] * a[2][c]);
        if (!(sp[c] > 0) || !isfinite(sp[c]))
            return dx_fail(err, DX_EFORMAT, "%s: affine column %d is zero or not finite", name, c);
        for (int r = 0; r < 3; r++) dir[c][r] = a[r][c] / sp[c];
    }
    double cr[3] = {dir[0][1] * dir[1][2] - dir[0][2] * dir[1][1], dir[0][2] * dir[1][0] - dir[0][0] * dir[1][2],
                    dir[0][0] * dir[1][1] - dir[0][1] * dir[1][0]};
    int flip = cr[0] * dir[2][0] + cr[1] * dir[2][1] + cr[2] * dir[2][2] < 0;

    vol->hu = malloc((size_t)nx * ny * nz * sizeof *vol->hu);
    if (!vol->hu) return dx_fail(err, DX_ENOMEM, "%s: %d x %d x %d voxels", name, nx, ny, nz);
    /* scl_slope = 0 means "no scaling" in NIfTI-1. */
    double slope = nim->scl_slope != 0 && isfinite(nim->scl_slope) ? nim->scl_slope : 1.0;
    double inter = nim->scl_slope != 0 && isfinite(nim->scl_inter) ? nim->scl_inter : 0.0;
    size_t plane = (size_t)nx * ny;
    int dt = nim->datatype, nb = hd->bpv;
    for (int k = 0; k < nz; k++) {
        size_t src = (size_t)(flip ? nz - 1 - k : k) * plane, dst = (size_t)k * plane;
        for (size_t i = 0; i < plane; i++) {
            double v = voxel(data + (src + i) * nb, dt, nb, hd->swap) * slope + inter;
            int16_t h;
            if (isnan(v)) h = DX_HU_PAD;
            else if (v <= DX_HU_MIN) h = DX_HU_MIN;
            else if (v >= DX_HU_MAX) h = DX_HU_MAX;
            else h = (int16_t)nearbyint(v);
            vol->hu[dst + i] = h;
        }
    }
    vol->nx = nx;
    vol->ny = ny;
    vol->nz = nz;
    for (int c = 0; c < 3; c++) vol->spacing[c] = sp[c];
    for (int r = 0; r < 3; r++) {
        vol->origin[r] = a[r][3] + (flip ? (nz - 1) * a[r][2] : 0.0);
        vol->direction[r] = dir[0][r];
        vol->direction[3 + r] = dir[1][r];
        vol->direction[6 + r] = flip ? -dir[2][r] : dir[2][r];
    }
    return DX_OK;
}

dx_status dx_nifti_load_memory(const void *buf, size_t len, const char *name, dx_volume *vol, dx_err *err) {
    if ((!buf && len) || !vol) return dx_fail(err, DX_EINVAL, "dx_nifti_load_memory: NULL argument");
    memset(vol, 0, sizeof *vol);
    if (!name) name = "NIfTI buffer";
    nii_header hd;
    dx_status st = parse_header(buf, len, name, &hd, err);
    if (st) return st;
    if (!hd.one_file) st = dx_fail(err, DX_EUNSUPPORTED, "%s: a .hdr header; its voxels are in a separate file", name);
    else if (hd.offset > len || len - hd.offset < hd.data_bytes)
        st = truncated(&hd, name, hd.offset < len ? len - hd.offset : 0, NULL, err);
    else st = decode(&hd, (const uint8_t *)buf + hd.offset, name, vol, err);
    nifti_image_free(hd.nim);
    if (st) dx_volume_free(vol);
    return st;
}

/* Reads up to want bytes from f into a buffer grown as bytes arrive (a forged
 * header cannot make us allocate more than twice what the file holds). */
static dx_status read_all(gzFile f, size_t want, uint8_t **out, size_t *got, const char *name, dx_err *err) {
    *out = NULL;
    *got = 0;
    size_t cap = want < ((size_t)64 << 20) ? want : (size_t)64 << 20;
    uint8_t *b = malloc(cap ? cap : 1);
    if (!b) return dx_fail(err, DX_ENOMEM, "%s: %zu bytes", name, cap);
    while (*got < want) {
        if (*got == cap) {
            size_t nc = cap * 2 < want ? cap * 2 : want;
            uint8_t *p = realloc(b, nc);
            if (!p) {
                free(b);
                return dx_fail(err, DX_ENOMEM, "%s: %zu bytes", name, nc);
            }
            b = p, cap = nc;
        }
        size_t chunk = cap - *got < ((size_t)1 << 30) ? cap - *got : (size_t)1 << 30;
        int n = gzread(f, b + *got, (unsigned)chunk);
        if (n <= 0) break; /* end of file, or a corrupt / cut gzip stream */
        *got += (size_t)n;
    }
    *out = b;
    return DX_OK;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

dx_status dx_nifti_load(const char *path, dx_volume *vol, dx_err *err) {
    if (!path || !vol) return dx_fail(err, DX_EINVAL, "dx_nifti_load: NULL argument");
    memset(vol, 0, sizeof *vol);
    /* foo.img names the pair: the header is foo.hdr */
    char *hname = ends_with(path, ".img") || ends_with(path, ".img.gz") ? nifti_findhdrname(path) : NULL;
    const char *hpath = hname ? hname : path;
    gzFile f = gzopen(hpath, "rb"); /* reads plain files as they are */
    if (!f) {
        free(hname);
        return dx_fail(err, DX_EIO, "%s: cannot open", hpath);
    }
    uint8_t h[NII_HDR];
    int n = gzread(f, h, NII_HDR);
    nii_header hd;
    dx_status st = parse_header(h, n > 0 ? (size_t)n : 0, path, &hd, err);
    if (st) {
        gzclose(f);
        free(hname);
        return st;
    }
    char *iname = NULL;
    const char *dpath = hpath;
    if (!hd.one_file) { /* .hdr/.img pair: voxels in the image file */
        gzclose(f);
        f = NULL;
        iname = nifti_findimgname(hpath, hd.nim->nifti_type);
        if (!iname) st = dx_fail(err, DX_ENOTFOUND, "%s: no image file (.img) next to the header", path);
        else if (!(f = gzopen(iname, "rb"))) st = dx_fail(err, DX_EIO, "%s: cannot open", iname);
        dpath = iname;
    }
    struct stat sb;
    if (!st && gzdirect(f) && !stat(dpath, &sb) && (uint64_t)sb.st_size < (uint64_t)hd.offset + hd.data_bytes) {
        /* uncompressed: the size says it all, before anything is allocated */
        size_t have = (uint64_t)sb.st_size > hd.offset ? (size_t)sb.st_size - hd.offset : 0;
        st = truncated(&hd, dpath, have, NULL, err);
    }
    uint8_t *data = NULL;
    size_t got = 0;
    if (!st && gzseek(f, (z_off_t)hd.offset, SEEK_SET) != (z_off_t)hd.offset)
        st = truncated(&hd, dpath, 0, "(the file ends before vox_offset)", err);
    if (!st) st = read_all(f, hd.data_bytes, &data, &got, dpath, err);
    if (!st && got < hd.data_bytes) {
        int zerr = Z_OK;
        const char *zmsg = gzerror(f, &zerr);
        char why[200] = "";
        if (zerr != Z_OK && zmsg && zmsg[0]) snprintf(why, sizeof why, "(gzip: %s)", zmsg);
        st = truncated(&hd, dpath, got, why[0] ? why : NULL, err);
    }
    if (!st) st = decode(&hd, data, path, vol, err);
    if (f) gzclose(f);
    free(data);
    free(iname);
    free(hname);
    nifti_image_free(hd.nim);
    if (st) dx_volume_free(vol);
    return st;
}
