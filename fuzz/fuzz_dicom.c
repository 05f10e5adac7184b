/* fuzz_dicom.c - libFuzzer target for the DICOM reader: parses the input as a
 * file (header only, then with pixel decoding) and converts to HU. Any crash,
 * sanitizer report or leak is a bug; errors are the expected outcome.
 * Seeds: fuzz/corpus/dicom/.
 *
 * The reader's sources are compiled into this translation unit so that they
 * carry the fuzzer's coverage instrumentation (CMake adds -fsanitize=fuzzer
 * to the fuzz target only, not to libdinox); the linker then takes these
 * definitions instead of libdinox's copies. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "io/dx_dicom.h"

#include "../src/io/dicom_parse.c"
#include "../src/io/dicom_pixels.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dx_dicom_file f;
    dx_err err;
    if (dx_dicom_read_memory(&f, data, size, 0, "fuzz", &err) == DX_OK) dx_dicom_file_free(&f);
    if (dx_dicom_read_memory(&f, data, size, 1, "fuzz", &err) == DX_OK) {
        size_t npx = (size_t)f.rows * (size_t)f.cols;
        int16_t *hu = malloc(npx ? npx * sizeof *hu : 1);
        if (hu) {
            for (int fr = 0; fr < f.number_of_frames && fr < 4; fr++) dx_dicom_to_hu(&f, fr, hu, &err);
            free(hu);
        }
        dx_dicom_file_free(&f);
    }
    return 0;
}
