/* test_safetensors.c - safetensors reader/writer: round trips, hand-built
 * files, exact F16/BF16/F64 conversion against arithmetic references,
 * dx_st_load_f32 messages, every malformed-header case -> DX_EFORMAT, and
 * atomic-write failure behaviour.
 *
 * Also a helper for tests/test_formats_peer.sh:
 *   test_safetensors --peer-write DIR   writes C files for the python side
 *   test_safetensors --peer-read DIR    checks files python wrote */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dx_test.h"
#include "io/dx_npy.h"
#include "io/dx_safetensors.h"

static char g_dir[512];

static const char *tpath(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%s/%s", g_dir, name);
    return buf;
}

/* A file image: u64 n | header | data_len bytes of 0xAB. */
static unsigned char *make_file(const char *hdr, uint64_t n_claim, size_t data_len, size_t *len) {
    size_t h = strlen(hdr);
    *len = 8 + h + data_len;
    unsigned char *b = malloc(*len);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(n_claim >> (8 * i));
    memcpy(b + 8, hdr, h);
    memset(b + 8 + h, 0xAB, data_len);
    return b;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* ------------------------------------------------------------------------ */

static void test_conversions(void) {
    /* F16: every bit pattern against value = (-1)^s * (e ? 1024+m : m) * 2^(max(e,1)-25). */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float got = dx_f16_to_f32((uint16_t)h);
        uint32_t e = (h >> 10) & 31, m = h & 1023;
        double sign = (h & 0x8000) ? -1.0 : 1.0;
        if (e == 31) {
            if (m == 0) bad += !(isinf(got) && (got < 0) == (sign < 0));
            else bad += !(isnan(got) && ((f32_bits(got) >> 13) & 1023) == m); /* payload kept */
            continue;
        }
        double want = sign * ldexp(e ? 1024.0 + m : (double)m, (e ? (int)e : 1) - 25);
        if (f32_bits(got) != f32_bits((float)want)) bad++; /* bitwise: also checks -0 */
    }
    CHECK(bad == 0, "f16 -> f32: %d of 65536 patterns wrong", bad);
    CHECK(dx_f16_to_f32(0x0001) == ldexpf(1.0f, -24), "smallest f16 subnormal");
    CHECK(dx_f16_to_f32(0x03ff) == 1023.0f * ldexpf(1.0f, -24), "largest f16 subnormal");
    CHECK(dx_f16_to_f32(0x0400) == ldexpf(1.0f, -14), "smallest f16 normal");
    CHECK(dx_f16_to_f32(0x7bff) == 65504.0f, "f16 max");
    CHECK(dx_f16_to_f32(0x3555) == 0.333251953125f, "f16 1/3");
    CHECK(signbit(dx_f16_to_f32(0x8000)) && dx_f16_to_f32(0x8000) == 0.0f, "f16 -0");

    /* BF16: every pattern against (-1)^s * (e ? 128+m : m) * 2^(max(e,1)-134). */
    bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float got = dx_bf16_to_f32((uint16_t)h);
        uint32_t e = (h >> 7) & 255, m = h & 127;
        double sign = (h & 0x8000) ? -1.0 : 1.0;
        if (e == 255) {
            bad += m == 0 ? !(isinf(got) && (got < 0) == (sign < 0)) : !isnan(got);
            continue;
        }
        double want = sign * ldexp(e ? 128.0 + m : (double)m, (e ? (int)e : 1) - 134);
        if (f32_bits(got) != f32_bits((float)want)) bad++;
    }
    CHECK(bad == 0, "bf16 -> f32: %d of 65536 patterns wrong", bad);
    CHECK(dx_bf16_to_f32(0x3f80) == 1.0f && dx_bf16_to_f32(0xc040) == -3.0f, "bf16 1, -3");
    CHECK(dx_bf16_to_f32(0x0001) == ldexpf(1.0f, -133), "bf16 smallest subnormal");
    CHECK(dx_bf16_to_f32(0x7f7f) == 0x1.fep127f, "bf16 max");
}

/* A file written by hand (not by dx_st_write): known bytes -> known values,
 * data deliberately unaligned (header length 61). */
