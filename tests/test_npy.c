/* test_npy.c - .npy reader/writer: round trips for every dtype, the 1.0
 * layout (64-byte aligned data, '\n'-terminated header), hand-built 1.0/2.0/3.0
 * files, float32 conversion, malformed headers, atomic-write failure.
 *
 * Also a helper for tests/test_formats_peer.sh:
 *   test_npy --peer-write DIR   writes C files for numpy to check
 *   test_npy --peer-read DIR    checks files numpy wrote (manifest + raw references) */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dx_test.h"
#include "io/dx_npy.h"

static char g_dir[512];

static const char *tpath(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%s/%s", g_dir, name);
    return buf;
}

/* A file image: magic, version, header length field (2 or 4 bytes), header, data. */
static unsigned char *make_npy(int major, const char *hdr, const void *data, size_t dlen, size_t *len) {
    size_t h = strlen(hdr), lf = major == 1 ? 2 : 4;
    *len = 8 + lf + h + dlen;
    unsigned char *b = malloc(*len + 1);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    b[7] = 0;
    for (size_t i = 0; i < lf; i++) b[8 + i] = (unsigned char)(h >> (8 * i));
    memcpy(b + 8 + lf, hdr, h);
    if (dlen) memcpy(b + 8 + lf + h, data, dlen);
    return b;
}

static void test_round_trip(void) {
    char p[600];
    struct {
        const char *descr;
        size_t isz;
    } types[] = {{"<f4", 4}, {"<f8", 8}, {"<f2", 2}, {"<i2", 2}, {"<i4", 4}, {"<i8", 8},
                 {"|i1", 1}, {"|u1", 1}, {"<u2", 2}, {"<u4", 4}, {"<u8", 8}, {"|b1", 1}};
    int64_t shapes[4][3] = {{2, 3, 4}, {7}, {0, 5}, {0}};
    int ndims[4] = {3, 1, 2, 0};
    unsigned char src[24 * 8];
    for (size_t i = 0; i < sizeof src; i++) src[i] = (unsigned char)(i * 37 + 11);
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        for (int si = 0; si < 4; si++) {
            dx_err err = {0};
            tpath(p, sizeof p, "rt.npy");
            size_t numel = 1;
            for (int d = 0; d < ndims[si]; d++) numel *= (size_t)shapes[si][d];
            if (strcmp(types[ti].descr, "|b1") == 0)
                for (size_t i = 0; i < sizeof src; i++) src[i] &= 1;
            dx_status s = dx_npy_write(p, types[ti].descr, src, shapes[si], ndims[si], &err);
            CHECK(s == DX_OK, "write %s: %s", types[ti].descr, err.msg);
            unsigned char *raw;
            size_t len;
            CHECK(dx_test_read_file(p, &raw, &len) == 0, "raw");
            size_t hl = (size_t)raw[8] | (size_t)raw[9] << 8;
            CHECK(memcmp(raw, "\x93NUMPY\x01\x00", 8) == 0, "%s magic and version 1.0", types[ti].descr);
            CHECK((10 + hl) % 64 == 0 && raw[10 + hl - 1] == '\n', "%s: data at %zu, header ends with newline",
                  types[ti].descr, 10 + hl);
            CHECK(len == 10 + hl + numel * types[ti].isz, "%s: file length", types[ti].descr);
            CHECK(numel == 0 || memcmp(raw + 10 + hl, src, numel * types[ti].isz) == 0, "%s data bytes",
                  types[ti].descr);
            free(raw);
            dx_npy a;
            s = dx_npy_read(&a, p, &err);
            CHECK(s == DX_OK, "read %s: %s", types[ti].descr, err.msg);
            if (s) continue;
            CHECK(strcmp(a.descr, types[ti].descr) == 0 && a.ndim == ndims[si] && a.numel == numel,
                  "%s header back: %s ndim %d", types[ti].descr, a.descr, a.ndim);
            for (int d = 0; d < a.ndim; d++) CHECK(a.shape[d] == shapes[si][d], "dim %d", d);
            CHECK(numel == 0 || memcmp(a.data, src, numel * types[ti].isz) == 0, "%s values", types[ti].descr);
            dx_npy_free(&a);
        }
    }
    /* exact header text of a known case (numpy 1.24 writes the same bytes) */
    int64_t sh[2] = {3, 4};
    float z[12] = {0};
    dx_err err = {0};
    CHECK(dx_npy_write(p, "<f4", z, sh, 2, &err) == DX_OK, "write");
    unsigned char *raw;
    size_t len;
    dx_test_read_file(p, &raw, &len);
    const char *want = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }";
    CHECK(len == 128 + 48 && memcmp(raw + 10, want, strlen(want)) == 0, "header text %.60s", (char *)raw + 10);
    int spaces = 1;
    for (size_t i = 10 + strlen(want); i < 127; i++) spaces &= raw[i] == ' ';
    CHECK(spaces && raw[127] == '\n', "space padding then newline");
    free(raw);
    CHECK(dx_npy_write(p, ">f4", z, sh, 2, &err) == DX_EINVAL, "write refuses big-endian");
    CHECK(dx_npy_write(p, "<f4", z, sh, 9, &err) == DX_EINVAL, "write refuses rank 9");
}

