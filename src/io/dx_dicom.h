/* dx_dicom.h - DICOM CT input: one-file reader, directory scan grouped by
 * series, series -> HU volume assembly, and NIfTI volume input.
 *
 * Reader: DICOM Part 10 (with or without the 128-byte preamble + "DICM"; also a
 * bare dataset with no file meta), Implicit VR LE, Explicit VR LE, Explicit VR
 * BE, Deflated Explicit VR LE. Pixel data: native 8/16-bit signed/unsigned; encapsulated RLE Lossless,
 * JPEG 2000 (if built with OpenJPEG) and JPEG-LS (if built with CharLS). Other
 * transfer syntaxes are refused with DX_EUNSUPPORTED naming the UID.
 * Every length is checked against the bytes that remain: a malformed file gives
 * DX_EFORMAT naming the file and the reason, never a crash.
 * See docs/dicom.md for the exact policy (HU conversion, clamp, what is refused). */
#ifndef DX_DICOM_H
#define DX_DICOM_H

#include <stddef.h>
#include <stdint.h>

#include "core/dx_error.h"
#include "io/dx_volume.h"

#define DX_DICOM_CS_MAX 68   /* code strings / short texts we keep (ImageType can be long) */

/* The header fields of one DICOM file that CT ingest needs. has_* flags say
 * whether the attribute was present (and parsed); absent numbers stay 0. */
typedef struct dx_dicom_file {
    char transfer_syntax[DX_UID_MAX]; /* (0002,0010); without file meta: guessed from the first element */
    char sop_class_uid[DX_UID_MAX];   /* (0008,0016) */
    char sop_instance_uid[DX_UID_MAX];/* (0008,0018) */
    char study_uid[DX_UID_MAX];       /* (0020,000D) */
    char series_uid[DX_UID_MAX];      /* (0020,000E) */
    char patient_id[DX_UID_MAX];      /* (0010,0020) */
    char modality[DX_DICOM_CS_MAX];   /* (0008,0060) */
    char image_type[DX_DICOM_CS_MAX]; /* (0008,0008), values joined by '\' */
    char photometric[DX_DICOM_CS_MAX];/* (0028,0004) */
    int has_ipp, has_iop, has_pixel_spacing, has_rescale, has_padding, has_padding_limit;
    double ipp[3];                    /* (0020,0032) mm, centre of first pixel */
    double iop[6];                    /* (0020,0037) row cosines (x dir), column cosines (y dir) */
    double pixel_spacing[2];          /* (0028,0030) [between rows (y), between columns (x)] */
    double slice_thickness;           /* (0018,0050) nominal only */
    int instance_number;              /* (0020,0013) */
    int rows, cols;                   /* (0028,0010), (0028,0011) */
    int samples_per_pixel;            /* (0028,0002), 1 if absent */
    int number_of_frames;             /* (0028,0008), 1 if absent */
    int bits_allocated, bits_stored, high_bit, pixel_representation; /* (0028,0100..0103) */
    double rescale_slope, rescale_intercept; /* (0028,1053), (0028,1052); 1 / 0 if absent */
    int32_t padding_value;            /* (0028,0120), stored units, signedness per PixelRepresentation */
    int32_t padding_limit;            /* (0028,0121) */
    double window_center, window_width; /* first values of (0028,1050)/(0028,1051), 0 if absent */
    /* Encoding. */
    int explicit_vr, big_endian;      /* of the main dataset */
    int encapsulated;                 /* PixelData has undefined length (fragments) */
    int has_pixel_data;
    size_t pixel_offset;              /* byte offset of the PixelData value in the file (in the inflated
                                         dataset for deflated files) */
    size_t pixel_length;              /* bytes of the value; encapsulated: through the sequence delimiter,
                                         or, in a header-only read, an upper bound (to the end of file) */
    /* Filled only when read with with_pixels: stored values (before rescale),
     * sign-extended or masked to bits_stored, [frames][rows][cols], owned. */
    int32_t *pixels;
} dx_dicom_file;

/* Reads one file. with_pixels=0 parses the header only (stops at PixelData);
 * with_pixels=1 also decodes the pixels into f->pixels. f is zeroed first. */
dx_status dx_dicom_read(dx_dicom_file *f, const char *path, int with_pixels, dx_err *err);
/* Same from memory (what the fuzzer drives). name appears in error messages. */
dx_status dx_dicom_read_memory(dx_dicom_file *f, const uint8_t *data, size_t size, int with_pixels,
                               const char *name, dx_err *err);
void dx_dicom_file_free(dx_dicom_file *f);

/* Stored value -> HU for one frame of f (rows*cols values into out):
 * HU = stored*slope + intercept, rounded to nearest; stored values equal to
 * PixelPaddingValue (or within [value, limit] when PixelPaddingRangeLimit is
 * present) become DX_HU_PAD; the result is clamped to [DX_HU_MIN, DX_HU_MAX]. */
dx_status dx_dicom_to_hu(const dx_dicom_file *f, int frame, int16_t *out, dx_err *err);

/* ---- directory scan ---------------------------------------------------- */

/* One CT slice file found by the scan (header facts needed to sort). */
typedef struct dx_series_slice {
    char *path;                       /* owned */
    char sop_uid[DX_UID_MAX];
    double ipp[3];
    double iop[6];
    int instance_number;
} dx_series_slice;

typedef struct dx_series {
    char patient_id[DX_UID_MAX];
    char study_uid[DX_UID_MAX];
    char series_uid[DX_UID_MAX];
    char transfer_syntax[DX_UID_MAX]; /* of the first file (logged per series) */
    int n_slices;
    dx_series_slice *slices;          /* owned, in discovery order (unsorted) */
} dx_series;