static void test_hand_built(void) {
    const char *hdr = "{\"w\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                      "\"v\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[4,12]},"
                      "\"h\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[12,14]},"
                      "\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[14,22]},"
                      "\"__metadata__\":{\"k\":\"v\"}}";
    size_t len;
    unsigned char *b = make_file(hdr, strlen(hdr), 22, &len);
    unsigned char *d = b + 8 + strlen(hdr);
    const unsigned char bytes[22] = {0x80, 0x3f, 0xc0, 0xbf,             /* bf16 1, -1.5 */
                                     0x00, 0x00, 0x20, 0x40, 0, 0, 0x80, 0xc0, /* f32 2.5, -4 */
                                     0x01, 0x00,                         /* f16 2^-24 */
                                     0x9a, 0x99, 0x99, 0x99, 0x99, 0x99, 0xb9, 0x3f}; /* f64 0.1 */
    memcpy(d, bytes, 22);
    dx_safetensors st;
    dx_err err = {0};
    dx_status s = dx_st_open_memory(&st, b, len, &err);
    CHECK(s == DX_OK, "hand-built file: %s", err.msg);
    if (s == DX_OK) {
        CHECK(st.n == 4, "4 tensors, got %d", st.n);
        CHECK(st.metadata_json && strstr(st.metadata_json, "\"k\":\"v\""), "metadata %s",
              st.metadata_json ? st.metadata_json : "(null)");
        float out[2];
        const dx_st_tensor *t = dx_st_find(&st, "w");
        CHECK(t && t->dtype == DX_ST_BF16 && t->ndim == 1 && t->shape[0] == 2, "w header");
        CHECK(t && dx_st_to_f32(t, out, 2, &err) == DX_OK && out[0] == 1.0f && out[1] == -1.5f, "bf16 values");
        int64_t sv[2] = {1, 2};
        CHECK(dx_st_load_f32(&st, "v", sv, 2, out, &err) == DX_OK && out[0] == 2.5f && out[1] == -4.0f,
              "unaligned f32 values: %s", err.msg);
        t = dx_st_find(&st, "h");
        CHECK(t && t->ndim == 0 && t->numel == 1, "scalar f16");
        CHECK(t && dx_st_to_f32(t, out, 1, &err) == DX_OK && out[0] == ldexpf(1.0f, -24), "f16 subnormal");
        t = dx_st_find(&st, "d");
        CHECK(t && dx_st_to_f32(t, out, 1, &err) == DX_OK && out[0] == 0.1f, "f64 0.1 rounds to 0.1f");
        CHECK(t && dx_st_to_f32(t, out, 2, &err) == DX_ESHAPE, "wrong destination count refused");
        CHECK(dx_st_find(&st, "nope") == NULL, "absent name");
        dx_st_close(&st);
        CHECK(st.t == NULL && st.n == 0, "close zeroes");
    }
    free(b);
}

