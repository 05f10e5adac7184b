/* fuzz_nifti.c - libFuzzer target for the NIfTI-1 reader: arbitrary bytes as a
 * single-file .nii through dx_nifti_load_memory (header decode, vox_offset and
 * size checks, byte order, every voxel type, affine -> LPS geometry). Inputs
 * that start with the gzip magic go through dx_nifti_load on a temp .nii.gz
 * instead, so short or corrupt gzip streams are exercised too. Errors are the
 * expected outcome; a crash, sanitizer report, leak, an error without a
 * message or a success with an inconsistent volume is a bug.
 * Corpus: fuzz/corpus/nifti/. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/dx_dicom.h"

static char tmp_path[64];

static void check_volume(const dx_volume *v) {
    if (v->nx < 1 || v->ny < 1 || v->nz < 1 || !v->hu) abort();
    for (int c = 0; c < 3; c++)
        if (!(v->spacing[c] > 0) || !isfinite(v->spacing[c]) || !isfinite(v->origin[c])) abort();
    size_t n = (size_t)v->nx * v->ny * v->nz;
    for (size_t i = 0; i < n; i++) /* every voxel was written, inside the HU range */
        if (v->hu[i] != DX_HU_PAD && (v->hu[i] < DX_HU_MIN || v->hu[i] > DX_HU_MAX)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dx_volume v;
    dx_err err = {0};
    dx_status st;
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
        if (!tmp_path[0]) snprintf(tmp_path, sizeof tmp_path, "/tmp/fuzz_nifti.%d.nii.gz", (int)getpid());
        FILE *f = fopen(tmp_path, "wb");
        if (!f) return 0;
        fwrite(data, 1, size, f);
        fclose(f);
        st = dx_nifti_load(tmp_path, &v, &err);
        unlink(tmp_path);
    } else {
        uint8_t *buf = malloc(size ? size : 1); /* exact-size copy: ASan sees over-reads */
        if (!buf) return 0;
        if (size) memcpy(buf, data, size);
        st = dx_nifti_load_memory(buf, size, "fuzz.nii", &v, &err);
        free(buf);
    }
    if (st == DX_OK) {
        check_volume(&v);
        dx_volume_free(&v);
    } else if (err.msg[0] == '\0') {
        abort();
    }
    return 0;
}
