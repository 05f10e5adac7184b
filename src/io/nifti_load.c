/* nifti_load.c - NIfTI-1 image (.nii, .nii.gz, .hdr/.img) -> dx_volume in HU,
 * through libniftiio. NIfTI world coordinates are RAS; dx_volume is DICOM LPS,
 * so the affine's x and y rows change sign. Voxel order is kept (i = x fastest),
 * except that k is reversed when it runs against row x col. */
#include "io/dx_dicom.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nifti1_io.h>

/* Voxel n of the image as a double (the library has already byte-swapped). */
static double voxel(const nifti_image *nim, size_t n) {
    const void *d = nim->data;
    switch (nim->datatype) {
    case DT_UINT8: return ((const uint8_t *)d)[n];
    case DT_INT8: return ((const int8_t *)d)[n];
    case DT_INT16: return ((const int16_t *)d)[n];
    case DT_UINT16: return ((const uint16_t *)d)[n];
    case DT_INT32: return ((const int32_t *)d)[n];
    case DT_UINT32: return ((const uint32_t *)d)[n];
    case DT_INT64: return (double)((const int64_t *)d)[n];
    case DT_UINT64: return (double)((const uint64_t *)d)[n];
    case DT_FLOAT32: return ((const float *)d)[n];
    case DT_FLOAT64: return ((const double *)d)[n];
    default: return NAN;
    }
}

static int supported_type(int dt) {
    return dt == DT_UINT8 || dt == DT_INT8 || dt == DT_INT16 || dt == DT_UINT16 || dt == DT_INT32 ||
           dt == DT_UINT32 || dt == DT_INT64 || dt == DT_UINT64 || dt == DT_FLOAT32 || dt == DT_FLOAT64;
}

/* NIfTI-2 starts with sizeof_hdr = 540 (either byte order); libniftiio reads only NIfTI-1. */
static int is_nifti2(const char *path) {
    if (!nifti_is_gzfile(path) && strlen(path) > 0) {
        FILE *fp = fopen(path, "rb");
        if (!fp) return 0;
        unsigned char b[4] = {0};
        size_t n = fread(b, 1, 4, fp);
        fclose(fp);
        return n == 4 && ((b[0] == 0x1C && b[1] == 0x02 && !b[2] && !b[3]) || (!b[0] && !b[1] && b[2] == 0x02 && b[3] == 0x1C));
    }
    znzFile z = znzopen(path, "rb", 1);
    if (znz_isnull(z)) return 0;
    unsigned char b[4] = {0};
    size_t n = znzread(b, 1, 4, z);
    znzclose(z);
    return n == 4 && ((b[0] == 0x1C && b[1] == 0x02 && !b[2] && !b[3]) || (!b[0] && !b[1] && b[2] == 0x02 && b[3] == 0x1C));
}

dx_status dx_nifti_load(const char *path, dx_volume *vol, dx_err *err) {
    if (!path || !vol) return dx_fail(err, DX_EINVAL, "dx_nifti_load: NULL argument");
    memset(vol, 0, sizeof *vol);
    if (is_nifti2(path))
        return dx_fail(err, DX_EUNSUPPORTED, "%s: NIfTI-2 header (this build reads NIfTI-1 only)", path);
    nifti_image *nim = nifti_image_read(path, 1);
    if (!nim) return dx_fail(err, DX_EFORMAT, "%s: not a readable NIfTI-1/ANALYZE image", path);
    dx_status st = DX_OK;
    int nx = nim->nx, ny = nim->ny, nz = nim->nz;
    size_t extra = 1;
    for (int d = 4; d <= 7 && d <= nim->dim[0]; d++) extra *= nim->dim[d] > 0 ? (size_t)nim->dim[d] : 1;
    if (!nim->data) {
        st = dx_fail(err, DX_EFORMAT, "%s: no voxel data", path);
    } else if (nim->dim[0] < 1 || nx < 1 || ny < 1 || nz < 1 || extra != 1) {
        st = dx_fail(err, DX_EUNSUPPORTED, "%s: only 3-D scalar images are supported (dim %d: %d %d %d %d)", path,
                     nim->dim[0], nim->dim[1], nim->dim[2], nim->dim[3], nim->dim[4]);
    } else if (!supported_type(nim->datatype)) {
        st = dx_fail(err, DX_EUNSUPPORTED, "%s: voxel type %s is not supported", path,
                     nifti_datatype_string(nim->datatype));
    } else if ((size_t)nx * ny * nz > ((size_t)1 << 31)) {
        st = dx_fail(err, DX_ENOMEM, "%s: %d x %d x %d voxels is too large", path, nx, ny, nz);
    }
    if (st) {
        nifti_image_free(nim);
        return st;
    }

    /* Affine: sform if set, else qform (the library fills qto_xyz from pixdim
     * when qform_code is 0). RAS -> LPS: negate the x and y rows. */
    mat44 m = nim->sform_code > 0 ? nim->sto_xyz : nim->qto_xyz;
    double a[3][4];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++) a[r][c] = (r < 2 ? -1.0 : 1.0) * m.m[r][c];
    double dir[3][3], sp[3];
    for (int c = 0; c < 3; c++) {
        sp[c] = sqrt(a[0][c] * a[0][c] + a[1][c] * a[1][c] + a[2][c] * a[2][c]);
        if (!(sp[c] > 0) || !isfinite(sp[c])) {
            nifti_image_free(nim);
            return dx_fail(err, DX_EFORMAT, "%s: affine column %d is zero or not finite", path, c);
        }
        for (int r = 0; r < 3; r++) dir[c][r] = a[r][c] / sp[c];
    }
    double cr[3] = {dir[0][1] * dir[1][2] - dir[0][2] * dir[1][1], dir[0][2] * dir[1][0] - dir[0][0] * dir[1][2],
                    dir[0][0] * dir[1][1] - dir[0][1] * dir[1][0]};
    int flip = cr[0] * dir[2][0] + cr[1] * dir[2][1] + cr[2] * dir[2][2] < 0;

    vol->hu = malloc((size_t)nx * ny * nz * sizeof *vol->hu);
    if (!vol->hu) {
        nifti_image_free(nim);
        return dx_fail(err, DX_ENOMEM, "%s: %d x %d x %d voxels", path, nx, ny, nz);
    }
    /* scl_slope = 0 means "no scaling" in NIfTI-1. */
    double slope = nim->scl_slope != 0 && isfinite(nim->scl_slope) ? nim->scl_slope : 1.0;
    double inter = nim->scl_slope != 0 && isfinite(nim->scl_inter) ? nim->scl_inter : 0.0;
    size_t plane = (size_t)nx * ny;
    for (int k = 0; k < nz; k++) {
        size_t src = (size_t)(flip ? nz - 1 - k : k) * plane, dst = (size_t)k * plane;
        for (size_t i = 0; i < plane; i++) {
            double v = voxel(nim, src + i) * slope + inter;
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
    nifti_image_free(nim);
    return DX_OK;
}