/* A file the scan did not keep, and why. reason is a short stable category
 * (fit for counting: "not a DICOM file", "unreadable DICOM (malformed input)",
 * "Modality 'MR' is not CT", "LOCALIZER image", "non-axial orientation",
 * "no PixelData", ...); detail says more about this file (the reader's error
 * message, the ImageType, the normal), or is empty. */
typedef struct dx_scan_skip {
    char *path;                       /* owned */
    char reason[160];
    char detail[256];
} dx_scan_skip;

typedef struct dx_series_list {
    int n_series;
    dx_series *series;                /* owned, sorted by (patient, study, series UID) */
    int n_skipped;
    dx_scan_skip *skipped;            /* owned */
} dx_series_list;

/* Walks root recursively (a single file is also accepted), reads headers only
 * and groups CT image files by (PatientID, StudyInstanceUID, SeriesInstanceUID)
 * - never by folder or file name. Kept: Modality CT, CT Image Storage or
 * Enhanced CT SOP class (or SOP class absent), not LOCALIZER in ImageType,
 * IPP + IOP present, |normal . z| >= 0.99, PixelData present. Everything else
 * (including unreadable / non-DICOM files) goes to out->skipped with a reason;
 * only I/O failure on root itself is an error. out is zeroed first. */
dx_status dx_dicom_scan(const char *root, dx_series_list *out, dx_err *err);
void dx_series_list_free(dx_series_list *l);

/* ---- series -> volume -------------------------------------------------- */

/* What dx_series_load found (filled even when it fails part-way, if non-NULL). */
typedef struct dx_series_report {
    int n_files;                      /* slices offered */
    int n_slices;                     /* slices in the volume */
    int n_duplicates;                 /* dropped: same position along the normal (within 0.01 mm) as a kept slice */
    int n_gaps;                       /* steps > 1.5 x median step */
    int nonuniform;                   /* any step differs from the median by > 1% + 0.01 mm */
    double spacing_median, spacing_min, spacing_max; /* of the kept steps along the normal, mm */
    double slice_thickness;           /* nominal, first slice */
    int descending;                   /* discovery order by InstanceNumber ran against +normal */
    double inplane_shift_max;         /* largest in-plane offset of a slice's IPP from the first's, mm:
                                         > ~0.01 means a sheared stack (gantry tilt), which the volume's
                                         origin + k*sz*normal geometry does not represent */
    char transfer_syntax[DX_UID_MAX];
} dx_series_report;

/* Loads a scanned series into vol (zeroed first; free with dx_volume_free).
 * Slices are ordered by position along normal = row x col (ascending); z
 * spacing is the median step of those positions (never SliceThickness). At a
 * duplicate position the slice with the lower InstanceNumber is kept (pylidc's
 * rule). Gaps and non-uniform spacing are reported in rep, not refused: the
 * volume keeps the real per-slice positions in vol->slice_z so callers can
 * decide (LUNA16-style filtering rejects rep->n_gaps > 0 || rep->nonuniform).
 * Refused (DX_EFORMAT): slices differing in Rows/Columns/IOP/PixelSpacing,
 * Samples per Pixel != 1, multi-frame files. vol->slice_z[k] is
 * ImagePositionPatient[2] of slice k; vol->sop_uids[k] its SOP Instance UID. */
dx_status dx_series_load(const dx_series *s, dx_volume *vol, dx_series_report *rep, dx_err *err);

/* ---- NIfTI ------------------------------------------------------------- */

/* Loads a NIfTI-1 image (.nii, .nii.gz, .hdr/.img; NIfTI-2 is DX_EUNSUPPORTED)
 * with values in HU (scl_slope/scl_inter applied, rounded, clamped to [DX_HU_MIN, DX_HU_MAX];
 * NaN -> DX_HU_PAD). Geometry from sform (if sform_code > 0) else qform else
 * pixdim, converted from RAS to LPS. The voxel grid is kept as stored (i -> x,
 * j -> y, k -> z) and direction holds the unit columns of the LPS affine, so the
 * dx_volume geometry formula reproduces the file's affine exactly. If the k
 * axis runs against row x col, slices are flipped so that normal = row x col
 * (dx_volume's convention). Only 3-D scalar images (dim[4] <= 1). sop_uids and
 * slice_z stay NULL. Every voxel byte the header announces (from vox_offset)
 * must be in the file: a truncated file or gzip stream, or a vox_offset past
 * the data or above 2^30, is DX_EFORMAT (never a zero-filled volume). */
dx_status dx_nifti_load(const char *path, dx_volume *vol, dx_err *err);
/* The same for a single-file .nii held in memory (uncompressed; what the
 * fuzzer drives). name appears in error messages (NULL: "NIfTI buffer"). */
dx_status dx_nifti_load_memory(const void *buf, size_t len, const char *name, dx_volume *vol, dx_err *err);

/* 1 when path names a NIfTI file (.nii or .nii.gz). */
int dx_nifti_path(const char *path);
/* Writes [nz][ny][nx] int16 HU (is_mask = 0) or uint8 (is_mask = 1) with the
 * dx_volume geometry (LPS) as NIfTI-1 (.nii, or gzip-compressed .nii.gz) in
 * RAS: sform = qform = the scanner affine, pixdim = spacing, mm. Atomic
 * (temporary file, fsync, rename). dx_nifti_load reads it back exactly. */
dx_status dx_nifti_save(const char *path, const void *vox, int is_mask, int nx, int ny, int nz,
                        const double spacing[3], const double origin[3], const double direction[9],
                        dx_err *err);

#endif /* DX_DICOM_H */
