/* fuzz_npy.c - libFuzzer target: arbitrary bytes through the .npy header
 * parser and size checks (dx_npy_parse_memory); on success the array is
 * converted to float32 when its dtype allows. Corpus: fuzz/corpus/npy/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/dx_npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size ? size : 1); /* exact-size copy: ASan sees over-reads */
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    dx_npy a;
    dx_err err = {0};
    if (dx_npy_parse_memory(&a, buf, size, &err) == DX_OK) {
        if (a.ndim < 0 || a.ndim > DX_NPY_MAX_DIMS) abort();
        size_t numel = 1;
        for (int i = 0; i < a.ndim; i++) numel *= (size_t)a.shape[i];
        if (numel != a.numel) abort();
        float *f = malloc(a.numel * sizeof *f + 1);
        if (f) {
            dx_npy_to_f32(&a, f, &err);
            free(f);
        }
        dx_npy_free(&a);
    } else if (err.msg[0] == '\0') {
        abort();
    }
    free(buf);
    return 0;
}
