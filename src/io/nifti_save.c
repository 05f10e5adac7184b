/* nifti_save.c - a volume or mask of the store -> NIfTI-1 (.nii, .nii.gz),
 * as MONAI, nnU-Net, ITK-SNAP and nibabel expect it: voxel order kept
 * (i = x fastest, the store's (z, y, x) C order), sform and qform both set to
 * the scanner affine (NIFTI_XFORM_SCANNER_ANAT), which is the store's DICOM
 * LPS affine with the x and y rows negated (NIfTI world is RAS), pixdim =
 * spacing, xyzt units mm. HU are int16 with scl_slope 1 / scl_inter 0; masks
 * uint8. Written to a temporary name beside the target, synced, then renamed,
 * so a reader never sees half a file. */
#include "io/dx_dicom.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <nifti1_io.h>

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

int dx_nifti_path(const char *path) { return has_suffix(path, ".nii") || has_suffix(path, ".nii.gz"); }

dx_status dx_nifti_save(const char *path, const void *vox, int is_mask, int nx, int ny, int nz,
                        const double spacing[3], const double origin[3], const double direction[9],
                        dx_err *err) {
    if (!dx_nifti_path(path)) return dx_fail(err, DX_EINVAL, "%s: a NIfTI file name ends in .nii or .nii.gz", path);
    if (nx <= 0 || ny <= 0 || nz <= 0) return dx_fail(err, DX_EINVAL, "%s: empty volume %dx%dx%d", path, nx, ny, nz);
    /* temporary name with the same extension, so that the library compresses it alike */
    const char *ext = has_suffix(path, ".nii.gz") ? ".nii.gz" : ".nii";
    char tmp[4200];
    int n = snprintf(tmp, sizeof tmp, "%.*s.tmp.%ld%s", (int)(strlen(path) - strlen(ext)), path, (long)getpid(), ext);
    if (n < 0 || (size_t)n >= sizeof tmp) return dx_fail(err, DX_EINVAL, "%s: path too long", path);

    int dims[8] = {3, nx, ny, nz, 1, 1, 1, 1};
    nifti_image *nim = nifti_make_new_nim(dims, is_mask ? DT_UINT8 : DT_INT16, 0);
    if (!nim) return dx_fail(err, DX_ENOMEM, "%s: NIfTI header", path);
    nim->data = (void *)vox; /* borrowed: detached before the image is freed */
    nim->dx = nim->pixdim[1] = (float)spacing[0];
    nim->dy = nim->pixdim[2] = (float)spacing[1];
    nim->dz = nim->pixdim[3] = (float)spacing[2];
    nim->xyz_units = NIFTI_UNITS_MM;
    nim->scl_slope = 1.0f;
    nim->scl_inter = 0.0f;
    /* LPS affine of dx_volume: column c = direction c * spacing c; RAS: rows x, y negated */
    mat44 m;
    memset(&m, 0, sizeof m);
    for (int r = 0; r < 3; r++) {
        const double sgn = r < 2 ? -1.0 : 1.0;
        for (int c = 0; c < 3; c++) m.m[r][c] = (float)(sgn * direction[3 * c + r] * spacing[c]);
        m.m[r][3] = (float)(sgn * origin[r]);
    }
    m.m[3][3] = 1.0f;
    nim->sform_code = NIFTI_XFORM_SCANNER_ANAT;
    nim->sto_xyz = m;
    nim->sto_ijk = nifti_mat44_inverse(m);
    nim->qform_code = NIFTI_XFORM_SCANNER_ANAT;
    nifti_mat44_to_quatern(m, &nim->quatern_b, &nim->quatern_c, &nim->quatern_d, &nim->qoffset_x, &nim->qoffset_y,
                           &nim->qoffset_z, NULL, NULL, NULL, &nim->qfac);
    nim->qto_xyz = nifti_quatern_to_mat44(nim->quatern_b, nim->quatern_c, nim->quatern_d, nim->qoffset_x,
                                          nim->qoffset_y, nim->qoffset_z, nim->dx, nim->dy, nim->dz, nim->qfac);
    nim->qto_ijk = nifti_mat44_inverse(nim->qto_xyz);
    if (nifti_set_filenames(nim, tmp, 0, 1)) {
        nim->data = NULL;
        nifti_image_free(nim);
        return dx_fail(err, DX_EIO, "%s: cannot name the NIfTI file", path);
    }
    nifti_image_write(nim); /* reports problems only on stderr: the file is checked below */
    nim->data = NULL;
    nifti_image_free(nim);
    const size_t bytes = (size_t)nx * ny * nz * (is_mask ? 1 : 2);
    int fd = open(tmp, O_RDONLY);
    off_t size = fd >= 0 ? lseek(fd, 0, SEEK_END) : -1;
    int synced = fd >= 0 && fsync(fd) == 0;
    if (fd >= 0) close(fd);
    /* an uncompressed file must hold header + data; a gzip one at least exists */
    if (fd < 0 || !synced || size <= 0 || (!has_suffix(path, ".gz") && (size_t)size < 352 + bytes)) {
        unlink(tmp);
        return dx_fail(err, DX_EIO, "%s: writing the NIfTI file failed", path);
    }
    if (rename(tmp, path)) {
        unlink(tmp);
        return dx_fail(err, DX_EIO, "%s: rename from %s failed", path, tmp);
    }
    return DX_OK;
}