static void test_round_trip(void) {
    char p[600];
    tpath(p, sizeof p, "rt.safetensors");
    float w[6] = {1.5f, -2.25f, 3e-38f, 1e30f, -0.0f, 7.0f};
    int64_t sw[2] = {2, 3};
    uint16_t hb[3] = {0x3f80, 0xff80, 0x0001}; /* bf16 1, -inf, subnormal */
    int64_t sh[1] = {3};
    uint16_t hh[2] = {0x7bff, 0x8001};
    int64_t shh[3] = {1, 1, 2};
    double dd[2] = {0.1, -1e300};
    int64_t sd[1] = {2};
    int64_t ii[2] = {-5, INT64_MAX};
    uint8_t uu[4] = {0, 1, 254, 255};
    int64_t su[2] = {2, 2};
    int64_t sz[2] = {0, 4};
    float sc = 42.0f;
    /* given order deliberately not alphabetical: data follows it, header keys are sorted */
    dx_st_entry e[] = {
        {"zeta.weight", DX_ST_F32, 2, sw, w}, {"alpha", DX_ST_BF16, 1, sh, hb},
        {"mid\"q\\uote\n", DX_ST_F16, 3, shh, hh}, {"dbl", DX_ST_F64, 1, sd, dd},
        {"ints", DX_ST_I64, 1, sd, ii}, {"bytes", DX_ST_U8, 2, su, uu},
        {"empty", DX_ST_F32, 2, sz, NULL}, {"scalar", DX_ST_F32, 0, NULL, &sc},
    };
    int n = (int)(sizeof e / sizeof e[0]);
    const char *meta[] = {"format", "pt", "b_key", "x\"y"};
    dx_err err = {0};
    dx_status s = dx_st_write(p, e, n, meta, 2, &err);
    CHECK(s == DX_OK, "write: %s", err.msg);

    /* raw layout: header length multiple of 8, key order, data in given order */
    unsigned char *raw;
    size_t len;
    CHECK(dx_test_read_file(p, &raw, &len) == 0, "read back raw");
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | raw[i];
    CHECK(hl % 8 == 0 && 8 + hl <= len, "header length %llu multiple of 8", (unsigned long long)hl);
    char *hdr = calloc(hl + 1, 1);
    memcpy(hdr, raw + 8, hl);
    const char *order[] = {"\"__metadata__\"", "\"alpha\"", "\"bytes\"", "\"dbl\"", "\"empty\"", "\"ints\"",
                           "\"mid\\\"q\\\\uote\\n\"", "\"scalar\"", "\"zeta.weight\""};
    const char *prev = hdr;
    for (size_t i = 0; i < sizeof order / sizeof *order; i++) {
        const char *q = strstr(hdr, order[i]);
        CHECK(q && q >= prev, "header key %s in sorted position", order[i]);
        if (q) prev = q;
    }
    CHECK(strstr(hdr, "{\"__metadata__\":{\"b_key\":\"x\\\"y\",\"format\":\"pt\"},") == hdr,
          "metadata first, keys sorted, escaped: %.80s", hdr);
    CHECK(strstr(hdr, "\"zeta.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}") != NULL,
          "first given tensor at offset 0");
    size_t total = 24 + 6 + 4 + 16 + 16 + 4 + 0 + 4;
    CHECK(len == 8 + hl + total, "no gaps: file %zu bytes, want %zu", len, (size_t)(8 + hl + total));
    free(hdr);
    free(raw);

    dx_safetensors st;
    s = dx_st_open(&st, p, &err);
    CHECK(s == DX_OK, "open: %s", err.msg);
    if (s) return;
    CHECK(st.n == n, "count %d", st.n);
    const unsigned char *prev_end = NULL;
    for (int i = 0; i < n; i++) {
        const dx_st_tensor *t = dx_st_find(&st, e[i].name);
        CHECK(t != NULL, "find %s", e[i].name);
        if (!t) continue;
        size_t numel = 1;
        for (int d = 0; d < e[i].ndim; d++) numel *= (size_t)e[i].shape[d];
        CHECK(t->dtype == e[i].dtype && t->ndim == e[i].ndim && t->numel == numel, "%s header", e[i].name);
        for (int d = 0; d < e[i].ndim; d++) CHECK(t->shape[d] == e[i].shape[d], "%s dim %d", e[i].name, d);
        CHECK(t->nbytes == numel * dx_st_dtype_size(e[i].dtype), "%s nbytes", e[i].name);
        CHECK(numel == 0 || memcmp(t->data, e[i].data, t->nbytes) == 0, "%s bytes identical", e[i].name);
        CHECK(!prev_end || (const unsigned char *)t->data == prev_end, "%s follows the previous tensor", e[i].name);
        prev_end = (const unsigned char *)t->data + t->nbytes;
    }
    CHECK(st.metadata_json && strstr(st.metadata_json, "\"format\":\"pt\""), "metadata read back");
    float out[6];
    CHECK(dx_st_load_f32(&st, "zeta.weight", sw, 2, out, &err) == DX_OK && memcmp(out, w, sizeof w) == 0,
          "f32 load bit-identical");
    CHECK(dx_st_load_f32(&st, "alpha", sh, 1, out, &err) == DX_OK && out[0] == 1.0f && isinf(out[1]) &&
              out[1] < 0 && out[2] == ldexpf(1.0f, -133),
          "bf16 load");
    CHECK(dx_st_load_f32(&st, "dbl", sd, 1, out, &err) == DX_OK && out[0] == 0.1f && isinf(out[1]) && out[1] < 0,
          "f64 load rounds, overflow to -inf");
    CHECK(dx_st_load_f32(&st, "empty", sz, 2, out, &err) == DX_OK, "empty tensor loads: %s", err.msg);
    CHECK(dx_st_load_f32(&st, "scalar", NULL, 0, out, &err) == DX_OK && out[0] == 42.0f, "scalar load");
    dx_st_close(&st);

    /* an empty file list is a valid file */
    CHECK(dx_st_write(p, NULL, 0, NULL, 0, &err) == DX_OK, "write empty: %s", err.msg);
    CHECK(dx_st_open(&st, p, &err) == DX_OK && st.n == 0 && st.metadata_json == NULL, "open empty: %s", err.msg);
    dx_st_close(&st);
}

