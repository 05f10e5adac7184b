/* fuzz_safetensors.c - libFuzzer target: arbitrary bytes through the
 * safetensors validator (dx_st_open_memory); on success every tensor is
 * looked up and converted, so any pointer the validator let through is read
 * end to end under ASan. Corpus: fuzz/corpus/safetensors/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/dx_safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* A private copy of exactly `size` bytes: ASan then flags any read past the end. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    dx_safetensors st;
    dx_err err = {0};
    if (dx_st_open_memory(&st, buf, size, &err) == DX_OK) {
        for (int i = 0; i < st.n; i++) {
            const dx_st_tensor *t = &st.t[i];
            if (dx_st_find(&st, t->name) != t) abort(); /* names are unique after validation */
            if (t->numel > (1u << 20)) continue;
            float *f = malloc(t->numel * sizeof *f + 1);
            if (f) {
                dx_status s = dx_st_to_f32(t, f, t->numel, &err);
                if (s == DX_OK) s = dx_st_load_f32(&st, t->name, t->shape, t->ndim, f, &err);
                (void)s;
                free(f);
            }
            /* the last byte of every tensor is inside the buffer */
            if (t->nbytes) {
                volatile uint8_t last = ((const uint8_t *)t->data)[t->nbytes - 1];
                (void)last;
            }
        }
        dx_st_close(&st);
    } else if (err.msg[0] == '\0') {
        abort(); /* every failure carries a message */
    }
    free(buf);
    return 0;
}
