/* bench_ingest_decode.c - how fast DICOM CT slices become HU: in-memory
 * decode of one 512x512 slice, then scan + load of a synthetic series on disk.
 * usage: bench_ingest_decode [n_slices=128] [dir=/tmp]
 * Prints figures only; never run as a test. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io/dx_dicom.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

typedef struct buf {
    uint8_t *b;
    size_t n, cap;
} buf;

static void put(buf *w, const void *p, size_t n) {
    if (w->n + n > w->cap) {
        w->cap = (w->n + n) * 2;
        w->b = realloc(w->b, w->cap);
        if (!w->b) exit(1);
    }
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

/* Explicit VR LE element with a short (2-byte) length, value padded to even. */
static void el(buf *w, uint16_t g, uint16_t e, const char *vr, const void *v, size_t len) {
    uint8_t h[8] = {g & 255, g >> 8, e & 255, e >> 8, (uint8_t)vr[0], (uint8_t)vr[1], 0, 0};
    size_t pad = len % 2;
    h[6] = (uint8_t)((len + pad) & 255), h[7] = (uint8_t)((len + pad) >> 8);
    put(w, h, 8);
    put(w, v, len);
    if (pad) put(w, " ", 1);
}
static void el_s(buf *w, uint16_t g, uint16_t e, const char *vr, const char *s) { el(w, g, e, vr, s, strlen(s)); }
static void el_u(buf *w, uint16_t g, uint16_t e, uint16_t v) {
    uint8_t b[2] = {v & 255, v >> 8};
    el(w, g, e, "US", b, 2);
}

/* One 512x512 LIDC-like slice (16-bit signed, padding -2000). */
static void make_slice(buf *w, int k, const int16_t *px) {
    uint8_t pre[128] = {0};
    w->n = 0;
    put(w, pre, 128);
    put(w, "DICM", 4);
    el_s(w, 0x0002, 0x0010, "UI", "1.2.840.10008.1.2.1");
    char s[64];
    el_s(w, 0x0008, 0x0008, "CS", "ORIGINAL\\PRIMARY\\AXIAL");
    el_s(w, 0x0008, 0x0016, "UI", "1.2.840.10008.5.1.4.1.1.2");
    snprintf(s, sizeof s, "1.2.3.4.%d", k);
    el_s(w, 0x0008, 0x0018, "UI", s);
    el_s(w, 0x0008, 0x0060, "CS", "CT");
    el_s(w, 0x0010, 0x0020, "LO", "BENCH-0001");
    el_s(w, 0x0020, 0x000D, "UI", "1.2.3");
    el_s(w, 0x0020, 0x000E, "UI", "1.2.3.4");
    snprintf(s, sizeof s, "%d", k + 1);
    el_s(w, 0x0020, 0x0013, "IS", s);
    snprintf(s, sizeof s, "-180\\-180\\%.2f", -1.25 * k);
    el_s(w, 0x0020, 0x0032, "DS", s);
    el_s(w, 0x0020, 0x0037, "DS", "1\\0\\0\\0\\1\\0");
    el_u(w, 0x0028, 0x0002, 1);
    el_u(w, 0x0028, 0x0010, 512);
    el_u(w, 0x0028, 0x0011, 512);
    el_s(w, 0x0028, 0x0030, "DS", "0.703125\\0.703125");
    el_u(w, 0x0028, 0x0100, 16);
    el_u(w, 0x0028, 0x0101, 16);
    el_u(w, 0x0028, 0x0102, 15);
    el_u(w, 0x0028, 0x0103, 1);
    el_u(w, 0x0028, 0x0120, (uint16_t)-2000);
    el_s(w, 0x0028, 0x1052, "DS", "-1024");
    el_s(w, 0x0028, 0x1053, "DS", "1");
    uint32_t len = 512 * 512 * 2;
    uint8_t h[12] = {0xE0, 0x7F, 0x10, 0x00, 'O', 'W', 0, 0, len & 255, (len >> 8) & 255, (len >> 16) & 255, len >> 24};
    put(w, h, 12);
    put(w, px, len); /* little-endian host assumed (x86) */
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 128;
    const char *tmp = argc > 2 ? argv[2] : "/tmp";
    int16_t *px = malloc(512 * 512 * sizeof *px);
    uint32_t r = 1;
    for (int i = 0; i < 512 * 512; i++) {
        int y = i / 512 - 256, x = i % 512 - 256;
        r = r * 1664525u + 1013904223u;
        px[i] = x * x + y * y > 250 * 250 ? -2000 : (int16_t)(1024 + (int)(r >> 22) - 512);
    }
    buf w = {0};
    make_slice(&w, 0, px);

    /* 1. In-memory decode + HU of one slice. */
    dx_dicom_file f;
    dx_err err = {0};
    int16_t *hu = malloc(512 * 512 * sizeof *hu);
    int reps = 200;
    double t0 = now_s();
    for (int i = 0; i < reps; i++) {
        if (dx_dicom_read_memory(&f, w.b, w.n, 1, "bench", &err) || dx_dicom_to_hu(&f, 0, hu, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        dx_dicom_file_free(&f);
    }
    double t = now_s() - t0;
    printf("decode+HU in memory: %.3f ms/slice (%.0f MB/s of pixel data)\n", 1e3 * t / reps,
           reps * 0.5 / t);

    /* 2. Scan + load of a series on disk (page cache warm after writing). */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/dinox-bench-ingest-XXXXXX", tmp);
    if (!mkdtemp(dir)) return 1;
    for (int k = 0; k < n; k++) {
        make_slice(&w, k, px);
        char p[4200];
        snprintf(p, sizeof p, "%s/%05d.dcm", dir, (k * 7919) % n); /* names unrelated to order */
        FILE *fp = fopen(p, "wb");
        if (!fp || fwrite(w.b, 1, w.n, fp) != w.n) return 1;
        fclose(fp);
    }
    dx_series_list l;
    t0 = now_s();
    if (dx_dicom_scan(dir, &l, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double ts = now_s() - t0;
    dx_volume v;
    dx_series_report rep;
    t0 = now_s();
    if (l.n_series != 1 || dx_series_load(&l.series[0], &v, &rep, &err)) {
        fprintf(stderr, "load: %s\n", err.msg);
        return 1;
    }
    double tl = now_s() - t0;
    printf("scan (headers only): %d files in %.3f s (%.0f files/s)\n", n, ts, n / ts);
    printf("load (decode, sort, HU): %d slices 512x512 in %.3f s (%.0f slices/s, %.0f MB/s)\n", v.nz, tl, v.nz / tl,
           v.nz * 0.5 / tl);
    dx_volume_free(&v);
    dx_series_list_free(&l);
    for (int k = 0; k < n; k++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%05d.dcm", dir, k);
        unlink(p);
    }
    rmdir(dir);
    free(px), free(hu), free(w.b);
    return 0;
}