static void test_messages(void) {
    char p[600];
    tpath(p, sizeof p, "W.safetensors");
    int64_t shq[2] = {1152, 384};
    float *q = calloc(1152 * 384, sizeof *q);
    q[1152 * 384 - 1] = 9.0f;
    int64_t si[1] = {3};
    int64_t iv[3] = {1, 2, 3};
    dx_st_entry e[] = {{"x", DX_ST_F32, 2, shq, q}, {"y", DX_ST_I64, 1, si, iv}};
    dx_err err = {0};
    CHECK(dx_st_write(p, e, 2, NULL, 0, &err) == DX_OK, "write: %s", err.msg);
    dx_safetensors st;
    if (dx_st_open(&st, p, &err) != DX_OK) {
        CHECK(0, "open: %s", err.msg);
        free(q);
        return;
    }
    char want[1200];
    dx_status s = dx_st_load_f32(&st, "blocks.3.attn.qkv.weight", shq, 2, q, &err);
    snprintf(want, sizeof want, "missing tensor 'blocks.3.attn.qkv.weight' in %s", p);
    CHECK(s == DX_ENOTFOUND && strcmp(err.msg, want) == 0, "missing: [%s]", err.msg);
    int64_t wrong[2] = {1152, 256};
    s = dx_st_load_f32(&st, "x", wrong, 2, q, &err);
    CHECK(s == DX_ESHAPE && strcmp(err.msg, "tensor 'x': shape [1152, 384] in file, [1152, 256] expected") == 0,
          "shape: [%s]", err.msg);
    int64_t flat[1] = {1152 * 384};
    s = dx_st_load_f32(&st, "x", flat, 1, q, &err);
    CHECK(s == DX_ESHAPE, "rank mismatch is a shape mismatch: %s", err.msg);
    s = dx_st_load_f32(&st, "y", si, 1, q, &err);
    CHECK(s == DX_ESHAPE && strcmp(err.msg, "tensor 'y': dtype I64 is not a float type") == 0, "dtype: [%s]",
          err.msg);
    memset(q, 0, 1152 * 384 * sizeof *q);
    s = dx_st_load_f32(&st, "x", shq, 2, q, &err);
    CHECK(s == DX_OK && q[1152 * 384 - 1] == 9.0f && q[0] == 0.0f, "load ok");
    dx_st_close(&st);
    free(q);

    tpath(p, sizeof p, "does-not-exist.safetensors");
    CHECK(dx_st_open(&st, p, &err) == DX_ENOTFOUND && strstr(err.msg, "does-not-exist"), "absent file: %s", err.msg);
}

/* Each malformed header must give DX_EFORMAT with a message and leave st empty. */
static void expect_bad(const char *what, const unsigned char *b, size_t len, const char *needle) {
    dx_safetensors st;
    dx_err err = {0};
    dx_status s = dx_st_open_memory(&st, b, len, &err);
    CHECK(s == DX_EFORMAT, "%s: status %s (%s)", what, dx_status_name(s), err.msg);
    CHECK(err.msg[0] && (!needle || strstr(err.msg, needle)), "%s: message [%s] lacks [%s]", what, err.msg,
          needle ? needle : "");
    CHECK(st.t == NULL && st.n == 0 && st.metadata_json == NULL, "%s: st left empty", what);
    if (s == DX_OK) dx_st_close(&st);
}

static void bad_hdr(const char *what, const char *hdr, size_t data_len, const char *needle) {
    size_t len;
    unsigned char *b = make_file(hdr, strlen(hdr), data_len, &len);
    expect_bad(what, b, len, needle);
    free(b);
}

#define ENTRY(name, dt, shape, offs) "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" offs "}"

