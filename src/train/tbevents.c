/* tbevents.c - TFRecord framing + hand-encoded Event protobufs (see tbevents.h). */
#include "train/tbevents.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint32_t dx_crc32c(uint32_t crc, const void *data, size_t n) {
    /* table built on the stack per call: event records are small and rare */
    uint32_t t[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
        t[i] = c;
    }
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = t[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

uint32_t dx_tb_mask_crc(uint32_t c) { return ((c >> 15) | (c << 17)) + 0xa282ead8u; }

/* ---- protobuf encoding ------------------------------------------------------ */

typedef struct { uint8_t *p; size_t n, cap; int overflow; } pbuf;

static void put(pbuf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) { b->overflow = 1; return; }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void put_varint(pbuf *b, uint64_t v) {
    uint8_t t[10];
    int n = 0;
    do {
        t[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) t[n] |= 0x80;
        n++;
    } while (v);
    put(b, t, n);
}

static size_t varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) v >>= 7, n++;
    return n;
}

static void put_le(pbuf *b, uint64_t v, int bytes) {
    uint8_t t[8];
    for (int i = 0; i < bytes; i++) t[i] = (uint8_t)(v >> (8 * i));
    put(b, t, bytes);
}

size_t dx_tb_encode_event(uint8_t *buf, size_t cap, double wall_time, int64_t step, const char *file_version,
                          const char *const *tags, const float *values, int n) {
    pbuf b = {buf, 0, cap, 0};
    uint64_t bits;
    memcpy(&bits, &wall_time, 8);
    put_varint(&b, (1 << 3) | 1); /* wall_time: fixed64 */
    put_le(&b, bits, 8);
    put_varint(&b, (2 << 3) | 0); /* step: varint (two's complement for negatives) */
    put_varint(&b, (uint64_t)step);
    if (file_version) {
        size_t l = strlen(file_version);
        put_varint(&b, (3 << 3) | 2);
        put_varint(&b, l);
        put(&b, file_version, l);
    }
    if (n > 0) {
        /* Summary length = sum over values of (tag byte + len varint + Value bytes) */
        size_t sum_len = 0;
        for (int i = 0; i < n; i++) {
            size_t tl = strlen(tags[i]);
            size_t vl = 1 + varint_len(tl) + tl + 1 + 4;
            sum_len += 1 + varint_len(vl) + vl;
        }
        put_varint(&b, (5 << 3) | 2);
        put_varint(&b, sum_len);
        for (int i = 0; i < n; i++) {
            size_t tl = strlen(tags[i]);
            size_t vl = 1 + varint_len(tl) + tl + 1 + 4;
            put_varint(&b, (1 << 3) | 2); /* Summary.value */
            put_varint(&b, vl);
            put_varint(&b, (1 << 3) | 2); /* Value.tag */
            put_varint(&b, tl);
            put(&b, tags[i], tl);
            put_varint(&b, (2 << 3) | 5); /* Value.simple_value: fixed32 */
            uint32_t fb;
            memcpy(&fb, &values[i], 4);
            put_le(&b, fb, 4);
        }
    }
    return b.overflow ? 0 : b.n;
}

/* ---- file ------------------------------------------------------------------ */

static dx_status write_record(dx_tb_writer *w, const uint8_t *data, size_t n, dx_err *err) {
    uint8_t hdr[12];
    for (int i = 0; i < 8; i++) hdr[i] = (uint8_t)((uint64_t)n >> (8 * i));
    uint32_t hc = dx_tb_mask_crc(dx_crc32c(0, hdr, 8));
    for (int i = 0; i < 4; i++) hdr[8 + i] = (uint8_t)(hc >> (8 * i));
    uint32_t dc = dx_tb_mask_crc(dx_crc32c(0, data, n));
    uint8_t ft[4];
    for (int i = 0; i < 4; i++) ft[i] = (uint8_t)(dc >> (8 * i));
    if (fwrite(hdr, 1, 12, w->f) != 12 || fwrite(data, 1, n, w->f) != n || fwrite(ft, 1, 4, w->f) != 4)
        return dx_fail(err, DX_EIO, "write %s: %s", w->path, strerror(errno));
    return DX_OK;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

dx_status dx_tb_open(dx_tb_writer *w, const char *dir, dx_err *err) {
    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    double t = now_s();
    snprintf(w->path, sizeof w->path, "%s/events.out.tfevents.%lld.%s.%d", dir, (long long)t, host, (int)getpid());
    w->f = fopen(w->path, "wb");
    if (!w->f) return dx_fail(err, DX_EIO, "create %s: %s", w->path, strerror(errno));
    uint8_t buf[128];
    size_t n = dx_tb_encode_event(buf, sizeof buf, t, 0, "brain.Event:2", NULL, NULL, 0);
    dx_status s = write_record(w, buf, n, err);
    if (!s) s = dx_tb_flush(w, err);
    if (s) dx_tb_close(w);
    return s;
}

dx_status dx_tb_scalars(dx_tb_writer *w, int64_t step, double wall_time, const char *const *tags,
                        const float *values, int n, dx_err *err) {
    if (!w->f) return dx_fail(err, DX_EINVAL, "tb writer is closed");
    const char **t = malloc(sizeof(char *) * (n + 1));
    float *v = malloc(sizeof(float) * (n + 1));
    size_t cap = 64;
    int m = 0;
    if (!t || !v) {
        free(t);
        free(v);
        return dx_fail(err, DX_ENOMEM, "tb: out of memory");
    }
    for (int i = 0; i < n; i++)
        if (isfinite(values[i])) {
            t[m] = tags[i], v[m] = values[i], m++;
            cap += strlen(tags[i]) + 32;
        }
    uint8_t *buf = malloc(cap);
    dx_status s = DX_OK;
    size_t len = buf ? dx_tb_encode_event(buf, cap, wall_time, step, NULL, t, v, m) : 0;
    if (!len) s = dx_fail(err, DX_ENOMEM, "tb: encoding failed");
    else s = write_record(w, buf, len, err);
    free(buf);
    free(t);
    free(v);
    return s;
}

dx_status dx_tb_flush(dx_tb_writer *w, dx_err *err) {
    if (w->f && fflush(w->f) != 0) return dx_fail(err, DX_EIO, "flush %s: %s", w->path, strerror(errno));
    return DX_OK;
}

void dx_tb_close(dx_tb_writer *w) {
    if (w->f) fclose(w->f);
    w->f = NULL;
}