static void test_versions_and_conversion(void) {
    /* hand-built 2.0 and 3.0 files, and every float32-convertible dtype */
    float f4[3] = {1.5f, -2.0f, 1e-40f};
    unsigned char *b;
    size_t len;
    dx_npy a;
    dx_err err = {0};
    for (int major = 1; major <= 3; major++) {
        b = make_npy(major, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }\n", f4, sizeof f4, &len);
        dx_status s = dx_npy_parse_memory(&a, b, len, &err);
        CHECK(s == DX_OK && a.ndim == 1 && a.shape[0] == 3 && memcmp(a.data, f4, sizeof f4) == 0,
              "version %d.0: %s", major, err.msg);
        if (!s) dx_npy_free(&a);
        free(b);
    }
    /* key order, quotes and spacing that numpy's literal_eval would also accept */
    b = make_npy(2, "{\"shape\":(1,3),\"fortran_order\":False,\"descr\":\"<f4\"}", f4, sizeof f4, &len);
    CHECK(dx_npy_parse_memory(&a, b, len, &err) == DX_OK && a.ndim == 2 && a.shape[1] == 3, "compact dict: %s",
          err.msg);
    dx_npy_free(&a);
    free(b);

    float out[4];
    double f8[3] = {0.1, -1e300, 3.0};
    b = make_npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", f8, sizeof f8, &len);
    CHECK(dx_npy_parse_memory(&a, b, len, &err) == DX_OK && dx_npy_to_f32(&a, out, &err) == DX_OK &&
              out[0] == 0.1f && isinf(out[1]) && out[1] < 0 && out[2] == 3.0f,
          "<f8 -> f32");
    dx_npy_free(&a);
    free(b);
    int16_t i2[3] = {-32768, 32767, -1};
    b = make_npy(1, "{'descr': '<i2', 'fortran_order': False, 'shape': (3,), }", i2, sizeof i2, &len);
    CHECK(dx_npy_parse_memory(&a, b, len, &err) == DX_OK && dx_npy_to_f32(&a, out, &err) == DX_OK &&
              out[0] == -32768.0f && out[1] == 32767.0f && out[2] == -1.0f,
          "<i2 -> f32");
    dx_npy_free(&a);
    free(b);
    int32_t i4[3] = {INT32_MIN, 16777217, 7};
    b = make_npy(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", i4, sizeof i4, &len);
    CHECK(dx_npy_parse_memory(&a, b, len, &err) == DX_OK && dx_npy_to_f32(&a, out, &err) == DX_OK &&
              out[0] == -2147483648.0f && out[1] == 16777216.0f && out[2] == 7.0f,
          "<i4 -> f32 (2^24+1 rounds to even)");
    dx_npy_free(&a);
    free(b);
    uint8_t u1[4] = {0, 1, 128, 255};
    b = make_npy(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }", u1, sizeof u1, &len);
    CHECK(dx_npy_parse_memory(&a, b, len, &err) == DX_OK && dx_npy_to_f32(&a, out, &err) == DX_OK &&
              out[2] == 128.0f && out[3] == 255.0f,
          "|u1 -> f32");
    dx_npy_free(&a);
    free(b);
    b = make_npy(1, "{'descr': '|i1', 'fortran_order': False, 'shape': (2, 2), }", u1, sizeof u1, &len);
    CHECK(dx_npy_parse_memory(&a, b, len, &err) == DX_OK && dx_npy_to_f32(&a, out, &err) == DX_OK &&
              out[2] == -128.0f && out[3] == -1.0f,
          "|i1 -> f32");
    dx_npy_free(&a);
    free(b);
    b = make_npy(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", f8, 8, &len);
    CHECK(dx_npy_parse_memory(&a, b, len, &err) == DX_OK && dx_npy_to_f32(&a, out, &err) == DX_EUNSUPPORTED,
          "<i8 is not converted: %s", err.msg);
    dx_npy_free(&a);
    free(b);

    /* dx_npy_read_f32 from a file, scalar shape */
    char p[600];
    tpath(p, sizeof p, "s.npy");
    int16_t one = -7;
    CHECK(dx_npy_write(p, "<i2", &one, NULL, 0, &err) == DX_OK, "write scalar");
    float *fd = NULL;
    int64_t shape[DX_NPY_MAX_DIMS];
    int nd = -1;
    CHECK(dx_npy_read_f32(p, &fd, shape, &nd, &err) == DX_OK && nd == 0 && fd && fd[0] == -7.0f, "scalar f32: %s",
          err.msg);
    free(fd);
    int64_t sh2[2] = {2, 2};
    float v4[4] = {1, 2, 3, 4};
    tpath(p, sizeof p, "f.npy");
    CHECK(dx_npy_write(p, "<f4", v4, sh2, 2, &err) == DX_OK, "write f4");
    CHECK(dx_npy_read_f32(p, &fd, shape, &nd, &err) == DX_OK && nd == 2 && shape[0] == 2 && shape[1] == 2 &&
              memcmp(fd, v4, sizeof v4) == 0,
          "f4 read_f32");
    free(fd);
    tpath(p, sizeof p, "absent.npy");
    CHECK(dx_npy_read_f32(p, &fd, shape, &nd, &err) == DX_ENOTFOUND && fd == NULL, "absent file: %s", err.msg);
}

static void expect_bad(const char *what, int major, const char *hdr, size_t dlen, dx_status want, const char *needle) {
    unsigned char data[64] = {0};
    size_t len;
    unsigned char *b = make_npy(major, hdr, data, dlen, &len);
    dx_npy a;
    dx_err err = {0};
    dx_status s = dx_npy_parse_memory(&a, b, len, &err);
    CHECK(s == want, "%s: status %s want %s (%s)", what, dx_status_name(s), dx_status_name(want), err.msg);
    CHECK(err.msg[0] && (!needle || strstr(err.msg, needle)), "%s: message [%s] lacks [%s]", what, err.msg,
          needle ? needle : "");
    CHECK(a.data == NULL, "%s: nothing allocated", what);
    if (s == DX_OK) dx_npy_free(&a);
    free(b);
}

#define H(d, f, s) "{'descr': " d ", 'fortran_order': " f ", 'shape': " s ", }"

static void test_malformed(void) {
    const int F = DX_EFORMAT, U = DX_EUNSUPPORTED;
    expect_bad("fortran order", 1, H("'<f4'", "True", "(2, 2)"), 16, U, "fortran_order");
    expect_bad("big-endian", 1, H("'>f4'", "False", "(2,)"), 8, U, "'>f4'");
    expect_bad("object dtype", 1, H("'|O'", "False", "(2,)"), 16, U, NULL);
    expect_bad("structured dtype", 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", 4, U,
               "structured");
    expect_bad("missing shape", 1, "{'descr': '<f4', 'fortran_order': False, }", 4, F, "'shape'");
    expect_bad("missing descr", 1, "{'fortran_order': False, 'shape': (1,), }", 4, F, "'descr'");
    expect_bad("extra key", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", 4, F, "'x'");
    expect_bad("duplicate key", 1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", 4, F,
               "duplicate");
    expect_bad("negative dim", 1, H("'<f4'", "False", "(-1,)"), 4, F, "shape");
    expect_bad("1-tuple without comma", 1, H("'<f4'", "False", "(4)"), 16, F, "(n,)");
    expect_bad("shape list", 1, H("'<f4'", "False", "[4]"), 16, F, "tuple");
    expect_bad("rank 9", 1, H("'|u1'", "False", "(1, 1, 1, 1, 1, 1, 1, 1, 1)"), 1, F, "rank");
    expect_bad("dim overflow", 1, H("'<f8'", "False", "(4611686018427387903, 4611686018427387903)"), 8, F,
               "overflow");
    expect_bad("dim 2^62", 1, H("'<f4'", "False", "(4611686018427387904,)"), 8, F, "shape");
    expect_bad("data short", 1, H("'<f4'", "False", "(3,)"), 8, F, "need 12");
    expect_bad("data long", 1, H("'<f4'", "False", "(1,)"), 8, F, "need 4");
    expect_bad("fortran_order string", 1, H("'<f4'", "'no'", "(1,)"), 4, F, "True/False");
    expect_bad("Truex", 1, H("'<f4'", "Truex", "(1,)"), 4, F, "True/False");
    expect_bad("unterminated string", 1, "{'descr': '<f4", 0, F, NULL);
    expect_bad("junk after dict", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} junk", 4, F, "trailing");
    expect_bad("not a dict", 1, "('<f4', False, (1,))", 4, F, "dict");
    expect_bad("empty header", 1, "", 0, F, NULL);
    expect_bad("unclosed dict", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", 4, F, NULL);
    expect_bad("escape in string", 1, H("'<f\\4'", "False", "(1,)"), 4, F, NULL);

    unsigned char b[64];
    dx_npy a;
    dx_err err = {0};
    memcpy(b, "\x93NUMPX\x01\x00\x00\x00", 10);
    CHECK(dx_npy_parse_memory(&a, b, 10, &err) == DX_EFORMAT && strstr(err.msg, "magic"), "bad magic: %s", err.msg);
    memcpy(b, "\x93NUMPY\x04\x00\x00\x00", 10);
    CHECK(dx_npy_parse_memory(&a, b, 10, &err) == DX_EUNSUPPORTED && strstr(err.msg, "4.0"), "version 4: %s", err.msg);
    memcpy(b, "\x93NUMPY\x01\x00\xff\xff{", 11);
    CHECK(dx_npy_parse_memory(&a, b, 11, &err) == DX_EFORMAT && strstr(err.msg, "past the end"), "hlen past end: %s",
          err.msg);
    memcpy(b, "\x93NUMPY\x02\x00\xff\xff\xff\xff{", 13);
    CHECK(dx_npy_parse_memory(&a, b, 13, &err) == DX_EFORMAT && strstr(err.msg, "exceeds"), "hlen 4 GB: %s", err.msg);
    CHECK(dx_npy_parse_memory(&a, b, 9, &err) == DX_EFORMAT, "truncated preamble: %s", err.msg);
    memcpy(b, "\x93NUMPY\x01\x00\x05\x00{'a\0'}", 15);
    CHECK(dx_npy_parse_memory(&a, b, 15, &err) == DX_EFORMAT && strstr(err.msg, "NUL"), "NUL: %s", err.msg);

    /* every proper prefix of a valid file is refused */
    char p[600];
    tpath(p, sizeof p, "trunc.npy");
    int64_t sh[1] = {5};
    float v[5] = {1, 2, 3, 4, 5};
    unsigned char *raw;
    size_t len;
    CHECK(dx_npy_write(p, "<f4", v, sh, 1, &err) == DX_OK && dx_test_read_file(p, &raw, &len) == 0, "write");
    int refused = 0;
    for (size_t cut = 0; cut < len; cut++) {
        dx_status s = dx_npy_parse_memory(&a, raw, cut, &err);
        if (s == DX_OK) dx_npy_free(&a);
        refused += s == DX_EFORMAT;
    }
    CHECK(refused == (int)len, "all %zu prefixes refused (%d)", len, refused);
    free(raw);
    /* and the file reader says which file */
    tpath(p, sizeof p, "bad.npy");
    FILE *f = fopen(p, "wb");
    fwrite("\x93NUMPY\x01\x00\x02\x00{}", 1, 12, f);
    fclose(f);
    CHECK(dx_npy_read(&a, p, &err) == DX_EFORMAT && strstr(err.msg, "bad.npy"), "file error names the file: %s",
          err.msg);
}

static void test_write_failures(void) {
    char p[600], tmp[700];
    tpath(p, sizeof p, "keep.npy");
    int64_t sh[1] = {4};
    float v[4] = {1, 2, 3, 4};
    dx_err err = {0};
    CHECK(dx_npy_write(p, "<f4", v, sh, 1, &err) == DX_OK, "first write");
    size_t n = 1 << 16;
    float *big = calloc(n, sizeof *big);
    int64_t shb[1] = {(int64_t)n};
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 4096;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &lim);
    dx_status s = dx_npy_write(p, "<f4", big, shb, 1, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    CHECK(s == DX_EIO && strstr(err.msg, strerror(EFBIG)), "size limit: %s", err.msg);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", p, (long)getpid());
    CHECK(access(tmp, F_OK) != 0, "temp file removed");
    float *fd = NULL;
    int64_t shape[DX_NPY_MAX_DIMS];
    int nd;
    CHECK(dx_npy_read_f32(p, &fd, shape, &nd, &err) == DX_OK && nd == 1 && shape[0] == 4 && fd[3] == 4.0f,
          "previous file intact");
    free(fd);
    free(big);
    tpath(p, sizeof p, "no/such/dir/x.npy");
    CHECK(dx_npy_write(p, "<f4", v, sh, 1, &err) == DX_EIO && strstr(err.msg, "no/such/dir"), "bad dir: %s", err.msg);
}

/* ------------------------------------------------------------------------ */
/* peer mode */

/* Values both sides can compute exactly: dyadic rationals / small integers. */
static double pattern(int i) { return (double)((i * 7919) % 1000 - 500) / 64.0; }

static int peer_write(const char *dir) {
    char p[700];
    dx_err err = {0};
    float f4[15];
    double f8[7];
    int16_t i2[6];
    uint8_t u1[6];
    int32_t i4[4] = {INT32_MIN, -1, 0, INT32_MAX};
    for (int i = 0; i < 15; i++) f4[i] = (float)pattern(i);
    for (int i = 0; i < 7; i++) f8[i] = pattern(i) * 1e-3; /* not dyadic: python must compute it the same way */
    for (int i = 0; i < 6; i++) i2[i] = (int16_t)(i * 10000 - 30000), u1[i] = (uint8_t)(i * 51);
    int64_t s35[2] = {3, 5}, s7[1] = {7}, s23[2] = {2, 3}, s2x[3] = {1, 2, 3}, s0[2] = {0, 3}, s4[1] = {4};
    double one = 0.5;
    struct {
        const char *name, *descr;
        const void *data;
        const int64_t *shape;
        int ndim;
    } w[] = {{"c_f4", "<f4", f4, s35, 2},  {"c_f8", "<f8", f8, s7, 1},   {"c_i2", "<i2", i2, s23, 2},
             {"c_u1", "|u1", u1, s2x, 3},  {"c_empty", "<f4", f4, s0, 2}, {"c_scalar", "<f8", &one, NULL, 0},
             {"c_i4", "<i4", i4, s4, 1}};
    for (size_t i = 0; i < sizeof w / sizeof *w; i++) {
        snprintf(p, sizeof p, "%s/%s.npy", dir, w[i].name);
        if (dx_npy_write(p, w[i].descr, w[i].data, w[i].shape, w[i].ndim, &err)) {
            fprintf(stderr, "peer-write: %s\n", err.msg);
            return 1;
        }
    }
    return 0;
}

/* npy_manifest.txt lines: "name descr ndim d0 d1 ..."; name.npy, name.raw (tobytes),
 * name.f32 (astype(float32).tobytes() or absent if not convertible). */
static int peer_read(const char *dir) {
    char p[700], line[512];
    snprintf(p, sizeof p, "%s/npy_manifest.txt", dir);
    FILE *m = fopen(p, "r");
    CHECK(m != NULL, "manifest %s", p);
    if (!m) return dx_test_summary();
    int seen = 0;
    while (fgets(line, sizeof line, m)) {
        char name[128], descr[16];
        int nd, pos;
        if (sscanf(line, "%127s %15s %d%n", name, descr, &nd, &pos) != 3) continue;
        int64_t shape[8] = {0};
        char *q = line + pos;
        for (int d = 0; d < nd && d < 8; d++) shape[d] = strtoll(q, &q, 10);
        seen++;
        dx_npy a;
        dx_err err = {0};
        snprintf(p, sizeof p, "%s/%s.npy", dir, name);
        dx_status s = dx_npy_read(&a, p, &err);
        CHECK(s == DX_OK, "%s: %s", name, err.msg);
        if (s) continue;
        CHECK(strcmp(a.descr, descr) == 0 && a.ndim == nd, "%s: descr %s ndim %d", name, a.descr, a.ndim);
        for (int d = 0; d < nd; d++) CHECK(a.shape[d] == shape[d], "%s dim %d", name, d);
        unsigned char *ref;
        size_t rlen;
        snprintf(p, sizeof p, "%s/%s.raw", dir, name);
        if (dx_test_read_file(p, &ref, &rlen) == 0) {
            size_t isz = (size_t)atoi(descr + 2);
            CHECK(rlen == a.numel * isz && (rlen == 0 || memcmp(ref, a.data, rlen) == 0), "%s: bytes equal numpy's",
                  name);
            free(ref);
        } else CHECK(0, "missing %s", p);
        snprintf(p, sizeof p, "%s/%s.f32", dir, name);
        if (dx_test_read_file(p, &ref, &rlen) == 0) {
            float *fd = NULL;
            int64_t sh[DX_NPY_MAX_DIMS];
            int nd2;
            snprintf(p, sizeof p, "%s/%s.npy", dir, name);
            s = dx_npy_read_f32(p, &fd, sh, &nd2, &err);
            CHECK(s == DX_OK && nd2 == nd, "%s read_f32: %s", name, err.msg);
            CHECK(s || (rlen == a.numel * 4 && (rlen == 0 || memcmp(ref, fd, rlen) == 0)),
                  "%s: float32 equals numpy astype(float32)", name);
            free(fd);
            free(ref);
        }
        dx_npy_free(&a);
    }
    fclose(m);
    CHECK(seen >= 10, "manifest lists %d arrays", seen);
    return dx_test_summary();
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--peer-write") == 0) return peer_write(argv[2]);
    if (argc == 3 && strcmp(argv[1], "--peer-read") == 0) return peer_read(argv[2]);
    const char *bin = getenv("DINOX_BINARY_DIR");
    snprintf(g_dir, sizeof g_dir, "%s/test_npy.tmp.%ld", bin ? bin : "/tmp", (long)getpid());
    mkdir(g_dir, 0755);
    test_round_trip();
    test_versions_and_conversion();
    test_malformed();
    test_write_failures();
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return dx_test_summary();
}