static void test_malicious(void) {
    unsigned char tiny[7] = {1, 0, 0, 0, 0, 0, 0};
    expect_bad("7-byte file", tiny, sizeof tiny, "too short");
    size_t len;
    unsigned char *b = make_file("{}", 1000, 0, &len);
    expect_bad("header length past end", b, len, "past the end");
    free(b);
    b = make_file("{}", 1ull << 40, 0, &len);
    expect_bad("header length 2^40", b, len, "limit");
    free(b);
    b = make_file("{}", UINT64_MAX, 0, &len);
    expect_bad("header length u64 max", b, len, "limit");
    free(b);
    b = make_file("{}", 100000001ull, 16, &len);
    expect_bad("header length just above 100 MB", b, len, "limit");
    free(b);
    b = make_file("{}", 0, 0, &len);
    expect_bad("header length 0", b, len, NULL);
    free(b);
    b = make_file("{\"a\":{}}", 4, 0, &len);
    expect_bad("header cut inside JSON", b, len, "JSON");
    free(b);
    b = make_file("{\"x\":\"\0\"}", 9, 0, &len); /* make_file stops at the NUL: claim covers it */
    b = realloc(b, 8 + 9);
    memcpy(b + 8, "{\"x\":\"\0\"}", 9);
    expect_bad("NUL in header", b, 8 + 9, "NUL");
    free(b);

    bad_hdr("not JSON", "{garbage", 0, "JSON");
    bad_hdr("JSON array", "[1,2]", 0, NULL);
    bad_hdr("trailing bytes", "{} x", 0, "trailing");
    bad_hdr("two objects", "{}{}", 0, "trailing");
    bad_hdr("non-object entry", "{\"a\":5}", 0, "not an object");
    bad_hdr("array entry", "{\"a\":[1]}", 0, "not an object");
    bad_hdr("missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype");
    bad_hdr("non-string dtype", "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype");
    bad_hdr("unknown dtype", "{" ENTRY("a", "F33", "[1]", "[0,4]") "}", 4, "unknown dtype");
    bad_hdr("lowercase dtype", "{" ENTRY("a", "f32", "[1]", "[0,4]") "}", 4, "unknown dtype");
    bad_hdr("missing shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "shape");
    bad_hdr("shape not array", "{" ENTRY("a", "F32", "4", "[0,4]") "}", 4, "shape");
    bad_hdr("rank 9", "{" ENTRY("a", "U8", "[1,1,1,1,1,1,1,1,1]", "[0,1]") "}", 1, "rank 9");
    bad_hdr("negative dim", "{" ENTRY("a", "F32", "[-1]", "[0,4]") "}", 4, "dim 0");
    bad_hdr("fractional dim", "{" ENTRY("a", "F32", "[1.5]", "[0,4]") "}", 4, "dim 0");
    bad_hdr("string dim", "{" ENTRY("a", "F32", "[\"1\"]", "[0,4]") "}", 4, "dim 0");
    bad_hdr("dim 1e400 (inf)", "{" ENTRY("a", "F32", "[1e400]", "[0,4]") "}", 4, "dim 0");
    bad_hdr("dim beyond 2^53", "{" ENTRY("a", "F32", "[18014398509481984]", "[0,4]") "}", 4, "dim 0");
    bad_hdr("numel overflow", "{" ENTRY("a", "F32", "[4294967296,4294967296,4294967296]", "[0,4]") "}", 4,
            "overflow");
    bad_hdr("byte size overflow", "{" ENTRY("a", "F64", "[4294967296,1073741824]", "[0,8]") "}", 8, "overflow");
    bad_hdr("missing offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets");
    bad_hdr("one offset", "{" ENTRY("a", "F32", "[1]", "[0]") "}", 4, "data_offsets");
    bad_hdr("three offsets", "{" ENTRY("a", "F32", "[1]", "[0,4,8]") "}", 8, "data_offsets");
    bad_hdr("negative offset", "{" ENTRY("a", "F32", "[1]", "[-4,0]") "}", 4, "data_offsets");
    bad_hdr("fractional offset", "{" ENTRY("a", "F32", "[1]", "[0,4.5]") "}", 8, "data_offsets");
    bad_hdr("reversed offsets", "{" ENTRY("a", "F32", "[0]", "[4,0]") "}", 4, "reversed");
    bad_hdr("end past data", "{" ENTRY("a", "F32", "[2]", "[0,8]") "}", 4, "outside");
    bad_hdr("begin past data", "{" ENTRY("a", "F32", "[0]", "[9,9]") "}", 4, "outside");
    bad_hdr("huge end", "{" ENTRY("a", "F32", "[1]", "[0,9007199254740992]") "}", 4, "outside");
    bad_hdr("size mismatch", "{" ENTRY("a", "F32", "[2]", "[0,4]") "}", 8, "needs 8");
    bad_hdr("size mismatch dtype", "{" ENTRY("a", "F16", "[2]", "[0,8]") "}", 8, "needs 4");
    bad_hdr("overlap", "{" ENTRY("a", "F32", "[2]", "[0,8]") "," ENTRY("b", "F32", "[2]", "[4,12]") "}", 12,
            "overlap");
    bad_hdr("same range", "{" ENTRY("a", "F32", "[1]", "[0,4]") "," ENTRY("b", "F32", "[1]", "[0,4]") "}", 4,
            "overlap");
    bad_hdr("contained range",
            "{" ENTRY("a", "U8", "[16]", "[0,16]") "," ENTRY("b", "U8", "[2]", "[12,14]") "," ENTRY(
                "c", "U8", "[2]", "[4,6]") "}",
            16, "overlap");
    bad_hdr("duplicate name", "{" ENTRY("a", "F32", "[1]", "[0,4]") "," ENTRY("a", "F32", "[1]", "[4,8]") "}", 8,
            "duplicate tensor name 'a'");
    bad_hdr("duplicate key in entry", "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}",
            4, "duplicate key");
    bad_hdr("metadata not object", "{\"__metadata__\":[\"a\"]}", 0, "__metadata__");
    bad_hdr("metadata number value", "{\"__metadata__\":{\"a\":\"b\",\"n\":3}}", 0, "'n' is not a string");
    bad_hdr("metadata object value", "{\"__metadata__\":{\"o\":{}}}", 0, "not a string");
    bad_hdr("duplicate metadata", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate");
    bad_hdr("deep nesting", "{\"__metadata__\":{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}",
            0, NULL);

    /* good edge cases that must NOT fail */
    const char *ok[] = {
        "{}",
        "{}      ",
        "{ \"a\" : { \"shape\" : [ ] , \"data_offsets\" : [ 0 , 4 ] , \"dtype\" : \"I32\" , \"extra\" : 1 } }\n",
        "{" ENTRY("z", "F32", "[0,5]", "[4,4]") "," ENTRY("a", "BOOL", "[4]", "[0,4]") "}",
        "{" ENTRY("gap", "U8", "[1]", "[3,4]") "}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        b = make_file(ok[i], strlen(ok[i]), 4, &len);
        dx_safetensors st;
        dx_err err = {0};
        dx_status s = dx_st_open_memory(&st, b, len, &err);
        CHECK(s == DX_OK, "valid header %zu refused: %s", i, err.msg);
        if (!s) dx_st_close(&st);
        free(b);
    }
    /* a long name is well-formed but exceeds the fixed-size name field */
    char longhdr[400];
    snprintf(longhdr, sizeof longhdr, "{\"%0120d\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 7);
    b = make_file(longhdr, strlen(longhdr), 1, &len);
    dx_safetensors st;
    dx_err err = {0};
    CHECK(dx_st_open_memory(&st, b, len, &err) == DX_EUNSUPPORTED, "120-byte name: %s", err.msg);
    free(b);
    {
        const char *h = "{" ENTRY("a", "U32", "[1]", "[0,4]") "}";
        b = make_file(h, strlen(h), 4, &len);
        CHECK(dx_st_open_memory(&st, b, len, &err) == DX_EUNSUPPORTED && strstr(err.msg, "U32"),
              "U32 is unsupported, not malformed: %s", err.msg);
        free(b);
    }
    /* truncated files: every prefix of a valid file fails cleanly or is valid */
    int64_t sh[1] = {5};
    float v[5] = {1, 2, 3, 4, 5};
    dx_st_entry e1 = {"t", DX_ST_F32, 1, sh, v};
    char p[600];
    tpath(p, sizeof p, "trunc.safetensors");
    unsigned char *raw;
    size_t rlen;
    CHECK(dx_st_write(p, &e1, 1, NULL, 0, &err) == DX_OK && dx_test_read_file(p, &raw, &rlen) == 0, "write for truncation");
    int fails = 0;
    for (size_t cut = 0; cut < rlen; cut++) {
        dx_status s = dx_st_open_memory(&st, raw, cut, &err);
        if (s == DX_OK) dx_st_close(&st);
        fails += s == DX_EFORMAT;
    }
    CHECK(fails == (int)rlen, "all %zu proper prefixes refused (%d)", rlen, fails);
    free(raw);
}

static void test_write_failures(void) {
    char p[600], tmp[700];
    tpath(p, sizeof p, "keep.safetensors");
    int64_t sh[1] = {4};
    float v[4] = {1, 2, 3, 4};
    dx_st_entry e1 = {"keep", DX_ST_F32, 1, sh, v};
    dx_err err = {0};
    CHECK(dx_st_write(p, &e1, 1, NULL, 0, &err) == DX_OK, "first write: %s", err.msg);

    /* A file-size limit makes write() fail with EFBIG mid-file, the same path ENOSPC/EIO take. */
    size_t big_n = 1 << 16;
    float *big = calloc(big_n, sizeof *big);
    int64_t shb[1] = {(int64_t)big_n};
    dx_st_entry e2 = {"big", DX_ST_F32, 1, shb, big};
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 4096;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &lim);
    dx_status s = dx_st_write(p, &e2, 1, NULL, 0, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    CHECK(s == DX_EIO && strstr(err.msg, strerror(EFBIG)), "over the size limit: %s %s", dx_status_name(s), err.msg);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", p, (long)getpid());
    CHECK(access(tmp, F_OK) != 0, "temp file removed");
    dx_safetensors st;
    float out[4] = {0};
    CHECK(dx_st_open(&st, p, &err) == DX_OK && dx_st_load_f32(&st, "keep", sh, 1, out, &err) == DX_OK &&
              out[3] == 4.0f && st.n == 1,
          "previous file intact: %s", err.msg);
    dx_st_close(&st);
    free(big);

    tpath(p, sizeof p, "no/such/dir/x.safetensors");
    CHECK(dx_st_write(p, &e1, 1, NULL, 0, &err) == DX_EIO && strstr(err.msg, "no/such/dir"), "bad dir: %s", err.msg);
    dx_st_entry dup[2] = {e1, e1};
    tpath(p, sizeof p, "dup.safetensors");
    CHECK(dx_st_write(p, dup, 2, NULL, 0, &err) == DX_EINVAL && strstr(err.msg, "duplicate"), "dup names: %s", err.msg);
    const char *meta[] = {"k", "1", "k", "2"};
    CHECK(dx_st_write(p, &e1, 1, meta, 2, &err) == DX_EINVAL, "dup metadata: %s", err.msg);
    dx_st_entry mk = {"__metadata__", DX_ST_F32, 1, sh, v};
    CHECK(dx_st_write(p, &mk, 1, NULL, 0, &err) == DX_EINVAL, "reserved name: %s", err.msg);
    int64_t neg[1] = {-1};
    dx_st_entry ng = {"n", DX_ST_F32, 1, neg, v};
    CHECK(dx_st_write(p, &ng, 1, NULL, 0, &err) == DX_EINVAL, "negative dim: %s", err.msg);
    CHECK(access(p, F_OK) != 0, "refused writes create nothing");
}

/* ------------------------------------------------------------------------ */
/* peer mode (driven by tests/test_formats_peer.sh) */

static float pattern_f32(int i) { return (float)((i * 7919) % 1000 - 500) / 64.0f; }

static int peer_write(const char *dir) {
    char p[700];
    dx_err err = {0};
    static uint16_t allbits[65536];
    static float f16tab[65536], bf16tab[65536];
    for (int i = 0; i < 65536; i++) {
        allbits[i] = (uint16_t)i;
        f16tab[i] = dx_f16_to_f32((uint16_t)i);
        bf16tab[i] = dx_bf16_to_f32((uint16_t)i);
    }
    float f[15];
    for (int i = 0; i < 15; i++) f[i] = pattern_f32(i);
    int64_t s35[2] = {3, 5}, s64k[1] = {65536}, s256[2] = {256, 256}, s4[1] = {4}, s23[2] = {2, 3};
    int64_t iv[4] = {-1, 0, 1, INT64_MIN};
    uint8_t uv[6] = {0, 1, 2, 127, 128, 255};
    double dv = 0.1;
    dx_st_entry e[] = {
        {"b.f32", DX_ST_F32, 2, s35, f},      {"a.bf16", DX_ST_BF16, 1, s64k, allbits},
        {"c.f16", DX_ST_F16, 2, s256, allbits}, {"d.i64", DX_ST_I64, 1, s4, iv},
        {"e.u8", DX_ST_U8, 2, s23, uv},       {"s", DX_ST_F64, 0, NULL, &dv},
    };
    const char *meta[] = {"format", "pt", "dinox", "1"};
    snprintf(p, sizeof p, "%s/c.safetensors", dir);
    if (dx_st_write(p, e, 6, meta, 2, &err)) goto fail;
    snprintf(p, sizeof p, "%s/c_f16_as_f32.npy", dir);
    if (dx_npy_write(p, "<f4", f16tab, s64k, 1, &err)) goto fail;
    snprintf(p, sizeof p, "%s/c_bf16_as_f32.npy", dir);
    if (dx_npy_write(p, "<f4", bf16tab, s64k, 1, &err)) goto fail;
    return 0;
fail:
    fprintf(stderr, "peer-write: %s\n", err.msg);
    return 1;
}

/* py.safetensors + manifest lines "name reference-file": reference = f32 (or i64) raw bytes. */
static int peer_read(const char *dir) {
    char p[700], line[512];
    dx_err err = {0};
    snprintf(p, sizeof p, "%s/py_manifest.txt", dir);
    FILE *m = fopen(p, "r");
    CHECK(m != NULL, "manifest %s", p);
    if (!m) return dx_test_summary();
    snprintf(p, sizeof p, "%s/py.safetensors", dir);
    dx_safetensors st;
    dx_status s = dx_st_open(&st, p, &err);
    CHECK(s == DX_OK, "open python file: %s", err.msg);
    if (s) {
        fclose(m);
        return dx_test_summary();
    }
    int seen = 0;
    while (fgets(line, sizeof line, m)) {
        char name[128], dt[16];
        int nd;
        if (sscanf(line, "%127s %15s %d", name, dt, &nd) != 3) continue;
        const dx_st_tensor *t = dx_st_find(&st, name);
        CHECK(t != NULL, "python tensor %s present", name);
        if (!t) continue;
        seen++;
        CHECK(strcmp(dx_st_dtype_name(t->dtype), dt) == 0 && t->ndim == nd, "%s: dtype %s ndim %d", name,
              dx_st_dtype_name(t->dtype), t->ndim);
        unsigned char *ref;
        size_t rlen;
        snprintf(p, sizeof p, "%s/py_%s.ref", dir, name);
        if (dx_test_read_file(p, &ref, &rlen)) {
            CHECK(0, "reference %s", p);
            continue;
        }
        if (t->dtype == DX_ST_I64 || t->dtype == DX_ST_U8) {
            CHECK(rlen == t->nbytes && memcmp(ref, t->data, rlen) == 0, "%s raw bytes", name);
        } else {
            float *out = malloc(t->numel * sizeof *out + 1);
            CHECK(dx_st_to_f32(t, out, t->numel, &err) == DX_OK, "%s convert: %s", name, err.msg);
            CHECK(rlen == t->numel * 4 && memcmp(ref, out, rlen) == 0, "%s: float32 values bit-identical to torch",
                  name);
            free(out);
        }
        free(ref);
    }
    fclose(m);
    CHECK(seen == st.n && seen > 0, "every tensor of the python file checked (%d of %d)", seen, st.n);
    CHECK(st.metadata_json && strstr(st.metadata_json, "\"source\":\"python\""), "python metadata");
    dx_st_close(&st);
    return dx_test_summary();
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--peer-write") == 0) return peer_write(argv[2]);
    if (argc == 3 && strcmp(argv[1], "--peer-read") == 0) return peer_read(argv[2]);
    const char *bin = getenv("DINOX_BINARY_DIR");
    snprintf(g_dir, sizeof g_dir, "%s/test_safetensors.tmp.%ld", bin ? bin : "/tmp", (long)getpid());
    mkdir(g_dir, 0755);
    test_conversions();
    test_hand_built();
    test_round_trip();
    test_messages();
    test_malicious();
    test_write_failures();
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return dx_test_summary();
}
