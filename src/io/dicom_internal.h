/* dicom_internal.h - what the DICOM parser (dicom_parse.c) and the pixel
 * decoder (dicom_pixels.c) share; not part of the public API. */
#ifndef DX_DICOM_INTERNAL_H
#define DX_DICOM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "io/dx_dicom.h"

/* Transfer syntax UIDs we name. */
#define DX_TS_IMPLICIT_LE "1.2.840.10008.1.2"
#define DX_TS_EXPLICIT_LE "1.2.840.10008.1.2.1"
#define DX_TS_DEFLATED_LE "1.2.840.10008.1.2.1.99"
#define DX_TS_EXPLICIT_BE "1.2.840.10008.1.2.2"
#define DX_TS_RLE "1.2.840.10008.1.2.5"
#define DX_TS_JPEGLS_LOSSLESS "1.2.840.10008.1.2.4.80"
#define DX_TS_JPEGLS_NEAR "1.2.840.10008.1.2.4.81"
#define DX_TS_J2K_LOSSLESS "1.2.840.10008.1.2.4.90"
#define DX_TS_J2K "1.2.840.10008.1.2.4.91"

/* Decoded images larger than this many samples are refused (a sanity cap so a
 * forged Rows x Columns x Frames cannot make us allocate gigabytes). */
#define DX_DICOM_MAX_SAMPLES ((size_t)1 << 28)

/* Decodes f's PixelData (f->pixel_offset/pixel_length inside data[0..size))
 * into f->pixels. f's header fields must be filled. name is for messages. */
dx_status dx_dicom_decode_pixels_(dx_dicom_file *f, const uint8_t *data, size_t size, const char *name,
                                  dx_err *err);

#endif /* DX_DICOM_INTERNAL_H */
