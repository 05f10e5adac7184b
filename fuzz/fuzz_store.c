/* fuzz_store.c - libFuzzer target: the store index decoder.
 *
 * Each input is decoded twice: as is (exercising size/CRC checks) and with
 * both CRCs recomputed over the input, so mutations reach the per-field
 * validators behind the checksum. Anything that decodes must survive an
 * encode -> decode round trip unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "io/store.h"

static void roundtrip(const dx_store_index *a) {
    void *buf;
    size_t len;
    dx_err err;
    if (dx_store_index_encode(a, &buf, &len, &err) != DX_OK) __builtin_trap();
    dx_store_index b;
    if (dx_store_index_decode(&b, buf, len, &err) != DX_OK) __builtin_trap();
    if (b.n_series != a->n_series || b.n_rows != a->n_rows ||
        memcmp(b.series, a->series, (size_t)a->n_series * sizeof *a->series) ||
        memcmp(b.rows, a->rows, (size_t)a->n_rows * sizeof *a->rows))
        __builtin_trap();
    dx_store_index_free(&b);
    free(buf);
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dx_store_index idx;
    dx_err err;
    if (dx_store_index_decode(&idx, data, size, &err) == DX_OK) {
        roundtrip(&idx);
        dx_store_index_free(&idx);
    }
    if (size < DX_STORE_HEADER_BYTES) return 0;
    uint8_t *fixed = malloc(size);
    memcpy(fixed, data, size);
    put_u32(fixed + 40, (uint32_t)crc32(0L, fixed + DX_STORE_HEADER_BYTES, (uInt)(size - DX_STORE_HEADER_BYTES)));
    put_u32(fixed + 44, (uint32_t)crc32(0L, fixed, 44));
    if (dx_store_index_decode(&idx, fixed, size, &err) == DX_OK) {
        roundtrip(&idx);
        dx_store_index_free(&idx);
    }
    free(fixed);
    return 0;
}
